package quic

import (
	"crypto/tls"
	"errors"
	"slices"
	"testing"

	quicgo "github.com/quic-go/quic-go"

	"github.com/tuxscope/tuxscope/internal/quic/quictest"
)

// TestQUICGo reads the name and protocols a real QUIC client (quic-go)
// puts in its Initials: with Go's default key shares (X25519MLKEM768)
// the ClientHello spans two datagrams and only the Assembler can read
// it; with X25519 alone it fits in one.
func TestQUICGo(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version quicgo.Version
		curves  []tls.CurveID
		split   bool
	}{
		{"v1 default key shares", quicgo.Version1, nil, true},
		{"v2 default key shares", quicgo.Version2, nil, true},
		{"v1 X25519", quicgo.Version1, []tls.CurveID{tls.X25519}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dgs := quictest.Datagrams(t, &tls.Config{
				ServerName:       "quic-sni.test",
				NextProtos:       []string{"h3"},
				CurvePreferences: tc.curves,
			}, tc.version)
			a := NewAssembler(4)
			var hello []byte
			used := 0
			for _, d := range dgs {
				used++
				h, err := a.Add(d)
				if err == nil {
					hello = h
					break
				}
				if !errors.Is(err, ErrIncomplete) {
					t.Fatalf("datagram %d (%d bytes): %v", used, len(d), err)
				}
			}
			if hello == nil {
				t.Fatalf("no ClientHello in %d datagrams", len(dgs))
			}
			if a.Pending() != 0 || a.Evicted() != 0 {
				t.Errorf("assembler holds %d, evicted %d", a.Pending(), a.Evicted())
			}
			t.Logf("%d datagrams received, ClientHello of %d bytes complete after %d", len(dgs), len(hello), used)
			if tc.split != (used > 1) || tc.split != (len(hello) > 1200) {
				t.Errorf("ClientHello of %d bytes in %d datagrams, split %v expected", len(hello), used, tc.split)
			}
			one, err := ClientHello(dgs[0])
			if tc.split && !errors.Is(err, ErrIncomplete) {
				t.Errorf("ClientHello on the first datagram alone: %v, want ErrIncomplete", err)
			}
			if !tc.split && (err != nil || !slices.Equal(one, hello)) {
				t.Errorf("ClientHello on the first datagram: %d bytes, %v", len(one), err)
			}
			sni, alpn, err := ServerName(hello)
			if err != nil {
				t.Fatal(err)
			}
			if sni != "quic-sni.test" || !slices.Equal(alpn, []string{"h3"}) {
				t.Errorf("ServerName: %q %q, want quic-sni.test [h3]", sni, alpn)
			}
		})
	}
}

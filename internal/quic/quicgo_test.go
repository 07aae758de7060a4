package quic

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"
)

// dialCapture dials a UDP listener on 127.0.0.1 with quic-go, which sends
// its Initials (and retransmits them) while nobody answers, and returns
// the datagrams the listener received, in order.
func dialCapture(t *testing.T, tlsConf *tls.Config, version quicgo.Version) [][]byte {
	t.Helper()
	ln, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan [][]byte)
	go func() {
		var dgs [][]byte
		buf := make([]byte, 65536)
		for {
			n, _, err := ln.ReadFromUDP(buf)
			if err != nil {
				got <- dgs
				return
			}
			dgs = append(dgs, slices.Clone(buf[:n]))
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	conn, err := quicgo.DialAddr(ctx, ln.LocalAddr().String(), tlsConf, &quicgo.Config{Versions: []quicgo.Version{version}})
	if err == nil {
		conn.CloseWithError(0, "")
		t.Fatal("the dial succeeded with nobody answering")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("dial: %v", err)
	}
	ln.SetReadDeadline(time.Now()) // ends the reader
	dgs := <-got
	if len(dgs) == 0 {
		t.Fatal("the listener received nothing")
	}
	return dgs
}

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
			dgs := dialCapture(t, &tls.Config{
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

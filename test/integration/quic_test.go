package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/tuxscope/tuxscope/internal/quic"
)

// TestQUICNames: a quic-go client (this process) dials a UDP listener on
// 127.0.0.1:443 that never answers; its flow's udp_close carries the
// ClientHello's server name and ALPN, read from its first two Initials
// (Go's default post-quantum key share spreads the hello over both). A
// flow to 443 sending long-header garbage has no name and is counted
// once, with the reason internal/quic gives for it.
func TestQUICNames(t *testing.T) {
	requireRoot(t)
	ln, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443})
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.1:443 (taken?): %v", err)
	}
	defer ln.Close()
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, _, err := ln.ReadFromUDP(buf); err != nil {
				return
			}
		}
	}()
	tr := startTracer(t, "--proto", "udp")
	me := os.Getpid()

	t.Run("named", func(t *testing.T) {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		sport := conn.LocalAddr().(*net.UDPAddr).Port
		qt := &quicgo.Transport{Conn: conn}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		c, err := qt.Dial(ctx, ln.LocalAddr(), &tls.Config{ServerName: "quic-sni.test", NextProtos: []string{"h3"}}, nil)
		cancel()
		if err == nil {
			c.CloseWithError(0, "")
			t.Fatal("the QUIC dial succeeded with nobody answering")
		}
		qt.Close()
		conn.Close()
		cl := tr.waitFor("the QUIC flow's udp_close", func(e jsonEvent) bool {
			return e.EventType == "udp_close" && e.PID == me && e.Sport == sport && e.Dport == 443 && e.Saddr == "127.0.0.1" && e.Daddr == "127.0.0.1"
		})
		if cl.SNI != "quic-sni.test" || !slices.Equal(cl.ALPN, []string{"h3"}) || cl.Direction != "outbound" || cl.Family != 4 {
			t.Errorf("udp_close: %s sni=%q alpn=%q", cl, cl.SNI, cl.ALPN)
		}
		op := tr.waitFor("the QUIC flow's udp_open", func(e jsonEvent) bool {
			return e.EventType == "udp_open" && e.PID == me && e.Sport == sport && e.Dport == 443
		})
		if op.SNI != "" {
			t.Errorf("udp_open named %q: it comes before the Initial is read", op.SNI)
		}
	})

	t.Run("garbage", func(t *testing.T) {
		// A long header of QUIC v1 with a connection id, then noise:
		// copied, and unreadable.
		garbage := make([]byte, 1200)
		for i := range garbage {
			garbage[i] = byte(i*7 + 3)
		}
		copy(garbage, []byte{0xc3, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0x44, 0x90})
		_, perr := quic.ClientHello(garbage)
		if perr == nil {
			t.Fatal("the garbage parses")
		}
		reason := "quic_" + quic.Reason(perr)
		c, err := net.DialUDP("udp4", nil, ln.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		sport := c.LocalAddr().(*net.UDPAddr).Port
		for range 3 {
			if _, err := c.Write(garbage); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
		cl := tr.waitFor("the garbage flow's udp_close", func(e jsonEvent) bool {
			return e.EventType == "udp_close" && e.PID == me && e.Sport == sport && e.Dport == 443
		})
		if cl.SNI != "" || cl.ALPN != nil || u64(cl.PacketsSent) != 3 || u64(cl.BytesSent) != 3*1200 {
			t.Errorf("garbage flow: %s sni=%q alpn=%q", cl, cl.SNI, cl.ALPN)
		}
		d := tr.waitFor("tls_dropped "+reason, func(e jsonEvent) bool { return e.EventType == "tls_dropped" && e.Reason == reason })
		if d.Count != 1 {
			t.Errorf("%s counted %d times, want 1 (once per flow)", reason, d.Count)
		}
		t.Logf("garbage: %v", fmt.Sprint(perr))
	})
}

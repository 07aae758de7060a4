// Package quictest has the tests' source of real QUIC client Initials: a
// quic-go client dialing a UDP listener that never answers. Only tests
// import it (quic-go must stay out of the tuxscope binary: make
// check-deps checks).
package quictest

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

// Datagrams dials a UDP listener on 127.0.0.1 with quic-go, which sends
// its Initials (and retransmits them) while nobody answers, and returns
// the datagrams the listener received, in order. versions, if any, are
// the QUIC versions the client may use.
func Datagrams(t testing.TB, conf *tls.Config, versions ...quicgo.Version) [][]byte {
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
	var qc *quicgo.Config
	if len(versions) > 0 {
		qc = &quicgo.Config{Versions: versions}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	conn, err := quicgo.DialAddr(ctx, ln.LocalAddr().String(), conf, qc)
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

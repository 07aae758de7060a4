package quic

import (
	"bytes"
	"testing"
)

// BenchmarkClientHello reads the RFC 9001 client Initial: one 1,200-byte
// datagram, keys derived, header unprotected, payload opened, hello read.
func BenchmarkClientHello(b *testing.B) {
	d := unhex(b, rfc9001Packet)
	b.SetBytes(int64(len(d)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ClientHello(d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAssembler reads a 1,800-byte ClientHello from two Initials
// (as a post-quantum key share makes it) through an Assembler: per op,
// one connection's two datagrams.
func BenchmarkAssembler(b *testing.B) {
	h := bytes.Repeat(rfcHello(b), 8)[:1800]
	h[1], h[2], h[3] = 0, byte((len(h)-4)>>8), byte(len(h)-4)
	d1 := seal(b, Version1, testDCID, 0, cryptoFrame(0, h[:1000]), 1200)
	d2 := seal(b, Version1, testDCID, 1, cryptoFrame(1000, h[1000:]), 1200)
	a := NewAssembler(0)
	b.SetBytes(int64(len(d1) + len(d2)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Add(d1); err == nil {
			b.Fatal("complete after one datagram")
		}
		if _, err := a.Add(d2); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServerName reads the RFC's ClientHello's name and protocol.
func BenchmarkServerName(b *testing.B) {
	h := rfcHello(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ServerName(h); err != nil {
			b.Fatal(err)
		}
	}
}

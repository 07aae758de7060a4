package quic

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkErr fails unless err is nil or wraps exactly one category.
func checkErr(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	n := 0
	for _, c := range categories {
		if errors.Is(err, c.err) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("error in %d categories: %v", n, err)
	}
}

// checkHello holds what ClientHello promises of a hello.
func checkHello(t *testing.T, hello []byte) {
	t.Helper()
	if len(hello) < 4 || len(hello) > MaxHello || hello[0] != 1 ||
		len(hello) != 4+(int(hello[1])<<16|int(hello[2])<<8|int(hello[3])) {
		t.Fatalf("ClientHello of %d bytes: %x", len(hello), hello[:min(len(hello), 8)])
	}
	checkServerName(t, hello)
}

func checkServerName(t *testing.T, hello []byte) {
	t.Helper()
	sni, alpn, err := ServerName(hello)
	if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
		t.Fatalf("ServerName: %v", err)
	}
	if errors.Is(err, ErrMalformed) && (sni != "" || alpn != nil) {
		t.Fatalf("ServerName: %q %q with %v", sni, alpn, err)
	}
	if len(sni) > MaxServerName || len(alpn) > MaxALPN {
		t.Fatalf("ServerName: %d-byte name, %d protocols", len(sni), len(alpn))
	}
	for _, p := range alpn {
		if p == "" || len(p) > 255 {
			t.Fatalf("ALPN protocol of %d bytes", len(p))
		}
	}
	sni2, alpn2, err2 := ServerName(hello)
	if sni2 != sni || strings.Join(alpn2, "\x00") != strings.Join(alpn, "\x00") || (err2 == nil) != (err == nil) {
		t.Fatal("ServerName is not deterministic")
	}
}

// FuzzClientHello feeds the parser two ways. raw goes in as a datagram,
// as it came off the network (random bytes rarely pass AES-GCM, but
// every header path before it is reached). frames is taken as the
// plaintext of Initials and sealed with the real keys, so the frame walk
// and the reassembly see arbitrary content: it is cut into up to 4
// packets at cut's bytes, sent in one datagram each (an Assembler) and
// coalesced into one (ClientHello).
func FuzzClientHello(f *testing.F) {
	h := rfcHello(f)
	f.Add(unhex(f, rfc9001Packet), cryptoFrame(0, h), []byte{})
	f.Add(unhex(f, rfc9369Packet), cat(cryptoFrame(100, h[100:]), []byte{1, 0, 0}, cryptoFrame(0, h[:100])), []byte{60})
	f.Add([]byte{0x40, 1}, cat([]byte{0x02, 0x05, 0x00, 0x01, 0x00, 0x01, 0x00}, cryptoFrame(0, h)), []byte{3, 200})
	f.Add([]byte{}, cat(cryptoFrame(0, h[:50]), []byte{0x1c, 0x0a, 0x06, 0x03, 'b', 'y', 'e'}, cryptoFrame(50, h[50:])), []byte{20, 20, 20})
	f.Fuzz(func(t *testing.T, raw, frames, cut []byte) {
		orig := bytes.Clone(raw)
		hello, err := ClientHello(raw)
		checkErr(t, err)
		if !bytes.Equal(raw, orig) {
			t.Fatal("ClientHello changed its input")
		}
		if err == nil {
			checkHello(t, hello)
		}
		if len(frames) > 4000 {
			return
		}
		var dgs [][]byte
		rest := frames
		for i := 0; i < 3 && i < len(cut) && int(cut[i]) < len(rest); i++ {
			dgs = append(dgs, seal(t, Version1, testDCID, uint32(i), rest[:cut[i]], 1200))
			rest = rest[cut[i]:]
		}
		dgs = append(dgs, seal(t, Version1, testDCID, uint32(len(dgs)), rest, 1200))
		a := NewAssembler(1)
		for _, d := range dgs {
			hello, err := a.Add(d)
			checkErr(t, err)
			if err == nil {
				checkHello(t, hello)
			}
			if a.Pending() > 1 || a.Evicted() != 0 {
				t.Fatalf("pending %d, evicted %d", a.Pending(), a.Evicted())
			}
		}
		hello, err = ClientHello(bytes.Join(dgs, nil))
		checkErr(t, err)
		if err == nil {
			checkHello(t, hello)
		}
	})
}

// FuzzServerName reads arbitrary handshake messages.
func FuzzServerName(f *testing.F) {
	h := rfcHello(f)
	f.Add(h)
	f.Add(h[:100])
	many := []byte{0, 16, 0, 0, 0, 0} // ALPN extension, lengths fixed below
	for range MaxALPN + 2 {
		many = append(many, 2, 'h', '3')
	}
	many[2], many[3] = byte((len(many)-4)>>8), byte(len(many)-4)
	many[4], many[5] = byte((len(many)-6)>>8), byte(len(many)-6)
	f.Add(helloWith(h, many))
	f.Add(helloWith(h, nil))
	f.Fuzz(func(t *testing.T, hello []byte) {
		checkServerName(t, hello)
		sni, _, err := ServerName(hello)
		if err == nil && !utf8.ValidString(sni) {
			t.Logf("name %q is not UTF-8: returned as sent", sni)
		}
	})
}

// helloWith replaces the RFC hello's extensions with exts.
func helloWith(h []byte, exts []byte) []byte {
	// type, length, version, random, session id (0), suites (2), compression (1 method).
	const fixed = 4 + 2 + 32 + 1 + 2 + 4 + 2
	out := append([]byte(nil), h[:fixed]...)
	out = append(out, byte(len(exts)>>8), byte(len(exts)))
	out = append(out, exts...)
	n := len(out) - 4
	out[1], out[2], out[3] = byte(n>>16), byte(n>>8), byte(n)
	return out
}

// TestServerName covers the extension cases the fuzzer's seeds name.
func TestServerName(t *testing.T) {
	h := rfcHello(t)
	many := []byte{0, 16, 0, 0, 0, 0}
	for range MaxALPN + 2 {
		many = append(many, 2, 'h', '3')
	}
	many[2], many[3] = byte((len(many)-4)>>8), byte(len(many)-4)
	many[4], many[5] = byte((len(many)-6)>>8), byte(len(many)-6)
	sni, alpn, err := ServerName(helloWith(h, many))
	if !errors.Is(err, ErrTooLarge) || sni != "" || len(alpn) != MaxALPN {
		t.Errorf("%d protocols: %q, %d kept, %v", MaxALPN+2, sni, len(alpn), err)
	}
	if sni, alpn, err := ServerName(helloWith(h, nil)); err != nil || sni != "" || alpn != nil {
		t.Errorf("no extensions: %q %q %v", sni, alpn, err)
	}
	long := append([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0}, bytes.Repeat([]byte{'a'}, 256)...)
	long[2], long[3], long[4], long[5] = 1, 5, 1, 3
	if _, _, err := ServerName(helloWith(h, long)); !errors.Is(err, ErrMalformed) {
		t.Errorf("256-byte name: %v", err)
	}
	for i := range len(h) {
		if _, _, err := ServerName(h[:i]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("hello cut at %d bytes: %v", i, err)
		}
	}
}

package sni

import (
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"testing"
)

// clientHello is the first flight Go's TLS client sends for cfg: a real
// ClientHello, read off a pipe.
func clientHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	c, s := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = tls.Client(c, cfg).Handshake() // fails when s closes
	}()
	buf := make([]byte, 1<<16)
	n, err := s.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	<-done
	return buf[:n]
}

func realHello(t testing.TB) []byte {
	return clientHello(t, &tls.Config{ServerName: "api.example.test", NextProtos: []string{"h2", "http/1.1"}})
}

func TestParseRealClientHello(t *testing.T) {
	b := realHello(t)
	h, err := Parse(b, len(b))
	if err != nil {
		t.Fatal(err)
	}
	if h.ServerName != "api.example.test" || !slices.Equal(h.Protocols, []string{"h2", "http/1.1"}) || h.Partial {
		t.Fatalf("got %+v", h)
	}
	// Without SNI (an IP address) and ALPN: parsed, nothing to say.
	b = clientHello(t, &tls.Config{ServerName: "198.51.100.7", InsecureSkipVerify: true})
	h, err = Parse(b, len(b))
	if err != nil || h.ServerName != "" || h.Protocols != nil {
		t.Fatalf("got %+v, %v", h, err)
	}
}

// Every prefix of a real ClientHello either names the same server
// (Partial) or is counted as split, never misread; a prefix cut by the
// capture is oversized.
func TestParsePrefixes(t *testing.T) {
	b := realHello(t)
	named := 0
	for n := 0; n < len(b); n++ {
		h, err := Parse(b[:n], n)
		switch {
		case n < 9 && err == ErrNotClientHello:
			// Not even the headers: nothing says it is TLS.
		case err == nil:
			if h.ServerName != "api.example.test" || !h.Partial {
				t.Fatalf("prefix %d: %+v", n, h)
			}
			named++
		case !errors.Is(err, ErrSplit):
			t.Fatalf("prefix %d: %v", n, err)
		}
		if n >= 9 {
			if _, err := Parse(b[:n], len(b)); err != nil && !errors.Is(err, ErrOversized) {
				t.Fatalf("prefix %d of %d captured: %v", n, len(b), err)
			}
		}
	}
	if named == 0 {
		t.Fatal("no prefix named the server: Go's client sends server_name early")
	}
	// The first 20 bytes, as the split test's client sends them.
	if _, err := Parse(b[:20], 20); !errors.Is(err, ErrSplit) {
		t.Fatalf("20 bytes: %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	b := realHello(t)
	for name, mut := range map[string]func([]byte){
		"not handshake":                 func(b []byte) { b[0] = 23 },
		"not client hello":              func(b []byte) { b[5] = 2 },
		"bad version":                   func(b []byte) { b[1] = 2 },
		"record too long":               func(b []byte) { b[3], b[4] = 0x40, 0x01 },
		"handshake shorter than record": func(b []byte) { b[8]-- },
		"no extensions length":          func(b []byte) { b[3], b[4] = 0, 0x2e; b[6], b[7], b[8] = 0, 0, 0x2a },
	} {
		c := slices.Clone(b)
		mut(c)
		if _, err := Parse(c, len(c)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A control byte in the name.
	c := slices.Clone(b)
	i := indexOf(c, []byte("api.example.test"))
	c[i] = '\n'
	if h, err := Parse(c, len(c)); err == nil {
		t.Fatalf("name with a newline accepted: %q", h.ServerName)
	}
}

func indexOf(b, sub []byte) int {
	for i := range len(b) - len(sub) + 1 {
		if string(b[i:i+len(sub)]) == string(sub) {
			return i
		}
	}
	return -1
}

// checkHello holds Parse's promises about what it accepted.
func checkHello(t testing.TB, h Hello) {
	t.Helper()
	if h.ServerName != "" && !validName([]byte(h.ServerName)) {
		t.Fatalf("invalid name %q", h.ServerName)
	}
	if len(h.Protocols) > MaxProtocols {
		t.Fatalf("%d protocols", len(h.Protocols))
	}
	for _, p := range h.Protocols {
		if p == "" || !printable([]byte(p)) {
			t.Fatalf("protocol %q", p)
		}
	}
	if h.Partial && h.ServerName == "" {
		t.Fatal("partial without a name")
	}
}

func FuzzParse(f *testing.F) {
	b := realHello(f)
	f.Add(b, len(b))
	f.Add(b[:100], len(b))
	f.Add(b[:60], 60)
	f.Add(clientHello(f, &tls.Config{ServerName: "x", MaxVersion: tls.VersionTLS12}), 0)
	f.Fuzz(func(t *testing.T, b []byte, total int) {
		h, err := Parse(b, total)
		if err != nil {
			if h.ServerName != "" || h.Protocols != nil {
				t.Fatalf("error %v with %+v", err, h)
			}
			return
		}
		checkHello(t, h)
		// A prefix never names another server.
		for _, n := range []int{len(b) / 2, len(b) - 1} {
			if n < 0 {
				continue
			}
			p, err := Parse(b[:n], n)
			if err == nil && p.ServerName != "" && p.ServerName != h.ServerName {
				t.Fatalf("prefix %d names %q, the whole %q", n, p.ServerName, h.ServerName)
			}
		}
	})
}

// A ClientHello handshake message without its record (as QUIC carries
// it) reads the same; prefixes and trailing bytes are refused.
func TestParseHandshake(t *testing.T) {
	rec := realHello(t)
	msg := rec[5:]
	h, err := ParseHandshake(msg)
	if err != nil || h.ServerName != "api.example.test" || !slices.Equal(h.Protocols, []string{"h2", "http/1.1"}) {
		t.Fatalf("%+v %v", h, err)
	}
	if _, err := ParseHandshake(msg[:len(msg)-1]); err == nil {
		t.Error("a cut message parsed")
	}
	if _, err := ParseHandshake(append(slices.Clone(msg), 0)); err == nil {
		t.Error("a message with a trailing byte parsed")
	}
	if _, err := ParseHandshake(make([]byte, maxRecord+1)); !errors.Is(err, ErrOversized) {
		t.Errorf("oversized: %v", err)
	}
}

func FuzzParseHandshake(f *testing.F) {
	f.Add(realHello(f)[5:])
	f.Fuzz(func(t *testing.T, msg []byte) {
		h, err := ParseHandshake(msg)
		if err != nil {
			if h.ServerName != "" || h.Protocols != nil {
				t.Fatalf("error %v with %+v", err, h)
			}
			return
		}
		checkHello(t, h)
	})
}

package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tlsServer starts `openssl s_server -www` on a free loopback port with a
// throw-away certificate, offering ALPN h2 and http/1.1; without openssl
// (the matrix's guests), a Go TLS server in this process. It says which.
func tlsServer(t *testing.T) (port int, openssl bool) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		return goTLSServer(t, "127.0.0.1:0"), false
	}
	dir := t.TempDir()
	key, cert := filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	if out, err := exec.Command("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
		"-nodes", "-keyout", key, "-out", cert, "-subj", "/CN=tls.test", "-days", "1").CombinedOutput(); err != nil {
		t.Fatalf("openssl req: %v: %s", err, out)
	}
	port = freePort(t)
	srv := exec.Command("openssl", "s_server", "-accept", fmt.Sprintf("127.0.0.1:%d", port), "-cert", cert, "-key", key,
		"-alpn", "h2,http/1.1", "-www", "-quiet")
	srv.Stdin = strings.NewReader("")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	waitUntil(t, "openssl s_server to listen", func() bool {
		c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return port, true
}

// goTLSServer serves TLS handshakes on a loopback address from this
// process, with a throw-away self-signed certificate.
func goTLSServer(t *testing.T, addr string) int {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tls.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", addr, &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		NextProtos:   []string{"h2", "http/1.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.(*tls.Conn).Handshake()
				c.Read(make([]byte, 1))
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// TestTLSServerNames: outbound TLS connections to a loopback openssl
// s_server, made without any DNS lookup, carry the ClientHello's server
// name and ALPN on their close (not on their connect); ClientHellos split
// over two segments or larger than the capture are counted, not
// misread.
func TestTLSServerNames(t *testing.T) {
	requireRoot(t)
	port, openssl := tlsServer(t)
	p6 := 0 // an IPv6 server, where the host has IPv6 loopback
	if l, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		l.Close()
		p6 = goTLSServer(t, "[::1]:0")
	}
	ports := strconv.Itoa(port)
	if p6 != 0 {
		ports += "," + strconv.Itoa(p6)
	}
	tr := startTracer(t, "--port", ports)
	ps := strconv.Itoa(port)
	closeOf := func(pid, sport int) func(jsonEvent) bool {
		return func(e jsonEvent) bool {
			return e.EventType == "close" && e.PID == pid && e.Dport == port && (sport == 0 || e.Sport == sport) && e.Direction == "outbound"
		}
	}

	t.Run("s_client", func(t *testing.T) {
		if !openssl {
			t.Skip("needs openssl")
		}
		c := exec.Command("openssl", "s_client", "-connect", "127.0.0.1:"+ps, "-servername", "api.tls.test", "-alpn", "h2,http/1.1")
		c.Stdin = strings.NewReader("") // EOF: it closes after the handshake
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("s_client: %v: %s", err, out)
		}
		if !strings.Contains(string(out), "ALPN protocol: h2") {
			t.Fatalf("s_client did not negotiate h2: %s", out)
		}
		pid := c.Process.Pid
		cl := tr.waitFor("s_client's close", closeOf(pid, 0))
		if cl.SNI != "api.tls.test" || !slices.Equal(cl.ALPN, []string{"h2", "http/1.1"}) || cl.Comm != "openssl" ||
			cl.Daddr != "127.0.0.1" || cl.Hostname != "" {
			t.Errorf("close: %s sni=%q alpn=%q hostname=%q", cl, cl.SNI, cl.ALPN, cl.Hostname)
		}
		// The connect comes before the first data: no name there.
		conn := tr.waitFor("s_client's connect", func(e jsonEvent) bool {
			return e.EventType == "connect" && e.PID == pid && e.Sport == cl.Sport
		})
		if conn.SNI != "" || conn.Dport != port {
			t.Errorf("connect: %s sni=%q", conn, conn.SNI)
		}
	})

	t.Run("curl", func(t *testing.T) {
		if _, err := exec.LookPath("curl"); err != nil || !openssl {
			t.Skip("needs curl and openssl")
		}
		for _, tc := range []struct {
			sni  string
			args []string
		}{
			{"resolve.tls.test", []string{"--resolve", "resolve.tls.test:" + ps + ":127.0.0.1", "https://resolve.tls.test:" + ps + "/"}},
			{"connect-to.tls.test", []string{"--connect-to", "connect-to.tls.test:443:127.0.0.1:" + ps, "https://connect-to.tls.test/"}},
		} {
			// HTTP/1.1 only: s_server -www speaks no HTTP/2.
			c := exec.Command("curl", append([]string{"-sk", "--http1.1", "-o", "/dev/null", "-m", "5"}, tc.args...)...)
			if out, err := c.CombinedOutput(); err != nil {
				t.Fatalf("curl %v: %v: %s", tc.args, err, out)
			}
			cl := tr.waitFor("curl's close", closeOf(c.Process.Pid, 0))
			if cl.SNI != tc.sni || !slices.Equal(cl.ALPN, []string{"http/1.1"}) || cl.Comm != "curl" || cl.Hostname != "" {
				t.Errorf("curl %s: close %s sni=%q alpn=%q", tc.sni, cl, cl.SNI, cl.ALPN)
			}
		}
	})

	// The test process itself, Go's TLS client, over a conn that sends
	// the ClientHello's first 20 bytes, waits, then the rest (Go sets
	// TCP_NODELAY): two segments.
	dial := func(t *testing.T, cfg *tls.Config, split bool) int {
		raw, err := net.Dial("tcp4", "127.0.0.1:"+ps)
		if err != nil {
			t.Fatal(err)
		}
		sport := raw.LocalAddr().(*net.TCPAddr).Port
		var c net.Conn = raw
		if split {
			c = &splitConn{Conn: raw}
		}
		tc := tls.Client(c, cfg)
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		tc.Handshake() // its outcome does not matter: the first segments do
		tc.Close()
		return sport
	}
	me := os.Getpid()

	// Go's client: named, and in the matrix's guests (no openssl) the
	// proof that the hooks capture on that kernel.
	t.Run("go", func(t *testing.T) {
		sport := dial(t, &tls.Config{ServerName: "go.tls.test", NextProtos: []string{"h2", "http/1.1"}, InsecureSkipVerify: true}, false)
		cl := tr.waitFor("Go client's close", closeOf(me, sport))
		if cl.SNI != "go.tls.test" || !slices.Equal(cl.ALPN, []string{"h2", "http/1.1"}) {
			t.Errorf("close: %s sni=%q alpn=%q", cl, cl.SNI, cl.ALPN)
		}
	})

	// IPv6: the hook finds the TCP header after the fixed header.
	t.Run("go-ipv6", func(t *testing.T) {
		if p6 == 0 {
			t.Skip("no IPv6 loopback")
		}
		raw, err := net.Dial("tcp6", fmt.Sprintf("[::1]:%d", p6))
		if err != nil {
			t.Fatal(err)
		}
		sport := raw.LocalAddr().(*net.TCPAddr).Port
		tc := tls.Client(raw, &tls.Config{ServerName: "v6.tls.test", NextProtos: []string{"http/1.1"}, InsecureSkipVerify: true})
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		tc.Handshake()
		tc.Close()
		cl := tr.waitFor("the IPv6 close", func(e jsonEvent) bool {
			return e.EventType == "close" && e.PID == me && e.Sport == sport && e.Dport == p6 && e.Direction == "outbound"
		})
		if cl.SNI != "v6.tls.test" || !slices.Equal(cl.ALPN, []string{"http/1.1"}) || cl.Daddr != "::1" || cl.Family != 6 {
			t.Errorf("close: %s sni=%q alpn=%q", cl, cl.SNI, cl.ALPN)
		}
	})

	t.Run("split", func(t *testing.T) {
		sport := dial(t, &tls.Config{ServerName: "split.tls.test", NextProtos: []string{"h2"}, InsecureSkipVerify: true}, true)
		cl := tr.waitFor("the split connection's close", closeOf(me, sport))
		if cl.SNI != "" || cl.ALPN != nil {
			t.Errorf("split hello named: %s sni=%q alpn=%q", cl, cl.SNI, cl.ALPN)
		}
		d := tr.waitFor("tls_dropped split", func(e jsonEvent) bool { return e.EventType == "tls_dropped" && e.Reason == "split" })
		if d.Count != 1 {
			t.Errorf("split counted %d times, want 1", d.Count)
		}
	})

	t.Run("oversized", func(t *testing.T) {
		// 12 ALPN protocols of 200 bytes: a ~4 KB ClientHello in one
		// loopback segment, more than the 2,048 bytes captured.
		var big []string
		for i := range 12 {
			big = append(big, fmt.Sprintf("%c%s", 'a'+i, strings.Repeat("x", 199)))
		}
		// Go sends server_name before ALPN: the name is in the captured
		// part, the ALPN list is not, and is not made up.
		sport := dial(t, &tls.Config{ServerName: "big.tls.test", NextProtos: big, InsecureSkipVerify: true}, false)
		cl := tr.waitFor("the oversized connection's close", closeOf(me, sport))
		if cl.SNI != "big.tls.test" || cl.ALPN != nil {
			t.Errorf("oversized, named: %s sni=%q alpn=%q", cl, cl.SNI, cl.ALPN)
		}
		// Without a server name: counted.
		sport = dial(t, &tls.Config{NextProtos: big, InsecureSkipVerify: true}, false)
		cl = tr.waitFor("the oversized connection's close", closeOf(me, sport))
		if cl.SNI != "" || cl.ALPN != nil {
			t.Errorf("oversized, nameless: %s sni=%q alpn=%q", cl, cl.SNI, cl.ALPN)
		}
		d := tr.waitFor("tls_dropped oversized", func(e jsonEvent) bool { return e.EventType == "tls_dropped" && e.Reason == "oversized" })
		if d.Count != 1 {
			t.Errorf("oversized counted %d times, want 1", d.Count)
		}
	})

	// Plain data first: nothing captured, nothing counted.
	t.Run("not-tls", func(t *testing.T) {
		c, err := net.Dial("tcp4", "127.0.0.1:"+ps)
		if err != nil {
			t.Fatal(err)
		}
		sport := c.LocalAddr().(*net.TCPAddr).Port
		c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		c.Close()
		cl := tr.waitFor("the plain connection's close", closeOf(me, sport))
		if cl.SNI != "" {
			t.Errorf("plain connection named %q", cl.SNI)
		}
	})
	if tr.stop() != 0 {
		t.Errorf("tuxscope exited non-zero: %s", tr.stderrText())
	}
	for _, d := range tr.all(func(e jsonEvent) bool { return e.EventType == "tls_dropped" }) {
		if d.Reason != "split" && d.Reason != "oversized" || d.Count != 1 {
			t.Errorf("unexpected %s", d)
		}
	}
}

// splitConn writes its first Write in two: 20 bytes, a pause, the rest.
type splitConn struct {
	net.Conn
	done bool
}

func (c *splitConn) Write(b []byte) (int, error) {
	if c.done || len(b) <= 20 {
		return c.Conn.Write(b)
	}
	c.done = true
	n, err := c.Conn.Write(b[:20])
	if err != nil {
		return n, err
	}
	time.Sleep(50 * time.Millisecond)
	m, err := c.Conn.Write(b[20:])
	return n + m, err
}

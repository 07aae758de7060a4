package integration

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// checkConnect asserts a connect event against what the client itself saw.
func checkConnect(t *testing.T, ev jsonEvent, c *proc, comm string, family int, local, remote netip.AddrPort) {
	t.Helper()
	want := jsonEvent{
		EventType: "connect", PID: c.pid(), Comm: comm, Family: family,
		Saddr: local.Addr().String(), Sport: int(local.Port()),
		Daddr: remote.Addr().String(), Dport: int(remote.Port()),
	}
	checkEvent(t, ev, want)
}

// checkEvent compares the fields that the test knows exactly.
func checkEvent(t *testing.T, got, want jsonEvent) {
	t.Helper()
	if got.EventType != want.EventType || got.PID != want.PID || got.Comm != want.Comm ||
		got.Family != want.Family || got.Saddr != want.Saddr || got.Sport != want.Sport ||
		got.Daddr != want.Daddr || got.Dport != want.Dport {
		t.Errorf("event mismatch\n got: %s\nwant: %s", got, want)
	}
	if got.UID != os.Geteuid() {
		t.Errorf("uid = %d, want %d", got.UID, os.Geteuid())
	}
	if got.TID <= 0 || got.TimestampNs == 0 {
		t.Errorf("tid %d / timestamp_ns %d not set", got.TID, got.TimestampNs)
	}
	ts, err := time.Parse(time.RFC3339Nano, got.Time)
	if err != nil || time.Since(ts) > time.Minute || time.Since(ts) < -time.Second {
		t.Errorf("time %q is not a current RFC 3339 time (%v)", got.Time, err)
	}
}

// connectAndAccept runs one server/client pair under a running tracer
// and checks both events exactly.
func connectAndAccept(t *testing.T, tr *tracer, srv *proc, port int, clientArgs []string,
	family int, serverLocal netip.Addr) {
	t.Helper()
	c := client(t, clientArgs...)
	local := netip.MustParseAddrPort(c.expect("LOCAL")[0])
	peer := netip.MustParseAddrPort(srv.expect("ACCEPTED")[0])
	remote := netip.AddrPortFrom(serverLocal, uint16(port))

	ev := tr.waitFor("connect", byPID("connect", c.pid()))
	checkConnect(t, ev, c, "tsclient", family, local, remote)

	ev = tr.waitFor("accept", byPID("accept", srv.pid()))
	checkEvent(t, ev, jsonEvent{
		EventType: "accept", PID: srv.pid(), Comm: "tsserver", Family: family,
		Saddr: peer.Addr().String(), Sport: int(peer.Port()),
		Daddr: serverLocal.String(), Dport: port,
	})
	if peer.Port() != local.Port() {
		t.Errorf("server saw client port %d, client has %d", peer.Port(), local.Port())
	}
}

// The server is blocked in accept4() before tuxscope starts: its accept
// must still be seen, with its own pid. The client uses a blocking connect.
func TestIPv4BlockingConnectPreBlockedAccept4(t *testing.T) {
	requireRoot(t)
	srv, port := server(t, "-family", "4", "-addr", "127.0.0.1:0", "-syscall", "accept4")
	time.Sleep(100 * time.Millisecond) // let it block in accept4
	tr := startTracer(t)
	connectAndAccept(t, tr, srv, port,
		[]string{"-family", "4", "-addr", fmt.Sprintf("127.0.0.1:%d", port)},
		4, netip.MustParseAddr("127.0.0.1"))
}

// IPv6 loopback, Go's non-blocking connect (EINPROGRESS), plain accept().
func TestIPv6NonBlockingConnectAccept(t *testing.T) {
	requireRoot(t)
	tr := startTracer(t)
	srv, port := server(t, "-family", "6", "-addr", "[::1]:0", "-syscall", "accept")
	connectAndAccept(t, tr, srv, port,
		[]string{"-family", "6", "-mode", "go", "-addr", fmt.Sprintf("[::1]:%d", port)},
		6, netip.MustParseAddr("::1"))
}

// A dual-stack listener (AF_INET6, IPV6_V6ONLY=0) accepting an IPv4
// client, and an AF_INET6 client connecting to a v4-mapped address: both
// sockets are AF_INET6 and print the way ss -tn does ([::ffff:a.b.c.d]).
func TestDualStack(t *testing.T) {
	requireRoot(t)
	tr := startTracer(t)
	srv, port := server(t, "-family", "6", "-dualstack", "-addr", "[::]:0", "-n", "2")

	// IPv4 client -> dual-stack listener: the connect is family 4, the
	// accepted socket family 6 with mapped addresses.
	c4 := client(t, "-family", "4", "-addr", fmt.Sprintf("127.0.0.1:%d", port))
	local4 := netip.MustParseAddrPort(c4.expect("LOCAL")[0])
	checkConnect(t, tr.waitFor("connect", byPID("connect", c4.pid())), c4, "tsclient", 4,
		local4, netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", port)))
	peer := netip.MustParseAddrPort(srv.expect("ACCEPTED")[0])
	if want := "::ffff:127.0.0.1"; peer.Addr().String() != want {
		t.Fatalf("server saw peer %v, want %s", peer, want)
	}
	ev := tr.waitFor("accept", byPID("accept", srv.pid()))
	checkEvent(t, ev, jsonEvent{
		EventType: "accept", PID: srv.pid(), Comm: "tsserver", Family: 6,
		Saddr: "::ffff:127.0.0.1", Sport: int(local4.Port()),
		Daddr: "::ffff:127.0.0.1", Dport: port,
	})

	// AF_INET6 client -> v4-mapped address.
	c6 := client(t, "-family", "6", "-addr", fmt.Sprintf("[::ffff:127.0.0.1]:%d", port))
	local6 := netip.MustParseAddrPort(c6.expect("LOCAL")[0])
	if local6.Addr().String() != "::ffff:127.0.0.1" {
		t.Fatalf("client local address %v, want a v4-mapped one", local6)
	}
	checkConnect(t, tr.waitFor("connect", byPID("connect", c6.pid())), c6, "tsclient", 6,
		local6, netip.MustParseAddrPort(fmt.Sprintf("[::ffff:127.0.0.1]:%d", port)))
	srv.expect("ACCEPTED")

	// The table prints them as ss -tn does.
	want := fmt.Sprintf(" [::ffff:127.0.0.1]:%d\n", port)
	out := runTable(t, func() {
		c := client(t, "-family", "6", "-addr", fmt.Sprintf("[::ffff:127.0.0.1]:%d", port))
		c.expect("LOCAL")
	}, func(out string) bool { return strings.Contains(out, want) }, "--comm", "tsclient")
	if !strings.Contains(out, want) {
		t.Errorf("table output lacks %q:\n%s", want, out)
	}
}

// A blocking connect that is refused still reports the real source port
// (connect() clears the socket's addresses before it returns).
func TestRefusedBlockingConnectKeepsSourcePort(t *testing.T) {
	requireRoot(t)
	closed := freePort(t)
	tr := startTracer(t)
	bindPort := freePort(t)
	c := client(t, "-family", "4", "-bind", fmt.Sprintf("127.0.0.1:%d", bindPort),
		"-addr", fmt.Sprintf("127.0.0.1:%d", closed))
	if f := c.expect("FAILED"); f[0] != "111" {
		t.Fatalf("connect to a closed port failed with errno %s, want 111 (ECONNREFUSED)", f[0])
	}
	checkConnect(t, tr.waitFor("connect", byPID("connect", c.pid())), c, "tsclient", 4,
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(bindPort)),
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(closed)))

	// Unbound: the kernel picks the port; it must not be reported as 0.
	c2 := client(t, "-family", "4", "-addr", fmt.Sprintf("127.0.0.1:%d", closed))
	c2.expect("FAILED")
	ev := tr.waitFor("connect", byPID("connect", c2.pid()))
	if ev.Sport == 0 || ev.Saddr != "127.0.0.1" || ev.Dport != closed {
		t.Errorf("refused connect reported as %s, want 127.0.0.1:<ephemeral> -> 127.0.0.1:%d", ev, closed)
	}
}

// freePort returns a loopback TCP port nobody listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

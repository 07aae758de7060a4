package integration

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// requireIOUring skips, saying why, where this kernel has no io_uring or
// refuses it (kernel.io_uring_disabled, seccomp).
func requireIOUring(t *testing.T) {
	t.Helper()
	var p uringParams
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		t.Skipf("io_uring_setup: %v: io_uring is not available here", errno)
	}
	unix.Close(int(fd))
}

// checkOutbound asserts a client's connect and its established outcome,
// in that order, with the client's pid and the ports it really had.
func checkOutbound(t *testing.T, tr *tracer, c *proc, local netip.AddrPort, port int) {
	t.Helper()
	remote := netip.AddrPortFrom(local.Addr(), uint16(port))
	family := 4
	if local.Addr().Is6() {
		family = 6
	}
	checkConnect(t, tr.waitFor("connect", byPID("connect", c.pid())), c, "tsclient", family, local, remote)
	est := tr.waitFor("established", byPID("established", c.pid()))
	if ci, ei := tr.index(byPID("connect", c.pid())), tr.index(byPID("established", c.pid())); ci > ei {
		t.Errorf("established came before its connect")
	}
	if est.Sport != int(local.Port()) || est.Dport != port || est.Comm != "tsclient" || est.Direction != "outbound" {
		t.Errorf("established: %s, want %v -> %d from tsclient", est, local, port)
	}
	if n := len(tr.all(byPID("connect", c.pid()))); n != 1 {
		t.Errorf("%d connect events for pid %d, want 1:\n%s", n, c.pid(), tr.dump())
	}
}

// A connect made with io_uring (IORING_OP_CONNECT) never passes
// connect(2): it must be seen all the same, with the process that
// submitted it, and its close attributed to it.
func TestIOUringConnect(t *testing.T) {
	requireRoot(t)
	requireIOUring(t)
	for _, tc := range []struct{ name, listen string }{{"ipv4", "127.0.0.1:0"}, {"ipv6", "[::1]:0"}} {
		t.Run(tc.name, func(t *testing.T) {
			tr := startTracer(t)
			family := "4"
			if strings.HasPrefix(tc.listen, "[") {
				family = "6"
			}
			srv, port := server(t, "-family", family, "-addr", tc.listen, "-recv", "12345", "-send", "7000", "-wait-eof")
			host := strings.TrimSuffix(tc.listen, ":0")
			c := startProc(t, helper("uring-client"), clientBin, "-addr", fmt.Sprintf("%s:%d", host, port), "-send", "12345", "-recv", "7000")
			local := netip.MustParseAddrPort(c.expect("LOCAL")[0])
			if done := c.expect("DONE"); done[0] != "12345" || done[1] != "7000" {
				t.Fatalf("client transfer: %v", done)
			}
			srv.expect("ACCEPTED")
			c.send("") // the client closes first
			srv.expect("SERVED")

			checkOutbound(t, tr, c, local, port)
			checkClose(t, tr.waitFor("client close", closeOf(c.pid())), jsonEvent{
				PID: c.pid(), Comm: "tsclient", Direction: "outbound", ClosedBy: "local",
				Saddr: local.Addr().String(), Sport: int(local.Port()), Daddr: local.Addr().String(), Dport: port,
			}, 12345, 7000)
			checkClose(t, tr.waitFor("server close", closeOf(srv.pid())), jsonEvent{
				PID: srv.pid(), Comm: "tsserver", Direction: "inbound", ClosedBy: "remote",
				Saddr: local.Addr().String(), Sport: int(local.Port()), Daddr: local.Addr().String(), Dport: port,
			}, 7000, 12345)
		})
	}
}

// An accept made with io_uring (IORING_OP_ACCEPT) never passes
// accept(2): it must be seen, with the process that submitted it, and the
// server's close attributed to it (not PID -).
func TestIOUringAccept(t *testing.T) {
	requireRoot(t)
	requireIOUring(t)
	for _, tc := range []struct{ name, listen string }{{"ipv4", "127.0.0.1:0"}, {"ipv6", "[::1]:0"}} {
		t.Run(tc.name, func(t *testing.T) {
			tr := startTracer(t)
			family, fam := "4", 4
			if strings.HasPrefix(tc.listen, "[") {
				family, fam = "6", 6
			}
			srv := startProc(t, helper("uring-server"), serverBin, "-addr", tc.listen, "-n", "2", "-recv", "100", "-send", "200", "-wait-eof")
			port := atoi(t, srv.expect("READY")[0])
			host := strings.TrimSuffix(strings.TrimPrefix(tc.listen, "["), "]:0")
			host = strings.TrimSuffix(host, ":0")
			addr := netip.AddrPortFrom(netip.MustParseAddr(host), uint16(port))
			for i := 0; i < 2; i++ {
				c := client(t, "-family", family, "-addr", addr.String(), "-send", "100", "-recv", "200")
				local := netip.MustParseAddrPort(c.expect("LOCAL")[0])
				c.expect("DONE")
				peer := netip.MustParseAddrPort(srv.expect("ACCEPTED")[0])
				srv.expect("SERVED")
				if peer != local {
					t.Fatalf("server saw %v, client is %v", peer, local)
				}
				match := func(typ string) func(jsonEvent) bool {
					return func(e jsonEvent) bool { return byPID(typ, srv.pid())(e) && e.Sport == int(local.Port()) }
				}
				checkEvent(t, tr.waitFor("accept", match("accept")), jsonEvent{
					EventType: "accept", PID: srv.pid(), Comm: "tsserver", Family: fam,
					Saddr: local.Addr().String(), Sport: int(local.Port()), Daddr: host, Dport: port,
				})
				checkClose(t, tr.waitFor("server close", match("close")), jsonEvent{
					PID: srv.pid(), Comm: "tsserver", Direction: "inbound", ClosedBy: "remote",
					Saddr: local.Addr().String(), Sport: int(local.Port()), Daddr: host, Dport: port,
				}, 200, 100)
				if n := len(tr.all(match("accept"))); n != 1 {
					t.Errorf("%d accept events for %v, want 1:\n%s", n, local, tr.dump())
				}
			}
		})
	}
}

// tcpExt reads one TcpExt counter from /proc/net/netstat.
func tcpExt(name string) (int, error) {
	f, err := os.Open("/proc/net/netstat")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		keys := strings.Fields(sc.Text())
		if !sc.Scan() {
			break
		}
		vals := strings.Fields(sc.Text())
		if len(keys) == 0 || keys[0] != "TcpExt:" || len(vals) != len(keys) {
			continue
		}
		for i, k := range keys {
			if k == name {
				return strconv.Atoi(vals[i])
			}
		}
	}
	return 0, errors.New("TcpExt " + name + " not found")
}

// TCP Fast Open: sendto(MSG_FASTOPEN) connects without connect(2), and
// TCP_FASTOPEN_CONNECT makes connect(2) return before any SYN. Each must
// give one connect and its established outcome, with the client's pid and
// real ports.
func TestFastOpenConnect(t *testing.T) {
	requireRoot(t)
	enableFastOpen(t)

	tr := startTracer(t)
	srv, port := server(t, "-addr", "127.0.0.1:0", "-fastopen", "16", "-n", "3", "-recv", "100", "-send", "200")
	before, counterErr := tcpExt("TCPFastOpenActive")
	// The first sendto asks for a cookie (its SYN carries none), the
	// second sends its data in the SYN with it.
	for _, mode := range []string{"sendto", "sendto", "connect"} {
		t.Logf("Fast Open with %s", mode)
		func() {
			c := startProc(t, helper("fastopen-client"), clientBin, "-mode", mode, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-send", "100", "-recv", "200")
			local := netip.MustParseAddrPort(c.expect("LOCAL")[0])
			if done := c.expect("DONE"); done[1] != "200" {
				t.Fatalf("client transfer: %v", done)
			}
			srv.expect("ACCEPTED")
			srv.expect("SERVED")
			checkOutbound(t, tr, c, local, port)
		}()
	}
	if after, err := tcpExt("TCPFastOpenActive"); err == nil && counterErr == nil {
		if after-before < 2 {
			t.Errorf("TcpExt TCPFastOpenActive rose by %d: the SYNs did not carry data, so this did not test Fast Open", after-before)
		}
	} else {
		t.Logf("could not check that Fast Open was used: %v %v", counterErr, err)
	}
}

// doctor says how io_uring is seen, and the tracepoint backend's accept
// point attaches io_uring's completion tracepoint wherever io_uring works.
func TestDoctorIOUring(t *testing.T) {
	requireRoot(t)
	requireIOUring(t)
	r := runDoctor(t)
	if !r.IOUring.OK || !strings.HasPrefix(r.IOUring.Detail, "accepts: raw_tracepoint:io_uring_complete, with") {
		t.Errorf("doctor io_uring: %+v", r.IOUring)
	}
	for _, b := range r.Backends {
		for _, p := range b.Points {
			if b.Backend == "tracepoint" && p.Point == "accept" && !slices.Contains(p.Hooks, "raw_tracepoint:io_uring_complete") {
				t.Errorf("tracepoint accept hooks %v (ok %v, %s): no raw_tracepoint:io_uring_complete", p.Hooks, p.OK, p.Reason)
			}
		}
	}
}

// A Fast Open server accepts a connection as soon as its SYN brings data
// and a valid cookie, before the handshake ends (the child socket is in
// SYN_RECV): its close must still name the process that accepted it.
// The client delays its ACK of the SYN-ACK, so the accept comes first.
func TestFastOpenServerAcceptsBeforeHandshake(t *testing.T) {
	requireRoot(t)
	enableFastOpen(t)

	tr := startTracer(t)
	srv, port := server(t, "-addr", "127.0.0.1:0", "-fastopen", "16", "-n", "2", "-recv", "100", "-send", "200", "-wait-eof")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// The first connection gets the cookie; the second sends its data in
	// the SYN with it.
	for i, args := range [][]string{{"-addr", addr, "-recv", "200"}, {"-addr", addr, "-recv", "200", "-late-ack"}} {
		c := startProc(t, helper("fastopen-client"), clientBin, args...)
		local := netip.MustParseAddrPort(c.expect("LOCAL")[0])
		c.expect("DONE")
		srv.expect("ACCEPTED")
		c.send("") // the client closes first
		srv.expect("SERVED")
		match := func(typ string) func(jsonEvent) bool {
			return func(e jsonEvent) bool { return byPID(typ, srv.pid())(e) && e.Sport == int(local.Port()) }
		}
		checkEvent(t, tr.waitFor("accept", match("accept")), jsonEvent{
			EventType: "accept", PID: srv.pid(), Comm: "tsserver", Family: 4,
			Saddr: "127.0.0.1", Sport: int(local.Port()), Daddr: "127.0.0.1", Dport: port,
		})
		cl := tr.waitFor(fmt.Sprintf("server close %d", i), func(e jsonEvent) bool {
			return e.EventType == "close" && e.Sport == int(local.Port()) && e.Direction == "inbound"
		})
		checkClose(t, cl, jsonEvent{
			PID: srv.pid(), Comm: "tsserver", Direction: "inbound", ClosedBy: "remote",
			Saddr: "127.0.0.1", Sport: int(local.Port()), Daddr: "127.0.0.1", Dport: port,
		}, 200, 100)
	}
}

// enableFastOpen turns TCP Fast Open on for clients and servers
// (net.ipv4.tcp_fastopen=3) for the test, and back as it was after.
func enableFastOpen(t *testing.T) {
	t.Helper()
	const sysctl = "/proc/sys/net/ipv4/tcp_fastopen"
	old, err := os.ReadFile(sysctl)
	if err != nil {
		t.Skipf("no %s: %v", sysctl, err)
	}
	if err := os.WriteFile(sysctl, []byte("3"), 0o644); err != nil {
		t.Fatalf("enabling Fast Open: %v", err)
	}
	t.Cleanup(func() { os.WriteFile(sysctl, old, 0o644) })
}

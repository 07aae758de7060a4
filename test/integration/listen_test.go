package integration

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// pyListener is a Python server: it listens (with backlog 5, as
// http.server's socketserver does) on family/addr, prints its port, and
// closes the listener when stdin gets a line.
const pyListener = `
import socket, sys
fam = socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if fam == socket.AF_INET6:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(sys.argv[3]))
s.bind((sys.argv[2], 0))
s.listen(5)
print("READY", s.getsockname()[1], flush=True)
sys.stdin.readline()
s.close()
print("CLOSED", flush=True)
sys.stdin.readline()
`

func somaxconn(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// listen and unlisten events for a Python server and a Go server, IPv4,
// IPv6 (v6only) and dual-stack: the exact process, address, port and
// backlog (Python's listen(5); Go listens with net.core.somaxconn).
func TestListenEvents(t *testing.T) {
	requireRoot(t)
	tr := startTracer(t, "--type", "listen,unlisten")
	max := somaxconn(t)
	type listener struct {
		name, comm, saddr string
		family, backlog   int
		v6only            bool
		start             func(t *testing.T) (p *proc, port int)
		stop              func(p *proc)
	}
	py := func(args ...string) func(*testing.T) (*proc, int) {
		return func(t *testing.T) (*proc, int) {
			if _, err := exec.LookPath("python3"); err != nil {
				// The kernel matrix's guests have no Python; the Go
				// server's cases run there.
				t.Skipf("no python3 here: %v", err)
			}
			p := startProc(t, nil, "python3", append([]string{"-c", pyListener}, args...)...)
			return p, atoi(t, p.expect("READY")[0])
		}
	}
	pyStop := func(p *proc) { p.send(""); p.expect("CLOSED") }
	goSrv := func(addr string) func(*testing.T) (*proc, int) {
		return func(t *testing.T) (*proc, int) { return server(t, "-mode", "go", "-n", "0", "-addr", addr) }
	}
	goStop := func(p *proc) { p.send(""); p.waitExit() }
	for _, l := range []listener{
		{"python IPv4", "python3", "127.0.0.1", 4, 5, false, py("4", "127.0.0.1", "0"), pyStop},
		{"python IPv6 v6only", "python3", "::1", 6, 5, true, py("6", "::1", "1"), pyStop},
		{"python dual-stack", "python3", "::", 6, 5, false, py("6", "::", "0"), pyStop},
		{"go IPv4", "tsserver", "127.0.0.1", 4, max, false, goSrv("127.0.0.1:0"), goStop},
		{"go dual-stack", "tsserver", "::", 6, max, false, goSrv(":0"), goStop},
	} {
		t.Run(l.name, func(t *testing.T) {
			p, port := l.start(t)
			check := func(typ string) {
				t.Helper()
				got := tr.waitFor(typ, func(e jsonEvent) bool { return e.EventType == typ && e.Sport == port })
				if got.PID != p.pid() || got.Comm != l.comm || got.Family != l.family || got.Saddr != l.saddr ||
					got.Daddr != "" || got.Dport != 0 || got.Direction != "inbound" || got.Backlog == nil ||
					int(*got.Backlog) != l.backlog || got.V6Only != l.v6only || got.PeerPID != 0 {
					t.Errorf("%s\n got: %s backlog %v v6only %v\nwant: pid %d comm %s %s:%d family %d backlog %d v6only %v",
						typ, got, deref(got.Backlog), got.V6Only, p.pid(), l.comm, l.saddr, port, l.family, l.backlog, l.v6only)
				}
			}
			check("listen")
			if n := len(tr.all(func(e jsonEvent) bool { return e.EventType == "unlisten" && e.Sport == port })); n != 0 {
				t.Errorf("%d unlisten events before the listener closed", n)
			}
			l.stop(p)
			check("unlisten")
		})
	}
	for _, e := range tr.all(func(e jsonEvent) bool { return e.EventType != "listen" && e.EventType != "unlisten" }) {
		t.Errorf("--type listen,unlisten let through %s", e)
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// Loopback pairs over IPv4, IPv6 and dual-stack (both ways round), each
// end closing first: every event of each end names the other end's
// process, the connect already (from the listener tuxscope saw start).
func TestPeerLinks(t *testing.T) {
	requireRoot(t)
	tr := startTracer(t, "--comm", "tsserver,tsclient")
	for _, c := range []struct {
		name       string
		server     []string
		clientArgs []string
		dst        string
	}{
		{"ipv4", []string{"-family", "4", "-addr", "127.0.0.1:0"}, []string{"-family", "4"}, "127.0.0.1"},
		{"ipv6", []string{"-family", "6", "-addr", "[::1]:0"}, []string{"-family", "6"}, "[::1]"},
		{"v4 client, dual-stack server", []string{"-family", "6", "-dualstack", "-addr", "[::]:0"}, []string{"-family", "4"}, "127.0.0.1"},
		{"v6 client to v4-mapped, v4 server", []string{"-family", "4", "-addr", "0.0.0.0:0"}, []string{"-family", "6"}, "[::ffff:127.0.0.1]"},
	} {
		for _, serverFirst := range []bool{false, true} {
			name := c.name + ", client closes first"
			srvArgs, cliArgs := []string{"-recv", "300", "-send", "500", "-wait-eof"}, []string{"-send", "300", "-recv", "500"}
			if serverFirst {
				name = c.name + ", server closes first"
				srvArgs, cliArgs = []string{"-recv", "300", "-send", "500"}, []string{"-send", "300", "-recv", "500", "-hold"}
			}
			t.Run(name, func(t *testing.T) {
				srv, port := server(t, append(c.server, srvArgs...)...)
				tr.waitFor("listen", func(e jsonEvent) bool { return e.EventType == "listen" && e.Sport == port })
				cl := client(t, append(c.clientArgs, append([]string{"-addr", fmt.Sprintf("%s:%d", c.dst, port)}, cliArgs...)...)...)
				lp := int(netip.MustParseAddrPort(cl.expect("LOCAL")[0]).Port())
				cl.expect("DONE")
				srv.expect("ACCEPTED")
				srv.expect("SERVED")
				cl.stdin.Close()
				cp, sp := cl.pid(), srv.pid()
				for _, w := range []struct {
					typ, peerComm string
					pid, peer     int
				}{
					{"connect", "tsserver", cp, sp}, {"established", "tsserver", cp, sp}, {"accept", "tsclient", sp, cp},
					{"close", "tsserver", cp, sp}, {"close", "tsclient", sp, cp},
				} {
					got := tr.waitFor(w.typ, func(e jsonEvent) bool { return e.EventType == w.typ && e.PID == w.pid && e.Sport == lp })
					if got.PeerPID != w.peer || got.PeerComm != w.peerComm {
						t.Errorf("%s of pid %d: peer %d/%q, want %d/%q", w.typ, w.pid, got.PeerPID, got.PeerComm, w.peer, w.peerComm)
					}
				}
			})
		}
	}
}

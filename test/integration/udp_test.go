package integration

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tuxscope/tuxscope/internal/schema"
)

// UDP helpers: raw sockets, so each test chooses the family, connected
// or not, and exactly what is sent.

// helperUDPServer binds -addr (a dual-stack AF_INET6 socket for -dual),
// prints READY PORT, answers each of -n datagrams with -reply bytes, then
// prints SERVED, closes the socket and prints CLOSED.
func helperUDPServer(args []string) error {
	fs := flag.NewFlagSet("udp-server", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "")
	n := fs.Int("n", 1, "")
	reply := fs.Int("reply", 50, "")
	dual := fs.Bool("dual", false, "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ap, err := netip.ParseAddrPort(*addr)
	if err != nil {
		return err
	}
	family := unix.AF_INET
	if ap.Addr().Is6() || *dual {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	if family == unix.AF_INET6 {
		v6only := 1
		if *dual {
			v6only = 0
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only); err != nil {
			return err
		}
	}
	if *dual && ap.Addr().Is4() {
		ap = netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), ap.Port())
	}
	sa, err := sockaddr(ap, family)
	if err != nil {
		return err
	}
	if err := unix.Bind(fd, sa); err != nil {
		return err
	}
	local, err := unix.Getsockname(fd)
	if err != nil {
		return err
	}
	fmt.Printf("READY %d\n", addrOf(local).Port())
	buf := make([]byte, 65536)
	out := make([]byte, *reply)
	for i := 0; i < *n; i++ {
		_, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return err
		}
		if err := unix.Sendto(fd, out, 0, from); err != nil {
			return err
		}
	}
	fmt.Println("SERVED")
	unix.Close(fd)
	fmt.Println("CLOSED")
	bufio.NewReader(os.Stdin).ReadString('\n')
	return nil
}

// helperUDPClient sends -n datagrams of -size bytes to -addr from a
// socket of -family (4 or 6), with connect() and send() for -connect,
// sendto() otherwise, reads -n replies, prints LOCAL ADDR:PORT and, with
// -hold, waits for a line on stdin before it closes the socket and prints
// CLOSED.
func helperUDPClient(args []string) error {
	fs := flag.NewFlagSet("udp-client", flag.ContinueOnError)
	addr := fs.String("addr", "", "")
	fam := fs.Int("family", 4, "")
	connect := fs.Bool("connect", false, "")
	n := fs.Int("n", 1, "")
	size := fs.Int("size", 100, "")
	hold := fs.Bool("hold", false, "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ap, err := netip.ParseAddrPort(*addr)
	if err != nil {
		return err
	}
	family := familyOf(*fam)
	if family == unix.AF_INET6 && ap.Addr().Is4() {
		ap = netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), ap.Port()) // ::ffff:a.b.c.d
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5})
	sa, err := sockaddr(ap, family)
	if err != nil {
		return err
	}
	if *connect {
		if err := unix.Connect(fd, sa); err != nil {
			return err
		}
	}
	msg := make([]byte, *size)
	buf := make([]byte, 65536)
	for i := 0; i < *n; i++ {
		if *connect {
			_, err = unix.Write(fd, msg)
		} else {
			err = unix.Sendto(fd, msg, 0, sa)
		}
		if err != nil {
			return err
		}
		if _, _, err := unix.Recvfrom(fd, buf, 0); err != nil {
			return fmt.Errorf("reply %d: %w", i, err)
		}
	}
	local, err := unix.Getsockname(fd)
	if err != nil {
		return err
	}
	fmt.Printf("LOCAL %s\n", addrOf(local))
	if *hold {
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	unix.Close(fd)
	fmt.Println("CLOSED")
	return nil
}

func udpServer(t *testing.T, args ...string) (*proc, int) {
	t.Helper()
	p := startProc(t, helper("udp-server"), serverBin, args...)
	return p, atoi(t, p.expect("READY")[0])
}

func udpClient(t *testing.T, args ...string) *proc {
	t.Helper()
	return startProc(t, helper("udp-client"), clientBin, args...)
}

// udpFlow is what a test expects of one udp_close.
type udpFlow struct {
	pid                  int
	comm                 string
	family               int
	saddr                string
	sport                int
	daddr                string
	dport                int
	direction            string
	pktsSent, pktsRecv   uint64
	bytesSent, bytesRecv uint64
	end                  string
}

// checkUDPFlow waits for the udp_open and udp_close of the flow whose
// SRC and DST are want's and checks every field of the close.
func checkUDPFlow(t *testing.T, tr *tracer, want udpFlow) {
	t.Helper()
	match := func(typ string) func(jsonEvent) bool {
		return func(e jsonEvent) bool {
			return e.EventType == typ && e.Saddr == want.saddr && e.Sport == want.sport && e.Daddr == want.daddr && e.Dport == want.dport && e.PID == want.pid
		}
	}
	open := tr.waitFor(fmt.Sprintf("udp_open %+v", want), match("udp_open"))
	if open.Proto != "udp" || open.Family != want.family || open.Direction != want.direction || open.Comm != want.comm {
		t.Errorf("udp_open: %s proto=%q", open, open.Proto)
	}
	c := tr.waitFor(fmt.Sprintf("udp_close %+v", want), match("udp_close"))
	if c.Proto != "udp" || c.Family != want.family || c.Direction != want.direction || c.Comm != want.comm ||
		u64(c.PacketsSent) != want.pktsSent || u64(c.PacketsReceived) != want.pktsRecv ||
		u64(c.BytesSent) != want.bytesSent || u64(c.BytesReceived) != want.bytesRecv || c.End != want.end || c.DurationNs == nil {
		t.Errorf("udp_close: %s proto=%q packets %d/%d end=%q, want %+v", c, c.Proto, u64(c.PacketsSent), u64(c.PacketsReceived), c.End, want)
	}
	if n := len(tr.all(match("udp_close"))); n != 1 {
		t.Errorf("%d udp_close events for %+v, want 1", n, want)
	}
}

func splitAddrPort(t *testing.T, s string) (string, int) {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap.Addr().String(), int(ap.Port())
}

// TestUDPFlows: Go clients and servers over loopback, IPv4, IPv6 and
// dual-stack, connected and not: each end's flow, with its own process,
// exact packets and payload bytes each way, closed with its socket; a
// server with three peers has three flows; a flow left idle ends after
// --udp-idle.
func TestUDPFlows(t *testing.T) {
	requireRoot(t)
	tr := startTracer(t, "--proto", "udp", "--udp-idle", "2s")

	for _, tc := range []struct {
		name          string
		server        []string
		clientFamily  int
		connect       bool
		addr          string // the client's destination host
		family        int    // the flows' family
		serverPeer    string // the client's address as the server sees it
		clientAddrFmt string
	}{
		{"ipv4-unconnected", []string{"-addr", "127.0.0.1:0"}, 4, false, "127.0.0.1", 4, "", ""},
		{"ipv4-connected", []string{"-addr", "127.0.0.1:0"}, 4, true, "127.0.0.1", 4, "", ""},
		{"ipv6-unconnected", []string{"-addr", "[::1]:0"}, 6, false, "::1", 6, "", ""},
		{"ipv6-connected", []string{"-addr", "[::1]:0"}, 6, true, "::1", 6, "", ""},
		// an IPv4 client to a dual-stack server: the server's flow is
		// family 6, its peer ::ffff:127.0.0.1
		{"dual-stack-server", []string{"-addr", "[::]:0", "-dual"}, 4, false, "127.0.0.1", 4, "::ffff:127.0.0.1", ""},
		// a dual-stack client socket to an IPv4 server
		{"dual-stack-client", []string{"-addr", "127.0.0.1:0"}, 6, true, "127.0.0.1", 6, "", "::ffff:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n, size, reply = 4, 100, 50
			srv, port := udpServer(t, append(tc.server, "-n", fmt.Sprint(n), "-reply", fmt.Sprint(reply))...)
			dst := netip.AddrPortFrom(netip.MustParseAddr(tc.addr), uint16(port)).String()
			c := udpClient(t, "-addr", dst, "-family", fmt.Sprint(tc.clientFamily), fmt.Sprintf("-connect=%v", tc.connect), "-n", fmt.Sprint(n), "-size", fmt.Sprint(size))
			laddr, lport := splitAddrPort(t, c.expect("LOCAL")[0])
			if netip.MustParseAddr(laddr).IsUnspecified() { // unbound: the packets' source
				laddr = tc.clientAddrFmt + tc.addr
			}
			c.expect("CLOSED")
			srv.expect("SERVED")
			srv.expect("CLOSED")
			daddr := tc.clientAddrFmt + tc.addr
			checkUDPFlow(t, tr, udpFlow{pid: c.pid(), comm: "tsclient", family: tc.family, saddr: laddr, sport: lport, daddr: daddr, dport: port,
				direction: "outbound", pktsSent: n, pktsRecv: n, bytesSent: n * size, bytesRecv: n * reply, end: "closed"})
			// The server's flow: its first packet came in, so SRC is
			// the client.
			family, peer := tc.family, tc.addr
			switch {
			case tc.serverPeer != "": // a dual-stack server
				family, peer, laddr = 6, tc.serverPeer, tc.serverPeer
			case tc.clientAddrFmt != "": // an IPv4 server
				family, laddr = 4, strings.TrimPrefix(laddr, "::ffff:")
			}
			checkUDPFlow(t, tr, udpFlow{pid: srv.pid(), comm: "tsserver", family: family, saddr: laddr, sport: lport, daddr: peer, dport: port,
				direction: "inbound", pktsSent: n, pktsRecv: n, bytesSent: n * reply, bytesRecv: n * size, end: "closed"})
		})
	}

	// One server socket, three peers: three flows, each with its counts.
	t.Run("server-three-peers", func(t *testing.T) {
		srv, port := udpServer(t, "-addr", "127.0.0.1:0", "-n", "3", "-reply", "7")
		var peers []int
		var pids []int
		for i := range 3 {
			c := udpClient(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-n", "1", "-size", fmt.Sprint(10+i))
			_, p := splitAddrPort(t, c.expect("LOCAL")[0])
			c.expect("CLOSED")
			peers, pids = append(peers, p), append(pids, c.pid())
		}
		srv.expect("SERVED")
		srv.expect("CLOSED")
		for i, p := range peers {
			checkUDPFlow(t, tr, udpFlow{pid: srv.pid(), comm: "tsserver", family: 4, saddr: "127.0.0.1", sport: p, daddr: "127.0.0.1", dport: port,
				direction: "inbound", pktsSent: 1, pktsRecv: 1, bytesSent: 7, bytesRecv: uint64(10 + i), end: "closed"})
			checkUDPFlow(t, tr, udpFlow{pid: pids[i], comm: "tsclient", family: 4, saddr: "127.0.0.1", sport: p, daddr: "127.0.0.1", dport: port,
				direction: "outbound", pktsSent: 1, pktsRecv: 1, bytesSent: uint64(10 + i), bytesRecv: 7, end: "closed"})
		}
		if n := len(tr.all(func(e jsonEvent) bool { return e.EventType == "udp_close" && e.PID == srv.pid() })); n != 3 {
			t.Errorf("the server has %d udp_close events, want 3 (one per peer)", n)
		}
	})

	// A socket kept open without traffic: its flow ends after --udp-idle
	// (2s), not at its close.
	t.Run("idle", func(t *testing.T) {
		srv, port := udpServer(t, "-addr", "127.0.0.1:0", "-n", "1", "-reply", "9")
		c := udpClient(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-n", "1", "-size", "33", "-hold")
		_, lport := splitAddrPort(t, c.expect("LOCAL")[0])
		srv.expect("SERVED")
		start := time.Now()
		checkUDPFlow(t, tr, udpFlow{pid: c.pid(), comm: "tsclient", family: 4, saddr: "127.0.0.1", sport: lport, daddr: "127.0.0.1", dport: port,
			direction: "outbound", pktsSent: 1, pktsRecv: 1, bytesSent: 33, bytesRecv: 9, end: "idle"})
		if d := time.Since(start); d > 6*time.Second {
			t.Errorf("the idle flow ended %v after its last packet, want about 2-3s", d)
		}
		c.send("close")
		c.expect("CLOSED")
		time.Sleep(300 * time.Millisecond)
		if n := len(tr.all(byPID("udp_close", c.pid()))); n != 1 {
			t.Errorf("%d udp_close events for the idle client, want 1 (closing an ended flow's socket ends nothing more)", n)
		}
	})

	// --proto udp: nothing of TCP's, though the helpers' Go runtime and
	// the host make TCP connections all the while.
	if tcp := tr.all(func(e jsonEvent) bool {
		return e.Proto != "udp" && e.EventType != "open_at_exit" && e.EventType != "lost"
	}); len(tcp) > 0 {
		t.Errorf("--proto udp printed %d events that are not UDP flows' (first: %s)", len(tcp), tcp[0])
	}
}

// TestUDPFlowsAtExit: a flow still open when tuxscope stops (a socket
// held, with no time to go idle) ends then, with end "exit" and what it
// carried so far, not silently; a flow that already ended is not ended
// again.
func TestUDPFlowsAtExit(t *testing.T) {
	requireRoot(t)
	tr := startTracer(t, "--proto", "udp")
	srv, port := udpServer(t, "-addr", "127.0.0.1:0", "-n", "1", "-reply", "9")
	c := udpClient(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-n", "1", "-size", "33", "-hold")
	_, lport := splitAddrPort(t, c.expect("LOCAL")[0])
	srv.expect("SERVED")
	srv.expect("CLOSED")
	held := udpFlow{pid: c.pid(), comm: "tsclient", family: 4, saddr: "127.0.0.1", sport: lport, daddr: "127.0.0.1", dport: port,
		direction: "outbound", pktsSent: 1, pktsRecv: 1, bytesSent: 33, bytesRecv: 9}
	closed := udpFlow{pid: srv.pid(), comm: "tsserver", family: 4, saddr: "127.0.0.1", sport: lport, daddr: "127.0.0.1", dport: port,
		direction: "inbound", pktsSent: 1, pktsRecv: 1, bytesSent: 9, bytesRecv: 33, end: "closed"}
	checkUDPFlow(t, tr, closed)
	tr.waitFor("the held flow's udp_open", byPID("udp_open", c.pid()))
	if n := len(tr.all(byPID("udp_close", c.pid()))); n != 0 {
		t.Fatalf("the held flow ended before tuxscope stopped: %d udp_close", n)
	}
	if code := tr.stop(); code != 0 {
		t.Errorf("exit code %d; stderr:\n%s", code, tr.stderrText())
	}
	held.end = "exit"
	checkUDPFlow(t, tr, held)
	if n := len(tr.all(byPID("udp_close", srv.pid()))); n != 1 {
		t.Errorf("the server's closed flow has %d udp_close events, want 1", n)
	}
	c.send("close")
	c.expect("CLOSED")
}

// TestUDPFlowsPython: Python's socket module, a client and a server
// process, IPv4 and IPv6, sendto() and connect()+send().
func TestUDPFlowsPython(t *testing.T) {
	requireRoot(t)
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("needs python3")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "udp.py")
	os.WriteFile(script, []byte(`import socket, sys
role, fam, host, port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
af = socket.AF_INET if fam == 4 else socket.AF_INET6
s = socket.socket(af, socket.SOCK_DGRAM)
if role == "server":
    s.bind((host, port))
    print("READY", s.getsockname()[1], flush=True)
    for i in range(3):
        data, peer = s.recvfrom(4096)
        s.sendto(b"r" * (2 * len(data)), peer)
    s.close()
    print("CLOSED", flush=True)
    sys.stdin.readline()
else:
    s.settimeout(5)
    if sys.argv[5] == "connect":
        s.connect((host, port))
    for n in (10, 20, 30):
        if sys.argv[5] == "connect":
            s.send(b"q" * n)
        else:
            s.sendto(b"q" * n, (host, port))
        s.recv(4096)
    print("LOCAL", s.getsockname()[1], flush=True)
    s.close()
    print("CLOSED", flush=True)
`), 0o644)
	tr := startTracer(t, "--proto", "udp")
	for _, tc := range []struct {
		fam  int
		host string
		mode string
	}{{4, "127.0.0.1", "sendto"}, {4, "127.0.0.1", "connect"}, {6, "::1", "sendto"}, {6, "::1", "connect"}} {
		t.Run(fmt.Sprintf("ipv%d-%s", tc.fam, tc.mode), func(t *testing.T) {
			srv := startProc(t, nil, py, script, "server", fmt.Sprint(tc.fam), tc.host, "0")
			port := atoi(t, srv.expect("READY")[0])
			c := startProc(t, nil, py, script, "client", fmt.Sprint(tc.fam), tc.host, fmt.Sprint(port), tc.mode)
			lport := atoi(t, c.expect("LOCAL")[0])
			c.expect("CLOSED")
			srv.expect("CLOSED")
			// 10+20+30 bytes out, twice that back
			checkUDPFlow(t, tr, udpFlow{pid: c.pid(), comm: "python3", family: tc.fam, saddr: tc.host, sport: lport, daddr: tc.host, dport: port,
				direction: "outbound", pktsSent: 3, pktsRecv: 3, bytesSent: 60, bytesRecv: 120, end: "closed"})
			checkUDPFlow(t, tr, udpFlow{pid: srv.pid(), comm: "python3", family: tc.fam, saddr: tc.host, sport: lport, daddr: tc.host, dport: port,
				direction: "inbound", pktsSent: 3, pktsRecv: 3, bytesSent: 120, bytesRecv: 60, end: "closed"})
		})
	}
}

// TestUDPFlowsDNS: a lookup's UDP flow beside the DNS names. Go's
// resolver asks dnsmasq over a connected socket: the client's flow has
// its pid, one query out and one answer in; dnsmasq's socket was bound
// before tuxscope, so its flow opens with pid 0 (unknown) and is named
// by its recvmsg() by the time it ends, idle; the two ends' payload bytes
// agree exactly. The connect that follows still has its hostname.
func TestUDPFlowsDNS(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("needs dig (dnsutils)")
	}
	rc := dnsServer(t)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(rc), "pid"))
	if err != nil {
		t.Fatal(err)
	}
	dnsmasq := atoi(t, strings.TrimSpace(string(b)))
	_, port := server(t, "-addr", "127.0.0.10:0", "-n", "1")
	tr := startTracer(t, "--dns", "--udp-idle", "1s")

	c := client(t, "-resolve", "web.test", "-dns-server", "127.0.0.2:53", "-port", fmt.Sprint(port))
	c.expect("RESOLVED")
	c.expect("LOCAL")
	if ev := tr.waitFor("the connect", byPID("connect", c.pid())); ev.Hostname != "web.test" {
		t.Errorf("connect: hostname %q, want web.test", ev.Hostname)
	}
	tr.waitFor("the DNS answer", byPID("dns", c.pid()))
	toDNS := func(typ string) func(jsonEvent) bool {
		return func(e jsonEvent) bool {
			return e.EventType == typ && e.PID == c.pid() && e.Daddr == "127.0.0.2" && e.Dport == 53
		}
	}
	open := tr.waitFor("the client's udp_open", toDNS("udp_open"))
	cl := tr.waitFor("the client's udp_close", toDNS("udp_close"))
	if cl.Proto != "udp" || cl.Direction != "outbound" || cl.Comm != "tsclient" || cl.Sport != open.Sport ||
		u64(cl.PacketsSent) != 1 || u64(cl.PacketsReceived) != 1 || u64(cl.BytesSent) == 0 || u64(cl.BytesReceived) <= u64(cl.BytesSent) {
		t.Errorf("client's udp_close: %s packets %d/%d", cl, u64(cl.PacketsSent), u64(cl.PacketsReceived))
	}
	fromClient := func(typ string) func(jsonEvent) bool {
		return func(e jsonEvent) bool {
			return e.EventType == typ && e.Saddr == "127.0.0.1" && e.Sport == open.Sport && e.Daddr == "127.0.0.2" && e.Dport == 53 && e.Direction == "inbound"
		}
	}
	if so := tr.waitFor("dnsmasq's udp_open", fromClient("udp_open")); so.PID != 0 {
		t.Errorf("dnsmasq's udp_open: pid %d, want 0 (its socket was bound before tuxscope and it had not received yet)", so.PID)
	}
	sc := tr.waitFor("dnsmasq's udp_close", fromClient("udp_close"))
	if sc.PID != dnsmasq || sc.Comm != "dnsmasq" || sc.End != "idle" || u64(sc.PacketsReceived) != 1 || u64(sc.PacketsSent) != 1 ||
		u64(sc.BytesReceived) != u64(cl.BytesSent) || u64(sc.BytesSent) != u64(cl.BytesReceived) {
		t.Errorf("dnsmasq's udp_close: %s end=%q packets %d/%d bytes %d/%d, want pid %d, idle, the client's counts mirrored",
			sc, sc.End, u64(sc.PacketsSent), u64(sc.PacketsReceived), u64(sc.BytesSent), u64(sc.BytesReceived), dnsmasq)
	}
}

// TestUDPFlowsServe: the agent counts UDP flows per process and
// direction: flows, datagrams and payload bytes each way.
func TestUDPFlowsServe(t *testing.T) {
	requireRoot(t)
	_, _, addr := startServe(t, "--proto", "udp")
	srv, port := udpServer(t, "-addr", "127.0.0.1:0", "-n", "3", "-reply", "50")
	c := udpClient(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-n", "3", "-size", "100")
	c.expect("LOCAL")
	c.expect("CLOSED")
	srv.expect("SERVED")
	srv.expect("CLOSED")
	const cli = `{comm="tsclient",container="",direction="outbound",namespace="",pod=""}`
	const sv = `{comm="tsserver",container="",direction="inbound",namespace="",pod=""}`
	want := []string{
		"tuxscope_udp_flows_total" + cli + " 1\n", "tuxscope_udp_flows_total" + sv + " 1\n",
		"tuxscope_udp_sent_packets_total" + cli + " 3\n", "tuxscope_udp_received_packets_total" + cli + " 3\n",
		"tuxscope_udp_sent_bytes_total" + cli + " 300\n", "tuxscope_udp_received_bytes_total" + cli + " 150\n",
		"tuxscope_udp_sent_bytes_total" + sv + " 150\n", "tuxscope_udp_received_bytes_total" + sv + " 300\n",
	}
	var body string
	waitUntil(t, "tuxscope serve to count the UDP flows", func() bool {
		_, body = httpGet(t, "http://"+addr+"/metrics")
		for _, w := range want {
			if !strings.Contains(body, w) {
				return false
			}
		}
		return true
	})
	if strings.Contains(body, `tuxscope_connections_total{comm="tsclient"`) {
		t.Errorf("UDP flows counted as TCP connections:\n%s", body)
	}
}

// TestUDPFlowsSummary: --summary has a row per process and UDP peer,
// marked proto udp, with its flows and payload bytes.
func TestUDPFlowsSummary(t *testing.T) {
	requireRoot(t)
	// The server binds after tuxscope started, so its flow's udp_open
	// names it (one bound before would open with pid 0, see
	// TestUDPFlowsDNS): --port cannot select it, --comm does.
	cmd := netCommand("--summary", "--format", "json", "--duration", "3", "--proto", "udp", "--comm", "tsclient,tsserver")
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "tuxscope to attach", func() bool { return strings.Contains(stderr.String(), "attached") })
	srv, port := udpServer(t, "-addr", "127.0.0.1:0", "-n", "2", "-reply", "50")
	c := udpClient(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-n", "2", "-size", "100")
	c.expect("LOCAL")
	c.expect("CLOSED")
	srv.expect("SERVED")
	srv.expect("CLOSED")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tuxscope: %v: %s", err, stderr.String())
	}
	var r schema.Summary
	d := json.NewDecoder(strings.NewReader(strings.TrimSpace(stdout.String())))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil {
		t.Fatalf("summary %q: %v", stdout.String(), err)
	}
	got := map[int]schema.Peer{}
	for _, p := range r.Processes {
		for _, peer := range p.Peers {
			got[int(p.PID)] = peer
		}
	}
	if p := got[c.pid()]; p.Proto != "udp" || p.Direction != "outbound" || p.Port != uint16(port) || p.Connects != 1 || p.Closes != 1 || p.BytesSent != 200 || p.BytesReceived != 100 {
		t.Errorf("client's row: %+v\n%s", p, stdout.String())
	}
	if p := got[srv.pid()]; p.Proto != "udp" || p.Direction != "inbound" || p.Port != uint16(port) || p.Accepts != 1 || p.Closes != 1 || p.BytesSent != 100 || p.BytesReceived != 200 {
		t.Errorf("server's row: %+v\n%s", p, stdout.String())
	}
}

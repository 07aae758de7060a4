package integration

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// lossyHosts makes a client namespace (198.51.100.57) and a server one
// (198.51.100.58) joined by a veth pair, and loads rules (an nftables
// table named tshs) in the server's; the returned func deletes them.
func lossyHosts(t *testing.T, prefix, rules string) (nsClient, nsServer string, unload func()) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (nftables)")
	}
	nsA, nsB, _ := pathHosts(t, prefix, "198.51.100.57", "198.51.100.58")
	nft := exec.Command("ip", "netns", "exec", nsB, "nft", "-f", "-")
	nft.Stdin = strings.NewReader(rules)
	if out, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	return nsA, nsB, func() {
		if out, err := exec.Command("ip", "netns", "exec", nsB, "nft", "delete", "table", "inet", "tshs").CombinedOutput(); err != nil {
			t.Errorf("nft delete table: %v: %s", err, out)
		}
	}
}

// A server whose clients' handshake ACKs are lost: the server's nftables
// drops pure ACKs to its port, so its kernel retransmits the SYN-ACK of the
// half-open connection (after 1 s). accept() has not taken it, so no
// process holds it: its retransmit event names the listener's, the server
// that called listen() (not PID 0).
func TestSynAckRetransmitNamesTheListener(t *testing.T) {
	requireRoot(t)
	const port = 18931
	const clientIP, serverIP = "198.51.100.57", "198.51.100.58"
	rules := fmt.Sprintf("table inet tshs {\n chain in {\n  type filter hook input priority 0;\n  tcp dport %d tcp flags == ack drop\n }\n}\n", port)
	nsA, nsB, unload := lossyHosts(t, "sa", rules)

	// Started before the server: its listen() is what names it.
	tr := startTracer(t, "--port", fmt.Sprint(port), "--type", "retransmit,listen,accept")
	srv := startProc(t, helper("server"), "ip", "netns", "exec", nsB, serverBin,
		"-addr", fmt.Sprintf("%s:%d", serverIP, port), "-recv", "-1")
	srv.expect("READY")
	tr.waitFor("the server's listen", byPID("listen", srv.pid()))
	// The client's side completes (it sent its ACK); the server's stays
	// SYN_RECV, retransmitting its SYN-ACK.
	c := startProc(t, helper("client"), "ip", "netns", "exec", nsA, clientBin,
		"-addr", fmt.Sprintf("%s:%d", serverIP, port))
	local := netip.MustParseAddrPort(c.expect("LOCAL")[0])
	synack := func(e jsonEvent) bool {
		return e.EventType == "retransmit" && e.State == "SYN_RECV" && e.Sport == int(local.Port())
	}
	got := tr.waitFor("the server's SYN-ACK retransmit", synack)
	// Now let the handshake complete (the client's FIN carries the ACK)
	// and the server accept it.
	unload()
	c.stdin.Close()
	tr.waitFor("the server's accept", byPID("accept", srv.pid()))

	for i, e := range tr.all(synack) {
		// An inbound connection's source is the client's end.
		if e.PID != srv.pid() || e.Comm != "tsserver" || e.Direction != "inbound" ||
			e.Saddr != clientIP || e.Daddr != serverIP || e.Dport != port ||
			e.Retransmits == nil || *e.Retransmits != 1 {
			t.Errorf("SYN-ACK retransmit %d: %s, want pid %d tsserver inbound %s -> %s:%d, 1 retransmit", i, e, srv.pid(), local, serverIP, port)
		}
	}
	t.Logf("SYN-ACK retransmit: %s", got)
}

// A client whose first two SYNs are lost (the server's nftables drops
// them): it connects on the third (1 s and 2 s or 3 s later, as the
// kernel backs off). Its established event's
// syn_retrans is what its tcp_info counted right after connect(), and its
// retransmit events, in SYN_SENT, name it.
func TestSynRetransmits(t *testing.T) {
	requireRoot(t)
	const port = 18932
	const clientIP, serverIP = "198.51.100.57", "198.51.100.58"
	const dropped = 2
	rules := fmt.Sprintf("table inet tshs {\n chain in {\n  type filter hook input priority 0;\n  tcp dport %d tcp flags & (syn|ack) == syn numgen inc mod 1000000 < %d drop\n }\n}\n", port, dropped)
	nsA, nsB, _ := lossyHosts(t, "sr", rules)

	srv := startProc(t, helper("server"), "ip", "netns", "exec", nsB, serverBin,
		"-addr", fmt.Sprintf("%s:%d", serverIP, port))
	srv.expect("READY")
	tr := startTracer(t, "--port", fmt.Sprint(port), "--max-delay", "50ms")
	start := time.Now()
	c := startProc(t, helper("client"), "ip", "netns", "exec", nsA, clientBin,
		"-addr", fmt.Sprintf("%s:%d", serverIP, port), "-tcpinfo")
	local := netip.MustParseAddrPort(c.expect("LOCAL")[0])
	took := time.Since(start)
	total := atoi(t, c.expect("TCPINFO")[0])
	if total != dropped {
		t.Fatalf("tcp_info: %d retransmits after connect (in %v), want the %d SYNs dropped: the rule did not work", total, took, dropped)
	}
	ours := func(typ string) func(jsonEvent) bool {
		return func(e jsonEvent) bool {
			return e.EventType == typ && e.Sport == int(local.Port()) && e.Direction == "outbound"
		}
	}
	est := tr.waitFor("the client's established", ours("established"))
	if est.PID != c.pid() || est.SynRetrans == nil || int(*est.SynRetrans) != total {
		t.Errorf("established: %s syn_retrans %v, want pid %d and %d", est, est.SynRetrans, c.pid(), total)
	}
	c.stdin.Close()
	tr.waitFor("the client's close", ours("close"))
	rts := tr.all(ours("retransmit"))
	sum, syns := 0, 0
	for i, e := range rts {
		if e.PID != c.pid() || e.Comm != "tsclient" || e.Saddr != clientIP || e.Daddr != serverIP || e.Dport != port {
			t.Errorf("retransmit %d: %s, want pid %d tsclient %s -> %s:%d", i, e, c.pid(), clientIP, serverIP, port)
		}
		if e.State == "SYN_SENT" {
			syns++
		}
		if e.Retransmits != nil {
			sum += int(*e.Retransmits)
		}
	}
	if syns == 0 || sum != total {
		t.Errorf("%d retransmit events, %d in SYN_SENT, counting %d segments; want some in SYN_SENT counting %d:\n%s", len(rts), syns, sum, total, tr.dump())
	}
	t.Logf("connect took %v; syn_retrans %d; %d retransmit events (%d in SYN_SENT)", took, total, len(rts), syns)
}

// The listener table's capacity is not silent: a process that makes 4,100
// listeners (with --pid, only its own are remembered) finds the table's
// 4,096 slots full for the last 4, reported in band.
func TestListenerTableFullIsReported(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skipf("no python3 here: %v", err)
	}
	const n, capacity = 4100, 4096
	script := fmt.Sprintf(`import resource, socket, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (%[1]d + 64, %[1]d + 64))
sys.stdin.readline()
held = []
for _ in range(%[1]d):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    held.append(s)
print("READY", flush=True)
sys.stdin.readline()
`, n)
	p := startProc(t, nil, "python3", "-c", script)
	tr := startTracer(t, "--pid", fmt.Sprint(p.pid()), "--type", "retransmit")
	p.send("")
	p.expect("READY")
	waitUntil(t, "listeners not remembered reported", func() bool { return lostCount(tr, "listener_table_full") >= n-capacity })
	time.Sleep(1500 * time.Millisecond) // a second loss check: nothing more
	if got := lostCount(tr, "listener_table_full"); got != n-capacity {
		t.Errorf("listener_table_full: %d, want %d:\n%s", got, n-capacity, tr.dump())
	}
}

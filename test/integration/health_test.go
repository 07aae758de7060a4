package integration

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A lossy path: a test host whose nftables drops one in eight of the data
// segments reaching its server. The client sends 2 MB and reads a byte
// back (so every segment was acknowledged), prints its tcp_info and
// closes with a reset (no later RTT sample). Its retransmit events name it (not PID 0), are at most one per
// --max-delay window, and count, all told, what tcp_info counted; its
// close carries that total, the retransmitted bytes and the RTT.
func TestRetransmitsOnALossyPath(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (nftables)")
	}
	const clientIP, serverIP = "198.51.100.53", "198.51.100.54"
	nsA, nsB, _ := pathHosts(t, "rt", clientIP, serverIP)
	srv := startProc(t, helper("server"), "ip", "netns", "exec", nsB, serverBin,
		"-addr", serverIP+":0", "-recv", "2097152", "-send", "1")
	port := atoi(t, srv.expect("READY")[0])
	// Data segments only (a FIN or an ACK is not dropped): retransmits
	// end when the client has its answer.
	rules := fmt.Sprintf("table inet tsloss {\n chain in {\n  type filter hook input priority 0;\n  tcp dport %d meta length > 200 numgen random mod 8 == 0 drop\n }\n}\n", port)
	nft := exec.Command("ip", "netns", "exec", nsB, "nft", "-f", "-")
	nft.Stdin = strings.NewReader(rules)
	if out, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}

	const maxDelay = 50 * time.Millisecond
	tr := startTracer(t, "--port", fmt.Sprint(port), "--max-delay", maxDelay.String())
	c := startProc(t, helper("client"), "ip", "netns", "exec", nsA, clientBin,
		"-addr", fmt.Sprintf("%s:%d", serverIP, port), "-send", "2097152", "-recv", "1", "-tcpinfo", "-reset")
	local := netip.MustParseAddrPort(c.expect("LOCAL")[0])
	c.expect("DONE")
	info := c.expect("TCPINFO")
	total, rtt, bytesRetrans := atoi(t, info[0]), atoi(t, info[1]), atoi(t, info[3])
	if total == 0 {
		t.Fatalf("the client retransmitted nothing (tcp_info %v): the loss rule did not work", info)
	}

	ours := func(typ string) func(jsonEvent) bool {
		return func(e jsonEvent) bool {
			return e.EventType == typ && e.Sport == int(local.Port()) && e.Direction == "outbound"
		}
	}
	cl := tr.waitFor("the client's close", ours("close"))
	rts := tr.all(ours("retransmit"))
	sum := 0
	for i, e := range rts {
		if e.PID != c.pid() || e.Comm != "tsclient" || e.Saddr != clientIP || e.Daddr != serverIP || e.Dport != port {
			t.Errorf("retransmit %d: %s, want pid %d tsclient %s -> %s:%d", i, e, c.pid(), clientIP, serverIP, port)
		}
		if e.Retransmits == nil || *e.Retransmits == 0 || e.RetransSegs == nil {
			t.Errorf("retransmit %d without a count: %s", i, e)
			continue
		}
		sum += int(*e.Retransmits)
		if int(*e.RetransSegs) != sum {
			t.Errorf("retransmit %d: retrans_segs %d, want the running total %d", i, *e.RetransSegs, sum)
		}
		if e.State == "" {
			t.Errorf("retransmit %d without a state: %s", i, e)
		}
		// At most one per window; only the last, just before the close,
		// may come early (what the window held back).
		if i > 0 && i < len(rts)-1 && e.TimestampNs-rts[i-1].TimestampNs < uint64(maxDelay) {
			t.Errorf("retransmits %d and %d only %v apart, want %v at least", i-1, i, time.Duration(e.TimestampNs-rts[i-1].TimestampNs), maxDelay)
		}
	}
	if sum != total {
		t.Errorf("retransmit events count %d segments in %d events, tcp_info counted %d:\n%s", sum, len(rts), total, tr.dump())
	}
	if cl.PID != c.pid() || cl.RetransSegs == nil || int(*cl.RetransSegs) != total ||
		cl.BytesRetrans == nil || int(*cl.BytesRetrans) != bytesRetrans {
		t.Errorf("close: %s retrans_segs %v bytes_retrans %v, want pid %d, %d and %d", cl, deref32(cl.RetransSegs), deref64(cl.BytesRetrans), c.pid(), total, bytesRetrans)
	}
	// The RTT tcp_info gave: the client closes with a reset, so no ACK
	// after it (a FIN's, delayed on a busy machine: once 6 ms) moves it;
	// a wrong scaling (srtt_us is kept << 3) would be 8 times off.
	if cl.SRTTUs == nil || *cl.SRTTUs == 0 || absDiff(int(*cl.SRTTUs), rtt) > max(rtt/8, 50) {
		t.Errorf("close: srtt_us %v, tcp_info's rtt %d µs", deref32(cl.SRTTUs), rtt)
	}
	t.Logf("%d segments retransmitted, %d bytes, in %d events; rtt %d µs (close: %v)", total, bytesRetrans, len(rts), rtt, deref32(cl.SRTTUs))
}

// A path with a delay: the server's namespace delays every packet it
// sends by 100 ms (netem; this host's kernel has none, the matrix guests'
// have). Both ends' closes carry that RTT: the client's what its tcp_info
// said just before it closed (with a reset, so no later sample moves it),
// the server's (which sent one byte) at least the delay.
func TestRTTOfADelayedPath(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("tc"); err != nil {
		t.Skip("needs tc (iproute2)")
	}
	const clientIP, serverIP = "198.51.100.61", "198.51.100.62"
	const delay = 100 * time.Millisecond
	nsA, nsB, devB := pathHosts(t, "rtt", clientIP, serverIP)
	if out, err := exec.Command("ip", "netns", "exec", nsB, "tc", "qdisc", "add", "dev", devB, "root", "netem", "delay", "100ms").CombinedOutput(); err != nil {
		if strings.Contains(string(out), "qdisc kind is unknown") {
			t.Skipf("this kernel has no netem (sch_netem): %s", strings.TrimSpace(string(out)))
		}
		t.Fatalf("tc qdisc add netem: %v: %s", err, out)
	}
	srv := startProc(t, helper("server"), "ip", "netns", "exec", nsB, serverBin,
		"-addr", serverIP+":0", "-recv", "65536", "-send", "1")
	port := atoi(t, srv.expect("READY")[0])
	tr := startTracer(t, "--port", fmt.Sprint(port))
	c := startProc(t, helper("client"), "ip", "netns", "exec", nsA, clientBin,
		"-addr", fmt.Sprintf("%s:%d", serverIP, port), "-send", "65536", "-recv", "1", "-tcpinfo", "-reset")
	local := netip.MustParseAddrPort(c.expect("LOCAL")[0])
	c.expect("DONE")
	info := c.expect("TCPINFO")
	rtt := atoi(t, info[1])
	// The path's RTT is the delay plus the time the two ends take to
	// answer (under qemu's emulation, milliseconds): tcp_info itself must
	// be in that range, or the delay did not work.
	lo, hi := int(delay/time.Microsecond), int(delay/time.Microsecond)*3/2
	if rtt < lo || rtt > hi {
		t.Fatalf("the client's tcp_info rtt is %d µs, want %d..%d: the netem delay did not work", rtt, lo, hi)
	}
	cl := tr.waitFor("the client's close", func(e jsonEvent) bool {
		return e.EventType == "close" && e.Sport == int(local.Port()) && e.Direction == "outbound"
	})
	sv := tr.waitFor("the server's close", func(e jsonEvent) bool {
		return e.EventType == "close" && e.Sport == int(local.Port()) && e.Direction == "inbound"
	})
	if cl.PID != c.pid() || cl.SRTTUs == nil || absDiff(int(*cl.SRTTUs), rtt) > max(rtt/8, 50) || cl.RTTVarUs == nil {
		t.Errorf("client's close: %s srtt_us %v rttvar_us %v, want pid %d and tcp_info's rtt %d µs", cl, deref32(cl.SRTTUs), deref32(cl.RTTVarUs), c.pid(), rtt)
	}
	if sv.PID != srv.pid() || sv.SRTTUs == nil || int(*sv.SRTTUs) < lo || int(*sv.SRTTUs) > hi {
		t.Errorf("server's close: %s srtt_us %v, want pid %d and %d..%d µs", sv, deref32(sv.SRTTUs), srv.pid(), lo, hi)
	}
	t.Logf("netem delay %v: client srtt %v µs (tcp_info %d), server srtt %v µs", delay, deref32(cl.SRTTUs), rtt, deref32(sv.SRTTUs))
}

// Resets from each side (SO_LINGER 0): the side that sends it has a reset
// event by local (after its close, which says closed by local, reset),
// the other a reset event by remote (before its close, closed by remote,
// reset, ECONNRESET), each with its own process.
func TestResetEvents(t *testing.T) {
	requireRoot(t)
	tr := startTracer(t)
	check := func(t *testing.T, e jsonEvent, pid int, by, state string) {
		t.Helper()
		if e.PID != pid || e.ResetBy != by || e.State != state {
			t.Errorf("reset: %s reset_by %q state %q, want pid %d, %s, %s", e, e.ResetBy, e.State, pid, by, state)
		}
	}
	t.Run("server resets", func(t *testing.T) {
		srv, port := server(t, "-recv", "100", "-send", "0", "-reset")
		c := client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-send", "100", "-recv", "-1", "-hold")
		local := netip.MustParseAddrPort(c.expect("LOCAL")[0])
		if done := c.expect("DONE"); done[2] != "104" { // ECONNRESET
			t.Fatalf("client did not see a reset: %v", done)
		}
		sent := tr.waitFor("the server's reset", byPID("reset", srv.pid()))
		check(t, sent, srv.pid(), "local", "ESTABLISHED")
		if sent.Direction != "inbound" || sent.Saddr != "127.0.0.1" || sent.Sport != int(local.Port()) || sent.Dport != port {
			t.Errorf("server's reset: %s", sent)
		}
		got := tr.waitFor("the client's reset", byPID("reset", c.pid()))
		check(t, got, c.pid(), "remote", "ESTABLISHED")
		sc := tr.waitFor("the server's close", closeOf(srv.pid()))
		if sc.ClosedBy != "local" || !sc.Reset || sc.Error != "" {
			t.Errorf("server close: %s reset %v", sc, sc.Reset)
		}
		c.stdin.Close()
		cc := tr.waitFor("the client's close", closeOf(c.pid()))
		if cc.ClosedBy != "remote" || !cc.Reset || cc.Error != "ECONNRESET" {
			t.Errorf("client close: %s reset %v", cc, cc.Reset)
		}
		if tr.index(byPID("reset", c.pid())) > tr.index(closeOf(c.pid())) {
			t.Error("the client's reset came after its close")
		}
	})
	t.Run("client resets", func(t *testing.T) {
		srv, port := server(t, "-recv", "100", "-send", "200", "-wait-eof")
		c := client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-send", "100", "-recv", "200", "-reset")
		c.expect("LOCAL")
		c.expect("DONE")
		check(t, tr.waitFor("the client's reset", byPID("reset", c.pid())), c.pid(), "local", "ESTABLISHED")
		check(t, tr.waitFor("the server's reset", byPID("reset", srv.pid())), srv.pid(), "remote", "ESTABLISHED")
		cc := tr.waitFor("the client's close", closeOf(c.pid()))
		if cc.ClosedBy != "local" || !cc.Reset || cc.Error != "" {
			t.Errorf("client close: %s reset %v", cc, cc.Reset)
		}
	})
}

func deref32(p *uint32) any {
	if p == nil {
		return "absent"
	}
	return *p
}

func deref64(p *uint64) any {
	if p == nil {
		return "absent"
	}
	return *p
}

func absDiff(a, b int) int {
	if a > b {
		return a - b
	}
	return b - a
}

package integration

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func u64(p *uint64) uint64 {
	if p == nil {
		return 0
	}
	return *p
}

// index of the first event that matches, or -1.
func (tr *tracer) index(match func(jsonEvent) bool) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for i, ev := range tr.events {
		if match(ev) {
			return i
		}
	}
	return -1
}

func closeOf(pid int) func(jsonEvent) bool { return byPID("close", pid) }

// A transfer of known size each way, then a close from either side: the
// handshake's outcome, and each end's close with its exact data bytes,
// duration and who closed first, attributed to the processes that
// connected and accepted, not to the softirq that saw the last packet.
func TestConnectionLifecycle(t *testing.T) {
	requireRoot(t)
	tr := startTracer(t)
	for _, tc := range []struct {
		name                string
		clientRecv          int  // -1: until the server closes
		serverWaits         bool // for the client to close first
		clientBy, serverBy  string
		clientSent, srvSent int
	}{
		// The client sends, reads the whole answer and closes first.
		{"client-closes", 70001, true, "local", "remote", 12345, 70001},
		// The server answers and closes first; the client reads to EOF.
		{"server-closes", -1, false, "remote", "local", 12345, 70001},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, port := server(t, "-recv", fmt.Sprint(tc.clientSent), "-send", fmt.Sprint(tc.srvSent), fmt.Sprintf("-wait-eof=%v", tc.serverWaits))
			c := client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-send", fmt.Sprint(tc.clientSent), "-recv", fmt.Sprint(tc.clientRecv))
			local := netip.MustParseAddrPort(c.expect("LOCAL")[0])
			if done := c.expect("DONE"); done[0] != fmt.Sprint(tc.clientSent) || done[1] != fmt.Sprint(tc.srvSent) || done[2] != "0" {
				t.Fatalf("client transfer: %v", done)
			}
			srv.expect("ACCEPTED")
			srv.expect("SERVED")

			conn := tr.waitFor("connect", byPID("connect", c.pid()))
			est := tr.waitFor("established", byPID("established", c.pid()))
			if tr.index(byPID("connect", c.pid())) > tr.index(byPID("established", c.pid())) {
				t.Errorf("established came before its connect")
			}
			if est.Sport != int(local.Port()) || est.Dport != port || est.Comm != "tsclient" || est.Direction != "outbound" ||
				est.LatencyNs == nil || *est.LatencyNs == 0 || *est.LatencyNs > uint64(time.Second) {
				t.Errorf("established: %s (connect: %s)", est, conn)
			}

			cc := tr.waitFor("client close", closeOf(c.pid()))
			checkClose(t, cc, jsonEvent{
				PID: c.pid(), Comm: "tsclient", Direction: "outbound", ClosedBy: tc.clientBy,
				Saddr: "127.0.0.1", Sport: int(local.Port()), Daddr: "127.0.0.1", Dport: port,
			}, tc.clientSent, tc.srvSent)
			sc := tr.waitFor("server close", closeOf(srv.pid()))
			checkClose(t, sc, jsonEvent{
				PID: srv.pid(), Comm: "tsserver", Direction: "inbound", ClosedBy: tc.serverBy,
				Saddr: "127.0.0.1", Sport: int(local.Port()), Daddr: "127.0.0.1", Dport: port,
			}, tc.srvSent, tc.clientSent)
		})
	}
}

func checkClose(t *testing.T, got, want jsonEvent, sent, received int) {
	t.Helper()
	if got.PID != want.PID || got.Comm != want.Comm || got.Direction != want.Direction || got.ClosedBy != want.ClosedBy ||
		got.Saddr != want.Saddr || got.Sport != want.Sport || got.Daddr != want.Daddr || got.Dport != want.Dport {
		t.Errorf("close mismatch\n got: %s\nwant: %s", got, want)
	}
	if u64(got.BytesSent) != uint64(sent) || u64(got.BytesReceived) != uint64(received) {
		t.Errorf("close of pid %d: sent %d received %d, want exactly %d and %d", got.PID, u64(got.BytesSent), u64(got.BytesReceived), sent, received)
	}
	if d := u64(got.DurationNs); d == 0 || d > uint64(10*time.Second) {
		t.Errorf("close of pid %d: duration_ns %d", got.PID, d)
	}
	if got.Error != "" {
		t.Errorf("close of pid %d: unexpected error %q", got.PID, got.Error)
	}
}

// A reset: the server closes with SO_LINGER 0; the client's close says
// the peer reset it.
func TestResetConnection(t *testing.T) {
	requireRoot(t)
	tr := startTracer(t)
	srv, port := server(t, "-recv", "100", "-send", "0", "-reset")
	c := client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-send", "100", "-recv", "-1")
	local := netip.MustParseAddrPort(c.expect("LOCAL")[0])
	if done := c.expect("DONE"); done[2] != "104" { // ECONNRESET
		t.Fatalf("client did not see a reset: %v", done)
	}
	cc := tr.waitFor("client close", closeOf(c.pid()))
	if cc.Error != "ECONNRESET" || cc.Reason != "reset" || cc.ClosedBy != "remote" || cc.Sport != int(local.Port()) ||
		u64(cc.BytesSent) != 100 || u64(cc.BytesReceived) != 0 {
		t.Errorf("client close: %s", cc)
	}
	sc := tr.waitFor("server close", closeOf(srv.pid()))
	if sc.ClosedBy != "local" || sc.Error != "" || u64(sc.BytesReceived) != 100 || sc.Direction != "inbound" {
		t.Errorf("server close: %s", sc)
	}
}

// A connect to a closed port is refused: connect, then failed with the
// reason, attributed to the client.
func TestRefusedConnectOutcome(t *testing.T) {
	requireRoot(t)
	closed := freePort(t)
	tr := startTracer(t)
	c := client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", closed))
	c.expect("FAILED")
	f := tr.waitFor("failed", byPID("failed", c.pid()))
	if f.Error != "ECONNREFUSED" || f.Reason != "refused" || f.Comm != "tsclient" || f.Dport != closed || f.Sport == 0 || f.LatencyNs == nil {
		t.Errorf("failed: %s", f)
	}
	if tr.index(byPID("connect", c.pid())) > tr.index(byPID("failed", c.pid())) {
		t.Errorf("failed came before its connect")
	}
}

// A test host that drops SYNs: the connect times out (SYN retries cut to
// one inside the client's namespace, so it takes about 3 s), and a
// non-blocking connect abandoned before its handshake is "aborted".
func TestTimedOutAndAbortedConnects(t *testing.T) {
	requireRoot(t)
	nsA, _ := testHosts(t)
	// 198.18.0.3 "exists" for the client (a permanent neighbour entry) but
	// nobody has its MAC: the SYNs vanish.
	vethA := "tsa" + strings.TrimPrefix(nsA, "ts-a-")
	for _, args := range [][]string{
		{"-n", nsA, "neigh", "add", "198.18.0.3", "lladdr", "02:00:00:00:00:99", "dev", vethA, "nud", "permanent"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	if out, err := exec.Command("ip", "netns", "exec", nsA, "sysctl", "-qw", "net.ipv4.tcp_syn_retries=1").CombinedOutput(); err != nil {
		t.Fatalf("sysctl: %v: %s", err, out)
	}
	tr := startTracer(t)

	timedOut := startProc(t, helper("client"), "ip", "netns", "exec", nsA, clientBin, "-addr", "198.18.0.3:80")
	aborted := startProc(t, helper("client"), "ip", "netns", "exec", nsA, clientBin, "-addr", "198.18.0.3:81", "-abort")
	t.Logf("aborted client: %v", aborted.expect("ABORTED"))
	ab := tr.waitFor("aborted connect", byPID("failed", aborted.pid()))
	if ab.Reason != "aborted" || ab.Error != "" || ab.Dport != 81 || ab.Comm != "tsclient" {
		t.Errorf("aborted connect: %s", ab)
	}

	start := time.Now()
	if f := timedOut.expect("FAILED"); f[0] != "110" { // ETIMEDOUT
		t.Fatalf("connect failed with errno %s, want 110 (ETIMEDOUT)", f[0])
	}
	to := tr.waitFor("timed-out connect", byPID("failed", timedOut.pid()))
	if to.Reason != "timed out" || to.Error != "ETIMEDOUT" || to.Daddr != "198.18.0.3" || to.Saddr != "198.18.0.1" || to.Dport != 80 {
		t.Errorf("timed-out connect: %s", to)
	}
	if lat := time.Duration(u64(to.LatencyNs)); lat < 2*time.Second || lat > 10*time.Second {
		t.Errorf("timed out after %v, want about 3s (waited %v)", lat, time.Since(start))
	}
}

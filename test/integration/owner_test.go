package integration

import (
	"fmt"
	"maps"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// nobody is the unprivileged user some test processes run as, so that a
// uid in an event can be told from root's.
var nobody = &syscall.Credential{Uid: 65534, Gid: 65534}

// A server that accepts and hands each connection to a child process (as
// sshd, PostgreSQL and socat fork do): the accept is the server's, the
// close is the child's, which held and closed the socket, with the server
// kept as the opener. Watching the server's pid still shows that close.
func TestForkAfterAccept(t *testing.T) {
	requireRoot(t)
	srv, port := server(t, "-handoff", "-recv", "100", "-send", "200", "-wait-eof")
	byPort := startTracer(t, "--port", fmt.Sprint(port))
	byServer := startTracer(t, "--pid", fmt.Sprint(srv.pid()), "--type", "accept,close")

	c := client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-send", "100", "-recv", "200")
	local := netip.MustParseAddrPort(c.expect("LOCAL")[0])
	c.expect("DONE")
	srv.expect("ACCEPTED")
	child := atoi(t, srv.expect("CHILD")[0])
	srv.expect("SERVED")

	for _, tr := range []*tracer{byPort, byServer} {
		acc := tr.waitFor("accept", byPID("accept", srv.pid()))
		if acc.Sport != int(local.Port()) || acc.Dport != port {
			t.Errorf("accept: %s", acc)
		}
		got := tr.waitFor("the child's close", closeOf(child))
		if got.Comm != "tsserver" || got.OpenerPID != srv.pid() || got.OpenerComm != "tsserver" || got.Direction != "inbound" ||
			got.Sport != int(local.Port()) || got.Dport != port || u64(got.BytesSent) != 200 || u64(got.BytesReceived) != 100 ||
			got.ClosedBy != "remote" || got.DurationNs == nil {
			t.Errorf("the child's close: %s opener %d %q", got, got.OpenerPID, got.OpenerComm)
		}
		if n := len(tr.all(func(e jsonEvent) bool { return e.EventType == "close" && e.Dport == port && e.Direction == "inbound" })); n != 1 {
			t.Errorf("%d inbound closes, want 1:\n%s", n, tr.dump())
		}
	}
	// The client closed its own socket: no opener.
	cl := byPort.waitFor("the client's close", closeOf(c.pid()))
	if cl.OpenerPID != 0 || cl.OpenerComm != "" || cl.Direction != "outbound" || cl.ClosedBy != "local" {
		t.Errorf("the client's close: %s", cl)
	}
}

// COMM is the process's name: a connect made from a thread named
// otherwise is the process's, findable with --comm, with the thread's own
// name in JSON.
func TestThreadName(t *testing.T) {
	requireRoot(t)
	srv, port := server(t, "-n", "1")
	all := startTracer(t, "--port", fmt.Sprint(port))
	byComm := startTracer(t, "--comm", "tsclient", "--type", "connect")
	c := client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-thread", "net-worker-7")
	tid := atoi(t, c.expect("THREAD")[0])
	local := netip.MustParseAddrPort(c.expect("LOCAL")[0])
	srv.expect("ACCEPTED")
	if tid == c.pid() {
		t.Fatalf("the client connected from its main thread (tid %d)", tid)
	}
	for _, tr := range []*tracer{all, byComm} {
		got := tr.waitFor("connect", byPID("connect", c.pid()))
		if got.TID != tid || got.Comm != "tsclient" || got.Thread != "net-worker-7" || got.Sport != int(local.Port()) || got.Dport != port {
			t.Errorf("connect: %s tid %d thread %q, want tid %d thread net-worker-7", got, got.TID, got.Thread, tid)
		}
	}
	// A single-threaded process's events carry no thread key.
	acc := all.waitFor("accept", byPID("accept", srv.pid()))
	if acc.Comm != "tsserver" || acc.Thread != "" {
		t.Errorf("accept: %s thread %q", acc, acc.Thread)
	}
}

// Connections made before tuxscope started, without --existing: each
// end's close has its true direction, the process that closed it, its
// uid, and appears once.
func TestOlderConnections(t *testing.T) {
	requireRoot(t)
	t.Run("client closes first", func(t *testing.T) {
		srv := startProcAs(t, nobody, helper("server"), serverBin, "-recv", "300", "-send", "500", "-wait-eof")
		port := atoi(t, srv.expect("READY")[0])
		c := client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-send", "300", "-recv", "500", "-hold")
		local := netip.MustParseAddrPort(c.expect("LOCAL")[0])
		c.expect("DONE")
		srv.expect("ACCEPTED")

		tr := startTracer(t, "--port", fmt.Sprint(port))
		c.stdin.Close()
		srv.expect("SERVED")
		checkOlderCloses(t, tr, port, local, []olderClose{
			{pid: c.pid(), uid: 0, comm: "tsclient", direction: "outbound", by: "local", sent: 300, received: 500},
			{pid: srv.pid(), uid: 65534, comm: "tsserver", direction: "inbound", by: "remote", sent: 500, received: 300},
		})
	})
	t.Run("server closes first, its listener already gone", func(t *testing.T) {
		srv := startProcAs(t, nobody, helper("server"), serverBin, "-n", "1", "-close-listener")
		port := atoi(t, srv.expect("READY")[0])
		c := client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-hold")
		local := netip.MustParseAddrPort(c.expect("LOCAL")[0])
		srv.expect("ACCEPTED")
		srv.expect("UNLISTENED")

		tr := startTracer(t, "--port", fmt.Sprint(port))
		srv.send("") // the server closes its connection, and exits
		srv.waitExit()
		c.stdin.Close()
		checkOlderCloses(t, tr, port, local, []olderClose{
			{pid: srv.pid(), uid: 65534, comm: "tsserver", direction: "inbound", by: "local"},
			{pid: c.pid(), uid: 0, comm: "tsclient", direction: "outbound", by: "remote"},
		})
	})
	t.Run("server resets, the client never closes", func(t *testing.T) {
		srv, port := server(t, "-n", "1", "-wait-line", "-reset")
		c := startProcAs(t, nobody, helper("client"), clientBin, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-hold")
		local := netip.MustParseAddrPort(c.expect("LOCAL")[0])
		srv.expect("ACCEPTED")

		tr := startTracer(t, "--port", fmt.Sprint(port))
		srv.send("")
		srv.expect("SERVED")
		// No process closed the client's end: no pid, but the socket's uid.
		checkOlderCloses(t, tr, port, local, []olderClose{
			{pid: srv.pid(), uid: 0, comm: "tsserver", direction: "inbound", by: "local", reset: true},
			{pid: 0, uid: 65534, comm: "", direction: "outbound", by: "remote", reset: true},
		})
	})
}

type olderClose struct {
	pid, uid       int
	comm           string
	direction, by  string
	sent, received uint64
	reset          bool
}

// checkOlderCloses waits for exactly these closes of the connection from
// local to port, one per end.
func checkOlderCloses(t *testing.T, tr *tracer, port int, local netip.AddrPort, want []olderClose) {
	t.Helper()
	for _, w := range want {
		got := tr.waitFor(fmt.Sprintf("the %s close", w.direction), func(e jsonEvent) bool {
			return e.EventType == "close" && e.Direction == w.direction
		})
		if got.PID != w.pid || got.UID != w.uid || got.Comm != w.comm || got.ClosedBy != w.by || got.Reset != w.reset ||
			got.Saddr != "127.0.0.1" || got.Sport != int(local.Port()) || got.Daddr != "127.0.0.1" || got.Dport != port ||
			u64(got.BytesSent) != w.sent || u64(got.BytesReceived) != w.received || got.DurationNs != nil || got.OpenerPID != 0 {
			t.Errorf("close\n got: %s uid %d reset %v\nwant: pid %d uid %d %q %s closed by %s, sent %d, received %d, reset %v, no duration",
				got, got.UID, got.Reset, w.pid, w.uid, w.comm, w.direction, w.by, w.sent, w.received, w.reset)
		}
	}
	if n := len(tr.all(func(e jsonEvent) bool { return e.EventType == "close" })); n != len(want) {
		t.Errorf("%d closes, want %d:\n%s", n, len(want), tr.dump())
	}
}

// The connection table's capacity is not silent: with room for 64
// sockets, 50 connections held open (100 sockets, both ends on this host)
// leave exactly 36 untracked, reported in band.
func TestConnTableFullIsReported(t *testing.T) {
	requireRoot(t)
	srv, port := server(t, "-n", "50", "-quiet")
	tr := startTracer(t, "--port", fmt.Sprint(port), "--conn-table", "64")
	c := client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-count", "50")
	c.expect("CONNECTED")
	srv.expect("ACCEPTED")
	waitUntil(t, "36 untracked sockets reported", func() bool { return lostCount(tr, "conn_table_full") >= 36 })
	time.Sleep(1500 * time.Millisecond) // a second loss check: nothing more
	if n := lostCount(tr, "conn_table_full"); n != 36 {
		t.Errorf("conn_table_full: %d, want 36:\n%s", n, tr.dump())
	}
	counts := map[string]int{}
	for _, e := range tr.all(func(jsonEvent) bool { return true }) {
		counts[e.EventType]++
	}
	// Every connect and accept is seen (they need no table); the handshake
	// of a client that could not be tracked has no established event.
	if counts["connect"] != 50 || counts["accept"] != 50 || counts["established"] < 32 || counts["established"] > 33 {
		t.Errorf("events by type %v, want 50 connects, 50 accepts, 32 or 33 established", counts)
	}
}

// What the filters select keeps its attribution however much other
// traffic there is: 36,000 other connections held open (72,000 sockets,
// more than tuxscope's table once held in all) beside 2,000 watched ones.
func TestWatchedConnectionsAmongMany(t *testing.T) {
	requireRoot(t)
	// Two crowds of 18,000: a process here may hold 20,000 descriptors.
	const crowds, crowd, watched = 2, 18000, 2000
	srv, port := server(t, "-n", fmt.Sprint(watched), "-quiet", "-recv", "100", "-send", "200", "-wait-eof")
	tr := startTracer(t, "--port", fmt.Sprint(port))
	for range crowds {
		other, otherPort := server(t, "-n", fmt.Sprint(crowd), "-quiet")
		c := client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", otherPort), "-count", fmt.Sprint(crowd))
		c.expectWithin("CONNECTED", 2*time.Minute)
		other.expect("ACCEPTED")
	}
	c := client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-count", fmt.Sprint(watched), "-send", "100", "-recv", "200")
	c.expectWithin("CONNECTED", time.Minute)
	srv.expect("ACCEPTED")
	waitUntil(t, "every watched close", func() bool {
		return len(tr.all(func(e jsonEvent) bool { return e.EventType == "close" })) >= 2*watched
	})
	counts := map[string]int{}
	for _, e := range tr.all(func(jsonEvent) bool { return true }) {
		counts[e.EventType]++
		if e.EventType != "close" {
			continue
		}
		client := e.Direction == "outbound"
		wantPID, wantSent, wantRecv, wantBy := c.pid(), uint64(100), uint64(200), "local"
		if !client {
			wantPID, wantSent, wantRecv, wantBy = srv.pid(), 200, 100, "remote"
		}
		if e.PID != wantPID || e.Dport != port || u64(e.BytesSent) != wantSent || u64(e.BytesReceived) != wantRecv ||
			e.ClosedBy != wantBy || e.DurationNs == nil {
			t.Errorf("close: %s", e)
		}
	}
	want := map[string]int{"connect": watched, "established": watched, "accept": watched, "close": 2 * watched}
	if !maps.Equal(counts, want) {
		t.Errorf("events by type %v, want %v", counts, want)
	}
}

// lostCount sums the lost records of one reason.
func lostCount(tr *tracer, reason string) uint64 {
	var n uint64
	for _, e := range tr.all(func(e jsonEvent) bool { return e.EventType == "lost" && e.Reason == reason }) {
		n += e.Count
	}
	return n
}

// A connection the client resets while it waits in the accept queue, and
// the server accepts afterwards: its close was reported (no process had
// it), and its accept leaves nothing behind in the connection table (no
// connection is open at exit).
func TestAcceptOfAResetConnection(t *testing.T) {
	requireRoot(t)
	srv, port := server(t, "-n", "1", "-accept-wait")
	tr := startTracer(t, "--port", fmt.Sprint(port))
	c := client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-reset")
	local := netip.MustParseAddrPort(c.expect("LOCAL")[0])
	c.stdin.Close() // the client resets
	in := tr.waitFor("the reset server end's close", func(e jsonEvent) bool { return e.EventType == "close" && e.Direction == "inbound" })
	if in.PID != 0 || !in.Reset || in.ClosedBy != "remote" || in.Sport != int(local.Port()) {
		t.Errorf("server end's close: %s reset %v", in, in.Reset)
	}
	srv.send("") // now accept it
	srv.expect("ACCEPTED")
	tr.waitFor("the accept", byPID("accept", srv.pid()))
	tr.stop()
	var open []jsonEvent
	for _, e := range tr.all(func(e jsonEvent) bool { return e.EventType == "open_at_exit" }) {
		open = append(open, e)
	}
	if len(open) != 1 || open[0].Count != 0 {
		t.Errorf("open_at_exit records %v, want one with count 0:\n%s", open, tr.dump())
	}
}

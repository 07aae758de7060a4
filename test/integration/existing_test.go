package integration

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/tuxscope/tuxscope/internal/snapshot"
)

// A connection made before tuxscope starts is listed by --existing, with
// both ends' processes and directions, each naming the other, and so is
// its listener; its later close is attributed to them (through the
// socket cookie), with exact bytes and no duration, and still names the
// other end.
func TestExistingConnections(t *testing.T) {
	requireRoot(t)
	srv, port := server(t, "-recv", "300", "-send", "500", "-wait-eof")
	c := client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-send", "300", "-recv", "500", "-hold")
	local := netip.MustParseAddrPort(c.expect("LOCAL")[0])
	c.expect("DONE")
	srv.expect("ACCEPTED")

	tr := startTracer(t, "--existing", "--port", fmt.Sprint(port))
	want := jsonEvent{EventType: "existing", Family: 4, Saddr: "127.0.0.1", Sport: int(local.Port()), Daddr: "127.0.0.1", Dport: port}
	cw, sw := want, want
	cw.PID, cw.Comm, cw.Direction = c.pid(), "tsclient", "outbound"
	sw.PID, sw.Comm, sw.Direction = srv.pid(), "tsserver", "inbound"
	// Each end names the other's process (peer_pid, peer_comm).
	cw.PeerPID, cw.PeerComm, sw.PeerPID, sw.PeerComm = srv.pid(), "tsserver", c.pid(), "tsclient"
	for _, w := range []jsonEvent{cw, sw} {
		got := tr.waitFor("existing", func(e jsonEvent) bool {
			return e.EventType == "existing" && e.PID == w.PID && e.State == "ESTABLISHED"
		})
		if got.Comm != w.Comm || got.Direction != w.Direction || got.Family != w.Family || got.Saddr != w.Saddr ||
			got.Sport != w.Sport || got.Daddr != w.Daddr || got.Dport != w.Dport || got.PeerPID != w.PeerPID || got.PeerComm != w.PeerComm {
			t.Errorf("existing\n got: %s peer %d/%q\nwant: %s peer %d/%q", got, got.PeerPID, got.PeerComm, w, w.PeerPID, w.PeerComm)
		}
		// Its health from sock_diag's tcp_info: both ends sent data, so
		// each has an RTT sample; nothing was lost on loopback.
		if got.SRTTUs == nil || *got.SRTTUs == 0 || got.RTTVarUs == nil || got.RetransSegs == nil || *got.RetransSegs != 0 || got.BytesRetrans == nil {
			t.Errorf("existing of pid %d: srtt_us %v rttvar_us %v retrans_segs %v bytes_retrans %v", w.PID,
				deref32(got.SRTTUs), deref32(got.RTTVarUs), deref32(got.RetransSegs), deref64(got.BytesRetrans))
		}
	}
	// The server's listener, started before tuxscope: state LISTEN, its
	// pid and backlog (listen(4096), capped at somaxconn).
	l := tr.waitFor("existing listener", func(e jsonEvent) bool { return e.EventType == "existing" && e.State == "LISTEN" })
	if l.PID != srv.pid() || l.Comm != "tsserver" || l.Saddr != "127.0.0.1" || l.Sport != port || l.Daddr != "" || l.Dport != 0 ||
		l.Direction != "inbound" || l.Backlog == nil || int(*l.Backlog) != min(4096, somaxconn(t)) || l.PeerPID != 0 {
		t.Errorf("existing listener: %s backlog %v, want pid %d 127.0.0.1:%d", l, deref(l.Backlog), srv.pid(), port)
	}
	if n := len(tr.all(func(e jsonEvent) bool { return e.EventType == "existing" })); n != 3 {
		t.Errorf("%d existing rows, want 3 (both ends and the listener):\n%s", n, tr.dump())
	}

	c.stdin.Close() // the client closes first
	srv.expect("SERVED")
	for _, w := range []struct {
		pid, sent, received int
		by, direction       string
	}{{c.pid(), 300, 500, "local", "outbound"}, {srv.pid(), 500, 300, "remote", "inbound"}} {
		got := tr.waitFor("close", closeOf(w.pid))
		peer := srv.pid()
		if w.pid == srv.pid() {
			peer = c.pid()
		}
		if snapshot.NetNSCookie() == 0 {
			// Before Linux 5.14 (no SO_NETNS_COOKIE): existing rows are
			// not linked with the kernel's events (README).
			peer = 0
		}
		if u64(got.BytesSent) != uint64(w.sent) || u64(got.BytesReceived) != uint64(w.received) || got.ClosedBy != w.by ||
			got.Direction != w.direction || got.DurationNs != nil || got.Sport != int(local.Port()) || got.PeerPID != peer {
			t.Errorf("close of pid %d: %s", w.pid, got)
		}
	}
}

package integration

import (
	"fmt"
	"net/netip"
	"testing"
)

// A connection made before tuxscope starts is listed by --existing, with
// both ends' processes and directions; its later close is attributed to
// them (through the socket cookie), with exact bytes and no duration.
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
	for _, w := range []jsonEvent{cw, sw} {
		got := tr.waitFor("existing", byPID("existing", w.PID))
		if got.Comm != w.Comm || got.Direction != w.Direction || got.Family != w.Family || got.Saddr != w.Saddr ||
			got.Sport != w.Sport || got.Daddr != w.Daddr || got.Dport != w.Dport {
			t.Errorf("existing\n got: %s\nwant: %s", got, w)
		}
		// Its health from sock_diag's tcp_info: both ends sent data, so
		// each has an RTT sample; nothing was lost on loopback.
		if got.SRTTUs == nil || *got.SRTTUs == 0 || got.RTTVarUs == nil || got.RetransSegs == nil || *got.RetransSegs != 0 || got.BytesRetrans == nil {
			t.Errorf("existing of pid %d: srtt_us %v rttvar_us %v retrans_segs %v bytes_retrans %v", w.PID,
				deref32(got.SRTTUs), deref32(got.RTTVarUs), deref32(got.RetransSegs), deref64(got.BytesRetrans))
		}
	}

	c.stdin.Close() // the client closes first
	srv.expect("SERVED")
	for _, w := range []struct {
		pid, sent, received int
		by, direction       string
	}{{c.pid(), 300, 500, "local", "outbound"}, {srv.pid(), 500, 300, "remote", "inbound"}} {
		got := tr.waitFor("close", closeOf(w.pid))
		if u64(got.BytesSent) != uint64(w.sent) || u64(got.BytesReceived) != uint64(w.received) || got.ClosedBy != w.by ||
			got.Direction != w.direction || got.DurationNs != nil || got.Sport != int(local.Port()) {
			t.Errorf("close of pid %d: %s", w.pid, got)
		}
	}
}

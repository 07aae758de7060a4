package output

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/tuxscope/tuxscope/internal/event"
)

func listenEvent(t event.Type, local string, backlog uint32, flags event.Flags) *event.Event {
	e := &event.Event{Type: t, Family: 6, TimestampNs: 5, Time: fixedTime, PID: 5370, TID: 5370, UID: 33,
		Local: netip.MustParseAddrPort(local), Backlog: backlog, Flags: event.FlagInbound | flags}
	if netip.MustParseAddrPort(local).Addr().Is4() {
		e.Family = 4
	}
	e.SetComm("nginx")
	return e
}

// Listeners: SRC is their address, DST -, DETAIL the backlog; JSON has
// saddr/sport, an empty daddr, backlog and v6only.
func TestListenerRows(t *testing.T) {
	existing := listenEvent(event.Existing, "0.0.0.0:80", 511, 0)
	existing.State = event.TCPListen
	existing.Remote = netip.AddrPort{}
	for _, tt := range []struct {
		e           *event.Event
		table, json string
	}{
		{listenEvent(event.Listen, "[::]:8080", 4096, event.FlagV6Only),
			"5370     nginx            listen      [::]:8080                -                        backlog 4096, v6only\n",
			`{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":5,"event_type":"listen","pid":5370,"tid":5370,"uid":33,"comm":"nginx","family":6,"saddr":"::","sport":8080,"daddr":"","dport":0,"direction":"inbound","backlog":4096,"v6only":true}` + "\n"},
		{listenEvent(event.Unlisten, "127.0.0.1:8000", 5, 0),
			"5370     nginx            unlisten    127.0.0.1:8000           -                        backlog 5\n",
			`{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":5,"event_type":"unlisten","pid":5370,"tid":5370,"uid":33,"comm":"nginx","family":4,"saddr":"127.0.0.1","sport":8000,"daddr":"","dport":0,"direction":"inbound","backlog":5}` + "\n"},
		{existing,
			"5370     nginx            existing    0.0.0.0:80               -                        state LISTEN, backlog 511\n",
			`{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":5,"event_type":"existing","pid":5370,"tid":5370,"uid":33,"comm":"nginx","family":4,"saddr":"0.0.0.0","sport":80,"daddr":"","dport":0,"direction":"inbound","state":"LISTEN","backlog":511}` + "\n"},
	} {
		if got := tableLine(t, tt.e); !strings.HasSuffix(got, tt.table) {
			t.Errorf("table\n got %q\nwant %q", got, tt.table)
		}
		got := jsonLine(t, tt.e)
		if got != tt.json {
			t.Errorf("json\n got %s\nwant %s", got, tt.json)
		}
		strictDecode(t, got)
	}
}

// The other end's process: DETAIL alone on a connect or accept, after
// the rest on others; peer_pid and peer_comm in JSON.
func TestPeerDetail(t *testing.T) {
	c := v4Connect()
	c.SetPeer(5370, []byte("nginx"))
	if got, want := tableLine(t, c), "10.0.0.5:53412           93.184.216.34:443        peer nginx/5370\n"; !strings.HasSuffix(got, want) {
		t.Errorf("connect\n got %q\nwant suffix %q", got, want)
	}
	cl := v4Connect()
	cl.Type, cl.DurationNs, cl.BytesSent, cl.BytesReceived, cl.Flags = event.Close, 1_200_000_000, 10, 20, event.FlagClosedLocal
	cl.SetPeer(5370, []byte("ng\x1b[2Jx"))
	if got, want := tableLine(t, cl), "1.20s, sent 10, received 20, closed by local, peer ng\\x1b[2Jx/5370\n"; !strings.HasSuffix(got, want) {
		t.Errorf("close\n got %q\nwant suffix %q", got, want)
	}
	line := jsonLine(t, c)
	if !strings.Contains(line, `"comm":"curl","peer_pid":5370,"peer_comm":"nginx","family":4`) {
		t.Errorf("json: %s", line)
	}
	if v := strictDecode(t, line); v.PeerPID != 5370 || v.PeerComm != "nginx" {
		t.Errorf("decoded peer %d/%q", v.PeerPID, v.PeerComm)
	}
}

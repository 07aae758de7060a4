package output

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/tuxscope/tuxscope/internal/event"
)

// UDP flows: TYPE udp_open/udp_close, DETAIL the packets and payload
// bytes each way, the duration and how it ended; JSON adds "proto":"udp"
// and the counters, and TCP's records keep their keys (no proto).
func TestUDPRows(t *testing.T) {
	udp := func(typ event.Type, flags event.Flags) *event.Event {
		e := &event.Event{Type: typ, Family: 4, TimestampNs: 5, Time: fixedTime, PID: 4242, TID: 4242, UID: 0,
			Local: netip.MustParseAddrPort("127.0.0.1:40000"), Remote: netip.MustParseAddrPort("127.0.0.53:53"), Flags: flags,
			PacketsSent: 2, PacketsReceived: 3, BytesSent: 60, BytesReceived: 300, DurationNs: 1500000, UDPEnd: "closed"}
		e.SetComm("dig")
		return e
	}
	in := udp(event.UDPClose, event.FlagInbound)
	in.UDPEnd = "idle"
	for _, tt := range []struct {
		e           *event.Event
		table, json string
	}{
		{udp(event.UDPOpen, 0),
			"4242     dig              udp_open    127.0.0.1:40000          127.0.0.53:53\n",
			`{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":5,"event_type":"udp_open","pid":4242,"tid":4242,"uid":0,"comm":"dig","family":4,"proto":"udp","saddr":"127.0.0.1","sport":40000,"daddr":"127.0.0.53","dport":53,"direction":"outbound"}` + "\n"},
		{udp(event.UDPClose, 0),
			"4242     dig              udp_close   127.0.0.1:40000          127.0.0.53:53            1.50ms, sent 2 packets (60 bytes), received 3 packets (300 bytes), closed\n",
			`{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":5,"event_type":"udp_close","pid":4242,"tid":4242,"uid":0,"comm":"dig","family":4,"proto":"udp","saddr":"127.0.0.1","sport":40000,"daddr":"127.0.0.53","dport":53,"direction":"outbound","duration_ns":1500000,"packets_sent":2,"packets_received":3,"bytes_sent":60,"bytes_received":300,"end":"closed"}` + "\n"},
		{in,
			"4242     dig              udp_close   127.0.0.53:53            127.0.0.1:40000          1.50ms, sent 2 packets (60 bytes), received 3 packets (300 bytes), idle\n",
			`{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":5,"event_type":"udp_close","pid":4242,"tid":4242,"uid":0,"comm":"dig","family":4,"proto":"udp","saddr":"127.0.0.53","sport":53,"daddr":"127.0.0.1","dport":40000,"direction":"inbound","duration_ns":1500000,"packets_sent":2,"packets_received":3,"bytes_sent":60,"bytes_received":300,"end":"idle"}` + "\n"},
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

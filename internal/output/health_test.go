package output

import (
	"testing"

	"github.com/tuxscope/tuxscope/internal/event"
)

// A close's health, an established's SYN retransmits, and the retransmit
// and reset events, in both formats.
func TestHealthLines(t *testing.T) {
	const head = `{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":123456789012,`
	tests := []struct {
		name        string
		e           *event.Event
		table, json string
	}{
		{"close with health", lifecycle(v4Connect(), event.Close, func(e *event.Event) {
			e.Flags = event.FlagClosedLocal
			e.DurationNs = 1_200_000_000
			e.BytesSent, e.BytesReceived = 1048576, 0
			e.SRTTUs, e.RTTVarUs, e.RetransSegs, e.BytesRetrans = 1520, 380, 3, 4344
		}),
			"6201     curl             close       10.0.0.5:53412           93.184.216.34:443        1.20s, sent 1048576, received 0, closed by local, rtt 1.52ms, 3 retrans\n",
			head + `"event_type":"close","pid":6201,"tid":6202,"uid":1000,"comm":"curl","family":4,"saddr":"10.0.0.5","sport":53412,"daddr":"93.184.216.34","dport":443,"direction":"outbound","duration_ns":1200000000,"bytes_sent":1048576,"bytes_received":0,"closed_by":"local","srtt_us":1520,"rttvar_us":380,"retrans_segs":3,"bytes_retrans":4344}` + "\n"},
		{"established after SYN retransmits", lifecycle(v4Connect(), event.Established, func(e *event.Event) {
			e.LatencyNs = 1_003_000_000
			e.SynRetrans = 1
		}),
			"6201     curl             established 10.0.0.5:53412           93.184.216.34:443        latency 1.00s, 1 SYN retrans\n",
			head + `"event_type":"established","pid":6201,"tid":6202,"uid":1000,"comm":"curl","family":4,"saddr":"10.0.0.5","sport":53412,"daddr":"93.184.216.34","dport":443,"direction":"outbound","latency_ns":1003000000,"syn_retrans":1}` + "\n"},
		{"retransmit", lifecycle(v4Connect(), event.Retransmit, func(e *event.Event) {
			e.Retransmits, e.RetransSegs, e.State = 3, 7, 1
		}),
			"6201     curl             retransmit  10.0.0.5:53412           93.184.216.34:443        3 retrans (7 in all), ESTABLISHED\n",
			head + `"event_type":"retransmit","pid":6201,"tid":6202,"uid":1000,"comm":"curl","family":4,"saddr":"10.0.0.5","sport":53412,"daddr":"93.184.216.34","dport":443,"direction":"outbound","retransmits":3,"retrans_segs":7,"state":"ESTABLISHED"}` + "\n"},
		{"reset by remote", lifecycle(v4Connect(), event.Reset, func(e *event.Event) {
			e.Flags, e.State = event.FlagClosedRemote, 1
		}),
			"6201     curl             reset       10.0.0.5:53412           93.184.216.34:443        by remote, ESTABLISHED\n",
			head + `"event_type":"reset","pid":6201,"tid":6202,"uid":1000,"comm":"curl","family":4,"saddr":"10.0.0.5","sport":53412,"daddr":"93.184.216.34","dport":443,"direction":"outbound","reset_by":"remote","state":"ESTABLISHED"}` + "\n"},
		{"reset by local", lifecycle(v4Connect(), event.Reset, func(e *event.Event) {
			e.Flags, e.State = event.FlagClosedLocal, 8
		}),
			"6201     curl             reset       10.0.0.5:53412           93.184.216.34:443        by local, CLOSE_WAIT\n",
			head + `"event_type":"reset","pid":6201,"tid":6202,"uid":1000,"comm":"curl","family":4,"saddr":"10.0.0.5","sport":53412,"daddr":"93.184.216.34","dport":443,"direction":"outbound","reset_by":"local","state":"CLOSE_WAIT"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tableLine(t, tt.e); got != tt.table {
				t.Errorf("table\n got %q\nwant %q", got, tt.table)
			}
			got := jsonLine(t, tt.e)
			if got != tt.json {
				t.Errorf("JSON\n got %s\nwant %s", got, tt.json)
			}
			decodeStrict(t, got)
		})
	}
}

package output

import (
	"encoding/json"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/tuxscope/tuxscope/internal/event"
)

// Lifecycle fixtures: the curl connection of v4Connect and the python3 one
// of v6Accept, at each of their outcomes.

func lifecycle(base *event.Event, typ event.Type, f func(e *event.Event)) *event.Event {
	base.Type = typ
	f(base)
	return base
}

func v4Established() *event.Event {
	return lifecycle(v4Connect(), event.Established, func(e *event.Event) { e.LatencyNs = 85_000 })
}

func v4Refused() *event.Event {
	return lifecycle(v4Connect(), event.Failed, func(e *event.Event) { e.Error = 111; e.LatencyNs = 850 })
}

func v4TimedOut() *event.Event {
	return lifecycle(v4Connect(), event.Failed, func(e *event.Event) { e.Error = 110; e.LatencyNs = 12_300_000_000 })
}

// v4Aborted: closed before the handshake finished, no sk_err.
func v4Aborted() *event.Event {
	return lifecycle(v4Connect(), event.Failed, func(e *event.Event) { e.LatencyNs = 1_234_000 })
}

func v4CloseLocal() *event.Event {
	return lifecycle(v4Connect(), event.Close, func(e *event.Event) {
		e.Flags = event.FlagClosedLocal
		e.DurationNs = 1_234_000_000_000
		e.BytesSent, e.BytesReceived = 1024, 2048
		e.Cookie = 4097
	})
}

// v4Update: a second's update of a connection sending 1 MB/s.
func v4Update() *event.Event {
	return lifecycle(v4Connect(), event.Update, func(e *event.Event) {
		e.State = 1
		e.BytesSent, e.BytesReceived = 3_000_000, 6_800
		e.PeriodNs, e.PeriodBytesSent, e.PeriodBytesReceived = 2_000_000_000, 2_000_000, 6_800
		e.SRTTUs, e.RTTVarUs, e.RetransSegs, e.PeriodRetrans = 1_200, 300, 5, 2
	})
}

// v6UpdateClosing: an inbound connection the client half-closed, idle
// in the period.
func v6UpdateClosing() *event.Event {
	return lifecycle(v6Accept(), event.Update, func(e *event.Event) {
		e.Flags = event.FlagInbound
		e.State = 8
		e.BytesReceived = 512
		e.PeriodNs = 1_000_000_000
	})
}

// v6CloseInbound: an accepted connection established before tracing
// started (duration unknown), closed by the client.
func v6CloseInbound() *event.Event {
	return lifecycle(v6Accept(), event.Close, func(e *event.Event) {
		e.Flags = event.FlagInbound | event.FlagClosedRemote
		e.BytesReceived = 512
	})
}

// v4CloseUnknownBy: the kernel did not say who closed first.
func v4CloseUnknownBy() *event.Event {
	return lifecycle(v4Connect(), event.Close, func(e *event.Event) {
		e.DurationNs = 85_000
		e.BytesSent, e.BytesReceived = 5, 7
	})
}

// v4Reset: the peer reset the connection.
func v4Reset() *event.Event {
	return lifecycle(v4Connect(), event.Close, func(e *event.Event) {
		e.Flags = event.FlagClosedRemote
		e.Error = 104
		e.DurationNs = 12_300_000_000
		e.BytesSent, e.BytesReceived = 10, 20
	})
}

// v6CloseOrphan: the close of an accepted connection whose accept tuxscope
// never saw: no owner.
func v6CloseOrphan() *event.Event {
	return lifecycle(v6Accept(), event.Close, func(e *event.Event) {
		e.PID, e.TID, e.UID = 0, 0, 0
		e.SetComm("")
		e.Flags = event.FlagInbound | event.FlagClosedRemote
	})
}

type lifecycleCase struct {
	name        string
	e           *event.Event
	table, json string
}

func lifecycleCases() []lifecycleCase {
	return []lifecycleCase{
		{"established", v4Established(),
			"6201     curl             established 10.0.0.5:53412           93.184.216.34:443        latency 85.0µs\n",
			`{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":123456789012,"event_type":"established","pid":6201,"tid":6202,"uid":1000,"comm":"curl","family":4,"saddr":"10.0.0.5","sport":53412,"daddr":"93.184.216.34","dport":443,"direction":"outbound","latency_ns":85000,"syn_retrans":0}` + "\n"},
		{"failed ECONNREFUSED", v4Refused(),
			"6201     curl             failed      10.0.0.5:53412           93.184.216.34:443        refused (ECONNREFUSED) after 850ns\n",
			`{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":123456789012,"event_type":"failed","pid":6201,"tid":6202,"uid":1000,"comm":"curl","family":4,"saddr":"10.0.0.5","sport":53412,"daddr":"93.184.216.34","dport":443,"direction":"outbound","latency_ns":850,"reason":"refused","error":"ECONNREFUSED"}` + "\n"},
		{"failed ETIMEDOUT", v4TimedOut(),
			"6201     curl             failed      10.0.0.5:53412           93.184.216.34:443        timed out (ETIMEDOUT) after 12.3s\n",
			`{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":123456789012,"event_type":"failed","pid":6201,"tid":6202,"uid":1000,"comm":"curl","family":4,"saddr":"10.0.0.5","sport":53412,"daddr":"93.184.216.34","dport":443,"direction":"outbound","latency_ns":12300000000,"reason":"timed out","error":"ETIMEDOUT"}` + "\n"},
		// errno 0: a reason, but no error key and no errno in DETAIL.
		{"failed errno 0", v4Aborted(),
			"6201     curl             failed      10.0.0.5:53412           93.184.216.34:443        aborted after 1.23ms\n",
			`{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":123456789012,"event_type":"failed","pid":6201,"tid":6202,"uid":1000,"comm":"curl","family":4,"saddr":"10.0.0.5","sport":53412,"daddr":"93.184.216.34","dport":443,"direction":"outbound","latency_ns":1234000,"reason":"aborted"}` + "\n"},
		{"close known duration, closed by local", v4CloseLocal(),
			"6201     curl             close       10.0.0.5:53412           93.184.216.34:443        1234s, sent 1024, received 2048, closed by local\n",
			`{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":123456789012,"event_type":"close","pid":6201,"tid":6202,"uid":1000,"comm":"curl","family":4,"saddr":"10.0.0.5","sport":53412,"daddr":"93.184.216.34","dport":443,"direction":"outbound","duration_ns":1234000000000,"bytes_sent":1024,"bytes_received":2048,"closed_by":"local","srtt_us":0,"rttvar_us":0,"retrans_segs":0,"bytes_retrans":0}` + "\n"},
		// Inbound: SRC is the client, as for its accept; no duration_ns key.
		{"close inbound unknown duration, closed by remote", v6CloseInbound(),
			"42       python3          close       [2001:db8::2]:40000      [2001:db8::1]:8080       duration ?, sent 0, received 512, closed by remote\n",
			`{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":987654321,"event_type":"close","pid":42,"tid":43,"uid":0,"comm":"python3","family":6,"saddr":"2001:db8::2","sport":40000,"daddr":"2001:db8::1","dport":8080,"direction":"inbound","bytes_sent":0,"bytes_received":512,"closed_by":"remote","srtt_us":0,"rttvar_us":0,"retrans_segs":0,"bytes_retrans":0}` + "\n"},
		{"close closed_by unknown", v4CloseUnknownBy(),
			"6201     curl             close       10.0.0.5:53412           93.184.216.34:443        85.0µs, sent 5, received 7\n",
			`{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":123456789012,"event_type":"close","pid":6201,"tid":6202,"uid":1000,"comm":"curl","family":4,"saddr":"10.0.0.5","sport":53412,"daddr":"93.184.216.34","dport":443,"direction":"outbound","duration_ns":85000,"bytes_sent":5,"bytes_received":7,"srtt_us":0,"rttvar_us":0,"retrans_segs":0,"bytes_retrans":0}` + "\n"},
		{"close reset ECONNRESET", v4Reset(),
			"6201     curl             close       10.0.0.5:53412           93.184.216.34:443        12.3s, sent 10, received 20, closed by remote, reset (ECONNRESET)\n",
			`{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":123456789012,"event_type":"close","pid":6201,"tid":6202,"uid":1000,"comm":"curl","family":4,"saddr":"10.0.0.5","sport":53412,"daddr":"93.184.216.34","dport":443,"direction":"outbound","duration_ns":12300000000,"bytes_sent":10,"bytes_received":20,"closed_by":"remote","srtt_us":0,"rttvar_us":0,"retrans_segs":0,"bytes_retrans":0,"reason":"reset","error":"ECONNRESET"}` + "\n"},
		{"update", v4Update(),
			"6201     curl             update      10.0.0.5:53412           93.184.216.34:443        sent 1.00MB/s, received 3.40kB/s, rtt 1.20ms, 2 retrans\n",
			`{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":123456789012,"event_type":"update","pid":6201,"tid":6202,"uid":1000,"comm":"curl","family":4,"saddr":"10.0.0.5","sport":53412,"daddr":"93.184.216.34","dport":443,"direction":"outbound","state":"ESTABLISHED","bytes_sent":3000000,"bytes_received":6800,"period_ns":2000000000,"period_bytes_sent":2000000,"period_bytes_received":6800,"send_bytes_per_s":1000000,"receive_bytes_per_s":3400,"srtt_us":1200,"rttvar_us":300,"period_retrans":2,"retrans_segs":5}` + "\n"},
		{"update idle, closing", v6UpdateClosing(),
			"42       python3          update      [2001:db8::2]:40000      [2001:db8::1]:8080       sent 0B/s, received 0B/s, CLOSE_WAIT\n",
			`{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":987654321,"event_type":"update","pid":42,"tid":43,"uid":0,"comm":"python3","family":6,"saddr":"2001:db8::2","sport":40000,"daddr":"2001:db8::1","dport":8080,"direction":"inbound","state":"CLOSE_WAIT","bytes_sent":0,"bytes_received":512,"period_ns":1000000000,"period_bytes_sent":0,"period_bytes_received":0,"send_bytes_per_s":0,"receive_bytes_per_s":0,"srtt_us":0,"rttvar_us":0,"period_retrans":0,"retrans_segs":0}` + "\n"},
		// PID 0: "-" for PID and COMM in the table; 0 and "" in JSON.
		{"close without owner", v6CloseOrphan(),
			"-        -                close       [2001:db8::2]:40000      [2001:db8::1]:8080       duration ?, sent 0, received 0, closed by remote\n",
			`{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":987654321,"event_type":"close","pid":0,"tid":0,"uid":0,"comm":"","family":6,"saddr":"2001:db8::2","sport":40000,"daddr":"2001:db8::1","dport":8080,"direction":"inbound","bytes_sent":0,"bytes_received":0,"closed_by":"remote","srtt_us":0,"rttvar_us":0,"retrans_segs":0,"bytes_retrans":0}` + "\n"},
	}
}

func TestTableLifecycle(t *testing.T) {
	starts := columnStarts()
	if want := []int{0, 9, 26, 38, 63, 88}; !slices.Equal(starts, want) {
		t.Fatalf("header columns at %v, want %v", starts, want)
	}
	for _, tt := range lifecycleCases() {
		t.Run(tt.name, func(t *testing.T) {
			got := tableLine(t, tt.e)
			if got != tt.table {
				t.Errorf("line\n got %q\nwant %q", got, tt.table)
			}
			// Each value, DETAIL included, starts under its header.
			for _, c := range starts[1:] {
				if c >= len(got) || got[c-1] != ' ' || got[c] == ' ' {
					t.Errorf("no column start at %d in %q", c, got)
				}
			}
			if strings.Count(got, "\n") != 1 || strings.HasSuffix(got, " \n") {
				t.Errorf("%q: not one line, or trailing space", got)
			}
			checkTerminalSafe(t, []byte(got))
		})
	}
}

// A DST wider than its column pushes DETAIL right by one space, as the
// other columns do.
func TestTableDetailAfterLongDst(t *testing.T) {
	e := v4Reset()
	e.Local = netip.MustParseAddrPort("[2001:db8::5]:53412")
	e.Remote = netip.MustParseAddrPort("[2001:db8:1234:5678:9abc:def0:1234:5678]:443")
	e.Family = 6
	want := "6201     curl             close       [2001:db8::5]:53412      [2001:db8:1234:5678:9abc:def0:1234:5678]:443 12.3s, sent 10, received 20, closed by remote, reset (ECONNRESET)\n"
	if got := tableLine(t, e); got != want {
		t.Errorf("line\n got %q\nwant %q", got, want)
	}
}

// Lifecycle fields left on other events are not shown: connect and accept
// have no DETAIL, existing shows only its TCP state.
func TestTableNoDetailForOtherTypes(t *testing.T) {
	tests := []struct {
		typ  event.Type
		want string
	}{
		{event.Connect, "6201     curl             connect     10.0.0.5:53412           93.184.216.34:443\n"},
		{event.Accept, "6201     curl             accept      93.184.216.34:443        10.0.0.5:53412\n"},
		{event.Existing, "6201     curl             existing    10.0.0.5:53412           93.184.216.34:443        state ESTABLISHED\n"},
	}
	for _, tt := range tests {
		e := v4Reset()
		e.Type = tt.typ
		e.LatencyNs = 85_000
		e.State = 1
		if got := tableLine(t, e); got != tt.want {
			t.Errorf("%v: line\n got %q\nwant %q", tt.typ, got, tt.want)
		}
	}
}

// An errno with no name is shown by number.
func TestLifecycleUnknownErrno(t *testing.T) {
	e := v4CloseLocal()
	e.DurationNs = 1_200_000_000
	e.Error = 9999
	wantTable := "6201     curl             close       10.0.0.5:53412           93.184.216.34:443        1.20s, sent 1024, received 2048, closed by local, error (errno 9999)\n"
	if got := tableLine(t, e); got != wantTable {
		t.Errorf("table line\n got %q\nwant %q", got, wantTable)
	}
	wantJSON := `{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":123456789012,"event_type":"close","pid":6201,"tid":6202,"uid":1000,"comm":"curl","family":4,"saddr":"10.0.0.5","sport":53412,"daddr":"93.184.216.34","dport":443,"direction":"outbound","duration_ns":1200000000,"bytes_sent":1024,"bytes_received":2048,"closed_by":"local","srtt_us":0,"rttvar_us":0,"retrans_segs":0,"bytes_retrans":0,"reason":"error","error":"errno 9999"}` + "\n"
	if got := jsonLine(t, e); got != wantJSON {
		t.Errorf("JSON line\n got %s\nwant %s", got, wantJSON)
	}

	f := v4Refused()
	f.Error = 9999
	wantTable = "6201     curl             failed      10.0.0.5:53412           93.184.216.34:443        error (errno 9999) after 850ns\n"
	if got := tableLine(t, f); got != wantTable {
		t.Errorf("table line\n got %q\nwant %q", got, wantTable)
	}
}

func TestJSONLifecycle(t *testing.T) {
	for _, tt := range lifecycleCases() {
		t.Run(tt.name, func(t *testing.T) {
			got := jsonLine(t, tt.e)
			if got != tt.json {
				t.Errorf("line\n got %s\nwant %s", got, tt.json)
			}
			if !json.Valid([]byte(got)) {
				t.Fatalf("not valid JSON: %s", got)
			}
			strictDecode(t, got) // only the schema's keys
		})
	}
}

// Which keys each lifecycle event has, and of which JSON type.
func TestJSONLifecycleKeys(t *testing.T) {
	common := []string{"time", "timestamp_ns", "event_type", "pid", "tid", "uid", "comm", "family", "saddr", "sport", "daddr", "dport", "direction"}
	tests := []struct {
		e     *event.Event
		extra []string
	}{
		{v4Established(), []string{"latency_ns", "syn_retrans"}},
		{v4Refused(), []string{"latency_ns", "reason", "error"}},
		{v4Aborted(), []string{"latency_ns", "reason"}},
		{v4CloseLocal(), []string{"duration_ns", "bytes_sent", "bytes_received", "closed_by", "srtt_us", "rttvar_us", "retrans_segs", "bytes_retrans"}},
		{v6CloseInbound(), []string{"bytes_sent", "bytes_received", "closed_by", "srtt_us", "rttvar_us", "retrans_segs", "bytes_retrans"}},
		{v4CloseUnknownBy(), []string{"duration_ns", "bytes_sent", "bytes_received", "srtt_us", "rttvar_us", "retrans_segs", "bytes_retrans"}},
		{v4Reset(), []string{"duration_ns", "bytes_sent", "bytes_received", "closed_by", "reason", "error", "srtt_us", "rttvar_us", "retrans_segs", "bytes_retrans"}},
	}
	numbers := map[string]bool{"timestamp_ns": true, "pid": true, "tid": true, "uid": true, "family": true, "sport": true, "dport": true,
		"latency_ns": true, "duration_ns": true, "bytes_sent": true, "bytes_received": true,
		"srtt_us": true, "rttvar_us": true, "retrans_segs": true, "bytes_retrans": true, "syn_retrans": true}
	for _, tt := range tests {
		line := jsonLine(t, tt.e)
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		want := append(slices.Clone(common), tt.extra...)
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		slices.Sort(want)
		if !slices.Equal(keys, want) {
			t.Errorf("%s: keys %v, want %v", line, keys, want)
		}
		for k, v := range m {
			if _, isNum := v.(float64); isNum != numbers[k] {
				t.Errorf("%s: %s = %#v, number: %v, want %v", line, k, v, isNum, numbers[k])
			}
		}
	}
}

// uint64 values come out exactly, not through a float.
func TestJSONLifecycleLargeValues(t *testing.T) {
	e := v4Reset()
	e.DurationNs = 1<<64 - 1
	e.BytesSent = 1<<64 - 2
	e.BytesReceived = 1<<53 + 1
	v := decodeStrict(t, jsonLine(t, e))
	if v.DurationNs == nil || *v.DurationNs != 1<<64-1 ||
		v.BytesSent == nil || *v.BytesSent != 1<<64-2 ||
		v.BytesReceived == nil || *v.BytesReceived != 1<<53+1 {
		t.Errorf("decoded duration/sent/received = %v/%v/%v", v.DurationNs, v.BytesSent, v.BytesReceived)
	}
	if v.LatencyNs != nil || v.ClosedBy != "remote" || v.Reason != "reset" || v.Error != "ECONNRESET" || v.Direction != "outbound" {
		t.Errorf("decoded %+v", v)
	}
	e = v4Established()
	e.LatencyNs = 1<<64 - 1
	if v := decodeStrict(t, jsonLine(t, e)); v.LatencyNs == nil || *v.LatencyNs != 1<<64-1 {
		t.Errorf("latency_ns = %v, want %d", v.LatencyNs, uint64(1<<64-1))
	}
}

func TestAppendDuration(t *testing.T) {
	tests := []struct {
		ns   uint64
		want string
	}{
		{0, "0ns"},
		{1, "1ns"},
		{850, "850ns"},
		{999, "999ns"},
		{1_000, "1.00µs"},
		{1_500, "1.50µs"},
		{85_000, "85.0µs"},
		{123_456, "123µs"},
		{1_000_000, "1.00ms"},
		{1_234_000, "1.23ms"},
		{12_345_678, "12.3ms"},
		{123_000_000, "123ms"},
		{1_200_000_000, "1.20s"},
		{12_300_000_000, "12.3s"},
		{123_000_000_000, "123s"},
		{1_234_000_000_000, "1234s"},
		{86_400_000_000_000, "86400s"},
	}
	for _, tt := range tests {
		got := AppendDuration([]byte("pre|"), tt.ns)
		if string(got) != "pre|"+tt.want {
			t.Errorf("AppendDuration(%d) = %q, want %q", tt.ns, got[4:], tt.want)
		}
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		errno uint32
		want  string
	}{
		{0, "aborted"},
		{111, "refused"},   // ECONNREFUSED
		{110, "timed out"}, // ETIMEDOUT
		{113, "host unreachable"},
		{101, "network unreachable"},
		{104, "reset"},              // ECONNRESET
		{103, "connection aborted"}, // ECONNABORTED
		{32, "broken pipe"},
		{1, "error"}, // EPERM: named, but no words for it
		{9999, "error"},
	}
	for _, tt := range tests {
		if got := Reason(tt.errno); got != tt.want {
			t.Errorf("Reason(%d) = %q, want %q", tt.errno, got, tt.want)
		}
	}
}

func TestErrnoName(t *testing.T) {
	tests := []struct {
		errno uint32
		want  string
	}{
		{111, "ECONNREFUSED"},
		{110, "ETIMEDOUT"},
		{104, "ECONNRESET"},
		{113, "EHOSTUNREACH"},
		{101, "ENETUNREACH"},
		{103, "ECONNABORTED"},
		{32, "EPIPE"},
		{1, "EPERM"},
		{9999, "errno 9999"},
		{4294967295, "errno 4294967295"},
	}
	for _, tt := range tests {
		if got := ErrnoName(tt.errno); got != tt.want {
			t.Errorf("ErrnoName(%d) = %q, want %q", tt.errno, got, tt.want)
		}
	}
}

// Lifecycle events cost no allocation either, in either format.
func TestSinkAllocsLifecycle(t *testing.T) {
	for _, f := range []Format{FormatTable, FormatJSON} {
		for _, tt := range lifecycleCases() {
			s := New(f, io.Discard, io.Discard)
			if err := s.Event(tt.e); err != nil { // warm up the line buffer
				t.Fatal(err)
			}
			allocs := testing.AllocsPerRun(1000, func() {
				if err := s.Event(tt.e); err != nil {
					panic(err)
				}
			})
			if allocs != 0 {
				t.Errorf("%s Event(%s): %v allocs per run, want 0", f, tt.name, allocs)
			}
		}
	}
}

// Likewise in JSON: connect and accept lines have no lifecycle keys, even
// with lifecycle fields set.
func TestJSONNoLifecycleKeysForOtherTypes(t *testing.T) {
	e := v4Reset()
	e.Type = event.Connect
	e.LatencyNs = 85_000
	want := `{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":123456789012,"event_type":"connect","pid":6201,"tid":6202,"uid":1000,"comm":"curl","family":4,"saddr":"10.0.0.5","sport":53412,"daddr":"93.184.216.34","dport":443,"direction":"outbound"}` + "\n"
	if got := jsonLine(t, e); got != want {
		t.Errorf("connect line\n got %s\nwant %s", got, want)
	}
	e.Type = event.Accept
	want = `{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":123456789012,"event_type":"accept","pid":6201,"tid":6202,"uid":1000,"comm":"curl","family":4,"saddr":"93.184.216.34","sport":443,"daddr":"10.0.0.5","dport":53412,"direction":"inbound"}` + "\n"
	if got := jsonLine(t, e); got != want {
		t.Errorf("accept line\n got %s\nwant %s", got, want)
	}
}

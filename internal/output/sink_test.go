package output

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tuxscope/tuxscope/internal/event"
)

var fixedTime = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)

func v4Connect() *event.Event {
	e := &event.Event{
		Type:        event.Connect,
		Family:      4,
		TimestampNs: 123456789012,
		Time:        fixedTime,
		PID:         6201,
		TID:         6202,
		UID:         1000,
		Local:       netip.MustParseAddrPort("10.0.0.5:53412"),
		Remote:      netip.MustParseAddrPort("93.184.216.34:443"),
	}
	e.SetComm("curl")
	return e
}

func v6Accept() *event.Event {
	e := &event.Event{
		Type:        event.Accept,
		Family:      6,
		TimestampNs: 987654321,
		Time:        fixedTime,
		PID:         42,
		TID:         43,
		UID:         0,
		Local:       netip.MustParseAddrPort("[2001:db8::1]:8080"),
		Remote:      netip.MustParseAddrPort("[2001:db8::2]:40000"),
	}
	e.SetComm("python3")
	return e
}

func v4MappedAccept() *event.Event {
	e := &event.Event{
		Type:        event.Accept,
		Family:      6,
		TimestampNs: 5,
		Time:        fixedTime,
		PID:         7,
		TID:         7,
		UID:         33,
		Local:       netip.MustParseAddrPort("[::ffff:10.0.0.1]:80"),
		Remote:      netip.MustParseAddrPort("[::ffff:1.2.3.4]:51000"),
	}
	e.SetComm("nginx")
	return e
}

func tableLine(t *testing.T, e *event.Event) string {
	t.Helper()
	var out, diag bytes.Buffer
	s := New(FormatTable, &out, &diag)
	if err := s.Event(e); err != nil {
		t.Fatalf("Event: %v", err)
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if diag.Len() != 0 {
		t.Errorf("diag got %q", diag.String())
	}
	return out.String()
}

func jsonLine(t *testing.T, e *event.Event) string {
	t.Helper()
	var out, diag bytes.Buffer
	s := New(FormatJSON, &out, &diag)
	if err := s.Event(e); err != nil {
		t.Fatalf("Event: %v", err)
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if diag.Len() != 0 {
		t.Errorf("diag got %q", diag.String())
	}
	return out.String()
}

func TestParseFormat(t *testing.T) {
	for _, s := range []string{"table", "json"} {
		f, err := ParseFormat(s)
		if err != nil || string(f) != s {
			t.Errorf("ParseFormat(%q) = %q, %v", s, f, err)
		}
	}
	for _, s := range []string{"", "xml", "JSON", "Table", "json "} {
		f, err := ParseFormat(s)
		if err == nil || f != "" {
			t.Errorf("ParseFormat(%q) = %q, %v; want an error", s, f, err)
		}
	}
	_, err := ParseFormat("xml")
	if want := `unknown format "xml" (want table or json)`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

func TestNew(t *testing.T) {
	if _, ok := New(FormatTable, io.Discard, io.Discard).(*Table); !ok {
		t.Error("New(table) is not a *Table")
	}
	if _, ok := New(FormatJSON, io.Discard, io.Discard).(*JSON); !ok {
		t.Error("New(json) is not a *JSON")
	}
}

func TestTableStart(t *testing.T) {
	var out, diag bytes.Buffer
	s := New(FormatTable, &out, &diag)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := "PID      COMM             TYPE        SRC                      DST                      DETAIL\n"; out.String() != want || tableHeader != want {
		t.Errorf("header = %q, want %q", out.String(), want)
	}
	if diag.Len() != 0 {
		t.Errorf("diag = %q", diag.String())
	}
}

// columnStarts is where each header column begins.
func columnStarts() []int {
	var starts []int
	for _, name := range []string{"PID", "COMM", "TYPE", "SRC", "DST", "DETAIL"} {
		starts = append(starts, strings.Index(tableHeader, name))
	}
	return starts
}

func TestTableEvent(t *testing.T) {
	tests := []struct {
		name string
		e    *event.Event
		want string
	}{
		{"IPv4 connect", v4Connect(),
			"6201     curl             connect     10.0.0.5:53412           93.184.216.34:443\n"},
		{"IPv6 accept", v6Accept(),
			"42       python3          accept      [2001:db8::2]:40000      [2001:db8::1]:8080\n"},
		{"v4-mapped accept", v4MappedAccept(),
			"7        nginx            accept      [::ffff:1.2.3.4]:51000   [::ffff:10.0.0.1]:80\n"},
	}
	starts := columnStarts()
	if want := []int{0, 9, 26, 38, 63, 88}; !slices.Equal(starts, want) {
		t.Fatalf("header columns at %v, want %v", starts, want)
	}
	// connect and accept have no DETAIL: the line ends with DST.
	starts = starts[:5]
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tableLine(t, tt.e)
			if got != tt.want {
				t.Errorf("line\n got %q\nwant %q", got, tt.want)
			}
			// Each value starts under its header.
			for _, c := range starts[1:] {
				if c >= len(got) || got[c-1] != ' ' || got[c] == ' ' {
					t.Errorf("no column start at %d in %q", c, got)
				}
			}
		})
	}
}

func TestTableOverlongColumns(t *testing.T) {
	e := v6Accept()
	e.PID = 4294967295 // 10 digits, wider than the PID column
	e.SetComm("0123456789abcdefg")
	e.Remote = netip.MustParseAddrPort("[2001:db8:1234:5678:9abc:def0:1234:5678]:65535")
	want := "4294967295 0123456789abcde  accept      [2001:db8:1234:5678:9abc:def0:1234:5678]:65535 [2001:db8::1]:8080\n"
	if got := tableLine(t, e); got != want {
		t.Errorf("line\n got %q\nwant %q", got, want)
	}
}

func TestTableHostileComm(t *testing.T) {
	tests := []struct{ comm, want string }{
		{"\x1b[31mevil", `6201     \x1b[31mevil     connect     10.0.0.5:53412           93.184.216.34:443` + "\n"},
		{"a\nb", `6201     a\x0ab           connect     10.0.0.5:53412           93.184.216.34:443` + "\n"},
		{"a\rb", `6201     a\x0db           connect     10.0.0.5:53412           93.184.216.34:443` + "\n"},
		{"a\tb", `6201     a\x09b           connect     10.0.0.5:53412           93.184.216.34:443` + "\n"},
		{"a\x7fb", `6201     a\x7fb           connect     10.0.0.5:53412           93.184.216.34:443` + "\n"},
		{"a\x9bb", `6201     a\x9bb           connect     10.0.0.5:53412           93.184.216.34:443` + "\n"},
		{"a\xffb", `6201     a\xffb           connect     10.0.0.5:53412           93.184.216.34:443` + "\n"},
		{`a\b`, `6201     a\\b             connect     10.0.0.5:53412           93.184.216.34:443` + "\n"},
		{"héllo", "6201     héllo            connect     10.0.0.5:53412           93.184.216.34:443\n"},
		{"\x1b\x1b\x1b\x1b\x1b", `6201     \x1b\x1b\x1b\x1b\x1b connect     10.0.0.5:53412           93.184.216.34:443` + "\n"},
	}
	for _, tt := range tests {
		e := v4Connect()
		e.SetComm(tt.comm)
		got := tableLine(t, e)
		if got != tt.want {
			t.Errorf("comm %q:\n got %q\nwant %q", tt.comm, got, tt.want)
		}
		if !strings.HasSuffix(got, "\n") || strings.Count(got, "\n") != 1 {
			t.Errorf("comm %q: %q is not exactly one line", tt.comm, got)
		}
		checkTerminalSafe(t, []byte(got))
	}
	// Every byte value, followed by a printable one.
	for c := 0; c < 256; c++ {
		e := v4Connect()
		e.SetComm(string([]byte{byte(c), 'x'}))
		got := tableLine(t, e)
		if strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
			t.Errorf("byte %#x: %q is not one line", c, got)
		}
		checkTerminalSafe(t, []byte(got))
	}
}

func TestTableLostGoesToDiag(t *testing.T) {
	var out, diag bytes.Buffer
	s := New(FormatTable, &out, &diag)
	if err := s.Lost(17, event.RingBufferFull, fixedTime); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Errorf("stdout = %q, want nothing", out.String())
	}
	if want := "tuxscope: lost 17 events: the ring buffer was full (try a larger --buffer-size)\n"; diag.String() != want {
		t.Errorf("diag = %q, want %q", diag.String(), want)
	}
}

func TestJSONStartWritesNothing(t *testing.T) {
	var out, diag bytes.Buffer
	if err := New(FormatJSON, &out, &diag).Start(); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 || diag.Len() != 0 {
		t.Errorf("Start wrote %q / %q", out.String(), diag.String())
	}
}

func TestJSONEvent(t *testing.T) {
	tests := []struct {
		name string
		e    *event.Event
		want string
	}{
		{"IPv4 connect", v4Connect(),
			`{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":123456789012,"event_type":"connect","pid":6201,"tid":6202,"uid":1000,"comm":"curl","family":4,"saddr":"10.0.0.5","sport":53412,"daddr":"93.184.216.34","dport":443,"direction":"outbound"}` + "\n"},
		// For an accept, saddr/sport are the remote client.
		{"IPv6 accept", v6Accept(),
			`{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":987654321,"event_type":"accept","pid":42,"tid":43,"uid":0,"comm":"python3","family":6,"saddr":"2001:db8::2","sport":40000,"daddr":"2001:db8::1","dport":8080,"direction":"inbound"}` + "\n"},
		{"v4-mapped accept", v4MappedAccept(),
			`{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":5,"event_type":"accept","pid":7,"tid":7,"uid":33,"comm":"nginx","family":6,"saddr":"::ffff:1.2.3.4","sport":51000,"daddr":"::ffff:10.0.0.1","dport":80,"direction":"inbound"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := jsonLine(t, tt.e)
			if got != tt.want {
				t.Errorf("line\n got %s\nwant %s", got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("not valid JSON: %s", got)
			}
		})
	}
}

func TestJSONTimeFormat(t *testing.T) {
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), "2024-01-02T03:04:05.000000000Z"},
		{time.Date(2024, 1, 2, 3, 4, 5, 1000, time.UTC), "2024-01-02T03:04:05.000001000Z"},
		{time.Date(2024, 1, 2, 3, 4, 5, 7, time.FixedZone("CEST", 2*3600)), "2024-01-02T03:04:05.000000007+02:00"},
	}
	for _, tt := range tests {
		e := v4Connect()
		e.Time = tt.t
		got := jsonLine(t, e)
		if prefix := `{"time":"` + tt.want + `","timestamp_ns":`; !strings.HasPrefix(got, prefix) {
			t.Errorf("time %v: line %s, want prefix %s", tt.t, got, prefix)
		}
		var v struct{ Time time.Time }
		if err := json.Unmarshal([]byte(got), &v); err != nil || !v.Time.Equal(tt.t) {
			t.Errorf("time %v reads back as %v (%v)", tt.t, v.Time, err)
		}
	}
}

// jsonEvent is the schema of a JSON event line; numbers as numbers,
// addresses as strings.
type jsonEvent struct {
	Time        string `json:"time"`
	TimestampNs uint64 `json:"timestamp_ns"`
	EventType   string `json:"event_type"`
	PID         uint32 `json:"pid"`
	TID         uint32 `json:"tid"`
	UID         uint32 `json:"uid"`
	Comm        string `json:"comm"`
	Family      uint8  `json:"family"`
	Saddr       string `json:"saddr"`
	Sport       uint16 `json:"sport"`
	Daddr       string `json:"daddr"`
	Dport       uint16 `json:"dport"`
	Direction   string `json:"direction"`
	// Lifecycle keys: nil or "" when absent.
	LatencyNs     *uint64 `json:"latency_ns"`
	DurationNs    *uint64 `json:"duration_ns"`
	BytesSent     *uint64 `json:"bytes_sent"`
	BytesReceived *uint64 `json:"bytes_received"`
	ClosedBy      string  `json:"closed_by"`
	Reason        string  `json:"reason"`
	Error         string  `json:"error"`
	// Health keys (close, existing, established, retransmit, reset).
	SRTTUs       *uint32 `json:"srtt_us"`
	RTTVarUs     *uint32 `json:"rttvar_us"`
	RetransSegs  *uint32 `json:"retrans_segs"`
	BytesRetrans *uint64 `json:"bytes_retrans"`
	SynRetrans   *uint8  `json:"syn_retrans"`
	Retransmits  *uint32 `json:"retransmits"`
	State        string  `json:"state"`
	ResetBy      string  `json:"reset_by"`
}

func decodeStrict(t *testing.T, line string) jsonEvent {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	var v jsonEvent
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %s: %v", line, err)
	}
	return v
}

func TestJSONSchemaTypes(t *testing.T) {
	line := jsonLine(t, v6Accept())
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatal(err)
	}
	if len(m) != 13 {
		t.Errorf("%d keys, want 13: %v", len(m), m)
	}
	for _, k := range []string{"timestamp_ns", "pid", "tid", "uid", "family", "sport", "dport"} {
		if _, ok := m[k].(float64); !ok {
			t.Errorf("%s = %#v, want a number", k, m[k])
		}
	}
	for _, k := range []string{"time", "event_type", "comm", "saddr", "daddr", "direction"} {
		if _, ok := m[k].(string); !ok {
			t.Errorf("%s = %#v, want a string", k, m[k])
		}
	}
	v := decodeStrict(t, line)
	want := jsonEvent{Time: "2024-05-06T07:08:09.123456789Z", TimestampNs: 987654321, EventType: "accept", PID: 42, TID: 43, UID: 0,
		Comm: "python3", Family: 6, Saddr: "2001:db8::2", Sport: 40000, Daddr: "2001:db8::1", Dport: 8080, Direction: "inbound"}
	if v != want {
		t.Errorf("decoded %+v, want %+v", v, want)
	}
}

func TestJSONHostileComm(t *testing.T) {
	tests := []struct{ comm, wantJSON, wantBack string }{
		{"\x1b[31mevil", `"\u001b[31mevil"`, "\x1b[31mevil"},
		{"a\nb", `"a\nb"`, "a\nb"},
		{"a\rb", `"a\rb"`, "a\rb"},
		{"a\tb", `"a\tb"`, "a\tb"},
		{"a\x7fb", `"a\u007fb"`, "a\x7fb"},
		{`a\b`, `"a\\b"`, `a\b`},
		{`a"b`, `"a\"b"`, `a"b`},
		{"\x00", `"\u0000"`, "\x00"},
		{"héllo", `"héllo"`, "héllo"},
		{"\u2028", `"\u2028"`, "\u2028"},
		{"\u009b", "\"\u009b\"", "\u009b"},
		{"a\xffb", `"a\ufffdb"`, "a\uFFFDb"},
		{"a\x9bb", `"a\ufffdb"`, "a\uFFFDb"},
		{"\xc3(", `"\ufffd("`, "\uFFFD("},
	}
	for _, tt := range tests {
		e := v4Connect()
		e.SetComm(tt.comm)
		line := jsonLine(t, e)
		want := `{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":123456789012,"event_type":"connect","pid":6201,"tid":6202,"uid":1000,"comm":` +
			tt.wantJSON + `,"family":4,"saddr":"10.0.0.5","sport":53412,"daddr":"93.184.216.34","dport":443,"direction":"outbound"}` + "\n"
		if line != want {
			t.Errorf("comm %q:\n got %s\nwant %s", tt.comm, line, want)
		}
		if !json.Valid([]byte(line)) {
			t.Errorf("comm %q: invalid JSON %s", tt.comm, line)
			continue
		}
		if v := decodeStrict(t, line); v.Comm != tt.wantBack {
			t.Errorf("comm %q reads back as %q, want %q", tt.comm, v.Comm, tt.wantBack)
		}
	}
	// Every byte value: each line valid, one line, and comm round-trips
	// (valid UTF-8 exactly, an invalid byte as U+FFFD).
	for c := 0; c < 256; c++ {
		name := string([]byte{'<', byte(c), '>'})
		e := v4Connect()
		e.SetComm(name)
		line := jsonLine(t, e)
		if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") || !json.Valid([]byte(line)) {
			t.Errorf("byte %#x: bad line %q", c, line)
			continue
		}
		if v := decodeStrict(t, line); v.Comm != string([]rune(name)) {
			t.Errorf("byte %#x: comm reads back as %q", c, v.Comm)
		}
	}
}

func TestLostSkipped(t *testing.T) {
	var out, diag bytes.Buffer
	if err := New(FormatTable, &out, &diag).Lost(3, event.HookSkipped, fixedTime); err != nil {
		t.Fatal(err)
	}
	if want := "tuxscope: up to 3 events missing: the kernel skipped tuxscope's programs 3 times (another BPF program was running on that CPU)\n"; diag.String() != want || out.Len() != 0 {
		t.Errorf("table: stdout %q, stderr %q, want stderr %q", out.String(), diag.String(), want)
	}
	out.Reset()
	diag.Reset()
	s := New(FormatJSON, &out, &diag)
	if err := s.Lost(3, event.HookSkipped, fixedTime); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(); err != nil {
		t.Fatal(err)
	}
	if want := `{"time":"2024-05-06T07:08:09.123456789Z","event_type":"lost","count":3,"reason":"hook_skipped"}` + "\n"; out.String() != want || diag.Len() != 0 {
		t.Errorf("json: stdout %q, stderr %q, want stdout %q", out.String(), diag.String(), want)
	}
}

func TestJSONLost(t *testing.T) {
	var out, diag bytes.Buffer
	s := New(FormatJSON, &out, &diag)
	if err := s.Event(v4Connect()); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := s.Lost(1234, event.RingBufferFull, fixedTime); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := `{"time":"2024-05-06T07:08:09.123456789Z","event_type":"lost","count":1234,"reason":"ring_buffer_full"}` + "\n"; out.String() != want {
		t.Errorf("lost line %q, want %q", out.String(), want)
	}
	if diag.Len() != 0 {
		t.Errorf("diag = %q, want nothing (JSON reports loss in band)", diag.String())
	}
	// The buffer is reused: an event after a lost record is whole.
	out.Reset()
	if err := s.Event(v6Accept()); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasPrefix(got, `{"time":"2024-05-06T07:08:09.123456789Z","timestamp_ns":987654321,"event_type":"accept"`) || !json.Valid([]byte(got)) {
		t.Errorf("event after lost: %q", got)
	}
}

// Lines are buffered until Flush, which writes them out in one Write.
type recordWriter struct{ writes []string }

func (w *recordWriter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func TestBufferedUntilFlush(t *testing.T) {
	for _, f := range []Format{FormatTable, FormatJSON} {
		var w recordWriter
		s := New(f, &w, io.Discard)
		events := []*event.Event{v4Connect(), v6Accept(), v4MappedAccept()}
		want := ""
		for _, e := range events {
			if err := s.Event(e); err != nil {
				t.Fatal(err)
			}
			want += map[Format]func(*testing.T, *event.Event) string{FormatTable: tableLine, FormatJSON: jsonLine}[f](t, e)
		}
		if len(w.writes) != 0 {
			t.Fatalf("%s: %d writes before Flush", f, len(w.writes))
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		if len(w.writes) != 1 || w.writes[0] != want {
			t.Errorf("%s: Flush wrote %q, want one write of %q", f, w.writes, want)
		}
		// Finish flushes too; with nothing buffered it writes nothing.
		if err := s.Finish(); err != nil || len(w.writes) != 1 {
			t.Errorf("%s: Finish: %v, %d writes", f, err, len(w.writes))
		}
	}
}

type errWriter struct{ err error }

func (w errWriter) Write(p []byte) (int, error) { return 0, w.err }

func TestWriteErrorsReturned(t *testing.T) {
	boom := errors.New("boom")
	for _, f := range []Format{FormatTable, FormatJSON} {
		s := New(f, errWriter{boom}, errWriter{boom})
		if err := s.Event(v4Connect()); err != nil {
			t.Errorf("%s Event: err = %v, want none until Flush", f, err)
		}
		if err := s.Flush(); !errors.Is(err, boom) {
			t.Errorf("%s Flush: err = %v, want boom", f, err)
		}
		// The table reports losses on stderr at once; JSON in band.
		err := s.Lost(1, event.RingBufferFull, fixedTime)
		if f == FormatJSON {
			err = s.Finish()
		}
		if !errors.Is(err, boom) {
			t.Errorf("%s Lost: err = %v, want boom", f, err)
		}
	}
	s := New(FormatTable, errWriter{boom}, io.Discard)
	if err := s.Start(); err != nil {
		t.Errorf("Table Start: err = %v, want none until Flush", err)
	}
	if err := s.Finish(); !errors.Is(err, boom) {
		t.Errorf("Table Finish: err = %v, want boom", err)
	}
}

func TestSinkAllocs(t *testing.T) {
	events := []*event.Event{v4Connect(), v6Accept(), v4MappedAccept()}
	hostile := v4Connect()
	hostile.SetComm("\x1b[31m\xff\u2028\\")
	events = append(events, hostile)
	// Every lifecycle shape: DETAIL, durations, reasons and errno names
	// must not allocate either.
	for _, tt := range lifecycleCases() {
		events = append(events, tt.e)
	}
	for _, f := range []Format{FormatTable, FormatJSON} {
		s := New(f, io.Discard, io.Discard)
		for _, e := range events { // warm up: grow the line buffer
			if err := s.Event(e); err != nil {
				t.Fatal(err)
			}
		}
		allocs := testing.AllocsPerRun(1000, func() {
			for _, e := range events {
				if err := s.Event(e); err != nil {
					panic(err)
				}
			}
		})
		if allocs != 0 {
			t.Errorf("%s Event: %v allocs per run, want 0", f, allocs)
		}
	}
}

func BenchmarkTableEvent(b *testing.B)      { benchmarkEvent(b, FormatTable, v4Connect()) }
func BenchmarkTableEventClose(b *testing.B) { benchmarkEvent(b, FormatTable, v4Reset()) }
func BenchmarkJSONEventClose(b *testing.B)  { benchmarkEvent(b, FormatJSON, v4Reset()) }
func BenchmarkJSONEvent(b *testing.B)       { benchmarkEvent(b, FormatJSON, v4Connect()) }

// benchmarkEvent measures formatting one event, buffered as in a run.
func benchmarkEvent(b *testing.B, f Format, e *event.Event) {
	s := New(f, io.Discard, io.Discard)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Event(e); err != nil {
			b.Fatal(err)
		}
	}
}

// A hostname another process resolved, or the process's hosts file
// gives, is marked with ~ in the table; the process's own lookup is not. A name that itself starts with ~ has it escaped,
// so the mark is never ambiguous, and the DETAIL column stays aligned.
func TestTableHostnameMark(t *testing.T) {
	tests := []struct{ name, source, want string }{
		{"svc.example", "process", "6201     curl             established 10.0.0.5:53412           svc.example (93.184.216.34):443 latency 1.50ms\n"},
		{"svc.example", "cgroup", "6201     curl             established 10.0.0.5:53412           ~svc.example (93.184.216.34):443 latency 1.50ms\n"},
		{"svc.example", "host", "6201     curl             established 10.0.0.5:53412           ~svc.example (93.184.216.34):443 latency 1.50ms\n"},
		// From the process's hosts file: no lookup of its own was seen.
		{"svc.example", "hosts", "6201     curl             established 10.0.0.5:53412           ~svc.example (93.184.216.34):443 latency 1.50ms\n"},
		{"~x.example", "process", "6201     curl             established 10.0.0.5:53412           \\x7ex.example (93.184.216.34):443 latency 1.50ms\n"},
		{"~x.example", "host", "6201     curl             established 10.0.0.5:53412           ~\\x7ex.example (93.184.216.34):443 latency 1.50ms\n"},
		// Short enough to pad: the DETAIL column starts at 88, as in the header.
		{"a.test", "host", "6201     curl             established 10.0.0.5:53412           ~a.test (1.2.3.4):443    latency 1.50ms\n"},
		{"a.test", "process", "6201     curl             established 10.0.0.5:53412           a.test (1.2.3.4):443     latency 1.50ms\n"},
		{"é.test", "host", "6201     curl             established 10.0.0.5:53412           ~é.test (1.2.3.4):443    latency 1.50ms\n"},
	}
	for _, tt := range tests {
		e := v4Connect()
		e.Type, e.LatencyNs = event.Established, 1500000
		e.Hostname, e.HostnameSource = tt.name, tt.source
		if strings.HasPrefix(tt.name, "a.") || strings.HasPrefix(tt.name, "é") {
			e.Remote = netip.MustParseAddrPort("1.2.3.4:443")
		}
		if got := tableLine(t, e); got != tt.want {
			t.Errorf("%s (%s):\n got %q\nwant %q", tt.name, tt.source, got, tt.want)
		}
	}
}

// Without a DNS name, DST shows the TLS server name, unmarked (the
// process's own word), escaped, in the same columns; a DNS name wins.
// JSON has both, with the ALPN list.
func TestServerName(t *testing.T) {
	e := v4CloseLocal()
	e.Remote = netip.MustParseAddrPort("1.2.3.4:443")
	e.SNI, e.ALPN = "api.test", []string{"h2", "http/1.1"}
	named := tableLine(t, e)
	if want := "api.test (1.2.3.4):443   "; !strings.Contains(named, want) {
		t.Errorf("table %q lacks %q", named, want)
	}
	e.SNI = ""
	plain := tableLine(t, e)
	if i, j := strings.Index(named, "api.test"), strings.Index(plain, "1.2.3.4"); i != j || strings.Index(named, "1234s") != strings.Index(plain, "1234s") {
		t.Errorf("columns moved:\n%q\n%q", named, plain)
	}
	e.SNI = "api.test"
	e.Hostname, e.HostnameSource = "svc.example", "host"
	if got := tableLine(t, e); !strings.Contains(got, "~svc.example (1.2.3.4):443") {
		t.Errorf("DNS name should win: %q", got)
	}
	line := jsonLine(t, e)
	got := strictDecode(t, line)
	if got.SNI != "api.test" || !slices.Equal(got.ALPN, []string{"h2", "http/1.1"}) || got.Hostname != "svc.example" {
		t.Errorf("JSON %s", line)
	}
	// Inbound: the client's name is not shown (it is not connected to).
	in := v6Accept()
	in.SNI = "x.test"
	if got := tableLine(t, in); strings.Contains(got, "x.test") {
		t.Errorf("inbound shows a server name: %q", got)
	}
}

func TestTLSDropped(t *testing.T) {
	var out, diag bytes.Buffer
	s := New(FormatJSON, &out, &diag)
	if err := s.Lost(2, event.TLSSplit, fixedTime); err != nil {
		t.Fatal(err)
	}
	s.Flush()
	if want := `{"time":"2024-05-06T07:08:09.123456789Z","event_type":"tls_dropped","count":2,"reason":"split"}` + "\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
	out.Reset()
	s = New(FormatTable, &out, &diag)
	s.Lost(3, event.TLSOversized, fixedTime)
	if want := "tuxscope: 3 TLS ClientHellos larger than the capture with no server name in the part captured: those connections have no sni\n"; diag.String() != want {
		t.Errorf("got %q", diag.String())
	}
}

// Connections still open at exit: a stderr line in table mode (none when
// there are none), an in-band record in JSON, also for zero.
func TestStillOpen(t *testing.T) {
	for _, tc := range []struct {
		n         event.OpenCount
		table, js string
	}{
		{event.OpenCount{Outbound: 1, Inbound: 2},
			"tuxscope: 3 connections still open at exit (not closed while tracing): 1 outbound, 2 inbound\n",
			`{"time":"2024-05-06T07:08:09.123456789Z","event_type":"open_at_exit","count":3,"outbound":1,"inbound":2}` + "\n"},
		{event.OpenCount{Inbound: 1},
			"tuxscope: 1 connection still open at exit (not closed while tracing): 0 outbound, 1 inbound\n",
			`{"time":"2024-05-06T07:08:09.123456789Z","event_type":"open_at_exit","count":1,"outbound":0,"inbound":1}` + "\n"},
		{event.OpenCount{}, "",
			`{"time":"2024-05-06T07:08:09.123456789Z","event_type":"open_at_exit","count":0,"outbound":0,"inbound":0}` + "\n"},
	} {
		var out, diag bytes.Buffer
		table := New(FormatTable, &out, &diag)
		if err := table.StillOpen(tc.n, fixedTime); err != nil {
			t.Fatal(err)
		}
		table.Flush()
		if out.Len() != 0 || diag.String() != tc.table {
			t.Errorf("table: stdout %q, stderr %q, want stderr %q", out.String(), diag.String(), tc.table)
		}
		// After skipped program runs, the count may include connections
		// whose close was never seen (a full ring buffer loses the close
		// event, but the kernel side still forgets the connection).
		diag.Reset()
		table = New(FormatTable, &out, &diag)
		table.Lost(5, event.RingBufferFull, fixedTime)
		table.StillOpen(tc.n, fixedTime)
		if tc.n.Total() > 0 && !strings.HasSuffix(diag.String(), "(not closed while tracing): "+
			fmt.Sprintf("%d outbound, %d inbound\n", tc.n.Outbound, tc.n.Inbound)) {
			t.Errorf("table after a full ring buffer: %q", diag.String())
		}
		table.Lost(2, event.HookSkipped, fixedTime)
		table.StillOpen(tc.n, fixedTime)
		if tc.n.Total() > 0 && !strings.HasSuffix(diag.String(), "still open at exit (no close seen while tracing; the kernel skipped tuxscope's programs, so some may have closed unseen): "+
			fmt.Sprintf("%d outbound, %d inbound\n", tc.n.Outbound, tc.n.Inbound)) {
			t.Errorf("table after a loss: %q", diag.String())
		}
		out.Reset()
		js := New(FormatJSON, &out, &diag)
		if err := js.StillOpen(tc.n, fixedTime); err != nil {
			t.Fatal(err)
		}
		js.Flush()
		if out.String() != tc.js {
			t.Errorf("json: %q, want %q", out.String(), tc.js)
		}
		got := strictDecode(t, out.String())
		if got.EventType != "open_at_exit" || got.Count != tc.n.Total() || got.Outbound == nil || *got.Outbound != tc.n.Outbound ||
			got.Inbound == nil || *got.Inbound != tc.n.Inbound {
			t.Errorf("json record read back as %v", got)
		}
	}
}

// A link-local address prints with its zone: [fe80::1%eth0]:port in the
// table, "fe80::1%eth0" in JSON's saddr and daddr (netip's text form).
func TestZonedAddresses(t *testing.T) {
	e := v6Accept()
	e.Local = netip.AddrPortFrom(netip.MustParseAddr("fe80::1").WithZone("tsll0"), 8080)
	e.Remote = netip.AddrPortFrom(netip.MustParseAddr("fe80::2").WithZone("tsll0"), 40000)
	want := "42       python3          accept      [fe80::2%tsll0]:40000    [fe80::1%tsll0]:8080\n"
	if got := tableLine(t, e); got != want {
		t.Errorf("table:\n got %q\nwant %q", got, want)
	}
	got := strictDecode(t, jsonLine(t, e))
	if got.Saddr != "fe80::2%tsll0" || got.Sport != 40000 || got.Daddr != "fe80::1%tsll0" || got.Dport != 8080 {
		t.Errorf("json: %s", got)
	}
	if a, err := netip.ParseAddr(got.Saddr); err != nil || a.Zone() != "tsll0" {
		t.Errorf("saddr %q does not parse back with its zone: %v", got.Saddr, err)
	}
}

// A UDP flow's udp_close named from its QUIC Initial shows the name in
// DST as a TLS connection's close does.
func TestServerNameUDP(t *testing.T) {
	e := v4Connect()
	e.Type = event.UDPClose
	e.Remote = netip.MustParseAddrPort("198.51.100.9:443")
	e.SNI, e.ALPN = "quic-sni.test", []string{"h3"}
	if got := tableLine(t, e); !strings.Contains(got, " quic-sni.test (198.51.100.9):443") {
		t.Errorf("udp_close: %q", got)
	}
}

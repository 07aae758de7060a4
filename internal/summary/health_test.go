package summary

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tuxscope/tuxscope/internal/event"
	"github.com/tuxscope/tuxscope/internal/schema"
)

func conn(typ event.Type, cookie uint64) *event.Event {
	e := &event.Event{Type: typ, Family: 4, PID: 7, TID: 7, Cookie: cookie,
		Local: netip.MustParseAddrPort("198.51.100.1:40000"), Remote: netip.MustParseAddrPort("198.51.100.9:443")}
	e.SetComm("curl")
	return e
}

// Retransmits and RTT percentiles per row: from updates (each period's
// retransmits, an RTT sample each) and from closes that carry them (what
// the connection retransmitted since its last update, or all of it),
// across interval periods without counting any retransmit twice.
func TestRetransAndRTT(t *testing.T) {
	a := New(time.Unix(0, 0), GroupProcess)
	// Connection 1: two updates, then its close.
	u := conn(event.Update, 1)
	u.TimestampNs, u.PeriodNs, u.PeriodRetrans, u.RetransSegs, u.SRTTUs = 1e9, 1e9, 3, 3, 10_000
	a.Add(u)
	u.TimestampNs, u.PeriodRetrans, u.RetransSegs, u.SRTTUs = 2e9, 2, 5, 20_000
	a.Add(u)
	a = a.Next(time.Unix(2, 0)) // a new period: counters reset, baselines kept
	c := conn(event.Close, 1)
	c.RetransSegs, c.SRTTUs = 6, 30_000
	a.Add(c)
	// Connection 2: no update, only its close: all of its retransmits.
	c = conn(event.Close, 2)
	c.RetransSegs, c.SRTTUs = 4, 40_000
	a.Add(c)
	// Connection 3: a close without health fields (a kernel side that
	// does not read them): no RTT sample.
	a.Add(conn(event.Close, 3))

	gs := a.Groups(ByRetrans, 0)
	if len(gs) != 1 || len(gs[0].Rows) != 1 {
		t.Fatalf("groups %+v", gs)
	}
	r := gs[0].Rows[0]
	if r.Retrans != 1+4 || gs[0].Total.Retrans != 5 {
		t.Errorf("retransmits %d (total %d), want 5: 1 since connection 1's last update, 4 of connection 2", r.Retrans, gs[0].Total.Retrans)
	}
	for p, want := range map[float64]time.Duration{50: 30 * time.Millisecond, 99: 40 * time.Millisecond} {
		if got, ok := r.RTT(p); !ok || got != want {
			t.Errorf("RTT p%v = %v, want %v", p, got, want)
		}
	}

	var table bytes.Buffer
	if err := WriteTable(&table, a, time.Unix(4, 0), ByRetrans, 0); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(table.String(), "\n")
	if !strings.HasSuffix(lines[1], "RETRANS  RTT p50/p90/p99") || !strings.HasSuffix(lines[2], "       5  30.0ms/40.0ms/40.0ms") {
		t.Errorf("table:\n%s", table.String())
	}
	if i := strings.Index(lines[1], "RETRANS"); lines[2][i+6] != '5' || strings.Index(lines[2], "30.0ms") != strings.Index(lines[1], "RTT") {
		t.Errorf("RETRANS not under its header:\n%s", table.String())
	}

	var js bytes.Buffer
	if err := WriteJSON(&js, a, time.Unix(4, 0), ByRetrans, 0); err != nil {
		t.Fatal(err)
	}
	var s schema.Summary
	dec := json.NewDecoder(&js)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatal(err)
	}
	p := s.Processes[0]
	if s.SortedBy != "retrans" || p.RetransSegs != 5 || p.Peers[0].RetransSegs != 5 || p.Peers[0].RTTNs == nil ||
		p.Peers[0].RTTNs.P50 != int64(30*time.Millisecond) || p.Peers[0].RTTNs.Max != int64(40*time.Millisecond) {
		t.Errorf("JSON %+v", s)
	}
}

func TestParseSortByNew(t *testing.T) {
	for _, v := range []string{"rate", "retrans"} {
		s, err := ParseSortBy(v)
		if err != nil || s.String() != v {
			t.Errorf("ParseSortBy(%q) = %v, %v", v, s, err)
		}
	}
	if _, err := ParseSortBy("speed"); err == nil || !strings.Contains(err.Error(), "rate or retrans") {
		t.Errorf("ParseSortBy(speed): %v", err)
	}
	if ByRetrans.Next() != ByConnections {
		t.Errorf("retrans is not the last sort")
	}
}

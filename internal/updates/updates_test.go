package updates

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/tuxscope/tuxscope/internal/event"
	"github.com/tuxscope/tuxscope/internal/tcpinfo"
)

type fakeSource struct {
	conns   map[uint32]Conn
	samples []tcpinfo.Sample
	err     error
}

func (f *fakeSource) Conns() (map[uint32]Conn, error) { return f.conns, nil }

func (f *fakeSource) Dump(fn func(*tcpinfo.Sample) bool) error {
	for i := range f.samples {
		s := f.samples[i]
		if !fn(&s) {
			break
		}
	}
	return f.err
}

const sec = uint64(time.Second)

func owner(pid uint32, name string, established uint64) Conn {
	c := Conn{PID: pid, UID: 1000, CgroupID: 77, EstablishedNs: established}
	c.Comm.SetString(name)
	return c
}

func sample(ino uint32, cookie, sent, received uint64, retrans uint32) tcpinfo.Sample {
	return tcpinfo.Sample{
		Family: 4, State: 1, Inode: ino, Cookie: cookie,
		Local:     netip.MustParseAddrPort("198.51.100.1:40000"),
		Remote:    netip.MustParseAddrPort("198.51.100.2:8080"),
		BytesSent: sent, BytesReceived: received, RetransSegs: retrans, SRTTUs: 1200, RTTVarUs: 300,
	}
}

func collect(t *testing.T, p *Poller, now uint64) ([]event.Event, uint64) {
	t.Helper()
	var out []event.Event
	skipped, err := p.Poll(now, func(e *event.Event) error {
		out = append(out, *e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, skipped
}

func TestPollPeriods(t *testing.T) {
	src := &fakeSource{conns: map[uint32]Conn{
		10: owner(501, "curl", 100*sec),
		11: owner(502, "old", 0), // older than tracing
	}}
	p := New(src, time.Second, 0, 99)

	// 100.4 s: established 0.4 s ago, too young; the old one gets its baseline.
	src.samples = []tcpinfo.Sample{sample(10, 1, 4000, 100, 0), sample(11, 2, 1e6, 1e6, 5), sample(12, 3, 1, 1, 0)}
	if evs, _ := collect(t, p, 100*sec+4e8); len(evs) != 0 {
		t.Fatalf("first poll: %d updates, want none: %+v", len(evs), evs)
	}
	// 101.4 s: curl's first period runs from its establishment (1.4 s,
	// counters from 0); the old one's from the first poll.
	src.samples = []tcpinfo.Sample{sample(10, 1, 1_400_000, 700, 2), sample(11, 2, 1e6+500, 1e6+250, 6), sample(12, 3, 9, 9, 0)}
	evs, _ := collect(t, p, 101*sec+4e8)
	if len(evs) != 2 {
		t.Fatalf("second poll: %d updates, want 2: %+v", len(evs), evs)
	}
	e := evs[0]
	if e.Type != event.Update || e.PID != 501 || string(e.Comm()) != "curl" || e.UID != 1000 || e.CgroupID != 77 || e.NetNS != 99 || e.Cookie != 1 {
		t.Errorf("owner: %+v", e)
	}
	if e.PeriodNs != 14e8 || e.PeriodBytesSent != 1_400_000 || e.PeriodBytesReceived != 700 || e.PeriodRetrans != 2 ||
		e.BytesSent != 1_400_000 || e.RetransSegs != 2 || e.SRTTUs != 1200 || e.RTTVarUs != 300 || e.TimestampNs != 101*sec+4e8 {
		t.Errorf("curl's first period: %+v", e)
	}
	if e.SendRate() != 1_000_000 || e.ReceiveRate() != 500 {
		t.Errorf("rates %d, %d B/s, want 1000000 and 500", e.SendRate(), e.ReceiveRate())
	}
	if o := evs[1]; o.PID != 502 || o.PeriodNs != sec || o.PeriodBytesSent != 500 || o.PeriodBytesReceived != 250 || o.PeriodRetrans != 1 || o.BytesSent != 1e6+500 {
		t.Errorf("old connection: %+v", o)
	}
	// 102.4 s: curl closed (gone from the dump); the other goes on.
	src.samples = []tcpinfo.Sample{sample(11, 2, 1e6+1500, 1e6+250, 6)}
	evs, _ = collect(t, p, 102*sec+4e8)
	if len(evs) != 1 || evs[0].PID != 502 || evs[0].PeriodBytesSent != 1000 || evs[0].PeriodRetrans != 0 {
		t.Fatalf("third poll: %+v", evs)
	}
	if _, ok := p.base[1]; ok || len(p.base) != 1 {
		t.Errorf("baselines kept: %v", p.base)
	}
	// A poll a little early (jitter) still updates.
	evs, _ = collect(t, p, 103*sec+4e8-5e7)
	if len(evs) != 1 || evs[0].PeriodNs != sec-5e7 {
		t.Errorf("slightly early poll: %+v", evs)
	}
	// One much too early does not.
	if evs, _ = collect(t, p, 103*sec+4e8); len(evs) != 0 {
		t.Errorf("early poll: %+v", evs)
	}
}

func TestPollLimit(t *testing.T) {
	src := &fakeSource{conns: map[uint32]Conn{}}
	for i := range uint32(5) {
		src.conns[i+1] = owner(600+i, "srv", 0)
		src.samples = append(src.samples, sample(i+1, uint64(i+1), 0, 0, 0))
	}
	p := New(src, time.Second, 3, 0)
	collect(t, p, 10*sec) // baselines
	evs, skipped := collect(t, p, 11*sec)
	if len(evs) != 3 || skipped != 2 {
		t.Fatalf("%d updates, %d skipped; want 3 and 2", len(evs), skipped)
	}
	// The two skipped have waited longest: they go first next time, with
	// their longer period.
	evs, skipped = collect(t, p, 12*sec)
	if len(evs) != 3 || skipped != 2 {
		t.Fatalf("%d updates, %d skipped; want 3 and 2", len(evs), skipped)
	}
	got := map[uint32]uint64{}
	for _, e := range evs {
		got[e.PID] = e.PeriodNs
	}
	n2 := 0
	for _, ns := range got {
		if ns == 2*sec {
			n2++
		}
	}
	if n2 != 2 {
		t.Errorf("periods %v: want the two skipped ones (2 s) among them", got)
	}
}

func TestPollError(t *testing.T) {
	src := &fakeSource{conns: map[uint32]Conn{1: owner(1, "a", 0)}, samples: []tcpinfo.Sample{sample(1, 1, 0, 0, 0)}, err: errors.New("boom")}
	p := New(src, time.Second, 0, 0)
	if _, err := p.Poll(sec, func(*event.Event) error { return nil }); err == nil {
		t.Fatal("Poll hid the dump's error")
	}
}

package sni

import (
	"slices"
	"testing"

	"github.com/tuxscope/tuxscope/internal/event"
)

func closeOf(cookie uint64) *event.Event {
	return &event.Event{Type: event.Close, Cookie: cookie}
}

func TestTrackerNamesLaterEvents(t *testing.T) {
	b := realHello(t)
	tr := NewTracker(4)
	tr.Observe(&event.TLSHello{Cookie: 7, Payload: b, SegmentLen: uint32(len(b))})
	for _, typ := range []event.Type{event.Retransmit, event.Close} {
		e := &event.Event{Type: typ, Cookie: 7}
		if why, missing := tr.Name(e); missing || e.SNI != "api.example.test" || !slices.Equal(e.ALPN, []string{"h2", "http/1.1"}) {
			t.Fatalf("%s: %+v %v %v", typ, e, why, missing)
		}
	}
	if tr.Len() != 0 {
		t.Fatal("close did not forget")
	}
	// Inbound ends and other cookies get nothing.
	tr.Observe(&event.TLSHello{Cookie: 8, Payload: b, SegmentLen: uint32(len(b))})
	in := &event.Event{Type: event.Close, Cookie: 8, Flags: event.FlagInbound}
	other := closeOf(9)
	tr.Name(in)
	tr.Name(other)
	if in.SNI != "" || other.SNI != "" {
		t.Fatal("named the wrong event")
	}
	if tr.Captured != 2 || tr.Parsed != 2 || tr.Named != 2 {
		t.Fatalf("counts %d %d %d", tr.Captured, tr.Parsed, tr.Named)
	}
}

// A split hello is reported once, on the first event the caller counts.
func TestTrackerSplitCountedOnce(t *testing.T) {
	b := realHello(t)
	tr := NewTracker(4)
	tr.Observe(&event.TLSHello{Cookie: 5, Payload: b[:20], SegmentLen: 20})
	e := &event.Event{Type: event.Retransmit, Cookie: 5}
	why, missing := tr.Name(e)
	if !missing || why != event.TLSSplit || e.SNI != "" {
		t.Fatalf("%v %v %+v", why, missing, e)
	}
	// Not counted (filtered out): asked again.
	if _, missing := tr.Name(e); !missing {
		t.Fatal("uncounted reason not returned again")
	}
	tr.Counted(5)
	if _, missing := tr.Name(closeOf(5)); missing {
		t.Fatal("counted twice")
	}
	tr.Observe(&event.TLSHello{Cookie: 6, Payload: b[:100], SegmentLen: 4000})
	if why, _ := tr.Name(closeOf(6)); why != event.TLSOversized {
		t.Fatalf("oversized: %v", why)
	}
	tr.Observe(&event.TLSHello{Cookie: 6, Payload: []byte("\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00"), SegmentLen: 10})
	if why, _ := tr.Name(closeOf(6)); why != event.TLSMalformed {
		t.Fatalf("malformed: %v", why)
	}
}

// Past its capacity the tracker forgets the oldest open connection; an
// event of that connection then says so, once.
func TestTrackerBounded(t *testing.T) {
	b := realHello(t)
	tr := NewTracker(2)
	for c := uint64(1); c <= 3; c++ {
		tr.Observe(&event.TLSHello{Cookie: c, Payload: b, SegmentLen: uint32(len(b))})
	}
	if tr.Len() != 2 {
		t.Fatalf("len %d", tr.Len())
	}
	e := closeOf(1)
	if why, missing := tr.Name(e); !missing || why != event.TLSEvicted || e.SNI != "" {
		t.Fatalf("evicted: %v %v", why, missing)
	}
	tr.Counted(1)
	if _, missing := tr.Name(closeOf(1)); missing {
		t.Fatal("evicted counted twice")
	}
	for _, c := range []uint64{2, 3} {
		if e := closeOf(c); func() bool { tr.Name(e); return e.SNI != "api.example.test" }() {
			t.Fatalf("cookie %d lost its name", c)
		}
	}
	// Closed connections free their slots: no eviction for them.
	for c := uint64(10); c < 100; c++ {
		tr.Observe(&event.TLSHello{Cookie: c, Payload: b, SegmentLen: uint32(len(b))})
		tr.Name(closeOf(c))
	}
	if tr.Len() != 0 || len(tr.gone) > 2 {
		t.Fatalf("len %d, gone %d", tr.Len(), len(tr.gone))
	}
}

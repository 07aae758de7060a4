package sni

import (
	"errors"

	"github.com/tuxscope/tuxscope/internal/event"
)

// DefaultCapacity is how many connections' server names (and as many
// forgotten connections) a Tracker keeps by default.
const DefaultCapacity = 32768

// Tracker remembers, per socket cookie, what each outbound connection's
// ClientHello said, and names the connection's events that follow: its
// retransmits, resets, updates and close. The connect event comes before
// the first data segment, so it never has a name. A connection whose
// ClientHello could not be read (split, oversized, malformed) is
// remembered too: its first event the filters select counts it, so
// --pid or --port report only what they show.
//
// Memory is bounded: at most capacity connections, the oldest forgotten
// first (a close forgets its connection at once), and as many forgotten
// cookies, so an event that would have had a name counts as TLSEvicted.
type Tracker struct {
	conns     map[uint64]*conn
	order     ring[uint64] // cookies in arrival order; some may be closed already
	forgotten ring[uint64] // cookies evicted while their connection was open
	quic      quicFlows
	gone      map[uint64]bool

	// Captured counts the ClientHellos seen, Parsed those read
	// (named or not), Named those with a server name.
	Captured, Parsed, Named uint64
}

type conn struct {
	hello    Hello
	why      event.LossReason // with failed: why it has no name
	failed   bool
	reported bool // failed and counted
}

// NewTracker returns a tracker for at most capacity connections.
func NewTracker(capacity int) *Tracker {
	capacity = max(capacity, 1)
	return &Tracker{
		conns:     make(map[uint64]*conn),
		gone:      make(map[uint64]bool),
		order:     newRing[uint64](capacity),
		forgotten: newRing[uint64](capacity),
		quic:      newQUICFlows(capacity),
	}
}

// Observe reads a ClientHello and remembers what it said, or why it
// said nothing, for its connection. The kernel side may hand over a
// connection's first segment twice (it was retransmitted): the first
// one counts.
func (t *Tracker) Observe(h *event.TLSHello) {
	if h.QUIC {
		t.quic.observe(h)
		return
	}
	if _, ok := t.conns[h.Cookie]; ok && h.Cookie != 0 {
		return // a retransmission of the first segment: the first counts
	}
	t.Captured++
	hello, err := Parse(h.Payload, int(h.SegmentLen))
	c := &conn{hello: hello}
	switch {
	case err == nil:
		t.Parsed++
		if hello.ServerName != "" {
			t.Named++
		}
		if hello.ServerName == "" && hello.Protocols == nil {
			return // nothing to say
		}
	case errors.Is(err, ErrSplit):
		c.failed, c.why = true, event.TLSSplit
	case errors.Is(err, ErrOversized):
		c.failed, c.why = true, event.TLSOversized
	default:
		c.failed, c.why = true, event.TLSMalformed
	}
	if h.Cookie == 0 {
		return
	}
	if _, ok := t.conns[h.Cookie]; !ok {
		if old, full := t.order.push(h.Cookie); full {
			if _, open := t.conns[old]; open {
				delete(t.conns, old)
				t.forget(old)
			}
		}
	}
	t.conns[h.Cookie] = c
}

// forget remembers that cookie's connection lost its entry.
func (t *Tracker) forget(cookie uint64) {
	if old, full := t.forgotten.push(cookie); full {
		delete(t.gone, old)
	}
	t.gone[cookie] = true
}

// Name gives an outbound connection's event its server name and ALPN. It
// returns a reason when the connection has none because its ClientHello
// could not be read or was forgotten, and that was not counted yet: the
// caller counts it (Counted) if the filters select the event. A close
// forgets the connection.
func (t *Tracker) Name(e *event.Event) (why event.LossReason, missing bool) {
	if e.UDP() {
		return t.quic.name(e)
	}
	if e.Cookie == 0 || e.Inbound() || e.Listener() {
		return 0, false
	}
	c, ok := t.conns[e.Cookie]
	if !ok {
		if t.gone[e.Cookie] {
			return event.TLSEvicted, true
		}
		return 0, false
	}
	if e.Type == event.Close {
		delete(t.conns, e.Cookie)
	}
	if c.failed {
		return c.why, !c.reported
	}
	e.SNI, e.ALPN = c.hello.ServerName, c.hello.Protocols
	return 0, false
}

// Counted says the reason Name returned for cookie's connection was
// counted: it is not returned again.
func (t *Tracker) Counted(cookie uint64) {
	if c, ok := t.conns[cookie]; ok {
		c.reported = true
	}
	if t.gone[cookie] {
		t.gone[cookie] = false // stays in the ring, no longer reported
	}
}

// QUICEvicted is how many UDP flows' QUIC state was forgotten while they
// were open, to stay within the bound: their close has no name.
func (t *Tracker) QUICEvicted() uint64 { return t.quic.Evicted }

// Len is how many connections the tracker remembers.
func (t *Tracker) Len() int { return len(t.conns) }

// ring is a fixed-size FIFO of cookies (or flows).
type ring[T any] struct {
	b    []T
	head int // oldest
	n    int
}

func newRing[T any](size int) ring[T] { return ring[T]{b: make([]T, size)} }

// push appends v; when the ring was full it drops and returns the oldest.
func (r *ring[T]) push(v T) (old T, full bool) {
	if r.n == len(r.b) {
		old, full = r.b[r.head], true
		r.b[r.head] = v
		r.head = (r.head + 1) % len(r.b)
		return old, full
	}
	r.b[(r.head+r.n)%len(r.b)] = v
	r.n++
	return old, false
}

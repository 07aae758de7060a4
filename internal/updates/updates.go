// Package updates makes the update events of `tuxscope net --updates D`:
// every D, one sock_diag dump of this network namespace's TCP sockets
// (internal/tcpinfo), joined on socket inode with the connections the
// kernel side tracks (their owners), becomes one event per tracked
// connection open at least D: bytes each way in the period and in total,
// the rates, srtt and retransmits. The cost is per period, not per packet.
package updates

import (
	"slices"
	"time"

	"github.com/tuxscope/tuxscope/internal/event"
	"github.com/tuxscope/tuxscope/internal/tcpinfo"
)

// DefaultMax is how many updates a period emits at most by default.
const DefaultMax = 4096

// Conn is a tracked connection's owner, as the kernel side's table has it.
type Conn struct {
	PID      uint32
	UID      uint32
	Comm     event.TaskName
	CgroupID uint64
	Inbound  bool
	// EstablishedNs is when it was established or accepted (kernel
	// CLOCK_MONOTONIC); 0: before tracing started.
	EstablishedNs uint64
}

// Source is what the poller reads each period.
type Source interface {
	// Conns lists the tracked connections that a process holds, by their
	// socket's inode number.
	Conns() (map[uint32]Conn, error)
	// Dump calls fn for each TCP socket of the namespace with its
	// tcp_info (tcpinfo.Dump), until fn returns false.
	Dump(fn func(*tcpinfo.Sample) bool) error
}

// Poller turns periodic dumps into update events. Not safe for
// concurrent use.
type Poller struct {
	src      Source
	interval uint64 // ns
	max      int
	netns    uint64 // the namespace's cookie, for hostnames; 0: unknown
	base     map[uint64]*baseline
	gen      uint32
	pending  []pending // reused
}

// baseline is a connection's counters at the start of its next period.
type baseline struct {
	ns, sent, received uint64
	retrans            uint32
	gen                uint32 // the poll that last saw it
}

type pending struct {
	s    tcpinfo.Sample
	c    Conn
	base *baseline
}

// New returns a poller emitting, every interval, at most max updates
// (max <= 0: DefaultMax); netns is the cookie of the namespace the dumps
// see (0: unknown).
func New(src Source, interval time.Duration, max int, netns uint64) *Poller {
	if max <= 0 {
		max = DefaultMax
	}
	return &Poller{src: src, interval: uint64(interval), max: max, netns: netns, base: map[uint64]*baseline{}}
}

// Poll dumps the sockets at nowNs (kernel CLOCK_MONOTONIC) and hands emit
// an update for each tracked connection whose period is about the
// interval long or more (a tenth of slack): since its last update, or since it was established (a
// connection older than tracing starts its first period at the first
// poll that sees it). Past the limit, the connections that waited longest
// are updated first and the rest skipped (counted in skipped): their next
// update covers the longer period. The event handed to emit is reused.
func (p *Poller) Poll(nowNs uint64, emit func(*event.Event) error) (skipped uint64, err error) {
	conns, err := p.src.Conns()
	if err != nil {
		return 0, err
	}
	p.gen++
	due := p.pending[:0]
	err = p.src.Dump(func(s *tcpinfo.Sample) bool {
		if s.Inode == 0 {
			return true // orphaned: its process closed it
		}
		c, ok := conns[s.Inode]
		if !ok {
			return true
		}
		b := p.base[s.Cookie]
		if b == nil {
			b = &baseline{ns: nowNs, sent: s.BytesSent, received: s.BytesReceived, retrans: s.RetransSegs}
			if c.EstablishedNs != 0 && c.EstablishedNs < nowNs {
				// Counters start at 0 when the connection does.
				*b = baseline{ns: c.EstablishedNs}
			}
			p.base[s.Cookie] = b
		}
		b.gen = p.gen
		// A tenth of slack: polls are about an interval apart, give or
		// take the scheduler's jitter.
		if nowNs-b.ns >= p.interval-p.interval/10 {
			due = append(due, pending{s: *s, c: c, base: b})
		}
		return true
	})
	p.pending = due
	for cookie, b := range p.base {
		if b.gen != p.gen {
			delete(p.base, cookie) // closed, or no longer tracked
		}
	}
	if err != nil {
		return 0, err
	}
	if len(due) > p.max {
		slices.SortFunc(due, func(a, b pending) int {
			switch {
			case a.base.ns < b.base.ns:
				return -1
			case a.base.ns > b.base.ns:
				return 1
			}
			return 0
		})
		skipped = uint64(len(due) - p.max)
		due = due[:p.max]
	}
	var e event.Event
	for i := range due {
		d := &due[i]
		fill(&e, &d.s, &d.c, d.base, nowNs, p.netns)
		*d.base = baseline{ns: nowNs, sent: d.s.BytesSent, received: d.s.BytesReceived, retrans: d.s.RetransSegs, gen: p.gen}
		if err := emit(&e); err != nil {
			return skipped, err
		}
	}
	return skipped, nil
}

// fill makes e the update of sample s, owned by c, for the period since b.
func fill(e *event.Event, s *tcpinfo.Sample, c *Conn, b *baseline, nowNs, netns uint64) {
	*e = event.Event{
		Type: event.Update, Family: s.Family, TimestampNs: nowNs,
		PID: c.PID, TID: c.PID, UID: c.UID, CgroupID: c.CgroupID,
		Local: s.Local, Remote: s.Remote,
		Cookie: s.Cookie, State: s.State, NetNS: netns,
		BytesSent: s.BytesSent, BytesReceived: s.BytesReceived,
		SRTTUs: s.SRTTUs, RTTVarUs: s.RTTVarUs, RetransSegs: s.RetransSegs,
		PeriodNs:            nowNs - b.ns,
		PeriodBytesSent:     s.BytesSent - min(s.BytesSent, b.sent),
		PeriodBytesReceived: s.BytesReceived - min(s.BytesReceived, b.received),
		PeriodRetrans:       s.RetransSegs - min(s.RetransSegs, b.retrans),
	}
	if c.Inbound {
		e.Flags |= event.FlagInbound
	}
	e.SetCommBytes(c.Comm.Bytes())
}

// Package summary aggregates events into per-process, per-peer counters:
// who talks to whom, how often, how much, how fast. It is plain Go: fed
// events, it renders tables and JSON; `tuxscope net --summary` and
// `tuxscope top` are views over it.
package summary

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/tuxscope/tuxscope/internal/event"
)

// Key identifies a row: one process and one peer service. For an outbound
// connection the peer is the remote address and the port connected to; for
// an inbound one, the client's address and the local port it came to.
type Key struct {
	PID     uint32
	Comm    string
	Inbound bool
	Peer    netip.Addr
	Port    uint16
}

// Row is what happened between one process and one peer.
type Row struct {
	Key
	Connects      uint64
	Accepts       uint64
	Established   uint64
	Failures      uint64
	Closes        uint64
	BytesSent     uint64
	BytesReceived uint64
	Errors        map[string]uint64 // failures by reason ("refused", ...)
	Hostname      string            // the peer's name, as last resolved (outbound)
	latency       samples           // handshake latencies (ns)
	duration      samples           // connection durations (ns)
}

// Connections is connects plus accepts: how the rows are ranked.
func (r *Row) Connections() uint64 { return r.Connects + r.Accepts }

// Bytes is data in both directions.
func (r *Row) Bytes() uint64 { return r.BytesSent + r.BytesReceived }

// Latency returns the p-th percentile (0..100) of handshake latencies.
func (r *Row) Latency(p float64) (time.Duration, bool) { return r.latency.percentile(p) }

// Duration returns the p-th percentile (0..100) of connection durations.
func (r *Row) Duration(p float64) (time.Duration, bool) { return r.duration.percentile(p) }

// maxSamples bounds the memory a row's percentiles take; past it, samples
// are kept by reservoir sampling, so percentiles stay unbiased estimates.
const maxSamples = 2048

type samples struct {
	seen uint64
	v    []uint64
}

func (s *samples) add(v uint64, rng *rand.Rand) {
	s.seen++
	if len(s.v) < maxSamples {
		s.v = append(s.v, v)
		return
	}
	if i := rng.Uint64N(s.seen); i < maxSamples {
		s.v[i] = v
	}
}

// percentile by nearest rank over the kept samples.
func (s *samples) percentile(p float64) (time.Duration, bool) {
	if len(s.v) == 0 {
		return 0, false
	}
	sorted := slices.Clone(s.v)
	slices.Sort(sorted)
	rank := int(p/100*float64(len(sorted))+0.5) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return time.Duration(sorted[rank]), true
}

// Aggregator accumulates events into rows. Not safe for concurrent use.
type Aggregator struct {
	rows  map[Key]*Row
	since time.Time
	lost  uint64
	rng   *rand.Rand
	// openAtExit is set on the last period only: the tracked connections
	// still open when tracing stopped.
	openAtExit *event.OpenCount
}

// maxRows bounds memory on hosts that talk to very many peers: past it,
// events for new rows are counted as dropped, not stored.
const maxRows = 100_000

// New starts an empty aggregation at start.
func New(start time.Time) *Aggregator {
	return &Aggregator{rows: map[Key]*Row{}, since: start, rng: rand.New(rand.NewPCG(1, 2))}
}

// Since is when this aggregation started.
func (a *Aggregator) Since() time.Time { return a.since }

// Lost is the number of events the kernel dropped, plus events past
// maxRows.
func (a *Aggregator) Lost() uint64 { return a.lost }

// AddLost counts events the kernel could not deliver.
func (a *Aggregator) AddLost(n uint64) { a.lost += n }

// SetOpenAtExit records, for the last period, how many tracked
// connections were still open when tracing stopped.
func (a *Aggregator) SetOpenAtExit(n event.OpenCount) { a.openAtExit = &n }

// Add accounts for one event.
func (a *Aggregator) Add(e *event.Event) {
	if e.Type == event.Existing || e.Type == event.Lost {
		return
	}
	k := Key{PID: e.PID, Comm: string(e.Comm()), Inbound: e.Inbound(), Peer: e.Remote.Addr(), Port: e.Dst().Port()}
	r := a.rows[k]
	if r == nil {
		if len(a.rows) >= maxRows {
			a.lost++
			return
		}
		r = &Row{Key: k}
		a.rows[k] = r
	}
	if e.Hostname != "" {
		r.Hostname = e.Hostname
	}
	switch e.Type {
	case event.Connect:
		r.Connects++
	case event.Accept:
		r.Accepts++
	case event.Established:
		r.Established++
		r.latency.add(e.LatencyNs, a.rng)
	case event.Failed:
		r.Failures++
		if r.Errors == nil {
			r.Errors = map[string]uint64{}
		}
		r.Errors[reason(e.Error)]++
	case event.Close:
		r.Closes++
		r.BytesSent += e.BytesSent
		r.BytesReceived += e.BytesReceived
		if e.DurationNs > 0 {
			r.duration.add(e.DurationNs, a.rng)
		}
	}
}

// SortBy orders rows.
type SortBy int

// The orders `tuxscope top` cycles through.
const (
	ByConnections SortBy = iota
	ByBytes
	ByFailures
)

func (s SortBy) String() string {
	return [...]string{"connections", "bytes", "failures"}[s]
}

// Next is the order after s, cycling.
func (s SortBy) Next() SortBy { return (s + 1) % 3 }

// ParseSortBy reads a --sort value.
func ParseSortBy(v string) (SortBy, error) {
	for s := ByConnections; s <= ByFailures; s++ {
		if s.String() == v {
			return s, nil
		}
	}
	return 0, fmt.Errorf("unknown sort %q (want connections, bytes or failures)", v)
}

func (s SortBy) value(r *Row) uint64 {
	switch s {
	case ByBytes:
		return r.Bytes()
	case ByFailures:
		return r.Failures
	}
	return r.Connections()
}

// Process is one process's rows, busiest first.
type Process struct {
	PID   uint32
	Comm  string
	Total Row // sums over Rows (no percentiles)
	Rows  []*Row
}

// Processes groups the rows by process, orders processes and their peers
// by the sort key (descending, then by pid and peer for stable output),
// and keeps at most topPeers peers per process (0: all).
func (a *Aggregator) Processes(by SortBy, topPeers int) []Process {
	byPID := map[[2]any]*Process{}
	var out []*Process
	for _, r := range a.rows {
		pk := [2]any{r.PID, r.Comm}
		p := byPID[pk]
		if p == nil {
			p = &Process{PID: r.PID, Comm: r.Comm}
			byPID[pk] = p
			out = append(out, p)
		}
		p.Rows = append(p.Rows, r)
		t := &p.Total
		t.Connects += r.Connects
		t.Accepts += r.Accepts
		t.Established += r.Established
		t.Failures += r.Failures
		t.Closes += r.Closes
		t.BytesSent += r.BytesSent
		t.BytesReceived += r.BytesReceived
	}
	for _, p := range out {
		slices.SortFunc(p.Rows, func(x, y *Row) int {
			return cmp.Or(cmp.Compare(by.value(y), by.value(x)), x.Peer.Compare(y.Peer), cmp.Compare(x.Port, y.Port), boolCmp(x.Inbound, y.Inbound))
		})
		if topPeers > 0 && len(p.Rows) > topPeers {
			p.Rows = p.Rows[:topPeers]
		}
	}
	slices.SortFunc(out, func(x, y *Process) int {
		return cmp.Or(cmp.Compare(by.value(&y.Total), by.value(&x.Total)), cmp.Compare(x.PID, y.PID), cmp.Compare(x.Comm, y.Comm))
	})
	res := make([]Process, len(out))
	for i, p := range out {
		res[i] = *p
	}
	return res
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// Package summary aggregates events into per-group, per-peer counters:
// who talks to whom, how often, how much, how fast, a group being a
// process (the default), every process of one name, a container or a
// Kubernetes pod (--by). It is plain Go: fed events, it renders tables
// and JSON; `tuxscope net --summary` and `tuxscope top` are views over it.
package summary

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/tuxscope/tuxscope/internal/event"
)

// Key identifies a row: one group (a process, by PID and Comm, or by
// Group the key of another grouping) and one peer service. For an outbound
// connection the peer is the remote address and the port connected to; for
// an inbound one, the client's address and the local port it came to.
type Key struct {
	PID     uint32
	Comm    string
	Group   string // --by comm: the name; container: containerKey; pod: the pod's uid
	Inbound bool
	Peer    netip.Addr
	Port    uint16
	UDP     bool // a UDP flow's row: CONNS counts flows (connects outbound, accepts inbound)
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
	// Retrans is segments retransmitted: each update's, and at a close
	// what its connection retransmitted since its last update (all of it
	// without one).
	Retrans uint64
	// SendRate and ReceiveRate are the live rates (bytes/s): the sums of
	// the latest update of each of the row's open connections; set by
	// Groups.
	SendRate, ReceiveRate uint64
	latency               samples // handshake latencies (ns)
	duration              samples // connection durations (ns)
	rtt                   samples // smoothed RTTs (ns) of updates and closes
	group                 *group  // the row's group, but --by process
}

// Connections is connects plus accepts: how the rows are ranked.
func (r *Row) Connections() uint64 { return r.Connects + r.Accepts }

// Bytes is data in both directions.
func (r *Row) Bytes() uint64 { return r.BytesSent + r.BytesReceived }

// Latency returns the p-th percentile (0..100) of handshake latencies.
func (r *Row) Latency(p float64) (time.Duration, bool) { return r.latency.percentile(p) }

// Duration returns the p-th percentile (0..100) of connection durations.
func (r *Row) Duration(p float64) (time.Duration, bool) { return r.duration.percentile(p) }

// RTT returns the p-th percentile (0..100) of the smoothed RTTs that
// updates and closes reported.
func (r *Row) RTT(p float64) (time.Duration, bool) { return r.rtt.percentile(p) }

// Rate is the live rate both ways.
func (r *Row) Rate() uint64 { return r.SendRate + r.ReceiveRate }

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

// GroupBy is what a summary's rows are grouped by (--by).
type GroupBy int

// The groupings: a process (pid and comm), every process of one name, a
// container, a Kubernetes pod.
const (
	GroupProcess GroupBy = iota
	GroupComm
	GroupContainer
	GroupPod
)

var groupNames = [...]string{"process", "comm", "container", "pod"}

func (g GroupBy) String() string { return groupNames[g] }

// Plural names the groups in a summary's title: "3 containers".
func (g GroupBy) Plural() string {
	return [...]string{"processes", "commands", "containers", "pods"}[g]
}

// ParseGroupBy reads a --by value.
func ParseGroupBy(v string) (GroupBy, error) {
	for g, name := range groupNames {
		if name == v {
			return GroupBy(g), nil
		}
	}
	return 0, fmt.Errorf("unknown --by %q (want process, comm, container or pod)", v)
}

// Identity is what a group is: a process's PID and Comm (--by process),
// a name (Comm, --by comm), a container with its pod when it is in one
// (--by container), a pod (PodUID, Pod, Namespace; --by pod). Fields the
// grouping does not use, or that are unknown, are "".
type Identity struct {
	PID                             uint32
	Comm                            string
	ContainerID, Runtime, Container string
	PodUID, Pod, Namespace          string
}

// NoContainer and NoPod label the rows of the events outside any container
// (--by container) or pod (--by pod).
const (
	NoContainer = "host"
	NoPod       = "-"
)

// Label is the group's name in the table's first column (unescaped):
// --by comm the name; container the 12-hex short id and, when known, the
// name (pod/container in Kubernetes), or a systemd unit's name, or
// NoContainer; pod namespace/pod when the CRI runtime named it, else the
// pod's uid, or NoPod. --by process has two columns, PID and COMM, and
// Label is the pid.
func (id *Identity) Label(by GroupBy) string {
	switch by {
	case GroupComm:
		if id.Comm == "" {
			return "-"
		}
		return id.Comm
	case GroupContainer:
		name := id.Container
		if id.Pod != "" {
			name = id.Pod
			if id.Container != "" {
				name += "/" + id.Container
			}
		}
		switch {
		case len(id.ContainerID) >= 12 && name != "":
			return id.ContainerID[:12] + " " + name
		case len(id.ContainerID) >= 12:
			return id.ContainerID[:12]
		case id.ContainerID != "":
			return id.ContainerID
		case name != "":
			return name
		}
		return NoContainer
	case GroupPod:
		switch {
		case id.PodUID == "":
			return NoPod
		case id.Pod != "" && id.Namespace != "":
			return id.Namespace + "/" + id.Pod
		case id.Pod != "":
			return id.Pod
		}
		return id.PodUID
	}
	return strconv.FormatUint(uint64(id.PID), 10)
}

// group is what the rows of one group (but --by process) share: the
// grouping and the group's identity, filled in as events tell more (a CRI
// runtime's names may come after the first event).
type group struct {
	by GroupBy
	Identity
}

// containerKey is an event's container for --by container: its id, or a
// systemd unit's name (which ends in .service, so is never a 64-hex id);
// "" outside any (the NoContainer row). It allocates nothing.
func containerKey(e *event.Event) string {
	if e.ContainerID != "" {
		return e.ContainerID
	}
	if e.Runtime == "systemd" {
		return e.ContainerName
	}
	return ""
}

// update takes from e what its group's identity did not know yet (or knew
// older: a renamed pod). The rows of events outside any container or pod
// (key "") learn nothing: they stay NoContainer or NoPod.
func (g *group) update(key string, e *event.Event) {
	if key == "" {
		return
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	switch g.by {
	case GroupContainer:
		set(&g.ContainerID, e.ContainerID)
		set(&g.Runtime, e.Runtime)
		set(&g.Container, e.ContainerName)
		fallthrough
	case GroupPod:
		set(&g.PodUID, e.PodUID)
		set(&g.Pod, e.Pod)
		set(&g.Namespace, e.Namespace)
	}
}

// Aggregator accumulates events into rows. Not safe for concurrent use.
type Aggregator struct {
	by     GroupBy
	rows   map[Key]*Row
	groups map[string]*group // by Key.Group, but --by process
	since  time.Time
	lost   uint64
	rng    *rand.Rand
	// openAtExit is set on the last period only: the tracked connections
	// still open when tracing stopped.
	openAtExit *event.OpenCount
	// live is the open connections' latest updates, carried from period
	// to period (Next).
	live *liveConns
	// names holds the process names seen, so that an event's name
	// becomes a string once, not once an event; at most maxNames.
	names map[string]string
}

// maxNames bounds Aggregator.names; past it, it starts afresh.
const maxNames = 4096

// name is b as a string, from names when it is there.
func (a *Aggregator) name(b []byte) string {
	if s, ok := a.names[string(b)]; ok {
		return s
	}
	if a.names == nil || len(a.names) >= maxNames {
		a.names = make(map[string]string)
	}
	s := string(b)
	a.names[s] = s
	return s
}

// liveConns is what the updates said of each open connection, by socket
// cookie: its latest rates, and the retransmits already counted.
type liveConns struct {
	conns map[uint64]*liveConn
	// lastNs is the newest update's timestamp: a connection no update
	// has named for two of its periods since is gone (its close was
	// filtered out, or lost).
	lastNs uint64
}

type liveConn struct {
	key          Key
	send, recv   uint64 // bytes/s
	atNs, period uint64 // the latest update's time and period
	retrans      uint32 // retrans_segs at the latest update
}

// maxLive bounds the connections whose live rates are kept (the kernel
// side's default --conn-table): past it, new ones have none.
const maxLive = 1 << 18

func (l *liveConns) stale(c *liveConn) bool { return l.lastNs-c.atNs > 2*c.period }

// maxRows bounds memory on hosts that talk to very many peers: past it,
// events for new rows are counted as dropped, not stored.
const maxRows = 100_000

// New starts an empty aggregation at start, grouped by by.
func New(start time.Time, by GroupBy) *Aggregator {
	return &Aggregator{by: by, rows: map[Key]*Row{}, groups: map[string]*group{}, since: start, rng: rand.New(rand.NewPCG(1, 2)),
		live: &liveConns{conns: map[uint64]*liveConn{}}}
}

// Next starts the next period's aggregation at start: empty counters,
// the open connections' live rates and retransmit baselines carried over.
func (a *Aggregator) Next(start time.Time) *Aggregator {
	n := New(start, a.by)
	n.live, n.names = a.live, a.names
	return n
}

// By is what the rows are grouped by.
func (a *Aggregator) By() GroupBy { return a.by }

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
	switch e.Type {
	case event.Existing, event.Lost, event.Retransmit, event.Reset, event.Listen, event.Unlisten, event.UDPOpen:
		// A UDP flow is counted at its close, whose owner is the best
		// known (a udp_open may have pid 0 where its close is named).
		// Not connections: a retransmit's or reset's connection has
		// (or will have) its own row from its other events; listeners
		// are not connections.
		return
	}
	k := Key{Inbound: e.Inbound(), Peer: e.Remote.Addr(), Port: e.Dst().Port(), UDP: e.UDP()}
	switch a.by {
	case GroupProcess:
		k.PID, k.Comm = e.PID, a.name(e.Comm())
	case GroupComm:
		k.Group = a.name(e.Comm())
	case GroupContainer:
		k.Group = containerKey(e)
	case GroupPod:
		k.Group = e.PodUID
	}
	r := a.rows[k]
	if r == nil {
		if len(a.rows) >= maxRows {
			a.lost++
			return
		}
		r = &Row{Key: k}
		if a.by != GroupProcess {
			// Groups are made with rows, so there are never more than
			// maxRows of them.
			g := a.groups[k.Group]
			if g == nil {
				g = &group{by: a.by}
				if a.by == GroupComm {
					g.Comm = k.Group
				}
				a.groups[k.Group] = g
			}
			r.group = g
		}
		a.rows[k] = r
	}
	if r.group != nil {
		r.group.update(k.Group, e)
	}
	if e.Hostname != "" {
		r.Hostname = e.Hostname
	}
	switch e.Type {
	case event.UDPClose:
		if k.Inbound {
			r.Accepts++
		} else {
			r.Connects++
		}
		r.Closes++
		r.BytesSent += e.BytesSent
		r.BytesReceived += e.BytesReceived
		if e.DurationNs > 0 {
			r.duration.add(e.DurationNs, a.rng)
		}
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
		counted := uint32(0)
		if c := a.live.conns[e.Cookie]; c != nil && e.Cookie != 0 {
			counted = c.retrans
			delete(a.live.conns, e.Cookie)
		}
		r.Retrans += uint64(e.RetransSegs - min(e.RetransSegs, counted))
		if e.SRTTUs > 0 {
			r.rtt.add(uint64(e.SRTTUs)*1000, a.rng)
		}
	case event.Update:
		r.Retrans += uint64(e.PeriodRetrans)
		if e.SRTTUs > 0 {
			r.rtt.add(uint64(e.SRTTUs)*1000, a.rng)
		}
		a.live.lastNs = max(a.live.lastNs, e.TimestampNs)
		c := a.live.conns[e.Cookie]
		if c == nil {
			if e.Cookie == 0 || len(a.live.conns) >= maxLive {
				return
			}
			c = &liveConn{}
			a.live.conns[e.Cookie] = c
		}
		*c = liveConn{key: k, send: e.SendRate(), recv: e.ReceiveRate(), atNs: e.TimestampNs, period: e.PeriodNs, retrans: e.RetransSegs}
	}
}

// liveRates sets each row's live rates from the open connections'
// latest updates (forgetting those gone stale), making the rows of
// connections only carried over from an earlier period.
func (a *Aggregator) liveRates() {
	for _, r := range a.rows {
		r.SendRate, r.ReceiveRate = 0, 0
	}
	for cookie, c := range a.live.conns {
		if a.live.stale(c) {
			delete(a.live.conns, cookie)
			continue
		}
		r := a.rows[c.key]
		if r == nil {
			continue // a new period: its next update makes the row
		}
		r.SendRate += c.send
		r.ReceiveRate += c.recv
	}
}

// SortBy orders rows.
type SortBy int

// The orders `tuxscope top` cycles through: rate is the live rate both
// ways (updates), retrans the segments retransmitted.
const (
	ByConnections SortBy = iota
	ByBytes
	ByFailures
	ByRate
	ByRetrans
	numSortBy
)

func (s SortBy) String() string {
	return [...]string{"connections", "bytes", "failures", "rate", "retrans"}[s]
}

// Next is the order after s, cycling.
func (s SortBy) Next() SortBy { return (s + 1) % numSortBy }

// ParseSortBy reads a --sort value.
func ParseSortBy(v string) (SortBy, error) {
	for s := ByConnections; s < numSortBy; s++ {
		if s.String() == v {
			return s, nil
		}
	}
	return 0, fmt.Errorf("unknown sort %q (want connections, bytes, failures, rate or retrans)", v)
}

func (s SortBy) value(r *Row) uint64 {
	switch s {
	case ByBytes:
		return r.Bytes()
	case ByFailures:
		return r.Failures
	case ByRate:
		return r.Rate()
	case ByRetrans:
		return r.Retrans
	}
	return r.Connections()
}

// Group is one group's rows (a process's, with --by process), busiest
// first.
type Group struct {
	Identity
	By    GroupBy
	Key   string // Key.Group, but --by process
	Total Row    // sums over Rows (no percentiles)
	Rows  []*Row
}

// Label is the group's name in the table (see Identity.Label).
func (g *Group) Label() string { return g.Identity.Label(g.By) }

// Groups groups the rows, orders the groups and their peers by the sort
// key (descending, then by pid, name and peer for stable output), and
// keeps at most topPeers peers per group (0: all).
func (a *Aggregator) Groups(by SortBy, topPeers int) []Group {
	type gk struct {
		pid   uint32
		comm  string
		group string
	}
	a.liveRates()
	byKey := map[gk]*Group{}
	var out []*Group
	for _, r := range a.rows {
		k := gk{r.PID, r.Comm, r.Group}
		p := byKey[k]
		if p == nil {
			p = &Group{Identity: Identity{PID: r.PID, Comm: r.Comm}, By: a.by, Key: r.Group}
			if r.group != nil {
				p.Identity = r.group.Identity
			}
			byKey[k] = p
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
		t.Retrans += r.Retrans
		t.SendRate += r.SendRate
		t.ReceiveRate += r.ReceiveRate
	}
	for _, p := range out {
		slices.SortFunc(p.Rows, func(x, y *Row) int {
			return cmp.Or(cmp.Compare(by.value(y), by.value(x)), x.Peer.Compare(y.Peer), cmp.Compare(x.Port, y.Port), boolCmp(x.Inbound, y.Inbound))
		})
		if topPeers > 0 && len(p.Rows) > topPeers {
			p.Rows = p.Rows[:topPeers]
		}
	}
	slices.SortFunc(out, func(x, y *Group) int {
		return cmp.Or(cmp.Compare(by.value(&y.Total), by.value(&x.Total)), cmp.Compare(x.PID, y.PID), cmp.Compare(x.Comm, y.Comm), cmp.Compare(x.Key, y.Key))
	})
	res := make([]Group, len(out))
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

package metrics

import (
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tuxscope/tuxscope/internal/event"
)

// Reason is why a connect failed, as tuxscope_connection_failures_total's
// reason label says it.
type Reason uint8

const (
	Refused     Reason = iota // ECONNREFUSED: the peer answered with a reset
	TimedOut                  // ETIMEDOUT: no answer to the SYNs
	Unreachable               // EHOSTUNREACH, ENETUNREACH, EHOSTDOWN, ENETDOWN, ENONET, EACCES, EPERM (ICMP errors, prohibited)
	Reset                     // ECONNRESET: reset during the handshake
	Aborted                   // no errno: closed before the handshake ended (the process was killed); ECONNABORTED, EPIPE
	Other                     // any other errno
	numReasons
)

var reasonNames = [numReasons]string{"refused", "timed_out", "unreachable", "reset", "aborted", "other"}

func (r Reason) String() string { return reasonNames[r] }

// FailureReason maps a failed connect's errno (event.Event.Error) to its
// reason label: the same classes the table's DETAIL and JSON's reason
// use, with the two unreachable ones as one.
func FailureReason(errno uint32) Reason {
	switch syscall.Errno(errno) {
	case 0, unix.ECONNABORTED, unix.EPIPE:
		return Aborted
	case unix.ECONNREFUSED:
		return Refused
	case unix.ETIMEDOUT:
		return TimedOut
	case unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EHOSTDOWN, unix.ENETDOWN, unix.ENONET, unix.EACCES, unix.EPERM:
		return Unreachable
	case unix.ECONNRESET:
		return Reset
	}
	return Other
}

// Side is who sent a reset: tuxscope_resets_total's side label.
type Side uint8

const (
	SideLocal  Side = iota // this end sent it
	SideRemote             // the peer did
	numSides
)

func (s Side) String() string { return [numSides]string{"local", "remote"}[s] }

// Histogram buckets, in seconds. Handshake latency: loopback and the same
// host (tens of µs) through LAN (sub-ms) and WAN (tens to hundreds of ms)
// to SYN retransmissions (1 s, 3 s). Connection duration: a request (ms)
// to a long-lived session (an hour).
var (
	LatencyBuckets  = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05, 0.1, 0.25, 1, 3}
	DurationBuckets = [...]float64{0.001, 0.01, 0.1, 1, 10, 60, 600, 3600}
)

// Series per label set: connections, sent and received bytes,
// retransmits, and the histograms (a bucket each, +Inf, _sum and _count);
// an outbound set also has the handshake latency histogram, one failure
// counter per reason seen and one reset counter per side seen. A DNS
// label set (owner and rcode) is one series.
const (
	latencySeries  = len(LatencyBuckets) + 3
	durationSeries = len(DurationBuckets) + 3
	inboundSeries  = 4 + durationSeries
	outboundSeries = inboundSeries + latencySeries
)

func rowCost(inbound bool) int {
	if inbound {
		return inboundSeries
	}
	return outboundSeries
}

// OtherValue is the value of a label folded away: a peer beyond the top
// --peers, or every label of the set that takes what --max-series
// refuses.
const OtherValue = "other"

// Config says what the aggregation keeps.
type Config struct {
	Labels Labels // the selectable labels used
	// Peers is how many peers of each owner (a comm, container, pod,
	// namespace tuple, as Labels selects them) keep their own peer label;
	// the others are counted as peer="other".
	Peers int
	// MaxSeries bounds the series the connection and DNS metrics expose
	// (see rowCost); what would exceed it is counted in one all-"other"
	// label set, and in tuxscope_series_folded_total.
	MaxSeries int
	// SeriesTTL: a label set not updated for this long is dropped, and a
	// peer not seen for this long frees its slot.
	SeriesTTL time.Duration
	// Rebalance is how often a folded peer busier than the least busy
	// peer with a label of its own may take its place (default 1m).
	Rebalance time.Duration
	// Now is the clock (default time.Now); events carry their own time.
	Now func() time.Time
}

// Defaults for `tuxscope serve`.
const (
	DefaultPeers     = 10
	DefaultMaxSeries = 10000
	DefaultSeriesTTL = 10 * time.Minute
	DefaultRebalance = time.Minute
)

// ownerKey is whose a label set is: the selected ones of comm, container,
// pod and namespace (the unselected are zero).
type ownerKey struct {
	comm                      [16]byte
	commLen                   uint8
	container, pod, namespace string
}

// peerKey is the remote end: its hostname when known, else its address.
// The zero key is the peer label not selected; other is peer="other".
type peerKey struct {
	host  string
	addr  netip.Addr
	other bool
}

var otherPeer = peerKey{other: true}

type rowKey struct {
	inbound bool
	peer    peerKey
}

type hist struct {
	counts [len(LatencyBuckets) + 1]uint64 // per bucket, not cumulative; the last is above every bound
	sum    float64                         // seconds
	n      uint64
}

func (h *hist) observe(bounds []float64, ns uint64) {
	v := float64(ns) / 1e9
	i := 0
	for i < len(bounds) && v > bounds[i] {
		i++
	}
	h.counts[i]++
	h.sum += v
	h.n++
}

// row is one label set's counters.
type row struct {
	labels      []string // direction, the selected owner labels, peer if selected
	inbound     bool
	lastSeen    int64 // unix ns of its last event
	connections uint64
	sent, recvd uint64
	failures    [numReasons]uint64
	retransmits uint64
	resets      [numSides]uint64 // by who sent them
	latency     hist
	duration    hist
	peer        *peerSlot // nil: peer not selected, "other", or the overflow set
}

// udpRow is one owner's UDP flows one way (direction of their first
// packet), counted when they end (udp_close):
// udpSeries series, no peer label.
type udpRow struct {
	labels                 []string // direction, the selected owner labels
	lastSeen               int64
	flows                  uint64
	pktsSent, pktsReceived uint64
	sent, received         uint64 // payload bytes
}

// udpSeries is how many series a udpRow exposes.
const udpSeries = 5

type dnsRow struct {
	labels   []string // rcode, the selected owner labels
	lastSeen int64
	n        uint64
}

// peerSlot is a peer that has its own label: recent counts its events
// since the last rebalance.
type peerSlot struct {
	recent   uint64
	lastSeen int64
}

type owner struct {
	values     []string // the selected owner labels' values, in label order
	peers      map[peerKey]*peerSlot
	rows       map[rowKey]*row
	dns        map[string]*dnsRow
	udp        [2]*udpRow         // by direction (inbound 1)
	candidates map[peerKey]uint64 // folded peers' events since the last rebalance
}

// Aggregator counts events per label set. Its methods are safe for one
// writer (the pipeline) and concurrent scrapes.
type Aggregator struct {
	cfg Config

	mu          sync.Mutex
	owners      map[ownerKey]*owner
	overflow    [2]*row // by direction (inbound 1), the all-"other" sets
	overflowDNS map[string]*dnsRow
	overflowUDP [2]*udpRow
	series      int    // what MaxSeries bounds
	folded      uint64 // events counted in the overflow sets
	lost        event.LossCounts
	lastExpire  time.Time
	lastBalance time.Time
}

// New returns an empty aggregator.
func New(cfg Config) *Aggregator {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rebalance <= 0 {
		cfg.Rebalance = DefaultRebalance
	}
	now := cfg.Now()
	return &Aggregator{cfg: cfg, owners: map[ownerKey]*owner{}, overflowDNS: map[string]*dnsRow{},
		lastExpire: now, lastBalance: now}
}

// Add accounts for e. Connects and accepts count connections, failed
// connects failures, established connects their handshake latency,
// closes their bytes and duration, retransmit events their segments,
// reset events their side, dns events their rcode; other types are
// ignored.
func (a *Aggregator) Add(e *event.Event) {
	switch e.Type {
	case event.Connect, event.Accept, event.Established, event.Failed, event.Close, event.Retransmit, event.Reset:
	case event.DNS:
		if e.DNSInfo != nil {
			a.addDNS(e)
		}
		return
	case event.UDPClose:
		// counted at its close, whose owner is the best known (its
		// udp_open may have pid 0 where the close is named)
		a.addUDP(e)
		return
	default:
		return
	}
	now := e.Time.UnixNano()
	if e.Time.IsZero() {
		now = a.cfg.Now().UnixNano()
	}
	inbound := e.Inbound()
	a.mu.Lock()
	defer a.mu.Unlock()
	o := a.ownerOf(e)
	var (
		reason Reason
		side   Side
		// newSeries says whether the event adds a series to its label
		// set (r nil: one not made yet): a failure reason or a reset
		// side it has not seen
		newSeries func(r *row) bool
	)
	switch e.Type {
	case event.Failed:
		reason = FailureReason(e.Error)
		newSeries = func(r *row) bool { return r == nil || r.failures[reason] == 0 }
	case event.Reset:
		if e.ResetBy() == "remote" {
			side = SideRemote
		}
		newSeries = func(r *row) bool { return r == nil || r.resets[side] == 0 }
	}
	r := a.rowOf(o, inbound, e, now, newSeries)
	r.lastSeen = now
	switch e.Type {
	case event.Connect, event.Accept:
		r.connections++
	case event.Established:
		r.latency.observe(LatencyBuckets[:], e.LatencyNs)
	case event.Failed:
		r.failures[reason]++
	case event.Retransmit:
		r.retransmits += uint64(e.Retransmits)
	case event.Reset:
		r.resets[side]++
	case event.Close:
		r.sent += e.BytesSent
		r.recvd += e.BytesReceived
		if e.DurationNs > 0 {
			r.duration.observe(DurationBuckets[:], e.DurationNs)
		}
	}
}

// ownerOf finds or makes e's owner.
func (a *Aggregator) ownerOf(e *event.Event) *owner {
	var k ownerKey
	ls := a.cfg.Labels
	if ls.Has(LabelComm) {
		k.commLen = uint8(copy(k.comm[:], e.Comm()))
	}
	if ls.Has(LabelContainer) {
		k.container = containerLabel(e)
	}
	if ls.Has(LabelPod) {
		k.pod = e.Pod
	}
	if ls.Has(LabelNamespace) {
		k.namespace = e.Namespace
	}
	if o := a.owners[k]; o != nil {
		return o
	}
	o := &owner{peers: map[peerKey]*peerSlot{}, rows: map[rowKey]*row{}}
	for l, v := range [...]string{string(k.comm[:k.commLen]), k.container, k.pod, k.namespace} {
		if ls.Has(Label(l)) {
			o.values = append(o.values, strings.ToValidUTF8(v, "\uFFFD"))
		}
	}
	a.owners[k] = o
	return o
}

// containerLabel is the container's name if known, else its short id.
func containerLabel(e *event.Event) string {
	switch {
	case e.ContainerName != "":
		return e.ContainerName
	case len(e.ContainerID) > 12:
		return e.ContainerID[:12]
	}
	return e.ContainerID
}

// peerOf is e's remote end: the hostname tuxscope knows for it, else its
// IP address (an IPv4-mapped IPv6 one unmapped, without zone).
func peerOf(e *event.Event) peerKey {
	if e.Hostname != "" {
		return peerKey{host: e.Hostname}
	}
	return peerKey{addr: e.Remote.Addr().Unmap().WithZone("")}
}

func (p peerKey) value() string {
	switch {
	case p.other:
		return OtherValue
	case p.host != "":
		return strings.ToValidUTF8(p.host, "\uFFFD")
	case p.addr.IsValid():
		return p.addr.String()
	}
	return ""
}

// rowOf finds or makes the label set e counts in: its owner's, with its
// own peer while that peer has a slot (or one is free), else peer
// "other"; the overflow set when a new set (or a series new to its set,
// as newSeries says, nil: none) would exceed MaxSeries.
func (a *Aggregator) rowOf(o *owner, inbound bool, e *event.Event, now int64, newSeries func(*row) bool) *row {
	var pk peerKey
	var slot *peerSlot
	newSlot := false // a free slot, taken once the label set is made
	if a.cfg.Labels.Has(LabelPeer) {
		pk = peerOf(e)
		if slot = o.peers[pk]; slot == nil {
			if len(o.peers) < a.cfg.Peers {
				slot, newSlot = &peerSlot{}, true
			} else {
				o.noteCandidate(pk, a.cfg.Peers)
				pk = otherPeer
			}
		}
	}
	r := o.rows[rowKey{inbound, pk}]
	if slot != nil && !newSlot {
		slot.recent++
		slot.lastSeen = now
	}
	if r == nil {
		cost := rowCost(inbound)
		if newSeries != nil && newSeries(nil) {
			cost++
		}
		if a.series+cost > a.cfg.MaxSeries {
			return a.fold(inbound)
		}
		a.series += cost
		if newSlot {
			slot.recent, slot.lastSeen = 1, now
			o.peers[pk] = slot
		}
		r = &row{inbound: inbound, peer: slot, labels: make([]string, 0, 2+len(o.values))}
		r.labels = append(r.labels, direction(inbound))
		r.labels = append(r.labels, o.values...)
		if a.cfg.Labels.Has(LabelPeer) {
			r.labels = append(r.labels, pk.value())
		}
		o.rows[rowKey{inbound, pk}] = r
		return r
	}
	if newSeries != nil && newSeries(r) {
		if a.series+1 > a.cfg.MaxSeries {
			return a.fold(inbound)
		}
		a.series++
	}
	return r
}

func direction(inbound bool) string {
	if inbound {
		return "inbound"
	}
	return "outbound"
}

// fold returns the all-"other" set of a direction, counting the event.
func (a *Aggregator) fold(inbound bool) *row {
	a.folded++
	i := 0
	if inbound {
		i = 1
	}
	if a.overflow[i] == nil {
		a.overflow[i] = &row{inbound: inbound, labels: a.otherLabels(direction(inbound))}
	}
	return a.overflow[i]
}

// otherLabels is first, then "other" for every selected label (peer
// included with peer).
func (a *Aggregator) otherLabels(first string) []string {
	ls := []string{first}
	for l := Label(0); l < numLabels; l++ {
		if a.cfg.Labels.Has(l) {
			ls = append(ls, OtherValue)
		}
	}
	return ls
}

// noteCandidate counts an event of a folded peer, in a table of at most
// 2*peers (at least 8) peers, cleared at each rebalance: when it is full,
// peers not in it wait for the next period. A busy peer is among the
// first folded ones a period sees; scanning for a place on every event of
// a host with thousands of clients would not be cheap.
func (o *owner) noteCandidate(pk peerKey, peers int) {
	if o.candidates == nil {
		o.candidates = map[peerKey]uint64{}
	}
	if _, ok := o.candidates[pk]; ok || len(o.candidates) < max(2*peers, 8) {
		o.candidates[pk]++
	}
}

func (a *Aggregator) addDNS(e *event.Event) {
	now := e.Time.UnixNano()
	if e.Time.IsZero() {
		now = a.cfg.Now().UnixNano()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	o := a.ownerOf(e)
	rcode := e.DNSInfo.RCode
	r := o.dns[rcode]
	if r == nil {
		if a.series+1 > a.cfg.MaxSeries {
			a.folded++
			if r = a.overflowDNS[rcode]; r == nil {
				r = &dnsRow{labels: a.otherLabels(rcode)}
				if a.cfg.Labels.Has(LabelPeer) {
					r.labels = r.labels[:len(r.labels)-1] // DNS has no peer label
				}
				a.overflowDNS[rcode] = r
			}
		} else {
			a.series++
			r = &dnsRow{labels: append([]string{rcode}, o.values...)}
			if o.dns == nil {
				o.dns = map[string]*dnsRow{}
			}
			o.dns[rcode] = r
		}
	}
	r.n++
	r.lastSeen = now
}

func (a *Aggregator) addUDP(e *event.Event) {
	now := e.Time.UnixNano()
	if e.Time.IsZero() {
		now = a.cfg.Now().UnixNano()
	}
	in := 0
	if e.Inbound() {
		in = 1
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	o := a.ownerOf(e)
	r := o.udp[in]
	if r == nil {
		if a.series+udpSeries > a.cfg.MaxSeries {
			a.folded++
			if r = a.overflowUDP[in]; r == nil {
				r = &udpRow{labels: a.otherLabels(direction(in == 1))}
				if a.cfg.Labels.Has(LabelPeer) {
					r.labels = r.labels[:len(r.labels)-1] // UDP flows have no peer label
				}
				a.overflowUDP[in] = r
			}
		} else {
			a.series += udpSeries
			r = &udpRow{labels: append([]string{direction(in == 1)}, o.values...)}
			o.udp[in] = r
		}
	}
	r.lastSeen = now
	r.flows++
	r.pktsSent += e.PacketsSent
	r.pktsReceived += e.PacketsReceived
	r.sent += e.BytesSent
	r.received += e.BytesReceived
}

// AddLost counts n events lost (or DNS messages dropped) for why.
func (a *Aggregator) AddLost(n uint64, why event.LossReason) {
	a.mu.Lock()
	a.lost[why] += n
	a.mu.Unlock()
}

// Maintain drops what has not been updated for SeriesTTL (checked at
// most once a second) and rebalances the peers every Rebalance.
func (a *Aggregator) Maintain(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.maintain(now)
}

func (a *Aggregator) maintain(now time.Time) {
	if now.Sub(a.lastExpire) >= time.Second {
		a.lastExpire = now
		a.expire(now.Add(-a.cfg.SeriesTTL).UnixNano())
	}
	if now.Sub(a.lastBalance) >= a.cfg.Rebalance {
		a.lastBalance = now
		for _, o := range a.owners {
			a.rebalance(o, now.UnixNano())
		}
	}
}

// expire drops label sets and peer slots last updated before cutoff, and
// owners left with none.
func (a *Aggregator) expire(cutoff int64) {
	for k, o := range a.owners {
		for rk, r := range o.rows {
			if r.lastSeen < cutoff {
				a.dropRow(o, rk, r)
			}
		}
		for pk, s := range o.peers {
			if s.lastSeen < cutoff {
				delete(o.peers, pk)
			}
		}
		for rc, r := range o.dns {
			if r.lastSeen < cutoff {
				delete(o.dns, rc)
				a.series--
			}
		}
		for i, r := range o.udp {
			if r != nil && r.lastSeen < cutoff {
				o.udp[i] = nil
				a.series -= udpSeries
			}
		}
		if len(o.rows) == 0 && len(o.dns) == 0 && len(o.peers) == 0 && o.udp[0] == nil && o.udp[1] == nil {
			delete(a.owners, k)
		}
	}
	for i, r := range a.overflow {
		if r != nil && r.lastSeen < cutoff {
			a.overflow[i] = nil
		}
	}
	for rc, r := range a.overflowDNS {
		if r.lastSeen < cutoff {
			delete(a.overflowDNS, rc)
		}
	}
	for i, r := range a.overflowUDP {
		if r != nil && r.lastSeen < cutoff {
			a.overflowUDP[i] = nil
		}
	}
}

func (a *Aggregator) dropRow(o *owner, rk rowKey, r *row) {
	delete(o.rows, rk)
	a.series -= rowCost(r.inbound)
	for _, n := range r.failures {
		if n > 0 {
			a.series--
		}
	}
	for _, n := range r.resets {
		if n > 0 {
			a.series--
		}
	}
}

// rebalance gives the busiest folded peer of o the slot of its least busy
// peer when it had more than twice as many events since the last
// rebalance (one swap per owner and period, so series churn stays low);
// the demoted peer's label sets are dropped and it counts as "other"
// from then on, the promoted one's start from zero.
func (a *Aggregator) rebalance(o *owner, now int64) {
	defer func() {
		clear(o.candidates)
		for _, s := range o.peers {
			s.recent = 0
		}
	}()
	if len(o.candidates) == 0 || len(o.peers) < a.cfg.Peers || a.cfg.Peers == 0 {
		return
	}
	var best peerKey
	var bestN uint64
	for k, n := range o.candidates {
		if n > bestN {
			best, bestN = k, n
		}
	}
	var weak peerKey
	var weakSlot *peerSlot
	for k, s := range o.peers {
		if weakSlot == nil || s.recent < weakSlot.recent {
			weak, weakSlot = k, s
		}
	}
	if bestN <= 2*weakSlot.recent {
		return
	}
	for _, in := range [...]bool{false, true} {
		if r := o.rows[rowKey{in, weak}]; r != nil {
			a.dropRow(o, rowKey{in, weak}, r)
		}
	}
	delete(o.peers, weak)
	o.peers[best] = &peerSlot{lastSeen: now}
}

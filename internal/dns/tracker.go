package dns

import (
	"container/list"
	"encoding/binary"
	"net/netip"
	"slices"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/tuxscope/tuxscope/internal/event"
)

// Bounds on the tracker's memory. Every byte the tracker keeps is
// accounted (Bytes): the names, queries and stream bytes themselves plus a
// fixed cost per entry for the Go structures around them. Past a bound
// the oldest entries go first, and each one still in use (a name not yet
// expired, a query not yet timed out, a stream) counts as evicted.
const (
	MaxNameBytes    = 16 << 20 // names learned
	MaxPendingBytes = 1 << 20  // queries awaiting their answer
	MaxStreamBytes  = 2 << 20  // DNS-over-TCP bytes being reassembled, all streams together
	// MaxBytes is the most the tracker keeps, all together.
	MaxBytes = MaxNameBytes + MaxPendingBytes + MaxStreamBytes

	MaxAddrs        = 65536 // addresses with names, per namespace and in all
	MaxNamesPerAddr = 8
	maxStreamBytes  = 2 + 65535 // one stream holds less than one whole message
	// minTTLNs keeps a TTL-0 answer for the connect that follows it.
	minTTLNs = 1e9
	// A query unanswered this long is forgotten (resolvers give up
	// after a few seconds); a stream that carried nothing this long too.
	queryTimeoutNs = 30e9
	streamIdleNs   = 30e9

	// What a kept entry costs beyond its own bytes: the map slot, the
	// list element, the struct (measured on amd64, rounded up).
	addrCost    = 160 // an address's key, slot and list element
	entryCost   = 64  // one name of an address, plus the name's bytes
	pendingCost = 160 // one query, plus its name's bytes
	streamCost  = 160 // one stream, plus its buffer's capacity
)

type entry struct {
	name    string
	pid     uint32
	cgroup  uint64
	seenNs  uint64 // kernel monotonic time of the answer
	expires uint64
}

// nameKey is an address in a network namespace: names are learned and
// used per namespace.
type nameKey struct {
	netns uint64
	addr  netip.Addr
}

type addrNames struct {
	key     nameKey
	entries []entry
	elem    *list.Element // in Tracker.addrOrder
}

type queryKey struct {
	cookie uint64
	id     uint16
}

// pendingQuery is a query seen leaving a socket, awaiting its answer.
type pendingQuery struct {
	key    queryKey
	sentNs uint64
	name   string
	qtype  dnsmessage.Type
	class  dnsmessage.Class
	elem   *list.Element // in Tracker.queryOrder
}

type streamKey struct {
	cookie   uint64
	response bool
}

// stream is one direction of a DNS-over-TCP connection being reassembled.
type stream struct {
	key    streamKey
	buf    []byte
	lastNs uint64
	elem   *list.Element // in Tracker.streamOrder, least recently used first
}

// Tracker follows DNS traffic and remembers which process resolved which
// name to which address, in which network namespace. Only answers to
// queries it saw may name anything: same socket, same ID, same question.
// Not safe for concurrent use.
type Tracker struct {
	// Scoped says the kernel reports network namespaces: names are then
	// learned and used per namespace, and a query from a socket whose
	// namespace is unknown (0) is not one an answer can match. Without
	// it, namespaces are ignored.
	Scoped bool
	// Hosts names addresses from the hosts file each process sees; nil:
	// none.
	Hosts HostsNamer

	names       map[nameKey]*addrNames
	addrOrder   list.List // of *addrNames, oldest learned first
	pending     map[queryKey]*pendingQuery
	queryOrder  list.List // of *pendingQuery, oldest first
	streams     map[streamKey]*stream
	streamOrder list.List // of *stream, least recently used first

	nameBytes, pendingBytes, streamBytes int
	limits                               limits

	// Malformed counts messages that could not be parsed (skipped).
	Malformed uint64
	// Unsolicited counts answers that matched no query this tracker saw
	// leave the socket they arrived at (another socket, ID or question,
	// or none at all), and messages going the wrong way (a query arriving
	// from port 53): dropped.
	Unsolicited uint64
	// Evicted counts names, queries and streams dropped, still in use,
	// to keep within the memory bounds (or, for a stream, idle too long).
	Evicted uint64
}

// limits are the bounds a tracker keeps: the constants above, smaller in
// tests that reach them.
type limits struct {
	nameBytes, pendingBytes, streamBytes, addrs int
}

var defaultLimits = limits{MaxNameBytes, MaxPendingBytes, MaxStreamBytes, MaxAddrs}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker { return newTracker(defaultLimits) }

func newTracker(l limits) *Tracker {
	return &Tracker{names: map[nameKey]*addrNames{}, pending: map[queryKey]*pendingQuery{}, streams: map[streamKey]*stream{}, limits: l}
}

// Bytes is the memory the tracker accounts for: at most MaxBytes.

func (t *Tracker) Bytes() int { return t.nameBytes + t.pendingBytes + t.streamBytes }

// Observe takes a DNS packet and returns the answers it completed that
// match a query seen before, with their latency in ns.
func (t *Tracker) Observe(e *event.DNSPacket) (responses []Message, latencies []uint64) {
	t.expire(e.TimestampNs)
	for _, raw := range t.messages(e) {
		m, err := Parse(raw)
		if err != nil {
			t.Malformed++
			continue
		}
		key := queryKey{e.Cookie, m.ID}
		if m.Response != e.Response {
			// A query arriving from port 53, or an answer leaving for it:
			// not the exchange a local resolver makes, and a query from
			// outside must not open the way for its own answer.
			t.Unsolicited++
			continue
		}
		if !m.Response {
			t.query(e, key, &m)
			continue
		}
		q, ok := t.pending[key]
		if !ok || e.TimestampNs < q.sentNs || q.name != m.Name || q.qtype != m.Type || q.class != m.Class {
			t.Unsolicited++
			continue
		}
		lat := e.TimestampNs - q.sentNs
		t.dropQuery(q)
		t.learn(e, &m)
		responses = append(responses, m)
		latencies = append(latencies, lat)
	}
	return responses, latencies
}

// query records a query awaiting its answer.
func (t *Tracker) query(e *event.DNSPacket, key queryKey, m *Message) {
	if t.Scoped && e.NetNS == 0 {
		return // its answer could not be placed in a namespace
	}
	if old, ok := t.pending[key]; ok {
		t.dropQuery(old) // asked again: the latest counts
	}
	q := &pendingQuery{key: key, sentNs: e.TimestampNs, name: m.Name, qtype: m.Type, class: m.Class}
	q.elem = t.queryOrder.PushBack(q)
	t.pending[key] = q
	t.pendingBytes += pendingCost + len(q.name)
	for t.pendingBytes > t.limits.pendingBytes {
		t.dropQuery(t.queryOrder.Front().Value.(*pendingQuery))
		t.Evicted++
	}
}

func (t *Tracker) dropQuery(q *pendingQuery) {
	t.queryOrder.Remove(q.elem)
	delete(t.pending, q.key)
	t.pendingBytes -= pendingCost + len(q.name)
}

// expire forgets queries that timed out and streams idle too long.
func (t *Tracker) expire(now uint64) {
	for f := t.queryOrder.Front(); f != nil; f = t.queryOrder.Front() {
		q := f.Value.(*pendingQuery)
		if q.sentNs+queryTimeoutNs >= now {
			break
		}
		t.dropQuery(q)
	}
	for f := t.streamOrder.Front(); f != nil; f = t.streamOrder.Front() {
		s := f.Value.(*stream)
		if s.lastNs+streamIdleNs >= now {
			break
		}
		t.dropStream(s)
		t.Evicted++
	}
}

// Forget drops what is kept for a socket that closed: its DNS-over-TCP
// streams. (Its queries time out.)
func (t *Tracker) Forget(cookie uint64) {
	for _, resp := range []bool{false, true} {
		if s, ok := t.streams[streamKey{cookie, resp}]; ok {
			t.dropStream(s)
		}
	}
}

func (t *Tracker) dropStream(s *stream) {
	t.streamOrder.Remove(s.elem)
	delete(t.streams, s.key)
	t.streamBytes -= streamCost + cap(s.buf)
}

// setStream keeps buf as s's buffer, within the streams' bound.
func (t *Tracker) setStream(s *stream, buf []byte, now uint64) {
	t.streamBytes += cap(buf) - cap(s.buf)
	s.buf, s.lastNs = buf, now
	t.streamOrder.MoveToBack(s.elem)
	for t.streamBytes > t.limits.streamBytes {
		oldest := t.streamOrder.Front().Value.(*stream)
		t.dropStream(oldest)
		t.Evicted++
		if oldest == s {
			return
		}
	}
}

// messages splits a packet's payload into DNS messages: one per UDP
// datagram; for TCP, the length-prefixed messages completed so far.
func (t *Tracker) messages(e *event.DNSPacket) [][]byte {
	if e.Protocol != 6 { // UDP
		if e.PayloadLen > uint32(len(e.Payload)) {
			t.Malformed++ // cut short: too big to capture whole
			return nil
		}
		return [][]byte{e.Payload}
	}
	key := streamKey{e.Cookie, e.Response}
	s, known := t.streams[key]
	if e.PayloadLen > uint32(len(e.Payload)) {
		if known {
			t.dropStream(s) // lost bytes: the stream cannot be followed
		}
		t.Malformed++
		return nil
	}
	if len(e.Payload) == 0 {
		return nil
	}
	var buf []byte
	if known {
		buf = append(s.buf, e.Payload...)
	} else {
		buf = e.Payload // read in place; copied below if a part stays
	}
	var out [][]byte
	consumed := false
	for len(buf) >= 2 {
		n := int(binary.BigEndian.Uint16(buf))
		if len(buf) < 2+n {
			break
		}
		out = append(out, buf[2:2+n])
		buf, consumed = buf[2+n:], true
	}
	switch {
	case len(buf) == 0:
		if known {
			t.dropStream(s)
		}
		return out
	case len(buf) > maxStreamBytes: // more than one message can be: not DNS framing
		if known {
			t.dropStream(s)
		}
		t.Malformed++
		return out
	case !known || consumed:
		// Copy the rest: the caller's payload is not ours to keep, and
		// the messages returned keep their bytes while the consumed ones
		// are freed.
		buf = slices.Clone(buf)
	}
	if !known {
		s = &stream{key: key}
		s.elem = t.streamOrder.PushBack(s)
		t.streams[key] = s
		t.streamBytes += streamCost
	}
	t.setStream(s, buf, e.TimestampNs)
	return out
}

// learn records an answer's addresses under its question's name, in the
// answer's namespace.
func (t *Tracker) learn(e *event.DNSPacket, m *Message) {
	if m.Name == "" {
		return // the root: not a host name
	}
	netns := e.NetNS
	if !t.Scoped {
		netns = 0
	}
	for _, a := range m.Addrs {
		key := nameKey{netns, a.IP.Unmap()}
		ttl := max(uint64(a.TTL)*1e9, minTTLNs)
		en := entry{name: m.Name, pid: e.PID, cgroup: e.CgroupID, seenNs: e.TimestampNs, expires: e.TimestampNs + ttl}
		an, known := t.names[key]
		if !known {
			an = &addrNames{key: key}
			an.elem = t.addrOrder.PushBack(an)
			t.names[key] = an
			t.nameBytes += addrCost
		}
		an.entries = slices.DeleteFunc(an.entries, func(x entry) bool {
			if x.name == en.name && x.pid == en.pid && x.cgroup == en.cgroup {
				t.nameBytes -= entryCost + len(x.name)
				return true
			}
			return false
		})
		if len(an.entries) >= MaxNamesPerAddr {
			old := an.entries[0]
			t.nameBytes -= entryCost + len(old.name)
			if old.expires >= e.TimestampNs {
				t.Evicted++
			}
			an.entries = slices.Delete(an.entries, 0, 1)
		}
		an.entries = append(an.entries, en)
		t.nameBytes += entryCost + len(en.name)
		t.evictNames(e.TimestampNs, an)
	}
}

// evictNames drops the oldest addresses past the bounds, but not keep
// (the one just learned).
func (t *Tracker) evictNames(now uint64, keep *addrNames) {
	for t.nameBytes > t.limits.nameBytes || len(t.names) > t.limits.addrs {
		f := t.addrOrder.Front()
		an := f.Value.(*addrNames)
		if an == keep {
			if f.Next() == nil {
				return
			}
			an = f.Next().Value.(*addrNames)
		}
		for _, en := range an.entries {
			if en.expires >= now {
				t.Evicted++
			}
		}
		t.dropAddr(an)
	}
}

func (t *Tracker) dropAddr(an *addrNames) {
	t.addrOrder.Remove(an.elem)
	delete(t.names, an.key)
	t.nameBytes -= addrCost
	for _, en := range an.entries {
		t.nameBytes -= entryCost + len(en.name)
	}
}

// HostsNamer names an address from the hosts file a process sees: its
// names, the canonical one first; nil if none (internal/hosts). Drops
// says, so far, how many hosts-file lines or names it skipped and how
// many namespaces' files it evicted.
type HostsNamer interface {
	Name(pid uint32, cgroup uint64, addr netip.Addr, now uint64) []string
	Drops() (skipped, evicted uint64)
}

// Name fills in e's hostname from what was resolved before it, in its
// network namespace: the name this process resolved to the remote
// address; else the name the hosts file this process sees gives it
// (Hosts); else one its cgroup resolved, else the latest anyone did (then
// HostnameAlso lists the others).
//
// The hosts file comes before other processes' answers: a name-based
// lookup by this process that found the address there went no further
// (glibc's "hosts: files dns"), and when no lookup of its own was seen,
// the file is what this process's resolver says the address is called.
func (t *Tracker) Name(e *event.Event) {
	if e.Inbound() || !e.Remote.IsValid() {
		return
	}
	addr := e.Remote.Addr().Unmap()
	var list []entry
	netns := e.NetNS
	if !t.Scoped {
		netns = 0
	}
	if !t.Scoped || netns != 0 { // else its namespace is unknown: no lookup can be known to be its
		if an := t.names[nameKey{netns, addr}]; an != nil {
			list = an.entries
		}
	}
	// live: not expired, and not learned after the event (1 s of slack
	// for timestamps taken on different CPUs).
	live := func(en *entry) bool { return en.expires >= e.TimestampNs && en.seenNs <= e.TimestampNs+1e9 }
	var own, group, any *entry
	for i := range list {
		en := &list[i]
		if !live(en) {
			continue
		}
		if e.PID != 0 && en.pid == e.PID && (own == nil || en.seenNs > own.seenNs) {
			own = en
		}
		if e.CgroupID != 0 && en.cgroup == e.CgroupID && (group == nil || en.seenNs > group.seenNs) {
			group = en
		}
		if any == nil || en.seenNs > any.seenNs {
			any = en
		}
	}
	if own == nil && t.Hosts != nil {
		if names := t.Hosts.Name(e.PID, e.CgroupID, addr, e.TimestampNs); len(names) > 0 {
			e.Hostname, e.HostnameSource = names[0], "hosts"
			if len(names) > 1 {
				e.HostnameAlso = names[1:]
			}
			return
		}
	}
	pick, source := own, "process"
	if pick == nil {
		pick, source = group, "cgroup"
	}
	if pick == nil {
		pick, source = any, "host"
	}
	if pick == nil {
		return
	}
	e.Hostname, e.HostnameSource = pick.name, source
	if source != "process" {
		for i := range list {
			en := &list[i]
			if en.name != pick.name && live(en) && !slices.Contains(e.HostnameAlso, en.name) {
				e.HostnameAlso = append(e.HostnameAlso, en.name)
			}
		}
	}
}

// Addrs is how many addresses have names, in all namespaces (for tests
// and stats).
func (t *Tracker) Addrs() int { return len(t.names) }

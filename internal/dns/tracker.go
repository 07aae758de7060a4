package dns

import (
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/tuxscope/tuxscope/internal/event"
)

// Bounds on the tracker's memory.
const (
	MaxAddrs        = 65536 // addresses with names
	MaxNamesPerAddr = 8
	maxPending      = 4096 // queries awaiting a response
	maxStreams      = 1024 // DNS-over-TCP connections being reassembled
	maxStreamBytes  = 2 + 65535
	// minTTLNs keeps a TTL-0 answer for the connect that follows it.
	minTTLNs = 1e9
)

type entry struct {
	name    string
	pid     uint32
	cgroup  uint64
	seenNs  uint64 // kernel monotonic time of the answer
	expires uint64
}

type queryKey struct {
	cookie uint64
	id     uint16
}

type streamKey struct {
	cookie   uint64
	response bool
}

// Tracker follows DNS traffic and remembers which process resolved which
// name to which address. Not safe for concurrent use.
type Tracker struct {
	names   map[netip.Addr][]entry
	fifo    []netip.Addr // insertion order, for eviction
	pending map[queryKey]uint64
	streams map[streamKey][]byte
	// Malformed counts messages that could not be parsed (skipped).
	Malformed uint64
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker {
	return &Tracker{names: map[netip.Addr][]entry{}, pending: map[queryKey]uint64{}, streams: map[streamKey][]byte{}}
}

// Observe takes a DNS packet and returns the responses it completed (with
// their latency in ns when the query was seen, else 0).
func (t *Tracker) Observe(e *event.DNSPacket) (responses []Message, latencies []uint64) {
	for _, raw := range t.messages(e) {
		m, err := Parse(raw)
		if err != nil {
			t.Malformed++
			continue
		}
		key := queryKey{e.Cookie, m.ID}
		if !m.Response {
			if len(t.pending) >= maxPending {
				clear(t.pending)
			}
			t.pending[key] = e.TimestampNs
			continue
		}
		var lat uint64
		if sent, ok := t.pending[key]; ok && e.TimestampNs >= sent {
			lat = e.TimestampNs - sent
			delete(t.pending, key)
		}
		t.learn(e, &m)
		responses = append(responses, m)
		latencies = append(latencies, lat)
	}
	return responses, latencies
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
	buf, known := t.streams[key]
	if e.PayloadLen > uint32(len(e.Payload)) {
		delete(t.streams, key) // lost bytes: the stream cannot be followed
		t.Malformed++
		return nil
	}
	if !known && len(t.streams) >= maxStreams {
		clear(t.streams)
	}
	buf = append(buf, e.Payload...)
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
		delete(t.streams, key)
	case len(buf) > maxStreamBytes: // more than one message can be: not DNS framing
		delete(t.streams, key)
		t.Malformed++
	case consumed:
		// Copy the rest, so the messages returned keep their bytes and the
		// consumed ones are freed; otherwise keep appending in place.
		t.streams[key] = slices.Clone(buf)
	default:
		t.streams[key] = buf
	}
	return out
}

// learn records a response's addresses under its question's name.
func (t *Tracker) learn(e *event.DNSPacket, m *Message) {
	if m.Name == "" {
		return // the root: not a host name
	}
	for _, a := range m.Addrs {
		ip := a.IP.Unmap()
		ttl := max(uint64(a.TTL)*1e9, minTTLNs)
		en := entry{name: m.Name, pid: e.PID, cgroup: e.CgroupID, seenNs: e.TimestampNs, expires: e.TimestampNs + ttl}
		list, known := t.names[ip]
		list = slices.DeleteFunc(list, func(x entry) bool {
			return x.name == en.name && x.pid == en.pid && x.cgroup == en.cgroup
		})
		if len(list) >= MaxNamesPerAddr {
			list = list[1:]
		}
		t.names[ip] = append(list, en)
		if !known {
			t.fifo = append(t.fifo, ip)
			t.evict()
		}
	}
}

// evict drops the oldest addresses past MaxAddrs.
func (t *Tracker) evict() {
	for len(t.names) > MaxAddrs && len(t.fifo) > 0 {
		delete(t.names, t.fifo[0])
		t.fifo = t.fifo[1:]
	}
	if cap(t.fifo) > 4*MaxAddrs { // let the backing array go
		t.fifo = slices.Clone(t.fifo)
	}
}

// Name fills in e's hostname from what was resolved before it: the name
// this process resolved to the remote address, else one its cgroup did,
// else the latest anyone did (then HostnameAlso lists the others).
func (t *Tracker) Name(e *event.Event) {
	if e.Inbound() || !e.Remote.IsValid() {
		return
	}
	list := t.names[e.Remote.Addr().Unmap()]
	if len(list) == 0 {
		return
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

// Addrs is how many addresses have names (for tests and stats).
func (t *Tracker) Addrs() int { return len(t.names) }

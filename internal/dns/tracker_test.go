package dns

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"reflect"
	"testing"

	"github.com/tuxscope/tuxscope/internal/event"
	"golang.org/x/net/dns/dnsmessage"
)

// frame length-prefixes messages as DNS over TCP does.
func frame(msgs ...[]byte) []byte {
	var out []byte
	for _, m := range msgs {
		out = binary.BigEndian.AppendUint16(out, uint16(len(m)))
		out = append(out, m...)
	}
	return out
}

type who struct {
	pid    uint32
	cgroup uint64
}

func dnsEvent(proto uint8, cookie uint64, response bool, ts uint64, w who, payload []byte) *event.DNSPacket {
	return &event.DNSPacket{
		Protocol: proto, Cookie: cookie, Response: response, TimestampNs: ts,
		PID: w.pid, CgroupID: w.cgroup, Payload: payload, PayloadLen: uint32(len(payload)),
	}
}

func udp(cookie uint64, response bool, ts uint64, w who, payload []byte) *event.DNSPacket {
	return dnsEvent(17, cookie, response, ts, w, payload)
}

func tcp(cookie uint64, response bool, ts uint64, payload []byte) *event.DNSPacket {
	return dnsEvent(6, cookie, response, ts, who{1, 1}, payload)
}

// observe feeds e and fails unless it completed exactly the responses with
// these IDs.
func observe(t *testing.T, tr *Tracker, e *event.DNSPacket, ids ...uint16) ([]Message, []uint64) {
	t.Helper()
	responses, latencies := tr.Observe(e)
	if len(responses) != len(latencies) {
		t.Fatalf("%d responses, %d latencies", len(responses), len(latencies))
	}
	var got []uint16
	for _, m := range responses {
		got = append(got, m.ID)
	}
	if !reflect.DeepEqual(got, ids) {
		t.Fatalf("responses %v, want %v", got, ids)
	}
	return responses, latencies
}

// learnA has w resolve name to the addresses (A or AAAA) at ts, over UDP.
func learnA(t *testing.T, tr *Tracker, w who, ts uint64, name string, ttl uint32, ips ...string) {
	t.Helper()
	var rrs []rr
	for _, ip := range ips {
		rrs = append(rrs, a(name, ip, ttl))
	}
	observe(t, tr, udp(uint64(w.pid), true, ts, w, build(t, resp(1), name, dnsmessage.TypeA, rrs...)), 1)
}

type naming struct {
	name, source string
	also         []string
}

// nameOf is what Name makes of a connect from w at ts to remote.
func nameOf(tr *Tracker, w who, ts uint64, remote string) naming {
	e := &event.Event{Type: event.Connect, PID: w.pid, CgroupID: w.cgroup, TimestampNs: ts, Remote: netip.MustParseAddrPort(remote)}
	tr.Name(e)
	return naming{e.Hostname, e.HostnameSource, e.HostnameAlso}
}

func wantName(t *testing.T, got naming, name, source string, also ...string) {
	t.Helper()
	want := naming{name, source, also}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Name = %+v, want %+v", got, want)
	}
}

var (
	proc  = who{100, 7}
	proc2 = who{200, 7}
	other = who{300, 9}
)

func TestUDPQueryResponseLatency(t *testing.T) {
	tr := NewTracker()
	observe(t, tr, udp(5, false, 1_000_000, proc, build(t, query(0x1111), "example.com", dnsmessage.TypeA)))
	if len(tr.pending) != 1 {
		t.Fatalf("%d pending queries, want 1", len(tr.pending))
	}
	msg := build(t, resp(0x1111), "example.com", dnsmessage.TypeA, a("example.com", "192.0.2.1", 60))
	responses, lat := observe(t, tr, udp(5, true, 1_250_000, proc, msg), 0x1111)
	if lat[0] != 250_000 {
		t.Errorf("latency %d, want 250000", lat[0])
	}
	if want := mustParse(t, msg); !reflect.DeepEqual(responses[0], want) {
		t.Errorf("response %+v, want %+v", responses[0], want)
	}
	if len(tr.pending) != 0 {
		t.Errorf("%d pending queries after the response, want 0", len(tr.pending))
	}
	// A duplicate response matches nothing any more.
	if _, lat := observe(t, tr, udp(5, true, 1_300_000, proc, msg), 0x1111); lat[0] != 0 {
		t.Errorf("duplicate response: latency %d, want 0", lat[0])
	}
	if tr.Malformed != 0 || tr.Addrs() != 1 {
		t.Errorf("Malformed %d, Addrs %d; want 0 and 1", tr.Malformed, tr.Addrs())
	}
	// A response stamped the same nanosecond as its query matches it.
	observe(t, tr, udp(5, false, 7e9, proc, build(t, query(0x1212), "example.com", dnsmessage.TypeA)))
	if _, lat := observe(t, tr, udp(5, true, 7e9, proc, build(t, resp(0x1212), "example.com", dnsmessage.TypeA)), 0x1212); lat[0] != 0 || len(tr.pending) != 0 {
		t.Errorf("same-time response: latency %d, %d pending; want 0 and none", lat[0], len(tr.pending))
	}
}

func TestUDPResponseWithoutQuery(t *testing.T) {
	tr := NewTracker()
	msg := build(t, resp(0x2222), "example.com", dnsmessage.TypeA, a("example.com", "192.0.2.1", 60))
	if _, lat := observe(t, tr, udp(5, true, 9e9, proc, msg), 0x2222); lat[0] != 0 {
		t.Errorf("latency %d, want 0", lat[0])
	}
	if tr.Addrs() != 1 {
		t.Errorf("Addrs %d, want 1: an unasked-for response is still learned", tr.Addrs())
	}

	// A query on another socket, or with another ID, is not this one's.
	observe(t, tr, udp(6, false, 1e9, proc, build(t, query(0x3333), "example.com", dnsmessage.TypeA)))
	for _, e := range []*event.DNSPacket{
		udp(7, true, 2e9, proc, build(t, resp(0x3333), "example.com", dnsmessage.TypeA)),
		udp(6, true, 2e9, proc, build(t, resp(0x3334), "example.com", dnsmessage.TypeA)),
	} {
		if _, lat := tr.Observe(e); len(lat) != 1 || lat[0] != 0 {
			t.Errorf("cookie %d: latencies %v, want [0]", e.Cookie, lat)
		}
	}
	// A response stamped before its query has no latency; the query waits on.
	if _, lat := tr.Observe(udp(6, true, 1e9-1, proc, build(t, resp(0x3333), "example.com", dnsmessage.TypeA))); lat[0] != 0 {
		t.Errorf("response before query: latency %d, want 0", lat[0])
	}
	if _, ok := tr.pending[queryKey{6, 0x3333}]; !ok || len(tr.pending) != 1 {
		t.Errorf("pending %v, want the query on cookie 6", tr.pending)
	}
	if _, lat := tr.Observe(udp(6, true, 1e9+42, proc, build(t, resp(0x3333), "example.com", dnsmessage.TypeA))); lat[0] != 42 {
		t.Errorf("latency %d, want 42", lat[0])
	}
}

func TestUDPMalformedAndCut(t *testing.T) {
	tr := NewTracker()
	msg := build(t, resp(1), "example.com", dnsmessage.TypeA, a("example.com", "192.0.2.1", 60))
	// A datagram cut short by the capture is skipped, even when the part
	// captured parses (the additional section could be what is missing).
	cut := udp(5, true, 1e9, proc, msg)
	cut.PayloadLen = uint32(len(msg)) + 100
	observe(t, tr, cut)
	if tr.Malformed != 1 || tr.Addrs() != 0 {
		t.Fatalf("cut datagram: Malformed %d, Addrs %d; want 1 and 0", tr.Malformed, tr.Addrs())
	}
	observe(t, tr, udp(5, true, 1e9, proc, []byte{1, 2, 3}))
	observe(t, tr, udp(5, true, 1e9, proc, nil))
	if tr.Malformed != 3 || tr.Addrs() != 0 {
		t.Errorf("Malformed %d, Addrs %d; want 3 and 0", tr.Malformed, tr.Addrs())
	}
	// A whole capture (PayloadLen == len) is read.
	observe(t, tr, udp(5, true, 1e9, proc, msg), 1)
	if tr.Malformed != 3 || tr.Addrs() != 1 {
		t.Errorf("Malformed %d, Addrs %d; want 3 and 1", tr.Malformed, tr.Addrs())
	}
}

func TestTCPOneMessage(t *testing.T) {
	tr := NewTracker()
	msg := build(t, resp(0x0101), "example.com", dnsmessage.TypeA, a("example.com", "192.0.2.1", 60))
	responses, _ := observe(t, tr, tcp(1, true, 1e9, frame(msg)), 0x0101)
	if want := mustParse(t, msg); !reflect.DeepEqual(responses[0], want) {
		t.Errorf("response %+v, want %+v", responses[0], want)
	}
	if len(tr.streams) != 0 || tr.Malformed != 0 {
		t.Errorf("%d streams kept, Malformed %d; want none", len(tr.streams), tr.Malformed)
	}
}

func TestTCPSplitLengthThenBody(t *testing.T) {
	tr := NewTracker()
	msg := build(t, resp(0x0202), "example.com", dnsmessage.TypeA, a("example.com", "192.0.2.1", 60))
	framed := frame(msg)
	observe(t, tr, tcp(1, true, 1e9, framed[:2]))
	if got := tr.streams[streamKey{1, true}]; !bytes.Equal(got, framed[:2]) {
		t.Fatalf("stream holds % x, want % x", got, framed[:2])
	}
	observe(t, tr, tcp(1, true, 1e9, framed[2:]), 0x0202)
	if len(tr.streams) != 0 {
		t.Errorf("%d streams kept", len(tr.streams))
	}

	// One byte at a time: the message completes with its last byte, and
	// the caller's buffer may be reused in between.
	buf := make([]byte, 1)
	for i, c := range framed {
		buf[0] = c
		var ids []uint16
		if i == len(framed)-1 {
			ids = []uint16{0x0202}
		}
		observe(t, tr, tcp(1, true, 1e9, buf), ids...)
		buf[0] = 0xAA
	}
	if len(tr.streams) != 0 || tr.Malformed != 0 {
		t.Errorf("%d streams kept, Malformed %d; want none", len(tr.streams), tr.Malformed)
	}
}

func TestTCPSeveralMessagesPerPayload(t *testing.T) {
	tr := NewTracker()
	m1 := build(t, resp(1), "one.example", dnsmessage.TypeA, a("one.example", "192.0.2.1", 60))
	m2 := build(t, resp(2), "two.example", dnsmessage.TypeAAAA, a("two.example", "2001:db8::2", 60))
	m3 := build(t, resp(3), "three.example", dnsmessage.TypeA, a("three.example", "192.0.2.3", 60))
	responses, _ := observe(t, tr, tcp(1, true, 1e9, frame(m1, m2)), 1, 2)
	if responses[0].Name != "one.example" || responses[1].Name != "two.example" {
		t.Errorf("names %q %q", responses[0].Name, responses[1].Name)
	}
	// Two and a half, then the rest.
	all := frame(m1, m2, m3)
	cut := len(frame(m1, m2)) + 10
	observe(t, tr, tcp(1, true, 2e9, all[:cut]), 1, 2)
	if got := len(tr.streams[streamKey{1, true}]); got != 10 {
		t.Errorf("stream holds %d bytes, want 10", got)
	}
	observe(t, tr, tcp(1, true, 2e9, all[cut:]), 3)
	if tr.Addrs() != 3 || len(tr.streams) != 0 || tr.Malformed != 0 {
		t.Errorf("Addrs %d, streams %d, Malformed %d", tr.Addrs(), len(tr.streams), tr.Malformed)
	}
	// An empty message (length 0) is malformed; the one after it is read.
	observe(t, tr, tcp(1, true, 3e9, cat([]byte{0, 0}, frame(m1))), 1)
	if tr.Malformed != 1 {
		t.Errorf("Malformed %d, want 1", tr.Malformed)
	}
}

func TestTCPQueryResponseLatency(t *testing.T) {
	tr := NewTracker()
	q := frame(build(t, query(0x0505), "example.com", dnsmessage.TypeA))
	r := frame(build(t, resp(0x0505), "example.com", dnsmessage.TypeA, a("example.com", "192.0.2.1", 60)))
	// Half the query, then the whole response on the other direction, then
	// the rest of the query: the directions are reassembled apart.
	observe(t, tr, tcp(9, false, 1_000_000, q[:5]))
	observe(t, tr, tcp(9, false, 1_500_000, q[5:]))
	observe(t, tr, tcp(9, true, 2_000_000, r[:3]))
	if _, lat := observe(t, tr, tcp(9, true, 3_500_000, r[3:]), 0x0505); lat[0] != 2_000_000 {
		t.Errorf("latency %d, want 2000000 (from the segment completing the query)", lat[0])
	}
}

func TestTCPCutCaptureDropsStream(t *testing.T) {
	tr := NewTracker()
	msg := build(t, resp(0x0606), "example.com", dnsmessage.TypeA, a("example.com", "192.0.2.1", 60))
	framed := frame(msg)
	observe(t, tr, tcp(1, true, 1e9, framed[:10]))
	cut := tcp(1, true, 1e9, framed[10:20])
	cut.PayloadLen = uint32(len(framed) - 10)
	observe(t, tr, cut)
	if tr.Malformed != 1 || len(tr.streams) != 0 {
		t.Fatalf("Malformed %d, %d streams; want 1 and none", tr.Malformed, len(tr.streams))
	}
	// The stream starts over with the next segment.
	observe(t, tr, tcp(1, true, 2e9, framed), 0x0606)
	// A cut segment on a stream with nothing buffered is counted too, and
	// leaves nothing behind.
	cut = tcp(2, true, 3e9, framed[:2])
	cut.PayloadLen = 3
	observe(t, tr, cut)
	if tr.Malformed != 2 || len(tr.streams) != 0 {
		t.Fatalf("Malformed %d, %d streams; want 2 and none", tr.Malformed, len(tr.streams))
	}
}

// padded is a valid response padded with zeros (which Parse ignores) to n
// bytes.
func padded(t *testing.T, id uint16, n int) []byte {
	msg := build(t, resp(id), "big.example", dnsmessage.TypeA, a("big.example", "192.0.2.77", 60))
	return append(msg, make([]byte, n-len(msg))...)
}

// feed sends b in segments of the kernel's capture size at most.
func feed(t *testing.T, tr *Tracker, cookie uint64, b []byte) (n int) {
	for len(b) > 0 {
		k := min(len(b), 2047)
		responses, _ := tr.Observe(tcp(cookie, true, 1e9, b[:k]))
		n += len(responses)
		b = b[k:]
	}
	return n
}

func TestTCPStreamBound(t *testing.T) {
	tr := NewTracker()
	// The largest message there is fits exactly.
	if n := feed(t, tr, 1, frame(padded(t, 1, 65535))); n != 1 || tr.Malformed != 0 || len(tr.streams) != 0 {
		t.Fatalf("65535-byte message: %d responses, Malformed %d, %d streams", n, tr.Malformed, len(tr.streams))
	}
	// Framing bounds what is kept: whatever arrives, a stream holds less
	// than one whole message (2 + 65535 bytes).
	framed := frame(padded(t, 2, 65535))
	if n := feed(t, tr, 2, framed[:len(framed)-1]); n != 0 {
		t.Fatalf("%d responses from an incomplete message", n)
	}
	if got := len(tr.streams[streamKey{2, true}]); got != maxStreamBytes-1 || got > maxStreamBytes {
		t.Fatalf("stream holds %d bytes, want %d", got, maxStreamBytes-1)
	}
}

// A segment that ends one maximal message and starts the next is valid DNS
// over TCP; the bound should apply to what stays buffered, not to the
// buffer before complete messages are taken out.
func TestTCPBoundCountsOnlyIncompleteMessage(t *testing.T) {
	tr := NewTracker()
	framed := frame(padded(t, 1, 65535))
	feed(t, tr, 1, framed[:len(framed)-1])
	next := frame(build(t, resp(2), "next.example", dnsmessage.TypeA, a("next.example", "192.0.2.78", 60)))
	observe(t, tr, tcp(1, true, 2e9, cat(framed[len(framed)-1:], next)), 1, 2)
	if tr.Malformed != 0 {
		t.Errorf("Malformed %d", tr.Malformed)
	}
}

func TestTCPMaxStreams(t *testing.T) {
	tr := NewTracker()
	for c := uint64(1); c <= maxStreams; c++ {
		observe(t, tr, tcp(c, true, 1e9, []byte{0}))
	}
	if len(tr.streams) != maxStreams {
		t.Fatalf("%d streams, want %d", len(tr.streams), maxStreams)
	}
	// An existing stream goes on at the bound.
	observe(t, tr, tcp(1, true, 1e9, []byte{5}))
	if len(tr.streams) != maxStreams || len(tr.streams[streamKey{1, true}]) != 2 {
		t.Fatalf("%d streams, stream 1 holds %d bytes", len(tr.streams), len(tr.streams[streamKey{1, true}]))
	}
	// A new one past it starts the table over.
	observe(t, tr, tcp(1, false, 1e9, []byte{0}))
	if len(tr.streams) != 1 || len(tr.streams[streamKey{1, false}]) != 1 {
		t.Fatalf("%d streams after the bound, want only the new one", len(tr.streams))
	}
}

func TestMaxPending(t *testing.T) {
	tr := NewTracker()
	q := build(t, query(0), "example.com", dnsmessage.TypeA)
	for i := 0; i < maxPending; i++ {
		binary.BigEndian.PutUint16(q, uint16(i))
		observe(t, tr, udp(uint64(1+i/65536), false, uint64(1e9+i), proc, q))
	}
	if len(tr.pending) != maxPending {
		t.Fatalf("%d pending, want %d", len(tr.pending), maxPending)
	}
	// A query more starts the table over.
	binary.BigEndian.PutUint16(q, 0xffff)
	observe(t, tr, udp(1, false, 5e9, proc, q))
	if len(tr.pending) != 1 {
		t.Fatalf("%d pending after the bound, want 1", len(tr.pending))
	}
	if _, lat := tr.Observe(udp(1, true, 6e9, proc, build(t, resp(0), "example.com", dnsmessage.TypeA))); lat[0] != 0 {
		t.Errorf("forgotten query: latency %d, want 0", lat[0])
	}
	if _, lat := tr.Observe(udp(1, true, 6e9, proc, build(t, resp(0xffff), "example.com", dnsmessage.TypeA))); lat[0] != 1e9 {
		t.Errorf("latency %d, want 1e9", lat[0])
	}
}

func TestNameProvenance(t *testing.T) {
	tr := NewTracker()
	learnA(t, tr, proc, 1e9, "a.example", 300, "192.0.2.1")
	learnA(t, tr, proc2, 2e9, "b.example", 300, "192.0.2.1")
	learnA(t, tr, other, 3e9, "c.example", 300, "192.0.2.1")

	wantName(t, nameOf(tr, proc, 4e9, "192.0.2.1:443"), "a.example", "process")
	wantName(t, nameOf(tr, proc2, 4e9, "192.0.2.1:443"), "b.example", "process")
	// Same cgroup, another process: the cgroup's latest, the others listed.
	wantName(t, nameOf(tr, who{101, 7}, 4e9, "192.0.2.1:443"), "b.example", "cgroup", "a.example", "c.example")
	wantName(t, nameOf(tr, who{301, 9}, 4e9, "192.0.2.1:443"), "c.example", "cgroup", "a.example", "b.example")
	// Neither: the host's latest.
	wantName(t, nameOf(tr, who{400, 11}, 4e9, "192.0.2.1:443"), "c.example", "host", "a.example", "b.example")
	// PID and cgroup 0 (unknown) match nothing of their own.
	learnA(t, tr, who{0, 0}, 3_500_000_000, "zero.example", 300, "192.0.2.2")
	learnA(t, tr, who{500, 0}, 3_600_000_000, "newer.example", 300, "192.0.2.2")
	wantName(t, nameOf(tr, who{0, 0}, 4e9, "192.0.2.2:443"), "newer.example", "host", "zero.example")
	// Nothing resolved to it: nothing.
	wantName(t, nameOf(tr, proc, 4e9, "192.0.2.3:443"), "", "")
}

func TestNameOwnLatestAndRefresh(t *testing.T) {
	tr := NewTracker()
	learnA(t, tr, proc, 1e9, "old.example", 300, "192.0.2.1")
	learnA(t, tr, proc, 2e9, "new.example", 300, "192.0.2.1")
	learnA(t, tr, other, 3e9, "theirs.example", 300, "192.0.2.1")
	wantName(t, nameOf(tr, proc, 4e9, "192.0.2.1:80"), "new.example", "process")
	// Resolving a name again replaces the old entry; it does not add one.
	learnA(t, tr, proc, 5e9, "old.example", 300, "192.0.2.1")
	if got := len(tr.names[netip.MustParseAddr("192.0.2.1")]); got != 3 {
		t.Errorf("%d entries, want 3", got)
	}
	wantName(t, nameOf(tr, proc, 6e9, "192.0.2.1:80"), "old.example", "process")
	// One message listing an address twice makes one entry.
	learnA(t, tr, proc, 7e9, "twice.example", 300, "192.0.2.9", "192.0.2.9")
	if got := len(tr.names[netip.MustParseAddr("192.0.2.9")]); got != 1 {
		t.Errorf("%d entries, want 1", got)
	}
}

func TestNameExpiry(t *testing.T) {
	tr := NewTracker()
	learnA(t, tr, proc, 1e9, "short.example", 60, "192.0.2.1")
	learnA(t, tr, other, 2e9, "long.example", 3600, "192.0.2.1")
	// Live to the nanosecond its TTL ends.
	wantName(t, nameOf(tr, proc, 61e9, "192.0.2.1:443"), "short.example", "process")
	// Past it, the process's own name is gone; the other one remains, and
	// the expired one is not listed.
	wantName(t, nameOf(tr, proc, 61e9+1, "192.0.2.1:443"), "long.example", "host")
	wantName(t, nameOf(tr, who{1, 1}, 61e9, "192.0.2.1:443"), "long.example", "host", "short.example")
	wantName(t, nameOf(tr, who{1, 1}, 3602e9+1, "192.0.2.1:443"), "", "")

	// TTL 0 holds for minTTLNs (a second), for the connect right after the
	// answer.
	learnA(t, tr, proc, 5e9, "zero.example", 0, "192.0.2.2")
	wantName(t, nameOf(tr, proc, 5e9, "192.0.2.2:443"), "zero.example", "process")
	wantName(t, nameOf(tr, proc, 6e9, "192.0.2.2:443"), "zero.example", "process")
	wantName(t, nameOf(tr, proc, 6e9+1, "192.0.2.2:443"), "", "")

	// The largest TTL there is does not wrap.
	learnA(t, tr, proc, 5e9, "forever.example", 0xffffffff, "192.0.2.3")
	wantName(t, nameOf(tr, proc, 5e9+0xffffffff*1e9, "192.0.2.3:443"), "forever.example", "process")
	wantName(t, nameOf(tr, proc, 5e9+0xffffffff*1e9+1, "192.0.2.3:443"), "", "")
}

func TestNameLearnedAfterEvent(t *testing.T) {
	tr := NewTracker()
	learnA(t, tr, proc, 10e9, "later.example", 300, "192.0.2.1")
	// Up to a second of disorder between the DNS and the connect is allowed.
	wantName(t, nameOf(tr, proc, 9e9, "192.0.2.1:443"), "later.example", "process")
	wantName(t, nameOf(tr, proc, 9e9-1, "192.0.2.1:443"), "", "")
	// An older answer is used rather than one from the future.
	learnA(t, tr, proc, 1e9, "earlier.example", 300, "192.0.2.1")
	wantName(t, nameOf(tr, proc, 5e9, "192.0.2.1:443"), "earlier.example", "process")
}

// HostnameAlso should list only names Name could have picked: not one
// learned after the event.
func TestNameAlsoSkipsLaterAnswers(t *testing.T) {
	tr := NewTracker()
	learnA(t, tr, proc, 1e9, "before.example", 300, "192.0.2.1")
	learnA(t, tr, proc2, 10e9, "after.example", 300, "192.0.2.1")
	wantName(t, nameOf(tr, other, 2e9, "192.0.2.1:443"), "before.example", "host")
}

func TestNameV4Mapped(t *testing.T) {
	tr := NewTracker()
	learnA(t, tr, proc, 1e9, "four.example", 300, "192.0.2.1")
	// An IPv6 socket connecting to an IPv4 peer.
	wantName(t, nameOf(tr, proc, 2e9, "[::ffff:192.0.2.1]:443"), "four.example", "process")
	// A v4-mapped AAAA answer names the IPv4 address.
	observe(t, tr, udp(1, true, 1e9, proc, build(t, resp(1), "mapped.example", dnsmessage.TypeAAAA, a("mapped.example", "::ffff:192.0.2.2", 300))), 1)
	wantName(t, nameOf(tr, proc, 2e9, "192.0.2.2:443"), "mapped.example", "process")
	wantName(t, nameOf(tr, proc, 2e9, "[::ffff:192.0.2.2]:443"), "mapped.example", "process")
	if _, ok := tr.names[netip.MustParseAddr("192.0.2.2")]; !ok || tr.Addrs() != 2 {
		t.Errorf("names %v: want 192.0.2.2 stored unmapped", tr.names)
	}
	// Real IPv6 is its own address.
	learnA(t, tr, proc, 1e9, "six.example", 300, "2001:db8::1")
	wantName(t, nameOf(tr, proc, 2e9, "[2001:db8::1]:443"), "six.example", "process")
	wantName(t, nameOf(tr, proc, 2e9, "[2001:db8::c000:201]:443"), "", "")
}

func TestNameLeavesInboundAlone(t *testing.T) {
	tr := NewTracker()
	learnA(t, tr, proc, 1e9, "peer.example", 300, "192.0.2.1")
	remote := netip.MustParseAddrPort("192.0.2.1:5555")
	for _, e := range []*event.Event{
		{Type: event.Accept, PID: proc.pid, CgroupID: proc.cgroup, TimestampNs: 2e9, Remote: remote},
		{Type: event.Close, Flags: event.FlagInbound, PID: proc.pid, CgroupID: proc.cgroup, TimestampNs: 2e9, Remote: remote},
		{Type: event.Connect, PID: proc.pid, CgroupID: proc.cgroup, TimestampNs: 2e9}, // no remote
	} {
		tr.Name(e)
		if e.Hostname != "" || e.HostnameSource != "" || e.HostnameAlso != nil {
			t.Errorf("%v (flags %d): named %q %q %q", e.Type, e.Flags, e.Hostname, e.HostnameSource, e.HostnameAlso)
		}
	}
	// The same connection's outbound close is named.
	e := &event.Event{Type: event.Close, Flags: event.FlagClosedLocal, PID: proc.pid, CgroupID: proc.cgroup, TimestampNs: 2e9, Remote: remote}
	tr.Name(e)
	if e.Hostname != "peer.example" || e.HostnameSource != "process" {
		t.Errorf("outbound close: %q %q", e.Hostname, e.HostnameSource)
	}
}

func TestMaxNamesPerAddr(t *testing.T) {
	tr := NewTracker()
	const n = MaxNamesPerAddr + 3
	for i := 0; i < n; i++ {
		learnA(t, tr, who{uint32(1000 + i), uint64(1000 + i)}, uint64(i+1)*1e9, fmt.Sprintf("n%d.example", i), 300, "192.0.2.1")
	}
	list := tr.names[netip.MustParseAddr("192.0.2.1")]
	if len(list) != MaxNamesPerAddr {
		t.Fatalf("%d names, want %d", len(list), MaxNamesPerAddr)
	}
	var also []string
	for i := n - MaxNamesPerAddr; i < n-1; i++ {
		also = append(also, fmt.Sprintf("n%d.example", i))
	}
	wantName(t, nameOf(tr, other, 100e9, "192.0.2.1:443"), fmt.Sprintf("n%d.example", n-1), "host", also...)
	// The oldest are forgotten even by the process that resolved them.
	wantName(t, nameOf(tr, who{1000, 1}, 100e9, "192.0.2.1:443"), fmt.Sprintf("n%d.example", n-1), "host", also...)
	wantName(t, nameOf(tr, who{1000 + n - MaxNamesPerAddr, 99}, 100e9, "192.0.2.1:443"), fmt.Sprintf("n%d.example", n-MaxNamesPerAddr), "process")
}

// addrN is the n-th address of 10.0.0.0/8.
func addrN(n int) string { return fmt.Sprintf("10.%d.%d.%d", n>>16&0xff, n>>8&0xff, n&0xff) }

func TestMaxAddrs(t *testing.T) {
	tr := NewTracker()
	learnBlock := func(first, count int) {
		t.Helper()
		var ips []string
		for i := first; i < first+count; i++ {
			ips = append(ips, addrN(i))
		}
		learnA(t, tr, proc, 1e9, "bulk.example", 300, ips...)
	}
	for i := 0; i < MaxAddrs; i += MaxAnswers {
		learnBlock(i, MaxAnswers)
	}
	if tr.Addrs() != MaxAddrs {
		t.Fatalf("Addrs %d, want %d", tr.Addrs(), MaxAddrs)
	}
	// Learning known addresses again does not grow or evict anything.
	learnBlock(0, 2)
	if tr.Addrs() != MaxAddrs || len(tr.fifo) != MaxAddrs {
		t.Fatalf("Addrs %d, fifo %d after relearning", tr.Addrs(), len(tr.fifo))
	}
	// One more evicts the first learned.
	learnBlock(MaxAddrs, 1)
	if tr.Addrs() != MaxAddrs {
		t.Fatalf("Addrs %d, want %d", tr.Addrs(), MaxAddrs)
	}
	wantName(t, nameOf(tr, proc, 2e9, addrN(0)+":443"), "", "")
	wantName(t, nameOf(tr, proc, 2e9, addrN(1)+":443"), "bulk.example", "process")
	wantName(t, nameOf(tr, proc, 2e9, addrN(MaxAddrs)+":443"), "bulk.example", "process")
	checkTracker(t, tr)
	// Another MaxAddrs through: only the newest remain, and the eviction
	// queue stays the size of the table.
	for i := MaxAddrs + 1; i < 2*MaxAddrs+1; i += MaxAnswers {
		learnBlock(i, MaxAnswers)
	}
	if tr.Addrs() != MaxAddrs || len(tr.fifo) != MaxAddrs || cap(tr.fifo) > 4*MaxAddrs {
		t.Fatalf("Addrs %d, fifo len %d cap %d", tr.Addrs(), len(tr.fifo), cap(tr.fifo))
	}
	wantName(t, nameOf(tr, proc, 2e9, addrN(MaxAddrs)+":443"), "", "")
	wantName(t, nameOf(tr, proc, 2e9, addrN(MaxAddrs+1)+":443"), "bulk.example", "process")
	wantName(t, nameOf(tr, proc, 2e9, addrN(2*MaxAddrs)+":443"), "bulk.example", "process")
	checkTracker(t, tr)
}

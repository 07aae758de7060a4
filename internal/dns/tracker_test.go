package dns

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
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

// learnA has w resolve name to the addresses (A or AAAA) at ts, over UDP:
// its query, then the answer.
func learnA(t *testing.T, tr *Tracker, w who, ts uint64, name string, ttl uint32, ips ...string) {
	t.Helper()
	learnIn(t, tr, 0, w, ts, name, ttl, ips...)
}

// learnIn is learnA in network namespace netns.
func learnIn(t *testing.T, tr *Tracker, netns uint64, w who, ts uint64, name string, ttl uint32, ips ...string) {
	t.Helper()
	var rrs []rr
	for _, ip := range ips {
		rrs = append(rrs, a(name, ip, ttl))
	}
	q := udp(uint64(w.pid), false, ts, w, build(t, query(1), name, dnsmessage.TypeA))
	r := udp(uint64(w.pid), true, ts, w, build(t, resp(1), name, dnsmessage.TypeA, rrs...))
	q.NetNS, r.NetNS = netns, netns
	observe(t, tr, q)
	observe(t, tr, r, 1)
}

// questionOf is the query a response answers.
func questionOf(t *testing.T, response []byte) []byte {
	t.Helper()
	m := mustParse(t, response)
	return build(t, query(m.ID), m.Name, m.Type)
}

// askTCP sends, on the connection cookie, the queries these responses
// answer, in one segment.
func askTCP(t *testing.T, tr *Tracker, cookie, ts uint64, responses ...[]byte) {
	t.Helper()
	var qs [][]byte
	for _, r := range responses {
		qs = append(qs, questionOf(t, r))
	}
	observe(t, tr, tcp(cookie, false, ts, frame(qs...)))
}

// buffered is what the tracker keeps of a stream (nil: nothing).
func buffered(tr *Tracker, cookie uint64, response bool) []byte {
	if s := tr.streams[streamKey{cookie, response}]; s != nil {
		return s.buf
	}
	return nil
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
	if len(tr.pending) != 0 || tr.pendingBytes != 0 {
		t.Errorf("%d pending queries (%d bytes) after the response, want 0", len(tr.pending), tr.pendingBytes)
	}
	// A duplicate response matches nothing any more: dropped, counted.
	observe(t, tr, udp(5, true, 1_300_000, proc, msg))
	if tr.Malformed != 0 || tr.Unsolicited != 1 || tr.Addrs() != 1 {
		t.Errorf("Malformed %d, Unsolicited %d, Addrs %d; want 0, 1 and 1", tr.Malformed, tr.Unsolicited, tr.Addrs())
	}
	// A response stamped the same nanosecond as its query matches it.
	observe(t, tr, udp(5, false, 7e9, proc, build(t, query(0x1212), "example.com", dnsmessage.TypeA)))
	if _, lat := observe(t, tr, udp(5, true, 7e9, proc, build(t, resp(0x1212), "example.com", dnsmessage.TypeA)), 0x1212); lat[0] != 0 || len(tr.pending) != 0 {
		t.Errorf("same-time response: latency %d, %d pending; want 0 and none", lat[0], len(tr.pending))
	}
	// DNS names are case-insensitive (resolvers randomize the case).
	observe(t, tr, udp(5, false, 8e9, proc, build(t, query(0x1313), "ExAmple.COM", dnsmessage.TypeA)))
	observe(t, tr, udp(5, true, 8e9, proc, build(t, resp(0x1313), "example.com", dnsmessage.TypeA)), 0x1313)
}

// Only an answer to a query seen leaving the same socket, with the same
// ID and question, is taken: anything else is dropped and counted, and
// names nothing.
func TestUnsolicitedAnswers(t *testing.T) {
	answer := func(id uint16, name string, typ dnsmessage.Type) []byte {
		return build(t, resp(id), name, typ, a(name, "192.0.2.1", 60))
	}
	ask := udp(6, false, 1e9, proc, build(t, query(0x3333), "example.com", dnsmessage.TypeA))
	// The same question in class CHAOS.
	chaos := dnsmessage.Message{Header: resp(0x3333), Questions: []dnsmessage.Question{{Name: fqdn("example.com"), Type: dnsmessage.TypeA, Class: dnsmessage.ClassCHAOS}}}
	classCH, err := chaos.Pack()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		e    *event.DNSPacket
	}{
		{"no query", udp(9, true, 2e9, proc, answer(0x3333, "example.com", dnsmessage.TypeA))},
		{"another socket", udp(7, true, 2e9, proc, answer(0x3333, "example.com", dnsmessage.TypeA))},
		{"another ID", udp(6, true, 2e9, proc, answer(0x3334, "example.com", dnsmessage.TypeA))},
		{"another name", udp(6, true, 2e9, proc, answer(0x3333, "login.bank.example", dnsmessage.TypeA))},
		{"another type", udp(6, true, 2e9, proc, answer(0x3333, "example.com", dnsmessage.TypeAAAA))},
		{"another class", udp(6, true, 2e9, proc, classCH)},
		{"before the query", udp(6, true, 1e9-1, proc, answer(0x3333, "example.com", dnsmessage.TypeA))},
		{"leaving, not arriving", udp(6, false, 2e9, proc, answer(0x3333, "example.com", dnsmessage.TypeA))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker()
			observe(t, tr, ask)
			observe(t, tr, tc.e)
			if tr.Unsolicited != 1 || tr.Malformed != 0 || tr.Addrs() != 0 {
				t.Errorf("Unsolicited %d, Malformed %d, Addrs %d; want 1, 0, 0", tr.Unsolicited, tr.Malformed, tr.Addrs())
			}
			wantName(t, nameOf(tr, proc, 2e9, "192.0.2.1:443"), "", "")
			// The query still waits for its answer.
			observe(t, tr, udp(6, true, 2e9, proc, answer(0x3333, "example.com", dnsmessage.TypeA)), 0x3333)
			wantName(t, nameOf(tr, proc, 2e9, "192.0.2.1:443"), "example.com", "process")
		})
	}
	// A query arriving from port 53 opens no way for the answer after it.
	tr := NewTracker()
	observe(t, tr, udp(6, true, 1e9, proc, build(t, query(0x4444), "login.bank.example", dnsmessage.TypeA)))
	observe(t, tr, udp(6, true, 2e9, proc, answer(0x4444, "login.bank.example", dnsmessage.TypeA)))
	if tr.Unsolicited != 2 || tr.Addrs() != 0 || len(tr.pending) != 0 {
		t.Errorf("Unsolicited %d, Addrs %d, %d pending; want 2, 0, 0", tr.Unsolicited, tr.Addrs(), len(tr.pending))
	}
}

// Names are learned and used per network namespace: a lookup in one
// names no connect in another.
func TestNamespaces(t *testing.T) {
	tr := NewTracker()
	tr.Scoped = true
	learnIn(t, tr, 0xA, proc, 1e9, "a.example", 300, "192.0.2.1")
	learnIn(t, tr, 0xB, other, 2e9, "b.example", 300, "192.0.2.1")
	connect := func(netns uint64, w who) naming {
		e := &event.Event{Type: event.Connect, PID: w.pid, CgroupID: w.cgroup, TimestampNs: 3e9, Remote: netip.MustParseAddrPort("192.0.2.1:443"), NetNS: netns}
		tr.Name(e)
		return naming{e.Hostname, e.HostnameSource, e.HostnameAlso}
	}
	wantName(t, connect(0xA, proc), "a.example", "process")
	wantName(t, connect(0xA, who{999, 99}), "a.example", "host") // b.example is not listed
	wantName(t, connect(0xB, who{999, 99}), "b.example", "host")
	// The same process in another namespace does not have its name.
	wantName(t, connect(0xB, proc), "b.example", "host")
	wantName(t, connect(0xC, proc), "", "")
	// An unknown namespace (0) names nothing, and a query from a socket in
	// one is not one an answer can match.
	wantName(t, connect(0, proc), "", "")
	q := udp(5, false, 4e9, proc, build(t, query(9), "c.example", dnsmessage.TypeA))
	observe(t, tr, q)
	observe(t, tr, udp(5, true, 4e9, proc, build(t, resp(9), "c.example", dnsmessage.TypeA, a("c.example", "192.0.2.3", 60))))
	if tr.Unsolicited != 1 || len(tr.pending) != 0 {
		t.Errorf("unknown namespace: Unsolicited %d, %d pending; want 1, 0", tr.Unsolicited, len(tr.pending))
	}
	// Unscoped (a kernel that cannot tell), namespaces are ignored.
	tr = NewTracker()
	learnIn(t, tr, 0xA, proc, 1e9, "a.example", 300, "192.0.2.1")
	wantName(t, connect(0xB, proc), "a.example", "process")
}

func TestUDPMalformedAndCut(t *testing.T) {
	tr := NewTracker()
	msg := build(t, resp(1), "example.com", dnsmessage.TypeA, a("example.com", "192.0.2.1", 60))
	observe(t, tr, udp(5, false, 1e9, proc, questionOf(t, msg)))
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
	askTCP(t, tr, 1, 1e9, msg)
	responses, _ := observe(t, tr, tcp(1, true, 1e9, frame(msg)), 0x0101)
	if want := mustParse(t, msg); !reflect.DeepEqual(responses[0], want) {
		t.Errorf("response %+v, want %+v", responses[0], want)
	}
	if len(tr.streams) != 0 || tr.Malformed != 0 || tr.streamBytes != 0 {
		t.Errorf("%d streams (%d bytes) kept, Malformed %d; want none", len(tr.streams), tr.streamBytes, tr.Malformed)
	}
}

func TestTCPSplitLengthThenBody(t *testing.T) {
	tr := NewTracker()
	msg := build(t, resp(0x0202), "example.com", dnsmessage.TypeA, a("example.com", "192.0.2.1", 60))
	framed := frame(msg)
	askTCP(t, tr, 1, 1e9, msg)
	observe(t, tr, tcp(1, true, 1e9, framed[:2]))
	if got := buffered(tr, 1, true); !bytes.Equal(got, framed[:2]) {
		t.Fatalf("stream holds % x, want % x", got, framed[:2])
	}
	observe(t, tr, tcp(1, true, 1e9, framed[2:]), 0x0202)
	if len(tr.streams) != 0 {
		t.Errorf("%d streams kept", len(tr.streams))
	}

	// One byte at a time: the message completes with its last byte, and
	// the caller's buffer may be reused in between.
	askTCP(t, tr, 1, 1e9, msg)
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
	askTCP(t, tr, 1, 1e9, m1, m2)
	responses, _ := observe(t, tr, tcp(1, true, 1e9, frame(m1, m2)), 1, 2)
	if responses[0].Name != "one.example" || responses[1].Name != "two.example" {
		t.Errorf("names %q %q", responses[0].Name, responses[1].Name)
	}
	// Two and a half, then the rest.
	askTCP(t, tr, 1, 2e9, m1, m2, m3)
	all := frame(m1, m2, m3)
	cut := len(frame(m1, m2)) + 10
	observe(t, tr, tcp(1, true, 2e9, all[:cut]), 1, 2)
	if got := len(buffered(tr, 1, true)); got != 10 {
		t.Errorf("stream holds %d bytes, want 10", got)
	}
	observe(t, tr, tcp(1, true, 2e9, all[cut:]), 3)
	if tr.Addrs() != 3 || len(tr.streams) != 0 || tr.Malformed != 0 {
		t.Errorf("Addrs %d, streams %d, Malformed %d", tr.Addrs(), len(tr.streams), tr.Malformed)
	}
	// An empty message (length 0) is malformed; the one after it is read.
	askTCP(t, tr, 1, 3e9, m1)
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
	askTCP(t, tr, 1, 1e9, msg)
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
	if tr.Malformed != 2 || len(tr.streams) != 0 || tr.streamBytes != 0 {
		t.Fatalf("Malformed %d, %d streams (%d bytes); want 2 and none", tr.Malformed, len(tr.streams), tr.streamBytes)
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
	askTCP(t, tr, 1, 1e9, padded(t, 1, 65535))
	if n := feed(t, tr, 1, frame(padded(t, 1, 65535))); n != 1 || tr.Malformed != 0 || len(tr.streams) != 0 {
		t.Fatalf("65535-byte message: %d responses, Malformed %d, %d streams", n, tr.Malformed, len(tr.streams))
	}
	// Framing bounds what is kept: whatever arrives, a stream holds less
	// than one whole message (2 + 65535 bytes).
	framed := frame(padded(t, 2, 65535))
	if n := feed(t, tr, 2, framed[:len(framed)-1]); n != 0 {
		t.Fatalf("%d responses from an incomplete message", n)
	}
	if got := len(buffered(tr, 2, true)); got != maxStreamBytes-1 || got > maxStreamBytes {
		t.Fatalf("stream holds %d bytes, want %d", got, maxStreamBytes-1)
	}
	// Its socket closes: all of it is freed.
	tr.Forget(2)
	if len(tr.streams) != 0 || tr.streamBytes != 0 {
		t.Fatalf("after Forget: %d streams, %d bytes", len(tr.streams), tr.streamBytes)
	}
	checkTracker(t, tr)
}

// A segment that ends one maximal message and starts the next is valid DNS
// over TCP; the bound should apply to what stays buffered, not to the
// buffer before complete messages are taken out.
func TestTCPBoundCountsOnlyIncompleteMessage(t *testing.T) {
	tr := NewTracker()
	framed := frame(padded(t, 1, 65535))
	next := build(t, resp(2), "next.example", dnsmessage.TypeA, a("next.example", "192.0.2.78", 60))
	askTCP(t, tr, 1, 1e9, padded(t, 1, 65535), next)
	feed(t, tr, 1, framed[:len(framed)-1])
	observe(t, tr, tcp(1, true, 2e9, cat(framed[len(framed)-1:], frame(next))), 1, 2)
	if tr.Malformed != 0 {
		t.Errorf("Malformed %d", tr.Malformed)
	}
}

// Streams that lie about their length (a prefix promising more than ever
// comes) hold at most MaxStreamBytes together; the oldest go first, each
// counted; an idle one goes after streamIdleNs.
func TestTCPStreamsBytesBound(t *testing.T) {
	tr := NewTracker()
	liar := cat([]byte{0xff, 0xff}, make([]byte, 2045)) // promises 65535, sends 2045
	n := 4 * MaxStreamBytes / 2047
	for c := 1; c <= n; c++ {
		tr.Observe(tcp(uint64(c), true, 1e9, liar))
		if tr.Bytes() > MaxBytes || tr.streamBytes > MaxStreamBytes {
			t.Fatalf("%d streams: %d stream bytes, bound %d", c, tr.streamBytes, MaxStreamBytes)
		}
	}
	if tr.Evicted == 0 || uint64(len(tr.streams))+tr.Evicted != uint64(n) {
		t.Errorf("%d streams kept, %d evicted, of %d", len(tr.streams), tr.Evicted, n)
	}
	if buffered(tr, 1, true) != nil || buffered(tr, uint64(n), true) == nil {
		t.Errorf("the oldest should have gone, the newest stayed")
	}
	checkTracker(t, tr)
	// Idle past streamIdleNs: dropped with the next packet, counted.
	kept, evicted := len(tr.streams), tr.Evicted
	tr.Observe(udp(1, false, 1e9+streamIdleNs+1, proc, build(t, query(1), "x.example", dnsmessage.TypeA)))
	if len(tr.streams) != 0 || tr.streamBytes != 0 || tr.Evicted != evicted+uint64(kept) {
		t.Errorf("after idling: %d streams, %d bytes, %d evicted (was %d + %d)", len(tr.streams), tr.streamBytes, tr.Evicted, evicted, kept)
	}
	checkTracker(t, tr)
}

// Queries nobody answers hold at most MaxPendingBytes, and time out.
func TestPendingBound(t *testing.T) {
	tr := NewTracker()
	long := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + ".example"
	n := 2 * MaxPendingBytes / (pendingCost + len(long))
	for i := 0; i < n; i++ {
		q := build(t, query(uint16(i)), long, dnsmessage.TypeA)
		tr.Observe(udp(uint64(1+i/65536), false, uint64(1e9+i), proc, q))
		if tr.pendingBytes > MaxPendingBytes {
			t.Fatalf("%d queries: %d bytes", i+1, tr.pendingBytes)
		}
	}
	if tr.Evicted == 0 || uint64(len(tr.pending))+tr.Evicted != uint64(n) {
		t.Errorf("%d kept, %d evicted, of %d", len(tr.pending), tr.Evicted, n)
	}
	// The newest is still answered; the oldest was forgotten.
	last := uint16(n - 1)
	if _, lat := observe(t, tr, udp(1, true, 2e9, proc, build(t, resp(last), long, dnsmessage.TypeA)), last); lat[0] != 2e9-uint64(1e9+n-1) {
		t.Errorf("latency %d", lat[0])
	}
	observe(t, tr, udp(1, true, 2e9, proc, build(t, resp(0), long, dnsmessage.TypeA)))
	checkTracker(t, tr)
	// After queryTimeoutNs they are gone, not counted as evicted.
	evicted := tr.Evicted
	tr.Observe(udp(2, true, 2e9+queryTimeoutNs, proc, nil))
	if len(tr.pending) != 0 || tr.pendingBytes != 0 || tr.Evicted != evicted {
		t.Errorf("after the timeout: %d pending, %d bytes, evicted %d -> %d", len(tr.pending), tr.pendingBytes, evicted, tr.Evicted)
	}
}

// A flood of answers with long names, each to a query of its own, keeps
// the names within MaxNameBytes; the oldest names go, counted, and the
// newest are used.
func TestNamesBytesBound(t *testing.T) {
	tr := NewTracker()
	tr.Scoped = true
	label := strings.Repeat("x", 63)
	ts := uint64(1e9)
	n := 0
	for n = 0; tr.Evicted < 1000; n++ {
		name := fmt.Sprintf("%s.%s.%s.%07d.example", label, label, label, n)
		w := who{uint32(n%50000) + 1, 7}
		var rrs []rr
		for i := 0; i < MaxAnswers; i++ {
			rrs = append(rrs, a(name, addrN(n*MaxAnswers+i), 3600))
		}
		ts += 1000
		q := udp(uint64(n), false, ts, w, build(t, query(uint16(n)), name, dnsmessage.TypeA))
		r := udp(uint64(n), true, ts, w, build(t, resp(uint16(n)), name, dnsmessage.TypeA, rrs...))
		q.NetNS, r.NetNS = 1, 1
		tr.Observe(q)
		if got, _ := tr.Observe(r); len(got) != 1 {
			t.Fatalf("answer %d not taken", n)
		}
		if tr.Bytes() > MaxBytes || tr.nameBytes > MaxNameBytes {
			t.Fatalf("after %d answers: %d name bytes, bound %d", n+1, tr.nameBytes, MaxNameBytes)
		}
	}
	checkTracker(t, tr)
	last := n - 1
	e := &event.Event{Type: event.Connect, PID: 1, TimestampNs: ts, Remote: netip.AddrPortFrom(netip.MustParseAddr(addrN(last*MaxAnswers)), 443), NetNS: 1}
	tr.Name(e)
	if !strings.HasSuffix(e.Hostname, fmt.Sprintf("%07d.example", last)) {
		t.Errorf("newest name: %q", e.Hostname)
	}
	e = &event.Event{Type: event.Connect, PID: 1, TimestampNs: ts, Remote: netip.AddrPortFrom(netip.MustParseAddr(addrN(0)), 443), NetNS: 1}
	if tr.Name(e); e.Hostname != "" {
		t.Errorf("oldest name kept: %q", e.Hostname)
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
	if got := len(tr.names[nameKey{0, netip.MustParseAddr("192.0.2.1")}].entries); got != 3 {
		t.Errorf("%d entries, want 3", got)
	}
	wantName(t, nameOf(tr, proc, 6e9, "192.0.2.1:80"), "old.example", "process")
	// One message listing an address twice makes one entry.
	learnA(t, tr, proc, 7e9, "twice.example", 300, "192.0.2.9", "192.0.2.9")
	if got := len(tr.names[nameKey{0, netip.MustParseAddr("192.0.2.9")}].entries); got != 1 {
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
	observe(t, tr, udp(1, false, 1e9, proc, build(t, query(1), "mapped.example", dnsmessage.TypeAAAA)))
	observe(t, tr, udp(1, true, 1e9, proc, build(t, resp(1), "mapped.example", dnsmessage.TypeAAAA, a("mapped.example", "::ffff:192.0.2.2", 300))), 1)
	wantName(t, nameOf(tr, proc, 2e9, "192.0.2.2:443"), "mapped.example", "process")
	wantName(t, nameOf(tr, proc, 2e9, "[::ffff:192.0.2.2]:443"), "mapped.example", "process")
	if _, ok := tr.names[nameKey{0, netip.MustParseAddr("192.0.2.2")}]; !ok || tr.Addrs() != 2 {
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
	list := tr.names[nameKey{0, netip.MustParseAddr("192.0.2.1")}].entries
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
	if tr.Addrs() != MaxAddrs || tr.addrOrder.Len() != MaxAddrs || tr.Evicted != 0 {
		t.Fatalf("Addrs %d, addrOrder %d, Evicted %d after relearning", tr.Addrs(), tr.addrOrder.Len(), tr.Evicted)
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
	if tr.Addrs() != MaxAddrs || tr.addrOrder.Len() != MaxAddrs || tr.Evicted != MaxAddrs+1 {
		t.Fatalf("Addrs %d, addrOrder %d, Evicted %d", tr.Addrs(), tr.addrOrder.Len(), tr.Evicted)
	}
	wantName(t, nameOf(tr, proc, 2e9, addrN(MaxAddrs)+":443"), "", "")
	wantName(t, nameOf(tr, proc, 2e9, addrN(MaxAddrs+1)+":443"), "bulk.example", "process")
	wantName(t, nameOf(tr, proc, 2e9, addrN(2*MaxAddrs)+":443"), "bulk.example", "process")
	checkTracker(t, tr)
}

// hostsFiles is a HostsNamer: per process, its hosts file's names.
type hostsFiles map[uint32]map[netip.Addr][]string

func (h hostsFiles) Name(pid uint32, _ uint64, addr netip.Addr, _ uint64) []string {
	return h[pid][addr]
}
func (h hostsFiles) Drops() (uint64, uint64) { return 0, 0 }

// The hosts file a process sees names an address after the process's
// own lookup and before anyone else's.
func TestNameHostsFile(t *testing.T) {
	tr := NewTracker()
	addr := netip.MustParseAddr("192.0.2.1")
	tr.Hosts = hostsFiles{
		proc.pid:  {addr: {"files.example", "alias.example"}},
		proc2.pid: {addr: {"files2.example"}},
		other.pid: {addr: {"other.example"}},
	}
	learnA(t, tr, proc, 1e9, "a.example", 300, "192.0.2.1")
	learnA(t, tr, who{101, 7}, 2e9, "group.example", 300, "192.0.2.1")
	wantName(t, nameOf(tr, proc, 3e9, "192.0.2.1:443"), "a.example", "process")
	wantName(t, nameOf(tr, proc2, 3e9, "192.0.2.1:443"), "files2.example", "hosts")
	wantName(t, nameOf(tr, proc, 3e9, "[::ffff:192.0.2.1]:443"), "a.example", "process")
	// Without its own lookup: the file's canonical name, its aliases also.
	tr2 := NewTracker()
	tr2.Hosts = tr.Hosts
	wantName(t, nameOf(tr2, proc, 3e9, "[::ffff:192.0.2.1]:443"), "files.example", "hosts", "alias.example")
	// Not in its file: the cgroup's, then the host's, as before.
	wantName(t, nameOf(tr, who{102, 7}, 3e9, "192.0.2.1:443"), "group.example", "cgroup", "a.example")
	wantName(t, nameOf(tr, who{400, 11}, 3e9, "192.0.2.1:443"), "group.example", "host", "a.example")
	wantName(t, nameOf(tr, other, 3e9, "192.0.2.9:443"), "", "")
	// In a namespace the kernel could not tell (0) DNS names nothing, but
	// the hosts file still does: it belongs to the process, not the netns.
	tr.Scoped = true
	e := &event.Event{Type: event.Connect, PID: other.pid, TimestampNs: 3e9, Remote: netip.MustParseAddrPort("192.0.2.1:443")}
	tr.Name(e)
	wantName(t, naming{e.Hostname, e.HostnameSource, e.HostnameAlso}, "other.example", "hosts")
	// Inbound connections are not named.
	e = &event.Event{Type: event.Accept, PID: other.pid, TimestampNs: 3e9, Remote: netip.MustParseAddrPort("192.0.2.1:443")}
	tr.Name(e)
	if e.Hostname != "" {
		t.Errorf("accept named %q", e.Hostname)
	}
}

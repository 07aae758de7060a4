package dns

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/tuxscope/tuxscope/internal/event"
	"golang.org/x/net/dns/dnsmessage"
)

// checkName fails unless s is a normalized name: lower case, without the
// final dot.
func checkName(t testing.TB, what, s string) {
	t.Helper()
	if strings.HasSuffix(s, ".") {
		t.Fatalf("%s %q ends with a dot", what, s)
	}
	if strings.ContainsAny(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") { // ASCII only: DNS case-folds ASCII
		t.Fatalf("%s %q is not lower case", what, s)
	}
}

// checkMessage holds Parse's promises about a message it accepted.
func checkMessage(t testing.TB, b []byte, m Message) {
	t.Helper()
	if len(m.CNAMEs) > MaxChain+1 {
		t.Fatalf("%d CNAMEs, more than MaxChain+1 = %d", len(m.CNAMEs), MaxChain+1)
	}
	if len(m.Addrs) > MaxAnswers {
		t.Fatalf("%d addresses, more than MaxAnswers = %d", len(m.Addrs), MaxAnswers)
	}
	if len(m.Name) > MaxNameLen {
		t.Fatalf("name of %d bytes", len(m.Name))
	}
	checkName(t, "Name", m.Name)
	for _, c := range m.CNAMEs {
		checkName(t, "CNAME", c)
		if c == "" {
			t.Fatalf("empty CNAME in %q", m.CNAMEs)
		}
	}
	for _, a := range m.Addrs {
		if !a.IP.IsValid() {
			t.Fatalf("invalid address in %v", m.Addrs)
		}
	}
	if !m.Response && (m.Addrs != nil || m.CNAMEs != nil) {
		t.Fatalf("a query with answers: %+v", m)
	}
	if len(b) >= 2 && m.ID != binary.BigEndian.Uint16(b) {
		t.Fatalf("ID %#x, header says %#x", m.ID, binary.BigEndian.Uint16(b))
	}
}

// seeds are valid DNS messages for both fuzz targets (the committed corpus
// under testdata/fuzz holds more).
func seeds(t testing.TB) [][]byte {
	return [][]byte{
		build(t, resp(1), "example.com", dnsmessage.TypeA, a("example.com", "93.184.216.34", 300)),
		build(t, resp(2), "WWW.Example.com", dnsmessage.TypeAAAA, cname("www.example.com", "e1.cdn.net"),
			cname("e1.cdn.net", "e2.cdn.net"), a("e2.cdn.net", "2001:db8::1", 20)),
		build(t, resp(3), "a.example", dnsmessage.TypeA, cname("a.example", "b.example"), cname("b.example", "a.example")),
		build(t, query(4), "example.org", dnsmessage.TypeA),
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not wrapping ErrMalformed: %v", err)
			}
			return
		}
		checkMessage(t, data, m)
		again, err := Parse(data)
		if err != nil || !reflect.DeepEqual(m, again) {
			t.Fatalf("Parse is not deterministic: %+v, then %+v, %v", m, again, err)
		}
	})
}

// records cuts a stream into FuzzTrackerTCP records of size bytes at most,
// with this control byte.
func records(ctl byte, b []byte, size int) []byte {
	var out []byte
	for len(b) > 0 {
		k := min(len(b), size)
		out = append(out, ctl, 0, byte(k))
		out = append(out, b[:k]...)
		b = b[k:]
	}
	return out
}

// checkTracker holds the tracker's bounds and its own consistency: the
// bytes it accounts are the bytes it holds, within its limits.
func checkTracker(t testing.TB, tr *Tracker) {
	t.Helper()
	if tr.Addrs() > tr.limits.addrs {
		t.Fatalf("%d addresses, more than %d", tr.Addrs(), tr.limits.addrs)
	}
	var names, pending, streams int
	if tr.addrOrder.Len() != len(tr.names) {
		t.Fatalf("addrOrder has %d addresses, names %d", tr.addrOrder.Len(), len(tr.names))
	}
	for k, an := range tr.names {
		if an.key != k || an.elem.Value != an {
			t.Fatalf("%+v: key %+v, list element %p", k, an.key, an.elem)
		}
		if len(an.entries) == 0 || len(an.entries) > MaxNamesPerAddr {
			t.Fatalf("%v has %d names", k, len(an.entries))
		}
		if k.addr.Is4In6() || !k.addr.IsValid() {
			t.Fatalf("address %v kept mapped or invalid", k.addr)
		}
		if !tr.Scoped && k.netns != 0 {
			t.Fatalf("unscoped tracker keeps namespace %d", k.netns)
		}
		names += addrCost
		for _, en := range an.entries {
			names += entryCost + len(en.name)
		}
	}
	if tr.queryOrder.Len() != len(tr.pending) {
		t.Fatalf("queryOrder has %d queries, pending %d", tr.queryOrder.Len(), len(tr.pending))
	}
	for k, q := range tr.pending {
		if q.key != k || q.elem.Value != q {
			t.Fatalf("query %+v: key %+v", k, q.key)
		}
		pending += pendingCost + len(q.name)
	}
	if tr.streamOrder.Len() != len(tr.streams) {
		t.Fatalf("streamOrder has %d streams, map %d", tr.streamOrder.Len(), len(tr.streams))
	}
	for k, st := range tr.streams {
		buf := st.buf
		if st.key != k || st.elem.Value != st {
			t.Fatalf("stream %+v: key %+v", k, st.key)
		}
		if len(buf) > maxStreamBytes {
			t.Fatalf("stream %+v holds %d bytes, more than maxStreamBytes", k, len(buf))
		}
		if len(buf) == 0 {
			t.Fatalf("stream %+v kept empty", k)
		}
		// What is kept is never a complete message: those were taken.
		if len(buf) >= 2 && len(buf) >= 2+int(binary.BigEndian.Uint16(buf)) {
			t.Fatalf("stream %+v keeps a complete message", k)
		}
		streams += streamCost + cap(buf)
	}
	if names != tr.nameBytes || pending != tr.pendingBytes || streams != tr.streamBytes {
		t.Fatalf("accounted %d/%d/%d bytes (names/queries/streams), holds %d/%d/%d", tr.nameBytes, tr.pendingBytes, tr.streamBytes, names, pending, streams)
	}
	if names > tr.limits.nameBytes || pending > tr.limits.pendingBytes || streams > tr.limits.streamBytes {
		t.Fatalf("%d/%d/%d bytes (names/queries/streams), limits %+v", names, pending, streams, tr.limits)
	}
}

// FuzzTrackerTCP feeds the input, cut into records, to one tracker as DNS
// over TCP. Each record is a control byte (bit 0: response direction; bit
// 1: the capture was cut short; bits 2-3: which of 4 connections; bits 4-5:
// 0 TCP, 1 UDP, else TCP; bit 6: the socket closes after it; bit 7: in
// the second network namespace), a repeat byte (the chunk is sent 1+n
// times, so short inputs reach the stream bound; 1024 events in all at
// most), a length byte, then that many bytes. The tracker's byte limits
// are small, so its evictions run; after every record the bytes it holds
// are the bytes it accounts, within them.
func FuzzTrackerTCP(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(records(1, frame(s), 255))
		f.Add(records(1, frame(s, s), 7))
	}
	q := frame(seeds(f)[3])
	f.Add(cat(records(0, q, 255), []byte{1, 0, 2, 0xff, 0xff}, []byte{1, 255, 255}, make([]byte, 255)))
	// A query, its answer, the same answer again (unsolicited), then the
	// socket closes with a message half sent.
	ask := frame(build(f, query(1), "example.com", dnsmessage.TypeA))
	f.Add(cat(records(0, ask, 255), records(1, frame(seeds(f)[0]), 255), records(1, frame(seeds(f)[0]), 255), records(1|64, frame(seeds(f)[0])[:9], 255)))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr := newTracker(limits{nameBytes: 4 << 10, pendingBytes: 1 << 10, streamBytes: 16 << 10, addrs: 16})
		tr.Scoped = true
		ts := uint64(1e9)
		events := 0 // at most 1024: enough to pass maxStreamBytes in 255-byte chunks
		for rec := 0; rec < 64 && len(data) >= 3; rec++ {
			ctl, repeat, n := data[0], int(data[1])+1, int(data[2])
			data = data[3:]
			n = min(n, len(data))
			chunk := data[:n]
			data = data[n:]
			for i := 0; i < repeat && events < 1024; i++ {
				events++
				ts += 1e6
				e := &event.DNSPacket{
					Protocol: 6, Response: ctl&1 != 0,
					Cookie: uint64(ctl>>2&3) + 1, PID: uint32(ctl>>2&3) + 100, CgroupID: 7, NetNS: uint64(ctl>>7) + 1,
					TimestampNs: ts, Payload: chunk, PayloadLen: uint32(len(chunk)),
				}
				if ctl&2 != 0 {
					e.PayloadLen++
				}
				if ctl>>4&3 == 1 {
					e.Protocol = 17
				}
				before, unsolicited := tr.Malformed, tr.Unsolicited
				responses, latencies := tr.Observe(e)
				if len(responses) != len(latencies) {
					t.Fatalf("%d responses, %d latencies", len(responses), len(latencies))
				}
				if e.PayloadLen > uint32(len(e.Payload)) && (len(responses) > 0 || tr.Malformed != before+1) {
					t.Fatalf("a cut capture gave %d responses, Malformed %d -> %d", len(responses), before, tr.Malformed)
				}
				for i, m := range responses {
					checkMessage(t, nil, m)
					if !m.Response {
						t.Fatalf("a query among the responses: %+v", m)
					}
					if latencies[i] > ts {
						t.Fatalf("latency %d longer than the run", latencies[i])
					}
				}
				// Every answer is either returned or counted.
				if e.Response && len(responses) == 0 && tr.Malformed == before && tr.Unsolicited == unsolicited && e.Protocol == 17 {
					t.Fatalf("a UDP answer neither returned nor counted")
				}
				if ctl&64 != 0 {
					tr.Forget(e.Cookie)
					if _, ok := tr.streams[streamKey{e.Cookie, e.Response}]; ok {
						t.Fatalf("a closed socket's stream is kept")
					}
				}
				checkTracker(t, tr)
			}
		}
		// Whatever was learned names connections without trouble.
		for k := range tr.names {
			e := &event.Event{Type: event.Connect, PID: 101, CgroupID: 7, TimestampNs: ts, Remote: netip.AddrPortFrom(k.addr, 443), NetNS: k.netns}
			tr.Name(e)
			if len(e.HostnameAlso) > MaxNamesPerAddr-1 {
				t.Fatalf("Name: %q %q %q", e.Hostname, e.HostnameSource, e.HostnameAlso)
			}
		}
	})
}

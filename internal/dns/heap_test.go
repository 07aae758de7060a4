package dns

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/tuxscope/tuxscope/internal/event"
	"golang.org/x/net/dns/dnsmessage"
)

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// The costs the tracker accounts are what it really holds: filled to its
// bounds with the floods of issue 11 (unsolicited long-name answers,
// answered long-name lookups, unanswered queries, DNS-over-TCP streams
// that lie about their length), the live heap it keeps is within its
// accounted bytes, and those within MaxBytes.
func TestTrackerHeapWithinAccounted(t *testing.T) {
	if testing.Short() {
		t.Skip("fills the tracker to its bounds")
	}
	before := heapInUse()
	tr := NewTracker()
	tr.Scoped = true
	label := strings.Repeat("x", 63)
	liar := cat([]byte{0xff, 0xff}, make([]byte, 2045))
	ts := uint64(1e9)
	for n := 0; n < 5000; n++ {
		ts += 1000
		name := fmt.Sprintf("%s.%s.%s.%07d.example", label, label, label, n)
		var rrs []rr
		for i := 0; i < MaxAnswers; i++ {
			rrs = append(rrs, a(name, addrN(n*MaxAnswers+i), 3600))
		}
		w := who{uint32(n) + 1, 7}
		q := &event.DNSPacket{Protocol: 17, Cookie: uint64(n), TimestampNs: ts, PID: w.pid, CgroupID: w.cgroup, NetNS: 1}
		q.Payload = build(t, query(uint16(n)), name, dnsmessage.TypeA)
		q.PayloadLen = uint32(len(q.Payload))
		r := *q
		r.Response = true
		r.Payload = build(t, resp(uint16(n)), name, dnsmessage.TypeA, rrs...)
		r.PayloadLen = uint32(len(r.Payload))
		tr.Observe(q)
		tr.Observe(&r)
		// unsolicited, and an unanswered query, and a lying stream
		r.Cookie += 1 << 32
		tr.Observe(&r)
		q.Cookie += 2 << 32
		tr.Observe(q)
		tr.Observe(&event.DNSPacket{Protocol: 6, Response: true, Cookie: uint64(n) + 3<<32, TimestampNs: ts, Payload: liar, PayloadLen: uint32(len(liar))})
	}
	checkTracker(t, tr)
	held := heapInUse() - before
	t.Logf("accounted %d bytes (names %d, queries %d, streams %d), heap holds %d; evicted %d, unsolicited %d",
		tr.Bytes(), tr.nameBytes, tr.pendingBytes, tr.streamBytes, held, tr.Evicted, tr.Unsolicited)
	if tr.Bytes() > MaxBytes {
		t.Errorf("accounted %d bytes, more than MaxBytes %d", tr.Bytes(), MaxBytes)
	}
	if held > uint64(tr.Bytes()) {
		t.Errorf("the heap holds %d bytes, more than the %d accounted", held, tr.Bytes())
	}
	runtime.KeepAlive(tr)
}

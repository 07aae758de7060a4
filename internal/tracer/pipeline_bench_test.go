package tracer

import (
	"context"
	"io"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/tuxscope/tuxscope/internal/bpf"
	"github.com/tuxscope/tuxscope/internal/container"
	"github.com/tuxscope/tuxscope/internal/dns"
	"github.com/tuxscope/tuxscope/internal/event"
	"github.com/tuxscope/tuxscope/internal/filter"
	"github.com/tuxscope/tuxscope/internal/output"
	"github.com/tuxscope/tuxscope/internal/peers"
	"github.com/tuxscope/tuxscope/internal/pipeline"
	"github.com/tuxscope/tuxscope/internal/summary"
	"github.com/tuxscope/tuxscope/internal/zone"
)

// churnRing is a ring buffer that serves the records of n loopback
// connections to 127.0.0.1:8080 (after the listener's listen record), as
// the kernel side writes them for the benchmark's load: connect,
// established, accept, the client's close, the server's close, a new
// client port each time. Each record is copied out, as the real reader
// copies it from the ring.
type churnRing struct {
	n, conn int
	step    int // record of conn served next; -1: the listen record
	rec     bpf.TuxscopeEvent
	buf     []byte
}

func newChurnRing(n int) *churnRing { return &churnRing{n: n, step: -1} }

func (c *churnRing) ReadInto(r *ringbuf.Record) error {
	if c.conn == c.n {
		return ringbuf.ErrFlushed
	}
	rec := &c.rec
	*rec = bpf.TuxscopeEvent{}
	port := uint16(1024 + c.conn%60000)
	ts := 1_000_000_000 + uint64(c.conn)*80_000 + uint64(c.step+1)*10_000
	client := func(typ uint8) {
		setHeader(&rec.Hdr, typ, ts, 2001, 2001, 1000, "loadgen", 2, port, 8080)
	}
	server := func(typ uint8) {
		setHeader(&rec.Hdr, typ, ts, 1001, 1002, 1000, "server", 2, 8080, port)
		rec.Flags = 1 // FLAG_INBOUND
	}
	switch c.step {
	case -1:
		setHeader(&rec.Hdr, 10 /* EVENT_LISTEN */, ts, 1001, 1001, 1000, "server", 2, 8080, 0)
		rec.Backlog = 4096
	case 0:
		client(1) // EVENT_CONNECT
	case 1:
		client(3) // EVENT_ESTABLISHED
		rec.LatencyNs = 41_000
	case 2:
		server(2) // EVENT_ACCEPT
	case 3:
		client(5)     // EVENT_CLOSE
		rec.Flags = 4 // FLAG_CLOSED_REMOTE
		rec.DurationNs, rec.BytesSent, rec.BytesReceived = 90_000, 32, 32
		rec.SrttUs, rec.RttvarUs = 25, 12
	case 4:
		server(5)
		rec.Flags |= 2 // FLAG_CLOSED_LOCAL
		rec.DurationNs, rec.BytesSent, rec.BytesReceived = 60_000, 32, 32
		rec.SrttUs, rec.RttvarUs = 20, 10
	}
	rec.Hdr.Tuple.Netns = 4026531840
	rec.Hdr.Owner.CgroupId = 1
	copy(rec.Hdr.Tuple.Laddr[:], []byte{127, 0, 0, 1})
	if c.step != -1 {
		copy(rec.Hdr.Tuple.Raddr[:], []byte{127, 0, 0, 1})
	}
	rec.Cookie = uint64(c.conn)*2 + 1
	if c.step == 2 || c.step == 4 {
		rec.Cookie++
	}
	raw := unsafe.Slice((*byte)(unsafe.Pointer(rec)), unsafe.Sizeof(*rec))
	c.buf = append(c.buf[:0], raw...)
	r.RawSample = c.buf
	if c.step++; c.step == 5 {
		c.step, c.conn = 0, c.conn+1
	}
	return nil
}

func (c *churnRing) Pending() int                      { return (c.n - c.conn) * 5 * int(unsafe.Sizeof(c.rec)) }
func (c *churnRing) SetDeadline(time.Time)             {}
func (c *churnRing) WakeOnNextEvent() error            { return nil }
func (c *churnRing) Losses() (event.LossCounts, error) { return event.LossCounts{}, nil }
func (c *churnRing) Stop() error                       { return nil }

// BenchmarkPipeline is the tracer's user-space path for one loopback
// connection (five records), as `tuxscope net --port 8080` runs it: read
// loop, decode, enrich (peers, containers, zones, hostnames), filter and
// the sink, writing to io.Discard. ns/op and allocs/op are per
// connection; cpu-ns/event is the process CPU time per record.
func BenchmarkPipeline(b *testing.B) {
	for _, sink := range []string{"table", "json", "summary"} {
		b.Run(sink, func(b *testing.B) {
			var s pipeline.Sink
			switch sink {
			case "table":
				s = output.New(output.FormatTable, io.Discard, io.Discard)
			case "json":
				s = output.New(output.FormatJSON, io.Discard, io.Discard)
			case "summary":
				s = summary.NewSink(io.Discard, output.FormatJSON, 0, summary.ByConnections, summary.GroupProcess, 0)
			}
			spec := &filter.Spec{Ports: []uint16{8080}}
			res := container.NewResolver()
			cfg := pipeline.Config{
				Filter:    spec,
				Names:     dns.NewTracker(),
				Zones:     zone.New(),
				Clock:     event.NewClock(),
				Enrichers: []pipeline.Enricher{peers.New(4026531840), res},
			}
			p := pipeline.New(cfg, s)
			b.ReportAllocs()
			cpu0 := processCPU(b)
			b.ResetTimer()
			r := newReader(newChurnRing(b.N), readerConfig{MaxDelay: 100 * time.Millisecond})
			if err := p.Run(context.Background(), srcFunc(r.Run), nil); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			// The process's CPU time, GC included: wall time is the
			// machine's business when other work shares its cores.
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(5*b.N), "cpu-ns/event")
		})
	}
}

// processCPU is the process's user and system CPU time so far, in ns.
func processCPU(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

type srcFunc func(ctx context.Context, h event.Handler) error

func (f srcFunc) Run(ctx context.Context, h event.Handler) error { return f(ctx, h) }

package tracer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/tuxscope/tuxscope/internal/event"
)

// recordRing is what a reader reads: the kernel side's ring buffer and its
// counters. The Tracer's is the real one; tests use a fake.
type recordRing interface {
	// ReadInto blocks for the next record until the deadline, then
	// returns os.ErrDeadlineExceeded. After Stop it returns what is left,
	// then ringbuf.ErrFlushed (or ringbuf.ErrClosed).
	ReadInto(rec *ringbuf.Record) error
	// Pending is how many bytes of records wait to be read.
	Pending() int
	// SetDeadline bounds how long ReadInto waits.
	SetDeadline(t time.Time)
	// WakeOnNextEvent asks the kernel side to wake a waiting reader for
	// the next record (with batched wake-ups it otherwise queues records
	// quietly until a quarter of the ring is full). A record queued just
	// before is not announced: check Pending afterwards.
	WakeOnNextEvent() error
	// Losses is what the kernel side's loss counters say since load, per
	// reason: records it could not queue, program runs the kernel
	// skipped, connections it could not track.
	Losses() (event.LossCounts, error)
	// Stop ends the stream: no new records; ReadInto drains what is left.
	// Safe to call from another goroutine than the reader's.
	Stop() error
}

// lossCheckInterval is how often the loss counters are read, at most:
// drops are reported within about this long.
const lossCheckInterval = time.Second

// readerConfig says how a reader paces itself.
type readerConfig struct {
	// MaxDelay is the longest a record may wait in the ring before it is
	// read, for a ring whose kernel side batches wake-ups; after a quiet
	// MaxDelay the reader asks to be woken for the next record and stops
	// polling. 0: the kernel wakes the reader for every record.
	MaxDelay time.Duration
	// Tick is how often Handler.Tick is called, at most every
	// lossCheckInterval; 0: every lossCheckInterval.
	Tick time.Duration
	// Updates is how often the reader's poll runs (update events); 0:
	// never.
	Updates time.Duration
}

// reader owns the read loop: it reads records, decodes them, hands them
// to a handler in order, reports losses, ticks, and says when it has
// caught up with the kernel.
type reader struct {
	ring      recordRing
	cfg       readerConfig
	malformed uint64
	seen      event.LossCounts // what the handler was told
	// poll, when set, runs about every cfg.Updates, between records: it
	// hands h the update events (and their losses).
	poll func(now time.Time, h event.Handler) error
	// udp, when set, ends UDP flows: at their socket's release (a record
	// the handler never sees) and, on ticks, when idle.
	udp flowEnder
}

// newReader reads ring.
func newReader(ring recordRing, cfg readerConfig) *reader {
	return &reader{ring: ring, cfg: cfg}
}

// Run hands h every record until ctx ends; then it stops the ring, hands
// over what was still queued, reports the last losses and returns. It
// also returns the first error h returns.
func (r *reader) Run(ctx context.Context, h event.Handler) error {
	defer context.AfterFunc(ctx, func() { r.ring.Stop() })()
	var (
		rec      ringbuf.Record
		ev, conn event.Event
		pkt      event.DNSPacket
		hello    event.TLSHello
		maxDelay = r.cfg.MaxDelay
		every    = lossCheckInterval
	)
	if r.cfg.Tick > 0 {
		every = min(every, r.cfg.Tick)
	}
	var nextPoll time.Time
	if r.poll != nil && r.cfg.Updates > 0 {
		every = min(every, r.cfg.Updates)
		nextPoll = time.Now().Add(r.cfg.Updates)
	}
	// With batched wake-ups the kernel does not wake us for each record:
	// the read deadline is also our timer for collecting what it queued.
	next := time.Now().Add(every)
	deadline := func(now time.Time) time.Time {
		if maxDelay > 0 && now.Add(maxDelay).Before(next) {
			return now.Add(maxDelay)
		}
		return next
	}
	// got: records were read since the last deadline. armed: nothing came
	// for a whole MaxDelay, so the kernel was asked to wake us for the
	// next record and we sleep until then (or the next tick) instead of
	// polling an idle ring. handed: h got something since it was last told
	// we caught up.
	var got, armed, handed bool
	r.ring.SetDeadline(deadline(time.Now()))
	for n := uint(1); ; n++ {
		if handed && r.ring.Pending() == 0 {
			if err := h.CaughtUp(); err != nil {
				return err
			}
			handed = false
		}
		err := r.ring.ReadInto(&rec)
		idle := errors.Is(err, os.ErrDeadlineExceeded)
		switch {
		case err == nil, idle:
		case errors.Is(err, ringbuf.ErrFlushed), errors.Is(err, ringbuf.ErrClosed):
			// Every hook is detached and every record read: the UDP
			// flows still open end here.
			if r.udp != nil && errors.Is(err, ringbuf.ErrFlushed) {
				if err := r.udp.drain(h); err != nil {
					return err
				}
				handed = true
			}
			reported, err := r.reportLost(h, time.Now())
			if err != nil {
				return err
			}
			if handed || reported {
				return h.CaughtUp()
			}
			return nil
		default:
			return fmt.Errorf("reading the ring buffer: %w", err)
		}
		if !idle {
			got = true
			if armed {
				armed = false
				r.ring.SetDeadline(deadline(time.Now()))
			}
		}
		// Losses and ticks when idle, and every 256 records under
		// sustained load.
		if idle || n%256 == 0 {
			now := time.Now()
			if !now.Before(next) {
				if _, err := r.reportLost(h, now); err != nil {
					return err
				}
				if r.poll != nil && !now.Before(nextPoll) {
					if err := r.poll(now, h); err != nil {
						return err
					}
					// From the last poll: no drift, no catching up.
					nextPoll = now.Add(r.cfg.Updates)
				}
				if r.udp != nil {
					if err := r.udp.sweep(h); err != nil {
						return err
					}
				}
				if err := h.Tick(now); err != nil {
					return err
				}
				handed = true
				next = now.Add(every) // the deadline follows when we are next idle
			}
			if idle {
				wait := deadline(now)
				if maxDelay > 0 && !got && !armed {
					if err := r.ring.WakeOnNextEvent(); err != nil {
						return err
					}
					armed = true
				}
				if armed {
					wait = next
					if r.ring.Pending() > 0 { // queued before the kernel knew
						wait = now
					}
				}
				got = false
				r.ring.SetDeadline(wait)
				continue
			}
		}
		if tlsRecord(rec.RawSample) {
			if decodeTLS(rec.RawSample, &hello) != nil {
				r.malformed++
				continue
			}
			if err := h.TLS(&hello); err != nil {
				return err
			}
			handed = true
			continue
		}
		isDNS, err := decodeRecord(rec.RawSample, &ev, &pkt)
		if err != nil {
			r.malformed++
			continue
		}
		switch {
		case isDNS:
			err = h.DNS(&pkt)
		case ev.Type == udpRelease:
			if r.udp != nil {
				err = r.udp.released(&ev, h)
			}
		case ev.Type == event.UDPOpen && r.udp != nil && !r.udp.opened(&ev):
		default:
			if ok, _ := decodeConnect(rec.RawSample, &conn); ok {
				if err := h.Event(&conn); err != nil {
					return err
				}
			}
			err = h.Event(&ev)
		}
		if err != nil {
			return err
		}
		handed = true
	}
}

// reportLost hands h what the kernel's cumulative loss counters gained
// since they were last read, reason by reason in order. It says whether
// there was anything to report.
func (r *reader) reportLost(h event.Handler, now time.Time) (reported bool, err error) {
	counts, err := r.ring.Losses()
	if err != nil {
		return false, err
	}
	for why, n := range counts {
		if n <= r.seen[why] {
			continue
		}
		reported = true
		if err := h.Lost(n-r.seen[why], event.LossReason(why), now); err != nil {
			return reported, err // not seen: unreported says so
		}
		r.seen[why] = n
	}
	return reported, nil
}

// unreported is how far the kernel's loss counters are ahead of what h
// was told.
func (r *reader) unreported() (event.LossCounts, error) {
	counts, err := r.ring.Losses()
	if err != nil {
		return event.LossCounts{}, err
	}
	for why, n := range counts {
		counts[why] = n - min(n, r.seen[why])
	}
	return counts, nil
}

package tracer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/tuxscope/tuxscope/internal/event"
)

// fakeRing behaves as the kernel side does for the reader: records queue
// up; with batch set, a waiting reader is woken only when it armed a
// wake-up (as BPF_RB_NO_WAKEUP until reader_idle is set), otherwise for
// every record. Deadlines are real time.
type fakeRing struct {
	batch bool

	mu       sync.Mutex
	queue    [][]byte
	deadline time.Time
	stopped  bool
	armed    bool
	losses   event.LossCounts
	arms     int // WakeOnNextEvent calls
	timeouts int // ReadInto calls that ended on the deadline
	wake     chan struct{}
}

func newFakeRing(batch bool) *fakeRing { return &fakeRing{batch: batch, wake: make(chan struct{}, 1)} }

func (f *fakeRing) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// push queues records as the BPF programs would.
func (f *fakeRing) push(recs ...[]byte) {
	f.mu.Lock()
	f.queue = append(f.queue, recs...)
	wake := !f.batch || f.armed
	f.armed = false
	f.mu.Unlock()
	if wake {
		f.signal()
	}
}

func (f *fakeRing) ReadInto(rec *ringbuf.Record) error {
	for {
		f.mu.Lock()
		if len(f.queue) > 0 {
			rec.RawSample = f.queue[0]
			f.queue = f.queue[1:]
			f.mu.Unlock()
			return nil
		}
		if f.stopped {
			f.mu.Unlock()
			return ringbuf.ErrFlushed
		}
		d := time.Until(f.deadline)
		if d <= 0 {
			f.timeouts++
			f.mu.Unlock()
			return os.ErrDeadlineExceeded
		}
		f.mu.Unlock()
		select {
		case <-f.wake:
		case <-time.After(d):
		}
	}
}

func (f *fakeRing) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.queue {
		n += len(r)
	}
	return n
}

func (f *fakeRing) SetDeadline(t time.Time) {
	f.mu.Lock()
	f.deadline = t
	f.mu.Unlock()
	f.signal()
}

func (f *fakeRing) WakeOnNextEvent() error {
	f.mu.Lock()
	f.armed = true
	f.arms++
	f.mu.Unlock()
	return nil
}

func (f *fakeRing) Losses() (event.LossCounts, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.losses, nil
}

func (f *fakeRing) Stop() error {
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	f.signal()
	return nil
}

func (f *fakeRing) addLost(lost, skipped uint64) {
	f.mu.Lock()
	f.losses[event.RingBufferFull] += lost
	f.losses[event.HookSkipped] += skipped
	f.mu.Unlock()
}

// recorder is a handler that logs every call, with when it came.
type recorder struct {
	mu    sync.Mutex
	calls []string
	at    []time.Time
	fail  error // returned from Event
}

func (r *recorder) log(s string) {
	r.mu.Lock()
	r.calls = append(r.calls, s)
	r.at = append(r.at, time.Now())
	r.mu.Unlock()
}

func (r *recorder) Event(e *event.Event) error {
	r.log(fmt.Sprintf("%s %d", e.Type, e.PID))
	return r.fail
}

func (r *recorder) DNS(p *event.DNSPacket) error {
	r.log(fmt.Sprintf("dns %d %dB", p.PID, len(p.Payload)))
	return nil
}

func (r *recorder) TLS(h *event.TLSHello) error {
	r.log(fmt.Sprintf("tls %d %dB", h.Cookie, len(h.Payload)))
	return nil
}

func (r *recorder) Lost(n uint64, why event.LossReason, _ time.Time) error {
	r.log(fmt.Sprintf("lost %d %s", n, why.Key()))
	return nil
}

func (r *recorder) Tick(time.Time) error { r.log("tick"); return nil }
func (r *recorder) CaughtUp() error      { r.log("caught up"); return nil }

// events is the calls other than ticks.
func (r *recorder) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.calls {
		if c != "tick" {
			out = append(out, c)
		}
	}
	return out
}

// waitFor waits until call s was made, and says when.
func (r *recorder) waitFor(t *testing.T, s string, within time.Duration) time.Time {
	t.Helper()
	for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(time.Millisecond) {
		r.mu.Lock()
		for i, c := range r.calls {
			if c == s {
				at := r.at[i]
				r.mu.Unlock()
				return at
			}
		}
		r.mu.Unlock()
	}
	t.Fatalf("no %q within %v; calls: %q", s, within, r.events())
	return time.Time{}
}

// connectRecord is a connect record of process pid.
func connectRecord(pid uint32) []byte {
	rec := v4Connect()
	rec.Hdr.Owner.Pid = pid
	return recordBytes(&rec)
}

// run starts a reader on ring; stop cancels it and returns Run's error.
func run(ring recordRing, cfg readerConfig, h event.Handler) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- newReader(ring, cfg).Run(ctx, h) }()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			return errors.New("Run did not return after its context ended")
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// With batched wake-ups, records queued without a wake-up are collected
// at the read deadline, all together, and the handler hears it has caught
// up once, after the batch.
func TestReaderCollectsABatchAtItsDeadline(t *testing.T) {
	ring := newFakeRing(true)
	var h recorder
	stop := run(ring, readerConfig{MaxDelay: 40 * time.Millisecond, Tick: time.Hour}, &h)
	ring.push(connectRecord(1), connectRecord(2), connectRecord(3))
	pushed := time.Now()
	at := h.waitFor(t, "caught up", time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"connect 1", "connect 2", "connect 3", "caught up"}; !equal(h.events()[:4], want) {
		t.Errorf("calls %q, want %q first", h.events(), want)
	}
	// Collected by the deadline, not before the kernel would have woken
	// us (it did not), and not much after.
	if d := at.Sub(pushed); d > 200*time.Millisecond {
		t.Errorf("batch read %v after it was queued, want within about --max-delay (40ms)", d)
	}
}

// After a quiet MaxDelay the reader arms a wake-up and stops polling: the
// next record wakes it at once, and it polls again while records come.
func TestReaderIdleArmsAWakeUp(t *testing.T) {
	ring := newFakeRing(true)
	var h recorder
	stop := run(ring, readerConfig{MaxDelay: 20 * time.Millisecond, Tick: time.Hour}, &h)
	time.Sleep(300 * time.Millisecond) // 15 MaxDelays of quiet
	ring.mu.Lock()
	arms, timeouts := ring.arms, ring.timeouts
	ring.mu.Unlock()
	if arms != 1 {
		t.Errorf("%d wake-ups armed during a quiet spell, want 1", arms)
	}
	// One deadline to notice the quiet, then asleep until the tick (1s).
	if timeouts > 2 {
		t.Errorf("%d read deadlines passed in 300ms of quiet with a wake-up armed: still polling", timeouts)
	}
	ring.push(connectRecord(7))
	pushed := time.Now()
	at := h.waitFor(t, "connect 7", time.Second)
	// Woken by the record, not by a deadline (the next is ~1s away).
	if d := at.Sub(pushed); d > 15*time.Millisecond {
		t.Errorf("armed reader saw the record %v after it was queued, want at once", d)
	}
	// Quiet again: armed again, once.
	time.Sleep(200 * time.Millisecond)
	ring.mu.Lock()
	arms = ring.arms
	ring.mu.Unlock()
	if arms != 2 {
		t.Errorf("%d wake-ups armed after the second quiet spell, want 2", arms)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// Without batching the reader never arms a wake-up: the kernel wakes it
// for every record anyway.
func TestReaderWithoutBatchingNeverArms(t *testing.T) {
	ring := newFakeRing(false)
	var h recorder
	stop := run(ring, readerConfig{Tick: time.Hour}, &h)
	ring.push(connectRecord(1))
	h.waitFor(t, "connect 1", time.Second)
	time.Sleep(100 * time.Millisecond)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if ring.arms != 0 {
		t.Errorf("%d wake-ups armed with MaxDelay 0", ring.arms)
	}
}

// At stop, what the kernel still had queued is handed over (and flushed),
// then the last losses (drops, then skipped runs), then one last
// caught-up, and Run returns without error.
func TestReaderDrainsAtStop(t *testing.T) {
	ring := newFakeRing(true)
	var h recorder
	stop := run(ring, readerConfig{MaxDelay: time.Second, Tick: time.Hour}, &h)
	time.Sleep(20 * time.Millisecond)                               // the reader waits on its 1s deadline
	ring.push(connectRecord(1), connectRecord(2), connectRecord(3)) // queued quietly
	ring.addLost(5, 2)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want := []string{"connect 1", "connect 2", "connect 3", "caught up", "lost 5 ring_buffer_full", "lost 2 hook_skipped", "caught up"}
	if got := h.events(); !equal(got, want) {
		t.Errorf("calls at stop:\n got %q\nwant %q", got, want)
	}
}

// Losses are reported as they grow, each once, at the tick after they
// happened, between the events around them.
func TestReaderReportsLossesOnTicks(t *testing.T) {
	ring := newFakeRing(false)
	var h recorder
	stop := run(ring, readerConfig{Tick: 30 * time.Millisecond}, &h)
	ring.push(connectRecord(1))
	h.waitFor(t, "connect 1", time.Second)
	ring.addLost(3, 0)
	h.waitFor(t, "lost 3 ring_buffer_full", time.Second)
	ring.push(connectRecord(2))
	h.waitFor(t, "connect 2", time.Second)
	ring.addLost(0, 4)
	h.waitFor(t, "lost 4 hook_skipped", time.Second)
	time.Sleep(100 * time.Millisecond) // more ticks: nothing new to report
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want := []string{"connect 1", "caught up", "lost 3 ring_buffer_full", "caught up", "connect 2", "caught up", "lost 4 hook_skipped", "caught up"}
	got := h.events()
	// Ticks may add caught-ups after the last loss; the rest is exact.
	for len(got) > len(want) && got[len(got)-1] == "caught up" {
		got = got[:len(got)-1]
	}
	if !equal(got, want) {
		t.Errorf("calls:\n got %q\nwant %q", got, want)
	}
	h.mu.Lock()
	ticks := 0
	for _, c := range h.calls {
		if c == "tick" {
			ticks++
		}
	}
	h.mu.Unlock()
	if ticks < 3 {
		t.Errorf("%d ticks in over 100ms with a 30ms tick", ticks)
	}
}

// Malformed records are counted and skipped; the stream goes on.
func TestReaderSkipsMalformedRecords(t *testing.T) {
	ring := newFakeRing(false)
	var h recorder
	r := newReader(ring, readerConfig{Tick: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, &h) }()
	bad := connectRecord(2)
	bad[offType] = 99
	ring.push(connectRecord(1), []byte{1, 2, 3}, bad, connectRecord(3))
	h.waitFor(t, "connect 3", time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := r.malformed; got != 2 {
		t.Errorf("Malformed = %d, want 2", got)
	}
	if want := []string{"connect 1", "connect 3", "caught up"}; !equal(h.events(), want) {
		t.Errorf("calls %q, want %q", h.events(), want)
	}
}

// The handler's first error ends the run (a closed stdout ends tuxscope).
func TestReaderStopsOnHandlerError(t *testing.T) {
	ring := newFakeRing(false)
	h := recorder{fail: syscall.EPIPE}
	ring.push(connectRecord(1), connectRecord(2))
	err := newReader(ring, readerConfig{Tick: time.Hour}).Run(context.Background(), &h)
	if !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Run = %v, want EPIPE", err)
	}
	if want := []string{"connect 1"}; !equal(h.events(), want) {
		t.Errorf("calls %q, want %q", h.events(), want)
	}
}

// A run that ends on an output error leaves the kernel's later losses
// unreported; unreported says how many, so they are not lost silently.
// A loss whose report failed counts as unreported too.
func TestReaderUnreportedAfterAnOutputError(t *testing.T) {
	ring := newFakeRing(false)
	ring.addLost(3, 0)
	h := recorder{fail: syscall.EPIPE}
	ring.push(connectRecord(1)) // the output breaks at its first event
	r := newReader(ring, readerConfig{Tick: time.Hour})
	if err := r.Run(context.Background(), &h); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Run = %v, want EPIPE", err)
	}
	ring.addLost(400, 2) // while nobody read any more
	got, err := r.unreported()
	if want := (event.LossCounts{event.RingBufferFull: 403, event.HookSkipped: 2}); err != nil || got != want {
		t.Errorf("unreported = %v, %v; want %v", got, err, want)
	}

	// After a clean drain nothing is left: the drain reported it all.
	ring = newFakeRing(false)
	var ok recorder
	r = newReader(ring, readerConfig{Tick: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, &ok) }()
	ring.push(connectRecord(1))
	ok.waitFor(t, "connect 1", time.Second)
	ring.addLost(5, 1)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, _ := r.unreported(); got.Any() {
		t.Errorf("after a drain: unreported %v; calls %q", got, ok.events())
	}
}

// With a poll (--updates), the reader runs it about every Updates, on an
// idle ring as under load, and hands the handler what it makes.
func TestReaderPolls(t *testing.T) {
	ring := newFakeRing(true)
	rec := &recorder{}
	var polls []time.Time
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	r := newReader(ring, readerConfig{MaxDelay: 10 * time.Millisecond, Updates: 50 * time.Millisecond})
	r.poll = func(now time.Time, h event.Handler) error {
		mu.Lock()
		polls = append(polls, now)
		mu.Unlock()
		e := event.Event{Type: event.Update, PID: 7}
		return h.Event(&e)
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, rec) }()
	rec.waitFor(t, "update 7", time.Second)
	time.Sleep(220 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(polls) < 3 || len(polls) > 6 {
		t.Fatalf("%d polls in about 270ms at 50ms, want about 5", len(polls))
	}
	if first := polls[0].Sub(start); first < 45*time.Millisecond {
		t.Errorf("first poll after %v, want an interval (50ms) first", first)
	}
	for i := 1; i < len(polls); i++ {
		if d := polls[i].Sub(polls[i-1]); d < 50*time.Millisecond {
			t.Errorf("polls %v apart, want at least the interval", d)
		}
	}
}

// A record that stands for a connect and its outcome gives both events,
// the connect first.
func TestReaderSplitsAConnectAndItsOutcome(t *testing.T) {
	ring := newFakeRing(false)
	var h recorder
	stop := run(ring, readerConfig{Tick: time.Hour}, &h)
	est := v4Established()
	est.Hdr.Owner.Pid, est.Flags = 7, uint8(flagWithConnect)
	ring.push(connectRecord(6), recordBytes(&est), connectRecord(8))
	h.waitFor(t, "connect 8", time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"connect 6", "connect 7", "established 7", "connect 8", "caught up"}; !equal(h.events(), want) {
		t.Errorf("calls %q, want %q", h.events(), want)
	}
}

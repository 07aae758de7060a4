package output

import (
	"bytes"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/tuxscope/tuxscope/internal/event"
)

// FileOptions says where --output writes and how it rotates.
type FileOptions struct {
	Path    string
	MaxSize int64 // --rotate-size; 0: never rotate
	Keep    int   // --rotate-keep: rotated files kept
	// QueueBytes bounds what waits for the writer (default 4 MiB: about a
	// second of JSON at the benchmark's highest churn).
	QueueBytes int
	// FinishWait is how long Finish waits for the writer to write what is
	// queued (default 5 s): a stalled disk must not hang the exit.
	FinishWait time.Duration
}

// LineWriter is where a File's writer goroutine puts whole lines:
// a RotatingFile.
type LineWriter interface {
	// WriteLines writes b (whole lines) and returns how many bytes of it
	// were written, up to a line's end.
	WriteLines(b []byte) (int, error)
	Close() error
}

// chunkSize is how many bytes of lines the sink gathers before it hands
// them to the writer (it also hands over what it has whenever the
// pipeline has caught up with the kernel).
const chunkSize = 64 << 10

// File is the --output sink: the JSON stream's records, one per line,
// written to a rotated file by a goroutine of its own behind a bounded
// queue, so a slow or stalled disk never makes the pipeline (hence the
// kernel side's ring buffer) wait. When the queue is full, the events
// gathered meanwhile are dropped and counted, and the next records
// written begin with a lost record, reason output_full. Records a write
// fails for (a full disk) are counted and reported the same way, reason
// output_error, when a later write succeeds; the first failure is said on
// diag at once, and Finish returns an error. Kernel losses in a chunk that
// was dropped or failed are carried over to the next one: none is lost
// silently.
type File struct {
	path  string
	diag  io.Writer
	wait  time.Duration
	queue chan *chunk
	free  chan *chunk
	cur   *chunk
	// pending are losses not yet in any chunk: the sink's own drops
	// (OutputFull) and the kernel losses of dropped chunks.
	pending event.LossCounts
	dropped uint64 // events dropped in all (OutputFull)
	w       *fileWriter
	times   timeCache // the events' times
	said    bool      // the first write error was said on diag
	closed  bool
}

// chunk is lines on their way to the writer.
type chunk struct {
	b      []byte
	events uint64     // event (and open_at_exit) lines in b
	losses []lossLine // the lost records in b
}

type lossLine struct {
	off int
	n   uint64
	why event.LossReason
}

// OpenFile opens (or creates) the output file and starts its writer.
// diag gets the first write error as it happens (from the pipeline's
// goroutine, never the writer's).
func OpenFile(o FileOptions, diag io.Writer) (*File, error) {
	rf, err := OpenRotating(o.Path, o.MaxSize, o.Keep)
	if err != nil {
		return nil, err
	}
	return newFile(rf, o, diag), nil
}

func newFile(lw LineWriter, o FileOptions, diag io.Writer) *File {
	if o.QueueBytes <= 0 {
		o.QueueBytes = 4 << 20
	}
	if o.FinishWait <= 0 {
		o.FinishWait = 5 * time.Second
	}
	n := max(o.QueueBytes/chunkSize, 1)
	f := &File{
		path:  o.Path,
		diag:  diag,
		wait:  o.FinishWait,
		queue: make(chan *chunk, n),
		free:  make(chan *chunk, n+1),
		w:     &fileWriter{lw: lw, done: make(chan struct{})},
	}
	go f.w.run(f.queue, f.free)
	return f
}

// Start writes nothing: the stream needs no header.
func (f *File) Start() error { return nil }

// chunk is the chunk being gathered, begun with the pending losses.
func (f *File) chunk(at time.Time) *chunk {
	if f.cur != nil {
		return f.cur
	}
	select {
	case f.cur = <-f.free:
	default:
		f.cur = &chunk{b: make([]byte, 0, chunkSize+4096)}
	}
	if f.pending.Any() {
		p := f.pending
		f.pending = event.LossCounts{}
		for why, n := range p {
			if n > 0 {
				f.addLoss(n, event.LossReason(why), at)
			}
		}
	}
	return f.cur
}

func (f *File) addLoss(n uint64, why event.LossReason, at time.Time) {
	c := f.cur
	c.losses = append(c.losses, lossLine{off: len(c.b), n: n, why: why})
	c.b = appendLostJSON(c.b, n, why, at)
}

// Event adds e's JSON line; a full chunk goes to the writer, or, when its
// queue is full, is dropped.
func (f *File) Event(e *event.Event) error {
	c := f.chunk(e.Time)
	c.b = appendEventJSON(c.b, e, &f.times)
	c.events++
	if len(c.b) >= chunkSize {
		f.hand(false)
	}
	f.sayError()
	return nil
}

// Lost adds a loss notice, in band as the JSON stream has it.
func (f *File) Lost(n uint64, why event.LossReason, at time.Time) error {
	f.chunk(at)
	f.addLoss(n, why, at)
	return nil
}

// Tick does nothing: records are written as they come.
func (f *File) Tick(time.Time) error { return nil }

// Flush hands what is gathered to the writer if its queue has room; if
// not, the chunk keeps gathering (and is dropped only when full).
func (f *File) Flush() error {
	if f.cur == nil && f.pending.Any() {
		f.chunk(time.Now())
	}
	if f.cur != nil && len(f.cur.b) > 0 {
		f.hand(true)
	}
	f.sayError()
	return nil
}

// StillOpen adds the open_at_exit record.
func (f *File) StillOpen(n event.OpenCount, at time.Time) error {
	c := f.chunk(at)
	c.b = appendStillOpenJSON(c.b, n, at)
	c.events++
	return nil
}

// hand passes the current chunk to the writer without waiting. When the
// queue is full it is kept (keep) or dropped: its events counted as
// OutputFull, its losses carried over to the next chunk.
func (f *File) hand(keep bool) {
	select {
	case f.queue <- f.cur:
		f.cur = nil
		return
	default:
	}
	if keep {
		return
	}
	c := f.cur
	f.pending[event.OutputFull] += c.events
	f.dropped += c.events
	for _, l := range c.losses {
		f.pending[l.why] += l.n
	}
	c.reset()
	f.cur = nil // the next chunk begins with the pending losses
	select {
	case f.free <- c:
	default:
	}
}

func (c *chunk) reset() {
	c.b, c.events, c.losses = c.b[:0], 0, c.losses[:0]
}

// sayError says the writer's first failure on diag, once.
func (f *File) sayError() {
	if f.said {
		return
	}
	if err := f.w.firstErr.Load(); err != nil {
		f.said = true
		fmt.Fprintf(f.diag, "tuxscope: --output %s: %v; records that cannot be written are counted (output_error)\n", f.path, *err)
	}
}

// Finish hands over what is left, waits (at most FinishWait) for the
// writer to write it and closes the file. It says on diag what was
// dropped, and returns an error when records could not be written or
// losses could not be reported in the file.
func (f *File) Finish() error {
	if f.closed {
		return nil
	}
	f.closed = true
	deadline := time.NewTimer(f.wait)
	defer deadline.Stop()
	if f.cur == nil && f.pending.Any() {
		f.chunk(time.Now())
	}
	stalled := false
	if f.cur != nil && len(f.cur.b) > 0 {
		select {
		case f.queue <- f.cur:
			f.cur = nil
		case <-deadline.C:
			stalled = true
		}
	}
	close(f.queue)
	if !stalled {
		select {
		case <-f.w.done:
		case <-deadline.C:
			stalled = true
		}
	}
	if f.dropped > 0 {
		fmt.Fprintf(f.diag, "tuxscope: %s\n", event.OutputFull.Describe(f.dropped))
	}
	if stalled {
		// The writer is stuck in a write: leave it; the process is ending.
		return fmt.Errorf("--output %s: the writer did not finish within %v (a stalled disk?): the last records may be missing", f.path, f.wait)
	}
	f.sayError()
	w := f.w
	if err := w.lw.Close(); err != nil && w.failed == 0 {
		return fmt.Errorf("--output %s: %w", f.path, err)
	}
	for why, n := range w.pending {
		if n > 0 && event.LossReason(why) != event.OutputError {
			fmt.Fprintf(f.diag, "tuxscope: %s; not reported in the --output file\n", event.LossReason(why).Describe(n))
		}
	}
	if w.failed > 0 {
		return fmt.Errorf("--output %s: %s (first: %v)", f.path, event.OutputError.Describe(w.failed), *w.firstErr.Load())
	}
	if w.pending.Any() {
		return fmt.Errorf("--output %s: losses could not be reported in the file", f.path)
	}
	return nil
}

// Dropped is how many events the sink dropped because the writer's queue
// was full.
func (f *File) Dropped() uint64 { return f.dropped }

// fileWriter is the goroutine that writes chunks; its counts are read
// only after done is closed.
type fileWriter struct {
	lw       LineWriter
	done     chan struct{}
	firstErr atomic.Pointer[error]
	failed   uint64           // records not written (OutputError)
	pending  event.LossCounts // losses of failed writes, to write first
}

func (w *fileWriter) run(queue <-chan *chunk, free chan<- *chunk) {
	defer close(w.done)
	for c := range queue {
		w.write(c)
		c.reset()
		select {
		case free <- c:
		default:
		}
	}
}

// write writes c, after the losses earlier failures left pending. The
// part of c a write fails for is counted: its events as OutputError, its
// lost records carried over.
func (w *fileWriter) write(c *chunk) {
	if w.pending.Any() {
		var line []byte
		for why, n := range w.pending {
			if n == 0 {
				continue
			}
			line = appendLostJSON(line[:0], n, event.LossReason(why), time.Now())
			if _, err := w.lw.WriteLines(line); err != nil {
				break
			}
			w.pending[why] = 0
		}
	}
	n, err := w.lw.WriteLines(c.b)
	if err == nil {
		return
	}
	w.firstErr.CompareAndSwap(nil, &err)
	lost := uint64(bytes.Count(c.b[n:], []byte{'\n'}))
	for _, l := range c.losses {
		if l.off >= n {
			w.pending[l.why] += l.n
			lost--
		}
	}
	w.failed += lost
	w.pending[event.OutputError] += lost
}

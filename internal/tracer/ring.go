package tracer

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// eventRing reads the BPF ring buffer the way ringbuf.Reader does, with
// three differences that matter at tens of thousands of records a second:
//
//   - It waits in Go's network poller, which watches the ring's fd
//     edge-triggered: once it has read everything, it sleeps until the
//     kernel side wakes it (a quarter of the ring full, or the next record
//     when armed) or the deadline, and the records queued meanwhile are
//     read in one go. ringbuf.Reader's level-triggered epoll_wait returns
//     at once whenever a record is there, so under load the reader chased
//     the kernel side a few records at a time, one epoll_wait each.
//   - A record is handed out in place (valid until the next read), not
//     copied.
//   - The consumer position, a cache line the kernel side reads on every
//     reservation, is written every consumerBatch records and before
//     waiting, not after every record; and the producer position, a
//     cache line the kernel side writes on every reservation, is read
//     again only when the records it showed are all read, not for every
//     record.
type eventRing struct {
	mu    sync.Mutex // held by ReadInto; Close waits for it before unmapping
	file  *os.File   // a duplicate of the map's fd, in the network poller
	raw   syscall.RawConn
	cons  []byte // the consumer page (read-write)
	prodm []byte // the producer page and the data pages, mapped twice (read-only)
	data  []byte // prodm past the producer page: 2 × size
	mask  uint64

	consPos *uint64 // the consumer position, in the consumer page
	prodPos *uint64 // the producer position, in the producer page

	pos       uint64 // what this reader has consumed
	published uint64 // what the consumer position says
	prod      uint64 // the producer position last read (pos <= prod)

	deadline, armed time.Time // wanted, and set on file
	flushed         atomic.Bool
	closed          atomic.Bool
	ready           func(fd uintptr) bool
}

// consumerBatch is how many bytes of records are consumed between writes
// of the consumer position: about 16 of tuxscope's event records.
const consumerBatch = 4096

func newEventRing(m *ebpf.Map) (*eventRing, error) {
	size := int(m.MaxEntries())
	if size <= 0 || size&(size-1) != 0 {
		return nil, fmt.Errorf("ring buffer size %d is not a power of two", size)
	}
	fd, err := unix.FcntlInt(uintptr(m.FD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("duplicating the ring buffer's fd: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ring buffer fd: %w", err)
	}
	r := &eventRing{file: os.NewFile(uintptr(fd), "ringbuf"), mask: uint64(size - 1)}
	fail := func(err error) (*eventRing, error) {
		r.unmap()
		r.file.Close()
		return nil, err
	}
	// A descriptor the network poller cannot watch has no deadlines.
	if err := r.file.SetReadDeadline(time.Time{}); err != nil {
		return fail(fmt.Errorf("polling the ring buffer: %w", err))
	}
	if r.raw, err = r.file.SyscallConn(); err != nil {
		return fail(fmt.Errorf("polling the ring buffer: %w", err))
	}
	page := os.Getpagesize()
	if r.cons, err = unix.Mmap(fd, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return fail(fmt.Errorf("mapping the ring buffer's consumer page: %w", err))
	}
	if r.prodm, err = unix.Mmap(fd, int64(page), page+2*size, unix.PROT_READ, unix.MAP_SHARED); err != nil {
		return fail(fmt.Errorf("mapping the ring buffer's data: %w", err))
	}
	r.data = r.prodm[page:]
	r.consPos = (*uint64)(unsafe.Pointer(&r.cons[0]))
	r.prodPos = (*uint64)(unsafe.Pointer(&r.prodm[0]))
	r.pos = atomic.LoadUint64(r.consPos)
	r.published, r.prod = r.pos, r.pos
	r.ready = func(uintptr) bool { return r.flushed.Load() || r.committed() }
	return r, nil
}

// Record header bits (include/uapi/linux/bpf.h).
const (
	ringBusyBit    = 1 << 31
	ringDiscardBit = 1 << 30
	ringHeaderSize = 8
)

// committed says whether the next record is there and committed.
func (r *eventRing) committed() bool {
	if atomic.LoadUint64(r.prodPos) == r.pos {
		return false
	}
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[r.pos&r.mask])))&ringBusyBit == 0
}

// next hands out the next committed record, skipping discarded ones; it
// says false when there is none (yet).
func (r *eventRing) next(rec *ringbuf.Record) (bool, error) {
	for {
		if r.prod == r.pos {
			r.prod = atomic.LoadUint64(r.prodPos)
			if r.prod == r.pos {
				return false, nil
			}
		}
		prod := r.prod
		if prod-r.pos < ringHeaderSize {
			return false, fmt.Errorf("ring buffer record header: %w", errRingShort)
		}
		start := r.pos & r.mask
		// Atomic: it orders the kernel's writes of the record before it.
		hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[start])))
		if hdr&ringBusyBit != 0 {
			return false, nil // reserved, not committed yet
		}
		n := uint64(hdr &^ (ringBusyBit | ringDiscardBit))
		aligned := (n + 7) &^ 7
		if prod-r.pos-ringHeaderSize < aligned {
			return false, fmt.Errorf("ring buffer record data: %w", errRingShort)
		}
		begin := start + ringHeaderSize
		r.pos += ringHeaderSize + aligned
		if hdr&ringDiscardBit != 0 {
			continue
		}
		// The data pages are mapped twice, so a record that wraps is
		// contiguous.
		rec.RawSample = r.data[begin : begin+n : begin+n]
		rec.Remaining = int(prod - r.pos)
		return true, nil
	}
}

var errRingShort = errors.New("shorter than the producer position says")

// publish tells the kernel side what has been consumed.
func (r *eventRing) publish() {
	if r.published != r.pos {
		atomic.StoreUint64(r.consPos, r.pos)
		r.published = r.pos
	}
}

// ReadInto reads the next record into rec, waiting for it until the
// deadline; rec.RawSample is valid until the next call. At the deadline
// it returns os.ErrDeadlineExceeded; after Flush, when it has read what
// was there, ringbuf.ErrFlushed, once; after Close, ringbuf.ErrClosed.
func (r *eventRing) ReadInto(rec *ringbuf.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if r.closed.Load() {
			return fmt.Errorf("ring buffer: %w", ringbuf.ErrClosed)
		}
		// The previous record is done with: its space may be given
		// back (rec's contract).
		if r.pos-r.published >= consumerBatch {
			r.publish()
		}
		ok, err := r.next(rec)
		if ok || err != nil {
			return err
		}
		// Caught up. The kernel side decides whether to wake a reader
		// from the consumer position: it must be current before waiting.
		r.publish()
		if r.committed() {
			continue
		}
		if r.flushed.Swap(false) {
			return ringbuf.ErrFlushed
		}
		if !time.Now().Before(r.deadline) {
			return os.ErrDeadlineExceeded
		}
		if !r.deadline.Equal(r.armed) {
			if err := r.file.SetReadDeadline(r.deadline); err != nil {
				return fmt.Errorf("ring buffer deadline: %w", err)
			}
			r.armed = r.deadline
		}
		err = r.raw.Read(r.ready)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Flush's wake-up, or ours: set ours again before the next
			// wait, if it has not passed.
			r.armed = time.Time{}
		case r.closed.Load():
			return fmt.Errorf("ring buffer: %w", ringbuf.ErrClosed)
		default:
			return fmt.Errorf("waiting for the ring buffer: %w", err)
		}
	}
}

// AvailableBytes is how many bytes of records wait to be read: at least
// what the producer position last read showed, else what it shows now.
// Only ReadInto's goroutine calls it.
func (r *eventRing) AvailableBytes() int {
	if r.prod != r.pos {
		return int(r.prod - r.pos)
	}
	return int(atomic.LoadUint64(r.prodPos) - r.pos)
}

// SetDeadline bounds how long ReadInto waits. Only ReadInto's goroutine
// calls it.
func (r *eventRing) SetDeadline(t time.Time) { r.deadline = t }

// Flush makes a waiting (or the next) ReadInto return what is left, then
// ringbuf.ErrFlushed. Safe from any goroutine.
func (r *eventRing) Flush() error {
	r.flushed.Store(true)
	// Wakes a waiting ReadInto; it sets its own deadline before it
	// next waits, and sees flushed first.
	if err := r.file.SetReadDeadline(time.Unix(1, 0)); err != nil && !r.closed.Load() {
		return err
	}
	return nil
}

// Close wakes a waiting ReadInto (ringbuf.ErrClosed) and releases the
// ring.
func (r *eventRing) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	err := r.file.Close() // wakes a waiting ReadInto
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unmap()
	return err
}

func (r *eventRing) unmap() {
	if r.prodm != nil {
		unix.Munmap(r.prodm)
		r.prodm, r.data = nil, nil
	}
	if r.cons != nil {
		unix.Munmap(r.cons)
		r.cons = nil
	}
}

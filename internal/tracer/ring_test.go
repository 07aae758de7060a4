package tracer

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/ringbuf"
)

// ringWriter is a 4 KiB ring buffer and a program that writes one record
// into it per run: its n bytes, the first 8 the kernel's clock (so that
// records come in increasing order), the rest zeros.
type ringWriter struct {
	m    *ebpf.Map
	prog map[int]*ebpf.Program // by record size
}

func newRingWriter(t *testing.T, sizes ...int) *ringWriter {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("not root: cannot create a BPF ring buffer")
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: uint32(os.Getpagesize())})
	if err != nil {
		t.Fatalf("creating a ring buffer: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	w := &ringWriter{m: m, prog: map[int]*ebpf.Program{}}
	for _, n := range sizes {
		insns := asm.Instructions{asm.FnKtimeGetNs.Call(), asm.Mov.Imm(asm.R1, 0)}
		for off := 8; off < n; off += 8 {
			insns = append(insns, asm.StoreMem(asm.R10, int16(off-n), asm.R1, asm.DWord))
		}
		insns = append(insns,
			asm.StoreMem(asm.R10, int16(-n), asm.R0, asm.DWord),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, int32(-n)),
			asm.Mov.Imm(asm.R3, int32(n)),
			asm.Mov.Imm(asm.R4, 0),
			asm.FnRingbufOutput.Call(),
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		)
		p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, License: "GPL", Instructions: insns})
		if err != nil {
			t.Fatalf("loading the writer: %v", err)
		}
		t.Cleanup(func() { p.Close() })
		w.prog[n] = p
	}
	return w
}

// write writes count records of n bytes.
func (w *ringWriter) write(t *testing.T, n, count int) {
	t.Helper()
	for range count {
		if _, err := w.prog[n].Run(&ebpf.RunOptions{Data: make([]byte, 64)}); err != nil {
			t.Fatalf("running the writer: %v", err)
		}
	}
}

// Records come out whole and in order, of any size, across the ring's
// end many times over, and the ring is empty after them.
func TestEventRingReadsInOrderAcrossTheEnd(t *testing.T) {
	w := newRingWriter(t, 8, 24, 40)
	r, err := newEventRing(w.m)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var rec ringbuf.Record
	var last uint64
	for round := range 60 {
		n := []int{8, 24, 40}[round%3]
		count := 1 + round%7*9 // up to 55 records: 2.6 KiB of a 4 KiB ring
		w.write(t, n, count)
		r.SetDeadline(time.Now().Add(5 * time.Second))
		for i := range count {
			if err := r.ReadInto(&rec); err != nil {
				t.Fatalf("round %d record %d: %v", round, i, err)
			}
			if len(rec.RawSample) != n {
				t.Fatalf("round %d record %d: %d bytes, want %d", round, i, len(rec.RawSample), n)
			}
			ts := binary.NativeEndian.Uint64(rec.RawSample)
			if ts <= last {
				t.Fatalf("round %d record %d: timestamp %d after %d", round, i, ts, last)
			}
			last = ts
			for _, b := range rec.RawSample[8:] {
				if b != 0 {
					t.Fatalf("round %d record %d: % x", round, i, rec.RawSample)
				}
			}
		}
		if p := r.AvailableBytes(); p != 0 {
			t.Fatalf("round %d: %d bytes pending after every record", round, p)
		}
		r.SetDeadline(time.Now())
		if err := r.ReadInto(&rec); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("round %d: an empty ring read %v", round, err)
		}
	}
}

// An idle reader sleeps until its deadline, wakes for a record the
// kernel side announces, and Flush and Close end its wait.
func TestEventRingWaits(t *testing.T) {
	w := newRingWriter(t, 8)
	r, err := newEventRing(w.m)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var rec ringbuf.Record

	start := time.Now()
	r.SetDeadline(start.Add(100 * time.Millisecond))
	if err := r.ReadInto(&rec); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle read: %v", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 2*time.Second {
		t.Errorf("the deadline came after %v, want 100ms", d)
	}

	read := func() <-chan error {
		done := make(chan error, 1)
		go func() { done <- r.ReadInto(&rec) }()
		time.Sleep(50 * time.Millisecond) // waiting by now
		return done
	}
	r.SetDeadline(time.Now().Add(10 * time.Second))
	done := read()
	w.write(t, 8, 1)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("woken read: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a record the kernel announced did not wake the reader")
	}

	done = read()
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ringbuf.ErrFlushed) {
			t.Fatalf("flushed read: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Flush did not end the wait")
	}
	// After the flush, reads wait again, until their deadline.
	r.SetDeadline(time.Now().Add(50 * time.Millisecond))
	if err := r.ReadInto(&rec); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after the flush: %v", err)
	}

	r.SetDeadline(time.Now().Add(10 * time.Second))
	done = read()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ringbuf.ErrClosed) {
			t.Fatalf("closed read: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the wait")
	}
	if err := r.ReadInto(&rec); !errors.Is(err, ringbuf.ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}
}

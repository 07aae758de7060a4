package output

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tuxscope/tuxscope/internal/event"
)

// numbered is n lines of exactly width bytes each (newline included),
// "line 1", "line 2", ... padded with dots.
func numbered(from, to, width int) []string {
	var lines []string
	for i := from; i <= to; i++ {
		s := fmt.Sprintf("line %d", i)
		lines = append(lines, s+strings.Repeat(".", width-1-len(s))+"\n")
	}
	return lines
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(string(b), "\n")[:bytes.Count(b, []byte{'\n'})]
}

func checkFile(t *testing.T, path string, want []string) {
	t.Helper()
	if got := readLines(t, path); strings.Join(got, "") != strings.Join(want, "") {
		t.Errorf("%s: %d lines %q...\nwant %d lines %q...", filepath.Base(path), len(got), first(got), len(want), first(want))
	}
}

func first(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return l[0]
}

func checkAbsent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists (%v), want it rotated away", filepath.Base(path), err)
	}
}

// TestRotatingFileExactSizes writes 35 lines of 100 bytes with a 1000-byte
// size and keep 2, line by line and all at once: FILE holds lines 31-35,
// FILE.1 21-30, FILE.2 11-20; lines 1-10 (the third rotation's oldest)
// are gone, and there is no FILE.3.
func TestRotatingFileExactSizes(t *testing.T) {
	lines := numbered(1, 35, 100)
	for _, mode := range []string{"line by line", "one write"} {
		t.Run(mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.ndjson")
			r, err := OpenRotating(path, 1000, 2)
			if err != nil {
				t.Fatal(err)
			}
			if mode == "one write" {
				if n, err := r.WriteLines([]byte(strings.Join(lines, ""))); n != 3500 || err != nil {
					t.Fatalf("WriteLines = %d, %v", n, err)
				}
			} else {
				for _, l := range lines {
					if n, err := r.WriteLines([]byte(l)); n != 100 || err != nil {
						t.Fatalf("WriteLines = %d, %v", n, err)
					}
				}
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			checkFile(t, path, lines[30:35])
			checkFile(t, path+".1", lines[20:30])
			checkFile(t, path+".2", lines[10:20])
			checkAbsent(t, path+".3")
			for _, p := range []string{path, path + ".1", path + ".2"} {
				st, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if want := FileMode &^ umask(); st.Mode().Perm() != want {
					t.Errorf("%s mode %v, want %v", filepath.Base(p), st.Mode().Perm(), want)
				}
			}
		})
	}
}

func umask() os.FileMode {
	old := syscall.Umask(0)
	syscall.Umask(old)
	return os.FileMode(old)
}

// TestRotatingFileBoundaries: a file exactly at the size is rotated only
// when another line comes; an existing FILE is continued and its size
// counts; a line longer than the size fills a file of its own; keep 0
// keeps no rotated file.
func TestRotatingFileBoundaries(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	old := numbered(1, 3, 100)
	if err := os.WriteFile(path, []byte(strings.Join(old, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := OpenRotating(path, 500, 1)
	if err != nil {
		t.Fatal(err)
	}
	more := numbered(4, 5, 100)
	if _, err := r.WriteLines([]byte(strings.Join(more, ""))); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path, append(old, more...)) // exactly 500 bytes: not rotated yet
	checkAbsent(t, path+".1")
	long := numbered(6, 6, 1200)
	next := numbered(7, 7, 100)
	if _, err := r.WriteLines([]byte(long[0] + next[0])); err != nil {
		t.Fatal(err)
	}
	r.Close()
	checkFile(t, path, next)
	checkFile(t, path+".1", long)
	checkAbsent(t, path+".2")
	if st, _ := os.Stat(path + ".1"); st.Mode().Perm() != FileMode&^umask() {
		t.Errorf("the long line's file has mode %v", st.Mode().Perm())
	}

	path = filepath.Join(dir, "nokeep")
	if r, err = OpenRotating(path, 4096, 0); err != nil {
		t.Fatal(err)
	}
	lines := numbered(1, 50, 100) // 5000 bytes: 40 in the first file, 10 in the second
	r.WriteLines([]byte(strings.Join(lines, "")))
	r.Close()
	checkFile(t, path, lines[40:])
	checkAbsent(t, path+".1")
}

// TestRotatingFileDevice: a FILE that is not a regular file is written,
// never renamed.
func TestRotatingFileDevice(t *testing.T) {
	r, err := OpenRotating("/dev/null", 4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n, err := r.WriteLines([]byte(strings.Join(numbered(1, 100, 100), ""))); n != 10000 || err != nil {
		t.Fatalf("WriteLines = %d, %v", n, err)
	}
	if _, err := os.Stat("/dev/null.1"); err == nil {
		t.Fatal("/dev/null was rotated")
	}
	if _, err := OpenRotating(t.TempDir(), 0, 0); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("a directory: %v", err)
	}
}

// blockingWriter holds every write until it gets a token on release (or
// release is closed), and fails writes while full is set.
type blockingWriter struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	entered  chan struct{} // a write began
	returned chan struct{} // a write returned
	release  chan struct{}
	full     bool
	closed   bool
}

func newBlockingWriter() *blockingWriter {
	return &blockingWriter{entered: make(chan struct{}, 100), returned: make(chan struct{}, 100), release: make(chan struct{})}
}

func (w *blockingWriter) WriteLines(b []byte) (int, error) {
	w.entered <- struct{}{}
	<-w.release
	defer func() { w.returned <- struct{}{} }()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.full {
		return 0, syscall.ENOSPC
	}
	return w.buf.Write(b)
}

// step lets one write through and waits for it to return.
func (w *blockingWriter) step() {
	w.release <- struct{}{}
	<-w.returned
}

func (w *blockingWriter) Close() error { w.closed = true; return nil }

func (w *blockingWriter) lines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.buf.String()
	return strings.SplitAfter(s, "\n")[:strings.Count(s, "\n")]
}

var (
	lostTime      = regexp.MustCompile(`^\{"time":"[^"]*","event_type":"lost"`)
	fixedLostTime = `{"time":"` + fixedTime.Format(timeLayout) + `","event_type":"lost"`
)

func lostLine(n uint64, why event.LossReason) string {
	return string(appendLostJSON(nil, n, why, fixedTime))
}

// TestFileSinkBlockedWriterDrops: with a writer stuck in a write and a
// queue of one chunk, the sink never waits: the chunk after the queued
// one is dropped, its events counted and reported in band (output_full)
// before the next records, and a kernel loss notice it held is carried
// over, not lost.
func TestFileSinkBlockedWriterDrops(t *testing.T) {
	w := newBlockingWriter()
	var diag bytes.Buffer
	f := newFile(w, FileOptions{Path: "f", QueueBytes: chunkSize}, &diag)
	e := v4Connect()
	line := string(appendEventJSON(nil, e, nil))
	perChunk := (chunkSize + len(line) - 1) / len(line) // events that fill a chunk

	send := func(n int) {
		for range n {
			if err := f.Event(e); err != nil {
				t.Fatal(err)
			}
		}
	}
	start := time.Now()
	send(perChunk) // chunk 1: handed to the writer, which blocks in it
	<-w.entered
	send(perChunk) // chunk 2: queued
	if err := f.Lost(7, event.RingBufferFull, fixedTime); err != nil {
		t.Fatal(err)
	}
	// Chunk 3, with the kernel's loss notice: no room in the queue, so
	// dropped when full.
	n3 := (chunkSize - len(lostLine(7, event.RingBufferFull)) + len(line) - 1) / len(line)
	send(n3)
	send(3) // chunk 4 begins with the losses
	if d := time.Since(start); d > time.Second {
		t.Errorf("the sink waited %v for a blocked writer", d)
	}
	if f.Dropped() != uint64(n3) {
		t.Fatalf("dropped %d, want %d", f.Dropped(), n3)
	}
	close(w.release)
	if err := f.Finish(); err != nil {
		t.Fatal(err)
	}
	got := w.lines()
	var want []string
	for range 2 * perChunk {
		want = append(want, line)
	}
	// The losses come in reason order: ring_buffer_full before output_full.
	want = append(want, lostLine(7, event.RingBufferFull), lostLine(uint64(n3), event.OutputFull))
	for range 3 {
		want = append(want, line)
	}
	if len(got) != len(want) {
		t.Fatalf("%d lines written, want %d; last %q", len(got), len(want), got[len(got)-4:])
	}
	for i := range want {
		if g := lostTime.ReplaceAllString(got[i], fixedLostTime); g != want[i] { // notices carried over have the time they were written
			t.Fatalf("line %d: %q\nwant %q", i, got[i], want[i])
		}
	}
	if want := "tuxscope: " + event.OutputFull.Describe(uint64(n3)) + "\n"; diag.String() != want {
		t.Errorf("diag %q, want %q", diag.String(), want)
	}
	if !w.closed {
		t.Error("the writer was not closed")
	}
}

// TestFileSinkWriteErrors: a failed write (a full disk) is said on diag
// once, its records counted and reported in band (output_error) by the
// next write that succeeds, with the kernel loss it held; Finish returns
// the count, for exit 1.
func TestFileSinkWriteErrors(t *testing.T) {
	w := newBlockingWriter()
	w.full = true
	var diag bytes.Buffer
	f := newFile(w, FileOptions{Path: "f"}, &diag)
	e := v4Connect()
	line := string(appendEventJSON(nil, e, nil))
	for range 5 {
		f.Event(e)
	}
	f.Lost(2, event.ConnTableFull, fixedTime)
	f.Flush()
	w.step() // chunk 1 fails
	f.Event(e)
	f.Flush()
	w.step() // the carried-over loss notice fails
	w.step() // chunk 2 fails
	w.mu.Lock()
	w.full = false
	w.mu.Unlock()
	f.Event(e)
	close(w.release)
	err := f.Finish()
	if err == nil || !strings.Contains(err.Error(), "6 records not written") || !errors.Is(*f.w.firstErr.Load(), syscall.ENOSPC) {
		t.Fatalf("Finish: %v", err)
	}
	want := []string{lostLine(2, event.ConnTableFull), lostLine(6, event.OutputError), line}
	got := w.lines()
	if len(got) != len(want) {
		t.Fatalf("written %q, want %q", got, want)
	}
	for i := range want {
		if g := lostTime.ReplaceAllString(got[i], fixedLostTime); g != want[i] {
			t.Errorf("line %d: %q, want %q", i, got[i], want[i])
		}
	}
	if n := strings.Count(diag.String(), "no space left on device"); n != 1 {
		t.Errorf("diag said the error %d times: %q", n, diag.String())
	}
}

// TestFileSinkDevFull: a real ENOSPC, from /dev/full.
func TestFileSinkDevFull(t *testing.T) {
	var diag bytes.Buffer
	f, err := OpenFile(FileOptions{Path: "/dev/full", MaxSize: 4096, Keep: 2}, &diag)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		f.Event(v4Connect())
	}
	f.Lost(1, event.RingBufferFull, fixedTime)
	err = f.Finish()
	if err == nil || err.Error() != "--output /dev/full: 3 records not written to the --output file: writing it failed (first: write /dev/full: no space left on device)" {
		t.Fatalf("Finish: %v", err)
	}
	if want := "tuxscope: " + event.RingBufferFull.Describe(1) + "; not reported in the --output file\n"; !strings.Contains(diag.String(), want) {
		t.Errorf("diag %q lacks %q", diag.String(), want)
	}
}

// TestFileSinkStalledFinish: a writer stuck for good does not hang the
// exit: Finish gives up after FinishWait, with an error.
func TestFileSinkStalledFinish(t *testing.T) {
	w := newBlockingWriter()
	defer close(w.release)
	f := newFile(w, FileOptions{Path: "f", FinishWait: 50 * time.Millisecond}, &bytes.Buffer{})
	f.Event(v4Connect())
	f.Flush()
	start := time.Now()
	err := f.Finish()
	if err == nil || !strings.Contains(err.Error(), "did not finish within 50ms") {
		t.Fatalf("Finish: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Finish took %v", d)
	}
}

// TestRotatingFileFullDisk: on a tmpfs of 8 KiB, a write that runs out of
// room is cut back to the last whole line, and WriteLines says how much
// of it is in the file (root, to mount the tmpfs).
func TestRotatingFileFullDisk(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tuxscope-test", dir, "tmpfs", 0, "size=8k,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): needs root", err)
	}
	defer syscall.Unmount(dir, syscall.MNT_DETACH)
	path := filepath.Join(dir, "f")
	r, err := OpenRotating(path, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	lines := numbered(1, 100, 100)
	for i, want := range []struct {
		from, to, n int
		err         error
	}{
		{0, 30, 3000, nil},
		{30, 60, 3000, nil},
		{60, 90, 0, syscall.ENOSPC}, // 9000 bytes do not fit in 8192: cut back to 6000
		{60, 80, 2000, nil},         // 8000 do
	} {
		n, err := r.WriteLines([]byte(strings.Join(lines[want.from:want.to], "")))
		if n != want.n || !errors.Is(err, want.err) || (err == nil) != (want.err == nil) {
			t.Fatalf("write %d: WriteLines = %d, %v; want %d, %v", i, n, err, want.n, want.err)
		}
		if i == 2 {
			checkFile(t, path, lines[:60])
		}
	}
	checkFile(t, path, lines[:80])
}

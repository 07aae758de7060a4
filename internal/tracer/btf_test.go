package tracer

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// --btf takes only a regular file of a sane size, and says why not at
// once: /dev/zero or a FIFO used to be read (or waited on) forever.
func TestLoadKernelBTFRefusesWhatCannotBeBTF(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxBTFBytes + 1); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("not BTF at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{"/dev/zero", "reading kernel BTF from /dev/zero: it is a character device, not a regular file"},
		{fifo, "reading kernel BTF from " + fifo + ": it is a FIFO, not a regular file"},
		{dir, "reading kernel BTF from " + dir + ": it is a directory, not a regular file"},
		{huge, "reading kernel BTF from " + huge + ": 1073741825 bytes, more than a kernel's BTF can be"},
		{garbage, "reading kernel BTF from " + garbage + ": "},
		{filepath.Join(dir, "missing"), "reading kernel BTF from " + filepath.Join(dir, "missing") + ": open "},
	} {
		start := time.Now()
		_, err := loadKernelBTF(tc.path)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("loadKernelBTF(%s) = %v, want an error starting %q", tc.path, err, tc.want)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("loadKernelBTF(%s) took %v", tc.path, d)
		}
	}
}

// The kernel's own BTF, where it has one, still loads through the same
// checks.
func TestLoadKernelBTFReadsTheKernels(t *testing.T) {
	if _, err := os.Stat(KernelBTFPath); err != nil {
		t.Skipf("this kernel exposes no BTF: %v", err)
	}
	spec, err := loadKernelBTF("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spec.AnyTypeByName("tcp_sock"); err != nil {
		t.Errorf("kernel BTF has no tcp_sock: %v", err)
	}
}

package hosts

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeProc lays out dir/PID/ns/mnt (a file whose inode stands for the
// namespace) and dir/PID/root/etc/hosts, as /proc shows them.
type fakeProc struct {
	t   *testing.T
	dir string
}

// process makes pid a process in namespace ns (a directory name: the
// same ns, the same inode), with root as its root directory.
func (p fakeProc) process(pid int, ns, root string) {
	d := filepath.Join(p.dir, strconv.Itoa(pid))
	must(p.t, os.MkdirAll(filepath.Join(d, "ns"), 0o755))
	nsFile := filepath.Join(p.dir, "namespaces", ns)
	must(p.t, os.MkdirAll(filepath.Dir(nsFile), 0o755))
	if _, err := os.Stat(nsFile); err != nil {
		must(p.t, os.WriteFile(nsFile, nil, 0o644))
	}
	must(p.t, os.Link(nsFile, filepath.Join(d, "ns", "mnt")))
	must(p.t, os.Symlink(root, filepath.Join(d, "root")))
}

func (p fakeProc) exit(pid int) { must(p.t, os.RemoveAll(filepath.Join(p.dir, strconv.Itoa(pid)))) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeHosts(t *testing.T, root, text string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "etc", "hosts"), []byte(text), 0o644))
}

func TestViewPerNamespace(t *testing.T) {
	dir := t.TempDir()
	p := fakeProc{t, filepath.Join(dir, "proc")}
	hostRoot, ctrRoot := filepath.Join(dir, "host"), filepath.Join(dir, "ctr")
	writeHosts(t, hostRoot, "198.51.100.1 host-view.test\n127.0.0.1 localhost\n::1 localhost\n127.0.1.1 box\n")
	writeHosts(t, ctrRoot, "198.51.100.1 ctr-view.test ctr\n")
	p.process(10, "host", hostRoot)
	p.process(11, "host", hostRoot)
	p.process(20, "ctr", ctrRoot)
	v := newView(p.dir)
	a := netip.MustParseAddr("198.51.100.1")
	const s = uint64(1e9)
	if got := v.Name(10, 0, a, 1*s); !slices.Equal(got, []string{"host-view.test"}) {
		t.Errorf("host process: %q", got)
	}
	if got := v.Name(20, 0, a, 1*s); !slices.Equal(got, []string{"ctr-view.test", "ctr"}) {
		t.Errorf("container process: %q", got)
	}
	if got := v.Name(11, 0, netip.MustParseAddr("198.51.100.2"), 1*s); got != nil {
		t.Errorf("an address not in the file: %q", got)
	}
	for _, lo := range []string{"127.0.0.1", "::1", "::ffff:127.0.0.1"} {
		if got := v.Name(10, 0, netip.MustParseAddr(lo), 1*s); got != nil {
			t.Errorf("%s: %q, want none", lo, got)
		}
	}
	if got := v.Name(10, 0, netip.MustParseAddr("127.0.1.1"), 1*s); !slices.Equal(got, []string{"box"}) {
		t.Errorf("127.0.1.1: %q", got)
	}
	if v.Namespaces() != 2 {
		t.Errorf("%d namespaces cached, want 2 (10 and 11 share one)", v.Namespaces())
	}

	// A change shows after the once-a-second recheck, not before.
	writeHosts(t, ctrRoot, "198.51.100.1 changed.test\n")
	if got := v.Name(20, 0, a, 1*s+s/2); !slices.Equal(got, []string{"ctr-view.test", "ctr"}) {
		t.Errorf("within the second: %q", got)
	}
	if got := v.Name(20, 0, a, 2*s+1); !slices.Equal(got, []string{"changed.test"}) {
		t.Errorf("after the recheck: %q", got)
	}

	// A process gone from /proc: its namespace's file as last read, while
	// its namespace is known; no name for one never seen.
	p.exit(20)
	if got := v.Name(20, 0, a, 2*s+2); !slices.Equal(got, []string{"changed.test"}) {
		t.Errorf("exited process: %q", got)
	}
	if got := v.Name(99, 0, a, 2*s+2); got != nil {
		t.Errorf("a process never seen: %q", got)
	}

	// Appending to the names copies: the table is not the caller's.
	got := v.Name(10, 0, a, 3*s)
	_ = append(got, "x")
	if again := v.Name(10, 0, a, 3*s); !slices.Equal(again, []string{"host-view.test"}) {
		t.Errorf("after an append: %q", again)
	}
}

// An absolute symlink at /etc/hosts resolves inside the process's root,
// not tuxscope's; a FIFO there is not read (it would block).
func TestViewResolvesInRoot(t *testing.T) {
	dir := t.TempDir()
	p := fakeProc{t, filepath.Join(dir, "proc")}
	root := filepath.Join(dir, "ctr")
	must(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "run"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "run", "hosts"), []byte("198.51.100.1 inside.test\n"), 0o644))
	must(t, os.Symlink("/run/hosts", filepath.Join(root, "etc", "hosts")))
	p.process(30, "ctr", root)
	v := newView(p.dir)
	if got := v.Name(30, 0, netip.MustParseAddr("198.51.100.1"), 1); !slices.Equal(got, []string{"inside.test"}) {
		t.Errorf("symlinked hosts: %q", got)
	}

	fifoRoot := filepath.Join(dir, "fifo")
	must(t, os.MkdirAll(filepath.Join(fifoRoot, "etc"), 0o755))
	must(t, unix.Mkfifo(filepath.Join(fifoRoot, "etc", "hosts"), 0o644))
	p.process(31, "fifo", fifoRoot)
	if got := v.Name(31, 0, netip.MustParseAddr("198.51.100.1"), 1); got != nil || v.Unreadable != 1 || v.Err == nil {
		t.Errorf("a FIFO: %q, unreadable %d (%v)", got, v.Unreadable, v.Err)
	}
}

func TestViewBounds(t *testing.T) {
	dir := t.TempDir()
	p := fakeProc{t, filepath.Join(dir, "proc")}
	v := newView(p.dir)
	v.limits.spaces = 3
	a := netip.MustParseAddr("198.51.100.1")
	for i := range 5 {
		root := filepath.Join(dir, "r"+strconv.Itoa(i))
		writeHosts(t, root, "198.51.100.1 n"+strconv.Itoa(i)+".test\n# bad line\nbad line\n")
		p.process(100+i, "ns"+strconv.Itoa(i), root)
		if got := v.Name(uint32(100+i), 0, a, 1); len(got) != 1 {
			t.Fatalf("ns %d: %q", i, got)
		}
	}
	if v.Namespaces() != 3 || v.Evicted != 2 || v.Skipped != 5 {
		t.Errorf("%d namespaces, %d evicted, %d skipped; want 3, 2, 5", v.Namespaces(), v.Evicted, v.Skipped)
	}
	// The bytes bound: one table alone may exceed it, and stays.
	v.limits.bytes = 1
	if got := v.Name(100, 0, a, 2e9); !slices.Equal(got, []string{"n0.test"}) || v.Namespaces() != 1 || v.bytes != v.spaces[v.order.Front().Value.(*namespace).ino].table.Bytes {
		t.Errorf("past the bytes bound: %q, %d namespaces, %d bytes", got, v.Namespaces(), v.bytes)
	}
}

// What naming costs an event: cached (the common case), and when the
// once-a-second look at the process and its file is due (the file
// unchanged). The process is this one, through the real /proc.
func BenchmarkView(b *testing.B) {
	a := netip.MustParseAddr("198.51.100.1")
	pid := uint32(os.Getpid())
	b.Run("cached", func(b *testing.B) {
		v := New()
		v.Name(pid, 0, a, 1)
		b.ReportAllocs()
		for b.Loop() {
			v.Name(pid, 0, a, 2)
		}
	})
	b.Run("recheck", func(b *testing.B) {
		v := New()
		now := uint64(1)
		v.Name(pid, 0, a, now)
		b.ReportAllocs()
		for b.Loop() {
			now += recheckNs
			v.Name(pid, 0, a, now)
		}
	})
}

// A process gone before it was seen is placed by its cgroup, when every
// process seen of that cgroup was in one namespace; else it gets nothing.
func TestViewCgroupHint(t *testing.T) {
	dir := t.TempDir()
	p := fakeProc{t, filepath.Join(dir, "proc")}
	hostRoot, ctrRoot := filepath.Join(dir, "host"), filepath.Join(dir, "ctr")
	writeHosts(t, hostRoot, "198.51.100.1 host-view.test\n")
	writeHosts(t, ctrRoot, "198.51.100.1 ctr-view.test\n")
	p.process(40, "ctr", ctrRoot)
	p.process(50, "host", hostRoot)
	p.process(51, "ctr", ctrRoot)
	v := newView(p.dir)
	a := netip.MustParseAddr("198.51.100.1")
	const ctrCgroup, mixedCgroup = 500, 600
	v.Name(40, ctrCgroup, a, 1)
	v.Name(50, mixedCgroup, a, 1)
	v.Name(51, mixedCgroup, a, 1)
	if got := v.Name(41, ctrCgroup, a, 2); !slices.Equal(got, []string{"ctr-view.test"}) {
		t.Errorf("gone, in the container's cgroup: %q", got)
	}
	if got := v.Name(52, mixedCgroup, a, 2); got != nil {
		t.Errorf("gone, in a cgroup seen in two namespaces: %q", got)
	}
	if got := v.Name(53, 700, a, 2); got != nil {
		t.Errorf("gone, in a cgroup never seen: %q", got)
	}
}

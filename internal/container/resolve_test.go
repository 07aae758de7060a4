package container

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tuxscope/tuxscope/internal/event"
)

// A tree of real directories stands for the cgroup2 mount (their inodes
// are the ids), and files for /proc/PID/cgroup.
func testResolver(t *testing.T) (r *Resolver, ino func(string) uint64, proc func(pid int, content string)) {
	root, procDir := t.TempDir(), t.TempDir()
	r = &Resolver{Root: root, MountRoot: "/", Proc: procDir}
	ino = func(rel string) uint64 {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return inode(p)
	}
	proc = func(pid int, content string) {
		d := filepath.Join(procDir, strconv.Itoa(pid))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "cgroup"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return
}

func TestResolverByID(t *testing.T) {
	r, ino, proc := testResolver(t)
	scope := "/tuxscope-test.slice/docker-" + id + ".scope"
	cg := ino(scope)
	// The pid's v2 line names the directory: no walk needed.
	proc(41, "0::"+scope+"\n")
	e := event.Event{PID: 41, CgroupID: cg, TimestampNs: 1e9}
	r.Enrich(&e)
	if e.Cgroup != scope || e.ContainerID != id || e.Runtime != Docker || e.PodUID != "" || e.ContainerName != "" {
		t.Fatalf("got %q %q %q %q %q", e.Cgroup, e.ContainerID, e.Runtime, e.PodUID, e.ContainerName)
	}
	if r.Walks != 0 {
		t.Errorf("%d walks, want 0", r.Walks)
	}
	// A process gone (no /proc entry): the walk finds the id, once; the
	// next event is a cache hit.
	pod := "/kubepods/burstable/pod" + uid + "/" + id
	cg2 := ino(pod)
	for range 3 {
		e = event.Event{PID: 42, CgroupID: cg2, TimestampNs: 2e9}
		r.Enrich(&e)
		if e.Cgroup != pod || e.ContainerID != id || e.Runtime != Containerd || e.PodUID != uid {
			t.Fatalf("walks %d %v got %q %q %q %q", r.Walks, r.byID, e.Cgroup, e.ContainerID, e.Runtime, e.PodUID)
		}
	}
	if r.Walks != 1 {
		t.Errorf("%d walks, want 1", r.Walks)
	}
	// An unknown id: one walk at most per WalkEvery, then nothing.
	clock := time.Unix(100, 0)
	r.now = func() time.Time { return clock }
	r.lastWalk = time.Time{}
	for range 3 {
		e = event.Event{PID: 43, CgroupID: 1 << 60, TimestampNs: 3e9}
		r.Enrich(&e)
		if e.Cgroup != "" || e.Runtime != "" {
			t.Fatalf("unknown id got %q %q", e.Cgroup, e.Runtime)
		}
	}
	if r.Walks != 2 {
		t.Errorf("%d walks, want 2", r.Walks)
	}
	// A cgroup made after the last walk is found by the next one due.
	late := "/system.slice/late.service"
	cg3 := ino(late)
	e = event.Event{PID: 44, CgroupID: cg3, TimestampNs: 4e9}
	r.Enrich(&e)
	if e.Cgroup != "" {
		t.Fatalf("before a walk is due got %q", e.Cgroup)
	}
	clock = clock.Add(WalkEvery)
	r.Enrich(&e)
	if e.Cgroup != late || e.ContainerName != "late.service" || r.Walks != 3 {
		t.Fatalf("after WalkEvery got %q %q, %d walks", e.Cgroup, e.ContainerName, r.Walks)
	}
}

// Where the v2 cgroup is the root (a hybrid host), the v1 path tells, and
// is trusted for PIDTTL.
func TestResolverHybrid(t *testing.T) {
	r, ino, proc := testResolver(t)
	rootID := ino("/")
	v1 := "/system.slice/docker-" + id + ".scope"
	proc(50, "4:memory:/docker/"+id+"\n1:name=systemd:"+v1+"\n0::/\n")
	e := event.Event{PID: 50, CgroupID: rootID, TimestampNs: 1e9}
	r.Enrich(&e)
	if e.Cgroup != v1 || e.ContainerID != id || e.Runtime != Docker {
		t.Fatalf("got %q %q %q", e.Cgroup, e.ContainerID, e.Runtime)
	}
	// The miss read /proc/50/cgroup once: for the id and the v1 path both.
	if r.ProcReads != 1 {
		t.Errorf("%d reads of /proc/50/cgroup for the first event, want 1", r.ProcReads)
	}
	// Cached: a change within PIDTTL is not seen, after it is.
	proc(50, "5:memory:/system.slice/nginx.service\n0::/\n")
	e = event.Event{PID: 50, CgroupID: rootID, TimestampNs: 2e9}
	r.Enrich(&e)
	if e.Cgroup != v1 {
		t.Fatalf("within the TTL got %q", e.Cgroup)
	}
	e = event.Event{PID: 50, CgroupID: rootID, TimestampNs: 1e9 + uint64(PIDTTL)}
	r.Enrich(&e)
	if e.Cgroup != "/system.slice/nginx.service" || e.Runtime != Systemd || e.ContainerName != "nginx.service" {
		t.Fatalf("after the TTL got %q %q %q", e.Cgroup, e.Runtime, e.ContainerName)
	}
	// Root everywhere: the cgroup is "/", nothing else.
	proc(51, "1:name=systemd:/\n0::/\n")
	e = event.Event{PID: 51, CgroupID: rootID, TimestampNs: 1e9}
	r.Enrich(&e)
	if e.Cgroup != "/" || e.Runtime != "" {
		t.Fatalf("root got %q %q", e.Cgroup, e.Runtime)
	}
	// No cgroup2 mount (pure v1): /proc alone.
	r2 := &Resolver{Proc: r.Proc}
	e = event.Event{PID: 50, CgroupID: 1, TimestampNs: 1e9}
	r2.Enrich(&e)
	if e.Cgroup != "/system.slice/nginx.service" {
		t.Fatalf("v1 only got %q", e.Cgroup)
	}
}

func TestResolverCachesAreBounded(t *testing.T) {
	r, _, _ := testResolver(t)
	r.now = func() time.Time { return time.Unix(0, 0) } // no walks after the first
	for i := range 3 * MaxEntries {
		r.Lookup(uint64(1<<40+i), uint32(1e6+i), 1)
		if len(r.byID) > MaxEntries || len(r.byPID) > MaxEntries {
			t.Fatalf("after %d lookups: %d ids, %d pids", i+1, len(r.byID), len(r.byPID))
		}
	}
}

func TestCgroup2Mount(t *testing.T) {
	mi := "30 1 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n" +
		"40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
	if mp, root := Cgroup2Mount(strings.NewReader(mi)); mp != "/sys/fs/cgroup/unified" || root != "/" {
		t.Errorf("hybrid: %q %q", mp, root)
	}
	mi = "28 22 0:25 /../.. /sys/fs/cgroup\\040x rw - cgroup2 cgroup2 rw,nsdelegate\n"
	if mp, root := Cgroup2Mount(strings.NewReader(mi)); mp != "/sys/fs/cgroup x" || root != "/../.." {
		t.Errorf("escaped: %q %q", mp, root)
	}
	if mp, _ := Cgroup2Mount(strings.NewReader("bad\n")); mp != "" {
		t.Errorf("none: %q", mp)
	}
}

// The cost per event once cached: a v2 id that names the container, and a
// hybrid host's root id with the pid's v1 path.
func BenchmarkEnrichHit(b *testing.B) {
	root, procDir := b.TempDir(), b.TempDir()
	r := &Resolver{Root: root, MountRoot: "/", Proc: procDir}
	p := filepath.Join(root, "system.slice", "docker-"+id+".scope")
	if err := os.MkdirAll(p, 0o755); err != nil {
		b.Fatal(err)
	}
	os.MkdirAll(filepath.Join(procDir, "7"), 0o755)
	os.WriteFile(filepath.Join(procDir, "7", "cgroup"), []byte("1:name=systemd:/docker/"+id+"\n0::/\n"), 0o644)
	for _, c := range []struct {
		name string
		id   uint64
	}{{"v2", inode(p)}, {"v1", inode(root)}} {
		b.Run(c.name, func(b *testing.B) {
			e := event.Event{PID: 7, CgroupID: c.id, TimestampNs: 1e9}
			r.Enrich(&e)
			if e.ContainerID != id {
				b.Fatalf("got %q", e.ContainerID)
			}
			b.ReportAllocs()
			for b.Loop() {
				r.Enrich(&e)
			}
		})
	}
}

// A pid's first event on a hybrid host: one read of /proc/PID/cgroup.
func BenchmarkProcCgroupRead(b *testing.B) {
	r := &Resolver{Proc: "/proc"}
	pid := uint32(os.Getpid())
	for b.Loop() {
		r.procCgroup(pid)
	}
}

// A cgroup2 mount whose directory is the hierarchy's root shows the
// kernel's paths, even where mountinfo (in a cgroup namespace) says its
// root is /../../..; a mount of a cgroup below it keeps its root.
func TestWholeTree(t *testing.T) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Skip(err)
	}
	mnt, root := Cgroup2Mount(f)
	f.Close()
	if mnt == "" || root != "/" {
		t.Skipf("no cgroup2 mount of the whole hierarchy here (%q %q)", mnt, root)
	}
	if got := wholeTree(mnt, "/../../.."); got != "/" {
		t.Errorf("the hierarchy's root seen from a cgroup namespace: %q, want /", got)
	}
	if got := wholeTree(t.TempDir(), "/kubepods/pod1"); got != "/kubepods/pod1" {
		t.Errorf("a directory that is not the root: %q", got)
	}
	if got := wholeTree("", "/x"); got != "/x" {
		t.Errorf("no mount: %q", got)
	}
}

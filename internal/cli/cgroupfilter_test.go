package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tuxscope/tuxscope/internal/container"
	"github.com/tuxscope/tuxscope/internal/filter"
	"github.com/tuxscope/tuxscope/internal/tracer"
)

// fakeSetter records what the kernel filter was set to.
type fakeSetter struct {
	ids   []uint64
	level int
	calls int
}

func (f *fakeSetter) SetCgroupFilter(ids []uint64, level int) error {
	f.ids, f.level = slices.Clone(ids), level
	f.calls++
	return nil
}

// fakeNamer is a CRI runtime's cache: names by container id or pod uid.
type fakeNamer map[string]container.Names

func (f fakeNamer) Names(id, uid string) (container.Names, bool) {
	if n, ok := f[id]; ok && id != "" {
		return n, true
	}
	n, ok := f[uid]
	return n, ok && uid != ""
}

func ino(t *testing.T, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestCgroupFilterSets(t *testing.T) {
	root := t.TempDir()
	id := strings.Repeat("ab", 32)
	cid := strings.Repeat("cd", 32)
	uid := "0b7e4b6e-1f0c-4c2b-9d1a-2f3e4d5c6b7a"
	dirs := map[string]string{
		"docker": "/system.slice/docker-" + id + ".scope",
		"pod":    "/kubepods/burstable/pod" + uid,
		"ctr":    "/kubepods/burstable/pod" + uid + "/" + cid,
		"c":      "/a/b/c",
		"bc":     "/a/bc",
		"a":      "/a",
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	in := func(name string) uint64 { return ino(t, filepath.Join(root, dirs[name])) }
	namer := fakeNamer{
		cid: {Pod: "web-1", Namespace: "shop", Container: "nginx"},
		uid: {Pod: "web-1", Namespace: "shop"},
	}
	res := &container.Resolver{Root: root, MountRoot: "/", Namer: namer}
	tests := []struct {
		name  string
		spec  filter.Spec
		ids   []uint64
		level int
		why   string
	}{
		{"container id prefix", filter.Spec{Containers: []string{id[:12]}}, []uint64{in("docker")}, 2, ""},
		{"container name from the runtime", filter.Spec{Containers: []string{"nginx"}}, []uint64{in("ctr")}, 4, ""},
		{"pod: its cgroup, not each container's", filter.Spec{Pods: []string{"web-1"}}, []uint64{in("pod")}, 3, ""},
		{"namespace", filter.Spec{Namespaces: []string{"shop"}}, []uint64{in("pod")}, 3, ""},
		{"cgroup: the directory only", filter.Spec{Cgroups: []string{"/a"}}, []uint64{in("a")}, 1, ""},
		{"cgroups", filter.Spec{Cgroups: []string{"/a/b/c", "/a/bc"}}, []uint64{in("c"), in("bc")}, 2, ""},
		{"cgroup and container", filter.Spec{Cgroups: []string{"/kubepods"}, Containers: []string{cid[:8]}}, []uint64{in("ctr")}, 4, ""},
		{"nothing matches", filter.Spec{Cgroups: []string{"/a"}, Containers: []string{id[:12]}}, nil, 0, "no cgroup matches yet"},
		{"pod unknown", filter.Spec{Pods: []string{"db-0"}}, nil, 0, "no cgroup matches yet"},
	}
	for _, tt := range tests {
		set := &fakeSetter{}
		var diag bytes.Buffer
		c := newCgroupFilter(&tt.spec, res, nil, set, &diag)
		if err := c.refresh(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(set.ids)
		slices.Sort(tt.ids)
		if !slices.Equal(set.ids, tt.ids) || set.level != tt.level || c.on != (tt.ids != nil) {
			t.Errorf("%s: kernel set %v level %d on %v, want %v level %d", tt.name, set.ids, set.level, c.on, tt.ids, tt.level)
		}
		if tt.why == "" && !strings.Contains(diag.String(), "in the kernel") || tt.why != "" && !strings.Contains(diag.String(), "in user space only: "+tt.why) {
			t.Errorf("%s: said %q, want the reason %q", tt.name, diag.String(), tt.why)
		}
		// Said once: a refresh that changes nothing says nothing.
		diag.Reset()
		c.refresh()
		if diag.Len() != 0 || set.calls != 2 {
			t.Errorf("%s: second refresh said %q (%d calls)", tt.name, diag.String(), set.calls)
		}
	}
}

// A container started later: its cgroup appears, the next refresh puts
// it in the kernel's set and says so; when it goes, the filter goes back
// to user space.
func TestCgroupFilterRefresh(t *testing.T) {
	root := t.TempDir()
	id := strings.Repeat("12", 32)
	res := &container.Resolver{Root: root, MountRoot: "/"}
	spec := filter.Spec{Containers: []string{id[:12]}}
	set := &fakeSetter{}
	var diag bytes.Buffer
	c := newCgroupFilter(&spec, res, nil, set, &diag)
	c.refresh()
	dir := filepath.Join(root, "libpod_parent", "libpod-"+id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c.refresh()
	if !c.on || !slices.Equal(set.ids, []uint64{ino(t, dir)}) {
		t.Errorf("after the container started: on %v, set %v", c.on, set.ids)
	}
	os.Remove(dir)
	c.refresh()
	if c.on || set.ids != nil {
		t.Errorf("after it went: on %v, set %v", c.on, set.ids)
	}
	want := "tuxscope: filtering by container in user space only: no cgroup matches yet\n" +
		"tuxscope: filtering by container in the kernel (by cgroup) and in user space\n" +
		"tuxscope: filtering by container in user space only: no cgroup matches yet\n"
	if diag.String() != want {
		t.Errorf("said %q, want %q", diag.String(), want)
	}
}

// Where v2 ids cannot say it all, the kernel filter stays off.
func TestCgroupFilterFallback(t *testing.T) {
	id := strings.Repeat("ef", 32)
	t.Run("only in v1", func(t *testing.T) {
		v2, v1 := t.TempDir(), t.TempDir()
		// systemd mirrors its units in both; the runtime made the
		// container's cgroup only in the v1 hierarchies.
		for _, d := range []string{filepath.Join(v2, "system.slice/a.service"), filepath.Join(v1, "system.slice/a.service"), filepath.Join(v1, "docker", id)} {
			os.MkdirAll(d, 0o755)
		}
		res := &container.Resolver{Root: v2, MountRoot: "/"}
		set := &fakeSetter{}
		var diag bytes.Buffer
		for _, spec := range []filter.Spec{{Containers: []string{id[:12]}}, {Cgroups: []string{"/system.slice"}}} {
			diag.Reset()
			c := newCgroupFilter(&spec, res, []string{v1}, set, &diag)
			c.refresh()
			if spec.Cgroups != nil {
				// Nothing of the selection is only in v1: the kernel filters.
				if !c.on {
					t.Errorf("--cgroup /system.slice: kernel filter off: %s", diag.String())
				}
				continue
			}
			if c.on || !strings.Contains(diag.String(), "/docker/"+id+" is only in the v1 hierarchies") {
				t.Errorf("container only in v1: on %v, said %q", c.on, diag.String())
			}
		}
	})
	t.Run("more than the set holds", func(t *testing.T) {
		root := t.TempDir()
		namer := fakeNamer{}
		for i := 0; i <= tracer.MaxCgroupFilter; i++ {
			cid := fmt.Sprintf("%064x", i+1)
			namer[cid] = container.Names{Pod: fmt.Sprintf("web-%d", i), Namespace: "shop", Container: "web"}
			os.Mkdir(filepath.Join(root, "docker-"+cid+".scope"), 0o755)
		}
		res := &container.Resolver{Root: root, MountRoot: "/", Namer: namer}
		set := &fakeSetter{}
		var diag bytes.Buffer
		c := newCgroupFilter(&filter.Spec{Pods: []string{"web-7"}}, res, nil, set, &diag)
		c.refresh()
		if !c.on || len(set.ids) != 1 {
			t.Errorf("one pod: on %v, %d ids", c.on, len(set.ids))
		}
		// Every container is in the namespace: one more than fits.
		c = newCgroupFilter(&filter.Spec{Namespaces: []string{"shop"}}, res, nil, set, &diag)
		c.refresh()
		if c.on || set.ids != nil || !strings.Contains(diag.String(), fmt.Sprintf("%d cgroups match, more than the kernel's set holds (%d)", tracer.MaxCgroupFilter+1, tracer.MaxCgroupFilter)) {
			t.Errorf("%d containers: on %v, said %q", tracer.MaxCgroupFilter+1, c.on, diag.String())
		}
	})
	t.Run("no cgroup2 mount", func(t *testing.T) {
		set := &fakeSetter{}
		var diag bytes.Buffer
		c := newCgroupFilter(&filter.Spec{Cgroups: []string{"/a"}}, &container.Resolver{}, nil, set, &diag)
		c.refresh()
		if c.on || !strings.Contains(diag.String(), "in user space only: no cgroup2 mount") {
			t.Errorf("on %v, said %q", c.on, diag.String())
		}
	})
}

func TestCheckCgroups(t *testing.T) {
	v2, v1 := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(v2, "a/b"), 0o755)
	os.MkdirAll(filepath.Join(v1, "docker/x"), 0o755)
	res := &container.Resolver{Root: v2, MountRoot: "/"}
	for _, p := range []string{"/", "/a", "/a/b", "/docker/x"} {
		if err := checkCgroups(&filter.Spec{Cgroups: []string{p}}, res, []string{t.TempDir(), v1}); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	err := checkCgroups(&filter.Spec{Cgroups: []string{"/a", "/a/c"}}, res, []string{v1})
	if err == nil || err.Error() != "--cgroup /a/c: no such cgroup" {
		t.Errorf("missing cgroup: %v", err)
	}
}

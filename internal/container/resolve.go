package container

import (
	"bufio"
	"bytes"
	"golang.org/x/sys/unix"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tuxscope/tuxscope/internal/event"
)

// Bounds on the resolver's work and memory.
const (
	// MaxEntries caps each cache (by cgroup id, by pid); a full cache
	// is emptied and refilled from what events bring.
	MaxEntries = 8192
	// MaxWalk caps the directories one walk of the cgroup2 tree visits.
	MaxWalk = 20000
	// WalkEvery is the least time between two walks: ids still unknown
	// meanwhile (a cgroup gone already) are looked up through the pid.
	WalkEvery = time.Second
	// PIDTTL is how long what /proc/PID/cgroup said is trusted (a pid is
	// reused, a process moved), in the events' kernel time.
	PIDTTL = 5 * time.Second
	// maxProcCgroup bounds the read of /proc/PID/cgroup.
	maxProcCgroup = 16 << 10
)

// Resolver is a pipeline enricher: it fills each event's cgroup and what
// Parse finds in it, from the event's cgroup v2 id (the inode of the
// cgroup's directory below the cgroup2 mount) and, where the v2 cgroup is
// the root (a hybrid host whose container lives in the v1 hierarchies)
// or unknown, from /proc/PID/cgroup. A cache hit costs two map lookups; a
// miss costs at most one bounded read of /proc/PID/cgroup and one stat,
// or one bounded walk of the tree, at most one per WalkEvery.
type Resolver struct {
	// Root is the cgroup2 mount ("" if none); MountRoot is the cgroup
	// path it shows (its root in mountinfo, "/" unless tuxscope runs in
	// a cgroup namespace's view of another).
	Root, MountRoot string
	// Proc is procfs' mount, normally /proc.
	Proc string

	byID     map[uint64]*Info
	byPID    map[uint32]pidEntry
	lastWalk time.Time
	now      func() time.Time
	// Walks and WalkedDirs count the tree walks and what they visited,
	// ProcReads the reads of /proc/PID/cgroup.
	Walks, WalkedDirs, ProcReads uint64
	// Namer, if set, names Kubernetes pods and their containers (a CRI
	// runtime's cache, internal/cri).
	Namer Namer
}

// Names are what a container runtime calls a pod and a container in it.
type Names struct {
	Pod, Namespace, Container string
}

// Namer names the container with this id, or its pod by uid (either may
// be ""), from what it already knows: it must not block. ok is false when
// it knows neither.
type Namer interface {
	Names(containerID, podUID string) (n Names, ok bool)
}

type pidEntry struct {
	info *Info
	at   uint64 // event time it was read at
	cgrp uint64 // the cgroup id of the event it was read for
}

// NewResolver finds the cgroup2 mount in /proc/self/mountinfo.
func NewResolver() *Resolver {
	r := &Resolver{Proc: "/proc"}
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		r.Root, r.MountRoot = Cgroup2Mount(io.LimitReader(f, 1<<20))
		f.Close()
	}
	r.MountRoot = wholeTree(r.Root, r.MountRoot)
	return r
}

// wholeTree is the cgroup path a cgroup2 mount shows: "/" when its
// directory is the hierarchy's root (inode 1), whatever mountinfo's root
// field says. In a cgroup namespace (a pod's container, where the host's
// /sys/fs/cgroup is mounted in) that field is relative to the namespace's
// root, e.g. /../../.., and the mount still shows the kernel's paths.
func wholeTree(mnt, root string) string {
	if mnt != "" && root != "/" && inode(mnt) == 1 {
		return "/"
	}
	return root
}

// Cgroup2Mount finds the cgroup2 mount point and its root in mountinfo.
func Cgroup2Mount(mountinfo io.Reader) (mountPoint, root string) {
	sc := bufio.NewScanner(mountinfo)
	for sc.Scan() {
		line := sc.Text()
		sep := strings.Index(line, " - ")
		if sep < 0 {
			continue
		}
		post := strings.Fields(line[sep+3:])
		pre := strings.Fields(line[:sep])
		if len(post) < 1 || post[0] != "cgroup2" || len(pre) < 5 {
			continue
		}
		return unescapeMount(pre[4]), unescapeMount(pre[3])
	}
	return "", ""
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Enrich fills e's container fields.
func (r *Resolver) Enrich(e *event.Event) {
	if in := r.Lookup(e.CgroupID, e.PID, e.TimestampNs); in != nil {
		r.describe(e, *in)
	}
}

// Lookup is what is known of the process pid in cgroup v2 id, at kernel
// time ts; nil if nothing.
func (r *Resolver) Lookup(id uint64, pid uint32, ts uint64) *Info {
	if r.byID == nil {
		r.byID, r.byPID = map[uint64]*Info{}, map[uint32]pidEntry{}
	}
	// /proc/PID/cgroup is read at most once per lookup, and only on a
	// miss: resolveID may need it, then the v1 fallback.
	var (
		procRead bool
		procV2   string
		procV1   string
	)
	proc := func() (v2, v1 string) {
		if !procRead && pid != 0 {
			procV2, procV1 = r.procCgroup(pid)
			procRead = true
		}
		return procV2, procV1
	}
	var in *Info
	if id != 0 && r.Root != "" {
		if in = r.byID[id]; in == nil {
			in = r.resolveID(id, proc)
		}
		if in != nil && in.Cgroup != "/" {
			return in
		}
	}
	// The v2 cgroup is the root, or unknown: the v1 hierarchies tell.
	if pid == 0 {
		return in
	}
	if pe, ok := r.byPID[pid]; ok && pe.cgrp == id && ts-pe.at < uint64(PIDTTL) && ts >= pe.at {
		if pe.info != nil {
			return pe.info
		}
		return in
	}
	v2, v1 := proc()
	var pin *Info
	switch {
	case v1 != "" && (v2 == "" || v2 == "/"):
		pin = intern(Parse(v1))
	case in == nil && v2 != "":
		// The v2 id is unknown (no cgroup2 mount, or a cgroup gone):
		// the process's present v2 cgroup is the best there is.
		pin = intern(Parse(v2))
	}
	if len(r.byPID) >= MaxEntries {
		clear(r.byPID)
	}
	r.byPID[pid] = pidEntry{info: pin, at: ts, cgrp: id}
	if pin != nil {
		return pin
	}
	return in
}

func intern(in Info) *Info {
	if in.Cgroup == "" {
		return nil
	}
	return &in
}

// resolveID finds the directory of cgroup id: first the one
// /proc/PID/cgroup names (proc reads it), then by walking the tree (at most once per
// WalkEvery). An id not found is not remembered: its next event looks
// again (its cgroup may be made after the last walk).
func (r *Resolver) resolveID(id uint64, proc func() (v2, v1 string)) *Info {
	if v2, _ := proc(); v2 != "" {
		if rel, ok := r.relative(v2); ok && inode(filepath.Join(r.Root, rel)) == id {
			return r.put(id, v2)
		}
	}
	now := time.Now
	if r.now != nil {
		now = r.now
	}
	if t := now(); t.Sub(r.lastWalk) >= WalkEvery {
		r.lastWalk = t
		if path, ok := r.walk(id); ok {
			return r.put(id, path)
		}
	}
	return nil
}

// relative turns a cgroup path into one below the mount.
func (r *Resolver) relative(p string) (string, bool) {
	if r.MountRoot == "" || r.MountRoot == "/" {
		return p, true
	}
	if p == r.MountRoot {
		return "/", true
	}
	if strings.HasPrefix(p, r.MountRoot+"/") {
		return p[len(r.MountRoot):], true
	}
	return "", false
}

func (r *Resolver) put(id uint64, path string) *Info {
	if len(r.byID) >= MaxEntries {
		clear(r.byID)
	}
	in := intern(Parse(path))
	r.byID[id] = in
	return in
}

// walk looks for the directory of cgroup id in the cgroup2 tree (at most
// MaxWalk directories) and, while the cache has room, records the others
// it passes, in place of what was unknown.
func (r *Resolver) walk(id uint64) (found string, ok bool) {
	r.Walks++
	n := 0
	_ = filepath.WalkDir(r.Root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		if n++; n > MaxWalk {
			return fs.SkipAll
		}
		ino := inode(p)
		if ino == 0 {
			return nil
		}
		cg := r.cgroupOf(p)
		if ino == id {
			found, ok = cg, true
		} else if _, known := r.byID[ino]; !known && len(r.byID) < MaxEntries {
			r.byID[ino] = intern(Parse(cg))
		}
		return nil
	})
	r.WalkedDirs += uint64(n)
	return found, ok
}

// procCgroup reads /proc/PID/cgroup, bounded.
func (r *Resolver) procCgroup(pid uint32) (v2, v1 string) {
	r.ProcReads++
	f, err := os.Open(r.Proc + "/" + strconv.FormatUint(uint64(pid), 10) + "/cgroup")
	if err != nil {
		return "", ""
	}
	defer f.Close()
	var buf [maxProcCgroup]byte
	n, _ := io.ReadFull(f, buf[:])
	data := buf[:n]
	if n == len(buf) { // cut: drop the partial last line
		if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
			data = data[:i+1]
		}
	}
	return ProcCgroup(data)
}

func inode(p string) uint64 {
	var st unix.Stat_t
	if unix.Stat(p, &st) != nil {
		return 0
	}
	return st.Ino
}

// cgroupOf is the cgroup path of directory p below the cgroup2 mount.
func (r *Resolver) cgroupOf(p string) string {
	rel := strings.TrimPrefix(p, r.Root)
	if rel == "" {
		rel = "/"
	}
	if r.MountRoot != "" && r.MountRoot != "/" {
		return filepath.Join(r.MountRoot, rel)
	}
	return rel
}

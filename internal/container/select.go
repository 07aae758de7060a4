package container

import (
	"bufio"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tuxscope/tuxscope/internal/event"
)

// Selection is what one walk of the cgroup2 tree found for a filter.
type Selection struct {
	IDs []uint64 // cgroup v2 ids of the selected cgroups (none below another)
	// MinLevel is the shallowest selected cgroup's depth below the root
	// (0: the root itself); in a cgroup namespace the kernel's level is
	// deeper still, so it is a lower bound.
	MinLevel int
	// Missing are the roots Select was given that are not in the tree.
	Missing []string
	// Complete is false when the walk stopped at MaxWalk directories:
	// cgroups beyond may be selected too.
	Complete bool
}

// Select walks the cgroup2 tree below each of roots (cgroup paths, as
// /proc/PID/cgroup writes them; "/" for the whole tree), at most MaxWalk
// directories in all, and returns the cgroups match selects: match is
// given an event whose workload fields are filled as Enrich fills them
// for a process in that cgroup. Below a selected cgroup it does not look
// further. It uses only Root, MountRoot and Namer, so it may run beside
// Enrich.
func (r *Resolver) Select(roots []string, match func(e *event.Event) bool) Selection {
	sel := Selection{Complete: true, MinLevel: -1}
	if r.Root == "" {
		sel.Complete = false
		return sel
	}
	n := 0
	for _, root := range roots {
		rel, ok := r.relative(root)
		if !ok {
			sel.Missing = append(sel.Missing, root)
			continue
		}
		start := filepath.Join(r.Root, rel)
		if st, err := os.Stat(start); err != nil || !st.IsDir() {
			sel.Missing = append(sel.Missing, root)
			continue
		}
		_ = filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if n++; n > MaxWalk {
				sel.Complete = false
				return fs.SkipAll
			}
			var e event.Event
			r.describe(&e, Parse(r.cgroupOf(p)))
			if !match(&e) {
				return nil
			}
			if ino := inode(p); ino != 0 {
				sel.IDs = append(sel.IDs, ino)
				if lv := level(strings.TrimPrefix(p, r.Root)); sel.MinLevel < 0 || lv < sel.MinLevel {
					sel.MinLevel = lv
				}
			}
			return fs.SkipDir // what is below is selected with it
		})
	}
	if sel.MinLevel < 0 {
		sel.MinLevel = 0
	}
	return sel
}

// level is a path's depth below the mount: 0 for "/".
func level(rel string) int {
	n := 0
	for _, c := range strings.Split(rel, "/") {
		if c != "" {
			n++
		}
	}
	return n
}

// describe fills e's workload fields from in and the Namer, as Enrich
// does.
func (r *Resolver) describe(e *event.Event, in Info) {
	e.Cgroup, e.ContainerID, e.Runtime, e.PodUID, e.ContainerName = in.Cgroup, in.ContainerID, in.Runtime, in.PodUID, in.Name
	if r.Namer != nil && (in.ContainerID != "" || in.PodUID != "") {
		if n, ok := r.Namer.Names(in.ContainerID, in.PodUID); ok {
			e.Pod, e.Namespace = n.Pod, n.Namespace
			if n.Container != "" {
				e.ContainerName = n.Container
			}
		}
	}
}

// V1Hierarchies lists, from mountinfo, the mount points of the v1
// hierarchies mounted from their root, in the order ProcCgroup prefers
// their paths for a process whose v2 cgroup is the root (name=systemd,
// memory, pids, cpu, cpuset, then the others); none on a v2-only host.
func V1Hierarchies(mountinfo io.Reader) []string {
	type h struct {
		rank int
		mnt  string
	}
	var hs []h
	sc := bufio.NewScanner(mountinfo)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 || g[0] != "cgroup" || f[3] != "/" {
			continue
		}
		rank := 5
		for k, want := range []string{"name=systemd", "memory", "pids", "cpu", "cpuset"} {
			if hasController(g[2], want) {
				rank = k
				break
			}
		}
		hs = append(hs, h{rank, unescapeMount(f[4])})
	}
	slices.SortStableFunc(hs, func(a, b h) int { return a.rank - b.rank })
	out := make([]string, len(hs))
	for i := range hs {
		out[i] = hs[i].mnt
	}
	return out
}

// V1Only walks the v1 hierarchies mounted at v1 (V1Hierarchies), at
// most MaxWalk directories in all, for a cgroup below one of roots that
// match selects and that the cgroup2 tree does not have: a container that
// lives only in the v1 hierarchies, which the kernel's cgroup filter (v2
// ids) cannot see. It returns its path, or "" if none; complete is false
// when the walk stopped at MaxWalk.
func (r *Resolver) V1Only(v1 []string, roots []string, match func(e *event.Event) bool) (path string, complete bool) {
	n := 0
	complete = true
	for _, mnt := range v1 {
		for _, root := range roots {
			if path, complete = r.v1Only(mnt, root, match, &n); path != "" || !complete {
				return path, complete
			}
		}
	}
	return "", true
}

func (r *Resolver) v1Only(v1, root string, match func(e *event.Event) bool, n *int) (path string, complete bool) {
	complete = true
	{
		start := filepath.Join(v1, root)
		_ = filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if *n++; *n > MaxWalk {
				complete = false
				return fs.SkipAll
			}
			cg := strings.TrimPrefix(p, v1)
			if cg == "" {
				cg = "/"
			}
			var e event.Event
			r.describe(&e, Parse(cg))
			if !match(&e) {
				return nil
			}
			if rel, ok := r.relative(cg); ok && r.Root != "" {
				if st, err := os.Stat(filepath.Join(r.Root, rel)); err == nil && st.IsDir() {
					return nil // the v2 tree has it too
				}
			}
			path = cg
			return fs.SkipAll
		})
	}
	return path, complete
}

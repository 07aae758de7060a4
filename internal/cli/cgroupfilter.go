package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/tuxscope/tuxscope/internal/container"
	"github.com/tuxscope/tuxscope/internal/event"
	"github.com/tuxscope/tuxscope/internal/filter"
	"github.com/tuxscope/tuxscope/internal/tracer"
)

// cgroupRefresh is how often the kernel's cgroup set is brought up to
// date with the containers and cgroups that exist.
const cgroupRefresh = time.Second

// cgroupSetter is the tracer's kernel cgroup filter.
type cgroupSetter interface {
	SetCgroupFilter(ids []uint64, minLevel int) error
}

// cgroupFilter keeps the kernel's cgroup filter in step with the
// workload filters (--container, --pod, --namespace, --cgroup): the ids
// of the cgroup2 directories they select, found by walking the tree
// (bounded), refreshed every cgroupRefresh. The kernel then selects a
// task in one of them or below; user space stays the exact test. Where
// a set of v2 ids cannot say it all, the kernel filter is off and user
// space filters alone:
//   - no cgroup matches (yet): nothing to select by, and a container
//     started before the next refresh must not be dropped;
//   - more than tracer.MaxCgroupFilter cgroups match, or the tree is
//     bigger than container.MaxWalk directories;
//   - on a hybrid host, a matching cgroup exists only in a v1 hierarchy
//     (a container the runtime placed only there: its processes' v2
//     cgroup says nothing of it; the resolver names them by their v1
//     path).
//
// Each change of where it filters is said once on stderr.
type cgroupFilter struct {
	spec  *filter.Spec
	res   *container.Resolver
	v1    []string // the v1 hierarchies to check (container.V1Hierarchies)
	tr    cgroupSetter
	diag  io.Writer
	said  string // what was said last
	roots []string
	// on is whether the kernel filter is on now, and with how many ids.
	on  bool
	ids int
}

func newCgroupFilter(spec *filter.Spec, res *container.Resolver, v1 []string, tr cgroupSetter, diag io.Writer) *cgroupFilter {
	c := &cgroupFilter{spec: spec, res: res, v1: v1, tr: tr, diag: diag, roots: spec.Cgroups}
	if len(c.roots) == 0 {
		c.roots = []string{"/"}
	}
	return c
}

// checkCgroups reports the first --cgroup path that is neither in the
// cgroup2 tree nor in one of the v1 hierarchies v1: a typo would
// otherwise select nothing, silently.
func checkCgroups(spec *filter.Spec, res *container.Resolver, v1 []string) error {
	isDir := func(p string) bool {
		st, err := os.Stat(p)
		return err == nil && st.IsDir()
	}
outer:
	for _, p := range spec.Cgroups {
		if res.Root != "" {
			if sel := res.Select([]string{p}, func(*event.Event) bool { return true }); len(sel.Missing) == 0 {
				continue
			}
		}
		for _, mnt := range v1 {
			if isDir(mnt + p) {
				continue outer
			}
		}
		return fmt.Errorf("--cgroup %s: no such cgroup", p)
	}
	return nil
}

// refresh computes the set and sets the kernel filter; an error is the
// tracer's (the map could not be written).
func (c *cgroupFilter) refresh() error {
	ids, level, why := c.compute()
	if why != "" {
		ids = nil
	}
	if err := c.tr.SetCgroupFilter(ids, level); err != nil {
		return err
	}
	c.on, c.ids = ids != nil, len(ids)
	msg := "filtering by " + c.kinds() + " in the kernel (by cgroup) and in user space"
	if why != "" {
		msg = "filtering by " + c.kinds() + " in user space only: " + why
	}
	if msg != c.said {
		fmt.Fprintf(c.diag, "tuxscope: %s\n", msg)
		c.said = msg
	}
	return nil
}

// compute finds the ids to select; why is non-empty when the kernel
// filter must be off.
func (c *cgroupFilter) compute() (ids []uint64, level int, why string) {
	if c.res.Root == "" {
		return nil, 0, "no cgroup2 mount"
	}
	sel := c.res.Select(c.roots, c.spec.MatchWorkload)
	if !sel.Complete {
		return nil, 0, fmt.Sprintf("the cgroup tree has more than %d directories", container.MaxWalk)
	}
	if len(c.v1) > 0 {
		p, complete := c.res.V1Only(c.v1, c.roots, c.spec.MatchWorkload)
		if p != "" {
			return nil, 0, fmt.Sprintf("%s is only in the v1 hierarchies", p)
		}
		if !complete {
			return nil, 0, fmt.Sprintf("the v1 cgroup tree has more than %d directories", container.MaxWalk)
		}
	}
	switch {
	case len(sel.IDs) == 0:
		return nil, 0, "no cgroup matches yet"
	case len(sel.IDs) > tracer.MaxCgroupFilter:
		return nil, 0, fmt.Sprintf("%d cgroups match, more than the kernel's set holds (%d)", len(sel.IDs), tracer.MaxCgroupFilter)
	}
	return sel.IDs, sel.MinLevel, ""
}

// kinds names the workload filters given, e.g. "container and cgroup".
func (c *cgroupFilter) kinds() string {
	var k []string
	for _, x := range []struct {
		name string
		n    int
	}{{"container", len(c.spec.Containers)}, {"pod", len(c.spec.Pods)}, {"namespace", len(c.spec.Namespaces)}, {"cgroup", len(c.spec.Cgroups)}} {
		if x.n > 0 {
			k = append(k, x.name)
		}
	}
	return strings.Join(k, ", ")
}

// run refreshes every cgroupRefresh until ctx ends. A refresh that fails
// turns the kernel filter off (so nothing selected is dropped) and is said.
func (c *cgroupFilter) run(ctx context.Context) {
	t := time.NewTicker(cgroupRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := c.refresh(); err != nil {
			if c.tr.SetCgroupFilter(nil, 0) == nil {
				c.on = false
			}
			msg := "filtering by " + c.kinds() + " in user space only: " + err.Error()
			if msg != c.said {
				fmt.Fprintf(c.diag, "tuxscope: %s\n", msg)
				c.said = msg
			}
		}
	}
}

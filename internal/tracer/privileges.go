package tracer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Caps is a set of Linux capabilities, bit n for capability number n.
type Caps uint64

// CapsOf is the set of the capabilities given.
func CapsOf(caps ...int) Caps {
	var c Caps
	for _, n := range caps {
		c |= 1 << uint(n)
	}
	return c
}

// Has reports whether capability n is in the set.
func (c Caps) Has(n int) bool { return c&(1<<uint(n)) != 0 }

// Names lists the set's capabilities by name, in number order.
func (c Caps) Names() []string {
	var names []string
	for n := 0; n < 64; n++ {
		if c.Has(n) {
			names = append(names, CapName(n))
		}
	}
	return names
}

var capNames = map[int]string{
	unix.CAP_DAC_OVERRIDE:    "CAP_DAC_OVERRIDE",
	unix.CAP_DAC_READ_SEARCH: "CAP_DAC_READ_SEARCH",
	unix.CAP_NET_ADMIN:       "CAP_NET_ADMIN",
	unix.CAP_IPC_LOCK:        "CAP_IPC_LOCK",
	unix.CAP_SYS_PTRACE:      "CAP_SYS_PTRACE",
	unix.CAP_SYS_ADMIN:       "CAP_SYS_ADMIN",
	unix.CAP_SYS_RESOURCE:    "CAP_SYS_RESOURCE",
	unix.CAP_PERFMON:         "CAP_PERFMON",
	unix.CAP_BPF:             "CAP_BPF",
}

// CapName is capability n's name, e.g. CAP_BPF.
func CapName(n int) string {
	if s, ok := capNames[n]; ok {
		return s
	}
	return fmt.Sprintf("capability %d", n)
}

// AllCaps is every capability: what to assume when capget fails, so that
// only the kernel's own answer counts.
const AllCaps = ^Caps(0)

// EffectiveCaps is this process's effective capability set (capget), the
// one the kernel checks.
func EffectiveCaps() (Caps, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("reading this process's capabilities: %w", err)
	}
	return Caps(data[0].Effective) | Caps(data[1].Effective)<<32, nil
}

// A need is one capability a feature needs, and what else the kernel
// accepts in its place (CAP_SYS_ADMIN stands in for CAP_BPF, CAP_PERFMON
// and CAP_NET_ADMIN in the kernel's BPF checks; CAP_DAC_OVERRIDE for
// CAP_DAC_READ_SEARCH where a directory is only read and searched).
type need struct {
	cap int
	or  []int
}

var (
	needBPF        = need{unix.CAP_BPF, []int{unix.CAP_SYS_ADMIN}}
	needPerfmon    = need{unix.CAP_PERFMON, []int{unix.CAP_SYS_ADMIN}}
	needNetAdmin   = need{unix.CAP_NET_ADMIN, []int{unix.CAP_SYS_ADMIN}}
	needReadSearch = need{unix.CAP_DAC_READ_SEARCH, []int{unix.CAP_DAC_OVERRIDE}}
	needPtrace     = need{unix.CAP_SYS_PTRACE, nil}
	needSysAdmin   = need{unix.CAP_SYS_ADMIN, nil}
	needResource   = need{unix.CAP_SYS_RESOURCE, nil}
)

func (n need) metBy(have Caps) bool {
	if have.Has(n.cap) {
		return true
	}
	for _, c := range n.or {
		if have.Has(c) {
			return true
		}
	}
	return false
}

// missing names, of what needs asks for, what have lacks.
func missing(have Caps, needs ...need) []string {
	var out []string
	for _, n := range needs {
		if !n.metBy(have) {
			out = append(out, CapName(n.cap))
		}
	}
	return out
}

// missingAny reports whether have lacks any of needs.
func missingAny(have Caps, needs ...need) bool { return len(missing(have, needs...)) > 0 }

// Requirement is one feature and the capabilities it needs on Linux 5.8
// and later (CAP_BPF and CAP_PERFMON are new in 5.8; before, all of it
// needed CAP_SYS_ADMIN, and tuxscope needs 5.8's ring buffer anyway).
type Requirement struct {
	Feature string   `json:"feature"`
	Needs   []string `json:"needs"`             // every one of them, e.g. ["CAP_BPF", "CAP_PERFMON"]
	Missing []string `json:"missing,omitempty"` // of Needs, those this process lacks
	Note    string   `json:"note,omitempty"`    // what else does, or when it does not apply
}

// Feature names, as doctor shows them.
const (
	FeatureTracing  = "tracing"
	FeatureTracefs  = "tracepoints"
	FeatureNames    = "hostnames"
	FeatureExisting = "--existing owners"
	FeatureHosts    = "hosts-file names"
	FeatureMount    = "mounting tracefs"
	FeatureMemlock  = "memlock"
)

// Host is what, besides capabilities, decides whether a feature needs
// one here.
type Host struct {
	TracefsMounted  bool // tracefs is mounted (else mounting it needs CAP_SYS_ADMIN)
	TracefsReadable bool // this process can read it (its owner needs no capability)
	Memcg           bool // BPF memory is charged to the memory cgroup (5.11+), not RLIMIT_MEMLOCK
}

// Requirements says, feature by feature, what tuxscope needs and what
// have lacks on host h. The table in the README says the same.
func Requirements(have Caps, h Host) []Requirement {
	req := func(feature, note string, needs ...need) Requirement {
		r := Requirement{Feature: feature, Note: note, Missing: missing(have, needs...)}
		for _, n := range needs {
			r.Needs = append(r.Needs, CapName(n.cap))
		}
		return r
	}
	rs := []Requirement{
		req(FeatureTracing, "load the BPF maps and programs, attach tracepoints and raw tracepoints, read kernel memory; CAP_SYS_ADMIN stands in for both", needBPF, needPerfmon),
		req(FeatureTracefs, "classic tracepoints (--backend tracepoint, the accept catch-up) read their ids in tracefs, mode 0700: its owner (root) needs nothing more; CAP_DAC_OVERRIDE also does", needReadSearch),
		req(FeatureNames, "the DNS hooks are cgroup sock_addr programs, which only load with it; without it tuxscope runs without hostnames; CAP_SYS_ADMIN also does", needNetAdmin),
		req(FeatureExisting, "to name the process holding another user's (or a more privileged process's) socket from /proc/PID/fd; without them those show PID -", needPtrace, needReadSearch),
		req(FeatureHosts, "to read another user's (or a more privileged) process's /etc/hosts through /proc/PID/root; without it those processes' addresses get no names from it", needPtrace),
		req(FeatureMount, "only when tracefs is not mounted", needSysAdmin),
		req(FeatureMemlock, "only before Linux 5.11, which charged BPF memory to RLIMIT_MEMLOCK: to raise it (or start tuxscope with a higher limit)", needResource),
	}
	for i := range rs {
		switch {
		case rs[i].Feature == FeatureTracefs && h.TracefsReadable,
			rs[i].Feature == FeatureMount && h.TracefsMounted,
			rs[i].Feature == FeatureMemlock && h.Memcg:
			rs[i].Missing = nil
		}
	}
	return rs
}

// missingList is "CAP_X" for one, "CAP_X and CAP_Y" for two.
func missingList(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// checkPrivileges names the capabilities that are missing, before any BPF
// call fails with a bare EPERM.
func checkPrivileges() error {
	have, err := EffectiveCaps()
	if err != nil {
		return nil // cannot tell; let the kernel decide
	}
	return privilegeError(have)
}

// privilegeError says what have lacks for tuxscope to run at all.
func privilegeError(have Caps) error {
	if m := missing(have, needBPF, needPerfmon); len(m) > 0 {
		return fmt.Errorf("permission denied: tuxscope needs root, or CAP_BPF and CAP_PERFMON (missing: %s)", strings.Join(m, ", "))
	}
	return nil
}

// permissionDenied reports whether err is the kernel's EPERM or EACCES.
func permissionDenied(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
}

// refusedFor says why the kernel refused (EPERM) to load what
// implementation im needs ("": the maps) when this process lacks a
// capability for it, or "" when it has them all and the reason is
// something else (lockdown, an LSM).
func refusedFor(im Impl, have Caps) string {
	var needs []need
	var what string
	switch im {
	case "":
		needs, what = []need{needBPF}, "the kernel refused to create tuxscope's BPF maps: that needs"
	case implCgroup:
		needs, what = []need{needBPF, needNetAdmin}, "the kernel refused to load the DNS hooks: cgroup sock_addr programs need"
	default:
		needs, what = []need{needBPF, needPerfmon}, fmt.Sprintf("the kernel refused to load tuxscope's %s programs: tracing programs need", im)
	}
	if m := missing(have, needs...); len(m) > 0 {
		return fmt.Sprintf("%s %s (missing)", what, missingList(m))
	}
	return ""
}

// tracefsDirs are where the kernel's tracing file system can be; cilium/ebpf
// reads tracepoint ids from the first that is mounted.
var tracefsDirs = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}

// tracefsMounted is the first of tracefsDirs with tracefs (or debugfs,
// which holds it on old kernels) mounted on it, found with statfs, which
// needs no access to the directory itself.
func tracefsMounted() string {
	for _, d := range tracefsDirs {
		var st unix.Statfs_t
		if unix.Statfs(d, &st) == nil && (st.Type == unix.TRACEFS_MAGIC || st.Type == unix.DEBUGFS_MAGIC) {
			return d
		}
	}
	return ""
}

// tracefsState is whether classic tracepoints can be found here: nil, or
// why not, naming the capability that would fix it.
func tracefsState() error {
	dir := tracefsMounted()
	if dir == "" {
		if have, err := EffectiveCaps(); err == nil && !have.Has(unix.CAP_SYS_ADMIN) {
			return fmt.Errorf("tracefs is not mounted, and mounting it needs CAP_SYS_ADMIN (missing): mount it with 'mount -t tracefs tracefs %s'", tracefsDirs[0])
		}
		if tracefsMountErr != nil {
			return fmt.Errorf("tracefs is not mounted, and mounting it on %s failed: %v", tracefsDirs[0], tracefsMountErr)
		}
		return fmt.Errorf("tracefs is not mounted: mount it with 'mount -t tracefs tracefs %s'", tracefsDirs[0])
	}
	_, err := os.Stat(dir + "/events")
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		return nil // readable, or a problem the attach will name
	}
	return tracefsDenied(dir)
}

// tracefsDenied says that tracefs at dir is not readable by this process,
// and what would fix it.
func tracefsDenied(dir string) error {
	var st unix.Stat_t
	mode := ""
	if unix.Stat(dir, &st) == nil {
		mode = fmt.Sprintf(" (mode %04o, owner uid %d)", st.Mode&0o7777, st.Uid)
	}
	if have, err := EffectiveCaps(); err == nil && (have.Has(unix.CAP_DAC_READ_SEARCH) || have.Has(unix.CAP_DAC_OVERRIDE)) {
		return fmt.Errorf("tracefs on %s%s is not readable by uid %d although it has CAP_DAC_READ_SEARCH: a security module or the container's policy denies it", dir, mode, os.Geteuid())
	}
	return fmt.Errorf("tracefs on %s%s is not readable by uid %d: reading tracepoint ids needs CAP_DAC_READ_SEARCH (missing)", dir, mode, os.Geteuid())
}

// ensureTracefs mounts tracefs when no one has: a fresh machine may have
// none, and classic tracepoints cannot be attached without it. It fails
// (tracefsState says why) without CAP_SYS_ADMIN; what needs no tracefs
// (raw tracepoints, fentry, kprobes, cgroup hooks) works regardless.
func ensureTracefs() {
	if tracefsMounted() != "" {
		return
	}
	// On failure, tracefsState says so, with this error.
	tracefsMountErr = unix.Mount("tracefs", tracefsDirs[0], "tracefs", 0, "")
}

// tracefsMountErr is why ensureTracefs could not mount tracefs.
var tracefsMountErr error

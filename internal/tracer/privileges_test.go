package tracer

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// What each feature lacks, from the effective set alone: the setups the
// README's table documents, and the ones issue 11 met (root with only
// CAP_BPF and CAP_PERFMON lost its names quietly).
func TestRequirements(t *testing.T) {
	bpfPerfmon := CapsOf(unix.CAP_BPF, unix.CAP_PERFMON)
	tests := []struct {
		name string
		have Caps
		host Host
		want map[string]string // feature -> missing, joined by ","
	}{
		{"root", AllCaps, Host{TracefsMounted: true, TracefsReadable: true, Memcg: true}, map[string]string{}},
		{"nothing", 0, Host{TracefsMounted: true, Memcg: true}, map[string]string{
			FeatureTracing:  "CAP_BPF,CAP_PERFMON",
			FeatureTracefs:  "CAP_DAC_READ_SEARCH",
			FeatureNames:    "CAP_NET_ADMIN",
			FeatureExisting: "CAP_SYS_PTRACE,CAP_DAC_READ_SEARCH",
			FeatureHosts:    "CAP_SYS_PTRACE",
		}},
		// Root, its bounding set cut to the two the README used to name:
		// it owns tracefs, so only the names and --existing suffer.
		{"root with CAP_BPF and CAP_PERFMON", bpfPerfmon, Host{TracefsMounted: true, TracefsReadable: true, Memcg: true}, map[string]string{
			FeatureNames:    "CAP_NET_ADMIN",
			FeatureExisting: "CAP_SYS_PTRACE,CAP_DAC_READ_SEARCH",
			FeatureHosts:    "CAP_SYS_PTRACE",
		}},
		{"non-root with CAP_BPF and CAP_PERFMON", bpfPerfmon, Host{TracefsMounted: true, Memcg: true}, map[string]string{
			FeatureTracefs:  "CAP_DAC_READ_SEARCH",
			FeatureNames:    "CAP_NET_ADMIN",
			FeatureExisting: "CAP_SYS_PTRACE,CAP_DAC_READ_SEARCH",
			FeatureHosts:    "CAP_SYS_PTRACE",
		}},
		{"non-root, the documented set", bpfPerfmon | CapsOf(unix.CAP_DAC_READ_SEARCH, unix.CAP_NET_ADMIN), Host{TracefsMounted: true, Memcg: true}, map[string]string{
			FeatureExisting: "CAP_SYS_PTRACE",
			FeatureHosts:    "CAP_SYS_PTRACE",
		}},
		// CAP_SYS_ADMIN stands in for CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN,
		// CAP_DAC_OVERRIDE for CAP_DAC_READ_SEARCH; neither for CAP_SYS_PTRACE.
		{"CAP_SYS_ADMIN and CAP_DAC_OVERRIDE", CapsOf(unix.CAP_SYS_ADMIN, unix.CAP_DAC_OVERRIDE), Host{Memcg: true}, map[string]string{
			FeatureExisting: "CAP_SYS_PTRACE",
			FeatureHosts:    "CAP_SYS_PTRACE",
		}},
		// Before 5.11, with tracefs not mounted: memlock and the mount.
		{"old kernel, no tracefs", bpfPerfmon, Host{}, map[string]string{
			FeatureTracefs:  "CAP_DAC_READ_SEARCH",
			FeatureNames:    "CAP_NET_ADMIN",
			FeatureExisting: "CAP_SYS_PTRACE,CAP_DAC_READ_SEARCH",
			FeatureHosts:    "CAP_SYS_PTRACE",
			FeatureMount:    "CAP_SYS_ADMIN",
			FeatureMemlock:  "CAP_SYS_RESOURCE",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]string{}
			for _, r := range Requirements(tt.have, tt.host) {
				if len(r.Needs) == 0 || r.Note == "" {
					t.Errorf("%s: needs %v, note %q", r.Feature, r.Needs, r.Note)
				}
				if len(r.Missing) > 0 {
					got[r.Feature] = strings.Join(r.Missing, ",")
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("missing %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPrivilegeError(t *testing.T) {
	for _, tt := range []struct {
		have Caps
		want string
	}{
		{0, "permission denied: tuxscope needs root, or CAP_BPF and CAP_PERFMON (missing: CAP_BPF, CAP_PERFMON)"},
		{CapsOf(unix.CAP_BPF), "permission denied: tuxscope needs root, or CAP_BPF and CAP_PERFMON (missing: CAP_PERFMON)"},
		{CapsOf(unix.CAP_PERFMON, unix.CAP_NET_ADMIN), "permission denied: tuxscope needs root, or CAP_BPF and CAP_PERFMON (missing: CAP_BPF)"},
		{CapsOf(unix.CAP_BPF, unix.CAP_PERFMON), ""},
		{CapsOf(unix.CAP_SYS_ADMIN), ""},
	} {
		err := privilegeError(tt.have)
		if got := fmt.Sprint(err); err == nil && tt.want != "" || err != nil && got != tt.want {
			t.Errorf("privilegeError(%v) = %v, want %q", tt.have.Names(), err, tt.want)
		}
	}
}

// A refused load names what is missing for that program type, and only
// what is missing: the DNS hooks' CAP_NET_ADMIN, not the CAP_BPF and
// CAP_PERFMON the process has (the message issue 11 met).
func TestLoadErrorNamesTheMissingCapability(t *testing.T) {
	eperm := fmt.Errorf("program dns_connect4: load program: %w", unix.EPERM)
	bpfPerfmon := CapsOf(unix.CAP_BPF, unix.CAP_PERFMON)
	for _, tt := range []struct {
		im      Impl
		have    Caps
		memlock error
		want    string
	}{
		{implCgroup, bpfPerfmon, nil, "the kernel refused to load the DNS hooks: cgroup sock_addr programs need CAP_NET_ADMIN (missing)"},
		{implCgroup, CapsOf(unix.CAP_NET_ADMIN), nil, "the kernel refused to load the DNS hooks: cgroup sock_addr programs need CAP_BPF (missing)"},
		{implTracepoint, CapsOf(unix.CAP_BPF), nil, "the kernel refused to load tuxscope's tracepoint programs: tracing programs need CAP_PERFMON (missing)"},
		{implRawTracepoint, CapsOf(unix.CAP_NET_ADMIN), nil, "the kernel refused to load tuxscope's raw_tracepoint programs: tracing programs need CAP_BPF and CAP_PERFMON (missing)"},
		{"", CapsOf(unix.CAP_PERFMON), nil, "the kernel refused to create tuxscope's BPF maps: that needs CAP_BPF (missing)"},
		// Every capability there, but the limit could not be raised (before 5.11).
		{"", bpfPerfmon, fmt.Errorf("failed to set memlock rlimit: %w", unix.EPERM), "the kernel refused tuxscope's BPF objects (EPERM): this kernel charges them to RLIMIT_MEMLOCK (before Linux 5.11) and raising it failed (failed to set memlock rlimit: operation not permitted): that needs CAP_SYS_RESOURCE (missing), or start tuxscope with a higher limit (ulimit -l unlimited, prlimit --memlock=unlimited)"},
		// Every capability there: something else refused it.
		{implCgroup, CapsOf(unix.CAP_SYS_ADMIN), nil, "the kernel refused to load tuxscope's BPF programs (EPERM) although this process has the capabilities they need; under lockdown=confidentiality BPF tracing is not allowed: program dns_connect4: load program: operation not permitted"},
	} {
		if got := loadError(tt.im, eperm, tt.have, tt.memlock).Error(); got != tt.want {
			t.Errorf("loadError(%q, EPERM, %v):\n got %q\nwant %q", tt.im, tt.have.Names(), got, tt.want)
		}
	}
	// Not a permission problem: not blamed on capabilities.
	if got := loadError(implCgroup, errors.New("boom"), 0, nil).Error(); got != "loading tuxscope's BPF programs: boom" {
		t.Errorf("loadError(other) = %q", got)
	}
}

func TestAttachErrorNamesTheMissingCapability(t *testing.T) {
	cg := hook{hookDesc: &hookDesc{kind: kindCgroup, target: "connect4"}}
	tp := hook{hookDesc: &hookDesc{kind: kindTracepoint, target: "syscalls:sys_exit_accept"}}
	eperm := fmt.Errorf("link: %w", unix.EPERM)
	if got, want := attachError(cg, eperm, CapsOf(unix.CAP_BPF, unix.CAP_PERFMON)).Error(), "attaching cgroup:connect4: link: operation not permitted: needs CAP_NET_ADMIN (missing)"; got != want {
		t.Errorf("cgroup attach:\n got %q\nwant %q", got, want)
	}
	if got, want := attachError(tp, eperm, CapsOf(unix.CAP_BPF)).Error(), "attaching tracepoint:syscalls:sys_exit_accept: link: operation not permitted: needs CAP_PERFMON (missing)"; got != want {
		t.Errorf("tracepoint attach:\n got %q\nwant %q", got, want)
	}
	if got, want := attachError(cg, eperm, AllCaps).Error(), "attaching cgroup:connect4: link: operation not permitted"; got != want {
		t.Errorf("with every capability:\n got %q\nwant %q", got, want)
	}
}

func TestMemcgAccounting(t *testing.T) {
	for rel, want := range map[string]bool{"5.10.0-35-amd64": false, "5.11.0": true, "6.18.44-fc": true, "4.19.1": false, "garbage": true} {
		if got := memcgAccounting(rel); got != want {
			t.Errorf("memcgAccounting(%q) = %v, want %v", rel, got, want)
		}
	}
}

func TestCaps(t *testing.T) {
	c := CapsOf(unix.CAP_BPF, unix.CAP_NET_ADMIN)
	if got := strings.Join(c.Names(), ","); got != "CAP_NET_ADMIN,CAP_BPF" {
		t.Errorf("Names = %s", got)
	}
	if !c.Has(unix.CAP_BPF) || c.Has(unix.CAP_PERFMON) {
		t.Errorf("Has: %v", c.Names())
	}
}

package tracer

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"

	"github.com/tuxscope/tuxscope/internal/bpf"
)

// Backend is a way of hooking the kernel.
type Backend string

// The backends, and auto, which picks the first that works, per hook point.
const (
	Auto       Backend = "auto"
	Fentry     Backend = "fentry"
	Kprobe     Backend = "kprobe"
	Tracepoint Backend = "tracepoint"
)

// Cgroup is not a backend one chooses: the DNS hook point's cgroup hooks.
const Cgroup Backend = "cgroup"

// RawTracepoint is not a backend one chooses either: the state hook
// point's raw tracepoint, which every backend but Tracepoint prefers to
// the classic tracepoint for it.
const RawTracepoint Backend = "raw_tracepoint"

// Backends in auto's order of preference: cheapest first.
var Backends = []Backend{Fentry, Kprobe, Tracepoint}

// ParseBackend validates a --backend value.
func ParseBackend(s string) (Backend, error) {
	switch b := Backend(s); b {
	case Auto, Fentry, Kprobe, Tracepoint:
		return b, nil
	}
	return "", fmt.Errorf("unknown backend %q (want auto, fentry, kprobe or tracepoint)", s)
}

type hookKind string

const (
	kindFexit      hookKind = "fexit"
	kindKprobe     hookKind = "kprobe"
	kindKretprobe  hookKind = "kretprobe"
	kindTracepoint hookKind = "tracepoint"
	kindRawTP      hookKind = "raw_tracepoint"
	kindCgroup     hookKind = "cgroup"
)

// hook is one BPF program and the kernel hook it attaches to.
type hook struct {
	prog   string   // program name in the BPF object
	kind   hookKind //
	target string   // kernel function, or "group:name" for a tracepoint
	// catchUp hooks back up a function hook where it is blind (an accept()
	// already waiting when the probe was attached); attached where they
	// exist, skipped quietly where they do not.
	catchUp bool
	note    string // shown after the hook, e.g. "nested copy"
}

func (h hook) String() string {
	if h.note != "" {
		return string(h.kind) + ":" + h.target + " (" + h.note + ")"
	}
	return string(h.kind) + ":" + h.target
}

func (h hook) attach(prog *ebpf.Program) (link.Link, error) {
	var (
		l   link.Link
		err error
	)
	switch h.kind {
	case kindFexit:
		l, err = link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ebpf.AttachTraceFExit})
	case kindKprobe:
		l, err = link.Kprobe(h.target, prog, nil)
	case kindKretprobe:
		l, err = link.Kretprobe(h.target, prog, nil)
	case kindTracepoint:
		group, name, _ := strings.Cut(h.target, ":")
		l, err = link.Tracepoint(group, name, prog, nil)
	case kindRawTP:
		l, err = link.AttachRawTracepoint(link.RawTracepointOptions{Name: h.target, Program: prog})
	case kindCgroup:
		var root string
		if root, err = cgroup2Root(); err == nil {
			l, err = link.AttachCgroup(link.CgroupOptions{Path: root, Attach: cgroupAttachTypes[h.target], Program: prog})
		}
	default:
		err = fmt.Errorf("unknown hook kind %q", h.kind)
	}
	if err != nil {
		return nil, attachError(h, err)
	}
	return l, nil
}

// attachError says in words why a hook could not be attached.
func attachError(h hook, err error) error {
	switch {
	case h.kind == kindKprobe || h.kind == kindKretprobe:
		if !kprobesAvailable() {
			return errors.New("kprobes: not built into this kernel (CONFIG_KPROBES is off)")
		}
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: function %s not found (renamed or inlined in this kernel)", h.kind, h.target)
		}
	case h.kind == kindTracepoint && errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("tracepoint %s is missing (syscall tracepoints need CONFIG_FTRACE_SYSCALLS)", h.target)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("%s: not supported by this kernel: %v", h.kind, err)
	}
	return fmt.Errorf("attaching %s: %v", h, err)
}

// kprobesAvailable reports whether the kernel has a kprobe PMU or the
// tracefs kprobe interface.
func kprobesAvailable() bool {
	for _, p := range []string{"/sys/bus/event_source/devices/kprobe/type", "/sys/kernel/tracing/kprobe_events", "/sys/kernel/debug/tracing/kprobe_events"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// HookPoint is one thing tuxscope needs to see, with the hooks each
// backend uses for it.
type HookPoint string

// The hook points.
const (
	PointConnect HookPoint = "connect"
	PointAccept  HookPoint = "accept"
	// PointDNS reads DNS messages off socket buffers: cgroup hooks on the
	// root cgroup v2, whatever the backend (kprobes are not needed).
	PointDNS HookPoint = "dns"
	// PointState follows TCP state changes (a connect's outcome, closes).
	// Every backend uses the stable sock:inet_sock_set_state tracepoint
	// for it: it fires where the kernel changes state, on every kernel
	// since 4.16. Its raw form is cheaper (no trace record is built for
	// the program), the classic form is --backend tracepoint's: see
	// stateBackends.
	PointState HookPoint = "state"
)

// HookPoints are the points a backend is chosen for, in attach order.
var HookPoints = []HookPoint{PointConnect, PointAccept}

// implementation is the hooks one backend uses for one hook point, or why
// that backend cannot provide it on this kernel.
type implementation struct {
	hooks       []hook
	unavailable error
}

// implementations lists, for a hook point, what each backend attaches on
// the kernel described by kernel.
func implementations(p HookPoint, kernel *btf.Spec) map[Backend]implementation {
	tp := func(prog, target string) hook { return hook{prog: prog, kind: kindTracepoint, target: target} }
	catchUp := func(h hook) hook { h.catchUp = true; return h }
	acceptTracepoints := []hook{
		tp(bpf.TuxscopeProgTpExitAccept4, "syscalls:sys_exit_accept4"),
		tp(bpf.TuxscopeProgTpExitAccept, "syscalls:sys_exit_accept"),
	}
	switch p {
	case PointConnect:
		return map[Backend]implementation{
			Fentry: {hooks: []hook{
				{prog: bpf.TuxscopeProgFexitV4Conn, kind: kindFexit, target: "tcp_v4_connect"},
				{prog: bpf.TuxscopeProgFexitV6Conn, kind: kindFexit, target: "tcp_v6_connect"},
			}},
			Kprobe: {hooks: []hook{
				{prog: bpf.TuxscopeProgKpV4Conn, kind: kindKprobe, target: "tcp_v4_connect"},
				{prog: bpf.TuxscopeProgKretV4Conn, kind: kindKretprobe, target: "tcp_v4_connect"},
				{prog: bpf.TuxscopeProgKpV6Conn, kind: kindKprobe, target: "tcp_v6_connect"},
				{prog: bpf.TuxscopeProgKretV6Conn, kind: kindKretprobe, target: "tcp_v6_connect"},
			}},
			// With PointState's tracepoint, which records the socket
			// between the two syscall hooks.
			Tracepoint: {hooks: []hook{
				tp(bpf.TuxscopeProgTpEnterConn, "syscalls:sys_enter_connect"),
				tp(bpf.TuxscopeProgTpExitConn, "syscalls:sys_exit_connect"),
			}},
		}
	case PointDNS:
		cg := func(prog, target string) hook { return hook{prog: prog, kind: kindCgroup, target: target} }
		return map[Backend]implementation{Cgroup: {hooks: []hook{
			cg(bpf.TuxscopeProgDnsConnect4, "connect4"),
			cg(bpf.TuxscopeProgDnsConnect6, "connect6"),
			cg(bpf.TuxscopeProgDnsSendmsg4, "sendmsg4"),
			cg(bpf.TuxscopeProgDnsSendmsg6, "sendmsg6"),
			cg(bpf.TuxscopeProgDnsEgress, "egress"),
			cg(bpf.TuxscopeProgDnsIngress, "ingress"),
		}}}
	case PointState:
		return map[Backend]implementation{
			// Two copies, in this order: the second runs the change only
			// when the kernel skipped the first (see the BPF source).
			RawTracepoint: {hooks: []hook{
				{prog: bpf.TuxscopeProgRawState, kind: kindRawTP, target: "inet_sock_set_state"},
				{prog: bpf.TuxscopeProgRawStateNest, kind: kindRawTP, target: "inet_sock_set_state", note: "nested copy"},
			}},
			Tracepoint: {hooks: []hook{tp(bpf.TuxscopeProgTpState, "sock:inet_sock_set_state")}},
		}
	case PointAccept:
		fexit := implementation{}
		switch prog, err := fexitAcceptProgram(kernel); {
		case err != nil:
			fexit.unavailable = err
		default:
			fexit.hooks = []hook{{prog: prog, kind: kindFexit, target: "inet_csk_accept"}}
			for _, h := range acceptTracepoints {
				fexit.hooks = append(fexit.hooks, catchUp(h))
			}
		}
		kprobe := implementation{hooks: []hook{{prog: bpf.TuxscopeProgKretAccept, kind: kindKretprobe, target: "inet_csk_accept"}}}
		for _, h := range acceptTracepoints {
			kprobe.hooks = append(kprobe.hooks, catchUp(h))
		}
		return map[Backend]implementation{
			Fentry:     fexit,
			Kprobe:     kprobe,
			Tracepoint: {hooks: acceptTracepoints},
		}
	}
	return nil
}

// stateBackends are the ways PointState is tried, best first, for the
// backend chosen for the other points: --backend tracepoint means classic
// tracepoints throughout (the most portable set); the others prefer the
// raw tracepoint, which skips building a trace record for each state
// change.
func stateBackends(b Backend) []Backend {
	if b == Tracepoint {
		return []Backend{Tracepoint}
	}
	return []Backend{RawTracepoint, Tracepoint}
}

// fexitAcceptProgram picks the fexit program that matches the running
// kernel's inet_csk_accept: (sk, flags, err, kern) before Linux 6.10,
// (sk, arg) since.
func fexitAcceptProgram(kernel *btf.Spec) (string, error) {
	var fn *btf.Func
	if err := kernel.TypeByName("inet_csk_accept", &fn); err != nil {
		return "", fmt.Errorf("fentry: inet_csk_accept not found in kernel BTF: %v", err)
	}
	proto, ok := fn.Type.(*btf.FuncProto)
	if !ok {
		return "", errors.New("fentry: inet_csk_accept has no prototype in kernel BTF")
	}
	switch len(proto.Params) {
	case 2:
		return bpf.TuxscopeProgFexitAccept, nil
	case 4:
		return bpf.TuxscopeProgFexitAccOld, nil
	}
	return "", fmt.Errorf("fentry: unknown inet_csk_accept signature with %d parameters", len(proto.Params))
}

var cgroupAttachTypes = map[string]ebpf.AttachType{
	"connect4": ebpf.AttachCGroupInet4Connect,
	"connect6": ebpf.AttachCGroupInet6Connect,
	"sendmsg4": ebpf.AttachCGroupUDP4Sendmsg,
	"sendmsg6": ebpf.AttachCGroupUDP6Sendmsg,
	"egress":   ebpf.AttachCGroupInetEgress,
	"ingress":  ebpf.AttachCGroupInetIngress,
}

// cgroup2Root is where the cgroup v2 hierarchy is mounted
// (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid systems); its root
// holds every process, so hooks there see every socket.
func cgroup2Root() (string, error) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[2] == "cgroup2" {
			return f[1], nil
		}
	}
	return "", errors.New("no cgroup v2 hierarchy is mounted (mount -t cgroup2 none /sys/fs/cgroup)")
}

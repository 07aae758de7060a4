package tracer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"

	"github.com/tuxscope/tuxscope/internal/bpf"
)

// Backend is a way of hooking the kernel that --backend chooses, for the
// connect and accept hook points (and the state point's preference).
type Backend string

// The backends, and auto, which picks the first that works, per hook point.
const (
	Auto       Backend = "auto"
	Fentry     Backend = "fentry"
	Kprobe     Backend = "kprobe"
	Tracepoint Backend = "tracepoint"
)

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

// Impl names one implementation of a hook point: hooks loaded and
// attached together, all or nothing. For connect and accept each backend
// is one, of its name; the state point has the raw tracepoint and the
// classic one, the DNS point its cgroup hooks, whatever the backend.
type Impl string

const (
	implFentry        Impl = "fentry"
	implKprobe        Impl = "kprobe"
	implTracepoint    Impl = "tracepoint"
	implRawTracepoint Impl = "raw_tracepoint"
	implCgroup        Impl = "cgroup"
)

type hookKind string

const (
	kindFexit      hookKind = "fexit"
	kindKprobe     hookKind = "kprobe"
	kindKretprobe  hookKind = "kretprobe"
	kindTracepoint hookKind = "tracepoint"
	kindRawTP      hookKind = "raw_tracepoint"
	kindCgroup     hookKind = "cgroup"
)

// hookDesc declares one program of the BPF object: the kernel hook it
// attaches to, and the implementations of its hook point that attach it.
// hookTable has one per program (TestHookTable checks it against the
// object's ELF sections).
type hookDesc struct {
	prog   string    // program name in the BPF object
	point  HookPoint //
	impl   Impl      // the implementation it is part of
	serves []Backend // the --backend values impl serves (auto tries every implementation)
	kind   hookKind  //
	target string    // kernel function, "group:name" tracepoint, raw tracepoint, or cgroup attach point
	// catchUpFor are implementations that attach it too, as a catch-up:
	// it backs up their function hook where that is blind (an accept()
	// already waiting when the probe was attached); attached where it
	// exists, skipped quietly where it does not.
	catchUpFor []Impl
	// optional: its own implementation attaches it where the kernel has
	// the hook and goes on without it (saying so) where not, e.g.
	// io_uring's tracepoints on a kernel built without io_uring.
	optional bool
	// needs says why the running kernel cannot take it (nil: it can, as
	// far as its BTF tells; nil func: nothing to check).
	needs func(kernel *btf.Spec) error
	// unneeded says whether the running kernel lets its implementation
	// do without it: it is then neither loaded nor attached.
	unneeded func(kernel *btf.Spec) bool
	// params: a program written for one prototype of its fexit target
	// has that prototype's parameter count; of those, the one matching
	// the running kernel's BTF is attached (see fexitVariant).
	params int
	note   string // shown after the hook, e.g. "nested copy"
}

// Who serves whom.
var (
	fentryOnly     = []Backend{Fentry}
	kprobeOnly     = []Backend{Kprobe}
	tracepointOnly = []Backend{Tracepoint}
	everyBackend   = []Backend{Fentry, Kprobe, Tracepoint}
)

// hookTable is every program, by hook point; within a point, the order of
// the implementations is the order they are tried in, and the order of
// the hooks the order they are attached in.
var hookTable = []hookDesc{
	// connect: one implementation per backend. The tracepoint one works
	// with the state point's tracepoint, which records the socket between
	// the two syscall hooks, and emits the connects that run no connect(2)
	// (io_uring, Fast Open) where their handshake ends (see
	// loader.connectsFromSyscalls).
	{prog: bpf.TuxscopeProgFexitV4Conn, point: PointConnect, impl: implFentry, serves: fentryOnly, kind: kindFexit, target: "tcp_v4_connect"},
	{prog: bpf.TuxscopeProgFexitV6Conn, point: PointConnect, impl: implFentry, serves: fentryOnly, kind: kindFexit, target: "tcp_v6_connect"},
	{prog: bpf.TuxscopeProgKpV4Conn, point: PointConnect, impl: implKprobe, serves: kprobeOnly, kind: kindKprobe, target: "tcp_v4_connect"},
	{prog: bpf.TuxscopeProgKretV4Conn, point: PointConnect, impl: implKprobe, serves: kprobeOnly, kind: kindKretprobe, target: "tcp_v4_connect"},
	{prog: bpf.TuxscopeProgKpV6Conn, point: PointConnect, impl: implKprobe, serves: kprobeOnly, kind: kindKprobe, target: "tcp_v6_connect"},
	{prog: bpf.TuxscopeProgKretV6Conn, point: PointConnect, impl: implKprobe, serves: kprobeOnly, kind: kindKretprobe, target: "tcp_v6_connect"},
	// sys_enter_connect marks the thread inside connect(2) only where
	// the state point cannot tell it by the thread's system call
	// (stateSeesSyscall).
	{prog: bpf.TuxscopeProgTpEnterConn, point: PointConnect, impl: implTracepoint, serves: tracepointOnly, kind: kindTracepoint, target: "syscalls:sys_enter_connect", unneeded: stateSeesSyscall},
	{prog: bpf.TuxscopeProgTpExitConn, point: PointConnect, impl: implTracepoint, serves: tracepointOnly, kind: kindTracepoint, target: "syscalls:sys_exit_connect"},

	// accept: one implementation per backend; the function hooks keep the
	// syscall tracepoints as their catch-up. inet_csk_accept changed its
	// signature in Linux 6.10: one fexit program for each.
	{prog: bpf.TuxscopeProgFexitAccept, point: PointAccept, impl: implFentry, serves: fentryOnly, kind: kindFexit, target: "inet_csk_accept", params: 2},
	{prog: bpf.TuxscopeProgFexitAccOld, point: PointAccept, impl: implFentry, serves: fentryOnly, kind: kindFexit, target: "inet_csk_accept", params: 4},
	{prog: bpf.TuxscopeProgKretAccept, point: PointAccept, impl: implKprobe, serves: kprobeOnly, kind: kindKretprobe, target: "inet_csk_accept"},
	{prog: bpf.TuxscopeProgTpExitAccept4, point: PointAccept, impl: implTracepoint, serves: tracepointOnly, kind: kindTracepoint, target: "syscalls:sys_exit_accept4", catchUpFor: []Impl{implFentry, implKprobe}},
	{prog: bpf.TuxscopeProgTpExitAccept, point: PointAccept, impl: implTracepoint, serves: tracepointOnly, kind: kindTracepoint, target: "syscalls:sys_exit_accept", catchUpFor: []Impl{implFentry, implKprobe}},
	// io_uring's accepts never return through accept(2): the tracepoint
	// backend takes them from their completions (the function hooks see
	// them in inet_csk_accept). Raw, because it runs for every completion
	// of every ring, and the classic form costs a trace record each.
	{prog: bpf.TuxscopeProgRawUringDone, point: PointAccept, impl: implTracepoint, serves: tracepointOnly, kind: kindRawTP, target: "io_uring_complete", optional: true, needs: uringCompleteArgsErr},

	// state: the raw tracepoint for every backend, the classic one as the
	// fallback. Raw costs less (no trace record is built for the program)
	// and, above all, is skipped only when it interrupts itself: a
	// classic tracepoint program is skipped whenever any kprobe or
	// tracepoint program, or a map system call of the tracer's, is under
	// way on that CPU (bpf_prog_active), which a softirq's state change
	// (a peer's FIN or last ACK) may find, uncounted before Linux 6.7.
	// Two raw copies, in this order: the second runs the change
	// only when the kernel skipped the first (see the BPF source).
	{prog: bpf.TuxscopeProgRawState, point: PointState, impl: implRawTracepoint, serves: everyBackend, kind: kindRawTP, target: "inet_sock_set_state"},
	{prog: bpf.TuxscopeProgRawStateNest, point: PointState, impl: implRawTracepoint, serves: everyBackend, kind: kindRawTP, target: "inet_sock_set_state", note: "nested copy"},
	{prog: bpf.TuxscopeProgTpState, point: PointState, impl: implTracepoint, serves: everyBackend, kind: kindTracepoint, target: "sock:inet_sock_set_state"},

	// retransmit and reset: the tcp: tracepoints, raw for every backend
	// (as for the state point: cheaper, and not skipped for other
	// programs), the classic one as the fallback. They run in softirqs
	// too. Optional points: where they fail, their events are
	// missing and the rest runs (Tracer.HealthErrors, doctor). A kernel
	// may lack tcp_retransmit_synack's (SYN-ACKs then go unreported).
	{prog: bpf.TuxscopeProgRawRetransmit, point: PointRetransmit, impl: implRawTracepoint, serves: everyBackend, kind: kindRawTP, target: "tcp_retransmit_skb"},
	{prog: bpf.TuxscopeProgRawSynack, point: PointRetransmit, impl: implRawTracepoint, serves: everyBackend, kind: kindRawTP, target: "tcp_retransmit_synack", optional: true},
	{prog: bpf.TuxscopeProgTpRetransmit, point: PointRetransmit, impl: implTracepoint, serves: everyBackend, kind: kindTracepoint, target: "tcp:tcp_retransmit_skb"},
	{prog: bpf.TuxscopeProgTpSynack, point: PointRetransmit, impl: implTracepoint, serves: everyBackend, kind: kindTracepoint, target: "tcp:tcp_retransmit_synack", optional: true},
	{prog: bpf.TuxscopeProgRawSendReset, point: PointReset, impl: implRawTracepoint, serves: everyBackend, kind: kindRawTP, target: "tcp_send_reset"},
	{prog: bpf.TuxscopeProgRawRecvReset, point: PointReset, impl: implRawTracepoint, serves: everyBackend, kind: kindRawTP, target: "tcp_receive_reset"},
	{prog: bpf.TuxscopeProgTpSendReset, point: PointReset, impl: implTracepoint, serves: everyBackend, kind: kindTracepoint, target: "tcp:tcp_send_reset"},
	{prog: bpf.TuxscopeProgTpRecvReset, point: PointReset, impl: implTracepoint, serves: everyBackend, kind: kindTracepoint, target: "tcp:tcp_receive_reset"},

	// dns: cgroup hooks on the root cgroup v2, whatever the backend.
	{prog: bpf.TuxscopeProgDnsConnect4, point: PointDNS, impl: implCgroup, serves: everyBackend, kind: kindCgroup, target: "connect4"},
	{prog: bpf.TuxscopeProgDnsConnect6, point: PointDNS, impl: implCgroup, serves: everyBackend, kind: kindCgroup, target: "connect6"},
	{prog: bpf.TuxscopeProgDnsSendmsg4, point: PointDNS, impl: implCgroup, serves: everyBackend, kind: kindCgroup, target: "sendmsg4"},
	{prog: bpf.TuxscopeProgDnsSendmsg6, point: PointDNS, impl: implCgroup, serves: everyBackend, kind: kindCgroup, target: "sendmsg6"},
	{prog: bpf.TuxscopeProgDnsEgress, point: PointDNS, impl: implCgroup, serves: everyBackend, kind: kindCgroup, target: "egress"},
	{prog: bpf.TuxscopeProgDnsIngress, point: PointDNS, impl: implCgroup, serves: everyBackend, kind: kindCgroup, target: "ingress"},

	// udp: the DNS point's hooks count UDP flows and name their sockets
	// at connect and sendmsg; these name them at bind and recvmsg, and
	// end a socket's flows at its release (Linux 5.9+; without it flows
	// end only when idle).
	{prog: bpf.TuxscopeProgUdpBind4, point: PointUDP, impl: implCgroup, serves: everyBackend, kind: kindCgroup, target: "bind4"},
	{prog: bpf.TuxscopeProgUdpBind6, point: PointUDP, impl: implCgroup, serves: everyBackend, kind: kindCgroup, target: "bind6"},
	{prog: bpf.TuxscopeProgUdpRecvmsg4, point: PointUDP, impl: implCgroup, serves: everyBackend, kind: kindCgroup, target: "recvmsg4"},
	{prog: bpf.TuxscopeProgUdpRecvmsg6, point: PointUDP, impl: implCgroup, serves: everyBackend, kind: kindCgroup, target: "recvmsg6"},
	{prog: bpf.TuxscopeProgUdpRelease, point: PointUDP, impl: implCgroup, serves: everyBackend, kind: kindCgroup, target: "sock_release", optional: true, needs: sockReleaseErr},
}

// stateSeesSyscall reports whether the state point's programs can read
// the system call their thread is in (bpf_task_pt_regs, Linux 5.15+, on
// the task bpf_get_current_task_btf gives, which needs the kernel's own
// BTF, not a --btf file): then the tracepoint backend's connects need no
// sys_enter_connect (connect_syscall_nr in the BPF source).
func stateSeesSyscall(kernel *btf.Spec) bool {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return false
	}
	return kernelEnumHas(kernel, "bpf_func_id", "BPF_FUNC_task_pt_regs")
}

// kernelEnumHas reports whether the kernel's BTF has enum name with a
// value called value.
func kernelEnumHas(kernel *btf.Spec, name, value string) bool {
	var e *btf.Enum
	if kernel == nil || kernel.TypeByName(name, &e) != nil {
		return false
	}
	return slices.ContainsFunc(e.Values, func(v btf.EnumValue) bool { return v.Name == value })
}

// sockReleaseErr says why the kernel has no cgroup/sock_release hook
// (added in Linux 5.9), from its BTF.
func sockReleaseErr(kernel *btf.Spec) error {
	if kernelEnumHas(kernel, "bpf_attach_type", "BPF_CGROUP_INET_SOCK_RELEASE") {
		return nil
	}
	return errors.New("no cgroup/sock_release hook (Linux 5.9+): UDP flows end only when idle")
}

// hook is a descriptor as one implementation attaches it.
type hook struct {
	*hookDesc
	catchUp bool // see hookDesc.catchUpFor
	// unusable is why this kernel cannot take it (hookDesc.needs): it is
	// then not attached, as if attaching had failed.
	unusable error
}

// mayFail says whether the implementation attaching h goes on without it.
func (h hook) mayFail() bool { return h.catchUp || h.optional }

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
	return l, err
}

// attachError says in words why a hook could not be attached, naming the
// capability that is missing (have lacks) when the kernel refused it.
func attachError(h hook, err error, have Caps) error {
	var pe *fs.PathError
	switch {
	case h.kind == kindTracepoint && errors.As(err, &pe) && errors.Is(err, fs.ErrPermission) && missingAny(have, needReadSearch):
		// cilium/ebpf could not read the tracepoint's id in tracefs.
		return fmt.Errorf("tracepoint %s: %v", h.target, tracefsDenied(tracefsMounted()))
	case permissionDenied(err) && h.kind == kindCgroup && missingAny(have, needNetAdmin):
		return fmt.Errorf("attaching %s: %v: needs CAP_NET_ADMIN (missing)", h, err)
	case permissionDenied(err) && h.kind != kindCgroup && missingAny(have, needPerfmon):
		return fmt.Errorf("attaching %s: %v: needs CAP_PERFMON (missing)", h, err)
	}
	switch {
	case h.kind == kindKprobe || h.kind == kindKretprobe:
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

var errNoKprobes = errors.New("kprobes: not built into this kernel (CONFIG_KPROBES is off)")

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

// HookPoint is one thing tuxscope needs to see, with the implementations
// that can serve it (hookTable).
type HookPoint string

// The hook points.
const (
	PointConnect HookPoint = "connect"
	PointAccept  HookPoint = "accept"
	// PointState follows TCP state changes (a connect's outcome, closes).
	// Every backend uses the stable sock:inet_sock_set_state tracepoint
	// for it: it fires where the kernel changes state, on every kernel
	// since 4.16. Its raw form is cheaper (no trace record is built for
	// the program), the classic form is --backend tracepoint's: see
	// hookTable.
	PointState HookPoint = "state"
	// PointDNS reads DNS messages off socket buffers: cgroup hooks on the
	// root cgroup v2, whatever the backend (kprobes are not needed).
	// Optional: where it fails, only names are missing (Tracer.DNSError).
	PointDNS HookPoint = "dns"
	// PointRetransmit and PointReset follow retransmits and resets
	// through the tcp: tracepoints (raw, or classic for --backend
	// tracepoint). Optional: where they fail, only those events (and a
	// close's reset flag for a reset this side sent before closing) are
	// missing (Tracer.HealthErrors).
	PointRetransmit HookPoint = "retransmit"
	PointReset      HookPoint = "reset"
	// PointUDP follows UDP flows: cgroup hooks on the root cgroup v2
	// (with the DNS point's packet hooks, which count the packets).
	// Optional: where it fails, only UDP flows are missing
	// (Tracer.UDPError).
	PointUDP HookPoint = "udp"
)

// optionalPoint reports whether tracing goes on without p.
func optionalPoint(p HookPoint) bool {
	return p == PointDNS || p == PointRetransmit || p == PointReset || p == PointUDP
}

// HookPoints are the points a backend is chosen for, in attach order.
var HookPoints = []HookPoint{PointConnect, PointAccept}

// attachOrder is every hook point, in the order Open attaches them.
var attachOrder = []HookPoint{PointConnect, PointAccept, PointState, PointRetransmit, PointReset, PointDNS, PointUDP}

// candidates are the implementations of p to try for backend b, in
// hookTable's order: those that serve b, or with Auto, all of them.
func candidates(p HookPoint, b Backend) []Impl {
	var impls []Impl
	for _, d := range hookTable {
		if d.point == p && (b == Auto || slices.Contains(d.serves, b)) && !slices.Contains(impls, d.impl) {
			impls = append(impls, d.impl)
		}
	}
	return impls
}

// hooks lists, in hookTable's order, what implementation im of point p
// attaches on the kernel described by kernel, or why it cannot there.
func hooks(p HookPoint, im Impl, kernel *btf.Spec) ([]hook, error) {
	if im == implKprobe && !kprobesAvailable() {
		// Known before loading: no verifier time spent on programs
		// that cannot attach (20 ms for accept's on the 6.18 host).
		return nil, errNoKprobes
	}
	var hs []hook
	for i := range hookTable {
		d := &hookTable[i]
		catchUp := slices.Contains(d.catchUpFor, im)
		if d.point != p || (d.impl != im && !catchUp) {
			continue
		}
		if d.params != 0 {
			prog, err := fexitVariant(kernel, d.target)
			if err != nil {
				return nil, err
			}
			if prog != d.prog {
				continue
			}
		}
		if d.unneeded != nil && d.unneeded(kernel) {
			continue
		}
		h := hook{hookDesc: d, catchUp: catchUp}
		if d.needs != nil {
			h.unusable = d.needs(kernel)
		}
		hs = append(hs, h)
	}
	return hs, nil
}

// fexitVariant picks, of the fexit programs written for different
// prototypes of target (hookDesc.params), the one that matches the running
// kernel's: for inet_csk_accept, (sk, flags, err, kern) before Linux 6.10,
// (sk, arg) since.
func fexitVariant(kernel *btf.Spec, target string) (string, error) {
	var fn *btf.Func
	if err := kernel.TypeByName(target, &fn); err != nil {
		return "", fmt.Errorf("fentry: %s not found in kernel BTF: %v", target, err)
	}
	proto, ok := fn.Type.(*btf.FuncProto)
	if !ok {
		return "", fmt.Errorf("fentry: %s has no prototype in kernel BTF", target)
	}
	for _, d := range hookTable {
		if d.kind == kindFexit && d.target == target && d.params == len(proto.Params) {
			return d.prog, nil
		}
	}
	return "", fmt.Errorf("fentry: unknown %s signature with %d parameters", target, len(proto.Params))
}

// uringCompleteArgs tells raw_uring_done how the running kernel passes
// io_uring_complete's arguments, from its prototype in the kernel's BTF
// (btf_trace_io_uring_complete, whose first parameter is the tracepoint's
// own data pointer):
//
//	1: (ctx, user_data, res) before Linux 5.15, (ctx, user_data, res, cflags) to 5.18
//	2: (ctx, req, user_data, res, cflags, extra1, extra2) from 5.19
//	3: (ctx, req, cqe) since
func uringCompleteArgs(kernel *btf.Spec) (uint8, error) {
	var td *btf.Typedef
	if err := kernel.TypeByName("btf_trace_io_uring_complete", &td); err != nil {
		return 0, errors.New("no io_uring_complete tracepoint in the kernel's BTF (built without io_uring?)")
	}
	ptr, _ := btf.UnderlyingType(td.Type).(*btf.Pointer)
	var proto *btf.FuncProto
	if ptr != nil {
		proto, _ = btf.UnderlyingType(ptr.Target).(*btf.FuncProto)
	}
	if proto == nil || len(proto.Params) < 2 {
		return 0, errors.New("io_uring_complete: no prototype in the kernel's BTF")
	}
	args := proto.Params[1:]
	_, thirdIsPointer := btf.UnderlyingType(args[len(args)-1].Type).(*btf.Pointer)
	switch {
	case len(args) == 3 && thirdIsPointer:
		return 3, nil
	case len(args) == 3 || len(args) == 4:
		return 1, nil
	case len(args) == 7:
		return 2, nil
	}
	return 0, fmt.Errorf("io_uring_complete: unknown prototype with %d arguments", len(args))
}

func uringCompleteArgsErr(kernel *btf.Spec) error {
	_, err := uringCompleteArgs(kernel)
	return err
}

var cgroupAttachTypes = map[string]ebpf.AttachType{
	"connect4": ebpf.AttachCGroupInet4Connect,
	"connect6": ebpf.AttachCGroupInet6Connect,
	"sendmsg4": ebpf.AttachCGroupUDP4Sendmsg,
	"sendmsg6": ebpf.AttachCGroupUDP6Sendmsg,
	"egress":   ebpf.AttachCGroupInetEgress,
	"ingress":  ebpf.AttachCGroupInetIngress,
	"bind4":    ebpf.AttachCGroupInet4Bind,
	"bind6":    ebpf.AttachCGroupInet6Bind,
	"recvmsg4": ebpf.AttachCGroupUDP4Recvmsg,
	"recvmsg6": ebpf.AttachCGroupUDP6Recvmsg,
	// cgroup/sock_release
	"sock_release": ebpf.AttachCgroupInetSockRelease,
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

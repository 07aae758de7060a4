package tracer

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"

	"github.com/tuxscope/tuxscope/internal/bpf"
)

// Check is one yes/no finding with its explanation.
type Check struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// PointCheck says whether one backend can serve one hook point here.
type PointCheck struct {
	Point   HookPoint `json:"point"`
	OK      bool      `json:"ok"`
	Reason  string    `json:"reason,omitempty"`  // why not, when !OK
	Hooks   []string  `json:"hooks,omitempty"`   // what it attached, when OK
	Skipped []string  `json:"skipped,omitempty"` // catch-up or optional hooks it could not attach
}

// BackendCheck is one backend's PointChecks.
type BackendCheck struct {
	Backend Backend      `json:"backend"`
	Points  []PointCheck `json:"points"`
}

// AutoChoice is what --backend auto picks for one hook point ("" if none).
type AutoChoice struct {
	Point   HookPoint `json:"point"`
	Backend Backend   `json:"backend"`
}

// Report is what `tuxscope doctor` finds out about this kernel.
type Report struct {
	Kernel     string `json:"kernel"`
	BTF        Check  `json:"btf"`
	Lockdown   string `json:"lockdown"`
	Privileges Check  `json:"privileges"`
	// Capabilities are the effective capabilities tuxscope uses that this
	// process has; Requirements what each feature needs, and lacks.
	Capabilities    []string      `json:"capabilities"`
	Requirements    []Requirement `json:"requirements"`
	RingBuffer      Check         `json:"ring_buffer"`
	Kprobes         Check         `json:"kprobes"`
	AcceptSignature string        `json:"inet_csk_accept_signature"`
	// IOUring is how io_uring's accepts are seen with --backend
	// tracepoint (the function hooks see them in inet_csk_accept).
	IOUring Check `json:"io_uring"`
	// State is whether sock:inet_sock_set_state (outcomes, closes) works;
	// every backend relies on it.
	State Check `json:"state_tracepoint"`
	// DNS is whether the cgroup hooks that read DNS (for hostnames) work.
	DNS Check `json:"dns_cgroup_hooks"`
	// UDP is whether the cgroup hooks behind UDP flows work (with the
	// DNS point's packet hooks), and whether flows end at their socket's
	// close (cgroup/sock_release, Linux 5.9+) or only when idle.
	UDP Check `json:"udp_cgroup_hooks"`
	// Retransmits and Resets are whether the tcp: tracepoints behind
	// retransmit and reset events work (the rest runs without them).
	Retransmits Check          `json:"retransmit_tracepoints"`
	Resets      Check          `json:"reset_tracepoints"`
	Backends    []BackendCheck `json:"backends"`
	Auto        []AutoChoice   `json:"auto"`
}

// Usable reports whether auto finds a backend for every hook point.
func (r *Report) Usable() bool {
	if !r.State.OK || len(r.Auto) != len(HookPoints) {
		return false
	}
	for _, a := range r.Auto {
		if a.Backend == "" {
			return false
		}
	}
	return true
}

// Doctor checks, for real, what each backend can do on this kernel: every
// hook point's programs are loaded and attached, then removed.
func Doctor(btfPath string) *Report {
	r := &Report{Kernel: kernelRelease(), Lockdown: lockdownMode()}
	r.Kprobes = Check{OK: kprobesAvailable(), Detail: "kprobe PMU or kprobe_events present"}
	if !r.Kprobes.OK {
		r.Kprobes.Detail = "not built into this kernel (CONFIG_KPROBES is off)"
	}

	kernel, err := loadKernelBTF(btfPath)
	if err != nil {
		r.BTF = Check{Detail: err.Error()}
	} else {
		path := btfPath
		if path == "" {
			path = KernelBTFPath
		}
		r.BTF = Check{OK: true, Detail: path}
		r.AcceptSignature = acceptSignature(kernel)
		r.IOUring = uringCheck(kernel, ioUringDisabled())
	}

	notChecked := func(why string) *Report {
		for _, b := range Backends {
			bc := BackendCheck{Backend: b}
			for _, p := range HookPoints {
				bc.Points = append(bc.Points, PointCheck{Point: p, Reason: "not checked: " + why})
			}
			r.Backends = append(r.Backends, bc)
		}
		for _, p := range HookPoints {
			r.Auto = append(r.Auto, AutoChoice{Point: p})
		}
		return r
	}
	have, err := EffectiveCaps()
	if err != nil {
		have = AllCaps
	}
	r.Capabilities = (have & usedCaps).Names()
	r.Requirements = Requirements(have, Host{
		TracefsMounted:  tracefsMounted() != "",
		TracefsReadable: tracefsState() == nil,
		Memcg:           memcgAccounting(r.Kernel),
	})
	if err := privilegeError(have); err != nil {
		r.Privileges = Check{Detail: err.Error()}
		r.RingBuffer = Check{Detail: "not checked: " + err.Error()}
		r.State = Check{Detail: "not checked: " + err.Error()}
		r.DNS = Check{Detail: "not checked: " + err.Error()}
		r.Retransmits, r.Resets = r.DNS, r.DNS
		return notChecked(err.Error())
	}
	r.Privileges = Check{OK: true, Detail: "can load BPF programs"}
	if err := features.HaveMapType(ebpf.RingBuf); err != nil {
		r.RingBuffer = Check{Detail: fmt.Sprintf("BPF ring buffer unavailable (needs Linux 5.8+): %v", err)}
	} else {
		r.RingBuffer = Check{OK: true, Detail: "BPF_MAP_TYPE_RINGBUF"}
	}
	if !r.BTF.OK {
		r.State = Check{Detail: "not checked: no kernel BTF"}
		r.DNS = Check{Detail: "not checked: no kernel BTF"}
		r.Retransmits, r.Resets = r.DNS, r.DNS
		return notChecked("no kernel BTF")
	}

	l, err := newLoader(Config{IPv4: true, IPv6: true, RingBufferBytes: os.Getpagesize(), BTFPath: btfPath})
	if err != nil {
		r.State = Check{Detail: "not checked: " + err.Error()}
		r.DNS = Check{Detail: "not checked: " + err.Error()}
		r.Retransmits, r.Resets = r.DNS, r.DNS
		return notChecked(err.Error())
	}
	defer l.close()
	r.State = l.checkState()
	r.Retransmits = l.checkTracepoints(PointRetransmit, "retransmit events")
	r.Resets = l.checkTracepoints(PointReset, "reset events")
	r.DNS = l.check(PointDNS, implCgroup)
	r.UDP = l.check(PointUDP, implCgroup)
	switch {
	case r.UDP.OK && !r.DNS.OK:
		r.UDP = Check{Detail: "the packet hooks that count UDP flows failed (see dns)"}
	case r.UDP.OK && strings.Contains(r.UDP.Detail, "sock_release ("):
		r.UDP.Detail += "; flows end only when idle (--udp-idle)"
	case r.UDP.OK:
		r.UDP.Detail += " and the dns point's packet hooks; flows end at their socket's close or when idle"
	}
	if err := netnsScoping(l.kernel); r.DNS.OK && err != nil {
		r.DNS.Detail += "; names not kept per network namespace: " + err.Error()
	} else if r.DNS.OK {
		r.DNS.Detail += "; names kept per network namespace"
	}
	auto := map[HookPoint]Backend{}
	for _, b := range Backends {
		bc := BackendCheck{Backend: b}
		for _, p := range HookPoints {
			pc := PointCheck{Point: p}
			// connect and accept: one implementation per backend
			ap, err := l.try(p, candidates(p, b)[0])
			if err != nil {
				pc.Reason = err.Error()
			} else {
				c := ap.choice()
				pc.OK, pc.Hooks, pc.Skipped = true, c.Hooks, c.Skipped
				ap.close()
				if auto[p] == "" {
					auto[p] = b
				}
			}
			bc.Points = append(bc.Points, pc)
		}
		r.Backends = append(r.Backends, bc)
	}
	for _, p := range HookPoints {
		r.Auto = append(r.Auto, AutoChoice{Point: p, Backend: auto[p]})
	}
	return r
}

// usedCaps are the capabilities some feature of tuxscope needs.
var usedCaps = CapsOf(unix.CAP_BPF, unix.CAP_PERFMON, unix.CAP_NET_ADMIN, unix.CAP_DAC_READ_SEARCH,
	unix.CAP_DAC_OVERRIDE, unix.CAP_SYS_PTRACE, unix.CAP_SYS_ADMIN, unix.CAP_SYS_RESOURCE)

// memcgAccounting reports whether kernel release rel (e.g. "6.18.4-x")
// charges BPF memory to the memory cgroup (Linux 5.11 and later) rather
// than to RLIMIT_MEMLOCK.
func memcgAccounting(rel string) bool {
	var major, minor int
	if _, err := fmt.Sscanf(rel, "%d.%d", &major, &minor); err != nil {
		return true // cannot tell; the loads will say
	}
	return major > 5 || major == 5 && minor >= 11
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return string(bytes.TrimRight(u.Release[:], "\x00"))
}

// lockdownMode is the active mode in /sys/kernel/security/lockdown
// ("none [integrity] confidentiality"), mounting securityfs for the read
// if nothing has, or else what the boot command line set.
func lockdownMode() string {
	const dir, file = "/sys/kernel/security", "/sys/kernel/security/lockdown"
	b, err := os.ReadFile(file)
	if os.IsNotExist(err) && unix.Mount("securityfs", dir, "securityfs", unix.MS_RDONLY, "") == nil {
		b, err = os.ReadFile(file)
		unix.Unmount(dir, 0)
	}
	if err == nil {
		s := string(b)
		if i := strings.IndexByte(s, '['); i >= 0 {
			if j := strings.IndexByte(s[i:], ']'); j > 0 {
				return s[i+1 : i+j]
			}
		}
	}
	if b, err := os.ReadFile("/proc/cmdline"); err == nil {
		for _, f := range strings.Fields(string(b)) {
			if v, ok := strings.CutPrefix(f, "lockdown="); ok {
				return v + " (from the kernel command line)"
			}
		}
	}
	return "unknown (securityfs not mounted)"
}

// acceptSignature describes the kernel's inet_csk_accept.
func acceptSignature(kernel *btf.Spec) string {
	switch prog, err := fexitVariant(kernel, "inet_csk_accept"); {
	case err != nil:
		return err.Error()
	case prog == bpf.TuxscopeProgFexitAccOld:
		return "(sk, flags, err, kern): before Linux 6.10"
	default:
		return "(sk, arg): Linux 6.10 and later"
	}
}

// uringCheck says, from the kernel's BTF, how the tracepoint backend sees
// io_uring's accepts: from io_uring_complete, with the request's opcode
// where the tracepoint carries it (Linux 5.19 and later). disabled is
// kernel.io_uring_disabled ("" if the kernel has no such setting).
func uringCheck(kernel *btf.Spec, disabled string) Check {
	args, err := uringCompleteArgs(kernel)
	if err != nil {
		return Check{Detail: err.Error()}
	}
	c := Check{OK: true, Detail: "accepts: raw_tracepoint:io_uring_complete, with the request's opcode"}
	if args == 1 {
		c.Detail = "accepts: raw_tracepoint:io_uring_complete, without the request (before Linux 5.19): each result is matched against connections not yet accepted"
	}
	c.Detail += " (--backend tracepoint; fentry and kprobe see them in inet_csk_accept); connects: at their SYN_SENT change, every backend"
	if disabled == "2" {
		c.Detail += "; io_uring is disabled here (kernel.io_uring_disabled = 2)"
	}
	return c
}

// ioUringDisabled is kernel.io_uring_disabled (Linux 6.6 and later), or
// "" where there is no such setting.
func ioUringDisabled() string {
	b, err := os.ReadFile("/proc/sys/kernel/io_uring_disabled")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// checkState says which forms of the state tracepoint work here: the raw
// one (every backend's) and the classic one (the fallback).
//
// Its programs are loaded as beside the tracepoint backend's connects,
// whose code in them is the most (connectsFromSyscalls); the line says
// how those tell a thread inside connect(2) on this kernel.
func (l *loader) checkState() Check {
	if err := l.connectsFromSyscalls(); err != nil {
		return Check{Detail: err.Error()}
	}
	c := l.checkForms(PointState)
	if !c.OK {
		return c
	}
	if stateSeesSyscall(l.kernel) {
		c.Detail += "; tracepoint connects: a thread in connect(2) told by its system call (Linux 5.15+), no sys_enter_connect"
	} else {
		c.Detail += "; tracepoint connects: sys_enter_connect marks a thread in connect(2) (before Linux 5.15)"
	}
	return c
}

// checkForms says which forms of a tracepoint point work here: the raw
// one and the classic one.
func (l *loader) checkForms(p HookPoint) Check {
	raw, classic := l.check(p, implRawTracepoint), l.check(p, implTracepoint)
	switch {
	case raw.OK && classic.OK:
		return Check{OK: true, Detail: raw.Detail + "; " + classic.Detail + " as the fallback"}
	case raw.OK:
		return Check{OK: true, Detail: raw.Detail + "; not the classic tracepoint (the fallback): " + classic.Detail}
	case classic.OK:
		return Check{OK: true, Detail: classic.Detail + "; raw tracepoint: " + raw.Detail}
	}
	return Check{Detail: "raw tracepoint: " + raw.Detail + "; tracepoint: " + classic.Detail}
}

// checkTracepoints says which forms of an optional tcp: tracepoint point
// work here, and, where neither does, that what says fails is missing
// while the rest runs.
func (l *loader) checkTracepoints(p HookPoint, what string) Check {
	c := l.checkForms(p)
	if !c.OK {
		c.Detail += "; tuxscope runs without " + what
	}
	return c
}

// check tries one implementation of a hook point, then removes it.
func (l *loader) check(p HookPoint, im Impl) Check {
	ap, err := l.try(p, im)
	if err != nil {
		return Check{Detail: err.Error()}
	}
	defer ap.close()
	c := ap.choice()
	detail := strings.Join(c.Hooks, ", ")
	if len(c.Skipped) > 0 {
		detail += " (without " + strings.Join(c.Skipped, ", ") + ")"
	}
	return Check{OK: true, Detail: detail}
}

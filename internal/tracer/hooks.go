package tracer

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/tuxscope/tuxscope/internal/bpf"
)

// hook is one BPF program and the kernel hook it attaches to.
type hook struct {
	prog        string // program name in the BPF object
	kind        string // "tracepoint"
	group, name string
	connect     bool // needed to trace connects
	accept      bool // needed to trace accepts
}

func (h hook) String() string { return h.kind + ":" + h.group + ":" + h.name }

func (h hook) attach(prog *ebpf.Program) (link.Link, error) {
	l, err := link.Tracepoint(h.group, h.name, prog, nil)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("kernel hook %s is missing on this kernel (syscall tracepoints need CONFIG_FTRACE_SYSCALLS): %w", h, err)
		}
		return nil, fmt.Errorf("attaching %s: %w", h, err)
	}
	return l, nil
}

// hookSet is one way of hooking the kernel. Each set covers every event
// type; which one is used is decided per kernel.
type hookSet struct {
	name  string
	hooks []hook
}

// hooksFor is the subset of the set that cfg needs.
func (s *hookSet) hooksFor(cfg Config) []hook {
	var out []hook
	for _, h := range s.hooks {
		if (h.connect && cfg.Connect) || (h.accept && cfg.Accept) {
			out = append(out, h)
		}
	}
	return out
}

// tracepointSet uses stable tracepoints only: it needs neither kprobes nor
// BPF trampolines, and every hook runs in the process that made the call.
var tracepointSet = hookSet{
	name: "tracepoint",
	hooks: []hook{
		{prog: bpf.TuxscopeProgTpSysEnterConnect, kind: "tracepoint", group: "syscalls", name: "sys_enter_connect", connect: true},
		{prog: bpf.TuxscopeProgTpInetSockSetState, kind: "tracepoint", group: "sock", name: "inet_sock_set_state", connect: true},
		{prog: bpf.TuxscopeProgTpSysExitConnect, kind: "tracepoint", group: "syscalls", name: "sys_exit_connect", connect: true},
		{prog: bpf.TuxscopeProgTpSysExitAccept4, kind: "tracepoint", group: "syscalls", name: "sys_exit_accept4", accept: true},
		{prog: bpf.TuxscopeProgTpSysExitAccept, kind: "tracepoint", group: "syscalls", name: "sys_exit_accept", accept: true},
	},
}

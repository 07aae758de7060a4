package tracer

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/tuxscope/tuxscope/internal/bpf"
)

// objNameLen is BPF_OBJ_NAME_LEN - 1: the bytes of a program's name the
// kernel keeps (bpftool, /proc/PID/fdinfo and program info show no more).
const objNameLen = 15

// section is the ELF section a descriptor's kind and target call for.
func (d *hookDesc) section() string {
	switch d.kind {
	case kindFexit, kindKprobe, kindKretprobe:
		return string(d.kind) + "/" + d.target
	case kindTracepoint:
		group, name, _ := strings.Cut(d.target, ":")
		return "tracepoint/" + group + "/" + name
	case kindRawTP:
		return "raw_tp/" + d.target
	case kindCgroup:
		if d.target == "egress" || d.target == "ingress" {
			return "cgroup_skb/" + d.target
		}
		return "cgroup/" + d.target
	}
	return "unknown kind " + string(d.kind)
}

// The hook table and the BPF object agree: every program is attached by
// exactly one descriptor, at the hook its ELF section names, and its name
// survives the kernel's truncation.
func TestHookTable(t *testing.T) {
	spec, err := bpf.LoadTuxscope()
	if err != nil {
		t.Fatal(err)
	}
	descs := map[string]int{}
	for i := range hookTable {
		d := &hookTable[i]
		descs[d.prog]++
		ps, ok := spec.Programs[d.prog]
		if !ok {
			t.Errorf("hookTable names %s, which the BPF object does not have", d.prog)
			continue
		}
		if want := d.section(); ps.SectionName != want {
			t.Errorf("%s: hookTable says %s:%s, so section %q; the program is in %q", d.prog, d.kind, d.target, want, ps.SectionName)
		}
		if at, ok := cgroupAttachTypes[d.target]; d.kind == kindCgroup && (!ok || ps.AttachType != at) {
			t.Errorf("%s: cgroup attach point %q is not the program's attach type, %v", d.prog, d.target, ps.AttachType)
		}
		if d.params != 0 && d.kind != kindFexit {
			t.Errorf("%s: params is for fexit programs, not %s", d.prog, d.kind)
		}
		if len(d.serves) == 0 {
			t.Errorf("%s serves no backend", d.prog)
		}
		for _, other := range hookTable {
			if other.point == d.point && other.impl == d.impl && !slices.Equal(other.serves, d.serves) {
				t.Errorf("%s and %s: implementation %s of %s serves %v and %v", d.prog, other.prog, d.impl, d.point, d.serves, other.serves)
			}
		}
		for _, im := range d.catchUpFor {
			if !slices.Contains(candidates(d.point, Auto), im) || im == d.impl {
				t.Errorf("%s: catch-up for %s, not another implementation of %s", d.prog, im, d.point)
			}
		}
		if !slices.Contains(attachOrder, d.point) {
			t.Errorf("%s: hook point %s is never attached", d.prog, d.point)
		}
	}
	short := map[string]string{}
	for name := range spec.Programs {
		if n := descs[name]; n != 1 {
			t.Errorf("program %s is attached by %d descriptors in hookTable, want 1", name, n)
		}
		if len(name) > objNameLen {
			t.Errorf("program %s: %d bytes, the kernel keeps %d (%q)", name, len(name), objNameLen, name[:objNameLen])
		}
		s := name[:min(len(name), objNameLen)]
		if other, dup := short[s]; dup {
			t.Errorf("programs %s and %s are both %q to the kernel", name, other, s)
		}
		short[s] = name
	}
}

// Which implementations each backend tries, in order, per hook point.
func TestCandidates(t *testing.T) {
	for _, tt := range []struct {
		point HookPoint
		want  map[Backend][]Impl
	}{
		{PointConnect, map[Backend][]Impl{
			Auto: {"fentry", "kprobe", "tracepoint"}, Fentry: {"fentry"}, Kprobe: {"kprobe"}, Tracepoint: {"tracepoint"},
		}},
		{PointAccept, map[Backend][]Impl{
			Auto: {"fentry", "kprobe", "tracepoint"}, Fentry: {"fentry"}, Kprobe: {"kprobe"}, Tracepoint: {"tracepoint"},
		}},
		{PointState, map[Backend][]Impl{
			Auto: {"raw_tracepoint", "tracepoint"}, Fentry: {"raw_tracepoint", "tracepoint"},
			Kprobe: {"raw_tracepoint", "tracepoint"}, Tracepoint: {"raw_tracepoint", "tracepoint"},
		}},
		{PointDNS, map[Backend][]Impl{
			Auto: {"cgroup"}, Fentry: {"cgroup"}, Kprobe: {"cgroup"}, Tracepoint: {"cgroup"},
		}},
	} {
		for b, want := range tt.want {
			if got := candidates(tt.point, b); !slices.Equal(got, want) {
				t.Errorf("candidates(%s, %s) = %v, want %v", tt.point, b, got, want)
			}
		}
	}
}

// kernelWithAccept is kernel BTF holding only inet_csk_accept, with n
// parameters (none at all if n < 0).
func kernelWithAccept(t *testing.T, n int) *btf.Spec {
	t.Helper()
	var types []btf.Type
	if n >= 0 {
		ptr := &btf.Pointer{Target: &btf.Void{}}
		proto := &btf.FuncProto{Return: ptr}
		for i := 0; i < n; i++ {
			proto.Params = append(proto.Params, btf.FuncParam{Name: "p", Type: ptr})
		}
		types = append(types, &btf.Func{Name: "inet_csk_accept", Type: proto, Linkage: btf.GlobalFunc})
	} else {
		types = append(types, &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed})
	}
	return btfSpec(t, types...)
}

// The fexit accept program follows the kernel's inet_csk_accept: 2
// parameters since Linux 6.10, 4 before; anything else leaves the fentry
// backend without accepts, saying why.
func TestFexitAcceptBySignature(t *testing.T) {
	catchUps := []string{"tracepoint:syscalls:sys_exit_accept4", "tracepoint:syscalls:sys_exit_accept"}
	for _, tt := range []struct {
		params    int
		prog, err string
		signature string
	}{
		{2, bpf.TuxscopeProgFexitAccept, "", "(sk, arg): Linux 6.10 and later"},
		{4, bpf.TuxscopeProgFexitAccOld, "", "(sk, flags, err, kern): before Linux 6.10"},
		{3, "", "fentry: unknown inet_csk_accept signature with 3 parameters", ""},
		{-1, "", "fentry: inet_csk_accept not found in kernel BTF: ", ""},
	} {
		kernel := kernelWithAccept(t, tt.params)
		hs, err := hooks(PointAccept, implFentry, kernel)
		if tt.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
				t.Errorf("%d parameters: err = %v, want %q...", tt.params, err, tt.err)
			}
			if got := acceptSignature(kernel); !strings.HasPrefix(got, tt.err) {
				t.Errorf("%d parameters: acceptSignature = %q", tt.params, got)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%d parameters: %v", tt.params, err)
		}
		var progs, names []string
		var catchUp []bool
		for _, h := range hs {
			progs, names, catchUp = append(progs, h.prog), append(names, h.String()), append(catchUp, h.catchUp)
		}
		want := append([]string{"fexit:inet_csk_accept"}, catchUps...)
		if progs[0] != tt.prog || !slices.Equal(names, want) || !reflect.DeepEqual(catchUp, []bool{false, true, true}) {
			t.Errorf("%d parameters: hooks %v %v (catch-up %v), want %s first, then %v as catch-ups", tt.params, progs, names, catchUp, tt.prog, catchUps)
		}
		if got := acceptSignature(kernel); got != tt.signature {
			t.Errorf("%d parameters: acceptSignature = %q, want %q", tt.params, got, tt.signature)
		}
	}
	// The other implementations do not depend on the signature.
	// The tracepoint backend's: accept(2)'s exits, and io_uring's
	// completions where the kernel has them.
	hs, err := hooks(PointAccept, implTracepoint, kernelWithAccept(t, 3))
	if err != nil || len(hs) != 3 || hs[0].mayFail() || hs[1].mayFail() || !hs[2].mayFail() ||
		hs[2].String() != "raw_tracepoint:io_uring_complete" || hs[2].unusable == nil {
		t.Errorf("tracepoint accept hooks: %v, %v", hs, err)
	}
}

// Why nothing could be attached reads as it always has.
func TestNoImplError(t *testing.T) {
	e := errors.New
	for _, tt := range []struct {
		p     HookPoint
		b     Backend
		impls []Impl
		errs  []error
		want  string
	}{
		{PointConnect, Fentry, []Impl{"fentry"}, []error{e("x")}, "backend fentry cannot trace connects on this kernel: x"},
		{PointAccept, Auto, []Impl{"fentry", "kprobe"}, []error{e("x"), e("y")}, "no backend can trace accepts on this kernel (fentry: x; kprobe: y)"},
		{PointState, Tracepoint, []Impl{"tracepoint"}, []error{e("x")}, "cannot follow TCP state changes (tracepoint: x)"},
		{PointState, Auto, []Impl{"raw_tracepoint", "tracepoint"}, []error{e("x"), e("y")}, "cannot follow TCP state changes (raw_tracepoint: x; tracepoint: y)"},
		{PointDNS, Auto, []Impl{"cgroup"}, []error{e("no cgroup v2")}, "no cgroup v2"},
	} {
		if got := noImplError(tt.p, tt.b, tt.impls, tt.errs).Error(); got != tt.want {
			t.Errorf("%s/%s: %q, want %q", tt.p, tt.b, got, tt.want)
		}
	}
}

// kernelWithUringComplete is kernel BTF holding io_uring_complete's
// prototype as raw tracepoints see it (btf_trace_io_uring_complete: the
// tracepoint's data pointer, then its arguments), args saying for each
// whether it is a pointer ('p') or an integer ('i').
func kernelWithUringComplete(t *testing.T, args string) *btf.Spec {
	t.Helper()
	ptr := &btf.Pointer{Target: &btf.Void{}}
	u64 := &btf.Int{Name: "u64", Size: 8}
	proto := &btf.FuncProto{Return: &btf.Void{}, Params: []btf.FuncParam{{Type: ptr}}}
	for _, a := range args {
		var typ btf.Type = u64
		if a == 'p' {
			typ = ptr
		}
		proto.Params = append(proto.Params, btf.FuncParam{Type: typ})
	}
	td := &btf.Typedef{Name: "btf_trace_io_uring_complete", Type: &btf.Pointer{Target: proto}}
	return btfSpec(t, td)
}

// io_uring_complete's arguments, as each kernel passes them; anything
// else leaves the hook unusable, saying why.
func TestUringCompleteArgs(t *testing.T) {
	for _, tt := range []struct {
		args string
		want uint8
		err  string
	}{
		{"pii", 1, ""},     // 5.10: (ctx, user_data, res)
		{"piii", 1, ""},    // 5.15: (ctx, user_data, res, cflags)
		{"ppiiiii", 2, ""}, // 5.19: (ctx, req, user_data, res, cflags, extra1, extra2)
		{"ppp", 3, ""},     // (ctx, req, cqe)
		{"pp", 0, "io_uring_complete: unknown prototype with 2 arguments"},
	} {
		got, err := uringCompleteArgs(kernelWithUringComplete(t, tt.args))
		if got != tt.want || (err == nil) != (tt.err == "") || err != nil && err.Error() != tt.err {
			t.Errorf("%s: %d, %v; want %d, %q", tt.args, got, err, tt.want, tt.err)
		}
	}
	if _, err := uringCompleteArgs(kernelWithAccept(t, 2)); err == nil || !strings.Contains(err.Error(), "built without io_uring") {
		t.Errorf("without io_uring: %v", err)
	}
	hs, err := hooks(PointAccept, implTracepoint, kernelWithUringComplete(t, "ppp"))
	if err != nil || len(hs) != 3 || hs[2].unusable != nil {
		t.Errorf("hooks with io_uring: %v, %v", hs, err)
	}
}

// doctor says how io_uring's accepts are seen: with the request's opcode
// since 5.19's tracepoint carries it, by matching results before, not at
// all without io_uring.
func TestUringCheck(t *testing.T) {
	for _, tt := range []struct {
		kernel   *btf.Spec
		disabled string
		ok       bool
		detail   string
	}{
		{kernelWithUringComplete(t, "ppp"), "0", true, "accepts: raw_tracepoint:io_uring_complete, with the request's opcode (--backend tracepoint; "},
		{kernelWithUringComplete(t, "ppiiiii"), "", true, "accepts: raw_tracepoint:io_uring_complete, with the request's opcode (--backend tracepoint; "},
		{kernelWithUringComplete(t, "pii"), "", true, "accepts: raw_tracepoint:io_uring_complete, without the request (before Linux 5.19): "},
		{kernelWithUringComplete(t, "ppp"), "2", true, "accepts: raw_tracepoint:io_uring_complete, with the request's opcode (--backend tracepoint; "},
		{kernelWithAccept(t, 2), "", false, "no io_uring_complete tracepoint in the kernel's BTF"},
	} {
		c := uringCheck(tt.kernel, tt.disabled)
		if c.OK != tt.ok || !strings.HasPrefix(c.Detail, tt.detail) {
			t.Errorf("uringCheck = %+v, want ok=%v and %q...", c, tt.ok, tt.detail)
		}
		if disabled := strings.HasSuffix(c.Detail, "io_uring is disabled here (kernel.io_uring_disabled = 2)"); disabled != (tt.disabled == "2") {
			t.Errorf("uringCheck with io_uring_disabled %q: %q", tt.disabled, c.Detail)
		}
	}
}

// btfSpec is a kernel BTF holding just these types, as the loader reads
// one.
func btfSpec(t *testing.T, types ...btf.Type) *btf.Spec {
	t.Helper()
	b, err := btf.NewBuilder(types, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// The tracepoint backend's connect point attaches sys_enter_connect only
// where the state program cannot tell a thread inside connect(2) by its
// system call (no bpf_task_pt_regs: before Linux 5.15).
func TestConnectEnterOnlyWhereNeeded(t *testing.T) {
	funcIDs := func(names ...string) *btf.Spec {
		e := &btf.Enum{Name: "bpf_func_id", Size: 4}
		for i, n := range names {
			e.Values = append(e.Values, btf.EnumValue{Name: n, Value: uint64(i)})
		}
		return btfSpec(t, e)
	}
	names := func(kernel *btf.Spec) []string {
		hs, err := hooks(PointConnect, implTracepoint, kernel)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, h := range hs {
			out = append(out, h.String())
		}
		return out
	}
	both := []string{"tracepoint:syscalls:sys_enter_connect", "tracepoint:syscalls:sys_exit_connect"}
	if got := names(funcIDs("BPF_FUNC_unspec", "BPF_FUNC_get_current_task_btf")); !slices.Equal(got, both) {
		t.Errorf("Linux 5.11-5.14: %v, want %v", got, both)
	}
	if got := names(kernelWithAccept(t, -1)); !slices.Equal(got, both) {
		t.Errorf("no bpf_func_id in BTF: %v, want %v", got, both)
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skipf("the rest needs the running kernel's own BTF: %v", err)
	}
	want := []string{"tracepoint:syscalls:sys_exit_connect"}
	if got := names(funcIDs("BPF_FUNC_unspec", "BPF_FUNC_task_pt_regs")); !slices.Equal(got, want) {
		t.Errorf("Linux 5.15+: %v, want %v", got, want)
	}
}

// A point's load works on its own copy of the maps and variables (its
// settings, such as accept_catch_up, are its own), starts with no
// programs, and leaves the object's BTF alone.
func TestLoadSpecCopiesWhatALoadChanges(t *testing.T) {
	spec, err := bpf.LoadTuxscope()
	if err != nil {
		t.Fatal(err)
	}
	sub := loadSpec(spec)
	if len(sub.Programs) != 0 || sub.Types != nil || sub.ByteOrder != spec.ByteOrder {
		t.Errorf("programs %d, types %v, byte order %v; want none, nil, %v", len(sub.Programs), sub.Types, sub.ByteOrder, spec.ByteOrder)
	}
	if len(sub.Maps) != len(spec.Maps) || len(sub.Variables) != len(spec.Variables) {
		t.Fatalf("%d maps and %d variables, want %d and %d", len(sub.Maps), len(sub.Variables), len(spec.Maps), len(spec.Variables))
	}
	if err := sub.Variables[bpf.TuxscopeVarAcceptCatchUp].Set(uint8(1)); err != nil {
		t.Fatal(err)
	}
	var orig uint8
	if err := spec.Variables[bpf.TuxscopeVarAcceptCatchUp].Get(&orig); err != nil || orig != 0 {
		t.Errorf("the spec's accept_catch_up is %d (%v) after the copy's was set, want 0", orig, err)
	}
	sub.Maps[bpf.TuxscopeMapConns].MaxEntries = 1
	if spec.Maps[bpf.TuxscopeMapConns].MaxEntries == 1 {
		t.Error("changing the copy's conns changed the spec's")
	}
}

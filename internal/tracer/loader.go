package tracer

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/tuxscope/tuxscope/internal/bpf"
)

// loader holds what every hook point's programs share: the configured
// spec, the kernel's BTF and the maps (ring buffer, filters, counters),
// created once. Each hook point's programs are loaded as a separate
// collection over those maps, so a backend can be tried, and dropped,
// hook point by hook point.
type loader struct {
	spec         *ebpf.CollectionSpec
	kernel       *btf.Spec
	cache        *btf.Cache
	maps         *ebpf.Collection
	replacements map[string]*ebpf.Map
	// have is this process's effective capabilities (AllCaps if unknown),
	// to name the one a refusal lacks.
	have Caps
	// memlock is why RLIMIT_MEMLOCK could not be raised (kernels before
	// 5.11 charge BPF memory to it), nil if it was or need not be.
	memlock error
	// tracefs is whether classic tracepoints can be found (tracefsState),
	// checked when the first one is attached.
	tracefs      error
	tracefsKnown bool
	// fentryErr is why this kernel refuses fentry programs, found out
	// once (fentryRefusal).
	fentryOnce sync.Once
	fentryErr  error
}

func newLoader(cfg Config) (l *loader, err error) {
	have, err := EffectiveCaps()
	if err != nil {
		have = AllCaps
	}
	ensureTracefs()
	// Only a kernel before 5.11 needs it raised; if it cannot be (no
	// CAP_SYS_RESOURCE), the limit may still be enough: the loads say.
	memlock := rlimit.RemoveMemlock()
	// While the kernel's BTF is read (about 25 ms on the 6.18 host), the
	// embedded objects are (about 30 ms), and then the maps are made by
	// two workers: they need none of the kernel's types, and the kernel
	// takes about 35 ms to make them one after another (the
	// preallocated LRU tables most). All but conns, whose flags depend on
	// the kernel (allocatesInTracing): it is made here once both are in.
	type objects struct {
		spec *ebpf.CollectionSpec
		err  error
	}
	objs := make(chan objects, 1)
	made := make(chan madeMaps, 1)
	go func() {
		spec, err := bpf.LoadTuxscope()
		if err == nil {
			err = configure(spec, cfg)
		} else {
			err = fmt.Errorf("reading the embedded BPF objects: %w", err)
		}
		if err != nil {
			objs <- objects{err: err}
			made <- madeMaps{}
			return
		}
		// The workers' own copy of the maps: the spec is changed below.
		early := loadSpec(spec)
		objs <- objects{spec: spec}
		made <- makeMaps(early, bpf.TuxscopeMapConns)
	}()
	// The running kernel's BTF is read once, into the cache the loads
	// share: fentry's attach targets are looked up there too, and a
	// second parse of vmlinux cost about 20 ms.
	cache := btf.NewCache()
	var kernel *btf.Spec
	if cfg.BTFPath == "" {
		kernel, err = runningKernelBTF(cache)
	} else {
		kernel, err = loadKernelBTF(cfg.BTFPath)
	}
	o := <-objs
	ld := &loader{kernel: kernel, cache: cache, have: have, memlock: memlock, maps: &ebpf.Collection{Maps: map[string]*ebpf.Map{}}}
	defer func() {
		// The workers' maps, kept or closed with the loader.
		m := <-made
		for name, mp := range m.maps {
			ld.maps.Maps[name] = mp
		}
		if err == nil && m.err != nil {
			err = loadError("", m.err, have, memlock)
		}
		if err != nil {
			ld.close()
			l = nil
		}
	}()
	if err == nil {
		err = o.err
	}
	if err != nil {
		return nil, err
	}
	spec := o.spec
	ld.spec = spec
	// Where the kernel's io_uring_complete is unknown, raw_uring_done is
	// not attached (its hook is unusable), so the 0 it keeps is never run.
	if args, err := uringCompleteArgs(kernel); err == nil {
		if err := spec.Variables[bpf.TuxscopeVarUringCompleteArgs].Set(args); err != nil {
			return nil, fmt.Errorf("setting uring_complete_args: %w", err)
		}
	}
	if !allocatesInTracing(kernel) {
		// Before 6.1 a tracing program's hash must be preallocated: the
		// kernel warns (a WARN splat in its log) about one allocated as
		// used.
		spec.Maps[bpf.TuxscopeMapConns].Flags &^= unix.BPF_F_NO_PREALLOC
	}
	conns, err := ebpf.NewMapWithOptions(spec.Maps[bpf.TuxscopeMapConns], ebpf.MapOptions{})
	if err != nil {
		return nil, loadError("", err, have, memlock)
	}
	ld.maps.Maps[bpf.TuxscopeMapConns] = conns
	// Every map but the per-collection data sections (.rodata, the
	// filter constants: each load gets its own from the spec, and the
	// kernel freezes it), shared by every point's programs.
	ld.replacements = ld.maps.Maps
	return ld, nil
}

// loadSpec is what one load needs of spec, for itself: a copy of its
// maps and variables (a load makes its data sections from them, and a
// point's settings change its own), and none of its programs, which the
// caller adds: the spec's own, which loading copies before it changes
// them. CollectionSpec.Copy also copied every program and the object's
// BTF, which no load reads: 2.8 ms a copy on the 6.18 host (once per
// point, and once for the maps made early).
func loadSpec(spec *ebpf.CollectionSpec) *ebpf.CollectionSpec {
	sub := &ebpf.CollectionSpec{
		Maps:      make(map[string]*ebpf.MapSpec, len(spec.Maps)),
		Programs:  map[string]*ebpf.ProgramSpec{},
		Variables: make(map[string]*ebpf.VariableSpec, len(spec.Variables)),
		ByteOrder: spec.ByteOrder,
	}
	for name, m := range spec.Maps {
		sub.Maps[name] = m.Copy()
	}
	for name, v := range spec.Variables {
		sub.Variables[name] = v.Copy()
	}
	return sub
}

// madeMaps is what makeMaps made: every map it could, and its first error.
type madeMaps struct {
	maps map[string]*ebpf.Map
	err  error
}

// makeMaps makes spec's maps, but for skip and the data sections
// (.rodata, .bss: made with each point's programs), with two workers.
func makeMaps(spec *ebpf.CollectionSpec, skip string) madeMaps {
	var names []string
	for name := range spec.Maps {
		if name != skip && !strings.HasPrefix(name, ".") {
			names = append(names, name)
		}
	}
	// The biggest first, shared out as the workers come free.
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Compare(mapBytes(spec.Maps[b]), mapBytes(spec.Maps[a]))
	})
	work := make(chan string, len(names))
	for _, n := range names {
		work <- n
	}
	close(work)
	var (
		mu  sync.Mutex
		out = madeMaps{maps: map[string]*ebpf.Map{}}
		wg  sync.WaitGroup
	)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				m, err := ebpf.NewMapWithOptions(spec.Maps[name], ebpf.MapOptions{})
				mu.Lock()
				if err != nil && out.err == nil {
					out.err = fmt.Errorf("map %s: %w", name, err)
				} else if err == nil {
					out.maps[name] = m
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// mapBytes is about what the kernel allocates up front for a map, to
// order the work: a ring buffer's pages; a hash allocated as used, its
// buckets (16 bytes each); else every entry (LRU tables are always
// preallocated), with about 48 bytes of the kernel's own per entry.
func mapBytes(m *ebpf.MapSpec) uint64 {
	switch {
	case m.Type == ebpf.RingBuf:
		return uint64(m.MaxEntries)
	case m.Flags&unix.BPF_F_NO_PREALLOC != 0 && m.Type != ebpf.LRUHash && m.Type != ebpf.LRUCPUHash:
		return uint64(m.MaxEntries) * 16
	}
	return uint64(m.MaxEntries) * uint64(m.KeySize+m.ValueSize+48)
}

func (l *loader) close() {
	if l != nil && l.maps != nil {
		l.maps.Close()
	}
}

// attachedPoint is one hook point served by one implementation.
type attachedPoint struct {
	point   HookPoint
	impl    Impl
	coll    *ebpf.Collection
	links   []link.Link
	hooks   []hook
	skipped []string
}

func (ap *attachedPoint) choice() Choice {
	c := Choice{Point: ap.point, Backend: ap.impl, Skipped: ap.skipped}
	for _, h := range ap.hooks {
		c.Hooks = append(c.Hooks, h.String())
	}
	return c
}

func (ap *attachedPoint) detach() error {
	var errs []error
	for _, l := range ap.links {
		errs = append(errs, l.Close())
	}
	ap.links = nil
	return errors.Join(errs...)
}

func (ap *attachedPoint) close() error {
	err := ap.detach()
	if ap.coll != nil {
		ap.coll.Close()
		ap.coll = nil
	}
	return err
}

// connectsFromSyscalls tells the state point's programs, loaded after
// it, that the connect point is the tracepoint backend's, which emits
// connects when connect(2) returns: the connects that run no connect(2)
// (io_uring's IORING_OP_CONNECT, Fast Open's sendto) are then emitted
// where their handshake ends. The function hooks see those themselves.
//
// Where they can tell a thread inside connect(2) by its system call
// (stateSeesSyscall), they are given connect(2)'s number, and the connect
// point was attached without sys_enter_connect (hookDesc.unneeded).
func (l *loader) connectsFromSyscalls() error {
	if err := l.spec.Variables[bpf.TuxscopeVarConnectSyscallHooks].Set(uint8(1)); err != nil {
		return fmt.Errorf("setting connect_syscall_hooks: %w", err)
	}
	if stateSeesSyscall(l.kernel) {
		if err := l.spec.Variables[bpf.TuxscopeVarConnectSyscallNr].Set(uint32(unix.SYS_CONNECT)); err != nil {
			return fmt.Errorf("setting connect_syscall_nr: %w", err)
		}
	}
	return nil
}

// attach attaches hook point p: the first of impls, its candidate
// implementations for backend b, that loads and attaches here, falling
// back quietly. pre, if not nil, is impls[0] already loaded (preload).
func (l *loader) attach(p HookPoint, b Backend, impls []Impl, pre *loadedPoint) (*attachedPoint, error) {
	errs := make([]error, len(impls))
	for i, im := range impls {
		lp := pre
		if i > 0 || lp == nil {
			lp = l.load(p, im)
		}
		ap, err := l.attachLoaded(lp)
		if err == nil {
			return ap, nil
		}
		errs[i] = err
	}
	return nil, noImplError(p, b, impls, errs)
}

// loadedPoint is an implementation of a hook point loaded but not yet
// attached, or why it could not be loaded.
type loadedPoint struct {
	impl Impl
	ap   *attachedPoint // its collection
	hs   []hook
	err  error
}

// close frees what was loaded and not attached.
func (lp *loadedPoint) close() {
	if lp.ap != nil {
		lp.ap.close()
		lp.ap = nil
	}
}

// preload loads, at once and in parallel, the implementation first
// names for each point, for Open to attach in order: the verifier's work
// on one point's programs no longer waits for the others' (on the 2-CPU
// host the state point's two programs alone took 30-50 ms to load,
// measured). Each channel yields one loadedPoint.
func (l *loader) preload(first map[HookPoint]Impl) map[HookPoint]chan *loadedPoint {
	out := map[HookPoint]chan *loadedPoint{}
	for p, im := range first {
		ch := make(chan *loadedPoint, 1)
		out[p] = ch
		go func() { ch <- l.load(p, im) }()
	}
	return out
}

// noImplError says why no implementation of p could be attached for
// backend b, errs[i] being impls[i]'s error, in the words each point's
// users expect.
func noImplError(p HookPoint, b Backend, impls []Impl, errs []error) error {
	if len(impls) == 0 {
		return fmt.Errorf("nothing can trace %ss with backend %s", p, b)
	}
	reasons := make([]string, len(impls))
	for i, im := range impls {
		reasons[i] = fmt.Sprintf("%s: %v", im, errs[i])
	}
	switch {
	case p == PointState:
		return fmt.Errorf("cannot follow TCP state changes (%s)", strings.Join(reasons, "; "))
	case p == PointDNS: // one implementation; shown as "no DNS names: ..."
		return errors.Join(errs...)
	case b != Auto: // one implementation: the backend's own
		return fmt.Errorf("backend %s cannot trace %ss on this kernel: %v", b, p, errors.Join(errs...))
	}
	return fmt.Errorf("no backend can trace %ss on this kernel (%s)", p, strings.Join(reasons, "; "))
}

// try loads and attaches implementation im of point p, all or nothing.
func (l *loader) try(p HookPoint, im Impl) (*attachedPoint, error) {
	return l.attachLoaded(l.load(p, im))
}

// load loads implementation im of point p, not attaching it. Safe to call
// from several goroutines: the specs and kernel BTF are only read, the
// BTF cache locks.
func (l *loader) load(p HookPoint, im Impl) *loadedPoint {
	lp := &loadedPoint{impl: im}
	hs, err := hooks(p, im, l.kernel)
	if err == nil && im == implFentry {
		err = l.fentryRefusal()
	}
	if err != nil {
		lp.err = err
		return lp
	}
	sub := loadSpec(l.spec)
	for _, h := range hs {
		if h.unusable != nil {
			// never attached; and the kernel may not even load it
			// (cgroup/sock_release before Linux 5.9)
			continue
		}
		sub.Programs[h.prog] = l.spec.Programs[h.prog]
	}
	if p == PointAccept && im != implTracepoint {
		// The syscall-exit programs loaded beside a function hook
		// are its catch-up: they skip what it reported (accept_seen).
		if err := sub.Variables[bpf.TuxscopeVarAcceptCatchUp].Set(uint8(1)); err != nil {
			lp.err = fmt.Errorf("setting accept_catch_up: %w", err)
			return lp
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(sub, ebpf.CollectionOptions{
		Programs:        ebpf.ProgramOptions{KernelTypes: l.kernel},
		MapReplacements: l.replacements,
		Cache:           l.cache,
	})
	if err != nil {
		lp.err = loadError(im, err, l.have, l.memlock)
		return lp
	}
	lp.ap, lp.hs = &attachedPoint{point: p, impl: im, coll: coll}, hs
	return lp
}

// fentryRefusal is why the kernel refuses to load fentry programs here
// (EPERM, as on the 6.18 host), from loading the smallest one once: the
// points then do not each do the work of loading theirs before being
// refused (relocating them against the kernel's BTF: connect's took 15
// ms on the host, accept's more while the other points load beside it).
// nil where it loads, or where the probe fails otherwise: the points'
// own loads then say why.
func (l *loader) fentryRefusal() error {
	l.fentryOnce.Do(func() {
		spec := &ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{"fentry_probe": {
			Name: "fentry_probe", Type: ebpf.Tracing, AttachType: ebpf.AttachTraceFEntry,
			AttachTo: "tcp_v4_connect", License: "GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		}}}
		coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Cache: l.cache})
		if err == nil {
			coll.Close()
			return
		}
		if errors.Is(err, unix.EPERM) {
			l.fentryErr = loadError(implFentry, err, l.have, l.memlock)
		}
	})
	return l.fentryErr
}

// attachLoaded attaches what load loaded, all or nothing: on failure what
// was loaded is closed.
func (l *loader) attachLoaded(lp *loadedPoint) (_ *attachedPoint, err error) {
	if lp.err != nil {
		return nil, lp.err
	}
	ap := lp.ap
	lp.ap = nil // the caller's now, or closed below
	defer func() {
		if err != nil {
			ap.close()
		}
	}()
	for _, h := range lp.hs {
		var lk link.Link
		err := h.unusable
		if err == nil {
			lk, err = l.attachHook(h, ap.coll.Programs[h.prog])
		}
		if err != nil {
			if h.mayFail() {
				ap.skipped = append(ap.skipped, fmt.Sprintf("%s (%v)", h, err))
				continue
			}
			return nil, err
		}
		ap.links = append(ap.links, lk)
		ap.hooks = append(ap.hooks, h)
	}
	return ap, nil
}

// attachHook attaches one hook; a classic tracepoint only where tracefs
// can be read, or it fails saying what would fix that.
func (l *loader) attachHook(h hook, prog *ebpf.Program) (link.Link, error) {
	if h.kind == kindTracepoint {
		if !l.tracefsKnown {
			l.tracefs, l.tracefsKnown = tracefsState(), true
		}
		if l.tracefs != nil {
			return nil, fmt.Errorf("tracepoint %s: %w", h.target, l.tracefs)
		}
	}
	lk, err := h.attach(prog)
	if err != nil {
		return nil, attachError(h, err, l.have)
	}
	return lk, nil
}

// allocatesInTracing reports whether the kernel lets tracing programs use
// a hash map that allocates its entries as they are used: since Linux 6.1
// (its BPF memory allocator, struct bpf_mem_alloc). Before, the table is
// preallocated in full when it is made.
func allocatesInTracing(kernel *btf.Spec) bool {
	var s *btf.Struct
	return kernel.TypeByName("bpf_mem_alloc", &s) == nil
}

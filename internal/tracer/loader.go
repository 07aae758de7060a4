package tracer

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
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
}

func newLoader(cfg Config) (_ *loader, err error) {
	have, err := EffectiveCaps()
	if err != nil {
		have = AllCaps
	}
	ensureTracefs()
	// Only a kernel before 5.11 needs it raised; if it cannot be (no
	// CAP_SYS_RESOURCE), the limit may still be enough: the loads say.
	memlock := rlimit.RemoveMemlock()
	// The objects are read, and every map but conns made, while the
	// kernel's BTF is read: making the maps takes the kernel about 45 ms
	// on the 6.18 host (the preallocated LRU tables most), and none needs
	// the kernel's types. conns waits for them: its flags depend on the
	// kernel (allocatesInTracing).
	type objects struct {
		spec *ebpf.CollectionSpec
		maps *ebpf.Collection
		err  error
	}
	objs := make(chan objects, 1)
	go func() {
		spec, err := bpf.LoadTuxscope()
		if err != nil {
			objs <- objects{err: fmt.Errorf("reading the embedded BPF objects: %w", err)}
			return
		}
		if err := configure(spec, cfg); err != nil {
			objs <- objects{err: err}
			return
		}
		early := spec.Copy()
		early.Programs = map[string]*ebpf.ProgramSpec{}
		delete(early.Maps, bpf.TuxscopeMapConns)
		maps, err := ebpf.NewCollectionWithOptions(early, ebpf.CollectionOptions{})
		if err != nil {
			err = loadError("", err, have, memlock)
		}
		objs <- objects{spec, maps, err}
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
	if err == nil {
		err = o.err
	}
	if err != nil {
		if o.maps != nil {
			o.maps.Close()
		}
		return nil, err
	}
	spec := o.spec
	l := &loader{spec: spec, kernel: kernel, cache: cache, have: have, memlock: memlock, maps: o.maps}
	defer func() {
		if err != nil {
			l.close()
		}
	}()
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
	l.maps.Maps[bpf.TuxscopeMapConns] = conns
	l.replacements = map[string]*ebpf.Map{}
	for name, m := range l.maps.Maps {
		// Read-only data (the filter constants) is per collection: each
		// gets the same values from the spec, and the kernel freezes it.
		if !strings.HasPrefix(name, ".") {
			l.replacements[name] = m
		}
	}
	return l, nil
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
func (l *loader) connectsFromSyscalls() error {
	if err := l.spec.Variables[bpf.TuxscopeVarConnectSyscallHooks].Set(uint8(1)); err != nil {
		return fmt.Errorf("setting connect_syscall_hooks: %w", err)
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
	if err != nil {
		lp.err = err
		return lp
	}
	sub := l.spec.Copy()
	sub.Programs = map[string]*ebpf.ProgramSpec{}
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

package tracer

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"

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
}

func newLoader(cfg Config) (_ *loader, err error) {
	kernel, err := loadKernelBTF(cfg.BTFPath)
	if err != nil {
		return nil, err
	}
	if err := ensureTracefs(); err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("raising the locked-memory limit for BPF maps: %w", err)
	}
	spec, err := bpf.LoadTuxscope()
	if err != nil {
		return nil, fmt.Errorf("reading the embedded BPF objects: %w", err)
	}
	if err := configure(spec, cfg); err != nil {
		return nil, err
	}
	l := &loader{spec: spec, kernel: kernel, cache: btf.NewCache()}

	mapsOnly := spec.Copy()
	mapsOnly.Programs = map[string]*ebpf.ProgramSpec{}
	if l.maps, err = ebpf.NewCollectionWithOptions(mapsOnly, ebpf.CollectionOptions{}); err != nil {
		return nil, loadError("", err)
	}
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

// attachedPoint is one hook point served by one backend.
type attachedPoint struct {
	point   HookPoint
	backend Backend
	coll    *ebpf.Collection
	links   []link.Link
	hooks   []hook
	skipped []string
}

func (ap *attachedPoint) choice() Choice {
	c := Choice{Point: ap.point, Backend: ap.backend, Skipped: ap.skipped}
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

// attachPoint attaches backend want for point p; with Auto, the first of
// Backends that loads and attaches here, falling back quietly.
func (l *loader) attachPoint(p HookPoint, want Backend) (*attachedPoint, error) {
	if want != Auto {
		ap, err := l.try(p, want)
		if err != nil {
			return nil, fmt.Errorf("backend %s cannot trace %ss on this kernel: %v", want, p, err)
		}
		return ap, nil
	}
	var reasons []string
	for _, b := range Backends {
		ap, err := l.try(p, b)
		if err == nil {
			return ap, nil
		}
		reasons = append(reasons, fmt.Sprintf("%s: %v", b, err))
	}
	return nil, fmt.Errorf("no backend can trace %ss on this kernel (%s)", p, strings.Join(reasons, "; "))
}

// attachState attaches PointState the first of stateBackends(b) ways
// that works.
func (l *loader) attachState(b Backend) (*attachedPoint, error) {
	var reasons []string
	for _, sb := range stateBackends(b) {
		ap, err := l.try(PointState, sb)
		if err == nil {
			return ap, nil
		}
		reasons = append(reasons, fmt.Sprintf("%s: %v", sb, err))
	}
	return nil, fmt.Errorf("cannot follow TCP state changes (%s)", strings.Join(reasons, "; "))
}

// try loads and attaches backend b's programs for point p, all or nothing.
func (l *loader) try(p HookPoint, b Backend) (_ *attachedPoint, err error) {
	impl := implementations(p, l.kernel)[b]
	if impl.unavailable != nil {
		return nil, impl.unavailable
	}
	sub := l.spec.Copy()
	sub.Programs = map[string]*ebpf.ProgramSpec{}
	for _, h := range impl.hooks {
		sub.Programs[h.prog] = l.spec.Programs[h.prog]
	}
	coll, err := ebpf.NewCollectionWithOptions(sub, ebpf.CollectionOptions{
		Programs:        ebpf.ProgramOptions{KernelTypes: l.kernel},
		MapReplacements: l.replacements,
		Cache:           l.cache,
	})
	if err != nil {
		return nil, loadError(b, err)
	}
	ap := &attachedPoint{point: p, backend: b, coll: coll}
	defer func() {
		if err != nil {
			ap.close()
		}
	}()
	for _, h := range impl.hooks {
		lk, err := h.attach(coll.Programs[h.prog])
		if err != nil {
			if h.catchUp {
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

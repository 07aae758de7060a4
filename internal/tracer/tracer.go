// Package tracer is tuxscope's kernel-facing side: it checks what the
// kernel allows, loads the BPF objects, attaches one hook set and reads the
// ring buffer. Everything after the raw record (decode, filter, output)
// lives in plain Go packages that never touch a BPF object.
package tracer

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/tuxscope/tuxscope/internal/bpf"
)

// DefaultRingBufferBytes is the ring buffer's default size: about 45,000
// events of 88 bytes (record plus header) before the reader must catch up.
const DefaultRingBufferBytes = 4 << 20

// KernelBTFPath is where the running kernel exposes its BTF.
const KernelBTFPath = "/sys/kernel/btf/vmlinux"

// Config says what to trace. The kernel side applies all of it, so events
// that do not match cost no ring-buffer traffic.
type Config struct {
	PIDs            []uint32 // only these processes (tgids); empty: all
	Ports           []uint16 // only connections with either port in this set; empty: all
	Connect, Accept bool     // which events
	IPv4, IPv6      bool     // which address families
	RingBufferBytes int      // power of two, multiple of the page size; 0: default
	BTFPath         string   // kernel BTF; "": KernelBTFPath
}

// MaxFilterEntries bounds the --pid and --port sets (the kernel maps' size).
const MaxFilterEntries = 1024

// Tracer is a loaded and attached hook set.
type Tracer struct {
	coll    *ebpf.Collection
	links   []link.Link
	reader  *ringbuf.Reader
	lost    *ebpf.Map
	backend *hookSet
	hooks   []hook
}

// Open checks privileges and kernel support, loads the BPF objects and
// attaches the hooks cfg needs. Errors are one line, meant for the user.
func Open(cfg Config) (_ *Tracer, err error) {
	if err := checkPrivileges(); err != nil {
		return nil, err
	}
	kernelTypes, err := loadKernelBTF(cfg.BTFPath)
	if err != nil {
		return nil, err
	}
	if err := ensureTracefs(); err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("raising the locked-memory limit for BPF maps: %w", err)
	}

	set := &tracepointSet
	hooks := set.hooksFor(cfg)

	spec, err := bpf.LoadTuxscope()
	if err != nil {
		return nil, fmt.Errorf("reading the embedded BPF objects: %w", err)
	}
	if err := configure(spec, cfg, hooks); err != nil {
		return nil, err
	}

	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		Programs: ebpf.ProgramOptions{KernelTypes: kernelTypes},
	})
	if err != nil {
		return nil, loadError(err)
	}
	t := &Tracer{coll: coll, lost: coll.Maps[bpf.TuxscopeMapLost], backend: set, hooks: hooks}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()

	if err := fillFilters(coll, cfg); err != nil {
		return nil, err
	}
	// Open the reader before attaching, so nothing emitted is unread.
	if t.reader, err = ringbuf.NewReader(coll.Maps[bpf.TuxscopeMapEvents]); err != nil {
		return nil, fmt.Errorf("opening the ring buffer: %w", err)
	}
	for _, h := range hooks {
		l, err := h.attach(coll.Programs[h.prog])
		if err != nil {
			return nil, err
		}
		t.links = append(t.links, l)
	}
	return t, nil
}

// Backend names the hook set in use.
func (t *Tracer) Backend() string { return t.backend.name }

// Hooks names the attached hooks, e.g. "tracepoint:syscalls:sys_exit_accept4".
func (t *Tracer) Hooks() []string {
	names := make([]string, len(t.hooks))
	for i, h := range t.hooks {
		names[i] = h.String()
	}
	return names
}

// ReadInto blocks for the next raw record (see ringbuf.Reader.ReadInto).
// It returns os.ErrDeadlineExceeded when the deadline passes with no record,
// and ringbuf.ErrFlushed once Stop has drained what was pending.
func (t *Tracer) ReadInto(rec *ringbuf.Record) error { return t.reader.ReadInto(rec) }

// SetDeadline bounds how long ReadInto waits.
func (t *Tracer) SetDeadline(d time.Time) { t.reader.SetDeadline(d) }

// Stop detaches every hook, so no new events arrive, and makes ReadInto
// return what is still in the ring buffer, then ringbuf.ErrFlushed. Safe to
// call from another goroutine than the reader's.
func (t *Tracer) Stop() error {
	err := t.detach()
	if ferr := t.reader.Flush(); ferr != nil && err == nil {
		err = ferr
	}
	return err
}

func (t *Tracer) detach() error {
	var errs []error
	for _, l := range t.links {
		errs = append(errs, l.Close())
	}
	t.links = nil
	return errors.Join(errs...)
}

// Lost is the number of events the kernel side could not queue since load
// (ring buffer full), summed over CPUs.
func (t *Tracer) Lost() (uint64, error) {
	var perCPU []uint64
	if err := t.lost.Lookup(uint32(0), &perCPU); err != nil {
		return 0, fmt.Errorf("reading the lost-event counter: %w", err)
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n, nil
}

// Close detaches and frees everything.
func (t *Tracer) Close() error {
	errs := []error{t.detach()}
	if t.reader != nil {
		errs = append(errs, t.reader.Close())
	}
	if t.coll != nil {
		t.coll.Close()
	}
	return errors.Join(errs...)
}

func loadKernelBTF(path string) (*btf.Spec, error) {
	if path == "" {
		if _, err := os.Stat(KernelBTFPath); err != nil {
			return nil, fmt.Errorf("this kernel exposes no BTF (%s: %v): tuxscope needs a kernel built with CONFIG_DEBUG_INFO_BTF=y, or --btf FILE", KernelBTFPath, errors.Unwrap(err))
		}
		path = KernelBTFPath
	}
	spec, err := btf.LoadSpec(path)
	if err != nil {
		return nil, fmt.Errorf("reading kernel BTF from %s: %w", path, err)
	}
	return spec, nil
}

// configure sets the filter constants, sizes the ring buffer and drops the
// programs this run does not attach, so they are never loaded.
func configure(spec *ebpf.CollectionSpec, cfg Config, hooks []hook) error {
	set := func(name string, v uint8) error {
		vs, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("BPF object has no variable %s", name)
		}
		return vs.Set(v)
	}
	b2u := func(b bool) uint8 {
		if b {
			return 1
		}
		return 0
	}
	for name, v := range map[string]uint8{
		bpf.TuxscopeVarFilterPid:  b2u(len(cfg.PIDs) > 0),
		bpf.TuxscopeVarFilterPort: b2u(len(cfg.Ports) > 0),
		bpf.TuxscopeVarWantIpv4:   b2u(cfg.IPv4),
		bpf.TuxscopeVarWantIpv6:   b2u(cfg.IPv6),
	} {
		if err := set(name, v); err != nil {
			return err
		}
	}
	if len(cfg.PIDs) > MaxFilterEntries || len(cfg.Ports) > MaxFilterEntries {
		return fmt.Errorf("at most %d pids and %d ports can be filtered", MaxFilterEntries, MaxFilterEntries)
	}

	size := cfg.RingBufferBytes
	if size == 0 {
		size = DefaultRingBufferBytes
	}
	if err := CheckRingBufferSize(size); err != nil {
		return err
	}
	spec.Maps[bpf.TuxscopeMapEvents].MaxEntries = uint32(size)
	// bpf2go's -type keeps struct event in the map's BTF; the kernel wants
	// no value type on a ring buffer.
	spec.Maps[bpf.TuxscopeMapEvents].Value = nil
	spec.Maps[bpf.TuxscopeMapEvents].ValueSize = 0

	keep := map[string]bool{}
	for _, h := range hooks {
		keep[h.prog] = true
	}
	for name := range spec.Programs {
		if !keep[name] {
			delete(spec.Programs, name)
		}
	}
	return nil
}

// CheckRingBufferSize reports whether n bytes is a valid ring buffer size.
func CheckRingBufferSize(n int) error {
	page := os.Getpagesize()
	if n < page || n&(n-1) != 0 || n > 1<<30 {
		return fmt.Errorf("ring buffer size %d: must be a power of two between %d and %d bytes", n, page, 1<<30)
	}
	return nil
}

func fillFilters(coll *ebpf.Collection, cfg Config) error {
	one := uint8(1)
	for _, pid := range cfg.PIDs {
		if err := coll.Maps[bpf.TuxscopeMapPidFilter].Put(pid, one); err != nil {
			return fmt.Errorf("setting the pid filter: %w", err)
		}
	}
	for _, port := range cfg.Ports {
		if err := coll.Maps[bpf.TuxscopeMapPortFilter].Put(port, one); err != nil {
			return fmt.Errorf("setting the port filter: %w", err)
		}
	}
	return nil
}

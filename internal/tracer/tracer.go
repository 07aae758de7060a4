// Package tracer is tuxscope's kernel-facing side: it checks what the
// kernel allows, loads the BPF objects, attaches one hook set, and owns
// the read loop: it reads the ring buffer, decodes each record into the
// domain model (internal/event) and hands it, with loss notices, to a
// handler. Everything after that (enrich, filter, output) lives in plain
// Go packages that never touch a BPF object.
package tracer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/tuxscope/tuxscope/internal/bpf"
	"github.com/tuxscope/tuxscope/internal/event"
	"github.com/tuxscope/tuxscope/internal/tcpinfo"
)

// DefaultRingBufferBytes is the ring buffer's default size: room for about
// 17,600 TCP events (a 232-byte record and its 8-byte ring header) before
// the reader must catch up, fewer when DNS messages (up to 2 KiB each)
// share it.
const DefaultRingBufferBytes = 4 << 20

// KernelBTFPath is where the running kernel exposes its BTF.
const KernelBTFPath = "/sys/kernel/btf/vmlinux"

// Config says what to trace. The kernel side applies all of it, so events
// that do not match cost no ring-buffer traffic.
type Config struct {
	PIDs            []uint32     // only these processes (tgids); empty: all
	Ports           []uint16     // only connections with either port in this set; empty: all
	Types           []event.Type // which events; empty: all
	IPv4, IPv6      bool         // which address families
	RingBufferBytes int          // power of two, multiple of the page size; 0: default
	ConnTable       int          // connections tracked at once (conns entries); 0: DefaultConnTable
	BTFPath         string       // kernel BTF; "": KernelBTFPath
	Backend         Backend      // "" or Auto: the best that works, per hook point
	DNS             bool         // capture DNS messages (names for addresses, --dns)
	// UDP follows UDP flows (udp_open, udp_close events); UDPIdle ends a
	// flow after that long without a packet (0: DefaultUDPIdle);
	// UDPFlows is the kernel's flow table size (0: DefaultUDPFlows).
	UDP      bool
	UDPIdle  time.Duration
	UDPFlows int
	// CgroupFilter builds the cgroup filter into the programs, off until
	// SetCgroupFilter fills it.
	CgroupFilter bool
	// MaxDelay > 0 batches wake-ups: the kernel side queues events without
	// waking the reader until a quarter of the ring buffer is full, and
	// the reader collects them at least every MaxDelay. 0: the reader is
	// woken whenever an event arrives while it waits.
	MaxDelay time.Duration
	// Tick is how often Run's handler is ticked (summaries); see
	// readerConfig.
	Tick time.Duration
	// Updates > 0 makes Run hand its handler, about every Updates, an
	// update event per tracked connection open that long (--updates),
	// from sock_diag; MaxUpdates bounds them per period (0:
	// updates.DefaultMax).
	Updates    time.Duration
	MaxUpdates int
	// impls, set only by this package's tests, names the implementation
	// to attach for a hook point instead of trying the backend's: the
	// classic tracepoints, everyone's fallback, are no backend's first
	// choice.
	impls map[HookPoint]Impl
}

func (c *Config) wantsType(t event.Type) bool {
	return len(c.Types) == 0 || slices.Contains(c.Types, t)
}

// wants says whether a hook point is needed. The accept hooks also tell
// whom an accepted connection's close belongs to; state changes are
// followed always, for every backend (see PointState).
func (c *Config) wants(p HookPoint) bool {
	switch p {
	case PointConnect:
		return c.wantsType(event.Connect)
	case PointAccept:
		// Updates name an accepted connection's owner.
		return c.wantsType(event.Accept) || c.wantsType(event.Close) || c.Updates > 0
	case PointState:
		return true
	case PointDNS:
		// its packet hooks also count UDP flows
		return c.DNS || c.UDP
	case PointUDP:
		return c.UDP
	case PointRetransmit:
		return c.wantsType(event.Retransmit)
	case PointReset:
		// also for the close: a reset this side sent before the socket
		// closed (tcp_abort) makes it closed_by local, reset
		return c.wantsType(event.Reset) || c.wantsType(event.Close)
	}
	return false
}

// typeMask is want_types: bit 1<<t for each wanted type.
func (c *Config) typeMask() uint32 {
	var m uint32
	for _, t := range event.Types {
		if c.wantsType(t) {
			m |= 1 << t
		}
	}
	return m
}

// MaxFilterEntries bounds the --pid and --port sets (the kernel maps' size).
const MaxFilterEntries = 1024

// MaxCgroupFilter is how many cgroup ids the kernel's cgroup filter holds
// (cgroup_filter in common.bpf.h).
const MaxCgroupFilter = 4096

// MaxCgroupLevel is the deepest level (0: the root) a selected cgroup may
// have: the kernel looks at 32 levels from the shallowest selected one.
const MaxCgroupLevel = 1 << 16

// SetCgroupFilter makes the kernel select only the tasks in the cgroups
// ids (cgroup v2 ids) or below them, none of them shallower than level
// minLevel (0: the root); with ids nil, it turns the cgroup filter off
// (every task passes it). It may be called at any time after Open with
// Config.CgroupFilter: a cgroup in both the old set and the new is
// selected throughout.
func (t *Tracer) SetCgroupFilter(ids []uint64, minLevel int) error {
	if !t.cfg.CgroupFilter {
		return errors.New("the cgroup filter was not built in (Config.CgroupFilter)")
	}
	if len(ids) > MaxCgroupFilter {
		return fmt.Errorf("%d cgroups: the kernel's cgroup filter holds %d", len(ids), MaxCgroupFilter)
	}
	if minLevel < 0 || minLevel > MaxCgroupLevel {
		return fmt.Errorf("cgroup level %d out of range", minLevel)
	}
	set := t.loader.maps.Maps[bpf.TuxscopeMapCgroupFilter]
	state := t.loader.maps.Maps[bpf.TuxscopeMapCgroupFilterState]
	setState := func(on bool, level uint32) error {
		st := bpf.TuxscopeCgroupFilterState{MinLevel: level}
		if on {
			st.On = 1
		}
		if err := state.Update(uint32(0), &st, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("setting the cgroup filter: %w", err)
		}
		return nil
	}
	var cur bpf.TuxscopeCgroupFilterState
	if err := state.Lookup(uint32(0), &cur); err != nil {
		return fmt.Errorf("reading the cgroup filter: %w", err)
	}
	if ids == nil {
		if err := setState(false, 0); err != nil {
			return err
		}
		for id := range t.cgroups {
			if err := set.Delete(id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("emptying the cgroup filter: %w", err)
			}
			delete(t.cgroups, id)
		}
		return nil
	}
	// Add first, and lower the level, so that what both sets select
	// passes throughout; then remove what is no longer selected.
	if t.cgroups == nil {
		t.cgroups = map[uint64]struct{}{}
	}
	want := make(map[uint64]struct{}, len(ids))
	one := uint8(1)
	for _, id := range ids {
		want[id] = struct{}{}
		if _, ok := t.cgroups[id]; ok {
			continue
		}
		if err := set.Put(id, one); err != nil {
			return fmt.Errorf("setting the cgroup filter: %w", err)
		}
		t.cgroups[id] = struct{}{}
	}
	level := uint32(minLevel)
	if cur.On != 0 && cur.MinLevel < level {
		if err := setState(true, cur.MinLevel); err != nil {
			return err
		}
	} else if err := setState(true, level); err != nil {
		return err
	}
	for id := range t.cgroups {
		if _, ok := want[id]; ok {
			continue
		}
		if err := set.Delete(id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("setting the cgroup filter: %w", err)
		}
		delete(t.cgroups, id)
	}
	if cur.On != 0 && cur.MinLevel < level {
		return setState(true, level)
	}
	return nil
}

// Tracer is the BPF side of a run: shared maps, one attached
// implementation per hook point, and the ring-buffer reader.
type Tracer struct {
	cfg    Config
	loader *loader
	points []*attachedPoint
	reader *eventRing
	// last is Run's reader, for what it skipped or left unreported.
	last *reader
	// DNSError says why DNS capture is off although asked for; tracing
	// goes on without it.
	DNSError error
	// DNSUnscoped says why DNS names cannot be kept per network
	// namespace on this kernel (nil: they are, see netnsScoping).
	DNSUnscoped error
	// UDPError says why UDP flows are off although asked for (the
	// cgroup hooks failed); UDPNoRelease why flows end only when idle
	// (no cgroup/sock_release hook: before Linux 5.9).
	UDPError     error
	UDPNoRelease error
	// HealthErrors says, per point (PointRetransmit, PointReset), why it
	// is off although asked for; tracing goes on without it.
	HealthErrors map[HookPoint]error
	// cgroups is what SetCgroupFilter put in the kernel's set.
	cgroups map[uint64]struct{}
}

// Choice says which implementation serves a hook point and through which
// hooks.
type Choice struct {
	Point   HookPoint
	Backend Impl     // the backend's own, or the state or DNS point's (e.g. raw_tracepoint)
	Hooks   []string // attached, e.g. "fexit:tcp_v4_connect"
	Skipped []string // catch-up or optional hooks that could not be attached, with why
}

// Open checks privileges and kernel support, loads the BPF objects and
// attaches, for every hook point cfg needs, the first backend that works
// (or the one cfg names). Errors are one line, meant for the user.
func Open(cfg Config) (_ *Tracer, err error) {
	if err := checkPrivileges(); err != nil {
		return nil, err
	}
	l, err := newLoader(cfg)
	if err != nil {
		return nil, err
	}
	t := &Tracer{cfg: cfg, loader: l, DNSUnscoped: netnsScoping(l.kernel)}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	if err := fillFilters(l.maps, cfg); err != nil {
		return nil, err
	}
	if cfg.Updates > 0 {
		// sock_diag is there (tcp_diag may be a module): fail now, not
		// at the first period.
		if err := tcpinfo.Dump(func(*tcpinfo.Sample) bool { return false }); err != nil {
			return nil, fmt.Errorf("--updates: %w", err)
		}
	}
	// Open the reader before attaching, so nothing emitted is unread.
	if t.reader, err = newEventRing(l.maps.Maps[bpf.TuxscopeMapEvents]); err != nil {
		return nil, fmt.Errorf("opening the ring buffer: %w", err)
	}
	backend := cfg.Backend
	if backend == "" {
		backend = Auto
	}
	// What to try for a point: the backend's candidates, or the one
	// implementation a test names.
	implsFor := func(p HookPoint) []Impl {
		if im, ok := cfg.impls[p]; ok {
			return []Impl{im}
		}
		return candidates(p, backend)
	}
	// The connect point first: the state point's programs are loaded
	// knowing which implementation it has (connectsFromSyscalls). Then
	// every other point's first candidate is loaded in parallel, and
	// attached in order.
	var pre map[HookPoint]chan *loadedPoint
	defer func() { // loaded, never attached (an error, or a fallback won)
		for _, ch := range pre {
			(<-ch).close()
		}
	}()
	for _, p := range attachOrder {
		if !cfg.wants(p) {
			continue
		}
		if p != PointConnect && pre == nil {
			first := map[HookPoint]Impl{}
			for _, q := range attachOrder {
				if c := implsFor(q); q != PointConnect && cfg.wants(q) && len(c) > 0 {
					first[q] = c[0]
				}
			}
			pre = l.preload(first)
		}
		var lp *loadedPoint
		if ch, ok := pre[p]; ok {
			lp = <-ch
			delete(pre, p)
		}
		ap, err := l.attach(p, backend, implsFor(p), lp)
		switch {
		case err == nil:
			t.points = append(t.points, ap)
			if p == PointUDP && len(ap.skipped) > 0 {
				t.UDPNoRelease = errors.New(ap.skipped[0])
			}
			if p == PointConnect && ap.impl == implTracepoint {
				if err := l.connectsFromSyscalls(); err != nil {
					return nil, err
				}
			}
		case p == PointDNS: // optional: without it, only names (and UDP flows) are missing
			t.DNSError = err
			if cfg.UDP {
				t.UDPError = err
			}
		case p == PointUDP:
			if t.UDPError == nil {
				t.UDPError = err
			}
		case optionalPoint(p): // without it, only its events are missing
			if t.HealthErrors == nil {
				t.HealthErrors = map[HookPoint]error{}
			}
			t.HealthErrors[p] = err
		default:
			return nil, err
		}
	}
	return t, nil
}

// Choices says, per hook point, which backend is attached.
func (t *Tracer) Choices() []Choice {
	out := make([]Choice, len(t.points))
	for i, ap := range t.points {
		out[i] = ap.choice()
	}
	return out
}

// Run hands h every event the kernel side reports, decoded, with loss
// notices, until ctx ends; then it detaches every hook, hands over what
// was still queued and returns (see reader.Run).
func (t *Tracer) Run(ctx context.Context, h event.Handler) error {
	r := newReader(kernelRing{t}, readerConfig{MaxDelay: t.cfg.MaxDelay, Tick: t.cfg.Tick, Updates: t.cfg.Updates})
	r.poll = t.newPoller()
	if t.cfg.UDP && t.UDPError == nil {
		m := t.loader.maps.Maps
		r.udp = newUDPFlows(m[bpf.TuxscopeMapUdpFlows], m[bpf.TuxscopeMapUdpSocks], t.cfg.UDPIdle,
			t.cfg.wantsType(event.UDPOpen), t.cfg.wantsType(event.UDPClose))
	}
	t.last = r
	return r.Run(ctx, h)
}

// Unreported is what the kernel side counted as lost (ring buffer full)
// and skipped (program runs) that Run did not hand its handler: nothing
// after a run that drained, the rest when it ended early (an output error,
// such as a reader that stalled and then went away).
func (t *Tracer) Unreported() (event.LossCounts, error) {
	if t.last == nil {
		return event.LossCounts{}, nil
	}
	return t.last.unreported()
}

// Malformed is how many records Run skipped because they could not be
// decoded.
func (t *Tracer) Malformed() uint64 {
	if t.last == nil {
		return 0
	}
	return t.last.malformed
}

// kernelRing is the Tracer's ring buffer and counters, as a Reader reads
// them.
type kernelRing struct{ t *Tracer }

func (k kernelRing) ReadInto(rec *ringbuf.Record) error { return k.t.reader.ReadInto(rec) }
func (k kernelRing) Pending() int                       { return k.t.reader.AvailableBytes() }
func (k kernelRing) SetDeadline(d time.Time)            { k.t.reader.SetDeadline(d) }
func (k kernelRing) Stop() error                        { return k.t.stop() }
func (k kernelRing) Losses() (event.LossCounts, error)  { return k.t.losses() }

func (k kernelRing) WakeOnNextEvent() error {
	if err := k.t.loader.maps.Maps[bpf.TuxscopeMapReaderIdle].Update(uint32(0), uint32(1), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("arming the reader's wake-up: %w", err)
	}
	return nil
}

// stop detaches every hook, so no new events arrive, and makes the
// reader return what is still in the ring buffer, then ringbuf.ErrFlushed.
func (t *Tracer) stop() error {
	err := t.detach()
	if ferr := t.reader.Flush(); ferr != nil && err == nil {
		err = ferr
	}
	return err
}

func (t *Tracer) detach() error {
	var errs []error
	for _, ap := range t.points {
		errs = append(errs, ap.detach())
	}
	return errors.Join(errs...)
}

// lost is the number of events the kernel side could not queue since load
// (ring buffer full), summed over CPUs.
func (t *Tracer) losses() (c event.LossCounts, err error) {
	if c[event.RingBufferFull], err = sumPerCPU(t.loader.maps.Maps[bpf.TuxscopeMapLost]); err != nil {
		return c, fmt.Errorf("reading the lost-event counter: %w", err)
	}
	if c[event.HookSkipped], err = t.skipped(); err != nil {
		return c, err
	}
	if c[event.ConnTableFull], err = sumPerCPU(t.loader.maps.Maps[bpf.TuxscopeMapConnsFull]); err != nil {
		return c, fmt.Errorf("reading the untracked-connection counter: %w", err)
	}
	if c[event.ListenerTableFull], err = sumPerCPU(t.loader.maps.Maps[bpf.TuxscopeMapListenersFull]); err != nil {
		return c, fmt.Errorf("reading the untracked-listener counter: %w", err)
	}
	if c[event.UDPTableFull], err = sumPerCPU(t.loader.maps.Maps[bpf.TuxscopeMapUdpFlowsFull]); err != nil {
		return c, fmt.Errorf("reading the untracked-UDP-flow counter: %w", err)
	}
	return c, nil
}

// sumPerCPU sums a one-slot per-CPU array of counters.
func sumPerCPU(m *ebpf.Map) (uint64, error) {
	var perCPU []uint64
	if err := m.Lookup(uint32(0), &perCPU); err != nil {
		return 0, err
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n, nil
}

// skipped is how many times the kernel skipped one of tuxscope's attached
// programs since it was loaded because another BPF program was running on
// that CPU (their recursion misses; Linux 5.12+, 0 before), less the state
// changes the nested copy of the state program handled for a skipped first
// copy. Each remaining skip may have cost an event, and nothing else would
// say so.
func (t *Tracer) skipped() (uint64, error) {
	var n uint64
	for _, ap := range t.points {
		if ap.coll == nil {
			continue
		}
		for name, p := range ap.coll.Programs {
			if name == bpf.TuxscopeProgRawStateNest {
				continue // it only runs where the first copy was skipped
			}
			st, err := p.Stats()
			if err != nil {
				return 0, fmt.Errorf("reading %s's statistics: %w", name, err)
			}
			n += st.RecursionMisses
		}
	}
	recovered, err := sumPerCPU(t.loader.maps.Maps[bpf.TuxscopeMapStateRecovered])
	if err != nil {
		return 0, fmt.Errorf("reading the recovered state changes: %w", err)
	}
	if recovered >= n {
		return 0, nil
	}
	return n - recovered, nil
}

// Close detaches and frees everything.
func (t *Tracer) Close() error {
	var errs []error
	for _, ap := range t.points {
		errs = append(errs, ap.close())
	}
	t.points = nil
	if t.reader != nil {
		errs = append(errs, t.reader.Close())
	}
	t.loader.close()
	return errors.Join(errs...)
}

// MaxBTFBytes bounds the kernel BTF file tuxscope reads: a kernel's raw
// BTF is a few MiB, an ELF vmlinux with all its debug info a few hundred.
const MaxBTFBytes = 1 << 30

// noKernelBTF says that the kernel has no BTF file, as os.Stat found.
func noKernelBTF(err error) error {
	return fmt.Errorf("this kernel exposes no BTF (%s: %v): tuxscope needs a kernel built with CONFIG_DEBUG_INFO_BTF=y, or --btf FILE", KernelBTFPath, errors.Unwrap(err))
}

// runningKernelBTF is the running kernel's BTF, as cache holds it.
func runningKernelBTF(cache *btf.Cache) (*btf.Spec, error) {
	if _, err := os.Stat(KernelBTFPath); err != nil {
		return nil, noKernelBTF(err)
	}
	spec, err := cache.Kernel()
	if err != nil {
		return nil, fmt.Errorf("reading kernel BTF from %s: %w", KernelBTFPath, err)
	}
	return spec, nil
}

func loadKernelBTF(path string) (*btf.Spec, error) {
	if path == "" {
		if _, err := os.Stat(KernelBTFPath); err != nil {
			return nil, noKernelBTF(err)
		}
		path = KernelBTFPath
	}
	// Only a regular file of a sane size: /dev/zero or a FIFO would be
	// read forever (or block the open), deaf to Ctrl-C. O_NONBLOCK keeps
	// the open of a FIFO from waiting for a writer; fstat then judges the
	// file that was opened, not whatever the path names by then.
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("reading kernel BTF from %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading kernel BTF from %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("reading kernel BTF from %s: it is %s, not a regular file (want a vmlinux or a raw BTF file, e.g. a copy of /sys/kernel/btf/vmlinux)", path, fileKind(fi.Mode()))
	}
	if fi.Size() > MaxBTFBytes {
		return nil, fmt.Errorf("reading kernel BTF from %s: %d bytes, more than a kernel's BTF can be (%d at most)", path, fi.Size(), MaxBTFBytes)
	}
	spec, err := btf.LoadSpecFromReader(io.NewSectionReader(f, 0, fi.Size()))
	if err != nil {
		return nil, fmt.Errorf("reading kernel BTF from %s: %w", path, err)
	}
	return spec, nil
}

// fileKind names what a non-regular file is, for an error message.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	}
	return "not a regular file"
}

// configure sets the filter constants and sizes the ring buffer.
func configure(spec *ebpf.CollectionSpec, cfg Config) error {
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
	if err := spec.Variables[bpf.TuxscopeVarWantTypes].Set(cfg.typeMask()); err != nil {
		return fmt.Errorf("setting want_types: %w", err)
	}
	for name, v := range map[string]uint8{
		bpf.TuxscopeVarFilterPid:    b2u(len(cfg.PIDs) > 0),
		bpf.TuxscopeVarFilterPort:   b2u(len(cfg.Ports) > 0),
		bpf.TuxscopeVarFilterCgroup: b2u(cfg.CgroupFilter),
		bpf.TuxscopeVarWantIpv4:     b2u(cfg.IPv4),
		bpf.TuxscopeVarWantIpv6:     b2u(cfg.IPv6),
		bpf.TuxscopeVarWantDns:      b2u(cfg.DNS),
		bpf.TuxscopeVarUdpFlowsOn:   b2u(cfg.UDP),
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
	conns := cfg.ConnTable
	if conns == 0 {
		conns = DefaultConnTable
	}
	if err := CheckConnTable(conns); err != nil {
		return err
	}
	spec.Maps[bpf.TuxscopeMapConns].MaxEntries = uint32(conns)
	udpFlows := cfg.UDPFlows
	if udpFlows == 0 {
		udpFlows = DefaultUDPFlows
	}
	if err := CheckUDPFlows(udpFlows); err != nil {
		return err
	}
	spec.Maps[bpf.TuxscopeMapUdpFlows].MaxEntries = uint32(udpFlows)
	if err := spec.Variables[bpf.TuxscopeVarRetransWindowNs].Set(uint64(retransWindow(cfg.MaxDelay))); err != nil {
		return fmt.Errorf("setting retrans_window_ns: %w", err)
	}
	if cfg.MaxDelay > 0 {
		if err := spec.Variables[bpf.TuxscopeVarWakeupBytes].Set(uint32(size / 4)); err != nil {
			return fmt.Errorf("setting wakeup_bytes: %w", err)
		}
	}
	// bpf2go's -type keeps struct event in the map's BTF; the kernel wants
	// no value type on a ring buffer.
	spec.Maps[bpf.TuxscopeMapEvents].Value = nil
	spec.Maps[bpf.TuxscopeMapEvents].ValueSize = 0

	return nil
}

// MinRetransWindow is the shortest window retransmit events are coalesced
// over, per connection: --max-delay, or this when it is shorter (0).
const MinRetransWindow = 10 * time.Millisecond

func retransWindow(maxDelay time.Duration) time.Duration {
	return max(maxDelay, MinRetransWindow)
}

// The kernel side's connection table (conns): since Linux 6.1 a hash
// allocated as it is used, so its size costs only its buckets (16 bytes
// each) until connections fill it; before, preallocated in full (see
// allocatesInTracing).
const (
	DefaultConnTable = 1 << 18
	MaxConnTable     = 1 << 24
)

// CheckConnTable reports whether n connections is a valid table size.
func CheckConnTable(n int) error {
	if n < 1 || n > MaxConnTable {
		return fmt.Errorf("connection table size %d: must be between 1 and %d", n, MaxConnTable)
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
	words := portBitmap(cfg.Ports)
	for i, w := range words {
		if w == 0 {
			continue
		}
		if err := coll.Maps[bpf.TuxscopeMapPortFilter].Put(uint32(i), w); err != nil {
			return fmt.Errorf("setting the port filter: %w", err)
		}
	}
	return nil
}

// portBitmap is the port_filter array's contents for these ports: bit
// port%32 of word port/32.
func portBitmap(ports []uint16) []uint32 {
	words := make([]uint32, 65536/32)
	for _, p := range ports {
		words[p/32] |= 1 << (p % 32)
	}
	return words
}

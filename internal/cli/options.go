// Package cli is tuxscope's command line: parsing and validation, and the
// wiring of options to the tracer, the pipeline and a sink.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/tuxscope/tuxscope/internal/event"
	"github.com/tuxscope/tuxscope/internal/filter"
	"github.com/tuxscope/tuxscope/internal/output"
	"github.com/tuxscope/tuxscope/internal/summary"
	"github.com/tuxscope/tuxscope/internal/tracer"
)

// netOptions is everything `tuxscope net` is told, validated.
type netOptions struct {
	Format          output.Format
	Filter          filter.Spec
	RingBufferBytes int
	ConnTable       int // connections the kernel side can track at once
	BTFPath         string
	Backend         tracer.Backend
	Existing        bool
	Duration        time.Duration // stop after this long; 0: until Ctrl-C
	Summary         bool
	Interval        time.Duration // --summary: print every Interval; 0: at the end
	Top             int           // --summary: peers shown per process; 0: all
	Sort            summary.SortBy
	ShowDNS         bool // --dns: show DNS responses as events
	NoNames         bool // --no-names: no DNS or ClientHello capture, no hostnames or server names
	Containers      bool // --containers: the table's CONTAINER column
	// CRISocket is --cri-socket: the CRI runtime's socket that names pods
	// and containers; "" probes cri.DefaultSockets, "none" asks none.
	CRISocket string
	// MaxDelay is how long an event may wait in the kernel before it is
	// read (the reader is then woken only when a quarter of the ring
	// buffer is full); 0: woken for every event.
	MaxDelay time.Duration
	// Updates is --updates: every Updates, an update event per tracked
	// connection open that long (top: its --interval); 0: none.
	Updates time.Duration
	// UDPIdle is --udp-idle: a UDP flow without a packet for that long is
	// reported closed; UDPFlows is --udp-flows, the kernel's flow table.
	UDPIdle  time.Duration
	UDPFlows int

	// By is --by (net --summary, top): what a summary row's group is.
	By summary.GroupBy
	// Output is --output's file and rotation; Path empty: none.
	Output output.FileOptions
	// Quiet: stdout gets nothing, the events go to --output's file
	// alone (--output without --format or --summary).
	Quiet bool
	// Serve is `tuxscope serve`'s own flags (serve.go).
	Serve serveOptions
}

// DefaultMaxDelay is --max-delay's default: short enough to read as live,
// long enough that under load the reader wakes a few times a second, not
// for every event.
const DefaultMaxDelay = 100 * time.Millisecond

// MinUpdates is the shortest --updates period: each costs a sock_diag
// dump of the namespace's TCP sockets.
const MinUpdates = 100 * time.Millisecond

// MinUDPIdle is the shortest --udp-idle: idle flows are looked for about
// every second.
const MinUDPIdle = 100 * time.Millisecond

// errHelp means --help was asked for and usage was printed.
var errHelp = flag.ErrHelp

// outputError is a write to stdout that failed (a full disk, /dev/full):
// exit 1, not a usage error.
type outputError struct{ err error }

func (e *outputError) Error() string { return "writing the output: " + e.err.Error() }
func (e *outputError) Unwrap() error { return e.err }

// usageExit is the exit for a command whose flags did not parse: 0 after
// --help, 1 when even that could not be written, 2 for a usage error.
func usageExit(prog string, err error, stderr io.Writer) int {
	var oe *outputError
	switch {
	case errors.As(err, &oe):
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return exitError
	case errors.Is(err, errHelp):
		return exitOK
	}
	fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", prog, err, prog)
	return exitUsage
}

const netUsage = `Usage: tuxscope net [flags]

Show every TCP connection on this host as it happens: outbound connects
and inbound accepts, with the process, both endpoints and the direction,
then each connection's outcome (established with its handshake latency, or
failed and why) and its close (duration, data bytes each way, who closed
first), attributed to the process that connected or accepted it.
SRC is the side that opened the connection: the local end of a connect,
the remote client of an accept. DETAIL holds what the event adds.

Flags:
  --format table|json   output format (default table); json is one object per line
  --pid PID             only these processes; repeat or give a comma list
  --comm NAME           only processes with this name (its first 15 bytes, all the
                        kernel keeps); repeat or comma list
  --port PORT           only connections with this port at either end; repeat or comma list
  --container ID|NAME   only processes in this container: an id prefix (4 or more
                        hex digits) or a name (a systemd unit's, or the CRI
                        runtime's); repeat or comma list
  --pod NAME            only processes in this Kubernetes pod (names from a CRI
                        runtime); repeat or comma list
  --namespace NS        only processes in pods of this Kubernetes namespace
  --cgroup PATH         only processes in this cgroup or below it, PATH as the 0::
                        line of /proc/PID/cgroup writes it; repeat or comma list
  --type TYPE           only these events: connect, accept, established, failed,
                        close, retransmit, reset, listen, unlisten, udp_open,
                        udp_close; repeat or comma list
  --proto tcp|udp       only TCP connections or only UDP flows (default both).
                        A UDP flow is one socket's traffic with one peer:
                        udp_open at its first packet either way, udp_close
                        when the socket is closed or the flow is idle for
                        --udp-idle, with packets and payload bytes each way
  --udp-idle D          end a UDP flow after D without a packet (default 30s;
                        seconds, or 500ms, 1m)
  --udp-flows N         UDP flows tracked at once (default 65536; about 300
                        bytes of kernel memory each while in use); beyond it,
                        reported as lost (udp_table_full)
  -4, -6                only IPv4 / only IPv6 (an AF_INET6 socket talking to an
                        IPv4 peer counts as IPv6, as ss shows it)
  --summary             instead of events, print per process the top peers: connects,
                        accepts, failures, bytes, latency and duration percentiles
  --by GROUP            with --summary: what a row's group is: process (default;
                        pid and comm), comm (every process of one name together),
                        container (short id and name; events outside containers
                        in one row, host) or pod (namespace/pod, or the pod's uid;
                        events outside pods in one row, -)
  --interval N          with --summary: print one every N seconds (or 500ms, 1m)
  --top N               with --summary: peers shown per group (default 10, 0: all)
  --duration D          stop after D (seconds, or 500ms, 1m); default: at Ctrl-C
  --dns                 also show DNS responses (type dns): which process asked
                        what, the answer, the latency
  --no-names            do not watch DNS or TLS ClientHellos: no hostnames for
                        addresses, no TLS server names (with --proto tcp, saves
                        the cost of the cgroup packet hooks, see README)
  --containers          show the table's CONTAINER column from the start (else it
                        comes with the first event from a container or pod):
                        pod/container for a Kubernetes container the CRI runtime
                        names, else the container's short id, or the systemd unit
                        (JSON always has the keys cgroup, container_id, runtime,
                        pod_uid, container, pod, namespace)
  --cri-socket PATH     the CRI runtime (containerd, CRI-O) that names Kubernetes
                        pods, namespaces and containers; default: the first of
                        /run/containerd/containerd.sock, /run/crio/crio.sock,
                        /run/k3s/containerd/containerd.sock, /run/cri-dockerd.sock
                        (and under /var/run) that answers, else no names;
                        none: ask no runtime
  --existing            first list the connections and listeners that already
                        exist (type existing; listeners with state LISTEN), so
                        their closes have context
  --updates D           every D (seconds, or 500ms, 1m; at least 100ms), an update
                        event (type update) per connection open that long: bytes
                        each way in the period and in total, send and receive
                        rates, RTT and retransmits, from the kernel's tcp_info
                        (sock_diag, as ss -ti; connections in tuxscope's network
                        namespace)
  --buffer-size SIZE    kernel ring buffer size, a power of two (default 4M)
  --conn-table N        connections tracked at once, both ends of a local one
                        counting (default 262144; about 220 bytes of kernel
                        memory each while in use); beyond it, reported as lost
  --max-delay D         longest an event waits in the kernel before it is shown
                        (default 100ms; 0: wake tuxscope for every event, at a
                        higher CPU cost under load)
  --backend NAME        how to hook the kernel: auto (default: per hook, the first
                        of fentry, kprobe, tracepoint that works here), fentry,
                        kprobe or tracepoint
  --btf FILE            kernel BTF to use instead of /sys/kernel/btf/vmlinux
  --output FILE         write the events as JSON lines (as --format json) to FILE,
                        created mode 0640 or appended to; stdout then gets nothing
                        unless --format or --summary is given too. A slow disk
                        never stalls tracing: what the writer cannot take is
                        dropped, counted and reported (lost, reason output_full)
  --rotate-size SIZE    rotate FILE when the next event would take it past SIZE
                        (K, M, G suffixes; default 100M; 0: never): FILE becomes
                        FILE.1, FILE.1 FILE.2, ...
  --rotate-keep N       rotated files kept, FILE.1 (newest) to FILE.N (default 5)

pid, type, family and port filters are applied in the kernel, and the
container, pod, namespace and cgroup filters wherever the cgroup v2 ids of
what they select express them (see README: Filters). Filters of different
kinds must all match; several values of one kind, any of them.
Needs root, or CAP_BPF and CAP_PERFMON, with CAP_DAC_READ_SEARCH for
tracepoints (tracefs is root's), CAP_NET_ADMIN for hostnames and
CAP_SYS_PTRACE for --existing's owners; tuxscope doctor says what is missing.
`

const topUsage = `Usage: tuxscope top [flags]

A live, full-screen view of who talks to whom: processes (or the groups
of --by) and their peers with connections, failures, bytes, latency and
duration, and the live send and receive rates and retransmits of its
open connections (from update events, one per connection per refresh),
refreshed every --interval. Keys: s cycles the sort (connections,
bytes, failures, rate, retrans), / filters by group or peer (Enter applies,
Esc clears), c clears the counters, q quits. When stdout is not a
terminal it prints a plain summary every --interval instead.

Flags:
  --interval D          refresh every D (default 2s; seconds, or 500ms, 1m)
  --sort KEY            connections (default), bytes, failures, rate (live send
                        plus receive) or retrans
  --by GROUP            process (default), comm, container or pod: as for
                        net --summary
  --duration D          stop after D
  --pid, --comm, --port, --container, --pod, --namespace, --cgroup, -4, -6,
  --proto, --udp-idle, --udp-flows, --no-names, --cri-socket, --buffer-size, --conn-table, --max-delay, --backend,
  --btf: as for net
`

// parseNetOptions parses `tuxscope net` arguments. Usage errors are
// returned as is; errHelp means usage was written to stdout.
func parseNetOptions(args []string, stdout io.Writer) (netOptions, error) {
	return parseOptions("net", args, stdout)
}

// parseOptions parses the flags of `tuxscope net`, `tuxscope top` or
// `tuxscope serve`; top and serve take the filters and kernel-side flags,
// plus their own.
func parseOptions(cmd string, args []string, stdout io.Writer) (_ netOptions, err error) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		format, bufSize, backend, sortBy string
		opts                             netOptions
		ipv4, ipv6                       bool
	)
	var groupBy string // --by
	if cmd == "net" {
		fs.StringVar(&format, "format", "table", "")
	} else if cmd == "top" {
		format = "table"
		opts.Summary, opts.Interval = true, 2*time.Second
		fs.StringVar(&sortBy, "sort", "connections", "")
	}
	fs.Var(listFlag(func(s string) error {
		pid, err := strconv.ParseUint(s, 10, 32)
		if err != nil || pid == 0 {
			return fmt.Errorf("invalid pid %q", s)
		}
		opts.Filter.PIDs = append(opts.Filter.PIDs, uint32(pid))
		return nil
	}), "pid", "")
	fs.Var(listFlag(func(s string) error {
		if s == "" {
			return errors.New("empty process name")
		}
		// Longer names match on the 15 bytes the kernel keeps, as pgrep does.
		opts.Filter.Comms = append(opts.Filter.Comms, s)
		return nil
	}), "comm", "")
	for _, k := range []struct {
		name string
		list *[]string
	}{{"container", &opts.Filter.Containers}, {"pod", &opts.Filter.Pods}, {"namespace", &opts.Filter.Namespaces}} {
		fs.Var(listFlag(func(s string) error {
			if err := filter.CheckName(k.name, s); err != nil {
				return err
			}
			*k.list = append(*k.list, s)
			return nil
		}), k.name, "")
	}
	fs.Var(listFlag(func(s string) error {
		p, err := filter.CleanCgroup(s)
		if err != nil {
			return err
		}
		opts.Filter.Cgroups = append(opts.Filter.Cgroups, p)
		return nil
	}), "cgroup", "")
	fs.Var(listFlag(func(s string) error {
		port, err := strconv.ParseUint(s, 10, 16)
		if err != nil || port == 0 {
			return fmt.Errorf("invalid port %q", s)
		}
		opts.Filter.Ports = append(opts.Filter.Ports, uint16(port))
		return nil
	}), "port", "")
	if cmd == "net" {
		fs.Var(listFlag(func(s string) error {
			t, err := event.ParseType(s)
			if err != nil {
				return err
			}
			opts.Filter.Types = append(opts.Filter.Types, t)
			return nil
		}), "type", "")
		fs.BoolVar(&opts.Existing, "existing", false, "")
		fs.Var(durationFlag{&opts.Updates}, "updates", "")
		fs.BoolVar(&opts.Summary, "summary", false, "")
		fs.IntVar(&opts.Top, "top", 10, "")
	}
	var proto string
	fs.StringVar(&proto, "proto", "", "")
	opts.UDPIdle = tracer.DefaultUDPIdle
	fs.Var(durationFlag{&opts.UDPIdle}, "udp-idle", "")
	fs.IntVar(&opts.UDPFlows, "udp-flows", tracer.DefaultUDPFlows, "")
	fs.BoolVar(&ipv4, "4", false, "")
	fs.BoolVar(&ipv6, "6", false, "")
	fs.StringVar(&bufSize, "buffer-size", "4M", "")
	fs.IntVar(&opts.ConnTable, "conn-table", tracer.DefaultConnTable, "")
	opts.MaxDelay = DefaultMaxDelay
	fs.Var(durationFlag{&opts.MaxDelay}, "max-delay", "")
	fs.StringVar(&opts.BTFPath, "btf", "", "")
	fs.StringVar(&backend, "backend", "auto", "")
	fs.Var(durationFlag{&opts.Duration}, "duration", "")
	fs.BoolVar(&opts.NoNames, "no-names", false, "")
	fs.Func("cri-socket", "", func(s string) error {
		if s == "" {
			return errors.New("empty path (none: ask no CRI runtime)")
		}
		opts.CRISocket = s
		return nil
	})
	if cmd == "net" {
		fs.BoolVar(&opts.ShowDNS, "dns", false, "")
		fs.BoolVar(&opts.Containers, "containers", false, "")
	}
	var outFlags *outputFlags
	if cmd == "net" || cmd == "serve" {
		outFlags = addOutputFlags(fs)
	}
	if cmd == "serve" {
		opts.Serve.register(fs)
	} else { // the summary's views
		fs.Var(durationFlag{&opts.Interval}, "interval", "")
		fs.StringVar(&groupBy, "by", "process", "")
	}

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			text := map[string]string{"net": netUsage, "top": topUsage, "serve": serveUsage}[cmd]
			if _, werr := io.WriteString(stdout, text); werr != nil {
				return opts, &outputError{werr}
			}
		}
		return opts, err
	}
	if cmd == "top" {
		if opts.Interval <= 0 {
			return opts, errors.New("--interval must be positive")
		}
		// The live rates: one update per connection per refresh.
		opts.Updates = max(opts.Interval, MinUpdates)
		if opts.Sort, err = summary.ParseSortBy(sortBy); err != nil {
			return opts, err
		}
	}
	if cmd == "serve" {
		if err := opts.Serve.check(); err != nil {
			return opts, err
		}
		// The metrics count DNS responses: the pipeline makes them events.
		format, opts.ShowDNS = "table", !opts.NoNames
	}
	if fs.NArg() > 0 {
		return opts, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if opts.Interval > 0 && !opts.Summary {
		return opts, errors.New("--interval needs --summary")
	}
	bySet := false
	fs.Visit(func(f *flag.Flag) { bySet = bySet || f.Name == "by" })
	if bySet {
		if !opts.Summary {
			return opts, errors.New("--by needs --summary")
		}
		if opts.By, err = summary.ParseGroupBy(groupBy); err != nil {
			return opts, err
		}
	}
	if opts.ShowDNS && opts.NoNames {
		return opts, errors.New("--dns and --no-names exclude each other")
	}
	if opts.Updates > 0 && opts.Updates < MinUpdates {
		return opts, fmt.Errorf("--updates must be at least %v (or 0: none)", MinUpdates)
	}
	if opts.MaxDelay > time.Second {
		return opts, errors.New("--max-delay must be at most 1s")
	}
	if opts.Top < 0 {
		return opts, fmt.Errorf("invalid --top %d", opts.Top)
	}
	if opts.Format, err = output.ParseFormat(format); err != nil {
		return opts, err
	}
	if outFlags != nil {
		if opts.Output, err = outFlags.options(); err != nil {
			return opts, err
		}
		formatSet := false
		fs.Visit(func(f *flag.Flag) { formatSet = formatSet || f.Name == "format" })
		// serve's metrics sink always gets the events too.
		opts.Quiet = cmd == "net" && opts.Output.Path != "" && !formatSet && !opts.Summary
	}
	if opts.Backend, err = tracer.ParseBackend(backend); err != nil {
		return opts, err
	}
	if ipv4 && ipv6 {
		return opts, errors.New("-4 and -6 exclude each other (give neither for both)")
	}
	opts.Filter.IPv4, opts.Filter.IPv6 = ipv4, ipv6
	protoSet := false
	fs.Visit(func(f *flag.Flag) { protoSet = protoSet || f.Name == "proto" })
	if protoSet {
		if opts.Filter.Proto, err = filter.ParseProto(proto); err != nil {
			return opts, err
		}
		for _, t := range opts.Filter.Types {
			if (t == event.UDPOpen || t == event.UDPClose) != (proto == "udp") {
				return opts, fmt.Errorf("--type %s is not a --proto %s event", t, proto)
			}
		}
	}
	if opts.UDPIdle < MinUDPIdle {
		return opts, fmt.Errorf("--udp-idle must be at least %v", MinUDPIdle)
	}
	if err := tracer.CheckUDPFlows(opts.UDPFlows); err != nil {
		return opts, fmt.Errorf("--udp-flows: %w", err)
	}
	if opts.RingBufferBytes, err = parseSize(bufSize); err != nil {
		return opts, fmt.Errorf("--buffer-size: %w", err)
	}
	if err := tracer.CheckConnTable(opts.ConnTable); err != nil {
		return opts, fmt.Errorf("--conn-table: %w", err)
	}
	if len(opts.Filter.PIDs) > tracer.MaxFilterEntries || len(opts.Filter.Ports) > tracer.MaxFilterEntries {
		return opts, fmt.Errorf("at most %d pids and %d ports", tracer.MaxFilterEntries, tracer.MaxFilterEntries)
	}
	if f := &opts.Filter; len(f.Containers)+len(f.Pods)+len(f.Namespaces)+len(f.Cgroups) > tracer.MaxFilterEntries {
		return opts, fmt.Errorf("at most %d --container, --pod, --namespace and --cgroup values", tracer.MaxFilterEntries)
	}
	return opts, nil
}

// tracerConfig is what the kernel side is asked to do.
func (o *netOptions) tracerConfig() tracer.Config {
	f := &o.Filter
	types := f.Types
	if f.Proto != "" && len(types) == 0 {
		// only the protocol's types: the other's cost no ring traffic
		for _, t := range event.Types {
			if (t == event.UDPOpen || t == event.UDPClose) == (f.Proto == "udp") {
				types = append(types, t)
			}
		}
	}
	return tracer.Config{
		PIDs:            f.PIDs,
		Ports:           f.Ports,
		Types:           types,
		UDP:             f.WantProto("udp") && (f.WantType(event.UDPOpen) || f.WantType(event.UDPClose)),
		UDPIdle:         o.UDPIdle,
		UDPFlows:        o.UDPFlows,
		IPv4:            f.WantFamily(4),
		IPv6:            f.WantFamily(6),
		RingBufferBytes: o.RingBufferBytes,
		ConnTable:       o.ConnTable,
		BTFPath:         o.BTFPath,
		Backend:         o.Backend,
		DNS:             !o.NoNames,
		MaxDelay:        o.MaxDelay,
		Tick:            o.Interval,
		Updates:         o.Updates,
	}
}

// listFlag is a repeatable flag whose values may also be comma lists.
type listFlag func(string) error

func (f listFlag) String() string { return "" }

func (f listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if err := f(strings.TrimSpace(s)); err != nil {
			return err
		}
	}
	return nil
}

// parseSize reads a byte count with an optional K, M or G suffix (powers
// of 1024) and checks it is a valid ring-buffer size.
func parseSize(s string) (int, error) {
	mult := 1
	num := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(s), "B"), "I")
	switch {
	case strings.HasSuffix(num, "K"):
		mult, num = 1<<10, strings.TrimSuffix(num, "K")
	case strings.HasSuffix(num, "M"):
		mult, num = 1<<20, strings.TrimSuffix(num, "M")
	case strings.HasSuffix(num, "G"):
		mult, num = 1<<30, strings.TrimSuffix(num, "G")
	}
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 || n > (1<<30)/mult {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	n *= mult
	if err := tracer.CheckRingBufferSize(n); err != nil {
		return 0, err
	}
	return n, nil
}

// durationFlag takes whole seconds ("5") or a Go duration ("500ms", "1m").
type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string {
	if f.d == nil {
		return "0"
	}
	return f.d.String()
}

func (f durationFlag) Set(s string) error {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		*f.d = time.Duration(n) * time.Second
	} else if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		*f.d = d
	} else {
		return fmt.Errorf("invalid duration %q (want seconds, or e.g. 500ms, 1m)", s)
	}
	return nil
}

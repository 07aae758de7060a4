package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tuxscope/tuxscope/internal/container"
	"github.com/tuxscope/tuxscope/internal/dns"
	"github.com/tuxscope/tuxscope/internal/event"
	"github.com/tuxscope/tuxscope/internal/hosts"
	"github.com/tuxscope/tuxscope/internal/output"
	"github.com/tuxscope/tuxscope/internal/peers"
	"github.com/tuxscope/tuxscope/internal/pipeline"
	"github.com/tuxscope/tuxscope/internal/snapshot"
	"github.com/tuxscope/tuxscope/internal/sni"
	"github.com/tuxscope/tuxscope/internal/summary"
	"github.com/tuxscope/tuxscope/internal/tracer"
	"github.com/tuxscope/tuxscope/internal/zone"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const usage = `Usage: tuxscope <command> [flags]

Commands:
  net       show TCP connects and accepts as they happen
  top       live full-screen view: processes, their peers, counts and bytes
  serve     Prometheus agent: connection metrics at /metrics
  doctor    check what this kernel allows, backend by backend
  version   print the version

Run 'tuxscope <command> --help' for a command's flags.
`

// Version is set at build time with -ldflags "-X ...cli.Version=...".
var Version = "dev"

// Run is the whole program: it returns the exit code. ctx ends the run
// (main cancels it on SIGINT and SIGTERM).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		io.WriteString(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "net":
		return runNet(ctx, args[1:], stdout, stderr)
	case "doctor":
		return runDoctor(args[1:], stdout, stderr)
	case "top":
		return runTop(ctx, args[1:], stdout, stderr)
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		return writeText(stdout, stderr, "tuxscope", fmt.Sprintf("tuxscope %s\n", Version))
	case "help", "-h", "--help", "-help":
		return writeText(stdout, stderr, "tuxscope", usage)
	}
	fmt.Fprintf(stderr, "tuxscope: unknown command %q\nRun 'tuxscope --help' for usage.\n", args[0])
	return exitUsage
}

func runNet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts, err := parseNetOptions(args, stdout)
	if err != nil {
		return usageExit("tuxscope net", err, stderr)
	}
	return trace(ctx, &opts, stdout, stderr, nil)
}

// trace attaches, then runs the pipeline from the tracer to a sink until
// ctx ends: the sink opts ask for, or, with view, a sink that view
// displays while the events flow (tuxscope top); view's return ends the
// run.
func trace(ctx context.Context, opts *netOptions, stdout, stderr io.Writer, view *liveView) int {
	if opts.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Duration)
		defer cancel()
	}
	// Before attaching: a file that cannot be opened fails at once.
	file, err := openOutput(opts.Output, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "tuxscope: %v\n", err)
		return exitError
	}
	if file != nil {
		defer file.Finish() // a run ended by an error finishes it here
	}
	// The CRI runtime is asked while the tracer loads.
	waitCRI := startCRI(ctx, opts.CRISocket, stderr)
	res := container.NewResolver()
	tcfg := opts.tracerConfig()
	var v1 []string
	if opts.Filter.HasWorkload() {
		if f, err := os.Open("/proc/self/mountinfo"); err == nil {
			v1 = container.V1Hierarchies(io.LimitReader(f, 1<<20))
			f.Close()
		}
		if err := checkCgroups(&opts.Filter, res, v1); err != nil {
			fmt.Fprintf(stderr, "tuxscope: %v\n", err)
			return exitUsage
		}
		tcfg.CgroupFilter = res.Root != ""
	}
	tr, err := tracer.Open(tcfg)
	criClient := waitCRI()
	if criClient != nil {
		defer criClient.Close()
		res.Namer = criClient
	}
	if err != nil {
		fmt.Fprintf(stderr, "tuxscope: %v\n", err)
		return exitError
	}
	defer tr.Close()
	if opts.Filter.HasWorkload() {
		if (len(opts.Filter.Pods) > 0 || len(opts.Filter.Namespaces) > 0) && res.Namer == nil {
			fmt.Fprintf(stderr, "tuxscope: no CRI runtime names pods here: --pod and --namespace select nothing\n")
		}
		// The hierarchies whose paths name a process whose v2 cgroup is
		// the root (name=systemd's, else memory's): a runtime puts a
		// container in every v1 hierarchy, and each walk costs.
		cf := newCgroupFilter(&opts.Filter, res, v1[:min(len(v1), 2)], tr, stderr)
		if !tcfg.CgroupFilter {
			fmt.Fprintf(stderr, "tuxscope: filtering by %s in user space only: no cgroup2 mount\n", cf.kinds())
		} else {
			// Before "attached": from there on, the kernel filter is what
			// this first walk found.
			if err := cf.refresh(); err != nil {
				fmt.Fprintf(stderr, "tuxscope: %v\n", err)
				return exitError
			}
			cctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { cf.run(cctx); close(done) }()
			defer func() { cancel(); <-done }() // before tr.Close
		}
	}
	if tr.DNSError != nil && !opts.NoNames {
		fmt.Fprintf(stderr, "tuxscope: no DNS names: %v\n", tr.DNSError)
	} else if tr.DNSUnscoped != nil && !opts.NoNames {
		fmt.Fprintf(stderr, "tuxscope: DNS names are not kept per network namespace: %v\n", tr.DNSUnscoped)
	}
	if tr.UDPError != nil {
		fmt.Fprintf(stderr, "tuxscope: no UDP flows: %v\n", tr.UDPError)
	} else if tr.UDPNoRelease != nil {
		fmt.Fprintf(stderr, "tuxscope: UDP flows end only when idle (--udp-idle): %v\n", tr.UDPNoRelease)
	}
	for _, p := range []tracer.HookPoint{tracer.PointRetransmit, tracer.PointReset} {
		if err := tr.HealthErrors[p]; err != nil {
			fmt.Fprintf(stderr, "tuxscope: no %s events: %v\n", p, err)
		}
	}
	// Scripts and tests wait for this line: events from here on are seen.
	if view != nil && view.attached != nil {
		view.attached(tr.Choices())
	}
	fmt.Fprintf(stderr, "tuxscope: attached %s; Ctrl-C to stop\n", describeChoices(tr.Choices()))

	names := dns.NewTracker()
	names.Scoped = tr.DNSUnscoped == nil
	var hostsFiles *hosts.View
	if !opts.NoNames {
		// Names from the hosts file each process sees, also when the
		// DNS hooks could not load.
		hostsFiles = hosts.New()
		names.Hosts = hostsFiles
	}
	cfg := pipeline.Config{
		Filter:  &opts.Filter,
		Names:   names,
		Servers: sni.NewTracker(sni.DefaultCapacity),
		Zones:   zone.New(),
		ShowDNS: opts.ShowDNS,
		Clock:   event.NewClock(),
		Diag:    stderr,
		// Read once the hooks are detached and the ring buffer drained.
		OpenAtExit: tr.OpenConnections,
	}
	// Names the other end of a connection whose both ends are here.
	links := peers.New(snapshot.NetNSCookie())
	var existing []event.Event
	if opts.Existing {
		// After attaching: a connection made meanwhile may show twice,
		// but none is missed.
		var owners snapshot.Owners
		var denied []uint32
		if existing, owners, denied, err = snapshot.Take(); err != nil {
			fmt.Fprintf(stderr, "tuxscope: --existing: %v\n", err)
		}
		if len(denied) > 0 {
			fmt.Fprintf(stderr, "tuxscope: --existing: %s\n", ownersDenied(denied, effectiveCaps()))
		}
		mono := monotonicNow() // the pipeline times them like any event
		for i := range existing {
			existing[i].TimestampNs = mono
		}
		cfg.Enrichers = append(cfg.Enrichers, owners)
		links.Preload(existing)
	}
	// After the owners: an existing connection's pid comes from them.
	cfg.Enrichers = append(cfg.Enrichers, links, res)
	p := pipeline.New(cfg, withOutput(newSink(opts, stdout, stderr, view), file, opts.Quiet))
	if view == nil {
		err = p.Run(ctx, tr, existing)
	} else {
		ctx, stop := context.WithCancel(ctx)
		ran := make(chan error, 1)
		// A pipeline that ends (an error) ends the view too.
		go func() { ran <- p.Run(ctx, tr, existing); stop() }()
		viewErr := view.run(ctx)
		stop()
		if err = <-ran; err == nil {
			err = viewErr
		}
	}
	if criClient != nil {
		reportCRI(criClient, stderr)
	}
	if links.Full > 0 {
		fmt.Fprintf(stderr, "tuxscope: %d connection ends or listeners not kept to name peers (tables full: %d ends, %d listeners); their peers were not named\n",
			links.Full, links.MaxEnds, links.MaxListeners)
	}
	if n := tr.Malformed(); n > 0 {
		fmt.Fprintf(stderr, "tuxscope: skipped %d malformed records\n", n)
	}
	if hostsFiles != nil && hostsFiles.Unreadable > 0 {
		hint := ""
		if errors.Is(hostsFiles.Err, os.ErrPermission) {
			hint = "; another user's process's needs CAP_SYS_PTRACE"
		}
		times := "once"
		if hostsFiles.Unreadable > 1 {
			times = strconv.FormatUint(hostsFiles.Unreadable, 10) + " times"
		}
		fmt.Fprintf(stderr, "tuxscope: could not read processes' /etc/hosts %s, their addresses got no names from it (first: %v%s)\n",
			times, hostsFiles.Err, hint)
	}
	fileFailed := false
	if file != nil && err != nil {
		// The pipeline stopped before finishing its sinks (stdout went
		// away): the file still gets what was queued.
		if ferr := file.Finish(); ferr != nil {
			fmt.Fprintf(stderr, "tuxscope: %v\n", ferr)
			fileFailed = true
		}
	}
	code := exitWith(err, stderr)
	if fileFailed {
		code = exitError
	}
	if reportUnreported(tr, stderr) && code == exitOK {
		code = exitError
	}
	return code
}

// ownersDenied says that /proc would not show the open files of the
// processes denied, and which of the capabilities that would fix it this
// process lacks.
func ownersDenied(denied []uint32, have tracer.Caps) string {
	procs := "processes"
	if len(denied) == 1 {
		procs = "process"
	}
	list := make([]string, 0, 5)
	for i, pid := range denied {
		if i == cap(list) {
			list = append(list[:len(list)-1], "...")
			break
		}
		list = append(list, strconv.FormatUint(uint64(pid), 10))
	}
	msg := fmt.Sprintf("not allowed to read the open files of %d %s (pid %s): their connections show PID -", len(denied), procs, strings.Join(list, ", "))
	for _, r := range tracer.Requirements(have, tracer.Host{}) {
		if r.Feature == tracer.FeatureExisting && len(r.Missing) > 0 {
			msg += fmt.Sprintf("; naming them needs %s (missing)", strings.Join(r.Missing, " and "))
		}
	}
	return msg
}

// effectiveCaps is this process's effective capabilities, or all of them
// if it cannot tell (then no message blames a missing one).
func effectiveCaps() tracer.Caps {
	have, err := tracer.EffectiveCaps()
	if err != nil {
		return tracer.AllCaps
	}
	return have
}

// reportUnreported says on stderr what the kernel lost or skipped that the
// output never reported (it stopped first, e.g. a stalled reader that then
// went away), and whether there was any: nothing is lost silently, and
// such a run does not exit 0.
func reportUnreported(tr *tracer.Tracer, stderr io.Writer) bool {
	counts, err := tr.Unreported()
	if err != nil {
		fmt.Fprintf(stderr, "tuxscope: cannot tell whether events were lost at the end: %v\n", err)
		return true
	}
	for why, n := range counts {
		if n > 0 {
			fmt.Fprintf(stderr, "tuxscope: %s; the output stopped before reporting it\n", event.LossReason(why).Describe(n))
		}
	}
	return counts.Any()
}

// newSink is where a run's events go: the live view's feed, a summary,
// or the table or JSON stream.
func newSink(opts *netOptions, stdout, stderr io.Writer, view *liveView) pipeline.Sink {
	switch {
	case view != nil:
		return view.sink
	case opts.Summary:
		return summary.NewSink(stdout, opts.Format, opts.Interval, opts.Sort, opts.By, opts.Top)
	}
	s := output.New(opts.Format, stdout, stderr)
	if t, ok := s.(*output.Table); ok {
		t.Containers = opts.Containers
	}
	return s
}

// describeChoices is, e.g., "5 hooks (connect: tracepoint, accept: tracepoint)".
func describeChoices(choices []tracer.Choice) string {
	n := 0
	parts := make([]string, len(choices))
	for i, c := range choices {
		n += len(c.Hooks)
		parts[i] = fmt.Sprintf("%s: %s", c.Point, c.Backend)
	}
	return fmt.Sprintf("%d hooks (%s)", n, strings.Join(parts, ", "))
}

// exitWith ends the run on err: quietly when stdout's reader went away
// (tuxscope net | head), with a one-line message otherwise.
func exitWith(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, syscall.EPIPE) {
		return exitOK
	}
	fmt.Fprintf(stderr, "tuxscope: %v\n", err)
	return exitError
}

// monotonicNow is CLOCK_MONOTONIC in ns, the kernel side's timestamp clock.
func monotonicNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"

	"github.com/tuxscope/tuxscope/internal/dns"
	"github.com/tuxscope/tuxscope/internal/event"
	"github.com/tuxscope/tuxscope/internal/output"
	"github.com/tuxscope/tuxscope/internal/snapshot"
	"github.com/tuxscope/tuxscope/internal/summary"
	"github.com/tuxscope/tuxscope/internal/tracer"
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
	case "version", "--version":
		fmt.Fprintf(stdout, "tuxscope %s\n", Version)
		return exitOK
	case "help", "-h", "--help", "-help":
		io.WriteString(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "tuxscope: unknown command %q\nRun 'tuxscope --help' for usage.\n", args[0])
	return exitUsage
}

func runNet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts, err := parseNetOptions(args, stdout)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "tuxscope net: %v\nRun 'tuxscope net --help' for usage.\n", err)
		return exitUsage
	}
	return trace(ctx, &opts, stdout, stderr, nil)
}

// trace attaches, then feeds events to a sink until ctx ends: the sink
// opts ask for, or, with view, a sink that view displays while the events
// flow (tuxscope top); view's return ends the run.
func trace(ctx context.Context, opts *netOptions, stdout, stderr io.Writer, view *liveView) int {
	if opts.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Duration)
		defer cancel()
	}
	tr, err := tracer.Open(opts.tracerConfig())
	if err != nil {
		fmt.Fprintf(stderr, "tuxscope: %v\n", err)
		return exitError
	}
	defer tr.Close()

	// Output is buffered and flushed whenever the ring buffer is drained:
	// a line per event when events are sparse, big writes under load.
	out := bufio.NewWriterSize(stdout, 64<<10)
	var sink output.Sink = output.New(opts.Format, out, stderr)
	var summarySink *summary.Sink
	switch {
	case view != nil:
		sink = view.sink
	case opts.Summary:
		summarySink = summary.NewSink(out, opts.Format, opts.Interval, opts.Sort, opts.Top)
		sink = summarySink
	}
	if tr.DNSError != nil {
		fmt.Fprintf(stderr, "tuxscope: no DNS names: %v\n", tr.DNSError)
	}
	// Scripts and tests wait for this line: events from here on are seen.
	fmt.Fprintf(stderr, "tuxscope: attached %s; Ctrl-C to stop\n", describeChoices(tr.Choices()))
	if err := sink.Start(); err != nil {
		return exitWith(err, stderr)
	}
	if err := out.Flush(); err != nil {
		return exitWith(err, stderr)
	}
	var owners snapshot.Owners
	if opts.Existing {
		// After attaching: a connection made meanwhile may show twice,
		// but none is missed.
		var existing []event.Event
		if existing, owners, err = snapshot.Take(); err != nil {
			fmt.Fprintf(stderr, "tuxscope: --existing: %v\n", err)
		}
		now, mono := time.Now(), monotonicNow()
		for i := range existing {
			e := &existing[i]
			if !opts.Filter.Match(e) {
				continue
			}
			e.Time, e.TimestampNs = now, mono
			if err := sink.Event(e); err != nil {
				return exitWith(err, stderr)
			}
		}
		if err := out.Flush(); err != nil {
			return exitWith(err, stderr)
		}
	}

	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			tr.Stop()
		case <-stopped:
		}
	}()

	if view != nil {
		pumped := make(chan error, 1)
		go func() { pumped <- pump(tr, opts, owners, sink, out.Flush, stderr) }()
		viewErr := view.run(ctx)
		tr.Stop()
		if err := <-pumped; err != nil {
			return exitWith(err, stderr)
		}
		return exitWith(viewErr, stderr)
	}
	err = pump(tr, opts, owners, sink, out.Flush, stderr)
	if err == nil && summarySink != nil {
		err = summarySink.Finish()
	}
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	return exitWith(err, stderr)
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

// ticker is a sink that does something every Interval (summaries).
type ticker interface {
	Tick(now time.Time) error
	Interval() time.Duration
}

// lostCheckInterval is how often the kernel's lost-event counter is read.
const lostCheckInterval = time.Second

// pump moves events from the ring buffer through decode and filter to the
// sink until the tracer is stopped and drained.
// flush is called whenever the ring buffer has been drained.
func pump(tr *tracer.Tracer, opts *netOptions, owners snapshot.Owners, sink output.Sink, flush func() error, stderr io.Writer) error {
	var (
		rec         ringbuf.Record
		ev          event.Event
		pkt         event.DNSPacket
		clock       = event.NewClock()
		names       = dns.NewTracker()
		lostSeen    uint64
		skippedSeen uint64
		malformed   uint64
	)
	// report passes on what a cumulative kernel counter gained since seen.
	report := func(n uint64, seen *uint64, why output.Loss) error {
		if n <= *seen {
			return nil
		}
		delta := n - *seen
		*seen = n
		return sink.Lost(delta, why, time.Now())
	}
	reportLost := func() error {
		n, err := tr.Lost()
		if err != nil {
			return err
		}
		if err := report(n, &lostSeen, output.RingBufferFull); err != nil {
			return err
		}
		if n, err = tr.Skipped(); err != nil {
			return err
		}
		return report(n, &skippedSeen, output.HookSkipped)
	}
	// The lost counter is read when the ring buffer stays empty until the
	// deadline, and checked every 256 events under sustained load, so drops
	// are reported within about a second either way. With --max-delay the
	// kernel does not wake us for each event: the read deadline is also
	// our timer for collecting what it queued.
	every := lostCheckInterval
	if tk, ok := sink.(ticker); ok && tk.Interval() > 0 {
		every = min(every, tk.Interval())
	}
	next := time.Now().Add(every)
	deadline := func(now time.Time) time.Time {
		if opts.MaxDelay > 0 {
			return minTime(next, now.Add(opts.MaxDelay))
		}
		return next
	}
	// got: records were read since the last deadline. armed: nothing came
	// for a whole --max-delay, so the kernel was asked to wake us for the
	// next event and we sleep until then (or the next tick) instead of
	// polling an idle ring buffer.
	var got, armed bool
	tr.SetDeadline(deadline(time.Now()))
	for n := uint(1); ; n++ {
		if tr.Pending() == 0 { // caught up: show what we have before waiting
			if err := flush(); err != nil {
				return err
			}
		}
		err := tr.ReadInto(&rec)
		idle := errors.Is(err, os.ErrDeadlineExceeded)
		switch {
		case err == nil, idle:
		case errors.Is(err, ringbuf.ErrFlushed), errors.Is(err, ringbuf.ErrClosed):
			if malformed > 0 {
				fmt.Fprintf(stderr, "tuxscope: skipped %d malformed records\n", malformed)
			}
			if names.Malformed > 0 {
				fmt.Fprintf(stderr, "tuxscope: skipped %d malformed or truncated DNS messages\n", names.Malformed)
			}
			if err := reportLost(); err != nil {
				return err
			}
			return flush()
		default:
			return fmt.Errorf("reading the ring buffer: %w", err)
		}
		if !idle {
			got = true
			if armed {
				armed = false
				tr.SetDeadline(deadline(time.Now()))
			}
		}
		if idle || n%256 == 0 {
			now := time.Now()
			if !now.Before(next) {
				if err := reportLost(); err != nil {
					return err
				}
				if tk, ok := sink.(ticker); ok {
					if err := tk.Tick(now); err != nil {
						return err
					}
				}
				next = now.Add(every) // the deadline follows when we are next idle
			}
			if idle {
				wait := deadline(now)
				if opts.MaxDelay > 0 && !got && !armed {
					if err := tr.WakeOnNextEvent(); err != nil {
						return err
					}
					armed = true
				}
				if armed {
					wait = next
					if tr.Pending() > 0 { // queued before the kernel knew
						wait = now
					}
				}
				got = false
				tr.SetDeadline(wait)
				continue
			}
		}
		isDNS, err := tracer.DecodeRecord(rec.RawSample, &ev, &pkt)
		if err != nil {
			malformed++
			continue
		}
		if isDNS {
			responses, latencies := names.Observe(&pkt)
			if !opts.ShowDNS || !pkt.Response {
				continue
			}
			ev = event.Event{Type: event.DNS, TimestampNs: pkt.TimestampNs, PID: pkt.PID, TID: pkt.TID, UID: pkt.UID,
				Family: pkt.Family, Local: pkt.Local, Remote: pkt.Remote, Cookie: pkt.Cookie, CgroupID: pkt.CgroupID}
			ev.SetCommBytes(pkt.Comm.Bytes())
			if !opts.Filter.Match(&ev) {
				continue
			}
			ev.Time = clock.Wall(ev.TimestampNs)
			for i := range responses {
				ev.DNSInfo, ev.LatencyNs = dnsInfo(&responses[i]), latencies[i]
				if err := sink.Event(&ev); err != nil {
					return err
				}
			}
			continue
		}
		owners.Enrich(&ev)
		names.Name(&ev)
		if !opts.Filter.Match(&ev) {
			continue
		}
		ev.Time = clock.Wall(ev.TimestampNs)
		if err := sink.Event(&ev); err != nil {
			return err
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
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

// dnsInfo is the --dns view of a response.
func dnsInfo(m *dns.Message) *event.DNSInfo {
	info := &event.DNSInfo{Name: m.Name, QType: m.Type.String(), RCode: m.RCode.String(), CNAMEs: m.CNAMEs}
	info.QType = strings.TrimPrefix(info.QType, "Type")
	info.RCode = rcodeNames[m.RCode]
	if info.RCode == "" {
		info.RCode = fmt.Sprintf("RCODE%d", m.RCode)
	}
	for i, a := range m.Addrs {
		info.Answers = append(info.Answers, a.IP.String())
		if i == 0 || a.TTL < info.TTL {
			info.TTL = a.TTL
		}
	}
	return info
}

var rcodeNames = map[dnsmessage.RCode]string{
	dnsmessage.RCodeSuccess: "NOERROR", dnsmessage.RCodeFormatError: "FORMERR", dnsmessage.RCodeServerFailure: "SERVFAIL",
	dnsmessage.RCodeNameError: "NXDOMAIN", dnsmessage.RCodeNotImplemented: "NOTIMP", dnsmessage.RCodeRefused: "REFUSED",
}

// Package pipeline carries what a source (the tracer) observes to a sink:
//
//	source ─▶ enrich (owners of existing connections, hostnames) ─▶ filter ─▶ wall-clock time ─▶ sink
//
// DNS packets feed the hostname tracker on the way and, with --dns, become
// events of their own. Everything here is plain Go: it is tested from a
// fake source, without root.
package pipeline

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tuxscope/tuxscope/internal/dns"
	"github.com/tuxscope/tuxscope/internal/event"
	"github.com/tuxscope/tuxscope/internal/filter"
	"github.com/tuxscope/tuxscope/internal/sni"
)

// Sink receives events in order, from one goroutine, through its whole
// lifecycle: Start once, then events, losses and ticks in any mix, Flush
// whenever the pipeline has caught up with the kernel, Finish once at the
// end of a run that was not ended by an error.
type Sink interface {
	// Start is called once the source is attached, before any event.
	Start() error
	// Event is one event; e is valid only during the call.
	Event(e *event.Event) error
	// Lost reports n events lost since the last report, and why; with a
	// DNS reason, n DNS messages or entries dropped (why.DNS()).
	Lost(n uint64, why event.LossReason, at time.Time) error
	// Tick is called at least every Config.Tick (summaries are due).
	Tick(now time.Time) error
	// Flush writes out what is buffered.
	Flush() error
	// StillOpen reports, once, after the source has drained and before
	// Finish, how many of the connections tuxscope tracked (and the
	// filters select) were still open when it stopped.
	StillOpen(n event.OpenCount, at time.Time) error
	// Finish writes what is due at the end (the last summary) and flushes.
	Finish() error
}

// Source hands what it observes to a handler until ctx ends, then drains
// what it still holds and returns (the tracer's Run).
type Source interface {
	Run(ctx context.Context, h event.Handler) error
}

// Enricher adds to an event what the kernel side could not know, before
// it is filtered (e.g. the owner of a connection older than tuxscope).
type Enricher interface {
	Enrich(e *event.Event)
}

// Config says what the pipeline does between source and sink.
type Config struct {
	Filter    *filter.Spec // nil: every event
	Enrichers []Enricher   // in order, before hostnames are added
	// Names learns hostnames from DNS packets and names events' remote
	// addresses, also from hosts files when its Hosts is set (what those
	// skip and evict is reported as losses with the hosts reasons); nil:
	// none.
	Names *dns.Tracker
	// Servers learns TLS server names and ALPN from outbound
	// connections' ClientHellos and names their later events; nil: none.
	Servers *sni.Tracker
	// Zones gives link-local IPv6 addresses their zone (fe80::1%eth0),
	// after hostnames are added; nil: none.
	Zones Enricher
	// ShowDNS turns each DNS response into an event of type dns (--dns).
	ShowDNS bool
	// Clock turns kernel timestamps into wall-clock times.
	Clock event.Clock
	// OpenAtExit lists the connections the source still tracks as open,
	// once it has drained; nil: not reported.
	OpenAtExit func() ([]event.OpenConn, error)
	// Diag gets one-line notes at the end of a run (e.g. that the open
	// connections could not be counted); nil: none.
	Diag io.Writer
	// ProcessName names a process by pid, for DNS rows whose kernel side
	// could only give a thread's name; nil: ProcName.
	ProcessName func(pid uint32) (string, bool)
}

// ProcName reads a process's name from /proc (at most the kernel's 15
// bytes and a newline).
func ProcName(pid uint32) (string, bool) {
	f, err := os.Open("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/comm")
	if err != nil {
		return "", false
	}
	defer f.Close()
	var b [17]byte
	n, _ := io.ReadFull(f, b[:])
	if n == 0 {
		return "", false
	}
	return strings.TrimSuffix(string(b[:n]), "\n"), true
}

// Pipeline is the event.Handler between a source and a sink.
type Pipeline struct {
	cfg  Config
	sink Sink
	dns  event.Event // the --dns event being built, reused
	// DNS messages the tracker skipped or dropped, and entries it
	// evicted, and connections without a TLS server name (split,
	// oversized, malformed or forgotten ClientHellos), not yet reported,
	// by reason (the DNS and TLS ones).
	dnsDrops event.LossCounts
	// The hosts-file view's counts already added to dnsDrops.
	hostsSkipped, hostsEvicted uint64
}

// New returns a pipeline feeding sink.
func New(cfg Config, sink Sink) *Pipeline {
	if cfg.ProcessName == nil {
		cfg.ProcessName = ProcName
	}
	return &Pipeline{cfg: cfg, sink: sink}
}

// Run starts the sink, passes it the existing connections (their
// TimestampNs the kernel's clock when they were listed) that the filter
// selects, then everything src observes until ctx ends
// and src has drained, and finishes the sink.
func (p *Pipeline) Run(ctx context.Context, src Source, existing []event.Event) error {
	if err := p.sink.Start(); err != nil {
		return err
	}
	for i := range existing {
		// Their owners' cgroups, for the workload filters (the owners
		// enricher names only closes).
		p.enrich(&existing[i])
		p.zone(&existing[i])
		if err := p.emit(&existing[i]); err != nil {
			return err
		}
	}
	if err := p.sink.Flush(); err != nil {
		return err
	}
	if err := src.Run(ctx, p); err != nil {
		p.sink.Flush() // what was written before the error still shows
		return err
	}
	if err := p.reportDNSDrops(time.Now()); err != nil {
		return err
	}
	if err := p.stillOpen(); err != nil {
		return err
	}
	return p.sink.Finish()
}

// stillOpen tells the sink how many tracked connections the filters
// select were still open at the end. The kernel side applies the pid,
// port and family filters (and the cgroup filter, when on) to what it
// tracks; --comm, --pid and the workload filters are applied here, to
// each connection's owner.
func (p *Pipeline) stillOpen() error {
	if p.cfg.OpenAtExit == nil {
		return nil
	}
	conns, err := p.cfg.OpenAtExit()
	if err != nil {
		if p.cfg.Diag != nil {
			fmt.Fprintf(p.cfg.Diag, "tuxscope: cannot tell how many connections were still open at exit: %v\n", err)
		}
		return nil
	}
	var n event.OpenCount
	for i := range conns {
		c := &conns[i]
		if p.cfg.Filter != nil && !p.cfg.Filter.MatchOwner(c.PID, c.Comm.Bytes()) {
			continue
		}
		if f := p.cfg.Filter; f != nil && f.HasWorkload() {
			// Its owner's workload, as an event of it would have.
			e := event.Event{PID: c.PID, CgroupID: c.CgroupID}
			p.enrich(&e)
			if !f.MatchWorkload(&e) {
				continue
			}
		}
		if c.Inbound {
			n.Inbound++
		} else {
			n.Outbound++
		}
	}
	return p.sink.StillOpen(n, time.Now())
}

// reportDNSDrops passes on, as losses with DNS reasons, what the tracker
// dropped since the last report.
func (p *Pipeline) reportDNSDrops(now time.Time) error {
	for i, n := range p.dnsDrops {
		if n == 0 {
			continue
		}
		p.dnsDrops[i] = 0
		if err := p.sink.Lost(n, event.LossReason(i), now); err != nil {
			return err
		}
	}
	return nil
}

// selects filters e and, when it passes, gives it its wall-clock time.
func (p *Pipeline) selects(e *event.Event) bool {
	if p.cfg.Filter != nil && !p.cfg.Filter.Match(e) {
		return false
	}
	e.Time = p.cfg.Clock.Wall(e.TimestampNs)
	return true
}

// emit hands e to the sink if the filter selects it.
func (p *Pipeline) emit(e *event.Event) error {
	if !p.selects(e) {
		return nil
	}
	return p.sink.Event(e)
}

// enrich runs the enrichers on e, in order.
func (p *Pipeline) enrich(e *event.Event) {
	for _, en := range p.cfg.Enrichers {
		en.Enrich(e)
	}
}

// Event enriches, names, filters and times a kernel event. A close
// frees what the hostname and server-name trackers kept for the socket.
// A selected event of a connection whose server name is missing (its
// ClientHello split, oversized, malformed or forgotten) counts that,
// once per connection.
func (p *Pipeline) Event(e *event.Event) error {
	p.enrich(e)
	if p.cfg.Names != nil {
		if e.Type == event.Close && e.Cookie != 0 {
			p.cfg.Names.Forget(e.Cookie)
		}
		p.cfg.Names.Name(e)
		if h := p.cfg.Names.Hosts; h != nil {
			skipped, evicted := h.Drops()
			p.dnsDrops[event.HostsSkipped] += skipped - p.hostsSkipped
			p.dnsDrops[event.HostsEvicted] += evicted - p.hostsEvicted
			p.hostsSkipped, p.hostsEvicted = skipped, evicted
		}
	}
	var (
		why     event.LossReason
		missing bool
	)
	if p.cfg.Servers != nil {
		why, missing = p.cfg.Servers.Name(e)
	}
	p.zone(e)
	if !p.selects(e) {
		return nil
	}
	if missing {
		p.dnsDrops[why]++
		p.cfg.Servers.Counted(e.Cookie)
	}
	return p.sink.Event(e)
}

// TLS teaches the server-name tracker an outbound connection's
// ClientHello.
func (p *Pipeline) TLS(h *event.TLSHello) error {
	if s := p.cfg.Servers; s != nil {
		evicted := s.QUICEvicted()
		s.Observe(h)
		p.dnsDrops[event.TLSEvicted] += s.QUICEvicted() - evicted
	}
	return nil
}

// zone gives e's link-local addresses their zone.
func (p *Pipeline) zone(e *event.Event) {
	if p.cfg.Zones != nil && e.IfIndex != 0 {
		p.cfg.Zones.Enrich(e)
	}
}

// DNS teaches the hostname tracker and, with ShowDNS, emits each response
// the packet completed as an event of type dns, owned by the process that
// asked. What the tracker skips or drops of a packet is reported when the
// filters select the packet (a DNS event it would make): --port 443 says
// nothing about port 53's messages. What it evicts is always reported:
// any event's hostname may have been among it.
func (p *Pipeline) DNS(pkt *event.DNSPacket) error {
	tr := p.cfg.Names
	if tr == nil {
		return nil
	}
	malformed, unsolicited, evicted := tr.Malformed, tr.Unsolicited, tr.Evicted
	responses, latencies := tr.Observe(pkt)
	p.dnsDrops[event.DNSEvicted] += tr.Evicted - evicted
	dropped := tr.Malformed != malformed || tr.Unsolicited != unsolicited
	if !dropped && (!p.cfg.ShowDNS || !pkt.Response || len(responses) == 0) {
		return nil
	}
	e := &p.dns
	*e = event.Event{
		Type: event.DNS, TimestampNs: pkt.TimestampNs, PID: pkt.PID, TID: pkt.TID, UID: pkt.UID,
		Family: pkt.Family, Local: pkt.Local, Remote: pkt.Remote, Cookie: pkt.Cookie, CgroupID: pkt.CgroupID,
		NetNS: pkt.NetNS,
	}
	e.SetCommBytes(pkt.Comm.Bytes())
	if pkt.PID != pkt.TID && pkt.PID != 0 {
		// The DNS hooks may not read the task: their name is the thread's.
		e.SetThreadBytes(pkt.Thread.Bytes())
		if name, ok := p.cfg.ProcessName(pkt.PID); ok {
			e.SetComm(name)
		}
	}
	// Its container and pod, as any event's: filters and sinks use them.
	p.enrich(e)
	if !p.selects(e) {
		return nil
	}
	p.dnsDrops[event.DNSMalformed] += tr.Malformed - malformed
	p.dnsDrops[event.DNSUnsolicited] += tr.Unsolicited - unsolicited
	if !p.cfg.ShowDNS || !pkt.Response {
		return nil
	}
	for i := range responses {
		e.DNSInfo, e.LatencyNs = dns.Info(&responses[i]), latencies[i]
		if err := p.sink.Event(e); err != nil {
			return err
		}
	}
	return nil
}

// Lost passes a loss notice on.
func (p *Pipeline) Lost(n uint64, why event.LossReason, at time.Time) error {
	return p.sink.Lost(n, why, at)
}

// Tick reports what the DNS tracker dropped since the last tick, and
// passes the tick on.
func (p *Pipeline) Tick(now time.Time) error {
	if err := p.reportDNSDrops(now); err != nil {
		return err
	}
	return p.sink.Tick(now)
}

// CaughtUp flushes the sink: what the kernel had queued is now visible.
func (p *Pipeline) CaughtUp() error { return p.sink.Flush() }

package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tuxscope/tuxscope/internal/event"
)

// BuildInfo is tuxscope_build_info's labels.
type BuildInfo struct {
	Version string
	Kernel  string // uname -r
	Backend string // per hook point, e.g. "connect:tracepoint,accept:tracepoint,state:raw_tracepoint,dns:cgroup"
}

// Collector is the prometheus.Collector of an Aggregator: at each scrape
// it copies the counts under the lock and makes const metrics from the
// copy, so the pipeline waits only for the copy.
type Collector struct {
	agg *Aggregator

	conns, failures, sent, received, latency, duration *prometheus.Desc
	retransmits, resets                                *prometheus.Desc
	dns, lost, buildInfo, folded, series               *prometheus.Desc
	udpFlows, udpPktsSent, udpPktsReceived             *prometheus.Desc
	udpSent, udpReceived                               *prometheus.Desc

	mu   sync.Mutex
	info *BuildInfo // nil until the tracer is attached
}

// NewCollector describes agg's metrics.
func NewCollector(agg *Aggregator) *Collector {
	var owner []string
	for l := Label(0); l < numLabels; l++ {
		if agg.cfg.Labels.Has(l) && l != LabelPeer {
			owner = append(owner, l.String())
		}
	}
	conn := append([]string{"direction"}, owner...)
	if agg.cfg.Labels.Has(LabelPeer) {
		conn = append(conn, "peer")
	}
	withFirst := func(first string, ls []string) []string { return append([]string{first}, ls...) }
	d := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &Collector{
		agg:             agg,
		conns:           d("tuxscope_connections_total", "TCP connections: every connect attempt (failed ones included) and every accept.", conn),
		failures:        d("tuxscope_connection_failures_total", "Outbound connects that failed, by reason (refused, timed_out, unreachable, reset, aborted, other).", withFirst("reason", conn)),
		sent:            d("tuxscope_sent_bytes_total", "Data bytes sent on connections, counted when they close.", conn),
		received:        d("tuxscope_received_bytes_total", "Data bytes received on connections, counted when they close.", conn),
		retransmits:     d("tuxscope_retransmits_total", "TCP segments retransmitted on connections (SYNs and SYN-ACKs included), as retransmit events count them.", conn),
		resets:          d("tuxscope_resets_total", "Resets on connections, by side: local (this end sent it) or remote (the peer did).", withFirst("side", conn)),
		latency:         d("tuxscope_handshake_latency_seconds", "Outbound connects' handshake latency, from the SYN to established.", conn),
		duration:        d("tuxscope_connection_duration_seconds", "Connections' duration from established to close (those established while tuxscope ran).", conn),
		udpFlows:        d("tuxscope_udp_flows_total", "UDP flows (one socket's traffic with one peer) that ended, by the direction of their first packet.", withFirst("direction", owner)),
		udpPktsSent:     d("tuxscope_udp_sent_packets_total", "Datagrams sent on UDP flows, counted when they end.", withFirst("direction", owner)),
		udpPktsReceived: d("tuxscope_udp_received_packets_total", "Datagrams received on UDP flows, counted when they end.", withFirst("direction", owner)),
		udpSent:         d("tuxscope_udp_sent_bytes_total", "Payload bytes sent on UDP flows, counted when they end.", withFirst("direction", owner)),
		udpReceived:     d("tuxscope_udp_received_bytes_total", "Payload bytes received on UDP flows, counted when they end.", withFirst("direction", owner)),
		dns:             d("tuxscope_dns_responses_total", "DNS responses that reached a process, by rcode.", withFirst("rcode", owner)),
		lost:            d("tuxscope_events_lost_total", "Events lost (ring_buffer_full, hook_skipped, conn_table_full, listener_table_full; UDP flows not tracked: udp_table_full), update events skipped (update_limit), events --output could not write (output_full, output_error), DNS messages or names dropped (malformed, unsolicited, evicted), hosts-file lines or namespaces not kept (hosts_skipped, hosts_evicted), and TLS server names missing (split, oversized, not_client_hello, sni_evicted; QUIC flows unread: quic_not_quic, quic_not_initial, quic_version, quic_malformed, quic_decrypt, quic_incomplete, quic_too_large).", []string{"reason"}),
		buildInfo:       d("tuxscope_build_info", "tuxscope's version, the kernel's release and the backend of each hook point; always 1.", []string{"version", "kernel", "backend"}),
		folded:          d("tuxscope_series_folded_total", "Events counted in the all-\"other\" label set because a new label set would have exceeded --max-series.", nil),
		series:          d("tuxscope_series", "Series the connection and DNS metrics expose now (what --max-series bounds; the all-\"other\" sets not counted).", nil),
	}
}

// SetBuildInfo makes tuxscope_build_info appear (once the tracer is
// attached and its backends known).
func (c *Collector) SetBuildInfo(info BuildInfo) {
	c.mu.Lock()
	c.info = &info
	c.mu.Unlock()
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.conns, c.failures, c.sent, c.received, c.retransmits, c.resets, c.latency, c.duration, c.dns,
		c.udpFlows, c.udpPktsSent, c.udpPktsReceived, c.udpSent, c.udpReceived, c.lost, c.buildInfo, c.folded, c.series} {
		ch <- d
	}
}

// snapshot is a copy of what a scrape exposes.
type snapshot struct {
	rows   []row
	dns    []dnsRow
	udp    []udpRow
	lost   event.LossCounts
	folded uint64
	series int
}

func (a *Aggregator) snapshot() *snapshot {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.maintain(a.cfg.Now())
	s := &snapshot{lost: a.lost, folded: a.folded, series: a.series, rows: make([]row, 0, a.series/inboundSeries+2)}
	for _, o := range a.owners {
		for _, r := range o.rows {
			s.rows = append(s.rows, *r)
		}
		for _, r := range o.dns {
			s.dns = append(s.dns, *r)
		}
		for _, r := range o.udp {
			if r != nil {
				s.udp = append(s.udp, *r)
			}
		}
	}
	for _, r := range a.overflowUDP {
		if r != nil {
			s.udp = append(s.udp, *r)
		}
	}
	for _, r := range a.overflow {
		if r != nil {
			s.rows = append(s.rows, *r)
		}
	}
	for _, r := range a.overflowDNS {
		s.dns = append(s.dns, *r)
	}
	return s
}

// Collect makes the metrics from a snapshot of the counts.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.agg.snapshot()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	histogram := func(d *prometheus.Desc, h *hist, bounds []float64, labels []string) {
		buckets := make(map[float64]uint64, len(bounds))
		var cum uint64
		for i, b := range bounds {
			cum += h.counts[i]
			buckets[b] = cum
		}
		ch <- prometheus.MustNewConstHistogram(d, h.n, h.sum, buckets, labels...)
	}
	for i := range s.rows {
		r := &s.rows[i]
		counter(c.conns, r.connections, r.labels...)
		counter(c.sent, r.sent, r.labels...)
		counter(c.received, r.recvd, r.labels...)
		counter(c.retransmits, r.retransmits, r.labels...)
		for side, n := range r.resets {
			if n > 0 {
				counter(c.resets, n, append([]string{Side(side).String()}, r.labels...)...)
			}
		}
		for reason, n := range r.failures {
			if n > 0 {
				counter(c.failures, n, append([]string{Reason(reason).String()}, r.labels...)...)
			}
		}
		if !r.inbound {
			histogram(c.latency, &r.latency, LatencyBuckets[:], r.labels)
		}
		histogram(c.duration, &r.duration, DurationBuckets[:], r.labels)
	}
	for i := range s.dns {
		counter(c.dns, s.dns[i].n, s.dns[i].labels...)
	}
	for i := range s.udp {
		r := &s.udp[i]
		counter(c.udpFlows, r.flows, r.labels...)
		counter(c.udpPktsSent, r.pktsSent, r.labels...)
		counter(c.udpPktsReceived, r.pktsReceived, r.labels...)
		counter(c.udpSent, r.sent, r.labels...)
		counter(c.udpReceived, r.received, r.labels...)
	}
	for why, n := range s.lost {
		counter(c.lost, n, event.LossReason(why).Key())
	}
	counter(c.folded, s.folded)
	ch <- prometheus.MustNewConstMetric(c.series, prometheus.GaugeValue, float64(s.series))
	c.mu.Lock()
	info := c.info
	c.mu.Unlock()
	if info != nil {
		ch <- prometheus.MustNewConstMetric(c.buildInfo, prometheus.GaugeValue, 1, info.Version, info.Kernel, info.Backend)
	}
}

// Sink is the pipeline sink of `tuxscope serve`: it feeds an Aggregator
// and tells whether the pipeline is alive (Health).
type Sink struct {
	agg      *Aggregator
	now      func() time.Time
	started  atomic.Bool
	finished atomic.Bool
	progress atomic.Int64 // unix ns of the pipeline's last tick or catch-up
	events   atomic.Uint64
}

// NewSink feeds agg.
func NewSink(agg *Aggregator) *Sink { return &Sink{agg: agg, now: agg.cfg.Now} }

func (s *Sink) alive() { s.progress.Store(s.now().UnixNano()) }

// Start marks the tracer attached.
func (s *Sink) Start() error {
	s.alive()
	s.started.Store(true)
	return nil
}

// Event counts e.
func (s *Sink) Event(e *event.Event) error {
	s.agg.Add(e)
	s.events.Add(1)
	return nil
}

// Lost counts lost events and dropped DNS messages.
func (s *Sink) Lost(n uint64, why event.LossReason, _ time.Time) error {
	s.agg.AddLost(n, why)
	return nil
}

// Tick expires and rebalances label sets.
func (s *Sink) Tick(now time.Time) error {
	s.agg.Maintain(now)
	s.alive()
	return nil
}

// Flush is called whenever the pipeline has caught up with the kernel.
func (s *Sink) Flush() error {
	s.alive()
	return nil
}

// StillOpen is not exposed: the counters need no reconciliation at exit.
func (s *Sink) StillOpen(event.OpenCount, time.Time) error { return nil }

// Finish marks the pipeline stopped.
func (s *Sink) Finish() error {
	s.finished.Store(true)
	return nil
}

// HealthWindow is how long the pipeline may go without a tick or a
// catch-up before /healthz fails: the reader ticks at least every second,
// idle or busy.
const HealthWindow = 5 * time.Second

// Health reports whether the tracer is attached and the pipeline reading
// its events: it ticked or caught up with the kernel within HealthWindow.
// The message says why not, or how many events were counted.
func (s *Sink) Health() (bool, string) {
	switch {
	case !s.started.Load():
		return false, "not attached yet"
	case s.finished.Load():
		return false, "stopped"
	}
	since := s.now().Sub(time.Unix(0, s.progress.Load()))
	if since > HealthWindow {
		return false, "the event reader has not run for " + since.Round(time.Millisecond).String()
	}
	return true, "ok: " + strconv.FormatUint(s.events.Load(), 10) + " events counted"
}

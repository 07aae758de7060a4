package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"golang.org/x/sys/unix"

	"github.com/tuxscope/tuxscope/internal/event"
)

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTest(t *testing.T, labels Labels, peers, maxSeries int) (*Aggregator, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	return New(Config{Labels: labels, Peers: peers, MaxSeries: maxSeries, SeriesTTL: 10 * time.Minute, Now: clk.Now}), clk
}

// ev is an event of comm at clk's time, to remote.
func ev(clk *fakeClock, typ event.Type, comm, remote string) *event.Event {
	e := &event.Event{Type: typ, Time: clk.t, Family: 4,
		Local: netip.MustParseAddrPort("127.0.0.1:40000"), Remote: netip.MustParseAddrPort(remote)}
	if typ == event.Accept {
		e.Flags |= event.FlagInbound
	}
	e.SetComm(comm)
	return e
}

func compare(t *testing.T, a *Aggregator, want string, names ...string) {
	t.Helper()
	if err := testutil.CollectAndCompare(NewCollector(a), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

func TestFailureReason(t *testing.T) {
	for errno, want := range map[unix.Errno]Reason{
		0: Aborted, unix.ECONNABORTED: Aborted, unix.EPIPE: Aborted,
		unix.ECONNREFUSED: Refused, unix.ETIMEDOUT: TimedOut,
		unix.EHOSTUNREACH: Unreachable, unix.ENETUNREACH: Unreachable, unix.EACCES: Unreachable,
		unix.ECONNRESET: Reset, unix.EPROTO: Other,
	} {
		if got := FailureReason(uint32(errno)); got != want {
			t.Errorf("FailureReason(%v) = %v, want %v", errno, got, want)
		}
	}
	if got := strings.Join(reasonNames[:], ","); got != "refused,timed_out,unreachable,reset,aborted,other" {
		t.Errorf("reasons %s", got)
	}
}

func TestParseLabels(t *testing.T) {
	for in, want := range map[string]string{
		"comm,container,pod,namespace,peer": "comm,container,pod,namespace,peer",
		"peer, comm":                        "comm,peer",
		"none":                              "",
		"":                                  "",
	} {
		got, err := ParseLabels(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseLabels(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseLabels("comm,pid"); err == nil || !strings.Contains(err.Error(), `unknown label "pid"`) {
		t.Errorf("ParseLabels(comm,pid): %v", err)
	}
}

// TestExposition checks every connection metric's exact output for a
// connect that is established and closed, an accept and its close, a
// refused connect and a DNS response, with every label selected.
func TestExposition(t *testing.T) {
	a, clk := newTest(t, AllLabels, 10, 1000)
	c := ev(clk, event.Connect, "curl", "10.1.2.3:80")
	c.Hostname = "web.test"
	c.ContainerID = strings.Repeat("ab", 32)
	c.Pod, c.Namespace = "web-1", "prod"
	a.Add(c)
	est := *c
	est.Type, est.LatencyNs = event.Established, 300_000 // 300µs
	a.Add(&est)
	cl := *c
	cl.Type, cl.DurationNs, cl.BytesSent, cl.BytesReceived = event.Close, 2_000_000_000, 100, 2000
	a.Add(&cl)
	c.ContainerName = "curler" // the name, when the CRI runtime gave it, wins over the id
	a.Add(c)
	acc := ev(clk, event.Accept, "nginx", "[::ffff:10.9.9.9]:5555")
	a.Add(acc)
	acl := *acc
	acl.Type, acl.DurationNs, acl.BytesSent, acl.BytesReceived = event.Close, 5_000_000, 7, 9
	a.Add(&acl)
	f := ev(clk, event.Failed, "curl", "10.1.2.4:81")
	f.Error = uint32(unix.ECONNREFUSED)
	a.Add(f)
	d := ev(clk, event.DNS, "curl", "10.0.0.53:53")
	d.DNSInfo = &event.DNSInfo{RCode: "NXDOMAIN"}
	a.Add(d)
	rt := *c
	rt.ContainerName = ""
	rt.Type, rt.Retransmits = event.Retransmit, 3
	a.Add(&rt)
	a.Add(&rt)
	rs := *acc
	rs.Type, rs.Flags = event.Reset, event.FlagInbound|event.FlagClosedRemote
	a.Add(&rs)
	a.Add(ev(clk, event.Existing, "sshd", "10.0.0.1:22")) // not counted
	a.AddLost(3, event.RingBufferFull)

	const l1 = `comm="curl",container="abababababab",direction="outbound",namespace="prod",peer="web.test",pod="web-1"`
	const l2 = `comm="curl",container="curler",direction="outbound",namespace="prod",peer="web.test",pod="web-1"`
	const l3 = `comm="nginx",container="",direction="inbound",namespace="",peer="10.9.9.9",pod=""`
	const l4 = `comm="curl",container="",direction="outbound",namespace="",peer="10.1.2.4",pod=""`
	compare(t, a, `
# HELP tuxscope_connections_total TCP connections: every connect attempt (failed ones included) and every accept.
# TYPE tuxscope_connections_total counter
tuxscope_connections_total{`+l1+`} 1
tuxscope_connections_total{`+l2+`} 1
tuxscope_connections_total{`+l3+`} 1
tuxscope_connections_total{`+l4+`} 0
# HELP tuxscope_connection_failures_total Outbound connects that failed, by reason (refused, timed_out, unreachable, reset, aborted, other).
# TYPE tuxscope_connection_failures_total counter
tuxscope_connection_failures_total{`+l4+`,reason="refused"} 1
# HELP tuxscope_sent_bytes_total Data bytes sent on connections, counted when they close.
# TYPE tuxscope_sent_bytes_total counter
tuxscope_sent_bytes_total{`+l1+`} 100
tuxscope_sent_bytes_total{`+l2+`} 0
tuxscope_sent_bytes_total{`+l3+`} 7
tuxscope_sent_bytes_total{`+l4+`} 0
# HELP tuxscope_received_bytes_total Data bytes received on connections, counted when they close.
# TYPE tuxscope_received_bytes_total counter
tuxscope_received_bytes_total{`+l1+`} 2000
tuxscope_received_bytes_total{`+l2+`} 0
tuxscope_received_bytes_total{`+l3+`} 9
tuxscope_received_bytes_total{`+l4+`} 0
# HELP tuxscope_retransmits_total TCP segments retransmitted on connections (SYNs and SYN-ACKs included), as retransmit events count them.
# TYPE tuxscope_retransmits_total counter
tuxscope_retransmits_total{`+l1+`} 6
tuxscope_retransmits_total{`+l2+`} 0
tuxscope_retransmits_total{`+l3+`} 0
tuxscope_retransmits_total{`+l4+`} 0
# HELP tuxscope_resets_total Resets on connections, by side: local (this end sent it) or remote (the peer did).
# TYPE tuxscope_resets_total counter
tuxscope_resets_total{`+l3+`,side="remote"} 1
# HELP tuxscope_dns_responses_total DNS responses that reached a process, by rcode.
# TYPE tuxscope_dns_responses_total counter
tuxscope_dns_responses_total{comm="curl",container="",namespace="",pod="",rcode="NXDOMAIN"} 1
# HELP tuxscope_events_lost_total Events lost (ring_buffer_full, hook_skipped, conn_table_full, listener_table_full; UDP flows not tracked: udp_table_full), update events skipped (update_limit), events --output could not write (output_full, output_error), DNS messages or names dropped (malformed, unsolicited, evicted), hosts-file lines or namespaces not kept (hosts_skipped, hosts_evicted), and TLS server names missing (split, oversized, not_client_hello, sni_evicted; QUIC flows unread: quic_not_quic, quic_not_initial, quic_version, quic_malformed, quic_decrypt, quic_incomplete, quic_too_large).
# TYPE tuxscope_events_lost_total counter
tuxscope_events_lost_total{reason="conn_table_full"} 0
tuxscope_events_lost_total{reason="evicted"} 0
tuxscope_events_lost_total{reason="hook_skipped"} 0
tuxscope_events_lost_total{reason="hosts_evicted"} 0
tuxscope_events_lost_total{reason="hosts_skipped"} 0
tuxscope_events_lost_total{reason="listener_table_full"} 0
tuxscope_events_lost_total{reason="malformed"} 0
tuxscope_events_lost_total{reason="not_client_hello"} 0
tuxscope_events_lost_total{reason="output_error"} 0
tuxscope_events_lost_total{reason="output_full"} 0
tuxscope_events_lost_total{reason="oversized"} 0
tuxscope_events_lost_total{reason="quic_decrypt"} 0
tuxscope_events_lost_total{reason="quic_incomplete"} 0
tuxscope_events_lost_total{reason="quic_malformed"} 0
tuxscope_events_lost_total{reason="quic_not_initial"} 0
tuxscope_events_lost_total{reason="quic_not_quic"} 0
tuxscope_events_lost_total{reason="quic_too_large"} 0
tuxscope_events_lost_total{reason="quic_version"} 0
tuxscope_events_lost_total{reason="ring_buffer_full"} 3
tuxscope_events_lost_total{reason="sni_evicted"} 0
tuxscope_events_lost_total{reason="split"} 0
tuxscope_events_lost_total{reason="unsolicited"} 0
tuxscope_events_lost_total{reason="udp_table_full"} 0
tuxscope_events_lost_total{reason="update_limit"} 0
# HELP tuxscope_series Series the connection and DNS metrics expose now (what --max-series bounds; the all-"other" sets not counted).
# TYPE tuxscope_series gauge
tuxscope_series `+strconv.Itoa(3*outboundSeries+inboundSeries+1+1+1)+`
# HELP tuxscope_series_folded_total Events counted in the all-"other" label set because a new label set would have exceeded --max-series.
# TYPE tuxscope_series_folded_total counter
tuxscope_series_folded_total 0
`, "tuxscope_connections_total", "tuxscope_connection_failures_total", "tuxscope_sent_bytes_total",
		"tuxscope_received_bytes_total", "tuxscope_retransmits_total", "tuxscope_resets_total", "tuxscope_dns_responses_total",
		"tuxscope_events_lost_total", "tuxscope_series", "tuxscope_series_folded_total")

	// The histograms: 300µs in the 0.0005 bucket, 2 s in the 10 s one, 5 ms in 0.01.
	out, err := testutil.CollectAndFormat(NewCollector(a), expfmt.TypeTextPlain, "tuxscope_handshake_latency_seconds", "tuxscope_connection_duration_seconds")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`tuxscope_handshake_latency_seconds_bucket{` + l1 + `,le="0.00025"} 0`,
		`tuxscope_handshake_latency_seconds_bucket{` + l1 + `,le="0.0005"} 1`,
		`tuxscope_handshake_latency_seconds_bucket{` + l1 + `,le="+Inf"} 1`,
		`tuxscope_handshake_latency_seconds_sum{` + l1 + `} 0.0003`,
		`tuxscope_handshake_latency_seconds_count{` + l2 + `} 0`,
		`tuxscope_connection_duration_seconds_bucket{` + l1 + `,le="1"} 0`,
		`tuxscope_connection_duration_seconds_bucket{` + l1 + `,le="10"} 1`,
		`tuxscope_connection_duration_seconds_bucket{` + l3 + `,le="0.001"} 0`,
		`tuxscope_connection_duration_seconds_bucket{` + l3 + `,le="0.01"} 1`,
		`tuxscope_connection_duration_seconds_count{` + l3 + `} 1`,
	} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("no line %s in\n%s", want, out)
		}
	}
	// An inbound set has no handshake latency; the series gauge counted
	// exactly the series exposed.
	if strings.Contains(string(out), `tuxscope_handshake_latency_seconds_count{`+l3) {
		t.Error("an inbound label set has a handshake latency histogram")
	}
	n := testutil.CollectAndCount(NewCollector(a), "tuxscope_connections_total", "tuxscope_connection_failures_total",
		"tuxscope_sent_bytes_total", "tuxscope_received_bytes_total", "tuxscope_retransmits_total", "tuxscope_resets_total",
		"tuxscope_dns_responses_total")
	hist := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !strings.HasPrefix(line, "#") {
			hist++
		}
	}
	if got := n + hist; got != a.series || got != 3*outboundSeries+inboundSeries+1+1+1 {
		t.Errorf("%d series exposed (%d counters, %d histogram lines), the aggregation counted %d", got, n, hist, a.series)
	}
}

// TestLabelSelection: unselected labels are absent, and what differed
// only by them is one label set.
func TestLabelSelection(t *testing.T) {
	labels, _ := ParseLabels("comm")
	a, clk := newTest(t, labels, 10, 1000)
	for i, remote := range []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:443"} {
		e := ev(clk, event.Connect, "curl", remote)
		e.ContainerID = strings.Repeat(string(rune('a'+i)), 64)
		a.Add(e)
	}
	compare(t, a, `
# HELP tuxscope_connections_total TCP connections: every connect attempt (failed ones included) and every accept.
# TYPE tuxscope_connections_total counter
tuxscope_connections_total{comm="curl",direction="outbound"} 3
`, "tuxscope_connections_total")
}

// TestPeerFolding: beyond --peers, a process's peers count as "other";
// another process has slots of its own.
func TestPeerFolding(t *testing.T) {
	labels, _ := ParseLabels("comm,peer")
	a, clk := newTest(t, labels, 2, 1000)
	for _, remote := range []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80", "10.0.0.1:443"} {
		a.Add(ev(clk, event.Connect, "curl", remote))
	}
	a.Add(ev(clk, event.Connect, "wget", "10.0.0.4:80"))
	compare(t, a, `
# HELP tuxscope_connections_total TCP connections: every connect attempt (failed ones included) and every accept.
# TYPE tuxscope_connections_total counter
tuxscope_connections_total{comm="curl",direction="outbound",peer="10.0.0.1"} 2
tuxscope_connections_total{comm="curl",direction="outbound",peer="10.0.0.2"} 1
tuxscope_connections_total{comm="curl",direction="outbound",peer="other"} 2
tuxscope_connections_total{comm="wget",direction="outbound",peer="10.0.0.4"} 1
`, "tuxscope_connections_total")
}

// TestRebalance: a folded peer much busier than a peer with a slot takes
// that slot at the next rebalance; its counts start there, what it had
// before stays in "other".
func TestRebalance(t *testing.T) {
	labels, _ := ParseLabels("comm,peer")
	a, clk := newTest(t, labels, 1, 1000)
	a.Add(ev(clk, event.Connect, "curl", "10.0.0.1:80"))
	for range 3 {
		a.Add(ev(clk, event.Connect, "curl", "10.0.0.2:80"))
	}
	clk.advance(DefaultRebalance)
	a.Maintain(clk.t)
	a.Add(ev(clk, event.Connect, "curl", "10.0.0.2:80"))
	a.Add(ev(clk, event.Connect, "curl", "10.0.0.1:80"))
	compare(t, a, `
# HELP tuxscope_connections_total TCP connections: every connect attempt (failed ones included) and every accept.
# TYPE tuxscope_connections_total counter
tuxscope_connections_total{comm="curl",direction="outbound",peer="10.0.0.2"} 1
tuxscope_connections_total{comm="curl",direction="outbound",peer="other"} 4
`, "tuxscope_connections_total")
	// Only twice as busy (2 to 1 in this period): no swap.
	for range 1 {
		a.Add(ev(clk, event.Connect, "curl", "10.0.0.1:80"))
	}
	clk.advance(DefaultRebalance)
	a.Maintain(clk.t)
	if a.owners[ownerKey{comm: [16]byte{'c', 'u', 'r', 'l'}, commLen: 4}].peers[peerKey{addr: netip.MustParseAddr("10.0.0.2")}] == nil {
		t.Error("10.0.0.2 lost its slot to a peer not more than twice as busy")
	}
}

// TestSeriesCap: a label set that would exceed --max-series is counted in
// the all-"other" set, and tuxscope_series_folded_total counts its events.
func TestSeriesCap(t *testing.T) {
	a, clk := newTest(t, AllLabels, 10, 2*outboundSeries+1)
	a.Add(ev(clk, event.Connect, "a", "10.0.0.1:80"))
	a.Add(ev(clk, event.Connect, "b", "10.0.0.1:80"))
	f := ev(clk, event.Failed, "a", "10.0.0.1:80")
	f.Error = uint32(unix.ETIMEDOUT)
	a.Add(f) // the last series the cap allows
	a.Add(ev(clk, event.Connect, "c", "10.0.0.1:80"))
	a.Add(ev(clk, event.Accept, "d", "10.0.0.1:80"))
	f2 := ev(clk, event.Failed, "b", "10.0.0.1:80")
	f2.Error = uint32(unix.ECONNREFUSED)
	a.Add(f2)                                         // a reason new to b's set: a new series, folded
	a.Add(ev(clk, event.Connect, "a", "10.0.0.1:80")) // an existing set still counts
	const other = `namespace="other",peer="other",pod="other"`
	const base = `namespace="",peer="10.0.0.1",pod=""`
	compare(t, a, `
# HELP tuxscope_connections_total TCP connections: every connect attempt (failed ones included) and every accept.
# TYPE tuxscope_connections_total counter
tuxscope_connections_total{comm="a",container="",direction="outbound",`+base+`} 2
tuxscope_connections_total{comm="b",container="",direction="outbound",`+base+`} 1
tuxscope_connections_total{comm="other",container="other",direction="inbound",`+other+`} 1
tuxscope_connections_total{comm="other",container="other",direction="outbound",`+other+`} 1
# HELP tuxscope_connection_failures_total Outbound connects that failed, by reason (refused, timed_out, unreachable, reset, aborted, other).
# TYPE tuxscope_connection_failures_total counter
tuxscope_connection_failures_total{comm="a",container="",direction="outbound",`+base+`,reason="timed_out"} 1
tuxscope_connection_failures_total{comm="other",container="other",direction="outbound",`+other+`,reason="refused"} 1
# HELP tuxscope_series_folded_total Events counted in the all-"other" label set because a new label set would have exceeded --max-series.
# TYPE tuxscope_series_folded_total counter
tuxscope_series_folded_total 3
`, "tuxscope_connections_total", "tuxscope_connection_failures_total", "tuxscope_series_folded_total")
}

// TestExpiry: label sets not updated for --series-ttl are dropped (and
// their series freed for others), the rest stay.
func TestExpiry(t *testing.T) {
	labels, _ := ParseLabels("comm,peer")
	a, clk := newTest(t, labels, 1, 2*outboundSeries)
	a.Add(ev(clk, event.Connect, "gone", "10.0.0.1:80"))
	clk.advance(6 * time.Minute)
	a.Add(ev(clk, event.Connect, "alive", "10.0.0.1:80"))
	a.Add(ev(clk, event.Connect, "new", "10.0.0.1:80")) // over the cap: folded
	clk.advance(5 * time.Minute)                        // gone: 11 min idle; alive: 5
	a.Maintain(clk.t)
	if a.series != outboundSeries {
		t.Errorf("series %d after expiry, want %d", a.series, outboundSeries)
	}
	a.Add(ev(clk, event.Connect, "new", "10.0.0.2:80")) // room again
	compare(t, a, `
# HELP tuxscope_connections_total TCP connections: every connect attempt (failed ones included) and every accept.
# TYPE tuxscope_connections_total counter
tuxscope_connections_total{comm="alive",direction="outbound",peer="10.0.0.1"} 1
tuxscope_connections_total{comm="new",direction="outbound",peer="10.0.0.2"} 1
tuxscope_connections_total{comm="other",direction="outbound",peer="other"} 1
`, "tuxscope_connections_total")
	// Everything idle for the TTL goes, the all-"other" set too; a peer
	// slot expires with its sets, so a new peer gets it.
	clk.advance(11 * time.Minute)
	a.Maintain(clk.t)
	if a.series != 0 || len(a.owners) != 0 || a.overflow != [2]*row{} {
		t.Errorf("after the TTL: %d series, %d owners, overflow %v", a.series, len(a.owners), a.overflow)
	}
	a.Add(ev(clk, event.Connect, "alive", "10.0.0.9:80"))
	compare(t, a, `
# HELP tuxscope_connections_total TCP connections: every connect attempt (failed ones included) and every accept.
# TYPE tuxscope_connections_total counter
tuxscope_connections_total{comm="alive",direction="outbound",peer="10.0.0.9"} 1
`, "tuxscope_connections_total")
}

// TestHandler checks /metrics (tuxscope's metrics only, the lost reasons
// at zero from the start, build info once attached) and /healthz.
func TestHandler(t *testing.T) {
	a, clk := newTest(t, AllLabels, 10, 1000)
	c := NewCollector(a)
	s := NewSink(a)
	h, err := Handler(c, s)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		b, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, string(b)
	}
	if code, body := get("/healthz"); code != http.StatusServiceUnavailable || body != "not attached yet\n" {
		t.Errorf("/healthz before Start: %d %q", code, body)
	}
	code, body := get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	for _, why := range []string{"ring_buffer_full", "hook_skipped", "conn_table_full", "malformed", "unsolicited", "evicted"} {
		if !strings.Contains(body, `tuxscope_events_lost_total{reason="`+why+`"} 0`+"\n") {
			t.Errorf("no %s at 0 in\n%s", why, body)
		}
	}
	if strings.Contains(body, "go_") || strings.Contains(body, "process_") || strings.Contains(body, "tuxscope_build_info") {
		t.Errorf("unexpected metrics in\n%s", body)
	}
	s.Start()
	c.SetBuildInfo(BuildInfo{Version: "1.2.3", Kernel: "6.18.0", Backend: "connect:tracepoint"})
	s.Event(ev(clk, event.Connect, "curl", "10.0.0.1:80"))
	s.Lost(2, event.HookSkipped, clk.t)
	_, body = get("/metrics")
	for _, want := range []string{
		`tuxscope_build_info{backend="connect:tracepoint",kernel="6.18.0",version="1.2.3"} 1`,
		`tuxscope_connections_total{comm="curl",container="",direction="outbound",namespace="",peer="10.0.0.1",pod=""} 1`,
		`tuxscope_events_lost_total{reason="hook_skipped"} 2`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("no %s in\n%s", want, body)
		}
	}
	if code, body := get("/healthz"); code != http.StatusOK || body != "ok: 1 events counted\n" {
		t.Errorf("/healthz running: %d %q", code, body)
	}
	clk.advance(HealthWindow + time.Second) // no tick: the reader is stuck
	if code, body := get("/healthz"); code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "the event reader has not run for 6s") {
		t.Errorf("/healthz stalled: %d %q", code, body)
	}
	s.Tick(clk.t)
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz after a tick: %d", code)
	}
	s.Finish()
	if code, body := get("/healthz"); code != http.StatusServiceUnavailable || body != "stopped\n" {
		t.Errorf("/healthz after Finish: %d %q", code, body)
	}
}

// BenchmarkAdd is the per-event cost of the aggregation: a connection's
// five events (connect, established, accept, two closes), over 8 peers of
// one process (each with its own label) or 1000 (most folded).
func BenchmarkAdd(b *testing.B) {
	for _, peers := range []int{8, 1000} {
		b.Run(strconv.Itoa(peers)+"peers", func(b *testing.B) {
			clk := &fakeClock{t: time.Unix(1_000_000, 0)}
			a := New(Config{Labels: AllLabels, Peers: DefaultPeers, MaxSeries: DefaultMaxSeries, SeriesTTL: DefaultSeriesTTL, Now: clk.Now})
			var evs []*event.Event
			for i := range peers {
				remote := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 80).String()
				for _, typ := range []event.Type{event.Connect, event.Established, event.Accept, event.Close, event.Close} {
					e := ev(clk, typ, "loadgen", remote)
					e.LatencyNs, e.DurationNs, e.BytesSent, e.BytesReceived = 50_000, 1_000_000, 32, 32
					evs = append(evs, e)
				}
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				a.Add(evs[i%len(evs)])
			}
		})
	}
}

// TestUDPFlows: UDP flows counted per owner and direction (no peer
// label) when they end: flows, packets and payload bytes; a
// full series budget folds them into "other"; idle rows expire.
func TestUDPFlows(t *testing.T) {
	labels, _ := ParseLabels("comm,peer")
	a, clk := newTest(t, labels, 10, 1000)
	for _, remote := range []string{"127.0.0.53:53", "127.0.0.53:53", "10.0.0.9:123"} {
		a.Add(ev(clk, event.UDPOpen, "app", remote))
		c := ev(clk, event.UDPClose, "app", remote)
		c.PacketsSent, c.PacketsReceived, c.BytesSent, c.BytesReceived = 1, 2, 40, 300
		a.Add(c)
	}
	in := ev(clk, event.UDPClose, "dnsd", "127.0.0.1:40000")
	in.Flags |= event.FlagInbound
	a.Add(in)
	a.Add(ev(clk, event.UDPOpen, "nobody", "127.0.0.1:9")) // not counted: flows count when they end
	compare(t, a, `
# HELP tuxscope_udp_flows_total UDP flows (one socket's traffic with one peer) that ended, by the direction of their first packet.
# TYPE tuxscope_udp_flows_total counter
tuxscope_udp_flows_total{comm="app",direction="outbound"} 3
tuxscope_udp_flows_total{comm="dnsd",direction="inbound"} 1
# HELP tuxscope_udp_sent_packets_total Datagrams sent on UDP flows, counted when they end.
# TYPE tuxscope_udp_sent_packets_total counter
tuxscope_udp_sent_packets_total{comm="app",direction="outbound"} 3
tuxscope_udp_sent_packets_total{comm="dnsd",direction="inbound"} 0
# HELP tuxscope_udp_received_bytes_total Payload bytes received on UDP flows, counted when they end.
# TYPE tuxscope_udp_received_bytes_total counter
tuxscope_udp_received_bytes_total{comm="app",direction="outbound"} 900
tuxscope_udp_received_bytes_total{comm="dnsd",direction="inbound"} 0
`, "tuxscope_udp_flows_total", "tuxscope_udp_sent_packets_total", "tuxscope_udp_received_bytes_total")
	if n := testutil.CollectAndCount(NewCollector(a), "tuxscope_connections_total"); n != 0 {
		t.Errorf("%d TCP connection series from UDP flows, want 0", n)
	}
	if a.series != 2*udpSeries {
		t.Errorf("series %d, want %d", a.series, 2*udpSeries)
	}

	// No room for another owner's 5 series: folded into "other".
	b, bclk := newTest(t, labels, 10, 4)
	b.Add(ev(bclk, event.UDPClose, "app", "127.0.0.53:53"))
	compare(t, b, `
# HELP tuxscope_udp_flows_total UDP flows (one socket's traffic with one peer) that ended, by the direction of their first packet.
# TYPE tuxscope_udp_flows_total counter
tuxscope_udp_flows_total{comm="other",direction="outbound"} 1
`, "tuxscope_udp_flows_total")

	clk.advance(11 * time.Minute)
	a.Maintain(clk.t)
	if a.series != 0 || len(a.owners) != 0 {
		t.Errorf("after the TTL: %d series, %d owners, want none", a.series, len(a.owners))
	}
}

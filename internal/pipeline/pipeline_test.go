package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/tuxscope/tuxscope/internal/dns"
	"github.com/tuxscope/tuxscope/internal/event"
	"github.com/tuxscope/tuxscope/internal/filter"
	"github.com/tuxscope/tuxscope/internal/sni"
)

// script is a fake source: it makes the calls a tracer would, in order.
type script func(h event.Handler) error

func (s script) Run(_ context.Context, h event.Handler) error { return s(h) }

// sinkLog is a sink that logs its lifecycle.
type sinkLog struct {
	calls []string
	last  event.Event
	fail  error // returned from Event
}

func (s *sinkLog) Start() error { s.calls = append(s.calls, "start"); return nil }

func (s *sinkLog) Event(e *event.Event) error {
	c := fmt.Sprintf("%s pid=%d", e.Type, e.PID)
	if e.Hostname != "" {
		c += " host=" + e.Hostname + "/" + e.HostnameSource
	}
	if e.DNSInfo != nil {
		c += fmt.Sprintf(" query=%s answers=%v latency=%d", e.DNSInfo.Name, e.DNSInfo.Answers, e.LatencyNs)
	}
	if e.ContainerID != "" {
		c += " container=" + e.ContainerID
	}
	s.calls = append(s.calls, c)
	s.last = *e
	return s.fail
}

func (s *sinkLog) Lost(n uint64, why event.LossReason, _ time.Time) error {
	s.calls = append(s.calls, fmt.Sprintf("lost %d %s", n, why.Key()))
	return nil
}

func (s *sinkLog) Tick(time.Time) error { s.calls = append(s.calls, "tick"); return nil }
func (s *sinkLog) Flush() error         { s.calls = append(s.calls, "flush"); return nil }
func (s *sinkLog) Finish() error        { s.calls = append(s.calls, "finish"); return nil }

func (s *sinkLog) StillOpen(n event.OpenCount, _ time.Time) error {
	s.calls = append(s.calls, fmt.Sprintf("open out=%d in=%d", n.Outbound, n.Inbound))
	return nil
}

func tcp(t event.Type, pid uint32, remote string) *event.Event {
	e := &event.Event{Type: t, PID: pid, TimestampNs: 5e9, Family: 4,
		Local: netip.MustParseAddrPort("198.51.100.1:40000"), Remote: netip.MustParseAddrPort(remote)}
	e.SetComm("curl")
	return e
}

func check(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("sink calls:\n got %q\nwant %q", got, want)
	}
}

// The sink's lifecycle, in order: start, existing connections, a flush
// before the source runs, the source's events, losses and ticks as they
// come, a flush at each caught-up, finish at the end.
func TestLifecycleOrder(t *testing.T) {
	var sink sinkLog
	existing := []event.Event{*tcp(event.Existing, 10, "198.51.100.2:22")}
	src := script(func(h event.Handler) error {
		for _, step := range []func() error{
			func() error { return h.Event(tcp(event.Connect, 11, "198.51.100.2:80")) },
			func() error { return h.Event(tcp(event.Established, 11, "198.51.100.2:80")) },
			h.CaughtUp,
			func() error { return h.Lost(3, event.RingBufferFull, time.Now()) },
			func() error { return h.Tick(time.Now()) },
			func() error { return h.Event(tcp(event.Close, 11, "198.51.100.2:80")) },
			func() error { return h.Lost(2, event.HookSkipped, time.Now()) },
			h.CaughtUp,
		} {
			if err := step(); err != nil {
				return err
			}
		}
		return nil
	})
	if err := New(Config{}, &sink).Run(context.Background(), src, existing); err != nil {
		t.Fatal(err)
	}
	check(t, sink.calls, []string{
		"start", "existing pid=10", "flush",
		"connect pid=11", "established pid=11", "flush",
		"lost 3 ring_buffer_full", "tick", "close pid=11", "lost 2 hook_skipped", "flush",
		"finish",
	})
}

// A source error ends the run: what was written is flushed, the sink is
// not finished (no final summary after a broken pipe), the error returns.
func TestSourceErrorFlushesAndReturns(t *testing.T) {
	sink := sinkLog{fail: syscall.EPIPE}
	src := script(func(h event.Handler) error {
		if err := h.Event(tcp(event.Connect, 1, "198.51.100.2:80")); err != nil {
			return err
		}
		return errors.New("not reached")
	})
	err := New(Config{}, &sink).Run(context.Background(), src, nil)
	if !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Run = %v, want EPIPE", err)
	}
	check(t, sink.calls, []string{"start", "flush", "connect pid=1", "flush"})
}

// ownerOf is an enricher that fills in the owner of closes whose owner the
// kernel did not know, as the --existing snapshot does.
type ownerOf map[netip.AddrPort]uint32

func (o ownerOf) Enrich(e *event.Event) {
	if pid, ok := o[e.Remote]; ok && e.PID == 0 {
		e.PID = pid
	}
}

// Enrichers run before the filter: a close the kernel could not attribute
// passes a --pid filter once enriched; existing connections are filtered
// too; events are timed from the clock.
func TestEnrichThenFilterThenTime(t *testing.T) {
	var sink sinkLog
	f := &filter.Spec{PIDs: []uint32{42}}
	clock := event.Clock{}
	existing := []event.Event{*tcp(event.Existing, 42, "198.51.100.2:22"), *tcp(event.Existing, 7, "198.51.100.3:22")}
	src := script(func(h event.Handler) error {
		for _, e := range []*event.Event{
			tcp(event.Close, 0, "198.51.100.2:22"), // enriched to 42
			tcp(event.Close, 0, "198.51.100.9:22"), // unknown: filtered out
			tcp(event.Connect, 7, "198.51.100.2:80"),
			tcp(event.Connect, 42, "198.51.100.2:80"),
		} {
			if err := h.Event(e); err != nil {
				return err
			}
		}
		return nil
	})
	cfg := Config{Filter: f, Enrichers: []Enricher{ownerOf{netip.MustParseAddrPort("198.51.100.2:22"): 42}}, Clock: clock}
	if err := New(cfg, &sink).Run(context.Background(), src, existing); err != nil {
		t.Fatal(err)
	}
	check(t, sink.calls, []string{"start", "existing pid=42", "flush", "close pid=42", "connect pid=42", "finish"})
	if want := clock.Wall(5e9); !sink.last.Time.Equal(want) {
		t.Errorf("Time = %v, want %v (the clock's reading of the kernel timestamp)", sink.last.Time, want)
	}
}

// dnsResponse is a DNS answer packet for name -> addr, to pid's socket.
func dnsPacket(t *testing.T, pid uint32, response bool, ts uint64, name, addr string) *event.DNSPacket {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0x4242, Response: response, RecursionDesired: true})
	b.EnableCompression()
	q := dnsmessage.Question{Name: dnsmessage.MustNewName(name + "."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	if err := b.Question(q); err != nil {
		t.Fatal(err)
	}
	if response {
		if err := b.StartAnswers(); err != nil {
			t.Fatal(err)
		}
		a := netip.MustParseAddr(addr).As4()
		if err := b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: a}); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	p := &event.DNSPacket{TimestampNs: ts, PID: pid, Family: 4, Response: response, Protocol: 17, Cookie: 99,
		Local: netip.MustParseAddrPort("127.0.0.1:40001"), Remote: netip.MustParseAddrPort("127.0.0.53:53"),
		Payload: msg, PayloadLen: uint32(len(msg))}
	p.Comm.SetString("curl")
	return p
}

// DNS packets teach the tracker the names later connects are given; with
// ShowDNS each response is also an event of its own, with its latency
// from the query. What the tracker skips is reported in band, at the next
// tick and at the end.
func TestDNSNamesAndShowDNS(t *testing.T) {
	for _, show := range []bool{false, true} {
		var sink sinkLog
		src := script(func(h event.Handler) error {
			if err := h.DNS(dnsPacket(t, 11, false, 1e9, "svc.example", "")); err != nil {
				return err
			}
			if err := h.DNS(dnsPacket(t, 11, true, 1e9+5000, "svc.example", "198.51.100.7")); err != nil {
				return err
			}
			// Not a DNS message at all: counted, reported at the tick.
			bad := dnsPacket(t, 11, true, 2e9, "x.example", "198.51.100.8")
			bad.Payload = bad.Payload[:5]
			bad.PayloadLen = 5
			if err := h.DNS(bad); err != nil {
				return err
			}
			if err := h.Tick(time.Now()); err != nil {
				return err
			}
			// An answer nobody asked for: dropped, names nothing, reported
			// at the end.
			if err := h.DNS(dnsPacket(t, 11, true, 3e9, "evil.example", "198.51.100.9")); err != nil {
				return err
			}
			if err := h.Event(tcp(event.Connect, 11, "198.51.100.9:443")); err != nil {
				return err
			}
			return h.Event(tcp(event.Connect, 11, "198.51.100.7:443"))
		})
		cfg := Config{Names: dns.NewTracker(), ShowDNS: show}
		if err := New(cfg, &sink).Run(context.Background(), src, nil); err != nil {
			t.Fatal(err)
		}
		want := []string{"start", "flush"}
		if show {
			want = append(want, "dns pid=11 query=svc.example answers=[198.51.100.7] latency=5000")
		}
		want = append(want, "lost 1 malformed", "tick", "connect pid=11", "connect pid=11 host=svc.example/process", "lost 1 unsolicited", "finish")
		check(t, sink.calls, want)
	}
}

// What the tracker skips of DNS traffic the filters leave out is not
// reported (--port 443 is not about port 53); evictions always are.
func TestDNSDropsFollowFilters(t *testing.T) {
	bad := func(pid uint32) *event.DNSPacket {
		p := dnsPacket(t, pid, true, 2e9, "x.example", "198.51.100.8")
		p.Payload = p.Payload[:5]
		p.PayloadLen = 5
		return p
	}
	for _, tc := range []struct {
		name   string
		filter filter.Spec
		want   []string
	}{
		{"no filter", filter.Spec{}, []string{"start", "flush", "lost 1 malformed", "lost 1 unsolicited", "finish"}},
		{"port 53", filter.Spec{Ports: []uint16{53}}, []string{"start", "flush", "lost 1 malformed", "lost 1 unsolicited", "finish"}},
		{"port 443", filter.Spec{Ports: []uint16{443}}, []string{"start", "flush", "finish"}},
		{"its pid", filter.Spec{PIDs: []uint32{11}}, []string{"start", "flush", "lost 1 malformed", "lost 1 unsolicited", "finish"}},
		{"another pid", filter.Spec{PIDs: []uint32{12}}, []string{"start", "flush", "finish"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sink sinkLog
			src := script(func(h event.Handler) error {
				if err := h.DNS(bad(11)); err != nil {
					return err
				}
				return h.DNS(dnsPacket(t, 11, true, 3e9, "evil.example", "198.51.100.9"))
			})
			cfg := Config{Names: dns.NewTracker(), Filter: &tc.filter}
			if err := New(cfg, &sink).Run(context.Background(), src, nil); err != nil {
				t.Fatal(err)
			}
			check(t, sink.calls, tc.want)
		})
	}
}

// A close frees the socket's DNS-over-TCP stream in the tracker.
func TestCloseForgetsDNSStream(t *testing.T) {
	var sink sinkLog
	tr := dns.NewTracker()
	src := script(func(h event.Handler) error {
		// A length prefix promising 65535 bytes, and 100 of them.
		p := &event.DNSPacket{Protocol: 6, Response: true, Cookie: 77, TimestampNs: 1e9, Family: 4,
			Local: netip.MustParseAddrPort("127.0.0.1:40001"), Remote: netip.MustParseAddrPort("127.0.0.53:53"),
			Payload: append([]byte{0xff, 0xff}, make([]byte, 100)...), PayloadLen: 102}
		if err := h.DNS(p); err != nil {
			return err
		}
		if tr.Bytes() == 0 {
			t.Errorf("the partial message is not kept")
		}
		c := tcp(event.Close, 11, "127.0.0.53:53")
		c.Cookie = 77
		return h.Event(c)
	})
	if err := New(Config{Names: tr}, &sink).Run(context.Background(), src, nil); err != nil {
		t.Fatal(err)
	}
	if tr.Bytes() != 0 {
		t.Errorf("after the close the tracker holds %d bytes", tr.Bytes())
	}
}

// Filters apply to DNS events as to any other (here --pid).
func TestDNSEventsFiltered(t *testing.T) {
	var sink sinkLog
	src := script(func(h event.Handler) error {
		return h.DNS(dnsPacket(t, 11, true, 1e9, "svc.example", "198.51.100.7"))
	})
	cfg := Config{Names: dns.NewTracker(), ShowDNS: true, Filter: &filter.Spec{PIDs: []uint32{12}}}
	if err := New(cfg, &sink).Run(context.Background(), src, nil); err != nil {
		t.Fatal(err)
	}
	check(t, sink.calls, []string{"start", "flush", "finish"})
}

// A DNS packet from a thread other than the main one carries the thread's
// name (the kernel's DNS hooks may not read the process's): the row names
// the process, keeps the thread's name, and --comm matches the process.
func TestDNSEventNamesTheProcess(t *testing.T) {
	var sink sinkLog
	src := script(func(h event.Handler) error {
		for _, response := range []bool{false, true} {
			p := dnsPacket(t, 11, response, 1e9, "svc.example", "198.51.100.7")
			p.TID = 14
			p.Comm.SetString("isc-net-0000")
			p.Thread.SetString("isc-net-0000")
			if err := h.DNS(p); err != nil {
				return err
			}
		}
		return nil
	})
	names := func(pid uint32) (string, bool) { return "dig", pid == 11 }
	cfg := Config{Names: dns.NewTracker(), ShowDNS: true, Filter: &filter.Spec{Comms: []string{"dig"}}, ProcessName: names}
	if err := New(cfg, &sink).Run(context.Background(), src, nil); err != nil {
		t.Fatal(err)
	}
	check(t, sink.calls, []string{"start", "flush", "dns pid=11 query=svc.example answers=[198.51.100.7] latency=0", "finish"})
	if string(sink.last.Comm()) != "dig" || string(sink.last.Thread()) != "isc-net-0000" || sink.last.TID != 14 {
		t.Errorf("comm %q thread %q tid %d, want dig, isc-net-0000, 14", sink.last.Comm(), sink.last.Thread(), sink.last.TID)
	}
}

func TestProcName(t *testing.T) {
	name, ok := ProcName(uint32(os.Getpid()))
	want, _ := os.ReadFile("/proc/self/comm")
	if !ok || name+"\n" != string(want) {
		t.Errorf("ProcName(self) = %q, %v; want %q", name, ok, want)
	}
	if _, ok := ProcName(0); ok {
		t.Error("ProcName(0) found a process")
	}
}

func openConn(inbound bool, pid uint32, comm string) event.OpenConn {
	c := event.OpenConn{Inbound: inbound, PID: pid}
	c.Comm.SetString(comm)
	return c
}

// After the source has drained, the sink hears how many tracked
// connections were still open, by direction, among those --pid and --comm
// select (the owner is all that is known of them), before it finishes; a
// source that ended in an error is not asked.
func TestStillOpenAtExit(t *testing.T) {
	conns := []event.OpenConn{
		openConn(false, 11, "curl"), openConn(false, 11, "curl"), openConn(true, 12, "nginx"),
		openConn(true, 0, ""), // established to a listener, not accepted yet
		openConn(false, 13, "wget"),
	}
	src := script(func(h event.Handler) error { return h.Event(tcp(event.Connect, 11, "198.51.100.2:80")) })
	for _, tc := range []struct {
		name   string
		filter *filter.Spec
		want   string
	}{
		{"unfiltered", nil, "open out=3 in=2"},
		{"pid", &filter.Spec{PIDs: []uint32{11, 12}}, "open out=2 in=1"},
		{"comm", &filter.Spec{Comms: []string{"wget"}}, "open out=1 in=0"},
		{"none selected", &filter.Spec{Comms: []string{"sshd"}}, "open out=0 in=0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sink sinkLog
			cfg := Config{Filter: tc.filter, OpenAtExit: func() ([]event.OpenConn, error) { return conns, nil }}
			if err := New(cfg, &sink).Run(context.Background(), src, nil); err != nil {
				t.Fatal(err)
			}
			if got := sink.calls[len(sink.calls)-2:]; got[0] != tc.want || got[1] != "finish" {
				t.Errorf("last calls %q, want %q then finish", got, tc.want)
			}
		})
	}
	t.Run("unreadable", func(t *testing.T) {
		var sink sinkLog
		var diag bytes.Buffer
		cfg := Config{Diag: &diag, OpenAtExit: func() ([]event.OpenConn, error) { return nil, errors.New("EPERM") }}
		if err := New(cfg, &sink).Run(context.Background(), src, nil); err != nil {
			t.Fatal(err)
		}
		check(t, sink.calls, []string{"start", "flush", "connect pid=11", "finish"})
		if want := "tuxscope: cannot tell how many connections were still open at exit: EPERM\n"; diag.String() != want {
			t.Errorf("diag %q, want %q", diag.String(), want)
		}
	})
	t.Run("source error", func(t *testing.T) {
		sink := sinkLog{fail: syscall.EPIPE}
		asked := false
		cfg := Config{OpenAtExit: func() ([]event.OpenConn, error) { asked = true; return conns, nil }}
		if err := New(cfg, &sink).Run(context.Background(), src, nil); !errors.Is(err, syscall.EPIPE) || asked {
			t.Errorf("Run = %v, asked for open connections: %v", err, asked)
		}
	})
}

// zoneAll gives every event's remote address the zone "z".
type zoneAll struct{}

func (zoneAll) Enrich(e *event.Event) {
	e.Remote = netip.AddrPortFrom(e.Remote.Addr().WithZone("z"), e.Remote.Port())
}

// Zones apply to kernel events and existing connections that have an
// interface, and not to the others.
func TestZones(t *testing.T) {
	var sink sinkLog
	ll := func(typ event.Type, ifindex uint32) *event.Event {
		e := tcp(typ, 5, "[fe80::2]:80")
		e.Family, e.IfIndex = 6, ifindex
		return e
	}
	var got []string
	rec := recordRemote{&sink, &got}
	src := script(func(h event.Handler) error {
		if err := h.Event(ll(event.Connect, 3)); err != nil {
			return err
		}
		return h.Event(ll(event.Connect, 0))
	})
	if err := New(Config{Zones: zoneAll{}}, rec).Run(context.Background(), src, []event.Event{*ll(event.Existing, 3)}); err != nil {
		t.Fatal(err)
	}
	check(t, got, []string{"[fe80::2%z]:80", "[fe80::2%z]:80", "[fe80::2]:80"})
}

// recordRemote is a sinkLog that also records each event's remote end.
type recordRemote struct {
	*sinkLog
	remotes *[]string
}

func (r recordRemote) Event(e *event.Event) error {
	*r.remotes = append(*r.remotes, e.Remote.String())
	return r.sinkLog.Event(e)
}

// cgroupOf is a fake container resolver: a cgroup path by cgroup id, or
// by pid when the id is unknown (as the real one reads /proc/PID/cgroup).
type cgroupOf struct {
	byID  map[uint64]string
	byPID map[uint32]string
}

func (c cgroupOf) Enrich(e *event.Event) {
	if p, ok := c.byID[e.CgroupID]; ok {
		e.Cgroup = p
	} else if p, ok := c.byPID[e.PID]; ok {
		e.Cgroup = p
	}
}

// The workload filters see what the container enricher fills: for kernel
// events, existing connections (by their owner's pid), DNS events and the
// connections still open at exit (by their owner's cgroup id).
func TestWorkloadFilterEnriched(t *testing.T) {
	var sink sinkLog
	res := cgroupOf{byID: map[uint64]string{100: "/app.slice/a.scope", 200: "/other.slice"}, byPID: map[uint32]string{42: "/app.slice/a.scope", 7: "/other.slice"}}
	existing := []event.Event{*tcp(event.Existing, 42, "198.51.100.2:22"), *tcp(event.Existing, 7, "198.51.100.3:22")}
	src := script(func(h event.Handler) error {
		for _, e := range []*event.Event{tcp(event.Connect, 42, "198.51.100.2:80"), tcp(event.Connect, 7, "198.51.100.2:80")} {
			e.CgroupID = map[uint32]uint64{42: 100, 7: 200}[e.PID]
			if err := h.Event(e); err != nil {
				return err
			}
		}
		for _, pid := range []uint32{42, 7} {
			for _, resp := range []bool{false, true} {
				if err := h.DNS(dnsPacket(t, pid, resp, 1e9, "svc.example", "198.51.100.7")); err != nil {
					return err
				}
			}
		}
		return nil
	})
	open := []event.OpenConn{{PID: 42, CgroupID: 100}, {PID: 42, CgroupID: 100, Inbound: true}, {PID: 7, CgroupID: 200}}
	cfg := Config{Filter: &filter.Spec{Cgroups: []string{"/app.slice"}}, Enrichers: []Enricher{res}, Names: dns.NewTracker(), ShowDNS: true,
		OpenAtExit: func() ([]event.OpenConn, error) { return open, nil }}
	if err := New(cfg, &sink).Run(context.Background(), src, existing); err != nil {
		t.Fatal(err)
	}
	check(t, sink.calls, []string{"start", "existing pid=42", "flush", "connect pid=42",
		"dns pid=42 query=svc.example answers=[198.51.100.7] latency=0", "open out=1 in=1", "finish"})
}

// A ClientHello names its connection's later events; one that could not
// be read is counted once, on the first of its connection's events the
// filters select.
func TestServerNames(t *testing.T) {
	hello := func(cookie uint64, name string, n int) *event.TLSHello {
		// A minimal ClientHello: TLS 1.2 record, one cipher suite,
		// null compression, server_name.
		ext := append([]byte{0, 0, 0, byte(len(name) + 5), 0, byte(len(name) + 3), 0, 0, byte(len(name))}, name...)
		body := append([]byte{3, 3}, make([]byte, 32)...)
		body = append(body, 0, 0, 2, 0x13, 0x01, 1, 0, 0, byte(len(ext)))
		body = append(body, ext...)
		hs := append([]byte{1, 0, 0, byte(len(body))}, body...)
		b := append([]byte{0x16, 3, 1, 0, byte(len(hs))}, hs...)
		return &event.TLSHello{Cookie: cookie, Payload: b[:min(n, len(b))], SegmentLen: uint32(min(n, len(b)))}
	}
	ev := func(typ event.Type, pid uint32, cookie uint64) *event.Event {
		e := tcp(typ, pid, "198.51.100.9:443")
		e.Cookie = cookie
		return e
	}
	var (
		sink  sinkLog
		names []string
	)
	src := script(func(h event.Handler) error {
		for _, s := range []func() error{
			func() error { return h.TLS(hello(1, "a.test", 1000)) },
			func() error { return h.TLS(hello(2, "b.test", 20)) }, // split
			func() error { return h.Event(ev(event.Retransmit, 7, 1)) },
			func() error { return h.Event(ev(event.Close, 7, 1)) },
			func() error { return h.Event(ev(event.Retransmit, 8, 2)) }, // filtered out: not counted
			func() error { return h.Event(ev(event.Close, 9, 2)) },      // its close, selected: counted
		} {
			if err := s(); err != nil {
				return err
			}
			names = append(names, sink.last.SNI)
		}
		return nil
	})
	cfg := Config{Servers: sni.NewTracker(16), Filter: &filter.Spec{PIDs: []uint32{7, 9}}}
	if err := New(cfg, &sink).Run(context.Background(), src, nil); err != nil {
		t.Fatal(err)
	}
	check(t, sink.calls, []string{"start", "flush", "retransmit pid=7", "close pid=7", "close pid=9", "lost 1 split", "finish"})
	if strings.Join(names, ",") != ",,a.test,a.test,a.test," {
		t.Errorf("names %q", names)
	}
}

// hostsFile is a dns.HostsNamer whose counts the test moves.
type hostsFile struct {
	names            map[netip.Addr][]string
	skipped, evicted uint64
}

func (h *hostsFile) Name(_ uint32, _ uint64, a netip.Addr, _ uint64) []string { return h.names[a] }
func (h *hostsFile) Drops() (uint64, uint64)                                  { return h.skipped, h.evicted }

// Names from the hosts file reach the sink with source hosts; what the
// hosts view skips or evicts is reported once, at the next tick.
func TestHostsNamesAndDrops(t *testing.T) {
	var sink sinkLog
	h := &hostsFile{names: map[netip.Addr][]string{netip.MustParseAddr("198.51.100.7"): {"files.test"}}}
	src := script(func(hd event.Handler) error {
		h.skipped = 3 // the file read for this event had 3 bad lines
		if err := hd.Event(tcp(event.Connect, 11, "198.51.100.7:443")); err != nil {
			return err
		}
		if err := hd.Tick(time.Now()); err != nil {
			return err
		}
		h.evicted = 1
		if err := hd.Event(tcp(event.Connect, 12, "198.51.100.8:443")); err != nil {
			return err
		}
		return hd.Tick(time.Now())
	})
	tr := dns.NewTracker()
	tr.Hosts = h
	if err := New(Config{Names: tr}, &sink).Run(context.Background(), src, nil); err != nil {
		t.Fatal(err)
	}
	check(t, sink.calls, []string{"start", "flush", "connect pid=11 host=files.test/hosts", "lost 3 hosts_skipped", "tick",
		"connect pid=12", "lost 1 hosts_evicted", "tick", "finish"})
}

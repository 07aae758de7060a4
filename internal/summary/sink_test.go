package summary

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tuxscope/tuxscope/internal/event"
	"github.com/tuxscope/tuxscope/internal/output"
	"github.com/tuxscope/tuxscope/internal/schema"
)

// The last summary says how many tracked connections were still open at
// exit (a line in the table, open_at_exit in JSON); interval summaries
// before it do not.
func TestSummaryOpenAtExit(t *testing.T) {
	for _, format := range []output.Format{output.FormatTable, output.FormatJSON} {
		var out bytes.Buffer
		s := NewSink(&out, format, time.Millisecond, ByConnections, GroupProcess, 0)
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		if err := s.Tick(time.Now().Add(time.Second)); err != nil { // an interval summary
			t.Fatal(err)
		}
		if err := s.StillOpen(event.OpenCount{Outbound: 2, Inbound: 3}, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := s.Finish(); err != nil {
			t.Fatal(err)
		}
		text := out.String()
		if format == output.FormatTable {
			if n := strings.Count(text, "still open at exit"); n != 1 || !strings.Contains(text, "\nstill open at exit: 5 (2 outbound, 3 inbound), not closed while tracing\n") {
				t.Errorf("table summaries:\n%s", text)
			}
			continue
		}
		lines := strings.Split(strings.TrimSpace(text), "\n")
		if len(lines) != 2 {
			t.Fatalf("want 2 summaries, got:\n%s", text)
		}
		var first, last schema.Summary
		for i, dst := range []*schema.Summary{&first, &last} {
			d := json.NewDecoder(strings.NewReader(lines[i]))
			d.DisallowUnknownFields()
			if err := d.Decode(dst); err != nil {
				t.Fatal(err)
			}
		}
		if first.OpenAtExit != nil {
			t.Errorf("interval summary has open_at_exit: %s", lines[0])
		}
		if o := last.OpenAtExit; o == nil || *o != (schema.OpenAtExit{Count: 5, Outbound: 2, Inbound: 3}) {
			t.Errorf("last summary: %s", lines[1])
		}
	}
}

// Retransmit and reset events are not connections: they make no row.
func TestSummaryIgnoresRetransmitAndReset(t *testing.T) {
	a := New(time.Now(), GroupProcess)
	for _, typ := range []event.Type{event.Retransmit, event.Reset} {
		e := &event.Event{Type: typ, PID: 7, Retransmits: 3}
		e.SetComm("curl")
		a.Add(e)
	}
	if len(a.rows) != 0 || a.Lost() != 0 {
		t.Errorf("%d rows, %d lost after a retransmit and a reset, want none", len(a.rows), a.Lost())
	}
}

// UDP flows have rows of their own, apart from TCP's to the same peer
// and port: at udp_close (whose owner is the best known), flows counted
// as connects (outbound) or accepts (inbound), their payload bytes and
// durations; the port marked /udp.
func TestSummaryUDPFlows(t *testing.T) {
	a := New(time.Now(), GroupProcess)
	local := netip.MustParseAddrPort("127.0.0.1:40000")
	dns := netip.MustParseAddrPort("127.0.0.53:53")
	add := func(typ event.Type, flags event.Flags, remote netip.AddrPort, sent, recv uint64) {
		e := &event.Event{Type: typ, PID: 7, Family: 4, Local: local, Remote: remote, Flags: flags, BytesSent: sent, BytesReceived: recv, DurationNs: 1000}
		e.SetComm("app")
		a.Add(e)
	}
	add(event.UDPOpen, 0, dns, 0, 0)
	add(event.UDPClose, 0, dns, 40, 120)
	add(event.Connect, 0, dns, 0, 0)                                                       // TCP to the same peer and port
	add(event.UDPOpen, event.FlagInbound, netip.MustParseAddrPort("127.0.0.9:5000"), 0, 0) // not counted yet
	add(event.UDPClose, event.FlagInbound, netip.MustParseAddrPort("127.0.0.9:5000"), 0, 0)
	if len(a.rows) != 3 {
		t.Fatalf("%d rows, want 3 (UDP out, TCP out, UDP in)", len(a.rows))
	}
	udp := a.rows[Key{PID: 7, Comm: "app", Peer: dns.Addr(), Port: 53, UDP: true}]
	if udp == nil || udp.Connects != 1 || udp.Closes != 1 || udp.BytesSent != 40 || udp.BytesReceived != 120 || udp.peerString() != "127.0.0.53:53/udp" {
		t.Errorf("UDP row %+v", udp)
	}
	in := a.rows[Key{PID: 7, Comm: "app", Inbound: true, Peer: netip.MustParseAddr("127.0.0.9"), Port: 40000, UDP: true}]
	if in == nil || in.Accepts != 1 || in.peerString() != "127.0.0.9 -> :40000/udp" {
		t.Errorf("inbound UDP row %+v", in)
	}
	if tcp := a.rows[Key{PID: 7, Comm: "app", Peer: dns.Addr(), Port: 53}]; tcp == nil || tcp.Connects != 1 || tcp.peerString() != "127.0.0.53:53" {
		t.Errorf("TCP row %+v", tcp)
	}
}

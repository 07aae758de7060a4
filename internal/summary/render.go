package summary

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/tuxscope/tuxscope/internal/output"
	"github.com/tuxscope/tuxscope/internal/schema"
)

func reason(errno uint32) string { return output.Reason(errno) }

// peerString is "93.184.216.34:443" (or "example.com (93.184.216.34):443")
// for an outbound row and "203.0.113.42 -> :8080" for an inbound one.
func (r *Row) peerString() string {
	udp := ""
	if r.UDP {
		udp = "/udp" // a UDP flow's port, as /etc/services writes it
	}
	if r.Inbound {
		return r.Peer.String() + " -> :" + strconv.Itoa(int(r.Port)) + udp
	}
	if r.Hostname != "" {
		return escape(r.Hostname) + " (" + r.Peer.Unmap().String() + "):" + strconv.Itoa(int(r.Port)) + udp
	}
	return netip.AddrPortFrom(r.Peer, r.Port).String() + udp
}

func dur(d time.Duration, ok bool) string {
	if !ok {
		return "-"
	}
	return string(output.AppendDuration(nil, uint64(d)))
}

// TableHeader is the summary table's column line, --by process.
const TableHeader = "PID      COMM             DIR  PEER                                  CONNS   FAIL   SENT         RECEIVED     LATENCY p50/p99    DURATION p50/p99   RETRANS  RTT p50/p90/p99\n"

// liveCols are the columns `tuxscope top` adds after PEER: the live rates
// each way (from updates) and the retransmitted segments.
const liveCols = "SEND/s     RECV/s     RETR  "

// peerEnd is where PEER's column ends in TableHeader.
const peerEnd = 69

// groupCol is the width of the group column of the other groupings: that
// of PID and COMM together, so the columns after it stay where they are (a
// longer name pushes its row right, as a long hostname does).
const groupCol = 25

// Header is the table's column line for a grouping: TableHeader for
// process, else one group column, COMM, CONTAINER or POD.
func Header(g GroupBy) string {
	if g == GroupProcess {
		return TableHeader
	}
	return fmt.Sprintf("%-*s %s", groupCol, strings.ToUpper(g.String()), TableHeader[groupCol+1:])
}

// LiveHeader is `tuxscope top`'s column line: Header with the live
// columns after PEER, and without RETRANS at the end (RETR is among them).
func LiveHeader(g GroupBy) string {
	h := Header(g)
	h = strings.Replace(h, "RETRANS  ", "", 1)
	return h[:peerEnd] + liveCols + h[peerEnd:]
}

// WriteTable writes a summary for people: a title line, then one line per
// group and peer, groups busiest first.
func WriteTable(w io.Writer, a *Aggregator, end time.Time, by SortBy, topPeers int) error {
	procs := a.Groups(by, topPeers)
	var b strings.Builder
	fmt.Fprintf(&b, "tuxscope summary %s to %s (%s): %d %s, by %s",
		a.since.Format("15:04:05"), end.Format("15:04:05"), dur(end.Sub(a.since).Round(time.Millisecond), true), len(procs), a.by.Plural(), by)
	if a.lost > 0 {
		fmt.Fprintf(&b, ", %d events lost", a.lost)
	}
	b.WriteString("\n")
	b.WriteString(Header(a.by))
	for _, p := range procs {
		for _, r := range p.Rows {
			b.WriteString(FormatRow(r))
			b.WriteByte('\n')
		}
	}
	if o := a.openAtExit; o != nil {
		fmt.Fprintf(&b, "still open at exit: %d (%d outbound, %d inbound), not closed while tracing\n", o.Total(), o.Outbound, o.Inbound)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// FormatRow is one row of the summary table, without a newline.
func FormatRow(r *Row) string { return formatRow(r, false) }

// FormatLiveRow is one row of `tuxscope top` (LiveHeader's columns): the
// live rates and retransmits after PEER.
func FormatLiveRow(r *Row) string { return formatRow(r, true) }

func formatRow(r *Row, live bool) string {
	dir := "out"
	if r.Inbound {
		dir = "in"
	}
	var who string
	if g := r.group; g != nil {
		who = fmt.Sprintf("%-*s", groupCol, escape(g.Label(g.by)))
	} else {
		pid, comm := strconv.Itoa(int(r.PID)), escape(r.Comm)
		if r.PID == 0 {
			pid, comm = "-", "-"
		}
		who = fmt.Sprintf("%-8s %-16s", pid, comm)
	}
	l50, ok50 := r.Latency(50)
	l99, ok99 := r.Latency(99)
	d50, okd50 := r.Duration(50)
	d99, okd99 := r.Duration(99)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-4s %-37s ", who, dir, r.peerString())
	if live {
		fmt.Fprintf(&b, "%-10s %-10s %4d  ", rate(r.SendRate), rate(r.ReceiveRate), r.Retrans)
	}
	fmt.Fprintf(&b, "%5d  %5d  %-12d %-12d %-18s %-18s ", r.Connections(), r.Failures, r.BytesSent, r.BytesReceived,
		dur(l50, ok50)+"/"+dur(l99, ok99), dur(d50, okd50)+"/"+dur(d99, okd99))
	if !live {
		fmt.Fprintf(&b, "%8d  ", r.Retrans) // SENT and after sit a column left of their headers
	}
	b.WriteString(r.rttString())
	return b.String()
}

// rttString is the RTT percentiles, p50/p90/p99, or -/-/- without samples.
func (r *Row) rttString() string {
	p50, ok := r.RTT(50)
	p90, _ := r.RTT(90)
	p99, _ := r.RTT(99)
	return dur(p50, ok) + "/" + dur(p90, ok) + "/" + dur(p99, ok)
}

func rate(perSec uint64) string { return string(output.AppendByteRate(nil, perSec)) }

// Matches reports whether s is in a row's group (a process's name or pid;
// a name; a container's label, full id or names; a pod's label, uid,
// name or namespace) or its peer.
func (r *Row) Matches(s string) bool {
	if s == "" || strings.Contains(r.peerString(), s) {
		return true
	}
	g := r.group
	if g == nil {
		return strings.Contains(r.Comm, s) || strings.Contains(strconv.Itoa(int(r.PID)), s)
	}
	for _, v := range []string{g.Label(g.by), g.Comm, g.ContainerID, g.Container, g.PodUID, g.Pod, g.Namespace} {
		if v != "" && strings.Contains(v, s) {
			return true
		}
	}
	return false
}

// escape makes a name safe for a terminal, as the event table does.
func escape(s string) string { return output.TerminalSafe(s) }

func percentiles(f func(float64) (time.Duration, bool)) *schema.Percentiles {
	p50, ok := f(50)
	if !ok {
		return nil
	}
	p90, _ := f(90)
	p99, _ := f(99)
	mx, _ := f(100)
	return &schema.Percentiles{P50: int64(p50), P90: int64(p90), P99: int64(p99), Max: int64(mx)}
}

const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

func jsonPeers(rows []*Row) []schema.Peer {
	var peers []schema.Peer
	for _, r := range rows {
		dir := "outbound"
		if r.Inbound {
			dir = "inbound"
		}
		proto := ""
		if r.UDP {
			proto = "udp"
		}
		peers = append(peers, schema.Peer{
			Proto: proto, Direction: dir, Peer: r.Peer.String(), Hostname: r.Hostname, Port: r.Port, Connects: r.Connects, Accepts: r.Accepts,
			Established: r.Established, Failures: r.Failures, Errors: r.Errors, Closes: r.Closes,
			BytesSent: r.BytesSent, BytesReceived: r.BytesReceived, RetransSegs: r.Retrans,
			LatencyNs: percentiles(r.Latency), DurationNs: percentiles(r.Duration), RTTNs: percentiles(r.RTT),
		})
	}
	return peers
}

// WriteJSON writes a summary as one JSON object on one line, with
// "event_type":"summary": --by process its processes (the key processes),
// else its groups (the key groups).
func WriteJSON(w io.Writer, a *Aggregator, end time.Time, by SortBy, topPeers int) error {
	s := schema.Summary{
		Time: end.Format(timeLayout), EventType: "summary", Start: a.since.Format(timeLayout),
		DurationNs: int64(end.Sub(a.since)), SortedBy: by.String(), By: a.by.String(), Lost: a.lost,
	}
	if a.by == GroupProcess {
		s.Processes = []schema.Process{}
	} else {
		s.Groups = []schema.Group{}
	}
	for _, p := range a.Groups(by, topPeers) {
		if a.by == GroupProcess {
			s.Processes = append(s.Processes, schema.Process{PID: p.PID, Comm: p.Comm, Connects: p.Total.Connects, Accepts: p.Total.Accepts,
				Failures: p.Total.Failures, BytesSent: p.Total.BytesSent, BytesReceived: p.Total.BytesReceived, RetransSegs: p.Total.Retrans, Peers: jsonPeers(p.Rows)})
			continue
		}
		s.Groups = append(s.Groups, schema.Group{Group: p.Label(), Comm: p.Comm,
			ContainerID: p.ContainerID, Runtime: p.Runtime, Container: p.Container, PodUID: p.PodUID, Pod: p.Pod, Namespace: p.Namespace,
			Connects: p.Total.Connects, Accepts: p.Total.Accepts,
			Failures: p.Total.Failures, BytesSent: p.Total.BytesSent, BytesReceived: p.Total.BytesReceived, RetransSegs: p.Total.Retrans, Peers: jsonPeers(p.Rows)})
	}
	if o := a.openAtExit; o != nil {
		s.OpenAtExit = &schema.OpenAtExit{Count: o.Total(), Outbound: o.Outbound, Inbound: o.Inbound}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

package output

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tuxscope/tuxscope/internal/event"
	"github.com/tuxscope/tuxscope/internal/pipeline"
)

// Format names an output format.
type Format string

// The formats --format accepts.
const (
	FormatTable Format = "table"
	FormatJSON  Format = "json"
)

// ParseFormat validates a --format value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatTable, FormatJSON:
		return f, nil
	}
	return "", fmt.Errorf("unknown format %q (want table or json)", s)
}

// New returns the event stream sink for a format. Table mode reports lost
// events on diag (stderr, unbuffered); JSON mode reports them in band.
func New(f Format, w, diag io.Writer) pipeline.Sink {
	if f == FormatJSON {
		return &JSON{lines: newLines(w)}
	}
	return &Table{lines: newLines(w), diag: diag}
}

// lines is the buffered line writer both stream sinks share: a line per
// event when events are sparse (the pipeline flushes whenever it has
// caught up with the kernel), big writes under load.
type lines struct {
	w   *bufio.Writer
	buf []byte // the line being built, reused
}

func newLines(w io.Writer) lines { return lines{w: bufio.NewWriterSize(w, 64<<10)} }

func (l *lines) write(b []byte) error {
	l.buf = b
	_, err := l.w.Write(b)
	return err
}

// Tick does nothing: a stream sink writes as events come.
func (l *lines) Tick(time.Time) error { return nil }

// Flush writes out what is buffered.
func (l *lines) Flush() error { return l.w.Flush() }

// Finish writes out what is buffered: the stream needs no closing line.
func (l *lines) Finish() error { return l.w.Flush() }

// Table is the human-readable sink:
//
//	PID      COMM             TYPE        SRC                      DST                      DETAIL
//	6201     curl             connect     10.0.0.5:53412           93.184.216.34:443
//	6201     curl             established 10.0.0.5:53412           93.184.216.34:443        latency 12.3ms
type Table struct {
	lines
	diag io.Writer
	// skipped is how many runs of tuxscope's programs the kernel skipped
	// so far: a skipped close leaves its connection tracked as open.
	skipped uint64
	// Containers adds a CONTAINER column after COMM (--containers): a
	// Kubernetes pod/container, or the container's short id, or the
	// systemd unit's name, or -. Set before Start. Without it, the column
	// is added, under a new header line, at the first event from a
	// container or a pod.
	Containers bool
}

const tableHeader = "PID      COMM             TYPE        SRC                      DST                      DETAIL\n"

// containerCol is the CONTAINER column's width: a 12-hex short id, or a
// unit name (a longer one pushes the row right, as a long hostname does).
const containerCol = 17

// podColMax bounds pod/container in the CONTAINER column, in columns:
// longer is cut and ends in "...".
const podColMax = 40

func (t *Table) Start() error { return t.header() }

// header writes the header line, with the CONTAINER column if it is on.
func (t *Table) header() error {
	if t.Containers {
		h := append(t.buf[:0], tableHeader[:26]...)
		h = pad(append(h, "CONTAINER"...), len("CONTAINER"), containerCol)
		return t.write(append(h, tableHeader[26:]...))
	}
	return t.write(append(t.buf[:0], tableHeader...))
}

// appendContainer appends the CONTAINER column: pod/container when a CRI
// runtime named the pod (pod/short-id if not the container), else the
// short id, else the unit's name, else -. Names are escaped, a / in them
// too (\x2f), so the one / is the separator.
func appendContainer(b []byte, e *event.Event) []byte {
	switch {
	case e.Pod != "":
		start := len(b)
		b, w := appendPodContainer(b, e)
		if w > podColMax {
			b, w = cutColumns(b, start, podColMax-3)
			b, w = append(b, "..."...), w+3
		}
		return pad(b, w, containerCol)
	case len(e.ContainerID) >= 12:
		b = append(b, e.ContainerID[:12]...)
		return pad(b, 12, containerCol)
	case e.ContainerName != "":
		var w int
		b, w = appendTerminalSafe(b, []byte(e.ContainerName))
		return pad(b, w, containerCol)
	}
	return pad(append(b, '-'), 1, containerCol)
}

// appendPodContainer appends pod/container, escaped; it returns the
// columns it takes.
func appendPodContainer(b []byte, e *event.Event) ([]byte, int) {
	b, w := appendNameSegment(b, e.Pod)
	b = append(b, '/')
	w++
	var cw int
	switch {
	case e.ContainerName != "":
		b, cw = appendNameSegment(b, e.ContainerName)
	case len(e.ContainerID) >= 12:
		b, cw = append(b, e.ContainerID[:12]...), 12
	default:
		b, cw = append(b, '-'), 1
	}
	return b, w + cw
}

// appendNameSegment appends a name escaped for a terminal, with its /
// escaped too.
func appendNameSegment(b []byte, name string) ([]byte, int) {
	w := 0
	for i := 0; ; i++ {
		seg, rest, more := strings.Cut(name, "/")
		if i > 0 {
			b = append(b, `\x2f`...)
			w += 4
		}
		var sw int
		b, sw = appendTerminalSafe(b, []byte(seg))
		w += sw
		if !more {
			return b, w
		}
		name = rest
	}
}

// cutColumns cuts b after start's first n columns (of text
// appendTerminalSafe made: one column a character).
func cutColumns(b []byte, start, n int) ([]byte, int) {
	i, w := start, 0
	for i < len(b) && w < n {
		_, size := utf8.DecodeRune(b[i:])
		i += size
		w++
	}
	return b[:i], w
}

func (t *Table) Event(e *event.Event) error {
	if !t.Containers && (e.ContainerID != "" || e.PodUID != "") {
		// The first container: from here on, rows have the column.
		t.Containers = true
		if err := t.header(); err != nil {
			return err
		}
	}
	b := t.buf[:0]
	start := len(b)
	var w int
	if e.PID == 0 { // a connection whose owner tuxscope never saw
		b = append(b, '-')
		b = pad(b, 1, 9)
		b = append(b, '-')
		b = pad(b, 1, 17)
	} else {
		b = strconv.AppendUint(b, uint64(e.PID), 10)
		b = pad(b, len(b)-start, 9)
		b, w = appendTerminalSafe(b, e.Comm())
		b = pad(b, w, 17)
	}
	if t.Containers {
		b = appendContainer(b, e)
	}
	start = len(b)
	b = append(b, e.Type.String()...)
	b = pad(b, len(b)-start, 12)
	start = len(b)
	// 1.2.3.4:80 or [::1]:80, as ss -tn prints them; an IPv4 peer of a
	// dual-stack socket shows as [::ffff:1.2.3.4]:80.
	b = e.Src().AppendTo(b)
	b = pad(b, len(b)-start, 25)
	start = len(b)
	if e.Listener() {
		b = append(b, '-') // a listener has no other end
	} else if (e.Hostname != "" || e.SNI != "") && !e.Inbound() {
		// example.com (93.184.216.34):443, or ~example.com when the
		// name is not from a lookup this process was seen to make
		// (hostname_source cgroup, host or hosts). Without a DNS name,
		// the TLS server name the process asked for, unmarked: its own
		// word.
		hostStart := len(b)
		b, w = appendHostname(b, e)
		hostBytes := len(b) - hostStart
		b = append(b, " ("...)
		b = e.Dst().Addr().Unmap().AppendTo(b)
		b = append(b, "):"...)
		b = strconv.AppendUint(b, uint64(e.Dst().Port()), 10)
		start += hostBytes - w // escapes widen the text, not the column
	} else {
		b = e.Dst().AppendTo(b)
	}
	if e.Type.HasDetail() || e.PeerPID != 0 {
		b = pad(b, len(b)-start, 25)
		b = appendDetail(b, e)
	}
	b = append(b, '\n')
	return t.write(b)
}

// HostnameMark is what the table puts before a hostname that another
// process resolved, or that the process's hosts file gives the address
// (JSON's hostname_source cgroup, host or hosts): the name is likely, not
// from a lookup this process was seen to make.
const HostnameMark = '~'

// appendHostname appends e's hostname (else its TLS server name),
// escaped for a terminal and marked with HostnameMark unless the process
// resolved it itself; it returns the
// columns it takes. A name that itself starts with the mark has it escaped
// (\x7e), so the mark is never ambiguous.
func appendHostname(b []byte, e *event.Event) ([]byte, int) {
	name := []byte(e.Hostname)
	w := 0
	if e.Hostname == "" {
		name = []byte(e.SNI) // the process's own: not marked
	} else if e.HostnameSource != "process" {
		b = append(b, HostnameMark)
		w++
	}
	if len(name) > 0 && name[0] == HostnameMark {
		b = append(b, `\x7e`...)
		w += 4
		name = name[1:]
	}
	b, nw := appendTerminalSafe(b, name)
	return b, w + nw
}

func (t *Table) Lost(n uint64, why event.LossReason, _ time.Time) error {
	if why == event.HookSkipped {
		t.skipped += n
	}
	_, err := fmt.Fprintf(t.diag, "tuxscope: %s\n", why.Describe(n))
	return err
}

// StillOpen says on diag how many tracked connections were still open at
// exit, when any were:
//
//	tuxscope: 3 connections still open at exit (not closed while tracing): 1 outbound, 2 inbound
func (t *Table) StillOpen(n event.OpenCount, _ time.Time) error {
	if n.Total() == 0 {
		return nil
	}
	noun := "connections"
	if n.Total() == 1 {
		noun = "connection"
	}
	why := "not closed while tracing"
	if t.skipped > 0 {
		why = "no close seen while tracing; the kernel skipped tuxscope's programs, so some may have closed unseen"
	}
	_, err := fmt.Fprintf(t.diag, "tuxscope: %d %s still open at exit (%s): %d outbound, %d inbound\n",
		n.Total(), noun, why, n.Outbound, n.Inbound)
	return err
}

// pad appends spaces after a column of width w so it takes col columns,
// at least one space.
func pad(b []byte, w, col int) []byte {
	b = append(b, ' ')
	for w++; w < col; w++ {
		b = append(b, ' ')
	}
	return b
}

// JSON is the machine-readable sink: one object per line.
type JSON struct {
	lines
	times timeCache
}

func (j *JSON) Start() error { return nil }

// timeLayout is RFC 3339 with nanoseconds, always nine digits.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

func (j *JSON) Event(e *event.Event) error {
	return j.write(appendEventJSON(j.buf[:0], e, &j.times))
}

// timeCache formats times as timeLayout, a second's date, clock and zone
// once: events come many to a second, and time.AppendFormat is most of
// a JSON line's cost.
type timeCache struct {
	sec    int64
	loc    *time.Location
	prefix []byte // "2006-01-02T15:04:05." of sec in loc
	zone   []byte // "Z07:00" of sec in loc
}

// appendTime appends t as t.AppendFormat(b, timeLayout) does; a nil c
// caches nothing.
func (c *timeCache) appendTime(b []byte, t time.Time) []byte {
	if c == nil {
		return t.AppendFormat(b, timeLayout)
	}
	if sec, loc := t.Unix(), t.Location(); c.prefix == nil || sec != c.sec || loc != c.loc {
		full := t.AppendFormat(nil, timeLayout)
		dot := bytes.IndexByte(full, '.')
		if dot < 0 || len(full) < dot+10 { // not the layout's shape: no cache
			c.prefix = nil
			return append(b, full...)
		}
		c.sec, c.loc = sec, loc
		c.prefix, c.zone = full[:dot+1], full[dot+10:]
	}
	b = append(b, c.prefix...)
	var frac [9]byte
	ns := t.Nanosecond()
	for i := len(frac) - 1; i >= 0; i-- {
		frac[i] = byte('0' + ns%10)
		ns /= 10
	}
	b = append(b, frac[:]...)
	return append(b, c.zone...)
}

// appendEventJSON appends e as one JSON line, newline included, its time
// formatted through tc (nil: none).
func appendEventJSON(b []byte, e *event.Event, tc *timeCache) []byte {
	b = append(b, `{"time":"`...)
	b = tc.appendTime(b, e.Time)
	b = append(b, `","timestamp_ns":`...)
	b = strconv.AppendUint(b, e.TimestampNs, 10)
	b = append(b, `,"event_type":"`...)
	b = append(b, e.Type.String()...)
	b = append(b, `","pid":`...)
	b = strconv.AppendUint(b, uint64(e.PID), 10)
	b = append(b, `,"tid":`...)
	b = strconv.AppendUint(b, uint64(e.TID), 10)
	b = append(b, `,"uid":`...)
	b = strconv.AppendUint(b, uint64(e.UID), 10)
	b = append(b, `,"comm":`...)
	b = appendJSONString(b, e.Comm())
	if t := e.Thread(); t != nil {
		b = append(b, `,"thread":`...)
		b = appendJSONString(b, t)
	}
	if e.OpenerPID != 0 {
		b = append(b, `,"opener_pid":`...)
		b = strconv.AppendUint(b, uint64(e.OpenerPID), 10)
		b = append(b, `,"opener_comm":`...)
		b = appendJSONString(b, e.OpenerComm())
	}
	if e.PeerPID != 0 {
		b = append(b, `,"peer_pid":`...)
		b = strconv.AppendUint(b, uint64(e.PeerPID), 10)
		b = append(b, `,"peer_comm":`...)
		b = appendJSONString(b, e.PeerComm())
	}
	b = append(b, `,"family":`...)
	b = strconv.AppendUint(b, uint64(e.Family), 10)
	if e.UDP() { // TCP's records keep their keys: no proto means tcp
		b = append(b, `,"proto":"udp"`...)
	}
	src, dst := e.Src(), e.Dst()
	b = append(b, `,"saddr":"`...)
	b = src.Addr().AppendTo(b)
	b = append(b, `","sport":`...)
	b = strconv.AppendUint(b, uint64(src.Port()), 10)
	b = append(b, `,"daddr":"`...)
	b = dst.Addr().AppendTo(b) // a listener's: "", port 0
	b = append(b, `","dport":`...)
	b = strconv.AppendUint(b, uint64(dst.Port()), 10)
	b = append(b, `,"direction":"`...)
	b = append(b, e.Direction()...)
	b = append(b, '"')
	if e.Hostname != "" {
		b = append(b, `,"hostname":`...)
		b = appendJSONString(b, []byte(e.Hostname))
		b = append(b, `,"hostname_source":"`...)
		b = append(b, e.HostnameSource...)
		b = append(b, '"')
		if len(e.HostnameAlso) > 0 {
			b = append(b, `,"hostname_also":[`...)
			for i, n := range e.HostnameAlso {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, []byte(n))
			}
			b = append(b, ']')
		}
	}
	if e.SNI != "" {
		b = append(b, `,"sni":`...)
		b = appendJSONString(b, []byte(e.SNI))
	}
	if len(e.ALPN) > 0 {
		b = append(b, `,"alpn":[`...)
		for i, p := range e.ALPN {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, []byte(p))
		}
		b = append(b, ']')
	}
	b = appendContainerJSON(b, e)
	b = appendLifecycleJSON(b, e)
	return append(b, "}\n"...)
}

// appendLifecycleJSON adds the keys of established, failed and close
// events: latency_ns; error and reason; duration_ns (when known),
// bytes_sent, bytes_received, closed_by.
func appendLifecycleJSON(b []byte, e *event.Event) []byte {
	switch e.Type {
	case event.DNS:
		if d := e.DNSInfo; d != nil {
			b = append(b, `,"query":`...)
			b = appendJSONString(b, []byte(d.Name))
			b = append(b, `,"qtype":"`...)
			b = append(b, d.QType...)
			b = append(b, `","rcode":"`...)
			b = append(b, d.RCode...)
			b = append(b, `","answers":[`...)
			for i, a := range d.Answers {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, []byte(a))
			}
			b = append(b, `],"cnames":[`...)
			for i, c := range d.CNAMEs {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, []byte(c))
			}
			b = append(b, `],"ttl":`...)
			b = strconv.AppendUint(b, uint64(d.TTL), 10)
			if e.LatencyNs > 0 {
				b = append(b, `,"latency_ns":`...)
				b = strconv.AppendUint(b, e.LatencyNs, 10)
			}
		}
		return b
	case event.Existing:
		b = appendStateJSON(b, e)
		if e.Listener() {
			return appendListenerJSON(b, e)
		}
		return appendHealthJSON(b, e)
	case event.Listen, event.Unlisten:
		return appendListenerJSON(b, e)
	case event.Retransmit:
		b = append(b, `,"retransmits":`...)
		b = strconv.AppendUint(b, uint64(e.Retransmits), 10)
		b = append(b, `,"retrans_segs":`...)
		b = strconv.AppendUint(b, uint64(e.RetransSegs), 10)
		return appendStateJSON(b, e)
	case event.Reset:
		b = append(b, `,"reset_by":"`...)
		b = append(b, e.ResetBy()...)
		b = append(b, '"')
		return appendStateJSON(b, e)
	case event.Update:
		return appendUpdateJSON(b, e)
	case event.UDPClose:
		for _, kv := range [...]struct {
			key string
			v   uint64
		}{
			{`,"duration_ns":`, e.DurationNs},
			{`,"packets_sent":`, e.PacketsSent}, {`,"packets_received":`, e.PacketsReceived},
			{`,"bytes_sent":`, e.BytesSent}, {`,"bytes_received":`, e.BytesReceived},
		} {
			b = append(b, kv.key...)
			b = strconv.AppendUint(b, kv.v, 10)
		}
		if e.UDPEnd != "" {
			b = append(b, `,"end":"`...)
			b = append(b, e.UDPEnd...)
			b = append(b, '"')
		}
		return b
	case event.Established, event.Failed:
		b = append(b, `,"latency_ns":`...)
		b = strconv.AppendUint(b, e.LatencyNs, 10)
		if e.Type == event.Established {
			b = append(b, `,"syn_retrans":`...)
			b = strconv.AppendUint(b, uint64(e.SynRetrans), 10)
		}
	case event.Close:
		if e.DurationNs > 0 {
			b = append(b, `,"duration_ns":`...)
			b = strconv.AppendUint(b, e.DurationNs, 10)
		}
		b = append(b, `,"bytes_sent":`...)
		b = strconv.AppendUint(b, e.BytesSent, 10)
		b = append(b, `,"bytes_received":`...)
		b = strconv.AppendUint(b, e.BytesReceived, 10)
		if by := e.ClosedBy(); by != "" {
			b = append(b, `,"closed_by":"`...)
			b = append(b, by...)
			b = append(b, '"')
		}
		if e.Reset() {
			b = append(b, `,"reset":true`...)
		}
		b = appendHealthJSON(b, e)
	default:
		return b
	}
	if e.Type == event.Failed || e.Error != 0 {
		b = append(b, `,"reason":"`...)
		b = append(b, Reason(e.Error)...)
		b = append(b, '"')
		if e.Error != 0 {
			b = append(b, `,"error":"`...)
			b = append(b, ErrnoName(e.Error)...)
			b = append(b, '"')
		}
	}
	return b
}

// appendListenerJSON adds a listener's keys: backlog, and v6only for an
// IPv6 listener that takes no IPv4 connections.
func appendListenerJSON(b []byte, e *event.Event) []byte {
	b = append(b, `,"backlog":`...)
	b = strconv.AppendUint(b, uint64(e.Backlog), 10)
	if e.Flags&event.FlagV6Only != 0 {
		b = append(b, `,"v6only":true`...)
	}
	return b
}

// appendUpdateJSON adds an update's keys: the state, the totals, the
// period and what it saw, the rates, RTT and retransmits.
func appendUpdateJSON(b []byte, e *event.Event) []byte {
	b = append(b, `,"state":"`...)
	b = append(b, event.TCPStateName(e.State)...)
	for _, kv := range [...]struct {
		key string
		v   uint64
	}{
		{`","bytes_sent":`, e.BytesSent}, {`,"bytes_received":`, e.BytesReceived},
		{`,"period_ns":`, e.PeriodNs},
		{`,"period_bytes_sent":`, e.PeriodBytesSent}, {`,"period_bytes_received":`, e.PeriodBytesReceived},
		{`,"send_bytes_per_s":`, e.SendRate()}, {`,"receive_bytes_per_s":`, e.ReceiveRate()},
		{`,"srtt_us":`, uint64(e.SRTTUs)}, {`,"rttvar_us":`, uint64(e.RTTVarUs)},
		{`,"period_retrans":`, uint64(e.PeriodRetrans)}, {`,"retrans_segs":`, uint64(e.RetransSegs)},
	} {
		b = append(b, kv.key...)
		b = strconv.AppendUint(b, kv.v, 10)
	}
	return b
}

func appendStateJSON(b []byte, e *event.Event) []byte {
	b = append(b, `,"state":"`...)
	b = append(b, event.TCPStateName(e.State)...)
	return append(b, '"')
}

// appendHealthJSON adds a close's or existing connection's srtt_us,
// rttvar_us, retrans_segs and bytes_retrans.
func appendHealthJSON(b []byte, e *event.Event) []byte {
	b = append(b, `,"srtt_us":`...)
	b = strconv.AppendUint(b, uint64(e.SRTTUs), 10)
	b = append(b, `,"rttvar_us":`...)
	b = strconv.AppendUint(b, uint64(e.RTTVarUs), 10)
	b = append(b, `,"retrans_segs":`...)
	b = strconv.AppendUint(b, uint64(e.RetransSegs), 10)
	b = append(b, `,"bytes_retrans":`...)
	return strconv.AppendUint(b, e.BytesRetrans, 10)
}

func (j *JSON) Lost(n uint64, why event.LossReason, at time.Time) error {
	return j.write(appendLostJSON(j.buf[:0], n, why, at))
}

// appendLostJSON appends a loss notice as one JSON line: lost, or
// dns_dropped for a DNS reason, tls_dropped for a TLS one.
func appendLostJSON(b []byte, n uint64, why event.LossReason, at time.Time) []byte {
	b = append(b, `{"time":"`...)
	b = at.AppendFormat(b, timeLayout)
	switch {
	case why.DNS():
		b = append(b, `","event_type":"dns_dropped","count":`...)
	case why.TLS():
		b = append(b, `","event_type":"tls_dropped","count":`...)
	default:
		b = append(b, `","event_type":"lost","count":`...)
	}
	b = strconv.AppendUint(b, n, 10)
	b = append(b, `,"reason":"`...)
	b = append(b, why.Key()...)
	return append(b, "\"}\n"...)
}

// StillOpen writes, in band, how many tracked connections were still open
// at exit, also when none were:
//
//	{"time":"...","event_type":"open_at_exit","count":3,"outbound":1,"inbound":2}
func (j *JSON) StillOpen(n event.OpenCount, at time.Time) error {
	return j.write(appendStillOpenJSON(j.buf[:0], n, at))
}

// appendStillOpenJSON appends the open_at_exit record as one JSON line.
func appendStillOpenJSON(b []byte, n event.OpenCount, at time.Time) []byte {
	b = append(b, `{"time":"`...)
	b = at.AppendFormat(b, timeLayout)
	b = append(b, `","event_type":"open_at_exit","count":`...)
	b = strconv.AppendUint(b, n.Total(), 10)
	b = append(b, `,"outbound":`...)
	b = strconv.AppendUint(b, n.Outbound, 10)
	b = append(b, `,"inbound":`...)
	b = strconv.AppendUint(b, n.Inbound, 10)
	return append(b, "}\n"...)
}

// appendContainerJSON appends the cgroup keys that are known. Cgroup paths
// are the kernel's (any bytes but NUL), hence escaped.
func appendContainerJSON(b []byte, e *event.Event) []byte {
	for _, kv := range [...]struct{ key, v string }{
		{`,"cgroup":`, e.Cgroup}, {`,"container_id":`, e.ContainerID}, {`,"runtime":`, e.Runtime},
		{`,"pod_uid":`, e.PodUID}, {`,"container":`, e.ContainerName},
		{`,"pod":`, e.Pod}, {`,"namespace":`, e.Namespace},
	} {
		if kv.v != "" {
			b = append(b, kv.key...)
			b = appendJSONString(b, []byte(kv.v))
		}
	}
	return b
}

package output

import (
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tuxscope/tuxscope/internal/event"
)

// Reason is a failed connect's (or a reset close's) errno in words.
func Reason(errno uint32) string {
	switch syscall.Errno(errno) {
	case 0:
		return "aborted" // the socket was closed before the handshake completed
	case unix.ECONNREFUSED:
		return "refused"
	case unix.ETIMEDOUT:
		return "timed out"
	case unix.EHOSTUNREACH:
		return "host unreachable"
	case unix.ENETUNREACH:
		return "network unreachable"
	case unix.ECONNRESET:
		return "reset"
	case unix.ECONNABORTED:
		return "connection aborted"
	case unix.EPIPE:
		return "broken pipe"
	}
	return "error"
}

// ErrnoName is "ECONNREFUSED" for 111, "errno 999" for unknown values.
func ErrnoName(errno uint32) string {
	if name := unix.ErrnoName(syscall.Errno(errno)); name != "" {
		return name
	}
	return "errno " + strconv.FormatUint(uint64(errno), 10)
}

// appendDetail writes the table's DETAIL column, and the other end's
// process when it is known (", peer nginx/5370", or alone for a connect
// or accept).
func appendDetail(b []byte, e *event.Event) []byte {
	start := len(b)
	b = appendTypeDetail(b, e)
	if e.PeerPID != 0 {
		if len(b) > start {
			b = append(b, ", "...)
		}
		b = append(b, "peer "...)
		b, _ = appendTerminalSafe(b, e.PeerComm())
		b = append(b, '/')
		b = strconv.AppendUint(b, uint64(e.PeerPID), 10)
	}
	return b
}

// appendTypeDetail writes what an event's type adds to DETAIL:
//
//	established  latency 85.0µs
//	failed       refused (ECONNREFUSED) after 85.0µs
//	close        1.20s, sent 1024, received 2048, closed by remote
//	close        5.00s, sent 0, received 9, closed by local (reset), opened by sshd/812
//	close        1.20s, sent 1048576, received 0, closed by local, rtt 1.52ms, 3 retrans
//	retransmit   3 retrans (7 in all), ESTABLISHED
//	reset        by remote, ESTABLISHED
//	listen       backlog 4096
//	existing     state LISTEN, backlog 511, v6only
//	update       sent 1.00MB/s, received 3.40kB/s, rtt 1.20ms, 2 retrans
func appendTypeDetail(b []byte, e *event.Event) []byte {
	switch e.Type {
	case event.Update:
		b = append(b, "sent "...)
		b = AppendByteRate(b, e.SendRate())
		b = append(b, ", received "...)
		b = AppendByteRate(b, e.ReceiveRate())
		if e.SRTTUs > 0 {
			b = append(b, ", rtt "...)
			b = AppendDuration(b, uint64(e.SRTTUs)*1000)
		}
		if e.PeriodRetrans > 0 {
			b = append(b, ", "...)
			b = strconv.AppendUint(b, uint64(e.PeriodRetrans), 10)
			b = append(b, " retrans"...)
		}
		if e.State != 0 && e.State != 1 { // closing: say so
			b = append(b, ", "...)
			b = append(b, event.TCPStateName(e.State)...)
		}
	case event.DNS:
		if d := e.DNSInfo; d != nil {
			b, _ = appendTerminalSafe(b, []byte(d.Name))
			b = append(b, ' ')
			b = append(b, d.QType...)
			b = append(b, ' ')
			b = append(b, d.RCode...)
			for i, c := range d.CNAMEs {
				if i == 0 {
					b = append(b, " via "...)
				} else {
					b = append(b, ", "...)
				}
				b, _ = appendTerminalSafe(b, []byte(c))
			}
			for i, a := range d.Answers {
				if i == 0 {
					b = append(b, " -> "...)
				} else {
					b = append(b, ", "...)
				}
				b = append(b, a...)
			}
			if e.LatencyNs > 0 {
				b = append(b, " in "...)
				b = AppendDuration(b, e.LatencyNs)
			}
		}
	case event.Existing:
		b = append(b, "state "...)
		b = append(b, event.TCPStateName(e.State)...)
		if e.Listener() {
			b = append(b, ", "...)
			b = appendBacklog(b, e)
		} else {
			b = appendHealth(b, e)
		}
	case event.Listen, event.Unlisten:
		b = appendBacklog(b, e)
	case event.Established:
		b = append(b, "latency "...)
		b = AppendDuration(b, e.LatencyNs)
		if e.SynRetrans > 0 {
			b = append(b, ", "...)
			b = strconv.AppendUint(b, uint64(e.SynRetrans), 10)
			b = append(b, " SYN retrans"...)
		}
	case event.Retransmit:
		b = strconv.AppendUint(b, uint64(e.Retransmits), 10)
		b = append(b, " retrans"...)
		if e.RetransSegs > e.Retransmits {
			b = append(b, " ("...)
			b = strconv.AppendUint(b, uint64(e.RetransSegs), 10)
			b = append(b, " in all)"...)
		}
		b = append(b, ", "...)
		b = append(b, event.TCPStateName(e.State)...)
	case event.Reset:
		b = append(b, "by "...)
		b = append(b, e.ResetBy()...)
		b = append(b, ", "...)
		b = append(b, event.TCPStateName(e.State)...)
	case event.UDPClose:
		b = AppendDuration(b, e.DurationNs)
		b = append(b, ", sent "...)
		b = strconv.AppendUint(b, e.PacketsSent, 10)
		b = append(b, " packets ("...)
		b = strconv.AppendUint(b, e.BytesSent, 10)
		b = append(b, " bytes), received "...)
		b = strconv.AppendUint(b, e.PacketsReceived, 10)
		b = append(b, " packets ("...)
		b = strconv.AppendUint(b, e.BytesReceived, 10)
		b = append(b, " bytes)"...)
		if e.UDPEnd != "" {
			b = append(b, ", "...)
			b = append(b, e.UDPEnd...)
		}
	case event.Failed:
		b = append(b, Reason(e.Error)...)
		if e.Error != 0 {
			b = append(b, " ("...)
			b = append(b, ErrnoName(e.Error)...)
			b = append(b, ')')
		}
		b = append(b, " after "...)
		b = AppendDuration(b, e.LatencyNs)
	case event.Close:
		if e.DurationNs > 0 {
			b = AppendDuration(b, e.DurationNs)
		} else {
			b = append(b, "duration ?"...)
		}
		b = append(b, ", sent "...)
		b = strconv.AppendUint(b, e.BytesSent, 10)
		b = append(b, ", received "...)
		b = strconv.AppendUint(b, e.BytesReceived, 10)
		if by := e.ClosedBy(); by != "" {
			b = append(b, ", closed by "...)
			b = append(b, by...)
			if e.Reset() && e.Error == 0 { // a reset this side sent
				if by == "local" {
					b = append(b, " (reset)"...)
				} else {
					b = append(b, ", then reset by local"...)
				}
			}
		}
		if e.OpenerPID != 0 {
			b = append(b, ", opened by "...)
			b, _ = appendTerminalSafe(b, e.OpenerComm())
			b = append(b, '/')
			b = strconv.AppendUint(b, uint64(e.OpenerPID), 10)
		}
		if e.Error != 0 {
			b = append(b, ", "...)
			b = append(b, Reason(e.Error)...)
			b = append(b, " ("...)
			b = append(b, ErrnoName(e.Error)...)
			b = append(b, ')')
		}
		b = appendHealth(b, e)
	}
	return b
}

// appendHealth adds a connection's RTT and retransmits, when known and
// not zero: ", rtt 1.52ms, 3 retrans".
func appendHealth(b []byte, e *event.Event) []byte {
	if e.SRTTUs > 0 {
		b = append(b, ", rtt "...)
		b = AppendDuration(b, uint64(e.SRTTUs)*1000)
	}
	if e.RetransSegs > 0 {
		b = append(b, ", "...)
		b = strconv.AppendUint(b, uint64(e.RetransSegs), 10)
		b = append(b, " retrans"...)
	}
	return b
}

// AppendByteRate writes bytes per second with three significant digits,
// in decimal units: 850B/s, 1.20kB/s, 12.3MB/s, 1.00GB/s.
func AppendByteRate(b []byte, perSec uint64) []byte {
	return append(appendSI(b, float64(perSec), rateUnits), "/s"...)
}

// appendSI writes v in the largest unit (each 1000 times the one before)
// that keeps it under 1000, with three significant digits; whole numbers
// in the first unit.
func appendSI(b []byte, v float64, units []string) []byte {
	u := 0
	for u < len(units)-1 && v >= 999.5 {
		v /= 1000
		u++
	}
	prec := 0
	if u > 0 { // rounding may carry into the next decade: 9.999 -> 10.0
		switch {
		case v < 9.995:
			prec = 2
		case v < 99.95:
			prec = 1
		}
	}
	b = appendFixed(b, v, prec)
	return append(b, units[u]...)
}

// appendFixed is strconv.AppendFloat(b, v, 'f', prec, 64) for prec 0-2,
// without its cost where the rounding is plain: v·10^prec is rounded in
// integers unless it is within a hair of a half, where AppendFloat
// decides (it rounds v's exact binary value).
func appendFixed(b []byte, v float64, prec int) []byte {
	scale := [...]float64{1, 10, 100}[prec]
	x := v * scale
	if !(x >= 0 && x < 1e15) {
		return strconv.AppendFloat(b, v, 'f', prec, 64)
	}
	n := uint64(x)
	frac := x - float64(n)
	switch {
	case frac > 0.5-1e-6 && frac < 0.5+1e-6:
		return strconv.AppendFloat(b, v, 'f', prec, 64)
	case frac > 0.5:
		n++
	}
	if prec == 0 {
		return strconv.AppendUint(b, n, 10)
	}
	var digits [24]byte
	d := strconv.AppendUint(digits[:0], n, 10)
	for len(d) <= prec { // 0.05 -> 005 -> 0.05
		d = append(d[:1], d...)
		d[0] = '0'
	}
	b = append(b, d[:len(d)-prec]...)
	b = append(b, '.')
	return append(b, d[len(d)-prec:]...)
}

// appendBacklog writes a listener's backlog, and v6only for an IPv6 one
// that takes no IPv4 connections.
func appendBacklog(b []byte, e *event.Event) []byte {
	b = append(b, "backlog "...)
	b = strconv.AppendUint(b, uint64(e.Backlog), 10)
	if e.Flags&event.FlagV6Only != 0 {
		b = append(b, ", v6only"...)
	}
	return b
}

// AppendDuration writes ns with three significant digits: 850ns, 85.0µs,
// 1.23ms, 12.3s; seconds past 999s stay whole (1234s).
func AppendDuration(b []byte, ns uint64) []byte {
	return appendSI(b, float64(ns), durationUnits)
}

var durationUnits = []string{"ns", "µs", "ms", "s"}
var rateUnits = []string{"B", "kB", "MB", "GB", "TB"}

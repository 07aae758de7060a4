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
		return "aborted"
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

// appendDetail writes the table's DETAIL column for lifecycle events:
//
//	established  latency 85µs
//	failed       refused (ECONNREFUSED) after 85µs
//	close        1.20s, sent 1024, received 2048, closed by remote
func appendDetail(b []byte, e *event.Event) []byte {
	switch e.Type {
	case event.Established:
		b = append(b, "latency "...)
		b = appendDuration(b, e.LatencyNs)
	case event.Failed:
		b = append(b, Reason(e.Error)...)
		if e.Error != 0 {
			b = append(b, " ("...)
			b = append(b, ErrnoName(e.Error)...)
			b = append(b, ')')
		}
		b = append(b, " after "...)
		b = appendDuration(b, e.LatencyNs)
	case event.Close:
		if e.DurationNs > 0 {
			b = appendDuration(b, e.DurationNs)
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
		}
		if e.Error != 0 {
			b = append(b, ", "...)
			b = append(b, Reason(e.Error)...)
			b = append(b, " ("...)
			b = append(b, ErrnoName(e.Error)...)
			b = append(b, ')')
		}
	}
	return b
}

// appendDuration writes ns with three significant digits: 850ns, 85.0µs,
// 1.23ms, 12.3s; whole seconds past 1000s.
func appendDuration(b []byte, ns uint64) []byte {
	units := []struct {
		div  float64
		name string
	}{{1, "ns"}, {1e3, "µs"}, {1e6, "ms"}, {1e9, "s"}}
	u := units[0]
	for _, c := range units[1:] {
		if float64(ns) >= c.div {
			u = c
		}
	}
	v := float64(ns) / u.div
	prec := 0
	switch {
	case u.div == 1:
	case v < 10:
		prec = 2
	case v < 100:
		prec = 1
	}
	b = strconv.AppendFloat(b, v, 'f', prec, 64)
	return append(b, u.name...)
}

// Package tcpinfo reads the kernel's tcp_info for the TCP sockets of this
// network namespace, as `ss -ti` does: one sock_diag dump (netlink,
// INET_DIAG_INFO) per call, so its cost is per call, not per packet.
package tcpinfo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// TCP states (include/net/tcp_states.h) whose sockets are full sockets
// with a tcp_info: the connection's data phase and its closing states
// (TIME_WAIT and SYN_RECV have mini sockets without one).
const (
	stateEstablished = 1
	stateFinWait1    = 4
	stateFinWait2    = 5
	stateCloseWait   = 8
	stateLastAck     = 9
	stateClosing     = 11
)

// States is the state mask the dump asks for.
const States = 1<<stateEstablished | 1<<stateFinWait1 | 1<<stateFinWait2 |
	1<<stateCloseWait | 1<<stateLastAck | 1<<stateClosing

// Sample is one socket's identity and counters as a dump reported them.
type Sample struct {
	Family        uint8          // 4 or 6
	State         uint8          // TCP state
	Local, Remote netip.AddrPort // as the socket sees them
	Inode         uint32         // the socket's inode number; 0: orphaned (closed by its process)
	Cookie        uint64         // the socket's cookie (the dump assigns one if it had none)
	UID           uint32

	// BytesSent is data bytes sent, each once (tcpi_bytes_sent less
	// tcpi_bytes_retrans), as close events count them; on kernels before
	// 4.19, which lack those, the bytes acknowledged (tcpi_bytes_acked).
	BytesSent uint64
	// BytesReceived is data bytes received (tcpi_bytes_received less the
	// peer's FIN, which TCP counts as a byte), as close events count them.
	BytesReceived uint64
	SRTTUs        uint32 // tcpi_rtt: smoothed RTT, µs
	RTTVarUs      uint32 // tcpi_rttvar: its mean deviation, µs
	RetransSegs   uint32 // tcpi_total_retrans: segments retransmitted in all
	BytesRetrans  uint64 // tcpi_bytes_retrans (4.19+; 0 before)
}

// Offsets in struct inet_diag_msg and struct tcp_info
// (include/uapi/linux/inet_diag.h, tcp.h): both only grow at their end.
const (
	inetDiagInfo  = 2 // INET_DIAG_INFO: the attribute holding struct tcp_info
	sizeofDiagMsg = 72
	sizeofDiagReq = 56

	tiRTT           = 68
	tiRTTVar        = 72
	tiTotalRetrans  = 100
	tiBytesAcked    = 120
	tiBytesReceived = 128 // Linux 4.1: the oldest tcp_info read
	tiBytesSent     = 200
	tiBytesRetrans  = 208 // Linux 4.19
	tiMinLen        = tiBytesReceived + 8
)

// request is struct inet_diag_req_v2 for a TCP dump with INET_DIAG_INFO.
type request struct{ family uint8 }

func (r *request) Len() int { return sizeofDiagReq }

func (r *request) Serialize() []byte {
	b := make([]byte, sizeofDiagReq)
	b[0] = r.family
	b[1] = unix.IPPROTO_TCP
	b[2] = 1 << (inetDiagInfo - 1) // idiag_ext
	binary.NativeEndian.PutUint32(b[4:], States)
	return b
}

// ErrUnavailable says the kernel has no TCP socket diagnostics.
var ErrUnavailable = errors.New("the kernel's TCP socket diagnostics are not available (load the tcp_diag module: modprobe tcp_diag)")

// Dump calls fn for every TCP socket of this network namespace in a
// state of States that has a tcp_info, IPv4 then IPv6, until fn returns
// false (the rest of the dump is read and dropped). A dump the kernel
// interrupted (sockets came or went meanwhile) is not an error: each
// socket reported is consistent, some may be missing.
func Dump(fn func(*Sample) bool) error {
	var s Sample
	stop := false
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if stop {
			break
		}
		req := nl.NewNetlinkRequest(nl.SOCK_DIAG_BY_FAMILY, unix.NLM_F_DUMP)
		req.AddData(&request{family: family})
		err := req.ExecuteIter(unix.NETLINK_INET_DIAG, nl.SOCK_DIAG_BY_FAMILY, func(msg []byte) bool {
			if !Parse(msg, &s) {
				return true
			}
			if !fn(&s) {
				stop = true
				return false
			}
			return true
		})
		if errors.Is(err, unix.ENOENT) {
			return ErrUnavailable
		}
		if err != nil && !errors.Is(err, nl.ErrDumpInterrupted) {
			return fmt.Errorf("reading tcp_info (sock_diag): %w", err)
		}
	}
	return nil
}

// Parse decodes one sock_diag message (struct inet_diag_msg and its
// attributes) into s; false if it is malformed or has no tcp_info.
func Parse(msg []byte, s *Sample) bool {
	if len(msg) < sizeofDiagMsg {
		return false
	}
	*s = Sample{State: msg[1]}
	sport := binary.BigEndian.Uint16(msg[4:])
	dport := binary.BigEndian.Uint16(msg[6:])
	switch msg[0] {
	case unix.AF_INET:
		s.Family = 4
		s.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(msg[8:12])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(msg[24:28])), dport)
	case unix.AF_INET6:
		s.Family = 6
		s.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(msg[8:24])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(msg[24:40])), dport)
	default:
		return false
	}
	s.Cookie = uint64(binary.NativeEndian.Uint32(msg[44:])) | uint64(binary.NativeEndian.Uint32(msg[48:]))<<32
	s.UID = binary.NativeEndian.Uint32(msg[64:])
	s.Inode = binary.NativeEndian.Uint32(msg[68:])
	for attrs := msg[sizeofDiagMsg:]; len(attrs) >= unix.SizeofRtAttr; {
		l := int(binary.NativeEndian.Uint16(attrs))
		typ := binary.NativeEndian.Uint16(attrs[2:])
		if l < unix.SizeofRtAttr || l > len(attrs) {
			return false
		}
		if typ == inetDiagInfo {
			return s.info(attrs[unix.SizeofRtAttr:l])
		}
		attrs = attrs[min(len(attrs), (l+unix.NLA_ALIGNTO-1)&^(unix.NLA_ALIGNTO-1)):]
	}
	return false
}

// info takes the counters from a struct tcp_info of any kernel's length.
func (s *Sample) info(ti []byte) bool {
	if len(ti) < tiMinLen {
		return false
	}
	u32 := func(off int) uint32 { return binary.NativeEndian.Uint32(ti[off:]) }
	u64 := func(off int) uint64 { return binary.NativeEndian.Uint64(ti[off:]) }
	s.SRTTUs, s.RTTVarUs, s.RetransSegs = u32(tiRTT), u32(tiRTTVar), u32(tiTotalRetrans)
	s.BytesReceived = u64(tiBytesReceived)
	switch s.State {
	case stateCloseWait, stateLastAck, stateClosing: // the peer's FIN came
		if s.BytesReceived > 0 {
			s.BytesReceived--
		}
	}
	if len(ti) >= tiBytesRetrans+8 {
		s.BytesRetrans = u64(tiBytesRetrans)
		s.BytesSent = u64(tiBytesSent) - min(u64(tiBytesSent), s.BytesRetrans)
	} else {
		s.BytesSent = u64(tiBytesAcked) // what the peer acknowledged
	}
	return true
}

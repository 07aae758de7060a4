package event

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"github.com/tuxscope/tuxscope/internal/bpf"
)

// The record layout is bpf2go's Go rendering of struct event in
// internal/bpf/event.h; the offsets below are taken from it, so the C header
// stays the only definition. Decoding reads fields at those offsets: no
// reflection, no allocation.
var layout bpf.TuxscopeEvent

const (
	recordSize = int(unsafe.Sizeof(layout))
	offTs      = unsafe.Offsetof(layout.TsNs)
	offPid     = unsafe.Offsetof(layout.Pid)
	offTid     = unsafe.Offsetof(layout.Tid)
	offUid     = unsafe.Offsetof(layout.Uid)
	offFamily  = unsafe.Offsetof(layout.Family)
	offType    = unsafe.Offsetof(layout.Type)
	offLport   = unsafe.Offsetof(layout.Lport)
	offRport   = unsafe.Offsetof(layout.Rport)
	offLaddr   = unsafe.Offsetof(layout.Laddr)
	offRaddr   = unsafe.Offsetof(layout.Raddr)
	offComm    = unsafe.Offsetof(layout.Comm)
	offFlags   = unsafe.Offsetof(layout.Flags)
	offError   = unsafe.Offsetof(layout.Error)
	offLatency = unsafe.Offsetof(layout.LatencyNs)
	offDur     = unsafe.Offsetof(layout.DurationNs)
	offSent    = unsafe.Offsetof(layout.BytesSent)
	offRecv    = unsafe.Offsetof(layout.BytesReceived)
	offCookie  = unsafe.Offsetof(layout.Cookie)
	offCgroup  = unsafe.Offsetof(layout.CgroupId)
)

// The DNS record's layout, from bpf2go's rendering of struct dns_event.
var dnsLayout bpf.TuxscopeDnsEvent

const (
	dnsHeaderSize = int(unsafe.Offsetof(dnsLayout.Data))
	offDNSDir     = unsafe.Offsetof(dnsLayout.Direction)
	offDNSLen     = unsafe.Offsetof(dnsLayout.Len)
	offDNSCookie  = unsafe.Offsetof(dnsLayout.Cookie)
	offDNSCgroup  = unsafe.Offsetof(dnsLayout.CgroupId)
	offDNSTotal   = unsafe.Offsetof(dnsLayout.TotalLen)
	offDNSProto   = unsafe.Offsetof(dnsLayout.Protocol)
	offDNSData    = unsafe.Offsetof(dnsLayout.Data)
)

// The shared prefix: struct dns_event starts like struct event.
var _ = [1]struct{}{}[offType-unsafe.Offsetof(dnsLayout.Type)]

const (
	afInet  = 2
	afInet6 = 10
)

// ErrShortRecord means a record smaller than struct event.
var ErrShortRecord = errors.New("short record")

// Decode fills e from one ring-buffer record. The record comes from the
// kernel but is still checked: short records, unknown types and unknown
// families are errors.
func Decode(b []byte, e *Event) error {
	if len(b) < recordSize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrShortRecord, len(b), recordSize)
	}
	ne := binary.NativeEndian
	t := Type(b[offType])
	if t == DNS {
		return decodeDNS(b, e)
	}
	if t < Connect || t > Close {
		return fmt.Errorf("unknown event type %d", b[offType])
	}
	*e = Event{Type: t} // a reused Event keeps nothing from the last record
	e.Flags = Flags(b[offFlags])
	if errno := int32(ne.Uint32(b[offError:])); errno > 0 {
		e.Error = uint32(errno)
	} else {
		e.Error = 0
	}
	e.LatencyNs = ne.Uint64(b[offLatency:])
	e.DurationNs = ne.Uint64(b[offDur:])
	e.BytesSent = ne.Uint64(b[offSent:])
	e.BytesReceived = ne.Uint64(b[offRecv:])
	e.Cookie = ne.Uint64(b[offCookie:])
	e.CgroupID = ne.Uint64(b[offCgroup:])
	return decodeCommon(b, e)
}

// decodeCommon reads the prefix both records share: times, owner,
// addresses, ports, comm.
func decodeCommon(b []byte, e *Event) error {
	ne := binary.NativeEndian
	e.TimestampNs = ne.Uint64(b[offTs:])
	e.PID = ne.Uint32(b[offPid:])
	e.TID = ne.Uint32(b[offTid:])
	e.UID = ne.Uint32(b[offUid:])
	lport := ne.Uint16(b[offLport:])
	rport := ne.Uint16(b[offRport:])
	switch family := ne.Uint16(b[offFamily:]); family {
	case afInet:
		e.Family = 4
		e.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[offLaddr:offLaddr+4])), lport)
		e.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[offRaddr:offRaddr+4])), rport)
	case afInet6:
		e.Family = 6
		e.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[offLaddr:offLaddr+16])), lport)
		e.Remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[offRaddr:offRaddr+16])), rport)
	default:
		return fmt.Errorf("unknown address family %d", family)
	}
	comm := b[offComm : offComm+16]
	n := 0
	for n < len(comm) && comm[n] != 0 {
		n++
	}
	e.commLen = uint8(copy(e.comm[:], comm[:n]))
	return nil
}

// decodeDNS reads a struct dns_event.
func decodeDNS(b []byte, e *Event) error {
	if len(b) < dnsHeaderSize {
		return fmt.Errorf("%w: %d bytes, want at least %d for a DNS record", ErrShortRecord, len(b), dnsHeaderSize)
	}
	ne := binary.NativeEndian
	*e = Event{Type: DNS}
	e.DNSResponse = b[offDNSDir] == 1
	e.Protocol = b[offDNSProto]
	e.Cookie = ne.Uint64(b[offDNSCookie:])
	e.CgroupID = ne.Uint64(b[offDNSCgroup:])
	e.PayloadLen = ne.Uint32(b[offDNSTotal:])
	n := int(ne.Uint32(b[offDNSLen:]))
	if n > len(b)-int(offDNSData) {
		return fmt.Errorf("DNS record claims %d payload bytes, has %d", n, len(b)-int(offDNSData))
	}
	e.Payload = b[offDNSData : int(offDNSData)+n]
	return decodeCommon(b, e)
}

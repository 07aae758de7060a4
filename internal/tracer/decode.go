package tracer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"github.com/tuxscope/tuxscope/internal/bpf"
	"github.com/tuxscope/tuxscope/internal/event"
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

// DecodeRecord fills ev (a TCP event) or pkt (a DNS packet) from one
// ring-buffer record and says which: the type field, at the same offset
// in both records, tells. The record comes from the kernel but is still
// checked: short records, unknown types and unknown families are errors.
func DecodeRecord(b []byte, ev *event.Event, pkt *event.DNSPacket) (isDNS bool, err error) {
	if len(b) > int(offType) && event.Type(b[offType]) == event.DNS {
		return true, decodeDNS(b, pkt)
	}
	return false, decodeEvent(b, ev)
}

// decodeEvent fills e from a struct event record.
func decodeEvent(b []byte, e *event.Event) error {
	if len(b) < recordSize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrShortRecord, len(b), recordSize)
	}
	ne := binary.NativeEndian
	t := event.Type(b[offType])
	if t < event.Connect || t > event.Close {
		return fmt.Errorf("unknown event type %d", b[offType])
	}
	*e = event.Event{Type: t} // a reused Event keeps nothing from the last record
	e.Flags = event.Flags(b[offFlags])
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
	e.TimestampNs, e.PID, e.TID, e.UID = decodeOwner(b)
	e.SetCommBytes(b[offComm : offComm+16])
	var err error
	e.Family, e.Local, e.Remote, err = decodeTuple(b)
	return err
}

// decodeOwner reads the time and owner both records start with.
func decodeOwner(b []byte) (ts uint64, pid, tid, uid uint32) {
	ne := binary.NativeEndian
	return ne.Uint64(b[offTs:]), ne.Uint32(b[offPid:]), ne.Uint32(b[offTid:]), ne.Uint32(b[offUid:])
}

// decodeTuple reads the family, addresses and ports both records share.
func decodeTuple(b []byte) (family uint8, local, remote netip.AddrPort, err error) {
	ne := binary.NativeEndian
	lport := ne.Uint16(b[offLport:])
	rport := ne.Uint16(b[offRport:])
	switch af := ne.Uint16(b[offFamily:]); af {
	case afInet:
		local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[offLaddr:offLaddr+4])), lport)
		remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[offRaddr:offRaddr+4])), rport)
		return 4, local, remote, nil
	case afInet6:
		local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[offLaddr:offLaddr+16])), lport)
		remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[offRaddr:offRaddr+16])), rport)
		return 6, local, remote, nil
	default:
		return 0, local, remote, fmt.Errorf("unknown address family %d", af)
	}
}

// decodeDNS reads a struct dns_event.
func decodeDNS(b []byte, p *event.DNSPacket) error {
	if len(b) < dnsHeaderSize {
		return fmt.Errorf("%w: %d bytes, want at least %d for a DNS record", ErrShortRecord, len(b), dnsHeaderSize)
	}
	ne := binary.NativeEndian
	*p = event.DNSPacket{}
	p.Response = b[offDNSDir] == 1
	p.Protocol = b[offDNSProto]
	p.Cookie = ne.Uint64(b[offDNSCookie:])
	p.CgroupID = ne.Uint64(b[offDNSCgroup:])
	p.PayloadLen = ne.Uint32(b[offDNSTotal:])
	n := int(ne.Uint32(b[offDNSLen:]))
	if n > len(b)-int(offDNSData) {
		return fmt.Errorf("DNS record claims %d payload bytes, has %d", n, len(b)-int(offDNSData))
	}
	p.Payload = b[offDNSData : int(offDNSData)+n]
	p.TimestampNs, p.PID, p.TID, p.UID = decodeOwner(b)
	p.Comm.Set(b[offComm : offComm+16])
	var err error
	p.Family, p.Local, p.Remote, err = decodeTuple(b)
	return err
}

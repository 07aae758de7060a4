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

// The record layouts are bpf2go's Go renderings of internal/bpf/event.h:
// struct event_header, which both records start with, struct event and
// struct dns_event. The offsets below are taken from them, so the C header
// stays the only definition. Decoding reads fields at those offsets: no
// reflection, no allocation.
var (
	hdrLayout bpf.TuxscopeEventHeader
	layout    bpf.TuxscopeEvent
	dnsLayout bpf.TuxscopeDnsEvent
	tlsLayout bpf.TuxscopeTlsEvent
)

// Both records embed the header first (a compile error otherwise: the
// index is out of range unless the offset is 0), so the header's offsets
// are the record's.
var (
	_                         = [1]struct{}{}[unsafe.Offsetof(layout.Hdr)]
	_                         = [1]struct{}{}[unsafe.Offsetof(dnsLayout.Hdr)]
	_                         = [1]struct{}{}[unsafe.Offsetof(tlsLayout.Hdr)]
	_ bpf.TuxscopeEventHeader = layout.Hdr
	_ bpf.TuxscopeEventHeader = dnsLayout.Hdr
	_ bpf.TuxscopeEventHeader = tlsLayout.Hdr
)

// struct event_header.
const (
	headerSize = int(unsafe.Sizeof(hdrLayout))
	offTs      = unsafe.Offsetof(hdrLayout.TsNs)
	offOwner   = unsafe.Offsetof(hdrLayout.Owner)
	offPid     = offOwner + unsafe.Offsetof(hdrLayout.Owner.Pid)
	offTid     = offOwner + unsafe.Offsetof(hdrLayout.Owner.Tid)
	offUid     = offOwner + unsafe.Offsetof(hdrLayout.Owner.Uid)
	offComm    = offOwner + unsafe.Offsetof(hdrLayout.Owner.Comm)
	offThread  = offOwner + unsafe.Offsetof(hdrLayout.Owner.Thread)
	offCgroup  = offOwner + unsafe.Offsetof(hdrLayout.Owner.CgroupId)
	offTuple   = unsafe.Offsetof(hdrLayout.Tuple)
	offLaddr   = offTuple + unsafe.Offsetof(hdrLayout.Tuple.Laddr)
	offRaddr   = offTuple + unsafe.Offsetof(hdrLayout.Tuple.Raddr)
	offLport   = offTuple + unsafe.Offsetof(hdrLayout.Tuple.Lport)
	offRport   = offTuple + unsafe.Offsetof(hdrLayout.Tuple.Rport)
	offFamily  = offTuple + unsafe.Offsetof(hdrLayout.Tuple.Family)
	offNetNS   = offTuple + unsafe.Offsetof(hdrLayout.Tuple.Netns)
	offIfindex = offTuple + unsafe.Offsetof(hdrLayout.Tuple.Ifindex)
	offIfNetNS = offTuple + unsafe.Offsetof(hdrLayout.Tuple.IfindexNetns)
	offType    = unsafe.Offsetof(hdrLayout.Type)
)

// struct event, after the header.
const (
	recordSize = int(unsafe.Sizeof(layout))
	offFlags   = unsafe.Offsetof(layout.Flags)
	offError   = unsafe.Offsetof(layout.Error)
	offLatency = unsafe.Offsetof(layout.LatencyNs)
	offDur     = unsafe.Offsetof(layout.DurationNs)
	offSent    = unsafe.Offsetof(layout.BytesSent)
	offRecv    = unsafe.Offsetof(layout.BytesReceived)
	offCookie  = unsafe.Offsetof(layout.Cookie)
	offOpener  = unsafe.Offsetof(layout.OpenerPid)
	offOpComm  = unsafe.Offsetof(layout.OpenerComm)
	offSRTT    = unsafe.Offsetof(layout.SrttUs)
	offRTTVar  = unsafe.Offsetof(layout.RttvarUs)
	offRetSegs = unsafe.Offsetof(layout.RetransSegs)
	offRetrans = unsafe.Offsetof(layout.Retransmits)
	offRetByts = unsafe.Offsetof(layout.BytesRetrans)
	offState   = unsafe.Offsetof(layout.State)
	offSynRet  = unsafe.Offsetof(layout.SynRetrans)
	offBacklog = unsafe.Offsetof(layout.Backlog)
)

// struct dns_event, after the header.
const (
	dnsHeaderSize = int(unsafe.Offsetof(dnsLayout.Data))
	offDNSDir     = unsafe.Offsetof(dnsLayout.Direction)
	offDNSLen     = unsafe.Offsetof(dnsLayout.Len)
	offDNSCookie  = unsafe.Offsetof(dnsLayout.Cookie)
	offDNSTotal   = unsafe.Offsetof(dnsLayout.TotalLen)
	offDNSProto   = unsafe.Offsetof(dnsLayout.Protocol)
	offDNSData    = unsafe.Offsetof(dnsLayout.Data)
)

// struct tls_event, after the header.
const (
	tlsHeaderSize = int(unsafe.Offsetof(tlsLayout.Data))
	offTLSCookie  = unsafe.Offsetof(tlsLayout.Cookie)
	offTLSLen     = unsafe.Offsetof(tlsLayout.Len)
	offTLSTotal   = unsafe.Offsetof(tlsLayout.TotalLen)
	offTLSData    = unsafe.Offsetof(tlsLayout.Data)
)

const (
	afInet  = 2
	afInet6 = 10
)

// ErrShortRecord means a record smaller than struct event.
var ErrShortRecord = errors.New("short record")

// decodeRecord fills ev (a TCP event) or pkt (a DNS packet) from one
// ring-buffer record and says which: the header's type, which both records
// start with, tells. The record comes from the kernel but is still
// checked: short records, unknown types and unknown families are errors.
func decodeRecord(b []byte, ev *event.Event, pkt *event.DNSPacket) (isDNS bool, err error) {
	if len(b) > int(offType) && event.Type(b[offType]) == event.DNS {
		return true, decodeDNS(b, pkt)
	}
	return false, decodeEvent(b, ev)
}

// header is a decoded struct event_header.
type header struct {
	ts            uint64
	pid, tid, uid uint32
	comm          []byte // the kernel's 16-byte array; aliases the record
	thread        []byte // the same, the thread's own name
	cgroupID      uint64
	netns         uint64
	family        uint8 // 4 or 6
	local, remote netip.AddrPort
	ifindex       uint32 // AF_INET6: the socket's bound interface, a link-local address's zone
	ifNetNS       uint32 // with ifindex: the socket's network namespace's inode
}

// decodeHeader reads the struct event_header a record of either kind
// starts with; b holds at least headerSize bytes. With an unknown family,
// the addresses are left zero.
func decodeHeader(b []byte, h *header) error {
	ne := binary.NativeEndian
	h.ts = ne.Uint64(b[offTs:])
	h.pid, h.tid, h.uid = ne.Uint32(b[offPid:]), ne.Uint32(b[offTid:]), ne.Uint32(b[offUid:])
	h.comm = b[offComm : offComm+16]
	h.thread = b[offThread : offThread+16]
	h.cgroupID = ne.Uint64(b[offCgroup:])
	h.netns = ne.Uint64(b[offNetNS:])
	lport := ne.Uint16(b[offLport:])
	rport := ne.Uint16(b[offRport:])
	switch af := ne.Uint16(b[offFamily:]); af {
	case afInet:
		h.family = 4
		h.local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[offLaddr:offLaddr+4])), lport)
		h.remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[offRaddr:offRaddr+4])), rport)
	case afInet6:
		h.family = 6
		h.local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[offLaddr:offLaddr+16])), lport)
		h.remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[offRaddr:offRaddr+16])), rport)
		h.ifindex, h.ifNetNS = ne.Uint32(b[offIfindex:]), ne.Uint32(b[offIfNetNS:])
	default:
		return fmt.Errorf("unknown address family %d", af)
	}
	return nil
}

// decodeEvent fills e from a struct event record.
func decodeEvent(b []byte, e *event.Event) error {
	if len(b) < recordSize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrShortRecord, len(b), recordSize)
	}
	ne := binary.NativeEndian
	t := event.Type(b[offType])
	if !kernelType(t) {
		return fmt.Errorf("unknown event type %d", b[offType])
	}
	*e = event.Event{Type: t} // a reused Event keeps nothing from the last record
	e.Flags = event.Flags(b[offFlags])
	if errno := int32(ne.Uint32(b[offError:])); errno > 0 {
		e.Error = uint32(errno)
	}
	e.LatencyNs = ne.Uint64(b[offLatency:])
	e.DurationNs = ne.Uint64(b[offDur:])
	e.BytesSent = ne.Uint64(b[offSent:])
	e.BytesReceived = ne.Uint64(b[offRecv:])
	e.Cookie = ne.Uint64(b[offCookie:])
	if e.OpenerPID = ne.Uint32(b[offOpener:]); e.OpenerPID != 0 {
		e.SetOpenerCommBytes(b[offOpComm : offOpComm+16])
	}
	e.SRTTUs, e.RTTVarUs = ne.Uint32(b[offSRTT:]), ne.Uint32(b[offRTTVar:])
	e.RetransSegs, e.Retransmits = ne.Uint32(b[offRetSegs:]), ne.Uint32(b[offRetrans:])
	e.BytesRetrans = ne.Uint64(b[offRetByts:])
	e.State, e.SynRetrans = b[offState], b[offSynRet]
	e.Backlog = ne.Uint32(b[offBacklog:])
	if t == event.Established || t == event.Failed {
		e.Flags &^= flagWithConnect
	}
	return decodeEventHeader(b, e)
}

// decodeEventHeader fills e's header fields (time, owner, tuple) from
// the record's struct event_header.
func decodeEventHeader(b []byte, e *event.Event) error {
	var h header
	err := decodeHeader(b, &h)
	e.TimestampNs, e.PID, e.TID, e.UID, e.CgroupID = h.ts, h.pid, h.tid, h.uid, h.cgroupID
	e.SetCommBytes(h.comm)
	e.SetThreadBytes(h.thread)
	e.Family, e.Local, e.Remote = h.family, h.local, h.remote
	e.NetNS = h.netns
	e.IfIndex, e.IfIndexNetNS = h.ifindex, h.ifNetNS
	return err
}

// flagWithConnect is FLAG_WITH_CONNECT (internal/bpf/event.h): an
// established or failed record that also stands for the connect event
// before it. A wire detail, not an event flag: decodeEvent clears it.
const flagWithConnect event.Flags = 32

// decodeConnect fills e with the connect event a record with
// FLAG_WITH_CONNECT stands for besides its own, and says whether it has
// one: the record's time, owner and tuple, nothing else.
func decodeConnect(b []byte, e *event.Event) (bool, error) {
	if len(b) < recordSize || event.Flags(b[offFlags])&flagWithConnect == 0 {
		return false, nil
	}
	if t := event.Type(b[offType]); t != event.Established && t != event.Failed {
		return false, nil
	}
	*e = event.Event{Type: event.Connect}
	return true, decodeEventHeader(b, e)
}

// kernelType reports whether the kernel side makes struct event records
// of type t (enum event_type in internal/bpf/event.h; 6 and 7 are not).
func kernelType(t event.Type) bool {
	switch t {
	case event.Connect, event.Accept, event.Established, event.Failed, event.Close,
		event.Retransmit, event.Reset, event.Listen, event.Unlisten, event.UDPOpen, udpRelease:
		return true
	}
	return false
}

// decodeDNS fills p from a struct dns_event record.
func decodeDNS(b []byte, p *event.DNSPacket) error {
	if len(b) < dnsHeaderSize {
		return fmt.Errorf("%w: %d bytes, want at least %d for a DNS record", ErrShortRecord, len(b), dnsHeaderSize)
	}
	ne := binary.NativeEndian
	*p = event.DNSPacket{}
	p.Response = b[offDNSDir] == 1
	p.Protocol = b[offDNSProto]
	p.Cookie = ne.Uint64(b[offDNSCookie:])
	p.PayloadLen = ne.Uint32(b[offDNSTotal:])
	n := int(ne.Uint32(b[offDNSLen:]))
	if n > len(b)-int(offDNSData) {
		return fmt.Errorf("DNS record claims %d payload bytes, has %d", n, len(b)-int(offDNSData))
	}
	p.Payload = b[offDNSData : int(offDNSData)+n]
	var h header
	err := decodeHeader(b, &h)
	p.TimestampNs, p.PID, p.TID, p.UID, p.CgroupID = h.ts, h.pid, h.tid, h.uid, h.cgroupID
	p.Comm.Set(h.comm)
	p.Thread.Set(h.thread)
	p.Family, p.Local, p.Remote = h.family, h.local, h.remote
	p.NetNS = h.netns
	return err
}

// tlsRecord reports whether b is a struct tls_event record (by the type
// its header carries).
func tlsRecord(b []byte) bool {
	if len(b) <= int(offType) {
		return false
	}
	t := event.Type(b[offType])
	return t == event.TLS || t == event.QUIC
}

// decodeTLS fills h from a struct tls_event record.
func decodeTLS(b []byte, h *event.TLSHello) error {
	if len(b) < tlsHeaderSize {
		return fmt.Errorf("%w: %d bytes, want at least %d for a TLS record", ErrShortRecord, len(b), tlsHeaderSize)
	}
	ne := binary.NativeEndian
	*h = event.TLSHello{}
	h.Cookie = ne.Uint64(b[offTLSCookie:])
	h.SegmentLen = ne.Uint32(b[offTLSTotal:])
	n := int(ne.Uint32(b[offTLSLen:]))
	if n > len(b)-int(offTLSData) {
		return fmt.Errorf("TLS record claims %d payload bytes, has %d", n, len(b)-int(offTLSData))
	}
	h.Payload = b[offTLSData : int(offTLSData)+n]
	h.QUIC = event.Type(b[offType]) == event.QUIC
	var hd header
	err := decodeHeader(b, &hd)
	h.TimestampNs, h.CgroupID = hd.ts, hd.cgroupID
	h.Family, h.Local, h.Remote = hd.family, hd.local, hd.remote
	return err
}

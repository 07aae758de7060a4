// Package event is tuxscope's domain model: what it observes (TCP events,
// DNS packets, losses), independent of how the kernel side delivered it.
// It imports nothing generated: the kernel's record layout is decoded
// beside the tracer (internal/tracer).
package event

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Type is what happened.
type Type uint8

// Values shared with the kernel (enum event_type in internal/bpf/event.h),
// plus Lost, which only user space makes.
const (
	Connect     Type = 1  // connect() returned: the SYN is out
	Accept      Type = 2  // accept() returned a connection
	Established Type = 3  // an outbound connect's handshake completed
	Failed      Type = 4  // an outbound connect failed
	Close       Type = 5  // a connection ended
	Existing    Type = 6  // a connection that existed when tracing started (user space only)
	DNS         Type = 7  // a DNS message (a response, with --dns)
	Retransmit  Type = 8  // segments were retransmitted (coalesced per connection)
	Reset       Type = 9  // a reset was sent or received on a connection
	Listen      Type = 10 // a socket started listening
	Unlisten    Type = 11 // a listener closed
	// Update is a tracked connection's throughput, RTT and retransmits
	// over the last period, from its tcp_info (--updates; user space only).
	Update Type = 12
	// UDPOpen is a UDP flow's first packet, either way: one socket's
	// traffic with one peer.
	UDPOpen Type = 13
	// UDPClose is a UDP flow's end: its socket was closed, or it was idle
	// for --udp-idle (user space only: it reads the flow's counters).
	UDPClose Type = 14
	// TLS marks the kernel's ClientHello records (event.TLSHello); it is
	// never an Event's type.
	TLS Type = 16
	// QUIC marks the kernel's records of a UDP flow to port 443's first
	// datagrams (event.TLSHello with QUIC set); never an Event's type.
	QUIC Type = 17
	Lost Type = 255
)

// types says, in one place, what tuxscope knows of each event type.
var types = [...]struct {
	name string
	// selectable: --type asks for it; the others have flags of their own
	// (--existing, --dns) and pass the type filter.
	selectable bool
	// detail: the table's DETAIL column says something for it.
	detail bool
}{
	Connect:     {"connect", true, false},
	Accept:      {"accept", true, false},
	Established: {"established", true, true},
	Failed:      {"failed", true, true},
	Close:       {"close", true, true},
	Existing:    {"existing", false, true},
	DNS:         {"dns", false, true},
	Retransmit:  {"retransmit", true, true},
	Reset:       {"reset", true, true},
	Listen:      {"listen", true, true},
	Unlisten:    {"unlisten", true, true},
	Update:      {"update", false, true},
	UDPOpen:     {"udp_open", true, false},
	UDPClose:    {"udp_close", true, true},
}

// Types are the event types a user can ask for with --type, in order.
var Types = func() []Type {
	var ts []Type
	for t, info := range types {
		if info.selectable {
			ts = append(ts, Type(t))
		}
	}
	return ts
}()

func (t Type) known() bool { return int(t) < len(types) && types[t].name != "" }

func (t Type) String() string {
	switch {
	case t.known():
		return types[t].name
	case t == Lost:
		return "lost"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Selectable reports whether --type chooses events of this type; the
// others are asked for with flags of their own and pass the type filter.
func (t Type) Selectable() bool { return t.known() && types[t].selectable }

// HasDetail reports whether the table's DETAIL column says something for
// events of this type.
func (t Type) HasDetail() bool { return t.known() && types[t].detail }

// ParseType is the inverse of Type.String for the types a user can ask for.
func ParseType(s string) (Type, error) {
	names := make([]string, len(Types))
	for i, t := range Types {
		if t.String() == s {
			return t, nil
		}
		names[i] = t.String()
	}
	return 0, fmt.Errorf("unknown event type %q (want %s or %s)", s, strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
}

// Flags qualify an event (enum event_flag in internal/bpf/event.h).
type Flags uint8

const (
	FlagInbound      Flags = 1 // the connection was accepted, not connected
	FlagClosedLocal  Flags = 2 // close: this end closed (or reset) first
	FlagClosedRemote Flags = 4 // close: the peer closed (or reset) first
	FlagReset        Flags = 8 // close: it ended with a reset, sent or received
	// FlagV6Only: listen, unlisten, existing listener: an IPv6 listener
	// with IPV6_V6ONLY, which takes no IPv4 connections.
	FlagV6Only Flags = 16
)

// Event is one observed TCP event.
type Event struct {
	Type        Type
	Family      uint8     // 4 or 6; an AF_INET6 socket talking to an IPv4 peer is 6
	TimestampNs uint64    // kernel CLOCK_MONOTONIC
	Time        time.Time // wall clock, from TimestampNs
	PID         uint32
	TID         uint32
	UID         uint32
	Local       netip.AddrPort
	Remote      netip.AddrPort
	Flags       Flags
	// Error is the errno a connect failed with, or a connection ended with
	// (ECONNRESET when the peer reset it); 0 if none.
	Error         uint32
	LatencyNs     uint64 // established, failed: since the connect's SYN
	DurationNs    uint64 // close: since established; 0 if unknown
	BytesSent     uint64 // close: data bytes sent, retransmissions counted once
	BytesReceived uint64 // close: bytes received
	Cookie        uint64 // close: the socket's cookie, 0 if it had none
	// State is the TCP state (include/net/tcp_states.h): existing's and
	// update's; retransmit's when it retransmitted; reset's before the
	// reset.
	State uint8

	// The connection's health as tcp_info reports it (close, existing,
	// update): smoothed RTT and its mean deviation in µs, segments
	// retransmitted in all (retransmit: so far), payload bytes
	// retransmitted; 0: unknown.
	SRTTUs, RTTVarUs uint32
	RetransSegs      uint32
	BytesRetrans     uint64
	// SynRetrans is, on established, the SYNs resent before the
	// handshake completed.
	SynRetrans uint8
	// Retransmits is, on retransmit, the segments retransmitted since
	// the connection's last retransmit event.
	Retransmits uint32
	// Backlog is a listener's (listen, unlisten, existing LISTEN): its
	// accept queue's limit, listen()'s backlog capped at somaxconn.
	Backlog uint32

	// UDP flows (udp_close): datagrams each way (BytesSent and
	// BytesReceived are their payload bytes, DurationNs the time from
	// the first packet to the last); UDPEnd says why the flow ended:
	// "closed" (the socket was released), "idle" (no packet for
	// --udp-idle) or "exit" (still open when tuxscope stopped: the
	// counts so far).
	PacketsSent, PacketsReceived uint64
	UDPEnd                       string

	// Update: the period the update covers (since the previous update,
	// or since the connection was established) and what it saw in it.
	// BytesSent and BytesReceived are the totals so far.
	PeriodNs            uint64
	PeriodBytesSent     uint64
	PeriodBytesReceived uint64
	PeriodRetrans       uint32 // segments retransmitted in the period

	// Hostname is the name that resolved to the remote address (outbound
	// events), learned from DNS; HostnameSource says whose lookup it was:
	// "process" (this one), "cgroup" (another in its cgroup) or "host"
	// (another process); or "hosts": the hosts file this process sees
	// names the address. HostnameAlso lists other names for the address
	// when the choice was not this process's own.
	Hostname       string
	HostnameSource string
	HostnameAlso   []string

	// SNI is the server name the connection's TLS ClientHello asked for,
	// and ALPN the application protocols it offered (h2, http/1.1):
	// outbound connections' events after their first data segment
	// (internal/sni). "" and nil when unknown.
	SNI  string
	ALPN []string

	// IfIndex is the interface an IPv6 socket is bound to (0: none), in
	// the network namespace IfIndexNetNS (its inode; 0: tuxscope's own):
	// the zone of a link-local address. Zone resolution names it.
	IfIndex, IfIndexNetNS uint32

	CgroupID uint64   // cgroup v2 id of the process
	DNSInfo  *DNSInfo // Type DNS: the response (--dns)

	// Cgroup is the process's cgroup path (v2, or v1 where the v2 one is
	// the root) and what it shows: a container's full id and runtime, a
	// Kubernetes pod's uid, a systemd unit's name (ContainerName, runtime
	// systemd); "" when unknown. Filled by internal/container.
	Cgroup, ContainerID, Runtime, PodUID, ContainerName string
	// Pod and Namespace are a Kubernetes pod's name and namespace, and
	// then ContainerName is the container's name in it, as the CRI
	// runtime tells; "" when unknown.
	Pod, Namespace string

	// OpenerPID is, on a close, the process that connected or accepted
	// the connection when another one (PID) held it and closed it, e.g.
	// the forked child of a server that accepts and forks; 0 otherwise.
	OpenerPID uint32
	comm      TaskName // the process's name (its thread-group leader's)
	thread    TaskName // the thread's name (TID's)
	opener    TaskName // OpenerPID's name

	// PeerPID is the process at the connection's other end when both
	// ends are on this host, in one network namespace, and tuxscope saw
	// the other end (its connect, accept or listener); 0 otherwise.
	// Filled by internal/peers.
	PeerPID uint32
	peer    TaskName // PeerPID's name

	// NetNS is the socket's network namespace (its netns cookie); 0 if
	// unknown. Hostnames come only from lookups made in the same one.
	NetNS uint64
}

// Inbound reports whether the connection was accepted here (an accept, or
// the close of an accepted connection) rather than connected from here.
func (e *Event) Inbound() bool { return e.Type == Accept || e.Flags&FlagInbound != 0 }

// UDP reports whether the event is about a UDP flow.
func (e *Event) UDP() bool { return e.Type == UDPOpen || e.Type == UDPClose }

// Proto is the transport protocol: "udp" or "tcp".
func (e *Event) Proto() string {
	if e.UDP() {
		return "udp"
	}
	return "tcp"
}

// Direction is "inbound" or "outbound".
func (e *Event) Direction() string {
	if e.Inbound() {
		return "inbound"
	}
	return "outbound"
}

// ClosedBy is "local" or "remote" for a close, "" when the kernel did not
// say.
func (e *Event) ClosedBy() string {
	if e.Type == Reset {
		return "" // its flags say who reset (ResetBy)
	}
	switch {
	case e.Flags&FlagClosedLocal != 0:
		return "local"
	case e.Flags&FlagClosedRemote != 0:
		return "remote"
	}
	return ""
}

// ResetBy is, for a reset event, "local" when this end sent the reset,
// "remote" when the peer did.
func (e *Event) ResetBy() string {
	if e.Type != Reset {
		return ""
	}
	if e.Flags&FlagClosedLocal != 0 {
		return "local"
	}
	return "remote"
}

// SendRate is an update's send rate over its period, in bytes per second
// (0 for an empty period).
func (e *Event) SendRate() uint64 { return perSecond(e.PeriodBytesSent, e.PeriodNs) }

// ReceiveRate is an update's receive rate over its period, in bytes per
// second.
func (e *Event) ReceiveRate() uint64 { return perSecond(e.PeriodBytesReceived, e.PeriodNs) }

// perSecond is n over ns nanoseconds, per second, rounded.
func perSecond(n, ns uint64) uint64 {
	if ns == 0 {
		return 0
	}
	return uint64(float64(n)*1e9/float64(ns) + 0.5)
}

// Comm is the process's name (its thread-group leader's) as the kernel
// reported it: untrusted bytes, not necessarily UTF-8. The slice aliases
// the event.
func (e *Event) Comm() []byte { return e.comm.Bytes() }

// Thread is the name of the thread (TID) when it differs from the
// process's, else nil: dig's lookups run in a thread named isc-net-0000.
func (e *Event) Thread() []byte {
	if e.thread.n == 0 || bytes.Equal(e.thread.Bytes(), e.comm.Bytes()) {
		return nil
	}
	return e.thread.Bytes()
}

// SetThreadBytes sets the thread's name from the kernel's array.
func (e *Event) SetThreadBytes(b []byte) { e.thread.Set(b) }

// OpenerComm is OpenerPID's name; empty when OpenerPID is 0.
func (e *Event) OpenerComm() []byte { return e.opener.Bytes() }

// SetOpenerCommBytes sets OpenerPID's name from the kernel's array.
func (e *Event) SetOpenerCommBytes(b []byte) { e.opener.Set(b) }

// PeerComm is PeerPID's name; empty when PeerPID is 0.
func (e *Event) PeerComm() []byte { return e.peer.Bytes() }

// SetPeer names the process at the other end.
func (e *Event) SetPeer(pid uint32, comm []byte) {
	e.PeerPID = pid
	e.peer.Set(comm)
}

// Listener reports whether e is about a listening socket (listen,
// unlisten, or an existing listener) rather than a connection.
func (e *Event) Listener() bool {
	return e.Type == Listen || e.Type == Unlisten || e.Type == Existing && e.State == TCPListen
}

// TCPListen is the LISTEN state (include/net/tcp_states.h).
const TCPListen = 10

// Reset reports whether a close ended with a reset, sent or received.
func (e *Event) Reset() bool { return e.Type == Close && e.Flags&FlagReset != 0 }

// SetComm sets the name, truncated to the kernel's 15 bytes (TASK_COMM_LEN-1).
func (e *Event) SetComm(name string) { e.comm.SetString(name) }

// SetCommBytes sets the name from the kernel's NUL-terminated comm array.
func (e *Event) SetCommBytes(b []byte) { e.comm.Set(b) }

// TaskName is a process or thread name as the kernel keeps it: at most 15
// bytes (TASK_COMM_LEN-1) and a NUL, untrusted, not necessarily UTF-8.
type TaskName struct {
	b [16]byte
	n uint8
}

// Bytes is the name; the slice aliases t.
func (t *TaskName) Bytes() []byte { return t.b[:t.n] }

// Set takes the name from b up to its first NUL (a record without one
// keeps all 16 bytes).
func (t *TaskName) Set(b []byte) {
	n := 0
	for n < len(b) && n < len(t.b) && b[n] != 0 {
		n++
	}
	t.n = uint8(copy(t.b[:], b[:n]))
}

// SetString is Set for a string.
func (t *TaskName) SetString(s string) { t.n = uint8(copy(t.b[:15], s)) }

// Src is the SRC column: the side that opened the connection. The local
// end of an outbound one (connect), the remote client of an inbound one
// (accept); a listener's own address.
func (e *Event) Src() netip.AddrPort {
	if e.Inbound() && !e.Listener() {
		return e.Remote
	}
	return e.Local
}

// Dst is the DST column: the side that was connected to. The remote end of
// an outbound connection, the local listener of an inbound one; none (the
// zero AddrPort) for a listener.
func (e *Event) Dst() netip.AddrPort {
	if e.Listener() {
		return netip.AddrPort{}
	}
	if e.Inbound() {
		return e.Local
	}
	return e.Remote
}

// Clock turns kernel CLOCK_MONOTONIC timestamps into wall-clock times.
type Clock struct {
	offset int64 // realtime - monotonic, in ns
}

// NewClock samples both clocks once.
func NewClock() Clock {
	var mono, real unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	_ = unix.ClockGettime(unix.CLOCK_REALTIME, &real)
	return Clock{offset: real.Nano() - mono.Nano()}
}

// Wall is the wall-clock time of a kernel monotonic timestamp.
func (c Clock) Wall(monoNs uint64) time.Time {
	return time.Unix(0, int64(monoNs)+c.offset)
}

var tcpStateNames = [...]string{"", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV"}

// TCPStateName is "ESTABLISHED" for 1, and so on (include/net/tcp_states.h).
func TCPStateName(s uint8) string {
	if int(s) < len(tcpStateNames) && tcpStateNames[s] != "" {
		return tcpStateNames[s]
	}
	return "UNKNOWN"
}

// DNSPacket is one DNS message's bytes as a local socket sent or received
// them (port 53, UDP or TCP), with the socket's owner: what the DNS
// tracker learns names from.
type DNSPacket struct {
	TimestampNs uint64 // kernel CLOCK_MONOTONIC
	// The process that connected the socket or sent from it to port 53;
	// PID 0 if unknown.
	PID, TID, UID uint32
	// Comm is the name the socket's owner had: a thread's (Thread's)
	// where the kernel side could not read the process's.
	Comm, Thread  TaskName
	Family        uint8          // 4 or 6
	Local, Remote netip.AddrPort // as the local socket sees them
	Response      bool           // arriving from a server, not a query leaving
	Protocol      uint8          // IPPROTO_UDP (17) or IPPROTO_TCP (6)
	Cookie        uint64         // the socket's cookie
	CgroupID      uint64         // cgroup v2 id of the socket
	// Payload is the captured bytes; it aliases the ring-buffer record,
	// valid until the next read. PayloadLen is the message's full length
	// (more than len(Payload) when it was cut).
	Payload    []byte
	PayloadLen uint32
	// NetNS is the socket's network namespace (its netns cookie), as the
	// hook that saw it connect or send recorded it; 0 if unknown (the
	// socket was connected before tuxscope started).
	NetNS uint64
}

// TLSHello is the first data segment of a connection this host
// initiated, when it begins with a TLS handshake record: the ClientHello
// that internal/sni reads the server name from.
type TLSHello struct {
	TimestampNs   uint64         // kernel CLOCK_MONOTONIC
	CgroupID      uint64         // cgroup v2 id of the socket
	Family        uint8          // 4 or 6
	Local, Remote netip.AddrPort // as the local socket sees them
	Cookie        uint64         // the socket's cookie: joins it to the connection's events
	// Payload is the captured bytes; it aliases the ring-buffer record,
	// valid until the next read. SegmentLen is the segment's payload
	// length (more than len(Payload) when the capture cut it).
	Payload    []byte
	SegmentLen uint32
	// QUIC: Payload is one of a UDP flow's first datagrams to port 443
	// (a QUIC long-header packet), not a TCP segment; its flow is
	// Cookie and Remote.
	QUIC bool
}

// DNSInfo is what a DNS response said, for --dns.
type DNSInfo struct {
	Name    string   // the question
	QType   string   // A, AAAA, ...
	RCode   string   // NOERROR, NXDOMAIN, ...
	Answers []string // addresses
	CNAMEs  []string // the alias chain from Name, in order
	TTL     uint32   // smallest TTL of the answers
}

// OpenConn is a connection tuxscope saw established or accepted that had
// not closed when it stopped tracing.
type OpenConn struct {
	Inbound bool     // accepted here (or established to a local listener), not connected from here
	PID     uint32   // who connected or accepted it; 0 if unknown (e.g. not accepted yet)
	Comm    TaskName // its name
	// CgroupID is its cgroup v2 id (0: unknown), for the workload filters.
	CgroupID uint64
}

// OpenCount is how many tracked connections were still open at exit, by
// direction; each local end counts, as each has its own close.
type OpenCount struct {
	Outbound, Inbound uint64
}

// Total is both directions.
func (c OpenCount) Total() uint64 { return c.Outbound + c.Inbound }

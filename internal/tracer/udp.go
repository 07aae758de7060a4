package tracer

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/tuxscope/tuxscope/internal/bpf"
	"github.com/tuxscope/tuxscope/internal/event"
)

// udpRelease is the kernel's EVENT_UDP_RELEASE (internal/bpf/event.h): a
// UDP socket with flows was released. It never reaches a handler: the
// reader ends the socket's flows instead.
const udpRelease event.Type = 15

// DefaultUDPIdle is how long a UDP flow may go without a packet before it
// is reported closed (--udp-idle).
const DefaultUDPIdle = 30 * time.Second

// The kernel side's UDP flow table (udp_flows, a hash allocated as used).
const (
	DefaultUDPFlows = 1 << 16
	MaxUDPFlows     = 1 << 22
)

// udpSweepBatch bounds the flow-table entries one sweep looks at: a table
// larger than that is swept over several ticks.
const udpSweepBatch = 4096

// flowEnder is what the reader asks about UDP flows: it indexes their
// opens, ends a released socket's flows, and ends idle ones.
type flowEnder interface {
	// opened notes a udp_open and says whether to hand it over.
	opened(ev *event.Event) bool
	// released ends the flows of the socket ev (a udpRelease) names.
	released(ev *event.Event, h event.Handler) error
	// sweep ends flows idle for too long.
	sweep(h event.Handler) error
	// drain ends, at the end of the run, the flows still open.
	drain(h event.Handler) error
}

type udpKey = bpf.TuxscopeUdpFlowKey

// udpFlows ends UDP flows: the kernel side counts them in udp_flows and
// says when one starts (udp_open) and when a socket that had some is
// released; here the final counters are read and the entries deleted.
type udpFlows struct {
	flows, socks *ebpf.Map
	idle         time.Duration
	wantOpen     bool
	wantClose    bool
	// byCookie are the flows each socket has, from their udp_open
	// records: at most one per flow-table entry, removed as they end.
	byCookie map[uint64][]udpKey
	// cursor is where the next sweep starts (nil: at the table's start).
	cursor *udpKey
	mono   func() uint64 // CLOCK_MONOTONIC ns, what the kernel stamps with
	ev     event.Event
}

func newUDPFlows(flows, socks *ebpf.Map, idle time.Duration, wantOpen, wantClose bool) *udpFlows {
	if idle <= 0 {
		idle = DefaultUDPIdle
	}
	return &udpFlows{flows: flows, socks: socks, idle: idle, wantOpen: wantOpen, wantClose: wantClose,
		byCookie: map[uint64][]udpKey{}, mono: monotonicNs}
}

// flowKey is the kernel's key for a flow whose udp_open is ev: the socket
// and the peer as the packets carry it (an IPv4 one for a dual-stack
// socket's ::ffff:a.b.c.d).
func flowKey(ev *event.Event) udpKey {
	k := udpKey{Cookie: ev.Cookie, PeerPort: ev.Remote.Port()}
	if a := ev.Remote.Addr(); a.Is4() || a.Is4In6() {
		k.Family = afInet
		b := a.Unmap().As4()
		copy(k.Peer[:], b[:])
	} else {
		k.Family = afInet6
		b := a.As16()
		copy(k.Peer[:], b[:])
	}
	return k
}

func (u *udpFlows) opened(ev *event.Event) bool {
	k := flowKey(ev)
	if len(u.byCookie[k.Cookie]) < 1<<16 { // bounded even if the kernel repeats itself
		u.byCookie[k.Cookie] = append(u.byCookie[k.Cookie], k)
	}
	return u.wantOpen
}

func (u *udpFlows) released(rel *event.Event, h event.Handler) error {
	keys := u.byCookie[rel.Cookie]
	delete(u.byCookie, rel.Cookie)
	for i := range keys {
		var v bpf.TuxscopeUdpFlow
		if err := u.flows.Lookup(&keys[i], &v); err != nil {
			continue // already ended (idle)
		}
		if err := u.flows.Delete(&keys[i]); err != nil {
			continue // the sweep got it first
		}
		if v.Owner.Pid == 0 && rel.PID != 0 {
			// named after the first packet, by a send or receive
			v.Owner.Pid, v.Owner.Tid, v.Owner.Uid = rel.PID, rel.TID, rel.UID
			copy(v.Owner.Comm[:], int8s(rel.Comm()))
			copy(v.Owner.Thread[:], int8s(rel.Thread()))
		}
		if err := u.emit(&keys[i], &v, rel.TimestampNs, "closed", h); err != nil {
			return err
		}
	}
	return nil
}

func (u *udpFlows) sweep(h event.Handler) error {
	now := u.mono()
	idleNs := uint64(u.idle)
	var (
		k, next udpKey
		v       bpf.TuxscopeUdpFlow
		ended   []udpKey
	)
	var prev any // nil: from the start
	if u.cursor != nil {
		k = *u.cursor
		prev = &k
	}
	for range udpSweepBatch {
		if err := u.flows.NextKey(prev, &next); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				u.cursor = nil
				break
			}
			return fmt.Errorf("sweeping the UDP flow table: %w", err)
		}
		k = next
		prev = &k
		c := k
		u.cursor = &c
		if err := u.flows.Lookup(&k, &v); err != nil {
			continue
		}
		if v.LastNs+idleNs <= now {
			ended = append(ended, k)
		}
	}
	for i := range ended {
		k := &ended[i]
		// Read again: a packet may have come since.
		if err := u.flows.Lookup(k, &v); err != nil || v.LastNs+idleNs > now {
			continue
		}
		if err := u.flows.Delete(k); err != nil {
			continue
		}
		u.forget(k)
		u.named(k, &v)
		if err := u.emit(k, &v, now, "idle", h); err != nil {
			return err
		}
	}
	return nil
}

// drain ends every flow still in the table when the run ends (its hooks
// are detached, so the table no longer changes): their udp_close with
// end "exit" and the counts so far, as a flow exporter ends its active
// flows when it stops. A flow that never went idle (a long-lived statsd
// or VPN socket) would otherwise never say what it carried. Bounded by
// the table's size.
func (u *udpFlows) drain(h event.Handler) error {
	now := u.mono()
	var (
		k, next udpKey
		v       bpf.TuxscopeUdpFlow
		prev    any // nil: from the start
	)
	for range u.flows.MaxEntries() {
		if err := u.flows.NextKey(prev, &next); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				return nil
			}
			return fmt.Errorf("reading the UDP flow table at exit: %w", err)
		}
		k = next
		prev = &k
		if err := u.flows.Lookup(&k, &v); err != nil {
			continue
		}
		u.named(&k, &v)
		if err := u.emit(&k, &v, now, "exit", h); err != nil {
			return err
		}
	}
	return nil
}

// named gives a flow whose first packet had no known owner the one its
// socket got since (a send or receive hook named it).
func (u *udpFlows) named(k *udpKey, v *bpf.TuxscopeUdpFlow) {
	if v.Owner.Pid != 0 {
		return
	}
	var s bpf.TuxscopeUdpSock
	if u.socks.Lookup(&k.Cookie, &s) == nil && s.Owner.Pid != 0 {
		cg := v.Owner.CgroupId
		v.Owner = s.Owner
		v.Owner.CgroupId = cg
	}
}

// forget removes an ended flow from its socket's list.
func (u *udpFlows) forget(k *udpKey) {
	keys := u.byCookie[k.Cookie]
	for i := range keys {
		if keys[i] == *k {
			keys[i] = keys[len(keys)-1]
			keys = keys[:len(keys)-1]
			break
		}
	}
	if len(keys) == 0 {
		delete(u.byCookie, k.Cookie)
	} else {
		u.byCookie[k.Cookie] = keys
	}
}

// emit hands h a flow's udp_close.
func (u *udpFlows) emit(k *udpKey, v *bpf.TuxscopeUdpFlow, at uint64, end string, h event.Handler) error {
	if !u.wantClose {
		return nil
	}
	u.ev = event.Event{}
	udpCloseEvent(&u.ev, k, v, at, end)
	return h.Event(&u.ev)
}

// udpCloseEvent fills e with the close of flow k, whose final entry is v.
func udpCloseEvent(e *event.Event, k *udpKey, v *bpf.TuxscopeUdpFlow, at uint64, end string) {
	*e = event.Event{Type: event.UDPClose, TimestampNs: at}
	e.PID, e.TID, e.UID, e.CgroupID = v.Owner.Pid, v.Owner.Tid, v.Owner.Uid, v.Owner.CgroupId
	e.SetCommBytes(uint8s(v.Owner.Comm[:]))
	e.SetThreadBytes(uint8s(v.Owner.Thread[:]))
	t := &v.Tuple
	switch t.Family {
	case afInet:
		e.Family = 4
		e.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(t.Laddr[:4])), t.Lport)
		e.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(t.Raddr[:4])), t.Rport)
	default:
		e.Family = 6
		e.Local = netip.AddrPortFrom(netip.AddrFrom16(t.Laddr), t.Lport)
		e.Remote = netip.AddrPortFrom(netip.AddrFrom16(t.Raddr), t.Rport)
	}
	e.NetNS = t.Netns
	e.Flags = event.Flags(v.Flags)
	e.Cookie = k.Cookie
	e.PacketsSent, e.PacketsReceived = v.PacketsSent, v.PacketsReceived
	e.BytesSent, e.BytesReceived = v.BytesSent, v.BytesReceived
	if v.LastNs > v.FirstNs {
		e.DurationNs = v.LastNs - v.FirstNs
	}
	e.UDPEnd = end
}

// int8s and uint8s view a C char array the other way round.
func int8s(b []byte) []int8 {
	return unsafe.Slice((*int8)(unsafe.Pointer(unsafe.SliceData(b))), len(b))
}
func uint8s(b []int8) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(b))), len(b))
}

// CheckUDPFlows reports whether n is a valid UDP flow table size.
func CheckUDPFlows(n int) error {
	if n < 1 || n > MaxUDPFlows {
		return fmt.Errorf("UDP flow table size %d: must be between 1 and %d", n, MaxUDPFlows)
	}
	return nil
}

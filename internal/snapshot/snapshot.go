// Package snapshot lists the TCP connections that exist when tracing
// starts, from the kernel's socket diagnostics (sock_diag over netlink, as
// ss does), with the process holding each socket (from /proc, as ss -p
// does). Like ss, it sees the network namespace tuxscope runs in.
package snapshot

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tuxscope/tuxscope/internal/event"
)

// TCP states (include/net/tcp_states.h) the snapshot cares about.
const (
	stateEstablished = 1
	stateTimeWait    = 6
	stateClose       = 7
	stateListen      = 10
)

// Owner is who holds a socket.
type Owner struct {
	PID     uint32
	UID     uint32
	Comm    string
	Inbound bool
}

// Owners maps socket cookies to owners, so the close of a connection that
// predates tracing can be attributed (the kernel side reports the cookie,
// which the sock_diag dump made the kernel assign).
type Owners map[uint64]Owner

// Enrich fills in the owner of a close event the kernel side could not
// attribute.
func (o Owners) Enrich(e *event.Event) {
	if e.Type != event.Close || e.PID != 0 || e.Cookie == 0 {
		return
	}
	if own, ok := o[e.Cookie]; ok {
		e.PID, e.TID, e.UID = own.PID, own.PID, own.UID
		e.SetComm(own.Comm)
		if own.Inbound {
			e.Flags |= event.FlagInbound
		}
	}
}

// Take lists existing connections (every state but LISTEN, TIME_WAIT and
// CLOSE) as Existing events, and their owners by cookie.
func Take() ([]event.Event, Owners, error) {
	var socks []*netlink.Socket
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		s, err := netlink.SocketDiagTCP(family)
		if errors.Is(err, unix.ENOENT) {
			return nil, nil, errors.New("the kernel's TCP socket diagnostics are not available (load the tcp_diag module: modprobe tcp_diag)")
		}
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return nil, nil, fmt.Errorf("listing existing TCP connections (sock_diag): %w", err)
		}
		socks = append(socks, s...)
	}
	listeners := map[netip.AddrPort]bool{}
	for _, s := range socks {
		if s.State == stateListen {
			listeners[netip.AddrPortFrom(addr(s.Family, s.ID.Source), s.ID.SourcePort)] = true
		}
	}
	procs := socketOwners()
	var (
		events []event.Event
		owners = Owners{}
	)
	for _, s := range socks {
		if s.State == stateListen || s.State == stateTimeWait || s.State == stateClose {
			continue
		}
		e := event.Event{Type: event.Existing, UID: s.UID, State: s.State}
		e.Local = netip.AddrPortFrom(addr(s.Family, s.ID.Source), s.ID.SourcePort)
		e.Remote = netip.AddrPortFrom(addr(s.Family, s.ID.Destination), s.ID.DestinationPort)
		e.Family = 4
		if s.Family == unix.AF_INET6 {
			e.Family = 6
			e.IfIndex = s.ID.Interface // in our own namespace (NetNS 0)
		}
		if isListening(listeners, e.Local) {
			e.Flags |= event.FlagInbound
		}
		if p, ok := procs[s.INode]; ok {
			e.PID, e.TID = p.pid, p.pid
			e.SetComm(p.comm)
		}
		e.Cookie = uint64(s.ID.Cookie[0]) | uint64(s.ID.Cookie[1])<<32
		if e.PID != 0 && e.Cookie != 0 {
			owners[e.Cookie] = Owner{PID: e.PID, UID: e.UID, Comm: string(e.Comm()), Inbound: e.Inbound()}
		}
		events = append(events, e)
	}
	slices.SortStableFunc(events, func(a, b event.Event) int { return int(a.PID) - int(b.PID) })
	return events, owners, nil
}

// addr keeps the socket's own family: the IPv4 address of an AF_INET
// socket, the 16 bytes (v4-mapped too, as ss shows them) of an AF_INET6 one.
func addr(family uint8, ip net.IP) netip.Addr {
	if v4 := ip.To4(); family == unix.AF_INET && v4 != nil {
		return netip.AddrFrom4([4]byte(v4))
	}
	a, _ := netip.AddrFromSlice(ip.To16())
	return a
}

// isListening reports whether a local endpoint is a listener's: the
// connection was accepted there.
func isListening(listeners map[netip.AddrPort]bool, local netip.AddrPort) bool {
	if listeners[local] {
		return true
	}
	for _, any := range []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()} {
		if listeners[netip.AddrPortFrom(any, local.Port())] {
			return true
		}
	}
	return false
}

type proc struct {
	pid  uint32
	comm string
}

// maxFDsScanned bounds the /proc walk on hosts with huge fd tables.
const maxFDsScanned = 1 << 20

// socketOwners maps socket inodes to the lowest pid holding them.
func socketOwners() map[uint32]proc {
	owners := map[uint32]proc{}
	pids, _ := filepath.Glob("/proc/[0-9]*")
	scanned := 0
	for _, dir := range pids {
		pid, err := strconv.ParseUint(filepath.Base(dir), 10, 32)
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(dir + "/fd")
		if err != nil {
			continue // gone, or a kernel thread
		}
		var comm string
		for _, fd := range fds {
			if scanned++; scanned > maxFDsScanned {
				return owners
			}
			link, err := os.Readlink(dir + "/fd/" + fd.Name())
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 32)
			if err != nil {
				continue
			}
			if p, ok := owners[uint32(ino)]; ok && p.pid < uint32(pid) {
				continue
			}
			if comm == "" {
				b, _ := os.ReadFile(dir + "/comm")
				comm = strings.TrimSuffix(string(b), "\n")
			}
			owners[uint32(ino)] = proc{pid: uint32(pid), comm: comm}
		}
	}
	return owners
}

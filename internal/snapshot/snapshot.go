// Package snapshot lists the TCP connections that exist when tracing
// starts, from the kernel's socket diagnostics (sock_diag over netlink, as
// ss does), with the process holding each socket (from /proc, as ss -p
// does). Like ss, it sees the network namespace tuxscope runs in.
package snapshot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unsafe"

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

// Enrich fills in the owner of a close, retransmit or reset event the
// kernel side could not attribute.
func (o Owners) Enrich(e *event.Event) {
	switch e.Type {
	case event.Close, event.Retransmit, event.Reset:
	default:
		return
	}
	if e.PID != 0 || e.Cookie == 0 {
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

// Take lists existing connections (every state but TIME_WAIT and CLOSE),
// with their health from the kernel's tcp_info (INET_DIAG_INFO, as ss -ti
// shows it), and listeners (state LISTEN, with their backlog) as Existing
// events, and their owners by cookie; denied are the
// processes whose open files /proc would not show (another user's, or a
// more privileged process's, without CAP_SYS_PTRACE and
// CAP_DAC_READ_SEARCH): their connections have no owner.
func Take() (_ []event.Event, _ Owners, denied []uint32, _ error) {
	var socks []*netlink.InetDiagTCPInfoResp
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		s, err := netlink.SocketDiagTCPInfo(family)
		if errors.Is(err, unix.ENOENT) {
			return nil, nil, nil, errors.New("the kernel's TCP socket diagnostics are not available (load the tcp_diag module: modprobe tcp_diag)")
		}
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return nil, nil, nil, fmt.Errorf("listing existing TCP connections (sock_diag): %w", err)
		}
		socks = append(socks, s...)
	}
	listeners := map[netip.AddrPort]bool{}
	for _, r := range socks {
		if s := r.InetDiagMsg; s.State == stateListen {
			listeners[netip.AddrPortFrom(addr(s.Family, s.ID.Source), s.ID.SourcePort)] = true
		}
	}
	procs, denied := socketOwners()
	ephemeral := ephemeralPorts()
	netns := NetNSCookie()
	var (
		events []event.Event
		owners = Owners{}
	)
	for _, r := range socks {
		s := r.InetDiagMsg
		if s.State == stateTimeWait || s.State == stateClose {
			continue
		}
		e := event.Event{Type: event.Existing, UID: s.UID, State: s.State, NetNS: netns}
		if ti := r.TCPInfo; ti != nil && s.State != stateListen {
			// tcp_get_info's: srtt_us >> 3, mdev_us >> 2; bytes_retrans
			// 0 where the kernel's tcp_info is older than it
			e.SRTTUs, e.RTTVarUs = ti.Rtt, ti.Rttvar
			e.RetransSegs, e.BytesRetrans = ti.Total_retrans, ti.Bytes_retrans
		}
		e.Local = netip.AddrPortFrom(addr(s.Family, s.ID.Source), s.ID.SourcePort)
		e.Remote = netip.AddrPortFrom(addr(s.Family, s.ID.Destination), s.ID.DestinationPort)
		e.Family = 4
		if s.Family == unix.AF_INET6 {
			e.Family = 6
			e.IfIndex = s.ID.Interface // in our own namespace (IfIndexNetNS 0)
		}
		if s.State == stateListen {
			// A listener: no other end; sock_diag's wqueue is its backlog
			// (sk_max_ack_backlog), rqueue its accept queue's length.
			e.Remote, e.Backlog = netip.AddrPort{}, s.WQueue
			e.Flags |= event.FlagInbound
		} else if accepted(listeners, ephemeral, e.Local, e.Remote) {
			e.Flags |= event.FlagInbound
		}
		if p, ok := procs[s.INode]; ok {
			e.PID, e.TID = p.pid, p.pid
			e.SetComm(p.comm)
		}
		e.Cookie = uint64(s.ID.Cookie[0]) | uint64(s.ID.Cookie[1])<<32
		if e.PID != 0 && e.Cookie != 0 && s.State != stateListen {
			owners[e.Cookie] = Owner{PID: e.PID, UID: e.UID, Comm: string(e.Comm()), Inbound: e.Inbound()}
		}
		events = append(events, e)
	}
	slices.SortStableFunc(events, func(a, b event.Event) int { return int(a.PID) - int(b.PID) })
	return events, owners, denied, nil
}

// NetNSCookie is the cookie of the network namespace tuxscope runs in
// (SO_NETNS_COOKIE, Linux 5.14 and later): what the kernel side reports
// as the namespace of the sockets there; 0 if unknown.
func NetNSCookie() uint64 {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	var b [8]byte
	l := uint32(len(b))
	if _, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_NETNS_COOKIE,
		uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&l)), 0); errno != 0 || l != 8 {
		return 0
	}
	return binary.NativeEndian.Uint64(b[:])
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

// accepted tells whether a connection was accepted here: its local end
// is a listener's. A listener that has since closed leaves no trace in
// sock_diag, so then the ports tell: a local port outside the ephemeral
// range facing a remote one inside it was accepted; a connection to a
// port this host listens on, over loopback, was connected.
func accepted(listeners map[netip.AddrPort]bool, ephemeral [2]uint16, local, remote netip.AddrPort) bool {
	if isListening(listeners, local) {
		return true
	}
	if remote.Addr().Unmap().IsLoopback() && isListening(listeners, remote) {
		return false
	}
	in := func(p uint16) bool { return p >= ephemeral[0] && p <= ephemeral[1] }
	return !in(local.Port()) && in(remote.Port())
}

// ephemeralPorts is the range the kernel picks local ports of outbound
// connections from (net.ipv4.ip_local_port_range, which IPv6 shares);
// Linux's default if it cannot be read.
func ephemeralPorts() [2]uint16 {
	r := [2]uint16{32768, 60999}
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return r
	}
	var lo, hi uint16
	if n, _ := fmt.Sscanf(string(b), "%d %d", &lo, &hi); n == 2 && lo <= hi {
		r = [2]uint16{lo, hi}
	}
	return r
}

type proc struct {
	pid  uint32
	comm string
}

// maxFDsScanned bounds the /proc walk on hosts with huge fd tables.
const maxFDsScanned = 1 << 20

// socketOwners maps socket inodes to the lowest pid holding them, and
// lists the processes whose open files it was not allowed to read.
func socketOwners() (map[uint32]proc, []uint32) {
	owners := map[uint32]proc{}
	var denied []uint32
	pids, _ := filepath.Glob("/proc/[0-9]*")
	scanned := 0
	for _, dir := range pids {
		pid, err := strconv.ParseUint(filepath.Base(dir), 10, 32)
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(dir + "/fd")
		if err != nil {
			if errors.Is(err, fs.ErrPermission) && !kernelThread(dir) {
				denied = append(denied, uint32(pid))
			}
			continue // gone, or a kernel thread
		}
		var comm string
		linkDenied := false
		for _, fd := range fds {
			if scanned++; scanned > maxFDsScanned {
				return owners, denied
			}
			link, err := os.Readlink(dir + "/fd/" + fd.Name())
			if errors.Is(err, fs.ErrPermission) {
				linkDenied = true
			}
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
		if linkDenied {
			denied = append(denied, uint32(pid))
		}
	}
	return owners, denied
}

// kernelThread reports whether /proc/PID dir is a kernel thread's (or a
// zombie's): it has no command line, and no files to hold a socket.
func kernelThread(dir string) bool {
	b, err := os.ReadFile(dir + "/cmdline")
	return err == nil && len(b) == 0
}

package tracer

import (
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tuxscope/tuxscope/internal/bpf"
	"github.com/tuxscope/tuxscope/internal/event"
	"github.com/tuxscope/tuxscope/internal/tcpinfo"
	"github.com/tuxscope/tuxscope/internal/updates"
)

// updateSource is what an updates.Poller reads: the kernel side's
// connection table, and sock_diag.
type updateSource struct{ t *Tracer }

// Conns lists the tracked connections a process holds (established or
// accepted, with the socket's inode known), by inode. The walk is bounded
// by the table's capacity (--conn-table).
func (s updateSource) Conns() (map[uint32]updates.Conn, error) {
	out := map[uint32]updates.Conn{}
	err := batchWalk(s.t.loader.maps.Maps[bpf.TuxscopeMapConns], func(v *bpf.TuxscopeConn) {
		oc, ok := openConn(v)
		if !ok || v.Ino == 0 || oc.PID == 0 {
			return
		}
		out[v.Ino] = updates.Conn{
			PID: oc.PID, UID: v.Owner.Uid, Comm: oc.Comm, CgroupID: oc.CgroupID,
			Inbound: oc.Inbound, EstablishedNs: v.EstablishedNs,
		}
	})
	if err != nil {
		return nil, fmt.Errorf("reading the connections map: %w", err)
	}
	return out, nil
}

func (updateSource) Dump(fn func(*tcpinfo.Sample) bool) error { return tcpinfo.Dump(fn) }

// ownNetNSCookie is the cookie of tuxscope's network namespace, which its
// sock_diag dumps see (SO_NETNS_COOKIE, Linux 5.14+); 0 if unknown.
func ownNetNSCookie() uint64 {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	var cookie uint64
	size := uint32(unsafe.Sizeof(cookie))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_NETNS_COOKIE,
		uintptr(unsafe.Pointer(&cookie)), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 || size != 8 {
		return 0
	}
	return cookie
}

// newPoller is the update poller for a run with --updates, and its report
// to the reader: polls hand h update events, and say how many were
// skipped over the limit.
func (t *Tracer) newPoller() func(now time.Time, h event.Handler) error {
	if t.cfg.Updates <= 0 {
		return nil
	}
	p := updates.New(updateSource{t}, t.cfg.Updates, t.cfg.MaxUpdates, ownNetNSCookie())
	return func(now time.Time, h event.Handler) error {
		skipped, err := p.Poll(monotonicNs(), h.Event)
		if err != nil {
			return fmt.Errorf("--updates: %w", err)
		}
		if skipped > 0 {
			return h.Lost(skipped, event.UpdateLimit, now)
		}
		return nil
	}
}

// monotonicNs is CLOCK_MONOTONIC, the kernel side's timestamp clock.
func monotonicNs() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// Package event defines what tuxscope observes, independent of how the
// kernel side delivered it, and decodes the kernel's ring-buffer records.
package event

import (
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Type is what happened.
type Type uint8

// Values shared with the kernel (enum event_type in internal/bpf/event.h),
// plus Lost, which only user space makes.
const (
	Connect Type = 1
	Accept  Type = 2
	Lost    Type = 255
)

func (t Type) String() string {
	switch t {
	case Connect:
		return "connect"
	case Accept:
		return "accept"
	case Lost:
		return "lost"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ParseType is the inverse of Type.String for the types a user can ask for.
func ParseType(s string) (Type, error) {
	switch s {
	case "connect":
		return Connect, nil
	case "accept":
		return Accept, nil
	}
	return 0, fmt.Errorf("unknown event type %q (want connect or accept)", s)
}

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
	comm        [16]byte
	commLen     uint8
}

// Comm is the process (thread) name as the kernel reported it: untrusted
// bytes, not necessarily UTF-8. The slice aliases the event.
func (e *Event) Comm() []byte { return e.comm[:e.commLen] }

// SetComm sets the name, truncated to the kernel's 15 bytes (TASK_COMM_LEN-1).
func (e *Event) SetComm(name string) {
	e.commLen = uint8(copy(e.comm[:15], name))
}

// Src is the SRC column: the local end for a connect, the remote client for
// an accept.
func (e *Event) Src() netip.AddrPort {
	if e.Type == Accept {
		return e.Remote
	}
	return e.Local
}

// Dst is the DST column: the remote end for a connect, the local listener
// for an accept.
func (e *Event) Dst() netip.AddrPort {
	if e.Type == Accept {
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

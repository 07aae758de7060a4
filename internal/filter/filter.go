// Package filter decides which events a user asked for. The kernel side
// applies the cheap parts (pid, type, family, port) before an event costs
// ring-buffer traffic; Match applies all of them again in user space, for
// events that did not come through those kernel filters and as a check.
package filter

import (
	"github.com/tuxscope/tuxscope/internal/event"
)

// Spec is a set of filters; each empty field matches everything.
type Spec struct {
	PIDs  []uint32
	Comms []string // exact process names (the kernel keeps 15 bytes)
	Ports []uint16 // either end
	Types []event.Type
	IPv4  bool // with IPv6: both false means both families
	IPv6  bool
}

// WantType reports whether events of type t pass.
func (s *Spec) WantType(t event.Type) bool {
	return len(s.Types) == 0 || contains(s.Types, t)
}

// WantFamily reports whether events of IP version v (4 or 6) pass.
func (s *Spec) WantFamily(v uint8) bool {
	if !s.IPv4 && !s.IPv6 {
		return true
	}
	return (v == 4 && s.IPv4) || (v == 6 && s.IPv6)
}

// Match reports whether e passes every filter.
func (s *Spec) Match(e *event.Event) bool {
	// Existing connections and DNS messages are asked for with --existing
	// and --dns, not --type.
	if (e.Type.Selectable() && !s.WantType(e.Type)) || !s.WantFamily(e.Family) {
		return false
	}
	// A close handed to another process (the child a server forked to
	// serve it) still belongs to the watched process that opened it.
	if len(s.PIDs) > 0 && !contains(s.PIDs, e.PID) && (e.OpenerPID == 0 || !contains(s.PIDs, e.OpenerPID)) {
		return false
	}
	if len(s.Ports) > 0 && !contains(s.Ports, e.Local.Port()) && !contains(s.Ports, e.Remote.Port()) {
		return false
	}
	return s.matchComm(e.Comm())
}

// MatchOwner reports whether a process passes the --pid and --comm
// filters: for what is known only by its owner (a connection still open at
// exit), not by an event.
func (s *Spec) MatchOwner(pid uint32, comm []byte) bool {
	if len(s.PIDs) > 0 && !contains(s.PIDs, pid) {
		return false
	}
	return s.matchComm(comm)
}

func (s *Spec) matchComm(comm []byte) bool {
	if len(s.Comms) == 0 {
		return true
	}
	for _, c := range s.Comms {
		if string(comm) == truncateComm(c) {
			return true
		}
	}
	return false
}

// truncateComm is what the kernel keeps of a process name.
func truncateComm(s string) string {
	if len(s) > 15 {
		return s[:15]
	}
	return s
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

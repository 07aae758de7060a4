// Package filter decides which events a user asked for. The kernel side
// applies the cheap parts (pid, type, family, port, and the workload
// filters wherever a set of cgroup ids can express them) before an event
// costs ring-buffer traffic; Match applies all of them again in user
// space, for events that did not come through those kernel filters and as
// the exact test.
package filter

import (
	"errors"
	"fmt"
	"path"
	"strings"

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
	// Proto is --proto: "tcp" or "udp"; "" both.
	Proto string

	// The workload filters (see MatchWorkload): values of one kind OR,
	// kinds AND, like the others.
	Containers []string // a container id prefix (MinIDPrefix hex digits or more) or a container name
	Pods       []string // Kubernetes pod names
	Namespaces []string // Kubernetes namespaces
	Cgroups    []string // cgroup paths (clean, absolute): that cgroup and all below it
}

// MinIDPrefix is the fewest hex digits --container matches as an id
// prefix; a shorter value matches container names only.
const MinIDPrefix = 4

// MaxNameLen bounds a --container, --pod or --namespace value (a DNS
// subdomain's 253 bytes, Kubernetes' longest name).
const MaxNameLen = 253

// CheckName validates a --container, --pod or --namespace value: not
// empty, at most MaxNameLen bytes, no '/', spaces or control characters
// (no runtime or Kubernetes name has them).
func CheckName(kind, s string) error {
	if s == "" {
		return fmt.Errorf("empty %s", kind)
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("%s %.20q...: longer than %d bytes", kind, s, MaxNameLen)
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '/' || r == '\uFFFD' {
			return fmt.Errorf("invalid %s %q: no spaces, slashes or control characters", kind, s)
		}
	}
	return nil
}

// CleanCgroup validates a --cgroup path and returns it cleaned (no
// trailing slash, no "//"): absolute, as the 0:: line of /proc/PID/cgroup
// writes it, without "." or ".." components.
func CleanCgroup(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty cgroup path")
	}
	if p[0] != '/' {
		return "", fmt.Errorf("cgroup path %q: must be absolute, as /proc/PID/cgroup writes it (e.g. /system.slice/nginx.service)", p)
	}
	if len(p) > 4096 {
		return "", fmt.Errorf("cgroup path %.20q...: longer than 4096 bytes", p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == "." || c == ".." {
			return "", fmt.Errorf("cgroup path %q: no . or .. components", p)
		}
	}
	for _, r := range p {
		if r < ' ' || r == 0x7f || r == '\uFFFD' {
			return "", fmt.Errorf("cgroup path %q: control characters", p)
		}
	}
	return path.Clean(p), nil
}

// HasWorkload reports whether any workload filter is set.
func (s *Spec) HasWorkload() bool {
	return len(s.Containers)+len(s.Pods)+len(s.Namespaces)+len(s.Cgroups) > 0
}

// MatchWorkload reports whether an event whose workload fields (filled by
// internal/container) are these passes the workload filters: --container
// when the container id starts with a value of MinIDPrefix hex digits or
// more, or the container name equals it; --pod and --namespace on the
// names a CRI runtime gives; --cgroup when the cgroup is the path or
// below it (/a/b selects /a/b and /a/b/c, not /a/bc). An unknown field
// ("") matches nothing.
func (s *Spec) MatchWorkload(e *event.Event) bool {
	if len(s.Containers) > 0 && !matchAny(s.Containers, func(v string) bool {
		return v == e.ContainerName && v != "" ||
			e.ContainerID != "" && len(v) >= MinIDPrefix && isHex(v) && strings.HasPrefix(e.ContainerID, v)
	}) {
		return false
	}
	if len(s.Pods) > 0 && (e.Pod == "" || !contains(s.Pods, e.Pod)) {
		return false
	}
	if len(s.Namespaces) > 0 && (e.Namespace == "" || !contains(s.Namespaces, e.Namespace)) {
		return false
	}
	if len(s.Cgroups) > 0 && !matchAny(s.Cgroups, func(p string) bool { return CgroupBelow(e.Cgroup, p) }) {
		return false
	}
	return true
}

// CgroupBelow reports whether cgroup path c is p or below it.
func CgroupBelow(c, p string) bool {
	if c == "" {
		return false
	}
	if p == "/" {
		return c[0] == '/'
	}
	return c == p || len(c) > len(p) && c[len(p)] == '/' && c[:len(p)] == p
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}

func matchAny(list []string, f func(string) bool) bool {
	for _, v := range list {
		if f(v) {
			return true
		}
	}
	return false
}

// WantType reports whether events of type t pass.
func (s *Spec) WantType(t event.Type) bool {
	return len(s.Types) == 0 || contains(s.Types, t)
}

// WantProto reports whether events of protocol p ("tcp" or "udp") pass.
func (s *Spec) WantProto(p string) bool { return s.Proto == "" || s.Proto == p }

// ParseProto validates a --proto value.
func ParseProto(p string) (string, error) {
	if p != "tcp" && p != "udp" {
		return "", fmt.Errorf("unknown protocol %q (want tcp or udp)", p)
	}
	return p, nil
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
	// DNS messages have --dns of their own.
	if e.Type != event.DNS && !s.WantProto(e.Proto()) {
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
	if s.HasWorkload() && !s.MatchWorkload(e) {
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

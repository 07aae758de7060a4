// Package container tells which container, Kubernetes pod or systemd
// service a process runs in, from its cgroup path: the names container
// runtimes and the kubelet give the cgroups they create carry the ids.
//
// Parse is pure and bounded (it never panics, whatever the input); the
// Resolver maps an event's cgroup v2 id and pid to a path, with caches.
package container

import "strings"

// Runtimes, as the runtime key names them.
const (
	Docker     = "docker"
	Containerd = "containerd"
	CRIO       = "cri-o"
	Podman     = "podman"
	Systemd    = "systemd"
)

// MaxPath bounds the cgroup paths Parse looks at (the kernel's PATH_MAX).
const MaxPath = 4096

// Info is what a cgroup path says about the process in it.
type Info struct {
	Cgroup      string // the path, e.g. /system.slice/docker-<id>.scope
	ContainerID string // the full 64-hex id; "" if the path shows none
	Runtime     string // docker, containerd, cri-o, podman, systemd; "" if none
	PodUID      string // Kubernetes pod uid, with dashes; "" if none
	Name        string // a systemd unit's name (runtime systemd), e.g. nginx.service
}

// Parse derives what path shows: a container id and its runtime, a pod
// uid, or a plain systemd service unit. A path longer than MaxPath, or
// not absolute, shows nothing (Cgroup is still set when it is absolute
// and bounded).
func Parse(path string) Info {
	if len(path) == 0 || len(path) > MaxPath || path[0] != '/' {
		return Info{}
	}
	in := Info{Cgroup: path}
	var prev, prev2 string // the components before this one
	last := ""
	for rest := path[1:]; rest != ""; {
		c := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			c, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		if c == "" {
			continue
		}
		if uid, ok := podUID(c, prev); ok {
			in.PodUID = uid
		} else if id, rt, ok := containerOf(c, prev, prev2); ok {
			in.ContainerID, in.Runtime = id, rt
		}
		prev2, prev, last = prev, c, c
	}
	if in.ContainerID == "" && in.PodUID == "" && strings.HasSuffix(last, ".service") && len(last) > len(".service") {
		in.Runtime, in.Name = Systemd, last
	}
	return in
}

// containerOf recognises one component as a container's cgroup; prev and
// prev2 are the components before it.
func containerOf(c, prev, prev2 string) (id, runtime string, ok bool) {
	trim := func(prefix string) (string, bool) {
		if !strings.HasPrefix(c, prefix) {
			return "", false
		}
		s := strings.TrimSuffix(c[len(prefix):], ".scope")
		return s, isID(s)
	}
	for _, p := range []struct{ prefix, runtime string }{
		{"docker-", Docker},
		{"cri-containerd-", Containerd},
		{"crio-", CRIO},
		{"libpod-", Podman},
	} {
		if s, ok := trim(p.prefix); ok {
			return s, p.runtime, true
		}
	}
	if !isID(c) {
		return "", "", false
	}
	switch {
	case prev == "docker":
		return c, Docker, true
	case strings.HasPrefix(prev, "pod") && (prev2 == "kubepods" || prev2 == "burstable" || prev2 == "besteffort" || prev2 == "guaranteed"):
		if _, ok := podUID(prev, prev2); ok {
			return c, Containerd, true
		}
	}
	return "", "", false
}

// podUID recognises a pod's cgroup: kubepods-<qos>-pod<uid>.slice or
// kubepods-pod<uid>.slice (the systemd driver, dashes written as
// underscores), or pod<uid> below kubepods (the cgroupfs driver).
func podUID(c, prev string) (string, bool) {
	var uid string
	switch {
	case strings.HasPrefix(c, "kubepods-") && strings.HasSuffix(c, ".slice"):
		s := c[:len(c)-len(".slice")]
		i := strings.LastIndex(s, "-pod")
		if i < 0 {
			return "", false
		}
		uid = strings.ReplaceAll(s[i+len("-pod"):], "_", "-")
	case strings.HasPrefix(c, "pod") && (prev == "kubepods" || prev == "burstable" || prev == "besteffort" || prev == "guaranteed"):
		uid = c[len("pod"):]
	default:
		return "", false
	}
	return uid, isUID(uid)
}

// isID reports whether s is a full container id: 64 lowercase hex digits.
func isID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

// isUID reports whether s looks like a pod uid: a UUID
// (8-4-4-4-12 hex digits), or 32 hex digits (a static pod's hash).
func isUID(s string) bool {
	switch len(s) {
	case 32:
		for i := 0; i < len(s); i++ {
			if !isHex(s[i]) {
				return false
			}
		}
		return true
	case 36:
		for i := 0; i < len(s); i++ {
			if i == 8 || i == 13 || i == 18 || i == 23 {
				if s[i] != '-' {
					return false
				}
			} else if !isHex(s[i]) {
				return false
			}
		}
		return true
	}
	return false
}

func isHex(b byte) bool { return b >= '0' && b <= '9' || b >= 'a' && b <= 'f' }

// ProcCgroup picks, from the contents of /proc/PID/cgroup, the process's
// v2 path (the 0:: line) and a v1 path for where the v2 one is the root
// (the name=systemd hierarchy's, else the first of memory, pids, cpu,
// cpuset or any other that is not the root). Either is "" if absent.
func ProcCgroup(data []byte) (v2, v1 string) {
	best := 99
	for s := string(data); s != ""; {
		line := s
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			line, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		// hierarchy-ID:controllers:path; the path may contain ':'.
		i := strings.IndexByte(line, ':')
		if i < 0 {
			continue
		}
		j := strings.IndexByte(line[i+1:], ':')
		if j < 0 {
			continue
		}
		ctrl, path := line[i+1:i+1+j], line[i+2+j:]
		if len(path) == 0 || path[0] != '/' || len(path) > MaxPath {
			continue
		}
		if line[:i] == "0" && ctrl == "" {
			v2 = path
			continue
		}
		if path == "/" {
			continue
		}
		rank := 5
		for k, want := range []string{"name=systemd", "memory", "pids", "cpu", "cpuset"} {
			if hasController(ctrl, want) {
				rank = k
				break
			}
		}
		if rank < best {
			best, v1 = rank, path
		}
	}
	return v2, v1
}

// hasController reports whether the comma-separated list has want.
func hasController(list, want string) bool {
	for list != "" {
		c := list
		if i := strings.IndexByte(list, ','); i >= 0 {
			c, list = list[:i], list[i+1:]
		} else {
			list = ""
		}
		if c == want {
			return true
		}
	}
	return false
}

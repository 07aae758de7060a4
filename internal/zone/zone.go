// Package zone names the interfaces that IPv6 link-local addresses are
// scoped to, so fe80::1 on eth0 prints as fe80::1%eth0. The kernel side
// reports an interface index and the socket's network namespace; an index
// means something only in its namespace, so a name is looked up there:
// in tuxscope's own namespace directly, in another through a handle on it
// (a bind mount under /run/netns, as `ip netns` makes, or a process in it).
// When the name cannot be found, the zone is the index, as RFC 4007 allows.
package zone

import (
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tuxscope/tuxscope/internal/event"
)

// ttl is how long a name is trusted: an interface can be renamed, or its
// index reused after it is deleted.
const ttl = 5 * time.Second

// maxEntries bounds the cache; past it, it starts afresh.
const maxEntries = 1024

type key struct{ ifindex, netns uint32 }

type entry struct {
	name    string
	expires time.Time
}

// Resolver names interfaces by index and network namespace, with a small
// cache. Not safe for concurrent use (the pipeline has one goroutine).
type Resolver struct {
	self  uint32 // tuxscope's own network namespace (inode)
	cache map[key]entry
	now   func() time.Time
	// lookup finds an interface's name in a network namespace (0: ours).
	lookup func(ifindex, netns uint32) (string, bool)
}

// New returns a resolver for this process's network namespace.
func New() *Resolver {
	r := &Resolver{cache: map[key]entry{}, now: time.Now}
	if fi, err := os.Stat("/proc/self/ns/net"); err == nil {
		r.self = uint32(fi.Sys().(*syscall.Stat_t).Ino)
	}
	r.lookup = r.lookupName
	return r
}

// Zone is the zone of a link-local address on interface ifindex of
// network namespace netns (0: tuxscope's own): the interface's name, or
// the index when the name is unknown.
func (r *Resolver) Zone(ifindex, netns uint32) string {
	if netns == r.self {
		netns = 0
	}
	k := key{ifindex, netns}
	now := r.now()
	if e, ok := r.cache[k]; ok && now.Before(e.expires) {
		return e.name
	}
	name, ok := r.lookup(ifindex, netns)
	if !ok || !safe(name) {
		name = strconv.FormatUint(uint64(ifindex), 10)
	}
	if len(r.cache) >= maxEntries {
		clear(r.cache)
	}
	r.cache[k] = entry{name, now.Add(ttl)}
	return name
}

// Enrich gives e's link-local addresses their zone.
func (r *Resolver) Enrich(e *event.Event) {
	if e.IfIndex == 0 {
		return
	}
	if !linkLocal(e.Local.Addr()) && !linkLocal(e.Remote.Addr()) {
		return
	}
	z := r.Zone(e.IfIndex, e.IfIndexNetNS)
	e.Local, e.Remote = withZone(e.Local, z), withZone(e.Remote, z)
}

func linkLocal(a netip.Addr) bool {
	return a.Is6() && !a.Is4In6() && (a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast())
}

func withZone(ap netip.AddrPort, zone string) netip.AddrPort {
	if !linkLocal(ap.Addr()) {
		return ap
	}
	return netip.AddrPortFrom(ap.Addr().WithZone(zone), ap.Port())
}

// safe accepts the names interfaces usually have: printable ASCII without
// the characters that quote or delimit an address. Linux allows nearly
// any byte in a name; a zone that would need escaping in a terminal, in
// JSON or in "[addr%zone]:port" is shown as the index instead.
func safe(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '%' || c == '[' || c == ']' {
			return false
		}
	}
	return true
}

// lookupName finds the name in netns: ours directly, another's through a
// handle on it.
func (r *Resolver) lookupName(ifindex, netns uint32) (string, bool) {
	if netns == 0 {
		return ifName(ifindex)
	}
	path, ok := findNetNS(netns)
	if !ok {
		return "", false
	}
	return nameIn(path, netns, ifindex)
}

// ifName asks the kernel for the name of interface ifindex in the calling
// thread's network namespace.
func ifName(ifindex uint32) (string, bool) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", false
	}
	defer unix.Close(fd)
	return ifNameOn(fd, ifindex)
}

// ifNameOn is SIOCGIFNAME on a socket: the name of interface ifindex in the
// socket's network namespace (where it was made).
func ifNameOn(fd int, ifindex uint32) (string, bool) {
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return "", false
	}
	ifr.SetUint32(ifindex)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFNAME, ifr); err != nil {
		return "", false
	}
	return ifr.Name(), true
}

// findNetNS finds a path to the network namespace with this inode: a
// named one under /run/netns, or a process's.
func findNetNS(inode uint32) (string, bool) {
	candidates, _ := filepath.Glob("/run/netns/*")
	procs, _ := filepath.Glob("/proc/[0-9]*/ns/net")
	for _, p := range append(candidates, procs...) {
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil && uint32(st.Ino) == inode {
			return p, true
		}
	}
	return "", false
}

// nameIn looks the interface up from inside the namespace at path: a
// locked thread enters it only to make a socket there (a socket stays in
// the namespace it was made in), and leaves at once.
func nameIn(path string, inode, ifindex uint32) (string, bool) {
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", false
	}
	defer unix.Close(target)
	var st unix.Stat_t
	if unix.Fstat(target, &st) != nil || uint32(st.Ino) != inode {
		return "", false // it changed since it was found
	}
	fd := -1
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			return
		}
		defer unix.Close(self)
		if unix.Setns(target, unix.CLONE_NEWNET) != nil {
			runtime.UnlockOSThread()
			return
		}
		fd, _ = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if unix.Setns(self, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else the thread stays locked and the runtime retires it with this goroutine
	}()
	<-done
	if fd < 0 {
		return "", false
	}
	defer unix.Close(fd)
	return ifNameOn(fd, ifindex)
}

package hosts

import (
	"container/list"
	"errors"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// Bounds on the per-namespace cache and how often it looks again.
const (
	// MaxNamespaces is how many mount namespaces' hosts files are kept;
	// MaxBytes how many bytes their tables hold together (Table.Bytes).
	// Past either the least recently used goes (counted in Evicted).
	MaxNamespaces = 256
	MaxBytes      = 16 << 20
	// A process's mount namespace is looked up again, and a namespace's
	// hosts file stat'ed again, at most this often.
	recheckNs = 1e9
	// maxPIDs bounds the process → namespace cache; past it, entries
	// older than recheckNs go (looked up again if their process lives).
	maxPIDs = 16384
	// maxCgroups bounds the cgroup → namespace hints; past it they are
	// all forgotten and learned again.
	maxCgroups = 16384
)

var loopback4 = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// fileID is what tells that a hosts file changed.
type fileID struct {
	dev, ino, size     uint64
	mtimeNs, ctimeNs   int64
	exists, unreadable bool
}

// namespace is one mount namespace's hosts file.
type namespace struct {
	ino     uint64 // of /proc/PID/ns/mnt
	id      fileID
	table   *Table
	checked uint64 // when its file was last stat'ed
	elem    *list.Element
}

type pidNS struct {
	ns      uint64
	checked uint64
}

// View names addresses from the hosts file each process sees: its mount
// namespace's /etc/hosts, read through /proc/PID/root (absolute symlinks
// resolved inside that root), cached per mount namespace and re-read when
// the file's inode, size, mtime or ctime changes (stat'ed at most once a
// second). A process already gone from /proc is named from the cached
// file of the namespace it was last seen in, else of its cgroup's one
// namespace (see Name); otherwise it gets no name. Not safe for
// concurrent use.
type View struct {
	proc   string // "/proc", or a stand-in in tests
	spaces map[uint64]*namespace
	order  list.List // of *namespace, least recently used first
	pids   map[uint32]pidNS
	// cgroups says, per cgroup, the one mount namespace its processes
	// were seen in (0: more than one): the namespace of a process gone
	// before it was seen.
	cgroups map[uint64]uint64
	bytes   int
	limits  struct{ spaces, bytes int }

	// Skipped counts hosts-file lines and names not used (Table.Skipped),
	// each time a file is read.
	Skipped uint64
	// Evicted counts namespaces' files forgotten to stay within
	// MaxNamespaces and MaxBytes (read again when needed).
	Evicted uint64
	// Unreadable counts hosts files that exist but could not be read (not
	// a regular file, permission denied) and processes whose namespace or
	// root tuxscope may not look at, each time they are looked at; Err is
	// the first such error.
	Unreadable uint64
	Err        error
}

// New returns a view that reads /proc.
func New() *View { return newView("/proc") }

func newView(proc string) *View {
	v := &View{proc: proc, spaces: map[uint64]*namespace{}, pids: map[uint32]pidNS{}, cgroups: map[uint64]uint64{}}
	v.limits.spaces, v.limits.bytes = MaxNamespaces, MaxBytes
	return v
}

// Name returns the names process pid's hosts file gives addr, the
// canonical one first (nil: none), as of now (kernel monotonic ns, the
// event's time). The slice is clipped: appending to it copies. cgroup
// (0: unknown) is the process's: when the process is gone from /proc
// before it was seen, its namespace is the one every process seen of its
// cgroup was in, if they all were in one (a container's).
//
// 127.0.0.1 and ::1 get none: every hosts file calls them localhost,
// which says no more than the address.
func (v *View) Name(pid uint32, cgroup uint64, addr netip.Addr, now uint64) []string {
	addr = addr.Unmap()
	if pid == 0 || !addr.IsValid() || addr == loopback4 || addr == netip.IPv6Loopback() {
		return nil
	}
	ns := v.namespace(pid, cgroup, now)
	if ns == nil {
		return nil
	}
	return slices.Clip(ns.table.Names(addr))
}

// mountNS returns the inode of pid's mount namespace, 0 if unknown.
func (v *View) mountNS(pid uint32, cgroup uint64, now uint64) uint64 {
	p, ok := v.pids[pid]
	if ok && now < p.checked+recheckNs {
		return p.ns
	}
	var st unix.Stat_t
	if err := unix.Stat(v.proc+"/"+strconv.FormatUint(uint64(pid), 10)+"/ns/mnt", &st); err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			// Another user's process, without CAP_SYS_PTRACE: no name,
			// and no look again for a second.
			v.unreadable(err)
			v.remember(pid, 0, now)
			return 0
		}
		if ok {
			// Gone (or its pid reused by a process not yet
			// readable): the namespace it was last seen in.
			return p.ns
		}
		if cgroup != 0 {
			return v.cgroups[cgroup]
		}
		return 0
	}
	if cgroup != 0 {
		switch ns, seen := v.cgroups[cgroup]; {
		case !seen:
			if len(v.cgroups) >= maxCgroups {
				clear(v.cgroups)
			}
			v.cgroups[cgroup] = st.Ino
		case ns != st.Ino && ns != 0:
			v.cgroups[cgroup] = 0 // more than one: no guess
		}
	}
	v.remember(pid, st.Ino, now)
	return st.Ino
}

// remember keeps pid's namespace (0: not to be known), within maxPIDs.
func (v *View) remember(pid uint32, ns uint64, now uint64) {
	if _, ok := v.pids[pid]; !ok && len(v.pids) >= maxPIDs {
		for k, q := range v.pids {
			if now >= q.checked+recheckNs {
				delete(v.pids, k)
			}
		}
		if len(v.pids) >= maxPIDs {
			clear(v.pids) // all seen within a second: look them up again
		}
	}
	v.pids[pid] = pidNS{ns, now}
}

// namespace returns pid's namespace with its hosts file up to date; nil
// if its namespace is unknown.
func (v *View) namespace(pid uint32, cgroup uint64, now uint64) *namespace {
	ino := v.mountNS(pid, cgroup, now)
	if ino == 0 {
		return nil
	}
	ns := v.spaces[ino]
	if ns != nil {
		v.order.MoveToBack(ns.elem)
		if now < ns.checked+recheckNs {
			return ns
		}
	}
	f, id, err := v.open(pid)
	if f != nil {
		defer f.Close()
	}
	if err != nil {
		// The process is gone: keep what is known of its namespace
		// (nil if nothing is).
		return ns
	}
	if ns != nil && ns.id == id {
		ns.checked = now
		return ns
	}
	t := &Table{}
	if f != nil {
		data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
		if err != nil {
			id.unreadable = true
			v.unreadable(err)
		} else {
			t = Parse(data)
			v.Skipped += uint64(t.Skipped)
		}
	}
	if ns == nil {
		ns = &namespace{ino: ino}
		ns.elem = v.order.PushBack(ns)
		v.spaces[ino] = ns
	} else {
		v.bytes -= ns.table.Bytes
	}
	ns.id, ns.table, ns.checked = id, t, now
	v.bytes += t.Bytes
	for len(v.spaces) > v.limits.spaces || v.bytes > v.limits.bytes {
		old := v.order.Front().Value.(*namespace)
		if old == ns {
			break // the one in use stays, alone if it must
		}
		v.order.Remove(old.elem)
		delete(v.spaces, old.ino)
		v.bytes -= old.table.Bytes
		v.Evicted++
	}
	return ns
}

func (v *View) unreadable(err error) {
	v.Unreadable++
	if v.Err == nil {
		v.Err = err
	}
}

// open opens pid's /etc/hosts, resolved inside its root, and says what
// it is. A missing file (or one that is not a regular file, or cannot be
// read) gives f nil and an id saying so; err is set only when the
// process is gone (or its root cannot be opened).
func (v *View) open(pid uint32) (f *os.File, id fileID, err error) {
	root, err := unix.Open(v.proc+"/"+strconv.FormatUint(uint64(pid), 10)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			v.unreadable(err)
		}
		return nil, id, err
	}
	defer unix.Close(root)
	const flags = unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC
	fd, err := unix.Openat2(root, "etc/hosts", &unix.OpenHow{Flags: flags, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if errors.Is(err, unix.ENOSYS) {
		// Before Linux 5.6: an absolute symlink would resolve in
		// tuxscope's root, so none is followed.
		fd, err = unix.Openat(root, "etc/hosts", flags|unix.O_NOFOLLOW, 0)
	}
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, id, nil
	case err != nil:
		v.unreadable(err)
		id.unreadable = true
		return nil, id, nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		if err == nil {
			err = errors.New("/etc/hosts is not a regular file")
		}
		v.unreadable(err)
		id.unreadable = true
		return nil, id, nil
	}
	id = fileID{dev: uint64(st.Dev), ino: st.Ino, size: uint64(st.Size), exists: true,
		mtimeNs: st.Mtim.Nano(), ctimeNs: st.Ctim.Nano()}
	return os.NewFile(uintptr(fd), "etc/hosts"), id, nil
}

// Drops is Skipped and Evicted (dns.HostsNamer).
func (v *View) Drops() (skipped, evicted uint64) { return v.Skipped, v.Evicted }

// Namespaces is how many namespaces' files are kept (for tests).
func (v *View) Namespaces() int { return len(v.spaces) }

// Package peers links the two ends of a connection when both are on this
// host: each end's events name the process at the other end (PeerPID,
// PeerComm). It is an enricher (internal/pipeline) that learns from the
// events themselves, so it costs the kernel nothing:
//
//   - every connection end tuxscope sees start (connect, established,
//     accept, or listed by --existing) is kept by its network namespace
//     and its addresses, with its owner, until its close; the other end
//     of a connection is the end with the same addresses the other way
//     round, in the same namespace;
//   - every listener (listen, or listed by --existing) is kept by its
//     namespace and address, so a connect, which comes before the
//     accept, can already name the process listening at its destination.
//
// Both are bounded (MaxEnds, MaxListeners); what does not fit is counted
// (Full) and left unnamed. Naming is conservative: an end is named only
// from what belongs to the same connection. A closed end is kept only for
// the other end's close (so both closes are named), never to name a new
// connection; a new connect drops whatever the table held for its
// addresses the other way round; a destination several processes listen
// on (SO_REUSEPORT) names none of them; ends whose namespace is unknown
// (netns cookie 0) are not linked, as two namespaces may hold the same
// addresses (but those --existing lists, all in tuxscope's own namespace,
// are linked with each other).
package peers

import (
	"net"
	"net/netip"
	"time"

	"github.com/tuxscope/tuxscope/internal/event"
)

// Bounds of the tables, the defaults of Linker's MaxEnds and MaxListeners.
const (
	DefaultMaxEnds      = 65536
	DefaultMaxListeners = 16384
)

// closedKeep is how long a closed end waits for its other end's close
// (in the events' kernel time); a connection whose other end's close
// never comes (it was not traced, or was lost) is forgotten after it.
const closedKeep = 2 * time.Minute

type owner struct {
	pid  uint32
	comm event.TaskName
}

func ownerOf(e *event.Event) owner {
	o := owner{pid: e.PID}
	o.comm.Set(e.Comm())
	return o
}

// endKey is a connection end: its namespace, its own address and port
// and the other end's, addresses in their 16-byte form (a dual-stack
// socket's ::ffff:127.0.0.1 is its IPv4 peer's 127.0.0.1). It has no
// padding and no pointer, so the map hashes it as one block of memory.
type endKey struct {
	netns         uint64
	local, remote [16]byte
	lport, rport  uint16
	zero          uint32 // explicit, so that the struct has no padding
}

func newEndKey(netns uint64, local, remote netip.AddrPort) endKey {
	return endKey{netns: netns, local: local.Addr().As16(), remote: remote.Addr().As16(), lport: local.Port(), rport: remote.Port()}
}

func (k endKey) reverse() endKey {
	return endKey{netns: k.netns, local: k.remote, remote: k.local, lport: k.rport, rport: k.lport}
}

type end struct {
	owner
	closed   bool
	closedNs uint64 // the close's kernel time
	gen      uint64 // matches closedList entries to this incarnation
}

type closedRef struct {
	key endKey
	gen uint64
	ns  uint64
}

// listenKey is a listener: its namespace and (unmapped) address.
type listenKey struct {
	netns uint64
	addr  [16]byte // As16
	port  uint16
	v4    bool    // an IPv4 address, not an IPv6 one
	zero  [5]byte // explicit, so that the struct has no padding: hashed as plain memory
}

func newListenKey(netns uint64, a netip.AddrPort) listenKey {
	return listenKey{netns: netns, addr: a.Addr().As16(), port: a.Port(), v4: a.Addr().Is4()}
}

type listener struct {
	owner
	v6only bool
}

// Linker is the enricher. Use New; not safe for concurrent use (the
// pipeline calls it from one goroutine).
type Linker struct {
	// MaxEnds and MaxListeners bound the tables.
	MaxEnds, MaxListeners int
	// Full counts connection ends and listeners not kept because their
	// table was full: their connections may go unnamed.
	Full uint64

	ends map[endKey]end
	// closed lists closed ends, oldest first, from closed[head]; an entry
	// whose end has gone since (its other end closed) is stale, skipped
	// when reached and compacted away when stale entries outnumber the
	// nClosed closed ends the table holds, so it stays bounded by ends.
	closed    []closedRef
	head      int
	nClosed   int
	gen       uint64
	listeners map[listenKey][]listener

	// ownNetNS is tuxscope's own network namespace's cookie (0: unknown),
	// whose local addresses localAddrs lists: a destination among them
	// reaches a listener on a wildcard address.
	ownNetNS   uint64
	localAddrs func() map[netip.Addr]bool
}

// New returns a Linker; ownNetNS is the cookie of the network namespace
// tuxscope runs in (0 if unknown), whose local addresses it reads from
// the system when it needs them.
func New(ownNetNS uint64) *Linker {
	l := &Linker{
		MaxEnds: DefaultMaxEnds, MaxListeners: DefaultMaxListeners,
		ends: map[endKey]end{}, listeners: map[listenKey][]listener{},
		ownNetNS: ownNetNS,
	}
	l.localAddrs = cachedInterfaceAddrs(2 * time.Second)
	return l
}

// cachedInterfaceAddrs lists this namespace's addresses, read again when
// older than ttl.
func cachedInterfaceAddrs(ttl time.Duration) func() map[netip.Addr]bool {
	var (
		at    time.Time
		addrs map[netip.Addr]bool
	)
	return func() map[netip.Addr]bool {
		if addrs != nil && time.Since(at) < ttl {
			return addrs
		}
		at, addrs = time.Now(), map[netip.Addr]bool{}
		ifas, _ := net.InterfaceAddrs()
		for _, a := range ifas {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					addrs[ip.Unmap()] = true
				}
			}
		}
		return addrs
	}
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func keyOf(e *event.Event) endKey {
	return newEndKey(e.NetNS, e.Local, e.Remote)
}

// Preload learns the connections and listeners --existing listed, before
// they are shown, so that both ends of an existing connection name each
// other.
func (l *Linker) Preload(existing []event.Event) {
	for i := range existing {
		l.learn(&existing[i])
	}
}

// Enrich names e's other end, and learns from e.
func (l *Linker) Enrich(e *event.Event) {
	if e.NetNS == 0 && e.Type != event.Existing {
		return
	}
	switch e.Type {
	case event.Listen, event.Connect, event.Accept, event.Established:
		l.learn(e)
	case event.Unlisten:
		l.unlisten(e)
		return
	case event.Failed:
		l.forget(keyOf(e))
		return
	case event.Close:
		l.close(e)
		return
	case event.Existing:
		// Learned by Preload.
	default:
		return
	}
	if e.Listener() {
		return
	}
	k := keyOf(e)
	// A connect's learn has just forgotten the reverse end (unless it is
	// this end, a self-connect): no lookup.
	if rk := k.reverse(); e.Type != event.Connect || rk == k {
		if p, ok := l.ends[rk]; ok && !p.closed && p.pid != 0 {
			e.SetPeer(p.pid, p.comm.Bytes())
			return
		}
	}
	if e.Type == event.Connect || e.Type == event.Established {
		// The connection's other end is not known yet (not accepted):
		// the process listening at its destination. (Not for older
		// connections: another process, a forked child, may hold the
		// accepted end by now.)
		if o, ok := l.listenerAt(e.NetNS, unmap(e.Remote)); ok {
			e.SetPeer(o.pid, o.comm.Bytes())
		}
	}
}

// learn keeps e's end, or its listener.
func (l *Linker) learn(e *event.Event) {
	// Existing connections and listeners are all in tuxscope's own
	// namespace, so they are linked with each other even when its
	// cookie is unknown (0: before Linux 5.14), though not then with the
	// kernel's events.
	if e.NetNS == 0 && e.Type != event.Existing {
		return
	}
	if e.Listener() {
		if e.PID != 0 {
			l.listen(e)
		}
		return
	}
	k := keyOf(e)
	if e.Type == event.Connect {
		// A new connection from k: what the table holds the other way
		// round is an older connection's.
		l.forget(k.reverse())
	}
	if e.PID == 0 {
		return
	}
	cur, ok := l.ends[k]
	if ok && !cur.closed {
		cur.owner = ownerOf(e)
		l.ends[k] = cur
		return
	}
	if ok { // a closed end's place is taken over: the table does not grow
		l.nClosed--
	} else if !l.room() {
		l.Full++
		return
	}
	l.gen++
	l.ends[k] = end{owner: ownerOf(e), gen: l.gen}
}

// forget drops k's end from the table.
func (l *Linker) forget(k endKey) {
	if en, ok := l.ends[k]; ok {
		if en.closed {
			l.nClosed--
		}
		delete(l.ends, k)
	}
}

// room makes room for one more end if it can: closed ends go first,
// oldest first.
func (l *Linker) room() bool {
	for len(l.ends) >= l.MaxEnds && l.nClosed > 0 {
		if !l.dropClosed() {
			break // bounded even if the count and the list ever disagree
		}
	}
	return len(l.ends) < l.MaxEnds
}

// live tells whether a closed-list entry's end is still in the table.
func (l *Linker) live(c *closedRef) bool {
	en, ok := l.ends[c.key]
	return ok && en.closed && en.gen == c.gen
}

// dropClosed forgets the oldest closed end the table still holds, and
// says whether there was one.
func (l *Linker) dropClosed() bool {
	dropped := false
	for l.head < len(l.closed) && !dropped {
		c := &l.closed[l.head]
		l.head++
		if l.live(c) {
			l.forget(c.key)
			dropped = true
		}
	}
	l.compact()
	return dropped
}

// compact keeps the closed list's storage bounded: it moves the entries
// down when half of it is behind head, and drops stale entries when they
// outnumber the live ones.
func (l *Linker) compact() {
	n := len(l.closed) - l.head
	switch {
	case n == 0:
		l.closed, l.head = l.closed[:0], 0
	case n > 2*l.nClosed+64:
		live := l.closed[:0]
		for i := l.head; i < len(l.closed); i++ {
			if l.live(&l.closed[i]) {
				live = append(live, l.closed[i])
			}
		}
		l.closed, l.head = live, 0
	case l.head > len(l.closed)/2 && l.head > 64:
		l.closed = l.closed[:copy(l.closed, l.closed[l.head:])]
		l.head = 0
	}
}

// close names e's other end (still open, or closed and waiting for this
// close), and forgets e's end, or keeps it closed for the other end's
// close.
func (l *Linker) close(e *event.Event) {
	k := keyOf(e)
	for l.head < len(l.closed) && e.TimestampNs > l.closed[l.head].ns+uint64(closedKeep) {
		l.dropClosed()
	}
	rk := k.reverse()
	p, ok := l.ends[rk]
	if ok && p.pid != 0 {
		e.SetPeer(p.pid, p.comm.Bytes())
	}
	if !ok || p.closed {
		l.forget(k)
		if ok {
			l.forget(rk) // not gone with k's unless k is rk (a self-connect)
		}
		return
	}
	// The other end is still open: keep this one, closed, for its close.
	// Its holder is the process that closed it (a forked child, say).
	own, mine := l.ends[k]
	if !mine {
		if e.PID == 0 || !l.room() {
			return
		}
		l.gen++
		own = end{gen: l.gen}
	}
	if e.PID != 0 {
		own.owner = ownerOf(e)
	}
	if !own.closed {
		l.nClosed++
	}
	own.closed, own.closedNs = true, e.TimestampNs
	l.ends[k] = own
	l.closed = append(l.closed, closedRef{key: k, gen: own.gen, ns: e.TimestampNs})
	l.compact()
}

func (l *Linker) listen(e *event.Event) {
	k := newListenKey(e.NetNS, unmap(e.Local))
	ls, ok := l.listeners[k]
	if !ok && len(l.listeners) >= l.MaxListeners {
		l.Full++
		return
	}
	if len(ls) >= 64 { // SO_REUSEPORT groups of more name no one anyway
		return
	}
	l.listeners[k] = append(ls, listener{owner: ownerOf(e), v6only: e.Flags&event.FlagV6Only != 0})
}

// unlisten forgets a listener: the one of the closing process, else (a
// listener another process closed last) the oldest at that address.
func (l *Linker) unlisten(e *event.Event) {
	k := newListenKey(e.NetNS, unmap(e.Local))
	ls := l.listeners[k]
	if len(ls) == 0 {
		return
	}
	i := 0
	for j := range ls {
		if ls[j].pid == e.PID {
			i = j
			break
		}
	}
	ls = append(ls[:i], ls[i+1:]...)
	if len(ls) == 0 {
		delete(l.listeners, k)
		return
	}
	l.listeners[k] = ls
}

// listenerAt is the process listening at dst in namespace netns: one
// bound to dst itself, else to the wildcard address of its family (an
// IPv6 one takes IPv4 connections unless v6only) when dst is an address
// of this host there. Several processes listening there: none.
func (l *Linker) listenerAt(netns uint64, dst netip.AddrPort) (owner, bool) {
	if ls, ok := l.listeners[newListenKey(netns, dst)]; ok {
		return only(ls, dst.Addr().Is4())
	}
	if !dst.Addr().IsLoopback() && (netns != l.ownNetNS || l.ownNetNS == 0 || !l.localAddrs()[dst.Addr()]) {
		return owner{}, false
	}
	if dst.Addr().Is4() {
		if ls, ok := l.listeners[newListenKey(netns, netip.AddrPortFrom(netip.IPv4Unspecified(), dst.Port()))]; ok {
			return only(ls, true)
		}
	}
	if ls, ok := l.listeners[newListenKey(netns, netip.AddrPortFrom(netip.IPv6Unspecified(), dst.Port()))]; ok {
		return only(ls, dst.Addr().Is4())
	}
	return owner{}, false
}

// only is the one process among listeners that can take the connection
// (v4: an IPv4 one), or none if there are several.
func only(ls []listener, v4 bool) (owner, bool) {
	var o owner
	for _, x := range ls {
		if v4 && x.v6only {
			continue
		}
		if o.pid != 0 && o.pid != x.pid {
			return owner{}, false
		}
		o = x.owner
	}
	return o, o.pid != 0
}

package peers

import (
	"net/netip"
	"slices"
	"strconv"
	"testing"

	"github.com/tuxscope/tuxscope/internal/event"
)

const ns = 4096

func ev(t event.Type, pid uint32, comm, local, remote string) *event.Event {
	e := &event.Event{Type: t, PID: pid, NetNS: ns, TimestampNs: 1e9}
	e.SetComm(comm)
	e.Local = netip.MustParseAddrPort(local)
	if remote != "" {
		e.Remote = netip.MustParseAddrPort(remote)
	}
	if t == event.Accept || t == event.Listen || t == event.Unlisten {
		e.Flags |= event.FlagInbound
	}
	return e
}

func peer(e *event.Event) string {
	if e.PeerPID == 0 {
		return ""
	}
	return string(e.PeerComm()) + "/" + itoa(e.PeerPID)
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

func enr(l *Linker, e *event.Event) *event.Event {
	l.Enrich(e)
	return e
}

func newTest() *Linker {
	l := New(ns)
	l.localAddrs = func() map[netip.Addr]bool { return map[netip.Addr]bool{netip.MustParseAddr("198.51.100.1"): true} }
	return l
}

// A loopback connection's whole story, each way of closing, over IPv4,
// IPv6 and dual-stack (an AF_INET6 client of an IPv4 listener, and an
// IPv4 client of a dual-stack listener).
func TestLinkBothEnds(t *testing.T) {
	cases := []struct {
		name                            string
		listen, srvLocal, cliLocal, dst string // dst: the connect's remote, as the client's socket sees it
		cliRemote, srvRemote            string
	}{
		{"ipv4", "127.0.0.1:8080", "127.0.0.1:8080", "127.0.0.1:40000", "127.0.0.1:8080", "127.0.0.1:8080", "127.0.0.1:40000"},
		{"ipv6", "[::1]:8080", "[::1]:8080", "[::1]:40000", "[::1]:8080", "[::1]:8080", "[::1]:40000"},
		{"v6 client, v4 listener", "0.0.0.0:8080", "127.0.0.1:8080", "[::ffff:127.0.0.1]:40000", "[::ffff:127.0.0.1]:8080", "[::ffff:127.0.0.1]:8080", "127.0.0.1:40000"},
		{"v4 client, dual-stack listener", "[::]:8080", "[::ffff:127.0.0.1]:8080", "127.0.0.1:40000", "127.0.0.1:8080", "127.0.0.1:8080", "[::ffff:127.0.0.1]:40000"},
		{"local address, wildcard listener", "0.0.0.0:8080", "198.51.100.1:8080", "198.51.100.1:40000", "198.51.100.1:8080", "198.51.100.1:8080", "198.51.100.1:40000"},
	}
	for _, c := range cases {
		for _, clientFirst := range []bool{true, false} {
			l := newTest()
			l.Enrich(ev(event.Listen, 100, "server", c.listen, ""))
			con := ev(event.Connect, 200, "client", c.cliLocal, c.dst)
			l.Enrich(con)
			est := ev(event.Established, 200, "client", c.cliLocal, c.cliRemote)
			l.Enrich(est)
			acc := ev(event.Accept, 100, "server", c.srvLocal, c.srvRemote)
			l.Enrich(acc)
			cliClose := ev(event.Close, 200, "client", c.cliLocal, c.cliRemote)
			srvClose := ev(event.Close, 101, "child", c.srvLocal, c.srvRemote)
			if clientFirst {
				l.Enrich(cliClose)
				l.Enrich(srvClose)
			} else {
				l.Enrich(srvClose)
				l.Enrich(cliClose)
			}
			wantCliClose := "server/100"
			if !clientFirst {
				wantCliClose = "child/101" // the server's end was closed by its child
			}
			for _, x := range []struct {
				what string
				e    *event.Event
				want string
			}{
				{"connect", con, "server/100"}, {"established", est, "server/100"}, {"accept", acc, "client/200"},
				{"client close", cliClose, wantCliClose}, {"server close", srvClose, "client/200"},
			} {
				if got := peer(x.e); got != x.want {
					t.Errorf("%s (client closes first: %v): %s peer = %q, want %q", c.name, clientFirst, x.what, got, x.want)
				}
			}
			if len(l.ends) != 0 || l.nClosed != 0 || len(l.closed) > 2 {
				t.Errorf("%s: %d ends left after both closes", c.name, len(l.ends))
			}
		}
	}
}

// What must not be named: a remote destination on a port a local process
// listens on, a v6only listener for an IPv4 client, SO_REUSEPORT groups
// of several processes, other namespaces, unknown namespaces, a closed
// end for a new connection, and a listener that stopped.
func TestNoWrongNames(t *testing.T) {
	l := newTest()
	l.Enrich(ev(event.Listen, 100, "server", "0.0.0.0:8080", ""))
	if e := enr(l, ev(event.Connect, 200, "client", "198.51.100.1:40000", "93.184.216.34:8080")); e.PeerPID != 0 {
		t.Errorf("remote destination named %s", peer(e))
	}
	v6only := ev(event.Listen, 101, "v6server", "[::]:8081", "")
	v6only.Flags |= event.FlagV6Only
	l.Enrich(v6only)
	if e := enr(l, ev(event.Connect, 200, "client", "127.0.0.1:40001", "127.0.0.1:8081")); e.PeerPID != 0 {
		t.Errorf("v6only listener named for an IPv4 client: %s", peer(e))
	}
	if e := enr(l, ev(event.Connect, 200, "client", "[::1]:40001", "[::1]:8081")); peer(e) != "v6server/101" {
		t.Errorf("v6only listener for an IPv6 client: %q", peer(e))
	}
	l.Enrich(ev(event.Listen, 102, "a", "127.0.0.1:8082", ""))
	l.Enrich(ev(event.Listen, 103, "b", "127.0.0.1:8082", ""))
	if e := enr(l, ev(event.Connect, 200, "client", "127.0.0.1:40002", "127.0.0.1:8082")); e.PeerPID != 0 {
		t.Errorf("SO_REUSEPORT group named %s", peer(e))
	}
	l.Enrich(ev(event.Unlisten, 103, "b", "127.0.0.1:8082", ""))
	if e := enr(l, ev(event.Connect, 200, "client", "127.0.0.1:40003", "127.0.0.1:8082")); peer(e) != "a/102" {
		t.Errorf("after one unlisten: %q, want a/102", peer(e))
	}
	l.Enrich(ev(event.Unlisten, 102, "a", "127.0.0.1:8082", ""))
	if e := enr(l, ev(event.Connect, 200, "client", "127.0.0.1:40004", "127.0.0.1:8082")); e.PeerPID != 0 {
		t.Errorf("stopped listener named %s", peer(e))
	}
	other := ev(event.Connect, 200, "client", "127.0.0.1:40005", "127.0.0.1:8080")
	other.NetNS = ns + 1
	if l.Enrich(other); other.PeerPID != 0 {
		t.Errorf("listener of another namespace named %s", peer(other))
	}
	unknown := ev(event.Connect, 200, "client", "127.0.0.1:40006", "127.0.0.1:8080")
	unknown.NetNS = 0
	if l.Enrich(unknown); unknown.PeerPID != 0 {
		t.Errorf("unknown namespace named %s", peer(unknown))
	}

	// The client closed first; its closed end must not name the server
	// end of a new connection with the same addresses...
	l.Enrich(ev(event.Connect, 300, "old", "127.0.0.1:40007", "127.0.0.1:9000"))
	l.Enrich(ev(event.Accept, 400, "srv", "127.0.0.1:9000", "127.0.0.1:40007"))
	l.Enrich(ev(event.Close, 300, "old", "127.0.0.1:40007", "127.0.0.1:9000"))
	l.Enrich(ev(event.Close, 400, "srv", "127.0.0.1:9000", "127.0.0.1:40007"))
	l.Enrich(ev(event.Connect, 300, "old", "127.0.0.1:40008", "127.0.0.1:9000"))
	l.Enrich(ev(event.Accept, 400, "srv", "127.0.0.1:9000", "127.0.0.1:40008"))
	l.Enrich(ev(event.Close, 300, "old", "127.0.0.1:40008", "127.0.0.1:9000"))
	// (the server's close of that one was lost)
	if e := enr(l, ev(event.Accept, 401, "srv2", "127.0.0.1:9000", "127.0.0.1:40008")); e.PeerPID != 0 {
		t.Errorf("a closed end named for a new connection: %s", peer(e))
	}
	// ...and a new connect drops the old connection's server end.
	l.Enrich(ev(event.Connect, 500, "new", "127.0.0.1:40009", "127.0.0.1:9001"))
	l.Enrich(ev(event.Accept, 600, "srvA", "127.0.0.1:9001", "127.0.0.1:40009"))
	// (both closes lost; the same addresses again)
	l.Enrich(ev(event.Connect, 700, "new2", "127.0.0.1:40009", "127.0.0.1:9001"))
	if e := enr(l, ev(event.Established, 700, "new2", "127.0.0.1:40009", "127.0.0.1:9001")); e.PeerPID != 0 {
		t.Errorf("an older connection's server end named: %s", peer(e))
	}
}

func TestExistingPreload(t *testing.T) {
	l := newTest()
	lis := ev(event.Existing, 100, "server", "0.0.0.0:8080", "")
	lis.State = event.TCPListen
	cli := ev(event.Existing, 200, "client", "127.0.0.1:40000", "127.0.0.1:8080")
	cli.State = 1
	srv := ev(event.Existing, 100, "server", "127.0.0.1:8080", "127.0.0.1:40000")
	srv.State, srv.Flags = 1, event.FlagInbound
	existing := []event.Event{*lis, *cli, *srv}
	l.Preload(existing)
	for i := range existing {
		l.Enrich(&existing[i])
	}
	if existing[0].PeerPID != 0 || peer(&existing[1]) != "server/100" || peer(&existing[2]) != "client/200" {
		t.Errorf("peers = %q, %q, %q", peer(&existing[0]), peer(&existing[1]), peer(&existing[2]))
	}
	// Before Linux 5.14 tuxscope cannot tell its namespace's cookie:
	// existing rows link with each other, not with the kernel's events.
	l0 := newTest()
	existing0 := []event.Event{*lis, *cli, *srv}
	for i := range existing0 {
		existing0[i].NetNS = 0
	}
	l0.Preload(existing0)
	for i := range existing0 {
		l0.Enrich(&existing0[i])
	}
	if peer(&existing0[1]) != "server/100" || peer(&existing0[2]) != "client/200" {
		t.Errorf("netns unknown: peers = %q, %q", peer(&existing0[1]), peer(&existing0[2]))
	}
	if e := enr(l0, ev(event.Connect, 300, "c2", "127.0.0.1:40001", "127.0.0.1:8080")); e.PeerPID != 0 {
		t.Errorf("netns unknown: connect named %s", peer(e))
	}
	if e := enr(l, ev(event.Connect, 300, "c2", "127.0.0.1:40001", "127.0.0.1:8080")); peer(e) != "server/100" {
		t.Errorf("connect to an existing listener: %q", peer(e))
	}
	c := ev(event.Close, 200, "client", "127.0.0.1:40000", "127.0.0.1:8080")
	if l.Enrich(c); peer(c) != "server/100" {
		t.Errorf("close of an existing connection: %q", peer(c))
	}
}

// The tables are bounded: closed ends go first, then new ends are not
// kept (counted in Full), and nothing wrong is named.
func TestBounded(t *testing.T) {
	l := newTest()
	l.MaxEnds, l.MaxListeners = 4, 1
	l.Enrich(ev(event.Listen, 100, "server", "127.0.0.1:8080", ""))
	l.Enrich(ev(event.Listen, 101, "server2", "127.0.0.1:8081", ""))
	if l.Full != 1 || len(l.listeners) != 1 {
		t.Fatalf("Full = %d, listeners = %d", l.Full, len(l.listeners))
	}
	for p := uint16(40000); p < 40004; p++ {
		l.Enrich(ev(event.Connect, 200, "client", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p).String(), "127.0.0.2:9"))
	}
	if enr(l, ev(event.Connect, 200, "client", "127.0.0.1:40004", "127.0.0.2:9")) == nil || l.Full != 2 || len(l.ends) != 4 {
		t.Fatalf("Full = %d, ends = %d", l.Full, len(l.ends))
	}
	l.Enrich(ev(event.Accept, 300, "srv", "127.0.0.2:9", "127.0.0.1:40000"))
	if l.Full != 3 {
		t.Errorf("Full = %d, want 3", l.Full)
	}
	// A closed end makes room.
	l.Enrich(ev(event.Connect, 200, "c", "127.0.0.1:40010", "127.0.0.1:8080"))
	l.ends = map[endKey]end{}
	l.closed, l.head, l.nClosed = nil, 0, 0
	l.Enrich(ev(event.Connect, 1, "a", "127.0.0.1:1", "127.0.0.1:2"))
	l.Enrich(ev(event.Accept, 2, "b", "127.0.0.1:2", "127.0.0.1:1"))
	l.Enrich(ev(event.Close, 1, "a", "127.0.0.1:1", "127.0.0.1:2")) // closed, kept for b's close
	l.Enrich(ev(event.Connect, 3, "c", "127.0.0.1:3", "127.0.0.1:4"))
	l.Enrich(ev(event.Connect, 5, "d", "127.0.0.1:5", "127.0.0.1:6"))
	l.Enrich(ev(event.Connect, 7, "e", "127.0.0.1:7", "127.0.0.1:8")) // evicts a's closed end
	if _, ok := l.ends[newEndKey(ns, netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2"))]; ok {
		t.Errorf("the closed end was not evicted first")
	}
	if e := enr(l, ev(event.Close, 2, "b", "127.0.0.1:2", "127.0.0.1:1")); e.PeerPID != 0 {
		t.Errorf("evicted end named: %s", peer(e))
	}
}

// Ends closed both ways leave nothing behind, however many connections
// come and go within the time a closed end is kept: the list of closed
// ends stays bounded by the ends the table holds.
func TestClosedListBounded(t *testing.T) {
	l := newTest()
	l.Enrich(ev(event.Listen, 10, "srv", "127.0.0.1:8080", ""))
	s := netip.MustParseAddrPort("127.0.0.1:8080")
	held := 0
	for i := 0; i < 60000; i++ { // each a port of its own
		c := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(1024+i))
		ts := uint64(i) * 1000 // 60 ms in all: no closed end expires
		for _, e := range []*event.Event{
			{Type: event.Connect, PID: 20, NetNS: ns, TimestampNs: ts, Local: c, Remote: s},
			{Type: event.Accept, PID: 10, NetNS: ns, TimestampNs: ts + 1, Local: s, Remote: c, Flags: event.FlagInbound},
			{Type: event.Close, PID: 20, NetNS: ns, TimestampNs: ts + 2, Local: c, Remote: s},
		} {
			l.Enrich(e)
		}
		if i%10 == 0 { // one connection in ten stays half-closed
			held++
			continue
		}
		srv := &event.Event{Type: event.Close, PID: 10, NetNS: ns, TimestampNs: ts + 3, Local: s, Remote: c}
		if l.Enrich(srv); srv.PeerPID != 20 {
			t.Fatalf("connection %d: the server's close names %d", i, srv.PeerPID)
		}
	}
	if l.nClosed != held || len(l.ends) != 2*held {
		t.Errorf("%d closed ends and %d ends held, want %d and %d", l.nClosed, len(l.ends), held, 2*held)
	}
	if n := len(l.closed) - l.head; n > 2*held+64 {
		t.Errorf("the closed list holds %d entries for %d closed ends", n, held)
	}
}

// BenchmarkLink is one loopback connection's five events (connect,
// established, accept and both closes), a new client port each time, with
// a listener known: the linker's cost per connection.
func BenchmarkLink(b *testing.B) {
	l := newTest()
	l.Enrich(ev(event.Listen, 10, "srv", "127.0.0.1:8080", ""))
	var evs [5]event.Event
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		port := uint16(1024 + i%60000)
		c := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
		s := netip.MustParseAddrPort("127.0.0.1:8080")
		mk := func(e *event.Event, t event.Type, pid uint32, local, remote netip.AddrPort, ts uint64) {
			*e = event.Event{Type: t, PID: pid, NetNS: ns, TimestampNs: ts, Local: local, Remote: remote}
		}
		ts := uint64(i) * 1000
		mk(&evs[0], event.Connect, 20, c, s, ts)
		mk(&evs[1], event.Established, 20, c, s, ts+1)
		mk(&evs[2], event.Accept, 10, s, c, ts+2)
		evs[2].Flags |= event.FlagInbound
		mk(&evs[3], event.Close, 20, c, s, ts+3)
		mk(&evs[4], event.Close, 10, s, c, ts+4)
		for j := range evs {
			l.Enrich(&evs[j])
		}
		if evs[4].PeerPID != 20 {
			b.Fatalf("server's close names %d", evs[4].PeerPID)
		}
	}
}

// A socket connected to itself (TCP simultaneous open on one port) is its
// own other end: each of its events names its own process, and its closed
// end is kept, as any closed end, for a close that never comes.
func TestSelfConnect(t *testing.T) {
	l := newTest()
	var got []string
	for _, typ := range []event.Type{event.Connect, event.Established, event.Close} {
		got = append(got, peer(enr(l, ev(typ, 5, "self", "127.0.0.1:40000", "127.0.0.1:40000"))))
	}
	if want := []string{"self/5", "self/5", "self/5"}; !slices.Equal(got, want) {
		t.Errorf("peers %q, want %q", got, want)
	}
	if len(l.ends) != 1 || l.nClosed != 1 {
		t.Errorf("%d ends (%d closed) left, want 1 (1)", len(l.ends), l.nClosed)
	}
}

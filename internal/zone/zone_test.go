package zone

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tuxscope/tuxscope/internal/event"
)

// fake is a resolver over a fixed table of names, counting lookups.
func fake(names map[key]string) (*Resolver, *int, *time.Time) {
	now := time.Unix(1000, 0)
	calls := 0
	r := &Resolver{self: 4026531840, cache: map[key]entry{}, now: func() time.Time { return now }}
	r.lookup = func(ifindex, netns uint32) (string, bool) {
		calls++
		n, ok := names[key{ifindex, netns}]
		return n, ok
	}
	return r, &calls, &now
}

func TestZone(t *testing.T) {
	r, calls, now := fake(map[key]string{
		{2, 0}:          "eth0",
		{2, 4026532000}: "veth-a",
		{3, 0}:          "evil\x1b[2J",
		{4, 0}:          `a"b`,
	})
	for _, tc := range []struct {
		ifindex, netns uint32
		want           string
	}{
		{2, 0, "eth0"},
		{2, 4026531840, "eth0"}, // our own namespace by its inode
		{2, 4026532000, "veth-a"},
		{9, 0, "9"}, // unknown: the index
		{3, 0, "3"}, // names that would need escaping: the index
		{4, 0, "4"},
	} {
		if got := r.Zone(tc.ifindex, tc.netns); got != tc.want {
			t.Errorf("Zone(%d, %d) = %q, want %q", tc.ifindex, tc.netns, got, tc.want)
		}
	}
	// Cached for the TTL, then looked up again.
	n := *calls
	r.Zone(2, 0)
	if *calls != n {
		t.Errorf("a cached name was looked up again")
	}
	*now = now.Add(ttl)
	r.Zone(2, 0)
	if *calls != n+1 {
		t.Errorf("an expired name was not looked up again")
	}
}

func TestEnrich(t *testing.T) {
	r, _, _ := fake(map[key]string{{5, 0}: "tsll0"})
	for _, tc := range []struct {
		name                  string
		ifindex               uint32
		local, remote         string
		wantLocal, wantRemote string
	}{
		{"link-local both ends", 5, "[fe80::1]:40000", "[fe80::2]:80", "[fe80::1%tsll0]:40000", "[fe80::2%tsll0]:80"},
		{"link-local peer only", 5, "[2001:db8::1]:40000", "[fe80::2]:80", "[2001:db8::1]:40000", "[fe80::2%tsll0]:80"},
		{"bound, global addresses", 5, "[2001:db8::1]:40000", "[2001:db8::2]:80", "[2001:db8::1]:40000", "[2001:db8::2]:80"},
		{"not bound", 0, "[fe80::1]:40000", "[fe80::2]:80", "[fe80::1]:40000", "[fe80::2]:80"},
		{"v4-mapped", 5, "[::ffff:169.254.0.1]:40000", "[::ffff:169.254.0.2]:80", "[::ffff:169.254.0.1]:40000", "[::ffff:169.254.0.2]:80"},
	} {
		e := event.Event{Type: event.Connect, Family: 6, IfIndex: tc.ifindex,
			Local: netip.MustParseAddrPort(tc.local), Remote: netip.MustParseAddrPort(tc.remote)}
		r.Enrich(&e)
		if e.Local.String() != tc.wantLocal || e.Remote.String() != tc.wantRemote {
			t.Errorf("%s: %s -> %s, want %s -> %s", tc.name, e.Local, e.Remote, tc.wantLocal, tc.wantRemote)
		}
	}
}

// The real lookup, in our own namespace: loopback is interface 1.
func TestLookupLoopback(t *testing.T) {
	r := New()
	if got := r.Zone(1, 0); got != "lo" {
		t.Errorf("Zone(1, ours) = %q, want lo", got)
	}
	if got := r.Zone(1, r.self); got != "lo" {
		t.Errorf("Zone(1, %d) = %q, want lo", r.self, got)
	}
	if got := r.Zone(1<<30, 0); got != "1073741824" {
		t.Errorf("Zone(no such interface) = %q, want the index", got)
	}
}

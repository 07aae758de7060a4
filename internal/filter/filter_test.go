package filter

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/tuxscope/tuxscope/internal/event"
)

func mkEvent(typ event.Type, family uint8, pid uint32, comm, local, remote string) *event.Event {
	e := &event.Event{
		Type:   typ,
		Family: family,
		PID:    pid,
		Local:  netip.MustParseAddrPort(local),
		Remote: netip.MustParseAddrPort(remote),
	}
	e.SetComm(comm)
	return e
}

var (
	curl  = mkEvent(event.Connect, 4, 6201, "curl", "10.0.0.5:53412", "93.184.216.34:443")
	nginx = mkEvent(event.Accept, 6, 900, "nginx", "[2001:db8::1]:8080", "[2001:db8::2]:40000")
	// A dual-stack listener accepting an IPv4 client is family 6.
	mapped = mkEvent(event.Accept, 6, 901, "nginx", "[::ffff:10.0.0.1]:80", "[::ffff:1.2.3.4]:51000")
	long   = mkEvent(event.Connect, 4, 77, "a-very-long-process-name", "10.0.0.5:1000", "10.0.0.6:2000")
	all    = []*event.Event{curl, nginx, mapped, long}
)

func TestMatch(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want []bool // for curl, nginx, mapped, long
	}{
		{"empty spec", Spec{}, []bool{true, true, true, true}},
		{"pid", Spec{PIDs: []uint32{6201}}, []bool{true, false, false, false}},
		{"pids", Spec{PIDs: []uint32{1, 900, 901}}, []bool{false, true, true, false}},
		{"pid none", Spec{PIDs: []uint32{1}}, []bool{false, false, false, false}},
		{"comm", Spec{Comms: []string{"nginx"}}, []bool{false, true, true, false}},
		{"comms", Spec{Comms: []string{"curl", "nginx"}}, []bool{true, true, true, false}},
		{"comm prefix is not a match", Spec{Comms: []string{"cur", "ngin"}}, []bool{false, false, false, false}},
		{"comm longer is not a match", Spec{Comms: []string{"curl2"}}, []bool{false, false, false, false}},
		{"comm case matters", Spec{Comms: []string{"CURL"}}, []bool{false, false, false, false}},
		{"comm truncated to 15", Spec{Comms: []string{"a-very-long-process-name"}}, []bool{false, false, false, true}},
		{"comm exactly 15", Spec{Comms: []string{"a-very-long-pro"}}, []bool{false, false, false, true}},
		{"comm 14 is not a match", Spec{Comms: []string{"a-very-long-pr"}}, []bool{false, false, false, false}},
		{"comm other 16+ byte name", Spec{Comms: []string{"a-very-long-proX"}}, []bool{false, false, false, true}},
		{"remote port", Spec{Ports: []uint16{443}}, []bool{true, false, false, false}},
		{"local port", Spec{Ports: []uint16{53412}}, []bool{true, false, false, false}},
		{"listener port", Spec{Ports: []uint16{8080}}, []bool{false, true, false, false}},
		{"client port of accept", Spec{Ports: []uint16{40000, 51000}}, []bool{false, true, true, false}},
		{"port none", Spec{Ports: []uint16{22}}, []bool{false, false, false, false}},
		{"ports both ends of one event", Spec{Ports: []uint16{1000, 2000}}, []bool{false, false, false, true}},
		{"type connect", Spec{Types: []event.Type{event.Connect}}, []bool{true, false, false, true}},
		{"type accept", Spec{Types: []event.Type{event.Accept}}, []bool{false, true, true, false}},
		{"types both", Spec{Types: []event.Type{event.Connect, event.Accept}}, []bool{true, true, true, true}},
		{"IPv4", Spec{IPv4: true}, []bool{true, false, false, true}},
		{"IPv6 (v4-mapped counts)", Spec{IPv6: true}, []bool{false, true, true, false}},
		{"IPv4 and IPv6", Spec{IPv4: true, IPv6: true}, []bool{true, true, true, true}},
		{"combined all pass", Spec{PIDs: []uint32{6201}, Comms: []string{"curl"}, Ports: []uint16{443}, Types: []event.Type{event.Connect}, IPv4: true}, []bool{true, false, false, false}},
		{"combined pid fails", Spec{PIDs: []uint32{6202}, Comms: []string{"curl"}, Ports: []uint16{443}, Types: []event.Type{event.Connect}, IPv4: true}, []bool{false, false, false, false}},
		{"combined comm fails", Spec{PIDs: []uint32{6201}, Comms: []string{"wget"}, Ports: []uint16{443}, Types: []event.Type{event.Connect}, IPv4: true}, []bool{false, false, false, false}},
		{"combined port fails", Spec{PIDs: []uint32{6201}, Comms: []string{"curl"}, Ports: []uint16{80}, Types: []event.Type{event.Connect}, IPv4: true}, []bool{false, false, false, false}},
		{"combined type fails", Spec{PIDs: []uint32{6201}, Comms: []string{"curl"}, Ports: []uint16{443}, Types: []event.Type{event.Accept}, IPv4: true}, []bool{false, false, false, false}},
		{"combined family fails", Spec{PIDs: []uint32{6201}, Comms: []string{"curl"}, Ports: []uint16{443}, Types: []event.Type{event.Connect}, IPv6: true}, []bool{false, false, false, false}},
		{"nginx on 8080 over IPv6", Spec{Comms: []string{"nginx"}, Ports: []uint16{8080}, IPv6: true}, []bool{false, true, false, false}},
	}
	for _, tt := range tests {
		checkMatches(t, tt.name, tt.spec, all, tt.want)
	}
}

func TestMatchEmptyComm(t *testing.T) {
	e := mkEvent(event.Connect, 4, 1, "", "10.0.0.1:1", "10.0.0.2:2")
	if !(&Spec{Comms: []string{""}}).Match(e) {
		t.Error(`Comms [""] does not match an empty name`)
	}
	if (&Spec{Comms: []string{""}}).Match(curl) {
		t.Error(`Comms [""] matches "curl"`)
	}
}

func TestWantType(t *testing.T) {
	types := []event.Type{event.Connect, event.Accept, event.Established, event.Failed, event.Close, event.Existing, event.Lost}
	tests := []struct {
		types []event.Type
		want  []bool // for connect, accept, established, failed, close, existing, lost
	}{
		{nil, []bool{true, true, true, true, true, true, true}},
		{[]event.Type{}, []bool{true, true, true, true, true, true, true}},
		{[]event.Type{event.Connect}, []bool{true, false, false, false, false, false, false}},
		{[]event.Type{event.Accept}, []bool{false, true, false, false, false, false, false}},
		{[]event.Type{event.Accept, event.Connect}, []bool{true, true, false, false, false, false, false}},
		{[]event.Type{event.Established}, []bool{false, false, true, false, false, false, false}},
		{[]event.Type{event.Failed}, []bool{false, false, false, true, false, false, false}},
		{[]event.Type{event.Close}, []bool{false, false, false, false, true, false, false}},
		{[]event.Type{event.Close, event.Failed}, []bool{false, false, false, true, true, false, false}},
		{[]event.Type{event.Connect, event.Accept, event.Established, event.Failed, event.Close}, []bool{true, true, true, true, true, false, false}},
	}
	for _, tt := range tests {
		s := Spec{Types: tt.types}
		for i, typ := range types {
			if got := s.WantType(typ); got != tt.want[i] {
				t.Errorf("%v: WantType(%v) = %v, want %v", tt.types, typ, got, tt.want[i])
			}
		}
	}
}

// Lifecycle events: an accepted connection's close is matched on the same
// pid, comm and ports as its accept; a close whose owner was never seen
// (pid 0, no comm) passes only filters that do not ask about the process.
func TestMatchLifecycle(t *testing.T) {
	est := mkEvent(event.Established, 4, 6201, "curl", "10.0.0.5:53412", "93.184.216.34:443")
	est.LatencyNs = 85_000
	failed := mkEvent(event.Failed, 4, 6201, "curl", "10.0.0.5:53414", "93.184.216.34:81")
	failed.Error = 111
	closeIn := mkEvent(event.Close, 6, 900, "nginx", "[2001:db8::1]:8080", "[2001:db8::2]:40000")
	closeIn.Flags = event.FlagInbound | event.FlagClosedRemote
	orphan := mkEvent(event.Close, 4, 0, "", "10.0.0.1:22", "10.0.0.9:50000")
	// sshd (812) accepted, its forked child (913) served and closed.
	forked := mkEvent(event.Close, 4, 913, "sshd", "10.0.0.1:22", "10.0.0.7:50002")
	forked.Flags = event.FlagInbound | event.FlagClosedLocal
	forked.OpenerPID = 812
	forked.SetOpenerCommBytes([]byte("sshd"))
	events := []*event.Event{est, failed, closeIn, orphan, forked}

	tests := []struct {
		name string
		spec Spec
		want []bool // for est, failed, closeIn, orphan, forked
	}{
		{"empty spec", Spec{}, []bool{true, true, true, true, true}},
		{"type established", Spec{Types: []event.Type{event.Established}}, []bool{true, false, false, false, false}},
		{"type failed", Spec{Types: []event.Type{event.Failed}}, []bool{false, true, false, false, false}},
		{"type close", Spec{Types: []event.Type{event.Close}}, []bool{false, false, true, true, true}},
		{"type connect matches no outcome", Spec{Types: []event.Type{event.Connect, event.Accept}}, []bool{false, false, false, false, false}},
		{"pid", Spec{PIDs: []uint32{6201}}, []bool{true, true, false, false, false}},
		{"pid of the accepting process", Spec{PIDs: []uint32{900}}, []bool{false, false, true, false, false}},
		{"pid filter drops unknown owners", Spec{PIDs: []uint32{1, 900}}, []bool{false, false, true, false, false}},
		{"pid of the opener of a forked close", Spec{PIDs: []uint32{812}}, []bool{false, false, false, false, true}},
		{"pid of the closer", Spec{PIDs: []uint32{913}}, []bool{false, false, false, false, true}},
		{"comm", Spec{Comms: []string{"nginx"}}, []bool{false, false, true, false, false}},
		{"empty comm matches the unknown owner", Spec{Comms: []string{""}}, []bool{false, false, false, true, false}},
		{"listener port", Spec{Ports: []uint16{8080}}, []bool{false, false, true, false, false}},
		{"remote port", Spec{Ports: []uint16{81}}, []bool{false, true, false, false, false}},
		{"port of an unowned close", Spec{Ports: []uint16{22}}, []bool{false, false, false, true, true}},
		{"IPv6", Spec{IPv6: true}, []bool{false, false, true, false, false}},
		{"IPv4 closes", Spec{IPv4: true, Types: []event.Type{event.Close}}, []bool{false, false, false, true, true}},
	}
	for _, tt := range tests {
		checkMatches(t, tt.name, tt.spec, events, tt.want)
	}
}

// checkMatches checks, in a subtest, that spec matches events[i] exactly
// when want[i].
func checkMatches(t *testing.T, name string, spec Spec, events []*event.Event, want []bool) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		for i, e := range events {
			if got := spec.Match(e); got != want[i] {
				t.Errorf("Match(%s pid %d %q %v->%v) = %v, want %v",
					e.Type, e.PID, e.Comm(), e.Local, e.Remote, got, want[i])
			}
		}
	})
}

func TestWantFamily(t *testing.T) {
	tests := []struct {
		ipv4, ipv6   bool
		want4, want6 bool
		want0, want5 bool
	}{
		{false, false, true, true, true, true}, // neither: everything
		{true, false, true, false, false, false},
		{false, true, false, true, false, false},
		{true, true, true, true, false, false},
	}
	for _, tt := range tests {
		s := Spec{IPv4: tt.ipv4, IPv6: tt.ipv6}
		if got := s.WantFamily(4); got != tt.want4 {
			t.Errorf("IPv4=%v IPv6=%v: WantFamily(4) = %v", tt.ipv4, tt.ipv6, got)
		}
		if got := s.WantFamily(6); got != tt.want6 {
			t.Errorf("IPv4=%v IPv6=%v: WantFamily(6) = %v", tt.ipv4, tt.ipv6, got)
		}
		if got := s.WantFamily(0); got != tt.want0 {
			t.Errorf("IPv4=%v IPv6=%v: WantFamily(0) = %v", tt.ipv4, tt.ipv6, got)
		}
		if got := s.WantFamily(5); got != tt.want5 {
			t.Errorf("IPv4=%v IPv6=%v: WantFamily(5) = %v", tt.ipv4, tt.ipv6, got)
		}
	}
}

func TestTruncateComm(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"curl", "curl"},
		{"0123456789abcde", "0123456789abcde"},
		{"0123456789abcdef", "0123456789abcde"},
	}
	for _, tt := range tests {
		if got := truncateComm(tt.in); got != tt.want {
			t.Errorf("truncateComm(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMatchAllocs(t *testing.T) {
	s := Spec{PIDs: []uint32{1, 6201}, Comms: []string{"wget", "curl"}, Ports: []uint16{443}, Types: []event.Type{event.Connect}, IPv4: true}
	allocs := testing.AllocsPerRun(1000, func() {
		if !s.Match(curl) {
			panic("no match")
		}
	})
	if allocs != 0 {
		t.Errorf("Match: %v allocs per run, want 0", allocs)
	}
}

func TestMatchWorkload(t *testing.T) {
	const id = "4f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0"
	w := func(cgroup, cid, name, pod, ns string) *event.Event {
		e := mkEvent(event.Connect, 4, 10, "app", "10.0.0.5:1000", "10.0.0.6:80")
		e.Cgroup, e.ContainerID, e.ContainerName, e.Pod, e.Namespace = cgroup, cid, name, pod, ns
		return e
	}
	var (
		docker = w("/system.slice/docker-"+id+".scope", id, "", "", "")
		k8s    = w("/kubepods/burstable/pod1/"+id[:8]+"x", "", "web", "web-7d9f", "shop")
		unit   = w("/system.slice/nginx.service", "", "nginx.service", "", "")
		child  = w("/a/b/c", "", "", "", "")
		sib    = w("/a/bc", "", "", "", "")
		host   = w("", "", "", "", "")
		evs    = []*event.Event{docker, k8s, unit, child, sib, host}
	)
	tests := []struct {
		name string
		spec Spec
		want []bool // docker, k8s, unit, child, sib, host
	}{
		{"id prefix", Spec{Containers: []string{id[:12]}}, []bool{true, false, false, false, false, false}},
		{"full id", Spec{Containers: []string{id}}, []bool{true, false, false, false, false, false}},
		{"4 hex digits are a prefix", Spec{Containers: []string{id[:4]}}, []bool{true, false, false, false, false, false}},
		{"3 hex digits are only a name", Spec{Containers: []string{id[:3]}}, []bool{false, false, false, false, false, false}},
		{"not a prefix", Spec{Containers: []string{id[1:13]}}, []bool{false, false, false, false, false, false}},
		{"upper case is not an id", Spec{Containers: []string{"4F1E2D3C"}}, []bool{false, false, false, false, false, false}},
		{"name", Spec{Containers: []string{"web"}}, []bool{false, true, false, false, false, false}},
		{"unit name", Spec{Containers: []string{"nginx.service"}}, []bool{false, false, true, false, false, false}},
		{"id or name", Spec{Containers: []string{"web", id[:12]}}, []bool{true, true, false, false, false, false}},
		{"pod", Spec{Pods: []string{"web-7d9f"}}, []bool{false, true, false, false, false, false}},
		{"pod other", Spec{Pods: []string{"web"}}, []bool{false, false, false, false, false, false}},
		{"namespace", Spec{Namespaces: []string{"kube-system", "shop"}}, []bool{false, true, false, false, false, false}},
		{"cgroup itself", Spec{Cgroups: []string{"/a/b/c"}}, []bool{false, false, false, true, false, false}},
		{"cgroup parent", Spec{Cgroups: []string{"/a/b"}}, []bool{false, false, false, true, false, false}},
		{"cgroup /a selects both", Spec{Cgroups: []string{"/a"}}, []bool{false, false, false, true, true, false}},
		{"cgroup root selects every known one", Spec{Cgroups: []string{"/"}}, []bool{true, true, true, true, true, false}},
		{"cgroups or", Spec{Cgroups: []string{"/system.slice/nginx.service", "/a/bc"}}, []bool{false, false, true, false, true, false}},
		{"kinds and", Spec{Cgroups: []string{"/system.slice"}, Containers: []string{"nginx.service"}}, []bool{false, false, true, false, false, false}},
		{"kinds and, none", Spec{Cgroups: []string{"/a"}, Containers: []string{"nginx.service"}}, []bool{false, false, false, false, false, false}},
		{"pod and namespace", Spec{Pods: []string{"web-7d9f"}, Namespaces: []string{"default"}}, []bool{false, false, false, false, false, false}},
	}
	for _, tt := range tests {
		for i, e := range evs {
			if got := tt.spec.Match(e); got != tt.want[i] {
				t.Errorf("%s: Match(%q %q %q) = %v, want %v", tt.name, e.Cgroup, e.ContainerID, e.ContainerName, got, tt.want[i])
			}
		}
	}
}

func TestCgroupBelow(t *testing.T) {
	for _, tt := range []struct {
		c, p string
		want bool
	}{
		{"/a/b", "/a/b", true},
		{"/a/b/c", "/a/b", true},
		{"/a/bc", "/a/b", false},
		{"/a", "/a/b", false},
		{"/a/b", "/", true},
		{"", "/", false},
		{"", "/a", false},
	} {
		if got := CgroupBelow(tt.c, tt.p); got != tt.want {
			t.Errorf("CgroupBelow(%q, %q) = %v", tt.c, tt.p, got)
		}
	}
}

func TestCleanCgroup(t *testing.T) {
	for in, want := range map[string]string{
		"/":                       "/",
		"/a/b/":                   "/a/b",
		"//a//b":                  "/a/b",
		"/system.slice/x.service": "/system.slice/x.service",
	} {
		if got, err := CleanCgroup(in); err != nil || got != want {
			t.Errorf("CleanCgroup(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "a/b", "/a/../b", "/a/./b", "/a\nb", "/" + strings.Repeat("x", 4096)} {
		if got, err := CleanCgroup(bad); err == nil {
			t.Errorf("CleanCgroup(%q) = %q, want an error", bad, got)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"web", "nginx.service", "kube-system", "4f1e2d3c", strings.Repeat("x", MaxNameLen)} {
		if err := CheckName("pod", ok); err != nil {
			t.Errorf("CheckName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "a/b", "a\tb", "a\x00", strings.Repeat("x", MaxNameLen+1), "\xff"} {
		if err := CheckName("pod", bad); err == nil {
			t.Errorf("CheckName(%q): no error", bad)
		}
	}
}

// --proto keeps one protocol's events; DNS messages have --dns.
func TestMatchProto(t *testing.T) {
	for _, tc := range []struct {
		proto string
		typ   event.Type
		want  bool
	}{
		{"", event.Close, true}, {"", event.UDPClose, true},
		{"udp", event.UDPOpen, true}, {"udp", event.UDPClose, true}, {"udp", event.Close, false}, {"udp", event.Existing, false}, {"udp", event.DNS, true},
		{"tcp", event.Close, true}, {"tcp", event.UDPOpen, false}, {"tcp", event.DNS, true},
	} {
		s := Spec{Proto: tc.proto}
		if got := s.Match(&event.Event{Type: tc.typ, Family: 4}); got != tc.want {
			t.Errorf("--proto %q, %s: Match = %v, want %v", tc.proto, tc.typ, got, tc.want)
		}
	}
}

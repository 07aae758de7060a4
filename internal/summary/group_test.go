package summary

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tuxscope/tuxscope/internal/event"
	"github.com/tuxscope/tuxscope/internal/output"
	"github.com/tuxscope/tuxscope/internal/schema"
)

const (
	idA  = "aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111" // docker
	idB  = "bbbbbbbbbbbb2222222222222222222222222222222222222222222222222222" // pod shop/web-0, container nginx
	idC  = "cccccccccccc3333333333333333333333333333333333333333333333333333" // pod shop/web-0, container sidecar
	idD  = "dddddddddddd4444444444444444444444444444444444444444444444444444" // pod uidQ, no CRI names
	uidP = "11111111-2222-3333-4444-555555555555"
	uidQ = "99999999-8888-7777-6666-555555555555"
)

// where is what the container enricher put on an event.
type where struct {
	id, runtime, name, podUID, pod, ns string
}

var (
	inA       = where{id: idA, runtime: "docker"}
	inNginx   = where{id: idB, runtime: "containerd", name: "nginx", podUID: uidP, pod: "web-0", ns: "shop"}
	inSidecar = where{id: idC, runtime: "containerd", name: "sidecar", podUID: uidP, pod: "web-0", ns: "shop"}
	inQ       = where{id: idD, runtime: "containerd", podUID: uidQ}
	inUnit    = where{runtime: "systemd", name: "db.service"}
	onHost    = where{}
)

// ev is one synthetic event of pid (named comm) in w: a connect to remote,
// or with inbound an accept at local port 8080 from remote.
func ev(typ event.Type, pid uint32, comm string, w where, remote string, inbound bool) *event.Event {
	e := &event.Event{Type: typ, Family: 4, PID: pid, TID: pid, Remote: netip.MustParseAddrPort(remote),
		Local:       netip.MustParseAddrPort("198.51.100.200:40000"),
		ContainerID: w.id, Runtime: w.runtime, ContainerName: w.name, PodUID: w.podUID, Pod: w.pod, Namespace: w.ns}
	if inbound {
		e.Local = netip.MustParseAddrPort("198.51.100.200:8080")
		if typ != event.Accept {
			e.Flags |= event.FlagInbound
		}
	}
	e.SetComm(comm)
	return e
}

// traffic is the synthetic host: who connects where, and how often.
func traffic(a *Aggregator) {
	add := func(n int, e *event.Event) {
		for range n {
			a.Add(e)
		}
	}
	// Container A: two curls, 3 and 2 connects to one peer, one refused
	// connect to another.
	add(3, ev(event.Connect, 100, "curl", inA, "198.51.100.1:443", false))
	add(2, ev(event.Connect, 101, "curl", inA, "198.51.100.1:443", false))
	add(1, ev(event.Connect, 101, "curl", inA, "198.51.100.2:80", false))
	f := ev(event.Failed, 101, "curl", inA, "198.51.100.2:80", false)
	f.Error = 111 // ECONNREFUSED
	add(1, f)
	// Pod shop/web-0: nginx accepts 4 (the first before the CRI runtime
	// had named it), closes them with 100 bytes sent each; its sidecar
	// (a curl) connects once.
	early := inNginx
	early.name, early.pod, early.ns = "", "", ""
	add(1, ev(event.Accept, 200, "nginx", early, "198.51.100.9:50000", true))
	add(3, ev(event.Accept, 200, "nginx", inNginx, "198.51.100.9:50000", true))
	c := ev(event.Close, 200, "nginx", inNginx, "198.51.100.9:50000", true)
	c.BytesSent = 100
	add(4, c)
	add(1, ev(event.Connect, 300, "curl", inSidecar, "198.51.100.1:443", false))
	// Pod uidQ, not named: redis connects once.
	add(1, ev(event.Connect, 600, "redis", inQ, "198.51.100.3:6379", false))
	// A systemd unit accepts 2.
	add(2, ev(event.Accept, 400, "postgres", inUnit, "198.51.100.9:50001", true))
	// The host: a curl connects 5 times, ssh once; an event whose owner
	// tuxscope never saw (pid 0) closes.
	add(5, ev(event.Connect, 500, "curl", onHost, "198.51.100.1:443", false))
	add(1, ev(event.Connect, 501, "ssh", onHost, "198.51.100.4:22", false))
	unknown := ev(event.Close, 0, "", onHost, "198.51.100.5:80", false)
	unknown.BytesReceived = 7
	add(1, unknown)
}

// total is one group's expected totals, and its peers as "peer:port
// connections".
type total struct {
	label                                       string
	connects, accepts, failures, sent, received uint64
	peers                                       []string
}

func groupTotals(gs []Group) []total {
	var out []total
	for _, g := range gs {
		t := total{label: g.Label(), connects: g.Total.Connects, accepts: g.Total.Accepts, failures: g.Total.Failures,
			sent: g.Total.BytesSent, received: g.Total.BytesReceived}
		for _, r := range g.Rows {
			t.peers = append(t.peers, fmt.Sprintf("%s:%d %d", r.Peer, r.Port, r.Connections()))
		}
		out = append(out, t)
	}
	return out
}

// Each --by groups the same events into its groups, with exact counts, in
// the sort order (connections, then the group's key).
func TestGroupBy(t *testing.T) {
	tests := []struct {
		by   GroupBy
		want []total
	}{
		{GroupProcess, []total{
			{"500", 5, 0, 0, 0, 0, []string{"198.51.100.1:443 5"}},
			{"200", 0, 4, 0, 400, 0, []string{"198.51.100.9:8080 4"}},
			{"100", 3, 0, 0, 0, 0, []string{"198.51.100.1:443 3"}},
			{"101", 3, 0, 1, 0, 0, []string{"198.51.100.1:443 2", "198.51.100.2:80 1"}},
			{"400", 0, 2, 0, 0, 0, []string{"198.51.100.9:8080 2"}},
			{"300", 1, 0, 0, 0, 0, []string{"198.51.100.1:443 1"}},
			{"501", 1, 0, 0, 0, 0, []string{"198.51.100.4:22 1"}},
			{"600", 1, 0, 0, 0, 0, []string{"198.51.100.3:6379 1"}},
			{"0", 0, 0, 0, 0, 7, []string{"198.51.100.5:80 0"}},
		}},
		// The four curls (two in container A, the sidecar, the host's)
		// are one group, and their connects to one peer one row.
		{GroupComm, []total{
			{"curl", 12, 0, 1, 0, 0, []string{"198.51.100.1:443 11", "198.51.100.2:80 1"}},
			{"nginx", 0, 4, 0, 400, 0, []string{"198.51.100.9:8080 4"}},
			{"postgres", 0, 2, 0, 0, 0, []string{"198.51.100.9:8080 2"}},
			{"redis", 1, 0, 0, 0, 0, []string{"198.51.100.3:6379 1"}},
			{"ssh", 1, 0, 0, 0, 0, []string{"198.51.100.4:22 1"}},
			{"-", 0, 0, 0, 0, 7, []string{"198.51.100.5:80 0"}},
		}},
		// Container A's two processes are one group; the host's curl,
		// ssh and the unknown owner one row, host.
		{GroupContainer, []total{
			{"host", 6, 0, 0, 0, 7, []string{"198.51.100.1:443 5", "198.51.100.4:22 1", "198.51.100.5:80 0"}},
			{"aaaaaaaaaaaa", 6, 0, 1, 0, 0, []string{"198.51.100.1:443 5", "198.51.100.2:80 1"}},
			{"bbbbbbbbbbbb web-0/nginx", 0, 4, 0, 400, 0, []string{"198.51.100.9:8080 4"}},
			{"db.service", 0, 2, 0, 0, 0, []string{"198.51.100.9:8080 2"}},
			{"cccccccccccc web-0/sidecar", 1, 0, 0, 0, 0, []string{"198.51.100.1:443 1"}},
			{"dddddddddddd", 1, 0, 0, 0, 0, []string{"198.51.100.3:6379 1"}},
		}},
		// Everything outside pods (container A, the unit, the host) is
		// one row; nginx and its sidecar are one pod.
		{GroupPod, []total{
			{"-", 12, 2, 1, 0, 7, []string{"198.51.100.1:443 10", "198.51.100.9:8080 2", "198.51.100.2:80 1", "198.51.100.4:22 1", "198.51.100.5:80 0"}},
			{"shop/web-0", 1, 4, 0, 400, 0, []string{"198.51.100.9:8080 4", "198.51.100.1:443 1"}},
			{uidQ, 1, 0, 0, 0, 0, []string{"198.51.100.3:6379 1"}},
		}},
	}
	for _, tt := range tests {
		a := New(time.Now(), tt.by)
		traffic(a)
		got := groupTotals(a.Groups(ByConnections, 0))
		if g, w := fmt.Sprint(got), fmt.Sprint(tt.want); g != w {
			t.Errorf("--by %s:\n got %v\nwant %v", tt.by, g, w)
		}
		// --top bounds the peers of each group.
		for _, g := range a.Groups(ByConnections, 1) {
			if len(g.Rows) != 1 {
				t.Errorf("--by %s, top 1: %s has %d peers", tt.by, g.Label(), len(g.Rows))
			}
		}
	}
}

// The groups carry what identifies them: a container its id, runtime,
// names and pod; a pod its uid and names, learned from later events when
// the first did not have them.
func TestGroupIdentity(t *testing.T) {
	a := New(time.Now(), GroupContainer)
	traffic(a)
	byLabel := map[string]Identity{}
	for _, g := range a.Groups(ByConnections, 0) {
		byLabel[g.Label()] = g.Identity
	}
	if id := byLabel["bbbbbbbbbbbb web-0/nginx"]; id != (Identity{ContainerID: idB, Runtime: "containerd", Container: "nginx", PodUID: uidP, Pod: "web-0", Namespace: "shop"}) {
		t.Errorf("nginx's container: %+v", id)
	}
	if id := byLabel["db.service"]; id != (Identity{Runtime: "systemd", Container: "db.service"}) {
		t.Errorf("the unit: %+v", id)
	}
	if id := byLabel["host"]; id != (Identity{}) {
		t.Errorf("the host: %+v", id)
	}
	a = New(time.Now(), GroupPod)
	traffic(a)
	for _, g := range a.Groups(ByConnections, 0) {
		if g.Label() == "shop/web-0" && g.Identity != (Identity{PodUID: uidP, Pod: "web-0", Namespace: "shop"}) {
			t.Errorf("the pod: %+v", g.Identity)
		}
	}
}

func TestParseGroupBy(t *testing.T) {
	for g := GroupProcess; g <= GroupPod; g++ {
		if got, err := ParseGroupBy(g.String()); err != nil || got != g {
			t.Errorf("ParseGroupBy(%q) = %v, %v", g, got, err)
		}
	}
	for _, v := range []string{"", "Container", "pid", "namespace"} {
		if _, err := ParseGroupBy(v); err == nil || err.Error() != fmt.Sprintf("unknown --by %q (want process, comm, container or pod)", v) {
			t.Errorf("ParseGroupBy(%q): %v", v, err)
		}
	}
}

// The table's first column is the group, its header the grouping's name;
// the columns after it stay where --by process has them.
func TestGroupTable(t *testing.T) {
	end := time.Now()
	var out bytes.Buffer
	a := New(end.Add(-time.Second), GroupContainer)
	traffic(a)
	if err := WriteTable(&out, a, end, ByConnections, 0); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	if !strings.HasSuffix(lines[0], ": 6 containers, by connections") {
		t.Errorf("title %q", lines[0])
	}
	if lines[1] != strings.TrimSuffix(Header(GroupContainer), "\n") || !strings.HasPrefix(lines[1], "CONTAINER                 DIR  PEER ") {
		t.Errorf("header %q", lines[1])
	}
	if strings.Index(lines[1], "DIR") != strings.Index(TableHeader, "DIR") || strings.Index(lines[1], "CONNS") != strings.Index(TableHeader, "CONNS") {
		t.Errorf("header %q moves the columns of %q", lines[1], TableHeader)
	}
	want := []string{
		"host                      out  198.51.100.1:443                          5      0  0            0",
		"host                      out  198.51.100.4:22                           1      0  0            0",
		"host                      out  198.51.100.5:80                           0      0  0            7",
		"aaaaaaaaaaaa              out  198.51.100.1:443                          5      0  0            0",
		"aaaaaaaaaaaa              out  198.51.100.2:80                           1      1  0            0",
		"bbbbbbbbbbbb web-0/nginx  in   198.51.100.9 -> :8080                     4      0  400          0",
		"db.service                in   198.51.100.9 -> :8080                     2      0  0            0",
		"cccccccccccc web-0/sidecar out  198.51.100.1:443                          1      0  0            0",
		"dddddddddddd              out  198.51.100.3:6379                         1      0  0            0",
	}
	for i, w := range want {
		if got := lines[2+i]; !strings.HasPrefix(got, w) {
			t.Errorf("row %d:\n got %q\nwant %q...", i, got, w)
		}
	}
	for _, g := range []GroupBy{GroupComm, GroupPod} {
		if h := Header(g); !strings.HasPrefix(h, fmt.Sprintf("%-25s DIR  PEER ", strings.ToUpper(g.String()))) {
			t.Errorf("--by %s: header %q", g, h)
		}
	}
	if Header(GroupProcess) != TableHeader {
		t.Errorf("--by process: header %q", Header(GroupProcess))
	}
}

// Untrusted names (a pod's, a container's, from the CRI runtime; a
// process's) reach the terminal escaped.
func TestGroupTableEscapes(t *testing.T) {
	a := New(time.Now(), GroupContainer)
	hostile := where{id: idB, runtime: "containerd", name: "x\x1b]0;owned\a", podUID: uidP, pod: "p\x1b[2J", ns: "shop"}
	a.Add(ev(event.Connect, 1, "curl", hostile, "198.51.100.1:443", false))
	var out bytes.Buffer
	if err := WriteTable(&out, a, time.Now(), ByConnections, 0); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(out.String(), "\x1b\a") {
		t.Errorf("control characters reach the terminal: %q", out.String())
	}
	want := "bbbbbbbbbbbb " + output.TerminalSafe("p\x1b[2J/x\x1b]0;owned\a")
	if !strings.Contains(out.String(), want) {
		t.Errorf("no %q in %q", want, out.String())
	}
}

// In JSON, by names the grouping; --by process keeps processes (with pid
// and comm) as before, the other groupings write groups, each with its
// label and the keys that identify it.
func TestGroupJSON(t *testing.T) {
	decode := func(by GroupBy) (schema.Summary, string) {
		t.Helper()
		a := New(time.Now(), by)
		traffic(a)
		var out bytes.Buffer
		if err := WriteJSON(&out, a, time.Now(), ByConnections, 0); err != nil {
			t.Fatal(err)
		}
		var s schema.Summary
		d := json.NewDecoder(&out)
		d.DisallowUnknownFields()
		if err := d.Decode(&s); err != nil {
			t.Fatal(err)
		}
		return s, out.String()
	}
	s, line := decode(GroupProcess)
	if s.By != "process" || len(s.Processes) != 9 || s.Groups != nil || strings.Contains(line, `"groups"`) {
		t.Errorf("--by process: %s", line)
	}
	s, line = decode(GroupContainer)
	if s.By != "container" || len(s.Groups) != 6 || strings.Contains(line, `"processes"`) {
		t.Fatalf("--by container: %s", line)
	}
	if g := s.Groups[2]; g.Group != "bbbbbbbbbbbb web-0/nginx" || g.ContainerID != idB || g.Runtime != "containerd" || g.Container != "nginx" ||
		g.PodUID != uidP || g.Pod != "web-0" || g.Namespace != "shop" || g.Accepts != 4 || g.BytesSent != 400 || len(g.Peers) != 1 || g.Peers[0].Accepts != 4 {
		t.Errorf("nginx's container: %+v", g)
	}
	if g := s.Groups[0]; g.Group != "host" || g.ContainerID != "" || g.Connects != 6 || g.BytesReceived != 7 || len(g.Peers) != 3 {
		t.Errorf("the host: %+v", g)
	}
	s, line = decode(GroupComm)
	if s.By != "comm" || len(s.Groups) != 6 || s.Groups[0].Group != "curl" || s.Groups[0].Comm != "curl" || s.Groups[0].Connects != 12 {
		t.Errorf("--by comm: %s", line)
	}
	s, line = decode(GroupPod)
	if s.By != "pod" || len(s.Groups) != 3 || s.Groups[2].Group != uidQ || s.Groups[2].PodUID != uidQ || s.Groups[2].Pod != "" || s.Groups[2].ContainerID != "" {
		t.Errorf("--by pod: %s", line)
	}
	// An empty period still has its (empty) list.
	var out bytes.Buffer
	if err := WriteJSON(&out, New(time.Now(), GroupPod), time.Now(), ByConnections, 0); err != nil || !strings.Contains(out.String(), `"groups":[]`) {
		t.Errorf("empty --by pod summary: %s %v", out.String(), err)
	}
	out.Reset()
	if err := WriteJSON(&out, New(time.Now(), GroupProcess), time.Now(), ByConnections, 0); err != nil || !strings.Contains(out.String(), `"processes":[]`) {
		t.Errorf("empty --by process summary: %s %v", out.String(), err)
	}
}

// The groups are bounded as the rows are: a group is made with a row, and
// past maxRows an event of a new one is counted as lost.
func TestGroupsBounded(t *testing.T) {
	a := New(time.Now(), GroupPod)
	for i := range maxRows + 1 {
		w := where{id: idD, podUID: fmt.Sprintf("pod-%d", i)}
		a.Add(ev(event.Connect, 1, "x", w, "198.51.100.1:443", false))
	}
	if len(a.groups) != maxRows || len(a.rows) != maxRows || a.Lost() != 1 {
		t.Errorf("%d groups, %d rows, %d lost; want %d, %d, 1", len(a.groups), len(a.rows), a.Lost(), maxRows, maxRows)
	}
}

// Matches, top's filter, looks at the group: its label, and a container's
// full id and names, a pod's uid and names.
func TestGroupMatches(t *testing.T) {
	a := New(time.Now(), GroupContainer)
	traffic(a)
	var nginx *Row
	for _, g := range a.Groups(ByConnections, 0) {
		if g.ContainerID == idB {
			nginx = g.Rows[0]
		}
	}
	for _, s := range []string{"", "bbbbbbbbbbbb", idB[20:], "web-0/ng", "shop", uidP, "198.51.100.9"} {
		if !nginx.Matches(s) {
			t.Errorf("nginx's row does not match %q", s)
		}
	}
	for _, s := range []string{"aaaa", "curl", "200", "host"} {
		if nginx.Matches(s) {
			t.Errorf("nginx's row matches %q", s)
		}
	}
}

// Grouping by container or pod costs no allocation per event of a known
// row (by comm, the name's string, as by process).
func TestGroupAddAllocs(t *testing.T) {
	for _, by := range []GroupBy{GroupContainer, GroupPod} {
		a := New(time.Now(), by)
		for _, w := range []where{inNginx, inUnit, onHost} {
			e := ev(event.Connect, 200, "nginx", w, "198.51.100.9:50000", false)
			a.Add(e)
			if n := testing.AllocsPerRun(100, func() { a.Add(e) }); n != 0 {
				t.Errorf("--by %s, %+v: %v allocations per event", by, w, n)
			}
		}
	}
}

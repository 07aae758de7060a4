package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The workload filters against processes the test puts in real cgroups:
// N connections (each a 100/200-byte exchange, closed by the client) from
// a process in cgroup A, M from a process in a Docker-named cgroup B
// beside it, and K held from a process in the test's own cgroup.
//
//   - --cgroup A shows exactly A's N connects, N established and N
//     closes, nothing else (the accepting server is in the test's cgroup,
//     so its accepts are not A's);
//   - --container <12 hex digits of B's id> exactly B's M of each; it is
//     started before B's cgroup exists, says it filters in user space
//     only, then, once the cgroup appears, in the kernel;
//   - --cgroup PARENT selects both children: N+M of each.
//
// That the kernel filter is really on (not silently moved to user space)
// is measured by the connection table: the --cgroup A tracer has room for
// 4 connections, and the K=8 held host connections would overflow it
// (reported as conn_table_full) if they were tracked, as they overflow a
// control tracer without the filter.
func TestCgroupFilter(t *testing.T) {
	requireRoot(t)
	mnt := cgroup2Mount(t)
	const n, m, k = 5, 3, 8
	parent := fmt.Sprintf("/tuxscope-filter-%d.slice", os.Getpid())
	t.Cleanup(func() { removeCgroups(t, filepath.Join(mnt, parent)) })
	id := randomHex(t, 32)
	cgA := parent + "/app-a.scope"
	cgB := parent + "/docker-" + id + ".scope"
	if err := os.MkdirAll(filepath.Join(mnt, cgA), 0o755); err != nil {
		t.Fatal(err)
	}

	srv, port := server(t, "-n", fmt.Sprint(n+m), "-recv", "100", "-send", "200", "-quiet")
	hostSrv, hostPort := server(t, "-n", fmt.Sprint(k), "-quiet")

	trA := startTracer(t, "--cgroup", cgA, "--conn-table", "4")
	trParent := startTracer(t, "--cgroup", parent+"/")
	trB := startTracer(t, "--container", id[:12])
	control := startTracer(t, "--conn-table", "4", "--port", fmt.Sprint(hostPort))
	for _, tr := range []*tracer{trA, trParent} {
		if s := tr.stderrText(); !strings.Contains(s, "filtering by cgroup in the kernel") {
			t.Fatalf("the cgroup filter is not in the kernel: %s", s)
		}
	}
	if s := trB.stderrText(); !strings.Contains(s, "filtering by container in user space only: no cgroup matches yet") {
		t.Errorf("--container of a cgroup not made yet: %s", s)
	}
	if err := os.MkdirAll(filepath.Join(mnt, cgB), 0o755); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the --container filter to reach the kernel", func() bool {
		return strings.Contains(trB.stderrText(), "filtering by container in the kernel")
	})

	// The host's K connections, held: first, so that the server's
	// accepts are done before A's and B's connections need the room.
	host := client(t, "-count", fmt.Sprint(k), "-addr", fmt.Sprintf("127.0.0.1:%d", hostPort))
	host.expect("CONNECTED")
	hostSrv.expect("ACCEPTED")
	// A process moves itself into its cgroup, then runs the client.
	inCgroup := func(cg string, count int) *proc {
		dir := filepath.Join(mnt, cg)
		return startProc(t, helper("client"), "sh", "-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`,
			dir, clientBin, "-count", fmt.Sprint(count), "-send", "100", "-recv", "200", "-addr", fmt.Sprintf("127.0.0.1:%d", port))
	}
	a := inCgroup(cgA, n)
	a.expect("CONNECTED")
	b := inCgroup(cgB, m)
	b.expect("CONNECTED")
	srv.expect("ACCEPTED")

	closes := func(pid int) func(jsonEvent) bool { return byPID("close", pid) }
	count := func(tr *tracer, pid int, typ string) int {
		return len(tr.all(func(e jsonEvent) bool { return e.EventType == typ && e.PID == pid }))
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("A pid %d B pid %d\n--cgroup A:\n%s\n%s\nparent:\n%s", a.pid(), b.pid(), trA.stderrText(), trA.dump(), trParent.dump())
		}
	})
	full := func(tr *tracer) []jsonEvent {
		return tr.all(func(e jsonEvent) bool { return e.EventType == "lost" && e.Reason == "conn_table_full" })
	}
	waitUntil(t, "A's closes", func() bool { return len(trA.all(closes(a.pid()))) == n || len(full(trA)) > 0 })
	if lost := full(trA); len(lost) > 0 {
		t.Fatalf("--cgroup %s --conn-table 4: the table overflowed (%v): connections outside the cgroup were tracked, the kernel filter is not on", cgA, lost)
	}
	waitUntil(t, "B's closes", func() bool { return len(trB.all(closes(b.pid()))) == m })
	waitUntil(t, "both closes", func() bool {
		return len(trParent.all(closes(a.pid()))) == n && len(trParent.all(closes(b.pid()))) == m
	})
	waitUntil(t, "the control tracer to report its full table", func() bool { return len(full(control)) > 0 })
	time.Sleep(300 * time.Millisecond) // anything else would be out by now

	for _, c := range []struct {
		name  string
		tr    *tracer
		procs map[int]int // pid -> connections
		cg    map[int]string
	}{
		{"--cgroup " + cgA, trA, map[int]int{a.pid(): n}, map[int]string{a.pid(): cgA}},
		{"--container " + id[:12], trB, map[int]int{b.pid(): m}, map[int]string{b.pid(): cgB}},
		{"--cgroup " + parent, trParent, map[int]int{a.pid(): n, b.pid(): m}, map[int]string{a.pid(): cgA, b.pid(): cgB}},
	} {
		for pid, want := range c.procs {
			for _, typ := range []string{"connect", "established", "close"} {
				if got := count(c.tr, pid, typ); got != want {
					t.Errorf("%s: %d %s events of pid %d, want %d", c.name, got, typ, pid, want)
				}
			}
		}
		others := c.tr.all(func(e jsonEvent) bool {
			want, ok := c.procs[e.PID]
			_ = want
			return !ok || e.Cgroup != c.cg[e.PID] || (e.EventType != "connect" && e.EventType != "established" && e.EventType != "close")
		})
		if len(others) > 0 {
			t.Errorf("%s let through: %v", c.name, others)
		}
	}
	if got := trB.all(func(e jsonEvent) bool { return e.ContainerID != id || e.Runtime != "docker" }); len(got) > 0 {
		t.Errorf("--container: events without the container's id: %v", got)
	}
	host.stdin.Close()
	hostSrv.stdin.Close()
}

// On a hybrid host, a container the runtime placed only in the v1
// hierarchies (its process's v2 cgroup the root) cannot be selected by v2
// ids: the kernel filter stays off, tuxscope says so, and user space
// selects exactly its connections, their outcomes and closes (attributed
// by the opener's cgroup), and nothing of a process outside it.
func TestCgroupFilterV1Only(t *testing.T) {
	requireRoot(t)
	cgroup2Mount(t)
	mnt := v1SystemdMount(t)
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(own), "\n0::/\n") && !strings.HasPrefix(string(own), "0::/\n") {
		t.Skipf("the test's v2 cgroup is not the root: a process moved only in v1 would keep a v2 cgroup that says where it is (%q)", own)
	}
	const n, k = 4, 3
	parent := fmt.Sprintf("/tuxscope-filter-v1-%d.slice", os.Getpid())
	t.Cleanup(func() { removeCgroups(t, filepath.Join(mnt, parent)) })
	id := randomHex(t, 32)
	cg := parent + "/docker-" + id + ".scope"
	if err := os.MkdirAll(filepath.Join(mnt, cg), 0o755); err != nil {
		t.Fatal(err)
	}
	srv, port := server(t, "-n", fmt.Sprint(n+k), "-recv", "100", "-send", "200", "-quiet")
	tr := startTracer(t, "--container", id[:12])
	if s := tr.stderrText(); !strings.Contains(s, "filtering by container in user space only: "+cg+" is only in the v1 hierarchies") {
		t.Errorf("a container only in v1: %s", s)
	}
	args := []string{"-count", "", "-send", "100", "-recv", "200", "-addr", fmt.Sprintf("127.0.0.1:%d", port)}
	args[1] = fmt.Sprint(k)
	host := client(t, args...)
	host.expect("CONNECTED")
	args[1] = fmt.Sprint(n)
	c := startProc(t, helper("client"), "sh", append([]string{"-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, filepath.Join(mnt, cg), clientBin}, args...)...)
	c.expect("CONNECTED")
	srv.expect("ACCEPTED")
	waitUntil(t, "the container's closes", func() bool { return len(tr.all(byPID("close", c.pid()))) == n })
	time.Sleep(300 * time.Millisecond)
	for _, typ := range []string{"connect", "established", "close"} {
		if got := len(tr.all(byPID(typ, c.pid()))); got != n {
			t.Errorf("%d %s events, want %d", got, typ, n)
		}
	}
	if bad := tr.all(func(e jsonEvent) bool { return e.PID != c.pid() || e.ContainerID != id || e.Cgroup != cg }); len(bad) > 0 {
		t.Errorf("--container %s let through: %v", id[:12], bad)
	}
}

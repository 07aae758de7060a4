package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Names from the hosts file the process sees: curl in a private mount
// namespace whose /etc/hosts (a bind-mounted temp file) names 127.0.0.12
// hosts-only.test connects by that name and gets it, with source hosts;
// the file rewritten with another name names the next connect from that
// namespace; an address not in the file gets no name; a process in the
// host's namespace, whose /etc/hosts does not know the name, gets none
// for the same address; --no-names gives none at all. Processes gone
// before tuxscope reads their connect are named through their cgroup.
func TestHostsFileNames(t *testing.T) {
	requireRoot(t)
	for _, bin := range []string{"curl", "unshare", "mount"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s", bin)
		}
	}
	if data, err := os.ReadFile("/etc/hosts"); err == nil && strings.Contains(string(data), "127.0.0.12") {
		t.Skip("this host's /etc/hosts already names 127.0.0.12")
	}
	// Servers that accept and never answer: each curl stays 1 s (-m 1),
	// alive while tuxscope reads its connect.
	_, port := server(t, "-addr", "127.0.0.12:0", "-n", "10")
	_, port13 := server(t, "-addr", "127.0.0.13:0", "-n", "10")
	hostsFile := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hostsFile, []byte("# test\n127.0.0.12\thosts-only.test hosts-alias.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tr := startTracer(t)
	quiet := startTracer(t, "--no-names")

	// The shell and its children share one private mount namespace.
	// Between the first and the second curl it waits for the test to
	// rewrite the file, then more than the once-a-second recheck.
	script := fmt.Sprintf(`mount --bind %s /etc/hosts || exit 1
curl -4 -s -m 1 -o /dev/null http://hosts-only.test:%d/ & echo FIRST $!; wait
read go
sleep 1.2
curl -4 -s -m 1 -o /dev/null http://renamed.test:%d/ & echo SECOND $!; wait
curl -4 -s -m 1 -o /dev/null http://127.0.0.13:%d/ & echo THIRD $!; wait
echo DONE`, hostsFile, port, port, port13)
	sh := startProc(t, nil, "unshare", "-m", "--propagation", "private", "sh", "-c", script)

	connectTo := func(pid, port int, daddr string) func(jsonEvent) bool {
		return func(e jsonEvent) bool {
			return e.EventType == "connect" && e.PID == pid && e.Dport == port && e.Daddr == daddr
		}
	}
	first := atoi(t, sh.expect("FIRST")[0])
	ev := tr.waitFor("the first curl's connect", connectTo(first, port, "127.0.0.12"))
	if ev.Comm != "curl" || ev.Hostname != "hosts-only.test" || ev.HostnameSource != "hosts" || strings.Join(ev.HostnameAlso, ",") != "hosts-alias.test" {
		t.Errorf("first connect: %s hostname=%q source=%q also=%q", ev, ev.Hostname, ev.HostnameSource, ev.HostnameAlso)
	}
	if est := tr.waitFor("its established", byPID("established", first)); est.Hostname != "hosts-only.test" || est.HostnameSource != "hosts" {
		t.Errorf("established: hostname=%q source=%q", est.Hostname, est.HostnameSource)
	}
	if ev := quiet.waitFor("the first connect, --no-names", connectTo(first, port, "127.0.0.12")); ev.Hostname != "" || ev.HostnameSource != "" {
		t.Errorf("--no-names: hostname=%q source=%q", ev.Hostname, ev.HostnameSource)
	}

	// The host's namespace: its /etc/hosts does not name 127.0.0.12.
	host := client(t, "-addr", "127.0.0.12:"+strconv.Itoa(port))
	host.expect("LOCAL")
	if ev := tr.waitFor("the host process's connect", connectTo(host.pid(), port, "127.0.0.12")); ev.Hostname != "" {
		t.Errorf("a process in the host's mount namespace: hostname=%q source=%q", ev.Hostname, ev.HostnameSource)
	}

	// Rewritten in place (the bind mount keeps the inode): a new name.
	if err := os.WriteFile(hostsFile, []byte("127.0.0.12 renamed.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sh.send("go")
	second := atoi(t, sh.expect("SECOND")[0])
	ev = tr.waitFor("the second curl's connect", connectTo(second, port, "127.0.0.12"))
	if ev.Hostname != "renamed.test" || ev.HostnameSource != "hosts" || len(ev.HostnameAlso) != 0 {
		t.Errorf("after the rewrite: %s hostname=%q source=%q also=%q", ev, ev.Hostname, ev.HostnameSource, ev.HostnameAlso)
	}

	// 127.0.0.13 is not in the file: no name.
	third := atoi(t, sh.expect("THIRD")[0])
	ev = tr.waitFor("the third curl's connect", connectTo(third, port13, "127.0.0.13"))
	if ev.Hostname != "" || ev.HostnameSource != "" {
		t.Errorf("an address not in the file: %s hostname=%q source=%q", ev, ev.Hostname, ev.HostnameSource)
	}
	sh.expect("DONE")
	if n := len(tr.all(func(e jsonEvent) bool { return e.EventType == "dns_dropped" })); n != 0 {
		t.Errorf("%d dns_dropped records for clean hosts files:\n%s", n, tr.dump())
	}

	// Processes gone before tuxscope reads their connect (a refused
	// connect: curl exits at once) in a cgroup of their own, as a
	// container's: named from the namespace the cgroup's other process
	// (a curl that stays 1 s) was seen in. The file's two lines glibc
	// would ignore are reported, once: the file is read once.
	t.Run("gone-in-own-cgroup", func(t *testing.T) {
		mnt := cgroup2Mount(t)
		cg := fmt.Sprintf("/tuxscope-test-%d.slice/hosts.scope", os.Getpid())
		t.Cleanup(func() { removeCgroups(t, filepath.Join(mnt, filepath.Dir(cg))) })
		ctrHosts := filepath.Join(t.TempDir(), "hosts")
		if err := os.WriteFile(ctrHosts, []byte("not-an-address bad.test\n127.0.0.12 in-cgroup.test\n198.51.100.1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		const n = 20
		script := fmt.Sprintf(`read go
mount --bind %s /etc/hosts || exit 1
curl -4 -s -m 1 -o /dev/null http://in-cgroup.test:%d/ & echo SEEN $!; wait
for i in $(seq %d); do curl -4 -s -m 1 -o /dev/null http://in-cgroup.test:1/ & echo GONE $!; wait; done
echo DONE`, ctrHosts, port, n)
		ctr := startProc(t, nil, "unshare", "-m", "--propagation", "private", "sh", "-c", script)
		moveTo(t, mnt, cg, ctr.pid())
		ctr.send("go")
		seen := atoi(t, ctr.expect("SEEN")[0])
		if ev := tr.waitFor("the long curl's connect", connectTo(seen, port, "127.0.0.12")); ev.Hostname != "in-cgroup.test" || ev.HostnameSource != "hosts" || ev.Cgroup != cg {
			t.Errorf("the long curl: %s hostname=%q source=%q cgroup=%q", ev, ev.Hostname, ev.HostnameSource, ev.Cgroup)
		}
		for range n {
			gone := atoi(t, ctr.expect("GONE")[0])
			ev := tr.waitFor("a refused curl's connect", connectTo(gone, 1, "127.0.0.12"))
			if ev.Hostname != "in-cgroup.test" || ev.HostnameSource != "hosts" {
				t.Errorf("a refused curl: %s hostname=%q source=%q", ev, ev.Hostname, ev.HostnameSource)
			}
		}
		ctr.expect("DONE")
		waitUntil(t, "the skipped lines reported", func() bool { return dnsDropped(tr, "hosts_skipped") > 0 })
		if n := dnsDropped(tr, "hosts_skipped"); n != 2 {
			t.Errorf("hosts_skipped: %d, want 2:\n%s", n, tr.dump())
		}
	})
}

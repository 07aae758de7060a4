package integration

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tuxscope/tuxscope/internal/container"
)

// cgroup2Mount is where cgroup2 is mounted here (/sys/fs/cgroup on a v2
// host and in the matrix's guests, /sys/fs/cgroup/unified on a hybrid
// one); the test is skipped without one.
func cgroup2Mount(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mnt, root := container.Cgroup2Mount(f)
	if mnt == "" {
		t.Skip("no cgroup2 mount in /proc/self/mountinfo: cannot make cgroups to put processes in")
	}
	if root != "/" {
		t.Skipf("cgroup2 is mounted from %s (a cgroup namespace): the test's paths would not be the kernel's", root)
	}
	return mnt
}

// podUID is a random pod uid as the kubelet writes it.
func podUID(t *testing.T) string {
	return randomHex(t, 4) + "-" + randomHex(t, 2) + "-" + randomHex(t, 2) + "-" + randomHex(t, 2) + "-" + randomHex(t, 6)
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// Processes the test moves into real cgroups named as Docker and the
// kubelet (both cgroup drivers, each QoS class) name them connect to a
// listener; their connect events carry the cgroup path and what it shows.
// The cgroups are made below a parent of the test's own and removed after.
func TestContainerAttribution(t *testing.T) {
	requireRoot(t)
	mnt := cgroup2Mount(t)
	parent := fmt.Sprintf("/tuxscope-test-%d.slice", os.Getpid())
	t.Cleanup(func() { removeCgroups(t, filepath.Join(mnt, parent)) })

	uid := podUID(t)
	uidU := strings.ReplaceAll(uid, "-", "_")
	type want struct{ id, runtime, pod string }
	var cases []struct {
		path string
		want want
	}
	add := func(path string, w want) {
		cases = append(cases, struct {
			path string
			want want
		}{parent + path, w})
	}
	id := func() string { return randomHex(t, 32) }
	for _, c := range []struct{ path, id string }{{"/docker-%s.scope", id()}} {
		add(fmt.Sprintf(c.path, c.id), want{c.id, "docker", ""})
	}
	for _, qos := range []string{"burstable", "besteffort"} {
		c := id()
		add(fmt.Sprintf("/kubepods.slice/kubepods-%s.slice/kubepods-%s-pod%s.slice/cri-containerd-%s.scope", qos, qos, uidU, c), want{c, "containerd", uid})
		c = id()
		add(fmt.Sprintf("/kubepods/%s/pod%s/%s", qos, uid, c), want{c, "containerd", uid})
	}
	// Guaranteed pods sit right below kubepods.
	c := id()
	add(fmt.Sprintf("/kubepods.slice/kubepods-pod%s.slice/cri-containerd-%s.scope", uidU, c), want{c, "containerd", uid})
	c = id()
	add(fmt.Sprintf("/kubepods/pod%s/%s", uid, c), want{c, "containerd", uid})
	add("/tuxscope-probe.service", want{"", "systemd", ""})

	srv, port := server(t, "-n", fmt.Sprint(len(cases)))
	tr := startTracer(t)
	for _, tc := range cases {
		cl := client(t, "-wait", "-addr", fmt.Sprintf("127.0.0.1:%d", port))
		moveTo(t, mnt, tc.path, cl.pid())
		cl.send("go")
		cl.expect("LOCAL")
		srv.expect("ACCEPTED")
		e := tr.waitFor("connect of "+tc.path, byPID("connect", cl.pid()))
		if e.Cgroup != tc.path || e.ContainerID != tc.want.id || e.Runtime != tc.want.runtime || e.PodUID != tc.want.pod {
			t.Errorf("%s: connect carries cgroup %q container_id %q runtime %q pod_uid %q, want %q %q %q", tc.path, e.Cgroup, e.ContainerID, e.Runtime, e.PodUID, tc.want.id, tc.want.runtime, tc.want.pod)
		}
		if tc.want.runtime == "systemd" && e.Container != "tuxscope-probe.service" {
			t.Errorf("%s: container %q, want the unit's name", tc.path, e.Container)
		}
		// The server's accept is in the test's own cgroup, not these.
		a := tr.waitFor("accept from "+tc.path, func(a jsonEvent) bool { return a.EventType == "accept" && a.Saddr == e.Saddr && a.Sport == e.Sport })
		if a.ContainerID != "" || strings.HasPrefix(a.Cgroup, parent) {
			t.Errorf("the server's accept carries %q %q", a.Cgroup, a.ContainerID)
		}
	}
}

// v1SystemdMount is where the v1 name=systemd hierarchy is mounted from
// its root (a hybrid host); the test is skipped without one.
func v1SystemdMount(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if ok && len(f) >= 5 && len(g) >= 3 && g[0] == "cgroup" && f[3] == "/" && strings.Contains(","+g[2]+",", ",name=systemd,") {
			return f[4]
		}
	}
	t.Skip("no v1 name=systemd hierarchy mounted from its root (not a hybrid host)")
	return ""
}

// removeCgroups removes dir and the cgroups below it, deepest first, once
// their processes are gone (a cgroup empties a moment after its last
// process is reaped).
func removeCgroups(t *testing.T, dir string) {
	var dirs []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := os.Remove(dirs[i])
			if err == nil || os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("removing cgroup %s: %v", dirs[i], err)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// On a hybrid host a container may live only in the v1 hierarchies (its
// v2 cgroup the root): a process the test moves into a v1 name=systemd
// cgroup named as Docker's systemd driver names it, and left in the v2
// root, is attributed from /proc/PID/cgroup.
func TestContainerAttributionV1(t *testing.T) {
	requireRoot(t)
	mnt := v1SystemdMount(t)
	parent := fmt.Sprintf("/tuxscope-test-%d.slice", os.Getpid())
	t.Cleanup(func() { removeCgroups(t, filepath.Join(mnt, parent)) })
	id := randomHex(t, 32)
	path := parent + "/docker-" + id + ".scope"
	srv, port := server(t)
	tr := startTracer(t)
	cl := client(t, "-wait", "-addr", fmt.Sprintf("127.0.0.1:%d", port))
	moveTo(t, mnt, path, cl.pid())
	own, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", cl.pid()))
	if err != nil {
		t.Fatal(err)
	}
	if v2, _ := container.ProcCgroup(own); v2 != "/" {
		t.Skipf("the process's v2 cgroup is %q, not the root: its v2 path names it (TestContainerAttribution)", v2)
	}
	cl.send("go")
	cl.expect("LOCAL")
	srv.expect("ACCEPTED")
	e := tr.waitFor("connect", byPID("connect", cl.pid()))
	if e.Cgroup != path || e.ContainerID != id || e.Runtime != "docker" {
		t.Errorf("connect carries cgroup %q container_id %q runtime %q, want %q %q docker", e.Cgroup, e.ContainerID, e.Runtime, path, id)
	}
}

// A real container: podman (with runc; crun refuses hybrid cgroups) runs
// the test's client in a root filesystem made here (the client and the
// libraries ldd names), on the host network; its connect carries the
// container's id, runtime podman and its cgroup.
func TestContainerAttributionPodman(t *testing.T) {
	requireRoot(t)
	cgroup2Mount(t)
	for _, bin := range []string{"podman", "runc", "ldd"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("no %s here (apt-get install podman runc)", bin)
		}
	}
	rootfs := t.TempDir()
	os.Chmod(rootfs, 0o755)
	files := []string{clientBin}
	out, err := exec.Command("ldd", clientBin).Output()
	if err == nil { // a static binary makes ldd fail: nothing to add
		for _, f := range strings.Fields(string(out)) {
			if strings.HasPrefix(f, "/") {
				files = append(files, f)
			}
		}
	}
	for _, f := range files {
		dst := filepath.Join(rootfs, f)
		if f == clientBin {
			dst = filepath.Join(rootfs, "tsclient")
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cidFile := filepath.Join(t.TempDir(), "cid")
	srv, port := server(t)
	tr := startTracer(t)
	// After the client's cleanup (stdin closed, podman given 500ms): a
	// container left behind is removed.
	t.Cleanup(func() { exec.Command("podman", "rm", "-f", "--ignore", "--cidfile", cidFile).Run() })
	// Every flag before --rootfs: what follows DIR is the command.
	c := startProc(t, nil, "podman", "--runtime", "runc", "run", "--rm", "-i", "--network", "host",
		"--cidfile", cidFile, "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768",
		"-e", helperEnv+"=client", "--rootfs", rootfs, "/tsclient", "-addr", fmt.Sprintf("127.0.0.1:%d", port))
	local := c.expectWithin("LOCAL", 60*time.Second)
	srv.expect("ACCEPTED")
	data, err := os.ReadFile(cidFile)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(string(data))
	e := tr.waitFor("the container's connect", func(e jsonEvent) bool {
		return e.EventType == "connect" && e.Dport == port && fmt.Sprintf("%s:%d", e.Saddr, e.Sport) == local[0]
	})
	if e.ContainerID != id || e.Runtime != "podman" || !strings.HasSuffix(e.Cgroup, "/libpod-"+id) && !strings.HasSuffix(e.Cgroup, "/libpod-"+id+".scope") {
		t.Errorf("the container's connect carries cgroup %q container_id %q runtime %q, want container %s, runtime podman", e.Cgroup, e.ContainerID, e.Runtime, id)
	}
	t.Logf("container %s: cgroup %s", id[:12], e.Cgroup)
	c.stdin.Close() // the client exits, and podman removes the container
	c.waitExit()
}

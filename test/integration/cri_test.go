package integration

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tuxscope/tuxscope/internal/cri/critest"
)

// kubeletPath is the cgroup the kubelet (systemd or cgroupfs driver)
// makes for a containerd container of a pod of a QoS class.
func kubeletPath(systemd bool, qos, uid, id string) string {
	if systemd {
		u := strings.ReplaceAll(uid, "-", "_")
		if qos == "guaranteed" {
			return fmt.Sprintf("/kubepods.slice/kubepods-pod%s.slice/cri-containerd-%s.scope", u, id)
		}
		return fmt.Sprintf("/kubepods.slice/kubepods-%s.slice/kubepods-%s-pod%s.slice/cri-containerd-%s.scope", qos, qos, u, id)
	}
	if qos == "guaranteed" {
		return fmt.Sprintf("/kubepods/pod%s/%s", uid, id)
	}
	return fmt.Sprintf("/kubepods/%s/pod%s/%s", qos, uid, id)
}

// Pod, namespace and container names come from a CRI runtime: a real
// gRPC server of the RuntimeService started by the test on a unix socket,
// knowing the pods and containers the test chose. Processes the test
// moves into cgroups named as the kubelet names them (both drivers, each
// QoS class) connect; each connect carries its pod's uid and container's
// id from the path and the names from the runtime, exactly. A container
// the runtime does not know has its ids and no names; one the runtime
// starts after tuxscope did is named within about a second of its first
// event.
func TestCRINames(t *testing.T) {
	requireRoot(t)
	mnt := cgroup2Mount(t)
	parent := fmt.Sprintf("/tuxscope-test-%d.slice", os.Getpid())
	t.Cleanup(func() { removeCgroups(t, filepath.Join(mnt, parent)) })
	sock := filepath.Join(t.TempDir(), "containerd.sock")
	rt, err := critest.Start(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Stop)

	type tc struct {
		path, uid, id           string
		pod, namespace, ctrName string
	}
	var cases []tc
	i := 0
	for _, systemd := range []bool{true, false} {
		for _, qos := range []string{"besteffort", "burstable", "guaranteed"} {
			i++
			c := tc{uid: podUID(t), id: randomHex(t, 32), pod: fmt.Sprintf("web-%d-7d4b9", i), namespace: fmt.Sprintf("shop-%d", i), ctrName: fmt.Sprintf("nginx-%d", i)}
			c.path = parent + kubeletPath(systemd, qos, c.uid, c.id)
			sandbox := randomHex(t, 32)
			rt.AddPod(sandbox, c.uid, c.pod, c.namespace)
			rt.AddContainer(c.id, sandbox, c.ctrName, nil)
			// Another container of the same pod, never seen.
			rt.AddContainer(randomHex(t, 32), sandbox, "sidecar", nil)
			cases = append(cases, c)
		}
	}
	// Neither its pod nor its container is the runtime's.
	stranger := tc{uid: podUID(t), id: randomHex(t, 32)}
	stranger.path = parent + kubeletPath(true, "burstable", stranger.uid, stranger.id)
	cases = append(cases, stranger)

	srv, port := server(t, "-n", fmt.Sprint(len(cases)+2))
	tr := startTracer(t, "--cri-socket", sock)
	connect := func(c tc) jsonEvent {
		t.Helper()
		cl := client(t, "-wait", "-addr", fmt.Sprintf("127.0.0.1:%d", port))
		moveTo(t, mnt, c.path, cl.pid())
		cl.send("go")
		cl.expect("LOCAL")
		srv.expect("ACCEPTED")
		return tr.waitFor("connect of "+c.path, byPID("connect", cl.pid()))
	}
	check := func(what string, e jsonEvent, c tc) {
		t.Helper()
		if e.Cgroup != c.path || e.ContainerID != c.id || e.Runtime != "containerd" || e.PodUID != c.uid ||
			e.Pod != c.pod || e.Namespace != c.namespace || e.Container != c.ctrName {
			t.Errorf("%s: connect carries cgroup %q container_id %q runtime %q pod_uid %q pod %q namespace %q container %q;\nwant %q %q containerd %q %q %q %q",
				what, e.Cgroup, e.ContainerID, e.Runtime, e.PodUID, e.Pod, e.Namespace, e.Container,
				c.path, c.id, c.uid, c.pod, c.namespace, c.ctrName)
		}
	}
	for _, c := range cases {
		check(c.path, connect(c), c)
	}

	// A pod and container the runtime starts now: the first connect
	// misses (its ids are in the path, names may not be yet) and asks
	// for a refresh; a second one a second later has the names.
	late := tc{uid: podUID(t), id: randomHex(t, 32), pod: "late-0", namespace: "batch", ctrName: "job"}
	late.path = parent + kubeletPath(false, "burstable", late.uid, late.id)
	sandbox := randomHex(t, 32)
	rt.AddPod(sandbox, late.uid, late.pod, late.namespace)
	rt.AddContainer(late.id, sandbox, late.ctrName, nil)
	lists := rt.Lists()
	first := connect(late)
	if first.ContainerID != late.id || first.PodUID != late.uid {
		t.Errorf("late container's first connect carries container_id %q pod_uid %q, want %q %q", first.ContainerID, first.PodUID, late.id, late.uid)
	}
	time.Sleep(time.Second)
	if rt.Lists() == lists {
		t.Errorf("no listing within 1s of the late container's first connect")
	}
	check("late container", connect(late), late)
}

// An explicit --cri-socket that cannot be reached, or does not answer as
// a CRI runtime, is said in one line on stderr before the attached line;
// the run goes on, its events without names.
func TestCRISocketUnreachable(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	mute := filepath.Join(dir, "mute.sock")
	lis, err := net.Listen("unix", mute)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	go func() { // accepts and hangs up at once: no gRPC here
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	missing := filepath.Join(dir, "none.sock")
	for _, tt := range []struct{ sock, want string }{
		{missing, fmt.Sprintf("tuxscope: --cri-socket %s: stat %s: no such file or directory; going on without pod and container names", missing, missing)},
		{dir, fmt.Sprintf("tuxscope: --cri-socket %s: %s is not a socket; going on without pod and container names", dir, dir)},
		{mute, fmt.Sprintf("tuxscope: --cri-socket %s: CRI Version: Unavailable: ", mute)},
	} {
		srv, port := server(t)
		start := time.Now()
		tr := startTracer(t, "--cri-socket", tt.sock)
		took := time.Since(start)
		lines := strings.Split(strings.TrimSpace(tr.stderrText()), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], tt.want) || !strings.HasSuffix(lines[0], "; going on without pod and container names") || !strings.HasPrefix(lines[1], "tuxscope: attached") {
			t.Errorf("--cri-socket %s: stderr %q, want %q... then the attached line", tt.sock, lines, tt.want)
		}
		cl := client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port))
		cl.expect("LOCAL")
		srv.expect("ACCEPTED")
		if e := tr.waitFor("connect", byPID("connect", cl.pid())); e.Pod != "" || e.Namespace != "" {
			t.Errorf("connect named %q %q", e.Pod, e.Namespace)
		}
		if code := tr.stop(); code != 0 {
			t.Errorf("--cri-socket %s: exit %d; stderr %s", tt.sock, code, tr.stderrText())
		}
		t.Logf("--cri-socket %s: attached in %v", filepath.Base(tt.sock), took.Round(time.Millisecond))
	}
}

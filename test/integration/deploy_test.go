package integration

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// unitCapabilities is deploy/systemd/tuxscope.service's
// CapabilityBoundingSet, in setpriv's names (bpf, perfmon, ...); the
// DaemonSet's and the README's list are held to it by deploy/deploy_test.go.
func unitCapabilities(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../deploy/systemd/tuxscope.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapabilityBoundingSet="); ok {
			var caps []string
			for _, c := range strings.Fields(v) {
				caps = append(caps, strings.ToLower(strings.TrimPrefix(c, "CAP_")))
			}
			return caps
		}
	}
	t.Fatal("the unit has no CapabilityBoundingSet")
	return nil
}

// TestDeployCapabilities runs tuxscope as the unit and the DaemonSet do:
// root's uid with the deployment's capabilities as its bounding set, no
// new privileges. Every hook point attaches, the DNS hooks too (no "no
// DNS names" line), and this test's connect is seen with its pid and
// ports.
func TestDeployCapabilities(t *testing.T) {
	requireSetpriv(t)
	caps := unitCapabilities(t)
	list := "-all,+" + strings.Join(caps, ",+")
	port := closingListener(t)
	args := append([]string{"--no-new-privs", "--inh-caps", "-all", "--bounding-set", list, tuxscopeBin},
		netArgs("--format", "json", "--port", fmt.Sprint(port))...)
	tr := startTracerCmd(t, exec.Command("setpriv", args...))
	seesOwnConnect(t, tr, port)
	if code := tr.stop(); code != 0 {
		t.Errorf("exit %d", code)
	}
	stderr := tr.stderrText()
	if strings.Contains(stderr, "no DNS names") || strings.Contains(stderr, "missing") {
		t.Errorf("with %s: %s", list, stderr)
	}
	// The same hooks as root with every capability.
	full := startTracer(t, "--port", fmt.Sprint(port))
	full.stop()
	attached := func(s string) string {
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(l, "tuxscope: attached") {
				return l
			}
		}
		return ""
	}
	if got, want := attached(stderr), attached(full.stderrText()); got != want || got == "" {
		t.Errorf("with %s: %q\nas root: %q", list, got, want)
	}
}

// TestImage builds the container image as `make image` does (podman,
// FROM scratch, the static binary) and runs `tuxscope version` in it.
func TestImage(t *testing.T) {
	requireRoot(t)
	for _, bin := range []string{"make", "podman", "runc", "file"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("no %s here (apt-get install make podman runc file)", bin)
		}
	}
	version := fmt.Sprintf("image-test-%d", os.Getpid())
	image := "localhost/tuxscope-test:" + version
	dir := t.TempDir()
	t.Cleanup(func() { exec.Command("podman", "rmi", "-f", image).Run() })
	make := exec.Command("make", "-C", "../..", "image", "IMAGE="+image, "STATIC_DIR="+dir, "VERSION="+version)
	if out, err := make.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	st, err := os.Stat(filepath.Join(dir, "tuxscope"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("podman", "image", "inspect", "--format", "{{.Size}} {{json .Config.Entrypoint}} {{json .Config.Cmd}}", image).Output()
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	var entry, cmd string
	fmt.Sscan(string(out), &size, &entry, &cmd)
	// The binary and nothing else but the image's metadata.
	if size < st.Size() || size > st.Size()+64<<10 || entry != `["/usr/bin/tuxscope"]` || cmd != `["serve","--listen","0.0.0.0:9464"]` {
		t.Errorf("image: size %d (binary %d), entrypoint %s, cmd %s", size, st.Size(), entry, cmd)
	}
	// runc: crun refuses this host's hybrid cgroups; a nofile limit within
	// the host's hard limits.
	got, err := exec.Command("podman", "--runtime", "runc", "run", "--rm", "--network", "none",
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=32768:32768", image, "version").CombinedOutput()
	if err != nil || string(got) != "tuxscope "+version+"\n" {
		t.Errorf("podman run %s version: %v: %q", image, err, got)
	}
}

package integration

import (
	"bufio"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/tuxscope/tuxscope/internal/bpf"
)

// tuxscopePrograms are the names of every program in tuxscope's BPF
// object, whole (from BTF) and as the kernel's 15-byte name field keeps
// them.
var tuxscopePrograms = func() map[string]bool {
	names := map[string]bool{}
	spec, err := bpf.LoadTuxscope()
	if err != nil {
		panic(err)
	}
	for name := range spec.Programs {
		names[name], names[name[:min(len(name), 15)]] = true, true
	}
	return names
}()

// loadedPrograms counts tuxscope's BPF programs loaded on the host (by
// name: other tracers may come and go meanwhile).
func loadedPrograms(t *testing.T) int {
	t.Helper()
	n := 0
	id := ebpf.ProgramID(0)
	for i := 0; i < 1_000_000; i++ {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return n
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // gone meanwhile
		}
		if info, err := p.Info(); err == nil && tuxscopePrograms[info.Name] {
			n++
		}
		p.Close()
	}
	t.Fatal("too many programs")
	return n
}

// SIGINT and SIGTERM end tuxscope with exit code 0, and every program it
// loaded is gone afterwards.
func TestSignalsDetachEverything(t *testing.T) {
	requireRoot(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			// A tracer an earlier test stopped may still be unloading.
			before := loadedPrograms(t)
			for deadline := time.Now().Add(5 * time.Second); before > 0 && time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond)
				before = loadedPrograms(t)
			}
			tr := startTracer(t)
			var hooks int
			attached := tr.stderrText()
			if i := strings.Index(attached, "tuxscope: attached"); i >= 0 {
				attached = attached[i:]
			}
			if _, err := fmt.Sscanf(attached, "tuxscope: attached %d hooks", &hooks); err != nil || hooks < 5 {
				t.Fatalf("attached line %q: want at least 5 hooks (%v)", tr.stderrText(), err)
			}
			// One program per hook.
			if during := loadedPrograms(t); during != before+hooks {
				t.Errorf("%d BPF programs while tracing, want %d (before) + %d", during, before, hooks)
			}
			tr.cmd.Process.Signal(sig)
			select {
			case <-tr.done:
			case <-time.After(10 * time.Second):
				t.Fatalf("no exit within 10s of %v", sig)
			}
			tr.cmd.Wait()
			if code := tr.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("exit code %d after %v, want 0; stderr:\n%s", code, sig, tr.stderrText())
			}
			waitUntil(t, "the programs to be unloaded", func() bool { return loadedPrograms(t) == before })
		})
	}
}

// `tuxscope net | head -3`: once the reader is gone tuxscope ends quietly.
func TestClosedStdoutEndsQuietly(t *testing.T) {
	requireRoot(t)
	srv, port := server(t, "-n", "100")
	cmd, stdout, stderr := startNet(t, "--port", fmt.Sprint(port))

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	connect := func() {
		client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port)).expect("LOCAL")
		srv.expect("ACCEPTED")
	}
	connect()
	r := bufio.NewReader(stdout)
	for i := 0; i < 3; i++ { // header, connect, accept: like head -3
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	stdout.Close()
	for i := 0; ; i++ {
		connect()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("tuxscope: %v, want exit 0", err)
			}
			if lines := strings.Split(strings.TrimSpace(stderr.String()), "\n"); len(lines) != 1 {
				t.Errorf("want only the attached line on stderr, got:\n%s", stderr.String())
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
		if i == 50 {
			cmd.Process.Kill()
			t.Fatal("tuxscope kept running after its stdout was closed")
		}
	}
}

// Errors are one line with the right exit code.
func TestErrors(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name string
		args []string
		uid  uint32
		code int
		want string
	}{
		{"unknown flag", []string{"net", "--bogus"}, 0, 2, "flag provided but not defined: -bogus"},
		{"bad pid", []string{"net", "--pid", "abc"}, 0, 2, `invalid pid "abc"`},
		{"bad type", []string{"net", "--type", "bogus"}, 0, 2, "unknown event type"},
		{"unknown command", []string{"frobnicate"}, 0, 2, "unknown command"},
		{"not privileged", []string{"net"}, 65534, 1, "missing: CAP_BPF, CAP_PERFMON"},
		{"missing BTF file", []string{"net", "--btf", "/nonexistent/vmlinux"}, 0, 1, "reading kernel BTF from /nonexistent/vmlinux"},
		// An endless file: refused at once, not read forever.
		{"BTF from a device", []string{"net", "--btf", "/dev/zero"}, 0, 1, "reading kernel BTF from /dev/zero: it is a character device, not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(tuxscopeBin, tc.args...)
			if tc.uid != 0 {
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: tc.uid, Gid: tc.uid}}
			}
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != tc.code {
				t.Errorf("exit code %d, want %d; stderr: %s", code, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q does not say %q", stderr.String(), tc.want)
			}
			if !strings.HasPrefix(stderr.String(), "tuxscope") {
				t.Errorf("stderr %q does not start with the program name", stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout should be empty, got %q", stdout.String())
			}
		})
	}
}

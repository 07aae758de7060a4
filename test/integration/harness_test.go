package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tuxscope/tuxscope/internal/schema"
)

// Paths set up by TestMain.
var (
	tuxscopeBin string // the tuxscope binary under test
	clientBin   string // symlink to this test binary: comm "tsclient"
	serverBin   string // symlink to this test binary: comm "tsserver"
	skipReason  string // why privileged tests cannot run here, if they cannot
)

// A helper's main goroutine keeps the process's main thread: only a
// LockOSThread in init is sure to run there, and the client's -thread
// mode needs the main thread (tid == pid) never to run its connect.
func init() {
	if os.Getenv(helperEnv) != "" {
		runtime.LockOSThread()
	}
}

func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		os.Exit(runHelper(role, os.Args[1:]))
	}
	os.Exit(setupAndRun(m))
}

func setupAndRun(m *testing.M) int {
	if os.Geteuid() != 0 {
		skipReason = "integration tests load BPF programs and need root (run them with sudo or in CI)"
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "tuxscope-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// World-readable, so the unprivileged test can run the binary.
	os.Chmod(dir, 0o755)
	tuxscopeBin = filepath.Join(dir, "tuxscope")
	if bin := os.Getenv("TUXSCOPE_BIN"); bin != "" {
		// A prebuilt binary (tools/matrix: the guests have no Go toolchain).
		tuxscopeBin = bin
	} else {
		build := exec.Command("go", "build", "-o", tuxscopeBin, "../../cmd/tuxscope")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building tuxscope: %v\n", err)
			return 1
		}
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	clientBin = filepath.Join(dir, "tsclient")
	serverBin = filepath.Join(dir, "tsserver")
	// Links (or copies) in the world-readable directory, not symlinks:
	// helpers that run as another user must reach the binary, and go
	// test's build directory is root's alone.
	for _, l := range []string{clientBin, serverBin} {
		if err := linkOrCopy(self, l); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

// linkOrCopy makes dst the file src, as a hard link where it can.
func linkOrCopy(src, dst string) error {
	if os.Link(src, dst) == nil {
		return nil
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}

// testBackend is the --backend every test runs tuxscope net with
// (TUXSCOPE_TEST_BACKEND; tools/matrix runs the suite once per backend).
var testBackend = os.Getenv("TUXSCOPE_TEST_BACKEND")

// netCommand is `tuxscope net [--backend B] args...`.
func netCommand(args ...string) *exec.Cmd {
	if testBackend != "" {
		args = append([]string{"--backend", testBackend}, args...)
	}
	return exec.Command(tuxscopeBin, append([]string{"net"}, args...)...)
}

// startNet starts `tuxscope net args...` with its stdout on a pipe for
// the test to read and its stderr collected, and waits until it attached.
func startNet(t *testing.T, args ...string) (*exec.Cmd, io.ReadCloser, *syncBuffer) {
	t.Helper()
	cmd := netCommand(args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := new(syncBuffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "tuxscope to attach", func() bool { return strings.Contains(stderr.String(), "attached") })
	return cmd, stdout, stderr
}

func requireRoot(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// jsonEvent is one line of tuxscope's JSON output, as the schema declares it.
type jsonEvent = schema.Event

// tracer is a running `tuxscope net --format json`.
type tracer struct {
	t      *testing.T
	cmd    *exec.Cmd
	mu     sync.Mutex
	events []jsonEvent
	lines  []string
	stderr strings.Builder
	done   chan struct{} // closed when stdout hits EOF
}

// startTracer runs tuxscope net --format json with extra args and waits
// for its "attached" line. It is stopped (SIGINT) at the end of the test.
func startTracer(t *testing.T, args ...string) *tracer {
	t.Helper()
	return startTracerCmd(t, netCommand(append([]string{"--format", "json"}, args...)...))
}

// startTracerCmd is startTracer for a command of the caller's making
// (e.g. tuxscope net --format json under setpriv).
func startTracerCmd(t *testing.T, cmd *exec.Cmd) *tracer {
	t.Helper()
	tr := &tracer{t: t, cmd: cmd, done: make(chan struct{})}
	stdout, err := tr.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := tr.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	attached := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			tr.mu.Lock()
			tr.stderr.WriteString(sc.Text() + "\n")
			tr.mu.Unlock()
			if !sent && strings.HasPrefix(sc.Text(), "tuxscope: attached") {
				attached <- true
				sent = true
			}
		}
		if !sent {
			attached <- false
		}
	}()
	go func() {
		defer close(tr.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev jsonEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Errorf("tuxscope printed a line that is not JSON: %q: %v", sc.Text(), err)
				continue
			}
			tr.mu.Lock()
			tr.events = append(tr.events, ev)
			tr.lines = append(tr.lines, sc.Text())
			tr.mu.Unlock()
		}
	}()
	select {
	case ok := <-attached:
		if !ok {
			tr.cmd.Wait()
			t.Fatalf("tuxscope exited before attaching: %s", tr.stderrText())
		}
	case <-time.After(20 * time.Second):
		tr.cmd.Process.Kill()
		t.Fatalf("tuxscope did not attach within 20s: %s", tr.stderrText())
	}
	t.Cleanup(func() { tr.stop() })
	return tr
}

func (tr *tracer) stderrText() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.stderr.String()
}

// stop sends SIGINT and waits; it returns the exit code.
func (tr *tracer) stop() int {
	if tr.cmd.ProcessState != nil {
		return tr.cmd.ProcessState.ExitCode()
	}
	tr.cmd.Process.Signal(syscall.SIGINT)
	exited := make(chan error, 1)
	go func() { <-tr.done; exited <- tr.cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		tr.cmd.Process.Kill()
		tr.t.Errorf("tuxscope did not exit within 10s of SIGINT")
		<-exited
	}
	return tr.cmd.ProcessState.ExitCode()
}

// waitFor returns the first event that matches, failing after 10 s.
func (tr *tracer) waitFor(what string, match func(jsonEvent) bool) jsonEvent {
	tr.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		tr.mu.Lock()
		for _, ev := range tr.events {
			if match(ev) {
				tr.mu.Unlock()
				return ev
			}
		}
		tr.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	// A loss tuxscope reported is not a wrong result: the kernel skipped
	// its programs (another BPF program ran on that CPU; in TCG guests a
	// softirq can interrupt a classic-tracepoint program). The event may
	// be among them, so this run proves nothing either way.
	if skipped := tr.all(func(ev jsonEvent) bool { return ev.EventType == "lost" && ev.Reason == "hook_skipped" }); len(skipped) > 0 {
		tr.t.Skipf("no %s event within 10s, and tuxscope reported skipped hook runs (%v), which may have cost it; got:\n%s", what, skipped, tr.dump())
	}
	tr.t.Fatalf("no %s event within 10s; got:\n%s\nstderr:\n%s", what, tr.dump(), tr.stderrText())
	return jsonEvent{}
}

// all returns the events so far that match.
func (tr *tracer) all(match func(jsonEvent) bool) []jsonEvent {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []jsonEvent
	for _, ev := range tr.events {
		if match(ev) {
			out = append(out, ev)
		}
	}
	return out
}

// rawLines returns the JSON lines printed so far.
func (tr *tracer) rawLines() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.lines...)
}

func (tr *tracer) dump() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var b strings.Builder
	for _, ev := range tr.events {
		fmt.Fprintf(&b, "  %s\n", ev)
	}
	return b.String()
}

func byPID(typ string, pid int) func(jsonEvent) bool {
	return func(e jsonEvent) bool { return e.EventType == typ && e.PID == pid }
}

// proc is a helper process with its stdout read line by line.
type proc struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

// startProc runs name args..., with stdin kept open until the test ends.
func startProc(t *testing.T, env []string, name string, args ...string) *proc {
	t.Helper()
	return startProcAs(t, nil, env, name, args...)
}

// startProcAs is startProc as another user (cred nil: as this one).
func startProcAs(t *testing.T, cred *syscall.Credential, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, lines: make(chan string, 64)}
	p.cmd = exec.Command(name, args...)
	p.cmd.Env = append(os.Environ(), env...)
	if cred != nil {
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	p.cmd.Stderr = os.Stderr
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		p.stdin.Close()
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(500 * time.Millisecond): // e.g. a server still in accept()
			p.cmd.Process.Kill()
			<-done
		}
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// expect reads the next line, which must start with prefix, and returns
// its remaining words.
func (p *proc) expect(prefix string) []string {
	p.t.Helper()
	return p.expectWithin(prefix, 15*time.Second)
}

// expectWithin is expect with a time limit of d.
func (p *proc) expectWithin(prefix string, d time.Duration) []string {
	p.t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			p.t.Fatalf("%s exited before printing %s", p.cmd.Path, prefix)
		}
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != prefix {
			p.t.Fatalf("%s printed %q, want %s ...", p.cmd.Path, line, prefix)
		}
		return f[1:]
	case <-time.After(d):
		p.t.Fatalf("%s printed no %s line within %s", p.cmd.Path, prefix, d)
	}
	return nil
}

// waitExit waits until the process has closed its stdout (it exited),
// discarding what it printed.
func (p *proc) waitExit() {
	p.t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case _, ok := <-p.lines:
			if !ok {
				return
			}
		case <-timeout:
			p.t.Fatalf("%s did not exit within 15s", p.cmd.Path)
		}
	}
}

// send writes a line to the process's stdin.
func (p *proc) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatal(err)
	}
}

func helper(role string) []string { return []string{helperEnv + "=" + role} }

// server starts a tsserver and returns it with its port.
func server(t *testing.T, args ...string) (*proc, int) {
	t.Helper()
	p := startProc(t, helper("server"), serverBin, args...)
	port := p.expect("READY")
	return p, atoi(t, port[0])
}

// client starts a tsclient.
func client(t *testing.T, args ...string) *proc {
	t.Helper()
	return startProc(t, helper("client"), clientBin, args...)
}

// exchanges runs n clients, a process each, that each send 100 bytes to
// srv (started with -recv 100 -send 200) on port and read 200 back, one
// after the other, and returns their pids.
func exchanges(t *testing.T, srv *proc, port, n int) []int {
	t.Helper()
	var pids []int
	for i := 0; i < n; i++ {
		c := client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-send", "100", "-recv", "200")
		c.expect("LOCAL")
		c.expect("DONE")
		srv.expect("ACCEPTED")
		srv.expect("SERVED")
		pids = append(pids, c.pid())
	}
	return pids
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// syncBuffer is a strings.Builder safe for one writer and many readers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runTable runs `tuxscope net` (table output) with args, calls fn once it
// is attached, waits until done(stdout) or 10 s, stops it with SIGINT and
// returns its stdout.
func runTable(t *testing.T, fn func(), done func(string) bool, args ...string) string {
	t.Helper()
	var stdout, stderr syncBuffer
	cmd := netCommand(args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "tuxscope to attach", func() bool {
		return strings.Contains(stderr.String(), "tuxscope: attached")
	})
	fn()
	deadline := time.Now().Add(10 * time.Second)
	for !done(stdout.String()) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Errorf("tuxscope net %v: %v; stderr:\n%s", args, err, stderr.String())
	}
	return stdout.String()
}

// closingListener listens on a free 127.0.0.1 port until the test ends,
// accepting and closing every connection; it returns the port.
func closingListener(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// waitUntil polls cond for up to 20 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

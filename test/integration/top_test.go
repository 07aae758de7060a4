package integration

import (
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tmuxScreen drives a program in a real terminal (tmux) and reads its
// screen.
type tmuxScreen struct {
	t       *testing.T
	session string
}

func startTmux(t *testing.T, command string) *tmuxScreen {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("needs tmux")
	}
	s := &tmuxScreen{t: t, session: fmt.Sprintf("tuxscope-test-%d", time.Now().UnixNano())}
	out, err := exec.Command("tmux", "new-session", "-d", "-s", s.session, "-x", "160", "-y", "30", command).CombinedOutput()
	if err != nil {
		t.Fatalf("tmux: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("tmux", "kill-session", "-t", s.session).Run() })
	return s
}

func (s *tmuxScreen) screen() string {
	out, _ := exec.Command("tmux", "capture-pane", "-p", "-t", s.session).Output()
	return string(out)
}

func (s *tmuxScreen) keys(keys ...string) {
	for _, k := range keys {
		if out, err := exec.Command("tmux", "send-keys", "-t", s.session, k).CombinedOutput(); err != nil {
			s.t.Fatalf("tmux send-keys %q: %v: %s", k, err, out)
		}
	}
}

// waitScreen waits until cond holds for the screen, failing with the
// screen after 15 s.
func (s *tmuxScreen) waitScreen(what string, cond func(string) bool) string {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		scr := s.screen()
		if cond(scr) {
			return scr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("screen never showed %s:\n%s", what, scr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rowFor finds the screen row of a pid: its fields.
func rowFor(screen string, pid int) []string {
	for _, line := range strings.Split(screen, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == fmt.Sprint(pid) {
			return f
		}
	}
	return nil
}

// tuxscope top in a real terminal: rows with the test's exact numbers, the
// sort key, the filter and quitting.
func TestTopInTerminal(t *testing.T) {
	requireRoot(t)
	srv, port := server(t, "-n", "2", "-recv", "100", "-send", "200", "-wait-eof")
	backend := ""
	if testBackend != "" {
		backend = "--backend " + testBackend
	}
	scr := startTmux(t, fmt.Sprintf("%s top --interval 300ms --port %d %s; echo EXIT=$?; sleep 60", tuxscopeBin, port, backend))
	scr.waitScreen("the header", func(s string) bool { return strings.Contains(s, "tuxscope top - ") })

	pids := exchanges(t, srv, port, 2)
	screen := scr.waitScreen("both clients and the server", func(s string) bool {
		r := rowFor(s, srv.pid())
		return rowFor(s, pids[0]) != nil && rowFor(s, pids[1]) != nil && len(r) > 9 && r[9] == "2"
	})
	// Rows without the live columns (SEND/s RECV/s RETR, after PEER,
	// peer words long): what these short connections did.
	counts := func(row []string, peer int) string {
		if len(row) < peer+3+4 {
			return strings.Join(row, " ")
		}
		return strings.Join(append(append([]string{}, row[:peer]...), row[peer+3:peer+3+4]...), " ")
	}
	for _, pid := range pids {
		// PID COMM DIR PEER [SEND/s RECV/s RETR] CONNS FAIL SENT RECEIVED ...
		want := []string{fmt.Sprint(pid), "tsclient", "out", fmt.Sprintf("127.0.0.1:%d", port), "1", "0", "100", "200"}
		if got := rowFor(screen, pid); counts(got, 4) != strings.Join(want, " ") {
			t.Errorf("row %v, want %v\n%s", got, want, screen)
		}
	}
	// The server's row: PID COMM in PEER -> :PORT [live] CONNS FAIL SENT RECEIVED.
	want := []string{fmt.Sprint(srv.pid()), "tsserver", "in", "127.0.0.1", "->", fmt.Sprintf(":%d", port), "2", "0", "400", "200"}
	if got := rowFor(screen, srv.pid()); counts(got, 6) != strings.Join(want, " ") {
		t.Errorf("server row %v, want %v\n%s", got, want, screen)
	}

	scr.keys("s")
	scr.waitScreen("sorted by bytes", func(s string) bool { return strings.Contains(s, "sorted by bytes") })
	scr.keys("/")
	scr.waitScreen("the filter prompt", func(s string) bool { return strings.Contains(s, "filter: _") })
	scr.keys("tsserver", "Enter")
	screen = scr.waitScreen("only the server", func(s string) bool {
		return strings.Contains(s, `filter "tsserver"`) && rowFor(s, pids[0]) == nil
	})
	if rowFor(screen, srv.pid()) == nil {
		t.Errorf("filtered screen lost the server's row:\n%s", screen)
	}
	scr.keys("q")
	scr.waitScreen("a clean exit", func(s string) bool { return strings.Contains(s, "EXIT=0") })
}

// Without a terminal, top prints plain summaries every interval.
func TestTopWithoutTerminal(t *testing.T) {
	requireRoot(t)
	args := []string{"top", "--interval", "300ms"}
	if testBackend != "" {
		args = append(args, "--backend", testBackend)
	}
	cmd := exec.Command(tuxscopeBin, args...)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "three summaries", func() bool { return strings.Count(stdout.String(), "tuxscope summary ") >= 3 })
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Errorf("tuxscope top: %v: %s", err, stderr.String())
	}
	if strings.Contains(stdout.String(), "\x1b[") {
		t.Errorf("escape sequences in plain output:\n%q", stdout.String())
	}
	if !strings.Contains(stdout.String(), "PID      COMM             DIR  PEER") {
		t.Errorf("no table header in plain output:\n%s", stdout.String())
	}
}

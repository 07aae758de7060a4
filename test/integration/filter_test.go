package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Each filter is given to a fresh tracer; traffic that matches and traffic
// that does not are both made, the matching part last, so once its event
// is seen any non-matching event would have been printed before it.
func TestFilters(t *testing.T) {
	requireRoot(t)

	t.Run("pid", func(t *testing.T) {
		srv, port := server(t, "-n", "2")
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		other := client(t, "-wait", "-addr", addr)
		wanted := client(t, "-wait", "-addr", addr)
		tr := startTracer(t, "--pid", fmt.Sprint(wanted.pid()))
		other.send("go")
		other.expect("LOCAL")
		wanted.send("go")
		wanted.expect("LOCAL")
		tr.waitFor("connect", byPID("connect", wanted.pid()))
		srv.expect("ACCEPTED")
		srv.expect("ACCEPTED")
		time.Sleep(200 * time.Millisecond)
		if bad := tr.all(func(e jsonEvent) bool { return e.PID != wanted.pid() }); len(bad) > 0 {
			t.Errorf("--pid %d let through: %v", wanted.pid(), bad)
		}
	})

	t.Run("port", func(t *testing.T) {
		_, skipped := server(t)
		srv, port := server(t)
		tr := startTracer(t, "--port", fmt.Sprintf("%d,1", port))
		client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", skipped)).expect("LOCAL")
		c := client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port))
		c.expect("LOCAL")
		tr.waitFor("connect", byPID("connect", c.pid()))
		tr.waitFor("accept", byPID("accept", srv.pid()))
		time.Sleep(200 * time.Millisecond)
		if bad := tr.all(func(e jsonEvent) bool { return e.Sport != port && e.Dport != port }); len(bad) > 0 {
			t.Errorf("--port %d let through: %v", port, bad)
		}
	})

	t.Run("type-and-family", func(t *testing.T) {
		srv4, port4 := server(t)
		srv6, port6 := server(t, "-family", "6", "-addr", "[::1]:0")
		tr := startTracer(t, "--type", "accept", "-6")
		if attached := tr.stderrText(); strings.Contains(attached, "connect:") || !strings.Contains(attached, "accept:") {
			t.Errorf("--type accept should attach only the accept hooks: %s", attached)
		}
		client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port4)).expect("LOCAL")
		srv4.expect("ACCEPTED")
		client(t, "-family", "6", "-addr", fmt.Sprintf("[::1]:%d", port6)).expect("LOCAL")
		srv6.expect("ACCEPTED")
		tr.waitFor("accept", byPID("accept", srv6.pid()))
		time.Sleep(200 * time.Millisecond)
		if bad := tr.all(func(e jsonEvent) bool { return e.EventType != "accept" || e.Family != 6 }); len(bad) > 0 {
			t.Errorf("--type accept -6 let through: %v", bad)
		}
	})

	t.Run("comm", func(t *testing.T) {
		srv, port := server(t)
		tr := startTracer(t, "--comm", "tsserver")
		client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port)).expect("LOCAL")
		srv.expect("ACCEPTED")
		tr.waitFor("accept", byPID("accept", srv.pid()))
		time.Sleep(200 * time.Millisecond)
		if bad := tr.all(func(e jsonEvent) bool { return e.Comm != "tsserver" }); len(bad) > 0 {
			t.Errorf("--comm tsserver let through: %v", bad)
		}
	})
}

package integration

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"testing"
	"time"
)

// Real programs: curl against Python's http.server, and a Go server
// (net.Listener: non-blocking accept4 + epoll) with Go's dialer.
func TestRealPrograms(t *testing.T) {
	requireRoot(t)
	for _, bin := range []string{"curl", "/usr/bin/python3"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s", bin)
		}
	}
	tr := startTracer(t)

	t.Run("curl-python", func(t *testing.T) {
		port := freePort(t)
		py := exec.Command("/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", fmt.Sprint(port))
		py.Dir = t.TempDir()
		if err := py.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { py.Process.Kill(); py.Wait() })
		waitUntil(t, "python's http.server to listen", func() bool {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
			if err == nil {
				c.Close()
			}
			return err == nil
		})

		curl := exec.Command("curl", "-sS", "-o", "/dev/null", fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err := curl.Start(); err != nil {
			t.Fatal(err)
		}
		if err := curl.Wait(); err != nil {
			t.Fatalf("curl: %v", err)
		}
		conn := tr.waitFor("curl connect", byPID("connect", curl.Process.Pid))
		if conn.Comm != "curl" || conn.Saddr != "127.0.0.1" || conn.Sport == 0 ||
			conn.Daddr != "127.0.0.1" || conn.Dport != port || conn.Family != 4 {
			t.Errorf("curl's connect: %s", conn)
		}
		acc := tr.waitFor("python accept", func(e jsonEvent) bool {
			return e.EventType == "accept" && e.PID == py.Process.Pid && e.Sport == conn.Sport
		})
		checkEvent(t, acc, jsonEvent{
			EventType: "accept", PID: py.Process.Pid, Comm: "python3", Family: 4,
			Saddr: "127.0.0.1", Sport: conn.Sport, Daddr: "127.0.0.1", Dport: port,
		})
	})

	t.Run("go-server", func(t *testing.T) {
		srv, port := server(t, "-mode", "go", "-addr", "127.0.0.1:0")
		c := client(t, "-mode", "go", "-addr", fmt.Sprintf("127.0.0.1:%d", port))
		local := netip.MustParseAddrPort(c.expect("LOCAL")[0])
		srv.expect("ACCEPTED")
		checkConnect(t, tr.waitFor("connect", byPID("connect", c.pid())), c, "tsclient", 4,
			local, netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", port)))
		checkEvent(t, tr.waitFor("accept", byPID("accept", srv.pid())), jsonEvent{
			EventType: "accept", PID: srv.pid(), Comm: "tsserver", Family: 4,
			Saddr: "127.0.0.1", Sport: int(local.Port()), Daddr: "127.0.0.1", Dport: port,
		})
	})
}

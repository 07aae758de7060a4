package integration

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// The table marks a hostname another process resolved with ~: dig looks
// short.test up, another process connects to its address and gets the
// name marked; a process that resolved web.test itself gets it unmarked.
func TestTableMarksBorrowedHostnames(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("needs dig (dnsutils)")
	}
	dnsServer(t)
	_, port10 := server(t, "-addr", "127.0.0.10:0", "-n", "1")
	_, port11 := server(t, "-addr", "127.0.0.11:0", "-n", "1")
	var own, borrowed *proc
	var dig *exec.Cmd
	rowOf := func(out string, pid int) string {
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) >= 5 && f[0] == fmt.Sprint(pid) && f[2] == "connect" {
				return line
			}
		}
		return ""
	}
	out := runTable(t, func() {
		// A resolves web.test itself and connects.
		own = client(t, "-resolve", "web.test", "-dns-server", "127.0.0.2:53", "-port", fmt.Sprint(port10))
		own.expect("RESOLVED")
		own.expect("LOCAL")
		// dig resolves short.test (TTL 2 s); B connects to its address
		// without a lookup of its own.
		dig = exec.Command("dig", "+short", "+time=1", "+tries=1", "@127.0.0.2", "short.test")
		if ans, err := dig.Output(); err != nil || strings.TrimSpace(string(ans)) != "127.0.0.11" {
			t.Errorf("dig short.test: %q %v", ans, err)
		}
		borrowed = client(t, "-addr", fmt.Sprintf("127.0.0.11:%d", port11))
		borrowed.expect("LOCAL")
	}, func(out string) bool {
		return rowOf(out, own.pid()) != "" && rowOf(out, borrowed.pid()) != ""
	}, "--port", fmt.Sprintf("%d,%d", port10, port11))

	ownRow, borrowedRow := rowOf(out, own.pid()), rowOf(out, borrowed.pid())
	if f := strings.Fields(ownRow); len(f) < 6 || f[4] != "web.test" || f[5] != fmt.Sprintf("(127.0.0.10):%d", port10) {
		t.Errorf("the resolving process's own connect should show web.test unmarked: %q\noutput:\n%s", ownRow, out)
	}
	if f := strings.Fields(borrowedRow); len(f) < 6 || f[4] != "~short.test" || f[5] != fmt.Sprintf("(127.0.0.11):%d", port11) {
		t.Errorf("a connect to an address dig (pid %d) resolved should show ~short.test: %q\noutput:\n%s", dig.Process.Pid, borrowedRow, out)
	}
}

package integration

import (
	"fmt"
	"strings"
	"testing"
)

// linkLocalHosts makes two network namespaces joined by a veth pair with
// only the link-local addresses fe80::a (first) and fe80::b (second),
// usable at once (nodad), and returns the namespaces and interface names.
func linkLocalHosts(t *testing.T) (nsA, nsB, devA, devB string) {
	t.Helper()
	nsA, nsB, devA, devB, ip := vethPair(t, "ll")
	for _, h := range []struct{ ns, dev, addr string }{{nsA, devA, "fe80::a/64"}, {nsB, devB, "fe80::b/64"}} {
		// No address of the kernel's own making: fe80::a and fe80::b are
		// the only link-local addresses, so the source is known.
		ip("-n", h.ns, "link", "set", h.dev, "addrgenmode", "none")
		ip("-n", h.ns, "addr", "add", h.addr, "dev", h.dev, "nodad")
		ip("-n", h.ns, "link", "set", h.dev, "up")
	}
	return nsA, nsB, devA, devB
}

// A connect over a link-local address names its zone: the interface, in
// the socket's own network namespace (not tuxscope's), on both ends:
// [fe80::a%tsllaN]:port -> [fe80::b%tsllaN]:port for the client,
// [fe80::a%tsllbN]:port -> [fe80::b%tsllbN]:port for the server, in the
// table and in JSON.
func TestLinkLocalZone(t *testing.T) {
	requireRoot(t)
	nsA, nsB, devA, devB := linkLocalHosts(t)
	tr := startTracer(t, "-6")
	var srv, c *proc
	var port, sport int
	out := runTable(t, func() {
		srv = startProc(t, helper("server"), "ip", "netns", "exec", nsB, serverBin, "-family", "6", "-addr", "[::]:0")
		port = atoi(t, srv.expect("READY")[0])
		// Go's dialer passes the zone as the scope id.
		c = startProc(t, helper("client"), "ip", "netns", "exec", nsA, clientBin, "-mode", "go",
			"-addr", fmt.Sprintf("[fe80::b%%%s]:%d", devA, port))
		local := c.expect("LOCAL")[0]
		if want := fmt.Sprintf("[fe80::a%%%s]:", devA); !strings.HasPrefix(local, want) {
			t.Fatalf("client's local address %s, want %s...", local, want)
		}
		sport = atoi(t, local[strings.LastIndex(local, ":")+1:])
		srv.expect("ACCEPTED")
	}, func(out string) bool {
		return strings.Contains(out, " accept ") && strings.Contains(out, " connect ")
	}, "-6", "--type", "connect,accept")

	wantClient := []string{fmt.Sprint(c.pid()), "tsclient", "connect",
		fmt.Sprintf("[fe80::a%%%s]:%d", devA, sport), fmt.Sprintf("[fe80::b%%%s]:%d", devA, port)}
	wantServer := []string{fmt.Sprint(srv.pid()), "tsserver", "accept",
		fmt.Sprintf("[fe80::a%%%s]:%d", devB, sport), fmt.Sprintf("[fe80::b%%%s]:%d", devB, port)}
	for _, want := range [][]string{wantClient, wantServer} {
		found := false
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == want[0] {
				found = strings.Join(f, " ") == strings.Join(want, " ")
				if !found {
					t.Errorf("table row %q, want %q", line, strings.Join(want, " "))
				}
			}
		}
		if !found {
			t.Errorf("no table row %q in:\n%s", strings.Join(want, " "), out)
		}
	}

	checkEvent(t, tr.waitFor("connect", byPID("connect", c.pid())), jsonEvent{
		EventType: "connect", PID: c.pid(), Comm: "tsclient", Family: 6,
		Saddr: "fe80::a%" + devA, Sport: sport, Daddr: "fe80::b%" + devA, Dport: port,
	})
	checkEvent(t, tr.waitFor("accept", byPID("accept", srv.pid())), jsonEvent{
		EventType: "accept", PID: srv.pid(), Comm: "tsserver", Family: 6,
		Saddr: "fe80::a%" + devB, Sport: sport, Daddr: "fe80::b%" + devB, Dport: port,
	})
}

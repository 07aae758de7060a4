package integration

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// vethPair makes two network namespaces joined by a veth pair, named
// after prefix and this process (removed when the test ends), and returns
// them, the two ends' names, and a runner of ip commands that fails the
// test on error.
func vethPair(t *testing.T, prefix string) (nsA, nsB, devA, devB string, ip func(args ...string)) {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2)")
	}
	id := os.Getpid() % 100000
	nsA, nsB = fmt.Sprintf("ts-%sa-%d", prefix, id), fmt.Sprintf("ts-%sb-%d", prefix, id)
	devA, devB = fmt.Sprintf("ts%sa%d", prefix, id), fmt.Sprintf("ts%sb%d", prefix, id)
	ip = func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", nsA)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nsA).Run() })
	ip("netns", "add", nsB)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nsB).Run() })
	ip("link", "add", devA, "netns", nsA, "type", "veth", "peer", "name", devB, "netns", nsB)
	return nsA, nsB, devA, devB, ip
}

// pathHosts makes a client namespace with clientIP and a server one with
// serverIP (a /30 of both), joined by a veth pair, both up; devServer is
// the server's end of the pair.
func pathHosts(t *testing.T, prefix, clientIP, serverIP string) (nsClient, nsServer, devServer string) {
	t.Helper()
	nsA, nsB, devA, devB, ip := vethPair(t, prefix)
	ip("-n", nsA, "addr", "add", clientIP+"/30", "dev", devA)
	ip("-n", nsB, "addr", "add", serverIP+"/30", "dev", devB)
	for _, h := range []struct{ ns, dev string }{{nsA, devA}, {nsB, devB}} {
		ip("-n", h.ns, "link", "set", h.dev, "up")
		ip("-n", h.ns, "link", "set", "lo", "up")
	}
	return nsA, nsB, devB
}

// testHosts makes two network namespaces joined by a veth pair, with
// 198.18.0.1 / 2001:db8:7578::1 in the first and 198.18.0.2 / 2001:db8:7578::2 in the
// second (benchmarking and documentation ranges, apart from the host's own networks: test hosts only). They
// are removed when the test ends.
func testHosts(t *testing.T) (nsA, nsB string) {
	t.Helper()
	nsA, nsB, vethA, vethB, ip := vethPair(t, "")
	for _, h := range []struct{ ns, dev, v4, v6 string }{
		{nsA, vethA, "198.18.0.1/24", "2001:db8:7578::1/64"},
		{nsB, vethB, "198.18.0.2/24", "2001:db8:7578::2/64"},
	} {
		ip("-n", h.ns, "addr", "add", h.v4, "dev", h.dev)
		ip("-n", h.ns, "addr", "add", h.v6, "dev", h.dev, "nodad")
		ip("-n", h.ns, "link", "set", h.dev, "up")
		ip("-n", h.ns, "link", "set", "lo", "up")
	}
	return nsA, nsB
}

// A client in one namespace connects to a server in another, over a
// veth pair, IPv4 and IPv6: tuxscope in the host namespace sees both ends.
func TestAcrossNetworkNamespaces(t *testing.T) {
	requireRoot(t)
	nsA, nsB := testHosts(t)
	tr := startTracer(t)
	for _, tc := range []struct {
		name           string
		family         int
		listen, client string
		serverAddr     string
	}{
		{"ipv4", 4, "198.18.0.2:0", "198.18.0.1", "198.18.0.2"},
		{"ipv6", 6, "[2001:db8:7578::2]:0", "2001:db8:7578::1", "2001:db8:7578::2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fam := fmt.Sprint(tc.family)
			srv := startProc(t, helper("server"), "ip", "netns", "exec", nsB, serverBin, "-family", fam, "-addr", tc.listen)
			port := atoi(t, srv.expect("READY")[0])
			server := netip.MustParseAddr(tc.serverAddr)
			c := startProc(t, helper("client"), "ip", "netns", "exec", nsA, clientBin,
				"-family", fam, "-addr", netip.AddrPortFrom(server, uint16(port)).String())
			local := netip.MustParseAddrPort(c.expect("LOCAL")[0])
			if local.Addr().String() != tc.client {
				t.Fatalf("client's local address %v, want %s", local, tc.client)
			}
			srv.expect("ACCEPTED")

			// `ip netns exec` execs the helper, so the pids are the helpers'.
			checkConnect(t, tr.waitFor("connect", byPID("connect", c.pid())), c, "tsclient",
				tc.family, local, netip.AddrPortFrom(server, uint16(port)))
			checkEvent(t, tr.waitFor("accept", byPID("accept", srv.pid())), jsonEvent{
				EventType: "accept", PID: srv.pid(), Comm: "tsserver", Family: tc.family,
				Saddr: tc.client, Sport: int(local.Port()), Daddr: tc.serverAddr, Dport: port,
			})
		})
	}
}

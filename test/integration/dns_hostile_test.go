package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dnsPeer is a Python program that plays both ends of DNS inside its own
// network namespace (run under `unshare -Urn`, as any user can): a "server"
// socket on 127.0.0.1:53 and a client socket.
//
//	junk N               N datagrams from port 53 that are not DNS
//	spoof N NAME IP      N answers NAME -> IP sent from port 53 to the
//	                     client, which never asked (unsolicited)
//	answered N NAME IP   N queries from the client, each answered
//	flood N              N answered lookups of long names with 64
//	                     addresses each, then N unsolicited ones
//	liars N              N DNS-over-TCP connections to port 53 whose
//	                     answer promises 65535 bytes and sends 2000,
//	                     then closes
//
// It prints DONE when it is through.
const dnsPeer = `
import socket, struct, subprocess, sys
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

def name_wire(name):
    return b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"

def question(qid, name, flags):
    return struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 0) + name_wire(name) + struct.pack(">HH", 1, 1)

def answer(qid, name, ips):
    m = bytearray(question(qid, name, 0x8180))
    m[6:8] = struct.pack(">H", len(ips))
    for ip in ips:
        m += b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 300, 4) + socket.inet_aton(ip)
    return bytes(m)

mode, n = sys.argv[1], int(sys.argv[2])
srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
srv.bind(("127.0.0.1", 53))
cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
cli.bind(("127.0.0.1", 0))
cli.settimeout(5)
if mode == "junk":
    for i in range(n):
        srv.sendto(b"\x01\x02\x03", cli.getsockname())
        cli.recv(4096)
elif mode == "spoof":
    for i in range(n):
        srv.sendto(answer(0x4000 + i, sys.argv[3], [sys.argv[4]]), cli.getsockname())
        cli.recv(4096)
elif mode == "answered":
    for i in range(n):
        cli.sendto(question(0x5000 + i, sys.argv[3], 0x0100), ("127.0.0.1", 53))
        q, peer = srv.recvfrom(4096)
        srv.sendto(answer(0x5000 + i, sys.argv[3], [sys.argv[4]]), peer)
        cli.recv(4096)
elif mode == "flood":
    label = "x" * 60
    for i in range(n):
        name = "%s.%s.%s.%07d.example" % (label, label, label, i)
        ips = ["10.%d.%d.%d" % ((i >> 10) & 255, (i >> 2) & 255, ((i & 3) << 6) + k) for k in range(64)]
        cli.sendto(question(i & 0xffff, name, 0x0100), ("127.0.0.1", 53))
        q, peer = srv.recvfrom(4096)
        srv.sendto(answer(i & 0xffff, name, ips), peer)
        cli.recv(4096)
    for i in range(n):
        srv.sendto(answer(i & 0xffff, "%s.%s.%s.%07d.spoof" % (label, label, label, i), ["10.0.0.1"]), cli.getsockname())
        cli.recv(4096)
elif mode == "liars":
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", 53))
    lst.listen(128)
    for i in range(n):
        c = socket.create_connection(("127.0.0.1", 53))
        s, _ = lst.accept()
        s.sendall(b"\xff\xff" + b"\0" * 2000)
        c.recv(4096)
        c.close()
        s.close()
print("DONE", flush=True)
`

// runDNSPeer runs dnsPeer in a new user and network namespace.
func runDNSPeer(t *testing.T, args ...string) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("needs python3")
	}
	out, err := exec.Command("unshare", append([]string{"-Urn", "python3", "-c", dnsPeer}, args...)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "DONE") {
		t.Fatalf("dns peer %v: %v: %s", args, err, out)
	}
}

// dnsDropped sums the dns_dropped records for reason.
func dnsDropped(tr *tracer, reason string) int {
	n := 0
	for _, e := range tr.all(func(e jsonEvent) bool { return e.EventType == "dns_dropped" && e.Reason == reason }) {
		n += int(e.Count)
	}
	return n
}

// An unprivileged user cannot make tuxscope name root's connections:
// answers sent from port 53 in the user's own network namespace to its
// own socket without a query are dropped and counted; answers to its own
// queries name connects in its namespace only.
func TestSpoofedDNS(t *testing.T) {
	requireRoot(t)
	srv, port := server(t, "-addr", "127.0.0.219:0", "-n", "2")
	_ = srv
	tr := startTracer(t, "--dns")

	const spoofs = 5
	runDNSPeer(t, "spoof", fmt.Sprint(spoofs), "login.bank.example", "127.0.0.219")
	runDNSPeer(t, "answered", "3", "login.bank.example", "127.0.0.219")
	// The answered lookups were seen, in the peer's namespace.
	tr.waitFor("the peer's answered lookup", func(e jsonEvent) bool { return e.EventType == "dns" && e.Query == "login.bank.example" })

	c := client(t, "-addr", fmt.Sprintf("127.0.0.219:%d", port))
	c.expect("LOCAL")
	ev := tr.waitFor("root's connect", byPID("connect", c.pid()))
	if ev.Hostname != "" {
		t.Errorf("root's connect to 127.0.0.219 named %q (%s) from another namespace's DNS", ev.Hostname, ev.HostnameSource)
	}
	waitUntil(t, "the unsolicited answers reported", func() bool { return dnsDropped(tr, "unsolicited") >= spoofs })
	if n := dnsDropped(tr, "unsolicited"); n != spoofs {
		t.Errorf("unsolicited answers reported: %d, want %d\n%s", n, spoofs, tr.dump())
	}
	if d := tr.all(func(e jsonEvent) bool { return e.EventType == "dns" && e.Query == "login.bank.example" }); len(d) != 3 {
		t.Errorf("%d dns events for the peer's lookups, want 3 (its answered ones, not the spoofed)", len(d))
	}
}

// nsDNSServer runs dnsmasq on 127.0.0.1:53 inside network namespace ns,
// answering scoped.test with addr.
func nsDNSServer(t *testing.T, ns, addr string) {
	t.Helper()
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		t.Skip("needs dnsmasq (dnsmasq-base)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "dnsmasq.conf")
	os.WriteFile(conf, []byte("no-resolv\nno-hosts\nbind-interfaces\nlisten-address=127.0.0.1\nport=53\nhost-record=scoped.test,"+addr+"\nlocal-ttl=60\n"), 0o644)
	cmd := exec.Command("ip", "netns", "exec", ns, bin, "--keep-in-foreground", "-C", conf, "--pid-file="+filepath.Join(dir, "pid"), "--user=root")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitUntil(t, "dnsmasq in "+ns+" to answer", func() bool {
		out, _ := exec.Command("ip", "netns", "exec", ns, "dig", "+short", "+time=1", "+tries=1", "@127.0.0.1", "scoped.test").Output()
		return strings.TrimSpace(string(out)) == addr
	})
}

// A lookup in namespace A names connects in A (the process's own, and
// another process's as the host's), not a connect to the same address
// from namespace B.
func TestDNSNamespaceScoping(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("needs dig (dnsutils)")
	}
	nsA, nsB := testHosts(t)
	nsDNSServer(t, nsA, "198.18.0.2")
	srv := startProc(t, helper("server"), "ip", "netns", "exec", nsB, serverBin, "-addr", "198.18.0.2:0", "-n", "3")
	port := atoi(t, srv.expect("READY")[0])
	tr := startTracer(t)

	resolver := startProc(t, helper("client"), "ip", "netns", "exec", nsA, clientBin,
		"-resolve", "scoped.test", "-dns-server", "127.0.0.1:53", "-port", fmt.Sprint(port))
	resolver.expect("RESOLVED")
	resolver.expect("LOCAL")
	if ev := tr.waitFor("the resolver's connect", byPID("connect", resolver.pid())); ev.Hostname != "scoped.test" || ev.HostnameSource != "process" {
		t.Errorf("the resolver's connect: hostname %q (%s), want scoped.test (process)", ev.Hostname, ev.HostnameSource)
	}
	target := fmt.Sprintf("198.18.0.2:%d", port)
	sameNS := startProc(t, helper("client"), "ip", "netns", "exec", nsA, clientBin, "-addr", target)
	sameNS.expect("LOCAL")
	if ev := tr.waitFor("a connect in A", byPID("connect", sameNS.pid())); ev.Hostname != "scoped.test" {
		t.Errorf("another process's connect in A: hostname %q (%s), want scoped.test", ev.Hostname, ev.HostnameSource)
	}
	otherNS := startProc(t, helper("client"), "ip", "netns", "exec", nsB, clientBin, "-addr", target)
	otherNS.expect("LOCAL")
	if ev := tr.waitFor("the connect in B", byPID("connect", otherNS.pid())); ev.Hostname != "" {
		t.Errorf("a connect in B named %q (%s) from A's lookup", ev.Hostname, ev.HostnameSource)
	}
}

// vmRSS is a process's resident set in kB (/proc/PID/status).
func vmRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// dnsFloodRSSBoundKB is what tuxscope's resident memory may grow by under
// a DNS flood: the tracker's 19 MiB bound (README), twice for the Go
// collector's headroom, and the decoding's garbage.
const dnsFloodRSSBoundKB = 64 << 10

// Floods of DNS (answered long-name lookups with 64 addresses each,
// unsolicited long-name answers, DNS-over-TCP streams that lie about
// their length and close) keep tuxscope's memory within a bound; what it
// dropped is reported.
func TestDNSFloodMemory(t *testing.T) {
	requireRoot(t)
	tr := startTracer(t, "--buffer-size", "64M")
	time.Sleep(500 * time.Millisecond)
	before := vmRSS(t, tr.cmd.Process.Pid)
	runDNSPeer(t, "flood", "20000")
	runDNSPeer(t, "liars", "1000")
	waitUntil(t, "the evictions and unsolicited answers reported", func() bool {
		return dnsDropped(tr, "evicted") > 0 && dnsDropped(tr, "unsolicited") > 0
	})
	time.Sleep(2 * time.Second) // the ring drained
	after := vmRSS(t, tr.cmd.Process.Pid)
	t.Logf("VmRSS %d kB before, %d kB after (+%d kB); reported: %d unsolicited, %d evicted, %d malformed; lost %v",
		before, after, after-before, dnsDropped(tr, "unsolicited"), dnsDropped(tr, "evicted"), dnsDropped(tr, "malformed"),
		tr.all(func(e jsonEvent) bool { return e.EventType == "lost" }))
	if after-before > dnsFloodRSSBoundKB {
		t.Errorf("VmRSS grew by %d kB, bound %d kB", after-before, dnsFloodRSSBoundKB)
	}
}

// --port 443 shows nothing of port 53's traffic, so says nothing of the
// DNS messages it skipped (malformed) or dropped (unsolicited); without
// it, both are reported (issue 11, item 14).
func TestDNSNotesFollowPortFilter(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"--port", "443"}, false},
		{nil, true},
	} {
		t.Run(strings.Join(append([]string{"args"}, tc.args...), " "), func(t *testing.T) {
			cmd, stdout, stderr := startNet(t, tc.args...)
			go func() {
				b := make([]byte, 4096)
				for {
					if _, err := stdout.Read(b); err != nil {
						return
					}
				}
			}()
			runDNSPeer(t, "spoof", "2", "x.example", "127.0.0.1")
			runDNSPeer(t, "junk", "1")
			time.Sleep(1500 * time.Millisecond) // past a tick
			cmd.Process.Signal(os.Interrupt)
			cmd.Wait()
			spoofed := strings.Contains(stderr.String(), "dropped 2 DNS answers")
			junk := strings.Contains(stderr.String(), "skipped 1 malformed")
			if got := spoofed || junk; got != tc.want || (tc.want && !(spoofed && junk)) {
				t.Errorf("note said: %v, want %v; stderr:\n%s", got, tc.want, stderr.String())
			}
		})
	}
}

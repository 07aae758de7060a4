package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dnsServer runs dnsmasq on 127.0.0.2:53 and [::1]:53 for the test, with
// test names: web.test (127.0.0.10, ::1), alias.test -> web.test,
// chain.test -> alias.test, short.test (127.0.0.11); every TTL is 2 s.
// It returns a resolv.conf that points to it.
func dnsServer(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		t.Skip("needs dnsmasq (dnsmasq-base)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "dnsmasq.conf")
	os.WriteFile(conf, []byte(`no-resolv
no-hosts
bind-interfaces
listen-address=127.0.0.2
listen-address=::1
port=53
host-record=web.test,127.0.0.10,::1
cname=alias.test,web.test
cname=chain.test,alias.test
host-record=short.test,127.0.0.11
local-ttl=2
`), 0o644)
	cmd := exec.Command(bin, "--keep-in-foreground", "-C", conf, "--pid-file="+filepath.Join(dir, "pid"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitUntil(t, "dnsmasq to answer", func() bool {
		out, _ := exec.Command("dig", "+short", "+time=1", "+tries=1", "@127.0.0.2", "web.test").Output()
		return strings.TrimSpace(string(out)) == "127.0.0.10"
	})
	rc := filepath.Join(dir, "resolv.conf")
	os.WriteFile(rc, []byte("nameserver 127.0.0.2\n"), 0o644)
	return rc
}

// Connect events carry the name the connecting process resolved: through
// glibc (curl) over UDP with a CNAME chain, and Go's resolver over UDP to
// an IPv6 DNS server and over TCP. --dns shows the responses.
func TestHostnames(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("needs dig (dnsutils)")
	}
	rc := dnsServer(t)
	_, port := server(t, "-addr", "127.0.0.10:0", "-n", "10")
	tr := startTracer(t, "--dns")

	t.Run("glibc-cname-chain", func(t *testing.T) {
		if _, err := exec.LookPath("curl"); err != nil {
			t.Skip("needs curl")
		}
		// A private mount namespace with its own resolv.conf: glibc asks
		// the test server, the host's configuration is untouched.
		curl := exec.Command("unshare", "-m", "sh", "-c",
			fmt.Sprintf("mount --bind %s /etc/resolv.conf && exec curl -4 -s -m 1 -o /dev/null http://chain.test:%d/", rc, port))
		curl.Start()
		curl.Wait() // the server never answers: curl gives up after 1 s
		ev := tr.waitFor("curl's connect", byPID("connect", curl.Process.Pid))
		if ev.Hostname != "chain.test" || ev.HostnameSource != "process" || ev.Daddr != "127.0.0.10" || ev.Dport != port || ev.Comm != "curl" {
			t.Errorf("curl's connect: %s hostname=%q source=%q", ev, ev.Hostname, ev.HostnameSource)
		}
		d := tr.waitFor("curl's DNS answer", func(e jsonEvent) bool {
			return e.EventType == "dns" && e.PID == curl.Process.Pid && e.QType == "A"
		})
		if d.Query != "chain.test" || strings.Join(d.CNAMEs, ",") != "alias.test,web.test" || strings.Join(d.Answers, ",") != "127.0.0.10" ||
			d.RCode != "NOERROR" || d.Daddr != "127.0.0.2" || d.Dport != 53 || u64(d.LatencyNs) == 0 {
			t.Errorf("dns event: %+v", d)
		}
	})

	for _, tc := range []struct{ name, server, proto string }{
		{"go-udp-ipv6-server", "[::1]:53", "udp"},
		{"go-tcp", "127.0.0.2:53", "tcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := client(t, "-resolve", "alias.test", "-dns-server", tc.server, fmt.Sprintf("-dns-tcp=%v", tc.proto == "tcp"), "-port", fmt.Sprint(port))
			c.expect("RESOLVED")
			c.expect("LOCAL")
			toServer := func(typ string) func(jsonEvent) bool {
				return func(e jsonEvent) bool { return e.EventType == typ && e.PID == c.pid() && e.Dport == port }
			}
			ev := tr.waitFor("connect", toServer("connect"))
			if ev.Hostname != "alias.test" || ev.HostnameSource != "process" || ev.Daddr != "127.0.0.10" {
				t.Errorf("connect: %s hostname=%q source=%q", ev, ev.Hostname, ev.HostnameSource)
			}
			est := tr.waitFor("established", toServer("established"))
			if est.Hostname != "alias.test" {
				t.Errorf("established: hostname %q", est.Hostname)
			}
			d := tr.waitFor("DNS answer", byPID("dns", c.pid()))
			if d.Query != "alias.test" || strings.Join(d.Answers, ",") != "127.0.0.10" || strings.Join(d.CNAMEs, ",") != "web.test" {
				t.Errorf("dns event: %+v", d)
			}
		})
	}

	// Provenance: a process that did not resolve gets someone else's name,
	// marked as such, with the other names for the address.
	t.Run("provenance", func(t *testing.T) {
		r := client(t, "-resolve", "web.test", "-dns-server", "127.0.0.2:53", "-port", fmt.Sprint(port))
		r.expect("RESOLVED")
		r.expect("LOCAL")
		tr.waitFor("resolver's connect", byPID("connect", r.pid()))
		other := client(t, "-addr", fmt.Sprintf("127.0.0.10:%d", port))
		other.expect("LOCAL")
		ev := tr.waitFor("connect", byPID("connect", other.pid()))
		if ev.Hostname != "web.test" || ev.HostnameSource == "process" || ev.HostnameSource == "" {
			t.Errorf("connect without a lookup: %s hostname=%q source=%q", ev, ev.Hostname, ev.HostnameSource)
		}
		if !strings.Contains(strings.Join(ev.HostnameAlso, ","), "alias.test") {
			t.Errorf("hostname_also %v should list alias.test, also resolved to 127.0.0.10", ev.HostnameAlso)
		}
	})

	// TTLs are honoured: past a 2 s TTL (plus the 1 s grace) the name is gone.
	t.Run("ttl", func(t *testing.T) {
		_, port11 := server(t, "-addr", "127.0.0.11:0", "-n", "2")
		r := client(t, "-resolve", "short.test", "-dns-server", "127.0.0.2:53", "-port", fmt.Sprint(port11))
		r.expect("RESOLVED")
		r.expect("LOCAL")
		fresh := client(t, "-addr", fmt.Sprintf("127.0.0.11:%d", port11))
		fresh.expect("LOCAL")
		if ev := tr.waitFor("connect", byPID("connect", fresh.pid())); ev.Hostname != "short.test" {
			t.Errorf("within the TTL: hostname %q", ev.Hostname)
		}
		time.Sleep(3500 * time.Millisecond)
		stale := client(t, "-addr", fmt.Sprintf("127.0.0.11:%d", port11))
		stale.expect("LOCAL")
		if ev := tr.waitFor("connect", byPID("connect", stale.pid())); ev.Hostname != "" {
			t.Errorf("after the TTL: hostname %q (%s)", ev.Hostname, ev.HostnameSource)
		}
	})
}

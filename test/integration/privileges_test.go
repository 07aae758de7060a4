package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// firstConnectTracepoint is the first tracepoint the tracepoint backend's
// connect point attaches: sys_enter_connect, or, where the state
// program can read the system call its thread is in (bpf_task_pt_regs,
// Linux 5.15+, in the kernel's own BTF), sys_exit_connect alone.
func firstConnectTracepoint(t *testing.T) string {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatalf("kernel BTF: %v", err)
	}
	var e *btf.Enum
	if spec.TypeByName("bpf_func_id", &e) == nil {
		for _, v := range e.Values {
			if v.Name == "BPF_FUNC_task_pt_regs" {
				return "sys_exit_connect"
			}
		}
	}
	return "sys_enter_connect"
}

// capSetup is a process tuxscope runs as: root with its bounding set cut
// to caps, or uid 65534 with caps as ambient capabilities (what setpriv,
// a systemd unit's AmbientCapabilities= or capsh give a service).
type capSetup struct {
	root bool
	caps []string // setpriv's names: bpf, perfmon, net_admin, ...
}

func (s capSetup) String() string {
	who := "uid 65534"
	if s.root {
		who = "root"
	}
	return who + " with " + strings.Join(s.caps, ",")
}

// command is `setpriv ... tuxscope args...` for this setup.
func (s capSetup) command(args ...string) *exec.Cmd {
	list := "-all"
	for _, c := range s.caps {
		list += ",+" + c
	}
	var a []string
	if s.root {
		a = []string{"--inh-caps", "-all"}
	} else {
		a = []string{"--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps", list, "--ambient-caps", list}
	}
	a = append(append(a, "--bounding-set", list, tuxscopeBin), args...)
	return exec.Command("setpriv", a...)
}

// netArgs are `net` args for the suite's backend, as netCommand does.
func netArgs(args ...string) []string {
	if testBackend != "" {
		args = append([]string{"--backend", testBackend}, args...)
	}
	return append([]string{"net"}, args...)
}

func requireSetpriv(t *testing.T) {
	t.Helper()
	requireRoot(t)
	// util-linux's: busybox's (in the matrix guests) has no --reuid,
	// --ambient-caps or --bounding-set.
	help, _ := exec.Command("setpriv", "--help").CombinedOutput()
	for _, opt := range []string{"--reuid", "--ambient-caps", "--bounding-set", "--inh-caps"} {
		if !strings.Contains(string(help), opt) {
			t.Skipf("no setpriv with %s here (util-linux's is needed)", opt)
		}
	}
}

// seesOwnConnect checks that tr, watching port, reports this test's
// connect to it with its pid and both ports.
func seesOwnConnect(t *testing.T, tr *tracer, port int) {
	t.Helper()
	c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sport := c.LocalAddr().(*net.TCPAddr).Port
	got := tr.waitFor("connect", byPID("connect", os.Getpid()))
	if got.Sport != sport || got.Dport != port || got.Saddr != "127.0.0.1" || got.Daddr != "127.0.0.1" || got.Direction != "outbound" {
		t.Errorf("connect: %s, want 127.0.0.1:%d -> 127.0.0.1:%d", got, sport, port)
	}
}

// noNamesLine is what tuxscope says, once, when it runs without the DNS
// hooks for want of CAP_NET_ADMIN.
const noNamesLine = "tuxscope: no DNS names: the kernel refused to load the DNS hooks: cgroup sock_addr programs need CAP_NET_ADMIN (missing)"

// Each documented capability set, for real: what works fully (this
// test's connect, exact pid and ports, and hostnames on), what degrades
// (no hostnames, said once), what fails (one line naming the missing
// capability, exit 1).
func TestCapabilitySets(t *testing.T) {
	requireSetpriv(t)
	hasCgroup2 := false
	if b, err := os.ReadFile("/proc/self/mounts"); err == nil {
		hasCgroup2 = strings.Contains(string(b), " cgroup2 ")
	}
	for _, tt := range []struct {
		setup   capSetup
		names   bool // hostnames work (the DNS hooks attach)
		args    []string
		fail    string // the one line it fails with, if it does
		onlyIf  func() string
		comment string
	}{
		// Root owns tracefs: CAP_BPF and CAP_PERFMON trace; the names need
		// CAP_NET_ADMIN (this lost them quietly, blaming the two it had).
		{setup: capSetup{root: true, caps: []string{"bpf", "perfmon"}}},
		{setup: capSetup{root: true, caps: []string{"bpf", "perfmon", "net_admin"}}, names: true},
		// CAP_SYS_ADMIN stands in for all three.
		{setup: capSetup{root: true, caps: []string{"sys_admin"}}, names: true},
		// Not root: tracefs (mode 0700) needs CAP_DAC_READ_SEARCH too.
		{setup: capSetup{caps: []string{"bpf", "perfmon", "dac_read_search"}}},
		{setup: capSetup{caps: []string{"bpf", "perfmon", "dac_read_search", "net_admin"}}, names: true},
		{setup: capSetup{caps: []string{"bpf", "perfmon", "net_admin"}}, args: []string{"--backend", "tracepoint"},
			fail:   "tuxscope: backend tracepoint cannot trace connects on this kernel: tracepoint syscalls:" + firstConnectTracepoint(t) + ": tracefs on /sys/kernel/tracing (mode 0700, owner uid 0) is not readable by uid 65534: reading tracepoint ids needs CAP_DAC_READ_SEARCH (missing)",
			onlyIf: tracefsIsRootOnly},
		{setup: capSetup{caps: []string{"bpf", "dac_read_search", "net_admin"}},
			fail: "tuxscope: permission denied: tuxscope needs root, or CAP_BPF and CAP_PERFMON (missing: CAP_PERFMON)"},
		{setup: capSetup{caps: []string{"perfmon", "dac_read_search", "net_admin"}},
			fail: "tuxscope: permission denied: tuxscope needs root, or CAP_BPF and CAP_PERFMON (missing: CAP_BPF)"},
		{setup: capSetup{root: true, caps: []string{"net_admin"}},
			fail: "tuxscope: permission denied: tuxscope needs root, or CAP_BPF and CAP_PERFMON (missing: CAP_BPF, CAP_PERFMON)"},
	} {
		t.Run(tt.setup.String(), func(t *testing.T) {
			if tt.onlyIf != nil {
				if why := tt.onlyIf(); why != "" {
					t.Skip(why)
				}
			}
			port := closingListener(t)
			args := append([]string{"--format", "json", "--port", fmt.Sprint(port)}, tt.args...)
			if tt.fail != "" {
				cmd := tt.setup.command(append([]string{"net"}, args...)...)
				var stdout, stderr strings.Builder
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				cmd.Run()
				if code := cmd.ProcessState.ExitCode(); code != 1 || stderr.String() != tt.fail+"\n" || stdout.Len() != 0 {
					t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 1 and:\n%s", code, stdout.String(), stderr.String(), tt.fail)
				}
				return
			}
			tr := startTracerCmd(t, tt.setup.command(netArgs(args...)...))
			seesOwnConnect(t, tr, port)
			if code := tr.stop(); code != 0 {
				t.Errorf("exit code %d; stderr:\n%s", code, tr.stderrText())
			}
			stderr := tr.stderrText()
			n := strings.Count(stderr, "no DNS names")
			switch {
			case !hasCgroup2:
				t.Logf("no cgroup v2 here: hostnames not checked")
			case tt.names && (n != 0 || !regexp.MustCompile(`dns: cgroup[,)]`).MatchString(stderr)):
				t.Errorf("want the DNS hooks attached; stderr:\n%s", stderr)
			case !tt.names && (n != 1 || !strings.Contains(stderr, noNamesLine+"\n")):
				t.Errorf("want, once:\n%s\nstderr:\n%s", noNamesLine, stderr)
			}
			if strings.Contains(stderr, "not mounted") {
				t.Errorf("tracefs is mounted; stderr:\n%s", stderr)
			}
		})
	}
}

// tracefsIsRootOnly is "" when tracefs on /sys/kernel/tracing is mounted
// and closed to others (the default, mode 0700), else why the test
// cannot show what that costs.
func tracefsIsRootOnly() string {
	var st unix.Stat_t
	if err := unix.Stat("/sys/kernel/tracing/events", &st); err != nil {
		return "tracefs is not mounted on /sys/kernel/tracing"
	}
	if err := unix.Stat("/sys/kernel/tracing", &st); err != nil || st.Mode&0o777 != 0o700 || st.Uid != 0 {
		return fmt.Sprintf("tracefs on /sys/kernel/tracing is mode %04o, uid %d, not 0700 root's", st.Mode&0o7777, st.Uid)
	}
	return ""
}

// setcap on the binary works as well as ambient capabilities: a user
// without any runs it with the documented set.
func TestCapabilitiesOnTheBinary(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("setcap"); err != nil {
		t.Skip("setcap (libcap2-bin) is not installed")
	}
	dir, err := os.MkdirTemp("", "tuxscope-setcap-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "tuxscope")
	b, err := os.ReadFile(tuxscopeBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("setcap", "cap_bpf,cap_perfmon,cap_net_admin,cap_dac_read_search+ep", bin).CombinedOutput(); err != nil {
		t.Skipf("setcap: %v: %s (file capabilities unsupported here?)", err, out)
	}
	port := closingListener(t)
	cmd := exec.Command(bin, netArgs("--format", "json", "--port", fmt.Sprint(port))...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	tr := startTracerCmd(t, cmd)
	seesOwnConnect(t, tr, port)
	if code := tr.stop(); code != 0 || strings.Contains(tr.stderrText(), "no DNS names") {
		t.Errorf("exit code %d; stderr:\n%s", code, tr.stderrText())
	}
}

// --existing names the owners of other users' sockets only with
// CAP_SYS_PTRACE (and CAP_DAC_READ_SEARCH); without, it says so, and
// which capability is missing.
func TestExistingOwnersNeedPtrace(t *testing.T) {
	requireSetpriv(t)
	srv, port := server(t, "-recv", "10", "-send", "10", "-wait-eof")
	c := client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-send", "10", "-recv", "10", "-hold")
	c.expect("LOCAL")
	c.expect("DONE")
	srv.expect("ACCEPTED")
	base := []string{"bpf", "perfmon", "dac_read_search", "net_admin"}
	for _, tt := range []struct {
		caps  []string
		owned bool
	}{
		{append(base, "sys_ptrace"), true},
		{base, false},
	} {
		setup := capSetup{caps: tt.caps}
		t.Run(setup.String(), func(t *testing.T) {
			tr := startTracerCmd(t, setup.command(netArgs("--format", "json", "--existing", "--port", fmt.Sprint(port))...))
			wantPIDs := map[string]int{"outbound": c.pid(), "inbound": srv.pid()}
			for dir, pid := range wantPIDs {
				if !tt.owned {
					pid = 0
				}
				got := tr.waitFor("existing "+dir, func(e jsonEvent) bool { return e.EventType == "existing" && e.Direction == dir && e.State != "LISTEN" })
				if got.PID != pid {
					t.Errorf("existing %s: pid %d, want %d", dir, got.PID, pid)
				}
			}
			tr.stop()
			const missing = "their connections show PID -; naming them needs CAP_SYS_PTRACE (missing)\n"
			if has := strings.Contains(tr.stderrText(), missing); has == tt.owned {
				t.Errorf("stderr says %q: %v, want %v; stderr:\n%s", missing, has, !tt.owned, tr.stderrText())
			}
		})
	}
}

// doctor says, for a process with CAP_BPF and CAP_PERFMON only, why each
// thing it cannot do fails, naming the capability; no "no" is without a
// reason.
func TestDoctorNamesMissingCapabilities(t *testing.T) {
	requireSetpriv(t)
	for _, setup := range []capSetup{{root: true, caps: []string{"bpf", "perfmon"}}, {caps: []string{"bpf", "perfmon"}}} {
		t.Run(setup.String(), func(t *testing.T) {
			out, _ := setup.command("doctor", "--format", "json").Output()
			var r struct {
				doctorReport
				Capabilities []string `json:"capabilities"`
				Requirements []struct {
					Feature string   `json:"feature"`
					Missing []string `json:"missing"`
				} `json:"requirements"`
				Privileges doctorCheck `json:"privileges"`
				RingBuffer doctorCheck `json:"ring_buffer"`
			}
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatalf("doctor JSON %q: %v", out, err)
			}
			if fmt.Sprint(r.Capabilities) != "[CAP_PERFMON CAP_BPF]" {
				t.Errorf("capabilities %v", r.Capabilities)
			}
			missing := map[string]string{}
			for _, q := range r.Requirements {
				if len(q.Missing) > 0 {
					missing[q.Feature] = strings.Join(q.Missing, ",")
				}
			}
			if missing["hostnames"] != "CAP_NET_ADMIN" || missing["--existing owners"] != "CAP_SYS_PTRACE,CAP_DAC_READ_SEARCH" {
				t.Errorf("missing: %v", missing)
			}
			if r.DNS.OK || r.DNS.Detail != strings.TrimPrefix(noNamesLine, "tuxscope: no DNS names: ") {
				t.Errorf("dns: %+v", r.DNS)
			}
			for name, c := range map[string]doctorCheck{"privileges": r.Privileges, "ring buffer": r.RingBuffer, "state": r.State, "dns": r.DNS} {
				if !c.OK && c.Detail == "" {
					t.Errorf("%s: no, without a reason", name)
				}
			}
			for _, b := range r.Backends {
				for _, p := range b.Points {
					if !p.OK && p.Reason == "" {
						t.Errorf("%s/%s: no, without a reason", b.Backend, p.Point)
					}
				}
			}
			if !setup.root && tracefsIsRootOnly() == "" {
				if missing["tracepoints"] != "CAP_DAC_READ_SEARCH" || !strings.Contains(r.State.Detail, "reading tracepoint ids needs CAP_DAC_READ_SEARCH (missing)") {
					t.Errorf("tracefs: missing %v, state %+v", missing, r.State)
				}
			}
			// The table says the same, with a reason on every "no".
			table, _ := setup.command("doctor").Output()
			for _, l := range strings.Split(string(table), "\n") {
				if strings.HasSuffix(strings.TrimSpace(l), "no:") {
					t.Errorf("table line without a reason: %q", l)
				}
			}
			if !strings.Contains(string(table), "\nmissing      CAP_NET_ADMIN for hostnames: ") {
				t.Errorf("table does not say CAP_NET_ADMIN is missing:\n%s", table)
			}
		})
	}
}

// `tuxscope doctor > /dev/full` is an error, not a silent exit 0.
func TestDoctorToFullDisk(t *testing.T) {
	requireRoot(t)
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	for _, format := range []string{"table", "json"} {
		cmd := exec.Command(tuxscopeBin, "doctor", "--format", format)
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = full, &stderr
		cmd.Run()
		if code := cmd.ProcessState.ExitCode(); code != 1 || stderr.String() != "tuxscope doctor: writing the output: write /dev/stdout: no space left on device\n" {
			t.Errorf("doctor --format %s > /dev/full: exit %d, stderr %q", format, code, stderr.String())
		}
	}
}

package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/tuxscope/tuxscope/internal/tracer"
)

// Only arguments that end before tracer.Open are run here: valid net
// flags would try to load BPF.

func run(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestRunNetUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"net", "--pid", "abc"}, `invalid value "abc" for flag -pid: invalid pid "abc"`},
		{[]string{"net", "--pid", "0"}, `invalid value "0" for flag -pid: invalid pid "0"`},
		{[]string{"net", "--port", "70000"}, `invalid value "70000" for flag -port: invalid port "70000"`},
		{[]string{"net", "--type", "foo"}, `invalid value "foo" for flag -type: unknown event type "foo" (want connect, accept, established, failed, close, retransmit, reset, listen, unlisten, udp_open or udp_close)`},
		{[]string{"net", "--format", "xml"}, `unknown format "xml" (want table or json)`},
		{[]string{"net", "--proto", "icmp"}, `unknown protocol "icmp" (want tcp or udp)`},
		{[]string{"net", "--udp-idle", "0"}, `--udp-idle must be at least 100ms`},
		{[]string{"net", "-4", "-6"}, `-4 and -6 exclude each other (give neither for both)`},
		{[]string{"net", "extra"}, `unexpected argument "extra"`},
		{[]string{"net", "--bogus"}, `flag provided but not defined: -bogus`},
		{[]string{"net", "--buffer-size", "abc"}, `--buffer-size: invalid size "abc"`},
		{[]string{"net", "--by", "container"}, `--by needs --summary`},
		{[]string{"net", "--summary", "--by", "namespace"}, `unknown --by "namespace" (want process, comm, container or pod)`},
	}
	for _, tt := range tests {
		code, stdout, stderr := run(tt.args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2", tt.args, code)
		}
		if stdout != "" {
			t.Errorf("%q: stdout %q, want nothing", tt.args, stdout)
		}
		want := "tuxscope net: " + tt.msg + "\nRun 'tuxscope net --help' for usage.\n"
		if stderr != want {
			t.Errorf("%q: stderr\n got %q\nwant %q", tt.args, stderr, want)
		}
		// The error itself is one line; the second is the usage hint.
		if lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "tuxscope net: ") {
			t.Errorf("%q: stderr %q: want one error line and one hint line", tt.args, stderr)
		}
	}
}

func TestRunNetHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "-help"} {
		code, stdout, stderr := run("net", arg)
		if code != 0 {
			t.Errorf("net %s: exit %d, want 0", arg, code)
		}
		if stdout != netUsage {
			t.Errorf("net %s: stdout %q, want the net usage", arg, stdout)
		}
		if stderr != "" {
			t.Errorf("net %s: stderr %q", arg, stderr)
		}
	}
	if !strings.HasPrefix(netUsage, "Usage: tuxscope net [flags]\n") {
		t.Errorf("netUsage starts %q", netUsage[:40])
	}
	for _, flag := range []string{"--format", "--pid", "--comm", "--port", "--type", "-4, -6", "--buffer-size", "--btf"} {
		if !strings.Contains(netUsage, "\n  "+flag+" ") {
			t.Errorf("netUsage does not document %s", flag)
		}
	}
}

func TestRunHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "-help", "help"} {
		code, stdout, stderr := run(arg)
		if code != 0 || stdout != usage || stderr != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 0 and usage on stdout", arg, code, stdout, stderr)
		}
	}
	if !strings.HasPrefix(usage, "Usage: tuxscope <command> [flags]\n") {
		t.Errorf("usage starts %q", usage[:40])
	}
}

func TestRunNoArgs(t *testing.T) {
	code, stdout, stderr := run()
	if code != 2 || stdout != "" || stderr != usage {
		t.Errorf("no args: exit %d, stdout %q, stderr %q; want 2 and usage on stderr", code, stdout, stderr)
	}
}

func TestRunVersion(t *testing.T) {
	old := Version
	defer func() { Version = old }()
	for _, arg := range []string{"version", "--version"} {
		Version = "dev"
		code, stdout, stderr := run(arg)
		if code != 0 || stdout != "tuxscope dev\n" || stderr != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", arg, code, stdout, stderr)
		}
		Version = "v1.2.3"
		if _, stdout, _ := run(arg); stdout != "tuxscope v1.2.3\n" {
			t.Errorf("%s with Version=v1.2.3: stdout %q", arg, stdout)
		}
	}
}

func TestRunUnknownCommand(t *testing.T) {
	for _, cmd := range []string{"bogus", "NET", "-4", ""} {
		code, stdout, stderr := run(cmd, "--pid", "1")
		want := fmt.Sprintf("tuxscope: unknown command %q\nRun 'tuxscope --help' for usage.\n", cmd)
		if code != 2 || stdout != "" || stderr != want {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2, %q", cmd, code, stdout, stderr, want)
		}
	}
}

func TestExitWith(t *testing.T) {
	var stderr bytes.Buffer
	if code := exitWith(nil, &stderr); code != 0 || stderr.Len() != 0 {
		t.Errorf("nil: exit %d, stderr %q; want 0 and nothing", code, stderr.String())
	}
	// tuxscope net | head: the reader went away, quietly done.
	if code := exitWith(fmt.Errorf("write /dev/stdout: %w", syscall.EPIPE), &stderr); code != 0 || stderr.Len() != 0 {
		t.Errorf("EPIPE: exit %d, stderr %q; want 0 and nothing", code, stderr.String())
	}
	if code := exitWith(errors.New("writing output: disk full"), &stderr); code != 1 || stderr.String() != "tuxscope: writing output: disk full\n" {
		t.Errorf("other error: exit %d, stderr %q", code, stderr.String())
	}
}

func TestRunDoctorUsage(t *testing.T) {
	for _, arg := range []string{"--help", "-h"} {
		code, stdout, stderr := run("doctor", arg)
		if code != 0 || stdout != doctorUsage || stderr != "" {
			t.Errorf("doctor %s: exit %d, stdout %q, stderr %q; want 0 and the doctor usage", arg, code, stdout, stderr)
		}
	}
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"doctor", "--format", "xml"}, `unknown format "xml" (want table or json)`},
		{[]string{"doctor", "--bogus"}, `flag provided but not defined: -bogus`},
		{[]string{"doctor", "extra"}, `unexpected argument "extra"`},
		{[]string{"doctor", "--btf"}, `flag needs an argument: -btf`},
	}
	for _, tt := range tests {
		code, stdout, stderr := run(tt.args...)
		want := "tuxscope doctor: " + tt.msg + "\nRun 'tuxscope doctor --help' for usage.\n"
		if code != 2 || stdout != "" || stderr != want {
			t.Errorf("%q: exit %d, stdout %q, stderr\n got %q\nwant %q", tt.args, code, stdout, stderr, want)
		}
	}
}

func TestDescribeChoices(t *testing.T) {
	choices := []tracer.Choice{
		{Point: tracer.PointConnect, Backend: "fentry", Hooks: []string{"fexit:tcp_v4_connect", "fexit:tcp_v6_connect"}},
		{Point: tracer.PointAccept, Backend: "tracepoint", Hooks: []string{"tracepoint:a", "tracepoint:b", "tracepoint:c"}},
	}
	if got, want := describeChoices(choices), "5 hooks (connect: fentry, accept: tracepoint)"; got != want {
		t.Errorf("describeChoices = %q, want %q", got, want)
	}
	if got, want := describeChoices(nil), "0 hooks ()"; got != want {
		t.Errorf("describeChoices(nil) = %q, want %q", got, want)
	}
}

func TestWriteDoctorTable(t *testing.T) {
	r := &tracer.Report{
		Kernel:          "6.8.0-test",
		BTF:             tracer.Check{OK: true, Detail: "/sys/kernel/btf/vmlinux"},
		Lockdown:        "none",
		Privileges:      tracer.Check{OK: true, Detail: "root"},
		RingBuffer:      tracer.Check{OK: true, Detail: "BPF_MAP_TYPE_RINGBUF"},
		Kprobes:         tracer.Check{OK: false, Detail: "not built in"},
		AcceptSignature: "inet_csk_accept(sk, arg)",
		IOUring:         tracer.Check{OK: true, Detail: "accepts: io_uring:io_uring_complete"},
		State:           tracer.Check{OK: true, Detail: "tracepoint:sock:inet_sock_set_state"},
		Backends: []tracer.BackendCheck{
			{Backend: tracer.Fentry, Points: []tracer.PointCheck{
				{Point: tracer.PointConnect, OK: true, Hooks: []string{"fexit:tcp_v4_connect"}},
				{Point: tracer.PointAccept, OK: false, Reason: "no BTF"},
			}},
			{Backend: tracer.Tracepoint, Points: []tracer.PointCheck{
				{Point: tracer.PointConnect, OK: true, Hooks: []string{"tracepoint:x"}, Skipped: []string{"kprobe:y (absent)"}},
			}},
		},
		Auto: []tracer.AutoChoice{{Point: tracer.PointConnect, Backend: tracer.Fentry}, {Point: tracer.PointAccept}},
	}
	r.DNS = tracer.Check{OK: true, Detail: "cgroup:ingress"}
	var b bytes.Buffer
	writeDoctorTable(&b, r)
	want := "kernel       6.8.0-test\n" +
		"BTF          yes: /sys/kernel/btf/vmlinux\n" +
		"lockdown     none\n" +
		"privileges   yes: root\n" +
		"ring buffer  yes: BPF_MAP_TYPE_RINGBUF\n" +
		"kprobes      no: not built in\n" +
		"accept()     inet_csk_accept(sk, arg)\n" +
		"io_uring     yes: accepts: io_uring:io_uring_complete\n" +
		"state        yes: tracepoint:sock:inet_sock_set_state\n" +
		"dns          yes: cgroup:ingress\n" +
		"\n" +
		"fentry       connect: yes: fexit:tcp_v4_connect\n" +
		"             accept:  no: no BTF\n" +
		"tracepoint   connect: yes: tracepoint:x; without kprobe:y (absent)\n" +
		"\n" +
		"auto         connect: fentry, accept: nothing works\n"
	if b.String() != want {
		t.Errorf("doctor table\n got %q\nwant %q", b.String(), want)
	}

	// Without the state tracepoint: said so, on the same line.
	r.State = tracer.Check{Detail: "not checked: not privileged"}
	r.AcceptSignature = ""
	r.IOUring = tracer.Check{}
	b.Reset()
	writeDoctorTable(&b, r)
	want = strings.Replace(want, "accept()     inet_csk_accept(sk, arg)\n", "", 1)
	want = strings.Replace(want, "io_uring     yes: accepts: io_uring:io_uring_complete\n", "", 1)
	want = strings.Replace(want, "state        yes: tracepoint:sock:inet_sock_set_state\n", "state        no: not checked: not privileged\n", 1)
	if b.String() != want {
		t.Errorf("doctor table without state\n got %q\nwant %q", b.String(), want)
	}
}

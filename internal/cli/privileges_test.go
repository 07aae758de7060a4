package cli

import (
	"bytes"
	"context"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tuxscope/tuxscope/internal/tracer"
)

// fullWriter fails every write, as /dev/full does.
type fullWriter struct{}

func (fullWriter) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

// Output that cannot be written is an error, one line, exit 1: not a
// silent exit 0 (`tuxscope doctor > /dev/full` did that).
func TestUnwritableOutput(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "tuxscope: writing the output: no space left on device\n"},
		{[]string{"version"}, "tuxscope: writing the output: no space left on device\n"},
		{[]string{"net", "--help"}, "tuxscope net: writing the output: no space left on device\n"},
		{[]string{"top", "-h"}, "tuxscope top: writing the output: no space left on device\n"},
		{[]string{"doctor", "--help"}, "tuxscope doctor: writing the output: no space left on device\n"},
	} {
		var stderr bytes.Buffer
		code := Run(context.Background(), tt.args, fullWriter{}, &stderr)
		if code != exitError || stderr.String() != tt.want {
			t.Errorf("%v > /dev/full: exit %d, stderr %q; want 1 and %q", tt.args, code, stderr.String(), tt.want)
		}
	}
}

func TestDoctorTableCapabilities(t *testing.T) {
	have := tracer.CapsOf(unix.CAP_BPF, unix.CAP_PERFMON)
	r := &tracer.Report{
		Kernel:       "6.18.0-test",
		BTF:          tracer.Check{OK: true, Detail: "/sys/kernel/btf/vmlinux"},
		RingBuffer:   tracer.Check{OK: true, Detail: "BPF_MAP_TYPE_RINGBUF"},
		Kprobes:      tracer.Check{Detail: "not built in"},
		State:        tracer.Check{OK: true, Detail: "raw_tracepoint:inet_sock_set_state"},
		Privileges:   tracer.Check{OK: true, Detail: "can load BPF programs"},
		Capabilities: have.Names(),
		Requirements: tracer.Requirements(have, tracer.Host{TracefsMounted: true, TracefsReadable: true, Memcg: true}),
		DNS:          tracer.Check{Detail: "the kernel refused to load the DNS hooks: cgroup sock_addr programs need CAP_NET_ADMIN (missing)"},
	}
	var b strings.Builder
	writeDoctorTable(&b, r)
	lines := strings.Split(b.String(), "\n")
	want := []string{
		"privileges   yes: can load BPF programs",
		"capabilities CAP_PERFMON, CAP_BPF",
		"missing      CAP_NET_ADMIN for hostnames: ",
		"missing      CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH for --existing owners: ",
		"missing      CAP_SYS_PTRACE for hosts-file names: ",
		"ring buffer  ",
	}
	for i, w := range want {
		if 3+i >= len(lines) || !strings.HasPrefix(lines[3+i], w) {
			t.Fatalf("line %d: want %q ...; table:\n%s", 3+i, w, b.String())
		}
	}
	// Every "no" says why.
	for _, l := range lines {
		if strings.HasSuffix(strings.TrimSpace(l), "no:") {
			t.Errorf("a no without a reason: %q", l)
		}
	}
	if !strings.Contains(b.String(), "dns          no: the kernel refused to load the DNS hooks: cgroup sock_addr programs need CAP_NET_ADMIN (missing)\n") {
		t.Errorf("dns line:\n%s", b.String())
	}
}

func TestOwnersDenied(t *testing.T) {
	for _, tt := range []struct {
		denied []uint32
		have   tracer.Caps
		want   string
	}{
		{[]uint32{1}, tracer.AllCaps, "not allowed to read the open files of 1 process (pid 1): their connections show PID -"},
		{[]uint32{1, 20, 300}, tracer.CapsOf(unix.CAP_BPF, unix.CAP_PERFMON, unix.CAP_DAC_READ_SEARCH),
			"not allowed to read the open files of 3 processes (pid 1, 20, 300): their connections show PID -; naming them needs CAP_SYS_PTRACE (missing)"},
		{[]uint32{1, 2, 3, 4, 5, 6}, tracer.CapsOf(unix.CAP_BPF, unix.CAP_PERFMON),
			"not allowed to read the open files of 6 processes (pid 1, 2, 3, 4, ...): their connections show PID -; naming them needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (missing)"},
	} {
		if got := ownersDenied(tt.denied, tt.have); got != tt.want {
			t.Errorf("ownersDenied(%v):\n got %q\nwant %q", tt.denied, got, tt.want)
		}
	}
}

package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tuxscope/tuxscope/internal/event"
	"github.com/tuxscope/tuxscope/internal/filter"
	"github.com/tuxscope/tuxscope/internal/output"
	"github.com/tuxscope/tuxscope/internal/summary"
	"github.com/tuxscope/tuxscope/internal/tracer"
)

func parse(t *testing.T, args ...string) netOptions {
	t.Helper()
	var stdout bytes.Buffer
	opts, err := parseNetOptions(args, &stdout)
	if err != nil {
		t.Fatalf("parseNetOptions(%q): %v", args, err)
	}
	if stdout.Len() != 0 {
		t.Errorf("parseNetOptions(%q) wrote %q", args, stdout.String())
	}
	return opts
}

func TestParseDefaults(t *testing.T) {
	opts := parse(t)
	want := netOptions{Format: output.FormatTable, RingBufferBytes: 4 << 20, ConnTable: 262144, Backend: tracer.Auto, Top: 10, MaxDelay: 100 * time.Millisecond, UDPIdle: 30 * time.Second, UDPFlows: 65536}
	if !reflect.DeepEqual(opts, want) {
		t.Errorf("defaults = %+v, want %+v", opts, want)
	}
	if opts.RingBufferBytes != 4194304 {
		t.Errorf("RingBufferBytes = %d, want 4194304", opts.RingBufferBytes)
	}
}

// --cri-socket, for net and top alike: a path, none, or (not given) ""
// for the default probes.
func TestParseCRISocket(t *testing.T) {
	for _, cmd := range []string{"net", "top"} {
		for _, tt := range []struct {
			args []string
			want string
		}{
			{nil, ""},
			{[]string{"--cri-socket", "/run/k3s/containerd/containerd.sock"}, "/run/k3s/containerd/containerd.sock"},
			{[]string{"--cri-socket=unix:///run/crio/crio.sock"}, "unix:///run/crio/crio.sock"},
			{[]string{"--cri-socket", "none"}, "none"},
		} {
			opts, err := parseOptions(cmd, tt.args, io.Discard)
			if err != nil || opts.CRISocket != tt.want {
				t.Errorf("%s %q: CRISocket %q, %v; want %q", cmd, tt.args, opts.CRISocket, err, tt.want)
			}
		}
	}
}

func TestParseFilters(t *testing.T) {
	tests := []struct {
		args []string
		want filter.Spec
	}{
		{[]string{"--pid", "1"}, filter.Spec{PIDs: []uint32{1}}},
		{[]string{"--pid", "1,2", "--pid", "3"}, filter.Spec{PIDs: []uint32{1, 2, 3}}},
		{[]string{"--pid=10, 20"}, filter.Spec{PIDs: []uint32{10, 20}}},
		{[]string{"-pid", "4294967295"}, filter.Spec{PIDs: []uint32{4294967295}}},
		{[]string{"--port", "80,443", "--port", "8080"}, filter.Spec{Ports: []uint16{80, 443, 8080}}},
		{[]string{"--port", "65535"}, filter.Spec{Ports: []uint16{65535}}},
		{[]string{"--type", "accept"}, filter.Spec{Types: []event.Type{event.Accept}}},
		{[]string{"--type", "connect,accept"}, filter.Spec{Types: []event.Type{event.Connect, event.Accept}}},
		{[]string{"--type", "connect", "--type", "accept"}, filter.Spec{Types: []event.Type{event.Connect, event.Accept}}},
		{[]string{"--type", "established"}, filter.Spec{Types: []event.Type{event.Established}}},
		{[]string{"--type", "failed"}, filter.Spec{Types: []event.Type{event.Failed}}},
		{[]string{"--type", "close"}, filter.Spec{Types: []event.Type{event.Close}}},
		{[]string{"--type", "connect,accept,established,failed,close"}, filter.Spec{Types: []event.Type{event.Connect, event.Accept, event.Established, event.Failed, event.Close}}},
		{[]string{"--type", "close, failed", "--type", "established"}, filter.Spec{Types: []event.Type{event.Close, event.Failed, event.Established}}},
		{[]string{"--comm", "curl,wget", "--comm", "nginx"}, filter.Spec{Comms: []string{"curl", "wget", "nginx"}}},
		{[]string{"--comm", "0123456789abcde"}, filter.Spec{Comms: []string{"0123456789abcde"}}},
		{[]string{"--comm", "systemd-resolved"}, filter.Spec{Comms: []string{"systemd-resolved"}}},
		{[]string{"-4"}, filter.Spec{IPv4: true}},
		{[]string{"-6"}, filter.Spec{IPv6: true}},
		{[]string{"--6"}, filter.Spec{IPv6: true}},
		{[]string{"--container", "4f1e2d3c,web", "--container", "nginx.service"}, filter.Spec{Containers: []string{"4f1e2d3c", "web", "nginx.service"}}},
		{[]string{"--pod", "web-7d9f", "--namespace", "shop,kube-system"}, filter.Spec{Pods: []string{"web-7d9f"}, Namespaces: []string{"shop", "kube-system"}}},
		{[]string{"--cgroup", "/system.slice/", "--cgroup", "//kubepods//burstable,/"}, filter.Spec{Cgroups: []string{"/system.slice", "/kubepods/burstable", "/"}}},
		{[]string{"--pid", "5", "--port", "22", "--type", "connect", "--comm", "ssh", "-4"},
			filter.Spec{PIDs: []uint32{5}, Ports: []uint16{22}, Types: []event.Type{event.Connect}, Comms: []string{"ssh"}, IPv4: true}},
	}
	for _, tt := range tests {
		opts := parse(t, tt.args...)
		if !reflect.DeepEqual(opts.Filter, tt.want) {
			t.Errorf("%q: Filter = %+v, want %+v", tt.args, opts.Filter, tt.want)
		}
		if opts.Format != output.FormatTable || opts.RingBufferBytes != 4<<20 || opts.BTFPath != "" || opts.Backend != tracer.Auto {
			t.Errorf("%q: other options changed: %+v", tt.args, opts)
		}
	}
}

func TestParseFormatAndBTF(t *testing.T) {
	if opts := parse(t, "--format", "json"); opts.Format != output.FormatJSON {
		t.Errorf("Format = %q, want json", opts.Format)
	}
	if opts := parse(t, "--format=table"); opts.Format != output.FormatTable {
		t.Errorf("Format = %q, want table", opts.Format)
	}
	if opts := parse(t, "--btf", "/tmp/vmlinux.btf"); opts.BTFPath != "/tmp/vmlinux.btf" {
		t.Errorf("BTFPath = %q", opts.BTFPath)
	}
}

func TestParseBackend(t *testing.T) {
	tests := []struct {
		in   string
		want tracer.Backend
	}{
		{"auto", tracer.Auto},
		{"fentry", tracer.Fentry},
		{"kprobe", tracer.Kprobe},
		{"tracepoint", tracer.Tracepoint},
	}
	for _, tt := range tests {
		if opts := parse(t, "--backend", tt.in); opts.Backend != tt.want {
			t.Errorf("--backend %s: Backend = %q, want %q", tt.in, opts.Backend, tt.want)
		}
	}
}

func TestParseBufferSize(t *testing.T) {
	page := os.Getpagesize()
	tests := []struct {
		in   string
		want int
	}{
		{"1M", 1048576},
		{"4MiB", 4194304},
		{"4M", 4194304},
		{"4m", 4194304},
		{"4mib", 4194304},
		{"8MB", 8388608},
		{"64K", 65536},
		{"64KiB", 65536},
		{"1G", 1 << 30},
		{"1GiB", 1 << 30},
		{"1024M", 1 << 30},
		{strconv.Itoa(page), page},
		{"16777216", 16777216},
	}
	for _, tt := range tests {
		opts := parse(t, "--buffer-size", tt.in)
		if opts.RingBufferBytes != tt.want {
			t.Errorf("--buffer-size %s = %d, want %d", tt.in, opts.RingBufferBytes, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	page := os.Getpagesize()
	tooMany := make([]string, tracer.MaxFilterEntries+1)
	for i := range tooMany {
		tooMany[i] = strconv.Itoa(i + 1)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--pid", "0"}, `invalid value "0" for flag -pid: invalid pid "0"`},
		{[]string{"--pid", "abc"}, `invalid value "abc" for flag -pid: invalid pid "abc"`},
		{[]string{"--pid", "-1"}, `invalid value "-1" for flag -pid: invalid pid "-1"`},
		{[]string{"--pid", "4294967296"}, `invalid value "4294967296" for flag -pid: invalid pid "4294967296"`},
		{[]string{"--pid", "1,"}, `invalid value "1," for flag -pid: invalid pid ""`},
		{[]string{"--pid", "1,x,3"}, `invalid value "1,x,3" for flag -pid: invalid pid "x"`},
		{[]string{"--pid"}, `flag needs an argument: -pid`},
		{[]string{"--port", "70000"}, `invalid value "70000" for flag -port: invalid port "70000"`},
		{[]string{"--port", "0"}, `invalid value "0" for flag -port: invalid port "0"`},
		{[]string{"--port", "http"}, `invalid value "http" for flag -port: invalid port "http"`},
		{[]string{"--proto", "sctp"}, `unknown protocol "sctp" (want tcp or udp)`},
		{[]string{"--proto", "udp", "--type", "connect"}, `--type connect is not a --proto udp event`},
		{[]string{"--proto", "tcp", "--type", "udp_open"}, `--type udp_open is not a --proto tcp event`},
		{[]string{"--udp-idle", "10ms"}, `--udp-idle must be at least 100ms`},
		{[]string{"--udp-flows", "0"}, `--udp-flows: UDP flow table size 0: must be between 1 and 4194304`},
		{[]string{"--type", "foo"}, `invalid value "foo" for flag -type: unknown event type "foo" (want connect, accept, established, failed, close, retransmit, reset, listen, unlisten, udp_open or udp_close)`},
		{[]string{"--type", "lost"}, `invalid value "lost" for flag -type: unknown event type "lost" (want connect, accept, established, failed, close, retransmit, reset, listen, unlisten, udp_open or udp_close)`},
		{[]string{"--type", "existing"}, `invalid value "existing" for flag -type: unknown event type "existing" (want connect, accept, established, failed, close, retransmit, reset, listen, unlisten, udp_open or udp_close)`},
		{[]string{"--type", "connect,Close"}, `invalid value "connect,Close" for flag -type: unknown event type "Close" (want connect, accept, established, failed, close, retransmit, reset, listen, unlisten, udp_open or udp_close)`},
		{[]string{"--comm", ""}, `invalid value "" for flag -comm: empty process name`},
		{[]string{"--format", "xml"}, `unknown format "xml" (want table or json)`},
		{[]string{"--format", "JSON"}, `unknown format "JSON" (want table or json)`},
		{[]string{"--backend", "ebpf"}, `unknown backend "ebpf" (want auto, fentry, kprobe or tracepoint)`},
		{[]string{"--backend", ""}, `unknown backend "" (want auto, fentry, kprobe or tracepoint)`},
		{[]string{"--backend", "Kprobe"}, `unknown backend "Kprobe" (want auto, fentry, kprobe or tracepoint)`},
		{[]string{"-4", "-6"}, `-4 and -6 exclude each other (give neither for both)`},
		{[]string{"-6", "-4"}, `-4 and -6 exclude each other (give neither for both)`},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--pid", "1", "extra", "--port", "80"}, `unexpected argument "extra"`},
		{[]string{"--bogus"}, `flag provided but not defined: -bogus`},
		{[]string{"-x"}, `flag provided but not defined: -x`},
		{[]string{"-4=maybe"}, `invalid boolean value "maybe" for -4: parse error`},
		{[]string{"--buffer-size", "3000"}, fmt.Sprintf("--buffer-size: ring buffer size 3000: must be a power of two between %d and 1073741824 bytes", page)},
		{[]string{"--buffer-size", "3M"}, fmt.Sprintf("--buffer-size: ring buffer size 3145728: must be a power of two between %d and 1073741824 bytes", page)},
		{[]string{"--buffer-size", "1K"}, fmt.Sprintf("--buffer-size: ring buffer size 1024: must be a power of two between %d and 1073741824 bytes", page)},
		{[]string{"--buffer-size", "2G"}, `--buffer-size: invalid size "2G"`},
		{[]string{"--conn-table", "0"}, "--conn-table: connection table size 0: must be between 1 and 16777216"},
		{[]string{"--conn-table", "x"}, `invalid value "x" for flag -conn-table: parse error`},
		{[]string{"--buffer-size", "2048M"}, `--buffer-size: invalid size "2048M"`},
		{[]string{"--buffer-size", "0"}, `--buffer-size: invalid size "0"`},
		{[]string{"--buffer-size", "-4M"}, `--buffer-size: invalid size "-4M"`},
		{[]string{"--buffer-size", ""}, `--buffer-size: invalid size ""`},
		{[]string{"--buffer-size", "M"}, `--buffer-size: invalid size "M"`},
		{[]string{"--buffer-size", "4T"}, `--buffer-size: invalid size "4T"`},
		{[]string{"--buffer-size", "four"}, `--buffer-size: invalid size "four"`},
		{[]string{"--buffer-size", "99999999999999999999"}, `--buffer-size: invalid size "99999999999999999999"`},
		{[]string{"--pid", strings.Join(tooMany, ",")}, `at most 1024 pids and 1024 ports`},
		{[]string{"--max-delay", "2s"}, `--max-delay must be at most 1s`},
		{[]string{"--max-delay", "-1ms"}, `invalid value "-1ms" for flag -max-delay: invalid duration "-1ms" (want seconds, or e.g. 500ms, 1m)`},
		{[]string{"--port", strings.Join(tooMany, ",")}, `at most 1024 pids and 1024 ports`},
		{[]string{"--by", "container"}, `--by needs --summary`},
		{[]string{"--by", "process"}, `--by needs --summary`},
		{[]string{"--summary", "--by", "pods"}, `unknown --by "pods" (want process, comm, container or pod)`},
		{[]string{"--summary", "--by", ""}, `unknown --by "" (want process, comm, container or pod)`},
		{[]string{"--summary", "--by"}, `flag needs an argument: -by`},
		{[]string{"--cri-socket", ""}, `invalid value "" for flag -cri-socket: empty path (none: ask no CRI runtime)`},
		{[]string{"--cri-socket"}, `flag needs an argument: -cri-socket`},
		{[]string{"--cgroup", "/" + strings.Join(tooMany, ",/")}, `at most 1024 --container, --pod, --namespace and --cgroup values`},
		{[]string{"--container", ""}, `invalid value "" for flag -container: empty container`},
		{[]string{"--container", "a b"}, `invalid value "a b" for flag -container: invalid container "a b": no spaces, slashes or control characters`},
		{[]string{"--pod", "ns/web"}, `invalid value "ns/web" for flag -pod: invalid pod "ns/web": no spaces, slashes or control characters`},
		{[]string{"--namespace", "shop,"}, `invalid value "shop," for flag -namespace: empty namespace`},
		{[]string{"--cgroup", "system.slice"}, `invalid value "system.slice" for flag -cgroup: cgroup path "system.slice": must be absolute, as /proc/PID/cgroup writes it (e.g. /system.slice/nginx.service)`},
		{[]string{"--cgroup", "/a/../b"}, `invalid value "/a/../b" for flag -cgroup: cgroup path "/a/../b": no . or .. components`},
		{[]string{"--cgroup", ""}, `invalid value "" for flag -cgroup: empty cgroup path`},
	}
	for _, tt := range tests {
		var stdout bytes.Buffer
		_, err := parseNetOptions(tt.args, &stdout)
		name := strings.Join(tt.args, " ")
		if len(name) > 60 {
			name = name[:60] + "..."
		}
		if err == nil {
			t.Errorf("%s: no error, want %q", name, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("%s: error %q, want %q", name, err, tt.want)
		}
		if errors.Is(err, errHelp) {
			t.Errorf("%s: error is errHelp", name)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %q is not one line", name, err)
		}
		if stdout.Len() != 0 {
			t.Errorf("%s: wrote %q to stdout", name, stdout.String())
		}
	}
}

// --by groups net --summary's rows and top's; process unless told.
func TestParseGroupBy(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want summary.GroupBy
	}{
		{[]string{"--summary"}, summary.GroupProcess},
		{[]string{"--summary", "--by", "process"}, summary.GroupProcess},
		{[]string{"--summary", "--by", "comm"}, summary.GroupComm},
		{[]string{"--summary", "--by=container", "--interval", "5"}, summary.GroupContainer},
		{[]string{"--by", "pod", "--summary", "--format", "json"}, summary.GroupPod},
	} {
		if opts := parse(t, tt.args...); opts.By != tt.want || !opts.Summary {
			t.Errorf("%q: By %v, Summary %v; want %v", tt.args, opts.By, opts.Summary, tt.want)
		}
	}
	for _, tt := range []struct {
		args []string
		want summary.GroupBy
		err  string
	}{
		{nil, summary.GroupProcess, ""},
		{[]string{"--by", "container"}, summary.GroupContainer, ""},
		{[]string{"--sort", "bytes", "--by", "pod"}, summary.GroupPod, ""},
		{[]string{"--by", "comm", "--pid", "1"}, summary.GroupComm, ""},
		{[]string{"--by", "host"}, 0, `unknown --by "host" (want process, comm, container or pod)`},
	} {
		opts, err := parseOptions("top", tt.args, io.Discard)
		switch {
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("top %q: error %v, want %q", tt.args, err, tt.err)
		case tt.err == "" && (err != nil || opts.By != tt.want):
			t.Errorf("top %q: By %v, %v; want %v", tt.args, opts.By, err, tt.want)
		}
	}
}

func TestParseHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "-help", "--h"} {
		var stdout bytes.Buffer
		_, err := parseNetOptions([]string{"--pid", "1", arg}, &stdout)
		if !errors.Is(err, errHelp) {
			t.Errorf("%s: err = %v, want errHelp", arg, err)
		}
		if stdout.String() != netUsage {
			t.Errorf("%s: stdout = %q, want the net usage", arg, stdout.String())
		}
	}
	// After the flags end, -h is an argument, not a request for help.
	var stdout bytes.Buffer
	_, err := parseNetOptions([]string{"--", "-h"}, &stdout)
	if err == nil || err.Error() != `unexpected argument "-h"` || stdout.Len() != 0 {
		t.Errorf("-- -h: err = %v, stdout %q", err, stdout.String())
	}
}

func TestTracerConfig(t *testing.T) {
	tests := []struct {
		args []string
		want tracer.Config
	}{
		// No --type: Types stays nil, which the tracer reads as all types.
		{nil, tracer.Config{UDP: true, UDPIdle: 30 * time.Second, UDPFlows: 65536, IPv4: true, IPv6: true, RingBufferBytes: 4 << 20, ConnTable: 1 << 18, Backend: tracer.Auto, DNS: true, MaxDelay: 100 * time.Millisecond}},
		{[]string{"--type", "accept"}, tracer.Config{UDP: false, UDPIdle: 30 * time.Second, UDPFlows: 65536, Types: []event.Type{event.Accept}, IPv4: true, IPv6: true, RingBufferBytes: 4 << 20, ConnTable: 1 << 18, Backend: tracer.Auto, DNS: true, MaxDelay: 100 * time.Millisecond}},
		{[]string{"--type", "connect"}, tracer.Config{UDP: false, UDPIdle: 30 * time.Second, UDPFlows: 65536, Types: []event.Type{event.Connect}, IPv4: true, IPv6: true, RingBufferBytes: 4 << 20, ConnTable: 1 << 18, Backend: tracer.Auto, DNS: true, MaxDelay: 100 * time.Millisecond}},
		{[]string{"--type", "accept,connect"}, tracer.Config{UDP: false, UDPIdle: 30 * time.Second, UDPFlows: 65536, Types: []event.Type{event.Accept, event.Connect}, IPv4: true, IPv6: true, RingBufferBytes: 4 << 20, ConnTable: 1 << 18, Backend: tracer.Auto, DNS: true, MaxDelay: 100 * time.Millisecond}},
		{[]string{"--type", "established"}, tracer.Config{UDP: false, UDPIdle: 30 * time.Second, UDPFlows: 65536, Types: []event.Type{event.Established}, IPv4: true, IPv6: true, RingBufferBytes: 4 << 20, ConnTable: 1 << 18, Backend: tracer.Auto, DNS: true, MaxDelay: 100 * time.Millisecond}},
		{[]string{"--type", "failed,close", "--type", "connect"}, tracer.Config{UDP: false, UDPIdle: 30 * time.Second, UDPFlows: 65536, Types: []event.Type{event.Failed, event.Close, event.Connect}, IPv4: true, IPv6: true, RingBufferBytes: 4 << 20, ConnTable: 1 << 18, Backend: tracer.Auto, DNS: true, MaxDelay: 100 * time.Millisecond}},
		{[]string{"-6"}, tracer.Config{UDP: true, UDPIdle: 30 * time.Second, UDPFlows: 65536, IPv4: false, IPv6: true, RingBufferBytes: 4 << 20, ConnTable: 1 << 18, Backend: tracer.Auto, DNS: true, MaxDelay: 100 * time.Millisecond}},
		{[]string{"-4"}, tracer.Config{UDP: true, UDPIdle: 30 * time.Second, UDPFlows: 65536, IPv4: true, IPv6: false, RingBufferBytes: 4 << 20, ConnTable: 1 << 18, Backend: tracer.Auto, DNS: true, MaxDelay: 100 * time.Millisecond}},
		{[]string{"--pid", "7,8", "--port", "443", "--comm", "curl", "--buffer-size", "64K", "--btf", "/b", "--format", "json", "--backend", "kprobe"},
			tracer.Config{UDP: true, UDPIdle: 30 * time.Second, UDPFlows: 65536, PIDs: []uint32{7, 8}, Ports: []uint16{443}, IPv4: true, IPv6: true, RingBufferBytes: 65536, ConnTable: 1 << 18, BTFPath: "/b", Backend: tracer.Kprobe, DNS: true, MaxDelay: 100 * time.Millisecond}},
		{[]string{"--conn-table", "1000000"}, tracer.Config{UDP: true, UDPIdle: 30 * time.Second, UDPFlows: 65536, IPv4: true, IPv6: true, RingBufferBytes: 4 << 20, ConnTable: 1000000, Backend: tracer.Auto, DNS: true, MaxDelay: 100 * time.Millisecond}},
		{[]string{"--max-delay", "0"}, tracer.Config{UDP: true, UDPIdle: 30 * time.Second, UDPFlows: 65536, IPv4: true, IPv6: true, RingBufferBytes: 4 << 20, ConnTable: 1 << 18, Backend: tracer.Auto, DNS: true}},
		{[]string{"--max-delay", "250ms"}, tracer.Config{UDP: true, UDPIdle: 30 * time.Second, UDPFlows: 65536, IPv4: true, IPv6: true, RingBufferBytes: 4 << 20, ConnTable: 1 << 18, Backend: tracer.Auto, DNS: true, MaxDelay: 250 * time.Millisecond}},
		{[]string{"--no-names"}, tracer.Config{UDP: true, UDPIdle: 30 * time.Second, UDPFlows: 65536, IPv4: true, IPv6: true, RingBufferBytes: 4 << 20, ConnTable: 1 << 18, Backend: tracer.Auto, MaxDelay: 100 * time.Millisecond}},
		// Summaries are due every --interval: the reader ticks that often.
		{[]string{"--summary", "--interval", "5s"}, tracer.Config{UDP: true, UDPIdle: 30 * time.Second, UDPFlows: 65536, IPv4: true, IPv6: true, RingBufferBytes: 4 << 20, ConnTable: 1 << 18, Backend: tracer.Auto, DNS: true, MaxDelay: 100 * time.Millisecond, Tick: 5 * time.Second}},
		// --proto: only its types go to the kernel
		{[]string{"--proto", "udp", "--udp-idle", "2s"}, tracer.Config{Types: []event.Type{event.UDPOpen, event.UDPClose}, UDP: true, UDPIdle: 2 * time.Second, UDPFlows: 65536, IPv4: true, IPv6: true, RingBufferBytes: 4 << 20, ConnTable: 1 << 18, Backend: tracer.Auto, DNS: true, MaxDelay: 100 * time.Millisecond}},
		{[]string{"--proto", "tcp", "--type", "close"}, tracer.Config{Types: []event.Type{event.Close}, UDPIdle: 30 * time.Second, UDPFlows: 65536, IPv4: true, IPv6: true, RingBufferBytes: 4 << 20, ConnTable: 1 << 18, Backend: tracer.Auto, DNS: true, MaxDelay: 100 * time.Millisecond}},
		{[]string{"--type", "udp_close", "--udp-flows", "100"}, tracer.Config{Types: []event.Type{event.UDPClose}, UDP: true, UDPIdle: 30 * time.Second, UDPFlows: 100, IPv4: true, IPv6: true, RingBufferBytes: 4 << 20, ConnTable: 1 << 18, Backend: tracer.Auto, DNS: true, MaxDelay: 100 * time.Millisecond}},
	}
	for _, tt := range tests {
		opts := parse(t, tt.args...)
		if got := opts.tracerConfig(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: tracerConfig = %+v, want %+v", tt.args, got, tt.want)
		}
	}
}

func TestListFlag(t *testing.T) {
	var got []string
	f := listFlag(func(s string) error {
		if s == "bad" {
			return errors.New("bad value")
		}
		got = append(got, s)
		return nil
	})
	if err := f.Set(" a , b,c "); err != nil {
		t.Fatal(err)
	}
	if err := f.Set("d"); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "c", "d"}; !reflect.DeepEqual(got, want) {
		t.Errorf("values = %q, want %q", got, want)
	}
	if err := f.Set("e,bad,f"); err == nil || err.Error() != "bad value" {
		t.Errorf("Set(bad) = %v", err)
	}
	if f.String() != "" {
		t.Errorf("String() = %q", f.String())
	}
}

package cli

import (
	"bytes"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tuxscope/tuxscope/internal/filter"
	"github.com/tuxscope/tuxscope/internal/metrics"
	"github.com/tuxscope/tuxscope/internal/tracer"
)

func TestParseServe(t *testing.T) {
	var stdout bytes.Buffer
	opts, err := parseOptions("serve", nil, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	want := serveOptions{Listen: "127.0.0.1:9464", Labels: metrics.AllLabels, Peers: 10, MaxSeries: 10000, SeriesTTL: 10 * time.Minute}
	if opts.Serve != want {
		t.Errorf("defaults %+v, want %+v", opts.Serve, want)
	}
	// DNS responses are events for the metrics; no summary, no interval.
	if !opts.ShowDNS || opts.Summary || opts.Interval != 0 || opts.MaxDelay != DefaultMaxDelay {
		t.Errorf("defaults %+v", opts)
	}
	opts, err = parseOptions("serve", []string{"--listen", ":0", "--labels", "comm,peer", "--peers", "0",
		"--max-series", "5", "--series-ttl", "30s", "--port", "80", "--comm", "curl", "-4", "--no-names"}, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	labels, _ := metrics.ParseLabels("comm,peer")
	want = serveOptions{Listen: ":0", Labels: labels, Peers: 0, MaxSeries: 5, SeriesTTL: 30 * time.Second}
	if opts.Serve != want || opts.ShowDNS || !opts.NoNames {
		t.Errorf("got %+v, want %+v", opts.Serve, want)
	}
	if wantF := (filter.Spec{Ports: []uint16{80}, Comms: []string{"curl"}, IPv4: true}); !reflect.DeepEqual(opts.Filter, wantF) {
		t.Errorf("filter %+v", opts.Filter)
	}
	if c := opts.tracerConfig(); c.DNS || c.Backend != tracer.Auto || c.Tick != 0 {
		t.Errorf("tracer config %+v", c)
	}
}

func TestRunServeUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"--listen", "9464"}, `invalid --listen "9464": want HOST:PORT, e.g. 127.0.0.1:9464 or :9464`},
		{[]string{"--listen", "127.0.0.1:http2"}, `invalid --listen "127.0.0.1:http2": bad port "http2"`},
		{[]string{"--listen", "127.0.0.1:70000"}, `invalid --listen "127.0.0.1:70000": bad port "70000"`},
		{[]string{"--labels", "comm,pid"}, `invalid value "comm,pid" for flag -labels: unknown label "pid" (want some of comm,container,pod,namespace,peer, or none)`},
		{[]string{"--peers", "-1"}, `invalid --peers -1`},
		{[]string{"--max-series", "0"}, `invalid --max-series 0 (want at least 1)`},
		{[]string{"--series-ttl", "500ms"}, `invalid --series-ttl 500ms (want at least 1s)`},
		{[]string{"--format", "json"}, `flag provided but not defined: -format`},
		{[]string{"--interval", "1"}, `flag provided but not defined: -interval`},
	}
	for _, tt := range tests {
		code, stdout, stderr := run(append([]string{"serve"}, tt.args...)...)
		want := "tuxscope serve: " + tt.msg + "\nRun 'tuxscope serve --help' for usage.\n"
		if code != 2 || stdout != "" || stderr != want {
			t.Errorf("%q: exit %d, stdout %q, stderr\n got %q\nwant %q", tt.args, code, stdout, stderr, want)
		}
	}
}

// TestRunServeAddressInUse: a --listen address taken fails at once, exit
// 1, before anything is loaded (so this runs without root).
func TestRunServeAddressInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	code, stdout, stderr := run("serve", "--listen", l.Addr().String())
	want := "tuxscope serve: listen tcp " + l.Addr().String() + ": bind: address already in use\n"
	if code != 1 || stdout != "" || stderr != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1 and %q", code, stdout, stderr, want)
	}
}

func TestRunServeHelp(t *testing.T) {
	code, stdout, stderr := run("serve", "--help")
	if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "Usage: tuxscope serve [flags]") || !strings.Contains(stdout, "--max-series N") {
		t.Errorf("exit %d, stderr %q, stdout %q", code, stderr, stdout)
	}
	if _, out, _ := run("--help"); !strings.Contains(out, "serve     Prometheus agent") {
		t.Errorf("tuxscope --help does not list serve:\n%s", out)
	}
}

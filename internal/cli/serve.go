package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tuxscope/tuxscope/internal/metrics"
	"github.com/tuxscope/tuxscope/internal/tracer"
)

// DefaultListen is --listen's default: loopback only, as the metrics name
// the processes, peers and containers of the whole host.
const DefaultListen = "127.0.0.1:9464"

// serveOptions are `tuxscope serve`'s own flags.
type serveOptions struct {
	Listen    string
	Labels    metrics.Labels
	Peers     int
	MaxSeries int
	SeriesTTL time.Duration
}

const serveUsage = `Usage: tuxscope serve [flags]

A Prometheus agent: counts this host's TCP connections (connects and
accepts, failures by reason, bytes, handshake latency and duration) and
DNS responses per process, container, pod, namespace and peer, in memory,
and serves them at http://LISTEN/metrics; /healthz answers 200 while the
tracer is attached and its events are read. Cardinality is bounded (see
--peers, --max-series, --series-ttl and the README).

Flags:
  --listen ADDR         address to serve on (default 127.0.0.1:9464: loopback,
                        as the metrics name every process and peer of the
                        host; ":9464" serves on every interface)
  --labels LIST         labels to use among comm, container, pod, namespace,
                        peer (default all; "none": only direction, reason, rcode)
  --peers N             peers of a process (comm, container, pod, namespace)
                        with a peer label of their own (default 10); the others
                        count as peer="other"
  --max-series N        most series the connection and DNS metrics expose
                        (default 10000); beyond, new label sets count in one
                        all-"other" set, counted in tuxscope_series_folded_total
  --series-ttl D        drop a label set not updated for D (default 10m)
  --output FILE         also write every event as JSON lines to FILE, rotated
                        (--rotate-size, --rotate-keep: as for net)
  --duration D          stop after D
  --pid, --comm, --port, --container, --pod, --namespace, --cgroup, -4, -6,
  --no-names, --cri-socket, --buffer-size, --conn-table, --max-delay, --backend,
  --btf: as for net
`

// register adds serve's flags to fs.
func (s *serveOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&s.Listen, "listen", DefaultListen, "")
	s.Labels = metrics.AllLabels
	fs.Func("labels", "", func(v string) (err error) {
		s.Labels, err = metrics.ParseLabels(v)
		return err
	})
	fs.IntVar(&s.Peers, "peers", metrics.DefaultPeers, "")
	fs.IntVar(&s.MaxSeries, "max-series", metrics.DefaultMaxSeries, "")
	s.SeriesTTL = metrics.DefaultSeriesTTL
	fs.Var(durationFlag{&s.SeriesTTL}, "series-ttl", "")
}

// check validates serve's flags.
func (s *serveOptions) check() error {
	_, port, err := net.SplitHostPort(s.Listen)
	if err != nil {
		return fmt.Errorf("invalid --listen %q: want HOST:PORT, e.g. 127.0.0.1:9464 or :9464", s.Listen)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("invalid --listen %q: bad port %q", s.Listen, port)
	}
	switch {
	case s.Peers < 0:
		return fmt.Errorf("invalid --peers %d", s.Peers)
	case s.MaxSeries < 1:
		return fmt.Errorf("invalid --max-series %d (want at least 1)", s.MaxSeries)
	case s.SeriesTTL < time.Second:
		return fmt.Errorf("invalid --series-ttl %s (want at least 1s)", s.SeriesTTL)
	}
	return nil
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts, err := parseOptions("serve", args, stdout)
	if err != nil {
		return usageExit("tuxscope serve", err, stderr)
	}
	// Listen before attaching: a port in use fails at once, with nothing
	// loaded.
	ln, err := net.Listen("tcp", opts.Serve.Listen)
	if err != nil {
		fmt.Fprintf(stderr, "tuxscope serve: %v\n", err)
		return exitError
	}
	defer ln.Close()
	so := &opts.Serve
	agg := metrics.New(metrics.Config{Labels: so.Labels, Peers: so.Peers, MaxSeries: so.MaxSeries, SeriesTTL: so.SeriesTTL})
	col := metrics.NewCollector(agg)
	sink := metrics.NewSink(agg)
	handler, err := metrics.Handler(col, sink)
	if err != nil {
		fmt.Fprintf(stderr, "tuxscope serve: %v\n", err)
		return exitError
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stderr, "tuxscope: serving http://%s/metrics and /healthz\n", ln.Addr())
	view := &liveView{
		sink: sink,
		attached: func(choices []tracer.Choice) {
			col.SetBuildInfo(metrics.BuildInfo{Version: Version, Kernel: kernelRelease(), Backend: backendLabel(choices)})
		},
		run: func(ctx context.Context) error {
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			select {
			case err := <-served:
				return fmt.Errorf("serving metrics: %w", err)
			case <-ctx.Done():
			}
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			return nil
		},
	}
	return trace(ctx, &opts, stdout, stderr, view)
}

// backendLabel is tuxscope_build_info's backend: each hook point's, e.g.
// "connect:tracepoint,accept:tracepoint,state:raw_tracepoint,dns:cgroup".
func backendLabel(choices []tracer.Choice) string {
	parts := make([]string, len(choices))
	for i, c := range choices {
		parts[i] = fmt.Sprintf("%s:%s", c.Point, c.Backend)
	}
	return strings.Join(parts, ",")
}

// kernelRelease is uname -r.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

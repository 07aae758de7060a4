// Command run is tuxscope's comparative benchmark (`make bench-compare`):
// it drives bench/loadgen's loopback connection churn with no tracer, with
// tuxscope in its output modes, and with the peers that work on kernels
// without kprobes (libbpf-tools tcplife and tcpstates, a bpftrace script on
// sock:inet_sock_set_state), interleaved over several rounds in a rotating
// order, and measures for each cell: connections/s, events received against
// the connections made, lost events, the tracer's CPU time and peak RSS, and
// the time from start to attached. It writes docs/benchmarks.md and
// docs/benchmarks.png from what it measured, nothing else.
//
// Needs root. Generates traffic on 127.0.0.1 only.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/tuxscope/tuxscope/bench/internal/load"
)

// options are the runner's flags.
type options struct {
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	settle      time.Duration
	fixedRate   float64
	concurrency int
	closeMode   string
	payload     int
	cells       string
	peers       bool
	install     bool
	micro       bool
	benchtime   string
	mdPath      string
	pngPath     string
	workDir     string
	keep        bool
	quietWait   time.Duration
	quietBudget time.Duration
	quietCPU    float64
	maxOther    float64
	retries     int
	retryBudget int
}

func main() {
	var o options
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; each runs every cell once, in a rotating order")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "load duration of each cell")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "unrecorded baseline load before the first round (0: none)")
	flag.DurationVar(&o.settle, "settle", 300*time.Millisecond, "wait after a tracer has attached before the load starts")
	flag.Float64Var(&o.fixedRate, "fixed-rate", 4000, "connections/s of the fixed-rate cells (0: no fixed-rate cells)")
	flag.IntVar(&o.concurrency, "concurrency", 8, "loadgen client connections in flight")
	flag.StringVar(&o.closeMode, "close", "server", "loadgen close pattern: client, server or reset (server: no client-side TIME_WAIT piling up over the run)")
	flag.IntVar(&o.payload, "payload", 32, "loadgen payload bytes each way per connection")
	flag.StringVar(&o.cells, "cells", "", "only the cells whose name contains one of these comma-separated strings (baselines are always run)")
	flag.BoolVar(&o.peers, "peers", true, "run the libbpf-tools and bpftrace cells")
	flag.BoolVar(&o.install, "install", true, "apt-get install libbpf-tools and bpftrace if missing")
	flag.BoolVar(&o.micro, "micro", true, "run the Go micro-benchmarks of "+strings.Join(microPackages, " "))
	flag.StringVar(&o.benchtime, "benchtime", "1s", "go test -benchtime for the micro-benchmarks")
	flag.StringVar(&o.mdPath, "md", "", "markdown report to write (default: docs/benchmarks.md in the repository)")
	flag.StringVar(&o.pngPath, "png", "", "chart to write (default: docs/benchmarks.png in the repository)")
	flag.StringVar(&o.workDir, "workdir", "", "scratch directory (default: a new temporary one, removed at the end)")
	flag.BoolVar(&o.keep, "keep", false, "keep the scratch directory")
	flag.DurationVar(&o.quietWait, "quiet-wait", 20*time.Second, "before each cell, wait up to this long for the machine to be quiet (other processes under -quiet-cpu, no other tracing BPF programs)")
	flag.DurationVar(&o.quietBudget, "quiet-budget", 3*time.Minute, "total time the whole run may spend waiting for quiet")
	flag.Float64Var(&o.quietCPU, "quiet-cpu", 10, "quiet: other processes' CPU in % of all CPUs")
	flag.Float64Var(&o.maxOther, "max-other", 10, "a run during which other processes used more than this % of all CPUs, or another tracing BPF program was loaded, is disturbed and redone")
	flag.IntVar(&o.retries, "retries", 2, "times a disturbed run is redone (the last attempt is kept)")
	flag.IntVar(&o.retryBudget, "retry-budget", 12, "disturbed runs redone in the whole run, at most")
	flag.Parse()
	switch o.closeMode {
	case "client", "server", "reset":
	default:
		fatalf("-close must be client, server or reset")
	}
	if o.rounds < 1 || o.duration <= 0 || o.concurrency < 1 {
		fatalf("bad -rounds, -duration or -concurrency")
	}
	if os.Geteuid() != 0 {
		fatalf("needs root (it loads BPF programs)")
	}
	if err := run(&o); err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// microPackages are the product's packages whose Go micro-benchmarks the
// report includes (its "decode 0 allocs/op" target reads BenchmarkDecode*).
var microPackages = []string{"./internal/event", "./internal/output"}

// env is what every cell needs: built binaries, peers, scratch space.
type env struct {
	o           *options
	repo        string // the repository's root, where the product's go.mod is
	work        string
	tuxscope    string
	loadgen     string
	tcplife     string
	tcpstates   string
	bpftrace    string
	quietLeft   time.Duration
	retriesLeft int
}

func run(o *options) error {
	began := time.Now()
	repo, err := findRepo()
	if err != nil {
		return err
	}
	if o.mdPath == "" {
		o.mdPath = filepath.Join(repo, "docs", "benchmarks.md")
	}
	if o.pngPath == "" {
		o.pngPath = filepath.Join(repo, "docs", "benchmarks.png")
	}
	e := &env{o: o, repo: repo, work: o.workDir, quietLeft: o.quietBudget, retriesLeft: o.retryBudget}
	if e.work == "" {
		dir, err := os.MkdirTemp("", "tuxscope-bench-")
		if err != nil {
			return err
		}
		e.work = dir
		if !o.keep {
			defer os.RemoveAll(dir)
		}
	} else if err := os.MkdirAll(e.work, 0o755); err != nil {
		return err
	}

	e.tuxscope = filepath.Join(e.work, "tuxscope")
	e.loadgen = filepath.Join(e.work, "loadgen")
	// The product from the repository's root module, the loadgen from
	// bench/'s own module.
	for _, b := range []struct{ out, dir, pkg string }{
		{e.tuxscope, repo, "./cmd/tuxscope"},
		{e.loadgen, filepath.Join(repo, "bench"), "./loadgen"},
	} {
		if err := goBuild(b.out, b.dir, b.pkg); err != nil {
			return err
		}
	}
	if o.peers {
		if err := e.findPeers(); err != nil {
			return err
		}
	}

	info := machineInfo(repo)
	info.Command = commandLine()
	cells := e.cells()
	logf("%d cells x %d rounds, %s load each; scratch %s", len(cells), o.rounds, o.duration, e.work)

	if o.warmup > 0 {
		logf("warm-up: %s of unrecorded baseline load", o.warmup)
		if _, _, err := e.runLoad(freePort(), 0, o.warmup, false); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}

	var results, redone []*result
	step := max(1, len(cells)/o.rounds)
	for r := 0; r < o.rounds; r++ {
		for i := range cells {
			c := cells[(i+r*step)%len(cells)]
			res := e.runCell(c, r)
			logf("round %d/%d %2d/%d %-28s %s", r+1, o.rounds, i+1, len(cells), c.Name, res.brief())
			for attempt := 1; attempt <= o.retries && e.retriesLeft > 0 && res.disturbed(o); attempt++ {
				e.retriesLeft--
				redone = append(redone, res)
				logf("disturbed (others %.0f%% CPU, %d other tracing BPF programs): running it again", res.OtherCPUPct, res.Foreign)
				res = e.runCell(c, r)
				res.Attempt = attempt
				logf("round %d/%d %2d/%d %-28s %s", r+1, o.rounds, i+1, len(cells), c.Name, res.brief())
			}
			res.Position = i
			results = append(results, res)
		}
	}

	var micro string
	if o.micro {
		logf("go test -run '^$' -bench . -benchmem -benchtime %s %s", o.benchtime, strings.Join(microPackages, " "))
		cmd := exec.Command("go", append([]string{"test", "-run", "^$", "-bench", ".", "-benchmem",
			"-benchtime", o.benchtime}, microPackages...)...)
		cmd.Dir = repo
		out, err := cmd.CombinedOutput()
		micro = string(out)
		if err != nil {
			micro += fmt.Sprintf("\n(go test failed: %v)\n", err)
		}
	}
	info.Elapsed = time.Since(began)

	rep := buildReport(o, info, cells, results, micro)
	rep.redone = redone
	if err := os.MkdirAll(filepath.Dir(o.mdPath), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(o.mdPath, []byte(rep.markdown()), 0o644); err != nil {
		return err
	}
	if err := rep.chart(o.pngPath); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	logf("wrote %s and %s in %s", o.mdPath, o.pngPath, time.Since(began).Round(time.Second))
	return nil
}

// commandLine is how this run was asked for.
func commandLine() string {
	args := strings.Join(os.Args[1:], " ")
	if os.Getenv("BENCH_VIA_MAKE") != "" {
		if args == "" {
			return "make bench-compare"
		}
		return fmt.Sprintf("make bench-compare BENCH_FLAGS='%s'", args)
	}
	return strings.TrimSpace("go -C bench run ./run " + args)
}

// findRepo is the root of the git work tree this runs in, where the
// product's go.mod is (bench/ is a module of its own below it).
func findRepo() (string, error) {
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "", fmt.Errorf("run it inside the tuxscope repository: git rev-parse --show-toplevel: %v", err)
	}
	repo := strings.TrimSpace(string(out))
	if b, err := os.ReadFile(filepath.Join(repo, "go.mod")); err != nil || !bytes.HasPrefix(b, []byte("module github.com/tuxscope/tuxscope\n")) {
		return "", fmt.Errorf("%s is not the tuxscope repository (no go.mod for github.com/tuxscope/tuxscope)", repo)
	}
	return repo, nil
}

// goBuild runs go build -o out pkg in dir, the directory of pkg's module.
func goBuild(out, dir, pkg string) error {
	logf("go -C %s build -o %s %s", dir, out, pkg)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s in %s: %v\n%s", pkg, dir, err, b)
	}
	return nil
}

// findPeers locates (installing them from Debian if missing and allowed)
// libbpf-tools' tcplife and tcpstates, and bpftrace.
func (e *env) findPeers() error {
	find := func() {
		e.tcplife = findBinary("tcplife", "libbpf-tools")
		e.tcpstates = findBinary("tcpstates", "libbpf-tools")
		e.bpftrace = findBinary("bpftrace", "bpftrace")
	}
	find()
	if (e.tcplife == "" || e.tcpstates == "" || e.bpftrace == "") && e.o.install {
		logf("installing libbpf-tools and bpftrace from Debian")
		install := func() error {
			cmd := exec.Command("apt-get", "install", "-y", "-qq", "libbpf-tools", "bpftrace")
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, lastLines(string(out), 3))
			}
			return nil
		}
		if err := install(); err != nil {
			if out, err := exec.Command("apt-get", "update", "-qq").CombinedOutput(); err != nil {
				return fmt.Errorf("apt-get update: %v: %s", err, out)
			}
			if err := install(); err != nil {
				return fmt.Errorf("apt-get install libbpf-tools bpftrace: %w", err)
			}
		}
		find()
	}
	if e.tcplife == "" || e.tcpstates == "" || e.bpftrace == "" {
		return fmt.Errorf("peers missing (tcplife %q, tcpstates %q, bpftrace %q); run with -peers=false to skip them",
			e.tcplife, e.tcpstates, e.bpftrace)
	}
	logf("peers: %s, %s, %s", e.tcplife, e.tcpstates, e.bpftrace)
	return nil
}

// findBinary looks for name on PATH, in /usr/sbin, then among the files of
// a Debian package (where it may carry a prefix or suffix).
func findBinary(name, pkg string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin"} {
		if p := filepath.Join(dir, name); isExec(p) {
			return p
		}
	}
	out, err := exec.Command("dpkg", "-L", pkg).Output()
	if err != nil {
		return ""
	}
	for _, p := range strings.Fields(string(out)) {
		b := filepath.Base(p)
		if (b == name || strings.HasSuffix(b, "-"+name) || strings.HasPrefix(b, name+"-")) && isExec(p) {
			return p
		}
	}
	return ""
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

// waitClosed waits until no TCP socket with port at either end is still
// connected or closing (TIME_WAIT and CLOSE do not count: the tracers have
// seen their closes), or until timeout.
func waitClosed(port int, timeout time.Duration) {
	hexPort := fmt.Sprintf(":%04X", port)
	open := func() bool {
		for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n")[1:] {
				fs := strings.Fields(line)
				if len(fs) < 4 || fs[3] == "06" || fs[3] == "07" || fs[3] == "0A" {
					continue // TIME_WAIT, CLOSE, LISTEN
				}
				if strings.HasSuffix(fs[1], hexPort) || strings.HasSuffix(fs[2], hexPort) {
					return true
				}
			}
		}
		return false
	}
	for deadline := time.Now().Add(timeout); open() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort is a port on 127.0.0.1 that was free a moment ago.
func freePort() int {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fatalf("finding a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// How a cell knows its tracer has attached.
const (
	attachStderr   = iota + 1 // a line on stderr starting with cell.marker
	attachBPFLink             // the process holds a bpf_link fd (libbpf tools)
	attachDisabled            // no tracer
)

// cell is one configuration measured in every round.
type cell struct {
	Name string
	// Kind: "max", overhead at max rate; "fixed", at the fixed rate;
	// "complete", max rate with every event to a file and BPF stats on;
	// "attrib", like complete with the loadgen as two processes.
	Kind   string
	Tracer string // "", "tuxscope", "tcplife", "tcpstates", "bpftrace"
	Rate   float64
	ToFile bool // the tracer's stdout goes to a file that is counted
	Split  bool // the loadgen's server and clients are two processes
	Stats  bool // BPF run-time statistics are on during the cell
	// args gives the tracer's arguments for the loadgen port.
	args   func(port int) []string
	env    []string
	attach int
	marker string
	// PerConn is the number of events expected per completed connection
	// (0: not known for this cell).
	PerConn float64
	// count reads the tracer's output after it stopped: events received,
	// lost events (-1: not reported in this cell), events attributed to
	// another process than the one that made that end (-1: not known).
	count func(res *result, stdout, stderr string, lr load.Result)
	// Note is shown beside the cell's command in the report.
	Note string
}

func (e *env) cells() []*cell {
	o := e.o
	var cells []*cell
	tux := func(extra ...string) func(int) []string {
		return func(port int) []string {
			return append([]string{"net", "--port", strconv.Itoa(port)}, extra...)
		}
	}
	tuxAttach := func(c *cell) *cell {
		c.Tracer, c.attach, c.marker = "tuxscope", attachStderr, "tuxscope: attached"
		return c
	}
	add := func(c *cell) { cells = append(cells, c) }
	// The peers, filtered to the loadgen's port where they can be.
	dPort := func(p int) []string { return []string{"-D", strconv.Itoa(p)} }
	bcc := func(c *cell, tool string) *cell {
		c.Tracer, c.attach, c.args = tool, attachBPFLink, dPort
		return c
	}
	bpftrace := func(c *cell, print bool) *cell {
		c.Tracer, c.attach, c.marker = "bpftrace", attachStderr, "__BPFTRACE_NOTIFY_PROBES_ATTACHED"
		c.env = []string{"__BPFTRACE_NOTIFY_PROBES_ATTACHED=1"}
		c.ToFile, c.PerConn = true, 2
		if print {
			c.args = func(p int) []string { return []string{"-e", bpftraceScript(p, true)} }
			c.count = countBpftracePrint
		} else {
			c.args = func(p int) []string { return []string{"-B", "line", "-e", bpftraceScript(p, false)} }
			c.count = countBpftraceMap
		}
		return c
	}

	add(&cell{Name: "baseline", Kind: "max", attach: attachDisabled})
	perState := map[string]float64{"client": 5, "server": 5, "reset": 3}[o.closeMode]
	add(tuxAttach(&cell{Name: "tuxscope table", Kind: "max", args: tux(), PerConn: 5,
		count: countTuxscopeTable, Note: "table to /dev/null; lost from stderr"}))
	add(tuxAttach(&cell{Name: "tuxscope json", Kind: "max", args: tux("--format", "json"), PerConn: 5,
		Note: "JSON to /dev/null (lost events are in band, so not seen here)"}))
	add(tuxAttach(&cell{Name: "tuxscope summary", Kind: "max", ToFile: true, PerConn: 5,
		args:  tux("--summary", "--format", "json", "--top", "0"),
		count: countTuxscopeSummary, Note: "--summary --format json (one line at the end, to a file)"}))
	add(tuxAttach(&cell{Name: "tuxscope table, max-delay 0", Kind: "max", args: tux("--max-delay", "0"), PerConn: 5,
		count: countTuxscopeTable, Note: "woken for every event it can be: what batching wake-ups saves"}))
	add(tuxAttach(&cell{Name: "tuxscope table, no names", Kind: "max", args: tux("--no-names"), PerConn: 5,
		count: countTuxscopeTable, Note: "without the DNS packet hooks: what hostnames cost"}))
	if o.peers {
		add(bcc(&cell{Name: "tcplife -D port", Kind: "max", PerConn: 1,
			Note: "client side only (its port filters are ANDed: no either-end filter)"}, "tcplife"))
		add(&cell{Name: "tcplife (all ports)", Kind: "max", Tracer: "tcplife", attach: attachBPFLink, PerConn: 2,
			args: func(int) []string { return nil },
			Note: "no filter: both ends, and any other TCP traffic on the host"})
		add(bcc(&cell{Name: "tcpstates -D port", Kind: "max", PerConn: perState, Note: "client side only"}, "tcpstates"))
		add(bpftrace(&cell{Name: "bpftrace count", Kind: "max",
			Note: "count() of closes (either end) in a map, printed at exit"}, false))
	}

	// Completeness: every event to a file, counted; BPF run-time stats on.
	add(tuxAttach(&cell{Name: "tuxscope json > file", Kind: "complete", ToFile: true, Stats: true, PerConn: 5,
		args: tux("--format", "json"), count: countTuxscopeJSON,
		Note: "connect + established + accept + close x2 per connection"}))
	if o.peers {
		add(bcc(&cell{Name: "tcplife -D port > file", Kind: "complete", ToFile: true, Stats: true, PerConn: 1,
			count: countHeaderLines, Note: "one line per client-side close"}, "tcplife"))
		add(bcc(&cell{Name: "tcpstates -D port > file", Kind: "complete", ToFile: true, Stats: true, PerConn: perState,
			count: countHeaderLines, Note: "one line per client-side state change"}, "tcpstates"))
		add(bpftrace(&cell{Name: "bpftrace print > file", Kind: "complete", Stats: true,
			Note: "one printf per close (either end)"}, true))
	}

	// Attribution: the loadgen as two processes, server and clients, so
	// that each end's events must name its own process.
	add(tuxAttach(&cell{Name: "tuxscope json > file, 2 procs", Kind: "attrib", ToFile: true, Split: true, PerConn: 5,
		args: tux("--format", "json"), count: countTuxscopeJSON,
		Note: "loadgen server and clients in two processes: is each end attributed to its own?"}))
	if o.peers {
		add(bcc(&cell{Name: "tcplife -D port > file, 2 procs", Kind: "attrib", ToFile: true, Split: true, PerConn: 1,
			count: countHeaderLines, Note: "its PID column against the client process"}, "tcplife"))
		add(bpftrace(&cell{Name: "bpftrace print > file, 2 procs", Kind: "attrib", Split: true,
			Note: "`pid` at each close against the process of that end"}, true))
	}

	if o.fixedRate > 0 {
		r := o.fixedRate
		add(&cell{Name: "baseline @fixed", Kind: "fixed", Rate: r, attach: attachDisabled})
		add(tuxAttach(&cell{Name: "tuxscope table @fixed", Kind: "fixed", Rate: r, args: tux(), PerConn: 5,
			count: countTuxscopeTable}))
		add(tuxAttach(&cell{Name: "tuxscope json @fixed", Kind: "fixed", Rate: r, args: tux("--format", "json"), PerConn: 5}))
		if o.peers {
			add(bcc(&cell{Name: "tcplife -D port @fixed", Kind: "fixed", Rate: r, PerConn: 1}, "tcplife"))
			add(bpftrace(&cell{Name: "bpftrace count @fixed", Kind: "fixed", Rate: r}, false))
		}
	}

	if o.cells != "" {
		var keep []*cell
		for _, c := range cells {
			if c.Tracer == "" {
				keep = append(keep, c)
				continue
			}
			for _, s := range strings.Split(o.cells, ",") {
				if s = strings.TrimSpace(s); s != "" && strings.Contains(c.Name, s) {
					keep = append(keep, c)
					break
				}
			}
		}
		cells = keep
	}
	return cells
}

// bpftraceScript counts (or prints) TCP closes at either end of the
// loadgen's port, leaving out the listener's own close.
func bpftraceScript(port int, print bool) string {
	pred := fmt.Sprintf("/args->protocol == 6 && args->newstate == 7 && args->oldstate != 10 && (args->sport == %d || args->dport == %d)/", port, port)
	action := "@closes = count();"
	if print {
		action = `printf("close %d %s %d %d\n", pid, comm, args->sport, args->dport);`
	}
	return "tracepoint:sock:inet_sock_set_state " + pred + " { " + action + " }"
}

// result is one cell in one round.
type result struct {
	Cell     *cell
	Round    int
	Position int
	Load     load.Result
	// LoadCPU is the loadgen's user+system CPU seconds (getrusage of the
	// child); the in-kernel cost of the tracers' hooks shows up here.
	LoadCPU float64
	// AttachMs is from exec to attached; NaN without a tracer.
	AttachMs float64
	// TracerCPU is the tracer's CPU seconds from just before the load to
	// when it had drained what the load produced.
	TracerCPU float64
	// TracerStartCPU is the tracer's CPU seconds up to the load.
	TracerStartCPU float64
	RSSKiB         int64 // VmHWM just before stopping; -1: n/a
	Events         int64 // -1: not counted in this cell
	Lost           int64 // -1: not reported in this cell
	Unattributed   int64 // -1: not known
	ByType         map[string]int64
	BPFRunNs       uint64 // with Stats: the tracer's programs' run time
	BPFRunCnt      uint64
	Progs          []progStat
	// TracerWrites and TracerSwitches are the tracer's write syscalls and
	// context switches over the same span as TracerCPU.
	TracerWrites, TracerSwitches float64
	OtherCPUPct                  float64 // other user-space processes' CPU during the load, % of all cores
	BusyPct                      float64 // the whole machine's busy time during the load, % of all cores (/proc/stat)
	Foreign                      int     // most other tracing BPF programs seen loaded during the load
	ForeignNames                 []string
	QuietWait                    time.Duration // waited for quiet before the cell
	Quiet                        bool          // the machine was quiet when the cell started
	Attempt                      int           // 0: first run of this cell in this round
	TimeWait                     int64         // TCP sockets in TIME_WAIT when the load started (/proc/net/sockstat)
	Messages                     []string      // the tracer's stderr, less its attached line and known noise
	Misses                       uint64        // recursion misses of the tracer's BPF programs
	StealPct                     float64       // CPU time the hypervisor took during the load, % (/proc/stat steal)
	Err                          string
}

// disturbed says whether other work on the machine got in the way.
func (r *result) disturbed(o *options) bool {
	return r.Err == "" && (r.OtherCPUPct > o.maxOther || r.Foreign > 0)
}

func (r *result) brief() string {
	if r.Err != "" {
		return "ERROR: " + r.Err
	}
	s := fmt.Sprintf("%7.0f conn/s", r.Load.Rate)
	if r.Cell.Tracer != "" {
		s += fmt.Sprintf("  tracer %.3fs cpu  attach %.0fms  rss %dKiB", r.TracerCPU, r.AttachMs, r.RSSKiB)
	}
	if r.Events >= 0 {
		s += fmt.Sprintf("  events %d/%.0f", r.Events, r.Cell.PerConn*float64(r.Load.Completed))
	}
	if r.Lost >= 0 {
		s += fmt.Sprintf("  lost %d", r.Lost)
	}
	if r.Misses > 0 {
		s += fmt.Sprintf("  bpf-recursion-misses %d", r.Misses)
	}
	if r.OtherCPUPct >= 5 {
		s += fmt.Sprintf("  (others used %.0f%% CPU)", r.OtherCPUPct)
	}
	if r.Foreign > 0 {
		s += fmt.Sprintf("  (%d other tracing BPF programs loaded)", r.Foreign)
	}
	return s
}

// runLoad runs bench/loadgen against port at rate (0: max) for d; split
// runs its server and its clients as two processes. The CPU is the
// loadgen's (both processes') user and system time.
func (e *env) runLoad(port int, rate float64, d time.Duration, split bool) (load.Result, float64, error) {
	o := e.o
	args := []string{"-port", strconv.Itoa(port), "-duration", d.String(),
		"-rate", strconv.FormatFloat(rate, 'f', -1, 64), "-concurrency", strconv.Itoa(o.concurrency),
		"-close", o.closeMode, "-payload", strconv.Itoa(o.payload)}
	var lr load.Result
	var srv *exec.Cmd
	var srvOut *bufio.Reader
	var srvErr bytes.Buffer
	if split {
		srv = exec.Command(e.loadgen, "-role", "server", "-port", strconv.Itoa(port),
			"-close", o.closeMode, "-payload", strconv.Itoa(o.payload))
		pipe, err := srv.StdoutPipe()
		if err != nil {
			return lr, 0, err
		}
		srv.Stderr = &srvErr
		if err := srv.Start(); err != nil {
			return lr, 0, err
		}
		defer func() {
			if srv.ProcessState == nil {
				srv.Process.Kill()
				srv.Wait()
			}
		}()
		srvOut = bufio.NewReader(pipe)
		if _, err := srvOut.ReadString('\n'); err != nil {
			return lr, 0, fmt.Errorf("loadgen server: %v: %s", err, strings.TrimSpace(srvErr.String()))
		}
		args = append(args, "-role", "client")
	}
	cmd := exec.Command(e.loadgen, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return lr, 0, fmt.Errorf("loadgen: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	cpu := cmd.ProcessState.UserTime().Seconds() + cmd.ProcessState.SystemTime().Seconds()
	if err := json.Unmarshal(stdout.Bytes(), &lr); err != nil {
		return lr, cpu, fmt.Errorf("loadgen output %q: %v", stdout.String(), err)
	}
	if split {
		srv.Process.Signal(syscall.SIGTERM)
		rest, _ := io.ReadAll(srvOut)
		if err := srv.Wait(); err != nil {
			return lr, cpu, fmt.Errorf("loadgen server: %v: %s", err, strings.TrimSpace(srvErr.String()))
		}
		cpu += srv.ProcessState.UserTime().Seconds() + srv.ProcessState.SystemTime().Seconds()
		var sr load.Result
		if err := json.Unmarshal(bytes.TrimSpace(rest), &sr); err != nil {
			return lr, cpu, fmt.Errorf("loadgen server output %q: %v", rest, err)
		}
		lr.ServerPID, lr.Accepted, lr.ServerErrors = sr.PID, sr.Accepted, sr.ServerErrors
	}
	return lr, cpu, nil
}

// tracerProc is a running tracer.
type tracerProc struct {
	cmd      *exec.Cmd
	started  time.Time
	attached chan time.Time
	exited   chan struct{}
	mu       sync.Mutex
	stderr   bytes.Buffer
	stdout   string // file with its stdout ("" when /dev/null)
	readDone chan struct{}
}

func (e *env) startTracer(c *cell, port int, name string) (*tracerProc, error) {
	var bin string
	switch c.Tracer {
	case "tuxscope":
		bin = e.tuxscope
	case "tcplife":
		bin = e.tcplife
	case "tcpstates":
		bin = e.tcpstates
	case "bpftrace":
		bin = e.bpftrace
	}
	t := &tracerProc{attached: make(chan time.Time, 1), exited: make(chan struct{}), readDone: make(chan struct{})}
	cmd := exec.Command(bin, c.args(port)...)
	cmd.Env = append(os.Environ(), c.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out *os.File
	var err error
	if c.ToFile {
		t.stdout = filepath.Join(e.work, name+".out")
		out, err = os.Create(t.stdout)
	} else {
		out, err = os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	}
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd.Stdout = out
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	t.cmd = cmd
	t.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		defer close(t.readDone)
		sc := bufio.NewScanner(errPipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if c.attach == attachStderr && strings.HasPrefix(line, c.marker) {
				select {
				case t.attached <- time.Now():
				default:
				}
			}
			t.mu.Lock()
			t.stderr.WriteString(line)
			t.stderr.WriteByte('\n')
			t.mu.Unlock()
		}
	}()
	go func() {
		<-t.readDone
		cmd.Wait()
		close(t.exited)
	}()
	if c.attach == attachBPFLink {
		go func() {
			for {
				select {
				case <-t.exited:
					return
				default:
				}
				if hasFD(cmd.Process.Pid, "anon_inode:bpf_link") {
					t.attached <- time.Now()
					return
				}
				time.Sleep(500 * time.Microsecond)
			}
		}()
	}
	return t, nil
}

func (t *tracerProc) stderrText() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stderr.String()
}

// stop interrupts the tracer as Ctrl-C would and waits for it.
func (t *tracerProc) stop() {
	select {
	case <-t.exited:
		return
	default:
	}
	t.cmd.Process.Signal(os.Interrupt)
	select {
	case <-t.exited:
	case <-time.After(20 * time.Second):
		t.cmd.Process.Kill()
		<-t.exited
	}
}

func (e *env) runCell(c *cell, round int) *result {
	o := e.o
	res := &result{Cell: c, Round: round, AttachMs: math.NaN(), RSSKiB: -1, Events: -1, Lost: -1, Unattributed: -1}
	res.QuietWait, res.Quiet = e.waitQuiet()
	port := freePort()
	name := fmt.Sprintf("r%d-%s", round, strings.NewReplacer(" ", "_", ">", "", "@", "", "(", "", ")", "").Replace(c.Name))

	var t *tracerProc
	var w0, s0 uint64
	if c.Tracer != "" {
		if c.Stats {
			closer, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
			if err != nil {
				res.Err = fmt.Sprintf("enabling BPF stats: %v", err)
				return res
			}
			defer closer.Close()
		}
		var err error
		t, err = e.startTracer(c, port, name)
		if err != nil {
			res.Err = err.Error()
			return res
		}
		defer t.stop()
		select {
		case at := <-t.attached:
			res.AttachMs = float64(at.Sub(t.started).Microseconds()) / 1000
		case <-t.exited:
			res.Err = "tracer exited before attaching: " + lastLines(t.stderrText(), 3)
			return res
		case <-time.After(60 * time.Second):
			res.Err = "tracer did not attach within 60s"
			return res
		}
		time.Sleep(o.settle)
		res.TracerStartCPU = cpuSeconds(t.cmd.Process.Pid)
		w0, s0 = procCounters(t.cmd.Process.Pid)
	}

	exclude := map[int]bool{os.Getpid(): true, os.Getppid(): true}
	ours := map[ebpf.ProgramID]bool{}
	if t != nil {
		exclude[t.cmd.Process.Pid] = true
		for _, id := range progIDs(t.cmd.Process.Pid) {
			ours[id] = true
		}
	}
	// Look for other tracing programs every 250ms while the load runs.
	sampled := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampled)
		seen := map[string]bool{}
		for {
			n, names := foreignProgs(ours)
			res.Foreign = max(res.Foreign, n)
			for _, nm := range names {
				if !seen[nm] {
					seen[nm] = true
					res.ForeignNames = append(res.ForeignNames, nm)
				}
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	res.TimeWait = timeWaitSockets()
	before, busy0 := procTimes(), cpuBusy()
	loadStart := time.Now()
	lr, loadCPU, err := e.runLoad(port, c.Rate, o.duration, c.Split)
	window := time.Since(loadStart)
	after, busy1 := procTimes(), cpuBusy()
	close(stopSampling)
	<-sampled
	exclude[lr.PID] = true
	exclude[lr.ServerPID] = true
	res.OtherCPUPct = otherCPU(before, after, exclude) / (window.Seconds() * float64(runtime.NumCPU())) * 100
	res.BusyPct = busy1.since(busy0)
	res.StealPct = busy1.stealSince(busy0)
	res.Load, res.LoadCPU = lr, loadCPU
	if err != nil {
		res.Err = err.Error()
		return res
	}
	if t == nil {
		return res
	}

	// Connections the loadgen counted as done may still be closing: a
	// final ACK lost on a busy loopback is retransmitted after 200ms or
	// more, and that close comes after. Wait for them (at most 5s).
	waitClosed(port, 5*time.Second)

	// Let the tracer drain what the load produced: until its CPU time
	// stops growing (under 1ms in 100ms), at most 10s.
	pid := t.cmd.Process.Pid
	prev := cpuSeconds(pid)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		now := cpuSeconds(pid)
		if now-prev < 0.001 {
			break
		}
		prev = now
	}
	res.TracerCPU = cpuSeconds(pid) - res.TracerStartCPU
	w1, s1 := procCounters(pid)
	res.TracerWrites, res.TracerSwitches = float64(w1-w0), float64(s1-s0)
	res.RSSKiB = vmHWM(pid)
	res.Progs = progStats(pid)
	for _, ps := range res.Progs {
		res.BPFRunNs += ps.Ns
		res.BPFRunCnt += ps.Cnt
		res.Misses += ps.Misses
	}
	t.stop()
	stderr := t.stderrText()
	os.WriteFile(filepath.Join(e.work, name+".err"), []byte(stderr), 0o644)
	for _, line := range strings.Split(stderr, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, c.marker) &&
			!strings.HasPrefix(line, "Attaching ") && !strings.Contains(line, "RLIMIT_MEMLOCK") {
			res.Messages = append(res.Messages, line)
		}
	}
	if c.count != nil {
		c.count(res, t.stdout, t.stderrText(), lr)
	}
	if res.Lost < 0 {
		// libbpf-tools and bpftrace report perf buffer losses on stderr.
		if n, ok := peerLost(t.stderrText()); ok || c.Tracer != "tuxscope" {
			res.Lost = n
		}
	}
	if !c.ToFile && c.Tracer != "tuxscope" && res.Lost < 0 {
		res.Lost = 0
	}
	if !t.cmd.ProcessState.Success() && !(c.Tracer == "bpftrace") {
		res.Err = fmt.Sprintf("tracer exited with %v: %s", t.cmd.ProcessState, lastLines(t.stderrText(), 2))
	}
	return res
}

// waitQuiet waits, within -quiet-wait and what is left of -quiet-budget,
// until other user-space processes use under -quiet-cpu and no other
// tracing BPF program is loaded; it says how long it waited and whether
// the machine was quiet in the end.
func (e *env) waitQuiet() (time.Duration, bool) {
	const sample = 500 * time.Millisecond
	start := time.Now()
	limit := min(e.o.quietWait, e.quietLeft)
	exclude := map[int]bool{os.Getpid(): true, os.Getppid(): true}
	logged := false
	for {
		before := procTimes()
		time.Sleep(sample)
		pct := otherCPU(before, procTimes(), exclude) / (sample.Seconds() * float64(runtime.NumCPU())) * 100
		n, names := foreignProgs(nil)
		waited := time.Since(start)
		quiet := pct < e.o.quietCPU && n == 0
		if quiet || waited >= limit {
			// The first sample is part of every cell; only waiting beyond
			// it is charged to the budget.
			e.quietLeft -= min(max(0, waited-sample), e.quietLeft)
			if !quiet {
				logf("machine still busy (others %.0f%% CPU, other tracing BPF programs: %d %v); going on after %s",
					pct, n, names, waited.Round(100*time.Millisecond))
			}
			return waited, quiet
		}
		if !logged {
			logf("waiting for a quiet machine (others %.0f%% CPU, other tracing BPF programs: %d %v)", pct, n, names)
			logged = true
		}
	}
}

// progIDs are the BPF programs a process holds.
func progIDs(pid int) []ebpf.ProgramID {
	var ids []ebpf.ProgramID
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range ents {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); err != nil || l != "anon_inode:bpf-prog" {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "prog_id:" {
				if v, err := strconv.ParseUint(f[1], 10, 32); err == nil {
					ids = append(ids, ebpf.ProgramID(v))
				}
			}
		}
	}
	return ids
}

// foreignProgs counts the loaded tracing BPF programs (tracepoint, raw
// tracepoint, fentry/fexit, kprobe, perf event) that are not ours: another
// tracer's hooks on the same kernel paths would slow every cell.
func foreignProgs(ours map[ebpf.ProgramID]bool) (int, []string) {
	var (
		id    ebpf.ProgramID
		n     int
		names []string
	)
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			break
		}
		id = next
		if ours[id] {
			continue
		}
		prog, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		info, err := prog.Info()
		prog.Close()
		if err != nil {
			continue
		}
		switch info.Type {
		case ebpf.TracePoint, ebpf.RawTracepoint, ebpf.RawTracepointWritable, ebpf.Tracing, ebpf.Kprobe, ebpf.PerfEvent:
			n++
			names = append(names, info.Name)
		}
	}
	return n, names
}

// timeWaitSockets is the "tw" count of /proc/net/sockstat.
func timeWaitSockets() int64 {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "TCP:") {
			continue
		}
		f := strings.Fields(line)
		for i := 1; i+1 < len(f); i++ {
			if f[i] == "tw" {
				n, _ := strconv.ParseInt(f[i+1], 10, 64)
				return n
			}
		}
	}
	return -1
}

// busy is /proc/stat's first line: busy and total ticks of all CPUs.
type busy struct{ busy, steal, total uint64 }

func cpuBusy() busy {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return busy{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var x busy
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i >= 8 { // guest and guest_nice are already in user and nice
			break
		}
		x.total += n
		if i != 3 && i != 4 { // idle, iowait
			x.busy += n
		}
		if i == 7 {
			x.steal = n
		}
	}
	return x
}

// stealSince is the share of time the hypervisor ran something else
// instead of this machine's CPUs, in %.
func (b busy) stealSince(a busy) float64 {
	if b.total <= a.total {
		return math.NaN()
	}
	return float64(b.steal-a.steal) / float64(b.total-a.total) * 100
}

func (b busy) since(a busy) float64 {
	if b.total <= a.total {
		return math.NaN()
	}
	return float64(b.busy-a.busy) / float64(b.total-a.total) * 100
}

// cpuSeconds is a process's CPU time so far, all live threads, from
// schedstat (ns resolution); /proc/PID/stat's utime+stime (10ms ticks,
// including exited threads) if that is larger.
func cpuSeconds(pid int) float64 {
	var ns uint64
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, task.Name()))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			v, _ := strconv.ParseUint(f[0], 10, 64)
			ns += v
		}
	}
	s := float64(ns) / 1e9
	if st, ok := readStat(pid); ok {
		s = math.Max(s, float64(st.ticks)/100)
	}
	return s
}

type procTime struct {
	start   uint64
	ticks   uint64
	kthread bool
}

// readStat reads utime+stime (in USER_HZ ticks, 100 on Linux), the start
// time and the kernel-thread flag from /proc/PID/stat.
func readStat(pid int) (procTime, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procTime{}, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procTime{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return procTime{}, false
	}
	num := func(k int) uint64 { v, _ := strconv.ParseUint(f[k], 10, 64); return v }
	// f[0] is field 3 (state): flags is field 9, utime 14, stime 15, starttime 22.
	const pfKthread = 0x00200000
	return procTime{start: num(19), ticks: num(11) + num(12), kthread: num(6)&pfKthread != 0}, true
}

func procTimes() map[int]procTime {
	m := map[int]procTime{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok {
			m[pid] = st
		}
	}
	return m
}

// otherCPU is the CPU seconds user-space processes other than exclude used
// between two snapshots (kernel threads are left out: loopback softirq work
// runs in them too).
func otherCPU(before, after map[int]procTime, exclude map[int]bool) float64 {
	var ticks uint64
	for pid, a := range after {
		if exclude[pid] || a.kthread {
			continue
		}
		if b, ok := before[pid]; ok && b.start == a.start {
			if a.ticks > b.ticks {
				ticks += a.ticks - b.ticks
			}
		} else {
			ticks += a.ticks
		}
	}
	return float64(ticks) / 100
}

func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				return v
			}
		}
	}
	return -1
}

func hasFD(pid int, target string) bool {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return false
	}
	for _, e := range ents {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); err == nil && l == target {
			return true
		}
	}
	return false
}

// progStat is one BPF program's run-time statistics.
type progStat struct {
	Name    string
	Ns, Cnt uint64
	// Misses counts the times the kernel skipped the program because
	// another tracing program was already running on that CPU (fdinfo's
	// recursion_misses): events lost without the tracer knowing.
	Misses uint64
}

// progStats reads run_time_ns and run_cnt of the BPF programs the process
// holds (their fdinfo has them while BPF stats are on), with their names.
func progStats(pid int) []progStat {
	var out []progStat
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range ents {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); err != nil || l != "anon_inode:bpf-prog" {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		if err != nil {
			continue
		}
		var ps progStat
		var id uint64
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) != 2 {
				continue
			}
			v, _ := strconv.ParseUint(f[1], 10, 64)
			switch f[0] {
			case "run_time_ns:":
				ps.Ns = v
			case "run_cnt:":
				ps.Cnt = v
			case "prog_id:":
				id = v
			case "recursion_misses:":
				ps.Misses = v
			}
		}
		ps.Name = fmt.Sprintf("id %d", id)
		if prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(id)); err == nil {
			if info, err := prog.Info(); err == nil && info.Name != "" {
				ps.Name = info.Name
			}
			prog.Close()
		}
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// procCounters reads a process's write syscalls (/proc/PID/io syscw, all
// threads, dead ones included) and context switches (voluntary and not,
// summed over its live threads).
func procCounters(pid int) (writes, switches uint64) {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "syscw: "); ok {
				writes, _ = strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			}
		}
	}
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
				n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
				switches += n
			}
		}
	}
	return writes, switches
}

// peerLost sums "lost N events" (libbpf-tools: "lost N events on CPU #M";
// bpftrace: "Lost N events") on stderr.
func peerLost(stderr string) (int64, bool) {
	var n int64
	found := false
	for _, line := range strings.Split(stderr, "\n") {
		f := strings.Fields(strings.ToLower(line))
		for i := 0; i+2 < len(f); i++ {
			if f[i] == "lost" && f[i+2] == "events" {
				if v, err := strconv.ParseInt(f[i+1], 10, 64); err == nil {
					n += v
					found = true
				}
			}
		}
	}
	return n, found
}

// countTuxscopeTable reads lost events from table mode's stderr lines.
func countTuxscopeTable(res *result, _, stderr string, _ load.Result) {
	res.Lost = 0
	for _, line := range strings.Split(stderr, "\n") {
		var n int64
		if _, err := fmt.Sscanf(line, "tuxscope: lost %d events", &n); err == nil {
			res.Lost += n
		}
	}
}

// wantPID is the process that made one end of the loadgen's connections:
// the client's for outbound events, the server's for inbound ones (the same
// process unless the cell splits the loadgen in two).
func wantPID(lr load.Result, inbound bool) int {
	if inbound && lr.ServerPID != 0 {
		return lr.ServerPID
	}
	return lr.PID
}

// countTuxscopeJSON counts the events of a --format json file by type,
// the in-band lost records, and events attributed to another process than
// the one that made that end.
func countTuxscopeJSON(res *result, stdout, _ string, lr load.Result) {
	f, err := os.Open(stdout)
	if err != nil {
		res.Err = err.Error()
		return
	}
	defer f.Close()
	res.Events, res.Lost, res.Unattributed = 0, 0, 0
	res.ByType = map[string]int64{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var ev struct {
		Type      string `json:"event_type"`
		PID       int    `json:"pid"`
		Count     int64  `json:"count"`
		Direction string `json:"direction"`
	}
	for sc.Scan() {
		ev.Type, ev.PID, ev.Count, ev.Direction = "", 0, 0, ""
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			res.ByType["(malformed)"]++
			continue
		}
		if ev.Type == "lost" {
			res.Lost += ev.Count
			continue
		}
		res.Events++
		res.ByType[ev.Type]++
		if ev.PID != wantPID(lr, ev.Direction == "inbound") {
			res.Unattributed++
			res.ByType[ev.Type+" (other pid)"]++
		}
	}
}

// countTuxscopeSummary reads the one JSON summary: its counts, its lost.
func countTuxscopeSummary(res *result, stdout, _ string, lr load.Result) {
	b, err := os.ReadFile(stdout)
	if err != nil {
		res.Err = err.Error()
		return
	}
	var s struct {
		Lost      int64 `json:"lost"`
		Processes []struct {
			PID   int `json:"pid"`
			Peers []struct {
				Direction                                        string
				Connects, Accepts, Established, Failures, Closes int64
			} `json:"peers"`
		} `json:"processes"`
	}
	res.Events, res.Lost, res.Unattributed = 0, 0, 0
	res.ByType = map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			res.Err = fmt.Sprintf("summary: %v", err)
			return
		}
		res.Lost += s.Lost
		for _, p := range s.Processes {
			for _, peer := range p.Peers {
				n := peer.Connects + peer.Accepts + peer.Established + peer.Failures + peer.Closes
				res.Events += n
				res.ByType["connect"] += peer.Connects
				res.ByType["accept"] += peer.Accepts
				res.ByType["established"] += peer.Established
				res.ByType["failed"] += peer.Failures
				res.ByType["close"] += peer.Closes
				if p.PID != wantPID(lr, peer.Direction == "in" || peer.Direction == "inbound") {
					res.Unattributed += n
				}
			}
		}
	}
}

// countHeaderLines counts a libbpf tool's output lines after its header,
// and (with -D PORT: every line is the client end's) lines whose PID is not
// the client's. tcplife prints the PID first, tcpstates second.
func countHeaderLines(res *result, stdout, _ string, lr load.Result) {
	b, err := os.ReadFile(stdout)
	if err != nil {
		res.Err = err.Error()
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	res.Events, res.Unattributed = 0, 0
	pidField := 0
	for i, l := range lines {
		if i == 0 && (strings.HasPrefix(l, "PID") || strings.HasPrefix(l, "SKADDR")) {
			if strings.HasPrefix(l, "SKADDR") {
				pidField = 1
			}
			continue
		}
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		res.Events++
		if len(f) > pidField {
			if pid, _ := strconv.Atoi(f[pidField]); pid != wantPID(lr, false) {
				res.Unattributed++
			}
		}
	}
}

// countBpftraceMap reads "@closes: N" from bpftrace's exit output.
func countBpftraceMap(res *result, stdout, _ string, _ load.Result) {
	b, err := os.ReadFile(stdout)
	if err != nil {
		res.Err = err.Error()
		return
	}
	res.Events = 0
	for _, line := range strings.Split(string(b), "\n") {
		var n int64
		if _, err := fmt.Sscanf(line, "@closes: %d", &n); err == nil {
			res.Events = n
		}
	}
}

// countBpftracePrint counts bpftrace's "close PID COMM SPORT DPORT" lines;
// a close whose local port is the server's is the server end's.
func countBpftracePrint(res *result, stdout, _ string, lr load.Result) {
	f, err := os.Open(stdout)
	if err != nil {
		res.Err = err.Error()
		return
	}
	defer f.Close()
	res.Events, res.Unattributed = 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) == 5 && fl[0] == "close" {
			res.Events++
			pid, _ := strconv.Atoi(fl[1])
			if pid != wantPID(lr, fl[3] == strconv.Itoa(lr.Port)) {
				res.Unattributed++
			}
		}
	}
}

// machine is where and how the run happened.
type machine struct {
	CPUs    int
	Model   string
	Kernel  string
	Date    time.Time
	Commit  string
	Command string
	Go      string
	Load    string
	Nice    int
	Elapsed time.Duration
}

func machineInfo(repo string) machine {
	m := machine{CPUs: runtime.NumCPU(), Date: time.Now().UTC()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				if i := strings.IndexByte(line, ':'); i >= 0 {
					m.Model = strings.TrimSpace(line[i+1:])
					break
				}
			}
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if out, err := exec.Command("git", "-C", repo, "rev-parse", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "-C", repo, "status", "--porcelain").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
			m.Commit += " (with uncommitted changes in the work tree)"
		}
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.Go = strings.TrimSpace(string(out))
	}
	if prio, err := unix.Getpriority(unix.PRIO_PROCESS, 0); err == nil {
		m.Nice = 20 - prio // the raw syscall returns 20 - nice
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.Load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return m
}

// ---- report ----

// report is the run's results, ready to render.
type report struct {
	o       *options
	m       machine
	cells   []*cell
	results map[*cell][]*result // in round order, without errored runs
	errors  []*result
	redone  []*result // disturbed runs that were run again
	micro   string
}

func buildReport(o *options, m machine, cells []*cell, results []*result, micro string) *report {
	r := &report{o: o, m: m, cells: cells, results: map[*cell][]*result{}, micro: micro}
	for _, res := range results {
		if res.Err != "" {
			r.errors = append(r.errors, res)
			continue
		}
		r.results[res.Cell] = append(r.results[res.Cell], res)
	}
	return r
}

// vals collects f over a cell's runs, leaving out NaN.
func (r *report) vals(c *cell, f func(*result) float64) []float64 {
	var v []float64
	for _, res := range r.results[c] {
		if x := f(res); !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	return v
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

func minMax(v []float64) (float64, float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, x := range v {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	return lo, hi
}

func (r *report) cell(name string) *cell {
	for _, c := range r.cells {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (r *report) baseline(kind string) *cell {
	switch kind {
	case "fixed":
		return r.cell("baseline @fixed")
	case "attrib": // a different load: two processes
		return nil
	}
	return r.cell("baseline")
}

func rate(res *result) float64 { return res.Load.Rate }

// per1k is a quantity per 1,000 completed connections.
func per1k(x float64, res *result) float64 {
	if res.Load.Completed == 0 {
		return math.NaN()
	}
	return x / float64(res.Load.Completed) * 1000
}

func tracerCPUPer1k(res *result) float64 { return per1k(res.TracerCPU, res) }
func loadCPUPer1k(res *result) float64   { return per1k(res.LoadCPU, res) }

// ratio is a cell's median rate over its baseline's median rate.
func (r *report) ratio(c *cell) float64 {
	b := r.baseline(c.Kind)
	if c.Kind == "complete" {
		b = r.baseline("max")
	}
	if b == nil {
		return math.NaN()
	}
	return median(r.vals(c, rate)) / median(r.vals(b, rate))
}

func f1(x float64) string {
	if math.IsNaN(x) {
		return "n/a"
	}
	return strconv.FormatFloat(x, 'f', 1, 64)
}

func f3(x float64) string {
	if math.IsNaN(x) {
		return "n/a"
	}
	return strconv.FormatFloat(x, 'f', 3, 64)
}

func f0(x float64) string {
	if math.IsNaN(x) {
		return "n/a"
	}
	return strconv.FormatFloat(x, 'f', 0, 64)
}

func (r *report) tracerCells(kinds ...string) []*cell {
	var out []*cell
	for _, c := range r.cells {
		for _, k := range kinds {
			if c.Kind == k && len(r.results[c]) > 0 {
				out = append(out, c)
			}
		}
	}
	return out
}

func (r *report) commandOf(c *cell) string {
	if c.Tracer == "" {
		return "(no tracer)"
	}
	args := c.args(0)
	for i, a := range args {
		if a == "0" && i > 0 && (args[i-1] == "--port" || args[i-1] == "-D") {
			args[i] = "PORT"
		}
		if strings.Contains(a, " ") {
			args[i] = "'" + strings.ReplaceAll(a, "== 0", "== PORT") + "'"
		}
	}
	out := "> /dev/null"
	if c.ToFile {
		out = "> FILE"
	}
	bin := map[string]string{"tuxscope": "tuxscope", "tcplife": "tcplife", "tcpstates": "tcpstates", "bpftrace": "bpftrace"}[c.Tracer]
	return strings.Join(append(append([]string{bin}, args...), out), " ")
}

func (r *report) markdown() string {
	o, m := r.o, r.m
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	p("# Benchmarks: tuxscope and its peers under connection churn\n\n")
	p("Written by `bench/run` (`make bench-compare`) from one run on the machine below; every figure is a measurement of that run, none is edited by hand. Run it again to refresh this page and `benchmarks.png`.\n\n")
	p("| | |\n|---|---|\n")
	p("| machine | %d CPUs, %s |\n", m.CPUs, m.Model)
	p("| kernel | %s |\n", m.Kernel)
	p("| date | %s |\n", m.Date.Format("2006-01-02 15:04 MST"))
	p("| tuxscope commit | %s |\n", m.Commit)
	p("| Go | %s |\n", m.Go)
	p("| command | `%s` |\n", m.Command)
	closeNote := map[string]string{
		"server": "the server closes first, so the client's ports are freed at once instead of piling up in TIME_WAIT over the run",
		"client": "the client closes first, leaving its ports in TIME_WAIT",
		"reset":  "the client resets (SO_LINGER 0)",
	}[o.closeMode]
	p("| load | `bench/loadgen`, one process holding the 127.0.0.1 server and %d clients; close pattern `%s` (%s); %d bytes each way per connection; %s per cell; fixed-rate cells at %s connections/s |\n",
		o.concurrency, o.closeMode, closeNote, o.payload, o.duration, f0(o.fixedRate))
	p("| schedule | %d rounds; each round runs every cell once, the order rotated by %d cells each round; a %s unrecorded warm-up first |\n",
		o.rounds, max(1, len(r.cells)/o.rounds), o.warmup)
	p("| load average at start | %s |\n", m.Load)
	p("| nice of the runner, the loadgen and the tracers | %d |\n", m.Nice)
	p("| run time | %s, micro-benchmarks included |\n\n", m.Elapsed.Round(time.Second))

	p("![throughput and CPU per cell](benchmarks.png)\n\n")

	r.targets(&b)

	p("## Cells\n\n")
	p("Every tracer is filtered to the loadgen's port where it can be, so that only benchmark traffic is counted (tuxscope's `--port` runs in the kernel: other ports cost no ring-buffer traffic).\n\n")
	p("| cell | kind | command | note |\n|---|---|---|---|\n")
	for _, c := range r.cells {
		kind := map[string]string{"max": "max rate, overhead", "fixed": "fixed rate", "complete": "max rate, every event to a file, BPF stats on",
			"attrib": "max rate, loadgen as two processes (server, clients), every event to a file"}[c.Kind]
		p("| %s | %s | `%s` | %s |\n", c.Name, kind, r.commandOf(c), c.Note)
	}
	p("\n")

	// Throughput.
	p("## Throughput\n\n")
	p("Connections/s completed by the loadgen (each: connect, %d bytes each way, close), per round, and the median's ratio to the baseline's median (max-rate and file cells against `baseline`, fixed-rate cells against `baseline @fixed`; the \"2 procs\" cells run a different load, two processes, and have no baseline).\n\n", o.payload)
	p("| cell | conn/s per round | median | × baseline | failed connections | late starts (fixed rate) |\n|---|---|---|---|---|---|\n")
	for _, c := range r.cells {
		rs := r.results[c]
		if len(rs) == 0 {
			continue
		}
		var per []string
		var failed, late uint64
		for _, res := range rs {
			per = append(per, f0(res.Load.Rate))
			failed += res.Load.Failed
			late += res.Load.Late
		}
		lateS := "–"
		if c.Kind == "fixed" {
			lateS = strconv.FormatUint(late, 10)
		}
		p("| %s | %s | %s | %s | %d | %s |\n", c.Name, strings.Join(per, ", "), f0(median(r.vals(c, rate))), f3(r.ratio(c)), failed, lateS)
	}
	p("\n")

	// Completeness.
	p("## Events received and lost\n\n")
	p("Summed over the rounds. Expected: per completed connection, tuxscope 5 (connect, established, accept, and a close at each end), `tcplife -D` 1 (the client end's close), `tcpstates -D` %s (the client end's state changes with close pattern `%s`), the bpftrace script 2 (a close at each end). \"Other pid\" counts events attributed to a process other than the one that made that end of the connection: the loadgen's single process, or, in the \"2 procs\" cells, the client process for outbound events and the client end's close, the server process for accepts and the server end's close. n/a: the cell's output goes to /dev/null, or the tool does not report it.\n\n",
		f0(map[string]float64{"client": 5, "server": 5, "reset": 3}[o.closeMode]), o.closeMode)
	p("\"BPF recursion misses\" are the times the kernel skipped one of the tracer's programs because another tracing BPF program was already running on that CPU (e.g. a softirq's TCP state change arriving while a syscall tracepoint program ran): each is an event lost without the tracer knowing, so it is in no tool's lost count (fdinfo `recursion_misses`, read just before the tracer stopped).\n\n")
	p("| cell | connections | events received | expected | received / expected | lost | BPF recursion misses | other pid | by type |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range r.cells {
		rs := r.results[c]
		if len(rs) == 0 || c.Tracer == "" {
			continue
		}
		var conns uint64
		var events, lost, other int64 = 0, 0, 0
		var misses uint64
		evKnown, lostKnown, otherKnown := true, true, true
		byType := map[string]int64{}
		for _, res := range rs {
			conns += res.Load.Completed
			misses += res.Misses
			if res.Events < 0 {
				evKnown = false
			}
			events += res.Events
			if res.Lost < 0 {
				lostKnown = false
			}
			lost += res.Lost
			if res.Unattributed < 0 {
				otherKnown = false
			}
			other += res.Unattributed
			for k, v := range res.ByType {
				byType[k] += v
			}
		}
		ev, exp, frac, ls, ot := "n/a", "n/a", "n/a", "n/a", "n/a"
		if evKnown {
			ev = strconv.FormatInt(events, 10)
			if c.PerConn > 0 {
				e := c.PerConn * float64(conns)
				exp = f0(e)
				frac = strconv.FormatFloat(float64(events)/e, 'f', 4, 64)
			}
		}
		if lostKnown {
			ls = strconv.FormatInt(lost, 10)
		}
		if otherKnown {
			ot = strconv.FormatInt(other, 10)
		}
		var types []string
		for k := range byType {
			types = append(types, k)
		}
		sort.Strings(types)
		var tl []string
		for _, k := range types {
			if byType[k] != 0 || !strings.Contains(k, "(") {
				tl = append(tl, fmt.Sprintf("%s %d", k, byType[k]))
			}
		}
		p("| %s | %d | %s | %s | %s | %s | %d | %s | %s |\n", c.Name, conns, ev, exp, frac, ls, misses, ot, strings.Join(tl, ", "))
	}
	p("\n")

	// CPU.
	p("## CPU per 1,000 connections\n\n")
	p("Tracer: the tracer process's CPU time (user + system, all its threads: /proc/PID/task/*/schedstat, or /proc/PID/stat's utime+stime if larger) from just before the load until it had drained the load's events, per 1,000 completed connections. Its BPF programs run in the context of the traced process and of softirqs, not in the tracer, so that cost is in the loadgen's column (getrusage of the loadgen child) and, where BPF statistics were on, measured directly (`run_time_ns` of the tracer's programs, which includes every other TCP state change and connect() on the host while it ran).\n\n")
	p("Tracer µs per output event divides the tracer's CPU by the events it writes per connection (the expected count above; bpftrace's count() writes none, so it is left out): tuxscope writes 5 events per connection where `tcplife -D` writes 1.\n\n")
	p("| cell | tracer CPU ms / 1k conns, median (min–max) | tracer µs / output event | loadgen CPU ms / 1k conns, median | loadgen CPU vs its baseline |\n|---|---|---|---|---|\n")
	for _, c := range r.cells {
		rs := r.results[c]
		if len(rs) == 0 {
			continue
		}
		tc := r.vals(c, tracerCPUPer1k)
		lc := median(r.vals(c, loadCPUPer1k))
		tcs := "–"
		if c.Tracer != "" {
			lo, hi := minMax(tc)
			tcs = fmt.Sprintf("%s (%s–%s)", f1(median(tc)*1000), f1(lo*1000), f1(hi*1000))
		}
		vs := "–"
		if bc := r.baseline(c.Kind); c.Kind == "complete" || c.Tracer != "" {
			if c.Kind == "complete" {
				bc = r.baseline("max")
			}
			if bc != nil {
				vs = fmt.Sprintf("%+.1f%%", (lc/median(r.vals(bc, loadCPUPer1k))-1)*100)
			}
		}
		perEv := "–"
		if c.Tracer != "" && c.PerConn > 0 && !strings.HasPrefix(c.Name, "bpftrace count") {
			perEv = f1(median(tc) * 1000 / c.PerConn)
		}
		p("| %s | %s | %s | %s | %s |\n", c.Name, tcs, perEv, f1(lc*1000), vs)
	}
	p("\n")

	p("### Where the tracer's time goes\n\n")
	p("Per completed connection, medians over the rounds: the tracer process's write system calls (/proc/PID/io `syscw`) and context switches (voluntary and involuntary, all threads), over the same span as its CPU time; and, in the cells with BPF statistics on, the run time and run count of its BPF programs (`run_time_ns`, `run_cnt` in their fdinfo; this includes waking the reader, every other TCP state change and connect()/accept() on the host while the tracer ran, and, on a preemptible kernel, any time a program was preempted).\n\n")
	p("| cell | tracer writes / conn | tracer context switches / conn | BPF ns / conn | BPF runs / conn |\n|---|---|---|---|---|\n")
	for _, c := range r.cells {
		if c.Tracer == "" || len(r.results[c]) == 0 {
			continue
		}
		writes := median(r.vals(c, func(res *result) float64 { return per1k(res.TracerWrites, res) / 1000 }))
		sw := median(r.vals(c, func(res *result) float64 { return per1k(res.TracerSwitches, res) / 1000 }))
		bpfNs, bpfCnt := "n/a", "n/a"
		if c.Stats {
			bpfNs = f0(median(r.vals(c, func(res *result) float64 {
				return per1k(float64(res.BPFRunNs), res) / 1000
			})))
			bpfCnt = f1(median(r.vals(c, func(res *result) float64 {
				return per1k(float64(res.BPFRunCnt), res) / 1000
			})))
		}
		p("| %s | %s | %s | %s | %s |\n", c.Name, f3(writes), f3(sw), bpfNs, bpfCnt)
	}
	p("\n")

	p("BPF programs one by one (cells with BPF statistics on; run time and runs summed over the rounds, divided by the connections of those rounds):\n\n")
	p("| cell | program | runs / conn | ns / run | ns / conn |\n|---|---|---|---|---|\n")
	for _, c := range r.cells {
		if !c.Stats || len(r.results[c]) == 0 {
			continue
		}
		type agg struct{ ns, cnt uint64 }
		sums := map[string]*agg{}
		var names []string
		var conns uint64
		for _, res := range r.results[c] {
			conns += res.Load.Completed
			for _, ps := range res.Progs {
				a := sums[ps.Name]
				if a == nil {
					a = &agg{}
					sums[ps.Name] = a
					names = append(names, ps.Name)
				}
				a.ns += ps.Ns
				a.cnt += ps.Cnt
			}
		}
		sort.Strings(names)
		for _, n := range names {
			a := sums[n]
			perRun := math.NaN()
			if a.cnt > 0 {
				perRun = float64(a.ns) / float64(a.cnt)
			}
			p("| %s | `%s` | %s | %s | %s |\n", c.Name, n, f3(float64(a.cnt)/float64(conns)), f0(perRun), f0(float64(a.ns)/float64(conns)))
		}
	}
	p("\n")

	// RSS.
	p("## Peak memory\n\n")
	p("VmHWM of the tracer process (/proc/PID/status) just before it was stopped.\n\n")
	p("| cell | peak RSS MiB, median | max |\n|---|---|---|\n")
	for _, c := range r.cells {
		if c.Tracer == "" || len(r.results[c]) == 0 {
			continue
		}
		v := r.vals(c, func(res *result) float64 {
			if res.RSSKiB < 0 {
				return math.NaN()
			}
			return float64(res.RSSKiB) / 1024
		})
		_, hi := minMax(v)
		p("| %s | %s | %s |\n", c.Name, f1(median(v)), f1(hi))
	}
	p("\n")

	// Attach.
	p("## Start to attached\n\n")
	p("From exec to: tuxscope's `tuxscope: attached` line on stderr; bpftrace's `__BPFTRACE_NOTIFY_PROBES_ATTACHED` line on stderr (printed after it attached its probes, when that variable is set); for the libbpf tools, which print nothing on attaching (their header goes to a block-buffered stdout), the first `bpf_link` file descriptor seen in /proc/PID/fd, polled every 0.5 ms. Every start in every round counts.\n\n")
	p("| tracer | starts | median ms | min–max ms |\n|---|---|---|---|\n")
	for _, tr := range []string{"tuxscope", "tcplife", "tcpstates", "bpftrace"} {
		var v []float64
		for _, c := range r.cells {
			if c.Tracer == tr {
				v = append(v, r.vals(c, func(res *result) float64 { return res.AttachMs })...)
			}
		}
		if len(v) == 0 {
			continue
		}
		lo, hi := minMax(v)
		p("| %s | %d | %s | %s–%s |\n", tr, len(v), f1(median(v)), f1(lo), f1(hi))
	}
	p("\n")

	// Noise.
	p("## Other load on the machine\n\n")
	p("Other processes: CPU used by user-space processes other than the runner, the loadgen and the tracer (kernel threads left out) while each cell's load ran, in %% of all %d CPUs. Machine busy: all CPUs' busy time in that window (/proc/stat), everything included. Steal: the time the hypervisor gave this virtual machine's CPUs to something else in that window (/proc/stat `steal`), which slows everything and shows in no process. Other tracing BPF programs: the most tracepoint, kprobe, fentry or perf-event programs not belonging to the cell's tracer seen loaded during the load (sampled every 250 ms), e.g. another tuxscope from a test run; they slow every connection. Before each cell the runner waited (up to -quiet-wait, within -quiet-budget) for other processes under %s%% and no such programs. A run during which other processes used more than %s%% or another tracing BPF program was loaded counts as disturbed and was run again, up to %d times (at most %d such re-runs in the whole run); the last attempt is the one kept, so a cell can still show a disturbed run here. Cells with much here were measured on a busy machine: their throughput and CPU figures are less trustworthy. TIME_WAIT: TCP sockets in TIME_WAIT on the host when the load started (/proc/net/sockstat), which make connect()'s port search slower as they pile up.\n\n", m.CPUs, f0(r.o.quietCPU), f0(r.o.maxOther), r.o.retries, r.o.retryBudget)
	p("| cell | other processes %%, median (max) | machine busy %%, median | steal %%, median (max) | other tracing BPF programs, max (names) | started on a busy machine | disturbed runs redone | TIME_WAIT at start, median |\n|---|---|---|---|---|---|---|---|\n")
	for _, c := range r.cells {
		rs := r.results[c]
		if len(rs) == 0 {
			continue
		}
		v := r.vals(c, func(res *result) float64 { return res.OtherCPUPct })
		_, hi := minMax(v)
		foreign, busyStarts := 0, 0
		names := map[string]bool{}
		for _, res := range rs {
			foreign = max(foreign, res.Foreign)
			for _, n := range res.ForeignNames {
				names[n] = true
			}
			if !res.Quiet {
				busyStarts++
			}
		}
		var nl []string
		for n := range names {
			nl = append(nl, n)
		}
		sort.Strings(nl)
		fs := strconv.Itoa(foreign)
		if len(nl) > 0 {
			fs += " (" + strings.Join(nl, ", ") + ")"
		}
		redone := 0
		for _, res := range r.redone {
			if res.Cell == c {
				redone++
			}
		}
		steal := r.vals(c, func(res *result) float64 { return res.StealPct })
		_, stealHi := minMax(steal)
		p("| %s | %s (%s) | %s | %s (%s) | %s | %d of %d | %d | %s |\n", c.Name, f1(median(v)), f1(hi),
			f1(median(r.vals(c, func(res *result) float64 { return res.BusyPct }))), f1(median(steal)), f1(stealHi), fs, busyStarts, len(rs), redone,
			f0(median(r.vals(c, func(res *result) float64 { return float64(res.TimeWait) }))))
	}
	p("\n")

	if len(r.redone) > 0 {
		p("Disturbed runs that were run again (not used above):\n\n| cell | round | conn/s | other processes %% | other tracing BPF programs |\n|---|---|---|---|---|\n")
		for _, res := range r.redone {
			p("| %s | %d | %s | %s | %d %v |\n", res.Cell.Name, res.Round+1, f0(res.Load.Rate), f1(res.OtherCPUPct), res.Foreign, res.ForeignNames)
		}
		p("\n")
	}

	if len(r.errors) > 0 {
		p("## Runs that failed\n\n| cell | round | error |\n|---|---|---|\n")
		for _, res := range r.errors {
			p("| %s | %d | %s |\n", res.Cell.Name, res.Round+1, strings.ReplaceAll(res.Err, "|", "/"))
		}
		p("\n")
	}

	// What the tracers said on stderr, besides attaching.
	type msg struct {
		cell string
		text string
	}
	counts := map[msg]int{}
	var order []msg
	for _, c := range r.cells {
		for _, res := range r.results[c] {
			for _, line := range res.Messages {
				// Numbers vary run to run; group by the text without them.
				k := msg{c.Name, line}
				if counts[k] == 0 {
					order = append(order, k)
				}
				counts[k]++
			}
		}
	}
	if len(order) > 0 {
		p("## What the tracers reported on stderr\n\nEvery line besides the attach notice (bpftrace's `Attaching N probes...` and its RLIMIT_MEMLOCK warning left out), as printed, per cell; ×N when a line repeats.\n\n| cell | line |\n|---|---|\n")
		for i, k := range order {
			if i == 60 {
				p("| … | %d more lines |\n", len(order)-60)
				break
			}
			suffix := ""
			if counts[k] > 1 {
				suffix = fmt.Sprintf(" ×%d", counts[k])
			}
			p("| %s | `%s`%s |\n", k.cell, strings.ReplaceAll(k.text, "|", "/"), suffix)
		}
		p("\n")
	}

	p("## How to read these numbers\n\n")
	p("- At max rate the loadgen keeps the machine's %d CPUs mostly busy (see \"machine busy\" above), so nearly every CPU cycle a tracer takes, in its own process or in its BPF programs, comes out of the loadgen's throughput. The BPF programs run inside the loadgen's own system calls and in the softirqs of its loopback packets, so their cost appears as the loadgen's extra CPU per connection, not in the tracer's column.\n", m.CPUs)
	p("- The tracers do not do the same work: tuxscope writes 5 events per connection, `tcplife -D` writes 1 (the client end's close; its port filters are ANDed, so it cannot follow both ends of one port), `tcplife` without a filter writes 2 (both ends, and any other TCP connection on the host), `tcpstates -D` one per client-side state change, and bpftrace's count() writes nothing per event. The per-output-event column normalizes for that; the targets compare per connection, as the issue asks.\n")
	var tuxProgs []string
	for _, c := range r.cells {
		if c.Tracer != "tuxscope" || !c.Stats {
			continue
		}
		seen := map[string]bool{}
		for _, res := range r.results[c] {
			for _, ps := range res.Progs {
				if !seen[ps.Name] {
					seen[ps.Name] = true
					tuxProgs = append(tuxProgs, "`"+ps.Name+"`")
				}
			}
		}
		break
	}
	if len(tuxProgs) > 0 {
		sort.Strings(tuxProgs)
		p("- tuxscope's BPF programs in this run (as loaded by `tuxscope net` with its defaults on this kernel): %s. The peers here have one program each, on `sock:inet_sock_set_state`. Syscall-tracepoint programs run for every connect()/accept() on the host and cgroup programs for every packet or connect() of the processes under the cgroup they are attached to, whatever `--port` says: the port filter only decides what reaches the ring buffer.\n", strings.Join(tuxProgs, ", "))
	}
	p("- Lost events: tuxscope counts ring-buffer reservations that failed and reports them (table: stderr; JSON: in band; summary: its `lost` field); libbpf-tools and bpftrace report perf-buffer losses on stderr. Cells whose output goes to /dev/null in JSON mode cannot show tuxscope's in-band lost records, hence n/a there.\n")
	p("- The machine is shared: other work running at the same time shows in \"Other load on the machine\". Medians over rounds, interleaving and the rotating order damp it but do not remove it.\n\n")

	if r.micro != "" {
		p("## Go micro-benchmarks\n\n`go test -run '^$' -bench . -benchmem -benchtime %s %s`, as printed:\n\n```\n%s\n```\n", o.benchtime, strings.Join(microPackages, " "), strings.TrimRight(r.micro, "\n"))
	}
	return b.String()
}

// targets writes the targets with met / missed and by how much.
func (r *report) targets(b *strings.Builder) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## Targets\n\n| target | measured | verdict |\n|---|---|---|\n")

	// Throughput at max rate.
	for _, name := range []string{"tuxscope table", "tuxscope json", "tuxscope summary"} {
		c := r.cell(name)
		if c == nil || len(r.results[c]) == 0 {
			continue
		}
		x := r.ratio(c)
		p("| throughput ≥ 0.97 × baseline at max rate (%s) | %s × (%s vs %s conn/s, medians) | %s |\n",
			name, f3(x), f0(median(r.vals(c, rate))), f0(median(r.vals(r.baseline("max"), rate))),
			verdict(x >= 0.97, fmt.Sprintf("missed by %s (%.1f points)", f3(0.97-x), (0.97-x)*100)))
	}

	// Lost events at max rate, default settings: the lost count tuxscope
	// reports, and events missing from the counted cells without one.
	var lost, expected, counted, received int64
	var misses uint64
	var cellsSeen []string
	for _, name := range []string{"tuxscope table", "tuxscope summary", "tuxscope json > file", "tuxscope json > file, 2 procs"} {
		c := r.cell(name)
		if c == nil {
			continue
		}
		for _, res := range r.results[c] {
			misses += res.Misses
			if res.Lost >= 0 {
				lost += res.Lost
				expected += int64(5 * res.Load.Completed)
			}
			if res.Events >= 0 {
				counted += int64(5 * res.Load.Completed)
				received += res.Events
			}
		}
		cellsSeen = append(cellsSeen, name)
	}
	if len(cellsSeen) > 0 {
		share := math.NaN()
		if expected > 0 {
			share = float64(lost) / float64(expected) * 100
		}
		missing := counted - received
		v := verdict(lost == 0 && missing <= 0 && misses == 0, fmt.Sprintf("missed: %d events lost (%.4f%% of expected)", lost, share))
		if lost == 0 && (missing > 0 || misses > 0) {
			v = fmt.Sprintf("missed: none reported lost, but %d of %d counted events missing (%.4f%%) and %d BPF recursion misses, all silent", missing, counted, float64(missing)/float64(counted)*100, misses)
		}
		p("| 0 lost events at max rate with default settings | %d reported lost of %d expected events; counted cells: %d of %d received; %d BPF recursion misses (%s) | %s |\n",
			lost, expected, received, counted, misses, strings.Join(cellsSeen, ", "), v)
	}

	// CPU per connection against tcplife.
	pairs := [][2]string{
		{"tuxscope table", "tcplife -D port"},
		{"tuxscope json", "tcplife -D port"},
		{"tuxscope table", "tcplife (all ports)"},
		{"tuxscope table @fixed", "tcplife -D port @fixed"},
		{"tuxscope json @fixed", "tcplife -D port @fixed"},
	}
	for _, pr := range pairs {
		a, t := r.cell(pr[0]), r.cell(pr[1])
		if a == nil || t == nil || len(r.results[a]) == 0 || len(r.results[t]) == 0 {
			continue
		}
		x, y := median(r.vals(a, tracerCPUPer1k))*1000, median(r.vals(t, tracerCPUPer1k))*1000
		p("| tracer CPU per connection ≤ tcplife's (%s vs %s) | %s vs %s ms per 1k connections | %s |\n",
			pr[0], pr[1], f1(x), f1(y),
			verdict(x <= y, fmt.Sprintf("missed: %s× tcplife's (+%s ms per 1k connections)", f1(x/y), f1(x-y))))
	}

	// Start to attached.
	var att []float64
	for _, c := range r.cells {
		if c.Tracer == "tuxscope" {
			att = append(att, r.vals(c, func(res *result) float64 { return res.AttachMs })...)
		}
	}
	if len(att) > 0 {
		med := median(att)
		lo, hi := minMax(att)
		v := verdict(med <= 150, fmt.Sprintf("missed by %s ms (median)", f1(med-150)))
		if med <= 150 && hi > 150 {
			v += fmt.Sprintf(" by the median; the slowest start (%s ms) missed by %s ms", f1(hi), f1(hi-150))
		}
		p("| start to attached ≤ 150 ms (tuxscope) | median %s ms over %d starts (%s–%s) | %s |\n", f1(med), len(att), f1(lo), f1(hi), v)
	}

	// Decode allocations.
	if r.micro != "" {
		var rows []string
		allZero, any := true, false
		for _, line := range strings.Split(r.micro, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || !strings.HasPrefix(f[0], "BenchmarkDecode") {
				continue
			}
			for i := 1; i < len(f); i++ {
				if f[i] == "allocs/op" {
					any = true
					rows = append(rows, fmt.Sprintf("%s: %s allocs/op", f[0], f[i-1]))
					if f[i-1] != "0" {
						allZero = false
					}
				}
			}
		}
		if any {
			p("| decode 0 allocs/op | %s | %s |\n", strings.Join(rows, "; "), verdict(allZero, "missed"))
		}
	}
	p("\n")
	r.whereFrom(b)
}

// whereFrom lists, from this run's own figures, what the tracers' cost is
// made of, next to the targets.
func (r *report) whereFrom(b *strings.Builder) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	med := func(name string, f func(*result) float64) float64 {
		c := r.cell(name)
		if c == nil {
			return math.NaN()
		}
		return median(r.vals(c, f))
	}
	perConn := func(get func(*result) float64) func(*result) float64 {
		return func(res *result) float64 { return per1k(get(res), res) / 1000 }
	}
	busyOf := func(res *result) float64 { return res.BusyPct }
	bpfNs := perConn(func(res *result) float64 { return float64(res.BPFRunNs) })
	writes := perConn(func(res *result) float64 { return res.TracerWrites })
	switches := perConn(func(res *result) float64 { return res.TracerSwitches })
	lc := func(name string) float64 { return med(name, loadCPUPer1k) * 1000 }
	tc := func(name string) float64 { return med(name, tracerCPUPer1k) * 1000 }

	p("What these come from, in this run's own figures (medians; details in the sections below):\n\n")
	if base := lc("baseline"); !math.IsNaN(base) {
		pct := func(x float64) string {
			if math.IsNaN(x) {
				return "n/a"
			}
			return fmt.Sprintf("%+.0f%%", (x/base-1)*100)
		}
		p("- Max rate: the baseline loadgen kept the machine %s%% busy and used %s ms of CPU per 1,000 connections (its own user and system time). With `tuxscope table` attached it used %s ms (%s), with `tcplife -D port` %s ms (%s), with `bpftrace count` %s ms (%s): that extra CPU is the hooks' in-kernel cost, paid inside the loadgen's system calls and softirqs; the tracer's own process took %s ms per 1,000 connections for `tuxscope table` and %s ms for `tcplife -D port` on top.\n",
			f0(med("baseline", busyOf)), f1(base),
			f1(lc("tuxscope table")), pct(lc("tuxscope table")),
			f1(lc("tcplife -D port")), pct(lc("tcplife -D port")),
			f1(lc("bpftrace count")), pct(lc("bpftrace count")),
			f1(tc("tuxscope table")), f1(tc("tcplife -D port")))
	}
	if x := med("tuxscope json > file", bpfNs); !math.IsNaN(x) && !math.IsNaN(med("tcplife -D port > file", bpfNs)) {
		p("- BPF run time per connection, measured: tuxscope %s ns (%s program runs), `tcplife -D port` %s ns (%s runs), bpftrace printing closes %s ns (%s runs); all three run a program on each of the %s `sock:inet_sock_set_state` changes per connection, and tuxscope adds its syscall tracepoints (see \"BPF programs one by one\").\n",
			f0(x), f1(med("tuxscope json > file", perConn(func(res *result) float64 { return float64(res.BPFRunCnt) }))),
			f0(med("tcplife -D port > file", bpfNs)), f1(med("tcplife -D port > file", perConn(func(res *result) float64 { return float64(res.BPFRunCnt) }))),
			f0(med("bpftrace print > file", bpfNs)), f1(med("bpftrace print > file", perConn(func(res *result) float64 { return float64(res.BPFRunCnt) }))),
			f1(med("tcplife -D port > file", perConn(func(res *result) float64 { return float64(res.BPFRunCnt) }))))
	}
	if x := med("tuxscope table", writes); !math.IsNaN(x) && !math.IsNaN(tc("tcplife -D port")) {
		tuxEv, lifeEv := tc("tuxscope table")/5, tc("tcplife -D port")/1
		cmp := "more"
		if tuxEv < lifeEv {
			cmp = "less"
		}
		p("- The tracer process: `tuxscope table` made %s write system calls and %s context switches per connection, `tcplife -D port` %s writes and %s context switches (its output is stdio-buffered; the tracer wakes when the kernel signals new events, so context switches count its wake-ups). Per output event tuxscope's process used %s CPU than tcplife's (%s vs %s µs), but it writes 5 events per connection where `tcplife -D` writes 1.\n",
			f3(x), f3(med("tuxscope table", switches)), f3(med("tcplife -D port", writes)), f3(med("tcplife -D port", switches)),
			cmp, f1(tuxEv), f1(lifeEv))
	}
	if c0, c := r.cell("tuxscope table, max-delay 0"), r.cell("tuxscope table"); c0 != nil && c != nil {
		p("- Wake-ups: with `--max-delay 0` (woken whenever an event arrives while it waits) `tuxscope table` ran at %s× baseline, the loadgen used %s ms of CPU per 1,000 connections and the tracer %s ms with %s context switches per connection; with the default batching (woken when a quarter of the ring is full, else every 100 ms) %s×, %s ms, %s ms and %s.\n",
			f3(r.ratio(c0)), f1(lc(c0.Name)), f1(tc(c0.Name)), f3(med(c0.Name, switches)),
			f3(r.ratio(c)), f1(lc(c.Name)), f1(tc(c.Name)), f3(med(c.Name, switches)))
	}
	if c := r.cell("tuxscope table, no names"); c != nil {
		p("- DNS names: without the cgroup packet hooks (`--no-names`) `tuxscope table` ran at %s× baseline, with the loadgen at %s ms of CPU per 1,000 connections (%s ms with them).\n",
			f3(r.ratio(c)), f1(lc(c.Name)), f1(lc("tuxscope table")))
	}
	if x := tc("tuxscope table @fixed"); !math.IsNaN(x) {
		p("- At the fixed rate: `tuxscope table` took %s ms per 1,000 connections there (%s at max rate), with %s context switches per connection (%s at max rate).\n",
			f1(x), f1(tc("tuxscope table")), f3(med("tuxscope table @fixed", switches)), f3(med("tuxscope table", switches)))
	}
	p("\n")
}

func verdict(ok bool, missed string) string {
	if ok {
		return "met"
	}
	return missed
}

// ---- chart ----

// chart draws three panels of horizontal bars, cell by cell: throughput at
// max rate against the baseline; the tracer's CPU per 1,000 connections at
// max rate; and, at the fixed rate, the loadgen's and the tracer's CPU per
// 1,000 connections stacked (the hooks' in-kernel cost is in the loadgen's).
func (r *report) chart(path string) error {
	type bar struct {
		name  string
		vals  []float64 // one per stack level
		group string    // single-level panels: colored by group
	}
	panel := func(title, xlabel string, bars []bar, legend []string, ref float64) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		p.X.Label.Text = xlabel
		p.Title.TextStyle.Font.Size = vg.Points(12)
		// Top to bottom in cell order.
		names := make([]string, len(bars))
		for i, b := range bars {
			names[len(bars)-1-i] = b.name
		}
		colors := []plotColor{{70, 110, 180}, {230, 140, 50}}
		var below *plotter.BarChart
		levels := 0
		for _, b := range bars {
			levels = max(levels, len(b.vals))
		}
		hi := 0.0
		if levels == 1 {
			// One bar chart per group, in its own color.
			groupColors := map[string]plotColor{"baseline": {120, 120, 120}, "tuxscope": {70, 110, 180}, "peers": {230, 140, 50}}
			for _, g := range []string{"baseline", "tuxscope", "peers"} {
				vals := make(plotter.Values, len(bars))
				any := false
				for i, b := range bars {
					if b.group == g && !math.IsNaN(b.vals[0]) {
						vals[len(bars)-1-i] = b.vals[0]
						any = true
					}
				}
				if !any {
					continue
				}
				bc, err := plotter.NewBarChart(vals, vg.Points(14))
				if err != nil {
					return nil, err
				}
				bc.Horizontal = true
				bc.Color = groupColors[g].rgba()
				bc.LineStyle.Width = 0
				p.Add(bc)
				p.Legend.Add(g, bc)
			}
			levels = 0
		}
		for l := 0; l < levels; l++ {
			vals := make(plotter.Values, len(bars))
			for i, b := range bars {
				if l < len(b.vals) && !math.IsNaN(b.vals[l]) {
					vals[len(bars)-1-i] = b.vals[l]
				}
			}
			bc, err := plotter.NewBarChart(vals, vg.Points(14))
			if err != nil {
				return nil, err
			}
			bc.Horizontal = true
			bc.Color = colors[l%len(colors)].rgba()
			bc.LineStyle.Width = 0
			if below != nil {
				bc.StackOn(below)
			}
			below = bc
			p.Add(bc)
			if l < len(legend) {
				p.Legend.Add(legend[l], bc)
			}
		}
		// Value labels at the bar ends.
		var xys plotter.XYs
		var labels []string
		for i, b := range bars {
			total := 0.0
			for _, v := range b.vals {
				if !math.IsNaN(v) {
					total += v
				}
			}
			hi = math.Max(hi, total)
			xys = append(xys, plotter.XY{X: total, Y: float64(len(bars) - 1 - i)})
			if xlabel == "× baseline" {
				labels = append(labels, " "+f3(total))
			} else {
				labels = append(labels, " "+f1(total))
			}
		}
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
		if err != nil {
			return nil, err
		}
		for i := range lb.TextStyle {
			lb.TextStyle[i].YAlign = -0.5
		}
		p.Add(lb)
		if ref > 0 {
			l, err := plotter.NewLine(plotter.XYs{{X: ref, Y: -0.5}, {X: ref, Y: float64(len(bars)) - 0.5}})
			if err != nil {
				return nil, err
			}
			l.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			l.LineStyle.Color = plotColor{200, 40, 40}.rgba()
			p.Add(l)
		}
		p.NominalY(names...)
		p.X.Min = 0
		p.X.Max = hi * 1.45 // room for the legend, top right
		if p.X.Max == 0 {
			p.X.Max = 1
		}
		p.Legend.Top = true
		p.Legend.Left = false
		p.Add(plotter.NewGrid())
		return p, nil
	}

	var tp, cpu, fixed []bar
	for _, c := range r.cells {
		if len(r.results[c]) == 0 {
			continue
		}
		switch c.Kind {
		case "max", "complete":
			g := map[string]string{"": "baseline", "tuxscope": "tuxscope"}[c.Tracer]
			if g == "" {
				g = "peers"
			}
			tp = append(tp, bar{c.Name, []float64{r.ratio(c)}, g})
			if c.Tracer != "" {
				cpu = append(cpu, bar{c.Name, []float64{median(r.vals(c, tracerCPUPer1k)) * 1000}, g})
			}
		case "fixed":
			fixed = append(fixed, bar{name: c.Name, vals: []float64{
				median(r.vals(c, loadCPUPer1k)) * 1000,
				median(r.vals(c, tracerCPUPer1k)) * 1000,
			}})
		}
	}
	var plots []*plot.Plot
	p1, err := panel("Throughput at max rate (line: 0.97)", "× baseline", tp, nil, 0.97)
	if err != nil {
		return err
	}
	plots = append(plots, p1)
	p2, err := panel("Tracer CPU at max rate", "ms per 1,000 connections", cpu, nil, 0)
	if err != nil {
		return err
	}
	plots = append(plots, p2)
	if len(fixed) > 0 {
		p3, err := panel(fmt.Sprintf("CPU at %s conn/s", f0(r.o.fixedRate)), "ms per 1,000 connections",
			fixed, []string{"loadgen (incl. BPF hooks)", "tracer process"}, 0)
		if err != nil {
			return err
		}
		plots = append(plots, p3)
	}

	const w, h = 18 * vg.Inch, 6 * vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(110))
	dc := draw.New(img)
	// A white background and a caption line.
	dc.SetColor(plotColor{255, 255, 255}.rgba())
	dc.Fill(dc.Rectangle.Path())
	caption := fmt.Sprintf("tuxscope %s · %d CPUs %s · kernel %s · %s · medians of %d rounds, %s each",
		shortCommit(r.m.Commit), r.m.CPUs, r.m.Model, r.m.Kernel, r.m.Date.Format("2006-01-02"), r.o.rounds, r.o.duration)
	top := draw.Canvas{Canvas: dc, Rectangle: dc.Rectangle}
	top.Max.Y -= vg.Points(34)
	capStyle := plot.New().Title.TextStyle
	capStyle.Font.Size = vg.Points(11)
	capStyle.XAlign = draw.XCenter
	dc.FillText(capStyle, vg.Point{X: w / 2, Y: h - vg.Points(20)}, caption)

	tiles := draw.Tiles{Rows: 1, Cols: len(plots), PadX: vg.Points(12), PadLeft: vg.Points(6), PadRight: vg.Points(10), PadBottom: vg.Points(6)}
	canvases := plot.Align([][]*plot.Plot{plots}, tiles, top)
	for i, p := range plots {
		p.Draw(canvases[0][i])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type plotColor struct{ r, g, b uint8 }

func (c plotColor) rgba() color.RGBA { return color.RGBA{R: c.r, G: c.g, B: c.b, A: 255} }

func shortCommit(s string) string {
	if len(s) >= 12 {
		short := s[:12]
		if strings.Contains(s, "uncommitted") {
			short += "+dirty"
		}
		return short
	}
	return s
}

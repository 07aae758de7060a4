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
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// options are the runner's flags.
type options struct {
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	settle      time.Duration
	fixedRate   float64
	concurrency int
	procs       layout // the multi-process cells' loadgen
	closeMode   string
	payload     int
	cells       string
	peers       bool
	install     bool
	micro       bool
	hooks       bool
	hookMiB     int
	hookConns   int
	hookTrips   int
	before      string
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
	o.procs = layout{servers: 2, clients: 4}
	flag.Var(&o.procs, "procs", "SERVERSxCLIENTS: loadgen processes of the multi-process cells (the servers share the port with SO_REUSEPORT, the clients share -concurrency)")
	flag.StringVar(&o.closeMode, "close", "server", "loadgen close pattern: client, server or reset (server: no client-side TIME_WAIT piling up over the run)")
	flag.IntVar(&o.payload, "payload", 32, "loadgen payload bytes each way per connection")
	flag.StringVar(&o.cells, "cells", "", "only the cells whose name contains one of these comma-separated strings, or is one that starts with = (baselines are always run)")
	flag.BoolVar(&o.peers, "peers", true, "run the libbpf-tools and bpftrace cells")
	flag.BoolVar(&o.install, "install", true, "apt-get install libbpf-tools and bpftrace if missing")
	flag.BoolVar(&o.micro, "micro", true, "run the Go micro-benchmarks of "+strings.Join(microPackages, " "))
	flag.BoolVar(&o.hooks, "hooks", true, "measure the packet hooks one by one under TCP bulk, plain and TLS churn, and UDP loads (BPF statistics on)")
	flag.IntVar(&o.hookMiB, "hook-mib", 1024, "MiB of the packet hooks' TCP bulk load")
	flag.IntVar(&o.hookConns, "hook-conns", 2000, "connections of each of the packet hooks' churn loads")
	flag.IntVar(&o.hookTrips, "hook-trips", 20000, "round trips of the packet hooks' UDP load")
	flag.StringVar(&o.before, "before", "", "git revision: also run tuxscope table, json and summary built at it, as cells of their own (\"... @COMMIT\") in the same rotation")
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
	if o.concurrency < o.procs.clients {
		fatalf("-concurrency %d is fewer than -procs' %d client processes", o.concurrency, o.procs.clients)
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
// report includes (its "decode 0 allocs/op" target reads BenchmarkDecode*,
// which are internal/tracer's since the record decoder moved there).
var microPackages = []string{"./internal/tracer", "./internal/output", "./internal/metrics"}

// env is what every cell needs: built binaries, peers, scratch space.
type env struct {
	o           *options
	repo        string // the repository's root, where the product's go.mod is
	work        string
	tuxscope    string
	before      *build // -before: tuxscope built at that revision
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
	if o.before != "" {
		if e.before, err = buildAt(repo, e.work, o.before); err != nil {
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
	if e.before != nil {
		info.Before = fmt.Sprintf("%s (`-before %s`)", e.before.commit, e.before.rev)
	}
	cells := e.cells()
	logf("%d cells x %d rounds, %s load each; scratch %s", len(cells), o.rounds, o.duration, e.work)

	if o.warmup > 0 {
		logf("warm-up: %s of unrecorded baseline load", o.warmup)
		if _, _, err := e.runLoad(freePort(), 0, o.warmup, layout{}); err != nil {
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

	var (
		hookLoads   []hookLoad
		hookSamples []hookSample
	)
	if o.hooks {
		if hookLoads, hookSamples, err = e.packetHooks(); err != nil {
			return fmt.Errorf("packet hooks: %w", err)
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
	rep.hookLoads, rep.hookSamples = hookLoads, hookSamples
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

// build is tuxscope built at an earlier git revision (-before).
type build struct {
	rev    string // as given
	commit string
	short  string // abbreviated commit, in cell names
	bin    string
}

// buildAt builds ./cmd/tuxscope as it was at git revision rev, from a
// `git archive` of that revision unpacked in the scratch directory; it
// builds in that revision's own module (which, before bench/ and tools/
// were modules of their own, also held them: no matter for the build).
func buildAt(repo, work, rev string) (*build, error) {
	out, err := exec.Command("git", "-C", repo, "log", "-1", "--format=%H %h", rev+"^{commit}", "--").Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) != 2 {
		return nil, fmt.Errorf("-before %s: not a commit of this repository (%v)", rev, err)
	}
	b := &build{rev: rev, commit: f[0], short: f[1], bin: filepath.Join(work, "tuxscope-"+f[1])}
	src, tarball := filepath.Join(work, "src-"+b.short), filepath.Join(work, "src-"+b.short+".tar")
	if err := os.RemoveAll(src); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		return nil, err
	}
	logf("git archive %s into %s", b.commit, src)
	for _, cmd := range []*exec.Cmd{
		exec.Command("git", "-C", repo, "archive", "-o", tarball, b.commit),
		exec.Command("tar", "-x", "-C", src, "-f", tarball),
	} {
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%s: %v: %s", strings.Join(cmd.Args, " "), err, out)
		}
	}
	return b, goBuild(b.bin, src, "./cmd/tuxscope")
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

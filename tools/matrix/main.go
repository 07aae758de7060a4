// Command matrix boots real Debian kernels under qemu (TCG) and runs
// tuxscope's integration test binary inside each, once per backend, then
// prints a matrix kernel × backend → pass / FAIL / unsupported.
//
// Run it as root from the repository (make matrix, or go run ./tools/matrix).
// Everything it fetches or builds is cached outside the repository
// (-cache, default /var/cache/tuxscope-matrix); each run's serial logs,
// doctor output and summary go to -out (default CACHE/out/TIMESTAMP, with
// CACHE/out/latest pointing at the newest).
//
// What to try is data, in this file: the backends (defaultBackends), the
// kernels and their architectures (kernels.go; how each architecture boots
// and where a foreign one's busybox and ip come from: arch.go), the
// commands run on each kernel (guestProbes, testEnv, testArgs) and the
// default test subset (coreTests).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// knownBackends are the values tuxscope's --backend takes, in the order the
// matrix shows them. defaultBackends is what runs without -backends
// (-backends all runs every known one): this is the one place to change it.
var (
	knownBackends   = []string{"fentry", "kprobe", "tracepoint", "auto"}
	defaultBackends = []string{"fentry", "kprobe", "tracepoint"}
)

// coreTests is the -test.run regexp of -run core (the default): the
// connect/accept tests and the ones that exercise the kernel side (signals
// detach everything, in-kernel filters, lost-event accounting, a veth pair
// between namespaces). Under TCG they take 20-60 s per backend with two
// guests at once; the whole suite (-run all) 40 s alone, 60 s or more with
// two guests at once.
var coreTests = "^(" + strings.Join([]string{
	"TestIPv4BlockingConnectPreBlockedAccept4",
	"TestIPv6NonBlockingConnectAccept",
	"TestDualStack",
	"TestRefusedBlockingConnectKeepsSourcePort",
	"TestSignalsDetachEverything",
	"TestFilters",
	"TestLostEventsAreReported",
	"TestAcrossNetworkNamespaces",
	"TestDoctorTellsTheTruth",
	"TestConnectionLifecycle",
	"TestResetConnection",
	"TestRefusedConnectOutcome",
	"TestExistingConnections",
	"TestForkAfterAccept",
	"TestOlderConnections",
	"TestThreadName",
	"TestConnTableFullIsReported",
	"TestIOUringConnect",
	"TestIOUringAccept",
	"TestFastOpenConnect",
	"TestFastOpenServerAcceptsBeforeHandshake",
	"TestAcceptOfAResetConnection",
	"TestCgroupFilter",
	"TestListenEvents",
	"TestResetEvents",
	"TestRTTOfADelayedPath",
	"TestUDPFlows",
}, "|") + ")$"

// oncePerKernel are core tests that a guest runs with its first backend
// only, because a backend changes nothing they exercise: a backend is
// the connect and accept hooks, and these test what every backend shares
// (the raw state, reset and listen tracepoints, the cgroup hooks, sock_diag).
// TestDoctorTellsTheTruth tries every backend itself (the doctor's
// claims). TestRTTOfADelayedPath reads a closing socket's srtt over a
// netem-delayed path; TestResetEvents, TestListenEvents and
// TestOlderConnections (closes adopted at FIN_WAIT1 / LAST_ACK) are the
// state and health programs'; TestExistingConnections is sock_diag's;
// TestUDPFlows the cgroup hooks'; TestLostEventsAreReported counts what
// the ring buffer refused, in the reservation every program shares.
// (TestRTTOfADelayedPath lost the server's close now and then, 5.10 and
// 6.1, --backend tracepoint, while that backend attached the classic state
// tracepoint, whose program the kernel skips, uncounted before 6.7, when a
// softirq's state change interrupts another tracing program: the likely
// cause, not reproduced on the host; every backend attaches the raw one
// now.) The host runs them all with its one usable backend.
var oncePerKernel = []string{"TestDoctorTellsTheTruth", "TestRTTOfADelayedPath", "TestResetEvents",
	"TestListenEvents", "TestOlderConnections", "TestExistingConnections", "TestUDPFlows", "TestLostEventsAreReported"}

// backendsFor is what a guest kernel is tested with: -backends when
// given, else those of its default set (kernelSpec.Backends) that the
// backends selected hold.
func (cfg *config) backendsFor(k *kernelSpec) []string {
	if cfg.backendsSet || k == nil || k.Backends == nil {
		return cfg.backends
	}
	var out []string
	for _, b := range cfg.backends {
		if slices.Contains(k.Backends, b) {
			out = append(out, b)
		}
	}
	return out
}

// bootOrder is the order the guests are booted in, jobs at a time: the
// longest first, so that the last to finish is not a long one started
// when the others are done, with the other cores idle. A guest's time
// grows with its backends' count (measured: 9.2-10.0 minutes with three,
// 5.9-7.0 with two); among equals the other architectures' first, then
// row order.
// The report keeps row order.
func bootOrder(rows []*row) []*row {
	out := slices.Clone(rows)
	slices.SortStableFunc(out, func(a, b *row) int {
		if c := len(b.backends) - len(a.backends); c != 0 {
			return c
		}
		return cmpBool(b.spec.Arch != hostArch, a.spec.Arch != hostArch)
	})
	return out
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// probe is a command run once per kernel (in the guest, and on the host)
// whose standard output is saved to the output directory as
// KERNEL-SaveAs when it exits 0. $TUXSCOPE is the tuxscope binary.
type probe struct {
	Name   string // marker name, letters and digits only
	Cmd    string // sh command line
	SaveAs string
}

// guestProbes run before the tests. The doctor's report also turns a
// backend's failed cell into "unsupported: reason" (doctorUnsupported).
var guestProbes = []probe{
	{Name: "doctor", Cmd: `"$TUXSCOPE" doctor --format json`, SaveAs: "doctor.json"},
}

// testEnv is the environment the integration test binary gets, per backend,
// in the guest and on the host. TUXSCOPE_BIN makes TestMain use the
// prebuilt binary instead of running go build.
func testEnv(tuxscopeBin, backend string) []string {
	return []string{"TUXSCOPE_BIN=" + tuxscopeBin, "TUXSCOPE_TEST_BACKEND=" + backend}
}

// testArgs are the integration test binary's arguments (go test's flags
// with the test. prefix, as a compiled test binary takes them).
func testArgs(run, skip string, timeout time.Duration) []string {
	args := []string{"-test.v", "-test.count=1", "-test.timeout=" + timeout.String()}
	if run != "" {
		args = append(args, "-test.run="+run)
	}
	if skip != "" {
		args = append(args, "-test.skip="+skip)
	}
	return args
}

// guestModules are loaded with insmod, with their dependencies, when the
// kernel has them as modules: the guest has no modprobe to load them on
// demand as a real machine would. veth: the network-namespace tests;
// tcp_diag (and inet_diag): sock_diag, for tuxscope net --existing;
// sch_netem: a delayed path for the RTT test.
var guestModules = []string{"veth", "tcp_diag", "sch_netem"}

type config struct {
	repo     string
	cache    string
	out      string
	kernels  []string
	backends []string
	// backendsSet: -backends was given, and is tested on every kernel
	// (else each kernel's default set, kernelSpec.Backends).
	backendsSet bool
	run         string
	timeout     time.Duration
	jobs        int
	refresh     time.Duration
	mirror      string
	secMirror   string
	memory      int
	cpus        int
	shipIP      bool
	noInstall   bool
	goBin       string
	verbose     bool
	tailLines   int
	hostTimeout time.Duration
	cmdline     string
	accel       string

	runUnsupported bool
}

func main() {
	code, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "matrix:", err)
		if code == 0 {
			code = 2
		}
	}
	os.Exit(code)
}

func run() (int, error) {
	var cfg config
	var kernelsFlag, backendsFlag string
	cacheDefault := os.Getenv("TUXSCOPE_MATRIX_CACHE")
	if cacheDefault == "" {
		cacheDefault = "/var/cache/tuxscope-matrix"
	}
	var names, defaults []string
	for _, k := range kernels {
		names = append(names, k.Name)
		if !k.Optional {
			defaults = append(defaults, k.Name)
		}
	}
	flag.StringVar(&kernelsFlag, "kernels", "host,"+strings.Join(defaults, ","), "comma-separated kernels to run: host and/or "+strings.Join(names, ", "))
	flag.StringVar(&backendsFlag, "backends", strings.Join(defaultBackends, ","), "comma-separated backends ("+strings.Join(knownBackends, ", ")+"), or all")
	flag.StringVar(&cfg.run, "run", "core", "tests to run: core (the connect/accept core), all (the whole suite), or a regexp for -test.run")
	flag.StringVar(&cfg.cache, "cache", cacheDefault, "cache directory (env TUXSCOPE_MATRIX_CACHE)")
	flag.StringVar(&cfg.out, "out", "", "output directory for logs and results (default CACHE/out/TIMESTAMP)")
	flag.DurationVar(&cfg.timeout, "timeout", 900*time.Second, "time limit for each guest, from qemu start to power-off")
	flag.DurationVar(&cfg.hostTimeout, "host-timeout", 600*time.Second, "time limit for each host test run")
	flag.IntVar(&cfg.jobs, "jobs", 2, "guests to run in parallel (each is one host thread: -accel tcg,thread=single)")
	flag.DurationVar(&cfg.refresh, "refresh", 24*time.Hour, "re-read the package lists when they are older than this")
	flag.StringVar(&cfg.mirror, "mirror", "http://deb.debian.org/debian", "Debian archive")
	flag.StringVar(&cfg.secMirror, "security-mirror", "http://deb.debian.org/debian-security", "Debian security archive")
	flag.StringVar(&cfg.cmdline, "cmdline", "panic=-1 quiet", "guest kernel command line, after the architecture's console= (drop quiet to see every kernel message)")
	// One TCG thread per guest, not one per vCPU: with multi-threaded TCG
	// (qemu 7.2, -smp 2) guests hung now and then in a soft lockup on
	// kernel text that had just been patched (tracepoint static keys being
	// flipped: 2 hangs in 7 runs of TestDoctorTellsTheTruth on 6.1, none in
	// dozens with thread=single). It also lets two guests share two cores.
	flag.StringVar(&cfg.accel, "accel", "tcg,thread=single", "qemu -accel value")
	flag.IntVar(&cfg.memory, "m", 1024, "guest memory, MiB")
	flag.IntVar(&cfg.cpus, "smp", 2, "guest CPUs")
	flag.BoolVar(&cfg.shipIP, "guest-ip", true, "ship iproute2's ip and tc (with their libraries) into the guests, so the network-namespace and netem tests run: the host's, or for another architecture Debian's")
	flag.BoolVar(&cfg.noInstall, "no-install", false, "do not apt-get install missing host tools (qemu-system-x86, qemu-system-arm, busybox-static, xz-utils, zstd)")
	flag.BoolVar(&cfg.runUnsupported, "run-unsupported", false, "on the host, run the tests of backends tuxscope doctor calls unsupported too (by default they are not run)")
	flag.BoolVar(&cfg.verbose, "v", false, "echo guest serial output while running")
	flag.IntVar(&cfg.tailLines, "tail", 60, "lines of a failing guest's log to print")
	flag.Parse()
	if flag.NArg() != 0 {
		return 2, fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	switch cfg.run {
	case "all":
		cfg.run = ""
	case "core":
		cfg.run = coreTests
	}
	cfg.goBin = os.Getenv("GO")
	if cfg.goBin == "" {
		cfg.goBin = "go"
	}

	cfg.kernels = splitList(kernelsFlag)
	for _, k := range cfg.kernels {
		if k != "host" && findKernel(k) == nil {
			return 2, fmt.Errorf("-kernels: unknown kernel %q (have host, %s)", k, strings.Join(names, ", "))
		}
	}
	flag.Visit(func(f *flag.Flag) { cfg.backendsSet = cfg.backendsSet || f.Name == "backends" })
	if backendsFlag == "all" {
		cfg.backends = knownBackends
	} else {
		cfg.backends = splitList(backendsFlag)
	}
	for _, b := range cfg.backends {
		if !contains(knownBackends, b) {
			return 2, fmt.Errorf("-backends: unknown backend %q (have %s)", b, strings.Join(knownBackends, ", "))
		}
	}
	if len(cfg.kernels) == 0 || len(cfg.backends) == 0 {
		return 2, errors.New("nothing to run: -kernels and -backends must not be empty")
	}
	if cfg.jobs < 1 {
		cfg.jobs = 1
	}
	if os.Geteuid() != 0 {
		return 2, errors.New("run as root: the tests load BPF programs and the runner installs qemu with apt-get")
	}

	repo, err := findRepo()
	if err != nil {
		return 2, err
	}
	cfg.repo = repo
	if cfg.cache, err = filepath.Abs(cfg.cache); err != nil {
		return 2, err
	}
	if err := os.MkdirAll(cfg.cache, 0o755); err != nil {
		return 2, err
	}
	unlock, err := lockDir(cfg.cache)
	if err != nil {
		return 2, err
	}
	defer unlock()
	if cfg.out == "" {
		base := filepath.Join(cfg.cache, "out")
		cfg.out = filepath.Join(base, time.Now().Format("20060102-150405"))
		defer func() {
			os.Remove(filepath.Join(base, "latest"))
			os.Symlink(filepath.Base(cfg.out), filepath.Join(base, "latest"))
		}()
	}
	if cfg.out, err = filepath.Abs(cfg.out); err != nil {
		return 2, err
	}
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return 2, err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	logf("output: %s", cfg.out)
	var guests []*kernelSpec
	var guestArchs, goarchs []string
	if contains(cfg.kernels, "host") {
		goarchs = append(goarchs, hostArch)
	}
	for _, k := range cfg.kernels {
		if k != "host" {
			spec := findKernel(k)
			guests = append(guests, spec)
			if !contains(guestArchs, spec.Arch) {
				guestArchs = append(guestArchs, spec.Arch)
			}
			if !contains(goarchs, spec.Arch) {
				goarchs = append(goarchs, spec.Arch)
			}
		}
	}

	if len(guests) > 0 {
		if err := ensureHostTools(&cfg, guestArchs); err != nil {
			return 2, err
		}
	}
	bins, err := buildBinaries(ctx, &cfg, goarchs)
	if err != nil {
		return 2, err
	}

	var rows []*row
	if contains(cfg.kernels, "host") {
		rows = append(rows, runHost(ctx, &cfg, bins[hostArch]))
	}

	// Fetch every kernel first (the network part, timed per kernel), then
	// boot them jobs at a time.
	var guestRows []*row
	userlands := map[string]*userland{}
	userlandErrs := map[string]error{}
	for _, k := range guests {
		if ctx.Err() != nil {
			break
		}
		r := &row{Kernel: k.Name, Cells: map[string]*cell{}, spec: k, backends: cfg.backendsFor(k)}
		guestRows = append(guestRows, r)
		t0 := time.Now()
		if k.Arch != hostArch && userlands[k.Arch] == nil && userlandErrs[k.Arch] == nil {
			u, err := fetchUserland(ctx, &cfg, findArch(k.Arch))
			if err == nil {
				logf("%s userland ready in %s: %s", k.Arch, round(time.Since(t0)), strings.Join(u.Packages, ", "))
			}
			userlands[k.Arch], userlandErrs[k.Arch] = u, err
		}
		if err := userlandErrs[k.Arch]; err != nil {
			r.Fetch = time.Since(t0)
			r.Unavailable = fmt.Sprintf("no %s userland: %v", k.Arch, err)
			logf("%s: unavailable: %s", k.Name, r.Unavailable)
			continue
		}
		if u := userlands[k.Arch]; u != nil {
			r.userland = u
			r.Notes = append(r.Notes, fmt.Sprintf("%s userland (busybox, ip) from %s", k.Arch, strings.Join(u.Packages[:len(userPackages)], ", ")))
		}
		img, err := fetchKernel(ctx, &cfg, k)
		r.Fetch = time.Since(t0)
		if err != nil {
			r.Unavailable = err.Error()
			logf("%s: unavailable: %v", k.Name, err)
			continue
		}
		r.image = img
		r.Package = img.Package + " " + img.Version
		r.Notes = append(r.Notes, img.Notes...)
		logf("%s: %s %s (%s) ready in %s", k.Name, img.Package, img.Version, img.Release, round(r.Fetch))
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, cfg.jobs)
	for _, r := range bootOrder(guestRows) {
		if r.image == nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(r *row) {
			defer wg.Done()
			defer func() { <-sem }()
			if ctx.Err() != nil {
				r.Unavailable = "interrupted"
				return
			}
			runGuest(ctx, &cfg, bins[r.spec.Arch], r)
		}(r)
	}
	wg.Wait()
	rows = append(rows, guestRows...)

	if ctx.Err() != nil {
		logf("interrupted")
	}
	report := renderReport(&cfg, rows, time.Since(start))
	fmt.Print(report)
	os.WriteFile(filepath.Join(cfg.out, "matrix.md"), []byte(report), 0o644)
	if failed(rows) || ctx.Err() != nil {
		return 1, nil
	}
	return 0, nil
}

// findRepo walks up from the working directory to tuxscope's go.mod.
func findRepo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/tuxscope/tuxscope\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the tuxscope repository (no go.mod for github.com/tuxscope/tuxscope above the working directory)")
		}
		dir = parent
	}
}

// lockDir holds an exclusive lock on dir/lock for the whole run: two runs
// would otherwise share apt lists and work files.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another matrix run holds %s", f.Name())
	}
	return func() { f.Close() }, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var logMu sync.Mutex

func logf(format string, args ...any) {
	logMu.Lock()
	defer logMu.Unlock()
	fmt.Fprintf(os.Stderr, "matrix: "+format+"\n", args...)
}

func round(d time.Duration) time.Duration {
	if d > 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

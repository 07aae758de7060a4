package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tuxscope/tuxscope/bench/internal/load"
)

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
		if c.Build != nil {
			bin = c.Build.bin
		}
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
	lr, loadCPU, err := e.runLoad(port, c.Rate, o.duration, c.Layout)
	window := time.Since(loadStart)
	after, busy1 := procTimes(), cpuBusy()
	close(stopSampling)
	<-sampled
	exclude[lr.PID] = true
	for _, pid := range append(lr.ServerPIDs, lr.ClientPIDs...) {
		exclude[pid] = true
	}
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
	if c.scrape != nil {
		c.scrape(res)
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

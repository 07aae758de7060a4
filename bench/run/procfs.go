package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
)

// progFDInfos reads the fdinfo of each BPF program a process holds: its
// numeric fields ("prog_id", "run_time_ns", ...) by name.
func progFDInfos(pid int) []map[string]uint64 {
	var out []map[string]uint64
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range ents {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); err != nil || l != "anon_inode:bpf-prog" {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		if err != nil {
			continue
		}
		fields := map[string]uint64{}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 {
				if v, err := strconv.ParseUint(f[1], 10, 64); err == nil {
					fields[strings.TrimSuffix(f[0], ":")] = v
				}
			}
		}
		out = append(out, fields)
	}
	return out
}

// progIDs are the BPF programs a process holds.
func progIDs(pid int) []ebpf.ProgramID {
	var ids []ebpf.ProgramID
	for _, fields := range progFDInfos(pid) {
		if v, ok := fields["prog_id"]; ok {
			ids = append(ids, ebpf.ProgramID(v))
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
	for _, fields := range progFDInfos(pid) {
		ps := progStat{Ns: fields["run_time_ns"], Cnt: fields["run_cnt"], Misses: fields["recursion_misses"]}
		id := fields["prog_id"]
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

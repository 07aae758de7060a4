package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// row is one kernel of the matrix.
type row struct {
	Kernel      string // kernel spec name, or "host"
	Release     string // uname -r where the tests ran
	Package     string // Debian package and version
	Unavailable string // why the kernel could not be fetched
	Cells       map[string]*cell
	Notes       []string
	Log         string

	Fetch, Initramfs, Boot, Total time.Duration

	spec     *kernelSpec // nil for the host
	image    *kernelImage
	userland *userland // a foreign architecture's busybox and ip
	doctor   []byte    // tuxscope doctor --format json, when it exited 0
	// AutoWrong says how --backend auto's choice differs from what this
	// kernel should give (expectations); it fails the row.
	AutoWrong string
	// backends are the backends tested on it (config.backendsFor).
	backends []string
}

// backendsOr is r.backends, or all of cfg's when not set.
func (r *row) backendsOr(cfg *config) []string {
	if r.backends != nil {
		return r.backends
	}
	return cfg.backends
}

const (
	statePass        = "pass"
	stateFail        = "FAIL"
	stateUnsupported = "unsupported"
)

// cell is one kernel × backend.
type cell struct {
	State                   string
	Text                    string
	Passed, Failed, Skipped int
	FailedTests             []string
	Skips                   []string // "TestX: reason"
	Duration                time.Duration
	Tail                    []string // log lines to show for a failure
	Incomplete              bool     // the run did not finish (timeout, crash)
}

func (c *cell) fail(why string) {
	c.State = stateFail
	if c.Text == "" || !strings.HasPrefix(c.Text, stateFail) {
		c.Text = "FAIL (" + why + ")"
	} else {
		c.Text = strings.TrimSuffix(c.Text, ")") + "; " + why + ")"
	}
}

func (r *row) failAll(cfg *config, why string) {
	logf("%s: %s", r.Kernel, why)
	for _, be := range r.backendsOr(cfg) {
		c := &cell{Incomplete: true}
		c.fail(why)
		r.Cells[be] = c
	}
}

func (r *row) failed() bool {
	if r.AutoWrong != "" {
		return true
	}
	for _, c := range r.Cells {
		if c.State == stateFail {
			return true
		}
	}
	return false
}

func failed(rows []*row) bool {
	for _, r := range rows {
		if r.failed() {
			return true
		}
	}
	return false
}

var (
	resultLine = regexp.MustCompile(`--- (PASS|FAIL|SKIP): (\S+) \(`)
	runLine    = regexp.MustCompile(`=== RUN\s+(\S+)`)
	logLine    = regexp.MustCompile(`^\s+\S+\.go:\d+: (.*)$`)
)

// evaluate turns one run of the test binary (its -test.v output and exit
// code; -1 if it did not finish) into a cell.
func evaluate(lines []string, rc int) *cell {
	c := &cell{}
	var skipReasons []string
	for i, line := range lines {
		m := resultLine.FindStringSubmatch(line)
		if m == nil || strings.Contains(m[2], "/") {
			continue
		}
		switch m[1] {
		case "PASS":
			c.Passed++
		case "FAIL":
			c.Failed++
			c.FailedTests = append(c.FailedTests, m[2])
		case "SKIP":
			c.Skipped++
			reason := skipReason(lines[:i], m[2])
			c.Skips = append(c.Skips, m[2]+": "+reason)
			skipReasons = append(skipReasons, reason)
		}
	}
	ran := c.Passed + c.Failed
	switch {
	case c.Failed > 0:
		c.State, c.Text = stateFail, "FAIL ("+strings.Join(c.FailedTests, ", ")+")"
	case rc != 0:
		c.State = stateFail
		if rc > 0 {
			c.Text = fmt.Sprintf("FAIL (exit %d: %s)", rc, firstProblem(lines))
		}
	case ran == 0 && c.Skipped > 0:
		c.State, c.Text = stateUnsupported, "unsupported: "+mostCommon(skipReasons)
	case ran == 0:
		c.State, c.Text = stateFail, "FAIL (no tests ran: check -run)"
	default:
		c.State = statePass
		c.Text = fmt.Sprintf("pass (%d/%d", c.Passed, ran)
		if c.Skipped > 0 {
			c.Text += fmt.Sprintf(", %d skipped", c.Skipped)
		}
		c.Text += ")"
	}
	return c
}

// failureExcerpt is what to show for a failed run: each failed test's
// output (from its === RUN line to its --- FAIL line), or without one the
// last lines; n lines in all at most.
func failureExcerpt(lines []string, failedTests []string, n int) []string {
	var out []string
	for _, name := range failedTests {
		start, end := -1, -1
		for i, l := range lines {
			if m := runLine.FindStringSubmatch(l); m != nil && m[1] == name && start < 0 {
				start = i
			}
			if m := resultLine.FindStringSubmatch(l); m != nil && m[1] == "FAIL" && m[2] == name {
				end = i
			}
		}
		if start >= 0 && end >= start {
			out = append(out, tail(lines[start:end+1], n/len(failedTests))...)
		}
	}
	if len(out) == 0 {
		return tail(lines, n)
	}
	return out
}

// skipReason is the last thing test name logged before its --- SKIP line.
func skipReason(before []string, name string) string {
	for i := len(before) - 1; i >= 0; i-- {
		if m := runLine.FindStringSubmatch(before[i]); m != nil && m[1] == name {
			break
		}
		if m := logLine.FindStringSubmatch(before[i]); m != nil {
			return m[1]
		}
	}
	return "no reason given"
}

// firstProblem finds the line that says why a test binary failed without
// failing a test (a panic, a timeout, TestMain).
func firstProblem(lines []string) string {
	for _, l := range lines {
		for _, p := range []string{"panic: ", "fatal error: ", "building tuxscope", "FAIL\t", "exec format error"} {
			if strings.Contains(l, p) {
				return strings.TrimSpace(l)
			}
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if s := strings.TrimSpace(lines[i]); s != "" && s != "FAIL" {
			return s
		}
	}
	return "no output"
}

func mostCommon(list []string) string {
	n := map[string]int{}
	best := ""
	for _, s := range list {
		n[s]++
		if n[s] > n[best] {
			best = s
		}
	}
	return best
}

// saveProbes saves probe output (doctor) to the output directory.
func (r *row) saveProbes(cfg *config, out map[string][]string, failures map[string]string) {
	for _, p := range guestProbes {
		if lines, ok := out[p.Name]; ok {
			data := []byte(strings.TrimSpace(strings.Join(lines, "\n")) + "\n")
			file := filepath.Join(cfg.out, r.Kernel+"-"+p.SaveAs)
			os.WriteFile(file, data, 0o644)
			r.Notes = append(r.Notes, fmt.Sprintf("%s: saved to %s", p.Name, file))
			if p.Name == "doctor" {
				r.doctor = data
				if s := doctorSummary(data); s != "" {
					r.Notes = append(r.Notes, "doctor says: "+s)
				}
			}
		} else if f, ok := failures[p.Name]; ok {
			r.Notes = append(r.Notes, fmt.Sprintf("%s: not saved, %s", p.Name, strings.TrimSpace(f)))
		}
	}
}

// applyDoctor turns failed cells into "unsupported" where tuxscope doctor
// says the kernel does not support the backend. A run that did not finish
// (a hang, a crash) stays a failure.
func (r *row) applyDoctor() {
	if r.doctor == nil {
		return
	}
	wantAuto, supported := expectations(r.spec)
	var doc doctorReport
	if json.Unmarshal(r.doctor, &doc) == nil {
		for _, a := range doc.Auto {
			if a.Backend != wantAuto {
				r.AutoWrong += fmt.Sprintf("auto picks %q for %s, expected %q; ", a.Backend, a.Point, wantAuto)
			}
		}
		if len(doc.Auto) == 0 {
			r.AutoWrong = "doctor reported no auto choice"
		}
		if r.AutoWrong != "" {
			r.Notes = append(r.Notes, "FAIL: "+strings.TrimSuffix(r.AutoWrong, "; "))
		}
	}
	for be, c := range r.Cells {
		reason := doctorUnsupported(r.doctor, be)
		if reason != "" && slices.Contains(supported, be) {
			// A backend this kernel must support: "unsupported" is a regression.
			c.fail("doctor says unsupported, but this kernel supports it: " + reason)
			continue
		}
		if reason != "" && c.State == stateFail && !c.Incomplete {
			r.Notes = append(r.Notes, fmt.Sprintf("%s: doctor says unsupported (%s); test result was %s", be, reason, c.Text))
			c.State, c.Text, c.Tail = stateUnsupported, "unsupported: "+reason, nil
		}
	}
	if r.spec != nil && r.spec.NoFentry != "" && doctorUnsupported(r.doctor, "fentry") != "" {
		r.Notes = append(r.Notes, "fentry unsupported, as expected here: "+r.spec.NoFentry)
	}
}

// expectations is what a kernel (nil: the host's) must give: auto's choice
// for every hook point and the backends that must work. Our host kernel
// (6.18, no kprobes, fentry refused) allows only tracepoints; the Debian
// kernels under qemu allow all three, and auto must prefer fentry there,
// except on those that cannot run fentry programs (kernelSpec.NoFentry),
// where auto must pick kprobe.
func expectations(k *kernelSpec) (auto string, supported []string) {
	switch {
	case k == nil:
		return "tracepoint", []string{"tracepoint", "auto"}
	case k.NoFentry != "":
		return "kprobe", []string{"kprobe", "tracepoint", "auto"}
	}
	return "fentry", []string{"fentry", "kprobe", "tracepoint", "auto"}
}

// doctorReport is the part of `tuxscope doctor --format json` the runner
// reads: each backend's hook points and whether they work here.
type doctorReport struct {
	Backends []struct {
		Backend string        `json:"backend"`
		Points  []doctorPoint `json:"points"`
	} `json:"backends"`
	Auto []struct {
		Point   string `json:"point"`
		Backend string `json:"backend"`
	} `json:"auto"`
}

type doctorPoint struct {
	Point  string `json:"point"`
	OK     bool   `json:"ok"`
	Reason string `json:"reason"`
}

// doctorSummary is the doctor's verdict in one line: which backends work,
// and what auto picks for each hook point.
func doctorSummary(doc []byte) string {
	var r doctorReport
	if json.Unmarshal(doc, &r) != nil {
		return ""
	}
	var parts []string
	for _, b := range r.Backends {
		if why := doctorUnsupported(doc, b.Backend); why != "" {
			parts = append(parts, b.Backend+" no ("+why+")")
		} else {
			parts = append(parts, b.Backend+" ok")
		}
	}
	var auto []string
	for _, a := range r.Auto {
		auto = append(auto, a.Point+"="+a.Backend)
	}
	if len(auto) > 0 {
		parts = append(parts, "auto: "+strings.Join(auto, " "))
	}
	return strings.Join(parts, ", ")
}

// doctorUnsupported says why the doctor reports backend as unusable on its
// kernel, or "" if it does not.
func doctorUnsupported(doc []byte, backend string) string {
	var r doctorReport
	if json.Unmarshal(doc, &r) != nil {
		return ""
	}
	for _, b := range r.Backends {
		if b.Backend != backend {
			continue
		}
		var why []string
		same := true
		for _, p := range b.Points {
			if !p.OK {
				why = append(why, p.Point+": "+p.Reason)
			}
			same = same && p.Reason == b.Points[0].Reason
		}
		if len(why) > 0 && len(why) == len(b.Points) && same {
			return b.Points[0].Reason // one reason for every point
		}
		return strings.Join(why, "; ")
	}
	return ""
}

// runHost runs the integration tests on the host kernel with go test, once
// per backend, and the probes.
func runHost(ctx context.Context, cfg *config, bins *binaries) *row {
	r := &row{Kernel: "host", Cells: map[string]*cell{}}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		r.Release = strings.TrimSpace(string(b))
	}
	r.Log = filepath.Join(cfg.out, "host.log")
	logFile, err := os.Create(r.Log)
	if err != nil {
		r.failAll(cfg, err.Error())
		return r
	}
	defer logFile.Close()
	start := time.Now()

	out := map[string][]string{}
	failures := map[string]string{}
	for _, p := range guestProbes {
		c := exec.CommandContext(ctx, "sh", "-c", p.Cmd)
		c.Env = append(os.Environ(), "TUXSCOPE="+bins.Tuxscope)
		var stdout, stderr bytes.Buffer
		c.Stdout, c.Stderr = &stdout, &stderr
		err := c.Run()
		fmt.Fprintf(logFile, "# probe %s: %s: %v\n%s%s", p.Name, p.Cmd, err, stdout.String(), stderr.String())
		if err == nil {
			out[p.Name] = strings.Split(stdout.String(), "\n")
		} else {
			var ee *exec.ExitError
			rc := -1
			if errors.As(err, &ee) {
				rc = ee.ExitCode()
			}
			failures[p.Name] = fmt.Sprintf("rc=%d %s", rc, strings.ReplaceAll(strings.TrimSpace(stderr.String()), "\n", " "))
		}
	}
	r.saveProbes(cfg, out, failures)

	for _, be := range cfg.backends {
		if reason := doctorUnsupported(r.doctor, be); reason != "" && !cfg.runUnsupported {
			r.Cells[be] = &cell{State: stateUnsupported, Text: "unsupported: " + reason}
			logf("host: backend %s: unsupported (doctor): %s", be, reason)
			continue
		}
		args := []string{"test", "-count=1", "-v", "-timeout", cfg.hostTimeout.String()}
		if cfg.run != "" {
			args = append(args, "-run", cfg.run)
		}
		args = append(args, "./test/integration")
		logf("host: %s %s (backend %s)", cfg.goBin, strings.Join(args, " "), be)
		tctx, cancel := context.WithTimeout(ctx, cfg.hostTimeout+time.Minute)
		c := exec.CommandContext(tctx, cfg.goBin, args...)
		c.Dir = cfg.repo
		c.Env = append(os.Environ(), testEnv(bins.Tuxscope, be)...)
		var buf bytes.Buffer
		c.Stdout, c.Stderr = &buf, &buf
		t0 := time.Now()
		err := c.Run()
		cancel()
		d := time.Since(t0)
		fmt.Fprintf(logFile, "# backend %s: %s %s: %v (%s)\n%s", be, cfg.goBin, strings.Join(args, " "), err, d.Round(time.Millisecond), buf.String())
		rc := 0
		if err != nil {
			rc = -1
			var ee *exec.ExitError
			if errors.As(err, &ee) && ee.ExitCode() >= 0 {
				rc = ee.ExitCode()
			}
		}
		lines := strings.Split(strings.ReplaceAll(buf.String(), "\r", ""), "\n")
		cl := evaluate(lines, rc)
		if rc < 0 {
			cl.fail(fmt.Sprintf("go test did not finish: %v", err))
			cl.Incomplete = true
		}
		cl.Duration = d
		if cl.State == stateFail {
			cl.Tail = failureExcerpt(lines, cl.FailedTests, cfg.tailLines)
		}
		r.Cells[be] = cl
		logf("host: backend %s: %s in %s", be, cl.Text, round(d))
	}
	r.Total = time.Since(start)
	r.applyDoctor()
	return r
}

// renderReport is the summary printed at the end: the matrix, timings,
// notes and the log tails of failures.
func renderReport(cfg *config, rows []*row, total time.Duration) string {
	var b strings.Builder
	cols := orderedBackends(cfg.backends)
	run := cfg.run
	if run == "" {
		run = "(all tests)"
	}
	fmt.Fprintf(&b, "\n## tuxscope kernel matrix\n\ntests: -test.run %s\n\n", run)
	fmt.Fprintf(&b, "| kernel | %s |\n|---|%s\n", strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
	for _, r := range rows {
		name := r.Kernel
		if r.Release != "" {
			name += " (" + r.Release + ")"
		} else if r.image != nil {
			name += " (" + r.image.Release + ")"
		}
		fmt.Fprintf(&b, "| %s |", name)
		if r.Unavailable != "" {
			fmt.Fprintf(&b, " unavailable: %s |%s\n", oneLine(r.Unavailable, 300), strings.Repeat(" |", len(cols)-1))
			continue
		}
		for _, be := range cols {
			c := r.Cells[be]
			if c == nil {
				b.WriteString(" - |")
				continue
			}
			fmt.Fprintf(&b, " %s |", oneLine(c.Text, 400))
		}
		b.WriteString("\n")
	}
	b.WriteString("\npass (P/R, S skipped): P of the R tests that ran passed; S more skipped. " +
		"unsupported: every test skipped, or tuxscope doctor says the kernel lacks the backend. " +
		"unavailable: the kernel could not be fetched (not a failure).\n")

	fmt.Fprintf(&b, "\n### timings\n\n| kernel | package | fetch | initramfs | boot to /init |")
	for _, be := range cols {
		fmt.Fprintf(&b, " %s tests |", be)
	}
	b.WriteString(" total |\n|---|---|---|---|---|" + strings.Repeat("---|", len(cols)) + "---|\n")
	for _, r := range rows {
		pkg := r.Package
		if pkg == "" {
			pkg = "-"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |", r.Kernel, pkg, dur(r.Fetch), dur(r.Initramfs), dur(r.Boot))
		for _, be := range cols {
			if c := r.Cells[be]; c != nil {
				fmt.Fprintf(&b, " %s |", dur(c.Duration))
			} else {
				b.WriteString(" - |")
			}
		}
		fmt.Fprintf(&b, " %s |\n", dur(r.Fetch+r.Initramfs+r.Total))
	}
	fmt.Fprintf(&b, "\nwall clock: %s (%d guest(s) at a time; binaries built in the first seconds)\n", round(total), cfg.jobs)

	var notes []string
	for _, r := range rows {
		for _, n := range r.Notes {
			notes = append(notes, r.Kernel+": "+n)
		}
		// One line per skipped test and reason, naming the backends.
		var skips []string
		backends := map[string][]string{}
		for _, be := range cols {
			if c := r.Cells[be]; c != nil {
				for _, s := range c.Skips {
					if backends[s] == nil {
						skips = append(skips, s)
					}
					backends[s] = append(backends[s], be)
				}
			}
		}
		for _, s := range skips {
			notes = append(notes, fmt.Sprintf("%s: skipped %s (%s)", r.Kernel, s, strings.Join(backends[s], ", ")))
		}
	}
	if len(notes) > 0 {
		b.WriteString("\n### notes\n\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	for _, r := range rows {
		for _, be := range cols {
			c := r.Cells[be]
			if c == nil || c.State != stateFail {
				continue
			}
			fmt.Fprintf(&b, "\n### %s / %s: %s\n\nlog: %s\n", r.Kernel, be, c.Text, r.Log)
			if len(c.Tail) > 0 {
				fmt.Fprintf(&b, "\n```\n%s\n```\n", strings.Join(c.Tail, "\n"))
			}
		}
	}
	fmt.Fprintf(&b, "\nlogs and doctor output: %s\n", cfg.out)
	return b.String()
}

// orderedBackends puts the selected backends in knownBackends' order.
func orderedBackends(sel []string) []string {
	out := append([]string(nil), sel...)
	idx := func(s string) int {
		for i, k := range knownBackends {
			if k == s {
				return i
			}
		}
		return len(knownBackends)
	}
	sort.SliceStable(out, func(i, j int) bool { return idx(out[i]) < idx(out[j]) })
	return out
}

func dur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// oneLine makes s fit in a table cell.
func oneLine(s string, n int) string {
	s = strings.ReplaceAll(strings.Join(strings.Fields(s), " "), "|", "/")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

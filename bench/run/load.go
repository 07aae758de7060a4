package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tuxscope/tuxscope/bench/internal/load"
)

// layout is how the loadgen runs: one process holding the server and all
// the clients (the zero value), or separate processes: servers server
// processes sharing the port with SO_REUSEPORT (with more than one), as a
// prefork server's workers do, and clients client processes sharing the
// concurrency and the rate, each (with more than one) from a loopback
// address of its own, so that a client end's address names its process.
type layout struct{ servers, clients int }

func (l layout) split() bool { return l.servers > 0 }

// cellName is a multi-process cell's name: base, then the layout.
func (l layout) cellName(base string) string { return base + ", " + l.String() + " procs" }

// String and Set make a split layout a flag value: SERVERSxCLIENTS.
func (l *layout) String() string { return fmt.Sprintf("%dx%d", l.servers, l.clients) }

func (l *layout) Set(s string) error {
	a, b, ok := strings.Cut(s, "x")
	srv, err1 := strconv.Atoi(a)
	cli, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || srv < 1 || cli < 1 || srv > 64 || cli > 64 {
		return fmt.Errorf("want SERVERSxCLIENTS, 1 to 64 processes each, e.g. 2x4")
	}
	l.servers, l.clients = srv, cli
	return nil
}

// clientSource is the local address of client process i of n (none when
// there is one client process: its pid alone names it).
func clientSource(i, n int) string {
	if n < 2 {
		return ""
	}
	return fmt.Sprintf("127.0.0.%d", 11+i)
}

// loadProc is one loadgen process.
type loadProc struct {
	cmd    *exec.Cmd
	out    *bufio.Reader // a server's stdout
	stdout bytes.Buffer  // a client's
	stderr bytes.Buffer
}

func (p *loadProc) cpu() float64 {
	return p.cmd.ProcessState.UserTime().Seconds() + p.cmd.ProcessState.SystemTime().Seconds()
}

func (p *loadProc) fail(what string, err error) error {
	return fmt.Errorf("loadgen %s: %v: %s", what, err, strings.TrimSpace(p.stderr.String()))
}

// runLoad runs bench/loadgen against port at rate (0: max) for d, as one
// process or as l's separate servers and clients; their counts are summed
// into one result (rate: all the clients' completed connections over the
// longest client's duration). The CPU is the loadgen's (all its
// processes') user and system time.
func (e *env) runLoad(port int, rate float64, d time.Duration, l layout) (load.Result, float64, error) {
	o := e.o
	var lr load.Result
	clients := max(1, l.clients)
	if o.concurrency < clients {
		return lr, 0, fmt.Errorf("-concurrency %d is fewer than the %d client processes", o.concurrency, clients)
	}
	common := []string{"-port", strconv.Itoa(port), "-close", o.closeMode, "-payload", strconv.Itoa(o.payload)}
	var procs []*loadProc
	defer func() {
		for _, p := range procs {
			if p.cmd.Process != nil && p.cmd.ProcessState == nil {
				p.cmd.Process.Kill()
				p.cmd.Wait()
			}
		}
	}()
	start := func(p *loadProc) error {
		procs = append(procs, p)
		p.cmd.Stderr = &p.stderr
		return p.cmd.Start()
	}

	var servers []*loadProc
	for i := 0; i < l.servers; i++ {
		args := append([]string{"-role", "server"}, common...)
		if l.servers > 1 {
			args = append(args, "-reuseport")
		}
		p := &loadProc{cmd: exec.Command(e.loadgen, args...)}
		pipe, err := p.cmd.StdoutPipe()
		if err != nil {
			return lr, 0, err
		}
		p.out = bufio.NewReader(pipe)
		if err := start(p); err != nil {
			return lr, 0, err
		}
		servers = append(servers, p)
	}
	for _, p := range servers {
		if _, err := p.out.ReadString('\n'); err != nil {
			return lr, 0, p.fail("server", err)
		}
	}

	var cls []*loadProc
	for i := 0; i < clients; i++ {
		// The concurrency and the rate shared out; the first processes
		// take the remainder.
		conc := o.concurrency / clients
		if i < o.concurrency%clients {
			conc++
		}
		args := append([]string{"-duration", d.String(), "-concurrency", strconv.Itoa(conc),
			"-rate", strconv.FormatFloat(rate/float64(clients), 'f', -1, 64)}, common...)
		if l.split() {
			args = append(args, "-role", "client")
			if src := clientSource(i, clients); src != "" {
				args = append(args, "-source", src)
			}
		}
		p := &loadProc{cmd: exec.Command(e.loadgen, args...)}
		p.cmd.Stdout = &p.stdout
		if err := start(p); err != nil {
			return lr, 0, err
		}
		cls = append(cls, p)
	}
	var cpu float64
	var errs []error
	for i, p := range cls {
		if err := p.cmd.Wait(); err != nil {
			errs = append(errs, p.fail("", err))
			continue
		}
		cpu += p.cpu()
		var r load.Result
		if err := json.Unmarshal(p.stdout.Bytes(), &r); err != nil {
			errs = append(errs, fmt.Errorf("loadgen output %q: %v", p.stdout.String(), err))
			continue
		}
		if i == 0 {
			lr = r
			lr.Concurrency, lr.TargetRate = o.concurrency, rate
			if l.split() {
				lr.ClientBy = map[string]int{}
			}
		} else {
			lr.Attempted += r.Attempted
			lr.Completed += r.Completed
			lr.Failed += r.Failed
			lr.Late += r.Late
			lr.DurationSec = max(lr.DurationSec, r.DurationSec)
			lr.Errors = addErrors(lr.Errors, r.Errors)
		}
		if l.split() {
			lr.ClientPIDs = append(lr.ClientPIDs, r.PID)
			if r.Source != "" {
				lr.ClientBy[r.Source] = r.PID
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return lr, cpu, err
	}
	if lr.DurationSec > 0 {
		lr.Rate = float64(lr.Completed) / lr.DurationSec
	}

	for _, p := range servers {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range servers {
		rest, _ := io.ReadAll(p.out)
		if err := p.cmd.Wait(); err != nil {
			errs = append(errs, p.fail("server", err))
			continue
		}
		cpu += p.cpu()
		var sr load.Result
		if err := json.Unmarshal(bytes.TrimSpace(rest), &sr); err != nil {
			errs = append(errs, fmt.Errorf("loadgen server output %q: %v", rest, err))
			continue
		}
		lr.ServerPIDs = append(lr.ServerPIDs, sr.PID)
		lr.Accepted += sr.Accepted
		lr.ServerClosed += sr.ServerClosed
		lr.ServerErrors += sr.ServerErrors
		lr.Errors = addErrors(lr.Errors, sr.Errors)
	}
	return lr, cpu, errors.Join(errs...)
}

// addErrors adds the error counts of b to a.
func addErrors(a, b map[string]uint64) map[string]uint64 {
	if len(b) > 0 && a == nil {
		a = map[string]uint64{}
	}
	for k, n := range b {
		a[k] += n
	}
	return a
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

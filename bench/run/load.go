package main

import (
	"bufio"
	"bytes"
	"encoding/json"
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

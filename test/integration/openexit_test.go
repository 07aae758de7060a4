package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tuxscope/tuxscope/internal/schema"
)

// heldConns makes n loopback connections to a listener of this test
// process and keeps both ends open; close closes them all (clients first)
// and waits until the kernel has closed every one (only TIME_WAIT and the
// listener left on the port).
type heldConns struct {
	t       *testing.T
	l       net.Listener
	port    int
	clients []net.Conn
	servers []net.Conn
}

func listenHeld(t *testing.T) *heldConns {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &heldConns{t: t, l: l, port: l.Addr().(*net.TCPAddr).Port}
	t.Cleanup(func() { h.closeAll(); l.Close() })
	return h
}

func (h *heldConns) open(n int) {
	h.t.Helper()
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp4", h.l.Addr().String())
		if err != nil {
			h.t.Fatal(err)
		}
		s, err := h.l.Accept()
		if err != nil {
			h.t.Fatal(err)
		}
		h.clients, h.servers = append(h.clients, c), append(h.servers, s)
	}
}

func (h *heldConns) closeAll() {
	for _, c := range h.clients {
		c.Close()
	}
	for _, s := range h.servers {
		s.Close()
	}
	h.clients, h.servers = nil, nil
}

// closeAndWait closes every connection and waits until the kernel has
// taken each to CLOSE.
func (h *heldConns) closeAndWait() {
	h.t.Helper()
	h.closeAll()
	waitUntil(h.t, "the connections to close", func() bool { return openOnPort(h.t, h.port) == 0 })
}

// openOnPort counts the sockets in /proc/net/tcp with port at either end
// that are neither listening nor in TIME_WAIT (whose full socket already
// went through CLOSE).
func openOnPort(t *testing.T, port int) int {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 4 || fl[0] == "sl" {
			continue
		}
		lp, rp := hexPort(fl[1]), hexPort(fl[2])
		if (lp == port || rp == port) && fl[3] != "06" && fl[3] != "0A" {
			n++
		}
	}
	return n
}

func hexPort(addr string) int {
	_, p, _ := strings.Cut(addr, ":")
	v, _ := strconv.ParseUint(p, 16, 16)
	return int(v)
}

// runUntilSIGINT runs `tuxscope net args...` until attached, calls fn,
// stops it with SIGINT and returns its stdout and stderr.
func runUntilSIGINT(t *testing.T, fn func(), args ...string) (stdout, stderr string) {
	t.Helper()
	var out, errOut syncBuffer
	cmd := netCommand(args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "tuxscope to attach", func() bool { return strings.Contains(errOut.String(), "tuxscope: attached") })
	fn()
	time.Sleep(300 * time.Millisecond) // past --max-delay: the events are read
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Errorf("tuxscope net %v: %v; stderr:\n%s", args, err, errOut.String())
	}
	return out.String(), errOut.String()
}

// At exit tuxscope says how many tracked connections were still open: the
// test holds 3 connections (both ends in this process, so 3 outbound and 3
// inbound) open across SIGINT, in table mode (stderr), JSON (an
// open_at_exit record) and the summaries; and 0 when it closed them all
// first. --port and --pid select only this test's connections.
func TestOpenAtExit(t *testing.T) {
	requireRoot(t)
	const n = 3
	for _, held := range []bool{true, false} {
		name := "held"
		if !held {
			name = "closed"
		}
		t.Run(name, func(t *testing.T) {
			wantOut, wantIn := 0, 0
			if held {
				wantOut, wantIn = n, n
			}
			// Each run gets a fresh port: nothing of an earlier run counts.
			run := func(args ...string) (string, string) {
				h := listenHeld(t)
				args = append(args, "--port", fmt.Sprint(h.port), "--pid", fmt.Sprint(os.Getpid()))
				return runUntilSIGINT(t, func() {
					h.open(n)
					if !held {
						h.closeAndWait()
					}
				}, args...)
			}

			_, stderr := run()
			line := fmt.Sprintf("tuxscope: %d connections still open at exit (not closed while tracing): %d outbound, %d inbound\n", wantOut+wantIn, wantOut, wantIn)
			if held != strings.Contains(stderr, line) || (!held && strings.Contains(stderr, "still open")) {
				t.Errorf("table mode: stderr %q, want the line %q: %v", stderr, line, held)
			}

			stdout, stderr := run("--format", "json")
			var last schema.Event
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
				t.Fatalf("last JSON line %q: %v", lines[len(lines)-1], err)
			}
			if last.EventType != "open_at_exit" || last.Count != uint64(wantOut+wantIn) || u64(last.Outbound) != uint64(wantOut) || u64(last.Inbound) != uint64(wantIn) {
				t.Errorf("JSON: last record %s, want open_at_exit %d (%d out, %d in); output:\n%s\nstderr:\n%s", lines[len(lines)-1], wantOut+wantIn, wantOut, wantIn, stdout, stderr)
			}
			if strings.Contains(stderr, "still open") {
				t.Errorf("JSON mode says it in band, not on stderr: %q", stderr)
			}

			stdout, _ = run("--summary")
			want := fmt.Sprintf("\nstill open at exit: %d (%d outbound, %d inbound), not closed while tracing\n", wantOut+wantIn, wantOut, wantIn)
			if !strings.Contains(stdout, want) {
				t.Errorf("summary:\n%s\nwant the line %q", stdout, want)
			}

			stdout, _ = run("--summary", "--format", "json")
			var s schema.Summary
			if err := json.Unmarshal([]byte(strings.TrimSpace(stdout)), &s); err != nil {
				t.Fatalf("summary JSON %q: %v", stdout, err)
			}
			if o := s.OpenAtExit; o == nil || *o != (schema.OpenAtExit{Count: uint64(wantOut + wantIn), Outbound: uint64(wantOut), Inbound: uint64(wantIn)}) {
				t.Errorf("summary JSON: open_at_exit %+v, want %d out, %d in: %s", o, wantOut, wantIn, stdout)
			}
		})
	}
}

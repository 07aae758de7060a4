package tracer

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tuxscope/tuxscope/internal/event"
)

// eventLog is a handler that keeps one line per event: its type, pid,
// ends, and (close) bytes each way and who closed, or (reset) who reset.
type eventLog struct {
	recorder
	mu    sync.Mutex
	lines []string
}

func (l *eventLog) Event(e *event.Event) error {
	s := fmt.Sprintf("%s pid=%d %s>%s", e.Type, e.PID, e.Local, e.Remote)
	switch e.Type {
	case event.Close:
		s += fmt.Sprintf(" sent=%d received=%d by=%s reset=%v", e.BytesSent, e.BytesReceived, e.ClosedBy(), e.Flags&event.FlagReset != 0)
	case event.Reset:
		s += " by=" + e.ResetBy()
	}
	l.mu.Lock()
	l.lines = append(l.lines, s)
	l.mu.Unlock()
	return nil
}

func (l *eventLog) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.lines, s)
}

// The classic tracepoints of the state, reset and retransmit points are
// every backend's fallback where the raw ones cannot be attached, so no
// backend attaches them on this kernel: this test does, and checks what
// they report of two connections it makes, one closed, one reset.
func TestClassicTracepointFallback(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: cannot load BPF programs")
	}
	if _, err := os.Stat(KernelBTFPath); err != nil {
		t.Skipf("no kernel BTF: %v", err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	classic := map[HookPoint]Impl{PointState: implTracepoint, PointReset: implTracepoint, PointRetransmit: implTracepoint}
	tr, err := Open(Config{Ports: []uint16{port}, IPv4: true, IPv6: true, impls: classic})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for _, c := range tr.Choices() {
		if want, ok := classic[c.Point]; ok && c.Backend != want {
			t.Fatalf("%s: attached %s (%v), want %s", c.Point, c.Backend, c.Hooks, want)
		}
	}
	if len(tr.HealthErrors) > 0 {
		t.Fatalf("health points: %v", tr.HealthErrors)
	}
	log := &eventLog{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx, log) }()

	// A connection that sends 100 bytes, gets 37 back and closes, the
	// server closing after it; then one the client resets.
	served, accepted := make(chan error, 2), make(chan struct{})
	go func() {
		for i := 0; i < 2; i++ {
			c, err := ln.Accept()
			if err != nil {
				served <- err
				return
			}
			if i == 1 {
				// accepted before the client resets it, so that the
				// server's end is this process's (not an accept
				// queue's, whose reset has no owner yet)
				close(accepted)
			}
			if i == 0 {
				buf := make([]byte, 100)
				if _, err = io.ReadFull(c, buf); err == nil {
					if _, err = c.Write(buf[:37]); err == nil {
						_, err = c.Read(buf) // EOF: the client closed
						if err == io.EOF {
							err = nil
						}
					}
				}
			} else {
				_, err = c.Read(make([]byte, 1)) // the reset
				if err != nil {
					err = nil
				}
			}
			c.Close()
			served <- err
		}
	}()
	pid := os.Getpid()
	c1, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Write(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c1, make([]byte, 37)); err != nil {
		t.Fatal(err)
	}
	local1 := c1.LocalAddr().String()
	c1.Close()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	c2, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	local2 := c2.LocalAddr().String()
	select {
	case <-accepted:
	case err := <-served:
		t.Fatalf("accepting the second connection: %v", err)
	}
	if err := c2.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	c2.Close()
	if err := <-served; err != nil {
		t.Fatal(err)
	}

	srv := ln.Addr().String()
	want := []string{
		fmt.Sprintf("close pid=%d %s>%s sent=100 received=37 by=local reset=false", pid, local1, srv),
		fmt.Sprintf("close pid=%d %s>%s sent=37 received=100 by=remote reset=false", pid, srv, local1),
		fmt.Sprintf("reset pid=%d %s>%s by=local", pid, local2, srv),
		fmt.Sprintf("reset pid=%d %s>%s by=remote", pid, srv, local2),
		fmt.Sprintf("close pid=%d %s>%s sent=0 received=0 by=local reset=true", pid, local2, srv),
		fmt.Sprintf("close pid=%d %s>%s sent=0 received=0 by=remote reset=true", pid, srv, local2),
	}
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if !slices.ContainsFunc(want, func(s string) bool { return !log.has(s) }) {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	for _, s := range want {
		if !slices.Contains(log.lines, s) {
			t.Errorf("missing %q", s)
		}
	}
	if t.Failed() {
		t.Logf("events:\n%s", strings.Join(log.lines, "\n"))
	}
	for _, c := range log.events() {
		if strings.HasPrefix(c, "lost") {
			t.Errorf("loss reported: %s", c)
		}
	}
}

package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// With a one-page ring buffer and a reader that stops reading, most of a
// burst cannot be queued: the drops are counted in the kernel and reported
// in band, and events printed plus events reported lost add up exactly to
// what the test did.
func TestLostEventsAreReported(t *testing.T) {
	requireRoot(t)
	const conns = 2000

	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	cmd := netCommand("--format", "json", "--type", "connect,accept", "--buffer-size", "4096", "--port", fmt.Sprint(port))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGINT); cmd.Wait() }()
	waitUntil(t, "tuxscope to attach", func() bool { return strings.Contains(stderr.String(), "attached") })

	// Nobody reads stdout yet: once the pipe is full, tuxscope blocks on
	// its write and the ring buffer overflows.
	for i := 0; i < conns; i++ {
		c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}

	var events, lost, lostRecords int
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(20 * time.Second)
	for events+lost < 2*conns {
		select {
		case line := <-lines:
			var ev jsonEvent
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("not JSON: %q", line)
			}
			switch ev.EventType {
			case "lost":
				if line != fmt.Sprintf(`{"time":"%s","event_type":"lost","count":%d,"reason":"ring_buffer_full"}`, ev.Time, ev.Count) {
					t.Errorf("lost record %q has unexpected keys or reason", line)
				}
				lost += int(ev.Count)
				lostRecords++
			case "connect", "accept":
				events++
			default:
				t.Errorf("unexpected event %q", line)
			}
		case <-timeout:
			t.Fatalf("after 20s: %d events + %d lost, want %d in all", events, lost, 2*conns)
		}
	}
	if events+lost != 2*conns {
		t.Errorf("%d events + %d lost = %d, want %d", events, lost, events+lost, 2*conns)
	}
	if lost == 0 || lostRecords == 0 {
		t.Errorf("no lost events reported (%d events)", events)
	}
	t.Logf("%d events printed, %d reported lost in %d records", events, lost, lostRecords)
}

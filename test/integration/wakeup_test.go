package integration

import (
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

// An idle tuxscope does not poll: after a quiet --max-delay it asks the
// kernel to wake it for the next event, which then shows up at once, not at
// its next timer. With --max-delay 500ms the reader, having read an event at
// T, polls at T+500ms and, finding nothing new by T+1s, arms the wake-up: a
// connect at T+1.2s shows up in a few ms, where a reader that only polled
// would see it at T+1.5s.
func TestIdleReaderWakesForTheNextEvent(t *testing.T) {
	requireRoot(t)
	port := closingListener(t)
	tr := startTracer(t, "--max-delay", "500ms", "--type", "connect", "--port", strconv.Itoa(port))
	for i := 0; i < 3; i++ {
		time.Sleep(1200 * time.Millisecond) // two quiet --max-delay periods: the reader is idle
		start := time.Now()
		c, err := net.Dial("tcp4", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		sport := c.LocalAddr().(*net.TCPAddr).Port
		ev := tr.waitFor("connect", func(ev jsonEvent) bool { return ev.EventType == "connect" && ev.Sport == sport })
		if d := time.Since(start); d > 150*time.Millisecond {
			t.Errorf("connect %d after a quiet spell seen after %v, want it at once", i, d)
		}
		if ev.PID != os.Getpid() || ev.Dport != port {
			t.Errorf("connect %d: %v, want pid %d, dport %d", i, ev, os.Getpid(), port)
		}
		c.Close()
	}
}

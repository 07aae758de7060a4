package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

type summaryPeer struct {
	Direction     string            `json:"direction"`
	Peer          string            `json:"peer"`
	Port          int               `json:"port"`
	Connects      int               `json:"connects"`
	Accepts       int               `json:"accepts"`
	Established   int               `json:"established"`
	Failures      int               `json:"failures"`
	Errors        map[string]int    `json:"errors"`
	Closes        int               `json:"closes"`
	BytesSent     int               `json:"bytes_sent"`
	BytesReceived int               `json:"bytes_received"`
	LatencyNs     map[string]uint64 `json:"latency_ns"`
	DurationNs    map[string]uint64 `json:"duration_ns"`
}

type summaryReport struct {
	EventType string `json:"event_type"`
	Processes []struct {
		PID   int           `json:"pid"`
		Comm  string        `json:"comm"`
		Peers []summaryPeer `json:"peers"`
	} `json:"processes"`
}

// The summary's numbers are what the test did: three clients (one
// process each) each send 100 bytes and get 200 back from one server, and
// a fourth is refused.
func TestSummary(t *testing.T) {
	requireRoot(t)
	srv, port := server(t, "-n", "3", "-recv", "100", "-send", "200", "-wait-eof")
	closed := freePort(t)
	cmd := netCommand("--summary", "--format", "json", "--duration", "4", "--port", fmt.Sprintf("%d,%d", port, closed))
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "tuxscope to attach", func() bool { return strings.Contains(stderr.String(), "attached") })
	start := time.Now()
	var pids []int
	for i := 0; i < 3; i++ {
		c := client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-send", "100", "-recv", "200")
		c.expect("LOCAL")
		c.expect("DONE")
		srv.expect("ACCEPTED")
		srv.expect("SERVED")
		pids = append(pids, c.pid())
	}
	refused := client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", closed))
	refused.expect("FAILED")
	if time.Since(start) > 3*time.Second {
		t.Fatal("traffic took too long for --duration 4")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tuxscope: %v: %s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one summary line, got %d:\n%s", len(lines), stdout.String())
	}
	var r summaryReport
	if err := json.Unmarshal([]byte(lines[0]), &r); err != nil || r.EventType != "summary" {
		t.Fatalf("summary %q: %v", lines[0], err)
	}
	rows := map[int]summaryPeer{}
	for _, p := range r.Processes {
		if len(p.Peers) != 1 {
			t.Errorf("pid %d (%s): %d peers, want 1", p.PID, p.Comm, len(p.Peers))
			continue
		}
		rows[p.PID] = p.Peers[0]
	}
	for _, pid := range pids {
		got := rows[pid]
		if got.Direction != "outbound" || got.Peer != "127.0.0.1" || got.Port != port || got.Connects != 1 || got.Established != 1 ||
			got.Closes != 1 || got.BytesSent != 100 || got.BytesReceived != 200 || got.LatencyNs["p50"] == 0 || got.DurationNs["p50"] == 0 {
			t.Errorf("client %d: %+v", pid, got)
		}
	}
	s := rows[srv.pid()]
	if s.Direction != "inbound" || s.Peer != "127.0.0.1" || s.Port != port || s.Accepts != 3 || s.Closes != 3 ||
		s.BytesSent != 600 || s.BytesReceived != 300 || s.DurationNs["p99"] < s.DurationNs["p50"] {
		t.Errorf("server: %+v", s)
	}
	f := rows[refused.pid()]
	if f.Connects != 1 || f.Failures != 1 || f.Errors["refused"] != 1 || f.Port != closed {
		t.Errorf("refused client: %+v", f)
	}
	if len(rows) != 5 {
		t.Errorf("%d processes in the summary, want 5: %s", len(rows), lines[0])
	}
}

package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tuxscope/tuxscope/internal/schema"
)

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
	pids := exchanges(t, srv, port, 3)
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
	var r schema.Summary
	d := json.NewDecoder(strings.NewReader(lines[0]))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil || r.EventType != "summary" {
		t.Fatalf("summary %q: %v", lines[0], err)
	}
	rows := map[int]schema.Peer{}
	for _, p := range r.Processes {
		if len(p.Peers) != 1 {
			t.Errorf("pid %d (%s): %d peers, want 1", p.PID, p.Comm, len(p.Peers))
			continue
		}
		rows[int(p.PID)] = p.Peers[0]
	}
	for _, pid := range pids {
		got := rows[pid]
		if got.Direction != "outbound" || got.Peer != "127.0.0.1" || int(got.Port) != port || got.Connects != 1 || got.Established != 1 ||
			got.Closes != 1 || got.BytesSent != 100 || got.BytesReceived != 200 || got.LatencyNs == nil || got.LatencyNs.P50 == 0 || got.DurationNs == nil || got.DurationNs.P50 == 0 {
			t.Errorf("client %d: %+v", pid, got)
		}
	}
	s := rows[srv.pid()]
	if s.Direction != "inbound" || s.Peer != "127.0.0.1" || int(s.Port) != port || s.Accepts != 3 || s.Closes != 3 ||
		s.BytesSent != 600 || s.BytesReceived != 300 || s.DurationNs == nil || s.DurationNs.P99 < s.DurationNs.P50 {
		t.Errorf("server: %+v", s)
	}
	f := rows[refused.pid()]
	if f.Connects != 1 || f.Failures != 1 || f.Errors["refused"] != 1 || int(f.Port) != closed {
		t.Errorf("refused client: %+v", f)
	}
	if len(rows) != 5 {
		t.Errorf("%d processes in the summary, want 5: %s", len(rows), lines[0])
	}
}

package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tuxscope/tuxscope/internal/schema"
)

// TestOutputRotation runs `tuxscope net --output FILE --rotate-size 4K
// --rotate-keep 2 --format json` around 12 exchanges (about 20 KiB of
// events): stdout has the whole stream; FILE.2, FILE.1 and FILE, read in
// that order, are exactly its last lines, each file at most 4096 bytes
// and each rotated one full (the next line did not fit), with no FILE.3;
// and each client's events in them are those of its exchange.
func TestOutputRotation(t *testing.T) {
	requireRoot(t)
	const n = 12
	srv, port := server(t, "-n", fmt.Sprint(n), "-recv", "100", "-send", "200", "-wait-eof")
	path := filepath.Join(t.TempDir(), "events.ndjson")
	tr := startTracer(t, "--output", path, "--rotate-size", "4K", "--rotate-keep", "2", "--port", fmt.Sprint(port))
	pids := exchanges(t, srv, port, n)
	last := pids[n-1]
	tr.waitFor("last client's close", byPID("close", last))
	if code := tr.stop(); code != 0 {
		t.Fatalf("exit %d: %s", code, tr.stderrText())
	}
	stream := tr.rawLines()

	var files []string
	maxLine := 0
	for _, s := range stream {
		maxLine = max(maxLine, len(s)+1)
	}
	for i, name := range []string{path + ".2", path + ".1", path} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(name)
		if st.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode %v, want 0640", name, st.Mode().Perm())
		}
		if len(b) > 4096 || (i < 2 && len(b) <= 4096-maxLine) {
			t.Errorf("%s: %d bytes, want at most 4096 and, rotated, more than %d", name, len(b), 4096-maxLine)
		}
		if len(b) == 0 || b[len(b)-1] != '\n' {
			t.Fatalf("%s does not end a line: %q", name, b)
		}
		files = append(files, strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")...)
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Error("FILE.3 exists with --rotate-keep 2")
	}
	total := 0
	for _, s := range stream {
		total += len(s) + 1
	}
	if total <= 3*4096 {
		t.Fatalf("the stream is only %d bytes: too little to have rotated away a file", total)
	}
	if len(files) >= len(stream) {
		t.Fatalf("the files hold %d lines, the stream %d: nothing was rotated away", len(files), len(stream))
	}
	tail := stream[len(stream)-len(files):]
	for i := range files {
		if files[i] != tail[i] {
			t.Fatalf("line %d of the files:\n%s\nwant (the stream's line %d):\n%s", i, files[i], len(stream)-len(files)+i, tail[i])
		}
	}
	// The last clients' exchanges are whole in the files.
	byClient := map[int][]schema.Event{}
	for _, l := range files {
		var ev schema.Event
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		byClient[int(ev.PID)] = append(byClient[int(ev.PID)], ev)
	}
	for _, pid := range pids[n-3:] {
		evs := byClient[pid]
		var types []string
		for _, ev := range evs {
			types = append(types, ev.EventType)
		}
		if strings.Join(types, ",") != "connect,established,close" {
			t.Errorf("client %d: events %v, want connect, established, close", pid, types)
			continue
		}
		c := evs[2]
		if c.Dport != port || c.Daddr != "127.0.0.1" || c.BytesSent == nil || *c.BytesSent != 100 || c.BytesReceived == nil || *c.BytesReceived != 200 {
			t.Errorf("client %d close: %+v", pid, c)
		}
	}
	if strings.Contains(tr.stderrText(), "--output") {
		t.Errorf("stderr: %s", tr.stderrText())
	}
}

// TestOutputQuiet: with --output alone stdout gets nothing; the file
// gets the JSON lines.
func TestOutputQuiet(t *testing.T) {
	requireRoot(t)
	srv, port := server(t, "-recv", "100", "-send", "200", "-wait-eof")
	path := filepath.Join(t.TempDir(), "events.ndjson")
	var pid int
	stdout := runTable(t, func() { pid = exchanges(t, srv, port, 1)[0] }, func(string) bool {
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), fmt.Sprintf(`"event_type":"close","pid":%d,`, pid))
	}, "--output", path, "--port", fmt.Sprint(port))
	if stdout != "" {
		t.Errorf("stdout: %q", stdout)
	}
	b, _ := os.ReadFile(path)
	for _, typ := range []string{"connect", "established", "close"} {
		if !strings.Contains(string(b), fmt.Sprintf(`"event_type":"%s","pid":%d,`, typ, pid)) {
			t.Errorf("no %s of client %d in the file:\n%s", typ, pid, b)
		}
	}
}

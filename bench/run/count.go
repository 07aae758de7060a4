package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/tuxscope/tuxscope/bench/internal/load"
	"github.com/tuxscope/tuxscope/internal/schema"
)

// peerLost sums "lost N events" (libbpf-tools: "lost N events on CPU #M";
// bpftrace: "Lost N events") on stderr.
func peerLost(stderr string) (int64, bool) {
	var n int64
	found := false
	for _, line := range strings.Split(stderr, "\n") {
		f := strings.Fields(strings.ToLower(line))
		for i := 0; i+2 < len(f); i++ {
			if f[i] == "lost" && f[i+2] == "events" {
				if v, err := strconv.ParseInt(f[i+1], 10, 64); err == nil {
					n += v
					found = true
				}
			}
		}
	}
	return n, found
}

// countTuxscopeTable reads lost events from table mode's stderr lines.
func countTuxscopeTable(res *result, _, stderr string, _ load.Result) {
	res.Lost = 0
	for _, line := range strings.Split(stderr, "\n") {
		var n int64
		if _, err := fmt.Sscanf(line, "tuxscope: lost %d events", &n); err == nil {
			res.Lost += n
		}
	}
}

// madeBy says whether pid is the process that made one end of one of the
// loadgen's connections: the server's end for inbound events, the client's
// for outbound ones. With one loadgen process that is its pid; with
// separate processes, one of the server processes for the server's end
// and, for the client's, the client process whose -source address is
// client (the connection's client-side address; "" or an address no client
// process had: any of the client processes).
func madeBy(lr load.Result, pid int, inbound bool, client string) bool {
	if !inbound && client != "" {
		if want, ok := lr.ClientBy[client]; ok {
			return pid == want
		}
	}
	pids := lr.ClientPIDs
	if inbound {
		pids = lr.ServerPIDs
	}
	if len(pids) == 0 {
		return pid == lr.PID
	}
	return slices.Contains(pids, pid)
}

// countTuxscopeJSON counts the connections' events of a --format json file
// (all events by type), the in-band lost records, and events attributed to
// another process than the one that made that end.
func countTuxscopeJSON(res *result, stdout, _ string, lr load.Result) {
	res.Events, res.Lost, res.Unattributed = 0, 0, 0
	res.ByType = map[string]int64{}
	eachLine(res, stdout, func(line []byte) {
		var ev schema.Event
		if err := json.Unmarshal(line, &ev); err != nil {
			res.ByType["(malformed)"]++
			return
		}
		switch ev.EventType {
		case "lost":
			res.Lost += int64(ev.Count)
			return
		case "open_at_exit", "dns_dropped": // counts, not events
			return
		}
		// Only the events expected per connection count against that
		// expectation; the listener's listen and unlisten, and the
		// occasional reset or retransmit, are shown by type only.
		switch ev.EventType {
		case "connect", "accept", "established", "failed", "close":
			res.Events++
		}
		res.ByType[ev.EventType]++
		if !madeBy(lr, ev.PID, ev.Direction == "inbound", ev.Saddr) {
			res.Unattributed++
			res.ByType[ev.EventType+" (other pid)"]++
		}
	})
}

// eachLine calls f with each line of the file at path (lines up to 1 MiB);
// it records in res.Err why the file could not be read.
func eachLine(res *result, path string, f func(line []byte)) {
	file, err := os.Open(path)
	if err != nil {
		res.Err = err.Error()
		return
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		res.Err = err.Error()
	}
}

// countTuxscopeSummary reads the one JSON summary: its counts, its lost.
func countTuxscopeSummary(res *result, stdout, _ string, lr load.Result) {
	b, err := os.ReadFile(stdout)
	if err != nil {
		res.Err = err.Error()
		return
	}
	res.Events, res.Lost, res.Unattributed = 0, 0, 0
	res.ByType = map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var s schema.Summary
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			res.Err = fmt.Sprintf("summary: %v", err)
			return
		}
		res.Lost += int64(s.Lost)
		for _, p := range s.Processes {
			for _, peer := range p.Peers {
				n := int64(peer.Connects + peer.Accepts + peer.Established + peer.Failures + peer.Closes)
				res.Events += n
				res.ByType["connect"] += int64(peer.Connects)
				res.ByType["accept"] += int64(peer.Accepts)
				res.ByType["established"] += int64(peer.Established)
				res.ByType["failed"] += int64(peer.Failures)
				res.ByType["close"] += int64(peer.Closes)
				if !madeBy(lr, int(p.PID), peer.Direction == "in" || peer.Direction == "inbound", "") {
					res.Unattributed += n
				}
			}
		}
	}
}

// countHeaderLines counts a libbpf tool's output lines after its header,
// and (with -D PORT: every line is the client end's) lines whose PID is not
// the client's. tcplife prints the PID first, tcpstates second; LADDR, the
// client end's address, comes two columns after it.
func countHeaderLines(res *result, stdout, _ string, lr load.Result) {
	b, err := os.ReadFile(stdout)
	if err != nil {
		res.Err = err.Error()
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	res.Events, res.Unattributed = 0, 0
	pidField := 0
	for i, l := range lines {
		if i == 0 && (strings.HasPrefix(l, "PID") || strings.HasPrefix(l, "SKADDR")) {
			if strings.HasPrefix(l, "SKADDR") {
				pidField = 1
			}
			continue
		}
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		res.Events++
		if len(f) > pidField {
			if pid, _ := strconv.Atoi(f[pidField]); !madeBy(lr, pid, false, laddr(f, pidField)) {
				res.Unattributed++
			}
		}
	}
}

// laddr is a libbpf tool line's LADDR column, two after its PID; "" if
// the line is short.
func laddr(f []string, pidField int) string {
	if len(f) > pidField+2 {
		return f[pidField+2]
	}
	return ""
}

// countBpftraceMap reads "@closes: N" from bpftrace's exit output.
func countBpftraceMap(res *result, stdout, _ string, _ load.Result) {
	b, err := os.ReadFile(stdout)
	if err != nil {
		res.Err = err.Error()
		return
	}
	res.Events = 0
	for _, line := range strings.Split(string(b), "\n") {
		var n int64
		if _, err := fmt.Sscanf(line, "@closes: %d", &n); err == nil {
			res.Events = n
		}
	}
}

// countBpftracePrint counts bpftrace's "close PID COMM SPORT DPORT" lines;
// a close whose local port is the server's is the server end's.
func countBpftracePrint(res *result, stdout, _ string, lr load.Result) {
	res.Events, res.Unattributed = 0, 0
	eachLine(res, stdout, func(line []byte) {
		fl := strings.Fields(string(line))
		if len(fl) == 5 && fl[0] == "close" {
			res.Events++
			pid, _ := strconv.Atoi(fl[1])
			if !madeBy(lr, pid, fl[3] == strconv.Itoa(lr.Port), "") {
				res.Unattributed++
			}
		}
	})
}

// scrapeServe reads `tuxscope serve`'s /metrics at addr and counts what
// it counted as events, as the summary cell does: connects and accepts
// (tuxscope_connections_total), established (the handshake latency
// histogram's count), failures, and closes (the duration histogram's
// count; every connection of the load was established while tracing);
// lost events are the three kernel-side loss reasons.
func scrapeServe(res *result, addr string) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		res.Err = fmt.Sprintf("scraping tuxscope serve: %v", err)
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		res.Err = fmt.Sprintf("scraping tuxscope serve: HTTP %d, %v", resp.StatusCode, err)
		return
	}
	res.Events, res.Lost, res.Unattributed = 0, 0, -1
	res.ByType = map[string]int64{}
	kinds := map[string]string{
		"tuxscope_connections_total":                 "connect+accept",
		"tuxscope_handshake_latency_seconds_count":   "established",
		"tuxscope_connection_failures_total":         "failed",
		"tuxscope_connection_duration_seconds_count": "close",
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		if kind, ok := kinds[name]; ok {
			res.Events += int64(v)
			res.ByType[kind] += int64(v)
		}
		if name == "tuxscope_events_lost_total" && (strings.Contains(line, `"ring_buffer_full"`) ||
			strings.Contains(line, `"hook_skipped"`) || strings.Contains(line, `"conn_table_full"`)) {
			res.Lost += int64(v)
		}
	}
}

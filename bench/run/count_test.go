package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tuxscope/tuxscope/bench/internal/load"
)

// A 2x2 load: two servers, two clients from their own addresses.
var twoByTwo = load.Result{PID: 201, ServerPIDs: []int{101, 102}, ClientPIDs: []int{201, 202},
	ClientBy: map[string]int{"127.0.0.11": 201, "127.0.0.12": 202}}

func TestMadeBy(t *testing.T) {
	for _, tc := range []struct {
		lr      load.Result
		pid     int
		inbound bool
		client  string
		want    bool
	}{
		{load.Result{PID: 7}, 7, false, "127.0.0.1", true},
		{load.Result{PID: 7}, 7, true, "127.0.0.1", true},
		{load.Result{PID: 7}, 8, true, "", false},
		{load.Result{PID: 7, ServerPIDs: []int{9}, ClientPIDs: []int{7}}, 9, true, "", true},
		{load.Result{PID: 7, ServerPIDs: []int{9}, ClientPIDs: []int{7}}, 7, true, "", false},
		{twoByTwo, 202, false, "127.0.0.12", true},
		{twoByTwo, 201, false, "127.0.0.12", false}, // the other client process
		{twoByTwo, 102, false, "127.0.0.12", false}, // a server
		{twoByTwo, 202, false, "", true},            // no address: any client
		{twoByTwo, 102, true, "127.0.0.11", true},
		{twoByTwo, 202, true, "127.0.0.12", false}, // the server end named for a client
	} {
		if got := madeBy(tc.lr, tc.pid, tc.inbound, tc.client); got != tc.want {
			t.Errorf("madeBy(%+v, %d, inbound %v, %q) = %v, want %v", tc.lr, tc.pid, tc.inbound, tc.client, got, tc.want)
		}
	}
}

func TestCountTuxscopeJSONAttribution(t *testing.T) {
	file := filepath.Join(t.TempDir(), "out")
	lines := `{"event_type":"listen","pid":101,"direction":"inbound","saddr":"127.0.0.1","sport":80}
{"event_type":"connect","pid":201,"direction":"outbound","saddr":"127.0.0.11"}
{"event_type":"connect","pid":201,"direction":"outbound","saddr":"127.0.0.12"}
{"event_type":"accept","pid":102,"direction":"inbound","saddr":"127.0.0.12"}
{"event_type":"close","pid":201,"direction":"inbound","saddr":"127.0.0.11"}
{"event_type":"reset","pid":202,"direction":"outbound","saddr":"127.0.0.12"}
{"event_type":"lost","count":3}
`
	if err := os.WriteFile(file, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	res := &result{}
	countTuxscopeJSON(res, file, "", twoByTwo)
	if res.Err != "" {
		t.Fatal(res.Err)
	}
	// connect, connect, accept, close: listen and reset by type only.
	if res.Events != 4 || res.Lost != 3 || res.Unattributed != 2 {
		t.Errorf("events %d lost %d other pid %d, want 4, 3, 2", res.Events, res.Lost, res.Unattributed)
	}
	if res.ByType["connect (other pid)"] != 1 || res.ByType["close (other pid)"] != 1 || res.ByType["reset"] != 1 {
		t.Errorf("by type %v", res.ByType)
	}
}

func TestLayoutFlag(t *testing.T) {
	var l layout
	if err := l.Set("2x4"); err != nil || l != (layout{2, 4}) || l.String() != "2x4" {
		t.Errorf("Set(2x4): %v, %+v", err, l)
	}
	if got := l.cellName("baseline"); got != "baseline, 2x4 procs" {
		t.Errorf("cellName = %q", got)
	}
	for _, bad := range []string{"", "2", "0x4", "2x0", "x4", "2x4x1", "-1x2", "65x1"} {
		if err := l.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}

func TestMatchCell(t *testing.T) {
	for _, c := range []struct {
		name, s string
		want    bool
	}{
		{"tuxscope table", "tuxscope table", true},
		{"tuxscope table, max-delay 0", "tuxscope table", true},
		{"tuxscope table, max-delay 0", "=tuxscope table", false},
		{"tuxscope table, 2x4 procs", "=tuxscope table", false},
		{"tuxscope table", "=tuxscope table", true},
		{"tuxscope table @e8208b9", "=tuxscope table", true},
		{"tuxscope json", "=tuxscope table", false},
	} {
		if got := matchCell(c.name, c.s); got != c.want {
			t.Errorf("matchCell(%q, %q) = %v", c.name, c.s, got)
		}
	}
}

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The shaping rate of the tbf qdiscs: 8 Mbit/s, 1,000,000 bytes/s on the
// wire; TCP's payload gets about 95.6% of it (1448 of each 1514-byte
// frame).
const (
	shapedRate  = 1_000_000
	shapedHostV = "198.51.100.237" // the host's end (tuxscope's namespace)
	shapedPeerV = "198.51.100.238" // the test host's
)

// shapedTestHost makes a network namespace, a test host joined to this
// one by a veth pair (198.51.100.236/30), with both directions shaped by
// tbf to 8 Mbit/s. It is removed when the test ends.
func shapedTestHost(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (iproute2)", tool)
		}
	}
	id := os.Getpid() % 100000
	ns, hostDev, peerDev := fmt.Sprintf("ts-upd-%d", id), fmt.Sprintf("tsu%dh", id), fmt.Sprintf("tsu%dn", id)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run("ip", "link", "add", hostDev, "type", "veth", "peer", "name", peerDev, "netns", ns)
	t.Cleanup(func() { exec.Command("ip", "link", "del", hostDev).Run() })
	run("ip", "addr", "add", shapedHostV+"/30", "dev", hostDev)
	run("ip", "link", "set", hostDev, "up")
	run("ip", "-n", ns, "addr", "add", shapedPeerV+"/30", "dev", peerDev)
	run("ip", "-n", ns, "link", "set", peerDev, "up")
	run("ip", "-n", ns, "link", "set", "lo", "up")
	tbf := []string{"root", "tbf", "rate", "8mbit", "burst", "32kbit", "latency", "400ms"}
	for _, args := range [][]string{{"tc", "qdisc", "add", "dev", hostDev}, {"tc", "-n", ns, "qdisc", "add", "dev", peerDev}} {
		// A tc that is not iproute2's (busybox's, in the matrix's
		// guests) or a kernel without sch_tbf cannot shape.
		if out, err := exec.Command(args[0], append(args[1:], tbf...)...).CombinedOutput(); err != nil {
			t.Skipf("cannot shape with tbf here (%s): %v: %s", strings.Join(append(args, tbf...), " "), err, out)
		}
	}
	return ns
}

// within reports whether v is within 10% of want.
func within(v, want uint64) bool { return v*10 >= want*9 && v*10 <= want*11 }

// A transfer through tbf, 2.5 MB each way (the client sends, then the
// server answers): the client's update events name it exactly, their
// rates in the middle of each direction are the shaping rate within 10%,
// their totals grow, their periods add up to them, and the close's bytes
// are the last update's or more.
func TestUpdatesShapedTransfer(t *testing.T) {
	requireRoot(t)
	ns := shapedTestHost(t)
	const n = 2_500_000
	srv := startProc(t, helper("server"), "ip", "netns", "exec", ns, serverBin,
		"-addr", shapedPeerV+":0", "-recv", fmt.Sprint(n), "-send", fmt.Sprint(n), "-wait-eof")
	port := atoi(t, srv.expect("READY")[0])
	tr := startTracer(t, "--updates", "500ms", "--port", fmt.Sprint(port))
	start := time.Now()
	cl := client(t, "-addr", fmt.Sprintf("%s:%d", shapedPeerV, port), "-send", fmt.Sprint(n), "-recv", fmt.Sprint(n))
	local := cl.expect("LOCAL")[0]
	sport := atoi(t, local[strings.LastIndex(local, ":")+1:])
	if done := cl.expectWithin("DONE", 15*time.Second); done[0] != fmt.Sprint(n) || done[1] != fmt.Sprint(n) {
		t.Fatalf("client: DONE %v", done)
	}
	cl.waitExit()
	t.Logf("transfer took %v", time.Since(start).Round(time.Millisecond))
	mine := func(typ string) func(jsonEvent) bool {
		return func(e jsonEvent) bool { return e.EventType == typ && e.Sport == sport && e.Dport == port }
	}
	closeEv := tr.waitFor("the client's close", mine("close"))
	ups := tr.all(mine("update"))
	if len(ups) < 8 {
		t.Fatalf("%d updates for a ~5 s transfer at 500ms, want 8 or more:\n%s", len(ups), tr.dump())
	}
	var sumSent, sumRecv, lastSent, lastRecv uint64
	var sendRates, recvRates []uint64
	for i, u := range ups {
		if u.PID != cl.pid() || u.TID != cl.pid() || u.Comm != "tsclient" || u.Saddr != shapedHostV || u.Daddr != shapedPeerV ||
			u.Direction != "outbound" || u.Family != 4 || u.State != "ESTABLISHED" {
			t.Errorf("update %d: %v, want pid %d tsclient %s:%d -> %s:%d outbound", i, u, cl.pid(), shapedHostV, sport, shapedPeerV, port)
		}
		if u.BytesSent == nil || u.PeriodNs == nil || u.PeriodBytesSent == nil || u.PeriodBytesReceived == nil ||
			u.SendBytesPerS == nil || u.ReceiveBytesPerS == nil || u.SRTTUs == nil || u.RetransSegs == nil || u.PeriodRetrans == nil {
			t.Fatalf("update %d lacks keys: %s", i, tr.rawLines())
		}
		if *u.BytesSent < lastSent || *u.BytesReceived < lastRecv {
			t.Errorf("update %d: totals went down: sent %d after %d, received %d after %d", i, *u.BytesSent, lastSent, *u.BytesReceived, lastRecv)
		}
		lastSent, lastRecv = *u.BytesSent, *u.BytesReceived
		sumSent += *u.PeriodBytesSent
		sumRecv += *u.PeriodBytesReceived
		if i > 0 && (*u.PeriodNs < uint64(450*time.Millisecond) || *u.PeriodNs > uint64(time.Second)) {
			t.Errorf("update %d: period %v, want about 500ms", i, time.Duration(*u.PeriodNs))
		}
		if want := *u.PeriodBytesSent * 1e9 / *u.PeriodNs; *u.SendBytesPerS < want || *u.SendBytesPerS > want+1 {
			t.Errorf("update %d: send_bytes_per_s %d for %d bytes in %v", i, *u.SendBytesPerS, *u.PeriodBytesSent, time.Duration(*u.PeriodNs))
		}
		t.Logf("update %d: %v period, sent %d (%d B/s), received %d (%d B/s), srtt %dµs, retrans %d",
			i, time.Duration(*u.PeriodNs), *u.PeriodBytesSent, *u.SendBytesPerS, *u.PeriodBytesReceived, *u.ReceiveBytesPerS, *u.SRTTUs, *u.PeriodRetrans)
		// Periods wholly inside a direction's transfer: the previous
		// and the next update moved bytes that way too.
		if i > 0 && i < len(ups)-1 {
			if *ups[i-1].PeriodBytesSent > 0 && *u.PeriodBytesSent > 0 && *ups[i+1].PeriodBytesSent > 0 {
				sendRates = append(sendRates, *u.SendBytesPerS)
			}
			if *ups[i-1].PeriodBytesReceived > 0 && *u.PeriodBytesReceived > 0 && *ups[i+1].PeriodBytesReceived > 0 {
				recvRates = append(recvRates, *u.ReceiveBytesPerS)
			}
		}
	}
	// The first period starts at the handshake, when the counters were 0.
	if sumSent != lastSent || sumRecv != lastRecv {
		t.Errorf("periods add up to %d sent, %d received; the last totals are %d, %d", sumSent, sumRecv, lastSent, lastRecv)
	}
	if closeEv.PID != cl.pid() || closeEv.BytesSent == nil || *closeEv.BytesSent != n || *closeEv.BytesReceived != n {
		t.Errorf("close %v, want pid %d, %d bytes each way", closeEv, cl.pid(), n)
	} else if lastSent > *closeEv.BytesSent || lastRecv > *closeEv.BytesReceived || lastSent < n/2 || lastRecv < n/2 {
		t.Errorf("last update's totals %d, %d; the close's %d, %d", lastSent, lastRecv, *closeEv.BytesSent, *closeEv.BytesReceived)
	}
	// The shaper caps every period; the median period is at its rate
	// (one period may fall short when a loaded host's receiver lags and
	// its window closes).
	for what, rates := range map[string][]uint64{"send": sendRates, "receive": recvRates} {
		if len(rates) < 2 {
			t.Errorf("%d whole %s periods, want 2 or more", len(rates), what)
			continue
		}
		for _, r := range rates {
			if r > shapedRate*11/10 {
				t.Errorf("%s rate %d B/s, above the shaping rate %d by more than 10%% (rates %v)", what, r, shapedRate, rates)
			}
		}
		sorted := slices.Clone(rates)
		slices.Sort(sorted)
		if m := sorted[len(sorted)/2]; !within(m, shapedRate) {
			t.Errorf("median %s rate %d B/s, want %d within 10%% (rates %v)", what, m, shapedRate, rates)
		}
	}
	if code := tr.stop(); code != 0 {
		t.Errorf("tuxscope exited %d: %s", code, tr.stderrText())
	}
}

// parseRate reads a rate as the table and top write it: 956kB/s.
func parseRate(s string) (float64, bool) {
	s, ok := strings.CutSuffix(s, "B/s")
	if !ok {
		return 0, false
	}
	mult := 1.0
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1e3, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "M"):
		mult, s = 1e6, strings.TrimSuffix(s, "M")
	}
	v, err := strconv.ParseFloat(s, 64)
	return v * mult, err == nil
}

// tuxscope top in a terminal shows a shaped transfer's live send rate in
// the client's row (SEND/s, after PEER).
func TestTopLiveRate(t *testing.T) {
	requireRoot(t)
	ns := shapedTestHost(t)
	srv := startProc(t, helper("server"), "ip", "netns", "exec", ns, serverBin, "-addr", shapedPeerV+":0", "-recv", "-1")
	port := atoi(t, srv.expect("READY")[0])
	backend := ""
	if testBackend != "" {
		backend = "--backend " + testBackend
	}
	scr := startTmux(t, fmt.Sprintf("%s top --interval 500ms --port %d %s; echo EXIT=$?; sleep 60", tuxscopeBin, port, backend))
	scr.waitScreen("the header", func(s string) bool { return strings.Contains(s, "SEND/s     RECV/s     RETR") })
	cl := client(t, "-addr", fmt.Sprintf("%s:%d", shapedPeerV, port), "-send", "4000000", "-hold")
	var row []string
	screen := scr.waitScreen("the client's live send rate", func(s string) bool {
		row = rowFor(s, cl.pid())
		// PID COMM DIR PEER SEND/s RECV/s RETR ...
		if len(row) < 7 || row[1] != "tsclient" || row[3] != fmt.Sprintf("%s:%d", shapedPeerV, port) {
			return false
		}
		v, ok := parseRate(row[4])
		return ok && v > 0
	})
	// Once the queue is in steady state, the rate is the shaping rate:
	// three of top's 500 ms periods, read 600 ms apart within the 4 s
	// transfer, none above it by more than 10%, their median within 10%
	// of it (one period may fall short when a loaded host's receiver
	// lags, as TestUpdates allows).
	time.Sleep(time.Second)
	var rates []uint64
	for i := 0; i < 3; i++ {
		if i > 0 {
			time.Sleep(600 * time.Millisecond)
		}
		screen = scr.screen()
		row = rowFor(screen, cl.pid())
		if len(row) < 7 {
			t.Fatalf("no row for the client %d:\n%s", cl.pid(), screen)
		}
		v, ok := parseRate(row[4])
		if !ok || v > shapedRate*1.1 {
			t.Errorf("SEND/s %q, want at most %d B/s + 10%%:\n%s", row[4], shapedRate, screen)
		}
		rates = append(rates, uint64(v))
	}
	slices.Sort(rates)
	if m := rates[1]; !within(m, shapedRate) {
		t.Errorf("median SEND/s %d B/s, want about %d B/s within 10%% (rates %v):\n%s", m, shapedRate, rates, screen)
	}
	if row[5] != "0B/s" {
		t.Errorf("RECV/s %q, want 0B/s:\n%s", row[5], screen)
	}
	cl.send("")
	scr.keys("q")
	scr.waitScreen("a clean exit", func(s string) bool { return strings.Contains(s, "EXIT=0") })
}

package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/tuxscope/tuxscope/bench/internal/load"
)

// Ratios pair a cell with its -before copy round by round: a round
// where one of them has no run is left out, and each ratio is this
// build's figure over the earlier one's in that same round.
func TestPairedRatios(t *testing.T) {
	b := &build{short: "abc1234"}
	cur := &cell{Name: "tuxscope table", Kind: "max", Tracer: "tuxscope"}
	before := b.cell(cur)
	other := &cell{Name: "tcplife -D port", Kind: "max"}
	res := func(c *cell, round int, rate, loadCPU float64, completed uint64) *result {
		return &result{Cell: c, Round: round, LoadCPU: loadCPU, TracerCPU: math.NaN(), Load: load.Result{Rate: rate, Completed: completed}}
	}
	r := buildReport(&options{}, machine{}, []*cell{cur, other, before}, []*result{
		res(cur, 0, 9000, 1.0, 10000), res(before, 0, 10000, 1.25, 10000),
		res(cur, 1, 12000, 1.2, 10000), res(before, 1, 8000, 1.0, 10000),
		res(cur, 2, 11000, 1.0, 10000), // no round-2 run of the earlier build
		res(before, 3, 5000, 1.0, 10000),
		res(other, 0, 1, 1, 1),
	}, "")
	ps := r.beforePairs()
	if len(ps) != 1 || ps[0].cur != cur || ps[0].before != before {
		t.Fatalf("pairs %+v, want one: %q with %q", ps, cur.Name, before.Name)
	}
	if got, want := r.pairedRatios(ps[0], rate), []float64{0.9, 1.5}; !slices.Equal(got, want) {
		t.Errorf("rate ratios %v, want %v", got, want)
	}
	if got, want := r.pairedRatios(ps[0], loadCPUPer1k), []float64{0.8, 1.2}; !slices.EqualFunc(got, want, func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }) {
		t.Errorf("loadgen CPU ratios %v, want %v", got, want)
	}
	if got := r.pairedRatios(ps[0], tracerCPUPer1k); len(got) != 0 {
		t.Errorf("tracer CPU ratios %v, want none (NaN)", got)
	}
	var sb strings.Builder
	r.pairedSection(func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) })
	if want := "| tuxscope table vs tuxscope table @abc1234 | 1.200 (0.900, 1.500) | 1.000 (0.800, 1.200) | n/a | n/a |"; !strings.Contains(sb.String(), want) {
		t.Errorf("section:\n%s\nwant the row %q", sb.String(), want)
	}
}

// A throughput target is judged on the median of the per-round ratios to
// the baseline, not on the ratio of the two medians, which one disturbed
// round moves: here the cell ran at 9000, 7600 and 7000 conn/s against
// 10000, 8000 and 10000 (a disturbed third round): 0.900, 0.950 and
// 0.700 a round, median 0.900; the medians' ratio 7600/10000 = 0.760.
func TestThroughputTargetPairsRounds(t *testing.T) {
	base := &cell{Name: "baseline", Kind: "max"}
	table := &cell{Name: "tuxscope table", Kind: "max", Tracer: "tuxscope"}
	res := func(c *cell, round int, rate float64) *result {
		return &result{Cell: c, Round: round, TracerCPU: math.NaN(), Load: load.Result{Rate: rate, Completed: 1000}}
	}
	r := buildReport(&options{}, machine{}, []*cell{base, table}, []*result{
		res(base, 0, 10000), res(table, 0, 9000),
		res(base, 1, 8000), res(table, 1, 7600),
		res(base, 2, 10000), res(table, 2, 7000),
	}, "")
	var sb strings.Builder
	r.targets(&sb)
	want := "| throughput ≥ 0.90 × baseline at max rate (tuxscope table) | 0.900 × (median of per-round ratios (0.900, 0.950, 0.700); ratio of medians 0.760; 7600 vs 10000 conn/s, medians) | met |"
	if !strings.Contains(sb.String(), want) {
		t.Errorf("targets:\n%s\nwant the row\n%s", sb.String(), want)
	}
}

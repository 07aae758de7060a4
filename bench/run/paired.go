package main

import (
	"math"
	"strings"
)

// pair is a cell of the -before build and the same cell of this tree's.
type pair struct{ cur, before *cell }

// beforePairs lists, for every -before cell, the cell it was copied from.
func (r *report) beforePairs() []pair {
	var ps []pair
	for _, c := range r.cells {
		if c.Build == nil {
			continue
		}
		if cur := r.cell(strings.TrimSuffix(c.Name, " @"+c.Build.short)); cur != nil && cur != c {
			ps = append(ps, pair{cur, c})
		}
	}
	return ps
}

// joinF3 is v as "(a, b, c)", three decimals each.
func joinF3(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = f3(x)
	}
	return "(" + strings.Join(s, ", ") + ")"
}

// pairedRatios is f of this tree's cell over f of the -before cell (or
// of any cell over its baseline), for
// each round that has a run of both (in round order): the two ran in the
// same round, minutes apart at most, so a ratio leaves out what drifts
// from round to round on a shared machine, which the ratio of the two
// medians does not.
func (r *report) pairedRatios(p pair, f func(*result) float64) []float64 {
	byRound := map[int]*result{}
	for _, res := range r.results[p.before] {
		byRound[res.Round] = res
	}
	var out []float64
	for _, res := range r.results[p.cur] {
		b, ok := byRound[res.Round]
		if !ok {
			continue
		}
		if x, y := f(res), f(b); !math.IsNaN(x) && !math.IsNaN(y) && y != 0 {
			out = append(out, x/y)
		}
	}
	return out
}

// pairedSection is the report's "this build against -before" section;
// empty without -before cells.
func (r *report) pairedSection(p func(format string, args ...any)) {
	ps := r.beforePairs()
	if len(ps) == 0 {
		return
	}
	p("## This build against the earlier one, round by round\n\n")
	p("Each -before cell and this build's same cell ran in the same round: per round, this build's figure over the earlier build's (below 1: this build used less, or ran slower for connections/s), and the median of those ratios. Pairing by round leaves out what drifts from one round to the next on a shared machine; a ratio of a few percent either way is still within what repeated runs of one build show here.\n\n")
	p("| cell | connections/s | loadgen CPU per 1k connections | tracer CPU per 1k connections | BPF ns per connection |\n|---|---|---|---|---|\n")
	cell := func(v []float64) string {
		if len(v) == 0 {
			return "n/a"
		}
		return f3(median(v)) + " " + joinF3(v)
	}
	for _, pr := range ps {
		p("| %s vs %s | %s | %s | %s | %s |\n", pr.cur.Name, pr.before.Name,
			cell(r.pairedRatios(pr, rate)), cell(r.pairedRatios(pr, loadCPUPer1k)),
			cell(r.pairedRatios(pr, tracerCPUPer1k)), cell(r.pairedRatios(pr, bpfNsPerConn)))
	}
	p("\n")
}

package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// chart draws three panels of horizontal bars, cell by cell: throughput at
// max rate against the cell's baseline; the tracer's CPU per 1,000 connections at
// max rate; and, at the fixed rate, the loadgen's and the tracer's CPU per
// 1,000 connections stacked (the hooks' in-kernel cost is in the loadgen's).
func (r *report) chart(path string) error {
	type bar struct {
		name  string
		vals  []float64 // one per stack level
		group string    // single-level panels: colored by group
	}
	panel := func(title, xlabel string, bars []bar, legend []string, ref float64) (*plot.Plot, error) {
		if len(bars) == 0 {
			return nil, fmt.Errorf("%s: no cell of this run to chart (-cells %q)", title, r.o.cells)
		}
		p := plot.New()
		p.Title.Text = title
		p.X.Label.Text = xlabel
		p.Title.TextStyle.Font.Size = vg.Points(12)
		// Top to bottom in cell order.
		names := make([]string, len(bars))
		for i, b := range bars {
			names[len(bars)-1-i] = b.name
		}
		colors := []plotColor{{70, 110, 180}, {230, 140, 50}}
		var below *plotter.BarChart
		levels := 0
		for _, b := range bars {
			levels = max(levels, len(b.vals))
		}
		hi := 0.0
		if levels == 1 {
			// One bar chart per group, in its own color.
			groupColors := map[string]plotColor{"baseline": {120, 120, 120}, "tuxscope": {70, 110, 180},
				earlierBuild: {150, 185, 225}, "peers": {230, 140, 50}}
			for _, g := range []string{"baseline", "tuxscope", earlierBuild, "peers"} {
				vals := make(plotter.Values, len(bars))
				any := false
				for i, b := range bars {
					if b.group == g && !math.IsNaN(b.vals[0]) {
						vals[len(bars)-1-i] = b.vals[0]
						any = true
					}
				}
				if !any {
					continue
				}
				bc, err := plotter.NewBarChart(vals, vg.Points(14))
				if err != nil {
					return nil, err
				}
				bc.Horizontal = true
				bc.Color = groupColors[g].rgba()
				bc.LineStyle.Width = 0
				p.Add(bc)
				p.Legend.Add(g, bc)
			}
			levels = 0
		}
		for l := 0; l < levels; l++ {
			vals := make(plotter.Values, len(bars))
			for i, b := range bars {
				if l < len(b.vals) && !math.IsNaN(b.vals[l]) {
					vals[len(bars)-1-i] = b.vals[l]
				}
			}
			bc, err := plotter.NewBarChart(vals, vg.Points(14))
			if err != nil {
				return nil, err
			}
			bc.Horizontal = true
			bc.Color = colors[l%len(colors)].rgba()
			bc.LineStyle.Width = 0
			if below != nil {
				bc.StackOn(below)
			}
			below = bc
			p.Add(bc)
			if l < len(legend) {
				p.Legend.Add(legend[l], bc)
			}
		}
		// Value labels at the bar ends.
		var xys plotter.XYs
		var labels []string
		for i, b := range bars {
			total := 0.0
			for _, v := range b.vals {
				if !math.IsNaN(v) {
					total += v
				}
			}
			hi = math.Max(hi, total)
			xys = append(xys, plotter.XY{X: total, Y: float64(len(bars) - 1 - i)})
			if xlabel == "× baseline" {
				labels = append(labels, " "+f3(total))
			} else {
				labels = append(labels, " "+f1(total))
			}
		}
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
		if err != nil {
			return nil, err
		}
		for i := range lb.TextStyle {
			lb.TextStyle[i].YAlign = -0.5
		}
		p.Add(lb)
		if ref > 0 {
			l, err := plotter.NewLine(plotter.XYs{{X: ref, Y: -0.5}, {X: ref, Y: float64(len(bars)) - 0.5}})
			if err != nil {
				return nil, err
			}
			l.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			l.LineStyle.Color = plotColor{200, 40, 40}.rgba()
			p.Add(l)
		}
		p.NominalY(names...)
		p.X.Min = 0
		p.X.Max = hi * 1.45 // room for the legend, top right
		if p.X.Max == 0 {
			p.X.Max = 1
		}
		p.Legend.Top = true
		p.Legend.Left = false
		p.Add(plotter.NewGrid())
		return p, nil
	}

	var tp, cpu, fixed []bar
	for _, c := range r.cells {
		if len(r.results[c]) == 0 {
			continue
		}
		switch c.Kind {
		case "max", "complete", "procs":
			g := map[string]string{"": "baseline", "tuxscope": "tuxscope"}[c.Tracer]
			if g == "" {
				g = "peers"
			} else if c.Build != nil {
				g = earlierBuild
			}
			tp = append(tp, bar{c.Name, []float64{r.ratio(c)}, g})
			if c.Tracer != "" {
				cpu = append(cpu, bar{c.Name, []float64{median(r.vals(c, tracerCPUPer1k)) * 1000}, g})
			}
		case "fixed":
			fixed = append(fixed, bar{name: c.Name, vals: []float64{
				median(r.vals(c, loadCPUPer1k)) * 1000,
				median(r.vals(c, tracerCPUPer1k)) * 1000,
			}})
		}
	}
	var plots []*plot.Plot
	// The line is the streams' target (table, json); summary and serve's
	// is higher (throughputTargets).
	line := throughputTargets[0].min
	p1, err := panel(fmt.Sprintf("Throughput at max rate (line: %.2f)", line), "× baseline", tp, nil, line)
	if err != nil {
		return err
	}
	plots = append(plots, p1)
	p2, err := panel("Tracer CPU at max rate", "ms per 1,000 connections", cpu, nil, 0)
	if err != nil {
		return err
	}
	plots = append(plots, p2)
	if len(fixed) > 0 {
		p3, err := panel(fmt.Sprintf("CPU at %s conn/s", f0(r.o.fixedRate)), "ms per 1,000 connections",
			fixed, []string{"loadgen (incl. BPF hooks)", "tracer process"}, 0)
		if err != nil {
			return err
		}
		plots = append(plots, p3)
	}

	const w, h = 18 * vg.Inch, 6 * vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(110))
	dc := draw.New(img)
	// A white background and a caption line.
	dc.SetColor(plotColor{255, 255, 255}.rgba())
	dc.Fill(dc.Rectangle.Path())
	caption := fmt.Sprintf("tuxscope %s · %d CPUs %s · kernel %s · %s · medians of %d rounds, %s each",
		shortCommit(r.m.Commit), r.m.CPUs, r.m.Model, r.m.Kernel, r.m.Date.Format("2006-01-02"), r.o.rounds, r.o.duration)
	top := draw.Canvas{Canvas: dc, Rectangle: dc.Rectangle}
	top.Max.Y -= vg.Points(34)
	capStyle := plot.New().Title.TextStyle
	capStyle.Font.Size = vg.Points(11)
	capStyle.XAlign = draw.XCenter
	dc.FillText(capStyle, vg.Point{X: w / 2, Y: h - vg.Points(20)}, caption)

	tiles := draw.Tiles{Rows: 1, Cols: len(plots), PadX: vg.Points(12), PadLeft: vg.Points(6), PadRight: vg.Points(10), PadBottom: vg.Points(6)}
	canvases := plot.Align([][]*plot.Plot{plots}, tiles, top)
	for i, p := range plots {
		p.Draw(canvases[0][i])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// earlierBuild is the chart's group of the cells of tuxscope built at -before.
const earlierBuild = "tuxscope, earlier build"

type plotColor struct{ r, g, b uint8 }

func (c plotColor) rgba() color.RGBA { return color.RGBA{R: c.r, G: c.g, B: c.b, A: 255} }

func shortCommit(s string) string {
	if len(s) >= 12 {
		short := s[:12]
		if strings.Contains(s, "uncommitted") {
			short += "+dirty"
		}
		return short
	}
	return s
}

package cli

import (
	"context"
	"errors"
	"io"
	"os"

	tea "github.com/charmbracelet/bubbletea"
	"golang.org/x/term"

	"github.com/tuxscope/tuxscope/internal/pipeline"
	"github.com/tuxscope/tuxscope/internal/top"
	"github.com/tuxscope/tuxscope/internal/tracer"
)

// liveView is what runs beside the pipeline and is fed by it: top's
// full-screen view, serve's HTTP server. Its run's return ends the run.
type liveView struct {
	sink pipeline.Sink
	run  func(ctx context.Context) error
	// attached, if set, is told the hooks once they are attached.
	attached func([]tracer.Choice)
}

func runTop(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts, err := parseOptions("top", args, stdout)
	if err != nil {
		return usageExit("tuxscope top", err, stderr)
	}
	out, ok := stdout.(*os.File)
	if !ok || !term.IsTerminal(int(out.Fd())) {
		// Not a terminal: plain periodic summaries, as net --summary --interval.
		opts.Top = 0
		return trace(ctx, &opts, stdout, stderr, nil)
	}
	feed := top.NewFeed(opts.By)
	view := &liveView{sink: feed, run: func(ctx context.Context) error {
		p := tea.NewProgram(top.NewModel(feed, opts.Interval, opts.Sort),
			tea.WithAltScreen(), tea.WithOutput(out), tea.WithContext(ctx))
		_, err := p.Run()
		if errors.Is(err, tea.ErrProgramKilled) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil // SIGINT/SIGTERM or --duration
		}
		return err
	}}
	return trace(ctx, &opts, stdout, stderr, view)
}

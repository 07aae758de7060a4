package summary

import (
	"bufio"
	"fmt"
	"io"
	"time"

	"github.com/tuxscope/tuxscope/internal/event"
	"github.com/tuxscope/tuxscope/internal/output"
)

// Sink is the pipeline.Sink of `tuxscope net --summary`: it aggregates
// events and writes a summary every interval (if set) and at the end.
type Sink struct {
	w        *bufio.Writer
	format   output.Format
	interval time.Duration
	by       SortBy
	group    GroupBy
	topPeers int
	agg      *Aggregator
	next     time.Time
}

// NewSink writes summaries in format to w, rows grouped by group and
// sorted by by; interval 0 means only at the end. topPeers bounds the
// peers shown per group (0: all).
func NewSink(w io.Writer, format output.Format, interval time.Duration, by SortBy, group GroupBy, topPeers int) *Sink {
	return &Sink{w: bufio.NewWriter(w), format: format, interval: interval, by: by, group: group, topPeers: topPeers}
}

// Start begins the first period.
func (s *Sink) Start() error {
	now := time.Now()
	s.agg = New(now, s.group)
	s.next = now.Add(s.interval)
	return nil
}

// Event accounts for e.
func (s *Sink) Event(e *event.Event) error {
	s.agg.Add(e)
	return nil
}

// Lost counts dropped events into the current period.
func (s *Sink) Lost(n uint64, why event.LossReason, _ time.Time) error {
	if why.DNS() || why.TLS() {
		return nil // DNS messages or server names, not events
	}
	s.agg.AddLost(n)
	return nil
}

// Tick writes and restarts the period once the interval has passed.
func (s *Sink) Tick(now time.Time) error {
	if s.interval <= 0 || now.Before(s.next) {
		return nil
	}
	if err := s.write(now); err != nil {
		return err
	}
	s.agg = s.agg.Next(now)
	for !s.next.After(now) {
		s.next = s.next.Add(s.interval)
	}
	return nil
}

// StillOpen goes into the last summary.
func (s *Sink) StillOpen(n event.OpenCount, _ time.Time) error {
	s.agg.SetOpenAtExit(n)
	return nil
}

// Flush writes out what is buffered.
func (s *Sink) Flush() error { return s.w.Flush() }

// Finish writes the last (or only) summary.
func (s *Sink) Finish() error {
	if err := s.write(time.Now()); err != nil {
		return err
	}
	return s.w.Flush()
}

func (s *Sink) write(end time.Time) error {
	if s.format == output.FormatJSON {
		return WriteJSON(s.w, s.agg, end, s.by, s.topPeers)
	}
	if err := WriteTable(s.w, s.agg, end, s.by, s.topPeers); err != nil {
		return err
	}
	_, err := fmt.Fprintln(s.w)
	return err
}

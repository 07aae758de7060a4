package pipeline

import (
	"errors"
	"time"

	"github.com/tuxscope/tuxscope/internal/event"
)

// Tee is a sink that hands everything to each of its sinks in turn (e.g.
// the table on stdout and the --output file). A call stops at the first
// sink that fails, except Finish, which finishes every sink and joins
// their errors.
type Tee []Sink

func (t Tee) each(f func(Sink) error) error {
	for _, s := range t {
		if err := f(s); err != nil {
			return err
		}
	}
	return nil
}

func (t Tee) Start() error { return t.each(Sink.Start) }
func (t Tee) Flush() error { return t.each(Sink.Flush) }

func (t Tee) Event(e *event.Event) error {
	return t.each(func(s Sink) error { return s.Event(e) })
}

func (t Tee) Lost(n uint64, why event.LossReason, at time.Time) error {
	return t.each(func(s Sink) error { return s.Lost(n, why, at) })
}

func (t Tee) Tick(now time.Time) error {
	return t.each(func(s Sink) error { return s.Tick(now) })
}

func (t Tee) StillOpen(n event.OpenCount, at time.Time) error {
	return t.each(func(s Sink) error { return s.StillOpen(n, at) })
}

func (t Tee) Finish() error {
	var errs []error
	for _, s := range t {
		errs = append(errs, s.Finish())
	}
	return errors.Join(errs...)
}

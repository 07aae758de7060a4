package pipeline

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tuxscope/tuxscope/internal/event"
)

type failingFinish struct{ sinkLog }

func (f *failingFinish) Finish() error {
	f.calls = append(f.calls, "finish")
	return errors.New("disk full")
}

// TestTee: each sink gets every call in order; an Event error stops the
// call at the failing sink; Finish finishes every sink and returns their
// errors.
func TestTee(t *testing.T) {
	a, b := &failingFinish{}, &sinkLog{}
	tee := Tee{a, b}
	tee.Start()
	tee.Event(&event.Event{Type: event.Connect, PID: 5})
	tee.Lost(3, event.OutputFull, time.Time{})
	tee.Flush()
	a.fail = errors.New("stdout closed")
	if err := tee.Event(&event.Event{Type: event.Close, PID: 6}); err == nil || err.Error() != "stdout closed" {
		t.Errorf("Event: %v", err)
	}
	if err := tee.Finish(); err == nil || err.Error() != "disk full" {
		t.Errorf("Finish: %v", err)
	}
	wantA := []string{"start", "connect pid=5", "lost 3 output_full", "flush", "close pid=6", "finish"}
	wantB := []string{"start", "connect pid=5", "lost 3 output_full", "flush", "finish"}
	if !slices.Equal(a.calls, wantA) || !slices.Equal(b.calls, wantB) {
		t.Errorf("calls:\n%q\n%q\nwant\n%q\n%q", a.calls, b.calls, wantA, wantB)
	}
}

package event

import (
	"fmt"
	"time"
)

// LossReason says why events were lost.
type LossReason uint8

const (
	// RingBufferFull: the kernel side could not queue the events.
	RingBufferFull LossReason = iota
	// HookSkipped: the kernel skipped tuxscope's programs because another
	// BPF program was running on that CPU (the programs' recursion
	// misses); each skip may have cost an event, so up to that many are
	// missing.
	HookSkipped
	// ConnTableFull: sockets (connection ends) the kernel side could not
	// track because its connection table was full; each lacks its outcome
	// (established or failed) or its close's owner.
	ConnTableFull

	// NumLossReasons is how many reasons there are.
	NumLossReasons
)

// lossReasons says, per reason, its JSON key and the table's stderr line
// (a format with the count twice).
var lossReasons = [NumLossReasons]struct{ key, line string }{
	RingBufferFull: {"ring_buffer_full", "lost %d events: the ring buffer was full (try a larger --buffer-size)"},
	HookSkipped:    {"hook_skipped", "up to %d events missing: the kernel skipped tuxscope's programs %[1]d times (another BPF program was running on that CPU)"},
	ConnTableFull:  {"conn_table_full", "%d connection ends not tracked: the connection table was full (try a larger --conn-table); their outcome is missing or their close unattributed"},
}

// Key is the loss's "reason" in JSON.
func (l LossReason) Key() string { return lossReasons[l].key }

// Describe is one line saying that n events were lost for this reason.
func (l LossReason) Describe(n uint64) string { return fmt.Sprintf(lossReasons[l].line, n) }

// LossCounts holds a count per loss reason.
type LossCounts [NumLossReasons]uint64

// Any reports whether any count is non-zero.
func (c LossCounts) Any() bool { return c != LossCounts{} }

// Handler receives what a source (the tracer) observes, in order, from one
// goroutine. The pointers are valid only during the call.
type Handler interface {
	// Event is a TCP event decoded from the kernel.
	Event(e *Event) error
	// DNS is a DNS message a local socket sent or received.
	DNS(p *DNSPacket) error
	// Lost says n events were lost since the last report, and why.
	Lost(n uint64, why LossReason, at time.Time) error
	// Tick is called about every interval the source was asked for (and
	// may be called more often).
	Tick(now time.Time) error
	// CaughtUp says the source has handed over everything the kernel had
	// queued and is about to wait: the moment to write buffered output.
	CaughtUp() error
}

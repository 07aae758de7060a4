package event

import "time"

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
)

// Key is the loss's "reason" in JSON.
func (l LossReason) Key() string {
	if l == HookSkipped {
		return "hook_skipped"
	}
	return "ring_buffer_full"
}

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

package event

import "time"

// LossReason says why events were lost, or DNS messages or state dropped.
type LossReason uint8

const (
	// RingBufferFull: the kernel side could not queue the events.
	RingBufferFull LossReason = iota
	// HookSkipped: the kernel skipped tuxscope's programs because another
	// BPF program was running on that CPU (the programs' recursion
	// misses); each skip may have cost an event, so up to that many are
	// missing.
	HookSkipped
	// DNSMalformed: DNS messages that could not be parsed (or were cut
	// short by the capture) were skipped.
	DNSMalformed
	// DNSUnsolicited: DNS answers that matched no query seen leaving
	// their socket were dropped (they name nothing).
	DNSUnsolicited
	// DNSEvicted: remembered names, queries awaiting answers or partial
	// DNS-over-TCP messages were dropped to keep within the DNS memory
	// bound.
	DNSEvicted
)

// DNS reports whether this is about DNS messages, not lost events.
func (l LossReason) DNS() bool { return l >= DNSMalformed }

// Key is the loss's "reason" in JSON.
func (l LossReason) Key() string {
	switch l {
	case HookSkipped:
		return "hook_skipped"
	case DNSMalformed:
		return "malformed"
	case DNSUnsolicited:
		return "unsolicited"
	case DNSEvicted:
		return "evicted"
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
	// Lost says n events were lost since the last report, and why (or,
	// for a DNS reason, n DNS messages or entries dropped).
	Lost(n uint64, why LossReason, at time.Time) error
	// Tick is called about every interval the source was asked for (and
	// may be called more often).
	Tick(now time.Time) error
	// CaughtUp says the source has handed over everything the kernel had
	// queued and is about to wait: the moment to write buffered output.
	CaughtUp() error
}

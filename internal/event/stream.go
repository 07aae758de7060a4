package event

import (
	"fmt"
	"time"
)

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
	// ConnTableFull: sockets (connection ends) the kernel side could not
	// track because its connection table was full; each lacks its outcome
	// (established or failed) or its close's owner.
	ConnTableFull
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
	// HostsSkipped: hosts-file lines or names not used: malformed (as
	// glibc ignores them), past a bound (line or name length, names per
	// address, addresses per file), or past the file's size bound.
	HostsSkipped
	// HostsEvicted: mount namespaces' hosts files forgotten to stay
	// within the hosts cache's bounds (read again when needed, while a
	// process of the namespace is alive).
	HostsEvicted
	// OutputFull: events dropped before the --output file because its
	// writer's queue was full (a slow or stalled disk); the kernel side is
	// never made to wait for the file.
	OutputFull
	// OutputError: records that could not be written to the --output file
	// (a write failed, e.g. the disk was full).
	OutputError
	// UpdateLimit: update events not made in a period because more
	// tracked connections were due than the per-period limit; each one
	// skipped is updated later, over a longer period.
	UpdateLimit
	// ListenerTableFull: listeners the kernel side could not remember
	// the owner of because its listener table was full; the SYN-ACKs
	// retransmitted for their half-open connections have no process.
	ListenerTableFull
	// UDPTableFull: UDP flows the kernel side could not track because
	// its flow table was full; their packets were not counted.
	UDPTableFull
	// TLSSplit: TLS ClientHellos that continued past the connection's
	// first segment, with no server name in it (the connection has no
	// sni).
	TLSSplit
	// TLSOversized: TLS ClientHellos larger than what the kernel side
	// captures of a segment (or than a TLS record), with no server name
	// in the part read.
	TLSOversized
	// TLSMalformed: first segments that began as a TLS handshake record
	// but held no well-formed ClientHello.
	TLSMalformed
	// QUICNotQUIC .. QUICTooLarge: UDP flows to port 443 whose first
	// datagrams held no readable QUIC Initial ClientHello (the
	// categories of internal/quic's Reason); counted once per flow, at
	// its close.
	QUICNotQUIC
	QUICNotInitial
	QUICVersion
	QUICMalformed
	QUICDecrypt
	QUICIncomplete
	QUICTooLarge
	// TLSEvicted: events that lacked their connection's server name
	// because it had been forgotten to stay within the server-name
	// memory bound.
	TLSEvicted

	// NumLossReasons is how many reasons there are.
	NumLossReasons
)

// lossReasons says, per reason, its JSON key and the table's stderr line
// (a format with the count twice). The DNS ones are about DNS messages
// and names, not lost events.
var lossReasons = [NumLossReasons]struct{ key, line string }{
	RingBufferFull:    {"ring_buffer_full", "lost %d events: the ring buffer was full (try a larger --buffer-size)"},
	HookSkipped:       {"hook_skipped", "up to %d events missing: the kernel skipped tuxscope's programs %[1]d times (another BPF program was running on that CPU)"},
	ConnTableFull:     {"conn_table_full", "%d connection ends not tracked: the connection table was full (try a larger --conn-table); their outcome is missing or their close unattributed"},
	DNSMalformed:      {"malformed", "skipped %d malformed or truncated DNS messages"},
	DNSUnsolicited:    {"unsolicited", "dropped %d DNS answers that match no query seen from their socket (unsolicited or spoofed): they name nothing"},
	DNSEvicted:        {"evicted", "forgot %d DNS names, queries or partial messages to stay within the DNS memory bound"},
	HostsSkipped:      {"hosts_skipped", "skipped %d hosts-file lines or names: malformed, or past a bound (4096-byte lines, 255-byte names, 8 names an address, 16384 addresses or 1 MiB a file)"},
	HostsEvicted:      {"hosts_evicted", "forgot %d mount namespaces' hosts files to stay within the hosts cache's bound (256 namespaces, 16 MiB)"},
	OutputFull:        {"output_full", "dropped %d events before the --output file: its writer could not keep up (a slow or stalled disk)"},
	OutputError:       {"output_error", "%d records not written to the --output file: writing it failed"},
	UpdateLimit:       {"update_limit", "%d connection updates skipped: more connections were due than the per-period limit; each is updated later, over a longer period"},
	ListenerTableFull: {"listener_table_full", "%d listeners' owners not remembered: the listener table was full; the SYN-ACKs retransmitted for their half-open connections have no process"},
	UDPTableFull:      {"udp_table_full", "%d UDP flows not tracked: the UDP flow table was full (try a larger --udp-flows); their packets were not counted"},
	TLSSplit:          {"split", "%d TLS ClientHellos split over segments with no server name in the first: those connections have no sni"},
	TLSOversized:      {"oversized", "%d TLS ClientHellos larger than the capture with no server name in the part captured: those connections have no sni"},
	TLSMalformed:      {"not_client_hello", "skipped %d TLS handshake records that held no well-formed ClientHello"},
	QUICNotQUIC:       {"quic_not_quic", "%d UDP flows to port 443 whose first datagrams were not QUIC: those flows have no sni"},
	QUICNotInitial:    {"quic_not_initial", "%d UDP flows to port 443 whose first datagrams held no QUIC Initial: those flows have no sni"},
	QUICVersion:       {"quic_version", "%d UDP flows to port 443 of a QUIC version not read (v1 and v2 are): those flows have no sni"},
	QUICMalformed:     {"quic_malformed", "%d UDP flows to port 443 with a malformed QUIC Initial or ClientHello: those flows have no sni"},
	QUICDecrypt:       {"quic_decrypt", "%d UDP flows to port 443 whose QUIC Initial did not decrypt (cut by the capture, or not a client's): those flows have no sni"},
	QUICIncomplete:    {"quic_incomplete", "%d UDP flows to port 443 whose QUIC ClientHello was not complete in their first two datagrams: those flows have no sni"},
	QUICTooLarge:      {"quic_too_large", "%d UDP flows to port 443 with a QUIC ClientHello past the parser's limits: those flows have no sni"},
	TLSEvicted:        {"sni_evicted", "%d events without their TLS server name: it was forgotten to stay within the server-name memory bound"},
}

// DNS reports whether this is about DNS messages or hostnames (DNS
// answers, hosts files), not lost events.
func (l LossReason) DNS() bool { return l >= DNSMalformed && l <= HostsEvicted }

// TLS reports whether this is about TLS server names, not lost events.
func (l LossReason) TLS() bool { return l >= TLSSplit && l <= TLSEvicted }

// Key is the loss's "reason" in JSON.
func (l LossReason) Key() string { return lossReasons[l].key }

// Describe is one line saying that n events (or DNS messages) were lost
// for this reason.
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
	// TLS is an outbound connection's first data segment, a TLS
	// ClientHello.
	TLS(h *TLSHello) error
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

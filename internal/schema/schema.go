// Package schema declares tuxscope's JSON output, in one place: every key
// of every line `tuxscope net --format json` writes (events and lost
// records) and of its summaries (`--summary --format json`). The writers
// are held to it (internal/output's tests decode every line they write
// with unknown keys refused; internal/summary marshals these very types),
// and the integration tests and the benchmark read tuxscope's output
// with it. The README's key table documents the same keys.
//
// The event writer does not use these types on its hot path: it appends
// the same keys itself, without reflection or allocation.
package schema

import "fmt"

// Event is one line of `tuxscope net --format json`: an event, or a lost
// record. Keys that only some event types carry are pointers or empty
// when absent.
type Event struct {
	Time        string `json:"time"`         // wall-clock time, RFC 3339 with nanoseconds
	TimestampNs uint64 `json:"timestamp_ns"` // kernel CLOCK_MONOTONIC; not on lost records
	EventType   string `json:"event_type"`   // connect, accept, established, failed, close, retransmit, reset, listen, unlisten, existing, dns, update, udp_open, udp_close, lost, dns_dropped, tls_dropped
	PID         int    `json:"pid"`          // process (tgid) that connected or accepted (a close: that held and closed the socket); 0 if unknown
	TID         int    `json:"tid"`          // its thread
	UID         int    `json:"uid"`
	Comm        string `json:"comm"`                  // its process's name, the thread-group leader's (escaped: any bytes are valid JSON)
	Thread      string `json:"thread,omitempty"`      // the thread's (tid's) name, when it differs from comm
	OpenerPID   int    `json:"opener_pid,omitempty"`  // close: the process that connected or accepted, when another (pid) held and closed it
	OpenerComm  string `json:"opener_comm,omitempty"` // its name
	// PeerPID is the process at the other end of a connection whose both
	// ends are on this host (connect: the listener's, when known), and
	// PeerComm its name; absent when unknown.
	PeerPID   int    `json:"peer_pid,omitempty"`
	PeerComm  string `json:"peer_comm,omitempty"`
	Family    int    `json:"family"`          // 4 or 6
	Proto     string `json:"proto,omitempty"` // udp for UDP flows (udp_open, udp_close); absent: tcp
	Saddr     string `json:"saddr"`           // SRC: local end of an outbound connection, remote client of an inbound one
	Sport     int    `json:"sport"`
	Daddr     string `json:"daddr"` // DST: remote end of an outbound connection, local listener of an inbound one
	Dport     int    `json:"dport"`
	Direction string `json:"direction"` // outbound (connected from here) or inbound (accepted here)

	Hostname       string   `json:"hostname,omitempty"`        // outbound events: the name that resolved to daddr
	HostnameSource string   `json:"hostname_source,omitempty"` // process, cgroup or host: whose lookup it was; hosts: the process's hosts file
	HostnameAlso   []string `json:"hostname_also,omitempty"`   // other names live for that address
	// SNI is the server name an outbound connection's TLS ClientHello
	// asked for, ALPN the application protocols it offered; on the
	// connection's events after its first data segment (not its connect).
	SNI  string   `json:"sni,omitempty"`
	ALPN []string `json:"alpn,omitempty"`

	State string `json:"state,omitempty"` // existing, update, retransmit, reset (before it): the TCP state, e.g. ESTABLISHED

	// Backlog is a listener's accept queue limit (listen, unlisten,
	// existing with state LISTEN); V6Only says an IPv6 listener takes no
	// IPv4 connections (IPV6_V6ONLY).
	Backlog *uint32 `json:"backlog,omitempty"`
	V6Only  bool    `json:"v6only,omitempty"`

	Cgroup      string `json:"cgroup,omitempty"`       // the process's cgroup path: v2, or v1 where the v2 one is the root
	ContainerID string `json:"container_id,omitempty"` // the full 64-hex id the cgroup path shows
	Runtime     string `json:"runtime,omitempty"`      // docker, containerd, cri-o, podman, or systemd (a plain service unit)
	PodUID      string `json:"pod_uid,omitempty"`      // a Kubernetes pod's uid, from the kubepods path
	Container   string `json:"container,omitempty"`    // runtime systemd: the unit's name, e.g. nginx.service; Kubernetes: the container's name
	Pod         string `json:"pod,omitempty"`          // a Kubernetes pod's name, from the CRI runtime
	Namespace   string `json:"namespace,omitempty"`    // the pod's namespace, from the CRI runtime

	LatencyNs     *uint64 `json:"latency_ns,omitempty"`     // established, failed: since the SYN; dns: since the query
	DurationNs    *uint64 `json:"duration_ns,omitempty"`    // close: since established, absent when unknown
	BytesSent     *uint64 `json:"bytes_sent,omitempty"`     // close, update: data bytes sent (update: so far)
	BytesReceived *uint64 `json:"bytes_received,omitempty"` // close, update: data bytes received
	// udp_close: datagrams each way (bytes_sent and bytes_received are
	// their payload bytes, duration_ns first packet to last), and why the
	// flow ended: closed (its socket was) or idle (--udp-idle)
	PacketsSent     *uint64 `json:"packets_sent,omitempty"`
	PacketsReceived *uint64 `json:"packets_received,omitempty"`
	End             string  `json:"end,omitempty"`
	ClosedBy        string  `json:"closed_by,omitempty"` // close: local or remote, who closed (or reset) first
	Reset           bool    `json:"reset,omitempty"`     // close: it ended with a reset, sent or received (closed_by says who closed first)
	ResetBy         string  `json:"reset_by,omitempty"`  // reset: local (this end sent it) or remote

	// The connection's health, as tcp_info reports it.
	SRTTUs       *uint32 `json:"srtt_us,omitempty"`       // close, existing, update: smoothed RTT, µs (tcp_info's tcpi_rtt)
	RTTVarUs     *uint32 `json:"rttvar_us,omitempty"`     // close, existing, update: its mean deviation, µs
	RetransSegs  *uint32 `json:"retrans_segs,omitempty"`  // close, existing, update: segments retransmitted in all; retransmit: so far
	BytesRetrans *uint64 `json:"bytes_retrans,omitempty"` // close, existing: payload bytes retransmitted
	SynRetrans   *uint8  `json:"syn_retrans,omitempty"`   // established: SYNs resent before the handshake completed
	Retransmits  *uint32 `json:"retransmits,omitempty"`   // retransmit: segments retransmitted since the connection's last retransmit event
	// Reason is why a connect failed or a connection was reset (refused,
	// timed out, ...); on a lost record, why events were lost
	// (ring_buffer_full, hook_skipped); on a dns_dropped record, what was
	// dropped (malformed, unsolicited, evicted; hosts_skipped, hosts_evicted);
	// on a tls_dropped record, why connections have no sni (split,
	// oversized, ...).
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"` // the errno's name, e.g. ECONNREFUSED

	Query   string   `json:"query,omitempty"` // dns: the question
	QType   string   `json:"qtype,omitempty"` // dns: A, AAAA, ...
	RCode   string   `json:"rcode,omitempty"` // dns: NOERROR, NXDOMAIN, ...
	Answers []string `json:"answers,omitempty"`
	CNAMEs  []string `json:"cnames,omitempty"` // dns: the alias chain, in order
	TTL     *uint32  `json:"ttl,omitempty"`    // dns: the smallest TTL of the answers

	// update: the period since the previous update (or since the
	// connection was established) and what it saw (the connection's
	// health from tcp_info is in the keys above).
	PeriodNs            *uint64 `json:"period_ns,omitempty"`
	PeriodBytesSent     *uint64 `json:"period_bytes_sent,omitempty"`
	PeriodBytesReceived *uint64 `json:"period_bytes_received,omitempty"`
	SendBytesPerS       *uint64 `json:"send_bytes_per_s,omitempty"`    // period_bytes_sent per second of the period
	ReceiveBytesPerS    *uint64 `json:"receive_bytes_per_s,omitempty"` // period_bytes_received per second
	PeriodRetrans       *uint32 `json:"period_retrans,omitempty"`      // segments retransmitted in the period

	Count uint64 `json:"count,omitempty"` // lost: how many events; dns_dropped: how many messages or entries; tls_dropped: how many connections; open_at_exit: how many connections
	// open_at_exit: the connections still open when tuxscope stopped, by
	// direction (count is their sum).
	Outbound *uint64 `json:"outbound,omitempty"`
	Inbound  *uint64 `json:"inbound,omitempty"`
}

// String is a one-line description, for test failures and tools.
func (e Event) String() string {
	switch e.EventType {
	case "lost", "dns_dropped", "tls_dropped":
		return fmt.Sprintf("%s %d (%s)", e.EventType, e.Count, e.Reason)
	case "open_at_exit":
		return fmt.Sprintf("open_at_exit %d (outbound %v, inbound %v)", e.Count, deref(e.Outbound), deref(e.Inbound))
	}
	s := fmt.Sprintf("%s pid=%d comm=%q %s:%d -> %s:%d (family %d, %s)", e.EventType, e.PID, e.Comm, e.Saddr, e.Sport, e.Daddr, e.Dport, e.Family, e.Direction)
	for _, f := range []struct {
		name string
		v    *uint64
	}{{"latency_ns", e.LatencyNs}, {"duration_ns", e.DurationNs}, {"bytes_sent", e.BytesSent}, {"bytes_received", e.BytesReceived}} {
		if f.v != nil {
			s += fmt.Sprintf(" %s=%d", f.name, *f.v)
		}
	}
	if e.ClosedBy != "" || e.Reason != "" || e.Error != "" {
		s += fmt.Sprintf(" closed_by=%q reason=%q error=%q", e.ClosedBy, e.Reason, e.Error)
	}
	if e.Hostname != "" {
		s += fmt.Sprintf(" hostname=%q (%s)", e.Hostname, e.HostnameSource)
	}
	if e.SNI != "" || e.ALPN != nil {
		s += fmt.Sprintf(" sni=%q alpn=%q", e.SNI, e.ALPN)
	}
	return s
}

// Summary is one line of `tuxscope net --summary --format json`
// ("event_type":"summary"): a period's connections per process and peer.
type Summary struct {
	Time       string `json:"time"`        // end of the period
	EventType  string `json:"event_type"`  // summary
	Start      string `json:"start"`       // start of the period
	DurationNs int64  `json:"duration_ns"` // its length
	SortedBy   string `json:"sorted_by"`   // connections, bytes or failures
	By         string `json:"by"`          // the grouping: process, comm, container or pod
	Lost       uint64 `json:"lost"`        // events lost in the period
	// Processes are the groups of --by process (always there then, [] when
	// none), Groups those of the other groupings (there instead).
	Processes []Process `json:"processes,omitzero"`
	Groups    []Group   `json:"groups,omitzero"`
	// OpenAtExit is on the last summary only: the connections still open
	// when tuxscope stopped.
	OpenAtExit *OpenAtExit `json:"open_at_exit,omitempty"`
}

// OpenAtExit counts the tracked connections still open at exit.
type OpenAtExit struct {
	Count    uint64 `json:"count"` // outbound + inbound
	Outbound uint64 `json:"outbound"`
	Inbound  uint64 `json:"inbound"`
}

func deref(p *uint64) any {
	if p == nil {
		return "-"
	}
	return *p
}

// Process is a summary's row for one process, with its peers.
type Process struct {
	PID           uint32 `json:"pid"`
	Comm          string `json:"comm"`
	Connects      uint64 `json:"connects"`
	Accepts       uint64 `json:"accepts"`
	Failures      uint64 `json:"failures"`
	BytesSent     uint64 `json:"bytes_sent"`
	BytesReceived uint64 `json:"bytes_received"`
	RetransSegs   uint64 `json:"retrans_segs"` // segments retransmitted (updates, closes)
	Peers         []Peer `json:"peers"`
}

// Group is a summary's row for one group of --by comm, container or pod,
// with its peers: what identifies it (the keys of the grouping, those
// known), its totals and its peers.
type Group struct {
	Group         string `json:"group"`                  // the group's name, as the table shows it
	Comm          string `json:"comm,omitempty"`         // comm: the process name
	ContainerID   string `json:"container_id,omitempty"` // container: as on events
	Runtime       string `json:"runtime,omitempty"`
	Container     string `json:"container,omitempty"`
	PodUID        string `json:"pod_uid,omitempty"` // container (in a pod) and pod: as on events
	Pod           string `json:"pod,omitempty"`
	Namespace     string `json:"namespace,omitempty"`
	Connects      uint64 `json:"connects"`
	Accepts       uint64 `json:"accepts"`
	Failures      uint64 `json:"failures"`
	BytesSent     uint64 `json:"bytes_sent"`
	BytesReceived uint64 `json:"bytes_received"`
	RetransSegs   uint64 `json:"retrans_segs"` // segments retransmitted (updates, closes)
	Peers         []Peer `json:"peers"`
}

// Peer is one process's traffic with one peer address and port, one way.
type Peer struct {
	// udp: a UDP flow's row (connects and accepts count flows, by the
	// way their first packet went); absent: TCP
	Proto         string            `json:"proto,omitempty"`
	Direction     string            `json:"direction"` // outbound or inbound
	Peer          string            `json:"peer"`      // the remote address
	Hostname      string            `json:"hostname,omitempty"`
	Port          uint16            `json:"port"` // the remote port (outbound) or the local listener's (inbound)
	Connects      uint64            `json:"connects"`
	Accepts       uint64            `json:"accepts"`
	Established   uint64            `json:"established"`
	Failures      uint64            `json:"failures"`
	Errors        map[string]uint64 `json:"errors,omitempty"` // failures by reason
	Closes        uint64            `json:"closes"`
	BytesSent     uint64            `json:"bytes_sent"`
	BytesReceived uint64            `json:"bytes_received"`
	RetransSegs   uint64            `json:"retrans_segs"`          // segments retransmitted: updates' periods, and closes' rest
	LatencyNs     *Percentiles      `json:"latency_ns,omitempty"`  // handshake latency
	DurationNs    *Percentiles      `json:"duration_ns,omitempty"` // connection duration
	RTTNs         *Percentiles      `json:"rtt_ns,omitempty"`      // smoothed RTT of updates and closes
}

// Percentiles of a distribution, in ns; absent when there were no samples.
type Percentiles struct {
	P50 int64 `json:"p50"`
	P90 int64 `json:"p90"`
	P99 int64 `json:"p99"`
	Max int64 `json:"max"`
}

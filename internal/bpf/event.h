/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * The records the kernel side hands to user space through the ring buffer.
 * This header is the single source of truth for their layout: bpf2go turns
 * struct event, struct dns_event and the struct event_header both start
 * with into Go types (-type), so there is no hand-kept copy.
 */
#ifndef TUXSCOPE_EVENT_H
#define TUXSCOPE_EVENT_H

enum event_type {
	EVENT_CONNECT = 1,     /* connect() returned: SYN sent (or handshake done) */
	EVENT_ACCEPT = 2,      /* accept()/accept4() returned a new connection */
	EVENT_ESTABLISHED = 3, /* an outbound connect's handshake completed */
	EVENT_FAILED = 4,      /* an outbound connect failed (error says why) */
	EVENT_CLOSE = 5,       /* a connection ended */
	EVENT_DNS = 7,         /* a DNS message (struct dns_event); 6 is user space's */
	EVENT_RETRANSMIT = 8,  /* segments were retransmitted (coalesced per connection) */
	EVENT_RESET = 9,       /* a reset was sent or received on a connection */
	EVENT_LISTEN = 10,     /* a socket started listening (CLOSE -> LISTEN) */
	EVENT_UNLISTEN = 11,   /* a listener closed (LISTEN -> CLOSE) */
	/* 12 and 14 (update, udp_close) are user space's */
	EVENT_UDP_OPEN = 13,    /* a UDP flow's first packet, either way (udp.bpf.h) */
	EVENT_UDP_RELEASE = 15, /* a UDP socket with flows was released: user space ends them */
	EVENT_TLS = 16,        /* an outbound connection's first segment, a TLS handshake (struct tls_event); 12 is user space's */
	EVENT_QUIC = 17,       /* one of a UDP flow to port 443's first datagrams, a QUIC long header (struct tls_event) */
};

/* event.flags */
enum event_flag {
	FLAG_INBOUND = 1,       /* the connection was accepted, not connected */
	FLAG_CLOSED_LOCAL = 2,  /* close: this end closed (or reset) first */
	FLAG_CLOSED_REMOTE = 4, /* close: the peer closed (or reset) first */
	FLAG_RESET = 8,         /* close: it ended with a reset, sent or received */
	FLAG_V6ONLY = 16,       /* listen, unlisten: an AF_INET6 listener with IPV6_V6ONLY */
	/* established, failed: the record also stands for the connect event
	 * before it (same time, owner and tuple, no other field), emitted
	 * where the handshake ended inside connect(): one ring-buffer
	 * reservation instead of two. The reader makes both events. */
	FLAG_WITH_CONNECT = 32,
};
/* A reset event's side uses the close bits: FLAG_CLOSED_LOCAL when this
 * end sent it, FLAG_CLOSED_REMOTE when the peer did. */

/*
 * Who a connection belongs to. For connect and accept, the process that
 * made the syscall; for established and failed, the one that connected;
 * for close, the one that held the socket and closed it (a forked child
 * of the accepting server, say), else the one that connected or accepted.
 */
struct owner {
	__u32 pid;	/* tgid; 0: unknown (it predates tuxscope, or was never accepted) */
	__u32 tid;
	__u32 uid;
	char comm[16];	 /* the process's name: its thread-group leader's */
	char thread[16]; /* the thread's own name (tid's) */
	__u64 cgroup_id; /* cgroup v2 id of the process (as pid) */
};

/* Both ends of a connection, host byte order ports. */
struct tuple {
	__u8 laddr[16];	/* local address: 4 bytes for AF_INET, 16 for AF_INET6 */
	__u8 raddr[16];	/* remote address */
	__u16 lport;	/* local port */
	__u16 rport;	/* remote port */
	__u16 family;	/* AF_INET or AF_INET6 (dual-stack sockets are AF_INET6) */
	/* The socket's network namespace: its netns cookie (the kernel's
	 * net->net_cookie, what bpf_get_netns_cookie returns); 0 if unknown.
	 * DNS names are scoped by it. */
	__u64 netns;
	/* AF_INET6: the interface the socket is bound to (sk_bound_dev_if),
	 * which is a link-local address's zone; 0: none. */
	__u32 ifindex;
	/* with ifindex: the inode of the socket's network namespace, where
	 * ifindex means something. Not netns again: user space can find a
	 * namespace by its inode (/proc/PID/ns/net, /run/netns), not by its
	 * cookie; and the DNS hooks can get only the cookie. */
	__u32 ifindex_netns;
};

/*
 * What every record starts with, whatever its kind: so one ring buffer
 * carries both kinds, in order, and user space reads the type, the time,
 * the owner and the tuple of either at the same offsets. Filled by one
 * helper (fill_header), decoded once (internal/tracer/decode.go).
 */
struct event_header {
	__u64 ts_ns;	/* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	struct owner owner;
	struct tuple tuple;
	__u8 type;	/* enum event_type */
};

struct event {
	struct event_header hdr; /* first: see struct event_header */
	__u8 flags;	/* enum event_flag */
	__s32 error;	/* failed, close: positive errno from sk_err, 0 if none */
	__u64 latency_ns;     /* established, failed: since the connect's SYN */
	__u64 duration_ns;    /* close: since established; 0 if unknown */
	__u64 bytes_sent;     /* close: data bytes sent, retransmits counted once */
	__u64 bytes_received; /* close: data bytes received */
	__u64 cookie;         /* close: socket cookie, 0 if none was assigned */
	/* close: the process that connected or accepted, when another one
	 * (the header's owner) held the socket and closed it; 0 otherwise */
	__u32 opener_pid;
	char opener_comm[16];
	/* The connection's health, read from tcp_sock as tcp_info reports it
	 * (close; retransmit has retrans_segs too): smoothed RTT and its mean
	 * deviation in µs, segments retransmitted in all, payload bytes
	 * retransmitted (0 where the kernel keeps no count). */
	__u32 srtt_us;
	__u32 rttvar_us;
	__u32 retrans_segs;
	/* retransmit: segments retransmitted since the connection's last
	 * retransmit event (see health.bpf.h) */
	__u32 retransmits;
	__u8 state;	  /* retransmit, reset: the TCP state (at the reset: before it) */
	__u8 syn_retrans; /* established: SYNs resent before the handshake completed */
	__u64 bytes_retrans;
	/* listen, unlisten: the listener's backlog (sk_max_ack_backlog: what
	 * listen() asked for, capped at net.core.somaxconn) */
	__u32 backlog;
};

/* Room for a DNS payload per packet; up to DNS_MAX_PAYLOAD - 1 bytes are
 * captured, enough for typical answers (EDNS's common 1232-byte limit). */
#define DNS_MAX_PAYLOAD 2048

enum dns_direction {
	DNS_QUERY = 0,    /* leaving a local socket for port 53 */
	DNS_RESPONSE = 1, /* arriving at a local socket from port 53 */
};

/*
 * A DNS message seen by the cgroup socket-buffer hooks. The header's
 * owner is the socket's (who connected or sent to port 53; pid 0 if
 * unknown), with the socket's cgroup; its tuple is as the local socket
 * sees it.
 */
struct dns_event {
	struct event_header hdr; /* first: see struct event_header; type EVENT_DNS */
	__u64 cookie;	  /* socket cookie */
	__u32 len;	  /* payload bytes in data */
	__u32 total_len;  /* the payload's full length, >= len */
	__u8 direction;	  /* enum dns_direction */
	__u8 protocol;	  /* IPPROTO_UDP or IPPROTO_TCP */
	__u8 _pad[2];
	__u8 data[DNS_MAX_PAYLOAD];
};

/* Room for the first data segment of an outbound TLS connection: its
 * ClientHello, which is rarely longer (a post-quantum key share makes it
 * about 1,500 bytes). */
#define TLS_MAX_CAPTURE 2048

/*
 * The first data segment of a connection this host initiated, when it
 * begins with a TLS handshake record (a ClientHello), seen by the cgroup
 * egress hook (tls.bpf.h). The header's owner is unknown there (pid 0; the
 * socket's cgroup); its tuple is as the local socket sees it, without
 * netns; the cookie joins it to the connection's events.
 */
struct tls_event {
	struct event_header hdr; /* first: see struct event_header; type EVENT_TLS */
	__u64 cookie;	  /* socket cookie */
	__u32 len;	  /* bytes in data */
	__u32 total_len;  /* the segment's payload length, >= len */
	__u8 data[TLS_MAX_CAPTURE];
};

#endif

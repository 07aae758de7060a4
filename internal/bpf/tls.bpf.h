/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * TLS server names: the first data segment of each outbound TCP
 * connection, when it starts a TLS handshake record, is copied to the ring
 * buffer (struct tls_event) for user space to read the ClientHello's
 * server name and ALPN from (internal/sni).
 *
 * dns.bpf.h's egress program, which already sees every packet and reads
 * its protocol and ports, hands each outgoing TCP packet here. Per packet
 * this adds one header load (the TCP sequence number, data offset and
 * flags); a packet with payload also reads two counters of its socket
 * (bpf_tcp_sock: no map, no per-socket state to make or free): it is the
 * connection's first data when no data has been acked yet and it starts
 * at the oldest unacknowledged byte. Only then is its first byte read.
 *
 * Which end initiated is not known here: a server that speaks first
 * sends a ServerHello, not a ClientHello, and is skipped; user space
 * names only outbound connections' events.
 */
#ifndef TUXSCOPE_TLS_BPF_H
#define TUXSCOPE_TLS_BPF_H

#include "common.bpf.h"

#define TLS_HANDSHAKE 0x16

struct tls_event *unused_tls_event __attribute__((unused));

/* The TCP header's sequence number, acknowledgment number, data offset
 * and flags (10 bytes at off), from the packet's linear data, where the
 * stack has put the headers, or with bpf_skb_load_bytes as a safety net;
 * non-zero if the packet is shorter. */
static __always_inline long tcp_header_load(struct __sk_buff *skb, __u32 off, __u8 (*dst)[10])
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;

	if (data + off + sizeof(*dst) <= end) {
		__builtin_memcpy(dst, data + off, sizeof(*dst));
		return 0;
	}
	return bpf_skb_load_bytes(skb, off, dst, sizeof(*dst));
}

/* Copy a hello's segment or datagram (up to TLS_MAX_CAPTURE bytes) with
 * the socket's cookie and tuple, as a record of type typ. */
static __always_inline void hello_capture(struct __sk_buff *skb, __u8 typ, __u16 family, __u32 payload_off,
					  __u16 sport, __u16 dport)
{
	struct owner owner = {};
	struct tuple t = {};
	struct tls_event *e;
	__u8 addrs[32];
	__u32 len, n;

	len = skb->len - payload_off;
	t.family = family;
	t.lport = sport;
	t.rport = dport;
	if (family == AF_INET) {
		if (bpf_skb_load_bytes(skb, 12, addrs, 8))
			return;
		__builtin_memcpy(t.laddr, addrs, 4);
		__builtin_memcpy(t.raddr, addrs + 4, 4);
	} else {
		if (bpf_skb_load_bytes(skb, 8, addrs, 32))
			return;
		__builtin_memcpy(t.laddr, addrs, 16);
		__builtin_memcpy(t.raddr, addrs + 16, 16);
	}
	/* A cgroup_skb program may not read the task: the connection's
	 * later events, joined by cookie, carry its owner. */
	owner.cgroup_id = bpf_skb_cgroup_id(skb);

	e = reserve_record(sizeof(*e));
	if (!e)
		return; /* counted as lost */
	__builtin_memset(e, 0, offsetof(struct tls_event, data));
	fill_header(&e->hdr, typ, &owner, &t);
	e->cookie = bpf_get_socket_cookie(skb);
	e->total_len = len;
	/* As dns_capture: n provably in [1, TLS_MAX_CAPTURE] for every
	 * verifier (len >= 1: the segment has payload). */
	n = len;
	if (n > TLS_MAX_CAPTURE)
		n = TLS_MAX_CAPTURE;
	barrier_var(n);
	n = ((n - 1) & (TLS_MAX_CAPTURE - 1)) + 1;
	if (!bpf_skb_load_bytes(skb, payload_off, e->data, n))
		e->len = n;
	submit(e);
}

/* Copy the ClientHello's segment when it starts a handshake record with
 * a ClientHello. */
static __always_inline void tls_capture(struct __sk_buff *skb, __u16 family, __u32 payload_off,
					__u16 sport, __u16 dport)
{
	__u32 len = skb->len - payload_off;
	__u8 first;

	if (bpf_skb_load_bytes(skb, payload_off, &first, 1) || first != TLS_HANDSHAKE)
		return;
	/* A handshake record's first message: a client's is a ClientHello
	 * (1); a server speaking first (a ServerHello, 2) is not captured. */
	if (len > 5 && (bpf_skb_load_bytes(skb, payload_off + 5, &first, 1) || first != 1))
		return;
	hello_capture(skb, EVENT_TLS, family, payload_off, sport, dport);
}

/* QUIC server names: one of a UDP flow's first two datagrams to port 443
 * (udp_count decides), copied when it has a long header (an Initial is
 * one) for user space to decrypt its Initial and read the ClientHello
 * (internal/quic). A function of its own, not inlined into udp_count's
 * caller, for the same reason as udp_count. */
static __noinline int quic_capture(struct __sk_buff *skb, __u32 family, __u32 payload_off, __u32 ports)
{
	__u8 first;

	if (!want_dns || skb->len <= payload_off)
		return 0;
	if (bpf_skb_load_bytes(skb, payload_off, &first, 1) || !(first & 0x80))
		return 0;
	hello_capture(skb, EVENT_QUIC, family, payload_off, ports >> 16, ports & 0xffff);
	return 0;
}

/* An outgoing TCP packet (IP header at 0, TCP header at l4off). */
static __always_inline void tls_egress(struct __sk_buff *skb, __u32 l4off, __u16 family,
				       __u16 sport, __u16 dport)
{
	struct bpf_tcp_sock *tp;
	struct bpf_sock *sk;
	__u8 hdr[10]; /* sequence, ack, data offset, flags */
	__u32 payload_off, seq;

	if (tcp_header_load(skb, l4off + 4, &hdr))
		return;
	payload_off = l4off + (hdr[8] >> 4) * 4;
	if (skb->len <= payload_off)
		return; /* a bare ACK, SYN or FIN */
	if (!want_dns)
		return; /* attached for UDP flows alone (--no-names) */
	sk = skb->sk;
	if (!sk)
		return;
	tp = bpf_tcp_sock(sk);
	if (!tp)
		return;
	/* The connection's first data: no data acked yet (the SYN counts
	 * one), and this segment starts at the oldest unacknowledged byte.
	 * A retransmission of it passes too; user space keeps the first. */
	seq = ((__u32)hdr[0] << 24) | ((__u32)hdr[1] << 16) | ((__u32)hdr[2] << 8) | hdr[3];
	if (tp->bytes_acked > 1 || seq != tp->snd_una)
		return;
	if (!port_wanted(sport, dport))
		return;
	tls_capture(skb, family, payload_off, sport, dport);
}

#endif

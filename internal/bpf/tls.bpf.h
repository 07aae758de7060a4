/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * TLS server names: the first data segment of each outbound TCP
 * connection, when it starts a TLS handshake record, is copied to the ring
 * buffer (struct tls_event) for user space to read the ClientHello's
 * server name and ALPN from (internal/sni).
 *
 * dns.bpf.h's egress program, which already sees every packet and reads
 * its protocol and ports, hands each outgoing TCP packet here. Per packet
 * this adds one header load (the TCP data offset and flags); a packet with
 * payload also looks up a per-socket flag in socket-local storage, which
 * only sockets this host is connecting carry: it is set by the SYN the
 * socket sends (a SYN without ACK: this end initiated) and deleted by its
 * first payload segment, so later segments find no storage at once.
 * Socket-local storage needs no cookie and no hash lookup, and goes away
 * with its socket.
 */
#ifndef TUXSCOPE_TLS_BPF_H
#define TUXSCOPE_TLS_BPF_H

#include "common.bpf.h"

#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10
#define TLS_HANDSHAKE 0x16

/* An outbound socket whose first payload segment has not left yet. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u8);
} tls_first SEC(".maps");

struct tls_event *unused_tls_event __attribute__((unused));

/* Copy n bytes at off of a cgroup_skb packet from its linear data, or with
 * bpf_skb_load_bytes beyond it; non-zero if the packet is shorter. */
static __always_inline long tls_load(struct __sk_buff *skb, __u32 off, void *dst, __u32 n)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;

	if (n == 2 && data + off + 2 <= end) {
		__builtin_memcpy(dst, data + off, 2);
		return 0;
	}
	return bpf_skb_load_bytes(skb, off, dst, n);
}

/* Copy the ClientHello's segment (up to TLS_MAX_CAPTURE bytes) with the
 * socket's cookie and tuple. */
static __always_inline void tls_capture(struct __sk_buff *skb, __u16 family, __u32 payload_off,
					__u16 sport, __u16 dport)
{
	struct owner owner = {};
	struct tuple t = {};
	struct tls_event *e;
	__u8 addrs[32];
	__u32 len, n;
	__u8 first;

	if (bpf_skb_load_bytes(skb, payload_off, &first, 1) || first != TLS_HANDSHAKE)
		return;
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
	len = skb->len - payload_off;

	e = reserve_record(sizeof(*e));
	if (!e)
		return; /* counted as lost */
	__builtin_memset(e, 0, offsetof(struct tls_event, data));
	fill_header(&e->hdr, EVENT_TLS, &owner, &t);
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

/* An outgoing TCP packet (IP header at 0, TCP header at l4off). */
static __always_inline void tls_egress(struct __sk_buff *skb, __u32 l4off, __u16 family,
				       __u16 sport, __u16 dport)
{
	struct bpf_sock *sk;
	__u8 offflags[2]; /* data offset, flags */
	__u32 payload_off;
	bool syn;
	__u8 *pending;

	if (tls_load(skb, l4off + 12, offflags, 2))
		return;
	payload_off = l4off + (offflags[0] >> 4) * 4;
	syn = (offflags[1] & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
	if (!syn && skb->len <= payload_off)
		return; /* a bare ACK or FIN: most packets of a receiving socket */
	sk = skb->sk;
	if (!sk)
		return;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return;
	if (syn) {
		/* This end is connecting: flag the socket (the kernel's port
		 * filter first, as for its other events). */
		if (!port_wanted(sport, dport))
			return;
		pending = bpf_sk_storage_get(&tls_first, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!pending || skb->len <= payload_off)
			return;
		/* data in the SYN: TCP Fast Open's first segment */
	} else if (!bpf_sk_storage_get(&tls_first, sk, 0, 0)) {
		return; /* not an outbound socket's first segment */
	}
	bpf_sk_storage_delete(&tls_first, sk);
	tls_capture(skb, family, payload_off, sport, dport);
}

#endif

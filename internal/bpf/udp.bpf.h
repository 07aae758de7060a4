/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * UDP flows: one socket's traffic with one peer, without kprobes.
 *
 * - The cgroup sock_addr hooks (connect, sendmsg, recvmsg, bind; v4 and
 *   v6) run in the process using a UDP socket: they name its owner
 *   (udp_socks, by socket cookie).
 * - The cgroup_skb programs dns.bpf.h attaches to the root cgroup see
 *   every packet: for a UDP one they call udp_count, which counts it in
 *   its flow (udp_flows, by socket cookie and peer) and, for a flow's
 *   first packet, queues an EVENT_UDP_OPEN record. Everything else
 *   leaves at the protocol check it already makes.
 * - cgroup/sock_release (5.9+) queues an EVENT_UDP_RELEASE record for a
 *   socket that had flows; user space then reads those flows' final
 *   counters, deletes them and reports their close. It also ends flows
 *   idle for --udp-idle by sweeping the map.
 *
 * udp_flows is a plain hash, not an LRU: a full table refuses new flows,
 * and each refusal is counted (udp_flows_full) and reported in band,
 * where an LRU would drop an old flow's counts without a word.
 */
#ifndef TUXSCOPE_UDP_BPF_H
#define TUXSCOPE_UDP_BPF_H

#include "common.bpf.h"
#include "tls.bpf.h"

#ifndef IPPROTO_UDP
#define IPPROTO_UDP 17
#endif

/* QUIC: a flow to this port has its first QUIC_CAPTURE_PACKETS
 * datagrams sent copied (quic_capture, tls.bpf.h). */
#define QUIC_PORT 443
#define QUIC_CAPTURE_PACKETS 2

/* 1: count UDP flows (--proto udp or both); set by the loader. */
const volatile __u8 udp_flows_on = 0;

enum udp_sock_flag {
	UDP_SOCK_HAS_FLOWS = 1, /* the socket has (had) entries in udp_flows */
};

/* What a UDP socket's sock_addr hooks learnt: who uses it. */
struct udp_sock {
	struct owner owner; /* pid 0: not known yet */
	__u64 netns;	    /* the socket's netns cookie; 0: unknown */
	__u32 flags;	    /* enum udp_sock_flag */
};

/* socket cookie -> its owner. An LRU: losing an entry costs a name
 * (pid 0) or the close at release (the idle sweep ends those flows). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct udp_sock);
} udp_socks SEC(".maps");

/* A flow: one socket (cookie) and one peer, as the packets show it. */
struct udp_flow_key {
	__u64 cookie;
	__u8 peer[16]; /* 4 bytes for an IPv4 packet, 16 for IPv6 */
	__u16 peer_port;
	__u16 family; /* the packet's: AF_INET or AF_INET6 */
	__u32 _pad;
};

struct udp_flow {
	struct owner owner; /* who owned the socket at the first packet; pid 0: unknown */
	struct tuple tuple; /* as the socket sees it (family: the socket's) */
	__u64 first_ns;	    /* first packet, either way */
	__u64 last_ns;	    /* latest packet */
	__u64 packets_sent;
	__u64 packets_received;
	__u64 bytes_sent;     /* UDP payload bytes */
	__u64 bytes_received;
	__u8 flags;	      /* FLAG_INBOUND: the first packet came in */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* the loader sets it (--udp-flows) */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct udp_flow_key);
	__type(value, struct udp_flow);
} udp_flows SEC(".maps");

/* New flows the table had no room for. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} udp_flows_full SEC(".maps");

struct udp_flow_key *unused_udp_flow_key __attribute__((unused));
struct udp_flow *unused_udp_flow __attribute__((unused));
struct udp_sock *unused_udp_sock __attribute__((unused));

/* sock_addr hooks (they run in the process): remember a UDP socket's
 * owner. A sock_addr program may not read the task: the thread's name
 * stands for the process's, as for DNS. */
static __always_inline void udp_owner_record(struct bpf_sock_addr *ctx)
{
	struct udp_sock s = {}, *old;
	__u64 pid_tgid, cookie;

	if (!udp_flows_on || ctx->protocol != IPPROTO_UDP)
		return;
	cookie = bpf_get_socket_cookie(ctx);
	pid_tgid = bpf_get_current_pid_tgid();
	s.owner.pid = pid_tgid >> 32;
	s.owner.tid = (__u32)pid_tgid;
	s.owner.uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(s.owner.thread, sizeof(s.owner.thread));
	__builtin_memcpy(s.owner.comm, s.owner.thread, sizeof(s.owner.comm));
	s.owner.cgroup_id = bpf_get_current_cgroup_id();
	s.netns = bpf_get_netns_cookie(ctx);
	old = bpf_map_lookup_elem(&udp_socks, &cookie);
	if (old) {
		if (old->owner.pid == s.owner.pid && old->owner.tid == s.owner.tid)
			return; /* the common case: a send loop */
		s.flags = old->flags;
	}
	bpf_map_update_elem(&udp_socks, &cookie, &s, BPF_ANY);
}

static __always_inline void count_udp_full(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&udp_flows_full, &zero);

	if (n)
		*n += 1;
}

/* Room to build a new flow's entry in: off the stack, which the packet
 * programs and udp_count share (512 bytes in all). */
struct udp_scratch {
	struct udp_flow f;
	struct udp_sock s;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct udp_scratch);
} udp_scratch SEC(".maps");

/* A new flow: remember it, mark the socket, queue its udp_open. */
/* 1 if the flow is tracked now (by this CPU or another). */
static __always_inline int udp_flow_new(struct __sk_buff *skb, struct udp_flow_key *k, bool egress,
					 const __u8 *saddr, const __u8 *daddr, __u16 sport, __u16 dport,
					 __u64 len, __u64 now)
{
	struct udp_scratch *sc;
	struct udp_flow *f;
	struct udp_sock *s;
	struct bpf_sock *sk;
	struct event *e;
	__u16 family = k->family;
	__u32 zero = 0;
	long err;

	sc = bpf_map_lookup_elem(&udp_scratch, &zero);
	if (!sc)
		return 0;
	f = &sc->f;
	__builtin_memset(sc, 0, sizeof(*sc));
	/* A dual-stack (AF_INET6) socket sees an IPv4 peer as ::ffff:a.b.c.d,
	 * as its TCP connections are reported. */
	sk = skb->sk;
	if (sk)
		sk = bpf_sk_fullsock(sk);
	if (sk && sk->family == AF_INET6 && family == AF_INET) {
		family = AF_INET6;
		f->tuple.laddr[10] = f->tuple.laddr[11] = 0xff;
		f->tuple.raddr[10] = f->tuple.raddr[11] = 0xff;
		__builtin_memcpy(&f->tuple.laddr[12], egress ? saddr : daddr, 4);
		__builtin_memcpy(&f->tuple.raddr[12], egress ? daddr : saddr, 4);
	} else {
		__builtin_memcpy(f->tuple.laddr, egress ? saddr : daddr, 16);
		__builtin_memcpy(f->tuple.raddr, egress ? daddr : saddr, 16);
	}
	f->tuple.family = family;
	f->tuple.lport = egress ? sport : dport;
	f->tuple.rport = egress ? dport : sport;
	if (family == AF_INET ? !want_ipv4 : !want_ipv6)
		return 0;
	if (!port_wanted(f->tuple.lport, f->tuple.rport))
		return 0;

	s = bpf_map_lookup_elem(&udp_socks, &k->cookie);
	if (s) {
		f->owner = s->owner;
		f->tuple.netns = s->netns;
		if (!(s->flags & UDP_SOCK_HAS_FLOWS))
			s->flags |= UDP_SOCK_HAS_FLOWS;
	} else {
		sc->s.flags = UDP_SOCK_HAS_FLOWS;
		bpf_map_update_elem(&udp_socks, &k->cookie, &sc->s, BPF_NOEXIST);
	}
	f->owner.cgroup_id = bpf_skb_cgroup_id(skb); /* the socket's */
	f->first_ns = f->last_ns = now;
	if (egress) {
		f->packets_sent = 1;
		f->bytes_sent = len;
	} else {
		f->packets_received = 1;
		f->bytes_received = len;
		f->flags = FLAG_INBOUND;
	}
	err = bpf_map_update_elem(&udp_flows, k, f, BPF_NOEXIST);
	if (err) {
		struct udp_flow *o = bpf_map_lookup_elem(&udp_flows, k);

		if (!o) { /* full (E2BIG): not tracked */
			count_udp_full();
			return 0;
		}
		/* another CPU made it first: count into its entry */
		if (egress) {
			__sync_fetch_and_add(&o->packets_sent, 1);
			__sync_fetch_and_add(&o->bytes_sent, len);
		} else {
			__sync_fetch_and_add(&o->packets_received, 1);
			__sync_fetch_and_add(&o->bytes_received, len);
		}
		return 1;
	}

	e = reserve_record(sizeof(*e));
	if (!e)
		return 1; /* counted lost; the flow still closes with its counts */
	__builtin_memset(e, 0, sizeof(*e));
	fill_header(&e->hdr, EVENT_UDP_OPEN, &f->owner, &f->tuple);
	e->hdr.ts_ns = now;
	e->flags = f->flags;
	/* User space finds the flow's key from cookie and tuple: a remote
	 * ::ffff:a.b.c.d is an IPv4 packet's peer. */
	e->cookie = k->cookie;
	submit(e);
	return 1;
}

/*
 * Count a UDP packet in its flow. Called by the cgroup_skb programs
 * (dns.bpf.h) for every UDP packet, after they read the IP header:
 * l4off is where the UDP header starts, family the packet's. A function
 * of its own (a BPF-to-BPF call), not inlined: inlined, clang hoists the
 * zeroing of its locals to the programs' entry, where every TCP packet
 * would pay for it. Returns 1 when the caller should copy the datagram
 * for QUIC server names (quic_capture): an egress one among its flow's
 * first QUIC_CAPTURE_PACKETS to port QUIC_PORT.
 */
static __noinline int udp_count(struct __sk_buff *skb, __u32 egress, __u32 family, __u32 l4off)
{
	struct udp_flow_key k = {};
	struct udp_flow *f;
	__u8 saddr[16] = {}, daddr[16] = {};
	__u8 ports[4];
	__u16 sport, dport;
	__u64 len, now;
	int quic = 0;

	if (!udp_flows_on)
		return 0;
	if (skb->len < l4off + 8)
		return 0;
	if (PKT_LOAD(skb, l4off, &ports))
		return 0;
	if (family == AF_INET) {
		if (PKT_LOAD(skb, 12, (__u8 (*)[4])saddr) || PKT_LOAD(skb, 16, (__u8 (*)[4])daddr))
			return 0;
	} else {
		if (PKT_LOAD(skb, 8, &saddr) || PKT_LOAD(skb, 24, &daddr))
			return 0;
	}
	sport = (ports[0] << 8) | ports[1];
	dport = (ports[2] << 8) | ports[3];
	/* The datagram's payload: at these hooks a packet is whole (egress
	 * runs before fragmentation, ingress after reassembly). */
	len = skb->len - l4off - 8;

	k.cookie = bpf_get_socket_cookie(skb);
	if (!k.cookie)
		return 0; /* no socket: nothing to attribute it to */
	k.family = family;
	k.peer_port = egress ? dport : sport;
	__builtin_memcpy(k.peer, egress ? daddr : saddr, 16);
	now = bpf_ktime_get_ns();

	f = bpf_map_lookup_elem(&udp_flows, &k);
	if (f) {
		if (egress) {
			/* A QUIC client's first two datagrams (a post-quantum
			 * ClientHello spans two Initials): copied for its name. */
			if (dport == QUIC_PORT && f->packets_sent < QUIC_CAPTURE_PACKETS)
				quic = 1;
			__sync_fetch_and_add(&f->packets_sent, 1);
			__sync_fetch_and_add(&f->bytes_sent, len);
		} else {
			__sync_fetch_and_add(&f->packets_received, 1);
			__sync_fetch_and_add(&f->bytes_received, len);
		}
		if (f->last_ns < now)
			f->last_ns = now;
		return quic;
	}
	return udp_flow_new(skb, &k, egress, saddr, daddr, sport, dport, len, now) && egress &&
	       dport == QUIC_PORT;
}

/* bind, recvmsg: the sock_addr hooks dns.bpf.h does not attach. */
SOCK_ADDR_HOOK(udp_bind4, "cgroup/bind4", udp_owner_record)
SOCK_ADDR_HOOK(udp_bind6, "cgroup/bind6", udp_owner_record)
SOCK_ADDR_HOOK(udp_recvmsg4, "cgroup/recvmsg4", udp_owner_record)
SOCK_ADDR_HOOK(udp_recvmsg6, "cgroup/recvmsg6", udp_owner_record)

/* A UDP socket with flows is released: tell user space, which ends its
 * flows. The record's owner is the socket's last known one. */
SEC("cgroup/sock_release")
int udp_release(struct bpf_sock *ctx)
{
	struct udp_sock *s;
	struct tuple t = {};
	struct event *e;
	__u64 cookie;

	if (!udp_flows_on || ctx->protocol != IPPROTO_UDP)
		return 1;
	cookie = bpf_get_socket_cookie(ctx);
	s = bpf_map_lookup_elem(&udp_socks, &cookie);
	if (!s)
		return 1;
	if (!(s->flags & UDP_SOCK_HAS_FLOWS)) {
		bpf_map_delete_elem(&udp_socks, &cookie);
		return 1;
	}
	t.family = ctx->family;
	e = reserve_record(sizeof(*e));
	if (e) {
		__builtin_memset(e, 0, sizeof(*e));
		fill_header(&e->hdr, EVENT_UDP_RELEASE, &s->owner, &t);
		e->cookie = cookie;
		submit(e);
	}
	bpf_map_delete_elem(&udp_socks, &cookie);
	return 1;
}

#endif

/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * DNS messages are read off socket buffers by cgroup_skb programs on the
 * root cgroup v2 (they see every socket's packets, in every network
 * namespace, without kprobes), and attributed through the socket cookie to
 * the process that connected or sent to port 53: the cgroup sock_addr
 * hooks run in that process, which also record the socket's network
 * namespace (its netns cookie): user space scopes names by it.
 */
#ifndef TUXSCOPE_DNS_BPF_H
#define TUXSCOPE_DNS_BPF_H

#include "common.bpf.h"
#include "tls.bpf.h"
#include "udp.bpf.h"

#ifndef IPPROTO_UDP
#define IPPROTO_UDP 17
#endif
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define DNS_PORT 53

struct dns_owner {
	struct owner owner;
	__u64 netns; /* the socket's netns cookie */
};

/* socket cookie -> who talks DNS through it */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct dns_owner);
} dns_owners SEC(".maps");

struct dns_event *unused_dns_event __attribute__((unused));


static __always_inline void dns_owner_record(struct bpf_sock_addr *ctx)
{
	struct dns_owner o = {};
	__u64 pid_tgid, cookie;

	udp_owner_record(ctx);
	if (!want_dns)
		return;

	/* Before any port check on 5.7 to 5.11 (where net_cookie is an
	 * atomic64_t, made on first use): this makes the namespace's cookie,
	 * which connection events read (sock_netns), for every namespace a
	 * connect is made in. Since 5.12 every namespace has one from the
	 * start, and only DNS sockets need it. */
	if (bpf_core_field_exists(((struct net___atomic_cookie *)0)->net_cookie))
		o.netns = bpf_get_netns_cookie(ctx);
	if (bpf_ntohs((__u16)ctx->user_port) != DNS_PORT)
		return;
	if (!o.netns)
		o.netns = bpf_get_netns_cookie(ctx);
	cookie = bpf_get_socket_cookie(ctx);
	pid_tgid = bpf_get_current_pid_tgid();

	/* A sock_addr program may not read the task: the thread's name
	 * stands for the process's here, and user space names the process
	 * (event.DNSPacket). */
	o.owner.pid = pid_tgid >> 32;
	o.owner.tid = (__u32)pid_tgid;
	o.owner.uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(o.owner.thread, sizeof(o.owner.thread));
	__builtin_memcpy(o.owner.comm, o.owner.thread, sizeof(o.owner.comm));
	o.owner.cgroup_id = bpf_get_current_cgroup_id();
	bpf_map_update_elem(&dns_owners, &cookie, &o, BPF_ANY);
}

/* sock_addr hooks: connect() and sendto()/sendmsg() with an address, one
 * per attach point and family, all recording the socket's owner. */
SOCK_ADDR_HOOK(dns_connect4, "cgroup/connect4", dns_owner_record)
SOCK_ADDR_HOOK(dns_connect6, "cgroup/connect6", dns_owner_record)
SOCK_ADDR_HOOK(dns_sendmsg4, "cgroup/sendmsg4", dns_owner_record)
SOCK_ADDR_HOOK(dns_sendmsg6, "cgroup/sendmsg6", dns_owner_record)

/* Parse the IP and transport headers of a cgroup_skb packet and copy a
 * DNS payload to the ring buffer. */
static __always_inline void dns_capture(struct __sk_buff *skb, __u8 direction)
{
	__u32 l4off, payload_off, len, n;
	__u8 proto, vihl, tcpoff;
	__u8 ports[4];
	__u8 addrs[32]; /* source then destination: 4 + 4 bytes (v4) or 16 + 16 (v6) */
	__u16 sport, dport, port;
	__u8 saddr[16] = {}, daddr[16] = {};
	struct owner owner = {};
	struct tuple t = {};
	struct dns_owner *o;
	struct dns_event *e;
	__u64 cookie;
	int quic = 0;

	/* Every packet of every socket passes here: decide on the protocol
	 * and the ports with as few loads as possible, straight from the
	 * packet, and read the rest only for DNS. */
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (PKT_LOAD(skb, 9, &proto))
			return;
		if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
			return;
		if (PKT_LOAD(skb, 0, &vihl))
			return;
		l4off = (vihl & 0xf) * 4;
		t.family = AF_INET;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		/* No extension headers: DNS packets carry none in practice. */
		if (PKT_LOAD(skb, 6, &proto))
			return;
		if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
			return;
		l4off = 40;
		t.family = AF_INET6;
	} else {
		return;
	}
	if (proto == IPPROTO_UDP && udp_flows_on)
		quic = udp_count(skb, direction == DNS_QUERY, t.family, l4off);
	if (PKT_LOAD(skb, l4off, &ports))
		return;
	sport = (ports[0] << 8) | ports[1];
	dport = (ports[2] << 8) | ports[3];
	if (quic) /* one of a flow's first datagrams to 443: QUIC server names */
		quic_capture(skb, t.family, l4off + 8, ((__u32)sport << 16) | dport);
	port = direction == DNS_QUERY ? dport : sport;
	if (direction == DNS_QUERY && proto == IPPROTO_TCP)
		tls_egress(skb, l4off, t.family, sport, dport); /* TLS server names */
	if (port != DNS_PORT)
		return;
	/* Only here: a constant in .rodata is still a memory load, and
	 * every other packet leaves without touching it. */
	if (!want_dns)
		return;
	if (t.family == AF_INET) {
		if (PKT_LOAD(skb, 12, (__u8 (*)[8])addrs))
			return;
		__builtin_memcpy(saddr, addrs, 4);
		__builtin_memcpy(daddr, addrs + 4, 4);
	} else {
		if (PKT_LOAD(skb, 8, &addrs))
			return;
		__builtin_memcpy(saddr, addrs, 16);
		__builtin_memcpy(daddr, addrs + 16, 16);
	}
	if (proto == IPPROTO_TCP) {
		if (PKT_LOAD(skb, l4off + 12, &tcpoff))
			return;
		payload_off = l4off + (tcpoff >> 4) * 4;
	} else {
		payload_off = l4off + 8;
	}
	if (skb->len <= payload_off)
		return; /* a bare TCP ACK, SYN or FIN */
	len = skb->len - payload_off;

	/* local/remote as seen by the local socket */
	if (direction == DNS_QUERY) {
		t.lport = sport;
		t.rport = dport;
		__builtin_memcpy(t.laddr, saddr, 16);
		__builtin_memcpy(t.raddr, daddr, 16);
	} else {
		t.lport = dport;
		t.rport = sport;
		__builtin_memcpy(t.laddr, daddr, 16);
		__builtin_memcpy(t.raddr, saddr, 16);
	}
	cookie = bpf_get_socket_cookie(skb);
	o = bpf_map_lookup_elem(&dns_owners, &cookie);
	if (o) {
		owner = o->owner;
		t.netns = o->netns;
	} /* else: a socket connected before tuxscope, namespace unknown (0) */
	owner.cgroup_id = bpf_skb_cgroup_id(skb); /* the socket's, as a DNS record reports */

	e = reserve_record(sizeof(*e));
	if (!e)
		return;
	__builtin_memset(e, 0, offsetof(struct dns_event, data));
	fill_header(&e->hdr, EVENT_DNS, &owner, &t);
	e->direction = direction;
	e->protocol = proto;
	e->cookie = cookie;
	e->total_len = len;
	/* Older verifiers want the length provably in [1, size], and do not
	 * follow clang's folded range checks: after the cap (len >= 1 here),
	 * hide n's range from clang and bound it with a mask, which every
	 * verifier tracks: ((n - 1) & 2047) + 1 is n itself for n in [1, 2047]. */
	n = len;
	if (n > DNS_MAX_PAYLOAD - 1)
		n = DNS_MAX_PAYLOAD - 1;
	barrier_var(n);
	n = ((n - 1) & (DNS_MAX_PAYLOAD - 1)) + 1;
	e->len = 0;
	if (!bpf_skb_load_bytes(skb, payload_off, e->data, n))
		e->len = n;
	submit(e);
}

SEC("cgroup_skb/egress")
int dns_egress(struct __sk_buff *skb)
{
	dns_capture(skb, DNS_QUERY);
	return 1;
}

SEC("cgroup_skb/ingress")
int dns_ingress(struct __sk_buff *skb)
{
	dns_capture(skb, DNS_RESPONSE);
	return 1;
}

#endif

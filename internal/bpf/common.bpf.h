/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * What every concern shares: the filters, the events ring buffer and its
 * lost counter, the reader's wake-up, and the helpers that read a socket's
 * tuple, name its owner and reserve, fill and submit a record.
 */
#ifndef TUXSCOPE_COMMON_BPF_H
#define TUXSCOPE_COMMON_BPF_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "kernel.h"
/* kernel.h declares the kprobe register structs (see there). */
#define __VMLINUX_H__
#include <bpf/bpf_tracing.h>
#undef __VMLINUX_H__
#include "event.h"

/* Filters, set by the loader before load so the verifier prunes what is
 * off. A zero means "no filter". */
const volatile __u8 filter_pid = 0;	/* 1: only tgids in pid_filter */
const volatile __u8 filter_port = 0;	/* 1: only if either port is in port_filter */
const volatile __u8 want_ipv4 = 1;
const volatile __u8 want_ipv6 = 1;
const volatile __u32 want_types = 0xffffffff; /* bit (1 << enum event_type) */
/* 1: capture names, DNS messages and TLS ClientHellos; 0 when the packet
 * programs are attached only for UDP flows (--no-names). */
const volatile __u8 want_dns = 1;
/* 1: a cgroup filter may be on (--container, --pod, --namespace or
 * --cgroup, and a cgroup2 mount): the programs then carry the check, and
 * user space turns it on and off at run time (cgroup_filter_state), as
 * what it selects comes and goes. 0: not even looked at. */
const volatile __u8 filter_cgroup = 0;
/* Wake-up batching: 0 wakes the reader for every event (the kernel then
 * wakes it only when it had caught up); otherwise events are queued
 * without a wake-up until this many bytes wait, and the reader collects
 * them on its own timer (--max-delay). A wake-up costs the traced task an
 * irq_work and often an IPI; batching saves most of them under load. */
const volatile __u32 wakeup_bytes = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20); /* the loader may resize it */
	__type(value, struct event);   /* for bpf2go -type event; ignored by the kernel */
} events SEC(".maps");

/* Per-thread state between a hook's entry and its exit, keyed by
 * pid_tgid. LRU, so a thread whose exit we miss cannot leak an entry. */
#define THREAD_MAP(name, value_type)			\
	struct {					\
		__uint(type, BPF_MAP_TYPE_LRU_HASH);	\
		__uint(max_entries, 16384);		\
		__type(key, __u64);			\
		__type(value, value_type);		\
	} name SEC(".maps")

/* Ring-buffer reservations that failed: the events we had to drop. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} pid_filter SEC(".maps");

/* The ports --port selects, one bit each: word port / 32, bit port % 32.
 * An array, not a hash: every packet hook and state change with --port
 * looks up both ports, and an array lookup is inlined by the verifier to
 * a bounds check and an address (no helper call, no hashing; two hash
 * lookups were about 40% of the egress hook's time, measured). */
#define PORT_FILTER_WORDS (65536 / 32)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PORT_FILTER_WORDS);
	__type(key, __u32);
	__type(value, __u32);
} port_filter SEC(".maps");

static __always_inline bool port_selected(__u16 port)
{
	__u32 word = port >> 5;
	__u32 *bits = bpf_map_lookup_elem(&port_filter, &word);

	return bits && (*bits & (1U << (port & 31)));
}

/*
 * The cgroup filter: the cgroup v2 ids user space selected (the cgroups
 * of the selected containers and pods, the --cgroup directories), and
 * whether it is on. A task is selected when its cgroup or one of its
 * ancestors is in the set, so cgroups made below a selected one later
 * are selected at once. Off when the set cannot say it all (user space
 * then filters alone, see internal/cli's cgroupFilter).
 */
#define CGROUP_FILTER_MAX 4096
/* Levels looked at, from the task's own cgroup up. */
#define CGROUP_FILTER_LEVELS 32

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CGROUP_FILTER_MAX);
	__type(key, __u64);
	__type(value, __u8);
} cgroup_filter SEC(".maps");

struct cgroup_filter_state {
	__u32 on;
	/* The shallowest level (0: the root) of a selected cgroup: the
	 * walk up stops above it. */
	__u32 min_level;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cgroup_filter_state);
} cgroup_filter_state SEC(".maps");

static __always_inline bool cgroup_filter_on(void)
{
	struct cgroup_filter_state *st;
	__u32 zero = 0;

	if (!filter_cgroup)
		return false;
	st = bpf_map_lookup_elem(&cgroup_filter_state, &zero);
	return st && st->on;
}

/*
 * Whether the current task's cgroup, or an ancestor, is selected. The
 * walk up reads the task's cgroups (task -> css_set -> dfl_cgrp -> parent)
 * with CO-RE, not bpf_get_current_ancestor_cgroup_id: Linux 5.10's
 * verifier refuses that helper in tracepoint, raw tracepoint and kprobe
 * programs (tracing programs have it since 5.11).
 */
static __always_inline bool cgroup_wanted(void)
{
	struct task_struct *task;
	struct cgroup_filter_state *st;
	struct cgroup *cgrp;
	__u32 zero = 0;
	__u64 id;
	int i;

	if (!filter_cgroup)
		return true;
	st = bpf_map_lookup_elem(&cgroup_filter_state, &zero);
	if (!st || !st->on)
		return true;
	task = (struct task_struct *)bpf_get_current_task();
	cgrp = BPF_CORE_READ(task, cgroups, dfl_cgrp);
	for (i = 0; i < CGROUP_FILTER_LEVELS && cgrp; i++) {
		if (BPF_CORE_READ(cgrp, level) < (int)st->min_level)
			return false; /* above every selected cgroup */
		id = BPF_CORE_READ(cgrp, kn, id);
		if (bpf_map_lookup_elem(&cgroup_filter, &id))
			return true;
		cgrp = (struct cgroup *)BPF_CORE_READ(cgrp, self.parent);
	}
	return false;
}

/* Whether a process filter is on (--pid, or the cgroup filter): then a
 * connection's events come only from its entry in conns, which the
 * selected processes make. */
static __always_inline bool task_filter_on(void)
{
	return filter_pid || cgroup_filter_on();
}

/* Whether the current task passes the process filters: its tgid (--pid)
 * and its cgroup (the cgroup filter). */
static __always_inline bool pid_wanted(__u64 pid_tgid)
{
	__u32 tgid = pid_tgid >> 32;

	if (filter_pid && !bpf_map_lookup_elem(&pid_filter, &tgid))
		return false;
	return cgroup_wanted();
}

static __always_inline bool port_wanted(__u16 lport, __u16 rport)
{
	if (!filter_port)
		return true;
	return port_selected(lport) || port_selected(rport);
}

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&lost, &zero);

	if (n)
		*n += 1; /* per-CPU slot: no atomics needed */
}

/* With wake-up batching, the reader sets this to 1 when it found nothing
 * for a while and goes to sleep without a short timer: the next event
 * wakes it (and clears it), so an idle tuxscope does not poll. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} reader_idle SEC(".maps");

/* Reserve size bytes of the ring buffer for a record of either kind; when
 * it is full, the record is counted as lost (the reader reports it) and
 * NULL is returned. */
static __always_inline void *reserve_record(__u64 size)
{
	void *r = bpf_ringbuf_reserve(&events, size, 0);

	if (!r)
		count_lost();
	return r;
}

/* Submit a reserved event, waking the reader only as wakeup_bytes and
 * reader_idle say. */
static __always_inline void submit(void *e)
{
	__u32 zero = 0, *idle;
	__u64 flags = 0;

	if (wakeup_bytes) {
		idle = bpf_map_lookup_elem(&reader_idle, &zero);
		if (idle && *idle) {
			*idle = 0;
			flags = BPF_RB_FORCE_WAKEUP;
		} else {
			flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ?
				BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
		}
	}
	bpf_ringbuf_submit(e, flags);
}

/* The netns cookie of a socket's network namespace, 0 if this kernel has
 * none (before 5.7, or without CONFIG_NET_NS) or, on 5.7 to 5.11, none
 * was made yet for it: the DNS hooks make it for every namespace they see
 * a connect or send in (dns.bpf.h), so a namespace that had a lookup has
 * one. */
static __always_inline __u64 sock_netns(struct sock *sk)
{
	struct net___atomic_cookie *old;
	struct net *net;

	if (!bpf_core_field_exists(sk->__sk_common.skc_net.net))
		return 0;
	net = BPF_CORE_READ(sk, __sk_common.skc_net.net);
	if (bpf_core_field_exists(net->net_cookie))
		return BPF_CORE_READ(net, net_cookie);
	old = (struct net___atomic_cookie *)net;
	if (bpf_core_field_exists(old->net_cookie))
		return BPF_CORE_READ(old, net_cookie.counter);
	return 0;
}

/* Read a socket's tuple as it stands now; false if not an IP family. */
static __always_inline bool read_sock_tuple(struct sock *sk, struct tuple *t)
{
	t->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (t->family == AF_INET) {
		/* Adjacent in sock_common, remote first (skc_daddr then
		 * skc_rcv_saddr, the union skc_addrpair): one read of both,
		 * from the remote one's relocated offset, into raddr, whose
		 * second half then moves to laddr. No buffer of its own: a
		 * 32-byte one (IPv6's pair) took the state program past the
		 * verifier's 512-byte stack on arm64. */
		if (bpf_probe_read_kernel(t->raddr, 8, __builtin_preserve_access_index(&sk->__sk_common.skc_daddr)))
			return false;
		__builtin_memcpy(t->laddr, t->raddr + 4, 4);
		__builtin_memset(t->raddr + 4, 0, 4);
	} else if (t->family == AF_INET6) {
		BPF_CORE_READ_INTO((struct in6_addr *)t->laddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO((struct in6_addr *)t->raddr, sk, __sk_common.skc_v6_daddr);
		/* A link-local address's zone: the kernel requires a
		 * link-local connect to name its interface and binds the
		 * socket (and an accepted one) to it. The name is looked up in
		 * user space, in the socket's network namespace. */
		t->ifindex = BPF_CORE_READ(sk, __sk_common.skc_bound_dev_if);
		if (t->ifindex && bpf_core_field_exists(sk->__sk_common.skc_net.net))
			t->ifindex_netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	} else {
		return false;
	}
	/* inet_sport, not skc_num: the latter is cleared when a failed
	 * connect releases its port. */
	t->lport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	t->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	t->netns = sock_netns(sk);
	return true;
}

/* The current task as an owner, for the programs that may read the task
 * (tracing ones). The process's name is its thread-group leader's: a
 * thread of dig named isc-net-0000 still belongs to dig. */
static __always_inline void owner_current(struct owner *o, __u64 pid_tgid)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	o->pid = pid_tgid >> 32;
	o->tid = (__u32)pid_tgid;
	o->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(o->thread, sizeof(o->thread));
	if (o->pid == o->tid)
		__builtin_memcpy(o->comm, o->thread, sizeof(o->comm));
	else
		BPF_CORE_READ_INTO(&o->comm, task, group_leader, comm);
	o->cgroup_id = bpf_get_current_cgroup_id();
}

/* The start of every record (struct event_header), for both kinds. */
static __always_inline void fill_header(struct event_header *h, __u8 type, const struct owner *o,
					const struct tuple *t)
{
	h->ts_ns = bpf_ktime_get_ns();
	h->owner = *o;
	h->tuple = *t;
	h->type = type;
}

/* Whether the family and port filters keep events of this tuple. */
static __always_inline bool tuple_wanted(const struct tuple *t)
{
	if (t->family == AF_INET ? !want_ipv4 : !want_ipv6)
		return false;
	return port_wanted(t->lport, t->rport);
}

/* Whether the type, family and port filters keep an event of this type
 * for this tuple. */
static __always_inline bool event_wanted(const struct tuple *t, __u8 type)
{
	return (want_types & (1U << type)) && tuple_wanted(t);
}

/* Reserve an event of this type for this tuple, unless the filters drop
 * it; the caller fills the rest and submits. NULL when filtered or lost. */
static __always_inline struct event *reserve_event(const struct tuple *t, __u8 type, const struct owner *o)
{
	struct event *e;

	if (!event_wanted(t, type))
		return NULL;
	e = reserve_record(sizeof(*e));
	if (!e)
		return NULL;
	__builtin_memset(e, 0, sizeof(*e));
	fill_header(&e->hdr, type, o, t);
	return e;
}

/* Emit a connect or accept event of owner o. */
static __always_inline void emit_owned(const struct tuple *t, __u8 type, const struct owner *o)
{
	struct event *e = reserve_event(t, type, o);

	if (!e)
		return;
	if (type == EVENT_ACCEPT)
		e->flags = FLAG_INBOUND;
	submit(e);
}

/* Emit a connect or accept event, attributed to the current task. */
static __always_inline void emit_event(const struct tuple *t, __u8 type, __u64 pid_tgid)
{
	struct owner o = {};

	owner_current(&o, pid_tgid);
	emit_owned(t, type, &o);
}

/*
 * Copy sizeof(*dst) bytes at off of a cgroup_skb packet (which starts at
 * the network header) straight from its linear data (skb->data ..
 * data_end), or with bpf_skb_load_bytes when they lie beyond it. The IP
 * and TCP/UDP headers are always linear at these hooks (the stack has
 * built or pulled them), so the helper is only a safety net. Non-zero if
 * the packet is shorter.
 */
#define PKT_LOAD(skb, off, dst)									\
	({											\
		void *data_ = (void *)(long)(skb)->data;					\
		void *end_ = (void *)(long)(skb)->data_end;					\
		long err_ = 0;									\
		if (data_ + (off) + sizeof(*(dst)) <= end_)					\
			__builtin_memcpy((dst), data_ + (off), sizeof(*(dst)));			\
		else										\
			err_ = bpf_skb_load_bytes((skb), (off), (dst), sizeof(*(dst)));	\
		err_;										\
	})

/* A cgroup sock_addr program (connect, sendmsg, bind, recvmsg) that only
 * notes who owns the socket, with record(ctx), and never refuses the
 * call. */
#define SOCK_ADDR_HOOK(name, section, record)					\
	SEC(section)								\
	int name(struct bpf_sock_addr *ctx)					\
	{									\
		record(ctx);							\
		return 1;							\
	}

#endif

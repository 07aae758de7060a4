/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * Lifecycle (every backend): sock:inet_sock_set_state (state.bpf.h)
 * follows each connection; the conns map remembers who connected or
 * accepted it, so the outcome of a connect (established with its handshake
 * latency, or failed with sk_err) and its close (duration, bytes, who
 * closed first) are attributed to that process, not to whatever ran the
 * softirq.
 *
 * Uses connect.bpf.h (a handshake's end may emit its connect first);
 * used by state.bpf.h and accept.bpf.h.
 */
#ifndef TUXSCOPE_LIFECYCLE_BPF_H
#define TUXSCOPE_LIFECYCLE_BPF_H

#include "common.bpf.h"
#include "connect.bpf.h"

struct conn {
	__u64 syn_ns;         /* connect: when it entered SYN_SENT */
	__u64 established_ns; /* 0: unknown */
	struct owner owner;
	__u8 inbound;
	__u8 connect_pending; /* no connect(2) will emit its connect (io_uring, Fast Open): the outcome does */
};

/* sock -> conn, for every connection seen starting. LRU: a connection
 * whose close we miss cannot leak an entry. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct conn);
} conns SEC(".maps");

/* In the connecting thread, at CLOSE -> SYN_SENT. */
static __always_inline void conn_connecting(__u64 sk, bool connect_pending)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct conn c = {};

	if (!pid_wanted(pid_tgid))
		return;
	c.syn_ns = bpf_ktime_get_ns();
	c.connect_pending = connect_pending;
	owner_current(&c.owner, pid_tgid);
	bpf_map_update_elem(&conns, &sk, &c, BPF_ANY);
}

/* SYN_RECV -> ESTABLISHED, in softirq: owner unknown until accept(). */
static __always_inline void conn_passive_established(__u64 sk)
{
	struct conn *accepted = bpf_map_lookup_elem(&conns, &sk);
	struct conn c = {};

	/* A Fast Open child is accepted while still in SYN_RECV (its SYN
	 * brought data): keep who accepted it. */
	if (accepted && accepted->inbound && accepted->owner.pid && !accepted->established_ns) {
		accepted->established_ns = bpf_ktime_get_ns();
		return;
	}

	c.established_ns = bpf_ktime_get_ns();
	c.inbound = 1;
	bpf_map_update_elem(&conns, &sk, &c, BPF_ANY);
}

/* accept() returned sk to the current task: it owns the connection. */
static __always_inline void conn_accepted(struct sock *sk, __u64 pid_tgid)
{
	__u64 key = (__u64)sk;
	struct conn *c = bpf_map_lookup_elem(&conns, &key);
	struct conn fresh = {};

	if (!pid_wanted(pid_tgid)) {
		if (c)
			bpf_map_delete_elem(&conns, &key);
		return;
	}
	if (!c) {
		/* established before we attached: duration unknown */
		fresh.inbound = 1;
		owner_current(&fresh.owner, pid_tgid);
		bpf_map_update_elem(&conns, &key, &fresh, BPF_ANY);
		return;
	}
	if (!c->owner.pid)
		owner_current(&c->owner, pid_tgid);
}

static __always_inline void conn_outcome(struct sock *sk, __u64 key, int newstate)
{
	struct conn *c = bpf_map_lookup_elem(&conns, &key);
	struct tuple t = {};
	struct event *e;
	__u64 now;

	if (!c)
		return;
	now = bpf_ktime_get_ns();
	if (newstate == TCP_ESTABLISHED)
		c->established_ns = now;
	if (read_sock_tuple(sk, &t)) {
		connect_emit_early(sk, key, &c->owner, &t, c->connect_pending);
		e = reserve_event(&t, newstate == TCP_ESTABLISHED ? EVENT_ESTABLISHED : EVENT_FAILED, &c->owner);
		if (e) {
			e->latency_ns = now - c->syn_ns;
			if (newstate != TCP_ESTABLISHED) /* 0: closed before the handshake finished */
				e->error = BPF_CORE_READ(sk, sk_err);
			submit(e);
		}
	}
	if (newstate != TCP_ESTABLISHED)
		bpf_map_delete_elem(&conns, &key);
}

/* Any established connection reaching CLOSE. oldstate tells who closed
 * first: the side that sent the first FIN (or a reset). */
static __always_inline void conn_closed(struct sock *sk, __u64 key, int oldstate)
{
	struct conn *c = bpf_map_lookup_elem(&conns, &key);
	struct owner unknown = {};
	struct tuple t = {};
	struct event *e;
	int err;

	if (!c && filter_pid)
		return;
	if (c && !c->owner.pid && filter_pid) {
		bpf_map_delete_elem(&conns, &key);
		return;
	}
	if (!read_sock_tuple(sk, &t))
		goto out;
	e = reserve_event(&t, EVENT_CLOSE, c ? &c->owner : &unknown);
	if (!e)
		goto out;
	err = BPF_CORE_READ(sk, sk_err);
	e->error = err;
	switch (oldstate) {
	case TCP_FIN_WAIT1:
	case TCP_FIN_WAIT2:
	case TCP_CLOSING:
	case TCP_TIME_WAIT:
		e->flags = FLAG_CLOSED_LOCAL;
		break;
	case TCP_CLOSE_WAIT:
	case TCP_LAST_ACK:
		e->flags = FLAG_CLOSED_REMOTE;
		break;
	case TCP_ESTABLISHED: /* reset: by the peer if it set an error */
		e->flags = err ? FLAG_CLOSED_REMOTE : FLAG_CLOSED_LOCAL;
		break;
	}
	if (c) {
		if (c->inbound)
			e->flags |= FLAG_INBOUND;
		if (c->established_ns)
			e->duration_ns = e->hdr.ts_ns - c->established_ns;
	}
	/* Data bytes only, each once: TCP's counters also count a received
	 * FIN as a byte, and retransmissions. */
	e->bytes_sent = BPF_CORE_READ((struct tcp_sock *)sk, bytes_sent) -
			BPF_CORE_READ((struct tcp_sock *)sk, bytes_retrans);
	e->bytes_received = BPF_CORE_READ((struct tcp_sock *)sk, bytes_received);
	if (e->bytes_received && (BPF_CORE_READ(sk, __sk_common.skc_flags) & (1UL << SOCK_DONE)))
		e->bytes_received--;
	e->cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	submit(e);
out:
	if (c)
		bpf_map_delete_elem(&conns, &key);
}

#endif

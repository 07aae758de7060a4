/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * health: retransmits and resets, from the tcp: tracepoints (raw, the
 * classic ones as the fallback), attributed
 * through conns to the process that owns the connection, not to whatever
 * ran the timer or softirq that retransmitted.
 *
 * tcp_retransmit_skb: coalesced per connection (lifecycle.bpf.h's
 * retransmit_emit): the first retransmit of a window is emitted with the
 * segments retransmitted since the last event, the rest of the window is
 * counted by the next event or, at the latest, just before the close.
 * tcp_retransmit_synack: a half-open inbound connection's SYN-ACK, one
 * event each (the kernel backs them off: 1 s, 2 s, 4 s, ...), the
 * listener's process's. tcp_send_reset / tcp_receive_reset: one event per reset on a
 * connection (not for segments that found no socket).
 *
 * Uses lifecycle.bpf.h and listen.bpf.h.
 */
#ifndef TUXSCOPE_HEALTH_BPF_H
#define TUXSCOPE_HEALTH_BPF_H

#include "common.bpf.h"
#include "lifecycle.bpf.h"
#include "listen.bpf.h"

/* A socket's entry in conns, or, for a connection tuxscope has not seen
 * start (older than tuxscope, or before accept() took it), a new entry
 * with no owner yet (its close() names it), so its retransmits can be
 * coalesced too. Not with a process filter on: then only the selected
 * processes' entries count. */
static __always_inline struct conn *conn_for_health(struct sock *sk, __u64 key)
{
	struct conn *c = bpf_map_lookup_elem(&conns, &key);
	struct conn fresh = {};
	__u32 total;

	if (c || task_filter_on() || !conn_selected(sk))
		return c;
	fresh.inbound = conn_was_accepted(sk);
	/* Counted from here: this retransmit as one. */
	total = tcp_total_retrans(sk);
	fresh.retrans_base = total ? total - 1 : 0;
	/* A full table leaves it uncoalesced: no event (its close still
	 * has retrans_segs). */
	bpf_map_update_elem(&conns, &key, &fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&conns, &key);
}

static __always_inline void retransmitted(struct sock *sk)
{
	__u64 key = (__u64)sk, now;
	struct conn *c;
	__u32 total;

	if (!sk || !(want_types & (1U << EVENT_RETRANSMIT)))
		return;
	c = conn_for_health(sk, key);
	if (!c)
		return;
	now = bpf_ktime_get_ns();
	if (c->retrans_ns && now - c->retrans_ns < retrans_window_ns)
		return; /* the next event, or the close, counts it */
	total = tcp_total_retrans(sk);
	if (total == c->retrans_base) {
		/* Not counted yet (a kernel that traces before it counts):
		 * the next event, or the close, has it. */
		if (!c->retrans_ns)
			c->retrans_ns = 1;
		return;
	}
	retransmit_emit(sk, c, total, now);
}

/* A SYN-ACK retransmitted for req, a half-open connection to listener sk:
 * accept() has not taken it yet, so it is the listener's: the process
 * that made it listen (listen.bpf.h's listeners), else (a listener older
 * than tuxscope, or a full table) the listener's user. */
static __always_inline void synack_retransmitted(struct sock *listener, struct request_sock *req)
{
	__u64 key = (__u64)listener;
	struct owner *lo, o = {};
	struct tuple t = {};
	struct event *e;

	if (!req)
		return;
	lo = bpf_map_lookup_elem(&listeners, &key);
	if (!lo && task_filter_on())
		return;
	t.family = BPF_CORE_READ(req, __req_common.skc_family);
	if (t.family == AF_INET) {
		BPF_CORE_READ_INTO((__u32 *)t.laddr, req, __req_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)t.raddr, req, __req_common.skc_daddr);
	} else if (t.family == AF_INET6) {
		BPF_CORE_READ_INTO((struct in6_addr *)t.laddr, req, __req_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO((struct in6_addr *)t.raddr, req, __req_common.skc_v6_daddr);
	} else {
		return;
	}
	t.lport = BPF_CORE_READ(req, __req_common.skc_num);
	t.rport = bpf_ntohs(BPF_CORE_READ(req, __req_common.skc_dport));
	t.netns = sock_netns(listener);
	if (lo)
		o = *lo;
	else
		o.uid = BPF_CORE_READ(listener, sk_uid.val);
	e = reserve_event(&t, EVENT_RETRANSMIT, &o);
	if (!e)
		return;
	e->flags = FLAG_INBOUND;
	e->retransmits = 1;
	e->state = TCP_SYN_RECV;
	submit(e);
}

/* Whether sk is a full socket with a connection: not a time-wait or
 * request mini-socket (which share only sock_common), not a listener. */
static __always_inline bool connection_sock(struct sock *sk, __u8 *state)
{
	if (!sk)
		return false;
	*state = BPF_CORE_READ(sk, __sk_common.skc_state);
	if (*state == TCP_TIME_WAIT || *state == TCP_NEW_SYN_RECV || *state == TCP_LISTEN)
		return false;
	return BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP;
}

static __always_inline void reset_emit(struct sock *sk, __u64 key, const struct owner *o, __u8 state,
				       bool inbound, bool local)
{
	struct tuple t = {};
	struct event *e;

	if (!read_sock_tuple(sk, &t))
		return;
	e = reserve_event(&t, EVENT_RESET, o);
	if (!e)
		return;
	e->flags = local ? FLAG_CLOSED_LOCAL : FLAG_CLOSED_REMOTE;
	if (inbound)
		e->flags |= FLAG_INBOUND;
	e->state = state;
	e->cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	submit(e);
}

/* This side sends a reset on sk: the connection's close will say so. A
 * reset sent as the socket closes comes after its close (see
 * last_closed and resetting). */
static __always_inline void reset_sent(struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct conn *c = bpf_map_lookup_elem(&conns, &key);
	struct closed_sock *last;
	struct resetting_sock *r;
	struct owner unknown = {};
	__u32 zero = 0;
	__u8 state;

	if (!connection_sock(sk, &state))
		return;
	if (c) {
		c->reset_sent = 1;
		if (!c->owner.pid && task_filter_on())
			return;
		if (!c->owner.pid)
			unknown.uid = BPF_CORE_READ(sk, sk_uid.val);
		if (want_types & (1U << EVENT_RESET))
			reset_emit(sk, key, c->owner.pid ? &c->owner : &unknown, state, c->inbound, true);
		return;
	}
	if (!(want_types & (1U << EVENT_RESET)))
		return;
	if (state == TCP_CLOSE) {
		last = bpf_map_lookup_elem(&last_closed, &zero);
		if (last && last->sk == key) {
			last->sk = 0;
			bpf_map_delete_elem(&resetting, &key);
			reset_emit(sk, key, &last->owner, last->state, last->inbound, true);
			return;
		}
		r = bpf_map_lookup_elem(&resetting, &key);
		if (r && r->snd_nxt == BPF_CORE_READ((struct tcp_sock *)sk, snd_nxt)) {
			struct closed_sock found = r->last;

			bpf_map_delete_elem(&resetting, &key);
			reset_emit(sk, key, &found.owner, found.state, found.inbound, true);
			return;
		}
	}
	if (task_filter_on() || !conn_selected(sk))
		return;
	unknown.uid = BPF_CORE_READ(sk, sk_uid.val);
	reset_emit(sk, key, &unknown, state, conn_was_accepted(sk), true);
}

/* The peer reset sk: traced before the socket changes state, so its
 * entry is still there. */
static __always_inline void reset_received(struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct conn *c;
	struct owner unknown = {};
	__u8 state;

	if (!(want_types & (1U << EVENT_RESET)) || !connection_sock(sk, &state))
		return;
	/* A reset answering a SYN is a refused connect: its failed event
	 * says so. */
	if (state == TCP_SYN_SENT)
		return;
	c = bpf_map_lookup_elem(&conns, &key);
	if (c && c->owner.pid) {
		reset_emit(sk, key, &c->owner, state, c->inbound, false);
		return;
	}
	if (task_filter_on() || !conn_selected(sk))
		return;
	unknown.uid = BPF_CORE_READ(sk, sk_uid.val);
	reset_emit(sk, key, &unknown, state, c ? c->inbound : conn_was_accepted(sk), false);
}

/* Raw tracepoints: the arguments are the tracepoints' own, sk first
 * (tcp_retransmit_skb(sk, skb[, err]), tcp_retransmit_synack(sk, req),
 * tcp_send_reset(sk, skb[, reason]), tcp_receive_reset(sk)). */
SEC("raw_tp/tcp_retransmit_skb")
int raw_retransmit(struct bpf_raw_tracepoint_args *ctx)
{
	retransmitted((struct sock *)ctx->args[0]);
	return 0;
}

SEC("raw_tp/tcp_retransmit_synack")
int raw_synack(struct bpf_raw_tracepoint_args *ctx)
{
	synack_retransmitted((struct sock *)ctx->args[0], (struct request_sock *)ctx->args[1]);
	return 0;
}

SEC("raw_tp/tcp_send_reset")
int raw_send_reset(struct bpf_raw_tracepoint_args *ctx)
{
	reset_sent((struct sock *)ctx->args[0]);
	return 0;
}

SEC("raw_tp/tcp_receive_reset")
int raw_recv_reset(struct bpf_raw_tracepoint_args *ctx)
{
	reset_received((struct sock *)ctx->args[0]);
	return 0;
}

/* Classic tracepoints: the fallback where the raw ones cannot be attached. */
SEC("tracepoint/tcp/tcp_retransmit_skb")
int tp_retransmit(struct tp_sk_skb_ctx *ctx)
{
	retransmitted((struct sock *)ctx->skaddr);
	return 0;
}

SEC("tracepoint/tcp/tcp_retransmit_synack")
int tp_synack(struct tp_synack_ctx *ctx)
{
	synack_retransmitted((struct sock *)ctx->skaddr, (struct request_sock *)ctx->req);
	return 0;
}

SEC("tracepoint/tcp/tcp_send_reset")
int tp_send_reset(struct tp_sk_skb_ctx *ctx)
{
	reset_sent((struct sock *)ctx->skaddr);
	return 0;
}

SEC("tracepoint/tcp/tcp_receive_reset")
int tp_recv_reset(struct tp_sk_ctx *ctx)
{
	reset_received((struct sock *)ctx->skaddr);
	return 0;
}

#endif

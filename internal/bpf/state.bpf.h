/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * state: every TCP state change, whatever the backend, through the stable
 * sock:inet_sock_set_state tracepoint, raw (cheaper) or classic. It drives
 * the tracepoint connect path's socket bookkeeping (connect.bpf.h) and the
 * lifecycle (lifecycle.bpf.h).
 */
#ifndef TUXSCOPE_STATE_BPF_H
#define TUXSCOPE_STATE_BPF_H

#include "common.bpf.h"
#include "connect.bpf.h"
#include "lifecycle.bpf.h"
#include "listen.bpf.h"

/* The only new states state_changed acts on (SYN_SENT, ESTABLISHED and
 * CLOSE for the lifecycle, FIN_WAIT1 and LAST_ACK for who closes, LISTEN
 * and CLOSE for listeners). */
static __always_inline bool state_wanted(int newstate)
{
	return newstate == TCP_SYN_SENT || newstate == TCP_ESTABLISHED || newstate == TCP_CLOSE ||
	       newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK || newstate == TCP_LISTEN;
}

/* Every TCP state change, whatever the backend: the tracepoint connect
 * path's socket and tuple bookkeeping, and the lifecycle. */
static __always_inline void state_changed(struct sock *sk, int oldstate, int newstate)
{
	__u64 key = (__u64)sk;

	switch (oldstate) {
	case TCP_CLOSE:
		if (newstate == TCP_SYN_SENT)
			conn_connecting(sk, key, connect_syn_sent(sk));
		else if (newstate == TCP_LISTEN) {
			listener_track(sk, true);
			listen_changed(sk, EVENT_LISTEN);
		}
		break;
	case TCP_SYN_SENT:
		if (newstate == TCP_ESTABLISHED || newstate == TCP_CLOSE)
			conn_outcome(sk, key, newstate);
		break;
	case TCP_SYN_RECV:
		if (newstate == TCP_ESTABLISHED)
			conn_passive_established(sk, key);
		else if (newstate == TCP_CLOSE)
			bpf_map_delete_elem(&conns, &key);
		break;
	case TCP_LISTEN:
		if (newstate == TCP_CLOSE) {
			listener_track(sk, false);
			listen_changed(sk, EVENT_UNLISTEN);
		}
		break;
	case TCP_NEW_SYN_RECV:
		break;
	default: /* an established connection, or one closing */
		if (newstate == TCP_CLOSE)
			conn_closed(sk, key, oldstate);
		else if (newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK)
			conn_held(sk, key); /* close() or shutdown(), in the holder */
		break;
	}
}

/* The raw tracepoint: the same hook, but no trace-buffer record is built
 * for it, so it costs less per state change than the classic one. Its
 * arguments are inet_sock_set_state's own (sk, oldstate, newstate).
 *
 * The kernel does not run a program inside itself: a state change made in
 * a softirq that interrupts raw_state on the same CPU (e.g. the peer's
 * final ACK arriving over loopback while a close() is being traced) skips
 * it, and that change would be lost. So a second copy, raw_state_nest, is
 * attached after it: it does nothing unless the first is running below it
 * on this CPU, which is exactly when the kernel skipped the first for this
 * change. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} state_running SEC(".maps");

/* Changes raw_state_nest handled for a skipped first copy: taken off the
 * first copy's recursion misses when losses are reported. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} state_recovered SEC(".maps");

static __always_inline void raw_state_changed(struct bpf_raw_tracepoint_args *ctx)
{
	struct sock *sk = (struct sock *)ctx->args[0];
	int newstate = (int)ctx->args[2];

	/* Some of a connection's changes (FIN_WAIT2, CLOSE_WAIT, ...)
	 * matter to no one: skip them before reading the socket. */
	if (!state_wanted(newstate) || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return;
	state_changed(sk, (int)ctx->args[1], newstate);
}

SEC("raw_tp/inet_sock_set_state")
int raw_state(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 zero = 0;
	__u64 *running = bpf_map_lookup_elem(&state_running, &zero);

	if (running)
		*running = 1;
	raw_state_changed(ctx);
	if (running)
		*running = 0;
	return 0;
}

SEC("raw_tp/inet_sock_set_state")
int raw_state_nest(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 zero = 0;
	__u64 *running = bpf_map_lookup_elem(&state_running, &zero), *n;

	if (!running || !*running)
		return 0; /* the first copy ran for this change */
	raw_state_changed(ctx);
	n = bpf_map_lookup_elem(&state_recovered, &zero);
	if (n)
		*n += 1;
	return 0;
}

/* The classic tracepoint: the fallback where the raw one cannot be
 * attached. */
SEC("tracepoint/sock/inet_sock_set_state")
int tp_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (!state_wanted(ctx->newstate) || BPF_CORE_READ(ctx, protocol) != IPPROTO_TCP)
		return 0;
	state_changed((struct sock *)BPF_CORE_READ(ctx, skaddr), ctx->oldstate, ctx->newstate);
	return 0;
}

#endif

/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * listen: a socket starting or stopping to listen, from the state changes
 * state.bpf.h follows (CLOSE -> LISTEN, LISTEN -> CLOSE): no hook of its
 * own. listen() makes the first in the listening process
 * (inet_csk_listen_start), close() of its last reference, or shutdown(),
 * the second in the closing one. A listen() whose port turns out to be
 * taken (get_port fails after the state is set) shows as a listen and an
 * unlisten straight after.
 *
 * Uses common.bpf.h; used by state.bpf.h.
 */
#ifndef TUXSCOPE_LISTEN_BPF_H
#define TUXSCOPE_LISTEN_BPF_H

#include "common.bpf.h"

/*
 * listener sk -> the process that made it listen, for the SYN-ACKs the
 * kernel retransmits for its half-open connections (health.bpf.h): no
 * process has those yet, the listener's owner is theirs. Written at
 * CLOSE -> LISTEN (listen(), in the listening process), deleted at
 * LISTEN -> CLOSE. Bounded and preallocated; a listener that finds it
 * full is counted in listeners_full (its SYN-ACK retransmits then have
 * no process), nothing is evicted. A listener older than tuxscope is not
 * in it.
 */
#define LISTENERS_MAX 4096

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LISTENERS_MAX);
	__type(key, __u64);
	__type(value, struct owner);
} listeners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} listeners_full SEC(".maps");

/* listener_track's owner, listen_changed's owner and tuple: off their
 * stacks, which 5.10's verifier counts with the state program's (512
 * bytes for the two together, and tp_state's frame takes 384 of them).
 * One per CPU: a listener's state changes run in process context
 * (listen(), close(), shutdown()), never in a softirq that could
 * interrupt another one on the same CPU. */
struct listen_scratch {
	struct owner o;
	struct tuple t;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct listen_scratch);
} listen_scratch SEC(".maps");

/* sk starts listening (listening), in the process that called listen():
 * remember it as the owner of the listener's half-open connections, when
 * their retransmits are wanted and the process passes the filters; or
 * stops: forget it. Not inlined: the state program's own frame is as big
 * as 5.10's verifier allows (see listen_scratch). */
static __noinline void listener_track(struct sock *sk, bool listening)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid(), key = (__u64)sk, *n;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct listen_scratch *ls;
	__u32 zero = 0;

	if (!listening) {
		bpf_map_delete_elem(&listeners, &key);
		return;
	}
	if (!(want_types & (1U << EVENT_RETRANSMIT)) || (BPF_CORE_READ(task, flags) & PF_KTHREAD) ||
	    !pid_wanted(pid_tgid))
		return;
	ls = bpf_map_lookup_elem(&listen_scratch, &zero);
	if (!ls)
		return;
	__builtin_memset(&ls->o, 0, sizeof(ls->o));
	owner_current(&ls->o, pid_tgid);
	if (!bpf_map_update_elem(&listeners, &key, &ls->o, BPF_ANY))
		return;
	n = bpf_map_lookup_elem(&listeners_full, &zero);
	if (n)
		*n += 1;
}

/* Not inlined: three programs (raw_state, raw_state_nest, tp_state) call
 * it, and a listen is rare. */
static __noinline void listen_changed(struct sock *sk, __u8 type)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct listen_scratch *ls;
	struct event *e;
	__u32 zero = 0;

	if (!(want_types & (1U << type)))
		return;
	ls = bpf_map_lookup_elem(&listen_scratch, &zero);
	if (!ls)
		return;
	__builtin_memset(ls, 0, sizeof(*ls));
	if (BPF_CORE_READ(task, flags) & PF_KTHREAD) {
		/* A kernel thread's (an in-kernel server's, or a deferred
		 * close): no process, at least the socket's user. */
		if (task_filter_on())
			return;
		ls->o.uid = BPF_CORE_READ(sk, sk_uid.val);
	} else {
		if (!pid_wanted(pid_tgid))
			return;
		owner_current(&ls->o, pid_tgid);
	}
	if (!read_sock_tuple(sk, &ls->t))
		return;
	e = reserve_event(&ls->t, type, &ls->o);
	if (!e)
		return;
	e->flags = FLAG_INBOUND;
	if (ls->t.family == AF_INET6 && BPF_CORE_READ_BITFIELD_PROBED(&sk->__sk_common, skc_ipv6only))
		e->flags |= FLAG_V6ONLY;
	e->backlog = BPF_CORE_READ(sk, sk_max_ack_backlog);
	submit(e);
}

#endif

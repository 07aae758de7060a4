/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * connect: the connect event, from every backend.
 *
 * Tracepoint backend: inet_sock_set_state's CLOSE -> SYN_SENT transition
 * (which runs inside connect(), in the caller's context) records which
 * socket the thread is connecting (connect_syn_sent, called by
 * state.bpf.h), if the thread is inside connect(2): since Linux 5.15 it
 * tells by the system call the thread is in (connect_syscall_nr), before
 * that sys_enter_connect marks the thread; sys_exit_connect emits the
 * event. Reading the socket when connect() returns, not at
 * tcp_v4_connect's entry, is what gives the real source address and port,
 * and emitting it there keeps it real time for blocking and non-blocking
 * connects alike. A connect made without connect(2) -- io_uring's
 * IORING_OP_CONNECT, TCP Fast Open's sendto(MSG_FASTOPEN) -- passes no
 * syscall hook, but its CLOSE -> SYN_SENT change still runs in the process
 * that made it (or, for io_uring, one of its io-wq threads): it is recorded
 * there and emitted where the handshake ends (connect_syscall_hooks).
 *
 * fentry and kprobe backends: tcp_v4_connect/tcp_v6_connect's return.
 */
#ifndef TUXSCOPE_CONNECT_BPF_H
#define TUXSCOPE_CONNECT_BPF_H

#include "common.bpf.h"

/* Threads that called connect(): pid_tgid -> the socket that entered
 * SYN_SENT during the call (before that, where sys_enter_connect marks
 * the thread, CONNECT_NO_SOCK); 0 once it returned. An entry stays after
 * the call so that the thread's next connect() writes it in place: an
 * LRU map's update and delete cost about twice its lookup (measured on
 * the 6.18 host). */
THREAD_MAP(connecting, __u64);

/*
 * The tracepoint path emits a connect when connect() returns. A blocking
 * connect returns after the handshake: then the connect is emitted at the
 * SYN_SENT -> ESTABLISHED or CLOSE change instead (the tuple is complete and
 * still intact there; a failed connect() clears it before returning), so
 * it always comes before its outcome, as with the function hooks. The low
 * bit of the connecting map's value records that it was.
 */
#define CONNECT_EMITTED 1ULL
/* Inside connect(), no socket in SYN_SENT yet (socket pointers are
 * aligned: neither low bit is ever set in one). */
#define CONNECT_NO_SOCK 2ULL

static __always_inline void connect_enter(void)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 no_sock = CONNECT_NO_SOCK, *v;

	if (!pid_wanted(pid_tgid))
		return;
	v = bpf_map_lookup_elem(&connecting, &pid_tgid);
	if (v)
		*v = CONNECT_NO_SOCK; /* only this thread writes its entry */
	else
		bpf_map_update_elem(&connecting, &pid_tgid, &no_sock, BPF_ANY);
}

/*
 * 1 when the connect point is the tracepoint backend's, whose connects are
 * emitted at sys_exit_connect; the loader sets it on the state point's
 * programs. A connect that runs no connect(2) (io_uring, Fast Open's
 * sendto) is then emitted where its handshake ends, like a blocking one:
 * its source port is not chosen yet at SYN_SENT. The function hooks need
 * none of this: tcp_v4_connect/tcp_v6_connect return in those too.
 */
const volatile __u8 connect_syscall_hooks = 0;

/*
 * connect(2)'s number on this architecture (x86_64 42, arm64 203) where
 * the state program can read the system call its thread is in
 * (bpf_task_pt_regs, Linux 5.15+): then sys_enter_connect is not attached
 * (a program run per connect(2) saved, 259 ns of BPF time a run measured
 * on the 6.18 host, and the syscall tracepoint's record), and the
 * CLOSE -> SYN_SENT change tells a connect(2) by it. io_uring's connects
 * run in io_uring_enter(2) or an io-wq thread, Fast Open's in sendto(2),
 * a 32-bit process's under other numbers: none is taken for connect(2),
 * as sys_enter_connect, which does not fire for them, did not either.
 * 0: sys_enter_connect marks the thread (CONNECT_NO_SOCK). The loader
 * sets it with connect_syscall_hooks.
 */
const volatile __u32 connect_syscall_nr = 0;

static __always_inline bool in_connect_syscall(void)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());

	return regs && (__u32)SYSCALL_NR(regs) == connect_syscall_nr;
}

/* Called on every TCP state change; runs in the connecting thread for the
 * CLOSE -> SYN_SENT change made by tcp_v4_connect/tcp_v6_connect. True
 * when no connect(2) is running in this thread to emit the connect, so
 * the handshake's end must (connect_due_early's pending). */
static __always_inline bool connect_syn_sent(const void *skaddr)
{
	__u64 pid_tgid, *sk, v = (__u64)skaddr;

	/* The function hooks see every connect themselves. */
	if (!connect_syscall_hooks)
		return false;
	/* Without connect events (--type) the connect point is not
	 * attached: no thread is inside a traced connect(). */
	if (!(want_types & (1U << EVENT_CONNECT)))
		return true;
	pid_tgid = bpf_get_current_pid_tgid();
	if (connect_syscall_nr) {
		/* The caller drops a process the filters do not select;
		 * sys_exit_connect must not find its socket either. */
		if (!pid_wanted(pid_tgid) || !in_connect_syscall())
			return true;
		/* Whatever the thread's last connect(2) left (0, or a
		 * handshake's end's EMITTED mark) is overwritten. */
		sk = bpf_map_lookup_elem(&connecting, &pid_tgid);
		if (sk)
			*sk = v; /* only this thread writes its entry */
		else if (bpf_map_update_elem(&connecting, &pid_tgid, &v, BPF_ANY))
			return true; /* then emitted where the handshake ends */
		return false;
	}
	sk = bpf_map_lookup_elem(&connecting, &pid_tgid);
	/* Inside connect(), and not a value a handshake's end left after
	 * the call returned (connect_due_early racing connect_exit). */
	if (sk && *sk && !(*sk & CONNECT_EMITTED)) {
		*sk = v;
		return false;
	}
	return true;
}

static __always_inline void connect_exit(long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct tuple t = {};
	__u64 *skp, sk;

	skp = bpf_map_lookup_elem(&connecting, &pid_tgid);
	if (!skp || !*skp)
		return;
	sk = *skp;
	*skp = 0;
	/* No SYN_SENT during this call: not TCP, or it failed before a SYN
	 * left (EADDRNOTAVAIL, ENETUNREACH, EALREADY, ...). Or the handshake
	 * already ended and the connect was emitted then. */
	if (sk & (CONNECT_NO_SOCK | CONNECT_EMITTED))
		return;
	/* 0, EINPROGRESS, or e.g. EINTR: the socket is still connecting. */
	if (read_sock_tuple((struct sock *)sk, &t))
		emit_event(&t, EVENT_CONNECT, pid_tgid);
}

/* At the end of a handshake (lifecycle.bpf.h's conn_outcome): whether the
 * connect must be emitted now, before the outcome: if its thread is still
 * inside connect() (see CONNECT_EMITTED, set here), or if no connect()
 * will (pending: connect_syn_sent said so when the connect began). */
static __always_inline bool connect_due_early(__u64 key, const struct owner *o, bool pending)
{
	__u64 pid_tgid = ((__u64)o->pid << 32) | o->tid;
	__u64 *skp;

	if (pending)
		return true;
	skp = bpf_map_lookup_elem(&connecting, &pid_tgid);
	if (!skp || *skp != key)
		return false;
	*skp = key | CONNECT_EMITTED;
	return true;
}

SEC("tracepoint/syscalls/sys_enter_connect")
int tp_enter_conn(struct syscall_enter_ctx *ctx)
{
	connect_enter();
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int tp_exit_conn(struct syscall_exit_ctx *ctx)
{
	connect_exit(ctx->ret);
	return 0;
}

/* ---- fentry and kprobe backends ---------------------------------------- */

/*
 * tcp_v4_connect/tcp_v6_connect return 0 once the SYN is on its way, the
 * local port hashed: the same moment and tuple the tracepoint backend
 * reports (it reads them when connect() returns). An AF_INET6 socket
 * connecting to a v4-mapped address goes through tcp_v6_connect, which
 * calls tcp_v4_connect: only the outer call reports it.
 */
static __always_inline void connect_returned(struct sock *sk, long ret, bool v4_func)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct tuple t = {};

	if (ret != 0 || !sk || !pid_wanted(pid_tgid))
		return;
	if (v4_func && BPF_CORE_READ(sk, __sk_common.skc_family) == AF_INET6)
		return;
	if (read_sock_tuple(sk, &t))
		emit_event(&t, EVENT_CONNECT, pid_tgid);
}

SEC("fexit/tcp_v4_connect")
int BPF_PROG(fexit_v4_conn, struct sock *sk, void *uaddr, int addr_len, int ret)
{
	connect_returned(sk, ret, true);
	return 0;
}

SEC("fexit/tcp_v6_connect")
int BPF_PROG(fexit_v6_conn, struct sock *sk, void *uaddr, int addr_len, int ret)
{
	connect_returned(sk, ret, false);
	return 0;
}

/* kprobe: the socket argument, kept from entry to return, per thread
 * (tcp_v6_connect and its inner tcp_v4_connect share the same sk). */
THREAD_MAP(kprobe_connect_sk, __u64);

static __always_inline void kprobe_connect_entry(struct sock *sk)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 v = (__u64)sk;

	if (!pid_wanted(pid_tgid))
		return; /* connect_returned would drop it */
	bpf_map_update_elem(&kprobe_connect_sk, &pid_tgid, &v, BPF_ANY);
}

static __always_inline void kprobe_connect_return(long ret, bool v4_func)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 *sk = bpf_map_lookup_elem(&kprobe_connect_sk, &pid_tgid);

	if (!sk)
		return;
	connect_returned((struct sock *)*sk, ret, v4_func);
	if (!v4_func || BPF_CORE_READ((struct sock *)*sk, __sk_common.skc_family) == AF_INET)
		bpf_map_delete_elem(&kprobe_connect_sk, &pid_tgid);
}

/* The kprobe pair of one connect function: the socket at entry, the
 * outcome at return. */
#define KPROBE_CONNECT(fn, entry_prog, return_prog, v4_func)	\
	SEC("kprobe/" #fn)					\
	int BPF_KPROBE(entry_prog, struct sock *sk)		\
	{							\
		kprobe_connect_entry(sk);			\
		return 0;					\
	}							\
	SEC("kretprobe/" #fn)					\
	int BPF_KRETPROBE(return_prog, int ret)			\
	{							\
		kprobe_connect_return(ret, v4_func);		\
		return 0;					\
	}

KPROBE_CONNECT(tcp_v4_connect, kp_v4_conn, kret_v4_conn, true)
KPROBE_CONNECT(tcp_v6_connect, kp_v6_conn, kret_v6_conn, false)

#endif

/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * accept: the accept event, from every backend; it also tells the
 * lifecycle (lifecycle.bpf.h) who owns an accepted connection.
 *
 * Tracepoint backend: sys_exit_accept/accept4 run in the accepting
 * process; the returned fd leads to the new socket (task -> files -> fdt
 * -> fd[] -> file -> socket -> sock). Processes already blocked in
 * accept() before we attached are seen too, since only the syscall's exit
 * matters.
 *
 * fexit/kretprobe on inet_csk_accept see each accept as it returns, in the
 * accepting process. They cannot see an accept() that was already waiting
 * when they were attached: its return does not pass through the probe. So
 * the syscall-exit tracepoint stays attached beside them as a catch-up, and
 * emits only accepts the function hook did not (accept_seen).
 *
 * io_uring's IORING_OP_ACCEPT never returns through accept(2): on the
 * tracepoint backend, io_uring's completion tracepoint stands in for its
 * exit (raw_uring_done). The function hooks see it in inet_csk_accept.
 */
#ifndef TUXSCOPE_ACCEPT_BPF_H
#define TUXSCOPE_ACCEPT_BPF_H

#include "common.bpf.h"
#include "lifecycle.bpf.h"

THREAD_MAP(accept_seen, __u8);

static __always_inline void accept_returned(struct sock *sk)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct tuple t = {};
	struct owner o = {};
	__u8 one = 1;

	/* kernel_accept() from kernel threads: not a process's accept */
	if (!sk || (BPF_CORE_READ(task, flags) & PF_KTHREAD))
		return;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return;
	bpf_map_update_elem(&accept_seen, &pid_tgid, &one, BPF_ANY);
	if (!conn_accepted(sk, pid_tgid, &o))
		return;
	if (read_sock_tuple(sk, &t))
		emit_owned(&t, EVENT_ACCEPT, &o);
}

/* inet_csk_accept changed its signature in Linux 6.10; the loader picks the
 * program matching the running kernel's BTF: fexit_accept since 6.10,
 * fexit_acc_old before. */
SEC("fexit/inet_csk_accept")
int BPF_PROG(fexit_accept, struct sock *sk, void *arg, struct sock *ret)
{
	accept_returned(ret);
	return 0;
}

SEC("fexit/inet_csk_accept")
int BPF_PROG(fexit_acc_old, struct sock *sk, int flags, int *err, bool kern, struct sock *ret)
{
	accept_returned(ret);
	return 0;
}

SEC("kretprobe/inet_csk_accept")
int BPF_KRETPROBE(kret_accept, struct sock *ret)
{
	accept_returned(ret);
	return 0;
}

/* The tracepoint backend's accept hook, also the catch-up of the others. */

/* The socket behind one of the current task's file descriptors. */
static __always_inline struct sock *sock_from_fd(long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *file = NULL;
	struct socket *sock;

	if (fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return NULL;
	return BPF_CORE_READ(sock, sk);
}

/*
 * 1 when these syscall-exit programs are the catch-up of a function hook
 * (the accept point is fentry's or kprobe's): only then can accept_seen
 * hold anything, and its lookup (about 100 ns a run, measured on the 6.18
 * host) is skipped on the tracepoint backend. The loader sets it.
 */
const volatile __u8 accept_catch_up = 0;

static __always_inline void accept_exit(long ret)
{
	__u64 pid_tgid;
	struct tuple t = {};
	struct owner o = {};
	struct sock *sk;

	/* A failed accept leaves first (EAGAIN is common for non-blocking
	 * servers). Its accept_seen entry, if a function hook saw a socket
	 * before the call failed (EFAULT on the address), only makes this
	 * thread's next exit skip an accept that the hook reports too. */
	if (ret < 0)
		return;
	pid_tgid = bpf_get_current_pid_tgid();
	if (accept_catch_up && bpf_map_lookup_elem(&accept_seen, &pid_tgid)) {
		bpf_map_delete_elem(&accept_seen, &pid_tgid);
		return; /* a function hook reported it */
	}
	sk = sock_from_fd(ret);
	if (!sk)
		return;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP ||
	    BPF_CORE_READ(sk, sk_type) != SOCK_STREAM)
		return;
	/* Also for a process the filters do not select: drops its entry. */
	if (!conn_accepted(sk, pid_tgid, &o))
		return;
	if (read_sock_tuple(sk, &t))
		emit_owned(&t, EVENT_ACCEPT, &o);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int tp_exit_accept4(struct syscall_exit_ctx *ctx)
{
	accept_exit(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int tp_exit_accept(struct syscall_exit_ctx *ctx)
{
	accept_exit(ctx->ret);
	return 0;
}

/*
 * io_uring (tracepoint backend). io_uring_complete runs where a completion
 * is posted; an accept's is posted in the process that submitted it (the
 * submitting thread's task work, or one of its io-wq or SQPOLL threads,
 * threads of that process since Linux 5.12), and its result is the new
 * descriptor in that process's table.
 *
 * Every kind of request completes here, so a completion counts as an
 * accept only if its result names a TCP socket whose handshake was seen
 * to end (SYN_RECV -> ESTABLISHED) and that no one has accepted yet: a
 * byte count that happens to be a descriptor number, or a direct
 * descriptor's slot index, cannot pass for one. Where the tracepoint
 * carries the request (Linux 5.19 and later, except for some multishot
 * completions), its opcode is checked first.
 *
 * It is attached as a raw tracepoint: every completion of every ring runs
 * it, and the classic tracepoint builds a trace record for each first.
 * Measured on the 6.18 host (a VM), IORING_OP_NOP completions took about
 * 140 ns each without tuxscope, +75 ns with the classic tracepoint, +45
 * ns with this raw one, which reads only the opcode of a non-accept.
 * Its arguments changed over the years; the loader reads the running
 * kernel's prototype (btf_trace_io_uring_complete) and sets:
 *   1: (ctx, user_data, res[, cflags])                   before 5.19
 *   2: (ctx, req, user_data, res, cflags, extra1, extra2) 5.19 ..
 *   3: (ctx, req, cqe)                                    .. today
 *
 * Not seen: accepts into direct descriptors (IORING_FILE_INDEX_ALLOC or a
 * file_index: no descriptor in the process's table), of connections whose
 * handshake ended before tuxscope attached, and, before Linux 5.12,
 * accepts completed in io_uring's kernel threads.
 */
const volatile __u8 uring_complete_args = 0;

static __always_inline bool conn_unclaimed_inbound(struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct conn *c = bpf_map_lookup_elem(&conns, &key);

	return c && c->inbound && !c->owner.pid;
}

static __always_inline void uring_completed(int res)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct tuple t = {};
	struct owner o = {};
	struct sock *sk;

	if (res < 0 || (BPF_CORE_READ(task, flags) & PF_KTHREAD))
		return;
	sk = sock_from_fd(res);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP ||
	    BPF_CORE_READ(sk, sk_type) != SOCK_STREAM || !conn_unclaimed_inbound(sk))
		return;
	if (!conn_accepted(sk, pid_tgid, &o))
		return;
	if (read_sock_tuple(sk, &t))
		emit_owned(&t, EVENT_ACCEPT, &o);
}

SEC("raw_tp/io_uring_complete")
int raw_uring_done(struct bpf_raw_tracepoint_args *ctx)
{
	struct io_kiocb *req;
	int res;

	if (uring_complete_args == 1) {
		uring_completed((int)ctx->args[2]);
		return 0;
	}
	if (uring_complete_args != 2 && uring_complete_args != 3)
		return 0;
	/* The opcode first: most completions are not accepts, and stop here. */
	req = (struct io_kiocb *)ctx->args[1];
	if (req && BPF_CORE_READ(req, opcode) != IORING_OP_ACCEPT)
		return 0;
	if (uring_complete_args == 2)
		res = (int)ctx->args[3];
	else
		res = BPF_CORE_READ((struct io_uring_cqe *)ctx->args[2], res);
	uring_completed(res);
	return 0;
}

#endif

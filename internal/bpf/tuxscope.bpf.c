// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
//go:build ignore

/*
 * Kernel side of `tuxscope net`.
 *
 * Each event has up to three ways into the kernel, chosen per kernel by the
 * loader (internal/tracer): fentry/fexit, kprobe/kretprobe, or stable
 * tracepoints. The SEC() programs are thin wrappers; the logic lives in the
 * shared helpers, so every backend emits the same events.
 *
 * Tracepoint backend:
 *
 * connect: sys_enter_connect marks the thread; inet_sock_set_state's
 * CLOSE -> SYN_SENT transition (which runs inside connect(), in the caller's
 * context) records which socket it is; sys_exit_connect emits the event.
 * Reading the socket when connect() returns, not at tcp_v4_connect's entry,
 * is what gives the real source address and port, and emitting it there
 * keeps it real time for blocking and non-blocking connects alike.
 *
 * accept: sys_exit_accept/accept4 run in the accepting process; the
 * returned fd leads to the new socket (task -> files -> fdt -> fd[] ->
 * file -> socket -> sock). Processes already blocked in accept() before we
 * attached are seen too, since only the syscall's exit matters.
 *
 * Lifecycle (every backend): sock:inet_sock_set_state follows each
 * connection; the conns map remembers who connected or accepted it, so the
 * outcome of a connect (established with its handshake latency, or failed
 * with sk_err) and its close (duration, bytes, who closed first) are
 * attributed to that process, not to whatever ran the softirq.
 */

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

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Filters, set by the loader before load so the verifier prunes what is
 * off. A zero means "no filter". */
const volatile __u8 filter_pid = 0;	/* 1: only tgids in pid_filter */
const volatile __u8 filter_port = 0;	/* 1: only if either port is in port_filter */
const volatile __u8 want_ipv4 = 1;
const volatile __u8 want_ipv6 = 1;
const volatile __u32 want_types = 0xffffffff; /* bit (1 << enum event_type) */
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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u8);
} port_filter SEC(".maps");

/* Threads inside connect(): pid_tgid -> the socket that entered SYN_SENT
 * during this call (0 until then). LRU so a lost exit cannot leak. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} connecting SEC(".maps");


static __always_inline bool pid_wanted(__u64 pid_tgid)
{
	__u32 tgid = pid_tgid >> 32;

	if (!filter_pid)
		return true;
	return bpf_map_lookup_elem(&pid_filter, &tgid) != NULL;
}

static __always_inline bool port_wanted(__u16 lport, __u16 rport)
{
	if (!filter_port)
		return true;
	return bpf_map_lookup_elem(&port_filter, &lport) ||
	       bpf_map_lookup_elem(&port_filter, &rport);
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

/* Both ends of a connection, host byte order ports. */
struct tuple {
	__u8 laddr[16];
	__u8 raddr[16];
	__u16 lport;
	__u16 rport;
	__u16 family;
};

/* Read a socket's tuple as it stands now; false if not an IP family. */
static __always_inline bool read_sock_tuple(struct sock *sk, struct tuple *t)
{
	t->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (t->family == AF_INET) {
		BPF_CORE_READ_INTO((__u32 *)t->laddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)t->raddr, sk, __sk_common.skc_daddr);
	} else if (t->family == AF_INET6) {
		BPF_CORE_READ_INTO((struct in6_addr *)t->laddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO((struct in6_addr *)t->raddr, sk, __sk_common.skc_v6_daddr);
	} else {
		return false;
	}
	/* inet_sport, not skc_num: the latter is cleared when a failed
	 * connect releases its port. */
	t->lport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	t->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	return true;
}

/* Who a connection belongs to: the process that connected or accepted it. */
struct owner {
	__u32 pid; /* 0: unknown (it predates tuxscope, or was never accepted) */
	__u32 tid;
	__u32 uid;
	char comm[16];
	__u64 cgroup_id;
};

static __always_inline void owner_current(struct owner *o, __u64 pid_tgid)
{
	o->pid = pid_tgid >> 32;
	o->tid = (__u32)pid_tgid;
	o->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(o->comm, sizeof(o->comm));
	o->cgroup_id = bpf_get_current_cgroup_id();
}

/* Reserve an event of this type for this tuple, unless the filters drop
 * it; the caller fills the rest and submits. NULL when filtered or lost. */
static __always_inline struct event *reserve_event(const struct tuple *t, __u8 type, const struct owner *o)
{
	struct event *e;

	if (!(want_types & (1U << type)))
		return NULL;
	if (t->family == AF_INET ? !want_ipv4 : !want_ipv6)
		return NULL;
	if (!port_wanted(t->lport, t->rport))
		return NULL;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	e->pid = o->pid;
	e->tid = o->tid;
	e->uid = o->uid;
	e->cgroup_id = o->cgroup_id;
	__builtin_memcpy(e->comm, o->comm, sizeof(e->comm));
	e->family = t->family;
	e->type = type;
	e->lport = t->lport;
	e->rport = t->rport;
	__builtin_memcpy(e->laddr, t->laddr, sizeof(e->laddr));
	__builtin_memcpy(e->raddr, t->raddr, sizeof(e->raddr));
	return e;
}

/* Emit a connect or accept event, attributed to the current task. */
static __always_inline void emit_event(const struct tuple *t, __u8 type, __u64 pid_tgid)
{
	struct owner o = {};
	struct event *e;

	owner_current(&o, pid_tgid);
	e = reserve_event(t, type, &o);
	if (!e)
		return;
	if (type == EVENT_ACCEPT)
		e->flags = FLAG_INBOUND;
	submit(e);
}

/* ---- lifecycle -------------------------------------------------------- */

struct conn {
	__u64 syn_ns;         /* connect: when it entered SYN_SENT */
	__u64 established_ns; /* 0: unknown */
	struct owner owner;
	__u8 inbound;
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
static __always_inline void conn_connecting(__u64 sk)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct conn c = {};

	if (!pid_wanted(pid_tgid))
		return;
	c.syn_ns = bpf_ktime_get_ns();
	owner_current(&c.owner, pid_tgid);
	bpf_map_update_elem(&conns, &sk, &c, BPF_ANY);
}

/* SYN_RECV -> ESTABLISHED, in softirq: owner unknown until accept(). */
static __always_inline void conn_passive_established(__u64 sk)
{
	struct conn c = {};

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

static __always_inline void connect_emit_early(struct sock *sk, __u64 key, const struct owner *o,
					       const struct tuple *t);

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
		connect_emit_early(sk, key, &c->owner, &t);
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
			e->duration_ns = e->ts_ns - c->established_ns;
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

/* ---- connect ---------------------------------------------------------- */

/*
 * The tracepoint path emits a connect when connect() returns. A blocking
 * connect returns after the handshake: then the connect is emitted at the
 * SYN_SENT -> ESTABLISHED or CLOSE change instead (the tuple is complete and
 * still intact there; a failed connect() clears it before returning), so
 * it always comes before its outcome, as with the function hooks. The low
 * bit of the connecting map's value records that it was.
 */
#define CONNECT_EMITTED 1ULL

static __always_inline void connect_enter(void)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 no_sock = 0;

	if (!pid_wanted(pid_tgid))
		return;
	bpf_map_update_elem(&connecting, &pid_tgid, &no_sock, BPF_ANY);
}

/* Called on every TCP state change; runs in the connecting thread for the
 * CLOSE -> SYN_SENT change made by tcp_v4_connect/tcp_v6_connect. */
static __always_inline void connect_syn_sent(const void *skaddr)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 *sk = bpf_map_lookup_elem(&connecting, &pid_tgid);

	if (sk)
		*sk = (__u64)skaddr;
}

static __always_inline void connect_exit(long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 *skp = bpf_map_lookup_elem(&connecting, &pid_tgid);
	struct tuple t = {};
	__u64 sk;

	if (!skp)
		return;
	sk = *skp;
	bpf_map_delete_elem(&connecting, &pid_tgid);
	/* No SYN_SENT during this call: not TCP, or it failed before a SYN
	 * left (EADDRNOTAVAIL, ENETUNREACH, EALREADY, ...). Or the handshake
	 * already ended and the connect was emitted then. */
	if (!sk || (sk & CONNECT_EMITTED))
		return;
	/* 0, EINPROGRESS, or e.g. EINTR: the socket is still connecting. */
	if (read_sock_tuple((struct sock *)sk, &t))
		emit_event(&t, EVENT_CONNECT, pid_tgid);
}

/* At the end of a handshake: emit the connect first if its thread is
 * still inside connect() (see CONNECT_EMITTED). */
static __always_inline void connect_emit_early(struct sock *sk, __u64 key, const struct owner *o, const struct tuple *t)
{
	__u64 pid_tgid = ((__u64)o->pid << 32) | o->tid;
	__u64 *skp = bpf_map_lookup_elem(&connecting, &pid_tgid);
	struct event *e;

	if (!skp || *skp != key)
		return;
	*skp = key | CONNECT_EMITTED;
	e = reserve_event(t, EVENT_CONNECT, o);
	if (e)
		submit(e);
}

SEC("tracepoint/syscalls/sys_enter_connect")
int tp_sys_enter_connect(struct syscall_enter_ctx *ctx)
{
	connect_enter();
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int tp_sys_exit_connect(struct syscall_exit_ctx *ctx)
{
	connect_exit(ctx->ret);
	return 0;
}

/* The only new states state_changed acts on. */
static __always_inline bool state_wanted(int newstate)
{
	return newstate == TCP_SYN_SENT || newstate == TCP_ESTABLISHED || newstate == TCP_CLOSE;
}

/* Every TCP state change, whatever the backend: the tracepoint connect
 * path's socket and tuple bookkeeping, and the lifecycle. */
static __always_inline void state_changed(struct sock *sk, int oldstate, int newstate)
{
	__u64 key = (__u64)sk;

	switch (oldstate) {
	case TCP_CLOSE:
		if (newstate == TCP_SYN_SENT) {
			connect_syn_sent(sk);
			conn_connecting(key);
		}
		break;
	case TCP_SYN_SENT:
		if (newstate == TCP_ESTABLISHED || newstate == TCP_CLOSE)
			conn_outcome(sk, key, newstate);
		break;
	case TCP_SYN_RECV:
		if (newstate == TCP_ESTABLISHED)
			conn_passive_established(key);
		else if (newstate == TCP_CLOSE)
			bpf_map_delete_elem(&conns, &key);
		break;
	case TCP_LISTEN:
	case TCP_NEW_SYN_RECV:
		break;
	default: /* an established connection, or one closing */
		if (newstate == TCP_CLOSE)
			conn_closed(sk, key, oldstate);
		break;
	}
}

/* The raw tracepoint: the same hook, but no trace-buffer record is built
 * for it, so it costs less per state change than the classic one. Its
 * arguments are inet_sock_set_state's own (sk, oldstate, newstate).
 *
 * The kernel does not run a program inside itself: a state change made in
 * a softirq that interrupts raw_inet_sock_set_state on the same CPU (e.g.
 * the peer's final ACK arriving over loopback while a close() is being
 * traced) skips it, and that change would be lost. So a second copy,
 * raw_inet_sock_set_state_nested, is attached after it: it does nothing
 * unless the first is running below it on this CPU, which is exactly when
 * the kernel skipped the first for this change. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} state_running SEC(".maps");

/* Changes raw_inet_sock_set_state_nested handled for a skipped first copy:
 * taken off the first copy's recursion misses when losses are reported. */
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

	/* About half of a connection's changes (FIN_WAIT1, CLOSE_WAIT, ...)
	 * matter to no one: skip them before reading the socket. */
	if (!state_wanted(newstate) || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return;
	state_changed(sk, (int)ctx->args[1], newstate);
}

SEC("raw_tp/inet_sock_set_state")
int raw_inet_sock_set_state(struct bpf_raw_tracepoint_args *ctx)
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
int raw_inet_sock_set_state_nested(struct bpf_raw_tracepoint_args *ctx)
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

/* The classic tracepoint: --backend tracepoint's, and the fallback where
 * the raw one cannot be attached. */
SEC("tracepoint/sock/inet_sock_set_state")
int tp_inet_sock_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (!state_wanted(ctx->newstate) || BPF_CORE_READ(ctx, protocol) != IPPROTO_TCP)
		return 0;
	state_changed((struct sock *)BPF_CORE_READ(ctx, skaddr), ctx->oldstate, ctx->newstate);
	return 0;
}

/* ---- connect: fentry and kprobe backends ------------------------------- */

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
int BPF_PROG(fexit_tcp_v4_connect, struct sock *sk, void *uaddr, int addr_len, int ret)
{
	connect_returned(sk, ret, true);
	return 0;
}

SEC("fexit/tcp_v6_connect")
int BPF_PROG(fexit_tcp_v6_connect, struct sock *sk, void *uaddr, int addr_len, int ret)
{
	connect_returned(sk, ret, false);
	return 0;
}

/* kprobe: the socket argument, kept from entry to return, per thread
 * (tcp_v6_connect and its inner tcp_v4_connect share the same sk). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} kprobe_connect_sk SEC(".maps");

static __always_inline void kprobe_connect_entry(struct sock *sk)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 v = (__u64)sk;

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

SEC("kprobe/tcp_v4_connect")
int BPF_KPROBE(kprobe_tcp_v4_connect, struct sock *sk)
{
	kprobe_connect_entry(sk);
	return 0;
}

SEC("kretprobe/tcp_v4_connect")
int BPF_KRETPROBE(kretprobe_tcp_v4_connect, int ret)
{
	kprobe_connect_return(ret, true);
	return 0;
}

SEC("kprobe/tcp_v6_connect")
int BPF_KPROBE(kprobe_tcp_v6_connect, struct sock *sk)
{
	kprobe_connect_entry(sk);
	return 0;
}

SEC("kretprobe/tcp_v6_connect")
int BPF_KRETPROBE(kretprobe_tcp_v6_connect, int ret)
{
	kprobe_connect_return(ret, false);
	return 0;
}

/* ---- accept ----------------------------------------------------------- */

/*
 * fexit/kretprobe on inet_csk_accept see each accept as it returns, in the
 * accepting process. They cannot see an accept() that was already waiting
 * when they were attached: its return does not pass through the probe. So
 * the syscall-exit tracepoint stays attached beside them as a catch-up, and
 * emits only accepts the function hook did not (accept_seen).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} accept_seen SEC(".maps");

static __always_inline void accept_returned(struct sock *sk)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct tuple t = {};
	__u8 one = 1;

	/* kernel_accept() from kernel threads: not a process's accept */
	if (!sk || (BPF_CORE_READ(task, flags) & PF_KTHREAD))
		return;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return;
	bpf_map_update_elem(&accept_seen, &pid_tgid, &one, BPF_ANY);
	conn_accepted(sk, pid_tgid);
	if (!pid_wanted(pid_tgid))
		return;
	if (read_sock_tuple(sk, &t))
		emit_event(&t, EVENT_ACCEPT, pid_tgid);
}

/* inet_csk_accept changed its signature in Linux 6.10; the loader picks the
 * program matching the running kernel's BTF. */
SEC("fexit/inet_csk_accept")
int BPF_PROG(fexit_inet_csk_accept, struct sock *sk, void *arg, struct sock *ret)
{
	accept_returned(ret);
	return 0;
}

SEC("fexit/inet_csk_accept")
int BPF_PROG(fexit_inet_csk_accept_pre610, struct sock *sk, int flags, int *err, bool kern, struct sock *ret)
{
	accept_returned(ret);
	return 0;
}

SEC("kretprobe/inet_csk_accept")
int BPF_KRETPROBE(kretprobe_inet_csk_accept, struct sock *ret)
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

static __always_inline void accept_exit(long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct tuple t = {};
	struct sock *sk;

	if (bpf_map_lookup_elem(&accept_seen, &pid_tgid)) {
		bpf_map_delete_elem(&accept_seen, &pid_tgid);
		return; /* a function hook reported it */
	}
	if (ret < 0 || !pid_wanted(pid_tgid))
		return;
	sk = sock_from_fd(ret);
	if (!sk)
		return;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP ||
	    BPF_CORE_READ(sk, sk_type) != SOCK_STREAM)
		return;
	conn_accepted(sk, pid_tgid);
	if (read_sock_tuple(sk, &t))
		emit_event(&t, EVENT_ACCEPT, pid_tgid);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int tp_sys_exit_accept4(struct syscall_exit_ctx *ctx)
{
	accept_exit(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int tp_sys_exit_accept(struct syscall_exit_ctx *ctx)
{
	accept_exit(ctx->ret);
	return 0;
}

/* ---- DNS -------------------------------------------------------------- */

/*
 * DNS messages are read off socket buffers by cgroup_skb programs on the
 * root cgroup v2 (they see every socket's packets, in every network
 * namespace, without kprobes), and attributed through the socket cookie to
 * the process that connected or sent to port 53: the cgroup sock_addr
 * hooks run in that process.
 */
#define IPPROTO_UDP 17
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define DNS_PORT 53

struct dns_owner {
	struct owner owner;
};

/* socket cookie -> who talks DNS through it */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct dns_owner);
} dns_owners SEC(".maps");

struct dns_event *unused_dns_event __attribute__((unused));

static __always_inline void dns_owner_record(__u64 cookie, __u16 port_be)
{
	struct dns_owner o = {};

	if (bpf_ntohs(port_be) != DNS_PORT)
		return;
	owner_current(&o.owner, bpf_get_current_pid_tgid());
	bpf_map_update_elem(&dns_owners, &cookie, &o, BPF_ANY);
}

/* sock_addr hooks: connect() and sendto()/sendmsg() with an address. */
SEC("cgroup/connect4")
int dns_connect4(struct bpf_sock_addr *ctx)
{
	dns_owner_record(bpf_get_socket_cookie(ctx), (__u16)ctx->user_port);
	return 1;
}

SEC("cgroup/connect6")
int dns_connect6(struct bpf_sock_addr *ctx)
{
	dns_owner_record(bpf_get_socket_cookie(ctx), (__u16)ctx->user_port);
	return 1;
}

SEC("cgroup/sendmsg4")
int dns_sendmsg4(struct bpf_sock_addr *ctx)
{
	dns_owner_record(bpf_get_socket_cookie(ctx), (__u16)ctx->user_port);
	return 1;
}

SEC("cgroup/sendmsg6")
int dns_sendmsg6(struct bpf_sock_addr *ctx)
{
	dns_owner_record(bpf_get_socket_cookie(ctx), (__u16)ctx->user_port);
	return 1;
}

/* Parse the IP and transport headers of a cgroup_skb packet (it starts at
 * the network header) and copy a DNS payload to the ring buffer. */
static __always_inline void dns_capture(struct __sk_buff *skb, __u8 direction)
{
	__u32 l4off, payload_off, len, n;
	__u8 proto, hdr[40], ports[4], tcpoff;
	__u16 sport, dport, port, family;
	__u8 saddr[16] = {}, daddr[16] = {};
	struct dns_owner *o;
	struct dns_event *e;
	__u64 cookie;

	/* Every packet of every socket passes here: decide on the ports with
	 * as few loads as possible, and read the rest only for DNS. */
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, 0, hdr, 20))
			return;
		proto = hdr[9];
		l4off = (hdr[0] & 0xf) * 4;
		family = AF_INET;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		/* No extension headers: DNS packets carry none in practice. */
		if (bpf_skb_load_bytes(skb, 0, hdr, 40))
			return;
		proto = hdr[6];
		l4off = 40;
		family = AF_INET6;
	} else {
		return;
	}
	if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
		return;
	if (bpf_skb_load_bytes(skb, l4off, ports, sizeof(ports)))
		return;
	sport = (ports[0] << 8) | ports[1];
	dport = (ports[2] << 8) | ports[3];
	port = direction == DNS_QUERY ? dport : sport;
	if (port != DNS_PORT)
		return;
	if (family == AF_INET) {
		__builtin_memcpy(saddr, hdr + 12, 4);
		__builtin_memcpy(daddr, hdr + 16, 4);
	} else {
		__builtin_memcpy(saddr, hdr + 8, 16);
		__builtin_memcpy(daddr, hdr + 24, 16);
	}
	if (proto == IPPROTO_TCP) {
		if (bpf_skb_load_bytes(skb, l4off + 12, &tcpoff, 1))
			return;
		payload_off = l4off + (tcpoff >> 4) * 4;
	} else {
		payload_off = l4off + 8;
	}
	if (skb->len <= payload_off)
		return; /* a bare TCP ACK, SYN or FIN */
	len = skb->len - payload_off;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return;
	}
	__builtin_memset(e, 0, offsetof(struct dns_event, data));
	e->ts_ns = bpf_ktime_get_ns();
	e->type = EVENT_DNS;
	e->direction = direction;
	e->family = family;
	e->protocol = proto;
	cookie = bpf_get_socket_cookie(skb);
	e->cookie = cookie;
	e->cgroup_id = bpf_skb_cgroup_id(skb);
	/* local/remote as seen by the local socket */
	if (direction == DNS_QUERY) {
		e->lport = sport;
		e->rport = dport;
		__builtin_memcpy(e->laddr, saddr, 16);
		__builtin_memcpy(e->raddr, daddr, 16);
	} else {
		e->lport = dport;
		e->rport = sport;
		__builtin_memcpy(e->laddr, daddr, 16);
		__builtin_memcpy(e->raddr, saddr, 16);
	}
	o = bpf_map_lookup_elem(&dns_owners, &cookie);
	if (o) {
		e->pid = o->owner.pid;
		e->tid = o->owner.tid;
		e->uid = o->owner.uid;
		__builtin_memcpy(e->comm, o->owner.comm, sizeof(e->comm));
	}
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

/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * Lifecycle (every backend): sock:inet_sock_set_state (state.bpf.h)
 * follows each connection; the conns map remembers who connected or
 * accepted it, so the outcome of a connect (established with its handshake
 * latency, or failed with sk_err) is attributed to that process, not to
 * whatever ran the softirq. Its close (duration, bytes, who closed first)
 * is attributed to the process that held the socket and closed it
 * (conn_held, at close() or shutdown()), with the opener kept when that
 * is another; a connection older than tuxscope is adopted there.
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
	/* Who holds it: who connected or accepted it, until another process
	 * closes it (a forked child serving an accepted connection, say). */
	struct owner owner;
	__u32 opener_pid;     /* when owner is not the opener: who connected or accepted */
	char opener_comm[16];
	__u8 inbound;
	__u8 accepted_early;  /* accepted in SYN_RECV (a Fast Open child): its handshake's end keeps the owner */
	__u8 connect_pending; /* no connect(2) will emit its connect (io_uring, Fast Open): the outcome does */
	__u8 reset_sent;      /* this side sent a reset on it (health.bpf.h) */
	/* Retransmit coalescing (health.bpf.h): when its last retransmit
	 * event was emitted (0: none yet), and the socket's total_retrans
	 * that the events emitted so far account for. */
	__u64 retrans_ns;
	__u32 retrans_base;
	/* The socket's inode number (sock_diag's idiag_inode), once a process
	 * holds it: how user space finds the connection in a sock_diag dump
	 * (--updates); 0 until then (an accepted connection's handshake end
	 * runs before accept()). */
	__u32 ino;
};

/* sk's socket inode number, 0 if no socket holds it (not yet accepted, or
 * orphaned by close()). Truncated to 32 bits, as sock_diag reports it. */
static __always_inline __u32 sock_ino(struct sock *sk)
{
	struct socket *sock = BPF_CORE_READ(sk, sk_socket);

	if (!sock)
		return 0;
	return BPF_CORE_READ((struct socket_alloc *)sock, vfs_inode.i_ino);
}

/*
 * sock -> conn, for every connection the filters select, seen starting
 * (or closing, for one older than tuxscope). A plain hash, not an LRU: an
 * LRU would silently evict live connections when full. Entries are
 * allocated as they are used (the loader sizes the table, --conn-table);
 * an insert that finds it full is counted in conns_full and reported as
 * lost. A close deletes its entry; the rare entry whose close the kernel
 * skipped (reported as hook_skipped) is overwritten when its socket's
 * memory is reused for the next connection (connect and the passive
 * handshake's end write theirs whatever was there).
 *
 * Not socket local storage (BPF_MAP_TYPE_SK_STORAGE), measured: only
 * tracing programs (fentry, tp_btf) may call bpf_sk_storage_get, and the
 * classic tracepoints and raw tracepoints that read this table (accept
 * where fexit is refused, the health points) may not; and on the 6.18 host
 * a tp_btf program doing this table's work per loopback connection (2
 * creates, 7 gets, 2 deletes) took 2,700-3,550 ns per connection with
 * sk storage, 2,600-3,000 leaving the entry to die with the socket, and
 * 1,450-2,000 with this hash. Nor preallocated (where allocation in
 * tracing programs is safe): raw_state cost the same either way.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct conn);
} conns SEC(".maps");

/* Sockets not tracked because conns was full (or the insert failed
 * otherwise), counted once each: at connect or accept. Each costs its
 * outcome event or its close's owner. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} conns_full SEC(".maps");

static __always_inline void conns_full_count(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&conns_full, &zero);

	if (n)
		*n += 1;
}

static __always_inline void conn_insert(__u64 key, const struct conn *c)
{
	if (bpf_map_update_elem(&conns, &key, c, BPF_ANY))
		conns_full_count();
}

static __always_inline __u32 min_u32(__u32 a, __u32 b)
{
	return a < b ? a : b;
}

/* Segments the socket retransmitted so far (SYNs included). */
static __always_inline __u32 tcp_total_retrans(struct sock *sk)
{
	return BPF_CORE_READ((struct tcp_sock *)sk, total_retrans);
}

/* Whether the family and port filters select this connection (the pid
 * filter is the caller's): only those take room in conns, so heavy
 * traffic elsewhere cannot crowd out what the user watches. At SYN_SENT
 * an unbound socket's local port is still 0; its remote port is known. */
static __always_inline bool conn_selected(struct sock *sk)
{
	__u16 family;

	if (!filter_port && want_ipv4 && want_ipv6)
		return true;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family == AF_INET ? !want_ipv4 : !want_ipv6)
		return false;
	return port_wanted(bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport)),
			   bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport)));
}

/* A socket accepted from a listener keeps the listener's backlog (the
 * kernel clones the listener to make it), a connected one has none: so a
 * connection tuxscope did not see start still tells its direction, even
 * after its listener closed. (A listener made with backlog 0 is missed.) */
static __always_inline __u8 conn_was_accepted(struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_max_ack_backlog) > 0;
}

/* In the connecting thread, at CLOSE -> SYN_SENT. */
static __always_inline void conn_connecting(struct sock *sk, __u64 key, bool connect_pending)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct conn c = {};

	if (!pid_wanted(pid_tgid) || !conn_selected(sk))
		return;
	c.syn_ns = bpf_ktime_get_ns();
	c.connect_pending = connect_pending;
	c.ino = sock_ino(sk);
	owner_current(&c.owner, pid_tgid);
	conn_insert(key, &c);
}

/* The handshake's end of a connection accept() took in SYN_RECV (c,
 * accepted_early): it keeps its owner, and its duration starts now. */
static __always_inline bool conn_early_established(struct conn *c)
{
	if (!c || !c->accepted_early)
		return false;
	c->established_ns = bpf_ktime_get_ns();
	c->accepted_early = 0;
	return true;
}

/* SYN_RECV -> ESTABLISHED, in softirq: owner unknown until accept(). A
 * full table is not counted here: accept() tries again, and counts. */
static __always_inline void conn_passive_established(struct sock *sk, __u64 key)
{
	struct conn c = {};

	/* An entry exists only if accept() made it (below: conn_accepted
	 * checks conn_selected too), or if the kernel skipped the close of
	 * the socket that had this memory before. */
	if (!conn_selected(sk))
		return;
	c.established_ns = bpf_ktime_get_ns();
	c.inbound = 1;
	/* The child counts its SYN-ACK's retransmits (reported apart, from
	 * tcp_retransmit_synack): its own start after them. */
	c.retrans_base = tcp_total_retrans(sk);
	/* The usual case first: no entry yet, one walk of the bucket. */
	if (!bpf_map_update_elem(&conns, &key, &c, BPF_NOEXIST))
		return;
	/* A Fast Open child is accepted while still in SYN_RECV (its SYN
	 * brought data): keep who accepted it. Else an entry whose close the
	 * kernel skipped, replaced. */
	if (!conn_early_established(bpf_map_lookup_elem(&conns, &key)))
		bpf_map_update_elem(&conns, &key, &c, BPF_ANY);
}

/* accept() returned sk to the current task: it owns the connection.
 * Called for every accept, so that the entry the handshake's end made for
 * a process the filters do not select is dropped here, not kept until its
 * close; returns whether the process is selected (its accept is shown),
 * and fills o with it as owner (read once, for the entry and the event). */
static __always_inline bool conn_accepted(struct sock *sk, __u64 pid_tgid, struct owner *o)
{
	__u64 key = (__u64)sk;
	struct conn *c = bpf_map_lookup_elem(&conns, &key);
	struct conn fresh = {};
	__u8 state;

	if (!pid_wanted(pid_tgid)) {
		if (c)
			bpf_map_delete_elem(&conns, &key);
		return false;
	}
	owner_current(o, pid_tgid);
	if (!c) {
		/* Established before we attached (duration unknown), or a Fast
		 * Open child still in SYN_RECV. Not one the peer already reset
		 * in the accept queue: its close was reported, and nothing
		 * would ever delete its entry. */
		state = BPF_CORE_READ(sk, __sk_common.skc_state);
		if (state == TCP_CLOSE || !conn_selected(sk))
			return true;
		fresh.inbound = 1;
		fresh.accepted_early = state == TCP_SYN_RECV;
		fresh.retrans_base = tcp_total_retrans(sk);
		fresh.ino = sock_ino(sk);
		fresh.owner = *o;
		if (!bpf_map_update_elem(&conns, &key, &fresh, BPF_NOEXIST))
			return true;
		/* Its handshake ended on another CPU since the lookup above
		 * (a Fast Open child) and inserted it: own that entry. */
		c = bpf_map_lookup_elem(&conns, &key);
		if (!c) {
			conns_full_count();
			return true;
		}
	}
	if (!c->owner.pid)
		c->owner = *o;
	c->ino = sock_ino(sk);
	return true;
}

/*
 * close() or shutdown() is ending the connection: ESTABLISHED ->
 * FIN_WAIT1 (this side first), CLOSE_WAIT -> LAST_ACK (the peer first), or
 * a reset this side sends. These run in the process that held the
 * socket's last reference, so it becomes the owner the close is
 * attributed to; the one that connected or accepted, if another (a server
 * that forks after accept), is kept as the opener. A connection older
 * than tuxscope is adopted here. Returns the entry, NULL if none.
 */
static __always_inline struct conn *conn_held(struct sock *sk, __u64 key)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct conn *c = bpf_map_lookup_elem(&conns, &key);
	struct task_struct *task;
	struct conn fresh = {};

	if (c && c->owner.pid == pid_tgid >> 32)
		return c; /* the usual case: its opener closes it */
	task = (struct task_struct *)bpf_get_current_task();
	if (BPF_CORE_READ(task, flags) & PF_KTHREAD)
		return c; /* a kernel thread's socket work, not a process's close */
	if (c) {
		if (c->owner.pid && !c->opener_pid) {
			c->opener_pid = c->owner.pid;
			__builtin_memcpy(c->opener_comm, c->owner.comm, sizeof(c->opener_comm));
		}
		owner_current(&c->owner, pid_tgid);
		return c;
	}
	if (!pid_wanted(pid_tgid) || !conn_selected(sk))
		return NULL;
	fresh.inbound = conn_was_accepted(sk);
	fresh.retrans_base = tcp_total_retrans(sk);
	fresh.ino = sock_ino(sk);
	owner_current(&fresh.owner, pid_tgid);
	/* Not counted when the table is full: a socket whose connect or
	 * accept found it full was counted then, and this close is still
	 * reported (with the socket's uid and direction). */
	if (bpf_map_update_elem(&conns, &key, &fresh, BPF_ANY))
		return NULL;
	return bpf_map_lookup_elem(&conns, &key);
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
		__u8 type = newstate == TCP_ESTABLISHED ? EVENT_ESTABLISHED : EVENT_FAILED;
		bool early = connect_due_early(key, &c->owner, c->connect_pending);
		bool tuple_ok = tuple_wanted(&t);
		bool want_out = tuple_ok && (want_types & (1U << type));
		bool want_conn = early && tuple_ok && (want_types & (1U << EVENT_CONNECT));

		/* One reservation: the outcome's record, standing for the
		 * connect before it too when that is due (FLAG_WITH_CONNECT),
		 * or the connect's own when the outcome is filtered out. A
		 * single reserve site also keeps 5.10's verifier sure that
		 * every path submits what it reserved. */
		if (want_out || want_conn) {
			e = reserve_record(sizeof(*e));
			if (!e) {
				if (want_out && want_conn)
					count_lost(); /* the connect it stood for, too */
			} else {
				__builtin_memset(e, 0, sizeof(*e));
				fill_header(&e->hdr, want_out ? type : EVENT_CONNECT, &c->owner, &t);
				if (want_out) {
					if (want_conn)
						e->flags = FLAG_WITH_CONNECT;
					e->latency_ns = now - c->syn_ns;
					if (newstate != TCP_ESTABLISHED) /* 0: closed before the handshake finished */
						e->error = BPF_CORE_READ(sk, sk_err);
					else /* only the SYN can have been retransmitted yet */
						e->syn_retrans = min_u32(tcp_total_retrans(sk), 255);
				}
				submit(e);
			}
		}
	}
	if (newstate != TCP_ESTABLISHED)
		bpf_map_delete_elem(&conns, &key);
}

/*
 * Retransmit events are coalesced per connection: at most one per
 * retrans_window_ns (the loader sets it from --max-delay), each counting
 * the segments retransmitted since the last (the socket's total_retrans
 * moved on by that much). What a window held back is counted by the next
 * one, or, at the latest, by one emitted just before the close.
 */
const volatile __u64 retrans_window_ns = 100000000;

/* Emit a retransmit event for c's socket: the segments retransmitted
 * since the last one (total - its base). */
static __always_inline void retransmit_emit(struct sock *sk, struct conn *c, __u32 total, __u64 now)
{
	struct owner unknown = {};
	struct tuple t = {};
	struct event *e;

	if (!read_sock_tuple(sk, &t))
		return;
	if (!c->owner.pid)
		unknown.uid = BPF_CORE_READ(sk, sk_uid.val);
	e = reserve_event(&t, EVENT_RETRANSMIT, c->owner.pid ? &c->owner : &unknown);
	if (!e)
		return; /* counted as lost; the close still has retrans_segs */
	e->retransmits = total - c->retrans_base;
	e->retrans_segs = total;
	e->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	if (c->inbound)
		e->flags = FLAG_INBOUND;
	e->cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	submit(e);
	c->retrans_base = total;
	c->retrans_ns = now;
}

/*
 * The socket a close was just reported for on this CPU, with its owner:
 * a reset this side sends as it closes (close() with unread data or
 * SO_LINGER 0, tcp_disconnect) is traced just after the socket reached
 * CLOSE, on the same CPU, when its conns entry is gone (health.bpf.h).
 */
struct closed_sock {
	__u64 sk;
	struct owner owner;
	__u8 state;	/* the state it closed from */
	__u8 inbound;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct closed_sock);
} last_closed SEC(".maps");

/*
 * The same for a connection this side closed straight from ESTABLISHED or
 * CLOSE_WAIT (local_reset below), whose reset always follows: by socket,
 * because the closing task may be preempted and moved to another CPU, or
 * the CPU may close another connection in a softirq, before the reset is
 * traced (seen under qemu). snd_nxt tells a reused socket from this one
 * (the reset carries it; a new connection starts at a random one). LRU:
 * an entry whose reset never came (no memory for it, repair mode) ages
 * out.
 */
struct resetting_sock {
	struct closed_sock last;
	__u32 snd_nxt;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct resetting_sock);
} resetting SEC(".maps");

/* Any established connection reaching CLOSE. oldstate tells who closed
 * first: the side that sent the first FIN (or a reset). */
static __always_inline void conn_closed(struct sock *sk, __u64 key, int oldstate)
{
	int err = BPF_CORE_READ(sk, sk_err);
	/* Straight from ESTABLISHED or CLOSE_WAIT to CLOSE with no error: this
	 * side reset it (close() with unread data, SO_LINGER 0), in the
	 * closing process. A received reset sets sk_err first. */
	bool local_reset = !err && (oldstate == TCP_ESTABLISHED || oldstate == TCP_CLOSE_WAIT);
	struct conn *c = local_reset ? conn_held(sk, key) : bpf_map_lookup_elem(&conns, &key);
	struct owner unknown = {};
	struct tuple t = {};
	struct event *e;
	struct closed_sock *last;
	__u32 zero = 0, total;

	if (!c && task_filter_on())
		return;
	if (c && !c->owner.pid && task_filter_on()) {
		bpf_map_delete_elem(&conns, &key);
		return;
	}
	if (!read_sock_tuple(sk, &t))
		goto out;
	total = tcp_total_retrans(sk);
	/* Retransmits a window held back: counted before the close. */
	if (c && c->retrans_ns && total != c->retrans_base)
		retransmit_emit(sk, c, total, bpf_ktime_get_ns());
	/* A reset this side sends as it closes comes next (tcp_send_reset,
	 * on this CPU): keep whose it is. */
	if (!err && c && c->owner.pid) {
		last = bpf_map_lookup_elem(&last_closed, &zero);
		if (last) {
			last->sk = key;
			last->owner = c->owner;
			last->state = oldstate;
			last->inbound = c->inbound;
			if (local_reset && (want_types & (1U << EVENT_RESET))) {
				struct resetting_sock r = { .last = *last };

				r.snd_nxt = BPF_CORE_READ((struct tcp_sock *)sk, snd_nxt);
				bpf_map_update_elem(&resetting, &key, &r, BPF_ANY);
			}
		}
	}
	if (!c || !c->owner.pid) /* no process known: at least the socket's user */
		unknown.uid = BPF_CORE_READ(sk, sk_uid.val);
	e = reserve_event(&t, EVENT_CLOSE, c && c->owner.pid ? &c->owner : &unknown);
	if (!e)
		goto out;
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
		/* ... unless this side sent one first (tcp_abort, ss -K:
		 * ECONNABORTED; out of memory or orphans) */
		e->flags = err && !(c && c->reset_sent) ? FLAG_CLOSED_REMOTE : FLAG_CLOSED_LOCAL;
		break;
	}
	if (local_reset || err == ECONNRESET || err == EPIPE || (c && c->reset_sent))
		e->flags |= FLAG_RESET;
	if (c ? c->inbound : conn_was_accepted(sk))
		e->flags |= FLAG_INBOUND;
	if (c) {
		if (c->established_ns)
			e->duration_ns = e->hdr.ts_ns - c->established_ns;
		if (c->opener_pid) {
			e->opener_pid = c->opener_pid;
			__builtin_memcpy(e->opener_comm, c->opener_comm, sizeof(e->opener_comm));
		}
	}
	/* Data bytes only, each once: TCP's counters also count a received
	 * FIN as a byte, and retransmissions. */
	if (bpf_core_field_exists(((struct tcp_sock *)sk)->bytes_retrans))
		e->bytes_retrans = BPF_CORE_READ((struct tcp_sock *)sk, bytes_retrans);
	e->bytes_sent = BPF_CORE_READ((struct tcp_sock *)sk, bytes_sent) - e->bytes_retrans;
	e->bytes_received = BPF_CORE_READ((struct tcp_sock *)sk, bytes_received);
	if (e->bytes_received && (BPF_CORE_READ(sk, __sk_common.skc_flags) & (1UL << SOCK_DONE)))
		e->bytes_received--;
	e->cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	/* Its health, as tcp_info (ss -ti) would report it. */
	e->srtt_us = BPF_CORE_READ((struct tcp_sock *)sk, srtt_us) >> 3;
	e->rttvar_us = BPF_CORE_READ((struct tcp_sock *)sk, mdev_us) >> 2;
	e->retrans_segs = total;
	submit(e);
out:
	if (c)
		bpf_map_delete_elem(&conns, &key);
}

#endif

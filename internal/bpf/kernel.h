/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * The few kernel structures tuxscope reads, with only the fields it uses.
 * preserve_access_index makes every access a CO-RE relocation: the loader
 * rewrites each offset against the running kernel's BTF, so these are not
 * layouts, only names. No hard-coded offsets anywhere.
 */
#ifndef TUXSCOPE_KERNEL_H
#define TUXSCOPE_KERNEL_H

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define SOCK_STREAM 1

/* include/net/tcp_states.h: stable values, also the tracepoint's ABI. */
enum {
	TCP_ESTABLISHED = 1,
	TCP_SYN_SENT = 2,
	TCP_SYN_RECV = 3,
	TCP_FIN_WAIT1 = 4,
	TCP_FIN_WAIT2 = 5,
	TCP_TIME_WAIT = 6,
	TCP_CLOSE = 7,
	TCP_CLOSE_WAIT = 8,
	TCP_LAST_ACK = 9,
	TCP_LISTEN = 10,
	TCP_CLOSING = 11,
	TCP_NEW_SYN_RECV = 12,
};

#define EINPROGRESS 115
#define EPIPE 32
#define ECONNRESET 104
#define PF_KTHREAD 0x00200000 /* include/linux/sched.h, unchanged since 2.6 */

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct in6_addr {
	union {
		__u8 u6_addr8[16];
	} in6_u;
};

struct ns_common {
	unsigned int inum;
};

/* A network namespace: only its cookie. Linux 5.12 and later set it when
 * the namespace is made; 5.7 to 5.11 keep it in an atomic64_t, set the
 * first time someone asks for it (bpf_get_netns_cookie does). */
struct net {
	struct ns_common ns; /* ns.inum: the namespace's inode */
	__u64 net_cookie;
};

struct net___atomic_cookie {
	struct {
		__s64 counter;
	} net_cookie;
};

struct sock_common {
	union {
		struct {
			__be32 skc_daddr;
			__be32 skc_rcv_saddr;
		};
	};
	union {
		struct {
			__be16 skc_dport;
			__u16 skc_num;
		};
	};
	unsigned short skc_family;
	volatile unsigned char skc_state;
	unsigned char skc_ipv6only : 1; /* a bitfield: read with BPF_CORE_READ_BITFIELD_PROBED */
	int skc_bound_dev_if;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
	struct {
		__s64 counter;
	} skc_cookie;
	union {
		unsigned long skc_flags; /* sk_flags: enum sock_flags bits */
	};
	struct {
		struct net *net;
	} skc_net; /* possible_net_t; empty without CONFIG_NET_NS */
};

typedef struct {
	__u32 val;
} kuid_t;

struct socket;

struct sock {
	struct sock_common __sk_common;
	__u16 sk_type;
	__u16 sk_protocol;
	int sk_err;
	/* A listener's backlog; an accepted socket keeps its listener's
	 * (sk_clone_lock copies the whole sock), a connected one has 0. */
	__u32 sk_max_ack_backlog;
	kuid_t sk_uid; /* who created the socket (fsuid at socket()) */
	struct socket *sk_socket; /* NULL until accepted, and once orphaned */
};

/* A half-open inbound connection (struct request_sock): its addresses
 * and ports are its sock_common's, skc_num being the local port. */
struct request_sock {
	struct sock_common __req_common;
};

/* enum sock_flags, include/net/sock.h: bit numbers, unchanged since 2.6 */
#define SOCK_DONE 1 /* set by tcp_fin(): the peer's FIN was received */

struct tcp_sock {
	__u64 bytes_received; /* sum of rcv_nxt advances: data, plus 1 for a FIN */
	__u64 bytes_sent;     /* payload bytes transmitted, retransmits included */
	__u64 bytes_retrans;  /* payload bytes retransmitted */
	__u32 srtt_us;	      /* smoothed RTT << 3, in µs (tcp_info: srtt_us >> 3) */
	__u32 mdev_us;	      /* its mean deviation << 2 (tcp_info: mdev_us >> 2) */
	__u32 total_retrans;  /* segments retransmitted, SYNs included */
	__u32 snd_nxt;	      /* next sequence number to send */
};

/* inet_sport survives the port release that follows a failed connect,
 * unlike skc_num, so it is the local port we report. */
struct inet_sock {
	struct sock sk;
	__be16 inet_sport;
};

struct socket {
	struct sock *sk;
};

struct inode {
	unsigned long i_ino;
};

/* sockfs allocates a socket and its inode together (SOCK_INODE()): the
 * inode's number is what sock_diag's idiag_inode and /proc's socket:[N]
 * show. */
struct socket_alloc {
	struct socket socket;
	struct inode vfs_inode;
};

struct file {
	void *private_data;
};

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
};

struct files_struct {
	struct fdtable *fdt;
};

/* A task's cgroup v2 and its ancestors (the cgroup filter): the id is
 * the cgroup directory's kernfs node id (a u64 since Linux 5.5), what
 * bpf_get_current_cgroup_id returns; a cgroup's first member is its own
 * css, whose parent is the parent cgroup's. */
struct kernfs_node {
	__u64 id;
};

struct cgroup_subsys_state {
	struct cgroup_subsys_state *parent;
};

struct cgroup {
	struct cgroup_subsys_state self;
	int level;
	struct kernfs_node *kn;
};

struct css_set {
	struct cgroup *dfl_cgrp;
};

struct task_struct {
	unsigned int flags;
	struct files_struct *files;
	struct task_struct *group_leader;
	char comm[16];
	struct css_set *cgroups;
};

/*
 * A kprobe's registers, for bpf_tracing.h's BPF_KPROBE: the kernel's own
 * names (the loader relocates them like any field), declared here instead
 * of taken from an architecture's UAPI <asm/ptrace.h>, so one source
 * builds for every target. bpf_tracing.h picks these names when
 * __VMLINUX_H__ is defined (tuxscope.bpf.c does).
 */
#if defined(__TARGET_ARCH_x86)
struct pt_regs {
	unsigned long r10, r8, ax, cx, dx, si, di, ip, sp, bp;
	unsigned long orig_ax; /* the system call a thread is in */
};
#define SYSCALL_NR(regs) BPF_CORE_READ((regs), orig_ax)
#elif defined(__TARGET_ARCH_arm64)
struct user_pt_regs {
	__u64 regs[31];
	__u64 sp;
	__u64 pc;
	__u64 pstate;
};
/* The kernel's own, around user_pt_regs: only the system call a thread
 * is in. */
struct pt_regs {
	int syscallno;
};
#define SYSCALL_NR(regs) BPF_CORE_READ((regs), syscallno)
#else
#error "tuxscope's BPF programs are built for x86 and arm64 (bpf2go -target amd64,arm64)"
#endif

/* Context of the classic tracepoint sock:inet_sock_set_state. */
struct trace_event_raw_inet_sock_set_state {
	const void *skaddr;
	int oldstate;
	int newstate;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u16 protocol;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
};

/* A completion queue entry (include/uapi/linux/io_uring.h). */
struct io_uring_cqe {
	__s32 res;
};

/* An io_uring request: opcode is the SQE's (IORING_OP_*). */
struct io_kiocb {
	__u8 opcode;
};

#pragma clang attribute pop

/* include/uapi/linux/io_uring.h: stable ABI since Linux 5.5. */
#define IORING_OP_ACCEPT 13

/*
 * Contexts of the syscall tracepoints. These are not kernel structs but the
 * tracepoints' record formats (events/syscalls/sys_{enter,exit}_X/format),
 * a stable ABI: 8 bytes of common fields, the syscall number, then one
 * 8-byte slot per argument, or the return value.
 */
struct syscall_enter_ctx {
	__u64 common;
	__s32 syscall_nr;
	__u32 _pad;
	__u64 args[6];
};

struct syscall_exit_ctx {
	__u64 common;
	__s32 syscall_nr;
	__u32 _pad;
	__s64 ret;
};

/*
 * Contexts of the classic tcp: tracepoints tuxscope uses, only their
 * first fields, which every kernel since 4.16 lays out alike (8 bytes of
 * common fields, then the pointers); the rest changed (6.10 split
 * tcp_send_reset into an event class of its own). Not CO-RE: these are
 * the tracepoints' record formats, not kernel structs.
 */
struct tp_sk_skb_ctx {	/* tcp_retransmit_skb, tcp_send_reset */
	__u64 common;
	const void *skbaddr;
	const void *skaddr;
};

struct tp_sk_ctx {	/* tcp_receive_reset */
	__u64 common;
	const void *skaddr;
};

struct tp_synack_ctx {	/* tcp_retransmit_synack */
	__u64 common;
	const void *skaddr;
	const void *req;
};

#endif

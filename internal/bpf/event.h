/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * The record the kernel side hands to user space through the ring buffer.
 * This header is the single source of truth for its layout: bpf2go turns
 * struct event into a Go type (-type event), so there is no hand-kept copy.
 */
#ifndef TUXSCOPE_EVENT_H
#define TUXSCOPE_EVENT_H

enum event_type {
	EVENT_CONNECT = 1, /* connect() returned: SYN sent (or handshake done) */
	EVENT_ACCEPT = 2,  /* accept()/accept4() returned a new connection */
};

struct event {
	__u64 ts_ns;	/* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 pid;	/* tgid of the process that made the syscall */
	__u32 tid;
	__u32 uid;
	__u16 family;	/* AF_INET or AF_INET6 (dual-stack sockets are AF_INET6) */
	__u8 type;	/* enum event_type */
	__u8 _pad0;
	__u16 lport;	/* local port, host byte order */
	__u16 rport;	/* remote port, host byte order */
	__u32 _pad1;
	__u8 laddr[16];	/* local address: 4 bytes for AF_INET, 16 for AF_INET6 */
	__u8 raddr[16];	/* remote address */
	char comm[16];
};

#endif

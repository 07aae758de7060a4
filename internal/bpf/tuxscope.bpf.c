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
 * bpf2go compiles this one file; each concern is a header with its maps,
 * static inline helpers and SEC() programs, including what it builds on,
 * so every dependency runs one way:
 *
 *   common.bpf.h     filters, the events ring buffer, lost counter and
 *                    reader wake-up; tuple, owner, header, reserve, submit
 *   connect.bpf.h    connect (every backend)           uses common
 *   lifecycle.bpf.h  conns: outcomes and closes        uses connect
 *   listen.bpf.h     listen and unlisten               uses common
 *   state.bpf.h      TCP state changes (every backend) uses connect, lifecycle, listen
 *   accept.bpf.h     accept (every backend)            uses lifecycle
 *   health.bpf.h     retransmits and resets             uses lifecycle
 *   tls.bpf.h        TLS ClientHellos (egress hook)    uses common
 *   udp.bpf.h        UDP flows (cgroup hooks)          uses common
 *   dns.bpf.h        DNS messages (cgroup hooks)       uses common, tls, udp (its packet hooks count UDP flows)
 *
 * The loader's hook table (internal/tracer/hooks.go) names every program
 * here, with the hook it attaches to.
 */

#include "common.bpf.h"
#include "connect.bpf.h"
#include "lifecycle.bpf.h"
#include "listen.bpf.h"
#include "state.bpf.h"
#include "accept.bpf.h"
#include "health.bpf.h"
#include "dns.bpf.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

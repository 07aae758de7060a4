/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/* The BPF target's <asm/types.h>: the generic one. linux/bpf.h needs it,
 * and it is the same for every architecture BPF programs are built for,
 * so no architecture's include directory is needed. */
#include <asm-generic/types.h>

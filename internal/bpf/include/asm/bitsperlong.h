/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/* BPF is a 64-bit target whatever the host. */
#ifndef __ASM_BPF_BITSPERLONG_H
#define __ASM_BPF_BITSPERLONG_H
#define __BITS_PER_LONG 64
#include <asm-generic/bitsperlong.h>
#endif

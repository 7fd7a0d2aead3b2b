/* SPDX-License-Identifier: MIT */
/*
 * Thin wrappers over userfaultfd.  Debian's kernel headers predate
 * UFFDIO_MOVE (Linux 6.8), so its ABI is defined here when missing.
 */
#ifndef USVM_UFFD_H
#define USVM_UFFD_H

#include <stddef.h>
#include <stdint.h>
#include <linux/userfaultfd.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#endif
#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE (0x05)
struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
#define UFFDIO_MOVE_MODE_DONTWAKE ((__u64)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((__u64)1 << 1)
	__u64 mode;
	__s64 move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif

/*
 * Open a userfaultfd asking for @features; falls back to
 * UFFD_USER_MODE_ONLY when the caller is not privileged.  Returns the fd or
 * a negative errno; *@got receives the features the kernel granted.
 */
int uffd_open(uint64_t features, uint64_t *got, int *user_mode_only);
int uffd_register(int uffd, uintptr_t start, size_t len);
int uffd_unregister(int uffd, uintptr_t start, size_t len);
/*
 * Move pages [src, src+len) to the non-present [dst, dst+len), which must be
 * registered with @uffd.  Returns bytes moved (>= 0; may be short), or a
 * negative errno when nothing moved.  ENOENT means src hole at offset 0.
 */
long uffd_move(int uffd, uintptr_t dst, uintptr_t src, size_t len, int wake);
/* Map zero pages; returns bytes mapped or a negative errno (-EEXIST ...). */
long uffd_zeropage(int uffd, uintptr_t dst, size_t len);
/* Copy bytes into non-present pages; returns bytes copied or -errno. */
long uffd_copy(int uffd, uintptr_t dst, uintptr_t src, size_t len);
int uffd_wake(int uffd, uintptr_t start, size_t len);

#endif

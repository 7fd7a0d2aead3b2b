/* SPDX-License-Identifier: MIT */
/*
 * Thin wrappers over userfaultfd.  Debian's kernel headers predate
 * UFFDIO_MOVE (Linux 6.8) and /dev/userfaultfd (6.1), so their ABI is
 * defined here when missing.  Every ioctl wrapper returns bytes done (> 0)
 * or a negative errno when nothing was done; -EAGAIN means "the address
 * space is changing" (an event is queued and not read yet): retry later,
 * without holding locks the fault threads need.
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
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
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

/* The mode asked for by USVM_UFFD_MODE (enum usvm_uffd_mode). */
int usvm_uffd_mode_requested(void);

/*
 * Open a userfaultfd asking for @features.  *@mode is the mode to use
 * (USVM_UFFD_AUTO tries full handling by the syscall, then
 * /dev/userfaultfd, then UFFD_USER_MODE_ONLY) and receives the mode used.
 * Returns the fd or a negative errno; *@got receives the features granted.
 */
int uffd_open(uint64_t features, uint64_t *got, int *mode);
int uffd_register(int uffd, uintptr_t start, size_t len);
int uffd_unregister(int uffd, uintptr_t start, size_t len);
/* Register [start, start+len) again, adding write-protect mode (read
 * duplication).  0 or -errno. */
int uffd_register_wp(int uffd, uintptr_t start, size_t len);
/* Write-protect (@protect) or unprotect and wake [start, start+len).
 * 0 or -errno (-EAGAIN: the address space is changing; -ENOENT: a part
 * is not registered for write-protect). */
int uffd_writeprotect(int uffd, uintptr_t start, size_t len, int protect);
/* UFFDIO_MOVE [src, src+len) to [dst, dst+len) (@mode: UFFDIO_MOVE_MODE_*). */
long uffd_move(int uffd, uintptr_t dst, uintptr_t src, size_t len, uint64_t mode);
/* Map zero pages. */
long uffd_zeropage(int uffd, uintptr_t dst, size_t len, int wake);
/* Copy bytes into non-present pages. */
long uffd_copy(int uffd, uintptr_t dst, uintptr_t src, size_t len, int wake);
int uffd_wake(int uffd, uintptr_t start, size_t len);
/*
 * Is an event of @uffd raised and its caller not resumed yet (the kernel's
 * mmap_changing)?  From munmap/madvise/mremap's start until the reader has
 * read its event, the addresses it concerns may already be reused.
 */
int uffd_changing(int uffd);

#endif

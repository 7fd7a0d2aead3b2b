// SPDX-License-Identifier: MIT
/*
 * Moving whole host pages between managed memory and host-backed device
 * pools with UFFDIO_MOVE: resident pages change owner without a copy, so
 * migration costs about one page-table update per page.
 */
#include <errno.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include "pagemap/pagemap.h"
#include "mm/mm.h"
#include "mm/uffd.h"

/*
 * -EAGAIN from a userfaultfd ioctl means the address space is changing: a
 * munmap/mremap event is in flight and its caller has not resumed yet.
 * Back off and retry (bounded: about one second).
 */
static int again_backoff(int *tries)
{
	if (++*tries > 20000)
		return 0;
	if (mm_eagain_hook)
		mm_eagain_hook();
	if (*tries > 8)
		usleep(50);
	return 1;
}

/* Zero-fill the pages of [dst, dst+len) that a hole-skipping move left empty. */
static long fill_holes(int uffd, uintptr_t dst, size_t len, unsigned long *zeroed)
{
	unsigned char vec[USVM_BLOCK_PAGES];
	size_t off = 0;

	while (off < len) {
		size_t chunk = MIN_UL(len - off, USVM_BLOCK_SIZE);
		size_t np = chunk >> USVM_PAGE_SHIFT, i = 0;

		if (mincore((void *)(dst + off), chunk, vec))
			return -errno;
		while (i < np) {
			size_t j = i;
			long r;

			if (vec[i] & 1) {
				i++;
				continue;
			}
			while (j < np && !(vec[j] & 1))
				j++;
			r = uffd_zeropage(uffd, dst + off + (i << USVM_PAGE_SHIFT),
					  (j - i) << USVM_PAGE_SHIFT);
			if (r < 0 && r != -EEXIST)
				return r;
			if (zeroed)
				*zeroed += j - i;
			i = j;
		}
		off += chunk;
	}
	return 0;
}

long usvm_host_take_pages(int pool_uffd, uintptr_t dst, uintptr_t src, size_t len,
			  unsigned long *zeroed)
{
	size_t off = 0;
	int tries = 0;

	while (off < len) {
		struct uffdio_move m = {
			.dst = dst + off, .src = src + off, .len = len - off,
			.mode = UFFDIO_MOVE_MODE_DONTWAKE | UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES,
		};
		int err = 0;

		if (ioctl(pool_uffd, UFFDIO_MOVE, &m))
			err = errno;
		if (m.move > 0)
			off += (size_t)m.move;
		if (!err)
			break;
		if (err == EAGAIN && again_backoff(&tries))
			continue;       /* mm changing, or page briefly locked */
		break;              /* EBUSY: pinned or shared page; stop short */
	}
	if (off) {
		long r = fill_holes(pool_uffd, dst, off, zeroed);

		if (r < 0)
			return r;
	}
	return off ? (long)off : -EBUSY;
}

long usvm_host_give_pages(struct usvm_devmem *dm, uintptr_t dst, uintptr_t src, size_t len)
{
	int uffd = dm->region->uffd;
	size_t off = 0;
	int tries = 0;

	while (off < len) {
		long r = uffd_move(uffd, dst + off, src + off, len - off, 0);

		if (r > 0) {
			off += (size_t)r;
			continue;
		}
		if (r == -EAGAIN && again_backoff(&tries))
			continue;
		if (r == -ENOENT) {
			/* Pool hole (never written device page): it reads as zero. */
			r = uffd_zeropage(uffd, dst + off, USVM_PAGE_SIZE);
		} else if (r == -EBUSY || r == -EINVAL) {
			/* Pool page shared (after fork) or VMA mismatch: copy it. */
			r = uffd_copy(uffd, dst + off, src + off, USVM_PAGE_SIZE);
			if (r > 0)
				madvise((void *)(src + off), USVM_PAGE_SIZE, MADV_DONTNEED);
		}
		if (r == -EEXIST) {
			/* Cannot happen while the block lock is held; keep the data. */
			r = -EEXIST;
		}
		if (r <= 0)
			return off ? (long)off : (r ? r : -EIO);
		off += (size_t)r;
	}
	return (long)off;
}

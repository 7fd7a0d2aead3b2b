// SPDX-License-Identifier: MIT
/*
 * Moving whole host pages between managed memory and host-backed device
 * pools with UFFDIO_MOVE: resident pages change owner without a copy, so
 * migration costs about one page-table update per page.
 *
 * Neither helper waits for the fault threads: -EAGAIN (an event is queued
 * and unread, so the address space is "changing") goes back to the caller,
 * which drops its locks and retries.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include "migrate.h"
#include "mm/uffd.h"

/* A few quick retries for a page briefly locked; then the caller decides. */
#define QUICK_TRIES 3

/*
 * A UFFDIO_MOVE cut short can report fewer pages than it moved (seen on
 * Linux 6.18 under contention, with -EAGAIN).  Pages from @off on whose
 * destination is mapped while their source is gone have moved: count them,
 * so that they are neither lost (taken into a pool page nobody owns) nor
 * moved twice.  Both sides are the caller's: it holds the block lock and the
 * destination pages were empty.  Returns non-zero if it counted any.
 */
static int moved_anyway(uintptr_t dst, uintptr_t src, size_t *off, size_t len)
{
	size_t o = *off;

	while (o < len && usvm_host_page_mapped(dst + o) && !usvm_host_page_mapped(src + o))
		o += USVM_PAGE_SIZE;
	if (o == *off)
		return 0;
	usvm_log2("move of %#lx: %zu pages moved without being counted", (unsigned long)src,
		  (o - *off) >> USVM_PAGE_SHIFT);
	*off = o;
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
					  (j - i) << USVM_PAGE_SHIFT, 0);
			if (r == -EAGAIN)
				continue; /* the pool's fd has no events: injected */
			if (r < 0 && r != -EEXIST)
				return r;
			if (zeroed && r > 0)
				*zeroed += (unsigned long)r >> USVM_PAGE_SHIFT;
			i += r > 0 ? (size_t)r >> USVM_PAGE_SHIFT : j - i;
		}
		off += chunk;
	}
	return 0;
}

long usvm_host_take_pages(struct usvm_devmem *dm, const struct usvm_host_pool *pool,
			  uintptr_t dst, uintptr_t src, size_t len, int *stop)
{
	unsigned long zeroed = 0;
	int pool_uffd = pool->uffd;
	size_t off = 0;
	int tries = 0;
	long r = 0;

	*stop = 0;
	while (off < len) {
		r = uffd_move(pool_uffd, dst + off, src + off, len - off,
			      UFFDIO_MOVE_MODE_DONTWAKE | UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
		if (r > 0) {
			off += (size_t)r;
			continue;
		}
		if (moved_anyway(dst, src, &off, len))
			continue;
		if (r == -EAGAIN && ++tries < QUICK_TRIES)
			continue;
		/* -EBUSY: shared since fork or pinned; -EAGAIN: busy now. */
		*stop = r ? (int)-r : EIO;
		break;
	}
	if (off) {
		long err = fill_holes(pool_uffd, dst, off, &zeroed);

		STAT_ADD(dm->pagemap->core->st.pages_cleared, zeroed);
		if (err < 0)
			return err;
	}
	return off ? (long)off : (r ? r : -EIO);
}

long usvm_host_give_pages(struct usvm_devmem *dm, uintptr_t dst, uintptr_t src, size_t len)
{
	int uffd = devmem_of(dm)->region->uffd;
	size_t off = 0;
	int tries = 0;

	while (off < len) {
		long r = uffd_move(uffd, dst + off, src + off, len - off, UFFDIO_MOVE_MODE_DONTWAKE);

		if (r > 0) {
			off += (size_t)r;
			continue;
		}
		if (moved_anyway(dst, src, &off, len))
			continue;
		if (r == -EAGAIN && ++tries < QUICK_TRIES)
			continue;
		if (r == -ENOENT) {
			/* Pool hole (never written device page): it reads as zero. */
			r = uffd_zeropage(uffd, dst + off, USVM_PAGE_SIZE, 0);
		} else if (r == -EBUSY || r == -EINVAL) {
			/* Pool page shared or VMA flags differ (mlock, mprotect):
			 * copy it, then discard the pool page. */
			r = uffd_copy(uffd, dst + off, src + off, USVM_PAGE_SIZE, 0);
			if (r > 0)
				madvise((void *)(src + off), USVM_PAGE_SIZE, MADV_DONTNEED);
		}
		if (r <= 0)
			return off ? (long)off : (r ? r : -EIO);
		off += (size_t)r;
	}
	return (long)off;
}

/* /proc/self/pagemap: is there a page (present or swapped) at @va? */
int usvm_host_page_mapped(uintptr_t va)
{
	static atomic_int pagemap_fd = -2;
	int fd = atomic_load(&pagemap_fd);
	uint64_t e;

	if (fd == -2) {
		int n = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), expect = -2;

		if (!atomic_compare_exchange_strong(&pagemap_fd, &expect, n) && n >= 0)
			close(n);
		fd = atomic_load(&pagemap_fd);
	}
	if (fd < 0)
		return 1; /* cannot tell: assume the worst */
	if (pread(fd, &e, sizeof(e), (off_t)((va >> USVM_PAGE_SHIFT) * sizeof(e))) != sizeof(e))
		return 1;
	return (e >> 62) & 3 ? 1 : 0; /* bit 63 present, bit 62 swapped */
}

/* ---- pools -------------------------------------------------------------------- */

/* Can this machine back @size bytes (RAM + swap)? */
static int machine_can_back(size_t size)
{
	struct sysinfo si;

	if (sysinfo(&si))
		return 1;
	return size <= ((uint64_t)si.totalram + si.totalswap) * si.mem_unit;
}

int usvm_host_pool_create(size_t size, struct usvm_host_pool *out)
{
	int mode = usvm_uffd_mode_requested(), fd, err;
	uint64_t got = 0;
	void *p;

	if (!out || !size || (size & (USVM_PAGE_SIZE - 1)))
		return -EINVAL;
	if (!machine_can_back(size))
		return -ENOMEM;
	fd = uffd_open(UFFD_FEATURE_MOVE | UFFD_FEATURE_SIGBUS, &got, &mode);
	if (fd < 0)
		return fd;
	err = -ENOSYS;
	if (!(got & UFFD_FEATURE_MOVE))
		goto err_close;
	err = -ENOMEM;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		 -1, 0);
	if (p == MAP_FAILED)
		goto err_close;
	/* A child process never sees the pool (fork.c brings every page home
	 * first), and pool pages are never shared, so moves out never fail. */
	madvise(p, size, MADV_DONTFORK);
	err = uffd_register(fd, (uintptr_t)p, size);
	if (err)
		goto err_unmap;
	*out = (struct usvm_host_pool){ .base = (uintptr_t)p, .size = size, .uffd = fd };
	return 0;
err_unmap:
	munmap(p, size);
err_close:
	close(fd);
	return err;
}

void usvm_host_pool_destroy(struct usvm_host_pool *pool)
{
	if (!pool || !pool->base)
		return;
	munmap((void *)pool->base, pool->size);
	close(pool->uffd);
	pool->base = 0;
	pool->uffd = -1;
}

void usvm_host_pool_discard(const struct usvm_host_pool *pool, uintptr_t addr, size_t len)
{
	/* The pool's userfaultfd reports no events: this is silent. */
	if (addr >= pool->base && addr + len <= pool->base + pool->size)
		madvise((void *)addr, len, MADV_DONTNEED);
}

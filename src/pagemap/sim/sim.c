// SPDX-License-Identifier: MIT
/*
 * The simulated device: device memory is a pool of host pages in a mapping
 * of its own, registered with a userfaultfd of its own (SIGBUS mode, so a
 * stray access to an empty pool page is a crash, never a hang).  Managed
 * pointers never reach it: pages enter and leave it by UFFDIO_MOVE, which
 * removes them from the managed address range atomically.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include "pagemap/pagemap.h"
#include "mm/uffd.h"

struct sim_pool {
	struct usvm_pagemap pm;
	uintptr_t base;
	size_t npages;
	size_t nfree;
	size_t hint;
	uint64_t *bitmap;               /* 1 = allocated */
	pthread_mutex_t lock;
	int uffd;
	int released;
};

struct sim_alloc {
	unsigned long npages;
	unsigned long pfn[];
};

static struct sim_pool *to_sim(struct usvm_pagemap *pm)
{
	return container_of(pm, struct sim_pool, pm);
}

static int bit_test(const uint64_t *bm, size_t i) { return (bm[i >> 6] >> (i & 63)) & 1; }
static void bit_set(uint64_t *bm, size_t i) { bm[i >> 6] |= 1ull << (i & 63); }
static void bit_clear(uint64_t *bm, size_t i) { bm[i >> 6] &= ~(1ull << (i & 63)); }

/* A free run of @n pages starting at an @align multiple, or SIZE_MAX. */
static size_t find_run(struct sim_pool *sp, size_t n, size_t align)
{
	size_t tries, start = ALIGN_UP_UL(sp->hint, align);

	for (tries = 0; tries < 2; tries++, start = 0) {
		size_t i = start;

		while (i + n <= sp->npages) {
			size_t j = 0;

			while (j < n && !bit_test(sp->bitmap, i + j))
				j++;
			if (j == n)
				return i;
			i = ALIGN_UP_UL(i + j + 1, align);
		}
	}
	return SIZE_MAX;
}

static int sim_devmem_alloc(struct usvm_pagemap *pm, struct usvm_devmem *dm)
{
	struct sim_pool *sp = to_sim(pm);
	struct sim_alloc *a;
	unsigned long n = dm->npages, i, k = 0;
	size_t run;

	a = malloc(sizeof(*a) + n * sizeof(unsigned long));
	if (!a)
		return -ENOMEM;
	a->npages = n;
	pthread_mutex_lock(&sp->lock);
	if (sp->released || sp->nfree < n) {
		pthread_mutex_unlock(&sp->lock);
		free(a);
		return sp->released ? -ENODEV : -ENOMEM;
	}
	/* Contiguous when possible (whole-run moves), scattered otherwise. */
	run = find_run(sp, n, n >= USVM_BLOCK_PAGES ? USVM_BLOCK_PAGES : 1);
	if (run != SIZE_MAX) {
		for (i = 0; i < n; i++) {
			bit_set(sp->bitmap, run + i);
			a->pfn[i] = run + i;
		}
		sp->hint = run + n;
	} else {
		for (i = 0; i < sp->npages && k < n; i++) {
			if (!bit_test(sp->bitmap, i)) {
				bit_set(sp->bitmap, i);
				a->pfn[k++] = i;
			}
		}
	}
	sp->nfree -= n;
	pthread_mutex_unlock(&sp->lock);
	dm->priv = a;
	return 0;
}

static int sim_populate_devmem_pfn(struct usvm_devmem *dm, unsigned long npages,
				   unsigned long *pfn)
{
	struct sim_alloc *a = dm->priv;

	if (npages > a->npages)
		return -EINVAL;
	memcpy(pfn, a->pfn, npages * sizeof(*pfn));
	return 0;
}

/* Length of the run starting at @i where pfn and va both advance by one page. */
static unsigned long run_len(const unsigned long *pfn, const uintptr_t *va,
			     unsigned long i, unsigned long n)
{
	unsigned long j = i + 1;

	while (j < n && pfn[j] == pfn[j - 1] + 1 && va[j] == va[j - 1] + USVM_PAGE_SIZE)
		j++;
	return j - i;
}

static long sim_copy_to_devmem(struct usvm_devmem *dm, const unsigned long *pfn,
			       const uintptr_t *src, unsigned long n, int *stop)
{
	struct sim_pool *sp = to_sim(dm->pagemap);
	unsigned long i = 0, zeroed = 0;

	*stop = 0;
	while (i < n) {
		unsigned long len = run_len(pfn, src, i, n);
		long r = usvm_host_take_pages(sp->uffd, sp->base + (pfn[i] << USVM_PAGE_SHIFT),
					      src[i], len << USVM_PAGE_SHIFT, &zeroed, stop);

		if (r < 0) {
			*stop = (int)-r;
			if (!i)
				return r;
			break;
		}
		i += (unsigned long)r >> USVM_PAGE_SHIFT;
		if ((unsigned long)r < (len << USVM_PAGE_SHIFT))
			break;
	}
	STAT_ADD(sp->pm.st.pages_cleared, zeroed);
	return (long)i;
}

static long sim_copy_to_ram(struct usvm_devmem *dm, const unsigned long *pfn,
			    const uintptr_t *dst, unsigned long n)
{
	struct sim_pool *sp = to_sim(dm->pagemap);
	unsigned long i = 0;

	while (i < n) {
		unsigned long len = run_len(pfn, dst, i, n);
		long r = usvm_host_give_pages(dm->region->uffd, dst[i],
					      sp->base + (pfn[i] << USVM_PAGE_SHIFT),
					      len << USVM_PAGE_SHIFT);

		if (r < 0)
			return i ? (long)i : r;
		i += (unsigned long)r >> USVM_PAGE_SHIFT;
		if ((unsigned long)r < (len << USVM_PAGE_SHIFT))
			break;
	}
	return (long)i;
}

static void sim_devmem_release(struct usvm_devmem *dm)
{
	struct sim_pool *sp = to_sim(dm->pagemap);
	struct sim_alloc *a = dm->priv;
	unsigned long i;

	if (!a)
		return;
	pthread_mutex_lock(&sp->lock);
	for (i = 0; i < a->npages;) {
		unsigned long j = i + 1;

		while (j < a->npages && a->pfn[j] == a->pfn[j - 1] + 1)
			j++;
		/* Pages whose data was dropped still sit in the pool: discard them
		 * (one call per contiguous run; moved-out pages are already empty). */
		if (!sp->released && dm->dropped)
			madvise((void *)(sp->base + (a->pfn[i] << USVM_PAGE_SHIFT)),
				(j - i) << USVM_PAGE_SHIFT, MADV_DONTNEED);
		for (; i < j; i++)
			bit_clear(sp->bitmap, a->pfn[i]);
	}
	sp->nfree += a->npages;
	pthread_mutex_unlock(&sp->lock);
	dm->priv = NULL;
	free(a);
}

static int sim_device_map(struct usvm_pagemap *pm, struct usvm_device *device,
			  unsigned long pfn, struct usvm_device_addr *out)
{
	struct sim_pool *sp = to_sim(pm);

	if (pfn >= sp->npages || sp->released)
		return -EFAULT;
	out->addr = sp->base + (pfn << USVM_PAGE_SHIFT);
	out->proto = USVM_INTERCONNECT_DRIVER;
	out->order = 0;
	(void)device; /* simulated devices share one fast interconnect */
	return 0;
}

static void sim_device_unmap(struct usvm_pagemap *pm, struct usvm_device *device,
			     const struct usvm_device_addr *addr)
{
	(void)pm; (void)device; (void)addr;
}

static void sim_release_pool(struct sim_pool *sp)
{
	pthread_mutex_lock(&sp->lock);
	if (!sp->released) {
		sp->released = 1;
		munmap((void *)sp->base, sp->npages << USVM_PAGE_SHIFT);
	}
	pthread_mutex_unlock(&sp->lock);
}

static void sim_unbind(struct usvm_pagemap *pm)
{
	sim_release_pool(to_sim(pm));
}

static void sim_destroy(struct usvm_pagemap *pm)
{
	struct sim_pool *sp = to_sim(pm);

	sim_release_pool(sp);
	close(sp->uffd);
	pthread_mutex_destroy(&sp->lock);
	free(sp->bitmap);
	free(sp);
}

static const struct usvm_pagemap_ops sim_pagemap_ops = {
	.devmem_alloc = sim_devmem_alloc,
	.populate_mm = usvm_pagemap_populate_default,
	.device_map = sim_device_map,
	.device_unmap = sim_device_unmap,
	.unbind = sim_unbind,
	.destroy = sim_destroy,
};

static const struct usvm_devmem_ops sim_devmem_ops = {
	.populate_devmem_pfn = sim_populate_devmem_pfn,
	.copy_to_devmem = sim_copy_to_devmem,
	.copy_to_ram = sim_copy_to_ram,
	.devmem_release = sim_devmem_release,
};

/* Can this machine back @capacity bytes of pool (RAM + swap)? */
static int machine_can_back(size_t capacity)
{
	struct sysinfo si;

	if (sysinfo(&si))
		return 1;
	return capacity <= ((uint64_t)si.totalram + si.totalswap) * si.mem_unit;
}

int usvm_sim_pagemap_create(const char *name, size_t capacity, struct usvm_pagemap **out)
{
	struct sim_pool *sp;
	uint64_t got = 0;
	int mode = usvm_uffd_mode_requested(), err;
	void *p;

	if (!out || !capacity || (capacity & (USVM_PAGE_SIZE - 1)))
		return -EINVAL;
	if (!machine_can_back(capacity))
		return -ENOMEM;
	sp = calloc(1, sizeof(*sp));
	if (!sp)
		return -ENOMEM;
	sp->npages = capacity >> USVM_PAGE_SHIFT;
	sp->nfree = sp->npages;
	sp->bitmap = calloc((sp->npages + 63) / 64, sizeof(uint64_t));
	if (!sp->bitmap) {
		free(sp);
		return -ENOMEM;
	}
	err = uffd_open(UFFD_FEATURE_MOVE | UFFD_FEATURE_SIGBUS, &got, &mode);
	if (err < 0)
		goto fail;
	sp->uffd = err;
	if ((got & UFFD_FEATURE_MOVE) == 0) {
		err = -ENOSYS;
		goto fail_fd;
	}
	p = mmap(NULL, capacity, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		err = -ENOMEM;
		goto fail_fd;
	}
	sp->base = (uintptr_t)p;
	/* A child process never sees the pool (fork.c brings every page home
	 * first), and pool pages are never shared, so moves out never fail. */
	madvise(p, capacity, MADV_DONTFORK);
	err = uffd_register(sp->uffd, sp->base, capacity);
	if (err)
		goto fail_map;
	pthread_mutex_init(&sp->lock, NULL);
	sp->pm.ops = &sim_pagemap_ops;
	sp->pm.devmem_ops = &sim_devmem_ops;
	sp->pm.priv = sp;
	err = usvm_pagemap_init(&sp->pm, name, capacity);
	if (err)
		goto fail_map;
	*out = &sp->pm;
	return 0;
fail_map:
	munmap(p, capacity);
fail_fd:
	close(sp->uffd);
fail:
	free(sp->bitmap);
	free(sp);
	return err;
}

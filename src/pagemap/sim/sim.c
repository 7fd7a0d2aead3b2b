// SPDX-License-Identifier: MIT
/*
 * The simulated device: device memory is a pool of host pages in a mapping
 * of its own (usvm_host_pool), never reachable through managed pointers;
 * pages enter and leave it by UFFDIO_MOVE, which removes them from the
 * managed address range atomically.  Uses only <usvm/backend.h>, as a
 * backend outside the tree would.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <usvm/backend.h>

#define PAGE_SHIFT 12
#define BLOCK_PAGES (USVM_BLOCK_SIZE / USVM_PAGE_SIZE)

struct sim_pool {
	struct usvm_pagemap pm;
	struct usvm_host_pool pool;
	size_t npages;
	size_t nfree;
	size_t hint;
	uint64_t *bitmap;               /* 1 = allocated */
	pthread_mutex_t lock;
	int released;
};

struct sim_alloc {
	unsigned long npages;
	unsigned long pfn[];
};

static struct sim_pool *to_sim(struct usvm_pagemap *pm)
{
	return (struct sim_pool *)((char *)pm - offsetof(struct sim_pool, pm));
}

static uintptr_t pfn_addr(struct sim_pool *sp, unsigned long pfn)
{
	return sp->pool.base + ((uintptr_t)pfn << PAGE_SHIFT);
}

static int bit_test(const uint64_t *bm, size_t i) { return (bm[i >> 6] >> (i & 63)) & 1; }
static void bit_set(uint64_t *bm, size_t i) { bm[i >> 6] |= 1ull << (i & 63); }
static void bit_clear(uint64_t *bm, size_t i) { bm[i >> 6] &= ~(1ull << (i & 63)); }

static size_t align_up(size_t x, size_t a)
{
	return (x + a - 1) / a * a;
}

/* A free run of @n pages starting at an @align multiple, or SIZE_MAX. */
static size_t find_run(struct sim_pool *sp, size_t n, size_t align)
{
	size_t tries, start = align_up(sp->hint, align);

	for (tries = 0; tries < 2; tries++, start = 0) {
		size_t i = start;

		while (i + n <= sp->npages) {
			size_t j = 0;

			while (j < n && !bit_test(sp->bitmap, i + j))
				j++;
			if (j == n)
				return i;
			i = align_up(i + j + 1, align);
		}
	}
	return SIZE_MAX;
}

/* Mark @n pages allocated: one contiguous run when possible (whole-run
 * moves), scattered otherwise; sp->lock held. */
static void take_pfns(struct sim_pool *sp, struct sim_alloc *a, unsigned long n)
{
	size_t run = find_run(sp, n, n >= BLOCK_PAGES ? BLOCK_PAGES : 1), i;
	unsigned long k = 0;

	if (run != SIZE_MAX) {
		for (i = 0; i < n; i++) {
			bit_set(sp->bitmap, run + i);
			a->pfn[i] = run + i;
		}
		sp->hint = run + n;
		return;
	}
	for (i = 0; i < sp->npages && k < n; i++) {
		if (!bit_test(sp->bitmap, i)) {
			bit_set(sp->bitmap, i);
			a->pfn[k++] = i;
		}
	}
}

static int sim_devmem_alloc(struct usvm_pagemap *pm, struct usvm_devmem *dm)
{
	struct sim_pool *sp = to_sim(pm);
	unsigned long n = dm->npages;
	struct sim_alloc *a;

	a = malloc(sizeof(*a) + n * sizeof(unsigned long));
	if (!a)
		return -ENOMEM;
	a->npages = n;
	pthread_mutex_lock(&sp->lock);
	if (sp->released || sp->nfree < n) {
		int err = sp->released ? -ENODEV : -ENOMEM;

		pthread_mutex_unlock(&sp->lock);
		free(a);
		return err;
	}
	take_pfns(sp, a, n);
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
	unsigned long i = 0;

	*stop = 0;
	while (i < n) {
		unsigned long len = run_len(pfn, src, i, n);
		long r = usvm_host_take_pages(dm, &sp->pool, pfn_addr(sp, pfn[i]), src[i],
					      len << PAGE_SHIFT, stop);

		if (r < 0) {
			*stop = (int)-r;
			if (!i)
				return r;
			break;
		}
		i += (unsigned long)r >> PAGE_SHIFT;
		if ((unsigned long)r < (len << PAGE_SHIFT))
			break;
	}
	return (long)i;
}

static long sim_copy_to_ram(struct usvm_devmem *dm, const unsigned long *pfn,
			    const uintptr_t *dst, unsigned long n)
{
	struct sim_pool *sp = to_sim(dm->pagemap);
	unsigned long i = 0;

	while (i < n) {
		unsigned long len = run_len(pfn, dst, i, n);
		long r = usvm_host_give_pages(dm, dst[i], pfn_addr(sp, pfn[i]), len << PAGE_SHIFT);

		if (r < 0)
			return i ? (long)i : r;
		i += (unsigned long)r >> PAGE_SHIFT;
		if ((unsigned long)r < (len << PAGE_SHIFT))
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
			usvm_host_pool_discard(&sp->pool, pfn_addr(sp, a->pfn[i]),
					       (j - i) << PAGE_SHIFT);
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
	out->addr = pfn_addr(sp, pfn);
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
		usvm_host_pool_destroy(&sp->pool);
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

int usvm_sim_pagemap_create(const char *name, size_t capacity, struct usvm_pagemap **out)
{
	struct sim_pool *sp;
	int err;

	if (!out || !capacity || (capacity & (USVM_PAGE_SIZE - 1)))
		return -EINVAL;
	sp = calloc(1, sizeof(*sp));
	if (!sp)
		return -ENOMEM;
	sp->npages = capacity >> PAGE_SHIFT;
	sp->nfree = sp->npages;
	sp->bitmap = calloc((sp->npages + 63) / 64, sizeof(uint64_t));
	err = sp->bitmap ? usvm_host_pool_create(capacity, &sp->pool) : -ENOMEM;
	if (err)
		goto err_free;
	pthread_mutex_init(&sp->lock, NULL);
	sp->pm.ops = &sim_pagemap_ops;
	sp->pm.devmem_ops = &sim_devmem_ops;
	sp->pm.priv = sp;
	err = usvm_pagemap_init(&sp->pm, name, capacity);
	if (err)
		goto err_pool;
	*out = &sp->pm;
	return 0;
err_pool:
	pthread_mutex_destroy(&sp->lock);
	usvm_host_pool_destroy(&sp->pool);
err_free:
	free(sp->bitmap);
	free(sp);
	return err;
}

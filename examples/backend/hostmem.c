// SPDX-License-Identifier: MIT
/*
 * hostmem: a device-memory backend for usvm built outside its tree, using
 * only <usvm/backend.h>.  Device memory is a usvm_host_pool; pages are
 * handed out first-fit one by one (no contiguity), and moved in and out
 * with the host-page helpers.  It shows the whole contract a backend
 * implements: devmem_alloc, populate_devmem_pfn, copy_to_devmem,
 * copy_to_ram, devmem_release, device_map, unbind, destroy.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "hostmem.h"

struct hostmem {
	struct usvm_pagemap pm;     /* first: usvm hands us &pm */
	struct usvm_host_pool pool;
	pthread_mutex_t lock;
	unsigned char *used;        /* one byte per page */
	unsigned long npages, nfree, releases;
	int unbound;
};

static struct hostmem *hm_of(struct usvm_pagemap *pm)
{
	return (struct hostmem *)((char *)pm - offsetof(struct hostmem, pm));
}

static uintptr_t page_addr(struct hostmem *hm, unsigned long pfn)
{
	return hm->pool.base + pfn * USVM_PAGE_SIZE;
}

static int hm_devmem_alloc(struct usvm_pagemap *pm, struct usvm_devmem *dm)
{
	struct hostmem *hm = hm_of(pm);
	unsigned long *pfn = malloc(dm->npages * sizeof(*pfn)), i, k = 0;

	if (!pfn)
		return -ENOMEM;
	pthread_mutex_lock(&hm->lock);
	if (hm->unbound || hm->nfree < dm->npages) {
		int err = hm->unbound ? -ENODEV : -ENOMEM;

		pthread_mutex_unlock(&hm->lock);
		free(pfn);
		return err; /* -ENOMEM: usvm evicts and asks again */
	}
	for (i = 0; i < hm->npages && k < dm->npages; i++)
		if (!hm->used[i]) {
			hm->used[i] = 1;
			pfn[k++] = i;
		}
	hm->nfree -= dm->npages;
	pthread_mutex_unlock(&hm->lock);
	dm->priv = pfn;
	return 0;
}

static int hm_populate_devmem_pfn(struct usvm_devmem *dm, unsigned long npages,
				  unsigned long *pfn)
{
	memcpy(pfn, dm->priv, npages * sizeof(*pfn));
	return 0;
}

/* One page at a time: simple, and correct for scattered device pages. */
static long hm_copy_to_devmem(struct usvm_devmem *dm, const unsigned long *pfn,
			      const uintptr_t *src, unsigned long n, int *stop)
{
	struct hostmem *hm = hm_of(dm->pagemap);
	unsigned long i;

	for (i = 0; i < n; i++) {
		long r = usvm_host_take_pages(dm, &hm->pool, page_addr(hm, pfn[i]), src[i],
					      USVM_PAGE_SIZE, stop);

		if (r < (long)USVM_PAGE_SIZE)
			return i ? (long)i : (r < 0 ? r : -EBUSY);
	}
	return (long)n;
}

static long hm_copy_to_ram(struct usvm_devmem *dm, const unsigned long *pfn,
			   const uintptr_t *dst, unsigned long n)
{
	struct hostmem *hm = hm_of(dm->pagemap);
	unsigned long i;

	for (i = 0; i < n; i++) {
		long r = usvm_host_give_pages(dm, dst[i], page_addr(hm, pfn[i]), USVM_PAGE_SIZE);

		if (r < (long)USVM_PAGE_SIZE)
			return i ? (long)i : (r < 0 ? r : -EAGAIN);
	}
	return (long)n;
}

static void hm_devmem_release(struct usvm_devmem *dm)
{
	struct hostmem *hm = hm_of(dm->pagemap);
	unsigned long *pfn = dm->priv, i;

	pthread_mutex_lock(&hm->lock);
	for (i = 0; i < dm->npages; i++) {
		if (dm->dropped && !hm->unbound)
			usvm_host_pool_discard(&hm->pool, page_addr(hm, pfn[i]), USVM_PAGE_SIZE);
		hm->used[pfn[i]] = 0;
	}
	hm->nfree += dm->npages;
	hm->releases++;
	pthread_mutex_unlock(&hm->lock);
	free(pfn);
	dm->priv = NULL;
}

static int hm_device_map(struct usvm_pagemap *pm, struct usvm_device *device,
			 unsigned long pfn, struct usvm_device_addr *out)
{
	struct hostmem *hm = hm_of(pm);

	(void)device;
	if (pfn >= hm->npages)
		return -EFAULT;
	out->addr = page_addr(hm, pfn);
	out->proto = USVM_INTERCONNECT_DRIVER;
	out->order = 0;
	return 0;
}

static void hm_device_unmap(struct usvm_pagemap *pm, struct usvm_device *device,
			    const struct usvm_device_addr *addr)
{
	(void)pm; (void)device; (void)addr;
}

static void hm_unbind(struct usvm_pagemap *pm)
{
	struct hostmem *hm = hm_of(pm);

	pthread_mutex_lock(&hm->lock);
	hm->unbound = 1; /* every page is home: the pool can go */
	usvm_host_pool_destroy(&hm->pool);
	pthread_mutex_unlock(&hm->lock);
}

static void hm_destroy(struct usvm_pagemap *pm)
{
	struct hostmem *hm = hm_of(pm);

	if (!hm->unbound)
		usvm_host_pool_destroy(&hm->pool);
	pthread_mutex_destroy(&hm->lock);
	free(hm->used);
	free(hm);
}

static const struct usvm_pagemap_ops hm_ops = {
	.devmem_alloc = hm_devmem_alloc,
	.populate_mm = usvm_pagemap_populate_default,
	.device_map = hm_device_map,
	.device_unmap = hm_device_unmap,
	.unbind = hm_unbind,
	.destroy = hm_destroy,
};

static const struct usvm_devmem_ops hm_devmem_ops = {
	.populate_devmem_pfn = hm_populate_devmem_pfn,
	.copy_to_devmem = hm_copy_to_devmem,
	.copy_to_ram = hm_copy_to_ram,
	.devmem_release = hm_devmem_release,
};

int hostmem_pagemap_create(const char *name, size_t capacity, struct usvm_pagemap **out)
{
	struct hostmem *hm = calloc(1, sizeof(*hm));
	int err;

	if (!hm)
		return -ENOMEM;
	hm->npages = hm->nfree = capacity / USVM_PAGE_SIZE;
	hm->used = calloc(hm->npages, 1);
	err = hm->used ? usvm_host_pool_create(capacity, &hm->pool) : -ENOMEM;
	if (err)
		goto err_free;
	pthread_mutex_init(&hm->lock, NULL);
	hm->pm.ops = &hm_ops;
	hm->pm.devmem_ops = &hm_devmem_ops;
	hm->pm.priv = hm;
	err = usvm_pagemap_init(&hm->pm, name, capacity);
	if (err)
		goto err_pool;
	*out = &hm->pm;
	return 0;
err_pool:
	pthread_mutex_destroy(&hm->lock);
	usvm_host_pool_destroy(&hm->pool);
err_free:
	free(hm->used);
	free(hm);
	return err;
}

unsigned long hostmem_releases(struct usvm_pagemap *pm)
{
	struct hostmem *hm = hm_of(pm);
	unsigned long n;

	pthread_mutex_lock(&hm->lock);
	n = hm->releases;
	pthread_mutex_unlock(&hm->lock);
	return n;
}

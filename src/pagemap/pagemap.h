/* SPDX-License-Identifier: MIT */
/*
 * Pagemap core and the interface of device-memory backends (the analogue of
 * include/drm/drm_pagemap.h).  A backend fills a struct usvm_pagemap with its
 * ops and provides device allocations (struct usvm_devmem) through
 * usvm_pagemap_ops.devmem_alloc; the core does the rest: range bookkeeping,
 * LRU eviction, CPU-fault migration, unbind.
 *
 * Backend files live in src/pagemap/<name>/ and use only this header plus
 * the host-page helpers declared at the end.
 */
#ifndef USVM_PAGEMAP_H
#define USVM_PAGEMAP_H

#include <pthread.h>
#include <stdatomic.h>
#include "usvm.h"
#include "util.h"
#include "mm/mm.h"

struct usvm_devmem;
struct usvm_region;

/* Where a device-usable address points (drm_interconnect_protocol). */
enum usvm_interconnect {
	USVM_INTERCONNECT_SYSTEM = 0,  /* a system page */
	USVM_INTERCONNECT_DRIVER = 1,  /* the device's own memory */
	USVM_INTERCONNECT_PEER = 2,    /* another device's memory, peer access */
};

/* A device-usable address for one page (struct drm_pagemap_addr). */
struct usvm_device_addr {
	uintptr_t addr;          /* for host-backed backends: a host pointer */
	uint32_t proto;          /* enum usvm_interconnect */
	uint32_t order;          /* covers USVM_PAGE_SIZE << order bytes */
};

struct usvm_pagemap_ops {
	/*
	 * Allocate @dm->npages device pages for @dm (set dm->priv).  Return 0,
	 * or -ENOMEM when the device memory is full: the core then evicts the
	 * least recently used allocation and calls again.
	 */
	int (*devmem_alloc)(struct usvm_pagemap *pm, struct usvm_devmem *dm);
	/*
	 * populate_mm: see usvm_pagemap_populate_mm().  Backends normally use
	 * usvm_pagemap_populate_default.  Called with the pagemap's bind lock
	 * held for reading: unbind waits for it.
	 */
	int (*populate_mm)(struct usvm_pagemap *pm, uintptr_t start, uintptr_t end,
			   struct usvm_mm *mm, unsigned long timeslice_ms);
	/*
	 * Map device page @pfn for access by @device (NULL: the owning device).
	 * Return 0 and *@out, or -EFAULT when @device cannot reach it.
	 */
	int (*device_map)(struct usvm_pagemap *pm, struct usvm_device *device,
			  unsigned long pfn, struct usvm_device_addr *out);
	void (*device_unmap)(struct usvm_pagemap *pm, struct usvm_device *device,
			     const struct usvm_device_addr *addr);
	/* Optional: the device is unbound and holds no page any more; release
	 * its memory (the pool). */
	void (*unbind)(struct usvm_pagemap *pm);
	/* Release the backend's resources; every allocation is gone by then. */
	void (*destroy)(struct usvm_pagemap *pm);
};

/* Operations of one device allocation (drm_pagemap_devmem_ops). */
struct usvm_devmem_ops {
	/* Fill @pfn with the allocation's @npages device page numbers, in order. */
	int (*populate_devmem_pfn)(struct usvm_devmem *dm, unsigned long npages,
				   unsigned long *pfn);
	/*
	 * Take the @n CPU pages at @src[i] (managed, page aligned) into device
	 * pages @pfn[i].  The core holds the block lock, so CPU faults on
	 * those pages wait; the op must remove each page from the CPU's view
	 * atomically with taking its data (usvm_host_take_pages), and zero-fill
	 * device pages whose source was never touched.  Returns the number of
	 * leading pages taken (0..n) or a negative errno; when short, *@stop
	 * says why (EBUSY: a page shared since fork or pinned; EAGAIN).
	 */
	long (*copy_to_devmem)(struct usvm_devmem *dm, const unsigned long *pfn,
			       const uintptr_t *src, unsigned long n, int *stop);
	/*
	 * Put device pages @pfn[i] back into the non-present managed pages
	 * @dst[i] (usvm_host_give_pages) without waking CPU threads waiting on
	 * them: the core wakes them once the page states say "system".
	 * Returns pages done, or a negative errno when none was: -EAGAIN means
	 * the address space is changing and the core retries later.
	 */
	long (*copy_to_ram)(struct usvm_devmem *dm, const unsigned long *pfn,
			    const uintptr_t *dst, unsigned long n);
	/* Give the device pages back to the backend's free pool. */
	void (*devmem_release)(struct usvm_devmem *dm);
};

struct usvm_pagemap {
	const struct usvm_pagemap_ops *ops;
	const struct usvm_devmem_ops *devmem_ops;
	char name[32];
	void *priv;                     /* the backend's */
	size_t capacity;

	/* Core private below. */
	atomic_int refs;                /* usvm_pagemap_get/put (drm_pagemap kref) */
	pthread_mutex_t lock;           /* lru, live list */
	struct list_head lru;           /* live allocations, least recent first */
	pthread_rwlock_t bind_lock;     /* populates read, unbind writes */
	atomic_int unbound;
	atomic_int destroyed;
	/* Device allocations off the LRU (being filled or being released):
	 * eviction cannot reach them, but their memory comes free soon. */
	atomic_long offlru;
	struct {
		_Atomic uint64_t used_bytes, peak_used_bytes, live_allocations;
		_Atomic uint64_t populate_calls, populate_ok, populate_noop;
		_Atomic uint64_t populate_enomem, populate_enodev, populate_efault;
		_Atomic uint64_t populate_einval, populate_ebusy, populate_eio;
		_Atomic uint64_t pages_migrated_in, pages_cleared;
		_Atomic uint64_t pages_already_present, pages_from_peer;
		_Atomic uint64_t migrations_to_dev, bytes_to_dev, ns_to_dev;
		_Atomic uint64_t migrations_to_ram, bytes_to_ram, ns_to_ram;
		_Atomic uint64_t cpu_fault_migrations, evictions, evicted_bytes;
	} st;
};

/*
 * One device allocation (drm_pagemap_devmem).  All its pages lie in one
 * USVM_BLOCK_SIZE-aligned block of one mm, so that the block lock of that
 * block protects every page state change of the allocation.
 */
struct usvm_devmem {
	struct mm_devmem base;          /* what mm sees: its ops and the pagemap */
	const struct usvm_devmem_ops *ops;
	struct usvm_pagemap *pagemap;
	struct usvm_mm *mm;
	struct usvm_region *region;     /* core: the managed region of its pages */
	void *priv;                     /* the backend's */
	uintptr_t block;                /* block start address */
	unsigned long npages;           /* device pages allocated */
	/* Under the block lock: */
	unsigned long live;             /* pages still holding data */
	unsigned long dropped;          /* pages whose data was discarded in place */
	uintptr_t *va;                  /* va[i]: managed page held by pfn[i], 0 if none */
	unsigned long *pfn;
	uint64_t timeslice_expire_ns;   /* no CPU-fault migration before this */
	/* Under pagemap->lock: */
	struct list_head lru_link;
	int on_lru;
	atomic_int refcount;
};

static inline struct usvm_devmem *to_devmem(struct mm_devmem *m)
{
	return container_of(m, struct usvm_devmem, base);
}

/* The default populate_mm (best effort, partial, evicting). */
int usvm_pagemap_populate_default(struct usvm_pagemap *pm, uintptr_t start, uintptr_t end,
				  struct usvm_mm *mm, unsigned long timeslice_ms);

/* Register a freshly filled pagemap (locks, lists, stats). */
int usvm_pagemap_init(struct usvm_pagemap *pm, const char *name, size_t capacity);

/* ---- Host page helpers for backends ---------------------------------- */
/*
 * usvm_host_take_pages() - move CPU pages of the calling process at [src,
 * src+len) into the backend's pool at @dst (registered with @pool_uffd).
 * Holes (never touched pages) are zero-filled at @dst and counted in
 * *@zeroed.  Returns bytes done, short when a page cannot move (*@stop: the
 * errno, e.g. EBUSY for a page shared since fork), or -errno.
 */
long usvm_host_take_pages(int pool_uffd, uintptr_t dst, uintptr_t src, size_t len,
			  unsigned long *zeroed, int *stop);
/*
 * usvm_host_give_pages() - move pool pages [src, src+len) into the
 * non-present managed pages at @dst (registered with @uffd), waking nobody.
 * Falls back to a copy when a page cannot be moved.  Returns bytes done,
 * or -errno when none was (-EAGAIN: the address space is changing).
 */
long usvm_host_give_pages(int uffd, uintptr_t dst, uintptr_t src, size_t len);
/* Is a CPU page (present or swapped) mapped at @va?  1 when unsure. */
int usvm_host_page_mapped(uintptr_t va);

#endif

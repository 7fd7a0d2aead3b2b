/* SPDX-License-Identifier: MIT */
/*
 * usvm/backend.h - writing a device-memory backend (a pagemap provider).
 *
 * DOC: Backends
 *
 * The analogue of the kernel's include/drm/drm_pagemap.h: a driver provides
 * device memory by filling a struct usvm_pagemap with its ops and calling
 * usvm_pagemap_init(); usvm does the rest (populate_mm's best-effort
 * contract, page states, CPU-fault migration back, LRU eviction, unbind,
 * statistics).  A device allocation (struct usvm_devmem) is created by usvm
 * and handed to the backend's devmem_alloc op to be backed; its copy ops
 * move data between managed pages and device pages.
 *
 * Backends whose device memory is host memory (a simulation, a pool shared
 * with an accelerator through host mappings, a memory tier) can use the
 * host-page helpers at the end: a pool in its own mapping, and page moves
 * into and out of it by UFFDIO_MOVE, which take a page from the CPU's view
 * atomically with its data.  src/pagemap/sim/sim.c is such a backend, and
 * examples/backend/ one built outside the tree.
 *
 * Locking: ops may be called concurrently from many threads.  copy ops run
 * with usvm's lock for the pages' 2 MiB block held: they must not touch
 * managed memory (CPU faults on it would wait for that lock) or call back
 * into usvm except through the helpers below.
 */
#ifndef USVM_BACKEND_H
#define USVM_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <usvm.h>

#ifdef __cplusplus
extern "C" {
#endif

struct usvm_devmem;
struct usvm_pagemap_core;

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
	 * Back @dm with dm->npages device pages (set dm->priv).  Return 0, or
	 * -ENOMEM when the device memory is full: usvm then evicts the least
	 * recently used allocation and calls again; -ENODEV once unbound.
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
	 * its memory. */
	void (*unbind)(struct usvm_pagemap *pm);
	/* Release the backend's resources (the last reference is gone). */
	void (*destroy)(struct usvm_pagemap *pm);
};

/* Operations of one device allocation (drm_pagemap_devmem_ops). */
struct usvm_devmem_ops {
	/* Fill @pfn with the allocation's @npages device page numbers, in order. */
	int (*populate_devmem_pfn)(struct usvm_devmem *dm, unsigned long npages,
				   unsigned long *pfn);
	/*
	 * Take the @n CPU pages at @src[i] (managed, page aligned) into device
	 * pages @pfn[i].  Each page must leave the CPU's view atomically with
	 * its data (usvm_host_take_pages does), and device pages whose source
	 * was never touched must read as zero.  Returns the number of leading
	 * pages taken (0..n) or a negative errno; when short, *@stop says why
	 * (EBUSY: a page shared since fork or pinned; EAGAIN: busy now).
	 */
	long (*copy_to_devmem)(struct usvm_devmem *dm, const unsigned long *pfn,
			       const uintptr_t *src, unsigned long n, int *stop);
	/*
	 * Put device pages @pfn[i] back into the non-present managed pages
	 * @dst[i] (usvm_host_give_pages) without waking CPU threads waiting on
	 * them: usvm wakes them once its page states say "system".  Returns
	 * pages done, or a negative errno when none was: -EAGAIN (the address
	 * space is changing) is retried later.
	 */
	long (*copy_to_ram)(struct usvm_devmem *dm, const unsigned long *pfn,
			    const uintptr_t *dst, unsigned long n);
	/* Give the device pages back to the backend's free pool.  @dm->dropped
	 * pages still hold data that nobody needs (discard it). */
	void (*devmem_release)(struct usvm_devmem *dm);
};

/* A device-memory provider (struct drm_pagemap).  Embed it in your own. */
struct usvm_pagemap {
	const struct usvm_pagemap_ops *ops;
	const struct usvm_devmem_ops *devmem_ops;
	char name[32];
	void *priv;                     /* the backend's */
	size_t capacity;                /* bytes of device memory */
	struct usvm_pagemap_core *core; /* usvm's, set by usvm_pagemap_init */
};

/* One device allocation (struct drm_pagemap_devmem), created by usvm. */
struct usvm_devmem {
	const struct usvm_devmem_ops *ops;
	struct usvm_pagemap *pagemap;
	void *priv;                     /* the backend's */
	unsigned long npages;           /* device pages to back */
	unsigned long *pfn;             /* npages device page numbers */
	unsigned long dropped;          /* pages whose data was discarded in place */
};

/**
 * usvm_pagemap_init() - make @pm a pagemap (drm_pagemap_init).
 * @pm: ops, devmem_ops and priv filled in by the backend.
 * @name: for statistics (copied).
 * @capacity: bytes of device memory.
 *
 * After it, @pm is used with usvm_pagemap_populate_mm() and friends, and
 * freed with usvm_pagemap_destroy() (which ends in ops->destroy).
 * Return: 0, -EINVAL, -ENOMEM.
 */
int usvm_pagemap_init(struct usvm_pagemap *pm, const char *name, size_t capacity);

/** usvm_pagemap_populate_default() - the populate_mm op most backends use. */
int usvm_pagemap_populate_default(struct usvm_pagemap *pm, uintptr_t start, uintptr_t end,
				  struct usvm_mm *mm, unsigned long timeslice_ms);

/** usvm_pagemap_unbound() - has usvm_pagemap_unbind() started?  1 or 0. */
int usvm_pagemap_unbound(const struct usvm_pagemap *pm);

/* ---- host-page helpers ------------------------------------------------------ */

/* Device memory in a mapping of its own, never reachable by managed pointers. */
struct usvm_host_pool {
	uintptr_t base;
	size_t size;
	int uffd;       /* registered here (SIGBUS mode: a stray access crashes) */
};

/**
 * usvm_host_pool_create() - a pool of @size bytes (page aligned) of host
 * memory for device pages, committed as it is used; not inherited by a
 * fork()ed child.  Return: 0, -EINVAL, -ENOMEM (more than RAM + swap),
 * -ENOSYS (no userfaultfd with UFFDIO_MOVE), -EPERM.
 */
int usvm_host_pool_create(size_t size, struct usvm_host_pool *out);
void usvm_host_pool_destroy(struct usvm_host_pool *pool);
/** usvm_host_pool_discard() - drop the contents of pool pages [addr, addr+len). */
void usvm_host_pool_discard(const struct usvm_host_pool *pool, uintptr_t addr, size_t len);

/**
 * usvm_host_take_pages() - move the CPU pages of [src, src+len) into pool
 * pages at @dst, for @dm (a copy_to_devmem op).  Never-touched pages are
 * zero-filled at @dst.  Return: bytes done, short when a page cannot move
 * (*@stop: the errno, e.g. EBUSY for a page shared since fork), or -errno.
 */
long usvm_host_take_pages(struct usvm_devmem *dm, const struct usvm_host_pool *pool,
			  uintptr_t dst, uintptr_t src, size_t len, int *stop);
/**
 * usvm_host_give_pages() - move pool pages [src, src+len) into the
 * non-present managed pages at @dst of @dm's address space (a copy_to_ram
 * op), waking nobody; copies when a page cannot be moved.  Return: bytes
 * done, or -errno when none was (-EAGAIN: the address space is changing).
 */
long usvm_host_give_pages(struct usvm_devmem *dm, uintptr_t dst, uintptr_t src, size_t len);

#ifdef __cplusplus
}
#endif

#endif

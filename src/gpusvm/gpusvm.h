/* SPDX-License-Identifier: MIT */
/*
 * GPU SVM (drm_gpusvm): one device's view of an mm.  Notifiers cover large
 * aligned spans; ranges are created on demand around faulting addresses with
 * the largest chunk that fits; get_pages() collects a device-usable address
 * per page under a notifier sequence number, so that an invalidation racing
 * with it makes the caller retry.
 *
 * Locking: svm->driver_lock (the driver's SVM lock) serialises
 * find_or_insert, range removal and garbage collection.  svm->notifier_lock
 * (rwlock, writer-preferring) protects the range arrays, range flags, page
 * addresses and sequence numbers; the mm's invalidation callback takes it
 * for writing, device accesses to device pages take it for reading.
 * Order: driver_lock -> mm locks (regions, block) -> notifier_lock.
 */
#ifndef USVM_GPUSVM_H
#define USVM_GPUSVM_H

#include <pthread.h>
#include "usvm.h"
#include "mm/mm.h"
#include "pagemap/pagemap.h"

struct usvm_gpusvm_notifier;

struct usvm_gpusvm_range {
	uintptr_t start, end;
	struct usvm_gpusvm_notifier *notifier;
	unsigned long notifier_seq;         /* seq of the last successful get_pages */
	/* Flags, under notifier_lock. */
	unsigned int unmapped : 1;          /* (part of) it was unmapped by the CPU */
	unsigned int partial_unmap : 1;
	unsigned int has_devmem_pages : 1;  /* the mapping includes device pages */
	unsigned int has_dma_mapping : 1;   /* the mapping is valid */
	unsigned int in_gc : 1;
	int skip_migrate;                   /* policy ONCE: migrated already (driver_lock) */
	int migrate_devmem;                 /* may be migrated to device memory (immutable) */
	struct usvm_device_addr *addrs;     /* one per page */
	/* Read duplication: the driver's read-only copy of the range (malloc'd),
	 * or NULL.  Set and read under notifier_lock; every invalidation of
	 * the range frees it (a write, a move or an unmap makes it stale). */
	void *dup;
	struct usvm_gpusvm_range *gc_next;
};

struct usvm_gpusvm_notifier {
	uintptr_t start, end;
	unsigned long seq;                  /* bumped by every invalidation */
	struct usvm_gpusvm_range **ranges;  /* sorted by start */
	size_t nranges, cap;
};

struct usvm_gpusvm;

struct usvm_gpusvm_ops {
	/* Driver callback, notifier_lock held for writing (zap device PTEs). */
	void (*invalidate)(struct usvm_gpusvm *svm, struct usvm_gpusvm_range *range,
			   enum usvm_inval_event ev);
};

struct usvm_gpusvm {
	const char *name;
	struct usvm_mm *mm;
	struct usvm_mm_notifier mmn;
	const struct usvm_gpusvm_ops *ops;
	void *driver;
	size_t chunk_sizes[4];
	int num_chunks;
	size_t notifier_size;
	pthread_mutex_t driver_lock;
	pthread_rwlock_t notifier_lock;
	struct usvm_gpusvm_notifier **notifiers; /* sorted by start */
	size_t nnotifiers, capn;
	struct usvm_gpusvm_range *gc_list;      /* under notifier_lock */
	_Atomic uint64_t ranges_created, ranges_removed, invalidations;
};

/* Per-call arguments (drm_gpusvm_ctx). */
struct usvm_gpusvm_ctx {
	struct usvm_device *device;          /* who maps */
	struct usvm_pagemap *owner;          /* its pagemap: device pages used as is */
	int peer_access;                     /* other pagemaps' pages mapped in place */
	int devmem_only;                     /* every page must be in @owner */
	/* out: bytes of the mapping by kind */
	size_t mapped_system, mapped_device, mapped_peer;
};

int usvm_gpusvm_init(struct usvm_gpusvm *svm, const char *name, struct usvm_mm *mm,
		     const size_t *chunk_sizes, int num_chunks, size_t notifier_size,
		     const struct usvm_gpusvm_ops *ops, void *driver);
void usvm_gpusvm_fini(struct usvm_gpusvm *svm);

/* driver_lock held.  Return a range, or NULL with *err: -EFAULT (nothing mapped
 * at @fault_addr, maybe unmapped meanwhile), -EAGAIN (collect first), -ENOMEM. */
struct usvm_gpusvm_range *usvm_gpusvm_range_find_or_insert(struct usvm_gpusvm *svm,
							   uintptr_t fault_addr, int *err);
/* The range holding @addr, or NULL; notifier_lock held. */
struct usvm_gpusvm_range *usvm_gpusvm_range_find(struct usvm_gpusvm *svm, uintptr_t addr);
/*
 * Collect device-usable addresses for every page of @range (hmm_range_fault
 * + device_map).  Return 0; -EFAULT (range unmapped, memory gone, or
 * devmem_only and a page not in the owner's memory); -EBUSY (invalidations
 * kept racing for a second, or a foreign page held by its timeslice).
 */
int usvm_gpusvm_range_get_pages(struct usvm_gpusvm *svm, struct usvm_gpusvm_range *range,
				struct usvm_gpusvm_ctx *ctx);
/* Valid mapping?  notifier_lock held. */
static inline int usvm_gpusvm_range_pages_valid(const struct usvm_gpusvm_range *r)
{
	return r->has_dma_mapping || r->has_devmem_pages;
}
/* Migrate every device page of the range back to system memory. */
int usvm_gpusvm_range_evict(struct usvm_gpusvm *svm, struct usvm_gpusvm_range *range);
/* Remove unmapped ranges (driver_lock held); evicts partially unmapped ones. */
void usvm_gpusvm_garbage_collect(struct usvm_gpusvm *svm);
size_t usvm_gpusvm_range_count(struct usvm_gpusvm *svm);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Migration between system memory and device allocations: the page-level
 * steps of drm_pagemap_migrate_to_devmem / __drm_pagemap_migrate_to_ram /
 * drm_pagemap_evict_to_ram, on top of the backends' copy ops.  This layer
 * also gives mm its view of device memory (usvm_devmem_mm_ops).
 */
#ifndef USVM_MIGRATE_H
#define USVM_MIGRATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <usvm/backend.h>
#include "mm/mm.h"

/*
 * usvm's part of a pagemap (pm->core): its live device allocations, the
 * bind state and the statistics.  Defined here, below the pagemap layer,
 * because every migration updates it.
 */
struct usvm_pagemap_core {
	atomic_int refs;                /* usvm_pagemap_get/put (drm_pagemap kref) */
	pthread_mutex_t lock;           /* lru */
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
		_Atomic uint64_t headroom_evictions, headroom_evicted_bytes;
	} st;
	/* Evicting ahead of need (src/pagemap/headroom.c). */
	struct pagemap_headroom {
		size_t bytes;           /* kept free; 0: off */
		pthread_mutex_t lock;
		pthread_cond_t cv;
		pthread_t thread;
		int started, kicked;    /* under lock */
		atomic_int stopping;
		uint64_t fork_gen;      /* usvm_fork_gen at init: the thread's process */
	} headroom;
};

/*
 * One device allocation: what mm sees (base), what the backend sees (pub)
 * and usvm's bookkeeping.  All its pages lie in one USVM_BLOCK_SIZE-aligned
 * block of one mm, so that the block lock of that block protects every
 * page state change of the allocation.
 */
struct devmem {
	struct mm_devmem base;
	struct usvm_devmem pub;
	struct usvm_mm *mm;
	struct usvm_region *region;     /* the managed region of its pages */
	uintptr_t block;                /* block start address */
	uintptr_t start;                /* where it was populated from (advice lookups) */
	/* Under the block lock: */
	unsigned long live;             /* pages still holding data */
	uintptr_t *va;                  /* va[i]: managed page held by pfn[i], 0 if none */
	uint64_t timeslice_expire_ns;   /* no CPU-fault migration before this */
	/* Under pagemap->core->lock: */
	struct list_head lru_link;
	int on_lru;
	atomic_int refcount;
};

static inline struct devmem *to_devmem(struct mm_devmem *m)
{
	return container_of(m, struct devmem, base);
}

static inline struct devmem *devmem_of(struct usvm_devmem *pub)
{
	return container_of(pub, struct devmem, pub);
}

/* What mm calls on a device-resident page (dev_pagemap_ops). */
extern const struct mm_devmem_ops usvm_devmem_mm_ops;

/* Outcome of populating one block piece. */
struct migrate_piece_result {
	unsigned long migrated, present, from_peer;
	/* Pages shared since fork stopped the move here: make them exclusive
	 * (no lock held) and try again. */
	uintptr_t unshare_at;
};

/*
 * Populate [start, end) (inside one block and one region of @mm) with
 * device memory of @pm.  Caller holds mm->fork_lock and mm->regions_lock
 * for reading and no block lock.  Return 0, 1 when nothing had to move, or
 * -errno: -EAGAIN (retry without locks), -EBUSY (res->unshare_at says
 * whether unsharing may help), -ENOMEM, -EIO, -EFAULT.
 */
int migrate_piece_to_devmem(struct usvm_pagemap *pm, struct usvm_mm *mm,
			    struct usvm_region *r, uintptr_t start, uintptr_t end,
			    unsigned long timeslice_ms, struct migrate_piece_result *res);

/*
 * Bring every live page of @dm back to system memory.  Caller holds the
 * block lock of dm->block.  Return bytes moved or -errno (-EAGAIN: retry
 * without locks; nothing lost: pages not moved stay in device memory).
 */
long migrate_devmem_to_ram(struct devmem *dm, enum mm_migrate_cause why);
/* The same for the pages of @dm in [@from, @to) only. */
long migrate_devmem_span_to_ram(struct devmem *dm, enum mm_migrate_cause why, uintptr_t from,
				uintptr_t to);

/* Evict @dm (takes its block lock).  Returns bytes moved or -errno. */
long devmem_evict(struct devmem *dm, enum mm_migrate_cause why);

/* Evict the least recently used allocation of @pm: bytes, 0 when none is
 * left, 1 when the victim went away by itself, or -errno (-EAGAIN). */
long pagemap_evict_lru(struct usvm_pagemap *pm, enum mm_migrate_cause why);

/* Is a CPU page (present or swapped) mapped at @va?  1 when unsure. */
int usvm_host_page_mapped(uintptr_t va);

/* Mark an allocation recently used (a device touched it). */
void devmem_touch(struct devmem *dm);
void devmem_get(struct devmem *dm);
void devmem_put(struct devmem *dm);

#endif

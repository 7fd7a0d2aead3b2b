/* SPDX-License-Identifier: MIT */
/*
 * Migration between system memory and device allocations: the page-level
 * steps of drm_pagemap_migrate_to_devmem / __drm_pagemap_migrate_to_ram /
 * drm_pagemap_evict_to_ram, on top of the backends' copy ops.  This layer
 * also gives mm its view of device memory (usvm_devmem_mm_ops).
 */
#ifndef USVM_MIGRATE_H
#define USVM_MIGRATE_H

#include "mm/mm.h"
#include "pagemap/pagemap.h"

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
long migrate_devmem_to_ram(struct usvm_devmem *dm, enum mm_migrate_cause why);

/* Evict @dm (takes its block lock).  Returns bytes moved or -errno. */
long devmem_evict(struct usvm_devmem *dm);

/* Evict the least recently used allocation of @pm: bytes, 0 when none is
 * left, 1 when the victim went away by itself, or -errno (-EAGAIN). */
long pagemap_evict_lru(struct usvm_pagemap *pm);

/* Mark an allocation recently used (a device touched it). */
void usvm_devmem_touch(struct usvm_devmem *dm);
void usvm_devmem_get(struct usvm_devmem *dm);
void usvm_devmem_put(struct usvm_devmem *dm);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Migration between system memory and device allocations: the page-level
 * steps of drm_pagemap_migrate_to_devmem / __drm_pagemap_migrate_to_ram /
 * drm_pagemap_evict_to_ram, on top of the host-page helpers.
 */
#ifndef USVM_MIGRATE_H
#define USVM_MIGRATE_H

#include "mm/mm.h"
#include "pagemap/pagemap.h"

enum usvm_migrate_reason {
	USVM_MIGRATE_CPU_FAULT,
	USVM_MIGRATE_EVICT,
	USVM_MIGRATE_PEER,        /* another pagemap takes the pages */
	USVM_MIGRATE_RANGE,       /* range evict / unregister / teardown */
};

/* Outcome of populating one block piece. */
struct migrate_piece_result {
	unsigned long migrated, cleared, present, from_peer;
};

/*
 * Populate [start, end) (inside one block and one region of @mm) with
 * device memory of @pm.  Caller holds mm->regions_lock for reading and no
 * block lock.  Return 0, 1 when nothing had to move, or -errno.
 */
int migrate_piece_to_devmem(struct usvm_pagemap *pm, struct usvm_mm *mm,
			    struct usvm_region *r, uintptr_t start, uintptr_t end,
			    unsigned long timeslice_ms, struct migrate_piece_result *res);

/*
 * Bring every live page of @dm back to system memory.  Caller holds the
 * block lock of dm->block.  Return bytes moved or -errno (nothing lost: pages
 * not moved stay in device memory).
 */
long migrate_devmem_to_ram(struct usvm_devmem *dm, enum usvm_migrate_reason why);

/* Discard the device copy of @dm's page @idx (block lock held). */
void devmem_drop_page(struct usvm_devmem *dm, uint32_t idx);

/* Evict @dm (takes its block lock).  Returns bytes moved or -errno. */
long devmem_evict(struct usvm_devmem *dm);

#endif

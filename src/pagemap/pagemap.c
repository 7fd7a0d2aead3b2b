// SPDX-License-Identifier: MIT
/*
 * The pagemap core (drm_pagemap.c): populate_mm with its best-effort
 * contract, eviction, unbind and statistics.  Backends provide the device
 * memory (src/pagemap/<backend>/).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include <unistd.h>
#include "pagemap.h"
#include "mm/mm.h"
#include "migrate/migrate.h"

int usvm_pagemap_init(struct usvm_pagemap *pm, const char *name, size_t capacity)
{
	snprintf(pm->name, sizeof(pm->name), "%s", name && *name ? name : "device");
	pm->capacity = capacity;
	list_init(&pm->lru);
	atomic_init(&pm->unbound, 0);
	atomic_init(&pm->destroyed, 0);
	atomic_init(&pm->offlru, 0);
	if (pthread_mutex_init(&pm->lock, NULL))
		return -ENOMEM;
	if (pthread_rwlock_init(&pm->bind_lock, NULL)) {
		pthread_mutex_destroy(&pm->lock);
		return -ENOMEM;
	}
	return 0;
}

const char *usvm_pagemap_name(const struct usvm_pagemap *pm)
{
	return pm ? pm->name : "system";
}

/* Check that all of [start, end) is managed and usable, before doing anything. */
static int range_is_managed(struct usvm_mm *mm, uintptr_t start, uintptr_t end)
{
	uintptr_t a = start;

	while (a < end) {
		struct usvm_region *r = mm_region_find(mm, a);

		if (!r || r->dying)
			return -EFAULT;
		a = r->end;
	}
	return 0;
}

int usvm_pagemap_populate_default(struct usvm_pagemap *pm, uintptr_t start, uintptr_t end,
				  struct usvm_mm *mm, unsigned long timeslice_ms)
{
	uintptr_t cur;
	int ret = 0, nmoved = 0;

	pthread_rwlock_rdlock(&mm->regions_lock);
	ret = range_is_managed(mm, start, end);
	for (cur = start; !ret && cur < end;) {
		struct usvm_region *r = mm_region_find(mm, cur);
		uintptr_t piece_end = MIN_UL(end, ALIGN_DOWN_UL(cur, USVM_BLOCK_SIZE) + USVM_BLOCK_SIZE);
		struct migrate_piece_result res;
		int err;

		if (!r) {
			ret = -EFAULT;
			break;
		}
		piece_end = MIN_UL(piece_end, r->end);
		err = migrate_piece_to_devmem(pm, mm, r, cur, piece_end, timeslice_ms, &res);
		STAT_ADD(pm->st.pages_already_present, res.present);
		STAT_ADD(pm->st.pages_from_peer, res.from_peer);
		STAT_ADD(pm->st.pages_migrated_in, res.migrated);
		if (err == 0)
			nmoved++;
		else if (err == -EBUSY)
			ret = ret ? ret : -EBUSY; /* best effort: go on with the rest */
		else if (err < 0)
			ret = err;
		cur = piece_end;
	}
	pthread_rwlock_unlock(&mm->regions_lock);
	if (!ret && !nmoved)
		return 1; /* nothing to do: everything already there */
	return ret;
}

int usvm_pagemap_populate_mm(struct usvm_pagemap *pm, void *start_p, void *end_p,
			     struct usvm_mm *mm, unsigned long timeslice_ms)
{
	uintptr_t start = (uintptr_t)start_p, end = (uintptr_t)end_p;
	int ret;

	if (!pm || !mm)
		return -EINVAL;
	STAT_ADD(pm->st.populate_calls, 1);
	if ((start | end) & (USVM_PAGE_SIZE - 1) || start >= end) {
		STAT_ADD(pm->st.populate_einval, 1);
		return -EINVAL;
	}
	if (atomic_load(&pm->unbound)) {
		STAT_ADD(pm->st.populate_enodev, 1);
		return -ENODEV;
	}
	pthread_rwlock_rdlock(&pm->bind_lock);
	if (atomic_load(&pm->unbound))
		ret = -ENODEV; /* unbind started while we waited */
	else
		ret = pm->ops->populate_mm(pm, start, end, mm, timeslice_ms);
	pthread_rwlock_unlock(&pm->bind_lock);
	switch (ret) {
	case 0: STAT_ADD(pm->st.populate_ok, 1); break;
	case 1: STAT_ADD(pm->st.populate_noop, 1); ret = 0; break;
	case -ENOMEM: STAT_ADD(pm->st.populate_enomem, 1); break;
	case -ENODEV: STAT_ADD(pm->st.populate_enodev, 1); break;
	case -EFAULT: STAT_ADD(pm->st.populate_efault, 1); break;
	case -EINVAL: STAT_ADD(pm->st.populate_einval, 1); break;
	default: STAT_ADD(pm->st.populate_ebusy, 1); break;
	}
	return ret;
}

long usvm_pagemap_evict(struct usvm_pagemap *pm, struct usvm_mm *mm, const void *addr)
{
	long total = 0, ret;
	uint64_t n, i;

	if (!pm)
		return -EINVAL;
	if (addr) {
		struct usvm_page *pg;
		struct usvm_devmem *dm;

		if (!mm)
			return -EINVAL;
		pthread_rwlock_rdlock(&mm->regions_lock);
		pg = mm_page(mm, (uintptr_t)addr, NULL);
		ret = -ENOENT;
		if (pg) {
			pthread_mutex_t *bl = mm_block_lock(mm, (uintptr_t)addr);

			pthread_mutex_lock(bl);
			dm = pg->dm;
			if (dm && dm->pagemap == pm)
				ret = migrate_devmem_to_ram(dm, USVM_MIGRATE_EVICT);
			pthread_mutex_unlock(bl);
		}
		pthread_rwlock_unlock(&mm->regions_lock);
		return ret;
	}
	/* Everything: bounded by what is live now, so concurrent populates end it. */
	n = STAT_READ(pm->st.live_allocations);
	for (i = 0; i < n + 1; i++) {
		ret = pagemap_evict_lru(pm);
		if (ret == 0)
			break;
		if (ret > 1)
			total += ret;
	}
	return total;
}

int usvm_pagemap_unbind(struct usvm_pagemap *pm)
{
	if (!pm)
		return -EINVAL;
	/* New populates fail from here on ... */
	atomic_store(&pm->unbound, 1);
	/* ... in-flight ones finish ... */
	pthread_rwlock_wrlock(&pm->bind_lock);
	/* ... and every device page goes back to system memory. */
	while (pagemap_evict_lru(pm) != 0)
		;
	/* Allocations being released by CPU faults right now: let them finish
	 * with the pool before it goes away. */
	while (atomic_load(&pm->offlru) > 0)
		usleep(20);
	if (pm->ops->unbind)
		pm->ops->unbind(pm);
	pthread_rwlock_unlock(&pm->bind_lock);
	return 0;
}

void usvm_pagemap_destroy(struct usvm_pagemap *pm)
{
	if (!pm || atomic_exchange(&pm->destroyed, 1))
		return;
	usvm_pagemap_unbind(pm);
	pthread_rwlock_destroy(&pm->bind_lock);
	pthread_mutex_destroy(&pm->lock);
	pm->ops->destroy(pm);
}

int usvm_pagemap_stats(struct usvm_pagemap *pm, struct usvm_pagemap_stats *o)
{
	if (!pm || !o)
		return -EINVAL;
	memset(o, 0, sizeof(*o));
	o->capacity_bytes = pm->capacity;
#define C(f) o->f = STAT_READ(pm->st.f)
	C(used_bytes); C(peak_used_bytes); C(live_allocations);
	C(populate_calls); C(populate_ok); C(populate_noop);
	C(populate_enomem); C(populate_enodev); C(populate_efault);
	C(populate_einval); C(populate_ebusy);
	C(pages_migrated_in); C(pages_cleared); C(pages_already_present); C(pages_from_peer);
	C(migrations_to_dev); C(bytes_to_dev); C(ns_to_dev);
	C(migrations_to_ram); C(bytes_to_ram); C(ns_to_ram);
	C(cpu_fault_migrations); C(evictions); C(evicted_bytes);
#undef C
	o->unbound = (uint64_t)atomic_load(&pm->unbound);
	return 0;
}

static double gbps(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / (double)ns : 0.0;
}

void usvm_pagemap_stats_print(struct usvm_pagemap *pm, FILE *f)
{
	struct usvm_pagemap_stats s;

	if (usvm_pagemap_stats(pm, &s))
		return;
	fprintf(f, "pagemap %s%s: %.1f MiB capacity, %.1f MiB used (peak %.1f), %" PRIu64 " allocations\n",
		pm->name, s.unbound ? " (unbound)" : "", s.capacity_bytes / 1048576.0,
		s.used_bytes / 1048576.0, s.peak_used_bytes / 1048576.0, s.live_allocations);
	fprintf(f, "  populate   %" PRIu64 " calls: %" PRIu64 " ok, %" PRIu64 " already there, %" PRIu64
		" ENOMEM, %" PRIu64 " ENODEV, %" PRIu64 " EFAULT, %" PRIu64 " EINVAL, %" PRIu64 " EBUSY\n",
		s.populate_calls, s.populate_ok, s.populate_noop, s.populate_enomem,
		s.populate_enodev, s.populate_efault, s.populate_einval, s.populate_ebusy);
	fprintf(f, "  pages      %" PRIu64 " migrated in (%" PRIu64 " cleared), %" PRIu64
		" already present, %" PRIu64 " from another device\n",
		s.pages_migrated_in, s.pages_cleared, s.pages_already_present, s.pages_from_peer);
	fprintf(f, "  to device  %" PRIu64 " migrations, %.1f MiB, %.2f GB/s\n",
		s.migrations_to_dev, s.bytes_to_dev / 1048576.0, gbps(s.bytes_to_dev, s.ns_to_dev));
	fprintf(f, "  to system  %" PRIu64 " migrations, %.1f MiB, %.2f GB/s (%" PRIu64
		" by CPU faults, %" PRIu64 " evictions = %.1f MiB)\n",
		s.migrations_to_ram, s.bytes_to_ram / 1048576.0, gbps(s.bytes_to_ram, s.ns_to_ram),
		s.cpu_fault_migrations, s.evictions, s.evicted_bytes / 1048576.0);
}

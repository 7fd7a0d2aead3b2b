// SPDX-License-Identifier: MIT
/*
 * The pagemap core (drm_pagemap.c): populate_mm with its best-effort
 * contract, eviction, unbind and statistics.  Backends provide the device
 * memory (src/pagemap/<backend>/).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <inttypes.h>
#include <unistd.h>
#include "pagemap.h"
#include "mm/mm.h"
#include "migrate/migrate.h"

static void loc_get(const void *loc)
{
	usvm_pagemap_get((struct usvm_pagemap *)loc);
}

static void loc_put(const void *loc)
{
	usvm_pagemap_put((struct usvm_pagemap *)loc);
}

/* A pagemap named in advice is kept alive by the advice (mm/advise.c). */
static const struct mm_location_ops pagemap_location_ops = {
	.get = loc_get,
	.put = loc_put,
};

int usvm_pagemap_init(struct usvm_pagemap *pm, const char *name, size_t capacity)
{
	struct usvm_pagemap_core *c;

	if (!pm || !pm->ops || !pm->devmem_ops || !capacity)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	snprintf(pm->name, sizeof(pm->name), "%s", name && *name ? name : "device");
	pm->capacity = capacity;
	list_init(&c->lru);
	atomic_init(&c->refs, 1);
	if (pthread_mutex_init(&c->lock, NULL))
		goto err_free;
	if (pthread_rwlock_init(&c->bind_lock, NULL))
		goto err_mutex;
	pm->core = c;
	pagemap_headroom_init(pm);
	mm_set_location_ops(&pagemap_location_ops);
	return 0;
err_mutex:
	pthread_mutex_destroy(&c->lock);
err_free:
	free(c);
	return -ENOMEM;
}

int usvm_pagemap_unbound(const struct usvm_pagemap *pm)
{
	return atomic_load(&pm->core->unbound);
}

const char *usvm_pagemap_name(const struct usvm_pagemap *pm)
{
	return pm ? pm->name : "system";
}

/* ---- populate ------------------------------------------------------------------ */

/* Is all of [start, end) managed and usable?  regions_lock held. */
static int range_is_managed(struct usvm_mm *mm, uintptr_t start, uintptr_t end)
{
	uintptr_t a = start;

	while (a < end) {
		struct usvm_region *r = mm_region_find(mm, a);

		if (!r || atomic_load(&r->dying) || atomic_load(&r->gone))
			return -EFAULT;
		a = r->end;
	}
	return 0;
}

/* End of the piece starting at @cur: its block, its region, the request. */
static uintptr_t piece_end(struct usvm_mm *mm, uintptr_t cur, uintptr_t end)
{
	uintptr_t e = MIN_UL(end, ALIGN_DOWN_UL(cur, USVM_BLOCK_SIZE) + USVM_BLOCK_SIZE);
	struct usvm_region *r;

	usvm_rwlock_rdlock(&mm->regions_lock);
	r = mm_region_find(mm, cur);
	if (r)
		e = MIN_UL(e, r->end);
	usvm_rwlock_unlock(&mm->regions_lock);
	return e;
}

/*
 * One block piece, with the retries the contract allows: -EAGAIN (the
 * address space is changing, a page is briefly busy) is retried for a
 * while; pages shared since fork are made exclusive (the kernel copies
 * them if the child still shares them) and moved then.
 */
static int populate_piece(struct usvm_pagemap *pm, struct usvm_mm *mm, uintptr_t start,
			  uintptr_t end, unsigned long timeslice_ms)
{
	struct usvm_backoff bo = USVM_BACKOFF_INIT(1000);
	int unshares = 0;

	for (;;) {
		struct migrate_piece_result res = { 0 };
		struct usvm_region *r;
		int err;

		usvm_rwlock_rdlock(&mm->regions_lock);
		r = mm_region_find(mm, start);
		err = r && end <= r->end ?
		      migrate_piece_to_devmem(pm, mm, r, start, end, timeslice_ms, &res) : -EFAULT;
		usvm_rwlock_unlock(&mm->regions_lock);
		STAT_ADD(pm->core->st.pages_from_peer, res.from_peer);
		STAT_ADD(pm->core->st.pages_migrated_in, res.migrated);
		if (err == -EBUSY && res.unshare_at && unshares++ < 3) {
			/* No lock held: the faults this may raise are served. */
			madvise((void *)res.unshare_at, end - res.unshare_at, MADV_POPULATE_WRITE);
			continue;
		}
		if (err == -EAGAIN && usvm_backoff(&bo))
			continue;
		if (err >= 0 || err == -EBUSY)
			STAT_ADD(pm->core->st.pages_already_present, res.present);
		return err == -EAGAIN ? -EBUSY : err;
	}
}

int usvm_pagemap_populate_default(struct usvm_pagemap *pm, uintptr_t start, uintptr_t end,
				  struct usvm_mm *mm, unsigned long timeslice_ms)
{
	int ret, partial = 0, nmoved = 0;
	uintptr_t cur, pe;

	/* A munmap/madvise that returned before this call has taken effect. */
	mm_events_settle(mm);
	pthread_rwlock_rdlock(&mm->fork_lock);
	usvm_rwlock_rdlock(&mm->regions_lock);
	ret = range_is_managed(mm, start, end);
	usvm_rwlock_unlock(&mm->regions_lock);
	for (cur = start; !ret && cur < end; cur = pe) {
		int err;

		pe = piece_end(mm, cur, end);
		err = populate_piece(pm, mm, cur, pe, timeslice_ms);
		if (err == 0)
			nmoved++;
		else if (err == -EBUSY || err == -EIO)
			partial = partial ? partial : err; /* best effort: go on */
		else if (err < 0)
			ret = err;
	}
	pthread_rwlock_unlock(&mm->fork_lock);
	if (ret || partial)
		return ret ? ret : partial;
	return nmoved ? 0 : 1; /* 1: everything was there already */
}

int usvm_pagemap_populate_mm(struct usvm_pagemap *pm, void *start_p, void *end_p,
			     struct usvm_mm *mm, unsigned long timeslice_ms)
{
	uintptr_t start = (uintptr_t)start_p, end = (uintptr_t)end_p;
	uint64_t t0 = usvm_now_ns();
	int ret;

	if (!pm || !mm)
		return -EINVAL;
	STAT_ADD(pm->core->st.populate_calls, 1);
	if ((start | end) & (USVM_PAGE_SIZE - 1) || start >= end) {
		STAT_ADD(pm->core->st.populate_einval, 1);
		return -EINVAL;
	}
	if (!mm_usable(mm))
		return -ENODEV;
	if (atomic_load(&pm->core->unbound)) {
		STAT_ADD(pm->core->st.populate_enodev, 1);
		return -ENODEV;
	}
	pthread_rwlock_rdlock(&pm->core->bind_lock);
	if (atomic_load(&pm->core->unbound))
		ret = -ENODEV; /* unbind started while we waited */
	else
		ret = pm->ops->populate_mm(pm, start, end, mm, timeslice_ms);
	pthread_rwlock_unlock(&pm->core->bind_lock);
	switch (ret) {
	case 0:
		STAT_ADD(pm->core->st.populate_ok, 1);
		pagemap_headroom_kick(pm);
		break;
	case 1: STAT_ADD(pm->core->st.populate_noop, 1); ret = 0; break;
	case -ENOMEM: STAT_ADD(pm->core->st.populate_enomem, 1); break;
	case -ENODEV: STAT_ADD(pm->core->st.populate_enodev, 1); break;
	case -EFAULT: STAT_ADD(pm->core->st.populate_efault, 1); break;
	case -EINVAL: STAT_ADD(pm->core->st.populate_einval, 1); break;
	case -EIO: STAT_ADD(pm->core->st.populate_eio, 1); break;
	default: STAT_ADD(pm->core->st.populate_ebusy, 1); break;
	}
	if (ret < 0)
		usvm_log2("%s: populate [%#lx, %#lx): %s", pm->name, (unsigned long)start,
			 (unsigned long)end, usvm_strerror(ret));
	usvm_event(USVM_EV_POPULATE, USVM_CAUSE_POPULATE, start, end - start, NULL, pm->name, t0,
		   usvm_now_ns() - t0, ret);
	return ret;
}

/* ---- eviction, unbind, lifetime -------------------------------------------------- */

/* Evict the allocation of @pm holding @addr in @mm. */
static long evict_one(struct usvm_pagemap *pm, struct usvm_mm *mm, uintptr_t addr)
{
	struct usvm_backoff bo = USVM_BACKOFF_INIT(10000);
	long ret;

	mm_events_settle(mm);
	do {
		struct usvm_region *r;

		ret = -ENOENT;
		usvm_rwlock_rdlock(&mm->regions_lock);
		r = mm_region_find(mm, addr);
		if (r) {
			struct mm_devmem *m;

			mm_block_lock_acquire(mm, addr);
			m = (region_blk(r, addr) & MM_BLK_STATE) ? region_page(r, addr)->dm : NULL;
			if (m && m->pagemap == pm)
				ret = migrate_devmem_to_ram(to_devmem(m), MM_MIGRATE_EVICT);
			mm_block_lock_release(mm, addr);
		}
		usvm_rwlock_unlock(&mm->regions_lock);
	} while ((ret == -EAGAIN || ret == -EIO) && usvm_backoff(&bo));
	return ret;
}

long usvm_pagemap_evict(struct usvm_pagemap *pm, struct usvm_mm *mm, const void *addr)
{
	struct usvm_backoff bo = USVM_BACKOFF_INIT(10000);
	long total = 0, ret;
	uint64_t n, i;

	if (!pm)
		return -EINVAL;
	if (addr) {
		if (!mm)
			return -EINVAL;
		if (!mm_usable(mm))
			return -ENODEV;
		return evict_one(pm, mm, (uintptr_t)addr);
	}
	/* Everything: bounded by what is live now, so concurrent populates end it. */
	n = STAT_READ(pm->core->st.live_allocations);
	for (i = 0; i < n + 1; i++) {
		ret = pagemap_evict_lru(pm, MM_MIGRATE_EVICT);
		if (ret == 0)
			break;
		if (ret < 0) {
			if (!usvm_backoff(&bo))
				return total ? total : ret;
			i--; /* the same victim again */
			continue;
		}
		if (ret > 1)
			total += ret;
	}
	return total;
}

int usvm_pagemap_unbind(struct usvm_pagemap *pm)
{
	struct usvm_backoff bo = USVM_BACKOFF_INIT(60000);
	uint64_t t0 = usvm_now_ns();
	int again;
	long ret;

	if (!pm)
		return -EINVAL;
	/* New populates fail from here on ... */
	again = atomic_exchange(&pm->core->unbound, 1);
	if (!again)
		usvm_log("%s: unbind: bringing every device page home", pm->name);
	/* ... in-flight ones finish ... */
	pthread_rwlock_wrlock(&pm->core->bind_lock);
	/* ... and every device page goes back to system memory; allocations
	 * being released by CPU faults right now finish with the pool first. */
	while ((ret = pagemap_evict_lru(pm, MM_MIGRATE_UNBIND)) != 0 ||
	       atomic_load(&pm->core->offlru) > 0) {
		if (ret > 0)
			continue;
		if (!usvm_backoff(&bo)) {
			pthread_rwlock_unlock(&pm->core->bind_lock);
			usvm_log("%s: unbind: pages could not come home (%ld); device kept",
				 pm->name, ret);
			return -EBUSY;
		}
	}
	if (pm->ops->unbind)
		pm->ops->unbind(pm);
	pthread_rwlock_unlock(&pm->core->bind_lock);
	if (again)
		return 0; /* unbound before: one event, one log line */
	usvm_log("%s: unbound", pm->name);
	usvm_event(USVM_EV_UNBIND, USVM_CAUSE_UNBIND, 0, 0, pm->name, "system", t0,
		   usvm_now_ns() - t0, 0);
	return 0;
}

void usvm_pagemap_get(struct usvm_pagemap *pm)
{
	if (pm)
		atomic_fetch_add(&pm->core->refs, 1);
}

void usvm_pagemap_put(struct usvm_pagemap *pm)
{
	if (!pm || atomic_fetch_sub(&pm->core->refs, 1) != 1)
		return;
	pagemap_headroom_stop(pm);
	usvm_pagemap_unbind(pm);
	pthread_rwlock_destroy(&pm->core->bind_lock);
	pthread_mutex_destroy(&pm->core->lock);
	free(pm->core);
	pm->core = NULL;
	pm->ops->destroy(pm);
}

void usvm_pagemap_destroy(struct usvm_pagemap *pm)
{
	if (!pm || atomic_exchange(&pm->core->destroyed, 1))
		return;
	usvm_pagemap_unbind(pm);
	usvm_pagemap_put(pm);
}

int usvm_pagemap_stats(struct usvm_pagemap *pm, struct usvm_pagemap_stats *o)
{
	if (!pm || !o)
		return -EINVAL;
	memset(o, 0, sizeof(*o));
	o->capacity_bytes = pm->capacity;
#define C(f) o->f = STAT_READ(pm->core->st.f)
	C(used_bytes); C(peak_used_bytes); C(live_allocations);
	C(populate_calls); C(populate_ok); C(populate_noop);
	C(populate_enomem); C(populate_enodev); C(populate_efault);
	C(populate_einval); C(populate_ebusy); C(populate_eio);
	C(pages_migrated_in); C(pages_cleared); C(pages_already_present); C(pages_from_peer);
	C(migrations_to_dev); C(bytes_to_dev); C(ns_to_dev);
	C(migrations_to_ram); C(bytes_to_ram); C(ns_to_ram);
	C(cpu_fault_migrations); C(evictions); C(evicted_bytes);
	C(headroom_evictions); C(headroom_evicted_bytes);
#undef C
	o->headroom_bytes = pm->core->headroom.bytes;
	o->unbound = (uint64_t)atomic_load(&pm->core->unbound);
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

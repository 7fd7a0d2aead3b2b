// SPDX-License-Identifier: MIT
/*
 * Page migration between system memory and device allocations.
 *
 * Every function here changes page states under the block lock of the pages'
 * block, which plays the role of the kernel's page locks + migration entries:
 * a CPU fault on a page being migrated waits for the lock and then sees the
 * final state.  Data moves by the backend's copy ops (for host-backed pools,
 * UFFDIO_MOVE of whole pages, so a concurrent CPU write either lands before
 * the move and travels with the page, or faults and waits).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "migrate.h"
#include "mm/uffd.h"

static void devmem_free(struct usvm_devmem *dm)
{
	free(dm);
}

void usvm_devmem_get(struct usvm_devmem *dm)
{
	atomic_fetch_add(&dm->refcount, 1);
}

void usvm_devmem_put(struct usvm_devmem *dm)
{
	if (atomic_fetch_sub(&dm->refcount, 1) == 1)
		devmem_free(dm);
}

/* Last page gone: give the device memory back (drm_pagemap_zdd_destroy). */
static void devmem_detach(struct usvm_devmem *dm)
{
	struct usvm_pagemap *pm = dm->pagemap;
	int was_on_lru;

	pthread_mutex_lock(&pm->lock);
	was_on_lru = dm->on_lru;
	if (was_on_lru) {
		list_del_init(&dm->lru_link);
		dm->on_lru = 0;
	}
	if (was_on_lru)
		atomic_fetch_add(&pm->offlru, 1);
	pthread_mutex_unlock(&pm->lock);
	if (!was_on_lru)
		return;
	STAT_SUB(pm->st.used_bytes, dm->npages * USVM_PAGE_SIZE);
	STAT_SUB(pm->st.live_allocations, 1);
	dm->ops->devmem_release(dm);
	atomic_fetch_sub(&pm->offlru, 1);
	usvm_devmem_put(dm);
}

void devmem_drop_page(struct usvm_devmem *dm, uint32_t idx)
{
	if (!dm->va[idx])
		return;
	dm->va[idx] = 0;
	if (--dm->live == 0)
		devmem_detach(dm);
}

void usvm_devmem_touch(struct usvm_devmem *dm)
{
	struct usvm_pagemap *pm = dm->pagemap;

	pthread_mutex_lock(&pm->lock);
	if (dm->on_lru) {
		list_del_init(&dm->lru_link);
		list_add_tail(&dm->lru_link, &pm->lru);
		dm->on_lru = 1;
	}
	pthread_mutex_unlock(&pm->lock);
}

long migrate_devmem_to_ram(struct usvm_devmem *dm, enum usvm_migrate_reason why)
{
	struct usvm_mm *mm = dm->mm;
	struct usvm_pagemap *pm = dm->pagemap;
	unsigned long pfn[USVM_BLOCK_PAGES];
	uintptr_t va[USVM_BLOCK_PAGES];
	uint32_t idx[USVM_BLOCK_PAGES];
	unsigned long n = 0, i;
	uintptr_t lo = UINTPTR_MAX, hi = 0;
	uint64_t t0;
	long done;
	int uffd;

	for (i = 0; i < dm->npages; i++) {
		if (!dm->va[i])
			continue;
		pfn[n] = dm->pfn[i];
		va[n] = dm->va[i];
		idx[n] = (uint32_t)i;
		lo = MIN_UL(lo, va[n]);
		hi = MAX_UL(hi, va[n] + USVM_PAGE_SIZE);
		n++;
	}
	if (!n)
		return 0;
	/* Device mappings go first: no device may read a page while it moves. */
	mm_invalidate(mm, lo, hi, USVM_INVAL_MIGRATE, NULL);
	t0 = usvm_now_ns();
	done = dm->ops->copy_to_ram(dm, pfn, va, n);
	if (done < 0)
		return done;
	for (i = 0; i < (unsigned long)done; i++) {
		struct usvm_page *pg = region_page(dm->region, va[i]);

		pg->dm = NULL;
		pg->idx = 0;
	}
	t0 = usvm_now_ns() - t0;
	STAT_ADD(mm->st.migrations_to_ram, 1);
	STAT_ADD(mm->st.bytes_to_ram, (uint64_t)done * USVM_PAGE_SIZE);
	STAT_ADD(mm->st.ns_to_ram, t0);
	STAT_ADD(pm->st.migrations_to_ram, 1);
	STAT_ADD(pm->st.bytes_to_ram, (uint64_t)done * USVM_PAGE_SIZE);
	STAT_ADD(pm->st.ns_to_ram, t0);
	if (why == USVM_MIGRATE_CPU_FAULT)
		STAT_ADD(pm->st.cpu_fault_migrations, 1);
	if (why == USVM_MIGRATE_EVICT) {
		STAT_ADD(pm->st.evictions, 1);
		STAT_ADD(pm->st.evicted_bytes, (uint64_t)done * USVM_PAGE_SIZE);
	}
	uffd = dm->region->uffd; /* dm may be released by the drops below */
	for (i = 0; i < (unsigned long)done; i++)
		devmem_drop_page(dm, idx[i]);
	/* Only now, with states saying "system" and the device memory free
	 * again, may the CPU threads waiting on these pages go on. */
	if (done)
		uffd_wake(uffd, lo, hi - lo);
	if ((unsigned long)done < n)
		return -EIO;
	return done * (long)USVM_PAGE_SIZE;
}

long devmem_evict(struct usvm_devmem *dm)
{
	pthread_mutex_t *bl = mm_block_lock(dm->mm, dm->block);
	long ret = 0;

	pthread_mutex_lock(bl);
	if (dm->live)
		ret = migrate_devmem_to_ram(dm, USVM_MIGRATE_EVICT);
	pthread_mutex_unlock(bl);
	return ret;
}

/* Evict the least recently used allocation of @pm.  Returns bytes, 0 if none. */
long pagemap_evict_lru(struct usvm_pagemap *pm)
{
	struct usvm_devmem *dm;
	long ret;

	pthread_mutex_lock(&pm->lock);
	if (list_empty(&pm->lru)) {
		pthread_mutex_unlock(&pm->lock);
		return 0;
	}
	dm = container_of(pm->lru.next, struct usvm_devmem, lru_link);
	usvm_devmem_get(dm);
	/* Rotate so that concurrent evictors pick different victims. */
	list_del_init(&dm->lru_link);
	list_add_tail(&dm->lru_link, &pm->lru);
	pthread_mutex_unlock(&pm->lock);
	ret = devmem_evict(dm);
	usvm_devmem_put(dm);
	/* A victim that died meanwhile still freed memory: report progress. */
	return ret == 0 ? 1 : ret;
}

static struct usvm_devmem *devmem_new(struct usvm_pagemap *pm, struct usvm_mm *mm,
				      struct usvm_region *r, uintptr_t block,
				      unsigned long npages)
{
	struct usvm_devmem *dm;

	dm = calloc(1, sizeof(*dm) + npages * (sizeof(uintptr_t) + sizeof(unsigned long)));
	if (!dm)
		return NULL;
	dm->va = (uintptr_t *)(dm + 1);
	dm->pfn = (unsigned long *)(dm->va + npages);
	dm->ops = pm->devmem_ops;
	dm->pagemap = pm;
	dm->mm = mm;
	dm->region = r;
	dm->block = block;
	dm->npages = npages;
	list_init(&dm->lru_link);
	atomic_init(&dm->refcount, 1);
	return dm;
}

/*
 * Allocate @npages of device memory, evicting least recently used
 * allocations while the pool is full.  No block lock may be held.
 */
static int devmem_alloc_evicting(struct usvm_pagemap *pm, struct usvm_devmem *dm)
{
	uint64_t deadline = 0;
	int err;

	if ((size_t)dm->npages * USVM_PAGE_SIZE > pm->capacity)
		return -ENOMEM;
	for (;;) {
		err = pm->ops->devmem_alloc(pm, dm);
		if (err != -ENOMEM)
			break;
		if (pagemap_evict_lru(pm) != 0)
			continue;
		/* Nothing evictable: memory held by allocations in flight comes
		 * free shortly; wait for it a bounded time, then give up. */
		if (!atomic_load(&pm->offlru))
			break;
		if (!deadline)
			deadline = usvm_now_ns() + 2000000000ull;
		if (usvm_now_ns() > deadline)
			break;
		usleep(20);
	}
	if (err)
		return err;
	err = dm->ops->populate_devmem_pfn(dm, dm->npages, dm->pfn);
	if (err) {
		dm->ops->devmem_release(dm);
		return err;
	}
	atomic_fetch_add(&pm->offlru, 1); /* until it reaches the LRU or is released */
	return 0;
}

/* An allocation that never reached the LRU goes back. */
static void devmem_abandon(struct usvm_devmem *dm)
{
	dm->ops->devmem_release(dm);
	atomic_fetch_sub(&dm->pagemap->offlru, 1);
	usvm_devmem_put(dm);
}

/* Pages of [start, end) not yet in @pm; -EFAULT if any is unmapped. */
static long count_missing(struct usvm_pagemap *pm, struct usvm_region *r,
			  uintptr_t start, uintptr_t end, unsigned long *present)
{
	long missing = 0;
	uintptr_t a;

	*present = 0;
	if (r->dying)
		return -EFAULT;
	for (a = start; a < end; a += USVM_PAGE_SIZE) {
		struct usvm_page *pg = region_page(r, a);

		if (pg->flags & (USVM_PAGE_UNMAPPED | USVM_PAGE_PENDING))
			return -EFAULT;
		if (pg->dm && pg->dm->pagemap == pm)
			(*present)++;
		else if (mm_page_allocated(r, a))
			missing++; /* arena pages nobody allocated stay where they are */
	}
	return missing;
}

/* Bring pages of [start, end) held by other pagemaps back to RAM first. */
static int evict_peer_pages(struct usvm_pagemap *pm, struct usvm_region *r,
			    uintptr_t start, uintptr_t end, unsigned long *from_peer)
{
	uintptr_t a;

	for (a = start; a < end; a += USVM_PAGE_SIZE) {
		struct usvm_page *pg = region_page(r, a);
		struct usvm_devmem *other = pg->dm;
		long ret;

		if (!other || other->pagemap == pm)
			continue;
		/* Its device keeps it for its timeslice (no ping-pong). */
		if (usvm_now_ns() < other->timeslice_expire_ns)
			return -EBUSY;
		*from_peer += other->live;
		/* Kernel MAIN bounces device-to-device moves through RAM too. */
		ret = migrate_devmem_to_ram(other, USVM_MIGRATE_PEER);
		if (ret < 0)
			return (int)ret;
	}
	return 0;
}

int migrate_piece_to_devmem(struct usvm_pagemap *pm, struct usvm_mm *mm,
			    struct usvm_region *r, uintptr_t start, uintptr_t end,
			    unsigned long timeslice_ms, struct migrate_piece_result *res)
{
	uintptr_t block = ALIGN_DOWN_UL(start, USVM_BLOCK_SIZE);
	pthread_mutex_t *bl = mm_block_lock(mm, block);
	uintptr_t src[USVM_BLOCK_PAGES];
	unsigned long present;
	int attempt;

	memset(res, 0, sizeof(*res));
	for (attempt = 0; attempt < 4; attempt++) {
		struct usvm_devmem *dm;
		long missing, again, taken, k;
		uintptr_t a;
		uint64_t t0;
		int err;

		pthread_mutex_lock(bl);
		missing = count_missing(pm, r, start, end, &present);
		pthread_mutex_unlock(bl);
		if (missing <= 0) {
			res->present = present;
			return missing < 0 ? (int)missing : 1;
		}
		/* Allocate just enough, outside the block lock (eviction locks others). */
		dm = devmem_new(pm, mm, r, block, (unsigned long)missing);
		if (!dm)
			return -ENOMEM;
		err = devmem_alloc_evicting(pm, dm);
		if (err) {
			usvm_devmem_put(dm);
			return err;
		}
		pthread_mutex_lock(bl);
		again = count_missing(pm, r, start, end, &present);
		if (again > missing || again <= 0) {
			/* Raced with another migration: start over (kernel: -EAGAIN loop). */
			pthread_mutex_unlock(bl);
			devmem_abandon(dm);
			if (again <= 0) {
				res->present = present;
				return again < 0 ? (int)again : 1;
			}
			continue;
		}
		err = evict_peer_pages(pm, r, start, end, &res->from_peer);
		if (err) {
			pthread_mutex_unlock(bl);
			devmem_abandon(dm);
			return err;
		}
		k = 0;
		for (a = start; a < end; a += USVM_PAGE_SIZE) {
			struct usvm_page *pg = region_page(r, a);

			if (!(pg->dm && pg->dm->pagemap == pm) && mm_page_allocated(r, a))
				src[k++] = a;
		}
		mm_invalidate(mm, start, end, USVM_INVAL_MIGRATE, NULL);
		t0 = usvm_now_ns();
		taken = dm->ops->copy_to_devmem(dm, dm->pfn, src, (unsigned long)k);
		t0 = usvm_now_ns() - t0;
		if (taken <= 0) {
			pthread_mutex_unlock(bl);
			devmem_abandon(dm);
			return taken < 0 ? (int)taken : -EBUSY;
		}
		for (a = 0; a < (uintptr_t)taken; a++) {
			struct usvm_page *pg = region_page(r, src[a]);

			pg->dm = dm;
			pg->idx = (uint32_t)a;
			dm->va[a] = src[a];
		}
		dm->live = (unsigned long)taken;
		dm->timeslice_expire_ns = usvm_now_ns() + (uint64_t)timeslice_ms * 1000000ull;
		pthread_mutex_lock(&pm->lock);
		list_add_tail(&dm->lru_link, &pm->lru);
		dm->on_lru = 1;
		atomic_fetch_sub(&pm->offlru, 1);
		pthread_mutex_unlock(&pm->lock);
		STAT_ADD(pm->st.live_allocations, 1);
		STAT_ADD(pm->st.used_bytes, dm->npages * USVM_PAGE_SIZE);
		stat_max(&pm->st.peak_used_bytes, STAT_READ(pm->st.used_bytes));
		STAT_ADD(pm->st.migrations_to_dev, 1);
		STAT_ADD(pm->st.bytes_to_dev, (uint64_t)taken * USVM_PAGE_SIZE);
		STAT_ADD(pm->st.ns_to_dev, t0);
		STAT_ADD(mm->st.migrations_to_dev, 1);
		STAT_ADD(mm->st.bytes_to_dev, (uint64_t)taken * USVM_PAGE_SIZE);
		STAT_ADD(mm->st.ns_to_dev, t0);
		pthread_mutex_unlock(bl);
		res->migrated = (unsigned long)taken;
		res->present = present;
		return taken == k ? 0 : -EBUSY;
	}
	return -EBUSY;
}

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
#include <inttypes.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "migrate.h"
#include "mm/uffd.h"
#include "inject.h"

/* ---- allocation lifetime ------------------------------------------------------ */

void devmem_get(struct devmem *dm)
{
	atomic_fetch_add(&dm->refcount, 1);
}

void devmem_put(struct devmem *dm)
{
	if (atomic_fetch_sub(&dm->refcount, 1) == 1)
		free(dm);
}

/* Last page gone: give the device memory back (drm_pagemap_zdd_destroy). */
static void devmem_detach(struct devmem *dm)
{
	struct usvm_pagemap *pm = dm->pub.pagemap;
	int was_on_lru;

	pthread_mutex_lock(&pm->core->lock);
	was_on_lru = dm->on_lru;
	if (was_on_lru) {
		list_del_init(&dm->lru_link);
		dm->on_lru = 0;
		atomic_fetch_add(&pm->core->offlru, 1);
	}
	pthread_mutex_unlock(&pm->core->lock);
	if (!was_on_lru)
		return;
	STAT_SUB(pm->core->st.used_bytes, dm->pub.npages * USVM_PAGE_SIZE);
	STAT_SUB(pm->core->st.live_allocations, 1);
	dm->pub.ops->devmem_release(&dm->pub);
	atomic_fetch_sub(&pm->core->offlru, 1);
	devmem_put(dm);
}

/* Page @idx no longer holds data for anyone (block lock held). */
static void devmem_release_page(struct devmem *dm, uint32_t idx)
{
	mm_assert_block_locked(dm->mm, dm->block);
	if (!dm->va[idx])
		return;
	dm->va[idx] = 0;
	if (--dm->live == 0)
		devmem_detach(dm);
}

void devmem_touch(struct devmem *dm)
{
	struct usvm_pagemap *pm = dm->pub.pagemap;

	pthread_mutex_lock(&pm->core->lock);
	if (dm->on_lru) {
		list_del_init(&dm->lru_link);
		list_add_tail(&dm->lru_link, &pm->core->lru);
	}
	pthread_mutex_unlock(&pm->core->lock);
}

/* ---- to system memory ------------------------------------------------------------ */

static void account_to_ram(struct devmem *dm, enum mm_migrate_cause why, uintptr_t addr,
			   long pages, uint64_t t0, uint64_t ns)
{
	static const int cause[] = {
		[MM_MIGRATE_CPU_FAULT] = USVM_CAUSE_CPU_FAULT,
		[MM_MIGRATE_EVICT] = USVM_CAUSE_EVICT,
		[MM_MIGRATE_PEER] = USVM_CAUSE_PEER,
		[MM_MIGRATE_RANGE] = USVM_CAUSE_RANGE,
		[MM_MIGRATE_UNBIND] = USVM_CAUSE_UNBIND,
	};
	struct usvm_mm *mm = dm->mm;
	struct usvm_pagemap *pm = dm->pub.pagemap;
	uint64_t bytes = (uint64_t)pages * USVM_PAGE_SIZE;

	usvm_event(USVM_EV_MIGRATE, cause[why], addr, bytes, pm->name, "system", t0, ns, 0);
	STAT_ADD(mm->st.migrations_to_ram, 1);
	STAT_ADD(mm->st.bytes_to_ram, bytes);
	STAT_ADD(mm->st.ns_to_ram, ns);
	STAT_ADD(pm->core->st.migrations_to_ram, 1);
	STAT_ADD(pm->core->st.bytes_to_ram, bytes);
	STAT_ADD(pm->core->st.ns_to_ram, ns);
	if (why == MM_MIGRATE_CPU_FAULT) {
		STAT_ADD(pm->core->st.cpu_fault_migrations, 1);
		if (usvm_strict())
			usvm_strict_report("implicit migration %s -> system of [%#lx, %#lx) "
					   "(%" PRIu64 " KiB): a CPU fault (or a device that "
					   "cannot reach %s) touched it", pm->name,
					   (unsigned long)addr, (unsigned long)(addr + bytes),
					   bytes >> 10, pm->name);
	}
	if (why == MM_MIGRATE_EVICT || why == MM_MIGRATE_UNBIND) {
		STAT_ADD(pm->core->st.evictions, 1);
		STAT_ADD(pm->core->st.evicted_bytes, bytes);
	}
}

long migrate_devmem_to_ram(struct devmem *dm, enum mm_migrate_cause why)
{
	return migrate_devmem_span_to_ram(dm, why, 0, UINTPTR_MAX);
}

long migrate_devmem_span_to_ram(struct devmem *dm, enum mm_migrate_cause why, uintptr_t from,
				uintptr_t to)
{
	unsigned long pfn[USVM_BLOCK_PAGES];
	uintptr_t va[USVM_BLOCK_PAGES], lo = UINTPTR_MAX, hi = 0;
	uint32_t idx[USVM_BLOCK_PAGES];
	unsigned long n = 0, i;
	int uffd = dm->region->uffd;
	uint64_t t0;
	long done;

	mm_assert_block_locked(dm->mm, dm->block);
	for (i = 0; i < dm->pub.npages; i++) {
		if (!dm->va[i] || dm->va[i] < from || dm->va[i] >= to)
			continue;
		pfn[n] = dm->pub.pfn[i];
		va[n] = dm->va[i];
		idx[n] = (uint32_t)i;
		lo = MIN_UL(lo, va[n]);
		hi = MAX_UL(hi, va[n] + USVM_PAGE_SIZE);
		n++;
	}
	if (!n)
		return 0;
	if (usvm_inject_fail(USVM_INJECT_COPY_TO_RAM))
		return -EIO;
	/* Not while a munmap/madvise/mremap of these pages is half done. */
	if (mm_install_begin(dm->mm, lo, hi))
		return -EAGAIN;
	/* Device mappings go first: no device may read a page while it moves. */
	mm_invalidate(dm->mm, lo, hi, USVM_INVAL_MIGRATE);
	t0 = usvm_now_ns();
	done = dm->pub.ops->copy_to_ram(&dm->pub, pfn, va, n);
	mm_install_end(dm->mm);
	if (done <= 0)
		return done ? done : -EAGAIN;
	for (i = 0; i < (unsigned long)done; i++) {
		region_page_set_dm(dm->region, va[i], NULL, 0);
		region_blk_set(dm->region, va[i], MM_BLK_CPU);
	}
	account_to_ram(dm, why, lo, done, t0, usvm_now_ns() - t0);
	for (i = 0; i < (unsigned long)done; i++)
		devmem_release_page(dm, idx[i]); /* may free dm */
	/* Only now, with states saying "system" and the device memory free
	 * again, may the CPU threads waiting on these pages go on. */
	uffd_wake(uffd, lo, hi - lo);
	if ((unsigned long)done < n)
		return -EAGAIN; /* the rest stays in device memory; retried */
	return done * (long)USVM_PAGE_SIZE;
}

/* ---- what mm calls (dev_pagemap_ops) ------------------------------------------- */

static long mmop_migrate_to_ram(struct mm_devmem *m, enum mm_migrate_cause why, uintptr_t addr,
				uint64_t *retry_at_ns)
{
	struct devmem *dm = to_devmem(m);
	size_t chunk = dm->mm->migrate_back;

	/* The kernel's __drm_pagemap_migrate_to_ram: no ping-pong within the
	 * timeslice; eviction, unbind and teardown ignore it. */
	if (why == MM_MIGRATE_CPU_FAULT && retry_at_ns &&
	    usvm_now_ns() < dm->timeslice_expire_ns) {
		*retry_at_ns = dm->timeslice_expire_ns;
		return -EINPROGRESS;
	}
	/* Partial migrate-back (USVM_MIGRATE_BACK): the chunk around the
	 * fault; the allocation keeps the rest, page by page. */
	if (why == MM_MIGRATE_CPU_FAULT && addr && chunk)
		return migrate_devmem_span_to_ram(dm, why, ALIGN_DOWN_UL(addr, chunk),
						  ALIGN_DOWN_UL(addr, chunk) + chunk);
	return migrate_devmem_to_ram(dm, why);
}

static void mmop_drop_page(struct mm_devmem *m, uint32_t idx)
{
	struct devmem *dm = to_devmem(m);

	dm->pub.dropped++; /* its pool page still holds data: the backend discards it */
	devmem_release_page(dm, idx);
}

/*
 * mremap moved page @idx's address to @dst (the applier, applying REMAP).
 * A later event already read that removes or unmaps @dst means its data is
 * gone anyway: the page is dropped instead of being put where the program
 * can no longer expect it.
 */
static int mmop_move_page(struct mm_devmem *m, uint32_t idx, uintptr_t dst)
{
	struct devmem *dm = to_devmem(m);
	unsigned long pfn = dm->pub.pfn[idx];
	uint32_t later;
	long done = 1;

	if (usvm_inject_fail(USVM_INJECT_COPY_TO_RAM))
		return -EIO;
	mm_install_begin_applier(dm->mm);
	later = mm_later_event(dm->mm, dst, dst + USVM_PAGE_SIZE);
	if (later == UFFD_EVENT_REMOVE || later == UFFD_EVENT_UNMAP) {
		usvm_log2("mremap: %#lx is %s again: device copy dropped", (unsigned long)dst,
			  later == UFFD_EVENT_REMOVE ? "discarded" : "unmapped");
		dm->pub.dropped++;
	} else {
		done = dm->pub.ops->copy_to_ram(&dm->pub, &pfn, &dst, 1);
	}
	mm_install_end(dm->mm);
	/* -EEXIST: the kernel moved a CPU page to @dst, so the old address
	 * had one when mremap ran and this device copy was taken after it
	 * (a populate racing with MREMAP_DONTUNMAP): the CPU page is right. */
	if (done == -EEXIST || done == -ENOENT || done == -EINVAL) {
		/* -ENOENT/-EINVAL: @dst is no longer a registered mapping:
		 * the program unmapped it again already. */
		usvm_log("mremap: %#lx %s: device copy dropped", (unsigned long)dst,
			 done == -EEXIST ? "already has a CPU page" : "is gone again");
		dm->pub.dropped++;
	} else if (done != 1)
		return done < 0 ? (int)done : -EAGAIN;
	devmem_release_page(dm, idx);
	return 0;
}

static void mmop_rehome(struct mm_devmem *m, struct usvm_region *r)
{
	to_devmem(m)->region = r;
}

const struct mm_devmem_ops usvm_devmem_mm_ops = {
	.migrate_to_ram = mmop_migrate_to_ram,
	.drop_page = mmop_drop_page,
	.move_page = mmop_move_page,
	.rehome = mmop_rehome,
};

/* ---- eviction ------------------------------------------------------------------- */

long devmem_evict(struct devmem *dm, enum mm_migrate_cause why)
{
	long ret = 0;

	mm_block_lock_acquire(dm->mm, dm->block);
	if (dm->live)
		ret = migrate_devmem_to_ram(dm, why);
	mm_block_lock_release(dm->mm, dm->block);
	return ret;
}

/*
 * The least recently used allocation whose range is not advised to prefer
 * @pm (usvm_advise PREFERRED_LOCATION: "eviction keeps it there when
 * possible"), among the first LRU_SCAN; else the least recently used.
 * pm->core->lock held, LRU not empty.
 */
#define LRU_SCAN 16
static struct devmem *lru_victim(struct usvm_pagemap *pm)
{
	struct list_head *pos = pm->core->lru.next;
	int n;

	for (n = 0; n < LRU_SCAN && pos != &pm->core->lru; n++, pos = pos->next) {
		struct devmem *dm = container_of(pos, struct devmem, lru_link);

		if (!mm_advice_prefers(dm->mm, dm->start, pm))
			return dm;
	}
	return container_of(pm->core->lru.next, struct devmem, lru_link);
}

long pagemap_evict_lru(struct usvm_pagemap *pm, enum mm_migrate_cause why)
{
	struct devmem *dm;
	long ret;

	pthread_mutex_lock(&pm->core->lock);
	if (list_empty(&pm->core->lru)) {
		pthread_mutex_unlock(&pm->core->lock);
		return 0;
	}
	dm = lru_victim(pm);
	devmem_get(dm);
	/* Rotate so that concurrent evictors pick different victims. */
	list_del_init(&dm->lru_link);
	list_add_tail(&dm->lru_link, &pm->core->lru);
	pthread_mutex_unlock(&pm->core->lock);
	ret = devmem_evict(dm, why);
	devmem_put(dm);
	if (ret > 0)
		usvm_log2("%s: evicted %ld KiB", pm->name, ret >> 10);
	/* A victim that died meanwhile still freed memory: report progress. */
	return ret == 0 ? 1 : ret;
}

/* ---- to device memory -------------------------------------------------------------- */

static struct devmem *devmem_new(struct usvm_pagemap *pm, struct usvm_mm *mm,
				      struct usvm_region *r, uintptr_t start,
				      unsigned long npages)
{
	struct devmem *dm;

	dm = calloc(1, sizeof(*dm) + npages * (sizeof(uintptr_t) + sizeof(unsigned long)));
	if (!dm)
		return NULL;
	dm->va = (uintptr_t *)(dm + 1);
	dm->pub.pfn = (unsigned long *)(dm->va + npages);
	dm->base.ops = &usvm_devmem_mm_ops;
	dm->base.pagemap = pm;
	dm->pub.ops = pm->devmem_ops;
	dm->pub.pagemap = pm;
	dm->mm = mm;
	dm->region = r;
	dm->block = ALIGN_DOWN_UL(start, USVM_BLOCK_SIZE);
	dm->start = start;
	dm->pub.npages = npages;
	list_init(&dm->lru_link);
	atomic_init(&dm->refcount, 1);
	return dm;
}

/* Allocate dm->pub.npages of device memory, evicting least recently used
 * allocations while the pool is full.  No block lock may be held. */
static int devmem_alloc_evicting(struct usvm_pagemap *pm, struct devmem *dm)
{
	struct usvm_backoff bo = USVM_BACKOFF_INIT(2000);
	int err;

	if ((size_t)dm->pub.npages * USVM_PAGE_SIZE > pm->capacity)
		return -ENOMEM;
	for (;;) {
		long ev;

		err = usvm_inject_fail(USVM_INJECT_DEVMEM_ALLOC) ? -ENOMEM
								 : pm->ops->devmem_alloc(pm, &dm->pub);
		if (err != -ENOMEM)
			break;
		ev = pagemap_evict_lru(pm, MM_MIGRATE_EVICT);
		if (ev > 0)
			continue;
		/* Nothing evictable now (victims busy, or memory held by
		 * allocations in flight that come free shortly): wait a
		 * bounded time, then give up. */
		if (!ev && !atomic_load(&pm->core->offlru))
			break;
		if (!usvm_backoff(&bo))
			break;
	}
	if (err)
		return err;
	err = dm->pub.ops->populate_devmem_pfn(&dm->pub, dm->pub.npages, dm->pub.pfn);
	if (err) {
		dm->pub.ops->devmem_release(&dm->pub);
		return err;
	}
	atomic_fetch_add(&pm->core->offlru, 1); /* until it reaches the LRU or is released */
	return 0;
}

/* An allocation that never reached the LRU goes back. */
static void devmem_abandon(struct devmem *dm)
{
	dm->pub.ops->devmem_release(&dm->pub);
	atomic_fetch_sub(&dm->pub.pagemap->core->offlru, 1);
	devmem_put(dm);
}

/*
 * The pages of [start, end) to bring into @pm, into @src; block lock held.
 * Return their number, or -EFAULT if any is unmapped.  *@present counts
 * the pages already there.
 */
static long collect_missing(struct usvm_pagemap *pm, struct usvm_region *r, uintptr_t start,
			    uintptr_t end, uintptr_t *src, unsigned long *present)
{
	int stateful = region_blk(r, start) & MM_BLK_STATE;
	long n = 0;
	uintptr_t a;

	*present = 0;
	if (atomic_load(&r->dying) || atomic_load(&r->gone) || atomic_load(&r->pending))
		return -EFAULT;
	for (a = start; a < end; a += USVM_PAGE_SIZE) {
		struct usvm_page *pg = stateful ? region_page(r, a) : NULL;
		uint32_t flags = pg ? page_flags(pg) : 0;

		if (flags & MM_PAGE_UNMAPPED)
			return -EFAULT;
		if (pg && pg->dm && pg->dm->pagemap == pm) {
			(*present)++;
			continue;
		}
		if (!mm_page_allocated(r, a))
			continue; /* arena pages nobody allocated stay where they are */
		if (flags & MM_PAGE_REMOVED) {
			/* A zap may still be on its way: wait until it is gone. */
			if (usvm_host_page_mapped(a))
				continue;
			region_page_set_flags(r, a, 0, MM_PAGE_REMOVED);
		}
		src[n++] = a;
	}
	return n;
}

/* Bring the pages of @src held by other pagemaps back to RAM first. */
static int evict_peer_pages(struct usvm_pagemap *pm, struct usvm_region *r,
			    const uintptr_t *src, long n, unsigned long *from_peer)
{
	long i;

	for (i = 0; i < n; i++) {
		struct mm_devmem *m = region_page(r, src[i])->dm;
		struct devmem *other;
		long ret;

		if (!m || m->pagemap == pm)
			continue;
		other = to_devmem(m);
		/* Its device keeps it for its timeslice (no ping-pong). */
		if (usvm_now_ns() < other->timeslice_expire_ns)
			return -EBUSY;
		*from_peer += other->live;
		/* Kernel MAIN bounces device-to-device moves through RAM too. */
		ret = migrate_devmem_to_ram(other, MM_MIGRATE_PEER);
		if (ret < 0)
			return (int)ret;
	}
	return 0;
}

/* The taken pages belong to @dm from now on; block lock held. */
static void commit_taken(struct devmem *dm, const uintptr_t *src, long taken,
			 unsigned long timeslice_ms, uint64_t t0, uint64_t ns)
{
	struct usvm_pagemap *pm = dm->pub.pagemap;
	struct usvm_mm *mm = dm->mm;
	uint64_t bytes = (uint64_t)taken * USVM_PAGE_SIZE;
	long i;

	usvm_event(USVM_EV_MIGRATE, USVM_CAUSE_POPULATE, src[0], bytes, "system", pm->name, t0,
		   ns, 0);
	mm_assert_block_locked(mm, dm->block);
	dm->base.since_ns = t0;
	for (i = 0; i < taken; i++) {
		region_page_set_dm(dm->region, src[i], &dm->base, (uint32_t)i);
		dm->va[i] = src[i];
	}
	dm->live = (unsigned long)taken;
	dm->timeslice_expire_ns = usvm_now_ns() + (uint64_t)timeslice_ms * 1000000ull;
	pthread_mutex_lock(&pm->core->lock);
	list_add_tail(&dm->lru_link, &pm->core->lru);
	dm->on_lru = 1;
	atomic_fetch_sub(&pm->core->offlru, 1);
	pthread_mutex_unlock(&pm->core->lock);
	STAT_ADD(pm->core->st.live_allocations, 1);
	STAT_ADD(pm->core->st.used_bytes, dm->pub.npages * USVM_PAGE_SIZE);
	stat_max(&pm->core->st.peak_used_bytes, STAT_READ(pm->core->st.used_bytes));
	STAT_ADD(pm->core->st.migrations_to_dev, 1);
	STAT_ADD(pm->core->st.bytes_to_dev, bytes);
	STAT_ADD(pm->core->st.ns_to_dev, ns);
	STAT_ADD(mm->st.migrations_to_dev, 1);
	STAT_ADD(mm->st.bytes_to_dev, bytes);
	STAT_ADD(mm->st.ns_to_dev, ns);
}

/*
 * Move the @n pages of @src into @dm; block lock held.  Returns pages
 * taken (committed to @dm) or -errno; a short count sets res->unshare_at
 * when pages shared since fork stopped the move.
 */
static long take_pages(struct devmem *dm, const uintptr_t *src, long n,
		       unsigned long timeslice_ms, struct migrate_piece_result *res)
{
	uint64_t t0 = usvm_now_ns();
	int stop = 0;
	long taken;

	if (usvm_inject_fail(USVM_INJECT_COPY_TO_DEVMEM))
		return -EIO;
	taken = dm->pub.ops->copy_to_devmem(&dm->pub, dm->pub.pfn, src, (unsigned long)n, &stop);
	if (taken < n && (stop == EBUSY || taken == -EBUSY))
		res->unshare_at = src[taken > 0 ? taken : 0];
	/* No mapping there any more (unmapped behind our back, its event not
	 * applied yet) or one UFFDIO_MOVE refuses (mprotect, mlock). */
	if (taken == -ENOENT || taken == -EINVAL)
		return -EFAULT;
	if (taken < 0)
		return taken;
	if (taken > 0)
		commit_taken(dm, src, taken, timeslice_ms, t0, usvm_now_ns() - t0);
	return taken;
}

int migrate_piece_to_devmem(struct usvm_pagemap *pm, struct usvm_mm *mm,
			    struct usvm_region *r, uintptr_t start, uintptr_t end,
			    unsigned long timeslice_ms, struct migrate_piece_result *res)
{
	uintptr_t block = ALIGN_DOWN_UL(start, USVM_BLOCK_SIZE);
	uintptr_t src[USVM_BLOCK_PAGES];
	struct devmem *dm;
	long want, n, taken;
	int err;

	memset(res, 0, sizeof(*res));
	/* Size the allocation, then allocate it outside the block lock
	 * (eviction takes other block locks). */
	mm_block_lock_acquire(mm, block);
	want = collect_missing(pm, r, start, end, src, &res->present);
	mm_block_lock_release(mm, block);
	if (want <= 0)
		return want < 0 ? (int)want : 1;
	dm = devmem_new(pm, mm, r, start, (unsigned long)want);
	if (!dm)
		return -ENOMEM;
	err = devmem_alloc_evicting(pm, dm);
	if (err) {
		devmem_put(dm);
		return err;
	}

	mm_block_lock_acquire(mm, block);
	n = collect_missing(pm, r, start, end, src, &res->present);
	if (n <= 0 || n > want) {
		/* Raced with another migration, a free or an unmap. */
		err = n < 0 ? (int)n : n ? -EAGAIN : 1;
		goto err_abandon;
	}
	err = evict_peer_pages(pm, r, src, n, &res->from_peer);
	if (err)
		goto err_abandon;
	/* Not while these addresses may be changing hands (munmap/mremap). */
	err = mm_take_begin(mm, r->uffd, start, end);
	if (err)
		goto err_abandon;
	mm_invalidate(mm, start, end, USVM_INVAL_MIGRATE);
	taken = take_pages(dm, src, n, timeslice_ms, res);
	mm_install_end(mm);
	if (taken <= 0) {
		err = taken < 0 ? (int)taken : res->unshare_at ? -EBUSY : -EAGAIN;
		goto err_abandon;
	}
	mm_block_lock_release(mm, block);
	res->migrated = (unsigned long)taken;
	return taken == n ? 0 : res->unshare_at ? -EBUSY : -EAGAIN;

err_abandon:
	mm_block_lock_release(mm, block);
	devmem_abandon(dm);
	return err;
}

// SPDX-License-Identifier: MIT
/*
 * The address space: creation and teardown, managed regions (arenas,
 * dedicated allocations, registered ranges), sparse page states, range
 * operations, invalidation listeners, residency queries and statistics.
 * Allocation lives in arena.c, faults in fault.c, events in events.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <inttypes.h>
#include <sys/mman.h>
#include "mm.h"
#include "uffd.h"
#include "inject.h"
#include "span.h"

/* Every userfaultfd of an mm sees munmap/madvise/mremap done behind our back. */
#define MM_FEATURES (UFFD_FEATURE_MOVE | UFFD_FEATURE_EVENT_REMOVE | \
		     UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP)

/* ---- regions ---------------------------------------------------------- */

struct usvm_region *mm_region_find(struct usvm_mm *mm, uintptr_t addr)
{
	return span_find((void *const *)mm->regions, mm->nregions, addr);
}

struct usvm_page *mm_page(struct usvm_mm *mm, uintptr_t addr, struct usvm_region **rp)
{
	struct usvm_region *r = mm_region_find(mm, addr);

	if (rp)
		*rp = r;
	return r ? region_page(r, addr) : NULL;
}

static void *map_noreserve(size_t len)
{
	void *p = mmap(NULL, len ? len : 1, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

struct usvm_region *mm_region_new(uintptr_t start, uintptr_t end,
				      enum usvm_region_kind kind, int uffd)
{
	struct usvm_region *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->start = start;
	r->end = end;
	r->kind = kind;
	r->uffd = uffd;
	r->npages = (end - start) >> USVM_PAGE_SHIFT;
	r->nblk = ((end - 1) >> USVM_BLOCK_SHIFT) - (start >> USVM_BLOCK_SHIFT) + 1;
	/* States are committed lazily, where they are written. */
	r->pages = map_noreserve(r->npages * sizeof(struct usvm_page));
	r->blk = map_noreserve(r->nblk);
	if (!r->pages || !r->blk) {
		mm_region_free(r);
		return NULL;
	}
	/* Registered memory may hold the program's data everywhere. */
	if (kind == USVM_REGION_USER)
		memset(r->blk, MM_BLK_CPU, r->nblk);
	return r;
}

int mm_region_insert_locked(struct usvm_mm *mm, struct usvm_region *r)
{
	return span_insert((void ***)&mm->regions, &mm->nregions, &mm->cap_regions, r);
}

int mm_region_insert(struct usvm_mm *mm, struct usvm_region *r)
{
	int err;

	usvm_rwlock_wrlock(&mm->regions_lock);
	err = mm_region_insert_locked(mm, r);
	usvm_rwlock_unlock(&mm->regions_lock);
	if (err)
		mm_region_free(r);
	return err;
}

int mm_region_add(struct usvm_mm *mm, uintptr_t start, uintptr_t end,
		  enum usvm_region_kind kind, int uffd, struct usvm_region **out)
{
	struct usvm_region *r = mm_region_new(start, end, kind, uffd);
	int err;

	if (!r)
		return -ENOMEM;
	err = mm_region_insert(mm, r);
	if (!err && out)
		*out = r;
	return err;
}

void mm_region_remove_locked(struct usvm_mm *mm, struct usvm_region *r)
{
	span_remove((void **)mm->regions, &mm->nregions, r);
}

void mm_region_free(struct usvm_region *r)
{
	if (r->pages)
		munmap(r->pages, r->npages * sizeof(struct usvm_page));
	if (r->blk)
		munmap(r->blk, r->nblk);
	free(r->bitmap);
	free(r);
}

void region_page_set_flags(struct usvm_region *r, uintptr_t addr, uint32_t set, uint32_t clear)
{
	struct usvm_page *pg = region_page(r, addr);
	uint32_t old = page_flags(pg), nw = (old | set) & ~clear;

	if (old == nw)
		return;
	if ((nw & MM_PAGE_UNMAPPED) && !(old & MM_PAGE_UNMAPPED))
		atomic_fetch_add(&r->unmapped_pages, 1);
	else if (!(nw & MM_PAGE_UNMAPPED) && (old & MM_PAGE_UNMAPPED))
		atomic_fetch_sub(&r->unmapped_pages, 1);
	region_blk_set(r, addr, MM_BLK_STATE);
	__atomic_store_n(&pg->flags, nw, __ATOMIC_RELAXED);
}

void region_page_set_dm(struct usvm_region *r, uintptr_t addr, struct mm_devmem *dm, uint32_t idx)
{
	struct usvm_page *pg = region_page(r, addr);

	if (dm)
		region_blk_set(r, addr, MM_BLK_STATE);
	else if (!pg->dm)
		return; /* nothing to write: keeps untouched states uncommitted */
	pg->dm = dm;
	pg->idx = idx;
}

/* ---- invalidation ----------------------------------------------------- */

void mm_invalidate(struct usvm_mm *mm, uintptr_t start, uintptr_t end,
		   enum usvm_inval_event ev)
{
	static const int cause[] = {
		[USVM_INVAL_MIGRATE] = USVM_CAUSE_MIGRATE,
		[USVM_INVAL_REMOVE] = USVM_CAUSE_DISCARD,
		[USVM_INVAL_UNMAP] = USVM_CAUSE_UNMAP,
		[USVM_INVAL_WRITE] = USVM_CAUSE_WRITE,
	};
	struct list_head *it;
	int any;

	mm_assert_block_locked(mm, start);
	pthread_rwlock_rdlock(&mm->notifier_lock);
	any = mm->notifiers.next != &mm->notifiers;
	for (it = mm->notifiers.next; it != &mm->notifiers; it = it->next) {
		struct usvm_mm_notifier *n = container_of(it, struct usvm_mm_notifier, link);

		n->invalidate(n, start, end, ev);
	}
	pthread_rwlock_unlock(&mm->notifier_lock);
	if (any) /* only device views are invalidated: none, no event */
		usvm_event(USVM_EV_INVALIDATE, cause[ev], start, end - start, NULL, NULL, 0, 0, 0);
}

void usvm_mm_notifier_register(struct usvm_mm *mm, struct usvm_mm_notifier *n)
{
	pthread_rwlock_wrlock(&mm->notifier_lock);
	list_add_tail(&n->link, &mm->notifiers);
	pthread_rwlock_unlock(&mm->notifier_lock);
}

void usvm_mm_notifier_unregister(struct usvm_mm *mm, struct usvm_mm_notifier *n)
{
	pthread_rwlock_wrlock(&mm->notifier_lock);
	list_del_init(&n->link);
	pthread_rwlock_unlock(&mm->notifier_lock);
}

/* ---- range operations -------------------------------------------------- */

/* Drop the device copies in one block piece; block lock held. */
void mm_drop_block(struct usvm_mm *mm, struct usvm_region *r, uintptr_t a, uintptr_t bend,
		       uint32_t set_flags)
{
	unsigned int blk = region_blk(r, a);
	uintptr_t p;

	mm_assert_block_locked(mm, a);
	/* A zap can be pending only where CPU pages may exist. */
	if (!(blk & MM_BLK_CPU))
		set_flags &= ~MM_PAGE_REMOVED;
	if (!(blk & MM_BLK_STATE) && !set_flags)
		return;
	for (p = a; p < bend; p += USVM_PAGE_SIZE) {
		struct usvm_page *pg = region_page(r, p);

		if ((blk & MM_BLK_STATE) && pg->dm) {
			struct mm_devmem *dm = pg->dm;
			uint32_t idx = pg->idx;

			STAT_ADD(mm->st.device_bytes_dropped, USVM_PAGE_SIZE);
			region_page_set_dm(r, p, NULL, 0);
			dm->ops->drop_page(dm, idx);
		}
		if (set_flags)
			region_page_set_flags(r, p, set_flags, 0);
	}
}

void mm_drop_range(struct usvm_mm *mm, struct usvm_region *r, uintptr_t start,
		   uintptr_t end, enum usvm_inval_event ev, uint32_t set_flags)
{
	uintptr_t a, bend;

	for_each_block(a, bend, MAX_UL(start, r->start), MIN_UL(end, r->end)) {
		mm_block_lock_acquire(mm, a);
		mm_invalidate(mm, a, bend, ev);
		mm_drop_block(mm, r, a, bend, set_flags);
		mm_block_lock_release(mm, a);
	}
}

/* Bring one block piece home; block lock held.  0 or the first error. */
static long block_to_ram(struct usvm_mm *mm, struct usvm_region *r, uintptr_t a, uintptr_t bend)
{
	uintptr_t p;

	mm_assert_block_locked(mm, a);
	for (p = a; p < bend; p += USVM_PAGE_SIZE) {
		struct usvm_page *pg = region_page(r, p);

		if (pg->dm) {
			long err = pg->dm->ops->migrate_to_ram(pg->dm, MM_MIGRATE_RANGE, 0, NULL);

			if (err < 0)
				return err;
		}
	}
	return 0;
}

int mm_migrate_range_to_ram(struct usvm_mm *mm, struct usvm_region *r,
			    uintptr_t start, uintptr_t end)
{
	uintptr_t a, bend;
	long err = 0;

	for_each_block(a, bend, MAX_UL(start, r->start), MIN_UL(end, r->end)) {
		struct usvm_backoff bo = USVM_BACKOFF_INIT(10000);

		do {
			/* The state bit is read under the lock: a populate that
			 * passed its checks before may be committing right now. */
			mm_block_lock_acquire(mm, a);
			err = region_blk(r, a) & MM_BLK_STATE ? block_to_ram(mm, r, a, bend) : 0;
			mm_block_lock_release(mm, a);
			/* -EAGAIN: an event is queued (the reader reads it
			 * soon); -EIO: a copy failed.  Both are retried,
			 * without the block lock, for up to ten seconds. */
		} while (err < 0 && usvm_backoff(&bo));
		if (err < 0)
			break;
	}
	return (int)err;
}

int mm_range_to_ram(struct usvm_mm *mm, uintptr_t start, uintptr_t end)
{
	int err = 0;

	mm_events_settle(mm);
	usvm_rwlock_rdlock(&mm->regions_lock);
	while (start < end && !err) {
		struct usvm_region *r = mm_region_find(mm, start);

		if (!r) {
			err = -EFAULT;
			break;
		}
		err = mm_migrate_range_to_ram(mm, r, start, MIN_UL(end, r->end));
		start = r->end;
	}
	usvm_rwlock_unlock(&mm->regions_lock);
	return err;
}

/* ---- lifetime ---------------------------------------------------------------- */

void mm_get(struct usvm_mm *mm)
{
	atomic_fetch_add(&mm->refs, 1);
}

static void mm_free(struct usvm_mm *mm)
{
	int i;

	for (i = 0; i < USVM_BLOCK_LOCKS; i++)
		pthread_mutex_destroy(&mm->block_locks[i]);
	pthread_rwlock_destroy(&mm->fork_lock);
	pthread_rwlock_destroy(&mm->regions_lock);
	pthread_rwlock_destroy(&mm->notifier_lock);
	pthread_mutex_destroy(&mm->alloc_lock);
	pthread_mutex_destroy(&mm->trash_lock);
	pthread_mutex_destroy(&mm->free_lock);
	pthread_rwlock_destroy(&mm->advice_lock);
	free(mm->freed);
	free(mm->regions);
	free(mm);
}

void mm_put(struct usvm_mm *mm)
{
	if (atomic_fetch_sub(&mm->refs, 1) == 1)
		mm_free(mm);
}

/* ---- create / destroy --------------------------------------------------- */

static void mm_close_fds(struct usvm_mm *mm)
{
	int *fds[] = { &mm->uffd_arena, &mm->uffd_user, &mm->uffd_trash, &mm->maps_fd };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(fds); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

static int mm_open_uffds(struct usvm_mm *mm)
{
	uint64_t got = 0;
	int mode = usvm_uffd_mode_requested(), fd;

	fd = uffd_open(MM_FEATURES, &got, &mode);
	if (fd < 0)
		return fd;
	mm->uffd_arena = fd;
	mm->uffd_mode = mode;
	if ((got & MM_FEATURES) != MM_FEATURES)
		return -ENOSYS; /* Linux 6.8+: UFFDIO_MOVE and the events */
	fd = uffd_open(MM_FEATURES, NULL, &mode);
	if (fd < 0)
		return fd;
	mm->uffd_user = fd;
	/* The trash area: no events, so moves into it never see -EAGAIN. */
	fd = uffd_open(UFFD_FEATURE_MOVE, NULL, &mode);
	if (fd < 0)
		return fd;
	mm->uffd_trash = fd;
	return 0;
}

static void mm_init_locks(struct usvm_mm *mm)
{
	int i;

	pthread_rwlock_init(&mm->fork_lock, NULL);
	pthread_rwlock_init(&mm->regions_lock, NULL);
	pthread_rwlock_init(&mm->notifier_lock, NULL);
	pthread_mutex_init(&mm->alloc_lock, NULL);
	pthread_mutex_init(&mm->trash_lock, NULL);
	pthread_mutex_init(&mm->free_lock, NULL);
	pthread_rwlock_init(&mm->advice_lock, NULL);
	for (i = 0; i < USVM_BLOCK_LOCKS; i++)
		pthread_mutex_init(&mm->block_locks[i], NULL);
	list_init(&mm->notifiers);
	list_init(&mm->all_link);
}

int usvm_mm_create(const struct usvm_mm_options *opts, struct usvm_mm **out)
{
	struct usvm_mm *mm;
	unsigned int nworkers;
	int err;

	if (!out)
		return -EINVAL;
	usvm_trace_from_env(opts ? opts->trace_file : NULL);
	mm = calloc(1, sizeof(*mm));
	if (!mm)
		return -ENOMEM;
	atomic_init(&mm->refs, 1);
	mm->fork_gen = atomic_load(&usvm_fork_gen);
	mm->uffd_arena = mm->uffd_user = mm->uffd_trash = mm->maps_fd = -1;
	mm->d.wake_efd = -1;
	mm->arena_size = opts && opts->arena_size ? opts->arena_size
						  : usvm_option_size(USVM_OPT_ARENA_SIZE);
	mm->arena_size = ALIGN_UP_UL(MAX_UL(mm->arena_size, USVM_BLOCK_SIZE), USVM_BLOCK_SIZE);
	mm->free_batch = usvm_option_size(USVM_OPT_FREE_BATCH);
	mm->write_fill = ALIGN_DOWN_UL(usvm_option_size(USVM_OPT_WRITE_FILL), USVM_PAGE_SIZE);
	mm->reader_spin_us = usvm_option_ulong(USVM_OPT_READER_SPIN_US);
	mm->migrate_back = usvm_option_size(USVM_OPT_MIGRATE_BACK);
	while (mm->migrate_back & (mm->migrate_back - 1))
		mm->migrate_back &= mm->migrate_back - 1; /* a power of two */
	nworkers = opts && opts->fault_threads ? opts->fault_threads
					       : (unsigned)usvm_option_ulong(USVM_OPT_FAULT_THREADS);
	nworkers = (unsigned)MIN_UL(MAX_UL(nworkers, 1u), USVM_MAX_FAULT_THREADS);
	mm_init_locks(mm);
	usvm_inject_configure_env();

	err = mm_open_uffds(mm);
	if (err)
		goto err_close;
	err = mm_trash_init(mm);
	if (err)
		goto err_close;
	mm->maps_fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	err = mm_dispatch_start(mm, nworkers);
	if (err)
		goto err_trash;
	mm_fork_register(mm);
	*out = mm;
	return 0;
err_trash:
	mm_trash_fini(mm);
err_close:
	mm_close_fds(mm);
	mm_free(mm);
	return err;
}

/* Forget a region whose pages are all home: devices first, then the kernel. */
static void region_teardown(struct usvm_mm *mm, struct usvm_region *r)
{
	uintptr_t a, bend;

	for_each_block(a, bend, r->start, r->end) {
		mm_block_lock_acquire(mm, a);
		mm_invalidate(mm, a, bend, USVM_INVAL_UNMAP);
		mm_drop_block(mm, r, a, bend, 0); /* pages that would not come home */
		mm_block_lock_release(mm, a);
	}
	uffd_unregister(r->uffd, r->start, r->end - r->start);
	if (r->kind != USVM_REGION_USER)
		munmap((void *)r->start, r->end - r->start);
	mm_region_free(r);
}

void usvm_mm_destroy(struct usvm_mm *mm)
{
	size_t i;

	/* A parent's mm inherited by fork(): its threads and memory are the
	 * parent's business. */
	if (!mm || mm->fork_gen != atomic_load(&usvm_fork_gen) ||
	    atomic_exchange(&mm->destroyed, 1))
		return;
	mm_fork_unregister(mm);
	/* Every page comes home while the fault threads still serve faults. */
	usvm_rwlock_rdlock(&mm->regions_lock);
	for (i = 0; i < mm->nregions; i++) {
		struct usvm_region *r = mm->regions[i];

		atomic_store(&r->dying, 1);
		mm_migrate_range_to_ram(mm, r, r->start, r->end);
	}
	usvm_rwlock_unlock(&mm->regions_lock);
	mm_advice_fini(mm); /* may put the last reference of a pagemap */
	mm_dispatch_stop(mm);
	usvm_rwlock_wrlock(&mm->regions_lock);
	for (i = 0; i < mm->nregions; i++)
		region_teardown(mm, mm->regions[i]);
	mm->nregions = 0;
	usvm_rwlock_unlock(&mm->regions_lock);
	mm_allocs_destroy(mm);
	mm_trash_fini(mm);
	mm_close_fds(mm);
	mm_put(mm);
}

/* ---- registered ranges -------------------------------------------------- */

/*
 * Wait (bounded) until no munmap/madvise/mremap event is in flight and every
 * event read has been applied: a region created now cannot then be hit by
 * an event about the addresses' previous owner.
 */
static void events_quiesce(struct usvm_mm *mm)
{
	struct usvm_backoff bo = USVM_BACKOFF_INIT(2000);

	mm_events_settle(mm);
	while (mm_changing(mm) && usvm_backoff(&bo)) {
		mm_read_pass(mm);
		mm_events_settle(mm);
	}
}

/*
 * The range overlaps tracked regions.  One whose addresses the kernel no
 * longer has registered with a userfaultfd belongs to a mapping that is
 * gone (its event was lost or is about an older owner): forget it.  A real
 * overlap stays -EEXIST.
 */
static int forget_dead_overlaps(struct usvm_mm *mm, uintptr_t start, uintptr_t end)
{
	int err = 0;
	size_t i;

	usvm_rwlock_wrlock(&mm->regions_lock);
	for (i = 0; !err && i < mm->nregions; i++) {
		struct usvm_region *r = mm->regions[i];
		uintptr_t a, bend;

		if (r->end <= start || r->start >= end)
			continue;
		if (r->kind != USVM_REGION_USER || atomic_load(&r->dying) ||
		    mm_vma_uffd_registered(MAX_UL(start, r->start)) != 0) {
			err = -EEXIST;
			break;
		}
		usvm_log("register: forgetting [%#lx, %#lx), whose mapping is gone",
			 (unsigned long)r->start, (unsigned long)r->end);
		for_each_block(a, bend, r->start, r->end) {
			mm_block_lock_acquire(mm, a);
			mm_invalidate(mm, a, bend, USVM_INVAL_UNMAP);
			mm_drop_block(mm, r, a, bend, 0);
			mm_block_lock_release(mm, a);
		}
		mm_region_remove_locked(mm, r);
		mm_region_free(r);
		STAT_SUB(mm->st.registered_ranges, 1);
		i--;
	}
	usvm_rwlock_unlock(&mm->regions_lock);
	return err;
}

int usvm_register(struct usvm_mm *mm, void *addr, size_t len)
{
	uintptr_t start = (uintptr_t)addr, end = start + len;
	struct usvm_region *r;
	int err;

	if (!mm || !addr || !len || (start | len) & (USVM_PAGE_SIZE - 1) || end < start)
		return -EINVAL;
	if (!mm_usable(mm))
		return -ENODEV;
	err = mm_check_anon_private(mm, start, end);
	if (err)
		return err;
	/* An old range unmapped just before must be forgotten first. */
	events_quiesce(mm);
	err = mm_region_add(mm, start, end, USVM_REGION_USER, mm->uffd_user, &r);
	if (err == -EEXIST && !forget_dead_overlaps(mm, start, end))
		err = mm_region_add(mm, start, end, USVM_REGION_USER, mm->uffd_user, &r);
	if (err)
		return err;
	err = uffd_register(mm->uffd_user, start, len);
	if (err) {
		usvm_rwlock_wrlock(&mm->regions_lock);
		mm_region_remove_locked(mm, r);
		usvm_rwlock_unlock(&mm->regions_lock);
		mm_region_free(r);
		return err == -ENOMEM ? -EFAULT : -EINVAL;
	}
	STAT_ADD(mm->st.registered_ranges, 1);
	return 0;
}

int usvm_unregister(struct usvm_mm *mm, void *addr, size_t len)
{
	uintptr_t start = (uintptr_t)addr;
	struct usvm_region *r;
	int err;

	if (!mm || !addr)
		return -EINVAL;
	if (!mm_usable(mm))
		return -ENODEV;
	mm_events_settle(mm);
	usvm_rwlock_rdlock(&mm->regions_lock);
	r = mm_region_find(mm, start);
	if (!r || r->kind != USVM_REGION_USER || r->start != start ||
	    r->end - r->start != len || atomic_exchange(&r->dying, 1)) {
		usvm_rwlock_unlock(&mm->regions_lock);
		return -EINVAL;
	}
	/* No new populates from here on; everything comes home. */
	err = mm_migrate_range_to_ram(mm, r, r->start, r->end);
	if (err) {
		atomic_store(&r->dying, 0);
		usvm_rwlock_unlock(&mm->regions_lock);
		return err;
	}
	usvm_rwlock_unlock(&mm->regions_lock);
	usvm_rwlock_wrlock(&mm->regions_lock);
	if (mm_region_find(mm, start) != r) {
		/* Unmapped by the program meanwhile, and forgotten. */
		usvm_rwlock_unlock(&mm->regions_lock);
		return -EINVAL;
	}
	mm_region_remove_locked(mm, r);
	usvm_rwlock_unlock(&mm->regions_lock);
	mm_advice_clear(mm, r->start, r->end);
	/* Unregistering wakes any thread still waiting in a fault on it. */
	region_teardown(mm, r);
	STAT_SUB(mm->st.registered_ranges, 1);
	return 0;
}

/* ---- queries ------------------------------------------------------------ */

int usvm_where(struct usvm_mm *mm, const void *addr, struct usvm_pagemap **pagemap)
{
	uintptr_t a = (uintptr_t)addr;
	struct usvm_region *r;
	int ret = -EFAULT;

	if (!mm || !pagemap)
		return -EINVAL;
	if (!mm_usable(mm))
		return -ENODEV;
	mm_events_settle(mm);
	usvm_rwlock_rdlock(&mm->regions_lock);
	r = mm_region_find(mm, a);
	if (r) {
		mm_block_lock_acquire(mm, a);
		*pagemap = region_page(r, a)->dm ? region_page(r, a)->dm->pagemap : NULL;
		mm_block_lock_release(mm, a);
		ret = 0;
	}
	usvm_rwlock_unlock(&mm->regions_lock);
	return ret;
}

/* Bytes of [a, bend) (one block of @r) held by @pagemap; block lock held. */
static long block_resident(struct usvm_region *r, uintptr_t a, uintptr_t bend,
			   struct usvm_pagemap *pagemap)
{
	long total = 0;

	if (!(region_blk(r, a) & MM_BLK_STATE))
		return pagemap ? 0 : (long)(bend - a);
	for (; a < bend; a += USVM_PAGE_SIZE) {
		struct mm_devmem *dm = region_page(r, a)->dm;

		if ((dm ? dm->pagemap : NULL) == pagemap)
			total += (long)USVM_PAGE_SIZE;
	}
	return total;
}

long usvm_resident_bytes(struct usvm_mm *mm, const void *addr, size_t len,
			 struct usvm_pagemap *pagemap)
{
	uintptr_t a = ALIGN_DOWN_UL((uintptr_t)addr, USVM_PAGE_SIZE);
	uintptr_t end = ALIGN_UP_UL((uintptr_t)addr + len, USVM_PAGE_SIZE);
	long total = 0;

	if (!mm || end < a)
		return -EINVAL;
	if (!mm_usable(mm))
		return -ENODEV;
	mm_events_settle(mm);
	usvm_rwlock_rdlock(&mm->regions_lock);
	while (a < end) {
		struct usvm_region *r = mm_region_find(mm, a);
		uintptr_t rend, p, bend;

		if (!r) {
			total = -EFAULT;
			break;
		}
		rend = MIN_UL(end, r->end);
		for_each_block(p, bend, a, rend) {
			mm_block_lock_acquire(mm, p);
			total += block_resident(r, p, bend, pagemap);
			mm_block_lock_release(mm, p);
		}
		a = rend;
	}
	usvm_rwlock_unlock(&mm->regions_lock);
	return total;
}

int usvm_mm_stats(struct usvm_mm *mm, struct usvm_mm_stats *o)
{
	if (!mm || !o)
		return -EINVAL;
	memset(o, 0, sizeof(*o));
#define C(f) o->f = STAT_READ(mm->st.f)
	C(cpu_faults); C(cpu_faults_devmem); C(cpu_faults_first_touch); C(cpu_faults_raced);
	C(dup_collapses);
	C(timeslice_waits);
	C(migrations_to_ram); C(bytes_to_ram); C(ns_to_ram);
	C(migrations_to_dev); C(bytes_to_dev); C(ns_to_dev);
	C(allocs); C(frees); C(live_allocs); C(live_bytes); C(registered_ranges);
	C(events_remove); C(events_unmap); C(events_remap); C(device_bytes_dropped);
#undef C
	pthread_mutex_lock(&mm->free_lock);
	o->free_pending_bytes = mm->freed_bytes;
	pthread_mutex_unlock(&mm->free_lock);
	o->uffd_mode = mm->uffd_mode;
	return 0;
}

void usvm_mm_stats_print(struct usvm_mm *mm, FILE *f)
{
	struct usvm_mm_stats s;

	if (usvm_mm_stats(mm, &s))
		return;
	fprintf(f, "mm: %" PRIu64 " live allocations (%.1f MiB; %.1f MiB freed, not yet "
		"discarded), %" PRIu64 " registered ranges, userfaultfd %s\n",
		s.live_allocs, s.live_bytes / 1048576.0, s.free_pending_bytes / 1048576.0,
		s.registered_ranges, usvm_uffd_mode_name(s.uffd_mode));
	fprintf(f, "  cpu faults %" PRIu64 " = %" PRIu64 " first touch + %" PRIu64
		" on device pages + %" PRIu64 " raced; %" PRIu64 " waited out a timeslice\n",
		s.cpu_faults, s.cpu_faults_first_touch, s.cpu_faults_devmem, s.cpu_faults_raced,
		s.timeslice_waits);
	fprintf(f, "  to device  %" PRIu64 " migrations, %.1f MiB, %.2f GB/s\n",
		s.migrations_to_dev, s.bytes_to_dev / 1048576.0,
		s.ns_to_dev ? (double)s.bytes_to_dev / (double)s.ns_to_dev : 0.0);
	fprintf(f, "  to system  %" PRIu64 " migrations, %.1f MiB, %.2f GB/s\n",
		s.migrations_to_ram, s.bytes_to_ram / 1048576.0,
		s.ns_to_ram ? (double)s.bytes_to_ram / (double)s.ns_to_ram : 0.0);
	fprintf(f, "  events     %" PRIu64 " madvise-remove, %" PRIu64 " munmap, %" PRIu64
		" mremap; %.1f MiB of device copies dropped\n",
		s.events_remove, s.events_unmap, s.events_remap, s.device_bytes_dropped / 1048576.0);
}

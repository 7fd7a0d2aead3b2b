// SPDX-License-Identifier: MIT
/*
 * The address space: creation and teardown, managed regions (arenas and
 * registered ranges), page residency queries, invalidation listeners and
 * statistics.  Allocation lives in arena.c, CPU faults in fault.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <inttypes.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include "mm.h"
#include "uffd.h"
#include "migrate/migrate.h"

/* Both userfaultfds see munmap/madvise/mremap done behind our back. */
#define ARENA_FEATURES (UFFD_FEATURE_MOVE | UFFD_FEATURE_EVENT_REMOVE | \
			UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP)
#define USER_FEATURES ARENA_FEATURES

/* ---- regions ---------------------------------------------------------- */

struct usvm_region *mm_region_find(struct usvm_mm *mm, uintptr_t addr)
{
	size_t lo = 0, hi = mm->nregions;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		struct usvm_region *r = mm->regions[mid];

		if (addr < r->start)
			hi = mid;
		else if (addr >= r->end)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

struct usvm_page *mm_page(struct usvm_mm *mm, uintptr_t addr, struct usvm_region **rp)
{
	struct usvm_region *r = mm_region_find(mm, addr);

	if (rp)
		*rp = r;
	return r ? region_page(r, addr) : NULL;
}

/* First region that ends after @addr (for overlap checks); caller locks. */
static int region_overlaps(struct usvm_mm *mm, uintptr_t start, uintptr_t end)
{
	size_t i;

	for (i = 0; i < mm->nregions; i++)
		if (mm->regions[i]->start < end && start < mm->regions[i]->end)
			return 1;
	return 0;
}

int mm_region_add(struct usvm_mm *mm, uintptr_t start, uintptr_t end,
		  enum usvm_region_kind kind, int uffd, uint32_t init_flags,
		  struct usvm_region **out)
{
	struct usvm_region *r;
	size_t npages = (end - start) >> USVM_PAGE_SHIFT, i;
	void *p;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	/* Page states are touched lazily: reserve, do not commit. */
	p = mmap(NULL, npages * sizeof(struct usvm_page), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		free(r);
		return -ENOMEM;
	}
	r->pages = p;
	r->start = start;
	r->end = end;
	r->kind = kind;
	r->uffd = uffd;
	r->npages = npages;
	if (init_flags)
		for (i = 0; i < npages; i++)
			r->pages[i].flags = init_flags;
	pthread_rwlock_wrlock(&mm->regions_lock);
	if (region_overlaps(mm, start, end)) {
		pthread_rwlock_unlock(&mm->regions_lock);
		mm_region_free(r);
		return -EEXIST;
	}
	if (mm->nregions == mm->cap_regions) {
		size_t cap = mm->cap_regions ? mm->cap_regions * 2 : 16;
		struct usvm_region **n = realloc(mm->regions, cap * sizeof(*n));

		if (!n) {
			pthread_rwlock_unlock(&mm->regions_lock);
			mm_region_free(r);
			return -ENOMEM;
		}
		mm->regions = n;
		mm->cap_regions = cap;
	}
	for (i = mm->nregions; i > 0 && mm->regions[i - 1]->start > start; i--)
		mm->regions[i] = mm->regions[i - 1];
	mm->regions[i] = r;
	mm->nregions++;
	pthread_rwlock_unlock(&mm->regions_lock);
	if (out)
		*out = r;
	return 0;
}

void mm_region_remove_locked(struct usvm_mm *mm, struct usvm_region *r)
{
	size_t i;

	for (i = 0; i < mm->nregions; i++) {
		if (mm->regions[i] == r) {
			memmove(&mm->regions[i], &mm->regions[i + 1],
				(mm->nregions - i - 1) * sizeof(*mm->regions));
			mm->nregions--;
			return;
		}
	}
}

void mm_region_free(struct usvm_region *r)
{
	munmap(r->pages, r->npages * sizeof(struct usvm_page));
	free(r->bitmap);
	free(r);
}

/* ---- invalidation ----------------------------------------------------- */

void mm_invalidate(struct usvm_mm *mm, uintptr_t start, uintptr_t end,
		   enum usvm_inval_event ev, const void *owner)
{
	struct list_head *it;

	pthread_rwlock_rdlock(&mm->notifier_lock);
	for (it = mm->notifiers.next; it != &mm->notifiers; it = it->next) {
		struct usvm_mm_notifier *n = container_of(it, struct usvm_mm_notifier, link);

		n->invalidate(n, start, end, ev, owner);
	}
	pthread_rwlock_unlock(&mm->notifier_lock);
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

void mm_drop_range(struct usvm_mm *mm, struct usvm_region *r, uintptr_t start,
		   uintptr_t end, enum usvm_inval_event ev, uint32_t set_flags)
{
	uintptr_t a = MAX_UL(start, r->start);

	end = MIN_UL(end, r->end);
	while (a < end) {
		uintptr_t bend = MIN_UL(end, ALIGN_DOWN_UL(a, USVM_BLOCK_SIZE) + USVM_BLOCK_SIZE);
		pthread_mutex_t *bl = mm_block_lock(mm, a);
		uintptr_t p;

		pthread_mutex_lock(bl);
		mm_invalidate(mm, a, bend, ev, NULL);
		for (p = a; p < bend; p += USVM_PAGE_SIZE) {
			struct usvm_page *pg = region_page(r, p);

			if (pg->dm) {
				STAT_ADD(mm->st.device_bytes_dropped, USVM_PAGE_SIZE);
				pg->dm->dropped++; /* its pool page still holds data */
				devmem_drop_page(pg->dm, pg->idx);
				pg->dm = NULL;
				pg->idx = 0;
			}
			if ((set_flags & USVM_PAGE_UNMAPPED) && !(pg->flags & USVM_PAGE_UNMAPPED))
				atomic_fetch_add(&r->unmapped_pages, 1);
			/* Atomic: range sizing peeks at flags without the block lock. */
			__atomic_fetch_or(&pg->flags, set_flags, __ATOMIC_RELAXED);
		}
		pthread_mutex_unlock(bl);
		a = bend;
	}
}

int mm_migrate_range_to_ram(struct usvm_mm *mm, struct usvm_region *r,
			    uintptr_t start, uintptr_t end)
{
	uintptr_t a = MAX_UL(start, r->start);
	int ret = 0;

	end = MIN_UL(end, r->end);
	while (a < end) {
		uintptr_t bend = MIN_UL(end, ALIGN_DOWN_UL(a, USVM_BLOCK_SIZE) + USVM_BLOCK_SIZE);
		pthread_mutex_t *bl = mm_block_lock(mm, a);
		uintptr_t p;

		pthread_mutex_lock(bl);
		for (p = a; p < bend; p += USVM_PAGE_SIZE) {
			struct usvm_page *pg = region_page(r, p);

			if (pg->dm) {
				long err = migrate_devmem_to_ram(pg->dm, USVM_MIGRATE_RANGE);

				if (err < 0 && !ret)
					ret = (int)err;
			}
		}
		pthread_mutex_unlock(bl);
		a = bend;
	}
	return ret;
}

/* ---- create / destroy --------------------------------------------------- */

int usvm_mm_create(const struct usvm_mm_options *opts, struct usvm_mm **out)
{
	struct usvm_mm *mm;
	uint64_t got = 0;
	int err, i;

	if (!out)
		return -EINVAL;
	mm = calloc(1, sizeof(*mm));
	if (!mm)
		return -ENOMEM;
	mm->uffd_arena = mm->uffd_user = mm->stop_efd = -1;
	mm->arena_size = opts && opts->arena_size ? opts->arena_size
						  : usvm_env_size("USVM_ARENA_SIZE", 1ul << 30);
	mm->arena_size = ALIGN_UP_UL(mm->arena_size, USVM_BLOCK_SIZE);
	mm->nthreads = opts && opts->fault_threads ? opts->fault_threads
						   : (unsigned)usvm_env_ulong("USVM_FAULT_THREADS", 4);
	if (mm->nthreads < 1)
		mm->nthreads = 1;
	if (mm->nthreads > USVM_MAX_FAULT_THREADS)
		mm->nthreads = USVM_MAX_FAULT_THREADS;
	pthread_rwlock_init(&mm->regions_lock, NULL);
	pthread_rwlock_init(&mm->notifier_lock, NULL);
	pthread_mutex_init(&mm->alloc_lock, NULL);
	pthread_mutex_init(&mm->trash_lock, NULL);
	pthread_mutex_init(&mm->read_lock, NULL);
	pthread_mutex_init(&mm->event_lock, NULL);
	for (i = 0; i < USVM_BLOCK_LOCKS; i++)
		pthread_mutex_init(&mm->block_locks[i], NULL);
	list_init(&mm->notifiers);

	err = uffd_open(ARENA_FEATURES, &got, &mm->user_mode_only);
	if (err == -EINVAL) /* events unavailable: behind-our-back changes unseen */
		err = uffd_open(UFFD_FEATURE_MOVE, &got, &mm->user_mode_only);
	if (err < 0)
		goto fail;
	mm->uffd_arena = err;
	if (!(got & UFFD_FEATURE_MOVE)) {
		err = -ENOSYS;
		goto fail;
	}
	err = uffd_open(USER_FEATURES, &mm->features_user, &mm->user_mode_only);
	if (err == -EINVAL)
		err = uffd_open(UFFD_FEATURE_MOVE, &mm->features_user, &mm->user_mode_only);
	if (err < 0)
		goto fail;
	mm->uffd_user = err;
	err = mm_trash_init(mm);
	if (err)
		goto fail;
	mm->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (mm->stop_efd < 0) {
		err = -errno;
		goto fail;
	}
	err = mm_fault_threads_start(mm);
	if (err)
		goto fail;
	*out = mm;
	return 0;
fail:
	if (mm->uffd_arena >= 0)
		close(mm->uffd_arena);
	if (mm->uffd_user >= 0)
		close(mm->uffd_user);
	if (mm->stop_efd >= 0)
		close(mm->stop_efd);
	free(mm);
	return err;
}

void usvm_mm_destroy(struct usvm_mm *mm)
{
	size_t i;

	if (!mm)
		return;
	/* Every page comes home while the fault threads still serve faults. */
	pthread_rwlock_rdlock(&mm->regions_lock);
	for (i = 0; i < mm->nregions; i++) {
		struct usvm_region *r = mm->regions[i];

		r->dying = 1;
		mm_migrate_range_to_ram(mm, r, r->start, r->end);
	}
	pthread_rwlock_unlock(&mm->regions_lock);
	mm_fault_threads_stop(mm);
	pthread_rwlock_wrlock(&mm->regions_lock);
	for (i = 0; i < mm->nregions; i++) {
		struct usvm_region *r = mm->regions[i];

		uffd_unregister(r->uffd, r->start, r->end - r->start);
		if (r->kind == USVM_REGION_ARENA)
			munmap((void *)r->start, r->end - r->start);
		mm_region_free(r);
	}
	mm->nregions = 0;
	pthread_rwlock_unlock(&mm->regions_lock);
	free(mm->regions);
	mm_allocs_destroy(mm);
	mm_trash_fini(mm);
	close(mm->uffd_arena);
	close(mm->uffd_user);
	close(mm->stop_efd);
	for (i = 0; i < USVM_BLOCK_LOCKS; i++)
		pthread_mutex_destroy(&mm->block_locks[i]);
	pthread_rwlock_destroy(&mm->regions_lock);
	pthread_rwlock_destroy(&mm->notifier_lock);
	pthread_mutex_destroy(&mm->alloc_lock);
	free(mm);
}

/* ---- registered ranges -------------------------------------------------- */

/* Private, anonymous, writable memory covering all of [start, end)? */
static int check_anon_private(uintptr_t start, uintptr_t end)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	uintptr_t covered = start;

	if (!f)
		return 0; /* cannot tell: let UFFDIO_REGISTER decide */
	while (covered < end && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi, off, inode;
		char perms[8], dev[16], path[256] = "";
		int n = sscanf(line, "%lx-%lx %7s %lx %15s %lu %255s", &lo, &hi, perms,
			       &off, dev, &inode, path);

		if (n < 6 || hi <= covered || lo > covered)
			continue;
		if (perms[0] != 'r' || perms[1] != 'w' || perms[3] != 'p' || inode != 0 ||
		    (path[0] && path[0] != '[')) {
			fclose(f);
			return -EINVAL;
		}
		if (path[0] == '[' && strcmp(path, "[heap]") && strncmp(path, "[anon", 5)) {
			fclose(f);
			return -EINVAL; /* [stack], [vdso], ... */
		}
		covered = hi;
	}
	fclose(f);
	return covered >= end ? 0 : -EFAULT;
}

int usvm_register(struct usvm_mm *mm, void *addr, size_t len)
{
	uintptr_t start = (uintptr_t)addr, end = start + len;
	struct usvm_region *r;
	int err;

	if (!mm || !addr || !len || (start | len) & (USVM_PAGE_SIZE - 1) || end < start)
		return -EINVAL;
	err = check_anon_private(start, end);
	if (err)
		return err;
	err = mm_region_add(mm, start, end, USVM_REGION_USER, mm->uffd_user, 0, &r);
	if (err == -EEXIST) {
		/* Maybe the old range was just unmapped and its event is still
		 * being handled: let the fault threads catch up, then retry. */
		mm_events_quiesce(mm);
		err = mm_region_add(mm, start, end, USVM_REGION_USER, mm->uffd_user, 0, &r);
	}
	if (err)
		return err;
	err = uffd_register(mm->uffd_user, start, len);
	if (err) {
		pthread_rwlock_wrlock(&mm->regions_lock);
		mm_region_remove_locked(mm, r);
		pthread_rwlock_unlock(&mm->regions_lock);
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
	pthread_rwlock_rdlock(&mm->regions_lock);
	r = mm_region_find(mm, start);
	if (!r || r->kind != USVM_REGION_USER || r->start != start ||
	    r->end - r->start != len || r->dying) {
		pthread_rwlock_unlock(&mm->regions_lock);
		return -EINVAL;
	}
	r->dying = 1; /* no new populates ... */
	err = mm_migrate_range_to_ram(mm, r, r->start, r->end); /* ... all home */
	pthread_rwlock_unlock(&mm->regions_lock);
	if (err) {
		r->dying = 0;
		return err;
	}
	pthread_rwlock_wrlock(&mm->regions_lock);
	mm_region_remove_locked(mm, r);
	pthread_rwlock_unlock(&mm->regions_lock);
	/* Wakes any thread still waiting in a fault on the range. */
	uffd_unregister(mm->uffd_user, start, len);
	pthread_mutex_lock(mm_block_lock(mm, start));
	mm_invalidate(mm, start, start + len, USVM_INVAL_UNMAP, NULL);
	pthread_mutex_unlock(mm_block_lock(mm, start));
	mm_region_free(r);
	STAT_SUB(mm->st.registered_ranges, 1);
	return 0;
}

/* ---- queries ------------------------------------------------------------ */

int usvm_where(struct usvm_mm *mm, const void *addr, struct usvm_pagemap **pagemap)
{
	struct usvm_page *pg;
	int ret = -EFAULT;

	if (!mm || !pagemap)
		return -EINVAL;
	pthread_rwlock_rdlock(&mm->regions_lock);
	pg = mm_page(mm, (uintptr_t)addr, NULL);
	if (pg) {
		pthread_mutex_t *bl = mm_block_lock(mm, (uintptr_t)addr);

		pthread_mutex_lock(bl);
		*pagemap = pg->dm ? pg->dm->pagemap : NULL;
		pthread_mutex_unlock(bl);
		ret = 0;
	}
	pthread_rwlock_unlock(&mm->regions_lock);
	return ret;
}

long usvm_resident_bytes(struct usvm_mm *mm, const void *addr, size_t len,
			 struct usvm_pagemap *pagemap)
{
	uintptr_t a = ALIGN_DOWN_UL((uintptr_t)addr, USVM_PAGE_SIZE);
	uintptr_t end = (uintptr_t)addr + len;
	long total = 0;

	if (!mm)
		return -EINVAL;
	pthread_rwlock_rdlock(&mm->regions_lock);
	while (a < end && total >= 0) {
		uintptr_t bend = MIN_UL(end, ALIGN_DOWN_UL(a, USVM_BLOCK_SIZE) + USVM_BLOCK_SIZE);
		pthread_mutex_t *bl = mm_block_lock(mm, a);

		pthread_mutex_lock(bl);
		for (; a < bend; a += USVM_PAGE_SIZE) {
			struct usvm_page *pg = mm_page(mm, a, NULL);

			if (!pg) {
				total = -EFAULT;
				break;
			}
			if ((pg->dm ? pg->dm->pagemap : NULL) == pagemap)
				total += (long)USVM_PAGE_SIZE;
		}
		pthread_mutex_unlock(bl);
	}
	pthread_rwlock_unlock(&mm->regions_lock);
	return total;
}

int usvm_mm_stats(struct usvm_mm *mm, struct usvm_mm_stats *o)
{
	if (!mm || !o)
		return -EINVAL;
	memset(o, 0, sizeof(*o));
#define C(f) o->f = STAT_READ(mm->st.f)
	C(cpu_faults); C(cpu_faults_devmem); C(cpu_faults_first_touch); C(timeslice_waits);
	C(migrations_to_ram); C(bytes_to_ram); C(ns_to_ram);
	C(migrations_to_dev); C(bytes_to_dev); C(ns_to_dev);
	C(allocs); C(frees); C(live_allocs); C(live_bytes); C(registered_ranges);
	C(events_remove); C(events_unmap); C(events_remap); C(device_bytes_dropped);
#undef C
	return 0;
}

void usvm_mm_stats_print(struct usvm_mm *mm, FILE *f)
{
	struct usvm_mm_stats s;

	if (usvm_mm_stats(mm, &s))
		return;
	fprintf(f, "mm: %" PRIu64 " live allocations (%.1f MiB), %" PRIu64 " registered ranges\n",
		s.live_allocs, s.live_bytes / 1048576.0, s.registered_ranges);
	fprintf(f, "  cpu faults %" PRIu64 " (%" PRIu64 " on device pages, %" PRIu64
		" first touch, %" PRIu64 " waited out a timeslice)\n",
		s.cpu_faults, s.cpu_faults_devmem, s.cpu_faults_first_touch, s.timeslice_waits);
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

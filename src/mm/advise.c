// SPDX-License-Identifier: MIT
/*
 * DOC: Advice, discard and range attributes (cudaMemAdvise,
 * cudaMemRangeGetAttributes; a discard without the madvise round trip)
 *
 * Advice is bookkeeping here: page-granular intervals of the address space,
 * each with a preferred location, the devices that keep a mapping wherever
 * the data lives (accessed-by) and the last prefetch target.  The layers
 * above read it where they decide (a device fault asks mm_advice_get()
 * whether and where to migrate); mm never acts on it.
 *
 * Locations are opaque to mm: MM_LOC_SYSTEM is system memory, anything else
 * is a pagemap (preferred, last prefetch) or a device (accessed-by).  A
 * pagemap named in advice is kept alive by a reference, taken and dropped
 * through the ops the pagemap layer registers (mm_set_location_ops: mm
 * never calls upward); a device forgets its advice when it is destroyed.
 *
 * Intervals live in one sorted array under advice_lock; advising [s, e)
 * splits the intervals at s and e, creates the missing ones, updates
 * everything in between and merges equal neighbours, so the array stays as
 * small as the distinct advice given.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "mm.h"
#include "uffd.h"

static const struct mm_location_ops *loc_ops;

void mm_set_location_ops(const struct mm_location_ops *ops)
{
	loc_ops = ops;
}

static void loc_get(const void *loc)
{
	if (loc && loc != MM_LOC_SYSTEM && loc_ops)
		loc_ops->get(loc);
}

/*
 * References are dropped after advice_lock is released: a last reference
 * unbinds its pagemap, which takes block locks, and a thread holding a block
 * lock must be able to read advice.
 */
static __thread const void *deferred_puts[64];
static __thread unsigned int ndeferred;

static void loc_put(const void *loc)
{
	if (!loc || loc == MM_LOC_SYSTEM || !loc_ops)
		return;
	if (ndeferred < ARRAY_SIZE(deferred_puts))
		deferred_puts[ndeferred++] = loc;
	else
		loc_ops->put(loc); /* not a last reference in practice: the lock is held */
}

/* Drop the references put while advice_lock was held; lock not held. */
static void flush_puts(void)
{
	while (ndeferred)
		loc_ops->put(deferred_puts[--ndeferred]);
}

/* References an interval holds: its preferred and last-prefetch pagemaps. */
static void advice_get_refs(const struct mm_advice *a)
{
	loc_get(a->preferred);
	loc_get(a->last_prefetch);
}

static void advice_put_refs(const struct mm_advice *a)
{
	loc_put(a->preferred);
	loc_put(a->last_prefetch);
}

static int same_advice(const struct mm_advice *a, const struct mm_advice *b)
{
	return a->preferred == b->preferred && a->naccessed == b->naccessed &&
	       !memcmp(a->accessed_by, b->accessed_by, sizeof(a->accessed_by)) &&
	       a->last_prefetch == b->last_prefetch && a->read_mostly == b->read_mostly;
}

static int empty_advice(const struct mm_advice *a)
{
	return !a->preferred && !a->naccessed && !a->last_prefetch && !a->read_mostly;
}

/* Insert a copy of @v at index @i (taking its references). */
static int advice_insert_at(struct usvm_mm *mm, size_t i, const struct mm_advice *v)
{
	if (mm->nadvice == mm->cap_advice) {
		size_t cap = mm->cap_advice ? mm->cap_advice * 2 : 16;
		struct mm_advice *n = realloc(mm->advice, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		mm->advice = n;
		mm->cap_advice = cap;
	}
	memmove(&mm->advice[i + 1], &mm->advice[i], (mm->nadvice - i) * sizeof(*v));
	mm->advice[i] = *v;
	advice_get_refs(v);
	mm->nadvice++;
	return 0;
}

/* Index of the first interval ending after @addr; advice_lock held. */
static size_t advice_lower_bound(struct usvm_mm *mm, uintptr_t addr)
{
	size_t lo = 0, hi = mm->nadvice;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (mm->advice[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Split the interval holding @addr, if any, at @addr. */
static int advice_split(struct usvm_mm *mm, uintptr_t addr)
{
	size_t i = advice_lower_bound(mm, addr);
	struct mm_advice tail;

	if (i == mm->nadvice || mm->advice[i].start >= addr)
		return 0;
	tail = mm->advice[i];
	tail.start = addr;
	mm->advice[i].end = addr;
	return advice_insert_at(mm, i + 1, &tail);
}

/* Cover [s, e) with intervals (blank ones in the gaps). */
static int advice_cover(struct usvm_mm *mm, uintptr_t s, uintptr_t e)
{
	size_t i = advice_lower_bound(mm, s);
	uintptr_t cur = s;
	int err = 0;

	while (cur < e && !err) {
		struct mm_advice blank = { .start = cur };

		if (i < mm->nadvice && mm->advice[i].start <= cur) {
			cur = mm->advice[i++].end;
			continue;
		}
		blank.end = i < mm->nadvice ? MIN_UL(e, mm->advice[i].start) : e;
		err = advice_insert_at(mm, i++, &blank);
		cur = blank.end;
	}
	return err;
}

/* Merge equal neighbours, drop blank intervals (and their references). */
static void advice_compact(struct usvm_mm *mm)
{
	size_t i, o = 0;

	for (i = 0; i < mm->nadvice; i++) {
		struct mm_advice *a = &mm->advice[i];

		if (empty_advice(a))
			continue;
		if (o && mm->advice[o - 1].end == a->start && same_advice(&mm->advice[o - 1], a)) {
			mm->advice[o - 1].end = a->end;
			advice_put_refs(a);
		} else {
			mm->advice[o++] = *a;
		}
	}
	mm->nadvice = o;
}

/* Replace a location held by @a in @slot, moving the reference. */
static void set_loc(const void **slot, const void *loc)
{
	loc_get(loc);
	loc_put(*slot);
	*slot = loc;
}

static int apply_one(struct mm_advice *a, int advice, const void *loc)
{
	unsigned int i;

	for (i = 0; i < a->naccessed && a->accessed_by[i] != loc; i++)
		;
	switch (advice) {
	case USVM_ADVISE_PREFERRED_LOCATION:
		set_loc(&a->preferred, loc ? loc : MM_LOC_SYSTEM);
		break;
	case USVM_ADVISE_UNSET_PREFERRED_LOCATION:
		set_loc(&a->preferred, NULL);
		break;
	case USVM_ADVISE_ACCESSED_BY:
		if (i < a->naccessed)
			break;
		if (a->naccessed == MM_MAX_ACCESSED_BY)
			return -ENOSPC;
		a->accessed_by[a->naccessed++] = loc;
		break;
	case USVM_ADVISE_UNSET_ACCESSED_BY:
		if (i == a->naccessed)
			break;
		a->accessed_by[i] = a->accessed_by[--a->naccessed];
		a->accessed_by[a->naccessed] = NULL;
		break;
	case MM_ADVICE_PREFETCH:
		set_loc(&a->last_prefetch, loc ? loc : MM_LOC_SYSTEM);
		break;
	case USVM_ADVISE_READ_MOSTLY:
	case USVM_ADVISE_UNSET_READ_MOSTLY:
		a->read_mostly = advice == USVM_ADVISE_READ_MOSTLY;
		break;
	default:
		return -EINVAL;
	}
	return 0;
}

int mm_advice_update(struct usvm_mm *mm, uintptr_t s, uintptr_t e, int advice, const void *loc)
{
	size_t i;
	int err;

	pthread_rwlock_wrlock(&mm->advice_lock);
	err = advice_split(mm, s);
	err = err ? err : advice_split(mm, e);
	err = err ? err : advice_cover(mm, s, e);
	for (i = advice_lower_bound(mm, s); !err && i < mm->nadvice && mm->advice[i].start < e; i++)
		err = apply_one(&mm->advice[i], advice, loc);
	advice_compact(mm);
	pthread_rwlock_unlock(&mm->advice_lock);
	flush_puts();
	return err;
}

void mm_advice_clear(struct usvm_mm *mm, uintptr_t s, uintptr_t e)
{
	size_t i;

	pthread_rwlock_wrlock(&mm->advice_lock);
	/* A split that cannot allocate leaves a little stale advice: harmless. */
	if (!advice_split(mm, s) && !advice_split(mm, e)) {
		for (i = advice_lower_bound(mm, s); i < mm->nadvice && mm->advice[i].start < e; i++) {
			struct mm_advice *a = &mm->advice[i];

			set_loc(&a->preferred, NULL);
			set_loc(&a->last_prefetch, NULL);
			a->read_mostly = 0;
			a->naccessed = 0;
			memset(a->accessed_by, 0, sizeof(a->accessed_by));
		}
	}
	advice_compact(mm);
	pthread_rwlock_unlock(&mm->advice_lock);
	flush_puts();
}

/* The interval of advice holding @addr, or NULL; advice_lock held. */
static const struct mm_advice *advice_at(struct usvm_mm *mm, uintptr_t addr)
{
	size_t i = advice_lower_bound(mm, addr);

	return i < mm->nadvice && mm->advice[i].start <= addr ? &mm->advice[i] : NULL;
}

void mm_advice_get(struct usvm_mm *mm, uintptr_t addr, struct mm_advice *out)
{
	const struct mm_advice *a;

	memset(out, 0, sizeof(*out));
	pthread_rwlock_rdlock(&mm->advice_lock);
	a = advice_at(mm, addr);
	if (a) {
		*out = *a;
		advice_get_refs(out); /* the caller drops them: mm_advice_put() */
	}
	pthread_rwlock_unlock(&mm->advice_lock);
}

int mm_advice_prefers(struct usvm_mm *mm, uintptr_t addr, const void *loc)
{
	const struct mm_advice *a;
	int yes;

	pthread_rwlock_rdlock(&mm->advice_lock);
	a = advice_at(mm, addr);
	yes = a && a->preferred == loc;
	pthread_rwlock_unlock(&mm->advice_lock);
	return yes;
}

void mm_advice_put(struct mm_advice *a)
{
	advice_put_refs(a);
	flush_puts();
	memset(a, 0, sizeof(*a));
}

void mm_advice_forget(struct usvm_mm *mm, const void *loc)
{
	size_t i;

	pthread_rwlock_wrlock(&mm->advice_lock);
	for (i = 0; i < mm->nadvice; i++)
		apply_one(&mm->advice[i], USVM_ADVISE_UNSET_ACCESSED_BY, loc);
	advice_compact(mm);
	pthread_rwlock_unlock(&mm->advice_lock);
	flush_puts();
}

void mm_advice_fini(struct usvm_mm *mm)
{
	size_t i;

	for (i = 0; i < mm->nadvice; i++) {
		advice_put_refs(&mm->advice[i]);
		flush_puts();
	}
	free(mm->advice);
	mm->advice = NULL;
	mm->nadvice = mm->cap_advice = 0;
}

/* ---- the public calls -------------------------------------------------------------- */

/* Is all of [s, e) managed (covered by regions)?  regions_lock held. */
static int range_managed(struct usvm_mm *mm, uintptr_t s, uintptr_t e)
{
	while (s < e) {
		struct usvm_region *r = mm_region_find(mm, s);

		if (!r || atomic_load(&r->dying) || atomic_load(&r->gone))
			return 0;
		s = r->end;
	}
	return 1;
}

/* Validate and round out [addr, addr+len) to pages. */
static int user_range(struct usvm_mm *mm, const void *addr, size_t len, uintptr_t *s,
		      uintptr_t *e)
{
	int ok;

	if (!mm || !len || (uintptr_t)addr + len < (uintptr_t)addr)
		return -EINVAL;
	if (!mm_usable(mm))
		return -ENODEV;
	*s = ALIGN_DOWN_UL((uintptr_t)addr, USVM_PAGE_SIZE);
	*e = ALIGN_UP_UL((uintptr_t)addr + len, USVM_PAGE_SIZE);
	mm_events_settle(mm);
	usvm_rwlock_rdlock(&mm->regions_lock);
	ok = range_managed(mm, *s, *e);
	usvm_rwlock_unlock(&mm->regions_lock);
	return ok ? 0 : -EFAULT;
}

/*
 * DOC: Read duplication (USVM_ADVISE_READ_MOSTLY)
 *
 * A device read fault on a read-mostly range copies it into a read-only
 * device copy instead of migrating it; the CPU keeps its pages, which are
 * write-protected (userfaultfd WP) while a copy exists.  Any write collapses
 * the copies first: a CPU write (or a device write through the CPU mapping)
 * takes a write-protect fault, whose handler invalidates the block's device
 * mappings (copies included) and unprotects the block before the write goes
 * on; a migration, munmap, madvise or mremap invalidates them as always.
 * Write-protect mode is registered on the whole 2 MiB blocks the advice
 * touches, so a range of any size around it can be protected.
 */

/* Add write-protect mode to the blocks around [s, e).  0, -EOPNOTSUPP (the
 * kernel has no userfaultfd write-protect for this memory) or -errno. */
static int register_wp(struct usvm_mm *mm, uintptr_t s, uintptr_t e)
{
	uintptr_t S = ALIGN_DOWN_UL(s, USVM_BLOCK_SIZE), E = ALIGN_UP_UL(e, USVM_BLOCK_SIZE), p;
	int err = 0;

	usvm_rwlock_rdlock(&mm->regions_lock);
	for (p = S; p < E && !err;) {
		struct usvm_region *r = mm_region_find(mm, p);
		uintptr_t lo, hi;

		if (!r) {
			p += USVM_PAGE_SIZE; /* a gap between regions */
			continue;
		}
		lo = MAX_UL(S, r->start);
		hi = MIN_UL(E, r->end);
		err = uffd_register_wp(r->uffd, lo, hi - lo);
		p = hi;
	}
	usvm_rwlock_unlock(&mm->regions_lock);
	return err == -EINVAL ? -EOPNOTSUPP : err;
}

int mm_read_mostly(struct usvm_mm *mm, uintptr_t addr)
{
	const struct mm_advice *a;
	int yes;

	pthread_rwlock_rdlock(&mm->advice_lock);
	a = advice_at(mm, addr);
	yes = a && a->read_mostly;
	pthread_rwlock_unlock(&mm->advice_lock);
	return yes;
}

int mm_write_protect(struct usvm_mm *mm, uintptr_t start, uintptr_t end)
{
	struct usvm_region *r;
	int err = -EFAULT;

	usvm_rwlock_rdlock(&mm->regions_lock);
	r = mm_region_find(mm, start);
	if (r && end <= r->end)
		err = uffd_writeprotect(r->uffd, start, end - start, 1);
	usvm_rwlock_unlock(&mm->regions_lock);
	return err;
}

int usvm_advise(struct usvm_mm *mm, void *addr, size_t len, enum usvm_advice advice,
		void *target)
{
	uintptr_t s, e;
	int err;

	if ((unsigned int)advice > USVM_ADVISE_UNSET_READ_MOSTLY ||
	    ((advice == USVM_ADVISE_ACCESSED_BY || advice == USVM_ADVISE_UNSET_ACCESSED_BY) &&
	     !target))
		return -EINVAL;
	err = user_range(mm, addr, len, &s, &e);
	if (!err && advice == USVM_ADVISE_READ_MOSTLY)
		err = register_wp(mm, s, e);
	if (err)
		return err;
	return mm_advice_update(mm, s, e, advice, target);
}

/* Drop device copies and CPU pages of one block piece; block lock held. */
static uintptr_t discard_block(struct usvm_mm *mm, struct usvm_region *r, uintptr_t a,
			       uintptr_t bend)
{
	uintptr_t busy = 0;

	mm_invalidate(mm, a, bend, USVM_INVAL_REMOVE);
	mm_drop_block(mm, r, a, bend, 0);
	if (region_blk(r, a) & MM_BLK_CPU)
		mm_discard_cpu_pages(mm, a, bend, &busy);
	return busy;
}

int usvm_discard(struct usvm_mm *mm, void *addr, size_t len)
{
	uintptr_t s, e, a, bend, p;
	int err;

	if (!mm || !len)
		return -EINVAL;
	/* Whole pages only: a partial page keeps its bytes. */
	s = ALIGN_UP_UL((uintptr_t)addr, USVM_PAGE_SIZE);
	e = ALIGN_DOWN_UL((uintptr_t)addr + len, USVM_PAGE_SIZE);
	err = user_range(mm, addr, len, &a, &bend);
	if (err || s >= e)
		return err;
	usvm_rwlock_rdlock(&mm->regions_lock);
	for (p = s; p < e;) {
		struct usvm_region *r = mm_region_find(mm, p);
		uintptr_t rend = r ? MIN_UL(e, r->end) : e;

		for_each_block(a, bend, p, r ? rend : p) {
			uintptr_t busy;

			mm_block_lock_acquire(mm, a);
			busy = discard_block(mm, r, a, bend);
			mm_block_lock_release(mm, a);
			/* Shared since fork: writing zeros breaks the sharing. */
			for (; busy && busy < bend; busy += USVM_PAGE_SIZE)
				memset((void *)busy, 0, USVM_PAGE_SIZE);
		}
		p = rend;
	}
	usvm_rwlock_unlock(&mm->regions_lock);
	return 0;
}

/* Count [a, bend) (one block of @r) per location into @out; block lock held. */
static void block_residency(struct usvm_region *r, uintptr_t a, uintptr_t bend,
			    struct usvm_range_attrs *out)
{
	unsigned int i;

	if (!(region_blk(r, a) & MM_BLK_STATE)) {
		out->bytes_system += bend - a;
		return;
	}
	for (; a < bend; a += USVM_PAGE_SIZE) {
		struct mm_devmem *dm = region_page(r, a)->dm;

		if (!dm) {
			out->bytes_system += USVM_PAGE_SIZE;
			continue;
		}
		for (i = 0; i < out->nresident && out->resident[i].pagemap != dm->pagemap; i++)
			;
		if (i == out->nresident && i < USVM_RANGE_MAX_LOCATIONS)
			out->resident[out->nresident++].pagemap = dm->pagemap;
		if (i < out->nresident)
			out->resident[i].bytes += USVM_PAGE_SIZE;
	}
}

static void residency(struct usvm_mm *mm, uintptr_t s, uintptr_t e, struct usvm_range_attrs *out)
{
	uintptr_t a, bend;

	usvm_rwlock_rdlock(&mm->regions_lock);
	while (s < e) {
		struct usvm_region *r = mm_region_find(mm, s);
		uintptr_t rend;

		if (!r)
			break; /* unmapped meanwhile */
		rend = MIN_UL(e, r->end);
		for_each_block(a, bend, s, rend) {
			mm_block_lock_acquire(mm, a);
			block_residency(r, a, bend, out);
			mm_block_lock_release(mm, a);
		}
		s = rend;
	}
	usvm_rwlock_unlock(&mm->regions_lock);
}

/* A location as (pagemap, is-system). */
static void loc_out(const void *loc, struct usvm_pagemap **pm, int *system)
{
	*system = loc == MM_LOC_SYSTEM;
	*pm = loc && loc != MM_LOC_SYSTEM ? (struct usvm_pagemap *)loc : NULL;
}

/* Advice that holds for all of [s, e): one interval covering it, or none. */
static void advice_attrs(struct usvm_mm *mm, uintptr_t s, uintptr_t e,
			 struct usvm_range_attrs *out)
{
	size_t i;
	unsigned int k;

	pthread_rwlock_rdlock(&mm->advice_lock);
	i = advice_lower_bound(mm, s);
	if (i < mm->nadvice && mm->advice[i].start <= s && mm->advice[i].end >= e) {
		const struct mm_advice *a = &mm->advice[i];

		loc_out(a->preferred, &out->preferred, &out->preferred_system);
		loc_out(a->last_prefetch, &out->last_prefetch, &out->last_prefetch_system);
		for (k = 0; k < a->naccessed; k++)
			out->accessed_by[k] = (struct usvm_device *)a->accessed_by[k];
		out->naccessed_by = a->naccessed;
		out->read_mostly = a->read_mostly;
	} else if (i < mm->nadvice && mm->advice[i].start < e) {
		out->preferred_mixed = 1; /* advice covers part of the range */
	}
	pthread_rwlock_unlock(&mm->advice_lock);
}

int usvm_range_attr(struct usvm_mm *mm, const void *addr, size_t len,
		    struct usvm_range_attrs *out)
{
	uintptr_t s, e;
	int err;

	if (!out)
		return -EINVAL;
	err = user_range(mm, addr, len, &s, &e);
	if (err)
		return err;
	memset(out, 0, sizeof(*out));
	advice_attrs(mm, s, e, out);
	residency(mm, s, e, out);
	return 0;
}

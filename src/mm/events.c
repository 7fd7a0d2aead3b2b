// SPDX-License-Identifier: MIT
/*
 * DOC: userfaultfd events (munmap, madvise, mremap behind the library's back)
 *
 * Applied by the applier thread, one at a time, in the order the reader read
 * them (fault.c explains why that order is enough).
 *
 * REMOVE (MADV_DONTNEED/FREE/REMOVE) arrives *before* the kernel zaps the CPU
 * pages: device copies are dropped now, and pages that may still have a CPU
 * page are marked MM_PAGE_REMOVED so that a populate racing with the zap
 * does not carry the old bytes into device memory.  UNMAP arrives after the
 * unmap: device copies go, pages are marked unmapped, and a registered range
 * unmapped completely is forgotten.  REMAP arrives after the kernel moved the
 * CPU pages: device-resident pages have no CPU page to move, so their data
 * is put at the new address here, as the kernel moves device-private
 * entries with the VA.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include "mm.h"
#include "uffd.h"

/* Is the whole region gone (unmapped by the program)? */
static int region_gone(struct usvm_region *r)
{
	return atomic_load(&r->gone) || atomic_load(&r->unmapped_pages) == r->npages;
}

/* Forget registered ranges the program unmapped completely (e.g. free() of
 * a big malloc, possibly in several munmap calls). */
static void forget_gone_regions(struct usvm_mm *mm)
{
	size_t i;

	usvm_rwlock_wrlock(&mm->regions_lock);
	for (i = 0; i < mm->nregions;) {
		struct usvm_region *r = mm->regions[i];

		if (r->kind != USVM_REGION_ARENA && region_gone(r)) {
			mm_region_remove_locked(mm, r);
			if (r->kind == USVM_REGION_USER)
				STAT_SUB(mm->st.registered_ranges, 1);
			mm_region_free(r);
			continue;
		}
		i++;
	}
	usvm_rwlock_unlock(&mm->regions_lock);
}

/* A device allocation holding pages of @r both in [a, s) and [e, b), or NULL. */
static struct mm_devmem *dm_straddling(struct usvm_region *r, uintptr_t a, uintptr_t s,
				       uintptr_t e, uintptr_t b)
{
	uintptr_t p, q;

	if (!(region_blk(r, a) & MM_BLK_STATE))
		return NULL;
	for (p = a; p < s; p += USVM_PAGE_SIZE) {
		struct mm_devmem *dm = region_page(r, p)->dm;

		if (!dm)
			continue;
		for (q = e; q < b; q += USVM_PAGE_SIZE)
			if (region_page(r, q)->dm == dm)
				return dm;
	}
	return NULL;
}

/*
 * A hole inside one block: a device allocation with pages on both sides
 * cannot belong to two regions, so it comes home first (what the kernel's
 * GPU SVM does to a partially unmapped range).  A few quick retries while
 * another event is in flight.  Returns non-zero when one could not.
 */
static int straddlers_home(struct usvm_mm *mm, struct usvm_region *r, uintptr_t a, uintptr_t s,
			   uintptr_t e, uintptr_t b)
{
	struct usvm_backoff bo = USVM_BACKOFF_INIT(100);
	struct mm_devmem *dm;
	long err = 0;

	mm_block_lock_acquire(mm, a);
	while ((dm = dm_straddling(r, a, s, e, b))) {
		err = dm->ops->migrate_to_ram(dm, MM_MIGRATE_RANGE, 0, NULL);
		if (err < 0 && !usvm_backoff(&bo))
			break;
		err = 0;
	}
	mm_block_lock_release(mm, a);
	if (err)
		usvm_log("munmap: [%#lx, %#lx) stays tracked (%ld)", (unsigned long)s,
			 (unsigned long)e, err);
	return err != 0;
}

/* Copy @r's states of [a, bend) into @n (one block); block lock held. */
static void copy_block_states(struct usvm_region *r, struct usvm_region *n, uintptr_t a,
			      uintptr_t bend)
{
	unsigned int blk = region_blk(r, a);
	uintptr_t p;

	if (!blk)
		return;
	region_blk_set(n, a, blk);
	if (!(blk & MM_BLK_STATE))
		return;
	for (p = a; p < bend; p += USVM_PAGE_SIZE) {
		struct usvm_page *from = region_page(r, p);

		if (from->dm) {
			region_page_set_dm(n, p, from->dm, from->idx);
			from->dm->ops->rehome(from->dm, n);
		}
		if (page_flags(from))
			region_page_set_flags(n, p, page_flags(from), 0);
	}
}

/*
 * The program unmapped [s, e) out of the middle or an end of registered
 * range @r: track what is left as ranges of their own, so that the freed
 * addresses can be mapped and registered again.  (The kernel's GPU SVM
 * never splits its ranges; usvm's regions are the program's mappings, and
 * the kernel splits those.)  Skipped, keeping the pages flagged unmapped,
 * when a device allocation has pages on both sides of a hole inside one
 * block.  regions_lock held for writing.
 */
static void split_region(struct usvm_mm *mm, struct usvm_region *r, uintptr_t s, uintptr_t e)
{
	struct usvm_region *part[2] = { NULL, NULL };
	uintptr_t a, bend, blk = ALIGN_DOWN_UL(s, USVM_BLOCK_SIZE);
	int i, err = 0;

	if (atomic_load(&r->dying) || atomic_load(&r->pending) || (s <= r->start && e >= r->end))
		return;
	if (ALIGN_DOWN_UL(e - 1, USVM_BLOCK_SIZE) == blk && s > r->start && e < r->end &&
	    straddlers_home(mm, r, MAX_UL(blk, r->start), s, e,
			    MIN_UL(blk + USVM_BLOCK_SIZE, r->end)))
		return;
	if (s > r->start)
		part[0] = mm_region_new(r->start, s, USVM_REGION_USER, r->uffd);
	if (e < r->end)
		part[1] = mm_region_new(e, r->end, USVM_REGION_USER, r->uffd);
	if ((s > r->start && !part[0]) || (e < r->end && !part[1]))
		err = -ENOMEM;
	for (i = 0; !err && i < 2; i++) {
		if (!part[i])
			continue;
		memset(part[i]->blk, 0, part[i]->nblk); /* copied from @r below */
		for_each_block(a, bend, part[i]->start, part[i]->end) {
			mm_block_lock_acquire(mm, a);
			copy_block_states(r, part[i], a, bend);
			mm_block_lock_release(mm, a);
		}
	}
	if (err) {
		for (i = 0; i < 2; i++)
			if (part[i])
				mm_region_free(part[i]);
		return;
	}
	mm_region_remove_locked(mm, r);
	for (i = 0; i < 2; i++)
		if (part[i])
			mm_region_insert_locked(mm, part[i]);
	if (part[0] && part[1])
		STAT_ADD(mm->st.registered_ranges, 1);
	mm_region_free(r);
}

/* Split the registered ranges partly unmapped by [start, end). */
static void split_unmapped(struct usvm_mm *mm, uintptr_t start, uintptr_t end)
{
	size_t i;

	usvm_rwlock_wrlock(&mm->regions_lock);
	for (i = 0; i < mm->nregions; i++) {
		struct usvm_region *r = mm->regions[i];

		if (r->kind != USVM_REGION_USER || r->end <= start || r->start >= end ||
		    (start <= r->start && end >= r->end))
			continue;
		split_region(mm, r, MAX_UL(start, r->start), MIN_UL(end, r->end));
		i = 0; /* the array changed: start over (few regions overlap) */
		if (mm->nregions && mm->regions[0]->end > start && mm->regions[0]->start < end)
			continue;
	}
	usvm_rwlock_unlock(&mm->regions_lock);
}

static void handle_remove(struct usvm_mm *mm, uintptr_t start, uintptr_t end,
			  enum usvm_inval_event ev)
{
	int any_gone = 0, any_split = 0;
	size_t i;

	usvm_rwlock_rdlock(&mm->regions_lock);
	for (i = 0; i < mm->nregions; i++) {
		struct usvm_region *r = mm->regions[i];
		uint32_t flags = ev == USVM_INVAL_UNMAP ? MM_PAGE_UNMAPPED : MM_PAGE_REMOVED;

		if (r->end <= start || r->start >= end)
			continue;
		/* All of it unmapped: one flag, not one per page. */
		if (ev == USVM_INVAL_UNMAP && start <= r->start && end >= r->end) {
			atomic_store(&r->gone, 1);
			flags = 0;
		}
		mm_drop_range(mm, r, start, end, ev, flags);
		any_gone |= r->kind != USVM_REGION_ARENA && region_gone(r);
		any_split |= flags == MM_PAGE_UNMAPPED && r->kind == USVM_REGION_USER &&
			     !region_gone(r);
	}
	usvm_rwlock_unlock(&mm->regions_lock);
	if (any_gone)
		forget_gone_regions(mm);
	if (any_split)
		split_unmapped(mm, start, end);
}

/* Put the device-resident pages of one block piece of @oldr at @to + offset. */
static int remap_block(struct usvm_mm *mm, struct usvm_region *oldr, uintptr_t a,
		       uintptr_t bend, uintptr_t from, uintptr_t to)
{
	uintptr_t p;
	int err = 0;

	mm_block_lock_acquire(mm, a);
	mm_invalidate(mm, a, bend, USVM_INVAL_UNMAP);
	for (p = a; p < bend && !err; p += USVM_PAGE_SIZE) {
		struct usvm_page *pg = region_page(oldr, p);
		struct mm_devmem *dm = pg->dm;

		if (!dm)
			continue;
		err = dm->ops->move_page(dm, pg->idx, to + (p - from));
		if (!err)
			region_page_set_dm(oldr, p, NULL, 0);
	}
	mm_block_lock_release(mm, a);
	return err;
}

static void remap_device_pages(struct usvm_mm *mm, uintptr_t from, uintptr_t to, size_t len)
{
	struct usvm_region *oldr;
	uintptr_t a, bend;

	usvm_rwlock_rdlock(&mm->regions_lock);
	oldr = mm_region_find(mm, from);
	for_each_block(a, bend, from, from + len) {
		struct usvm_backoff bo = USVM_BACKOFF_INIT(30000);
		int err;

		if (!oldr || !(region_blk(oldr, a) & MM_BLK_STATE))
			continue;
		/* -EAGAIN: the munmap event of the old range is queued behind
		 * us; the reader reads it and the move then goes through. */
		while ((err = remap_block(mm, oldr, a, bend, from, to)) && usvm_backoff(&bo))
			;
		if (err)
			usvm_log("mremap: device pages of [%#lx, %#lx) could not follow "
				 "the move (%d): they read as zeros", (unsigned long)a,
				 (unsigned long)bend, err);
	}
	usvm_rwlock_unlock(&mm->regions_lock);
}

/* The first region overlapping [start, end), or NULL; regions_lock held. */
static struct usvm_region *first_region_in(struct usvm_mm *mm, uintptr_t start, uintptr_t end)
{
	size_t i;

	for (i = 0; i < mm->nregions; i++)
		if (mm->regions[i]->end > start && mm->regions[i]->start < end)
			return mm->regions[i];
	return NULL;
}

/*
 * The kernel put a new mapping at [s, e) while regions of an old one are
 * still tracked there: the old one's UNMAP or REMAP is queued behind the
 * event being applied (its caller released the addresses before ours could
 * reuse them, but queued its event later).  Apply that one first; if it is
 * not read yet, have the reader read it.
 */
static int clear_stale(struct usvm_mm *mm, uintptr_t s, uintptr_t e)
{
	struct usvm_backoff bo = USVM_BACKOFF_INIT(2000);

	for (;;) {
		struct usvm_region *r;
		uintptr_t lo = 0, hi = 0;

		usvm_rwlock_rdlock(&mm->regions_lock);
		r = first_region_in(mm, s, e);
		if (r) {
			lo = MAX_UL(s, r->start);
			hi = MIN_UL(e, r->end);
		}
		usvm_rwlock_unlock(&mm->regions_lock);
		if (!r)
			return 0;
		if (mm_apply_queued_for(mm, lo, hi))
			continue;
		/* Its event may be raised and not read yet. */
		if (mm_changing(mm) && usvm_backoff(&bo)) {
			mm_read_pass(mm);
			continue;
		}
		/* Nothing is on its way about it: the kernel put a new mapping
		 * there, so whatever was tracked there is dead. */
		if (r->kind != USVM_REGION_USER)
			return -EEXIST;
		usvm_log("mremap: [%#lx, %#lx) was still tracked for a mapping that is gone",
			 (unsigned long)r->start, (unsigned long)r->end);
		handle_remove(mm, r->start, r->end, USVM_INVAL_UNMAP);
	}
}

/*
 * [ps, pe) of one region moved to @to + (ps - @from): track the new place
 * (its faults wait until the device-resident pages have been put back
 * there), then put them there.  A tail mremap grew is not tracked (the
 * event carries the old length only): the program registers it.
 */
static void remap_piece(struct usvm_mm *mm, int uffd, uintptr_t from, uintptr_t to,
			uintptr_t ps, uintptr_t pe)
{
	uintptr_t nto = to + (ps - from);
	size_t nlen = pe - ps;
	struct usvm_region *newr;
	int err;

	err = clear_stale(mm, nto, nto + nlen);
	newr = err ? NULL : mm_region_new(nto, nto + nlen, USVM_REGION_USER, uffd);
	err = err ? err : newr ? (atomic_store(&newr->pending, 1), mm_region_insert(mm, newr))
			       : -ENOMEM;
	if (err) {
		usvm_log("mremap to %#lx: cannot track the new range (%d)", (unsigned long)nto, err);
		newr = NULL;
	} else {
		STAT_ADD(mm->st.registered_ranges, 1);
	}
	remap_device_pages(mm, ps, nto, pe - ps);
	if (newr)
		atomic_store(&newr->pending, 0);
}

static void owe_unmap(struct usvm_mm *mm, uintptr_t start, uintptr_t end)
{
	struct mm_dispatch *d = &mm->d;

	if (d->nowed == ARRAY_SIZE(d->owed_unmap)) /* forget the oldest */
		memmove(&d->owed_unmap[0], &d->owed_unmap[1],
			--d->nowed * sizeof(d->owed_unmap[0]));
	d->owed_unmap[d->nowed].start = start;
	d->owed_unmap[d->nowed].end = end;
	d->nowed++;
}

/* Is this UNMAP the one an mremap already applied?  Then it is consumed. */
static int unmap_owed(struct usvm_mm *mm, uintptr_t start, uintptr_t end)
{
	struct mm_dispatch *d = &mm->d;
	unsigned int i;

	for (i = 0; i < d->nowed; i++) {
		if (d->owed_unmap[i].start == start && d->owed_unmap[i].end == end) {
			d->owed_unmap[i] = d->owed_unmap[--d->nowed];
			return 1;
		}
	}
	return 0;
}

static void handle_remap(struct usvm_mm *mm, uintptr_t from, uintptr_t to, size_t len)
{
	uintptr_t cur = from, end = from + len;
	unsigned char vec;

	/* The moved range may span several regions (e.g. a range and the
	 * tail registered after it grew in place: one mapping, two regions). */
	while (cur < end) {
		struct usvm_region *r;
		uintptr_t ps, pe;
		int uffd;

		usvm_rwlock_rdlock(&mm->regions_lock);
		r = first_region_in(mm, cur, end);
		if (r) {
			ps = MAX_UL(cur, r->start);
			pe = MIN_UL(end, r->end);
			uffd = r->uffd;
		}
		usvm_rwlock_unlock(&mm->regions_lock);
		if (!r)
			break;
		remap_piece(mm, uffd, from, to, ps, pe);
		cur = pe;
	}
	/* Unless the program used MREMAP_DONTUNMAP, the old addresses are not
	 * even mapped any more: that is applied now, and the UNMAP event the
	 * kernel sends for them after the REMAP is skipped when it comes (by
	 * then another mapping may have been moved there). */
	if (mincore((void *)from, USVM_PAGE_SIZE, &vec) && errno == ENOMEM) {
		handle_remove(mm, from, from + len, USVM_INVAL_UNMAP);
		owe_unmap(mm, from, from + len);
	} else {
		handle_remove(mm, from, from + len, USVM_INVAL_REMOVE);
	}
}

void mm_apply_event(struct usvm_mm *mm, const struct mm_msg *m)
{
	switch (m->event) {
	case UFFD_EVENT_REMOVE:
		STAT_ADD(mm->st.events_remove, 1);
		handle_remove(mm, (uintptr_t)m->a, (uintptr_t)m->b, USVM_INVAL_REMOVE);
		break;
	case UFFD_EVENT_UNMAP:
		STAT_ADD(mm->st.events_unmap, 1);
		if (!unmap_owed(mm, (uintptr_t)m->a, (uintptr_t)m->b))
			handle_remove(mm, (uintptr_t)m->a, (uintptr_t)m->b, USVM_INVAL_UNMAP);
		break;
	case UFFD_EVENT_REMAP:
		STAT_ADD(mm->st.events_remap, 1);
		handle_remap(mm, (uintptr_t)m->a, (uintptr_t)m->b, (size_t)m->c);
		break;
	default:
		break;
	}
}

// SPDX-License-Identifier: MIT
/*
 * GPU SVM: notifiers, ranges, get_pages, invalidation, garbage collection
 * (the design of drivers/gpu/drm/drm_gpusvm.c, on usvm's mm).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "gpusvm.h"
#include "span.h"
#include "migrate/migrate.h"

#define GET_PAGES_TIMEOUT_NS 1000000000ull /* HMM_RANGE_DEFAULT_TIMEOUT */

/* ---- lookup ------------------------------------------------------------ */

static struct usvm_gpusvm_notifier *notifier_find(struct usvm_gpusvm *svm, uintptr_t addr)
{
	return span_find((void *const *)svm->notifiers, svm->nnotifiers, addr);
}

/* Index of the first range of @n ending after @addr. */
static size_t range_lower_bound(struct usvm_gpusvm_notifier *n, uintptr_t addr)
{
	return span_lower_bound((void *const *)n->ranges, n->nranges, addr);
}

struct usvm_gpusvm_range *usvm_gpusvm_range_find(struct usvm_gpusvm *svm, uintptr_t addr)
{
	struct usvm_gpusvm_notifier *n = notifier_find(svm, addr);

	return n ? span_find((void *const *)n->ranges, n->nranges, addr) : NULL;
}

static int range_overlaps(struct usvm_gpusvm_notifier *n, uintptr_t start, uintptr_t end)
{
	size_t i = range_lower_bound(n, start);

	return i < n->nranges && n->ranges[i]->start < end;
}

/* ---- invalidation (mmu interval notifier) ------------------------------ */

static void gpusvm_invalidate(struct usvm_mm_notifier *mn, uintptr_t start, uintptr_t end,
			      enum usvm_inval_event ev)
{
	struct usvm_gpusvm *svm = container_of(mn, struct usvm_gpusvm, mmn);
	size_t i, j;

	pthread_rwlock_wrlock(&svm->notifier_lock);
	for (i = 0; i < svm->nnotifiers; i++) {
		struct usvm_gpusvm_notifier *n = svm->notifiers[i];

		if (n->end <= start || n->start >= end)
			continue;
		n->seq++;
		for (j = range_lower_bound(n, start); j < n->nranges; j++) {
			struct usvm_gpusvm_range *r = n->ranges[j];

			if (r->start >= end)
				break;
			if (svm->ops && svm->ops->invalidate)
				svm->ops->invalidate(svm, r, ev);
			if (r->has_dma_mapping || r->has_devmem_pages)
				STAT_ADD(svm->invalidations, 1);
			r->has_dma_mapping = 0;
			r->has_devmem_pages = 0;
			free(r->dup);
			r->dup = NULL;
			if (ev == USVM_INVAL_UNMAP) {
				r->unmapped = 1;
				if (r->start < start || r->end > end)
					r->partial_unmap = 1;
				if (!r->in_gc) {
					r->in_gc = 1;
					r->gc_next = svm->gc_list;
					svm->gc_list = r;
				}
			}
		}
	}
	pthread_rwlock_unlock(&svm->notifier_lock);
}

/* ---- init / fini --------------------------------------------------------- */

int usvm_gpusvm_init(struct usvm_gpusvm *svm, const char *name, struct usvm_mm *mm,
		     const size_t *chunk_sizes, int num_chunks, size_t notifier_size,
		     const struct usvm_gpusvm_ops *ops, void *driver)
{
	static const size_t def_chunks[] = { 2u << 20, 64u << 10, 4u << 10 };
	pthread_rwlockattr_t attr;
	int i;

	memset(svm, 0, sizeof(*svm));
	if (!mm || num_chunks < 0 || num_chunks > 4)
		return -EINVAL;
	if (!num_chunks) {
		chunk_sizes = def_chunks;
		num_chunks = 3;
	}
	for (i = 0; i < num_chunks; i++) {
		size_t c = chunk_sizes[i];

		/* Powers of two, descending, within a block, ending at one page. */
		if (c < USVM_PAGE_SIZE || c > USVM_BLOCK_SIZE || (c & (c - 1)) ||
		    (i && c >= chunk_sizes[i - 1]))
			return -EINVAL;
		svm->chunk_sizes[i] = c;
	}
	if (svm->chunk_sizes[num_chunks - 1] != USVM_PAGE_SIZE)
		return -EINVAL;
	if (!notifier_size)
		notifier_size = 512ul << 20;
	if (notifier_size & (notifier_size - 1) || notifier_size < USVM_BLOCK_SIZE)
		return -EINVAL;
	svm->num_chunks = num_chunks;
	svm->notifier_size = notifier_size;
	svm->name = name;
	svm->mm = mm;
	svm->ops = ops;
	svm->driver = driver;
	pthread_mutex_init(&svm->driver_lock, NULL);
	/* Writers (invalidations) must not starve behind streams of readers. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&svm->notifier_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	svm->mmn.invalidate = gpusvm_invalidate;
	usvm_mm_notifier_register(mm, &svm->mmn);
	return 0;
}

static void range_free(struct usvm_gpusvm_range *r)
{
	free(r->dup);
	free(r->addrs);
	free(r);
}

void usvm_gpusvm_fini(struct usvm_gpusvm *svm)
{
	size_t i, j;

	usvm_mm_notifier_unregister(svm->mm, &svm->mmn);
	for (i = 0; i < svm->nnotifiers; i++) {
		struct usvm_gpusvm_notifier *n = svm->notifiers[i];

		for (j = 0; j < n->nranges; j++)
			range_free(n->ranges[j]);
		free(n->ranges);
		free(n);
	}
	free(svm->notifiers);
	pthread_rwlock_destroy(&svm->notifier_lock);
	pthread_mutex_destroy(&svm->driver_lock);
}

/* ---- find_or_insert --------------------------------------------------------- */

/* Can [start, end) form a range: inside one live region, no page unmapped? */
static int chunk_fits_mm(struct usvm_mm *mm, uintptr_t start, uintptr_t end)
{
	struct usvm_region *r = mm_region_find(mm, start);
	uintptr_t a;

	if (!r || atomic_load(&r->dying) || atomic_load(&r->gone) || end > r->end)
		return 0;
	for (a = start; a < end; a += USVM_PAGE_SIZE) {
		if (!(region_blk(r, a) & MM_BLK_STATE)) {
			a = ALIGN_DOWN_UL(a, USVM_BLOCK_SIZE) + USVM_BLOCK_SIZE - USVM_PAGE_SIZE;
			continue; /* an untouched block has no unmapped page */
		}
		if (page_flags(region_page(r, a)) & MM_PAGE_UNMAPPED)
			return 0;
	}
	return 1;
}

static struct usvm_gpusvm_notifier *notifier_get(struct usvm_gpusvm *svm, uintptr_t addr)
{
	struct usvm_gpusvm_notifier *n = notifier_find(svm, addr);
	int err;

	if (n)
		return n;
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->start = ALIGN_DOWN_UL(addr, svm->notifier_size);
	n->end = n->start + svm->notifier_size;
	/* Readers (device accesses) walk the array: change it under the lock. */
	pthread_rwlock_wrlock(&svm->notifier_lock);
	err = span_insert((void ***)&svm->notifiers, &svm->nnotifiers, &svm->capn, n);
	pthread_rwlock_unlock(&svm->notifier_lock);
	if (err) {
		free(n);
		return NULL;
	}
	return n;
}

/* The largest aligned chunk around @addr inside the memory and notifier @n,
 * not overlapping an existing range (drm_gpusvm_range_chunk_size); regions_lock
 * held.  Return: 0, or -EFAULT when not even @addr's page fits: an munmap
 * event marks pages unmapped under regions_lock held for reading, so the page
 * the caller checked may have been unmapped since (hmm_range_fault's
 * -EFAULT, no VMA). */
static int pick_chunk(struct usvm_gpusvm *svm, struct usvm_gpusvm_notifier *n, uintptr_t addr,
		      uintptr_t *start, uintptr_t *end)
{
	int i;

	for (i = 0; i < svm->num_chunks; i++) {
		size_t c = svm->chunk_sizes[i];

		*start = ALIGN_DOWN_UL(addr, c);
		*end = *start + c;
		if (*start < n->start || *end > n->end || !chunk_fits_mm(svm->mm, *start, *end))
			continue;
		if (c != USVM_PAGE_SIZE && range_overlaps(n, *start, *end))
			continue;
		return 0;
	}
	return -EFAULT;
}

static struct usvm_gpusvm_range *range_new(struct usvm_gpusvm_notifier *n, uintptr_t start,
					   uintptr_t end)
{
	struct usvm_gpusvm_range *r = calloc(1, sizeof(*r));

	if (r)
		r->addrs = calloc((end - start) >> USVM_PAGE_SHIFT, sizeof(*r->addrs));
	if (!r || !r->addrs) {
		free(r);
		return NULL;
	}
	r->start = start;
	r->end = end;
	r->notifier = n;
	r->notifier_seq = (unsigned long)-1;
	r->migrate_devmem = 1; /* all managed memory is private anonymous */
	return r;
}

/*
 * The range at @addr, or a new one (drm_gpusvm_range_find_or_insert); the
 * notifier and the chunk are decided with regions_lock held, so that the
 * memory they cover cannot change meanwhile.
 */
static struct usvm_gpusvm_range *find_or_pick(struct usvm_gpusvm *svm, uintptr_t addr,
					      struct usvm_gpusvm_notifier **np,
					      uintptr_t *start, uintptr_t *end, int *err)
{
	uintptr_t page = ALIGN_DOWN_UL(addr, USVM_PAGE_SIZE);
	struct usvm_gpusvm_range *r = NULL;

	*err = 0;
	usvm_rwlock_rdlock(&svm->mm->regions_lock);
	if (!chunk_fits_mm(svm->mm, page, page + USVM_PAGE_SIZE)) {
		*err = -EFAULT; /* no "VMA": nobody mapped this address */
		goto out_unlock;
	}
	*np = notifier_get(svm, addr);
	if (!*np) {
		*err = -ENOMEM;
		goto out_unlock;
	}
	pthread_rwlock_rdlock(&svm->notifier_lock);
	r = usvm_gpusvm_range_find(svm, addr);
	if (r && r->unmapped) {
		r = NULL;
		*err = -EAGAIN; /* unmapped, not collected yet: collect, then retry */
	}
	pthread_rwlock_unlock(&svm->notifier_lock);
	if (!r && !*err)
		*err = pick_chunk(svm, *np, addr, start, end);
out_unlock:
	usvm_rwlock_unlock(&svm->mm->regions_lock);
	return r;
}

struct usvm_gpusvm_range *usvm_gpusvm_range_find_or_insert(struct usvm_gpusvm *svm,
							   uintptr_t fault_addr, int *err)
{
	struct usvm_gpusvm_notifier *n = NULL;
	struct usvm_gpusvm_range *r;
	uintptr_t start = 0, end = 0;

	r = find_or_pick(svm, fault_addr, &n, &start, &end, err);
	if (r || *err)
		return r;
	r = range_new(n, start, end);
	if (!r) {
		*err = -ENOMEM;
		return NULL;
	}
	pthread_rwlock_wrlock(&svm->notifier_lock);
	*err = span_insert((void ***)&n->ranges, &n->nranges, &n->cap, r);
	pthread_rwlock_unlock(&svm->notifier_lock);
	if (*err) {
		range_free(r);
		return NULL;
	}
	STAT_ADD(svm->ranges_created, 1);
	return r;
}

/* ---- get_pages ------------------------------------------------------------ */

/*
 * Snapshot one page (hmm_range_fault with a device owner): a device page of
 * the owner (or of a peer, with peer access) is used as is; any other device
 * page is migrated to RAM first, honouring its timeslice.
 */
static int snapshot_page(struct usvm_gpusvm_ctx *ctx, struct usvm_region *reg,
			 uintptr_t va, struct usvm_device_addr *out)
{
	struct usvm_page *pg = (region_blk(reg, va) & MM_BLK_STATE) ? region_page(reg, va) : NULL;
	struct mm_devmem *m = pg ? pg->dm : NULL;

	if (pg && (page_flags(pg) & MM_PAGE_UNMAPPED))
		return -EFAULT;
	if (m && (m->pagemap == ctx->owner || ctx->peer_access)) {
		struct usvm_devmem *dm = &to_devmem(m)->pub;
		int err = dm->pagemap->ops->device_map(dm->pagemap, ctx->device,
						       dm->pfn[pg->idx], out);

		if (err)
			return err;
		if (dm->pagemap != ctx->owner)
			out->proto = USVM_INTERCONNECT_PEER;
		return 0;
	}
	if (m) {
		uint64_t retry_at = 0;

		/* Another device's page: it comes home (after its timeslice). */
		if (m->ops->migrate_to_ram(m, MM_MIGRATE_CPU_FAULT, va, &retry_at) < 0)
			return -EAGAIN;
	}
	/* devmem_only: every page in the owner's memory, except arena pages
	 * that no allocation holds (populate leaves them in system memory). */
	if (ctx->devmem_only && mm_page_allocated(reg, va))
		return -EFAULT;
	out->addr = va;
	out->proto = USVM_INTERCONNECT_SYSTEM;
	out->order = 0;
	return 0;
}

static int snapshot_range(struct usvm_gpusvm *svm, struct usvm_gpusvm_range *range,
			  struct usvm_gpusvm_ctx *ctx, struct usvm_device_addr *addrs)
{
	struct usvm_mm *mm = svm->mm;
	struct usvm_region *reg;
	uintptr_t a, bend, p;
	int err = 0;

	usvm_rwlock_rdlock(&mm->regions_lock);
	reg = mm_region_find(mm, range->start);
	if (!reg || atomic_load(&reg->dying) || atomic_load(&reg->gone) || range->end > reg->end)
		err = -EFAULT;
	else if (atomic_load(&reg->pending))
		err = -EAGAIN; /* an mremap target being filled */
	for_each_block(a, bend, range->start, err ? range->start : range->end) {
		mm_block_lock_acquire(mm, a);
		for (p = a; !err && p < bend; p += USVM_PAGE_SIZE)
			err = snapshot_page(ctx, reg, p,
					    &addrs[(p - range->start) >> USVM_PAGE_SHIFT]);
		mm_block_lock_release(mm, a);
		if (err)
			break;
	}
	usvm_rwlock_unlock(&mm->regions_lock);
	return err;
}

/* The range's sequence number before a snapshot, or -EFAULT if unmapped. */
static long read_begin(struct usvm_gpusvm *svm, struct usvm_gpusvm_range *range)
{
	long seq;

	pthread_rwlock_rdlock(&svm->notifier_lock);
	seq = range->unmapped ? -EFAULT : (long)(range->notifier->seq & LONG_MAX);
	pthread_rwlock_unlock(&svm->notifier_lock);
	return seq;
}

/* Commit a snapshot taken at @seq: 0, -EAGAIN (invalidated meanwhile: take
 * it again) or -EFAULT (unmapped meanwhile). */
static int commit_pages(struct usvm_gpusvm *svm, struct usvm_gpusvm_range *range,
			struct usvm_gpusvm_ctx *ctx, const struct usvm_device_addr *addrs,
			long seq)
{
	size_t npages = (range->end - range->start) >> USVM_PAGE_SHIFT, i;
	int err = 0;

	pthread_rwlock_wrlock(&svm->notifier_lock);
	if (range->unmapped) {
		err = -EFAULT;
		goto out_unlock;
	}
	if ((long)(range->notifier->seq & LONG_MAX) != seq) {
		err = -EAGAIN;
		goto out_unlock;
	}
	ctx->mapped_system = ctx->mapped_device = ctx->mapped_peer = 0;
	range->has_devmem_pages = 0;
	for (i = 0; i < npages; i++) {
		range->addrs[i] = addrs[i];
		switch (addrs[i].proto) {
		case USVM_INTERCONNECT_SYSTEM: ctx->mapped_system += USVM_PAGE_SIZE; break;
		case USVM_INTERCONNECT_PEER: ctx->mapped_peer += USVM_PAGE_SIZE; break;
		default: ctx->mapped_device += USVM_PAGE_SIZE; break;
		}
		if (addrs[i].proto != USVM_INTERCONNECT_SYSTEM)
			range->has_devmem_pages = 1;
	}
	range->has_dma_mapping = 1;
	range->notifier_seq = (unsigned long)seq;
out_unlock:
	pthread_rwlock_unlock(&svm->notifier_lock);
	return err;
}

int usvm_gpusvm_range_get_pages(struct usvm_gpusvm *svm, struct usvm_gpusvm_range *range,
				struct usvm_gpusvm_ctx *ctx)
{
	size_t npages = (range->end - range->start) >> USVM_PAGE_SHIFT;
	uint64_t deadline = usvm_now_ns() + GET_PAGES_TIMEOUT_NS;
	struct usvm_device_addr *addrs;
	long seq;
	int err;

	addrs = malloc(npages * sizeof(*addrs)); /* never allocate under the lock */
	if (!addrs)
		return -ENOMEM;
	do {
		/* The mmu interval notifier protocol: snapshot, then commit only
		 * if no invalidation ran meanwhile (hmm_range_fault's retry). */
		seq = read_begin(svm, range);
		err = seq < 0 ? (int)seq : snapshot_range(svm, range, ctx, addrs);
		if (!err)
			err = commit_pages(svm, range, ctx, addrs, seq);
		if (err == -EAGAIN)
			usleep(100);
	} while (err == -EAGAIN && usvm_now_ns() < deadline);
	free(addrs);
	return err == -EAGAIN ? -EBUSY : err;
}

/* ---- evict / garbage collection -------------------------------------------- */

int usvm_gpusvm_range_evict(struct usvm_gpusvm *svm, struct usvm_gpusvm_range *range)
{
	struct usvm_mm *mm = svm->mm;
	struct usvm_region *reg;
	int err = 0;

	mm_events_settle(mm);
	usvm_rwlock_rdlock(&mm->regions_lock);
	reg = mm_region_find(mm, range->start);
	if (reg)
		err = mm_migrate_range_to_ram(mm, reg, range->start, range->end);
	usvm_rwlock_unlock(&mm->regions_lock);
	return err;
}

static void range_remove(struct usvm_gpusvm *svm, struct usvm_gpusvm_range *r)
{
	struct usvm_gpusvm_notifier *n = r->notifier;

	pthread_rwlock_wrlock(&svm->notifier_lock);
	span_remove((void **)n->ranges, &n->nranges, r);
	if (!n->nranges) {
		/* Empty notifier: remove it too (drm_gpusvm_range_remove). */
		span_remove((void **)svm->notifiers, &svm->nnotifiers, n);
		free(n->ranges);
		free(n);
	}
	pthread_rwlock_unlock(&svm->notifier_lock);
	range_free(r);
	STAT_ADD(svm->ranges_removed, 1);
}

void usvm_gpusvm_garbage_collect(struct usvm_gpusvm *svm)
{
	struct usvm_gpusvm_range *r;

	for (;;) {
		pthread_rwlock_wrlock(&svm->notifier_lock);
		r = svm->gc_list;
		if (r)
			svm->gc_list = r->gc_next;
		pthread_rwlock_unlock(&svm->notifier_lock);
		if (!r)
			return;
		/* Ranges are never split: the still-mapped part goes home. */
		if (r->partial_unmap)
			usvm_gpusvm_range_evict(svm, r);
		range_remove(svm, r);
	}
}

size_t usvm_gpusvm_range_count(struct usvm_gpusvm *svm)
{
	size_t i, total = 0;

	pthread_rwlock_rdlock(&svm->notifier_lock);
	for (i = 0; i < svm->nnotifiers; i++)
		total += svm->notifiers[i]->nranges;
	pthread_rwlock_unlock(&svm->notifier_lock);
	return total;
}

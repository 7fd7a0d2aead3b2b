// SPDX-License-Identifier: MIT
/*
 * Managed allocations (usvm_alloc/usvm_free).  Small allocations are carved
 * out of large arenas, each registered with userfaultfd once: 100 000 small
 * allocations cost one registration, not 100 000 (the kernel caps the
 * number of mappings a process may have, vm.max_map_count = 65530).  Large
 * ones get a region of their own, so that freeing them is one munmap and
 * their bookkeeping never scans a bitmap: both cost what was touched, not
 * what was reserved.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include "mm.h"
#include "uffd.h"

/* ---- allocation table: start address -> pages (open addressing) ------- */

#define TOMB ((uintptr_t)1)

static size_t hash_addr(uintptr_t a, size_t cap)
{
	uint64_t h = (uint64_t)(a >> USVM_PAGE_SHIFT) * 0x9E3779B97F4A7C15ull;

	return (size_t)(h >> 20) & (cap - 1);
}

static int table_grow(struct alloc_table *t)
{
	size_t cap = t->cap ? t->cap * 2 : 1024, i;
	uintptr_t *keys = calloc(cap, sizeof(*keys));
	uint32_t *np = calloc(cap, sizeof(*np));

	if (!keys || !np) {
		free(keys);
		free(np);
		return -ENOMEM;
	}
	for (i = 0; i < t->cap; i++) {
		size_t h;

		if (t->keys[i] <= TOMB)
			continue;
		for (h = hash_addr(t->keys[i], cap); keys[h]; h = (h + 1) & (cap - 1))
			;
		keys[h] = t->keys[i];
		np[h] = t->npages[i];
	}
	free(t->keys);
	free(t->npages);
	t->keys = keys;
	t->npages = np;
	t->cap = cap;
	t->tombs = 0;
	return 0;
}

static int table_insert(struct alloc_table *t, uintptr_t key, uint32_t npages)
{
	size_t h;

	if ((t->count + t->tombs + 1) * 2 > t->cap && table_grow(t))
		return -ENOMEM;
	for (h = hash_addr(key, t->cap); t->keys[h] > TOMB; h = (h + 1) & (t->cap - 1))
		;
	if (t->keys[h] == TOMB)
		t->tombs--;
	t->keys[h] = key;
	t->npages[h] = npages;
	t->count++;
	return 0;
}

/* Remove @key; returns its page count, or 0 if absent. */
static uint32_t table_remove(struct alloc_table *t, uintptr_t key)
{
	size_t h;

	if (!t->cap)
		return 0;
	for (h = hash_addr(key, t->cap); t->keys[h]; h = (h + 1) & (t->cap - 1)) {
		if (t->keys[h] == key) {
			uint32_t n = t->npages[h];

			t->keys[h] = TOMB;
			t->tombs++;
			t->count--;
			return n;
		}
	}
	return 0;
}

void mm_allocs_destroy(struct usvm_mm *mm)
{
	free(mm->allocs.keys);
	free(mm->allocs.npages);
	memset(&mm->allocs, 0, sizeof(mm->allocs));
}

/* ---- arena bitmaps ---------------------------------------------------- */

/* Allocations this large get a dedicated region. */
#define DEDICATED_MIN (64ul << 20)
#define TRASH_SIZE USVM_BLOCK_SIZE

static int bit_test(const uint64_t *bm, size_t i)
{
	return (__atomic_load_n(&bm[i >> 6], __ATOMIC_RELAXED) >> (i & 63)) & 1;
}

/* Atomic bit updates: populate peeks at the bitmap without alloc_lock. */
static void bits_assign(uint64_t *bm, size_t i, size_t n, int v)
{
	for (; n && (i & 63); i++, n--) {
		if (v)
			__atomic_fetch_or(&bm[i >> 6], 1ull << (i & 63), __ATOMIC_RELAXED);
		else
			__atomic_fetch_and(&bm[i >> 6], ~(1ull << (i & 63)), __ATOMIC_RELAXED);
	}
	for (; n >= 64; i += 64, n -= 64)
		__atomic_store_n(&bm[i >> 6], v ? ~0ull : 0ull, __ATOMIC_RELAXED);
	for (; n; i++, n--) {
		if (v)
			__atomic_fetch_or(&bm[i >> 6], 1ull << (i & 63), __ATOMIC_RELAXED);
		else
			__atomic_fetch_and(&bm[i >> 6], ~(1ull << (i & 63)), __ATOMIC_RELAXED);
	}
}

int mm_page_allocated(struct usvm_region *r, uintptr_t addr)
{
	size_t i = (addr - r->start) >> USVM_PAGE_SHIFT;

	switch (r->kind) {
	case USVM_REGION_USER:
		return 1;
	case USVM_REGION_ALLOC:
		return !atomic_load(&r->dying);
	default:
		break;
	}
	if (!r->bitmap || !bit_test(r->bitmap, i))
		return 0;
	/* Being freed: its contents are going away. */
	return !((region_blk(r, addr) & MM_BLK_STATE) &&
		 (page_flags(region_page(r, addr)) & MM_PAGE_FREEING));
}

/* First free run of @n pages aligned to @align pages, from the hint. */
static size_t arena_find(struct usvm_region *r, size_t n, size_t align)
{
	size_t pass, i;

	for (pass = 0; pass < 2; pass++) {
		i = ALIGN_UP_UL(pass ? 0 : r->hint, align);
		while (i + n <= r->npages) {
			size_t j = 0;

			/* Skip full words fast. */
			if ((i & 63) == 0 && r->bitmap[i >> 6] == ~0ull) {
				i = ALIGN_UP_UL(i + 64, align);
				continue;
			}
			while (j < n && !bit_test(r->bitmap, i + j))
				j++;
			if (j == n)
				return i;
			i = ALIGN_UP_UL(i + j + 1, align);
		}
	}
	return SIZE_MAX;
}

/* A block-aligned private mapping of @size registered with @uffd. */
static int map_registered(int uffd, size_t size, uintptr_t *out)
{
	uintptr_t base;
	void *p;
	int err;

	/* Over-map to align to a block. */
	p = mmap(NULL, size + USVM_BLOCK_SIZE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	base = ALIGN_UP_UL((uintptr_t)p, USVM_BLOCK_SIZE);
	if (base > (uintptr_t)p)
		munmap(p, base - (uintptr_t)p);
	munmap((void *)(base + size), (uintptr_t)p + USVM_BLOCK_SIZE - base);
	err = uffd_register(uffd, base, size);
	if (err) {
		munmap((void *)base, size);
		return err;
	}
	*out = base;
	return 0;
}

static int region_map_new(struct usvm_mm *mm, size_t size, enum usvm_region_kind kind,
			  struct usvm_region **out)
{
	struct usvm_region *r;
	uintptr_t base;
	int err;

	err = map_registered(mm->uffd_arena, size, &base);
	if (err)
		return err;
	r = mm_region_new(base, base + size, kind, mm->uffd_arena);
	if (r && kind == USVM_REGION_ARENA) {
		r->bitmap = calloc((r->npages + 63) / 64, sizeof(uint64_t));
		if (!r->bitmap) {
			mm_region_free(r);
			r = NULL;
		}
	}
	err = r ? mm_region_insert(mm, r) : -ENOMEM;
	if (err) {
		uffd_unregister(mm->uffd_arena, base, size);
		munmap((void *)base, size);
		return err;
	}
	*out = r;
	return 0;
}

static int alloc_dedicated(struct usvm_mm *mm, size_t size, void **out)
{
	struct usvm_region *r;
	int err;

	err = region_map_new(mm, ALIGN_UP_UL(size, USVM_BLOCK_SIZE), USVM_REGION_ALLOC, &r);
	if (err)
		return err;
	pthread_mutex_lock(&mm->alloc_lock);
	err = table_insert(&mm->allocs, r->start, (uint32_t)(size >> USVM_PAGE_SHIFT));
	pthread_mutex_unlock(&mm->alloc_lock);
	if (err) {
		usvm_rwlock_wrlock(&mm->regions_lock);
		mm_region_remove_locked(mm, r);
		usvm_rwlock_unlock(&mm->regions_lock);
		uffd_unregister(r->uffd, r->start, r->end - r->start);
		munmap((void *)r->start, r->end - r->start);
		mm_region_free(r);
		return err;
	}
	*out = (void *)r->start;
	return 0;
}

static int alloc_in_arena(struct usvm_mm *mm, size_t size, void **out)
{
	size_t n = size >> USVM_PAGE_SHIFT, i, at = SIZE_MAX;
	size_t align = size >= USVM_BLOCK_SIZE ? USVM_BLOCK_PAGES : size >= (64u << 10) ? 16 : 1;
	struct usvm_region *r = NULL;
	int err, retried = 0;

again:
	at = SIZE_MAX;
	pthread_mutex_lock(&mm->alloc_lock);
	usvm_rwlock_rdlock(&mm->regions_lock);
	for (i = 0; i < mm->nregions; i++) {
		r = mm->regions[i];
		if (r->kind != USVM_REGION_ARENA || atomic_load(&r->dying) || atomic_load(&r->gone))
			continue;
		at = arena_find(r, n, align);
		if (at != SIZE_MAX)
			break;
	}
	usvm_rwlock_unlock(&mm->regions_lock);
	if (at == SIZE_MAX && !retried) {
		/* Freed pages waiting for their discard may be the room. */
		pthread_mutex_lock(&mm->free_lock);
		retried = mm->nfreed != 0;
		pthread_mutex_unlock(&mm->free_lock);
		if (retried) {
			pthread_mutex_unlock(&mm->alloc_lock);
			mm_discard_freed(mm);
			goto again;
		}
	}
	if (at == SIZE_MAX) {
		err = region_map_new(mm, mm->arena_size, USVM_REGION_ARENA, &r);
		if (err)
			goto err_unlock;
		at = arena_find(r, n, align);
	}
	err = table_insert(&mm->allocs, r->start + (at << USVM_PAGE_SHIFT), (uint32_t)n);
	if (err)
		goto err_unlock;
	bits_assign(r->bitmap, at, n, 1);
	r->hint = at + n;
	pthread_mutex_unlock(&mm->alloc_lock);
	*out = (void *)(r->start + (at << USVM_PAGE_SHIFT));
	return 0;
err_unlock:
	pthread_mutex_unlock(&mm->alloc_lock);
	return err;
}

int usvm_alloc(struct usvm_mm *mm, size_t size, void **out)
{
	int err;

	if (!mm || !out || !size || size > (1ull << 40))
		return -EINVAL;
	if (!mm_usable(mm))
		return -ENODEV;
	size = ALIGN_UP_UL(size, USVM_PAGE_SIZE);
	if (size >= DEDICATED_MIN || size > mm->arena_size)
		err = alloc_dedicated(mm, size, out);
	else
		err = alloc_in_arena(mm, size, out);
	if (err)
		return err;
	STAT_ADD(mm->st.allocs, 1);
	STAT_ADD(mm->st.live_allocs, 1);
	STAT_ADD(mm->st.live_bytes, size);
	return 0;
}

/* ---- discarding CPU pages ------------------------------------------------- */

int mm_trash_init(struct usvm_mm *mm)
{
	return map_registered(mm->uffd_trash, TRASH_SIZE, &mm->trash);
}

void mm_trash_fini(struct usvm_mm *mm)
{
	if (!mm->trash)
		return;
	uffd_unregister(mm->uffd_trash, mm->trash, TRASH_SIZE);
	munmap((void *)mm->trash, TRASH_SIZE);
	mm->trash = 0;
}

/*
 * A plain MADV_DONTNEED would raise a REMOVE event that the applier handles
 * later, possibly after the range was allocated again and populated (it
 * would then drop the new owner's device copies).  Pages moved out to the
 * trash area raise no event; the trash's own userfaultfd has no events, so
 * the moves never fail with -EAGAIN and discarding it raises nothing.
 */
void mm_discard_cpu_pages(struct usvm_mm *mm, uintptr_t start, uintptr_t end, uintptr_t *busy)
{
	uintptr_t a = start;
	int tries = 0;

	*busy = 0;
	pthread_mutex_lock(&mm->trash_lock);
	while (a < end) {
		size_t n = MIN_UL(end - a, TRASH_SIZE);
		long r = uffd_move(mm->uffd_trash, mm->trash, a, n,
				   UFFDIO_MOVE_MODE_DONTWAKE | UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);

		/* All of the chunk: a move cut short may have moved more than
		 * it reported (host_pages.c), and the trash must stay empty. */
		madvise((void *)mm->trash, n, MADV_DONTNEED);
		if (r == -EAGAIN && ++tries < 1000)
			continue; /* injected, or a page briefly locked */
		tries = 0;
		if (r > 0) {
			a += (uintptr_t)r;
			continue;
		}
		/* A page that cannot move (shared since fork, pinned): the
		 * caller clears it; go on after it. */
		if (r == -EBUSY && !*busy)
			*busy = a;
		if (r != -EBUSY)
			break; /* no VMA there any more: nothing to discard */
		a += USVM_PAGE_SIZE;
	}
	pthread_mutex_unlock(&mm->trash_lock);
}

/* ---- free ------------------------------------------------------------------ */

static int free_dedicated(struct usvm_mm *mm, struct usvm_region *r)
{
	uintptr_t a, bend;

	atomic_store(&r->dying, 1);
	/* Unpublished first: populates and faults can no longer find it. */
	usvm_rwlock_wrlock(&mm->regions_lock);
	if (mm_region_find(mm, r->start) != r) {
		/* The program unmapped it itself and it was forgotten. */
		usvm_rwlock_unlock(&mm->regions_lock);
		return 0;
	}
	mm_region_remove_locked(mm, r);
	usvm_rwlock_unlock(&mm->regions_lock);
	for_each_block(a, bend, r->start, r->end) {
		if (!region_blk(r, a))
			continue; /* never touched: nothing mapped, nothing to drop */
		mm_block_lock_acquire(mm, a);
		mm_invalidate(mm, a, bend, USVM_INVAL_UNMAP);
		mm_drop_block(mm, r, a, bend, 0);
		mm_block_lock_release(mm, a);
	}
	uffd_unregister(r->uffd, r->start, r->end - r->start);
	munmap((void *)r->start, r->end - r->start);
	mm_region_free(r);
	return 0;
}

/* Clear what could not be discarded (shared since fork): writing breaks the
 * sharing, the allocation's next owner reads zeros.  No lock held: a page
 * that vanished meanwhile faults and is served as usual. */
static void clear_busy_pages(struct usvm_mm *mm, struct usvm_region *r, uintptr_t start,
			     uintptr_t end)
{
	uintptr_t p;

	for (p = start; p < end; p += USVM_PAGE_SIZE) {
		uintptr_t busy;

		mm_discard_cpu_pages(mm, p, p + USVM_PAGE_SIZE, &busy);
		if (busy && !atomic_load(&r->gone))
			memset((void *)p, 0, USVM_PAGE_SIZE);
	}
}

/* May [a, bend) of one block have CPU pages?  Not if every page is held by
 * a device allocation (device-resident pages have none); block lock held. */
static int may_have_cpu_pages(struct usvm_region *r, uintptr_t a, uintptr_t bend)
{
	unsigned int blk = region_blk(r, a);
	uintptr_t p;

	if (!(blk & MM_BLK_CPU))
		return 0;
	if (!(blk & MM_BLK_STATE))
		return 1;
	for (p = a; p < bend; p += USVM_PAGE_SIZE)
		if (!region_page(r, p)->dm)
			return 1;
	return 0;
}

/*
 * Drop the device copies of [start, end) and mark the pages FREEING (no
 * populate takes them any more).  Returns non-zero when some block has CPU
 * pages, which still hold the old bytes.  regions_lock held.
 */
static int drop_freed_pages(struct usvm_mm *mm, struct usvm_region *r, uintptr_t start,
			    uintptr_t end)
{
	uintptr_t a, bend;
	int cpu = 0;

	for_each_block(a, bend, start, end) {
		mm_block_lock_acquire(mm, a);
		cpu |= may_have_cpu_pages(r, a, bend);
		mm_invalidate(mm, a, bend, USVM_INVAL_REMOVE);
		mm_drop_block(mm, r, a, bend, MM_PAGE_FREEING);
		mm_block_lock_release(mm, a);
	}
	return cpu;
}

/* Discard the CPU pages of [start, end); returns the first busy page. */
static uintptr_t discard_freed_pages(struct usvm_mm *mm, struct usvm_region *r, uintptr_t start,
				     uintptr_t end)
{
	uintptr_t a, bend, first_busy = 0;

	usvm_rwlock_rdlock(&mm->regions_lock);
	for_each_block(a, bend, start, end) {
		uintptr_t busy = 0;

		mm_block_lock_acquire(mm, a);
		if (region_blk(r, a) & MM_BLK_CPU)
			mm_discard_cpu_pages(mm, a, bend, &busy);
		mm_block_lock_release(mm, a);
		if (busy && !first_busy)
			first_busy = busy;
	}
	usvm_rwlock_unlock(&mm->regions_lock);
	return first_busy;
}

/* The pages of [start, start + n pages) may be allocated again. */
static void release_freed_pages(struct usvm_mm *mm, struct usvm_region *r, uintptr_t start,
				uint32_t n)
{
	uintptr_t a, bend, p, end = start + ((uintptr_t)n << USVM_PAGE_SHIFT);

	pthread_mutex_lock(&mm->alloc_lock);
	bits_assign(r->bitmap, (start - r->start) >> USVM_PAGE_SHIFT, n, 0);
	pthread_mutex_unlock(&mm->alloc_lock);
	usvm_rwlock_rdlock(&mm->regions_lock);
	for_each_block(a, bend, start, end) {
		mm_block_lock_acquire(mm, a);
		for (p = a; p < bend; p += USVM_PAGE_SIZE)
			region_page_set_flags(r, p, 0, MM_PAGE_FREEING);
		mm_block_lock_release(mm, a);
	}
	usvm_rwlock_unlock(&mm->regions_lock);
}

/* ---- deferred discards ---------------------------------------------------- */

/*
 * DOC: deferred discards
 *
 * Discarding a freed page costs a page-table change and a TLB flush (a move
 * to the trash area), which on a VM is tens of microseconds: as mimalloc
 * delays purging freed OS memory, usvm_free only drops device copies and
 * marks the pages FREEING, and queues the CPU pages.  Once free_batch bytes
 * wait, one thread discards them all, sorted, with neighbours merged (a
 * block of freed 4 KiB allocations is one move, not 512), and only then are
 * the pages given back to the allocator: an allocation never gets pages
 * holding someone's old bytes.  Until then their memory stays resident.
 */

static int freed_cmp(const void *a, const void *b)
{
	const struct mm_freed *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Discard and release @n queued frees (sorted here); no lock held. */
static void discard_freed_list(struct usvm_mm *mm, struct mm_freed *v, size_t n)
{
	size_t i = 0, j;

	qsort(v, n, sizeof(*v), freed_cmp);
	while (i < n) {
		uintptr_t end = v[i].start + ((uintptr_t)v[i].npages << USVM_PAGE_SHIFT), busy;

		for (j = i + 1; j < n && v[j].r == v[i].r && v[j].start == end; j++)
			end += (uintptr_t)v[j].npages << USVM_PAGE_SHIFT;
		busy = discard_freed_pages(mm, v[i].r, v[i].start, end);
		if (busy)
			clear_busy_pages(mm, v[i].r, busy, end);
		for (; i < j; i++)
			release_freed_pages(mm, v[i].r, v[i].start, v[i].npages);
	}
}

void mm_discard_freed(struct usvm_mm *mm)
{
	struct mm_freed *v;
	size_t n;

	pthread_mutex_lock(&mm->free_lock);
	v = mm->freed;
	n = mm->nfreed;
	mm->freed = NULL;
	mm->nfreed = mm->cap_freed = mm->freed_bytes = 0;
	pthread_mutex_unlock(&mm->free_lock);
	if (n)
		discard_freed_list(mm, v, n);
	free(v);
}

/* Queue a freed allocation whose CPU pages are still there. */
static void defer_discard(struct usvm_mm *mm, struct usvm_region *r, uintptr_t start,
			  uint32_t n)
{
	struct mm_freed one = { r, start, n };
	int full;

	pthread_mutex_lock(&mm->free_lock);
	if (mm->nfreed == mm->cap_freed) {
		size_t cap = mm->cap_freed ? mm->cap_freed * 2 : 256;
		struct mm_freed *v = realloc(mm->freed, cap * sizeof(*v));

		if (!v) {
			pthread_mutex_unlock(&mm->free_lock);
			discard_freed_list(mm, &one, 1); /* no memory: now */
			return;
		}
		mm->freed = v;
		mm->cap_freed = cap;
	}
	mm->freed[mm->nfreed++] = one;
	mm->freed_bytes += (size_t)n << USVM_PAGE_SHIFT;
	full = mm->freed_bytes >= mm->free_batch;
	pthread_mutex_unlock(&mm->free_lock);
	if (full)
		mm_discard_freed(mm);
}

int usvm_free(struct usvm_mm *mm, void *ptr)
{
	uintptr_t a = (uintptr_t)ptr;
	struct usvm_region *r;
	uint32_t n;
	size_t len;
	int cpu;

	if (!mm || !ptr)
		return -EINVAL;
	if (!mm_usable(mm))
		return -ENODEV;
	pthread_mutex_lock(&mm->alloc_lock);
	n = table_remove(&mm->allocs, a);
	pthread_mutex_unlock(&mm->alloc_lock);
	if (!n)
		return -EINVAL; /* not an allocation start, or freed already */
	len = (size_t)n << USVM_PAGE_SHIFT;
	STAT_ADD(mm->st.frees, 1);
	STAT_SUB(mm->st.live_allocs, 1);
	STAT_SUB(mm->st.live_bytes, len);
	usvm_rwlock_rdlock(&mm->regions_lock);
	r = mm_region_find(mm, a);
	usvm_rwlock_unlock(&mm->regions_lock);
	if (!r)
		return 0; /* its region was torn down already */
	mm_advice_clear(mm, a, a + len);
	if (r->kind == USVM_REGION_ALLOC)
		return free_dedicated(mm, r);
	/* Arenas are never removed while the mm lives: @r stays valid. */
	usvm_rwlock_rdlock(&mm->regions_lock);
	cpu = drop_freed_pages(mm, r, a, a + len);
	usvm_rwlock_unlock(&mm->regions_lock);
	if (cpu)
		defer_discard(mm, r, a, n);
	else
		release_freed_pages(mm, r, a, n);
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * Managed allocations (usvm_alloc/usvm_free).  Allocations are carved out of
 * large arenas, each registered with userfaultfd once: 100 000 small
 * allocations cost one registration, not 100 000 (the kernel caps the
 * number of mappings a process may have, vm.max_map_count = 65530).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include "mm.h"
#include "uffd.h"
#include "migrate/migrate.h"

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

static int bit_test(const uint64_t *bm, size_t i)
{
	return (__atomic_load_n(&bm[i >> 6], __ATOMIC_RELAXED) >> (i & 63)) & 1;
}

/* Atomic bit updates: populate peeks at the bitmap without alloc_lock. */
static void bits_assign(uint64_t *bm, size_t i, size_t n, int v)
{
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

	if (r->kind != USVM_REGION_ARENA)
		return 1;
	if (!r->bitmap)
		return 0;
	return (__atomic_load_n(&r->bitmap[i >> 6], __ATOMIC_RELAXED) >> (i & 63)) & 1;
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

static int arena_new(struct usvm_mm *mm, size_t min_bytes, struct usvm_region **out)
{
	size_t size = MAX_UL(mm->arena_size, ALIGN_UP_UL(min_bytes, USVM_BLOCK_SIZE));
	uintptr_t base;
	struct usvm_region *r;
	void *p;
	int err;

	/* Over-map to align the arena to a block. */
	p = mmap(NULL, size + USVM_BLOCK_SIZE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	base = ALIGN_UP_UL((uintptr_t)p, USVM_BLOCK_SIZE);
	if (base > (uintptr_t)p)
		munmap(p, base - (uintptr_t)p);
	munmap((void *)(base + size), (uintptr_t)p + USVM_BLOCK_SIZE - base);
	err = uffd_register(mm->uffd_arena, base, size);
	if (err) {
		munmap((void *)base, size);
		return err;
	}
	err = mm_region_add(mm, base, base + size, USVM_REGION_ARENA, mm->uffd_arena, 0, &r);
	if (!err) {
		r->bitmap = calloc((r->npages + 63) / 64, sizeof(uint64_t));
		if (!r->bitmap)
			err = -ENOMEM; /* region stays, unusable: harmless */
	}
	if (err) {
		uffd_unregister(mm->uffd_arena, base, size);
		munmap((void *)base, size);
		return err;
	}
	*out = r;
	return 0;
}

int usvm_alloc(struct usvm_mm *mm, size_t size, void **out)
{
	size_t n, align, i, at = SIZE_MAX;
	struct usvm_region *r = NULL;
	int err;

	if (!mm || !out || !size || size > (1ull << 40))
		return -EINVAL;
	size = ALIGN_UP_UL(size, USVM_PAGE_SIZE);
	n = size >> USVM_PAGE_SHIFT;
	if (n > UINT32_MAX)
		return -EINVAL;
	align = size >= USVM_BLOCK_SIZE ? USVM_BLOCK_PAGES : size >= (64u << 10) ? 16 : 1;
	pthread_mutex_lock(&mm->alloc_lock);
	pthread_rwlock_rdlock(&mm->regions_lock);
	for (i = 0; i < mm->nregions; i++) {
		r = mm->regions[i];
		if (r->kind != USVM_REGION_ARENA || !r->bitmap || r->dying)
			continue;
		at = arena_find(r, n, align);
		if (at != SIZE_MAX)
			break;
	}
	pthread_rwlock_unlock(&mm->regions_lock);
	if (at == SIZE_MAX) {
		err = arena_new(mm, size, &r);
		if (err) {
			pthread_mutex_unlock(&mm->alloc_lock);
			return err;
		}
		at = arena_find(r, n, align);
	}
	err = table_insert(&mm->allocs, r->start + (at << USVM_PAGE_SHIFT), (uint32_t)n);
	if (err) {
		pthread_mutex_unlock(&mm->alloc_lock);
		return err;
	}
	bits_assign(r->bitmap, at, n, 1);
	r->hint = at + n;
	pthread_mutex_unlock(&mm->alloc_lock);
	STAT_ADD(mm->st.allocs, 1);
	STAT_ADD(mm->st.live_allocs, 1);
	STAT_ADD(mm->st.live_bytes, size);
	*out = (void *)(r->start + (at << USVM_PAGE_SHIFT));
	return 0;
}

#define TRASH_SIZE USVM_BLOCK_SIZE

int mm_trash_init(struct usvm_mm *mm)
{
	void *p = mmap(NULL, TRASH_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	int err;

	if (p == MAP_FAILED)
		return -ENOMEM;
	err = uffd_register(mm->uffd_arena, (uintptr_t)p, TRASH_SIZE);
	if (err) {
		munmap(p, TRASH_SIZE);
		return err;
	}
	mm->trash = (uintptr_t)p;
	return 0;
}

void mm_trash_fini(struct usvm_mm *mm)
{
	if (!mm->trash)
		return;
	uffd_unregister(mm->uffd_arena, mm->trash, TRASH_SIZE);
	munmap((void *)mm->trash, TRASH_SIZE);
	mm->trash = 0;
}

/*
 * Give the CPU pages of a freed allocation back to the kernel.  A plain
 * MADV_DONTNEED would raise a REMOVE event that a fault thread handles
 * later, possibly after the range was allocated again and populated (it
 * would then drop the new owner's device copies).  So the pages are first
 * moved out to a private trash area (no event) and discarded there (its
 * events fall outside every region and are ignored).
 */
static void discard_pages(struct usvm_mm *mm, uintptr_t a, size_t len)
{
	size_t off = 0;

	pthread_mutex_lock(&mm->trash_lock);
	while (off < len) {
		size_t n = MIN_UL(len - off, TRASH_SIZE);
		struct uffdio_move m = {
			.dst = mm->trash, .src = a + off, .len = n,
			.mode = UFFDIO_MOVE_MODE_DONTWAKE | UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES,
		};

		if (ioctl(mm->uffd_arena, UFFDIO_MOVE, &m) && m.move < (long)n) {
			/* A page that cannot move (shared after fork): zap in place. */
			madvise((void *)(a + off), n, MADV_DONTNEED);
		}
		madvise((void *)mm->trash, TRASH_SIZE, MADV_DONTNEED);
		off += n;
	}
	pthread_mutex_unlock(&mm->trash_lock);
}

int usvm_free(struct usvm_mm *mm, void *ptr)
{
	uintptr_t a = (uintptr_t)ptr;
	struct usvm_region *r;
	uint32_t n;
	size_t len;

	if (!mm || !ptr)
		return -EINVAL;
	pthread_mutex_lock(&mm->alloc_lock);
	n = table_remove(&mm->allocs, a);
	pthread_mutex_unlock(&mm->alloc_lock);
	if (!n)
		return -EINVAL; /* not an allocation start, or freed already */
	len = (size_t)n << USVM_PAGE_SHIFT;
	pthread_rwlock_rdlock(&mm->regions_lock);
	r = mm_region_find(mm, a);
	/* Device copies go; then the CPU pages. */
	mm_drop_range(mm, r, a, a + len, USVM_INVAL_REMOVE, 0);
	pthread_rwlock_unlock(&mm->regions_lock);
	discard_pages(mm, a, len);
	pthread_mutex_lock(&mm->alloc_lock);
	bits_assign(r->bitmap, (a - r->start) >> USVM_PAGE_SHIFT, n, 0);
	pthread_mutex_unlock(&mm->alloc_lock);
	STAT_ADD(mm->st.frees, 1);
	STAT_SUB(mm->st.live_allocs, 1);
	STAT_SUB(mm->st.live_bytes, len);
	return 0;
}

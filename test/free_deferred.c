// SPDX-License-Identifier: MIT
/*
 * free_deferred: usvm_free() of CPU-resident arena allocations defers the
 * discard of their pages (free_batch), and no allocation ever gets pages
 * that still hold a freed allocation's bytes.
 *
 *   - with a 4 MiB arena and a batch larger than the arena: fill the arena
 *     with written 4 KiB and 64 KiB allocations, free them all (they wait:
 *     free_pending_bytes counts them), allocate the arena full again: the
 *     allocator must discard the waiting pages to find room, and every new
 *     allocation reads zeros;
 *   - free_batch=0 discards at once (nothing waits);
 *   - device-resident allocations have no CPU pages: nothing waits;
 *   - two threads allocate, check zeros, write and free 4 KiB allocations
 *     with a 64 KiB batch, so that discards run while the other allocates.
 */
#include <pthread.h>
#include <stdlib.h>
#include "helpers.h"
#include "util/util.h"

#define ARENA (4 * MiB)

static struct usvm_mm *mm_with(const char *batch)
{
	struct usvm_mm_options o = { .arena_size = ARENA };

	setenv("USVM_FREE_BATCH", batch, 1);
	return test_mm_create(&o);
}

static void check_zero(const uint8_t *p, size_t len, const char *what)
{
	size_t i;

	for (i = 0; i < len; i++)
		CHECK(!p[i], "%s: byte %zu of a new allocation is %#x, not 0", what, i, p[i]);
}

/* Fill the arena with written allocations of @size and free them all. */
static void fill_and_free(struct usvm_mm *mm, size_t size, uint8_t **ptr, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		ptr[i] = test_alloc(mm, size);
		check_zero(ptr[i], size, "first fill");
		memset(ptr[i], 0xA5, size);
	}
	for (i = 0; i < n; i++)
		CHECK_OK(usvm_free(mm, ptr[i]));
}

static void refill_in_place(size_t size)
{
	size_t n = ARENA / size, i;
	uint8_t **ptr = calloc(n, sizeof(*ptr));
	struct usvm_mm *mm = mm_with("1G");
	struct usvm_mm_stats s;
	uintptr_t lo = UINTPTR_MAX, hi = 0;

	fill_and_free(mm, size, ptr, n);
	s = mm_stats(mm);
	CHECK(s.free_pending_bytes == ARENA, "%zu-byte frees: %llu bytes wait, expected %lu",
	      size, (unsigned long long)s.free_pending_bytes, ARENA);
	for (i = 0; i < n; i++) {
		lo = MIN_UL(lo, (uintptr_t)ptr[i]);
		hi = MAX_UL(hi, (uintptr_t)ptr[i] + size);
	}
	for (i = 0; i < n; i++) {
		ptr[i] = test_alloc(mm, size);
		/* The old arena is the only room unless a new one was made. */
		check_zero(ptr[i], size, "refill");
	}
	s = mm_stats(mm);
	CHECK(s.free_pending_bytes == 0, "after the refill %llu bytes still wait",
	      (unsigned long long)s.free_pending_bytes);
	for (i = 0; i < n; i++)
		CHECK((uintptr_t)ptr[i] >= lo && (uintptr_t)ptr[i] < hi,
		      "allocation %zu at %p is outside the full arena [%#lx, %#lx): the "
		      "waiting pages were not reused", i, (void *)ptr[i], (unsigned long)lo,
		      (unsigned long)hi);
	usvm_mm_destroy(mm);
	free(ptr);
}

static void batch_zero(void)
{
	struct usvm_mm *mm = mm_with("0");
	uint8_t *p[8];

	fill_and_free(mm, 16 * KiB, p, 8);
	CHECK(mm_stats(mm).free_pending_bytes == 0, "free_batch=0: %llu bytes wait",
	      (unsigned long long)mm_stats(mm).free_pending_bytes);
	usvm_mm_destroy(mm);
}

static void device_resident(void)
{
	struct usvm_mm *mm = mm_with("1G");
	struct usvm_pagemap *pm = test_sim_create("fd", 4 * MiB);
	uint8_t *p = test_alloc(mm, 64 * KiB);

	memset(p, 0x5A, 64 * KiB);
	CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + 64 * KiB, mm, 0));
	CHECK(usvm_resident_bytes(mm, p, 64 * KiB, pm) == 64 * KiB, "not device-resident");
	CHECK_OK(usvm_free(mm, p));
	CHECK(mm_stats(mm).free_pending_bytes == 0, "a device-resident free left %llu bytes",
	      (unsigned long long)mm_stats(mm).free_pending_bytes);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
}

static void *churn(void *arg)
{
	struct usvm_mm *mm = arg;
	unsigned int i;

	for (i = 0; i < 3000; i++) {
		size_t size = (1 + i % 3) * PAGE;
		uint8_t *p = test_alloc(mm, size);

		check_zero(p, size, "churn");
		memset(p, 0xC3, size);
		CHECK_OK(usvm_free(mm, p));
	}
	return NULL;
}

int main(void)
{
	struct usvm_mm *mm;
	pthread_t t[2];
	int i;

	test_init("free_deferred", 120);
	refill_in_place(4 * KiB);
	refill_in_place(64 * KiB);
	batch_zero();
	device_resident();

	mm = mm_with("64K");
	for (i = 0; i < 2; i++)
		CHECK(!pthread_create(&t[i], NULL, churn, mm), "pthread_create");
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	usvm_mm_destroy(mm);
	unsetenv("USVM_FREE_BATCH");
	printf("free_deferred: ok\n");
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * reg_alloc_churn_populate: small allocations coming and going inside a
 * 2 MiB block while the whole block is populated into device memory,
 * evicted, and read by a device.
 *
 * Reported: ASan heap-buffer-overflow in run_len() (sim backend) and, in a
 * plain build, populate_mm / eviction returning -EINVAL and device reads
 * failing with -EFAULT.  populate counts the allocated pages of a block
 * ("missing"), allocates that many device pages, and later collects the
 * pages to move from the arena bitmap again; usvm_alloc() sets bitmap bits
 * without the block lock, so more pages than were allocated can be moved.
 *
 * Four threads for about 5 s (bounded by iteration counts too):
 *   - churn (two threads): usvm_free/usvm_alloc of 4-64 KiB buffers in 8 slots; a fresh
 *     buffer is filled with a pattern and every byte is checked again
 *     before it is freed; a fresh buffer must also read as zeros
 *     (usvm_alloc's contract), which is counted and checked at the end so
 *     that it does not hide the failures above;
 *   - populate: usvm_pagemap_populate_mm of the whole 2 MiB block (0,
 *     -EBUSY and -ENOMEM are acceptable, anything else fails), alternating
 *     with usvm_pagemap_evict(pm, NULL) (must return >= 0) and eviction by
 *     address (>= 0 or -ENOENT, as documented);
 *   - device: usvm_device_read of a live buffer must return 0 and every
 *     byte of the buffer's pattern.
 * Managed arenas are made 2 MiB (usvm_mm_options.arena_size), so an arena
 * is exactly one block and every allocation lands in it; the mm gets 8
 * fault handler threads (default 4), so that the run makes more progress
 * (with 4, every handler is often stuck at once behind one block lock while
 * a usvm_free() waits for its madvise event to be read, and little happens
 * for seconds).  Since the stalls remain possible, the watchdog is 60 s.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include "helpers.h"

#define NSLOT 8
#define RUN_NS 5000000000ull
#define MAX_ITERS 1000000
#define NTHREADS 4

struct slot {
	pthread_mutex_t lock;
	uint8_t *p;
	size_t len;
	uint64_t seed;
};

static struct usvm_mm *mm;
static struct usvm_pagemap *pm;
static struct usvm_device *dev;
static struct slot slots[NSLOT];
static uint8_t *block;
static atomic_int stop;
static atomic_ulong n_allocs, n_outside, n_populates, n_pop_ok, n_pop_busy, n_pop_nomem;
static atomic_ulong n_evicts, n_dev_reads;
/* Fresh allocations that did not read as zeros: counted, reported at the
 * end, so that the failures of the report above are not masked. */
static atomic_ulong n_not_zero;
static char first_not_zero[160];

static void *churn(void *arg)
{
	uint64_t id = (uint64_t)(uintptr_t)arg, rng = 12345 + id, seed = 1 + (id << 40);
	unsigned long it;

	for (it = 0; it < MAX_ITERS && !atomic_load(&stop); it++) {
		struct slot *s = &slots[rng_next(&rng) % NSLOT];
		size_t len = (1 + (size_t)(rng_next(&rng) % 16)) * PAGE, bad;
		void *p = NULL;
		int err;

		pthread_mutex_lock(&s->lock);
		if (s->p) {
			bad = pattern_check(s->p, s->len, s->seed);
			CHECK(bad == PATTERN_OK, "buffer %p (%zu bytes): byte %zu is 0x%02x, "
			      "expected 0x%02x before usvm_free", (void *)s->p, s->len, bad,
			      s->p[bad], pattern_byte(s->seed, bad));
			CHECK_OK(usvm_free(mm, s->p));
			s->p = NULL;
		}
		err = usvm_alloc(mm, len, &p);
		CHECK(err == 0 && p, "usvm_alloc(%zu): %d (%s)", len, err, usvm_strerror(err));
		atomic_fetch_add(&n_allocs, 1);
		if ((uint8_t *)p < block || (uint8_t *)p + len > block + USVM_BLOCK_SIZE)
			atomic_fetch_add(&n_outside, 1);
		bad = zero_check(p, len);
		if (bad != PATTERN_OK && atomic_fetch_add(&n_not_zero, 1) == 0)
			snprintf(first_not_zero, sizeof(first_not_zero),
				 "fresh allocation %p (%zu bytes): byte %zu is 0x%02x, not zero "
				 "(old data of a freed buffer)", p, len, bad, ((uint8_t *)p)[bad]);
		s->p = p;
		s->len = len;
		s->seed = seed++;
		pattern_fill(s->p, s->len, s->seed);
		pthread_mutex_unlock(&s->lock);
	}
	return NULL;
}

static void *populate(void *arg)
{
	uint64_t rng = 777;
	unsigned long it;

	(void)arg;
	for (it = 0; it < MAX_ITERS && !atomic_load(&stop); it++) {
		int err = usvm_pagemap_populate_mm(pm, block, block + USVM_BLOCK_SIZE, mm, 0);
		long ret;

		atomic_fetch_add(&n_populates, 1);
		CHECK(err == 0 || err == -EBUSY || err == -ENOMEM, "populate_mm of the block "
		      "[%p, +2 MiB) returned %d (%s)", (void *)block, err, usvm_strerror(err));
		atomic_fetch_add(err == 0 ? &n_pop_ok : err == -EBUSY ? &n_pop_busy : &n_pop_nomem,
				 1);
		if (it & 1) {
			ret = usvm_pagemap_evict(pm, NULL, NULL);
			CHECK(ret >= 0, "usvm_pagemap_evict(pm, NULL): %ld (%s)", ret,
			      usvm_strerror((int)ret));
		} else {
			size_t pg = (size_t)(rng_next(&rng) % (USVM_BLOCK_SIZE / PAGE));
			const uint8_t *a = block + pg * PAGE;

			ret = usvm_pagemap_evict(pm, mm, a);
			CHECK(ret >= 0 || ret == -ENOENT, "usvm_pagemap_evict(pm, mm, %p): "
			      "%ld (%s)", (const void *)a, ret, usvm_strerror((int)ret));
		}
		atomic_fetch_add(&n_evicts, 1);
	}
	return NULL;
}

static void *device(void *arg)
{
	uint8_t *host = malloc(64 * KiB);
	uint64_t rng = 4242;
	unsigned long it;

	(void)arg;
	CHECK(host != NULL, "malloc");
	for (it = 0; it < MAX_ITERS && !atomic_load(&stop); it++) {
		struct slot *s = &slots[rng_next(&rng) % NSLOT];
		size_t bad;
		int err;

		pthread_mutex_lock(&s->lock);
		if (s->p) {
			memset(host, 0xa5, s->len);
			err = usvm_device_read(dev, s->p, host, s->len);
			CHECK(err == 0, "usvm_device_read of live buffer %p (%zu bytes): %d (%s)",
			      (void *)s->p, s->len, err, usvm_strerror(err));
			bad = pattern_check(host, s->len, s->seed);
			CHECK(bad == PATTERN_OK, "device read of buffer %p (%zu bytes): byte %zu "
			      "is 0x%02x, expected 0x%02x", (void *)s->p, s->len, bad, host[bad],
			      pattern_byte(s->seed, bad));
			atomic_fetch_add(&n_dev_reads, 1);
		}
		pthread_mutex_unlock(&s->lock);
	}
	free(host);
	return NULL;
}

int main(void)
{
	struct usvm_mm_options opts = {
		.arena_size = USVM_BLOCK_SIZE,
		.fault_threads = 8,
	};
	pthread_t th[NTHREADS];
	uint64_t t0;
	int i;

	test_init("reg_alloc_churn_populate", 60);
	mm = test_mm_create(&opts);
	pm = test_sim_create("sim0", 8 * MiB);
	dev = dev_new(mm, "gpu", pm, USVM_POLICY_ALWAYS, 2);
	for (i = 0; i < NSLOT; i++)
		pthread_mutex_init(&slots[i].lock, NULL);

	/* The first small buffer fixes the block. */
	slots[0].p = test_alloc(mm, 16 * KiB);
	slots[0].len = 16 * KiB;
	slots[0].seed = 1000000;
	pattern_fill(slots[0].p, slots[0].len, slots[0].seed);
	block = (uint8_t *)((uintptr_t)slots[0].p & ~(uintptr_t)(USVM_BLOCK_SIZE - 1));

	CHECK(pthread_create(&th[0], NULL, churn, (void *)0) == 0, "thread");
	CHECK(pthread_create(&th[1], NULL, churn, (void *)1) == 0, "thread");
	CHECK(pthread_create(&th[2], NULL, populate, NULL) == 0, "thread");
	CHECK(pthread_create(&th[3], NULL, device, NULL) == 0, "thread");
	t0 = now_ns();
	while (now_ns() - t0 < RUN_NS)
		sleep_ms(50);
	atomic_store(&stop, 1);
	for (i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	printf("%lu allocations (%lu outside the block), %lu populates (%lu ok, %lu busy, "
	       "%lu no memory), %lu evictions, %lu device reads\n", atomic_load(&n_allocs),
	       atomic_load(&n_outside), atomic_load(&n_populates), atomic_load(&n_pop_ok),
	       atomic_load(&n_pop_busy), atomic_load(&n_pop_nomem), atomic_load(&n_evicts),
	       atomic_load(&n_dev_reads));
	CHECK(atomic_load(&n_not_zero) == 0, "%lu fresh allocations did not read as zeros; "
	      "first: %s", atomic_load(&n_not_zero), first_not_zero);

	/* Everything still intact after a last populate, and after coming home. */
	{
		int err = usvm_pagemap_populate_mm(pm, block, block + USVM_BLOCK_SIZE, mm, 0);

		CHECK(err == 0 || err == -EBUSY || err == -ENOMEM, "final populate_mm: %d (%s)",
		      err, usvm_strerror(err));
	}
	CHECK(usvm_pagemap_evict(pm, NULL, NULL) >= 0, "final evict");
	for (i = 0; i < NSLOT; i++) {
		if (!slots[i].p)
			continue;
		CHECK_PATTERN(slots[i].p, slots[i].len, slots[i].seed);
		CHECK_OK(usvm_free(mm, slots[i].p));
	}
	usvm_mm_stats_print(mm, stdout);
	usvm_pagemap_stats_print(pm, stdout);
	usvm_device_stats_print(dev, stdout);
	usvm_device_destroy(dev);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	for (i = 0; i < NSLOT; i++)
		pthread_mutex_destroy(&slots[i].lock);
	printf("ok\n");
	return 0;
}

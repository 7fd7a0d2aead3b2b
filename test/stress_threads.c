// SPDX-License-Identifier: MIT
/*
 * stress_threads: for a bounded 2.5 s, 8 CPU threads rewrite and verify their
 * own slices (whole slices, single pages and single bytes, with per-iteration
 * seeds) while two threads populate random ranges (random timeslices of 0-2
 * ms) into a device smaller than the data and one thread evicts by address
 * and everything.  Slices do not line up with blocks, so device allocations
 * span slices of different threads.  At the end every byte holds its last
 * value and the device is empty after evict(NULL).
 */
#include <pthread.h>
#include <stdatomic.h>
#include "helpers.h"

#define NCPU 8
#define NPOP 2
#define SLICE (1 * MiB + 3 * PAGE)
#define TOTAL (NCPU * SLICE)
#define RUN_MS 2500

static struct usvm_mm *mm;
static struct usvm_pagemap *pm;
static uint8_t *buf;
static atomic_int stop;
static atomic_ulong n_pop_ok, n_pop_busy, n_pop_enomem, n_evict, n_cpu;
static int strict_enomem;

/*
 * Each thread's slice holds seed S in every page except the pages listed in
 * its override table, which hold their own seeds (single-page updates).
 */
struct slice_state {
	uint64_t seed;
	uint64_t page_seed[SLICE / PAGE]; /* 0: same as seed */
};
static struct slice_state state[NCPU];

static void check_slice(int id)
{
	struct slice_state *st = &state[id];
	uint8_t *s = buf + (size_t)id * SLICE;
	size_t pg;

	for (pg = 0; pg < SLICE / PAGE; pg++) {
		uint64_t seed = st->page_seed[pg] ? st->page_seed[pg] : st->seed;

		CHECK_PATTERN_AT(s + pg * PAGE, PAGE, seed, pg * PAGE);
	}
}

static void *cpu_thread(void *arg)
{
	int id = (int)(intptr_t)arg;
	struct slice_state *st = &state[id];
	uint8_t *s = buf + (size_t)id * SLICE;
	uint64_t rng = 77 + (uint64_t)id, it = 0;

	st->seed = ((uint64_t)id << 40) | 1;
	memset(st->page_seed, 0, sizeof(st->page_seed));
	pattern_fill(s, SLICE, st->seed);
	while (!atomic_load(&stop)) {
		uint64_t op = rng_next(&rng) % 8, seed = ((uint64_t)id << 40) | (++it + 1);

		if (op == 0) {
			/* Whole slice. */
			st->seed = seed;
			memset(st->page_seed, 0, sizeof(st->page_seed));
			pattern_fill(s, SLICE, seed);
		} else if (op < 5) {
			/* A few single pages. */
			int k;

			for (k = 0; k < 8; k++) {
				size_t pg = rng_next(&rng) % (SLICE / PAGE);

				st->page_seed[pg] = seed;
				pattern_fill_at(s + pg * PAGE, PAGE, seed, pg * PAGE);
			}
		} else {
			/* Read a random byte of each of a few pages. */
			int k;

			for (k = 0; k < 16; k++) {
				size_t off = rng_next(&rng) % SLICE, pg = off / PAGE;
				uint64_t sd = st->page_seed[pg] ? st->page_seed[pg] : st->seed;

				CHECK(((volatile uint8_t *)s)[off] == pattern_byte(sd, off),
				      "thread %d: byte %zu of its slice", id, off);
			}
		}
		if (it % 16 == 0)
			check_slice(id);
		atomic_fetch_add(&n_cpu, 1);
	}
	check_slice(id);
	return NULL;
}

static void *pop_thread(void *arg)
{
	uint64_t rng = 1000 + (uint64_t)(intptr_t)arg;

	while (!atomic_load(&stop)) {
		size_t npages = TOTAL / PAGE;
		size_t a = rng_next(&rng) % npages;
		size_t max = rng_next(&rng) % 2 ? 1024 : 32;
		size_t n = 1 + rng_next(&rng) % (npages - a < max ? npages - a : max);
		unsigned long ts = rng_next(&rng) % 3;
		int err = usvm_pagemap_populate_mm(pm, buf + a * PAGE, buf + (a + n) * PAGE, mm, ts);

		if (err == 0)
			atomic_fetch_add(&n_pop_ok, 1);
		else if (err == -EBUSY)
			atomic_fetch_add(&n_pop_busy, 1);
		else if (err == -ENOMEM && !strict_enomem)
			atomic_fetch_add(&n_pop_enomem, 1);
		else
			CHECK(0, "populate [%zu, %zu): %d (%s)", a, a + n, err, usvm_strerror(err));
	}
	return NULL;
}

static void *evict_thread(void *arg)
{
	uint64_t rng = 4242;

	(void)arg;
	while (!atomic_load(&stop)) {
		long r;

		sleep_ms(2);
		if (rng_next(&rng) % 8 == 0) {
			r = usvm_pagemap_evict(pm, NULL, NULL);
		} else {
			size_t off = rng_next(&rng) % TOTAL;

			r = usvm_pagemap_evict(pm, mm, buf + off);
			if (r == -ENOENT)
				r = 0;
		}
		CHECK(r >= 0, "evict: %ld (%s)", r, usvm_strerror((int)r));
		atomic_fetch_add(&n_evict, 1);
	}
	return NULL;
}

int main(void)
{
	pthread_t cpu[NCPU], pop[NPOP], ev;
	struct usvm_pagemap_stats ps;
	int i;

	test_init("stress_threads", 90);
	/*
	 * Populate is best effort: with concurrent populates and migrations
	 * the device memory they hold for a moment (allocated but not yet on
	 * the LRU, or taken off it and not yet released) cannot be evicted,
	 * and populate may fail with -ENOMEM although demand never exceeds
	 * capacity for long.  Counted, not fatal, unless USVM_STRICT_ENOMEM=1.
	 */
	strict_enomem = getenv("USVM_STRICT_ENOMEM") && atoi(getenv("USVM_STRICT_ENOMEM"));
	test_setup(&mm, &pm, 4 * MiB); /* the data is 8 MiB */
	buf = test_alloc(mm, TOTAL);
	for (i = 0; i < NCPU; i++)
		CHECK(pthread_create(&cpu[i], NULL, cpu_thread, (void *)(intptr_t)i) == 0, "thread");
	for (i = 0; i < NPOP; i++)
		CHECK(pthread_create(&pop[i], NULL, pop_thread, (void *)(intptr_t)i) == 0, "thread");
	CHECK(pthread_create(&ev, NULL, evict_thread, NULL) == 0, "thread");

	sleep_ms(RUN_MS);
	atomic_store(&stop, 1);
	for (i = 0; i < NPOP; i++)
		pthread_join(pop[i], NULL);
	pthread_join(ev, NULL);
	for (i = 0; i < NCPU; i++)
		pthread_join(cpu[i], NULL);

	ps = pm_stats(pm);
	CHECK(ps.peak_used_bytes <= 4 * MiB, "peak %llu over capacity",
	      (unsigned long long)ps.peak_used_bytes);
	/* Verify once with part of the data on the device, then evict and again. */
	for (i = 0; i < NCPU; i++)
		check_slice(i);
	CHECK_OK(usvm_pagemap_populate_mm(pm, buf, buf + 4 * MiB, mm, 0));
	CHECK(usvm_pagemap_evict(pm, NULL, NULL) >= 0, "evict(NULL)");
	ps = pm_stats(pm);
	CHECK(ps.used_bytes == 0 && ps.live_allocations == 0, "device memory left: %llu",
	      (unsigned long long)ps.used_bytes);
	CHECK(resident(mm, buf, TOTAL, NULL) == (long)TOTAL, "not all in system memory");
	for (i = 0; i < NCPU; i++)
		check_slice(i);
	printf("%lu populates ok, %lu -EBUSY, %lu -ENOMEM, %lu evicts, %lu CPU operations\n",
	       atomic_load(&n_pop_ok), atomic_load(&n_pop_busy), atomic_load(&n_pop_enomem),
	       atomic_load(&n_evict), atomic_load(&n_cpu));
	CHECK(atomic_load(&n_pop_ok) > 0, "no populate succeeded");
	usvm_mm_stats_print(mm, stdout);
	usvm_pagemap_stats_print(pm, stdout);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * unbind: the device goes away while it holds data.
 *   1. Data of two mms on the device (one with a 10 s timeslice) -> unbind:
 *      every page is in system memory without a CPU touch, every byte
 *      intact; populate then returns -ENODEV; evict finds nothing.
 *   2. Concurrent: CPU threads rewrite and verify their own slices and
 *      threads populate random ranges while unbind happens; right after
 *      unbind returns nothing is on the device, every later populate fails
 *      with -ENODEV, and at the end every byte holds its last value.
 * (hmm-tests: migrate_release.)
 */
#include <pthread.h>
#include <stdatomic.h>
#include "helpers.h"

static void simple(void)
{
	const size_t len = 8 * MiB;
	struct usvm_mm *mm, *mm2;
	struct usvm_pagemap *pm;
	struct usvm_pagemap_stats ps;
	uint8_t *p, *q;
	uint64_t t0;

	test_setup(&mm, &pm, 32 * MiB);
	mm2 = test_mm_create(NULL);
	p = test_alloc(mm, len);
	q = test_alloc(mm2, len);
	pattern_fill(p, len, 1);
	pattern_fill(q, len / 2, 2); /* second half never touched */
	CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + len, mm, 0));
	CHECK_OK(usvm_pagemap_populate_mm(pm, q, q + len, mm2, 10000));
	CHECK(resident(mm, p, len, pm) == (long)len, "mm1 not on device");
	CHECK(resident(mm2, q, len, pm) == (long)len, "mm2 not on device");

	t0 = now_ns();
	CHECK_OK(usvm_pagemap_unbind(pm));
	printf("unbind of 16 MiB took %.1f ms\n", (now_ns() - t0) / 1e6);
	/* Without touching: everything is home. */
	CHECK(resident(mm, p, len, NULL) == (long)len, "mm1 pages still on device after unbind");
	CHECK(resident(mm2, q, len, NULL) == (long)len, "mm2 pages still on device after unbind");
	ps = pm_stats(pm);
	CHECK(ps.unbound == 1, "unbound flag");
	CHECK(ps.used_bytes == 0 && ps.live_allocations == 0, "device memory left: %llu",
	      (unsigned long long)ps.used_bytes);

	CHECK_RET(usvm_pagemap_populate_mm(pm, p, p + len, mm, 0), -ENODEV);
	CHECK_RET(usvm_pagemap_populate_mm(pm, p, p + PAGE, mm, 0), -ENODEV);
	CHECK(pm_stats(pm).populate_enodev == 2, "populate_enodev");
	CHECK_RET(usvm_pagemap_evict(pm, mm, NULL), 0);
	CHECK_RET(usvm_pagemap_evict(pm, mm, p), -ENOENT);
	CHECK_OK(usvm_pagemap_unbind(pm)); /* twice is harmless */

	CHECK_PATTERN(p, len, 1);
	CHECK_PATTERN(q, len / 2, 2);
	CHECK_ZERO(q + len / 2, len / 2);
	CHECK(mm_stats(mm2).timeslice_waits == 0, "waited for a timeslice after unbind");
	/* The memory is ordinary memory again. */
	pattern_fill(p, len, 3);
	CHECK_PATTERN(p, len, 3);

	usvm_pagemap_destroy(pm);
	usvm_mm_destroy(mm);
	usvm_mm_destroy(mm2);
}

/* ---- concurrent ------------------------------------------------------------- */

#define NCPU 4
#define NPOP 2
#define SLICE (3 * MiB + 5 * PAGE) /* slices do not line up with blocks */
#define TOTAL (NCPU * SLICE)

static struct usvm_mm *cmm;
static struct usvm_pagemap *cpm;
static uint8_t *cbuf;
static atomic_int stop, unbound_done;
static uint64_t last_seed[NCPU];
static atomic_ulong pop_ok, pop_enodev, pop_other, cpu_iters;

static void *cpu_thread(void *arg)
{
	int id = (int)(intptr_t)arg;
	uint8_t *s = cbuf + (size_t)id * SLICE;
	uint64_t it = 0, seed = 0;

	while (!atomic_load(&stop)) {
		seed = ((uint64_t)id << 40) | ++it;
		pattern_fill(s, SLICE, seed);
		CHECK_PATTERN(s, SLICE, seed);
		atomic_fetch_add(&cpu_iters, 1);
	}
	last_seed[id] = seed;
	return NULL;
}

static void *pop_thread(void *arg)
{
	uint64_t rng = 0x1234 + (uint64_t)(intptr_t)arg;

	while (!atomic_load(&stop)) {
		size_t npages = TOTAL / PAGE;
		size_t a = rng_next(&rng) % npages;
		size_t n = 1 + rng_next(&rng) % (npages - a < 1024 ? npages - a : 1024);
		int after = atomic_load(&unbound_done);
		int err = usvm_pagemap_populate_mm(cpm, cbuf + a * PAGE, cbuf + (a + n) * PAGE,
						   cmm, 0);

		if (err == 0)
			atomic_fetch_add(&pop_ok, 1);
		else if (err == -ENODEV) {
			atomic_fetch_add(&pop_enodev, 1);
			sleep_ms(1);
		}
		else if (err == -EBUSY || err == -ENOMEM) /* best effort (see stress_threads.c) */
			atomic_fetch_add(&pop_other, 1);
		else
			CHECK(0, "populate: %d (%s)", err, usvm_strerror(err));
		CHECK(!after || err == -ENODEV, "populate after unbind returned %d", err);
	}
	return NULL;
}

static void concurrent(int round)
{
	pthread_t cpu[NCPU], pop[NPOP];
	int i;

	test_setup(&cmm, &cpm, 8 * MiB); /* smaller than the data: evictions too */
	cbuf = test_alloc(cmm, TOTAL);
	atomic_store(&stop, 0);
	atomic_store(&unbound_done, 0);
	atomic_store(&pop_ok, 0);
	atomic_store(&pop_enodev, 0);
	atomic_store(&pop_other, 0);
	atomic_store(&cpu_iters, 0);
	for (i = 0; i < NCPU; i++)
		CHECK(pthread_create(&cpu[i], NULL, cpu_thread, (void *)(intptr_t)i) == 0, "thread");
	for (i = 0; i < NPOP; i++)
		CHECK(pthread_create(&pop[i], NULL, pop_thread, (void *)(intptr_t)(i + round * NPOP)) == 0,
		      "thread");
	sleep_ms(300);
	CHECK_OK(usvm_pagemap_unbind(cpm));
	atomic_store(&unbound_done, 1);
	CHECK(resident(cmm, cbuf, TOTAL, cpm) == 0, "pages on device right after unbind");
	sleep_ms(150);
	atomic_store(&stop, 1);
	for (i = 0; i < NCPU; i++)
		pthread_join(cpu[i], NULL);
	for (i = 0; i < NPOP; i++)
		pthread_join(pop[i], NULL);

	CHECK(resident(cmm, cbuf, TOTAL, NULL) == (long)TOTAL, "not all in system memory");
	for (i = 0; i < NCPU; i++)
		CHECK_PATTERN(cbuf + (size_t)i * SLICE, SLICE, last_seed[i]);
	CHECK(pm_stats(cpm).used_bytes == 0, "device memory left");
	CHECK(atomic_load(&pop_enodev) > 0, "no populate saw -ENODEV");
	printf("round %d: %lu populates ok, %lu -ENODEV, %lu -EBUSY/-ENOMEM, %lu CPU passes\n", round,
	       atomic_load(&pop_ok), atomic_load(&pop_enodev), atomic_load(&pop_other),
	       atomic_load(&cpu_iters));
	usvm_mm_stats_print(cmm, stdout);
	usvm_pagemap_destroy(cpm);
	usvm_mm_destroy(cmm);
}

int main(void)
{
	int round;

	test_init("unbind", 60);
	simple();
	for (round = 0; round < 3; round++)
		concurrent(round);
	printf("ok\n");
	return 0;
}

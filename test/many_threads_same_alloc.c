// SPDX-License-Identifier: MIT
/*
 * many_threads_same_alloc: 8 threads fault the same device allocation (one
 * 2 MiB block) at the same moment, at the same page and at different pages,
 * reading and writing.  Every thread sees correct data and the allocation
 * comes back exactly once per round (migrations_to_ram delta == 1).
 */
#include <pthread.h>
#include <stdatomic.h>
#include "helpers.h"

#define NTHREADS 8
#define ROUNDS 20
#define LEN (2 * MiB)

static uint8_t *buf;
static pthread_barrier_t start_bar, done_bar;

/* Round kinds: 0 all read page 0; 1 each reads its own page; 2 each writes its own page. */
static void *worker(void *arg)
{
	int id = (int)(intptr_t)arg;
	int r;

	for (r = 0; r < ROUNDS; r++) {
		uint64_t seed = 1000 + (uint64_t)r;
		size_t off;

		pthread_barrier_wait(&start_bar);
		switch (r % 3) {
		case 0:
			off = 4096 + 17;
			CHECK(((volatile uint8_t *)buf)[off] == pattern_byte(seed, off),
			      "thread %d round %d: wrong byte", id, r);
			break;
		case 1:
			off = (size_t)id * (LEN / NTHREADS) + 333;
			CHECK(((volatile uint8_t *)buf)[off] == pattern_byte(seed, off),
			      "thread %d round %d: wrong byte", id, r);
			break;
		default:
			/* Each thread owns 1/8 of the buffer: write the next seed. */
			off = (size_t)id * (LEN / NTHREADS);
			pattern_fill_at(buf + off, LEN / NTHREADS, seed + 1, off);
			CHECK_PATTERN_AT(buf + off, LEN / NTHREADS, seed + 1, off);
			break;
		}
		pthread_barrier_wait(&done_bar);
	}
	return NULL;
}

int main(void)
{
	pthread_t th[NTHREADS];
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_mm_stats m0, m1;
	struct usvm_pagemap_stats p0, p1;
	uint64_t seed = 1000;
	int i, r;

	test_init("many_threads_same_alloc", 60);
	test_setup(&mm, &pm, 16 * MiB);
	buf = test_alloc(mm, LEN);
	CHECK(((uintptr_t)buf & (USVM_BLOCK_SIZE - 1)) == 0, "not block aligned");
	pthread_barrier_init(&start_bar, NULL, NTHREADS + 1);
	pthread_barrier_init(&done_bar, NULL, NTHREADS + 1);
	for (i = 0; i < NTHREADS; i++)
		CHECK(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) == 0, "thread");

	pattern_fill(buf, LEN, seed);
	for (r = 0; r < ROUNDS; r++) {
		seed = 1000 + (uint64_t)r;
		CHECK_OK(usvm_pagemap_populate_mm(pm, buf, buf + LEN, mm, 0));
		CHECK(pm_stats(pm).live_allocations == 1, "not a single device allocation");
		m0 = mm_stats(mm);
		p0 = pm_stats(pm);
		pthread_barrier_wait(&start_bar);
		pthread_barrier_wait(&done_bar);
		settle(mm, buf, LEN);
		m1 = mm_stats(mm);
		p1 = pm_stats(pm);
		CHECK(m1.migrations_to_ram - m0.migrations_to_ram == 1,
		      "round %d: %llu migrations back, expected 1", r,
		      (unsigned long long)(m1.migrations_to_ram - m0.migrations_to_ram));
		CHECK(p1.cpu_fault_migrations - p0.cpu_fault_migrations == 1, "cpu_fault_migrations");
		CHECK(m1.cpu_faults_devmem - m0.cpu_faults_devmem >= 1, "no device fault");
		CHECK(resident(mm, buf, LEN, NULL) == (long)LEN, "round %d: not all back", r);
		if (r % 3 == 2) {
			seed++;
			CHECK_PATTERN(buf, LEN, seed);
		} else {
			CHECK_PATTERN(buf, LEN, seed);
			pattern_fill(buf, LEN, seed + 1);
		}
	}
	for (i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&start_bar);
	pthread_barrier_destroy(&done_bar);
	usvm_mm_stats_print(mm, stdout);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

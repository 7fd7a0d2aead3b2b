// SPDX-License-Identifier: MIT
/*
 * timeslice: a CPU touch of memory populated with a timeslice waits until
 * the timeslice is over (drm_pagemap_migrate_to_ram timeslice enforcement).
 *
 * Nothing here depends on a thread getting the CPU in time:
 *  - residency is a lower bound: a touch never completes before populate's
 *    start + timeslice, however slow the machine;
 *  - the wait counter is checked with a 60 s timeslice: the test waits (up
 *    to 30 s) until the toucher's fault is counted as waiting, checks the
 *    toucher is still blocked, then evicts (which ignores timeslices) to
 *    release it.
 * With timeslice 0, or an expired one, nothing waits.
 */
#include <pthread.h>
#include <stdatomic.h>
#include "helpers.h"

struct toucher {
	uint8_t *p;       /* the buffer */
	size_t off;       /* the byte this thread reads */
	uint64_t seed;
	uint64_t done_ns; /* when the read completed */
	atomic_int done;
};

static void *touch(void *arg)
{
	struct toucher *t = arg;

	CHECK(t->p[t->off] == pattern_byte(t->seed, t->off), "wrong byte at %zu", t->off);
	t->done_ns = now_ns();
	atomic_store(&t->done, 1);
	return NULL;
}

static void start_touchers(pthread_t *th, struct toucher *t, int n, uint8_t *p, size_t len,
			   uint64_t seed)
{
	int i;

	for (i = 0; i < n; i++) {
		t[i] = (struct toucher){ .p = p, .off = (size_t)i * (len / (size_t)n) + 999,
					 .seed = seed };
		CHECK(pthread_create(&th[i], NULL, touch, &t[i]) == 0, "thread");
	}
}

int main(void)
{
	const size_t len = 2 * MiB;
	const uint64_t ts_ms = 100;
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_mm_stats m0, m1;
	struct toucher t[4];
	pthread_t th[4];
	uint64_t t0, deadline;
	uint8_t *p;
	int i;

	test_init("timeslice", 90);
	test_setup(&mm, &pm, 16 * MiB);
	p = test_alloc(mm, len);

	/* 1. Four threads touch at once: none completes before the timeslice
	 * is over, one migration brings the allocation back for all. */
	pattern_fill(p, len, 2);
	m0 = mm_stats(mm);
	t0 = now_ns();
	CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + len, mm, ts_ms));
	start_touchers(th, t, 4, p, len, 2);
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		printf("thread %d done %.1f ms after populate started\n", i,
		       (t[i].done_ns - t0) / 1e6);
		CHECK(t[i].done_ns >= t0 + ts_ms * 1000000ull,
		      "thread %d read device memory back %.1f ms after populate started, "
		      "inside the %llu ms timeslice", i, (t[i].done_ns - t0) / 1e6,
		      (unsigned long long)ts_ms);
	}
	settle(mm, p, len);
	m1 = mm_stats(mm);
	CHECK(m1.migrations_to_ram - m0.migrations_to_ram == 1, "migrations_to_ram %llu",
	      (unsigned long long)(m1.migrations_to_ram - m0.migrations_to_ram));
	CHECK(m1.timeslice_waits - m0.timeslice_waits <=
	      m1.cpu_faults_devmem - m0.cpu_faults_devmem, "more waits than device faults");
	CHECK(resident(mm, p, len, NULL) == (long)len, "not back after the timeslice");
	CHECK_PATTERN(p, len, 2);

	/* 2. The wait is counted: a 60 s timeslice, a toucher that blocks,
	 * then eviction (which ignores timeslices) releases it. */
	m0 = mm_stats(mm);
	CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + len, mm, 60000));
	start_touchers(th, t, 1, p, len, 2);
	deadline = now_ns() + 30000000000ull;
	while (mm_stats(mm).timeslice_waits == m0.timeslice_waits && now_ns() < deadline)
		sleep_ms(1);
	m1 = mm_stats(mm);
	CHECK(m1.timeslice_waits >= m0.timeslice_waits + 1, "no timeslice wait counted");
	CHECK(!atomic_load(&t[0].done), "the toucher read device memory inside the timeslice");
	CHECK_RET(usvm_pagemap_evict(pm, mm, p), len);
	pthread_join(th[0], NULL);
	settle(mm, p, len);
	m1 = mm_stats(mm);
	/* One wait per fault message, never counted twice.  (A stale message
	 * of step 1 served late only wakes the toucher, which then faults -
	 * and may wait - once more: see serve_page().) */
	CHECK(m1.timeslice_waits - m0.timeslice_waits <= m1.cpu_faults_devmem - m0.cpu_faults_devmem,
	      "timeslice waits %llu for %llu faults on device memory",
	      (unsigned long long)(m1.timeslice_waits - m0.timeslice_waits),
	      (unsigned long long)(m1.cpu_faults_devmem - m0.cpu_faults_devmem));
	CHECK_PATTERN(p, len, 2);

	/* Timeslice 0: no waits at all. */
	for (i = 0; i < 5; i++) {
		m0 = mm_stats(mm);
		CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + len, mm, 0));
		CHECK(p[len - 1] == pattern_byte(2, len - 1), "last byte");
		settle(mm, p, len);
		m1 = mm_stats(mm);
		CHECK(m1.timeslice_waits == m0.timeslice_waits, "timeslice 0 waited");
		CHECK(m1.migrations_to_ram - m0.migrations_to_ram == 1, "migrations_to_ram");
	}
	CHECK_PATTERN(p, len, 2);

	/* An expired timeslice does not delay: populate with 1 ms, sleep, touch. */
	m0 = mm_stats(mm);
	CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + len, mm, 1));
	sleep_ms(20);
	CHECK_PATTERN(p, len, 2);
	settle(mm, p, len);
	m1 = mm_stats(mm);
	CHECK(m1.timeslice_waits == m0.timeslice_waits, "expired timeslice waited");

	/* Explicit eviction ignores a long timeslice. */
	m0 = mm_stats(mm);
	CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + len, mm, 60000));
	CHECK_RET(usvm_pagemap_evict(pm, mm, p), len);
	CHECK_PATTERN(p, len, 2);
	settle(mm, p, len);
	m1 = mm_stats(mm);
	CHECK(m1.timeslice_waits == m0.timeslice_waits, "evicted allocation waited");

	usvm_mm_stats_print(mm, stdout);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

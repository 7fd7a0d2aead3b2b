// SPDX-License-Identifier: MIT
/*
 * timeslice: populate with timeslice_ms = 200 and touch at once: the CPU
 * access is deferred (timeslice_waits counts it) and then completes with the
 * right data.  With timeslice 0 nothing waits.  No timing is asserted; the
 * measured delay is printed for information.
 * (drm_pagemap_migrate_to_ram timeslice enforcement.)
 */
#include <pthread.h>
#include "helpers.h"

struct toucher {
	uint8_t *p;    /* the buffer */
	size_t off;    /* the byte this thread reads */
	uint64_t seed;
	uint64_t ns;
};

static void *touch(void *arg)
{
	struct toucher *t = arg;
	uint64_t t0 = now_ns();

	CHECK(t->p[t->off] == pattern_byte(t->seed, t->off), "wrong byte at %zu", t->off);
	t->ns = now_ns() - t0;
	return NULL;
}

int main(void)
{
	const size_t len = 2 * MiB;
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_mm_stats m0, m1;
	uint64_t t0, waited;
	uint8_t *p;
	int i;

	test_init("timeslice", 60);
	test_setup(&mm, &pm, 16 * MiB);
	p = test_alloc(mm, len);
	pattern_fill(p, len, 1);

	/* 200 ms timeslice, touched at once. */
	m0 = mm_stats(mm);
	CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + len, mm, 200));
	t0 = now_ns();
	CHECK(p[0] == pattern_byte(1, 0), "byte 0");
	waited = now_ns() - t0;
	settle(mm, p, len);
	m1 = mm_stats(mm);
	printf("touch after populate with a 200 ms timeslice took %.1f ms\n", waited / 1e6);
	CHECK(m1.timeslice_waits > m0.timeslice_waits, "no timeslice wait counted");
	CHECK(m1.migrations_to_ram - m0.migrations_to_ram == 1, "migrations_to_ram %llu",
	      (unsigned long long)(m1.migrations_to_ram - m0.migrations_to_ram));
	CHECK(resident(mm, p, len, NULL) == (long)len, "not back after the timeslice");
	CHECK_PATTERN(p, len, 1);

	/* Several threads waiting on the same timeslice, data written by the CPU. */
	pattern_fill(p, len, 2);
	m0 = mm_stats(mm);
	CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + len, mm, 100));
	{
		pthread_t th[4];
		struct toucher t[4];

		for (i = 0; i < 4; i++) {
			t[i] = (struct toucher){ p, (size_t)i * (len / 4) + 999, 2, 0 };
			CHECK(pthread_create(&th[i], NULL, touch, &t[i]) == 0, "thread");
		}
		for (i = 0; i < 4; i++) {
			pthread_join(th[i], NULL);
			printf("thread %d waited %.1f ms\n", i, t[i].ns / 1e6);
		}
	}
	settle(mm, p, len);
	m1 = mm_stats(mm);
	CHECK(m1.timeslice_waits > m0.timeslice_waits, "no timeslice wait counted (threads)");
	CHECK(m1.migrations_to_ram - m0.migrations_to_ram == 1, "migrations_to_ram");
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

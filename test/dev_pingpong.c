// SPDX-License-Identifier: MIT
/*
 * dev_pingpong: two devices with their own memories take turns writing one
 * 2 MiB buffer (policy ALWAYS).  Without a timeslice every turn migrates
 * the buffer into the writer's memory; with a timeslice (200 ms, long
 * enough that even a slow, sanitized turn falls inside it) a device keeps
 * its pages for that long, so the other device maps them elsewhere instead
 * of migrating on every turn (drm_pagemap timeslice: no ping-pong).
 *
 * A fixed number of rounds each way; data is checked by the writer after
 * every turn and by the CPU at the end.  The assertion is on counts, never
 * on time: fewer migrations to device memory per round with the timeslice.
 */
#include <string.h>
#include <sys/mman.h>
#include "helpers.h"

#define LEN (2 * MiB)
#define ROUNDS 5

static double run(struct usvm_mm *mm, uint8_t *p, unsigned long ts_ms)
{
	struct usvm_pagemap *pa = test_sim_create("vramA", 8 * MiB);
	struct usvm_pagemap *pb = test_sim_create("vramB", 8 * MiB);
	struct usvm_device_options oa = { .name = "A", .pagemap = pa, .timeslice_ms = ts_ms,
					  .threads = 2 };
	struct usvm_device_options ob = { .name = "B", .pagemap = pb, .timeslice_ms = ts_ms,
					  .threads = 2 };
	struct usvm_device *a = NULL, *b = NULL;
	uint8_t *host = malloc(LEN), *back = malloc(LEN);
	uint64_t migr;
	int round;

	CHECK(host && back, "malloc");
	CHECK_OK(usvm_device_create(mm, &oa, &a));
	CHECK_OK(usvm_device_create(mm, &ob, &b));
	for (round = 0; round < ROUNDS; round++) {
		struct usvm_device *w[2] = { a, b };
		int k;

		for (k = 0; k < 2; k++) {
			uint64_t sd = ts_ms * 1000 + (uint64_t)round * 2 + (uint64_t)k;

			pattern_fill(host, LEN, sd);
			CHECK_OK(dev_copy(w[k], p, host, LEN, 64 * KiB, 1));
			memset(back, 0, LEN);
			CHECK_OK(dev_copy(w[k], p, back, LEN, PAGE, 0));
			CHECK(pattern_check(back, LEN, sd) == PATTERN_OK,
			      "timeslice %lu, round %d: %s read back wrong data", ts_ms, round,
			      usvm_device_name(w[k]));
		}
	}
	migr = pm_stats(pa).migrations_to_dev + pm_stats(pb).migrations_to_dev;
	printf("  timeslice %3lu ms: %llu migrations to device memory in %d rounds "
	       "(A: %llu failed migrations, B: %llu)\n", ts_ms, (unsigned long long)migr, ROUNDS,
	       (unsigned long long)dstats(a).migration_failures,
	       (unsigned long long)dstats(b).migration_failures);
	CHECK(dstats(a).fatal_faults + dstats(b).fatal_faults == 0, "fatal faults");
	/* The CPU sees B's last write (waiting out any timeslice). */
	CHECK_PATTERN(p, LEN, ts_ms * 1000 + (ROUNDS - 1) * 2 + 1);
	usvm_device_destroy(a);
	usvm_device_destroy(b);
	usvm_pagemap_destroy(pa);
	usvm_pagemap_destroy(pb);
	free(host);
	free(back);
	return (double)migr / ROUNDS;
}

int main(void)
{
	struct usvm_mm *mm;
	uint8_t *p;
	double none, sliced;

	test_init("dev_pingpong", 60);
	mm = test_mm_create(NULL);
	p = test_alloc(mm, LEN);
	none = run(mm, p, 0);
	sliced = run(mm, p, 200);
	CHECK(none >= 2.0, "without a timeslice each round should migrate twice, got %.2f", none);
	CHECK(sliced < none, "timeslice did not reduce ping-pong: %.2f vs %.2f migrations per round",
	      sliced, none);
	CHECK_OK(usvm_free(mm, p));
	usvm_mm_destroy(mm);
	printf("ok\n");
	return 0;
}

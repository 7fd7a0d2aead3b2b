// SPDX-License-Identifier: MIT
/*
 * dev_four_buffers: one kernel faulting four buffers at once.  Kernel index
 * i reads page i of A, B and C and writes D[i] = A[i] ^ B[i] ^ C[i] + 1 per
 * byte.  A and D are usvm_alloc memory, B a registered mmap, C registered
 * malloc memory.  Devices: device memory with policy ALWAYS (a large pool,
 * then a pool smaller than the working set so that faults evict each
 * other's ranges mid-kernel), policy NEVER, and no device memory.  Every
 * byte of D is checked, and A, B, C are unchanged; then 5 rounds with new
 * CPU data in A, B, C.
 */
#include <string.h>
#include <sys/mman.h>
#include "helpers.h"

#define LEN (1 * MiB)

struct four {
	uint8_t *a, *b, *c, *d;
};

static int k_four(struct usvm_kctx *ctx, unsigned long i, void *arg)
{
	struct four *f = arg;
	uint8_t x[PAGE], y[PAGE], z[PAGE];
	size_t off = i * PAGE, k;
	int err;

	err = usvm_dev_read(ctx, f->a + off, x, PAGE);
	if (!err)
		err = usvm_dev_read(ctx, f->b + off, y, PAGE);
	if (!err)
		err = usvm_dev_read(ctx, f->c + off, z, PAGE);
	if (err)
		return err;
	for (k = 0; k < PAGE; k++)
		x[k] = (uint8_t)((x[k] ^ y[k] ^ z[k]) + 1);
	return usvm_dev_write(ctx, f->d + off, x, PAGE);
}

static void check_d(const struct four *f, uint64_t sa, uint64_t sb, uint64_t sc, const char *what,
		    int round)
{
	size_t k;

	for (k = 0; k < LEN; k++) {
		uint8_t want = (uint8_t)((pattern_byte(sa, k) ^ pattern_byte(sb, k) ^
					  pattern_byte(sc, k)) + 1);

		CHECK(f->d[k] == want, "%s round %d: D[%zu] = 0x%02x, expected 0x%02x", what, round,
		      k, f->d[k], want);
	}
	CHECK(pattern_check(f->a, LEN, sa) == PATTERN_OK, "%s: A changed", what);
	CHECK(pattern_check(f->b, LEN, sb) == PATTERN_OK, "%s: B changed", what);
	CHECK(pattern_check(f->c, LEN, sc) == PATTERN_OK, "%s: C changed", what);
}

static void run(struct usvm_mm *mm, struct four *f, struct usvm_pagemap *pm,
		enum usvm_migrate_policy pol, const char *what, int expect_evictions)
{
	struct usvm_device_options o = { .name = what, .pagemap = pm, .policy = pol, .threads = 4,
					 .chunk_sizes = { 64 * KiB, 4 * KiB } };
	struct usvm_device *d = NULL;
	struct usvm_pagemap_stats p0 = { 0 }, p1;
	struct usvm_device_stats s;
	int round;

	printf("  %s\n", what);
	CHECK_OK(usvm_device_create(mm, &o, &d));
	if (pm)
		p0 = pm_stats(pm);
	for (round = 0; round < 5; round++) {
		uint64_t sa = 100 + (uint64_t)round * 3;

		pattern_fill(f->a, LEN, sa);
		pattern_fill(f->b, LEN, sa + 1);
		pattern_fill(f->c, LEN, sa + 2);
		memset(f->d, 0, LEN);
		CHECK_OK(usvm_device_launch(d, k_four, LEN / PAGE, f));
		check_d(f, sa, sa + 1, sa + 2, what, round);
	}
	s = dstats(d);
	CHECK(s.fatal_faults == 0, "%s: fatal faults", what);
	CHECK(s.ranges_created >= 4 * LEN / (64 * KiB), "%s: ranges_created %llu", what,
	      (unsigned long long)s.ranges_created);
	if (pm) {
		p1 = pm_stats(pm);
		if (expect_evictions)
			CHECK(p1.evictions > p0.evictions, "%s: no eviction with a small pool", what);
		else
			CHECK(p1.evictions == p0.evictions, "%s: evictions with a large pool", what);
		if (pol == USVM_POLICY_ALWAYS)
			CHECK(s.bytes_mapped_device > 0, "%s: nothing mapped from device memory", what);
	}
	usvm_device_destroy(d);
}

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *big, *small;
	struct four f;
	uint8_t *cm;

	test_init("dev_four_buffers", 90);
	mm = test_mm_create(NULL);
	big = test_sim_create("big", 32 * MiB);
	small = test_sim_create("small", 2 * MiB);
	f.a = test_alloc(mm, LEN);
	f.d = test_alloc(mm, LEN);
	f.b = map_aligned(LEN, 64 * KiB);
	CHECK_OK(usvm_register(mm, f.b, LEN));
	cm = aligned_alloc(64 * KiB, LEN);
	CHECK(cm != NULL, "aligned_alloc");
	f.c = cm;
	CHECK_OK(usvm_register(mm, f.c, LEN));

	run(mm, &f, NULL, USVM_POLICY_ALWAYS, "no device memory", 0);
	run(mm, &f, big, USVM_POLICY_ALWAYS, "device memory, ALWAYS", 0);
	run(mm, &f, big, USVM_POLICY_NEVER, "device memory, NEVER", 0);
	run(mm, &f, small, USVM_POLICY_ALWAYS, "small device memory, ALWAYS", 1);

	CHECK_OK(usvm_unregister(mm, f.b, LEN));
	CHECK_OK(usvm_unregister(mm, f.c, LEN));
	munmap(f.b, LEN);
	free(cm);
	usvm_pagemap_stats_print(small, stdout);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(big);
	usvm_pagemap_destroy(small);
	printf("ok\n");
	return 0;
}

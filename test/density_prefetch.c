// SPDX-License-Identifier: MIT
/*
 * density_prefetch: a device fault whose range would make most of its 2 MiB
 * block resident migrates the whole block (USVM_PREFETCH_THRESHOLD, UVM's
 * tree prefetch).
 *
 * A device with 64 KiB ranges reads a 2 MiB buffer chunk by chunk, in order:
 *   - threshold 51 (the default): the 17th chunk's fault (17 x 64 KiB is the
 *     first count over 51 %) migrates the whole block; the 15 chunks after
 *     it migrate nothing; counted in density_prefetches/_bytes;
 *   - threshold 0 (off): 32 migrations of 64 KiB, never more than what was
 *     read is resident;
 *   - threshold 100: only the last chunk completes the block, so never;
 *   - every byte read is right.
 */
#include "helpers.h"

#define LEN (2 * MiB)
#define CHUNK (64 * KiB)

static void run(const char *threshold, unsigned int prefetch_at)
{
	struct usvm_device_options o = { .name = "dev0", .policy = USVM_POLICY_ALWAYS,
					 .threads = 1, .chunk_sizes = { CHUNK, PAGE } };
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_device *d;
	struct usvm_device_stats st;
	uint8_t *p, *host = malloc(CHUNK);
	uint64_t mig0;
	size_t i;

	CHECK(host != NULL, "malloc");
	setenv("USVM_PREFETCH_THRESHOLD", threshold, 1);
	test_setup(&mm, &pm, 16 * MiB);
	o.pagemap = pm;
	CHECK_OK(usvm_device_create(mm, &o, &d));
	p = test_alloc(mm, LEN);
	CHECK(((uintptr_t)p & (LEN - 1)) == 0, "buffer not 2 MiB aligned");
	pattern_fill(p, LEN, 7);
	mig0 = pm_stats(pm).migrations_to_dev;
	for (i = 0; i < LEN / CHUNK; i++) {
		long want = (long)((i + 1) * CHUNK);

		CHECK_OK(dev_copy(d, p + i * CHUNK, host, CHUNK, CHUNK, 0));
		CHECK(pattern_check_at(host, CHUNK, 7, i * CHUNK) == PATTERN_OK,
		      "threshold %s: chunk %zu read wrong", threshold, i);
		if (prefetch_at && i + 1 >= prefetch_at)
			want = LEN;
		CHECK(resident(mm, p, LEN, pm) == want, "threshold %s: after chunk %zu: %ld bytes "
		      "resident, not %ld", threshold, i, resident(mm, p, LEN, pm), want);
	}
	st = dstats(d);
	if (prefetch_at) {
		CHECK(pm_stats(pm).migrations_to_dev - mig0 == prefetch_at,
		      "threshold %s: %lu migrations, not %u", threshold,
		      (unsigned long)(pm_stats(pm).migrations_to_dev - mig0), prefetch_at);
		CHECK(st.density_prefetches == 1 &&
		      st.density_prefetch_bytes == LEN - prefetch_at * CHUNK,
		      "threshold %s: counted %lu prefetches of %lu bytes", threshold,
		      (unsigned long)st.density_prefetches, (unsigned long)st.density_prefetch_bytes);
	} else {
		CHECK(pm_stats(pm).migrations_to_dev - mig0 == LEN / CHUNK, "threshold %s: %lu "
		      "migrations", threshold, (unsigned long)(pm_stats(pm).migrations_to_dev - mig0));
		CHECK(!st.density_prefetches, "threshold %s: prefetched", threshold);
	}
	CHECK(pattern_check(p, LEN, 7) == PATTERN_OK, "threshold %s: CPU bytes", threshold);
	usvm_device_destroy(d);
	CHECK_OK(usvm_free(mm, p));
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	free(host);
}

int main(void)
{
	test_init("density_prefetch", 300);
	skip_if_no_uffd();
	run("51", 17);
	run("0", 0);
	run("100", 0);
	printf("density_prefetch: ok\n");
	return 0;
}

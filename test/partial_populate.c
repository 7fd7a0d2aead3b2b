// SPDX-License-Identifier: MIT
/*
 * partial_populate: overlapping populates move only the missing part.
 *   populate [0, 1M) then [512K, 2M) of a 2 MiB-aligned allocation: the
 *   second call migrates 256 pages, finds 128 present, and device memory
 *   grows by exactly 1 MiB; a third populate of [0, 2M) is a no-op.
 * Also across blocks ([1M, 3M) then [0, 4M)), after a CPU fault took part
 * of the range back (hmm-tests migrate_fault), and data stays intact.
 */
#include <stdlib.h>
#include "helpers.h"

struct delta {
	uint64_t migrated, present, cleared, used, ok, noop, mig_dev;
};

static struct delta diff(struct usvm_pagemap_stats a, struct usvm_pagemap_stats b)
{
	struct delta d = {
		b.pages_migrated_in - a.pages_migrated_in,
		b.pages_already_present - a.pages_already_present,
		b.pages_cleared - a.pages_cleared,
		b.used_bytes - a.used_bytes,
		b.populate_ok - a.populate_ok,
		b.populate_noop - a.populate_noop,
		b.migrations_to_dev - a.migrations_to_dev,
	};
	return d;
}

#define CHECK_DELTA(d, field, want)                                              \
	CHECK((d).field == (uint64_t)(want), #field " delta %llu, expected %llu", \
	      (unsigned long long)(d).field, (unsigned long long)(want))

static struct delta populate(struct usvm_mm *mm, struct usvm_pagemap *pm, uint8_t *s, uint8_t *e)
{
	struct usvm_pagemap_stats a = pm_stats(pm);

	CHECK_OK(usvm_pagemap_populate_mm(pm, s, e, mm, 0));
	return diff(a, pm_stats(pm));
}

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct delta d;
	uint8_t *p;

	test_init("partial_populate", 60);
	/* Holes: pages the CPU never touched next to written ones (a write
	 * would otherwise fill the rest of its block, see first_touch.c). */
	setenv("USVM_WRITE_FILL", "4K", 1);
	test_setup(&mm, &pm, 32 * MiB);

	/* One block. */
	p = test_alloc(mm, 2 * MiB);
	CHECK(((uintptr_t)p & (USVM_BLOCK_SIZE - 1)) == 0, "2 MiB allocation not 2 MiB aligned");
	pattern_fill(p, 2 * MiB, 1);

	d = populate(mm, pm, p, p + 1 * MiB);
	CHECK_DELTA(d, migrated, 256);
	CHECK_DELTA(d, present, 0);
	CHECK_DELTA(d, used, 1 * MiB);
	CHECK_DELTA(d, ok, 1);
	CHECK(resident(mm, p, 1 * MiB, pm) == (long)MiB, "first MiB not on device");
	CHECK(resident(mm, p + MiB, MiB, NULL) == (long)MiB, "second MiB moved too early");

	d = populate(mm, pm, p + 512 * KiB, p + 2 * MiB);
	CHECK_DELTA(d, migrated, 256);
	CHECK_DELTA(d, present, 128);
	CHECK_DELTA(d, used, 1 * MiB);
	CHECK_DELTA(d, mig_dev, 1);
	CHECK(resident(mm, p, 2 * MiB, pm) == (long)(2 * MiB), "not all on device");

	d = populate(mm, pm, p, p + 2 * MiB);
	CHECK_DELTA(d, migrated, 0);
	CHECK_DELTA(d, present, 512);
	CHECK_DELTA(d, used, 0);
	CHECK_DELTA(d, noop, 1);
	CHECK_DELTA(d, mig_dev, 0);
	CHECK(pm_stats(pm).live_allocations == 2, "expected two device allocations");

	/* A CPU fault in the first MiB brings that device allocation back only. */
	CHECK(p[100] == pattern_byte(1, 100), "byte 100");
	CHECK(resident(mm, p, MiB, NULL) == (long)MiB, "first allocation not back");
	CHECK(resident(mm, p + MiB, MiB, pm) == (long)MiB, "second allocation came back too");
	d = populate(mm, pm, p, p + 2 * MiB);
	CHECK_DELTA(d, migrated, 256);
	CHECK_DELTA(d, present, 256);
	CHECK_DELTA(d, used, 1 * MiB);
	CHECK_PATTERN(p, 2 * MiB, 1);
	settle(mm, p, 2 * MiB);
	CHECK(pm_stats(pm).used_bytes == 0, "device memory left after faults");
	CHECK_OK(usvm_free(mm, p));

	/* Across blocks: [1M, 3M) then [0, 4M), with never-touched holes. */
	p = test_alloc(mm, 4 * MiB);
	pattern_fill(p, 3 * MiB, 2); /* the last MiB is never touched */
	d = populate(mm, pm, p + 1 * MiB, p + 3 * MiB);
	CHECK_DELTA(d, migrated, 512);
	CHECK_DELTA(d, used, 2 * MiB);
	CHECK_DELTA(d, mig_dev, 2);
	d = populate(mm, pm, p, p + 4 * MiB);
	CHECK_DELTA(d, migrated, 512);
	CHECK_DELTA(d, present, 512);
	CHECK_DELTA(d, cleared, 256);
	CHECK_DELTA(d, used, 2 * MiB);
	CHECK_DELTA(d, mig_dev, 2);
	CHECK(resident(mm, p, 4 * MiB, pm) == (long)(4 * MiB), "not all on device");
	CHECK_PATTERN(p, 3 * MiB, 2);
	CHECK_ZERO(p + 3 * MiB, MiB);

	/* Single pages at scattered offsets, then the whole range. */
	pattern_fill(p, 4 * MiB, 3);
	{
		static const size_t offs[] = { 0, 17, 511, 512, 513, 1000, 1023 };
		size_t i, n = sizeof(offs) / sizeof(offs[0]);

		for (i = 0; i < n; i++) {
			d = populate(mm, pm, p + offs[i] * PAGE, p + (offs[i] + 1) * PAGE);
			CHECK_DELTA(d, migrated, 1);
			CHECK_DELTA(d, used, PAGE);
		}
		d = populate(mm, pm, p, p + 4 * MiB);
		CHECK_DELTA(d, migrated, 1024 - n);
		CHECK_DELTA(d, present, n);
		CHECK_DELTA(d, used, 4 * MiB - n * PAGE);
	}
	CHECK_PATTERN(p, 4 * MiB, 3);
	settle(mm, p, 4 * MiB);
	CHECK(pm_stats(pm).used_bytes == 0, "device memory left");
	CHECK_OK(usvm_free(mm, p));

	usvm_pagemap_stats_print(pm, stdout);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

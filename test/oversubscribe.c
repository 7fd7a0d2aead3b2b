// SPDX-License-Identifier: MIT
/*
 * oversubscribe: populating 32 MiB into an 8 MiB device succeeds by evicting
 * least recently used allocations: evictions are counted, the device never
 * holds more than its capacity, the most recently populated 8 MiB is what
 * stays, and every byte is intact.  The same with many small allocations.
 * A piece larger than the whole device fails with -ENOMEM, data intact.
 */
#include "helpers.h"

#define CAP (8 * MiB)

int main(void)
{
	const size_t len = 32 * MiB;
	struct usvm_mm *mm;
	struct usvm_pagemap *pm, *tiny;
	struct usvm_pagemap_stats p0, p1;
	uint8_t *p, *small[64];
	int round, i;

	test_init("oversubscribe", 60);
	test_setup(&mm, &pm, CAP);

	p = test_alloc(mm, len);
	pattern_fill(p, len, 1);
	for (round = 0; round < 3; round++) {
		p0 = pm_stats(pm);
		CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + len, mm, 0));
		p1 = pm_stats(pm);
		CHECK(p1.evictions > p0.evictions, "round %d: no eviction", round);
		CHECK(p1.used_bytes <= CAP, "used %llu > capacity",
		      (unsigned long long)p1.used_bytes);
		CHECK(p1.peak_used_bytes <= CAP, "peak %llu > capacity",
		      (unsigned long long)p1.peak_used_bytes);
		CHECK(resident(mm, p, len, pm) <= (long)CAP, "more than capacity resident");
		CHECK(resident(mm, p, len, pm) + resident(mm, p, len, NULL) == (long)len,
		      "pages lost track of");
		/* LRU: the pieces populated last are the ones still there. */
		CHECK(resident(mm, p + len - CAP, CAP, pm) == (long)CAP,
		      "round %d: last %lu bytes not resident (%ld)", round, CAP,
		      resident(mm, p + len - CAP, CAP, pm));
		CHECK(p1.migrations_to_dev - p0.migrations_to_dev >= len / USVM_BLOCK_SIZE - CAP / USVM_BLOCK_SIZE,
		      "too few migrations");
		CHECK_PATTERN(p, len, (uint64_t)round + 1);
		pattern_fill(p, len, (uint64_t)round + 2);
	}

	CHECK(usvm_pagemap_evict(pm, mm, NULL) >= 0, "evict(NULL)");
	CHECK(pm_stats(pm).used_bytes == 0, "evict(NULL) left device memory");

	/* Many small allocations: 64 x 256 KiB = 16 MiB into 8 MiB. */
	for (i = 0; i < 64; i++) {
		small[i] = test_alloc(mm, 256 * KiB);
		pattern_fill(small[i], 256 * KiB, 100 + (uint64_t)i);
	}
	p0 = pm_stats(pm);
	for (i = 0; i < 64; i++) {
		CHECK_OK(usvm_pagemap_populate_mm(pm, small[i], small[i] + 256 * KiB, mm, 0));
		CHECK(resident(mm, small[i], 256 * KiB, pm) == (long)(256 * KiB),
		      "small %d not resident right after populate", i);
		CHECK(pm_stats(pm).used_bytes <= CAP, "over capacity");
	}
	p1 = pm_stats(pm);
	CHECK(p1.evictions - p0.evictions >= 32, "evictions %llu",
	      (unsigned long long)(p1.evictions - p0.evictions));
	for (i = 0; i < 64; i++)
		CHECK_PATTERN(small[i], 256 * KiB, 100 + (uint64_t)i);

	/* A device smaller than one piece: -ENOMEM, nothing lost. */
	tiny = test_sim_create("tiny", 1 * MiB);
	CHECK_RET(usvm_pagemap_populate_mm(tiny, p, p + 2 * MiB, mm, 0), -ENOMEM);
	CHECK(resident(mm, p, 2 * MiB, tiny) == 0, "partial piece on tiny device");
	/* A 1 MiB piece fits, a following 2 MiB piece does not. */
	CHECK_OK(usvm_pagemap_populate_mm(tiny, p + MiB, p + 2 * MiB, mm, 0));
	CHECK(resident(mm, p + MiB, MiB, tiny) == (long)MiB, "1 MiB piece");
	CHECK_RET(usvm_pagemap_populate_mm(tiny, p + MiB, p + 4 * MiB, mm, 0), -ENOMEM);
	CHECK_PATTERN(p, len, 4);
	CHECK(pm_stats(tiny).populate_enomem == 2, "populate_enomem");
	CHECK(pm_stats(tiny).used_bytes <= MiB, "tiny over capacity");

	usvm_pagemap_stats_print(pm, stdout);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(tiny);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

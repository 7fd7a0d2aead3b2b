// SPDX-License-Identifier: MIT
/*
 * repeated_migrations: 12 rounds of {populate, CPU verify + modify} over a
 * few MiB made of allocations of several sizes; odd rounds bring the data
 * back by CPU faults, even rounds by explicit evict, every third round
 * populates only part of the range.  Every byte is checked every round.
 * (hmm-tests: migrate_multiple, anon_read_multiple.)
 */
#include "helpers.h"

#define NALLOC 6
#define ROUNDS 12

int main(void)
{
	static const size_t sizes[NALLOC] = {
		4 * MiB, 4096, 64 * KiB, 1 * MiB + 4096, 2 * MiB, 300 * KiB,
	};
	uint8_t *p[NALLOC];
	size_t total = 0;
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_mm_stats m0, m1;
	int r, i;

	test_init("repeated_migrations", 60);
	test_setup(&mm, &pm, 32 * MiB);
	for (i = 0; i < NALLOC; i++) {
		p[i] = test_alloc(mm, sizes[i]);
		pattern_fill(p[i], sizes[i], (uint64_t)i << 32);
		total += sizes[i];
	}
	m0 = mm_stats(mm);
	for (r = 0; r < ROUNDS; r++) {
		for (i = 0; i < NALLOC; i++) {
			size_t len = sizes[i];
			uint8_t *s = p[i], *e = p[i] + len;

			if (r % 3 == 2 && len > 2 * PAGE) {
				/* Part of it: the middle half, page aligned. */
				s = p[i] + ((len / 4) & ~(PAGE - 1));
				e = p[i] + ((3 * len / 4) & ~(PAGE - 1));
			}
			CHECK_OK(usvm_pagemap_populate_mm(pm, s, e, mm, 0));
			CHECK(resident(mm, s, (size_t)(e - s), pm) == e - s,
			      "round %d alloc %d: not on device", r, i);
		}
		if (r % 2 == 0) {
			long ev = usvm_pagemap_evict(pm, mm, NULL);

			CHECK(ev > 0, "round %d: evict(NULL) returned %ld", r, ev);
			CHECK(pm_stats(pm).used_bytes == 0, "round %d: device memory left", r);
		}
		for (i = 0; i < NALLOC; i++) {
			uint64_t seed = ((uint64_t)i << 32) + (uint64_t)r;

			CHECK_PATTERN(p[i], sizes[i], seed);
			CHECK(resident(mm, p[i], sizes[i], NULL) == (long)sizes[i],
			      "round %d alloc %d: not back in system memory", r, i);
			pattern_fill(p[i], sizes[i], seed + 1);
		}
	}
	m1 = mm_stats(mm);
	CHECK(m1.migrations_to_dev - m0.migrations_to_dev >= (uint64_t)ROUNDS * NALLOC,
	      "too few migrations to device");
	CHECK(m1.migrations_to_ram - m0.migrations_to_ram ==
	      m1.migrations_to_dev - m0.migrations_to_dev,
	      "migrations each way differ: %llu to dev, %llu to ram",
	      (unsigned long long)(m1.migrations_to_dev - m0.migrations_to_dev),
	      (unsigned long long)(m1.migrations_to_ram - m0.migrations_to_ram));
	CHECK(m1.bytes_to_ram - m0.bytes_to_ram == m1.bytes_to_dev - m0.bytes_to_dev,
	      "bytes each way differ");
	CHECK(m1.cpu_faults_devmem > m0.cpu_faults_devmem, "no CPU fault on device memory");
	CHECK(pm_stats(pm).evictions > 0, "no evictions counted");
	for (i = 0; i < NALLOC; i++) {
		CHECK_PATTERN(p[i], sizes[i], ((uint64_t)i << 32) + ROUNDS);
		CHECK_OK(usvm_free(mm, p[i]));
	}
	printf("%d rounds over %zu bytes\n", ROUNDS, total);
	usvm_pagemap_stats_print(pm, stdout);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

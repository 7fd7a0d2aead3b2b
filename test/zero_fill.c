// SPDX-License-Identifier: MIT
/*
 * zero_fill: populating never-touched managed memory clears device pages
 * (pages_cleared counts every page, nothing "migrates" data), the CPU then
 * reads zeros (faulting the allocation back), and CPU writes work after.
 * A mixed range (some pages written, some never touched) keeps the data and
 * reads zeros in the holes.
 * (hmm-tests: migrate_anon_huge_empty, migrate_anon_huge_zero.)
 */
#include <stdlib.h>
#include "helpers.h"

int main(void)
{
	const size_t len = 4 * MiB;
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_pagemap_stats p0, p1;
	struct usvm_mm_stats m0, m1;
	uint8_t *p, *q;
	size_t i;

	test_init("zero_fill", 60);
	/* Holes: pages the CPU never touched next to written ones (a write
	 * would otherwise fill the rest of its block, see first_touch.c). */
	setenv("USVM_WRITE_FILL", "4K", 1);
	test_setup(&mm, &pm, 32 * MiB);

	/* 1. Never touched. */
	p = test_alloc(mm, len);
	p0 = pm_stats(pm);
	CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + len, mm, 0));
	p1 = pm_stats(pm);
	CHECK(resident(mm, p, len, pm) == (long)len, "untouched memory not on device");
	CHECK(p1.pages_cleared - p0.pages_cleared == len / PAGE, "pages_cleared %llu, expected %zu",
	      (unsigned long long)(p1.pages_cleared - p0.pages_cleared), len / PAGE);
	CHECK(p1.used_bytes - p0.used_bytes == len, "used_bytes");

	m0 = mm_stats(mm);
	CHECK_ZERO(p, len);
	settle(mm, p, len);
	m1 = mm_stats(mm);
	CHECK(resident(mm, p, len, NULL) == (long)len, "not back in system memory");
	CHECK(m1.cpu_faults_devmem > m0.cpu_faults_devmem, "no device-memory CPU fault");
	CHECK(m1.migrations_to_ram - m0.migrations_to_ram == 2, "migrations_to_ram %llu",
	      (unsigned long long)(m1.migrations_to_ram - m0.migrations_to_ram));

	/* CPU writes after the zeros came back. */
	pattern_fill(p, len, 11);
	CHECK_PATTERN(p, len, 11);

	/* 2. Never touched, first CPU access is a write. */
	q = test_alloc(mm, len);
	CHECK_OK(usvm_pagemap_populate_mm(pm, q, q + len, mm, 0));
	q[12345] = 0x5a;
	for (i = 0; i < len; i++)
		CHECK(q[i] == (i == 12345 ? 0x5a : 0), "byte %zu is 0x%02x", i, q[i]);
	CHECK_OK(usvm_free(mm, q));

	/* 3. Mixed: every other 64 KiB chunk written, the rest never touched. */
	q = test_alloc(mm, len);
	for (i = 0; i < len; i += 128 * KiB)
		pattern_fill_at(q + i, 64 * KiB, 12, i);
	p0 = pm_stats(pm);
	CHECK_OK(usvm_pagemap_populate_mm(pm, q, q + len, mm, 0));
	p1 = pm_stats(pm);
	CHECK(resident(mm, q, len, pm) == (long)len, "mixed range not on device");
	CHECK(p1.pages_migrated_in - p0.pages_migrated_in == len / PAGE, "pages_migrated_in");
	CHECK(p1.pages_cleared - p0.pages_cleared == len / PAGE / 2,
	      "pages_cleared %llu, expected %zu",
	      (unsigned long long)(p1.pages_cleared - p0.pages_cleared), len / PAGE / 2);
	for (i = 0; i < len; i += 128 * KiB) {
		size_t bad = pattern_check_at(q + i, 64 * KiB, 12, i);

		CHECK(bad == PATTERN_OK, "mixed: data lost at %zu", i + bad);
		CHECK_ZERO(q + i + 64 * KiB, 64 * KiB);
	}

	/* 4. Read-touched (zero page mapped) memory populates as zeros too. */
	q = test_alloc(mm, 2 * MiB);
	for (i = 0; i < 2 * MiB; i += PAGE)
		CHECK(((volatile uint8_t *)q)[i] == 0, "fresh memory not zero");
	CHECK_OK(usvm_pagemap_populate_mm(pm, q, q + 2 * MiB, mm, 0));
	CHECK(resident(mm, q, 2 * MiB, pm) == (long)(2 * MiB), "zero-page memory not on device");
	CHECK_ZERO(q, 2 * MiB);
	pattern_fill(q, 2 * MiB, 13);
	CHECK_PATTERN(q, 2 * MiB, 13);

	CHECK_PATTERN(p, len, 11);
	usvm_pagemap_stats_print(pm, stdout);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

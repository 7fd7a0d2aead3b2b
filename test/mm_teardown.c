// SPDX-License-Identifier: MIT
/*
 * mm_teardown: destroying an address space while its pages are on the
 * device.  Device memory is released (the pagemap, destroyed after, sees no
 * allocation left), registered ranges keep every byte in place, another mm
 * sharing the pagemap is unaffected, and nothing leaks (run under ASan).
 * Also the other order: pagemap destroyed first (unbind), then the mm.
 */
#include <sys/mman.h>
#include "helpers.h"

int main(void)
{
	struct usvm_mm *mm, *other;
	struct usvm_pagemap *pm;
	struct usvm_pagemap_stats ps;
	uint8_t *p, *q, *reg, *o;
	void *heap;
	int round;

	test_init("mm_teardown", 60);

	/* 1. mm destroyed first, with managed and registered memory on the device. */
	test_setup(&mm, &pm, 32 * MiB);
	other = test_mm_create(NULL);
	p = test_alloc(mm, 8 * MiB);
	q = test_alloc(mm, 4 * KiB);
	pattern_fill(p, 8 * MiB, 1);
	pattern_fill(q, 4 * KiB, 2);
	CHECK(posix_memalign(&heap, PAGE, 2 * MiB + 5 * PAGE) == 0, "posix_memalign");
	reg = heap;
	pattern_fill(reg, 2 * MiB + 5 * PAGE, 3);
	CHECK_OK(usvm_register(mm, reg, 2 * MiB + 5 * PAGE));
	o = test_alloc(other, 2 * MiB);
	pattern_fill(o, 2 * MiB, 4);

	CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + 8 * MiB, mm, 10000)); /* long timeslice */
	CHECK_OK(usvm_pagemap_populate_mm(pm, q, q + 4 * KiB, mm, 0));
	CHECK_OK(usvm_pagemap_populate_mm(pm, reg, reg + 2 * MiB + 5 * PAGE, mm, 0));
	CHECK_OK(usvm_pagemap_populate_mm(pm, o, o + 2 * MiB, other, 0));
	ps = pm_stats(pm);
	CHECK(ps.used_bytes == 12 * MiB + 4 * KiB + 5 * PAGE, "used_bytes %llu",
	      (unsigned long long)ps.used_bytes);

	usvm_mm_destroy(mm);
	ps = pm_stats(pm);
	CHECK(ps.used_bytes == 2 * MiB, "after mm destroy: %llu bytes still used",
	      (unsigned long long)ps.used_bytes);
	CHECK(ps.live_allocations == 1, "live_allocations %llu",
	      (unsigned long long)ps.live_allocations);
	/* The registered range is the program's again, with its bytes. */
	CHECK_PATTERN(reg, 2 * MiB + 5 * PAGE, 3);
	pattern_fill(reg, 2 * MiB + 5 * PAGE, 5);
	CHECK_PATTERN(reg, 2 * MiB + 5 * PAGE, 5);
	free(heap);
	/* The other mm still has its data on the device. */
	CHECK(resident(other, o, 2 * MiB, pm) == (long)(2 * MiB), "other mm lost its device pages");
	CHECK_PATTERN(o, 2 * MiB, 4);
	usvm_pagemap_destroy(pm);
	usvm_mm_destroy(other);

	/* 2. pagemap destroyed first (implicit unbind), then the mm. */
	test_setup(&mm, &pm, 8 * MiB);
	p = test_alloc(mm, 4 * MiB);
	pattern_fill(p, 4 * MiB, 6);
	CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + 4 * MiB, mm, 10000));
	usvm_pagemap_destroy(pm);
	CHECK(resident(mm, p, 4 * MiB, NULL) == (long)(4 * MiB), "pages left on a destroyed pagemap");
	CHECK_PATTERN(p, 4 * MiB, 6);
	usvm_mm_destroy(mm);

	/* 3. Repeated create/populate/destroy cycles (leaks show under ASan). */
	for (round = 0; round < 10; round++) {
		test_setup(&mm, &pm, 4 * MiB);
		p = test_alloc(mm, 6 * MiB); /* more than the device: evictions */
		pattern_fill(p, 6 * MiB, 7);
		CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + 6 * MiB, mm, 0));
		if (round % 2)
			CHECK(p[round * 12345] == pattern_byte(7, (size_t)round * 12345), "byte");
		usvm_mm_destroy(mm);
		ps = pm_stats(pm);
		CHECK(ps.used_bytes == 0 && ps.live_allocations == 0, "round %d: device memory left",
		      round);
		usvm_pagemap_destroy(pm);
	}

	/* 4. An mm with nothing in it, and one never used with a pagemap. */
	mm = test_mm_create(NULL);
	usvm_mm_destroy(mm);
	usvm_mm_destroy(NULL);
	usvm_pagemap_destroy(NULL);

	printf("ok\n");
	return 0;
}

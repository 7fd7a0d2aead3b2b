// SPDX-License-Identifier: MIT
/*
 * evict: usvm_pagemap_evict() with an address evicts exactly the device
 * allocation holding it (any address inside it, the bytes it held are
 * returned); with NULL it evicts everything.  -ENOENT for an address that is
 * not in this pagemap (in system memory, unmanaged, or in another pagemap).
 * Data stays intact, and eviction ignores timeslices.
 * (hmm-tests: MIGRATE_TO_SYS, drm_gpusvm_range_evict.)
 */
#include <sys/mman.h>
#include "helpers.h"

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm, *pm2;
	struct usvm_pagemap_stats p0, p1;
	uint8_t *a, *b, *c, *d, *unmanaged;
	int local;
	long ev;

	test_init("evict", 60);
	test_setup(&mm, &pm, 32 * MiB);
	pm2 = test_sim_create("sim1", 8 * MiB);

	a = test_alloc(mm, 2 * MiB);
	b = test_alloc(mm, 4 * MiB);  /* two device allocations */
	c = test_alloc(mm, 64 * KiB);
	d = test_alloc(mm, 1 * MiB);  /* goes to the other pagemap */
	pattern_fill(a, 2 * MiB, 1);
	pattern_fill(b, 4 * MiB, 2);
	pattern_fill(c, 64 * KiB, 3);
	pattern_fill(d, 1 * MiB, 4);
	CHECK_OK(usvm_pagemap_populate_mm(pm, a, a + 2 * MiB, mm, 0));
	CHECK_OK(usvm_pagemap_populate_mm(pm, b, b + 4 * MiB, mm, 10000)); /* long timeslice */
	CHECK_OK(usvm_pagemap_populate_mm(pm, c, c + 64 * KiB, mm, 0));
	CHECK_OK(usvm_pagemap_populate_mm(pm2, d, d + 1 * MiB, mm, 0));
	CHECK(pm_stats(pm).live_allocations == 4, "live_allocations %llu",
	      (unsigned long long)pm_stats(pm).live_allocations);

	/* An interior address of a. */
	p0 = pm_stats(pm);
	ev = usvm_pagemap_evict(pm, mm, a + 1234567);
	CHECK(ev == (long)(2 * MiB), "evict(a): %ld", ev);
	p1 = pm_stats(pm);
	CHECK(p1.evictions - p0.evictions == 1, "evictions");
	CHECK(p1.evicted_bytes - p0.evicted_bytes == 2 * MiB, "evicted_bytes");
	CHECK(p1.cpu_fault_migrations == p0.cpu_fault_migrations, "counted as CPU fault");
	CHECK(resident(mm, a, 2 * MiB, NULL) == (long)(2 * MiB), "a not in system memory");
	CHECK(resident(mm, b, 4 * MiB, pm) == (long)(4 * MiB), "b evicted too");
	CHECK(resident(mm, c, 64 * KiB, pm) == (long)(64 * KiB), "c evicted too");

	/* Not on the device (any more): -ENOENT. */
	CHECK_RET(usvm_pagemap_evict(pm, mm, a), -ENOENT);
	CHECK_RET(usvm_pagemap_evict(pm, mm, a + 2 * MiB - 1), -ENOENT);
	/* Held by the other pagemap. */
	CHECK_RET(usvm_pagemap_evict(pm, mm, d), -ENOENT);
	CHECK(resident(mm, d, MiB, pm2) == (long)MiB, "d moved by a foreign evict");
	/* Unmanaged memory: a stack variable, a fresh mapping. */
	CHECK_RET(usvm_pagemap_evict(pm, mm, &local), -ENOENT);
	unmanaged = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(unmanaged != MAP_FAILED, "mmap");
	CHECK_RET(usvm_pagemap_evict(pm, mm, unmanaged), -ENOENT);
	munmap(unmanaged, PAGE);

	/* The second block of b: only that device allocation, despite the timeslice. */
	ev = usvm_pagemap_evict(pm, mm, b + 3 * MiB);
	CHECK(ev == (long)(2 * MiB), "evict(b second block): %ld", ev);
	CHECK(resident(mm, b, 2 * MiB, pm) == (long)(2 * MiB), "b first block evicted too");
	CHECK(resident(mm, b + 2 * MiB, 2 * MiB, NULL) == (long)(2 * MiB), "b second block");
	CHECK_PATTERN_AT(b + 2 * MiB, 2 * MiB, 2, 2 * MiB);
	CHECK(mm_stats(mm).timeslice_waits == 0, "CPU waited on an evicted allocation");

	/* A partially populated allocation: evict returns the bytes it held. */
	CHECK_OK(usvm_pagemap_populate_mm(pm, a + 8 * PAGE, a + 24 * PAGE, mm, 0));
	CHECK_RET(usvm_pagemap_evict(pm, mm, a + 10 * PAGE), 16 * PAGE);

	/* Everything: b's first block and c. */
	ev = usvm_pagemap_evict(pm, mm, NULL);
	CHECK(ev == (long)(2 * MiB + 64 * KiB), "evict(NULL): %ld", ev);
	p1 = pm_stats(pm);
	CHECK(p1.used_bytes == 0 && p1.live_allocations == 0, "device memory left");
	CHECK_RET(usvm_pagemap_evict(pm, mm, NULL), 0);
	CHECK(resident(mm, d, MiB, pm2) == (long)MiB, "evict(NULL) touched the other pagemap");

	/* Without a CPU touch nothing waited or faulted on device memory. */
	CHECK(mm_stats(mm).cpu_faults_devmem == 0, "unexpected device-memory CPU faults");
	CHECK_PATTERN(a, 2 * MiB, 1);
	CHECK_PATTERN(b, 4 * MiB, 2);
	CHECK_PATTERN(c, 64 * KiB, 3);
	CHECK_PATTERN(d, 1 * MiB, 4); /* CPU fault from pm2 */
	CHECK(mm_stats(mm).cpu_faults_devmem >= 1, "d did not fault back");

	/* Eviction then a fresh populate works again. */
	CHECK_OK(usvm_pagemap_populate_mm(pm, a, a + 2 * MiB, mm, 0));
	CHECK_RET(usvm_pagemap_evict(pm, mm, a), 2 * MiB);
	CHECK_PATTERN(a, 2 * MiB, 1);

	usvm_pagemap_stats_print(pm, stdout);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	usvm_pagemap_destroy(pm2);
	printf("ok\n");
	return 0;
}

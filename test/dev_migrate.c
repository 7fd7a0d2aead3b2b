// SPDX-License-Identifier: MIT
/*
 * dev_migrate: device faults with policy ALWAYS migrate the faulting ranges
 * into the device's pagemap, CPU faults bring them back
 * (hmm-tests migrate, migrate_fault, migrate_multiple).
 *
 *   1. A device read migrates every byte (usvm_resident_bytes on the
 *      pagemap == size) and returns the CPU-written data; CPU reads fault
 *      every allocation back and see every byte.
 *   2. migrate_fault: after a CPU read of the first half, a second device
 *      pass finds a mix of system and device pages and migrates the rest.
 *   3. 10 rounds alternating device writes (migrate) and CPU writes (fault
 *      back), checking residency and every byte each time.
 *   4. Odd sizes (not 2 MiB multiples) and usvm_device_prefetch/evict.
 */
#include <string.h>
#include <sys/mman.h>
#include "helpers.h"

static void basic(struct usvm_mm *mm, struct usvm_pagemap *pm, struct usvm_device *d,
		  size_t len, uint64_t seed)
{
	uint8_t *p = test_alloc(mm, len), *host = malloc(len);
	struct usvm_pagemap_stats p0, p1;
	struct usvm_device_stats s0, s1;
	struct usvm_mm_stats m0, m1;
	struct usvm_pagemap *where;
	int round;

	CHECK(host != NULL, "malloc");
	printf("  size %zu\n", len);
	pattern_fill(p, len, seed);
	p0 = pm_stats(pm);
	s0 = dstats(d);

	/* 1. Device access migrates, CPU fault brings back. */
	CHECK_OK(dev_copy(d, p, host, len, PAGE, 0));
	CHECK_PATTERN(host, len, seed);
	CHECK(resident(mm, p, len, pm) == (long)len, "only %ld of %zu bytes on the device",
	      resident(mm, p, len, pm), len);
	CHECK_OK(usvm_where(mm, p + len - 1, &where));
	CHECK(where == pm, "usvm_where says %s", usvm_pagemap_name(where));
	p1 = pm_stats(pm);
	s1 = dstats(d);
	/* Ranges are chunks of the arena region, not of the allocation: a small
	 * allocation migrates with its (untouched) neighbours, as in the kernel. */
	CHECK(p1.pages_migrated_in - p0.pages_migrated_in >= len / PAGE, "pages_migrated_in %llu",
	      (unsigned long long)(p1.pages_migrated_in - p0.pages_migrated_in));
	CHECK(p1.migrations_to_dev > p0.migrations_to_dev, "no migration counted");
	CHECK(s1.migrations_requested > s0.migrations_requested, "migrations_requested");
	CHECK(s1.migration_failures == s0.migration_failures, "migration failures");
	CHECK(s1.bytes_mapped_device - s0.bytes_mapped_device >= len, "bytes_mapped_device");
	CHECK(s1.device_faults > s0.device_faults, "no device fault");

	m0 = mm_stats(mm);
	CHECK_PATTERN(p, len, seed);
	m1 = mm_stats(mm);
	CHECK(resident(mm, p, len, NULL) == (long)len, "CPU read did not bring everything home");
	CHECK(m1.cpu_faults_devmem > m0.cpu_faults_devmem, "no CPU fault on device memory");
	/* Strict on purpose: the migration that let the CPU go on must already
	 * be counted when the CPU access returns. */
	CHECK(m1.migrations_to_ram > m0.migrations_to_ram, "no migration to RAM counted when the "
	      "CPU fault returned (stats updated after uffd_wake?)");

	/* 2. migrate_fault: CPU reads the first half, device pass migrates again. */
	CHECK_OK(dev_copy(d, p, host, len, PAGE, 0));
	CHECK(resident(mm, p, len, pm) == (long)len, "second migration");
	CHECK(pattern_check(p, len / 2, seed) == PATTERN_OK, "first half");
	CHECK(resident(mm, p, len / 2, NULL) >= (long)(len / 2 - 2 * MiB) ,
	      "first half not home");
	memset(host, 0, len);
	CHECK_OK(dev_copy(d, p, host, len, 64 * KiB, 0));
	CHECK_PATTERN(host, len, seed);
	CHECK(resident(mm, p, len, pm) == (long)len, "mixed range not fully migrated: %ld",
	      resident(mm, p, len, pm));
	CHECK_PATTERN(p, len, seed);

	/* 3. migrate_multiple: alternate device and CPU writes. */
	for (round = 0; round < 10; round++) {
		uint64_t sd = seed + 10 + (uint64_t)(2 * round);

		pattern_fill(host, len, sd);
		CHECK_OK(dev_copy(d, p, host, len, round & 1 ? 64 * KiB : PAGE, 1));
		CHECK(resident(mm, p, len, pm) == (long)len, "round %d: device write not migrated",
		      round);
		CHECK(pattern_check(p, len, sd) == PATTERN_OK, "round %d: CPU read after device write",
		      round);
		CHECK(resident(mm, p, len, NULL) == (long)len, "round %d: not home", round);
		pattern_fill(p, len, sd + 1);
		memset(host, 0, len);
		CHECK_OK(dev_copy(d, p, host, len, PAGE, 0));
		CHECK(pattern_check(host, len, sd + 1) == PATTERN_OK,
		      "round %d: device read after CPU write: offset %zu", round,
		      pattern_check(host, len, sd + 1));
		CHECK(resident(mm, p, len, pm) == (long)len, "round %d: device read not migrated",
		      round);
	}
	CHECK_PATTERN(p, len, seed + 29);

	/* 4. Prefetch and evict. */
	CHECK_OK(usvm_device_evict(d, p, len));
	CHECK(resident(mm, p, len, NULL) == (long)len, "usvm_device_evict left device pages");
	CHECK_OK(usvm_device_prefetch(d, p, len));
	CHECK(resident(mm, p, len, pm) == (long)len, "usvm_device_prefetch did not migrate");
	CHECK_OK(usvm_device_evict(d, p, len));
	CHECK(resident(mm, p, len, NULL) == (long)len, "second evict");
	CHECK_PATTERN(p, len, seed + 29);
	s1 = dstats(d);
	CHECK(s1.fatal_faults == 0, "fatal faults");
	CHECK_OK(usvm_free(mm, p));
	free(host);
}

int main(void)
{
	static const size_t sizes[] = { 4 * MiB, PAGE, 100 * KiB, 2 * MiB + 3 * PAGE, 6 * MiB };
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_pagemap_stats ps;
	struct usvm_device *d;
	size_t i;

	test_init("dev_migrate", 60);
	test_setup(&mm, &pm, 32 * MiB);
	d = dev_new(mm, "gpu", pm, USVM_POLICY_ALWAYS, 4);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		basic(mm, pm, d, sizes[i], 100 * (i + 1));
	ps = pm_stats(pm);
	CHECK(ps.used_bytes == 0, "device memory leaked: %llu bytes",
	      (unsigned long long)ps.used_bytes);
	CHECK(ps.evictions == 0, "evictions without memory pressure");
	usvm_device_stats_print(d, stdout);
	usvm_pagemap_stats_print(pm, stdout);
	usvm_device_destroy(d);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

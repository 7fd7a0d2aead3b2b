// SPDX-License-Identifier: MIT
/*
 * dev_mixed: one device range spanning system pages and device pages
 * (hmm-tests migrate_fault's mix, drm_gpusvm allow_mixed mappings).
 *
 * Half of a 2 MiB range (the first half, then every other 64 KiB) is put
 * in the device's pagemap with usvm_pagemap_populate_mm; the rest stays in
 * system memory.
 *   - policy NEVER: the device maps both kinds in place (bytes_mapped_system
 *     and bytes_mapped_device both grow), reads and writes every byte right,
 *     nothing migrates;
 *   - policy ALWAYS: the fault migrates only the missing part
 *     (pages_already_present > 0), everything ends on the device;
 *   - a device without memory (double_map): foreign device pages are
 *     migrated to RAM on its fault, data right.
 */
#include <string.h>
#include <sys/mman.h>
#include "helpers.h"

#define LEN (2 * MiB)

/* Put the chosen halves on the device: stripe 0 = first half, else stripes. */
static void populate_half(struct usvm_mm *mm, struct usvm_pagemap *pm, uint8_t *p, size_t stripe)
{
	size_t off;

	if (!stripe) {
		CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + LEN / 2, mm, 0));
		return;
	}
	for (off = 0; off < LEN; off += 2 * stripe)
		CHECK_OK(usvm_pagemap_populate_mm(pm, p + off, p + off + stripe, mm, 0));
}

static void one(struct usvm_mm *mm, struct usvm_pagemap *pm, int registered, size_t stripe,
		uint64_t seed)
{
	struct usvm_device *never = dev_new(mm, "never", pm, USVM_POLICY_NEVER, 3);
	struct usvm_device *always = dev_new(mm, "always", pm, USVM_POLICY_ALWAYS, 3);
	struct usvm_device *nomem = dev_new(mm, "nomem", NULL, USVM_POLICY_ALWAYS, 3);
	struct usvm_device_stats s0, s1;
	struct usvm_pagemap_stats p0, p1;
	uint8_t *host = malloc(LEN);
	uint8_t *p;
	size_t off;

	CHECK(host != NULL, "malloc");
	printf("  %s memory, %s\n", registered ? "registered" : "managed",
	       stripe ? "64 KiB stripes" : "first half");
	if (registered) {
		p = map_aligned(LEN, USVM_BLOCK_SIZE);
		CHECK_OK(usvm_register(mm, p, LEN));
	} else {
		p = test_alloc(mm, LEN);
	}
	pattern_fill(p, LEN, seed);
	populate_half(mm, pm, p, stripe);
	CHECK(resident(mm, p, LEN, pm) == (long)(LEN / 2), "populate: %ld on device",
	      resident(mm, p, LEN, pm));

	/* 1. NEVER: read in place, both kinds mapped. */
	s0 = dstats(never);
	memset(host, 0, LEN);
	CHECK_OK(dev_copy(never, p, host, LEN, PAGE, 0));
	CHECK_PATTERN(host, LEN, seed);
	s1 = dstats(never);
	CHECK(s1.bytes_mapped_system > s0.bytes_mapped_system, "no system page mapped");
	CHECK(s1.bytes_mapped_device > s0.bytes_mapped_device, "no device page mapped");
	CHECK(s1.migrations_requested == s0.migrations_requested, "policy NEVER asked to migrate");
	CHECK(s1.ranges_created - s0.ranges_created == 1, "one 2 MiB range expected, got %llu",
	      (unsigned long long)(s1.ranges_created - s0.ranges_created));
	CHECK(resident(mm, p, LEN, pm) == (long)(LEN / 2), "residency changed: %ld",
	      resident(mm, p, LEN, pm));

	/* ... and write in place: device pages stay device pages. */
	pattern_fill(host, LEN, seed + 1);
	CHECK_OK(dev_copy(never, p, host, LEN, 3 * PAGE + 1, 1));
	CHECK(resident(mm, p, LEN, pm) == (long)(LEN / 2), "device write moved pages");
	memset(host, 0, LEN);
	CHECK_OK(dev_copy(never, p, host, LEN, 64 * KiB, 0));
	CHECK_PATTERN(host, LEN, seed + 1);
	s1 = dstats(never);
	CHECK(s1.fatal_faults == 0, "fatal faults");

	/* 2. ALWAYS: only the missing half moves. */
	p0 = pm_stats(pm);
	memset(host, 0, LEN);
	CHECK_OK(dev_copy(always, p, host, LEN, PAGE, 0));
	CHECK_PATTERN(host, LEN, seed + 1);
	p1 = pm_stats(pm);
	CHECK(resident(mm, p, LEN, pm) == (long)LEN, "ALWAYS left %ld bytes behind",
	      (long)LEN - resident(mm, p, LEN, pm));
	CHECK(p1.pages_already_present - p0.pages_already_present == LEN / 2 / PAGE,
	      "pages_already_present grew by %llu",
	      (unsigned long long)(p1.pages_already_present - p0.pages_already_present));
	CHECK(p1.pages_migrated_in - p0.pages_migrated_in == LEN / 2 / PAGE,
	      "pages_migrated_in grew by %llu",
	      (unsigned long long)(p1.pages_migrated_in - p0.pages_migrated_in));

	/* 3. A device without memory: device pages come home on its fault. */
	CHECK(pattern_check(p, LEN / 2, seed + 1) == PATTERN_OK, "CPU read of the first half");
	for (off = 0; off < LEN; off += 2 * 64 * KiB) /* back to a mix */
		CHECK_OK(usvm_pagemap_populate_mm(pm, p + off, p + off + 64 * KiB, mm, 0));
	CHECK(resident(mm, p, LEN, pm) > 0 && resident(mm, p, LEN, NULL) > 0, "not a mix");
	memset(host, 0, LEN);
	s0 = dstats(nomem);
	CHECK_OK(dev_copy(nomem, p, host, LEN, PAGE, 0));
	CHECK_PATTERN(host, LEN, seed + 1);
	s1 = dstats(nomem);
	CHECK(resident(mm, p, LEN, NULL) == (long)LEN, "foreign device pages still mapped");
	CHECK(s1.bytes_mapped_device == 0 && s1.bytes_mapped_peer == 0, "device/peer mapping");
	CHECK(s1.bytes_mapped_system - s0.bytes_mapped_system >= LEN, "system mapping");
	CHECK_PATTERN(p, LEN, seed + 1);

	if (registered) {
		CHECK_OK(usvm_unregister(mm, p, LEN));
		CHECK_PATTERN(p, LEN, seed + 1);
		munmap(p, LEN);
	} else {
		CHECK_OK(usvm_free(mm, p));
	}
	usvm_device_destroy(never);
	usvm_device_destroy(always);
	usvm_device_destroy(nomem);
	free(host);
}

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_pagemap_stats ps;
	int reg;

	test_init("dev_mixed", 60);
	test_setup(&mm, &pm, 16 * MiB);
	for (reg = 0; reg < 2; reg++) {
		one(mm, pm, reg, 0, 10 + reg);
		one(mm, pm, reg, 64 * KiB, 20 + reg);
	}
	ps = pm_stats(pm);
	CHECK(ps.used_bytes == 0, "device memory leaked: %llu", (unsigned long long)ps.used_bytes);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * dev_read: device kernels read CPU-written managed memory and see every
 * byte (hmm-tests anon_read, anon_read_multiple, migrate + read back).
 *
 * For each device flavour (no device memory; device memory with policy
 * ALWAYS, ONCE, NEVER) and each memory kind (usvm_alloc, registered mmap):
 *   - the first pages are never touched and read as zeros, the rest holds a
 *     CPU-written pattern; one kernel index per page copies it out;
 *   - reads of unaligned spans that cross page boundaries;
 *   - 10 rounds of CPU writes of new data followed by device reads (the
 *     device must never see the previous round's data).
 * Device statistics: faults > 0, no fatal fault, the mapping kind matches
 * the flavour, ranges_created is what the chunk sizes predict.
 */
#include <string.h>
#include <sys/mman.h>
#include "helpers.h"

#define LEN (4 * MiB)

/* ---- the scenarios ----------------------------------------------------- */

static const char *pol_name(struct usvm_pagemap *pm, enum usvm_migrate_policy pol)
{
	if (!pm)
		return "no-devmem";
	return pol == USVM_POLICY_ALWAYS ? "always" : pol == USVM_POLICY_ONCE ? "once" : "never";
}

static void one(struct usvm_mm *mm, struct usvm_pagemap *pm, enum usvm_migrate_policy pol,
		int registered, uint64_t seed)
{
	const size_t zero_pages = 2;
	struct usvm_device *d = dev_new(mm, "reader", pm, pol, 4);
	struct usvm_device_stats s;
	uint8_t *host = malloc(LEN);
	uint8_t *p;
	size_t off, i;
	int round;

	CHECK(host != NULL, "malloc");
	if (registered) {
		p = map_aligned(LEN, USVM_BLOCK_SIZE);
		CHECK_OK(usvm_register(mm, p, LEN));
	} else {
		p = test_alloc(mm, LEN);
	}
	printf("  %s, %s memory\n", pol_name(pm, pol), registered ? "registered" : "managed");

	/* 1. anon_read: never-touched first pages, then the CPU pattern. */
	pattern_fill_at(p + zero_pages * PAGE, LEN - zero_pages * PAGE, seed, zero_pages * PAGE);
	memset(host, 0xa5, LEN);
	CHECK_OK(dev_copy(d, p, host, LEN, PAGE, 0));
	CHECK_ZERO(host, zero_pages * PAGE);
	CHECK(pattern_check_at(host + zero_pages * PAGE, LEN - zero_pages * PAGE, seed,
			       zero_pages * PAGE) == PATTERN_OK, "device read wrong data");
	s = dstats(d);
	CHECK(s.device_faults > 0, "no device fault");
	CHECK(s.fatal_faults == 0, "fatal faults: %llu", (unsigned long long)s.fatal_faults);
	/* Default chunks: one 2 MiB range per block of the 2 MiB-aligned buffer. */
	CHECK(s.ranges_created == LEN / USVM_BLOCK_SIZE, "ranges_created %llu",
	      (unsigned long long)s.ranges_created);
	CHECK(s.bytes_read >= LEN, "bytes_read %llu", (unsigned long long)s.bytes_read);
	if (!pm || pol == USVM_POLICY_NEVER) {
		CHECK(s.bytes_mapped_system >= LEN, "bytes_mapped_system %llu",
		      (unsigned long long)s.bytes_mapped_system);
		CHECK(s.bytes_mapped_device == 0, "device pages mapped");
		CHECK(s.migrations_requested == 0, "migration asked");
		if (pm)
			CHECK(resident(mm, p, LEN, pm) == 0, "policy NEVER migrated");
	} else {
		CHECK(s.bytes_mapped_device >= LEN, "bytes_mapped_device %llu",
		      (unsigned long long)s.bytes_mapped_device);
		CHECK(s.migrations_requested >= LEN / USVM_BLOCK_SIZE, "migrations_requested");
		CHECK(resident(mm, p, LEN, pm) == (long)LEN, "device read did not migrate: %ld",
		      resident(mm, p, LEN, pm));
	}
	/* The CPU still reads the same (and brings it home if needed). */
	CHECK_ZERO(p, zero_pages * PAGE);
	CHECK(pattern_check_at(p + zero_pages * PAGE, LEN - zero_pages * PAGE, seed,
			       zero_pages * PAGE) == PATTERN_OK, "CPU lost data");

	/* 2. Unaligned spans crossing pages: 1000-byte and 3-page+7 chunks. */
	pattern_fill(p, LEN, seed + 1);
	memset(host, 0, LEN);
	CHECK_OK(dev_copy(d, p, host, LEN, 1000, 0));
	CHECK_PATTERN(host, LEN, seed + 1);
	memset(host, 0, LEN);
	CHECK_OK(dev_copy(d, p + 3, host, LEN - 3 - 5, 3 * PAGE + 7, 0));
	CHECK(pattern_check_at(host, LEN - 8, seed + 1, 3) == PATTERN_OK, "offset read");
	CHECK_ZERO(host + LEN - 8, 8);

	/* 3. anon_read_multiple: the device never sees a previous round's data. */
	for (round = 0; round < 10; round++) {
		uint64_t sd = seed + 100 + (uint64_t)round;

		/* Alternate whole-buffer writes and sparse ones (one word per page). */
		if (round & 1) {
			for (off = 0; off < LEN; off += PAGE)
				for (i = 0; i < PAGE; i += 8)
					pattern_fill_at(p + off + i, 8, sd, off + i);
		} else {
			pattern_fill(p, LEN, sd);
		}
		memset(host, 0, LEN);
		CHECK_OK(dev_copy(d, p, host, LEN, round & 2 ? 64 * KiB : PAGE, 0));
		CHECK(pattern_check(host, LEN, sd) == PATTERN_OK, "round %d: device read stale data "
		      "at offset %zu", round, pattern_check(host, LEN, sd));
		if (pm && pol == USVM_POLICY_ALWAYS)
			CHECK(resident(mm, p, LEN, pm) == (long)LEN, "round %d: not migrated", round);
		if (pm && pol == USVM_POLICY_ONCE)
			CHECK(resident(mm, p, LEN, pm) == 0, "round %d: policy ONCE migrated again",
			      round);
	}
	CHECK_PATTERN(p, LEN, seed + 109);
	s = dstats(d);
	CHECK(s.fatal_faults == 0, "fatal faults: %llu", (unsigned long long)s.fatal_faults);
	if (pm && pol == USVM_POLICY_ALWAYS)
		CHECK(s.invalidations > 0, "CPU writes did not invalidate the device mapping");

	if (registered) {
		CHECK_OK(usvm_unregister(mm, p, LEN));
		CHECK_PATTERN(p, LEN, seed + 109);
		munmap(p, LEN);
	} else {
		CHECK_OK(usvm_free(mm, p));
	}
	usvm_device_destroy(d);
	free(host);
}

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_pagemap_stats ps;
	int reg;

	test_init("dev_read", 60);
	test_setup(&mm, &pm, 16 * MiB);
	for (reg = 0; reg < 2; reg++) {
		one(mm, NULL, USVM_POLICY_ALWAYS, reg, 10 + reg);
		one(mm, pm, USVM_POLICY_ALWAYS, reg, 20 + reg);
		one(mm, pm, USVM_POLICY_ONCE, reg, 30 + reg);
		one(mm, pm, USVM_POLICY_NEVER, reg, 40 + reg);
	}
	ps = pm_stats(pm);
	CHECK(ps.used_bytes == 0, "device memory leaked: %llu bytes",
	      (unsigned long long)ps.used_bytes);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

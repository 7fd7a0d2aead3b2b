// SPDX-License-Identifier: MIT
/*
 * dev_madvise: madvise(MADV_DONTNEED) of memory a device has mapped or
 * migrated (hmm-tests migrate_anon_huge_free; drm_gpusvm REMOVE events).
 *
 * A 4 MiB region is read by a device (its pages migrate with policy
 * ALWAYS, or stay in system memory with a device without memory or with
 * policy NEVER); then part of it is dropped with MADV_DONTNEED.  After
 * that the device reads zeros there (never the stale device copy), the CPU
 * reads zeros there, the rest is intact everywhere, and both can write the
 * dropped part again.  20 rounds with a random dropped span each.
 * Registered memory gets REMOVE events; managed (usvm_alloc) memory must
 * behave the same.
 */
#include <string.h>
#include <sys/mman.h>
#include "helpers.h"

#define LEN (4 * MiB)

/* Expected contents: pattern @seed except zeros in [zs, ze). */
static void check_image(const uint8_t *buf, size_t zs, size_t ze, uint64_t seed, const char *who,
			int round)
{
	size_t bad;

	bad = pattern_check(buf, zs, seed);
	CHECK(bad == PATTERN_OK, "round %d: %s: head byte %zu wrong", round, who, bad);
	bad = zero_check(buf + zs, ze - zs);
	CHECK(bad == PATTERN_OK, "round %d: %s: dropped byte %zu (of [%zu, %zu)) is 0x%02x, not "
	      "zero: stale data after MADV_DONTNEED", round, who, zs + bad, zs, ze, buf[zs + bad]);
	bad = pattern_check_at(buf + ze, LEN - ze, seed, ze);
	CHECK(bad == PATTERN_OK, "round %d: %s: tail byte %zu wrong", round, who, ze + bad);
}

static void one(struct usvm_mm *mm, struct usvm_pagemap *pm, enum usvm_migrate_policy pol,
		int registered, uint64_t seed)
{
	struct usvm_device *d = dev_new(mm, "gpu", pm, pol, 2);
	uint8_t *host = malloc(LEN), *p;
	uint64_t rng = seed * 7 + 1;
	struct usvm_mm_stats m0 = mm_stats(mm), m1;
	int round;

	CHECK(host != NULL, "malloc");
	printf("  %s, %s memory\n", !pm ? "no device memory" : pol == USVM_POLICY_ALWAYS ?
	       "ALWAYS" : "NEVER", registered ? "registered" : "managed");
	if (registered) {
		p = map_aligned(LEN, USVM_BLOCK_SIZE);
		CHECK_OK(usvm_register(mm, p, LEN));
	} else {
		p = test_alloc(mm, LEN);
	}
	for (round = 0; round < 20; round++) {
		uint64_t sd = seed * 100 + (uint64_t)round;
		/* Round 0: the fixed 1 MiB middle of the first range; then random. */
		size_t zs = round ? (size_t)(rng_next(&rng) % (LEN / PAGE)) * PAGE : 1 * MiB;
		size_t ze = round ? zs + (1 + (size_t)(rng_next(&rng) % 256)) * PAGE : 2 * MiB;

		if (ze > LEN)
			ze = LEN;
		pattern_fill(p, LEN, sd);
		memset(host, 0, LEN);
		CHECK_OK(dev_copy(d, p, host, LEN, 64 * KiB, 0));
		CHECK_PATTERN(host, LEN, sd);
		if (pm && pol == USVM_POLICY_ALWAYS)
			CHECK(resident(mm, p, LEN, pm) == (long)LEN, "round %d: not migrated", round);

		CHECK(madvise(p + zs, ze - zs, MADV_DONTNEED) == 0, "madvise");
		/* Device first, then the CPU. */
		memset(host, 0xee, LEN);
		CHECK_OK(dev_copy(d, p, host, LEN, PAGE, 0));
		check_image(host, zs, ze, sd, "device", round);
		check_image(p, zs, ze, sd, "CPU", round);
		/* And the other way round after a second drop of the same span. */
		memset(host, 0, LEN);
		CHECK_OK(dev_copy(d, p, host, LEN, PAGE, 0));
		CHECK(madvise(p + zs, ze - zs, MADV_DONTNEED) == 0, "madvise");
		check_image(p, zs, ze, sd, "CPU first", round);
		memset(host, 0xee, LEN);
		CHECK_OK(dev_copy(d, p, host, LEN, PAGE, 0));
		check_image(host, zs, ze, sd, "device after CPU", round);

		/* The dropped part takes new writes from the device. */
		pattern_fill(host, LEN, sd + 50);
		CHECK_OK(dev_copy(d, p + zs, host + zs, ze - zs, 3 * PAGE, 1));
		CHECK(pattern_check_at(p + zs, ze - zs, sd + 50, zs) == PATTERN_OK,
		      "round %d: device write after DONTNEED", round);
	}
	m1 = mm_stats(mm);
	if (registered)
		CHECK(m1.events_remove > m0.events_remove, "no REMOVE event");
	CHECK(dstats(d).fatal_faults == 0, "fatal faults");
	if (registered) {
		CHECK_OK(usvm_unregister(mm, p, LEN));
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
	struct usvm_caps caps;
	int reg;

	test_init("dev_madvise", 60);
	usvm_probe(&caps);
	if (!caps.feat_event_remove)
		test_skip("no userfaultfd REMOVE events");
	test_setup(&mm, &pm, 16 * MiB);
	for (reg = 1; reg >= 0; reg--) {
		one(mm, NULL, USVM_POLICY_ALWAYS, reg, 1 + reg);
		one(mm, pm, USVM_POLICY_NEVER, reg, 3 + reg);
		one(mm, pm, USVM_POLICY_ALWAYS, reg, 5 + reg);
	}
	usvm_mm_stats_print(mm, stdout);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

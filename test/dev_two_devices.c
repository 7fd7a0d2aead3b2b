// SPDX-License-Identifier: MIT
/*
 * dev_two_devices: two devices over one mm (hmm-tests double_map,
 * migrate_mixed between dev0 and dev1; drm_pagemap peer access).
 *
 *   1. Own pagemaps, different chunk views ({2M,64K,4K} and {64K,4K}),
 *      policy ALWAYS: 10 rounds of A writes / B reads / B writes / A reads
 *      / CPU checks; each write leaves every page in the writer's memory
 *      (pages move device to device: pages_from_peer grows).
 *   2. Peer access: B (peer_access=1, policy NEVER) maps pages living in A's
 *      memory in place (bytes_mapped_peer > 0, residency unchanged), reads
 *      and writes them; A and the CPU see B's writes.  Without peer access
 *      the same accesses bring the pages to system memory instead.
 *   3. Two devices sharing ONE pagemap (different chunk views): the second
 *      device maps the first one's device pages as its own, nothing moves.
 */
#include <string.h>
#include <sys/mman.h>
#include "helpers.h"

#define LEN (4 * MiB)

static struct usvm_device *mk(struct usvm_mm *mm, const char *name, struct usvm_pagemap *pm,
			      enum usvm_migrate_policy pol, int peer, size_t c0, size_t c1, size_t c2)
{
	struct usvm_device_options o = { .name = name, .pagemap = pm, .policy = pol,
					 .peer_access = peer, .threads = 3,
					 .chunk_sizes = { c0, c1, c2, 0 } };
	struct usvm_device *d = NULL;

	CHECK_OK(usvm_device_create(mm, &o, &d));
	return d;
}

static void dev_write_pattern(struct usvm_device *d, uint8_t *p, uint8_t *host, uint64_t seed,
			      size_t chunk)
{
	pattern_fill(host, LEN, seed);
	CHECK_OK(dev_copy(d, p, host, LEN, chunk, 1));
}

static void dev_check_pattern(struct usvm_device *d, uint8_t *p, uint8_t *host, uint64_t seed,
			      size_t chunk, const char *what, int round)
{
	size_t bad;

	memset(host, 0, LEN);
	CHECK_OK(dev_copy(d, p, host, LEN, chunk, 0));
	bad = pattern_check(host, LEN, seed);
	CHECK(bad == PATTERN_OK, "round %d: %s read wrong data at offset %zu", round, what, bad);
}

/* 1. Alternating writers with their own memories. */
static void alternate(struct usvm_mm *mm, struct usvm_pagemap *pa, struct usvm_pagemap *pb,
		      uint8_t *p, uint8_t *host)
{
	struct usvm_device *a = mk(mm, "A", pa, USVM_POLICY_ALWAYS, 0, 2 * MiB, 64 * KiB, 4 * KiB);
	struct usvm_device *b = mk(mm, "B", pb, USVM_POLICY_ALWAYS, 0, 64 * KiB, 4 * KiB, 0);
	struct usvm_pagemap_stats s0 = pm_stats(pb), s1;
	int round;

	printf("  alternating writers, own memories\n");
	for (round = 0; round < 10; round++) {
		uint64_t sd = 100 + 3 * (uint64_t)round;

		dev_write_pattern(a, p, host, sd, round & 1 ? PAGE : 64 * KiB);
		CHECK(resident(mm, p, LEN, pa) == (long)LEN, "round %d: A's write not in A", round);
		dev_check_pattern(b, p, host, sd, PAGE, "B", round);
		CHECK(resident(mm, p, LEN, pb) == (long)LEN, "round %d: B's read not in B", round);
		dev_write_pattern(b, p, host, sd + 1, 3 * PAGE);
		dev_check_pattern(a, p, host, sd + 1, PAGE, "A", round);
		CHECK(resident(mm, p, LEN, pa) == (long)LEN, "round %d: not back in A", round);
		CHECK(pattern_check(p, LEN, sd + 1) == PATTERN_OK, "round %d: CPU", round);
		pattern_fill(p, LEN, sd + 2);
		dev_check_pattern(b, p, host, sd + 2, 64 * KiB, "B after CPU", round);
	}
	s1 = pm_stats(pb);
	CHECK(s1.pages_from_peer > s0.pages_from_peer, "no page moved device to device");
	CHECK(dstats(a).fatal_faults + dstats(b).fatal_faults == 0, "fatal faults");
	CHECK(dstats(b).ranges_created > dstats(a).ranges_created, "chunk views not different");
	usvm_device_destroy(a);
	usvm_device_destroy(b);
}

/* 2. Peer access. */
static void peer(struct usvm_mm *mm, struct usvm_pagemap *pa, struct usvm_pagemap *pb,
		 uint8_t *p, uint8_t *host)
{
	struct usvm_device *a = mk(mm, "A", pa, USVM_POLICY_ALWAYS, 0, 0, 0, 0);
	struct usvm_device *bp = mk(mm, "Bpeer", pb, USVM_POLICY_NEVER, 1, 64 * KiB, 4 * KiB, 0);
	struct usvm_device *bn = mk(mm, "Bnopeer", pb, USVM_POLICY_NEVER, 0, 64 * KiB, 4 * KiB, 0);
	struct usvm_device_stats s0, s1;

	printf("  peer access\n");
	dev_write_pattern(a, p, host, 200, 64 * KiB);
	CHECK(resident(mm, p, LEN, pa) == (long)LEN, "A's write not in A");

	s0 = dstats(bp);
	dev_check_pattern(bp, p, host, 200, PAGE, "B (peer)", 0);
	s1 = dstats(bp);
	CHECK(s1.bytes_mapped_peer - s0.bytes_mapped_peer >= LEN, "bytes_mapped_peer grew by %llu",
	      (unsigned long long)(s1.bytes_mapped_peer - s0.bytes_mapped_peer));
	CHECK(s1.bytes_mapped_system == s0.bytes_mapped_system, "peer pages mapped as system");
	CHECK(resident(mm, p, LEN, pa) == (long)LEN, "peer read moved pages");
	/* Peer writes land in A's memory; A and the CPU see them. */
	dev_write_pattern(bp, p, host, 201, PAGE);
	CHECK(resident(mm, p, LEN, pa) == (long)LEN, "peer write moved pages");
	dev_check_pattern(a, p, host, 201, 64 * KiB, "A after peer write", 0);
	CHECK_PATTERN(p, LEN, 201);

	/* Without peer access: the pages go to system memory on B's faults. */
	dev_write_pattern(a, p, host, 202, 64 * KiB);
	CHECK(resident(mm, p, LEN, pa) == (long)LEN, "A's write not in A");
	s0 = dstats(bn);
	dev_check_pattern(bn, p, host, 202, PAGE, "B (no peer)", 0);
	s1 = dstats(bn);
	CHECK(s1.bytes_mapped_peer == 0, "peer mapping without peer access");
	CHECK(s1.bytes_mapped_system - s0.bytes_mapped_system >= LEN, "system mapping");
	CHECK(resident(mm, p, LEN, NULL) == (long)LEN, "foreign pages not brought home");
	CHECK_PATTERN(p, LEN, 202);
	CHECK(dstats(a).fatal_faults + dstats(bp).fatal_faults + dstats(bn).fatal_faults == 0,
	      "fatal faults");
	usvm_device_destroy(a);
	usvm_device_destroy(bp);
	usvm_device_destroy(bn);
}

/* 3. One pagemap, two devices. */
static void shared(struct usvm_mm *mm, struct usvm_pagemap *ps, uint8_t *p, uint8_t *host)
{
	struct usvm_device *c = mk(mm, "C", ps, USVM_POLICY_ALWAYS, 0, 2 * MiB, 64 * KiB, 4 * KiB);
	struct usvm_device *d = mk(mm, "D", ps, USVM_POLICY_ALWAYS, 0, 64 * KiB, 4 * KiB, 0);
	struct usvm_pagemap_stats p0, p1;
	struct usvm_device_stats s0, s1;
	int round;

	printf("  one shared pagemap\n");
	for (round = 0; round < 5; round++) {
		uint64_t sd = 300 + 2 * (uint64_t)round;

		dev_write_pattern(c, p, host, sd, 64 * KiB);
		CHECK(resident(mm, p, LEN, ps) == (long)LEN, "C's write not in the pagemap");
		p0 = pm_stats(ps);
		s0 = dstats(d);
		dev_check_pattern(d, p, host, sd, PAGE, "D", round);
		p1 = pm_stats(ps);
		s1 = dstats(d);
		CHECK(p1.migrations_to_dev == p0.migrations_to_dev &&
		      p1.migrations_to_ram == p0.migrations_to_ram,
		      "round %d: D's read moved pages of its own pagemap", round);
		CHECK(s1.bytes_mapped_device - s0.bytes_mapped_device >= LEN,
		      "round %d: D did not map the shared device pages", round);
		p0 = p1;
		dev_write_pattern(d, p, host, sd + 1, 3 * PAGE);
		dev_check_pattern(c, p, host, sd + 1, PAGE, "C", round);
		p1 = pm_stats(ps);
		CHECK(p1.migrations_to_dev == p0.migrations_to_dev, "round %d: shared pages moved",
		      round);
		CHECK(resident(mm, p, LEN, ps) == (long)LEN, "round %d: left the pagemap", round);
		CHECK(pattern_check(p, LEN, sd + 1) == PATTERN_OK, "round %d: CPU", round);
	}
	CHECK(dstats(c).fatal_faults + dstats(d).fatal_faults == 0, "fatal faults");
	usvm_device_destroy(c);
	usvm_device_destroy(d);
}

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pa, *pb, *ps;
	uint8_t *host = malloc(LEN), *p, *q;

	test_init("dev_two_devices", 60);
	CHECK(host != NULL, "malloc");
	mm = test_mm_create(NULL);
	pa = test_sim_create("vramA", 16 * MiB);
	pb = test_sim_create("vramB", 16 * MiB);
	ps = test_sim_create("shared", 16 * MiB);

	p = test_alloc(mm, LEN);
	alternate(mm, pa, pb, p, host);
	peer(mm, pa, pb, p, host);
	shared(mm, ps, p, host);
	CHECK_OK(usvm_free(mm, p));

	q = map_aligned(LEN, USVM_BLOCK_SIZE);
	CHECK_OK(usvm_register(mm, q, LEN));
	alternate(mm, pa, pb, q, host);
	peer(mm, pa, pb, q, host);
	shared(mm, ps, q, host);
	CHECK_OK(usvm_unregister(mm, q, LEN));
	munmap(q, LEN);

	usvm_pagemap_stats_print(pb, stdout);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pa);
	usvm_pagemap_destroy(pb);
	usvm_pagemap_destroy(ps);
	free(host);
	printf("ok\n");
	return 0;
}

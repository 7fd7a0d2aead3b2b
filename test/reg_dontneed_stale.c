// SPDX-License-Identifier: MIT
/*
 * reg_dontneed_stale: memory dropped with madvise(MADV_DONTNEED) (or
 * unmapped) while its pages sit in device memory must never show its old
 * contents again.
 *
 * Reported: 2 MiB populated into device memory, then a page-aligned span
 * dropped with MADV_DONTNEED; reading the span back on the CPU returns the
 * old pattern within tens to hundreds of rounds instead of zeros.  madvise()
 * returns as soon as a fault thread has *read* the REMOVE event; a CPU fault
 * on the span, served by another fault thread before the event is handled,
 * migrates the stale device copy back (and the late REMOVE handling then
 * finds nothing to drop).
 *
 * Variants, each up to 2000 rounds or about 2.5 s (about 15 s in all):
 *   - registered (mmap'd) memory, read back by the CPU;
 *   - managed (usvm_alloc) memory, read back by the CPU;
 *   - both again with the range populated as 32 device allocations of
 *     64 KiB each, one dropped span per allocation: 32 attempts per pass
 *     over the data, so the race shows up in far fewer rounds;
 *   - both kinds read back by a device on the same pagemap (then the CPU);
 *   - munmap: a populated registered range is unmapped, new anonymous
 *     memory is mapped at the same address and registered at once: the
 *     registration must succeed and the new memory must read as zeros.
 * Every byte of the range is checked each round: zeros in the dropped
 * span, the pattern everywhere else.
 */
#include <string.h>
#include <sys/mman.h>
#include "helpers.h"

#define LEN (2 * MiB)
#define MAX_ROUNDS 2000
#define BUDGET_NS 2500000000ull /* per variant */

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

/*
 * @buf: what @who read of the @len bytes at pattern offset @base: pattern
 * @seed except zeros in [zs, ze) (offsets within @buf).  The dropped span
 * is checked first.
 */
static void check_image(const uint8_t *buf, size_t len, size_t base, size_t zs, size_t ze,
			uint64_t seed, const char *variant, const char *who, int round)
{
	size_t bad;

	bad = zero_check(buf + zs, ze - zs);
	CHECK(bad == PATTERN_OK, "%s, round %d: %s read byte %zu of the dropped span [%zu, %zu) "
	      "as 0x%02x, not zero (the old pattern byte is 0x%02x): stale data after "
	      "MADV_DONTNEED", variant, round, who, base + zs + bad, base + zs, base + ze,
	      buf[zs + bad], pattern_byte(seed, base + zs + bad));
	bad = pattern_check_at(buf, zs, seed, base);
	CHECK(bad == PATTERN_OK, "%s, round %d: %s: byte %zu before the span is 0x%02x, "
	      "expected 0x%02x", variant, round, who, base + bad, buf[bad],
	      pattern_byte(seed, base + bad));
	bad = pattern_check_at(buf + ze, len - ze, seed, base + ze);
	CHECK(bad == PATTERN_OK, "%s, round %d: %s: byte %zu after the span is 0x%02x, "
	      "expected 0x%02x", variant, round, who, base + ze + bad, buf[ze + bad],
	      pattern_byte(seed, base + ze + bad));
}

/*
 * Each round: pattern over the whole range, populate all of it (one call per
 * @piece bytes, so each piece is one device allocation), then per piece:
 * drop a random page-aligned span of it and read the piece back at once
 * (by the CPU, or by a device and then the CPU).  With 64 KiB pieces a
 * round makes 32 drop-and-read attempts for one pass over the data.
 */
static void dontneed_rounds(struct usvm_mm *mm, struct usvm_pagemap *pm, int registered,
			    size_t piece, int by_device, uint64_t seed0, uint64_t budget_ns)
{
	char variant[96];
	struct usvm_device *dev = NULL;
	uint8_t *p, *host = NULL;
	uint64_t rng = seed0 * 0x9E37 + 11, t0 = now_ns();
	size_t off;
	int round;

	snprintf(variant, sizeof(variant), "%s memory, %zu KiB device allocations, %s read",
		 registered ? "registered" : "managed", piece / KiB, by_device ? "device" : "CPU");
	if (registered) {
		p = map_aligned(LEN, USVM_BLOCK_SIZE);
		CHECK_OK(usvm_register(mm, p, LEN));
	} else {
		p = test_alloc(mm, LEN);
	}
	CHECK(((uintptr_t)p & (USVM_BLOCK_SIZE - 1)) == 0, "range %p not 2 MiB aligned", (void *)p);
	if (by_device) {
		dev = dev_new(mm, "gpu", pm, USVM_POLICY_ALWAYS, 2);
		host = malloc(piece);
		CHECK(host != NULL, "malloc");
	}
	for (round = 0; round < MAX_ROUNDS && now_ns() - t0 < budget_ns; round++) {
		uint64_t seed = seed0 * 100000 + (uint64_t)round;

		pattern_fill(p, LEN, seed);
		for (off = 0; off < LEN; off += piece)
			CHECK_OK(usvm_pagemap_populate_mm(pm, p + off, p + off + piece, mm, 0));
		CHECK(resident(mm, p, LEN, pm) == (long)LEN, "%s, round %d: populate left pages "
		      "in system memory (test premise)", variant, round);
		for (off = 0; off < LEN; off += piece) {
			size_t zs = (size_t)(rng_next(&rng) % (piece / PAGE)) * PAGE;
			size_t ze = zs + (1 + (size_t)(rng_next(&rng) % (piece / PAGE))) * PAGE;

			if (ze > piece)
				ze = piece;
			CHECK(madvise(p + off + zs, ze - zs, MADV_DONTNEED) == 0, "madvise: %s",
			      strerror(errno));
			if (by_device) {
				memset(host, 0xa5, piece);
				CHECK_OK(usvm_device_read(dev, p + off, host, piece));
				check_image(host, piece, off, zs, ze, seed, variant, "device",
					    round);
			}
			/* The CPU reads the dropped span first: the reported access. */
			check_image(p + off, piece, off, zs, ze, seed, variant,
				    by_device ? "CPU (after the device)" : "CPU", round);
		}
	}
	printf("  %s: %d rounds, no stale data\n", variant, round);
	if (dev)
		usvm_device_destroy(dev);
	free(host);
	if (registered) {
		CHECK_OK(usvm_unregister(mm, p, LEN));
		CHECK(munmap(p, LEN) == 0, "munmap");
	} else {
		CHECK_OK(usvm_free(mm, p));
	}
}

/* munmap a populated registered range, map and register new memory there. */
static void munmap_rounds(struct usvm_mm *mm, struct usvm_pagemap *pm)
{
	uint8_t *p = map_aligned(LEN, USVM_BLOCK_SIZE);
	uint64_t t0 = now_ns();
	int round, err;

	CHECK_OK(usvm_register(mm, p, LEN));
	for (round = 0; round < MAX_ROUNDS && now_ns() - t0 < BUDGET_NS; round++) {
		uint64_t seed = 900000 + (uint64_t)round;
		void *q;
		size_t bad;

		pattern_fill(p, LEN, seed);
		CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + LEN, mm, 0));
		CHECK(resident(mm, p, LEN, pm) == (long)LEN, "munmap, round %d: populate left "
		      "pages in system memory (test premise)", round);
		CHECK(munmap(p, LEN) == 0, "munmap: %s", strerror(errno));
		q = mmap(p, LEN, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		CHECK(q == p, "munmap, round %d: cannot map %p again (%p: %s)", round, (void *)p,
		      q, strerror(errno));
		err = usvm_register(mm, p, LEN);
		CHECK(err == 0, "munmap, round %d: usvm_register of new memory at the address of "
		      "an unmapped registered range: %d (%s)", round, err, usvm_strerror(err));
		bad = zero_check(p, LEN);
		CHECK(bad == PATTERN_OK, "munmap, round %d: new memory byte %zu is 0x%02x, not "
		      "zero (the old pattern byte is 0x%02x)", round, bad, p[bad],
		      pattern_byte(seed, bad));
	}
	printf("  munmap + mmap + register: %d rounds\n", round);
	CHECK_OK(usvm_unregister(mm, p, LEN));
	CHECK(munmap(p, LEN) == 0, "munmap");
}

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_caps caps;

	test_init("reg_dontneed_stale", 120);
	usvm_probe(&caps);
	if (!caps.feat_event_remove || !caps.feat_event_unmap)
		test_skip("no userfaultfd REMOVE/UNMAP events");
	test_setup(&mm, &pm, 16 * MiB);
	/* The reported case first: one 2 MiB device allocation, CPU reads. */
	dontneed_rounds(mm, pm, 1, LEN, 0, 1, BUDGET_NS);
	dontneed_rounds(mm, pm, 0, LEN, 0, 2, BUDGET_NS);
	dontneed_rounds(mm, pm, 1, 64 * KiB, 0, 3, BUDGET_NS);
	dontneed_rounds(mm, pm, 0, 64 * KiB, 0, 4, BUDGET_NS);
	dontneed_rounds(mm, pm, 1, LEN, 1, 5, BUDGET_NS / 2);
	dontneed_rounds(mm, pm, 0, LEN, 1, 6, BUDGET_NS / 2);
	munmap_rounds(mm, pm);
	usvm_mm_stats_print(mm, stdout);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

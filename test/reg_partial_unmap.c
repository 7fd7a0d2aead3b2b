// SPDX-License-Identifier: MIT
/*
 * reg_partial_unmap: munmap of the middle (or an end) of a registered range
 * whose pages are in device memory.  The rest keeps every byte, on the CPU
 * and on a device, its device pages staying there (except in a block the
 * hole cuts through, where an allocation on both sides comes home);
 * the freed addresses can be mapped and registered again (the model test
 * found them tracked forever, so usvm_register there failed with -EEXIST);
 * unregistering what is left works piece by piece.
 */
#include <sys/mman.h>
#include "helpers.h"

#define LEN (6 * MiB)

static void one(struct usvm_mm *mm, struct usvm_pagemap *pm, size_t hs, size_t he, uint64_t seed)
{
	struct usvm_device *d = dev_new(mm, "gpu", pm, USVM_POLICY_NEVER, 2);
	uint8_t *p = map_aligned(LEN, USVM_BLOCK_SIZE), *q, *host = malloc(LEN);
	size_t hs_blk = hs & ~(USVM_BLOCK_SIZE - 1);
	size_t he_blk = (he + USVM_BLOCK_SIZE - 1) & ~(USVM_BLOCK_SIZE - 1);

	printf("  hole [%zu KiB, %zu KiB)\n", hs >> 10, he >> 10);
	CHECK(host != NULL, "malloc");
	CHECK_OK(usvm_register(mm, p, LEN));
	pattern_fill(p, LEN, seed);
	/* Device pages on both sides of the hole and inside it. */
	CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + LEN, mm, 0));
	CHECK(munmap(p + hs, he - hs) == 0, "munmap");
	/* The freed addresses are ordinary memory again: map and register. */
	q = mmap(p + hs, he - hs, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	CHECK(q == p + hs, "mmap at the hole: %p", (void *)q);
	CHECK_OK(usvm_register(mm, q, he - hs));
	CHECK_ZERO(q, he - hs);
	pattern_fill(q, he - hs, seed + 1);
	/* What is left is still managed, and still in device memory outside
	 * the blocks the hole touches (a device allocation with pages on both
	 * sides of a hole inside one block comes home first). */
	if (hs_blk)
		CHECK(resident(mm, p, hs_blk, pm) == (long)hs_blk, "head not in device memory");
	if (he_blk < LEN)
		CHECK(resident(mm, p + he_blk, LEN - he_blk, pm) == (long)(LEN - he_blk),
		      "tail not in device memory");
	CHECK_OK(dev_copy(d, p, host, hs, 64 * KiB, 0));
	CHECK_PATTERN(host, hs, seed);
	CHECK_OK(dev_copy(d, p + he, host, LEN - he, 64 * KiB, 0));
	CHECK_PATTERN_AT(host, LEN - he, seed, he);
	CHECK_PATTERN(p, hs, seed);
	CHECK_PATTERN_AT(p + he, LEN - he, seed, he);
	CHECK_PATTERN(q, he - hs, seed + 1);
	/* Piece by piece. */
	if (hs)
		CHECK_OK(usvm_unregister(mm, p, hs));
	if (he < LEN)
		CHECK_OK(usvm_unregister(mm, p + he, LEN - he));
	CHECK_OK(usvm_unregister(mm, q, he - hs));
	CHECK_PATTERN(p, hs, seed);
	CHECK_PATTERN_AT(p + he, LEN - he, seed, he);
	usvm_device_destroy(d);
	munmap(p, LEN);
	free(host);
}

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;

	test_init("reg_partial_unmap", 60);
	test_setup(&mm, &pm, 64 * MiB);
	one(mm, pm, 1 * MiB, 3 * MiB + 64 * KiB, 1);             /* middle, across blocks */
	one(mm, pm, 2 * MiB + 8 * KiB, 2 * MiB + 72 * KiB, 2);   /* middle, inside a block */
	one(mm, pm, 0, 512 * KiB, 3);                            /* the head */
	one(mm, pm, LEN - 256 * KiB, LEN, 4);                    /* the tail */
	usvm_mm_stats_print(mm, stdout);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

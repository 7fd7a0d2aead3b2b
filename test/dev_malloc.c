// SPDX-License-Identifier: MIT
/*
 * dev_malloc: the system allocator case: devices use plain malloc'd and
 * mmap'd memory adopted with usvm_register, which the program later frees
 * while the device still has it mapped.
 *
 *   1. Page-aligned malloc memory (small: from the heap; large: mmap'd by
 *      the allocator), registered; a device (with memory, policy ALWAYS, and
 *      without memory) reads the CPU's data and writes new data the CPU
 *      sees.  usvm_unregister brings every byte home; after free() device
 *      accesses to the old address fail with -EFAULT (no stale data); a new
 *      allocation (often at the same address) is registered and the device
 *      sees its new contents.
 *   2. An mmap'd region is munmapped as a whole while the device has it
 *      mapped (half of it in device memory): device accesses fail with
 *      -EFAULT; new memory mapped at the same address is registered and the
 *      device reads its contents (zeros, then new data), never the old.
 *   3. 50 cycles of malloc (random sizes), register, device write, CPU check,
 *      device read, unregister, free.
 *   4. usvm_register refuses unaligned memory (-EINVAL).
 */
#include <string.h>
#include <sys/mman.h>
#include "helpers.h"

static void expect_efault(struct usvm_device *d, void *addr, const char *what)
{
	uint8_t b[32];
	int err = usvm_device_read(d, addr, b, sizeof(b));

	CHECK(err == -EFAULT, "%s: device read of %p: %d (%s), expected -EFAULT", what, addr,
	      err, usvm_strerror(err));
}

/* 1. Register, use from the device, unregister, free, reuse. */
static void malloc_cycle(struct usvm_mm *mm, struct usvm_device *d, struct usvm_pagemap *pm,
			 size_t len, uint64_t seed)
{
	uint8_t *p = aligned_alloc(PAGE, len), *q, *host = malloc(len);
	struct usvm_device_stats s0, s1;
	volatile uintptr_t old; /* hides the freed pointer from -Wuse-after-free */

	CHECK(p && host, "malloc %zu", len);
	printf("  malloc %zu KiB at %p, %s\n", len / KiB, (void *)p,
	       pm ? "device memory" : "no device memory");
	pattern_fill(p, len, seed);             /* written before registration */
	CHECK_OK(usvm_register(mm, p, len));
	CHECK_PATTERN(p, len, seed);             /* still there after it */
	memset(host, 0, len);
	CHECK_OK(dev_copy(d, p, host, len, PAGE, 0));
	CHECK_PATTERN(host, len, seed);
	if (pm)
		CHECK(resident(mm, p, len, pm) == (long)len, "not migrated");
	pattern_fill(host, len, seed + 1);
	CHECK_OK(dev_copy(d, p, host, len, 3 * PAGE, 1));
	CHECK_PATTERN(p, len, seed + 1);
	/* Device writes again, then unregister: every byte comes home. */
	pattern_fill(host, len, seed + 2);
	CHECK_OK(dev_copy(d, p, host, len, 64 * KiB, 1));
	CHECK_OK(usvm_unregister(mm, p, len));
	CHECK_PATTERN(p, len, seed + 2);
	s0 = dstats(d);
	old = (uintptr_t)p;
	free(p);
	expect_efault(d, (void *)old, "freed malloc memory");
	expect_efault(d, (void *)(old + len - 1), "freed malloc memory (end)");
	s1 = dstats(d);
	CHECK(s1.fatal_faults - s0.fatal_faults == 2, "fatal_faults");

	/* A new allocation of the same size, maybe at the same address. */
	q = aligned_alloc(PAGE, len);
	CHECK(q != NULL, "malloc");
	pattern_fill(q, len, seed + 3);
	CHECK_OK(usvm_register(mm, q, len));
	memset(host, 0, len);
	CHECK_OK(dev_copy(d, q, host, len, PAGE, 0));
	CHECK(pattern_check(host, len, seed + 3) == PATTERN_OK, "new allocation%s: device read "
	      "stale data at offset %zu", (uintptr_t)q == old ? " at the same address" : "",
	      pattern_check(host, len, seed + 3));
	CHECK_OK(usvm_unregister(mm, q, len));
	CHECK_PATTERN(q, len, seed + 3);
	free(q);
	free(host);
}

/* 2. munmap of a whole registered region the device has mapped. */
static void munmap_whole(struct usvm_mm *mm, struct usvm_device *d, struct usvm_pagemap *pm,
			 uint64_t seed)
{
	const size_t len = 4 * MiB;
	uint8_t *p = map_aligned(len, USVM_BLOCK_SIZE), *q, *host = malloc(len);
	struct usvm_mm_stats m0, m1;

	CHECK(host != NULL, "malloc");
	printf("  munmap of a whole mapped region, %s\n", pm ? "device memory" : "no device memory");
	CHECK_OK(usvm_register(mm, p, len));
	pattern_fill(p, len, seed);
	CHECK_OK(dev_copy(d, p, host, len, PAGE, 0));
	CHECK_PATTERN(host, len, seed);
	/* Second half back in system memory: a mix at munmap time. */
	CHECK(pattern_check_at(p + len / 2, len / 2, seed, len / 2) == PATTERN_OK, "CPU read");
	m0 = mm_stats(mm);
	CHECK(munmap(p, len) == 0, "munmap");
	expect_efault(d, p, "munmapped region");
	expect_efault(d, p + len / 2 + PAGE, "munmapped region (system half)");
	expect_efault(d, p + len - 8, "munmapped region (end)");
	m1 = mm_stats(mm);
	CHECK(m1.events_unmap > m0.events_unmap, "no munmap event");
	CHECK(m1.registered_ranges == m0.registered_ranges - 1,
	      "region not forgotten: %llu registered ranges", (unsigned long long)m1.registered_ranges);
	if (pm)
		CHECK(pm_stats(pm).used_bytes == 0, "device memory of an unmapped region not freed: "
		      "%llu bytes", (unsigned long long)pm_stats(pm).used_bytes);

	/* New memory at the same address. */
	q = mmap(p, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		 -1, 0);
	CHECK(q == p, "mmap at the old address: %p", (void *)q);
	CHECK_OK(usvm_register(mm, q, len));
	memset(host, 0xee, len);
	CHECK_OK(dev_copy(d, q, host, len, PAGE, 0));
	CHECK(zero_check(host, len) == PATTERN_OK, "new memory at a reused address: device read "
	      "stale data at offset %zu", zero_check(host, len));
	CHECK_ZERO(q, len);
	pattern_fill(q, len, seed + 1);
	memset(host, 0, len);
	CHECK_OK(dev_copy(d, q, host, len, PAGE, 0));
	CHECK_PATTERN(host, len, seed + 1);
	CHECK_OK(usvm_unregister(mm, q, len));
	CHECK_PATTERN(q, len, seed + 1);
	munmap(q, len);
	free(host);
}

/* 3. Many short-lived allocations. */
static void churn(struct usvm_mm *mm, struct usvm_device *d)
{
	uint64_t rng = 99;
	int i;

	for (i = 0; i < 50; i++) {
		size_t len = (1 + (size_t)(rng_next(&rng) % 64)) * PAGE;
		uint8_t *p = aligned_alloc(PAGE, len), *host = malloc(len);

		CHECK(p && host, "malloc");
		memset(p, 0x11, len);
		CHECK_OK(usvm_register(mm, p, len));
		pattern_fill(host, len, 1000 + (uint64_t)i);
		CHECK_OK(dev_copy(d, p, host, len, PAGE, 1));
		CHECK(pattern_check(p, len, 1000 + (uint64_t)i) == PATTERN_OK, "churn %d", i);
		memset(host, 0, len);
		CHECK_OK(dev_copy(d, p, host, len, 2 * PAGE, 0));
		CHECK(pattern_check(host, len, 1000 + (uint64_t)i) == PATTERN_OK, "churn %d read", i);
		CHECK_OK(usvm_unregister(mm, p, len));
		free(p);
		free(host);
	}
}

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_device *dd, *ds;
	struct usvm_caps caps;
	uint8_t *u;

	test_init("dev_malloc", 60);
	usvm_probe(&caps);
	test_setup(&mm, &pm, 32 * MiB);
	dd = dev_new(mm, "devmem", pm, USVM_POLICY_ALWAYS, 2);
	ds = dev_new(mm, "sysmem", NULL, USVM_POLICY_ALWAYS, 2);

	malloc_cycle(mm, dd, pm, 3 * PAGE, 1);
	malloc_cycle(mm, dd, pm, 4 * MiB, 2);
	malloc_cycle(mm, ds, NULL, 64 * KiB, 3);
	malloc_cycle(mm, ds, NULL, 4 * MiB, 4);
	if (caps.feat_event_unmap) {
		munmap_whole(mm, dd, pm, 5);
		munmap_whole(mm, ds, NULL, 6);
	} else {
		printf("  no munmap events: munmap part skipped\n");
	}
	churn(mm, dd);
	churn(mm, ds);

	u = malloc(3 * PAGE);
	CHECK(u != NULL, "malloc");
	CHECK_RET(usvm_register(mm, (uint8_t *)((((uintptr_t)u) | 1)), PAGE), -EINVAL);
	free(u);

	CHECK(pm_stats(pm).used_bytes == 0, "device memory leaked");
	CHECK(mm_stats(mm).registered_ranges == 0, "registered ranges left");
	usvm_device_destroy(dd);
	usvm_device_destroy(ds);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

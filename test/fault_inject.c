// SPDX-License-Identifier: MIT
/*
 * fault_inject: what usvm promises when a backend or the kernel says no
 * (USVM_FAULT_INJECT, see src/util/inject.h), checked byte by byte:
 *  - copy_to_devmem always failing: populate returns -EIO, nothing moves,
 *    every byte stays readable in system memory;
 *  - devmem_alloc always failing: populate returns -ENOMEM; a device falls
 *    back to system memory and reads the right bytes;
 *  - copy_to_ram failing half the time: CPU faults on device memory still
 *    complete with the right bytes (retried), eviction and unbind bring
 *    everything home;
 *  - userfaultfd ioctls failing with -EAGAIN a third of the time: populate,
 *    faults, free and madvise all still do the right thing.
 */
#include <sys/mman.h>
#include "helpers.h"
#include "inject.h"

#define LEN (4 * MiB)

static void inject(const char *spec)
{
	CHECK(usvm_inject_configure(spec) == 0, "bad spec %s", spec);
}

static void copy_to_devmem_fails(struct usvm_mm *mm, struct usvm_pagemap *pm, uint8_t *p)
{
	pattern_fill(p, LEN, 1);
	inject("copy_to_devmem:1");
	CHECK_RET(usvm_pagemap_populate_mm(pm, p, p + LEN, mm, 0), -EIO);
	inject("");
	CHECK(resident(mm, p, LEN, NULL) == (long)LEN, "pages moved despite the failure");
	CHECK_PATTERN(p, LEN, 1);
	CHECK(usvm_inject_count(USVM_INJECT_COPY_TO_DEVMEM) > 0, "nothing injected");
}

static void devmem_alloc_fails(struct usvm_mm *mm, struct usvm_pagemap *pm, uint8_t *p)
{
	struct usvm_device *d = dev_new(mm, "gpu", pm, USVM_POLICY_ALWAYS, 2);
	uint8_t *host = malloc(LEN);

	CHECK(host != NULL, "malloc");
	pattern_fill(p, LEN, 2);
	inject("devmem_alloc:1");
	CHECK_RET(usvm_pagemap_populate_mm(pm, p, p + LEN, mm, 0), -ENOMEM);
	/* The device cannot migrate: it maps system memory instead. */
	CHECK_OK(dev_copy(d, p, host, LEN, 64 * KiB, 0));
	inject("");
	CHECK_PATTERN(host, LEN, 2);
	CHECK(dstats(d).migration_failures > 0, "no migration failure counted");
	CHECK(resident(mm, p, LEN, NULL) == (long)LEN, "pages moved without memory");
	usvm_device_destroy(d);
	free(host);
}

static void copy_to_ram_flaky(struct usvm_mm *mm, struct usvm_pagemap *pm, uint8_t *p)
{
	int round;

	for (round = 0; round < 10; round++) {
		uint64_t seed = 100 + (uint64_t)round;

		pattern_fill(p, LEN, seed);
		CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + LEN, mm, 0));
		inject("copy_to_ram:0.5");
		if (round & 1) {
			/* CPU faults: retried until the copy works. */
			CHECK_PATTERN(p, LEN, seed);
		} else {
			/* Eviction retries too. */
			CHECK(usvm_pagemap_evict(pm, NULL, NULL) >= 0, "evict all");
			CHECK(resident(mm, p, LEN, NULL) == (long)LEN, "round %d: not all home", round);
			CHECK_PATTERN(p, LEN, seed);
		}
		inject("");
	}
	CHECK(usvm_inject_count(USVM_INJECT_COPY_TO_RAM) > 0, "nothing injected");
}

static void uffd_eagain(struct usvm_mm *mm, struct usvm_pagemap *pm)
{
	uint8_t *p = test_alloc(mm, LEN), *q;
	int round;

	inject("uffd:0.3");
	for (round = 0; round < 10; round++) {
		uint64_t seed = 200 + (uint64_t)round;
		size_t off = (size_t)round * 64 * KiB;

		pattern_fill(p, LEN, seed);
		CHECK(usvm_pagemap_populate_mm(pm, p, p + LEN, mm, 0) >= -EBUSY, "populate");
		CHECK(madvise(p + off, 64 * KiB, MADV_DONTNEED) == 0, "madvise");
		CHECK_PATTERN(p, off, seed);
		CHECK_ZERO(p + off, 64 * KiB);
		CHECK_PATTERN_AT(p + off + 64 * KiB, LEN - off - 64 * KiB, seed, off + 64 * KiB);
	}
	q = test_alloc(mm, 64 * KiB);
	pattern_fill(q, 64 * KiB, 7);
	CHECK_OK(usvm_free(mm, q));
	q = test_alloc(mm, 64 * KiB);
	CHECK_ZERO(q, 64 * KiB);
	inject("");
	CHECK(usvm_inject_count(USVM_INJECT_UFFD) > 0, "nothing injected");
	CHECK_OK(usvm_free(mm, q));
	CHECK_OK(usvm_free(mm, p));
}

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	uint8_t *p;

	test_init("fault_inject", 120);
	test_setup(&mm, &pm, 64 * MiB);
	p = test_alloc(mm, LEN);
	printf("copy_to_devmem fails\n");
	copy_to_devmem_fails(mm, pm, p);
	printf("devmem_alloc fails\n");
	devmem_alloc_fails(mm, pm, p);
	printf("copy_to_ram fails half the time\n");
	copy_to_ram_flaky(mm, pm, p);
	printf("userfaultfd ioctls fail with -EAGAIN a third of the time\n");
	uffd_eagain(mm, pm);
	/* Unbind with flaky copies: every page still comes home. */
	pattern_fill(p, LEN, 9);
	CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + LEN, mm, 0));
	inject("copy_to_ram:0.5");
	CHECK_OK(usvm_pagemap_unbind(pm));
	inject("");
	CHECK(resident(mm, p, LEN, NULL) == (long)LEN, "unbind left pages behind");
	CHECK_PATTERN(p, LEN, 9);
	usvm_mm_stats_print(mm, stdout);
	usvm_pagemap_destroy(pm);
	usvm_mm_destroy(mm);
	printf("ok\n");
	return 0;
}

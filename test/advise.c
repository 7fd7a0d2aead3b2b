// SPDX-License-Identifier: MIT
/*
 * advise: usvm_advise(), usvm_prefetch(), usvm_discard(), usvm_range_attr().
 *
 *   - errors: unknown advice and ACCESSED_BY
 *     without a device -EINVAL, unmanaged memory -EFAULT, empty ranges;
 *   - advice is reported for exactly the range it was given (split, merged,
 *     unset), preferred system memory and accessed-by devices included;
 *   - prefetch to a pagemap and back: residency per location and the last
 *     prefetch location follow, every byte intact;
 *   - discard: device and CPU copies of whole pages go (CPU and device read
 *     zeros, device memory is freed), partial pages and the rest keep their
 *     bytes;
 *   - a pagemap named in advice outlives usvm_pagemap_destroy() until the
 *     advice goes (freeing the memory), and advice does not outlive a free.
 */
#include <sys/mman.h>
#include "helpers.h"

#define LEN (4 * MiB)

static struct usvm_range_attrs attrs(struct usvm_mm *mm, void *p, size_t len)
{
	struct usvm_range_attrs a;

	CHECK_OK(usvm_range_attr(mm, p, len, &a));
	return a;
}

static int read_byte(struct usvm_kctx *ctx, unsigned long idx, void *arg)
{
	uint8_t **pp = arg, v;
	int err = usvm_dev_read(ctx, pp[0] + idx * PAGE, &v, 1);

	if (!err && v != pp[1][idx]) {
		fprintf(stderr, "advise: device read page %lu: %#x, not %#x\n", idx, v, pp[1][idx]);
		return -EIO;
	}
	return err;
}

static void errors(struct usvm_mm *mm, uint8_t *p)
{
	void *m = malloc(3 * PAGE);

	CHECK_RET(usvm_advise(mm, p, PAGE, (enum usvm_advice)77, NULL), -EINVAL);
	CHECK_RET(usvm_advise(mm, p, PAGE, USVM_ADVISE_ACCESSED_BY, NULL), -EINVAL);
	CHECK_RET(usvm_advise(mm, p, 0, USVM_ADVISE_PREFERRED_LOCATION, NULL), -EINVAL);
	CHECK_RET(usvm_advise(mm, m, PAGE, USVM_ADVISE_PREFERRED_LOCATION, NULL), -EFAULT);
	CHECK_RET(usvm_prefetch(mm, m, PAGE, NULL), -EFAULT);
	CHECK_RET(usvm_discard(mm, m, PAGE), -EFAULT);
	CHECK_RET(usvm_discard(mm, p, 0), -EINVAL);
	CHECK_RET(usvm_range_attr(mm, p, PAGE, NULL), -EINVAL);
	CHECK_RET(usvm_range_attr(mm, m, PAGE, &(struct usvm_range_attrs){ 0 }), -EFAULT);
	free(m);
}

static void advice(struct usvm_mm *mm, struct usvm_pagemap *pm, struct usvm_device *dev,
		   uint8_t *p)
{
	struct usvm_range_attrs a;

	CHECK_OK(usvm_advise(mm, p + MiB, 2 * MiB, USVM_ADVISE_PREFERRED_LOCATION, pm));
	a = attrs(mm, p + MiB, 2 * MiB);
	CHECK(a.preferred == pm && !a.preferred_system && !a.preferred_mixed, "preferred");
	a = attrs(mm, p + 2 * MiB, PAGE);
	CHECK(a.preferred == pm, "preferred inside the range");
	a = attrs(mm, p, LEN);
	CHECK(a.preferred_mixed && !a.preferred, "advice on part of the range is mixed");
	a = attrs(mm, p, PAGE);
	CHECK(!a.preferred && !a.preferred_mixed, "advice outside the range");

	/* Preferred system memory on the middle: three intervals, then back. */
	CHECK_OK(usvm_advise(mm, p + MiB + 4 * PAGE, PAGE, USVM_ADVISE_PREFERRED_LOCATION, NULL));
	a = attrs(mm, p + MiB + 4 * PAGE, 10);
	CHECK(a.preferred_system && !a.preferred, "preferred system");
	CHECK(attrs(mm, p + MiB + 3 * PAGE, PAGE).preferred == pm, "split left");
	CHECK(attrs(mm, p + MiB + 5 * PAGE, PAGE).preferred == pm, "split right");
	CHECK_OK(usvm_advise(mm, p + MiB + 4 * PAGE, PAGE, USVM_ADVISE_PREFERRED_LOCATION, pm));
	a = attrs(mm, p + MiB, 2 * MiB);
	CHECK(a.preferred == pm && !a.preferred_mixed, "the intervals merged again");

	CHECK_OK(usvm_advise(mm, p, LEN, USVM_ADVISE_ACCESSED_BY, dev));
	CHECK_OK(usvm_advise(mm, p, LEN, USVM_ADVISE_ACCESSED_BY, dev)); /* idempotent */
	a = attrs(mm, p + MiB, MiB);
	CHECK(a.naccessed_by == 1 && a.accessed_by[0] == dev, "accessed by");
	CHECK_OK(usvm_advise(mm, p, LEN, USVM_ADVISE_UNSET_ACCESSED_BY, dev));
	CHECK_OK(usvm_advise(mm, p, LEN, USVM_ADVISE_UNSET_PREFERRED_LOCATION, NULL));
	a = attrs(mm, p, LEN);
	CHECK(!a.preferred && !a.preferred_mixed && !a.naccessed_by, "all unset");
}

static void prefetch(struct usvm_mm *mm, struct usvm_pagemap *pm, struct usvm_device *dev,
		     uint8_t *p)
{
	struct usvm_range_attrs a;
	uint8_t expect[LEN / PAGE];
	uint8_t *args[2] = { p, expect };
	size_t i;

	for (i = 0; i < LEN / PAGE; i++)
		p[i * PAGE] = expect[i] = (uint8_t)(i * 7 + 1);
	CHECK_OK(usvm_prefetch(mm, p, LEN, pm));
	a = attrs(mm, p, LEN);
	CHECK(a.nresident == 1 && a.resident[0].pagemap == pm && a.resident[0].bytes == LEN &&
	      !a.bytes_system, "after a prefetch to the device: %u locations, %llu system",
	      a.nresident, (unsigned long long)a.bytes_system);
	CHECK(a.last_prefetch == pm && !a.last_prefetch_system, "last prefetch");
	CHECK_OK(usvm_device_launch(dev, read_byte, LEN / PAGE, args));
	/* Rounded out to pages: [p, p + 2 MiB), one device allocation. */
	CHECK_OK(usvm_prefetch(mm, p + 5, 2 * MiB - 10, NULL));
	a = attrs(mm, p, LEN);
	CHECK(a.bytes_system == 2 * MiB && a.resident[0].bytes == LEN - 2 * MiB,
	      "after a prefetch of the first 2 MiB home: %llu system",
	      (unsigned long long)a.bytes_system);
	CHECK(attrs(mm, p, PAGE).last_prefetch_system, "last prefetch: system");
	for (i = 0; i < LEN / PAGE; i++)
		CHECK(p[i * PAGE] == expect[i], "page %zu: %#x, not %#x", i, p[i * PAGE], expect[i]);
}

static void discard(struct usvm_mm *mm, struct usvm_pagemap *pm, struct usvm_device *dev,
		    uint8_t *p)
{
	uint8_t expect[LEN / PAGE];
	uint8_t *args[2] = { p, expect };
	struct usvm_pagemap_stats s0, s1;
	size_t i;

	memset(p, 0x5A, LEN);
	CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + LEN / 2, mm, 0));
	CHECK(usvm_resident_bytes(mm, p, LEN, pm) == LEN / 2, "populate");
	s0 = pm_stats(pm);
	/* [PAGE + 100, PAGE + 3 MiB + 100): whole pages 2 .. 3 MiB/PAGE go. */
	CHECK_OK(usvm_discard(mm, p + PAGE + 100, 3 * MiB));
	s1 = pm_stats(pm);
	CHECK(usvm_resident_bytes(mm, p, LEN, pm) == 2 * PAGE, "%ld bytes still on the device",
	      usvm_resident_bytes(mm, p, LEN, pm));
	CHECK(s1.migrations_to_ram == s0.migrations_to_ram, "a discard migrated");
	for (i = 0; i < LEN / PAGE; i++)
		expect[i] = (i >= 2 && i <= 3 * MiB / PAGE) ? 0 : 0x5A;
	CHECK_OK(usvm_device_launch(dev, read_byte, LEN / PAGE, args));
	for (i = 0; i < LEN; i++) {
		uint8_t want = (i >= 2 * PAGE && i < 3 * MiB + PAGE) ? 0 : 0x5A;

		CHECK(p[i] == want, "byte %zu: %#x, not %#x", i, p[i], want);
	}
	p[2 * PAGE] = 1; /* usable again */
	CHECK(p[2 * PAGE] == 1, "write after discard");
}

static void lifetimes(struct usvm_mm *mm)
{
	struct usvm_pagemap *pm = test_sim_create("adv2", 4 * MiB);
	uint8_t *q = test_alloc(mm, MiB), *r;

	memset(q, 3, MiB);
	CHECK_OK(usvm_advise(mm, q, MiB, USVM_ADVISE_PREFERRED_LOCATION, pm));
	CHECK_OK(usvm_prefetch(mm, q, MiB, pm));
	usvm_pagemap_destroy(pm); /* the advice keeps it */
	CHECK(attrs(mm, q, MiB).preferred == pm, "advice lost with the destroy");
	CHECK(q[MiB - 1] == 3, "data");
	CHECK_OK(usvm_free(mm, q)); /* the last reference goes */
	r = test_alloc(mm, MiB);
	CHECK(!attrs(mm, r, MiB).preferred && !attrs(mm, r, MiB).preferred_mixed,
	      "advice outlived the free");
	CHECK_OK(usvm_free(mm, r));
}

int main(void)
{
	struct usvm_device_options o = { .name = "advdev" };
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_device *dev;
	uint8_t *p;

	test_init("advise", 60);
	test_setup(&mm, &pm, 16 * MiB);
	o.pagemap = pm; /* reads of pm's pages map them, nothing moves */
	CHECK_OK(usvm_device_create(mm, &o, &dev));
	p = test_alloc(mm, LEN);
	errors(mm, p);
	advice(mm, pm, dev, p);
	prefetch(mm, pm, dev, p);
	discard(mm, pm, dev, p);
	lifetimes(mm);
	usvm_device_destroy(dev);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("advise: ok\n");
	return 0;
}

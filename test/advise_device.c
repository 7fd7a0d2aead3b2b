// SPDX-License-Identifier: MIT
/*
 * advise_device: what advice does to device faults (usvm_advise; CUDA's
 * cudaMemAdvise), every byte checked after each step:
 *
 *   - preferred location system memory: a device read maps the pages in
 *     place, nothing migrates (advice_in_place counts the faults); advice
 *     unset before the device's first access leaves it migrating as usual;
 *   - accessed-by: the advised device maps in place, another device not in
 *     the set migrates into its own memory;
 *   - preferred location another device's pagemap: a device without peer
 *     access migrates into its own memory, one with peer access into the
 *     preferred pagemap;
 *   - a destroyed device leaves the accessed-by sets;
 *   - eviction spares an allocation whose range prefers the pagemap, and
 *     takes the least recently used again once the advice is unset.
 */
#include "helpers.h"

#define LEN (2 * MiB)

static struct usvm_device *device(struct usvm_mm *mm, const char *name,
				  struct usvm_pagemap *pm, int peer)
{
	struct usvm_device_options o = { .name = name, .pagemap = pm,
					 .policy = USVM_POLICY_ALWAYS, .threads = 1,
					 .peer_access = peer };
	struct usvm_device *d = NULL;

	CHECK_OK(usvm_device_create(mm, &o, &d));
	return d;
}

/* A device reads all of @p (64 KiB per kernel index), checks the pattern. */
static void dev_read_check(struct usvm_device *d, uint8_t *p, uint64_t seed)
{
	uint8_t *host = malloc(LEN);

	CHECK(host != NULL, "malloc");
	CHECK_OK(dev_copy(d, p, host, LEN, 64 * KiB, 0));
	CHECK(pattern_check(host, LEN, seed) == PATTERN_OK, "device read wrong bytes");
	free(host);
}

static uint8_t *fresh(struct usvm_mm *mm, uint64_t seed)
{
	uint8_t *p = test_alloc(mm, LEN);

	pattern_fill(p, LEN, seed);
	return p;
}

static void preferred_system(struct usvm_mm *mm, struct usvm_pagemap *pm, struct usvm_device *d)
{
	uint8_t *p = fresh(mm, 1);
	uint64_t before = pm_stats(pm).bytes_to_dev, in_place = dstats(d).advice_in_place;

	CHECK_OK(usvm_advise(mm, p, LEN, USVM_ADVISE_PREFERRED_LOCATION, NULL));
	dev_read_check(d, p, 1);
	CHECK(pm_stats(pm).bytes_to_dev == before, "preferred system: the device migrated");
	CHECK(resident(mm, p, LEN, pm) == 0, "preferred system: resident in device memory");
	CHECK(dstats(d).advice_in_place > in_place, "preferred system: not counted");
	CHECK(pattern_check(p, LEN, 1) == PATTERN_OK, "preferred system: CPU bytes");

	CHECK_OK(usvm_free(mm, p));

	/* Advised and unset before any device access: it migrates as the
	 * device's policy says.  (Pages a device already mapped stay mapped
	 * where they are until something moves them, as with CUDA.) */
	p = fresh(mm, 2);
	CHECK_OK(usvm_advise(mm, p, LEN, USVM_ADVISE_PREFERRED_LOCATION, NULL));
	CHECK_OK(usvm_advise(mm, p, LEN, USVM_ADVISE_UNSET_PREFERRED_LOCATION, NULL));
	dev_read_check(d, p, 2);
	CHECK(resident(mm, p, LEN, pm) == LEN, "unset: not migrated");
	CHECK(pattern_check(p, LEN, 2) == PATTERN_OK, "unset: CPU bytes");
	CHECK_OK(usvm_free(mm, p));
}

static void accessed_by(struct usvm_mm *mm, struct usvm_pagemap *pm, struct usvm_pagemap *pm2,
			struct usvm_device *d, struct usvm_device *d2)
{
	uint8_t *p = fresh(mm, 3);

	CHECK_OK(usvm_advise(mm, p, LEN, USVM_ADVISE_ACCESSED_BY, d));
	dev_read_check(d, p, 3);
	CHECK(resident(mm, p, LEN, pm) == 0, "accessed-by: the advised device migrated");
	dev_read_check(d2, p, 3);
	CHECK(resident(mm, p, LEN, pm2) == LEN, "accessed-by: the other device did not migrate");
	/* The advised device still reads it, wherever it is now. */
	dev_read_check(d, p, 3);
	CHECK(pattern_check(p, LEN, 3) == PATTERN_OK, "accessed-by: CPU bytes");
	CHECK_OK(usvm_free(mm, p));
}

static void preferred_peer(struct usvm_mm *mm, struct usvm_pagemap *pm, struct usvm_pagemap *pm2,
			   struct usvm_device *d)
{
	struct usvm_device *peer = device(mm, "peer", pm, 1);
	uint8_t *p = fresh(mm, 4);

	CHECK_OK(usvm_advise(mm, p, LEN, USVM_ADVISE_PREFERRED_LOCATION, pm2));
	dev_read_check(d, p, 4);
	CHECK(resident(mm, p, LEN, pm) == LEN, "no peer access: not in its own memory");
	CHECK(pattern_check(p, LEN, 4) == PATTERN_OK, "no peer access: CPU bytes");
	dev_read_check(peer, p, 4);
	CHECK(resident(mm, p, LEN, pm2) == LEN, "peer access: not in the preferred pagemap");
	CHECK(pattern_check(p, LEN, 4) == PATTERN_OK, "peer access: CPU bytes");
	CHECK_OK(usvm_advise(mm, p, LEN, USVM_ADVISE_ACCESSED_BY, peer));
	CHECK_OK(usvm_advise(mm, p, LEN, USVM_ADVISE_ACCESSED_BY, d));
	usvm_device_destroy(peer);
	{
		struct usvm_range_attrs a;

		CHECK_OK(usvm_range_attr(mm, p, LEN, &a));
		CHECK(a.naccessed_by == 1 && a.accessed_by[0] == d,
		      "a destroyed device is still in the accessed-by set (%u)", a.naccessed_by);
	}
	CHECK_OK(usvm_free(mm, p));
}

/* Eviction picks an allocation whose range does not prefer the pagemap. */
static void eviction_keeps_preferred(struct usvm_mm *mm)
{
	struct usvm_pagemap *small = test_sim_create("small", 2 * LEN);
	uint8_t *a = fresh(mm, 5), *b = fresh(mm, 6), *c = fresh(mm, 7);

	CHECK_OK(usvm_advise(mm, a, LEN, USVM_ADVISE_PREFERRED_LOCATION, small));
	CHECK_OK(usvm_prefetch(mm, a, LEN, small)); /* the least recently used */
	CHECK_OK(usvm_prefetch(mm, b, LEN, small));
	CHECK_OK(usvm_prefetch(mm, c, LEN, small)); /* evicts one of them */
	CHECK(resident(mm, a, LEN, small) == LEN, "the preferred allocation was evicted");
	CHECK(resident(mm, b, LEN, small) == 0, "b was not evicted");
	CHECK(resident(mm, c, LEN, small) == LEN, "c not there");
	/* Without the advice, the least recently used goes (a, now). */
	CHECK_OK(usvm_advise(mm, a, LEN, USVM_ADVISE_UNSET_PREFERRED_LOCATION, NULL));
	CHECK_OK(usvm_prefetch(mm, b, LEN, small));
	CHECK(resident(mm, a, LEN, small) == 0 && resident(mm, b, LEN, small) == LEN,
	      "without advice: not the least recently used");
	CHECK(pattern_check(a, LEN, 5) == PATTERN_OK && pattern_check(b, LEN, 6) == PATTERN_OK &&
	      pattern_check(c, LEN, 7) == PATTERN_OK, "eviction: CPU bytes");
	CHECK_OK(usvm_free(mm, a));
	CHECK_OK(usvm_free(mm, b));
	CHECK_OK(usvm_free(mm, c));
	usvm_pagemap_destroy(small);
}

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm, *pm2;
	struct usvm_device *d, *d2;

	test_init("advise_device", 300);
	skip_if_no_uffd();
	test_setup(&mm, &pm, 16 * MiB);
	pm2 = test_sim_create("sim1", 16 * MiB);
	d = device(mm, "dev0", pm, 0);
	d2 = device(mm, "dev1", pm2, 0);
	preferred_system(mm, pm, d);
	accessed_by(mm, pm, pm2, d, d2);
	preferred_peer(mm, pm, pm2, d);
	eviction_keeps_preferred(mm);
	usvm_device_destroy(d2);
	usvm_device_destroy(d);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm2);
	usvm_pagemap_destroy(pm);
	printf("advise_device: ok\n");
	return 0;
}

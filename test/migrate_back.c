// SPDX-License-Identifier: MIT
/*
 * migrate_back: partial migrate-back (USVM_MIGRATE_BACK).
 *
 *   - default: a CPU fault brings the whole device allocation back (the
 *     kernel's behaviour);
 *   - 64K: a CPU read brings back only the aligned 64 KiB around the fault;
 *     the rest of the allocation stays in device memory, and so on chunk by
 *     chunk (one migration each), every byte right;
 *   - a value that is not a power of two is rounded down to one (100K: 64K);
 *   - what stays behind is still evicted, migrated and freed normally, and
 *     two threads faulting on different chunks of one allocation at once
 *     each get their bytes.
 */
#include <inttypes.h>
#include <pthread.h>
#include "helpers.h"

#define LEN (2 * MiB)

static struct usvm_mm *mm_with(const char *migrate_back)
{
	if (migrate_back)
		setenv("USVM_MIGRATE_BACK", migrate_back, 1);
	else
		unsetenv("USVM_MIGRATE_BACK");
	return test_mm_create(NULL);
}

static uint8_t *on_device(struct usvm_mm *mm, struct usvm_pagemap *pm, uint64_t seed)
{
	uint8_t *p = test_alloc(mm, LEN);

	pattern_fill(p, LEN, seed);
	CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + LEN, mm, 0));
	CHECK(resident(mm, p, LEN, pm) == LEN, "not populated");
	return p;
}

static void whole(struct usvm_pagemap *pm)
{
	struct usvm_mm *mm = mm_with(NULL);
	uint8_t *p = on_device(mm, pm, 1);

	CHECK(p[MiB + 100] == pattern_byte(1, MiB + 100), "default: byte");
	CHECK(resident(mm, p, LEN, pm) == 0, "default: not all of it came back");
	CHECK(pattern_check(p, LEN, 1) == PATTERN_OK, "default: bytes");
	CHECK_OK(usvm_free(mm, p));
	usvm_mm_destroy(mm);
}

static void chunked(struct usvm_pagemap *pm, const char *val, size_t chunk)
{
	struct usvm_mm *mm = mm_with(val);
	uint64_t before = pm_stats(pm).migrations_to_ram;
	uint8_t *p = on_device(mm, pm, 2);
	size_t off;

	CHECK(p[MiB + 100] == pattern_byte(2, MiB + 100), "%s: byte", val);
	CHECK(resident(mm, p, LEN, pm) == (long)(LEN - chunk), "%s: %ld bytes left, not %zu", val,
	      resident(mm, p, LEN, pm), LEN - chunk);
	CHECK(resident(mm, p + MiB, chunk, pm) == 0, "%s: the chunk stayed", val);
	CHECK(pm_stats(pm).migrations_to_ram == before + 1, "%s: migrations", val);
	/* Chunk by chunk: one migration each. */
	for (off = 0; off < LEN; off += chunk)
		CHECK(pattern_check_at(p + off, chunk, 2, off) == PATTERN_OK, "%s: chunk at %zu", val,
		      off);
	CHECK(resident(mm, p, LEN, pm) == 0, "%s: pages left behind", val);
	CHECK(pm_stats(pm).migrations_to_ram == before + LEN / chunk, "%s: %" PRIu64 " migrations",
	      val, pm_stats(pm).migrations_to_ram - before);
	CHECK_OK(usvm_free(mm, p));
	usvm_mm_destroy(mm);
}

struct reader {
	uint8_t *p;
	size_t off;
	int ok;
};

static void *read_chunk(void *arg)
{
	struct reader *r = arg;

	r->ok = pattern_check_at(r->p + r->off, 64 * KiB, 3, r->off) == PATTERN_OK;
	return NULL;
}

static void leftovers(struct usvm_pagemap *pm)
{
	struct usvm_mm *mm = mm_with("64K");
	uint8_t *p = on_device(mm, pm, 3);
	struct reader r[2] = { { p, 0, 0 }, { p, MiB, 0 } };
	pthread_t th[2];
	int i;

	for (i = 0; i < 2; i++)
		CHECK(pthread_create(&th[i], NULL, read_chunk, &r[i]) == 0, "pthread_create");
	for (i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	CHECK(r[0].ok && r[1].ok, "concurrent chunk reads");
	CHECK(resident(mm, p, LEN, pm) == (long)(LEN - 128 * KiB), "two chunks back");
	/* The rest is evicted whole, then a populate takes all of it again. */
	CHECK(usvm_pagemap_evict(pm, mm, p + 512 * KiB) > 0, "evict the rest");
	CHECK(resident(mm, p, LEN, pm) == 0, "evicted");
	CHECK(pattern_check(p, LEN, 3) == PATTERN_OK, "after eviction");
	CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + LEN, mm, 0));
	p[5] = 0x5a;
	CHECK(resident(mm, p, LEN, pm) == (long)(LEN - 64 * KiB), "after repopulate");
	CHECK_OK(usvm_free(mm, p)); /* device pages and CPU pages at once */
	CHECK(pm_stats(pm).used_bytes == 0, "device memory still used after free");
	usvm_mm_destroy(mm);
}

int main(void)
{
	struct usvm_pagemap *pm;

	test_init("migrate_back", 300);
	skip_if_no_uffd();
	pm = test_sim_create("sim0", 16 * MiB);
	whole(pm);
	chunked(pm, "64K", 64 * KiB);
	chunked(pm, "100K", 64 * KiB);
	chunked(pm, "4K", 4 * KiB);
	leftovers(pm);
	usvm_pagemap_destroy(pm);
	printf("migrate_back: ok\n");
	return 0;
}

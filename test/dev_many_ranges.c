// SPDX-License-Identifier: MIT
/*
 * dev_many_ranges: thousands of small GPU SVM ranges.
 *
 * 4000 separate 4 KiB usvm_alloc buffers are touched by devices with
 * different chunk views: {64K, 4K} with device memory (policy ALWAYS),
 * {4K} only without device memory, and the default {2M, 64K, 4K} with
 * 2 MiB notifiers.  Each kernel index touches one buffer.
 *   - ranges_created is exactly what the chunk sizes predict: one per
 *     distinct aligned chunk holding a buffer (4000 for 4K-only);
 *   - every byte is right from every device and from the CPU;
 *   - after freeing every other buffer and allocating new ones, devices
 *     read zeros in the new buffers (never a previous buffer's data).
 */
#include <string.h>
#include <sys/mman.h>
#include "helpers.h"

#define NBUF 4000

struct bufs {
	uint8_t *b[NBUF];
	uint8_t *host;   /* NBUF pages */
	int write;
};

static int k_one(struct usvm_kctx *c, unsigned long i, void *arg)
{
	struct bufs *x = arg;

	return x->write ? usvm_dev_write(c, x->b[i], x->host + i * PAGE, PAGE)
			: usvm_dev_read(c, x->b[i], x->host + i * PAGE, PAGE);
}

static int cmp_uptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

	return x < y ? -1 : x > y;
}

/* Distinct @chunk-aligned chunks holding a buffer. */
static uint64_t distinct_chunks(struct bufs *x, size_t chunk)
{
	uintptr_t *c = malloc(NBUF * sizeof(*c));
	uint64_t n = 0;
	size_t i;

	CHECK(c != NULL, "malloc");
	for (i = 0; i < NBUF; i++)
		c[i] = (uintptr_t)x->b[i] / chunk;
	qsort(c, NBUF, sizeof(*c), cmp_uptr);
	for (i = 0; i < NBUF; i++)
		if (!i || c[i] != c[i - 1])
			n++;
	free(c);
	return n;
}

static struct usvm_device *mk(struct usvm_mm *mm, const char *name, struct usvm_pagemap *pm,
			      size_t c0, size_t c1, size_t c2, size_t notifier)
{
	struct usvm_device_options o = { .name = name, .pagemap = pm, .threads = 4,
					 .notifier_size = notifier,
					 .chunk_sizes = { c0, c1, c2, 0 } };
	struct usvm_device *d = NULL;

	CHECK_OK(usvm_device_create(mm, &o, &d));
	return d;
}

static void check_all(struct bufs *x, const char *who)
{
	size_t i;

	for (i = 0; i < NBUF; i++)
		CHECK(pattern_check(x->host + i * PAGE, PAGE, 7000 + i) == PATTERN_OK,
		      "%s: buffer %zu wrong", who, i);
}

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_device *d64, *d4, *ddef;
	struct usvm_device_stats s;
	struct bufs *x = calloc(1, sizeof(*x));
	uint64_t want64, want2m;
	size_t i;

	test_init("dev_many_ranges", 90);
	test_setup(&mm, &pm, 64 * MiB);
	CHECK(x != NULL, "calloc");
	x->host = malloc(NBUF * PAGE);
	CHECK(x->host != NULL, "malloc");
	for (i = 0; i < NBUF; i++)
		x->b[i] = test_alloc(mm, PAGE);
	want64 = distinct_chunks(x, 64 * KiB);
	want2m = distinct_chunks(x, 2 * MiB);
	printf("  %d buffers in %llu 64 KiB chunks, %llu 2 MiB chunks\n", NBUF,
	       (unsigned long long)want64, (unsigned long long)want2m);

	d64 = mk(mm, "c64k", pm, 64 * KiB, 4 * KiB, 0, 0);
	d4 = mk(mm, "c4k", NULL, 4 * KiB, 0, 0, 0);
	ddef = mk(mm, "cdef", NULL, 0, 0, 0, 2 * MiB);

	/* Device writes every buffer, one kernel index each. */
	for (i = 0; i < NBUF; i++)
		pattern_fill(x->host + i * PAGE, PAGE, 7000 + i);
	x->write = 1;
	CHECK_OK(usvm_device_launch(d64, k_one, NBUF, x));
	s = dstats(d64);
	CHECK(s.ranges_created == want64, "{64K,4K}: ranges_created %llu, expected %llu",
	      (unsigned long long)s.ranges_created, (unsigned long long)want64);
	CHECK(s.ranges_live == want64, "{64K,4K}: ranges_live %llu", (unsigned long long)s.ranges_live);
	for (i = 0; i < NBUF; i++)
		CHECK(resident(mm, x->b[i], PAGE, pm) == (long)PAGE, "buffer %zu not migrated", i);

	/* The 4K-only device reads them (bringing them home: it has no memory). */
	x->write = 0;
	memset(x->host, 0, NBUF * PAGE);
	CHECK_OK(usvm_device_launch(d4, k_one, NBUF, x));
	check_all(x, "{4K} device");
	s = dstats(d4);
	CHECK(s.ranges_created == NBUF, "{4K}: ranges_created %llu, expected %d",
	      (unsigned long long)s.ranges_created, NBUF);
	CHECK(s.device_faults >= NBUF, "{4K}: device_faults %llu", (unsigned long long)s.device_faults);

	/* The default-chunk device with small notifiers. */
	memset(x->host, 0, NBUF * PAGE);
	CHECK_OK(usvm_device_launch(ddef, k_one, NBUF, x));
	check_all(x, "{2M,64K,4K} device");
	s = dstats(ddef);
	CHECK(s.ranges_created == want2m, "{2M,64K,4K}: ranges_created %llu, expected %llu",
	      (unsigned long long)s.ranges_created, (unsigned long long)want2m);

	/* Back on d64's device, then the CPU checks every byte. */
	memset(x->host, 0, NBUF * PAGE);
	CHECK_OK(usvm_device_launch(d64, k_one, NBUF, x));
	check_all(x, "{64K,4K} device read");
	for (i = 0; i < NBUF; i++)
		CHECK(pattern_check(x->b[i], PAGE, 7000 + i) == PATTERN_OK, "CPU: buffer %zu", i);

	/* Free every other buffer; new ones read as zero on every device. */
	CHECK_OK(usvm_device_launch(d64, k_one, NBUF, x)); /* on the device again */
	for (i = 0; i < NBUF; i += 2)
		CHECK_OK(usvm_free(mm, x->b[i]));
	for (i = 0; i < NBUF; i += 2)
		x->b[i] = test_alloc(mm, PAGE);
	memset(x->host, 0xee, NBUF * PAGE);
	CHECK_OK(usvm_device_launch(d64, k_one, NBUF, x));
	for (i = 0; i < NBUF; i++) {
		if (i & 1)
			CHECK(pattern_check(x->host + i * PAGE, PAGE, 7000 + i) == PATTERN_OK,
			      "kept buffer %zu", i);
		else
			CHECK(zero_check(x->host + i * PAGE, PAGE) == PATTERN_OK,
			      "new buffer %zu (%p): stale data", i, (void *)x->b[i]);
	}
	memset(x->host, 0xee, NBUF * PAGE);
	CHECK_OK(usvm_device_launch(d4, k_one, NBUF, x));
	for (i = 0; i < NBUF; i += 2)
		CHECK(zero_check(x->host + i * PAGE, PAGE) == PATTERN_OK, "{4K}: new buffer %zu", i);
	for (i = 0; i < NBUF; i++)
		CHECK(i & 1 ? pattern_check(x->b[i], PAGE, 7000 + i) == PATTERN_OK :
		      zero_check(x->b[i], PAGE) == PATTERN_OK, "CPU: buffer %zu", i);

	CHECK(dstats(d64).fatal_faults + dstats(d4).fatal_faults + dstats(ddef).fatal_faults == 0,
	      "fatal faults");
	usvm_device_stats_print(d64, stdout);
	usvm_device_stats_print(d4, stdout);
	usvm_device_stats_print(ddef, stdout);
	for (i = 0; i < NBUF; i++)
		CHECK_OK(usvm_free(mm, x->b[i]));
	usvm_device_destroy(d64);
	usvm_device_destroy(d4);
	usvm_device_destroy(ddef);
	/* Ranges cover whole chunks of the arena, so device memory may still
	 * hold never-allocated neighbour pages here; the mm's end frees all. */
	printf("  device memory still used after freeing every buffer: %llu KiB\n",
	       (unsigned long long)pm_stats(pm).used_bytes / 1024);
	usvm_mm_destroy(mm);
	CHECK(pm_stats(pm).used_bytes == 0, "device memory leaked: %llu",
	      (unsigned long long)pm_stats(pm).used_bytes);
	usvm_pagemap_destroy(pm);
	free(x->host);
	free(x);
	printf("ok\n");
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * dev_munmap: the program munmaps (part of) registered memory that a device
 * has mapped (hmm-tests anon_teardown, migrate_partial_unmap_fault).
 *
 *   1. A 4 MiB registered region is mapped by a device (system pages, or
 *      migrated to device memory); its middle 1 MiB (straddling the two
 *      2 MiB ranges) is munmapped.  A device access to the hole fails the
 *      launch with -EFAULT (a fatal device fault: no hang, no crash, no
 *      stale data) and the device keeps working; the remaining parts read
 *      right from the device and the CPU, and take new writes.
 *   2. For unmap offsets {0, 512K, 1M} of a device-resident 2 MiB range,
 *      without and with a CPU touch in between: 1 MiB is munmapped, the CPU
 *      faults the rest back with the right data, the device reads it right,
 *      device accesses to the hole are fatal.
 *   3. Once every piece is unmapped (in several munmap calls), new memory
 *      mapped at the same address can be registered and the device sees its
 *      contents, never the old data.
 *   4. anon_teardown: a device read races with a munmap of half the buffer;
 *      the launch either fails with -EFAULT or returns the right data.
 */
#include <pthread.h>
#include <unistd.h>
#include <string.h>
#include <sys/mman.h>
#include "helpers.h"

static int dev_read_one(struct usvm_device *d, void *addr)
{
	uint8_t b[64];

	return usvm_device_read(d, addr, b, sizeof(b));
}

/* Fresh anonymous memory at exactly @addr (which must be free). */
static void *map_at(void *addr, size_t len)
{
	void *p = mmap(addr, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	CHECK(p == addr, "mmap at %p: got %p", addr, p);
	return p;
}

static void check_hole(struct usvm_device *d, uint8_t *hole, size_t len)
{
	struct usvm_device_stats s0 = dstats(d), s1;
	size_t off;

	for (off = 0; off < len; off += len / 4) {
		int err = dev_read_one(d, hole + off);

		CHECK(err == -EFAULT, "device read of unmapped %p: %d (%s), expected -EFAULT",
		      (void *)(hole + off), err, usvm_strerror(err));
	}
	s1 = dstats(d);
	CHECK(s1.fatal_faults - s0.fatal_faults == 4, "fatal_faults grew by %llu",
	      (unsigned long long)(s1.fatal_faults - s0.fatal_faults));
}

/* 1. munmap the middle of a device-mapped 4 MiB region. */
static void middle(struct usvm_mm *mm, struct usvm_pagemap *pm, uint64_t seed)
{
	const size_t len = 4 * MiB, hs = 3 * MiB / 2, he = 5 * MiB / 2;
	struct usvm_device *d = dev_new(mm, pm ? "devmem" : "sysmem", pm, USVM_POLICY_ALWAYS, 2);
	uint8_t *p = map_aligned(len, USVM_BLOCK_SIZE), *host = malloc(len);
	struct usvm_device_stats s;

	CHECK(host != NULL, "malloc");
	printf("  middle, %s\n", pm ? "device memory" : "system memory");
	CHECK_OK(usvm_register(mm, p, len));
	pattern_fill(p, len, seed);
	CHECK_OK(dev_copy(d, p, host, len, PAGE, 0));
	CHECK_PATTERN(host, len, seed);
	if (pm)
		CHECK(resident(mm, p, len, pm) == (long)len, "not migrated");

	CHECK(munmap(p + hs, he - hs) == 0, "munmap");
	check_hole(d, p + hs, he - hs);
	/* The rest, from the device. */
	memset(host, 0, len);
	CHECK_OK(dev_copy(d, p, host, hs, PAGE, 0));
	CHECK_OK(dev_copy(d, p + he, host + he, len - he, PAGE, 0));
	CHECK(pattern_check(host, hs, seed) == PATTERN_OK, "device read of the head");
	CHECK(pattern_check_at(host + he, len - he, seed, he) == PATTERN_OK,
	      "device read of the tail");
	/* New device writes, checked by the CPU (faulting device pages home). */
	pattern_fill(host, len, seed + 1);
	CHECK_OK(dev_copy(d, p, host, hs, 64 * KiB, 1));
	CHECK_OK(dev_copy(d, p + he, host + he, len - he, 64 * KiB, 1));
	CHECK(pattern_check(p, hs, seed + 1) == PATTERN_OK, "CPU read of the head");
	CHECK(pattern_check_at(p + he, len - he, seed + 1, he) == PATTERN_OK, "CPU read of the tail");
	/* The hole is still fatal after all that. */
	check_hole(d, p + hs, he - hs);
	s = dstats(d);
	CHECK(s.invalidations > 0, "munmap did not invalidate");

	/* 3. Unmap the rest in two calls, then reuse the address. */
	CHECK(munmap(p, hs) == 0 && munmap(p + he, len - he) == 0, "munmap rest");
	check_hole(d, p, len);
	map_at(p, len);
	CHECK_ZERO(p, len);
	pattern_fill(p, len, seed + 2);
	{
		int err = usvm_register(mm, p, len);

		CHECK(err == 0, "re-register of new memory at a fully unmapped registered address: "
		      "%d (%s)", err, usvm_strerror(err));
	}
	memset(host, 0, len);
	CHECK_OK(dev_copy(d, p, host, len, PAGE, 0));
	CHECK(pattern_check(host, len, seed + 2) == PATTERN_OK,
	      "device read of new memory at a reused address: stale data at offset %zu",
	      pattern_check(host, len, seed + 2));
	CHECK_OK(usvm_unregister(mm, p, len));
	CHECK_PATTERN(p, len, seed + 2);
	munmap(p, len);
	usvm_device_destroy(d);
	free(host);
}

/* 2. Partial unmap of a device-resident 2 MiB range. */
static void partial(struct usvm_mm *mm, struct usvm_pagemap *pm, size_t unmap_off, int touch,
		    uint64_t seed)
{
	const size_t len = 2 * MiB, ulen = 1 * MiB;
	struct usvm_device *d = dev_new(mm, "gpu", pm, USVM_POLICY_ALWAYS, 2);
	uint8_t *p = map_aligned(len, USVM_BLOCK_SIZE), *host = malloc(len);
	size_t off;

	CHECK(host != NULL, "malloc");
	printf("  partial: unmap at %zu KiB, %s CPU touch\n", unmap_off / KiB,
	       touch ? "with" : "without");
	CHECK_OK(usvm_register(mm, p, len));
	pattern_fill(p, len, seed);
	CHECK_OK(dev_copy(d, p, host, len, PAGE, 0));
	CHECK(resident(mm, p, len, pm) == (long)len, "device touch did not migrate");
	if (touch) {
		/* The CPU takes the range back, then the device maps it again. */
		CHECK(p[len - 1] == pattern_byte(seed, len - 1), "CPU touch");
		CHECK(resident(mm, p, len, NULL) == (long)len, "CPU touch did not bring it home");
		memset(host, 0, len);
		CHECK_OK(dev_copy(d, p, host, len, 4 * PAGE, 0));
		CHECK_PATTERN(host, len, seed);
	}
	CHECK(munmap(p + unmap_off, ulen) == 0, "munmap");
	check_hole(d, p + unmap_off, ulen);
	/* CPU faults the remainder back. */
	for (off = 0; off < len; off += PAGE) {
		if (off >= unmap_off && off < unmap_off + ulen)
			continue;
		CHECK(pattern_check_at(p + off, PAGE, seed, off) == PATTERN_OK,
		      "CPU read of remaining page at %zu", off);
	}
	/* The device reads the remainder right. */
	memset(host, 0, len);
	for (off = 0; off < len; off += PAGE) {
		if (off >= unmap_off && off < unmap_off + ulen)
			continue;
		CHECK_OK(usvm_device_read(d, p + off, host + off, PAGE));
		CHECK(pattern_check_at(host + off, PAGE, seed, off) == PATTERN_OK,
		      "device read of remaining page at %zu", off);
	}
	check_hole(d, p + unmap_off, ulen);
	/* Unmap the rest: nothing is left registered there. */
	if (unmap_off)
		munmap(p, unmap_off);
	if (unmap_off + ulen < len)
		munmap(p + unmap_off + ulen, len - unmap_off - ulen);
	check_hole(d, p, len);
	usvm_device_destroy(d);
	free(host);
}

/* 4. anon_teardown. */
struct teardown {
	uint8_t *p;
	size_t len;
	unsigned int delay_us;
};

static void *unmapper(void *arg)
{
	struct teardown *t = arg;

	usleep(t->delay_us);
	munmap(t->p + t->len / 2, t->len / 2);
	return NULL;
}

static void teardown(struct usvm_mm *mm, struct usvm_pagemap *pm)
{
	const size_t len = 2 * MiB;
	struct usvm_device *d = dev_new(mm, "gpu", pm, USVM_POLICY_ALWAYS, 2);
	uint8_t *host = malloc(len);
	uint64_t rng = 42;
	int i, ok = 0, faulted = 0;

	CHECK(host != NULL, "malloc");
	for (i = 0; i < 20; i++) {
		uint8_t *p = map_aligned(len, USVM_BLOCK_SIZE);
		struct teardown t = { p, len, (unsigned int)(rng_next(&rng) % 2000) };
		pthread_t th;
		int err;

		CHECK_OK(usvm_register(mm, p, len));
		pattern_fill(p, len, 500 + (uint64_t)i);
		memset(host, 0, len);
		CHECK(pthread_create(&th, NULL, unmapper, &t) == 0, "pthread_create");
		err = dev_copy(d, p, host, len, PAGE, 0);
		pthread_join(th, NULL);
		CHECK(err == 0 || err == -EFAULT, "racing read: %d (%s)", err, usvm_strerror(err));
		if (!err) {
			CHECK_PATTERN(host, len, 500 + (uint64_t)i);
			ok++;
		} else {
			faulted++;
		}
		/* What is left is intact; the hole is fatal. */
		CHECK(pattern_check(p, len / 2, 500 + (uint64_t)i) == PATTERN_OK, "first half");
		check_hole(d, p + len / 2, len / 2);
		munmap(p, len / 2);
	}
	printf("  teardown: %d reads completed, %d failed with -EFAULT\n", ok, faulted);
	usvm_device_destroy(d);
	free(host);
}

int main(void)
{
	static const size_t offs[] = { 0, 512 * KiB, 1 * MiB };
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_mm_stats ms;
	size_t i;
	int touch;

	test_init("dev_munmap", 60);
	test_setup(&mm, &pm, 16 * MiB);
	{
		struct usvm_caps caps;

		usvm_probe(&caps);
		if (!caps.feat_event_unmap)
			test_skip("no userfaultfd munmap events (UFFD_FEATURE_EVENT_UNMAP)");
	}
	middle(mm, NULL, 1);
	middle(mm, pm, 2);
	for (i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
		for (touch = 0; touch < 2; touch++)
			partial(mm, pm, offs[i], touch, 10 + i * 2 + (size_t)touch);
	teardown(mm, NULL);
	teardown(mm, pm);
	ms = mm_stats(mm);
	CHECK(ms.events_unmap > 0, "no munmap event seen");
	usvm_mm_stats_print(mm, stdout);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

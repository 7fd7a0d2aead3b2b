// SPDX-License-Identifier: MIT
/*
 * read_mostly: read duplication (USVM_ADVISE_READ_MOSTLY).
 *
 *   - a 4 MiB table advised read-mostly, read by two devices and the CPU
 *     over and over: after each device's first copy nothing migrates (zero
 *     bytes to device memory, no CPU faults on device memory, no new copies);
 *   - a CPU write collapses the copies first (dup_collapses), and both
 *     devices then read the new bytes;
 *   - a CPU write to a never-touched page of the table is seen too;
 *   - a device write collapses them as well: the other device and the CPU
 *     read what it wrote;
 *   - MADV_DONTNEED of part of the table: devices read zeros there;
 *   - racing: a CPU thread keeps rewriting the table with increasing
 *     generations while a device reads it; no read may return a generation
 *     older than the one completed before its launch began;
 *   - usvm_range_attr reports it; without userfaultfd write-protect the
 *     test skips, saying so.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include "helpers.h"

#define LEN (4 * MiB)
#define WORDS (LEN / 8)

static struct usvm_device *device(struct usvm_mm *mm, const char *name, struct usvm_pagemap *pm)
{
	return dev_new(mm, name, pm, USVM_POLICY_ALWAYS, 2);
}

/* Every word i of the table is @gen * 1000003 + i. */
static void fill_gen(uint64_t *t, uint64_t gen)
{
	size_t i;

	for (i = 0; i < WORDS; i++)
		t[i] = gen * 1000003 + i;
}

static void dev_check_gen(struct usvm_device *d, uint64_t *t, uint64_t gen, const char *what)
{
	uint64_t *host = malloc(LEN);
	size_t i;

	CHECK(host != NULL, "malloc");
	CHECK_OK(dev_copy(d, t, host, LEN, 64 * KiB, 0));
	for (i = 0; i < WORDS; i++)
		CHECK(host[i] == gen * 1000003 + i, "%s: %s word %zu: %#lx, not generation %lu", what,
		      usvm_device_name(d), i, (unsigned long)host[i], (unsigned long)gen);
	free(host);
}

static void no_migration(struct usvm_mm *mm, struct usvm_pagemap *pm0, struct usvm_pagemap *pm1,
			 struct usvm_device *d0, struct usvm_device *d1, uint64_t *t)
{
	uint64_t to_dev, devmem_faults, copies;
	int round;

	fill_gen(t, 1);
	dev_check_gen(d0, t, 1, "first read");
	dev_check_gen(d1, t, 1, "first read");
	to_dev = pm_stats(pm0).bytes_to_dev + pm_stats(pm1).bytes_to_dev;
	devmem_faults = mm_stats(mm).cpu_faults_devmem;
	copies = dstats(d0).dup_copies + dstats(d1).dup_copies;
	CHECK(to_dev == 0, "the first reads migrated %lu bytes", (unsigned long)to_dev);
	CHECK(copies >= 4, "%lu copies for two devices over two blocks", (unsigned long)copies);
	for (round = 0; round < 5; round++) {
		dev_check_gen(d0, t, 1, "again");
		dev_check_gen(d1, t, 1, "again");
		CHECK(t[round * 1000] == 1000003 + (uint64_t)round * 1000, "CPU read");
	}
	CHECK(pm_stats(pm0).bytes_to_dev + pm_stats(pm1).bytes_to_dev == 0, "rounds migrated");
	CHECK(mm_stats(mm).cpu_faults_devmem == devmem_faults, "CPU faults on device memory");
	CHECK(dstats(d0).dup_copies + dstats(d1).dup_copies == copies, "copies made again");
	CHECK(resident(mm, t, LEN, pm0) == 0 && resident(mm, t, LEN, pm1) == 0, "resident");
}

static void writes_collapse(struct usvm_mm *mm, struct usvm_device *d0, struct usvm_device *d1,
			    uint64_t *t)
{
	uint64_t collapses = mm_stats(mm).dup_collapses;
	struct xfer x;
	uint64_t *src = malloc(LEN);

	/* The CPU writes: the copies go first. */
	fill_gen(t, 2);
	CHECK(mm_stats(mm).dup_collapses > collapses, "no collapse counted");
	dev_check_gen(d0, t, 2, "after a CPU write");
	dev_check_gen(d1, t, 2, "after a CPU write");
	/* A device writes (every word, generation 3): the other device and
	 * the CPU read it. */
	CHECK(src != NULL, "malloc");
	fill_gen(src, 3);
	x = (struct xfer){ (uint8_t *)t, (uint8_t *)src, LEN, 64 * KiB, 1 };
	CHECK_OK(usvm_device_launch(d0, k_xfer, LEN / (64 * KiB), &x));
	dev_check_gen(d1, t, 3, "after a device write");
	dev_check_gen(d0, t, 3, "after its own write");
	fill_gen(src, 3);
	CHECK(!memcmp(t, src, LEN), "CPU read after a device write");
	free(src);
}

static void fresh_and_dontneed(struct usvm_mm *mm, struct usvm_device *d0)
{
	uint64_t *t = test_alloc(mm, LEN), *host = malloc(LEN);

	CHECK(host != NULL, "malloc");
	CHECK_OK(usvm_advise(mm, t, LEN, USVM_ADVISE_READ_MOSTLY, NULL));
	/* Never touched: the copy is zeros; a CPU write to it is seen. */
	CHECK_OK(dev_copy(d0, t, host, LEN, 64 * KiB, 0));
	CHECK(zero_check(host, LEN) == PATTERN_OK, "never-touched table not zero");
	t[12345] = 77;
	CHECK_OK(dev_copy(d0, t, host, LEN, 64 * KiB, 0));
	CHECK(host[12345] == 77, "a CPU write to a never-touched page not seen: %lu",
	      (unsigned long)host[12345]);
	/* MADV_DONTNEED of the first MiB: zeros on the device too. */
	fill_gen(t, 4);
	CHECK_OK(dev_copy(d0, t, host, LEN, 64 * KiB, 0));
	CHECK(madvise(t, MiB, MADV_DONTNEED) == 0, "madvise");
	CHECK_OK(dev_copy(d0, t, host, LEN, 64 * KiB, 0));
	CHECK(zero_check(host, MiB) == PATTERN_OK, "MADV_DONTNEED: device read old bytes");
	CHECK(host[WORDS - 1] == 4 * 1000003 + WORDS - 1, "the rest changed");
	free(host);
	CHECK_OK(usvm_free(mm, t));
}

struct writer {
	uint64_t *t;
	atomic_ulong done;       /* generations completely written */
	atomic_int stop;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint64_t gen = 10;

	while (!atomic_load(&w->stop)) {
		fill_gen(w->t, ++gen);
		atomic_store(&w->done, gen);
	}
	return NULL;
}

static void racing(struct usvm_mm *mm, struct usvm_device *d0, uint64_t *t)
{
	struct writer w = { .t = t };
	uint64_t *host;
	pthread_t th;
	int round;

#if defined(__SANITIZE_THREAD__)
	/* A CPU thread writing bytes a device reads at the same time is a data
	 * race in C's memory model by design; userfaultfd write-protect orders
	 * them in the kernel, which ThreadSanitizer cannot see. */
	printf("racing: skipped under ThreadSanitizer (see the comment)\n");
	(void)mm, (void)d0, (void)t, (void)w, (void)th, (void)round, (void)host;
	return;
#endif
	host = malloc(LEN);
	CHECK(host != NULL, "malloc");
	fill_gen(t, 10);
	atomic_store(&w.done, 10);
	CHECK(pthread_create(&th, NULL, writer_main, &w) == 0, "pthread_create");
	for (round = 0; round < 40; round++) {
		uint64_t before = atomic_load(&w.done);
		size_t i;

		CHECK_OK(dev_copy(d0, t, host, LEN, 64 * KiB, 0));
		for (i = 0; i < WORDS; i++) {
			uint64_t gen = (host[i] - i) / 1000003;

			CHECK((host[i] - i) % 1000003 == 0 && gen >= before,
			      "round %d word %zu: generation %lu read after %lu was written", round,
			      i, (unsigned long)gen, (unsigned long)before);
		}
	}
	atomic_store(&w.stop, 1);
	pthread_join(th, NULL);
	printf("racing: %lu generations written, %lu copies, %lu collapses in all\n",
	       (unsigned long)atomic_load(&w.done) - 10, (unsigned long)dstats(d0).dup_copies,
	       (unsigned long)mm_stats(mm).dup_collapses);
	CHECK(atomic_load(&w.done) > 11, "the writer never finished a generation");
	free(host);
}

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm0, *pm1;
	struct usvm_device *d0, *d1;
	struct usvm_range_attrs at;
	uint64_t *t;
	int err;

	test_init("read_mostly", 300);
	skip_if_no_uffd();
	test_setup(&mm, &pm0, 16 * MiB);
	pm1 = test_sim_create("sim1", 16 * MiB);
	d0 = device(mm, "dev0", pm0);
	d1 = device(mm, "dev1", pm1);
	t = test_alloc(mm, LEN);
	err = usvm_advise(mm, t, LEN, USVM_ADVISE_READ_MOSTLY, NULL);
	if (err == -EOPNOTSUPP)
		test_skip("this kernel has no userfaultfd write-protect for anonymous memory");
	CHECK_OK(err);
	CHECK_OK(usvm_range_attr(mm, t, LEN, &at));
	CHECK(at.read_mostly, "range_attr: not read-mostly");
	no_migration(mm, pm0, pm1, d0, d1, t);
	writes_collapse(mm, d0, d1, t);
	fresh_and_dontneed(mm, d0);
	racing(mm, d0, t);
	CHECK_OK(usvm_advise(mm, t, LEN, USVM_ADVISE_UNSET_READ_MOSTLY, NULL));
	CHECK_OK(usvm_range_attr(mm, t, LEN, &at));
	CHECK(!at.read_mostly, "range_attr: still read-mostly");
	usvm_device_destroy(d0);
	usvm_device_destroy(d1);
	CHECK_OK(usvm_free(mm, t));
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm0);
	usvm_pagemap_destroy(pm1);
	printf("read_mostly: ok\n");
	return 0;
}

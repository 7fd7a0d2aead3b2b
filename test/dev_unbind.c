// SPDX-License-Identifier: MIT
/*
 * dev_unbind: the device memory goes away (usvm_pagemap_unbind, hmm-tests
 * migrate_release) while device kernels run on device-resident data.
 *
 * Kernels keep running on managed and registered buffers: each index owns a
 * 64 KiB slice and writes a new generation of its pattern there, reading it
 * back at once.  Mid-way the pagemap is unbound.  Afterwards:
 *   - every slice holds its last generation (no write lost), all of it in
 *     system memory (usvm_resident_bytes on the pagemap == 0);
 *   - populate_mm returns -ENODEV; the device's fault flow falls back to
 *     system pages (bytes_mapped_system grows, nothing is mapped from device
 *     memory) and reads and writes keep working, as do CPU accesses;
 *   - device atomics still work on system memory.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include "helpers.h"

#define LEN (4 * MiB)
#define SLICE (64 * KiB)
#define NSL (LEN / SLICE)

struct job {
	uint8_t *buf;
	uint64_t gen[NSL];       /* last generation fully written and checked */
	uint64_t tag;
	atomic_int stop;
	uint64_t launches;
	int err;
};

static uint64_t seed_of(struct job *j, size_t sl, uint64_t g)
{
	return j->tag * 1000003 + sl * 7919 + g;
}

static int k_slice(struct usvm_kctx *c, unsigned long i, void *arg)
{
	struct job *j = arg;
	uint8_t data[PAGE], back[PAGE];
	uint64_t g = j->gen[i] + 1, sd = seed_of(j, i, g);
	size_t off;
	int err;

	for (off = 0; off < SLICE; off += PAGE) {
		pattern_fill_at(data, PAGE, sd, off);
		err = usvm_dev_write(c, j->buf + i * SLICE + off, data, PAGE);
		if (err)
			return err;
	}
	for (off = 0; off < SLICE; off += PAGE) {
		err = usvm_dev_read(c, j->buf + i * SLICE + off, back, PAGE);
		if (err)
			return err;
		CHECK(pattern_check_at(back, PAGE, sd, off) == PATTERN_OK,
		      "slice %lu gen %llu: read back wrong data", i, (unsigned long long)g);
	}
	j->gen[i] = g;
	return 0;
}

static void *runner(void *p)
{
	struct job *j = p;
	struct usvm_device *d = *(struct usvm_device **)(j + 1);

	while (!atomic_load(&j->stop)) {
		int err = usvm_device_launch(d, k_slice, NSL, j);

		if (err) {
			j->err = err;
			break;
		}
		j->launches++;
	}
	return NULL;
}

static void check_job(struct job *j, const char *what)
{
	size_t sl;

	for (sl = 0; sl < NSL; sl++)
		CHECK(pattern_check(j->buf + sl * SLICE, SLICE, seed_of(j, sl, j->gen[sl])) ==
		      PATTERN_OK, "%s: slice %zu lost its generation %llu", what, sl,
		      (unsigned long long)j->gen[sl]);
}

struct job_dev {
	struct job j;
	struct usvm_device *d;   /* right after j: runner finds it there */
};

static int k_atomic(struct usvm_kctx *c, unsigned long i, void *arg)
{
	(void)i;
	return usvm_dev_atomic_add_u64(c, arg, 1, NULL);
}

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_device *d;
	struct usvm_device_stats s0, s1;
	struct usvm_pagemap_stats ps;
	struct job_dev *jd[2];
	pthread_t th[2];
	uint8_t *reg, *host;
	uint64_t t0;
	int i, err;

	test_init("dev_unbind", 60);
	test_setup(&mm, &pm, 32 * MiB);
	d = dev_new(mm, "gpu", pm, USVM_POLICY_ALWAYS, 4);
	host = malloc(LEN);
	CHECK(host != NULL, "malloc");
	reg = map_aligned(LEN, USVM_BLOCK_SIZE);
	CHECK_OK(usvm_register(mm, reg, LEN));
	for (i = 0; i < 2; i++) {
		jd[i] = calloc(1, sizeof(*jd[i]));
		CHECK(jd[i] != NULL, "calloc");
		jd[i]->j.buf = i ? reg : test_alloc(mm, LEN);
		jd[i]->j.tag = (uint64_t)i + 1;
		jd[i]->d = d;
		atomic_init(&jd[i]->j.stop, 0);
	}

	/* Device-resident data first. */
	for (i = 0; i < 2; i++) {
		CHECK_OK(usvm_device_launch(d, k_slice, NSL, &jd[i]->j));
		CHECK(resident(mm, jd[i]->j.buf, LEN, pm) == (long)LEN, "not on the device");
	}

	/* Kernels run while the device memory goes away. */
	for (i = 0; i < 2; i++)
		CHECK(pthread_create(&th[i], NULL, runner, &jd[i]->j) == 0, "pthread_create");
	sleep_ms(100);
	CHECK_OK(usvm_pagemap_unbind(pm));
	ps = pm_stats(pm);
	CHECK(ps.unbound == 1, "not unbound");
	t0 = now_ns();
	while (now_ns() - t0 < 200000000ull)
		sleep_ms(10);
	for (i = 0; i < 2; i++) {
		atomic_store(&jd[i]->j.stop, 1);
		pthread_join(th[i], NULL);
		CHECK(jd[i]->j.err == 0, "kernel failed across unbind: %d (%s)", jd[i]->j.err,
		      usvm_strerror(jd[i]->j.err));
	}
	printf("  %llu + %llu launches across the unbind\n",
	       (unsigned long long)jd[0]->j.launches, (unsigned long long)jd[1]->j.launches);

	/* Everything in system memory, every slice at its last generation. */
	for (i = 0; i < 2; i++) {
		CHECK(resident(mm, jd[i]->j.buf, LEN, pm) == 0, "device pages left after unbind");
		CHECK(resident(mm, jd[i]->j.buf, LEN, NULL) == (long)LEN, "not in system memory");
		check_job(&jd[i]->j, "after unbind");
	}
	ps = pm_stats(pm);
	CHECK(ps.used_bytes == 0 && ps.live_allocations == 0, "device memory still in use");
	CHECK_RET(usvm_pagemap_populate_mm(pm, jd[0]->j.buf, jd[0]->j.buf + LEN, mm, 0), -ENODEV);

	/* The device falls back to system pages. */
	s0 = dstats(d);
	for (i = 0; i < 2; i++) {
		CHECK_OK(usvm_device_launch(d, k_slice, NSL, &jd[i]->j));
		check_job(&jd[i]->j, "device write after unbind");
		pattern_fill(jd[i]->j.buf, LEN, 77 + (uint64_t)i);
		memset(host, 0, LEN);
		CHECK_OK(dev_copy(d, jd[i]->j.buf, host, LEN, PAGE, 0));
		CHECK_PATTERN(host, LEN, 77 + (uint64_t)i);
		CHECK(resident(mm, jd[i]->j.buf, LEN, NULL) == (long)LEN, "moved after unbind");
	}
	/* Fresh memory: new device faults, populate fails, system pages used. */
	{
		uint8_t *fresh = test_alloc(mm, LEN);

		pattern_fill(host, LEN, 79);
		CHECK_OK(dev_copy(d, fresh, host, LEN, PAGE, 1));
		CHECK_PATTERN(fresh, LEN, 79);
		memset(host, 0, LEN);
		CHECK_OK(dev_copy(d, fresh, host, LEN, 64 * KiB, 0));
		CHECK_PATTERN(host, LEN, 79);
		CHECK(resident(mm, fresh, LEN, NULL) == (long)LEN, "fresh memory not in system memory");
		CHECK_OK(usvm_free(mm, fresh));
	}
	s1 = dstats(d);
	CHECK(s1.bytes_mapped_system > s0.bytes_mapped_system, "no system mapping after unbind");
	CHECK(s1.bytes_mapped_device == s0.bytes_mapped_device, "device mapping after unbind");
	CHECK(s1.fatal_faults == 0, "fatal faults");
	printf("  after unbind: %llu failed migrations, %.1f MiB mapped from system memory\n",
	       (unsigned long long)(s1.migration_failures - s0.migration_failures),
	       (s1.bytes_mapped_system - s0.bytes_mapped_system) / 1048576.0);

	/* Atomics on system memory still work. */
	{
		uint64_t *w = (uint64_t *)jd[0]->j.buf;

		*w = 5;
		t0 = now_ns();
		err = usvm_device_launch(d, k_atomic, 100, w);
		printf("  atomics after unbind: %d (%s) in %.1f ms\n", err, usvm_strerror(err),
		       (now_ns() - t0) / 1e6);
		CHECK(err == 0, "device atomics after unbind: %d (%s)", err, usvm_strerror(err));
		CHECK(*w == 105, "atomic count %llu", (unsigned long long)*w);
	}

	CHECK_OK(usvm_unregister(mm, reg, LEN));
	munmap(reg, LEN);
	usvm_device_destroy(d);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	free(jd[0]);
	free(jd[1]);
	free(host);
	printf("ok\n");
	return 0;
}

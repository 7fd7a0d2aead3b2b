// SPDX-License-Identifier: MIT
/*
 * dev_launch: usvm_device_launch() on the device's persistent worker pool.
 *
 *   - every index of [0, n) runs exactly once, for n from 1 to 5000 and
 *     devices of 1, 2, 4 and 16 threads, and every pool thread takes part
 *     in a long launch;
 *   - a kernel's non-zero return stops the launch and is what it returns;
 *   - a kernel may launch on its own device (nested launches progress:
 *     the launching thread is always a worker);
 *   - four threads launch on one device at once, 300 launches each, each
 *     launch seeing exactly its own indexes;
 *   - destroying a device whose pool is idle, or was never started.
 * No timing is asserted (bench/ measures launch latency).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include "helpers.h"
#include "util/util.h"

struct counts {
	unsigned long n;
	unsigned int want;      /* threads expected to join a long launch */
	atomic_uint *hits;
	pthread_t tids[64];
	atomic_uint ntids;
	pthread_mutex_t lock;
};

static int count_kernel(struct usvm_kctx *ctx, unsigned long idx, void *arg)
{
	struct counts *c = arg;
	pthread_t self = pthread_self();
	unsigned int i, n;

	(void)ctx;
	atomic_fetch_add(&c->hits[idx], 1);
	pthread_mutex_lock(&c->lock);
	n = atomic_load(&c->ntids);
	for (i = 0; i < n && !pthread_equal(c->tids[i], self); i++)
		;
	if (i == n && n < 64) {
		c->tids[n] = self;
		atomic_store(&c->ntids, n + 1);
	}
	pthread_mutex_unlock(&c->lock);
	if (c->n > 100 && atomic_load(&c->ntids) < c->want)
		usleep(200); /* give the pool threads a chance to join */
	return 0;
}

/* Launch @n indexes on @d; returns how many threads ran them. */
static unsigned int launch_counted(struct usvm_device *d, unsigned long n, unsigned int want)
{
	struct counts c = { .n = n, .want = want };
	unsigned long i;

	c.hits = calloc(n, sizeof(*c.hits));
	CHECK(c.hits, "out of memory");
	pthread_mutex_init(&c.lock, NULL);
	CHECK_OK(usvm_device_launch(d, count_kernel, n, &c));
	for (i = 0; i < n; i++)
		CHECK(atomic_load(&c.hits[i]) == 1, "n=%lu: index %lu ran %u times", n, i,
		      atomic_load(&c.hits[i]));
	free(c.hits);
	pthread_mutex_destroy(&c.lock);
	return atomic_load(&c.ntids);
}

static int fail_at_kernel(struct usvm_kctx *ctx, unsigned long idx, void *arg)
{
	atomic_ulong *ran = arg;

	(void)ctx;
	atomic_fetch_add(ran, 1);
	return idx == 7 ? -EXDEV : 0;
}

static int nested_kernel(struct usvm_kctx *ctx, unsigned long idx, void *arg)
{
	struct counts *c = arg;
	unsigned long i;

	(void)idx;
	/* Enough inner indexes that pool threads would be wanted. */
	for (i = 0; i < 3; i++)
		if (launch_counted(usvm_kctx_device(ctx), 16 + c->n, 1) < 1)
			return -EIO;
	return 0;
}

struct racer {
	struct usvm_device *d;
	unsigned int id;
};

static void *racer_main(void *arg)
{
	struct racer *r = arg;
	unsigned int i;

	for (i = 0; i < 300; i++)
		launch_counted(r->d, 1 + (i * 7 + r->id) % 40, 1);
	return NULL;
}

int main(void)
{
	static const unsigned int threads[] = { 1, 2, 4, 16 };
	static const unsigned long sizes[] = { 1, 2, 3, 5, 64, 1000, 5000 };
	struct usvm_device_options o = { .name = "launch" };
	struct usvm_device *d;
	struct usvm_mm *mm;
	unsigned int t, k, i, used;
	atomic_ulong ran = 0;
	pthread_t tids[4];
	struct racer racers[4];
	struct counts nest = { .n = 4 };
	int err;

	test_init("dev_launch", 120);
	mm = test_mm_create(NULL);

	for (t = 0; t < ARRAY_SIZE(threads); t++) {
		o.threads = threads[t];
		CHECK_OK(usvm_device_create(mm, &o, &d));
		for (k = 0; k < ARRAY_SIZE(sizes); k++) {
			used = launch_counted(d, sizes[k], 1);
			CHECK(used >= 1 && used <= threads[t], "%u threads ran %lu indexes on a "
			      "device of %u", used, sizes[k], threads[t]);
		}
		/* A long launch: the pool threads join it (with up to 20 tries,
		 * since a loaded machine may not schedule them in time). */
		for (i = 0, used = 0; i < 20 && used < MIN_UL(threads[t], 2u); i++)
			used = launch_counted(d, 2000, MIN_UL(threads[t], 2u));
		CHECK(used >= MIN_UL(threads[t], 2u), "a device of %u threads ran a 2000-index "
		      "launch on %u thread(s) only, 20 times", threads[t], used);
		usvm_device_destroy(d);
	}

	o.threads = 4;
	CHECK_OK(usvm_device_create(mm, &o, &d));
	err = usvm_device_launch(d, fail_at_kernel, 100000, &ran);
	CHECK(err == -EXDEV, "a kernel returning -EXDEV made the launch return %d", err);
	CHECK(atomic_load(&ran) < 100000, "the launch went on after the failure (%lu ran)",
	      (unsigned long)atomic_load(&ran));
	CHECK_RET(usvm_device_launch(d, NULL, 1, NULL), -EINVAL);
	CHECK_RET(usvm_device_launch(d, fail_at_kernel, 0, &ran), 0);

	pthread_mutex_init(&nest.lock, NULL);
	nest.hits = calloc(nest.n, sizeof(*nest.hits));
	CHECK_OK(usvm_device_launch(d, nested_kernel, nest.n, &nest));
	free(nest.hits);

	for (i = 0; i < 4; i++) {
		racers[i] = (struct racer){ .d = d, .id = i };
		CHECK(!pthread_create(&tids[i], NULL, racer_main, &racers[i]), "pthread_create");
	}
	for (i = 0; i < 4; i++)
		pthread_join(tids[i], NULL);
	usvm_device_destroy(d);

	/* A pool never started. */
	CHECK_OK(usvm_device_create(mm, &o, &d));
	usvm_device_destroy(d);
	usvm_mm_destroy(mm);
	printf("dev_launch: ok\n");
	return 0;
}

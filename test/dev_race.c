// SPDX-License-Identifier: MIT
/*
 * dev_race: CPU threads and device threads (of one or two devices) write
 * the same pages at the same time for a bounded time (~1 s per setup).
 *
 * Every 8-byte slot of a 256 KiB buffer is owned by exactly one actor
 * (slot s by actor s % NACT: slices interleaved within every page).  An
 * actor repeatedly picks a page and writes an increasing value to each of
 * its slots there, reads them back at once (read-your-writes, through the
 * device page table for device actors), and remembers the last value per
 * slot.  Meanwhile pages migrate between system memory and device memory
 * (policy ALWAYS: every device fault migrates, every CPU touch migrates
 * back).  At the end every slot holds its owner's last value, checked by
 * the CPU and by each device: no write is lost, none lands in the wrong
 * place.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include "helpers.h"

#define BUF (256 * KiB)
#define NSLOT (BUF / 8)
#define NCPU 2
#define NDEV 4          /* device actors (kernel indices), split over the devices */
#define NACT (NCPU + NDEV)
#define RUN_NS 1000000000ull

struct race {
	uint64_t *buf;
	uint64_t last[NACT][NSLOT / NACT + 1]; /* last value written, per owned slot */
	uint64_t gen[NACT];
	uint64_t rng[NACT];
	atomic_int stop;
	int ndev;               /* 1 or 2 devices share the NDEV actors */
};

static uint64_t val(int actor, uint64_t gen, size_t slot)
{
	return ((uint64_t)(actor + 1) << 56) | (gen << 20) | (slot & 0xfffff);
}

/* One generation of @actor: write its slots in a random page, check them. */
static int step(struct race *r, int actor, struct usvm_kctx *c)
{
	size_t page = (size_t)(rng_next(&r->rng[actor]) % (BUF / PAGE));
	size_t s0 = page * (PAGE / 8), s;
	uint64_t g = ++r->gen[actor];
	int err;

	for (s = s0; s < s0 + PAGE / 8; s++) {
		uint64_t v = val(actor, g, s), back = 0;

		if ((int)(s % NACT) != actor)
			continue;
		if (c) {
			err = usvm_dev_write(c, &r->buf[s], &v, sizeof(v));
			if (!err)
				err = usvm_dev_read(c, &r->buf[s], &back, sizeof(back));
			if (err)
				return err;
		} else {
			__atomic_store_n(&r->buf[s], v, __ATOMIC_RELAXED);
			back = __atomic_load_n(&r->buf[s], __ATOMIC_RELAXED);
		}
		CHECK(back == v, "actor %d slot %zu: wrote %#llx, read back %#llx", actor, s,
		      (unsigned long long)v, (unsigned long long)back);
		r->last[actor][s / NACT] = v;
	}
	return 0;
}

struct actor_arg {
	struct race *r;
	int actor;              /* CPU actor, or the device's index */
	struct usvm_device *dev;
	uint64_t launches;
};

static void *cpu_main(void *p)
{
	struct actor_arg *a = p;

	while (!atomic_load(&a->r->stop))
		step(a->r, a->actor, NULL);
	return NULL;
}

/* Kernel: index i is the i-th device actor of its device. */
static int k_actor(struct usvm_kctx *c, unsigned long i, void *arg)
{
	struct actor_arg *a = arg;
	int actor = NCPU + a->actor * (NDEV / a->r->ndev) + (int)i;
	int k, err = 0;

	for (k = 0; k < 4 && !err; k++)
		err = step(a->r, actor, c);
	return err;
}

/* One launcher thread per device, launching until told to stop. */
static void *dev_main(void *p)
{
	struct actor_arg *a = p;

	while (!atomic_load(&a->r->stop)) {
		int err = usvm_device_launch(a->dev, k_actor, NDEV / a->r->ndev, a);

		CHECK(err == 0, "%s: launch %llu: %d (%s)", usvm_device_name(a->dev),
		      (unsigned long long)a->launches, err, usvm_strerror(err));
		a->launches++;
	}
	return NULL;
}

static void verify(struct race *r, const uint64_t *img, const char *who)
{
	size_t s;

	for (s = 0; s < NSLOT; s++) {
		int owner = (int)(s % NACT);
		uint64_t want = r->last[owner][s / NACT];

		CHECK(img[s] == want, "%s: slot %zu (owner %d) holds %#llx, expected %#llx", who, s,
		      owner, (unsigned long long)img[s], (unsigned long long)want);
	}
}

static void one(struct usvm_mm *mm, struct usvm_device **devs, int ndev, int registered,
		const char *what)
{
	struct race *r = calloc(1, sizeof(*r));
	struct actor_arg ca[NCPU + 2];
	pthread_t th[NCPU + 2];
	uint64_t launches = 0;
	uint64_t *img = malloc(BUF);
	int t, i;

	CHECK(r && img, "calloc");
	printf("  %s, %s memory\n", what, registered ? "registered" : "managed");
	if (registered) {
		r->buf = map_aligned(BUF, 64 * KiB);
		CHECK_OK(usvm_register(mm, r->buf, BUF));
	} else {
		r->buf = test_alloc(mm, BUF);
	}
	memset(r->buf, 0, BUF);
	r->ndev = ndev;
	for (i = 0; i < NACT; i++)
		r->rng[i] = 1000 + (uint64_t)i;
	atomic_init(&r->stop, 0);
	for (t = 0; t < NCPU + ndev; t++) {
		ca[t] = (struct actor_arg){ r, t < NCPU ? t : t - NCPU, t < NCPU ? NULL : devs[t - NCPU], 0 };
		CHECK(pthread_create(&th[t], NULL, t < NCPU ? cpu_main : dev_main, &ca[t]) == 0,
		      "pthread_create");
	}
	sleep_ms(RUN_NS / 1000000);
	atomic_store(&r->stop, 1);
	for (t = 0; t < NCPU + ndev; t++)
		pthread_join(th[t], NULL);
	for (t = NCPU; t < NCPU + ndev; t++)
		launches += ca[t].launches;

	/* Every byte, from every device and from the CPU. */
	for (i = 0; i < ndev; i++) {
		memset(img, 0, BUF);
		CHECK_OK(dev_copy(devs[i], r->buf, img, BUF, PAGE, 0));
		verify(r, img, usvm_device_name(devs[i]));
	}
	verify(r, r->buf, "CPU");
	printf("    %llu launches, generations:", (unsigned long long)launches);
	for (i = 0; i < NACT; i++)
		printf(" %llu", (unsigned long long)r->gen[i]);
	printf("\n");
	for (i = 0; i < NACT; i++)
		CHECK(r->gen[i] > 0, "actor %d never ran", i);
	for (i = 0; i < ndev; i++)
		CHECK(dstats(devs[i]).fatal_faults == 0, "fatal faults");

	if (registered) {
		CHECK_OK(usvm_unregister(mm, r->buf, BUF));
		verify(r, r->buf, "CPU after unregister");
		munmap(r->buf, BUF);
	} else {
		CHECK_OK(usvm_free(mm, r->buf));
	}
	free(img);
	free(r);
}

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm1, *pm2;
	struct usvm_device *devs[2];
	int reg;

	test_init("dev_race", 90);
	mm = test_mm_create(NULL);
	pm1 = test_sim_create("vram1", 16 * MiB);
	pm2 = test_sim_create("vram2", 16 * MiB);
	for (reg = 0; reg < 2; reg++) {
		devs[0] = dev_new(mm, "sysdev", NULL, USVM_POLICY_ALWAYS, 2);
		one(mm, devs, 1, reg, "device without memory");
		usvm_device_destroy(devs[0]);

		devs[0] = dev_new(mm, "gpu", pm1, USVM_POLICY_ALWAYS, 4);
		one(mm, devs, 1, reg, "device memory, ALWAYS");
		usvm_device_destroy(devs[0]);

		devs[0] = dev_new(mm, "gpu0", pm1, USVM_POLICY_ALWAYS, 2);
		devs[1] = dev_new(mm, "gpu1", pm2, USVM_POLICY_ALWAYS, 2);
		one(mm, devs, 2, reg, "two devices, own memories, ALWAYS");
		usvm_device_destroy(devs[0]);
		usvm_device_destroy(devs[1]);
	}
	usvm_mm_stats_print(mm, stdout);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm1);
	usvm_pagemap_destroy(pm2);
	printf("ok\n");
	return 0;
}

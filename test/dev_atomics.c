// SPDX-License-Identifier: MIT
/*
 * dev_atomics: device atomics (which need the page in the device's own
 * memory: devmem_only faults) racing with CPU atomics on the same page
 * (hmm-tests exclusive; drm_gpusvm devmem_only).
 *
 *   1. Many device threads add to word 0 of a page while CPU threads add to
 *      other words of the same page, for a bounded time (~0.5 s).  Final sums
 *      are exact, and every value returned as "old" by the device adds is
 *      seen exactly once.
 *   2. Device and CPU atomics on the very same word: alternating rounds,
 *      then both at once; the count is exact.  Device increments by
 *      cmpxchg loops as well as by adds.
 *   3. The same with a device without memory (system atomics) and on
 *      registered memory.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include "helpers.h"

#define NCPU 2
#define KADDS 16      /* device adds per kernel index */
#define KIDX 64       /* kernel indices per launch */
#define RUN_NS 500000000ull

struct atom {
	uint64_t *word;        /* the device's counter */
	uint64_t *olds;        /* old values returned, per (launch, idx, k) */
	size_t nolds, base;    /* capacity; first slot of this launch */
	int use_cmpxchg;
};

static int k_add(struct usvm_kctx *c, unsigned long i, void *arg)
{
	struct atom *a = arg;
	int k, err;

	for (k = 0; k < KADDS; k++) {
		uint64_t old = 0;

		if (a->use_cmpxchg) {
			uint64_t seen = 0, want = 0;

			/* Increment by compare-and-swap until it sticks. */
			err = usvm_dev_atomic_cmpxchg_u64(c, a->word, 0, 0, &seen);
			while (!err) {
				want = seen;
				err = usvm_dev_atomic_cmpxchg_u64(c, a->word, want, want + 1, &seen);
				if (!err && seen == want)
					break;
			}
			old = want;
		} else {
			err = usvm_dev_atomic_add_u64(c, a->word, 1, &old);
		}
		if (err)
			return err;
		if (a->olds) {
			size_t slot = a->base + i * KADDS + (size_t)k;

			if (slot < a->nolds)
				a->olds[slot] = old;
		}
	}
	return 0;
}

struct cpu_arg {
	uint64_t *word;
	uint64_t count;
	atomic_int *stop;
};

static void *cpu_adder(void *p)
{
	struct cpu_arg *a = p;

	while (!atomic_load(a->stop)) {
		__atomic_fetch_add(a->word, 1, __ATOMIC_SEQ_CST);
		a->count++;
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* 1. Device adds word 0, CPU threads add words 1..NCPU of the same page. */
static void same_page(struct usvm_mm *mm, struct usvm_device *d, uint64_t *page)
{
	const size_t cap = 1u << 22;
	struct cpu_arg ca[NCPU];
	pthread_t th[NCPU];
	atomic_int stop;
	struct atom a = { page, malloc(cap * sizeof(uint64_t)), cap, 0, 0 };
	uint64_t t0, launches = 0, total, i;
	int t;

	(void)mm;
	CHECK(a.olds != NULL, "malloc");
	memset(page, 0, PAGE);
	atomic_init(&stop, 0);
	for (t = 0; t < NCPU; t++) {
		ca[t] = (struct cpu_arg){ &page[1 + t], 0, &stop };
		CHECK(pthread_create(&th[t], NULL, cpu_adder, &ca[t]) == 0, "pthread_create");
	}
	t0 = now_ns();
	while (now_ns() - t0 < RUN_NS && a.base + KIDX * KADDS <= cap) {
		int err = usvm_device_launch(d, k_add, KIDX, &a);

		CHECK(err == 0, "device atomics launch %llu: %d (%s)", (unsigned long long)launches,
		      err, usvm_strerror(err));
		launches++;
		a.base += KIDX * KADDS;
	}
	atomic_store(&stop, 1);
	for (t = 0; t < NCPU; t++)
		pthread_join(th[t], NULL);
	total = launches * KIDX * KADDS;
	CHECK(page[0] == total, "device counter %llu, expected %llu",
	      (unsigned long long)page[0], (unsigned long long)total);
	for (t = 0; t < NCPU; t++)
		CHECK(page[1 + t] == ca[t].count, "CPU counter %d: %llu, expected %llu", t,
		      (unsigned long long)page[1 + t], (unsigned long long)ca[t].count);
	for (i = 1 + NCPU; i < PAGE / 8; i++)
		CHECK(page[i] == 0, "word %llu touched", (unsigned long long)i);
	/* Every old value 0..total-1 exactly once: no two adds saw the same value. */
	qsort(a.olds, total, sizeof(uint64_t), cmp_u64);
	for (i = 0; i < total; i++)
		CHECK(a.olds[i] == i, "device add old values: slot %llu holds %llu (lost or "
		      "duplicated update)", (unsigned long long)i, (unsigned long long)a.olds[i]);
	printf("    same page: %llu device adds in %llu launches, CPU %llu + %llu\n",
	       (unsigned long long)total, (unsigned long long)launches,
	       (unsigned long long)ca[0].count, (unsigned long long)ca[1].count);
	free(a.olds);
}

/* 2. The very same word. */
static void same_word(struct usvm_device *d, uint64_t *page)
{
	struct atom a = { page, NULL, 0, 0, 0 };
	struct cpu_arg ca;
	pthread_t th;
	atomic_int stop;
	uint64_t expect = 0, t0, launches = 0;
	int round, j;

	memset(page, 0, PAGE);
	/* Alternating: device round, CPU round. */
	for (round = 0; round < 20; round++) {
		a.use_cmpxchg = round & 1;
		CHECK_OK(usvm_device_launch(d, k_add, KIDX, &a));
		expect += KIDX * KADDS;
		CHECK(__atomic_load_n(page, __ATOMIC_SEQ_CST) == expect,
		      "round %d: after device: %llu, expected %llu", round,
		      (unsigned long long)page[0], (unsigned long long)expect);
		for (j = 0; j < 1000; j++)
			__atomic_fetch_add(page, 1, __ATOMIC_SEQ_CST);
		page[1] += 3; /* a plain CPU write on the page too */
		expect += 1000;
		CHECK(page[0] == expect, "round %d: after CPU: %llu, expected %llu", round,
		      (unsigned long long)page[0], (unsigned long long)expect);
	}
	CHECK(page[1] == 60, "plain CPU word: %llu", (unsigned long long)page[1]);
	/* Both at once, bounded. */
	atomic_init(&stop, 0);
	ca = (struct cpu_arg){ page, 0, &stop };
	CHECK(pthread_create(&th, NULL, cpu_adder, &ca) == 0, "pthread_create");
	t0 = now_ns();
	while (now_ns() - t0 < RUN_NS / 2) {
		a.use_cmpxchg = (int)(launches & 1);
		CHECK_OK(usvm_device_launch(d, k_add, KIDX, &a));
		launches++;
	}
	atomic_store(&stop, 1);
	pthread_join(th, NULL);
	expect += launches * KIDX * KADDS + ca.count;
	CHECK(page[0] == expect, "same word, concurrent: %llu, expected %llu (%llu launches, "
	      "%llu CPU adds)", (unsigned long long)page[0], (unsigned long long)expect,
	      (unsigned long long)launches, (unsigned long long)ca.count);
	printf("    same word: %llu device launches, %llu concurrent CPU adds\n",
	       (unsigned long long)launches, (unsigned long long)ca.count);
}

static void one(struct usvm_mm *mm, struct usvm_pagemap *pm, int registered,
		unsigned long timeslice_ms)
{
	struct usvm_device_options o = { .name = "atomics", .pagemap = pm, .threads = 4,
					 .timeslice_ms = timeslice_ms };
	struct usvm_device *d = NULL;
	struct usvm_device_stats s;
	uint64_t *page;

	printf("  %s, %s memory, timeslice %lu ms\n", pm ? "device memory" : "no device memory",
	       registered ? "registered" : "managed", timeslice_ms);
	CHECK_OK(usvm_device_create(mm, &o, &d));
	if (registered) {
		page = map_aligned(USVM_BLOCK_SIZE, USVM_BLOCK_SIZE);
		CHECK_OK(usvm_register(mm, page, USVM_BLOCK_SIZE));
	} else {
		page = test_alloc(mm, PAGE);
	}
	same_page(mm, d, page);
	same_word(d, page);
	s = dstats(d);
	CHECK(s.atomics > 0, "no atomics counted");
	CHECK(s.fatal_faults == 0, "fatal faults: %llu", (unsigned long long)s.fatal_faults);
	if (pm)
		CHECK(s.bytes_mapped_device > 0, "atomics never mapped device memory");
	if (registered) {
		CHECK_OK(usvm_unregister(mm, page, USVM_BLOCK_SIZE));
		munmap(page, USVM_BLOCK_SIZE);
	} else {
		CHECK_OK(usvm_free(mm, page));
	}
	usvm_device_destroy(d);
}

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;

	test_init("dev_atomics", 90);
	test_setup(&mm, &pm, 16 * MiB);
	one(mm, NULL, 0, 0);
	one(mm, pm, 0, 0);
	one(mm, pm, 1, 0);
	one(mm, pm, 0, 2);
	usvm_mm_stats_print(mm, stdout);
	usvm_pagemap_stats_print(pm, stdout);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * reg_unregister_race: usvm_unregister while another thread populates and
 * evicts the same range.  Every byte must be in place after unregister
 * returns 0.  (Found by the model test: unregister skipped blocks whose
 * state bit it read without the block lock, while a populate that had
 * passed its checks was committing there; the teardown then dropped the
 * freshly populated device pages.)  About 300 rounds or 5 s.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include <sys/mman.h>
#include "helpers.h"

#define LEN (3 * MiB + 256 * KiB) /* two block pieces, neither aligned */

static struct usvm_mm *mm;
static struct usvm_pagemap *pm;
static _Atomic(uint8_t *) cur;
static atomic_int stop;

static void *chaos(void *arg)
{
	uint64_t rng = 7;

	(void)arg;
	while (!atomic_load(&stop)) {
		uint8_t *p = atomic_load(&cur);
		int err;

		if (!p)
			continue;
		err = usvm_pagemap_populate_mm(pm, p, p + LEN, mm, 1);
		CHECK(err == 0 || err == -EFAULT || err == -EBUSY || err == -ENOMEM,
		      "populate: %d (%s)", err, usvm_strerror(err));
		if (rng_next(&rng) & 1)
			CHECK(usvm_pagemap_evict(pm, NULL, NULL) >= 0, "evict");
	}
	return NULL;
}

int main(void)
{
	uint64_t deadline, rng = 1;
	pthread_t th;
	int round;

	test_init("reg_unregister_race", 60);
	test_setup(&mm, &pm, 64 * MiB);
	CHECK(pthread_create(&th, NULL, chaos, NULL) == 0, "thread");
	deadline = now_ns() + 5000000000ull;
	for (round = 0; round < 300 && now_ns() < deadline; round++) {
		uint8_t *p = map_aligned(LEN, PAGE);

		pattern_fill(p, LEN, (uint64_t)round);
		CHECK_OK(usvm_register(mm, p, LEN));
		atomic_store(&cur, p);
		usleep((useconds_t)(rng_next(&rng) % 300));
		CHECK_OK(usvm_unregister(mm, p, LEN));
		atomic_store(&cur, NULL);
		CHECK_PATTERN(p, LEN, (uint64_t)round);
		munmap(p, LEN);
	}
	atomic_store(&stop, 1);
	pthread_join(th, NULL);
	printf("%d rounds\n", round);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

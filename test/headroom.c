// SPDX-License-Identifier: MIT
/*
 * headroom: a pagemap with USVM_HEADROOM keeps that much device memory free
 * by evicting least recently used allocations ahead of need, on its own
 * thread.
 *
 *   - 4 MiB headroom on 8 MiB: populating a third 2 MiB buffer leaves 2 MiB
 *     free, so the oldest buffer is evicted soon after (by the pagemap's
 *     thread: headroom_evictions), never the newest; the next populate then
 *     finds room and evicts nothing itself;
 *   - the evicted buffers' bytes are intact;
 *   - headroom 0 (the default): only populates evict, on demand;
 *   - destroying the pagemap stops its thread.
 * Waiting for the thread is bounded (60 s) and asserts nothing about speed.
 */
#include "helpers.h"

#define LEN (2 * MiB)
#define NBUF 5

static struct usvm_pagemap_stats wait_for_room(struct usvm_pagemap *pm, uint64_t want_free)
{
	uint64_t deadline = now_ns() + 60000000000ull;
	struct usvm_pagemap_stats s = pm_stats(pm);

	while (s.used_bytes + want_free > s.capacity_bytes && now_ns() < deadline) {
		sleep_ms(1);
		s = pm_stats(pm);
	}
	CHECK(s.used_bytes + want_free <= s.capacity_bytes, "headroom never made: %lu used",
	      (unsigned long)s.used_bytes);
	return s;
}

/* Evictions populates made themselves, once the thread is done. */
static uint64_t on_demand_evictions(struct usvm_pagemap *pm)
{
	uint64_t deadline = now_ns() + 60000000000ull;
	struct usvm_pagemap_stats prev, s = wait_for_room(pm, 4 * MiB);

	do { /* the thread counts its eviction just after it is done */
		prev = s;
		sleep_ms(2);
		s = pm_stats(pm);
	} while ((s.evictions != prev.evictions || s.headroom_evictions != prev.headroom_evictions) &&
		 now_ns() < deadline);
	return s.evictions - s.headroom_evictions;
}

static void run(const char *headroom)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_pagemap_stats s;
	uint8_t *p[NBUF];
	int i, on = strcmp(headroom, "0") != 0;

	setenv("USVM_HEADROOM", headroom, 1);
	test_setup(&mm, &pm, 8 * MiB);
	CHECK(pm_stats(pm).headroom_bytes == (on ? 4 * MiB : 0), "headroom %s: %lu bytes", headroom,
	      (unsigned long)pm_stats(pm).headroom_bytes);
	for (i = 0; i < NBUF; i++) {
		uint64_t before = on ? on_demand_evictions(pm) : 0, after;

		p[i] = test_alloc(mm, LEN);
		pattern_fill(p[i], LEN, (uint64_t)i + 1);
		CHECK_OK(usvm_pagemap_populate_mm(pm, p[i], p[i] + LEN, mm, 0));
		CHECK(resident(mm, p[i], LEN, pm) == LEN, "headroom %s: buffer %d not populated",
		      headroom, i);
		after = on ? on_demand_evictions(pm) : 0;
		CHECK(after == before, "headroom %s: populate %d evicted on demand (%lu, then %lu)",
		      headroom, i, (unsigned long)before, (unsigned long)after);
	}
	if (on) {
		s = wait_for_room(pm, 4 * MiB);
		CHECK(s.headroom_evictions >= 3 && s.headroom_evicted_bytes >= 3 * LEN,
		      "headroom: %lu evictions of %lu bytes", (unsigned long)s.headroom_evictions,
		      (unsigned long)s.headroom_evicted_bytes);
		CHECK(resident(mm, p[NBUF - 1], LEN, pm) == LEN, "headroom: the newest was evicted");
	} else {
		s = pm_stats(pm);
		CHECK(!s.headroom_evictions && s.evictions >= 1, "no headroom: %lu evictions, %lu "
		      "headroom's", (unsigned long)s.evictions, (unsigned long)s.headroom_evictions);
	}
	for (i = 0; i < NBUF; i++) {
		CHECK(pattern_check(p[i], LEN, (uint64_t)i + 1) == PATTERN_OK,
		      "headroom %s: buffer %d bytes", headroom, i);
		CHECK_OK(usvm_free(mm, p[i]));
	}
	usvm_pagemap_destroy(pm);
	usvm_mm_destroy(mm);
}

int main(void)
{
	test_init("headroom", 300);
	skip_if_no_uffd();
	run("4M");
	run("0");
	printf("headroom: ok\n");
	return 0;
}

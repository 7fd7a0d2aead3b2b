// SPDX-License-Identifier: MIT
/*
 * many_allocs: 100 000 live 4 KiB managed allocations (more than
 * vm.max_map_count would allow as separate mappings).  Each gets a distinct
 * value in its first and last 8 bytes and a per-allocation pattern in a
 * sample; a sample is populated (one device allocation each), everything is
 * verified, and all are freed (device copies dropped: device memory empty).
 */
#include "helpers.h"

#define N 100000
#define SAMPLE_EVERY 37

static uint64_t tag(size_t i)
{
	return 0xA110C000000000ull ^ (i * 0x9E3779B97F4A7C15ull);
}

static void check_alloc(uint8_t *p, size_t i)
{
	uint64_t v;

	memcpy(&v, p, 8);
	CHECK(v == tag(i), "alloc %zu: head 0x%llx", i, (unsigned long long)v);
	memcpy(&v, p + PAGE - 8, 8);
	CHECK(v == ~tag(i), "alloc %zu: tail 0x%llx", i, (unsigned long long)v);
	if (i % SAMPLE_EVERY == 0)
		CHECK_PATTERN_AT(p + 8, PAGE - 16, i, 8);
}

/* settle() every allocation a CPU fault brought back. */
static void settle_all(struct usvm_mm *mm, uint8_t **ptr)
{
	size_t i;

	for (i = 0; i < N; i += SAMPLE_EVERY)
		settle(mm, ptr[i], PAGE);
}

int main(void)
{
	uint8_t **ptr;
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_mm_stats m0, m1;
	struct usvm_pagemap_stats ps;
	size_t i, sampled = 0;
	uint64_t t0;

	test_init("many_allocs", 120);
	test_setup(&mm, &pm, 64 * MiB);
	ptr = calloc(N, sizeof(*ptr));
	CHECK(ptr, "calloc");
	m0 = mm_stats(mm);
	t0 = now_ns();
	for (i = 0; i < N; i++) {
		uint64_t v = tag(i);

		ptr[i] = test_alloc(mm, PAGE);
		CHECK(((uintptr_t)ptr[i] & (PAGE - 1)) == 0, "unaligned allocation");
		memcpy(ptr[i], &v, 8);
		v = ~v;
		memcpy(ptr[i] + PAGE - 8, &v, 8);
		if (i % SAMPLE_EVERY == 0)
			pattern_fill_at(ptr[i] + 8, PAGE - 16, i, 8);
	}
	printf("%d allocations written in %.0f ms\n", N, (now_ns() - t0) / 1e6);
	m1 = mm_stats(mm);
	CHECK(m1.live_allocs - m0.live_allocs == N, "live_allocs %llu",
	      (unsigned long long)(m1.live_allocs - m0.live_allocs));
	CHECK(m1.live_bytes - m0.live_bytes == (uint64_t)N * PAGE, "live_bytes");

	/* Populate every SAMPLE_EVERY-th allocation: one device allocation each. */
	t0 = now_ns();
	for (i = 0; i < N; i += SAMPLE_EVERY) {
		CHECK_OK(usvm_pagemap_populate_mm(pm, ptr[i], ptr[i] + PAGE, mm, 0));
		sampled++;
	}
	ps = pm_stats(pm);
	CHECK(ps.live_allocations == sampled, "live_allocations %llu, expected %zu",
	      (unsigned long long)ps.live_allocations, sampled);
	CHECK(ps.used_bytes == sampled * PAGE, "used_bytes");
	for (i = 0; i < N; i += SAMPLE_EVERY * 7) {
		struct usvm_pagemap *where;

		CHECK_OK(usvm_where(mm, ptr[i] + 100, &where));
		CHECK(where == pm, "alloc %zu not on the device", i);
		CHECK_OK(usvm_where(mm, ptr[i + 1], &where));
		CHECK(where == NULL, "neighbour %zu on the device", i + 1);
	}
	printf("%zu populated in %.0f ms\n", sampled, (now_ns() - t0) / 1e6);

	/* Verify everything (faults the sample back), but leave a third on the device. */
	t0 = now_ns();
	for (i = 0; i < N; i++) {
		if (i % (SAMPLE_EVERY * 3) == 0)
			continue;
		check_alloc(ptr[i], i);
	}
	settle_all(mm, ptr);
	ps = pm_stats(pm);
	CHECK(ps.live_allocations == (sampled + 2) / 3, "live_allocations %llu after faults",
	      (unsigned long long)ps.live_allocations);
	printf("verified in %.0f ms\n", (now_ns() - t0) / 1e6);

	/* Free everything; allocations on the device drop their device copies. */
	m0 = mm_stats(mm);
	t0 = now_ns();
	for (i = 0; i < N; i++)
		CHECK_OK(usvm_free(mm, ptr[i]));
	printf("freed in %.0f ms\n", (now_ns() - t0) / 1e6);
	m1 = mm_stats(mm);
	CHECK(m1.live_allocs == 0 && m1.live_bytes == 0, "live allocations left");
	CHECK(m1.frees - m0.frees == N, "frees");
	CHECK(m1.device_bytes_dropped - m0.device_bytes_dropped == (sampled + 2) / 3 * PAGE,
	      "device_bytes_dropped %llu",
	      (unsigned long long)(m1.device_bytes_dropped - m0.device_bytes_dropped));
	ps = pm_stats(pm);
	CHECK(ps.used_bytes == 0 && ps.live_allocations == 0, "device memory left: %llu",
	      (unsigned long long)ps.used_bytes);
	CHECK_RET(usvm_free(mm, ptr[0]), -EINVAL);

	/* Freed memory is reused and reads as zero. */
	for (i = 0; i < 1000; i++) {
		ptr[i] = test_alloc(mm, PAGE);
		CHECK_ZERO(ptr[i], PAGE);
		pattern_fill(ptr[i], PAGE, 500000 + i);
	}

	/*
	 * One device allocation holding 16 neighbouring managed allocations:
	 * freeing some drops just their pages, the others keep their data.
	 */
	for (i = 0; i + 16 <= 1000; i++) {
		size_t k;

		for (k = 1; k < 16; k++)
			if (ptr[i + k] != ptr[i] + k * PAGE)
				break;
		if (k == 16 && (uintptr_t)ptr[i] / USVM_BLOCK_SIZE ==
				       ((uintptr_t)ptr[i] + 16 * PAGE - 1) / USVM_BLOCK_SIZE)
			break;
	}
	if (i + 16 <= 1000) {
		size_t first = i, k;

		ps = pm_stats(pm);
		CHECK_OK(usvm_pagemap_populate_mm(pm, ptr[first], ptr[first] + 16 * PAGE, mm, 0));
		CHECK(pm_stats(pm).live_allocations == ps.live_allocations + 1, "one device allocation");
		m0 = mm_stats(mm);
		for (k = 0; k < 16; k += 2)
			CHECK_OK(usvm_free(mm, ptr[first + k]));
		m1 = mm_stats(mm);
		CHECK(m1.device_bytes_dropped - m0.device_bytes_dropped == 8 * PAGE, "dropped %llu",
		      (unsigned long long)(m1.device_bytes_dropped - m0.device_bytes_dropped));
		for (k = 1; k < 16; k += 2)
			CHECK(resident(mm, ptr[first + k], PAGE, pm) == (long)PAGE,
			      "survivor %zu left the device", k);
		CHECK(pm_stats(pm).live_allocations == ps.live_allocations + 1, "device allocation gone");
		for (k = 1; k < 16; k += 2) /* the first read brings them all back */
			CHECK_PATTERN(ptr[first + k], PAGE, 500000 + first + k);
		settle(mm, ptr[first], 16 * PAGE);
		CHECK(pm_stats(pm).live_allocations == ps.live_allocations, "device allocation not released after coming back");
		for (k = 0; k < 16; k += 2)
			ptr[first + k] = test_alloc(mm, PAGE); /* keep the free loop simple */
	} else {
		printf("no 16 neighbouring allocations: shared device allocation case skipped\n");
	}
	for (i = 0; i < 1000; i++)
		CHECK_OK(usvm_free(mm, ptr[i]));
	ps = pm_stats(pm);
	CHECK(ps.used_bytes == 0 && ps.live_allocations == 0, "device memory left at the end");

	free(ptr);
	usvm_mm_stats_print(mm, stdout);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

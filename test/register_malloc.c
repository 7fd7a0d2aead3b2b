// SPDX-License-Identifier: MIT
/*
 * register_malloc: memory the program already has, with data in it, is
 * adopted by usvm_register (posix_memalign from the heap and from mmap,
 * aligned_alloc, an anonymous mmap, a THP-advised 2 MiB-aligned mmap),
 * populated into the device, read back by CPU faults, populated again and
 * unregistered while on the device: every byte is in place, and the memory
 * is ordinary again (writable, freeable, munmap-able).
 */
#include <sys/mman.h>
#include "helpers.h"

static struct usvm_mm *mm;
static struct usvm_pagemap *pm;

/* AnonHugePages of the whole process in KiB (informational), -1 unknown. */
static long anon_huge_kb(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static void exercise(const char *what, uint8_t *p, size_t len, uint64_t seed)
{
	struct usvm_mm_stats m0;
	size_t half = (len / 2) & ~(PAGE - 1);

	pattern_fill(p, len, seed); /* existing data before registration */
	printf("%s: AnonHugePages %ld kB before registering\n", what, anon_huge_kb());
	m0 = mm_stats(mm);
	CHECK_OK(usvm_register(mm, p, len));
	CHECK(mm_stats(mm).registered_ranges == m0.registered_ranges + 1, "%s: registered_ranges", what);
	CHECK(resident(mm, p, len, NULL) == (long)len, "%s: not in system memory", what);
	CHECK_PATTERN(p, len, seed);

	/* Populate, read back by faults. */
	CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + len, mm, 0));
	CHECK(resident(mm, p, len, pm) == (long)len, "%s: not on device (%ld of %zu)", what,
	      resident(mm, p, len, pm), len);
	CHECK_PATTERN(p, len, seed);
	CHECK(resident(mm, p, len, NULL) == (long)len, "%s: not back", what);

	/* Write through device round trips. */
	pattern_fill(p, len, seed + 1);
	CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + len, mm, 0));
	CHECK(usvm_pagemap_evict(pm, mm, p) > 0, "%s: evict", what);
	CHECK_PATTERN(p, len, seed + 1);

	/* Unregister with half the range on the device. */
	if (half >= PAGE) {
		CHECK_OK(usvm_pagemap_populate_mm(pm, p + half, p + len, mm, 0));
		CHECK(resident(mm, p + half, len - half, pm) == (long)(len - half), "%s: half", what);
	}
	CHECK_OK(usvm_unregister(mm, p, len));
	CHECK(mm_stats(mm).registered_ranges == m0.registered_ranges, "%s: registered_ranges after", what);
	CHECK(usvm_resident_bytes(mm, p, len, NULL) == -EFAULT, "%s: still managed", what);
	CHECK_RET(usvm_unregister(mm, p, len), -EINVAL);
	CHECK_PATTERN(p, len, seed + 1);
	/* Ordinary memory again. */
	pattern_fill(p, len, seed + 2);
	CHECK_PATTERN(p, len, seed + 2);
	/* Registering it again works. */
	CHECK_OK(usvm_register(mm, p, len));
	CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + len, mm, 0));
	CHECK_OK(usvm_unregister(mm, p, len));
	CHECK_PATTERN(p, len, seed + 2);
	printf("%s: %zu bytes ok\n", what, len);
}

int main(void)
{
	void *p;
	uint8_t *m;
	size_t i;

	test_init("register_malloc", 60);
	test_setup(&mm, &pm, 32 * MiB);

	/* Small heap block (brk heap): 64 KiB. */
	CHECK(posix_memalign(&p, PAGE, 64 * KiB) == 0, "posix_memalign");
	exercise("posix_memalign 64K", p, 64 * KiB, 1);
	free(p);

	/* Large block (malloc's mmap path), not block aligned. */
	CHECK(posix_memalign(&p, PAGE, 5 * MiB + 3 * PAGE) == 0, "posix_memalign");
	exercise("posix_memalign 5M", p, 5 * MiB + 3 * PAGE, 2);
	free(p);

	p = aligned_alloc(PAGE, 3 * PAGE);
	CHECK(p, "aligned_alloc");
	exercise("aligned_alloc 12K", p, 3 * PAGE, 3);
	free(p);

	/* Anonymous mmap with existing data; a never-touched tail too. */
	m = mmap(NULL, 4 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED, "mmap");
	exercise("mmap 4M", m, 4 * MiB, 4);
	CHECK_OK(usvm_register(mm, m, 8 * PAGE));
	CHECK_OK(usvm_pagemap_populate_mm(pm, m, m + 8 * PAGE, mm, 0));
	CHECK_OK(usvm_unregister(mm, m, 8 * PAGE));
	CHECK_PATTERN(m, 4 * MiB, 6);
	CHECK(munmap(m, 4 * MiB) == 0, "munmap");

	/* Never-touched anonymous memory: zeros survive the round trip. */
	m = mmap(NULL, 1 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED, "mmap");
	CHECK_OK(usvm_register(mm, m, MiB));
	CHECK_OK(usvm_pagemap_populate_mm(pm, m, m + MiB, mm, 0));
	CHECK(resident(mm, m, MiB, pm) == (long)MiB, "untouched registered not on device");
	CHECK_OK(usvm_unregister(mm, m, MiB));
	CHECK_ZERO(m, MiB);
	munmap(m, MiB);

	/* THP-advised, 2 MiB aligned (may be backed by huge pages). */
	m = mmap(NULL, 8 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED, "mmap");
	{
		uint8_t *a = (uint8_t *)(((uintptr_t)m + USVM_BLOCK_SIZE - 1) & ~(USVM_BLOCK_SIZE - 1));

		madvise(a, 4 * MiB, MADV_HUGEPAGE);
		exercise("THP 4M", a, 4 * MiB, 7);
	}
	munmap(m, 8 * MiB);

	/* Several registered ranges at once, unregistered in another order. */
	{
		uint8_t *r[4];

		for (i = 0; i < 4; i++) {
			CHECK(posix_memalign(&p, PAGE, 256 * KiB) == 0, "posix_memalign");
			r[i] = p;
			pattern_fill(r[i], 256 * KiB, 20 + i);
			CHECK_OK(usvm_register(mm, r[i], 256 * KiB));
			CHECK_OK(usvm_pagemap_populate_mm(pm, r[i], r[i] + 256 * KiB, mm, 0));
		}
		CHECK(mm_stats(mm).registered_ranges == 4, "registered_ranges");
		for (i = 0; i < 4; i++) {
			size_t k = (i * 3) % 4;

			CHECK_OK(usvm_unregister(mm, r[k], 256 * KiB));
			CHECK_PATTERN(r[k], 256 * KiB, 20 + k);
			free(r[k]);
		}
	}
	CHECK(pm_stats(pm).used_bytes == 0, "device memory left");

	usvm_pagemap_stats_print(pm, stdout);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * populate_fault: CPU-written data is populated into device memory (every
 * byte leaves system memory), then CPU reads fault every allocation back
 * (the migrate_to_ram path) and every byte is intact.  Statistics count one
 * device allocation per USVM_BLOCK_SIZE piece each way.
 * (hmm-tests: migrate, migrate_fault.)
 */
#include "helpers.h"

/* One allocation of @size: returns after checking everything. */
static void one_size(struct usvm_mm *mm, struct usvm_pagemap *pm, size_t size, uint64_t seed)
{
	struct usvm_mm_stats m0, m1;
	struct usvm_pagemap_stats p0, p1;
	struct usvm_pagemap *where;
	size_t len = (size + PAGE - 1) & ~(PAGE - 1);
	uint8_t *p = test_alloc(mm, size);
	uint64_t pieces = 0;
	uintptr_t a;

	/* Device allocations: one per block piece of the range. */
	for (a = (uintptr_t)p; a < (uintptr_t)p + len;) {
		uintptr_t next = (a & ~(USVM_BLOCK_SIZE - 1)) + USVM_BLOCK_SIZE;

		pieces++;
		a = next;
	}

	pattern_fill(p, len, seed);
	CHECK(resident(mm, p, len, NULL) == (long)len, "fresh data not in system memory");
	m0 = mm_stats(mm);
	p0 = pm_stats(pm);

	CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + len, mm, 0));
	CHECK(resident(mm, p, len, pm) == (long)len, "size %zu: only %ld bytes on device", size,
	      resident(mm, p, len, pm));
	CHECK(resident(mm, p, len, NULL) == 0, "size %zu: bytes left in system memory", size);
	CHECK_OK(usvm_where(mm, p + len - 1, &where));
	CHECK(where == pm, "usvm_where: %s", usvm_pagemap_name(where));

	m1 = mm_stats(mm);
	p1 = pm_stats(pm);
	CHECK(m1.migrations_to_dev - m0.migrations_to_dev == pieces,
	      "size %zu: %llu migrations to device, expected %llu", size,
	      (unsigned long long)(m1.migrations_to_dev - m0.migrations_to_dev),
	      (unsigned long long)pieces);
	CHECK(m1.bytes_to_dev - m0.bytes_to_dev == len, "bytes_to_dev");
	CHECK(p1.pages_migrated_in - p0.pages_migrated_in == len / PAGE, "pages_migrated_in %llu",
	      (unsigned long long)(p1.pages_migrated_in - p0.pages_migrated_in));
	CHECK(p1.pages_cleared == p0.pages_cleared, "written pages were cleared");
	CHECK(p1.used_bytes - p0.used_bytes == len, "used_bytes grew by %llu, expected %zu",
	      (unsigned long long)(p1.used_bytes - p0.used_bytes), len);
	CHECK(p1.live_allocations - p0.live_allocations == pieces, "live_allocations");
	CHECK(p1.populate_ok - p0.populate_ok == 1, "populate_ok");

	/* CPU reads of every byte: each device allocation faults back once. */
	CHECK_PATTERN(p, len, seed);
	CHECK(resident(mm, p, len, NULL) == (long)len, "size %zu: not back in system memory", size);
	CHECK(resident(mm, p, len, pm) == 0, "still on device");
	CHECK_OK(usvm_where(mm, p, &where));
	CHECK(where == NULL, "usvm_where after fault: %s", usvm_pagemap_name(where));

	m0 = m1;
	p0 = p1;
	m1 = mm_stats(mm);
	p1 = pm_stats(pm);
	CHECK(m1.cpu_faults_devmem - m0.cpu_faults_devmem >= pieces,
	      "cpu_faults_devmem %llu < %llu",
	      (unsigned long long)(m1.cpu_faults_devmem - m0.cpu_faults_devmem),
	      (unsigned long long)pieces);
	CHECK(m1.migrations_to_ram - m0.migrations_to_ram == pieces,
	      "size %zu: %llu migrations to ram, expected %llu", size,
	      (unsigned long long)(m1.migrations_to_ram - m0.migrations_to_ram),
	      (unsigned long long)pieces);
	CHECK(m1.bytes_to_ram - m0.bytes_to_ram == len, "bytes_to_ram");
	CHECK(p1.cpu_fault_migrations - p0.cpu_fault_migrations == pieces, "cpu_fault_migrations");
	CHECK(p1.migrations_to_ram - p0.migrations_to_ram == pieces, "pm migrations_to_ram");
	CHECK(p1.evictions == p0.evictions, "eviction without memory pressure");
	CHECK(p0.used_bytes - p1.used_bytes == len, "device memory not released");
	CHECK(m1.timeslice_waits == m0.timeslice_waits, "timeslice wait with timeslice 0");

	/* Writes after coming back work and stay local. */
	pattern_fill(p, len, seed + 1);
	CHECK_PATTERN(p, len, seed + 1);
	CHECK_OK(usvm_free(mm, p));
}

int main(void)
{
	static const size_t sizes[] = {
		4096, 3 * 4096, 64 * KiB, 100 * KiB, 2 * MiB, 2 * MiB + 8192, 8 * MiB,
	};
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_pagemap_stats ps;
	size_t i;

	test_init("populate_fault", 60);
	test_setup(&mm, &pm, 64 * MiB);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		one_size(mm, pm, sizes[i], 1000 + i);

	/* A write (not a read) as the first touch of device memory. */
	{
		uint8_t *p = test_alloc(mm, 4 * MiB);

		pattern_fill(p, 4 * MiB, 7);
		CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + 4 * MiB, mm, 0));
		p[4 * MiB - 1] ^= 0xff; /* faults back the second block */
		p[0] ^= 0xff;           /* ... and the first */
		CHECK(resident(mm, p, 4 * MiB, NULL) == (long)(4 * MiB), "write fault");
		p[4 * MiB - 1] ^= 0xff;
		p[0] ^= 0xff;
		CHECK_PATTERN(p, 4 * MiB, 7);
		CHECK_OK(usvm_free(mm, p));
	}

	ps = pm_stats(pm);
	CHECK(ps.used_bytes == 0 && ps.live_allocations == 0, "device memory leaked: %llu bytes",
	      (unsigned long long)ps.used_bytes);
	CHECK(ps.peak_used_bytes >= 8 * MiB, "peak_used_bytes");
	usvm_mm_stats_print(mm, stdout);
	usvm_pagemap_stats_print(pm, stdout);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

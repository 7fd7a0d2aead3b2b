// SPDX-License-Identifier: MIT
/*
 * migrate_bench: throughput of the two core migration paths, compared with
 * memcpy of the same number of bytes in the same run.
 *
 * For allocation sizes 4 KiB, 64 KiB and 2 MiB, over many allocations:
 *   populate   usvm_pagemap_populate_mm() of each allocation whose data the
 *              CPU wrote (system memory -> device memory);
 *   back       a CPU read of one byte per device-resident allocation, which
 *              faults the whole allocation back (device -> system memory);
 *              throughput counts all bytes of the allocations.
 *   memcpy     memcpy() between two warm (pre-faulted) buffers of the same
 *              total size.
 * A warm-up round runs first.  Each measured figure is the best of ROUNDS.
 * Each phase is bounded in time: when faults are slow (e.g. in a VM), fewer
 * allocations are used, and the table says how many bytes were measured.
 *
 * Usage: migrate_bench [--quick] [--total MiB]
 * Output: a table, then one machine-readable line per size:
 *   migrate_bench: size=4096 bytes=... allocs=... populate_gbps=... populate_vs_memcpy=...
 *                  back_gbps=... back_vs_memcpy=... memcpy_gbps=...
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "usvm.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double gbps(size_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / (double)ns : 0.0;
}

struct result {
	size_t size, allocs, bytes;
	double populate, back, memcpy_;
	double internal_to_dev, internal_to_ram;
};

static int die(const char *what, int err)
{
	fprintf(stderr, "migrate_bench: %s: %s\n", what, usvm_strerror(err));
	exit(1);
}

/* Populate allocations [0, n); returns ns. */
static uint64_t populate_all(struct usvm_pagemap *pm, struct usvm_mm *mm, uint8_t **a, size_t n,
			     size_t size)
{
	uint64_t t0 = now_ns();
	size_t i;
	int err;

	for (i = 0; i < n; i++) {
		err = usvm_pagemap_populate_mm(pm, a[i], a[i] + size, mm, 0);
		if (err)
			die("populate", err);
	}
	return now_ns() - t0;
}

/* Touch one byte of each allocation [0, n); returns ns, checks the bytes. */
static uint64_t touch_all(uint8_t **a, size_t n, size_t size)
{
	uint64_t t0 = now_ns(), ns;
	size_t i, bad = 0;

	for (i = 0; i < n; i++) {
		size_t off = (i * 4096 + 64) % size;

		if (((volatile uint8_t *)a[i])[off] != (uint8_t)(i * 7 + 1))
			bad++;
	}
	ns = now_ns() - t0;
	if (bad) {
		fprintf(stderr, "migrate_bench: %zu allocations read back wrong data\n", bad);
		exit(1);
	}
	return ns;
}

/* Measured rounds stop early (after the first) past this point. */
static uint64_t hard_deadline_ns;

static void run_size(struct usvm_mm *mm, struct usvm_pagemap *pm, size_t size, size_t total,
		     uint64_t budget_ns, int rounds, uint8_t *src, uint8_t *dst, struct result *res)
{
	size_t nmax = total / size, n, i;
	uint8_t **a = calloc(nmax, sizeof(*a));
	uint64_t best_pop = UINT64_MAX, best_back = UINT64_MAX, best_cpy = UINT64_MAX, t0;
	struct usvm_mm_stats s0, s1;
	int r, err;

	if (!a)
		die("calloc", -ENOMEM);
	for (i = 0; i < nmax; i++) {
		err = usvm_alloc(mm, size, (void **)&a[i]);
		if (err)
			die("usvm_alloc", err);
		memset(a[i], (int)(uint8_t)(i * 7 + 1), size); /* CPU-written data */
	}

	/* Warm-up round, bounded in time: it decides how many allocations are used. */
	t0 = now_ns();
	for (n = 0; n < nmax; n++) {
		err = usvm_pagemap_populate_mm(pm, a[n], a[n] + size, mm, 0);
		if (err)
			die("populate (warm-up)", err);
		(void)((volatile uint8_t *)a[n])[0];
		if ((n & 15) == 15 && now_ns() - t0 > budget_ns) {
			n++;
			break;
		}
	}

	usvm_mm_stats(mm, &s0);
	for (r = 0; r < rounds; r++) {
		uint64_t tp = populate_all(pm, mm, a, n, size);
		uint64_t tb;
		long on_dev = 0;

		for (i = 0; i < n; i += 1 + n / 64)
			on_dev += usvm_resident_bytes(mm, a[i], size, pm);
		if (on_dev <= 0)
			die("nothing on the device after populate", -EIO);
		tb = touch_all(a, n, size);
		best_pop = tp < best_pop ? tp : best_pop;
		best_back = tb < best_back ? tb : best_back;
		if (now_ns() > hard_deadline_ns)
			break;
	}
	/* Everything came back (the counters are exact once the range is settled). */
	for (i = 0; i < n; i++)
		if (usvm_resident_bytes(mm, a[i], size, NULL) != (long)size)
			die("allocation not back in system memory", -EIO);
	usvm_mm_stats(mm, &s1);

	for (r = 0; r < rounds + 2; r++) {
		uint64_t tc;

		t0 = now_ns();
		memcpy(dst, src, n * size);
		tc = now_ns() - t0;
		best_cpy = tc < best_cpy ? tc : best_cpy;
	}
	if (memcmp(dst, src, 4096) || dst[n * size - 1] != src[n * size - 1])
		die("memcpy check", -EIO);

	res->size = size;
	res->allocs = n;
	res->bytes = n * size;
	res->populate = gbps(n * size, best_pop);
	res->back = gbps(n * size, best_back);
	res->memcpy_ = gbps(n * size, best_cpy);
	res->internal_to_dev = gbps(s1.bytes_to_dev - s0.bytes_to_dev, s1.ns_to_dev - s0.ns_to_dev);
	res->internal_to_ram = gbps(s1.bytes_to_ram - s0.bytes_to_ram, s1.ns_to_ram - s0.ns_to_ram);

	for (i = 0; i < nmax; i++)
		if ((err = usvm_free(mm, a[i])))
			die("usvm_free", err);
	free(a);
}

int main(int argc, char **argv)
{
	static const size_t sizes[] = { 4096, 64 << 10, 2 << 20 };
	struct result res[3];
	size_t total = 128ul << 20;
	uint64_t budget_ns = 1500000000ull, start = now_ns();
	int rounds = 3, quick = 0, i, err;
	struct usvm_caps caps;
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	uint8_t *src, *dst;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = 1;
		} else if (!strcmp(argv[i], "--total") && i + 1 < argc) {
			total = strtoul(argv[++i], NULL, 0) << 20;
		} else {
			fprintf(stderr, "usage: %s [--quick] [--total MiB]\n", argv[0]);
			return 2;
		}
	}
	if (quick) {
		total = 16ul << 20;
		budget_ns = 300000000ull;
		rounds = 1;
	}
	if (total < (2ul << 20))
		total = 2ul << 20;

	/* The whole run stays within ~30 s even when migrations are slow. */
	hard_deadline_ns = start + (quick ? 8 : 24) * 1000000000ull;
	err = usvm_probe(&caps);
	if (err) {
		printf("skip: %s\n", usvm_strerror(err));
		return 0;
	}
	err = usvm_mm_create(NULL, &mm);
	if (err)
		die("usvm_mm_create", err);
	err = usvm_sim_pagemap_create("bench", total + (4ul << 20), &pm);
	if (err)
		die("usvm_sim_pagemap_create", err);
	src = malloc(total + 64);
	dst = malloc(total + 64);
	if (!src || !dst)
		die("malloc", -ENOMEM);
	/* Warm buffers: every page faulted in before any timing. */
	for (size_t k = 0; k < total + 64; k++)
		src[k] = (uint8_t)(k * 131 + 7);
	memset(dst, 0, total + 64);

	printf("migrate_bench: kernel %s, %s, up to %zu MiB per size, best of %d, %.1f s budget per phase\n",
	       caps.kernel, quick ? "quick" : "full", total >> 20, rounds, budget_ns / 1e9);
	for (i = 0; i < 3; i++)
		run_size(mm, pm, sizes[i], total, budget_ns, rounds, src, dst, &res[i]);

	printf("\n%-8s %9s %8s | %14s %9s | %14s %9s | %12s | %s\n", "size", "MiB", "allocs",
	       "populate GB/s", "/memcpy", "migr-back GB/s", "/memcpy", "memcpy GB/s",
	       "internal to-dev/to-ram GB/s");
	for (i = 0; i < 3; i++) {
		char sz[16];

		if (res[i].size >= (1u << 20))
			snprintf(sz, sizeof(sz), "%zuM", res[i].size >> 20);
		else
			snprintf(sz, sizeof(sz), "%zuK", res[i].size >> 10);
		printf("%-8s %9.1f %8zu | %14.2f %9.3f | %14.2f %9.3f | %12.2f | %.2f / %.2f\n", sz,
		       res[i].bytes / 1048576.0, res[i].allocs, res[i].populate,
		       res[i].populate / res[i].memcpy_, res[i].back, res[i].back / res[i].memcpy_,
		       res[i].memcpy_, res[i].internal_to_dev, res[i].internal_to_ram);
	}
	printf("\n");
	for (i = 0; i < 3; i++)
		printf("migrate_bench: size=%zu bytes=%zu allocs=%zu populate_gbps=%.3f "
		       "populate_vs_memcpy=%.4f back_gbps=%.3f back_vs_memcpy=%.4f memcpy_gbps=%.3f\n",
		       res[i].size, res[i].bytes, res[i].allocs, res[i].populate,
		       res[i].populate / res[i].memcpy_, res[i].back, res[i].back / res[i].memcpy_,
		       res[i].memcpy_);
	printf("total time %.1f s\n", (now_ns() - start) / 1e9);

	free(src);
	free(dst);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	return 0;
}

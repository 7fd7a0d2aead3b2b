// SPDX-License-Identifier: MIT
/*
 * usvm CLI: `usvm bench` - the migration benchmark: the measurement of
 * bench/migrate_bench.c, through the public API.  For allocation sizes 4K,
 * 64K and 2M, over many allocations whose data the CPU wrote:
 *   populate      usvm_pagemap_populate_mm() of each allocation into a
 *                 simulated device memory (system memory -> device)
 *   migrate back  a CPU read of one byte per device-resident allocation,
 *                 which faults the whole allocation back (device -> system);
 *                 the throughput counts all bytes of the allocations
 *   memcpy        memcpy() between two warm buffers of the same total size
 * A warm-up round runs first and, bounded in time, decides how many
 * allocations are measured (fewer when faults are slow, e.g. in a VM).  Each
 * figure is the best of the rounds; ratios are to memcpy in the same run.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static const char bench_help[] =
"Usage: usvm bench [options]\n"
"\n"
"Migration throughput against memcpy, measured in the same run (the\n"
"measurement of bench/migrate_bench.c).  For allocation sizes 4K, 64K and 2M,\n"
"many allocations are written by the CPU, then:\n"
"  populate      usvm_pagemap_populate_mm() per allocation (system -> device)\n"
"  migrate back  the CPU reads one byte of each allocation; each read faults\n"
"                the whole allocation back (device -> system)\n"
"  memcpy        memcpy() of the same number of bytes between warm buffers\n"
"Each figure is the best of the rounds; 'vs memcpy' is the ratio of the\n"
"throughputs (1.00x = as fast as memcpy).  A warm-up round bounds the number\n"
"of allocations by time, so slow faults (in a VM) shorten the run instead of\n"
"stretching it; the MiB column says how much was measured.  'internal' is the\n"
"library's own timing of the moves (mm stats ns_to_dev / ns_to_ram).  Data\n"
"is verified.  The whole run stays within about 30 s (--quick: 10 s).\n"
"\n"
"Options:\n"
"  --size SIZE   at most this many bytes per allocation size (default 128M;\n"
"                --quick 16M)\n"
"  --reps N      measured rounds (default 3; --quick 1)\n"
"  --quick       a fast run\n"
"  --json        one JSON object on stdout\n"
"  -h, --help    this help\n";

struct bench_res {
	size_t alloc, count, bytes;
	double populate, back, memcpy_;      /* bytes per second */
	double internal_to_dev, internal_to_ram;
	uint64_t cpu_faults, migrations_back;
};

static double rate(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes * 1e9 / (double)ns : 0.0;
}

static int bench_one(struct usvm_mm *mm, struct usvm_pagemap *pm, size_t total, size_t asz,
		     unsigned rounds, uint64_t budget_ns, uint64_t deadline_ns,
		     unsigned char *src, unsigned char *dst, struct bench_res *res)
{
	size_t nmax = total / asz, n, i;
	unsigned char **a = calloc(nmax ? nmax : 1, sizeof(*a));
	uint64_t best_pop = UINT64_MAX, best_back = UINT64_MAX, best_cpy = UINT64_MAX, t0;
	struct usvm_mm_stats s0, s1, f0, f1;
	unsigned r;
	int err = 0;

	memset(res, 0, sizeof(*res));
	res->alloc = asz;
	if (!a)
		return -ENOMEM;
	for (i = 0; i < nmax; i++) {
		err = usvm_alloc(mm, asz, (void **)&a[i]);
		if (err) {
			fprintf(stderr, "%s bench: usvm_alloc: %s\n", cli_prog, usvm_strerror(err));
			nmax = i;
			goto out;
		}
	}

	/*
	 * Warm-up, bounded in time: it decides how many allocations are used.
	 * The CPU writes each allocation's data here (not up front), so that
	 * slow first-touch faults shorten the run instead of stretching it.
	 */
	t0 = cli_now_ns();
	for (n = 0; n < nmax; n++) {
		memset(a[n], (int)(unsigned char)(n * 7 + 1), asz);   /* CPU-written data */
		err = usvm_pagemap_populate_mm(pm, a[n], a[n] + asz, mm, 0);
		if (err)
			goto populate_failed;
		(void)((volatile unsigned char *)a[n])[0];
		if ((n & 15) == 15 && cli_now_ns() - t0 > budget_ns) {
			n++;
			break;
		}
	}

	usvm_mm_stats(mm, &s0);
	for (r = 0; r < rounds; r++) {
		uint64_t tp, tb;
		size_t bad = 0;
		long on_dev = 0;

		t0 = cli_now_ns();
		for (i = 0; i < n; i++) {
			err = usvm_pagemap_populate_mm(pm, a[i], a[i] + asz, mm, 0);
			if (err)
				goto populate_failed;
		}
		tp = cli_now_ns() - t0;
		for (i = 0; i < n; i++)
			on_dev += usvm_resident_bytes(mm, a[i], asz, pm);
		if ((size_t)on_dev != n * asz) {
			fprintf(stderr, "%s bench: only %ld of %zu bytes reached device memory\n",
				cli_prog, on_dev, n * asz);
			err = -EIO;
			goto out;
		}
		usvm_mm_stats(mm, &f0);
		t0 = cli_now_ns();
		for (i = 0; i < n; i++) {
			size_t off = (i * 4096 + 64) % asz;

			if (((volatile unsigned char *)a[i])[off] != (unsigned char)(i * 7 + 1))
				bad++;
		}
		tb = cli_now_ns() - t0;
		usvm_mm_stats(mm, &f1);
		if (bad) {
			fprintf(stderr, "%s bench: %zu allocations read back wrong data\n", cli_prog, bad);
			err = -EIO;
			goto out;
		}
		res->cpu_faults = f1.cpu_faults - f0.cpu_faults;
		res->migrations_back = f1.migrations_to_ram - f0.migrations_to_ram;
		best_pop = tp < best_pop ? tp : best_pop;
		best_back = tb < best_back ? tb : best_back;
		if (cli_now_ns() > deadline_ns)
			break;
	}
	/* Everything came back, every byte intact. */
	for (i = 0; i < n; i++) {
		size_t k;

		if (usvm_resident_bytes(mm, a[i], asz, NULL) != (long)asz) {
			fprintf(stderr, "%s bench: allocation %p not back in system memory\n",
				cli_prog, (void *)a[i]);
			err = -EIO;
			goto out;
		}
		for (k = 0; k < asz; k += 512)
			if (a[i][k] != (unsigned char)(i * 7 + 1)) {
				fprintf(stderr, "%s bench: data mismatch at %p after migration\n",
					cli_prog, (void *)(a[i] + k));
				err = -EIO;
				goto out;
			}
	}
	usvm_mm_stats(mm, &s1);

	for (r = 0; r < rounds + 2; r++) {
		uint64_t tc;

		t0 = cli_now_ns();
		memcpy(dst, src, n * asz);
		__asm__ __volatile__("" : : "r"(dst) : "memory");
		tc = cli_now_ns() - t0;
		best_cpy = tc < best_cpy ? tc : best_cpy;
	}
	if (memcmp(dst, src, 4096) || dst[n * asz - 1] != src[n * asz - 1]) {
		fprintf(stderr, "%s bench: memcpy check failed\n", cli_prog);
		err = -EIO;
		goto out;
	}
	res->count = n;
	res->bytes = n * asz;
	res->populate = rate(n * asz, best_pop);
	res->back = rate(n * asz, best_back);
	res->memcpy_ = rate(n * asz, best_cpy);
	res->internal_to_dev = rate(s1.bytes_to_dev - s0.bytes_to_dev, s1.ns_to_dev - s0.ns_to_dev);
	res->internal_to_ram = rate(s1.bytes_to_ram - s0.bytes_to_ram, s1.ns_to_ram - s0.ns_to_ram);
	goto out;
populate_failed:
	fprintf(stderr, "%s bench: populate of a %zu-byte allocation: %s\n", cli_prog, asz,
		usvm_strerror(err));
out:
	for (i = 0; i < nmax; i++)
		usvm_free(mm, a[i]);
	free(a);
	return err;
}

int cmd_bench(int argc, char **argv)
{
	static const size_t sizes[] = { 4u << 10, 64u << 10, 2u << 20 };
	struct bench_res res[3];
	struct usvm_mm_options mo = { 0 };
	struct usvm_pagemap *pm = NULL;
	struct usvm_mm *mm = NULL;
	struct usvm_caps caps;
	size_t total = 0;
	unsigned reps = 0, k;
	unsigned char *src = NULL, *dst = NULL;
	uint64_t start = cli_now_ns(), budget_ns, deadline_ns;
	int json = 0, quick = 0, i, err, rc = EXIT_OK;
	char b1[32];

	for (i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (is_help(a)) {
			fputs(bench_help, stdout);
			return EXIT_OK;
		} else if (!strcmp(a, "--json")) {
			json = 1;
		} else if (!strcmp(a, "--quick")) {
			quick = 1;
		} else if (!strcmp(a, "--size") || !strncmp(a, "--size=", 7)) {
			const char *v = a[6] == '=' ? a + 7 : (i + 1 < argc ? argv[++i] : NULL);

			if (!v)
				return usage_error("bench", "--size needs a value");
			if (usvm_parse_size(v, &total) || total == 0)
				return usage_error("bench", "--size: '%s' is not a size (examples: 16M, 128M)", v);
			if (total < (2u << 20) || total > (4ul << 30) || total % (2u << 20))
				return usage_error("bench", "--size %s: use a multiple of 2M from 2M to 4G", v);
		} else if (!strcmp(a, "--reps") || !strncmp(a, "--reps=", 7)) {
			const char *v = a[6] == '=' ? a + 7 : (i + 1 < argc ? argv[++i] : NULL);
			unsigned long n;

			if (!v)
				return usage_error("bench", "--reps needs a value");
			if (cli_parse_ulong(v, &n) || n < 1 || n > 100)
				return usage_error("bench", "--reps: '%s' is not a number from 1 to 100", v);
			reps = (unsigned)n;
		} else {
			return usage_error("bench", "unknown option '%s' (see 'usvm bench --help')", a);
		}
	}
	if (!total)
		total = quick ? (16u << 20) : (128u << 20);
	if (!reps)
		reps = quick ? 1 : 3;
	budget_ns = quick ? 300000000ull : 1500000000ull;
	/* The whole run stays within ~30 s even when migrations are slow. */
	deadline_ns = start + (quick ? 8 : 24) * 1000000000ull;

	err = usvm_probe(&caps);
	if (err) {
		explain_setup_error("this machine cannot run usvm", err);
		return EXIT_FAIL;
	}
	mo.arena_size = 1ul << 30;
	while (mo.arena_size < 2 * total)
		mo.arena_size <<= 1;
	err = usvm_mm_create(&mo, &mm);
	if (err) {
		explain_setup_error("cannot create the managed address space", err);
		return EXIT_FAIL;
	}
	err = usvm_sim_pagemap_create("bench", total + (4u << 20), &pm);
	if (err) {
		fprintf(stderr, "%s bench: cannot create simulated device memory: %s\n", cli_prog,
			usvm_strerror(err));
		usvm_mm_destroy(mm);
		return EXIT_FAIL;
	}
	src = malloc(total);
	dst = malloc(total);
	if (!src || !dst) {
		fprintf(stderr, "%s bench: out of memory\n", cli_prog);
		rc = EXIT_FAIL;
		goto out;
	}
	/* Warm buffers: every page faulted in before any timing. */
	for (size_t b = 0; b < total; b++)
		src[b] = (unsigned char)(b * 131 + 7);
	memset(dst, 0, total);

	if (!json) {
		printf("usvm bench: kernel %s, %s, up to %s per size, best of %u, %.1f s budget per phase\n",
		       caps.kernel, quick ? "quick" : "full", fmt_bytes(b1, sizeof(b1), total), reps,
		       (double)budget_ns / 1e9);
		printf("  populate     = usvm_pagemap_populate_mm() per allocation (system -> device)\n");
		printf("  migrate back = CPU reads one byte per allocation, faulting it back (device -> system)\n");
		printf("  vs memcpy    = throughput / memcpy of the same bytes in the same run\n\n");
		printf("%-6s %6s %7s  %13s %9s  %13s %9s  %11s  %s\n", "alloc", "MiB", "allocs",
		       "populate", "vs memcpy", "migrate back", "vs memcpy", "memcpy",
		       "internal to dev / to sys");
	}
	for (k = 0; k < 3; k++) {
		err = bench_one(mm, pm, total, sizes[k], reps, budget_ns, deadline_ns, src, dst, &res[k]);
		if (err) {
			rc = EXIT_FAIL;
			goto out;
		}
		if (!json) {
			printf("%-6s %6.1f %7zu  %8.2f GB/s %8.3fx  %8.2f GB/s %8.3fx  %6.2f GB/s  %.2f / %.2f GB/s\n",
			       fmt_size_short(b1, sizeof(b1), sizes[k]), (double)res[k].bytes / 1048576.0,
			       res[k].count, res[k].populate / 1e9, res[k].populate / res[k].memcpy_,
			       res[k].back / 1e9, res[k].back / res[k].memcpy_, res[k].memcpy_ / 1e9,
			       res[k].internal_to_dev / 1e9, res[k].internal_to_ram / 1e9);
			fflush(stdout);
		}
	}
	if (json) {
		struct json j;

		json_init(&j, stdout, 1);
		json_obj_begin(&j, NULL);
		json_str(&j, "usvm_version", USVM_VERSION_STRING);
		json_str(&j, "command", "bench");
		json_str(&j, "kernel", caps.kernel);
		json_bool(&j, "quick", quick);
		json_u64(&j, "max_bytes_per_size", total);
		json_u64(&j, "rounds", reps);
		json_arr_begin(&j, "results");
		for (k = 0; k < 3; k++) {
			json_obj_begin(&j, NULL);
			json_u64(&j, "alloc_size", res[k].alloc);
			json_u64(&j, "allocs", res[k].count);
			json_u64(&j, "bytes", res[k].bytes);
			json_dbl(&j, "populate_bytes_per_s", res[k].populate);
			json_dbl(&j, "populate_vs_memcpy", res[k].populate / res[k].memcpy_);
			json_dbl(&j, "migrate_back_bytes_per_s", res[k].back);
			json_dbl(&j, "migrate_back_vs_memcpy", res[k].back / res[k].memcpy_);
			json_dbl(&j, "memcpy_bytes_per_s", res[k].memcpy_);
			json_dbl(&j, "internal_to_dev_bytes_per_s", res[k].internal_to_dev);
			json_dbl(&j, "internal_to_ram_bytes_per_s", res[k].internal_to_ram);
			json_u64(&j, "cpu_faults_per_round", res[k].cpu_faults);
			json_u64(&j, "migrations_back_per_round", res[k].migrations_back);
			json_obj_end(&j);
		}
		json_arr_end(&j);
		json_obj_end(&j);
		json_finish(&j);
	}
out:
	free(src);
	free(dst);
	usvm_pagemap_destroy(pm);
	usvm_mm_destroy(mm);
	return rc;
}

// SPDX-License-Identifier: MIT
/*
 * reg_huge_alloc: huge managed allocations must cost bookkeeping memory in
 * proportion to what is used, not to their virtual size; and a simulated
 * pagemap larger than the machine could ever back must be refused.
 *
 * usvm_alloc(64 GiB), two pages touched, usvm_free; then the same with
 * 256 GiB (each in a fresh mm).  The process's resident memory (VmRSS in
 * /proc/self/status) and its private dirty memory (Private_Dirty in
 * /proc/self/smaps_rollup, what the process has committed) are measured
 * before the allocation, after it, after touching its first and last page,
 * and after usvm_free; each must stay within 64 MiB of the first
 * measurement.  (A per-page state array of 16 bytes per 4 KiB page is
 * 256 MiB for 64 GiB: it may be reserved, but must not be written for
 * pages nobody touched.)  Reported: usvm_free() writes the state of every
 * page of the allocation.  The bound is on memory, never on time.
 *
 * usvm_sim_pagemap_create() with a capacity of 4 x (MemTotal + SwapTotal)
 * must fail with -ENOMEM (reported: 1 TiB is accepted on a 23 GiB machine).
 *
 * All checks run and report before the test fails.  Under ThreadSanitizer
 * (whose shadow memory is written on every access, reads included) only
 * the pagemap check runs.
 */
#include <string.h>
#include "helpers.h"

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

#define GiB (1ul << 30)
#define BOUND (64 * MiB)

static int nfail;

#define SOFT_CHECK(cond, ...)                                                   \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fflush(stdout);                                         \
			fprintf(stderr, "reg_huge_alloc: FAIL %s:%d: ", __FILE__, \
				__LINE__);                                      \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
			nfail++;                                                \
		}                                                               \
	} while (0)

/* The value in kB of the line starting with @key in @path, or -1. */
static long kb_field(const char *path, const char *key)
{
	FILE *f = fopen(path, "r");
	char line[256];
	size_t n = strlen(key);
	long v = -1;

	CHECK(f != NULL, "open %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, n) && sscanf(line + n, " %ld", &v) == 1)
			break;
	}
	fclose(f);
	CHECK(v >= 0, "no %s in %s", key, path);
	return v;
}

struct mem {
	long rss_kb, dirty_kb;
};

static struct mem measure(void)
{
	struct mem m = {
		kb_field("/proc/self/status", "VmRSS:"),
		kb_field("/proc/self/smaps_rollup", "Private_Dirty:"),
	};

	return m;
}

static void check_growth(const struct mem *m0, const char *when, size_t size)
{
	struct mem m = measure();
	long rss = m.rss_kb - m0->rss_kb, dirty = m.dirty_kb - m0->dirty_kb;

	printf("  %-28s VmRSS %+8ld KiB, Private_Dirty %+8ld KiB\n", when, rss, dirty);
	SOFT_CHECK(rss < (long)(BOUND / KiB), "%zu GiB allocation, %s: VmRSS grew by %ld MiB "
		   "(bound %lu MiB)", size / GiB, when, rss / 1024, BOUND / MiB);
	SOFT_CHECK(dirty < (long)(BOUND / KiB), "%zu GiB allocation, %s: Private_Dirty grew by "
		   "%ld MiB (bound %lu MiB)", size / GiB, when, dirty / 1024, BOUND / MiB);
}

static void huge(size_t size)
{
	struct usvm_mm *mm = test_mm_create(NULL);
	struct mem m0;
	uint8_t *p = NULL;
	int err;

	printf("%zu GiB:\n", size / GiB);
	m0 = measure();
	err = usvm_alloc(mm, size, (void **)&p);
	SOFT_CHECK(err == 0 && p, "usvm_alloc(%zu GiB): %d (%s)", size / GiB, err,
		   usvm_strerror(err));
	if (err || !p) {
		usvm_mm_destroy(mm);
		return;
	}
	check_growth(&m0, "after usvm_alloc", size);
	SOFT_CHECK(p[0] == 0 && p[size - 1] == 0, "fresh memory does not read zero");
	p[0] = 0x5a;
	p[size - 1] = 0xa5;
	SOFT_CHECK(p[0] == 0x5a && p[size - 1] == 0xa5, "writes do not read back");
	check_growth(&m0, "after touching 2 pages", size);
	CHECK_OK(usvm_free(mm, p));
	check_growth(&m0, "after usvm_free", size);
	usvm_mm_destroy(mm);
}

int main(void)
{
	struct usvm_pagemap *pm = NULL;
	size_t ram, cap;
	int err;

	test_init("reg_huge_alloc", 120);
	if (UNDER_TSAN) {
		/* TSan writes shadow memory for every access, reads included:
		 * the process's memory no longer says what the library committed. */
		printf("ThreadSanitizer build: huge allocations not measured\n");
	} else {
		huge(64 * GiB);
		huge(256 * GiB);
	}

	ram = (size_t)(kb_field("/proc/meminfo", "MemTotal:") +
		       kb_field("/proc/meminfo", "SwapTotal:")) * KiB;
	cap = 4 * ram;
	cap &= ~(size_t)(PAGE - 1);
	err = usvm_sim_pagemap_create("huge", cap, &pm);
	printf("sim pagemap of %zu GiB (4 x RAM+swap of %zu MiB): %d (%s)\n", cap / GiB,
	       ram / MiB, err, usvm_strerror(err));
	SOFT_CHECK(err == -ENOMEM, "usvm_sim_pagemap_create(%zu GiB = 4 x RAM+swap) returned "
		   "%d (%s), expected -ENOMEM", cap / GiB, err, usvm_strerror(err));
	if (!err)
		usvm_pagemap_destroy(pm);

	CHECK(nfail == 0, "%d checks failed (see above)", nfail);
	printf("ok\n");
	return 0;
}

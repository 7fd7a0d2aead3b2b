// SPDX-License-Identifier: MIT
/*
 * The benchmark suite: what usvm costs against what the same work costs
 * without it, both measured in the same process, round after round.
 *
 * Groups of figures (the --only selectors), each bounded in time: no new
 * round starts once a phase has run for cfg.budget_ns (at least one round
 * always runs, and sizes never shrink: a slow machine gets fewer rounds,
 * not smaller measurements).
 *
 *   first_touch  first write of each page of a fresh usvm_alloc vs mmap
 *   fault        CPU fault on a device-resident 4 KiB allocation vs a
 *                native anonymous write fault, each timed alone
 *   migrate      populate and migrate-back throughput vs memcpy (4K, 64K, 2M)
 *   free         usvm_free vs free() of a 4 KiB block
 *   launch       an empty usvm_device_launch vs a 2-thread pool dispatch
 *   scaling      CPU faults on 2 threads vs 1 thread
 *   read_back    migrate back and read every cache line vs memcpy
 *
 * Only the public API is used.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "cli.h"
#include "bench.h"

/* ---- bookkeeping --------------------------------------------------------- */

static int bench_fail(struct bench *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int bench_fail(struct bench *b, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", b->who);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -EIO;
}

static struct bench_fig *fig_new(struct bench *b, const char *name, const char *group,
				 const char *unit, int higher_better)
{
	struct bench_fig *f;

	if (b->nfigs == BENCH_MAX_FIGS)
		abort();        /* the suite has a fixed number of figures */
	f = &b->figs[b->nfigs++];
	memset(f, 0, sizeof(*f));
	f->name = name;
	f->group = group;
	f->unit = unit;
	f->higher_better = higher_better;
	return f;
}

static struct bench_extra *fig_extra(struct bench_fig *f, const char *name, const char *unit)
{
	struct bench_extra *e = &f->extra[f->nextra++];

	e->name = name;
	e->unit = unit;
	return e;
}

static void series_push(struct bench_series *s, double v)
{
	if (s->n < BENCH_MAX_ROUNDS)
		s->v[s->n++] = v;
}

/* One round: both sides and their ratio, paired. */
static void fig_push(struct bench_fig *f, double usvm, double base)
{
	series_push(&f->usvm, usvm);
	series_push(&f->base, base);
	series_push(&f->ratio, base > 0 ? usvm / base : NAN);
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

void bench_stat(const struct bench_series *s, struct bench_stat *out)
{
	double v[BENCH_MAX_ROUNDS];
	unsigned n = s->n;

	if (!n) {
		out->med = out->min = out->max = NAN;
		return;
	}
	memcpy(v, s->v, n * sizeof(v[0]));
	qsort(v, n, sizeof(v[0]), cmp_dbl);
	out->min = v[0];
	out->max = v[n - 1];
	out->med = n & 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Percentile @p (0..1] of @n samples in ns, as microseconds; sorts @v. */
static double pct_us(uint64_t *v, unsigned n, double p)
{
	unsigned k;

	qsort(v, n, sizeof(v[0]), cmp_u64);
	k = (unsigned)ceil(p * n);
	return (double)v[k ? k - 1 : 0] / 1e3;
}

/* Bytes per ns is GB/s. */
static double gbs(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / (double)ns : 0.0;
}

/* A phase is one set of figures sharing rounds; its time budget starts now. */
static void bench_phase_begin(struct bench *b)
{
	b->phase_t0 = cli_now_ns();
}

/* Return: whether round @done (0-based count of rounds measured) runs. */
static int bench_more(struct bench *b, unsigned done)
{
	if (done >= b->cfg.rounds)
		return 0;
	return done == 0 || cli_now_ns() - b->phase_t0 < b->cfg.budget_ns;
}

/* ---- allocation sets ----------------------------------------------------- */

/* The byte allocation @i holds in round @r: never zero, so lost data shows. */
static unsigned char pat(size_t i, unsigned r)
{
	return (unsigned char)((i * 7 + r * 13) | 1);
}

static void set_free(struct bench *b, unsigned char **a, size_t n)
{
	size_t i;

	if (!a)
		return;
	for (i = 0; i < n; i++)
		if (a[i])
			usvm_free(b->mm, a[i]);
	free(a);
}

/* Return: @n managed allocations of @asz bytes, or NULL (reported). */
static unsigned char **set_alloc(struct bench *b, size_t n, size_t asz)
{
	unsigned char **a = calloc(n, sizeof(*a));
	size_t i;
	int err;

	if (!a) {
		bench_fail(b, "out of memory");
		return NULL;
	}
	for (i = 0; i < n; i++) {
		err = usvm_alloc(b->mm, asz, (void **)&a[i]);
		if (err) {
			bench_fail(b, "usvm_alloc(%zu): %s", asz, usvm_strerror(err));
			set_free(b, a, i);
			return NULL;
		}
	}
	return a;
}

static void set_fill(unsigned char **a, size_t n, size_t asz, unsigned r)
{
	size_t i;

	for (i = 0; i < n; i++)
		memset(a[i], pat(i, r), asz);
}

/* One usvm_pagemap_populate_mm() per allocation.  Return: 0 or -EIO (reported). */
static int set_populate(struct bench *b, unsigned char **a, size_t n, size_t asz)
{
	size_t i;
	int err;

	for (i = 0; i < n; i++) {
		err = usvm_pagemap_populate_mm(b->pm, a[i], a[i] + asz, b->mm, 0);
		if (err)
			return bench_fail(b, "populate of a %zu-byte allocation: %s", asz,
					  usvm_strerror(err));
	}
	return 0;
}

/* Every byte of the set in @pm (NULL: system memory)?  Return: 0 or -EIO. */
static int set_check_where(struct bench *b, unsigned char **a, size_t n, size_t asz,
			   struct usvm_pagemap *pm)
{
	long sum = 0;
	size_t i;

	for (i = 0; i < n; i++)
		sum += usvm_resident_bytes(b->mm, a[i], asz, pm);
	if ((size_t)sum == n * asz)
		return 0;
	return bench_fail(b, "%ld of %zu bytes of %zu-byte allocations in %s, all expected there",
			  sum, n * asz, asz, pm ? "device memory" : "system memory");
}

/* Every byte as written in round @r?  Return: 0 or -EIO. */
static int set_check_data(struct bench *b, unsigned char **a, size_t n, size_t asz, unsigned r)
{
	size_t i, k;

	for (i = 0; i < n; i++) {
		uint64_t want = pat(i, r) * 0x0101010101010101ull;
		const uint64_t *w = (const uint64_t *)a[i];

		for (k = 0; k < asz / 8; k++)
			if (w[k] != want)
				return bench_fail(b, "data lost: %p holds %#llx, expected %#llx",
						  (void *)&w[k], (unsigned long long)w[k],
						  (unsigned long long)want);
	}
	return 0;
}

/* Written in round @r, then moved into device memory (untimed). */
static int set_to_device(struct bench *b, unsigned char **a, size_t n, size_t asz, unsigned r)
{
	int err;

	set_fill(a, n, asz, r);
	err = set_populate(b, a, n, asz);
	return err ? err : set_check_where(b, a, n, asz, b->pm);
}

/* memcpy of @len warm bytes.  Return: ns. */
static uint64_t time_memcpy(struct bench *b, size_t len)
{
	uint64_t t0 = cli_now_ns();

	memcpy(b->dst, b->src, len);
	__asm__ __volatile__("" : : "r"(b->dst) : "memory");
	return cli_now_ns() - t0;
}

/* ---- first_touch --------------------------------------------------------- */

static uint64_t touch_pages(unsigned char *p, size_t len)
{
	uint64_t t0 = cli_now_ns();
	size_t i;

	for (i = 0; i < len; i += USVM_PAGE_SIZE)
		((volatile unsigned char *)p)[i] = 1;
	return cli_now_ns() - t0;
}

/* Return: ns of the first touch of a fresh anonymous mapping, 0 on failure. */
static uint64_t touch_fresh_mmap(size_t len)
{
	unsigned char *q = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				-1, 0);
	uint64_t ns;

	if (q == MAP_FAILED)
		return 0;
	ns = touch_pages(q, len);
	munmap(q, len);
	return ns;
}

static int group_first_touch(struct bench *b)
{
	size_t len = b->cfg.touch_bytes;
	struct bench_fig *f = fig_new(b, "first_touch", "first_touch", "GB/s", 1);
	struct bench_extra *faults = fig_extra(f, "cpu_faults", "faults");
	struct bench_extra *fr = fig_extra(f, "usvm_free", "ms");
	char sz[32];
	unsigned r;
	int err;

	fmt_bytes(sz, sizeof(sz), len);
	snprintf(f->what, sizeof(f->what),
		 "write 1 byte per 4 KiB page of a fresh usvm_alloc(%s)", sz);
	snprintf(f->base_what, sizeof(f->base_what),
		 "the same on a fresh anonymous mmap() of %s", sz);
	f->bytes = len;
	f->ops = len / USVM_PAGE_SIZE;
	bench_phase_begin(b);
	for (r = 0; bench_more(b, r); r++) {
		struct usvm_mm_stats s0, s1;
		uint64_t tu, tb, t0;
		unsigned char *p;

		err = usvm_alloc(b->mm, len, (void **)&p);
		if (err)
			return bench_fail(b, "usvm_alloc(%s): %s", sz, usvm_strerror(err));
		usvm_mm_stats(b->mm, &s0);
		tu = touch_pages(p, len);
		if (p[0] != 1 || p[len - 1] != 0 || p[len - USVM_PAGE_SIZE] != 1) {
			usvm_free(b->mm, p);
			return bench_fail(b, "first touch: wrong bytes read back");
		}
		t0 = cli_now_ns();
		err = usvm_free(b->mm, p);
		if (err)
			return bench_fail(b, "usvm_free: %s", usvm_strerror(err));
		series_push(&fr->s, (double)(cli_now_ns() - t0) / 1e6);
		/* Counted after the free: a fault is counted just after its wake-up. */
		usvm_mm_stats(b->mm, &s1);
		tb = touch_fresh_mmap(len);
		if (!tb)
			return bench_fail(b, "mmap(%s): %s", sz, strerror(errno));
		fig_push(f, gbs(len, tu), gbs(len, tb));
		series_push(&faults->s, (double)(s1.cpu_faults - s0.cpu_faults));
	}
	return 0;
}

/* ---- fault: latency of one CPU fault ------------------------------------- */

/*
 * Native baseline: a write fault on a fresh page of anonymous memory, 4 KiB
 * pages only (no THP, no mTHP), each timed alone.  Return: 0 or -ENOMEM.
 */
static int native_faults(unsigned n, uint64_t *ns)
{
	size_t len = (size_t)n * USVM_PAGE_SIZE;
	unsigned char *q = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				-1, 0);
	unsigned i;

	if (q == MAP_FAILED)
		return -ENOMEM;
	madvise(q, len, MADV_NOHUGEPAGE);
	for (i = 0; i < n; i++) {
		uint64_t t0 = cli_now_ns();

		((volatile unsigned char *)q)[(size_t)i * USVM_PAGE_SIZE] = 1;
		ns[i] = cli_now_ns() - t0;
	}
	munmap(q, len);
	return 0;
}

/* Time a one-byte read of each device-resident allocation alone.  Return: 0, -EIO. */
static int device_faults(struct bench *b, unsigned char **a, unsigned n, unsigned r,
			 uint64_t *ns)
{
	unsigned i, bad = 0;

	for (i = 0; i < n; i++) {
		uint64_t t0 = cli_now_ns();
		unsigned char v = ((volatile unsigned char *)a[i])[64];

		ns[i] = cli_now_ns() - t0;
		bad += v != pat(i, r);
	}
	if (bad)
		return bench_fail(b, "%u of %u allocations read back wrong data", bad, n);
	return 0;
}

static void fault_figs(struct bench *b, struct bench_fig **med, struct bench_fig **p99)
{
	static const char base[] = "a native write fault on a fresh 4 KiB anonymous page";

	*med = fig_new(b, "fault_4K_median", "fault", "us", 0);
	*p99 = fig_new(b, "fault_4K_p99", "fault", "us", 0);
	snprintf((*med)->what, sizeof((*med)->what),
		 "CPU read of 1 byte of a device-resident 4 KiB allocation, each timed: median");
	snprintf((*p99)->what, sizeof((*p99)->what), "the same: 99th percentile");
	snprintf((*med)->base_what, sizeof((*med)->base_what), "%s, median", base);
	snprintf((*p99)->base_what, sizeof((*p99)->base_what), "%s, 99th percentile", base);
	(*med)->ops = (*p99)->ops = b->cfg.lat_allocs;
	(*med)->bytes = (*p99)->bytes = (uint64_t)b->cfg.lat_allocs * USVM_PAGE_SIZE;
}

static int group_fault(struct bench *b)
{
	unsigned n = b->cfg.lat_allocs, r;
	struct bench_fig *med, *p99;
	struct bench_extra *devf;
	uint64_t *su = calloc(n, sizeof(*su)), *sb = calloc(n, sizeof(*sb));
	unsigned char **a = NULL;
	int err = -ENOMEM;

	fault_figs(b, &med, &p99);
	devf = fig_extra(med, "migrations_to_ram", "allocations");
	if (!su || !sb || !(a = set_alloc(b, n, USVM_PAGE_SIZE)))
		goto out;
	bench_phase_begin(b);
	for (r = 0; bench_more(b, r); r++) {
		struct usvm_mm_stats s0, s1;

		err = set_to_device(b, a, n, USVM_PAGE_SIZE, r);
		if (err)
			goto out;
		usvm_mm_stats(b->mm, &s0);
		err = device_faults(b, a, n, r, su);
		usvm_mm_stats(b->mm, &s1);
		if (err)
			goto out;
		err = native_faults(n, sb);
		if (err)
			goto out;
		fig_push(med, pct_us(su, n, 0.5), pct_us(sb, n, 0.5));
		fig_push(p99, pct_us(su, n, 0.99), pct_us(sb, n, 0.99));
		/* Not cpu_faults: a fault is counted just after the faulting thread woke. */
		series_push(&devf->s, (double)(s1.migrations_to_ram - s0.migrations_to_ram));
	}
out:
	if (err == -ENOMEM)
		bench_fail(b, "out of memory");
	set_free(b, a, a ? n : 0);
	free(su);
	free(sb);
	return err;
}

/* ---- migrate: populate and migrate back, per allocation size ------------- */

struct mig_round {
	uint64_t pop_ns, back_ns, cpy_ns;
	struct usvm_mm_stats s0, s1, s2;   /* before populate, after it, after back */
};

/* Touch one byte of each device-resident allocation.  Return: 0 or -EIO. */
static int touch_each(struct bench *b, unsigned char **a, size_t n, size_t asz, unsigned r)
{
	size_t i, bad = 0;

	for (i = 0; i < n; i++) {
		size_t off = (i * USVM_PAGE_SIZE + 64) % asz;

		bad += ((volatile unsigned char *)a[i])[off] != pat(i, r);
	}
	if (bad)
		return bench_fail(b, "%zu of %zu allocations read back wrong data", bad, n);
	return 0;
}

/* Return: 0 or -EIO (reported). */
static int mig_round(struct bench *b, unsigned char **a, size_t n, size_t asz, unsigned r,
		     struct mig_round *m)
{
	uint64_t t0;
	int err;

	set_fill(a, n, asz, r);
	usvm_mm_stats(b->mm, &m->s0);
	t0 = cli_now_ns();
	err = set_populate(b, a, n, asz);
	m->pop_ns = cli_now_ns() - t0;
	usvm_mm_stats(b->mm, &m->s1);
	if (err || (err = set_check_where(b, a, n, asz, b->pm)))
		return err;
	t0 = cli_now_ns();
	err = touch_each(b, a, n, asz, r);
	m->back_ns = cli_now_ns() - t0;
	usvm_mm_stats(b->mm, &m->s2);
	if (err || (err = set_check_where(b, a, n, asz, NULL)))
		return err;
	m->cpy_ns = time_memcpy(b, n * asz);
	return set_check_data(b, a, n, asz, r);
}

static void mig_figs(struct bench *b, size_t asz, size_t n, const char *pop_name,
		     const char *back_name, struct bench_fig **fp, struct bench_fig **fb)
{
	char s[32], t[32];

	fmt_bytes(s, sizeof(s), asz);
	fmt_bytes(t, sizeof(t), n * asz);
	*fp = fig_new(b, pop_name, "migrate", "GB/s", 1);
	*fb = fig_new(b, back_name, "migrate", "GB/s", 1);
	snprintf((*fp)->what, sizeof((*fp)->what),
		 "usvm_pagemap_populate_mm() of each of %zu CPU-written %s allocations", n, s);
	snprintf((*fb)->what, sizeof((*fb)->what),
		 "CPU reads 1 byte of each of %zu device-resident %s allocations (faults it back)",
		 n, s);
	snprintf((*fp)->base_what, sizeof((*fp)->base_what),
		 "memcpy() of the same %s between warm buffers", t);
	memcpy((*fb)->base_what, (*fp)->base_what, sizeof((*fb)->base_what));
	(*fp)->bytes = (*fb)->bytes = n * asz;
	(*fp)->ops = (*fb)->ops = n;
}

/* One allocation size, @n allocations: cfg.migrate_bytes. */
static int migrate_size(struct bench *b, size_t asz, const char *pop_name, const char *back_name)
{
	size_t n = b->cfg.migrate_bytes / asz;
	unsigned char **a = set_alloc(b, n, asz);
	struct bench_extra *idev, *iram, *faults;
	struct bench_fig *fp, *fb;
	struct mig_round m = { 0 };
	unsigned r;
	int err;

	mig_figs(b, asz, n, pop_name, back_name, &fp, &fb);
	idev = fig_extra(fp, "internal_to_dev", "GB/s");
	iram = fig_extra(fb, "internal_to_ram", "GB/s");
	faults = fig_extra(fb, "migrations_to_ram", "allocations");
	if (!a)
		return -ENOMEM;
	bench_phase_begin(b);
	for (r = 0, err = 0; bench_more(b, r); r++) {
		err = mig_round(b, a, n, asz, r, &m);
		if (err)
			break;
		fig_push(fp, gbs(n * asz, m.pop_ns), gbs(n * asz, m.cpy_ns));
		fig_push(fb, gbs(n * asz, m.back_ns), gbs(n * asz, m.cpy_ns));
		series_push(&idev->s, gbs(m.s1.bytes_to_dev - m.s0.bytes_to_dev,
					  m.s1.ns_to_dev - m.s0.ns_to_dev));
		series_push(&iram->s, gbs(m.s2.bytes_to_ram - m.s1.bytes_to_ram,
					  m.s2.ns_to_ram - m.s1.ns_to_ram));
		series_push(&faults->s, (double)(m.s2.migrations_to_ram - m.s1.migrations_to_ram));
	}
	set_free(b, a, n);
	return err;
}

static int group_migrate(struct bench *b)
{
	int err = migrate_size(b, 4u << 10, "populate_4K", "migrate_back_4K");

	if (!err)
		err = migrate_size(b, 64u << 10, "populate_64K", "migrate_back_64K");
	if (!err)
		err = migrate_size(b, 2u << 20, "populate_2M", "migrate_back_2M");
	return err;
}

/* ---- free ---------------------------------------------------------------- */

/*
 * @n written 4 KiB allocations (moved to device memory if @on_dev), then
 * usvm_free of each, timed.  Return: 0 or -errno (reported); *@ns.
 */
static int usvm_free_round(struct bench *b, unsigned n, int on_dev, uint64_t *ns)
{
	unsigned char **a = set_alloc(b, n, USVM_PAGE_SIZE);
	uint64_t t0;
	unsigned i;
	int err = 0;

	if (!a)
		return -ENOMEM;
	if (on_dev)
		err = set_to_device(b, a, n, USVM_PAGE_SIZE, 0);
	else
		set_fill(a, n, USVM_PAGE_SIZE, 0);
	t0 = cli_now_ns();
	for (i = 0; i < n && !err; i++) {
		err = usvm_free(b->mm, a[i]);
		a[i] = NULL;
	}
	*ns = cli_now_ns() - t0;
	if (err)
		bench_fail(b, "usvm_free: %s", usvm_strerror(err));
	set_free(b, a, n);
	return err;
}

/* Baseline: free() of @n written malloc(4096) blocks.  Return: 0, -ENOMEM. */
static int malloc_free_round(unsigned n, uint64_t *ns)
{
	unsigned char **a = calloc(n, sizeof(*a));
	uint64_t t0;
	unsigned i;

	if (!a)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		a[i] = malloc(USVM_PAGE_SIZE);
		if (a[i])
			memset(a[i], pat(i, 0), USVM_PAGE_SIZE);
	}
	t0 = cli_now_ns();
	for (i = 0; i < n; i++)
		free(a[i]);
	*ns = cli_now_ns() - t0;
	free(a);
	return 0;
}

static int group_free(struct bench *b)
{
	unsigned n = b->cfg.free_allocs, r;
	struct bench_fig *f = fig_new(b, "free_4K", "free", "ns", 0);
	struct bench_fig *fd = fig_new(b, "free_4K_device", "free", "ns", 0);
	uint64_t tu = 0, td = 0, tb = 0;
	int err = 0;

	snprintf(f->what, sizeof(f->what), "usvm_free() of a written 4 KiB allocation, per call");
	snprintf(fd->what, sizeof(fd->what),
		 "usvm_free() of a device-resident 4 KiB allocation, per call");
	snprintf(f->base_what, sizeof(f->base_what), "free() of a written malloc(4096) block");
	memcpy(fd->base_what, f->base_what, sizeof(fd->base_what));
	f->ops = fd->ops = n;
	bench_phase_begin(b);
	for (r = 0; !err && bench_more(b, r); r++) {
		err = usvm_free_round(b, n, 0, &tu);
		if (!err)
			err = usvm_free_round(b, n, 1, &td);
		if (!err && malloc_free_round(n, &tb))
			err = bench_fail(b, "out of memory");
		if (!err) {
			fig_push(f, (double)tu / n, (double)tb / n);
			fig_push(fd, (double)td / n, (double)tb / n);
		}
	}
	return err;
}

/* ---- launch -------------------------------------------------------------- */

static int nop_kernel(struct usvm_kctx *ctx, unsigned long idx, void *arg)
{
	(void)ctx;
	(void)idx;
	(void)arg;
	return 0;
}

/* Which threads run the items of a launch: the launching one, or others. */
struct launch_check {
	pthread_t caller;
	atomic_ulong on_caller, elsewhere;
};

static int count_kernel(struct usvm_kctx *ctx, unsigned long idx, void *arg)
{
	struct launch_check *c = arg;

	(void)ctx;
	(void)idx;
	if (pthread_equal(pthread_self(), c->caller))
		atomic_fetch_add(&c->on_caller, 1);
	else
		atomic_fetch_add(&c->elsewhere, 1);
	return 0;
}

/*
 * Untimed: every item of @n launches ran exactly once?  An empty kernel
 * cannot tell, so a counting one runs here.  Return: 0 or -EIO (reported);
 * *@pct: percent of the items the launching thread ran itself.
 */
static int launch_check(struct bench *b, struct usvm_device *dev, unsigned n, double *pct)
{
	struct launch_check c = { .caller = pthread_self() };
	unsigned long sum;
	unsigned i;
	int err;

	for (i = 0; i < n; i++) {
		err = usvm_device_launch(dev, count_kernel, 2, &c);
		if (err)
			return bench_fail(b, "usvm_device_launch: %s", usvm_strerror(err));
	}
	sum = atomic_load(&c.on_caller) + atomic_load(&c.elsewhere);
	if (sum != 2ul * n)
		return bench_fail(b, "%u launches of 2 items ran %lu items", n, sum);
	*pct = 100.0 * (double)atomic_load(&c.on_caller) / (double)sum;
	return 0;
}

/*
 * The baseline of a launch: hand @n work items to 2 waiting threads and
 * wait until they are done, with a mutex and two condition variables --
 * what the plainest 2-thread pool costs for the same empty work.
 */
struct pool {
	pthread_mutex_t lock;
	pthread_cond_t go, done;
	unsigned long gen, n, next, left;
	int stop;
	pthread_t thr[2];
};

static void *pool_worker(void *arg)
{
	struct pool *p = arg;
	unsigned long seen = 0;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (p->gen == seen && !p->stop)
			pthread_cond_wait(&p->go, &p->lock);
		if (p->stop)
			break;
		seen = p->gen;
		while (p->next < p->n) {
			p->next++;
			pthread_mutex_unlock(&p->lock);
			/* the empty kernel */
			pthread_mutex_lock(&p->lock);
			if (--p->left == 0)
				pthread_cond_signal(&p->done);
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void pool_launch(struct pool *p, unsigned long n)
{
	pthread_mutex_lock(&p->lock);
	p->n = n;
	p->next = 0;
	p->left = n;
	p->gen++;
	pthread_cond_broadcast(&p->go);
	while (p->left)
		pthread_cond_wait(&p->done, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

/* Return: 0 or -errno. */
static int pool_start(struct pool *p)
{
	unsigned i;

	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->go, NULL);
	pthread_cond_init(&p->done, NULL);
	for (i = 0; i < 2; i++) {
		int err = pthread_create(&p->thr[i], NULL, pool_worker, p);

		if (err) {
			pthread_mutex_lock(&p->lock);
			p->stop = 1;
			pthread_cond_broadcast(&p->go);
			pthread_mutex_unlock(&p->lock);
			while (i--)
				pthread_join(p->thr[i], NULL);
			return -err;
		}
	}
	return 0;
}

static void pool_stop(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thr[0], NULL);
	pthread_join(p->thr[1], NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->go);
	pthread_cond_destroy(&p->done);
}

/* @n launches each timed, into @su, and as many pool dispatches into @sb. */
static int launch_round(struct bench *b, struct usvm_device *dev, struct pool *p, unsigned n,
			uint64_t *su, uint64_t *sb)
{
	unsigned i;
	int err;

	for (i = 0; i < n; i++) {
		uint64_t t0 = cli_now_ns();

		err = usvm_device_launch(dev, nop_kernel, 2, NULL);
		su[i] = cli_now_ns() - t0;
		if (err)
			return bench_fail(b, "usvm_device_launch: %s", usvm_strerror(err));
	}
	for (i = 0; i < n; i++) {
		uint64_t t0 = cli_now_ns();

		pool_launch(p, 2);
		sb[i] = cli_now_ns() - t0;
	}
	return 0;
}

static void launch_figs(struct bench *b, struct bench_fig **med, struct bench_fig **p99)
{
	static const char what[] = "empty usvm_device_launch(), 2 items, 2 device workers";
	static const char base[] = "hand 2 items to a 2-thread pool and wait (mutex+condvar)";

	*med = fig_new(b, "launch_median", "launch", "us", 0);
	*p99 = fig_new(b, "launch_p99", "launch", "us", 0);
	snprintf((*med)->what, sizeof((*med)->what), "%s: median", what);
	snprintf((*p99)->what, sizeof((*p99)->what), "%s: 99th percentile", what);
	snprintf((*med)->base_what, sizeof((*med)->base_what), "%s: median", base);
	snprintf((*p99)->base_what, sizeof((*p99)->base_what), "%s: 99th percentile", base);
	(*med)->ops = (*p99)->ops = b->cfg.launches;
}

static int group_launch(struct bench *b)
{
	struct usvm_device_options o = { .name = "bench", .pagemap = b->pm, .threads = 2 };
	unsigned n = b->cfg.launches, r;
	uint64_t *su = calloc(n, sizeof(*su)), *sb = calloc(n, sizeof(*sb));
	struct usvm_device *dev = NULL;
	struct bench_fig *med, *p99;
	struct bench_extra *oncaller;
	struct pool pool;
	double pct = 0;
	int err = -ENOMEM;

	launch_figs(b, &med, &p99);
	oncaller = fig_extra(med, "items_run_by_caller", "%");
	if (!su || !sb) {
		bench_fail(b, "out of memory");
		goto out;
	}
	err = usvm_device_create(b->mm, &o, &dev);
	if (err) {
		bench_fail(b, "usvm_device_create: %s", usvm_strerror(err));
		goto out;
	}
	err = pool_start(&pool);
	if (err) {
		bench_fail(b, "pthread_create: %s", strerror(-err));
		goto out;
	}
	/* Warm-up: threads started, first launches out of the way. */
	err = launch_round(b, dev, &pool, n < 16 ? n : 16, su, sb);
	bench_phase_begin(b);
	for (r = 0; !err && bench_more(b, r); r++) {
		err = launch_round(b, dev, &pool, n, su, sb);
		if (!err)
			err = launch_check(b, dev, n < 1000 ? n : 1000, &pct);
		if (!err) {
			fig_push(med, pct_us(su, n, 0.5), pct_us(sb, n, 0.5));
			fig_push(p99, pct_us(su, n, 0.99), pct_us(sb, n, 0.99));
			series_push(&oncaller->s, pct);
		}
	}
	pool_stop(&pool);
out:
	if (dev)
		usvm_device_destroy(dev);
	free(su);
	free(sb);
	return err;
}

/* ---- scaling: CPU faults from 1 and 2 threads ---------------------------- */

struct scale_arg {
	unsigned char **a;
	size_t lo, hi, step;
	unsigned r;
	size_t bad;
	atomic_int *go;          /* 1: start, -1: give up */
};

static void *scale_worker(void *arg)
{
	struct scale_arg *s = arg;
	size_t i;
	int go;

	/* Spin, not a barrier: the first thread must not start before the second exists. */
	while (!(go = atomic_load(s->go)))
		sched_yield();
	if (go < 0)
		return NULL;
	for (i = s->lo; i < s->hi; i += s->step)
		s->bad += ((volatile unsigned char *)s->a[i])[64] != pat(i, s->r);
	return NULL;
}

/*
 * Fault every allocation of the device-resident set back from @nthr (1 or
 * 2) threads: contiguous shares (mostly different 2 MiB blocks) or, with
 * @interleave, alternate allocations (the same blocks).
 * Return: 0 or -errno (reported); *@ns from the common start to the last join.
 */
static int scale_pass(struct bench *b, unsigned char **a, size_t n, unsigned r, unsigned nthr,
		      int interleave, uint64_t *ns)
{
	struct scale_arg s[2];
	atomic_int go = 0;
	pthread_t th[2];
	unsigned t, made;
	uint64_t t0;
	size_t bad = 0;
	int err = set_to_device(b, a, n, USVM_PAGE_SIZE, r);

	for (made = 0; !err && made < nthr; made++) {
		t = made;
		s[t] = (struct scale_arg){ .a = a, .r = r, .go = &go,
			.lo = interleave ? t : n * t / nthr, .step = interleave ? nthr : 1,
			.hi = interleave ? n : n * (t + 1) / nthr };
		err = -pthread_create(&th[t], NULL, scale_worker, &s[t]);
		if (err) {
			bench_fail(b, "pthread_create: %s", strerror(-err));
			break;
		}
	}
	t0 = cli_now_ns();
	atomic_store(&go, err ? -1 : 1);
	for (t = 0; t < made; t++) {
		pthread_join(th[t], NULL);
		bad += s[t].bad;
	}
	*ns = cli_now_ns() - t0;
	if (!err && bad)
		err = bench_fail(b, "%zu of %zu allocations read back wrong data", bad, n);
	return err;
}

static void scale_figs(struct bench *b, struct bench_fig **fc, struct bench_fig **fi)
{
	static const char base[] = "the same faults from 1 thread";

	*fc = fig_new(b, "scaling_2_threads", "scaling", "kfault/s", 1);
	*fi = fig_new(b, "scaling_2_threads_same_blocks", "scaling", "kfault/s", 1);
	snprintf((*fc)->what, sizeof((*fc)->what),
		 "2 threads fault back %u device-resident 4 KiB allocations, half each",
		 b->cfg.scale_allocs);
	snprintf((*fi)->what, sizeof((*fi)->what),
		 "the same, the threads taking alternate allocations (same 2 MiB blocks)");
	snprintf((*fc)->base_what, sizeof((*fc)->base_what), "%s", base);
	snprintf((*fi)->base_what, sizeof((*fi)->base_what), "%s", base);
	(*fc)->ops = (*fi)->ops = b->cfg.scale_allocs;
}

static int group_scaling(struct bench *b)
{
	size_t n = b->cfg.scale_allocs;
	unsigned char **a = set_alloc(b, n, USVM_PAGE_SIZE);
	struct bench_fig *fc, *fi;
	uint64_t t1, t2, t2i;
	unsigned r;
	int err = 0;

	scale_figs(b, &fc, &fi);
	if (!a)
		return -ENOMEM;
	bench_phase_begin(b);
	for (r = 0; !err && bench_more(b, r); r++) {
		err = scale_pass(b, a, n, 3 * r, 1, 0, &t1);
		if (!err)
			err = scale_pass(b, a, n, 3 * r + 1, 2, 0, &t2);
		if (!err)
			err = scale_pass(b, a, n, 3 * r + 2, 2, 1, &t2i);
		if (err)
			break;
		fig_push(fc, (double)n * 1e6 / (double)t2, (double)n * 1e6 / (double)t1);
		fig_push(fi, (double)n * 1e6 / (double)t2i, (double)n * 1e6 / (double)t1);
	}
	set_free(b, a, n);
	return err;
}

/* ---- read_back: migrate back and read everything ------------------------- */

/* Load one word per 64-byte line.  Return: the sum of the words. */
static uint64_t read_lines(unsigned char **a, size_t n, size_t asz)
{
	uint64_t sum = 0;
	size_t i, k;

	for (i = 0; i < n; i++)
		for (k = 0; k < asz; k += 64)
			sum += *(volatile uint64_t *)(a[i] + k);
	return sum;
}

static uint64_t read_lines_expected(size_t n, size_t asz, unsigned r)
{
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i < n; i++)
		sum += pat(i, r) * 0x0101010101010101ull * (asz / 64);
	return sum;
}

struct rb_round {
	uint64_t back_ns, resident_ns, cpy_ns, moves;
};

/* Return: 0 or -EIO (reported). */
static int rb_round(struct bench *b, unsigned char **a, size_t n, size_t asz, unsigned r,
		    struct rb_round *m)
{
	uint64_t want = read_lines_expected(n, asz, r), got, t0;
	struct usvm_mm_stats s0, s1;
	int err = set_to_device(b, a, n, asz, r);

	if (err)
		return err;
	usvm_mm_stats(b->mm, &s0);
	t0 = cli_now_ns();
	got = read_lines(a, n, asz);
	m->back_ns = cli_now_ns() - t0;
	usvm_mm_stats(b->mm, &s1);
	m->moves = s1.migrations_to_ram - s0.migrations_to_ram;
	if (got != want)
		return bench_fail(b, "read back: wrong data (sum %#llx, expected %#llx)",
				  (unsigned long long)got, (unsigned long long)want);
	t0 = cli_now_ns();
	got = read_lines(a, n, asz);
	m->resident_ns = cli_now_ns() - t0;
	m->cpy_ns = time_memcpy(b, n * asz);
	return set_check_where(b, a, n, asz, NULL);
}

static int read_back_size(struct bench *b, size_t asz, const char *name)
{
	size_t n = b->cfg.read_bytes / asz;
	unsigned char **a = set_alloc(b, n, asz);
	struct bench_fig *f = fig_new(b, name, "read_back", "GB/s", 1);
	struct bench_extra *res = fig_extra(f, "read_resident", "GB/s");
	struct bench_extra *moves = fig_extra(f, "migrations_to_ram", "allocations");
	struct rb_round m = { 0 };
	char s[32], t[32];
	unsigned r;
	int err;

	snprintf(f->what, sizeof(f->what), "CPU reads every cache line of %s in device-resident "
		 "%s allocations", fmt_bytes(t, sizeof(t), n * asz), fmt_bytes(s, sizeof(s), asz));
	snprintf(f->base_what, sizeof(f->base_what), "memcpy() of the same %s between warm buffers",
		 t);
	f->bytes = n * asz;
	f->ops = n;
	if (!a)
		return -ENOMEM;
	bench_phase_begin(b);
	for (r = 0, err = 0; bench_more(b, r); r++) {
		err = rb_round(b, a, n, asz, r, &m);
		if (err)
			break;
		fig_push(f, gbs(n * asz, m.back_ns), gbs(n * asz, m.cpy_ns));
		series_push(&res->s, gbs(n * asz, m.resident_ns));
		series_push(&moves->s, (double)m.moves);
	}
	set_free(b, a, n);
	return err;
}

static int group_read_back(struct bench *b)
{
	int err = read_back_size(b, 2u << 20, "read_back_2M");

	return err ? err : read_back_size(b, 64u << 10, "read_back_64K");
}

/* ---- setup --------------------------------------------------------------- */

/* In the order they run and are reported. */
const struct bench_group bench_groups[] = {
	{ "first_touch", group_first_touch },
	{ "fault", group_fault },
	{ "migrate", group_migrate },
	{ "free", group_free },
	{ "launch", group_launch },
	{ "scaling", group_scaling },
	{ "read_back", group_read_back },
};
const unsigned bench_ngroups = sizeof(bench_groups) / sizeof(bench_groups[0]);

static int selected(const struct bench *b, const char *name)
{
	unsigned i;

	for (i = 0; i < bench_ngroups; i++)
		if (!strcmp(bench_groups[i].name, name))
			return !!(b->cfg.groups & (1u << i));
	return 0;
}

/* Device memory the selected groups hold at once, plus slack. */
static size_t device_bytes(const struct bench *b)
{
	const struct bench_cfg *c = &b->cfg;
	size_t need = 0, v;

	if (selected(b, "migrate"))
		need = c->migrate_bytes;
	if (selected(b, "read_back") && c->read_bytes > need)
		need = c->read_bytes;
	v = (size_t)c->lat_allocs * USVM_PAGE_SIZE;
	need = v > need ? v : need;
	v = (size_t)c->scale_allocs * USVM_PAGE_SIZE;
	need = v > need ? v : need;
	v = (size_t)c->free_allocs * USVM_PAGE_SIZE;
	need = v > need ? v : need;
	return need + (4u << 20);
}

/* The memcpy baselines' buffers, every page faulted in before any timing. */
static int alloc_copy_buffers(struct bench *b)
{
	size_t len = 0, i;

	if (selected(b, "migrate"))
		len = b->cfg.migrate_bytes;
	if (selected(b, "read_back") && b->cfg.read_bytes > len)
		len = b->cfg.read_bytes;
	if (!len)
		return 0;
	b->src = malloc(len);
	b->dst = malloc(len);
	if (!b->src || !b->dst)
		return bench_fail(b, "out of memory (2 x %zu bytes for memcpy)", len);
	for (i = 0; i < len; i++)
		b->src[i] = (unsigned char)(i * 131 + 7);
	memset(b->dst, 0, len);
	b->cpy_len = len;
	return 0;
}

/**
 * bench_setup() - the address space, the simulated device memory and the
 * memcpy buffers of a run of the selected groups.
 *
 * Return: 0; -EPERM, -ENOSYS (userfaultfd; explained on stderr), or another
 * negative errno (reported).
 */
int bench_setup(struct bench *b)
{
	struct usvm_mm_options mo = { 0 };
	size_t big = b->cfg.migrate_bytes > b->cfg.read_bytes ? b->cfg.migrate_bytes
							      : b->cfg.read_bytes;
	int err;

	/* Room for the largest set twice over (address reuse is not instant). */
	mo.arena_size = 1ul << 30;
	while (mo.arena_size < 2 * big)
		mo.arena_size <<= 1;
	err = usvm_mm_create(&mo, &b->mm);
	if (err) {
		explain_setup_error("cannot create the managed address space", err);
		return err;
	}
	err = usvm_sim_pagemap_create("bench", device_bytes(b), &b->pm);
	if (err) {
		bench_fail(b, "cannot create simulated device memory: %s", usvm_strerror(err));
		return err;
	}
	return alloc_copy_buffers(b);
}

void bench_teardown(struct bench *b)
{
	free(b->src);
	free(b->dst);
	b->src = b->dst = NULL;
	if (b->pm)
		usvm_pagemap_destroy(b->pm);
	if (b->mm)
		usvm_mm_destroy(b->mm);
	b->pm = NULL;
	b->mm = NULL;
}

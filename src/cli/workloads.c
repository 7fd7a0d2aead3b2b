// SPDX-License-Identifier: MIT
/*
 * usvm CLI: the built-in workloads.  Each mixes CPU phases and device phases
 * on managed memory (usvm_alloc), runs device kernels that move data in bulk
 * (one kernel index = one CLI_KCHUNK or one page through usvm_dev_read /
 * usvm_dev_write), and verifies every byte it wrote.  A mismatch is recorded
 * with run_fail() (address, value, expected value) and ends the run with
 * exit status 1.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

#define EPC (CLI_KCHUNK / sizeof(uint64_t))   /* elements per kernel index */
#define CPU_STEP 8192                           /* elements between progress updates */

/* Per device worker thread scratch (kernels run on the device's threads). */
static _Thread_local uint64_t kin[EPC + 2];
static _Thread_local uint64_t kout[EPC];

static unsigned all_devices(struct cli_run *r)
{
	return (1u << r->ndev) - 1;
}

static const char *devs_label(struct cli_run *r, char *buf, size_t n)
{
	size_t o = 0;
	unsigned d;

	buf[0] = 0;
	for (d = 0; d < r->ndev && o < n; d++)
		o += (size_t)snprintf(buf + o, n - o, "%s%s", d ? "+" : "", r->devname[d]);
	return buf;
}

static unsigned long nchunks(size_t elems)
{
	return (unsigned long)((elems + EPC - 1) / EPC);
}

static int mismatch(struct cli_run *r, const char *who, const char *buf, size_t i,
		    const void *addr, uint64_t got, uint64_t want)
{
	return run_fail(r, "%s: %s[%zu] at %p is 0x%016" PRIx64 ", expected 0x%016" PRIx64,
			who, buf, i, addr, got, want);
}

/* ======================================================================== */
/* stream: CPU init, device pass b = a*k + c, CPU check                      */
/* ======================================================================== */

#define STREAM_K 3
#define STREAM_C 7

struct stream {
	struct cli_run *r;
	uint64_t *a, *b;
	size_t n;
	unsigned it;       /* a[i] == pattern(i) + it */
	int last;          /* last iteration: check only */
	uint64_t seed;
};

static int stream_init(struct cli_run *r, void *arg, size_t lo, size_t hi, unsigned tid)
{
	struct stream *s = arg;
	size_t i, j;

	(void)tid;
	for (i = lo; i < hi; i = j) {
		size_t e = hi - i < CPU_STEP ? hi : i + CPU_STEP;

		for (j = i; j < e; j++)
			s->a[j] = pattern64(s->seed, j);
		progress_add(r, (e - i) * 8);
	}
	return 0;
}

static int stream_kernel(struct usvm_kctx *ctx, unsigned long idx, void *arg)
{
	struct stream *s = arg;
	size_t lo = idx * EPC, cnt = s->n - lo < EPC ? s->n - lo : EPC, j;
	int err;

	err = usvm_dev_read(ctx, &s->a[lo], kin, cnt * 8);
	if (err)
		return err;
	for (j = 0; j < cnt; j++)
		kout[j] = kin[j] * STREAM_K + STREAM_C;
	err = usvm_dev_write(ctx, &s->b[lo], kout, cnt * 8);
	if (err)
		return err;
	progress_add(s->r, cnt * 16);
	return 0;
}

static int stream_check(struct cli_run *r, void *arg, size_t lo, size_t hi, unsigned tid)
{
	struct stream *s = arg;
	size_t i, j;

	(void)tid;
	for (i = lo; i < hi; i = j) {
		size_t e = hi - i < CPU_STEP ? hi : i + CPU_STEP;

		for (j = i; j < e; j++) {
			uint64_t want = pattern64(s->seed, j) + s->it;

			if (s->a[j] != want)
				return mismatch(r, "CPU check", "a", j, &s->a[j], s->a[j], want);
			if (s->b[j] != want * STREAM_K + STREAM_C)
				return mismatch(r, "CPU check", "b", j, &s->b[j], s->b[j],
						want * STREAM_K + STREAM_C);
			if (!s->last)
				s->a[j] = want + 1;
		}
		progress_add(r, (e - i) * (s->last ? 16 : 24));
		if (run_failed(r))
			return -1;
	}
	return 0;
}

static uint64_t s_bytes(struct cli_run *r, unsigned buf)
{
	return buf < r->nbufs ? r->bufs[buf].len : 0;
}

static void stream_explain(struct cli_run *r)
{
	const struct cli_phase *p1 = &r->phases[0], *p2 = &r->phases[1], *p3 = &r->phases[2];
	uint64_t df = 0, mig = 0, cleared = 0, moved, dmig = 0, sysmap = 0;
	char b1[32], b2[32], b3[32], c1[32], c2[32], c3[32], dl[64];
	unsigned d;

	if (r->nphases < 3 || r->o->quiet || r->o->json)
		return;
	for (d = 0; d < r->ndev; d++) {
		df += p2->delta.dev[d].device_faults;
		mig += p2->delta.pm[d].migrations_to_dev;
		cleared += p2->delta.pm[d].pages_cleared * USVM_PAGE_SIZE;
		sysmap += p2->delta.dev[d].bytes_mapped_system;
		dmig += p3->delta.pm[d].cpu_fault_migrations;
	}
	moved = p2->delta.mm.bytes_to_dev > cleared ? p2->delta.mm.bytes_to_dev - cleared : 0;
	devs_label(r, dl, sizeof(dl));
	say(r, "\nWhat happened:\n");
	say(r, "  1. The CPU wrote a (%s of managed memory, from usvm_alloc). First touches are\n"
	    "     userfaultfd faults, each served by mapping zero pages: %s CPU faults.\n"
	    "     Everything is in system memory.\n",
	    fmt_bytes(b1, sizeof(b1), s_bytes(r, 0)), fmt_count(c1, sizeof(c1), p1->delta.mm.cpu_faults));
	if (mig)
		say(r, "  2. The kernel on %s read a and wrote b through the device's own page table.\n"
		    "     Its misses were %s device faults; the GPU SVM fault flow migrated the\n"
		    "     faulting chunks into device memory: %s migrations, %s of a moved with\n"
		    "     UFFDIO_MOVE (no copy), %s of b (never touched) cleared there instead.\n",
		    dl, fmt_count(c2, sizeof(c2), df), fmt_count(c3, sizeof(c3), mig),
		    fmt_bytes(b2, sizeof(b2), moved), fmt_bytes(b3, sizeof(b3), cleared));
	else
		say(r, "  2. The kernel on %s read a and wrote b through the device's own page table.\n"
		    "     Its misses were %s device faults, but no chunk could migrate (too little\n"
		    "     device memory, or policy never): the device worked on system memory.\n",
		    dl, fmt_count(c2, sizeof(c2), df));
	if (sysmap)
		say(r, "     %s were used in place from system memory (mapped, not migrated).\n",
		    fmt_bytes(b1, sizeof(b1), sysmap));
	say(r, "  3. The CPU checked every byte of a and b. Its first touch of each\n"
	    "     device-resident allocation was a CPU fault (%s on device memory) that\n"
	    "     migrated the whole allocation back: %s migrations, %s to system memory.\n",
	    fmt_count(c1, sizeof(c1), p3->delta.mm.cpu_faults_devmem), fmt_count(c2, sizeof(c2), dmig),
	    fmt_bytes(b1, sizeof(b1), p3->delta.mm.bytes_to_ram));
	if (p3->delta.mm.timeslice_waits)
		say(r, "     %s of those faults first waited for the %lu ms timeslice to expire.\n",
		    fmt_count(c1, sizeof(c1), p3->delta.mm.timeslice_waits), r->o->timeslice_ms);
}

static int wl_stream(struct cli_run *r)
{
	struct stream k = { .r = r }, *s = &k;
	char dl[64];
	unsigned it;

	s->n = r->size / 2 / sizeof(uint64_t);
	s->seed = r->o->seed;
	s->a = run_alloc(r, "a", s->n * 8);
	s->b = run_alloc(r, "b", s->n * 8);
	if (!s->a || !s->b)
		return -1;
	r->work_total = (uint64_t)r->iterations * s->n * 40;
	devs_label(r, dl, sizeof(dl));

	phase_begin(r, "CPU", "CPU: write a");
	run_cpu(r, stream_init, s, s->n);
	if (phase_end(r))
		return -1;
	for (it = 0; it < r->iterations; it++) {
		s->it = it;
		s->last = it + 1 == r->iterations;
		phase_begin(r, dl, "%s: b = %d*a + %d", dl, STREAM_K, STREAM_C);
		run_devices(r, all_devices(r), stream_kernel, &k, nchunks(s->n));
		if (phase_end(r))
			return -1;
		phase_begin(r, "CPU", s->last ? "CPU: check a and b" : "CPU: check a, b; a += 1");
		run_cpu(r, stream_check, s, s->n);
		if (phase_end(r))
			return -1;
	}
	stream_explain(r);
	return 0;
}

/* ======================================================================== */
/* stencil: 1-D Jacobi, device left half, CPU right half, alternating        */
/* ======================================================================== */

struct stencil {
	struct cli_run *r;
	uint64_t *u, *v;    /* read u, write v; swapped every iteration */
	size_t n, h;        /* elements per buffer; the device does [0, h) */
};

static inline uint64_t stencil_f(const uint64_t *u, size_t i, size_t n)
{
	if (i == 0 || i == n - 1)
		return u[i];
	return u[i - 1] + 2 * u[i] + u[i + 1];
}

static int stencil_init(struct cli_run *r, void *arg, size_t lo, size_t hi, unsigned tid)
{
	struct stencil *s = arg;
	size_t i;

	(void)tid;
	for (i = lo; i < hi; i++) {
		s->u[i] = pattern64(r->o->seed, i);
		if ((i & (CPU_STEP - 1)) == CPU_STEP - 1)
			progress_add(r, CPU_STEP * 8);
	}
	return 0;
}

static int stencil_kernel(struct usvm_kctx *ctx, unsigned long idx, void *arg)
{
	struct stencil *s = arg;
	size_t lo = idx * EPC, hi = lo + EPC < s->h ? lo + EPC : s->h;
	size_t rlo = lo ? lo - 1 : 0, rhi = hi + 1 <= s->n ? hi + 1 : s->n, i;
	int err;

	/* One bulk read of u[lo-1, hi+1): the halo comes along. */
	err = usvm_dev_read(ctx, &s->u[rlo], kin, (rhi - rlo) * 8);
	if (err)
		return err;
	for (i = lo; i < hi; i++) {
		size_t k = i - rlo;   /* kin[k] == u[i] */

		if (i == 0 || i == s->n - 1)
			kout[i - lo] = kin[k];
		else
			kout[i - lo] = kin[k - 1] + 2 * kin[k] + kin[k + 1];
	}
	err = usvm_dev_write(ctx, &s->v[lo], kout, (hi - lo) * 8);
	if (err)
		return err;
	progress_add(s->r, (hi - lo) * 16);
	return 0;
}

static int stencil_cpu(struct cli_run *r, void *arg, size_t lo, size_t hi, unsigned tid)
{
	struct stencil *s = arg;
	size_t i;

	(void)tid;
	lo += s->h;
	hi += s->h;
	for (i = lo; i < hi; i++) {
		s->v[i] = stencil_f(s->u, i, s->n);
		if ((i & (CPU_STEP - 1)) == CPU_STEP - 1)
			progress_add(r, CPU_STEP * 16);
	}
	return 0;
}

struct stencil_check {
	const uint64_t *got[2], *want[2];
	size_t n;
};

static int stencil_verify(struct cli_run *r, void *arg, size_t lo, size_t hi, unsigned tid)
{
	struct stencil_check *c = arg;
	size_t i;
	int k;

	(void)tid;
	for (k = 0; k < 2; k++)
		for (i = lo; i < hi; i++)
			if (c->got[k][i] != c->want[k][i])
				return mismatch(r, "CPU verify", k ? "v" : "u", i, &c->got[k][i],
						c->got[k][i], c->want[k][i]);
	progress_add(r, (hi - lo) * 16);
	return 0;
}

static int wl_stencil(struct cli_run *r)
{
	struct stencil s = { .r = r };
	struct stencil_check c;
	uint64_t *ru, *rv, *t;
	char dl[64];
	unsigned it;
	size_t i;

	s.n = r->size / 2 / sizeof(uint64_t);
	s.h = s.n / 2;
	s.u = run_alloc(r, "u", s.n * 8);
	s.v = run_alloc(r, "v", s.n * 8);
	ru = malloc(s.n * 8);
	rv = malloc(s.n * 8);
	if (!s.u || !s.v || !ru || !rv) {
		free(ru);
		free(rv);
		return run_fail(r, "out of memory");
	}
	r->work_total = s.n * 8 * (1 + 2 * (uint64_t)r->iterations + 2);
	devs_label(r, dl, sizeof(dl));

	/* The reference, on private memory, outside the timed phases. */
	for (i = 0; i < s.n; i++)
		ru[i] = pattern64(r->o->seed, i);
	memset(rv, 0, s.n * 8);
	for (it = 0; it < r->iterations; it++) {
		for (i = 0; i < s.n; i++)
			rv[i] = stencil_f(ru, i, s.n);
		t = ru; ru = rv; rv = t;
	}

	phase_begin(r, "CPU", "CPU: init u");
	run_cpu(r, stencil_init, &s, s.n);
	if (phase_end(r))
		goto out;
	for (it = 0; it < r->iterations; it++) {
		phase_begin(r, dl, "%s: left half, iter %u", dl, it + 1);
		phase_uses(r, s.u, (s.h + 1) * 8);
		phase_uses(r, s.v, s.h * 8);
		run_devices(r, all_devices(r), stencil_kernel, &s, nchunks(s.h));
		if (phase_end(r))
			goto out;
		phase_begin(r, "CPU", "CPU: right half, iter %u", it + 1);
		phase_uses(r, s.u + (s.h - 1), (s.n - s.h + 1) * 8);
		phase_uses(r, s.v + s.h, (s.n - s.h) * 8);
		run_cpu(r, stencil_cpu, &s, s.n - s.h);
		if (phase_end(r))
			goto out;
		t = s.u; s.u = s.v; s.v = t;
	}
	/* After the loop s.u holds the last result, as ru does. */
	phase_begin(r, "CPU", "CPU: verify u and v");
	c.got[0] = s.u;
	c.want[0] = ru;
	c.got[1] = s.v;
	c.want[1] = rv;
	c.n = s.n;
	run_cpu(r, stencil_verify, &c, s.n);
	phase_end(r);
out:
	free(ru);
	free(rv);
	return run_failed(r) ? -1 : 0;
}

/* ======================================================================== */
/* random: seeded random page touches, CPU threads and devices at once       */
/* ======================================================================== */

struct rop {
	uint32_t page;
	uint16_t off, len;     /* the write: [off, off + len) within the page */
	uint64_t seed;
};

struct rnd {
	struct cli_run *r;
	unsigned char *buf, *shadow;
	size_t npages;
	struct rop *cops, *dops;
	size_t ncops, ndops;
};

static void rop_fill(const struct rop *op, unsigned char *dst)
{
	uint64_t w;
	unsigned j;

	for (j = 0; j < op->len; j += 8) {
		w = mix64(op->seed + j);
		memcpy(dst + j, &w, op->len - j < 8 ? op->len - j : 8);
	}
}

static int rnd_report(struct cli_run *r, const char *who, struct rnd *s, size_t off,
		      const unsigned char *got)
{
	return run_fail(r, "%s: byte %zu (page %zu) at %p is 0x%02x, expected 0x%02x",
			who, off, off / USVM_PAGE_SIZE, (void *)(s->buf + off), *got, s->shadow[off]);
}

static int rnd_first_diff(const unsigned char *a, const unsigned char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (a[i] != b[i])
			return (int)i;
	return -1;
}

static int rnd_init(struct cli_run *r, void *arg, size_t lo, size_t hi, unsigned tid)
{
	struct rnd *s = arg;
	uint64_t *b = (uint64_t *)s->buf, *sh = (uint64_t *)s->shadow;
	size_t i;

	(void)tid;
	for (i = lo; i < hi; i++) {
		b[i] = sh[i] = pattern64(r->o->seed, i);
		if ((i & (CPU_STEP - 1)) == CPU_STEP - 1)
			progress_add(r, CPU_STEP * 8);
	}
	return 0;
}

static int rnd_cpu(struct cli_run *r, void *arg, size_t lo, size_t hi, unsigned tid)
{
	struct rnd *s = arg;
	size_t i;

	(void)tid;
	for (i = lo; i < hi; i++) {
		const struct rop *op = &s->cops[i];
		size_t base = (size_t)op->page * USVM_PAGE_SIZE;
		int d = rnd_first_diff(s->buf + base, s->shadow + base, USVM_PAGE_SIZE);

		if (d >= 0)
			return rnd_report(r, "CPU touch", s, base + (size_t)d, s->buf + base + d);
		rop_fill(op, s->buf + base + op->off);
		memcpy(s->shadow + base + op->off, s->buf + base + op->off, op->len);
		progress_add(r, USVM_PAGE_SIZE + op->len);
	}
	return 0;
}

static _Thread_local unsigned char kpage[USVM_PAGE_SIZE];

static int rnd_kernel(struct usvm_kctx *ctx, unsigned long idx, void *arg)
{
	struct rnd *s = arg;
	const struct rop *op = &s->dops[idx];
	size_t base = (size_t)op->page * USVM_PAGE_SIZE;
	unsigned char *out = (unsigned char *)kout;
	int err, d;

	err = usvm_dev_read(ctx, s->buf + base, kpage, USVM_PAGE_SIZE);
	if (err)
		return err;
	d = rnd_first_diff(kpage, s->shadow + base, USVM_PAGE_SIZE);
	if (d >= 0) {
		char who[48];

		snprintf(who, sizeof(who), "device %s touch", usvm_device_name(usvm_kctx_device(ctx)));
		rnd_report(s->r, who, s, base + (size_t)d, kpage + d);
		return 1;
	}
	rop_fill(op, out);
	err = usvm_dev_write(ctx, s->buf + base + op->off, out, op->len);
	if (err)
		return err;
	memcpy(s->shadow + base + op->off, out, op->len);
	progress_add(s->r, USVM_PAGE_SIZE + op->len);
	return 0;
}

static int rnd_verify(struct cli_run *r, void *arg, size_t lo, size_t hi, unsigned tid)
{
	struct rnd *s = arg;
	size_t p;

	(void)tid;
	for (p = lo; p < hi; p++) {
		size_t base = p * USVM_PAGE_SIZE;
		int d = rnd_first_diff(s->buf + base, s->shadow + base, USVM_PAGE_SIZE);

		if (d >= 0)
			return rnd_report(r, "CPU verify", s, base + (size_t)d, s->buf + base + d);
		progress_add(r, USVM_PAGE_SIZE);
	}
	return 0;
}

static int wl_random(struct cli_run *r)
{
	struct rnd s = { .r = r };
	struct rng g = { .s = r->o->seed * 0x2545f4914f6cdd1dull + 17 };
	uint32_t *perm;
	size_t i, per_round;
	unsigned it;
	char dl[64];

	s.npages = r->size / USVM_PAGE_SIZE;
	s.buf = run_alloc(r, "buf", s.npages * USVM_PAGE_SIZE);
	s.shadow = malloc(s.npages * USVM_PAGE_SIZE);
	per_round = s.npages / 4 ? s.npages / 4 : 1;
	perm = malloc(s.npages * sizeof(*perm));
	s.cops = malloc(per_round * sizeof(*s.cops));
	s.dops = malloc(per_round * sizeof(*s.dops));
	if (!s.buf || !s.shadow || !perm || !s.cops || !s.dops) {
		run_fail(r, "out of memory");
		goto out;
	}
	for (i = 0; i < s.npages; i++)
		perm[i] = (uint32_t)i;
	r->work_total = s.npages * USVM_PAGE_SIZE * 2 +
			(uint64_t)r->iterations * per_round * USVM_PAGE_SIZE * 3 / 2;
	devs_label(r, dl, sizeof(dl));

	phase_begin(r, "CPU", "CPU: init buffer");
	run_cpu(r, rnd_init, &s, s.npages * USVM_PAGE_SIZE / 8);
	if (phase_end(r))
		goto out;
	for (it = 0; it < r->iterations; it++) {
		/* Distinct pages this round (a partial shuffle), so no two actors
		 * touch the same page at once; half to the CPU, half to devices. */
		s.ncops = s.ndops = 0;
		for (i = 0; i < per_round; i++) {
			size_t j = i + (size_t)rng_below(&g, s.npages - i);
			uint32_t t = perm[i];
			struct rop op;

			perm[i] = perm[j];
			perm[j] = t;
			op.page = perm[i];
			op.len = (uint16_t)(8 * (1 + rng_below(&g, USVM_PAGE_SIZE / 8)));
			op.off = (uint16_t)(8 * rng_below(&g, (USVM_PAGE_SIZE - op.len) / 8 + 1));
			op.seed = rng_next(&g);
			if (rng_next(&g) & 1)
				s.dops[s.ndops++] = op;
			else
				s.cops[s.ncops++] = op;
		}
		phase_begin(r, "CPU+dev", "CPU+%s: touch pages, round %u", dl, it + 1);
		run_mixed(r, rnd_cpu, &s, s.ncops, all_devices(r), rnd_kernel, &s, s.ndops);
		if (phase_end(r))
			goto out;
	}
	phase_begin(r, "CPU", "CPU: verify against shadow");
	run_cpu(r, rnd_verify, &s, s.npages);
	phase_end(r);
out:
	free(s.shadow);
	free(perm);
	free(s.cops);
	free(s.dops);
	return run_failed(r) ? -1 : 0;
}

/* ======================================================================== */
/* pingpong / oversubscribe: check-and-increment passes over one buffer      */
/* ======================================================================== */

struct bounce {
	struct cli_run *r;
	uint64_t *w;
	size_t n;
	uint64_t step;     /* w[i] == pattern(i) + step before the pass */
	int write;         /* increment after checking */
	const char *who;
};

static int bounce_init(struct cli_run *r, void *arg, size_t lo, size_t hi, unsigned tid)
{
	struct bounce *b = arg;
	size_t i;

	(void)tid;
	for (i = lo; i < hi; i++) {
		b->w[i] = pattern64(r->o->seed, i);
		if ((i & (CPU_STEP - 1)) == CPU_STEP - 1)
			progress_add(r, CPU_STEP * 8);
	}
	return 0;
}

static int bounce_cpu(struct cli_run *r, void *arg, size_t lo, size_t hi, unsigned tid)
{
	struct bounce *b = arg;
	size_t i, j;

	(void)tid;
	for (i = lo; i < hi; i = j) {
		size_t e = hi - i < CPU_STEP ? hi : i + CPU_STEP;

		for (j = i; j < e; j++) {
			uint64_t want = pattern64(r->o->seed, j) + b->step;

			if (b->w[j] != want)
				return mismatch(r, "CPU pass", "buf", j, &b->w[j], b->w[j], want);
			if (b->write)
				b->w[j] = want + 1;
		}
		progress_add(r, (e - i) * (b->write ? 16 : 8));
	}
	return 0;
}

static int bounce_kernel(struct usvm_kctx *ctx, unsigned long idx, void *arg)
{
	struct bounce *b = arg;
	size_t lo = idx * EPC, cnt = b->n - lo < EPC ? b->n - lo : EPC, j;
	uint64_t seed = b->r->o->seed;
	int err;

	err = usvm_dev_read(ctx, &b->w[lo], kin, cnt * 8);
	if (err)
		return err;
	for (j = 0; j < cnt; j++) {
		uint64_t want = pattern64(seed, lo + j) + b->step;

		if (kin[j] != want) {
			char who[48];

			snprintf(who, sizeof(who), "device %s pass",
				 usvm_device_name(usvm_kctx_device(ctx)));
			mismatch(b->r, who, "buf", lo + j, &b->w[lo + j], kin[j], want);
			return 1;
		}
		kin[j] = want + 1;
	}
	err = usvm_dev_write(ctx, &b->w[lo], kin, cnt * 8);
	if (err)
		return err;
	progress_add(b->r, cnt * 16);
	return 0;
}

static int wl_pingpong(struct cli_run *r)
{
	struct bounce b = { .r = r };
	unsigned it, d;

	b.n = r->size / sizeof(uint64_t);
	b.w = run_alloc(r, "buf", b.n * 8);
	if (!b.w)
		return -1;
	r->work_total = b.n * 8 + (uint64_t)r->iterations * (r->ndev + 1) * b.n * 16;
	if (r->ndev == 1)
		say(r, "  note: with one device the buffer bounces CPU <-> dev0 only; "
		    "--devices 2 adds device-to-device moves\n");

	phase_begin(r, "CPU", "CPU: init");
	run_cpu(r, bounce_init, &b, b.n);
	if (phase_end(r))
		return -1;
	for (it = 0; it < r->iterations; it++) {
		for (d = 0; d < r->ndev; d++) {
			phase_begin(r, r->devname[d], "%s: check, +1 (round %u)", r->devname[d], it + 1);
			run_devices(r, 1u << d, bounce_kernel, &b, nchunks(b.n));
			b.step++;
			if (phase_end(r))
				return -1;
		}
		b.write = it + 1 < r->iterations;
		phase_begin(r, "CPU", b.write ? "CPU: check, +1 (round %u)" : "CPU: verify (round %u)",
			    it + 1);
		run_cpu(r, bounce_cpu, &b, b.n);
		b.step += (uint64_t)b.write;
		if (phase_end(r))
			return -1;
	}
	return 0;
}

static int wl_oversubscribe(struct cli_run *r)
{
	struct bounce b = { .r = r };
	uint64_t cap = (uint64_t)r->dev_mem * r->ndev;
	char dl[64];
	unsigned it;

	b.n = r->size / sizeof(uint64_t);
	b.w = run_alloc(r, "buf", b.n * 8);
	if (!b.w)
		return -1;
	r->work_total = b.n * 8 + (uint64_t)r->iterations * b.n * 16 + b.n * 8;
	devs_label(r, dl, sizeof(dl));
	say(r, "  working set = %.1fx the device memory\n", (double)r->size / (double)cap);

	phase_begin(r, "CPU", "CPU: init");
	run_cpu(r, bounce_init, &b, b.n);
	if (phase_end(r))
		return -1;
	for (it = 0; it < r->iterations; it++) {
		phase_begin(r, dl, "%s: sweep, check, +1 (%u)", dl, it + 1);
		run_devices(r, all_devices(r), bounce_kernel, &b, nchunks(b.n));
		b.step++;
		if (phase_end(r))
			return -1;
	}
	b.write = 0;
	phase_begin(r, "CPU", "CPU: verify");
	run_cpu(r, bounce_cpu, &b, b.n);
	return phase_end(r);
}


/* ======================================================================== */
/* thrash: the CPU and the devices take turns on the same 2 MiB blocks       */
/* ======================================================================== */

/*
 * Every round, a device kernel checks the CPU's 16 KiB slot of each block
 * and checks-and-increments its own slot; then the CPU checks the device's
 * slot and checks-and-increments its own.  One touch per block and side is
 * enough to move the whole block (a 2 MiB device allocation) each way: a
 * working set that bounces.  Thrashing mitigation notices (USVM_THRASH_*),
 * throttles, then pins the blocks in system memory, where the devices map
 * them in place.
 */
/* w[i] = pattern(i) for the w given as @arg. */
static int pattern_init(struct cli_run *r, void *arg, size_t lo, size_t hi, unsigned tid)
{
	uint64_t *w = arg;
	size_t i;

	(void)tid;
	for (i = lo; i < hi; i++) {
		w[i] = pattern64(r->o->seed, i);
		if ((i & (CPU_STEP - 1)) == CPU_STEP - 1)
			progress_add(r, CPU_STEP * 8);
	}
	return 0;
}

struct thrash {
	struct cli_run *r;
	uint64_t *w;
	size_t n, nblk;
	size_t *blo, *bhi;   /* element range of each 2 MiB block the buffer spans */
	uint64_t k;          /* rounds done: both slots hold pattern + k */
};

/* The device's slot of block @b: [*lo, *hi); the CPU's follows it. */
static void thrash_slots(const struct thrash *t, size_t b, size_t *dlo, size_t *dhi,
			 size_t *chi)
{
	size_t lo = t->blo[b], len = t->bhi[b] - lo;

	*dlo = lo;
	*dhi = lo + (len < EPC ? len : EPC);
	*chi = *dhi + (t->bhi[b] - *dhi < EPC ? t->bhi[b] - *dhi : EPC);
}

static int thrash_kernel(struct usvm_kctx *ctx, unsigned long b, void *arg)
{
	struct thrash *t = arg;
	uint64_t seed = t->r->o->seed;
	size_t dlo, dhi, chi, j;
	int err;
	char who[48];

	thrash_slots(t, b, &dlo, &dhi, &chi);
	snprintf(who, sizeof(who), "device %s round", usvm_device_name(usvm_kctx_device(ctx)));
	if (chi > dhi) {
		err = usvm_dev_read(ctx, &t->w[dhi], kin, (chi - dhi) * 8);
		if (err)
			return err;
		for (j = dhi; j < chi; j++)
			if (kin[j - dhi] != pattern64(seed, j) + t->k) {
				mismatch(t->r, who, "buf", j, &t->w[j], kin[j - dhi],
					 pattern64(seed, j) + t->k);
				return 1;
			}
	}
	err = usvm_dev_read(ctx, &t->w[dlo], kin, (dhi - dlo) * 8);
	if (err)
		return err;
	for (j = dlo; j < dhi; j++) {
		uint64_t want = pattern64(seed, j) + t->k;

		if (kin[j - dlo] != want) {
			mismatch(t->r, who, "buf", j, &t->w[j], kin[j - dlo], want);
			return 1;
		}
		kin[j - dlo] = want + 1;
	}
	err = usvm_dev_write(ctx, &t->w[dlo], kin, (dhi - dlo) * 8);
	if (err)
		return err;
	progress_add(t->r, (chi - dlo) * 8 + (dhi - dlo) * 8);
	return 0;
}

static int thrash_cpu(struct cli_run *r, void *arg, size_t lo, size_t hi, unsigned tid)
{
	struct thrash *t = arg;
	size_t b, j, dlo, dhi, chi;

	(void)tid;
	for (b = lo; b < hi; b++) {
		thrash_slots(t, b, &dlo, &dhi, &chi);
		for (j = dlo; j < dhi; j++) {
			uint64_t want = pattern64(r->o->seed, j) + t->k + 1;

			if (t->w[j] != want)
				return mismatch(r, "CPU round", "buf", j, &t->w[j], t->w[j], want);
		}
		for (j = dhi; j < chi; j++) {
			uint64_t want = pattern64(r->o->seed, j) + t->k;

			if (t->w[j] != want)
				return mismatch(r, "CPU round", "buf", j, &t->w[j], t->w[j], want);
			t->w[j] = want + 1;
		}
		progress_add(r, (chi - dlo) * 8 + (chi - dhi) * 8);
	}
	return 0;
}

/* Every element: pattern + rounds in the two slots of each block, else pattern. */
static int thrash_verify(struct cli_run *r, void *arg, size_t lo, size_t hi, unsigned tid)
{
	struct thrash *t = arg;
	size_t b, j, dlo, dhi, chi;

	(void)tid;
	for (b = lo; b < hi; b++) {
		thrash_slots(t, b, &dlo, &dhi, &chi);
		for (j = t->blo[b]; j < t->bhi[b]; j++) {
			uint64_t want = pattern64(r->o->seed, j) + (j < chi ? t->k : 0);

			if (t->w[j] != want)
				return mismatch(r, "CPU verify", "buf", j, &t->w[j], t->w[j], want);
		}
		progress_add(r, (t->bhi[b] - t->blo[b]) * 8);
	}
	return 0;
}

static void thrash_explain(struct cli_run *r)
{
	const struct cli_snap *s = &r->last;
	uint64_t moved = s->mm.bytes_to_dev + s->mm.bytes_to_ram, thr = 0, pins = 0, kept = 0;
	uint64_t inplace = 0, len = r->nbufs ? r->bufs[0].len : 1;
	const char *env = getenv("USVM_THRASHING");
	char b1[32], b2[32], b3[32], b4[32];
	unsigned d;

	if (r->o->quiet || r->o->json || run_failed(r))
		return;
	for (d = 0; d < r->ndev; d++) {
		thr += s->dev[d].thrash_throttles;
		pins += s->dev[d].thrash_pins;
		kept += s->dev[d].thrash_bytes_kept;
		inplace += s->dev[d].advice_in_place;
	}
	say(r, "\nWhat happened:\n"
	    "  %u rounds of CPU and device touching every 2 MiB block of a %s buffer\n"
	    "  moved %s (%.1f times the buffer): %s to devices, %s back.\n", r->iterations,
	    fmt_bytes(b1, sizeof(b1), len), fmt_bytes(b2, sizeof(b2), moved),
	    (double)moved / (double)len, fmt_bytes(b3, sizeof(b3), s->mm.bytes_to_dev),
	    fmt_bytes(b4, sizeof(b4), s->mm.bytes_to_ram));
	if (pins)
		say(r, "  Thrashing mitigation throttled %" PRIu64 " and pinned %" PRIu64 " times:\n"
		    "  pinned blocks stayed in system memory and the devices mapped them in\n"
		    "  place (%s not moved).  Compare: USVM_THRASHING=0 %s run thrash\n", thr, pins,
		    fmt_bytes(b1, sizeof(b1), kept), cli_prog);
	else if (env && !strcmp(env, "0"))
		say(r, "  Thrashing mitigation was off (USVM_THRASHING=0): every round moved every\n"
		    "  block both ways.  Compare: %s run thrash (mitigation on by default)\n",
		    cli_prog);
	else if (inplace)
		say(r, "  Advice kept the devices mapping the blocks in place (%s faults).\n",
		    fmt_count(b1, sizeof(b1), inplace));
	else
		say(r, "  No block was pinned: the rounds were slower than the thrash window\n"
		    "  (USVM_THRASH_WINDOW_MS), or thrashing mitigation is off.\n");
}

static int wl_thrash(struct cli_run *r)
{
	struct thrash t = { .r = r };
	uintptr_t a, e;
	char dl[64];
	unsigned it;
	size_t b;
	int ret = -1;

	t.n = r->size / sizeof(uint64_t);
	t.w = run_alloc(r, "buf", t.n * 8);
	if (!t.w)
		return -1;
	a = (uintptr_t)t.w;
	e = a + t.n * 8;
	t.nblk = (e - 1) / USVM_BLOCK_SIZE - a / USVM_BLOCK_SIZE + 1;
	t.blo = calloc(t.nblk, sizeof(*t.blo));
	t.bhi = calloc(t.nblk, sizeof(*t.bhi));
	if (!t.blo || !t.bhi) {
		run_fail(r, "out of memory");
		goto out;
	}
	for (b = 0; b < t.nblk; b++) {
		uintptr_t lo = (a / USVM_BLOCK_SIZE + b) * USVM_BLOCK_SIZE, hi = lo + USVM_BLOCK_SIZE;

		t.blo[b] = lo < a ? 0 : (lo - a) / 8;
		t.bhi[b] = hi > e ? t.n : (hi - a) / 8;
	}
	r->work_total = t.n * 16 + (uint64_t)r->iterations * t.nblk * EPC * 8 * 6;
	devs_label(r, dl, sizeof(dl));
	say(r, "  %zu blocks of 2 MiB, each touched 16 KiB by %s and 16 KiB by the CPU per round\n",
	    t.nblk, dl);

	phase_begin(r, "CPU", "CPU: init");
	run_cpu(r, pattern_init, t.w, t.n);
	if (phase_end(r))
		goto out;
	for (it = 0; it < r->iterations; it++) {
		phase_begin(r, dl, "%s: check CPU slots, +1 own (%u)", dl, it + 1);
		run_devices(r, all_devices(r), thrash_kernel, &t, t.nblk);
		if (phase_end(r))
			goto out;
		phase_begin(r, "CPU", "CPU: check dev slots, +1 own (%u)", it + 1);
		run_cpu(r, thrash_cpu, &t, t.nblk);
		t.k++;
		if (phase_end(r))
			goto out;
	}
	phase_begin(r, "CPU", "CPU: verify");
	run_cpu(r, thrash_verify, &t, t.nblk);
	if (phase_end(r))
		goto out;
	ret = 0;
out:
	free(t.blo);
	free(t.bhi);
	return run_failed(r) ? -1 : ret;
}

/* ======================================================================== */
/* pipeline: devices produce chunks, the CPU consumes them, one step behind  */
/* ======================================================================== */

/*
 * Step s of an iteration: the devices produce chunk s of 'in' (check the
 * previous generation, write the next) while the CPU consumes chunk s-1
 * (checks it, writes out = 5*in + iteration).  'out' is advised
 * preferred=system: the devices' final check reads it in place.  With
 * --prefetch, each step first prefetches the producer's chunk into device
 * memory and the consumer's chunks into system memory.
 */
#define PIPE_K 5

struct pipe {
	struct cli_run *r;
	uint64_t *in, *out;
	size_t n, ch, nch;   /* elements per buffer, per chunk; chunks */
	size_t pc, cc;       /* the chunk produced, consumed in this step */
	unsigned it;
};

/* Generation g of 'in' (0: the CPU's init, g: after iteration g-1). */
static inline uint64_t pipe_val(uint64_t seed, unsigned g, size_t j)
{
	return pattern64(seed + 0x51ed27u * (uint64_t)g, j);
}

static size_t pipe_len(const struct pipe *p, size_t c)
{
	size_t lo = c * p->ch;

	return lo >= p->n ? 0 : (p->n - lo < p->ch ? p->n - lo : p->ch);
}

static int pipe_init(struct cli_run *r, void *arg, size_t lo, size_t hi, unsigned tid)
{
	struct pipe *p = arg;
	size_t i;

	(void)tid;
	for (i = lo; i < hi; i++) {
		p->in[i] = pipe_val(r->o->seed, 0, i);
		p->out[i] = 0;
		if ((i & (CPU_STEP - 1)) == CPU_STEP - 1)
			progress_add(r, CPU_STEP * 16);
	}
	return 0;
}

static int pipe_produce(struct usvm_kctx *ctx, unsigned long idx, void *arg)
{
	struct pipe *p = arg;
	size_t base = p->pc * p->ch, len = pipe_len(p, p->pc);
	size_t lo = base + idx * EPC, cnt = base + len - lo < EPC ? base + len - lo : EPC, j;
	uint64_t seed = p->r->o->seed;
	int err;

	err = usvm_dev_read(ctx, &p->in[lo], kin, cnt * 8);
	if (err)
		return err;
	for (j = 0; j < cnt; j++) {
		uint64_t want = pipe_val(seed, p->it, lo + j);

		if (kin[j] != want) {
			char who[48];

			snprintf(who, sizeof(who), "device %s produce",
				 usvm_device_name(usvm_kctx_device(ctx)));
			mismatch(p->r, who, "in", lo + j, &p->in[lo + j], kin[j], want);
			return 1;
		}
		kin[j] = pipe_val(seed, p->it + 1, lo + j);
	}
	err = usvm_dev_write(ctx, &p->in[lo], kin, cnt * 8);
	if (err)
		return err;
	progress_add(p->r, cnt * 16);
	return 0;
}

static int pipe_consume(struct cli_run *r, void *arg, size_t lo, size_t hi, unsigned tid)
{
	struct pipe *p = arg;
	size_t base = p->cc * p->ch, i;

	(void)tid;
	for (i = base + lo; i < base + hi; i++) {
		uint64_t want = pipe_val(r->o->seed, p->it + 1, i);

		if (p->in[i] != want)
			return mismatch(r, "CPU consume", "in", i, &p->in[i], p->in[i], want);
		p->out[i] = want * PIPE_K + p->it;
		if ((i & (CPU_STEP - 1)) == CPU_STEP - 1)
			progress_add(r, CPU_STEP * 16);
	}
	return 0;
}

/* The devices check out (read only: in place, per the advice). */
static int pipe_check_out(struct usvm_kctx *ctx, unsigned long idx, void *arg)
{
	struct pipe *p = arg;
	size_t lo = idx * EPC, cnt = p->n - lo < EPC ? p->n - lo : EPC, j;
	uint64_t seed = p->r->o->seed;
	int err;

	err = usvm_dev_read(ctx, &p->out[lo], kin, cnt * 8);
	if (err)
		return err;
	for (j = 0; j < cnt; j++) {
		uint64_t want = pipe_val(seed, p->it, lo + j) * PIPE_K + (p->it - 1);

		if (kin[j] != want) {
			char who[48];

			snprintf(who, sizeof(who), "device %s check",
				 usvm_device_name(usvm_kctx_device(ctx)));
			mismatch(p->r, who, "out", lo + j, &p->out[lo + j], kin[j], want);
			return 1;
		}
	}
	progress_add(p->r, cnt * 8);
	return 0;
}

static int pipe_verify(struct cli_run *r, void *arg, size_t lo, size_t hi, unsigned tid)
{
	struct pipe *p = arg;
	size_t i;

	(void)tid;
	for (i = lo; i < hi; i++) {
		uint64_t want = pipe_val(r->o->seed, p->it, i);

		if (p->in[i] != want)
			return mismatch(r, "CPU verify", "in", i, &p->in[i], p->in[i], want);
		if (p->out[i] != want * PIPE_K + (p->it - 1))
			return mismatch(r, "CPU verify", "out", i, &p->out[i], p->out[i],
					want * PIPE_K + (p->it - 1));
		if ((i & (CPU_STEP - 1)) == CPU_STEP - 1)
			progress_add(r, CPU_STEP * 16);
	}
	return 0;
}

static void pipe_explain(struct cli_run *r)
{
	const struct cli_snap *s = &r->last;
	uint64_t moved = s->mm.bytes_to_dev + s->mm.bytes_to_ram, pf = s->pf.to_dev + s->pf.to_sys;
	uint64_t inplace = 0;
	char b1[32], b2[32], b3[32], c1[32];
	unsigned d;

	if (r->o->quiet || r->o->json || run_failed(r))
		return;
	for (d = 0; d < r->ndev; d++)
		inplace += s->dev[d].advice_in_place;
	say(r, "\nWhat happened:\n"
	    "  %s moved in all: %s by prefetch (%s usvm_prefetch calls), %s on demand\n"
	    "  (device faults, CPU faults, evictions).\n", fmt_bytes(b1, sizeof(b1), moved),
	    fmt_bytes(b2, sizeof(b2), pf), fmt_count(c1, sizeof(c1), s->pf.calls),
	    fmt_bytes(b3, sizeof(b3), moved - pf));
	if (!r->o->prefetch)
		say(r, "  With --prefetch each chunk moves before its step, not by faults.\n");
	say(r, "  'out' is advised preferred=system: the devices' check read it where it is\n"
	    "  (%s device faults mapped in place per advice).\n",
	    fmt_count(c1, sizeof(c1), inplace));
}

static int wl_pipeline(struct cli_run *r)
{
	struct pipe p = { .r = r };
	unsigned mask = all_devices(r);
	size_t s, chb;
	char dl[64];
	int err;

	p.n = r->size / 2 / sizeof(uint64_t);
	p.in = run_alloc(r, "in", p.n * 8);
	p.out = run_alloc(r, "out", p.n * 8);
	if (!p.in || !p.out)
		return -1;
	/* 8 chunks, or fewer: whole 2 MiB blocks when there are at least two
	 * (a device fault migrates a 2 MiB range whole: smaller chunks would
	 * share blocks between producer and consumer), else 64 KiB multiples. */
	chb = p.n * 8 / 8;
	if (p.n * 8 >= 2 * USVM_BLOCK_SIZE) {
		chb &= ~((size_t)USVM_BLOCK_SIZE - 1);
		if (chb < USVM_BLOCK_SIZE)
			chb = USVM_BLOCK_SIZE;
	} else {
		chb &= ~((size_t)(64 << 10) - 1);
		if (chb < (64 << 10))
			chb = 64 << 10;
	}
	p.ch = chb / 8;
	p.nch = (p.n + p.ch - 1) / p.ch;
	err = usvm_advise(r->mm, p.out, p.n * 8, USVM_ADVISE_PREFERRED_LOCATION, NULL);
	if (err)
		return run_fail(r, "usvm_advise(out, preferred=system) failed: %s", usvm_strerror(err));
	r->work_total = p.n * 16 + (uint64_t)r->iterations * p.n * 32 + p.n * 24;
	devs_label(r, dl, sizeof(dl));
	say(r, "  %zu chunks of %s; 'out' advised preferred=system\n", p.nch,
	    fmt_bytes(dl, sizeof(dl), p.ch * 8));
	devs_label(r, dl, sizeof(dl));

	phase_begin(r, "CPU", "CPU: init in, out");
	run_cpu(r, pipe_init, &p, p.n);
	if (phase_end(r))
		return -1;
	for (p.it = 0; p.it < r->iterations; p.it++) {
		for (s = 0; s <= p.nch; s++) {
			size_t plen = s < p.nch ? pipe_len(&p, s) : 0, clen = s ? pipe_len(&p, s - 1) : 0;

			p.pc = s;
			p.cc = s - 1;
			if (!plen)
				phase_begin(r, "CPU", "CPU: use %zu (%u)", s - 1, p.it + 1);
			else if (!clen)
				phase_begin(r, dl, "%s: make %zu (%u)", dl, s, p.it + 1);
			else
				phase_begin(r, "CPU+dev", "%s: make %zu, CPU: use %zu (%u)", dl, s,
					    s - 1, p.it + 1);
			if (plen)
				run_prefetch(r, mask, &p.in[s * p.ch], plen * 8);
			if (clen) {
				run_prefetch(r, 0, &p.in[(s - 1) * p.ch], clen * 8);
				run_prefetch(r, 0, &p.out[(s - 1) * p.ch], clen * 8);
			}
			run_mixed(r, pipe_consume, &p, clen, mask, pipe_produce, &p, nchunks(plen));
			if (phase_end(r))
				return -1;
		}
	}
	phase_begin(r, dl, "%s: check out", dl);
	phase_uses(r, p.out, p.n * 8);
	run_devices(r, mask, pipe_check_out, &p, nchunks(p.n));
	if (phase_end(r))
		return -1;
	phase_begin(r, "CPU", "CPU: verify in, out");
	run_cpu(r, pipe_verify, &p, p.n);
	if (phase_end(r))
		return -1;
	return 0;
}

/* ======================================================================== */

static size_t mem_twice(size_t size, unsigned ndev)
{
	(void)ndev;
	return 2 * size;
}

static size_t mem_third(size_t size, unsigned ndev)
{
	size_t m = size / 3 / (ndev ? ndev : 1);

	m &= ~(USVM_PAGE_SIZE - 1);
	return m ? m : USVM_PAGE_SIZE;
}

const struct workload cli_workloads[] = {
	{ "stream", "CPU writes a, the device computes b = 3*a + 7, the CPU checks a and b",
	  1, 1, 64ul << 20, "a b", mem_twice, wl_stream, NULL },
	{ "stencil", "1-D Jacobi: device(s) update the left half, the CPU the right half, halos shared",
	  1, 10, 32ul << 20, "u v", mem_twice, wl_stencil, NULL },
	{ "random", "seeded random page touches by CPU threads and devices at once, shadow-checked",
	  1, 8, 32ul << 20, "buf", mem_twice, wl_random, NULL },
	{ "pingpong", "one buffer bounced CPU -> dev0 -> dev1 -> CPU, checked and incremented each hop",
	  2, 4, 32ul << 20, "buf", mem_twice, wl_pingpong, NULL },
	{ "oversubscribe", "device sweeps over a working set larger than the device memory "
	  "(3x by default): evictions",
	  1, 3, 64ul << 20, "buf", mem_third, wl_oversubscribe, NULL },
	{ "thrash", "CPU and device take turns on the same 2 MiB blocks: thrashing mitigation "
	  "(USVM_THRASHING) at work",
	  1, 40, 16ul << 20, "buf", mem_twice, wl_thrash, thrash_explain },
	{ "pipeline", "devices produce 'in' chunk by chunk, the CPU consumes one chunk behind into "
	  "'out' (advised preferred=system); try --prefetch",
	  1, 4, 32ul << 20, "in out", mem_twice, wl_pipeline, pipe_explain },
};
const unsigned cli_nworkloads = sizeof(cli_workloads) / sizeof(cli_workloads[0]);

const struct workload *workload_find(const char *name)
{
	unsigned i;

	for (i = 0; i < cli_nworkloads; i++)
		if (!strcmp(cli_workloads[i].name, name))
			return &cli_workloads[i];
	return NULL;
}

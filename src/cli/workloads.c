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
		run_devices(r, all_devices(r), stencil_kernel, &s, nchunks(s.h));
		if (phase_end(r))
			goto out;
		phase_begin(r, "CPU", "CPU: right half, iter %u", it + 1);
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
	  1, 1, 64ul << 20, mem_twice, wl_stream },
	{ "stencil", "1-D Jacobi: device(s) update the left half, the CPU the right half, halos shared",
	  1, 10, 32ul << 20, mem_twice, wl_stencil },
	{ "random", "seeded random page touches by CPU threads and devices at once, shadow-checked",
	  1, 8, 32ul << 20, mem_twice, wl_random },
	{ "pingpong", "one buffer bounced CPU -> dev0 -> dev1 -> CPU, checked and incremented each hop",
	  2, 4, 32ul << 20, mem_twice, wl_pingpong },
	{ "oversubscribe", "device sweeps over a working set larger than the device memory "
	  "(3x by default): evictions",
	  1, 3, 64ul << 20, mem_third, wl_oversubscribe },
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

// SPDX-License-Identifier: MIT
/*
 * usvm CLI: `usvm run` and `usvm demo` - the run environment (address
 * space, simulated devices), phases with counter snapshots, and helpers
 * that run work on CPU threads and on devices.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"

void say(struct cli_run *r, const char *fmt, ...)
{
	va_list ap;

	if (r->o->quiet || r->o->json)
		return;
	if (r->mon)
		monitor_output_begin(r->mon);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
	if (r->mon)
		monitor_output_end(r->mon);
}

int run_fail(struct cli_run *r, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&r->err_lock);
	if (!atomic_load(&r->failed)) {
		va_start(ap, fmt);
		vsnprintf(r->errmsg, sizeof(r->errmsg), fmt, ap);
		va_end(ap);
		atomic_store(&r->failed, 1);
	}
	pthread_mutex_unlock(&r->err_lock);
	return -1;
}

void *run_alloc(struct cli_run *r, const char *name, size_t len)
{
	void *p = NULL;
	char b[32];
	int err;

	if (r->nbufs == CLI_MAX_BUFS) {
		run_fail(r, "internal: too many buffers");
		return NULL;
	}
	err = usvm_alloc(r->mm, len, &p);
	if (err) {
		run_fail(r, "usvm_alloc(%s) of %s failed: %s", name,
			 fmt_bytes(b, sizeof(b), len), usvm_strerror(err));
		return NULL;
	}
	r->bufs[r->nbufs].name = name;
	r->bufs[r->nbufs].ptr = p;
	r->bufs[r->nbufs].len = len;
	r->nbufs++;
	if (r->mon)
		monitor_add_buf(r->mon, p, len);
	return p;
}

/* ---- counters ------------------------------------------------------------ */

void snap_take(struct cli_run *r, struct cli_snap *s)
{
	unsigned d;

	memset(s, 0, sizeof(*s));
	usvm_mm_stats(r->mm, &s->mm);
	for (d = 0; d < r->ndev; d++) {
		usvm_pagemap_stats(r->pm[d], &s->pm[d]);
		usvm_device_stats(r->dev[d], &s->dev[d]);
		s->thrash[d] = r->mon ? monitor_thrash(r->mon, d) : 0;
	}
	s->pf = r->pf;
}

/* Every stats struct is an array of uint64_t counters. */
static void sub_u64(void *out, const void *a, const void *b, size_t bytes)
{
	const uint64_t *x = a, *y = b;
	uint64_t *o = out;
	size_t i;

	for (i = 0; i < bytes / sizeof(uint64_t); i++)
		o[i] = x[i] - y[i];
}

void snap_sub(const struct cli_run *r, struct cli_snap *out, const struct cli_snap *a,
	      const struct cli_snap *b)
{
	unsigned d;

	memset(out, 0, sizeof(*out));
	sub_u64(&out->mm, &a->mm, &b->mm, sizeof(out->mm));
	for (d = 0; d < r->ndev; d++) {
		sub_u64(&out->pm[d], &a->pm[d], &b->pm[d], sizeof(out->pm[d]));
		sub_u64(&out->dev[d], &a->dev[d], &b->dev[d], sizeof(out->dev[d]));
		out->thrash[d] = a->thrash[d] - b->thrash[d];
		/* Gauges are not deltas. */
		out->pm[d].capacity_bytes = a->pm[d].capacity_bytes;
		out->pm[d].used_bytes = a->pm[d].used_bytes;
		out->pm[d].peak_used_bytes = a->pm[d].peak_used_bytes;
		out->pm[d].live_allocations = a->pm[d].live_allocations;
		out->pm[d].unbound = a->pm[d].unbound;
		out->dev[d].ranges_live = a->dev[d].ranges_live;
	}
	sub_u64(&out->pf, &a->pf, &b->pf, sizeof(out->pf));
	out->mm.live_allocs = a->mm.live_allocs;
	out->mm.live_bytes = a->mm.live_bytes;
	out->mm.registered_ranges = a->mm.registered_ranges;
}

uint64_t run_resident(struct cli_run *r, struct usvm_pagemap *pm)
{
	uint64_t total = 0;
	unsigned i;

	for (i = 0; i < r->nbufs; i++) {
		long b = usvm_resident_bytes(r->mm, r->bufs[i].ptr, r->bufs[i].len, pm);

		if (b > 0)
			total += (uint64_t)b;
	}
	return total;
}

/* ---- --advise and --prefetch ---------------------------------------------- */

static const char *advice_name(enum usvm_advice a)
{
	switch (a) {
	case USVM_ADVISE_PREFERRED_LOCATION: return "preferred";
	case USVM_ADVISE_UNSET_PREFERRED_LOCATION: return "unset-preferred";
	case USVM_ADVISE_ACCESSED_BY: return "accessed-by";
	case USVM_ADVISE_UNSET_ACCESSED_BY: return "unset-accessed-by";
	case USVM_ADVISE_READ_MOSTLY: return "read-mostly";
	default: return "unset-read-mostly";
	}
}

/*
 * The --advise items, in order, on the buffers they name (every buffer when
 * none is named), once every buffer is allocated: just before the first
 * phase, so they come after (and override) a workload's own advice.
 */
static void apply_advice(struct cli_run *r)
{
	unsigned i, b;

	for (i = 0; i < r->o->nadvice && !run_failed(r); i++) {
		const struct cli_advice *a = &r->o->advice[i];
		void *target = NULL;

		if (a->dev >= 0 && (unsigned)a->dev < r->ndev)
			target = (a->advice == USVM_ADVISE_ACCESSED_BY ||
				  a->advice == USVM_ADVISE_UNSET_ACCESSED_BY) ?
				 (void *)r->dev[a->dev] : (void *)r->pm[a->dev];
		for (b = 0; b < r->nbufs; b++) {
			int err;

			if (a->buf[0] && strcmp(a->buf, r->bufs[b].name))
				continue;
			err = usvm_advise(r->mm, r->bufs[b].ptr, r->bufs[b].len, a->advice, target);
			if (err) {
				run_fail(r, "--advise %s: usvm_advise(%s, %s) failed: %s", a->text,
					 r->bufs[b].name, advice_name(a->advice), usvm_strerror(err));
				break;
			}
		}
	}
}

void phase_uses(struct cli_run *r, void *p, size_t len)
{
	if (r->nuses < sizeof(r->uses) / sizeof(r->uses[0]) && len) {
		r->uses[r->nuses].p = p;
		r->uses[r->nuses].len = len;
		r->nuses++;
	}
}

/* Advised to live elsewhere than pagemap @pm (NULL: system)?  Then leave it. */
static int preferred_elsewhere(struct cli_run *r, void *p, size_t len, struct usvm_pagemap *pm)
{
	struct usvm_range_attrs at;

	if (usvm_range_attr(r->mm, p, len, &at) || at.preferred_mixed)
		return 0;
	if (at.preferred_system)
		return pm != NULL;
	return at.preferred && at.preferred != pm;
}

static void prefetch_one(struct cli_run *r, int d, void *p, size_t len)
{
	struct usvm_pagemap *pm = d >= 0 ? r->pm[d] : NULL;
	struct usvm_mm_stats a, b;
	int err;

	if (!len)
		return;
	if (preferred_elsewhere(r, p, len, pm)) {
		r->pf.skipped++;
		return;
	}
	usvm_mm_stats(r->mm, &a);
	err = usvm_prefetch(r->mm, p, len, pm);
	usvm_mm_stats(r->mm, &b);
	r->pf.calls++;
	if (err)
		r->pf.failed++;
	else
		r->pf.bytes += len;
	r->pf.to_dev += b.bytes_to_dev - a.bytes_to_dev;
	r->pf.to_sys += b.bytes_to_ram - a.bytes_to_ram;
}

void run_prefetch(struct cli_run *r, unsigned mask, void *p, size_t len)
{
	unsigned d, k = 0, cnt = 0;
	uintptr_t base = (uintptr_t)p;

	if (!mask) {
		if (r->o->prefetch & CLI_PREFETCH_SYSTEM)
			prefetch_one(r, -1, p, len);
		return;
	}
	if (!(r->o->prefetch & CLI_PREFETCH_DEVICE))
		return;
	for (d = 0; d < r->ndev; d++)
		cnt += !!(mask & (1u << d));
	for (d = 0; d < r->ndev; d++) {
		size_t lo, hi;

		if (!(mask & (1u << d)))
			continue;
		/* Device k of cnt gets the k-th part, as in dev_job_start. */
		lo = len * k / cnt;
		hi = len * (k + 1) / cnt;
		k++;
		if (r->o->prefetch_dev >= 0 && (unsigned)r->o->prefetch_dev != d)
			continue;
		prefetch_one(r, (int)d, (void *)(base + lo), hi - lo);
	}
}

/* Before run_cpu (@mask 0) or run_devices: what the phase declared, or all. */
static void prefetch_uses(struct cli_run *r, unsigned mask)
{
	unsigned i;

	if (!r->o->prefetch)
		return;
	if (!r->nuses) {
		for (i = 0; i < r->nbufs; i++)
			run_prefetch(r, mask, r->bufs[i].ptr, r->bufs[i].len);
		return;
	}
	for (i = 0; i < r->nuses; i++)
		run_prefetch(r, mask, r->uses[i].p, r->uses[i].len);
}

/* ---- phases -------------------------------------------------------------- */

static double run_time(struct cli_run *r)
{
	return (double)(cli_now_ns() - atomic_load(&r->t_start_ns)) / 1e9;
}

void phase_begin(struct cli_run *r, const char *actor, const char *fmt, ...)
{
	struct cli_phase *p;
	va_list ap;

	if (r->nphases == r->cap_phases) {
		unsigned cap = r->cap_phases ? 2 * r->cap_phases : 32;
		struct cli_phase *np = realloc(r->phases, cap * sizeof(*np));

		if (!np) {
			run_fail(r, "out of memory");
			return;
		}
		r->phases = np;
		r->cap_phases = cap;
	}
	if (!r->advised) {
		r->advised = 1;
		apply_advice(r);
	}
	r->nuses = 0;
	p = &r->phases[r->nphases];
	memset(p, 0, sizeof(*p));
	/* The clock starts with the first phase: preparation is not timed. */
	if (!atomic_load(&r->t_start_ns))
		atomic_store(&r->t_start_ns, cli_now_ns());
	va_start(ap, fmt);
	vsnprintf(p->name, sizeof(p->name), fmt, ap);
	va_end(ap);
	snprintf(p->actor, sizeof(p->actor), "%s", actor);
	p->t0 = run_time(r);
	r->in_phase = 1;
	if (r->mon)
		monitor_set_label(r->mon, r->nphases + 1, p->name, p->t0);
}

static void resident_str(struct cli_run *r, const struct cli_phase *p, char *out, size_t n)
{
	size_t o = 0;
	char b[32];
	unsigned d;

	out[0] = 0;
	for (d = 0; d <= r->ndev && o < n; d++) {
		if (!p->resident[d])
			continue;
		o += (size_t)snprintf(out + o, n - o, "%s%s %s", o ? ", " : "",
				      d ? r->devname[d - 1] : "system",
				      fmt_bytes(b, sizeof(b), p->resident[d]));
	}
}

static void phase_header(struct cli_run *r)
{
	say(r, "\n %3s  %-34s %9s %10s %10s %10s %10s  %s\n", "#", "phase", "time",
	    "CPU faults", "dev faults", "to device", "to system", "resident after");
}

static void phase_line(struct cli_run *r, unsigned i)
{
	const struct cli_phase *p = &r->phases[i];
	char c1[32], c2[32], b1[32], b2[32], t[32], res[160];
	uint64_t df = 0;
	double ms = (p->t1 - p->t0) * 1e3;
	unsigned d;

	for (d = 0; d < r->ndev; d++)
		df += p->delta.dev[d].device_faults;
	if (ms < 1000)
		snprintf(t, sizeof(t), "%.1f ms", ms);
	else
		snprintf(t, sizeof(t), "%.2f s", ms / 1e3);
	resident_str(r, p, res, sizeof(res));
	say(r, " %3u  %-34.34s %9s %10s %10s %10s %10s  %s\n", i + 1, p->name, t,
	    fmt_count(c1, sizeof(c1), p->delta.mm.cpu_faults), fmt_count(c2, sizeof(c2), df),
	    fmt_bytes(b1, sizeof(b1), p->delta.mm.bytes_to_dev),
	    fmt_bytes(b2, sizeof(b2), p->delta.mm.bytes_to_ram), res);
}

#define PHASE_LINES_SHOWN 8

int phase_end(struct cli_run *r)
{
	struct cli_phase *p;
	struct cli_snap now;
	unsigned d;

	if (!r->in_phase)
		return run_failed(r) ? -1 : 0;
	p = &r->phases[r->nphases];
	r->in_phase = 0;
	if (r->mon)
		monitor_sample(r->mon);
	p->t1 = run_time(r);
	snap_take(r, &now);
	snap_sub(r, &p->delta, &now, &r->last);
	r->last = now;
	p->resident[0] = run_resident(r, NULL);
	for (d = 0; d < r->ndev; d++)
		p->resident[d + 1] = run_resident(r, r->pm[d]);
	r->nphases++;
	if (r->o->inject && r->nphases == 1 && r->nbufs) {
		/* Testing aid: a byte changes behind the workload's back; its
		 * verification must notice. */
		volatile unsigned char *b = r->bufs[0].ptr;

		b[r->bufs[0].len / 2 + 3] ^= 0x40;
	}
	if (r->o->verbose || r->nphases <= PHASE_LINES_SHOWN) {
		if (r->nphases == 1)
			phase_header(r);
		phase_line(r, r->nphases - 1);
		r->phase_lines++;
	}
	return run_failed(r) ? -1 : 0;
}

/* ---- running work on CPU threads and devices ------------------------------ */

struct cpu_part {
	struct cli_run *r;
	cpu_fn fn;
	void *arg;
	size_t lo, hi;
	unsigned tid;
	int ret;
};

static void *cpu_thread(void *a)
{
	struct cpu_part *p = a;

	p->ret = p->lo < p->hi ? p->fn(p->r, p->arg, p->lo, p->hi, p->tid) : 0;
	return NULL;
}

struct cpu_job {
	struct cpu_part part[64];
	pthread_t th[64];
	int started[64];
	unsigned n;
};

static void cpu_job_start(struct cli_run *r, struct cpu_job *j, unsigned nthreads,
			  cpu_fn fn, void *arg, size_t n, int inline_first)
{
	unsigned t;

	if (nthreads > 64)
		nthreads = 64;
	if (nthreads < 1)
		nthreads = 1;
	j->n = nthreads;
	for (t = 0; t < nthreads; t++) {
		struct cpu_part *p = &j->part[t];

		p->r = r;
		p->fn = fn;
		p->arg = arg;
		p->lo = n * t / nthreads;
		p->hi = n * (t + 1) / nthreads;
		p->tid = t;
		p->ret = 0;
		j->started[t] = 0;
		if (t == 0 && inline_first)
			continue;
		if (pthread_create(&j->th[t], NULL, cpu_thread, p) == 0)
			j->started[t] = 1;
		else
			cpu_thread(p);  /* no thread: do it here */
	}
}

static int cpu_job_finish(struct cli_run *r, struct cpu_job *j, int inline_first)
{
	unsigned t;
	int ret = 0;

	if (inline_first)
		cpu_thread(&j->part[0]);
	for (t = 0; t < j->n; t++) {
		if (j->started[t])
			pthread_join(j->th[t], NULL);
		if (j->part[t].ret)
			ret = -1;
	}
	if (ret && !run_failed(r))
		run_fail(r, "a CPU thread failed");
	return ret;
}

int run_cpu_n(struct cli_run *r, unsigned nthreads, cpu_fn fn, void *arg, size_t n)
{
	struct cpu_job j;

	cpu_job_start(r, &j, nthreads, fn, arg, n, 1);
	return cpu_job_finish(r, &j, 1);
}

int run_cpu(struct cli_run *r, cpu_fn fn, void *arg, size_t n)
{
	prefetch_uses(r, 0);
	return run_cpu_n(r, r->threads, fn, arg, n);
}

struct kslice {
	struct cli_run *r;
	usvm_kernel_fn fn;
	void *arg;
	unsigned long base, n;
	unsigned d;
	int ret;
};

static int kslice_tramp(struct usvm_kctx *ctx, unsigned long idx, void *a)
{
	struct kslice *k = a;

	return k->fn(ctx, k->base + idx, k->arg);
}

static void *dev_thread(void *a)
{
	struct kslice *k = a;

	k->ret = k->n ? usvm_device_launch(k->r->dev[k->d], kslice_tramp, k->n, k) : 0;
	return NULL;
}

struct dev_job {
	struct kslice ks[CLI_MAX_DEVICES];
	pthread_t th[CLI_MAX_DEVICES];
	int started[CLI_MAX_DEVICES];
	unsigned ndev;
};

static void dev_job_start(struct cli_run *r, struct dev_job *j, unsigned mask,
			  usvm_kernel_fn fn, void *arg, unsigned long n, int inline_single)
{
	unsigned d, k = 0, cnt = 0;

	for (d = 0; d < r->ndev; d++)
		cnt += !!(mask & (1u << d));
	memset(j, 0, sizeof(*j));
	for (d = 0; d < r->ndev; d++) {
		struct kslice *s = &j->ks[d];

		if (!(mask & (1u << d)))
			continue;
		s->r = r;
		s->fn = fn;
		s->arg = arg;
		s->d = d;
		s->base = n * k / cnt;
		s->n = n * (k + 1) / cnt - s->base;
		k++;
		if (cnt == 1 && inline_single)
			continue;
		if (pthread_create(&j->th[d], NULL, dev_thread, s) == 0)
			j->started[d] = 1;
		else
			dev_thread(s);
	}
	j->ndev = cnt;
}

static int dev_job_finish(struct cli_run *r, struct dev_job *j, unsigned mask, int inline_single)
{
	unsigned d;
	int ret = 0;

	for (d = 0; d < r->ndev; d++) {
		struct kslice *s = &j->ks[d];

		if (!(mask & (1u << d)))
			continue;
		if (j->ndev == 1 && inline_single)
			dev_thread(s);
		else if (j->started[d])
			pthread_join(j->th[d], NULL);
		if (s->ret == 0)
			continue;
		ret = -1;
		if (s->ret < 0)
			run_fail(r, "device %s: kernel launch failed: %s", r->devname[d],
				 usvm_strerror(s->ret));
		else if (!run_failed(r))
			run_fail(r, "device %s: kernel failed (%d)", r->devname[d], s->ret);
	}
	return ret;
}

int run_devices(struct cli_run *r, unsigned mask, usvm_kernel_fn fn, void *arg,
		unsigned long n)
{
	struct dev_job j;

	prefetch_uses(r, mask);
	dev_job_start(r, &j, mask, fn, arg, n, 1);
	return dev_job_finish(r, &j, mask, 1);
}

int run_mixed(struct cli_run *r, cpu_fn cfn, void *carg, size_t cn,
	      unsigned mask, usvm_kernel_fn kfn, void *karg, unsigned long kn)
{
	struct dev_job dj;
	struct cpu_job cj;
	int a, b;

	dev_job_start(r, &dj, mask, kfn, karg, kn, 0);
	cpu_job_start(r, &cj, r->threads, cfn, carg, cn, 1);
	a = cpu_job_finish(r, &cj, 1);
	b = dev_job_finish(r, &dj, mask, 0);
	return a || b ? -1 : 0;
}

/* ---- setup and teardown --------------------------------------------------- */

int run_setup(struct cli_run *r)
{
	struct usvm_mm_options mo = { 0 };
	size_t arena = 1ul << 30;
	char b[32];
	unsigned d;
	int err;

	while (arena < 2 * r->size + (64ul << 20) && arena < (1ul << 40))
		arena <<= 1;
	mo.arena_size = arena;
	err = usvm_mm_create(&mo, &r->mm);
	if (err) {
		explain_setup_error("cannot create the managed address space", err);
		return -1;
	}
	for (d = 0; d < r->ndev; d++) {
		struct usvm_device_options dopt;

		snprintf(r->devname[d], sizeof(r->devname[d]), "dev%u", d);
		err = usvm_sim_pagemap_create(r->devname[d], r->dev_mem, &r->pm[d]);
		if (err) {
			fprintf(stderr, "%s: cannot create simulated device memory %s (%s): %s\n",
				cli_prog, r->devname[d], fmt_bytes(b, sizeof(b), r->dev_mem),
				usvm_strerror(err));
			return -1;
		}
		memset(&dopt, 0, sizeof(dopt));
		dopt.name = r->devname[d];
		dopt.pagemap = r->pm[d];
		dopt.policy = r->o->policy;
		dopt.timeslice_ms = r->o->timeslice_ms;
		memcpy(dopt.chunk_sizes, r->o->chunks, sizeof(dopt.chunk_sizes));
		dopt.notifier_size = 0;
		dopt.threads = r->o->dev_threads;
		dopt.peer_access = 0;
		err = usvm_device_create(r->mm, &dopt, &r->dev[d]);
		if (err) {
			fprintf(stderr, "%s: cannot create simulated device %s: %s\n",
				cli_prog, r->devname[d], usvm_strerror(err));
			return -1;
		}
	}
	return 0;
}

void run_teardown(struct cli_run *r)
{
	unsigned i;

	for (i = 0; i < r->nbufs; i++)
		usvm_free(r->mm, r->bufs[i].ptr);
	r->nbufs = 0;
	for (i = 0; i < r->ndev; i++) {
		if (r->dev[i])
			usvm_device_destroy(r->dev[i]);
		r->dev[i] = NULL;
	}
	for (i = 0; i < r->ndev; i++) {
		if (r->pm[i])
			usvm_pagemap_destroy(r->pm[i]);
		r->pm[i] = NULL;
	}
	if (r->mm)
		usvm_mm_destroy(r->mm);
	r->mm = NULL;
	free(r->phases);
	r->phases = NULL;
}


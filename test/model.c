// SPDX-License-Identifier: MIT
/*
 * model: a model-based randomized test of the public API.
 *
 * Every byte the test owns in managed memory has a shadow copy.  Random
 * operations are applied to the memory and to the shadow, and every read
 * (CPU or device) is compared byte by byte with the shadow:
 *   CPU and device writes and read-checks, device atomic adds (the returned
 *   old value too), usvm_alloc/usvm_free, register/unregister of mmap'd and
 *   malloc'd memory, populate, evict, unbind, madvise(MADV_DONTNEED),
 *   munmap and mremap behind the library's back, fork (a child compares
 *   everything with plain reads), residency sums.
 * Populate, evict and unbind only move pages: the data must not change.
 *
 * Single-threaded mode is deterministic given a seed: the sequence of
 * operations depends only on the seed (never on timing or on accepted
 * return codes), so a failure prints "--seed S --ops N" to replay it.
 * Multi-threaded mode (--mt): workers each own their objects (private
 * shadows) on one shared mm, pagemaps and devices; a chaos thread
 * populates and evicts anybody's objects and unbinds pagemaps underneath.
 *
 * Usage: model [--seed N] [--ops N] [--seconds S] [--mt] [--threads N]
 *              [--long S] [--no-fork] [--no-preferred] [--skip OP,...] [--lenient]
 *              [--inject SPEC] [-v]
 * Without arguments: a bounded CI run (fixed seeds, then a short --mt run).
 * Exit: 0 pass, 1 fail (seed, op, address, offset, expected and actual
 * byte on stderr), 77 skip.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include "helpers.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

#define MAX_OBJS 12
#define MAX_PMS 64
#define MAX_DEVS 2
#define MAX_WORKERS 16
#define RING 16                     /* operations remembered for a failure report */
#define NOTE_LEN 192
#define OBJ_MAX_LEN (6 * MiB)       /* 4 MiB objects may grow by mremap */
#define NERR 134                    /* errno values counted */
#define FORK_WAIT_S 20
#if SANITIZED
#define STALL_S 60                  /* one operation running longer: a hang */
#else
#define STALL_S 30
#endif
#define MAX_TIMESLICE_MS 5

/* name, single-threaded weight, multi-threaded (worker) weight */
#define OPS(X)                                 \
	X(cpu_write, 16, 16)                   \
	X(cpu_read, 14, 14)                    \
	X(dev_write, 10, 10)                   \
	X(dev_read, 10, 10)                    \
	X(atomic, 5, 5)                        \
	X(alloc, 4, 4)                         \
	X(free, 3, 3)                          \
	X(register, 3, 3)                      \
	X(unregister, 2, 2)                    \
	X(populate, 12, 8)                     \
	X(evict, 5, 3)                         \
	X(evict_all, 1, 0)                     \
	X(madvise, 3, 3)                       \
	X(munmap, 1, 1)                        \
	X(mremap, 1, 1)                        \
	X(mremap_grow, 1, 1)                   \
	X(unbind, 1, 0)                        \
	X(dev_recreate, 1, 0)                  \
	X(fork, 1, 0)                          \
	X(resident, 3, 2)                      \
	X(verify_all, 1, 1)                    \
	X(chaos_populate, 0, 0)                \
	X(chaos_evict, 0, 0)                   \
	X(chaos_evict_all, 0, 0)               \
	X(chaos_unbind, 0, 0)

#define OP_ENUM(n, a, b) OP_##n,
#define OP_NAME(n, a, b) #n,
#define OP_WST(n, a, b) a,
#define OP_WMT(n, a, b) b,
enum op { OPS(OP_ENUM) NOPS };
static const char *const op_names[NOPS] = { OPS(OP_NAME) };
static const unsigned int st_weight[NOPS] = { OPS(OP_WST) };
static const unsigned int mt_weight[NOPS] = { OPS(OP_WMT) };

enum obj_kind { OBJ_ALLOC, OBJ_MMAP, OBJ_MALLOC, OBJ_REMAPPED };
static const char *const kind_names[] = { "usvm_alloc", "mmap+register", "malloc+register",
					  "mremapped" };
#define K(k) (1u << (k))
#define K_ANY (K(OBJ_ALLOC) | K(OBJ_MMAP) | K(OBJ_MALLOC) | K(OBJ_REMAPPED))

struct obj {
	enum obj_kind kind;
	uint8_t *addr;
	size_t len;        /* bytes managed (usvm_alloc sizes rounded up to pages) */
	uint8_t *shadow;   /* what every byte must read */
	unsigned int id;
};

struct counters {
	unsigned long ops[NOPS];
	unsigned long err[NOPS][NERR];
};

struct worker {
	char name[24];
	int id;                 /* -1: the chaos thread */
	uint64_t seed, rng;
	unsigned long opno, max_ops;
	enum op cur;
	pthread_mutex_t lock;   /* objs[]/nobjs: the chaos thread reads addr and len */
	struct obj objs[MAX_OBJS];
	int nobjs, max_objs;
	unsigned int serial;
	uint8_t *host, *host2;  /* device transfer buffers, OBJ_MAX_LEN each */
	struct counters cnt;
	/*
	 * The last notes, and the op number and kind they belong to, under
	 * ring_lock: the stall watchdog reads them from its own thread.
	 */
	pthread_mutex_t ring_lock;
	char ring[RING][NOTE_LEN];
	unsigned long ring_opno;
	enum op ring_op;
	atomic_ullong progress_ns;
	pthread_t th;
};

/* A pagemap and what uses it. */
struct pmrec {
	struct usvm_pagemap *pm;
	size_t cap;
	unsigned int id;
	int bound;
	int users;    /* devices created with it (as pagemap or preferred) */
	int inuse;    /* populate/evict calls in flight that picked it (--mt) */
	int devpm;    /* --mt: a device's pagemap, unbound only near the end */
};

struct devrec {
	struct usvm_device *dev;
	struct pmrec *pm, *pref;
	char desc[128];
};

static struct {
	/* options */
	uint64_t opt_seed;
	int have_seed, have_ops, opt_mt, opt_threads, opt_nofork, opt_nopref, opt_lenient, verbose;
	unsigned long opt_ops;
	double opt_seconds, opt_long;
	uint64_t skip_mask;
	const char *inject;
	char repro[512];
	/* the run in progress */
	struct usvm_mm *mm;
	pthread_mutex_t pm_lock;   /* pms[], npms and each pmrec's fields */
	struct pmrec *pms[MAX_PMS];
	int npms;
	unsigned int pm_serial;
	struct devrec devs[MAX_DEVS];
	int ndevs;
	int mt;
	atomic_int stop;
	uint64_t t0, deadline;
	/* watchdog */
	pthread_mutex_t wd_lock;
	struct worker *watched[MAX_WORKERS + 2];
	/* totals */
	struct counters total;
	unsigned long seeds_run;
} g = { .pm_lock = PTHREAD_MUTEX_INITIALIZER, .wd_lock = PTHREAD_MUTEX_INITIALIZER };

/* ---- reporting ------------------------------------------------------------ */

/* Caller holds w->ring_lock. */
static void dump_ring(struct worker *w)
{
	unsigned long i, last = w->ring_opno, first = last >= RING ? last - RING + 1 : 1;

	fprintf(stderr, "  last operations of %s (seed %llu):\n", w->name,
		(unsigned long long)w->seed);
	for (i = first; i <= last; i++)
		fprintf(stderr, "    #%lu %s\n", i, w->ring[i % RING]);
}

/* Caller holds w->ring_lock. */
static void print_repro(struct worker *w)
{
	if (g.mt)
		fprintf(stderr, "  reproduce (timing dependent): model --mt --seed %llu --threads %d"
			" --seconds %g%s\n", (unsigned long long)w->seed, g.opt_threads,
			g.opt_seconds > 0 ? g.opt_seconds : 10, g.repro);
	else
		fprintf(stderr, "  reproduce: model --seed %llu --ops %lu%s\n",
			(unsigned long long)w->seed, w->ring_opno, g.repro);
}

__attribute__((noreturn, format(printf, 2, 3)))
static void fail(struct worker *w, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "model: FAIL: seed %llu, %s, op #%lu (%s): ", (unsigned long long)w->seed,
		w->name, w->opno, op_names[w->cur]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	pthread_mutex_lock(&w->ring_lock);
	dump_ring(w);
	print_repro(w);
	fflush(stderr);
	/* _exit: other threads may hold library locks; atexit work could hang. */
	_exit(1);
}

__attribute__((format(printf, 2, 3)))
static void note(struct worker *w, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&w->ring_lock);
	w->ring_opno = w->opno;
	w->ring_op = w->cur;
	va_start(ap, fmt);
	vsnprintf(w->ring[w->opno % RING], NOTE_LEN, fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&w->ring_lock);
	if (g.verbose)
		printf("[%s] #%lu %s\n", w->name, w->opno, w->ring[w->opno % RING]);
}

static void count_ret(struct worker *w, enum op op, long ret)
{
	if (ret < 0 && -ret < NERR)
		w->cnt.err[op][-ret]++;
}

static const char *errname(int e)
{
	const char *s = strerrorname_np(e);

	return s ? s : "?";
}

static void print_summary(const struct counters *c)
{
	int op, e;

	printf("summary: operations (errors by errno)\n");
	for (op = 0; op < NOPS; op++) {
		int any = 0;

		if (!c->ops[op])
			continue;
		printf("  %-16s %8lu", op_names[op], c->ops[op]);
		for (e = 1; e < NERR; e++) {
			if (!c->err[op][e])
				continue;
			printf("%s%s %lu", any ? ", " : "  (", errname(e), c->err[op][e]);
			any = 1;
		}
		printf("%s\n", any ? ")" : "");
	}
}

static void add_counters(struct counters *to, const struct counters *from)
{
	int op, e;

	for (op = 0; op < NOPS; op++) {
		to->ops[op] += from->ops[op];
		for (e = 0; e < NERR; e++)
			to->err[op][e] += from->err[op][e];
	}
}

/* ---- watchdog for single operations ------------------------------------- */

static void watch(struct worker *w, int on)
{
	int i;

	pthread_mutex_lock(&g.wd_lock);
	for (i = 0; i < MAX_WORKERS + 2; i++) {
		if (on && !g.watched[i]) {
			g.watched[i] = w;
			break;
		}
		if (!on && g.watched[i] == w) {
			g.watched[i] = NULL;
			break;
		}
	}
	pthread_mutex_unlock(&g.wd_lock);
}

/*
 * test_init's watchdog bounds the whole run; this one names the operation
 * that hangs (its thread stopped making progress), which is what a hang
 * report needs.
 */
static void *stall_watchdog(void *arg)
{
	(void)arg;
	for (;;) {
		uint64_t now;
		int i;

		sleep_ms(500);
		now = now_ns();
		pthread_mutex_lock(&g.wd_lock);
		for (i = 0; i < MAX_WORKERS + 2; i++) {
			struct worker *w = g.watched[i];
			uint64_t p;

			if (!w)
				continue;
			p = atomic_load(&w->progress_ns);
			if (p && now > p + STALL_S * 1000000000ull) {
				fflush(stdout);
				pthread_mutex_lock(&w->ring_lock);
				fprintf(stderr, "model: FAIL: seed %llu, %s, op #%lu (%s) has not "
					"finished in %d s: hang\n", (unsigned long long)w->seed,
					w->name, w->ring_opno, op_names[w->ring_op], STALL_S);
				dump_ring(w);
				print_repro(w);
				_exit(1);
			}
		}
		pthread_mutex_unlock(&g.wd_lock);
	}
	return NULL;
}

/* ---- randomness ------------------------------------------------------------ */

static uint64_t rnd(struct worker *w, uint64_t n)
{
	return n ? rng_next(&w->rng) % n : 0;
}

/* Object sizes: mostly small, often whole 2 MiB blocks, up to 4 MiB. */
static size_t pick_len(struct worker *w)
{
	switch (rnd(w, 10)) {
	case 0:
	case 1:
	case 2:
		return (1 + rnd(w, 4)) * PAGE;
	case 3:
	case 4:
		return (1 + rnd(w, 64)) * PAGE;
	case 5:
		return (1 + rnd(w, 256)) * PAGE;
	case 6:
		return (1 + rnd(w, 2)) * USVM_BLOCK_SIZE;
	case 7:
		/* A block and a page more or less: pieces straddle blocks. */
		return (1 + rnd(w, 2)) * USVM_BLOCK_SIZE + (rnd(w, 2) ? PAGE : -PAGE);
	default:
		return (1 + rnd(w, 1024)) * PAGE;
	}
}

/* A byte span of @o, sometimes centred on a page or block boundary. */
static void pick_span(struct worker *w, const struct obj *o, size_t *off, size_t *n)
{
	size_t k, len = o->len;

	switch (rnd(w, 6)) {
	case 0:
		k = 1 + rnd(w, 64);
		break;
	case 1:
		k = 1 + rnd(w, 4 * PAGE);
		break;
	case 2:
		k = 1 + rnd(w, 256 * KiB);
		break;
	case 3:
		k = len;
		break;
	default:
		k = 1 + rnd(w, len);
		break;
	}
	if (k > len)
		k = len;
	*n = k;
	*off = rnd(w, len - k + 1);
	if (k < len && rnd(w, 4) == 0) {
		uintptr_t b = rnd(w, 2) ? USVM_BLOCK_SIZE : PAGE;
		uintptr_t mid = ((uintptr_t)o->addr + *off + k / 2) / b * b;

		if (mid >= (uintptr_t)o->addr + k / 2 && mid - k / 2 + k <= (uintptr_t)o->addr + len)
			*off = mid - k / 2 - (uintptr_t)o->addr;
	}
}

/* A page-aligned span of @o. */
static void pick_pages(struct worker *w, size_t len, size_t *off, size_t *n)
{
	size_t np = len / PAGE, k;

	switch (rnd(w, 5)) {
	case 0:
		k = np;
		break;
	case 1:
		k = 1 + rnd(w, 4);
		break;
	case 2:
		k = 1 + rnd(w, 64);
		break;
	case 3:
		k = USVM_BLOCK_SIZE / PAGE;
		break;
	default:
		k = 1 + rnd(w, np);
		break;
	}
	if (k > np)
		k = np;
	*off = rnd(w, np - k + 1) * PAGE;
	*n = k * PAGE;
}

/* New contents for @n bytes at object offset @base_off. */
static void gen_data(struct worker *w, uint8_t *dst, size_t n, size_t base_off)
{
	size_t i;

	switch (rnd(w, 5)) {
	case 0:
	case 1:
		pattern_fill_at(dst, n, rng_next(&w->rng), base_off);
		break;
	case 2:
		for (i = 0; i < n; i += 8) {
			uint64_t x = rng_next(&w->rng);

			memcpy(dst + i, &x, n - i < 8 ? n - i : 8);
		}
		break;
	case 3:
		memset(dst, (int)rnd(w, 256), n);
		break;
	default:
		memset(dst, 0, n);
		break;
	}
}

/* ---- objects ----------------------------------------------------------------- */

static struct obj *pick_obj(struct worker *w, unsigned int kinds)
{
	int idx[MAX_OBJS], n = 0, i;

	for (i = 0; i < w->nobjs; i++)
		if (kinds & K(w->objs[i].kind))
			idx[n++] = i;
	return n ? &w->objs[idx[rnd(w, (uint64_t)n)]] : NULL;
}

static struct obj *add_obj(struct worker *w, enum obj_kind kind, void *addr, size_t len,
			   uint8_t *shadow)
{
	struct obj *o;

	pthread_mutex_lock(&w->lock);
	o = &w->objs[w->nobjs++];
	*o = (struct obj){ kind, addr, len, shadow, ++w->serial };
	pthread_mutex_unlock(&w->lock);
	return o;
}

/* Forget @o (its memory is the caller's business); returns a copy. */
static struct obj del_obj(struct worker *w, struct obj *o)
{
	struct obj c = *o;

	pthread_mutex_lock(&w->lock);
	*o = w->objs[--w->nobjs];
	pthread_mutex_unlock(&w->lock);
	return c;
}

static void hex16(char *out, const uint8_t *p, size_t n)
{
	size_t i;

	out[0] = 0;
	for (i = 0; i < n && i < 16; i++)
		sprintf(out + 3 * i, "%02x ", p[i]);
}

/* @got (@n bytes read at offset @off of @o, by @who) must equal the shadow. */
static void check_span(struct worker *w, const char *who, const struct obj *o, size_t off,
		       const uint8_t *got, size_t n)
{
	size_t i, first = SIZE_MAX, last = 0, bad = 0;
	uint8_t gotb = 0, copy[16];
	char he[64], hg[64];

	if (!memcmp(got, o->shadow + off, n))
		return;
	for (i = 0; i < n; i++) {
		uint8_t b = ((const volatile uint8_t *)got)[i];

		if (b != o->shadow[off + i]) {
			if (first == SIZE_MAX) {
				first = i;
				gotb = b;
			}
			last = i;
			bad++;
		}
	}
	if (first == SIZE_MAX)
		fail(w, "%s: object #%u (%s, %p, %zu bytes) [%zu, +%zu): memcmp saw a difference "
		     "that a second read did not: the bytes changed under the reader", who, o->id,
		     kind_names[o->kind], (void *)o->addr, o->len, off, n);
	memcpy(copy, got + first, n - first < 16 ? n - first : 16);
	hex16(he, o->shadow + off + first, n - first);
	hex16(hg, copy, n - first);
	fail(w, "%s mismatch: object #%u (%s, %p, %zu bytes): address %p, offset %zu: expected "
	     "0x%02x, got 0x%02x; %zu of the %zu bytes read at [%zu, +%zu) differ, offsets %zu..%zu"
	     "\n  expected: %s\n  got:      %s", who, o->id, kind_names[o->kind], (void *)o->addr,
	     o->len, (void *)(o->addr + off + first), off + first, o->shadow[off + first], gotb,
	     bad, n, off, n, off + first, off + last, he, hg);
}

static void cpu_check(struct worker *w, const struct obj *o, size_t off, size_t n)
{
	check_span(w, "CPU read", o, off, o->addr + off, n);
}

static struct devrec *pick_dev(struct worker *w)
{
	return &g.devs[rnd(w, (uint64_t)g.ndevs)];
}

static int tolerated(int err)
{
	/* Fault injection may make device accesses and migrations fail. */
	return g.inject && (err == -EIO || err == -ENOMEM);
}

static void dev_check(struct worker *w, struct devrec *d, const struct obj *o, size_t off,
		      size_t n)
{
	char who[160];
	int err;

	memset(w->host, 0x5a, n);
	err = usvm_device_read(d->dev, o->addr + off, w->host, n);
	count_ret(w, w->cur, err);
	if (err && tolerated(err))
		return;
	if (err)
		fail(w, "usvm_device_read(%s, %p, %zu) of object #%u (%s) offset %zu: %d (%s)",
		     d->desc, (void *)(o->addr + off), n, o->id, kind_names[o->kind], off, err,
		     usvm_strerror(err));
	snprintf(who, sizeof(who), "device read (%s)", d->desc);
	check_span(w, who, o, off, w->host, n);
}

/* ---- pagemaps and devices ------------------------------------------------ */

static struct pmrec *pm_new(int devpm)
{
	static const size_t caps[] = { 4 * MiB, 6 * MiB, 8 * MiB, 12 * MiB, 16 * MiB };
	struct pmrec *p = calloc(1, sizeof(*p));
	char name[32];
	unsigned int id;

	CHECK(p != NULL, "calloc");
	pthread_mutex_lock(&g.pm_lock);
	id = ++g.pm_serial;
	pthread_mutex_unlock(&g.pm_lock);
	/* Capacity from the serial, not the random stream: --mt creates
	 * pagemaps on a timer. */
	p->cap = caps[id % 5];
	p->id = id;
	p->bound = 1;
	p->devpm = devpm;
	snprintf(name, sizeof(name), "sim%u", id);
	p->pm = test_sim_create(name, p->cap);
	pthread_mutex_lock(&g.pm_lock);
	CHECK(g.npms < MAX_PMS, "too many pagemaps");
	g.pms[g.npms++] = p;
	pthread_mutex_unlock(&g.pm_lock);
	return p;
}

/* A pagemap for a populate or evict, held (inuse) until pm_put. */
static struct pmrec *pm_get(struct worker *w, int any, int *bound)
{
	struct pmrec *cand[MAX_PMS], *p = NULL;
	int n = 0, i;

	pthread_mutex_lock(&g.pm_lock);
	for (i = 0; i < g.npms; i++)
		if (any || g.pms[i]->bound)
			cand[n++] = g.pms[i];
	if (n) {
		p = cand[rnd(w, (uint64_t)n)];
		p->inuse++;
		*bound = p->bound;
	}
	pthread_mutex_unlock(&g.pm_lock);
	return p;
}

static void pm_put(struct pmrec *p)
{
	pthread_mutex_lock(&g.pm_lock);
	p->inuse--;
	pthread_mutex_unlock(&g.pm_lock);
}

static int nbound(void)
{
	int i, n = 0;

	pthread_mutex_lock(&g.pm_lock);
	for (i = 0; i < g.npms; i++)
		n += g.pms[i]->bound;
	pthread_mutex_unlock(&g.pm_lock);
	return n;
}

/*
 * Destroy unbound pagemaps nobody uses any more.  Pagemaps a live device
 * was created with stay until the device is gone (usvm_pagemap_destroy of
 * those is not supported yet).
 */
static void pm_gc(void)
{
	struct pmrec *dead[MAX_PMS];
	int i, n = 0;

	pthread_mutex_lock(&g.pm_lock);
	for (i = 0; i < g.npms;) {
		struct pmrec *p = g.pms[i];

		if (!p->bound && !p->users && !p->inuse) {
			dead[n++] = p;
			g.pms[i] = g.pms[--g.npms];
			continue;
		}
		i++;
	}
	pthread_mutex_unlock(&g.pm_lock);
	/* Outside the lock: destroy may take a while. */
	for (i = 0; i < n; i++) {
		usvm_pagemap_destroy(dead[i]->pm);
		free(dead[i]);
	}
}

static struct pmrec *pick_bound(struct worker *w, struct pmrec *not)
{
	struct pmrec *cand[MAX_PMS];
	int i, n = 0;

	for (i = 0; i < g.npms; i++)
		if (g.pms[i]->bound && g.pms[i] != not)
			cand[n++] = g.pms[i];
	return n ? cand[rnd(w, (uint64_t)n)] : NULL;
}

static void dev_make(struct worker *w, struct devrec *d, int idx, struct pmrec *force_pm)
{
	static const char *const pol[] = { "ALWAYS", "ONCE", "NEVER" };
	struct usvm_device_options o = { 0 };
	char name[16], pmn[16], prefn[32];
	int err;

	memset(d, 0, sizeof(*d));
	pthread_mutex_lock(&g.pm_lock);
	d->pm = force_pm ? force_pm : rnd(w, 6) ? pick_bound(w, NULL) : NULL;
	d->pref = d->pm && rnd(w, 5) == 0 ? pick_bound(w, d->pm) : NULL;
	if (g.opt_nopref)
		d->pref = NULL; /* after the draws: the same sequence otherwise */
	if (d->pm)
		d->pm->users++;
	if (d->pref)
		d->pref->users++;
	pthread_mutex_unlock(&g.pm_lock);
	snprintf(name, sizeof(name), "dev%d", idx);
	o.name = name;
	o.pagemap = d->pm ? d->pm->pm : NULL;
	o.preferred = d->pref ? d->pref->pm : NULL;
	o.policy = (enum usvm_migrate_policy)rnd(w, 3);
	o.timeslice_ms = rnd(w, MAX_TIMESLICE_MS + 1);
	o.threads = 1 + (unsigned int)rnd(w, 3);
	o.peer_access = (int)rnd(w, 2);
	snprintf(pmn, sizeof(pmn), d->pm ? "sim%u" : "none", d->pm ? d->pm->id : 0);
	snprintf(prefn, sizeof(prefn), d->pref ? ", preferred sim%u" : "", d->pref ? d->pref->id : 0);
	snprintf(d->desc, sizeof(d->desc), "dev%d (pagemap %s%s, %s, ts %lu ms, %u threads%s)", idx,
		 pmn, prefn, pol[o.policy], o.timeslice_ms, o.threads, o.peer_access ? ", peer" : "");
	err = usvm_device_create(g.mm, &o, &d->dev);
	if (err || !d->dev)
		fail(w, "usvm_device_create(%s): %d (%s)", d->desc, err, usvm_strerror(err));
}

static void dev_unmake(struct devrec *d)
{
	usvm_device_destroy(d->dev);
	pthread_mutex_lock(&g.pm_lock);
	if (d->pm)
		d->pm->users--;
	if (d->pref)
		d->pref->users--;
	pthread_mutex_unlock(&g.pm_lock);
	d->dev = NULL;
}

/* ---- operations ---------------------------------------------------------------- */

static void op_cpu_write(struct worker *w)
{
	struct obj *o = pick_obj(w, K_ANY);
	size_t off, n, i;
	int backwards;

	pick_span(w, o, &off, &n);
	backwards = rnd(w, 3) == 0 && n <= 64 * KiB;
	gen_data(w, o->shadow + off, n, off);
	note(w, "cpu_write #%u %p [%zu, +%zu)%s", o->id, (void *)o->addr, off, n,
	     backwards ? " bytewise backwards" : "");
	if (backwards) {
		/* Last page first: faults arrive in the other order. */
		volatile uint8_t *p = o->addr + off;

		for (i = n; i-- > 0;)
			p[i] = o->shadow[off + i];
	} else {
		memcpy(o->addr + off, o->shadow + off, n);
	}
}

static void op_cpu_read(struct worker *w)
{
	struct obj *o = pick_obj(w, K_ANY);
	size_t off, n, k;

	pick_span(w, o, &off, &n);
	if (rnd(w, 3)) {
		note(w, "cpu_read #%u %p [%zu, +%zu)", o->id, (void *)o->addr, off, n);
		cpu_check(w, o, off, n);
		return;
	}
	/* Single bytes here and there: one fault each, no neighbours. */
	note(w, "cpu_read #%u %p: 8 single bytes in [%zu, +%zu)", o->id, (void *)o->addr, off, n);
	for (k = 0; k < 8; k++) {
		size_t at = off + rnd(w, n);

		check_span(w, "CPU single-byte read", o, at, o->addr + at, 1);
	}
}

static void op_dev_write(struct worker *w)
{
	struct obj *o = pick_obj(w, K_ANY);
	struct devrec *d = pick_dev(w);
	static const size_t chunks[] = { 512, PAGE, 3 * PAGE + 8, 64 * KiB, 2 * MiB };
	size_t off, n, chunk, i;
	int err;

	pick_span(w, o, &off, &n);
	chunk = rnd(w, 3) ? 0 : chunks[rnd(w, 5)];
	gen_data(w, w->host, n, off);
	note(w, "dev_write #%u %p [%zu, +%zu) %s%s", o->id, (void *)o->addr, off, n, d->desc,
	     chunk ? " (multi-index kernel)" : "");
	if (chunk)
		err = dev_copy(d->dev, o->addr + off, w->host, n, chunk, 1);
	else
		err = usvm_device_write(d->dev, o->addr + off, w->host, n);
	count_ret(w, OP_dev_write, err);
	if (!err) {
		memcpy(o->shadow + off, w->host, n);
		return;
	}
	if (!tolerated(err))
		fail(w, "device write of object #%u (%s, %p) [%zu, +%zu): %d (%s)", o->id,
		     kind_names[o->kind], (void *)o->addr, off, n, err, usvm_strerror(err));
	/* A failed write leaves each byte old or new; adopt what is there. */
	for (i = 0; i < n; i++) {
		uint8_t b = o->addr[off + i];

		if (b != o->shadow[off + i] && b != w->host[i])
			fail(w, "failed device write (%d) left byte %p (offset %zu) = 0x%02x, "
			     "neither old 0x%02x nor new 0x%02x", err, (void *)(o->addr + off + i),
			     off + i, b, o->shadow[off + i], w->host[i]);
		o->shadow[off + i] = b;
	}
}

static void op_dev_read(struct worker *w)
{
	struct obj *o = pick_obj(w, K_ANY);
	struct devrec *d = pick_dev(w);
	static const size_t chunks[] = { 512, PAGE, 3 * PAGE + 8, 64 * KiB, 2 * MiB };
	size_t off, n, chunk;
	char who[160];
	int err;

	pick_span(w, o, &off, &n);
	chunk = rnd(w, 3) ? 0 : chunks[rnd(w, 5)];
	note(w, "dev_read #%u %p [%zu, +%zu) %s%s", o->id, (void *)o->addr, off, n, d->desc,
	     chunk ? " (multi-index kernel)" : "");
	if (!chunk) {
		dev_check(w, d, o, off, n);
		return;
	}
	memset(w->host, 0x5a, n);
	err = dev_copy(d->dev, o->addr + off, w->host, n, chunk, 0);
	count_ret(w, OP_dev_read, err);
	if (err && tolerated(err))
		return;
	if (err)
		fail(w, "device read of object #%u (%s, %p) [%zu, +%zu): %d (%s)", o->id,
		     kind_names[o->kind], (void *)o->addr, off, n, err, usvm_strerror(err));
	snprintf(who, sizeof(who), "device read, %zu-byte chunks (%s)", chunk, d->desc);
	check_span(w, who, o, off, w->host, n);
}

struct atom_arg {
	uint64_t *addr[4];
	uint64_t v[4], old[4];
	int done[4];
};

static int k_atomic(struct usvm_kctx *c, unsigned long i, void *arg)
{
	struct atom_arg *a = arg;
	int err = usvm_dev_atomic_add_u64(c, a->addr[i], a->v[i], &a->old[i]);

	a->done[i] = !err;
	return err;
}

static void op_atomic(struct worker *w)
{
	struct obj *o = pick_obj(w, K_ANY);
	struct devrec *d = pick_dev(w);
	struct atom_arg a;
	size_t words = o->len / 8, woff[4];
	unsigned long k = 1 + rnd(w, 4), i, j;
	int err;

	memset(&a, 0, sizeof(a));
	for (i = 0; i < k; i++) {
		woff[i] = rnd(w, words) * 8;
		for (j = 0; j < i; j++)
			if (woff[j] == woff[i])
				woff[i] = (woff[i] + 8) % (words * 8);
		a.addr[i] = (uint64_t *)(void *)(o->addr + woff[i]);
		a.v[i] = rnd(w, 4) ? 1 + rnd(w, 1000) : rng_next(&w->rng);
	}
	/* Distinct words: the shadow adds below assume no overlap. */
	for (i = 1; i < k; i++)
		for (j = 0; j < i; j++)
			if (woff[i] == woff[j])
				k = i; /* drop the duplicate and the rest */
	note(w, "atomic #%u %p: %lu adds, first at offset %zu, %s", o->id, (void *)o->addr, k,
	     woff[0], d->desc);
	err = usvm_device_launch(d->dev, k_atomic, k, &a);
	count_ret(w, OP_atomic, err);
	if (err && !tolerated(err) && !(g.opt_lenient && err == -EBUSY))
		fail(w, "device atomic add on object #%u (%s, %p): %d (%s)", o->id,
		     kind_names[o->kind], (void *)o->addr, err, usvm_strerror(err));
	for (i = 0; i < k; i++) {
		uint64_t s;

		memcpy(&s, o->shadow + woff[i], 8);
		if (!a.done[i])
			continue; /* tolerated failure: the CPU checks will see it unchanged */
		if (a.old[i] != s)
			fail(w, "device atomic add at %p (object #%u, offset %zu): old value 0x%016llx, "
			     "expected 0x%016llx", (void *)a.addr[i], o->id, woff[i],
			     (unsigned long long)a.old[i], (unsigned long long)s);
		s += a.v[i];
		memcpy(o->shadow + woff[i], &s, 8);
	}
}

static void op_alloc(struct worker *w)
{
	size_t len = pick_len(w), req = len, align;
	uint8_t *shadow;
	struct obj *o;
	void *p = NULL;
	int err, chk;

	/* usvm_alloc rounds up to pages: ask for an odd size now and then. */
	if (rnd(w, 4) == 0)
		req = len - rnd(w, PAGE);
	chk = (int)rnd(w, 3);
	note(w, "alloc %zu bytes (%zu managed)%s", req, len,
	     chk == 0 ? ", check zero by CPU" : chk == 1 ? ", check zero by device" : "");
	err = usvm_alloc(g.mm, req, &p);
	count_ret(w, OP_alloc, err);
	if (err && g.inject && err == -ENOMEM)
		return;
	if (err || !p)
		fail(w, "usvm_alloc(%zu): %d (%s)", req, err, usvm_strerror(err));
	align = req >= USVM_BLOCK_SIZE ? USVM_BLOCK_SIZE : req >= 64 * KiB ? 64 * KiB : PAGE;
	if ((uintptr_t)p % align)
		fail(w, "usvm_alloc(%zu) = %p: not %zu aligned", req, p, align);
	shadow = calloc(1, len);
	CHECK(shadow != NULL, "calloc %zu", len);
	o = add_obj(w, OBJ_ALLOC, p, len, shadow);
	note(w, "alloc %zu bytes (%zu managed) = #%u %p%s", req, len, o->id, p,
	     chk == 0 ? ", check zero by CPU" : chk == 1 ? ", check zero by device" : "");
	/* Fresh memory reads as zero, never as a previous owner's data. */
	if (chk == 0)
		cpu_check(w, o, 0, len);
	else if (chk == 1)
		dev_check(w, pick_dev(w), o, 0, len);
}

static void op_free(struct worker *w)
{
	struct obj *o = pick_obj(w, K(OBJ_ALLOC)), c;
	int err;

	if (!o) {
		note(w, "free: no usvm_alloc object");
		return;
	}
	note(w, "free #%u %p (%zu bytes)", o->id, (void *)o->addr, o->len);
	if (rnd(w, 4) == 0)
		cpu_check(w, o, 0, o->len);
	c = del_obj(w, o);
	err = usvm_free(g.mm, c.addr);
	count_ret(w, OP_free, err);
	if (err)
		fail(w, "usvm_free(%p) of object #%u: %d (%s)", (void *)c.addr, c.id, err,
		     usvm_strerror(err));
	/* A double free is refused (single-threaded: nobody reused the address). */
	if (!g.mt && rnd(w, 8) == 0) {
		err = usvm_free(g.mm, c.addr);
		if (err != -EINVAL)
			fail(w, "second usvm_free(%p): %d (%s), expected -EINVAL", (void *)c.addr,
			     err, usvm_strerror(err));
	}
	free(c.shadow);
}

static void op_register(struct worker *w)
{
	int is_mmap = (int)rnd(w, 2), aligned = (int)rnd(w, 2), fill = (int)rnd(w, 3);
	size_t len = pick_len(w), i;
	uint8_t *p, *shadow;
	struct obj *o;
	int err;

	shadow = calloc(1, len);
	CHECK(shadow != NULL, "calloc %zu", len);
	if (is_mmap) {
		if (aligned) {
			p = map_aligned(len, USVM_BLOCK_SIZE);
		} else {
			p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				 -1, 0);
			CHECK(p != MAP_FAILED, "mmap %zu", len);
		}
	} else {
		void *m = NULL;

		CHECK(posix_memalign(&m, PAGE, len) == 0, "posix_memalign %zu", len);
		p = m;
		fill = 1; /* malloc'd memory holds anything: define it */
	}
	/* Data that was there before registration must stay. */
	if (fill == 1) {
		gen_data(w, shadow, len, 0);
		memcpy(p, shadow, len);
	} else if (fill == 2) {
		for (i = 0; i < len / PAGE; i++) {
			if (rnd(w, 3))
				continue; /* untouched: zero */
			gen_data(w, shadow + i * PAGE, PAGE, i * PAGE);
			memcpy(p + i * PAGE, shadow + i * PAGE, PAGE);
		}
	}
	note(w, "register %s %p %zu bytes%s, %s", is_mmap ? "mmap" : "malloc", (void *)p, len,
	     is_mmap && aligned ? " (2 MiB aligned)" : "",
	     fill == 0 ? "never touched" : fill == 1 ? "filled" : "some pages filled");
	err = usvm_register(g.mm, p, len);
	count_ret(w, OP_register, err);
	if (err)
		fail(w, "usvm_register(%p, %zu) (%s): %d (%s)", (void *)p, len,
		     is_mmap ? "mmap" : "malloc", err, usvm_strerror(err));
	o = add_obj(w, is_mmap ? OBJ_MMAP : OBJ_MALLOC, p, len, shadow);
	note(w, "register %s #%u %p %zu bytes%s, %s", is_mmap ? "mmap" : "malloc", o->id,
	     (void *)p, len, is_mmap && aligned ? " (2 MiB aligned)" : "",
	     fill == 0 ? "never touched" : fill == 1 ? "filled" : "some pages filled");
	if (rnd(w, 6) == 0) {
		/* Overlapping registrations are refused and change nothing. */
		size_t sub = len > PAGE ? PAGE : 0;

		err = usvm_register(g.mm, p + sub, len - sub);
		if (err != -EEXIST)
			fail(w, "usvm_register(%p, %zu) over #%u: %d (%s), expected -EEXIST",
			     (void *)(p + sub), len - sub, o->id, err, usvm_strerror(err));
	}
}

/* Give an object's memory back after it left the library's hands. */
static void release_plain(struct obj *c)
{
	if (c->kind == OBJ_MALLOC)
		free(c->addr);
	else if (c->kind == OBJ_MMAP || c->kind == OBJ_REMAPPED)
		munmap(c->addr, c->len);
	free(c->shadow);
}

static void op_unregister(struct worker *w)
{
	struct obj *o = pick_obj(w, K(OBJ_MMAP) | K(OBJ_MALLOC)), c;
	int err;

	if (!o) {
		note(w, "unregister: no registered object");
		return;
	}
	note(w, "unregister #%u %s %p %zu bytes", o->id, kind_names[o->kind], (void *)o->addr,
	     o->len);
	if (o->len > PAGE && rnd(w, 6) == 0) {
		/* Not exactly a registered range: refused. */
		err = usvm_unregister(g.mm, o->addr, o->len - PAGE);
		if (err != -EINVAL)
			fail(w, "usvm_unregister(%p, %zu) (part of #%u): %d (%s), expected -EINVAL",
			     (void *)o->addr, o->len - PAGE, o->id, err, usvm_strerror(err));
	}
	c = del_obj(w, o);
	err = usvm_unregister(g.mm, c.addr, c.len);
	count_ret(w, OP_unregister, err);
	if (err)
		fail(w, "usvm_unregister(%p, %zu) of #%u: %d (%s)", (void *)c.addr, c.len, c.id, err,
		     usvm_strerror(err));
	/* Plain memory now: every byte must be in place. */
	check_span(w, "CPU read after unregister", &c, 0, c.addr, c.len);
	release_plain(&c);
}

static void op_munmap(struct worker *w)
{
	struct obj *o = pick_obj(w, K(OBJ_MMAP) | K(OBJ_REMAPPED)), c;
	int err;

	if (!o) {
		note(w, "munmap: no mmap'd object");
		return;
	}
	note(w, "munmap #%u %s %p %zu bytes", o->id, kind_names[o->kind], (void *)o->addr, o->len);
	c = del_obj(w, o);
	CHECK(munmap(c.addr, c.len) == 0, "munmap");
	/*
	 * The library forgot the range.  Not in --mt: another worker may have
	 * mapped and registered the same addresses meanwhile.
	 */
	if (!g.mt) {
		err = usvm_unregister(g.mm, c.addr, c.len);
		count_ret(w, OP_munmap, err);
		if (err != -EINVAL)
			fail(w, "usvm_unregister(%p, %zu) after munmap of #%u: %d (%s), expected "
			     "-EINVAL", (void *)c.addr, c.len, c.id, err, usvm_strerror(err));
	}
	free(c.shadow);
}

static void check_whole(struct worker *w, const struct obj *o, int device_first)
{
	struct devrec *d = pick_dev(w);

	if (device_first) {
		dev_check(w, d, o, 0, o->len);
		cpu_check(w, o, 0, o->len);
	} else {
		cpu_check(w, o, 0, o->len);
		dev_check(w, d, o, 0, o->len);
	}
}

static void op_mremap(struct worker *w, int grow)
{
	struct obj *o = pick_obj(w, K(OBJ_MMAP) | K(OBJ_REMAPPED));
	size_t newlen, extra = (1 + rnd(w, 512)) * PAGE;
	int fixed = (int)rnd(w, 3), dev_first = (int)rnd(w, 2), align2m = (int)rnd(w, 2);
	uint8_t *target = NULL, *r, *sh;

	if (!o) {
		note(w, "%s: no mmap'd object", grow ? "mremap_grow" : "mremap");
		return;
	}
	newlen = grow && o->len + extra <= OBJ_MAX_LEN ? o->len + extra : o->len;
	note(w, "%s #%u %s %p %zu -> %zu bytes%s, then check %s first",
	     grow ? "mremap_grow" : "mremap", o->id, kind_names[o->kind], (void *)o->addr, o->len,
	     newlen, !grow && fixed ? " MREMAP_FIXED" : "", dev_first ? "device" : "CPU");
	if (!grow && fixed) {
		target = map_aligned(o->len, align2m ? USVM_BLOCK_SIZE : PAGE);
		r = mremap(o->addr, o->len, o->len, MREMAP_MAYMOVE | MREMAP_FIXED, target);
		CHECK(r == target, "mremap to %p: %p", (void *)target, (void *)r);
	} else {
		r = mremap(o->addr, o->len, newlen, MREMAP_MAYMOVE);
		CHECK(r != MAP_FAILED, "mremap %zu -> %zu: %s", o->len, newlen, strerror(errno));
	}
	/* Grown: the tail is not tracked until the program registers it
	 * (no event when grown in place; REMAP carries the old length). */
	if (newlen > o->len) {
		int err = usvm_register(g.mm, r + o->len, newlen - o->len);

		if (err)
			fail(w, "usvm_register of the tail grown in place [%p, +%zu): %d (%s)",
			     (void *)(r + o->len), newlen - o->len, err, usvm_strerror(err));
	}
	sh = realloc(o->shadow, newlen);
	CHECK(sh != NULL, "realloc %zu", newlen);
	memset(sh + o->len, 0, newlen - o->len); /* the new tail reads as zero */
	pthread_mutex_lock(&w->lock);
	note(w, "%s #%u %s %p %zu -> %p %zu bytes%s, then check %s first",
	     grow ? "mremap_grow" : "mremap", o->id, kind_names[o->kind], (void *)o->addr, o->len,
	     (void *)r, newlen, !grow && fixed ? " MREMAP_FIXED" : "", dev_first ? "device" : "CPU");
	o->addr = r;
	o->len = newlen;
	o->shadow = sh;
	o->kind = OBJ_REMAPPED; /* finished by munmap, never unregistered */
	pthread_mutex_unlock(&w->lock);
	/* The moved range is managed: both sides see every byte. */
	check_whole(w, o, dev_first);
}

static void op_madvise(struct worker *w)
{
	struct obj *o = pick_obj(w, K_ANY);
	size_t off, n;

	pick_pages(w, o->len, &off, &n);
	note(w, "madvise DONTNEED #%u %s %p [%zu, +%zu)", o->id, kind_names[o->kind],
	     (void *)o->addr, off, n);
	CHECK(madvise(o->addr + off, n, MADV_DONTNEED) == 0, "madvise: %s", strerror(errno));
	memset(o->shadow + off, 0, n);
}

/* Populate results a caller may see; -EINVAL/-EFAULT mean wrong arguments. */
static int populate_ok(int err, int bound)
{
	if (g.opt_lenient && err != -EINVAL && err != -EFAULT)
		return 1;
	if (g.mt)
		return !err || err == -ENOMEM || err == -EBUSY || err == -EIO || err == -ENODEV;
	if (!bound)
		return err == -ENODEV;
	return !err || err == -ENOMEM || err == -EBUSY || err == -EIO;
}

static void op_populate(struct worker *w)
{
	struct obj *o = pick_obj(w, K_ANY);
	int any = rnd(w, 8) == 0, bound = 0, after = (int)rnd(w, 8), err;
	unsigned long ts = rnd(w, MAX_TIMESLICE_MS + 1);
	struct pmrec *p = pm_get(w, any, &bound);
	size_t off, n;

	pick_pages(w, o->len, &off, &n);
	if (!p) {
		note(w, "populate: no pagemap");
		return;
	}
	note(w, "populate sim%u%s #%u %s %p [%zu, +%zu) ts %lu ms%s", p->id,
	     bound ? "" : " (unbound)", o->id, kind_names[o->kind], (void *)o->addr, off, n, ts,
	     after == 0 ? ", then check by CPU" : after == 1 ? ", then check by device" : "");
	err = usvm_pagemap_populate_mm(p->pm, o->addr + off, o->addr + off + n, g.mm, ts);
	pm_put(p);
	count_ret(w, OP_populate, err);
	if (!populate_ok(err, bound))
		fail(w, "usvm_pagemap_populate_mm(sim%u%s, #%u %s %p [%zu, +%zu)): %d (%s)", p->id,
		     bound ? "" : " unbound", o->id, kind_names[o->kind], (void *)o->addr, off, n,
		     err, usvm_strerror(err));
	/* Populate moves pages, never data. */
	if (after == 0)
		cpu_check(w, o, off, n);
	else if (after == 1)
		dev_check(w, pick_dev(w), o, off, n);
}

static void op_evict(struct worker *w, int all)
{
	struct obj *o = all ? NULL : pick_obj(w, K_ANY);
	size_t at = o ? rnd(w, o->len) : 0;
	int bound, null_mm = (int)rnd(w, 2);
	struct pmrec *p = pm_get(w, 1, &bound);
	long r;

	if (!p) {
		note(w, "evict: no pagemap");
		return;
	}
	if (all) {
		note(w, "evict_all sim%u%s", p->id, bound ? "" : " (unbound)");
		r = usvm_pagemap_evict(p->pm, null_mm ? NULL : g.mm, NULL);
	} else {
		note(w, "evict sim%u%s at #%u %p + %zu", p->id, bound ? "" : " (unbound)", o->id,
		     (void *)o->addr, at);
		r = usvm_pagemap_evict(p->pm, g.mm, o->addr + at);
	}
	pm_put(p);
	count_ret(w, all ? OP_evict_all : OP_evict, r);
	if (r < 0 && (all || r != -ENOENT))
		fail(w, "usvm_pagemap_evict(sim%u, %s): %ld (%s)", p->id, all ? "NULL" : "addr", r,
		     usvm_strerror((int)r));
}

/* Single-threaded: unbind a pagemap, check -ENODEV, replace it. */
static void op_unbind(struct worker *w)
{
	struct pmrec *p;
	struct obj *o;
	struct usvm_pagemap_stats st;
	size_t off, n;
	int err;

	p = pick_bound(w, NULL);
	if (!p) {
		note(w, "unbind: no bound pagemap");
		return;
	}
	note(w, "unbind sim%u (%d devices use it)", p->id, p->users);
	err = usvm_pagemap_unbind(p->pm);
	count_ret(w, OP_unbind, err);
	if (err)
		fail(w, "usvm_pagemap_unbind(sim%u): %d (%s)", p->id, err, usvm_strerror(err));
	p->bound = 0;
	CHECK_OK(usvm_pagemap_stats(p->pm, &st));
	if (st.used_bytes || st.live_allocations)
		fail(w, "sim%u after unbind: %llu bytes in %llu allocations still used", p->id,
		     (unsigned long long)st.used_bytes, (unsigned long long)st.live_allocations);
	o = pick_obj(w, K_ANY);
	if (o) {
		pick_pages(w, o->len, &off, &n);
		err = usvm_pagemap_populate_mm(p->pm, o->addr + off, o->addr + off + n, g.mm, 0);
		if (err != -ENODEV)
			fail(w, "populate of unbound sim%u (#%u [%zu, +%zu)): %d (%s), expected "
			     "-ENODEV", p->id, o->id, off, n, err, usvm_strerror(err));
	}
	pm_gc();
	if (nbound() < 3 && rnd(w, 4))
		pm_new(0);
	if (!nbound())
		pm_new(0);
}

static void op_dev_recreate(struct worker *w)
{
	int i = (int)rnd(w, (uint64_t)g.ndevs), change = (int)rnd(w, 4);

	note(w, "dev_recreate: destroy %s", g.devs[i].desc);
	dev_unmake(&g.devs[i]);
	if (change == 0 && g.ndevs == 2) {
		/* Down to one device. */
		if (i == 0)
			g.devs[0] = g.devs[1];
		g.ndevs = 1;
	} else {
		dev_make(w, &g.devs[i], i, NULL);
		if (change == 0 && g.ndevs == 1) {
			dev_make(w, &g.devs[1], 1, NULL);
			g.ndevs = 2;
		}
	}
	pm_gc();
	note(w, "dev_recreate: now %s%s%s", g.devs[0].desc, g.ndevs > 1 ? "; " : "",
	     g.ndevs > 1 ? g.devs[1].desc : "");
}

/* The fork child: plain reads of everything; no library calls, no stdio. */
__attribute__((noreturn))
static void fork_child(struct worker *w)
{
	char buf[512];
	int i, bad = 0;

	for (i = 0; i < w->nobjs; i++) {
		const struct obj *o = &w->objs[i];
		size_t k, first = SIZE_MAX, nbad = 0;
		int len;

		if (!memcmp(o->addr, o->shadow, o->len))
			continue;
		for (k = 0; k < o->len; k++) {
			if (o->addr[k] == o->shadow[k])
				continue;
			if (first == SIZE_MAX)
				first = k;
			nbad++;
		}
		len = snprintf(buf, sizeof(buf), "model: fork child (seed %llu, op #%lu): object "
			       "#%u (%s, %p, %zu bytes): address %p, offset %zu: expected 0x%02x, got "
			       "0x%02x; %zu bytes differ\n", (unsigned long long)w->seed, w->opno,
			       o->id, kind_names[o->kind], (void *)o->addr, o->len,
			       (void *)(o->addr + first), first, o->shadow[first], o->addr[first],
			       nbad);
		if (write(2, buf, (size_t)len) < 0)
			break;
		bad++;
	}
	_exit(bad ? 1 : 0);
}

static void op_fork(struct worker *w)
{
	uint64_t end = now_ns() + FORK_WAIT_S * 1000000000ull;
	int st = 0, i, err, bound;
	pid_t pid, r;

	note(w, "fork: child checks %d objects", w->nobjs);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		fork_child(w);
	for (;;) {
		r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		CHECK(r == 0 || errno == EINTR, "waitpid: %s", strerror(errno));
		if (now_ns() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			fail(w, "fork child did not finish in %d s (killed)", FORK_WAIT_S);
		}
		sleep_ms(2);
	}
	if (WIFSIGNALED(st))
		fail(w, "fork child died of signal %d", WTERMSIG(st));
	if (WEXITSTATUS(st))
		fail(w, "fork child saw bytes that differ from what the parent wrote (see above): "
		     "the child must see the parent's data, device-resident pages included");
	/* Wait out timeslices: then -EBUSY could only mean fork-shared pages. */
	sleep_ms(MAX_TIMESLICE_MS + 1);
	for (i = 0; i < w->nobjs; i++) {
		struct obj *o = &w->objs[i];
		struct pmrec *p = pm_get(w, 0, &bound);

		if (!p)
			break;
		note(w, "fork: after the child, populate sim%u #%u %s %p (%zu bytes)", p->id, o->id,
		     kind_names[o->kind], (void *)o->addr, o->len);
		err = usvm_pagemap_populate_mm(p->pm, o->addr, o->addr + o->len, g.mm, 0);
		pm_put(p);
		count_ret(w, OP_fork, err);
		/* -EIO only from injected copy failures; -EBUSY, not after fork. */
		if (err && err != -ENOMEM && !(g.inject && err == -EIO))
			fail(w, "populate of #%u (%s, %p, %zu bytes) into sim%u after the fork child "
			     "exited: %d (%s), expected 0 or -ENOMEM", o->id, kind_names[o->kind],
			     (void *)o->addr, o->len, p->id, err, usvm_strerror(err));
	}
	note(w, "fork: child checked %d objects; populated them again", w->nobjs);
}

static void op_resident(struct worker *w)
{
	struct obj *o = pick_obj(w, K_ANY);
	long sys, sum, r;
	int i;

	note(w, "resident #%u %s %p %zu bytes", o->id, kind_names[o->kind], (void *)o->addr,
	     o->len);
	sys = usvm_resident_bytes(g.mm, o->addr, o->len, NULL);
	count_ret(w, OP_resident, sys);
	if (sys < 0 || sys > (long)o->len)
		fail(w, "usvm_resident_bytes(#%u %s %p, %zu, system): %ld (%s)", o->id,
		     kind_names[o->kind], (void *)o->addr, o->len, sys, usvm_strerror((int)sys));
	if (g.mt)
		return; /* the chaos thread moves pages between the calls */
	sum = sys;
	for (i = 0; i < g.npms; i++) {
		r = usvm_resident_bytes(g.mm, o->addr, o->len, g.pms[i]->pm);
		if (r < 0 || r > (long)o->len)
			fail(w, "usvm_resident_bytes(#%u %p, %zu, sim%u): %ld (%s)", o->id,
			     (void *)o->addr, o->len, g.pms[i]->id, r, usvm_strerror((int)r));
		sum += r;
	}
	if (sum != (long)o->len)
		fail(w, "object #%u (%s, %p, %zu bytes): resident bytes sum to %ld (system %ld)",
		     o->id, kind_names[o->kind], (void *)o->addr, o->len, sum, sys);
}

static void op_verify_all(struct worker *w)
{
	int i, dev = (int)rnd(w, 2);
	struct devrec *d = pick_dev(w);

	note(w, "verify_all: %d objects by %s", w->nobjs, dev ? d->desc : "CPU");
	for (i = 0; i < w->nobjs; i++) {
		if (dev)
			dev_check(w, d, &w->objs[i], 0, w->objs[i].len);
		else
			cpu_check(w, &w->objs[i], 0, w->objs[i].len);
	}
}

static int op_enabled(enum op op)
{
	if (g.skip_mask & (1ull << op))
		return 0;
	return op != OP_fork || !g.opt_nofork;
}

static enum op pick_op(struct worker *w)
{
	const unsigned int *wt = g.mt ? mt_weight : st_weight;
	unsigned int total = 0, x;
	int op;

	for (op = 0; op < NOPS; op++)
		if (op_enabled((enum op)op))
			total += wt[op];
	x = (unsigned int)rnd(w, total);
	for (op = 0; op < NOPS; op++) {
		if (!op_enabled((enum op)op))
			continue;
		if (x < wt[op])
			return (enum op)op;
		x -= wt[op];
	}
	return OP_cpu_read;
}

static int needs_obj(enum op op)
{
	return op != OP_alloc && op != OP_register && op != OP_evict_all && op != OP_unbind &&
	       op != OP_dev_recreate && op != OP_fork;
}

static void do_op(struct worker *w, enum op op)
{
	w->opno++;
	atomic_store(&w->progress_ns, now_ns());
	/* Operations on objects need one; a full table needs room. */
	if ((!w->nobjs && needs_obj(op)) ||
	    (w->nobjs >= w->max_objs && (op == OP_alloc || op == OP_register)))
		op = w->nobjs ? (op == OP_alloc ? OP_free : OP_unregister)
			      : (op_enabled(OP_alloc) && (rnd(w, 2) || !op_enabled(OP_register))
				 ? OP_alloc : OP_register);
	w->cur = op;
	w->cnt.ops[op]++;
	note(w, "%s", op_names[op]);
	switch (op) {
	case OP_cpu_write: op_cpu_write(w); break;
	case OP_cpu_read: op_cpu_read(w); break;
	case OP_dev_write: op_dev_write(w); break;
	case OP_dev_read: op_dev_read(w); break;
	case OP_atomic: op_atomic(w); break;
	case OP_alloc: op_alloc(w); break;
	case OP_free: op_free(w); break;
	case OP_register: op_register(w); break;
	case OP_unregister: op_unregister(w); break;
	case OP_populate: op_populate(w); break;
	case OP_evict: op_evict(w, 0); break;
	case OP_evict_all: op_evict(w, 1); break;
	case OP_madvise: op_madvise(w); break;
	case OP_munmap: op_munmap(w); break;
	case OP_mremap: op_mremap(w, 0); break;
	case OP_mremap_grow: op_mremap(w, 1); break;
	case OP_unbind: op_unbind(w); break;
	case OP_dev_recreate: op_dev_recreate(w); break;
	case OP_fork: op_fork(w); break;
	case OP_resident: op_resident(w); break;
	case OP_verify_all: op_verify_all(w); break;
	default: break;
	}
}

/* ---- runs -------------------------------------------------------------------- */

static struct worker *worker_new(int id, uint64_t seed, int max_objs)
{
	struct worker *w = calloc(1, sizeof(*w));

	CHECK(w != NULL, "calloc");
	w->id = id;
	if (id < 0)
		snprintf(w->name, sizeof(w->name), "chaos");
	else if (g.mt)
		snprintf(w->name, sizeof(w->name), "worker %d", id);
	else
		snprintf(w->name, sizeof(w->name), "main");
	w->seed = seed;
	w->rng = pattern_word(seed, (uint64_t)(id + 2)) | 1;
	w->max_objs = max_objs;
	pthread_mutex_init(&w->lock, NULL);
	pthread_mutex_init(&w->ring_lock, NULL);
	w->host = malloc(OBJ_MAX_LEN);
	w->host2 = malloc(OBJ_MAX_LEN);
	CHECK(w->host && w->host2, "malloc");
	return w;
}

static void worker_free(struct worker *w)
{
	add_counters(&g.total, &w->cnt);
	pthread_mutex_destroy(&w->lock);
	pthread_mutex_destroy(&w->ring_lock);
	free(w->host);
	free(w->host2);
	free(w);
}

static void run_setup(struct worker *w, uint64_t seed)
{
	/* --mt: two device pagemaps and two populate-only ones. */
	int i, npm = g.mt ? 4 : 2 + (int)rnd(w, 2);

	g.mm = test_mm_create(NULL);
	g.npms = 0;
	atomic_store(&g.stop, 0);
	for (i = 0; i < npm; i++)
		pm_new(g.mt && i < 2);
	g.ndevs = g.mt ? 2 : 1 + (int)rnd(w, 2);
	for (i = 0; i < g.ndevs; i++)
		dev_make(w, &g.devs[i], i, g.mt ? g.pms[i] : NULL);
	printf("  seed %llu: %d pagemaps, devices: %s%s%s\n", (unsigned long long)seed, npm,
	       g.devs[0].desc, g.ndevs > 1 ? "; " : "", g.ndevs > 1 ? g.devs[1].desc : "");
}

/*
 * End of a run: check everything (CPU and device), evict everything,
 * destroy devices, then pagemaps and mm in a random order; registered
 * memory must hold every byte once the mm is gone.
 */
static void run_teardown(struct worker *ctx, struct worker **ws, int nw)
{
	struct usvm_pagemap_stats st;
	int i, j, order = (int)rnd(ctx, 2);

	for (j = 0; j < nw; j++) {
		struct worker *w = ws[j];

		w->cur = OP_verify_all;
		for (i = 0; i < w->nobjs; i++) {
			note(w, "end: check #%u by CPU and device", w->objs[i].id);
			check_whole(w, &w->objs[i], (int)rnd(ctx, 2));
		}
	}
	ctx->cur = OP_evict_all;
	for (i = 0; i < g.npms; i++) {
		struct pmrec *p = g.pms[i];
		long r;

		note(ctx, "end: evict all of sim%u", p->id);
		CHECK_OK(usvm_pagemap_stats(p->pm, &st));
		if (st.peak_used_bytes > p->cap)
			fail(ctx, "sim%u: peak use %llu > capacity %zu", p->id,
			     (unsigned long long)st.peak_used_bytes, p->cap);
		r = usvm_pagemap_evict(p->pm, NULL, NULL);
		if (r < 0)
			fail(ctx, "usvm_pagemap_evict(sim%u, NULL): %ld", p->id, r);
		CHECK_OK(usvm_pagemap_stats(p->pm, &st));
		if (st.used_bytes || st.live_allocations)
			fail(ctx, "sim%u after evicting everything: %llu bytes in %llu allocations",
			     p->id, (unsigned long long)st.used_bytes,
			     (unsigned long long)st.live_allocations);
	}
	for (j = 0; j < nw; j++) {
		struct worker *w = ws[j];

		w->cur = OP_resident;
		for (i = 0; i < w->nobjs; i++) {
			struct obj *o = &w->objs[i];
			long r = usvm_resident_bytes(g.mm, o->addr, o->len, NULL);

			note(w, "end: #%u all in system memory after evicting everything", o->id);
			if (r != (long)o->len)
				fail(w, "object #%u (%s, %p, %zu bytes): %ld bytes in system memory "
				     "after evicting everything", o->id, kind_names[o->kind],
				     (void *)o->addr, o->len, r);
		}
	}
	for (i = 0; i < g.ndevs; i++)
		dev_unmake(&g.devs[i]);
	g.ndevs = 0;
	if (order == 0) {
		for (i = 0; i < g.npms; i++) {
			usvm_pagemap_destroy(g.pms[i]->pm);
			free(g.pms[i]);
		}
		g.npms = 0;
		for (j = 0; j < nw; j++)
			for (i = 0; i < ws[j]->nobjs; i++)
				cpu_check(ws[j], &ws[j]->objs[i], 0, ws[j]->objs[i].len);
	}
	usvm_mm_destroy(g.mm);
	g.mm = NULL;
	for (i = 0; i < g.npms; i++) {
		usvm_pagemap_destroy(g.pms[i]->pm);
		free(g.pms[i]);
	}
	g.npms = 0;
	/* Registered memory is the program's again, with every byte. */
	for (j = 0; j < nw; j++) {
		struct worker *w = ws[j];

		w->cur = OP_unregister;
		for (i = 0; i < w->nobjs; i++) {
			struct obj *o = &w->objs[i];

			if (o->kind != OBJ_ALLOC) {
				note(w, "end: #%u after usvm_mm_destroy (%s first)", o->id,
				     order ? "mm" : "pagemaps");
				check_span(w, "CPU read after usvm_mm_destroy", o, 0, o->addr,
					   o->len);
			}
			release_plain(o);
		}
		w->nobjs = 0;
	}
}

static void run_seed(uint64_t seed, unsigned long nops, double seconds)
{
	struct worker *w;
	uint64_t t0 = now_ns(), end = seconds > 0 ? t0 + (uint64_t)(seconds * 1e9) : UINT64_MAX;
	int i, ninit;

	printf("seed %llu: up to %lu ops%s\n", (unsigned long long)seed, nops,
	       seconds > 0 ? ", time bound" : "");
	g.mt = 0;
	w = worker_new(0, seed, MAX_OBJS);
	watch(w, 1);
	atomic_store(&w->progress_ns, now_ns());
	run_setup(w, seed);
	ninit = 2 + (int)rnd(w, 4);
	for (i = 0; i < ninit; i++)
		do_op(w, rnd(w, 2) && op_enabled(OP_alloc) ? OP_alloc : OP_register);
	while (w->opno < nops && now_ns() < end)
		do_op(w, pick_op(w));
	atomic_store(&w->progress_ns, now_ns());
	run_teardown(w, &w, 1);
	printf("seed %llu: %lu ops in %.1f s, ok\n", (unsigned long long)seed, w->opno,
	       (double)(now_ns() - t0) / 1e9);
	watch(w, 0);
	worker_free(w);
	g.seeds_run++;
}

/* ---- multi-threaded mode ----------------------------------------------------- */

static struct worker *mt_workers[MAX_WORKERS];
static int mt_nworkers;

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int i;

	for (i = 0; i < 2; i++)
		do_op(w, rnd(w, 2) ? OP_alloc : OP_register);
	while (!atomic_load(&g.stop) && (!w->max_ops || w->opno < w->max_ops))
		do_op(w, pick_op(w));
	w->cur = OP_verify_all;
	for (i = 0; i < w->nobjs; i++)
		cpu_check(w, &w->objs[i], 0, w->objs[i].len);
	atomic_store(&w->progress_ns, 0); /* done: not a hang */
	return NULL;
}

static void chaos_populate(struct worker *c)
{
	struct worker *w = mt_workers[rnd(c, (uint64_t)mt_nworkers)];
	size_t off, n, len = 0;
	uint8_t *addr = NULL;
	unsigned int id = 0;
	unsigned long ts = rnd(c, MAX_TIMESLICE_MS + 1);
	int evict = (int)rnd(c, 3) == 0, bound, err;
	struct pmrec *p;

	/* Copy the range out: the owner may free it while we work on it. */
	pthread_mutex_lock(&w->lock);
	if (w->nobjs) {
		struct obj *o = &w->objs[rnd(c, (uint64_t)w->nobjs)];

		addr = o->addr;
		len = o->len;
		id = o->id;
	}
	pthread_mutex_unlock(&w->lock);
	if (!addr)
		return;
	p = pm_get(c, evict, &bound);
	if (!p)
		return;
	if (evict) {
		long r;

		c->cur = OP_chaos_evict;
		c->cnt.ops[OP_chaos_evict]++;
		off = rnd(c, len);
		note(c, "evict sim%u at %s #%u %p + %zu", p->id, w->name, id, (void *)addr, off);
		r = usvm_pagemap_evict(p->pm, g.mm, addr + off);
		pm_put(p);
		count_ret(c, OP_chaos_evict, r);
		if (r < 0 && r != -ENOENT)
			fail(c, "usvm_pagemap_evict(sim%u, %p): %ld (%s)", p->id, (void *)(addr + off),
			     r, usvm_strerror((int)r));
		return;
	}
	c->cur = OP_chaos_populate;
	c->cnt.ops[OP_chaos_populate]++;
	pick_pages(c, len, &off, &n);
	note(c, "populate sim%u %s #%u %p [%zu, +%zu) ts %lu ms", p->id, w->name, id,
	     (void *)addr, off, n, ts);
	err = usvm_pagemap_populate_mm(p->pm, addr + off, addr + off + n, g.mm, ts);
	pm_put(p);
	count_ret(c, OP_chaos_populate, err);
	/* -EFAULT: the owner freed or unmapped it meanwhile. */
	if (err && err != -ENOMEM && err != -EBUSY && err != -EIO && err != -ENODEV &&
	    err != -EFAULT && (!g.opt_lenient || err == -EINVAL))
		fail(c, "usvm_pagemap_populate_mm(sim%u, %p [%zu, +%zu)): %d (%s)", p->id,
		     (void *)addr, off, n, err, usvm_strerror(err));
}

/* Unbind a populate-only pagemap (or, once, a device's) and add a fresh one. */
static void chaos_unbind(struct worker *c, int devpm)
{
	struct pmrec *cand[MAX_PMS], *p = NULL;
	int i, n = 0, err;

	pthread_mutex_lock(&g.pm_lock);
	for (i = 0; i < g.npms; i++)
		if (g.pms[i]->bound && (devpm ? g.pms[i]->users > 0
					      : !g.pms[i]->users && !g.pms[i]->devpm))
			cand[n++] = g.pms[i];
	if (n) {
		p = cand[rnd(c, (uint64_t)n)];
		p->bound = 0;
		p->inuse++;
	}
	pthread_mutex_unlock(&g.pm_lock);
	if (!p)
		return;
	c->cur = OP_chaos_unbind;
	c->cnt.ops[OP_chaos_unbind]++;
	note(c, "unbind sim%u%s", p->id, devpm ? " (a device's pagemap)" : "");
	err = usvm_pagemap_unbind(p->pm);
	pm_put(p);
	count_ret(c, OP_chaos_unbind, err);
	if (err)
		fail(c, "usvm_pagemap_unbind(sim%u): %d (%s)", p->id, err, usvm_strerror(err));
	pm_gc();
	if (!devpm)
		pm_new(0);
}

static void *chaos_main(void *arg)
{
	struct worker *c = arg;
	uint64_t next_unbind = now_ns() + 1000000000ull;
	uint64_t dev_unbind_at = g.t0 + (g.deadline - g.t0) / 5 * 4;
	int dev_unbound = 0;

	while (!atomic_load(&g.stop)) {
		uint64_t t = now_ns(), r;

		c->opno++;
		atomic_store(&c->progress_ns, t);
		if (t >= next_unbind) {
			chaos_unbind(c, 0);
			next_unbind = t + 1000000000ull;
			continue;
		}
		if (!dev_unbound && t >= dev_unbind_at) {
			/* Near the end: a device loses its memory and goes on from
			 * system memory. */
			chaos_unbind(c, 1);
			dev_unbound = 1;
			continue;
		}
		r = rnd(c, 100);
		if (r < 85) {
			chaos_populate(c);
		} else if (r < 90) {
			int bound;
			struct pmrec *p = pm_get(c, 1, &bound);
			long ev;

			if (!p)
				continue;
			c->cur = OP_chaos_evict_all;
			c->cnt.ops[OP_chaos_evict_all]++;
			note(c, "evict_all sim%u", p->id);
			ev = usvm_pagemap_evict(p->pm, g.mm, NULL);
			pm_put(p);
			count_ret(c, OP_chaos_evict_all, ev);
			if (ev < 0)
				fail(c, "usvm_pagemap_evict(sim%u, NULL): %ld (%s)", p->id, ev,
				     usvm_strerror((int)ev));
		} else {
			sleep_ms(1);
		}
	}
	atomic_store(&c->progress_ns, 0);
	return NULL;
}

static void join_or_fail(struct worker *w)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += STALL_S;
	if (pthread_timedjoin_np(w->th, NULL, &ts))
		fail(w, "thread did not stop within %d s of the end (hang)", STALL_S);
}

static void run_mt(uint64_t seed, double seconds, int nthreads, unsigned long nops)
{
	struct worker *main_w, *chaos;
	int i, per = MAX_OBJS / nthreads;

	if (per < 3)
		per = 3;
	printf("mt seed %llu: %d workers + chaos for %.1f s\n", (unsigned long long)seed,
	       nthreads, seconds);
	g.mt = 1;
	main_w = worker_new(MAX_WORKERS, seed, 0);
	snprintf(main_w->name, sizeof(main_w->name), "main");
	watch(main_w, 1);
	atomic_store(&main_w->progress_ns, now_ns());
	run_setup(main_w, seed);
	watch(main_w, 0);
	g.t0 = now_ns();
	g.deadline = g.t0 + (uint64_t)(seconds * 1e9);
	mt_nworkers = nthreads;
	for (i = 0; i < nthreads; i++) {
		mt_workers[i] = worker_new(i, seed, per);
		mt_workers[i]->max_ops = nops;
		watch(mt_workers[i], 1);
	}
	chaos = worker_new(-1, seed, 0);
	watch(chaos, 1);
	for (i = 0; i < nthreads; i++)
		CHECK(pthread_create(&mt_workers[i]->th, NULL, worker_main, mt_workers[i]) == 0,
		      "pthread_create");
	CHECK(pthread_create(&chaos->th, NULL, chaos_main, chaos) == 0, "pthread_create");
	while (now_ns() < g.deadline)
		sleep_ms(20);
	atomic_store(&g.stop, 1);
	for (i = 0; i < nthreads; i++)
		join_or_fail(mt_workers[i]);
	join_or_fail(chaos);
	watch(chaos, 0);
	watch(main_w, 1);
	atomic_store(&main_w->progress_ns, now_ns());
	run_teardown(main_w, mt_workers, nthreads);
	for (i = 0; i < nthreads; i++) {
		printf("  %s: %lu ops\n", mt_workers[i]->name, mt_workers[i]->opno);
		watch(mt_workers[i], 0);
		worker_free(mt_workers[i]);
	}
	printf("  chaos: %lu steps\nmt seed %llu: ok\n", chaos->opno, (unsigned long long)seed);
	watch(main_w, 0);
	worker_free(chaos);
	worker_free(main_w);
	g.mt = 0;
	g.seeds_run++;
}

/* ---- main ------------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr,
		"usage: model [--seed N] [--ops N] [--seconds S] [--mt] [--threads N] [--long S]\n"
		"             [--no-fork] [--no-preferred] [--skip OP[,OP...]] [--lenient]\n"
		"             [--inject SPEC] [-v]\n"
		"  no arguments: fixed seeds, then a short --mt run (CI, ~25 s)\n"
		"  --seed N      single-threaded: this seed only (deterministic)\n"
		"  --ops N       operations per seed (per worker with --mt)\n"
		"  --seconds S   time bound per seed (--mt: run length; default run: total)\n"
		"  --long S      cycle seeds for S seconds\n"
		"  --no-fork     no fork operations\n"
		"  --no-preferred  devices never get a preferred pagemap other than their own\n"
		"  --skip LIST   leave operations out, e.g. mremap_grow,munmap\n"
		"  --lenient     count undocumented errors of populate (and -EBUSY of device\n"
		"                atomics) instead of failing: gets past them to data checks\n"
		"  -v            print every operation\n"
		"  --inject SPEC USVM_FAULT_INJECT=SPEC, e.g. devmem_alloc:0.02,uffd:0.01\n");
	exit(2);
}

static void parse_skip(char *list)
{
	char *tok, *save = NULL;
	int op;

	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		for (op = 0; op < NOPS; op++)
			if (!strcmp(tok, op_names[op]))
				break;
		if (op == NOPS) {
			fprintf(stderr, "model: unknown operation '%s'; known:", tok);
			for (op = 0; op < NOPS; op++)
				fprintf(stderr, " %s", op_names[op]);
			fputc('\n', stderr);
			exit(2);
		}
		g.skip_mask |= 1ull << op;
	}
}

int main(int argc, char **argv)
{
	struct usvm_caps caps;
	unsigned int timeout;
	pthread_t wd;
	double budget;
	int i;

	g.opt_threads = 3;
	g.opt_ops = 3000;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		size_t used = strlen(g.repro);

		if (!strcmp(a, "--seed") && v) {
			g.opt_seed = strtoull(v, NULL, 0);
			g.have_seed = 1;
			i++;
		} else if (!strcmp(a, "--ops") && v) {
			g.opt_ops = strtoul(v, NULL, 0);
			g.have_ops = 1;
			i++;
		} else if (!strcmp(a, "--seconds") && v) {
			g.opt_seconds = atof(v);
			i++;
		} else if (!strcmp(a, "--long") && v) {
			g.opt_long = atof(v);
			i++;
		} else if (!strcmp(a, "--threads") && v) {
			g.opt_threads = atoi(v);
			if (g.opt_threads < 1 || g.opt_threads > MAX_WORKERS)
				usage();
			i++;
		} else if (!strcmp(a, "--mt")) {
			g.opt_mt = 1;
		} else if (!strcmp(a, "--no-fork")) {
			g.opt_nofork = 1;
			snprintf(g.repro + used, sizeof(g.repro) - used, " --no-fork");
		} else if (!strcmp(a, "--no-preferred")) {
			g.opt_nopref = 1;
			snprintf(g.repro + used, sizeof(g.repro) - used, " --no-preferred");
		} else if (!strcmp(a, "--lenient")) {
			g.opt_lenient = 1;
			snprintf(g.repro + used, sizeof(g.repro) - used, " --lenient");
		} else if (!strcmp(a, "--skip") && v) {
			char *copy = strdup(v);

			snprintf(g.repro + used, sizeof(g.repro) - used, " --skip %s", v);
			parse_skip(copy);
			free(copy);
			i++;
		} else if (!strcmp(a, "--inject") && v) {
			g.inject = v;
			snprintf(g.repro + used, sizeof(g.repro) - used, " --inject %s", v);
			i++;
		} else if (!strcmp(a, "-v")) {
			g.verbose = 1;
		} else {
			usage();
		}
	}
	if (g.inject)
		/* Read by usvm_mm_create. */
		setenv("USVM_FAULT_INJECT", g.inject, 1);

	if (g.opt_long > 0)
		timeout = (unsigned int)g.opt_long + 300;
	else if (g.have_seed || g.opt_mt)
		timeout = g.opt_seconds > 0 ? (unsigned int)g.opt_seconds + 300 : 1800;
	else
		timeout = 280; /* under ctest's 300 s */
	test_init("model", timeout);
	usvm_probe(&caps);
	/* Behind-the-back operations need their userfaultfd events. */
	if (!caps.feat_event_remove)
		g.skip_mask |= 1ull << OP_madvise;
	if (!caps.feat_event_unmap)
		g.skip_mask |= 1ull << OP_munmap;
	if (!caps.feat_event_remap)
		g.skip_mask |= (1ull << OP_mremap) | (1ull << OP_mremap_grow);
	CHECK(pthread_create(&wd, NULL, stall_watchdog, NULL) == 0, "pthread_create");
	pthread_detach(wd);
	if (g.inject)
		printf("fault injection: USVM_FAULT_INJECT=%s\n", g.inject);

	if (g.opt_long > 0) {
		uint64_t end = now_ns() + (uint64_t)(g.opt_long * 1e9);
		uint64_t seed = g.have_seed ? g.opt_seed : 1000;

		while (now_ns() < end) {
			double left = (double)(end - now_ns()) / 1e9;

			if (g.opt_mt)
				run_mt(seed, left < 20 ? left : 20, g.opt_threads, 0);
			else
				run_seed(seed, g.opt_ops, left);
			seed++;
		}
	} else if (g.opt_mt) {
		run_mt(g.have_seed ? g.opt_seed : 1, g.opt_seconds > 0 ? g.opt_seconds : 10,
		       g.opt_threads, g.have_ops ? g.opt_ops : 0);
	} else if (g.have_seed) {
		run_seed(g.opt_seed, g.opt_ops, g.opt_seconds);
	} else {
		/* CI: 8 seeds share 70% of the budget, --mt gets the rest.  Time
		 * bounds keep sanitizer builds (fewer ops per second) bounded. */
		static const uint64_t seeds[] = { 1, 2, 3, 4, 5, 6, 7, 8 };
		int n = (int)(sizeof(seeds) / sizeof(seeds[0]));

		budget = g.opt_seconds > 0 ? g.opt_seconds : 24;
		for (i = 0; i < n; i++)
			run_seed(seeds[i], g.have_ops ? g.opt_ops : 6000, budget * 0.7 / n);
		run_mt(1, budget * 0.3, g.opt_threads, 0);
	}
	print_summary(&g.total);
	printf("%lu runs ok\n", g.seeds_run);
	return 0;
}

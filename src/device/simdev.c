// SPDX-License-Identifier: MIT
/*
 * The simulated device (a richer lib/test_hmm.c "dmirror"): worker threads
 * run kernels whose every access goes through the device page table, which
 * is the GPU SVM range view (a range with a valid mapping translates its
 * pages; anything else is a device page fault).  Device faults are served by
 * the driver flow of the drm_gpusvm DOC example:
 *
 *   garbage collect -> find_or_insert(range) -> migration policy ->
 *   populate_mm(preferred pagemap) -> get_pages -> bind (retry on -EAGAIN)
 *
 * falling back to system pages when migration fails; atomics need the page
 * in this device's memory (devmem_only) and retry until they get it.
 *
 * Accesses to device pages run under the GPU SVM notifier lock (read), so a
 * migration, which invalidates first, never moves a page under a reader.
 * Accesses to system pages use the managed address with no lock held: they
 * behave exactly like CPU accesses (a page that moved meanwhile is faulted
 * back by the CPU fault path), and a page unmapped or protected behind our
 * back raises SIGSEGV, which is turned into a fatal device fault (-EFAULT,
 * or -EPERM for a write the CPU may not make), never a crash.  CPU
 * protections bind devices: see DOC: Devices and CPU protections in
 * device.h.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <inttypes.h>
#include <sys/mman.h>
#include "device.h"
#include "gpusvm/gpusvm.h"
#include "migrate/migrate.h"
#include "policy/thrash.h"

#define FAULT_RETRY_LIMIT 256
#define ATOMIC_DEVMEM_WAIT_NS 200000000ull
/* A failed migration is retried with a doubled timeslice (more time for the
 * pages to stay once they arrive), up to this. */
#define TIMESLICE_CAP_MS(dev) MAX_UL((dev)->timeslice_ms, 100ul)

/* Persistent launch workers (see DOC: launch). */
struct launch_pool {
	pthread_mutex_t lock;
	pthread_cond_t work_cv;      /* a launch was queued, or stopping */
	pthread_cond_t done_cv;      /* a pool thread left a launch */
	struct launch *head;         /* launches pool threads may still join */
	pthread_t tids[16];
	unsigned int nthreads, idle;
	int stopping;
	atomic_int started;
	uint64_t fork_gen;           /* usvm_fork_gen at create: threads live here */
	const char *dev_name;        /* for thread names */
};

struct usvm_device {
	char name[32];
	struct usvm_mm *mm;
	struct usvm_gpusvm svm;
	struct usvm_pagemap *pagemap;
	struct usvm_pagemap *preferred;
	enum usvm_migrate_policy policy;
	unsigned long timeslice_ms;
	unsigned int threads;
	int peer_access;
	struct launch_pool pool;
	struct {
		_Atomic uint64_t device_faults, fault_retries, fatal_faults;
		_Atomic uint64_t migrations_requested, migration_failures;
		_Atomic uint64_t bytes_mapped_system, bytes_mapped_device, bytes_mapped_peer;
		_Atomic uint64_t atomics, atomics_elsewhere, bytes_read, bytes_written;
		_Atomic uint64_t advice_in_place, density_prefetches, density_prefetch_bytes;
		_Atomic uint64_t dup_copies, dup_bytes;
	} st;
	unsigned int prefetch_threshold;  /* USVM_PREFETCH_THRESHOLD, percent; 0: off */
	struct thrash_stats thrash;
};

/* Mappings whose protections a launch's worker has looked up. */
#define KCTX_VMAS 4

struct usvm_kctx {
	struct usvm_device *dev;
	int fatal;                      /* 0, or the error of the first fatal device fault */
	struct dev_vma vmas[KCTX_VMAS]; /* protections looked up in this launch */
	unsigned int nvmas, vma_next;
	/* Memory usvm does not manage that a fault round granted in place. */
	uintptr_t inplace_start, inplace_end;
};

/* ---- guarding system-page accesses ------------------------------------- */

/* volatile: the compiler must not drop or sink the stores around memcpy
 * (it knows memcpy does not read dev_guard, but the signal handler does). */
static __thread sigjmp_buf *volatile dev_guard;
static struct sigaction old_segv, old_bus;
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;

static void guard_handler(int sig, siginfo_t *si, void *uc)
{
	struct sigaction *old = sig == SIGSEGV ? &old_segv : &old_bus;

	if (dev_guard)
		siglongjmp(*dev_guard, 1);
	/* Not a device access: behave as if we were not here. */
	if (old->sa_flags & SA_SIGINFO && old->sa_sigaction) {
		old->sa_sigaction(sig, si, uc);
		return;
	}
	if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN && old->sa_handler) {
		old->sa_handler(sig);
		return;
	}
	sigaction(sig, old, NULL); /* re-executes the access with the default action */
}

static void guard_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = guard_handler;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);
}

/*
 * A plain access (copy in or out, or fill) at a system page that reports
 * -EFAULT instead of crashing when nothing is mapped there any more.
 */
static int guarded_access(void *dst, const void *src, int c, size_t len)
{
	sigjmp_buf jb;

	if (sigsetjmp(jb, 1)) {
		dev_guard = NULL;
		return -EFAULT;
	}
	dev_guard = &jb;
	__asm__ volatile("" ::: "memory");
	if (src)
		memcpy(dst, src, len);
	else
		memset(dst, c, len);
	__asm__ volatile("" ::: "memory");
	dev_guard = NULL;
	return 0;
}

/* ---- CPU protections (DOC: Devices and CPU protections, device.h) -------- */

/* The mapping at @va as @ctx's launch saw it, or 0 if not looked up yet. */
static int vma_cached(struct usvm_kctx *ctx, uintptr_t va, struct dev_vma *out)
{
	unsigned int i;

	for (i = 0; ctx && i < ctx->nvmas; i++) {
		if (ctx->vmas[i].start <= va && va < ctx->vmas[i].end) {
			*out = ctx->vmas[i];
			return 1;
		}
	}
	return 0;
}

/*
 * The mapping at @va: from @ctx's launch if it looked it up already (a
 * launch sees one protection per mapping), else looked up now and kept.
 * When the lookup itself fails (no /proc), the page counts as read-write:
 * the MMU still guards system pages.  Return 0 or -ENOENT (nothing mapped).
 */
static int ctx_vma(struct usvm_kctx *ctx, uintptr_t va, struct dev_vma *out)
{
	int err;

	if (vma_cached(ctx, va, out))
		return 0;
	err = dev_vma_query(va, out);
	if (err == -ENOENT)
		return err;
	if (err)
		*out = (struct dev_vma){ .start = ALIGN_DOWN_UL(va, USVM_PAGE_SIZE),
					 .end = ALIGN_DOWN_UL(va, USVM_PAGE_SIZE) + USVM_PAGE_SIZE,
					 .prot = PROT_READ | PROT_WRITE };
	if (ctx) {
		ctx->vmas[ctx->vma_next] = *out;
		ctx->vma_next = (ctx->vma_next + 1) % KCTX_VMAS;
		if (ctx->nvmas < KCTX_VMAS)
			ctx->nvmas++;
	}
	return 0;
}

/* What @v lets a device do: 0, -EFAULT (no reading) or -EPERM (no writing). */
static int vma_allows(const struct dev_vma *v, int write)
{
	if (!(v->prot & PROT_READ))
		return -EFAULT; /* hmm_range_fault: no VM_READ, no access at all */
	return write && !(v->prot & PROT_WRITE) ? -EPERM : 0;
}

/* May a device access @va (for writing if @write)?  0, -EFAULT or -EPERM. */
static int prot_check(struct usvm_kctx *ctx, uintptr_t va, int write)
{
	struct dev_vma v;

	return ctx_vma(ctx, va, &v) ? -EFAULT : vma_allows(&v, write);
}

/* The MMU refused an access at @va: why, as the device reports it. */
static int refused(uintptr_t va, int write)
{
	struct dev_vma v;

	if (write && !dev_vma_query(va, &v) && (v.prot & PROT_READ) && !(v.prot & PROT_WRITE))
		return -EPERM;
	return -EFAULT;
}

/* Account a fatal device fault (@err) of @ctx's access at @va. */
static int fatal(struct usvm_kctx *ctx, uintptr_t va, int err)
{
	STAT_ADD(ctx->dev->st.fatal_faults, 1);
	if (!ctx->fatal)
		ctx->fatal = err;
	usvm_log("%s: fatal device fault at %#lx: %s", ctx->dev->name, (unsigned long)va,
		 err == -EPERM ? "write to memory the CPU may not write" :
		 err == -EFAULT ? "nothing mapped there, or not readable" : usvm_strerror(err));
	return err;
}

/* The bounds of the live region of @mm holding @va: 0, or -EFAULT. */
static int live_region(struct usvm_mm *mm, uintptr_t va, uintptr_t *start, uintptr_t *end)
{
	struct usvm_region *r;
	int err = -EFAULT;

	usvm_rwlock_rdlock(&mm->regions_lock);
	r = mm_region_find(mm, va);
	if (r && !atomic_load(&r->dying) && !atomic_load(&r->gone)) {
		*start = r->start;
		*end = r->end;
		err = 0;
	}
	usvm_rwlock_unlock(&mm->regions_lock);
	return err;
}

/* Is @va in a live region of @mm?  Its end if so, else 0. */
static uintptr_t managed_until(struct usvm_mm *mm, uintptr_t va)
{
	uintptr_t start, end;

	return live_region(mm, va, &start, &end) ? 0 : end;
}

/* The 2 MiB block of @va clipped to its live region of @mm: 0, or -EFAULT. */
static int block_in_region(struct usvm_mm *mm, uintptr_t va, uintptr_t *start, uintptr_t *end)
{
	uintptr_t block = ALIGN_DOWN_UL(va, USVM_BLOCK_SIZE);

	if (live_region(mm, va, start, end))
		return -EFAULT;
	*start = MAX_UL(*start, block);
	*end = MIN_UL(*end, block + USVM_BLOCK_SIZE);
	return 0;
}

/* ---- the fault flow ------------------------------------------------------- */

/* Device memory to migrate into, or NULL (none, or its pagemap is unbound:
 * the device then works on system memory, atomics included). */
static struct usvm_pagemap *dev_memory(struct usvm_device *dev)
{
	struct usvm_pagemap *pm = dev->preferred;

	return pm && !usvm_pagemap_unbound(pm) ? pm : NULL;
}

/* Where atomics must find their page: this device's own memory (as Xe's
 * devmem_only faults need the local VRAM), or NULL: system atomics. */
static struct usvm_pagemap *atomic_memory(struct usvm_device *dev)
{
	struct usvm_pagemap *pm = dev->pagemap;

	return pm && !usvm_pagemap_unbound(pm) ? pm : NULL;
}

/* Does every page of @r already sit in @target?  notifier_lock held. */
static int range_in(struct usvm_device *dev, struct usvm_gpusvm_range *r,
		    struct usvm_pagemap *target)
{
	uint32_t want = target == dev->pagemap ? USVM_INTERCONNECT_DRIVER : USVM_INTERCONNECT_PEER;
	size_t i, n = (r->end - r->start) >> USVM_PAGE_SHIFT;

	if (!target)
		return 1; /* no device memory: system pages are as good as it gets */
	if (!usvm_gpusvm_range_pages_valid(r))
		return 0;
	for (i = 0; i < n; i++)
		if (r->addrs[i].proto != want)
			return 0;
	return 1;
}

/* Is the page at @va usable for this access?  notifier_lock held. */
static int entry_ok(struct usvm_device *dev, struct usvm_gpusvm_range *r, uintptr_t va,
		    int atomic)
{
	const struct usvm_device_addr *e;

	if (!r || !usvm_gpusvm_range_pages_valid(r))
		return 0;
	e = &r->addrs[(va - r->start) >> USVM_PAGE_SHIFT];
	/* Atomics need this device's memory (unless it has none: system atomics). */
	return !atomic || !atomic_memory(dev) || e->proto == USVM_INTERCONNECT_DRIVER;
}

/* One fault's retry state. */
struct fault_state {
	int atomic;
	int migrate_tries;              /* populate attempts left */
	unsigned long timeslice;        /* doubled after a failed migration */
};

static int needs_migration(struct usvm_device *dev, struct usvm_gpusvm_range *r, int atomic,
			   struct usvm_pagemap *target)
{
	if (!target || !r->migrate_devmem)
		return 0;
	if (atomic)
		return 1;
	switch (dev->policy) {
	case USVM_POLICY_ALWAYS: return 1;
	case USVM_POLICY_ONCE: return !r->skip_migrate;
	default: return 0;
	}
}

/*
 * Where a non-atomic fault at @va migrates, per the program's advice
 * (usvm_advise; CUDA's cudaMemAdvise): to a preferred location this device
 * can map (system memory: nowhere); else nowhere if the device is in the
 * accessed-by set (it maps the pages where they are); else to the device's
 * preferred pagemap.  No block lock may be held (mm_advice_get).
 * Return: the target with a reference (usvm_pagemap_put), or NULL.
 */
static struct usvm_pagemap *advised_target(struct usvm_device *dev, uintptr_t va)
{
	struct usvm_pagemap *target = dev_memory(dev), *p;
	struct mm_advice a;
	unsigned int i;

	mm_advice_get(dev->mm, va, &a);
	p = (struct usvm_pagemap *)a.preferred;
	if (p == MM_LOC_SYSTEM)
		target = NULL;
	else if (p && (p == dev->pagemap || dev->peer_access))
		target = usvm_pagemap_unbound(p) ? NULL : p;
	for (i = 0; !p && i < a.naccessed; i++)
		if (a.accessed_by[i] == dev)
			target = NULL;
	if (!target && dev_memory(dev))
		STAT_ADD(dev->st.advice_in_place, 1);
	usvm_pagemap_get(target);
	mm_advice_put(&a);
	return target;
}

/*
 * Ask the thrashing tracker (policy/thrash.h) before migrating @r: 0 when
 * its block is pinned (map in place), else 1; a throttled block's
 * migration gets a longer timeslice, so its pages stay put a while.
 */
static int thrash_allows(struct usvm_device *dev, struct usvm_gpusvm_range *r,
			 struct fault_state *f)
{
	switch (thrash_check(dev->mm, ALIGN_DOWN_UL(r->start, USVM_BLOCK_SIZE),
			     r->end - r->start, usvm_now_ns(), &dev->thrash)) {
	case THRASH_PINNED:
		return 0;
	case THRASH_THROTTLE:
		f->timeslice = MAX_UL(f->timeslice, thrash_throttle_ms());
		return 1;
	default:
		return 1;
	}
}

static int range_valid_for(struct usvm_device *dev, struct usvm_gpusvm_range *r, uintptr_t va,
			   int atomic)
{
	int valid;

	pthread_rwlock_rdlock(&dev->svm.notifier_lock);
	valid = entry_ok(dev, r, va, atomic);
	pthread_rwlock_unlock(&dev->svm.notifier_lock);
	return valid;
}

/*
 * Density prefetch (UVM's tree prefetch, one level): when this range and
 * what already sits in @target would make prefetch_threshold percent of
 * its 2 MiB block, migrate the whole block now, so the next faults there
 * find their pages.  Return 1 when @r's pages are in @target now (the block
 * was populated, or an earlier prefetch brought them), 0 when the caller
 * should populate just @r.
 */
static int density_prefetch(struct usvm_device *dev, struct usvm_gpusvm_range *r,
			    struct usvm_pagemap *target, unsigned long timeslice)
{
	uintptr_t start, end;
	long before, after;

	if (!dev->prefetch_threshold || r->end - r->start >= USVM_BLOCK_SIZE ||
	    block_in_region(dev->mm, r->start, &start, &end) || end - start <= r->end - r->start)
		return 0;
	/* A range whose pages an earlier prefetch brought: nothing to move. */
	if (usvm_resident_bytes(dev->mm, (void *)r->start, r->end - r->start, target) ==
	    (long)(r->end - r->start))
		return 1;
	before = usvm_resident_bytes(dev->mm, (void *)start, end - start, target);
	if (before < 0 || ((uint64_t)before + (r->end - r->start)) * 100 <
			  (uint64_t)dev->prefetch_threshold * (end - start))
		return 0;
	if (usvm_pagemap_populate_mm(target, (void *)start, (void *)end, dev->mm, timeslice))
		return 0; /* best effort: fall back to the range alone */
	after = usvm_resident_bytes(dev->mm, (void *)start, end - start, target);
	if (after > before + (long)(r->end - r->start)) {
		STAT_ADD(dev->st.density_prefetches, 1);
		STAT_ADD(dev->st.density_prefetch_bytes,
			 (uint64_t)(after - before) - (r->end - r->start));
	}
	return 1;
}

/*
 * The migration policy (drm_gpusvm DOC example): populate the range into
 * the target pagemap if the policy wants it there and it is not there yet.
 * Strict mode (USVM_STRICT) reports the migration, and at level 2 refuses it.
 * Returns 1 when the caller should start over (an atomic whose migration
 * failed), -EACCES (refused: a fatal device fault), else 0: a failed
 * migration falls back to mapping system pages.
 */
static int maybe_migrate(struct usvm_device *dev, struct usvm_gpusvm_range *r,
			 struct fault_state *f, uintptr_t va)
{
	struct usvm_pagemap *target;
	int in_place, err, again = 0;

	if (f->migrate_tries <= 0)
		return 0;
	if (f->atomic) {
		target = atomic_memory(dev);
		usvm_pagemap_get(target);
	} else {
		target = advised_target(dev, va);
	}
	if (!needs_migration(dev, r, f->atomic, target))
		goto out_put;
	pthread_rwlock_rdlock(&dev->svm.notifier_lock);
	in_place = range_in(dev, r, target);
	pthread_rwlock_unlock(&dev->svm.notifier_lock);
	if (in_place || (!f->atomic && !thrash_allows(dev, r, f)))
		goto out_put;
	if (usvm_strict()) {
		/* Atomics need the device's memory: reported, never refused. */
		int refuse = usvm_strict() > 1 && !f->atomic;

		usvm_strict_report("implicit migration -> %s of [%#lx, %#lx) (%lu KiB): a "
				   "device %s fault of %s at %#lx%s", usvm_pagemap_name(target),
				   (unsigned long)r->start, (unsigned long)r->end,
				   (unsigned long)((r->end - r->start) >> 10),
				   f->atomic ? "atomic" : "access", dev->name, (unsigned long)va,
				   refuse ? "; refused (USVM_STRICT=2)" : "");
		if (refuse) {
			again = -EACCES;
			goto out_put;
		}
	}
	f->migrate_tries--;
	STAT_ADD(dev->st.migrations_requested, 1);
	if (!f->atomic && density_prefetch(dev, r, target, f->timeslice))
		goto out_put; /* the whole block is there now */
	err = usvm_pagemap_populate_mm(target, (void *)r->start, (void *)r->end, dev->mm,
				       f->timeslice);
	r->skip_migrate = 1;
	if (err) {
		/* CPU mappings may have changed, or memory is short: retry with a
		 * longer timeslice; without devmem_only we fall back to system. */
		STAT_ADD(dev->st.migration_failures, 1);
		f->timeslice = MIN_UL(f->timeslice * 2, TIMESLICE_CAP_MS(dev));
		again = f->atomic && f->migrate_tries > 0;
	}
out_put:
	usvm_pagemap_put(target);
	return again;
}

/*
 * Read duplication (DOC: Read duplication, src/mm/advise.c): give @r a
 * read-only copy instead of migrating it.  Its pages come home and are made
 * present, then write-protected, then copied; the copy is published only
 * if nothing invalidated the range meanwhile (a write collapses copies by
 * invalidating).  driver_lock held.  Return: 0 (the range has a copy), or
 * -errno: the caller maps or migrates it as usual.
 */
static int make_dup(struct usvm_device *dev, struct usvm_gpusvm_range *r)
{
	size_t len = r->end - r->start;
	unsigned long seq;
	void *buf;
	int err;

	pthread_rwlock_rdlock(&dev->svm.notifier_lock);
	err = r->dup ? 0 : -ENOENT;
	pthread_rwlock_unlock(&dev->svm.notifier_lock);
	if (!err)
		return 0;
	err = mm_range_to_ram(dev->mm, r->start, r->end);
	if (!err && madvise((void *)r->start, len, MADV_POPULATE_READ))
		err = -errno;
	if (err)
		return err;
	pthread_rwlock_rdlock(&dev->svm.notifier_lock);
	seq = r->notifier->seq;
	pthread_rwlock_unlock(&dev->svm.notifier_lock);
	err = mm_write_protect(dev->mm, r->start, r->end);
	buf = err ? NULL : malloc(len);
	if (!err && !buf)
		err = -ENOMEM;
	if (!err)
		err = guarded_access(buf, (void *)r->start, 0, len);
	if (err) {
		free(buf);
		return err;
	}
	pthread_rwlock_wrlock(&dev->svm.notifier_lock);
	if (r->notifier->seq == seq && !r->unmapped && !r->dup) {
		r->dup = buf;
		buf = NULL;
	}
	pthread_rwlock_unlock(&dev->svm.notifier_lock);
	if (buf) {
		free(buf);
		return -EAGAIN; /* written or moved meanwhile */
	}
	STAT_ADD(dev->st.dup_copies, 1);
	STAT_ADD(dev->st.dup_bytes, len);
	return 0;
}

/* get_pages and bind.  0 (bound), 1 (start over) or a fatal -errno. */
static int map_range(struct usvm_device *dev, struct usvm_gpusvm_range *r, struct fault_state *f)
{
	struct usvm_gpusvm_ctx ctx = {
		.device = dev, .owner = dev->pagemap, .peer_access = dev->peer_access,
		.devmem_only = f->atomic && atomic_memory(dev) != NULL,
	};
	int err = usvm_gpusvm_range_get_pages(&dev->svm, r, &ctx);

	switch (err) {
	case 0:
		STAT_ADD(dev->st.bytes_mapped_system, ctx.mapped_system);
		STAT_ADD(dev->st.bytes_mapped_device, ctx.mapped_device);
		STAT_ADD(dev->st.bytes_mapped_peer, ctx.mapped_peer);
		/* Bind: the access re-checks validity under the notifier lock;
		 * an invalidation in between makes it fault again. */
		return 0;
	case -EOPNOTSUPP:
		usvm_gpusvm_range_evict(&dev->svm, r);
		return 1;
	case -EBUSY:
	case -EAGAIN:
		return 1;
	case -EFAULT:
		if (ctx.devmem_only) {
			/* Atomics retry until the page is in device memory. */
			f->migrate_tries = 3;
			usleep(50);
			return 1;
		}
		/* Unmapped meanwhile: collect it, find_or_insert then decides. */
		pthread_rwlock_rdlock(&dev->svm.notifier_lock);
		err = r->unmapped ? 1 : -EFAULT;
		pthread_rwlock_unlock(&dev->svm.notifier_lock);
		return err;
	default:
		return err;
	}
}

/*
 * Serve a device fault at @va for @ctx (NULL: a host-side prefetch):
 * garbage collect, find or insert the range, check the CPU protections
 * (before anything moves), migrate per policy, get_pages, bind; retry on
 * races.  Return 0 (retry the access) or a negative errno (fatal for the
 * access: -EPERM for a write the CPU may not make).
 */
static int device_fault(struct usvm_device *dev, struct usvm_kctx *ctx, uintptr_t va,
			int atomic, int write)
{
	struct fault_state f = { atomic, atomic ? 3 : 1, dev->timeslice_ms };
	struct usvm_gpusvm *svm = &dev->svm;
	uint64_t t0 = usvm_now_ns();
	int loops, err = -EBUSY, checked = 0;

	STAT_ADD(dev->st.device_faults, 1);
	pthread_mutex_lock(&svm->driver_lock);
	for (loops = 0; loops < FAULT_RETRY_LIMIT; loops++) {
		struct usvm_gpusvm_range *r;

		if (loops)
			STAT_ADD(dev->st.fault_retries, 1);
		usvm_gpusvm_garbage_collect(svm);
		r = usvm_gpusvm_range_find_or_insert(svm, va, &err);
		if (!r && err == -EAGAIN)
			continue;
		if (!r)
			break;
		/* Managed memory: hmm_range_fault's protection check. */
		err = checked ? 0 : prot_check(ctx, va, write || atomic);
		checked = 1;
		if (err)
			break;
		if (range_valid_for(dev, r, va, atomic)) {
			err = 0; /* another thread served it already */
			break;
		}
		if (ctx && !write && !atomic && mm_read_mostly(dev->mm, va) && !make_dup(dev, r)) {
			err = 0; /* the access reads the copy */
			break;
		}
		err = maybe_migrate(dev, r, &f, va);
		if (err < 0)
			break;
		if (err) {
			err = -EBUSY; /* what is left if the retries run out */
			continue;
		}
		err = map_range(dev, r, &f);
		if (err != 1)
			break;
		err = -EBUSY;
	}
	pthread_mutex_unlock(&svm->driver_lock);
	usvm_event(USVM_EV_DEVICE_FAULT, USVM_CAUSE_NONE,
		   ALIGN_DOWN_UL(va, USVM_PAGE_SIZE), USVM_PAGE_SIZE, dev->name, NULL, t0,
		   usvm_now_ns() - t0, err);
	return err;
}

/* ---- accesses ----------------------------------------------------------------- */

enum access_op { OP_READ, OP_WRITE, OP_SET, OP_ADD, OP_CMPXCHG };

struct access {
	enum access_op op;
	void *buf;          /* read destination / write source */
	int c;              /* memset value */
	uint64_t v, expected, *old;
	int nofault;        /* stop at a missing translation (-ENOENT), no fault */
	size_t done;        /* bytes accessed so far */
};

static int op_writes(const struct access *a)
{
	return a->op != OP_READ;
}

static int do_atomic(void *p, struct access *a)
{
	uint64_t *q = p;

	if ((uintptr_t)q & 7)
		return -EINVAL;
	if (a->op == OP_ADD) {
		uint64_t o = __atomic_fetch_add(q, a->v, __ATOMIC_SEQ_CST);

		if (a->old)
			*a->old = o;
	} else {
		uint64_t e = a->expected;

		__atomic_compare_exchange_n(q, &e, a->v, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
		if (a->old)
			*a->old = e;
	}
	return 0;
}

static int do_plain(void *p, size_t len, struct access *a, int guarded)
{
	void *dst = a->op == OP_READ ? a->buf : p;
	const void *src = a->op == OP_READ ? p : a->op == OP_WRITE ? a->buf : NULL;

	if (a->op != OP_READ && a->op != OP_WRITE && a->op != OP_SET)
		return -EINVAL;
	if (guarded)
		return guarded_access(dst, src, a->c, len);
	if (src)
		memcpy(dst, src, len);
	else
		memset(dst, a->c, len);
	return 0;
}

/* An atomic at a system page, reporting -EFAULT instead of crashing when
 * nothing is mapped there any more. */
static int guarded_atomic(void *p, struct access *a)
{
	sigjmp_buf jb;
	int err;

	if (sigsetjmp(jb, 1)) {
		dev_guard = NULL;
		return -EFAULT;
	}
	dev_guard = &jb;
	__asm__ volatile("" ::: "memory");
	err = do_atomic(p, a);
	__asm__ volatile("" ::: "memory");
	dev_guard = NULL;
	return err;
}

/* An access at system page @va through the CPU mapping (the MMU checks it). */
static int access_cpu(struct usvm_kctx *ctx, uintptr_t va, size_t len, struct access *a)
{
	int atomic = a->op == OP_ADD || a->op == OP_CMPXCHG;
	int err = atomic ? guarded_atomic((void *)va, a) : do_plain((void *)va, len, a, 1);

	return err == -EFAULT ? fatal(ctx, va, refused(va, op_writes(a))) : err;
}

/*
 * The access itself, through a valid translation @e; called with the
 * notifier lock held for reading, which it drops.  Device memory is
 * accessed under the lock (it cannot move meanwhile), once the protections
 * @v of its mapping allow it; a system page through the managed address,
 * behaving as a CPU access: the MMU applies the protections of the moment,
 * and a fault there means the mapping is gone (munmap behind our back) or
 * forbids the access.
 */
static int access_mapped(struct usvm_kctx *ctx, struct usvm_gpusvm *svm,
			 struct usvm_device_addr e, const struct dev_vma *v, uintptr_t va,
			 size_t len, struct access *a)
{
	int atomic = a->op == OP_ADD || a->op == OP_CMPXCHG, err;

	if (e.proto != USVM_INTERCONNECT_SYSTEM) {
		void *p = (void *)(e.addr + (va & (USVM_PAGE_SIZE - 1)));

		err = vma_allows(v, op_writes(a));
		if (!err)
			err = atomic ? do_atomic(p, a) : do_plain(p, len, a, 0);
		pthread_rwlock_unlock(&svm->notifier_lock);
		return err == -EFAULT || err == -EPERM ? fatal(ctx, va, err) : err;
	}
	pthread_rwlock_unlock(&svm->notifier_lock);
	return access_cpu(ctx, va, len, a);
}

/* Memory usvm does not manage that a fault round granted @ctx in place? */
static int granted_in_place(struct usvm_kctx *ctx, uintptr_t va)
{
	return va >= ctx->inplace_start && va < ctx->inplace_end &&
	       !managed_until(ctx->dev->mm, va);
}

/*
 * Take the translation of @va if it is valid for @a.  A plain read may use
 * the range's read-only copy (read duplication), which then reads as device
 * memory.  Return 1 with the notifier lock held for reading and *@e set; 0
 * (no valid translation, lock dropped); -EAGAIN (the protections of a
 * device-resident page had to be looked up first, lock dropped: look
 * again); or a fatal -errno.
 */
static int translate(struct usvm_kctx *ctx, uintptr_t va, int devmem, int reading,
		     struct usvm_device_addr *e, struct dev_vma *v)
{
	struct usvm_gpusvm *svm = &ctx->dev->svm;
	struct usvm_gpusvm_range *r;

	mm_events_settle(ctx->dev->mm);
	pthread_rwlock_rdlock(&svm->notifier_lock);
	r = usvm_gpusvm_range_find(svm, va);
	if (r && r->dup && reading && !devmem && !entry_ok(ctx->dev, r, va, devmem)) {
		uintptr_t page = ALIGN_DOWN_UL(va, USVM_PAGE_SIZE);

		*e = (struct usvm_device_addr){ .addr = (uintptr_t)r->dup + (page - r->start),
						.proto = USVM_INTERCONNECT_DRIVER };
	} else if (!entry_ok(ctx->dev, r, va, devmem)) {
		pthread_rwlock_unlock(&svm->notifier_lock);
		return 0;
	} else {
		*e = r->addrs[(va - r->start) >> USVM_PAGE_SHIFT];
	}
	if (e->proto == USVM_INTERCONNECT_SYSTEM || vma_cached(ctx, va, v))
		return 1;
	/* Device memory: the CPU mapping does not hold it, so look up what
	 * the CPU may do there, once per launch, without the lock. */
	pthread_rwlock_unlock(&svm->notifier_lock);
	return ctx_vma(ctx, va, v) ? fatal(ctx, va, -EFAULT) : -EAGAIN;
}

/*
 * One access within one page, with device faults as needed.  Atomics first
 * want the page in this device's memory; if other devices or the CPU keep
 * taking it away for longer than ATOMIC_DEVMEM_WAIT_NS, the atomic runs
 * where the page is (system or peer memory, as a device with PCIe or link
 * atomics would) instead of starving.
 */
static int access_page(struct usvm_kctx *ctx, uintptr_t va, size_t len, struct access *a)
{
	struct usvm_device *dev = ctx->dev;
	int devmem = a->op == OP_ADD || a->op == OP_CMPXCHG;
	uint64_t since = 0;
	int tries;

	for (tries = 0;; tries++) {
		struct usvm_device_addr e;
		struct dev_vma v;
		int err = translate(ctx, va, devmem, a->op == OP_READ, &e, &v);

		if (err == 1)
			return access_mapped(ctx, &dev->svm, e, &v, va, len, a);
		if (err == -EAGAIN)
			continue;
		if (err)
			return err;
		if (granted_in_place(ctx, va))
			return access_cpu(ctx, va, len, a);
		if (a->nofault)
			return -ENOENT;
		err = device_fault(dev, ctx, va, devmem, op_writes(a));
		if (devmem && (err == -EBUSY || (!err && tries > FAULT_RETRY_LIMIT / 4))) {
			if (!since)
				since = usvm_now_ns();
			if (usvm_now_ns() - since > ATOMIC_DEVMEM_WAIT_NS) {
				devmem = 0;
				tries = 0;
				STAT_ADD(dev->st.atomics_elsewhere, 1);
			} else if (tries > FAULT_RETRY_LIMIT / 4) {
				usleep(100);
			}
			continue;
		}
		if (err || tries > FAULT_RETRY_LIMIT)
			return fatal(ctx, va, err ? err : -EBUSY);
	}
}

static int access_span(struct usvm_kctx *ctx, uintptr_t va, size_t len, struct access *a)
{
	while (len) {
		size_t chunk = MIN_UL(len, USVM_PAGE_SIZE - (va & (USVM_PAGE_SIZE - 1)));
		int err = access_page(ctx, va, chunk, a);

		if (err)
			return err;
		va += chunk;
		len -= chunk;
		a->done += chunk;
		if (a->buf)
			a->buf = (char *)a->buf + chunk;
	}
	return 0;
}

int usvm_dev_read(struct usvm_kctx *ctx, const void *addr, void *buf, size_t len)
{
	struct access a = { .op = OP_READ, .buf = buf };

	STAT_ADD(ctx->dev->st.bytes_read, len);
	return access_span(ctx, (uintptr_t)addr, len, &a);
}

int usvm_dev_write(struct usvm_kctx *ctx, void *addr, const void *buf, size_t len)
{
	struct access a = { .op = OP_WRITE, .buf = (void *)buf };

	STAT_ADD(ctx->dev->st.bytes_written, len);
	return access_span(ctx, (uintptr_t)addr, len, &a);
}

int usvm_dev_memset(struct usvm_kctx *ctx, void *addr, int c, size_t len)
{
	struct access a = { .op = OP_SET, .c = c };

	STAT_ADD(ctx->dev->st.bytes_written, len);
	return access_span(ctx, (uintptr_t)addr, len, &a);
}

int usvm_dev_atomic_add_u64(struct usvm_kctx *ctx, uint64_t *addr, uint64_t v, uint64_t *old)
{
	struct access a = { .op = OP_ADD, .v = v, .old = old };

	STAT_ADD(ctx->dev->st.atomics, 1);
	return access_page(ctx, (uintptr_t)addr, sizeof(*addr), &a);
}

int usvm_dev_atomic_cmpxchg_u64(struct usvm_kctx *ctx, uint64_t *addr, uint64_t expected,
				uint64_t desired, uint64_t *old)
{
	struct access a = { .op = OP_CMPXCHG, .v = desired, .expected = expected, .old = old };

	STAT_ADD(ctx->dev->st.atomics, 1);
	return access_page(ctx, (uintptr_t)addr, sizeof(*addr), &a);
}

/* ---- for the layers above (device.h) ------------------------------------------- */

int dev_read_mapped(struct usvm_kctx *ctx, const void *addr, void *buf, size_t len,
		    size_t *done)
{
	struct access a = { .op = OP_READ, .buf = buf, .nofault = 1 };
	int err = access_span(ctx, (uintptr_t)addr, len, &a);

	STAT_ADD(ctx->dev->st.bytes_read, a.done);
	*done = a.done;
	return err;
}

int dev_write_mapped(struct usvm_kctx *ctx, void *addr, const void *buf, size_t len,
		     size_t *done)
{
	struct access a = { .op = OP_WRITE, .buf = (void *)buf, .nofault = 1 };
	int err = access_span(ctx, (uintptr_t)addr, len, &a);

	STAT_ADD(ctx->dev->st.bytes_written, a.done);
	*done = a.done;
	return err;
}

/*
 * Give @ctx's device a valid translation of managed page @va, unless it has
 * one; *@until is set to the end of the range that now translates it.
 */
static int map_managed(struct usvm_kctx *ctx, uintptr_t va, int write, uintptr_t *until)
{
	struct usvm_device *dev = ctx->dev;
	struct usvm_gpusvm_range *r;
	int ok, err;

	pthread_rwlock_rdlock(&dev->svm.notifier_lock);
	r = usvm_gpusvm_range_find(&dev->svm, va);
	ok = entry_ok(dev, r, va, 0);
	*until = ok ? r->end : va + USVM_PAGE_SIZE;
	pthread_rwlock_unlock(&dev->svm.notifier_lock);
	if (ok)
		return 0;
	err = device_fault(dev, ctx, va, 0, write);
	if (err)
		return err;
	/* Invalidated again already: the access will fault once more. */
	pthread_rwlock_rdlock(&dev->svm.notifier_lock);
	r = usvm_gpusvm_range_find(&dev->svm, va);
	if (entry_ok(dev, r, va, 0))
		*until = r->end;
	pthread_rwlock_unlock(&dev->svm.notifier_lock);
	return 0;
}

int dev_fault_range(struct usvm_kctx *ctx, void *addr, size_t len, int write)
{
	uintptr_t start = (uintptr_t)addr, end = start + len, va, mapped = 0;
	int err;

	if ((start | len) & (USVM_PAGE_SIZE - 1) || end < start)
		return -EINVAL;
	/* Protections first, page by page (hmm_range_fault's order): an
	 * error leaves the pages before it mapped, as the kernel does. */
	for (va = start; va < end; va += USVM_PAGE_SIZE) {
		err = prot_check(ctx, va, write);
		if (!err && va >= mapped && managed_until(ctx->dev->mm, va))
			err = map_managed(ctx, va, write, &mapped);
		if (err)
			return fatal(ctx, va, err);
	}
	/* Whatever in the range usvm does not manage is reached in place. */
	ctx->inplace_start = start;
	ctx->inplace_end = end;
	return 0;
}

int dev_guarded_copy(void *dst, const void *src, size_t len)
{
	if (!len)
		return 0;
	if (!dst || !src)
		return -EFAULT; /* page 0 is never mapped (and NULL src means memset) */
	pthread_once(&guard_once, guard_install);
	return guarded_access(dst, src, 0, len);
}

struct usvm_device *usvm_kctx_device(struct usvm_kctx *ctx)
{
	return ctx->dev;
}

/* ---- launch ------------------------------------------------------------------- */

/*
 * DOC: launch
 *
 * A device keeps threads - 1 worker threads for its whole life (started by
 * the first launch with more than one work item); the launching thread is
 * worker 0, so a launch always makes progress even when every pool thread
 * is busy in another launch or blocked in a fault.  A launch is queued, idle
 * pool threads join it and take work items until none is left; the caller
 * waits only for the pool threads that actually joined.  An empty launch
 * costs a queue insert and, at most, one wakeup, not a thread creation.
 */
struct launch {
	struct usvm_device *dev;
	usvm_kernel_fn fn;
	void *arg;
	unsigned long n;
	atomic_ulong next;
	atomic_int stop;
	atomic_int result;
	struct launch *qnext;
	unsigned int helpers;   /* pool threads that may still join; pool lock */
	unsigned int active;    /* pool threads inside it; pool lock */
	int queued;             /* on the pool's queue; pool lock */
};

/* Run work items of @l until none is left or one failed. */
static void launch_run(struct launch *l)
{
	struct usvm_kctx ctx = { .dev = l->dev };

	while (!atomic_load(&l->stop)) {
		unsigned long i = atomic_fetch_add(&l->next, 1);
		int ret;

		if (i >= l->n)
			break;
		ret = l->fn(&ctx, i, l->arg);
		if (ctx.fatal && !ret)
			ret = ctx.fatal; /* a fatal device fault the kernel ignored */
		if (ret) {
			int zero = 0;

			atomic_compare_exchange_strong(&l->result, &zero, ret);
			atomic_store(&l->stop, 1);
		}
	}
}

/* Take @l off the queue; pool lock held. */
static void launch_dequeue(struct launch_pool *p, struct launch *l)
{
	struct launch **pp;

	if (!l->queued)
		return;
	for (pp = &p->head; *pp != l; pp = &(*pp)->qnext)
		;
	*pp = l->qnext;
	l->queued = 0;
}

static void *pool_main(void *arg)
{
	struct launch_pool *p = arg;
	struct launch *l;
	char name[16];

	snprintf(name, sizeof(name), "%.12s-k", p->dev_name);
	pthread_setname_np(pthread_self(), name);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->head && !p->stopping) {
			p->idle++;
			pthread_cond_wait(&p->work_cv, &p->lock);
			p->idle--;
		}
		if (p->stopping)
			break;
		l = p->head;
		l->active++;
		if (!--l->helpers)
			launch_dequeue(p, l); /* as many helpers as it asked for */
		pthread_mutex_unlock(&p->lock);
		launch_run(l);
		pthread_mutex_lock(&p->lock);
		launch_dequeue(p, l); /* no work left in it */
		if (!--l->active)
			pthread_cond_broadcast(&p->done_cv);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Start the pool threads once; fewer than asked is fine (the caller works). */
static void pool_start(struct usvm_device *dev)
{
	struct launch_pool *p = &dev->pool;
	unsigned int i;

	pthread_mutex_lock(&p->lock);
	for (i = p->nthreads; i + 1 < dev->threads && !p->stopping; i++) {
		if (pthread_create(&p->tids[i], NULL, pool_main, p))
			break;
		p->nthreads = i + 1;
	}
	atomic_store(&p->started, 1);
	pthread_mutex_unlock(&p->lock);
}

static void pool_stop(struct launch_pool *p)
{
	unsigned int i;

	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	pthread_cond_broadcast(&p->work_cv);
	pthread_mutex_unlock(&p->lock);
	for (i = 0; i < p->nthreads; i++)
		pthread_join(p->tids[i], NULL);
	pthread_cond_destroy(&p->work_cv);
	pthread_cond_destroy(&p->done_cv);
	pthread_mutex_destroy(&p->lock);
}

int usvm_device_launch(struct usvm_device *dev, usvm_kernel_fn fn, unsigned long n, void *arg)
{
	struct launch l = { .dev = dev, .fn = fn, .arg = arg, .n = n };
	struct launch_pool *p;
	struct launch **pp;
	unsigned int helpers;

	if (!dev || !fn)
		return -EINVAL;
	if (dev->pool.fork_gen != atomic_load(&usvm_fork_gen))
		return -ENODEV; /* the parent's device, in a fork child */
	if (!n)
		return 0;
	atomic_init(&l.next, 0);
	atomic_init(&l.stop, 0);
	atomic_init(&l.result, 0);
	p = &dev->pool;
	helpers = (unsigned int)MIN_UL(dev->threads - 1, n - 1);
	if (!helpers) {
		launch_run(&l);
		return atomic_load(&l.result);
	}
	if (!atomic_load(&p->started))
		pool_start(dev);
	pthread_mutex_lock(&p->lock);
	l.helpers = helpers;
	l.queued = 1;
	for (pp = &p->head; *pp; pp = &(*pp)->qnext)
		;
	*pp = &l;
	/* Wake only threads that are idle: busy ones look at the queue
	 * when they finish. */
	if (p->idle)
		helpers == 1 ? pthread_cond_signal(&p->work_cv)
			     : pthread_cond_broadcast(&p->work_cv);
	pthread_mutex_unlock(&p->lock);
	launch_run(&l); /* the caller's thread is worker 0 */
	pthread_mutex_lock(&p->lock);
	launch_dequeue(p, &l);
	while (l.active)
		pthread_cond_wait(&p->done_cv, &p->lock);
	pthread_mutex_unlock(&p->lock);
	return atomic_load(&l.result);
}

/* ---- host-side helpers -------------------------------------------------------- */

struct xfer {
	void *addr;
	void *buf;
	size_t len;
	int write;
};

static int xfer_kernel(struct usvm_kctx *ctx, unsigned long idx, void *arg)
{
	struct xfer *x = arg;

	(void)idx;
	return x->write ? usvm_dev_write(ctx, x->addr, x->buf, x->len)
			: usvm_dev_read(ctx, x->addr, x->buf, x->len);
}

int usvm_device_read(struct usvm_device *dev, const void *addr, void *buf, size_t len)
{
	struct xfer x = { (void *)addr, buf, len, 0 };

	return usvm_device_launch(dev, xfer_kernel, 1, &x);
}

int usvm_device_write(struct usvm_device *dev, void *addr, const void *buf, size_t len)
{
	struct xfer x = { addr, (void *)buf, len, 1 };

	return usvm_device_launch(dev, xfer_kernel, 1, &x);
}

int usvm_device_prefetch(struct usvm_device *dev, void *addr, size_t len)
{
	uintptr_t va = ALIGN_DOWN_UL((uintptr_t)addr, USVM_PAGE_SIZE);
	uintptr_t end = (uintptr_t)addr + len;

	if (!dev || !len)
		return -EINVAL;
	while (va < end) {
		struct usvm_gpusvm_range *r;
		uintptr_t next;
		int err, ok;

		pthread_rwlock_rdlock(&dev->svm.notifier_lock);
		r = usvm_gpusvm_range_find(&dev->svm, va);
		ok = entry_ok(dev, r, va, 0) && range_in(dev, r, dev_memory(dev));
		next = r ? r->end : va + USVM_PAGE_SIZE;
		pthread_rwlock_unlock(&dev->svm.notifier_lock);
		if (!ok) {
			err = device_fault(dev, NULL, va, 0, 0);
			if (err)
				return err;
			pthread_rwlock_rdlock(&dev->svm.notifier_lock);
			r = usvm_gpusvm_range_find(&dev->svm, va);
			next = r ? r->end : va + USVM_PAGE_SIZE;
			pthread_rwlock_unlock(&dev->svm.notifier_lock);
		}
		va = next;
	}
	return 0;
}

int usvm_device_evict(struct usvm_device *dev, void *addr, size_t len)
{
	struct usvm_mm *mm;
	uintptr_t a = (uintptr_t)addr, end = a + len;
	int err = 0;

	if (!dev || !len)
		return -EINVAL;
	mm = dev->mm;
	mm_events_settle(mm);
	usvm_rwlock_rdlock(&mm->regions_lock);
	while (a < end) {
		struct usvm_region *r = mm_region_find(mm, a);

		if (!r) {
			err = -EFAULT;
			break;
		}
		err = mm_migrate_range_to_ram(mm, r, a, MIN_UL(end, r->end));
		if (err)
			break;
		a = r->end;
	}
	usvm_rwlock_unlock(&mm->regions_lock);
	return err;
}

/* ---- create / destroy / stats --------------------------------------------------- */

int usvm_device_create(struct usvm_mm *mm, const struct usvm_device_options *o,
		       struct usvm_device **out)
{
	struct usvm_device_options def = { 0 };
	struct usvm_device *dev;
	int nchunks = 0, err;

	if (!mm || !out)
		return -EINVAL;
	if (!o)
		o = &def;
	while (nchunks < 4 && o->chunk_sizes[nchunks])
		nchunks++;
	if (o->policy > USVM_POLICY_NEVER)
		return -EINVAL;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	snprintf(dev->name, sizeof(dev->name), "%s", o->name ? o->name : "dev");
	dev->mm = mm;
	dev->pagemap = o->pagemap;
	dev->preferred = o->preferred ? o->preferred : o->pagemap;
	dev->policy = o->policy;
	dev->timeslice_ms = o->timeslice_ms;
	dev->threads = o->threads ? MIN_UL(o->threads, 16u) : 2;
	dev->peer_access = o->peer_access;
	thrash_configure(); /* the thrash_* options, as they are now */
	dev->prefetch_threshold = (unsigned int)usvm_option_ulong(USVM_OPT_PREFETCH_THRESHOLD);
	err = usvm_gpusvm_init(&dev->svm, dev->name, mm, o->chunk_sizes, nchunks,
			       o->notifier_size, NULL, dev);
	if (err) {
		free(dev);
		return err;
	}
	/* Any destroy order is safe: the device keeps what it points to. */
	mm_get(mm);
	usvm_pagemap_get(dev->pagemap);
	usvm_pagemap_get(dev->preferred);
	dev->pool.fork_gen = atomic_load(&usvm_fork_gen);
	dev->pool.dev_name = dev->name;
	pthread_mutex_init(&dev->pool.lock, NULL);
	pthread_cond_init(&dev->pool.work_cv, NULL);
	pthread_cond_init(&dev->pool.done_cv, NULL);
	pthread_once(&guard_once, guard_install);
	*out = dev;
	return 0;
}

void usvm_device_destroy(struct usvm_device *dev)
{
	if (!dev)
		return;
	/* A fork child has no pool threads and must not touch the lock. */
	if (dev->pool.fork_gen == atomic_load(&usvm_fork_gen))
		pool_stop(&dev->pool);
	usvm_gpusvm_fini(&dev->svm);
	/* It accesses nothing any more; an mm at this address later is
	 * another address space: its blocks start without history. */
	mm_advice_forget(dev->mm, dev);
	thrash_forget_mm(dev->mm);
	usvm_pagemap_put(dev->preferred);
	usvm_pagemap_put(dev->pagemap);
	mm_put(dev->mm);
	free(dev);
}

const char *usvm_device_name(const struct usvm_device *dev)
{
	return dev ? dev->name : "";
}

int usvm_device_stats(struct usvm_device *dev, struct usvm_device_stats *o)
{
	if (!dev || !o)
		return -EINVAL;
	memset(o, 0, sizeof(*o));
#define C(f) o->f = STAT_READ(dev->st.f)
	C(device_faults); C(fault_retries); C(fatal_faults);
	C(migrations_requested); C(migration_failures);
	C(bytes_mapped_system); C(bytes_mapped_device); C(bytes_mapped_peer);
	C(atomics); C(atomics_elsewhere); C(bytes_read); C(bytes_written);
	C(advice_in_place); C(density_prefetches); C(density_prefetch_bytes);
	C(dup_copies); C(dup_bytes);
#undef C
	o->thrash_events = STAT_READ(dev->thrash.events);
	o->thrash_throttles = STAT_READ(dev->thrash.throttles);
	o->thrash_pins = STAT_READ(dev->thrash.pins);
	o->thrash_bytes_kept = STAT_READ(dev->thrash.bytes_kept);
	o->ranges_created = STAT_READ(dev->svm.ranges_created);
	o->ranges_removed = STAT_READ(dev->svm.ranges_removed);
	o->ranges_live = usvm_gpusvm_range_count(&dev->svm);
	o->invalidations = STAT_READ(dev->svm.invalidations);
	return 0;
}

void usvm_device_stats_print(struct usvm_device *dev, FILE *f)
{
	struct usvm_device_stats s;

	if (usvm_device_stats(dev, &s))
		return;
	fprintf(f, "device %s: %" PRIu64 " faults (%" PRIu64 " retries, %" PRIu64 " fatal), %"
		PRIu64 " migrations asked (%" PRIu64 " failed)\n",
		dev->name, s.device_faults, s.fault_retries, s.fatal_faults,
		s.migrations_requested, s.migration_failures);
	fprintf(f, "  ranges     %" PRIu64 " created, %" PRIu64 " removed, %" PRIu64
		" live, %" PRIu64 " invalidations\n",
		s.ranges_created, s.ranges_removed, s.ranges_live, s.invalidations);
	fprintf(f, "  mapped     %.1f MiB system, %.1f MiB device, %.1f MiB peer; %" PRIu64
		" atomics, %.1f MiB read, %.1f MiB written\n",
		s.bytes_mapped_system / 1048576.0, s.bytes_mapped_device / 1048576.0,
		s.bytes_mapped_peer / 1048576.0, s.atomics, s.bytes_read / 1048576.0,
		s.bytes_written / 1048576.0);
}

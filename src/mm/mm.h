/* SPDX-License-Identifier: MIT */
/*
 * DOC: The address space (struct usvm_mm)
 *
 * An mm is managed memory: regions (arenas carved by usvm_alloc, dedicated
 * regions of large allocations, ranges the program registered), the state of
 * every managed page (system memory, or a page of a device allocation), the
 * userfaultfds those regions are registered with, and the threads that
 * serve their messages.
 *
 * The mm knows device memory only through struct mm_devmem and its ops (the
 * kernel's dev_pagemap_ops): a page's owner is migrated back, dropped or moved
 * by the layer that created it (src/migrate), never by mm itself.
 *
 * Page states are stored sparsely: one NORESERVE array per region (memory is
 * committed only where a state was written) plus one byte per 2 MiB block
 * saying whether any state or CPU page may exist there, so that walks over
 * huge untouched regions skip them.
 *
 * DOC: Threads
 *
 * reader:   the only thread that read()s the userfaultfds.  It never waits
 *           for a lock: a thread holding a block lock may be waiting for it,
 *           because UFFDIO_MOVE/COPY/ZEROPAGE return -EAGAIN until the event
 *           that makes the address space "changing" has been read.
 * applier:  applies events (munmap, madvise, mremap) in the order they were
 *           read, taking whatever locks it needs.
 * workers:  serve page faults.  A fault is handed to a worker only after
 *           every event read before it has been applied, so a CPU access
 *           that follows a munmap/madvise/mremap in program order sees its
 *           effect (the caller of those resumes as soon as its event is read).
 *
 * DOC: Locking, outermost first
 *
 *   mm->fork_lock (rwlock): read around every migration into device memory,
 *     written while fork() brings every page home (see fork.c).
 *   mm->alloc_lock: arena bitmaps and the allocation table; taken before
 *     regions_lock (usvm_alloc creates arenas), never under a block lock.
 *   mm->regions_lock (rwlock): read for any page operation, write to add or
 *     remove a region.  glibc's default rwlock prefers readers, which several
 *     paths rely on (a reader may re-take it while a writer waits).
 *   block lock (striped mutex per USVM_BLOCK_SIZE block): every page state
 *     change and every migration of a page in that block.
 *   pagemap->lock, GPU SVM notifier locks: leaves.
 *
 * Rule: nobody waits for the reader or the applier while holding
 * regions_lock or a block lock: -EAGAIN from a userfaultfd ioctl is handed
 * up, the locks are dropped, and the operation retried.
 */
#ifndef USVM_MM_H
#define USVM_MM_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include "usvm.h"
#include "util.h"
#include "lockdep.h"
#include "trace.h"

/* ---- device memory as mm sees it ------------------------------------------ */

struct mm_devmem;
struct usvm_region;

enum mm_migrate_cause {
	MM_MIGRATE_CPU_FAULT,   /* a CPU touched a device-resident page */
	MM_MIGRATE_EVICT,       /* device memory pressure, explicit eviction */
	MM_MIGRATE_PEER,        /* another pagemap takes the pages */
	MM_MIGRATE_RANGE,       /* range evict, unregister, teardown, fork */
	MM_MIGRATE_UNBIND,      /* the pagemap is being unbound */
};

struct mm_devmem_ops {
	/*
	 * Bring every live page of @dm back to system memory; the block lock
	 * of its block is held.  For MM_MIGRATE_CPU_FAULT the allocation's
	 * timeslice is honoured: inside it nothing moves, the return is
	 * -EINPROGRESS and *@retry_at_ns says when to come back; and with
	 * mm->migrate_back set only the chunk around @addr (the faulting
	 * page) moves, the rest of @dm stays.
	 * Return: bytes moved, -EAGAIN (the address space is changing: drop
	 * the locks and retry), -EINPROGRESS, or -errno (nothing lost).
	 */
	long (*migrate_to_ram)(struct mm_devmem *dm, enum mm_migrate_cause why,
			       uintptr_t addr, uint64_t *retry_at_ns);
	/* The contents of page @idx are gone (free, MADV_DONTNEED, munmap). */
	void (*drop_page)(struct mm_devmem *dm, uint32_t idx);
	/*
	 * Put page @idx's data at @dst, a missing managed page (mremap moved
	 * the address), and forget the page.  Return 0, -EAGAIN or -errno.
	 */
	int (*move_page)(struct mm_devmem *dm, uint32_t idx, uintptr_t dst);
	/* The region tracking @dm's pages is now @r (a region was split). */
	void (*rehome)(struct mm_devmem *dm, struct usvm_region *r);
};

/* Embedded at the start of a device allocation (struct usvm_devmem). */
struct mm_devmem {
	const struct mm_devmem_ops *ops;
	struct usvm_pagemap *pagemap;  /* whose memory (compared, never followed, by mm) */
	/* When it started taking its pages (set by migrate, block lock held):
	 * a fault message read before that is stale (see serve_page()). */
	uint64_t since_ns;
};

/* ---- pages and regions ------------------------------------------------------ */

/* State of one managed page. */
struct usvm_page {
	struct mm_devmem *dm;     /* device allocation holding it, NULL: system */
	uint32_t idx;             /* page index inside @dm */
	uint32_t flags;           /* MM_PAGE_*, atomic: peeked without the block lock */
};
#define MM_PAGE_UNMAPPED 0x1u /* the program unmapped it behind our back */
#define MM_PAGE_FREEING 0x2u  /* usvm_free in progress: populate leaves it */
/*
 * MADV_DONTNEED/FREE seen: its UFFD_EVENT_REMOVE comes *before* the kernel
 * zaps the CPU page, so a CPU page still present may be about to vanish.
 * Populate must not carry it into device memory (the zap would then miss
 * it and the old bytes would come back); it waits until the page is gone.
 */
#define MM_PAGE_REMOVED 0x4u

enum usvm_region_kind {
	USVM_REGION_ARENA,  /* many small usvm_alloc allocations */
	USVM_REGION_ALLOC,  /* one large usvm_alloc allocation */
	USVM_REGION_USER,   /* usvm_register'ed (or mremap'ed) program memory */
};

/* Per block of a region (region->blk). */
#define MM_BLK_STATE 0x1u /* some page state here is not the default */
#define MM_BLK_CPU 0x2u   /* CPU pages may be present here */

struct usvm_region {
	uintptr_t start, end;
	enum usvm_region_kind kind;
	int uffd;                   /* the userfaultfd it is registered with */
	atomic_int dying;           /* being removed: no new populates */
	atomic_int pending;         /* mremap target being filled: faults wait */
	atomic_int gone;            /* the program unmapped all of it */
	_Atomic size_t unmapped_pages; /* pages flagged MM_PAGE_UNMAPPED */
	size_t npages;
	struct usvm_page *pages;    /* one per page, NORESERVE mapping */
	uint8_t *blk;               /* MM_BLK_* per block, NORESERVE mapping */
	size_t nblk;
	/* Arena allocator (kind ARENA), under mm->alloc_lock. */
	uint64_t *bitmap;
	size_t hint;
};

static inline size_t region_blk_index(const struct usvm_region *r, uintptr_t addr)
{
	return (addr >> USVM_BLOCK_SHIFT) - (r->start >> USVM_BLOCK_SHIFT);
}

static inline struct usvm_page *region_page(struct usvm_region *r, uintptr_t addr)
{
	return &r->pages[(addr - r->start) >> USVM_PAGE_SHIFT];
}

static inline unsigned int region_blk(const struct usvm_region *r, uintptr_t addr)
{
	return __atomic_load_n(&r->blk[region_blk_index(r, addr)], __ATOMIC_ACQUIRE);
}

static inline void region_blk_set(struct usvm_region *r, uintptr_t addr, unsigned int bits)
{
	uint8_t *b = &r->blk[region_blk_index(r, addr)];

	if ((__atomic_load_n(b, __ATOMIC_RELAXED) & bits) != bits)
		__atomic_fetch_or(b, (uint8_t)bits, __ATOMIC_RELEASE);
}

static inline uint32_t page_flags(const struct usvm_page *pg)
{
	return __atomic_load_n(&pg->flags, __ATOMIC_RELAXED);
}

/* Set/clear flags of a page; block lock held.  Keeps unmapped_pages exact. */
void region_page_set_flags(struct usvm_region *r, uintptr_t addr, uint32_t set, uint32_t clear);

/* Record that @dm's page @idx now holds @addr (block lock held). */
void region_page_set_dm(struct usvm_region *r, uintptr_t addr, struct mm_devmem *dm, uint32_t idx);

/* Iterate [start, end) in pieces that never cross a USVM_BLOCK_SIZE block. */
#define for_each_block(a, bend, start, end)                                          \
	for ((a) = (start);                                                          \
	     (a) < (end) &&                                                          \
	     ((bend) = MIN_UL((end), ALIGN_DOWN_UL((a), USVM_BLOCK_SIZE) + USVM_BLOCK_SIZE), 1); \
	     (a) = (bend))

/* ---- invalidation listeners (GPU SVM instances) ----------------------------- */

enum usvm_inval_event {
	USVM_INVAL_MIGRATE,   /* pages change residency */
	USVM_INVAL_REMOVE,    /* contents dropped (free, MADV_DONTNEED) */
	USVM_INVAL_UNMAP,     /* range gone (munmap, unregister, mremap source) */
	USVM_INVAL_WRITE,     /* a write: read-only device copies collapse */
};
struct usvm_mm_notifier {
	/* Called with the block lock of the range held ([start, end) never
	 * crosses a block).  Must not take block locks. */
	void (*invalidate)(struct usvm_mm_notifier *n, uintptr_t start, uintptr_t end,
			   enum usvm_inval_event ev);
	struct list_head link;
};

/* ---- the fault and event machinery (fault.c) -------------------------------- */

/* A message read from a userfaultfd, with what the dispatcher knows of it. */
struct mm_msg {
	int uffd;
	uint32_t pf_flags;          /* UFFD_PAGEFAULT_FLAG_* */
	uint32_t event;             /* UFFD_EVENT_* */
	uint64_t a, b, c;           /* address / start, end / from, to, len */
	uint64_t ev_seq;            /* faults: events read before this one */
	uint64_t when_ns;           /* deferred faults: retry time */
	uint64_t read_ns;           /* faults: when the reader read it */
	int counted;                /* faults: classified in the statistics */
};

struct mm_queue {
	struct mm_msg *v;
	size_t head, count, cap;
};

#define USVM_MAX_FAULT_THREADS 64

struct mm_dispatch {
	unsigned int nworkers;
	pthread_t reader, applier;
	pthread_t workers[USVM_MAX_FAULT_THREADS];
	int started_reader, started_applier;
	int wake_efd;               /* poked when the reader has work */
	pthread_mutex_t lock;       /* the queues, except gated */
	pthread_cond_t work_cv;     /* workers: a fault is ready */
	pthread_cond_t event_cv;    /* applier: an event is queued */
	pthread_cond_t applied_cv;  /* an event was applied (mm_events_sync) */
	struct mm_queue work;       /* faults ready to serve */
	struct mm_queue events;     /* events to apply, in read order */
	struct mm_queue deferred;   /* faults to retry at when_ns */
	struct mm_queue gated;      /* reader only: faults behind an event */
	struct mm_msg applying;     /* the event being applied (event 0: none) */
	/*
	 * Read by whoever puts device data back into the CPU mapping, written
	 * by the reader around read(): see mm_install_begin().
	 */
	pthread_rwlock_t install_lock;
	_Atomic uint64_t read_gen;  /* odd while the reader is inside read() */
	_Atomic uint64_t ev_read, ev_applied;
	_Atomic uint64_t passes;    /* complete read passes over every userfaultfd */
	/* Applier only: the UNMAP of its old range each mremap still owes
	 * (see events.c), to be skipped when it comes. */
	struct { uintptr_t start, end; } owed_unmap[16];
	unsigned int nowed;
	atomic_int stopping;
};

/* ---- the mm ------------------------------------------------------------------ */

#define USVM_BLOCK_LOCKS 1024

struct usvm_mm {
	atomic_int refs;            /* the owner + one per device */
	uint64_t fork_gen;          /* usvm_fork_gen when created (see fork.c) */
	struct list_head all_link;  /* every mm of the process (fork.c) */
	int uffd_arena;             /* usvm_alloc'd memory */
	int uffd_user;              /* registered ranges */
	int uffd_trash;             /* discard area: no events, never -EAGAIN */
	int uffd_mode;              /* enum usvm_uffd_mode */
	int maps_fd;                /* /proc/self/maps for PROCMAP_QUERY, or -1 */
	size_t arena_size;
	atomic_int destroyed;

	pthread_rwlock_t fork_lock;

	pthread_rwlock_t regions_lock;
	struct usvm_region **regions; /* sorted by start */
	size_t nregions, cap_regions;

	pthread_mutex_t alloc_lock;   /* arena bitmaps and the allocation table */
	struct alloc_table {
		uintptr_t *keys;
		uint32_t *npages;
		size_t cap, count, tombs;
	} allocs;

	pthread_mutex_t block_locks[USVM_BLOCK_LOCKS];

	pthread_rwlock_t notifier_lock;
	struct list_head notifiers;

	pthread_rwlock_t advice_lock; /* the advice intervals (advise.c) */
	struct mm_advice *advice;
	size_t nadvice, cap_advice;

	pthread_mutex_t trash_lock;   /* discards move pages through it */
	uintptr_t trash;

	/* Freed arena allocations whose CPU pages are not discarded yet
	 * (arena.c, "deferred discards"), under free_lock. */
	pthread_mutex_t free_lock;
	struct mm_freed {
		struct usvm_region *r;
		uintptr_t start;
		uint32_t npages;
	} *freed;
	size_t nfreed, cap_freed, freed_bytes;
	size_t free_batch;          /* USVM_FREE_BATCH */
	size_t write_fill;          /* USVM_WRITE_FILL */
	size_t migrate_back;        /* USVM_MIGRATE_BACK: 0, or a power of two */
	unsigned long reader_spin_us; /* USVM_READER_SPIN_US */

	struct mm_dispatch d;

	struct {
		_Atomic uint64_t cpu_faults, cpu_faults_devmem, cpu_faults_first_touch;
		_Atomic uint64_t cpu_faults_raced, timeslice_waits, dup_collapses;
		_Atomic uint64_t migrations_to_ram, bytes_to_ram, ns_to_ram;
		_Atomic uint64_t migrations_to_dev, bytes_to_dev, ns_to_dev;
		_Atomic uint64_t allocs, frees, live_allocs, live_bytes;
		_Atomic uint64_t registered_ranges;
		_Atomic uint64_t events_remove, events_unmap, events_remap;
		_Atomic uint64_t device_bytes_dropped;
	} st;
};

static inline pthread_mutex_t *mm_block_lock(struct usvm_mm *mm, uintptr_t addr)
{
	uintptr_t b = addr >> USVM_BLOCK_SHIFT;

	return &mm->block_locks[(b ^ (b >> 10)) % USVM_BLOCK_LOCKS];
}

/* Lock the block of @addr, with lock-owner tracking in debug builds. */
static inline void mm_block_lock_acquire(struct usvm_mm *mm, uintptr_t addr)
{
	usvm_mutex_lock(mm_block_lock(mm, addr));
}
static inline int mm_block_lock_try(struct usvm_mm *mm, uintptr_t addr)
{
	return usvm_mutex_trylock(mm_block_lock(mm, addr));
}
static inline void mm_block_lock_release(struct usvm_mm *mm, uintptr_t addr)
{
	usvm_mutex_unlock(mm_block_lock(mm, addr));
}
#define mm_assert_block_locked(mm, addr) usvm_assert_held(mm_block_lock((mm), (addr)))

/* Region lookup; caller holds regions_lock. */
struct usvm_region *mm_region_find(struct usvm_mm *mm, uintptr_t addr);
/* Look up the page state for @addr; caller holds regions_lock. */
struct usvm_page *mm_page(struct usvm_mm *mm, uintptr_t addr, struct usvm_region **rp);

/* A new region, not yet visible (NULL: out of memory). */
struct usvm_region *mm_region_new(uintptr_t start, uintptr_t end,
				  enum usvm_region_kind kind, int uffd);
/* Publish @r.  Return 0, or -EEXIST (overlap: @r is freed). */
int mm_region_insert(struct usvm_mm *mm, struct usvm_region *r);
/* The same with regions_lock held for writing; @r is not freed on error. */
int mm_region_insert_locked(struct usvm_mm *mm, struct usvm_region *r);
/* Both.  Return 0, -EEXIST (overlap), -ENOMEM. */
int mm_region_add(struct usvm_mm *mm, uintptr_t start, uintptr_t end,
		  enum usvm_region_kind kind, int uffd, struct usvm_region **out);
/* Caller holds regions_lock for writing. */
void mm_region_remove_locked(struct usvm_mm *mm, struct usvm_region *r);
void mm_region_free(struct usvm_region *r);

/* Tell the listeners; caller holds the block lock of [start, end). */
void mm_invalidate(struct usvm_mm *mm, uintptr_t start, uintptr_t end,
		   enum usvm_inval_event ev);
void usvm_mm_notifier_register(struct usvm_mm *mm, struct usvm_mm_notifier *n);
void usvm_mm_notifier_unregister(struct usvm_mm *mm, struct usvm_mm_notifier *n);

/*
 * Drop the device copy of every page in [start, end) of region @r (contents
 * are gone: free, DONTNEED, munmap) and set @set_flags on its pages.
 * Caller holds regions_lock; takes the block locks.
 */
void mm_drop_range(struct usvm_mm *mm, struct usvm_region *r, uintptr_t start,
		   uintptr_t end, enum usvm_inval_event ev, uint32_t set_flags);
/* The same for one block piece [a, bend); its block lock held. */
void mm_drop_block(struct usvm_mm *mm, struct usvm_region *r, uintptr_t a, uintptr_t bend,
		   uint32_t set_flags);
/*
 * Bring every device page in [start, end) of @r back to RAM, retrying
 * (without locks held) while the address space is changing.  Caller holds
 * regions_lock for reading.  Return 0 or -errno (what could not move stays
 * in device memory).
 */
int mm_migrate_range_to_ram(struct usvm_mm *mm, struct usvm_region *r,
			    uintptr_t start, uintptr_t end);

/* Is @addr part of a live allocation (always true outside arenas)? */
int mm_page_allocated(struct usvm_region *r, uintptr_t addr);

/* ---- events (events.c) ------------------------------------------------------ */

/* Apply one event to the library's state (the applier thread). */
void mm_apply_event(struct usvm_mm *mm, const struct mm_msg *m);

/*
 * Wait until every event read so far has been applied: afterwards the
 * library's state reflects every munmap/madvise/mremap that has returned.
 * Cheap when nothing is pending.  Never call it holding mm locks.
 */
void mm_events_sync_slow(struct usvm_mm *mm);
static inline void mm_events_settle(struct usvm_mm *mm)
{
	struct mm_dispatch *d = &mm->d;
	uint64_t g = atomic_load(&d->read_gen);

	if (!(g & 1) && atomic_load(&d->ev_applied) == atomic_load(&d->ev_read) &&
	    atomic_load(&d->read_gen) == g)
		return;
	mm_events_sync_slow(mm);
}

/*
 * DOC: Installing device data into the CPU mapping
 *
 * The caller of munmap/madvise/mremap resumes as soon as its event is read,
 * and the kernel then zaps (DONTNEED), or has already moved (mremap) the
 * CPU pages.  Device data put back into the CPU mapping after that, but
 * before the event is applied (which drops the device copy), would bring
 * the old bytes back after the call returned.  So every migration back to
 * system memory brackets its moves with mm_install_begin/end: it fails with
 * -EAGAIN (retry later, without locks) while an event overlapping
 * [lo, hi) is read but not applied, and while it holds the bracket no
 * event can be read (an event raised meanwhile makes its moves fail with
 * -EAGAIN instead).  Never wait for the fault threads inside the bracket.
 */
int mm_install_begin(struct usvm_mm *mm, uintptr_t lo, uintptr_t hi);
void mm_install_end(struct usvm_mm *mm);
/*
 * The same bracket for taking CPU pages out of [lo, hi) (registered with
 * @uffd) into device memory.  Those moves are not gated by the kernel
 * (their destination is the pool), so it also fails while an event of
 * @uffd is in flight: the addresses may already belong to a new mapping
 * whose pages a stale region would take.  End with mm_install_end().
 */
int mm_take_begin(struct usvm_mm *mm, int uffd, uintptr_t lo, uintptr_t hi);
/* Is any event of the mm's userfaultfds raised and not read yet? */
int mm_changing(struct usvm_mm *mm);
/*
 * For the applier only: is an event read after the one being applied about
 * to change [lo, hi)?  Returns its UFFD_EVENT_* or 0.  Call it inside the
 * install bracket taken with mm_install_begin_applier().
 */
uint32_t mm_later_event(struct usvm_mm *mm, uintptr_t lo, uintptr_t hi);
void mm_install_begin_applier(struct usvm_mm *mm);

/*
 * Wait until the reader has read everything raised before the call (not
 * for it to be applied).  Never from the reader itself.
 */
void mm_read_pass(struct usvm_mm *mm);
/*
 * The applier only: apply now, out of queue order, a queued UNMAP of
 * [lo, hi) or REMAP moving it away.  Used when the kernel already reused
 * those addresses (so that event logically came first: its caller had
 * released them before) but it was queued after the event being applied.
 * Returns 1 if one was applied.
 */
int mm_apply_queued_for(struct usvm_mm *mm, uintptr_t lo, uintptr_t hi);

/* ---- faults (fault.c) --------------------------------------------------------- */

int mm_dispatch_start(struct usvm_mm *mm, unsigned int nworkers);
void mm_dispatch_stop(struct usvm_mm *mm);

/* ---- arenas and discards (arena.c) -------------------------------------------- */

void mm_allocs_destroy(struct usvm_mm *mm);
int mm_trash_init(struct usvm_mm *mm);
void mm_trash_fini(struct usvm_mm *mm);
/* Discard the CPU pages of every freed allocation still waiting (arena.c). */
void mm_discard_freed(struct usvm_mm *mm);
/*
 * Give the CPU pages of [start, end) back to the kernel without raising a
 * userfaultfd event (they are moved out to the trash area and discarded
 * there).  Pages that cannot move (shared after fork) are left; their
 * addresses are returned through @busy (first one, or 0).  Block locks of
 * the range may be held: this never waits for the fault threads.
 */
void mm_discard_cpu_pages(struct usvm_mm *mm, uintptr_t start, uintptr_t end, uintptr_t *busy);

/* ---- advice (advise.c) ------------------------------------------------------------ */

#define MM_LOC_SYSTEM ((const void *)1)   /* a location: system memory */
#define MM_MAX_ACCESSED_BY 8
#define MM_ADVICE_PREFETCH 100            /* mm_advice_update: record a prefetch target */

/* The advice of an interval of addresses (see advise.c). */
struct mm_advice {
	uintptr_t start, end;
	const void *preferred;            /* NULL, MM_LOC_SYSTEM or a pagemap */
	const void *last_prefetch;        /* NULL, MM_LOC_SYSTEM or a pagemap */
	const void *accessed_by[MM_MAX_ACCESSED_BY]; /* devices */
	unsigned int naccessed;
	int read_mostly;                  /* USVM_ADVISE_READ_MOSTLY */
};

/* How mm keeps a pagemap named in advice alive (set by the pagemap layer). */
struct mm_location_ops {
	void (*get)(const void *loc);
	void (*put)(const void *loc);
};
void mm_set_location_ops(const struct mm_location_ops *ops);
/* Apply a USVM_ADVISE_* (or MM_ADVICE_PREFETCH) to [s, e).  Return 0 or -errno. */
int mm_advice_update(struct usvm_mm *mm, uintptr_t s, uintptr_t e, int advice, const void *loc);
/* Forget all advice of [s, e) (free, unregister). */
void mm_advice_clear(struct usvm_mm *mm, uintptr_t s, uintptr_t e);
/* The advice at @addr, with references the caller drops by mm_advice_put();
 * call it without block locks held. */
void mm_advice_get(struct usvm_mm *mm, uintptr_t addr, struct mm_advice *out);
void mm_advice_put(struct mm_advice *a);
/* Is @loc the preferred location at @addr?  Takes no references; any lock
 * but advice_lock may be held. */
int mm_advice_prefers(struct usvm_mm *mm, uintptr_t addr, const void *loc);
/* Is @addr advised read-mostly?  Takes no references. */
int mm_read_mostly(struct usvm_mm *mm, uintptr_t addr);
/* Write-protect the CPU pages of [start, end) (one region): a device is
 * about to copy them (see DOC: Read duplication, advise.c).  No lock held.
 * 0 or -errno (-EAGAIN: changing; -ENOENT: not registered for it). */
int mm_write_protect(struct usvm_mm *mm, uintptr_t start, uintptr_t end);
/* A device going away: it accesses nothing any more. */
void mm_advice_forget(struct usvm_mm *mm, const void *loc);
void mm_advice_fini(struct usvm_mm *mm);
/* Bring every device page of [start, end) home.  Return 0, -EFAULT (not
 * managed) or the first migration error after retries. */
int mm_range_to_ram(struct usvm_mm *mm, uintptr_t start, uintptr_t end);

/* ---- fork (fork.c) -------------------------------------------------------------- */

/* Bumped in the child of every fork(): an mm whose fork_gen differs is
 * the parent's, and unusable here. */
extern _Atomic uint64_t usvm_fork_gen;
void mm_fork_register(struct usvm_mm *mm);
void mm_fork_unregister(struct usvm_mm *mm);
static inline int mm_usable(const struct usvm_mm *mm)
{
	return mm && mm->fork_gen == atomic_load_explicit(&usvm_fork_gen, memory_order_relaxed) &&
	       !atomic_load_explicit(&mm->destroyed, memory_order_relaxed);
}

/* ---- lifetime --------------------------------------------------------------------- */

void mm_get(struct usvm_mm *mm);
void mm_put(struct usvm_mm *mm);

/* ---- capabilities (probe.c) ------------------------------------------------------- */

/* Is the mapping at @addr registered with a userfaultfd?  1, 0, -1 unknown. */
int mm_vma_uffd_registered(uintptr_t addr);
/* Is [start, end) private anonymous read-write memory?  0, -EINVAL, -EFAULT. */
int mm_check_anon_private(struct usvm_mm *mm, uintptr_t start, uintptr_t end);

#endif

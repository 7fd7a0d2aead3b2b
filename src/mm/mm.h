/* SPDX-License-Identifier: MIT */
/*
 * The address space (struct usvm_mm): regions of managed memory, the state
 * of every managed page, block locks, and the CPU fault handler.
 *
 * Locking, outermost first:
 *   mm->regions_lock (rwlock; read for any page operation, write to add or
 *     remove a region)
 *   block lock (striped mutex per USVM_BLOCK_SIZE block: every page state
 *     change and every migration of a page in that block)
 *   pagemap->lock (LRU bookkeeping only)
 * Nothing sleeps on another block while holding a block lock, except
 * eviction, which takes a victim's block lock only when it holds none.
 */
#ifndef USVM_MM_H
#define USVM_MM_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include "usvm.h"
#include "util.h"

struct usvm_devmem;

/* State of one managed page. */
struct usvm_page {
	struct usvm_devmem *dm;   /* device allocation holding it, NULL: system */
	uint32_t idx;             /* index in dm->pfn / dm->va */
	uint32_t flags;
};
#define USVM_PAGE_UNMAPPED 0x1u   /* the program unmapped it behind our back */
#define USVM_PAGE_PENDING 0x2u    /* state being rebuilt (mremap): faults wait */

enum usvm_region_kind { USVM_REGION_ARENA, USVM_REGION_USER };

struct usvm_region {
	uintptr_t start, end;
	enum usvm_region_kind kind;
	int uffd;                   /* the userfaultfd it is registered with */
	atomic_int dying;           /* being unregistered: no new populates */
	_Atomic size_t unmapped_pages; /* pages flagged USVM_PAGE_UNMAPPED */
	struct usvm_page *pages;    /* one per page, NORESERVE mapping */
	/* Arena allocator (kind ARENA), under mm->alloc_lock. */
	uint64_t *bitmap;
	size_t npages;
	size_t hint;
};

/* Invalidation listeners (GPU SVM instances). */
enum usvm_inval_event {
	USVM_INVAL_MIGRATE,   /* pages change residency */
	USVM_INVAL_REMOVE,    /* contents dropped (free, MADV_DONTNEED) */
	USVM_INVAL_UNMAP,     /* range gone (munmap, unregister, mremap source) */
};
struct usvm_mm_notifier {
	/* Called with the block lock(s) of the range held. Must not block on
	 * block locks. @owner is the device causing it, or NULL. */
	void (*invalidate)(struct usvm_mm_notifier *n, uintptr_t start, uintptr_t end,
			   enum usvm_inval_event ev, const void *owner);
	struct list_head link;
};

#define USVM_BLOCK_LOCKS 1024
#define USVM_MAX_FAULT_THREADS 64

struct usvm_mm {
	int uffd_arena;             /* managed allocations: no event features */
	int uffd_user;              /* registered ranges: UNMAP/REMOVE/REMAP events */
	int stop_efd;
	int user_mode_only;
	uint64_t features_user;
	size_t arena_size;

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

	unsigned int nthreads;
	pthread_t threads[USVM_MAX_FAULT_THREADS];
	/* Per thread: busy (may hold messages it read but has not handled) and
	 * a generation bumped each time it goes idle; see mm_events_quiesce(). */
	atomic_int thread_busy[USVM_MAX_FAULT_THREADS];
	_Atomic uint64_t thread_gen[USVM_MAX_FAULT_THREADS];
	atomic_uint next_thread_id;
	/* Fault threads inside read() or handling an event: an event that a
	 * munmap/madvise caller saw consumed may not be handled yet. */
	atomic_int events_inflight;
	pthread_mutex_t read_lock;    /* orders userfaultfd events, see fault.c */
	pthread_mutex_t event_lock;
	pthread_mutex_t trash_lock;   /* usvm_free discards pages through it */
	uintptr_t trash;
	atomic_int stopping;

	struct {
		_Atomic uint64_t cpu_faults, cpu_faults_devmem, cpu_faults_first_touch;
		_Atomic uint64_t timeslice_waits;
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

/* Region lookup; caller holds regions_lock. */
struct usvm_region *mm_region_find(struct usvm_mm *mm, uintptr_t addr);
static inline struct usvm_page *region_page(struct usvm_region *r, uintptr_t addr)
{
	return &r->pages[(addr - r->start) >> USVM_PAGE_SHIFT];
}
/* Look up the page state for @addr; caller holds regions_lock. */
struct usvm_page *mm_page(struct usvm_mm *mm, uintptr_t addr, struct usvm_region **rp);

/* Publish a new region whose pages all start with @init_flags. */
int mm_region_add(struct usvm_mm *mm, uintptr_t start, uintptr_t end,
		  enum usvm_region_kind kind, int uffd, uint32_t init_flags,
		  struct usvm_region **out);
/* Wait until the fault threads have handled every event already read. */
void mm_events_quiesce(struct usvm_mm *mm);
/*
 * Cheap form for device accesses: wait while any fault thread is reading or
 * handling an event, so that a device access that follows a munmap() or
 * madvise() in program order never sees the state from before it.
 */
static inline void mm_events_settle(struct usvm_mm *mm)
{
	while (atomic_load_explicit(&mm->events_inflight, memory_order_acquire))
		sched_yield();
}
/* Caller holds regions_lock for writing. */
void mm_region_remove_locked(struct usvm_mm *mm, struct usvm_region *r);
void mm_region_free(struct usvm_region *r);

/* Tell the listeners; caller holds the block lock(s) of [start, end). */
void mm_invalidate(struct usvm_mm *mm, uintptr_t start, uintptr_t end,
		   enum usvm_inval_event ev, const void *owner);
void usvm_mm_notifier_register(struct usvm_mm *mm, struct usvm_mm_notifier *n);
void usvm_mm_notifier_unregister(struct usvm_mm *mm, struct usvm_mm_notifier *n);

/*
 * Drop the device copy of every page in [start, end) of region @r (contents
 * are gone: free, DONTNEED, munmap).  Takes the block locks.
 */
void mm_drop_range(struct usvm_mm *mm, struct usvm_region *r, uintptr_t start,
		   uintptr_t end, enum usvm_inval_event ev, uint32_t set_flags);
/* Bring every device page in [start, end) of @r back to RAM. Takes block locks. */
int mm_migrate_range_to_ram(struct usvm_mm *mm, struct usvm_region *r,
			    uintptr_t start, uintptr_t end);

/*
 * Set on a fault thread while it handles an event: called when a
 * userfaultfd ioctl keeps failing with -EAGAIN, which means another event
 * is queued whose caller holds the address space "changing" until that
 * event is read.  The hook reads (and queues) it, so one thread never
 * waits for itself.
 */
extern __thread void (*mm_eagain_hook)(void);

/* Fault handling and userfaultfd events (fault.c, remap.c). */
void mm_handle_remove(struct usvm_mm *mm, uintptr_t start, uintptr_t end,
		      enum usvm_inval_event ev);
void mm_handle_remap(struct usvm_mm *mm, uintptr_t from, uintptr_t to, size_t len);
int mm_fault_threads_start(struct usvm_mm *mm);
void mm_fault_threads_stop(struct usvm_mm *mm);

/* Arena allocator (arena.c). */
/* Is @addr part of a live allocation (always true outside arenas)?  A hint
 * without alloc_lock; frees drop device copies under the block lock anyway. */
int mm_page_allocated(struct usvm_region *r, uintptr_t addr);
void mm_allocs_destroy(struct usvm_mm *mm);
int mm_trash_init(struct usvm_mm *mm);
void mm_trash_fini(struct usvm_mm *mm);

#endif

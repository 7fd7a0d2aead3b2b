/* SPDX-License-Identifier: MIT */
/*
 * usvm.h - user-space shared virtual memory (the public API).
 *
 * usvm brings the Linux kernel's DRM GPU SVM + drm_pagemap design to user
 * space.  A struct usvm_mm is an address space: managed allocations and
 * adopted (registered) ranges whose pages may live in system memory or in a
 * device's memory.  A struct usvm_pagemap is a device-memory provider; its
 * populate_mm() moves a virtual range into device memory (best effort), and a
 * CPU touch of a device-resident page migrates the device allocation back, via
 * real userfaultfd faults.
 *
 * Conventions: every function that can fail returns 0 (or a count) on
 * success and a negative errno on failure, kernel style.  After any error,
 * every byte the program wrote is still readable at its address.
 */
#ifndef USVM_H
#define USVM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version, defined here only (CMakeLists.txt reads it from this file). */
#define USVM_VERSION_MAJOR 0
#define USVM_VERSION_MINOR 2
#define USVM_VERSION_PATCH 0
#define USVM_STRINGIFY_(x) #x
#define USVM_STRINGIFY(x) USVM_STRINGIFY_(x)
#define USVM_VERSION_STRING USVM_STRINGIFY(USVM_VERSION_MAJOR) "." \
	USVM_STRINGIFY(USVM_VERSION_MINOR) "." USVM_STRINGIFY(USVM_VERSION_PATCH)

#define USVM_PAGE_SIZE 4096UL
/* Largest device allocation; populate requests are split at this alignment. */
#define USVM_BLOCK_SIZE (2UL << 20)

struct usvm_mm;
struct usvm_pagemap;
struct usvm_gpusvm;
struct usvm_device;

/* ------------------------------------------------------------------------ */
/* Capability probing                                                        */
/* ------------------------------------------------------------------------ */

/* How usvm opens userfaultfd (USVM_UFFD_MODE, usvm_caps.uffd_mode). */
enum usvm_uffd_mode {
	USVM_UFFD_AUTO = 0,     /* the best mode this process is allowed */
	USVM_UFFD_SYSCALL,      /* userfaultfd(2) with full fault handling: root,
				 * CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1 */
	USVM_UFFD_DEV,          /* /dev/userfaultfd (Linux 6.1+), full handling for
				 * whoever may open the node */
	USVM_UFFD_USER_ONLY,    /* UFFD_USER_MODE_ONLY: only faults from user space
				 * are seen; see "Unprivileged use" below */
};

/*
 * DOC: Unprivileged use
 *
 * With vm.unprivileged_userfaultfd=0 (the default of most distributions) an
 * unprivileged process gets full fault handling only through
 * /dev/userfaultfd, if the node is readable and writable for it (e.g.
 * `chmod 0666 /dev/userfaultfd`, or a udev rule giving a group access).
 * Otherwise usvm falls back to UFFD_USER_MODE_ONLY, where the kernel's own
 * accesses to managed memory are not reported: a system call that reads or
 * writes a device-resident (or never-touched) managed page -- read(2) or
 * write(2) with a managed buffer, O_DIRECT I/O, process_vm_readv,
 * MADV_POPULATE_* -- fails with EFAULT instead of faulting the page in.  The
 * bytes are not lost: touching the buffer from user space first (or
 * usvm_device_evict) brings them home.  usvm_probe()/`usvm info` say which
 * mode is in use and how to get a better one.
 */

struct usvm_caps {
	int uffd_available;        /* a userfaultfd could be opened at all */
	int uffd_errno;            /* errno of the failed attempt, 0 if ok */
	int uffd_mode;             /* enum usvm_uffd_mode actually used */
	int uffd_user_mode_only;   /* uffd_mode == USVM_UFFD_USER_ONLY */
	int unprivileged_sysctl;   /* /proc/sys/vm/unprivileged_userfaultfd, -1 unknown */
	int dev_userfaultfd;       /* /dev/userfaultfd: 1 usable, 0 no access, -1 absent */
	int is_root;
	int procmap_query;         /* PROCMAP_QUERY (Linux 6.11): O(log n) usvm_register */
	int feat_move;             /* UFFDIO_MOVE (migration by page moves) */
	int feat_event_remove;     /* madvise(DONTNEED) notifications */
	int feat_event_unmap;      /* munmap notifications */
	int feat_event_remap;      /* mremap notifications */
	int feat_sigbus;           /* UFFD_FEATURE_SIGBUS (device pool guard) */
	int feat_wp;               /* write-protect mode on anonymous memory */
	int thp_mode;              /* 0 never, 1 madvise, 2 always, -1 unknown */
	char kernel[128];          /* uname release */
};

/**
 * usvm_probe() - find out what this machine offers.
 * @caps: filled in.
 *
 * Never fails; missing pieces are reported in @caps.  Return: 0 if usvm can
 * run here (userfaultfd with UFFDIO_MOVE and the munmap/madvise/mremap
 * events), else the negative errno that usvm_mm_create() would return.
 */
int usvm_probe(struct usvm_caps *caps);

/** usvm_uffd_mode_name() - a one-line description of an enum usvm_uffd_mode. */
const char *usvm_uffd_mode_name(int mode);

/**
 * usvm_strerror() - a one-line explanation of a usvm error code.
 * @err: a negative errno returned by usvm.
 */
const char *usvm_strerror(int err);

/**
 * usvm_parse_size() - parse a byte count such as "4096", "64K", "2M", "1GiB".
 * Return: 0 and *@out, -EINVAL (not a size) or -ERANGE (too large).
 */
int usvm_parse_size(const char *s, size_t *out);

/* One tunable: every option is an environment variable USVM_<NAME>. */
struct usvm_option {
	const char *name;          /* e.g. "fault_threads" */
	char env[48];              /* e.g. "USVM_FAULT_THREADS" */
	const char *type;          /* "size", "number", "choice", "text" */
	const char *def;           /* the default, as text */
	const char *doc;           /* one line */
	char value[128];           /* the value in effect now, as text */
	const char *source;        /* "default", "environment", or "default
				    * (environment value invalid)" */
};

/**
 * usvm_option_info() - describe option @i (0, 1, ... until -ENOENT).
 * Values are read from the environment when objects are created; an
 * invalid value is reported once on stderr and the default is used.
 * Return: 0, -ENOENT past the last option, -EINVAL.
 */
int usvm_option_info(unsigned int i, struct usvm_option *out);

/* ------------------------------------------------------------------------ */
/* Address space                                                             */
/* ------------------------------------------------------------------------ */

struct usvm_mm_options {
	/* Virtual size of each managed arena (default USVM_ARENA_SIZE or 1 GiB). */
	size_t arena_size;
	/* CPU fault handler threads (default USVM_FAULT_THREADS or 4). */
	unsigned int fault_threads;
	/* Start tracing to this file (usvm_trace_start) unless a trace is on. */
	const char *trace_file;
};

/**
 * usvm_mm_create() - create a managed address space.
 * @opts: options, or NULL for the defaults (environment variables apply).
 * @out: the new mm.
 *
 * Opens userfaultfd in the best mode allowed (see "Unprivileged use") and
 * starts the fault-handling threads.
 * Return: 0, -EPERM when userfaultfd is not permitted, -ENOSYS when the kernel
 * lacks userfaultfd, UFFDIO_MOVE or its events (Linux 6.8+), -ENOMEM.
 */
int usvm_mm_create(const struct usvm_mm_options *opts, struct usvm_mm **out);

/**
 * usvm_mm_destroy() - tear down an address space.
 *
 * Every device-resident page is migrated back first; registered ranges are
 * unregistered (their bytes stay in place); managed allocations are unmapped.
 * Devices created on @mm may be destroyed before or after it: the mm's
 * bookkeeping lives until the last device is gone (their accesses fail with
 * -EFAULT meanwhile).  A no-op in a child process for the parent's mm.
 */
void usvm_mm_destroy(struct usvm_mm *mm);

/*
 * DOC: fork()
 *
 * fork() is supported.  Before the child is created, every device-resident
 * page of every mm of the process is brought back to system memory (a
 * pthread_atfork handler; new migrations into device memory wait until the
 * fork is over), so the child inherits an ordinary copy-on-write snapshot
 * of every byte -- the observable result of the kernel sharing device
 * pages copy-on-write -- and parent and child are isolated afterwards.
 * Pages the parent shares with a child cannot move by UFFDIO_MOVE; populate
 * makes them exclusive (MADV_POPULATE_WRITE, which copies them if the
 * child still shares them) and moves them then, so populate succeeds.
 * In the child, the parent's usvm objects are unusable: calls fail with
 * -ENODEV and their destroy functions do nothing.  The child may create
 * its own mm.  vfork() and posix_spawn() are not affected.
 */

/**
 * usvm_alloc() - allocate managed memory (like cudaMallocManaged).
 * @size: bytes, rounded up to pages; allocations >= 64 KiB are 64 KiB
 *        aligned, >= 2 MiB are 2 MiB aligned.
 * Return: 0, -EINVAL for size 0, -ENOMEM.  Memory reads as zero.
 */
int usvm_alloc(struct usvm_mm *mm, size_t size, void **out);

/**
 * usvm_free() - free a managed allocation (device copies are dropped).
 *
 * The CPU pages of a small (arena) allocation are discarded later, in
 * batches of USVM_FREE_BATCH bytes (the addresses are not handed out again
 * before): a free costs bookkeeping, not a TLB flush.
 * Return: 0, -EINVAL if @ptr is not the start of a live allocation
 * (including a double free).
 */
int usvm_free(struct usvm_mm *mm, void *ptr);

/**
 * usvm_register() - adopt memory the program already has.
 * @addr: page aligned start of private anonymous memory (malloc, mmap).
 * @len: page aligned length.
 *
 * The check costs one PROCMAP_QUERY per mapping on Linux 6.11+ (else a read
 * of /proc/self/maps).  mprotect() of registered memory is not reported by
 * the kernel: keep it read-write while it is registered.
 * Return: 0, -EINVAL (unaligned, zero length, not anonymous private
 * read-write memory), -EEXIST (overlaps a managed range), -EFAULT (not
 * mapped).
 */
int usvm_register(struct usvm_mm *mm, void *addr, size_t len);

/*
 * DOC: Changing managed memory behind usvm's back
 *
 * The kernel reports munmap, madvise and mremap of managed memory
 * (userfaultfd events), and usvm applies each before any later access, CPU
 * or device, is served: an access after the call returned sees its effect.
 *
 * - munmap: device copies are dropped; a registered range unmapped whole is
 *   forgotten, one unmapped in part is split into what is left (a device
 *   allocation with pages on both sides of a hole inside one 2 MiB block
 *   comes home first).  The freed addresses can be registered again.
 * - madvise(MADV_DONTNEED/FREE/REMOVE): device copies are dropped; the
 *   range reads as zeros on the CPU and on devices.
 * - mremap: device-resident pages follow the move.  A part mremap grows is
 *   not tracked until the program registers it (the kernel reports only
 *   the old length, and nothing at all for growth in place); until then
 *   CPU accesses there behave as plain memory and devices get -EFAULT.
 * - mprotect: the kernel reports nothing.  CPU accesses follow the new
 *   protection (a read of a device-resident page of read-only memory comes
 *   back by copy; a write faults as usual); populate of memory that is no
 *   longer read-write fails with -EFAULT; device accesses to system pages
 *   honour it (a fatal device fault), device-resident pages do not.
 */

/**
 * usvm_unregister() - give a registered range back to the program.
 *
 * Every device-resident page is migrated back first: all bytes stay readable
 * at their addresses.  @addr/@len must be exactly a registered range.
 * Return: 0, -EINVAL.
 */
int usvm_unregister(struct usvm_mm *mm, void *addr, size_t len);

/**
 * usvm_where() - residency of one page.
 * @addr: any address in a managed page.
 * @pagemap: set to the pagemap holding the page, or NULL for system memory.
 * Return: 0, -EFAULT if @addr is not managed.
 */
int usvm_where(struct usvm_mm *mm, const void *addr, struct usvm_pagemap **pagemap);

/**
 * usvm_resident_bytes() - bytes of [addr, addr+len) held by @pagemap
 * (NULL: held in system memory).  Return: bytes, or -EFAULT.
 */
long usvm_resident_bytes(struct usvm_mm *mm, const void *addr, size_t len,
			 struct usvm_pagemap *pagemap);

/* ---- advice, prefetch, discard, attributes (cudaMemAdvise & co.) -------- */

enum usvm_advice {
	/* @target: a struct usvm_pagemap * (or NULL: system memory).  Device
	 * faults migrate there; nothing else moves it away but eviction,
	 * CPU faults on device memory and explicit calls. */
	USVM_ADVISE_PREFERRED_LOCATION,
	USVM_ADVISE_UNSET_PREFERRED_LOCATION,
	/* @target: a struct usvm_device *.  The device maps the range where
	 * it lives (system memory, or a peer's memory when it has peer
	 * access) instead of migrating it on access. */
	USVM_ADVISE_ACCESSED_BY,
	USVM_ADVISE_UNSET_ACCESSED_BY,
	/* Read duplication (cudaMemAdviseSetReadMostly): a device read fault
	 * makes a read-only device copy instead of migrating; the CPU keeps
	 * its pages, write-protected (userfaultfd WP) while copies exist; any
	 * write, CPU or device, collapses the copies first.  @target unused. */
	USVM_ADVISE_READ_MOSTLY,
	USVM_ADVISE_UNSET_READ_MOSTLY,
};

/**
 * usvm_advise() - advise how [addr, addr+len) is used (cudaMemAdvise; in
 * the kernel, a GPU SVM driver's range attributes such as xe's preferred
 * location).
 * The range is rounded out to pages and must be managed by @mm.  Advice
 * follows the addresses until unset, or until the memory is freed or
 * unregistered; a pagemap named in advice stays alive until then.
 * Return: 0, -EINVAL (bad advice or range), -EFAULT (not managed),
 * -ENOSPC (8 devices accessing already), -EOPNOTSUPP (READ_MOSTLY on a
 * kernel without userfaultfd write-protect), -ENOMEM, -ENODEV (a fork child).
 */
int usvm_advise(struct usvm_mm *mm, void *addr, size_t len, enum usvm_advice advice,
		void *target);

/**
 * usvm_discard() - the contents of [addr, addr+len) are no longer needed:
 * device and system copies are dropped without migrating anything; the next
 * read, CPU or device, sees zeros (the kernel's MADV_DONTNEED, without its
 * event round trip; CUDA's cudaMemDiscardBatchAsync for one range,
 * synchronously, where CUDA's reads are indeterminate instead of zero).
 * The range is rounded in to whole pages.
 * Return: 0, -EINVAL, -EFAULT (not managed), -ENODEV.
 */
int usvm_discard(struct usvm_mm *mm, void *addr, size_t len);

/**
 * usvm_prefetch() - migrate [addr, addr+len) ahead of use
 * (cudaMemPrefetchAsync, synchronously; the kernel's drm_gpusvm prefetch
 * through populate_mm): into @pagemap (usvm_pagemap_populate_mm with no
 * timeslice), or with @pagemap NULL back to system memory.
 * Return: what usvm_pagemap_populate_mm() returns, or 0, -EINVAL, -EFAULT
 * (not managed), -EIO (a copy kept failing), -ENODEV.
 */
int usvm_prefetch(struct usvm_mm *mm, void *addr, size_t len, struct usvm_pagemap *pagemap);

/* An asynchronous prefetch in flight (usvm_prefetch_async). */
struct usvm_prefetch_req;

/**
 * usvm_prefetch_async() - usvm_prefetch() on a thread of its own
 * (cudaMemPrefetchAsync with its stream): returns at once, the migration
 * runs meanwhile; the program may touch the range while it does (every byte
 * stays right; the pages just end up where the last mover put them).
 * usvm_prefetch_wait() must be called on every handle, in the process
 * that made it.  The mm and the pagemap stay alive until then.
 * Return: 0 and *@out, -EINVAL, -ENODEV, -ENOMEM, -EAGAIN (no thread).
 */
int usvm_prefetch_async(struct usvm_mm *mm, void *addr, size_t len,
			struct usvm_pagemap *pagemap, struct usvm_prefetch_req **out);
/**
 * usvm_prefetch_wait() - wait for @req and free it.
 * Return: what usvm_prefetch() would have returned; -ENODEV in a fork child
 * for its parent's request (which is not freed there).
 */
int usvm_prefetch_wait(struct usvm_prefetch_req *req);

#define USVM_RANGE_MAX_LOCATIONS 8

/* What usvm_range_attr() reports (cudaMemRangeGetAttributes).  A location
 * is a pagemap; NULL with the *_system flag set means system memory. */
struct usvm_range_attrs {
	struct usvm_pagemap *preferred;   /* the same for the whole range, or NULL */
	int preferred_system;             /* ... system memory */
	int preferred_mixed;              /* advice differs across the range (the fields
					   * above and below are then empty) */
	unsigned int naccessed_by;        /* devices advised on the whole range */
	struct usvm_device *accessed_by[USVM_RANGE_MAX_LOCATIONS];
	int read_mostly;                  /* advised read-mostly (the whole range) */
	struct usvm_pagemap *last_prefetch; /* the same for the whole range, or NULL */
	int last_prefetch_system;
	uint64_t bytes_system;            /* in system memory (or never touched) */
	unsigned int nresident;
	struct {
		struct usvm_pagemap *pagemap;
		uint64_t bytes;
	} resident[USVM_RANGE_MAX_LOCATIONS]; /* per pagemap holding some of it */
};

/**
 * usvm_range_attr() - advice and residency of [addr, addr+len)
 * (cudaMemRangeGetAttributes; the kernel has no counterpart).
 * Return: 0, -EINVAL, -EFAULT (not managed), -ENODEV.
 */
int usvm_range_attr(struct usvm_mm *mm, const void *addr, size_t len,
		    struct usvm_range_attrs *out);

struct usvm_mm_stats {
	/* Every fault message is counted once, in exactly one class:
	 * cpu_faults = first_touch + devmem + raced. */
	uint64_t cpu_faults;            /* userfaultfd faults served */
	uint64_t cpu_faults_devmem;     /* ... on device-resident pages */
	uint64_t cpu_faults_first_touch;/* ... on never-touched pages (zero-filled) */
	uint64_t cpu_faults_raced;      /* ... already resolved by someone else */
	uint64_t timeslice_waits;       /* devmem faults that waited out a timeslice */
	uint64_t migrations_to_ram;     /* device allocations brought back */
	uint64_t bytes_to_ram;
	uint64_t ns_to_ram;
	uint64_t migrations_to_dev;     /* populate pieces that moved data */
	uint64_t bytes_to_dev;
	uint64_t ns_to_dev;
	uint64_t allocs, frees;
	uint64_t live_allocs, live_bytes;
	uint64_t registered_ranges;
	uint64_t events_remove, events_unmap, events_remap;
	uint64_t device_bytes_dropped;  /* device copies discarded by free/DONTNEED/munmap */
	uint64_t free_pending_bytes;    /* freed, CPU pages not discarded yet (free_batch) */
	uint64_t dup_collapses;         /* writes to read-mostly pages that dropped the
					 * device copies first (write-protect faults) */
	int uffd_mode;                  /* enum usvm_uffd_mode in use */
};

int usvm_mm_stats(struct usvm_mm *mm, struct usvm_mm_stats *out);
void usvm_mm_stats_print(struct usvm_mm *mm, FILE *f);

/* ------------------------------------------------------------------------ */
/* Events: tracing, probes, callbacks                                        */
/* ------------------------------------------------------------------------ */

/*
 * Every CPU fault served, device fault, migration, populate call,
 * invalidation and unbind is an event.  Each fires a USDT probe (provider
 * "usvm", see README) and, while tracing or a subscriber is on, is written
 * to the trace file and handed to the subscribers.  With both off an event
 * costs one relaxed atomic load.
 */
enum usvm_event_type {
	USVM_EV_CPU_FAULT,      /* a CPU page fault was served (cause: usvm_fault_kind) */
	USVM_EV_DEVICE_FAULT,   /* a device page fault was served (from: the device) */
	USVM_EV_MIGRATE,        /* pages moved between system and device memory */
	USVM_EV_POPULATE,       /* a usvm_pagemap_populate_mm() call returned */
	USVM_EV_INVALIDATE,     /* device mappings of a range were invalidated */
	USVM_EV_UNBIND,         /* a pagemap was unbound (every page went home) */
	USVM_EV_NR
};

/* Why pages migrated (USVM_EV_MIGRATE), or what invalidated (USVM_EV_INVALIDATE). */
enum usvm_event_cause {
	USVM_CAUSE_NONE,
	USVM_CAUSE_POPULATE,    /* usvm_pagemap_populate_mm, a device fault's migration */
	USVM_CAUSE_CPU_FAULT,   /* a CPU touched a device-resident page */
	USVM_CAUSE_EVICT,       /* device memory pressure or an explicit eviction */
	USVM_CAUSE_PEER,        /* another pagemap took the pages */
	USVM_CAUSE_RANGE,       /* unregister, teardown, fork, range eviction */
	USVM_CAUSE_UNBIND,      /* the pagemap is being unbound */
	USVM_CAUSE_UNMAP,       /* invalidations: munmap, free */
	USVM_CAUSE_DISCARD,     /* invalidations: MADV_DONTNEED and friends */
	USVM_CAUSE_MIGRATE,     /* invalidations: the pages are about to move */
	USVM_CAUSE_WRITE,       /* invalidations: a write collapses read-only copies */
	USVM_CAUSE_NR
};

/* USVM_EV_CPU_FAULT causes. */
enum usvm_fault_kind {
	USVM_FAULT_FIRST_TOUCH, /* a never-touched page: zero-filled */
	USVM_FAULT_DEVMEM,      /* a device-resident page: migrated back */
	USVM_FAULT_RACED,       /* already resolved by someone else */
	USVM_FAULT_TIMESLICE,   /* device-resident, waited out its timeslice first */
};

struct usvm_event {
	enum usvm_event_type type;
	int cause;              /* enum usvm_event_cause, or enum usvm_fault_kind */
	uint64_t addr, len;     /* the range concerned */
	const char *from, *to;  /* migrations: "system" or a pagemap name; device
				 * faults: from = the device; populate: to = pagemap */
	uint64_t start_ns;      /* CLOCK_MONOTONIC */
	uint64_t dur_ns;        /* faults: from the message being read to served */
	int result;             /* 0 or -errno (populate, device faults) */
	uint32_t tid;           /* the thread that did it (gettid) */
};

/* Called on the thread where the event happened, possibly with usvm locks
 * held: it must be quick and must not call usvm. */
typedef void (*usvm_event_fn)(const struct usvm_event *ev, void *arg);

/**
 * usvm_event_subscribe() - call @fn(ev, @arg) for every event from now on.
 * Return: 0, -EINVAL (no @fn), -EEXIST (already subscribed), -ENOSPC (8
 * subscribers already).
 */
int usvm_event_subscribe(usvm_event_fn fn, void *arg);
/* Return: 0, -ENOENT (not subscribed).  Once it returns, @fn is not running
 * and will not be called again. */
int usvm_event_unsubscribe(usvm_event_fn fn, void *arg);

/**
 * usvm_trace_start() - write every event to @path in the Chrome Trace Event
 * Format (opens in Perfetto UI and chrome://tracing; `usvm trace` sums it
 * up).  USVM_TRACE=path does the same when the first mm is created.
 *
 * Events are buffered per thread and written in batches; the file is valid
 * JSON after every batch, and at exit (atexit) or usvm_trace_stop() every
 * buffer is written.
 * Return: 0, -EBUSY (a trace is being written already), -errno from open.
 */
int usvm_trace_start(const char *path);
/* Write what is buffered and close the file.  Return: 0, -ENOENT (no trace). */
int usvm_trace_stop(void);
/* The name of an event type / cause / fault kind, for printing. */
const char *usvm_event_type_name(int type);
const char *usvm_event_cause_name(const struct usvm_event *ev);

/* ------------------------------------------------------------------------ */
/* Pagemaps: device memory providers                                         */
/* ------------------------------------------------------------------------ */

/**
 * usvm_sim_pagemap_create() - a simulated device memory of @capacity bytes.
 * @name: for statistics (copied).
 *
 * The pool lives in its own mapping, never reachable through managed
 * pointers; pages move in and out of it by UFFDIO_MOVE.  Its memory is
 * committed as it is used, like device memory being filled.
 * Return: 0, -EINVAL (capacity 0 or not page aligned), -ENOMEM (more than
 * the machine's RAM + swap, or out of memory), -ENOSYS.
 */
int usvm_sim_pagemap_create(const char *name, size_t capacity,
			    struct usvm_pagemap **out);

/**
 * usvm_pagemap_populate_mm() - populate [start, end) of @mm with device memory.
 * @timeslice_ms: the migrated pages stay in device memory at least this long
 *                before a CPU fault may take them back.
 *
 * Best effort, like the kernel's drm_pagemap_populate_mm(): existing data is
 * migrated, never-touched pages are cleared, pages already in this pagemap
 * stay (only the missing part moves and only that much device memory is
 * allocated), pages in another pagemap are moved over.  Requests are split at
 * USVM_BLOCK_SIZE: each piece is one device allocation.  When the pool is
 * full, least recently used allocations are evicted first.
 *
 * Return: 0; -EINVAL (unaligned, empty or wrapping range); -EFAULT (memory not
 * managed by @mm); -ENOMEM (device memory exhausted even after eviction; some
 * pieces may have been populated); -ENODEV after unbind; -EBUSY (some pages
 * could not be moved: pinned, or a zap of MADV_DONTNEED still pending);
 * -EIO (a device copy failed; those pages stayed where they were).  After
 * any error every byte is where it was or where it moved, never lost.
 */
int usvm_pagemap_populate_mm(struct usvm_pagemap *pagemap, void *start, void *end,
			     struct usvm_mm *mm, unsigned long timeslice_ms);

/**
 * usvm_pagemap_evict() - migrate device allocations back to system memory.
 * @addr: evict the allocation holding this address (any mm), or NULL to
 *        evict every allocation of the pagemap.
 * Timeslices are not honoured (as drm_pagemap_evict_to_ram).  Transient
 * failures (the address space changing, a failed copy) are retried.
 * Return: bytes evicted (>= 0), -ENOENT if @addr is not in this pagemap,
 * -ENODEV (@mm unusable), -EIO if copies kept failing (data stays put).
 */
long usvm_pagemap_evict(struct usvm_pagemap *pagemap, struct usvm_mm *mm, const void *addr);

/**
 * usvm_pagemap_unbind() - the device goes away.
 *
 * From this call on populate requests fail with -ENODEV; every device page is
 * migrated back to system memory, then the pool is released.  Safe against
 * concurrent CPU faults and populates.  Return: 0, or -EBUSY when pages
 * could not be brought home for a minute (the pool is kept; no data lost).
 */
int usvm_pagemap_unbind(struct usvm_pagemap *pagemap);

/**
 * usvm_pagemap_destroy() - unbind (if needed) and drop the creator's reference.
 *
 * Pagemaps are reference counted like the kernel's drm_pagemap: devices
 * created with one hold a reference, so any destroy order is safe.  The
 * memory is freed when the last reference goes; until then the pagemap is
 * unbound (populate: -ENODEV, devices work from system memory).
 */
void usvm_pagemap_destroy(struct usvm_pagemap *pagemap);
/** usvm_pagemap_get() - take a reference (drm_pagemap_get). */
void usvm_pagemap_get(struct usvm_pagemap *pagemap);
/** usvm_pagemap_put() - drop a reference; the last one unbinds and frees. */
void usvm_pagemap_put(struct usvm_pagemap *pagemap);

const char *usvm_pagemap_name(const struct usvm_pagemap *pagemap);

struct usvm_pagemap_stats {
	uint64_t capacity_bytes;
	uint64_t used_bytes;           /* device pages allocated now */
	uint64_t peak_used_bytes;
	uint64_t live_allocations;     /* device allocations alive now */
	uint64_t populate_calls;
	uint64_t populate_ok;
	uint64_t populate_noop;        /* everything was already there */
	uint64_t populate_enomem, populate_enodev, populate_efault;
	uint64_t populate_einval, populate_ebusy, populate_eio;
	uint64_t pages_migrated_in;    /* pages whose data moved in */
	uint64_t pages_cleared;        /* never-touched pages zero-filled */
	uint64_t pages_already_present;
	uint64_t pages_from_peer;      /* moved from another pagemap */
	uint64_t migrations_to_dev, bytes_to_dev, ns_to_dev;
	uint64_t migrations_to_ram, bytes_to_ram, ns_to_ram;
	uint64_t cpu_fault_migrations; /* migrations back caused by CPU faults */
	uint64_t evictions, evicted_bytes;
	uint64_t unbound;
	uint64_t headroom_bytes;       /* kept free by evicting ahead (USVM_HEADROOM) */
	uint64_t headroom_evictions, headroom_evicted_bytes; /* ... those evictions */
};

int usvm_pagemap_stats(struct usvm_pagemap *pagemap, struct usvm_pagemap_stats *out);
void usvm_pagemap_stats_print(struct usvm_pagemap *pagemap, FILE *f);

/* ------------------------------------------------------------------------ */
/* Simulated devices and their GPU SVM views                                 */
/* ------------------------------------------------------------------------ */

/* When a device fault migrates the faulting range into device memory. */
enum usvm_migrate_policy {
	USVM_POLICY_ALWAYS = 0,   /* every fault on a range not in device memory (default) */
	USVM_POLICY_ONCE,         /* the first fault of each range only (Xe v6.17) */
	USVM_POLICY_NEVER,        /* never: map system or peer pages in place */
};

struct usvm_device_options {
	const char *name;                 /* for statistics */
	struct usvm_pagemap *pagemap;     /* this device's memory (own or shared); NULL: none */
	struct usvm_pagemap *preferred;   /* where faults migrate to; NULL: @pagemap */
	enum usvm_migrate_policy policy;
	unsigned long timeslice_ms;       /* passed to populate_mm */
	size_t chunk_sizes[4];            /* descending, last 4 KiB; zeros: 2M, 64K, 4K */
	size_t notifier_size;             /* 0: 512 MiB */
	unsigned int threads;             /* worker threads running kernels; 0: 2 */
	int peer_access;                  /* may map pages of other pagemaps in place */
};

/**
 * usvm_device_create() - a simulated device over @mm with its own GPU SVM.
 *
 * Its kernels read and write managed memory only through its page table,
 * filled on device faults by the GPU SVM fault flow (find_or_insert range,
 * migration policy, populate_mm, get_pages, bind; retry on -EAGAIN).
 * Return: 0, -EINVAL (bad chunk sizes), -ENOMEM.
 */
int usvm_device_create(struct usvm_mm *mm, const struct usvm_device_options *opts,
		       struct usvm_device **out);
/**
 * usvm_device_destroy() - remove a device and its GPU SVM view.
 * No kernel may be running on it.  Data in the device's pagemap stays there
 * (it belongs to the pagemap).  The device holds references to its mm and
 * pagemaps: they may be destroyed before or after it.
 */
void usvm_device_destroy(struct usvm_device *dev);
const char *usvm_device_name(const struct usvm_device *dev);

/* Handed to kernels: identifies the device thread doing the access. */
struct usvm_kctx;

/* A device kernel: called once per index; non-zero return stops the launch. */
typedef int (*usvm_kernel_fn)(struct usvm_kctx *ctx, unsigned long idx, void *arg);

/**
 * usvm_device_launch() - run @fn(ctx, i, @arg) for i in [0, @n) on the
 * device's worker threads and wait for completion.
 * Return: 0, the first non-zero kernel return, or -EFAULT when a kernel
 * touched memory no one mapped (a fatal device fault: reported, never a hang).
 */
int usvm_device_launch(struct usvm_device *dev, usvm_kernel_fn fn, unsigned long n, void *arg);

/*
 * Device memory accesses, valid only inside a kernel.  Each translates
 * through the device page table and takes a device fault on a miss.
 * Return 0 or a negative errno (-EFAULT: fatal device fault).
 */
int usvm_dev_read(struct usvm_kctx *ctx, const void *addr, void *buf, size_t len);
int usvm_dev_write(struct usvm_kctx *ctx, void *addr, const void *buf, size_t len);
int usvm_dev_memset(struct usvm_kctx *ctx, void *addr, int c, size_t len);
/*
 * Atomics want the page in this device's memory (devmem_only faults, as
 * drm_gpusvm): they migrate it there and retry.  If other devices or the
 * CPU keep taking it away for 200 ms, the atomic runs where the page is
 * (system or peer memory, as a device with PCIe or link atomics would)
 * rather than starve; usvm_device_stats counts these in atomics_elsewhere.
 */
int usvm_dev_atomic_add_u64(struct usvm_kctx *ctx, uint64_t *addr, uint64_t v, uint64_t *old);
int usvm_dev_atomic_cmpxchg_u64(struct usvm_kctx *ctx, uint64_t *addr, uint64_t expected,
				uint64_t desired, uint64_t *old);
struct usvm_device *usvm_kctx_device(struct usvm_kctx *ctx);

/* Host-side helpers running one-shot kernels (for tests and workloads). */
int usvm_device_read(struct usvm_device *dev, const void *addr, void *buf, size_t len);
int usvm_device_write(struct usvm_device *dev, void *addr, const void *buf, size_t len);

/**
 * usvm_device_prefetch() - fault [addr, addr+len) into the device ahead of
 * use (migrating per the device's policy).  Return 0 or -errno.
 */
int usvm_device_prefetch(struct usvm_device *dev, void *addr, size_t len);

/** usvm_device_evict() - send every device page of [addr, addr+len) home. */
int usvm_device_evict(struct usvm_device *dev, void *addr, size_t len);

struct usvm_device_stats {
	uint64_t device_faults;        /* translation misses served */
	uint64_t fault_retries;        /* -EAGAIN / invalidation retries */
	uint64_t fatal_faults;         /* accesses to memory nobody mapped */
	uint64_t migrations_requested; /* populate_mm calls from the fault flow */
	uint64_t migration_failures;   /* ... that failed (fell back to system) */
	uint64_t ranges_created, ranges_removed, ranges_live;
	uint64_t invalidations;        /* range invalidations received */
	uint64_t bytes_mapped_system;  /* bound from system memory */
	uint64_t bytes_mapped_device;  /* bound from this device's pagemap */
	uint64_t bytes_mapped_peer;    /* bound from another pagemap in place */
	uint64_t atomics;
	uint64_t atomics_elsewhere;    /* ... run in system/peer memory: the page kept
					* being taken away (see usvm_dev_atomic_add_u64) */
	uint64_t bytes_read, bytes_written;
	/* Policy (see usvm_advise, and thrashing mitigation in usvm(3)). */
	uint64_t advice_in_place;      /* device faults that mapped in place per advice */
	uint64_t thrash_events;        /* blocks found thrashing */
	uint64_t thrash_throttles, thrash_pins;
	uint64_t thrash_bytes_kept;    /* bytes pinned blocks did not move */
	uint64_t density_prefetches;   /* faults that migrated their whole 2 MiB block */
	uint64_t density_prefetch_bytes; /* ... bytes beyond the faulting range */
	uint64_t dup_copies, dup_bytes; /* read-only copies made (USVM_ADVISE_READ_MOSTLY) */
};

int usvm_device_stats(struct usvm_device *dev, struct usvm_device_stats *out);
void usvm_device_stats_print(struct usvm_device *dev, FILE *f);

#ifdef __cplusplus
}
#endif

#endif /* USVM_H */

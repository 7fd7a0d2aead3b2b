// SPDX-License-Identifier: MIT
/*
 * DOC: CPU faults (the dev_pagemap migrate_to_ram path, on userfaultfd)
 *
 * One reader thread reads every message of the mm's userfaultfds.  Events
 * (munmap, madvise, mremap) go to the applier thread, which applies them in
 * the order they were read; faults are served by the reader itself when it
 * can without waiting, else by worker threads, but only once every event
 * read before them has been applied.  That is the whole ordering
 * argument: the kernel releases the caller of munmap/madvise/mremap when its
 * event is *read*, so any access the program makes after that call returns
 * faults later, is read later, and is served after the event took effect.
 *
 * The reader never waits for a lock: threads holding block locks may be
 * waiting for it to read (UFFDIO_MOVE/COPY/ZEROPAGE fail with -EAGAIN while
 * an event is unread).  Workers serving a fault drop their locks on -EAGAIN
 * and defer the fault instead of spinning.
 *
 * A fault on a page held by a device allocation migrates the allocation
 * back (its owner's migrate_to_ram op); within the allocation's timeslice
 * nothing moves and the fault is deferred until the timeslice ends, as the
 * kernel's __drm_pagemap_migrate_to_ram makes the toucher wait.  A fault on
 * a never-touched page maps zero pages.  Each fault is counted once, as
 * first touch, device memory, or raced (someone resolved it first).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include "mm.h"
#include "uffd.h"

/* Zero pages mapped ahead of a first touch, so sequential touches of fresh
 * memory do not pay one handler round trip per page. */
#define FIRST_TOUCH_PAGES 16
#define RETRY_EAGAIN_NS 50000ull
#define RETRY_PENDING_NS 200000ull
#define RETRY_ERROR_NS 1000000ull

/* ---- queues ----------------------------------------------------------------- */

static int q_push(struct mm_queue *q, const struct mm_msg *m)
{
	if (q->count == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 256, i;
		struct mm_msg *v = malloc(cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		for (i = 0; i < q->count; i++)
			v[i] = q->v[(q->head + i) % q->cap];
		free(q->v);
		q->v = v;
		q->cap = cap;
		q->head = 0;
	}
	q->v[(q->head + q->count) % q->cap] = *m;
	q->count++;
	return 0;
}

static void q_pop(struct mm_queue *q, struct mm_msg *out)
{
	*out = q->v[q->head];
	q->head = (q->head + 1) % q->cap;
	q->count--;
}

static const struct mm_msg *q_front(const struct mm_queue *q)
{
	return q->count ? &q->v[q->head] : NULL;
}

static void poke(struct mm_dispatch *d)
{
	uint64_t one = 1;

	if (write(d->wake_efd, &one, sizeof(one)) < 0) {
		/* the counter is far from overflowing; the reader polls anyway */
	}
}

/* ---- serving one fault ----------------------------------------------------------- */

enum fault_class { FAULT_FIRST_TOUCH, FAULT_DEVMEM, FAULT_RACED };

/* Count a fault once (bit 0 of m->counted), and its timeslice wait once (bit 1). */
static void classify(struct usvm_mm *mm, struct mm_msg *m, enum fault_class c, int waited)
{
	if (!(m->counted & 1)) {
		m->counted |= 1;
		STAT_ADD(mm->st.cpu_faults, 1);
		if (c == FAULT_FIRST_TOUCH)
			STAT_ADD(mm->st.cpu_faults_first_touch, 1);
		else if (c == FAULT_DEVMEM)
			STAT_ADD(mm->st.cpu_faults_devmem, 1);
		else
			STAT_ADD(mm->st.cpu_faults_raced, 1);
	}
	if (waited && !(m->counted & 2)) {
		m->counted |= 2;
		STAT_ADD(mm->st.timeslice_waits, 1);
	}
}

/*
 * A read-only source of zeros for writable first-touch fills: a private
 * anonymous mapping that is never written reads as the shared zero page,
 * so UFFDIO_COPY from it reads one cache-hot page, whatever the length.
 */
static uintptr_t zero_src;
static pthread_once_t zero_src_once = PTHREAD_ONCE_INIT;

static void zero_src_init(void)
{
	void *p = mmap(NULL, USVM_BLOCK_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p != MAP_FAILED) {
		madvise(p, USVM_BLOCK_SIZE, MADV_NOHUGEPAGE); /* the 4 KiB zero page */
		zero_src = (uintptr_t)p;
	}
}

/* May a fill cover @p after the faulting page?  Not a page with device
 * data or a pending state, nor an arena page nobody allocated. */
static int fillable(struct usvm_region *r, uintptr_t p, int stateful)
{
	if (stateful && (region_page(r, p)->dm || page_flags(region_page(r, p))))
		return 0;
	return r->kind != USVM_REGION_ARENA || mm_page_allocated(r, p);
}

/*
 * A never-touched page faulted: fill it and the fillable pages after it,
 * within the block.  A read maps zero pages (FIRST_TOUCH_PAGES ahead).  A
 * write gets private zeroed pages at once (UFFDIO_COPY from zeros) - with
 * the zero page it would take a second, copy-on-write fault and a TLB
 * flush per page - up to write_fill bytes (default: the rest of the
 * block) when the block was never touched (the program is writing fresh
 * memory: as a THP fault would), else FIRST_TOUCH_PAGES.  Block lock
 * held; wakes no one.  Returns bytes mapped or -errno (-EEXIST: already
 * there).
 */
static long fill_zero(struct usvm_mm *mm, struct usvm_region *r, int uffd, uintptr_t page,
		      int write)
{
	uintptr_t end = page + USVM_PAGE_SIZE, lim, p;
	unsigned int blk = region_blk(r, page);
	int stateful = blk & MM_BLK_STATE, fresh;
	long ret;

	lim = MIN_UL(r->end, ALIGN_DOWN_UL(page, USVM_BLOCK_SIZE) + USVM_BLOCK_SIZE);
	if (write)
		pthread_once(&zero_src_once, zero_src_init);
	write = write && zero_src;
	/* Registered ranges start "may have CPU pages" (mm.c): there the
	 * copy simply stops at the first page that exists (-EEXIST). */
	fresh = !blk || (r->kind == USVM_REGION_USER && !stateful);
	if (!write)
		lim = MIN_UL(lim, page + FIRST_TOUCH_PAGES * USVM_PAGE_SIZE);
	else if (fresh)
		lim = MIN_UL(lim, page + mm->write_fill);
	else
		lim = MIN_UL(lim, page + MIN_UL(mm->write_fill, FIRST_TOUCH_PAGES * USVM_PAGE_SIZE));
	while (end < lim && fillable(r, end, stateful))
		end += USVM_PAGE_SIZE;
	if (write)
		ret = uffd_copy(uffd, page, zero_src, end - page, 0);
	else
		ret = uffd_zeropage(uffd, page, end - page, 0);
	if (ret <= 0)
		return ret;
	region_blk_set(r, page, MM_BLK_CPU);
	/* The page is mapped again: a zap pending from a REMOVE is over. */
	if (stateful)
		for (p = page; p < page + (uintptr_t)ret; p += USVM_PAGE_SIZE)
			region_page_set_flags(r, p, 0, MM_PAGE_REMOVED);
	return ret;
}

/* A fault was served: from its message being read until now. */
static void fault_event(const struct mm_msg *m, int kind, uint64_t len)
{
	uint64_t now = usvm_now_ns();

	usvm_event(USVM_EV_CPU_FAULT, kind, ALIGN_DOWN_UL((uintptr_t)m->a, USVM_PAGE_SIZE), len,
		   NULL, NULL, m->read_ns, now - m->read_ns, 0);
}

/* Serve a fault on a managed page; regions and block lock held.
 * Returns 0 or when to retry. */
static uint64_t serve_page(struct usvm_mm *mm, struct usvm_region *r, struct mm_msg *m,
			   uintptr_t page)
{
	struct usvm_page *pg = region_page(r, page);
	struct mm_devmem *dm = (region_blk(r, page) & MM_BLK_STATE) ? pg->dm : NULL;
	uint64_t retry_at = 0;
	long ret;

	/* Counted before the faulting thread is woken: it may read the
	 * statistics as soon as it runs. */
	if (!dm) {
		ret = fill_zero(mm, r, m->uffd, page, !!(m->pf_flags & UFFD_PAGEFAULT_FLAG_WRITE));
		if (ret == -EAGAIN)
			return usvm_now_ns() + RETRY_EAGAIN_NS;
		classify(mm, m, ret > 0 ? FAULT_FIRST_TOUCH : FAULT_RACED, 0);
		uffd_wake(m->uffd, page, ret > 0 ? (size_t)ret : USVM_PAGE_SIZE);
		fault_event(m, ret > 0 ? USVM_FAULT_FIRST_TOUCH : USVM_FAULT_RACED,
			    ret > 0 ? (uint64_t)ret : USVM_PAGE_SIZE);
		return 0;
	}
	if (dm->since_ns > m->read_ns) {
		/*
		 * Read before this allocation took the page: the page was then
		 * present (its wake went out before populate could take it) or
		 * missing.  Present: the faulting thread runs already, and
		 * migrating back would undo a migration nobody asked to undo.
		 * Missing: the wake makes it fault again, on a fresh message.
		 */
		classify(mm, m, FAULT_RACED, 0);
		uffd_wake(m->uffd, page, USVM_PAGE_SIZE);
		fault_event(m, USVM_FAULT_RACED, USVM_PAGE_SIZE);
		return 0;
	}
	classify(mm, m, FAULT_DEVMEM, 0);
	ret = dm->ops->migrate_to_ram(dm, MM_MIGRATE_CPU_FAULT, page, &retry_at);
	classify(mm, m, FAULT_DEVMEM, ret == -EINPROGRESS);
	if (ret >= 0) {
		region_blk_set(r, page, MM_BLK_CPU);
		/* The page that faulted; the migrate event has what moved. */
		fault_event(m, m->counted & 2 ? USVM_FAULT_TIMESLICE : USVM_FAULT_DEVMEM,
			    USVM_PAGE_SIZE);
		return 0; /* the migration woke the waiters */
	}
	if (ret == -EINPROGRESS)
		return retry_at; /* inside the allocation's timeslice */
	return usvm_now_ns() + (ret == -EAGAIN ? RETRY_EAGAIN_NS : RETRY_ERROR_NS);
}

/* serve_fault() on the reader: a lock was busy, a worker must do it. */
#define SERVE_ON_WORKER UINT64_MAX

/* Take regions_lock for reading; on the reader (@on_reader) only if it is
 * free.  Return 1 (held) or 0 (busy). */
static int regions_lock_for(struct usvm_mm *mm, int on_reader)
{
	if (on_reader)
		return usvm_rwlock_tryrdlock(&mm->regions_lock);
	usvm_rwlock_rdlock(&mm->regions_lock);
	return 1;
}

/* Take @page's block lock, regions_lock held; on the reader only if it is
 * free.  Return 1 (held) or 0 (busy: regions_lock dropped too). */
static int block_lock_for(struct usvm_mm *mm, uintptr_t page, int on_reader)
{
	if (!on_reader) {
		mm_block_lock_acquire(mm, page);
		return 1;
	}
	if (mm_block_lock_try(mm, page))
		return 1;
	usvm_rwlock_unlock(&mm->regions_lock);
	return 0;
}

/*
 * A write to a write-protected page (DOC: Read duplication, advise.c): the
 * device copies of its block collapse (invalidated), then the block is
 * unprotected, which wakes the writer.  Not a CPU fault in the statistics'
 * sense (nothing is filled or migrated): counted as dup_collapses.  Returns
 * 0 (served), when to retry, or SERVE_ON_WORKER.
 */
static uint64_t serve_wp(struct usvm_mm *mm, struct mm_msg *m, int on_reader)
{
	uintptr_t page = ALIGN_DOWN_UL((uintptr_t)m->a, USVM_PAGE_SIZE), lo, hi;
	struct usvm_region *r;
	int err;

	if (!regions_lock_for(mm, on_reader))
		return SERVE_ON_WORKER;
	r = mm_region_find(mm, page);
	if (!r || r->uffd != m->uffd) {
		usvm_rwlock_unlock(&mm->regions_lock);
		err = uffd_writeprotect(m->uffd, page, USVM_PAGE_SIZE, 0);
		return err == -EAGAIN ? usvm_now_ns() + RETRY_EAGAIN_NS : 0;
	}
	if (!block_lock_for(mm, page, on_reader))
		return SERVE_ON_WORKER;
	/* The whole block is registered for write-protect (register_wp). */
	lo = MAX_UL(r->start, ALIGN_DOWN_UL(page, USVM_BLOCK_SIZE));
	hi = MIN_UL(r->end, ALIGN_DOWN_UL(page, USVM_BLOCK_SIZE) + USVM_BLOCK_SIZE);
	mm_invalidate(mm, lo, hi, USVM_INVAL_WRITE);
	err = uffd_writeprotect(m->uffd, lo, hi - lo, 0);
	if (err && err != -EAGAIN)
		err = uffd_writeprotect(m->uffd, page, USVM_PAGE_SIZE, 0);
	mm_block_lock_release(mm, page);
	usvm_rwlock_unlock(&mm->regions_lock);
	if (err == -EAGAIN)
		return usvm_now_ns() + RETRY_EAGAIN_NS;
	if (!(m->counted & 1)) {
		m->counted |= 1;
		STAT_ADD(mm->st.dup_collapses, 1);
	}
	return 0;
}

/*
 * Serve fault @m.  On the reader (@on_reader) no lock is waited for: a busy
 * one returns SERVE_ON_WORKER.  Returns 0 (served), or when to retry.
 */
static uint64_t serve_fault(struct usvm_mm *mm, struct mm_msg *m, int on_reader)
{
	uintptr_t page = ALIGN_DOWN_UL((uintptr_t)m->a, USVM_PAGE_SIZE);
	struct usvm_region *r;
	uint64_t retry = 0;

	if (m->pf_flags & UFFD_PAGEFAULT_FLAG_WP)
		return serve_wp(mm, m, on_reader);
	if (!regions_lock_for(mm, on_reader))
		return SERVE_ON_WORKER;
	r = mm_region_find(mm, page);
	if (!r || r->uffd != m->uffd) {
		/* Registered with us but no longer tracked (being unregistered
		 * or freed): plain anonymous memory, as the kernel would fill it. */
		usvm_rwlock_unlock(&mm->regions_lock);
		classify(mm, m, FAULT_RACED, 0);
		if (uffd_zeropage(m->uffd, page, USVM_PAGE_SIZE, 1) == -EAGAIN)
			return usvm_now_ns() + RETRY_EAGAIN_NS;
		uffd_wake(m->uffd, page, USVM_PAGE_SIZE);
		return 0;
	}
	if (atomic_load(&r->pending)) {
		/* An mremap target whose device pages are still being put back. */
		usvm_rwlock_unlock(&mm->regions_lock);
		return usvm_now_ns() + RETRY_PENDING_NS;
	}
	if (!block_lock_for(mm, page, on_reader))
		return SERVE_ON_WORKER;
	retry = serve_page(mm, r, m, page);
	mm_block_lock_release(mm, page);
	usvm_rwlock_unlock(&mm->regions_lock);
	return retry;
}

/* ---- the threads --------------------------------------------------------------- */

/* Set on the applier thread: the event being applied is its own work. */
static __thread int in_applier;

static void *applier_main(void *arg)
{
	struct usvm_mm *mm = arg;
	struct mm_dispatch *d = &mm->d;
	struct mm_msg m;

	in_applier = 1;
	pthread_setname_np(pthread_self(), "usvm-events");
	for (;;) {
		pthread_mutex_lock(&d->lock);
		while (!d->events.count && !atomic_load(&d->stopping))
			pthread_cond_wait(&d->event_cv, &d->lock);
		if (!d->events.count) {
			pthread_mutex_unlock(&d->lock);
			return NULL;
		}
		q_pop(&d->events, &m);
		d->applying = m;
		pthread_mutex_unlock(&d->lock);
		if (m.event) /* 0: applied early by mm_apply_queued_for() */
			mm_apply_event(mm, &m);
		pthread_mutex_lock(&d->lock);
		d->applying.event = 0;
		atomic_fetch_add(&d->ev_applied, 1);
		pthread_cond_broadcast(&d->applied_cv);
		pthread_mutex_unlock(&d->lock);
		poke(d);
	}
}

/* Queue what one read() returned; d->lock held. */
static void queue_msgs(struct mm_dispatch *d, int uffd, const struct uffd_msg *buf, size_t n)
{
	uint64_t now = usvm_now_ns();
	size_t i;

	for (i = 0; i < n; i++) {
		const struct uffd_msg *u = &buf[i];
		struct mm_msg m = { .uffd = uffd, .event = u->event };

		if (u->event == UFFD_EVENT_PAGEFAULT) {
			m.read_ns = now;
			m.a = u->arg.pagefault.address;
			m.pf_flags = (uint32_t)u->arg.pagefault.flags;
			m.ev_seq = atomic_load(&d->ev_read);
			/* Behind an unapplied event: wait for it. */
			if (m.ev_seq > atomic_load(&d->ev_applied) ? q_push(&d->gated, &m)
								  : q_push(&d->work, &m))
				uffd_wake(uffd, m.a, USVM_PAGE_SIZE); /* no memory: refault */
			continue;
		}
		if (u->event == UFFD_EVENT_REMAP) {
			m.a = u->arg.remap.from;
			m.b = u->arg.remap.to;
			m.c = u->arg.remap.len;
		} else if (u->event == UFFD_EVENT_REMOVE || u->event == UFFD_EVENT_UNMAP) {
			m.a = u->arg.remove.start;
			m.b = u->arg.remove.end;
		} else {
			continue; /* FORK is never asked for */
		}
		/* An event must not be lost: retry the allocation. */
		while (q_push(&d->events, &m))
			usleep(100);
		atomic_fetch_add(&d->ev_read, 1);
	}
	pthread_cond_signal(&d->event_cv);
}

/* Read every message @uffd has.  The generation is odd while inside read():
 * the kernel releases an event's caller during the read, before we count it. */
static int read_all(struct mm_dispatch *d, int uffd)
{
	struct uffd_msg buf[64];
	int any = 0;
	ssize_t n;

	do {
		/* No device data goes back into the CPU mapping while an event
		 * is between read() and its queue (mm_install_begin). */
		pthread_rwlock_wrlock(&d->install_lock);
		atomic_fetch_add(&d->read_gen, 1);
		n = read(uffd, buf, sizeof(buf));
		if (n > 0) {
			any = 1;
			pthread_mutex_lock(&d->lock);
			queue_msgs(d, uffd, buf, (size_t)n / sizeof(buf[0]));
			pthread_mutex_unlock(&d->lock);
		}
		atomic_fetch_add(&d->read_gen, 1);
		pthread_rwlock_unlock(&d->install_lock);
	} while (n == (ssize_t)sizeof(buf));
	return any;
}

/* Hand out gated faults whose events are applied and deferred faults that
 * are due; returns the poll timeout for the next deferred one. */
static int release_ready(struct mm_dispatch *d)
{
	uint64_t applied = atomic_load(&d->ev_applied), now = usvm_now_ns();
	uint64_t first = UINT64_MAX;
	size_t i, n;
	struct mm_msg m;

	pthread_mutex_lock(&d->lock);
	while (q_front(&d->gated) && q_front(&d->gated)->ev_seq <= applied) {
		q_pop(&d->gated, &m);
		if (q_push(&d->work, &m))
			uffd_wake(m.uffd, m.a, USVM_PAGE_SIZE);
	}
	for (i = 0, n = d->deferred.count; i < n; i++) {
		q_pop(&d->deferred, &m);
		if (m.when_ns <= now ? q_push(&d->work, &m) : q_push(&d->deferred, &m))
			uffd_wake(m.uffd, m.a, USVM_PAGE_SIZE);
		else if (m.when_ns > now)
			first = MIN_UL(first, m.when_ns);
	}
	pthread_mutex_unlock(&d->lock);
	if (first == UINT64_MAX)
		return -1;
	return (int)MIN_UL((first - now + 999999) / 1000000, 1000);
}

/*
 * Hand out the faults ready to be served: the reader keeps the first and
 * serves it itself when it can take the locks without waiting (a fault then
 * costs two thread switches: the faulting thread, the reader, back - not
 * three); the workers get the others, one wakeup each.
 */
static void dispatch_work(struct usvm_mm *mm)
{
	struct mm_dispatch *d = &mm->d;
	struct mm_msg m;
	uint64_t retry;
	size_t i;

	pthread_mutex_lock(&d->lock);
	if (!d->work.count) {
		pthread_mutex_unlock(&d->lock);
		return;
	}
	q_pop(&d->work, &m);
	for (i = 0; i < d->work.count && i < d->nworkers; i++)
		pthread_cond_signal(&d->work_cv);
	pthread_mutex_unlock(&d->lock);
	retry = serve_fault(mm, &m, 1);
	if (!retry)
		return;
	pthread_mutex_lock(&d->lock);
	if (retry == SERVE_ON_WORKER) {
		if (q_push(&d->work, &m))
			uffd_wake(m.uffd, m.a, USVM_PAGE_SIZE); /* it faults again */
		pthread_cond_signal(&d->work_cv);
	} else {
		m.when_ns = retry;
		if (q_push(&d->deferred, &m))
			uffd_wake(m.uffd, m.a, USVM_PAGE_SIZE);
		poke(d); /* the next poll's timeout must count it */
	}
	pthread_mutex_unlock(&d->lock);
}

static void *reader_main(void *arg)
{
	struct usvm_mm *mm = arg;
	struct mm_dispatch *d = &mm->d;
	struct pollfd pfd[3] = {
		{ .fd = mm->uffd_arena, .events = POLLIN },
		{ .fd = mm->uffd_user, .events = POLLIN },
		{ .fd = d->wake_efd, .events = POLLIN },
	};
	uint64_t spin_ns = (uint64_t)mm->reader_spin_us * 1000, last = 0;
	int timeout = -1;

	pthread_setname_np(pthread_self(), "usvm-reader");

	while (!atomic_load(&d->stopping)) {
		uint64_t v;
		int any, spin, n;

		/* Right after messages, keep polling without sleeping for a
		 * while: the next fault of a burst then finds the reader
		 * running instead of paying a wakeup (on a VM, of an idle
		 * vCPU: tens of microseconds).  Spinning is a bare poll and
		 * a yield: a faulting thread woken on this CPU runs first. */
		spin = last && usvm_now_ns() - last < spin_ns;
		n = poll(pfd, 3, spin ? 0 : timeout);
		if (n < 0 && errno != EINTR)
			break;
		if (!n && spin) {
			sched_yield();
			continue;
		}
		if (pfd[2].revents & POLLIN && read(d->wake_efd, &v, sizeof(v)) < 0) {
			/* EAGAIN: someone else drained it */
		}
		any = read_all(d, mm->uffd_arena);
		any |= read_all(d, mm->uffd_user);
		atomic_fetch_add(&d->passes, 1);
		timeout = release_ready(d);
		dispatch_work(mm);
		if (any)
			last = usvm_now_ns();
	}
	return NULL;
}

static void *worker_main(void *arg)
{
	struct usvm_mm *mm = arg;
	struct mm_dispatch *d = &mm->d;
	struct mm_msg m;

	pthread_setname_np(pthread_self(), "usvm-fault");

	for (;;) {
		uint64_t retry;

		pthread_mutex_lock(&d->lock);
		while (!d->work.count && !atomic_load(&d->stopping))
			pthread_cond_wait(&d->work_cv, &d->lock);
		if (!d->work.count) {
			pthread_mutex_unlock(&d->lock);
			return NULL;
		}
		q_pop(&d->work, &m);
		pthread_mutex_unlock(&d->lock);
		retry = serve_fault(mm, &m, 0);
		if (!retry)
			continue;
		m.when_ns = retry;
		pthread_mutex_lock(&d->lock);
		if (q_push(&d->deferred, &m))
			uffd_wake(m.uffd, (uintptr_t)m.a, USVM_PAGE_SIZE); /* it faults again */
		pthread_mutex_unlock(&d->lock);
		poke(d);
	}
}

/* ---- installing device data (see mm.h) ------------------------------------------- */

static int msg_overlaps(const struct mm_msg *m, uintptr_t lo, uintptr_t hi)
{
	switch (m->event) {
	case UFFD_EVENT_REMOVE:
	case UFFD_EVENT_UNMAP:
		return m->a < hi && lo < m->b;
	case UFFD_EVENT_REMAP:
		return (m->a < hi && lo < m->a + m->c) || (m->b < hi && lo < m->b + m->c);
	default:
		return 0;
	}
}

/* The first queued (read, unapplied) event overlapping [lo, hi); d->lock held. */
static const struct mm_msg *queued_overlap(struct mm_dispatch *d, uintptr_t lo, uintptr_t hi)
{
	size_t i;

	for (i = 0; i < d->events.count; i++) {
		const struct mm_msg *m = &d->events.v[(d->events.head + i) % d->events.cap];

		if (msg_overlaps(m, lo, hi))
			return m;
	}
	return NULL;
}

int mm_install_begin(struct usvm_mm *mm, uintptr_t lo, uintptr_t hi)
{
	struct mm_dispatch *d = &mm->d;
	int busy;

	pthread_rwlock_rdlock(&d->install_lock);
	pthread_mutex_lock(&d->lock);
	busy = (!in_applier && msg_overlaps(&d->applying, lo, hi)) || queued_overlap(d, lo, hi);
	pthread_mutex_unlock(&d->lock);
	if (!busy)
		return 0;
	pthread_rwlock_unlock(&d->install_lock);
	return -EAGAIN;
}

int mm_take_begin(struct usvm_mm *mm, int uffd, uintptr_t lo, uintptr_t hi)
{
	if (mm_install_begin(mm, lo, hi))
		return -EAGAIN;
	if (!uffd_changing(uffd))
		return 0;
	mm_install_end(mm);
	return -EAGAIN;
}

int mm_changing(struct usvm_mm *mm)
{
	return uffd_changing(mm->uffd_arena) || uffd_changing(mm->uffd_user);
}

void mm_install_begin_applier(struct usvm_mm *mm)
{
	pthread_rwlock_rdlock(&mm->d.install_lock);
}

void mm_install_end(struct usvm_mm *mm)
{
	pthread_rwlock_unlock(&mm->d.install_lock);
}

/* Is @m the UNMAP of a range an mremap moved away, applied already? */
static int unmap_is_owed(const struct mm_dispatch *d, const struct mm_msg *m)
{
	unsigned int i;

	if (m->event != UFFD_EVENT_UNMAP)
		return 0;
	for (i = 0; i < d->nowed; i++)
		if (d->owed_unmap[i].start == m->a && d->owed_unmap[i].end == m->b)
			return 1;
	return 0;
}

uint32_t mm_later_event(struct usvm_mm *mm, uintptr_t lo, uintptr_t hi)
{
	struct mm_dispatch *d = &mm->d;
	uint32_t ev = 0;
	size_t i;

	pthread_mutex_lock(&d->lock);
	for (i = 0; i < d->events.count && !ev; i++) {
		const struct mm_msg *m = &d->events.v[(d->events.head + i) % d->events.cap];

		/* The old mapping's UNMAP of an earlier mremap can be read
		 * after a later mremap moved something onto those addresses:
		 * it was applied with its REMAP and says nothing about now. */
		if (msg_overlaps(m, lo, hi) && !unmap_is_owed(d, m))
			ev = m->event;
	}
	pthread_mutex_unlock(&d->lock);
	return ev;
}

void mm_read_pass(struct usvm_mm *mm)
{
	struct mm_dispatch *d = &mm->d;
	uint64_t p = atomic_load(&d->passes);

	/* The pass in progress may have started before the call: wait for
	 * the next one, poking every round (the reader may have drained an
	 * earlier poke already). */
	while (atomic_load(&d->passes) < p + 2 && !atomic_load(&d->stopping)) {
		poke(d);
		usleep(20);
	}
}

int mm_apply_queued_for(struct usvm_mm *mm, uintptr_t lo, uintptr_t hi)
{
	struct mm_dispatch *d = &mm->d;
	struct mm_msg m = { 0 };
	size_t i;

	pthread_mutex_lock(&d->lock);
	for (i = 0; i < d->events.count; i++) {
		struct mm_msg *q = &d->events.v[(d->events.head + i) % d->events.cap];

		/* An UNMAP of the range, or a REMAP moving it away. */
		if ((q->event == UFFD_EVENT_UNMAP && q->a < hi && lo < q->b) ||
		    (q->event == UFFD_EVENT_REMAP && q->a < hi && lo < q->a + q->c)) {
			m = *q;
			q->event = 0; /* counted as applied when the applier pops it */
			break;
		}
	}
	pthread_mutex_unlock(&d->lock);
	if (!m.event)
		return 0;
	mm_apply_event(mm, &m);
	return 1;
}

/* ---- start / stop ---------------------------------------------------------------- */

void mm_events_sync_slow(struct usvm_mm *mm)
{
	struct mm_dispatch *d = &mm->d;
	uint64_t g, target;

	usvm_assert_no_locks();
	for (;;) {
		g = atomic_load(&d->read_gen);
		if (g & 1) {
			sched_yield(); /* inside a non-blocking read(): short */
			continue;
		}
		target = atomic_load(&d->ev_read);
		if (atomic_load(&d->read_gen) == g)
			break;
	}
	if (atomic_load(&d->ev_applied) >= target)
		return;
	pthread_mutex_lock(&d->lock);
	while (atomic_load(&d->ev_applied) < target && !atomic_load(&d->stopping))
		pthread_cond_wait(&d->applied_cv, &d->lock);
	pthread_mutex_unlock(&d->lock);
}

int mm_dispatch_start(struct usvm_mm *mm, unsigned int nworkers)
{
	struct mm_dispatch *d = &mm->d;
	pthread_rwlockattr_t attr;
	unsigned int i;

	pthread_mutex_init(&d->lock, NULL);
	/* The reader must not starve behind a stream of migrations. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&d->install_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_cond_init(&d->work_cv, NULL);
	pthread_cond_init(&d->event_cv, NULL);
	pthread_cond_init(&d->applied_cv, NULL);
	d->wake_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->wake_efd < 0)
		return -errno;
	if (pthread_create(&d->applier, NULL, applier_main, mm))
		goto err_stop;
	d->started_applier = 1;
	for (i = 0; i < nworkers; i++) {
		if (pthread_create(&d->workers[i], NULL, worker_main, mm))
			goto err_stop;
		d->nworkers = i + 1;
	}
	if (pthread_create(&d->reader, NULL, reader_main, mm))
		goto err_stop;
	d->started_reader = 1;
	return 0;
err_stop:
	mm_dispatch_stop(mm);
	return -EAGAIN;
}

/* Let every fault still queued retry against whatever state is left. */
static void wake_queued(struct mm_queue *q)
{
	struct mm_msg m;

	while (q->count) {
		q_pop(q, &m);
		if (m.event == UFFD_EVENT_PAGEFAULT)
			uffd_wake(m.uffd, m.a, USVM_PAGE_SIZE);
	}
	free(q->v);
	memset(q, 0, sizeof(*q));
}

void mm_dispatch_stop(struct usvm_mm *mm)
{
	struct mm_dispatch *d = &mm->d;
	unsigned int i;

	pthread_mutex_lock(&d->lock);
	atomic_store(&d->stopping, 1);
	pthread_cond_broadcast(&d->work_cv);
	pthread_cond_broadcast(&d->event_cv);
	pthread_cond_broadcast(&d->applied_cv);
	pthread_mutex_unlock(&d->lock);
	if (d->wake_efd >= 0)
		poke(d);
	if (d->started_reader)
		pthread_join(d->reader, NULL);
	if (d->started_applier)
		pthread_join(d->applier, NULL);
	for (i = 0; i < d->nworkers; i++)
		pthread_join(d->workers[i], NULL);
	d->started_reader = d->started_applier = 0;
	d->nworkers = 0;
	wake_queued(&d->work);
	wake_queued(&d->gated);
	wake_queued(&d->deferred);
	wake_queued(&d->events);
	if (d->wake_efd >= 0)
		close(d->wake_efd);
	d->wake_efd = -1;
	pthread_cond_destroy(&d->work_cv);
	pthread_cond_destroy(&d->event_cv);
	pthread_cond_destroy(&d->applied_cv);
	pthread_mutex_destroy(&d->lock);
	pthread_rwlock_destroy(&d->install_lock);
}

// SPDX-License-Identifier: MIT
/*
 * CPU fault handling: the dev_pagemap migrate_to_ram path, on userfaultfd.
 *
 * Several handler threads read the mm's userfaultfds.  A fault on a page
 * held by a device allocation migrates the whole allocation back under the
 * block lock of its block (so faults on different allocations proceed in
 * parallel: there is no global migration lock).  Within the allocation's
 * timeslice the fault is not served by migrating: as in the kernel's
 * __drm_pagemap_migrate_to_ram, the toucher waits out the rest; here the
 * handler parks the fault on a per-thread timer list and goes on serving
 * others.  A fault on a never-touched page maps zero pages.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include "mm.h"
#include "uffd.h"
#include "migrate/migrate.h"

/* Zero pages mapped ahead of a first touch, so sequential touches of fresh
 * memory do not pay one handler round trip per page. */
#define FIRST_TOUCH_PAGES 16

struct deferred {
	uintptr_t addr;
	int uffd;
	uint64_t when_ns;
};

#define PENDING_MAX 64

struct fault_thread {
	struct usvm_mm *mm;
	struct deferred *dq;
	size_t ndq, capdq;
	/* Messages read ahead while an event was being handled (FIFO). */
	struct uffd_msg pend[PENDING_MAX];
	int pend_uffd[PENDING_MAX];
	unsigned int npend, pend_head;
};

__thread void (*mm_eagain_hook)(void);
static __thread struct fault_thread *cur_ft;

static void defer(struct fault_thread *ft, int uffd, uintptr_t addr, uint64_t when)
{
	if (ft->ndq == ft->capdq) {
		size_t cap = ft->capdq ? ft->capdq * 2 : 64;
		struct deferred *n = realloc(ft->dq, cap * sizeof(*n));

		if (!n) {
			/* Out of memory: spin instead of parking (the fault retries). */
			uffd_wake(uffd, addr, USVM_PAGE_SIZE);
			return;
		}
		ft->dq = n;
		ft->capdq = cap;
	}
	ft->dq[ft->ndq++] = (struct deferred){ addr, uffd, when };
}

/* Map zero pages at a never-touched page and a few following ones. */
static void first_touch(struct usvm_mm *mm, struct usvm_region *r, int uffd, uintptr_t page)
{
	uintptr_t end = page + USVM_PAGE_SIZE, lim;
	long ret;

	lim = MIN_UL(r->end, ALIGN_DOWN_UL(page, USVM_BLOCK_SIZE) + USVM_BLOCK_SIZE);
	lim = MIN_UL(lim, page + FIRST_TOUCH_PAGES * USVM_PAGE_SIZE);
	while (end < lim) {
		struct usvm_page *pg = region_page(r, end);

		if (pg->dm || pg->flags)
			break;
		end += USVM_PAGE_SIZE;
	}
	ret = uffd_zeropage(uffd, page, end - page);
	if (ret == -EEXIST || ret == -EAGAIN || ret < (long)USVM_PAGE_SIZE)
		uffd_wake(uffd, page, USVM_PAGE_SIZE); /* raced: it is there already */
	STAT_ADD(mm->st.cpu_faults_first_touch, 1);
}

/* Serve one fault; returns 0 or a deadline (ns) to retry at. */
static uint64_t handle_fault(struct usvm_mm *mm, int uffd, uintptr_t addr)
{
	uintptr_t page = ALIGN_DOWN_UL(addr, USVM_PAGE_SIZE);
	struct usvm_region *r;
	struct usvm_page *pg;
	pthread_mutex_t *bl;
	uint64_t retry = 0;

	pthread_rwlock_rdlock(&mm->regions_lock);
	pg = mm_page(mm, page, &r);
	if (!pg || r->uffd != uffd) {
		/* Not (or no longer) ours: let the kernel retry the access. */
		pthread_rwlock_unlock(&mm->regions_lock);
		uffd_wake(uffd, page, USVM_PAGE_SIZE);
		return 0;
	}
	bl = mm_block_lock(mm, page);
	pthread_mutex_lock(bl);
	if (pg->flags & USVM_PAGE_PENDING) {
		retry = usvm_now_ns() + 200000; /* state being rebuilt: come back */
	} else if (!pg->dm) {
		first_touch(mm, r, uffd, page);
	} else {
		struct usvm_devmem *dm = pg->dm;
		uint64_t now = usvm_now_ns();

		STAT_ADD(mm->st.cpu_faults_devmem, 1);
		if (now < dm->timeslice_expire_ns) {
			retry = dm->timeslice_expire_ns;
			STAT_ADD(mm->st.timeslice_waits, 1);
		} else if (migrate_devmem_to_ram(dm, USVM_MIGRATE_CPU_FAULT) < 0) {
			retry = now + 1000000; /* try again in 1 ms; data still safe */
		}
	}
	pthread_mutex_unlock(bl);
	pthread_rwlock_unlock(&mm->regions_lock);
	return retry;
}

/* A registered range the program has unmapped completely. */
static int region_gone(struct usvm_region *r)
{
	return r->kind == USVM_REGION_USER && atomic_load(&r->unmapped_pages) == r->npages;
}

void mm_handle_remove(struct usvm_mm *mm, uintptr_t start, uintptr_t end,
			  enum usvm_inval_event ev)
{
	int any_gone = 0;
	size_t i;

	pthread_rwlock_rdlock(&mm->regions_lock);
	for (i = 0; i < mm->nregions; i++) {
		struct usvm_region *r = mm->regions[i];

		if (r->end <= start || r->start >= end)
			continue;
		mm_drop_range(mm, r, start, end, ev,
			      ev == USVM_INVAL_UNMAP ? USVM_PAGE_UNMAPPED : 0);
		if (region_gone(r))
			any_gone = 1;
	}
	pthread_rwlock_unlock(&mm->regions_lock);
	if (!any_gone)
		return;
	/* Registered ranges unmapped completely (e.g. free() of a big malloc,
	 * possibly in several munmap calls) are forgotten. */
	pthread_rwlock_wrlock(&mm->regions_lock);
	for (i = 0; i < mm->nregions;) {
		struct usvm_region *r = mm->regions[i];

		if (region_gone(r)) {
			mm_region_remove_locked(mm, r);
			mm_region_free(r);
			STAT_SUB(mm->st.registered_ranges, 1);
			continue;
		}
		i++;
	}
	pthread_rwlock_unlock(&mm->regions_lock);
}


static void handle_msg(struct fault_thread *ft, int uffd, const struct uffd_msg *msg)
{
	struct usvm_mm *mm = ft->mm;
	uint64_t when;

	switch (msg->event) {
	case UFFD_EVENT_PAGEFAULT:
		STAT_ADD(mm->st.cpu_faults, 1);
		when = handle_fault(mm, uffd, (uintptr_t)msg->arg.pagefault.address);
		if (when)
			defer(ft, uffd, (uintptr_t)msg->arg.pagefault.address, when);
		break;
	case UFFD_EVENT_REMOVE:
		STAT_ADD(mm->st.events_remove, 1);
		mm_handle_remove(mm, (uintptr_t)msg->arg.remove.start,
			      (uintptr_t)msg->arg.remove.end, USVM_INVAL_REMOVE);
		break;
	case UFFD_EVENT_UNMAP:
		STAT_ADD(mm->st.events_unmap, 1);
		mm_handle_remove(mm, (uintptr_t)msg->arg.remove.start,
			      (uintptr_t)msg->arg.remove.end, USVM_INVAL_UNMAP);
		break;
	case UFFD_EVENT_REMAP:
		STAT_ADD(mm->st.events_remap, 1);
		mm_handle_remap(mm, (uintptr_t)msg->arg.remap.from,
				(uintptr_t)msg->arg.remap.to, (size_t)msg->arg.remap.len);
		break;
	default:
		break;
	}
}

static void run_deferred(struct fault_thread *ft)
{
	uint64_t now = usvm_now_ns();
	size_t i = 0;

	while (i < ft->ndq) {
		struct deferred d = ft->dq[i];
		uint64_t when;

		if (d.when_ns > now) {
			i++;
			continue;
		}
		ft->dq[i] = ft->dq[--ft->ndq];
		when = handle_fault(ft->mm, d.uffd, d.addr);
		if (when)
			defer(ft, d.uffd, d.addr, when);
		now = usvm_now_ns();
	}
}

static int next_timeout_ms(struct fault_thread *ft)
{
	uint64_t now = usvm_now_ns(), first = UINT64_MAX;
	size_t i;

	if (!ft->ndq)
		return -1;
	for (i = 0; i < ft->ndq; i++)
		first = MIN_UL(first, ft->dq[i].when_ns);
	if (first <= now)
		return 0;
	return (int)MIN_UL((first - now + 999999) / 1000000, 1000);
}

/*
 * Read and handle messages one at a time.  Events (munmap, madvise, mremap)
 * must be handled in the order the kernel queued them (an mremap sends
 * REMAP and then UNMAP for the old range): the event lock is taken before
 * the read lock is dropped, so a later event cannot overtake an earlier one.
 * Page faults are handled in parallel.
 */
/* mm_eagain_hook: read one message of each userfaultfd into the queue. */
static void read_ahead(void)
{
	struct fault_thread *ft = cur_ft;
	struct usvm_mm *mm = ft->mm;
	int fds[2] = { mm->uffd_arena, mm->uffd_user }, i;

	for (i = 0; i < 2 && ft->npend < PENDING_MAX; i++) {
		struct uffd_msg *msg = &ft->pend[ft->npend];
		ssize_t n;

		/* Busy read lock: another thread is reading (and may wait for
		 * our event lock): it releases the event's caller itself. */
		if (pthread_mutex_trylock(&mm->read_lock))
			return;
		atomic_fetch_add(&mm->events_inflight, 1);
		n = read(fds[i], msg, sizeof(*msg));
		pthread_mutex_unlock(&mm->read_lock);
		if (n != (ssize_t)sizeof(*msg) || msg->event == UFFD_EVENT_PAGEFAULT)
			atomic_fetch_sub(&mm->events_inflight, 1);
		if (n == (ssize_t)sizeof(*msg))
			ft->pend_uffd[ft->npend++] = fds[i];
	}
}

static void handle_one(struct fault_thread *ft, int uffd, const struct uffd_msg *msg,
		       int is_event)
{
	struct usvm_mm *mm = ft->mm;

	if (is_event) {
		cur_ft = ft;
		mm_eagain_hook = read_ahead;
	}
	handle_msg(ft, uffd, msg);
	if (is_event) {
		mm_eagain_hook = NULL;
		pthread_mutex_unlock(&mm->event_lock);
		atomic_fetch_sub(&mm->events_inflight, 1);
	}
}

/* Handle what read_ahead() queued, in order.  Events among them are
 * counted in flight; the event lock is taken for each in turn. */
static void run_pending(struct fault_thread *ft)
{
	while (ft->pend_head < ft->npend) {
		unsigned int i = ft->pend_head++;
		int is_event = ft->pend[i].event != UFFD_EVENT_PAGEFAULT;

		if (is_event)
			pthread_mutex_lock(&ft->mm->event_lock);
		handle_one(ft, ft->pend_uffd[i], &ft->pend[i], is_event);
	}
	ft->npend = ft->pend_head = 0;
}

/*
 * Read and handle messages one at a time.  Events (munmap, madvise, mremap)
 * must be handled in the order the kernel queued them (an mremap sends
 * REMAP and then UNMAP for the old range): the event lock is taken before
 * the read lock is dropped, so a later event cannot overtake an earlier one.
 * Page faults are handled in parallel.
 */
static void drain(struct fault_thread *ft, int uffd)
{
	struct usvm_mm *mm = ft->mm;

	for (;;) {
		struct uffd_msg msg;
		ssize_t n;
		int is_event;

		/* Counted before read(): the munmap caller resumes as soon as
		 * its event is read, and devices must not run ahead of us. */
		atomic_fetch_add(&mm->events_inflight, 1);
		pthread_mutex_lock(&mm->read_lock);
		n = read(uffd, &msg, sizeof(msg));
		is_event = n == (ssize_t)sizeof(msg) && msg.event != UFFD_EVENT_PAGEFAULT;
		if (is_event)
			pthread_mutex_lock(&mm->event_lock);
		pthread_mutex_unlock(&mm->read_lock);
		if (!is_event)
			atomic_fetch_sub(&mm->events_inflight, 1);
		if (n != (ssize_t)sizeof(msg))
			return; /* EAGAIN: another thread took them */
		handle_one(ft, uffd, &msg, is_event);
		run_pending(ft);
	}
}

static void *fault_thread_main(void *arg)
{
	struct fault_thread ft = { .mm = arg };
	struct usvm_mm *mm = ft.mm;
	unsigned int id = atomic_fetch_add(&mm->next_thread_id, 1);
	struct pollfd pfd[3] = {
		{ .fd = mm->uffd_arena, .events = POLLIN },
		{ .fd = mm->uffd_user, .events = POLLIN },
		{ .fd = mm->stop_efd, .events = POLLIN },
	};

	while (!atomic_load(&mm->stopping)) {
		int n;

		/* Idle: everything this thread read has been handled. */
		atomic_fetch_add(&mm->thread_gen[id], 1);
		atomic_store(&mm->thread_busy[id], 0);
		n = poll(pfd, 3, next_timeout_ms(&ft));
		atomic_store(&mm->thread_busy[id], 1);
		if (n < 0 && errno != EINTR)
			break;
		if (pfd[0].revents & POLLIN)
			drain(&ft, mm->uffd_arena);
		if (pfd[1].revents & POLLIN)
			drain(&ft, mm->uffd_user);
		run_deferred(&ft);
	}
	/* Faults still parked: let them retry against whatever state is left. */
	while (ft.ndq) {
		ft.ndq--;
		uffd_wake(ft.dq[ft.ndq].uffd, ft.dq[ft.ndq].addr, USVM_PAGE_SIZE);
	}
	free(ft.dq);
	return NULL;
}

void mm_events_quiesce(struct usvm_mm *mm)
{
	uint64_t gen[USVM_MAX_FAULT_THREADS];
	uint64_t deadline = usvm_now_ns() + 1000000000ull;
	unsigned int i;

	for (i = 0; i < mm->nthreads; i++)
		gen[i] = atomic_load(&mm->thread_gen[i]);
	for (i = 0; i < mm->nthreads; i++) {
		/* A busy thread may hold an event it read but has not handled. */
		while (atomic_load(&mm->thread_busy[i]) &&
		       atomic_load(&mm->thread_gen[i]) == gen[i] && usvm_now_ns() < deadline)
			usleep(50);
	}
}

int mm_fault_threads_start(struct usvm_mm *mm)
{
	unsigned int i;

	for (i = 0; i < mm->nthreads; i++) {
		if (pthread_create(&mm->threads[i], NULL, fault_thread_main, mm)) {
			mm->nthreads = i;
			mm_fault_threads_stop(mm);
			return -EAGAIN;
		}
	}
	return 0;
}

void mm_fault_threads_stop(struct usvm_mm *mm)
{
	uint64_t one = 1;
	unsigned int i;

	atomic_store(&mm->stopping, 1);
	if (write(mm->stop_efd, &one, sizeof(one)) < 0) {
		/* eventfd counter cannot overflow here; threads also poll stopping */
	}
	for (i = 0; i < mm->nthreads; i++)
		pthread_join(mm->threads[i], NULL);
	mm->nthreads = 0;
}

// SPDX-License-Identifier: MIT
/*
 * One open of /dev/hmm_dmirrorN: its device, and the pages it holds for
 * device-exclusive access.
 *
 * DOC: Device-exclusive access
 *
 * The kernel's HMM_DMIRROR_EXCLUSIVE replaces the CPU's page table entries
 * with device-exclusive entries; the next CPU touch restores them and
 * revokes the device's atomic access (CHECK_EXCLUSIVE then succeeds).
 * usvm's devices get atomic access the way usvm gives it to them: the pages
 * move into the device's memory, where the CPU cannot touch them without a
 * fault.  That fault migrates them back, and its invalidation, seen by this
 * file's mm notifier, ends the exclusive access.  So does anything else that
 * takes the pages away (another device's access, munmap, MADV_DONTNEED,
 * eviction, fork).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dmirror.h"

/* Index of the first span of @f ending after @addr; f->lock held. */
static size_t excl_lower_bound(struct dm_file *f, uintptr_t addr)
{
	size_t lo = 0, hi = f->nexcl;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (f->excl[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Cut [start, end) out of the spans; f->lock held.  0 or -ENOMEM. */
static int excl_cut(struct dm_file *f, uintptr_t start, uintptr_t end)
{
	size_t i = excl_lower_bound(f, start);

	while (i < f->nexcl && f->excl[i].start < end) {
		struct dm_span *s = &f->excl[i];

		if (s->start < start && s->end > end) {
			/* A hole in the middle: the span becomes two. */
			if (f->nexcl == f->cap)
				return -ENOMEM; /* never: callers reserve a slot */
			memmove(s + 2, s + 1, (f->nexcl - i - 1) * sizeof(*s));
			s[1] = (struct dm_span){ end, s->end };
			s->end = start;
			f->nexcl++;
			return 0;
		}
		if (s->start < start) {
			s->end = start;
			i++;
		} else if (s->end > end) {
			s->start = end;
			i++;
		} else {
			memmove(s, s + 1, (f->nexcl - i - 1) * sizeof(*s));
			f->nexcl--;
		}
	}
	return 0;
}

/* Room for two more spans (an insert, or a split); f->lock held. */
static int excl_reserve(struct dm_file *f)
{
	struct dm_span *v;
	size_t cap;

	if (f->nexcl + 2 <= f->cap)
		return 0;
	cap = f->cap ? f->cap * 2 : 16;
	v = realloc(f->excl, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	f->excl = v;
	f->cap = cap;
	return 0;
}

int dm_excl_add(struct dm_file *f, uintptr_t start, uintptr_t end)
{
	int err;

	pthread_mutex_lock(&f->lock);
	err = excl_reserve(f);
	if (!err)
		err = excl_cut(f, start, end);
	if (!err) {
		size_t i = excl_lower_bound(f, start);

		memmove(&f->excl[i + 1], &f->excl[i], (f->nexcl - i) * sizeof(f->excl[0]));
		f->excl[i] = (struct dm_span){ start, end };
		f->nexcl++;
	}
	pthread_mutex_unlock(&f->lock);
	return err;
}

void dm_excl_remove(struct dm_file *f, uintptr_t start, uintptr_t end)
{
	pthread_mutex_lock(&f->lock);
	/* A split needs a free slot; without memory, drop the whole span:
	 * losing exclusivity early is safe, keeping it wrongly is not. */
	if (excl_reserve(f))
		start = 0;
	excl_cut(f, start, end);
	pthread_mutex_unlock(&f->lock);
}

int dm_excl_any(struct dm_file *f, uintptr_t start, uintptr_t end)
{
	size_t i;
	int any;

	pthread_mutex_lock(&f->lock);
	i = excl_lower_bound(f, start);
	any = i < f->nexcl && f->excl[i].start < end;
	pthread_mutex_unlock(&f->lock);
	return any;
}

/*
 * The mm's invalidation callback: pages of [start, end) changed residency,
 * lost their contents or were unmapped; called with their block lock held.
 */
static void dm_invalidate(struct usvm_mm_notifier *n, uintptr_t start, uintptr_t end,
			  enum usvm_inval_event ev)
{
	(void)ev;
	dm_excl_remove(container_of(n, struct dm_file, mn), start, end);
}

int dm_file_setup(struct dm_file *f, struct usvm_mm *mm, struct usvm_pagemap *pm, int node)
{
	char name[32];
	int err;
	/*
	 * hmm_range_fault semantics: a device fault maps pages where they are
	 * (policy NEVER: only the MIGRATE commands migrate) and brings pages
	 * of other devices home first (no peer access); the caller's thread
	 * runs each command (one thread).
	 */
	struct usvm_device_options o = {
		.name = name, .pagemap = pm, .policy = USVM_POLICY_NEVER, .threads = 1,
	};

	snprintf(name, sizeof(name), "dmirror%d", node);
	f->node = node;
	f->mm = mm;
	f->pm = pm;
	pthread_mutex_init(&f->lock, NULL);
	f->mn.invalidate = dm_invalidate;
	usvm_mm_notifier_register(mm, &f->mn);
	err = usvm_device_create(mm, &o, &f->dev);
	if (err) {
		usvm_mm_notifier_unregister(mm, &f->mn);
		pthread_mutex_destroy(&f->lock);
	}
	return err;
}

void dm_file_teardown(struct dm_file *f)
{
	usvm_mm_notifier_unregister(f->mm, &f->mn);
	usvm_device_destroy(f->dev);
	pthread_mutex_destroy(&f->lock);
	free(f->excl);
}

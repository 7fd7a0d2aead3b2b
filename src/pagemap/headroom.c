// SPDX-License-Identifier: MIT
/*
 * DOC: Headroom (evicting ahead of need)
 *
 * A pagemap created with USVM_HEADROOM=N keeps N bytes of its device memory
 * free: after a populate leaves less free, a thread of the pagemap evicts
 * least recently used allocations until N bytes are free again, so that the
 * next populate finds memory at once instead of evicting first, on the
 * faulting thread.  The allocation just made is the most recently used: it
 * is evicted last, and never when it is the only one.  Evictions are counted
 * in headroom_evictions/_evicted_bytes (and, as all evictions, in evictions).
 *
 * The thread starts with the first populate that needs it and stops at the
 * pagemap's last put.  In a fork child (which has no such thread) headroom
 * is not kept.
 */
#include <errno.h>
#include "pagemap.h"

/* Free bytes of @pm below its headroom? */
static int short_of_room(struct usvm_pagemap *pm)
{
	uint64_t used = STAT_READ(pm->core->st.used_bytes);

	return used + pm->core->headroom.bytes > pm->capacity;
}

/* Evict until the headroom is free, the LRU holds one allocation, or an
 * eviction fails (the next kick tries again). */
static void make_room(struct usvm_pagemap *pm)
{
	struct pagemap_headroom *h = &pm->core->headroom;
	uint64_t n = STAT_READ(pm->core->st.live_allocations);
	long ret;

	while (n-- > 1 && short_of_room(pm) && !atomic_load(&h->stopping) &&
	       !atomic_load(&pm->core->unbound)) {
		ret = pagemap_evict_lru(pm, MM_MIGRATE_EVICT);
		if (ret <= 0)
			break;
		if (ret > 1) {
			STAT_ADD(pm->core->st.headroom_evictions, 1);
			STAT_ADD(pm->core->st.headroom_evicted_bytes, (uint64_t)ret);
		}
	}
}

static void *headroom_main(void *arg)
{
	struct usvm_pagemap *pm = arg;
	struct pagemap_headroom *h = &pm->core->headroom;

	pthread_setname_np(pthread_self(), "usvm-headroom");
	pthread_mutex_lock(&h->lock);
	for (;;) {
		while (!h->kicked && !atomic_load(&h->stopping))
			pthread_cond_wait(&h->cv, &h->lock);
		if (atomic_load(&h->stopping))
			break;
		h->kicked = 0;
		pthread_mutex_unlock(&h->lock);
		make_room(pm);
		pthread_mutex_lock(&h->lock);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

void pagemap_headroom_init(struct usvm_pagemap *pm)
{
	struct pagemap_headroom *h = &pm->core->headroom;

	h->bytes = ALIGN_DOWN_UL(usvm_option_size(USVM_OPT_HEADROOM), USVM_PAGE_SIZE);
	h->bytes = MIN_UL(h->bytes, pm->capacity / 2); /* room to work in */
	h->fork_gen = atomic_load(&usvm_fork_gen);
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cv, NULL);
}

void pagemap_headroom_kick(struct usvm_pagemap *pm)
{
	struct pagemap_headroom *h = &pm->core->headroom;

	if (!h->bytes || !short_of_room(pm) || h->fork_gen != atomic_load(&usvm_fork_gen))
		return;
	pthread_mutex_lock(&h->lock);
	if (!h->started && !atomic_load(&h->stopping))
		h->started = !pthread_create(&h->thread, NULL, headroom_main, pm);
	h->kicked = 1;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->lock);
}

void pagemap_headroom_stop(struct usvm_pagemap *pm)
{
	struct pagemap_headroom *h = &pm->core->headroom;
	int started;

	if (h->fork_gen != atomic_load(&usvm_fork_gen))
		return; /* a fork child: no thread, and the lock may be the parent's */
	pthread_mutex_lock(&h->lock);
	atomic_store(&h->stopping, 1);
	started = h->started;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->lock);
	if (started)
		pthread_join(h->thread, NULL);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->lock);
}

// SPDX-License-Identifier: MIT
/*
 * usvm_prefetch(): migrate a range ahead of use (cudaMemPrefetchAsync,
 * synchronous): into a pagemap through populate_mm, or back to system
 * memory.  The target is remembered as the range's last prefetch location
 * (usvm_range_attr).  usvm_prefetch_async() runs the same on a thread of
 * its own per request: requests are few and large (a 2 MiB move costs far
 * more than a thread), and a thread per request needs no pool that a fork
 * child would have to rebuild.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include "pagemap.h"
#include "mm/mm.h"

int usvm_prefetch(struct usvm_mm *mm, void *addr, size_t len, struct usvm_pagemap *pagemap)
{
	uintptr_t s, e;
	int err;

	if (!mm || !len || (uintptr_t)addr + len < (uintptr_t)addr)
		return -EINVAL;
	if (!mm_usable(mm))
		return -ENODEV;
	s = ALIGN_DOWN_UL((uintptr_t)addr, USVM_PAGE_SIZE);
	e = ALIGN_UP_UL((uintptr_t)addr + len, USVM_PAGE_SIZE);
	if (pagemap)
		err = usvm_pagemap_populate_mm(pagemap, (void *)s, (void *)e, mm, 0);
	else
		err = mm_range_to_ram(mm, s, e);
	if (!err)
		err = mm_advice_update(mm, s, e, MM_ADVICE_PREFETCH, pagemap);
	return err;
}

struct usvm_prefetch_req {
	struct usvm_mm *mm;
	struct usvm_pagemap *pagemap;
	void *addr;
	size_t len;
	int result;
	uint64_t fork_gen;      /* the process whose thread runs it */
	pthread_t thread;
};

static void *prefetch_main(void *arg)
{
	struct usvm_prefetch_req *req = arg;

	pthread_setname_np(pthread_self(), "usvm-prefetch");
	req->result = usvm_prefetch(req->mm, req->addr, req->len, req->pagemap);
	return NULL;
}

int usvm_prefetch_async(struct usvm_mm *mm, void *addr, size_t len,
			struct usvm_pagemap *pagemap, struct usvm_prefetch_req **out)
{
	struct usvm_prefetch_req *req;

	if (!mm || !out || !len || (uintptr_t)addr + len < (uintptr_t)addr)
		return -EINVAL;
	if (!mm_usable(mm))
		return -ENODEV;
	req = calloc(1, sizeof(*req));
	if (!req)
		return -ENOMEM;
	*req = (struct usvm_prefetch_req){ .mm = mm, .pagemap = pagemap, .addr = addr,
					   .len = len, .fork_gen = atomic_load(&usvm_fork_gen) };
	/* Both stay alive until the wait, whatever the program destroys. */
	mm_get(mm);
	usvm_pagemap_get(pagemap);
	if (pthread_create(&req->thread, NULL, prefetch_main, req)) {
		usvm_pagemap_put(pagemap);
		mm_put(mm);
		free(req);
		return -EAGAIN;
	}
	*out = req;
	return 0;
}

int usvm_prefetch_wait(struct usvm_prefetch_req *req)
{
	int ret;

	if (!req)
		return -EINVAL;
	if (req->fork_gen != atomic_load(&usvm_fork_gen))
		return -ENODEV; /* the parent's: its thread is not in this process */
	pthread_join(req->thread, NULL);
	ret = req->result;
	usvm_pagemap_put(req->pagemap);
	mm_put(req->mm);
	free(req);
	return ret;
}

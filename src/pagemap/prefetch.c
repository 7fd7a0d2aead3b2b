// SPDX-License-Identifier: MIT
/*
 * usvm_prefetch(): migrate a range ahead of use (cudaMemPrefetchAsync,
 * synchronous): into a pagemap through populate_mm, or back to system
 * memory.  The target is remembered as the range's last prefetch location
 * (usvm_range_attr).
 */
#include <errno.h>
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

// SPDX-License-Identifier: MIT
/*
 * mremap() of managed memory (arena or registered) behind the library's back.  The kernel
 * moves the CPU pages and keeps the userfaultfd registration on the new
 * addresses (UFFD_FEATURE_EVENT_REMAP); device-resident pages have no CPU
 * page to move, so their data is put back at the new address here, as the
 * kernel does for device-private pages (they follow the VA move).
 */
#include <errno.h>
#include <sys/mman.h>
#include "mm.h"
#include "migrate/migrate.h"

void mm_handle_remap(struct usvm_mm *mm, uintptr_t from, uintptr_t to, size_t len)
{
	struct usvm_region *oldr, *newr = NULL;
	uintptr_t off, p;
	int err;

	pthread_rwlock_rdlock(&mm->regions_lock);
	oldr = mm_region_find(mm, from);
	pthread_rwlock_unlock(&mm->regions_lock);
	if (!oldr)
		return;
	len = MIN_UL(len, oldr->end - from);
	/* The new range is tracked from now on; faults there wait (PENDING)
	 * until the device-resident pages have been put back at their new place. */
	err = mm_region_add(mm, to, to + len, USVM_REGION_USER, oldr->uffd,
			    USVM_PAGE_PENDING, &newr);
	if (!err)
		STAT_ADD(mm->st.registered_ranges, 1);
	pthread_rwlock_rdlock(&mm->regions_lock);
	for (off = 0; off < len; off += USVM_PAGE_SIZE) {
		pthread_mutex_t *bl = mm_block_lock(mm, from + off);
		struct usvm_page *pg;

		pthread_mutex_lock(bl);
		pg = region_page(oldr, from + off);
		if (pg->dm) {
			struct usvm_devmem *dm = pg->dm;
			unsigned long pfn = dm->pfn[pg->idx];
			uintptr_t dst = to + off;

			mm_invalidate(mm, from + off, from + off + USVM_PAGE_SIZE,
				      USVM_INVAL_UNMAP, NULL);
			if (newr && dm->ops->copy_to_ram(dm, &pfn, &dst, 1) == 1) {
				devmem_drop_page(dm, pg->idx);
				pg->dm = NULL;
				pg->idx = 0;
			}
		}
		pthread_mutex_unlock(bl);
	}
	if (newr) {
		for (p = 0; p < len; p += USVM_PAGE_SIZE) {
			pthread_mutex_t *bl = mm_block_lock(mm, to + p);

			pthread_mutex_lock(bl);
			__atomic_store_n(&region_page(newr, to + p)->flags, 0, __ATOMIC_RELAXED);
			pthread_mutex_unlock(bl);
		}
	}
	pthread_rwlock_unlock(&mm->regions_lock);
	/* The old addresses no longer hold these pages; unless the program
	 * used MREMAP_DONTUNMAP, they are not even mapped any more. */
	{
		unsigned char vec;

		if (mincore((void *)from, USVM_PAGE_SIZE, &vec) && errno == ENOMEM)
			mm_handle_remove(mm, from, from + len, USVM_INVAL_UNMAP);
		else
			mm_handle_remove(mm, from, from + len, USVM_INVAL_REMOVE);
	}
}

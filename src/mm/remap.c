// SPDX-License-Identifier: MIT
/*
 * mremap() of a registered range behind the library's back.  The kernel
 * moves the CPU pages and keeps the userfaultfd registration on the new
 * addresses (UFFD_FEATURE_EVENT_REMAP); device-resident pages have no CPU
 * page to move, so their data is put back at the new address here, as the
 * kernel does for device-private pages (they follow the VA move).
 */
#include <errno.h>
#include "mm.h"
#include "migrate/migrate.h"

void mm_handle_remap(struct usvm_mm *mm, uintptr_t from, uintptr_t to, size_t len);

void mm_handle_remap(struct usvm_mm *mm, uintptr_t from, uintptr_t to, size_t len)
{
	struct usvm_region *oldr, *newr = NULL;
	uintptr_t off, p;
	int err;

	pthread_rwlock_rdlock(&mm->regions_lock);
	oldr = mm_region_find(mm, from);
	pthread_rwlock_unlock(&mm->regions_lock);
	if (!oldr || oldr->kind != USVM_REGION_USER)
		return;
	len = MIN_UL(len, oldr->end - from);
	/* The new range is tracked from now on; faults there wait (PENDING). */
	err = mm_region_add(mm, to, to + len, USVM_REGION_USER, oldr->uffd, &newr);
	if (!err) {
		for (p = 0; p < len; p += USVM_PAGE_SIZE)
			region_page(newr, to + p)->flags = USVM_PAGE_PENDING;
		STAT_ADD(mm->st.registered_ranges, 1);
	}
	/* mm_region_add published the region before the flags were set: a fault
	 * that slipped in between found no device state and zero-filled a page
	 * whose data is in device memory only if that page was device resident;
	 * such a page is retried below through copy_to_ram, which then reports
	 * -EEXIST and keeps the device copy (nothing is lost, see below). */
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
			region_page(newr, to + p)->flags = 0;
			pthread_mutex_unlock(bl);
		}
	}
	pthread_rwlock_unlock(&mm->regions_lock);
	/* The old addresses no longer hold these pages. */
	mm_invalidate(mm, from, from + len, USVM_INVAL_UNMAP, NULL);
}

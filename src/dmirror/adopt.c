// SPDX-License-Identifier: MIT
/*
 * DOC: Adopting the program's memory
 *
 * A dmirror program hands the device plain mmap()ed or malloc()ed memory.
 * The first command that touches a page brings what usvm can manage under
 * it: the command's private anonymous read-write pages are registered
 * (usvm_register), exactly those: the mapping around them may hold other
 * allocations (adjacent anonymous mappings merge), whose frees would
 * otherwise reach the device as invalidations.  A 2 MiB-aligned buffer
 * still gets 2 MiB device ranges and allocations.  Registered memory stays
 * registered until the program unmaps it (usvm then forgets it by itself).
 *
 * Everything else -- shared or file-backed mappings, read-only or PROT_NONE
 * memory, special mappings like the stack -- stays as it is: devices read
 * and write it in place through the CPU mapping (never migrated: the
 * MIGRATE and EXCLUSIVE commands leave it where it is), with the CPU's
 * protections, as the kernel's mirror maps such pages where they are.
 * Read-only private memory that becomes read-write is adopted by the next
 * command.
 */
#include <errno.h>
#include <sys/mman.h>
#include "dmirror.h"
#include "device/device.h"
#include "span.h"

/*
 * Is @a in memory @mm manages?  *@next is set to where that answer ends:
 * the end of its region, or the start of the next one (at most @end).
 */
int dm_managed(struct usvm_mm *mm, uintptr_t a, uintptr_t end, uintptr_t *next)
{
	size_t i;
	int managed = 0;

	/* Every munmap/mremap that returned is applied first: an old region
	 * at these addresses must not pass for the program's new memory. */
	mm_events_settle(mm);
	usvm_rwlock_rdlock(&mm->regions_lock);
	i = span_lower_bound((void *const *)mm->regions, mm->nregions, a);
	if (i < mm->nregions && mm->regions[i]->start <= a) {
		/* A region the program unmapped whole is about to be forgotten:
		 * registering over it is how new memory there is adopted. */
		managed = !atomic_load(&mm->regions[i]->gone);
		*next = MIN_UL(mm->regions[i]->end, end);
	} else {
		*next = i < mm->nregions ? MIN_UL(mm->regions[i]->start, end) : end;
	}
	usvm_rwlock_unlock(&mm->regions_lock);
	return managed;
}

/* Register every part of [lo, hi) (one mapping) that usvm does not manage. */
static void adopt_gaps(struct usvm_mm *mm, uintptr_t lo, uintptr_t hi)
{
	uintptr_t a, next;

	for (a = lo; a < hi; a = next) {
		if (dm_managed(mm, a, hi, &next))
			continue;
		/* -EINVAL: memory usvm refuses (a special mapping): the device
		 * reaches it in place.  -EEXIST: adopted by another thread. */
		usvm_register(mm, (void *)a, next - a);
	}
}

void dm_adopt(struct usvm_mm *mm, uintptr_t start, uintptr_t end)
{
	uintptr_t a = start, next;
	struct dev_vma v;

	while (a < end) {
		if (dm_managed(mm, a, end, &next)) {
			a = next;
			continue;
		}
		if (dev_vma_query(a, &v)) {
			a += USVM_PAGE_SIZE; /* a hole: the command will say -EFAULT */
			continue;
		}
		if ((v.prot & (PROT_READ | PROT_WRITE)) == (PROT_READ | PROT_WRITE) &&
		    !v.shared && !v.file &&
		    v.page_size == USVM_PAGE_SIZE)
			adopt_gaps(mm, a, MIN_UL(v.end, end));
		a = MIN_UL(v.end, end);
	}
}

// SPDX-License-Identifier: MIT
/*
 * DOC: fork()
 *
 * The kernel shares device-private pages copy-on-write into a child.  usvm
 * cannot: its device pages live outside the managed mapping, a child does
 * not inherit the userfaultfd registrations (UFFD_FEATURE_EVENT_FORK needs
 * CAP_SYS_PTRACE, and UFFDIO_MOVE cannot serve another process), so a page
 * that is device-resident at fork would read as zeros in the child.
 *
 * So a pthread_atfork() prepare handler brings every device page of every
 * mm of the process home first, with new migrations into device memory held
 * off (mm->fork_lock) until the fork is over.  The child then inherits an
 * ordinary copy-on-write snapshot of every byte, and parent and child are
 * isolated from there on.  The parent's pages are now shared with the child
 * and UFFDIO_MOVE refuses them (-EBUSY); populate makes them exclusive again
 * (MADV_POPULATE_WRITE: the kernel copies them if the child still shares
 * them) and moves them then.
 *
 * In the child the parent's usvm objects are unusable (their threads do not
 * exist there): calls on them fail with -ENODEV and destroying them is a
 * no-op.  The child may create its own mm.
 */
#include <pthread.h>
#include "mm.h"

_Atomic uint64_t usvm_fork_gen;

static pthread_mutex_t all_lock = PTHREAD_MUTEX_INITIALIZER;
static struct list_head all_mms = { &all_mms, &all_mms };
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void fork_prepare(void)
{
	struct list_head *it;
	size_t i;

	pthread_mutex_lock(&all_lock);
	for (it = all_mms.next; it != &all_mms; it = it->next) {
		struct usvm_mm *mm = container_of(it, struct usvm_mm, all_link);

		pthread_rwlock_wrlock(&mm->fork_lock);
		usvm_rwlock_rdlock(&mm->regions_lock);
		for (i = 0; i < mm->nregions; i++) {
			struct usvm_region *r = mm->regions[i];

			if (mm_migrate_range_to_ram(mm, r, r->start, r->end))
				usvm_log("fork: some device pages of [%#lx, %#lx) could not come "
					 "home: the child reads zeros there",
					 (unsigned long)r->start, (unsigned long)r->end);
		}
		usvm_rwlock_unlock(&mm->regions_lock);
	}
}

static void fork_parent(void)
{
	struct list_head *it;

	for (it = all_mms.next; it != &all_mms; it = it->next)
		pthread_rwlock_unlock(&container_of(it, struct usvm_mm, all_link)->fork_lock);
	pthread_mutex_unlock(&all_lock);
}

static void fork_child(void)
{
	/* The parent's mms stay as they are (and unusable); the child starts
	 * with an empty list and fresh locks. */
	atomic_fetch_add(&usvm_fork_gen, 1);
	list_init(&all_mms);
	pthread_mutex_init(&all_lock, NULL);
}

static void atfork_install(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void mm_fork_register(struct usvm_mm *mm)
{
	pthread_once(&atfork_once, atfork_install);
	pthread_mutex_lock(&all_lock);
	list_add_tail(&mm->all_link, &all_mms);
	pthread_mutex_unlock(&all_lock);
}

void mm_fork_unregister(struct usvm_mm *mm)
{
	pthread_mutex_lock(&all_lock);
	if (!list_empty(&mm->all_link))
		list_del_init(&mm->all_link);
	pthread_mutex_unlock(&all_lock);
}

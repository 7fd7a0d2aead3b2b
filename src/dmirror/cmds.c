// SPDX-License-Identifier: MIT
/*
 * The HMM_DMIRROR_* commands, with the kernel test driver's semantics
 * (lib/test_hmm.c) on usvm: what each command does, what cpages and faults
 * report, which errno it fails with.  README, "Running kernel HMM
 * test programs (dmirror)", lists where usvm differs and why.
 *
 * Every command that touches memory runs as one launch of the file's
 * device on the calling thread: the device reaches the program's memory
 * only through its page table (or, for memory usvm does not manage, in
 * place once a fault round granted it), so cpages counts what the device
 * really copied and faults the fault rounds it really took.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "dmirror.h"
#include "device/device.h"
#include "mm/mm.h"

/* Fault rounds one command may take before giving up (invalidations racing). */
#define DM_MAX_ROUNDS 1000

/* One command's work, run as a device kernel. */
struct dm_job {
	struct dm_file *f;
	struct hmm_dmirror_cmd *cmd;
	uintptr_t start, end;
	uint8_t *bounce;        /* the device's side of the copy (kernel: bounce) */
	int write;
	int (*fn)(struct usvm_kctx *ctx, struct dm_job *j);
};

static int dm_kernel(struct usvm_kctx *ctx, unsigned long idx, void *arg)
{
	struct dm_job *j = arg;

	(void)idx;
	return j->fn(ctx, j);
}

/* Run @j's function on its file's device (one work item, this thread). */
static int dm_launch(struct dm_job *j)
{
	return usvm_device_launch(j->f->dev, dm_kernel, 1, j);
}

/*
 * READ and WRITE (dmirror_read/dmirror_write): copy through the device page
 * table; at the first page without a translation, one fault round for the
 * rest of the range, then go on.  Every round counts in cmd->faults.
 */
static int rw_kernel(struct usvm_kctx *ctx, struct dm_job *j)
{
	uintptr_t a = j->start;
	int rounds;

	for (rounds = 0; rounds < DM_MAX_ROUNDS; rounds++) {
		uint8_t *b = j->bounce + (a - j->start);
		size_t done = 0;
		int err;

		err = j->write ? dev_write_mapped(ctx, (void *)a, b, j->end - a, &done)
			       : dev_read_mapped(ctx, (void *)a, b, j->end - a, &done);
		a += done;
		j->cmd->cpages = (a - j->start) >> USVM_PAGE_SHIFT;
		if (err != -ENOENT)
			return err;
		err = dev_fault_range(ctx, (void *)a, j->end - a, j->write);
		if (err)
			return err;
		j->cmd->faults++;
	}
	return -EBUSY;
}

/*
 * After a migration: map the range (the kernel's finalize-and-map step,
 * not a fault round) and read it back through the page table; a page the
 * device has no translation for fails the command with -ENOENT, as the
 * kernel's read-back does.
 */
static int readback_kernel(struct usvm_kctx *ctx, struct dm_job *j)
{
	size_t done = 0;
	int err = dev_fault_range(ctx, (void *)j->start, j->end - j->start, 0);

	if (!err)
		err = dev_read_mapped(ctx, (void *)j->start, j->bounce, j->end - j->start, &done);
	j->cmd->cpages = done >> USVM_PAGE_SHIFT;
	return err;
}

static int dm_read(struct dm_job *j)
{
	size_t len = j->end - j->start;
	int err;

	j->fn = rw_kernel;
	dm_adopt(j->f->mm, j->start, j->end);
	err = dm_launch(j);
	if (!err)
		err = dev_guarded_copy((void *)(uintptr_t)j->cmd->ptr, j->bounce, len);
	return err;
}

static int dm_write(struct dm_job *j)
{
	int err = dev_guarded_copy(j->bounce, (void *)(uintptr_t)j->cmd->ptr, j->end - j->start);

	if (err)
		return err;
	j->fn = rw_kernel;
	j->write = 1;
	dm_adopt(j->f->mm, j->start, j->end);
	return dm_launch(j);
}

/*
 * Is every page of [start, end) mapped with at least @prot?  The MIGRATE
 * commands fail with -EINVAL otherwise (their VMA walk), EXCLUSIVE with
 * -EFAULT (a write fault it cannot take).
 */
static int vmas_allow(uintptr_t start, uintptr_t end, unsigned int prot)
{
	struct dev_vma v;
	uintptr_t a;

	for (a = start; a < end; a = v.end) {
		if (dev_vma_query(a, &v) || (v.prot & prot) != prot)
			return -1;
	}
	return 0;
}

/* Populate [a, b) (managed) into @pm; on @fail_alloc, its first block page by page. */
static void populate_run(struct dm_file *f, uintptr_t a, uintptr_t b, int *fail_alloc)
{
	if (*fail_alloc) {
		uintptr_t stop = MIN_UL(b, ALIGN_DOWN_UL(a, USVM_BLOCK_SIZE) + USVM_BLOCK_SIZE);

		*fail_alloc = 0;
		for (; a < stop; a += USVM_PAGE_SIZE)
			usvm_pagemap_populate_mm(f->pm, (void *)a, (void *)(a + USVM_PAGE_SIZE),
						 f->mm, 0);
	}
	/* Best effort: what does not move is found by the residency check. */
	if (a < b)
		usvm_pagemap_populate_mm(f->pm, (void *)a, (void *)b, f->mm, 0);
}

/*
 * Move what can move of [start, end) into @f's device memory.  @peers:
 * take pages from other devices too (EXCLUSIVE); MIGRATE_TO_DEV leaves them
 * (the kernel migrates system pages only).
 */
static void populate_own(struct dm_file *f, uintptr_t start, uintptr_t end, int peers)
{
	int fail_alloc = 0;
	uintptr_t a, next;

	pthread_mutex_lock(&f->lock);
	if (f->flags & HMM_DMIRROR_FLAG_FAIL_ALLOC) {
		f->flags &= ~HMM_DMIRROR_FLAG_FAIL_ALLOC; /* one allocation fails */
		fail_alloc = 1;
	}
	pthread_mutex_unlock(&f->lock);
	for (a = start; a < end; a = next) {
		uintptr_t run = a, p;

		if (!dm_managed(f->mm, a, end, &next))
			continue;
		for (p = a; p < next; p += USVM_PAGE_SIZE) {
			struct usvm_pagemap *where = NULL;

			if (peers || usvm_where(f->mm, (void *)p, &where) || !where ||
			    where == f->pm)
				continue;
			if (run < p)
				populate_run(f, run, p, &fail_alloc);
			run = p + USVM_PAGE_SIZE;
		}
		if (run < next)
			populate_run(f, run, next, &fail_alloc);
	}
}

/* Is every page of [start, end) in @f's device memory now? */
static int all_local(struct dm_file *f, uintptr_t start, uintptr_t end)
{
	uintptr_t a, next;

	for (a = start; a < end; a = next) {
		if (!dm_managed(f->mm, a, end, &next) ||
		    usvm_resident_bytes(f->mm, (void *)a, next - a, f->pm) != (long)(next - a))
			return 0;
	}
	return 1;
}

/* Read [start, end) back through the device into cmd->ptr. */
static int dm_readback(struct dm_job *j)
{
	int err;

	j->fn = readback_kernel;
	err = dm_launch(j);
	if (!err)
		err = dev_guarded_copy((void *)(uintptr_t)j->cmd->ptr, j->bounce,
				       j->end - j->start);
	return err;
}

/* Private anonymous memory the CPU may read but not write? */
static int read_only_anon(const struct dev_vma *v)
{
	return (v->prot & (PROT_READ | PROT_WRITE)) == PROT_READ && !v->shared && !v->file &&
	       v->page_size == USVM_PAGE_SIZE;
}

/*
 * Migrate [lo, hi), part of mapping @v, into @f's device memory.  usvm
 * adopts and moves only read-write memory (pages move between mappings of
 * equal protections), while the kernel migrates read-only private
 * anonymous pages too: such a part is made writable for the move and gets
 * its protection back before the command returns (README: a CPU write
 * racing with the command could land in that window).
 */
static void migrate_part(struct dm_file *f, uintptr_t lo, uintptr_t hi, const struct dev_vma *v)
{
	int ro = read_only_anon(v) && !mprotect((void *)lo, hi - lo, v->prot | PROT_WRITE);

	dm_adopt(f->mm, lo, hi);
	populate_own(f, lo, hi, 0);
	if (ro)
		mprotect((void *)lo, hi - lo, v->prot);
}

/*
 * MIGRATE_TO_DEV (dmirror_migrate_to_device): system pages of the range
 * move into the device's memory, read-only private ones included; pages of
 * another device stay there, and memory usvm cannot migrate (shared,
 * file-backed) stays where it is: then the read-back fails with -ENOENT,
 * as in the kernel.
 */
static int dm_migrate_to_dev(struct dm_job *j)
{
	uintptr_t a, b;
	struct dev_vma v;

	if (vmas_allow(j->start, j->end, PROT_READ))
		return -EINVAL;
	for (a = j->start; a < j->end; a = b) {
		if (dev_vma_query(a, &v))
			return -EINVAL; /* unmapped meanwhile */
		b = MIN_UL(v.end, j->end);
		migrate_part(j->f, a, b, &v);
	}
	if (!all_local(j->f, j->start, j->end))
		return -ENOENT;
	return dm_readback(j);
}

/*
 * MIGRATE_TO_SYS (dmirror_migrate_to_system): this device's pages of the
 * range come home; cpages counts them.  usvm migrates whole device
 * allocations (up to 2 MiB, as drm_pagemap does), so pages of an
 * allocation that lie outside the range come home too.
 */
static int dm_migrate_to_sys(struct dm_job *j)
{
	struct dm_file *f = j->f;
	uintptr_t a, next, p;
	long before = 0, left;

	if (vmas_allow(j->start, j->end, PROT_READ))
		return -EINVAL;
	for (a = j->start; a < j->end; a = next) {
		if (!dm_managed(f->mm, a, j->end, &next))
			continue;
		left = usvm_resident_bytes(f->mm, (void *)a, next - a, f->pm);
		before += left > 0 ? left : 0;
		for (p = a; left > 0 && p < next; p += USVM_PAGE_SIZE) {
			struct usvm_pagemap *where;

			if (!usvm_where(f->mm, (void *)p, &where) && where == f->pm)
				usvm_pagemap_evict(f->pm, f->mm, (void *)p);
		}
		left = usvm_resident_bytes(f->mm, (void *)a, next - a, f->pm);
		before -= left > 0 ? left : 0;
	}
	j->cmd->cpages = (uint64_t)before >> USVM_PAGE_SHIFT;
	return 0;
}

/*
 * EXCLUSIVE (dmirror_exclusive): see DOC: Device-exclusive access (file.c).
 * The pages must be writable (-EFAULT) and memory usvm manages
 * (-EOPNOTSUPP: the kernel refuses device-exclusive access to non-anonymous
 * memory too).
 */
static int dm_exclusive(struct dm_job *j)
{
	struct dm_file *f = j->f;
	uintptr_t a, next;
	int err;

	if (vmas_allow(j->start, j->end, PROT_READ | PROT_WRITE))
		return -EFAULT;
	dm_adopt(f->mm, j->start, j->end);
	for (a = j->start; a < j->end; a = next) {
		if (!dm_managed(f->mm, a, j->end, &next))
			return -EOPNOTSUPP;
	}
	populate_own(f, j->start, j->end, 1);
	err = dm_excl_add(f, j->start, j->end);
	if (err)
		return err;
	/* A CPU touch between the move and the mark would be missed: check. */
	if (!all_local(f, j->start, j->end)) {
		dm_excl_remove(f, j->start, j->end);
		return -EBUSY;
	}
	return dm_readback(j);
}

/* RELEASE (dmirror_device_remove_chunks): all device memory comes home. */
static int dm_release(struct dm_file *f)
{
	long got = usvm_pagemap_evict(f->pm, f->mm, NULL);

	return got < 0 && got != -ENOENT ? (int)got : 0;
}

int dm_cmd(struct dm_file *f, unsigned long req, struct hmm_dmirror_cmd *cmd)
{
	size_t len = cmd->npages << USVM_PAGE_SHIFT;
	struct dm_job j = { .f = f, .cmd = cmd, .start = cmd->addr, .end = cmd->addr + len };
	int err;

	switch (req) {
	case HMM_DMIRROR_SNAPSHOT:
		return dm_snapshot(f, cmd);
	case HMM_DMIRROR_MIGRATE_TO_SYS:
		return dm_migrate_to_sys(&j);
	case HMM_DMIRROR_CHECK_EXCLUSIVE:
		/* A munmap/madvise that returned ended the access: its event
		 * was read, but may still be on its way to the notifier. */
		mm_events_settle(f->mm);
		return dm_excl_any(f, j.start, j.end) ? -EPERM : 0;
	case HMM_DMIRROR_RELEASE:
		return dm_release(f);
	case HMM_DMIRROR_FLAGS:
		pthread_mutex_lock(&f->lock);
		f->flags = cmd->npages;
		pthread_mutex_unlock(&f->lock);
		return 0;
	case HMM_DMIRROR_READ:
	case HMM_DMIRROR_WRITE:
	case HMM_DMIRROR_MIGRATE_TO_DEV:
	case HMM_DMIRROR_EXCLUSIVE:
		break;
	default:
		return -EINVAL;
	}
	j.bounce = malloc(len);
	if (!j.bounce)
		return -ENOMEM;
	switch (req) {
	case HMM_DMIRROR_READ: err = dm_read(&j); break;
	case HMM_DMIRROR_WRITE: err = dm_write(&j); break;
	case HMM_DMIRROR_MIGRATE_TO_DEV: err = dm_migrate_to_dev(&j); break;
	default: err = dm_exclusive(&j); break;
	}
	free(j.bounce);
	return err;
}

int dm_ioctl(struct dm_file *f, unsigned long req, void *arg)
{
	struct hmm_dmirror_cmd cmd;
	int err;

	/* The driver's order: copy in, check the range, run, copy out. */
	if (dev_guarded_copy(&cmd, arg, sizeof(cmd)))
		return -EFAULT;
	if (cmd.addr & (USVM_PAGE_SIZE - 1))
		return -EINVAL;
	if (cmd.addr >= cmd.addr + (cmd.npages << USVM_PAGE_SHIFT))
		return -EINVAL; /* empty, or wrapping around */
	cmd.cpages = 0;
	cmd.faults = 0;
	err = dm_cmd(f, req, &cmd);
	if (err)
		return err; /* like the driver: cmd is not copied back */
	return dev_guarded_copy(arg, &cmd, sizeof(cmd));
}

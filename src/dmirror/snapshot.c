// SPDX-License-Identifier: MIT
/*
 * HMM_DMIRROR_SNAPSHOT (dmirror_snapshot): one byte per page saying what a
 * device would find there without faulting anything in -- hmm_range_fault
 * without HMM_PFN_REQ_FAULT.  usvm reads it off the CPU page tables
 * (PAGEMAP_SCAN, Linux 6.7+, and /proc/self/pagemap) and its own page
 * states, never touching the program's memory:
 *
 *   no mapping, or not readable           PROT_ERROR
 *   in this device's memory               DEV_PRIVATE_LOCAL | WRITE or READ
 *                                         (| PMD for a whole 2 MiB allocation)
 *   in another device's memory            PROT_NONE (not mappable without a fault)
 *   not present (never touched, swapped)  PROT_NONE
 *   the zero page                         ZERO | READ
 *   present                               WRITE when the mapping is writable and
 *                                         shared, or private and the page is the
 *                                         process's own anonymous page (not
 *                                         shared copy-on-write, not the file's
 *                                         page cache), else READ;
 *                                         | PMD (THP, 2 MiB hugetlb) or PUD (1 GiB)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include "dmirror.h"
#include "device/device.h"
#include "migrate/migrate.h"

/* PAGEMAP_SCAN (include/uapi/linux/fs.h, Linux 6.7), for older headers. */
#ifndef PAGEMAP_SCAN
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
struct page_region {
	uint64_t start, end, categories;
};
/* The kernel's layout: every member counts, used or not. */
struct pm_scan_arg {
	/* cppcheck-suppress unusedStructMember */
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	/* cppcheck-suppress unusedStructMember */
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#endif

/* /proc/self/pagemap: bit 56, the page is mapped by this process only;
 * bit 61, a page cache or shared anonymous page. */
#define PM_MMAP_EXCLUSIVE (1ull << 56)
#define PM_FILE (1ull << 61)
#define PM_PRESENT (1ull << 63)

/* PAGEMAP_SCAN categories of every page of [a, b) into @cat. */
static int scan_categories(int fd, uintptr_t a, uintptr_t b, uint64_t *cat)
{
	struct page_region reg[64];
	struct pm_scan_arg arg = {
		.size = sizeof(arg), .start = a, .end = b, .vec = (uintptr_t)reg,
		.vec_len = ARRAY_SIZE(reg),
		.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_PFNZERO | PAGE_IS_HUGE,
	};

	memset(cat, 0, ((b - a) >> USVM_PAGE_SHIFT) * sizeof(*cat));
	while (arg.start < b) {
		long n = ioctl(fd, PAGEMAP_SCAN, &arg), i;
		uintptr_t p;

		if (n < 0)
			return -errno;
		for (i = 0; i < n; i++)
			for (p = reg[i].start; p < reg[i].end; p += USVM_PAGE_SIZE)
				cat[(p - a) >> USVM_PAGE_SHIFT] = reg[i].categories;
		if (arg.walk_end <= arg.start)
			break;
		arg.start = arg.walk_end;
	}
	return 0;
}

/* The pagemap holding managed page @a (NULL: system), and whether its
 * device allocation fills a whole 2 MiB block. */
static struct usvm_pagemap *page_owner(struct usvm_mm *mm, uintptr_t a, int *block)
{
	struct usvm_pagemap *pm = NULL;
	struct usvm_region *r;

	*block = 0;
	usvm_rwlock_rdlock(&mm->regions_lock);
	r = mm_region_find(mm, a);
	if (r && (region_blk(r, a) & MM_BLK_STATE)) {
		struct mm_devmem *m;

		mm_block_lock_acquire(mm, a);
		m = region_page(r, a)->dm;
		if (m) {
			pm = m->pagemap;
			*block = to_devmem(m)->pub.npages == USVM_BLOCK_PAGES;
		}
		mm_block_lock_release(mm, a);
	}
	usvm_rwlock_unlock(&mm->regions_lock);
	return pm;
}

/* The byte for a CPU page with categories @cat and pagemap entry @pme. */
static uint8_t cpu_byte(const struct dev_vma *v, uint64_t cat, uint64_t pme)
{
	uint8_t b;

	if (cat & PAGE_IS_PFNZERO)
		b = HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ;
	else if (!(cat & PAGE_IS_PRESENT))
		return HMM_DMIRROR_PROT_NONE;
	else if ((v->prot & PROT_WRITE) &&
		 (v->shared || ((pme & PM_MMAP_EXCLUSIVE) && !(pme & PM_FILE))))
		b = HMM_DMIRROR_PROT_WRITE;
	else
		b = HMM_DMIRROR_PROT_READ;
	if (cat & PAGE_IS_HUGE)
		b |= v->page_size >= (1ul << 30) ? HMM_DMIRROR_PROT_PUD : HMM_DMIRROR_PROT_PMD;
	return b;
}

/* Describe the pages of [a, b), one readable mapping @v, into @out. */
static int describe(struct dm_file *f, const struct dev_vma *v, uintptr_t a, uintptr_t b,
		    int fd, uint8_t *out)
{
	size_t n = (b - a) >> USVM_PAGE_SHIFT, i;
	uint64_t *cat = malloc(n * sizeof(*cat)), *pme = malloc(n * sizeof(*pme));
	int err = -ENOMEM;

	if (!cat || !pme)
		goto out;
	err = scan_categories(fd, a, b, cat);
	if (!err && pread(fd, pme, n * sizeof(*pme), (off_t)(a >> USVM_PAGE_SHIFT) * 8) !=
		    (ssize_t)(n * sizeof(*pme)))
		err = -EIO;
	for (i = 0; !err && i < n; i++) {
		uintptr_t p = a + (i << USVM_PAGE_SHIFT);
		struct usvm_pagemap *pm = NULL;
		int block = 0;

		if (!(pme[i] & PM_PRESENT))
			pm = page_owner(f->mm, p, &block);
		if (!pm)
			out[i] = cpu_byte(v, cat[i], pme[i]);
		else if (pm != f->pm)
			out[i] = HMM_DMIRROR_PROT_NONE;
		else
			out[i] = HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL |
				 ((v->prot & PROT_WRITE) ? HMM_DMIRROR_PROT_WRITE : HMM_DMIRROR_PROT_READ) |
				 (block ? HMM_DMIRROR_PROT_PMD : 0);
	}
out:
	free(cat);
	free(pme);
	return err;
}

/* Fill @out for [start, end), mapping by mapping. */
static int snapshot_range(struct dm_file *f, uintptr_t start, uintptr_t end, int fd,
			  uint8_t *out)
{
	uintptr_t a = start, b;
	struct dev_vma v;
	int err;

	while (a < end) {
		if (dev_vma_query(a, &v)) {
			out[(a - start) >> USVM_PAGE_SHIFT] = HMM_DMIRROR_PROT_ERROR;
			a += USVM_PAGE_SIZE;
			continue;
		}
		b = MIN_UL(v.end, end);
		if (!(v.prot & PROT_READ)) {
			memset(out + ((a - start) >> USVM_PAGE_SHIFT), HMM_DMIRROR_PROT_ERROR,
			       (b - a) >> USVM_PAGE_SHIFT);
		} else {
			err = describe(f, &v, a, b, fd, out + ((a - start) >> USVM_PAGE_SHIFT));
			if (err)
				return err;
		}
		a = b;
	}
	return 0;
}

int dm_snapshot(struct dm_file *f, struct hmm_dmirror_cmd *cmd)
{
	uintptr_t start = cmd->addr, end = start + (cmd->npages << USVM_PAGE_SHIFT);
	uint8_t *out = malloc(cmd->npages);
	/* Opened per command: one kept open would describe the parent after
	 * fork(). */
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), err = -ENOMEM;

	if (fd < 0)
		err = -errno;
	else if (out)
		err = snapshot_range(f, start, end, fd, out);
	if (!err)
		err = dev_guarded_copy((void *)(uintptr_t)cmd->ptr, out, cmd->npages);
	if (!err)
		cmd->cpages = cmd->npages;
	if (fd >= 0)
		close(fd);
	free(out);
	return err;
}

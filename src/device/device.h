/* SPDX-License-Identifier: MIT */
/*
 * The simulated device's interface for the layers above it (src/dmirror):
 * CPU protections as devices see them, accesses that never fault, explicit
 * fault rounds, and a guarded copy.  Not part of the public API.
 *
 * DOC: Devices and CPU protections
 *
 * Devices honour the protections of the CPU mapping, as hmm_range_fault()
 * makes the kernel's device mirrors do: a device read of memory the CPU may
 * not read is a fatal device fault (-EFAULT), a device write (or atomic) to
 * memory the CPU may not write fails with -EPERM, and neither changes a
 * byte.  userfaultfd does not report mprotect(), so the protections are
 * looked up (PROCMAP_QUERY, Linux 6.11+, else /proc/self/maps):
 *
 *  - on every device fault, before anything is migrated or mapped;
 *  - for accesses to system pages, by the CPU's MMU itself: the device
 *    accesses them through the managed mapping, so a protection changed at
 *    any time applies to the very next access; a refused access is then
 *    classified (-EFAULT or -EPERM) with one lookup;
 *  - for accesses to device-resident pages (which the CPU mapping does not
 *    hold), once per launch and mapping: each launch's worker keeps what it
 *    looked up for the rest of the launch.  An mprotect() therefore takes
 *    effect on device-resident pages at the device's next launch
 *    (usvm_device_launch, usvm_device_read/write, every dmirror command),
 *    not in the middle of a launch that already touched that mapping.
 *
 * Memory usvm does not manage (shared or file-backed mappings, memory never
 * registered) is out of a device's reach through the public API (-EFAULT).
 * A fault round (dev_fault_range) may grant a launch access to such memory
 * in place: it is then read and written through the CPU mapping, never
 * migrated, and no translation of it is kept past the launch, so none can go
 * stale when the program unmaps or changes it.
 */
#ifndef USVM_DEVICE_H
#define USVM_DEVICE_H

#include <stddef.h>
#include <stdint.h>
#include "usvm.h"

/* One mapping of the process, as a device sees it. */
struct dev_vma {
	uintptr_t start, end;
	unsigned int prot;        /* PROT_READ | PROT_WRITE | PROT_EXEC of the mapping */
	unsigned int shared : 1;  /* MAP_SHARED */
	unsigned int file : 1;    /* backed by a file (inode or device) */
	uint64_t page_size;       /* 4 KiB, or the hugetlb page size */
};

/**
 * dev_vma_query() - the mapping holding @addr, looked up now.
 * @addr: any address.
 * @out: filled in on success.
 *
 * Return: 0, -ENOENT when nothing is mapped at @addr, or another -errno when
 * the lookup itself failed.
 */
int dev_vma_query(uintptr_t addr, struct dev_vma *out);

/**
 * dev_read_mapped() - read through the translations the device holds now.
 * @ctx: the kernel context.
 * @addr: device (virtual) address.
 * @buf: destination.
 * @len: bytes.
 * @done: set to the bytes read.
 *
 * Like usvm_dev_read() but never takes a device fault: it stops at the
 * first page the device has no valid translation for.
 * Return: 0 (all read); -ENOENT (stopped at a page without a translation:
 * *@done bytes were read); -EFAULT or -EPERM (a fatal device fault).
 */
int dev_read_mapped(struct usvm_kctx *ctx, const void *addr, void *buf, size_t len,
		    size_t *done);

/**
 * dev_write_mapped() - write through the translations the device holds now.
 * The counterpart of dev_read_mapped(), with the same return values.
 */
int dev_write_mapped(struct usvm_kctx *ctx, void *addr, const void *buf, size_t len,
		     size_t *done);

/**
 * dev_fault_range() - one fault round: give the device translations for
 * every page of [@addr, @addr + @len), as hmm_range_fault() does.
 * @ctx: the kernel context.
 * @addr: page aligned start.
 * @len: bytes, page aligned.
 * @write: the translations are wanted for writing.
 *
 * Checks the CPU protections of every page first (see DOC: Devices and CPU
 * protections), then serves a device fault for each range without a valid
 * translation (the device's migration policy applies).  Memory usvm does not
 * manage is granted to @ctx in place for the rest of its launch.
 * Return: 0; -EFAULT (nothing mapped, or not readable); -EPERM (@write and
 * not writable); -EBUSY (invalidations kept racing); -ENOMEM.
 */
int dev_fault_range(struct usvm_kctx *ctx, void *addr, size_t len, int write);

/**
 * dev_guarded_copy() - memcpy() that reports -EFAULT instead of crashing
 * when either side is not accessible (copy_to_user/copy_from_user for
 * layers that take buffers from a program).
 * Return: 0 or -EFAULT (some bytes may have been copied).
 */
int dev_guarded_copy(void *dst, const void *src, size_t len);

#endif

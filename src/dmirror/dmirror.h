/* SPDX-License-Identifier: MIT */
/*
 * libusvm-dmirror.so: the kernel's HMM test device (/dev/hmm_dmirrorN,
 * lib/test_hmm.c) in user space, on usvm's simulated devices.
 *
 * DOC: Objects
 *
 * The process gets one usvm mm, created at the first open (a fork()ed child
 * gets its own at its first open).  Nodes 0 and 1 each get a simulated
 * device memory (a sim pagemap) the first time they are opened: the
 * kernel's two device-private dmirror devices.  Every open() creates a
 * struct dm_file, the kernel's struct dmirror: a usvm device over the mm
 * with its own GPU SVM page table, whose memory is its node's pagemap.  Two
 * files of one node share device memory (DEV_PRIVATE_LOCAL for both), as
 * two opens of one kernel device do.
 *
 * The file descriptor returned is a memfd named after the node; files are
 * found again by the memfd's inode, so a dup()ed descriptor works and a
 * reused descriptor number never reaches a closed file.
 */
#ifndef USVM_DMIRROR_H
#define USVM_DMIRROR_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>
#include "usvm.h"
#include "dmirror_uapi.h"
#include "mm/mm.h"

#define DM_NODES 2      /* device-private nodes: /dev/hmm_dmirror0 and 1 */

/* A device-exclusive span of pages (HMM_DMIRROR_EXCLUSIVE). */
struct dm_span {
	uintptr_t start, end;
};

/* One open of /dev/hmm_dmirrorN (the kernel's struct dmirror). */
struct dm_file {
	atomic_int refs;            /* the file table's + one per ioctl running */
	int node;
	dev_t st_dev;               /* identity of the memfd handed out */
	ino_t st_ino;
	uint64_t gen;               /* dm_proc.gen it was opened in */
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;    /* the node's device memory */
	struct usvm_device *dev;    /* this file's device and page table */
	struct usvm_mm_notifier mn; /* revokes exclusive access */
	pthread_mutex_t lock;       /* excl, flags; a leaf */
	struct dm_span *excl;       /* sorted, disjoint */
	size_t nexcl, cap;
	uint64_t flags;             /* HMM_DMIRROR_FLAGS */
};

/* dmirror.c */
extern uint64_t dm_gen;
void dm_file_put(struct dm_file *f);

/* file.c: one file's lifetime. */
int dm_file_setup(struct dm_file *f, struct usvm_mm *mm, struct usvm_pagemap *pm, int node);
void dm_file_teardown(struct dm_file *f);

/* cmds.c: HMM_DMIRROR_* commands.  Return 0 or -errno; @cmd is filled in. */
int dm_cmd(struct dm_file *f, unsigned long req, struct hmm_dmirror_cmd *cmd);
/* ioctl(@req, @arg) on @f, with the driver's checks and copies.  0 or -errno. */
int dm_ioctl(struct dm_file *f, unsigned long req, void *arg);

/* adopt.c: bringing the program's memory under usvm. */
void dm_adopt(struct usvm_mm *mm, uintptr_t start, uintptr_t end);
int dm_managed(struct usvm_mm *mm, uintptr_t a, uintptr_t end, uintptr_t *next);

/* snapshot.c */
int dm_snapshot(struct dm_file *f, struct hmm_dmirror_cmd *cmd);

/* Exclusive spans (file.c); f->lock taken inside. */
int dm_excl_add(struct dm_file *f, uintptr_t start, uintptr_t end);
void dm_excl_remove(struct dm_file *f, uintptr_t start, uintptr_t end);
int dm_excl_any(struct dm_file *f, uintptr_t start, uintptr_t end);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * dmirror_uapi.h - the ioctl interface of the kernel's HMM test driver
 * (/dev/hmm_dmirror0..3, lib/test_hmm.c), as an ABI: the numbers and the
 * layout a program built against the kernel's lib/test_hmm_uapi.h passes.
 * libusvm-dmirror.so implements it (README: "Running kernel HMM test
 * programs (dmirror)"); its tests include this header instead of the
 * kernel's.
 */
#ifndef USVM_DMIRROR_UAPI_H
#define USVM_DMIRROR_UAPI_H

#include <stdint.h>
#include <sys/ioctl.h>

/*
 * The one argument of every command, read and written back in place.
 * @addr:   in: first byte of the program's range (page aligned)
 * @ptr:    in: the program's buffer the device copies to or from (READ,
 *          WRITE, MIGRATE_TO_DEV, EXCLUSIVE: npages pages; SNAPSHOT: npages
 *          bytes)
 * @npages: in: pages in the range (FLAGS: the flags)
 * @cpages: out: pages the command copied, migrated or described
 * @faults: out: device fault rounds the command took
 */
struct hmm_dmirror_cmd {
	uint64_t addr;
	uint64_t ptr;
	uint64_t npages;
	uint64_t cpages;
	uint64_t faults;
};

#define HMM_DMIRROR_IOC_TYPE 'H'

/* Device reads [addr, +npages) into ptr; faults what it has no translation for. */
#define HMM_DMIRROR_READ		_IOWR('H', 0x00, struct hmm_dmirror_cmd)
/* Device writes ptr into [addr, +npages). */
#define HMM_DMIRROR_WRITE		_IOWR('H', 0x01, struct hmm_dmirror_cmd)
/* Migrate the range into the device's memory, then read it back into ptr. */
#define HMM_DMIRROR_MIGRATE_TO_DEV	_IOWR('H', 0x02, struct hmm_dmirror_cmd)
/* Migrate this device's pages of the range back to system memory. */
#define HMM_DMIRROR_MIGRATE_TO_SYS	_IOWR('H', 0x03, struct hmm_dmirror_cmd)
/* One HMM_DMIRROR_PROT_* byte per page into ptr, faulting nothing. */
#define HMM_DMIRROR_SNAPSHOT		_IOWR('H', 0x04, struct hmm_dmirror_cmd)
/* Take the range for device-exclusive (atomic) access, read it into ptr. */
#define HMM_DMIRROR_EXCLUSIVE		_IOWR('H', 0x05, struct hmm_dmirror_cmd)
/* Fails with EPERM while any page of the range is still device-exclusive. */
#define HMM_DMIRROR_CHECK_EXCLUSIVE	_IOWR('H', 0x06, struct hmm_dmirror_cmd)
/* Evict all of the device's memory back to system memory (newer kernels). */
#define HMM_DMIRROR_RELEASE		_IOWR('H', 0x07, struct hmm_dmirror_cmd)
/* Set the device's test flags from npages (newer kernels). */
#define HMM_DMIRROR_FLAGS		_IOWR('H', 0x08, struct hmm_dmirror_cmd)

/* HMM_DMIRROR_FLAGS: the next large device allocation fails (small pages). */
#define HMM_DMIRROR_FLAG_FAIL_ALLOC	(1ULL << 0)

/* SNAPSHOT bytes: an access kind, possibly or'ed with PMD/PUD and a residency. */
enum {
	HMM_DMIRROR_PROT_ERROR			= 0xFF, /* no mapping, or no access */
	HMM_DMIRROR_PROT_NONE			= 0x00, /* nothing the device could map */
	HMM_DMIRROR_PROT_READ			= 0x01,
	HMM_DMIRROR_PROT_WRITE			= 0x02,
	HMM_DMIRROR_PROT_PMD			= 0x04, /* part of a 2 MiB mapping */
	HMM_DMIRROR_PROT_PUD			= 0x08, /* part of a 1 GiB mapping */
	HMM_DMIRROR_PROT_ZERO			= 0x10, /* the shared zero page */
	HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL	= 0x20, /* in this device's memory */
	HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE	= 0x30, /* in another device's memory */
	HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL	= 0x40,
	HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE	= 0x50,
};

/* The device memory kinds of the four nodes (0, 1: private; 2, 3: coherent). */
enum {
	HMM_DMIRROR_MEMORY_DEVICE_PRIVATE	= 1,
	HMM_DMIRROR_MEMORY_DEVICE_COHERENT	= 2,
};

#endif

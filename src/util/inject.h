/* SPDX-License-Identifier: MIT */
/*
 * DOC: Fault injection (testing)
 *
 * USVM_FAULT_INJECT=site:rate[,site:rate...] makes chosen operations fail
 * at random with the given probability, so tests can check what usvm
 * promises when a backend or the kernel says no:
 *
 *   devmem_alloc    -ENOMEM from the backend's allocator: populate evicts
 *                   and retries, then fails (best effort); devices fall
 *                   back to system memory.
 *   copy_to_devmem  -EIO before any page moved: that piece of the populate
 *                   is not migrated (populate returns -EIO), nothing is lost.
 *   copy_to_ram     -EIO before any page moved back: the data stays in
 *                   device memory and the migration is retried (CPU faults
 *                   retry after a millisecond; eviction, unbind, fork and
 *                   teardown retry until it works).
 *   uffd            -EAGAIN from UFFDIO_MOVE/COPY/ZEROPAGE, as when the
 *                   address space is changing: every caller retries.
 *
 * The configuration is read whenever an mm is created (and can be changed by
 * usvm_inject_configure); the random stream is seeded by
 * USVM_FAULT_INJECT_SEED.
 */
#ifndef USVM_INJECT_H
#define USVM_INJECT_H

#include <stdatomic.h>
#include <stdint.h>

enum usvm_inject_site {
	USVM_INJECT_DEVMEM_ALLOC,
	USVM_INJECT_COPY_TO_DEVMEM,
	USVM_INJECT_COPY_TO_RAM,
	USVM_INJECT_UFFD,
	USVM_INJECT_NR
};

extern atomic_int usvm_inject_on;

/* Parse @spec (NULL or "" turns injection off).  0 or -EINVAL. */
int usvm_inject_configure(const char *spec);
/* Apply USVM_FAULT_INJECT (warns about an invalid spec). */
void usvm_inject_configure_env(void);
int _usvm_inject_fail(enum usvm_inject_site site);
/* Should this operation fail now?  Costs one load when injection is off. */
static inline int usvm_inject_fail(enum usvm_inject_site site)
{
	return atomic_load_explicit(&usvm_inject_on, memory_order_relaxed) &&
	       _usvm_inject_fail(site);
}
/* Failures injected so far at @site. */
uint64_t usvm_inject_count(enum usvm_inject_site site);

#endif

/* SPDX-License-Identifier: MIT */
/* hostmem: a usvm backend written outside the usvm tree (see hostmem.c). */
#ifndef HOSTMEM_H
#define HOSTMEM_H

#include <usvm/backend.h>

/* A pagemap of @capacity bytes of host memory, with a first-fit allocator. */
int hostmem_pagemap_create(const char *name, size_t capacity, struct usvm_pagemap **out);
/* Device allocations the backend has seen released (for the test). */
unsigned long hostmem_releases(struct usvm_pagemap *pm);

#endif

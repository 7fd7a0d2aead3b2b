/* SPDX-License-Identifier: MIT */
/*
 * Sorted arrays of pointers to non-overlapping address spans: objects that
 * begin with `uintptr_t start, end` (mm regions, GPU SVM notifiers and
 * ranges).  One binary search and one sorted insert for all of them.
 */
#ifndef USVM_SPAN_H
#define USVM_SPAN_H

#include <stddef.h>
#include <stdint.h>

struct usvm_span {
	uintptr_t start, end;
};

/* Index of the first span of @v[0..n) that ends after @addr. */
size_t span_lower_bound(void *const *v, size_t n, uintptr_t addr);
/* The span holding @addr, or NULL. */
void *span_find(void *const *v, size_t n, uintptr_t addr);
/* Insert @item in order.  Return 0, -EEXIST (overlap) or -ENOMEM. */
int span_insert(void ***v, size_t *n, size_t *cap, void *item);
/* Remove @item if present. */
void span_remove(void **v, size_t *n, const void *item);

#endif

// SPDX-License-Identifier: MIT
/* Sorted arrays of address spans (see span.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "span.h"

static const struct usvm_span *at(void *const *v, size_t i)
{
	return (const struct usvm_span *)v[i];
}

size_t span_lower_bound(void *const *v, size_t n, uintptr_t addr)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (at(v, mid)->end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void *span_find(void *const *v, size_t n, uintptr_t addr)
{
	size_t i = span_lower_bound(v, n, addr);

	return i < n && at(v, i)->start <= addr ? v[i] : NULL;
}

int span_insert(void ***v, size_t *n, size_t *cap, void *item)
{
	const struct usvm_span *s = item;
	size_t i = span_lower_bound(*v, *n, s->start);

	if (i < *n && at(*v, i)->start < s->end)
		return -EEXIST;
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		void **nv = realloc(*v, c * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = c;
	}
	memmove(&(*v)[i + 1], &(*v)[i], (*n - i) * sizeof(**v));
	(*v)[i] = item;
	(*n)++;
	return 0;
}

void span_remove(void **v, size_t *n, const void *item)
{
	size_t i = span_lower_bound(v, *n, ((const struct usvm_span *)item)->start);

	if (i < *n && v[i] == item) {
		memmove(&v[i], &v[i + 1], (*n - i - 1) * sizeof(*v));
		(*n)--;
	}
}

/* SPDX-License-Identifier: MIT */
/* Small helpers shared by every part of usvm: lists, time, logging. */
#ifndef USVM_UTIL_H
#define USVM_UTIL_H

#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>
#include <stdatomic.h>

#define USVM_PAGE_SHIFT 12
#define USVM_PAGE_MASK (~(USVM_PAGE_SIZE - 1))
#define USVM_BLOCK_SHIFT 21
#define USVM_BLOCK_PAGES (USVM_BLOCK_SIZE >> USVM_PAGE_SHIFT)

#define ALIGN_DOWN_UL(x, a) ((x) & ~((uintptr_t)(a) - 1))
#define ALIGN_UP_UL(x, a) (((x) + ((uintptr_t)(a) - 1)) & ~((uintptr_t)(a) - 1))
#define MIN_UL(a, b) ((a) < (b) ? (a) : (b))
#define MAX_UL(a, b) ((a) > (b) ? (a) : (b))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

struct list_head {
	struct list_head *next, *prev;
};

static inline void list_init(struct list_head *h) { h->next = h->prev = h; }
static inline int list_empty(const struct list_head *h) { return h->next == h; }
static inline void list_add_tail(struct list_head *n, struct list_head *h)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}
static inline void list_del_init(struct list_head *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	list_init(n);
}

static inline uint64_t usvm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Relaxed statistics counters: exact totals, no ordering needed. */
#define STAT_ADD(field, v) atomic_fetch_add_explicit(&(field), (uint64_t)(v), memory_order_relaxed)
#define STAT_SUB(field, v) atomic_fetch_sub_explicit(&(field), (uint64_t)(v), memory_order_relaxed)
#define STAT_READ(field) atomic_load_explicit(&(field), memory_order_relaxed)
static inline void stat_max(_Atomic uint64_t *m, uint64_t v)
{
	uint64_t cur = atomic_load_explicit(m, memory_order_relaxed);

	while (v > cur && !atomic_compare_exchange_weak(m, &cur, v))
		;
}

/*
 * Bounded retry with growing sleeps, for operations that fail transiently
 * (-EAGAIN while the address space changes, an injected -EIO): the first
 * tries yield, later ones sleep up to a millisecond.  usvm_backoff()
 * returns 0 once @limit_ms have passed since the first call.
 */
struct usvm_backoff {
	uint64_t deadline_ns;
	unsigned int tries;
	unsigned int limit_ms;
};
#define USVM_BACKOFF_INIT(ms) { 0, 0, (ms) }
int usvm_backoff(struct usvm_backoff *b);

#include "options.h"

#endif

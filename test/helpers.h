/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the core tests: assertions, skipping, deterministic data
 * patterns checked byte by byte, statistics snapshots and a watchdog.
 *
 * Exit codes: 0 pass, 77 skip, anything else fail.
 */
#ifndef USVM_TEST_HELPERS_H
#define USVM_TEST_HELPERS_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "usvm.h"

#define TEST_SKIP 77
#define MiB (1ul << 20)
#define KiB (1ul << 10)
#define PAGE USVM_PAGE_SIZE

/* Fail the test (from any thread) with file:line and a message. */
#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		if (!(cond)) {                                                  \
			test_fail_at(__FILE__, __LINE__, #cond, __VA_ARGS__);   \
		}                                                               \
	} while (0)

/* @expr must return @want (an int/long); prints usvm_strerror on mismatch. */
#define CHECK_RET(expr, want)                                                   \
	do {                                                                    \
		long _got = (long)(expr);                                       \
		long _want = (long)(want);                                      \
		if (_got != _want)                                              \
			test_fail_at(__FILE__, __LINE__, #expr,                 \
				     "returned %ld (%s), expected %ld (%s)", _got,  \
				     usvm_strerror((int)_got), _want,           \
				     usvm_strerror((int)_want));                \
	} while (0)

#define CHECK_OK(expr) CHECK_RET(expr, 0)

__attribute__((noreturn, format(printf, 4, 5)))
void test_fail_at(const char *file, int line, const char *what, const char *fmt, ...);

__attribute__((noreturn, format(printf, 1, 2)))
void test_skip(const char *fmt, ...);

/*
 * Common start of every test: unbuffered stdout, a watchdog that fails the
 * test after @timeout_s seconds (a hang is a failure, never a CI stall), and
 * a skip (exit 77) when usvm_probe() says usvm cannot run here.
 */
void test_init(const char *name, unsigned int timeout_s);
void skip_if_no_uffd(void);

/* An mm (default options when @opts is NULL) and a simulated pagemap. */
struct usvm_mm *test_mm_create(const struct usvm_mm_options *opts);
struct usvm_pagemap *test_sim_create(const char *name, size_t capacity);
void test_setup(struct usvm_mm **mm, struct usvm_pagemap **pm, size_t capacity);
void *test_alloc(struct usvm_mm *mm, size_t size);

/* ---- data patterns ------------------------------------------------------ */

#define PATTERN_OK SIZE_MAX

/* The byte at offset @off of a buffer filled with seed @seed. */
static inline uint64_t pattern_word(uint64_t seed, uint64_t word_index)
{
	uint64_t z = seed * 0x9E3779B97F4A7C15ull + word_index * 0xBF58476D1CE4E5B9ull + 1;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static inline uint8_t pattern_byte(uint64_t seed, size_t off)
{
	return (uint8_t)(pattern_word(seed, off >> 3) >> ((off & 7) * 8));
}

/*
 * Fill [p, p+len) so that the byte at p+i is pattern_byte(seed, base_off+i):
 * @base_off lets a sub-range be filled/checked consistently with its buffer.
 */
void pattern_fill_at(void *p, size_t len, uint64_t seed, size_t base_off);
/* Check every byte; return the offset (from @p) of the first mismatch, or PATTERN_OK. */
size_t pattern_check_at(const void *p, size_t len, uint64_t seed, size_t base_off);
static inline void pattern_fill(void *p, size_t len, uint64_t seed)
{
	pattern_fill_at(p, len, seed, 0);
}
static inline size_t pattern_check(const void *p, size_t len, uint64_t seed)
{
	return pattern_check_at(p, len, seed, 0);
}
/* First non-zero byte offset, or PATTERN_OK. */
size_t zero_check(const void *p, size_t len);

/*
 * Fail with a useful message when [p, p+len) does not hold seed @seed at
 * pattern offsets base_off.. (CHECK_PATTERN: base_off 0).
 */
#define CHECK_PATTERN_AT(p, len, seed, base_off)                                \
	do {                                                                    \
		const uint8_t *_p = (const uint8_t *)(p);                       \
		uint64_t _s = (seed);                                           \
		size_t _o = (base_off);                                         \
		size_t _bad = pattern_check_at(_p, (len), _s, _o);              \
		if (_bad != PATTERN_OK)                                         \
			test_fail_at(__FILE__, __LINE__, "pattern " #p,         \
				     "mismatch at offset %zu (%p): got 0x%02x, " \
				     "expected 0x%02x (seed %llu)", _bad,        \
				     (const void *)(_p + _bad), _p[_bad],       \
				     pattern_byte(_s, _o + _bad),               \
				     (unsigned long long)_s);                   \
	} while (0)
#define CHECK_PATTERN(p, len, seed) CHECK_PATTERN_AT(p, len, seed, 0)

#define CHECK_ZERO(p, len)                                                      \
	do {                                                                    \
		const uint8_t *_p = (const uint8_t *)(p);                       \
		size_t _bad = zero_check(_p, (len));                            \
		if (_bad != PATTERN_OK)                                         \
			test_fail_at(__FILE__, __LINE__, "zero " #p,            \
				     "non-zero byte 0x%02x at offset %zu", _p[_bad], _bad); \
	} while (0)

/* ---- statistics ---------------------------------------------------------- */

struct usvm_mm_stats mm_stats(struct usvm_mm *mm);
struct usvm_pagemap_stats pm_stats(struct usvm_pagemap *pm);

/* Bytes of [p, p+len) held by @pm (NULL: system memory); fails on error. */
long resident(struct usvm_mm *mm, const void *p, size_t len, struct usvm_pagemap *pm);

/*
 * Wait until CPU-fault handlers working on [p, p+len) are done: they hold
 * the block locks of the range while they migrate and account, and
 * usvm_resident_bytes takes those locks.  The library wakes a faulting
 * thread only after its bookkeeping (statistics, device memory release), so
 * this is belt and braces: statistics checks after a CPU access stay exact
 * even if that order changes.  Call it before reading such statistics.
 */
void settle(struct usvm_mm *mm, const void *p, size_t len);

/* ---- misc ----------------------------------------------------------------- */

uint64_t now_ns(void);
void sleep_ms(unsigned int ms);
/* xorshift64*: a small deterministic random generator. */
uint64_t rng_next(uint64_t *state);


/* ---- device helpers (the dev_* tests) ---------------------------------- */

/* A transfer between managed memory and a host buffer, one kernel index per
 * @chunk bytes. */
struct xfer {
	uint8_t *dev;   /* managed memory */
	uint8_t *host;  /* plain host buffer */
	size_t len, chunk;
	int write;
};

struct usvm_device *dev_new(struct usvm_mm *mm, const char *name, struct usvm_pagemap *pm,
			    enum usvm_migrate_policy pol, unsigned int threads);
struct usvm_device_stats dstats(struct usvm_device *d);
int k_xfer(struct usvm_kctx *c, unsigned long i, void *arg);
/* Device copy of [devp, devp+len) to/from @host in kernel indices of @chunk bytes. */
int dev_copy(struct usvm_device *d, void *devp, void *host, size_t len, size_t chunk, int write);
/* Anonymous private memory of @len bytes aligned to @align. */
void *map_aligned(size_t len, size_t align);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Helpers of the dmirror tests: programs that use only the kernel's
 * HMM test driver interface (dmirror_uapi.h), as hmm-tests does, and run
 * with libusvm-dmirror.so preloaded (test/dmirror/run.sh).  They never call
 * usvm: everything they check is what the uAPI and the CPU see.
 *
 * Exit codes: 0 pass, 77 skip (userfaultfd not usable here), else fail.
 */
#ifndef DM_TEST_H
#define DM_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include "dmirror_uapi.h"

#define PAGE 4096ul
#define MiB (1ul << 20)
#define NPAGES 1024ul                  /* hmm-tests' HMM_BUFFER_SIZE: 4 MiB */
#define TEST_SKIP 77

static const char *dm_test_name = "dmirror";

__attribute__((noreturn, format(printf, 3, 4), unused))
static void dm_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: FAIL %s:%d: ", dm_test_name, file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		if (!(cond))                                                    \
			dm_fail(__FILE__, __LINE__, __VA_ARGS__);               \
	} while (0)

/* @expr (an errno-style int: 0 or -errno) must be @want. */
#define CHECK_RET(expr, want)                                                   \
	do {                                                                    \
		int _got = (expr), _want = (want);                              \
		if (_got != _want)                                              \
			dm_fail(__FILE__, __LINE__, "%s returned %d (%s), expected %d (%s)", \
				#expr, _got, strerror(-_got), _want, strerror(-_want)); \
	} while (0)

/* A program buffer (ptr) and the device-side copy (mirror), as in hmm-tests. */
struct buf {
	void *ptr;
	void *mirror;
	size_t size;
	uint64_t cpages, faults;
};

/*
 * Run @req on [b->ptr, +npages) with b->mirror; 0 or -errno.  On success
 * the counters land in @b; on failure @b keeps the sentinel ~0 values and
 * the command structure must be untouched (the driver copies it back only
 * on success).
 */
__attribute__((unused))
static int dm_cmd(int fd, unsigned long req, struct buf *b, uint64_t npages)
{
	struct hmm_dmirror_cmd cmd = {
		.addr = (uintptr_t)b->ptr, .ptr = (uintptr_t)b->mirror, .npages = npages,
		.cpages = ~0ull, .faults = ~0ull,
	};
	int ret;

	b->cpages = b->faults = ~0ull;
	do {
		ret = ioctl(fd, req, &cmd);
	} while (ret && errno == EINTR);
	if (ret) {
		ret = -errno;
		CHECK(cmd.cpages == ~0ull && cmd.faults == ~0ull,
		      "a failed command (%d) wrote its counters back", ret);
		return ret;
	}
	b->cpages = cmd.cpages;
	b->faults = cmd.faults;
	return 0;
}

/* The command must succeed with exactly these counters. */
#define CHECK_CMD(fd, req, b, npages, want_cpages, want_faults)                   \
	do {                                                                    \
		CHECK_RET(dm_cmd((fd), (req), (b), (npages)), 0);               \
		CHECK((b)->cpages == (uint64_t)(want_cpages),                   \
		      #req ": cpages %llu, expected %llu",                      \
		      (unsigned long long)(b)->cpages,                          \
		      (unsigned long long)(want_cpages));                       \
		CHECK((b)->faults == (uint64_t)(want_faults),                   \
		      #req ": faults %llu, expected %llu",                      \
		      (unsigned long long)(b)->faults,                          \
		      (unsigned long long)(want_faults));                       \
	} while (0)

/*
 * Open /dev/hmm_dmirror@unit.  The first open of a test decides: EPERM or
 * ENOSYS means usvm cannot get userfaultfd here (skip); ENOENT means the
 * library is not preloaded (fail).
 */
__attribute__((unused))
static int dm_open(int unit)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/dev/hmm_dmirror%d", unit);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && (errno == EPERM || errno == ENOSYS)) {
		printf("%s: skip: %s: %s (userfaultfd not usable here)\n", dm_test_name, path,
		       strerror(errno));
		exit(TEST_SKIP);
	}
	CHECK(fd >= 0, "open %s: %s (is libusvm-dmirror.so preloaded?)", path,
	      strerror(errno));
	return fd;
}

/* A buffer of @npages: private anonymous @prot memory and a mirror. */
__attribute__((unused))
static struct buf *buf_new(size_t npages, int prot, int flags)
{
	struct buf *b = calloc(1, sizeof(*b));

	CHECK(b != NULL, "calloc");
	b->size = npages * PAGE;
	b->mirror = malloc(b->size);
	CHECK(b->mirror != NULL, "malloc");
	b->ptr = mmap(NULL, b->size, prot, flags ? flags : MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(b->ptr != MAP_FAILED, "mmap: %s", strerror(errno));
	return b;
}

/* The same, @align aligned (for 2 MiB blocks). */
__attribute__((unused))
static struct buf *buf_new_aligned(size_t npages, int prot, size_t align)
{
	struct buf *b = calloc(1, sizeof(*b));
	uint8_t *p;
	uintptr_t a;

	CHECK(b != NULL, "calloc");
	b->size = npages * PAGE;
	b->mirror = malloc(b->size);
	CHECK(b->mirror != NULL, "malloc");
	p = mmap(NULL, b->size + align, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
	a = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
	if (a > (uintptr_t)p)
		munmap(p, a - (uintptr_t)p);
	munmap((void *)(a + b->size), (uintptr_t)p + align - a);
	b->ptr = (void *)a;
	return b;
}

__attribute__((unused))
static void buf_free(struct buf *b)
{
	if (b->ptr)
		munmap(b->ptr, b->size);
	free(b->mirror);
	free(b);
}

/* Fill ints: p[i] = i + bias; check them. */
__attribute__((unused))
static void fill(void *p, size_t bytes, int bias)
{
	int *q = p;
	size_t i;

	for (i = 0; i < bytes / sizeof(int); i++)
		q[i] = (int)i + bias;
}

#define CHECK_FILL(p, bytes, bias)                                              \
	do {                                                                    \
		const int *_q = (const int *)(p);                               \
		size_t _i, _n = (bytes) / sizeof(int);                          \
		for (_i = 0; _i < _n; _i++)                                     \
			if (_q[_i] != (int)_i + (bias))                         \
				dm_fail(__FILE__, __LINE__,                     \
					"%s[%zu] = %d, expected %d", #p, _i,    \
					_q[_i], (int)_i + (bias));              \
	} while (0)

/* Fail the test if it runs longer than @seconds (a hang is a failure). */
__attribute__((unused))
static void dm_test_init(const char *name, unsigned int seconds)
{
	dm_test_name = name;
	setvbuf(stdout, NULL, _IONBF, 0);
	alarm(seconds);
	printf("%s\n", name);
}

#endif

// SPDX-License-Identifier: MIT
/* Helpers shared by the core tests (see helpers.h). */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/mman.h>
#include "helpers.h"

static const char *test_name = "test";
static unsigned int watchdog_s;

void test_fail_at(const char *file, int line, const char *what, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "%s: FAIL %s:%d: %s: ", test_name, file, line, what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	/* _exit: other threads may hold library locks; atexit work could hang. */
	_exit(1);
}

void test_skip(const char *fmt, ...)
{
	va_list ap;

	printf("skip: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(TEST_SKIP);
}

/*
 * A watchdog thread, not alarm(): SIGALRM may be delivered to a thread
 * stuck in an uninterruptible wait (e.g. inside munmap, waiting for its
 * userfaultfd event to be read), and then it never fires.
 */
static void *watchdog(void *arg)
{
	static const char msg[] = ": FAIL: watchdog expired (hang?)\n";

	(void)arg;
	sleep(watchdog_s);
	if (write(2, test_name, strlen(test_name)) < 0 || write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing more to do */
	}
	_exit(1);
	return NULL;
}

/*
 * The watchdog catches hangs, not slowness: sanitizer builds run several
 * times slower, and a machine under load slower again, so the budget
 * grows with them (USVM_TEST_SLOW=N multiplies it further).
 */
static unsigned int watchdog_scale(void)
{
	const char *slow = getenv("USVM_TEST_SLOW");
	unsigned int k = 1;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	k = 4;
#endif
	if (slow && atoi(slow) > 0)
		k *= (unsigned int)atoi(slow);
	return k;
}

void test_init(const char *name, unsigned int timeout_s)
{
	pthread_t th;

	test_name = name;
	setvbuf(stdout, NULL, _IONBF, 0);
	/* The tests check the mechanism: where pages go is what they ask for.
	 * Thrashing mitigation would pin a block a test moves back and forth
	 * quickly, depending on how fast it ran; test/thrashing.c and whoever
	 * sets USVM_THRASHING test it. */
	setenv("USVM_THRASHING", "0", 0);
	watchdog_s = (timeout_s ? timeout_s : 120) * watchdog_scale();
	if (pthread_create(&th, NULL, watchdog, NULL) == 0)
		pthread_detach(th);
	skip_if_no_uffd();
}

void skip_if_no_uffd(void)
{
	struct usvm_caps caps;
	int err = usvm_probe(&caps);

	if (err)
		test_skip("usvm cannot run here: %s (kernel %s, uffd errno %d, UFFDIO_MOVE %d)",
			  usvm_strerror(err), caps.kernel, caps.uffd_errno, caps.feat_move);
}

struct usvm_mm *test_mm_create(const struct usvm_mm_options *opts)
{
	struct usvm_mm *mm = NULL;
	int err = usvm_mm_create(opts, &mm);

	if (err == -EPERM || err == -ENOSYS)
		test_skip("usvm_mm_create: %s", usvm_strerror(err));
	CHECK(err == 0 && mm, "usvm_mm_create: %d (%s)", err, usvm_strerror(err));
	return mm;
}

struct usvm_pagemap *test_sim_create(const char *name, size_t capacity)
{
	struct usvm_pagemap *pm = NULL;
	int err = usvm_sim_pagemap_create(name, capacity, &pm);

	if (err == -EPERM || err == -ENOSYS)
		test_skip("usvm_sim_pagemap_create: %s", usvm_strerror(err));
	CHECK(err == 0 && pm, "usvm_sim_pagemap_create(%zu): %d (%s)", capacity, err,
	      usvm_strerror(err));
	return pm;
}

void test_setup(struct usvm_mm **mm, struct usvm_pagemap **pm, size_t capacity)
{
	*mm = test_mm_create(NULL);
	*pm = test_sim_create("sim0", capacity);
}

void *test_alloc(struct usvm_mm *mm, size_t size)
{
	void *p = NULL;
	int err = usvm_alloc(mm, size, &p);

	CHECK(err == 0 && p, "usvm_alloc(%zu): %d (%s)", size, err, usvm_strerror(err));
	return p;
}

/* ---- patterns ------------------------------------------------------------- */

void pattern_fill_at(void *p, size_t len, uint64_t seed, size_t base_off)
{
	uint8_t *b = p;
	size_t i = 0;

	/* Bytes up to a word boundary of the pattern offset. */
	while (i < len && ((base_off + i) & 7)) {
		b[i] = pattern_byte(seed, base_off + i);
		i++;
	}
	for (; i + 8 <= len; i += 8) {
		uint64_t w = pattern_word(seed, (base_off + i) >> 3);

		memcpy(b + i, &w, 8); /* little endian: byte k = bits 8k.. */
	}
	for (; i < len; i++)
		b[i] = pattern_byte(seed, base_off + i);
}

size_t pattern_check_at(const void *p, size_t len, uint64_t seed, size_t base_off)
{
	const uint8_t *b = p;
	size_t i = 0, k;

	while (i < len && ((base_off + i) & 7)) {
		if (b[i] != pattern_byte(seed, base_off + i))
			return i;
		i++;
	}
	for (; i + 8 <= len; i += 8) {
		uint64_t w = pattern_word(seed, (base_off + i) >> 3), got;

		memcpy(&got, b + i, 8);
		if (got != w) {
			for (k = 0; k < 8; k++)
				if (b[i + k] != pattern_byte(seed, base_off + i + k))
					return i + k;
		}
	}
	for (; i < len; i++)
		if (b[i] != pattern_byte(seed, base_off + i))
			return i;
	return PATTERN_OK;
}

size_t zero_check(const void *p, size_t len)
{
	const uint8_t *b = p;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t w;

		memcpy(&w, b + i, 8);
		if (w)
			break;
	}
	for (; i < len; i++)
		if (b[i])
			return i;
	return PATTERN_OK;
}

/* ---- statistics ------------------------------------------------------------ */

struct usvm_mm_stats mm_stats(struct usvm_mm *mm)
{
	struct usvm_mm_stats s;

	CHECK_OK(usvm_mm_stats(mm, &s));
	return s;
}

struct usvm_pagemap_stats pm_stats(struct usvm_pagemap *pm)
{
	struct usvm_pagemap_stats s;

	CHECK_OK(usvm_pagemap_stats(pm, &s));
	return s;
}

long resident(struct usvm_mm *mm, const void *p, size_t len, struct usvm_pagemap *pm)
{
	long r = usvm_resident_bytes(mm, p, len, pm);

	CHECK(r >= 0, "usvm_resident_bytes(%p, %zu): %ld (%s)", p, len, r, usvm_strerror((int)r));
	return r;
}

void settle(struct usvm_mm *mm, const void *p, size_t len)
{
	(void)resident(mm, p, len, NULL);
}

/* ---- misc --------------------------------------------------------------------- */

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x2545F4914F6CDD1Dull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

/* ---- device helpers ---------------------------------------------------- */

struct usvm_device *dev_new(struct usvm_mm *mm, const char *name,
				   struct usvm_pagemap *pm, enum usvm_migrate_policy pol,
				   unsigned int threads)
{
	struct usvm_device_options o = { .name = name, .pagemap = pm, .policy = pol,
					 .threads = threads };
	struct usvm_device *d = NULL;

	CHECK_OK(usvm_device_create(mm, &o, &d));
	CHECK(d != NULL, "no device");
	return d;
}

struct usvm_device_stats dstats(struct usvm_device *d)
{
	struct usvm_device_stats s;

	CHECK_OK(usvm_device_stats(d, &s));
	return s;
}

int k_xfer(struct usvm_kctx *c, unsigned long i, void *arg)
{
	struct xfer *x = arg;
	size_t off = i * x->chunk, n = x->len - off < x->chunk ? x->len - off : x->chunk;

	return x->write ? usvm_dev_write(c, x->dev + off, x->host + off, n)
			: usvm_dev_read(c, x->dev + off, x->host + off, n);
}

int dev_copy(struct usvm_device *d, void *devp, void *host, size_t len, size_t chunk,
		    int write)
{
	struct xfer x = { devp, host, len, chunk, write };

	return usvm_device_launch(d, k_xfer, (len + chunk - 1) / chunk, &x);
}

void *map_aligned(size_t len, size_t align)
{
	uint8_t *p = mmap(NULL, len + align, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t a;

	CHECK(p != MAP_FAILED, "mmap %zu", len + align);
	a = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
	if (a > (uintptr_t)p)
		munmap(p, a - (uintptr_t)p);
	if ((uintptr_t)p + len + align > a + len)
		munmap((void *)(a + len), (uintptr_t)p + len + align - (a + len));
	return (void *)a;
}

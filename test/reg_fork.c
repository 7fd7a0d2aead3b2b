// SPDX-License-Identifier: MIT
/*
 * reg_fork: fork() of a process whose managed memory is partly in device
 * memory.
 *
 * Two 4 MiB ranges, one usvm_alloc'd and one registered (mmap'd), hold a
 * pattern, except every 8th page, which is never touched.  The first half
 * of each is populated into device memory, the second half stays in system
 * memory.  Then the process forks:
 *   - the child checks every byte by CPU reads (device-resident pages
 *     included; never-touched pages read zero), then writes a new pattern
 *     over everything;
 *   - the parent waits for it (killing it on a timeout), checks that its
 *     own bytes did not change (isolation), then populates both whole
 *     ranges: that must return 0, and the data must still be intact when
 *     read back by a device and by the CPU.
 * Reported: populate_mm returns -EBUSY for the pages that were in system
 * memory at fork, even after the child exited (the parent's pages stay
 * marked as shared, and UFFDIO_MOVE refuses them; the library does not
 * fall back to copying them).
 *
 * Variant: the parent populates while the child is still alive (the child
 * waits on a pipe), then lets the child check its fork-time view.
 *
 * All checks run and report before the test fails, so that one failure
 * does not hide the others.  README lists "a child process does not
 * inherit device-resident data" as a limitation; the child's check of the
 * device-resident half tests the intended behaviour and is reported
 * separately from the populate failure.
 */
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include "helpers.h"

#define LEN (4 * MiB)
#define HALF (LEN / 2)
#define CHILD_TIMEOUT_NS 30000000000ull

static int nfail;
static const char *who = "parent";

/* Record a failure and go on. */
#define SOFT_CHECK(cond, ...)                                                   \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fflush(stdout);                                         \
			fprintf(stderr, "reg_fork: FAIL (%s) %s:%d: ", who,     \
				__FILE__, __LINE__);                            \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
			nfail++;                                                \
		}                                                               \
	} while (0)

static int untouched(size_t off)
{
	return (off / PAGE) % 8 == 7;
}

/* Write the pattern at every page that is not left untouched. */
static void fill_image(uint8_t *p, uint64_t seed)
{
	size_t off;

	for (off = 0; off < LEN; off += PAGE)
		if (!untouched(off))
			pattern_fill_at(p + off, PAGE, seed, off);
}

/* First offset in [from, to) of @buf that differs from the image, or PATTERN_OK. */
static size_t image_check(const uint8_t *buf, size_t from, size_t to, uint64_t seed)
{
	size_t off, bad;

	for (off = from; off < to; off += PAGE) {
		bad = untouched(off) ? zero_check(buf + off, PAGE)
				     : pattern_check_at(buf + off, PAGE, seed, off);
		if (bad != PATTERN_OK)
			return off + bad;
	}
	return PATTERN_OK;
}

static uint8_t image_byte(size_t off, uint64_t seed)
{
	return untouched(off) ? 0 : pattern_byte(seed, off);
}

/* Check both halves of @buf (read by @how) against the image, separately. */
static void check_halves(const uint8_t *buf, uint64_t seed, const char *range, const char *how,
			 const char *when)
{
	size_t bad = image_check(buf, 0, HALF, seed);

	SOFT_CHECK(bad == PATTERN_OK, "%s range, %s, %s: byte %zu (of the half that was in "
		   "device memory at fork) is 0x%02x, expected 0x%02x", range, when, how, bad,
		   buf[bad], image_byte(bad, seed));
	bad = image_check(buf, HALF, LEN, seed);
	SOFT_CHECK(bad == PATTERN_OK, "%s range, %s, %s: byte %zu (of the half that was in "
		   "system memory at fork) is 0x%02x, expected 0x%02x", range, when, how, bad,
		   buf[bad], image_byte(bad, seed));
}

struct ranges {
	uint8_t *p[2];
	const char *name[2];
	uint64_t seed;
};

/* The child: no library calls (it has no fault threads), CPU accesses only. */
static void __attribute__((noreturn)) child(struct ranges *r, int wait_fd)
{
	int i;

	who = "child";
	if (wait_fd >= 0) {
		struct pollfd pfd = { .fd = wait_fd, .events = POLLIN };
		char c;

		/* The parent populates meanwhile; EOF (parent gone) also ends the wait. */
		if (poll(&pfd, 1, 60000) != 1 || read(wait_fd, &c, 1) < 0) {
			fprintf(stderr, "reg_fork: child: no go from the parent\n");
			_exit(2);
		}
	}
	for (i = 0; i < 2; i++)
		check_halves(r->p[i], r->seed, r->name[i], "CPU read in the child",
			     "fork-time contents");
	/* Overwrite everything (never-touched pages too), read it back. */
	for (i = 0; i < 2; i++) {
		pattern_fill(r->p[i], LEN, r->seed + 1000);
		SOFT_CHECK(pattern_check(r->p[i], LEN, r->seed + 1000) == PATTERN_OK,
			   "%s range: child's own writes do not read back", r->name[i]);
	}
	_exit(nfail ? 1 : 0);
}

static void wait_child(pid_t pid)
{
	uint64_t t0 = now_ns();
	int status = 0;
	pid_t w;

	for (;;) {
		w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		CHECK(w == 0, "waitpid: %s", strerror(errno));
		if (now_ns() - t0 > CHILD_TIMEOUT_NS) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			SOFT_CHECK(0, "child did not finish in %llu s: killed (hang)",
				   CHILD_TIMEOUT_NS / 1000000000ull);
			return;
		}
		sleep_ms(10);
	}
	if (WIFSIGNALED(status))
		SOFT_CHECK(0, "child killed by signal %d", WTERMSIG(status));
	else
		SOFT_CHECK(WEXITSTATUS(status) == 0, "child reported failures (exit %d, see above)",
			   WEXITSTATUS(status));
}

/* populate_mm of both whole ranges must succeed. */
static void populate_all(struct usvm_mm *mm, struct usvm_pagemap *pm, struct ranges *r,
			 const char *when)
{
	int i, err;

	for (i = 0; i < 2; i++) {
		err = usvm_pagemap_populate_mm(pm, r->p[i], r->p[i] + LEN, mm, 0);
		SOFT_CHECK(err == 0, "%s range, %s: populate_mm of the whole range returned %d "
			   "(%s); %ld of %lu bytes in device memory (first half: %ld, second "
			   "half: %ld)", r->name[i], when, err, usvm_strerror(err),
			   resident(mm, r->p[i], LEN, pm), LEN, resident(mm, r->p[i], HALF, pm),
			   resident(mm, r->p[i] + HALF, HALF, pm));
	}
}

/* Device read-back, then CPU read-back, of both ranges. */
static void check_parent(struct usvm_device *dev, struct ranges *r, uint8_t *host,
			 const char *when)
{
	int i, err;

	for (i = 0; i < 2; i++) {
		memset(host, 0xa5, LEN);
		err = usvm_device_read(dev, r->p[i], host, LEN);
		SOFT_CHECK(err == 0, "%s range, %s: usvm_device_read: %d (%s)", r->name[i], when,
			   err, usvm_strerror(err));
		if (!err)
			check_halves(host, r->seed, r->name[i], "device read in the parent", when);
		check_halves(r->p[i], r->seed, r->name[i], "CPU read in the parent", when);
	}
}

static void one(struct usvm_mm *mm, struct usvm_pagemap *pm, struct usvm_device *dev,
		uint8_t *host, int child_alive, uint64_t seed)
{
	struct ranges r = { .name = { "managed", "registered" }, .seed = seed };
	int pfd[2] = { -1, -1 }, i;
	pid_t pid;

	printf("variant: %s\n", child_alive ? "parent populates while the child is alive"
		: "parent populates after the child exited");
	r.p[0] = test_alloc(mm, LEN);
	r.p[1] = map_aligned(LEN, USVM_BLOCK_SIZE);
	CHECK_OK(usvm_register(mm, r.p[1], LEN));
	for (i = 0; i < 2; i++) {
		fill_image(r.p[i], seed);
		CHECK_OK(usvm_pagemap_populate_mm(pm, r.p[i], r.p[i] + HALF, mm, 0));
		CHECK(resident(mm, r.p[i], HALF, pm) == (long)HALF, "%s: first half not in device "
		      "memory (test premise)", r.name[i]);
		CHECK(resident(mm, r.p[i] + HALF, HALF, NULL) == (long)HALF, "%s: second half not "
		      "in system memory (test premise)", r.name[i]);
	}
	if (child_alive)
		CHECK(pipe(pfd) == 0, "pipe");
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		if (child_alive)
			close(pfd[1]);
		child(&r, child_alive ? pfd[0] : -1);
	}
	if (child_alive) {
		close(pfd[0]);
		/* Populate while the child still shares the pages. */
		populate_all(mm, pm, &r, "child alive");
		check_parent(dev, &r, host, "after populate, child alive");
		CHECK(write(pfd[1], "g", 1) == 1, "pipe write");
		close(pfd[1]);
		wait_child(pid);
		check_parent(dev, &r, host, "after the child exited");
	} else {
		wait_child(pid);
		/* Isolation: the child's writes are not ours. */
		for (i = 0; i < 2; i++)
			check_halves(r.p[i], seed, r.name[i], "CPU read in the parent",
				     "after the child exited (isolation)");
		populate_all(mm, pm, &r, "after the child exited");
		check_parent(dev, &r, host, "after populate");
	}
	CHECK_OK(usvm_free(mm, r.p[0]));
	CHECK_OK(usvm_unregister(mm, r.p[1], LEN));
	CHECK(munmap(r.p[1], LEN) == 0, "munmap");
}

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_device *dev;
	uint8_t *host;

	test_init("reg_fork", 120);
	test_setup(&mm, &pm, 32 * MiB);
	/* Policy NEVER: the device reads data where it is, moving nothing. */
	dev = dev_new(mm, "gpu", pm, USVM_POLICY_NEVER, 2);
	host = malloc(LEN);
	CHECK(host != NULL, "malloc");
	one(mm, pm, dev, host, 0, 1);
	one(mm, pm, dev, host, 1, 2);
	usvm_mm_stats_print(mm, stdout);
	usvm_pagemap_stats_print(pm, stdout);
	usvm_device_destroy(dev);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	free(host);
	CHECK(nfail == 0, "%d checks failed (see above)", nfail);
	printf("ok\n");
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * prefetch_async: usvm_prefetch_async() and usvm_prefetch_wait().
 *
 *   - bad arguments fail at once (-EINVAL); unmanaged memory fails at the
 *     wait (-EFAULT), as usvm_prefetch() would;
 *   - several requests in flight at once (to device memory and back to
 *     system memory) each complete: residency and last-prefetch location
 *     follow, every byte intact;
 *   - the CPU writing the range while its prefetch runs: every byte the CPU
 *     wrote is there afterwards, wherever the pages ended up;
 *   - the pagemap and the mm may be destroyed with a request in flight: the
 *     request keeps them alive until its wait;
 *   - a fork child cannot wait on its parent's request (-ENODEV).
 */
#include <sys/wait.h>
#include <unistd.h>
#include "helpers.h"

#define LEN (8 * MiB)

static void errors(struct usvm_mm *mm, uint8_t *p)
{
	struct usvm_prefetch_req *req;
	void *m = malloc(PAGE);

	CHECK_RET(usvm_prefetch_async(NULL, p, LEN, NULL, &req), -EINVAL);
	CHECK_RET(usvm_prefetch_async(mm, p, 0, NULL, &req), -EINVAL);
	CHECK_RET(usvm_prefetch_async(mm, p, LEN, NULL, NULL), -EINVAL);
	CHECK_RET(usvm_prefetch_wait(NULL), -EINVAL);
	CHECK_OK(usvm_prefetch_async(mm, m, PAGE, NULL, &req));
	CHECK_RET(usvm_prefetch_wait(req), -EFAULT);
	free(m);
}

static void in_flight(struct usvm_mm *mm, struct usvm_pagemap *pm, uint8_t *p, uint8_t *q)
{
	struct usvm_prefetch_req *a, *b;
	struct usvm_range_attrs at;

	pattern_fill(p, LEN, 1);
	pattern_fill(q, LEN, 2);
	CHECK_OK(usvm_prefetch_async(mm, p, LEN, pm, &a));
	CHECK_OK(usvm_prefetch_async(mm, q, LEN, pm, &b));
	CHECK_OK(usvm_prefetch_wait(b));
	CHECK_OK(usvm_prefetch_wait(a));
	CHECK(resident(mm, p, LEN, pm) == LEN && resident(mm, q, LEN, pm) == LEN, "not in pm");
	CHECK_OK(usvm_range_attr(mm, p, LEN, &at));
	CHECK(at.last_prefetch == pm, "last prefetch location");
	CHECK_OK(usvm_prefetch_async(mm, p, LEN, NULL, &a));
	CHECK_OK(usvm_prefetch_wait(a));
	CHECK(resident(mm, p, LEN, pm) == 0, "not back in system memory");
	CHECK(pattern_check(p, LEN, 1) == PATTERN_OK && pattern_check(q, LEN, 2) == PATTERN_OK,
	      "bytes after prefetches");
}

static void racing_writes(struct usvm_mm *mm, struct usvm_pagemap *pm, uint8_t *p)
{
	int round;

	for (round = 0; round < 8; round++) {
		struct usvm_prefetch_req *req;
		uint64_t seed = 10 + (uint64_t)round;

		CHECK_OK(usvm_prefetch_async(mm, p, LEN, round & 1 ? NULL : pm, &req));
		pattern_fill(p, LEN, seed); /* while it moves */
		CHECK_OK(usvm_prefetch_wait(req));
		CHECK(pattern_check(p, LEN, seed) == PATTERN_OK, "round %d: CPU writes lost", round);
	}
}

static void lifetimes(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_prefetch_req *req;
	uint8_t *p;

	test_setup(&mm, &pm, 2 * LEN);
	p = test_alloc(mm, LEN);
	pattern_fill(p, LEN, 3);
	CHECK_OK(usvm_prefetch_async(mm, p, LEN, pm, &req));
	usvm_pagemap_destroy(pm); /* unbound: the prefetch fails or its pages come home */
	{
		int err = usvm_prefetch_wait(req);

		CHECK(err == 0 || err == -ENODEV, "prefetch racing a destroy: %d", err);
	}
	CHECK(pattern_check(p, LEN, 3) == PATTERN_OK, "bytes after the pagemap went");
	CHECK_OK(usvm_free(mm, p));
	usvm_mm_destroy(mm);
}

static void fork_child(struct usvm_mm *mm, struct usvm_pagemap *pm, uint8_t *p)
{
	struct usvm_prefetch_req *req;
	int status;
	pid_t pid;

	CHECK_OK(usvm_prefetch_async(mm, p, LEN, pm, &req));
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (!pid)
		_exit(usvm_prefetch_wait(req) == -ENODEV ? 0 : 1);
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && !WEXITSTATUS(status),
	      "child: waiting on the parent's request did not fail with -ENODEV");
	CHECK_OK(usvm_prefetch_wait(req));
}

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	uint8_t *p, *q;

	test_init("prefetch_async", 300);
	skip_if_no_uffd();
	test_setup(&mm, &pm, 4 * LEN);
	p = test_alloc(mm, LEN);
	q = test_alloc(mm, LEN);
	errors(mm, p);
	in_flight(mm, pm, p, q);
	racing_writes(mm, pm, p);
	fork_child(mm, pm, p);
	CHECK(pattern_check(p, LEN, 17) == PATTERN_OK, "bytes after fork");
	CHECK_OK(usvm_free(mm, p));
	CHECK_OK(usvm_free(mm, q));
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	lifetimes();
	printf("prefetch_async: ok\n");
	return 0;
}

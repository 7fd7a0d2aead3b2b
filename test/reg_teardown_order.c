// SPDX-License-Identifier: MIT
/*
 * reg_teardown_order: every order of destroying an mm, a pagemap and a
 * device created over them, with data in device memory, must work: no
 * crash, no sanitizer report, no hang, no lost byte.
 *
 * Reported: ASan heap-use-after-free in dev_memory() when the pagemap is
 * destroyed before the device that uses it and the device is used
 * afterwards (the device keeps a plain pointer to the freed pagemap).
 *
 * Setup (in each order): an mm, a 16 MiB simulated pagemap, a device with
 * that pagemap (policy ALWAYS); 4 MiB of managed memory read by the device
 * (so it migrates), then its second half touched by the CPU (back home),
 * and a 2 MiB registered range populated into the pagemap.  Then the three
 * objects are destroyed in the order under test.  Between steps, while the
 * mm lives, every byte of both ranges is checked by the CPU; before the
 * device is destroyed, while the mm lives, the device reads the managed
 * range: it must return 0 and the right bytes, or -ENODEV once its
 * pagemap is gone (the only error that could describe that).  After the mm
 * is destroyed the registered range must still hold every byte
 * (usvm_mm_destroy leaves registered bytes in place).
 *
 * Each order runs in a forked child, so that a crash or a sanitizer report
 * is reported as the failure of that order; a child running for more than
 * 30 s is killed (hang).  Orders destroying the mm before the device
 * contradict usvm.h ("Destroy devices before their mm") and are marked so
 * in the output; they are still run and counted (today's API only: no
 * usvm_pagemap_get/put).
 */
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include "helpers.h"

#define LEN (4 * MiB)
#define RLEN (2 * MiB)
#define CHILD_TIMEOUT_NS 30000000000ull

enum obj { MM, PM, DEV };
static const char *const obj_name[] = { "mm", "pagemap", "device" };

static const enum obj orders[6][3] = {
	{ DEV, PM, MM }, { DEV, MM, PM }, { PM, DEV, MM },
	{ PM, MM, DEV }, { MM, DEV, PM }, { MM, PM, DEV },
};

static void run_order(const enum obj *order)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_device *dev;
	uint8_t *p, *q, *host;
	int alive[3] = { 1, 1, 1 }, step, err;

	mm = test_mm_create(NULL);
	pm = test_sim_create("sim0", 16 * MiB);
	dev = dev_new(mm, "gpu", pm, USVM_POLICY_ALWAYS, 2);
	host = malloc(LEN);
	CHECK(host != NULL, "malloc");

	/* Managed memory: migrated by device reads, second half back home. */
	p = test_alloc(mm, LEN);
	pattern_fill(p, LEN, 1);
	CHECK_OK(dev_copy(dev, p, host, LEN, 64 * KiB, 0));
	CHECK_PATTERN(host, LEN, 1);
	CHECK(p[LEN - 1] == pattern_byte(1, LEN - 1), "last byte");
	settle(mm, p, LEN);
	CHECK(resident(mm, p, LEN / 2, pm) == (long)(LEN / 2), "first half not in device "
	      "memory (test premise)");
	/* Registered memory, populated. */
	q = map_aligned(RLEN, USVM_BLOCK_SIZE);
	CHECK_OK(usvm_register(mm, q, RLEN));
	pattern_fill(q, RLEN, 2);
	CHECK_OK(usvm_pagemap_populate_mm(pm, q, q + RLEN, mm, 0));
	CHECK(resident(mm, q, RLEN, pm) == (long)RLEN, "registered range not in device memory "
	      "(test premise)");

	for (step = 0; step < 3; step++) {
		enum obj o = order[step];

		if (o == DEV && alive[MM]) {
			memset(host, 0xa5, LEN);
			err = usvm_device_read(dev, p, host, LEN);
			CHECK(err == 0 || (err == -ENODEV && !alive[PM]), "step %d: "
			      "usvm_device_read of managed memory%s: %d (%s)", step + 1,
			      alive[PM] ? "" : " after its pagemap was destroyed", err,
			      usvm_strerror(err));
			if (!err)
				CHECK_PATTERN(host, LEN, 1);
		}
		printf("    destroy %s\n", obj_name[o]);
		switch (o) {
		case MM: usvm_mm_destroy(mm); break;
		case PM: usvm_pagemap_destroy(pm); break;
		case DEV: usvm_device_destroy(dev); break;
		}
		alive[o] = 0;
		if (alive[MM])
			CHECK_PATTERN(p, LEN, 1);
		/* Registered bytes stay in place, mm or not. */
		CHECK_PATTERN(q, RLEN, 2);
	}
	CHECK(munmap(q, RLEN) == 0, "munmap");
	free(host);
}

int main(void)
{
	int i, failed = 0;

	test_init("reg_teardown_order", 240);
	for (i = 0; i < 6; i++) {
		const enum obj *o = orders[i];
		int contrary = 0, k, status = 0;
		uint64_t t0;
		pid_t pid, w;

		for (k = 0; k < 3; k++) {
			if (o[k] == DEV)
				break;
			if (o[k] == MM)
				contrary = 1;
		}
		printf("order %d: %s, %s, %s%s\n", i + 1, obj_name[o[0]], obj_name[o[1]],
		       obj_name[o[2]], contrary ? " (contrary to usvm.h: device destroyed after "
		       "its mm)" : "");
		fflush(stdout);
		fflush(stderr);
		pid = fork();
		CHECK(pid >= 0, "fork: %s", strerror(errno));
		if (pid == 0) {
			run_order(o);
			exit(0); /* exit, not _exit: LeakSanitizer runs at exit */
		}
		t0 = now_ns();
		while ((w = waitpid(pid, &status, WNOHANG)) == 0 &&
		       now_ns() - t0 < CHILD_TIMEOUT_NS)
			sleep_ms(10);
		CHECK(w >= 0, "waitpid: %s", strerror(errno));
		if (w == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			fprintf(stderr, "reg_teardown_order: FAIL: order %d (%s, %s, %s): hang, "
				"killed after %llu s\n", i + 1, obj_name[o[0]], obj_name[o[1]],
				obj_name[o[2]], CHILD_TIMEOUT_NS / 1000000000ull);
			failed++;
		} else if (WIFEXITED(status) && WEXITSTATUS(status) == TEST_SKIP) {
			test_skip("order %d: the child skipped (see above)", i + 1);
		} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "reg_teardown_order: FAIL: order %d (%s, %s, %s): %s %d\n",
				i + 1, obj_name[o[0]], obj_name[o[1]], obj_name[o[2]],
				WIFSIGNALED(status) ? "killed by signal" : "exit status",
				WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
			failed++;
		} else {
			printf("order %d: ok\n", i + 1);
		}
	}
	CHECK(failed == 0, "%d of 6 destroy orders failed (see above)", failed);
	printf("ok\n");
	return 0;
}

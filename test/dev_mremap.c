// SPDX-License-Identifier: MIT
/*
 * dev_mremap: mremap(MREMAP_MAYMOVE|MREMAP_FIXED) of registered memory with
 * pages in device memory (hmm-tests migrate_remap_fault).
 *
 * A 4 MiB registered region has its first half migrated to the device by a
 * device access (the second half stays in system memory; variants: nothing
 * on the device, everything on the device).  It is moved elsewhere:
 *   - the CPU and the device at the new address see every byte (device
 *     pages follow the VA move), and both can write there;
 *   - a device access at the old address is a fatal fault (-EFAULT), never
 *     stale data; with MREMAP_DONTUNMAP the old range stays mapped and
 *     registered but empty: CPU and device read zeros there.
 * Variants: first access at the new address by the CPU or by the device.
 * The device-resident case also runs (in a child process, so that a hang
 * is reported as a failure) with a single CPU fault thread: the remap
 * event must be handled while the munmap event of the old range is still
 * queued behind it.
 */
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include "helpers.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

#define LEN (4 * MiB)

enum what_on_device { NONE, HALF, ALL };

static void one(struct usvm_mm *mm, struct usvm_pagemap *pm, enum what_on_device wod,
		int dontunmap, int device_first, uint64_t seed)
{
	struct usvm_device *d = dev_new(mm, "gpu", pm, USVM_POLICY_ALWAYS, 2);
	uint8_t *p = map_aligned(LEN, USVM_BLOCK_SIZE), *q = map_aligned(LEN, USVM_BLOCK_SIZE);
	uint8_t *host = malloc(LEN);
	size_t on_dev = wod == NONE ? 0 : wod == HALF ? LEN / 2 : LEN;
	struct usvm_mm_stats m0 = mm_stats(mm), m1;
	uint8_t b[64];
	void *r;
	int err;

	CHECK(host != NULL, "malloc");
	printf("  %s on device, %s, first access by the %s\n",
	       wod == NONE ? "nothing" : wod == HALF ? "half" : "all",
	       dontunmap ? "MREMAP_DONTUNMAP" : "plain move", device_first ? "device" : "CPU");
	CHECK_OK(usvm_register(mm, p, LEN));
	pattern_fill(p, LEN, seed);
	/* The device maps everything; ALWAYS migrates what it touches; then
	 * the CPU takes back what should stay in system memory. */
	CHECK_OK(dev_copy(d, p, host, LEN, PAGE, 0));
	CHECK_PATTERN(host, LEN, seed);
	if (wod != ALL)
		CHECK(pattern_check_at(p + on_dev, LEN - on_dev, seed, on_dev) == PATTERN_OK,
		      "CPU read before mremap");
	CHECK(resident(mm, p, LEN, pm) == (long)on_dev, "setup: %ld bytes on device",
	      resident(mm, p, LEN, pm));

	r = mremap(p, LEN, LEN, MREMAP_MAYMOVE | MREMAP_FIXED | (dontunmap ? MREMAP_DONTUNMAP : 0), q);
	if (r == MAP_FAILED && dontunmap) {
		printf("    MREMAP_DONTUNMAP not supported here\n");
		CHECK_OK(usvm_unregister(mm, p, LEN));
		munmap(p, LEN);
		munmap(q, LEN);
		usvm_device_destroy(d);
		free(host);
		return;
	}
	CHECK(r == q, "mremap: %p", r);

	/* New address: every byte, first by the device or by the CPU. */
	if (device_first) {
		memset(host, 0, LEN);
		err = dev_copy(d, q, host, LEN, PAGE, 0);
		CHECK(err == 0, "device read at the new address: %d (%s)", err, usvm_strerror(err));
		CHECK(pattern_check(host, LEN, seed) == PATTERN_OK, "device at the new address: "
		      "wrong data at offset %zu", pattern_check(host, LEN, seed));
		CHECK(pattern_check(q, LEN, seed) == PATTERN_OK, "CPU at the new address: wrong "
		      "data at offset %zu", pattern_check(q, LEN, seed));
	} else {
		CHECK(pattern_check(q, LEN, seed) == PATTERN_OK, "CPU at the new address: wrong "
		      "data at offset %zu", pattern_check(q, LEN, seed));
		memset(host, 0, LEN);
		err = dev_copy(d, q, host, LEN, PAGE, 0);
		CHECK(err == 0, "device read at the new address: %d (%s)", err, usvm_strerror(err));
		CHECK(pattern_check(host, LEN, seed) == PATTERN_OK, "device at the new address: "
		      "wrong data at offset %zu", pattern_check(host, LEN, seed));
	}
	m1 = mm_stats(mm);
	CHECK(m1.events_remap > m0.events_remap, "no remap event");

	/* The old address. */
	if (dontunmap) {
		/* Still mapped and registered, but empty: zeros, not stale data. */
		memset(host, 0xee, LEN);
		err = dev_copy(d, p, host, LEN, PAGE, 0);
		CHECK(err == 0, "device read at the old (DONTUNMAP) address: %d (%s)", err,
		      usvm_strerror(err));
		CHECK(zero_check(host, LEN) == PATTERN_OK, "device read stale data at the old "
		      "address, offset %zu", zero_check(host, LEN));
		CHECK_ZERO(p, LEN);
	} else {
		err = usvm_device_read(d, p, b, sizeof(b));
		CHECK(err == -EFAULT, "device read at the old address: %d (%s), expected -EFAULT",
		      err, usvm_strerror(err));
		err = usvm_device_read(d, p + LEN - PAGE, b, sizeof(b));
		CHECK(err == -EFAULT, "device read at the old address (end): %d (%s)", err,
		      usvm_strerror(err));
	}

	/* Writes at the new address by both, checked by the other. */
	pattern_fill(host, LEN, seed + 1);
	CHECK_OK(dev_copy(d, q, host, LEN, 64 * KiB, 1));
	CHECK(resident(mm, q, LEN, pm) == (long)LEN, "device write at new address not migrated");
	CHECK_PATTERN(q, LEN, seed + 1);
	pattern_fill(q, LEN, seed + 2);
	memset(host, 0, LEN);
	CHECK_OK(dev_copy(d, q, host, LEN, PAGE, 0));
	CHECK_PATTERN(host, LEN, seed + 2);

	CHECK_OK(usvm_unregister(mm, q, LEN));
	CHECK_PATTERN(q, LEN, seed + 2);
	munmap(q, LEN);
	if (dontunmap) {
		CHECK_OK(usvm_unregister(mm, p, LEN));
		munmap(p, LEN);
	}
	usvm_device_destroy(d);
	free(host);
}

/* Device-resident data moved by mremap with one fault thread. */
static void one_thread_child(void)
{
	struct usvm_mm_options o = { .fault_threads = 1 };
	struct usvm_mm *mm = test_mm_create(&o);
	struct usvm_pagemap *pm = test_sim_create("sim1", 16 * MiB);

	one(mm, pm, HALF, 0, 0, 1001);
	one(mm, pm, ALL, 0, 1, 1002);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	_exit(0);
}

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_caps caps;
	int wod, du, df, status = 0;
	uint64_t seed = 1, t0;
	pid_t child, w;

	test_init("dev_mremap", 60);
	usvm_probe(&caps);
	if (!caps.feat_event_remap || !caps.feat_event_unmap)
		test_skip("no userfaultfd mremap/munmap events");

	/* Before any thread exists here: the child starts from a clean slate. */
	child = fork();
	CHECK(child >= 0, "fork");
	if (child == 0) {
		alarm(0); /* the parent times the child out (its SIGALRM could land on
			   * a thread stuck in mremap and never run) */
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the parent */
		one_thread_child();
	}

	test_setup(&mm, &pm, 16 * MiB);
	for (du = 0; du < 2; du++)
		for (wod = NONE; wod <= ALL; wod++)
			for (df = 0; df < 2; df++)
				one(mm, pm, (enum what_on_device)wod, du, df, seed++);
	usvm_mm_stats_print(mm, stdout);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);

	/* The one-fault-thread child: done within 20 s, successfully. */
	t0 = now_ns();
	while ((w = waitpid(child, &status, WNOHANG)) == 0 && now_ns() - t0 < 20000000000ull)
		sleep_ms(10);
	if (w == 0) {
		kill(child, SIGKILL);
		waitpid(child, &status, 0);
		CHECK(0, "mremap of device-resident memory with one fault thread hangs");
	}
	CHECK(w == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "one-fault-thread child failed (status 0x%x)", status);
	printf("ok\n");
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * dev_fatal: device accesses to memory nobody mapped are fatal device
 * faults: usvm_device_launch returns -EFAULT, fatal_faults counts exactly
 * one per faulting access, nothing hangs or crashes, no byte is written
 * anywhere, and the device keeps working afterwards
 * (hmm-tests anon_read_prot: -EFAULT, buffer untouched).
 *
 * Bad addresses: NULL + 4096, a fresh mmap'd but unregistered page, a
 * PROT_NONE page, a page just past a registered range, a reserved but
 * unmapped hole, an address in a pool-sized gap.  For reads, writes,
 * memsets and atomics; from one kernel index among many (the launch stops,
 * returns -EFAULT, the other indices' accesses stay right); a kernel that
 * ignores the error still gets -EFAULT from the launch; a kernel's own
 * error code is returned as is.
 * CPU permissions bind devices too (hmm-tests anon_read_prot,
 * anon_write_prot): registered memory in system memory that the device
 * has already mapped is mprotect'ed PROT_NONE: device reads and writes fail with -EFAULT (no
 * crash, no data read or written); PROT_READ: reads work, writes fail
 * (-EFAULT or -EPERM) and change nothing; back to PROT_READ|PROT_WRITE,
 * everything works and the data is intact.
 */
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include "helpers.h"

enum op { RD, WR, SET, ADD, CAS };

struct bad {
	void *addr;
	enum op op;
	int ignore;        /* the kernel returns 0 whatever happens */
	int ret;           /* what the access returned */
};

static int k_bad(struct usvm_kctx *c, unsigned long i, void *arg)
{
	struct bad *b = arg;
	uint8_t buf[16];
	uint64_t old = 0, v = 0x1234;
	int err;

	(void)i;
	memset(buf, 0x5a, sizeof(buf));
	switch (b->op) {
	case RD: err = usvm_dev_read(c, b->addr, buf, sizeof(buf)); break;
	case WR: err = usvm_dev_write(c, b->addr, &v, sizeof(v)); break;
	case SET: err = usvm_dev_memset(c, b->addr, 0x77, 100); break;
	case ADD: err = usvm_dev_atomic_add_u64(c, b->addr, 1, &old); break;
	default: err = usvm_dev_atomic_cmpxchg_u64(c, b->addr, 0, 1, &old); break;
	}
	b->ret = err;
	return b->ignore ? 0 : err;
}

static const char *op_name[] = { "read", "write", "memset", "atomic add", "cmpxchg" };

static void expect_fatal(struct usvm_device *d, void *addr, const char *what)
{
	int op, ignore;

	for (op = RD; op <= CAS; op++) {
		for (ignore = 0; ignore < 2; ignore++) {
			struct usvm_device_stats s0 = dstats(d), s1;
			struct bad b = { addr, (enum op)op, ignore, 0 };
			int err = usvm_device_launch(d, k_bad, 1, &b);

			s1 = dstats(d);
			CHECK(err == -EFAULT, "%s %s (%p)%s: launch returned %d (%s), expected -EFAULT",
			      op_name[op], what, addr, ignore ? ", error ignored" : "", err,
			      usvm_strerror(err));
			CHECK(b.ret == -EFAULT, "%s %s: the access returned %d", op_name[op], what,
			      b.ret);
			CHECK(s1.fatal_faults - s0.fatal_faults == 1, "%s %s: fatal_faults grew by %llu",
			      op_name[op], what,
			      (unsigned long long)(s1.fatal_faults - s0.fatal_faults));
		}
	}
}

/* One bad index among many good ones. */
struct mixed {
	uint8_t *good;     /* n pages, device writes page i with value i */
	unsigned long bad_idx;
	void *bad_addr;
	atomic_ulong done;
};

static int k_mixed(struct usvm_kctx *c, unsigned long i, void *arg)
{
	struct mixed *m = arg;
	int err;

	if (i == m->bad_idx) {
		uint64_t v = 1;

		return usvm_dev_write(c, m->bad_addr, &v, sizeof(v));
	}
	err = usvm_dev_memset(c, m->good + i * PAGE, (int)(i & 0xff) | 1, PAGE);
	if (!err)
		atomic_fetch_add(&m->done, 1);
	return err;
}

static int k_custom(struct usvm_kctx *c, unsigned long i, void *arg)
{
	(void)c;
	(void)arg;
	return i == 5 ? 42 : 0;
}

static void works(struct usvm_device *d, uint8_t *p, size_t len, uint64_t seed)
{
	uint8_t *host = malloc(len);

	CHECK(host != NULL, "malloc");
	pattern_fill(host, len, seed);
	CHECK_OK(dev_copy(d, p, host, len, PAGE, 1));
	CHECK_PATTERN(p, len, seed);
	memset(host, 0, len);
	CHECK_OK(dev_copy(d, p, host, len, PAGE, 0));
	CHECK_PATTERN(host, len, seed);
	free(host);
}

/* mprotect of registered memory a device has mapped. */
static void mprotected(struct usvm_mm *mm, struct usvm_device *d, struct usvm_pagemap *pm)
{
	const size_t len = 2 * MiB;
	uint8_t *p = map_aligned(len, USVM_BLOCK_SIZE), *host = malloc(len);
	struct bad b;
	int err;

	CHECK(host != NULL, "malloc");
	CHECK_OK(usvm_register(mm, p, len));
	pattern_fill(p, len, 40);
	CHECK_OK(dev_copy(d, p, host, len, PAGE, 0));     /* mapped (and migrated) */
	CHECK_PATTERN(host, len, 40);
	/* Everything back in system memory (mprotect raises no userfaultfd
	 * event: device-resident pages cannot follow CPU permissions). */
	CHECK_PATTERN(p, len, 40);
	CHECK(resident(mm, p, len, NULL) == (long)len, "not home");

	CHECK(mprotect(p, len, PROT_NONE) == 0, "mprotect");
	for (b.op = RD; b.op <= WR; b.op++) {
		size_t off;

		for (off = 0; off < len; off += len / 2) {
			b = (struct bad){ p + off + 64, b.op, 0, 0 };
			err = usvm_device_launch(d, k_bad, 1, &b);
			CHECK(err == -EFAULT, "%s of PROT_NONE memory at %zu: %d (%s), expected "
			      "-EFAULT", op_name[b.op], off + 64, err, usvm_strerror(err));
		}
	}
	CHECK(mprotect(p, len, PROT_READ) == 0, "mprotect");
	memset(host, 0, len);
	CHECK_OK(dev_copy(d, p, host, len, PAGE, 0));
	CHECK_PATTERN(host, len, 40);
	{
		size_t off;

		for (off = 0; off < len; off += len / 2) {
			b = (struct bad){ p + off + 64, WR, 0, 0 };
			err = usvm_device_launch(d, k_bad, 1, &b);
			CHECK(err == -EFAULT || err == -EPERM, "write to PROT_READ memory: %d (%s)",
			      err, usvm_strerror(err));
		}
	}
	CHECK_PATTERN(p, len, 40); /* nothing written */
	CHECK(mprotect(p, len, PROT_READ | PROT_WRITE) == 0, "mprotect");
	works(d, p, len, 41);
	(void)pm;
	CHECK_OK(usvm_unregister(mm, p, len));
	munmap(p, len);
	free(host);
}

static void one(struct usvm_mm *mm, struct usvm_pagemap *pm)
{
	const size_t len = 2 * MiB;
	struct usvm_device *d = dev_new(mm, "gpu", pm, USVM_POLICY_ALWAYS, 4);
	uint8_t *fresh, *prot, *reg, *hole, *good;
	struct usvm_device_stats s;
	struct mixed m;
	size_t i;
	int err;

	printf("  %s\n", pm ? "device memory" : "no device memory");
	good = test_alloc(mm, len);
	works(d, good, len, 1);

	/* The canonical one: first a single fault, fatal_faults == 1. */
	{
		struct bad b = { (void *)4096, RD, 0, 0 };

		s = dstats(d);
		CHECK(usvm_device_launch(d, k_bad, 1, &b) == -EFAULT, "NULL+4096");
		CHECK(dstats(d).fatal_faults - s.fatal_faults == 1, "fatal_faults != 1");
	}
	expect_fatal(d, (void *)4096, "NULL+4096");
	works(d, good, len, 2);

	fresh = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(fresh != MAP_FAILED, "mmap");
	memset(fresh, 0x33, PAGE);
	expect_fatal(d, fresh, "unregistered mmap page");
	for (i = 0; i < PAGE; i++)
		CHECK(fresh[i] == 0x33, "unregistered page written at %zu", i);

	prot = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(prot != MAP_FAILED, "mmap");
	expect_fatal(d, prot, "PROT_NONE page");

	/* Just past a registered range (the next page is not ours). */
	reg = map_aligned(2 * len, USVM_BLOCK_SIZE);
	munmap(reg + len, len);
	CHECK_OK(usvm_register(mm, reg, len));
	works(d, reg, len, 3);
	expect_fatal(d, reg + len, "page past a registered range (unmapped)");
	hole = mmap(reg + len, PAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	CHECK(hole == reg + len, "mmap after the range");
	expect_fatal(d, hole, "page past a registered range (mapped, unregistered)");
	CHECK_ZERO(hole, PAGE);
	/* An access spanning the end of the range: the in-range part may be
	 * written, the launch still fails. */
	{
		struct bad b = { reg + len - 4, WR, 0, 0 };

		CHECK(usvm_device_launch(d, k_bad, 1, &b) == -EFAULT, "span past the end");
		CHECK_ZERO(hole, PAGE);
	}
	works(d, reg, len - PAGE, 4);

	/* One bad index among many: the launch stops with -EFAULT; what the
	 * good indices did is right. */
	memset(good, 0, len);
	m = (struct mixed){ good, 300, (void *)8192, 0 };
	atomic_init(&m.done, 0);
	err = usvm_device_launch(d, k_mixed, len / PAGE, &m);
	CHECK(err == -EFAULT, "mixed launch: %d", err);
	for (i = 0; i < len / PAGE; i++) {
		uint8_t want = (uint8_t)((i & 0xff) | 1), first = good[i * PAGE];
		size_t k;

		CHECK(first == 0 || first == want, "page %zu holds 0x%02x", i, first);
		for (k = 0; k < PAGE; k++)
			CHECK(good[i * PAGE + k] == first, "page %zu half written at %zu", i, k);
	}
	CHECK(atomic_load(&m.done) < len / PAGE, "the launch did not stop");

	/* Kernel-chosen errors come back as is, and do not count as fatal. */
	s = dstats(d);
	CHECK(usvm_device_launch(d, k_custom, 100, NULL) == 42, "custom kernel error");
	CHECK(dstats(d).fatal_faults == s.fatal_faults, "custom error counted as fatal");

	mprotected(mm, d, pm);

	/* And the device still works, on every kind of memory. */
	works(d, good, len, 5);
	works(d, reg, len, 6);
	s = dstats(d);
	printf("    %llu fatal faults\n", (unsigned long long)s.fatal_faults);

	CHECK_OK(usvm_unregister(mm, reg, len));
	munmap(reg, len);
	munmap(hole, PAGE);
	munmap(fresh, PAGE);
	munmap(prot, PAGE);
	CHECK_OK(usvm_free(mm, good));
	usvm_device_destroy(d);
}

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;

	test_init("dev_fatal", 60);
	test_setup(&mm, &pm, 16 * MiB);
	one(mm, NULL);
	one(mm, pm);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * dev_protect: devices honour the CPU's protections, as hmm_range_fault
 * makes the kernel's device mirrors do (DOC: Devices and CPU protections in
 * src/device/device.h), through the public API only:
 *
 *  1. device-resident pages (the CPU mapping does not hold them) follow an
 *     mprotect() made after the device mapped them, at the next launch:
 *     PROT_NONE: reads and writes fail with -EFAULT; PROT_READ: reads give
 *     every byte, writes, memsets and atomics fail with -EPERM; nothing is
 *     written, nothing migrates, fatal_faults counts each refusal; back to
 *     read-write everything works and the data is intact;
 *  2. system pages mapped by the device: the same, with -EPERM exact for
 *     writes to read-only memory;
 *  3. device faults check protections before migrating: a write fault on
 *     read-only memory fails with -EPERM and a read fault on PROT_NONE
 *     memory with -EFAULT, without asking for a migration; a read of
 *     read-only memory works (from system memory: populate needs read-write
 *     memory); prefetch of PROT_NONE memory fails with -EFAULT;
 *  4. a kernel that ignores the error still gets it from the launch;
 *  5. memory usvm cannot manage (shared anonymous, file-backed): usvm_register
 *     refuses it with -EINVAL and device accesses fail with -EFAULT, the
 *     documented errno; not a byte changes.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include "helpers.h"

#define LEN (2 * MiB)

enum op { RD, WR, SET, ADD, CAS };
static const char *op_name[] = { "read", "write", "memset", "atomic add", "cmpxchg" };

struct one_access {
	uint8_t *addr;
	enum op op;
	int ignore;     /* the kernel returns 0 whatever happens */
	int ret;        /* what the access returned */
	uint8_t buf[64];
};

static int k_one(struct usvm_kctx *c, unsigned long i, void *arg)
{
	struct one_access *a = arg;
	uint64_t old = 0, v = 0x1122334455667788ull;
	int err;

	(void)i;
	switch (a->op) {
	case RD: err = usvm_dev_read(c, a->addr, a->buf, sizeof(a->buf)); break;
	case WR: err = usvm_dev_write(c, a->addr, &v, sizeof(v)); break;
	case SET: err = usvm_dev_memset(c, a->addr, 0x77, 300); break;
	case ADD: err = usvm_dev_atomic_add_u64(c, (uint64_t *)a->addr, 1, &old); break;
	default: err = usvm_dev_atomic_cmpxchg_u64(c, (uint64_t *)a->addr, 0, 1, &old); break;
	}
	a->ret = err;
	return a->ignore ? 0 : err;
}

/* Run one access of @op at @p; check the launch and the access return @want. */
static void expect(struct usvm_device *d, void *p, enum op op, int want, const char *what)
{
	int ignore;

	for (ignore = 0; ignore < 2; ignore++) {
		struct one_access a = { .addr = p, .op = op, .ignore = ignore };
		struct usvm_device_stats s0 = dstats(d), s1;
		int err = usvm_device_launch(d, k_one, 1, &a);

		s1 = dstats(d);
		CHECK(err == want, "%s: %s%s: launch returned %d (%s), expected %d (%s)", what,
		      op_name[op], ignore ? " (error ignored)" : "", err, usvm_strerror(err),
		      want, usvm_strerror(want));
		CHECK(a.ret == want, "%s: %s: the access returned %d", what, op_name[op], a.ret);
		CHECK(s1.fatal_faults - s0.fatal_faults == (want ? 1u : 0u),
		      "%s: %s: fatal_faults grew by %llu", what, op_name[op],
		      (unsigned long long)(s1.fatal_faults - s0.fatal_faults));
	}
}

/* Every write-like op at @p must fail with @want. */
static void expect_no_write(struct usvm_device *d, uint8_t *p, int want, const char *what)
{
	enum op op;

	for (op = WR; op <= CAS; op++)
		expect(d, p, op, want, what);
}

/* The device reads [p, p+len) and finds pattern @seed. */
static void device_sees(struct usvm_device *d, uint8_t *p, size_t len, uint64_t seed)
{
	uint8_t *host = malloc(len);

	CHECK(host != NULL, "malloc");
	memset(host, 0, len);
	CHECK_OK(dev_copy(d, p, host, len, 64 * KiB, 0));
	CHECK_PATTERN(host, len, seed);
	free(host);
}

/* 1 and 2: protections changed after the device mapped the memory. */
static void after_mapping(struct usvm_mm *mm, struct usvm_pagemap *pm, int devmem)
{
	struct usvm_device *d = dev_new(mm, "prot", pm, devmem ? USVM_POLICY_ALWAYS :
					USVM_POLICY_NEVER, 2);
	uint8_t *p = map_aligned(LEN, USVM_BLOCK_SIZE);
	const char *what = devmem ? "device-resident" : "system pages";
	size_t off;

	printf("  mprotect after mapping, %s\n", what);
	CHECK_OK(usvm_register(mm, p, LEN));
	pattern_fill(p, LEN, 7);
	device_sees(d, p, LEN, 7); /* mapped (and, with devmem, migrated) */
	CHECK(resident(mm, p, LEN, devmem ? pm : NULL) == (long)LEN, "%s: not where expected",
	      what);

	CHECK(mprotect(p, LEN, PROT_NONE) == 0, "mprotect");
	for (off = 0; off < LEN; off += LEN / 4) {
		expect(d, p + off + 128, RD, -EFAULT, what);
		expect_no_write(d, p + off + 128, -EFAULT, what);
	}
	/* A refused access moves nothing. */
	CHECK(resident(mm, p, LEN, devmem ? pm : NULL) == (long)LEN, "%s: pages moved", what);

	CHECK(mprotect(p, LEN, PROT_READ) == 0, "mprotect");
	device_sees(d, p, LEN, 7);
	for (off = 0; off < LEN; off += LEN / 4)
		expect_no_write(d, p + off + 128, -EPERM, what);
	CHECK(resident(mm, p, LEN, devmem ? pm : NULL) == (long)LEN, "%s: pages moved", what);
	device_sees(d, p, LEN, 7); /* nothing written */

	CHECK(mprotect(p, LEN, PROT_READ | PROT_WRITE) == 0, "mprotect");
	expect(d, p + 128, WR, 0, what);
	pattern_fill(p, LEN, 8); /* the CPU writes (and brings pages home) */
	device_sees(d, p, LEN, 8);
	CHECK_OK(usvm_unregister(mm, p, LEN));
	CHECK_PATTERN(p, LEN, 8);
	munmap(p, LEN);
	usvm_device_destroy(d);
}

/* 3: device faults check protections before migrating. */
static void fault_checks(struct usvm_mm *mm, struct usvm_pagemap *pm)
{
	struct usvm_device *d = dev_new(mm, "faults", pm, USVM_POLICY_ALWAYS, 2);
	uint8_t *p = map_aligned(LEN, USVM_BLOCK_SIZE);
	struct usvm_device_stats s0;

	printf("  protections on device faults\n");
	CHECK_OK(usvm_register(mm, p, LEN));
	pattern_fill(p, LEN, 9);

	CHECK(mprotect(p, LEN, PROT_NONE) == 0, "mprotect");
	s0 = dstats(d);
	expect(d, p, RD, -EFAULT, "PROT_NONE, never mapped");
	expect_no_write(d, p + PAGE, -EFAULT, "PROT_NONE, never mapped");
	CHECK(dstats(d).migrations_requested == s0.migrations_requested,
	      "a refused fault asked for a migration");
	CHECK_RET(usvm_device_prefetch(d, p, LEN), -EFAULT);
	CHECK(resident(mm, p, LEN, pm) == 0, "PROT_NONE memory migrated");

	CHECK(mprotect(p, LEN, PROT_READ) == 0, "mprotect");
	s0 = dstats(d);
	expect_no_write(d, p + 3 * PAGE, -EPERM, "PROT_READ, never mapped");
	CHECK(dstats(d).migrations_requested == s0.migrations_requested,
	      "a refused write fault asked for a migration");
	device_sees(d, p, LEN, 9); /* reads work, from system memory */
	CHECK(resident(mm, p, LEN, pm) == 0, "read-only memory migrated");

	CHECK(mprotect(p, LEN, PROT_READ | PROT_WRITE) == 0, "mprotect");
	CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + LEN, mm, 0));
	CHECK(resident(mm, p, LEN, pm) == (long)LEN, "read-write memory not migrated");
	expect(d, p + 5 * PAGE, WR, 0, "read-write again");
	CHECK(*(uint64_t *)(p + 5 * PAGE) == 0x1122334455667788ull, "device write lost");
	pattern_fill_at(p + 5 * PAGE, 8, 9, 5 * PAGE);
	CHECK_OK(usvm_unregister(mm, p, LEN));
	CHECK_PATTERN(p, LEN, 9);
	munmap(p, LEN);
	usvm_device_destroy(d);
}

/* 5: memory usvm cannot manage is out of the device's reach. */
static void unmanaged(struct usvm_mm *mm, struct usvm_pagemap *pm, uint8_t *q, const char *what)
{
	struct usvm_device *d = dev_new(mm, "unmanaged", pm, USVM_POLICY_ALWAYS, 2);
	enum op op;

	printf("  %s\n", what);
	pattern_fill(q, LEN, 11);
	CHECK_RET(usvm_register(mm, q, LEN), -EINVAL);
	for (op = RD; op <= CAS; op++)
		expect(d, q + 4096 + 64, op, -EFAULT, what);
	CHECK_PATTERN(q, LEN, 11);
	usvm_device_destroy(d);
}

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	char path[] = "/tmp/usvm-dev-protect-XXXXXX";
	uint8_t *q;
	int fd;

	test_init("dev_protect", 120);
	test_setup(&mm, &pm, 16 * MiB);
	after_mapping(mm, pm, 1);
	after_mapping(mm, pm, 0);
	fault_checks(mm, pm);

	q = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(q != MAP_FAILED, "mmap shared");
	unmanaged(mm, pm, q, "shared anonymous memory");
	munmap(q, LEN);
	fd = mkstemp(path);
	CHECK(fd >= 0, "mkstemp");
	unlink(path);
	CHECK(ftruncate(fd, LEN) == 0, "ftruncate");
	q = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(q != MAP_FAILED, "mmap file");
	unmanaged(mm, pm, q, "file-backed memory");
	munmap(q, LEN);
	q = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	CHECK(q != MAP_FAILED, "mmap file private");
	unmanaged(mm, pm, q, "private file mapping");
	munmap(q, LEN);
	close(fd);

	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

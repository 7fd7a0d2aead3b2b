// SPDX-License-Identifier: MIT
/*
 * dmirror_protect: the device honours the CPU's protections changed after
 * it mapped the memory, through the preload library (hmm_range_fault
 * semantics; userfaultfd does not report mprotect):
 *
 *  - pages in device memory: PROT_NONE: READ and WRITE fail with -EFAULT
 *    and SNAPSHOT says ERROR; PROT_READ: READ gives every byte with no fault
 *    (the pages stay in device memory: SNAPSHOT DEV_PRIVATE_LOCAL|READ),
 *    WRITE fails with -EPERM and changes nothing; read-write again: WRITE
 *    works with no fault and the CPU sees it;
 *  - pages in system memory the device mapped: the same;
 *  - half the range read-only: a WRITE of all of it fails with -EPERM and
 *    leaves the read-only half as it was; the read-write half can be written.
 */
#include "dm_test.h"

static int fd0;

static void check_snapshot(struct buf *b, size_t npages, uint8_t want)
{
	uint8_t *m = malloc(npages);
	void *mirror = b->mirror;
	size_t i;

	b->mirror = m;
	CHECK_CMD(fd0, HMM_DMIRROR_SNAPSHOT, b, npages, npages, 0);
	for (i = 0; i < npages; i++)
		CHECK(m[i] == want, "snapshot[%zu] %#x, expected %#x", i, m[i], want);
	b->mirror = mirror;
	free(m);
}

static void after_mapping(int devmem)
{
	const uint8_t local = HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL;
	struct buf *b = buf_new(64, PROT_READ | PROT_WRITE, 0);

	printf("  mprotect after the device mapped %s pages\n", devmem ? "device" : "system");
	fill(b->ptr, b->size, 1);
	if (devmem) {
		CHECK_CMD(fd0, HMM_DMIRROR_MIGRATE_TO_DEV, b, 64, 64, 0);
		check_snapshot(b, 64, local | HMM_DMIRROR_PROT_WRITE);
	} else {
		CHECK_CMD(fd0, HMM_DMIRROR_READ, b, 64, 64, 1);
	}
	CHECK_FILL(b->mirror, b->size, 1);

	CHECK(mprotect(b->ptr, b->size, PROT_NONE) == 0, "mprotect");
	fill(b->mirror, b->size, -7);
	CHECK_RET(dm_cmd(fd0, HMM_DMIRROR_READ, b, 64), -EFAULT);
	CHECK_RET(dm_cmd(fd0, HMM_DMIRROR_WRITE, b, 64), -EFAULT);
	CHECK_FILL(b->mirror, b->size, -7);
	check_snapshot(b, 64, HMM_DMIRROR_PROT_ERROR);

	CHECK(mprotect(b->ptr, b->size, PROT_READ) == 0, "mprotect");
	CHECK_RET(dm_cmd(fd0, HMM_DMIRROR_WRITE, b, 64), -EPERM);
	CHECK_CMD(fd0, HMM_DMIRROR_READ, b, 64, 64, 0);
	CHECK_FILL(b->mirror, b->size, 1);
	if (devmem)
		check_snapshot(b, 64, local | HMM_DMIRROR_PROT_READ);

	CHECK(mprotect(b->ptr, b->size, PROT_READ | PROT_WRITE) == 0, "mprotect");
	fill(b->mirror, b->size, 2);
	CHECK_CMD(fd0, HMM_DMIRROR_WRITE, b, 64, 64, 0);
	if (devmem)
		check_snapshot(b, 64, local | HMM_DMIRROR_PROT_WRITE);
	CHECK_FILL(b->ptr, b->size, 2);
	buf_free(b);
}

static void half_read_only(void)
{
	struct buf *b = buf_new(64, PROT_READ | PROT_WRITE, 0);
	char *p = b->ptr;

	printf("  half the range read-only\n");
	fill(p, b->size, 3);
	CHECK_CMD(fd0, HMM_DMIRROR_MIGRATE_TO_DEV, b, 64, 64, 0);
	CHECK(mprotect(p + 32 * PAGE, 32 * PAGE, PROT_READ) == 0, "mprotect");
	fill(b->mirror, b->size, 4);
	CHECK_RET(dm_cmd(fd0, HMM_DMIRROR_WRITE, b, 64), -EPERM);
	CHECK_CMD(fd0, HMM_DMIRROR_WRITE, b, 32, 32, 0);
	/* The CPU reads (and brings home whole device allocations). */
	CHECK_FILL(p, 32 * PAGE, 4);
	CHECK_FILL(p + 32 * PAGE, 32 * PAGE, 3 + 32 * (int)PAGE / 4);
	buf_free(b);
}

int main(void)
{
	dm_test_init("dmirror_protect", 300);
	fd0 = dm_open(0);
	after_mapping(1);
	after_mapping(0);
	half_read_only();
	CHECK(close(fd0) == 0, "close");
	printf("ok\n");
	return 0;
}

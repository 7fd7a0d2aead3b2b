// SPDX-License-Identifier: MIT
/*
 * dmirror_exclusive: HMM_DMIRROR_EXCLUSIVE and CHECK_EXCLUSIVE through the
 * preload library (hmm-tests exclusive, exclusive_mprotect, exclusive_cow):
 *
 *  - EXCLUSIVE: cpages = npages, the device read every byte, and
 *    CHECK_EXCLUSIVE fails with -EPERM while the device holds the pages;
 *  - a CPU touch of one page revokes that page only; touching all of them
 *    revokes all (CHECK_EXCLUSIVE: 0), and the CPU sees and increments every
 *    value;
 *  - another device's access revokes too, as do munmap and MADV_DONTNEED;
 *  - read-only memory: -EFAULT; shared memory (not usvm's): -EOPNOTSUPP;
 *  - exclusive_mprotect: PROT_READ after EXCLUSIVE, a device WRITE fails
 *    with -EPERM;
 *  - exclusive_cow: parent and child both see and increment every value.
 */
#include "dm_test.h"

static int fd0, fd1;

static void exclusive(void)
{
	struct buf *b = buf_new_aligned(NPAGES, PROT_READ | PROT_WRITE, 2 * MiB);
	int *ptr = b->ptr;
	size_t i;

	printf("  exclusive\n");
	fill(b->ptr, b->size, 0);
	CHECK_CMD(fd0, HMM_DMIRROR_EXCLUSIVE, b, NPAGES, NPAGES, 0);
	CHECK_FILL(b->mirror, b->size, 0);
	CHECK_RET(dm_cmd(fd0, HMM_DMIRROR_CHECK_EXCLUSIVE, b, NPAGES), -EPERM);
	/* Device 1 holds nothing. */
	CHECK_CMD(fd1, HMM_DMIRROR_CHECK_EXCLUSIVE, b, NPAGES, 0, 0);

	/* One page touched: it is the CPU's again, with the rest of its
	 * device allocation (its 2 MiB block); the other block is not. */
	CHECK(ptr[100 * PAGE / 4] == 100 * (int)PAGE / 4, "CPU read");
	CHECK_CMD(fd0, HMM_DMIRROR_CHECK_EXCLUSIVE, b, 512, 0, 0);
	b->ptr = (char *)b->ptr + 512 * PAGE;
	CHECK_RET(dm_cmd(fd0, HMM_DMIRROR_CHECK_EXCLUSIVE, b, 512), -EPERM);
	b->ptr = ptr;

	for (i = 0; i < b->size / sizeof(int); i++)
		CHECK(ptr[i]++ == (int)i, "ptr[%zu]", i);
	CHECK_FILL(b->ptr, b->size, 1);
	CHECK_CMD(fd0, HMM_DMIRROR_CHECK_EXCLUSIVE, b, NPAGES, 0, 0);
	buf_free(b);
}

static void revoked(void)
{
	struct buf *b = buf_new(64, PROT_READ | PROT_WRITE, 0);

	printf("  revoked by another device, munmap, MADV_DONTNEED\n");
	fill(b->ptr, b->size, 2);
	CHECK_CMD(fd0, HMM_DMIRROR_EXCLUSIVE, b, 64, 64, 0);
	CHECK_RET(dm_cmd(fd0, HMM_DMIRROR_CHECK_EXCLUSIVE, b, 64), -EPERM);
	CHECK_CMD(fd1, HMM_DMIRROR_READ, b, 64, 64, 1);
	CHECK_FILL(b->mirror, b->size, 2);
	CHECK_CMD(fd0, HMM_DMIRROR_CHECK_EXCLUSIVE, b, 64, 0, 0);

	CHECK_CMD(fd0, HMM_DMIRROR_EXCLUSIVE, b, 64, 64, 0);
	CHECK(madvise(b->ptr, 32 * PAGE, MADV_DONTNEED) == 0, "madvise");
	CHECK_CMD(fd0, HMM_DMIRROR_CHECK_EXCLUSIVE, b, 32, 0, 0);
	CHECK_RET(dm_cmd(fd0, HMM_DMIRROR_CHECK_EXCLUSIVE, b, 64), -EPERM);
	CHECK(munmap((char *)b->ptr + 32 * PAGE, 32 * PAGE) == 0, "munmap");
	CHECK_CMD(fd0, HMM_DMIRROR_CHECK_EXCLUSIVE, b, 64, 0, 0);
	b->size = 32 * PAGE;
	CHECK(!memcmp(b->ptr, (char[PAGE]){ 0 }, PAGE), "MADV_DONTNEED: not zero");
	buf_free(b);
}

static void refused(void)
{
	struct buf *b = buf_new(4, PROT_READ, 0);

	printf("  read-only and shared memory\n");
	CHECK_RET(dm_cmd(fd0, HMM_DMIRROR_EXCLUSIVE, b, 4), -EFAULT);
	buf_free(b);
	b = buf_new(4, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
	fill(b->ptr, b->size, 3);
	CHECK_RET(dm_cmd(fd0, HMM_DMIRROR_EXCLUSIVE, b, 4), -EOPNOTSUPP);
	CHECK_CMD(fd0, HMM_DMIRROR_CHECK_EXCLUSIVE, b, 4, 0, 0);
	CHECK_FILL(b->ptr, b->size, 3);
	buf_free(b);
}

static void exclusive_mprotect(void)
{
	struct buf *b = buf_new(NPAGES, PROT_READ | PROT_WRITE, 0);

	printf("  exclusive_mprotect\n");
	fill(b->ptr, b->size, 0);
	CHECK_CMD(fd0, HMM_DMIRROR_EXCLUSIVE, b, NPAGES, NPAGES, 0);
	CHECK_FILL(b->mirror, b->size, 0);
	CHECK(mprotect(b->ptr, b->size, PROT_READ) == 0, "mprotect");
	fill(b->mirror, b->size, 5);
	CHECK_RET(dm_cmd(fd0, HMM_DMIRROR_WRITE, b, NPAGES), -EPERM);
	CHECK_CMD(fd0, HMM_DMIRROR_READ, b, NPAGES, NPAGES, 0);
	CHECK_FILL(b->mirror, b->size, 0);
	CHECK_FILL(b->ptr, b->size, 0);
	buf_free(b);
}

static void exclusive_cow(void)
{
	struct buf *b = buf_new(NPAGES, PROT_READ | PROT_WRITE, 0);
	int *ptr = b->ptr, status;
	size_t i;
	pid_t pid;

	printf("  exclusive_cow\n");
	fill(b->ptr, b->size, 0);
	CHECK_CMD(fd0, HMM_DMIRROR_EXCLUSIVE, b, NPAGES, NPAGES, 0);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (!pid) {
		for (i = 0; i < b->size / sizeof(int); i++)
			CHECK(ptr[i]++ == (int)i, "child ptr[%zu]", i);
		CHECK_FILL(ptr, b->size, 1);
		_exit(0);
	}
	for (i = 0; i < b->size / sizeof(int); i++)
		CHECK(ptr[i]++ == (int)i, "parent ptr[%zu]", i);
	CHECK_FILL(ptr, b->size, 1);
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && !WEXITSTATUS(status),
	      "child failed");
	CHECK_CMD(fd0, HMM_DMIRROR_CHECK_EXCLUSIVE, b, NPAGES, 0, 0);
	buf_free(b);
}

int main(void)
{
	dm_test_init("dmirror_exclusive", 300);
	fd0 = dm_open(0);
	fd1 = dm_open(1);
	exclusive();
	revoked();
	refused();
	exclusive_mprotect();
	exclusive_cow();
	CHECK(close(fd0) == 0 && close(fd1) == 0, "close");
	printf("ok\n");
	return 0;
}

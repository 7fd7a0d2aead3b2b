// SPDX-License-Identifier: MIT
/*
 * dmirror_fork: the device and fork() through the preload library
 * (hmm-tests anon_write_child, anon_write_child_shared):
 *
 *  - after a fork the child sees the parent's values (also of pages the
 *    parent had migrated to the device), opens its own device and writes
 *    every page through it (cpages = npages, faults = 1); private memory is
 *    copied on write: the parent's buffer keeps its values; shared memory is
 *    written in place: the parent sees the child's values;
 *  - the same with a 2 MiB THP-backed buffer;
 *  - in the child, the parent's descriptor is the parent's: commands on it
 *    fail with ENODEV (the kernel would run them on the parent's mm);
 *  - the parent's device keeps working after its child exited.
 */
#include "dm_test.h"

static int fd0;

/* The child's side: returns the exit status. */
static int child(struct buf *b, size_t npages, int migrated)
{
	int cfd;

	CHECK_FILL(b->ptr, b->size, 0);
	if (!migrated)
		CHECK_FILL(b->mirror, b->size, -1000);
	/* The parent's file is the parent's. */
	CHECK_RET(dm_cmd(fd0, HMM_DMIRROR_READ, b, npages), -ENODEV);
	cfd = dm_open(0);
	fill(b->mirror, b->size, -1000);
	CHECK_CMD(cfd, HMM_DMIRROR_WRITE, b, npages, npages, 1);
	CHECK_FILL(b->ptr, b->size, -1000);
	CHECK_CMD(cfd, HMM_DMIRROR_MIGRATE_TO_DEV, b, npages, npages, 0);
	CHECK_FILL(b->mirror, b->size, -1000);
	close(cfd);
	return 0;
}

static void write_child(int migrate, int thp, int shared)
{
	size_t npages = thp ? 512 : NPAGES;
	struct buf *b = shared ? buf_new(npages, PROT_READ | PROT_WRITE,
					 MAP_SHARED | MAP_ANONYMOUS) :
				 buf_new_aligned(npages, PROT_READ | PROT_WRITE, 2 * MiB);
	int status;
	pid_t pid;

	printf("  anon_write_child%s: %s, %s\n", shared ? "_shared" : "",
	       migrate ? "migrated" : "in system memory", thp ? "THP" : "4 MiB");
	if (thp)
		madvise(b->ptr, b->size, MADV_HUGEPAGE);
	fill(b->ptr, b->size, 0);
	fill(b->mirror, b->size, -1000);
	if (migrate)
		CHECK_CMD(fd0, HMM_DMIRROR_MIGRATE_TO_DEV, b, npages, npages, 0);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (!pid) {
		if (shared) {
			/* Shared memory cannot migrate: the child's MIGRATE says so. */
			int cfd;

			CHECK_FILL(b->ptr, b->size, 0);
			cfd = dm_open(0);
			fill(b->mirror, b->size, -1000);
			CHECK_CMD(cfd, HMM_DMIRROR_WRITE, b, npages, npages, 1);
			CHECK_RET(dm_cmd(cfd, HMM_DMIRROR_MIGRATE_TO_DEV, b, npages), -ENOENT);
			_exit(0);
		}
		_exit(child(b, npages, migrate));
	}
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
	CHECK(WIFEXITED(status) && !WEXITSTATUS(status), "child failed (status %#x)", status);
	if (shared)
		CHECK_FILL(b->ptr, b->size, -1000);
	else
		CHECK_FILL(b->ptr, b->size, 0);
	/* The parent's device goes on. */
	fill(b->mirror, b->size, 5);
	CHECK_RET(dm_cmd(fd0, HMM_DMIRROR_WRITE, b, npages), 0);
	CHECK(b->cpages == npages, "cpages %llu", (unsigned long long)b->cpages);
	CHECK_FILL(b->ptr, b->size, 5);
	buf_free(b);
}

int main(void)
{
	int migrate, thp;

	dm_test_init("dmirror_fork", 300);
	fd0 = dm_open(0);
	for (migrate = 0; migrate < 2; migrate++)
		for (thp = 0; thp < 2; thp++)
			write_child(migrate, thp, 0);
	write_child(0, 0, 1);
	CHECK(close(fd0) == 0, "close");
	printf("ok\n");
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * dmirror_migrate: HMM_DMIRROR_MIGRATE_TO_DEV, MIGRATE_TO_SYS, RELEASE and
 * FLAGS through the preload library, on two devices (hmm-tests migrate,
 * migrate_fault, migrate_multiple, migrate_release, migrate_shared,
 * migrate_mixed, double_map, migrate_anon_huge_err):
 *
 *  - migrate: cpages = npages, faults = 0, the device read back every
 *    byte, SNAPSHOT says DEV_PRIVATE_LOCAL; the device then reads its own
 *    memory with no fault; a CPU touch brings the pages home and the next
 *    device read takes one fault round;
 *  - half faulted back by the CPU, migrated again: cpages = npages;
 *  - ten rounds of migrate / MIGRATE_TO_SYS (cpages = npages) / CPU check;
 *  - MIGRATE_TO_SYS counts and moves only this device's pages;
 *  - RELEASE brings everything home; FLAGS(FAIL_ALLOC): the migration falls
 *    back to small device allocations (no PMD in the snapshot) and works;
 *  - shared anonymous memory: -ENOENT; migrate_mixed: PROT_NONE: -EINVAL;
 *    read-only private pages (the zero page too) migrate as the kernel
 *    migrates them and stay read-only (a CPU write still faults); a page on
 *    the other device stays there: -ENOENT;
 *  - double_map: read-only memory read by both devices; after a migration
 *    to device 1, device 0 reads with one fault round (the pages come home
 *    first).
 */
#include "dm_test.h"

static int fd0, fd1, fd0b;

static void snapshot_all(int fd, struct buf *b, size_t npages, uint8_t want)
{
	uint8_t *m;
	size_t i;

	CHECK_CMD(fd, HMM_DMIRROR_SNAPSHOT, b, npages, npages, 0);
	m = b->mirror;
	for (i = 0; i < npages; i++)
		CHECK(m[i] == want, "snapshot[%zu] = %#x, expected %#x", i, m[i], want);
}

static void migrate(void)
{
	struct buf *b = buf_new_aligned(NPAGES, PROT_READ | PROT_WRITE, 2 * MiB);
	/* Whole 2 MiB blocks: 2 MiB device allocations, reported as PMDs. */
	const uint8_t local = HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE |
			      HMM_DMIRROR_PROT_PMD;
	void *mirror = b->mirror;

	printf("  migrate\n");
	fill(b->ptr, b->size, 1);
	CHECK_CMD(fd0, HMM_DMIRROR_MIGRATE_TO_DEV, b, NPAGES, NPAGES, 0);
	CHECK_FILL(b->mirror, b->size, 1);
	/* The other file of node 0 shares its device memory; node 1 does not. */
	b->mirror = malloc(NPAGES);
	snapshot_all(fd0b, b, NPAGES, local);
	snapshot_all(fd0, b, NPAGES, local);
	snapshot_all(fd1, b, NPAGES, HMM_DMIRROR_PROT_NONE);
	free(b->mirror);
	b->mirror = mirror;

	/* The device reads its own memory through its page table. */
	memset(b->mirror, 0, b->size);
	CHECK_CMD(fd0, HMM_DMIRROR_READ, b, NPAGES, NPAGES, 0);
	CHECK_FILL(b->mirror, b->size, 1);
	fill(b->mirror, b->size, 2);
	CHECK_CMD(fd0, HMM_DMIRROR_WRITE, b, NPAGES, NPAGES, 0);
	/* The CPU brings everything home (and sees the device's writes). */
	CHECK_FILL(b->ptr, b->size, 2);
	b->mirror = malloc(NPAGES);
	snapshot_all(fd0, b, NPAGES, HMM_DMIRROR_PROT_WRITE);
	free(b->mirror);
	b->mirror = mirror;
	CHECK_CMD(fd0, HMM_DMIRROR_READ, b, NPAGES, NPAGES, 1);
	CHECK_FILL(b->mirror, b->size, 2);
	buf_free(b);
}

static void migrate_fault(void)
{
	struct buf *b = buf_new(NPAGES, PROT_READ | PROT_WRITE, 0);

	printf("  migrate_fault\n");
	fill(b->ptr, b->size, 3);
	CHECK_CMD(fd0, HMM_DMIRROR_MIGRATE_TO_DEV, b, NPAGES, NPAGES, 0);
	CHECK_FILL(b->mirror, b->size, 3);
	CHECK_FILL(b->ptr, b->size / 2, 3); /* half comes home */
	memset(b->mirror, 0, b->size);
	CHECK_CMD(fd0, HMM_DMIRROR_MIGRATE_TO_DEV, b, NPAGES, NPAGES, 0);
	CHECK_FILL(b->mirror, b->size, 3);
	CHECK_FILL(b->ptr, b->size, 3);
	buf_free(b);
}

static void migrate_multiple(void)
{
	int c;

	printf("  migrate_multiple, MIGRATE_TO_SYS\n");
	for (c = 0; c < 10; c++) {
		struct buf *b = buf_new(NPAGES, PROT_READ | PROT_WRITE, 0);

		fill(b->ptr, b->size, c);
		CHECK_CMD(fd0, HMM_DMIRROR_MIGRATE_TO_DEV, b, NPAGES, NPAGES, 0);
		CHECK_FILL(b->mirror, b->size, c);
		CHECK_CMD(fd0, HMM_DMIRROR_MIGRATE_TO_SYS, b, NPAGES, NPAGES, 0);
		CHECK_CMD(fd0, HMM_DMIRROR_MIGRATE_TO_SYS, b, NPAGES, 0, 0);
		CHECK_FILL(b->ptr, b->size, c);
		buf_free(b);
	}
}

static void migrate_to_sys_own(void)
{
	struct buf *b = buf_new_aligned(1024, PROT_READ | PROT_WRITE, 2 * MiB);
	struct buf half = *b;
	uint8_t *m;
	size_t i;

	printf("  MIGRATE_TO_SYS moves only this device's pages\n");
	fill(b->ptr, b->size, 5);
	half.size = b->size / 2;
	CHECK_CMD(fd0, HMM_DMIRROR_MIGRATE_TO_DEV, &half, 512, 512, 0);
	half.ptr = (char *)b->ptr + b->size / 2;
	CHECK_CMD(fd1, HMM_DMIRROR_MIGRATE_TO_DEV, &half, 512, 512, 0);
	CHECK_CMD(fd0, HMM_DMIRROR_MIGRATE_TO_SYS, b, 1024, 512, 0);
	CHECK_CMD(fd1, HMM_DMIRROR_SNAPSHOT, b, 1024, 1024, 0);
	m = b->mirror;
	for (i = 0; i < 1024; i++)
		CHECK(m[i] == (i < 512 ? HMM_DMIRROR_PROT_WRITE :
			       HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE |
			       HMM_DMIRROR_PROT_PMD), "snapshot[%zu] = %#x", i, m[i]);
	CHECK_CMD(fd1, HMM_DMIRROR_MIGRATE_TO_SYS, b, 1024, 512, 0);
	CHECK_FILL(b->ptr, b->size, 5);
	buf_free(b);
}

static void release_and_flags(void)
{
	struct buf *b = buf_new_aligned(512, PROT_READ | PROT_WRITE, 2 * MiB);

	printf("  migrate_release, FLAGS(FAIL_ALLOC)\n");
	fill(b->ptr, b->size, 6);
	CHECK_CMD(fd0, HMM_DMIRROR_MIGRATE_TO_DEV, b, 512, 512, 0);
	snapshot_all(fd0, b, 512, HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE |
		     HMM_DMIRROR_PROT_PMD);
	CHECK_CMD(fd0, HMM_DMIRROR_RELEASE, b, 512, 0, 0);
	snapshot_all(fd0, b, 512, HMM_DMIRROR_PROT_WRITE);
	CHECK_FILL(b->ptr, b->size, 6);

	/* FAIL_ALLOC: the 2 MiB device allocation fails, small ones are used. */
	CHECK_CMD(fd0, HMM_DMIRROR_FLAGS, b, HMM_DMIRROR_FLAG_FAIL_ALLOC, 0, 0);
	CHECK_CMD(fd0, HMM_DMIRROR_MIGRATE_TO_DEV, b, 512, 512, 0);
	CHECK_FILL(b->mirror, b->size, 6);
	snapshot_all(fd0, b, 512, HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE);
	CHECK_FILL(b->ptr, b->size, 6);
	/* The flag was used up: the next migration is one allocation again. */
	CHECK_CMD(fd0, HMM_DMIRROR_MIGRATE_TO_DEV, b, 512, 512, 0);
	snapshot_all(fd0, b, 512, HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE |
		     HMM_DMIRROR_PROT_PMD);
	CHECK_FILL(b->ptr, b->size, 6);
	buf_free(b);
}

/* A child that writes *@p must die of SIGSEGV (the page is read-only). */
static void check_write_faults(int *p)
{
	int status;
	pid_t pid = fork();

	CHECK(pid >= 0, "fork");
	if (!pid) {
		signal(SIGSEGV, SIG_DFL);
		*(volatile int *)p = 1;
		_exit(0);
	}
	CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) &&
	      WTERMSIG(status) == SIGSEGV, "a write to read-only memory did not fault (%#x)",
	      status);
}

static void migrate_refused(void)
{
	struct buf *b = buf_new(NPAGES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);

	printf("  migrate_shared\n");
	fill(b->ptr, b->size, 7);
	CHECK_RET(dm_cmd(fd0, HMM_DMIRROR_MIGRATE_TO_DEV, b, NPAGES), -ENOENT);
	CHECK_FILL(b->ptr, b->size, 7);
	buf_free(b);
}

/*
 * hmm-tests migrate_mixed, on 6 pages reserved PROT_NONE: PROT_NONE or a
 * hole: -EINVAL; a read-only zero page, a read-only page and two
 * read-write pages all migrate (cpages 4) and keep their protections; a
 * page on the other device stays there: -ENOENT.
 */
static void migrate_mixed(void)
{
	struct buf *p = buf_new(6, PROT_NONE, 0);
	char *base = p->ptr;
	uint8_t *m = malloc(4);
	void *mirror = p->mirror;
	int *ptr = (int *)(base + 3 * PAGE), val;

	printf("  migrate_mixed\n");
	CHECK_RET(dm_cmd(fd1, HMM_DMIRROR_MIGRATE_TO_DEV, p, 6), -EINVAL);
	CHECK_RET(dm_cmd(fd1, HMM_DMIRROR_MIGRATE_TO_SYS, p, 6), -EINVAL);
	CHECK(mprotect(base + 2 * PAGE, PAGE, PROT_READ) == 0, "mprotect");
	val = *(int *)(base + 2 * PAGE) + 3; /* the zero page */
	CHECK(mprotect(base + 3 * PAGE, PAGE, PROT_READ | PROT_WRITE) == 0, "mprotect");
	*ptr = val;
	CHECK(mprotect(base + 3 * PAGE, PAGE, PROT_READ) == 0, "mprotect");
	CHECK(mprotect(base + 4 * PAGE, 2 * PAGE, PROT_READ | PROT_WRITE) == 0, "mprotect");
	*(int *)(base + 4 * PAGE) = val;
	*(int *)(base + 5 * PAGE) = val;
	/* Pages 0-1 PROT_NONE: -EINVAL. */
	CHECK_RET(dm_cmd(fd1, HMM_DMIRROR_MIGRATE_TO_DEV, p, 3), -EINVAL);
	p->ptr = base + 2 * PAGE;
	CHECK_CMD(fd1, HMM_DMIRROR_MIGRATE_TO_DEV, p, 4, 4, 0);
	CHECK(((int *)p->mirror)[0] == 0 && ((int *)p->mirror)[PAGE / 4] == 3 &&
	      ((int *)p->mirror)[2 * PAGE / 4] == 3 && ((int *)p->mirror)[3 * PAGE / 4] == 3,
	      "read back");
	p->mirror = m;
	CHECK_CMD(fd1, HMM_DMIRROR_SNAPSHOT, p, 4, 4, 0);
	CHECK(m[0] == (HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_READ) &&
	      m[1] == (HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_READ) &&
	      m[2] == (HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE) &&
	      m[3] == (HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE),
	      "snapshot %#x %#x %#x %#x", m[0], m[1], m[2], m[3]);
	p->mirror = mirror;
	/* Page 5 is on device 1: device 0 does not take it (-ENOENT). */
	p->ptr = base + 5 * PAGE;
	CHECK_RET(dm_cmd(fd0, HMM_DMIRROR_MIGRATE_TO_DEV, p, 1), -ENOENT);
	/* The read-only pages stayed read-only, with their data. */
	p->ptr = base + 2 * PAGE;
	CHECK_RET(dm_cmd(fd1, HMM_DMIRROR_WRITE, p, 2), -EPERM);
	CHECK(*ptr == 3 && *(int *)(base + 2 * PAGE) == 0, "read-only pages changed");
	check_write_faults(ptr);
	check_write_faults((int *)(base + 2 * PAGE));
	CHECK(*(int *)(base + 5 * PAGE) == 3, "page 5");
	p->ptr = base;
	buf_free(p);
	free(m);
}

/*
 * hmm-tests double_map: read-only memory read by both devices (one fault
 * round each), migrated to device 1, read by device 0 (one fault round
 * brings the pages home first).
 */
static void double_map(void)
{
	struct buf *b = buf_new(6, PROT_READ | PROT_WRITE, 0);

	printf("  double_map\n");
	fill(b->ptr, b->size, 8);
	CHECK(mprotect(b->ptr, b->size, PROT_READ) == 0, "mprotect");
	CHECK_CMD(fd0, HMM_DMIRROR_READ, b, 6, 6, 1);
	CHECK_FILL(b->mirror, b->size, 8);
	CHECK_CMD(fd1, HMM_DMIRROR_READ, b, 6, 6, 1);
	CHECK_FILL(b->mirror, b->size, 8);
	memset(b->mirror, 0, b->size);
	CHECK_CMD(fd1, HMM_DMIRROR_MIGRATE_TO_DEV, b, 6, 6, 0);
	CHECK_FILL(b->mirror, b->size, 8);
	memset(b->mirror, 0, b->size);
	CHECK_CMD(fd0, HMM_DMIRROR_READ, b, 6, 6, 1);
	CHECK_FILL(b->mirror, b->size, 8);
	CHECK_CMD(fd1, HMM_DMIRROR_MIGRATE_TO_SYS, b, 6, 0, 0);
	check_write_faults(b->ptr);
	CHECK_FILL(b->ptr, b->size, 8);
	buf_free(b);

	/* Read-write memory both devices mapped, then made read-only:
	 * mprotect() does not take translations away (usvm is not told), the
	 * MMU refuses what it must at each access. */
	b = buf_new(6, PROT_READ | PROT_WRITE, 0);
	fill(b->ptr, b->size, 9);
	CHECK_CMD(fd0, HMM_DMIRROR_READ, b, 6, 6, 1);
	CHECK_CMD(fd1, HMM_DMIRROR_READ, b, 6, 6, 1);
	CHECK(mprotect(b->ptr, b->size, PROT_READ) == 0, "mprotect");
	CHECK_CMD(fd0, HMM_DMIRROR_READ, b, 6, 6, 0);
	CHECK_CMD(fd1, HMM_DMIRROR_READ, b, 6, 6, 0);
	CHECK_FILL(b->mirror, b->size, 9);
	CHECK_RET(dm_cmd(fd1, HMM_DMIRROR_WRITE, b, 6), -EPERM);
	CHECK_FILL(b->ptr, b->size, 9);
	buf_free(b);
}

int main(void)
{
	dm_test_init("dmirror_migrate", 300);
	fd0 = dm_open(0);
	fd1 = dm_open(1);
	fd0b = dm_open(0);
	migrate();
	migrate_fault();
	migrate_multiple();
	migrate_to_sys_own();
	release_and_flags();
	migrate_refused();
	migrate_mixed();
	double_map();
	CHECK(close(fd0) == 0 && close(fd1) == 0 && close(fd0b) == 0, "close");
	printf("ok\n");
	return 0;
}

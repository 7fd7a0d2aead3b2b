// SPDX-License-Identifier: MIT
/*
 * dmirror_snapshot: HMM_DMIRROR_SNAPSHOT through the preload library
 * (hmm-tests snapshot, compound, hmm_cow_in_device,
 * migrate_anon_huge_fault): one byte per page, nothing faulted in.
 *
 *  - hmm-tests' seven pages: PROT_NONE and unmapped: ERROR; read-only zero
 *    page: ZERO|READ; written then read-only: READ; read-write: WRITE; on
 *    this device: DEV_PRIVATE_LOCAL|WRITE; on the other device: NONE;
 *  - a snapshot faults nothing: never-touched pages stay NONE, and stay
 *    never-touched (a later CPU read gives zeros, the page is then ZERO);
 *  - a 2 MiB block migrated whole: DEV_PRIVATE_LOCAL|WRITE|PMD; a THP in
 *    system memory, where the kernel gave one: WRITE|PMD, then READ|PMD
 *    after mprotect(PROT_READ);
 *  - after fork(), pages the parent wrote again (copy-on-write broken):
 *    WRITE; pages still shared with the child: READ;
 *  - a private file mapping: page cache pages READ, the program's own
 *    copies WRITE; a device write copies on write (the file is unchanged).
 */
#include "dm_test.h"

static int fd0, fd1;

static void snapshot(void)
{
	struct buf *b = buf_new(7, PROT_NONE, 0);
	char *p = b->ptr;
	uint8_t *m = b->mirror;
	int val;

	printf("  snapshot\n");
	CHECK(mprotect(p + 2 * PAGE, PAGE, PROT_READ) == 0, "mprotect");
	val = *(int *)(p + 2 * PAGE) + 3;
	CHECK(mprotect(p + 3 * PAGE, PAGE, PROT_READ | PROT_WRITE) == 0, "mprotect");
	*(int *)(p + 3 * PAGE) = val;
	CHECK(mprotect(p + 3 * PAGE, PAGE, PROT_READ) == 0, "mprotect");
	CHECK(mprotect(p + 4 * PAGE, 3 * PAGE, PROT_READ | PROT_WRITE) == 0, "mprotect");
	*(int *)(p + 4 * PAGE) = val;
	b->ptr = p + 5 * PAGE;
	CHECK_CMD(fd0, HMM_DMIRROR_MIGRATE_TO_DEV, b, 1, 1, 0);
	b->ptr = p + 6 * PAGE;
	CHECK_CMD(fd1, HMM_DMIRROR_MIGRATE_TO_DEV, b, 1, 1, 0);
	/* The hole last: a mmap() of usvm's could take a free page before. */
	CHECK(munmap(p + PAGE, PAGE) == 0, "munmap");
	b->ptr = p;
	CHECK_CMD(fd0, HMM_DMIRROR_SNAPSHOT, b, 7, 7, 0);
	CHECK(m[0] == HMM_DMIRROR_PROT_ERROR, "m[0] %#x", m[0]);
	CHECK(m[1] == HMM_DMIRROR_PROT_ERROR, "m[1] %#x", m[1]);
	CHECK(m[2] == (HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ), "m[2] %#x", m[2]);
	CHECK(m[3] == HMM_DMIRROR_PROT_READ, "m[3] %#x", m[3]);
	CHECK(m[4] == HMM_DMIRROR_PROT_WRITE, "m[4] %#x", m[4]);
	CHECK(m[5] == (HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE),
	      "m[5] %#x", m[5]);
	CHECK(m[6] == HMM_DMIRROR_PROT_NONE, "m[6] %#x", m[6]);
	/* From device 1 the two device pages swap roles. */
	CHECK_CMD(fd1, HMM_DMIRROR_SNAPSHOT, b, 7, 7, 0);
	CHECK(m[5] == HMM_DMIRROR_PROT_NONE, "m[5] %#x", m[5]);
	CHECK(m[6] == (HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE),
	      "m[6] %#x", m[6]);
	munmap(p, PAGE);
	b->ptr = p + 2 * PAGE;
	b->size = 5 * PAGE;
	buf_free(b);
}

static void faults_nothing(void)
{
	const size_t n = 64, last = n - 1;
	struct buf *b = buf_new(n, PROT_READ | PROT_WRITE, 0);
	uint8_t *m = b->mirror;
	size_t i;

	printf("  a snapshot faults nothing in\n");
	/* Adopted by usvm (a device read of the first page: zero pages are
	 * mapped 64 KiB at a time), the last page never touched. */
	CHECK_CMD(fd0, HMM_DMIRROR_READ, b, 1, 1, 1);
	CHECK_CMD(fd0, HMM_DMIRROR_SNAPSHOT, b, n, n, 0);
	for (i = 0; i < n; i++)
		CHECK(m[i] == HMM_DMIRROR_PROT_NONE || m[i] == (HMM_DMIRROR_PROT_ZERO |
		      HMM_DMIRROR_PROT_READ), "m[%zu] %#x", i, m[i]);
	CHECK(m[0] == (HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ), "m[0] %#x", m[0]);
	CHECK(m[last] == HMM_DMIRROR_PROT_NONE, "m[last] %#x: faulted in", m[last]);
	CHECK_CMD(fd0, HMM_DMIRROR_SNAPSHOT, b, n, n, 0);
	CHECK(m[last] == HMM_DMIRROR_PROT_NONE, "m[last] %#x: faulted in", m[last]);
	CHECK(((int *)b->ptr)[last * PAGE / 4] == 0, "never-touched page");
	CHECK_CMD(fd0, HMM_DMIRROR_SNAPSHOT, b, n, n, 0);
	CHECK(m[last] == (HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ), "m[last] %#x",
	      m[last]);
	((int *)b->ptr)[last * PAGE / 4] = 1;
	CHECK_CMD(fd0, HMM_DMIRROR_SNAPSHOT, b, n, n, 0);
	CHECK(m[last] == HMM_DMIRROR_PROT_WRITE, "m[last] %#x", m[last]);
	buf_free(b);
}

static void huge(void)
{
	struct buf *b = buf_new_aligned(512, PROT_READ | PROT_WRITE, 2 * MiB);
	uint8_t *m = malloc(512), want;
	void *mirror = b->mirror;
	size_t i;

	printf("  PMD: a THP, a 2 MiB device allocation\n");
	madvise(b->ptr, b->size, MADV_HUGEPAGE);
	fill(b->ptr, b->size, 1);
	b->mirror = m;
	CHECK_CMD(fd0, HMM_DMIRROR_SNAPSHOT, b, 512, 512, 0);
	want = m[0];
	CHECK(want == HMM_DMIRROR_PROT_WRITE ||
	      want == (HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD), "m[0] %#x", want);
	for (i = 0; i < 512; i++)
		CHECK(m[i] == want, "m[%zu] %#x, m[0] %#x", i, m[i], want);
	printf("    THP %s\n", want & HMM_DMIRROR_PROT_PMD ? "given" : "not given");
	CHECK(mprotect(b->ptr, b->size, PROT_READ) == 0, "mprotect");
	CHECK_CMD(fd0, HMM_DMIRROR_SNAPSHOT, b, 512, 512, 0);
	for (i = 0; i < 512; i++)
		CHECK(m[i] == ((want & HMM_DMIRROR_PROT_PMD) | HMM_DMIRROR_PROT_READ),
		      "read-only m[%zu] %#x", i, m[i]);
	CHECK(mprotect(b->ptr, b->size, PROT_READ | PROT_WRITE) == 0, "mprotect");

	b->mirror = mirror;
	CHECK_CMD(fd0, HMM_DMIRROR_MIGRATE_TO_DEV, b, 512, 512, 0);
	CHECK_FILL(b->mirror, b->size, 1);
	b->mirror = m;
	CHECK_CMD(fd0, HMM_DMIRROR_SNAPSHOT, b, 512, 512, 0);
	for (i = 0; i < 512; i++)
		CHECK(m[i] == (HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE |
			       HMM_DMIRROR_PROT_PMD), "migrated m[%zu] %#x", i, m[i]);
	b->mirror = mirror;
	CHECK_FILL(b->ptr, b->size, 1);
	free(m);
	buf_free(b);
}

static void cow(void)
{
	struct buf *b = buf_new(4, PROT_READ | PROT_WRITE, 0);
	uint8_t *m = b->mirror;
	int status;
	pid_t pid;
	size_t i;

	printf("  hmm_cow_in_device\n");
	fill(b->ptr, b->size, 0);
	CHECK_CMD(fd0, HMM_DMIRROR_MIGRATE_TO_DEV, b, 4, 4, 0);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (!pid) {
		pause();
		_exit(0);
	}
	/* Shared with the child now: read-only for the parent until written. */
	CHECK_CMD(fd0, HMM_DMIRROR_SNAPSHOT, b, 4, 4, 0);
	for (i = 0; i < 4; i++)
		CHECK(m[i] == HMM_DMIRROR_PROT_READ, "shared m[%zu] %#x", i, m[i]);
	fill(b->ptr, b->size, 0);
	kill(pid, SIGKILL);
	CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status), "child");
	CHECK_CMD(fd0, HMM_DMIRROR_SNAPSHOT, b, 4, 4, 0);
	for (i = 0; i < 4; i++)
		CHECK(m[i] == HMM_DMIRROR_PROT_WRITE, "m[%zu] %#x", i, m[i]);
	buf_free(b);
}

/*
 * A private file mapping: page cache pages are read-only there (READ), a
 * page the program wrote is its own (WRITE); a device WRITE (in place)
 * copies on write like the CPU: the file keeps its bytes.
 */
static void private_file(void)
{
	char path[] = "/tmp/dmirror-snap-XXXXXX";
	int ffd = mkstemp(path), *p;
	struct buf *b = buf_new(1, PROT_READ | PROT_WRITE, 0);
	uint8_t *m = malloc(4);
	int file0 = 0;
	void *mirror = b->mirror;

	printf("  a private file mapping\n");
	CHECK(ffd >= 0 && m, "mkstemp");
	unlink(path);
	CHECK(pwrite(ffd, "\x07\0\0\0", 4, 0) == 4 && ftruncate(ffd, 4 * PAGE) == 0, "file");
	munmap(b->ptr, b->size);
	p = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, ffd, 0);
	CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
	b->ptr = p;
	b->size = 4 * PAGE;
	CHECK(p[0] == 7, "file data");
	p[PAGE / 4] = 8;
	b->mirror = m;
	CHECK_CMD(fd0, HMM_DMIRROR_SNAPSHOT, b, 4, 4, 0);
	CHECK(m[0] == HMM_DMIRROR_PROT_READ, "page cache page: m[0] %#x", m[0]);
	CHECK(m[1] == HMM_DMIRROR_PROT_WRITE, "written page: m[1] %#x", m[1]);
	/* Never touched: absent, or mapped read-only by fault-around. */
	CHECK(m[3] == HMM_DMIRROR_PROT_NONE || m[3] == HMM_DMIRROR_PROT_READ, "m[3] %#x", m[3]);
	b->mirror = mirror = realloc(mirror, PAGE);
	fill(b->mirror, PAGE, 100);
	CHECK_CMD(fd0, HMM_DMIRROR_WRITE, b, 1, 1, 1);
	CHECK_FILL(p, PAGE, 100);
	CHECK(pread(ffd, &file0, 4, 0) == 4 && file0 == 7, "the device wrote the file: %d", file0);
	b->mirror = m;
	CHECK_CMD(fd0, HMM_DMIRROR_SNAPSHOT, b, 4, 4, 0);
	CHECK(m[0] == HMM_DMIRROR_PROT_WRITE, "copied on write: m[0] %#x", m[0]);
	b->mirror = mirror;
	close(ffd);
	free(m);
	buf_free(b);
}

int main(void)
{
	dm_test_init("dmirror_snapshot", 300);
	fd0 = dm_open(0);
	fd1 = dm_open(1);
	snapshot();
	faults_nothing();
	huge();
	cow();
	private_file();
	CHECK(close(fd0) == 0 && close(fd1) == 0, "close");
	printf("ok\n");
	return 0;
}

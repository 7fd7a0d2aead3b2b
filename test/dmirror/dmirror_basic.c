// SPDX-License-Identifier: MIT
/*
 * dmirror_basic: what the preload library interposes, and the checks every
 * command makes (hmm-tests open_close, the driver's argument checks):
 *
 *  - /dev/hmm_dmirror0 and 1 open (also with openat() and through dup());
 *    2 and 3, the device-coherent nodes, and 4 fail with ENOENT;
 *  - other paths, descriptors and ioctls are untouched: /dev/null opens and
 *    reads, an 'H' ioctl on it is the kernel's (ENOTTY), a generic ioctl
 *    (FIONBIO) on a dmirror descriptor works;
 *  - a descriptor number reused after close() reaches the new file, never
 *    the closed device; a dup()ed descriptor keeps the device alive;
 *  - unaligned address, zero pages, a wrapping range: EINVAL; an unknown
 *    command: EINVAL; a bad command pointer or buffer pointer: EFAULT, and
 *    nothing crashes; a failed command writes nothing back;
 *  - two files of node 0 share its device memory; RELEASE and FLAGS return
 *    zero counters;
 *  - mmap() of the device file (hmm-tests mixedmap): zeroed pages mapped at
 *    once, read-only in a private mapping until written.
 */
#include "dm_test.h"

static void opens(void)
{
	int fd, fd2, dirfd;
	char c;

	printf("  open, openat, coherent nodes, other paths\n");
	fd = dm_open(0);
	CHECK(close(fd) == 0, "close");
	fd = dm_open(1);
	CHECK(close(fd) == 0, "close");
	CHECK(open("/dev/hmm_dmirror2", O_RDWR) < 0 && errno == ENOENT, "node 2: %s",
	      strerror(errno));
	CHECK(open("/dev/hmm_dmirror3", O_RDWR) < 0 && errno == ENOENT, "node 3");
	CHECK(open("/dev/hmm_dmirror4", O_RDWR) < 0 && errno == ENOENT, "node 4");
	dirfd = open("/dev", O_RDONLY | O_DIRECTORY);
	CHECK(dirfd >= 0, "open /dev");
	fd = openat(AT_FDCWD, "/dev/hmm_dmirror0", O_RDWR);
	CHECK(fd >= 0, "openat: %s", strerror(errno));
	fd2 = openat(dirfd, "null", O_RDONLY);
	CHECK(fd2 >= 0 && read(fd2, &c, 1) == 0, "/dev/null through openat");
	CHECK(ioctl(fd2, HMM_DMIRROR_READ, &(struct hmm_dmirror_cmd){ 0 }) < 0 &&
	      errno == ENOTTY, "'H' ioctl on /dev/null: %s", strerror(errno));
	CHECK(ioctl(fd, FIONBIO, &(int){ 1 }) == 0, "FIONBIO on a dmirror fd: %s",
	      strerror(errno));
	close(fd2);
	close(dirfd);
	CHECK(close(fd) == 0, "close");
}

static void descriptors(void)
{
	struct buf *b = buf_new(4, PROT_READ | PROT_WRITE, 0);
	int fd = dm_open(0), dup_fd, other;

	printf("  dup, close, a reused descriptor number\n");
	fill(b->ptr, b->size, 1);
	dup_fd = dup(fd);
	CHECK(dup_fd >= 0, "dup");
	CHECK(close(fd) == 0, "close");
	/* The lowest free number comes back, for another file. */
	other = open("/dev/null", O_RDONLY);
	CHECK(other == fd, "descriptor %d not reused (%d)", fd, other);
	CHECK(ioctl(other, HMM_DMIRROR_READ, &(struct hmm_dmirror_cmd){ 0 }) < 0 &&
	      errno == ENOTTY, "reused descriptor reached the device: %s", strerror(errno));
	close(other);
	/* The dup()ed descriptor still holds the device. */
	CHECK_CMD(dup_fd, HMM_DMIRROR_READ, b, 4, 4, 1);
	CHECK_FILL(b->mirror, b->size, 1);
	CHECK(close(dup_fd) == 0, "close");
	CHECK(ioctl(dup_fd, HMM_DMIRROR_READ, &(struct hmm_dmirror_cmd){ 0 }) < 0 &&
	      errno == EBADF, "closed descriptor: %s", strerror(errno));
	buf_free(b);
}

static void bad_args(int fd)
{
	struct buf *b = buf_new(4, PROT_READ | PROT_WRITE, 0), bad = *b;
	struct hmm_dmirror_cmd cmd = { 0 };

	printf("  argument checks\n");
	fill(b->ptr, b->size, 2);
	bad.ptr = (char *)b->ptr + 8;
	CHECK_RET(dm_cmd(fd, HMM_DMIRROR_READ, &bad, 1), -EINVAL);
	CHECK_RET(dm_cmd(fd, HMM_DMIRROR_READ, b, 0), -EINVAL);
	CHECK_RET(dm_cmd(fd, HMM_DMIRROR_SNAPSHOT, b, ~0ull >> 4), -EINVAL);
	CHECK_RET(dm_cmd(fd, _IOWR('H', 0x3f, struct hmm_dmirror_cmd), b, 1), -EINVAL);
	CHECK_RET(dm_cmd(fd, _IOWR('H', 0x00, int), b, 1), -EINVAL);
	CHECK(ioctl(fd, HMM_DMIRROR_READ, (void *)16) < 0 && errno == EFAULT,
	      "bad cmd pointer: %s", strerror(errno));
	CHECK(ioctl(fd, HMM_DMIRROR_READ, NULL) < 0 && errno == EFAULT, "NULL cmd");
	bad = *b;
	bad.mirror = (void *)16;
	CHECK_RET(dm_cmd(fd, HMM_DMIRROR_READ, &bad, 4), -EFAULT);
	CHECK_RET(dm_cmd(fd, HMM_DMIRROR_WRITE, &bad, 4), -EFAULT);
	CHECK_RET(dm_cmd(fd, HMM_DMIRROR_SNAPSHOT, &bad, 4), -EFAULT);
	CHECK_RET(dm_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, &bad, 4), -EFAULT);
	CHECK_FILL(b->ptr, b->size, 2);
	/* A command structure in read-only memory: read, then EFAULT. */
	cmd.addr = (uintptr_t)b->ptr;
	cmd.ptr = (uintptr_t)b->mirror;
	cmd.npages = 4;
	{
		struct hmm_dmirror_cmd *ro = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
						  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		*ro = cmd;
		mprotect(ro, PAGE, PROT_READ);
		CHECK(ioctl(fd, HMM_DMIRROR_READ, ro) < 0 && errno == EFAULT,
		      "read-only cmd: %s", strerror(errno));
		munmap(ro, PAGE);
	}
	buf_free(b);
}

static void shared_node(int fd)
{
	struct buf *b = buf_new(4, PROT_READ | PROT_WRITE, 0);
	int fd2 = dm_open(0), fd1 = dm_open(1);
	uint8_t *m;

	printf("  two files of one node, RELEASE, FLAGS\n");
	fill(b->ptr, b->size, 3);
	CHECK_CMD(fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, 4, 4, 0);
	CHECK_CMD(fd2, HMM_DMIRROR_SNAPSHOT, b, 4, 4, 0);
	m = b->mirror;
	CHECK(m[0] == (HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE), "%#x", m[0]);
	CHECK_CMD(fd1, HMM_DMIRROR_SNAPSHOT, b, 4, 4, 0);
	CHECK(m[0] == HMM_DMIRROR_PROT_NONE, "%#x", m[0]);
	/* The other file of the node reads its memory without migrating. */
	CHECK_CMD(fd2, HMM_DMIRROR_READ, b, 4, 4, 1);
	CHECK_FILL(b->mirror, b->size, 3);
	CHECK_CMD(fd, HMM_DMIRROR_SNAPSHOT, b, 4, 4, 0);
	CHECK(m[3] == (HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE), "%#x", m[3]);
	CHECK_CMD(fd2, HMM_DMIRROR_RELEASE, b, 4, 0, 0);
	CHECK_CMD(fd, HMM_DMIRROR_SNAPSHOT, b, 4, 4, 0);
	CHECK(m[3] == HMM_DMIRROR_PROT_WRITE, "%#x", m[3]);
	/* FLAGS travel in npages, checked like every range: 0 is EINVAL. */
	CHECK_RET(dm_cmd(fd, HMM_DMIRROR_FLAGS, b, 0), -EINVAL);
	CHECK_CMD(fd, HMM_DMIRROR_FLAGS, b, HMM_DMIRROR_FLAG_FAIL_ALLOC, 0, 0);
	CHECK_FILL(b->ptr, b->size, 3);
	close(fd2);
	close(fd1);
	buf_free(b);
}

/*
 * hmm-tests mixedmap: mmap() of the device file maps zeroed pages at once;
 * in a private mapping they are read-only until written (SNAPSHOT READ).
 */
static void mixedmap(int fd)
{
	struct buf *b = buf_new(1, PROT_READ | PROT_WRITE, 0);
	uint8_t *m = malloc(4);
	void *mirror = b->mirror;
	size_t i;
	int *p;

	printf("  mixedmap: mmap() of the device file\n");
	munmap(b->ptr, b->size);
	p = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	CHECK(p != MAP_FAILED && m, "mmap of the device: %s", strerror(errno));
	b->ptr = p;
	b->size = 4 * PAGE;
	b->mirror = m;
	CHECK_CMD(fd, HMM_DMIRROR_SNAPSHOT, b, 4, 4, 0);
	for (i = 0; i < 4; i++)
		CHECK(m[i] == HMM_DMIRROR_PROT_READ, "m[%zu] %#x", i, m[i]);
	p[0] = 5;
	CHECK_CMD(fd, HMM_DMIRROR_SNAPSHOT, b, 4, 4, 0);
	CHECK(m[0] == HMM_DMIRROR_PROT_WRITE && m[1] == HMM_DMIRROR_PROT_READ, "written: %#x %#x",
	      m[0], m[1]);
	b->mirror = mirror = realloc(mirror, b->size);
	CHECK_CMD(fd, HMM_DMIRROR_READ, b, 4, 4, 1);
	CHECK(((int *)mirror)[0] == 5, "device read %d", ((int *)mirror)[0]);
	for (i = 1; i < b->size / sizeof(int); i++)
		CHECK(((int *)mirror)[i] == 0, "not zero at %zu", i);
	buf_free(b);
	free(m);
	/* Shared: the pages are writable at once. */
	p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 8 * PAGE);
	CHECK(p != MAP_FAILED, "mmap shared: %s", strerror(errno));
	CHECK_RET(ioctl(fd, HMM_DMIRROR_SNAPSHOT, &(struct hmm_dmirror_cmd){
		.addr = (uintptr_t)p, .ptr = (uintptr_t)&i, .npages = 2 }) ? -errno : 0, 0);
	CHECK(((uint8_t *)&i)[0] == HMM_DMIRROR_PROT_WRITE, "shared %#x", ((uint8_t *)&i)[0]);
	munmap(p, 2 * PAGE);
}

int main(void)
{
	int fd;

	dm_test_init("dmirror_basic", 120);
	opens();
	descriptors();
	fd = dm_open(0);
	bad_args(fd);
	shared_node(fd);
	mixedmap(fd);
	CHECK(close(fd) == 0, "close");
	printf("ok\n");
	return 0;
}

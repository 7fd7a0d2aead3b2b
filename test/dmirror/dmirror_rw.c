// SPDX-License-Identifier: MIT
/*
 * dmirror_rw: HMM_DMIRROR_READ and HMM_DMIRROR_WRITE through the preload
 * library, with the kernel driver's counters (hmm-tests anon_read,
 * anon_read_multiple, anon_read_prot, anon_write, anon_write_prot,
 * anon_write_huge, file_read, file_write, anon_teardown):
 *
 *  - a device read of written, never-touched and zero-page memory gives
 *    every byte, cpages = npages, faults = 1 (one fault round); read again,
 *    the device still holds its translations: faults = 0;
 *  - PROT_NONE memory: -EFAULT, the mirror untouched; read-only memory:
 *    writes fail with -EPERM and change nothing, reads work; made
 *    read-write, the same write succeeds with faults = 1;
 *  - file-backed and shared anonymous memory is read and written in place
 *    (the file holds what the device wrote);
 *  - a range with a hole: -EFAULT; a 2 MiB-aligned THP buffer;
 *  - reads racing with munmap of half the buffer either succeed with every
 *    byte right or fail, never hang or crash.
 */
#include <pthread.h>
#include "dm_test.h"

static void anon_read(int fd)
{
	struct buf *b = buf_new(NPAGES, PROT_READ | PROT_WRITE, 0);
	int *ptr = b->ptr;

	printf("  anon_read\n");
	/* The first two pages stay zero: never touched, then the zero page. */
	fill((char *)b->ptr + 2 * PAGE, b->size - 2 * PAGE, 2 * (int)PAGE / 4);
	CHECK(mprotect(b->ptr, b->size, PROT_READ) == 0, "mprotect");
	CHECK(ptr[PAGE / sizeof(int)] == 0, "zero page");
	memset(b->mirror, 0xa5, b->size);
	CHECK_CMD(fd, HMM_DMIRROR_READ, b, NPAGES, NPAGES, 1);
	CHECK(!memcmp(b->mirror, (char[2 * PAGE]){ 0 }, 2 * PAGE), "zero pages read wrong");
	CHECK_FILL((char *)b->mirror + 2 * PAGE, b->size - 2 * PAGE, 2 * (int)PAGE / 4);
	buf_free(b);

	/* Read-write memory, adopted by usvm: the second read takes no fault. */
	b = buf_new(NPAGES, PROT_READ | PROT_WRITE, 0);
	fill(b->ptr, b->size, 7);
	CHECK_CMD(fd, HMM_DMIRROR_READ, b, NPAGES, NPAGES, 1);
	CHECK_FILL(b->mirror, b->size, 7);
	memset(b->mirror, 0, b->size);
	CHECK_CMD(fd, HMM_DMIRROR_READ, b, NPAGES, NPAGES, 0);
	CHECK_FILL(b->mirror, b->size, 7);
	/* The CPU changes the data: the device sees the new bytes. */
	fill(b->ptr, b->size, 8);
	CHECK_CMD(fd, HMM_DMIRROR_READ, b, NPAGES, NPAGES, 0);
	CHECK_FILL(b->mirror, b->size, 8);
	buf_free(b);
}

static void anon_read_multiple(int fd)
{
	int c;

	printf("  anon_read_multiple\n");
	for (c = 0; c < 10; c++) {
		struct buf *b = buf_new(NPAGES, PROT_READ | PROT_WRITE, 0);

		fill(b->ptr, b->size, c);
		CHECK_CMD(fd, HMM_DMIRROR_READ, b, NPAGES, NPAGES, 1);
		CHECK_FILL(b->mirror, b->size, c);
		buf_free(b);
	}
}

static void anon_read_prot(int fd)
{
	struct buf *b = buf_new(NPAGES, PROT_READ | PROT_WRITE, 0);

	printf("  anon_read_prot\n");
	fill(b->ptr, b->size, 0);
	fill(b->mirror, b->size, -5);
	CHECK(mprotect(b->ptr, b->size, PROT_NONE) == 0, "mprotect");
	CHECK_RET(dm_cmd(fd, HMM_DMIRROR_READ, b, NPAGES), -EFAULT);
	CHECK_RET(dm_cmd(fd, HMM_DMIRROR_WRITE, b, NPAGES), -EFAULT);
	CHECK(mprotect(b->ptr, b->size, PROT_READ) == 0, "mprotect");
	CHECK_FILL(b->ptr, b->size, 0);
	CHECK_FILL(b->mirror, b->size, -5);
	buf_free(b);
}

static void anon_write(int fd)
{
	struct buf *b = buf_new(NPAGES, PROT_READ | PROT_WRITE, 0);

	printf("  anon_write\n");
	fill(b->mirror, b->size, 3);
	CHECK_CMD(fd, HMM_DMIRROR_WRITE, b, NPAGES, NPAGES, 1);
	CHECK_FILL(b->ptr, b->size, 3);
	/* Written again through the translations it holds: no fault. */
	fill(b->mirror, b->size, 4);
	CHECK_CMD(fd, HMM_DMIRROR_WRITE, b, NPAGES, NPAGES, 0);
	CHECK_FILL(b->ptr, b->size, 4);
	buf_free(b);
}

static void anon_write_prot(int fd)
{
	struct buf *b = buf_new(NPAGES, PROT_READ, 0);

	printf("  anon_write_prot\n");
	CHECK_CMD(fd, HMM_DMIRROR_READ, b, 1, 1, 1);
	fill(b->mirror, b->size, 0);
	CHECK_RET(dm_cmd(fd, HMM_DMIRROR_WRITE, b, NPAGES), -EPERM);
	CHECK(!memcmp(b->ptr, (char[PAGE]){ 0 }, PAGE), "written");
	CHECK(mprotect(b->ptr, b->size, PROT_READ | PROT_WRITE) == 0, "mprotect");
	CHECK_CMD(fd, HMM_DMIRROR_WRITE, b, NPAGES, NPAGES, 1);
	CHECK_FILL(b->ptr, b->size, 0);
	/* Read-only again: the device's translations obey at once. */
	CHECK(mprotect(b->ptr, b->size, PROT_READ) == 0, "mprotect");
	fill(b->mirror, b->size, 9);
	CHECK_RET(dm_cmd(fd, HMM_DMIRROR_WRITE, b, NPAGES), -EPERM);
	CHECK_FILL(b->ptr, b->size, 0);
	CHECK_CMD(fd, HMM_DMIRROR_READ, b, NPAGES, NPAGES, 0);
	CHECK_FILL(b->mirror, b->size, 0);
	buf_free(b);
}

static void anon_write_huge(int fd)
{
	struct buf *b = buf_new_aligned(512, PROT_READ | PROT_WRITE, 2 * MiB);

	printf("  anon_write_huge\n");
	madvise(b->ptr, b->size, MADV_HUGEPAGE); /* best effort */
	fill(b->mirror, b->size, 11);
	CHECK_CMD(fd, HMM_DMIRROR_WRITE, b, 512, 512, 1);
	CHECK_FILL(b->ptr, b->size, 11);
	buf_free(b);
}

/* A file of @size bytes holding ints i + bias, open O_RDWR. */
static int make_file(size_t size, int bias)
{
	char path[] = "/tmp/dmirror-rw-XXXXXX";
	int fd = mkstemp(path);
	void *tmp = malloc(size);

	CHECK(fd >= 0 && tmp, "mkstemp");
	unlink(path);
	fill(tmp, size, bias);
	CHECK(pwrite(fd, tmp, size, 0) == (ssize_t)size, "pwrite");
	free(tmp);
	return fd;
}

static void file_rw(int fd)
{
	struct buf *b = buf_new(1, PROT_READ, 0);
	size_t size = NPAGES * PAGE;
	int ffd = make_file(size, 21);

	printf("  file_read, file_write\n");
	munmap(b->ptr, b->size);
	free(b->mirror);
	b->size = size;
	b->mirror = malloc(size);
	b->ptr = mmap(NULL, size, PROT_READ, MAP_SHARED, ffd, 0);
	CHECK(b->ptr != MAP_FAILED && b->mirror, "mmap file");
	CHECK_CMD(fd, HMM_DMIRROR_READ, b, NPAGES, NPAGES, 1);
	CHECK_FILL(b->mirror, size, 21);
	fill(b->mirror, size, 22);
	CHECK_RET(dm_cmd(fd, HMM_DMIRROR_WRITE, b, NPAGES), -EPERM);
	munmap(b->ptr, size);

	b->ptr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, ffd, 0);
	CHECK(b->ptr != MAP_FAILED, "mmap file");
	CHECK_CMD(fd, HMM_DMIRROR_WRITE, b, NPAGES, NPAGES, 1);
	CHECK_FILL(b->ptr, size, 22);
	memset(b->mirror, 0, size);
	CHECK(pread(ffd, b->mirror, size, 0) == (ssize_t)size, "pread");
	CHECK_FILL(b->mirror, size, 22);
	/* Migration is not for file memory: it stays in place (-ENOENT). */
	CHECK_RET(dm_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, NPAGES), -ENOENT);
	CHECK_FILL(b->ptr, size, 22);
	close(ffd);
	buf_free(b);
}

static void shared_rw(int fd)
{
	struct buf *b = buf_new(NPAGES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);

	printf("  shared anonymous memory, in place\n");
	fill(b->ptr, b->size, 31);
	CHECK_CMD(fd, HMM_DMIRROR_READ, b, NPAGES, NPAGES, 1);
	CHECK_FILL(b->mirror, b->size, 31);
	fill(b->mirror, b->size, 32);
	CHECK_CMD(fd, HMM_DMIRROR_WRITE, b, NPAGES, NPAGES, 1);
	CHECK_FILL(b->ptr, b->size, 32);
	buf_free(b);
}

static void hole(int fd)
{
	struct buf *b = buf_new(8, PROT_READ | PROT_WRITE, 0), low = { 0 };

	printf("  a PROT_NONE page in the range, an unmapped range\n");
	fill(b->ptr, b->size, 0);
	fill(b->mirror, b->size, 40);
	CHECK_CMD(fd, HMM_DMIRROR_READ, b, 8, 8, 1);
	CHECK(mprotect((char *)b->ptr + 4 * PAGE, PAGE, PROT_NONE) == 0, "mprotect");
	CHECK_RET(dm_cmd(fd, HMM_DMIRROR_READ, b, 8), -EFAULT);
	CHECK_RET(dm_cmd(fd, HMM_DMIRROR_WRITE, b, 8), -EFAULT);
	/* Pages before it may be written (as in the kernel); none after. */
	CHECK_FILL((char *)b->ptr + 5 * PAGE, 3 * PAGE, 5 * (int)PAGE / 4);
	CHECK_CMD(fd, HMM_DMIRROR_READ, b, 4, 4, 0);
	buf_free(b);
	/* Nothing can be mapped at NULL + 4096 (an unmapped range that no
	 * later mmap() can fill, as a munmap()ed hole could be). */
	low.ptr = (void *)PAGE;
	low.mirror = malloc(PAGE);
	CHECK_RET(dm_cmd(fd, HMM_DMIRROR_READ, &low, 1), -EFAULT);
	CHECK_RET(dm_cmd(fd, HMM_DMIRROR_WRITE, &low, 1), -EFAULT);
	CHECK_RET(dm_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, &low, 1), -EINVAL);
	free(low.mirror);
}

static useconds_t unmap_delay;

static void *unmap_half(void *arg)
{
	struct buf *b = arg;

	usleep(unmap_delay);
	munmap((char *)b->ptr + b->size / 2, b->size / 2);
	return NULL;
}

static void anon_teardown(int fd)
{
	int c, ok = 0;

	printf("  anon_teardown\n");
	for (c = 0; c < 20; c++) {
		struct buf *b = buf_new(NPAGES, PROT_READ | PROT_WRITE, 0);
		pthread_t t;
		int err;

		fill(b->ptr, b->size, c);
		unmap_delay = (useconds_t)c * 40; /* from at once to after the read */
		CHECK(pthread_create(&t, NULL, unmap_half, b) == 0, "pthread_create");
		err = dm_cmd(fd, HMM_DMIRROR_READ, b, NPAGES);
		if (!err) {
			CHECK(b->cpages == NPAGES && b->faults >= 1, "cpages %llu faults %llu",
			      (unsigned long long)b->cpages, (unsigned long long)b->faults);
			CHECK_FILL(b->mirror, b->size, c);
			ok++;
		} else {
			CHECK(err == -EFAULT, "racing read: %d", err);
		}
		pthread_join(t, NULL);
		munmap(b->ptr, b->size / 2);
		b->ptr = NULL;
		buf_free(b);
	}
	printf("    %d of 20 reads finished before the unmap\n", ok);
}

int main(void)
{
	int fd;

	dm_test_init("dmirror_rw", 300);
	fd = dm_open(0);
	anon_read(fd);
	anon_read_multiple(fd);
	anon_read_prot(fd);
	anon_write(fd);
	anon_write_prot(fd);
	anon_write_huge(fd);
	file_rw(fd);
	shared_rw(fd);
	hole(fd);
	anon_teardown(fd);
	CHECK(close(fd) == 0, "close");
	printf("ok\n");
	return 0;
}

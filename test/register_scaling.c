// SPDX-License-Identifier: MIT
/*
 * register_scaling: usvm_register checks that a range is private anonymous
 * read-write memory with one PROCMAP_QUERY per mapping (Linux 6.11+), not by
 * reading /proc/self/maps from the start (which made the 5000th register 23x
 * dearer than the first).  Checked here:
 *  - 5000 registrations of separate mappings all succeed, and the library
 *    keeps using the ioctl (its maps fd stays open; it is closed when the
 *    kernel lacks PROCMAP_QUERY and the slow path takes over);
 *  - the verdicts: file-backed, shared, read-only, [stack] memory -EINVAL;
 *    a hole -EFAULT; a range over two adjacent anonymous mappings with
 *    different flags is fine.
 * The time of the first and last 500 registrations is printed, not asserted.
 */
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include "helpers.h"
#include "mm/mm.h"

#define N 5000

static void verdicts(struct usvm_mm *mm)
{
	uint8_t *a = map_aligned(4 * PAGE, PAGE), *s, *f;
	uintptr_t sp = ALIGN_DOWN_UL((uintptr_t)&a, PAGE);
	char path[] = "/tmp/usvm-register-XXXXXX";
	int fd = mkstemp(path);

	CHECK(fd >= 0 && ftruncate(fd, PAGE) == 0, "temp file");
	unlink(path);
	f = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	s = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(f != MAP_FAILED && s != MAP_FAILED, "mmap");
	CHECK_RET(usvm_register(mm, f, PAGE), -EINVAL);
	CHECK_RET(usvm_register(mm, s, PAGE), -EINVAL);
	CHECK_RET(usvm_register(mm, (void *)sp, PAGE), -EINVAL); /* [stack] */
	/* Two mappings that differ only in a flag: both anonymous, fine. */
	CHECK(madvise(a + 2 * PAGE, 2 * PAGE, MADV_DONTFORK) == 0, "madvise");
	CHECK_OK(usvm_register(mm, a, 4 * PAGE));
	CHECK_OK(usvm_unregister(mm, a, 4 * PAGE));
	/* Read-only, then a hole. */
	CHECK(mprotect(a + PAGE, PAGE, PROT_READ) == 0, "mprotect");
	CHECK_RET(usvm_register(mm, a, 2 * PAGE), -EINVAL);
	CHECK(munmap(a + PAGE, PAGE) == 0, "munmap");
	CHECK_RET(usvm_register(mm, a, 2 * PAGE), -EFAULT);
	munmap(a, 4 * PAGE);
	munmap(f, PAGE);
	munmap(s, PAGE);
	close(fd);
}

int main(void)
{
	static uint8_t *bufs[N];
	struct usvm_caps caps;
	struct usvm_mm *mm;
	uint64_t t0, first = 0, last = 0;
	int i;

	test_init("register_scaling", 120);
	usvm_probe(&caps);
	mm = test_mm_create(NULL);
	for (i = 0; i < N; i++) {
		/* A guard page between mappings keeps them from merging. */
		uint8_t *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		CHECK(p != MAP_FAILED && mprotect(p + PAGE, PAGE, PROT_NONE) == 0, "mmap %d", i);
		bufs[i] = p;
		p[0] = (uint8_t)i;
		t0 = now_ns();
		CHECK_OK(usvm_register(mm, p, PAGE));
		t0 = now_ns() - t0;
		if (i < 500)
			first += t0;
		if (i >= N - 500)
			last += t0;
	}
	printf("first 500 registrations %.1f us each, last 500 %.1f us each (%s)\n",
	       first / 500e3, last / 500e3,
	       caps.procmap_query ? "PROCMAP_QUERY" : "/proc/self/maps");
	if (caps.procmap_query)
		CHECK(mm->maps_fd >= 0, "PROCMAP_QUERY is available but the library stopped using it");
	for (i = 0; i < N; i++) {
		CHECK(bufs[i][0] == (uint8_t)i, "byte of mapping %d", i);
		CHECK_OK(usvm_unregister(mm, bufs[i], PAGE));
		munmap(bufs[i], 2 * PAGE);
	}
	verdicts(mm);
	usvm_mm_destroy(mm);
	printf("ok\n");
	return 0;
}

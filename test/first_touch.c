// SPDX-License-Identifier: MIT
/*
 * first_touch: how never-touched managed memory is filled.
 *
 *   - a write to a never-touched 2 MiB block maps the block's allocated
 *     pages writable and zeroed at once: writing every page of a fresh
 *     2 MiB allocation takes one userfaultfd fault (write_fill), and the
 *     data is right;
 *   - with USVM_WRITE_FILL=64K it takes 32;
 *   - a read maps zero pages a few at a time (the page stays shared with the
 *     zero page until written: reads of fresh memory use no RAM);
 *   - a fill never covers arena pages nobody allocated: after a write to a
 *     fresh 8 KiB allocation the page after it is not mapped, and the next
 *     allocation there reads zeros;
 *   - a registered (malloc'd) range is filled the same way.
 */
#include <stdlib.h>
#include <sys/mman.h>
#include "helpers.h"

static int mapped(const void *p)
{
	unsigned char v = 0;

	CHECK(!mincore((void *)((uintptr_t)p & ~(uintptr_t)(PAGE - 1)), PAGE, &v), "mincore");
	return v & 1;
}

static uint64_t first_touch_faults(struct usvm_mm *mm)
{
	return mm_stats(mm).cpu_faults_first_touch;
}

/* Write one byte per page of @p, then check; returns first-touch faults taken. */
static uint64_t write_pages(struct usvm_mm *mm, uint8_t *p, size_t len)
{
	uint64_t f0 = first_touch_faults(mm);
	size_t i;

	for (i = 0; i < len; i += PAGE)
		p[i] = (uint8_t)(i / PAGE + 1);
	for (i = 0; i < len; i++)
		CHECK(p[i] == (i % PAGE ? 0 : (uint8_t)(i / PAGE + 1)), "byte %zu is %#x", i, p[i]);
	return first_touch_faults(mm) - f0;
}

static void block_fill(void)
{
	struct usvm_mm *mm = test_mm_create(NULL);
	uint8_t *p = test_alloc(mm, 2 * MiB), *q;
	uint64_t f, f0;
	size_t i;

	f = write_pages(mm, p, 2 * MiB);
	CHECK(f == 1, "writing a fresh 2 MiB allocation took %llu first-touch faults, expected 1",
	      (unsigned long long)f);

	/* Reads: zero pages, 16 at a time. */
	q = test_alloc(mm, 2 * MiB);
	f0 = first_touch_faults(mm);
	for (i = 0; i < 2 * MiB; i += PAGE)
		CHECK(q[i] == 0, "fresh page %zu reads %#x", i / PAGE, q[i]);
	f = first_touch_faults(mm) - f0;
	CHECK(f >= 2 && f <= 512, "reading a fresh 2 MiB allocation took %llu faults",
	      (unsigned long long)f);
	f = write_pages(mm, q, 2 * MiB); /* copy-on-write of zero pages: no uffd fault */
	CHECK(f == 0, "writing read-faulted pages took %llu first-touch faults",
	      (unsigned long long)f);
	usvm_mm_destroy(mm);

	setenv("USVM_WRITE_FILL", "64K", 1);
	mm = test_mm_create(NULL);
	p = test_alloc(mm, 2 * MiB);
	f = write_pages(mm, p, 2 * MiB);
	CHECK(f == 32, "with USVM_WRITE_FILL=64K, writing 2 MiB took %llu faults, expected 32",
	      (unsigned long long)f);
	usvm_mm_destroy(mm);
	unsetenv("USVM_WRITE_FILL");
}

static void allocated_only(void)
{
	struct usvm_mm *mm = test_mm_create(NULL);
	uint8_t *a = test_alloc(mm, 8 * KiB), *b;

	a[0] = 1;
	CHECK(mapped(a) && mapped(a + PAGE), "the written allocation is not mapped");
	CHECK(!mapped(a + 2 * PAGE), "a write fill mapped the unallocated page after it");
	b = test_alloc(mm, 8 * KiB);
	if (b == a + 2 * PAGE)
		CHECK(!mapped(b), "the next allocation is mapped before its first touch");
	CHECK(b[0] == 0 && b[PAGE + 5] == 0, "a new allocation reads non-zero");
	b[PAGE] = 2;
	CHECK(a[0] == 1 && a[1] == 0 && b[PAGE] == 2, "data mixed up");
	usvm_mm_destroy(mm);
}

static void registered(void)
{
	struct usvm_mm *mm = test_mm_create(NULL);
	size_t len = 4 * MiB;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t f;

	CHECK(p != MAP_FAILED, "mmap");
	CHECK_OK(usvm_register(mm, p, len));
	f = write_pages(mm, p, len);
	CHECK(f >= 2 && f <= 3, "writing a fresh registered 4 MiB took %llu faults (one per "
	      "2 MiB block touched expected)", (unsigned long long)f);
	CHECK_OK(usvm_unregister(mm, p, len));
	munmap(p, len);
	usvm_mm_destroy(mm);
}

int main(void)
{
	test_init("first_touch", 60);
	block_fill();
	allocated_only();
	registered();
	printf("first_touch: ok\n");
	return 0;
}

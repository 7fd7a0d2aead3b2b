// SPDX-License-Identifier: MIT
/*
 * bad_inputs: every documented error code for bad arguments, and after
 * every error every byte written before is still readable and intact (some
 * of it on the device, some in system memory).
 */
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include "helpers.h"

static struct usvm_mm *mm;
static struct usvm_pagemap *pm;
static uint8_t *a, *b, *heap_reg;
static int checks;

/* a (4 MiB): first block on the device, second in RAM; b (64 KiB) on the device. */
static void setup_data(void)
{
	a = test_alloc(mm, 4 * MiB);
	b = test_alloc(mm, 64 * KiB);
	pattern_fill(a, 4 * MiB, 1);
	pattern_fill(b, 64 * KiB, 2);
	CHECK_OK(usvm_pagemap_populate_mm(pm, a, a + 2 * MiB, mm, 0));
	CHECK_OK(usvm_pagemap_populate_mm(pm, b, b + 64 * KiB, mm, 0));
}

/* Verify all data, then put the same layout back. */
static void intact(int line)
{
	size_t bad;

	bad = pattern_check(a, 4 * MiB, 1);
	CHECK(bad == PATTERN_OK, "after the error at line %d: a corrupt at %zu", line, bad);
	bad = pattern_check(b, 64 * KiB, 2);
	CHECK(bad == PATTERN_OK, "after the error at line %d: b corrupt at %zu", line, bad);
	if (heap_reg) {
		bad = pattern_check(heap_reg, 64 * KiB, 3);
		CHECK(bad == PATTERN_OK, "after the error at line %d: registered corrupt", line);
	}
	CHECK_OK(usvm_pagemap_populate_mm(pm, a, a + 2 * MiB, mm, 0));
	CHECK_OK(usvm_pagemap_populate_mm(pm, b, b + 64 * KiB, mm, 0));
	checks++;
}

#define EXPECT(expr, want)                 \
	do {                               \
		CHECK_RET(expr, want);     \
		intact(__LINE__);          \
	} while (0)

int main(void)
{
	struct usvm_pagemap *pm2, *bad_pm = NULL;
	struct usvm_pagemap *where;
	struct usvm_mm *small_mm;
	struct usvm_mm_options opts = { .arena_size = 4 * MiB, .fault_threads = 1 };
	uint8_t stack_buf[3 * 4096];
	uint8_t *stack_page = (uint8_t *)(((uintptr_t)stack_buf + PAGE - 1) & ~(PAGE - 1));
	uint8_t *fresh, *ro, *shared, *filemap, *gone;
	void *p = NULL;
	char path[] = "/tmp/usvm_bad_inputs_XXXXXX";
	int fd;

	test_init("bad_inputs", 60);
	test_setup(&mm, &pm, 16 * MiB);
	setup_data();
	memset(stack_buf, 0, sizeof(stack_buf));

	/* ---- populate_mm ---- */
	EXPECT(usvm_pagemap_populate_mm(pm, a + 1, a + 2 * MiB, mm, 0), -EINVAL);
	EXPECT(usvm_pagemap_populate_mm(pm, a, a + 2 * MiB - 1, mm, 0), -EINVAL);
	EXPECT(usvm_pagemap_populate_mm(pm, a, a + 100, mm, 0), -EINVAL);
	EXPECT(usvm_pagemap_populate_mm(pm, a, a, mm, 0), -EINVAL);             /* empty */
	EXPECT(usvm_pagemap_populate_mm(pm, a + 2 * PAGE, a + PAGE, mm, 0), -EINVAL); /* reversed */
	EXPECT(usvm_pagemap_populate_mm(pm, a, (void *)0, mm, 0), -EINVAL);     /* wraps */
	EXPECT(usvm_pagemap_populate_mm(NULL, a, a + PAGE, mm, 0), -EINVAL);
	EXPECT(usvm_pagemap_populate_mm(pm, a, a + PAGE, NULL, 0), -EINVAL);
	EXPECT(usvm_pagemap_populate_mm(pm, stack_page, stack_page + PAGE, mm, 0), -EFAULT);
	fresh = mmap(NULL, 2 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(fresh != MAP_FAILED, "mmap");
	pattern_fill(fresh, 2 * MiB, 9);
	EXPECT(usvm_pagemap_populate_mm(pm, fresh, fresh + 2 * MiB, mm, 0), -EFAULT);
	CHECK_PATTERN(fresh, 2 * MiB, 9);
	CHECK(pm_stats(pm).populate_efault == 2, "populate_efault %llu",
	      (unsigned long long)pm_stats(pm).populate_efault);

	/* A range running off the end of managed memory: nothing is populated. */
	small_mm = test_mm_create(&opts);
	{
		uint8_t *x = NULL;

		CHECK_OK(usvm_alloc(small_mm, 4 * MiB, (void **)&x));
		pattern_fill(x, 4 * MiB, 5);
		EXPECT(usvm_pagemap_populate_mm(pm, x, x + 6 * MiB, small_mm, 0), -EFAULT);
		CHECK(resident(small_mm, x, 4 * MiB, pm) == 0, "partly populated before -EFAULT");
		/* The wrong mm for the address. */
		EXPECT(usvm_pagemap_populate_mm(pm, a, a + PAGE, small_mm, 0), -EFAULT);
		CHECK_PATTERN(x, 4 * MiB, 5);
	}
	usvm_mm_destroy(small_mm);

	/* After unbind. */
	pm2 = test_sim_create("sim-unbound", 4 * MiB);
	CHECK_OK(usvm_pagemap_populate_mm(pm2, a + 2 * MiB, a + 3 * MiB, mm, 0));
	CHECK_OK(usvm_pagemap_unbind(pm2));
	EXPECT(usvm_pagemap_populate_mm(pm2, a, a + 2 * MiB, mm, 0), -ENODEV);
	EXPECT(usvm_pagemap_populate_mm(pm2, a + 2 * MiB, a + 4 * MiB, mm, 0), -ENODEV);
	usvm_pagemap_destroy(pm2);

	/* ---- evict ---- */
	EXPECT(usvm_pagemap_evict(NULL, mm, a), -EINVAL);
	EXPECT(usvm_pagemap_evict(pm, NULL, a), -EINVAL);
	EXPECT(usvm_pagemap_evict(pm, mm, a + 3 * MiB), -ENOENT); /* in RAM */
	EXPECT(usvm_pagemap_evict(pm, mm, stack_page), -ENOENT);

	/* ---- queries ---- */
	EXPECT(usvm_where(mm, stack_page, &where), -EFAULT);
	EXPECT(usvm_where(mm, fresh, &where), -EFAULT);
	EXPECT(usvm_resident_bytes(mm, fresh, PAGE, NULL), -EFAULT);
	EXPECT(usvm_where(mm, a, NULL), -EINVAL);

	/* ---- alloc / free ---- */
	EXPECT(usvm_alloc(mm, 0, &p), -EINVAL);
	EXPECT(usvm_alloc(mm, 4096, NULL), -EINVAL);
	EXPECT(usvm_free(mm, a + PAGE), -EINVAL);   /* interior */
	EXPECT(usvm_free(mm, a + 1), -EINVAL);
	EXPECT(usvm_free(mm, NULL), -EINVAL);
	EXPECT(usvm_free(mm, stack_page), -EINVAL);
	EXPECT(usvm_free(mm, fresh), -EINVAL);
	{
		uint8_t *c = test_alloc(mm, 2 * MiB);

		pattern_fill(c, 2 * MiB, 4);
		CHECK_OK(usvm_pagemap_populate_mm(pm, c, c + 2 * MiB, mm, 0));
		CHECK_OK(usvm_free(mm, c));
		EXPECT(usvm_free(mm, c), -EINVAL); /* double free */
		CHECK(pm_stats(pm).used_bytes == 2 * MiB + 64 * KiB, "free kept device memory: %llu",
		      (unsigned long long)pm_stats(pm).used_bytes);
	}

	/* ---- register / unregister ---- */
	CHECK(posix_memalign(&p, PAGE, 64 * KiB) == 0, "posix_memalign");
	heap_reg = p;
	pattern_fill(heap_reg, 64 * KiB, 3);
	EXPECT(usvm_register(mm, heap_reg + 1, PAGE), -EINVAL);      /* unaligned start */
	EXPECT(usvm_register(mm, heap_reg, PAGE + 1), -EINVAL);      /* unaligned length */
	EXPECT(usvm_register(mm, heap_reg, 0), -EINVAL);             /* empty */
	EXPECT(usvm_register(mm, NULL, PAGE), -EINVAL);
	EXPECT(usvm_register(mm, stack_page, PAGE), -EINVAL);        /* [stack] */
	CHECK_OK(usvm_register(mm, heap_reg, 64 * KiB));
	CHECK_OK(usvm_pagemap_populate_mm(pm, heap_reg, heap_reg + 64 * KiB, mm, 0));
	intact(__LINE__);
	EXPECT(usvm_register(mm, heap_reg, 64 * KiB), -EEXIST);       /* same */
	EXPECT(usvm_register(mm, heap_reg + 16 * KiB, PAGE), -EEXIST); /* inside */
	EXPECT(usvm_register(mm, a, PAGE), -EEXIST);                   /* a managed arena */
	EXPECT(usvm_register(mm, a + 4 * MiB, 8 * PAGE), -EEXIST);     /* arena, past the allocations */
	EXPECT(usvm_unregister(mm, heap_reg, 32 * KiB), -EINVAL);      /* wrong length */
	EXPECT(usvm_unregister(mm, heap_reg + PAGE, 60 * KiB), -EINVAL); /* wrong start */
	EXPECT(usvm_unregister(mm, a, 4 * MiB), -EINVAL);              /* an allocation */
	EXPECT(usvm_unregister(mm, fresh, 2 * MiB), -EINVAL);          /* never registered */
	EXPECT(usvm_unregister(mm, NULL, PAGE), -EINVAL);

	/* Not private anonymous writable memory. */
	ro = mmap(NULL, 4 * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	shared = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	fd = mkstemp(path);
	CHECK(fd >= 0, "mkstemp");
	unlink(path);
	CHECK(ftruncate(fd, 4 * PAGE) == 0, "ftruncate");
	filemap = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	CHECK(ro != MAP_FAILED && shared != MAP_FAILED && filemap != MAP_FAILED, "mmap");
	shared[0] = 0x42;
	filemap[0] = 0x43;
	EXPECT(usvm_register(mm, ro, 4 * PAGE), -EINVAL);
	EXPECT(usvm_register(mm, shared, 4 * PAGE), -EINVAL);
	EXPECT(usvm_register(mm, filemap, 4 * PAGE), -EINVAL);
	CHECK(shared[0] == 0x42 && filemap[0] == 0x43, "non-anonymous memory changed");
	/* Part anonymous private, part shared: still refused. */
	gone = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(gone != MAP_FAILED, "mmap");
	CHECK(mmap(gone + 4 * PAGE, 4 * PAGE, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED, "mmap fixed");
	EXPECT(usvm_register(mm, gone, 8 * PAGE), -EINVAL);
	/* Unmapped memory. */
	CHECK(munmap(gone, 8 * PAGE) == 0, "munmap");
	EXPECT(usvm_register(mm, gone, 8 * PAGE), -EFAULT);
	munmap(ro, 4 * PAGE);
	munmap(shared, 4 * PAGE);
	munmap(filemap, 4 * PAGE);
	close(fd);

	CHECK_OK(usvm_unregister(mm, heap_reg, 64 * KiB));
	CHECK_PATTERN(heap_reg, 64 * KiB, 3);
	free(heap_reg);
	heap_reg = NULL;
	EXPECT(usvm_unregister(mm, p, 64 * KiB), -EINVAL); /* twice */

	/* ---- pagemap creation ---- */
	EXPECT(usvm_sim_pagemap_create("zero", 0, &bad_pm), -EINVAL);
	EXPECT(usvm_sim_pagemap_create("odd", PAGE + 1, &bad_pm), -EINVAL);
	EXPECT(usvm_sim_pagemap_create("null", PAGE, NULL), -EINVAL);
	CHECK(bad_pm == NULL, "out set on failure");

	/* ---- mm creation ---- */
	EXPECT(usvm_mm_create(NULL, NULL), -EINVAL);

	/* usvm_strerror covers every code used. */
	CHECK(usvm_strerror(-EINVAL)[0] && usvm_strerror(-EFAULT)[0] && usvm_strerror(-ENODEV)[0] &&
	      usvm_strerror(-EEXIST)[0] && usvm_strerror(-ENOENT)[0] && usvm_strerror(-12345)[0],
	      "usvm_strerror");

	CHECK_PATTERN(fresh, 2 * MiB, 9);
	munmap(fresh, 2 * MiB);
	printf("%d error cases, data intact after each\n", checks);
	usvm_pagemap_stats_print(pm, stdout);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

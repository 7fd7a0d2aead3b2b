// SPDX-License-Identifier: MIT
/*
 * dev_write: device kernels write managed memory and the CPU sees every byte
 * (hmm-tests anon_write, anon_write_huge).
 *
 * For each device flavour (no device memory; device memory with policy
 * ALWAYS, ONCE, NEVER) and each memory kind (usvm_alloc, registered mmap):
 *   - one kernel index per page writes a pattern to never-touched memory;
 *   - the device reads its own writes back; the CPU checks every byte;
 *   - unaligned writes crossing pages leave the bytes around them alone;
 *   - usvm_dev_memset and the host helpers usvm_device_write/read;
 *   - 10 rounds alternating device writes and CPU checks + CPU writes.
 */
#include <string.h>
#include <sys/mman.h>
#include "helpers.h"

#define LEN (4 * MiB)

struct memset_arg {
	uint8_t *p;
	size_t len, chunk;
	int c;
};

static int k_memset(struct usvm_kctx *c, unsigned long i, void *arg)
{
	struct memset_arg *m = arg;
	size_t off = i * m->chunk, n = m->len - off < m->chunk ? m->len - off : m->chunk;

	return usvm_dev_memset(c, m->p + off, m->c, n);
}

static const char *pol_name(struct usvm_pagemap *pm, enum usvm_migrate_policy pol)
{
	if (!pm)
		return "no-devmem";
	return pol == USVM_POLICY_ALWAYS ? "always" : pol == USVM_POLICY_ONCE ? "once" : "never";
}

static void one(struct usvm_mm *mm, struct usvm_pagemap *pm, enum usvm_migrate_policy pol,
		int registered, uint64_t seed)
{
	struct usvm_device *d = dev_new(mm, "writer", pm, pol, 4);
	struct usvm_device_stats s;
	uint8_t *host = malloc(LEN), *back = malloc(LEN);
	struct memset_arg ms;
	uint8_t *p;
	size_t i;
	int round;

	CHECK(host && back, "malloc");
	if (registered) {
		p = map_aligned(LEN, USVM_BLOCK_SIZE);
		CHECK_OK(usvm_register(mm, p, LEN));
	} else {
		p = test_alloc(mm, LEN);
	}
	printf("  %s, %s memory\n", pol_name(pm, pol), registered ? "registered" : "managed");

	/* 1. anon_write: device writes never-touched memory, CPU sees it. */
	pattern_fill(host, LEN, seed);
	CHECK_OK(dev_copy(d, p, host, LEN, PAGE, 1));
	s = dstats(d);
	CHECK(s.device_faults > 0, "no device fault");
	CHECK(s.fatal_faults == 0, "fatal faults");
	CHECK(s.bytes_written >= LEN, "bytes_written %llu", (unsigned long long)s.bytes_written);
	if (pm && pol != USVM_POLICY_NEVER)
		CHECK(resident(mm, p, LEN, pm) == (long)LEN, "device writes not in device memory");
	else
		CHECK(resident(mm, p, LEN, NULL) == (long)LEN, "device writes not in system memory");
	/* The device reads its own writes back... */
	memset(back, 0, LEN);
	CHECK_OK(dev_copy(d, p, back, LEN, 64 * KiB, 0));
	CHECK_PATTERN(back, LEN, seed);
	/* ... and so does the CPU, every byte. */
	CHECK_PATTERN(p, LEN, seed);
	CHECK(resident(mm, p, LEN, NULL) == (long)LEN, "CPU reads did not bring pages home");

	/* 2. Unaligned writes crossing pages leave their neighbours alone. */
	memset(p, 0, LEN);
	pattern_fill(host, LEN, seed + 1);
	CHECK_OK(dev_copy(d, p + 4090, host + 4090, LEN - 4090 - 4099, 3 * PAGE + 13, 1));
	CHECK_ZERO(p, 4090);
	CHECK(pattern_check_at(p + 4090, LEN - 4090 - 4099, seed + 1, 4090) == PATTERN_OK,
	      "unaligned device write");
	CHECK_ZERO(p + LEN - 4099, 4099);

	/* 3. memset spans and the host helpers. */
	ms = (struct memset_arg){ p, LEN, 5000, 0x3c };
	CHECK_OK(usvm_device_launch(d, k_memset, (LEN + 4999) / 5000, &ms));
	for (i = 0; i < LEN; i++)
		CHECK(p[i] == 0x3c, "memset byte %zu is 0x%02x", i, p[i]);
	CHECK_OK(usvm_device_write(d, p + 123, host, 2 * PAGE + 1));
	CHECK(pattern_check(p + 123, 2 * PAGE + 1, seed + 1) == PATTERN_OK, "usvm_device_write");
	for (i = 0; i < LEN; i++)
		if (i < 123 || i >= 123 + 2 * PAGE + 1)
			CHECK(p[i] == 0x3c, "usvm_device_write clobbered byte %zu", i);
	memset(back, 0, LEN);
	CHECK_OK(usvm_device_read(d, p + 123, back, 2 * PAGE + 1));
	CHECK_PATTERN(back, 2 * PAGE + 1, seed + 1);
	CHECK_ZERO(back + 2 * PAGE + 1, LEN - 2 * PAGE - 1);

	/* 4. Rounds: device writes, CPU checks and overwrites half, device reads. */
	for (round = 0; round < 10; round++) {
		uint64_t sd = seed + 100 + (uint64_t)round;

		pattern_fill(host, LEN, sd);
		CHECK_OK(dev_copy(d, p, host, LEN, round & 1 ? 64 * KiB : PAGE, 1));
		if (pm && pol == USVM_POLICY_ALWAYS)
			CHECK(resident(mm, p, LEN, pm) == (long)LEN, "round %d: not migrated", round);
		CHECK(pattern_check(p, LEN, sd) == PATTERN_OK, "round %d: CPU sees wrong data "
		      "at offset %zu", round, pattern_check(p, LEN, sd));
		/* CPU overwrites the odd pages; the device must see the mix. */
		for (i = PAGE; i < LEN; i += 2 * PAGE)
			pattern_fill_at(p + i, PAGE, sd + 1000, i);
		memset(back, 0, LEN);
		CHECK_OK(dev_copy(d, p, back, LEN, PAGE, 0));
		for (i = 0; i < LEN; i += PAGE)
			CHECK(pattern_check_at(back + i, PAGE, (i / PAGE) & 1 ? sd + 1000 : sd, i) ==
			      PATTERN_OK, "round %d: device read of page %zu wrong", round, i / PAGE);
	}
	s = dstats(d);
	CHECK(s.fatal_faults == 0, "fatal faults");

	if (registered) {
		CHECK_OK(usvm_unregister(mm, p, LEN));
		munmap(p, LEN);
	} else {
		CHECK_OK(usvm_free(mm, p));
	}
	usvm_device_destroy(d);
	free(host);
	free(back);
}

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_pagemap_stats ps;
	int reg;

	test_init("dev_write", 60);
	test_setup(&mm, &pm, 16 * MiB);
	for (reg = 0; reg < 2; reg++) {
		one(mm, NULL, USVM_POLICY_ALWAYS, reg, 10 + reg);
		one(mm, pm, USVM_POLICY_ALWAYS, reg, 20 + reg);
		one(mm, pm, USVM_POLICY_ONCE, reg, 30 + reg);
		one(mm, pm, USVM_POLICY_NEVER, reg, 40 + reg);
	}
	ps = pm_stats(pm);
	CHECK(ps.used_bytes == 0, "device memory leaked: %llu bytes",
	      (unsigned long long)ps.used_bytes);
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * thrashing: the policy layer's thrashing mitigation (USVM_THRASHING).
 *
 * Two 2 MiB buffers and a device with 2 MiB of memory; a kernel reads a
 * 16 KiB chunk of a and writes b = 3 * a + 7 into the same chunk of b (the
 * stream workload): every chunk evicts the other buffer's block.
 *
 *   - off (USVM_THRASHING=0): every chunk moves both blocks;
 *   - on: the blocks are throttled, then pinned and mapped in place:
 *     at least 10 times fewer bytes move, and the device's counters say why
 *     (thrash events, throttles, pins, bytes kept);
 *   - every byte of a and b is right either way.
 *
 * The window and the pin time are a minute long: the verdicts depend on
 * how many migrations there were, never on how fast this machine is.
 */
#include <inttypes.h>
#include "helpers.h"

#define LEN (2 * MiB)
#define CHUNK (16 * KiB)

struct job {
	uint8_t *a, *b;
};

static int k_stream(struct usvm_kctx *ctx, unsigned long i, void *arg)
{
	static uint8_t buf[CHUNK]; /* one worker thread */
	struct job *j = arg;
	size_t k, off = i * CHUNK;
	int err = usvm_dev_read(ctx, j->a + off, buf, CHUNK);

	if (err)
		return err;
	for (k = 0; k < CHUNK; k++)
		buf[k] = (uint8_t)(buf[k] * 3 + 7);
	return usvm_dev_write(ctx, j->b + off, buf, CHUNK);
}

/* One run with thrashing mitigation @on: bytes moved to the device. */
static uint64_t run(int on, struct usvm_device_stats *ds)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_device *dev;
	struct job j;
	uint64_t moved;
	size_t i;

	setenv("USVM_THRASHING", on ? "1" : "0", 1);
	test_setup(&mm, &pm, LEN);
	j.a = test_alloc(mm, LEN);
	j.b = test_alloc(mm, LEN);
	pattern_fill(j.a, LEN, 9);
	dev = dev_new(mm, "dev0", pm, USVM_POLICY_ALWAYS, 1);
	CHECK_OK(usvm_device_launch(dev, k_stream, LEN / CHUNK, &j));
	*ds = dstats(dev);
	moved = pm_stats(pm).bytes_to_dev;
	CHECK(pattern_check(j.a, LEN, 9) == PATTERN_OK, "thrashing %d: a changed", on);
	for (i = 0; i < LEN; i++)
		CHECK(j.b[i] == (uint8_t)(pattern_byte(9, i) * 3 + 7), "thrashing %d: b[%zu]", on, i);
	usvm_device_destroy(dev);
	CHECK_OK(usvm_free(mm, j.a));
	CHECK_OK(usvm_free(mm, j.b));
	usvm_pagemap_destroy(pm);
	usvm_mm_destroy(mm);
	return moved;
}

int main(void)
{
	struct usvm_device_stats off_st, on_st;
	uint64_t off, on;

	test_init("thrashing", 300);
	skip_if_no_uffd();
	setenv("USVM_THRASH_WINDOW_MS", "60000", 1);
	setenv("USVM_THRASH_PIN_MS", "60000", 1);
	off = run(0, &off_st);
	on = run(1, &on_st);
	printf("bytes to the device: %" PRIu64 " KiB off, %" PRIu64 " KiB on; on: %" PRIu64
	       " thrash events, %" PRIu64 " throttles, %" PRIu64 " pins, %" PRIu64 " KiB kept\n",
	       off >> 10, on >> 10, on_st.thrash_events, on_st.thrash_throttles,
	       on_st.thrash_pins, on_st.thrash_bytes_kept >> 10);
	CHECK(!off_st.thrash_events && !off_st.thrash_pins, "off: the tracker ran");
	CHECK(off >= (LEN / CHUNK) * LEN, "off: only %" PRIu64 " bytes moved: no thrashing to damp",
	      off);
	CHECK(on * 10 <= off, "on: %" PRIu64 " bytes moved, off %" PRIu64 ": not 10x fewer", on, off);
	CHECK(on_st.thrash_events >= 2 && on_st.thrash_throttles >= 1 && on_st.thrash_pins >= 1,
	      "on: events %" PRIu64 ", throttles %" PRIu64 ", pins %" PRIu64, on_st.thrash_events,
	      on_st.thrash_throttles, on_st.thrash_pins);
	CHECK(on_st.thrash_bytes_kept >= LEN, "on: %" PRIu64 " bytes kept", on_st.thrash_bytes_kept);
	CHECK(on_st.bytes_mapped_system > 0, "on: nothing mapped in place");
	printf("thrashing: ok\n");
	return 0;
}

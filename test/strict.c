// SPDX-License-Identifier: MIT
/*
 * strict: USVM_STRICT reports implicit migrations and, at level 2, refuses
 * the device's.
 *
 *   - level 1: a device fault that migrates and a CPU fault on device memory
 *     are each reported once, with the pagemap, the direction and the exact
 *     range; an explicit usvm_prefetch() is not reported; bytes intact;
 *   - level 2: the device fault that would migrate fails with -EACCES (a
 *     fatal device fault), nothing moves, and every byte is still readable;
 *   - level 0: nothing is reported.
 */
#include <fcntl.h>
#include <unistd.h>
#include "helpers.h"

#define LEN (2 * MiB)

static char out_path[64];
static int saved_stderr = -1;

/* Send stderr to a fresh file until captured() returns what it got. */
static void capture(void)
{
	int fd;

	snprintf(out_path, sizeof(out_path), "/tmp/usvm-strict-%d.txt", (int)getpid());
	fd = open(out_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0, "open %s", out_path);
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	CHECK(saved_stderr >= 0 && dup2(fd, STDERR_FILENO) >= 0, "dup2");
	close(fd);
}

static char *captured(void)
{
	static char buf[8192];
	FILE *f;
	size_t n;

	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	f = fopen(out_path, "r");
	CHECK(f != NULL, "fopen %s", out_path);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	unlink(out_path);
	return buf;
}

static int count(const char *s, const char *what)
{
	int n = 0;

	while ((s = strstr(s, what))) {
		n++;
		s += strlen(what);
	}
	return n;
}

static int dev_read_all(struct usvm_device *d, uint8_t *p, uint8_t *host)
{
	return dev_copy(d, p, host, LEN, 64 * KiB, 0);
}

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_device *d;
	uint8_t *p, *host = malloc(LEN);
	char want[160], *out;

	test_init("strict", 300);
	skip_if_no_uffd();
	CHECK(host != NULL, "malloc");
	test_setup(&mm, &pm, 16 * MiB);
	d = dev_new(mm, "dev0", pm, USVM_POLICY_ALWAYS, 1);
	p = test_alloc(mm, LEN);
	pattern_fill(p, LEN, 5);

	/* Level 1: both directions reported, with the range; prefetch not. */
	setenv("USVM_STRICT", "1", 1);
	capture();
	CHECK_OK(dev_read_all(d, p, host));
	CHECK(pattern_check(p, LEN, 5) == PATTERN_OK, "level 1: CPU read");
	CHECK_OK(usvm_prefetch(mm, p, LEN, pm));
	CHECK_OK(usvm_prefetch(mm, p, LEN, NULL));
	out = captured();
	CHECK(pattern_check(host, LEN, 5) == PATTERN_OK, "level 1: device read");
	snprintf(want, sizeof(want), "implicit migration -> %s of [%#lx, %#lx)",
		 usvm_pagemap_name(pm), (unsigned long)p, (unsigned long)(p + LEN));
	CHECK(count(out, want) == 1, "level 1: device fault: want once \"%s\" in:\n%s", want, out);
	snprintf(want, sizeof(want), "implicit migration %s -> system of [%#lx, %#lx)",
		 usvm_pagemap_name(pm), (unsigned long)p, (unsigned long)(p + LEN));
	CHECK(count(out, want) == 1, "level 1: CPU fault: want once \"%s\" in:\n%s", want, out);
	CHECK(count(out, "usvm strict:") == 2, "level 1: prefetch reported too:\n%s", out);

	/* Level 2: the device's migration is refused, fatally; nothing lost. */
	setenv("USVM_STRICT", "2", 1);
	pattern_fill(p, LEN, 6);
	capture();
	CHECK_RET(dev_read_all(d, p, host), -EACCES);
	out = captured();
	CHECK(count(out, "refused (USVM_STRICT=2)") >= 1, "level 2: not refused:\n%s", out);
	CHECK(resident(mm, p, LEN, pm) == 0, "level 2: migrated anyway");
	CHECK(dstats(d).fatal_faults >= 1, "level 2: no fatal device fault counted");
	CHECK(pattern_check(p, LEN, 6) == PATTERN_OK, "level 2: CPU bytes");

	/* Off: silence, and the device migrates again. */
	setenv("USVM_STRICT", "0", 1);
	capture();
	CHECK_OK(dev_read_all(d, p, host));
	CHECK(pattern_check(p, LEN, 6) == PATTERN_OK, "off: CPU bytes");
	out = captured();
	CHECK(pattern_check(host, LEN, 6) == PATTERN_OK, "off: device read");
	CHECK(!strstr(out, "usvm strict:"), "off: reported:\n%s", out);

	usvm_device_destroy(d);
	CHECK_OK(usvm_free(mm, p));
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	free(host);
	printf("strict: ok\n");
	return 0;
}

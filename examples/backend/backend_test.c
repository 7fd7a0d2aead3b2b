// SPDX-License-Identifier: MIT
/*
 * backend_test: the hostmem backend (built outside the usvm tree) under
 * usvm's contract: populate moves every byte into it, a CPU touch brings an
 * allocation back, a full backend evicts, a device on it reads and writes
 * every byte, unbind brings everything home.  Exit 0 pass, 77 skip, 1 fail.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hostmem.h"

#define LEN (8ul << 20)
#define CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "FAIL line %d: ", __LINE__); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } } while (0)

static unsigned char pat(size_t i, unsigned seed) { return (unsigned char)(i * 31 + seed + (i >> 12)); }

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pat(i, seed);
}

static void check(const unsigned char *p, size_t n, unsigned seed, const char *what)
{
	for (size_t i = 0; i < n; i++)
		CHECK(p[i] == pat(i, seed), "%s: byte %zu is %#x, expected %#x", what, i, p[i],
		      pat(i, seed));
}

int main(void)
{
	struct usvm_device_options dopt = { .name = "dev" };
	struct usvm_pagemap *pm;
	struct usvm_device *dev;
	struct usvm_mm *mm;
	unsigned char *p, *host = malloc(LEN);
	int err = usvm_mm_create(NULL, &mm);

	if (err == -EPERM || err == -ENOSYS) {
		printf("skip: %s\n", usvm_strerror(err));
		return 77;
	}
	CHECK(!err && host, "usvm_mm_create: %s", usvm_strerror(err));
	CHECK(!hostmem_pagemap_create("hostmem", LEN / 2, &pm), "create");
	CHECK(!usvm_alloc(mm, LEN, (void **)&p), "alloc");
	fill(p, LEN, 1);

	/* Half fits: populate the first half, then the second (evicting). */
	CHECK(usvm_pagemap_populate_mm(pm, p, p + LEN / 2, mm, 0) == 0, "populate 1");
	CHECK(usvm_resident_bytes(mm, p, LEN / 2, pm) == (long)(LEN / 2), "not in device memory");
	CHECK(usvm_pagemap_populate_mm(pm, p + LEN / 2, p + LEN, mm, 0) == 0, "populate 2");
	check(p, LEN, 1, "CPU after populate and eviction");
	CHECK(hostmem_releases(pm) > 0, "nothing released");

	/* A device working from hostmem memory. */
	dopt.pagemap = pm;
	CHECK(!usvm_device_create(mm, &dopt, &dev), "device");
	CHECK(!usvm_device_read(dev, p, host, LEN / 4), "device read");
	check(host, LEN / 4, 1, "device read");
	fill(host, LEN / 4, 2);
	CHECK(!usvm_device_write(dev, p, host, LEN / 4), "device write");
	check(p, LEN / 4, 2, "CPU after device write");

	/* Unbind: everything home, then populate says -ENODEV. */
	CHECK(usvm_pagemap_populate_mm(pm, p, p + LEN / 4, mm, 0) == 0, "populate 3");
	CHECK(!usvm_pagemap_unbind(pm), "unbind");
	CHECK(usvm_resident_bytes(mm, p, LEN, NULL) == (long)LEN, "unbind left pages behind");
	CHECK(usvm_pagemap_populate_mm(pm, p, p + LEN, mm, 0) == -ENODEV, "populate after unbind");
	check(p, LEN / 4, 2, "after unbind");
	usvm_device_destroy(dev);
	usvm_pagemap_destroy(pm);
	usvm_mm_destroy(mm);
	free(host);
	printf("ok\n");
	return 0;
}

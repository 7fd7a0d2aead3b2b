// SPDX-License-Identifier: MIT
/*
 * hello_usvm.c - the smallest complete usvm program.
 *
 * Allocates managed memory, writes it from the CPU, moves it into a
 * simulated device's memory, reads it back from the CPU (each first touch of
 * a device-resident allocation is a userfaultfd fault that migrates it back)
 * and prints what happened.
 *
 * Build against an installed usvm:
 *   cc hello_usvm.c $(pkg-config --cflags --libs usvm) -o hello_usvm
 * or, with the static library:
 *   cc hello_usvm.c $(pkg-config --cflags --libs --static usvm) -o hello_usvm
 */
#include <stdio.h>
#include <string.h>
#include <usvm.h>

#define SIZE (8UL << 20)   /* 8 MiB: four 2 MiB device allocations */

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *dev;
	struct usvm_mm_stats st;
	unsigned char *buf;
	size_t i, bad = 0;
	int err;

	/* 1. An address space: opens userfaultfd, starts the fault handlers. */
	err = usvm_mm_create(NULL, &mm);
	if (err) {
		fprintf(stderr, "usvm_mm_create: %s\n", usvm_strerror(err));
		return 1;
	}

	/* 2. Managed memory, like cudaMallocManaged(); reads as zero. */
	err = usvm_alloc(mm, SIZE, (void **)&buf);
	if (err) {
		fprintf(stderr, "usvm_alloc: %s\n", usvm_strerror(err));
		usvm_mm_destroy(mm);
		return 1;
	}

	/* 3. The CPU writes it (first touches fault in zero pages). */
	for (i = 0; i < SIZE; i++)
		buf[i] = (unsigned char)(i * 7 + 1);

	/* 4. A simulated device with 16 MiB of memory; move the buffer there. */
	err = usvm_sim_pagemap_create("dev0", 16UL << 20, &dev);
	if (err) {
		fprintf(stderr, "usvm_sim_pagemap_create: %s\n", usvm_strerror(err));
		usvm_mm_destroy(mm);
		return 1;
	}
	err = usvm_pagemap_populate_mm(dev, buf, buf + SIZE, mm, 0);
	if (err) {
		fprintf(stderr, "usvm_pagemap_populate_mm: %s\n", usvm_strerror(err));
		usvm_pagemap_destroy(dev);
		usvm_mm_destroy(mm);
		return 1;
	}
	printf("after populate: %ld bytes in %s, %ld bytes in system memory\n",
	       usvm_resident_bytes(mm, buf, SIZE, dev), usvm_pagemap_name(dev),
	       usvm_resident_bytes(mm, buf, SIZE, NULL));

	/* 5. The CPU reads it back: CPU faults migrate it home, bytes intact. */
	for (i = 0; i < SIZE; i++)
		bad += buf[i] != (unsigned char)(i * 7 + 1);
	printf("after reading:  %ld bytes in %s, %ld bytes in system memory\n",
	       usvm_resident_bytes(mm, buf, SIZE, dev), usvm_pagemap_name(dev),
	       usvm_resident_bytes(mm, buf, SIZE, NULL));

	/* 6. What happened. */
	usvm_mm_stats(mm, &st);
	printf("%llu CPU faults (%llu on device memory), %llu migrations to device, "
	       "%llu back to system memory\n",
	       (unsigned long long)st.cpu_faults, (unsigned long long)st.cpu_faults_devmem,
	       (unsigned long long)st.migrations_to_dev, (unsigned long long)st.migrations_to_ram);
	usvm_pagemap_stats_print(dev, stdout);
	printf("%s\n", bad ? "DATA MISMATCH" : "every byte came back intact");

	usvm_free(mm, buf);
	usvm_pagemap_destroy(dev);
	usvm_mm_destroy(mm);
	return bad ? 1 : 0;
}

// SPDX-License-Identifier: MIT
/*
 * reg_counters: the CPU fault statistics of an mm must add up.
 *
 * Every userfaultfd fault served (cpu_faults) is one message, and each
 * must be classified exactly once: first touch (cpu_faults_first_touch) or
 * on a device-resident page (cpu_faults_devmem).  struct usvm_mm_stats has
 * no other classification today (no "raced"/"spurious" count); if one is
 * added, add it to the sum below.  Reported: "CPU faults 2,321 = first
 * touch 729 + on device 2,365", which is impossible: a fault parked by a
 * timeslice is counted as a device fault again each time it is retried,
 * and once the allocation is home, its retries count as first touches.
 *
 * The mix, one phase after the other:
 *   A. first-touch faults: 1 MiB of fresh managed memory written page by
 *      page;
 *   B. faults on device memory: 2 MiB populated (timeslice 0) and touched
 *      once, five times;
 *   C. faults waiting out a timeslice: 2 MiB populated with timeslice_ms =
 *      50 and touched by 4 threads at once (a barrier), each at its own
 *      page: one device allocation, so exactly one migration back.  (The
 *      first touches writing its pattern count in the total only.)
 * Checked: the data (every byte), migrations_to_ram == 1 for phase C,
 * timeslice_waits >= 1 in phase C and timeslice_waits <= cpu_faults_devmem,
 * and cpu_faults == cpu_faults_first_touch + cpu_faults_devmem, per phase
 * and in total.  Statistics are read once they stop changing (faults parked
 * by other handler threads are retried shortly after the timeslice ends);
 * no timing is asserted.
 */
#include <pthread.h>
#include "helpers.h"

#define LEN (2 * MiB)
#define NTOUCH 4

struct toucher {
	pthread_barrier_t *bar;
	const uint8_t *p;
	size_t off;
	uint64_t seed;
};

static void *touch(void *arg)
{
	struct toucher *t = arg;

	pthread_barrier_wait(t->bar);
	CHECK(t->p[t->off] == pattern_byte(t->seed, t->off), "wrong byte at %zu", t->off);
	return NULL;
}

/* Statistics once they have not changed for 200 ms (at most about 3 s). */
static struct usvm_mm_stats stable_stats(struct usvm_mm *mm, const void *p, size_t len)
{
	struct usvm_mm_stats a, b;
	int i;

	settle(mm, p, len);
	a = mm_stats(mm);
	for (i = 0; i < 15; i++) {
		sleep_ms(200);
		settle(mm, p, len);
		b = mm_stats(mm);
		if (!memcmp(&a, &b, sizeof(a)))
			break;
		a = b;
	}
	return a;
}

struct delta {
	const char *phase;
	uint64_t faults, first, devmem, waits, to_ram;
};

static struct delta diff(const char *phase, const struct usvm_mm_stats *s0,
			 const struct usvm_mm_stats *s1)
{
	struct delta d = {
		phase,
		s1->cpu_faults - s0->cpu_faults,
		s1->cpu_faults_first_touch - s0->cpu_faults_first_touch,
		s1->cpu_faults_devmem - s0->cpu_faults_devmem,
		s1->timeslice_waits - s0->timeslice_waits,
		s1->migrations_to_ram - s0->migrations_to_ram,
	};

	printf("%-36s cpu_faults %4llu = first touch %4llu + on device %4llu ? (%s); "
	       "timeslice waits %llu, migrations to RAM %llu\n", d.phase,
	       (unsigned long long)d.faults, (unsigned long long)d.first,
	       (unsigned long long)d.devmem, d.faults == d.first + d.devmem ? "yes" : "NO",
	       (unsigned long long)d.waits, (unsigned long long)d.to_ram);
	return d;
}

int main(void)
{
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct usvm_mm_stats s0, s1, s2, c0, c1;
	struct delta d[4];
	uint8_t *a, *b, *c;
	size_t off;
	int i, round;

	test_init("reg_counters", 60);
	test_setup(&mm, &pm, 16 * MiB);
	s0 = mm_stats(mm);

	/* A: first touches. */
	a = test_alloc(mm, 1 * MiB);
	for (off = 0; off < 1 * MiB; off += PAGE)
		a[off] = (uint8_t)(off / PAGE + 1);
	for (off = 0; off < 1 * MiB; off += PAGE) {
		CHECK(a[off] == (uint8_t)(off / PAGE + 1), "first-touch page %zu", off / PAGE);
		CHECK_ZERO(a + off + 1, PAGE - 1);
	}
	s1 = stable_stats(mm, a, 1 * MiB);

	/* B: faults on device-resident pages, no timeslice. */
	b = test_alloc(mm, LEN);
	pattern_fill(b, LEN, 2);
	for (i = 0; i < 5; i++) {
		CHECK_OK(usvm_pagemap_populate_mm(pm, b, b + LEN, mm, 0));
		CHECK(resident(mm, b, LEN, pm) == (long)LEN, "B: not populated (test premise)");
		CHECK(b[(size_t)i * 4096 * 7] == pattern_byte(2, (size_t)i * 4096 * 7), "B: byte");
	}
	CHECK_PATTERN(b, LEN, 2);
	s2 = stable_stats(mm, b, LEN);

	/*
	 * C: four threads wait out one allocation's timeslice.  They wait at
	 * a barrier that this thread passes right after populating.  Should
	 * the scheduler keep them all off the CPU for the whole 50 ms (no
	 * wait counted: the premise failed, not the library), the round is
	 * repeated, at most 5 times; the phase's statistics are those of the
	 * last round.
	 */
	c = test_alloc(mm, LEN);
	pattern_fill(c, LEN, 3);
	for (round = 0; round < 5; round++) {
		pthread_barrier_t bar;
		pthread_t th[NTOUCH];
		struct toucher t[NTOUCH];

		c0 = stable_stats(mm, c, LEN);
		CHECK(pthread_barrier_init(&bar, NULL, NTOUCH + 1) == 0, "barrier");
		for (i = 0; i < NTOUCH; i++) {
			t[i] = (struct toucher){ &bar, c, (size_t)i * (LEN / NTOUCH) + 123, 3 };
			CHECK(pthread_create(&th[i], NULL, touch, &t[i]) == 0, "thread");
		}
		CHECK_OK(usvm_pagemap_populate_mm(pm, c, c + LEN, mm, 50));
		CHECK(resident(mm, c, LEN, pm) == (long)LEN, "C: not populated (test premise)");
		pthread_barrier_wait(&bar);
		for (i = 0; i < NTOUCH; i++)
			pthread_join(th[i], NULL);
		pthread_barrier_destroy(&bar);
		CHECK_PATTERN(c, LEN, 3);
		c1 = stable_stats(mm, c, LEN);
		if (c1.timeslice_waits > c0.timeslice_waits)
			break;
		printf("C: no toucher ran within the timeslice: again\n");
	}

	usvm_mm_stats_print(mm, stdout);
	d[0] = diff("A (first touch)", &s0, &s1);
	d[1] = diff("B (device-resident, no timeslice)", &s1, &s2);
	d[2] = diff("C (4 threads wait out a timeslice)", &c0, &c1);
	d[3] = diff("total", &s0, &c1);

	CHECK(d[2].to_ram == 1, "C: one device allocation touched by %d threads migrated back "
	      "%llu times, expected once", NTOUCH, (unsigned long long)d[2].to_ram);
	CHECK(d[2].waits >= 1, "C: no timeslice wait counted (test premise)");
	for (i = 0; i < 4; i++)
		CHECK(d[i].waits <= d[i].devmem, "%s: timeslice_waits %llu > "
		      "cpu_faults_devmem %llu", d[i].phase, (unsigned long long)d[i].waits,
		      (unsigned long long)d[i].devmem);
	for (i = 0; i < 4; i++)
		CHECK(d[i].faults == d[i].first + d[i].devmem, "%s: cpu_faults %llu != "
		      "cpu_faults_first_touch %llu + cpu_faults_devmem %llu (= %llu)", d[i].phase,
		      (unsigned long long)d[i].faults, (unsigned long long)d[i].first,
		      (unsigned long long)d[i].devmem,
		      (unsigned long long)(d[i].first + d[i].devmem));

	CHECK_OK(usvm_free(mm, a));
	CHECK_OK(usvm_free(mm, b));
	CHECK_OK(usvm_free(mm, c));
	usvm_mm_destroy(mm);
	usvm_pagemap_destroy(pm);
	printf("ok\n");
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * The benchmark suite, shared by `usvm bench` (src/cli/bench.c) and
 * bench/migrate_bench.c (a thin main): one implementation, two front doors.
 *
 *   bench.c        options, help, the table and the JSON report
 *   bench_suite.c  the measurements: one function per group of figures
 *
 * Every figure is measured against a baseline in the same process run, round
 * after round; the ratio (usvm / baseline) is taken per round so that drift
 * of the machine during the run affects both sides alike.
 */
#ifndef USVM_CLI_BENCH_H
#define USVM_CLI_BENCH_H

#include <stdint.h>
#include "usvm.h"

#define BENCH_MAX_ROUNDS 100
#define BENCH_MAX_FIGS 24
#define BENCH_MAX_EXTRA 4

/* One value per measured round. */
struct bench_series {
	unsigned n;
	double v[BENCH_MAX_ROUNDS];
};

struct bench_stat {
	double med, min, max;
};

/* A side figure from the same rounds (e.g. the library's own timing). */
struct bench_extra {
	const char *name;        /* JSON key */
	const char *unit;
	struct bench_series s;
};

/* One row of the report: usvm against its baseline, per round. */
struct bench_fig {
	const char *name;        /* JSON key and row label, e.g. "populate_4K" */
	const char *group;       /* --only selector */
	const char *unit;        /* of the usvm and baseline values */
	int higher_better;       /* throughput (1) or latency/cost (0) */
	char what[128];          /* the usvm measurement, one line */
	char base_what[128];     /* the baseline, one line */
	uint64_t bytes;          /* bytes moved or touched per round, 0: n/a */
	uint64_t ops;            /* timed operations per round, 0: n/a */
	struct bench_series usvm, base, ratio;
	unsigned nextra;
	struct bench_extra extra[BENCH_MAX_EXTRA];
};

struct bench_cfg {
	unsigned rounds;
	int quick;
	unsigned groups;         /* bit i: bench_groups[i] selected */
	size_t touch_bytes;      /* first_touch: one buffer */
	size_t migrate_bytes;    /* migrate: bytes per allocation size */
	size_t read_bytes;       /* read_back: bytes per allocation size */
	unsigned lat_allocs;     /* fault: samples per round */
	unsigned free_allocs;    /* free: calls per round */
	unsigned launches;       /* launch: samples per round */
	unsigned scale_allocs;   /* scaling: faults per pass */
	uint64_t budget_ns;      /* per group: no new round after this */
};

struct bench {
	struct bench_cfg cfg;
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	unsigned char *src, *dst;     /* warm memcpy buffers (baselines) */
	size_t cpy_len;
	uint64_t phase_t0;            /* the budget of this phase began */
	char who[64];                 /* message prefix: "usvm bench" */
	struct bench_fig figs[BENCH_MAX_FIGS];
	unsigned nfigs;
};

struct bench_group {
	const char *name;        /* --only selector */
	int (*run)(struct bench *b);
};

extern const struct bench_group bench_groups[];
extern const unsigned bench_ngroups;

/* bench_suite.c */
int bench_setup(struct bench *b);
void bench_teardown(struct bench *b);
void bench_stat(const struct bench_series *s, struct bench_stat *out);

/*
 * bench.c: the whole suite with its command line.  @cmd is "bench" for
 * `usvm bench` (messages say "usvm bench: ...") or NULL for a program of
 * its own (cli_prog names it).  Return: an exit status (EXIT_*).
 */
int bench_main(const char *cmd, int argc, char **argv);

#endif

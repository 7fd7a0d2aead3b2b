/* SPDX-License-Identifier: MIT */
/*
 * The usvm command-line program: shared declarations.
 *
 *   main.c      subcommand dispatch, --help, --version, stdout errors
 *   cmd_run.c   `usvm run` and `usvm demo`: workload lookup, the run, reports
 *   args.c      option parsing (sizes, numbers, chunk lists) and `run` options
 *   run.c       the run environment: mm, simulated devices, phases, helpers
 *   workloads.c the built-in workloads (stream, stencil, random, pingpong,
 *               oversubscribe, thrash, pipeline)
 *   monitor.c   the sampler thread (residency, faults, thrash) and progress bar
 *   report.c    summary table and JSON report
 *   json.c      a tiny JSON writer
 *   svg.c       the --plot SVG
 *   info.c      `usvm info`
 *   bench_suite.c  the benchmark's measurements (bench.h)
 *   bench.c     `usvm bench` (and bench/migrate_bench): options, table, JSON
 *   cmd_trace.c `usvm trace`: sums up a USVM_TRACE file, --json, --plot heatmap
 *   util.c      formatting, time, hashing, usage errors
 *
 * Dependencies only go down this list's reverse: workloads.c uses run.c,
 * cmd_run.c uses both, main.c the commands; util.c is used by all.
 *
 * Only the public API of include/usvm.h is used.
 */
#ifndef USVM_CLI_H
#define USVM_CLI_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include "usvm.h"

#define CLI_MAX_DEVICES 8
#define CLI_MAX_BUFS 8
#define CLI_KCHUNK (16u << 10)   /* bytes one kernel index reads or writes */

/* Exit codes. */
#define EXIT_OK 0
#define EXIT_FAIL 1     /* verification failure or runtime error */
#define EXIT_USAGE 2    /* bad command line */

/* ---- util.c ------------------------------------------------------------ */
uint64_t cli_now_ns(void);
double cli_now_s(void);
/* "64.0 MiB", "4 KiB", "512 B" into @buf (at least 32 bytes). */
const char *fmt_bytes(char *buf, size_t n, uint64_t bytes);
/* "1,234,567" */
const char *fmt_count(char *buf, size_t n, uint64_t v);
/* "2M" style, for chunk lists: exact K/M/G when possible. */
const char *fmt_size_short(char *buf, size_t n, uint64_t bytes);
static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}
/* Deterministic per-element pattern. */
static inline uint64_t pattern64(uint64_t seed, uint64_t i)
{
	return mix64(seed * 0x9e3779b97f4a7c15ull + i + 1);
}
struct rng { uint64_t s; };
static inline uint64_t rng_next(struct rng *r)
{
	r->s += 0x9e3779b97f4a7c15ull;
	return mix64(r->s);
}
static inline uint64_t rng_below(struct rng *r, uint64_t n)
{
	return n ? rng_next(r) % n : 0;
}
unsigned cli_ncpus(void);
extern const char *cli_prog;
/* "usvm CMD: <msg>" on stderr; returns EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Explain a failed usvm_mm_create / pagemap / device creation on stderr. */
void explain_setup_error(const char *what, int err);
int is_help(const char *a);

/* ---- args.c ------------------------------------------------------------ */
/* Parse "4096", "64K", "2M", "1G", "1GiB", "16MB"; 0 or -EINVAL. */
int cli_parse_ulong(const char *s, unsigned long *out);
/* "2M,64K,4K" into chunks[4]; returns 0 or fills @err with the reason. */
int cli_parse_chunks(const char *s, size_t chunks[4], char *err, size_t errlen);

/* One --advise item: [BUF:]KIND[=LOCATION]. */
#define CLI_MAX_ADVICE 16
struct cli_advice {
	char text[64];               /* as given, for messages and --json */
	char buf[16];                /* "" = every buffer of the workload */
	enum usvm_advice advice;
	int dev;                     /* location: device index, -1 system, -2 none */
};
/* Parse one --advise item; 0 or fills @err. */
int cli_parse_advice(const char *s, struct cli_advice *a, char *err, size_t errlen);

#define CLI_PREFETCH_DEVICE 1        /* before device phases, to their memory */
#define CLI_PREFETCH_SYSTEM 2        /* before CPU phases, to system memory */

struct run_opts {
	const char *cmd;             /* "run" or "demo", for messages */
	const char *workload;
	size_t size;                 /* 0: the workload's default */
	size_t dev_mem;              /* 0: the workload's default */
	unsigned devices;            /* 0: the workload's default */
	unsigned long timeslice_ms;
	size_t chunks[4];            /* zeros: library default */
	unsigned iterations;         /* 0: the workload's default */
	uint64_t seed;
	unsigned threads;            /* CPU threads */
	unsigned dev_threads;        /* device worker threads (0: library default) */
	enum usvm_migrate_policy policy;
	int json, quiet, verbose, explain;
	int inject;                  /* testing: corrupt one byte after phase 1 */
	int progress;                /* -1 auto (TTY and > 1 s), 0 never */
	const char *plot;
	const char *trace;          /* --trace FILE */
	unsigned sample_ms;
	struct cli_advice advice[CLI_MAX_ADVICE];   /* --advise */
	unsigned nadvice;
	int prefetch;                /* --prefetch: CLI_PREFETCH_* bits */
	int prefetch_dev;            /* --prefetch=devN: only phases of devN (-1: any) */
};

extern const char run_help[];
void run_opts_defaults(struct run_opts *o, const char *cmd);
/* Parse `usvm run`/`demo` options: 0, -1 (--help printed), or EXIT_USAGE. */
int parse_run_args(int argc, char **argv, struct run_opts *o, int need_workload);

/* ---- run.c ------------------------------------------------------------- */
struct cli_snap {
	struct usvm_mm_stats mm;
	struct usvm_pagemap_stats pm[CLI_MAX_DEVICES];
	struct usvm_device_stats dev[CLI_MAX_DEVICES];
	uint64_t thrash[CLI_MAX_DEVICES];
	/* --prefetch, counted by the CLI (the library has no prefetch counter):
	 * bytes migrated while its usvm_prefetch() calls ran, each way. */
	struct cli_pf {
		uint64_t calls;      /* usvm_prefetch calls */
		uint64_t bytes;      /* bytes asked for by the calls that succeeded */
		uint64_t to_dev, to_sys; /* bytes migrated during the calls */
		uint64_t failed;     /* calls that failed (a hint: the run goes on) */
		uint64_t skipped;    /* ranges left alone: advised preferred elsewhere */
	} pf;
};

struct cli_phase {
	char name[64];
	char actor[32];
	double t0, t1;                   /* seconds since the run started */
	struct cli_snap delta;           /* counters during the phase */
	uint64_t resident[1 + CLI_MAX_DEVICES]; /* after: system, each device */
};

struct cli_buf {
	const char *name;
	void *ptr;
	size_t len;
};

struct monitor;
struct workload;

struct cli_run {
	const struct run_opts *o;
	const struct workload *wl;
	size_t size, dev_mem;
	unsigned ndev, iterations, threads;

	struct usvm_mm *mm;
	struct usvm_pagemap *pm[CLI_MAX_DEVICES];
	struct usvm_device *dev[CLI_MAX_DEVICES];
	char devname[CLI_MAX_DEVICES][16];

	struct cli_buf bufs[CLI_MAX_BUFS];
	unsigned nbufs;
	int advised;                     /* --advise applied (at the first phase) */

	/* --prefetch: the counters (main thread only) and the parts of the
	 * buffers the next run_cpu/run_devices uses (none declared: all). */
	struct cli_pf pf;
	struct { void *p; size_t len; } uses[CLI_MAX_BUFS * 2];
	unsigned nuses;

	struct monitor *mon;
	_Atomic uint64_t t_start_ns;     /* 0 until the first phase begins */
	double elapsed_s;

	struct cli_phase *phases;
	unsigned nphases, cap_phases;
	unsigned phase_lines;            /* narrative lines printed */
	struct cli_snap last;            /* counters at the last phase boundary */
	double phase_t0;
	int in_phase;

	_Atomic uint64_t work_done;      /* bytes processed (progress, throughput) */
	uint64_t work_total;             /* expected, for the progress bar */

	atomic_int failed;
	char errmsg[512];
	pthread_mutex_t err_lock;
};

/* Print to stdout unless --quiet or --json. */
void say(struct cli_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Record the first failure (thread safe); always returns -1. */
int run_fail(struct cli_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int run_failed(struct cli_run *r) { return atomic_load(&r->failed); }
static inline void progress_add(struct cli_run *r, uint64_t bytes)
{
	atomic_fetch_add_explicit(&r->work_done, bytes, memory_order_relaxed);
}

/* Allocate managed memory tracked by the monitor (residency, thrash). */
void *run_alloc(struct cli_run *r, const char *name, size_t len);

void phase_begin(struct cli_run *r, const char *actor, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * --prefetch: [p, p+len) is used by the phase just begun (cleared by
 * phase_begin); run_cpu and run_devices prefetch what was declared, or every
 * workload buffer when nothing was.
 */
void phase_uses(struct cli_run *r, void *p, size_t len);
/*
 * --prefetch, explicitly (run_mixed does not prefetch): [p, p+len) into the
 * memory of the devices in @mask, split evenly as run_devices splits its
 * index range; @mask 0: to system memory.  Nothing without --prefetch (or
 * that direction of it).  A range advised preferred=elsewhere is skipped.
 */
void run_prefetch(struct cli_run *r, unsigned mask, void *p, size_t len);
int phase_end(struct cli_run *r);

/* CPU phase helper: fn over [0, n) split in contiguous parts on the CPU threads. */
typedef int (*cpu_fn)(struct cli_run *r, void *arg, size_t lo, size_t hi, unsigned tid);
int run_cpu(struct cli_run *r, cpu_fn fn, void *arg, size_t n);
/* Same on an explicit thread count. */
int run_cpu_n(struct cli_run *r, unsigned nthreads, cpu_fn fn, void *arg, size_t n);

/*
 * Device phase helper: launch @fn over [0, n) on the devices in @mask
 * (bit d = device d), the index range split evenly, all devices at once.
 * Kernels see global indices.  Returns 0 or -1 (failure recorded).
 */
int run_devices(struct cli_run *r, unsigned mask, usvm_kernel_fn fn, void *arg,
		unsigned long n);
/* Run CPU work and device work at the same time (random workload). */
int run_mixed(struct cli_run *r, cpu_fn cfn, void *carg, size_t cn,
	      unsigned mask, usvm_kernel_fn kfn, void *karg, unsigned long kn);

/* Snapshot every counter. */
void snap_take(struct cli_run *r, struct cli_snap *s);
void snap_sub(const struct cli_run *r, struct cli_snap *out, const struct cli_snap *a,
	      const struct cli_snap *b);
/* Bytes of the workload buffers in system memory (pm NULL) or @pm. */
uint64_t run_resident(struct cli_run *r, struct usvm_pagemap *pm);

/* Create the mm, pagemaps and devices of a run; free them. */
int run_setup(struct cli_run *r);
void run_teardown(struct cli_run *r);

/* ---- cmd_run.c --------------------------------------------------------- */
int cmd_run(int argc, char **argv);
int cmd_demo(int argc, char **argv);

/* ---- workloads.c ------------------------------------------------------- */
struct workload {
	const char *name;
	const char *summary;
	unsigned default_devices;
	unsigned default_iterations;
	size_t default_size;
	const char *buffers;     /* the names it gives run_alloc, space separated */
	/* Default device memory per device for this working set. */
	size_t (*default_dev_mem)(size_t size, unsigned ndev);
	int (*run)(struct cli_run *r);
	/* Optional: "What happened", after the phase lines (not with -q/--json). */
	void (*explain)(struct cli_run *r);
};
extern const struct workload cli_workloads[];
extern const unsigned cli_nworkloads;
const struct workload *workload_find(const char *name);

/* ---- monitor.c --------------------------------------------------------- */
struct mon_sample {
	double t;
	uint64_t resident[1 + CLI_MAX_DEVICES];
	uint64_t cpu_faults;                  /* during the interval */
	uint64_t dev_faults[CLI_MAX_DEVICES];
};
struct monitor *monitor_start(struct cli_run *r, unsigned sample_ms, int keep_samples,
			      int progress);
/* A workload buffer to watch (residency, thrash). */
void monitor_add_buf(struct monitor *m, void *p, size_t len);
/* The phase now running (progress bar, plot markers). */
void monitor_set_label(struct monitor *m, unsigned idx, const char *name, double t);
/* Take a sample now (phase boundaries); safe from any thread. */
void monitor_sample(struct monitor *m);
/* Thrash events observed so far for device @d. */
uint64_t monitor_thrash(struct monitor *m, unsigned d);
void monitor_stop(struct monitor *m);
/* Samples kept for --plot (valid until monitor_free). */
const struct mon_sample *monitor_samples(struct monitor *m, unsigned *n);
void monitor_free(struct monitor *m);
/*
 * Around output to the terminal: the progress line is cleared and cannot
 * be redrawn until monitor_output_end (so it never lands inside a line).
 */
void monitor_output_begin(struct monitor *m);
void monitor_output_end(struct monitor *m);

/* ---- report.c ---------------------------------------------------------- */
void report_table(struct cli_run *r, const struct cli_snap *total, FILE *f);
void report_json(struct cli_run *r, const struct cli_snap *total, FILE *f);

/* ---- svg.c ------------------------------------------------------------- */
int svg_write(struct cli_run *r, const struct mon_sample *s, unsigned n, const char *path);
/* XML-escape @s into @f. */
void xml_escape(FILE *f, const char *s);

/* ---- json.c ------------------------------------------------------------ */
struct json {
	FILE *f;
	int depth;
	int need_comma[32];
	int pretty;
};
void json_init(struct json *j, FILE *f, int pretty);
void json_obj_begin(struct json *j, const char *key);
void json_obj_end(struct json *j);
void json_arr_begin(struct json *j, const char *key);
void json_arr_end(struct json *j);
void json_u64(struct json *j, const char *key, uint64_t v);
void json_i64(struct json *j, const char *key, int64_t v);
void json_dbl(struct json *j, const char *key, double v);
void json_str(struct json *j, const char *key, const char *v);
void json_bool(struct json *j, const char *key, int v);
void json_null(struct json *j, const char *key);
void json_finish(struct json *j);

/* ---- info.c / bench.c -------------------------------------------------- */
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* ---- cmd_trace.c ------------------------------------------------------- */
int cmd_trace(int argc, char **argv);

#endif

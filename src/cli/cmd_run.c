// SPDX-License-Identifier: MIT
/*
 * usvm CLI: `usvm run` and `usvm demo` - pick the workload, check the
 * options against this machine, set the run up, run it, report.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"

/* Fail before the run, not after it, when --plot cannot be written. */
static int plot_unwritable(const char *cmd, const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');

	if (!access(path, F_OK))
		return access(path, W_OK) ? usage_error(cmd, "--plot %s: %s", path,
							strerror(errno)) : 0;
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path + 1) : 1,
		 slash ? path : ".");
	if (access(dir, W_OK | X_OK))
		return usage_error(cmd, "--plot %s: cannot create it in %s: %s", path, dir,
				   strerror(errno));
	return 0;
}

/* Largest chunk a device range can have (the first of the list). */
static size_t largest_chunk(const struct run_opts *o)
{
	return o->chunks[0] ? o->chunks[0] : USVM_BLOCK_SIZE;
}

static void print_header(struct cli_run *r)
{
	char b1[32], b2[32], ch[64] = "", t[16];
	static const char *pol[] = { "always", "once", "never" };
	unsigned i;

	if (r->o->chunks[0]) {
		size_t o = 0;

		for (i = 0; i < 4 && r->o->chunks[i]; i++)
			o += (size_t)snprintf(ch + o, sizeof(ch) - o, "%s%s", i ? "," : "",
					      fmt_size_short(t, sizeof(t), r->o->chunks[i]));
	} else {
		snprintf(ch, sizeof(ch), "2M,64K,4K");
	}
	say(r, "usvm run %s: %s working set, %u simulated device%s with %s of memory%s\n",
	    r->wl->name, fmt_bytes(b1, sizeof(b1), r->size), r->ndev, r->ndev > 1 ? "s" : "",
	    fmt_bytes(b2, sizeof(b2), r->dev_mem), r->ndev > 1 ? " each" : "");
	say(r, "  %s\n", r->wl->summary);
	if (r->dev_mem < largest_chunk(r->o))
		say(r, "  note: %s of device memory is less than one %s chunk: ranges that size\n"
		    "  cannot migrate and devices use system memory in place (try --device-mem %s\n"
		    "  or smaller --chunks)\n", fmt_bytes(b1, sizeof(b1), r->dev_mem),
		    fmt_size_short(t, sizeof(t), largest_chunk(r->o)),
		    fmt_size_short(b2, sizeof(b2), largest_chunk(r->o)));
	say(r, "  chunks %s, policy %s, timeslice %lu ms, %u iteration%s, seed %llu, "
	    "%u CPU thread%s\n", ch, pol[r->o->policy], r->o->timeslice_ms, r->iterations,
	    r->iterations == 1 ? "" : "s", (unsigned long long)r->o->seed, r->threads,
	    r->threads == 1 ? "" : "s");
	if (r->o->nadvice) {
		say(r, "  advise:");
		for (i = 0; i < r->o->nadvice; i++)
			say(r, "%s%s", i ? ", " : " ", r->o->advice[i].text);
		say(r, " (usvm_advise, before the first phase)\n");
	}
	if (r->o->prefetch) {
		char dn[16] = "each device";

		if (r->o->prefetch_dev >= 0)
			snprintf(dn, sizeof(dn), "dev%d", r->o->prefetch_dev);
		say(r, "  prefetch: %s%s%s (usvm_prefetch, before each phase)\n",
		    r->o->prefetch & CLI_PREFETCH_DEVICE ? "into " : "",
		    r->o->prefetch & CLI_PREFETCH_DEVICE ? dn : "",
		    !(r->o->prefetch & CLI_PREFETCH_SYSTEM) ? " before its phases" :
		    r->o->prefetch & CLI_PREFETCH_DEVICE ? " before device phases, into system "
		    "memory before CPU phases" : "into system memory before CPU phases");
	}
}

/* Is @name one of the (space separated) buffer names of @wl? */
static int has_buffer(const struct workload *wl, const char *name)
{
	const char *p = wl->buffers;
	size_t n = strlen(name);

	while (p && *p) {
		size_t l = strcspn(p, " ");

		if (l == n && !strncmp(p, name, n))
			return 1;
		p += l;
		p += strspn(p, " ");
	}
	return 0;
}

static int resolve(struct cli_run *r, const struct run_opts *o)
{
	const struct workload *wl = r->wl;
	char b1[32], b2[32];

	r->size = o->size ? o->size : wl->default_size;
	r->size = (r->size + USVM_PAGE_SIZE - 1) & ~(USVM_PAGE_SIZE - 1);
	r->ndev = o->devices ? o->devices : wl->default_devices;
	r->iterations = o->iterations ? o->iterations : wl->default_iterations;
	r->threads = o->threads ? o->threads : (cli_ncpus() < 4 ? cli_ncpus() : 4);
	r->dev_mem = o->dev_mem ? o->dev_mem : wl->default_dev_mem(r->size, r->ndev);
	r->dev_mem = (r->dev_mem + USVM_PAGE_SIZE - 1) & ~(USVM_PAGE_SIZE - 1);
	if (r->size < 64 * USVM_PAGE_SIZE)
		return usage_error(o->cmd, "--size %zu is too small for a workload (at least 256K)",
				   o->size ? o->size : r->size);
	if (r->size > (64ull << 30))
		return usage_error(o->cmd, "--size %s: at most 64G",
				   fmt_bytes(b1, sizeof(b1), r->size));
	{
		long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
		uint64_t phys = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;

		/* Workloads keep up to one private copy (shadow, reference). */
		if (phys && 2 * (uint64_t)r->size > phys)
			return usage_error(o->cmd, "--size %s: the workload needs about twice that and "
					   "this machine has %s of memory",
					   fmt_bytes(b1, sizeof(b1), r->size),
					   fmt_bytes(b2, sizeof(b2), phys));
	}
	for (unsigned i = 0; i < o->nadvice; i++) {
		const struct cli_advice *a = &o->advice[i];

		if (a->dev >= 0 && (unsigned)a->dev >= r->ndev)
			return usage_error(o->cmd, "--advise '%s': no device dev%d (this run has "
					   "%u: dev0%s)", a->text, a->dev, r->ndev,
					   r->ndev > 1 ? " ..." : "");
		if (a->buf[0] && !has_buffer(wl, a->buf))
			return usage_error(o->cmd, "--advise '%s': workload %s has no buffer '%s' "
					   "(its buffers: %s)", a->text, wl->name, a->buf,
					   wl->buffers);
	}
	if (o->prefetch_dev >= 0 && (unsigned)o->prefetch_dev >= r->ndev)
		return usage_error(o->cmd, "--prefetch=dev%d: no such device (this run has %u)",
				   o->prefetch_dev, r->ndev);
	if (r->dev_mem > (1ull << 40))
		return usage_error(o->cmd, "--device-mem %s: at most 1T",
				   fmt_bytes(b2, sizeof(b2), r->dev_mem));
	return 0;
}

static int run_main(struct run_opts *o, int demo)
{
	struct cli_run run, *r = &run;
	struct cli_snap total;
	struct usvm_caps caps;
	int err, rc = EXIT_OK, want_progress;

	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->err_lock, NULL);
	r->o = o;
	if (!o->workload) {
		fprintf(stderr, "%s %s: which workload? One of:", cli_prog, o->cmd);
		for (unsigned i = 0; i < cli_nworkloads; i++)
			fprintf(stderr, " %s", cli_workloads[i].name);
		fprintf(stderr, "\n(see 'usvm run --help')\n");
		return EXIT_USAGE;
	}
	r->wl = workload_find(o->workload);
	if (!r->wl) {
		fprintf(stderr, "%s %s: unknown workload '%s'; valid workloads:", cli_prog,
			o->cmd, o->workload);
		for (unsigned i = 0; i < cli_nworkloads; i++)
			fprintf(stderr, " %s", cli_workloads[i].name);
		fprintf(stderr, "\n");
		return EXIT_USAGE;
	}
	if (resolve(r, o))
		return EXIT_USAGE;
	if (o->plot && plot_unwritable(o->cmd, o->plot))
		return EXIT_USAGE;
	err = usvm_probe(&caps);
	if (err) {
		explain_setup_error("this machine cannot run usvm", err);
		return EXIT_FAIL;
	}
	if (o->trace) {
		err = usvm_trace_start(o->trace);
		if (err) {
			fprintf(stderr, "%s %s: --trace %s: %s\n", cli_prog, o->cmd, o->trace,
				err == -EBUSY ? "a trace (USVM_TRACE) is already being written"
					      : strerror(-err));
			return EXIT_FAIL;
		}
	}
	if (demo)
		o->explain = 1;
	if (run_setup(r)) {
		run_teardown(r);
		return EXIT_FAIL;
	}
	want_progress = o->progress != 0 && isatty(STDERR_FILENO) && !o->quiet;
	r->mon = monitor_start(r, o->sample_ms, o->plot != NULL, want_progress);
	if (!r->mon) {
		fprintf(stderr, "%s: cannot start the sampler thread\n", cli_prog);
		run_teardown(r);
		return EXIT_FAIL;
	}
	if (o->explain)
		say(r, "usvm demo: managed memory is one pointer that the CPU and devices share.\n"
		    "Each page lives either in system memory or in a device's memory, and usvm\n"
		    "moves it on demand: a device fault migrates a chunk into device memory, and\n"
		    "a CPU touch of a device-resident page is a real userfaultfd page fault that\n"
		    "migrates the device allocation back.  Watch the columns 'to device' and\n"
		    "'to system' below.\n\n");
	print_header(r);
	snap_take(r, &r->last);
	err = r->wl->run(r);
	if (r->in_phase)
		phase_end(r);
	r->elapsed_s = r->nphases ? r->phases[r->nphases - 1].t1 : 0;
	if (err && !run_failed(r))
		run_fail(r, "workload %s failed", r->wl->name);
	monitor_stop(r->mon);
	/* Totals are the counters at the last phase boundary: they add up with
	 * the per-phase deltas exactly. */
	total = r->last;
	if (!o->verbose && r->nphases > r->phase_lines && r->phase_lines) {
		say(r, "  ...  (%u more phases; -v shows every phase)\n", r->nphases - r->phase_lines);
	}
	if (r->wl->explain && !run_failed(r))
		r->wl->explain(r);
	if (o->json)
		report_json(r, &total, stdout);
	else if (!o->quiet)
		report_table(r, &total, stdout);
	if (o->explain && !run_failed(r))
		say(r, "\nNext: 'usvm run stencil -v' (halo ping-pong), 'usvm run oversubscribe'\n"
		    "(evictions), 'usvm run pingpong --plot pp.svg' (device to device moves).\n");
	if (o->plot) {
		unsigned n;
		const struct mon_sample *s = monitor_samples(r->mon, &n);

		if (svg_write(r, s, n, o->plot)) {
			fprintf(stderr, "%s: cannot write %s: %s\n", cli_prog, o->plot,
				strerror(errno));
			rc = EXIT_FAIL;
		} else if (!o->quiet && !o->json) {
			printf("plot: %s (%u samples)\n", o->plot, n);
		}
	}
	if (run_failed(r)) {
		fprintf(stderr, "%s run %s: FAILED: %s\n", cli_prog, r->wl->name, r->errmsg);
		rc = EXIT_FAIL;
	}
	monitor_free(r->mon);
	r->mon = NULL;
	run_teardown(r);
	if (o->trace && !usvm_trace_stop() && !o->quiet && !o->json)
		printf("trace: %s (open it in https://ui.perfetto.dev, or: %s trace %s)\n",
		       o->trace, cli_prog, o->trace);
	pthread_mutex_destroy(&r->err_lock);
	return rc;
}

int cmd_run(int argc, char **argv)
{
	struct run_opts o;
	int rc;

	run_opts_defaults(&o, "run");
	rc = parse_run_args(argc, argv, &o, 1);
	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	return run_main(&o, 0);
}

static const char demo_help[] =
"Usage: usvm demo [options]\n"
"\n"
"A guided tour: runs the stream workload (CPU writes a, a simulated device\n"
"computes b = 3*a + 7, the CPU checks b) and explains, phase by phase, which\n"
"pages migrated between system memory and device memory and why.\n"
"Takes the options of 'usvm run' (see 'usvm run --help').\n";

int cmd_demo(int argc, char **argv)
{
	struct run_opts o;
	int rc, i;

	for (i = 0; i < argc; i++) {
		if (is_help(argv[i])) {
			fputs(demo_help, stdout);
			return EXIT_OK;
		}
	}
	run_opts_defaults(&o, "demo");
	rc = parse_run_args(argc, argv, &o, 0);
	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	o.workload = "stream";
	return run_main(&o, 1);
}

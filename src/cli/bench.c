// SPDX-License-Identifier: MIT
/*
 * usvm CLI: `usvm bench` and bench/migrate_bench - the command line of the
 * benchmark suite (bench_suite.c measures): options, the table, the JSON.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "bench.h"

static const char bench_help[] =
"Usage: %s [options]\n"
"\n"
"The usvm benchmark suite.  Every figure is measured against a baseline doing\n"
"the same work without usvm, in the same run, round after round.\n"
"\n"
"Groups of figures (--only selects):\n"
"  first_touch  write 1 byte per 4 KiB page of a fresh usvm_alloc(256M)\n"
"               vs the same on a fresh mmap() of 256M\n"
"  fault        one CPU read of a device-resident 4 KiB allocation, each timed\n"
"               (median, p99) vs a native write fault on a fresh 4 KiB page\n"
"  migrate      populate (system -> device) and migrate back (a CPU touch of\n"
"               each allocation faults it back) of 4K, 64K and 2M allocations\n"
"               vs memcpy() of the same bytes\n"
"  free         usvm_free() of a written / a device-resident 4 KiB allocation\n"
"               vs free() of a written malloc(4096) block, per call\n"
"  launch       an empty usvm_device_launch() (2 items, 2 device workers;\n"
"               median, p99) vs handing 2 items to a 2-thread pool\n"
"  scaling      CPU faults on device-resident 4 KiB allocations from 2\n"
"               threads (own blocks; same blocks) vs 1 thread\n"
"  read_back    migrate back 64M of 2M / 64K allocations and read every cache\n"
"               line vs memcpy() of the same bytes: what a program pays\n"
"\n"
"Each cell is the median (min-max) over the rounds.  The ratio is usvm /\n"
"baseline within each round: for GB/s and kfault/s above 1 is faster than\n"
"the baseline, for us and ns above 1 is slower.  Sizes are fixed; a figure\n"
"whose rounds run past its time budget (6 s; --quick 1 s) stops with fewer\n"
"rounds.  Data is verified.  The default run takes about 20 s on 2 CPUs.\n"
"\n"
"Options:\n"
"  --rounds N    measured rounds per figure (default 5; --quick 3)\n"
"  --size SIZE   bytes per allocation size in 'migrate' (default 64M; --quick\n"
"                4M): a multiple of 2M up to 1G\n"
"  --only LIST   only these groups, comma separated (e.g. fault,launch)\n"
"  --quick       small sizes: about a second\n"
"  --json        one JSON object on stdout instead of the table\n"
"  -h, --help    this help\n";

struct bench_args {
	int json, quick;
	unsigned rounds;          /* 0: the default */
	size_t size;              /* 0: the default */
	unsigned groups;          /* 0: all */
};

/*
 * "--name VALUE" or "--name=VALUE" at argv[*@i].
 * Return: 0 if it is not --name, else 1 with *@val (NULL when missing).
 */
static int opt_arg(const char *name, int argc, char **argv, int *i, const char **val)
{
	size_t len = strlen(name);
	const char *a = argv[*i];

	if (strncmp(a, name, len) || (a[len] && a[len] != '='))
		return 0;
	if (a[len] == '=')
		*val = a + len + 1;
	else
		*val = *i + 1 < argc ? argv[++*i] : NULL;
	return 1;
}

/* Return: 0, or EXIT_USAGE (said). */
static int parse_only(const char *cmd, const char *list, unsigned *mask)
{
	char buf[256], *tok, *save = NULL;
	unsigned g;

	if (strlen(list) >= sizeof(buf))
		return usage_error(cmd, "--only: list too long");
	strcpy(buf, list);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		for (g = 0; g < bench_ngroups; g++)
			if (!strcmp(tok, bench_groups[g].name))
				break;
		if (g == bench_ngroups)
			return usage_error(cmd, "--only: no group '%s' (groups: first_touch, "
					   "fault, migrate, free, launch, scaling, "
					   "read_back)", tok);
		*mask |= 1u << g;
	}
	if (!*mask)
		return usage_error(cmd, "--only needs a group name");
	return 0;
}

static int parse_rounds(const char *cmd, const char *v, unsigned *out)
{
	char *end;
	unsigned long n;

	if (!v)
		return usage_error(cmd, "--rounds needs a value");
	errno = 0;
	n = *v >= '0' && *v <= '9' ? strtoul(v, &end, 10) : 0;
	if (errno || !n || *end || n > BENCH_MAX_ROUNDS)
		return usage_error(cmd, "--rounds: '%s' is not a number from 1 to %d", v,
				   BENCH_MAX_ROUNDS);
	*out = (unsigned)n;
	return 0;
}

static int parse_size(const char *cmd, const char *v, size_t *out)
{
	if (!v)
		return usage_error(cmd, "--size needs a value");
	if (usvm_parse_size(v, out) || !*out)
		return usage_error(cmd, "--size: '%s' is not a size (examples: 16M, 128M)", v);
	if (*out % (2u << 20) || *out > (1ul << 30))
		return usage_error(cmd, "--size %s: use a multiple of 2M from 2M to 1G", v);
	return 0;
}

/* Return: 0, -1 (help printed), or EXIT_USAGE (said). */
static int parse_args(const char *cmd, const char *who, int argc, char **argv,
		      struct bench_args *a)
{
	const char *v;
	int i, rc = 0;

	memset(a, 0, sizeof(*a));
	for (i = 0; i < argc && !rc; i++) {
		if (is_help(argv[i])) {
			printf(bench_help, who);
			return -1;
		} else if (!strcmp(argv[i], "--json")) {
			a->json = 1;
		} else if (!strcmp(argv[i], "--quick")) {
			a->quick = 1;
		} else if (opt_arg("--rounds", argc, argv, &i, &v) ||
			   opt_arg("--reps", argc, argv, &i, &v)) {
			rc = parse_rounds(cmd, v, &a->rounds);
		} else if (opt_arg("--size", argc, argv, &i, &v)) {
			rc = parse_size(cmd, v, &a->size);
		} else if (opt_arg("--only", argc, argv, &i, &v)) {
			rc = v ? parse_only(cmd, v, &a->groups)
			       : usage_error(cmd, "--only needs a group name");
		} else {
			rc = usage_error(cmd, "unknown option '%s' (see '%s --help')", argv[i],
					 who);
		}
	}
	return rc;
}

static void cfg_init(struct bench_cfg *c, const struct bench_args *a)
{
	int q = a->quick;

	c->quick = q;
	c->rounds = a->rounds ? a->rounds : q ? 3 : 5;
	c->groups = a->groups ? a->groups : (1u << bench_ngroups) - 1;
	c->touch_bytes = q ? (16u << 20) : (256u << 20);
	c->migrate_bytes = a->size ? a->size : q ? (4u << 20) : (64u << 20);
	c->read_bytes = q ? (8u << 20) : (64u << 20);
	c->lat_allocs = q ? 256 : 4096;
	c->free_allocs = q ? 256 : 4096;
	c->launches = q ? 200 : 5000;
	c->scale_allocs = q ? 1024 : 4096;
	c->budget_ns = (q ? 1 : 6) * 1000000000ull;
}

/* ---- output -------------------------------------------------------------- */

struct bench_env {
	struct usvm_caps caps;
	const char *mode;          /* "syscall", "dev", "user" (USVM_UFFD_MODE) */
	const char *mode_text;
	const char *thp;
	unsigned cpus;
	unsigned long fault_threads;   /* 0: unknown */
};

static void env_init(struct bench *b, struct bench_env *e)
{
	struct usvm_mm_stats s;
	struct usvm_option o;
	unsigned i;

	usvm_mm_stats(b->mm, &s);
	e->mode = s.uffd_mode == USVM_UFFD_SYSCALL ? "syscall" :
		  s.uffd_mode == USVM_UFFD_DEV ? "dev" : "user";
	e->mode_text = s.uffd_mode == USVM_UFFD_SYSCALL ? "userfaultfd(2)" :
		       s.uffd_mode == USVM_UFFD_DEV ? "/dev/userfaultfd" : "user-mode-only";
	e->thp = e->caps.thp_mode == 0 ? "never" : e->caps.thp_mode == 1 ? "madvise" :
		 e->caps.thp_mode == 2 ? "always" : "unknown";
	e->cpus = cli_ncpus();
	e->fault_threads = 0;
	for (i = 0; usvm_option_info(i, &o) == 0; i++)
		if (!strcmp(o.name, "fault_threads"))
			e->fault_threads = strtoul(o.value, NULL, 10);
}

/* About 3 significant digits, never an exponent. */
static const char *fmt_num(char *buf, size_t n, double v)
{
	double a = fabs(v);
	int dec = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : a >= 0.1 ? 3 : a >= 0.01 ? 4 : 5;

	if (!isfinite(v))
		snprintf(buf, n, "-");
	else
		snprintf(buf, n, "%.*f", dec, v);
	return buf;
}

/* "median (min-max)", the median followed by @suffix. */
static const char *fmt_cell(char *buf, size_t n, const struct bench_series *s, const char *suffix)
{
	struct bench_stat st;
	char m[32], lo[32], hi[32];

	bench_stat(s, &st);
	if (s->n < 2)
		snprintf(buf, n, "%s%s", fmt_num(m, sizeof(m), st.med), suffix);
	else
		snprintf(buf, n, "%s%s (%s-%s)", fmt_num(m, sizeof(m), st.med), suffix,
			 fmt_num(lo, sizeof(lo), st.min), fmt_num(hi, sizeof(hi), st.max));
	return buf;
}

static void print_header(struct bench *b, const struct bench_env *e)
{
	const struct bench_cfg *c = &b->cfg;

	printf("%s %s: kernel %s, %s, %u CPUs, %lu fault threads, THP %s\n", b->who,
	       USVM_VERSION_STRING, e->caps.kernel, e->mode_text, e->cpus, e->fault_threads,
	       e->thp);
	printf("%s run: %u round%s per figure (fewer past %.0f s); median (min-max) over rounds; "
	       "ratio = usvm / baseline per round\n\n", c->quick ? "quick" : "full", c->rounds,
	       c->rounds == 1 ? "" : "s", (double)c->budget_ns / 1e9);
	printf("%-30s %-9s %-24s %-24s %s\n", "figure", "unit", "usvm", "baseline", "ratio");
	fflush(stdout);
}

static void print_rows(struct bench *b, unsigned from)
{
	char u[64], bl[64], r[64];
	unsigned i;

	for (i = from; i < b->nfigs; i++) {
		const struct bench_fig *f = &b->figs[i];

		if (!f->usvm.n)
			continue;
		printf("%-30s %-9s %-24s %-24s %s\n", f->name, f->unit,
		       fmt_cell(u, sizeof(u), &f->usvm, ""), fmt_cell(bl, sizeof(bl), &f->base, ""),
		       fmt_cell(r, sizeof(r), &f->ratio, "x"));
	}
	fflush(stdout);
}

static void print_legend(struct bench *b)
{
	char v[32];
	unsigned i, k;

	printf("\n%-30s %s\n%-30s %s\n", "figure", "usvm: what is measured", "",
	       "baseline: the same work without usvm");
	for (i = 0; i < b->nfigs; i++) {
		const struct bench_fig *f = &b->figs[i];
		struct bench_stat st;

		printf("%-30s %s\n%-30s %s\n", f->name, f->what, "", f->base_what);
		for (k = 0; k < f->nextra; k++) {
			bench_stat(&f->extra[k].s, &st);
			if (st.med == floor(st.med))    /* counts */
				snprintf(v, sizeof(v), "%.0f", st.med);
			else
				fmt_num(v, sizeof(v), st.med);
			printf("%-30s %s%s %s %s (median)\n", "", k ? "      " : "also: ",
			       f->extra[k].name, v, f->extra[k].unit);
		}
	}
}

/* "median", "min" and "max" over the rounds, into the open object. */
static void json_stat_fields(struct json *j, const struct bench_series *s)
{
	struct bench_stat st;

	bench_stat(s, &st);
	json_dbl(j, "median", st.med);
	json_dbl(j, "min", st.min);
	json_dbl(j, "max", st.max);
}

static void json_stat(struct json *j, const char *key, const struct bench_series *s)
{
	json_obj_begin(j, key);
	json_stat_fields(j, s);
	json_obj_end(j);
}

static void json_fig(struct json *j, const struct bench_fig *f)
{
	unsigned k;

	json_obj_begin(j, f->name);
	json_str(j, "group", f->group);
	json_str(j, "unit", f->unit);
	json_str(j, "better", f->higher_better ? "higher" : "lower");
	json_str(j, "what", f->what);
	json_str(j, "baseline_what", f->base_what);
	json_u64(j, "bytes", f->bytes);
	json_u64(j, "ops", f->ops);
	json_u64(j, "rounds", f->usvm.n);
	json_stat(j, "usvm", &f->usvm);
	json_stat(j, "baseline", &f->base);
	json_stat(j, "ratio", &f->ratio);
	json_obj_begin(j, "extra");
	for (k = 0; k < f->nextra; k++) {
		json_obj_begin(j, f->extra[k].name);
		json_str(j, "unit", f->extra[k].unit);
		json_stat_fields(j, &f->extra[k].s);
		json_obj_end(j);
	}
	json_obj_end(j);
	json_obj_end(j);
}

static void print_json(struct bench *b, const struct bench_env *e, double secs)
{
	const struct bench_cfg *c = &b->cfg;
	struct json j;
	unsigned i;

	json_init(&j, stdout, 1);
	json_obj_begin(&j, NULL);
	json_str(&j, "usvm_version", USVM_VERSION_STRING);
	json_str(&j, "command", "bench");
	json_str(&j, "kernel", e->caps.kernel);
	json_str(&j, "uffd_mode", e->mode);
	json_u64(&j, "cpus", e->cpus);
	json_u64(&j, "fault_threads", e->fault_threads);
	json_str(&j, "thp", e->thp);
	json_bool(&j, "quick", c->quick);
	json_u64(&j, "rounds", c->rounds);
	json_dbl(&j, "budget_s_per_figure", (double)c->budget_ns / 1e9);
	json_str(&j, "ratio", "usvm / baseline of the same round, over the rounds");
	json_u64(&j, "first_touch_bytes", c->touch_bytes);
	json_u64(&j, "migrate_bytes_per_size", c->migrate_bytes);
	json_u64(&j, "read_back_bytes_per_size", c->read_bytes);
	json_obj_begin(&j, "figures");
	for (i = 0; i < b->nfigs; i++)
		json_fig(&j, &b->figs[i]);
	json_obj_end(&j);
	json_dbl(&j, "total_s", secs);
	json_obj_end(&j);
	json_finish(&j);
}

/* ---- the run ------------------------------------------------------------- */

/* Every selected group in order.  Return: EXIT_OK or EXIT_FAIL. */
static int run_groups(struct bench *b, int json)
{
	unsigned g, from;

	for (g = 0; g < bench_ngroups; g++) {
		if (!(b->cfg.groups & (1u << g)))
			continue;
		from = b->nfigs;
		if (bench_groups[g].run(b)) {
			fprintf(stderr, "%s: %s: failed\n", b->who, bench_groups[g].name);
			return EXIT_FAIL;
		}
		if (!json)
			print_rows(b, from);
	}
	return EXIT_OK;
}

int bench_main(const char *cmd, int argc, char **argv)
{
	struct bench_args a;
	struct bench_env e;
	struct bench *b;
	uint64_t t0 = cli_now_ns();
	char who[64];
	int rc, err;

	snprintf(who, sizeof(who), "%s%s%s", cli_prog, cmd ? " " : "", cmd ? cmd : "");
	rc = parse_args(cmd, who, argc, argv, &a);
	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	err = usvm_probe(&e.caps);
	if (err) {
		explain_setup_error("this machine cannot run usvm", err);
		return EXIT_FAIL;
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		fprintf(stderr, "%s: out of memory\n", who);
		return EXIT_FAIL;
	}
	memcpy(b->who, who, sizeof(who));
	cfg_init(&b->cfg, &a);
	rc = EXIT_FAIL;
	if (bench_setup(b))
		goto out;
	env_init(b, &e);
	if (!a.json)
		print_header(b, &e);
	rc = run_groups(b, a.json);
	if (rc == EXIT_OK && a.json) {
		print_json(b, &e, (double)(cli_now_ns() - t0) / 1e9);
	} else if (rc == EXIT_OK) {
		print_legend(b);
		printf("\ntotal %.1f s\n", (double)(cli_now_ns() - t0) / 1e9);
	}
out:
	bench_teardown(b);
	free(b);
	return rc;
}

int cmd_bench(int argc, char **argv)
{
	return bench_main("bench", argc, argv);
}

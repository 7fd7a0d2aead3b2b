// SPDX-License-Identifier: MIT
/*
 * usvm CLI: `usvm trace FILE` - sum up a trace written by USVM_TRACE=FILE or
 * usvm_trace_start(): events by name, migrations by direction and cause, the
 * 2 MiB blocks that moved the most, fault latency percentiles, populate calls
 * by result; --json the same as one object; --plot a heatmap of the bytes
 * migrated per 2 MiB block over time.
 *
 * The library writes the Chrome Trace Event Format with one event per line
 * (src/util/trace.c), so the file is read line by line without a JSON parser:
 * a line that cannot be read is skipped and counted.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"

#define TR_STR 48
#define TR_NAMES 32           /* distinct event names kept (then "other") */
#define TR_GROUPS 64          /* migration groups: from, to, cause */
#define TR_LATS 16            /* fault kinds / devices */
#define TR_POPS 16            /* populate results */
#define TR_BLOCK_SHIFT 21     /* 2 MiB */
#define TR_MAX_LEN (1ull << 40)
#define TR_PLOT_ROWS 64
#define TR_PLOT_BINS 100

struct tr_event {              /* one parsed line */
	char name[TR_STR], ph[8], cause[TR_STR], from[TR_STR], to[TR_STR];
	double ts, dur;        /* microseconds */
	uint64_t addr, len;
	long result;
	int has_range;
};

struct tr_count { char name[TR_STR]; uint64_t n; };

struct tr_group {              /* migrations of one direction and cause */
	char cause[TR_STR], from[TR_STR], to[TR_STR];
	int to_device;
	uint64_t count, bytes, failed;
	double dur;            /* us, of the successful ones */
};

struct tr_mig { double ts; uint64_t addr, len; int to_device; };

struct tr_block {              /* one 2 MiB block; [0] to device, [1] to system */
	uint64_t idx, bytes[2], n[2];
	int used;
};

struct tr_lat { char label[TR_STR]; double *v; size_t n, cap; };

struct tr_pop { long result; uint64_t count, bytes; double dur; };

struct trace_sum {
	const char *path;
	uint64_t lines, events, meta, skipped, first_skipped;
	int header, complete;
	double t0, t1;         /* first start, last end (us) */
	struct tr_count names[TR_NAMES];
	unsigned nnames;
	struct tr_group groups[TR_GROUPS];
	unsigned ngroups;
	struct tr_mig *migs;   /* successful migrations, for the plot */
	size_t nmigs, capmigs;
	struct tr_block *blocks; /* hash on the block index */
	size_t nblocks, capblocks;
	struct tr_block **sorted; /* used blocks, most bytes first */
	struct tr_lat cpu[TR_LATS], dev[TR_LATS]; /* [0]: all */
	unsigned ncpu, ndev;
	struct tr_pop pops[TR_POPS];
	unsigned npops;
};

static const char trace_help[] =
"Usage: usvm trace FILE [--top N] [--plot FILE.svg] [--json]\n"
"\n"
"Sum up a trace: the file that USVM_TRACE=FILE (or usvm_trace_start()) writes,\n"
"in the Chrome Trace Event Format, one event per line.  FILE - reads stdin.\n"
"\n"
"  events          every event by name\n"
"  migrations      by direction (from -> to) and cause: count, bytes, total and\n"
"                  mean duration, GB/s (bytes / total duration); failed ones\n"
"                  are counted apart and move no bytes\n"
"  blocks          the N 2 MiB blocks (address aligned down to 2 MiB) that\n"
"                  moved the most bytes, both directions, with the number of\n"
"                  migrations each way (a migration across blocks is split)\n"
"  fault latency   CPU faults by kind (first_touch, devmem, raced,\n"
"                  timeslice_wait) and device faults by device: p50, p90, p99\n"
"                  (nearest rank) and max of the durations\n"
"  populate calls  by result (0 or -errno)\n"
"  span            from the first event's start to the last event's end\n"
"\n"
"Options:\n"
"  --top N          blocks to list (default 10; 0: none)\n"
"  --plot FILE.svg  a heatmap of the bytes migrated per 2 MiB block (rows: the\n"
"                   64 blocks that moved the most, by address) over time\n"
"                   (100 bins from the first event to the last)\n"
"  --json           print the summary as one JSON object\n"
"  --help, -h       this help\n"
"\n"
"A line that cannot be read is skipped, counted and reported.\n"
"Exit status: 0; 1 the file is missing, unreadable or not a trace, or writing\n"
"the plot failed; 2 usage (also a --plot file that cannot be created).\n"
"Example:\n"
"  USVM_TRACE=t.json usvm run stream -q && usvm trace t.json --plot heat.svg\n";

/* ---- parsing ------------------------------------------------------------ */

/* Where the value of "key": starts in @line, or NULL. */
static const char *find_key(const char *line, const char *key)
{
	char pat[TR_STR];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(line, pat);
	return p ? p + strlen(pat) : NULL;
}

static int get_str(const char *line, const char *key, char *out, size_t n)
{
	const char *p = find_key(line, key);
	size_t o = 0;

	if (!p || *p != '"')
		return -1;
	for (p++; *p && *p != '"' && (unsigned char)*p >= 0x20; p++) {
		if (*p == '\\' && p[1])
			p++;
		if (o + 1 < n)
			out[o++] = *p;
	}
	out[o] = 0;
	if (*p == '"')
		return 0;
	out[0] = 0;
	return -1;
}

static int get_num(const char *line, const char *key, double *v)
{
	const char *p = find_key(line, key);
	char *end;

	if (!p)
		return -1;
	*v = strtod(p, &end);
	return end == p || !isfinite(*v) ? -1 : 0;
}

static int get_u64(const char *line, const char *key, uint64_t *v)
{
	const char *p = find_key(line, key);
	char buf[32], *end;

	if (p && *p == '"') {   /* "addr":"0x7f..." */
		if (get_str(line, key, buf, sizeof(buf)))
			return -1;
		p = buf;
	}
	if (!p || *p == '-' || *p == '+')
		return -1;
	errno = 0;
	*v = strtoull(p, &end, 0);
	return end == p || errno ? -1 : 0;
}

static int is_range_event(const char *name)
{
	return !strncmp(name, "migrate", 7) || !strcmp(name, "populate");
}

/* An "X" event's fields; -1 when a needed one is missing or malformed. */
static int parse_args(const char *line, struct tr_event *e)
{
	double r;

	if (get_num(line, "ts", &e->ts) || get_num(line, "dur", &e->dur) || e->dur < 0 ||
	    !isfinite(e->ts + e->dur))
		return -1;
	get_str(line, "cause", e->cause, sizeof(e->cause));
	get_str(line, "from", e->from, sizeof(e->from));
	get_str(line, "to", e->to, sizeof(e->to));
	if (!get_num(line, "result", &r) && fabs(r) < 1e9)
		e->result = (long)r;
	e->has_range = !get_u64(line, "addr", &e->addr) && !get_u64(line, "len", &e->len) &&
		       e->len <= TR_MAX_LEN && e->addr + e->len >= e->addr;
	return is_range_event(e->name) && !e->has_range ? -1 : 0;
}

/* A whole event line: "{...}" or "{...},", then only white space. */
static int is_whole(const char *line)
{
	size_t n = strlen(line);

	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' ||
		     line[n - 1] == '\t'))
		n--;
	if (n && line[n - 1] == ',')
		n--;
	return line[0] == '{' && n > 1 && line[n - 1] == '}';
}

/* 1 an event to sum up, 0 metadata (or another phase), -1 not readable. */
static int parse_line(const char *line, struct tr_event *e)
{
	memset(e, 0, sizeof(*e));
	while (*line == ' ' || *line == '\t')
		line++;
	if (!is_whole(line) || get_str(line, "name", e->name, sizeof(e->name)) || !e->name[0] ||
	    get_str(line, "ph", e->ph, sizeof(e->ph)))
		return -1;
	if (strcmp(e->ph, "X"))
		return 0;
	return parse_args(line, e) ? -1 : 1;
}

/* ---- tables ------------------------------------------------------------- */

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t n = *cap ? *cap : 64;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	q = realloc(*p, n * elem);
	if (!q)
		return -1;
	*p = q;
	*cap = n;
	return 0;
}

static void count_name(struct trace_sum *s, const char *name)
{
	unsigned i;

	for (i = 0; i < s->nnames; i++)
		if (!strcmp(s->names[i].name, name))
			break;
	if (i == s->nnames) {
		if (i == TR_NAMES)
			i = TR_NAMES - 1;       /* the last one becomes "other" */
		else
			s->nnames++;
		snprintf(s->names[i].name, TR_STR, "%s", i == TR_NAMES - 1 ? "other" : name);
	}
	s->names[i].n++;
}

static int lat_add(struct tr_lat *l, unsigned *n, const char *label, double v)
{
	unsigned i;
	int k;

	for (i = 1; i < *n; i++)
		if (!strcmp(l[i].label, label))
			break;
	if (i == *n) {
		if (i == TR_LATS)
			i = TR_LATS - 1;
		else
			(*n)++;
		snprintf(l[i].label, TR_STR, "%s", i == TR_LATS - 1 ? "other" : label);
	}
	for (k = 0; k < 2; k++) {
		struct tr_lat *x = k ? &l[i] : &l[0];

		if (grow((void **)&x->v, &x->cap, x->n + 1, sizeof(double)))
			return -1;
		x->v[x->n++] = v;
	}
	return 0;
}

static void pop_add(struct trace_sum *s, const struct tr_event *e)
{
	unsigned i;

	for (i = 0; i < s->npops; i++)
		if (s->pops[i].result == e->result)
			break;
	if (i == s->npops) {
		if (i == TR_POPS)
			return;
		s->npops++;
		s->pops[i].result = e->result;
	}
	s->pops[i].count++;
	s->pops[i].bytes += e->len;
	s->pops[i].dur += e->dur;
}

/* ---- 2 MiB blocks ---------------------------------------------------------- */

static struct tr_block *block_slot(struct tr_block *t, size_t cap, uint64_t idx)
{
	size_t i, mask = cap - 1;

	for (i = mix64(idx) & mask; t[i].used && t[i].idx != idx; i = (i + 1) & mask)
		;
	return &t[i];
}

static int blocks_grow(struct trace_sum *s)
{
	size_t cap = s->capblocks ? 2 * s->capblocks : 256, i;
	struct tr_block *t = calloc(cap, sizeof(*t));

	if (!t)
		return -1;
	for (i = 0; i < s->capblocks; i++)
		if (s->blocks[i].used)
			*block_slot(t, cap, s->blocks[i].idx) = s->blocks[i];
	free(s->blocks);
	s->blocks = t;
	s->capblocks = cap;
	return 0;
}

static struct tr_block *block_get(struct trace_sum *s, uint64_t idx)
{
	struct tr_block *b;

	if (2 * (s->nblocks + 1) > s->capblocks && blocks_grow(s))
		return NULL;
	b = block_slot(s->blocks, s->capblocks, idx);
	if (!b->used) {
		b->used = 1;
		b->idx = idx;
		s->nblocks++;
	}
	return b;
}

/* The part of [*a, end) in the 2 MiB block of *a: its bytes; *a moves past it. */
static uint64_t next_piece(uint64_t *a, uint64_t end, uint64_t *idx)
{
	uint64_t bend, part;

	*idx = *a >> TR_BLOCK_SHIFT;
	bend = (*idx + 1) << TR_BLOCK_SHIFT;
	if (!bend || bend > end)
		bend = end;
	part = bend - *a;
	*a = bend;
	return part;
}

static int blocks_add(struct trace_sum *s, uint64_t addr, uint64_t len, int dir)
{
	uint64_t a = addr, idx, part;

	while (a < addr + len) {
		struct tr_block *b;

		part = next_piece(&a, addr + len, &idx);
		b = block_get(s, idx);
		if (!b)
			return -1;
		b->bytes[dir] += part;
		b->n[dir]++;
	}
	return 0;
}

static uint64_t block_bytes(const struct tr_block *b)
{
	return b->bytes[0] + b->bytes[1];
}

/* ---- summing up ------------------------------------------------------------ */

static struct tr_group *group_get(struct trace_sum *s, const struct tr_event *e, int to_dev)
{
	struct tr_group *g;
	unsigned i;

	for (i = 0; i < s->ngroups; i++) {
		g = &s->groups[i];
		if (g->to_device == to_dev && !strcmp(g->cause, e->cause) &&
		    !strcmp(g->from, e->from) && !strcmp(g->to, e->to))
			return g;
	}
	if (s->ngroups == TR_GROUPS)
		return &s->groups[TR_GROUPS - 1]; /* folded into the last */
	g = &s->groups[s->ngroups++];
	g->to_device = to_dev;
	snprintf(g->cause, TR_STR, "%s", e->cause[0] ? e->cause : "unknown");
	snprintf(g->from, TR_STR, "%s", e->from[0] ? e->from : "?");
	snprintf(g->to, TR_STR, "%s", e->to[0] ? e->to : "?");
	return g;
}

static int add_migration(struct trace_sum *s, const struct tr_event *e)
{
	int to_dev = !strcmp(e->name, "migrate_to_device") ? 1 :
		     !strcmp(e->name, "migrate_to_ram") ? 0 : strcmp(e->to, "system") != 0;
	struct tr_group *g = group_get(s, e, to_dev);
	struct tr_mig *m;

	if (e->result) {
		g->failed++;
		return 0;
	}
	g->count++;
	g->bytes += e->len;
	g->dur += e->dur;
	if (grow((void **)&s->migs, &s->capmigs, s->nmigs + 1, sizeof(*m)))
		return -1;
	m = &s->migs[s->nmigs++];
	m->ts = e->ts;
	m->addr = e->addr;
	m->len = e->len;
	m->to_device = to_dev;
	return blocks_add(s, e->addr, e->len, !to_dev);
}

static int add_event(struct trace_sum *s, const struct tr_event *e)
{
	const char *kind;

	if (!s->events || e->ts < s->t0)
		s->t0 = e->ts;
	if (!s->events || e->ts + e->dur > s->t1)
		s->t1 = e->ts + e->dur;
	s->events++;
	count_name(s, e->name);
	if (!strncmp(e->name, "migrate", 7))
		return add_migration(s, e);
	if (!strcmp(e->name, "cpu_fault")) {
		kind = e->cause[0] ? e->cause : "unknown";
		return lat_add(s->cpu, &s->ncpu, kind, e->dur);
	}
	if (!strcmp(e->name, "device_fault")) {
		kind = e->from[0] ? e->from : "unknown";
		return lat_add(s->dev, &s->ndev, kind, e->dur);
	}
	if (!strcmp(e->name, "populate"))
		pop_add(s, e);
	return 0;
}

/* The header line: it may carry the first event after the '['. */
static int take_header(struct trace_sum *s, const char *line, const char **rest)
{
	const char *p = strstr(line, "\"traceEvents\"");

	if (!p || !strchr(p, '['))
		return -1;
	s->header = 1;
	for (p = strchr(p, '[') + 1; *p == ' ' || *p == '\t'; p++)
		;
	*rest = p;
	return 0;
}

static int is_blank(const char *p)
{
	for (; *p; p++)
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			return 0;
	return 1;
}

/* One line: 0, -1 out of memory, -2 not a trace (before any header). */
static int take_line(struct trace_sum *s, const char *line)
{
	struct tr_event e;
	int rc;

	if (is_blank(line))
		return 0;
	if (!s->header) {
		if (take_header(s, line, &line))
			return -2;
		if (is_blank(line))
			return 0;
	}
	if (line[0] == ']') {
		s->complete = 1;
		return 0;
	}
	rc = parse_line(line, &e);
	if (rc < 0) {
		if (!s->skipped++)
			s->first_skipped = s->lines;
		return 0;
	}
	if (rc == 0) {
		s->meta++;
		return 0;
	}
	return add_event(s, &e);
}

static int read_trace(struct trace_sum *s, FILE *f)
{
	char *line = NULL;
	size_t cap = 0;
	int rc = 0;

	errno = 0;
	while (!rc && getline(&line, &cap, f) >= 0) {
		s->lines++;
		rc = take_line(s, line);
	}
	free(line);
	if (rc == -1)
		fprintf(stderr, "%s trace: %s: out of memory\n", cli_prog, s->path);
	else if (!rc && ferror(f))
		fprintf(stderr, "%s trace: %s: %s\n", cli_prog, s->path, strerror(errno));
	else if (rc == -2 || !s->header)
		fprintf(stderr, "%s trace: %s: not a usvm trace (%s)\n", cli_prog, s->path,
			s->lines ? "no \"traceEvents\" header: expected the Chrome Trace Event "
			"Format that USVM_TRACE=FILE writes" : "the file is empty");
	else if (!s->events && !s->meta && s->skipped)
		fprintf(stderr, "%s trace: %s: not a usvm trace (none of its %" PRIu64
			" lines is an event)\n", cli_prog, s->path, s->lines);
	else
		return 0;
	return -1;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int cmp_group(const void *a, const void *b)
{
	const struct tr_group *x = a, *y = b;
	int c;

	if (x->to_device != y->to_device)
		return y->to_device - x->to_device;
	c = strcmp(x->from, y->from);
	if (!c)
		c = strcmp(x->to, y->to);
	return c ? c : strcmp(x->cause, y->cause);
}

static int cmp_block_bytes(const void *a, const void *b)
{
	const struct tr_block *x = *(struct tr_block *const *)a, *y = *(struct tr_block *const *)b;

	if (block_bytes(x) != block_bytes(y))
		return block_bytes(x) < block_bytes(y) ? 1 : -1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int cmp_count(const void *a, const void *b)
{
	return strcmp(((const struct tr_count *)a)->name, ((const struct tr_count *)b)->name);
}

static int cmp_pop(const void *a, const void *b)
{
	long x = ((const struct tr_pop *)a)->result, y = ((const struct tr_pop *)b)->result;

	return x == y ? 0 : !x ? -1 : !y ? 1 : x < y ? 1 : -1;   /* 0, -1, -2, ... */
}

/* Sort what is printed: blocks by bytes, latencies, groups, names. */
static int finish(struct trace_sum *s)
{
	size_t i, n = 0;

	s->sorted = malloc((s->nblocks ? s->nblocks : 1) * sizeof(*s->sorted));
	if (!s->sorted)
		return -1;
	for (i = 0; i < s->capblocks; i++)
		if (s->blocks[i].used)
			s->sorted[n++] = &s->blocks[i];
	qsort(s->sorted, n, sizeof(*s->sorted), cmp_block_bytes);
	for (i = 0; i < s->ncpu; i++)
		if (s->cpu[i].n)
			qsort(s->cpu[i].v, s->cpu[i].n, sizeof(double), cmp_dbl);
	for (i = 0; i < s->ndev; i++)
		if (s->dev[i].n)
			qsort(s->dev[i].v, s->dev[i].n, sizeof(double), cmp_dbl);
	qsort(s->groups, s->ngroups, sizeof(s->groups[0]), cmp_group);
	qsort(s->names, s->nnames, sizeof(s->names[0]), cmp_count);
	qsort(s->pops, s->npops, sizeof(s->pops[0]), cmp_pop);
	return 0;
}

static void sum_free(struct trace_sum *s)
{
	unsigned i;

	for (i = 0; i < TR_LATS; i++) {
		free(s->cpu[i].v);
		free(s->dev[i].v);
	}
	free(s->migs);
	free(s->blocks);
	free(s->sorted);
}

/* ---- figures ---------------------------------------------------------------- */

/* Nearest rank: the smallest value with at least @p percent at or below it. */
static double pct(const struct tr_lat *l, unsigned p)
{
	size_t k = (l->n * p + 99) / 100;

	return l->n ? l->v[k ? k - 1 : 0] : 0;
}

static double gbps(uint64_t bytes, double us)
{
	return us > 0 ? (double)bytes / us / 1e3 : 0;
}

static const char *fmt_us(char *buf, size_t n, double us)
{
	if (us < 10)
		snprintf(buf, n, "%.2f us", us);
	else if (us < 1000)
		snprintf(buf, n, "%.1f us", us);
	else if (us < 1e6)
		snprintf(buf, n, "%.2f ms", us / 1e3);
	else
		snprintf(buf, n, "%.2f s", us / 1e6);
	return buf;
}

struct tr_total { uint64_t count, bytes, failed; double dur; };

static struct tr_total dir_total(const struct trace_sum *s, int to_device)
{
	struct tr_total t = { 0, 0, 0, 0 };
	unsigned i;

	for (i = 0; i < s->ngroups; i++) {
		if (s->groups[i].to_device != to_device)
			continue;
		t.count += s->groups[i].count;
		t.bytes += s->groups[i].bytes;
		t.failed += s->groups[i].failed;
		t.dur += s->groups[i].dur;
	}
	return t;
}

static uint64_t all_failed(const struct trace_sum *s)
{
	return dir_total(s, 0).failed + dir_total(s, 1).failed;
}

/* ---- text --------------------------------------------------------------------- */

static void print_header(const struct trace_sum *s)
{
	char a[32], b[32], c[32], n[32];

	printf("Trace %s: %s events", s->path, fmt_count(n, sizeof(n), s->events));
	if (s->events)
		printf(" in %s (from %s to %s after the trace started)",
		       fmt_us(a, sizeof(a), s->t1 - s->t0), fmt_us(b, sizeof(b), s->t0),
		       fmt_us(c, sizeof(c), s->t1));
	printf("\n  %" PRIu64 " lines: %" PRIu64 " events, %" PRIu64 " metadata, %" PRIu64
	       " skipped (not readable)", s->lines, s->events, s->meta, s->skipped);
	if (s->skipped)
		printf(", the first on line %" PRIu64, s->first_skipped);
	putchar('\n');
	if (!s->complete)
		printf("  note: no closing ']}': the program may still be running, or died "
		       "while writing\n");
}

static void print_names(const struct trace_sum *s)
{
	unsigned i;

	printf("\nEvents by name\n");
	if (!s->nnames)
		printf("  none\n");
	for (i = 0; i < s->nnames; i++)
		printf("  %-20s %10" PRIu64 "\n", s->names[i].name, s->names[i].n);
}

static void print_mig_row(const char *dir, const char *cause, uint64_t count, uint64_t bytes,
			  double dur)
{
	char b[32], t[32], m[32];

	printf("  %-20s %-14s %7" PRIu64 " %11s %11s %11s %8.2f\n", dir, cause, count,
	       fmt_bytes(b, sizeof(b), bytes), fmt_us(t, sizeof(t), dur),
	       fmt_us(m, sizeof(m), count ? dur / (double)count : 0), gbps(bytes, dur));
}

static void print_migrations(const struct trace_sum *s)
{
	unsigned i;
	int d;

	printf("\n%-22s %-14s %7s %11s %11s %11s %8s\n", "Migrations", "cause", "count", "bytes",
	       "time", "mean", "GB/s");
	if (!s->ngroups)
		printf("  none\n");
	for (i = 0; i < s->ngroups; i++) {
		const struct tr_group *g = &s->groups[i];
		char dir[2 * TR_STR + 8];

		snprintf(dir, sizeof(dir), "%s -> %s", g->from, g->to);
		print_mig_row(dir, g->cause, g->count, g->bytes, g->dur);
	}
	for (d = 1; s->ngroups && d >= 0; d--) {
		struct tr_total t = dir_total(s, d);

		print_mig_row(d ? "to devices" : "to system", "all", t.count, t.bytes, t.dur);
	}
	if (all_failed(s))
		printf("  failed (not counted above): %" PRIu64 "\n", all_failed(s));
}

static void print_blocks(const struct trace_sum *s, unsigned top)
{
	unsigned i, n = s->nblocks < top ? (unsigned)s->nblocks : top;
	char a[32], b[32], c[32];

	if (!top)
		return;
	printf("\n2 MiB blocks by bytes moved: top %u of %s\n", n,
	       fmt_count(c, sizeof(c), s->nblocks));
	if (!n) {
		printf("  none\n");
		return;
	}
	printf("  %-18s %11s %10s %10s\n", "block", "bytes", "to device", "to system");
	for (i = 0; i < n; i++) {
		const struct tr_block *k = s->sorted[i];

		snprintf(a, sizeof(a), "0x%" PRIx64, k->idx << TR_BLOCK_SHIFT);
		printf("  %-18s %11s %10" PRIu64 " %10" PRIu64 "\n", a,
		       fmt_bytes(b, sizeof(b), block_bytes(k)), k->n[0], k->n[1]);
	}
}

static void print_lats(const char *title, const struct tr_lat *l, unsigned n)
{
	char a[32], b[32], c[32], d[32];
	unsigned i;

	printf("\n%-20s %8s %11s %11s %11s %11s\n", title, "count", "p50", "p90", "p99", "max");
	if (!l[0].n) {
		printf("  none\n");
		return;
	}
	for (i = 0; i < n; i++)
		printf("  %-18s %8zu %11s %11s %11s %11s\n", l[i].label, l[i].n,
		       fmt_us(a, sizeof(a), pct(&l[i], 50)), fmt_us(b, sizeof(b), pct(&l[i], 90)),
		       fmt_us(c, sizeof(c), pct(&l[i], 99)), fmt_us(d, sizeof(d), pct(&l[i], 100)));
}

static void print_pops(const struct trace_sum *s)
{
	char r[96], b[32], m[32];
	unsigned i;

	printf("\n%-34s %8s %11s %11s\n", "Populate calls by result", "count", "bytes", "mean");
	if (!s->npops)
		printf("  none\n");
	for (i = 0; i < s->npops; i++) {
		const struct tr_pop *p = &s->pops[i];

		if (p->result)
			snprintf(r, sizeof(r), "%ld (%s)", p->result,
				 p->result < 0 ? strerror((int)-p->result) : "?");
		else
			snprintf(r, sizeof(r), "0 (ok)");
		printf("  %-32s %8" PRIu64 " %11s %11s\n", r, p->count,
		       fmt_bytes(b, sizeof(b), p->bytes), fmt_us(m, sizeof(m), p->dur / (double)p->count));
	}
}

static void print_summary(const struct trace_sum *s, unsigned top)
{
	print_header(s);
	print_names(s);
	print_migrations(s);
	print_blocks(s, top);
	print_lats("CPU fault latency", s->cpu, s->ncpu);
	print_lats("Device fault latency", s->dev, s->ndev);
	print_pops(s);
}

/* ---- JSON --------------------------------------------------------------------- */

static void json_mig(struct json *j, const char *key, const struct tr_group *g,
		     const struct tr_total *t)
{
	uint64_t count = g ? g->count : t->count, bytes = g ? g->bytes : t->bytes;
	double dur = g ? g->dur : t->dur;

	json_obj_begin(j, key);
	if (g) {
		json_str(j, "direction", g->to_device ? "to_device" : "to_system");
		json_str(j, "from", g->from);
		json_str(j, "to", g->to);
		json_str(j, "cause", g->cause);
	}
	json_u64(j, "count", count);
	json_u64(j, "bytes", bytes);
	json_dbl(j, "total_us", dur);
	json_dbl(j, "mean_us", count ? dur / (double)count : 0);
	json_dbl(j, "gb_per_s", gbps(bytes, dur));
	json_u64(j, "failed", g ? g->failed : t->failed);
	json_obj_end(j);
}

static void json_migrations(struct json *j, const struct trace_sum *s)
{
	struct tr_total to_dev = dir_total(s, 1), to_sys = dir_total(s, 0);
	unsigned i;

	json_arr_begin(j, "migrations");
	for (i = 0; i < s->ngroups; i++)
		json_mig(j, NULL, &s->groups[i], NULL);
	json_arr_end(j);
	json_obj_begin(j, "migration_totals");
	json_mig(j, "to_device", NULL, &to_dev);
	json_mig(j, "to_system", NULL, &to_sys);
	json_obj_end(j);
}

static void json_blocks(struct json *j, const struct trace_sum *s, unsigned top)
{
	unsigned i, n = s->nblocks < top ? (unsigned)s->nblocks : top;
	char a[32];

	json_u64(j, "blocks_moved", s->nblocks);
	json_arr_begin(j, "top_blocks");
	for (i = 0; i < n; i++) {
		const struct tr_block *k = s->sorted[i];

		snprintf(a, sizeof(a), "0x%" PRIx64, k->idx << TR_BLOCK_SHIFT);
		json_obj_begin(j, NULL);
		json_str(j, "addr", a);
		json_u64(j, "bytes", block_bytes(k));
		json_u64(j, "bytes_to_device", k->bytes[0]);
		json_u64(j, "bytes_to_system", k->bytes[1]);
		json_u64(j, "to_device", k->n[0]);
		json_u64(j, "to_system", k->n[1]);
		json_obj_end(j);
	}
	json_arr_end(j);
}

static void json_lats(struct json *j, const char *key, const struct tr_lat *l, unsigned n)
{
	unsigned i;

	json_obj_begin(j, key);
	for (i = 0; i < n; i++) {
		if (!l[i].n)
			continue;
		json_obj_begin(j, l[i].label);
		json_u64(j, "count", l[i].n);
		json_dbl(j, "p50", pct(&l[i], 50));
		json_dbl(j, "p90", pct(&l[i], 90));
		json_dbl(j, "p99", pct(&l[i], 99));
		json_dbl(j, "max", pct(&l[i], 100));
		json_obj_end(j);
	}
	json_obj_end(j);
}

static void json_pops(struct json *j, const struct trace_sum *s)
{
	unsigned i;

	json_arr_begin(j, "populate");
	for (i = 0; i < s->npops; i++) {
		const struct tr_pop *p = &s->pops[i];

		json_obj_begin(j, NULL);
		json_i64(j, "result", p->result);
		if (p->result < 0)
			json_str(j, "error", strerror((int)-p->result));
		else
			json_null(j, "error");
		json_u64(j, "count", p->count);
		json_u64(j, "bytes", p->bytes);
		json_dbl(j, "total_us", p->dur);
		json_obj_end(j);
	}
	json_arr_end(j);
}

static void json_summary(const struct trace_sum *s, unsigned top)
{
	struct json j;
	unsigned i;

	json_init(&j, stdout, 1);
	json_obj_begin(&j, NULL);
	json_str(&j, "command", "trace");
	json_str(&j, "file", s->path);
	json_u64(&j, "lines", s->lines);
	json_u64(&j, "events", s->events);
	json_u64(&j, "metadata", s->meta);
	json_u64(&j, "skipped_lines", s->skipped);
	json_bool(&j, "complete", s->complete);
	json_dbl(&j, "first_us", s->t0);
	json_dbl(&j, "last_us", s->t1);
	json_dbl(&j, "span_us", s->t1 - s->t0);
	json_obj_begin(&j, "events_by_name");
	for (i = 0; i < s->nnames; i++)
		json_u64(&j, s->names[i].name, s->names[i].n);
	json_obj_end(&j);
	json_migrations(&j, s);
	json_blocks(&j, s, top);
	json_lats(&j, "cpu_fault_latency_us", s->cpu, s->ncpu);
	json_lats(&j, "device_fault_latency_us", s->dev, s->ndev);
	json_pops(&j, s);
	json_obj_end(&j);
	json_finish(&j);
}

/* ---- --plot: the heatmap ----------------------------------------------------- */

struct heat {
	const struct trace_sum *s;
	struct tr_block **rows;    /* by address */
	unsigned nrows, nbins;
	double t0, bin;            /* us */
	double *cell;              /* [row][bin][0 to device, 1 to system], bytes */
	double max;                /* the largest cell, both directions */
	double x, y, w, h, rh;     /* plot area, row height */
};

static int cmp_block_addr(const void *a, const void *b)
{
	uint64_t x = (*(struct tr_block *const *)a)->idx, y = (*(struct tr_block *const *)b)->idx;

	return x < y ? -1 : x > y;
}

static int heat_row(const struct heat *hm, uint64_t idx)
{
	unsigned lo = 0, hi = hm->nrows;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;

		if (hm->rows[mid]->idx == idx)
			return (int)mid;
		if (hm->rows[mid]->idx < idx)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static void heat_add(struct heat *hm, const struct tr_mig *m)
{
	unsigned b = (unsigned)fmin((m->ts - hm->t0) / hm->bin, hm->nbins - 1);
	uint64_t a = m->addr, idx, part;
	int r;

	while (a < m->addr + m->len) {
		part = next_piece(&a, m->addr + m->len, &idx);
		r = heat_row(hm, idx);
		if (r >= 0)
			hm->cell[((size_t)r * hm->nbins + b) * 2 + !m->to_device] += (double)part;
	}
}

static int heat_build(struct heat *hm, const struct trace_sum *s)
{
	size_t i;

	memset(hm, 0, sizeof(*hm));
	hm->s = s;
	hm->nrows = s->nblocks < TR_PLOT_ROWS ? (unsigned)s->nblocks : TR_PLOT_ROWS;
	hm->nbins = TR_PLOT_BINS;
	hm->t0 = s->t0;
	hm->bin = s->t1 > s->t0 ? (s->t1 - s->t0) / hm->nbins : 1;
	hm->rows = malloc((hm->nrows + 1) * sizeof(*hm->rows));
	hm->cell = calloc((size_t)(hm->nrows + 1) * hm->nbins * 2, sizeof(double));
	if (!hm->rows || !hm->cell)
		return -1;
	memcpy(hm->rows, s->sorted, hm->nrows * sizeof(*hm->rows));
	qsort(hm->rows, hm->nrows, sizeof(*hm->rows), cmp_block_addr);
	for (i = 0; i < s->nmigs; i++)
		heat_add(hm, &s->migs[i]);
	for (i = 0; i < (size_t)hm->nrows * hm->nbins; i++)
		hm->max = fmax(hm->max, hm->cell[2 * i] + hm->cell[2 * i + 1]);
	hm->rh = fmax(6, fmin(40, floor(480.0 / (hm->nrows ? hm->nrows : 1))));
	hm->x = 140;
	hm->y = 70;
	hm->w = 700;
	hm->h = hm->rh * (hm->nrows ? hm->nrows : 8);
	return 0;
}

/* Light yellow to dark red, for 0 < @f <= 1. */
static void heat_color(double f, char *out, size_t n)
{
	static const unsigned char stop[][3] = {
		{ 255, 237, 160 }, { 254, 178, 76 }, { 253, 141, 60 },
		{ 240, 59, 32 }, { 189, 0, 38 }, { 110, 0, 30 },
	};
	double x = fmin(fmax(f, 0), 1) * 5;
	unsigned i = x >= 5 ? 4 : (unsigned)x, k, c[3];

	x -= i;
	for (k = 0; k < 3; k++)
		c[k] = (unsigned)lround(stop[i][k] + (stop[i + 1][k] - stop[i][k]) * x);
	snprintf(out, n, "#%02x%02x%02x", c[0], c[1], c[2]);
}

/* A "nice" tick step for a range of @span with about @n ticks. */
static double tick_step(double span, int n)
{
	double raw = span / n, mag, f;

	if (raw <= 0)
		return 1;
	mag = pow(10, floor(log10(raw)));
	f = raw / mag;
	f = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
	return f * mag;
}

static void heat_cells(FILE *f, const struct heat *hm, const char *unit, double scale)
{
	char col[8], b0[32], b1[32], t[64];
	unsigned r, b;

	for (r = 0; r < hm->nrows; r++) {
		for (b = 0; b < hm->nbins; b++) {
			const double *c = &hm->cell[((size_t)r * hm->nbins + b) * 2];

			if (c[0] + c[1] <= 0)
				continue;
			heat_color((c[0] + c[1]) / hm->max, col, sizeof(col));
			fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
				"fill=\"%s\"><title>0x%" PRIx64 " at %.4g %s: ",
				hm->x + hm->w * b / hm->nbins, hm->y + hm->rh * r,
				hm->w / hm->nbins, hm->rh, col, hm->rows[r]->idx << TR_BLOCK_SHIFT,
				(hm->t0 + hm->bin * b) / scale, unit);
			snprintf(t, sizeof(t), "%s to devices, %s to system",
				 fmt_bytes(b0, sizeof(b0), (uint64_t)c[0]),
				 fmt_bytes(b1, sizeof(b1), (uint64_t)c[1]));
			xml_escape(f, t);
			fputs("</title></rect>\n", f);
		}
	}
}

static void heat_xaxis(FILE *f, const struct heat *hm, const char *unit, double scale)
{
	double lo = hm->t0 / scale, span = hm->bin * hm->nbins / scale;
	double step = tick_step(span, 8), v;

	for (v = ceil(lo / step - 1e-9) * step; v <= lo + span * (1 + 1e-9); v += step) {
		double x = hm->x + hm->w * (v - lo) / span;

		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\"/>\n",
			x, hm->y + hm->h, x, hm->y + hm->h + 4);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", x,
			hm->y + hm->h + 16, v);
	}
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\">"
		"time since the trace started (%s)</text>\n", hm->x + hm->w / 2,
		hm->y + hm->h + 34, unit);
}

static void heat_yaxis(FILE *f, const struct heat *hm)
{
	unsigned r, every = (unsigned)ceil(11 / hm->rh);

	for (r = 0; r < hm->nrows; r += every)
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-family=\"monospace\" "
			"font-size=\"%.0f\">0x%" PRIx64 "</text>\n", hm->x - 6,
			hm->y + hm->rh * (r + 0.5) + 3.5, fmin(11, hm->rh + 1),
			hm->rows[r]->idx << TR_BLOCK_SHIFT);
	fprintf(f, "<text transform=\"translate(%.1f %.1f) rotate(-90)\" text-anchor=\"middle\" "
		"font-size=\"12\">2 MiB block (address)</text>\n", 18.0, hm->y + hm->h / 2);
}

static void heat_legend(FILE *f, const struct heat *hm)
{
	double x = hm->x + hm->w + 30, y = hm->y, h = fmin(200, fmax(hm->h, 100));
	char col[8], b[32];
	int i;

	fputs("<defs><linearGradient id=\"scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">\n", f);
	for (i = 0; i <= 10; i++) {
		heat_color(i / 10.0, col, sizeof(col));
		fprintf(f, "<stop offset=\"%.1f\" stop-color=\"%s\"/>\n", i / 10.0, col);
	}
	fputs("</linearGradient></defs>\n", f);
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">bytes per cell</text>\n", x, y - 8);
	fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"16\" height=\"%.1f\" fill=\"url(#scale)\" "
		"stroke=\"#888\"/>\n", x, y, h);
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", x + 22, y + 10,
		fmt_bytes(b, sizeof(b), (uint64_t)hm->max));
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">&gt; 0</text>\n", x + 22, y + h);
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#666\">white: none</text>\n", x, y + h + 20);
}

static void heat_frame(FILE *f, const struct heat *hm, double W, double H)
{
	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n");
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%.0f\" "
		"height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" "
		"font-size=\"11\">\n", W, H, W, H);
	fputs("<title>usvm trace ", f);
	xml_escape(f, hm->s->path);
	fputs(": bytes migrated per 2 MiB block over time</title>\n", f);
	fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
	fprintf(f, "<text x=\"%.0f\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">"
		"Bytes migrated per 2 MiB block: ", W / 2);
	xml_escape(f, hm->s->path);
	fputs("</text>\n", f);
	fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
		"stroke=\"#888\"/>\n", hm->x, hm->y, hm->w, hm->h);
}

static void heat_note(FILE *f, const struct heat *hm, double H, const char *unit, double scale)
{
	char n[32], note[256];

	snprintf(note, sizeof(note), "rows: the %u of %s blocks that moved the most bytes, by "
		 "address; columns: %u bins of %.4g %s; both directions (hover a cell)",
		 hm->nrows, fmt_count(n, sizeof(n), hm->s->nblocks), hm->nbins, hm->bin / scale,
		 unit);
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#666\">", hm->x, H - 12);
	xml_escape(f, note);
	fputs("</text>\n", f);
}

static int heat_write(const struct heat *hm, const char *path)
{
	double W = 1000, H = hm->y + fmax(hm->h, 150) + 70;
	double t1 = hm->t0 + hm->bin * hm->nbins;
	double scale = t1 < 2e3 ? 1 : t1 < 2e6 ? 1e3 : 1e6;
	const char *unit = scale == 1 ? "us" : scale == 1e3 ? "ms" : "s";
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	heat_frame(f, hm, W, H);
	if (hm->nrows) {
		heat_cells(f, hm, unit, scale);
		heat_yaxis(f, hm);
		heat_legend(f, hm);
	} else {
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#888\">"
			"no migrations in this trace</text>\n", hm->x + hm->w / 2,
			hm->y + hm->h / 2);
	}
	heat_xaxis(f, hm, unit, scale);
	heat_note(f, hm, H, unit, scale);
	fputs("</svg>\n", f);
	if (ferror(f)) {
		fclose(f);
		return -1;
	}
	return fclose(f) ? -1 : 0;
}

static int write_plot(const struct trace_sum *s, const char *path)
{
	struct heat hm;
	int rc = heat_build(&hm, s);

	errno = rc ? ENOMEM : 0;
	if (!rc)
		rc = heat_write(&hm, path);
	if (rc)
		fprintf(stderr, "%s trace: cannot write %s: %s\n", cli_prog, path, strerror(errno));
	free(hm.rows);
	free(hm.cell);
	return rc;
}

/* ---- the command ---------------------------------------------------------------- */

struct trace_opts {
	const char *file, *plot;
	unsigned long top;
	int json;
};

/* Fail before reading, as `usvm run` does, when --plot cannot be written. */
static int plot_unwritable(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');

	if (!access(path, F_OK))
		return access(path, W_OK) ? usage_error("trace", "--plot %s: %s", path,
							strerror(errno)) : 0;
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path + 1) : 1,
		 slash ? path : ".");
	if (access(dir, W_OK | X_OK))
		return usage_error("trace", "--plot %s: cannot create it in %s: %s", path, dir,
				   strerror(errno));
	return 0;
}

/* 0, -1 (--help printed) or EXIT_USAGE. */
static int parse_trace_args(int argc, char **argv, struct trace_opts *o)
{
	int i;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *eq = strchr(a, '='), *val;
		size_t l = eq && !strncmp(a, "--", 2) ? (size_t)(eq - a) : strlen(a);

		if (is_help(a)) {
			fputs(trace_help, stdout);
			return -1;
		}
		if ((a[0] != '-' || !a[1]) && !o->file) {
			o->file = a;
			continue;
		}
		if (a[0] != '-' || !a[1])
			return usage_error("trace", "unexpected argument '%s'", a);
		if (!strncmp(a, "--json", l) && l == 6) {
			if (l != strlen(a))
				return usage_error("trace", "option --json takes no value");
			o->json = 1;
			continue;
		}
		if (!(l == 5 && !strncmp(a, "--top", 5)) && !(l == 6 && !strncmp(a, "--plot", 6)))
			return usage_error("trace", "unknown option '%s' (see 'usvm trace --help')", a);
		val = l != strlen(a) ? a + l + 1 : i + 1 < argc ? argv[++i] : NULL;
		if (!val || !*val)
			return usage_error("trace", "option %.*s needs a value", (int)l, a);
		if (l == 6)
			o->plot = val;
		else if (cli_parse_ulong(val, &o->top) || o->top > 1000000)
			return usage_error("trace", "--top: '%s' is not a number from 0 to 1000000",
					   val);
	}
	if (!o->file)
		return usage_error("trace", "no trace file given (usage: usvm trace FILE "
				   "[--top N] [--plot FILE.svg] [--json])");
	return o->plot ? plot_unwritable(o->plot) : 0;
}

static int summarize(struct trace_sum *s, const struct trace_opts *o)
{
	FILE *f = strcmp(o->file, "-") ? fopen(o->file, "r") : stdin;
	int rc;

	if (!f) {
		fprintf(stderr, "%s trace: %s: %s\n", cli_prog, o->file, strerror(errno));
		return EXIT_FAIL;
	}
	rc = read_trace(s, f);
	if (f != stdin)
		fclose(f);
	if (rc)
		return EXIT_FAIL;
	if (finish(s)) {
		fprintf(stderr, "%s trace: out of memory\n", cli_prog);
		return EXIT_FAIL;
	}
	if (s->skipped)
		fprintf(stderr, "%s trace: %s: skipped %" PRIu64 " line%s that could not be read "
			"(the first: line %" PRIu64 ")\n", cli_prog, s->path, s->skipped,
			s->skipped > 1 ? "s" : "", s->first_skipped);
	if (o->json)
		json_summary(s, (unsigned)o->top);
	else
		print_summary(s, (unsigned)o->top);
	return o->plot && write_plot(s, o->plot) ? EXIT_FAIL : EXIT_OK;
}

int cmd_trace(int argc, char **argv)
{
	struct trace_opts o = { NULL, NULL, 10, 0 };
	struct trace_sum *s;
	int rc = parse_trace_args(argc, argv, &o);

	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	s = calloc(1, sizeof(*s));
	if (!s) {
		fprintf(stderr, "%s trace: out of memory\n", cli_prog);
		return EXIT_FAIL;
	}
	s->path = strcmp(o.file, "-") ? o.file : "(stdin)";
	snprintf(s->cpu[0].label, TR_STR, "all");
	snprintf(s->dev[0].label, TR_STR, "all");
	s->ncpu = s->ndev = 1;
	rc = summarize(s, &o);
	sum_free(s);
	free(s);
	return rc;
}

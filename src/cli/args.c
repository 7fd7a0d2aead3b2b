// SPDX-License-Identifier: MIT
/* usvm CLI: parsing sizes, numbers, chunk lists and the options of `run`. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

int cli_parse_ulong(const char *s, unsigned long *out)
{
	unsigned long v;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

int cli_parse_chunks(const char *s, size_t chunks[4], char *err, size_t errlen)
{
	char buf[128], *tok, *save = NULL;
	size_t v[4] = { 0 };
	unsigned n = 0, i;

	if (strlen(s) >= sizeof(buf)) {
		snprintf(err, errlen, "chunk list too long");
		return -EINVAL;
	}
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (n == 4) {
			snprintf(err, errlen, "at most 4 chunk sizes");
			return -EINVAL;
		}
		if (usvm_parse_size(tok, &v[n])) {
			snprintf(err, errlen, "'%s' is not a size (examples: 2M, 64K, 4K)", tok);
			return -EINVAL;
		}
		if (v[n] < USVM_PAGE_SIZE || v[n] > USVM_BLOCK_SIZE || (v[n] & (v[n] - 1))) {
			snprintf(err, errlen, "chunk size '%s' must be a power of two from 4K to 2M", tok);
			return -EINVAL;
		}
		if (n && v[n] >= v[n - 1]) {
			snprintf(err, errlen, "chunk sizes must be in descending order");
			return -EINVAL;
		}
		n++;
	}
	if (!n) {
		snprintf(err, errlen, "empty chunk list");
		return -EINVAL;
	}
	if (v[n - 1] != USVM_PAGE_SIZE) {
		snprintf(err, errlen, "the last chunk size must be 4K (every fault must be servable)");
		return -EINVAL;
	}
	for (i = 0; i < 4; i++)
		chunks[i] = v[i];
	return 0;
}

/* "dev3" -> 3; -1 when not a device name. */
static int parse_devname(const char *s)
{
	unsigned long n;

	if (strncmp(s, "dev", 3) || cli_parse_ulong(s + 3, &n) || n >= CLI_MAX_DEVICES)
		return -1;
	return (int)n;
}

int cli_parse_advice(const char *s, struct cli_advice *a, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		enum usvm_advice advice;
		int loc;        /* 0 none, 1 system or devN, 2 devN */
	} kinds[] = {
		{ "preferred", USVM_ADVISE_PREFERRED_LOCATION, 1 },
		{ "unset-preferred", USVM_ADVISE_UNSET_PREFERRED_LOCATION, 0 },
		{ "accessed-by", USVM_ADVISE_ACCESSED_BY, 2 },
		{ "unset-accessed-by", USVM_ADVISE_UNSET_ACCESSED_BY, 2 },
		{ "read-mostly", USVM_ADVISE_READ_MOSTLY, 0 },
		{ "unset-read-mostly", USVM_ADVISE_UNSET_READ_MOSTLY, 0 },
	};
	char buf[64], *kind, *loc, *colon;
	unsigned i;

	memset(a, 0, sizeof(*a));
	if (strlen(s) >= sizeof(buf)) {
		snprintf(err, errlen, "too long");
		return -EINVAL;
	}
	strcpy(a->text, s);
	strcpy(buf, s);
	kind = buf;
	colon = strchr(buf, ':');
	if (colon) {
		*colon = 0;
		kind = colon + 1;
		if (!*buf || strlen(buf) >= sizeof(a->buf)) {
			snprintf(err, errlen, "'%s' is not a buffer name", buf);
			return -EINVAL;
		}
		strcpy(a->buf, buf);
	}
	loc = strchr(kind, '=');
	if (loc)
		*loc++ = 0;
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(kind, kinds[i].name))
			break;
	if (i == sizeof(kinds) / sizeof(kinds[0])) {
		snprintf(err, errlen, "unknown advice '%s' (preferred=LOC, accessed-by=devN, "
			 "read-mostly, or unset-... of them)", kind);
		return -EINVAL;
	}
	a->advice = kinds[i].advice;
	a->dev = -2;
	if (!kinds[i].loc) {
		if (loc) {
			snprintf(err, errlen, "%s takes no location", kind);
			return -EINVAL;
		}
		return 0;
	}
	if (!loc || !*loc) {
		snprintf(err, errlen, "%s needs a location: %s=%s", kind, kind,
			 kinds[i].loc == 1 ? "system or devN" : "devN");
		return -EINVAL;
	}
	if (kinds[i].loc == 1 && !strcmp(loc, "system")) {
		a->dev = -1;
		return 0;
	}
	a->dev = parse_devname(loc);
	if (a->dev < 0) {
		snprintf(err, errlen, "'%s' is not a %s (dev0 ... dev%d)", loc,
			 kinds[i].loc == 1 ? "location: system or a device" : "device",
			 CLI_MAX_DEVICES - 1);
		return -EINVAL;
	}
	return 0;
}

const char run_help[] =
"Usage: usvm run WORKLOAD [options]\n"
"\n"
"Run a built-in workload that mixes CPU and simulated-device phases on managed\n"
"memory, verify every byte it wrote, and print what moved where.\n"
"\n"
"Workloads:\n"
"  stream         CPU writes a, a device computes b = 3*a + 7, CPU checks both.\n"
"  stencil        1-D Jacobi: the device updates the left half, the CPU the\n"
"                 right half, alternating; halos cross through shared memory.\n"
"  random         seeded random page touches by CPU threads and device kernels\n"
"                 at the same time, checked against a shadow copy.\n"
"  pingpong       one buffer bounced CPU -> dev0 -> dev1 -> CPU ... (2 devices\n"
"                 by default; with --devices 1 only CPU <-> dev0).\n"
"  oversubscribe  device sweeps over a working set 3x the device memory\n"
"                 (capacity evictions).\n"
"  thrash         the CPU and the device take turns on the same 2 MiB blocks\n"
"                 (each touches 16 KiB of every block per round, 40 rounds):\n"
"                 without thrashing mitigation (USVM_THRASHING=0) every block\n"
"                 migrates both ways every round; with it, blocks are throttled,\n"
"                 then pinned in system memory and the device maps them there.\n"
"  pipeline       a device produces buffer 'in' chunk by chunk while the CPU\n"
"                 consumes the previous chunk into 'out' (advised\n"
"                 preferred=system; a device pass then reads it in place);\n"
"                 with --prefetch each chunk is prefetched ahead of its use:\n"
"                 reports bytes moved by prefetch and by faults.\n"
"\n"
"Options:\n"
"  --size SIZE          working set: total bytes of the workload's buffers\n"
"                       (default 64M; stencil, random, pingpong, pipeline\n"
"                       32M; thrash 16M; suffixes K, M, G)\n"
"  --device-mem SIZE    device memory per simulated device (default: twice the\n"
"                       working set; oversubscribe: a third of it)\n"
"  --devices N          simulated devices, 1-8 (default 1; pingpong 2)\n"
"  --timeslice MS       device pages stay at least MS ms before a CPU fault may\n"
"                       take them back (default 0)\n"
"  --chunks LIST        GPU SVM chunk sizes, descending, last 4K\n"
"                       (default 2M,64K,4K)\n"
"  --policy P           device-fault migration: always (default), once, never\n"
"  --iterations N       iterations (default: stream 1, stencil 10, random 8,\n"
"                       pingpong 4, oversubscribe 3, thrash 40, pipeline 4)\n"
"  --seed N             seed for data patterns and random choices (default 1)\n"
"  --threads N          CPU threads for CPU phases (default: CPUs, at most 4)\n"
"  --device-threads N   worker threads per simulated device (default 2)\n"
"  --advise SPEC        usvm_advise() the workload's buffers before its first\n"
"                       phase (after its own advice); repeatable, or a comma\n"
"                       list.  SPEC is [BUF:]KIND[=LOC]: KIND preferred=system,\n"
"                       preferred=devN (devN's memory), accessed-by=devN,\n"
"                       read-mostly, unset-preferred, unset-accessed-by=devN,\n"
"                       unset-read-mostly; BUF one buffer (stream a b, stencil\n"
"                       u v, pipeline in out, others buf), else all of them.\n"
"                       Example: --advise a:preferred=dev0,b:accessed-by=dev0\n"
"  --prefetch[=WHERE]   usvm_prefetch() what a phase uses before it runs: before\n"
"                       a device phase into that device's memory (the buffers\n"
"                       split between its devices as the work is), before a CPU\n"
"                       phase back to system memory.  WHERE: both (default),\n"
"                       device, devN (only phases of devN), system.  A range\n"
"                       advised preferred elsewhere is left alone; a failed\n"
"                       prefetch is counted, not fatal.  Phases that mix CPU\n"
"                       and devices (random) prefetch nothing; stencil and\n"
"                       pipeline prefetch only the parts each side uses, the\n"
"                       others whole buffers.\n"
"  --json               print one JSON object on stdout instead of the text\n"
"  --plot FILE.svg      sample residency and faults over time, write an SVG\n"
"  --sample-ms MS       sampler interval (default 5)\n"
"  --trace FILE.json    write every fault and migration to FILE.json (Chrome\n"
"                       trace format: Perfetto, chrome://tracing, usvm trace)\n"
"  --quiet, -q          no output on success (errors still go to stderr)\n"
"  --verbose, -v        print a line for every phase\n"
"  --no-progress        never show the progress bar (it only appears when\n"
"                       stderr is a terminal and the run takes over 1 s)\n"
"  --help, -h           this help\n"
"  --inject-corruption  testing: flip one byte of the first buffer behind the\n"
"                       workload's back after phase 1; the run must fail\n"
"\n"
"Counters (the table and --json):\n"
"  CPU faults           userfaultfd faults served for CPU threads (first\n"
"                       touches, device-resident pages)\n"
"  device faults        translation misses served for device kernels\n"
"  to device / system   migrations (device allocations) and bytes each way;\n"
"                       'to system' = by CPU fault + by eviction + other\n"
"                       (moves to another device, explicit evictions)\n"
"  thrash events        a 2 MiB block of a workload buffer that had been in a\n"
"                       device's memory, left it (CPU-fault migration, eviction\n"
"                       or a move to another device) and came back to that same\n"
"                       device later in the run; each return counts once.\n"
"                       Observed at every phase boundary and by the sampler, so\n"
"                       round trips inside one sampler interval are missed: a\n"
"                       lower bound.\n"
"  throughput           bytes the workload read or wrote / time of its phases\n"
"  throttled / pinned   thrashing mitigation (USVM_THRASHING, usvm(3)): blocks\n"
"                       throttled and pinned by device faults, bytes kept in\n"
"                       place by pins; faults mapped in place per advice\n"
"  prefetched           --prefetch: calls, bytes migrated while they ran (each\n"
"                       way); 'moved on demand' is the rest (faults, evictions)\n"
"  --json totals        the sums of the per-device and per-phase values, and\n"
"                       equal to the address space's counters (see usvm(1))\n"
"\n"
"Exit status: 0 verified, 1 verification failure or runtime error, 2 usage.\n"
"Examples:\n"
"  usvm run stream\n"
"  usvm run stencil --chunks 64K,4K --timeslice 2 --plot stencil.svg\n"
"  usvm run pingpong --devices 2 --json | python3 -m json.tool\n"
"  USVM_THRASHING=0 usvm run thrash; usvm run thrash\n"
"  usvm run pipeline --prefetch\n"
"  usvm run thrash --advise preferred=system\n";

static int want_arg(const char *cmd, const char *opt, const char *val)
{
	if (!val)
		return usage_error(cmd, "option %s needs a value", opt);
	return 0;
}

static int parse_size_opt(const char *cmd, const char *opt, const char *val, size_t *out)
{
	int err;

	if (want_arg(cmd, opt, val))
		return EXIT_USAGE;
	err = usvm_parse_size(val, out);
	if (err == -ERANGE)
		return usage_error(cmd, "%s %s: size too large", opt, val);
	if (err)
		return usage_error(cmd, "%s: '%s' is not a size (examples: 4096, 64K, 32M, 1G)",
				   opt, val);
	return 0;
}

static int parse_num_opt(const char *cmd, const char *opt, const char *val, unsigned long min,
			 unsigned long max, unsigned long *out)
{
	if (want_arg(cmd, opt, val))
		return EXIT_USAGE;
	if (cli_parse_ulong(val, out))
		return usage_error(cmd, "%s: '%s' is not a number", opt, val);
	if (*out < min || *out > max)
		return usage_error(cmd, "%s %s: must be between %lu and %lu", opt, val, min, max);
	return 0;
}

void run_opts_defaults(struct run_opts *o, const char *cmd)
{
	memset(o, 0, sizeof(*o));
	o->cmd = cmd;
	o->seed = 1;
	o->progress = -1;
	o->sample_ms = 5;
	o->policy = USVM_POLICY_ALWAYS;
	o->prefetch_dev = -1;
}

int parse_run_args(int argc, char **argv, struct run_opts *o, int need_workload)
{
	int i;

	for (i = 0; i < argc; i++) {
		char *a = argv[i], *val = NULL, opt[64];
		unsigned long n;
		int eq = 0, rc = 0;

		if (a[0] != '-' || !a[1]) {
			if (o->workload || !need_workload)
				return usage_error(o->cmd, "unexpected argument '%s'", a);
			o->workload = a;
			continue;
		}
		snprintf(opt, sizeof(opt), "%s", a);
		if (!strncmp(a, "--", 2) && strchr(a, '=')) {
			size_t l = (size_t)(strchr(a, '=') - a);

			if (l < sizeof(opt))
				opt[l] = 0;
			val = strchr(a, '=') + 1;
			eq = 1;
		}
#define TAKE() do { if (!eq) val = i + 1 < argc ? argv[++i] : NULL; } while (0)
#define FLAG() do { if (eq) return usage_error(o->cmd, "option %s takes no value", opt); } while (0)
		if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
			fputs(run_help, stdout);
			return -1;
		} else if (!strcmp(opt, "--size")) {
			TAKE();
			rc = parse_size_opt(o->cmd, opt, val, &o->size);
			if (!rc && o->size == 0)
				rc = usage_error(o->cmd, "--size must be greater than 0");
		} else if (!strcmp(opt, "--device-mem")) {
			TAKE();
			rc = parse_size_opt(o->cmd, opt, val, &o->dev_mem);
			if (!rc && o->dev_mem == 0)
				rc = usage_error(o->cmd, "--device-mem 0: a device needs some memory "
						 "(a capacity of at least 4K)");
		} else if (!strcmp(opt, "--devices")) {
			TAKE();
			rc = parse_num_opt(o->cmd, opt, val, 1, CLI_MAX_DEVICES, &n);
			o->devices = (unsigned)n;
		} else if (!strcmp(opt, "--timeslice")) {
			TAKE();
			rc = parse_num_opt(o->cmd, opt, val, 0, 100000, &n);
			o->timeslice_ms = n;
		} else if (!strcmp(opt, "--chunks")) {
			char err[128];

			TAKE();
			if (want_arg(o->cmd, opt, val))
				return EXIT_USAGE;
			if (cli_parse_chunks(val, o->chunks, err, sizeof(err)))
				rc = usage_error(o->cmd, "--chunks %s: %s", val, err);
		} else if (!strcmp(opt, "--policy")) {
			TAKE();
			if (want_arg(o->cmd, opt, val))
				return EXIT_USAGE;
			if (!strcmp(val, "always"))
				o->policy = USVM_POLICY_ALWAYS;
			else if (!strcmp(val, "once"))
				o->policy = USVM_POLICY_ONCE;
			else if (!strcmp(val, "never"))
				o->policy = USVM_POLICY_NEVER;
			else
				rc = usage_error(o->cmd, "--policy '%s': use always, once or never", val);
		} else if (!strcmp(opt, "--iterations")) {
			TAKE();
			rc = parse_num_opt(o->cmd, opt, val, 1, 1000000, &n);
			o->iterations = (unsigned)n;
		} else if (!strcmp(opt, "--seed")) {
			TAKE();
			if (want_arg(o->cmd, opt, val))
				return EXIT_USAGE;
			if (cli_parse_ulong(val, &n))
				rc = usage_error(o->cmd, "--seed: '%s' is not a number", val);
			o->seed = n;
		} else if (!strcmp(opt, "--threads")) {
			TAKE();
			rc = parse_num_opt(o->cmd, opt, val, 1, 64, &n);
			o->threads = (unsigned)n;
		} else if (!strcmp(opt, "--device-threads")) {
			TAKE();
			rc = parse_num_opt(o->cmd, opt, val, 1, 64, &n);
			o->dev_threads = (unsigned)n;
		} else if (!strcmp(opt, "--sample-ms")) {
			TAKE();
			rc = parse_num_opt(o->cmd, opt, val, 1, 10000, &n);
			o->sample_ms = (unsigned)n;
		} else if (!strcmp(opt, "--plot")) {
			TAKE();
			if (want_arg(o->cmd, opt, val))
				return EXIT_USAGE;
			if (!*val)
				rc = usage_error(o->cmd, "--plot needs a file name");
			o->plot = val;
		} else if (!strcmp(opt, "--trace")) {
			TAKE();
			if (want_arg(o->cmd, opt, val))
				return EXIT_USAGE;
			if (!*val)
				rc = usage_error(o->cmd, "--trace needs a file name");
			o->trace = val;
		} else if (!strcmp(opt, "--advise")) {
			char buf[256], *tok, *save = NULL, err[160];

			TAKE();
			if (want_arg(o->cmd, opt, val))
				return EXIT_USAGE;
			if (!*val || strlen(val) >= sizeof(buf))
				return usage_error(o->cmd, "--advise '%s': %s", val,
						   *val ? "too long" : "empty (example: preferred=dev0)");
			strcpy(buf, val);
			for (tok = strtok_r(buf, ",", &save); tok && !rc;
			     tok = strtok_r(NULL, ",", &save)) {
				if (o->nadvice == CLI_MAX_ADVICE)
					rc = usage_error(o->cmd, "--advise: at most %d items",
							 CLI_MAX_ADVICE);
				else if (cli_parse_advice(tok, &o->advice[o->nadvice], err,
							  sizeof(err)))
					rc = usage_error(o->cmd, "--advise '%s': %s", tok, err);
				else
					o->nadvice++;
			}
		} else if (!strcmp(opt, "--prefetch")) {
			/* The value only after '=': a plain --prefetch is a flag. */
			if (!eq || !strcmp(val, "both")) {
				o->prefetch = CLI_PREFETCH_DEVICE | CLI_PREFETCH_SYSTEM;
			} else if (!strcmp(val, "device")) {
				o->prefetch = CLI_PREFETCH_DEVICE;
			} else if (!strcmp(val, "system")) {
				o->prefetch = CLI_PREFETCH_SYSTEM;
			} else if (parse_devname(val) >= 0) {
				o->prefetch = CLI_PREFETCH_DEVICE;
				o->prefetch_dev = parse_devname(val);
			} else {
				rc = usage_error(o->cmd, "--prefetch=%s: use both, device, devN or "
						 "system", val);
			}
		} else if (!strcmp(opt, "--json")) {
			FLAG();
			o->json = 1;
		} else if (!strcmp(opt, "--quiet") || !strcmp(opt, "-q")) {
			FLAG();
			o->quiet = 1;
		} else if (!strcmp(opt, "--verbose") || !strcmp(opt, "-v")) {
			FLAG();
			o->verbose = 1;
		} else if (!strcmp(opt, "--inject-corruption")) {
			FLAG();
			o->inject = 1;
		} else if (!strcmp(opt, "--no-progress")) {
			FLAG();
			o->progress = 0;
		} else {
			return usage_error(o->cmd, "unknown option '%s' (see 'usvm run --help')", a);
		}
#undef TAKE
#undef FLAG
		if (rc)
			return rc;
	}
	return 0;
}

// SPDX-License-Identifier: MIT
/* The options table, environment parsing, size parsing and logging. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdatomic.h>
#include <sched.h>
#include <unistd.h>
#include "usvm.h"
#include "util.h"

enum opt_type { OPT_SIZE, OPT_COUNT, OPT_ENUM, OPT_STRING };

struct opt_desc {
	const char *name;
	enum opt_type type;
	const char *def;
	const char *doc;
	const char *values;        /* OPT_ENUM: '|'-separated choices */
	unsigned long min, max;    /* OPT_COUNT / OPT_SIZE bounds */
};

/* The one table: keep it in enum usvm_option_id order. */
static const struct opt_desc opts[USVM_OPT_NR] = {
	[USVM_OPT_ARENA_SIZE] = { "arena_size", OPT_SIZE, "1G",
		"virtual size of each managed arena (usvm_alloc carves allocations out of it)",
		NULL, 2ul << 20, 1ul << 40 },
	[USVM_OPT_FAULT_THREADS] = { "fault_threads", OPT_COUNT, "4",
		"worker threads serving CPU page faults, per address space", NULL, 1, 64 },
	[USVM_OPT_UFFD_MODE] = { "uffd_mode", OPT_ENUM, "auto",
		"how to open userfaultfd: auto (syscall, then /dev/userfaultfd, then user-mode-only), "
		"syscall, dev, user", "auto|syscall|dev|user", 0, 0 },
	[USVM_OPT_VERBOSE] = { "verbose", OPT_COUNT, "0",
		"log to stderr: 1 evictions, unbind, populate failures and fallbacks; 2 more",
		NULL, 0, 2 },
	[USVM_OPT_FAULT_INJECT] = { "fault_inject", OPT_STRING, "",
		"testing: make backend ops fail, e.g. devmem_alloc:0.05,copy_to_devmem:0.02,"
		"copy_to_ram:0.02,uffd:0.01", NULL, 0, 0 },
	[USVM_OPT_FAULT_INJECT_SEED] = { "fault_inject_seed", OPT_COUNT, "1",
		"testing: seed of the fault injection random stream", NULL, 0, ~0ul },
	[USVM_OPT_FREE_BATCH] = { "free_batch", OPT_SIZE, "4M",
		"usvm_free keeps the CPU pages of freed arena allocations until this many bytes "
		"are waiting, then discards them in one batch (0: at once)", NULL, 0, 1ul << 34 },
	[USVM_OPT_WRITE_FILL] = { "write_fill", OPT_SIZE, "2M",
		"a write to a never-touched 2 MiB block maps this much of it writable and zeroed at "
		"once, as a THP fault would (a read maps 64K of zero pages)", NULL, 4096, 2ul << 20 },
	[USVM_OPT_READER_SPIN_US] = { "reader_spin_us", OPT_COUNT, "50",
		"after reading fault messages, the reader keeps polling (busy) this many "
		"microseconds before it sleeps: faster bursts of faults, one CPU busy", NULL, 0,
		1000000 },
	[USVM_OPT_TRACE] = { "trace", OPT_STRING, "",
		"write every fault, migration, populate, invalidation and unbind to this file "
		"(Chrome Trace Event Format: Perfetto, chrome://tracing, usvm trace)", NULL, 0, 0 },
	[USVM_OPT_THRASHING] = { "thrashing", OPT_COUNT, "1",
		"thrashing mitigation: a 2 MiB block that device faults keep migrating is "
		"throttled, then pinned where it is and mapped remotely (0: off)", NULL, 0, 1 },
	[USVM_OPT_THRASH_THRESHOLD] = { "thrash_threshold", OPT_COUNT, "3",
		"migrations of one block within thrash_window_ms that count as thrashing",
		NULL, 2, 8 },
	[USVM_OPT_THRASH_WINDOW_MS] = { "thrash_window_ms", OPT_COUNT, "100",
		"the thrashing detection window", NULL, 1, 600000 },
	[USVM_OPT_THRASH_PIN_MS] = { "thrash_pin_ms", OPT_COUNT, "500",
		"how long a thrashing block stays throttled, then pinned", NULL, 1, 3600000 },
	[USVM_OPT_THRASH_MAX_PINS] = { "thrash_max_pins", OPT_COUNT, "1024",
		"blocks pinned at once, at most", NULL, 1, 4096 },
	[USVM_OPT_THRASH_THROTTLE_MS] = { "thrash_throttle_ms", OPT_COUNT, "1",
		"a throttled block's migration keeps its pages there this long (its timeslice): "
		"short, as a CPU touch of them waits it out", NULL, 1, 60000 },
	[USVM_OPT_STRICT] = { "strict", OPT_COUNT, "0",
		"report every implicit migration (CPU fault on device memory, device fault "
		"that migrates) on stderr; 2: also fail such device faults (-EACCES)",
		NULL, 0, 2 },
	[USVM_OPT_MIGRATE_BACK] = { "migrate_back", OPT_SIZE, "0",
		"what a CPU fault on device memory brings back: 0 the whole device allocation "
		"(as the kernel), or the aligned chunk of this size around the fault (a power "
		"of two; the rest of the allocation stays)", NULL, 0, 2ul << 20 },
	[USVM_OPT_PREFETCH_THRESHOLD] = { "prefetch_threshold", OPT_COUNT, "51",
		"density prefetch: a device fault whose range would make this percentage of its "
		"2 MiB block resident in the target migrates the whole block (0: off)",
		NULL, 0, 100 },
	[USVM_OPT_HEADROOM] = { "headroom", OPT_SIZE, "0",
		"device memory each pagemap keeps free by evicting least recently used "
		"allocations ahead of need, on a thread of its own (at most half its capacity; "
		"0: off, evict on demand)", NULL, 0, 1ul << 40 },
};

static atomic_int warned[USVM_OPT_NR];

static void env_name(enum usvm_option_id id, char *buf, size_t len)
{
	size_t i = 0;
	const char *s = opts[id].name;

	snprintf(buf, len, "USVM_");
	for (i = 5; *s && i + 1 < len; s++, i++)
		buf[i] = (char)toupper((unsigned char)*s);
	buf[i] = 0;
}

static const char *env_value(enum usvm_option_id id)
{
	char name[64];
	const char *v;

	env_name(id, name, sizeof(name));
	v = getenv(name);
	return v && *v ? v : NULL;
}

static int enum_valid(const struct opt_desc *o, const char *v)
{
	const char *p = o->values;
	size_t n = strlen(v);

	while (p && *p) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);

		if (len == n && !strncasecmp(p, v, n))
			return 1;
		p = bar ? bar + 1 : NULL;
	}
	return 0;
}

/* Parse @v for option @id; 0 and *@out, or -EINVAL. */
static int parse(enum usvm_option_id id, const char *v, unsigned long *out)
{
	const struct opt_desc *o = &opts[id];
	size_t sz;
	char *end;

	switch (o->type) {
	case OPT_SIZE:
		if (usvm_parse_size(v, &sz))
			return -EINVAL;
		*out = sz;
		break;
	case OPT_COUNT:
		errno = 0;
		*out = strtoul(v, &end, 0);
		if (errno || *end || !isdigit((unsigned char)*v))
			return -EINVAL;
		break;
	case OPT_ENUM:
		return enum_valid(o, v) ? 0 : -EINVAL;
	case OPT_STRING:
		return 0;
	}
	if (*out < o->min || *out > o->max)
		return -EINVAL;
	return 0;
}

static void warn_invalid(enum usvm_option_id id, const char *v)
{
	char name[64];

	if (atomic_exchange(&warned[id], 1))
		return;
	env_name(id, name, sizeof(name));
	fprintf(stderr, "usvm: warning: %s=%s is not a valid %s; using the default %s\n", name, v,
		opts[id].type == OPT_SIZE ? "size" : opts[id].type == OPT_COUNT ? "number" : "choice",
		opts[id].def);
}

/* The value in effect, and where it came from (0 default, 1 env, -1 invalid env). */
static unsigned long value_of(enum usvm_option_id id, int *source)
{
	const char *v = env_value(id);
	unsigned long out = 0;

	if (v && !parse(id, v, &out)) {
		*source = 1;
		return out;
	}
	if (v)
		warn_invalid(id, v);
	*source = v ? -1 : 0;
	if (opts[id].type == OPT_SIZE || opts[id].type == OPT_COUNT)
		parse(id, opts[id].def, &out);
	return out;
}

unsigned long usvm_option_ulong(enum usvm_option_id id)
{
	int src;

	return value_of(id, &src);
}

size_t usvm_option_size(enum usvm_option_id id)
{
	return (size_t)usvm_option_ulong(id);
}

const char *usvm_option_string(enum usvm_option_id id)
{
	int src;
	const char *v = env_value(id);

	if (opts[id].type == OPT_ENUM) {
		value_of(id, &src);
		return src == 1 ? v : opts[id].def;
	}
	return v;
}

int usvm_option_info(unsigned int i, struct usvm_option *out)
{
	const struct opt_desc *o;
	int src;

	if (!out)
		return -EINVAL;
	if (i >= USVM_OPT_NR)
		return -ENOENT;
	o = &opts[i];
	memset(out, 0, sizeof(*out));
	out->name = o->name;
	out->type = o->type == OPT_SIZE ? "size" : o->type == OPT_COUNT ? "number" :
		    o->type == OPT_ENUM ? "choice" : "text";
	out->def = o->def;
	out->doc = o->doc;
	env_name((enum usvm_option_id)i, out->env, sizeof(out->env));
	if (o->type == OPT_SIZE || o->type == OPT_COUNT) {
		unsigned long v = value_of((enum usvm_option_id)i, &src);

		snprintf(out->value, sizeof(out->value), "%lu", v);
	} else {
		const char *v = usvm_option_string((enum usvm_option_id)i);

		value_of((enum usvm_option_id)i, &src);
		snprintf(out->value, sizeof(out->value), "%s", v ? v : "");
	}
	out->source = src == 1 ? "environment" : src < 0 ? "default (environment value invalid)"
							: "default";
	return 0;
}

int usvm_parse_size(const char *s, size_t *out)
{
	unsigned long long v, mul = 1;
	char *end;

	if (!s || !out || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	switch (*end) {
	case 'k': case 'K': mul = 1ull << 10; end++; break;
	case 'm': case 'M': mul = 1ull << 20; end++; break;
	case 'g': case 'G': mul = 1ull << 30; end++; break;
	case 't': case 'T': mul = 1ull << 40; end++; break;
	default: break;
	}
	if (mul > 1 && (*end == 'i' || *end == 'I') && (end[1] == 'b' || end[1] == 'B'))
		end += 2;
	else if (*end == 'b' || *end == 'B')
		end++;
	if (*end)
		return -EINVAL;
	if ((v && mul > ~0ull / v) || v * mul > (unsigned long long)SIZE_MAX)
		return -ERANGE;
	*out = (size_t)(v * mul);
	return 0;
}

/* ---- logging ---------------------------------------------------------------- */

#define LOG_PER_SECOND 50

void usvm_log_at(int level, const char *fmt, ...)
{
	static _Atomic uint64_t window, count, dropped;
	uint64_t sec = usvm_now_ns() / 1000000000ull, w;
	char buf[512];
	va_list ap;
	int n;

	if ((int)usvm_option_ulong(USVM_OPT_VERBOSE) < level)
		return;
	w = atomic_load(&window);
	if (w != sec && atomic_compare_exchange_strong(&window, &w, sec)) {
		uint64_t d = atomic_exchange(&dropped, 0);

		atomic_store(&count, 0);
		if (d)
			fprintf(stderr, "usvm: (%llu messages suppressed)\n", (unsigned long long)d);
	}
	if (atomic_fetch_add(&count, 1) >= LOG_PER_SECOND) {
		atomic_fetch_add(&dropped, 1);
		return;
	}
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		fprintf(stderr, "usvm: %s\n", buf);
}

/* ---- strict mode ------------------------------------------------------------ */

int usvm_strict(void)
{
	return (int)usvm_option_ulong(USVM_OPT_STRICT);
}

void usvm_strict_report(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* One write: lines of several threads do not interleave. */
	if (n > 0)
		fprintf(stderr, "usvm strict: %s\n", buf);
}

/* ---- backoff ------------------------------------------------------------------- */

int usvm_backoff(struct usvm_backoff *b)
{
	uint64_t now = usvm_now_ns();

	if (!b->deadline_ns)
		b->deadline_ns = now + (uint64_t)b->limit_ms * 1000000ull;
	else if (now > b->deadline_ns)
		return 0;
	if (b->tries < 4)
		sched_yield();
	else
		usleep(b->tries < 20 ? 20 : b->tries < 100 ? 100 : 1000);
	b->tries++;
	return 1;
}

/* SPDX-License-Identifier: MIT */
/*
 * DOC: Options
 *
 * Every tunable of usvm lives in one table (options.c, after mimalloc's
 * options.c): name, type, default and a one-line doc.  The environment
 * variable is USVM_ followed by the name in capitals.  Values are read from
 * the environment each time they are asked for (creating an mm or a device
 * reads them), so a program may setenv() before creating objects; an
 * invalid value is reported once on stderr, naming the variable, and the
 * default is used.
 */
#ifndef USVM_OPTIONS_H
#define USVM_OPTIONS_H

#include <stddef.h>

enum usvm_option_id {
	USVM_OPT_ARENA_SIZE,
	USVM_OPT_FAULT_THREADS,
	USVM_OPT_UFFD_MODE,
	USVM_OPT_VERBOSE,
	USVM_OPT_FAULT_INJECT,
	USVM_OPT_FAULT_INJECT_SEED,
	USVM_OPT_FREE_BATCH,
	USVM_OPT_WRITE_FILL,
	USVM_OPT_READER_SPIN_US,
	USVM_OPT_TRACE,
	USVM_OPT_THRASHING,
	USVM_OPT_THRASH_THRESHOLD,
	USVM_OPT_THRASH_WINDOW_MS,
	USVM_OPT_THRASH_PIN_MS,
	USVM_OPT_THRASH_MAX_PINS,
	USVM_OPT_THRASH_THROTTLE_MS,
	USVM_OPT_STRICT,
	USVM_OPT_MIGRATE_BACK,
	USVM_OPT_PREFETCH_THRESHOLD,
	USVM_OPT_HEADROOM,
	USVM_OPT_NR
};

unsigned long usvm_option_ulong(enum usvm_option_id id);
size_t usvm_option_size(enum usvm_option_id id);
/* The raw string (NULL when unset); for string and enum options. */
const char *usvm_option_string(enum usvm_option_id id);

/* Log at verbosity @level (USVM_VERBOSE), rate limited, to stderr. */
__attribute__((format(printf, 2, 3)))
void usvm_log_at(int level, const char *fmt, ...);
#define usvm_log(fmt, ...) usvm_log_at(1, fmt, ##__VA_ARGS__)
#define usvm_log2(fmt, ...) usvm_log_at(2, fmt, ##__VA_ARGS__)

/*
 * Strict mode (USVM_STRICT): 0 off; 1 report every implicit migration (a
 * CPU fault on device memory, a device fault that migrates) on stderr; 2
 * also fail device faults that would migrate (-EACCES).  A CPU fault is
 * never failed: its data must reach the program.
 */
int usvm_strict(void);
/* Report an implicit migration; every one is printed, none dropped. */
__attribute__((format(printf, 1, 2)))
void usvm_strict_report(const char *fmt, ...);

#endif

// SPDX-License-Identifier: MIT
/* Thrashing detection and mitigation: see thrash.h. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include "util.h"
#include "thrash.h"

#define TABLE_SIZE 4096         /* blocks tracked at once */
#define STRIPES 64
#define MAX_THRESHOLD 8

struct entry {
	const void *mm;
	uintptr_t block;
	uint64_t t[MAX_THRESHOLD];  /* times of the last migrations (a ring) */
	unsigned int next;
	enum thrash_verdict level;  /* THROTTLE or PINNED until @until */
	uint64_t until;
};

static struct entry table[TABLE_SIZE];
static pthread_mutex_t stripe[STRIPES];
static atomic_uint npins;
/* Re-read whenever a device is created (thrash_configure): atomics, as
 * faults of other devices read them meanwhile. */
static struct {
	atomic_int on;
	atomic_uint threshold, max_pins;
	_Atomic uint64_t window_ns, pin_ns;
	atomic_ulong throttle_ms;
} cfg;
static pthread_once_t cfg_once = PTHREAD_ONCE_INIT;

static void cfg_read(void)
{
	atomic_store(&cfg.threshold, (unsigned int)usvm_option_ulong(USVM_OPT_THRASH_THRESHOLD));
	atomic_store(&cfg.window_ns, usvm_option_ulong(USVM_OPT_THRASH_WINDOW_MS) * 1000000ull);
	atomic_store(&cfg.pin_ns, usvm_option_ulong(USVM_OPT_THRASH_PIN_MS) * 1000000ull);
	atomic_store(&cfg.max_pins, (unsigned int)usvm_option_ulong(USVM_OPT_THRASH_MAX_PINS));
	atomic_store(&cfg.throttle_ms, usvm_option_ulong(USVM_OPT_THRASH_THROTTLE_MS));
	atomic_store(&cfg.on, (int)usvm_option_ulong(USVM_OPT_THRASHING));
}

static void cfg_init(void)
{
	unsigned int i;

	for (i = 0; i < STRIPES; i++)
		pthread_mutex_init(&stripe[i], NULL);
	cfg_read();
}

void thrash_configure(void)
{
	pthread_once(&cfg_once, cfg_init);
	cfg_read();
}

int thrash_enabled(void)
{
	pthread_once(&cfg_once, cfg_init);
	return atomic_load(&cfg.on);
}

unsigned long thrash_throttle_ms(void)
{
	pthread_once(&cfg_once, cfg_init);
	return atomic_load(&cfg.throttle_ms);
}

static size_t slot_of(const void *mm, uintptr_t block)
{
	uint64_t h = ((uint64_t)(uintptr_t)mm ^ (block >> USVM_BLOCK_SHIFT)) * 0x9E3779B97F4A7C15ull;

	return (size_t)(h >> 40) % TABLE_SIZE;
}

/* The entry of (@mm, @block), taking over the slot if another block had it. */
static struct entry *lookup(const void *mm, uintptr_t block)
{
	struct entry *e = &table[slot_of(mm, block)];

	if (e->mm != mm || e->block != block) {
		if (e->level == THRASH_PINNED)
			atomic_fetch_sub(&npins, 1);
		memset(e, 0, sizeof(*e));
		e->mm = mm;
		e->block = block;
	}
	return e;
}

/* Record a migration at @now; non-zero when the block is thrashing. */
static int note(struct entry *e, uint64_t now)
{
	unsigned int i, recent = 0, n = atomic_load(&cfg.threshold);
	uint64_t window = atomic_load(&cfg.window_ns);

	e->t[e->next++ % n] = now;
	for (i = 0; i < n; i++)
		recent += e->t[i] && now - e->t[i] <= window;
	if (recent < n)
		return 0;
	memset(e->t, 0, sizeof(e->t)); /* count afresh from here */
	return 1;
}

/* Thrashing again while throttled: pin it, if there is room. */
static enum thrash_verdict escalate(struct entry *e, uint64_t now, uint64_t len,
				    struct thrash_stats *st)
{
	if (e->level == THRASH_THROTTLE && now < e->until &&
	    atomic_fetch_add(&npins, 1) < atomic_load(&cfg.max_pins)) {
		e->level = THRASH_PINNED;
		e->until = now + atomic_load(&cfg.pin_ns);
		STAT_ADD(st->pins, 1);
		STAT_ADD(st->bytes_kept, len);
		return THRASH_PINNED;
	}
	if (e->level == THRASH_THROTTLE && now < e->until)
		atomic_fetch_sub(&npins, 1); /* no room: throttle once more */
	e->level = THRASH_THROTTLE;
	e->until = now + atomic_load(&cfg.pin_ns);
	STAT_ADD(st->throttles, 1);
	return THRASH_THROTTLE;
}

enum thrash_verdict thrash_check(const void *mm, uintptr_t block, uint64_t len, uint64_t now,
				 struct thrash_stats *st)
{
	pthread_mutex_t *lock;
	enum thrash_verdict v = THRASH_MIGRATE;
	struct entry *e;

	if (!thrash_enabled())
		return THRASH_MIGRATE;
	lock = &stripe[slot_of(mm, block) % STRIPES];
	pthread_mutex_lock(lock);
	e = lookup(mm, block);
	if (e->level == THRASH_PINNED && now >= e->until) {
		atomic_fetch_sub(&npins, 1); /* the pin expired */
		e->level = THRASH_MIGRATE;
	}
	if (e->level == THRASH_PINNED) {
		STAT_ADD(st->bytes_kept, len);
		v = THRASH_PINNED;
	} else if (note(e, now)) {
		STAT_ADD(st->events, 1);
		v = escalate(e, now, len, st);
	} else if (e->level == THRASH_THROTTLE && now < e->until) {
		v = THRASH_THROTTLE;
	}
	pthread_mutex_unlock(lock);
	return v;
}

void thrash_forget_mm(const void *mm)
{
	size_t i;

	pthread_once(&cfg_once, cfg_init); /* kept whether on or off now */
	for (i = 0; i < TABLE_SIZE; i++) {
		pthread_mutex_t *lock = &stripe[i % STRIPES];

		pthread_mutex_lock(lock);
		if (table[i].mm == mm) {
			if (table[i].level == THRASH_PINNED)
				atomic_fetch_sub(&npins, 1);
			memset(&table[i], 0, sizeof(table[i]));
		}
		pthread_mutex_unlock(lock);
	}
}

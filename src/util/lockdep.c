// SPDX-License-Identifier: MIT
/* Per-thread lock ownership tracking for lock assertions (see lockdep.h). */
#include <stdio.h>
#include <stdlib.h>
#include "lockdep.h"

#ifdef USVM_LOCKDEP

#define HELD_MAX 16

static __thread const void *held[HELD_MAX];
static __thread int nheld;

static void lockdep_die(const char *file, int line, const char *msg, const void *lock)
{
	fprintf(stderr, "usvm lockdep: %s:%d: %s (lock %p, %d held)\n", file, line, msg, lock,
		nheld);
	abort();
}

void _usvm_lockdep_acquire(const void *lock, const char *file, int line)
{
	int i;

	for (i = 0; i < nheld; i++)
		if (held[i] == lock)
			lockdep_die(file, line, "lock taken twice by one thread", lock);
	if (nheld == HELD_MAX)
		lockdep_die(file, line, "too many locks held", lock);
	held[nheld++] = lock;
}

void _usvm_lockdep_release(const void *lock, const char *file, int line)
{
	int i;

	for (i = nheld - 1; i >= 0; i--) {
		if (held[i] == lock) {
			held[i] = held[--nheld];
			return;
		}
	}
	lockdep_die(file, line, "releasing a lock this thread does not hold", lock);
}

void _usvm_lockdep_assert_held(const void *lock, const char *what, const char *file, int line)
{
	int i;

	for (i = 0; i < nheld; i++)
		if (held[i] == lock)
			return;
	fprintf(stderr, "usvm lockdep: %s:%d: %s is not held\n", file, line, what);
	abort();
}

void _usvm_lockdep_assert_none(const char *file, int line)
{
	if (nheld)
		lockdep_die(file, line, "must not hold locks here", held[0]);
}

#endif

/* SPDX-License-Identifier: MIT */
/*
 * DOC: Thrashing detection and mitigation (the policy layer)
 *
 * NVIDIA UVM's model, per 2 MiB block of an address space: every migration
 * a device fault asks for is noted with its time.  A block migrated
 * thrash_threshold times within thrash_window_ms is thrashing: the first
 * time it is throttled (its migrations get a timeslice of thrash_throttle_ms, so a
 * CPU fault cannot take it straight back), and if it thrashes again while
 * throttled it is pinned for thrash_pin_ms: devices map it where it is
 * (system memory, in place) instead of migrating it.  Pins expire; at most
 * thrash_max_pins blocks are pinned at once.  USVM_THRASHING=0 turns it all
 * off.  The tracker is a fixed-size table (memory stays bounded whatever the
 * address space does; a collision forgets the older block's history).
 *
 * Policy decides, mechanism moves: nothing here migrates anything, the
 * device's fault handler asks before it migrates.
 */
#ifndef USVM_POLICY_THRASH_H
#define USVM_POLICY_THRASH_H

#include <stdint.h>

enum thrash_verdict {
	THRASH_MIGRATE,    /* migrate as usual */
	THRASH_THROTTLE,   /* migrate, with a longer timeslice */
	THRASH_PINNED,     /* do not migrate: map it where it is */
};

struct thrash_stats {
	_Atomic uint64_t events;     /* a block found thrashing */
	_Atomic uint64_t throttles;
	_Atomic uint64_t pins;
	_Atomic uint64_t bytes_kept; /* bytes a pinned block did not move */
};

/* (Re-)read the thrash_* options; whenever a device is created. */
void thrash_configure(void);
/* Is thrashing mitigation on (USVM_THRASHING)? */
int thrash_enabled(void);
/* The timeslice a throttled block's migration gets (thrash_throttle_ms). */
unsigned long thrash_throttle_ms(void);
/*
 * A device fault wants to migrate @len bytes of the block at @block of
 * address space @mm at @now_ns: note it and say what to do.  Counts into
 * @st (the device's counters).
 */
enum thrash_verdict thrash_check(const void *mm, uintptr_t block, uint64_t len, uint64_t now_ns,
				 struct thrash_stats *st);
/* Forget everything about @mm (it is going away). */
void thrash_forget_mm(const void *mm);

#endif

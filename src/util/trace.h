/* SPDX-License-Identifier: MIT */
/*
 * DOC: Events (trace file, subscribers, USDT probes)
 *
 * usvm_event() is called where something happens: a CPU fault served, a
 * device fault, a migration, a populate call, an invalidation, an unbind.
 * It fires the USDT probe usvm:<type> (compiled in when <sys/sdt.h> is
 * there: `readelf -n libusvm.so` lists them; arguments in README) and, only
 * while a trace file or a subscriber is on, builds a struct usvm_event and
 * hands it to trace.c.  Off, the cost is one relaxed atomic load and a nop.
 */
#ifndef USVM_TRACE_H
#define USVM_TRACE_H

#include <stdatomic.h>
#include <stdint.h>
#include "usvm.h"

/* USVM_HAVE_SDT: set by CMake when <sys/sdt.h> exists (option USVM_SDT). */
#ifdef USVM_HAVE_SDT
#include <sys/sdt.h>
#define USVM_PROBE6(name, a, b, c, d, e, f) DTRACE_PROBE6(usvm, name, a, b, c, d, e, f)
#else
#define USVM_PROBE6(name, a, b, c, d, e, f) \
	do { (void)(a); (void)(b); (void)(c); (void)(d); (void)(e); (void)(f); } while (0)
#endif

/* Non-zero while a trace file is open or someone subscribed. */
extern atomic_int usvm_events_on;

/* Hand @ev to the trace file and the subscribers (trace.c). */
void _usvm_event_emit(struct usvm_event *ev);

/* Start the trace USVM_TRACE names, or @path, unless one is on (mm create). */
void usvm_trace_from_env(const char *path);

/*
 * One event.  @type is a constant at every call site, so only its probe is
 * compiled there.  Probe arguments, the same for every probe:
 *   arg1 address, arg2 length (bytes), arg3 cause (or fault kind),
 *   arg4 duration (ns), arg5 result (0 or -errno),
 *   arg6 name: pagemap (migrate: the device side; populate), device (device
 *        faults) or NULL.
 */
static inline __attribute__((always_inline)) void
usvm_event(enum usvm_event_type type, int cause, uint64_t addr, uint64_t len, const char *from,
	   const char *to, uint64_t start_ns, uint64_t dur_ns, int result)
{
	const char *name = type == USVM_EV_DEVICE_FAULT ? from
			   : from && to && from[0] == 's' && !__builtin_strcmp(from, "system") ? to
			   : from;

	switch (type) {
	case USVM_EV_CPU_FAULT:
		USVM_PROBE6(cpu_fault, addr, len, cause, dur_ns, result, name);
		break;
	case USVM_EV_DEVICE_FAULT:
		USVM_PROBE6(device_fault, addr, len, cause, dur_ns, result, name);
		break;
	case USVM_EV_MIGRATE:
		USVM_PROBE6(migrate, addr, len, cause, dur_ns, result, name);
		break;
	case USVM_EV_POPULATE:
		USVM_PROBE6(populate, addr, len, cause, dur_ns, result, to);
		break;
	case USVM_EV_INVALIDATE:
		USVM_PROBE6(invalidate, addr, len, cause, dur_ns, result, name);
		break;
	case USVM_EV_UNBIND:
		USVM_PROBE6(unbind, addr, len, cause, dur_ns, result, from);
		break;
	default:
		break;
	}
	if (atomic_load_explicit(&usvm_events_on, memory_order_relaxed)) {
		struct usvm_event ev = {
			.type = type, .cause = cause, .addr = addr, .len = len,
			.from = from, .to = to, .start_ns = start_ns, .dur_ns = dur_ns,
			.result = result,
		};

		_usvm_event_emit(&ev);
	}
}

static inline int usvm_events_enabled(void)
{
	return atomic_load_explicit(&usvm_events_on, memory_order_relaxed);
}

#endif

// SPDX-License-Identifier: MIT
/* Fault injection for tests (see inject.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "inject.h"
#include "util.h"

static const char *const site_names[USVM_INJECT_NR] = {
	"devmem_alloc", "copy_to_devmem", "copy_to_ram", "uffd",
};

atomic_int usvm_inject_on;
/* Failure threshold per site, out of 2^32 (0: never). */
static _Atomic uint32_t threshold[USVM_INJECT_NR];
static _Atomic uint64_t injected[USVM_INJECT_NR];
static _Atomic uint64_t seed_base, thread_counter;
static __thread uint64_t rng;

static uint32_t next_random(void)
{
	if (!rng)
		rng = (atomic_load(&seed_base) + 1) * 0x9E3779B97F4A7C15ull +
		      atomic_fetch_add(&thread_counter, 1) * 0xBF58476D1CE4E5B9ull + 1;
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t)((rng * 0x2545F4914F6CDD1Dull) >> 32);
}

int _usvm_inject_fail(enum usvm_inject_site site)
{
	uint32_t t = atomic_load_explicit(&threshold[site], memory_order_relaxed);

	if (!t || next_random() >= t)
		return 0;
	atomic_fetch_add_explicit(&injected[site], 1, memory_order_relaxed);
	return 1;
}

uint64_t usvm_inject_count(enum usvm_inject_site site)
{
	return atomic_load(&injected[site]);
}

int usvm_inject_configure(const char *spec)
{
	uint32_t t[USVM_INJECT_NR] = { 0 };
	char buf[256], *save = NULL, *tok;
	int i, any = 0;

	if (spec && strlen(spec) >= sizeof(buf))
		return -EINVAL;
	snprintf(buf, sizeof(buf), "%s", spec ? spec : "");
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':'), *end;
		double rate;

		if (!colon)
			return -EINVAL;
		*colon = 0;
		rate = strtod(colon + 1, &end);
		if (*end || rate < 0 || rate > 1)
			return -EINVAL;
		for (i = 0; i < USVM_INJECT_NR; i++)
			if (!strcmp(tok, site_names[i]))
				break;
		if (i == USVM_INJECT_NR)
			return -EINVAL;
		t[i] = rate >= 1 ? UINT32_MAX : (uint32_t)(rate * 4294967296.0);
		any |= t[i] != 0;
	}
	for (i = 0; i < USVM_INJECT_NR; i++)
		atomic_store(&threshold[i], t[i]);
	atomic_store(&seed_base, usvm_option_ulong(USVM_OPT_FAULT_INJECT_SEED));
	atomic_store(&usvm_inject_on, any);
	return 0;
}

void usvm_inject_configure_env(void)
{
	const char *spec = usvm_option_string(USVM_OPT_FAULT_INJECT);
	static atomic_int warned;

	if (!spec)
		return; /* keep what usvm_inject_configure set, if anything */
	if (usvm_inject_configure(spec) && !atomic_exchange(&warned, 1))
		fprintf(stderr, "usvm: warning: USVM_FAULT_INJECT=%s is not valid "
			"(site:rate,... with sites devmem_alloc, copy_to_devmem, copy_to_ram, "
			"uffd); no faults injected\n", spec);
}

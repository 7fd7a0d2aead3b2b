// SPDX-License-Identifier: MIT
/*
 * usvm CLI: the summary table and the JSON report of `usvm run`.
 *
 * Totals (both outputs) are the counters at the end of the last phase; they
 * add up, which `--json` consumers and test/cli_test.sh check:
 *   totals.cpu_faults            == mm.cpu_faults == sum of phases[].cpu_faults
 *   totals.device_faults         == sum of devices[].device.device_faults
 *                                == sum of phases[].device_faults
 *   totals.migrations_to_device  == sum of devices[].pagemap.migrations_to_dev
 *                                == mm.migrations_to_dev
 *   totals.bytes_to_device       == sum of devices[].pagemap.bytes_to_dev == mm.bytes_to_dev
 *                                == sum of phases[].bytes_to_device
 *   totals.migrations_to_system  == sum of devices[].pagemap.migrations_to_ram
 *                                == mm.migrations_to_ram
 *   totals.bytes_to_system       == sum of devices[].pagemap.bytes_to_ram == mm.bytes_to_ram
 *                                == sum of phases[].bytes_to_system
 *   totals.migrations_to_system  == by_cpu_fault + evictions + other
 *   totals.evictions, evicted_bytes, pages_cleared, thrash_events
 *                                == sums of the per-device values
 *   phases[].resident_after: system + every device == workload_bytes
 *   totals.prefetch_bytes_to_device/_to_system == sums of the phases' values;
 *   bytes_moved_by_prefetch + bytes_moved_on_demand
 *                                == bytes_to_device + bytes_to_system
 *
 * A CPU fault whose thread another fault's fill or migration already woke
 * is counted when its stale message is served, which may be after the last
 * phase ended: a trace (USVM_TRACE) of the run holds those too, so its CPU
 * fault counts can exceed the totals (by kind: usually "raced").
 */
#include <inttypes.h>
#include <string.h>
#include "cli.h"

struct totals {
	double time_s;
	uint64_t bytes;
	uint64_t device_faults, mig_dev, bytes_dev, mig_ram, bytes_ram;
	uint64_t by_cpu, evictions, evicted_bytes, other, thrash, cleared, workload_bytes;
	uint64_t throttles, pins, kept, in_place; /* the policy layer's */
	uint64_t dups, dup_bytes;
};

static double phases_time(const struct cli_run *r)
{
	double t = 0;
	unsigned i;

	for (i = 0; i < r->nphases; i++)
		t += r->phases[i].t1 - r->phases[i].t0;
	return t;
}

static void totals_of(const struct cli_run *r, const struct cli_snap *s, struct totals *t)
{
	unsigned d, i;

	memset(t, 0, sizeof(*t));
	t->time_s = phases_time(r);
	t->bytes = atomic_load(&((struct cli_run *)r)->work_done);
	for (d = 0; d < r->ndev; d++) {
		t->device_faults += s->dev[d].device_faults;
		t->mig_dev += s->pm[d].migrations_to_dev;
		t->bytes_dev += s->pm[d].bytes_to_dev;
		t->mig_ram += s->pm[d].migrations_to_ram;
		t->bytes_ram += s->pm[d].bytes_to_ram;
		t->by_cpu += s->pm[d].cpu_fault_migrations;
		t->evictions += s->pm[d].evictions;
		t->evicted_bytes += s->pm[d].evicted_bytes;
		t->thrash += s->thrash[d];
		t->throttles += s->dev[d].thrash_throttles;
		t->pins += s->dev[d].thrash_pins;
		t->kept += s->dev[d].thrash_bytes_kept;
		t->in_place += s->dev[d].advice_in_place;
		t->dups += s->dev[d].dup_copies;
		t->dup_bytes += s->dev[d].dup_bytes;
		t->cleared += s->pm[d].pages_cleared;
	}
	t->other = t->mig_ram - t->by_cpu - t->evictions;
	for (i = 0; i < r->nbufs; i++)
		t->workload_bytes += r->bufs[i].len;
}

static const char *fmt_rate(char *buf, size_t n, double bytes, double s)
{
	char b[24];

	if (s <= 0) {
		snprintf(buf, n, "-");
		return buf;
	}
	fmt_bytes(b, sizeof(b), (uint64_t)(bytes / s));
	snprintf(buf, n, "%s/s", b);
	return buf;
}

static const char *fmt_migr(char *buf, size_t n, uint64_t count, uint64_t bytes)
{
	char c[32], b[32];

	snprintf(buf, n, "%s (%s)", fmt_count(c, sizeof(c), count), fmt_bytes(b, sizeof(b), bytes));
	return buf;
}

#define LW 24
#define CW 20

static void row(FILE *f, const char *label, const char *total, const char *const *dev,
		unsigned ndev)
{
	unsigned d;

	fprintf(f, "  %-*s %*s", LW, label, CW, total);
	if (ndev > 1 || dev) {
		for (d = 0; d < ndev; d++)
			fprintf(f, " %*s", CW, dev ? dev[d] : "");
	}
	fputc('\n', f);
}

void report_table(struct cli_run *r, const struct cli_snap *s, FILE *f)
{
	char tv[32], dv[CLI_MAX_DEVICES][48];
	const char *dp[CLI_MAX_DEVICES];
	struct totals t;
	unsigned d;

	totals_of(r, s, &t);
	for (d = 0; d < r->ndev; d++)
		dp[d] = dv[d];
	fprintf(f, "\nSummary: %s, %u phases, %s\n", r->wl->name, r->nphases,
		run_failed(r) ? "VERIFICATION FAILED" : "verified");
	fprintf(f, "  %-*s %*s", LW, "", CW, "total");
	for (d = 0; d < r->ndev; d++)
		fprintf(f, " %*s", CW, r->devname[d]);
	fputc('\n', f);

	if (t.time_s < 1)
		snprintf(tv, sizeof(tv), "%.1f ms", t.time_s * 1e3);
	else
		snprintf(tv, sizeof(tv), "%.2f s", t.time_s);
	row(f, "time", tv, NULL, 0);
	row(f, "CPU faults", fmt_count(tv, sizeof(tv), s->mm.cpu_faults), NULL, 0);
	row(f, "  first touch", fmt_count(tv, sizeof(tv), s->mm.cpu_faults_first_touch), NULL, 0);
	row(f, "  on device memory", fmt_count(tv, sizeof(tv), s->mm.cpu_faults_devmem), NULL, 0);
	row(f, "  timeslice waits", fmt_count(tv, sizeof(tv), s->mm.timeslice_waits), NULL, 0);
	for (d = 0; d < r->ndev; d++)
		fmt_count(dv[d], sizeof(dv[d]), s->dev[d].device_faults);
	row(f, "device faults", fmt_count(tv, sizeof(tv), t.device_faults), dp, r->ndev);
	for (d = 0; d < r->ndev; d++)
		fmt_migr(dv[d], sizeof(dv[d]), s->pm[d].migrations_to_dev, s->pm[d].bytes_to_dev);
	row(f, "migrations to device", fmt_migr(tv, sizeof(tv), t.mig_dev, t.bytes_dev), dp, r->ndev);
	for (d = 0; d < r->ndev; d++)
		fmt_bytes(dv[d], sizeof(dv[d]), s->pm[d].pages_cleared * USVM_PAGE_SIZE);
	row(f, "  of which cleared", fmt_bytes(tv, sizeof(tv), t.cleared * USVM_PAGE_SIZE), dp, r->ndev);
	for (d = 0; d < r->ndev; d++)
		fmt_migr(dv[d], sizeof(dv[d]), s->pm[d].migrations_to_ram, s->pm[d].bytes_to_ram);
	row(f, "migrations to system", fmt_migr(tv, sizeof(tv), t.mig_ram, t.bytes_ram), dp, r->ndev);
	for (d = 0; d < r->ndev; d++)
		fmt_count(dv[d], sizeof(dv[d]), s->pm[d].cpu_fault_migrations);
	row(f, "  by CPU faults", fmt_count(tv, sizeof(tv), t.by_cpu), dp, r->ndev);
	for (d = 0; d < r->ndev; d++)
		fmt_migr(dv[d], sizeof(dv[d]), s->pm[d].evictions, s->pm[d].evicted_bytes);
	row(f, "  by eviction", fmt_migr(tv, sizeof(tv), t.evictions, t.evicted_bytes), dp, r->ndev);
	for (d = 0; d < r->ndev; d++)
		fmt_count(dv[d], sizeof(dv[d]), s->pm[d].migrations_to_ram -
			  s->pm[d].cpu_fault_migrations - s->pm[d].evictions);
	row(f, "  other (device moves)", fmt_count(tv, sizeof(tv), t.other), dp, r->ndev);
	for (d = 0; d < r->ndev; d++)
		fmt_count(dv[d], sizeof(dv[d]), s->thrash[d]);
	row(f, "thrash events", fmt_count(tv, sizeof(tv), t.thrash), dp, r->ndev);
	for (d = 0; d < r->ndev; d++)
		snprintf(dv[d], sizeof(dv[d]), "%" PRIu64 " / %" PRIu64, s->dev[d].thrash_throttles,
			 s->dev[d].thrash_pins);
	snprintf(tv, sizeof(tv), "%" PRIu64 " / %" PRIu64, t.throttles, t.pins);
	row(f, "  throttled / pinned", tv, dp, r->ndev);
	for (d = 0; d < r->ndev; d++)
		fmt_bytes(dv[d], sizeof(dv[d]), s->dev[d].thrash_bytes_kept);
	row(f, "  kept in place by pins", fmt_bytes(tv, sizeof(tv), t.kept), dp, r->ndev);
	if (r->o->prefetch || s->pf.calls || s->pf.skipped) {
		char a[32], b[32];

		snprintf(tv, sizeof(tv), "%s calls", fmt_count(a, sizeof(a), s->pf.calls));
		row(f, "prefetched (--prefetch)", tv, NULL, 0);
		snprintf(tv, sizeof(tv), "%s / %s", fmt_bytes(a, sizeof(a), s->pf.to_dev),
			 fmt_bytes(b, sizeof(b), s->pf.to_sys));
		row(f, "  to device / to system", tv, NULL, 0);
		row(f, "  moved on demand", fmt_bytes(tv, sizeof(tv), t.bytes_dev + t.bytes_ram -
						      s->pf.to_dev - s->pf.to_sys), NULL, 0);
		if (s->pf.failed || s->pf.skipped) {
			snprintf(tv, sizeof(tv), "%" PRIu64 " / %" PRIu64, s->pf.failed,
				 s->pf.skipped);
			row(f, "  failed / skipped", tv, NULL, 0);
		}
	}
	if (s->mm.dup_collapses || t.dups) {
		for (d = 0; d < r->ndev; d++)
			fmt_migr(dv[d], sizeof(dv[d]), s->dev[d].dup_copies, s->dev[d].dup_bytes);
		row(f, "read-only copies", fmt_migr(tv, sizeof(tv), t.dups, t.dup_bytes),
		    dp, r->ndev);
		row(f, "  collapsed by writes", fmt_count(tv, sizeof(tv), s->mm.dup_collapses), NULL, 0);
	}
	if (t.in_place) {
		for (d = 0; d < r->ndev; d++)
			fmt_count(dv[d], sizeof(dv[d]), s->dev[d].advice_in_place);
		row(f, "faults mapped in place (advice)", fmt_count(tv, sizeof(tv), t.in_place), dp,
		    r->ndev);
	}
	for (d = 0; d < r->ndev; d++) {
		char a[32], b[32];

		snprintf(dv[d], sizeof(dv[d]), "%s / %s",
			 fmt_bytes(a, sizeof(a), s->pm[d].peak_used_bytes),
			 fmt_bytes(b, sizeof(b), s->pm[d].capacity_bytes));
	}
	row(f, "device memory peak", "", dp, r->ndev);
	row(f, "throughput", fmt_rate(tv, sizeof(tv), (double)t.bytes, t.time_s), NULL, 0);
	if (!run_failed(r)) {
		char b[32];

		fprintf(f, "\nverified: every byte of the %s workload buffers (%s) is what it should be\n",
			r->wl->name, fmt_bytes(b, sizeof(b), t.workload_bytes));
	}
	fflush(f);
}

static void json_mm(struct json *j, const struct usvm_mm_stats *m)
{
	json_obj_begin(j, "mm");
#define U(f) json_u64(j, #f, m->f)
	U(cpu_faults); U(cpu_faults_devmem); U(cpu_faults_first_touch); U(cpu_faults_raced);
	U(timeslice_waits);
	U(migrations_to_ram); U(bytes_to_ram); U(ns_to_ram);
	U(migrations_to_dev); U(bytes_to_dev); U(ns_to_dev);
	U(allocs); U(frees); U(live_allocs); U(live_bytes); U(registered_ranges);
	U(events_remove); U(events_unmap); U(events_remap); U(device_bytes_dropped);
	U(free_pending_bytes); U(dup_collapses);
#undef U
	json_obj_end(j);
}

static void json_pm(struct json *j, const struct usvm_pagemap_stats *p)
{
	json_obj_begin(j, "pagemap");
#define U(f) json_u64(j, #f, p->f)
	U(capacity_bytes); U(used_bytes); U(peak_used_bytes); U(live_allocations);
	U(populate_calls); U(populate_ok); U(populate_noop); U(populate_enomem);
	U(populate_enodev); U(populate_efault); U(populate_einval); U(populate_ebusy);
	U(pages_migrated_in); U(pages_cleared); U(pages_already_present); U(pages_from_peer);
	U(migrations_to_dev); U(bytes_to_dev); U(ns_to_dev);
	U(migrations_to_ram); U(bytes_to_ram); U(ns_to_ram);
	U(cpu_fault_migrations); U(evictions); U(evicted_bytes); U(unbound);
#undef U
	json_obj_end(j);
}

static void json_dev(struct json *j, const struct usvm_device_stats *s)
{
	json_obj_begin(j, "device");
#define U(f) json_u64(j, #f, s->f)
	U(device_faults); U(fault_retries); U(fatal_faults); U(migrations_requested);
	U(migration_failures); U(ranges_created); U(ranges_removed); U(ranges_live);
	U(invalidations); U(bytes_mapped_system); U(bytes_mapped_device); U(bytes_mapped_peer);
	U(atomics); U(bytes_read); U(bytes_written);
	U(advice_in_place); U(thrash_events); U(thrash_throttles); U(thrash_pins);
	U(thrash_bytes_kept); U(density_prefetches); U(density_prefetch_bytes); U(dup_copies);
	U(dup_bytes);
#undef U
	json_obj_end(j);
}

void report_json(struct cli_run *r, const struct cli_snap *s, FILE *f)
{
	static const char *pol[] = { "always", "once", "never" };
	struct totals t;
	struct json j;
	unsigned d, i;

	totals_of(r, s, &t);
	json_init(&j, f, 1);
	json_obj_begin(&j, NULL);
	json_str(&j, "usvm_version", USVM_VERSION_STRING);
	json_str(&j, "command", "run");
	json_str(&j, "workload", r->wl->name);
	json_bool(&j, "ok", !run_failed(r));
	if (run_failed(r))
		json_str(&j, "error", r->errmsg);
	else
		json_null(&j, "error");

	json_obj_begin(&j, "config");
	json_u64(&j, "size", r->size);
	json_u64(&j, "device_mem", r->dev_mem);
	json_u64(&j, "devices", r->ndev);
	json_u64(&j, "timeslice_ms", r->o->timeslice_ms);
	json_arr_begin(&j, "chunks");
	if (r->o->chunks[0]) {
		for (i = 0; i < 4 && r->o->chunks[i]; i++)
			json_u64(&j, NULL, r->o->chunks[i]);
	} else {
		json_u64(&j, NULL, 2u << 20);
		json_u64(&j, NULL, 64u << 10);
		json_u64(&j, NULL, 4u << 10);
	}
	json_arr_end(&j);
	json_str(&j, "policy", pol[r->o->policy]);
	json_u64(&j, "iterations", r->iterations);
	json_u64(&j, "seed", r->o->seed);
	json_u64(&j, "threads", r->threads);
	json_u64(&j, "sample_ms", r->o->sample_ms);
	json_arr_begin(&j, "advise");
	for (i = 0; i < r->o->nadvice; i++)
		json_str(&j, NULL, r->o->advice[i].text);
	json_arr_end(&j);
	if (!r->o->prefetch) {
		json_null(&j, "prefetch");
	} else if (r->o->prefetch_dev >= 0) {
		char dn[16];

		snprintf(dn, sizeof(dn), "dev%d", r->o->prefetch_dev);
		json_str(&j, "prefetch", dn);
	} else {
		json_str(&j, "prefetch", r->o->prefetch == (CLI_PREFETCH_DEVICE | CLI_PREFETCH_SYSTEM) ?
			 "both" : r->o->prefetch == CLI_PREFETCH_DEVICE ? "device" : "system");
	}
	json_obj_end(&j);

	json_obj_begin(&j, "totals");
	json_dbl(&j, "time_s", t.time_s);
	json_u64(&j, "workload_bytes", t.workload_bytes);
	json_u64(&j, "bytes_processed", t.bytes);
	json_dbl(&j, "throughput_bytes_per_s", t.time_s > 0 ? (double)t.bytes / t.time_s : 0);
	json_u64(&j, "cpu_faults", s->mm.cpu_faults);
	json_u64(&j, "cpu_faults_devmem", s->mm.cpu_faults_devmem);
	json_u64(&j, "cpu_faults_first_touch", s->mm.cpu_faults_first_touch);
	json_u64(&j, "cpu_faults_raced", s->mm.cpu_faults_raced);
	json_u64(&j, "timeslice_waits", s->mm.timeslice_waits);
	json_u64(&j, "device_faults", t.device_faults);
	json_u64(&j, "migrations_to_device", t.mig_dev);
	json_u64(&j, "bytes_to_device", t.bytes_dev);
	json_u64(&j, "pages_cleared", t.cleared);
	json_u64(&j, "migrations_to_system", t.mig_ram);
	json_u64(&j, "bytes_to_system", t.bytes_ram);
	json_u64(&j, "migrations_to_system_by_cpu_fault", t.by_cpu);
	json_u64(&j, "evictions", t.evictions);
	json_u64(&j, "evicted_bytes", t.evicted_bytes);
	json_u64(&j, "migrations_to_system_other", t.other);
	json_u64(&j, "thrash_events", t.thrash);
	json_u64(&j, "thrash_throttles", t.throttles);
	json_u64(&j, "thrash_pins", t.pins);
	json_u64(&j, "thrash_bytes_kept", t.kept);
	json_u64(&j, "advice_in_place", t.in_place);
	json_u64(&j, "dup_copies", t.dups);
	json_u64(&j, "dup_bytes", t.dup_bytes);
	json_u64(&j, "dup_collapses", s->mm.dup_collapses);
	json_u64(&j, "prefetch_calls", s->pf.calls);
	json_u64(&j, "prefetch_bytes_requested", s->pf.bytes);
	json_u64(&j, "prefetch_bytes_to_device", s->pf.to_dev);
	json_u64(&j, "prefetch_bytes_to_system", s->pf.to_sys);
	json_u64(&j, "prefetch_failed", s->pf.failed);
	json_u64(&j, "prefetch_skipped", s->pf.skipped);
	json_u64(&j, "bytes_moved_by_prefetch", s->pf.to_dev + s->pf.to_sys);
	json_u64(&j, "bytes_moved_on_demand", t.bytes_dev + t.bytes_ram - s->pf.to_dev -
		 s->pf.to_sys);
	json_obj_end(&j);

	json_mm(&j, &s->mm);

	json_arr_begin(&j, "devices");
	for (d = 0; d < r->ndev; d++) {
		json_obj_begin(&j, NULL);
		json_str(&j, "name", r->devname[d]);
		json_u64(&j, "thrash_events", s->thrash[d]);
		json_dev(&j, &s->dev[d]);
		json_pm(&j, &s->pm[d]);
		json_obj_end(&j);
	}
	json_arr_end(&j);

	json_arr_begin(&j, "phases");
	for (i = 0; i < r->nphases; i++) {
		const struct cli_phase *p = &r->phases[i];
		uint64_t df = 0, th = 0;

		for (d = 0; d < r->ndev; d++) {
			df += p->delta.dev[d].device_faults;
			th += p->delta.thrash[d];
		}
		json_obj_begin(&j, NULL);
		json_u64(&j, "index", i + 1);
		json_str(&j, "name", p->name);
		json_str(&j, "actor", p->actor);
		json_dbl(&j, "start_s", p->t0);
		json_dbl(&j, "time_s", p->t1 - p->t0);
		json_u64(&j, "cpu_faults", p->delta.mm.cpu_faults);
		json_u64(&j, "cpu_faults_devmem", p->delta.mm.cpu_faults_devmem);
		json_u64(&j, "device_faults", df);
		json_u64(&j, "migrations_to_device", p->delta.mm.migrations_to_dev);
		json_u64(&j, "bytes_to_device", p->delta.mm.bytes_to_dev);
		json_u64(&j, "migrations_to_system", p->delta.mm.migrations_to_ram);
		json_u64(&j, "bytes_to_system", p->delta.mm.bytes_to_ram);
		json_u64(&j, "thrash_events", th);
		json_u64(&j, "prefetch_bytes_to_device", p->delta.pf.to_dev);
		json_u64(&j, "prefetch_bytes_to_system", p->delta.pf.to_sys);
		json_obj_begin(&j, "resident_after");
		json_u64(&j, "system", p->resident[0]);
		for (d = 0; d < r->ndev; d++)
			json_u64(&j, r->devname[d], p->resident[d + 1]);
		json_obj_end(&j);
		json_obj_end(&j);
	}
	json_arr_end(&j);
	json_obj_end(&j);
	json_finish(&j);
}

// SPDX-License-Identifier: MIT
/*
 * usvm CLI: the sampler thread.
 *
 * Every --sample-ms (and at every phase boundary) it reads, for each 2 MiB
 * block of the workload buffers, the bytes held by each device's memory
 * (usvm_resident_bytes).  From that it counts thrash events: a block that had
 * been in a device's memory, left it (its resident bytes went down) and then
 * came back (went up again).  With --plot it also keeps a time series of
 * residency and of faults per interval by source.  It draws the progress bar
 * on stderr when asked (stderr is a terminal and the run passed 1 s).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"

struct seg {
	const char *addr;
	size_t len;
	uint64_t last[CLI_MAX_DEVICES];
	uint8_t left[CLI_MAX_DEVICES];
};

struct monitor {
	struct cli_run *r;
	pthread_t th;
	int started;
	int stop;
	pthread_mutex_t lock;      /* everything below, and sampling */
	pthread_cond_t cv;
	unsigned interval_ms;

	struct seg *segs;
	size_t nsegs, cap_segs;
	uint64_t total_bytes;
	uint64_t thrash[CLI_MAX_DEVICES];

	int keep;
	struct mon_sample *samples;
	unsigned nsamples, cap_samples;
	uint64_t prev_cpu_faults, prev_dev_faults[CLI_MAX_DEVICES];

	int progress;
	int prog_shown;
	uint64_t last_prog_ns;
	char label[80];
};

void monitor_add_buf(struct monitor *m, void *p, size_t len)
{
	const char *a = p, *end = a + len;

	pthread_mutex_lock(&m->lock);
	while (a < end) {
		uintptr_t next = ((uintptr_t)a & ~(USVM_BLOCK_SIZE - 1)) + USVM_BLOCK_SIZE;
		size_t l = (size_t)((const char *)next < end ? (const char *)next - a : end - a);

		if (m->nsegs == m->cap_segs) {
			size_t cap = m->cap_segs ? 2 * m->cap_segs : 64;
			struct seg *ns = realloc(m->segs, cap * sizeof(*ns));

			if (!ns)
				break;
			m->segs = ns;
			m->cap_segs = cap;
		}
		memset(&m->segs[m->nsegs], 0, sizeof(struct seg));
		m->segs[m->nsegs].addr = a;
		m->segs[m->nsegs].len = l;
		m->nsegs++;
		a += l;
	}
	m->total_bytes += len;
	pthread_mutex_unlock(&m->lock);
}

void monitor_set_label(struct monitor *m, unsigned idx, const char *name, double t)
{
	(void)t;
	pthread_mutex_lock(&m->lock);
	snprintf(m->label, sizeof(m->label), "phase %u: %s", idx, name);
	pthread_mutex_unlock(&m->lock);
}

/* Caller holds m->lock. */
static void sample_locked(struct monitor *m)
{
	struct cli_run *r = m->r;
	struct mon_sample s;
	uint64_t devsum = 0;
	unsigned d;
	size_t i;

	memset(&s, 0, sizeof(s));
	for (i = 0; i < m->nsegs; i++) {
		struct seg *g = &m->segs[i];

		for (d = 0; d < r->ndev; d++) {
			long b = usvm_resident_bytes(r->mm, g->addr, g->len, r->pm[d]);
			uint64_t v = b > 0 ? (uint64_t)b : 0;

			if (v < g->last[d]) {
				g->left[d] = 1;
			} else if (v > g->last[d] && g->left[d]) {
				m->thrash[d]++;
				g->left[d] = 0;
			}
			g->last[d] = v;
			s.resident[d + 1] += v;
		}
	}
	if (!m->keep || !atomic_load(&r->t_start_ns))
		return;
	for (d = 0; d < r->ndev; d++)
		devsum += s.resident[d + 1];
	s.resident[0] = m->total_bytes > devsum ? m->total_bytes - devsum : 0;
	s.t = (double)(cli_now_ns() - atomic_load(&r->t_start_ns)) / 1e9;
	{
		struct usvm_mm_stats ms;

		usvm_mm_stats(r->mm, &ms);
		s.cpu_faults = ms.cpu_faults - m->prev_cpu_faults;
		m->prev_cpu_faults = ms.cpu_faults;
	}
	for (d = 0; d < r->ndev; d++) {
		struct usvm_device_stats ds;

		usvm_device_stats(r->dev[d], &ds);
		s.dev_faults[d] = ds.device_faults - m->prev_dev_faults[d];
		m->prev_dev_faults[d] = ds.device_faults;
	}
	if (m->nsamples == m->cap_samples) {
		unsigned cap = m->cap_samples ? 2 * m->cap_samples : 1024;
		struct mon_sample *ns = realloc(m->samples, cap * sizeof(*ns));

		if (!ns)
			return;
		m->samples = ns;
		m->cap_samples = cap;
	}
	m->samples[m->nsamples++] = s;
}

void monitor_sample(struct monitor *m)
{
	pthread_mutex_lock(&m->lock);
	sample_locked(m);
	pthread_mutex_unlock(&m->lock);
}

uint64_t monitor_thrash(struct monitor *m, unsigned d)
{
	uint64_t v;

	pthread_mutex_lock(&m->lock);
	v = d < CLI_MAX_DEVICES ? m->thrash[d] : 0;
	pthread_mutex_unlock(&m->lock);
	return v;
}

static void progress_clear_locked(struct monitor *m)
{
	if (m->prog_shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		m->prog_shown = 0;
	}
}

void monitor_output_begin(struct monitor *m)
{
	pthread_mutex_lock(&m->lock);
	progress_clear_locked(m);
}

void monitor_output_end(struct monitor *m)
{
	pthread_mutex_unlock(&m->lock);
}

/* Caller holds m->lock. */
static void progress_draw_locked(struct monitor *m, uint64_t now)
{
	struct cli_run *r = m->r;
	uint64_t done = atomic_load_explicit(&r->work_done, memory_order_relaxed);
	uint64_t t0 = atomic_load(&r->t_start_ns);
	double frac, el;
	char bar[31];
	int i, fill;

	if (!t0 || now - t0 < 1000000000ull || !r->work_total)
		return;
	if (m->prog_shown && now - m->last_prog_ns < 100000000ull)
		return;
	m->last_prog_ns = now;
	frac = (double)done / (double)r->work_total;
	if (frac > 1)
		frac = 1;
	fill = (int)(frac * 30);
	for (i = 0; i < 30; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[30] = 0;
	el = (double)(now - t0) / 1e9;
	fprintf(stderr, "\r\033[K[%s] %3d%%  %.1fs  %.50s", bar, (int)(frac * 100), el, m->label);
	fflush(stderr);
	m->prog_shown = 1;
}

static void *monitor_thread(void *a)
{
	struct monitor *m = a;
	struct timespec ts;

	pthread_mutex_lock(&m->lock);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	while (!m->stop) {
		ts.tv_nsec += (long)m->interval_ms * 1000000L;
		while (ts.tv_nsec >= 1000000000L) {
			ts.tv_nsec -= 1000000000L;
			ts.tv_sec++;
		}
		while (!m->stop && pthread_cond_timedwait(&m->cv, &m->lock, &ts) != ETIMEDOUT)
			;
		if (m->stop)
			break;
		sample_locked(m);
		if (m->progress)
			progress_draw_locked(m, cli_now_ns());
		/* Do not fall behind when a sample took longer than the interval. */
		{
			struct timespec now;

			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec > ts.tv_sec || (now.tv_sec == ts.tv_sec && now.tv_nsec > ts.tv_nsec))
				ts = now;
		}
	}
	progress_clear_locked(m);
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

struct monitor *monitor_start(struct cli_run *r, unsigned sample_ms, int keep_samples,
			      int progress)
{
	struct monitor *m = calloc(1, sizeof(*m));
	pthread_condattr_t ca;

	if (!m)
		return NULL;
	m->r = r;
	m->interval_ms = sample_ms ? sample_ms : 5;
	m->keep = keep_samples;
	m->progress = progress;
	pthread_mutex_init(&m->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&m->th, NULL, monitor_thread, m)) {
		pthread_cond_destroy(&m->cv);
		pthread_mutex_destroy(&m->lock);
		free(m);
		return NULL;
	}
	m->started = 1;
	return m;
}

void monitor_stop(struct monitor *m)
{
	if (!m || !m->started)
		return;
	pthread_mutex_lock(&m->lock);
	m->stop = 1;
	pthread_cond_signal(&m->cv);
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->th, NULL);
	m->started = 0;
}

const struct mon_sample *monitor_samples(struct monitor *m, unsigned *n)
{
	*n = m->nsamples;
	return m->samples;
}

void monitor_free(struct monitor *m)
{
	if (!m)
		return;
	monitor_stop(m);
	pthread_cond_destroy(&m->cv);
	pthread_mutex_destroy(&m->lock);
	free(m->segs);
	free(m->samples);
	free(m);
}

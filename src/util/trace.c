// SPDX-License-Identifier: MIT
/*
 * Events: subscribers and the trace file (Chrome Trace Event Format).
 *
 * Each thread formats its events into its own buffer (its lock is only ever
 * contended by a flush of all buffers, at stop or exit); a full buffer is
 * appended to the file under the file lock.  After every append the file
 * ends with a closing metadata event and "]}", written past the end and
 * overwritten by the next append, so the file is valid JSON whenever no
 * append is in progress.  One event per line, so `usvm trace` and scripts
 * can read it line by line.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include "util.h"
#include "trace.h"

#define MAX_SUBSCRIBERS 8
#define TBUF_SIZE (64u << 10)
#define TBUF_FLUSH (TBUF_SIZE - 1024)  /* an event line is well under 1 KiB */

atomic_int usvm_events_on;

/* ---- subscribers ----------------------------------------------------------------- */

static pthread_rwlock_t sub_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct { usvm_event_fn fn; void *arg; } subs[MAX_SUBSCRIBERS];
static atomic_int nsubs;
static atomic_int tracing;

static void update_on(void)
{
	atomic_store(&usvm_events_on, atomic_load(&nsubs) > 0 || atomic_load(&tracing));
}

int usvm_event_subscribe(usvm_event_fn fn, void *arg)
{
	int i, free_slot = -1, err = 0;

	if (!fn)
		return -EINVAL;
	pthread_rwlock_wrlock(&sub_lock);
	for (i = 0; i < MAX_SUBSCRIBERS; i++) {
		if (subs[i].fn == fn && subs[i].arg == arg)
			err = -EEXIST;
		else if (!subs[i].fn && free_slot < 0)
			free_slot = i;
	}
	if (!err && free_slot < 0)
		err = -ENOSPC;
	if (!err) {
		subs[free_slot].fn = fn;
		subs[free_slot].arg = arg;
		atomic_fetch_add(&nsubs, 1);
		update_on();
	}
	pthread_rwlock_unlock(&sub_lock);
	return err;
}

int usvm_event_unsubscribe(usvm_event_fn fn, void *arg)
{
	int i, err = -ENOENT;

	/* The write lock waits for callbacks running under the read lock. */
	pthread_rwlock_wrlock(&sub_lock);
	for (i = 0; i < MAX_SUBSCRIBERS; i++) {
		if (subs[i].fn && subs[i].fn == fn && subs[i].arg == arg) {
			subs[i].fn = NULL;
			subs[i].arg = NULL;
			atomic_fetch_sub(&nsubs, 1);
			update_on();
			err = 0;
			break;
		}
	}
	pthread_rwlock_unlock(&sub_lock);
	return err;
}

static void call_subscribers(const struct usvm_event *ev)
{
	int i;

	if (!atomic_load_explicit(&nsubs, memory_order_relaxed))
		return;
	pthread_rwlock_rdlock(&sub_lock);
	for (i = 0; i < MAX_SUBSCRIBERS; i++)
		if (subs[i].fn)
			subs[i].fn(ev, subs[i].arg);
	pthread_rwlock_unlock(&sub_lock);
}

/* ---- names --------------------------------------------------------------------------- */

static const char *const type_names[USVM_EV_NR] = {
	[USVM_EV_CPU_FAULT] = "cpu_fault",
	[USVM_EV_DEVICE_FAULT] = "device_fault",
	[USVM_EV_MIGRATE] = "migrate",
	[USVM_EV_POPULATE] = "populate",
	[USVM_EV_INVALIDATE] = "invalidate",
	[USVM_EV_UNBIND] = "unbind",
};

static const char *const cause_names[USVM_CAUSE_NR] = {
	[USVM_CAUSE_NONE] = "none",
	[USVM_CAUSE_POPULATE] = "populate",
	[USVM_CAUSE_CPU_FAULT] = "cpu_fault",
	[USVM_CAUSE_EVICT] = "evict",
	[USVM_CAUSE_PEER] = "peer",
	[USVM_CAUSE_RANGE] = "range",
	[USVM_CAUSE_UNBIND] = "unbind",
	[USVM_CAUSE_UNMAP] = "unmap",
	[USVM_CAUSE_DISCARD] = "discard",
	[USVM_CAUSE_MIGRATE] = "migrate",
	[USVM_CAUSE_WRITE] = "write",
};

static const char *const fault_names[] = {
	[USVM_FAULT_FIRST_TOUCH] = "first_touch",
	[USVM_FAULT_DEVMEM] = "devmem",
	[USVM_FAULT_RACED] = "raced",
	[USVM_FAULT_TIMESLICE] = "timeslice_wait",
};

const char *usvm_event_type_name(int type)
{
	return type >= 0 && type < USVM_EV_NR ? type_names[type] : "unknown";
}

const char *usvm_event_cause_name(const struct usvm_event *ev)
{
	if (!ev)
		return "unknown";
	if (ev->type == USVM_EV_CPU_FAULT)
		return ev->cause >= 0 && ev->cause < (int)ARRAY_SIZE(fault_names)
			       ? fault_names[ev->cause] : "unknown";
	return ev->cause >= 0 && ev->cause < USVM_CAUSE_NR ? cause_names[ev->cause] : "unknown";
}

/* ---- the trace file ------------------------------------------------------------------ */

struct tbuf {
	pthread_mutex_t lock;
	struct tbuf *next;
	uint32_t tid;
	int named;              /* thread_name metadata written */
	size_t len;
	char data[TBUF_SIZE];
};

static pthread_mutex_t file_lock = PTHREAD_MUTEX_INITIALIZER; /* fd, file_off, bufs */
static int trace_fd = -1;
static off_t file_off;
static uint64_t trace_t0_ns;
static int trace_pid;
static struct tbuf *bufs;
static pthread_key_t buf_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static __thread struct tbuf *my_buf;

static uint32_t gettid_cached(void)
{
	static __thread uint32_t tid;

	if (!tid)
		tid = (uint32_t)syscall(SYS_gettid);
	return tid;
}

static void write_all(int fd, const char *p, size_t n, off_t off)
{
	while (n) {
		ssize_t w = pwrite(fd, p, n, off);

		if (w <= 0)
			return; /* a full disk loses the trace, not the program */
		p += w;
		n -= (size_t)w;
		off += w;
	}
}

/* End the file after the last event: a metadata event and "]}".  The next
 * append overwrites it; file_lock held. */
static void write_tail_locked(void)
{
	char tail[160];
	int n;

	n = snprintf(tail, sizeof(tail),
		     "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"args\":{\"name\":\"usvm\"}}\n]}\n",
		     trace_pid);
	write_all(trace_fd, tail, (size_t)n, file_off);
	if (ftruncate(trace_fd, file_off + n)) {
		/* the tail still ends the JSON; what follows is stale bytes */
	}
}

/* Append @b's events and re-write the closing tail; file_lock held. */
static void append_locked(struct tbuf *b)
{
	if (trace_fd < 0 || !b->len)
		return;
	write_all(trace_fd, b->data, b->len, file_off);
	file_off += (off_t)b->len;
	b->len = 0;
	write_tail_locked();
}

static void flush_buf(struct tbuf *b)
{
	pthread_mutex_lock(&file_lock);
	append_locked(b);
	pthread_mutex_unlock(&file_lock);
}

/* A thread exits: its events go to the file, its buffer away. */
static void buf_destroy(void *p)
{
	struct tbuf *b = p, **pp;

	pthread_mutex_lock(&file_lock);
	pthread_mutex_lock(&b->lock);
	append_locked(b);
	pthread_mutex_unlock(&b->lock);
	for (pp = &bufs; *pp; pp = &(*pp)->next) {
		if (*pp == b) {
			*pp = b->next;
			break;
		}
	}
	pthread_mutex_unlock(&file_lock);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

static void key_init(void)
{
	pthread_key_create(&buf_key, buf_destroy);
}

static struct tbuf *thread_buf(void)
{
	struct tbuf *b = my_buf;

	if (b)
		return b;
	pthread_once(&key_once, key_init);
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	pthread_mutex_init(&b->lock, NULL);
	b->tid = gettid_cached();
	pthread_mutex_lock(&file_lock);
	b->next = bufs;
	bufs = b;
	pthread_mutex_unlock(&file_lock);
	pthread_setspecific(buf_key, b);
	my_buf = b;
	return b;
}

/* @s as the inside of a JSON string (names come from programs). */
static void trace_json_str(char *out, size_t n, const char *s)
{
	size_t o = 0;

	for (; s && *s && o + 7 < n; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20) {
			o += (size_t)snprintf(out + o, n - o, "\\u%04x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = 0;
}

/* ,"key":"value" when @v is set, else nothing. */
static void opt_field(char *out, size_t n, const char *key, const char *v)
{
	char esc[128];

	out[0] = 0;
	if (!v)
		return;
	trace_json_str(esc, sizeof(esc), v);
	snprintf(out, n, ",\"%s\":\"%s\"", key, esc);
}

static void format_thread_name(struct tbuf *b)
{
	char tname[32] = "thread", esc[80];
	size_t room = sizeof(b->data) - b->len;
	int n;

	pthread_getname_np(pthread_self(), tname, sizeof(tname));
	trace_json_str(esc, sizeof(esc), tname);
	n = snprintf(b->data + b->len, room, "{\"name\":\"thread_name\",\"ph\":\"M\","
		     "\"pid\":%d,\"tid\":%u,\"args\":{\"name\":\"%s (%u)\"}},\n",
		     trace_pid, b->tid, esc, b->tid);
	if (n > 0 && (size_t)n < room)
		b->len += (size_t)n;
	b->named = 1;
}

static const char *event_cat(const struct usvm_event *ev, const char **name)
{
	*name = usvm_event_type_name(ev->type);
	switch (ev->type) {
	case USVM_EV_CPU_FAULT:
	case USVM_EV_DEVICE_FAULT:
		return "fault";
	case USVM_EV_MIGRATE:
		*name = ev->to && !strcmp(ev->to, "system") ? "migrate_to_ram" : "migrate_to_device";
		return "migration";
	case USVM_EV_POPULATE:
		return "populate";
	default:
		return "mapping";
	}
}

/* One event as one line of JSON into @b (a line is well under 1 KiB and
 * the buffer is flushed before less than that is left); b->lock held. */
static void format_event(struct tbuf *b, const struct usvm_event *ev)
{
	uint64_t ts = ev->start_ns >= trace_t0_ns ? ev->start_ns - trace_t0_ns : 0;
	char from[160], to[160];
	const char *name, *cat = event_cat(ev, &name);
	size_t room;
	int n;

	if (!b->named)
		format_thread_name(b);
	opt_field(from, sizeof(from), "from", ev->from);
	opt_field(to, sizeof(to), "to", ev->to);
	room = sizeof(b->data) - b->len;
	n = snprintf(b->data + b->len, room,
		     "{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"X\",\"ts\":%" PRIu64 ".%03u,"
		     "\"dur\":%" PRIu64 ".%03u,\"pid\":%d,\"tid\":%u,\"args\":{\"addr\":\"0x%" PRIx64
		     "\",\"len\":%" PRIu64 ",\"cause\":\"%s\",\"result\":%d%s%s}},\n",
		     name, cat, ts / 1000, (unsigned)(ts % 1000), ev->dur_ns / 1000,
		     (unsigned)(ev->dur_ns % 1000), trace_pid, b->tid, ev->addr, ev->len,
		     usvm_event_cause_name(ev), ev->result, from, to);
	if (n > 0 && (size_t)n < room)
		b->len += (size_t)n;
}

static void trace_event(const struct usvm_event *ev)
{
	struct tbuf *b = thread_buf();

	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	/* Stop clears tracing before it flushes every buffer under its lock:
	 * an event formatted after that flush would never be written. */
	if (atomic_load_explicit(&tracing, memory_order_acquire)) {
		format_event(b, ev);
		if (b->len >= TBUF_FLUSH)
			flush_buf(b);
	}
	pthread_mutex_unlock(&b->lock);
}

void _usvm_event_emit(struct usvm_event *ev)
{
	ev->tid = gettid_cached();
	if (!ev->start_ns)
		ev->start_ns = usvm_now_ns() - ev->dur_ns;
	if (atomic_load_explicit(&tracing, memory_order_acquire))
		trace_event(ev);
	call_subscribers(ev);
}

/* Write every thread's buffer (stop, exit). */
static void flush_all(void)
{
	struct tbuf *b;

	pthread_mutex_lock(&file_lock);
	for (b = bufs; b; b = b->next) {
		pthread_mutex_lock(&b->lock);
		append_locked(b);
		pthread_mutex_unlock(&b->lock);
	}
	pthread_mutex_unlock(&file_lock);
}

static void trace_atexit(void)
{
	usvm_trace_stop();
}

/* A program that exits without tearing down still gets a whole trace. */
static void register_atexit(void)
{
	atexit(trace_atexit);
}

int usvm_trace_start(const char *path)
{
	static const char head[] = "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n";
	static pthread_once_t atexit_once = PTHREAD_ONCE_INIT;
	struct tbuf *b;
	int fd;

	if (!path || !*path)
		return -EINVAL;
	pthread_mutex_lock(&file_lock);
	if (trace_fd >= 0) {
		pthread_mutex_unlock(&file_lock);
		return -EBUSY;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		int err = -errno;

		pthread_mutex_unlock(&file_lock);
		return err;
	}
	trace_fd = fd;
	trace_pid = getpid();
	trace_t0_ns = usvm_now_ns();
	write_all(fd, head, sizeof(head) - 1, 0);
	file_off = sizeof(head) - 1;
	for (b = bufs; b; b = b->next) {
		pthread_mutex_lock(&b->lock);
		b->named = 0; /* a new file names its threads again */
		b->len = 0;
		pthread_mutex_unlock(&b->lock);
	}
	write_tail_locked(); /* an empty trace is valid too */
	pthread_mutex_unlock(&file_lock);
	pthread_once(&atexit_once, register_atexit);
	atomic_store(&tracing, 1);
	update_on();
	return 0;
}

int usvm_trace_stop(void)
{
	pthread_mutex_lock(&file_lock);
	if (trace_fd < 0) {
		pthread_mutex_unlock(&file_lock);
		return -ENOENT;
	}
	pthread_mutex_unlock(&file_lock);
	atomic_store(&tracing, 0);
	update_on();
	flush_all();
	pthread_mutex_lock(&file_lock);
	write_tail_locked();
	close(trace_fd);
	trace_fd = -1;
	pthread_mutex_unlock(&file_lock);
	return 0;
}

void usvm_trace_from_env(const char *path)
{
	const char *p = path && *path ? path : usvm_option_string(USVM_OPT_TRACE);
	int err;

	if (!p || !*p)
		return;
	err = usvm_trace_start(p);
	if (err && err != -EBUSY)
		fprintf(stderr, "usvm: cannot write the trace %s: %s\n", p, strerror(-err));
}

// SPDX-License-Identifier: MIT
/* usvm CLI: formatting, time, usage errors. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"

uint64_t cli_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double cli_now_s(void)
{
	return (double)cli_now_ns() / 1e9;
}

const char *fmt_bytes(char *buf, size_t n, uint64_t b)
{
	static const char *unit[] = { "KiB", "MiB", "GiB", "TiB" };
	double v = (double)b;
	int u = -1;

	if (b < 1024) {
		snprintf(buf, n, "%" PRIu64 " B", b);
		return buf;
	}
	while (v >= 1024.0 && u < 3) {
		v /= 1024.0;
		u++;
	}
	if (v == (double)(uint64_t)v)
		snprintf(buf, n, "%.0f %s", v, unit[u]);
	else
		snprintf(buf, n, "%.1f %s", v, unit[u]);
	return buf;
}

const char *fmt_count(char *buf, size_t n, uint64_t v)
{
	char tmp[32];
	int len = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
	size_t o = 0;
	int i;

	for (i = 0; i < len && o + 2 < n; i++) {
		if (i && (len - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = tmp[i];
	}
	buf[o] = 0;
	return buf;
}

const char *fmt_size_short(char *buf, size_t n, uint64_t b)
{
	if (b && b % (1ull << 30) == 0)
		snprintf(buf, n, "%" PRIu64 "G", b >> 30);
	else if (b && b % (1ull << 20) == 0)
		snprintf(buf, n, "%" PRIu64 "M", b >> 20);
	else if (b && b % (1ull << 10) == 0)
		snprintf(buf, n, "%" PRIu64 "K", b >> 10);
	else
		snprintf(buf, n, "%" PRIu64, b);
	return buf;
}

unsigned cli_ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (unsigned)n : 1;
}

const char *cli_prog = "usvm";

int is_help(const char *a)
{
	return !strcmp(a, "--help") || !strcmp(a, "-h");
}

int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s%s%s: ", cli_prog, cmd ? " " : "", cmd ? cmd : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_USAGE;
}

void explain_setup_error(const char *what, int err)
{
	fprintf(stderr, "%s: %s: %s\n", cli_prog, what, usvm_strerror(err));
	if (err == -EPERM) {
		fprintf(stderr, "  To allow unprivileged use: give this user read+write access to\n"
			"  /dev/userfaultfd, or 'sudo sysctl vm.unprivileged_userfaultfd=1'\n");
	} else if (err == -ENOSYS) {
		fprintf(stderr,
			"  usvm migrates pages with UFFDIO_MOVE, which needs Linux 6.8 or newer\n"
			"  (CONFIG_USERFAULTFD=y).\n");
	}
	fprintf(stderr, "  'usvm info' shows what this machine offers.\n");
}


// SPDX-License-Identifier: MIT
/* Environment options and size parsing. */
#include <errno.h>
#include <stdlib.h>
#include <ctype.h>
#include "usvm.h"
#include "util.h"

int usvm_verbose;

__attribute__((constructor)) static void usvm_env_init(void)
{
	usvm_verbose = (int)usvm_env_ulong("USVM_VERBOSE", 0);
}

int usvm_parse_size(const char *s, size_t *out)
{
	unsigned long long v, mul = 1;
	char *end;

	if (!s || !out || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	switch (*end) {
	case 'k': case 'K': mul = 1ull << 10; end++; break;
	case 'm': case 'M': mul = 1ull << 20; end++; break;
	case 'g': case 'G': mul = 1ull << 30; end++; break;
	case 't': case 'T': mul = 1ull << 40; end++; break;
	default: break;
	}
	if (mul > 1 && (*end == 'i' || *end == 'I') && (end[1] == 'b' || end[1] == 'B'))
		end += 2;
	else if (*end == 'b' || *end == 'B')
		end++;
	if (*end)
		return -EINVAL;
	if ((v && mul > ~0ull / v) || v * mul > (unsigned long long)SIZE_MAX)
		return -ERANGE;
	*out = (size_t)(v * mul);
	return 0;
}

unsigned long usvm_env_ulong(const char *name, unsigned long def)
{
	const char *s = getenv(name);
	char *end;
	unsigned long v;

	if (!s || !*s)
		return def;
	v = strtoul(s, &end, 0);
	return *end ? def : v;
}

size_t usvm_env_size(const char *name, size_t def)
{
	const char *s = getenv(name);
	size_t v;

	if (!s || usvm_parse_size(s, &v))
		return def;
	return v;
}

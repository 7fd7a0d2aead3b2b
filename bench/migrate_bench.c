// SPDX-License-Identifier: MIT
/*
 * migrate_bench: the usvm benchmark suite as a program of its own, the same
 * code as `usvm bench` (src/cli/bench.c, src/cli/bench_suite.c) and the same
 * options: see `migrate_bench --help`.
 */
#include <errno.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/bench.h"

int main(int argc, char **argv)
{
	int rc;

	cli_prog = "migrate_bench";
	setvbuf(stdout, NULL, _IOLBF, 0);
	rc = bench_main(NULL, argc - 1, argv + 1);
	/* A report that did not reach its destination is a failure. */
	errno = 0;
	if (fflush(stdout) == 0 && !ferror(stdout))
		return rc;
	fprintf(stderr, "%s: error writing to standard output%s%s\n", cli_prog,
		errno ? ": " : "", errno ? strerror(errno) : "");
	return rc == EXIT_OK ? EXIT_FAIL : rc;
}

// SPDX-License-Identifier: MIT
/* usvm CLI: entry point, subcommand dispatch, --help, --version, errors. */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include "cli.h"

static const char main_help[] =
"usvm - user-space shared virtual memory between CPU threads and devices\n"
"\n"
"Usage: usvm COMMAND [options]\n"
"\n"
"Commands:\n"
"  run WORKLOAD    run a built-in workload on managed memory and simulated\n"
"                  devices, verify it, and report faults and migrations\n"
"                  (stream, stencil, random, pingpong, oversubscribe)\n"
"  demo            a guided tour: the stream workload, explained phase by phase\n"
"  info            what this machine offers: userfaultfd, features, backends\n"
"  bench           the benchmark suite: first touch, faults, migration, free,\n"
"                  launch, scaling; each against a baseline in the same run\n"
"  trace FILE      sum up a trace (USVM_TRACE=FILE): migrations by cause, the\n"
"                  blocks that moved most, fault latencies; --plot a heatmap\n"
"  help [COMMAND]  help for a command (same as COMMAND --help)\n"
"\n"
"Options:\n"
"  -h, --help      this help\n"
"  -V, --version   print the version\n"
"\n"
"Start with:\n"
"  usvm info\n"
"  usvm run stream\n"
"\n"
"Environment: USVM_* options ('usvm info' lists every one with its value).\n"
"See usvm(1), usvm(3).\n";

static int cmd_help(int argc, char **argv)
{
	char *h[] = { "--help" };

	if (argc < 1) {
		fputs(main_help, stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[0], "run"))
		return cmd_run(1, h);
	if (!strcmp(argv[0], "demo"))
		return cmd_demo(1, h);
	if (!strcmp(argv[0], "info"))
		return cmd_info(1, h);
	if (!strcmp(argv[0], "bench"))
		return cmd_bench(1, h);
	if (!strcmp(argv[0], "trace"))
		return cmd_trace(1, h);
	return usage_error("help", "no command '%s' (commands: run, demo, info, bench, trace)",
			   argv[0]);
}

static int dispatch(int argc, char **argv)
{
	const char *cmd;

	if (argc < 2) {
		fputs(main_help, stderr);
		return EXIT_USAGE;
	}
	cmd = argv[1];
	if (is_help(cmd)) {
		fputs(main_help, stdout);
		return EXIT_OK;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V") || !strcmp(cmd, "version")) {
		printf("usvm %s\n", USVM_VERSION_STRING);
		return EXIT_OK;
	}
	if (!strcmp(cmd, "run"))
		return cmd_run(argc - 2, argv + 2);
	if (!strcmp(cmd, "demo"))
		return cmd_demo(argc - 2, argv + 2);
	if (!strcmp(cmd, "info"))
		return cmd_info(argc - 2, argv + 2);
	if (!strcmp(cmd, "bench"))
		return cmd_bench(argc - 2, argv + 2);
	if (!strcmp(cmd, "trace"))
		return cmd_trace(argc - 2, argv + 2);
	if (!strcmp(cmd, "help"))
		return cmd_help(argc - 2, argv + 2);
	if (cmd[0] == '-')
		return usage_error(NULL, "unknown option '%s' (see 'usvm --help')", cmd);
	return usage_error(NULL, "unknown command '%s'; commands: run, demo, info, bench, trace, "
			   "help", cmd);
}

/* A command's output that did not reach its destination is a failure
 * (e.g. 'usvm run stream --json > /dev/full'). */
static int finish_stdout(int rc)
{
	errno = 0;
	if (fflush(stdout) == 0 && !ferror(stdout))
		return rc;
	fprintf(stderr, "%s: error writing to standard output%s%s\n", cli_prog,
		errno ? ": " : "", errno ? strerror(errno) : "");
	return rc == EXIT_OK ? EXIT_FAIL : rc;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	return finish_stdout(dispatch(argc, argv));
}

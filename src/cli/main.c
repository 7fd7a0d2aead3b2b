// SPDX-License-Identifier: MIT
/* usvm CLI: entry point, subcommand dispatch, --help, --version, errors. */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include "cli.h"

const char *cli_prog = "usvm";

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
"  bench           migration throughput vs memcpy for 4K, 64K and 2M allocations\n"
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
"Environment: USVM_FAULT_THREADS (CPU fault handler threads, default 4),\n"
"USVM_ARENA_SIZE (managed arena size), USVM_VERBOSE.  See usvm(1), usvm(3).\n";

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
		fprintf(stderr, "  To allow unprivileged use:  sudo sysctl vm.unprivileged_userfaultfd=1\n");
	} else if (err == -ENOSYS) {
		fprintf(stderr,
			"  usvm migrates pages with UFFDIO_MOVE, which needs Linux 6.8 or newer\n"
			"  (CONFIG_USERFAULTFD=y).\n");
	}
	fprintf(stderr, "  'usvm info' shows what this machine offers.\n");
}

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
	return usage_error("help", "no command '%s' (commands: run, demo, info, bench)", argv[0]);
}

int main(int argc, char **argv)
{
	const char *cmd;

	setvbuf(stdout, NULL, _IOLBF, 0);
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
	if (!strcmp(cmd, "help"))
		return cmd_help(argc - 2, argv + 2);
	if (cmd[0] == '-')
		return usage_error(NULL, "unknown option '%s' (see 'usvm --help')", cmd);
	return usage_error(NULL, "unknown command '%s'; commands: run, demo, info, bench, help",
			   cmd);
}

/* SPDX-License-Identifier: MIT */
/* usvm CLI: the options of `run` (args.c). */
#ifndef USVM_CLI_ARGS_H
#define USVM_CLI_ARGS_H

#include "cli.h"

extern const char run_help[];
void run_opts_defaults(struct run_opts *o);
/*
 * Parse the options of `run` (argv excludes the subcommand).  Returns 0,
 * -1 when --help was printed, or EXIT_USAGE after printing the reason.
 */
int parse_run_args(int argc, char **argv, struct run_opts *o, int need_workload);

#endif

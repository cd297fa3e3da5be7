/*
 * cli: the command line both binaries share:
 *   PROG [-c FILE] [--check-config] [COMMAND]   PROG --version | --help
 * Exit codes follow sysexits: 64 usage, 78 configuration.
 */
#ifndef MTA_CLI_H
#define MTA_CLI_H

#include <stdbool.h>

#define CLI_EXIT_USAGE 64
#define CLI_EXIT_CONFIG 78
#define CLI_CONTINUE (-1)

struct cli {
	const char *config; /* -c FILE, or NULL for built-in defaults */
	bool check_config;
	bool json;	     /* --json: machine-readable output of a command */
	const char *command; /* one of the allowed commands, or NULL */
};

/*
 * Parses argv. commands: NULL-terminated list of allowed subcommands.
 * Returns CLI_CONTINUE, or an exit code (0 after --version/--help).
 */
int cli_parse(int argc, char **argv, const char *prog, const char *usage,
	      const char *const *commands, struct cli *out);

#endif

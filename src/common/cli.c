/*
 * cli: see cli.h.
 */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

int
cli_parse(int argc, char **argv, const char *prog, const char *usage,
	  const char *const *commands, struct cli *out)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check-config", no_argument, NULL, 'C'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {"json", no_argument, NULL, 'j'},
	    {NULL, 0, NULL, 0},
	};
	int opt;

	memset(out, 0, sizeof *out);
	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			out->config = optarg;
			break;
		case 'C':
			out->check_config = true;
			break;
		case 'V':
			printf("%s %s\n", prog, MTA_VERSION);
			return 0;
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'j':
			out->json = true;
			break;
		default:
			fputs(usage, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		for (size_t i = 0; commands && commands[i]; i++)
			if (strcmp(argv[optind], commands[i]) == 0)
				out->command = commands[i];
		if (!out->command || optind + 1 != argc || out->check_config) {
			fputs(usage, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (out->json && !out->command) { /* --json goes with a command */
		fputs(usage, stderr);
		return CLI_EXIT_USAGE;
	}
	return CLI_CONTINUE;
}

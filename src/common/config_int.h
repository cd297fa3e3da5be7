/*
 * config_int (private to config.c and config_table.c): the parse state of
 * one config_load() call and the two calls the walkers share.
 */
#ifndef MTA_CONFIG_INT_H
#define MTA_CONFIG_INT_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <yaml.h>

/* Feeds libyaml from a FILE, counting bytes so the file stays bounded. */
struct config_reader {
	FILE *fp;
	size_t total;
	int read_errno; /* set when fread failed */
	bool too_big;
};

/* One accepted path: the first len bytes of keys[key].path. */
struct config_seen {
	size_t key;
	size_t len;
};

struct config_ctx {
	const char *file;
	const struct config_key *keys;
	size_t nkeys;
	char *target;
	char *err;
	size_t errlen;
	yaml_parser_t parser;
	struct config_reader reader;
	struct config_seen *seen;
	size_t nseen;
	size_t seen_cap;
};

/*
 * Sets the error: "FILE:LINE:COLUMN: message" at a libyaml mark, or
 * "FILE: message" without one. Returns -1.
 */
int config_fail(struct config_ctx *ctx, const yaml_mark_t *mark,
		const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Next event; rejects aliases, anchors, tags and NUL bytes. */
int config_next(struct config_ctx *ctx, yaml_event_t *ev);

/* TABLE and MAP values (config_table.c); ev starts the value's node. */
int config_set_table(struct config_ctx *ctx, const struct config_key *key,
		     const yaml_event_t *ev);
int config_set_map(struct config_ctx *ctx, const struct config_key *key,
		   const yaml_event_t *ev);
void config_table_clear(struct config_table *);

#endif

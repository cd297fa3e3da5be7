/*
 * config_value (private to config.c): one YAML node to one typed field.
 *
 * Owns the value conversions of config: UINT, SIZE and DURATION with their
 * units, BOOL, ENUM, STRING, the checks on one LIST item, and the way a
 * value, a node or a bound is shown in an error message.
 *
 * Invariants:
 * - Pure: no file, no parser, no position. A failing call returns -1 with
 *   msg holding "path: message"; config.c prefixes "FILE:LINE:COLUMN: ".
 * - A field is written only on success; a replaced STRING is freed.
 */
#ifndef MTA_CONFIG_VALUE_H
#define MTA_CONFIG_VALUE_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>

#include <yaml.h>

#define CONFIG_VALUE_SHOW_MAX 64 /* bytes of a value quoted in errors */
#define CONFIG_VALUE_SHOW_CAP (CONFIG_VALUE_SHOW_MAX + 8) /* 'that...' */

/* A plain scalar spelling null: empty, ~, null, Null, NULL. */
bool config_value_is_null(const yaml_event_t *ev);

/*
 * Copies a value for an error message into dst (CONFIG_VALUE_SHOW_MAX + 4
 * bytes): at most CONFIG_VALUE_SHOW_MAX bytes then "...", control bytes
 * as '?'.
 */
void config_value_show(char *dst, const unsigned char *s, size_t n);

/* What a node is, for "got ..." in messages: 'text', null, a list, ... */
void config_value_describe(char *dst, size_t cap, const yaml_event_t *ev);

/*
 * Stores the node ev (any event that starts a node) into field, the
 * member of the settings struct named by key; key->type is not
 * CONFIG_LIST (config.c walks lists). Returns 0, or -1 with msg set.
 */
int config_value_set(const struct config_key *key, const yaml_event_t *ev,
		     void *field, char *msg, size_t cap);

/*
 * A scalar as a new string (STRING values and LIST items): not null, at
 * most CONFIG_STRING_MAX bytes. Returns 0 with *out malloc'd, or -1.
 */
int config_value_string(const char *path, const yaml_event_t *ev, char **out,
			char *msg, size_t cap);

/*
 * Item n (0-based) of the list at key: a scalar, and no more than
 * CONFIG_LIST_MAX of them. Returns 0 with *out malloc'd, or -1.
 */
int config_value_list_item(const struct config_key *key, const yaml_event_t *ev,
			   size_t n, char **out, char *msg, size_t cap);

#endif

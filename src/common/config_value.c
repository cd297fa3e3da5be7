/*
 * config_value: the value conversions behind config_load().
 *
 * Owns: parsing a scalar into a typed field (UINT; SIZE in powers of 1024;
 * DURATION in milliseconds, a bare number being seconds; BOOL; ENUM by
 * name; STRING), the checks on one LIST item, and how values, nodes and
 * bounds are shown in error messages (1K, 1h, 'text...', null).
 *
 * Invariants:
 * - Nothing here sees the file or the parser: each function takes one
 *   event and writes either the field or msg ("path: message"), never both.
 * - Numbers are whole, unsigned and checked for 64-bit overflow before and
 *   after the unit multiplies them; bounds are inclusive.
 * - Quoted values are cut at CONFIG_VALUE_SHOW_MAX bytes and their control
 *   bytes shown as '?', so a message is bounded and stays on one line.
 */
#include "config_value.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A unit suffix; show marks the ones used to print bounds (ascending). */
struct config_value_unit {
	const char *name;
	uint64_t mult;
	bool show;
};

#define CONFIG_VALUE_KIB 1024
#define CONFIG_VALUE_MIB (1024 * 1024)
#define CONFIG_VALUE_GIB (1024 * 1024 * 1024)

/* Powers of 1024; "b" is bytes. */
static const struct config_value_unit config_value_size_units[] = {
    {"", 1, false},
    {"b", 1, false},
    {"B", 1, false},
    {"K", CONFIG_VALUE_KIB, true},
    {"k", CONFIG_VALUE_KIB, false},
    {"KiB", CONFIG_VALUE_KIB, false},
    {"M", CONFIG_VALUE_MIB, true},
    {"m", CONFIG_VALUE_MIB, false},
    {"MiB", CONFIG_VALUE_MIB, false},
    {"G", CONFIG_VALUE_GIB, true},
    {"g", CONFIG_VALUE_GIB, false},
    {"GiB", CONFIG_VALUE_GIB, false},
};

/* Milliseconds; a bare number is seconds. */
static const struct config_value_unit config_value_duration_units[] = {
    {"", 1000, false},	{"ms", 1, true},      {"s", 1000, true},
    {"m", 60000, true}, {"h", 3600000, true}, {"d", 86400000, true},
};

/* Sets msg (the message without its position). Returns -1. */
static int config_value_fail(char *msg, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
config_value_fail(char *msg, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (cap == 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(msg, cap, fmt, ap);
	va_end(ap);
	return -1;
}

bool
config_value_is_null(const yaml_event_t *ev)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
	const char *v = (const char *)ev->data.scalar.value;

	if (ev->type != YAML_SCALAR_EVENT ||
	    ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
		if (strcmp(v, nulls[i]) == 0)
			return true;
	return false;
}

void
config_value_show(char *dst, const unsigned char *s, size_t n)
{
	size_t o = n < CONFIG_VALUE_SHOW_MAX ? n : CONFIG_VALUE_SHOW_MAX;

	for (size_t i = 0; i < o; i++)
		dst[i] = (s[i] < 0x20 || s[i] == 0x7f) ? '?' : (char)s[i];
	if (n > CONFIG_VALUE_SHOW_MAX) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
}

void
config_value_describe(char *dst, size_t cap, const yaml_event_t *ev)
{
	char shown[CONFIG_VALUE_SHOW_MAX + 4];

	if (ev->type == YAML_MAPPING_START_EVENT) {
		snprintf(dst, cap, "a mapping");
	} else if (ev->type == YAML_SEQUENCE_START_EVENT) {
		snprintf(dst, cap, "a list");
	} else if (config_value_is_null(ev)) {
		snprintf(dst, cap, "null");
	} else {
		config_value_show(shown, ev->data.scalar.value,
				  ev->data.scalar.length);
		snprintf(dst, cap, "'%s'", shown);
	}
}

/*
 * Parses an unsigned decimal number followed by an optional unit from
 * units[] (spaces allowed before a unit). Returns 0 with *out set, 1 when
 * the value does not fit in 64 bits, -1 when it is not of that form.
 */
static int
config_value_number(const char *s, const struct config_value_unit *units,
		    size_t nunits, uint64_t *out)
{
	const char *p = s, *unit;
	uint64_t n = 0;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (n > (UINT64_MAX - d) / 10)
			return 1;
		n = n * 10 + d;
	}
	for (unit = p; *unit == ' '; unit++)
		;
	if (unit != p && *unit == '\0')
		return -1;
	for (size_t i = 0; i < nunits; i++) {
		if (strcmp(unit, units[i].name) != 0)
			continue;
		if (n > UINT64_MAX / units[i].mult)
			return 1;
		*out = n * units[i].mult;
		return 0;
	}
	return -1;
}

/* Renders v in the largest shown unit that divides it: 35M, 90s. */
static void
config_value_format(char *dst, size_t cap, uint64_t v,
		    const struct config_value_unit *units, size_t nunits)
{
	const struct config_value_unit *best = NULL;

	for (size_t i = 0; i < nunits && v != 0; i++)
		if (units[i].show && v % units[i].mult == 0)
			best = &units[i];
	if (best == NULL)
		snprintf(dst, cap, "%" PRIu64, v);
	else
		snprintf(dst, cap, "%" PRIu64 "%s", v / best->mult, best->name);
}

/* UINT, SIZE and DURATION: parse, check bounds, store. */
static int
config_value_set_number(const struct config_key *key, const yaml_event_t *ev,
			void *field, char *msg, size_t cap)
{
	static const struct config_value_unit plain[] = {{"", 1, false}};
	const struct config_value_unit *units = plain;
	size_t nunits = 1;
	const char *expected = "a whole number";
	char got[CONFIG_VALUE_SHOW_CAP], lo[32], hi[32];
	uint64_t v = 0;
	int rc;

	if (key->type == CONFIG_SIZE) {
		units = config_value_size_units;
		nunits = sizeof config_value_size_units /
			 sizeof config_value_size_units[0];
		expected = "a size like 512, 64k, 10M, 1G";
	} else if (key->type == CONFIG_DURATION) {
		units = config_value_duration_units;
		nunits = sizeof config_value_duration_units /
			 sizeof config_value_duration_units[0];
		expected = "a duration like 30s, 5m, 1h";
	}
	rc = config_value_number((const char *)ev->data.scalar.value, units,
				 nunits, &v);
	if (rc < 0) {
		config_value_describe(got, sizeof got, ev);
		return config_value_fail(msg, cap, "%s: expected %s, got %s",
					 key->path, expected, got);
	}
	if (rc > 0 || v < key->min || v > key->max) {
		config_value_format(lo, sizeof lo, key->min, units, nunits);
		config_value_format(hi, sizeof hi, key->max, units, nunits);
		config_value_show(got, ev->data.scalar.value,
				  ev->data.scalar.length);
		return config_value_fail(
		    msg, cap, "%s: must be between %s and %s, got %s",
		    key->path, lo, hi, got);
	}
	memcpy(field, &v, sizeof v);
	return 0;
}

int
config_value_string(const char *path, const yaml_event_t *ev, char **out,
		    char *msg, size_t cap)
{
	size_t n = ev->data.scalar.length;

	if (config_value_is_null(ev))
		return config_value_fail(
		    msg, cap, "%s: expected a string, got null", path);
	if (n > CONFIG_STRING_MAX)
		return config_value_fail(msg, cap, "%s: longer than %d bytes",
					 path, CONFIG_STRING_MAX);
	*out = malloc(n + 1);
	if (*out == NULL)
		return config_value_fail(msg, cap, "%s: out of memory", path);
	memcpy(*out, ev->data.scalar.value, n + 1);
	return 0;
}

/* The key's own check, with the key's name in front of its message. */
static int
config_value_check(const struct config_key *key, const char *value, char *msg,
		   size_t cap)
{
	char why[CONFIG_ERR_MAX / 2];

	if (!key->check || key->check(value, why, sizeof why) == 0)
		return 0;
	snprintf(msg, cap, "%s: %s", key->path, why);
	return -1;
}

static int
config_value_set_string(const struct config_key *key, const yaml_event_t *ev,
			void *field, char *msg, size_t cap)
{
	char *s, **old = field;

	if (config_value_string(key->path, ev, &s, msg, cap) < 0)
		return -1;
	if (config_value_check(key, s, msg, cap) < 0) {
		free(s);
		return -1;
	}
	free(*old);
	*old = s;
	return 0;
}

static int
config_value_set_bool(const struct config_key *key, const yaml_event_t *ev,
		      void *field, char *msg, size_t cap)
{
	static const char *const yes[] = {"true", "yes", "on"};
	static const char *const no[] = {"false", "no", "off"};
	const char *v = (const char *)ev->data.scalar.value;
	char got[CONFIG_VALUE_SHOW_CAP];
	bool b;

	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
			b = strcasecmp(v, yes[i]) == 0;
			memcpy(field, &b, sizeof b);
			return 0;
		}
	}
	config_value_describe(got, sizeof got, ev);
	return config_value_fail(msg, cap,
				 "%s: expected true or false (or yes/no, "
				 "on/off), got %s",
				 key->path, got);
}

static int
config_value_set_enum(const struct config_key *key, const yaml_event_t *ev,
		      void *field, char *msg, size_t cap)
{
	const char *v = (const char *)ev->data.scalar.value;
	char got[CONFIG_VALUE_SHOW_CAP], names[256] = "";
	size_t o = 0;

	for (unsigned i = 0; key->names != NULL && key->names[i] != NULL; i++) {
		if (strcasecmp(v, key->names[i]) == 0) {
			memcpy(field, &i, sizeof i);
			return 0;
		}
		if (o < sizeof names)
			o += (size_t)snprintf(names + o, sizeof names - o,
					      "%s%s", i ? "|" : "",
					      key->names[i]);
	}
	config_value_describe(got, sizeof got, ev);
	return config_value_fail(msg, cap, "%s: expected one of %s, got %s",
				 key->path, names, got);
}

int
config_value_set(const struct config_key *key, const yaml_event_t *ev,
		 void *field, char *msg, size_t cap)
{
	static const char *const expected[] = {
	    [CONFIG_STRING] = "a string",    [CONFIG_UINT] = "a whole number",
	    [CONFIG_SIZE] = "a size",	     [CONFIG_DURATION] = "a duration",
	    [CONFIG_BOOL] = "true or false", [CONFIG_ENUM] = "a name",
	    [CONFIG_LIST] = "a list",
	};
	char got[CONFIG_VALUE_SHOW_CAP];

	if (ev->type != YAML_SCALAR_EVENT) {
		config_value_describe(got, sizeof got, ev);
		return config_value_fail(msg, cap, "%s: expected %s, got %s",
					 key->path, expected[key->type], got);
	}
	if (key->type == CONFIG_STRING)
		return config_value_set_string(key, ev, field, msg, cap);
	if (key->type == CONFIG_BOOL)
		return config_value_set_bool(key, ev, field, msg, cap);
	if (key->type == CONFIG_ENUM)
		return config_value_set_enum(key, ev, field, msg, cap);
	return config_value_set_number(key, ev, field, msg, cap);
}

int
config_value_list_item(const struct config_key *key, const yaml_event_t *ev,
		       size_t n, char **out, char *msg, size_t cap)
{
	char got[CONFIG_VALUE_SHOW_CAP];

	if (ev->type != YAML_SCALAR_EVENT) {
		config_value_describe(got, sizeof got, ev);
		return config_value_fail(msg, cap,
					 "%s: list items must be strings, "
					 "got %s",
					 key->path, got);
	}
	if (n >= CONFIG_LIST_MAX)
		return config_value_fail(msg, cap, "%s: more than %d items",
					 key->path, CONFIG_LIST_MAX);
	if (config_value_string(key->path, ev, out, msg, cap) < 0)
		return -1;
	if (config_value_check(key, *out, msg, cap) < 0) {
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

int
config_check_nonempty(const char *value, char *msg, size_t cap)
{
	if (value[0] != '\0')
		return 0;
	snprintf(msg, cap, "must not be empty");
	return -1;
}

/*
 * config: reads one YAML file into a settings struct described by a table
 * of typed keys, using libyaml's event parser.
 *
 * Owns: the parse of one file per config_load() call and the memory of the
 * STRING and LIST fields it stores (each replaced value is freed).
 *
 * Invariants:
 * - The top level is a mapping (or empty). Nested mappings form dotted
 *   paths; a key may also be written dotted ("timeouts.command: 30s").
 *   A path is looked up exactly; a path that is a proper prefix of table
 *   paths ("timeouts") is a section and must hold a mapping (or be empty).
 * - Every path is accepted at most once, however it is spelled, so
 *   duplicates are errors. The number of distinct accepted paths is bounded
 *   by the table, so the record of them is one allocation.
 * - Anchors, aliases and tags are rejected; a config file does not need them.
 * - Nothing is unbounded: the file (CONFIG_FILE_MAX), strings
 *   (CONFIG_STRING_MAX), lists (CONFIG_LIST_MAX) and key paths
 *   (CONFIG_PATH_MAX). Nesting cannot go deeper than the table's paths,
 *   because an unknown section is an error before it is entered.
 * - The first error stops the parse; the message names file, 1-based line
 *   and column of the offending key or value (libyaml marks are 0-based).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <yaml.h>

#define CONFIG_FILE_MAX (1024 * 1024) /* bytes read from one file */
#define CONFIG_PATH_MAX 256           /* a dotted key path */
#define CONFIG_SHOW_MAX 64            /* bytes of a value quoted in errors */

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

struct config_unit {
	const char *name;
	uint64_t mult;
};

/* Powers of 1024; "b" is bytes. */
static const struct config_unit config_size_units[] = {
	{"", 1},
	{"b", 1},
	{"B", 1},
	{"K", 1024}, /* first of its size: the one error messages use */
	{"k", 1024},
	{"KiB", 1024},
	{"M", 1024 * 1024},
	{"m", 1024 * 1024},
	{"MiB", 1024 * 1024},
	{"G", 1024 * 1024 * 1024},
	{"g", 1024 * 1024 * 1024},
	{"GiB", 1024 * 1024 * 1024},
};

/* Milliseconds; a bare number is seconds. */
static const struct config_unit config_duration_units[] = {
	{"", 1000},
	{"ms", 1},
	{"s", 1000},
	{"m", 60 * 1000},
	{"h", 60 * 60 * 1000},
	{"d", 24 * 60 * 60 * 1000},
};

static void
config_errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
config_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* "FILE:LINE:COLUMN: message" at a libyaml mark. */
static int
config_fail(struct config_ctx *ctx, yaml_mark_t mark, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
config_fail(struct config_ctx *ctx, yaml_mark_t mark, const char *fmt, ...)
{
	char msg[CONFIG_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	config_errf(ctx->err, ctx->errlen, "%s:%zu:%zu: %s", ctx->file,
		    mark.line + 1, mark.column + 1, msg);
	return -1;
}

/* Copies a value for an error message: bounded, control bytes as '?'. */
static void
config_show(char *dst, size_t cap, const unsigned char *s, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 4 < cap; i++) {
		if (i == CONFIG_SHOW_MAX) {
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		dst[o++] = (s[i] < 0x20 || s[i] == 0x7f) ? '?' : (char)s[i];
	}
	dst[o] = '\0';
}

static bool
config_is_null(const yaml_event_t *ev)
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

/* What a node is, for "got ..." in messages: 'text', null, a list, ... */
static void
config_describe(char *dst, size_t cap, const yaml_event_t *ev)
{
	char shown[CONFIG_SHOW_MAX + 4];

	if (ev->type == YAML_MAPPING_START_EVENT) {
		snprintf(dst, cap, "a mapping");
	} else if (ev->type == YAML_SEQUENCE_START_EVENT) {
		snprintf(dst, cap, "a list");
	} else if (config_is_null(ev)) {
		snprintf(dst, cap, "null");
	} else {
		config_show(shown, sizeof shown, ev->data.scalar.value,
			    ev->data.scalar.length);
		snprintf(dst, cap, "'%s'", shown);
	}
}

static int
config_read(void *data, unsigned char *buf, size_t size, size_t *size_read)
{
	struct config_reader *r = data;
	size_t n = fread(buf, 1, size, r->fp);

	if (n == 0 && ferror(r->fp)) {
		r->read_errno = errno ? errno : EIO;
		return 0;
	}
	r->total += n;
	if (r->total > CONFIG_FILE_MAX) {
		r->too_big = true;
		return 0;
	}
	*size_read = n;
	return 1;
}

/*
 * libyaml reports decoding errors (bad UTF-8, control characters) as a
 * byte offset only; recount it as line and column by reading the file again.
 */
static void
config_offset_mark(FILE *fp, size_t offset, yaml_mark_t *mark)
{
	int c;

	mark->line = 0;
	mark->column = 0;
	if (fseek(fp, 0, SEEK_SET) != 0)
		return;
	for (size_t i = 0; i < offset && (c = getc(fp)) != EOF; i++) {
		if (c == '\n') {
			mark->line++;
			mark->column = 0;
		} else if ((c & 0xc0) != 0x80) { /* not a UTF-8 continuation */
			mark->column++;
		}
	}
}

static int
config_parser_error(struct config_ctx *ctx)
{
	yaml_parser_t *p = &ctx->parser;
	yaml_mark_t mark;

	if (ctx->reader.too_big) {
		config_errf(ctx->err, ctx->errlen, "%s: larger than %d bytes",
			    ctx->file, CONFIG_FILE_MAX);
		return -1;
	}
	if (ctx->reader.read_errno) {
		config_errf(ctx->err, ctx->errlen, "%s: %s", ctx->file,
			    strerror(ctx->reader.read_errno));
		return -1;
	}
	if (p->error == YAML_MEMORY_ERROR) {
		config_errf(ctx->err, ctx->errlen, "%s: out of memory",
			    ctx->file);
		return -1;
	}
	if (p->error == YAML_READER_ERROR) {
		config_offset_mark(ctx->reader.fp, p->problem_offset, &mark);
		if (p->problem_value >= 0)
			return config_fail(ctx, mark, "%s (byte 0x%02x)",
					   p->problem, p->problem_value);
		return config_fail(ctx, mark, "%s", p->problem);
	}
	if (p->context != NULL)
		return config_fail(ctx, p->problem_mark,
				   "%s %s (line %zu, column %zu)",
				   p->problem ? p->problem : "syntax error",
				   p->context, p->context_mark.line + 1,
				   p->context_mark.column + 1);
	return config_fail(ctx, p->problem_mark, "%s",
			   p->problem ? p->problem : "syntax error");
}

/* Next event; rejects aliases, anchors and tags. Caller deletes ev. */
static int
config_next(struct config_ctx *ctx, yaml_event_t *ev)
{
	const yaml_char_t *anchor = NULL, *tag = NULL;

	if (!yaml_parser_parse(&ctx->parser, ev))
		return config_parser_error(ctx);
	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		config_fail(ctx, ev->start_mark,
			    "aliases (*name) are not supported");
		yaml_event_delete(ev);
		return -1;
	case YAML_SCALAR_EVENT:
		anchor = ev->data.scalar.anchor;
		tag = ev->data.scalar.tag;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = ev->data.sequence_start.anchor;
		tag = ev->data.sequence_start.tag;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
		break;
	default:
		break;
	}
	if (anchor != NULL || tag != NULL) {
		config_fail(ctx, ev->start_mark, "%s are not supported",
			    anchor ? "anchors (&name)" : "tags (!tag)");
		yaml_event_delete(ev);
		return -1;
	}
	return 0;
}

/*
 * Parses an unsigned decimal number followed by an optional unit from
 * units[] (spaces allowed before a unit). Returns 0 with *out set, 1 when
 * the value does not fit in 64 bits, -1 when it is not of that form.
 */
static int
config_number(const char *s, const struct config_unit *units, size_t nunits,
	      uint64_t *out)
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


/* How bounds are shown in messages: the largest exact unit, 35M or 90s. */
static const struct config_unit config_size_show[] = {
	{"K", 1024},
	{"M", 1024 * 1024},
	{"G", 1024 * 1024 * 1024},
};

static const struct config_unit config_duration_show[] = {
	{"ms", 1},
	{"s", 1000},
	{"m", 60 * 1000},
	{"h", 60 * 60 * 1000},
	{"d", 24 * 60 * 60 * 1000},
};

static void
config_format(char *dst, size_t cap, uint64_t v,
	      const struct config_unit *units, size_t nunits)
{
	const struct config_unit *best = NULL;

	for (size_t i = 0; i < nunits && v != 0; i++)
		if (v % units[i].mult == 0)
			best = &units[i]; /* tables ascend */
	if (best == NULL)
		snprintf(dst, cap, "%" PRIu64, v);
	else
		snprintf(dst, cap, "%" PRIu64 "%s", v / best->mult, best->name);
}

/* UINT, SIZE and DURATION: parse, check bounds, store. */
static int
config_set_number(struct config_ctx *ctx, const struct config_key *key,
		  const yaml_event_t *ev)
{
	static const struct config_unit plain[] = {{"", 1}};
	const struct config_unit *units = plain, *show = NULL;
	size_t nunits = 1, nshow = 0;
	const char *expected = "a whole number";
	char got[CONFIG_SHOW_MAX + 8], lo[32], hi[32];
	uint64_t v = 0;
	int rc;

	if (key->type == CONFIG_SIZE) {
		units = config_size_units;
		nunits = sizeof config_size_units / sizeof config_size_units[0];
		show = config_size_show;
		nshow = sizeof config_size_show / sizeof config_size_show[0];
		expected = "a size like 512, 64k, 10M, 1G";
	} else if (key->type == CONFIG_DURATION) {
		units = config_duration_units;
		nunits = sizeof config_duration_units /
			 sizeof config_duration_units[0];
		show = config_duration_show;
		nshow = sizeof config_duration_show /
			sizeof config_duration_show[0];
		expected = "a duration like 30s, 5m, 1h";
	}
	rc = config_number((const char *)ev->data.scalar.value, units, nunits,
			   &v);
	if (rc < 0) {
		config_describe(got, sizeof got, ev);
		return config_fail(ctx, ev->start_mark,
				   "%s: expected %s, got %s", key->path,
				   expected, got);
	}
	if (rc > 0 || v < key->min || v > key->max) {
		config_format(lo, sizeof lo, key->min, show, nshow);
		config_format(hi, sizeof hi, key->max, show, nshow);
		config_show(got, sizeof got, ev->data.scalar.value,
			    ev->data.scalar.length);
		return config_fail(ctx, ev->start_mark,
				   "%s: must be between %s and %s, got %s",
				   key->path, lo, hi, got);
	}
	memcpy(ctx->target + key->offset, &v, sizeof v);
	return 0;
}

/* A scalar as a new string (STRING values and LIST items). */
static int
config_string(struct config_ctx *ctx, const char *path,
	      const yaml_event_t *ev, char **out)
{
	size_t n = ev->data.scalar.length;

	if (config_is_null(ev))
		return config_fail(ctx, ev->start_mark,
				   "%s: expected a string, got null", path);
	if (memchr(ev->data.scalar.value, '\0', n) != NULL)
		return config_fail(ctx, ev->start_mark,
				   "%s: must not contain a NUL byte", path);
	if (n > CONFIG_STRING_MAX)
		return config_fail(ctx, ev->start_mark,
				   "%s: longer than %d bytes", path,
				   CONFIG_STRING_MAX);
	*out = malloc(n + 1);
	if (*out == NULL)
		return config_fail(ctx, ev->start_mark, "%s: out of memory",
				   path);
	memcpy(*out, ev->data.scalar.value, n + 1);
	return 0;
}

static int
config_set_string(struct config_ctx *ctx, const struct config_key *key,
		  const yaml_event_t *ev)
{
	char *s, **field = (char **)(void *)(ctx->target + key->offset);

	if (config_string(ctx, key->path, ev, &s) < 0)
		return -1;
	free(*field);
	*field = s;
	return 0;
}

static int
config_set_bool(struct config_ctx *ctx, const struct config_key *key,
		const yaml_event_t *ev)
{
	static const char *const yes[] = {"true", "yes", "on"};
	static const char *const no[] = {"false", "no", "off"};
	const char *v = (const char *)ev->data.scalar.value;
	char got[CONFIG_SHOW_MAX + 8];
	bool b;

	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
			b = strcasecmp(v, yes[i]) == 0;
			memcpy(ctx->target + key->offset, &b, sizeof b);
			return 0;
		}
	}
	config_describe(got, sizeof got, ev);
	return config_fail(ctx, ev->start_mark,
			   "%s: expected true or false (or yes/no, on/off), "
			   "got %s",
			   key->path, got);
}

static int
config_set_enum(struct config_ctx *ctx, const struct config_key *key,
		const yaml_event_t *ev)
{
	const char *v = (const char *)ev->data.scalar.value;
	char got[CONFIG_SHOW_MAX + 8], names[256] = "";
	size_t o = 0;

	for (unsigned i = 0; key->names != NULL && key->names[i] != NULL;
	     i++) {
		if (strlen(v) == ev->data.scalar.length &&
		    strcasecmp(v, key->names[i]) == 0) {
			memcpy(ctx->target + key->offset, &i, sizeof i);
			return 0;
		}
		if (o < sizeof names)
			o += (size_t)snprintf(names + o, sizeof names - o,
					      "%s%s", i ? "|" : "",
					      key->names[i]);
	}
	config_describe(got, sizeof got, ev);
	return config_fail(ctx, ev->start_mark,
			   "%s: expected one of %s, got %s", key->path, names,
			   got);
}

static void
config_list_clear(struct config_list *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->items[i]);
	free(list->items);
	list->items = NULL;
	list->count = 0;
}

/* Reads the items of a sequence whose start event was just consumed. */
static int
config_sequence(struct config_ctx *ctx, const struct config_key *key,
		char **items, size_t *n)
{
	char got[CONFIG_SHOW_MAX + 8];
	yaml_event_t ev;
	int rc;

	for (;;) {
		if (config_next(ctx, &ev) < 0)
			return -1;
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			return 0;
		}
		if (ev.type != YAML_SCALAR_EVENT) {
			config_describe(got, sizeof got, &ev);
			rc = config_fail(ctx, ev.start_mark,
					 "%s: list items must be strings, "
					 "got %s",
					 key->path, got);
		} else if (*n == CONFIG_LIST_MAX) {
			rc = config_fail(ctx, ev.start_mark,
					 "%s: more than %d items", key->path,
					 CONFIG_LIST_MAX);
		} else {
			rc = config_string(ctx, key->path, &ev, &items[*n]);
			if (rc == 0)
				(*n)++;
		}
		yaml_event_delete(&ev);
		if (rc < 0)
			return -1;
	}
}

/* A sequence of scalars, or one scalar; replaces the whole list. */
static int
config_set_list(struct config_ctx *ctx, const struct config_key *key,
		const yaml_event_t *ev)
{
	struct config_list *list =
		(struct config_list *)(void *)(ctx->target + key->offset);
	char *items[CONFIG_LIST_MAX], **copy = NULL;
	size_t n = 0;
	int rc;

	if (ev->type == YAML_MAPPING_START_EVENT || config_is_null(ev))
		return config_fail(ctx, ev->start_mark,
				   "%s: expected a list, got %s (write [] "
				   "for an empty list)",
				   key->path,
				   config_is_null(ev) ? "null" : "a mapping");
	if (ev->type == YAML_SCALAR_EVENT) {
		rc = config_string(ctx, key->path, ev, &items[0]);
		n = rc == 0;
	} else {
		rc = config_sequence(ctx, key, items, &n);
	}
	if (rc == 0 && n > 0 && (copy = calloc(n, sizeof *copy)) == NULL)
		rc = config_fail(ctx, ev->start_mark, "%s: out of memory",
				 key->path);
	if (rc < 0) {
		while (n > 0)
			free(items[--n]);
		return -1;
	}
	if (n > 0)
		memcpy(copy, items, n * sizeof *copy);
	config_list_clear(list);
	list->items = copy;
	list->count = n;
	return 0;
}

/* The value of a key in the table. */
static int
config_value(struct config_ctx *ctx, const struct config_key *key)
{
	static const char *const expected[] = {
		[CONFIG_STRING] = "a string",
		[CONFIG_UINT] = "a whole number",
		[CONFIG_SIZE] = "a size",
		[CONFIG_DURATION] = "a duration",
		[CONFIG_BOOL] = "true or false",
		[CONFIG_ENUM] = "a name",
		[CONFIG_LIST] = "a list",
	};
	char got[CONFIG_SHOW_MAX + 8];
	yaml_event_t ev;
	int rc = -1;

	if (config_next(ctx, &ev) < 0)
		return -1;
	if (key->type == CONFIG_LIST) {
		rc = config_set_list(ctx, key, &ev);
	} else if (ev.type != YAML_SCALAR_EVENT) {
		config_describe(got, sizeof got, &ev);
		rc = config_fail(ctx, ev.start_mark, "%s: expected %s, got %s",
				 key->path, expected[key->type], got);
	} else if (key->type == CONFIG_STRING) {
		rc = config_set_string(ctx, key, &ev);
	} else if (key->type == CONFIG_BOOL) {
		rc = config_set_bool(ctx, key, &ev);
	} else if (key->type == CONFIG_ENUM) {
		rc = config_set_enum(ctx, key, &ev);
	} else {
		rc = config_set_number(ctx, key, &ev);
	}
	yaml_event_delete(&ev);
	return rc;
}

static size_t
config_find(const struct config_ctx *ctx, const char *path, size_t len)
{
	for (size_t i = 0; i < ctx->nkeys; i++)
		if (strlen(ctx->keys[i].path) == len &&
		    memcmp(ctx->keys[i].path, path, len) == 0)
			return i;
	return ctx->nkeys;
}

/* A key whose path continues path with ".": path is a section. */
static size_t
config_find_section(const struct config_ctx *ctx, const char *path,
		    size_t len)
{
	for (size_t i = 0; i < ctx->nkeys; i++)
		if (strncmp(ctx->keys[i].path, path, len) == 0 &&
		    ctx->keys[i].path[len] == '.')
			return i;
	return ctx->nkeys;
}

/* Records path (a prefix of keys[key].path); -1 when already seen. */
static int
config_mark_seen(struct config_ctx *ctx, size_t key, size_t len)
{
	const char *path = ctx->keys[key].path;

	for (size_t i = 0; i < ctx->nseen; i++) {
		const struct config_seen *s = &ctx->seen[i];
		if (s->len == len &&
		    memcmp(ctx->keys[s->key].path, path, len) == 0)
			return -1;
	}
	if (ctx->nseen == ctx->seen_cap) /* cannot happen: see the top */
		return -1;
	ctx->seen[ctx->nseen].key = key;
	ctx->seen[ctx->nseen].len = len;
	ctx->nseen++;
	return 0;
}

static int config_mapping(struct config_ctx *ctx, const char *prefix);

/* A section's value: a mapping of its keys, or empty. */
static int
config_section(struct config_ctx *ctx, const char *path)
{
	char got[CONFIG_SHOW_MAX + 8];
	yaml_event_t ev;
	int rc = 0;

	if (config_next(ctx, &ev) < 0)
		return -1;
	if (ev.type == YAML_MAPPING_START_EVENT) {
		rc = config_mapping(ctx, path);
	} else if (!config_is_null(&ev)) {
		config_describe(got, sizeof got, &ev);
		rc = config_fail(ctx, ev.start_mark,
				 "%s: expected a mapping, got %s", path, got);
	}
	yaml_event_delete(&ev);
	return rc;
}

/* One "key: value" pair of the mapping at prefix ("" at the top). */
static int
config_entry(struct config_ctx *ctx, const char *prefix,
	     const yaml_event_t *kev)
{
	const char *name = (const char *)kev->data.scalar.value;
	size_t plen = strlen(prefix), nlen = kev->data.scalar.length;
	size_t len = plen ? plen + 1 + nlen : nlen, idx;
	char path[CONFIG_PATH_MAX], shown[CONFIG_SHOW_MAX + 8];
	bool section = false;

	if (kev->type != YAML_SCALAR_EVENT) {
		config_describe(shown, sizeof shown, kev);
		return config_fail(ctx, kev->start_mark,
				   "keys must be names, got %s", shown);
	}
	snprintf(path, sizeof path, "%s%s%s", prefix, plen ? "." : "", name);
	idx = config_find(ctx, path, len);
	if (idx == ctx->nkeys) {
		idx = config_find_section(ctx, path, len);
		section = true;
	}
	if (idx == ctx->nkeys || len >= sizeof path ||
	    memchr(name, '\0', nlen) != NULL) {
		config_show(shown, sizeof shown, (const unsigned char *)path,
			    strlen(path));
		return config_fail(ctx, kev->start_mark, "unknown key '%s'",
				   shown);
	}
	if (config_mark_seen(ctx, idx, len) < 0)
		return config_fail(ctx, kev->start_mark,
				   "duplicate key '%s'", path);
	if (section)
		return config_section(ctx, path);
	return config_value(ctx, &ctx->keys[idx]);
}

static int
config_mapping(struct config_ctx *ctx, const char *prefix)
{
	yaml_event_t ev;
	int rc;

	for (;;) {
		if (config_next(ctx, &ev) < 0)
			return -1;
		if (ev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&ev);
			return 0;
		}
		rc = config_entry(ctx, prefix, &ev);
		yaml_event_delete(&ev);
		if (rc < 0)
			return -1;
	}
}

/* Consumes one event, keeping only its type and mark. */
static int
config_skip(struct config_ctx *ctx, yaml_event_type_t *type,
	    yaml_mark_t *mark)
{
	yaml_event_t ev;

	if (config_next(ctx, &ev) < 0)
		return -1;
	*type = ev.type;
	*mark = ev.start_mark;
	yaml_event_delete(&ev);
	return 0;
}

/* The stream: nothing at all, or one document holding a mapping. */
static int
config_stream(struct config_ctx *ctx)
{
	char got[CONFIG_SHOW_MAX + 8];
	yaml_event_type_t type;
	yaml_mark_t mark;
	yaml_event_t ev;
	int rc = 0;

	if (config_skip(ctx, &type, &mark) < 0 || /* STREAM-START */
	    config_skip(ctx, &type, &mark) < 0)
		return -1;
	if (type == YAML_STREAM_END_EVENT) /* empty or only comments */
		return 0;
	if (config_next(ctx, &ev) < 0)
		return -1;
	if (ev.type == YAML_MAPPING_START_EVENT) {
		rc = config_mapping(ctx, "");
	} else if (!config_is_null(&ev)) {
		config_describe(got, sizeof got, &ev);
		rc = config_fail(ctx, ev.start_mark,
				 "the top level must be a mapping of "
				 "settings, got %s",
				 got);
	}
	yaml_event_delete(&ev);
	if (rc < 0 || config_skip(ctx, &type, &mark) < 0 || /* DOCUMENT-END */
	    config_skip(ctx, &type, &mark) < 0)
		return -1;
	if (type != YAML_STREAM_END_EVENT)
		return config_fail(ctx, mark,
				   "only one YAML document is allowed");
	return 0;
}

/* Distinct paths a file can name: each key and each of its sections. */
static size_t
config_seen_cap(const struct config_key *keys, size_t nkeys)
{
	size_t cap = 0;

	for (size_t i = 0; i < nkeys; i++) {
		cap++;
		for (const char *p = keys[i].path; *p; p++)
			cap += *p == '.';
	}
	return cap;
}

int
config_load(const char *file, const struct config_key *keys, size_t nkeys,
	    void *target, char *err, size_t errlen)
{
	struct config_ctx ctx = {
		.file = file,
		.keys = keys,
		.nkeys = nkeys,
		.target = target,
		.err = err,
		.errlen = errlen,
	};
	struct stat st;
	int rc = -1;

	config_errf(err, errlen, "%s", "");
	ctx.reader.fp = fopen(file, "re");
	if (ctx.reader.fp == NULL) {
		config_errf(err, errlen, "%s: %s", file, strerror(errno));
		return -1;
	}
	if (fstat(fileno(ctx.reader.fp), &st) < 0 || S_ISDIR(st.st_mode)) {
		config_errf(err, errlen, "%s: %s", file,
			    strerror(S_ISDIR(st.st_mode) ? EISDIR : errno));
		goto out_close;
	}
	ctx.seen_cap = config_seen_cap(keys, nkeys);
	ctx.seen = calloc(ctx.seen_cap ? ctx.seen_cap : 1, sizeof *ctx.seen);
	if (ctx.seen == NULL || !yaml_parser_initialize(&ctx.parser)) {
		config_errf(err, errlen, "%s: out of memory", file);
		goto out_free;
	}
	yaml_parser_set_input(&ctx.parser, config_read, &ctx.reader);
	rc = config_stream(&ctx);
	yaml_parser_delete(&ctx.parser);
out_free:
	free(ctx.seen);
out_close:
	/* read-only stream: fclose cannot lose data, nothing to report */
	fclose(ctx.reader.fp);
	return rc;
}

int
config_list_set(struct config_list *list, const char *const *items,
		size_t count)
{
	char **copy = NULL;

	if (count > 0 && (copy = calloc(count, sizeof *copy)) == NULL)
		return -1;
	for (size_t i = 0; i < count; i++) {
		copy[i] = strdup(items[i]);
		if (copy[i] == NULL) {
			while (i > 0)
				free(copy[--i]);
			free(copy);
			errno = ENOMEM;
			return -1;
		}
	}
	config_list_clear(list);
	list->items = copy;
	list->count = count;
	return 0;
}

void
config_free(const struct config_key *keys, size_t nkeys, void *target)
{
	char *base = target;

	for (size_t i = 0; i < nkeys; i++) {
		void *field = base + keys[i].offset;
		if (keys[i].type == CONFIG_STRING) {
			free(*(char **)field);
			*(char **)field = NULL;
		} else if (keys[i].type == CONFIG_LIST) {
			config_list_clear(field);
		}
	}
}

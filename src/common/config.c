/*
 * config: reads one YAML file into a settings struct described by a table
 * of typed keys, using libyaml's event parser.
 *
 * Owns: the parse of one file per config_load() call (the YAML event walk,
 * key paths, error positions) and the memory of the STRING and LIST fields
 * it stores (each replaced value is freed). Turning one node into one typed
 * value, and showing values in messages, is config_value.c's job.
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
 * - TABLE and MAP values (lists of records, mappings of names) are walked
 *   by config_table.c with the same error positions.
 * - The first error stops the parse; the message names file, 1-based line
 *   and column of the offending key or value (libyaml marks are 0-based).
 */
#include "config.h"
#include "config_int.h"
#include "config_value.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <yaml.h>

#define CONFIG_FILE_MAX (1024 * 1024) /* bytes read from one file */
#define CONFIG_PATH_MAX 256	      /* a dotted key path */

int
config_fail(struct config_ctx *ctx, const yaml_mark_t *mark, const char *fmt,
	    ...)
{
	char msg[CONFIG_ERR_MAX];
	va_list ap;

	if (ctx->err == NULL || ctx->errlen == 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (mark == NULL)
		snprintf(ctx->err, ctx->errlen, "%s: %s", ctx->file, msg);
	else
		snprintf(ctx->err, ctx->errlen, "%s:%zu:%zu: %s", ctx->file,
			 mark->line + 1, mark->column + 1, msg);
	return -1;
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

	if (ctx->reader.too_big)
		return config_fail(ctx, NULL, "larger than %d bytes",
				   CONFIG_FILE_MAX);
	if (ctx->reader.read_errno)
		return config_fail(ctx, NULL, "%s",
				   strerror(ctx->reader.read_errno));
	if (p->error == YAML_MEMORY_ERROR)
		return config_fail(ctx, NULL, "out of memory");
	if (p->error == YAML_READER_ERROR) {
		config_offset_mark(ctx->reader.fp, p->problem_offset, &mark);
		if (p->problem_value >= 0)
			return config_fail(ctx, &mark, "%s (byte 0x%02x)",
					   p->problem, p->problem_value);
		return config_fail(ctx, &mark, "%s", p->problem);
	}
	if (p->context != NULL)
		return config_fail(
		    ctx, &p->problem_mark, "%s %s (line %zu, column %zu)",
		    p->problem ? p->problem : "syntax error", p->context,
		    p->context_mark.line + 1, p->context_mark.column + 1);
	return config_fail(ctx, &p->problem_mark, "%s",
			   p->problem ? p->problem : "syntax error");
}

int
config_next(struct config_ctx *ctx, yaml_event_t *ev)
{
	const yaml_char_t *anchor = NULL, *tag = NULL;

	if (!yaml_parser_parse(&ctx->parser, ev))
		return config_parser_error(ctx);
	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		config_fail(ctx, &ev->start_mark,
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
		config_fail(ctx, &ev->start_mark, "%s are not supported",
			    anchor ? "anchors (&name)" : "tags (!tag)");
	} else if (ev->type == YAML_SCALAR_EVENT &&
		   memchr(ev->data.scalar.value, '\0',
			  ev->data.scalar.length) != NULL) {
		/* "\0" in double quotes; C string code below would stop there
		 */
		config_fail(ctx, &ev->start_mark, "NUL bytes are not allowed");
	} else {
		return 0;
	}
	yaml_event_delete(ev);
	return -1;
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
	char msg[CONFIG_ERR_MAX];
	yaml_event_t ev;
	int rc = 0;

	for (;;) {
		if (config_next(ctx, &ev) < 0)
			return -1;
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			return 0;
		}
		if (config_value_list_item(key, &ev, *n, &items[*n], msg,
					   sizeof msg) < 0)
			rc = config_fail(ctx, &ev.start_mark, "%s", msg);
		else
			(*n)++;
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
	char *items[CONFIG_LIST_MAX], **copy = NULL, msg[CONFIG_ERR_MAX];
	size_t n = 0;
	int rc = 0;

	if (ev->type == YAML_MAPPING_START_EVENT || config_value_is_null(ev))
		return config_fail(
		    ctx, &ev->start_mark,
		    "%s: expected a list, got %s (write [] "
		    "for an empty list)",
		    key->path, config_value_is_null(ev) ? "null" : "a mapping");
	if (ev->type != YAML_SCALAR_EVENT)
		rc = config_sequence(ctx, key, items, &n);
	else if (config_value_list_item(key, ev, 0, &items[0], msg,
					sizeof msg) < 0)
		rc = config_fail(ctx, &ev->start_mark, "%s", msg);
	else
		n = 1;
	if (rc == 0 && n > 0 && (copy = calloc(n, sizeof *copy)) == NULL)
		rc = config_fail(ctx, &ev->start_mark, "%s: out of memory",
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

/* The value of a key in the table; config_value.c converts all but lists. */
static int
config_set_value(struct config_ctx *ctx, const struct config_key *key)
{
	char msg[CONFIG_ERR_MAX];
	yaml_event_t ev;
	int rc = 0;

	if (config_next(ctx, &ev) < 0)
		return -1;
	if (key->type == CONFIG_LIST)
		rc = config_set_list(ctx, key, &ev);
	else if (key->type == CONFIG_TABLE)
		rc = config_set_table(ctx, key, &ev);
	else if (key->type == CONFIG_MAP)
		rc = config_set_map(ctx, key, &ev);
	else if (config_value_set(key, &ev, ctx->target + key->offset, msg,
				  sizeof msg) < 0)
		rc = config_fail(ctx, &ev.start_mark, "%s", msg);
	yaml_event_delete(&ev);
	return rc;
}

/* The key named path, else a key under it (path is then a section). */
static size_t
config_lookup(const struct config_ctx *ctx, const char *path, size_t len,
	      bool *section)
{
	size_t under = ctx->nkeys;

	for (size_t i = 0; i < ctx->nkeys; i++) {
		const char *k = ctx->keys[i].path;
		if (strncmp(k, path, len) != 0) /* so k has len bytes */
			continue;
		if (k[len] == '\0') {
			*section = false;
			return i;
		}
		if (k[len] == '.' && under == ctx->nkeys)
			under = i;
	}
	*section = true;
	return under;
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
	char got[CONFIG_VALUE_SHOW_CAP];
	yaml_event_t ev;
	int rc = 0;

	if (config_next(ctx, &ev) < 0)
		return -1;
	if (ev.type == YAML_MAPPING_START_EVENT) {
		rc = config_mapping(ctx, path);
	} else if (!config_value_is_null(&ev)) {
		config_value_describe(got, sizeof got, &ev);
		rc = config_fail(ctx, &ev.start_mark,
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
	char path[CONFIG_PATH_MAX], shown[CONFIG_VALUE_SHOW_CAP];
	size_t plen = strlen(prefix), len, idx = ctx->nkeys;
	bool section = false;

	if (kev->type != YAML_SCALAR_EVENT) {
		config_value_describe(shown, sizeof shown, kev);
		return config_fail(ctx, &kev->start_mark,
				   "keys must be names, got %s", shown);
	}
	len = (plen ? plen + 1 : 0) + kev->data.scalar.length;
	snprintf(path, sizeof path, "%s%s%s", prefix, plen ? "." : "",
		 (const char *)kev->data.scalar.value);
	if (len < sizeof path)
		idx = config_lookup(ctx, path, len, &section);
	if (idx == ctx->nkeys) {
		config_value_show(shown, (const unsigned char *)path,
				  strlen(path));
		return config_fail(ctx, &kev->start_mark, "unknown key '%s'",
				   shown);
	}
	if (config_mark_seen(ctx, idx, len) < 0)
		return config_fail(ctx, &kev->start_mark, "duplicate key '%s'",
				   path);
	if (section)
		return config_section(ctx, path);
	return config_set_value(ctx, &ctx->keys[idx]);
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
config_skip(struct config_ctx *ctx, yaml_event_type_t *type, yaml_mark_t *mark)
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
	char got[CONFIG_VALUE_SHOW_CAP];
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
	} else if (!config_value_is_null(&ev)) {
		config_value_describe(got, sizeof got, &ev);
		rc = config_fail(ctx, &ev.start_mark,
				 "the top level must be a mapping of "
				 "settings, got %s",
				 got);
	}
	yaml_event_delete(&ev);
	if (rc < 0 || config_skip(ctx, &type, &mark) < 0 || /* DOCUMENT-END */
	    config_skip(ctx, &type, &mark) < 0)
		return -1;
	if (type != YAML_STREAM_END_EVENT)
		return config_fail(ctx, &mark,
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

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	ctx.reader.fp = fopen(file, "re");
	if (ctx.reader.fp == NULL)
		return config_fail(&ctx, NULL, "%s", strerror(errno));
	if (fstat(fileno(ctx.reader.fp), &st) < 0) {
		config_fail(&ctx, NULL, "%s", strerror(errno));
		goto out_close;
	}
	if (S_ISDIR(st.st_mode)) {
		config_fail(&ctx, NULL, "%s", strerror(EISDIR));
		goto out_close;
	}
	ctx.seen_cap = config_seen_cap(keys, nkeys);
	ctx.seen = calloc(ctx.seen_cap ? ctx.seen_cap : 1, sizeof *ctx.seen);
	if (ctx.seen == NULL || !yaml_parser_initialize(&ctx.parser)) {
		config_fail(&ctx, NULL, "out of memory");
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
		} else if (keys[i].type == CONFIG_TABLE ||
			   keys[i].type == CONFIG_MAP) {
			config_table_clear(field);
		}
	}
}

/*
 * config_table: the TABLE and MAP values of config_load().
 *
 * A TABLE is a list whose items are either one string, which fills the
 * first field ("listen: [0.0.0.0:25]"), or a mapping of named fields
 * ("- {address: 0.0.0.0:465, role: submission}"). A MAP is a mapping of
 * names to strings ("policy: {example.com: verify}"). Both land in a
 * struct config_table of strings; the program turns them into its types.
 *
 * Invariants:
 * - A value replaces the whole table, and only when all of it parsed.
 * - Every cell passes its field's names and check; a TABLE row always has
 *   its first field; a MAP row always has both.
 * - At most CONFIG_TABLE_MAX rows; field names and map names are unique.
 */
#include "config_int.h"
#include "config_value.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Rows being read: grown by doubling, up to CONFIG_TABLE_MAX. */
struct config_rows {
	char **cells;
	size_t rows;
	size_t cap; /* rows allocated */
	size_t cols;
};

static size_t
config_fields_count(const struct config_field *f)
{
	size_t n = 0;

	while (f != NULL && f[n].name != NULL)
		n++;
	return n;
}

static void
config_rows_free(struct config_rows *r)
{
	struct config_table t = {r->cells, r->rows, r->cols};

	config_table_clear(&t);
	r->cells = NULL;
	r->rows = 0;
}

/* Appends an empty row; NULL on the row limit or ENOMEM (msg says). */
static char **
config_rows_add(struct config_rows *r, const char *path, char *msg, size_t cap)
{
	if (r->rows == CONFIG_TABLE_MAX) {
		snprintf(msg, cap, "%s: more than %d entries", path,
			 CONFIG_TABLE_MAX);
		return NULL;
	}
	if (r->rows == r->cap) {
		size_t ncap = r->cap ? r->cap * 2 : 4;
		char **n = realloc(r->cells, ncap * r->cols * sizeof *n);
		if (n == NULL) {
			snprintf(msg, cap, "%s: out of memory", path);
			return NULL;
		}
		r->cells = n;
		r->cap = ncap;
	}
	char **row = r->cells + r->rows * r->cols;
	memset(row, 0, r->cols * sizeof *row);
	r->rows++;
	return row;
}

/* One cell: a non-null scalar that passes the field's names and check. */
static int
config_field_value(const char *path, const struct config_field *f,
		   const yaml_event_t *ev, char **out, char *msg, size_t cap)
{
	char got[CONFIG_VALUE_SHOW_CAP], why[CONFIG_ERR_MAX / 2];

	if (ev->type != YAML_SCALAR_EVENT) {
		config_value_describe(got, sizeof got, ev);
		snprintf(msg, cap, "%s: %s: expected a string, got %s", path,
			 f->name, got);
		return -1;
	}
	if (config_value_string(path, ev, out, msg, cap) < 0)
		return -1;
	if (f->names != NULL) {
		char names[256] = "";
		size_t o = 0;
		for (size_t i = 0; f->names[i] != NULL; i++) {
			if (strcasecmp(*out, f->names[i]) == 0) {
				/* the canonical spelling */
				memcpy(*out, f->names[i], strlen(*out));
				goto checked;
			}
			if (o < sizeof names)
				o += (size_t)snprintf(
				    names + o, sizeof names - o, "%s%s",
				    i ? "|" : "", f->names[i]);
		}
		config_value_describe(got, sizeof got, ev);
		snprintf(msg, cap, "%s: %s: expected one of %s, got %s", path,
			 f->name, names, got);
		goto fail;
	}
checked:
	if (f->check == NULL || f->check(*out, why, sizeof why) == 0)
		return 0;
	snprintf(msg, cap, "%s: %s", path, why);
fail:
	free(*out);
	*out = NULL;
	return -1;
}

/* The index of field name, or n when unknown (msg lists the known ones). */
static size_t
config_field_find(const char *path, const struct config_field *fields, size_t n,
		  const yaml_event_t *kev, char *msg, size_t cap)
{
	char shown[CONFIG_VALUE_SHOW_CAP], known[256] = "";
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (kev->type == YAML_SCALAR_EVENT &&
		    strcmp((const char *)kev->data.scalar.value,
			   fields[i].name) == 0)
			return i;
		if (o < sizeof known)
			o += (size_t)snprintf(known + o, sizeof known - o,
					      "%s%s", i ? ", " : "",
					      fields[i].name);
	}
	config_value_describe(shown, sizeof shown, kev);
	snprintf(msg, cap, "%s: unknown field %s (fields: %s)", path, shown,
		 known);
	return n;
}

/* The mapping form of a TABLE item; its start event was consumed. */
static int
config_table_item(struct config_ctx *ctx, const struct config_key *key,
		  char **row, const yaml_mark_t *start)
{
	const struct config_field *fields = key->fields;
	size_t n = config_fields_count(fields);
	char msg[CONFIG_ERR_MAX];
	yaml_event_t kev, vev;

	for (;;) {
		if (config_next(ctx, &kev) < 0)
			return -1;
		if (kev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&kev);
			break;
		}
		size_t f = config_field_find(key->path, fields, n, &kev, msg,
					     sizeof msg);
		if (f == n || row[f] != NULL) {
			if (f < n)
				snprintf(msg, sizeof msg,
					 "%s: duplicate field '%s'", key->path,
					 fields[f].name);
			config_fail(ctx, &kev.start_mark, "%s", msg);
			yaml_event_delete(&kev);
			return -1;
		}
		yaml_event_delete(&kev);
		if (config_next(ctx, &vev) < 0)
			return -1;
		int rc = config_field_value(key->path, &fields[f], &vev,
					    &row[f], msg, sizeof msg);
		if (rc < 0)
			config_fail(ctx, &vev.start_mark, "%s", msg);
		yaml_event_delete(&vev);
		if (rc < 0)
			return -1;
	}
	if (row[0] == NULL)
		return config_fail(ctx, start, "%s: an entry needs '%s'",
				   key->path, fields[0].name);
	return 0;
}

/* One TABLE item: a string for the first field, or a mapping. */
static int
config_table_row(struct config_ctx *ctx, const struct config_key *key,
		 struct config_rows *r, const yaml_event_t *ev)
{
	char msg[CONFIG_ERR_MAX];
	char **row = config_rows_add(r, key->path, msg, sizeof msg);

	if (row == NULL)
		return config_fail(ctx, &ev->start_mark, "%s", msg);
	if (ev->type == YAML_MAPPING_START_EVENT)
		return config_table_item(ctx, key, row, &ev->start_mark);
	if (config_field_value(key->path, &key->fields[0], ev, &row[0], msg,
			       sizeof msg) < 0)
		return config_fail(ctx, &ev->start_mark, "%s", msg);
	return 0;
}

/* Moves rows into the field, replacing what it held. */
static void
config_rows_store(struct config_ctx *ctx, const struct config_key *key,
		  struct config_rows *r)
{
	struct config_table *t =
	    (struct config_table *)(void *)(ctx->target + key->offset);

	config_table_clear(t);
	t->cells = r->cells;
	t->rows = r->rows;
	t->cols = r->cols;
}

/* Reads events up to end (consumed), handing each item to fn. */
typedef int config_item_fn(struct config_ctx *, const struct config_key *,
			   struct config_rows *, const yaml_event_t *);

static int
config_rows_read(struct config_ctx *ctx, const struct config_key *key,
		 struct config_rows *r, yaml_event_type_t end,
		 config_item_fn *fn)
{
	yaml_event_t ev;

	for (;;) {
		if (config_next(ctx, &ev) < 0)
			return -1;
		if (ev.type == end) {
			yaml_event_delete(&ev);
			return 0;
		}
		int rc = fn(ctx, key, r, &ev);
		yaml_event_delete(&ev);
		if (rc < 0)
			return -1;
	}
}

/* The rows become the field's value, or are dropped on an error. */
static int
config_rows_done(struct config_ctx *ctx, const struct config_key *key,
		 struct config_rows *r, int rc)
{
	if (rc < 0) {
		config_rows_free(r);
		return -1;
	}
	config_rows_store(ctx, key, r);
	return 0;
}

/* One item of a TABLE's list. */
static int
config_table_item_of_list(struct config_ctx *ctx, const struct config_key *key,
			  struct config_rows *r, const yaml_event_t *ev)
{
	if (ev->type == YAML_SEQUENCE_START_EVENT)
		return config_fail(ctx, &ev->start_mark,
				   "%s: items must be strings or mappings, "
				   "got a list",
				   key->path);
	return config_table_row(ctx, key, r, ev);
}

int
config_set_table(struct config_ctx *ctx, const struct config_key *key,
		 const yaml_event_t *ev)
{
	struct config_rows r = {.cols = config_fields_count(key->fields)};
	int rc;

	if (config_value_is_null(ev))
		return config_fail(ctx, &ev->start_mark,
				   "%s: expected a list, got null (write [] "
				   "for an empty list)",
				   key->path);
	if (ev->type != YAML_SEQUENCE_START_EVENT)
		rc = config_table_row(ctx, key, &r, ev);
	else
		rc = config_rows_read(ctx, key, &r, YAML_SEQUENCE_END_EVENT,
				      config_table_item_of_list);
	return config_rows_done(ctx, key, &r, rc);
}

/* One "name: value" of a MAP; kev is the name's event. */
static int
config_map_entry(struct config_ctx *ctx, const struct config_key *key,
		 struct config_rows *r, const yaml_event_t *kev)
{
	char msg[CONFIG_ERR_MAX], shown[CONFIG_VALUE_SHOW_CAP], **row;
	yaml_event_t vev;
	int rc;

	if (kev->type != YAML_SCALAR_EVENT || config_value_is_null(kev)) {
		config_value_describe(shown, sizeof shown, kev);
		return config_fail(ctx, &kev->start_mark,
				   "%s: names must be strings, got %s",
				   key->path, shown);
	}
	for (size_t i = 0; i < r->rows; i++)
		if (strcasecmp(r->cells[i * 2],
			       (const char *)kev->data.scalar.value) == 0)
			return config_fail(ctx, &kev->start_mark,
					   "%s: duplicate name '%s'", key->path,
					   r->cells[i * 2]);
	row = config_rows_add(r, key->path, msg, sizeof msg);
	if (row == NULL || config_field_value(key->path, &key->fields[0], kev,
					      &row[0], msg, sizeof msg) < 0)
		return config_fail(ctx, &kev->start_mark, "%s", msg);
	if (config_next(ctx, &vev) < 0)
		return -1;
	rc = config_field_value(key->path, &key->fields[1], &vev, &row[1], msg,
				sizeof msg);
	if (rc < 0)
		config_fail(ctx, &vev.start_mark, "%s", msg);
	yaml_event_delete(&vev);
	return rc;
}

int
config_set_map(struct config_ctx *ctx, const struct config_key *key,
	       const yaml_event_t *ev)
{
	struct config_rows r = {.cols = 2};
	char got[CONFIG_VALUE_SHOW_CAP];

	if (config_value_is_null(ev)) /* "policy:" with nothing: empty */
		return config_rows_done(ctx, key, &r, 0);
	if (ev->type != YAML_MAPPING_START_EVENT) {
		config_value_describe(got, sizeof got, ev);
		return config_fail(ctx, &ev->start_mark,
				   "%s: expected a mapping, got %s", key->path,
				   got);
	}
	return config_rows_done(ctx, key, &r,
				config_rows_read(ctx, key, &r,
						 YAML_MAPPING_END_EVENT,
						 config_map_entry));
}

void
config_table_clear(struct config_table *t)
{
	for (size_t i = 0; i < t->rows * t->cols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->rows = 0;
}

int
config_table_set(struct config_table *t, size_t cols, const char *const *cells,
		 size_t rows)
{
	struct config_rows r = {.cols = cols};
	char msg[64];

	for (size_t i = 0; i < rows; i++) {
		char **row = config_rows_add(&r, "", msg, sizeof msg);
		if (row == NULL)
			goto fail;
		for (size_t c = 0; c < cols; c++) {
			const char *v = cells[i * cols + c];
			if (v != NULL && (row[c] = strdup(v)) == NULL)
				goto fail;
		}
	}
	config_table_clear(t);
	t->cells = r.cells;
	t->rows = r.rows;
	t->cols = cols;
	return 0;
fail:
	config_rows_free(&r);
	return -1;
}

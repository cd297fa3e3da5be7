/*
 * config: a table of typed keys read from one YAML file with libyaml.
 *
 * Each binary describes its settings as an array of struct config_key
 * (dotted path, type, offset into its settings struct, bounds). Values not
 * in the file keep the defaults the caller put in the struct. Unknown keys,
 * wrong types, values out of range and YAML syntax errors are reported as
 * "FILE:LINE:COLUMN: message" with 1-based line and column.
 */
#ifndef MTA_CONFIG_H
#define MTA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_ERR_MAX 512
#define CONFIG_LIST_MAX 64 /* items in one list */
#define CONFIG_STRING_MAX 1024

enum config_type {
	CONFIG_STRING,	 /* char *, malloc'd; default may be NULL */
	CONFIG_UINT,	 /* uint64_t, within [min, max] */
	CONFIG_SIZE,	 /* uint64_t bytes; accepts 123, 10k, 35M, 1G (KiB..) */
	CONFIG_DURATION, /* uint64_t milliseconds; accepts 30, 30s, 500ms,
			    5m, 2h, 1d (a bare number is seconds) */
	CONFIG_BOOL,	 /* bool; true/false/yes/no/on/off */
	CONFIG_ENUM,	 /* unsigned index into names[] */
	CONFIG_LIST,	 /* struct config_list of strings */
	CONFIG_TABLE,	 /* struct config_table: a list whose items are a
			    string (fields[0]) or a mapping of fields */
	CONFIG_MAP,	 /* struct config_table of 2 columns: a mapping of
			    names (fields[0]) to strings (fields[1]) */
};

struct config_list {
	char **items; /* malloc'd strings */
	size_t count;
};

#define CONFIG_TABLE_MAX 1024 /* rows of one table or map */

/* Rows of cols strings; a field a row does not name is NULL. */
struct config_table {
	char **cells; /* rows * cols, row-major; malloc'd strings */
	size_t rows;
	size_t cols;
};

/* Cell (row, col) of a table, NULL when the row left it out. */
static inline const char *
config_cell(const struct config_table *t, size_t row, size_t col)
{
	return t->cells[row * t->cols + col];
}

/*
 * Optional check of one STRING value or LIST item beyond its type (a CIDR,
 * an address). Returns 0, or -1 with a message (without position) in msg.
 */
typedef int config_check_fn(const char *value, char *msg, size_t cap);

/* A check for strings that must not be empty (names, paths). */
config_check_fn config_check_nonempty;

/* One column of a TABLE or MAP; its values are strings. */
struct config_field {
	const char *name;
	const char *const *names; /* NULL, or the values allowed */
	config_check_fn *check;	  /* NULL, or a check of the value */
};

struct config_key {
	const char *path; /* "timeouts.command" */
	enum config_type type;
	size_t offset; /* offsetof(struct settings, field) */
	uint64_t min;  /* UINT/SIZE/DURATION bounds, inclusive */
	uint64_t max;
	const char *const *names; /* ENUM: NULL-terminated value names */
	config_check_fn *check;	  /* STRING/LIST: NULL or a value check */
	/* TABLE/MAP: the columns, ended by a field with a NULL name */
	const struct config_field *fields;
};

/*
 * Reads file into target using keys. Returns 0, or -1 with err holding
 * "FILE:LINE:COLUMN: message" (or "FILE: strerror" when unreadable).
 */
int config_load(const char *file, const struct config_key *keys, size_t nkeys,
		void *target, char *err, size_t errlen);

/* Sets a list from string literals (defaults). Returns -1 on ENOMEM. */
int config_list_set(struct config_list *, const char *const *items,
		    size_t count);
/*
 * Sets a table of cols columns from rows * cols strings (NULL for a cell
 * left out), for defaults. Returns -1 on ENOMEM.
 */
int config_table_set(struct config_table *, size_t cols,
		     const char *const *cells, size_t rows);
/* Frees every STRING, LIST, TABLE and MAP field named by keys. */
void config_free(const struct config_key *keys, size_t nkeys, void *target);

#endif

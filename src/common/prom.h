/*
 * prom: the Prometheus text exposition format (version 0.0.4) written
 * into a caller's bounded buffer.
 *
 * A body is a sequence of families; each starts with prom_family(), which
 * writes its "# HELP" and "# TYPE" lines, and is followed by its samples
 * (prom_sample_u64/_f64), all named after the family. Each family must
 * appear once (the format does not allow a family to be split).
 *
 * Escaping (exposition format spec): in HELP text a backslash and a line
 * feed become \\ and \n; in label values a backslash, a double quote and
 * a line feed become \\, \" and \n. Label values must be UTF-8: a byte
 * that is not part of valid UTF-8 is written as U+FFFD.
 *
 * Invariants: nothing is ever written past cap; once anything fails
 * (no room, a bad metric or label name, a sample before any family)
 * the builder stays failed and prom_finish() says why.
 */
#ifndef MTA_PROM_H
#define MTA_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROM_NAME_MAX 128 /* metric and label names */
#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum prom_type {
	PROM_COUNTER,
	PROM_GAUGE,
};

struct prom_label {
	const char *name;
	const char *value;
};

struct prom {
	char *buf;
	size_t cap;
	size_t len;
	const char *err; /* first failure, NULL while all is well */
	char family[PROM_NAME_MAX + 1];
};

void prom_init(struct prom *, char *buf, size_t cap);
/* Starts a family: "# HELP name help" and "# TYPE name type". */
void prom_family(struct prom *, const char *name, enum prom_type,
		 const char *help);
/* One sample of the current family; labels may be NULL when n is 0. */
void prom_sample_u64(struct prom *, const struct prom_label *labels, size_t n,
		     uint64_t value);
/* As above for a float: shortest of %.15g/%.17g that reads back the
 * same; NaN, +Inf and -Inf as the format spells them. */
void prom_sample_f64(struct prom *, const struct prom_label *labels, size_t n,
		     double value);
/* A family with one unlabelled sample. */
void prom_counter(struct prom *, const char *name, const char *help,
		  uint64_t value);
void prom_gauge(struct prom *, const char *name, const char *help,
		double value);
/*
 * Length of the text in buf (NUL-terminated when there was room), or 0
 * with *err (when err is not NULL) saying what failed.
 */
size_t prom_finish(const struct prom *, const char **err);

/* [a-zA-Z_:][a-zA-Z0-9_:]* */
bool prom_metric_name_ok(const char *);
/* [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved) */
bool prom_label_name_ok(const char *);

#endif

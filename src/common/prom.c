/*
 * prom: Prometheus text exposition format 0.0.4 into a bounded buffer.
 * See prom.h for the escaping rules and the invariants.
 */
#include "prom.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

static void
prom_fail(struct prom *p, const char *why)
{
	if (!p->err)
		p->err = why;
}

static void
prom_put(struct prom *p, const char *s, size_t n)
{
	if (p->err)
		return;
	/* Keep one byte for the terminating NUL. */
	if (p->cap == 0 || n > p->cap - 1 - p->len) {
		prom_fail(p, "metrics text does not fit in its buffer");
		return;
	}
	memcpy(p->buf + p->len, s, n);
	p->len += n;
	p->buf[p->len] = '\0';
}

static void
prom_puts(struct prom *p, const char *s)
{
	prom_put(p, s, strlen(s));
}

void
prom_init(struct prom *p, char *buf, size_t cap)
{
	memset(p, 0, sizeof *p);
	p->buf = buf;
	p->cap = cap;
	if (cap > 0)
		buf[0] = '\0';
}

static bool
name_char(char c, bool first, bool colon)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
		return true;
	if (c == ':')
		return colon;
	return !first && c >= '0' && c <= '9';
}

static bool
name_ok(const char *s, bool colon)
{
	if (!s || !*s || strlen(s) > PROM_NAME_MAX)
		return false;
	for (size_t i = 0; s[i]; i++)
		if (!name_char(s[i], i == 0, colon))
			return false;
	return true;
}

bool
prom_metric_name_ok(const char *s)
{
	return name_ok(s, true);
}

bool
prom_label_name_ok(const char *s)
{
	return name_ok(s, false) && strncmp(s, "__", 2) != 0;
}

/* Writes s escaped; quote also escapes '"' (label values). */
static void
prom_put_escaped(struct prom *p, const char *s, bool quote)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strlen(s);

	for (size_t i = 0; i < n;) {
		size_t len = u[i] < 0x80 ? 1 : utf8_seq_len(u + i, n - i);
		if (len == 0) {
			prom_puts(p, "\xef\xbf\xbd"); /* U+FFFD */
			i++;
		} else if (u[i] == '\\') {
			prom_puts(p, "\\\\");
			i++;
		} else if (u[i] == '\n') {
			prom_puts(p, "\\n");
			i++;
		} else if (u[i] == '"' && quote) {
			prom_puts(p, "\\\"");
			i++;
		} else {
			prom_put(p, s + i, len);
			i += len;
		}
	}
}

void
prom_family(struct prom *p, const char *name, enum prom_type type,
	    const char *help)
{
	if (!prom_metric_name_ok(name)) {
		prom_fail(p, "bad metric name");
		return;
	}
	if (p->err)
		return;
	snprintf(p->family, sizeof p->family, "%s", name);
	prom_puts(p, "# HELP ");
	prom_puts(p, name);
	prom_puts(p, " ");
	prom_put_escaped(p, help ? help : "", false);
	prom_puts(p, "\n# TYPE ");
	prom_puts(p, name);
	prom_puts(p, type == PROM_COUNTER ? " counter\n" : " gauge\n");
}

/* "name{a="x",b="y"} " */
static void
prom_sample_start(struct prom *p, const struct prom_label *labels, size_t n)
{
	if (!p->family[0]) {
		prom_fail(p, "sample before any family");
		return;
	}
	prom_puts(p, p->family);
	for (size_t i = 0; i < n; i++) {
		if (!prom_label_name_ok(labels[i].name) || !labels[i].value) {
			prom_fail(p, "bad label name");
			return;
		}
		prom_puts(p, i == 0 ? "{" : ",");
		prom_puts(p, labels[i].name);
		prom_puts(p, "=\"");
		prom_put_escaped(p, labels[i].value, true);
		prom_puts(p, "\"");
	}
	prom_puts(p, n > 0 ? "} " : " ");
}

void
prom_sample_u64(struct prom *p, const struct prom_label *labels, size_t n,
		uint64_t value)
{
	char num[32];
	prom_sample_start(p, labels, n);
	snprintf(num, sizeof num, "%llu\n", (unsigned long long)value);
	prom_puts(p, num);
}

static void
format_f64(char *num, size_t cap, double v)
{
	if (isnan(v)) {
		snprintf(num, cap, "NaN");
	} else if (isinf(v)) {
		snprintf(num, cap, "%s", v > 0 ? "+Inf" : "-Inf");
	} else {
		snprintf(num, cap, "%.15g", v);
		if (strtod(num, NULL) != v)
			snprintf(num, cap, "%.17g", v);
	}
}

void
prom_sample_f64(struct prom *p, const struct prom_label *labels, size_t n,
		double value)
{
	char num[40];
	prom_sample_start(p, labels, n);
	format_f64(num, sizeof num, value);
	prom_puts(p, num);
	prom_puts(p, "\n");
}

void
prom_counter(struct prom *p, const char *name, const char *help, uint64_t value)
{
	prom_family(p, name, PROM_COUNTER, help);
	prom_sample_u64(p, NULL, 0, value);
}

void
prom_gauge(struct prom *p, const char *name, const char *help, double value)
{
	prom_family(p, name, PROM_GAUGE, help);
	prom_sample_f64(p, NULL, 0, value);
}

size_t
prom_finish(const struct prom *p, const char **err)
{
	if (err)
		*err = p->err;
	return p->err ? 0 : p->len;
}

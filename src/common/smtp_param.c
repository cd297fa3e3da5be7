/*
 * smtp_param: ESMTP parameter lists after MAIL and RCPT (see
 * smtp_param.h).
 *
 * Two passes over the bytes, neither reading at or past len: the first
 * checks the RFC 5321 4.1.2 esmtp-param grammar of the whole list, so a
 * malformed list is a syntax error whatever keywords it names; the second
 * gives meaning to each parameter in order. On error *bad points at the
 * first octet of the offending keyword (or where one should have
 * started), always inside [s, s + len); on success it is NULL and *out
 * is filled, on failure *out is zeroed.
 */
#include "smtp_param.h"

#include <string.h>

struct param {
	const char *key;
	size_t klen;
	const char *val; /* NULL when no "=" value */
	size_t vlen;
};

static bool
param_is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

/* esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 octets (RFC 6531 3.3). */
static bool
param_is_value(unsigned char c)
{
	return (c >= 33 && c <= 126 && c != '=') || c >= 0x80;
}

/* a[0..alen) equals the upper-case name, ignoring ASCII case. */
static bool
param_caseeq(const char *a, size_t alen, const char *name)
{
	if (alen != strlen(name))
		return false;
	for (size_t i = 0; i < alen; i++) {
		unsigned char c = (unsigned char)a[i];
		if (c >= 'a' && c <= 'z')
			c = (unsigned char)(c - 'a' + 'A');
		if (c != (unsigned char)name[i])
			return false;
	}
	return true;
}

/* Skips separating spaces; false at the end of the list. */
static bool
param_skip(const char *s, size_t len, size_t *pos)
{
	while (*pos < len && s[*pos] == ' ')
		(*pos)++;
	return *pos < len;
}

/*
 * RFC 5321 4.1.2 esmtp-param = esmtp-keyword ["=" esmtp-value],
 * esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"), at s[*pos]
 * (not a space). It must end at a space or the end of the list.
 */
static bool
param_scan(const char *s, size_t len, size_t *pos, struct param *pa)
{
	size_t i = *pos;

	pa->key = s + i;
	pa->val = NULL;
	pa->vlen = 0;
	if (!param_is_alnum((unsigned char)s[i]))
		return false;
	while (i < len && (param_is_alnum((unsigned char)s[i]) || s[i] == '-'))
		i++;
	pa->klen = (size_t)(s + i - pa->key);
	if (i < len && s[i] == '=') {
		size_t v = ++i;
		while (i < len && param_is_value((unsigned char)s[i]))
			i++;
		if (i == v)
			return false;
		pa->val = s + v;
		pa->vlen = i - v;
	}
	if (i < len && s[i] != ' ')
		return false;
	*pos = i;
	return true;
}

/* First pass: grammar only. */
static enum param_err
param_syntax(const char *s, size_t len, const char **bad)
{
	size_t pos = 0;
	struct param pa;

	while (param_skip(s, len, &pos)) {
		if (!param_scan(s, len, &pos, &pa)) {
			*bad = pa.key;
			return PARAM_ERR_SYNTAX;
		}
	}
	return PARAM_OK;
}

/* RFC 1870 size-value = 1*20DIGIT; refused when it overflows. */
static enum param_err
param_size(const struct param *pa, struct mail_params *out)
{
	uint64_t v = 0;

	if (!pa->val || pa->vlen > 20)
		return PARAM_ERR_VALUE;
	for (size_t i = 0; i < pa->vlen; i++) {
		if (pa->val[i] < '0' || pa->val[i] > '9')
			return PARAM_ERR_VALUE;
		uint64_t d = (uint64_t)(pa->val[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return PARAM_ERR_VALUE;
		v = v * 10 + d;
	}
	out->has_size = true;
	out->size = v;
	return PARAM_OK;
}

/* RFC 6152 2: BODY=7BIT / BODY=8BITMIME. */
static enum param_err
param_body(const struct param *pa, struct mail_params *out)
{
	if (!pa->val)
		return PARAM_ERR_VALUE;
	if (param_caseeq(pa->val, pa->vlen, "7BIT"))
		out->body = BODY_7BIT;
	else if (param_caseeq(pa->val, pa->vlen, "8BITMIME"))
		out->body = BODY_8BITMIME;
	else
		return PARAM_ERR_VALUE;
	return PARAM_OK;
}

/* RFC 6531 3.4: SMTPUTF8 takes no value. */
static enum param_err
param_smtputf8(const struct param *pa, struct mail_params *out)
{
	if (pa->val)
		return PARAM_ERR_VALUE;
	out->smtputf8 = true;
	return PARAM_OK;
}

static const struct param_kind {
	const char *name;
	enum param_err (*apply)(const struct param *, struct mail_params *);
} param_mail_table[] = {
    {"SIZE", param_size},
    {"BODY", param_body},
    {"SMTPUTF8", param_smtputf8},
};

#define PARAM_MAIL_KINDS (sizeof param_mail_table / sizeof param_mail_table[0])

/* Second pass for MAIL: meaning of each parameter, in order. */
static enum param_err
param_mail_apply(const char *s, size_t len, struct mail_params *out,
		 const char **bad)
{
	bool seen[PARAM_MAIL_KINDS] = {false};
	size_t pos = 0;
	struct param pa;

	while (param_skip(s, len, &pos)) {
		size_t k;
		enum param_err e;

		(void)param_scan(s, len, &pos, &pa); /* checked in pass one */
		*bad = pa.key;
		for (k = 0; k < PARAM_MAIL_KINDS; k++) {
			const char *name = param_mail_table[k].name;
			if (param_caseeq(pa.key, pa.klen, name))
				break;
		}
		if (k == PARAM_MAIL_KINDS)
			return PARAM_ERR_UNKNOWN;
		if (seen[k])
			return PARAM_ERR_DUPLICATE;
		seen[k] = true;
		if ((e = param_mail_table[k].apply(&pa, out)) != PARAM_OK)
			return e;
	}
	*bad = NULL;
	return PARAM_OK;
}

enum param_err
smtp_mail_params(const char *s, size_t len, struct mail_params *out,
		 const char **bad)
{
	const char *ignored;
	struct mail_params mp = {.has_size = false, .body = BODY_NONE};
	enum param_err e;

	if (!bad)
		bad = &ignored;
	*bad = NULL;
	memset(out, 0, sizeof *out);
	e = param_syntax(s, len, bad);
	if (e == PARAM_OK)
		e = param_mail_apply(s, len, &mp, bad);
	if (e == PARAM_OK)
		*out = mp;
	return e;
}

enum param_err
smtp_rcpt_params(const char *s, size_t len, const char **bad)
{
	const char *ignored;
	size_t pos = 0;
	enum param_err e;

	if (!bad)
		bad = &ignored;
	*bad = NULL;
	e = param_syntax(s, len, bad);
	if (e != PARAM_OK)
		return e;
	if (param_skip(s, len, &pos)) {
		*bad = s + pos; /* no RCPT extension supported yet */
		return PARAM_ERR_UNKNOWN;
	}
	return PARAM_OK;
}

const char *
smtp_param_strerror(enum param_err e)
{
	switch (e) {
	case PARAM_OK:
		return "ok";
	case PARAM_ERR_SYNTAX:
		return "bad parameter syntax";
	case PARAM_ERR_UNKNOWN:
		return "unrecognised parameter";
	case PARAM_ERR_VALUE:
		return "bad parameter value";
	case PARAM_ERR_DUPLICATE:
		return "duplicate parameter";
	}
	return "unknown parameter error";
}

const char *
smtp_body_name(enum body_type body)
{
	switch (body) {
	case BODY_7BIT:
		return "7BIT";
	case BODY_8BITMIME:
		return "8BITMIME";
	case BODY_NONE:
		break;
	}
	return "";
}

/*
 * envelope: the envelope block parser (see envelope.h).
 *
 * One pass over the lines at the start of buf, never reading at or past
 * len. An X-Original-* line is judged only once its LF is in buf; the
 * line that ends the block only needs enough bytes to show that it does
 * not start with "X-Original-". So a result other than ENVELOPE_INCOMPLETE
 * never changes when more bytes are appended: the caller can stop reading
 * as soon as it gets one. Header names are matched without regard to ASCII
 * case (smtpd writes them as in envelope.h). On any result but ENVELOPE_OK
 * *out is left empty, with nothing to free.
 */
#include "envelope.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/*
 * Longest X-Original-* line, LF included (RFC 5322 2.1.1: 998 octets plus
 * the line end). smtpd's lines stay under 300 octets (a 256-octet path);
 * a longer one is garbage, and refusing it early keeps a caller from
 * reading up to ENVELOPE_BLOCK_MAX of it.
 */
#define ENVELOPE_LINE_MAX 1000

#define ENVELOPE_PREFIX "X-Original-"
#define ENVELOPE_FROM "X-Original-From:"
#define ENVELOPE_TO "X-Original-To:"

/* rcpts[] starts at this many entries and doubles. */
#define ENVELOPE_RCPT_INITIAL 8

struct envelope_line {
	const char *s; /* first octet of the line */
	size_t len;    /* without LF and trailing CR/space/tab */
	size_t next;   /* offset of the next line */
};

static unsigned char
envelope_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/*
 * Compares the n available octets of s with prefix, ignoring ASCII case:
 * 1 when s starts with all of prefix, 0 when it cannot, -1 when the n
 * octets match but are fewer than the prefix (undecided).
 */
static int
envelope_prefix(const char *s, size_t n, const char *prefix)
{
	size_t plen = strlen(prefix);

	for (size_t i = 0; i < plen; i++) {
		if (i == n)
			return -1;
		if (envelope_lower((unsigned char)s[i]) !=
		    envelope_lower((unsigned char)prefix[i]))
			return 0;
	}
	return 1;
}

static bool
envelope_is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Skips the colon's WSP (RFC 5322 2.2 unstructured field body). */
static size_t
envelope_skip_wsp(const char *s, size_t len, size_t pos)
{
	while (pos < len && envelope_is_wsp(s[pos]))
		pos++;
	return pos;
}

/*
 * The X-Original-* line at pos, once its LF is in buf. INCOMPLETE while
 * it is not; SYNTAX for a line over ENVELOPE_LINE_MAX or one cut by the
 * end of the file.
 */
static enum envelope_err
envelope_get_line(const char *buf, size_t len, size_t pos, int at_eof,
		  struct envelope_line *line)
{
	size_t avail = len - pos;
	size_t look = avail < ENVELOPE_LINE_MAX ? avail : ENVELOPE_LINE_MAX;
	const char *lf = memchr(buf + pos, '\n', look);

	if (!lf) {
		if (avail >= ENVELOPE_LINE_MAX || at_eof)
			return ENVELOPE_ERR_SYNTAX;
		return ENVELOPE_INCOMPLETE;
	}
	line->s = buf + pos;
	line->len = (size_t)(lf - line->s);
	line->next = pos + line->len + 1;
	while (line->len > 0 && (line->s[line->len - 1] == '\r' ||
				 envelope_is_wsp(line->s[line->len - 1])))
		line->len--;
	return ENVELOPE_OK;
}

/* "X-Original-From:" WSP path [params]: RFC 5321 4.1.1.2 MAIL. */
static enum envelope_err
envelope_from(const struct envelope_line *line, struct envelope *out)
{
	size_t pos =
	    envelope_skip_wsp(line->s, line->len, strlen(ENVELOPE_FROM));
	size_t used;
	const char *bad;

	if (smtp_path_parse(line->s + pos, line->len - pos,
			    ADDR_ALLOW_NULL | ADDR_ALLOW_UTF8, &out->from,
			    &used) != ADDR_OK)
		return ENVELOPE_ERR_SYNTAX;
	pos += used;
	/* parameters are separated from the path by a space */
	if (pos < line->len && line->s[pos] != ' ')
		return ENVELOPE_ERR_SYNTAX;
	if (smtp_mail_params(line->s + pos, line->len - pos, &out->params,
			     &bad) != PARAM_OK)
		return ENVELOPE_ERR_SYNTAX;
	return ENVELOPE_OK;
}

/* Room for one more recipient. */
static enum envelope_err
envelope_grow(struct envelope *out, size_t *cap)
{
	if (out->nrcpt < *cap)
		return ENVELOPE_OK;
	size_t ncap = *cap ? *cap * 2 : ENVELOPE_RCPT_INITIAL;
	if (ncap > ENVELOPE_RCPT_MAX)
		ncap = ENVELOPE_RCPT_MAX;
	struct smtp_path *p = realloc(out->rcpts, ncap * sizeof *p);
	if (!p)
		return ENVELOPE_ERR_NOMEM;
	out->rcpts = p;
	*cap = ncap;
	return ENVELOPE_OK;
}

/* "X-Original-To:" WSP path: RFC 5321 4.1.1.3 RCPT, no parameters. */
static enum envelope_err
envelope_to(const struct envelope_line *line, struct envelope *out, size_t *cap)
{
	size_t pos = envelope_skip_wsp(line->s, line->len, strlen(ENVELOPE_TO));
	size_t used;
	struct smtp_path path;

	if (out->nrcpt >= ENVELOPE_RCPT_MAX)
		return ENVELOPE_ERR_TOO_MANY;
	if (smtp_path_parse(line->s + pos, line->len - pos,
			    ADDR_ALLOW_POSTMASTER | ADDR_ALLOW_UTF8, &path,
			    &used) != ADDR_OK ||
	    pos + used != line->len)
		return ENVELOPE_ERR_SYNTAX;
	enum envelope_err e = envelope_grow(out, cap);
	if (e != ENVELOPE_OK)
		return e;
	out->rcpts[out->nrcpt++] = path;
	return ENVELOPE_OK;
}

/* One complete X-Original-* line at offset pos. */
static enum envelope_err
envelope_judge(const struct envelope_line *line, size_t pos,
	       struct envelope *out, size_t *cap)
{
	if (line->next > ENVELOPE_BLOCK_MAX)
		return ENVELOPE_ERR_TOO_LONG;
	if (envelope_prefix(line->s, line->len, ENVELOPE_FROM) == 1)
		return pos == 0 ? envelope_from(line, out)
				: ENVELOPE_ERR_SYNTAX;
	if (pos == 0)
		return ENVELOPE_ERR_NO_FROM;
	if (envelope_prefix(line->s, line->len, ENVELOPE_TO) == 1)
		return envelope_to(line, out, cap);
	return ENVELOPE_ERR_SYNTAX; /* an X-Original-* we do not write */
}

/* The line at pos does not start with "X-Original-": the block ends. */
static enum envelope_err
envelope_end(size_t pos, struct envelope *out)
{
	if (pos == 0)
		return ENVELOPE_ERR_NO_FROM;
	if (out->nrcpt == 0)
		return ENVELOPE_ERR_NO_RCPT;
	out->body_offset = pos;
	return ENVELOPE_OK;
}

static enum envelope_err
envelope_scan(const char *buf, size_t len, int at_eof, struct envelope *out)
{
	size_t pos = 0, cap = 0;
	struct envelope_line line;
	enum envelope_err e;

	for (;;) {
		if (pos == len && at_eof) /* the block never ended */
			return pos == 0 ? ENVELOPE_ERR_NO_FROM
					: ENVELOPE_ERR_SYNTAX;
		int m = envelope_prefix(buf + pos, len - pos, ENVELOPE_PREFIX);
		if (m == 0 || (m < 0 && at_eof))
			return envelope_end(pos, out);
		if (m < 0)
			return ENVELOPE_INCOMPLETE;
		e = envelope_get_line(buf, len, pos, at_eof, &line);
		if (e == ENVELOPE_OK)
			e = envelope_judge(&line, pos, out, &cap);
		if (e != ENVELOPE_OK)
			return e;
		pos = line.next;
	}
}

enum envelope_err
envelope_parse(const char *buf, size_t len, int at_eof, struct envelope *out)
{
	memset(out, 0, sizeof *out);
	enum envelope_err e = envelope_scan(buf, len, at_eof, out);
	if (e != ENVELOPE_OK)
		envelope_free(out);
	return e;
}

void
envelope_free(struct envelope *env)
{
	free(env->rcpts);
	memset(env, 0, sizeof *env);
}

const char *
envelope_strerror(enum envelope_err e)
{
	switch (e) {
	case ENVELOPE_OK:
		return "ok";
	case ENVELOPE_INCOMPLETE:
		return "envelope block incomplete";
	case ENVELOPE_ERR_NO_FROM:
		return "no X-Original-From line";
	case ENVELOPE_ERR_NO_RCPT:
		return "no X-Original-To line";
	case ENVELOPE_ERR_SYNTAX:
		return "bad envelope line";
	case ENVELOPE_ERR_TOO_MANY:
		return "too many recipients";
	case ENVELOPE_ERR_TOO_LONG:
		return "envelope block too long";
	case ENVELOPE_ERR_NOMEM:
		return "out of memory";
	}
	return "unknown envelope error";
}

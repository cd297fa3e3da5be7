/*
 * log_json: building one JSON line in a ring slot, see log.h: the header
 * fields, the typed fields and the one place that escapes JSON strings.
 *
 * Invariants:
 * - Every slot holds a complete line of at most LOG_LINE_MAX bytes that
 *   ends in "}\n"; room for ",\"truncated\":true}\n" is always kept. A
 *   string value is cut to fit; a key or number that does not fit drops
 *   its field; after the first cut every later field of the line is
 *   dropped, so a truncated line is always a prefix of the intended one.
 */
#include "log_int.h"
#include "utf8.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/*
 * Escapes as much of src as fits in cap bytes without splitting an escape
 * or a UTF-8 sequence (RFC 8259 section 7). *used is set to the number of
 * source bytes consumed. Control bytes, DEL and bytes that are not part of
 * well-formed UTF-8 become \u00XX, so the output is always valid UTF-8.
 */
static size_t
log_escape_span(char *dst, size_t cap, const char *src, size_t n, size_t *used)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)src;
	size_t o = 0, i = 0;

	while (i < n) {
		char esc[6];
		const char *out = esc;
		size_t olen = 2, ilen = 1;
		unsigned char c = s[i];

		esc[0] = '\\';
		if (c == '"' || c == '\\')
			esc[1] = (char)c;
		else if (c == '\n')
			esc[1] = 'n';
		else if (c == '\r')
			esc[1] = 'r';
		else if (c == '\t')
			esc[1] = 't';
		else if (c >= 0x20 && c < 0x7f)
			out = src + i, olen = 1;
		else if (c >= 0x80 && (ilen = utf8_seq_len(s + i, n - i)) > 0)
			out = src + i, olen = ilen;
		else {
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			olen = 6, ilen = 1;
		}
		if (olen > cap - o)
			break;
		memcpy(dst + o, out, olen);
		o += olen;
		i += ilen;
	}
	*used = i;
	return o;
}

/* Writes at most cap bytes and no terminating NUL. */
size_t
log_json_escape(char *dst, size_t cap, const char *src, size_t n)
{
	size_t used;

	return log_escape_span(dst, cap, src, n, &used);
}

/* ---- building a line ------------------------------------------------- */

/* Bytes still free for fields, keeping room for the truncation mark. */
static size_t
log_line_room(const struct log_line *l)
{
	return LOG_LINE_MAX - LOG_TAIL_RESERVE - l->pos;
}

/* Appends s whole or not at all; 0 on success, -1 when it does not fit. */
static int
log_line_raw(struct log_line *l, const char *s, size_t n)
{
	if (n > log_line_room(l))
		return -1;
	memcpy(l->slot->buf + l->pos, s, n);
	l->pos += n;
	return 0;
}

/* Appends ,"key": whole; on failure the line is marked truncated. */
static int
log_line_key(struct log_line *l, const char *key)
{
	size_t start = l->pos, klen, used, w;

	if (l->truncated)
		return -1;
	key = key ? key : "";
	klen = strlen(key);
	if (log_line_raw(l, ",\"", 2) < 0)
		goto fail;
	w = log_escape_span(l->slot->buf + l->pos, log_line_room(l), key, klen,
			    &used);
	l->pos += w;
	if (used < klen || log_line_raw(l, "\":", 2) < 0)
		goto fail;
	return 0;
fail:
	l->pos = start;
	l->truncated = true;
	return -1;
}

/* Appends "val" escaped, cutting it to fit; needs room for the quotes. */
static void
log_line_string(struct log_line *l, size_t start, const char *val, size_t n)
{
	size_t used, w;

	if (log_line_room(l) < 2) {
		l->pos = start;
		l->truncated = true;
		return;
	}
	l->slot->buf[l->pos++] = '"';
	w = log_escape_span(l->slot->buf + l->pos, log_line_room(l) - 1, val, n,
			    &used);
	l->pos += w;
	l->slot->buf[l->pos++] = '"';
	if (used < n)
		l->truncated = true;
}

/* Appends one field whose value is the literal text s (number, bool). */
static void
log_line_literal(struct log_line *l, const char *key, const char *s, size_t n)
{
	size_t start;

	if (!l || !l->slot) /* filtered, dropped or already ended */
		return;
	start = l->pos;
	if (log_line_key(l, key) < 0)
		return;
	if (log_line_raw(l, s, n) < 0) {
		l->pos = start;
		l->truncated = true;
	}
}

void
log_strn(struct log_line *l, const char *key, const char *val, size_t n)
{
	size_t start;

	if (!l || !l->slot)
		return;
	if (!val) {
		log_line_literal(l, key, "null", 4);
		return;
	}
	start = l->pos;
	if (log_line_key(l, key) < 0)
		return;
	log_line_string(l, start, val, n);
}

void
log_str(struct log_line *l, const char *key, const char *val)
{
	log_strn(l, key, val, val ? strlen(val) : 0);
}

void
log_int(struct log_line *l, const char *key, long long val)
{
	char num[32];
	int n = snprintf(num, sizeof num, "%lld", val);

	if (n > 0)
		log_line_literal(l, key, num, (size_t)n);
}

void
log_uint(struct log_line *l, const char *key, unsigned long long val)
{
	char num[32];
	int n = snprintf(num, sizeof num, "%llu", val);

	if (n > 0)
		log_line_literal(l, key, num, (size_t)n);
}

void
log_ms(struct log_line *l, const char *key, uint64_t ms)
{
	char num[32];
	int n = snprintf(num, sizeof num, "%" PRIu64 ".%03u", ms / 1000,
			 (unsigned)(ms % 1000));

	if (n > 0)
		log_line_literal(l, key, num, (size_t)n);
}

void
log_bool(struct log_line *l, const char *key, int val)
{
	if (val)
		log_line_literal(l, key, "true", 4);
	else
		log_line_literal(l, key, "false", 5);
}

/*
 * Civil date of a day count since 1970-01-01 (proleptic Gregorian; H.
 * Hinnant's days-to-civil). Used instead of gmtime_r(), which takes glibc's
 * tz lock, because the producer must never lock.
 */
static void
log_civil(long long days, long long *y, int *m, int *d)
{
	long long z = days + 719468;
	long long era = (z >= 0 ? z : z - 146096) / 146097;
	long long doe = z - era * 146097;
	long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	long long mp = (5 * doy + 2) / 153;

	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* RFC 3339 section 5.6 in UTC with milliseconds: 2026-11-26T06:00:00.123Z */
static size_t
log_format_ts(char *buf, size_t cap)
{
	struct timespec ts;
	long long days, secs, year;
	int mon, mday, n;

	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		ts.tv_sec = 0, ts.tv_nsec = 0;
	days = (long long)ts.tv_sec / 86400;
	secs = (long long)ts.tv_sec % 86400;
	if (secs < 0)
		secs += 86400, days--;
	log_civil(days, &year, &mon, &mday);
	n = snprintf(buf, cap, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", year,
		     mon, mday, (int)(secs / 3600), (int)(secs / 60 % 60),
		     (int)(secs % 60), (int)(ts.tv_nsec / 1000000));
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* Starts a line in the slot at head: ts, level, svc, event. */
struct log_line *
log_line_open(struct logger *lg, size_t head, enum log_level level,
	      const char *event)
{
	struct log_line *l = &lg->line;
	char hdr[LOG_SVC_MAX + 128];
	char ts[64];
	size_t tslen = log_format_ts(ts, sizeof ts);
	int n = snprintf(hdr, sizeof hdr,
			 "{\"ts\":\"%.*s\",\"level\":\"%s\",\"svc\":\"%.*s\"",
			 (int)tslen, ts, log_level_name(level),
			 (int)lg->svc_len, lg->svc);

	l->lg = lg;
	l->slot = &lg->slots[head % LOG_RING_SLOTS];
	l->pos = 0;
	l->truncated = false;
	/* hdr is far below the room of a slot, so this always fits. */
	if (n > 0 && (size_t)n < sizeof hdr)
		(void)log_line_raw(l, hdr, (size_t)n);
	log_str(l, "event", event ? event : "");
	return l;
}

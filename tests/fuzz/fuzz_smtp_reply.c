/*
 * fuzz_smtp_reply: libFuzzer target for smtp_reply_parse() and
 * smtp_caps_parse() (src/common/smtp_reply.c). The input is bytes from a
 * server, copied to an exact-size heap buffer so a read past len is
 * caught by ASan in the replay build too. Any broken invariant aborts:
 * - anything but SMTP_REPLY_OK leaves a zeroed reply and *used 0;
 * - a result other than INCOMPLETE stays the same when bytes are
 *   appended, and every prefix of the input gives INCOMPLETE or the
 *   whole input's result;
 * - an accepted reply used 1..len octets ending in LF, has a code
 *   200..559, 1..SMTP_REPLY_LINES_MAX lines, a text with as many lines
 *   (unless cut at SMTP_REPLY_TEXT_MAX - 1 octets) and no NUL inside, and
 *   an enhanced code that is empty or class.subject.detail of the code's
 *   class; a cut just before its end is INCOMPLETE;
 * - capabilities come only from a 250 reply;
 * - formatting a parsed reply (short lines, no CR) and parsing it again
 *   gives the same code, enhanced code and text.
 */
#include "smtp_reply.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_assert(int ok, int line)
{
	if (!ok) {
		fprintf(stderr, "fuzz_smtp_reply.c:%d: invariant broken\n",
			line);
		abort();
	}
}
#define FUZZ_CHECK(c) fuzz_assert((c) != 0, __LINE__)

static const char fuzz_tail[] = "250 tail\r\n";

/* Parses s[0..len) (+ the tail when tail) from an exact-size copy. */
static enum smtp_reply_status
fuzz_parse(const char *s, size_t len, int tail, struct smtp_reply *r,
	   size_t *used)
{
	size_t tlen = tail ? sizeof fuzz_tail - 1 : 0;
	char *copy = malloc(len + tlen ? len + tlen : 1);

	if (!copy)
		abort();
	memcpy(copy, s, len);
	memcpy(copy + len, fuzz_tail, tlen);
	enum smtp_reply_status st = smtp_reply_parse(copy, len + tlen, r, used);
	free(copy);
	if (st != SMTP_REPLY_OK) {
		static const struct smtp_reply zero;
		FUZZ_CHECK(*used == 0);
		FUZZ_CHECK(memcmp(r, &zero, sizeof zero) == 0);
	}
	return st;
}

static void
fuzz_same(enum smtp_reply_status sa, const struct smtp_reply *a, size_t ua,
	  enum smtp_reply_status sb, const struct smtp_reply *b, size_t ub)
{
	FUZZ_CHECK(sa == sb && ua == ub);
	FUZZ_CHECK(memcmp(a, b, sizeof *a) == 0);
}

static int
fuzz_digits(const char *s, size_t *pos)
{
	size_t start = *pos;

	while (s[*pos] >= '0' && s[*pos] <= '9')
		(*pos)++;
	return *pos > start && *pos - start <= 3;
}

static void
fuzz_check_enh(const struct smtp_reply *r)
{
	size_t pos = 2;

	FUZZ_CHECK(memchr(r->enh, '\0', sizeof r->enh) != NULL);
	if (r->enh[0] == '\0')
		return;
	FUZZ_CHECK(r->enh[0] == '0' + r->code / 100 && r->enh[1] == '.');
	FUZZ_CHECK(r->enh[0] == '2' || r->enh[0] == '4' || r->enh[0] == '5');
	FUZZ_CHECK(fuzz_digits(r->enh, &pos) && r->enh[pos++] == '.');
	FUZZ_CHECK(fuzz_digits(r->enh, &pos) && r->enh[pos] == '\0');
}

static void
fuzz_check_ok(const char *s, const struct smtp_reply *r, size_t used,
	      size_t size)
{
	FUZZ_CHECK(used > 0 && used <= size && s[used - 1] == '\n');
	FUZZ_CHECK(r->code >= 200 && r->code <= 559);
	FUZZ_CHECK(r->lines >= 1 && r->lines <= SMTP_REPLY_LINES_MAX);
	size_t tlen = strnlen(r->text, sizeof r->text);
	FUZZ_CHECK(tlen < sizeof r->text);
	/* the rest of text[] is zero: no NUL hides part of the text */
	for (size_t i = tlen; i < sizeof r->text; i++)
		FUZZ_CHECK(r->text[i] == '\0');
	size_t nl = 0;
	for (size_t i = 0; i < tlen; i++)
		nl += r->text[i] == '\n';
	if (tlen < sizeof r->text - 1)
		FUZZ_CHECK(nl + 1 == r->lines);
	else
		FUZZ_CHECK(nl + 1 <= r->lines);
	fuzz_check_enh(r);
}

static void
fuzz_caps(const struct smtp_reply *r)
{
	struct smtp_caps caps;

	memset(&caps, 0xa5, sizeof caps);
	smtp_caps_parse(r, &caps);
	if (r->code != 250)
		FUZZ_CHECK(!caps.pipelining && !caps.size && !caps.size_max &&
			   !caps.eightbitmime && !caps.smtputf8 &&
			   !caps.enhanced && !caps.starttls);
	if (!caps.size)
		FUZZ_CHECK(caps.size_max == 0);
}

/* Lines of at most 400 octets, no CR: the formatter keeps them whole. */
static int
fuzz_formattable(const char *text)
{
	size_t line = 0;

	for (const char *p = text; *p; p++) {
		if (*p == '\r')
			return 0;
		line = *p == '\n' ? 0 : line + 1;
		if (line > 400)
			return 0;
	}
	return 1;
}

static void
fuzz_round_trip(const struct smtp_reply *r)
{
	static char buf[SMTP_REPLY_LINES_MAX * SMTP_REPLY_LINE_MAX];
	struct smtp_reply back;
	size_t used;

	if (!fuzz_formattable(r->text))
		return;
	size_t n = smtp_reply_format(buf, sizeof buf, r->code,
				     r->enh[0] ? r->enh : NULL, r->text);
	FUZZ_CHECK(n > 0);
	FUZZ_CHECK(fuzz_parse(buf, n, 0, &back, &used) == SMTP_REPLY_OK);
	FUZZ_CHECK(used == n && back.code == r->code);
	FUZZ_CHECK(strcmp(back.enh, r->enh) == 0);
	FUZZ_CHECK(strcmp(back.text, r->text) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct smtp_reply r, r2;
	size_t used, used2;
	enum smtp_reply_status st = fuzz_parse(s, size, 0, &r, &used);
	enum smtp_reply_status st2;

	/* more bytes never change a decided result */
	if (st != SMTP_REPLY_INCOMPLETE) {
		st2 = fuzz_parse(s, size, 1, &r2, &used2);
		fuzz_same(st, &r, used, st2, &r2, used2);
	}
	/* a prefix is INCOMPLETE or already the whole result */
	for (size_t k = 0; k < size && k < 64; k++) {
		st2 = fuzz_parse(s, k, 0, &r2, &used2);
		if (st2 != SMTP_REPLY_INCOMPLETE)
			fuzz_same(st, &r, used, st2, &r2, used2);
	}
	if (st != SMTP_REPLY_OK)
		return 0;
	fuzz_check_ok(s, &r, used, size);
	FUZZ_CHECK(fuzz_parse(s, used - 1, 0, &r2, &used2) ==
		   SMTP_REPLY_INCOMPLETE);
	st2 = fuzz_parse(s, used, 0, &r2, &used2);
	fuzz_same(st, &r, used, st2, &r2, used2);
	fuzz_caps(&r);
	fuzz_round_trip(&r);
	return 0;
}

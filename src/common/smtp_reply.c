/*
 * smtp_reply: see smtp_reply.h.
 */
#include "smtp_reply.h"

#include <stdio.h>
#include <string.h>

/* Appends one line; returns new length or 0 when it does not fit. */
static size_t
reply_line(char *buf, size_t cap, size_t pos, int code, char sep,
	   const char *enh, const char *text, size_t tlen)
{
	char head[16];
	int hn = snprintf(head, sizeof head, "%03d%c", code, sep);
	size_t elen = enh ? strlen(enh) + 1 : 0;
	size_t max_text = SMTP_REPLY_LINE_MAX - 2 - (size_t)hn - elen;

	if (tlen > max_text)
		tlen = max_text;
	size_t need = (size_t)hn + elen + tlen + 2;
	if (hn < 0 || pos + need > cap)
		return 0;
	memcpy(buf + pos, head, (size_t)hn);
	pos += (size_t)hn;
	if (enh) {
		memcpy(buf + pos, enh, elen - 1);
		buf[pos + elen - 1] = ' ';
		pos += elen;
	}
	memcpy(buf + pos, text, tlen);
	pos += tlen;
	buf[pos++] = '\r';
	buf[pos++] = '\n';
	return pos;
}

size_t
smtp_reply_format(char *buf, size_t cap, int code, const char *enh,
		  const char *text)
{
	size_t pos = 0;

	if (code < 200 || code > 599)
		return 0;
	for (;;) {
		const char *nl = strchr(text, '\n');
		size_t tlen = nl ? (size_t)(nl - text) : strlen(text);
		pos = reply_line(buf, cap, pos, code, nl ? '-' : ' ', enh, text,
				 tlen);
		if (pos == 0 || !nl)
			return pos;
		text = nl + 1;
	}
}

/*
 * Client side: replies read from a server (RFC 5321 4.2, 4.2.1).
 *
 * A line is judged only once its LF is in buf, so a partial reply is
 * SMTP_REPLY_INCOMPLETE and a result other than that never changes when
 * more bytes arrive. Two limits keep a hostile server bounded: a line of
 * more than SMTP_REPLY_IN_LINE_MAX octets and a reply of more than
 * SMTP_REPLY_LINES_MAX lines are errors as soon as they are seen. Except
 * with SMTP_REPLY_OK, *out is left zeroed and *used 0.
 */

/* Longest reply line we read, line end included (4x RFC 5321's 512). */
#define SMTP_REPLY_IN_LINE_MAX 2048

static bool
reply_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * RFC 5321 4.2: Reply-code = %x32-35 %x30-35 %x30-39, then "-" (more
 * lines follow), SP or the end of the line (last line).
 */
static bool
reply_code(const char *s, size_t n, int *code, char *sep)
{
	if (n < 3 || s[0] < '2' || s[0] > '5' || s[1] < '0' || s[1] > '5' ||
	    !reply_is_digit(s[2]))
		return false;
	*code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	*sep = n > 3 ? s[3] : ' ';
	return *sep == ' ' || *sep == '-';
}

/* 1*3DIGIT at s[*pos]; advances *pos. */
static bool
reply_enh_number(const char *s, size_t n, size_t *pos)
{
	size_t start = *pos;

	while (*pos < n && *pos - start < 4 && reply_is_digit(s[*pos]))
		(*pos)++;
	return *pos > start && *pos - start <= 3;
}

/*
 * RFC 3463 2: status-code = class "." subject "." detail, class "2" /
 * "4" / "5" (RFC 2034 3: the same class as the reply code), subject and
 * detail 1*3digit; then SP or the end of the text. Returns its length
 * (without the SP), 0 when the text does not start with one.
 */
static size_t
reply_enh_len(const char *s, size_t n, int code)
{
	char class = (char)('0' + code / 100);
	size_t pos = 2;

	if (n < 5 || (class != '2' && class != '4' && class != '5') ||
	    s[0] != class || s[1] != '.')
		return 0;
	if (!reply_enh_number(s, n, &pos) || pos >= n || s[pos] != '.')
		return 0;
	pos++;
	if (!reply_enh_number(s, n, &pos) || (pos < n && s[pos] != ' '))
		return 0;
	return pos;
}

/*
 * Appends one line of text (joined by '\n'), truncated to fit. A NUL
 * (never valid in a textstring, RFC 5321 4.2) becomes '?' so the text
 * stays one C string.
 */
static void
reply_add_text(struct smtp_reply *out, size_t *tlen, const char *s, size_t n)
{
	const size_t room = sizeof out->text - 1;

	if (out->lines > 0 && *tlen < room)
		out->text[(*tlen)++] = '\n';
	if (n > room - *tlen)
		n = room - *tlen;
	for (size_t i = 0; i < n; i++)
		out->text[(*tlen)++] = s[i] ? s[i] : '?';
	out->text[*tlen] = '\0';
}

/* The text of one complete line (s without its line end). */
static void
reply_line_text(struct smtp_reply *out, size_t *tlen, const char *s, size_t n)
{
	size_t elen;

	s += n > 3 ? 4 : 3;
	n -= n > 3 ? 4 : 3;
	elen = reply_enh_len(s, n, out->code);
	if (out->lines == 0 && elen > 0)
		memcpy(out->enh, s, elen); /* elen <= 9 < sizeof enh */
	if (elen > 0 && out->enh[0] != '\0') {
		elen += elen < n; /* and its SP */
		s += elen;
		n -= elen;
	}
	reply_add_text(out, tlen, s, n);
}

static enum smtp_reply_status
reply_fail(struct smtp_reply *out, enum smtp_reply_status st)
{
	memset(out, 0, sizeof *out);
	return st;
}

enum smtp_reply_status
smtp_reply_parse(const char *buf, size_t len, struct smtp_reply *out,
		 size_t *used)
{
	size_t pos = 0, tlen = 0;

	memset(out, 0, sizeof *out);
	*used = 0;
	for (;;) {
		size_t avail = len - pos;
		size_t look = avail < SMTP_REPLY_IN_LINE_MAX
				  ? avail
				  : SMTP_REPLY_IN_LINE_MAX;
		const char *lf = memchr(buf + pos, '\n', look);
		if (!lf)
			return reply_fail(out, avail >= SMTP_REPLY_IN_LINE_MAX
						   ? SMTP_REPLY_ERR_LONG
						   : SMTP_REPLY_INCOMPLETE);
		size_t n = (size_t)(lf - (buf + pos));
		size_t next = pos + n + 1;
		int code;
		char sep;
		if (n > 0 && buf[pos + n - 1] == '\r')
			n--; /* CRLF, or a bare LF (RFC 5321 4.1.1) */
		if (!reply_code(buf + pos, n, &code, &sep) ||
		    (out->lines > 0 && code != out->code))
			return reply_fail(out, SMTP_REPLY_ERR_SYNTAX);
		out->code = code;
		reply_line_text(out, &tlen, buf + pos, n);
		out->lines++;
		pos = next;
		if (sep == ' ') {
			*used = pos;
			return SMTP_REPLY_OK;
		}
		if (out->lines >= SMTP_REPLY_LINES_MAX)
			return reply_fail(out, SMTP_REPLY_ERR_LONG);
	}
}

/* s[0..n) equals the upper-case keyword, ignoring ASCII case. */
static bool
caps_keyword(const char *s, size_t n, const char *kw)
{
	if (n != strlen(kw))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		if (c != kw[i])
			return false;
	}
	return true;
}

/* RFC 1870 4: "SIZE" [SP 1*20DIGIT]; anything else is "no limit given". */
static uint64_t
caps_size(const char *s, size_t n)
{
	uint64_t v = 0;
	size_t i = 0;

	while (i < n && s[i] == ' ')
		i++;
	if (i == n)
		return 0;
	for (; i < n && s[i] != ' '; i++) {
		if (!reply_is_digit(s[i]))
			return 0;
		uint64_t d = (uint64_t)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	return v;
}

/* One EHLO line: ehlo-line = ehlo-keyword *( SP ehlo-param ). */
static void
caps_line(const char *s, size_t n, struct smtp_caps *out)
{
	const char *sp = memchr(s, ' ', n);
	size_t kn = sp ? (size_t)(sp - s) : n;

	if (caps_keyword(s, kn, "PIPELINING"))
		out->pipelining = true;
	else if (caps_keyword(s, kn, "8BITMIME"))
		out->eightbitmime = true;
	else if (caps_keyword(s, kn, "SMTPUTF8"))
		out->smtputf8 = true;
	else if (caps_keyword(s, kn, "ENHANCEDSTATUSCODES"))
		out->enhanced = true;
	else if (caps_keyword(s, kn, "STARTTLS"))
		out->starttls = true;
	else if (caps_keyword(s, kn, "SIZE")) {
		out->size = true;
		out->size_max = caps_size(s + kn, n - kn);
	}
}

/*
 * RFC 5321 4.1.1.1: the first line of a 250 EHLO reply names the server,
 * each further one is a keyword with parameters. Anything but a 250 has
 * no keywords.
 */
void
smtp_caps_parse(const struct smtp_reply *ehlo, struct smtp_caps *out)
{
	memset(out, 0, sizeof *out);
	if (ehlo->code != 250)
		return;
	const char *s = strchr(ehlo->text, '\n');
	while (s) {
		s++;
		const char *nl = strchr(s, '\n');
		size_t n = nl ? (size_t)(nl - s) : strlen(s);
		caps_line(s, n, out);
		s = nl;
	}
}

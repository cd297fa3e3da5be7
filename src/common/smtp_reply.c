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

/*
 * smtp_reply: formatting SMTP replies (RFC 5321 4.2, enhanced status codes
 * RFC 2034/3463). Pure functions over caller buffers.
 */
#ifndef MTA_SMTP_REPLY_H
#define MTA_SMTP_REPLY_H

#include <stddef.h>

/* Longest reply line we emit, CRLF included (RFC 5321 4.5.3.1.5: 512). */
#define SMTP_REPLY_LINE_MAX 512

/*
 * Formats code [enh] text as one or more reply lines into buf. Each '\n' in
 * text starts a new line ("250-a\r\n250 b\r\n"); enh (e.g. "2.1.0", may be
 * NULL) prefixes every line. Lines longer than SMTP_REPLY_LINE_MAX are
 * truncated. Returns the length, or 0 when buf is too small (nothing
 * partial is left for the caller to send).
 */
size_t smtp_reply_format(char *buf, size_t cap, int code, const char *enh,
			 const char *text);

#endif

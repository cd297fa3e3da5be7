/*
 * smtp_reply: formatting SMTP replies (RFC 5321 4.2, enhanced status codes
 * RFC 2034/3463). Pure functions over caller buffers.
 */
#ifndef MTA_SMTP_REPLY_H
#define MTA_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* Client side: replies from a server (RFC 5321 4.2, 4.2.1). */
#define SMTP_REPLY_TEXT_MAX 1024 /* text kept from one reply */
#define SMTP_REPLY_LINES_MAX 100 /* lines of one reply before it is bogus */

struct smtp_reply {
	int code;     /* 200..599 */
	char enh[16]; /* "2.1.5" when the first line has one, else "" */
	/* Text of all lines without code and enhanced code, joined by '\n',
	 * truncated to SMTP_REPLY_TEXT_MAX - 1. */
	char text[SMTP_REPLY_TEXT_MAX];
	size_t lines;
};

enum smtp_reply_status {
	SMTP_REPLY_INCOMPLETE, /* no complete reply in buf yet */
	SMTP_REPLY_OK,	       /* one reply parsed, *used bytes consumed */
	SMTP_REPLY_ERR_SYNTAX, /* not a reply: bad code, mixed codes */
	SMTP_REPLY_ERR_LONG,   /* a line over 2048 octets or too many lines */
};

/*
 * Parses the first complete reply in buf. Lines end in CRLF (a bare LF is
 * accepted). A multi-line reply is "NNN-text" lines then "NNN text"; all
 * lines must carry the same code. Pure.
 */
enum smtp_reply_status smtp_reply_parse(const char *buf, size_t len,
					struct smtp_reply *out, size_t *used);

/* EHLO keywords we act on (RFC 5321 4.1.1.1 and each extension's RFC). */
struct smtp_caps {
	bool pipelining;   /* RFC 2920 */
	bool size;	   /* RFC 1870 */
	uint64_t size_max; /* 0: no limit given */
	bool eightbitmime; /* RFC 6152 */
	bool smtputf8;	   /* RFC 6531 */
	bool enhanced;	   /* RFC 2034 ENHANCEDSTATUSCODES */
	bool starttls;	   /* RFC 3207 */
};

/* Reads the keywords from the text of a parsed 250 EHLO reply (the first
 * line is the server's name and is skipped). Case-insensitive. */
void smtp_caps_parse(const struct smtp_reply *ehlo, struct smtp_caps *out);

#endif

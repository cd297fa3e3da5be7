/*
 * body: the stored form of a message (LF line ends, not dot-stuffed) into
 * the DATA wire form (CRLF line ends, dot-stuffed, RFC 5321 4.5.2), as a
 * pure transform that can be fed in any chunking.
 *
 * Every LF becomes CRLF (a CR already before it is content and stays, so
 * the round trip through smtpd is exact); a "." at the start of a line
 * becomes "..". body_finish() ends the data: CRLF if the last line had no
 * line end, then ".\r\n".
 */
#ifndef MTA_BODY_H
#define MTA_BODY_H

#include <stdbool.h>
#include <stddef.h>

struct body_state {
	bool mid_line; /* false at the start of a line */
};

void body_init(struct body_state *);
/*
 * Encodes as much of in as fits in out (at worst 2 output bytes per input
 * byte). Returns bytes of in consumed; *outlen gets bytes written. Never
 * splits the expansion of one input byte across calls.
 */
size_t body_encode(struct body_state *, const char *in, size_t inlen, char *out,
		   size_t outcap, size_t *outlen);
/* Writes the end of data into out (needs 5 bytes); returns its length. */
size_t body_finish(struct body_state *, char *out, size_t outcap);

#endif

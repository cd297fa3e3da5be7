/*
 * data: the DATA mode of the input stream (RFC 5321 4.1.1.4, 4.5.2) as a
 * pure byte-level state machine, so it can be fed byte by byte or in any
 * chunking and give the same result.
 *
 * It turns the wire form into the stored form: CRLF line ends become LF,
 * a leading "." on a line is removed (dot-unstuffing), and the end of data
 * is recognised only as <CR><LF>.<CR><LF> (the data's first line counts as
 * preceded by CRLF, since the DATA command line ended with one).
 *
 * Bare LF (an LF not preceded by CR): with DATA_BARE_LF_NORMALIZE it ends
 * a line like CRLF would, but a line ended by a bare LF, or begun after
 * one, never completes the end-of-data sequence (so "<LF>.<LF>",
 * "<LF>.<CR><LF>", "<CR><LF>.<LF>" cannot end a message: SMTP smuggling).
 * With DATA_BARE_LF_REJECT the same happens and bare_lf is set so the
 * caller can refuse the message after its end. A bare CR (not followed by
 * LF) is message content and is kept as is.
 *
 * While in the header section (before the first empty line) it counts
 * "Received:" header fields for mail-loop detection.
 */
#ifndef MTA_DATA_H
#define MTA_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum data_bare_lf {
	DATA_BARE_LF_NORMALIZE,
	DATA_BARE_LF_REJECT,
};

struct data_state {
	/* private: */
	int phase;
	int header_phase;
	size_t header_match;
	/* results, readable at any time: */
	uint64_t size;	   /* bytes of the stored form produced so far */
	unsigned received; /* "Received:" fields seen in the header */
	bool bare_lf;	   /* at least one bare LF seen */
	bool done;	   /* end-of-data seen */
	enum data_bare_lf mode;
};

void data_init(struct data_state *, enum data_bare_lf mode);

/*
 * Consumes up to inlen bytes of wire data, writing the stored form to out
 * (which must hold at least inlen + 2 bytes: the output never exceeds the
 * input by more than a held-back CR or dot). Stops right after the
 * end-of-data sequence, so the bytes after it (pipelined commands) are not
 * consumed. Returns bytes consumed; *outlen gets bytes produced; done is
 * set when the end was reached.
 */
size_t data_feed(struct data_state *, const char *in, size_t inlen, char *out,
		 size_t *outlen);

#endif

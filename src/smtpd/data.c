/*
 * data: DATA mode of the input stream (RFC 5321 4.1.1.4, 4.5.2) as a pure
 * byte-level state machine (runs of plain line content are copied whole). It
 * owns the wire -> stored transformation (CRLF -> LF, dot-unstuffing,
 * end-of-data recognition) and the "Received:" counter of the header section.
 * No I/O, no allocation.
 *
 * Invariants:
 * - The only byte ever held back between calls is a CR whose fate depends
 *   on the next byte (CRLF -> LF, otherwise the CR is content). A dot at
 *   the start of a line is never output, so it is not held, only
 *   remembered in the phase. Hence one call outputs at most inlen + 1.
 * - The end of data is the first <CR><LF>.<CR><LF> of "\r\n" + wire: a line
 *   end is "clean" only when it is a CRLF (or the start of data), and only
 *   a "." line that starts clean and ends with CRLF ends the data. A bare
 *   LF ends a line but never takes part in the end sequence, so the
 *   smuggling forms "<LF>.<LF>", "<LF>.<CR><LF>", "<CR><LF>.<LF>" are
 *   stored as content.
 * - The header matcher sees the stored bytes, so a dot-stuffed
 *   ".Received:" counts like "Received:" (it is one in the stored file),
 *   and it works across any chunking because its state is in the struct.
 */
#include "data.h"

#include <limits.h>
#include <string.h>

enum data_phase {
	DATA_PHASE_BOL_CLEAN, /* line start after CRLF or at start of data */
	DATA_PHASE_BOL_BARE,  /* line start after a bare LF */
	DATA_PHASE_DOT,	      /* "." removed at a clean line start */
	DATA_PHASE_DOT_CR,    /* clean "." then CR (CR held) */
	DATA_PHASE_TEXT,      /* inside a line */
	DATA_PHASE_CR,	      /* CR inside a line or at a line start (held) */
	DATA_PHASE_DONE,      /* <CR><LF>.<CR><LF> seen */
};

enum data_header_phase {
	DATA_HEADER_BOL,   /* at a header line start; header_match == 0 */
	DATA_HEADER_MATCH, /* header_match bytes of "received:" matched */
	DATA_HEADER_SKIP,  /* rest of a line that cannot match */
	DATA_HEADER_BODY,  /* after the first empty line */
};

/* RFC 5322 3.6.7: field name "Received", matched case-insensitively. */
static const char data_received[] = "received:";
#define DATA_RECEIVED_LEN (sizeof data_received - 1)

struct data_out {
	char *buf;
	size_t len;
};

void
data_init(struct data_state *st, enum data_bare_lf mode)
{
	st->phase = DATA_PHASE_BOL_CLEAN;
	st->header_phase = DATA_HEADER_BOL;
	st->header_match = 0;
	st->size = 0;
	st->received = 0;
	st->bare_lf = false;
	st->done = false;
	st->mode = mode;
}

static char
data_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/*
 * Header section (RFC 5322 2.1): lines up to the first empty one. A line
 * counts when it begins with "Received:"; continuation lines begin with
 * WSP and so never match.
 */
static void
data_header_byte(struct data_state *st, char c)
{
	switch (st->header_phase) {
	case DATA_HEADER_BODY:
		return;
	case DATA_HEADER_BOL:
		if (c == '\n') {
			st->header_phase = DATA_HEADER_BODY;
			return;
		}
		st->header_match = 0;
		st->header_phase = DATA_HEADER_MATCH;
		/* FALLTHROUGH */
	case DATA_HEADER_MATCH:
		if (c == '\n') {
			st->header_phase = DATA_HEADER_BOL;
			st->header_match = 0;
		} else if (data_lower(c) != data_received[st->header_match]) {
			st->header_phase = DATA_HEADER_SKIP;
		} else if (++st->header_match == DATA_RECEIVED_LEN) {
			if (st->received < UINT_MAX)
				st->received++;
			st->header_phase = DATA_HEADER_SKIP;
		}
		return;
	case DATA_HEADER_SKIP:
		if (c == '\n') {
			st->header_phase = DATA_HEADER_BOL;
			st->header_match = 0;
		}
		return;
	}
}

static void
data_emit(struct data_state *st, struct data_out *o, char c)
{
	o->buf[o->len++] = c;
	st->size++;
	data_header_byte(st, c);
}

/* A bare LF (RFC 5321 2.3.8: not a line end) ends the line anyway. */
static void
data_bare_lf(struct data_state *st, struct data_out *o)
{
	st->bare_lf = true;
	data_emit(st, o, '\n');
	st->phase = DATA_PHASE_BOL_BARE;
}

static void
data_text_byte(struct data_state *st, struct data_out *o, char c)
{
	if (c == '\r')
		st->phase = DATA_PHASE_CR;
	else if (c == '\n')
		data_bare_lf(st, o);
	else {
		data_emit(st, o, c);
		st->phase = DATA_PHASE_TEXT;
	}
}

static void
data_byte(struct data_state *st, struct data_out *o, char c)
{
	switch (st->phase) {
	case DATA_PHASE_BOL_CLEAN:
		/* RFC 5321 4.5.2: drop the first "." of a line. */
		if (c == '.')
			st->phase = DATA_PHASE_DOT;
		else
			data_text_byte(st, o, c);
		return;
	case DATA_PHASE_BOL_BARE:
		/* Unstuffed too, but this line can never end the data. */
		if (c == '.')
			st->phase = DATA_PHASE_TEXT;
		else
			data_text_byte(st, o, c);
		return;
	case DATA_PHASE_DOT:
		if (c == '\r')
			st->phase = DATA_PHASE_DOT_CR;
		else
			data_text_byte(st, o, c);
		return;
	case DATA_PHASE_DOT_CR:
		/* RFC 5321 4.1.1.4: <CR><LF>.<CR><LF> ends the mail data. */
		if (c == '\n') {
			st->phase = DATA_PHASE_DONE;
			st->done = true;
			return;
		}
		data_emit(st, o, '\r');
		data_text_byte(st, o, c);
		return;
	case DATA_PHASE_TEXT:
		data_text_byte(st, o, c);
		return;
	case DATA_PHASE_CR:
		if (c == '\n') {
			data_emit(st, o, '\n');
			st->phase = DATA_PHASE_BOL_CLEAN;
			return;
		}
		/* A bare CR is content. */
		data_emit(st, o, '\r');
		data_text_byte(st, o, c);
		return;
	case DATA_PHASE_DONE:
		return;
	}
}

/*
 * Inside a line whose header state no longer looks at bytes (the body, or
 * the rest of a header line that cannot be "Received:"), every byte up to
 * the next CR or LF is stored as is: copied as one run rather than fed
 * through data_byte() one at a time. This is where a large message spends
 * its bytes.
 */
#define DATA_RUN_BLOCK 64

static size_t
data_run(struct data_state *st, struct data_out *o, const char *in, size_t n)
{
	size_t k = 0;

	if (st->phase != DATA_PHASE_TEXT ||
	    (st->header_phase != DATA_HEADER_BODY &&
	     st->header_phase != DATA_HEADER_SKIP))
		return 0;
	/* memchr is vectorised; blocks keep each search near the run's end,
	 * so many CRs in a long line cost no more than one pass */
	while (k < n) {
		size_t b = n - k < DATA_RUN_BLOCK ? n - k : DATA_RUN_BLOCK;
		const char *lf = memchr(in + k, '\n', b);
		const char *cr =
		    memchr(in + k, '\r', lf ? (size_t)(lf - in - k) : b);
		if (cr || lf) {
			k = (size_t)((cr ? cr : lf) - in);
			break;
		}
		k += b;
	}
	memcpy(o->buf + o->len, in, k);
	o->len += k;
	st->size += k;
	return k;
}

size_t
data_feed(struct data_state *st, const char *in, size_t inlen, char *out,
	  size_t *outlen)
{
	struct data_out o = {out, 0};
	size_t i = 0;

	while (i < inlen && !st->done) {
		size_t k = data_run(st, &o, in + i, inlen - i);
		if (k > 0)
			i += k;
		else
			data_byte(st, &o, in[i++]);
	}
	*outlen = o.len;
	return i;
}

/*
 * envelope: the envelope block at the top of a queued message file
 * (DESIGN.md "Message file written by smtpd"), as a pure parser.
 *
 *   X-Original-From: <sender>[ BODY=8BITMIME][ SMTPUTF8]
 *   X-Original-To: <rcpt>          (one or more, in RCPT order)
 *   Received: ...                  (first line that is not X-Original-*)
 *
 * Only the leading X-Original-* lines are the envelope: the block ends at
 * the first line that does not start with "X-Original-", so a header of
 * the same name inside the message never adds a recipient. The body sent
 * onwards starts at body_offset (our Received: header included).
 */
#ifndef MTA_ENVELOPE_H
#define MTA_ENVELOPE_H

#include <stddef.h>

#include "smtp_addr.h"
#include "smtp_param.h"

#define ENVELOPE_RCPT_MAX 10000
/* A block longer than this is malformed (100 recipients take ~27 KiB). */
#define ENVELOPE_BLOCK_MAX (4u * 1024 * 1024)

enum envelope_err {
	ENVELOPE_OK,
	ENVELOPE_INCOMPLETE,   /* need more bytes: the block did not end */
	ENVELOPE_ERR_NO_FROM,  /* first line is not X-Original-From */
	ENVELOPE_ERR_NO_RCPT,  /* no X-Original-To line */
	ENVELOPE_ERR_SYNTAX,   /* a line that does not parse */
	ENVELOPE_ERR_TOO_MANY, /* more than ENVELOPE_RCPT_MAX recipients */
	ENVELOPE_ERR_TOO_LONG, /* block longer than ENVELOPE_BLOCK_MAX */
	ENVELOPE_ERR_NOMEM,
};

struct envelope {
	struct smtp_path from;
	struct mail_params params; /* BODY and SMTPUTF8 from the From line */
	struct smtp_path *rcpts;   /* malloc'd, nrcpt entries */
	size_t nrcpt;
	size_t body_offset; /* first byte after the block */
};

/*
 * Parses the block at the start of buf. With ENVELOPE_INCOMPLETE the
 * caller reads more of the file (len was all of it only when at_eof, in
 * which case a missing end is ENVELOPE_ERR_SYNTAX). Lines end in LF.
 */
enum envelope_err envelope_parse(const char *buf, size_t len, int at_eof,
				 struct envelope *out);
void envelope_free(struct envelope *);
const char *envelope_strerror(enum envelope_err);

#endif

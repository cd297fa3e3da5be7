/*
 * smtp_param: ESMTP parameters after MAIL FROM:<...> and RCPT TO:<...>
 * (RFC 5321 4.1.2 esmtp-param; SIZE RFC 1870, BODY RFC 6152,
 * SMTPUTF8 RFC 6531). Pure parsers.
 */
#ifndef MTA_SMTP_PARAM_H
#define MTA_SMTP_PARAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum body_type {
	BODY_NONE, /* not given */
	BODY_7BIT,
	BODY_8BITMIME,
};

struct mail_params {
	bool has_size;
	uint64_t size;
	enum body_type body;
	bool smtputf8;
};

enum param_err {
	PARAM_OK,
	PARAM_ERR_SYNTAX,    /* 501 5.5.4 malformed esmtp-param */
	PARAM_ERR_UNKNOWN,   /* 555 5.5.4 unrecognised keyword */
	PARAM_ERR_VALUE,     /* 501 5.5.4 bad value (BODY=FOO, SIZE=abc) */
	PARAM_ERR_DUPLICATE, /* 501 5.5.4 same keyword twice */
};

/*
 * Parses the parameter list that follows the path: s is " SIZE=10
 * BODY=8BITMIME" (leading spaces allowed, may be empty). Keywords are
 * case-insensitive. On error *bad points at the offending keyword.
 */
enum param_err smtp_mail_params(const char *s, size_t len,
				struct mail_params *out, const char **bad);
/* RCPT: we support no parameters yet, so any is PARAM_ERR_UNKNOWN. */
enum param_err smtp_rcpt_params(const char *s, size_t len, const char **bad);
const char *smtp_param_strerror(enum param_err);
const char *smtp_body_name(enum body_type); /* "7BIT", "8BITMIME", "" */

#endif

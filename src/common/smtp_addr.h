/*
 * smtp_addr: RFC 5321 4.1.2 paths and mailboxes, as pure functions.
 *
 *   Path = "<" [ A-d-l ":" ] Mailbox ">"     (source route accepted, ignored)
 *   Mailbox = Local-part "@" ( Domain / address-literal )
 *   Local-part = Dot-string / Quoted-string
 *
 * Also the null reverse-path "<>" (MAIL only) and "<postmaster>" (RCPT
 * only). UTF-8 in local part and domain only when SMTPUTF8 was given
 * (RFC 6531). Limits (RFC 5321 4.5.3.1): local part 64, domain 255,
 * path 256 octets including the angle brackets.
 */
#ifndef MTA_SMTP_ADDR_H
#define MTA_SMTP_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#define SMTP_LOCAL_MAX 64
#define SMTP_DOMAIN_MAX 255
#define SMTP_PATH_MAX 256

enum addr_err {
	ADDR_OK,
	ADDR_ERR_SYNTAX,	   /* 501 5.1.3 (RCPT) / 5.1.7 (MAIL) */
	ADDR_ERR_NO_BRACKETS,	   /* missing '<' ... '>' */
	ADDR_ERR_LOCAL_LONG,	   /* 501 5.1.3 local part over 64 */
	ADDR_ERR_DOMAIN_LONG,	   /* domain over 255 */
	ADDR_ERR_PATH_LONG,	   /* path over 256 */
	ADDR_ERR_DOMAIN,	   /* bad domain or address literal */
	ADDR_ERR_UTF8,		   /* non-ASCII without SMTPUTF8: 553 5.6.7 */
	ADDR_ERR_NULL_NOT_ALLOWED, /* "<>" where a mailbox is needed */
};

enum addr_flags {
	ADDR_ALLOW_NULL = 1,	   /* MAIL FROM:<> */
	ADDR_ALLOW_POSTMASTER = 2, /* RCPT TO:<postmaster> (any case) */
	ADDR_ALLOW_UTF8 = 4,	   /* SMTPUTF8 given on MAIL */
};

struct smtp_path {
	/* Mailbox as received minus source route, "" for "<>",
	 * "postmaster" for the bare form. */
	char addr[SMTP_PATH_MAX + 1];
	size_t len;
	size_t at; /* index of the '@' that splits local and domain;
		      == len when there is no domain */
	bool is_null;
	bool is_postmaster;
	bool quoted;  /* local part is a Quoted-string */
	bool literal; /* domain is an address literal [..] */
	bool utf8;    /* contains octets >= 0x80 */
};

/*
 * Parses a path at the start of s (s[0] must be '<'; leading spaces are
 * the caller's business). *consumed gets the length through '>'.
 */
enum addr_err smtp_path_parse(const char *s, size_t len, unsigned flags,
			      struct smtp_path *out, size_t *consumed);
const char *smtp_addr_strerror(enum addr_err);

/* The domain part (after '@'), "" when none. */
const char *smtp_path_domain(const struct smtp_path *);
/*
 * True when the local part would route elsewhere if a later hop
 * interpreted it: '%', '!' or '@' in it (quoted or not). Used to refuse
 * relay tricks like user%other@ours (RFC 5321 3.6.1, F.2).
 */
bool smtp_path_has_routing(const struct smtp_path *);
/* Case-insensitive ASCII domain compare; a trailing dot is ignored. */
bool smtp_domain_equal(const char *a, const char *b);

#endif

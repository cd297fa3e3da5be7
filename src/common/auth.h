/*
 * auth: the pure parts of SMTP authentication (RFC 4954): base64 as SASL
 * uses it (RFC 4648 4, padding required), the PLAIN message (RFC 4616),
 * and the users file. Checking a password with crypt(3) is in
 * src/smtpd/auth_verify.h.
 *
 * Users file: one "user:hash" per line, the hash as crypt(3) makes it,
 * SHA-512-crypt ("$6$...") or yescrypt ("$y$..."). Blank lines and lines
 * starting with '#' are ignored. A bad line is reported as "FILE:LINE:
 * message".
 */
#ifndef MTA_AUTH_H
#define MTA_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define AUTH_USER_MAX 255 /* octets of a user name */
#define AUTH_PASS_MAX 255 /* octets of a password */
#define AUTH_HASH_MAX 512 /* octets of a stored hash */

/*
 * Strict base64 decode: length a multiple of 4, '=' only as final padding,
 * no spaces. Returns 0 with *outlen set, -1 when malformed or when the
 * result does not fit in cap.
 */
int auth_b64_decode(const char *in, size_t len, unsigned char *out, size_t cap,
		    size_t *outlen);

/* PLAIN: [authzid] NUL authcid NUL passwd; pointers into the message. */
struct auth_plain {
	const unsigned char *authzid;
	size_t authzid_len;
	const unsigned char *user;
	size_t user_len;
	const unsigned char *pass;
	size_t pass_len;
};

/*
 * Splits a decoded PLAIN message. Returns -1 unless there are exactly two
 * NULs, the user and password are not empty and within their limits.
 */
int auth_plain_parse(const unsigned char *msg, size_t len,
		     struct auth_plain *out);

struct auth_user {
	char *name;
	char *hash;
};

struct auth_users {
	struct auth_user *v;
	size_t n;
};

/* Reads a users file. Returns 0, or -1 with "FILE:LINE: message" in err. */
int auth_users_load(struct auth_users *, const char *file, char *err,
		    size_t errlen);
/* Parses one line (no line end). Returns 0 (a user or nothing), -1. */
int auth_users_add_line(struct auth_users *, const char *line, char *msg,
			size_t cap);
void auth_users_free(struct auth_users *);

/* The stored hash of user, or NULL. */
const char *auth_users_find(const struct auth_users *, const char *user,
			    size_t len);

#endif

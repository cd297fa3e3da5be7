/*
 * auth_verify: checks a password against a crypt(3) hash from the users
 * file (auth.h), for AUTH in smtpd.
 */
#ifndef MTA_AUTH_VERIFY_H
#define MTA_AUTH_VERIFY_H

#include <stdbool.h>
#include <stddef.h>

#include "auth.h"

/*
 * True when pass (len octets, no NUL) hashes to hash with crypt(3). The
 * result is compared in constant time.
 */
bool auth_check_hash(const char *hash, const char *pass, size_t len);

/*
 * True when user exists and pass is its password. An unknown user costs a
 * hash computation too, so timing does not tell which names exist.
 */
bool auth_users_verify(const struct auth_users *, const char *user, size_t ulen,
		       const char *pass, size_t plen);

#endif

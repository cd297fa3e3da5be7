/*
 * auth_verify: a password against a users file entry with crypt(3). Lives
 * with smtpd because only smtpd links libcrypt.
 */
#include "auth_verify.h"

#include <crypt.h>
#include <stdlib.h>
#include <string.h>

/* A SHA-512-crypt setting for unknown users: costs what a real check does. */
static const char auth_dummy_hash[] = "$6$mtaunknownuser$";

static bool
auth_equal_ct(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	unsigned char d = na != nb;
	size_t n = na < nb ? na : nb;
	for (size_t i = 0; i < n; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

bool
auth_check_hash(const char *hash, const char *pass, size_t len)
{
	char pw[AUTH_PASS_MAX + 1];

	if (len == 0 || len > AUTH_PASS_MAX || memchr(pass, '\0', len))
		return false;
	memcpy(pw, pass, len);
	pw[len] = '\0';
	/* struct crypt_data is tens of KB: not for the stack. */
	struct crypt_data *cd = calloc(1, sizeof *cd);
	bool ok = false;
	if (cd) {
		const char *out = crypt_r(pw, hash, cd);
		/* Failure is NULL or a "*" token, never a valid hash. */
		ok = out && out[0] == '$' && auth_equal_ct(out, hash);
		explicit_bzero(cd, sizeof *cd);
		free(cd);
	}
	explicit_bzero(pw, sizeof pw);
	return ok;
}

bool
auth_users_verify(const struct auth_users *u, const char *user, size_t ulen,
		  const char *pass, size_t plen)
{
	const char *hash = auth_users_find(u, user, ulen);
	if (!hash) {
		(void)auth_check_hash(u->n ? u->v[0].hash : auth_dummy_hash,
				      pass, plen);
		return false;
	}
	return auth_check_hash(hash, pass, plen);
}

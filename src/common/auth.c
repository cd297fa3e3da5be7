/*
 * auth: base64, SASL PLAIN and the users file. No sockets and no state
 * beyond the users table: see auth.h.
 */
#include "auth.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_LINE_MAX (AUTH_USER_MAX + AUTH_HASH_MAX + 4)
#define AUTH_USERS_MAX 100000

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
auth_b64_decode(const char *in, size_t len, unsigned char *out, size_t cap,
		size_t *outlen)
{
	size_t n = 0;

	*outlen = 0;
	if (len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + k];
			/* '=' only in the last two places of the last quad. */
			if (c == '=' && i + 4 == len && k >= 2 &&
			    (k == 3 || in[i + 3] == '=')) {
				v[k] = 0;
				pad++;
				continue;
			}
			v[k] = b64_value(c);
			if (v[k] < 0 || pad > 0)
				return -1;
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
			     (uint32_t)v[2] << 6 | (uint32_t)v[3];
		/* Bits the padding drops must be zero (RFC 4648 3.5). */
		if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))
			return -1;
		unsigned char b[3] = {(unsigned char)(w >> 16),
				      (unsigned char)(w >> 8),
				      (unsigned char)w};
		size_t take = 3 - (size_t)pad;
		if (n + take > cap)
			return -1;
		memcpy(out + n, b, take);
		n += take;
	}
	*outlen = n;
	return 0;
}

int
auth_plain_parse(const unsigned char *msg, size_t len, struct auth_plain *out)
{
	const unsigned char *nul1 = memchr(msg, '\0', len);
	if (!nul1)
		return -1;
	size_t rest = len - (size_t)(nul1 + 1 - msg);
	const unsigned char *nul2 = memchr(nul1 + 1, '\0', rest);
	if (!nul2)
		return -1;
	const unsigned char *pass = nul2 + 1;
	size_t pass_len = len - (size_t)(pass - msg);
	if (memchr(pass, '\0', pass_len))
		return -1;
	out->authzid = msg;
	out->authzid_len = (size_t)(nul1 - msg);
	out->user = nul1 + 1;
	out->user_len = (size_t)(nul2 - out->user);
	out->pass = pass;
	out->pass_len = pass_len;
	if (out->user_len == 0 || out->user_len > AUTH_USER_MAX ||
	    out->pass_len == 0 || out->pass_len > AUTH_PASS_MAX ||
	    out->authzid_len > AUTH_USER_MAX)
		return -1;
	return 0;
}

static bool
auth_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > AUTH_USER_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= ' ' || c == 0x7f)
			return false;
	}
	return true;
}

/* Only the schemes we document: SHA-512-crypt and yescrypt. */
static bool
auth_hash_ok(const char *h)
{
	size_t n = strlen(h);
	if (n < 4 || n > AUTH_HASH_MAX)
		return false;
	if (strncmp(h, "$6$", 3) != 0 && strncmp(h, "$y$", 3) != 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)h[i] <= ' ' || h[i] == ':')
			return false;
	return true;
}

int
auth_users_add_line(struct auth_users *u, const char *line, char *msg,
		    size_t cap)
{
	const char *p = line;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	const char *colon = strchr(line, ':');
	if (!colon) {
		snprintf(msg, cap, "expected user:hash");
		return -1;
	}
	size_t ulen = (size_t)(colon - line);
	if (!auth_name_ok(line, ulen)) {
		snprintf(msg, cap, "bad user name");
		return -1;
	}
	if (!auth_hash_ok(colon + 1)) {
		snprintf(msg, cap,
			 "hash must be SHA-512-crypt ($6$) or yescrypt ($y$)");
		return -1;
	}
	if (auth_users_find(u, line, ulen)) {
		snprintf(msg, cap, "user '%.*s' listed twice", (int)ulen, line);
		return -1;
	}
	if (u->n >= AUTH_USERS_MAX) {
		snprintf(msg, cap, "too many users");
		return -1;
	}
	struct auth_user *v = realloc(u->v, (u->n + 1) * sizeof *v);
	if (!v) {
		snprintf(msg, cap, "out of memory");
		return -1;
	}
	u->v = v;
	v[u->n].name = strndup(line, ulen);
	v[u->n].hash = strdup(colon + 1);
	if (!v[u->n].name || !v[u->n].hash) {
		free(v[u->n].name);
		free(v[u->n].hash);
		snprintf(msg, cap, "out of memory");
		return -1;
	}
	u->n++;
	return 0;
}

int
auth_users_load(struct auth_users *u, const char *file, char *err,
		size_t errlen)
{
	char line[AUTH_LINE_MAX + 2];
	char msg[128];
	unsigned lineno = 0;

	memset(u, 0, sizeof *u);
	FILE *f = fopen(file, "re");
	if (!f) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof line, f)) {
		lineno++;
		size_t n = strlen(line);
		bool whole = n > 0 && line[n - 1] == '\n';
		if (!whole && !feof(f)) {
			snprintf(msg, sizeof msg, "line too long");
			goto bad;
		}
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (auth_users_add_line(u, line, msg, sizeof msg) != 0)
			goto bad;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		fclose(f);
		auth_users_free(u);
		return -1;
	}
	fclose(f);
	return 0;
bad:
	snprintf(err, errlen, "%s:%u: %s", file, lineno, msg);
	fclose(f);
	auth_users_free(u);
	return -1;
}

void
auth_users_free(struct auth_users *u)
{
	for (size_t i = 0; i < u->n; i++) {
		free(u->v[i].name);
		free(u->v[i].hash);
	}
	free(u->v);
	u->v = NULL;
	u->n = 0;
}

const char *
auth_users_find(const struct auth_users *u, const char *user, size_t len)
{
	for (size_t i = 0; i < u->n; i++)
		if (strlen(u->v[i].name) == len &&
		    memcmp(u->v[i].name, user, len) == 0)
			return u->v[i].hash;
	return NULL;
}

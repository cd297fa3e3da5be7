/*
 * smtpd_listen: the listen table turned into listeners, see smtpd_listen.h.
 *
 * Invariants after smtpd_listen_build() returned 0: 1..SMTPD_LISTEN_MAX
 * listeners, every address parsed, no two that would bind the same
 * socket; a submission listener has a users file and a way to reach
 * AUTH; an implicit-TLS listener has a certificate.
 *
 * The config table keeps no positions, so these errors name the key, the
 * address and the entry's number instead of a line and column.
 */
#include "smtpd_listen.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "net.h"
#include "smtpd_config.h"

#define SMTPD_LISTEN_NAME(name, text) text,
static const char *const role_names[] = {SMTPD_ROLES(SMTPD_LISTEN_NAME) NULL};
static const char *const tls_names[] = {SMTPD_LISTEN_TLS(SMTPD_LISTEN_NAME)
					    NULL};
#undef SMTPD_LISTEN_NAME

static int
check_hostport(const char *v, char *msg, size_t cap)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (net_parse_hostport(v, &ss, &len) == 0)
		return 0;
	snprintf(msg, cap,
		 "'%s' is not addr:port (e.g. 0.0.0.0:2525 or "
		 "[::1]:2525)",
		 v);
	return -1;
}

const struct config_field smtpd_listen_fields[] = {
    [SMTPD_LISTEN_ADDRESS] = {"address", NULL, check_hostport},
    [SMTPD_LISTEN_ROLE] = {"role", role_names, NULL},
    [SMTPD_LISTEN_TLS_MODE] = {"tls", tls_names, NULL},
    {NULL, NULL, NULL},
};

const char *
smtpd_role_name(enum smtpd_role r)
{
	if ((size_t)r >= sizeof role_names / sizeof role_names[0] - 1)
		return "?";
	return role_names[r];
}

const char *
smtpd_listen_tls_name(enum smtpd_listen_tls t)
{
	if ((size_t)t >= sizeof tls_names / sizeof tls_names[0] - 1)
		return "?";
	return tls_names[t];
}

int
smtpd_listen_defaults(struct smtpd_config *c)
{
	static const char *const listen[] = {"0.0.0.0:2525", NULL, NULL};
	return config_table_set(&c->listen, 3, listen, 1);
}

/* The index of value in names (config_load gave the canonical spelling);
 * a cell left out is the first, the default. */
static unsigned
listen_index(const char *const *names, const char *value)
{
	for (unsigned i = 0; value && names[i]; i++)
		if (strcmp(names[i], value) == 0)
			return i;
	return 0;
}

/* The address and port bytes of a parsed listen address. */
static const unsigned char *
listen_host(const struct sockaddr_storage *ss, size_t *len, in_port_t *port)
{
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;
		*len = sizeof s6->sin6_addr;
		*port = s6->sin6_port;
		return (const unsigned char *)&s6->sin6_addr;
	}
	const struct sockaddr_in *s4 = (const void *)ss;
	*len = sizeof s4->sin_addr;
	*port = s4->sin_port;
	return (const unsigned char *)&s4->sin_addr;
}

static bool
listen_is_wildcard(const unsigned char *host, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (host[i] != 0)
			return false;
	return true;
}

/*
 * 0 when a and b can both be bound; else 1 for the same address, 2 when
 * one is the wildcard of the other's family on the same port (Linux
 * refuses that bind even with SO_REUSEADDR). IPv6 sockets are V6ONLY
 * (net_listen), so [::]:25 and 0.0.0.0:25 live side by side.
 */
static int
listen_clash(const struct smtpd_listener *a, const struct smtpd_listener *b)
{
	size_t alen, blen;
	in_port_t aport, bport;
	const unsigned char *ah = listen_host(&a->addr, &alen, &aport);
	const unsigned char *bh = listen_host(&b->addr, &blen, &bport);

	if (a->addr.ss_family != b->addr.ss_family || aport != bport)
		return 0;
	if (memcmp(ah, bh, alen) == 0)
		return 1;
	return listen_is_wildcard(ah, alen) || listen_is_wildcard(bh, blen) ? 2
									    : 0;
}

/* What listener l needs from the rest of the configuration. */
static const char *
listen_needs(const struct smtpd_config *c, const struct smtpd_listener *l)
{
	if (l->tls == SMTPD_TLS_IMPLICIT && !smtpd_config_has_tls(c))
		return "tls implicit needs tls.cert";
	if (l->role != SMTPD_ROLE_SUBMISSION)
		return NULL;
	if (!smtpd_config_has_auth(c))
		return "role submission needs auth.users_file";
	/* AUTH is offered only inside TLS unless allowed without (RFC 4954
	 * 4): otherwise such a port could never accept any mail. */
	if (c->auth_allow_plaintext)
		return NULL;
	if (l->tls == SMTPD_TLS_NONE)
		return "role submission with tls none needs "
		       "auth.allow_plaintext: true (AUTH is offered only "
		       "inside TLS)";
	if (!smtpd_config_has_tls(c))
		return "role submission needs tls.cert (AUTH is offered "
		       "only inside TLS)";
	return NULL;
}

int
smtpd_listen_build(struct smtpd_config *c, const char *where, char *err,
		   size_t errlen)
{
	const struct config_table *t = &c->listen;

	c->nlisteners = 0;
	if (t->rows == 0) {
		snprintf(err, errlen, "%s: listen: needs at least one address",
			 where);
		return -1;
	}
	if (t->rows > SMTPD_LISTEN_MAX) {
		snprintf(err, errlen, "%s: listen: more than %d addresses",
			 where, SMTPD_LISTEN_MAX);
		return -1;
	}
	for (size_t i = 0; i < t->rows; i++) {
		struct smtpd_listener *l = &c->listeners[i];
		l->address = config_cell(t, i, SMTPD_LISTEN_ADDRESS);
		l->role = (enum smtpd_role)listen_index(
		    role_names, config_cell(t, i, SMTPD_LISTEN_ROLE));
		l->tls = (enum smtpd_listen_tls)listen_index(
		    tls_names, config_cell(t, i, SMTPD_LISTEN_TLS_MODE));
		const char *why = NULL;
		if (net_parse_hostport(l->address, &l->addr, &l->addrlen) != 0)
			why = "not addr:port";
		else
			why = listen_needs(c, l);
		for (size_t j = 0; !why && j < i; j++) {
			int clash = listen_clash(&c->listeners[j], l);
			if (clash == 0)
				continue;
			snprintf(err, errlen,
				 "%s: listen: %s (entry %zu): %s entry %zu "
				 "(%s)%s",
				 where, l->address, i + 1,
				 clash == 1 ? "the same address as"
					    : "overlaps",
				 j + 1, c->listeners[j].address,
				 clash == 1 ? ""
					    : ": a wildcard address takes "
					      "the port on every address");
			return -1;
		}
		if (why) {
			snprintf(err, errlen, "%s: listen: %s (entry %zu): %s",
				 where, l->address, i + 1, why);
			return -1;
		}
	}
	c->nlisteners = t->rows;
	return 0;
}

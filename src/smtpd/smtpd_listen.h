/*
 * smtpd_listen: the listeners of the `listen` key. Each entry is an
 * address with a role (an MX port, or an RFC 6409 submission port where
 * MAIL needs AUTH) and a TLS mode (STARTTLS offered, implicit TLS as in
 * RFC 8314, or none). The config table holds the strings; this module
 * turns them into struct smtpd_listener and checks what a single field
 * cannot: the settings a role or mode needs, and addresses that would
 * bind the same socket twice.
 */
#ifndef MTA_SMTPD_LISTEN_H
#define MTA_SMTPD_LISTEN_H

#include <stddef.h>
#include <sys/socket.h>

#include "config.h"

/* Listening sockets, one per entry of `listen`. */
#define SMTPD_LISTEN_MAX 16

/* listen[].role; the first is the default. */
#define SMTPD_ROLES(X)                                                         \
	X(SMTPD_ROLE_MX, "mx") /* relay policy as configured */                \
	X(SMTPD_ROLE_SUBMISSION, "submission") /* RFC 6409: MAIL after AUTH */

/* listen[].tls; the first is the default. */
#define SMTPD_LISTEN_TLS(X)                                                    \
	X(SMTPD_TLS_STARTTLS, "starttls") /* RFC 3207, when tls.cert is set */ \
	X(SMTPD_TLS_IMPLICIT, "implicit") /* RFC 8314 3.3: TLS first */        \
	X(SMTPD_TLS_NONE, "none")	  /* plaintext, STARTTLS not offered */

#define SMTPD_LISTEN_ENUM(name, text) name,
enum smtpd_role { SMTPD_ROLES(SMTPD_LISTEN_ENUM) };
enum smtpd_listen_tls { SMTPD_LISTEN_TLS(SMTPD_LISTEN_ENUM) };
#undef SMTPD_LISTEN_ENUM

/* The columns of the listen table, in this order. */
enum { SMTPD_LISTEN_ADDRESS, SMTPD_LISTEN_ROLE, SMTPD_LISTEN_TLS_MODE };
extern const struct config_field smtpd_listen_fields[];

struct smtpd_listener {
	const char *address; /* the entry's "addr:port", owned by the table */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	enum smtpd_role role;
	enum smtpd_listen_tls tls;
};

struct smtpd_config;

const char *smtpd_role_name(enum smtpd_role);
const char *smtpd_listen_tls_name(enum smtpd_listen_tls);

/* The built-in listen table: 0.0.0.0:2525, MX, STARTTLS. -1 on ENOMEM. */
int smtpd_listen_defaults(struct smtpd_config *);
/*
 * Fills cfg->listeners from cfg->listen and checks them against the rest
 * of cfg (tls.cert, auth.*). Returns 0, or -1 with err holding
 * "WHERE: listen: ADDRESS (entry N): message".
 */
int smtpd_listen_build(struct smtpd_config *, const char *where, char *err,
		       size_t errlen);

#endif

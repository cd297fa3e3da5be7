/*
 * smtpd_config: the settings of smtpd, their defaults and their YAML keys.
 * The key names are the user contract (see config/smtpd.yaml).
 */
#ifndef MTA_SMTPD_CONFIG_H
#define MTA_SMTPD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "config.h"
#include "push.h"
#include "smtpd_listen.h"

#define SMTPD_DEFAULT_CONFIG "/etc/mta/smtpd.yaml"
/* Descriptors below FD_SETSIZE kept for what is not a session: stdio,
 * listeners, Maildir folders, the logger's and signals' pipes. */
#define SMTPD_FD_RESERVE 16

struct smtpd_config {
	struct config_table listen; /* address, role, tls (smtpd_listen.h) */
	/* From listen, filled by smtpd_config_load(). */
	struct smtpd_listener listeners[SMTPD_LISTEN_MAX];
	size_t nlisteners;
	char *hostname;
	char *maildir;
	uint64_t max_message_size;
	uint64_t max_recipients;
	uint64_t max_connections;
	uint64_t max_connections_per_ip; /* 0 = no limit */
	uint64_t max_received_headers;
	uint64_t max_errors;
	unsigned bare_lf; /* enum data_bare_lf */
	struct config_list relay_networks;
	struct config_list relay_domains;
	uint64_t timeout_command; /* milliseconds */
	uint64_t timeout_data;
	uint64_t timeout_shutdown;
	char *tls_cert;		   /* PEM chain; NULL or "": no TLS */
	char *tls_key;		   /* PEM key; NULL or "": in tls_cert */
	char *auth_users_file;	   /* NULL or "": no AUTH */
	bool auth_allow_plaintext; /* offer AUTH outside TLS */
	uint64_t auth_max_failures;
	uint64_t auth_failure_delay; /* ms, times the failures so far */
	struct auth_users users;     /* loaded from auth_users_file */
	unsigned log_level;	     /* enum log_level */
	struct push_config push;     /* metrics.* and health.* */
};

/* True when a users file is configured: AUTH exists. */
bool smtpd_config_has_auth(const struct smtpd_config *);
/* True when a certificate is configured. */
bool smtpd_config_has_tls(const struct smtpd_config *);

/* Fills built-in defaults. Returns -1 on ENOMEM. */
int smtpd_config_defaults(struct smtpd_config *);
/*
 * Defaults, then file (when not NULL), then checks that need more than one
 * key (certificate, users file, listeners). err gets "FILE:LINE:COL:
 * message", or "FILE: key: message" for a check across keys.
 */
int smtpd_config_load(struct smtpd_config *, const char *file, char *err,
		      size_t errlen);
void smtpd_config_free(struct smtpd_config *);

#endif

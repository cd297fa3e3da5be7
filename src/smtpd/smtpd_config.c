/*
 * smtpd_config: the key table over struct smtpd_config and the checks that
 * a single key's type cannot express (CIDR syntax, the TLS and users
 * files; the listeners are checked in smtpd_listen.c).
 */
#include "smtpd_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include "data.h"
#include "log.h"
#include "net.h"
#include "push.h"
#include "tls.h"

#define KEY(path, type, field, min, max, names)                                \
	{                                                                      \
		path, type, offsetof(struct smtpd_config, field), min, max,    \
		    names, NULL, NULL                                          \
	}
#define KEY_CHECKED(path, type, field, check)                                  \
	{                                                                      \
		path, type, offsetof(struct smtpd_config, field), 0, 0, NULL,  \
		    check, NULL                                                \
	}

static int
check_cidr(const char *v, char *msg, size_t cap)
{
	struct cidr net;
	if (cidr_parse(v, &net) == 0)
		return 0;
	snprintf(msg, cap,
		 "'%s' is not a network (e.g. 10.0.0.0/8 or "
		 "fd00::/8)",
		 v);
	return -1;
}

static const char *const bare_lf_names[] = {"normalize", "reject", NULL};
static const char *const level_names[] = {"debug", "info", "warn", "error",
					  NULL};

#define DAY_MS (24ULL * 3600 * 1000)

static const struct config_key smtpd_keys[] = {
    {"listen", CONFIG_TABLE, offsetof(struct smtpd_config, listen), 0, 0, NULL,
     NULL, smtpd_listen_fields},
    KEY_CHECKED("hostname", CONFIG_STRING, hostname, config_check_nonempty),
    KEY_CHECKED("maildir", CONFIG_STRING, maildir, config_check_nonempty),
    KEY("max_message_size", CONFIG_SIZE, max_message_size, 1024, 1ULL << 40,
	NULL),
    KEY("max_recipients", CONFIG_UINT, max_recipients, 1, 100000, NULL),
    KEY("max_connections", CONFIG_UINT, max_connections, 1, 1000000, NULL),
    KEY("max_connections_per_ip", CONFIG_UINT, max_connections_per_ip, 0,
	1000000, NULL),
    KEY("max_received_headers", CONFIG_UINT, max_received_headers, 1, 10000,
	NULL),
    KEY("max_errors", CONFIG_UINT, max_errors, 1, 10000, NULL),
    KEY("bare_lf", CONFIG_ENUM, bare_lf, 0, 0, bare_lf_names),
    KEY_CHECKED("relay.networks", CONFIG_LIST, relay_networks, check_cidr),
    KEY("relay.domains", CONFIG_LIST, relay_domains, 0, 0, NULL),
    KEY("timeouts.command", CONFIG_DURATION, timeout_command, 100, DAY_MS,
	NULL),
    KEY("timeouts.data", CONFIG_DURATION, timeout_data, 100, DAY_MS, NULL),
    KEY("timeouts.shutdown", CONFIG_DURATION, timeout_shutdown, 0, DAY_MS,
	NULL),
    KEY("tls.cert", CONFIG_STRING, tls_cert, 0, 0, NULL),
    KEY("tls.key", CONFIG_STRING, tls_key, 0, 0, NULL),
    KEY("auth.users_file", CONFIG_STRING, auth_users_file, 0, 0, NULL),
    KEY("auth.allow_plaintext", CONFIG_BOOL, auth_allow_plaintext, 0, 0, NULL),
    KEY("auth.max_failures", CONFIG_UINT, auth_max_failures, 1, 1000, NULL),
    KEY("auth.failure_delay", CONFIG_DURATION, auth_failure_delay, 0, 60 * 1000,
	NULL),
    KEY("log.level", CONFIG_ENUM, log_level, 0, 0, level_names),
    PUSH_CONFIG_KEYS(struct smtpd_config, push),
};

#define NKEYS (sizeof smtpd_keys / sizeof smtpd_keys[0])

int
smtpd_config_defaults(struct smtpd_config *c)
{
	static const char *const nets[] = {"127.0.0.0/8", "::1/128"};

	memset(c, 0, sizeof *c);
	c->hostname = net_local_hostname();
	c->maildir = strdup("/var/spool/mta/maildir");
	c->max_message_size = 35ULL * 1024 * 1024;
	c->max_recipients = 100;
	c->max_connections = 1000;
	c->max_connections_per_ip = 50;
	c->max_received_headers = 100;
	c->max_errors = 10;
	c->bare_lf = DATA_BARE_LF_NORMALIZE;
	c->timeout_command = 300 * 1000;
	c->timeout_data = 600 * 1000;
	c->timeout_shutdown = 30 * 1000;
	c->log_level = LOG_INFO;
	c->auth_max_failures = 3;
	c->auth_failure_delay = 1000;
	if (!c->hostname || !c->maildir ||
	    push_config_defaults(&c->push, "smtpd") != 0 ||
	    smtpd_listen_defaults(c) != 0 ||
	    config_list_set(&c->relay_networks, nets, 2) != 0)
		return -1;
	return 0;
}

bool
smtpd_config_has_tls(const struct smtpd_config *c)
{
	return c->tls_cert && c->tls_cert[0];
}

bool
smtpd_config_has_auth(const struct smtpd_config *c)
{
	return c->auth_users_file && c->auth_users_file[0];
}

/* The users file parses. */
static int
check_auth(struct smtpd_config *c, char *err, size_t errlen)
{
	if (!smtpd_config_has_auth(c))
		return 0;
	return auth_users_load(&c->users, c->auth_users_file, err, errlen);
}

/* The certificate and key load and belong together (tls.c checks). */
static int
check_tls(const struct smtpd_config *c, const char *where, char *err,
	  size_t errlen)
{
	char why[CONFIG_ERR_MAX - 64];
	bool has_key = c->tls_key && c->tls_key[0];

	if (!smtpd_config_has_tls(c)) {
		if (has_key) {
			snprintf(err, errlen, "%s: tls: tls.key needs tls.cert",
				 where);
			return -1;
		}
		return 0;
	}
	struct tls_ctx *ctx = tls_ctx_server(
	    c->tls_cert, has_key ? c->tls_key : NULL, why, sizeof why);
	if (!ctx) {
		snprintf(err, errlen, "%s: %s", where, why);
		return -1;
	}
	tls_ctx_free(ctx);
	return 0;
}

/* Checks what one key's type can't: files, and listeners against both. */
static int
check_values(struct smtpd_config *c, const char *file, char *err, size_t errlen)
{
	const char *where = file ? file : "(defaults)";

	if (check_tls(c, where, err, errlen) != 0 ||
	    check_auth(c, err, errlen) != 0 ||
	    smtpd_listen_build(c, where, err, errlen) != 0)
		return -1;
	/* select() cannot watch fds >= FD_SETSIZE. */
	if (c->max_connections > FD_SETSIZE - SMTPD_FD_RESERVE)
		c->max_connections = FD_SETSIZE - SMTPD_FD_RESERVE;
	return 0;
}

/* Keys that became fields of a listen entry: say what replaced them. */
static void
hint_removed_key(char *err, size_t errlen)
{
	static const struct {
		const char *key, *now;
	} moved[] = {
	    {"unknown key 'submission_listen'", "role: submission"},
	    {"unknown key 'tls.implicit_listen'", "tls: implicit"},
	};
	size_t used = strlen(err);

	for (size_t i = 0; i < sizeof moved / sizeof moved[0]; i++)
		if (strstr(err, moved[i].key) && used < errlen)
			snprintf(err + used, errlen - used,
				 " (now an entry of listen: {address: "
				 "ADDR:PORT, %s})",
				 moved[i].now);
}

int
smtpd_config_load(struct smtpd_config *c, const char *file, char *err,
		  size_t errlen)
{
	if (smtpd_config_defaults(c) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (file && config_load(file, smtpd_keys, NKEYS, c, err, errlen) != 0) {
		hint_removed_key(err, errlen);
		return -1;
	}
	return check_values(c, file, err, errlen);
}

void
smtpd_config_free(struct smtpd_config *c)
{
	config_free(smtpd_keys, NKEYS, c);
	auth_users_free(&c->users);
}

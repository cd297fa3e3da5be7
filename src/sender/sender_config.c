/*
 * sender_config: key table, defaults and cross-key checks for sender.
 * RFC 5321 4.5.3.2 gives the default SMTP client timeouts.
 */
#include "sender_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "log.h"
#include "push.h"
#include "net.h"
#include "tls.h"

#define KEY(path, type, field, min, max, names)                                \
	{                                                                      \
		path, type, offsetof(struct sender_config, field), min, max,   \
		    names, NULL, NULL                                          \
	}
#define KEY_CHECKED(path, type, field, check)                                  \
	{                                                                      \
		path, type, offsetof(struct sender_config, field), 0, 0, NULL, \
		    check, NULL                                                \
	}

#define SEC 1000ULL
#define DAY_MS (24 * 3600 * SEC)

static const char *const level_names[] = {"debug", "info", "warn", "error",
					  NULL};

/* "host:port" or "[v6]:port" for the relay; a name is resolved later. */
static int
check_hostport(const char *v, char *msg, size_t cap)
{
	const char *colon = strrchr(v, ':');
	if (v[0] == '\0')
		return 0; /* unset */
	if (colon && colon != v && colon[1] != '\0' &&
	    strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
		long port = strtol(colon + 1, NULL, 10);
		if (port > 0 && port < 65536)
			return 0;
	}
	snprintf(msg, cap, "'%s' is not host:port (e.g. relay.example:25)", v);
	return -1;
}

static const struct config_key sender_keys[] = {
    KEY_CHECKED("maildir", CONFIG_STRING, maildir, config_check_nonempty),
    KEY_CHECKED("spool", CONFIG_STRING, spool, config_check_nonempty),
    KEY_CHECKED("instance", CONFIG_STRING, instance, config_check_nonempty),
    KEY_CHECKED("hostname", CONFIG_STRING, hostname, config_check_nonempty),
    KEY_CHECKED("dns.servers", CONFIG_LIST, dns_servers, dns_check_server),
    KEY_CHECKED("smarthost", CONFIG_STRING, smarthost, check_hostport),
    KEY("remote_port", CONFIG_UINT, remote_port, 1, 65535, NULL),
    KEY("scan_interval", CONFIG_DURATION, scan_interval, 100, DAY_MS, NULL),
    KEY("keep_delivered", CONFIG_BOOL, keep_delivered, 0, 0, NULL),
    KEY("max_messages_per_session", CONFIG_UINT, max_messages_per_session, 0,
	1000000, NULL),
    KEY("idle_linger", CONFIG_DURATION, idle_linger, 0, 3600 * SEC, NULL),
    KEY("timeouts.connect", CONFIG_DURATION, timeout_connect, 100, DAY_MS,
	NULL),
    KEY("timeouts.greeting", CONFIG_DURATION, timeout_greeting, 100, DAY_MS,
	NULL),
    KEY("timeouts.mail", CONFIG_DURATION, timeout_mail, 100, DAY_MS, NULL),
    KEY("timeouts.rcpt", CONFIG_DURATION, timeout_rcpt, 100, DAY_MS, NULL),
    KEY("timeouts.data", CONFIG_DURATION, timeout_data, 100, DAY_MS, NULL),
    KEY("timeouts.data_block", CONFIG_DURATION, timeout_data_block, 100, DAY_MS,
	NULL),
    KEY("timeouts.data_end", CONFIG_DURATION, timeout_data_end, 100, DAY_MS,
	NULL),
    KEY("retry.min_backoff", CONFIG_DURATION, retry_min_backoff, 100, DAY_MS,
	NULL),
    KEY("retry.max_backoff", CONFIG_DURATION, retry_max_backoff, 100,
	30 * DAY_MS, NULL),
    KEY("retry.max_age", CONFIG_DURATION, retry_max_age, 1000, 365 * DAY_MS,
	NULL),
    KEY("orphan_after", CONFIG_DURATION, orphan_after, 1000, DAY_MS, NULL),
    KEY("bounce.drop_undeliverable", CONFIG_BOOL, drop_undeliverable_bounces, 0,
	0, NULL),
    KEY("tls.mode", CONFIG_ENUM, tls_mode, 0, 0, tls_level_names),
    {"tls.policy", CONFIG_MAP, offsetof(struct sender_config, tls_policy), 0, 0,
     NULL, NULL, tls_policy_fields},
    KEY_CHECKED("tls.ca_file", CONFIG_STRING, tls_ca_file,
		config_check_nonempty),
    KEY("log.level", CONFIG_ENUM, log_level, 0, 0, level_names),
    PUSH_CONFIG_KEYS(struct sender_config, push),
};

#define NKEYS (sizeof sender_keys / sizeof sender_keys[0])

static int
sender_config_defaults(struct sender_config *c)
{
	memset(c, 0, sizeof *c);
	c->maildir = strdup("/var/spool/mta/maildir");
	c->spool = strdup("/var/spool/mta/spool");
	c->instance = net_local_hostname();
	c->hostname = net_local_hostname();
	c->smarthost = strdup("");
	c->remote_port = 25;
	c->scan_interval = 2 * SEC;
	c->keep_delivered = true;
	c->idle_linger = 1 * SEC;
	c->timeout_connect = 30 * SEC;
	c->timeout_greeting = 300 * SEC;
	c->timeout_mail = 300 * SEC;
	c->timeout_rcpt = 300 * SEC;
	c->timeout_data = 120 * SEC;
	c->timeout_data_block = 180 * SEC;
	c->timeout_data_end = 600 * SEC;
	/* Postfix's defaults: minimal_backoff_time, maximal_backoff_time,
	 * maximal_queue_lifetime. */
	c->retry_min_backoff = 300 * SEC;
	c->retry_max_backoff = 4000 * SEC;
	c->retry_max_age = 5 * DAY_MS;
	c->orphan_after = 60 * SEC;
	c->log_level = LOG_INFO;
	c->tls_mode = TLS_LEVEL_MAY;
	c->tls_ca_file = strdup("/etc/ssl/certs/ca-certificates.crt");
	if (!c->maildir || !c->spool || !c->instance || !c->hostname ||
	    !c->smarthost || !c->tls_ca_file ||
	    push_config_defaults(&c->push, "sender") != 0)
		return -1;
	return 0;
}

int
sender_config_load(struct sender_config *c, const char *file, char *err,
		   size_t errlen)
{
	if (sender_config_defaults(c) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (file && config_load(file, sender_keys, NKEYS, c, err, errlen) != 0)
		return -1;
	if (c->retry_max_backoff < c->retry_min_backoff) {
		snprintf(err, errlen,
			 "%s: retry.max_backoff is shorter than "
			 "retry.min_backoff",
			 file ? file : "(defaults)");
		return -1;
	}
	/* The instance name becomes a folder name. */
	if (strchr(c->instance, '/') || c->instance[0] == '.') {
		snprintf(err, errlen,
			 "%s: instance: '%s' cannot be a folder "
			 "name",
			 file ? file : "(defaults)", c->instance);
		return -1;
	}
	return 0;
}

int
sender_config_tls(const struct sender_config *c, const char *file,
		  struct sender_tls *t, char *err, size_t errlen)
{
	char why[CONFIG_ERR_MAX - 64];
	enum tls_level max = tls_policy_max(&c->tls_policy, c->tls_mode);

	memset(t, 0, sizeof *t);
	if (max == TLS_LEVEL_NONE)
		return 0;
	if (max < TLS_LEVEL_VERIFY) {
		t->open = tls_ctx_client(why, sizeof why);
		if (!t->open)
			goto fail;
		return 0;
	}
	t->verify = tls_ctx_client_verify(c->tls_ca_file, why, sizeof why);
	if (t->verify)
		t->check =
		    tls_ctx_client_check(c->tls_ca_file, why, sizeof why);
	if (t->check)
		return 0;
fail:
	sender_tls_free(t);
	snprintf(err, errlen, "%s: %s", file ? file : "(defaults)", why);
	return -1;
}

void
sender_tls_free(struct sender_tls *t)
{
	tls_ctx_free(t->open);
	tls_ctx_free(t->verify);
	tls_ctx_free(t->check);
	memset(t, 0, sizeof *t);
}

void
sender_config_free(struct sender_config *c)
{
	config_free(sender_keys, NKEYS, c);
}

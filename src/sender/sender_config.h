/*
 * sender_config: the settings of sender, their defaults and YAML keys
 * (the user contract; see config/sender.yaml).
 */
#ifndef MTA_SENDER_CONFIG_H
#define MTA_SENDER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "push.h"
#include "tls_policy.h"

struct sender_config {
	char *maildir;
	char *spool;
	char *instance;
	char *hostname;
	struct config_list dns_servers;
	char *smarthost; /* "" when unset */
	uint64_t remote_port;
	uint64_t scan_interval; /* milliseconds */
	bool keep_delivered;
	uint64_t max_messages_per_session; /* 0: no cap */
	uint64_t idle_linger;		   /* ms an idle session stays open */
	uint64_t timeout_connect;	   /* all timeouts in milliseconds */
	uint64_t timeout_greeting;
	uint64_t timeout_mail;
	uint64_t timeout_rcpt;
	uint64_t timeout_data;
	uint64_t timeout_data_block;
	uint64_t timeout_data_end;
	uint64_t retry_min_backoff; /* ms before the first retry */
	uint64_t retry_max_backoff; /* ms: the doubling stops here */
	uint64_t retry_max_age;	    /* ms after which deferred bounces */
	uint64_t orphan_after;	    /* ms without heartbeat: folder adoptable */
	bool drop_undeliverable_bounces; /* else kept in cur/ */
	unsigned tls_mode;		 /* enum tls_level, for every domain
					    tls_policy does not name */
	struct config_table tls_policy;	 /* domain -> level (tls_policy.h) */
	char *tls_ca_file;		 /* PEM bundle for verify */
	unsigned log_level;
	struct push_config push; /* metrics.* and health.* */
};

int sender_config_load(struct sender_config *, const char *file, char *err,
		       size_t errlen);
void sender_config_free(struct sender_config *);

struct tls_ctx;
/*
 * The STARTTLS client contexts, shared by every session. Which ones exist
 * follows the strictest level of tls.mode and tls.policy: none at all
 * when nothing uses TLS; only open when nothing verifies; else verify and
 * check, both over the CA bundle tls.ca_file.
 */
struct sender_tls {
	struct tls_ctx *open;	/* no certificate check */
	struct tls_ctx *verify; /* chain and name checked; a failed check
				   fails the handshake */
	struct tls_ctx *check;	/* chain and name checked; the handshake
				   goes on and the session knows the result */
};

/*
 * Makes the contexts the configuration needs. The CA bundle loads at
 * start-up, so a bad one is a configuration error, not a deferral per
 * message. -1 with err (naming file) on failure.
 */
int sender_config_tls(const struct sender_config *, const char *file,
		      struct sender_tls *, char *err, size_t errlen);
void sender_tls_free(struct sender_tls *);

#endif

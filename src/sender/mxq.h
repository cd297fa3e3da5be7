/*
 * mxq: one queue per MX host. A job is the part of one message that goes
 * to that host (the recipients of one domain). A queue has at most one
 * client session at a time; that is the one-socket-per-MX-host rule, and
 * it lives here so nothing else can break it.
 *
 * Each job carries its domain's ordered MX list (a shared, counted
 * mx_route) and which of those hosts it is queued for: when a host cannot
 * be reached, its jobs move on to the queue of their own next host, so
 * two domains that share a primary but not their backups never mix.
 */
#ifndef MTA_MXQ_H
#define MTA_MXQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mx.h"

#define MXQ_RCPTS_PER_TXN 100 /* RFC 5321 4.5.3.1.8: at least 100 */

struct message;
struct client;

/* A domain's MX hosts in the order to try them; shared by its jobs. */
struct mx_route {
	unsigned refs;
	uint16_t port;
	size_t nhosts;
	struct mx_host hosts[];
};

struct job {
	struct message *msg;
	size_t *rcpt; /* indexes into msg->env.rcpts */
	size_t n;
	struct mx_route *route;
	size_t hop; /* index in route->hosts of the queue it is on */
	/* The TLS level its domain needs (enum tls_level, from tls.policy
	 * or tls.mode), checked against each session before it is sent */
	unsigned tls;
	const char *tls_rule; /* the tls.policy name that set it; NULL:
				 tls.mode (points into the config) */
	struct job *next;
};

struct mxq {
	char key[MX_HOST_MAX + 1]; /* most preferred host, or smarthost */
	struct mx_host hosts[MX_LIST_MAX]; /* hosts to try, in order */
	size_t nhosts;
	uint16_t port;
	struct job *head;
	struct job **tail;
	size_t njobs;
	struct client *client; /* the one session, or NULL */
	uint64_t sessions;     /* sessions opened (EHLO/HELO accepted) */
	/* Host backoff (sender.c): sessions in a row that failed before
	 * delivering anything, and until when the host is not tried. */
	unsigned failures;
	uint64_t down_until;  /* loop_now() ms; 0: usable */
	char last_error[256]; /* why its last session failed */
	bool sync_wait;	      /* waits for the journal flush (sender.c) */
	struct mxq *next;     /* hash chain */
};

struct mxq_table {
	struct mxq **buckets;
	size_t nbuckets;
	size_t count;
};

int mxq_table_init(struct mxq_table *);
/* Frees every queue (their jobs must have been handed back). */
void mxq_table_free(struct mxq_table *);
struct mxq *mxq_find(struct mxq_table *, const char *key);
/* Finds or creates the queue for host key. */
struct mxq *mxq_get(struct mxq_table *, const char *key, uint16_t port);

/* A route over hosts[0..n) (copied), one reference. NULL on ENOMEM. */
struct mx_route *mx_route_new(const struct mx_host *hosts, size_t n,
			      uint16_t port);
void mx_route_put(struct mx_route *);

/* A job for msg's recipients rcpt[0..n) (copied) on route's host hop;
 * takes its own route reference. NULL on ENOMEM. */
struct job *job_new(struct message *msg, const size_t *rcpt, size_t n,
		    struct mx_route *route, size_t hop);
void job_free(struct job *);

void mxq_push(struct mxq *, struct job *);
/* Puts a job back at the head (its session ended before it was done). */
void mxq_push_front(struct mxq *, struct job *);
struct job *mxq_pop(struct mxq *);

#endif

/*
 * sender: what one sender worker owns and how its parts talk: claimed
 * messages come in from scan, route sends each recipient group to the
 * queue of its MX host, a client per queue delivers, and every outcome
 * comes back through sender_outcome()/sender_job_done().
 */
#ifndef MTA_SENDER_H
#define MTA_SENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "journal.h"
#include "loop.h"
#include "message.h"
#include "mxq.h"
#include "sender_config.h"

struct logger;
struct maildir;
struct dns;
struct scan;
struct route_cache;

enum delivery_status {
	DELIVERY_SENT,
	DELIVERY_DEFERRED,
	DELIVERY_BOUNCED,
};

struct sender {
	const struct sender_config *cfg;
	struct loop *loop;
	struct logger *log;
	struct dns *dns;
	struct scan *scan;
	/* the client contexts of every session's STARTTLS, made once at
	 * start-up for tls.mode and tls.policy */
	struct sender_tls tls;
	int new_fd;	    /* <maildir>/new */
	int cur_fd;	    /* <maildir>/cur */
	int inst_fd;	    /* <spool>/<instance> */
	int aside_fd;	    /* <spool>/malformed */
	struct maildir *md; /* where bounces are written */
	struct mxq_table queues;
	struct route_cache *routes;
	struct journal journal;
	struct message *waiting; /* deferred, waiting for their next try */
	size_t nwaiting;
	size_t messages; /* loaded and not yet finished */
	size_t clients;	 /* open client sessions */
	size_t retired;	 /* retired since the folders were last synced */
	bool cur_dirty;	 /* one of them went to cur/ */
	/* queues whose session waits for this pass's journal flush before
	 * it starts its next transaction */
	struct mxq **sync_wait;
	size_t nsync_wait;
	size_t sync_wait_cap;
	bool stopping;
	struct loop_timer stop_timer; /* bounds the graceful stop */
	uint64_t deliveries[3]; /* by enum delivery_status: delivery.* lines */
	uint64_t started_ms;	/* loop_now() at start, for up-time */
};

/* Recipient i of msg reaches a final or deferred outcome: logs the
 * delivery line and records it. */
void sender_settle(struct sender *, struct message *, size_t i,
		   enum delivery_status, const char *dsn, const char *reply,
		   const char *relay, const char *mx);
/* Retires or releases msg once nothing refers to it and all are settled. */
void sender_check_done(struct sender *, struct message *);
/* Loop pass-end hook (group commit): one flush of every journal written
 * in the pass, then one sync of cur/ and the instance folder for every
 * message retired in it. */
void sender_sync_retired(struct loop *, void *sender);

/*
 * A session of q is about to start a transaction: true when every
 * outcome recorded so far is on disk. Otherwise q is remembered, the
 * pass-end flush kicks its session, and the caller waits (false). So a
 * crash duplicates at most the transaction in flight of each session.
 */
bool sender_txn_may_start(struct sender *, struct mxq *);
/* A session of q failed before delivering anything (why): the host is
 * backed off, doubling from retry.min_backoff, so its queue does not
 * hammer it. A session that opens resets it (sender_host_up). */
void sender_host_failed(struct sender *, struct mxq *, const char *why);
void sender_host_up(struct sender *, struct mxq *);
/* SIGUSR1: every host may be tried again now. */
void sender_hosts_reset(struct sender *);

/* One recipient's outcome (k indexes job->rcpt). relay may be "none". */
void sender_outcome(struct sender *, struct job *, size_t k,
		    enum delivery_status, const char *dsn, const char *reply,
		    const char *relay, const char *mx);
/* The job is finished with (every recipient has an outcome): frees it. */
void sender_job_done(struct sender *, struct job *);
/* A queue's session ended (mxq->client already NULL). */
void sender_client_closed(struct sender *, struct mxq *);
/* Queues a job on q and starts a session when none is open. */
void sender_enqueue(struct sender *, struct mxq *, struct job *);
/* Queues a job on the queue of its current host (route->hosts[hop]). */
void sender_route_job(struct sender *, struct job *);
/* q's host could not be used: every job on it moves to its own next MX
 * host, or is deferred with why when it has none left. */
void sender_failover(struct sender *, struct mxq *, const char *why);

/* retry.c. The wait before try number attempts + 1: retry.min_backoff
 * doubling per attempt, at most retry.max_backoff. */
uint64_t retry_backoff(const struct sender_config *, unsigned attempts);
/* Schedules the next try of a message with deferred recipients
 * (true), or fails them when it is too old (false: all final now). */
bool retry_schedule(struct sender *, struct message *);
/* A message just claimed, its journal replayed with show_deferred:
 * when it has deferred recipients and its journaled next try is still
 * ahead, it waits for it (at most retry.max_backoff) and this returns
 * true; else its deferred recipients are pending again and the caller
 * routes it (false). */
bool retry_resume(struct sender *, struct message *);
/* Waits ms before m is looked at again, without counting an attempt
 * (e.g. its bounce could not be written). When the time comes, deferred
 * recipients are routed, or with none sender_check_done() runs. */
void retry_wait(struct sender *, struct message *, uint64_t ms);
/* SIGUSR1: every waiting message is tried in the next loop pass. */
void retry_all_now(struct sender *);
/* Shutdown: forgets waiting messages (they are safe on disk). */
void retry_release_all(struct sender *);

/* route.c: sends a loaded message's recipients towards their queues. */
struct route_cache *route_cache_new(void);
void route_cache_free(struct route_cache *);
void route_message(struct sender *, struct message *);

#endif

/*
 * sender: the worker's bookkeeping. Takes claimed files from scan, loads
 * them, hands them to route, logs every recipient's outcome (the fields
 * Postfix users grep for: to, relay, delay, dsn, status) and retires a
 * message once every recipient is final. Deferred messages stay in the
 * instance folder.
 */
#include "sender.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bounce.h"
#include "client.h"
#include "log.h"
#include "sender_config.h"

static void sender_flush(struct sender *);

static const char *const status_names[] = {"sent", "deferred", "bounced"};
static const char *const status_events[] = {
    "delivery.sent", "delivery.deferred", "delivery.bounced"};

void
sender_settle(struct sender *snd, struct message *m, size_t i,
	      enum delivery_status st, const char *dsn, const char *reply,
	      const char *relay, const char *mx)
{
	int64_t delay = loop_wall_ms() - m->queued_ms;
	snd->deliveries[st]++;
	struct log_line *l =
	    log_begin(snd->log, st == DELIVERY_SENT ? LOG_INFO : LOG_WARN,
		      status_events[st]);
	log_str(l, "queue_id", m->queue_id);
	log_str(l, "to", m->env.rcpts[i].addr);
	log_str(l, "relay", relay);
	log_ms(l, "delay", delay > 0 ? (uint64_t)delay : 0);
	log_str(l, "dsn", dsn);
	log_str(l, "status", status_names[st]);
	log_str(l, "reply", reply);
	log_str(l, "mx", mx);
	log_end(l);
	enum rcpt_state rs = st == DELIVERY_SENT      ? RCPT_SENT
			     : st == DELIVERY_BOUNCED ? RCPT_FAILED
						      : RCPT_DEFERRED;
	message_settle(m, i, rs);
	/* for the bounce, and for the 5.4.7 one after the last deferral */
	if (rs == RCPT_FAILED || rs == RCPT_DEFERRED)
		(void)message_set_why(m, i, dsn, reply);
	if (journal_append(&snd->journal, snd->inst_fd, m, i, rs, dsn, mx,
			   reply) != 0) {
		l = log_begin(snd->log, LOG_ERROR, "journal.write_failed");
		log_str(l, "queue_id", m->queue_id);
		log_str(l, "error", strerror(errno));
		log_end(l);
	}
}

void
sender_outcome(struct sender *snd, struct job *j, size_t k,
	       enum delivery_status st, const char *dsn, const char *reply,
	       const char *relay, const char *mx)
{
	sender_settle(snd, j->msg, j->rcpt[k], st, dsn, reply, relay, mx);
}

/*
 * Writes the bounce for m's failed recipients unless its sender is <>
 * (RFC 5321 4.5.5: never bounce a bounce) or it was written already.
 * Returns false when it could not be written.
 */
static bool
sender_bounce(struct sender *snd, struct message *m)
{
	char qid[MAILDIR_QUEUE_ID_MAX + 1];
	if (m->env.from.is_null || m->bounced)
		return true;
	int fd = openat(snd->inst_fd, m->name, O_RDONLY | O_CLOEXEC);
	int rc = fd < 0 ? -1
			: bounce_write(snd->md, snd->cfg->hostname, m, fd, qid,
				       sizeof qid);
	int err = errno;
	if (fd >= 0)
		close(fd);
	if (rc != 0) {
		struct log_line *l =
		    log_begin(snd->log, LOG_ERROR, "bounce.failed");
		log_str(l, "queue_id", m->queue_id);
		log_str(l, "error", strerror(err));
		if (!snd->stopping)
			log_ms(l, "retry_in", snd->cfg->retry_min_backoff);
		log_end(l);
		return false;
	}
	m->bounced = true;
	(void)journal_mark_bounced(&snd->journal, snd->inst_fd, m);
	struct log_line *l = log_begin(snd->log, LOG_INFO, "bounce.sent");
	log_str(l, "queue_id", m->queue_id);
	log_str(l, "bounce_id", qid);
	log_str(l, "to", m->env.from.addr);
	log_end(l);
	return true;
}

/*
 * Whether a finished message goes to cur/ (else it is deleted): as
 * keep_delivered says, except that a message from <> that failed (a
 * bounce nobody can take) is kept unless bounce.drop_undeliverable.
 */
static bool
sender_keep(struct sender *snd, const struct message *m, size_t bounced)
{
	if (bounced == 0 || !m->env.from.is_null)
		return snd->cfg->keep_delivered;
	bool keep = !snd->cfg->drop_undeliverable_bounces;
	struct log_line *l =
	    log_begin(snd->log, LOG_WARN, "bounce.undeliverable");
	log_str(l, "queue_id", m->queue_id);
	log_uint(l, "failed", bounced);
	log_str(l, "action", keep ? "kept in cur/" : "dropped");
	log_end(l);
	return keep;
}

void
sender_check_done(struct sender *snd, struct message *m)
{
	if (m->jobs > 0 || m->unsettled > 0)
		return;
	size_t sent = 0, bounced = 0, deferred = 0;
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		sent += m->state[i] == RCPT_SENT;
		bounced += m->state[i] == RCPT_FAILED;
		deferred += m->state[i] == RCPT_DEFERRED;
	}
	if (deferred > 0 && !snd->stopping) {
		if (!retry_schedule(snd, m)) {
			sender_check_done(snd, m); /* expired: all final */
			return;
		}
		struct log_line *l =
		    log_begin(snd->log, LOG_INFO, "msg.deferred");
		log_str(l, "queue_id", m->queue_id);
		log_uint(l, "sent", sent);
		log_uint(l, "bounced", bounced);
		log_uint(l, "deferred", deferred);
		log_uint(l, "attempts", m->attempts);
		log_end(l);
		return;
	}
	if (bounced > 0 && !sender_bounce(snd, m)) {
		/* Not retired without its bounce: it is written later (disk
		 * full?), after retry.min_backoff or on SIGUSR1. */
		if (!snd->stopping) {
			retry_wait(snd, m, snd->cfg->retry_min_backoff);
			return;
		}
		journal_close(&snd->journal, m);
		snd->messages--;
		message_free(m);
		return;
	}
	const char *event = "msg.deferred";
	enum log_level level = LOG_INFO;
	int err = 0;
	bool keep = sender_keep(snd, m, bounced);
	if (deferred == 0 &&
	    message_retire(m, snd->inst_fd, snd->cur_fd, keep) == 0) {
		event = "msg.done";
		snd->retired++;
		snd->cur_dirty = snd->cur_dirty || keep;
		journal_remove(&snd->journal, snd->inst_fd, m);
	} else if (deferred == 0) {
		/* The file stays in the instance folder; a restart retries. */
		err = errno;
		event = "msg.retire_failed";
		level = LOG_ERROR;
	}
	struct log_line *l = log_begin(snd->log, level, event);
	log_str(l, "queue_id", m->queue_id);
	log_uint(l, "sent", sent);
	log_uint(l, "bounced", bounced);
	log_uint(l, "deferred", deferred);
	if (err)
		log_str(l, "error", strerror(err));
	log_end(l);
	journal_close(&snd->journal, m);
	snd->messages--;
	message_free(m);
	if (snd->stopping && snd->messages == 0 && snd->clients == 0)
		loop_stop(snd->loop);
}

void
sender_job_done(struct sender *snd, struct job *j)
{
	struct message *m = j->msg;
	job_free(j);
	m->jobs--;
	sender_check_done(snd, m);
}

/* Defers every job waiting on q (no session could take them). */
static void
sender_defer_queue(struct sender *snd, struct mxq *q, const char *dsn,
		   const char *why)
{
	struct job *j;
	while ((j = mxq_pop(q)) != NULL) {
		for (size_t k = 0; k < j->n; k++)
			sender_outcome(snd, j, k, DELIVERY_DEFERRED, dsn, why,
				       "none", q->key);
		sender_job_done(snd, j);
	}
}

/* j cannot use its current host (why): on to its own next MX host, or
 * deferred when it has none left. */
static void
sender_next_hop(struct sender *snd, struct job *j, const char *dsn,
		const char *why, const char *mx)
{
	if (!snd->stopping && j->hop + 1 < j->route->nhosts) {
		j->hop++; /* RFC 5321 5.1: the next MX host */
		sender_route_job(snd, j);
		return;
	}
	for (size_t k = 0; k < j->n; k++)
		sender_outcome(snd, j, k, DELIVERY_DEFERRED,
			       snd->stopping ? "4.3.2" : dsn, why, "none", mx);
	sender_job_done(snd, j);
}

/* q's host is backed off: j is not sent there now. */
static bool
sender_host_down(struct sender *snd, struct mxq *q)
{
	return !q->client && q->down_until > loop_now(snd->loop);
}

static void
sender_skip_host(struct sender *snd, struct mxq *q, struct job *j)
{
	char why[MX_HOST_MAX + 320];
	uint64_t left = q->down_until - loop_now(snd->loop);
	snprintf(why, sizeof why,
		 "%s not tried for %llus after %u failed sessions (last: "
		 "%.250s)",
		 q->key, (unsigned long long)(left + 999) / 1000, q->failures,
		 q->last_error);
	sender_next_hop(snd, j, "4.4.1", why, q->key);
}

void
sender_enqueue(struct sender *snd, struct mxq *q, struct job *j)
{
	if (!snd->stopping && sender_host_down(snd, q)) {
		sender_skip_host(snd, q, j);
		return;
	}
	mxq_push(q, j);
	if (snd->stopping) /* no new sessions while stopping */
		sender_defer_queue(snd, q, "4.3.2", "sender shutting down");
	else if (q->client)
		client_kick(q->client);
	else if (!client_start(snd, q))
		sender_defer_queue(snd, q, "4.3.0", "out of memory");
}

void
sender_client_closed(struct sender *snd, struct mxq *q)
{
	/* Jobs left (the server capped the session): a new session, still
	 * one socket at a time since the old one is gone. */
	if (q->head && !snd->stopping && !client_start(snd, q))
		sender_defer_queue(snd, q, "4.3.0", "out of memory");
	if (snd->stopping && snd->messages == 0 && snd->clients == 0)
		loop_stop(snd->loop);
}

void
sender_route_job(struct sender *snd, struct job *j)
{
	const struct mx_host *h = &j->route->hosts[j->hop];
	struct mxq *q = mxq_get(&snd->queues, h->name, j->route->port);
	if (q) {
		sender_enqueue(snd, q, j);
		return;
	}
	for (size_t k = 0; k < j->n; k++)
		sender_outcome(snd, j, k, DELIVERY_DEFERRED, "4.3.0",
			       "out of memory", "none", h->name);
	sender_job_done(snd, j);
}

void
sender_failover(struct sender *snd, struct mxq *q, const char *why)
{
	struct job *j;
	while ((j = mxq_pop(q)) != NULL)
		sender_next_hop(snd, j, "4.4.1", why, q->key);
}

void
sender_host_failed(struct sender *snd, struct mxq *q, const char *why)
{
	q->failures++;
	uint64_t wait = retry_backoff(snd->cfg, q->failures);
	q->down_until = loop_now(snd->loop) + wait;
	snprintf(q->last_error, sizeof q->last_error, "%s", why);
	struct log_line *l = log_begin(snd->log, LOG_WARN, "mx.backoff");
	log_str(l, "mx", q->key);
	log_uint(l, "failures", q->failures);
	log_ms(l, "backoff", wait);
	log_str(l, "reason", why);
	log_end(l);
}

void
sender_host_up(struct sender *snd, struct mxq *q)
{
	if (q->failures > 0) {
		struct log_line *l = log_begin(snd->log, LOG_INFO, "mx.up");
		log_str(l, "mx", q->key);
		log_uint(l, "failures", q->failures);
		log_end(l);
	}
	q->failures = 0;
	q->down_until = 0;
}

void
sender_hosts_reset(struct sender *snd)
{
	struct mxq_table *t = &snd->queues;
	for (size_t i = 0; i < t->nbuckets; i++)
		for (struct mxq *q = t->buckets[i]; q; q = q->next)
			q->down_until = 0;
}

bool
sender_txn_may_start(struct sender *snd, struct mxq *q)
{
	if (!journal_pending(&snd->journal) && snd->retired == 0)
		return true;
	if (q->sync_wait)
		return false;
	if (snd->nsync_wait == snd->sync_wait_cap) {
		size_t cap = snd->sync_wait_cap ? snd->sync_wait_cap * 2 : 16;
		struct mxq **p = realloc(snd->sync_wait, cap * sizeof *p);
		if (!p) {
			sender_flush(snd); /* no list: flush right now */
			return true;
		}
		snd->sync_wait = p;
		snd->sync_wait_cap = cap;
	}
	q->sync_wait = true;
	snd->sync_wait[snd->nsync_wait++] = q;
	return false;
}

static void
sender_journal_failed(void *arg, struct message *m, int err)
{
	struct sender *snd = arg;
	struct log_line *l =
	    log_begin(snd->log, LOG_ERROR, "journal.write_failed");
	log_str(l, "queue_id", m->queue_id);
	log_str(l, "error", strerror(err));
	log_end(l);
}

/* Makes every outcome and retirement so far durable: the waiting journal
 * lines written and flushed, then one sync of cur/ and the instance
 * folder for every message retired since. */
static void
sender_flush(struct sender *snd)
{
	if (journal_sync(&snd->journal, sender_journal_failed, snd) != 0) {
		struct log_line *l =
		    log_begin(snd->log, LOG_ERROR, "journal.sync_failed");
		log_str(l, "error", strerror(errno));
		log_end(l);
	}
	if (snd->retired == 0)
		return;
	snd->retired = 0;
	/* cur/ first: once that is durable the messages are done for good */
	bool cur = snd->cur_dirty;
	snd->cur_dirty = false;
	if ((cur && fsync(snd->cur_fd) != 0) || fsync(snd->inst_fd) != 0) {
		struct log_line *l =
		    log_begin(snd->log, LOG_ERROR, "spool.sync_failed");
		log_str(l, "error", strerror(errno));
		log_end(l);
	}
}

void
sender_sync_retired(struct loop *loop, void *arg)
{
	struct sender *snd = arg;
	(void)loop;
	/* Kicked sessions may record outcomes of their own before their
	 * next transaction (a local bounce): flush again for those. */
	do {
		sender_flush(snd);
		size_t n = snd->nsync_wait;
		for (size_t i = 0; i < n; i++) {
			struct mxq *q = snd->sync_wait[i];
			q->sync_wait = false;
			if (q->client)
				client_kick(q->client);
		}
		snd->nsync_wait -= n;
		if (n > 0 && snd->nsync_wait > 0)
			memmove(snd->sync_wait, snd->sync_wait + n,
				snd->nsync_wait * sizeof *snd->sync_wait);
	} while (snd->nsync_wait > 0);
}

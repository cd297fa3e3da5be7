/*
 * retry: messages with deferred recipients wait here for their next try
 * (their file and journal stay in the instance folder). The wait starts
 * at retry.min_backoff and doubles with each attempt up to
 * retry.max_backoff; once a message is older than retry.max_age its
 * deferred recipients fail (5.4.7), as Postfix's maximal_queue_lifetime.
 * Each wait is also journaled ("retry <attempts> <when>"), so a restart
 * keeps it (retry_resume) instead of trying everything at once. SIGUSR1
 * retries everything now.
 *
 * Invariant: m is on snd->waiting exactly when m->retry_owner is set,
 * and then its timer is armed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "journal.h"
#include "log.h"
#include "sender.h"
#include "sender_config.h"

static void
retry_unlink(struct sender *snd, struct message *m)
{
	if (m->prev_waiting)
		m->prev_waiting->next_waiting = m->next_waiting;
	else
		snd->waiting = m->next_waiting;
	if (m->next_waiting)
		m->next_waiting->prev_waiting = m->prev_waiting;
	m->next_waiting = m->prev_waiting = NULL;
	m->retry_owner = NULL;
	snd->nwaiting--;
}

/*
 * Its time has come: deferred recipients are pending again and routed.
 * A message without any (all final, waiting to write its bounce) goes
 * back to sender_check_done().
 */
static void
retry_fire(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct message *m = arg;
	struct sender *snd = m->retry_owner;
	size_t again = 0;
	(void)loop;
	(void)t;
	retry_unlink(snd, m);
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		if (m->state[i] == RCPT_DEFERRED) {
			message_settle(m, i, RCPT_PENDING);
			again++;
		}
	}
	struct log_line *l = log_begin(snd->log, LOG_INFO, "msg.retry");
	log_str(l, "queue_id", m->queue_id);
	log_uint(l, "attempts", m->attempts);
	log_uint(l, "rcpts", again);
	log_end(l);
	if (again > 0)
		route_message(snd, m);
	else
		sender_check_done(snd, m);
}

/* Puts m on the waiting list, its timer firing after wait ms, and says
 * so (msg.waiting). Already waiting: only the timer moves. */
static void
retry_enlist(struct sender *snd, struct message *m, uint64_t wait)
{
	if (!m->retry_owner) {
		m->retry_owner = snd;
		loop_timer_init(&m->retry, retry_fire, m);
		m->prev_waiting = NULL;
		m->next_waiting = snd->waiting;
		if (snd->waiting)
			snd->waiting->prev_waiting = m;
		snd->waiting = m;
		snd->nwaiting++;
	}
	loop_timer_arm(snd->loop, &m->retry, wait);
	struct log_line *l = log_begin(snd->log, LOG_INFO, "msg.waiting");
	log_str(l, "queue_id", m->queue_id);
	log_uint(l, "attempts", m->attempts);
	log_ms(l, "next_try_in", wait);
	log_end(l);
}

/* min_backoff * 2^(attempts - 1), at most max_backoff. */
uint64_t
retry_backoff(const struct sender_config *cfg, unsigned attempts)
{
	uint64_t ms = cfg->retry_min_backoff;
	for (unsigned k = 1; k < attempts && ms < cfg->retry_max_backoff; k++)
		ms *= 2;
	return ms < cfg->retry_max_backoff ? ms : cfg->retry_max_backoff;
}

static size_t
retry_deferred(const struct message *m)
{
	size_t n = 0;
	for (size_t i = 0; i < m->env.nrcpt; i++)
		n += m->state[i] == RCPT_DEFERRED;
	return n;
}

bool
retry_schedule(struct sender *snd, struct message *m)
{
	const struct sender_config *cfg = snd->cfg;
	int64_t now = loop_wall_ms();
	int64_t age = now - m->queued_ms;

	if (age >= 0 && (uint64_t)age >= cfg->retry_max_age) {
		/* as Postfix, the bounce quotes why the last try failed */
		char why[JOURNAL_LINE_MAX + 96];
		for (size_t i = 0; i < m->env.nrcpt; i++) {
			if (m->state[i] != RCPT_DEFERRED)
				continue;
			const char *last = m->why ? m->why[i] : NULL;
			snprintf(
			    why, sizeof why,
			    "delivery time expired after %u attempt%s%s%s%s",
			    m->attempts + 1, m->attempts ? "s" : "",
			    last ? " (last: " : "", last ? last : "",
			    last ? ")" : "");
			sender_settle(snd, m, i, DELIVERY_BOUNCED, "5.4.7", why,
				      "none", "");
		}
		return false; /* all final now: the caller retires it */
	}
	m->attempts++;
	uint64_t wait = retry_backoff(cfg, m->attempts);
	m->next_try_ms = now + (int64_t)wait;
	/* lost, a restart only tries sooner */
	if (journal_mark_retry(&snd->journal, snd->inst_fd, m, m->attempts,
			       m->next_try_ms) != 0) {
		struct log_line *l =
		    log_begin(snd->log, LOG_ERROR, "journal.write_failed");
		log_str(l, "queue_id", m->queue_id);
		log_str(l, "error", strerror(errno));
		log_end(l);
	}
	retry_enlist(snd, m, wait);
	return true;
}

bool
retry_resume(struct sender *snd, struct message *m)
{
	int64_t left = m->next_try_ms - loop_wall_ms();

	if (retry_deferred(m) > 0 && m->next_try_ms > 0 && left > 0) {
		/* bounded: a clock set back must not park it for long */
		uint64_t wait = (uint64_t)left < snd->cfg->retry_max_backoff
				    ? (uint64_t)left
				    : snd->cfg->retry_max_backoff;
		retry_enlist(snd, m, wait);
		return true;
	}
	for (size_t i = 0; i < m->env.nrcpt; i++) /* due: they go again */
		if (m->state[i] == RCPT_DEFERRED)
			message_settle(m, i, RCPT_PENDING);
	return false;
}

void
retry_wait(struct sender *snd, struct message *m, uint64_t ms)
{
	retry_enlist(snd, m, ms);
}

void
retry_all_now(struct sender *snd)
{
	for (struct message *m = snd->waiting; m; m = m->next_waiting)
		loop_timer_arm(snd->loop, &m->retry, 0);
}

void
retry_release_all(struct sender *snd)
{
	while (snd->waiting) {
		struct message *m = snd->waiting;
		loop_timer_disarm(snd->loop, &m->retry);
		retry_unlink(snd, m);
		journal_close(&snd->journal, m);
		snd->messages--;
		message_free(m);
	}
}

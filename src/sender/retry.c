/*
 * retry: messages with deferred recipients wait here, in memory, for
 * their next try (their file and journal stay in the instance folder, so
 * a restart loses nothing). The wait starts at retry.min_backoff and
 * doubles with each attempt up to retry.max_backoff; once a message is
 * older than retry.max_age its deferred recipients fail (5.4.7), as
 * Postfix's maximal_queue_lifetime. SIGUSR1 retries everything now.
 */
#include <stdio.h>

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
	snd->nwaiting--;
}

/* Its time has come: deferred recipients are pending again and routed. */
static void
retry_fire(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct message *m = arg;
	struct sender *snd = m->retry_owner;
	(void)loop;
	(void)t;
	retry_unlink(snd, m);
	for (size_t i = 0; i < m->env.nrcpt; i++)
		if (m->state[i] == RCPT_DEFERRED)
			message_settle(m, i, RCPT_PENDING);
	struct log_line *l = log_begin(snd->log, LOG_INFO, "msg.retry");
	log_str(l, "queue_id", m->queue_id);
	log_uint(l, "attempts", m->attempts);
	log_uint(l, "rcpts", m->unsettled);
	log_end(l);
	route_message(snd, m);
}

/* min_backoff * 2^(attempts - 1), at most max_backoff. */
static uint64_t
retry_backoff(const struct sender_config *cfg, unsigned attempts)
{
	uint64_t ms = cfg->retry_min_backoff;
	for (unsigned k = 1; k < attempts && ms < cfg->retry_max_backoff; k++)
		ms *= 2;
	return ms < cfg->retry_max_backoff ? ms : cfg->retry_max_backoff;
}

bool
retry_schedule(struct sender *snd, struct message *m)
{
	const struct sender_config *cfg = snd->cfg;
	int64_t age = sender_wall_ms() - m->queued_ms;

	if (age >= 0 && (uint64_t)age >= cfg->retry_max_age) {
		char why[96];
		snprintf(why, sizeof why,
			 "delivery time expired after %u attempts",
			 m->attempts + 1);
		for (size_t i = 0; i < m->env.nrcpt; i++)
			if (m->state[i] == RCPT_DEFERRED)
				sender_settle(snd, m, i, DELIVERY_BOUNCED,
					      "5.4.7", why, "none", "");
		return false; /* all final now: the caller retires it */
	}
	m->attempts++;
	uint64_t wait = retry_backoff(cfg, m->attempts);
	m->retry_owner = snd;
	loop_timer_init(&m->retry, retry_fire, m);
	loop_timer_arm(snd->loop, &m->retry, wait);
	m->prev_waiting = NULL;
	m->next_waiting = snd->waiting;
	if (snd->waiting)
		snd->waiting->prev_waiting = m;
	snd->waiting = m;
	snd->nwaiting++;
	struct log_line *l = log_begin(snd->log, LOG_INFO, "msg.waiting");
	log_str(l, "queue_id", m->queue_id);
	log_uint(l, "attempts", m->attempts);
	log_ms(l, "next_try_in", wait);
	log_end(l);
	return true;
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

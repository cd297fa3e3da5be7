/*
 * client_tls: STARTTLS (RFC 3207) on an MX session: how much TLS the
 * session asks for, the handshake and its fallback, and which jobs the
 * session's TLS may carry.
 *
 * One session carries the jobs of every domain that shares the MX host,
 * and each job needs its own level (tls.policy, else tls.mode):
 * - When EHLO is answered, the session asks for the strictest level of
 *   the jobs queued at that moment: STARTTLS when any needs more than
 *   none. Over a CA bundle (loaded when anything verifies) the
 *   certificate is checked whenever TLS is up, so one session serves
 *   verify and non-verify jobs alike; only a session whose jobs all
 *   need verify uses the context that fails the handshake instead.
 * - Before each transaction the job's level is held against what the
 *   session got (plaintext, TLS, verified TLS). A job needing more goes
 *   to its next MX host or is deferred (4.7.4 when TLS was not offered
 *   or refused, 4.7.5 when the handshake or the certificate check
 *   failed); the other jobs still go out in the same session. A job of
 *   a none domain rides in TLS when the session has it.
 * - A job that came after the session chose plaintext, at a host that
 *   offers STARTTLS, ends the session instead: the next one uses TLS.
 * - When no queued job can use the session, the address is given up as
 *   a whole (the next address, the next MX host, else deferred), but the
 *   host is not backed off: other domains' mail may still use it. A
 *   failed handshake is retried in plaintext only when some queued job
 *   accepts that (may, none).
 */
#include "client_int.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "sender_config.h"
#include "smtp_addr.h"
#include "tls_policy.h"

void
client_tls_drop(struct client *c)
{
	if (c->tls) {
		tls_close_notify(c->tls);
		tls_free(c->tls);
		c->tls = NULL;
	}
	c->tls_verified = false;
	c->tls_read_wants_write = false;
}

/* The weakest and the strictest level of the queued jobs (tls.mode when
 * none is queued). */
static void
client_tls_span(const struct client *c, unsigned *lo, unsigned *hi)
{
	const struct job *j = c->q->head;

	*lo = *hi = j ? j->tls : c->snd->cfg->tls_mode;
	for (; j; j = j->next) {
		if (j->tls < *lo)
			*lo = j->tls;
		if (j->tls > *hi)
			*hi = j->tls;
	}
}

void
client_tls_plan(struct client *c)
{
	unsigned lo;

	client_tls_span(c, &lo, &c->tls_mode);
}

bool
client_want_starttls(const struct client *c)
{
	return !c->tls && !c->tls_off && !c->tls_tried &&
	       c->tls_mode != TLS_LEVEL_NONE && c->caps.starttls;
}

void
client_tls_gap(struct client *c, enum client_tls_gap gap, const char *detail)
{
	c->tls_gap = gap;
	snprintf(c->tls_detail, sizeof c->tls_detail, "%s", detail);
}

/* The session gives a job of this level what it needs. */
static bool
client_tls_serves(const struct client *c, unsigned level)
{
	if (level <= TLS_LEVEL_MAY)
		return true;
	return c->tls && (level < TLS_LEVEL_VERIFY || c->tls_verified);
}

enum client_tls_fit
client_tls_fit(const struct client *c, const struct job *j)
{
	if (client_tls_serves(c, j->tls))
		return CLIENT_TLS_FITS;
	if (!c->tls && !c->tls_tried && !c->tls_off && c->caps.starttls)
		return CLIENT_TLS_LATER;
	return CLIENT_TLS_SHORT;
}

/* RFC 3463 3.8: X.7.4 security feature missing, X.7.5 crypto failed. */
static const char *
client_tls_dsn(const struct client *c, unsigned level)
{
	if (c->tls && level == TLS_LEVEL_VERIFY)
		return "4.7.5";
	return c->tls_gap == CLIENT_TLS_GAP_HANDSHAKE ||
		       c->tls_gap == CLIENT_TLS_GAP_UNVERIFIED
		   ? "4.7.5"
		   : "4.7.4";
}

/* What the session lacks, as the end of a sentence about the host. */
static void
client_tls_cause(const struct client *c, char *buf, size_t cap)
{
	const char *mx = c->q->key, *d = c->tls_detail;

	switch (c->tls_gap) {
	case CLIENT_TLS_GAP_NOT_OFFERED:
		snprintf(buf, cap, "%s did not offer STARTTLS", mx);
		break;
	case CLIENT_TLS_GAP_REFUSED:
		snprintf(buf, cap, "%s refused STARTTLS: %s", mx, d);
		break;
	case CLIENT_TLS_GAP_HANDSHAKE:
		snprintf(buf, cap, "the TLS handshake with %s failed: %s", mx,
			 d);
		break;
	case CLIENT_TLS_GAP_UNVERIFIED:
		snprintf(buf, cap, "the certificate of %s did not verify: %s",
			 mx, d);
		break;
	default:
		snprintf(buf, cap, "the session with %s is in plaintext", mx);
		break;
	}
}

/* The name the job's level was looked up for: its recipient domain, or
 * with a smarthost the smarthost (route.c). */
static const char *
client_tls_name(const struct client *c, const struct job *j)
{
	if (c->snd->cfg->smarthost[0])
		return c->q->key;
	return smtp_path_domain(&j->msg->env.rcpts[j->rcpt[0]]);
}

/* "tls.mode", "tls.policy" or "tls.policy entry '.example.com'". */
static void
client_tls_rule(const struct job *j, char *buf, size_t cap)
{
	if (!j->tls_rule)
		snprintf(buf, cap, "tls.mode");
	else if (j->tls_rule[0] == '.')
		snprintf(buf, cap, "tls.policy entry '%s'", j->tls_rule);
	else
		snprintf(buf, cap, "tls.policy");
}

void
client_tls_refuse(struct client *c, struct job *j)
{
	char cause[sizeof c->tls_detail + MX_HOST_MAX + 64];
	char rule[MX_HOST_MAX + 32], why[sizeof cause + 2 * MX_HOST_MAX + 96];

	client_tls_cause(c, cause, sizeof cause);
	client_tls_rule(j, rule, sizeof rule);
	snprintf(why, sizeof why, "%s is required for %s by %s (%s), but %s",
		 j->tls == TLS_LEVEL_VERIFY ? "A verified TLS certificate"
					    : "TLS",
		 client_tls_name(c, j), rule, tls_level_names[j->tls], cause);
	/* RFC 5321 5.1: the next MX host may do better (route hosts are
	 * distinct, so that is never this queue). */
	if (j->hop + 1 < j->route->nhosts &&
	    strcmp(j->route->hosts[j->hop + 1].name, c->q->key) != 0) {
		struct log_line *l =
		    log_begin(c->snd->log, LOG_INFO, "tls.next_mx");
		log_str(l, "queue_id", j->msg->queue_id);
		log_str(l, "mx", c->q->key);
		log_str(l, "next_mx", j->route->hosts[j->hop + 1].name);
		log_str(l, "reason", why);
		log_end(l);
		j->hop++;
		sender_route_job(c->snd, j);
		return;
	}
	for (size_t k = 0; k < j->n; k++)
		sender_outcome(c->snd, j, k, DELIVERY_DEFERRED,
			       client_tls_dsn(c, j->tls), why, c->relay,
			       c->q->key);
	sender_job_done(c->snd, j);
}

/*
 * No queued job can use the connection: the address is given up on, as
 * tls.mode encrypt always did. When tls.policy set a level, why says
 * which (for the first such job).
 */
static void
client_tls_give_up(struct client *c, const char *dsn, char *why, size_t cap)
{
	const struct job *j = c->q->head;
	size_t len = strlen(why);

	while (j && !j->tls_rule)
		j = j->next;
	if (j)
		snprintf(why + len, cap - len, " (tls.policy for %s: %s)",
			 client_tls_name(c, j), tls_level_names[j->tls]);
	client_policy_fail(c, dsn, why);
}

bool
client_tls_ok(struct client *c)
{
	char why[sizeof c->tls_detail + 2 * MX_HOST_MAX + 64];
	const char *d = c->tls_detail;

	for (const struct job *j = c->q->head; j; j = j->next)
		if (client_tls_fit(c, j) != CLIENT_TLS_SHORT)
			return true;
	if (!c->q->head)
		return true;
	switch (c->tls_gap) {
	case CLIENT_TLS_GAP_REFUSED:
		snprintf(why, sizeof why, "STARTTLS refused: %s", d);
		break;
	case CLIENT_TLS_GAP_HANDSHAKE:
		snprintf(why, sizeof why, "TLS handshake failed: %s", d);
		break;
	case CLIENT_TLS_GAP_UNVERIFIED:
		snprintf(why, sizeof why, "TLS certificate not verified: %s",
			 d);
		break;
	default:
		snprintf(why, sizeof why,
			 "TLS is required, but was not offered by the host");
		break;
	}
	client_tls_give_up(c, client_tls_dsn(c, TLS_LEVEL_ENCRYPT), why,
			   sizeof why);
	return false;
}

void
client_handshake(struct client *c)
{
	switch (tls_handshake(c->tls)) {
	case TLS_OK:
		c->tls_verified = tls_verified(c->tls);
		if (!c->tls_verified) {
			const char *e = tls_verify_error(c->tls);
			client_tls_gap(c, CLIENT_TLS_GAP_UNVERIFIED,
				       e[0] ? e : "not checked");
		}
		/* RFC 3207 4.2: forget what was learnt in plaintext. */
		memset(&c->caps, 0, sizeof c->caps);
		c->pipelining = false;
		client_send(c, "EHLO %s\r\n", c->snd->cfg->hostname);
		client_enter_state(c, CLIENT_EHLO);
		client_arm(c, c->snd->cfg->timeout_mail);
		client_flush(c);
		break;
	case TLS_WANT_READ:
		loop_modify(c->snd->loop, c->fd, LOOP_READ);
		break;
	case TLS_WANT_WRITE:
		loop_modify(c->snd->loop, c->fd, LOOP_WRITE);
		break;
	case TLS_CLOSED:
		client_tls_failed(c, tls_error(c->tls)[0]
					 ? tls_error(c->tls)
					 : "connection closed by server");
		break;
	case TLS_ERROR:
		client_tls_failed(c, tls_error(c->tls));
		break;
	}
}

/*
 * Every session shares the sender's client contexts, made at start-up;
 * a connection adds only the peer name, checked against the MX host name
 * (RFC 6125) whenever the context checks certificates.
 */
void
client_starttls(struct client *c)
{
	const struct sender_tls *t = &c->snd->tls;
	struct tls_ctx *ctx = t->check ? t->check : t->open;
	unsigned lo, hi;

	client_tls_span(c, &lo, &hi);
	if (lo == TLS_LEVEL_VERIFY && t->verify)
		ctx = t->verify; /* as tls.mode verify always did */
	client_enter_state(c, CLIENT_TLS);
	client_arm(c, c->snd->cfg->timeout_greeting);
	if (!ctx) { /* only when no level uses TLS */
		client_tls_failed(c, "no TLS client context");
		return;
	}
	c->tls = tls_new(ctx, c->fd);
	if (!c->tls ||
	    tls_set_peer_name(c->tls, c->q->key, ctx != t->open) != 0) {
		client_tls_failed(c, "out of memory");
		return;
	}
	/* The handshake starts once client_read has dropped what came in
	 * plaintext behind the 220. */
}

void
client_tls_failed(struct client *c, const char *what)
{
	char why[TLS_ERR_MAX + 2 * MX_HOST_MAX + 64];
	unsigned lo, hi;

	snprintf(why, sizeof why, "TLS handshake failed: %s", what);
	client_tls_span(c, &lo, &hi);
	if (c->tls_off || lo > TLS_LEVEL_MAY) {
		client_tls_give_up(c, "4.7.5", why, sizeof why);
		return;
	}
	struct log_line *l = log_begin(c->snd->log, LOG_WARN, "tls.fallback");
	log_str(l, "mx", c->q->key);
	log_str(l, "relay", c->relay);
	log_str(l, "reason", why);
	log_end(l);
	client_tls_gap(c, CLIENT_TLS_GAP_HANDSHAKE, what);
	c->tls_off = true;
	client_drop_socket(c);
	client_connect(c); /* the same address, without STARTTLS */
}

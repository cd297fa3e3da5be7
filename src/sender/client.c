/*
 * client: the protocol side of an MX session, one handler per state
 * (RFC 5321 4.1, 4.2; PIPELINING RFC 2920). A reply is matched to the
 * command it answers by the state alone: commands are written in the order
 * the states expect their replies, so pipelined replies line up.
 */
#include "client_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sender_config.h"

#define CLIENT_NAME(name) #name,
static const char *const client_state_names[] = {CLIENT_STATES(CLIENT_NAME)};
#undef CLIENT_NAME

const char *
client_state_name(enum client_state st)
{
	if ((size_t)st >=
	    sizeof client_state_names / sizeof *client_state_names)
		return "?";
	return client_state_names[st];
}

void
client_enter_state(struct client *c, enum client_state st)
{
	if (c->state == st)
		return;
	struct log_line *l = log_begin(c->snd->log, LOG_DEBUG, "client.state");
	log_str(l, "mx", c->q->key);
	log_str(l, "from", client_state_name(c->state));
	log_str(l, "to", client_state_name(st));
	log_end(l);
	c->state = st;
}

/* The reply as "code enh text" on one line, for logs and bounces. */
static void
client_reply_str(const struct smtp_reply *r, char *buf, size_t cap)
{
	snprintf(buf, cap, "%d%s%s %s", r->code, r->enh[0] ? " " : "", r->enh,
		 r->text);
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			*p = ' ';
}

/* Enhanced code of a reply, or a generic one of the same class. */
static const char *
client_dsn(const struct smtp_reply *r, char *buf, size_t cap)
{
	if (r->enh[0])
		return r->enh;
	snprintf(buf, cap, "%d.0.0", r->code / 100);
	return buf;
}

static enum delivery_status
client_status_of(int code)
{
	if (code >= 200 && code < 300)
		return DELIVERY_SENT;
	return code >= 500 ? DELIVERY_BOUNCED : DELIVERY_DEFERRED;
}

static void
client_outcome(struct client *c, size_t k, const struct smtp_reply *r)
{
	char text[SMTP_REPLY_TEXT_MAX + 32], dsn[16];
	client_reply_str(r, text, sizeof text);
	c->rcpt[k] = CLIENT_RCPT_DONE;
	sender_outcome(c->snd, c->job, k, client_status_of(r->code),
		       client_dsn(r, dsn, sizeof dsn), text, c->relay,
		       c->q->key);
}

void
client_settle_job(struct client *c, enum delivery_status st, const char *dsn,
		  const char *reply)
{
	for (size_t k = 0; c->job && k < c->job->n; k++) {
		if (c->rcpt[k] == CLIENT_RCPT_DONE)
			continue;
		c->rcpt[k] = CLIENT_RCPT_DONE;
		sender_outcome(c->snd, c->job, k, st, dsn, reply, c->relay,
			       c->q->key);
	}
}

void
client_end_job(struct client *c)
{
	if (c->body_fd >= 0) {
		close(c->body_fd);
		c->body_fd = -1;
	}
	if (c->job) {
		struct job *j = c->job;
		c->job = NULL;
		free(c->rcpt);
		c->rcpt = NULL;
		sender_job_done(c->snd, j);
	}
}

/* Anything that stops a job before it can be sent: settle, next. */
static bool
client_check_job(struct client *c, struct job *j)
{
	const struct message *m = j->msg;
	if (m->env.params.smtputf8 && !c->caps.smtputf8) {
		client_settle_job(c, DELIVERY_BOUNCED, "5.6.7",
				  "SMTPUTF8 is required, but was not offered "
				  "by the host");
		return false;
	}
	if (c->caps.size_max &&
	    m->size - m->env.body_offset > c->caps.size_max) {
		client_settle_job(c, DELIVERY_BOUNCED, "5.3.4",
				  "message too big for the host's SIZE limit");
		return false;
	}
	return true;
}

static int
client_send_rcpt(struct client *c)
{
	const struct smtp_path *to =
	    &c->job->msg->env.rcpts[c->job->rcpt[c->rcpt_sent]];
	c->rcpt_sent++;
	return client_send(c, "RCPT TO:<%s>\r\n", to->addr);
}

static void
client_quit(struct client *c)
{
	client_send(c, "QUIT\r\n");
	client_enter_state(c, CLIENT_QUIT);
	client_arm(c, c->snd->cfg->timeout_mail);
}

/* Starts the next transaction, or lingers, or says goodbye. */
void
client_next_job(struct client *c)
{
	const struct sender_config *cfg = c->snd->cfg;

	client_enter_state(c, CLIENT_IDLE);
	if (c->snd->stopping || (cfg->max_messages_per_session &&
				 c->msgs >= cfg->max_messages_per_session)) {
		client_quit(c);
		return;
	}
	/* Outcomes of the last transaction are on disk before the next one
	 * starts; until then the pass-end flush kicks this session. */
	if (c->q->head && !sender_txn_may_start(c->snd, c->q))
		return;
	struct job *j;
	while ((j = mxq_pop(c->q)) != NULL) {
		/* Its TLS level first: nothing of it goes out in a session
		 * that cannot give it (client_tls.c). */
		enum client_tls_fit fit = client_tls_fit(c, j);
		if (fit == CLIENT_TLS_LATER) {
			/* It and those behind it go in a new session, which
			 * starts TLS (client_close: the queue is not empty). */
			mxq_push_front(c->q, j);
			client_quit(c);
			return;
		}
		if (fit == CLIENT_TLS_SHORT) {
			client_tls_refuse(c, j);
			continue;
		}
		c->job = j;
		c->rcpt = calloc(j->n, sizeof *c->rcpt);
		if (!c->rcpt) {
			c->job = NULL;
			mxq_push_front(c->q, j);
			client_close(c, "out of memory");
			return;
		}
		if (client_check_job(c, j))
			break;
		client_end_job(c);
	}
	if (!j) {
		loop_timer_arm(c->snd->loop, &c->linger, cfg->idle_linger);
		client_arm(c, cfg->idle_linger + cfg->timeout_mail);
		return;
	}
	loop_timer_disarm(c->snd->loop, &c->linger);
	const struct message *m = j->msg;
	c->rcpt_sent = c->rcpt_replies = c->accepted = 0;
	c->txn_failed = false;
	c->body_fd = openat(c->snd->inst_fd, m->name, O_RDONLY | O_CLOEXEC);
	if (c->body_fd < 0 ||
	    lseek(c->body_fd, (off_t)m->env.body_offset, SEEK_SET) < 0) {
		char why[128];
		snprintf(why, sizeof why, "cannot read queue file: %s",
			 strerror(errno));
		client_settle_job(c, DELIVERY_DEFERRED, "4.3.0", why);
		client_end_job(c);
		client_next_job(c);
		return;
	}
	char size[32] = "";
	if (c->caps.size)
		snprintf(size, sizeof size, " SIZE=%llu",
			 (unsigned long long)(m->size - m->env.body_offset));
	bool eight =
	    m->env.params.body == BODY_8BITMIME && c->caps.eightbitmime;
	client_send(c, "MAIL FROM:<%s>%s%s%s\r\n", m->env.from.addr, size,
		    eight ? " BODY=8BITMIME" : "",
		    m->env.params.smtputf8 ? " SMTPUTF8" : "");
	if (c->pipelining) {
		while (c->rcpt_sent < j->n)
			client_send_rcpt(c);
		client_send(c, "DATA\r\n");
	}
	client_enter_state(c, CLIENT_MAIL);
	client_arm(c, cfg->timeout_mail);
}

void
client_connected(struct client *c)
{
	client_enter_state(c, CLIENT_GREETING);
	client_arm(c, c->snd->cfg->timeout_greeting);
}

static void
on_greeting(struct client *c, const struct smtp_reply *r)
{
	if (r->code / 100 != 2) {
		char why[SMTP_REPLY_TEXT_MAX + 32];
		client_reply_str(r, why, sizeof why);
		client_next_address(c, why);
		return;
	}
	client_send(c, "EHLO %s\r\n", c->snd->cfg->hostname);
	client_enter_state(c, CLIENT_EHLO);
	client_arm(c, c->snd->cfg->timeout_mail);
}

/* EHLO or HELO accepted: the host works; mail can go. */
static void
client_session_open(struct client *c)
{
	client_log_session(c, "session.open");
	c->q->sessions++;
	sender_host_up(c->snd, c->q);
	client_next_job(c);
}

/* Plaintext with no STARTTLS to try (EHLO did not offer it, or HELO):
 * said once for the jobs that need TLS. A plaintext retry after a
 * failed handshake keeps that reason. */
static void
client_tls_not_offered(struct client *c)
{
	if (!c->tls && !c->tls_off && !c->caps.starttls)
		client_tls_gap(c, CLIENT_TLS_GAP_NOT_OFFERED, "");
}

static void
on_ehlo(struct client *c, const struct smtp_reply *r)
{
	if (r->code / 100 == 2) {
		smtp_caps_parse(r, &c->caps);
		c->pipelining = c->caps.pipelining;
		if (!c->tls)
			client_tls_plan(c);
		/* RFC 3207: STARTTLS once per connection, when offered and
		 * some queued job wants more than none. */
		if (client_want_starttls(c)) {
			c->tls_tried = true;
			client_send(c, "STARTTLS\r\n");
			client_enter_state(c, CLIENT_STARTTLS);
			client_arm(c, c->snd->cfg->timeout_mail);
			return;
		}
		client_tls_not_offered(c);
		if (client_tls_ok(c))
			client_session_open(c);
		return;
	}
	if (r->code / 100 == 5) { /* RFC 5321 3.2: fall back to HELO */
		client_send(c, "HELO %s\r\n", c->snd->cfg->hostname);
		client_enter_state(c, CLIENT_HELO);
		client_arm(c, c->snd->cfg->timeout_mail);
		return;
	}
	char why[SMTP_REPLY_TEXT_MAX + 32];
	client_reply_str(r, why, sizeof why);
	client_next_address(c, why);
}

static void
on_helo(struct client *c, const struct smtp_reply *r)
{
	if (r->code / 100 != 2) {
		char why[SMTP_REPLY_TEXT_MAX + 32];
		client_reply_str(r, why, sizeof why);
		client_next_address(c, why);
		return;
	}
	memset(&c->caps, 0, sizeof c->caps);
	c->pipelining = false;
	client_tls_not_offered(c);
	if (client_tls_ok(c))
		client_session_open(c);
}

/* RFC 3207 4: 220 starts the handshake; anything else leaves the
 * session in plaintext, for the jobs that accept it (may, none). */
static void
on_starttls(struct client *c, const struct smtp_reply *r)
{
	if (r->code == 220) {
		client_starttls(c);
		return;
	}
	char text[SMTP_REPLY_TEXT_MAX + 32];
	client_reply_str(r, text, sizeof text);
	client_tls_gap(c, CLIENT_TLS_GAP_REFUSED, text);
	if (client_tls_ok(c))
		client_session_open(c);
}

/* RSET after a failed transaction (RFC 5321 4.1.1.5). */
static void
client_rset(struct client *c)
{
	client_send(c, "RSET\r\n");
	client_enter_state(c, CLIENT_RSET);
	client_arm(c, c->snd->cfg->timeout_mail);
}

static void
on_mail(struct client *c, const struct smtp_reply *r)
{
	if (r->code / 100 != 2) {
		char text[SMTP_REPLY_TEXT_MAX + 32], dsn[16];
		client_reply_str(r, text, sizeof text);
		client_settle_job(c, client_status_of(r->code),
				  client_dsn(r, dsn, sizeof dsn), text);
		c->txn_failed = true;
		if (!c->pipelining) {
			client_rset(c);
			return;
		}
	} else if (!c->pipelining) {
		client_send_rcpt(c);
	}
	client_enter_state(c, CLIENT_RCPT);
	client_arm(c, c->snd->cfg->timeout_rcpt);
}

static void
on_rcpt(struct client *c, const struct smtp_reply *r)
{
	size_t k = c->rcpt_replies++;
	if (!c->txn_failed) {
		if (r->code / 100 == 2) {
			c->rcpt[k] = CLIENT_RCPT_ACCEPTED;
			c->accepted++;
		} else {
			client_outcome(c, k, r);
		}
	}
	if (c->rcpt_replies < c->job->n) {
		if (!c->pipelining)
			client_send_rcpt(c);
		client_arm(c, c->snd->cfg->timeout_rcpt);
		return;
	}
	if (c->pipelining) { /* DATA is already on its way */
		client_enter_state(c, CLIENT_DATA);
		client_arm(c, c->snd->cfg->timeout_data);
		return;
	}
	if (c->accepted == 0) {
		client_rset(c);
		return;
	}
	client_send(c, "DATA\r\n");
	client_enter_state(c, CLIENT_DATA);
	client_arm(c, c->snd->cfg->timeout_data);
}

static void
on_data(struct client *c, const struct smtp_reply *r)
{
	if (r->code == 354 && (c->txn_failed || c->accepted == 0)) {
		/* RFC 2920 3.1: a server that accepts DATA after refusing
		 * every RCPT gets an empty message, then RSET. */
		client_send(c, ".\r\n");
		c->txn_failed = true;
		client_enter_state(c, CLIENT_DOT);
		client_arm(c, c->snd->cfg->timeout_data_end);
		return;
	}
	if (r->code != 354) {
		if (!c->txn_failed && c->accepted > 0) {
			char text[SMTP_REPLY_TEXT_MAX + 32], dsn[16];
			client_reply_str(r, text, sizeof text);
			client_settle_job(c, client_status_of(r->code),
					  client_dsn(r, dsn, sizeof dsn), text);
		}
		client_rset(c);
		return;
	}
	body_init(&c->body);
	client_enter_state(c, CLIENT_BODY);
	client_arm(c, c->snd->cfg->timeout_data_block);
	client_fill_body(c);
}

/* Tops up the output buffer from the queue file while in BODY. */
void
client_fill_body(struct client *c)
{
	char chunk[8192];

	while (c->state == CLIENT_BODY &&
	       CLIENT_OUT_MAX - c->out_len > 2 * sizeof chunk + 8) {
		ssize_t n = read(c->body_fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			char why[128];
			snprintf(why, sizeof why, "reading queue file: %s",
				 strerror(errno));
			/* Don't finish a message we could not read whole. */
			client_settle_job(c, DELIVERY_DEFERRED, "4.3.0", why);
			client_end_job(c);
			client_close(c, why);
			return;
		}
		if (n == 0) {
			c->out_len += body_finish(&c->body, c->out + c->out_len,
						  CLIENT_OUT_MAX - c->out_len);
			client_enter_state(c, CLIENT_DOT);
			client_arm(c, c->snd->cfg->timeout_data_end);
			break;
		}
		size_t outlen;
		body_encode(&c->body, chunk, (size_t)n, c->out + c->out_len,
			    CLIENT_OUT_MAX - c->out_len, &outlen);
		c->out_len += outlen;
	}
}

static void
on_dot(struct client *c, const struct smtp_reply *r)
{
	if (c->txn_failed) {
		client_rset(c);
		return;
	}
	for (size_t k = 0; k < c->job->n; k++)
		if (c->rcpt[k] == CLIENT_RCPT_ACCEPTED)
			client_outcome(c, k, r);
	if (r->code / 100 == 2) {
		c->msgs++;
		c->progress = true;
	}
	client_end_job(c);
	client_next_job(c);
}

static void
on_rset(struct client *c, const struct smtp_reply *r)
{
	(void)r;
	client_end_job(c);
	client_next_job(c);
}

void
client_on_reply(struct client *c, const struct smtp_reply *r)
{
	/* RFC 5321 3.8: 421 means the server is closing the session. */
	if (r->code == 421 && c->state != CLIENT_QUIT &&
	    c->state != CLIENT_GREETING) {
		char why[SMTP_REPLY_TEXT_MAX + 32];
		client_reply_str(r, why, sizeof why);
		client_close(c, why);
		return;
	}
	switch (c->state) {
	case CLIENT_GREETING:
		on_greeting(c, r);
		break;
	case CLIENT_EHLO:
		on_ehlo(c, r);
		break;
	case CLIENT_HELO:
		on_helo(c, r);
		break;
	case CLIENT_STARTTLS:
		on_starttls(c, r);
		break;
	case CLIENT_MAIL:
		on_mail(c, r);
		break;
	case CLIENT_RCPT:
		on_rcpt(c, r);
		break;
	case CLIENT_DATA:
		on_data(c, r);
		break;
	case CLIENT_DOT:
		on_dot(c, r);
		break;
	case CLIENT_RSET:
		on_rset(c, r);
		break;
	case CLIENT_QUIT:
		client_close(c, NULL);
		break;
	default: {
		char why[SMTP_REPLY_TEXT_MAX + 32];
		client_reply_str(r, why, sizeof why);
		client_close(c, why); /* unexpected reply while idle */
		break;
	}
	}
}

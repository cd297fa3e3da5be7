/*
 * session: life cycle, input framing, replies and timers of one SMTP
 * server session. No sockets here: see session.h.
 *
 * Input framing (RFC 5321 2.3.8, 4.5.3.1.4): outside DATA the input is
 * cut into lines at LF; a line longer than SESSION_LINE_MAX octets gets
 * one 500 5.5.2 and is discarded up to its LF. Inside DATA the bytes go
 * to the DATA machine, which stops right after the end-of-data sequence so
 * pipelined commands behind it are framed as commands again. After
 * STARTTLS nothing buffered behind it is ever run (RFC 3207 4.2,
 * CVE-2011-0411): the handshake must come first.
 */
#include "session_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_NAME(name) #name,
static const char *const state_names[] = {SESSION_STATES(SESSION_NAME)};
#undef SESSION_NAME

const char *
session_state_name(enum session_state st)
{
	if ((size_t)st >= sizeof state_names / sizeof state_names[0])
		return "?";
	return state_names[st];
}

static void session_timeout(struct loop *, struct loop_timer *, void *);

struct session *
session_new(struct session_ctx *ctx, uint64_t id, const struct sockaddr *peer,
	    socklen_t peerlen)
{
	struct session *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->ctx = ctx;
	s->id = id;
	s->state = SESSION_INIT;
	s->file.fd = -1;
	s->starttls_offered = ctx->tls_available;
	if (peerlen > sizeof s->peer)
		peerlen = sizeof s->peer;
	memcpy(&s->peer, peer, peerlen);
	s->peerlen = peerlen;
	if (net_addr_host(peer, s->peer_ip, sizeof s->peer_ip) != 0)
		snprintf(s->peer_ip, sizeof s->peer_ip, "unknown");
	loop_timer_init(&s->timer, session_timeout, s);
	session_auth_init(s);
	session_arm_timer(s);
	/* RFC 5321 4.2: the greeting carries no enhanced code (RFC 2034). */
	session_reply(s, 220, NULL, "%s ESMTP", ctx->cfg->hostname);
	return s;
}

void
session_free(struct session *s)
{
	if (!s)
		return;
	/* A queued commit must finish before the file it points to goes;
	 * as the peer is gone, its callback must not run further input
	 * (which could queue another commit of this session). */
	if (s->state == SESSION_DELIVERING) {
		s->eof = true;
		maildir_flush(s->ctx->md);
	}
	session_data_abort(s);
	loop_timer_disarm(s->ctx->loop, &s->timer);
	session_auth_stop(s);
	free(s->rcpts);
	free(s);
}

enum session_state
session_state(const struct session *s)
{
	return s->state;
}

uint64_t
session_id(const struct session *s)
{
	return s->id;
}

unsigned
session_msgs(const struct session *s)
{
	return s->msgs;
}

const struct sockaddr *
session_peer(const struct session *s)
{
	return (const struct sockaddr *)&s->peer;
}

void *
session_owner(const struct session *s)
{
	return s->owner;
}

void
session_set_owner(struct session *s, void *owner)
{
	s->owner = owner;
}

struct log_line *
session_log(struct session *s, enum log_level level, const char *event)
{
	if (!s->ctx->log)
		return NULL;
	struct log_line *l = log_begin(s->ctx->log, level, event);
	log_uint(l, "conn", s->id);
	return l;
}

void
session_wake(struct session *s)
{
	if (s->ctx->wake)
		s->ctx->wake(s, s->ctx->wake_arg);
}

void
session_enter_state(struct session *s, enum session_state st)
{
	if (s->state == st)
		return;
	struct log_line *l = session_log(s, LOG_DEBUG, "session.state");
	log_str(l, "from", session_state_name(s->state));
	log_str(l, "to", session_state_name(st));
	log_end(l);
	s->state = st;
}

void
session_reply(struct session *s, int code, const char *enh, const char *fmt,
	      ...)
{
	char text[SMTP_REPLY_LINE_MAX * 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	size_t n = smtp_reply_format(
	    s->out + s->out_len, sizeof s->out - s->out_len, code, enh, text);
	/* Cannot happen while SESSION_REPLY_RESERVE is respected; losing a
	 * reply would desynchronise the client, so close instead. */
	if (n == 0 && s->state != SESSION_CLOSED) {
		s->state = SESSION_CLOSED;
		return;
	}
	s->out_len += n;
	if (code >= 400 && code != 421)
		s->errors++;
}

void
session_reset_transaction(struct session *s)
{
	session_data_abort(s);
	memset(&s->from, 0, sizeof s->from);
	memset(&s->params, 0, sizeof s->params);
	free(s->rcpts);
	s->rcpts = NULL;
	s->rcpts_len = s->rcpts_cap = 0;
	s->nrcpt = 0;
}

void
session_close(struct session *s, int code, const char *enh, const char *text)
{
	if (s->state == SESSION_CLOSED)
		return;
	/* Once the 220 to STARTTLS is out, a plaintext reply would land in
	 * the handshake: close without one. */
	if (s->state != SESSION_STARTTLS)
		session_reply(s, code, enh, "%s %s", s->ctx->cfg->hostname,
			      text);
	session_reset_transaction(s);
	session_enter_state(s, SESSION_CLOSED);
	loop_timer_disarm(s->ctx->loop, &s->timer);
	session_auth_stop(s);
}

void
session_arm_timer(struct session *s)
{
	const struct smtpd_config *cfg = s->ctx->cfg;

	switch (s->state) {
	case SESSION_WRITING_DATA:
		loop_timer_arm(s->ctx->loop, &s->timer, cfg->timeout_data);
		break;
	case SESSION_DELIVERING: /* ends within this loop pass */
	case SESSION_CLOSED:
		loop_timer_disarm(s->ctx->loop, &s->timer);
		break;
	default:
		loop_timer_arm(s->ctx->loop, &s->timer, cfg->timeout_command);
		break;
	}
}

/* RFC 5321 4.5.3.2: the server may close an idle session with 421. */
static void
session_timeout(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct session *s = arg;
	(void)loop;
	(void)t;
	struct log_line *l = session_log(s, LOG_INFO, "session.timeout");
	log_str(l, "client", s->peer_ip);
	log_str(l, "state", session_state_name(s->state));
	log_end(l);
	session_close(s, 421, "4.4.2", "Error: timeout exceeded");
	session_wake(s);
}

/* Runs one complete command line (LF included in len). */
static void
session_line(struct session *s, const char *line, size_t len)
{
	bool crlf = len >= 2 && line[len - 2] == '\r';

	if (!crlf && s->ctx->cfg->bare_lf == DATA_BARE_LF_REJECT) {
		session_reply(s, 500, "5.5.2", "Error: bare <LF> received");
		return;
	}
	if (s->state == SESSION_AUTH)
		session_auth_response(s, line, len - (crlf ? 2 : 1));
	else
		session_command(s, line, len - (crlf ? 2 : 1));
	if (s->state != SESSION_CLOSED && s->errors >= s->ctx->cfg->max_errors)
		session_close(s, 421, "4.7.0", "Error: too many errors");
}

/* Bytes pipelined behind STARTTLS: dropped unseen, logged. */
static void
session_discard_plaintext(struct session *s, size_t n)
{
	struct log_line *l =
	    session_log(s, LOG_WARN, "tls.pipelined_discarded");
	log_str(l, "client", s->peer_ip);
	log_uint(l, "bytes", n);
	log_end(l);
}

/* Frames and runs as much buffered input as state and output room allow. */
static void
session_run(struct session *s)
{
	size_t pos = 0;

	while (pos < s->in_len) {
		if (s->state == SESSION_WRITING_DATA) {
			pos +=
			    session_data_feed(s, s->in + pos, s->in_len - pos);
			continue;
		}
		if (s->state == SESSION_DELIVERING ||
		    s->state == SESSION_AUTH_FAILED ||
		    s->state == SESSION_CLOSED || s->state == SESSION_STARTTLS)
			break;
		if (sizeof s->out - s->out_len < SESSION_REPLY_RESERVE)
			break;
		const char *start = s->in + pos;
		const char *lf = memchr(start, '\n', s->in_len - pos);
		if (!lf) {
			if (s->in_len - pos < SESSION_LINE_MAX)
				break;
			/* No LF within the limit: refuse once, then drop
			 * bytes until the line finally ends. */
			if (!s->skip_line)
				session_reply(s, 500, "5.5.2",
					      "Error: line too long");
			s->skip_line = true;
			pos = s->in_len;
			break;
		}
		size_t len = (size_t)(lf - start) + 1;
		pos += len;
		if (s->skip_line) {
			s->skip_line = false;
			continue;
		}
		if (len > SESSION_LINE_MAX) {
			session_reply(s, 500, "5.5.2", "Error: line too long");
			continue;
		}
		session_line(s, start, len);
	}
	if (s->state == SESSION_STARTTLS && pos < s->in_len)
		session_discard_plaintext(s, s->in_len - pos);
	if (s->state == SESSION_CLOSED || s->state == SESSION_STARTTLS)
		pos = s->in_len; /* nothing after the last word is read */
	memmove(s->in, s->in + pos, s->in_len - pos);
	s->in_len -= pos;
}

char *
session_read_buf(struct session *s, size_t *space)
{
	/* No plaintext is taken between STARTTLS and its handshake. */
	*space = s->state == SESSION_STARTTLS ? 0 : sizeof s->in - s->in_len;
	return s->in + s->in_len;
}

void
session_received(struct session *s, size_t n)
{
	if (s->state == SESSION_CLOSED || s->state == SESSION_STARTTLS)
		return;
	s->in_len += n;
	session_arm_timer(s);
	session_run(s);
}

void
session_resume(struct session *s)
{
	if (s->in_len > 0)
		session_run(s);
}

size_t
session_feed(struct session *s, const char *bytes, size_t n)
{
	size_t done = 0;

	while (done < n && s->state != SESSION_CLOSED) {
		size_t space;
		char *buf = session_read_buf(s, &space);
		if (space == 0)
			break; /* stalled: output full or waiting for commit */
		size_t chunk = n - done < space ? n - done : space;
		memcpy(buf, bytes + done, chunk);
		done += chunk;
		session_received(s, chunk);
	}
	return done;
}

void
session_eof(struct session *s)
{
	if (s->state == SESSION_WRITING_DATA) {
		s->ctx->stats.msgs_rejected++;
		struct log_line *l = session_log(s, LOG_INFO, "msg.rejected");
		log_str(l, "reason", "connection lost in DATA");
		log_end(l);
	}
	if (s->state == SESSION_DELIVERING) {
		s->eof = true; /* the commit callback closes */
		return;
	}
	session_reset_transaction(s);
	session_enter_state(s, SESSION_CLOSED);
	loop_timer_disarm(s->ctx->loop, &s->timer);
	session_auth_stop(s);
}

const char *
session_output(const struct session *s, size_t *len)
{
	*len = s->out_len;
	return s->out;
}

void
session_output_done(struct session *s, size_t n)
{
	if (n > s->out_len)
		n = s->out_len;
	memmove(s->out, s->out + n, s->out_len - n);
	s->out_len -= n;
}

bool
session_done(const struct session *s)
{
	return s->state == SESSION_CLOSED && s->out_len == 0;
}

void
session_shutdown(struct session *s)
{
	switch (s->state) {
	case SESSION_WRITING_DATA:
	case SESSION_DELIVERING:
	case SESSION_CLOSED:
		return; /* DATA finishes; the reply path closes after it */
	default:
		session_close(s, 421, "4.3.2", "Service shutting down");
		session_wake(s);
	}
}

bool
session_starting_tls(const struct session *s)
{
	return s->state == SESSION_STARTTLS;
}

bool
session_in_tls(const struct session *s)
{
	return s->in_tls;
}

void
session_set_listener(struct session *s, const struct smtpd_listener *l)
{
	s->submission = l->role == SMTPD_ROLE_SUBMISSION;
	s->starttls_offered =
	    s->ctx->tls_available && l->tls == SMTPD_TLS_STARTTLS;
}

void
session_tls_started(struct session *s, const struct session_tls *tls)
{
	/* RFC 3207 4.2: discard all knowledge obtained from the client. */
	session_reset_transaction(s);
	s->helo[0] = '\0';
	s->esmtp = false;
	s->skip_line = false;
	s->in_len = 0;
	session_auth_reset(s);
	s->in_tls = true;
	s->tls = *tls;
	if (s->state == SESSION_STARTTLS)
		session_enter_state(s, SESSION_INIT);
	session_arm_timer(s);
	struct log_line *l = session_log(s, LOG_INFO, "tls.established");
	log_str(l, "client", s->peer_ip);
	log_str(l, "version", tls->version);
	log_str(l, "cipher", tls->cipher);
	log_int(l, "bits", tls->bits);
	log_end(l);
}

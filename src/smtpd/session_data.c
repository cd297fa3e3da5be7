/*
 * session_data: the DATA phase of a session (RFC 5321 4.1.1.4).
 *
 * At DATA the tmp file is created and the envelope block and our
 * Received: header are written (DESIGN.md "Message file"); then the wire
 * bytes go through the DATA machine (data.c) straight into the file.
 * Refusals that depend on the whole message (size, hops, bare LF, write
 * errors) are decided at the end of data; the file is dropped at once
 * when it can no longer be accepted so a huge message never fills the
 * disk. Accepted files are handed to the Maildir group commit, and the
 * 250 with the queue id is sent only from its callback.
 */
#include "session_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Buffered writer for the header block: one write for most messages. */
struct hdr_writer {
	struct session *s;
	size_t len;
	int err;
	char buf[4096];
};

static void
hdr_flush(struct hdr_writer *w)
{
	if (w->len == 0 || w->err)
		return;
	if (maildir_write(&w->s->file, w->buf, w->len) != 0)
		w->err = errno;
	w->len = 0;
}

static void hdr_printf(struct hdr_writer *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
hdr_printf(struct hdr_writer *w, const char *fmt, ...)
{
	char line[SMTP_PATH_MAX * 2 + 128];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof line) {
		w->err = EOVERFLOW;
		return;
	}
	if (w->len + (size_t)n > sizeof w->buf)
		hdr_flush(w);
	memcpy(w->buf + w->len, line, (size_t)n);
	w->len += (size_t)n;
}

/* RFC 5321 4.4 trace field; protocol names from RFC 3848 and 6531. */
static void
session_write_received(struct session *s, struct hdr_writer *w)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
	/* RFC 3848 / 6531 register no TLS or AUTH name for plain HELO:
	 * ESMTP, then S for TLS, then A for an authenticated client. */
	char proto[16];
	bool ext = s->esmtp || s->params.smtputf8;
	snprintf(proto, sizeof proto, "%s%s%s",
		 s->params.smtputf8 ? "UTF8SMTP"
		 : s->esmtp	    ? "ESMTP"
				    : "SMTP",
		 ext && s->in_tls ? "S" : "", ext && s->authed ? "A" : "");
	hdr_printf(w, "Received: from %s (unknown [%s])\n", s->helo,
		   s->peer_ip);
	/* The TLS comment lines as Postfix writes them. */
	if (s->in_tls)
		hdr_printf(w,
			   "\t(using %s with cipher %s (%d/%d bits))\n"
			   "\t(No client certificate requested)\n",
			   s->tls.version, s->tls.cipher, s->tls.bits,
			   s->tls.alg_bits);
	hdr_printf(w, "\tby %s with %s id %s", s->ctx->cfg->hostname, proto,
		   s->file.queue_id);
	if (s->nrcpt == 1)
		hdr_printf(w, "\n\tfor <%s>; %s\n", s->rcpts, date);
	else
		hdr_printf(w, "; %s\n", date);
}

/* The envelope block: only these leading lines are the envelope. */
static int
session_write_envelope(struct session *s)
{
	struct hdr_writer w = {.s = s};

	hdr_printf(&w, "X-Original-From: <%s>%s%s%s\n", s->from.addr,
		   s->params.body ? " BODY=" : "",
		   smtp_body_name(s->params.body),
		   s->params.smtputf8 ? " SMTPUTF8" : "");
	const char *r = s->rcpts;
	for (unsigned i = 0; i < s->nrcpt; i++) {
		hdr_printf(&w, "X-Original-To: <%s>\n", r);
		r += strlen(r) + 1;
	}
	session_write_received(s, &w);
	hdr_flush(&w);
	if (w.err) {
		errno = w.err;
		return -1;
	}
	return 0;
}

static void
session_storage_reply(struct session *s, int err)
{
	if (err == ENOSPC || err == EDQUOT)
		session_reply(s, 452, "4.3.1", "Insufficient system storage");
	else
		session_reply(s, 451, "4.3.0", "Error: queue file write error");
}

static void
session_log_rejected(struct session *s, int code, const char *reason)
{
	s->ctx->stats.msgs_rejected++;
	struct log_line *l = session_log(s, LOG_INFO, "msg.rejected");
	log_str(l, "client", s->peer_ip);
	log_str(l, "from", s->from.addr);
	log_uint(l, "nrcpt", s->nrcpt);
	log_int(l, "code", code);
	log_str(l, "reason", reason);
	log_end(l);
}

void
session_data_start(struct session *s)
{
	struct maildir *md = s->ctx->md;

	if (maildir_create(md, &s->file) != 0 ||
	    (s->file_open = true, session_write_envelope(s) != 0)) {
		int err = errno;
		session_log_rejected(s, 451, strerror(err));
		session_storage_reply(s, err);
		session_reset_transaction(s);
		session_enter_state(s, SESSION_WAIT);
		return;
	}
	data_init(&s->data, (enum data_bare_lf)s->ctx->cfg->bare_lf);
	s->too_big = false;
	s->write_err = 0;
	session_enter_state(s, SESSION_WRITING_DATA);
	session_arm_timer(s);
	session_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
}

void
session_data_abort(struct session *s)
{
	if (s->file_open) {
		maildir_abort(s->ctx->md, &s->file);
		s->file_open = false;
	}
}

/* Back to WAIT after a message; a draining server closes instead. */
static void
session_transaction_done(struct session *s)
{
	session_reset_transaction(s);
	if (s->eof) {
		session_enter_state(s, SESSION_CLOSED);
		return;
	}
	session_enter_state(s, SESSION_WAIT);
	if (s->ctx->draining)
		session_close(s, 421, "4.3.2", "Service shutting down");
	else
		session_arm_timer(s);
}

static void
session_committed(struct maildir_file *f, int err, void *arg)
{
	struct session *s = arg;
	(void)f;

	s->file_open = false; /* maildir closed it, in new/ or gone */
	if (err) {
		session_log_rejected(s, 451, strerror(err));
		session_storage_reply(s, err);
	} else {
		s->msgs++;
		s->ctx->stats.msgs_accepted++;
		s->ctx->stats.bytes_accepted += s->data.size;
		struct log_line *l = session_log(s, LOG_INFO, "msg.accepted");
		log_str(l, "queue_id", s->file.queue_id);
		log_str(l, "client", s->peer_ip);
		log_str(l, "from", s->from.addr);
		log_uint(l, "nrcpt", s->nrcpt);
		log_uint(l, "size", s->data.size);
		if (s->in_tls) {
			log_str(l, "tls_version", s->tls.version);
			log_str(l, "tls_cipher", s->tls.cipher);
		}
		if (s->authed)
			log_str(l, "auth_user", s->auth_user);
		log_end(l);
		session_reply(s, 250, "2.0.0", "Ok: queued as %s",
			      s->file.queue_id);
	}
	session_transaction_done(s);
	session_resume(s);
	session_wake(s);
}

/* End of data: refuse, or hand the file to the group commit. */
static void
session_data_end(struct session *s)
{
	const struct smtpd_config *cfg = s->ctx->cfg;

	if (s->too_big) {
		session_log_rejected(s, 552, "message too big");
		session_reply(s, 552, "5.3.4", "Error: message file too big");
	} else if (s->data.received > cfg->max_received_headers) {
		/* RFC 5321 6.3: a hop count this high means a loop. */
		session_log_rejected(s, 554, "mail loop");
		session_reply(s, 554, "5.4.6", "Too many hops: mail loop");
	} else if (s->data.bare_lf && cfg->bare_lf == DATA_BARE_LF_REJECT) {
		session_log_rejected(s, 550, "bare LF");
		session_reply(s, 550, "5.5.2", "Error: bare <LF> received");
	} else if (s->write_err) {
		session_log_rejected(s, 451, strerror(s->write_err));
		session_storage_reply(s, s->write_err);
	} else {
		session_enter_state(s, SESSION_DELIVERING);
		session_arm_timer(s);
		maildir_commit(s->ctx->md, &s->file, session_committed, s);
		return;
	}
	session_transaction_done(s);
}

/* Writes stored bytes unless the message is already lost. */
static void
session_store(struct session *s, const char *p, size_t n)
{
	if (!s->file_open)
		return;
	if (s->data.size > s->ctx->cfg->max_message_size) {
		s->too_big = true;
		session_data_abort(s);
		return;
	}
	if (maildir_write(&s->file, p, n) != 0) {
		s->write_err = errno;
		session_data_abort(s);
	}
}

size_t
session_data_feed(struct session *s, const char *p, size_t n)
{
	char out[SESSION_IN_MAX + 2];
	size_t outlen = 0;

	if (n > SESSION_IN_MAX)
		n = SESSION_IN_MAX;
	size_t used = data_feed(&s->data, p, n, out, &outlen);
	if (outlen > 0)
		session_store(s, out, outlen);
	if (s->data.done)
		session_data_end(s);
	return used;
}

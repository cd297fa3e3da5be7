/*
 * bounce: see bounce.h. The report has the three parts RFC 3464 asks
 * for: a human-readable explanation, the message/delivery-status fields
 * (per-message, then one block per failed recipient) and the original
 * message's header (text/rfc822-headers), stored with LF line ends like
 * everything in the Maildir.
 */
#include "bounce.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Buffered writer into a Maildir file; remembers the first error. */
struct bounce_out {
	struct maildir_file *f;
	int err;
	size_t len;
	char buf[8192];
};

static void
bounce_flush(struct bounce_out *o)
{
	if (o->len && !o->err && maildir_write(o->f, o->buf, o->len) != 0)
		o->err = errno;
	o->len = 0;
}

static void
bounce_put(struct bounce_out *o, const char *p, size_t n)
{
	while (n > 0) {
		if (o->len == sizeof o->buf)
			bounce_flush(o);
		size_t k =
		    sizeof o->buf - o->len < n ? sizeof o->buf - o->len : n;
		memcpy(o->buf + o->len, p, k);
		o->len += k;
		p += k;
		n -= k;
	}
}

static void bounce_printf(struct bounce_out *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
bounce_printf(struct bounce_out *o, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n > 0)
		bounce_put(o, line,
			   (size_t)n < sizeof line ? (size_t)n
						   : sizeof line - 1);
}

static void
bounce_date(char *buf, size_t cap, time_t t)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, cap, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* The failure as "dsn" and "reply" (from message_set_why, if known). */
static void
bounce_why(const struct message *m, size_t i, char *dsn, size_t dsncap,
	   const char **reply)
{
	const char *why = m->why ? m->why[i] : NULL;
	if (!why) {
		snprintf(dsn, dsncap, "5.0.0");
		*reply = "delivery failed (recorded before a restart)";
		return;
	}
	size_t n = strcspn(why, " ");
	snprintf(dsn, dsncap, "%.*s", (int)n, why);
	*reply = why[n] ? why + n + 1 : "";
}

/* Copies the original header, up to its empty line, at most a bound. */
static void
bounce_copy_headers(struct bounce_out *o, const struct message *m, int fd)
{
	char buf[4096];
	off_t off = (off_t)m->env.body_offset;
	size_t copied = 0;
	char prev = '\n';

	while (copied < BOUNCE_HEADERS_MAX) {
		ssize_t n = pread(fd, buf, sizeof buf, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t k = 0; k < n; k++) {
			if (buf[k] == '\n' && prev == '\n') {
				bounce_put(o, buf, (size_t)k);
				return;
			}
			prev = buf[k];
		}
		bounce_put(o, buf, (size_t)n);
		copied += (size_t)n;
		off += n;
	}
	if (prev != '\n')
		bounce_put(o, "\n", 1);
}

static void
bounce_body(struct bounce_out *o, const char *host, const struct message *m,
	    int msg_fd, const char *qid)
{
	char now[64], arrival[64], dsn[16];
	const char *reply;
	bounce_date(now, sizeof now, time(NULL));
	bounce_date(arrival, sizeof arrival, (time_t)(m->queued_ms / 1000));

	bounce_printf(o, "X-Original-From: <>\nX-Original-To: <%s>\n",
		      m->env.from.addr);
	bounce_printf(o, "Received: by %s (sender) id %s; %s\n", host, qid,
		      now);
	bounce_printf(o,
		      "Date: %s\nFrom: Mail Delivery System "
		      "<MAILER-DAEMON@%s>\nTo: <%s>\n",
		      now, host, m->env.from.addr);
	bounce_printf(o,
		      "Subject: Undelivered Mail Returned to Sender\n"
		      "Auto-Submitted: auto-replied\n"
		      "Message-ID: <%s@%s>\nMIME-Version: 1.0\n"
		      "Content-Type: multipart/report; "
		      "report-type=delivery-status;\n"
		      "\tboundary=\"%s/%s\"\n\n"
		      "This is a MIME-encapsulated message.\n\n",
		      qid, host, qid, host);

	bounce_printf(o,
		      "--%s/%s\nContent-Description: Notification\n"
		      "Content-Type: text/plain; charset=utf-8\n\n"
		      "This is the mail system at host %s.\n\n"
		      "Your message could not be delivered to one or more "
		      "recipients.\nIt is attached below.\n\n",
		      qid, host, host);
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		if (m->state[i] != RCPT_FAILED)
			continue;
		bounce_why(m, i, dsn, sizeof dsn, &reply);
		bounce_printf(o, "<%s>: %s\n", m->env.rcpts[i].addr, reply);
	}

	bounce_printf(o,
		      "\n--%s/%s\nContent-Description: Delivery report\n"
		      "Content-Type: message/delivery-status\n\n"
		      "Reporting-MTA: dns; %s\nX-Queue-ID: %s\n"
		      "Arrival-Date: %s\n",
		      qid, host, host, m->queue_id, arrival);
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		if (m->state[i] != RCPT_FAILED)
			continue;
		bounce_why(m, i, dsn, sizeof dsn, &reply);
		bounce_printf(o,
			      "\nFinal-Recipient: %s; %s\nAction: failed\n"
			      "Status: %s\nDiagnostic-Code: smtp; %s\n",
			      m->env.rcpts[i].utf8 ? "utf-8" : "rfc822",
			      m->env.rcpts[i].addr, dsn, reply);
	}

	bounce_printf(o,
		      "\n--%s/%s\nContent-Description: Undelivered "
		      "Message Headers\nContent-Type: text/rfc822-headers\n\n",
		      qid, host);
	bounce_copy_headers(o, m, msg_fd);
	bounce_printf(o, "\n--%s/%s--\n", qid, host);
}

static void
bounce_committed(struct maildir_file *f, int err, void *arg)
{
	(void)f;
	*(int *)arg = err;
}

int
bounce_write(struct maildir *md, const char *hostname, const struct message *m,
	     int msg_fd, char *qid, size_t qidlen)
{
	struct maildir_file f = {.fd = -1};
	struct bounce_out o = {.f = &f};
	int err = 0;

	if (maildir_create(md, &f) != 0)
		return -1;
	bounce_body(&o, hostname, m, msg_fd, f.queue_id);
	bounce_flush(&o);
	if (o.err) {
		maildir_abort(md, &f);
		errno = o.err;
		return -1;
	}
	snprintf(qid, qidlen, "%s", f.queue_id);
	maildir_commit(md, &f, bounce_committed, &err);
	maildir_flush(md); /* durable in new/ before the original goes */
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

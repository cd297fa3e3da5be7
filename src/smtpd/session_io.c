/*
 * session_io: the socket side of a session. Reads into the session's
 * buffer, writes its replies, keeps the loop's interest in step with what
 * the session can take (no read interest while it is stalled, write
 * interest only while output is pending) and closes when it is done.
 *
 * A conn is freed at the end of the loop pass (loop_defer_free), so a
 * callback that closed it earlier in the pass never sees freed memory;
 * `closing` tells late callers (a commit finishing) to leave it alone.
 *
 * TLS (STARTTLS, or at connect on an implicit-TLS listener): a conn is
 * plaintext, in its handshake, or in TLS. Nothing is written during the
 * handshake. OpenSSL may need the other readiness than the operation
 * suggests (a read waiting for the fd to be writable, or the reverse);
 * read_want and write_want record that. Input OpenSSL has already
 * decrypted never makes the fd readable, so a zero-delay timer (`kick`)
 * runs it whenever the session can take input.
 */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "tls.h"

/* TLS reads per readiness before giving other connections a turn. */
#define CONN_TLS_READ_ROUNDS 16

enum conn_mode { CONN_PLAIN, CONN_HANDSHAKE, CONN_TLS };

/* Outcome of one transfer, plaintext or TLS. */
enum conn_xfer {
	CONN_XFER_OK,
	CONN_XFER_AGAIN,
	CONN_XFER_EOF,
	CONN_XFER_ERROR
};

struct conn {
	struct server *srv;
	int fd;
	bool closing;
	enum conn_mode mode;
	struct tls *tls;
	unsigned read_want;  /* TLS: readiness the last read/handshake needs */
	unsigned write_want; /* TLS: readiness the last write needs */
	struct loop_timer kick;
	struct session *s;
	struct conn *prev;
	struct conn *next;
};

static void conn_io(struct loop *, int, unsigned, void *);

static bool
conn_wants_input(const struct conn *c)
{
	size_t space;
	session_read_buf(c->s, &space);
	return space > 0 && session_state(c->s) != SESSION_CLOSED;
}

static void
conn_update(struct conn *c)
{
	size_t outlen;
	unsigned events = 0;
	bool input = conn_wants_input(c);

	session_output(c->s, &outlen);
	if (c->mode == CONN_HANDSHAKE) {
		events = c->read_want;
	} else {
		if (input)
			events |= c->read_want ? c->read_want : LOOP_READ;
		if (outlen > 0)
			events |= c->write_want ? c->write_want : LOOP_WRITE;
	}
	loop_modify(c->srv->loop, c->fd, events);
	if (c->mode == CONN_TLS && input && tls_pending(c->tls))
		loop_timer_arm(c->srv->loop, &c->kick, 0);
}

static void
conn_log_tls_error(struct conn *c, const char *event)
{
	char addr[NET_ADDR_STR_MAX];
	net_addr_host(session_peer(c->s), addr, sizeof addr);
	struct log_line *l = log_begin(c->srv->log, LOG_INFO, event);
	log_uint(l, "conn", session_id(c->s));
	log_str(l, "client", addr);
	log_str(l, "error",
		tls_error(c->tls)[0] ? tls_error(c->tls) : "connection closed");
	log_end(l);
}

/* Maps a TLS result; want records the readiness a retry needs. */
static enum conn_xfer
conn_tls_xfer(struct conn *c, enum tls_result r, unsigned *want)
{
	*want = 0;
	switch (r) {
	case TLS_OK:
		return CONN_XFER_OK;
	case TLS_WANT_READ:
		*want = LOOP_READ;
		return CONN_XFER_AGAIN;
	case TLS_WANT_WRITE:
		*want = LOOP_WRITE;
		return CONN_XFER_AGAIN;
	case TLS_CLOSED:
		return CONN_XFER_EOF;
	default:
		conn_log_tls_error(c, "tls.error");
		return CONN_XFER_ERROR;
	}
}

static enum conn_xfer
conn_recv(struct conn *c, char *buf, size_t cap, size_t *n)
{
	if (c->mode == CONN_TLS)
		return conn_tls_xfer(c, tls_read(c->tls, buf, cap, n),
				     &c->read_want);
	ssize_t r = read(c->fd, buf, cap);
	*n = r > 0 ? (size_t)r : 0;
	if (r > 0)
		return CONN_XFER_OK;
	if (r == 0)
		return CONN_XFER_EOF;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return CONN_XFER_AGAIN;
	return CONN_XFER_ERROR;
}

static enum conn_xfer
conn_send(struct conn *c, const char *buf, size_t len, size_t *n)
{
	if (c->mode == CONN_TLS)
		return conn_tls_xfer(c, tls_write(c->tls, buf, len, n),
				     &c->write_want);
	ssize_t r = send(c->fd, buf, len, MSG_NOSIGNAL);
	*n = r > 0 ? (size_t)r : 0;
	if (r >= 0)
		return CONN_XFER_OK;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return CONN_XFER_AGAIN;
	return CONN_XFER_ERROR;
}

static void conn_start_tls(struct conn *);

/* Writes what the session has; lets it run more input as room frees up. */
static void
conn_flush(struct conn *c)
{
	if (c->mode == CONN_HANDSHAKE) {
		/* A timeout or shutdown ended the session mid-handshake. */
		if (session_state(c->s) == SESSION_CLOSED)
			conn_close(c, "tls handshake not completed");
		return;
	}
	for (int rounds = 0; rounds < 8 && !c->closing; rounds++) {
		size_t len, n;
		const char *out = session_output(c->s, &len);
		if (len == 0)
			break;
		enum conn_xfer r = conn_send(c, out, len, &n);
		if (r == CONN_XFER_AGAIN)
			break;
		if (r != CONN_XFER_OK) {
			session_eof(c->s);
			conn_close(c, "write error");
			return;
		}
		session_output_done(c->s, n);
		if (n < len)
			break;
		session_resume(c->s);
	}
	if (c->closing)
		return;
	size_t left;
	session_output(c->s, &left);
	if (session_done(c->s))
		conn_close(c, NULL);
	else if (left == 0 && c->mode == CONN_PLAIN &&
		 session_starting_tls(c->s))
		conn_start_tls(c); /* the 220 is out: RFC 3207 4.2 */
	else
		conn_update(c);
}

static void
conn_read(struct conn *c)
{
	for (int i = 0; i < CONN_TLS_READ_ROUNDS && !c->closing; i++) {
		size_t space, n;
		char *buf = session_read_buf(c->s, &space);
		if (space == 0 || session_state(c->s) == SESSION_CLOSED)
			return;
		enum conn_xfer r = conn_recv(c, buf, space, &n);
		if (r == CONN_XFER_AGAIN)
			return;
		if (r != CONN_XFER_OK) {
			session_eof(c->s);
			if (session_state(c->s) == SESSION_CLOSED)
				conn_close(c, r == CONN_XFER_EOF
						  ? "client closed"
						  : "read error");
			else
				conn_update(c); /* a commit is pending */
			return;
		}
		session_received(c->s, n);
		/* Plaintext: one read per readiness. TLS: go on while
		 * OpenSSL holds input the fd will not announce. */
		if (c->mode != CONN_TLS || !tls_pending(c->tls))
			return;
	}
}

static void
conn_handshake(struct conn *c)
{
	enum tls_result r = tls_handshake(c->tls);
	if (r == TLS_WANT_READ || r == TLS_WANT_WRITE) {
		c->read_want = r == TLS_WANT_READ ? LOOP_READ : LOOP_WRITE;
		conn_update(c);
		return;
	}
	if (r != TLS_OK) {
		conn_log_tls_error(c, "tls.handshake_failed");
		session_eof(c->s);
		conn_close(c, "tls handshake failed");
		return;
	}
	struct session_tls info = {0};
	snprintf(info.version, sizeof info.version, "%s", tls_version(c->tls));
	snprintf(info.cipher, sizeof info.cipher, "%s", tls_cipher(c->tls));
	info.bits = tls_cipher_bits(c->tls, &info.alg_bits);
	c->mode = CONN_TLS;
	c->read_want = c->write_want = 0;
	session_tls_started(c->s, &info);
	conn_flush(c); /* on an implicit-TLS listener: the greeting */
}

static void
conn_start_tls(struct conn *c)
{
	c->tls = tls_new(c->srv->tls, c->fd);
	if (!c->tls) {
		session_eof(c->s);
		conn_close(c, "tls: out of memory");
		return;
	}
	c->mode = CONN_HANDSHAKE;
	c->read_want = c->write_want = 0;
	conn_handshake(c);
}

static void
conn_io(struct loop *loop, int fd, unsigned events, void *arg)
{
	struct conn *c = arg;
	(void)loop;
	(void)fd;
	if (c->closing)
		return;
	if (c->mode == CONN_HANDSHAKE) {
		conn_handshake(c);
		return;
	}
	/* A TLS read may be waiting for writability: try it on any event. */
	if ((events & LOOP_READ) || c->mode == CONN_TLS)
		conn_read(c);
	if (!c->closing)
		conn_flush(c);
}

/* Runs input OpenSSL holds already (see the top of the file). */
static void
conn_kick(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct conn *c = arg;
	(void)t;
	if (!c->closing)
		conn_io(loop, c->fd, LOOP_READ, c);
}

/* session_ctx.wake: output or a close came from a timer or a commit. */
static void
conn_wake(struct session *s, void *arg)
{
	struct conn *c = session_owner(s);
	(void)arg;
	if (c && !c->closing)
		conn_flush(c);
}

static void
conn_free(void *p)
{
	struct conn *c = p;
	session_free(c->s);
	free(c);
}

struct conn *
conn_open(struct server *srv, int fd, const struct sockaddr *peer,
	  socklen_t peerlen, const struct smtpd_listener *li)
{
	bool implicit_tls = li->tls == SMTPD_TLS_IMPLICIT;
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	srv->ctx.wake = conn_wake;
	c->srv = srv;
	c->fd = fd;
	loop_timer_init(&c->kick, conn_kick, c);
	c->s = session_new(&srv->ctx, ++srv->next_conn_id, peer, peerlen);
	if (!c->s || loop_watch(srv->loop, fd, LOOP_READ, conn_io, c) != 0) {
		session_free(c->s);
		free(c);
		return NULL;
	}
	session_set_owner(c->s, c);
	session_set_listener(c->s, li);
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	srv->nconns++;
	srv->ctx.stats.connections++;

	char addr[NET_ADDR_STR_MAX];
	net_addr_host(peer, addr, sizeof addr);
	struct log_line *l = log_begin(srv->log, LOG_INFO, "conn.open");
	log_uint(l, "conn", session_id(c->s));
	log_str(l, "client", addr);
	log_str(l, "listener", li->address);
	log_str(l, "role", smtpd_role_name(li->role));
	log_str(l, "tls", smtpd_listen_tls_name(li->tls));
	log_end(l);
	if (implicit_tls)
		conn_start_tls(c); /* RFC 8314 3.3: TLS before the greeting */
	else
		conn_flush(c); /* the greeting */
	return c;
}

void
conn_close(struct conn *c, const char *reason)
{
	struct server *srv = c->srv;
	if (c->closing)
		return;
	c->closing = true;
	char addr[NET_ADDR_STR_MAX];
	net_addr_host(session_peer(c->s), addr, sizeof addr);
	struct log_line *l = log_begin(srv->log, LOG_INFO, "conn.close");
	log_uint(l, "conn", session_id(c->s));
	log_str(l, "client", addr);
	log_uint(l, "msgs", session_msgs(c->s));
	if (reason)
		log_str(l, "reason", reason);
	log_end(l);

	loop_timer_disarm(srv->loop, &c->kick);
	if (c->tls) {
		tls_close_notify(c->tls);
		tls_free(c->tls);
		c->tls = NULL;
	}
	loop_unwatch(srv->loop, c->fd);
	close(c->fd);
	c->fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nconns--;
	loop_defer_free(srv->loop, conn_free, c);
	server_conn_closed(srv);
}

size_t
conn_count_host(const struct server *srv, const struct sockaddr *peer)
{
	size_t n = 0;
	for (const struct conn *c = srv->conns; c; c = c->next)
		if (net_same_host(session_peer(c->s), peer))
			n++;
	return n;
}

void
server_each_shutdown(struct server *srv)
{
	struct conn *next;
	for (struct conn *c = srv->conns; c; c = next) {
		next = c->next;
		session_shutdown(c->s);
	}
}

void
server_each_close(struct server *srv)
{
	struct conn *next;
	for (struct conn *c = srv->conns; c; c = next) {
		next = c->next;
		session_eof(c->s);
		conn_close(c, "shutdown");
	}
}

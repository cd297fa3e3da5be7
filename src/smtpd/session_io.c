/*
 * session_io: the socket side of a session. Reads into the session's
 * buffer, writes its replies, keeps the loop's interest in step with what
 * the session can take (no read interest while it is stalled, write
 * interest only while output is pending) and closes when it is done.
 *
 * A conn is freed at the end of the loop pass (loop_defer_free), so a
 * callback that closed it earlier in the pass never sees freed memory;
 * `closing` tells late callers (a commit finishing) to leave it alone.
 */
#include "server.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

struct conn {
	struct server *srv;
	int fd;
	bool closing;
	struct session *s;
	struct conn *prev;
	struct conn *next;
};

static void conn_io(struct loop *, int, unsigned, void *);

static void
conn_update(struct conn *c)
{
	size_t space, outlen;
	unsigned events = 0;

	session_read_buf(c->s, &space);
	session_output(c->s, &outlen);
	if (space > 0 && session_state(c->s) != SESSION_CLOSED)
		events |= LOOP_READ;
	if (outlen > 0)
		events |= LOOP_WRITE;
	loop_modify(c->srv->loop, c->fd, events);
}

/* Writes what the session has; lets it run more input as room frees up. */
static void
conn_flush(struct conn *c)
{
	for (int rounds = 0; rounds < 8 && !c->closing; rounds++) {
		size_t len;
		const char *out = session_output(c->s, &len);
		if (len == 0)
			break;
		ssize_t n = send(c->fd, out, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR)
				break;
			session_eof(c->s);
			conn_close(c, "write error");
			return;
		}
		session_output_done(c->s, (size_t)n);
		if ((size_t)n < len)
			break;
		session_resume(c->s);
	}
	if (c->closing)
		return;
	if (session_done(c->s))
		conn_close(c, NULL);
	else
		conn_update(c);
}

static void
conn_read(struct conn *c)
{
	size_t space;
	char *buf = session_read_buf(c->s, &space);
	if (space == 0)
		return;
	ssize_t n = read(c->fd, buf, space);
	if (n < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		session_eof(c->s);
		if (session_state(c->s) == SESSION_CLOSED)
			conn_close(c, n == 0 ? "client closed" : "read error");
		else
			conn_update(c); /* a commit is pending; it closes */
		return;
	}
	session_received(c->s, (size_t)n);
}

static void
conn_io(struct loop *loop, int fd, unsigned events, void *arg)
{
	struct conn *c = arg;
	(void)loop;
	(void)fd;
	if (c->closing)
		return;
	if (events & LOOP_READ)
		conn_read(c);
	if (!c->closing)
		conn_flush(c);
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
	  socklen_t peerlen)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	srv->ctx.wake = conn_wake;
	c->srv = srv;
	c->fd = fd;
	c->s = session_new(&srv->ctx, ++srv->next_conn_id, peer, peerlen);
	if (!c->s || loop_watch(srv->loop, fd, LOOP_READ, conn_io, c) != 0) {
		session_free(c->s);
		free(c);
		return NULL;
	}
	session_set_owner(c->s, c);
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
	log_end(l);
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

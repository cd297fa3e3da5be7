/*
 * client_io: the socket side of an MX session. Tries the host's addresses
 * in turn (RFC 5321 5.1; the next MX host is the sender's failover),
 * connects without blocking, reads replies into smtp_reply_parse and
 * writes what the protocol side queued, all on the one loop.
 *
 * Ending a session: a job in flight whose recipients have no outcome yet
 * goes back to the head of the queue. When this session delivered
 * something (the server just capped us: "421 too many messages") the
 * queue gets a new session; when it failed before delivering anything,
 * every job moves on to its next MX host or is deferred, instead of
 * reconnecting in a tight loop.
 *
 * TLS (RFC 3207; the handshake is in client_tls.c): once it is up, every
 * byte goes through the tls object. Plaintext received behind the 220 is
 * discarded, never read as if it came inside TLS. OpenSSL may hold
 * decrypted bytes the fd does not show as readable, so a read goes on
 * while tls_pending() says so.
 */
#include "client_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sender_config.h"

static void client_io(struct loop *, int, unsigned, void *);
static void client_resolve(struct client *);

void
client_log_session(struct client *c, const char *event)
{
	struct log_line *l = log_begin(c->snd->log, LOG_INFO, event);
	log_str(l, "mx", c->q->key);
	log_str(l, "relay", c->relay);
	if (strcmp(event, "session.open") == 0) {
		log_bool(l, "pipelining", c->pipelining);
		log_bool(l, "tls", c->tls != NULL);
		if (c->tls) {
			log_str(l, "tls_version", tls_version(c->tls));
			log_str(l, "tls_cipher", tls_cipher(c->tls));
			log_bool(l, "tls_verified", c->tls_verified);
		}
	} else {
		log_uint(l, "msgs", c->msgs);
	}
	log_end(l);
}

int
client_send(struct client *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(c->out + c->out_len, CLIENT_OUT_MAX - c->out_len, fmt,
			  ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= CLIENT_OUT_MAX - c->out_len)
		return -1; /* cannot happen: commands are small, data waits */
	c->out_len += (size_t)n;
	return 0;
}

static void
client_timeout(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct client *c = arg;
	char why[96];
	(void)loop;
	(void)t;
	snprintf(why, sizeof why, "timeout in state %s",
		 client_state_name(c->state));
	if (c->state <= CLIENT_GREETING)
		client_next_address(c, why);
	else if (c->state == CLIENT_TLS)
		client_tls_failed(c, why);
	else
		client_close(c, why);
}

static void
client_linger_done(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct client *c = arg;
	(void)loop;
	(void)t;
	if (c->state != CLIENT_IDLE)
		return;
	client_send(c, "QUIT\r\n");
	client_enter_state(c, CLIENT_QUIT);
	client_arm(c, c->snd->cfg->timeout_mail);
	client_flush(c);
}

void
client_arm(struct client *c, uint64_t ms)
{
	loop_timer_arm(c->snd->loop, &c->timer, ms);
}

void
client_drop_socket(struct client *c)
{
	c->conn_gen++;
	client_tls_drop(c);
	if (c->fd >= 0) {
		loop_unwatch(c->snd->loop, c->fd);
		close(c->fd);
		c->fd = -1;
	}
	c->in_len = c->out_len = 0;
}

static void
client_free(void *p)
{
	struct client *c = p;
	tls_free(c->tls);
	free(c->out);
	free(c);
}

/*
 * The host failed a policy (TLS required): its jobs go to their next MX
 * host, or are deferred with dsn rather than the generic 4.4.1.
 */
static void
client_defer_queue(struct client *c, const char *dsn, const char *why)
{
	struct job *j;
	while ((j = mxq_pop(c->q)) != NULL) {
		if (j->hop + 1 < j->route->nhosts) {
			j->hop++; /* RFC 5321 5.1: the next MX host */
			sender_route_job(c->snd, j);
			continue;
		}
		for (size_t k = 0; k < j->n; k++)
			sender_outcome(c->snd, j, k, DELIVERY_DEFERRED, dsn,
				       why, c->relay, c->q->key);
		sender_job_done(c->snd, j);
	}
}

void
client_policy_fail(struct client *c, const char *dsn, const char *why)
{
	c->fail_dsn = dsn;
	client_next_address(c, why);
}

void
client_close(struct client *c, const char *why)
{
	struct sender *snd = c->snd;
	if (c->closing)
		return;
	c->closing = true;
	loop_timer_disarm(snd->loop, &c->timer);
	loop_timer_disarm(snd->loop, &c->linger);
	if (c->state > CLIENT_GREETING)
		client_log_session(c, "session.close");
	client_drop_socket(c);
	if (c->job) {
		/* outcomes already reported stay; an untouched job goes again
		 */
		struct job *j = c->job;
		bool untouched = true;
		for (size_t k = 0; k < j->n; k++)
			if (c->rcpt[k] == CLIENT_RCPT_DONE)
				untouched = false;
		if (untouched && !snd->stopping) {
			c->job = NULL;
			free(c->rcpt);
			c->rcpt = NULL;
			mxq_push_front(c->q, j);
		} else {
			client_settle_job(c, DELIVERY_DEFERRED, "4.4.2",
					  why ? why : "connection closed");
		}
		client_end_job(c);
	}
	c->q->client = NULL;
	snd->clients--;
	c->state = CLIENT_CLOSED;
	if (why && !c->progress && !snd->stopping && c->last_dsn)
		client_defer_queue(c, c->last_dsn, why);
	/* A session that failed before delivering anything: this host is
	 * no good for now. (A clean QUIT has why == NULL; jobs queued while
	 * it was closing simply get a new session.) Not so when the last
	 * address fell short of a TLS level (last_dsn): that was the jobs'
	 * need, and mail of other domains, at other levels, still goes. */
	if (why && !c->progress && !snd->stopping && !c->last_dsn)
		sender_host_failed(snd, c->q, why);
	if (snd->stopping || (why && !c->progress))
		sender_failover(snd, c->q, why ? why : "sender shutting down");
	loop_defer_free(snd->loop, client_free, c);
	sender_client_closed(snd, c->q);
}

/* Tries the next address, then the next host; at the end, gives up. */
void
client_next_address(struct client *c, const char *why)
{
	snprintf(c->last_error, sizeof c->last_error, "%s: %.250s", c->relay,
		 why);
	c->last_dsn = c->fail_dsn;
	c->fail_dsn = NULL;
	struct log_line *l = log_begin(c->snd->log, LOG_INFO, "session.fail");
	log_str(l, "mx", c->q->key);
	log_str(l, "relay", c->relay);
	log_str(l, "reason", why);
	log_end(l);
	client_drop_socket(c);
	if (++c->addr < c->naddrs) {
		client_resolve(c); /* connects to addrs[addr] */
		return;
	}
	client_close(c, c->last_error);
}

void
client_connect(struct client *c)
{
	struct sockaddr_storage *ss = &c->addrs[c->addr];
	char addr[NET_ADDR_STR_MAX];
	socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						  : sizeof(struct sockaddr_in);
	if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons(c->q->port);
	else
		((struct sockaddr_in *)ss)->sin_port = htons(c->q->port);
	net_addr_host((struct sockaddr *)ss, addr, sizeof addr);
	c->last_dsn = NULL;
	c->tls_tried = false;
	if (!c->tls_off) /* a plaintext retry keeps why it is one */
		client_tls_gap(c, CLIENT_TLS_GAP_NONE, "");
	snprintf(c->relay, sizeof c->relay, "%.255s[%.63s]:%u", c->q->key, addr,
		 (unsigned)c->q->port);

	c->fd = socket(ss->ss_family,
		       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		client_next_address(c, strerror(errno));
		return;
	}
	if (connect(c->fd, (struct sockaddr *)ss, len) != 0 &&
	    errno != EINPROGRESS) {
		client_next_address(c, strerror(errno));
		return;
	}
	if (loop_watch(c->snd->loop, c->fd, LOOP_WRITE, client_io, c) != 0) {
		client_next_address(c, strerror(errno));
		return;
	}
	client_enter_state(c, CLIENT_CONNECTING);
	client_arm(c, c->snd->cfg->timeout_connect);
}

static void
client_resolved(void *arg, enum dns_status st,
		const struct sockaddr_storage *addrs, size_t n, uint32_t ttl)
{
	struct client *c = arg;
	(void)ttl;
	if (c->closing)
		return;
	if (st != DNS_OK || n == 0) {
		snprintf(c->relay, sizeof c->relay, "%s", c->q->key);
		client_next_address(c, st == DNS_TEMPFAIL
					   ? "host lookup failed"
					   : "host has no address");
		return;
	}
	c->naddrs = n < DNS_ADDR_MAX ? n : DNS_ADDR_MAX;
	memcpy(c->addrs, addrs, c->naddrs * sizeof *addrs);
	c->addr = 0;
	client_connect(c);
}

/* Resolves the current host unless its addresses are already known. */
static void
client_resolve(struct client *c)
{
	if (c->naddrs > 0) {
		client_connect(c);
		return;
	}
	const char *name = c->q->key;
	char buf[NET_ADDR_STR_MAX + 8];
	struct sockaddr_storage ss;
	socklen_t len;
	/* A numeric host (smarthost, address literal) needs no lookup. */
	snprintf(buf, sizeof buf, strchr(name, ':') ? "[%s]:1" : "%s:1", name);
	if (net_parse_hostport(buf, &ss, &len) == 0) {
		c->addrs[0] = ss;
		c->naddrs = 1;
		c->addr = 0;
		client_connect(c);
		return;
	}
	client_enter_state(c, CLIENT_RESOLVING);
	if (dns_query_addr(c->snd->dns, name, client_resolved, c) != 0)
		client_next_address(c, "cannot start host lookup");
}

/* Writes some of out: the count, 0 when the socket is full, -1 when the
 * connection failed (why filled in). */
static ssize_t
client_write(struct client *c, char *why, size_t cap)
{
	if (c->tls) {
		size_t n;
		enum tls_result r = tls_write(c->tls, c->out, c->out_len, &n);
		if (r == TLS_OK)
			return (ssize_t)n;
		if (r == TLS_WANT_READ || r == TLS_WANT_WRITE)
			return 0; /* READ is always watched; WRITE while out */
		snprintf(why, cap, "TLS write failed: %s",
			 r == TLS_CLOSED ? "connection closed by server"
					 : tls_error(c->tls));
		return -1;
	}
	for (;;) {
		ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
		if (n >= 0)
			return n;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		if (errno != EINTR) {
			snprintf(why, cap, "%s", strerror(errno));
			return -1;
		}
	}
}

void
client_flush(struct client *c)
{
	char why[TLS_ERR_MAX + 32];

	while (!c->closing && c->fd >= 0 && c->out_len > 0) {
		ssize_t n = client_write(c, why, sizeof why);
		if (n < 0) {
			client_close(c, why);
			return;
		}
		if (n == 0)
			break;
		memmove(c->out, c->out + n, c->out_len - (size_t)n);
		c->out_len -= (size_t)n;
		if (c->state == CLIENT_BODY) {
			client_arm(c, c->snd->cfg->timeout_data_block);
			client_fill_body(c);
		}
	}
	if (c->closing || c->fd < 0 || c->state == CLIENT_TLS)
		return;
	bool w = c->out_len > 0 || c->tls_read_wants_write;
	loop_modify(c->snd->loop, c->fd, LOOP_READ | (w ? LOOP_WRITE : 0));
}

/* Reads into in: 1 with bytes, 0 with none for now, -1 when the
 * connection is over (why filled in). */
static int
client_recv(struct client *c, char *why, size_t cap)
{
	size_t room = sizeof c->in - c->in_len;
	if (c->tls) {
		size_t n;
		enum tls_result r =
		    tls_read(c->tls, c->in + c->in_len, room, &n);
		c->tls_read_wants_write = r == TLS_WANT_WRITE;
		if (r == TLS_OK) {
			c->in_len += n;
			return 1;
		}
		if (r == TLS_WANT_READ || r == TLS_WANT_WRITE)
			return 0;
		snprintf(why, cap, "%s",
			 r == TLS_CLOSED ? "connection closed by server"
					 : tls_error(c->tls));
		return -1;
	}
	ssize_t n = read(c->fd, c->in + c->in_len, room);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		snprintf(why, cap, "%s",
			 n == 0 ? "connection closed by server"
				: strerror(errno));
		return -1;
	}
	c->in_len += (size_t)n;
	return 1;
}

/* Hands every complete reply in to the protocol side. Stops when the
 * connection it was read on is gone or TLS is about to start. */
static void
client_parse(struct client *c)
{
	unsigned gen = c->conn_gen;
	size_t pos = 0;
	while (!c->closing && c->conn_gen == gen && c->state != CLIENT_TLS) {
		struct smtp_reply r;
		size_t used;
		enum smtp_reply_status st =
		    smtp_reply_parse(c->in + pos, c->in_len - pos, &r, &used);
		if (st == SMTP_REPLY_INCOMPLETE)
			break;
		if (st != SMTP_REPLY_OK) {
			client_close(c, "malformed reply from server");
			return;
		}
		pos += used;
		client_on_reply(c, &r);
	}
	if (c->closing || c->conn_gen != gen)
		return;
	memmove(c->in, c->in + pos, c->in_len - pos);
	c->in_len -= pos;
	if (c->in_len == sizeof c->in)
		client_close(c, "reply too long");
}

static void
client_read(struct client *c)
{
	char why[TLS_ERR_MAX + 32];
	unsigned gen = c->conn_gen;
	do {
		int got = client_recv(c, why, sizeof why);
		if (got == 0)
			return;
		if (got < 0) {
			if (c->state == CLIENT_GREETING)
				client_next_address(c, why);
			else
				client_close(c, c->state == CLIENT_QUIT ? NULL
									: why);
			return;
		}
		client_parse(c);
		if (c->closing || c->conn_gen != gen)
			return;
		if (c->state == CLIENT_TLS) {
			/* RFC 3207 5: nothing sent before TLS is trusted
			 * inside it. */
			c->in_len = 0;
			client_handshake(c);
			return;
		}
	} while (c->tls && tls_pending(c->tls));
}

static void
client_io(struct loop *loop, int fd, unsigned events, void *arg)
{
	struct client *c = arg;
	(void)loop;
	(void)fd;
	if (c->closing)
		return;
	if (c->state == CLIENT_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof err;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err) {
			client_next_address(c, strerror(err));
			return;
		}
		loop_modify(c->snd->loop, c->fd, LOOP_READ);
		client_connected(c);
		return;
	}
	if (c->state == CLIENT_TLS) {
		client_handshake(c);
		return;
	}
	/* A TLS read may wait on writability, a TLS write on readability. */
	if ((events & LOOP_READ) || c->tls)
		client_read(c);
	if (!c->closing && c->fd >= 0 && c->state != CLIENT_TLS)
		client_flush(c);
}

struct client *
client_start(struct sender *snd, struct mxq *q)
{
	struct client *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->out = malloc(CLIENT_OUT_MAX);
	if (!c->out) {
		free(c);
		return NULL;
	}
	c->snd = snd;
	c->q = q;
	c->tls_mode = snd->cfg->tls_mode; /* until EHLO: client_tls_plan */
	c->fd = -1;
	c->body_fd = -1;
	loop_timer_init(&c->timer, client_timeout, c);
	loop_timer_init(&c->linger, client_linger_done, c);
	q->client = c;
	snd->clients++;
	snprintf(c->relay, sizeof c->relay, "%s", q->key);
	client_resolve(c);
	return c;
}

void
client_kick(struct client *c)
{
	if (c->state == CLIENT_IDLE && !c->job && !c->closing) {
		loop_timer_disarm(c->snd->loop, &c->linger);
		client_next_job(c);
		client_flush(c);
	}
}

void
client_stop(struct client *c, bool force)
{
	if (c->closing)
		return;
	if (force) {
		client_close(c, "shutting down");
	} else if (c->state == CLIENT_IDLE) {
		loop_timer_disarm(c->snd->loop, &c->linger);
		client_send(c, "QUIT\r\n");
		client_enter_state(c, CLIENT_QUIT);
		client_arm(c, 2000);
		client_flush(c);
	} else if (c->state < CLIENT_IDLE) {
		client_close(c, "shutting down");
	}
	/* in a transaction: it finishes, then next_job sees stopping */
}

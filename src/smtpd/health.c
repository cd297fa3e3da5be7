/*
 * health: see health.h.
 */
#include "health.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"
#include "smtpd_config.h"
#include "tls.h"

/* A wildcard listen address is checked through loopback. */
static void
health_target(struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		if (sin->sin_addr.s_addr == htonl(INADDR_ANY))
			sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (ss->ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		if (memcmp(&sin6->sin6_addr, &in6addr_any,
			   sizeof in6addr_any) == 0)
			sin6->sin6_addr = in6addr_loopback;
	}
}

/* A connection to our own listener, plaintext or (implicit) TLS. */
struct health_conn {
	int fd;
	struct tls *tls; /* NULL: plaintext */
	const char *addr;
};

static int
health_wait(int fd, short events)
{
	struct pollfd p = {.fd = fd, .events = events};
	int n;
	do
		n = poll(&p, 1, HEALTH_TIMEOUT_MS);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		errno = ETIMEDOUT;
	return n > 0 ? 0 : -1;
}

/* Waits for what a TLS call asked for; -1 on any other result. */
static int
health_tls_wait(struct health_conn *c, enum tls_result r)
{
	if (r == TLS_WANT_READ)
		return health_wait(c->fd, POLLIN);
	if (r == TLS_WANT_WRITE)
		return health_wait(c->fd, POLLOUT);
	errno = EPROTO;
	return -1;
}

/* Up to cap bytes; 0 at EOF, -1 on error or timeout. */
static ssize_t
health_recv(struct health_conn *c, char *buf, size_t cap)
{
	if (!c->tls) {
		if (health_wait(c->fd, POLLIN) != 0)
			return -1;
		return read(c->fd, buf, cap);
	}
	for (;;) {
		size_t n;
		enum tls_result r = tls_read(c->tls, buf, cap, &n);
		if (r == TLS_OK)
			return (ssize_t)n;
		if (r == TLS_CLOSED)
			return 0;
		if (health_tls_wait(c, r) != 0)
			return -1;
	}
}

static void
health_send(struct health_conn *c, const char *buf, size_t len)
{
	size_t n;
	if (!c->tls) {
		(void)!send(c->fd, buf, len, MSG_NOSIGNAL);
		return;
	}
	for (;;) {
		enum tls_result r = tls_write(c->tls, buf, len, &n);
		if (r == TLS_OK && n == len)
			return;
		if (r == TLS_OK) {
			buf += n;
			len -= n;
		} else if (health_tls_wait(c, r) != 0) {
			return;
		}
	}
}

/* Reads one whole reply (last line "NNN "); returns its code or -1. */
static int
health_read_reply(struct health_conn *c)
{
	char buf[1024];
	size_t len = 0;

	while (len < sizeof buf - 1) {
		ssize_t n = health_recv(c, buf + len, sizeof buf - 1 - len);
		if (n <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = '\0';
		/* find the start of the last complete line */
		char *end = strstr(buf, "\r\n");
		char *line = buf;
		while (end) {
			if (end - line >= 4 && line[3] == ' ')
				return (line[0] - '0') * 100 +
				       (line[1] - '0') * 10 + (line[2] - '0');
			line = end + 2;
			end = strstr(line, "\r\n");
		}
	}
	return -1;
}

/* The first plaintext listener; an implicit-TLS one only when all are. */
static const struct smtpd_listener *
health_listener(const struct smtpd_config *cfg)
{
	for (size_t i = 0; i < cfg->nlisteners; i++)
		if (cfg->listeners[i].tls != SMTPD_TLS_IMPLICIT)
			return &cfg->listeners[i];
	return &cfg->listeners[0];
}

static int
health_connect(struct health_conn *c, const struct smtpd_listener *li)
{
	struct sockaddr_storage ss = li->addr;

	health_target(&ss);
	c->fd =
	    socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fprintf(stderr, "health: socket: %s\n", strerror(errno));
		return -1;
	}
	int rc = connect(c->fd, (struct sockaddr *)&ss, li->addrlen);
	if (rc != 0 && errno == EINPROGRESS &&
	    health_wait(c->fd, POLLOUT) == 0) {
		int soerr = 0;
		socklen_t sl = sizeof soerr;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		errno = soerr;
		rc = soerr ? -1 : 0;
	}
	if (rc != 0) {
		fprintf(stderr, "health: connect %s: %s\n", c->addr,
			strerror(errno));
		return -1;
	}
	return 0;
}

/* RFC 8314 3.3: on an implicit-TLS listener the handshake comes first.
 * Our own certificate is not checked: this asks "does it answer". */
static int
health_handshake(struct health_conn *c, struct tls_ctx **ctx)
{
	char err[TLS_ERR_MAX];
	enum tls_result r;

	signal(SIGPIPE, SIG_IGN); /* OpenSSL writes with write() */
	*ctx = tls_ctx_client(err, sizeof err);
	if (!*ctx || !(c->tls = tls_new(*ctx, c->fd))) {
		fprintf(stderr, "health: tls: %s\n",
			*ctx ? "out of memory" : err);
		return -1;
	}
	while ((r = tls_handshake(c->tls)) != TLS_OK) {
		if (health_tls_wait(c, r) != 0) {
			fprintf(stderr, "health: %s: tls handshake: %s\n",
				c->addr,
				tls_error(c->tls)[0] ? tls_error(c->tls)
						     : strerror(errno));
			return -1;
		}
	}
	return 0;
}

int
health_check(const struct smtpd_config *cfg)
{
	const struct smtpd_listener *li = health_listener(cfg);
	struct health_conn c = {.fd = -1, .addr = li->address};
	struct tls_ctx *ctx = NULL;
	int rc = 1;

	if (health_connect(&c, li) != 0 ||
	    (li->tls == SMTPD_TLS_IMPLICIT && health_handshake(&c, &ctx) != 0))
		goto out;
	int code = health_read_reply(&c);
	if (code != 220) {
		fprintf(stderr, "health: %s: expected 220 greeting, got %d\n",
			c.addr, code);
		goto out;
	}
	static const char quit[] = "QUIT\r\n";
	health_send(&c, quit, sizeof quit - 1);
	code = health_read_reply(&c);
	if (code != 221) {
		fprintf(stderr, "health: %s: QUIT answered %d\n", c.addr, code);
		goto out;
	}
	rc = 0;
out:
	if (c.tls) {
		tls_close_notify(c.tls);
		tls_free(c.tls);
	}
	tls_ctx_free(ctx);
	if (c.fd >= 0)
		close(c.fd);
	return rc;
}

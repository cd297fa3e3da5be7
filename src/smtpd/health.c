/*
 * health: see health.h.
 */
#include "health.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"
#include "smtpd_config.h"

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

/* Reads one whole reply (last line "NNN "); returns its code or -1. */
static int
health_read_reply(int fd)
{
	char buf[1024];
	size_t len = 0;

	while (len < sizeof buf - 1) {
		if (health_wait(fd, POLLIN) != 0)
			return -1;
		ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
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

int
health_check(const struct smtpd_config *cfg)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const char *addr = cfg->listen.items[0];

	if (net_parse_hostport(addr, &ss, &len) != 0) {
		fprintf(stderr, "health: bad listen address '%s'\n", addr);
		return 1;
	}
	health_target(&ss);
	int fd =
	    socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "health: socket: %s\n", strerror(errno));
		return 1;
	}
	int rc = connect(fd, (struct sockaddr *)&ss, len);
	if (rc != 0 && errno == EINPROGRESS && health_wait(fd, POLLOUT) == 0) {
		int soerr = 0;
		socklen_t sl = sizeof soerr;
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		errno = soerr;
		rc = soerr ? -1 : 0;
	}
	if (rc != 0) {
		fprintf(stderr, "health: connect %s: %s\n", addr,
			strerror(errno));
		close(fd);
		return 1;
	}
	int code = health_read_reply(fd);
	if (code != 220) {
		fprintf(stderr, "health: %s: expected 220 greeting, got %d\n",
			addr, code);
		close(fd);
		return 1;
	}
	static const char quit[] = "QUIT\r\n";
	(void)!send(fd, quit, sizeof quit - 1, MSG_NOSIGNAL);
	code = health_read_reply(fd);
	close(fd);
	if (code != 221) {
		fprintf(stderr, "health: %s: QUIT answered %d\n", addr, code);
		return 1;
	}
	return 0;
}

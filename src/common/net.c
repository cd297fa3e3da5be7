/*
 * net: socket addresses, listening sockets and CIDR networks, see net.h.
 *
 * Owns nothing: pure parsers and formatters over caller buffers plus thin
 * wrappers around socket syscalls. Addresses are numeric only (inet_pton /
 * inet_ntop); nothing here resolves names, so nothing here can block.
 *
 * IPv4-mapped IPv6 addresses (::ffff:a.b.c.d, RFC 4291 2.5.5.2) are how an
 * IPv4 peer looks on a dual-stack socket; they are shown, compared and
 * matched against IPv4 networks as the IPv4 address they carry. An AF_INET
 * peer never matches an AF_INET6 network (Postfix mynetworks semantics).
 */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Longest numeric host we accept, with room for the NUL. */
#define NET_HOST_MAX INET6_ADDRSTRLEN

/* A peer or network address reduced to family + raw bytes. */
struct net_raw {
	int family;
	const unsigned char *bytes; /* 4 or 16 bytes */
};

/*
 * Parses a decimal number of 1..maxdigits digits, no sign, no spaces, the
 * whole string. Returns 0 and *out, or -1.
 */
static int
net_parse_uint(const char *s, size_t maxdigits, unsigned long max,
	       unsigned long *out)
{
	unsigned long v = 0;
	size_t n = 0;
	for (; s[n]; n++) {
		if (s[n] < '0' || s[n] > '9' || n >= maxdigits)
			return -1;
		v = v * 10 + (unsigned long)(s[n] - '0');
	}
	if (n == 0 || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Copies s[0..len) into a NUL-terminated buffer of cap bytes, or -1. */
static int
net_copy(char *dst, size_t cap, const char *s, size_t len)
{
	if (len >= cap)
		return -1;
	memcpy(dst, s, len);
	dst[len] = '\0';
	return 0;
}

static int
net_fill_in6(const char *host, unsigned long port, struct sockaddr_storage *out,
	     socklen_t *outlen)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
	memset(out, 0, sizeof *out);
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
		return -1;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons((uint16_t)port);
	if (outlen)
		*outlen = sizeof *sin6;
	return 0;
}

static int
net_fill_in4(const char *host, unsigned long port, struct sockaddr_storage *out,
	     socklen_t *outlen)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)out;
	memset(out, 0, sizeof *out);
	if (host[0] == '\0' || strcmp(host, "*") == 0)
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		return -1;
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	if (outlen)
		*outlen = sizeof *sin;
	return 0;
}

int
net_parse_hostport(const char *s, struct sockaddr_storage *out,
		   socklen_t *outlen)
{
	char host[NET_HOST_MAX];
	unsigned long port;
	if (!s || !out)
		return -1;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':' ||
		    net_copy(host, sizeof host, s + 1, (size_t)(end - s - 1)) ||
		    net_parse_uint(end + 2, 5, 65535, &port) || port == 0)
			return -1;
		return net_fill_in6(host, port, out, outlen);
	}
	const char *colon = strchr(s, ':');
	/* exactly one colon: a bare IPv6 address needs brackets */
	if (!colon || strchr(colon + 1, ':') ||
	    net_copy(host, sizeof host, s, (size_t)(colon - s)) ||
	    net_parse_uint(colon + 1, 5, 65535, &port) || port == 0)
		return -1;
	return net_fill_in4(host, port, out, outlen);
}

/* Family and address bytes of sa, IPv4-mapped IPv6 reduced to IPv4. */
static int
net_raw_of(const struct sockaddr *sa, struct net_raw *raw)
{
	if (!sa)
		return -1;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		raw->family = AF_INET;
		raw->bytes = (const unsigned char *)&sin->sin_addr;
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 =
		    (const struct sockaddr_in6 *)sa;
		raw->family = AF_INET6;
		raw->bytes = sin6->sin6_addr.s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			raw->family = AF_INET;
			raw->bytes += 12;
		}
		return 0;
	}
	return -1;
}

int
net_addr_host(const struct sockaddr *sa, char *buf, size_t cap)
{
	struct net_raw raw;
	if (net_raw_of(sa, &raw) != 0) {
		errno = EAFNOSUPPORT;
		return -1;
	}
	if (cap > (socklen_t)-1)
		cap = (socklen_t)-1;
	return inet_ntop(raw.family, raw.bytes, buf, (socklen_t)cap) ? 0 : -1;
}

int
net_addr_str(const struct sockaddr *sa, char *buf, size_t cap)
{
	char host[NET_HOST_MAX];
	struct net_raw raw;
	if (net_addr_host(sa, host, sizeof host) != 0 ||
	    net_raw_of(sa, &raw) != 0)
		return -1;
	/* sin_port and sin6_port sit at the same offset */
	unsigned port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
	int n = snprintf(buf, cap, raw.family == AF_INET6 ? "[%s]:%u" : "%s:%u",
			 host, port);
	if (n < 0 || (size_t)n >= cap) {
		errno = ENOSPC;
		return -1;
	}
	return 0;
}

int
net_listen(const struct sockaddr *sa, socklen_t len, int backlog)
{
	int one = 1;
	int fd = socket(sa->sa_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
		goto fail;
	/* one socket per family: [::] must not also grab IPv4 (RFC 3493 5.3) */
	if (sa->sa_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0)
		goto fail;
	if (bind(fd, sa, len) != 0 || listen(fd, backlog) != 0)
		goto fail;
	return fd;
fail:;
	int e = errno;
	close(fd);
	errno = e;
	return -1;
}

int
net_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
		return -1;
	int fdfl = fcntl(fd, F_GETFD);
	if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) != 0)
		return -1;
	return 0;
}

/* Clears the bits of addr past prefix (of nbytes bytes). */
static void
net_mask(unsigned char *addr, size_t nbytes, unsigned prefix)
{
	for (size_t i = 0; i < nbytes; i++) {
		unsigned bits = prefix > 8 * i ? prefix - 8 * (unsigned)i : 0;
		if (bits < 8)
			addr[i] &= (unsigned char)(0xff00u >> bits);
	}
}

int
cidr_parse(const char *s, struct cidr *out)
{
	char host[NET_HOST_MAX];
	struct cidr c;
	if (!s || !out)
		return -1;
	const char *slash = strchr(s, '/');
	size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
	if (net_copy(host, sizeof host, s, hlen) != 0)
		return -1;
	memset(&c, 0, sizeof c);
	c.family = strchr(host, ':') ? AF_INET6 : AF_INET;
	unsigned max = c.family == AF_INET ? 32 : 128;
	if (inet_pton(c.family, host, c.addr) != 1)
		return -1;
	unsigned long prefix = max;
	if (slash && net_parse_uint(slash + 1, 3, max, &prefix) != 0)
		return -1;
	c.prefix = (unsigned)prefix;
	net_mask(c.addr, max / 8, c.prefix);
	*out = c;
	return 0;
}

bool
cidr_match(const struct cidr *net, const struct sockaddr *sa)
{
	struct net_raw raw;
	unsigned char peer[16], want[16];
	if (!net || net_raw_of(sa, &raw) != 0)
		return false;
	/* a mapped peer still matches an IPv6 network written as ::ffff:... */
	if (net->family == AF_INET6 && sa->sa_family == AF_INET6) {
		raw.family = AF_INET6;
		raw.bytes =
		    ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
	}
	if (raw.family != net->family)
		return false;
	size_t nbytes = net->family == AF_INET ? 4 : 16;
	unsigned prefix =
	    net->prefix > 8 * nbytes ? 8 * (unsigned)nbytes : net->prefix;
	memcpy(peer, raw.bytes, nbytes);
	memcpy(want, net->addr, nbytes);
	net_mask(peer, nbytes, prefix);
	net_mask(want, nbytes, prefix);
	return memcmp(peer, want, nbytes) == 0;
}

bool
net_same_host(const struct sockaddr *a, const struct sockaddr *b)
{
	struct net_raw ra, rb;
	if (net_raw_of(a, &ra) != 0 || net_raw_of(b, &rb) != 0 ||
	    ra.family != rb.family)
		return false;
	return memcmp(ra.bytes, rb.bytes, ra.family == AF_INET ? 4 : 16) == 0;
}

char *
net_local_hostname(void)
{
	char name[256];
	if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0')
		return strdup("localhost");
	name[sizeof name - 1] = '\0';
	return strdup(name);
}

/*
 * net: socket addresses, listening sockets and CIDR networks.
 * Pure parsers plus thin wrappers around socket syscalls.
 */
#ifndef MTA_NET_H
#define MTA_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define NET_ADDR_STR_MAX 64 /* "[ffff:...]:65535" fits */

struct cidr {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned prefix; /* 0..32 or 0..128 */
};

/*
 * Parses "1.2.3.4:25", "[::1]:25" or "*:25"/":25" (any IPv4). Numeric only,
 * no name resolution. Returns 0 or -1 (invalid).
 */
int net_parse_hostport(const char *s, struct sockaddr_storage *out,
		       socklen_t *outlen);
/* Numeric host part only, "1.2.3.4" or "::1". */
int net_addr_host(const struct sockaddr *sa, char *buf, size_t cap);
/* "1.2.3.4:25" or "[::1]:25" */
int net_addr_str(const struct sockaddr *sa, char *buf, size_t cap);
/* Non-blocking, close-on-exec, SO_REUSEADDR, IPV6_V6ONLY; -1 + errno. */
int net_listen(const struct sockaddr *sa, socklen_t len, int backlog);
/* This machine's host name (malloc'd; "localhost" when it has none). */
char *net_local_hostname(void);
/* Sets O_NONBLOCK and FD_CLOEXEC; -1 + errno. */
int net_set_nonblock(int fd);

/* "10.0.0.0/8", "::1/128", "127.0.0.1" (host) — returns 0 or -1. */
int cidr_parse(const char *s, struct cidr *out);
/* IPv4-mapped IPv6 peers match IPv4 networks. */
bool cidr_match(const struct cidr *net, const struct sockaddr *sa);
/* True when both addresses are the same host (IPv4-mapped == IPv4). */
bool net_same_host(const struct sockaddr *a, const struct sockaddr *b);

#endif

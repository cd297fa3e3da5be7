/*
 * dns: c-ares driven from the one loop. ARES_OPT_SOCK_STATE_CB tells us
 * which sockets to watch; readiness goes to ares_process_fd(); one loop
 * timer is re-armed from ares_timeout(). No resolver threads, no blocking
 * calls. MX policy lives in mx.c, not here.
 */
#ifndef MTA_DNS_H
#define MTA_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "loop.h"
#include "mx.h"

#define DNS_ADDR_MAX 16 /* addresses kept per host */
#define DNS_TIMEOUT_MS 5000
#define DNS_TRIES 2

enum dns_status {
	DNS_OK,
	DNS_NODATA,   /* name exists, no records of that type */
	DNS_NXDOMAIN, /* name does not exist: permanent */
	DNS_TEMPFAIL, /* SERVFAIL, timeout, refused, network: try later */
};

struct dns;

/*
 * Checks one dns.servers entry: "a.b.c.d[:port]", "[v6][:port]" or a bare
 * v6 address (port 53). A config_check_fn: 0, or -1 with msg.
 */
int dns_check_server(const char *s, char *msg, size_t cap);

/* records: the raw MX answer (names as in DNS, not yet ordered). */
typedef void dns_mx_fn(void *arg, enum dns_status,
		       const struct mx_host *records, size_t n, uint32_t ttl);
/* addrs: A and AAAA results with port 0, IPv4 first. */
typedef void dns_addr_fn(void *arg, enum dns_status,
			 const struct sockaddr_storage *addrs, size_t n,
			 uint32_t ttl);

/*
 * servers: NULL/0 for /etc/resolv.conf, else "host[:port]" strings
 * (numeric IPv4 or [IPv6]; port default 53). Returns NULL with err set.
 */
struct dns *dns_new(struct loop *, const char *const *servers, size_t nservers,
		    char *err, size_t errlen);
/* Cancels outstanding queries (their callbacks run with DNS_TEMPFAIL). */
void dns_free(struct dns *);

/* Callbacks always run later from the loop, never inside these calls. */
int dns_query_mx(struct dns *, const char *domain, dns_mx_fn *fn, void *arg);
int dns_query_addr(struct dns *, const char *host, dns_addr_fn *fn, void *arg);
/* Queries started and failures, for metrics and logs. */
uint64_t dns_lookups(const struct dns *);
uint64_t dns_failures(const struct dns *);

#endif

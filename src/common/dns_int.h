/*
 * dns_int: struct dns_query and the answer readers, shared by dns.c (the
 * c-ares channel on the loop) and dns_wire.c (reading answers). Nothing
 * else includes this.
 */
#ifndef MTA_DNS_INT_H
#define MTA_DNS_INT_H

#include <ares.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dns.h"
#include "mx.h"

#define DNS_FALLBACK_TTL 300u /* when the answer carries no usable TTL */
#define DNS_HEADER_LEN 12     /* RFC 1035 4.1.1 */
#define DNS_CLASS_IN 1	      /* RFC 1035 3.2.4 */
#define DNS_TYPE_CNAME 5      /* RFC 1035 3.2.2 */
#define DNS_TYPE_SOA 6
#define DNS_TYPE_MX 15

enum dns_kind {
	DNS_KIND_MX,
	DNS_KIND_ADDR,
};

struct dns_query {
	struct dns *dns;
	struct dns_query *next; /* done FIFO */
	enum dns_kind kind;
	dns_mx_fn *mx_fn;
	dns_addr_fn *addr_fn;
	void *arg;
	enum dns_status status;
	uint32_t ttl;
	size_t n;	    /* records in mx[] or addrs[] */
	struct mx_host *mx; /* malloc'd, DNS_KIND_MX only */
	struct sockaddr_storage addrs[DNS_ADDR_MAX];
};

/* dns_wire.c */
/* How long an answer to a question of the given type may be used. */
uint32_t dns_answer_ttl(const unsigned char *buf, int alen, unsigned type);
/* A c-ares status as enum dns_status. */
enum dns_status dns_map_status(int status);
/* Copies the MX records; a name too long for struct mx_host is dropped. */
int dns_mx_copy(struct dns_query *, const struct ares_mx_reply *head);
/* Appends the addresses of one family, port 0, up to DNS_ADDR_MAX. */
void dns_addr_copy(struct dns_query *, const struct ares_addrinfo *,
		   int family);
/* The smallest TTL among the addresses and the CNAMEs leading to them. */
uint32_t dns_addr_ttl(const struct ares_addrinfo *);

#endif

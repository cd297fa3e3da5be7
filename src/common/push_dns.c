/*
 * push_dns: see push_dns.h.
 */
#include "push_dns.h"

#include "dns.h"

/* dns_query_addr()'s answer through the push_resolve_fn contract. */
static void
push_dns_answer(void *token, enum dns_status st,
		const struct sockaddr_storage *addrs, size_t n, uint32_t ttl)
{
	push_resolved(token, st == DNS_OK ? addrs : NULL, st == DNS_OK ? n : 0,
		      ttl);
}

int
push_dns_lookup(void *dns, const char *host, struct push_lookup *token)
{
	return dns_query_addr(dns, host, push_dns_answer, token);
}

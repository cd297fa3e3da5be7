/*
 * dns_wire: reading DNS answers, see dns.h. TTLs from the raw answer
 * (c-ares' MX parser drops them), c-ares statuses as enum dns_status, and
 * c-ares' MX and address replies copied into a query's records. No
 * channel, no loop: dns.c drives c-ares and calls these from its
 * callbacks.
 */
#include "dns_int.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* ---- TTLs from the raw answer (c-ares' MX parser drops them) ---- */

struct dns_rr {
	unsigned type, klass;
	uint32_t ttl;
	size_t rdata, rdlen; /* offset and length of the RDATA */
};

static unsigned
dns_get16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static uint32_t
dns_get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* RFC 2181 8: a TTL with the top bit set is read as zero. */
static uint32_t
dns_ttl_value(uint32_t ttl)
{
	return ttl > INT32_MAX ? 0 : ttl;
}

/* Skips a name, compressed or not (RFC 1035 4.1.4), ending before len. */
static bool
dns_skip_name(const unsigned char *buf, size_t len, size_t *pos)
{
	size_t p = *pos;

	while (p < len) {
		unsigned c = buf[p];

		if (c == 0) {
			*pos = p + 1;
			return true;
		}
		if ((c & 0xc0) == 0xc0) {
			if (len - p < 2)
				return false;
			*pos = p + 2;
			return true;
		}
		if (c & 0xc0)
			return false; /* RFC 6891 extended label types */
		p += 1 + c;
	}
	return false;
}

/* Reads the resource record at *pos (RFC 1035 4.1.3) and steps past it. */
static bool
dns_next_rr(const unsigned char *buf, size_t len, size_t *pos,
	    struct dns_rr *rr)
{
	const unsigned char *p;

	if (!dns_skip_name(buf, len, pos) || len - *pos < 10)
		return false;
	p = buf + *pos;
	rr->type = dns_get16(p);
	rr->klass = dns_get16(p + 2);
	rr->ttl = dns_ttl_value(dns_get32(p + 4));
	rr->rdlen = dns_get16(p + 8);
	rr->rdata = *pos + 10;
	if (rr->rdlen > len - rr->rdata)
		return false;
	*pos = rr->rdata + rr->rdlen;
	return true;
}

/* RFC 2308 5: a negative answer lives min(SOA TTL, SOA MINIMUM). */
static bool
dns_soa_ttl(const unsigned char *buf, const struct dns_rr *rr, uint32_t *ttl)
{
	size_t end = rr->rdata + rr->rdlen, pos = rr->rdata;
	uint32_t minimum;

	if (!dns_skip_name(buf, end, &pos) || !dns_skip_name(buf, end, &pos) ||
	    end - pos < 20)
		return false;
	minimum = dns_ttl_value(dns_get32(buf + pos + 16));
	*ttl = rr->ttl < minimum ? rr->ttl : minimum;
	return true;
}

/*
 * How long an answer to a question of the given type may be used: the
 * smallest TTL among its RRs of that type and the CNAMEs leading to them
 * (RFC 2181 5.2, 10.1). Without any of that type it is negative: the SOA
 * in the authority section decides (RFC 2308 5), DNS_FALLBACK_TTL without
 * one, still capped by the CNAMEs.
 */
uint32_t
dns_answer_ttl(const unsigned char *buf, int alen, unsigned type)
{
	size_t len = alen > 0 ? (size_t)alen : 0, pos = DNS_HEADER_LEN;
	uint32_t ttl = UINT32_MAX, neg = DNS_FALLBACK_TTL;
	unsigned qd, an, ns;
	struct dns_rr rr;
	bool found = false;

	if (!buf || len < DNS_HEADER_LEN)
		return DNS_FALLBACK_TTL;
	qd = dns_get16(buf + 4);
	an = dns_get16(buf + 6);
	ns = dns_get16(buf + 8);
	for (unsigned i = 0; i < qd; i++) {
		if (!dns_skip_name(buf, len, &pos) || len - pos < 4)
			return DNS_FALLBACK_TTL;
		pos += 4;
	}
	for (unsigned i = 0; i < an; i++) {
		if (!dns_next_rr(buf, len, &pos, &rr))
			return found ? ttl : DNS_FALLBACK_TTL;
		if (rr.klass != DNS_CLASS_IN ||
		    (rr.type != type && rr.type != DNS_TYPE_CNAME))
			continue;
		found |= rr.type == type;
		if (rr.ttl < ttl)
			ttl = rr.ttl;
	}
	if (found)
		return ttl;
	for (unsigned i = 0; i < ns && dns_next_rr(buf, len, &pos, &rr); i++)
		if (rr.type == DNS_TYPE_SOA && rr.klass == DNS_CLASS_IN) {
			if (!dns_soa_ttl(buf, &rr, &neg))
				neg = DNS_FALLBACK_TTL;
			break;
		}
	return neg < ttl ? neg : ttl;
}

/* ---- status ---- */

enum dns_status
dns_map_status(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return DNS_OK;
	case ARES_ENODATA:
		return DNS_NODATA;
	case ARES_ENOTFOUND:
	/* A name c-ares cannot encode (label over 63 octets, name over 255,
	 * RFC 1035 2.3.4) cannot exist; asking again never helps. */
	case ARES_EBADNAME:
		return DNS_NXDOMAIN;
	default: /* SERVFAIL, REFUSED, timeout, network, memory ... */
		return DNS_TEMPFAIL;
	}
}

/* ---- c-ares replies ---- */

/* Copies the MX records; a name too long for struct mx_host is dropped. */
int
dns_mx_copy(struct dns_query *q, const struct ares_mx_reply *head)
{
	size_t count = 0;

	for (const struct ares_mx_reply *r = head; r; r = r->next)
		count++;
	if (count == 0)
		return ARES_ENODATA;
	q->mx = calloc(count, sizeof *q->mx);
	if (!q->mx)
		return ARES_ENOMEM;
	for (const struct ares_mx_reply *r = head; r; r = r->next) {
		size_t len = strlen(r->host);

		if (len > MX_HOST_MAX)
			continue;
		memcpy(q->mx[q->n].name, r->host, len + 1);
		q->mx[q->n].pref = r->priority;
		q->n++;
	}
	/* Records, none usable: not NODATA, which would mean implicit MX. */
	return q->n ? ARES_SUCCESS : ARES_EBADRESP;
}

/* Appends the addresses of one family, port 0, up to DNS_ADDR_MAX. */
void
dns_addr_copy(struct dns_query *q, const struct ares_addrinfo *ai, int family)
{
	for (const struct ares_addrinfo_node *a = ai->nodes; a;
	     a = a->ai_next) {
		struct sockaddr_storage *ss = &q->addrs[q->n];

		if (a->ai_family != family || q->n >= DNS_ADDR_MAX ||
		    (size_t)a->ai_addrlen > sizeof *ss)
			continue;
		memset(ss, 0, sizeof *ss);
		memcpy(ss, a->ai_addr, a->ai_addrlen);
		if (family == AF_INET)
			((struct sockaddr_in *)ss)->sin_port = 0;
		else
			((struct sockaddr_in6 *)ss)->sin6_port = 0;
		q->n++;
	}
}

/* The smallest TTL among the addresses and the CNAMEs leading to them. */
uint32_t
dns_addr_ttl(const struct ares_addrinfo *ai)
{
	uint32_t ttl = UINT32_MAX;

	for (const struct ares_addrinfo_node *a = ai->nodes; a; a = a->ai_next)
		if (a->ai_ttl >= 0 && (uint32_t)a->ai_ttl < ttl)
			ttl = (uint32_t)a->ai_ttl;
	for (const struct ares_addrinfo_cname *c = ai->cnames; c; c = c->next)
		if (c->ttl >= 0 && (uint32_t)c->ttl < ttl)
			ttl = (uint32_t)c->ttl;
	return ttl == UINT32_MAX ? DNS_FALLBACK_TTL : ttl;
}

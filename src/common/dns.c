/*
 * dns: c-ares driven from the one loop, see dns.h.
 *
 * Owns: one c-ares channel; the set of its sockets we watch (an fd_set:
 * loop.h only watches fds below FD_SETSIZE); two loop timers, ares_timer
 * (the next c-ares timeout) and deliver_timer (hands results to callers);
 * the FIFO of finished queries whose callbacks have not run yet. Reading
 * the answers (TTLs, records, statuses) is in dns_wire.c.
 *
 * Invariants:
 * - A user callback runs only from deliver_timer or from dns_free(), never
 *   inside a c-ares call nor inside dns_query_*(): c-ares may finish a
 *   query synchronously (hosts file, numeric name, bad name), and a caller
 *   may start a query or call dns_free() from its callback.
 * - A struct dns_query lives from dns_query_*() until its callback has
 *   returned: c-ares holds it while outstanding, the done FIFO after.
 * - Both timers stay armed from dns_new() to dns_free(), at DNS_IDLE_MS
 *   when there is nothing to do. Each timer callback re-arms its own timer
 *   before anything else can arm a timer, while the heap still has the slot
 *   it just left, and re-arming an armed timer never fails (loop.h): no
 *   query can lose its timeout or its delivery to ENOMEM.
 * - ares_library_init() is process-wide, reference counted by c-ares and
 *   not thread-safe: each dns_new() takes one reference and dns_free()
 *   drops it, so dns_new()/dns_free() belong to one thread (the worker).
 */
#include "dns_int.h"

#include <ares.h>
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/time.h>

#define DNS_IDLE_MS 3600000u /* a timer with nothing to do */
#define DNS_PORT_DEFAULT 53

struct dns {
	struct loop *loop;
	ares_channel channel;
	bool library; /* holds an ares_library_init() reference */
	bool channel_open;
	bool freeing; /* inside dns_free() */
	bool *alive;  /* set while delivering; dns_free() clears it */
	struct loop_timer ares_timer;
	struct loop_timer deliver_timer;
	struct dns_query *done_head;
	struct dns_query **done_tail;
	size_t ndone;
	uint64_t lookups;
	uint64_t failures;
	fd_set watched; /* c-ares sockets in the loop */
};

/* ---- server list: "host[:port]" ---- */

static int
dns_parse_port(const char *s, int *port)
{
	long v = 0;

	if (*s == '\0' || strlen(s) > 5 || strspn(s, "0123456789") != strlen(s))
		return -1;
	for (; *s; s++)
		v = v * 10 + (*s - '0');
	if (v < 1 || v > 65535)
		return -1;
	*port = (int)v;
	return 0;
}

/*
 * "a.b.c.d", "a.b.c.d:port", "[v6]", "[v6]:port", or a bare v6 address
 * (two colons or more, port 53), as sender_config accepts. Numeric only:
 * resolving the resolver's name would need a resolver.
 */
static int
dns_parse_server(const char *s, struct ares_addr_port_node *node)
{
	char host[INET6_ADDRSTRLEN];
	const char *start = s, *port = NULL, *end;
	int family = AF_INET6;
	size_t hlen;

	if (s[0] == '[') {
		end = strchr(s, ']');
		if (!end || (end[1] != '\0' && end[1] != ':'))
			return -1;
		start = s + 1;
		hlen = (size_t)(end - start);
		port = end[1] == ':' ? end + 2 : NULL;
	} else if (strchr(s, ':') != strrchr(s, ':')) {
		hlen = strlen(s);
	} else {
		end = strchr(s, ':');
		family = AF_INET;
		hlen = end ? (size_t)(end - s) : strlen(s);
		port = end ? end + 1 : NULL;
	}
	if (hlen == 0 || hlen >= sizeof host)
		return -1;
	memcpy(host, start, hlen);
	host[hlen] = '\0';
	node->family = family;
	if (inet_pton(family, host,
		      family == AF_INET ? (void *)&node->addr.addr4
					: (void *)&node->addr.addr6) != 1)
		return -1;
	node->udp_port = DNS_PORT_DEFAULT;
	if (port && dns_parse_port(port, &node->udp_port) != 0)
		return -1;
	node->tcp_port = node->udp_port;
	return 0;
}

int
dns_check_server(const char *s, char *msg, size_t cap)
{
	struct ares_addr_port_node node;
	if (dns_parse_server(s, &node) == 0)
		return 0;
	snprintf(msg, cap, "'%s' is not a numeric address[:port]", s);
	return -1;
}

/* Builds the list for ares_set_servers_ports(): one calloc'd array. */
static struct ares_addr_port_node *
dns_parse_servers(const char *const *servers, size_t n, char *err,
		  size_t errlen)
{
	struct ares_addr_port_node *nodes = calloc(n, sizeof *nodes);

	if (!nodes) {
		snprintf(err, errlen, "dns servers: out of memory");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!servers[i] ||
		    dns_parse_server(servers[i], &nodes[i]) != 0) {
			snprintf(err, errlen,
				 "dns server '%s': expected a numeric IPv4 "
				 "address or [IPv6] address, optional :port",
				 servers[i] ? servers[i] : "(null)");
			free(nodes);
			return NULL;
		}
		nodes[i].next = i + 1 < n ? &nodes[i + 1] : NULL;
	}
	return nodes;
}

/* ---- timers and delivery ---- */

/* Never fails, see the invariants at the top. */
static void
dns_rearm(struct dns *dns, struct loop_timer *t, uint64_t ms)
{
	int rc = loop_timer_arm(dns->loop, t, ms);

	assert(rc == 0);
	(void)rc;
}

/* After every c-ares call: the next c-ares timeout, rounded up to ms. */
static void
dns_kick(struct dns *dns)
{
	struct timeval tv, *tvp = ares_timeout(dns->channel, NULL, &tv);
	uint64_t ms = DNS_IDLE_MS;

	if (tvp)
		ms = (uint64_t)tvp->tv_sec * 1000 +
		     ((uint64_t)tvp->tv_usec + 999) / 1000;
	dns_rearm(dns, &dns->ares_timer, ms);
}

/* Runs the callback and frees q; dns may be gone when this returns. */
static void
dns_deliver(struct dns *dns, struct dns_query *q)
{
	if (q->status == DNS_TEMPFAIL)
		dns->failures++;
	if (q->kind == DNS_KIND_MX)
		q->mx_fn(q->arg, q->status, q->mx, q->n, q->ttl);
	else
		q->addr_fn(q->arg, q->status, q->addrs, q->n, q->ttl);
	free(q->mx);
	free(q);
}

static struct dns_query *
dns_done_pop(struct dns *dns)
{
	struct dns_query *q = dns->done_head;

	dns->done_head = q->next;
	if (!dns->done_head)
		dns->done_tail = &dns->done_head;
	dns->ndone--;
	return q;
}

/*
 * A query finished (q->status, ttl, records set). Queued for
 * deliver_timer, except while dns_free() destroys the channel: then its
 * callback runs now, as dns.h promises, with DNS_TEMPFAIL.
 */
static void
dns_finish(struct dns_query *q)
{
	struct dns *dns = q->dns;

	if (dns->freeing) {
		q->status = DNS_TEMPFAIL;
		q->n = 0;
		q->ttl = 0;
		dns_deliver(dns, q);
		return;
	}
	q->next = NULL;
	*dns->done_tail = q;
	dns->done_tail = &q->next;
	dns->ndone++;
	dns_rearm(dns, &dns->deliver_timer, 0);
}

/*
 * Delivers the queries finished so far (later ones wait for the next
 * pass). A callback may call dns_free(): alive then turns false.
 */
static void
dns_deliver_due(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct dns *dns = arg;
	bool alive = true, *outer = dns->alive;
	size_t n = dns->ndone;

	(void)loop;
	(void)t;
	dns_rearm(dns, &dns->deliver_timer, DNS_IDLE_MS);
	dns->alive = &alive;
	while (alive && n-- > 0 && dns->done_head)
		dns_deliver(dns, dns_done_pop(dns));
	if (!alive) {
		if (outer)
			*outer = false;
		return;
	}
	dns->alive = outer;
}

static void
dns_ares_due(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct dns *dns = arg;

	(void)loop;
	(void)t;
	dns_rearm(dns, &dns->ares_timer, DNS_IDLE_MS);
	ares_process_fd(dns->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_kick(dns);
}

/* ---- sockets ---- */

static void
dns_io(struct loop *loop, int fd, unsigned events, void *arg)
{
	struct dns *dns = arg;

	(void)loop;
	ares_process_fd(dns->channel, events & LOOP_READ ? fd : ARES_SOCKET_BAD,
			events & LOOP_WRITE ? fd : ARES_SOCKET_BAD);
	dns_kick(dns);
}

/*
 * ARES_OPT_SOCK_STATE_CB: c-ares opens, changes or (0, 0) closes interest
 * in one of its sockets. A socket the loop cannot watch (fd at or past
 * FD_SETSIZE) is left alone: its queries end at their timeout, TEMPFAIL.
 */
static void
dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *dns = data;
	unsigned events =
	    (readable ? LOOP_READ : 0) | (writable ? LOOP_WRITE : 0);

	if (fd < 0 || fd >= FD_SETSIZE)
		return;
	if (!events) {
		if (FD_ISSET(fd, &dns->watched))
			loop_unwatch(dns->loop, fd);
		FD_CLR(fd, &dns->watched);
	} else if (FD_ISSET(fd, &dns->watched) &&
		   loop_modify(dns->loop, fd, events) == 0) {
		return;
	} else if (loop_watch(dns->loop, fd, events, dns_io, dns) == 0) {
		FD_SET(fd, &dns->watched);
	} else {
		FD_CLR(fd, &dns->watched);
	}
}

/* ---- c-ares callbacks ---- */

static void
dns_mx_done(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_query *q = arg;
	struct ares_mx_reply *head = NULL;

	(void)timeouts;
	if (status == ARES_SUCCESS) {
		status = ares_parse_mx_reply(abuf, alen, &head);
		if (status == ARES_SUCCESS)
			status = dns_mx_copy(q, head);
		if (head)
			ares_free_data(head);
	}
	q->status = dns_map_status(status);
	if (q->status != DNS_OK)
		q->n = 0;
	q->ttl = q->status == DNS_TEMPFAIL
		     ? 0
		     : dns_answer_ttl(abuf, alen, DNS_TYPE_MX);
	dns_finish(q);
}

static void
dns_addr_done(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct dns_query *q = arg;

	(void)timeouts;
	if (status == ARES_SUCCESS && ai) {
		dns_addr_copy(q, ai, AF_INET);
		dns_addr_copy(q, ai, AF_INET6);
		q->ttl = dns_addr_ttl(ai);
	}
	if (ai)
		ares_freeaddrinfo(ai);
	q->status = dns_map_status(status);
	if (q->status == DNS_OK && q->n == 0)
		q->status = DNS_NODATA;
	if (q->status != DNS_OK)
		q->n = 0;
	/* c-ares hands getaddrinfo no SOA: a fixed negative TTL. */
	if (q->status == DNS_NODATA || q->status == DNS_NXDOMAIN)
		q->ttl = DNS_FALLBACK_TTL;
	else if (q->status == DNS_TEMPFAIL)
		q->ttl = 0;
	dns_finish(q);
}

/* ---- API ---- */

static int
dns_init_channel(struct dns *dns, struct ares_addr_port_node *servers,
		 char *err, size_t errlen)
{
	struct ares_options opt;
	int optmask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
		      ARES_OPT_SOCK_STATE_CB | ARES_OPT_DOMAINS;
	int rc;

	memset(&opt, 0, sizeof opt);
	opt.timeout = DNS_TIMEOUT_MS;
	opt.tries = DNS_TRIES;
	opt.sock_state_cb = dns_sock_state;
	opt.sock_state_cb_data = dns;
	/* ndomains 0, no search list: mail domains and MX names are
	 * absolute. */
	rc = ares_init_options(&dns->channel, &opt, optmask);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "ares_init_options: %s",
			 ares_strerror(rc));
		return -1;
	}
	dns->channel_open = true;
	rc = servers ? ares_set_servers_ports(dns->channel, servers)
		     : ARES_SUCCESS;
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "ares_set_servers_ports: %s",
			 ares_strerror(rc));
		return -1;
	}
	return 0;
}

struct dns *
dns_new(struct loop *loop, const char *const *servers, size_t nservers,
	char *err, size_t errlen)
{
	struct ares_addr_port_node *nodes = NULL;
	struct dns *dns;
	int rc;

	if (nservers > 0 &&
	    !(nodes = dns_parse_servers(servers, nservers, err, errlen)))
		return NULL;
	dns = calloc(1, sizeof *dns);
	if (!dns) {
		snprintf(err, errlen, "dns: out of memory");
		free(nodes);
		return NULL;
	}
	dns->loop = loop;
	dns->done_tail = &dns->done_head;
	loop_timer_init(&dns->ares_timer, dns_ares_due, dns);
	loop_timer_init(&dns->deliver_timer, dns_deliver_due, dns);
	rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "ares_library_init: %s",
			 ares_strerror(rc));
		goto fail;
	}
	dns->library = true;
	if (dns_init_channel(dns, nodes, err, errlen) != 0)
		goto fail;
	if (loop_timer_arm(loop, &dns->ares_timer, DNS_IDLE_MS) != 0 ||
	    loop_timer_arm(loop, &dns->deliver_timer, DNS_IDLE_MS) != 0) {
		snprintf(err, errlen, "dns timers: %s", strerror(errno));
		goto fail;
	}
	free(nodes);
	return dns;
fail:
	free(nodes);
	dns_free(dns);
	return NULL;
}

/*
 * ares_destroy() ends every outstanding query with ARES_EDESTRUCTION:
 * dns_finish() runs those callbacks right there, with DNS_TEMPFAIL, and
 * queued results get DNS_TEMPFAIL too. Such a callback must not use dns.
 */
void
dns_free(struct dns *dns)
{
	if (!dns || dns->freeing)
		return;
	dns->freeing = true;
	if (dns->alive)
		*dns->alive = false;
	if (dns->channel_open)
		ares_destroy(dns->channel); /* closes its sockets: (0, 0) */
	while (dns->done_head) {
		struct dns_query *q = dns_done_pop(dns);

		free(q->mx);
		q->mx = NULL;
		dns_finish(q);
	}
	for (int fd = 0; fd < FD_SETSIZE; fd++) /* none left, normally */
		if (FD_ISSET(fd, &dns->watched))
			loop_unwatch(dns->loop, fd);
	loop_timer_disarm(dns->loop, &dns->ares_timer);
	loop_timer_disarm(dns->loop, &dns->deliver_timer);
	if (dns->library)
		ares_library_cleanup();
	free(dns);
}

static struct dns_query *
dns_query_new(struct dns *dns, const char *name, enum dns_kind kind, void *arg)
{
	struct dns_query *q;

	if (!dns || !name) {
		errno = EINVAL;
		return NULL;
	}
	if (dns->freeing) {
		errno = ECANCELED;
		return NULL;
	}
	q = calloc(1, sizeof *q);
	if (!q)
		return NULL;
	q->dns = dns;
	q->kind = kind;
	q->arg = arg;
	dns->lookups++;
	return q;
}

int
dns_query_mx(struct dns *dns, const char *domain, dns_mx_fn *fn, void *arg)
{
	struct dns_query *q = dns_query_new(dns, domain, DNS_KIND_MX, arg);

	if (!q)
		return -1;
	q->mx_fn = fn;
	ares_query(dns->channel, domain, DNS_CLASS_IN, DNS_TYPE_MX, dns_mx_done,
		   q);
	dns_kick(dns);
	return 0;
}

int
dns_query_addr(struct dns *dns, const char *host, dns_addr_fn *fn, void *arg)
{
	struct dns_query *q = dns_query_new(dns, host, DNS_KIND_ADDR, arg);
	struct ares_addrinfo_hints hints;

	if (!q)
		return -1;
	q->addr_fn = fn;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	/* NOSORT: RFC 6724 sorting probes routes with connect(); we order
	 * IPv4 first ourselves. */
	hints.ai_flags = ARES_AI_NOSORT;
	ares_getaddrinfo(dns->channel, host, NULL, &hints, dns_addr_done, q);
	dns_kick(dns);
	return 0;
}

uint64_t
dns_lookups(const struct dns *dns)
{
	return dns->lookups;
}

uint64_t
dns_failures(const struct dns *dns)
{
	return dns->failures;
}

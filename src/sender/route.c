/*
 * route: from a message's recipients to MX queues. Recipients are grouped
 * by domain; each domain's MX answer is looked up once (c-ares, in the
 * loop) and cached for its TTL; groups that arrive while a lookup is in
 * flight wait on it. The policy itself (preference order, implicit MX,
 * null MX) is mx.c's.
 *
 * RFC 5321 5.1: no MX records -> the domain itself; RFC 7505: null MX ->
 * 5.1.10; NXDOMAIN -> 5.1.2; a lookup that fails temporarily -> 4.4.3 and
 * is not cached.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "log.h"
#include "mx.h"
#include "sender.h"
#include "sender_config.h"
#include "tls_policy.h"

#define ROUTE_BUCKETS 1024
#define ROUTE_CACHE_MAX 10000 /* domains kept; expired ones go first */
#define ROUTE_TTL_MIN_MS 1000

struct route_wait {
	struct message *msg;
	size_t *rcpt;
	size_t n;
	struct route_wait *next;
};

struct route_entry {
	char domain[MX_HOST_MAX + 1];
	bool pending; /* lookup in flight */
	bool ready;   /* an answer is cached */
	enum dns_status status;
	enum mx_result mx;
	struct mx_host hosts[MX_LIST_MAX];
	size_t nhosts;
	uint64_t expires;
	struct route_wait *waiting;
	struct sender *snd;
	struct route_entry *next;
};

struct route_cache {
	struct route_entry *buckets[ROUTE_BUCKETS];
	size_t count;
};

struct route_cache *
route_cache_new(void)
{
	return calloc(1, sizeof(struct route_cache));
}

void
route_cache_free(struct route_cache *rc)
{
	for (size_t i = 0; rc && i < ROUTE_BUCKETS; i++) {
		struct route_entry *e = rc->buckets[i];
		while (e) {
			struct route_entry *next = e->next;
			free(e);
			e = next;
		}
	}
	free(rc);
}

static size_t
route_hash(const char *domain)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)domain; *p; p++) {
		unsigned char ch = *p >= 'A' && *p <= 'Z' ? *p + 32 : *p;
		h = (h ^ ch) * 16777619u;
	}
	return h % ROUTE_BUCKETS;
}

/* Drops cached answers that expired and that nobody waits on. */
static void
route_sweep(struct route_cache *rc, uint64_t now)
{
	for (size_t i = 0; i < ROUTE_BUCKETS; i++) {
		struct route_entry **pp = &rc->buckets[i];
		while (*pp) {
			struct route_entry *e = *pp;
			if (!e->pending && e->expires <= now) {
				*pp = e->next;
				free(e);
				rc->count--;
			} else {
				pp = &e->next;
			}
		}
	}
}

static struct route_entry *
route_entry_get(struct sender *snd, const char *domain)
{
	struct route_cache *rc = snd->routes;
	size_t b = route_hash(domain);
	for (struct route_entry *e = rc->buckets[b]; e; e = e->next)
		if (smtp_domain_equal(e->domain, domain))
			return e;
	if (rc->count >= ROUTE_CACHE_MAX)
		route_sweep(rc, loop_now(snd->loop));
	struct route_entry *e = calloc(1, sizeof *e);
	if (!e)
		return NULL;
	snprintf(e->domain, sizeof e->domain, "%s", domain);
	e->snd = snd;
	e->next = rc->buckets[b];
	rc->buckets[b] = e;
	rc->count++;
	return e;
}

static void
route_settle_all(struct sender *snd, struct message *m, const size_t *rcpt,
		 size_t n, enum delivery_status st, const char *dsn,
		 const char *why, const char *mx)
{
	for (size_t k = 0; k < n; k++)
		sender_settle(snd, m, rcpt[k], st, dsn, why, "none", mx);
}

/*
 * Queues the group on its first MX host's queue, at most 100 per job.
 * Each job carries the TLS level tls.policy gives name (the recipient
 * domain; with a smarthost, its host name: the next hop, as Postfix
 * keys its policy table).
 */
static void
route_enqueue(struct sender *snd, struct message *m, const size_t *rcpt,
	      size_t n, const char *name, const struct mx_host *hosts,
	      size_t nhosts, uint16_t port)
{
	const struct sender_config *cfg = snd->cfg;
	const char *rule;
	enum tls_level tls = tls_policy_level(
	    &cfg->tls_policy, name, (enum tls_level)cfg->tls_mode, &rule);
	struct mx_route *r = mx_route_new(hosts, nhosts, port);
	for (size_t off = 0; off < n; off += MXQ_RCPTS_PER_TXN) {
		size_t len =
		    n - off < MXQ_RCPTS_PER_TXN ? n - off : MXQ_RCPTS_PER_TXN;
		struct job *j = r ? job_new(m, rcpt + off, len, r, 0) : NULL;
		if (!j) {
			route_settle_all(snd, m, rcpt + off, len,
					 DELIVERY_DEFERRED, "4.3.0",
					 "out of memory", hosts[0].name);
			continue;
		}
		j->tls = tls;
		j->tls_rule = rule;
		m->jobs++;
		sender_route_job(snd, j);
	}
	mx_route_put(r);
}

static void
route_deliver(struct sender *snd, const struct route_entry *e,
	      struct message *m, const size_t *rcpt, size_t n)
{
	if (e->status == DNS_TEMPFAIL)
		route_settle_all(snd, m, rcpt, n, DELIVERY_DEFERRED, "4.4.3",
				 "temporary failure looking up MX", e->domain);
	else if (e->status == DNS_NXDOMAIN)
		route_settle_all(snd, m, rcpt, n, DELIVERY_BOUNCED, "5.1.2",
				 "recipient domain not found", e->domain);
	else if (e->mx == MX_NULL)
		route_settle_all(snd, m, rcpt, n, DELIVERY_BOUNCED, "5.1.10",
				 "recipient domain accepts no mail (null MX)",
				 e->domain);
	else if (e->mx != MX_OK || e->nhosts == 0)
		route_settle_all(snd, m, rcpt, n, DELIVERY_BOUNCED, "5.1.2",
				 "no usable mail host for the domain",
				 e->domain);
	else
		route_enqueue(snd, m, rcpt, n, e->domain, e->hosts, e->nhosts,
			      (uint16_t)snd->cfg->remote_port);
}

static uint32_t
route_rand(void *arg)
{
	(void)arg;
	return (uint32_t)random();
}

static void
route_mx_answer(void *arg, enum dns_status st, const struct mx_host *records,
		size_t n, uint32_t ttl)
{
	struct route_entry *e = arg;
	struct sender *snd = e->snd;

	e->pending = false;
	e->ready = true;
	e->status = st;
	e->nhosts = 0;
	e->mx = MX_NONE;
	if (st == DNS_OK || st == DNS_NODATA)
		e->mx = mx_order(e->domain, records, st == DNS_OK ? n : 0,
				 route_rand, NULL, e->hosts, &e->nhosts);
	uint64_t ms = (uint64_t)ttl * 1000;
	e->expires =
	    loop_now(snd->loop) + (st == DNS_TEMPFAIL	   ? 0
				   : ms < ROUTE_TTL_MIN_MS ? ROUTE_TTL_MIN_MS
							   : ms);
	if (st == DNS_TEMPFAIL || st == DNS_NXDOMAIN) {
		struct log_line *l = log_begin(snd->log, LOG_INFO, "dns.fail");
		log_str(l, "domain", e->domain);
		log_str(l, "status",
			st == DNS_TEMPFAIL ? "tempfail" : "nxdomain");
		log_end(l);
	}
	struct route_wait *w = e->waiting;
	e->waiting = NULL;
	while (w) {
		struct route_wait *next = w->next;
		route_deliver(snd, e, w->msg, w->rcpt, w->n);
		w->msg->jobs--; /* the wait's own reference */
		sender_check_done(snd, w->msg);
		free(w->rcpt);
		free(w);
		w = next;
	}
}

static void
route_group(struct sender *snd, struct message *m, const char *domain,
	    const size_t *rcpt, size_t n)
{
	struct route_entry *e = route_entry_get(snd, domain);
	if (!e) {
		route_settle_all(snd, m, rcpt, n, DELIVERY_DEFERRED, "4.3.0",
				 "out of memory", domain);
		return;
	}
	if (e->ready && !e->pending && loop_now(snd->loop) < e->expires) {
		route_deliver(snd, e, m, rcpt, n);
		return;
	}
	struct route_wait *w = calloc(1, sizeof *w);
	size_t *copy = malloc(n * sizeof *copy);
	if (!w || !copy ||
	    (!e->pending &&
	     dns_query_mx(snd->dns, e->domain, route_mx_answer, e) != 0)) {
		free(w);
		free(copy);
		route_settle_all(snd, m, rcpt, n, DELIVERY_DEFERRED, "4.4.3",
				 "cannot start MX lookup", domain);
		return;
	}
	e->pending = true;
	memcpy(copy, rcpt, n * sizeof *copy);
	w->msg = m;
	w->rcpt = copy;
	w->n = n;
	w->next = e->waiting;
	e->waiting = w;
	m->jobs++;
}

/* The smarthost takes everything: one queue, no MX lookups. */
static void
route_smarthost(struct sender *snd, struct message *m, const size_t *rcpt,
		size_t n)
{
	struct mx_host host = {.pref = 0};
	const char *sh = snd->cfg->smarthost;
	const char *colon = strrchr(sh, ':');
	size_t len = (size_t)(colon - sh);
	if (sh[0] == '[' && len >= 2 && sh[len - 1] == ']') {
		sh++;
		len -= 2;
	}
	if (len > MX_HOST_MAX)
		len = MX_HOST_MAX;
	memcpy(host.name, sh, len);
	route_enqueue(snd, m, rcpt, n, host.name, &host, 1,
		      (uint16_t)strtoul(colon + 1, NULL, 10));
}

void
route_message(struct sender *snd, struct message *m)
{
	size_t n = m->env.nrcpt;
	size_t *group = malloc(n * sizeof *group);
	bool *done = calloc(n, sizeof *done);

	m->jobs++; /* held while routing so nothing finishes it early */
	if (!group || !done) {
		for (size_t i = 0; i < n; i++)
			sender_settle(snd, m, i, DELIVERY_DEFERRED, "4.3.0",
				      "out of memory", "none", "");
	} else if (snd->cfg->smarthost[0]) {
		size_t g = 0;
		for (size_t i = 0; i < n; i++)
			if (m->state[i] == RCPT_PENDING)
				group[g++] = i;
		if (g > 0)
			route_smarthost(snd, m, group, g);
	} else {
		for (size_t i = 0; i < n; i++) /* settled by the journal */
			done[i] = m->state[i] != RCPT_PENDING;
		for (size_t i = 0; i < n; i++) {
			if (done[i])
				continue;
			const char *domain = smtp_path_domain(&m->env.rcpts[i]);
			size_t g = 0;
			for (size_t j = i; j < n; j++) {
				if (!done[j] &&
				    smtp_domain_equal(
					domain,
					smtp_path_domain(&m->env.rcpts[j]))) {
					done[j] = true;
					group[g++] = j;
				}
			}
			if (domain[0] == '\0')
				route_settle_all(snd, m, group, g,
						 DELIVERY_BOUNCED, "5.1.3",
						 "recipient has no domain", "");
			else
				route_group(snd, m, domain, group, g);
		}
	}
	free(group);
	free(done);
	m->jobs--;
	sender_check_done(snd, m);
}

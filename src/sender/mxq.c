/*
 * mxq: see mxq.h. A small chained hash table keyed by host name (lower
 * case), FIFO job lists.
 */
#include "mxq.h"

#include <stdlib.h>
#include <string.h>

#define MXQ_BUCKETS 256

static size_t
mxq_hash(const char *key, size_t nbuckets)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % nbuckets;
}

int
mxq_table_init(struct mxq_table *t)
{
	t->buckets = calloc(MXQ_BUCKETS, sizeof *t->buckets);
	t->nbuckets = MXQ_BUCKETS;
	t->count = 0;
	return t->buckets ? 0 : -1;
}

void
mxq_table_free(struct mxq_table *t)
{
	for (size_t i = 0; t->buckets && i < t->nbuckets; i++) {
		struct mxq *q = t->buckets[i];
		while (q) {
			struct mxq *next = q->next;
			free(q);
			q = next;
		}
	}
	free(t->buckets);
	t->buckets = NULL;
	t->count = 0;
}

struct mxq *
mxq_find(struct mxq_table *t, const char *key)
{
	for (struct mxq *q = t->buckets[mxq_hash(key, t->nbuckets)]; q;
	     q = q->next)
		if (strcmp(q->key, key) == 0)
			return q;
	return NULL;
}

struct mxq *
mxq_get(struct mxq_table *t, const char *key, uint16_t port)
{
	struct mxq *q = mxq_find(t, key);
	if (q)
		return q;
	q = calloc(1, sizeof *q);
	if (!q)
		return NULL;
	strncpy(q->key, key, sizeof q->key - 1);
	q->port = port;
	q->tail = &q->head;
	size_t b = mxq_hash(key, t->nbuckets);
	q->next = t->buckets[b];
	t->buckets[b] = q;
	t->count++;
	return q;
}

struct mx_route *
mx_route_new(const struct mx_host *hosts, size_t n, uint16_t port)
{
	if (n > MX_LIST_MAX)
		n = MX_LIST_MAX;
	struct mx_route *r = malloc(sizeof *r + n * sizeof *hosts);
	if (!r)
		return NULL;
	r->refs = 1;
	r->port = port;
	r->nhosts = n;
	memcpy(r->hosts, hosts, n * sizeof *hosts);
	return r;
}

void
mx_route_put(struct mx_route *r)
{
	if (r && --r->refs == 0)
		free(r);
}

struct job *
job_new(struct message *msg, const size_t *rcpt, size_t n,
	struct mx_route *route, size_t hop)
{
	struct job *j = calloc(1, sizeof *j);
	if (!j)
		return NULL;
	j->rcpt = malloc(n * sizeof *j->rcpt);
	if (!j->rcpt) {
		free(j);
		return NULL;
	}
	memcpy(j->rcpt, rcpt, n * sizeof *rcpt);
	j->n = n;
	j->msg = msg;
	j->route = route;
	j->hop = hop;
	route->refs++;
	return j;
}

void
job_free(struct job *j)
{
	if (!j)
		return;
	mx_route_put(j->route);
	free(j->rcpt);
	free(j);
}

void
mxq_push(struct mxq *q, struct job *j)
{
	j->next = NULL;
	*q->tail = j;
	q->tail = &j->next;
	q->njobs++;
}

void
mxq_push_front(struct mxq *q, struct job *j)
{
	j->next = q->head;
	q->head = j;
	if (q->tail == &q->head)
		q->tail = &j->next;
	q->njobs++;
}

struct job *
mxq_pop(struct mxq *q)
{
	struct job *j = q->head;
	if (!j)
		return NULL;
	q->head = j->next;
	if (!q->head)
		q->tail = &q->head;
	j->next = NULL;
	q->njobs--;
	return j;
}

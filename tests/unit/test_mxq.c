/*
 * test_mxq: per-MX queues: FIFO order, put-back at the head, one queue per
 * host name, and MX routes shared by jobs with counted references.
 */
#include <stdlib.h>

#include "mxq.h"
#include "test.h"

static struct mx_route *
route_of(const char *a, const char *b)
{
	struct mx_host hosts[2] = {{.pref = 10}, {.pref = 20}};
	snprintf(hosts[0].name, sizeof hosts[0].name, "%s", a);
	snprintf(hosts[1].name, sizeof hosts[1].name, "%s", b);
	return mx_route_new(hosts, 2, 25);
}

static void
test_fifo_and_push_front(void)
{
	struct mxq_table t;
	CHECK_INT(mxq_table_init(&t), 0);
	struct mxq *q = mxq_get(&t, "mx1.test", 25);
	CHECK(q != NULL);
	CHECK(mxq_get(&t, "mx1.test", 25) == q);
	CHECK(mxq_find(&t, "mx2.test") == NULL);
	CHECK_INT(t.count, 1);

	struct mx_route *r = route_of("mx1.test", "mx2.test");
	size_t rcpt[] = {0, 1, 2};
	struct job *a = job_new(NULL, rcpt, 3, r, 0);
	struct job *b = job_new(NULL, rcpt, 1, r, 0);
	struct job *c = job_new(NULL, rcpt, 2, r, 1);
	CHECK_INT(r->refs, 4);
	mxq_push(q, a);
	mxq_push(q, b);
	CHECK_INT(q->njobs, 2);
	CHECK(mxq_pop(q) == a);
	mxq_push_front(q, c); /* a session ended before c was done */
	CHECK(mxq_pop(q) == c);
	CHECK(mxq_pop(q) == b);
	CHECK(mxq_pop(q) == NULL);
	CHECK_INT(q->njobs, 0);
	/* the tail is right again after draining */
	mxq_push_front(q, a);
	mxq_push(q, b);
	CHECK(mxq_pop(q) == a);
	CHECK(mxq_pop(q) == b);

	CHECK_INT(a->n, 3);
	CHECK_INT(a->rcpt[2], 2);
	CHECK_INT(c->hop, 1);
	job_free(a);
	job_free(b);
	job_free(c);
	CHECK_INT(r->refs, 1);
	mx_route_put(r); /* last reference: freed (ASan checks) */
	mxq_table_free(&t);
}

static void
test_many_hosts(void)
{
	struct mxq_table t;
	char name[32];
	CHECK_INT(mxq_table_init(&t), 0);
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof name, "mx%d.test", i);
		CHECK(mxq_get(&t, name, 25) != NULL);
	}
	CHECK_INT(t.count, 2000);
	for (int i = 0; i < 2000; i += 97) {
		snprintf(name, sizeof name, "mx%d.test", i);
		struct mxq *q = mxq_find(&t, name);
		CHECK(q != NULL && strcmp(q->key, name) == 0);
	}
	mxq_table_free(&t);
}

int
main(void)
{
	test_fifo_and_push_front();
	test_many_hosts();
	return test_summary();
}

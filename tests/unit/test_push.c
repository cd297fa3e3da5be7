/*
 * test_push: the pusher (src/common/push.c) on a real loop against a
 * real HTTP server: a thread of this test listening on 127.0.0.1 that
 * serves one connection at a time (200, 500 for the first few, or
 * never answering).
 *
 * Covers: the PUT to the Pushgateway path with job/instance escaping,
 * the Content-Type and the exact body, the ping GET, one log line per
 * change of state (failing with the reason, ok again with the count), a
 * body that cannot be built, a hung endpoint (request timeout, never two
 * requests at once, the loop keeps running while the request hangs),
 * push_free() with a request in flight, URL checks, host names through
 * a caller's resolver (CURLOPT_RESOLVE, cached for the TTL, a failed
 * lookup, a lookup slower than the interval, a lookup answered after
 * push_free()), and no watch left behind.
 */
#include "log.h"
#include "loop.h"
#include "push.h"
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NELEM(a) (sizeof(a) / sizeof *(a))
#define WAIT_MS 10000 /* for anything the server or libcurl must do */
#define REQ_KEEP 8    /* requests the server remembers */
#define REQ_MAX 8192

/* ---- the HTTP server thread ---- */

enum srv_mode {
	SRV_ANSWER, /* 500 for the first fail_first requests, then 200 */
	SRV_HANG,   /* read the request, never answer, wait for the close */
};

struct srv {
	int lfd;
	int port;
	pthread_t th;
	pthread_mutex_t mu;
	enum srv_mode mode;
	int fail_first;
	int conns;
	int nreq;
	char req[REQ_KEEP][REQ_MAX];
	bool pileup;		/* a connection waited while one was open */
	atomic_int hung_open;	/* a hung request is open right now */
	atomic_int hung_closed; /* hung connections the client closed */
	atomic_int stop;
};

static uint64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Reads head and body (Content-Length); returns bytes, 0 on failure. */
static size_t
srv_read_request(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	long body = -1;
	char *end = NULL;

	while (len + 1 < cap) {
		ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n <= 0)
			return 0;
		len += (size_t)n;
		buf[len] = '\0';
		if (!end && (end = strstr(buf, "\r\n\r\n"))) {
			char *cl = strcasestr(buf, "\r\nContent-Length:");
			body = cl && cl < end ? strtol(cl + 17, NULL, 10) : 0;
		}
		if (end && (long)(len - (size_t)(end + 4 - buf)) >= body)
			return len;
	}
	return 0;
}

/* Holds a hung request open until the client closes it. */
static void
srv_hang(struct srv *s, int fd)
{
	atomic_store(&s->hung_open, 1);
	while (!atomic_load(&s->stop)) {
		struct pollfd pf[2] = {{fd, POLLIN, 0}, {s->lfd, POLLIN, 0}};
		if (poll(pf, 2, 20) < 0 && errno != EINTR)
			break;
		if (pf[1].revents & POLLIN) {
			pthread_mutex_lock(&s->mu);
			s->pileup = true;
			pthread_mutex_unlock(&s->mu);
		}
		char c;
		if ((pf[0].revents & (POLLIN | POLLHUP)) &&
		    recv(fd, &c, 1, 0) <= 0) {
			atomic_fetch_add(&s->hung_closed, 1);
			break;
		}
	}
	atomic_store(&s->hung_open, 0);
}

static void
srv_serve(struct srv *s, int fd)
{
	char req[REQ_MAX];
	size_t n = srv_read_request(fd, req, sizeof req);
	if (n == 0)
		return;
	pthread_mutex_lock(&s->mu);
	int i = s->nreq++;
	if (i < REQ_KEEP)
		memcpy(s->req[i], req, n + 1);
	enum srv_mode mode = s->mode;
	bool fail = i < s->fail_first;
	pthread_mutex_unlock(&s->mu);
	if (mode == SRV_HANG) {
		srv_hang(s, fd);
		return;
	}
	const char *resp = fail ? "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n"
				  "Connection: close\r\n\r\n"
				: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
				  "Connection: close\r\n\r\nok";
	(void)!send(fd, resp, strlen(resp), MSG_NOSIGNAL);
}

static void *
srv_main(void *arg)
{
	struct srv *s = arg;
	while (!atomic_load(&s->stop)) {
		struct pollfd pf = {s->lfd, POLLIN, 0};
		if (poll(&pf, 1, 20) <= 0)
			continue;
		int fd = accept(s->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		pthread_mutex_lock(&s->mu);
		s->conns++;
		pthread_mutex_unlock(&s->mu);
		srv_serve(s, fd);
		close(fd);
	}
	return NULL;
}

static void
srv_start(struct srv *s, enum srv_mode mode, int fail_first)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof a;

	memset(s, 0, sizeof *s);
	s->mode = mode;
	s->fail_first = fail_first;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof a) ||
	    listen(s->lfd, 16) ||
	    getsockname(s->lfd, (struct sockaddr *)&a, &alen)) {
		perror("test server");
		exit(1);
	}
	s->port = ntohs(a.sin_port);
	pthread_mutex_init(&s->mu, NULL);
	if (pthread_create(&s->th, NULL, srv_main, s) != 0)
		exit(1);
}

static void
srv_stop(struct srv *s)
{
	atomic_store(&s->stop, 1);
	pthread_join(s->th, NULL);
	close(s->lfd);
	pthread_mutex_destroy(&s->mu);
}

static int
srv_nreq(struct srv *s)
{
	pthread_mutex_lock(&s->mu);
	int n = s->nreq;
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* ---- the pusher's side ---- */

struct fixture {
	struct loop *loop;
	struct logger *log;
	char log_path[64];
	int log_fd;
	char logs[1 << 16]; /* after fixture_end() */
};

static void
fixture_begin(struct fixture *f)
{
	strcpy(f->log_path, "/tmp/test_push-XXXXXX");
	f->log_fd = mkstemp(f->log_path);
	f->loop = loop_new();
	f->log =
	    f->log_fd >= 0 ? log_start("test", LOG_DEBUG, f->log_fd) : NULL;
	if (!f->loop || !f->log)
		exit(1);
	unlink(f->log_path);
}

/* Stops the logger and reads what it wrote into f->logs. */
static void
fixture_end(struct fixture *f)
{
	log_stop(f->log);
	ssize_t n = pread(f->log_fd, f->logs, sizeof f->logs - 1, 0);
	f->logs[n > 0 ? n : 0] = '\0';
	close(f->log_fd);
	loop_free(f->loop);
}

/* Lines of f->logs holding every one of the given strings. */
static int
count_logs(const struct fixture *f, const char *a, const char *b)
{
	int n = 0;
	const char *line = f->logs;
	while (*line) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char buf[4096];
		snprintf(buf, sizeof buf, "%.*s", (int)len, line);
		if (strstr(buf, a) && (!b || strstr(buf, b)))
			n++;
		line += len + (nl ? 1 : 0);
	}
	return n;
}

typedef bool done_fn(void *arg);

/* Runs the loop until done(arg) or WAIT_MS; returns done(arg). */
static bool
run_until(struct loop *loop, done_fn *done, void *arg)
{
	uint64_t end = mono_ms() + WAIT_MS;
	while (!done(arg) && mono_ms() < end)
		loop_run_once(loop, 20);
	return done(arg);
}

struct want {
	struct push *p;
	enum push_kind kind;
	uint64_t ok, failed;
};

static bool
counts_reached(void *arg)
{
	struct want *w = arg;
	struct push_counts c;
	push_get_counts(w->p, w->kind, &c);
	return c.ok >= w->ok && c.failed >= w->failed;
}

static const char body_text[] = "# HELP t_total T.\n# TYPE t_total counter\n"
				"t_total 42\n";

static size_t
body_ok(void *arg, char *buf, size_t cap, const char **err)
{
	int *calls = arg;
	(void)err;
	if (calls)
		(*calls)++;
	if (cap < sizeof body_text)
		return 0;
	memcpy(buf, body_text, sizeof body_text);
	return sizeof body_text - 1;
}

static size_t
body_fail(void *arg, char *buf, size_t cap, const char **err)
{
	(void)arg;
	(void)buf;
	(void)cap;
	*err = "metrics text does not fit in its buffer";
	return 0;
}

static struct push *
start(struct fixture *f, const struct push_opts *o)
{
	char err[512] = "";
	struct push *p = push_new(f->loop, f->log, o, err, sizeof err);
	if (!p)
		fprintf(stderr, "push_new: %s\n", err);
	CHECK(p != NULL);
	return p;
}

/* ---- tests ---- */

static void
test_push_and_ping(void)
{
	struct srv s;
	struct fixture f;
	char url[128], ping[128], want[256];
	int calls = 0;

	srv_start(&s, SRV_ANSWER, 0);
	fixture_begin(&f);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/gw/", s.port);
	snprintf(ping, sizeof ping, "http://127.0.0.1:%d/ping/abc", s.port);
	struct push_opts o = {
	    .push_url = url,
	    .ping_url = ping,
	    .job = "mail job",
	    .instance = "host/1",
	    .interval_ms = 60000, /* one round in this test */
	    .body = body_ok,
	    .body_arg = &calls,
	};
	struct push *p = start(&f, &o);
	if (!p)
		goto out;
	struct want w = {p, PUSH_METRICS, 1, 0}, wp = {p, PUSH_PING, 1, 0};
	CHECK(run_until(f.loop, counts_reached, &w));
	CHECK(run_until(f.loop, counts_reached, &wp));
	CHECK_INT(calls, 1);
	CHECK_INT(srv_nreq(&s), 2);

	/* Which request came first is up to the scheduler. */
	const char *put =
	    strncmp(s.req[0], "PUT ", 4) == 0 ? s.req[0] : s.req[1];
	const char *get = put == s.req[0] ? s.req[1] : s.req[0];
	snprintf(want, sizeof want,
		 "PUT /gw/metrics/job/mail%%20job/instance@base64/aG9zdC8x "
		 "HTTP/1.1\r\n");
	CHECK(strncmp(put, want, strlen(want)) == 0);
	CHECK(strcasestr(put, "\r\nContent-Type: text/plain; version=0.0.4; "
			      "charset=utf-8\r\n") != NULL);
	CHECK(strcasestr(put, "\r\nExpect:") == NULL);
	const char *body = strstr(put, "\r\n\r\n");
	CHECK(body && strcmp(body + 4, body_text) == 0);
	CHECK(strncmp(get, "GET /ping/abc HTTP/1.1\r\n", 24) == 0);

	push_free(p);
	CHECK_INT(loop_watch_count(f.loop), 0);
out:
	fixture_end(&f);
	srv_stop(&s);
	CHECK_INT(count_logs(&f, "\"event\":\"metrics.push_ok\"", NULL), 1);
	CHECK_INT(count_logs(&f, "\"event\":\"health.ping_ok\"", NULL), 1);
	CHECK_INT(count_logs(&f, "failing", NULL), 0);
}

/* Three failures make one "failing" line, the recovery one "ok" line. */
static void
test_failing_logged_once(void)
{
	struct srv s;
	struct fixture f;
	char url[128];

	srv_start(&s, SRV_ANSWER, 3);
	fixture_begin(&f);
	snprintf(url, sizeof url, "http://127.0.0.1:%d", s.port);
	struct push_opts o = {
	    .push_url = url,
	    .job = "j",
	    .instance = "i",
	    .interval_ms = 100,
	    .body = body_ok,
	};
	struct push *p = start(&f, &o);
	if (!p)
		goto out;
	struct want w = {p, PUSH_METRICS, 2, 3};
	CHECK(run_until(f.loop, counts_reached, &w));
	push_free(p);
out:
	fixture_end(&f);
	srv_stop(&s);
	CHECK_INT(count_logs(&f, "metrics.push_failing",
			     "\"reason\":\"HTTP status 500\""),
		  1);
	CHECK_INT(count_logs(&f, "metrics.push_failing", NULL), 1);
	CHECK_INT(count_logs(&f, "metrics.push_ok", "\"failures\":3"), 1);
	CHECK_INT(count_logs(&f, "metrics.push_ok", NULL), 1);
	/* The failing line comes first. */
	char *fail = strstr(f.logs, "metrics.push_failing");
	char *ok = strstr(f.logs, "metrics.push_ok");
	CHECK(fail && ok && fail < ok);
}

static void
test_body_error(void)
{
	struct srv s;
	struct fixture f;
	char url[128];

	srv_start(&s, SRV_ANSWER, 0);
	fixture_begin(&f);
	snprintf(url, sizeof url, "http://127.0.0.1:%d", s.port);
	struct push_opts o = {
	    .push_url = url,
	    .job = "j",
	    .instance = "i",
	    .interval_ms = 50,
	    .body = body_fail,
	};
	struct push *p = start(&f, &o);
	if (!p)
		goto out;
	struct want w = {p, PUSH_METRICS, 0, 3};
	CHECK(run_until(f.loop, counts_reached, &w));
	push_free(p);
out:
	fixture_end(&f);
	CHECK_INT(srv_nreq(&s), 0);
	srv_stop(&s);
	CHECK_INT(count_logs(&f, "metrics.push_failing",
			     "\"reason\":\"metrics text does not fit in its "
			     "buffer\""),
		  1);
	CHECK_INT(count_logs(&f, "metrics.push_failing", NULL), 1);
}

struct hang_watch {
	struct srv *s[2];
	struct loop_timer t;
	int ticks_while_hung; /* loop callbacks seen during a hung request */
};

static void
hang_tick(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct hang_watch *h = arg;
	if (atomic_load(&h->s[0]->hung_open) ||
	    atomic_load(&h->s[1]->hung_open))
		h->ticks_while_hung++;
	loop_timer_arm(loop, t, 5);
}

/*
 * Endpoints that never answer: each request ends at its timeout, a new
 * one of the same kind starts only after the previous closed, and the
 * loop keeps running other callbacks while a request hangs.
 */
static void
test_hung_endpoint(void)
{
	struct srv s, sp; /* push, ping */
	struct fixture f;
	struct hang_watch h = {.s = {&s, &sp}};
	char url[128], ping[128];

	srv_start(&s, SRV_HANG, 0);
	srv_start(&sp, SRV_HANG, 0);
	fixture_begin(&f);
	snprintf(url, sizeof url, "http://127.0.0.1:%d", s.port);
	snprintf(ping, sizeof ping, "http://127.0.0.1:%d", sp.port);
	struct push_opts o = {
	    .push_url = url,
	    .ping_url = ping,
	    .job = "j",
	    .instance = "i",
	    .interval_ms = 400, /* far from the timeout: no round skipped */
	    .timeout_ms = 100,
	    .body = body_ok,
	};
	struct push *p = start(&f, &o);
	if (!p)
		goto out;
	loop_timer_init(&h.t, hang_tick, &h);
	loop_timer_arm(f.loop, &h.t, 5);
	struct want w = {p, PUSH_METRICS, 0, 3}, wp = {p, PUSH_PING, 0, 3};
	CHECK(run_until(f.loop, counts_reached, &w));
	CHECK(run_until(f.loop, counts_reached, &wp));
	loop_timer_disarm(f.loop, &h.t);
	struct push_counts c;
	push_get_counts(p, PUSH_METRICS, &c);
	CHECK_INT(c.ok, 0);
	CHECK_INT(c.skipped, 0);
	push_free(p);
	CHECK_INT(loop_watch_count(f.loop), 0);
out:
	fixture_end(&f);
	srv_stop(&s);
	srv_stop(&sp);
	CHECK(h.ticks_while_hung > 0);
	CHECK(!s.pileup && !sp.pileup);
	CHECK(s.conns >= 3 && sp.conns >= 3);
	CHECK(atomic_load(&s.hung_closed) >= 3);
	CHECK_INT(count_logs(&f, "metrics.push_failing", "timed out"), 1);
	CHECK_INT(count_logs(&f, "health.ping_failing", "timed out"), 1);
	CHECK_INT(count_logs(&f, "failing", NULL), 2);
	CHECK_INT(count_logs(&f, "_ok", NULL), 0);
}

static bool
hung_now(void *arg)
{
	return atomic_load(&((struct srv *)arg)->hung_open) != 0;
}

static bool
hung_closed(void *arg)
{
	return atomic_load(&((struct srv *)arg)->hung_closed) > 0;
}

/* push_free() with a request in flight aborts it, without waiting. */
static void
test_free_in_flight(void)
{
	struct srv s;
	struct fixture f;
	char url[128];

	srv_start(&s, SRV_HANG, 0);
	fixture_begin(&f);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/", s.port);
	struct push_opts o = {
	    .push_url = url,
	    .job = "j",
	    .instance = "i",
	    .interval_ms = 60000, /* timeout 10 s: never reached here */
	    .body = body_ok,
	};
	struct push *p = start(&f, &o);
	if (!p)
		goto out;
	CHECK(run_until(f.loop, hung_now, &s));
	uint64_t t0 = mono_ms();
	push_free(p);
	CHECK(mono_ms() - t0 < PUSH_TIMEOUT_MAX_MS);
	CHECK_INT(loop_watch_count(f.loop), 0);
	/* The server sees the connection closed. */
	uint64_t end = mono_ms() + WAIT_MS;
	while (!hung_closed(&s) && mono_ms() < end)
		loop_run_once(f.loop, 20);
	CHECK(hung_closed(&s));
out:
	fixture_end(&f);
	srv_stop(&s);
	CHECK_INT(count_logs(&f, "metrics.", NULL), 0);
}

static void
test_url_checks(void)
{
	static const struct {
		const char *url;
		const char *err; /* NULL when valid */
	} cases[] = {
	    {"", NULL},
	    {"http://127.0.0.1:9091", NULL},
	    {"https://[::1]/gw/", NULL},
	    {"http://user:pw@10.0.0.1/", NULL},
	    {"HTTP://127.0.0.1", NULL},
	    {"ftp://127.0.0.1/", "must start with http:// or https://"},
	    {"127.0.0.1:9091", "not a URL"},
	    {"http://", "not a URL"},
	    {"http://1.2.3.4/?a=b", "must not have a query"},
	    {"http://1.2.3.4/#top", "must not have a query"},
	};
	for (size_t i = 0; i < NELEM(cases); i++) {
		char msg[512] = "";
		int rc = push_check_url(cases[i].url, msg, sizeof msg);
		CHECK_INT(rc, cases[i].err ? -1 : 0);
		if (cases[i].err && !strstr(msg, cases[i].err))
			CHECK_STR(msg, cases[i].err);
	}
	char msg[512] = "";
	CHECK_INT(push_check_host("http://127.0.0.1/", false, msg, sizeof msg),
		  0);
	CHECK_INT(push_check_host("http://[::1]:80/", false, msg, sizeof msg),
		  0);
	CHECK_INT(push_check_host("http://gw.test/", true, msg, sizeof msg), 0);
	int rc = push_check_host("http://gw.test/", false, msg, sizeof msg);
	if (push_curl_resolves()) {
		CHECK_INT(rc, 0);
	} else {
		CHECK_INT(rc, -1);
		CHECK(strstr(msg, "'gw.test'") && strstr(msg, "numeric"));
	}
}

/* Job and instance in the path: percent-encoded, or base64 for '/'. */
static void
test_grouping_path(void)
{
	static const struct {
		const char *job, *instance, *want;
	} cases[] = {
	    {"smtpd", "mx1",
	     "http://127.0.0.1:9/metrics/job/smtpd/instance/mx1"},
	    {"a b", "x~y.z-_",
	     "http://127.0.0.1:9/metrics/job/a%20b/"
	     "instance/x~y.z-_"},
	    {"j", "a/b",
	     "http://127.0.0.1:9/metrics/job/j/"
	     "instance@base64/YS9i"},
	    {"j", "", "http://127.0.0.1:9/metrics/job/j/instance@base64/="},
	    {"caf\xc3\xa9", "i",
	     "http://127.0.0.1:9/metrics/job/caf%C3%A9/"
	     "instance/i"},
	};
	struct fixture f;
	fixture_begin(&f);
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct push_opts o = {
		    .push_url = "http://127.0.0.1:9//",
		    .job = cases[i].job,
		    .instance = cases[i].instance,
		    .interval_ms = 1000,
		    .body = body_ok,
		};
		struct push *p = start(&f, &o);
		if (!p)
			continue;
		CHECK_STR(push_url(p, PUSH_METRICS), cases[i].want);
		CHECK_STR(push_url(p, PUSH_PING), "");
		push_free(p);
	}
	/* Bad options are refused with a message. */
	char err[512] = "";
	struct push_opts bad = {.push_url = "http://127.0.0.1/",
				.job = "j",
				.instance = "i",
				.interval_ms = 1000,
				.timeout_ms = 1000,
				.body = body_ok};
	CHECK(push_new(f.loop, f.log, &bad, err, sizeof err) == NULL);
	bad.timeout_ms = 0;
	bad.push_url = "gopher://127.0.0.1/";
	CHECK(push_new(f.loop, f.log, &bad, err, sizeof err) == NULL);
	CHECK(strstr(err, "metrics.push_url: must start with http://"));
	bad.push_url = NULL;
	bad.ping_url = "http://127.0.0.1/?x";
	CHECK(push_new(f.loop, f.log, &bad, err, sizeof err) == NULL);
	CHECK(strstr(err, "health.ping_url: must not have a query"));
	fixture_end(&f);
}

/* ---- host names through the caller's resolver ---- */

struct fake_resolver {
	struct loop *loop;
	struct loop_timer t;
	struct push_lookup *pending;
	char host[256];
	int calls;
	bool fail;
	bool hold; /* never answer by itself */
};

static void
fake_answer(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct fake_resolver *r = arg;
	struct sockaddr_storage ss[2];
	struct sockaddr_in *a = (struct sockaddr_in *)&ss[0];
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss[1];
	(void)loop;
	(void)t;

	memset(ss, 0, sizeof ss);
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a6->sin6_family = AF_INET6; /* passed on, the server is v4 only */
	a6->sin6_addr = in6addr_loopback;
	struct push_lookup *tok = r->pending;
	r->pending = NULL;
	push_resolved(tok, r->fail ? NULL : ss, r->fail ? 0 : 2, 60);
}

static int
fake_resolve(void *arg, const char *host, struct push_lookup *token)
{
	struct fake_resolver *r = arg;
	r->calls++;
	snprintf(r->host, sizeof r->host, "%s", host);
	r->pending = token;
	if (!r->hold)
		loop_timer_arm(r->loop, &r->t, 1); /* later, as c-ares does */
	return 0;
}

static void
test_resolver(void)
{
	struct srv s;
	struct fixture f;
	struct fake_resolver r = {0};
	char url[128], host_hdr[128];

	if (push_curl_resolves()) {
		fprintf(stderr, "test_resolver: libcurl resolves with c-ares; "
				"the resolver callback is not used\n");
		return;
	}
	srv_start(&s, SRV_ANSWER, 0);
	fixture_begin(&f);
	r.loop = f.loop;
	loop_timer_init(&r.t, fake_answer, &r);
	snprintf(url, sizeof url, "http://Push.Test:%d/", s.port);
	struct push_opts o = {
	    .push_url = url,
	    .job = "j",
	    .instance = "i",
	    .interval_ms = 100,
	    .body = body_ok,
	    .resolve = fake_resolve,
	    .resolver = &r,
	};
	struct push *p = start(&f, &o);
	if (!p)
		goto out;
	struct want w = {p, PUSH_METRICS, 3, 0};
	CHECK(run_until(f.loop, counts_reached, &w));
	struct push_counts c;
	push_get_counts(p, PUSH_METRICS, &c);
	CHECK_INT(c.lookups, 1); /* the answer's TTL (60 s) covers the rest */
	CHECK_INT(r.calls, 1);
	CHECK_STR(r.host, "Push.Test");
	snprintf(host_hdr, sizeof host_hdr, "\r\nHost: Push.Test:%d\r\n",
		 s.port);
	CHECK(strstr(s.req[0], host_hdr) != NULL);
	push_free(p);
out:
	fixture_end(&f);
	srv_stop(&s);
	CHECK_INT(count_logs(&f, "metrics.push_ok", NULL), 1);
}

static bool
lookup_pending(void *arg)
{
	return ((struct fake_resolver *)arg)->pending != NULL;
}

static void
test_resolver_failure_and_free(void)
{
	struct fixture f;
	struct fake_resolver r = {0};

	if (push_curl_resolves())
		return;
	fixture_begin(&f);
	r.loop = f.loop;
	r.fail = true;
	loop_timer_init(&r.t, fake_answer, &r);
	struct push_opts o = {
	    .push_url = "http://nowhere.test:9/",
	    .job = "j",
	    .instance = "i",
	    .interval_ms = 50,
	    .body = body_ok,
	    .resolve = fake_resolve,
	    .resolver = &r,
	};
	struct push *p = start(&f, &o);
	if (!p)
		goto out;
	struct want w = {p, PUSH_METRICS, 0, 2};
	CHECK(run_until(f.loop, counts_reached, &w));
	/* A failed lookup is not cached: each round asks again. */
	CHECK(r.calls >= 2);

	/* Freed with a lookup outstanding: the late answer is harmless. */
	CHECK(run_until(f.loop, lookup_pending, &r));
	push_free(p);
	r.fail = false;
	loop_run_once(f.loop, 50);
	loop_run_once(f.loop, 50);
	CHECK(r.pending == NULL);
	loop_timer_disarm(f.loop, &r.t);

	/* Without a resolver a host name is refused up front. */
	char err[512] = "";
	o.resolve = NULL;
	CHECK(push_new(f.loop, f.log, &o, err, sizeof err) == NULL);
	CHECK(strstr(err, "metrics.push_url: host 'nowhere.test' is a name"));
out:
	fixture_end(&f);
	CHECK_INT(count_logs(&f, "metrics.push_failing",
			     "cannot resolve host 'nowhere.test'"),
		  1);
	CHECK_INT(count_logs(&f, "metrics.", NULL), 1);
}

static bool
rounds_skipped(void *arg)
{
	struct push_counts c;
	push_get_counts(arg, PUSH_METRICS, &c);
	return c.skipped >= 3;
}

/* A lookup slower than the interval: rounds are skipped, not stacked. */
static void
test_slow_lookup_skips(void)
{
	struct fixture f;
	struct fake_resolver r = {0};

	if (push_curl_resolves())
		return;
	fixture_begin(&f);
	r.loop = f.loop;
	r.hold = true;
	struct push_opts o = {
	    .push_url = "http://slow.test:9/",
	    .job = "j",
	    .instance = "i",
	    .interval_ms = 20,
	    .body = body_ok,
	    .resolve = fake_resolve,
	    .resolver = &r,
	};
	struct push *p = start(&f, &o);
	if (!p)
		goto out;
	CHECK(run_until(f.loop, rounds_skipped, p));
	CHECK_INT(r.calls, 1);
	push_free(p);
	/* Answered after push_free(): only the token is freed. */
	CHECK(r.pending != NULL);
	if (r.pending)
		push_resolved(r.pending, NULL, 0, 0);
out:
	fixture_end(&f);
	CHECK_INT(count_logs(&f, "metrics.", NULL), 0);
}

int
main(void)
{
	test_url_checks();
	test_grouping_path();
	test_push_and_ping();
	test_failing_logged_once();
	test_body_error();
	test_hung_endpoint();
	test_free_in_flight();
	test_resolver();
	test_resolver_failure_and_free();
	test_slow_lookup_skips();
	return test_summary();
}

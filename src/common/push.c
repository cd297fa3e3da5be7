/*
 * push: Pushgateway pushes and health pings with libcurl's multi
 * interface on the loop. See push.h for the contract.
 *
 * URL handling lives in push_url.c.
 *
 * Owns: one CURLM, the loop watches of the sockets libcurl reports (kept
 * in a small table so push_free() can remove every one), one loop timer
 * for libcurl's timeouts, one for the rounds, and per kind of request
 * (metrics, ping) its URL, its single in-flight easy handle or lookup,
 * its cached CURLOPT_RESOLVE entry and its ok/failing state.
 *
 * Invariants: a target has at most one of easy/lookup at a time; an easy
 * handle is always either in the multi or freed; a lookup answered after
 * push_free() finds its target gone and only frees itself.
 */
#include "push.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "prom.h"
#include "push_url.h"

#define PUSH_RESOLVE_MAX                                                       \
	(300 + PUSH_RESOLVE_ADDRS * (INET6_ADDRSTRLEN + 3)) /* "h:p:a,..." */

enum push_state {
	PUSH_STATE_UNKNOWN,
	PUSH_STATE_OK,
	PUSH_STATE_FAILING,
};

struct push_target {
	struct push *p;
	enum push_kind kind;
	bool on;
	bool need_lookup; /* a host name resolved by the caller's resolver */
	char host[256];	  /* as in the URL, without [] */
	long port;
	char url[PUSH_URL_MAX];	  /* requests go here */
	char shown[PUSH_URL_MAX]; /* for logs: without credentials */
	CURL *easy;		  /* in flight */
	struct push_lookup *lookup;
	char resolve[PUSH_RESOLVE_MAX]; /* "" until looked up */
	uint64_t resolved_until;
	struct curl_slist *resolve_list; /* belongs to easy */
	char errbuf[CURL_ERROR_SIZE];
	enum push_state state;
	uint64_t failures; /* in a row */
	struct push_counts counts;
};

struct push_lookup {
	struct push_target *t; /* NULL once the pusher is gone */
};

struct push {
	struct loop *loop;
	struct logger *log;
	CURLM *multi;
	bool curl_inited;
	struct loop_timer round;
	struct loop_timer curl_timer;
	uint64_t interval_ms;
	uint64_t timeout_ms;
	push_body_fn *body_fn;
	void *body_arg;
	push_resolve_fn *resolve;
	void *resolver;
	char user_agent[128];
	struct curl_slist *headers; /* for the PUT */
	int fds[PUSH_MAX_SOCKETS];  /* watched for libcurl; -1 = free */
	size_t body_len;
	char body[PUSH_BODY_MAX];
	struct push_target t[PUSH_KINDS];
};

static const char *const fail_events[PUSH_KINDS] = {"metrics.push_failing",
						    "health.ping_failing"};
static const char *const ok_events[PUSH_KINDS] = {"metrics.push_ok",
						  "health.ping_ok"};

/* ---- results and logging ---- */

static void
push_result(struct push_target *t, bool ok, const char *reason)
{
	struct push *p = t->p;
	struct log_line *l = NULL;

	if (ok) {
		t->counts.ok++;
		if (t->state != PUSH_STATE_OK) {
			l = log_begin(p->log, LOG_INFO, ok_events[t->kind]);
			log_str(l, "url", t->shown);
			if (t->state == PUSH_STATE_FAILING)
				log_uint(l, "failures", t->failures);
		}
		t->state = PUSH_STATE_OK;
		t->failures = 0;
	} else {
		t->counts.failed++;
		t->failures++;
		if (t->state != PUSH_STATE_FAILING) {
			l = log_begin(p->log, LOG_WARN, fail_events[t->kind]);
			log_str(l, "url", t->shown);
			log_str(l, "reason", reason);
		}
		t->state = PUSH_STATE_FAILING;
	}
	log_end(l);
}

/* Drops a finished or aborted transfer of t. */
static void
push_target_release(struct push_target *t)
{
	if (t->easy) {
		curl_multi_remove_handle(t->p->multi, t->easy);
		curl_easy_cleanup(t->easy);
		t->easy = NULL;
	}
	curl_slist_free_all(t->resolve_list);
	t->resolve_list = NULL;
}

static void
push_check_done(struct push *p)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(p->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		char *priv = NULL;
		long status = 0;
		char reason[CURL_ERROR_SIZE + 64];
		CURLcode code = m->data.result;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
		struct push_target *t = (struct push_target *)priv;
		curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE,
				  &status);
		if (!t || t->easy != m->easy_handle)
			continue;
		if (code != CURLE_OK)
			snprintf(reason, sizeof reason, "%s",
				 t->errbuf[0] ? t->errbuf
					      : curl_easy_strerror(code));
		else
			snprintf(reason, sizeof reason, "HTTP status %ld",
				 status);
		push_target_release(t);
		push_result(t,
			    code == CURLE_OK && status >= 200 && status < 300,
			    reason);
	}
}

/* ---- libcurl on the loop ---- */

static void
push_on_io(struct loop *loop, int fd, unsigned events, void *arg)
{
	struct push *p = arg;
	int running, flags = 0;
	(void)loop;
	if (events & LOOP_READ)
		flags |= CURL_CSELECT_IN;
	if (events & LOOP_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(p->multi, fd, flags, &running);
	push_check_done(p);
}

static void
push_forget_fd(struct push *p, int fd)
{
	for (size_t i = 0; i < PUSH_MAX_SOCKETS; i++)
		if (p->fds[i] == fd)
			p->fds[i] = -1;
}

static bool
push_remember_fd(struct push *p, int fd)
{
	int *slot = NULL;
	for (size_t i = 0; i < PUSH_MAX_SOCKETS; i++) {
		if (p->fds[i] == fd)
			return true;
		if (p->fds[i] < 0 && !slot)
			slot = &p->fds[i];
	}
	if (!slot)
		return false;
	*slot = fd;
	return true;
}

/*
 * CURLMOPT_SOCKETFUNCTION. Never returns -1: that would make the whole
 * multi handle unusable. A socket we cannot watch stalls its transfer
 * until the request timeout ends it.
 */
static int
push_on_socket(CURL *easy, curl_socket_t s, int what, void *userp,
	       void *socketp)
{
	struct push *p = userp;
	(void)easy;
	(void)socketp;

	if (what == CURL_POLL_REMOVE) {
		loop_unwatch(p->loop, s);
		push_forget_fd(p, s);
		return 0;
	}
	unsigned ev = 0;
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		ev |= LOOP_READ;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		ev |= LOOP_WRITE;
	if (push_remember_fd(p, s) &&
	    loop_watch(p->loop, s, ev, push_on_io, p) != 0)
		push_forget_fd(p, s);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: one loop timer; -1 disarms it. */
static int
push_on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct push *p = userp;
	(void)multi;
	if (timeout_ms < 0)
		loop_timer_disarm(p->loop, &p->curl_timer);
	else
		loop_timer_arm(p->loop, &p->curl_timer, (uint64_t)timeout_ms);
	return 0;
}

static void
push_curl_timeout(struct loop *loop, struct loop_timer *timer, void *arg)
{
	struct push *p = arg;
	int running;
	(void)loop;
	(void)timer;
	curl_multi_socket_action(p->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	push_check_done(p);
}

/* CURLOPT_OPENSOCKETFUNCTION: select() cannot watch fd >= FD_SETSIZE. */
static curl_socket_t
push_open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	(void)arg;
	(void)purpose;
	int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	if (fd >= FD_SETSIZE) {
		close(fd);
		errno = EMFILE;
		return CURL_SOCKET_BAD;
	}
	return fd < 0 ? CURL_SOCKET_BAD : fd;
}

/* The response body is not ours to read; never let it reach stdout. */
static size_t
push_discard(char *ptr, size_t size, size_t n, void *arg)
{
	(void)ptr;
	(void)arg;
	return size * n;
}

/* ---- requests ---- */

static CURL *
push_easy(struct push_target *t)
{
	struct push *p = t->p;
	CURL *e = curl_easy_init();
	if (!e)
		return NULL;
	t->errbuf[0] = '\0';
	long tmo = (long)p->timeout_ms;
	bool ok =
	    curl_easy_setopt(e, CURLOPT_URL, t->url) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_PRIVATE, t) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, tmo) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, tmo) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") ==
		CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_PROXY, "") == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_USERAGENT, p->user_agent) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, push_discard) ==
		CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, push_open_socket) ==
		CURLE_OK;
	if (ok && t->resolve_list)
		ok = curl_easy_setopt(e, CURLOPT_RESOLVE, t->resolve_list) ==
		     CURLE_OK;
	if (ok && t->kind == PUSH_METRICS) {
		/* PUT replaces the whole group (Pushgateway API). */
		ok = curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT") ==
			 CURLE_OK &&
		     curl_easy_setopt(e, CURLOPT_POSTFIELDS, p->body) ==
			 CURLE_OK &&
		     curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
				      (curl_off_t)p->body_len) == CURLE_OK &&
		     curl_easy_setopt(e, CURLOPT_HTTPHEADER, p->headers) ==
			 CURLE_OK;
	} else if (ok) {
		ok = curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) == CURLE_OK;
	}
	if (!ok) {
		curl_easy_cleanup(e);
		return NULL;
	}
	return e;
}

static void
push_target_send(struct push_target *t)
{
	struct push *p = t->p;
	const char *why = "cannot start the request";

	if (t->kind == PUSH_METRICS) {
		why = "no metrics text";
		p->body_len =
		    p->body_fn(p->body_arg, p->body, sizeof p->body, &why);
		if (p->body_len == 0)
			goto fail;
		why = "cannot start the request";
	}
	if (t->resolve[0] &&
	    !(t->resolve_list = curl_slist_append(NULL, t->resolve)))
		goto fail;
	t->easy = push_easy(t);
	if (!t->easy)
		goto fail;
	if (curl_multi_add_handle(p->multi, t->easy) != CURLM_OK) {
		curl_easy_cleanup(t->easy);
		t->easy = NULL;
		goto fail;
	}
	return;
fail:
	push_target_release(t);
	push_result(t, false, why);
}

void
push_resolved(struct push_lookup *lk, const struct sockaddr_storage *addrs,
	      size_t n, uint32_t ttl)
{
	struct push_target *t = lk->t;
	free(lk);
	if (!t)
		return; /* the pusher is gone */
	t->lookup = NULL;
	if (n == 0 || !addrs ||
	    push_url_resolve_entry(t->resolve, sizeof t->resolve, t->host,
				   t->port, addrs, n) != 0) {
		char why[300];
		snprintf(why, sizeof why, "cannot resolve host '%s'", t->host);
		push_result(t, false, why);
		return;
	}
	uint64_t keep = (uint64_t)ttl * 1000;
	if (keep < PUSH_MIN_TTL_MS)
		keep = PUSH_MIN_TTL_MS;
	if (keep > PUSH_MAX_TTL_MS)
		keep = PUSH_MAX_TTL_MS;
	t->resolved_until = loop_now(t->p->loop) + keep;
	push_target_send(t);
}

static void
push_target_lookup(struct push_target *t)
{
	struct push *p = t->p;
	struct push_lookup *lk = calloc(1, sizeof *lk);
	if (!lk) {
		push_result(t, false, "out of memory");
		return;
	}
	lk->t = t;
	t->lookup = lk;
	t->counts.lookups++;
	if (p->resolve(p->resolver, t->host, lk) != 0) {
		if (t->lookup == lk) {
			t->lookup = NULL;
			free(lk);
		}
		push_result(t, false, "cannot start the name lookup");
	}
}

static void
push_target_round(struct push_target *t)
{
	if (!t->on)
		return;
	if (t->easy || t->lookup) {
		t->counts.skipped++;
		return;
	}
	if (t->need_lookup &&
	    (!t->resolve[0] || loop_now(t->p->loop) >= t->resolved_until)) {
		push_target_lookup(t);
		return;
	}
	push_target_send(t);
}

static void
push_round(struct loop *loop, struct loop_timer *timer, void *arg)
{
	struct push *p = arg;
	loop_timer_arm(loop, timer, p->interval_ms);
	for (int k = 0; k < PUSH_KINDS; k++)
		push_target_round(&p->t[k]);
}

/* ---- life cycle ---- */

static int
push_target_init(struct push *p, enum push_kind kind, const char *url,
		 const struct push_opts *o, char *err, size_t errlen)
{
	static const char *const keys[PUSH_KINDS] = {"metrics.push_url",
						     "health.ping_url"};
	struct push_target *t = &p->t[kind];
	struct push_url_parts parts;
	char msg[512];

	t->p = p;
	t->kind = kind;
	if (!url || !url[0])
		return 0;
	if (push_check_host(url, o->resolve != NULL, msg, sizeof msg) != 0 ||
	    push_url_parse(url, &parts, msg, sizeof msg) != 0) {
		snprintf(err, errlen, "%s: %s", keys[kind], msg);
		return -1;
	}
	snprintf(t->host, sizeof t->host, "%s", parts.host);
	t->port = parts.port;
	/* The caller's resolver (the sender's dns.servers) wins over
	 * libcurl's own, which would read /etc/resolv.conf. */
	t->need_lookup =
	    !parts.numeric && (o->resolve != NULL || !push_curl_resolves());
	snprintf(t->url, sizeof t->url, "%s", parts.full);
	snprintf(t->shown, sizeof t->shown, "%s", parts.shown);
	if (kind == PUSH_METRICS) {
		if (!o->job || !o->instance || !o->body ||
		    push_url_append_label(t->url, sizeof t->url, "metrics/job",
					  o->job) != 0 ||
		    push_url_append_label(t->url, sizeof t->url, "instance",
					  o->instance) != 0 ||
		    push_url_append_label(t->shown, sizeof t->shown,
					  "metrics/job", o->job) != 0 ||
		    push_url_append_label(t->shown, sizeof t->shown, "instance",
					  o->instance) != 0) {
			snprintf(err, errlen,
				 "%s: job or instance missing or too long",
				 keys[kind]);
			return -1;
		}
	}
	t->on = true;
	return 0;
}

static int
push_curl_setup(struct push *p)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -1;
	p->curl_inited = true;
	p->multi = curl_multi_init();
	if (!p->multi)
		return -1;
	p->headers =
	    curl_slist_append(NULL, "Content-Type: " PROM_CONTENT_TYPE);
	if (!p->headers)
		return -1;
	/* No "Expect: 100-continue" round trip before the body. */
	struct curl_slist *h = curl_slist_append(p->headers, "Expect:");
	if (!h)
		return -1;
	p->headers = h;
	if (curl_multi_setopt(p->multi, CURLMOPT_SOCKETFUNCTION,
			      push_on_socket) != CURLM_OK ||
	    curl_multi_setopt(p->multi, CURLMOPT_SOCKETDATA, p) != CURLM_OK ||
	    curl_multi_setopt(p->multi, CURLMOPT_TIMERFUNCTION,
			      push_on_curl_timer) != CURLM_OK ||
	    curl_multi_setopt(p->multi, CURLMOPT_TIMERDATA, p) != CURLM_OK)
		return -1;
	return 0;
}

struct push *
push_new(struct loop *loop, struct logger *log, const struct push_opts *o,
	 char *err, size_t errlen)
{
	if (o->interval_ms < PUSH_MIN_INTERVAL_MS ||
	    o->timeout_ms >= o->interval_ms) {
		snprintf(err, errlen, "push: bad interval or timeout");
		return NULL;
	}
	struct push *p = calloc(1, sizeof *p);
	if (!p) {
		snprintf(err, errlen, "push: out of memory");
		return NULL;
	}
	p->loop = loop;
	p->log = log;
	p->interval_ms = o->interval_ms;
	p->timeout_ms = o->timeout_ms;
	if (p->timeout_ms == 0) {
		p->timeout_ms = o->interval_ms - o->interval_ms / 4;
		if (p->timeout_ms > PUSH_TIMEOUT_MAX_MS)
			p->timeout_ms = PUSH_TIMEOUT_MAX_MS;
	}
	p->body_fn = o->body;
	p->body_arg = o->body_arg;
	p->resolve = o->resolve;
	p->resolver = o->resolver;
	snprintf(p->user_agent, sizeof p->user_agent, "%s",
		 o->user_agent ? o->user_agent : "mta/" MTA_VERSION);
	for (size_t i = 0; i < PUSH_MAX_SOCKETS; i++)
		p->fds[i] = -1;
	loop_timer_init(&p->round, push_round, p);
	loop_timer_init(&p->curl_timer, push_curl_timeout, p);
	err[0] = '\0';
	if (push_target_init(p, PUSH_METRICS, o->push_url, o, err, errlen) ||
	    push_target_init(p, PUSH_PING, o->ping_url, o, err, errlen))
		goto fail;
	if (push_curl_setup(p) != 0 ||
	    loop_timer_arm(loop, &p->round, 0) != 0) {
		snprintf(err, errlen, "push: cannot start libcurl");
		goto fail;
	}
	return p;
fail:
	push_free(p);
	return NULL;
}

void
push_free(struct push *p)
{
	if (!p)
		return;
	for (int k = 0; k < PUSH_KINDS; k++) {
		struct push_target *t = &p->t[k];
		push_target_release(t);
		if (t->lookup)
			t->lookup->t = NULL; /* it frees itself when answered */
		t->lookup = NULL;
	}
	if (p->multi)
		curl_multi_cleanup(p->multi);
	/* Whatever libcurl did not report removed is unwatched here. */
	for (size_t i = 0; i < PUSH_MAX_SOCKETS; i++)
		if (p->fds[i] >= 0)
			loop_unwatch(p->loop, p->fds[i]);
	loop_timer_disarm(p->loop, &p->round);
	loop_timer_disarm(p->loop, &p->curl_timer);
	curl_slist_free_all(p->headers);
	if (p->curl_inited)
		curl_global_cleanup();
	free(p);
}

void
push_get_counts(const struct push *p, enum push_kind kind,
		struct push_counts *out)
{
	*out = p->t[kind].counts;
}

const char *
push_url(const struct push *p, enum push_kind kind)
{
	return p->t[kind].on ? p->t[kind].url : "";
}

int
push_config_defaults(struct push_config *c, const char *job)
{
	c->push_url = strdup("");
	c->ping_url = strdup("");
	c->interval = 15 * 1000;
	c->job = strdup(job);
	c->instance = net_local_hostname();
	return c->push_url && c->ping_url && c->job && c->instance ? 0 : -1;
}

int
push_start(struct loop *loop, struct logger *log, const struct push_config *c,
	   struct push_opts *o, struct push **out, char *err, size_t errlen)
{
	o->push_url = c->push_url;
	o->ping_url = c->ping_url;
	o->job = c->job;
	o->instance = c->instance;
	o->interval_ms = c->interval;
	*out = NULL;
	if ((!o->push_url || !o->push_url[0]) &&
	    (!o->ping_url || !o->ping_url[0]))
		return 0;
	*out = push_new(loop, log, o, err, errlen);
	return *out ? 0 : -1;
}

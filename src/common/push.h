/*
 * push: metrics push (Prometheus Pushgateway API) and a health ping over
 * HTTP, with libcurl's multi interface driven by the one loop.
 *
 * Every interval (the first right at start) the caller's body function
 * writes the metrics text, which is PUT to
 * <push_url>/metrics/job/<job>/instance/<instance>, and the ping URL gets
 * a GET. CURLMOPT_SOCKETFUNCTION and CURLMOPT_TIMERFUNCTION map onto loop
 * watches and one loop timer; readiness goes to curl_multi_socket_action.
 * Nothing here blocks the worker.
 *
 * Limits: each request has a total timeout shorter than the interval and
 * at most one request of each kind is in flight; a round that finds the
 * previous one still running (a slow name lookup) is skipped, so a slow
 * endpoint never piles up requests. Sockets at or past FD_SETSIZE are
 * refused (select() could not watch them): that request fails.
 *
 * Names: no resolver thread. When libcurl was built with c-ares it
 * resolves on its own sockets; otherwise a numeric host (IPv4 or [IPv6])
 * needs no lookup, and a host name is looked up through the caller's
 * resolver and handed to libcurl with CURLOPT_RESOLVE (cached for the
 * answer's TTL). Without a resolver a host name is refused by push_new().
 * Proxies (also from the environment) are never used.
 *
 * Logging: one line when a target starts failing (with the reason) and
 * one when it works again, never one per failure:
 *   metrics.push_failing / metrics.push_ok, health.ping_failing /
 *   health.ping_ok, with "url" (credentials removed); the first result
 *   after start is logged too.
 */
#ifndef MTA_PUSH_H
#define MTA_PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "loop.h"

#define PUSH_BODY_MAX (64 * 1024) /* metrics text per push */
#define PUSH_TIMEOUT_MAX_MS 10000 /* derived request timeouts stop here */
#define PUSH_URL_MAX 2048	  /* a full request URL */
#define PUSH_RESOLVE_ADDRS 4	  /* addresses passed per host name */
#define PUSH_MAX_SOCKETS 16	  /* sockets libcurl may have at once */
#define PUSH_MIN_TTL_MS 1000	  /* a looked-up address is kept ... */
#define PUSH_MAX_TTL_MS 3600000	  /* ... this long at least / most */
#define PUSH_MIN_INTERVAL_MS 10

enum push_kind {
	PUSH_METRICS,
	PUSH_PING,
	PUSH_KINDS,
};

struct logger;
struct push;
struct push_lookup; /* one outstanding name lookup */

/*
 * Writes the metrics text into buf (at most cap bytes). Returns its
 * length, or 0 with *err saying why there is nothing to push.
 */
typedef size_t push_body_fn(void *arg, char *buf, size_t cap, const char **err);

/*
 * Starts looking up host's addresses. Returns 0 and later, from the loop
 * and never inside this call, calls push_resolved(token, ...) exactly
 * once, also when the lookup is cancelled; or returns -1 and never calls
 * it. The sender's dns_query_addr() fits through a two-line adapter.
 */
typedef int push_resolve_fn(void *resolver, const char *host,
			    struct push_lookup *token);

/* The answer to a lookup: n == 0 when the name did not resolve. The
 * ports in addrs are ignored; ttl in seconds. Safe after push_free(). */
void push_resolved(struct push_lookup *token,
		   const struct sockaddr_storage *addrs, size_t n,
		   uint32_t ttl);

struct push_opts {
	const char *push_url; /* NULL or "" = no metrics push */
	const char *ping_url; /* NULL or "" = no ping */
	const char *job;      /* Pushgateway grouping labels */
	const char *instance;
	uint64_t interval_ms; /* >= PUSH_MIN_INTERVAL_MS */
	uint64_t timeout_ms;  /* 0: 3/4 of the interval, capped at
				 PUSH_TIMEOUT_MAX_MS; always < interval */
	push_body_fn *body;   /* required with push_url */
	void *body_arg;
	push_resolve_fn *resolve; /* NULL: host names need c-ares libcurl */
	void *resolver;
	const char *user_agent; /* NULL: "mta/<version>" */
};

/* The metrics.* and health.* settings, the same in both programs. */
struct push_config {
	char *push_url;	   /* "" = no metrics push */
	uint64_t interval; /* ms, for pushes and pings */
	char *job;
	char *instance;
	char *ping_url; /* "" = no ping */
};

/* Their config_key entries, for a member m of the settings struct st. */
#define PUSH_KEY(path, type, off, min, max, check)                             \
	{                                                                      \
		path, type, off, min, max, NULL, check, NULL                   \
	}
#define PUSH_CONFIG_KEYS(st, m)                                                \
	PUSH_KEY("metrics.push_url", CONFIG_STRING, offsetof(st, m.push_url),  \
		 0, 0, push_check_url),                                        \
	    PUSH_KEY("metrics.interval", CONFIG_DURATION,                      \
		     offsetof(st, m.interval), 1000, 86400000, NULL),          \
	    PUSH_KEY("metrics.job", CONFIG_STRING, offsetof(st, m.job), 0, 0,  \
		     config_check_nonempty),                                   \
	    PUSH_KEY("metrics.instance", CONFIG_STRING,                        \
		     offsetof(st, m.instance), 0, 0, config_check_nonempty),   \
	    PUSH_KEY("health.ping_url", CONFIG_STRING,                         \
		     offsetof(st, m.ping_url), 0, 0, push_check_url)

/* Defaults: both URLs off, every 15 s, job, instance the host name.
 * Returns -1 when out of memory. */
int push_config_defaults(struct push_config *, const char *job);

/*
 * push_new() with c's URLs, labels and interval, and o's body, resolver
 * and user agent. *out stays NULL (and 0 is returned) when both URLs are
 * empty. Returns 0, or -1 with err set.
 */
int push_start(struct loop *, struct logger *, const struct push_config *c,
	       struct push_opts *o, struct push **out, char *err,
	       size_t errlen);

/*
 * Starts pushing on loop; the first round runs in the next loop pass.
 * Returns NULL with err set (bad URL, a host name that cannot be
 * resolved without a thread, libcurl failure).
 */
struct push *push_new(struct loop *, struct logger *, const struct push_opts *,
		      char *err, size_t errlen);
/*
 * Aborts whatever is in flight (never waits for an endpoint), removes
 * every watch and timer, frees. NULL is a no-op.
 */
void push_free(struct push *);

/*
 * A config_check_fn for push and ping URLs: empty (off), or http:// or
 * https:// with a host, without a query or fragment.
 */
int push_check_url(const char *url, char *msg, size_t cap);
/*
 * 0 when url's host can be reached without a resolver thread: a numeric
 * address, a libcurl that resolves with c-ares, or have_resolver. Else
 * -1 with msg saying to use a numeric address. Empty url: 0.
 */
int push_check_host(const char *url, bool have_resolver, char *msg, size_t cap);
/* True when libcurl resolves host names with c-ares (no thread). */
bool push_curl_resolves(void);

/* What happened to one kind of request so far (tests, diagnostics). */
struct push_counts {
	uint64_t ok;
	uint64_t failed;
	uint64_t skipped; /* rounds skipped: the previous still running */
	uint64_t lookups; /* resolver calls */
};
void push_get_counts(const struct push *, enum push_kind, struct push_counts *);
/* The full URL requests of kind go to ("" when that kind is off). */
const char *push_url(const struct push *, enum push_kind);

#endif

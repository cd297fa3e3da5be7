/*
 * smtpd_metrics: what smtpd pushes (Prometheus text from the server's
 * counters) and the pusher set up from the metrics.* and health.* keys.
 */
#ifndef MTA_SMTPD_METRICS_H
#define MTA_SMTPD_METRICS_H

#include <stddef.h>

struct dns;
struct push;
struct server;

/*
 * Writes the metrics text of srv into buf. A push_body_fn: returns the
 * length, or 0 with *err set when it does not fit.
 */
size_t smtpd_metrics_text(void *srv, char *buf, size_t cap, const char **err);

/*
 * Starts pushing and pinging as configured, resolving host names through
 * dns (NULL: numeric hosts only). Returns 0 with *out NULL when both URLs
 * are empty, 0 with *out set, or -1 with err filled.
 */
int smtpd_metrics_start(struct server *, struct dns *, struct push **out,
			char *err, size_t errlen);

#endif

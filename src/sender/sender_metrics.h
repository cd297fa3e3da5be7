/*
 * sender_metrics: what sender pushes (Prometheus text from the worker's
 * counters) and the pusher set up from the metrics.* and health.* keys,
 * resolving the push host through the sender's own c-ares channel.
 */
#ifndef MTA_SENDER_METRICS_H
#define MTA_SENDER_METRICS_H

#include <stddef.h>

struct push;
struct sender;

#define SENDER_METRICS_MX_MAX 200 /* MX hosts listed by name per push */

/* A push_body_fn over struct sender. */
size_t sender_metrics_text(void *snd, char *buf, size_t cap, const char **err);
/* 0 with *out NULL when both URLs are empty, 0 with *out set, or -1. */
int sender_metrics_start(struct sender *, struct push **out, char *err,
			 size_t errlen);

#endif

/*
 * sender_metrics: deliveries by outcome (one per delivery.* log line),
 * messages in work, sessions opened per MX host, DNS lookups and
 * failures, dropped log lines and up-time as Prometheus text, pushed by
 * push.c from the worker's loop. Host names in push and ping URLs are
 * looked up with dns_query_addr() (no resolver thread).
 */
#include "sender_metrics.h"

#include "dns.h"
#include "log.h"
#include "prom.h"
#include "push.h"
#include "push_dns.h"
#include "sender.h"
#include "sender_config.h"

static void
sender_metrics_mx(struct prom *p, const struct sender *snd)
{
	const struct mxq_table *t = &snd->queues;
	size_t listed = 0;

	prom_family(p, "sender_sessions_opened_total", PROM_COUNTER,
		    "SMTP sessions opened, per MX host (or smarthost).");
	for (size_t i = 0; i < t->nbuckets; i++)
		for (const struct mxq *q = t->buckets[i]; q; q = q->next) {
			if (listed++ >= SENDER_METRICS_MX_MAX)
				return;
			const struct prom_label l = {"mx", q->key};
			prom_sample_u64(p, &l, 1, q->sessions);
		}
}

size_t
sender_metrics_text(void *arg, char *buf, size_t cap, const char **err)
{
	const struct sender *snd = arg;
	static const char *const outcomes[] = {"sent", "deferred", "bounced"};
	struct prom p;

	prom_init(&p, buf, cap);
	prom_family(&p, "sender_deliveries_total", PROM_COUNTER,
		    "Recipient outcomes, one per delivery.* log line.");
	for (int i = 0; i < 3; i++) {
		const struct prom_label l = {"outcome", outcomes[i]};
		prom_sample_u64(&p, &l, 1, snd->deliveries[i]);
	}
	prom_gauge(&p, "sender_queue_messages",
		   "Messages this instance has claimed and not finished "
		   "(in work or waiting for a retry).",
		   (double)snd->messages);
	prom_gauge(&p, "sender_sessions_active", "SMTP sessions open now.",
		   (double)snd->clients);
	sender_metrics_mx(&p, snd);
	prom_counter(&p, "sender_dns_lookups_total",
		     "DNS queries started (MX and address).",
		     dns_lookups(snd->dns));
	prom_counter(&p, "sender_dns_failures_total",
		     "DNS queries that failed (not NXDOMAIN or no data).",
		     dns_failures(snd->dns));
	prom_counter(&p, "sender_log_lines_dropped_total",
		     "Log lines dropped because the logger fell behind.",
		     log_dropped(snd->log));
	prom_gauge(&p, "sender_uptime_seconds", "Seconds since sender started.",
		   (double)(loop_now(snd->loop) - snd->started_ms) / 1000.0);
	return prom_finish(&p, err);
}

int
sender_metrics_start(struct sender *snd, struct push **out, char *err,
		     size_t errlen)
{
	struct push_opts o = {
	    .body = sender_metrics_text,
	    .body_arg = snd,
	    .resolve = push_dns_lookup,
	    .resolver = snd->dns,
	    .user_agent = "mta-sender/" MTA_VERSION,
	};
	return push_start(snd->loop, snd->log, &snd->cfg->push, &o, out, err,
			  errlen);
}

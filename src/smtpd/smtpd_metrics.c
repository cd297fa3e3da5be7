/*
 * smtpd_metrics: the counters of struct smtpd_stats (each tied to a log
 * event), live connections, dropped log lines and up-time as Prometheus
 * text, pushed by push.c from the server's loop.
 */
#include "smtpd_metrics.h"

#include <stdio.h>

#include "log.h"
#include "prom.h"
#include "push.h"
#include "push_dns.h"
#include "server.h"
#include "smtpd_config.h"

size_t
smtpd_metrics_text(void *arg, char *buf, size_t cap, const char **err)
{
	const struct server *srv = arg;
	const struct smtpd_stats *st = &srv->ctx.stats;
	static const struct prom_label version[] = {{"version", MTA_VERSION}};
	struct prom p;

	prom_init(&p, buf, cap);
	prom_counter(&p, "smtpd_connections_total",
		     "SMTP sessions opened (greeted with 220).",
		     st->connections);
	prom_counter(&p, "smtpd_connections_refused_total",
		     "Connections refused with 421 at connect "
		     "(connection limits).",
		     st->refused);
	prom_gauge(&p, "smtpd_connections_active", "SMTP sessions open now.",
		   (double)srv->nconns);
	prom_counter(
	    &p, "smtpd_messages_accepted_total",
	    "Messages stored in the Maildir and acknowledged with 250.",
	    st->msgs_accepted);
	prom_counter(&p, "smtpd_messages_rejected_total",
		     "Transactions that reached DATA but stored nothing: "
		     "refused at the end of data (size, mail loop, bare LF), "
		     "a storage error, or the connection lost during DATA.",
		     st->msgs_rejected);
	prom_counter(&p, "smtpd_recipients_rejected_total",
		     "Recipients refused by the relay policy (554 5.7.1).",
		     st->rcpts_rejected);
	prom_counter(&p, "smtpd_received_bytes_total",
		     "Bytes of accepted messages as stored (dot-unstuffed, "
		     "LF line ends), without the envelope and Received: "
		     "header.",
		     st->bytes_accepted);
	prom_counter(&p, "smtpd_log_lines_dropped_total",
		     "Log lines dropped because the logger fell behind.",
		     log_dropped(srv->log));
	prom_gauge(&p, "smtpd_uptime_seconds", "Seconds since smtpd started.",
		   (double)(loop_now(srv->loop) - srv->started_ms) / 1000.0);
	prom_family(&p, "smtpd_build_info", PROM_GAUGE,
		    "Always 1; the version is in the label.");
	prom_sample_u64(&p, version, 1, 1);
	return prom_finish(&p, err);
}

int
smtpd_metrics_start(struct server *srv, struct dns *dns, struct push **out,
		    char *err, size_t errlen)
{
	struct push_opts o = {
	    .body = smtpd_metrics_text,
	    .body_arg = srv,
	    .resolve = dns ? push_dns_lookup : NULL,
	    .resolver = dns,
	    .user_agent = "mta-smtpd/" MTA_VERSION,
	};
	return push_start(srv->loop, srv->log, &srv->cfg->push, &o, out, err,
			  errlen);
}

/*
 * smtpd: command line, start-up and shutdown. Everything else lives in
 * the smtpd_core library so tests link the real code.
 *
 * Exit codes (sysexits): 0 ok, 64 usage, 78 configuration, 1 other.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <unistd.h>

#include "cli.h"
#include "dns.h"
#include "health.h"
#include "log.h"
#include "loop.h"
#include "maildir.h"
#include "push.h"
#include "server.h"
#include "smtpd_config.h"
#include "smtpd_metrics.h"

static const char usage[] =
    "usage: smtpd [-c FILE] [--check-config]\n"
    "       smtpd [-c FILE] health\n"
    "       smtpd --version | --help\n"
    "\n"
    "  -c, --config FILE   YAML configuration (default: built-in settings)\n"
    "      --check-config  validate the configuration and exit\n"
    "  health              exit 0 when the running smtpd answers 220\n";

/*
 * Sockets must stay below FD_SETSIZE for select(); the tmp files of
 * sessions in DATA need not, so ask for twice that many descriptors and
 * let files take the high numbers once the low ones are in use.
 */
static void
raise_fd_limit(struct smtpd_config *cfg)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rlim_t want = 2 * FD_SETSIZE;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
		want = rl.rlim_max;
	if (rl.rlim_cur < want) {
		rl.rlim_cur = want;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < cfg->max_connections + SMTPD_FD_RESERVE)
		cfg->max_connections = rl.rlim_cur > 2 * SMTPD_FD_RESERVE
					   ? rl.rlim_cur - SMTPD_FD_RESERVE
					   : SMTPD_FD_RESERVE;
}

static void
on_stop_signal(struct loop *loop, int signo, void *arg)
{
	struct server *srv = arg;
	(void)loop;
	struct log_line *l = log_begin(srv->log, LOG_INFO, "smtpd.signal");
	log_str(l, "signal", signo == SIGTERM ? "SIGTERM" : "SIGINT");
	log_end(l);
	server_shutdown(srv);
}

static void
log_start_line(struct logger *log, const struct smtpd_config *cfg, int cleaned)
{
	struct log_line *l = log_begin(log, LOG_INFO, "smtpd.start");
	log_str(l, "version", MTA_VERSION);
	log_str(l, "hostname", cfg->hostname);
	log_str(l, "maildir", cfg->maildir);
	/* "0.0.0.0:25 mx/starttls, 0.0.0.0:465 submission/implicit" */
	char listen[SMTPD_LISTEN_MAX * (NET_ADDR_STR_MAX + 24)] = "";
	size_t used = 0;
	for (size_t i = 0; i < cfg->nlisteners && used < sizeof listen; i++) {
		const struct smtpd_listener *li = &cfg->listeners[i];
		used += (size_t)snprintf(listen + used, sizeof listen - used,
					 "%s%s %s/%s", i ? ", " : "",
					 li->address, smtpd_role_name(li->role),
					 smtpd_listen_tls_name(li->tls));
	}
	log_str(l, "listen", listen);
	log_bool(l, "starttls", smtpd_config_has_tls(cfg));
	log_uint(l, "max_connections", cfg->max_connections);
	log_end(l);
	if (cleaned > 0) {
		l = log_begin(log, LOG_INFO, "maildir.tmp_cleaned");
		log_int(l, "count", cleaned);
		log_end(l);
	}
}

static int
run(struct smtpd_config *cfg)
{
	char err[CONFIG_ERR_MAX];
	int rc = 1;
	struct server srv;
	struct push *push = NULL;
	struct dns *dns = NULL;

	struct maildir *md =
	    maildir_open(cfg->maildir, cfg->hostname, err, sizeof err);
	if (!md) {
		fprintf(stderr, "smtpd: maildir: %s\n", err);
		return CLI_EXIT_CONFIG;
	}
	int cleaned = maildir_clean_tmp(md);
	raise_fd_limit(cfg);
	signal(SIGPIPE, SIG_IGN);
	struct loop *loop = loop_new();
	struct logger *log =
	    log_start("smtpd", (enum log_level)cfg->log_level, STDOUT_FILENO);
	if (!loop || !log) {
		fprintf(stderr, "smtpd: start-up: %s\n", strerror(errno));
		goto out;
	}
	err[0] = '\0';
	if (server_start(&srv, loop, log, cfg, md, err, sizeof err) != 0) {
		fprintf(stderr, "smtpd: %s\n", err);
		goto out;
	}
	if (loop_signal(loop, SIGTERM, on_stop_signal, &srv) != 0 ||
	    loop_signal(loop, SIGINT, on_stop_signal, &srv) != 0) {
		fprintf(stderr, "smtpd: signals: %s\n", strerror(errno));
		server_finish(&srv);
		goto out;
	}
	/* A channel of our own for the push hosts' names (system resolver
	 * settings), only when something is pushed. */
	if ((cfg->push.push_url[0] || cfg->push.ping_url[0]) &&
	    !(dns = dns_new(loop, NULL, 0, err, sizeof err))) {
		fprintf(stderr, "smtpd: dns: %s\n", err);
		server_finish(&srv);
		goto out;
	}
	if (smtpd_metrics_start(&srv, dns, &push, err, sizeof err) != 0) {
		fprintf(stderr, "smtpd: %s\n", err);
		server_finish(&srv);
		goto out;
	}
	log_start_line(log, cfg, cleaned);
	rc = loop_run(loop) == 0 ? 0 : 1;
	push_free(push); /* aborts a request in flight; never waits */
	push = NULL;
	server_finish(&srv);
	loop_run_once(loop, 0); /* deferred frees of the last connections */
	struct log_line *l = log_begin(log, LOG_INFO, "smtpd.stop");
	log_int(l, "status", rc);
	log_end(l);
out:
	push_free(push);
	dns_free(dns); /* after push_free: a late answer only frees */
	log_stop(log);
	loop_free(loop);
	maildir_close(md);
	return rc;
}

int
main(int argc, char **argv)
{
	static const char *const commands[] = {"health", NULL};
	struct cli cli;
	int rc = cli_parse(argc, argv, "smtpd", usage, commands, &cli);
	if (rc != CLI_CONTINUE)
		return rc;

	struct smtpd_config cfg;
	char err[CONFIG_ERR_MAX];
	if (smtpd_config_load(&cfg, cli.config, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		smtpd_config_free(&cfg);
		return CLI_EXIT_CONFIG;
	}
	if (cli.check_config) {
		printf("%s: configuration ok\n",
		       cli.config ? cli.config : "(defaults)");
		rc = 0;
	} else if (cli.command) {
		rc = health_check(&cfg);
	} else {
		rc = run(&cfg);
	}
	smtpd_config_free(&cfg);
	return rc;
}

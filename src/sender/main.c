/*
 * sender: command line, start-up and shutdown. The work is in the
 * sender_core library (scan, route, mxq, client, dns) so tests link it.
 *
 * Exit codes (sysexits): 0 ok, 64 usage, 78 configuration, 1 other.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "dns.h"
#include "instance.h"
#include "journal.h"
#include "log.h"
#include "loop.h"
#include "maildir.h"
#include "queue_list.h"
#include "scan.h"
#include "sender.h"
#include "push.h"
#include "sender_config.h"
#include "sender_metrics.h"

#define SENDER_STOP_MS 10000 /* how long in-flight sessions may finish */

static const char usage[] =
    "usage: sender [-c FILE] [--check-config]\n"
    "       sender [-c FILE] health\n"
    "       sender [-c FILE] queue [--json]\n"
    "       sender --version | --help\n"
    "\n"
    "  -c, --config FILE   YAML configuration (default: built-in settings)\n"
    "      --check-config  validate the configuration and exit\n"
    "  health              exit 0 when the queue folders are usable\n"
    "  queue               list what is waiting (--json: one object per "
    "message)\n";

/* Opens dir (creating it, mode 0700, when missing) as an O_PATH-like fd. */
static int
open_dir(int at, const char *path)
{
	if (mkdirat(at, path, 0700) != 0 && errno != EEXIST)
		return -1;
	return openat(at, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

struct sender_dirs {
	int spool, new_fd, cur_fd, inst_fd, aside_fd;
	struct maildir *md;
};

static void
close_dirs(struct sender_dirs *d)
{
	int *fds[] = {&d->spool, &d->new_fd, &d->cur_fd, &d->inst_fd,
		      &d->aside_fd};
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
	maildir_close(d->md);
	d->md = NULL;
}

static int
open_dirs(const struct sender_config *cfg, struct sender_dirs *d, char *err,
	  size_t errlen)
{
	char why[256];
	d->spool = d->new_fd = d->cur_fd = d->inst_fd = d->aside_fd = -1;
	d->md = NULL;
	struct maildir *md =
	    maildir_open(cfg->maildir, cfg->hostname, why, sizeof why);
	if (!md) {
		snprintf(err, errlen, "maildir: %s", why);
		return -1;
	}
	d->md = md; /* bounces are written through it */
	int root = open(cfg->maildir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d->new_fd =
	    root < 0 ? -1
		     : openat(root, "new", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d->cur_fd =
	    root < 0 ? -1
		     : openat(root, "cur", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root >= 0)
		close(root);
	d->spool = open_dir(AT_FDCWD, cfg->spool);
	d->inst_fd = d->spool < 0 ? -1 : open_dir(d->spool, cfg->instance);
	d->aside_fd = d->spool < 0 ? -1 : open_dir(d->spool, "malformed");
	if (d->new_fd < 0 || d->cur_fd < 0 || d->inst_fd < 0 ||
	    d->aside_fd < 0) {
		snprintf(err, errlen, "queue folders under %s and %s: %s",
			 cfg->maildir, cfg->spool, strerror(errno));
		close_dirs(d);
		return -1;
	}
	/* Claims are renames: both trees must be on one filesystem. */
	struct stat a, b;
	if (fstat(d->new_fd, &a) == 0 && fstat(d->inst_fd, &b) == 0 &&
	    a.st_dev != b.st_dev) {
		snprintf(err, errlen,
			 "spool %s and maildir %s must be on the "
			 "same filesystem",
			 cfg->spool, cfg->maildir);
		close_dirs(d);
		return -1;
	}
	return 0;
}

static void
on_claim(void *arg, const char *name)
{
	struct sender *snd = arg;
	char why[128];
	struct message *m = NULL;
	enum message_err e =
	    message_load(snd->inst_fd, name, &m, why, sizeof why);
	if (e == MESSAGE_ERR_MALFORMED) {
		int rc = message_set_aside(snd->inst_fd, name, snd->aside_fd);
		struct log_line *l =
		    log_begin(snd->log, LOG_WARN, "msg.malformed");
		log_str(l, "name", name);
		log_str(l, "reason", why);
		log_bool(l, "set_aside", rc == 0);
		log_end(l);
		return;
	}
	if (e != MESSAGE_OK) {
		struct log_line *l =
		    log_begin(snd->log, LOG_ERROR, "msg.load_failed");
		log_str(l, "name", name);
		log_str(l, "error", strerror(errno));
		log_end(l);
		return;
	}
	snd->messages++;
	/* Claimed before by this instance: who already has it, and is it
	 * still waiting for its next try? */
	int done = journal_replay(snd->inst_fd, m, true);
	struct log_line *l = log_begin(snd->log, LOG_INFO, "msg.claimed");
	log_str(l, "queue_id", m->queue_id);
	log_str(l, "from", m->env.from.addr);
	log_uint(l, "nrcpt", m->env.nrcpt);
	log_uint(l, "size", m->size);
	if (done != 0)
		log_int(l, "resumed_final", done);
	log_end(l);
	if (!retry_resume(snd, m))
		route_message(snd, m);
}

/* What the instance callbacks and the stop signal need. */
struct sender_run {
	struct sender *snd;
	struct instance *inst;
};

/* A message adopted from a dead instance's folder. Before scan's
 * start-up report has run, the report lists it: not handed twice. */
static void
on_adopted(void *arg, const char *name)
{
	struct sender_run *r = arg;
	if (r->snd->scan && scan_started(r->snd->scan))
		on_claim(r->snd, name);
}

/* Another sender owns our folder now: start nothing, stop at once. */
static void
on_instance_lost(void *arg)
{
	struct sender_run *r = arg;
	r->snd->stopping = true;
	scan_free(r->snd->scan);
	r->snd->scan = NULL;
	loop_stop(r->snd->loop);
}

static void
stop_all_clients(struct sender *snd, bool force)
{
	struct mxq_table *t = &snd->queues;
	for (size_t i = 0; i < t->nbuckets; i++)
		for (struct mxq *q = t->buckets[i]; q; q = q->next)
			if (q->client)
				client_stop(q->client, force);
}

static void
on_stop_timer(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct sender *snd = arg;
	(void)t;
	stop_all_clients(snd, true);
	loop_stop(loop);
}

static void
on_stop_signal(struct loop *loop, int signo, void *arg)
{
	struct sender_run *r = arg;
	struct sender *snd = r->snd;
	struct log_line *l = log_begin(snd->log, LOG_INFO, "sender.signal");
	log_str(l, "signal", signo == SIGTERM ? "SIGTERM" : "SIGINT");
	log_end(l);
	if (snd->stopping)
		return;
	snd->stopping = true;
	if (r->inst) /* NULL: a signal while start-up failed */
		instance_stop_adopting(r->inst);
	scan_free(snd->scan);
	snd->scan = NULL;
	retry_release_all(snd);
	stop_all_clients(snd, false);
	if (snd->messages == 0 && snd->clients == 0)
		loop_stop(loop);
	else
		loop_timer_arm(loop, &snd->stop_timer, SENDER_STOP_MS);
}

static void
on_usr1(struct loop *loop, int signo, void *arg)
{
	struct sender *snd = arg;
	(void)loop;
	(void)signo;
	if (snd->scan)
		scan_kick(snd->scan);
	sender_hosts_reset(snd);
	retry_all_now(snd);
}

/*
 * Takes the instance folder for this process (locked until exit) in
 * place of the unlocked open from open_dirs(). *rc: 78 when another
 * live sender has it.
 */
static int
open_instance(const struct sender_config *cfg, struct sender_dirs *dirs,
	      struct sender *snd, struct sender_run *ctx, int *rc)
{
	char err[CONFIG_ERR_MAX];
	enum instance_err why;
	ctx->inst = instance_open(dirs->spool, cfg->instance, cfg->orphan_after,
				  INSTANCE_LOCK_WAIT_MS, snd->log, &why, err,
				  sizeof err);
	if (!ctx->inst) {
		fprintf(stderr, "sender: %s\n", err);
		*rc = why == INSTANCE_BUSY ? CLI_EXIT_CONFIG : 1;
		return -1;
	}
	close(dirs->inst_fd);
	dirs->inst_fd = -1;
	snd->inst_fd = instance_fd(ctx->inst);
	return 0;
}

static int
run(const struct sender_config *cfg, const char *file)
{
	char err[CONFIG_ERR_MAX];
	struct sender snd = {.cfg = cfg};
	struct sender_run ctx = {.snd = &snd};
	struct sender_dirs dirs;
	int rc = 1;
	struct push *push = NULL;

	if (sender_config_tls(cfg, file, &snd.tls, err, sizeof err) != 0) {
		fprintf(stderr, "sender: %s\n", err);
		return CLI_EXIT_CONFIG;
	}
	if (open_dirs(cfg, &dirs, err, sizeof err) != 0) {
		fprintf(stderr, "sender: %s\n", err);
		sender_tls_free(&snd.tls);
		return CLI_EXIT_CONFIG;
	}
	signal(SIGPIPE, SIG_IGN);
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	snd.new_fd = dirs.new_fd;
	snd.cur_fd = dirs.cur_fd;
	snd.inst_fd = dirs.inst_fd;
	snd.aside_fd = dirs.aside_fd;
	snd.md = dirs.md;
	snd.loop = loop_new();
	snd.log =
	    log_start("sender", (enum log_level)cfg->log_level, STDOUT_FILENO);
	snd.routes = route_cache_new();
	journal_init(&snd.journal);
	if (!snd.loop || !snd.log || !snd.routes ||
	    mxq_table_init(&snd.queues) != 0) {
		fprintf(stderr, "sender: start-up: %s\n", strerror(errno));
		goto out;
	}
	snd.dns = dns_new(snd.loop, (const char *const *)cfg->dns_servers.items,
			  cfg->dns_servers.count, err, sizeof err);
	if (!snd.dns) {
		fprintf(stderr, "sender: dns: %s\n", err);
		goto out;
	}
	if (loop_on_pass_end(snd.loop, sender_sync_retired, &snd) != 0 ||
	    loop_signal(snd.loop, SIGTERM, on_stop_signal, &ctx) != 0 ||
	    loop_signal(snd.loop, SIGINT, on_stop_signal, &ctx) != 0 ||
	    loop_signal(snd.loop, SIGUSR1, on_usr1, &snd) != 0) {
		fprintf(stderr, "sender: signals: %s\n", strerror(errno));
		goto out;
	}
	if (open_instance(cfg, &dirs, &snd, &ctx, &rc) != 0)
		goto out;
	struct log_line *l = log_begin(snd.log, LOG_INFO, "sender.start");
	log_str(l, "version", MTA_VERSION);
	log_str(l, "instance", cfg->instance);
	log_str(l, "hostname", cfg->hostname);
	log_str(l, "maildir", cfg->maildir);
	log_str(l, "spool", cfg->spool);
	log_end(l);
	if (!strchr(cfg->hostname, '.')) {
		l = log_begin(snd.log, LOG_WARN, "config.hostname_not_fqdn");
		log_str(l, "hostname", cfg->hostname);
		log_str(l, "hint",
			"set hostname to a fully qualified name; "
			"receivers distrust a bare EHLO name");
		log_end(l);
	}
	/* orphans adopted now are in the folder for the start-up report */
	if (instance_start(ctx.inst, snd.loop, on_adopted, on_instance_lost,
			   &ctx) != 0) {
		fprintf(stderr, "sender: instance: %s\n", strerror(errno));
		goto out;
	}
	int orphans = journal_clean_orphans(snd.inst_fd);
	if (orphans != 0) {
		l = log_begin(snd.log, orphans < 0 ? LOG_ERROR : LOG_INFO,
			      "journal.orphans_removed");
		if (orphans < 0)
			log_str(l, "error", strerror(errno));
		else
			log_int(l, "count", orphans);
		log_end(l);
	}
	snd.scan =
	    scan_new(snd.loop, snd.log, dirs.new_fd, snd.inst_fd,
		     cfg->scan_interval, on_claim, &snd, err, sizeof err);
	if (!snd.scan) {
		fprintf(stderr, "sender: scan: %s\n", err);
		goto out;
	}
	loop_timer_init(&snd.stop_timer, on_stop_timer, &snd);
	snd.started_ms = loop_now(snd.loop);
	if (sender_metrics_start(&snd, &push, err, sizeof err) != 0) {
		fprintf(stderr, "sender: %s\n", err);
		goto out;
	}
	rc = loop_run(snd.loop) == 0 && !instance_lost(ctx.inst) ? 0 : 1;
	loop_timer_disarm(snd.loop, &snd.stop_timer);
	retry_release_all(&snd);
	stop_all_clients(&snd, true);
	l = log_begin(snd.log, LOG_INFO, "sender.stop");
	log_uint(l, "unfinished", snd.messages);
	log_end(l);
out:
	push_free(push); /* before dns_free: a late answer only frees */
	scan_free(snd.scan);
	dns_free(snd.dns);
	if (snd.loop)
		loop_run_once(snd.loop, 0); /* deferred frees */
	mxq_table_free(&snd.queues);
	route_cache_free(snd.routes);
	journal_fini(&snd.journal);
	free(snd.sync_wait);
	instance_free(ctx.inst); /* the lock goes last */
	log_stop(snd.log);
	loop_free(snd.loop);
	close_dirs(&dirs);
	sender_tls_free(&snd.tls); /* after the sessions' deferred frees */
	return rc;
}

/* --check-config: what start-up would load, without starting. */
static int
check_config(const struct sender_config *cfg, const char *file)
{
	char err[CONFIG_ERR_MAX];
	struct sender_tls tls;
	if (sender_config_tls(cfg, file, &tls, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return CLI_EXIT_CONFIG;
	}
	sender_tls_free(&tls);
	printf("%s: configuration ok\n", file ? file : "(defaults)");
	return 0;
}

/* Health without a running daemon to ask: the queue folders work. */
static int
health(const struct sender_config *cfg)
{
	char err[CONFIG_ERR_MAX];
	struct sender_dirs dirs;
	if (open_dirs(cfg, &dirs, err, sizeof err) != 0) {
		fprintf(stderr, "health: %s\n", err);
		return 1;
	}
	close_dirs(&dirs);
	return 0;
}

int
main(int argc, char **argv)
{
	static const char *const commands[] = {"health", "queue", NULL};
	struct cli cli;
	int rc = cli_parse(argc, argv, "sender", usage, commands, &cli);
	if (rc != CLI_CONTINUE)
		return rc;

	struct sender_config cfg;
	char err[CONFIG_ERR_MAX];
	if (sender_config_load(&cfg, cli.config, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		sender_config_free(&cfg);
		return CLI_EXIT_CONFIG;
	}
	if (cli.check_config) {
		rc = check_config(&cfg, cli.config);
	} else if (cli.command && strcmp(cli.command, "queue") == 0) {
		rc = queue_list(&cfg, cli.json, stdout);
	} else if (cli.command) {
		rc = health(&cfg);
	} else {
		rc = run(&cfg, cli.config);
	}
	sender_config_free(&cfg);
	return rc;
}

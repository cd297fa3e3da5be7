/*
 * server: listening sockets, admission limits, group commit hook and
 * graceful shutdown for one smtpd worker.
 *
 * Admission (checked in this order): an fd select() cannot watch, the
 * global max_connections, then max_connections_per_ip. Refused clients
 * get their 421 written straight away on the fresh socket (its send
 * buffer is empty, so the write cannot block) and are closed.
 * When accept() runs out of descriptors (EMFILE/ENFILE) the listeners are
 * paused until a connection closes or a second has passed.
 */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "maildir.h"
#include "smtpd_config.h"
#include "smtp_reply.h"
#include "tls.h"

#define SERVER_RESUME_MS 1000

static void
server_set_accepting(struct server *srv, bool on)
{
	for (size_t i = 0; i < srv->nlisten; i++)
		loop_modify(srv->loop, srv->listen_fds[i], on ? LOOP_READ : 0);
	srv->accept_paused = !on;
}

/* An implicit-TLS client gets no plaintext 421, only the close. */
static void
server_refuse(struct server *srv, int fd, bool tls, const struct sockaddr *peer,
	      const char *code, const char *text, const char *reason)
{
	char msg[SMTP_REPLY_LINE_MAX];
	int n = snprintf(msg, sizeof msg, "421 %s %s %s\r\n", code,
			 srv->cfg->hostname, text);
	if (n > 0 && !tls)
		(void)!send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
	srv->ctx.stats.refused++;

	char addr[NET_ADDR_STR_MAX];
	net_addr_host(peer, addr, sizeof addr);
	struct log_line *l = log_begin(srv->log, LOG_WARN, "conn.refused");
	log_str(l, "client", addr);
	log_str(l, "reason", reason);
	log_end(l);
}

static void
server_admit(struct server *srv, int fd, const struct smtpd_listener *li,
	     const struct sockaddr *peer, socklen_t peerlen)
{
	const struct smtpd_config *cfg = srv->cfg;
	bool tls = li->tls == SMTPD_TLS_IMPLICIT;

	if (fd >= FD_SETSIZE) {
		server_refuse(srv, fd, tls, peer, "4.3.2",
			      "Too many connections", "fd beyond FD_SETSIZE");
		return;
	}
	if (srv->nconns >= cfg->max_connections) {
		server_refuse(srv, fd, tls, peer, "4.3.2",
			      "Too many connections", "max_connections");
		return;
	}
	if (cfg->max_connections_per_ip > 0 &&
	    conn_count_host(srv, peer) >= cfg->max_connections_per_ip) {
		server_refuse(srv, fd, tls, peer, "4.7.0",
			      "Too many connections from your address",
			      "max_connections_per_ip");
		return;
	}
	if (!conn_open(srv, fd, peer, peerlen, li)) {
		server_refuse(srv, fd, tls, peer, "4.3.2",
			      "Service unavailable", strerror(errno));
	}
}

/* The listener whose socket is lfd. */
static const struct smtpd_listener *
server_listener(const struct server *srv, int lfd)
{
	for (size_t i = 0; i < srv->nlisten; i++)
		if (srv->listen_fds[i] == lfd)
			return &srv->cfg->listeners[i];
	/* Cannot happen: only listeners are watched with this callback. */
	return &srv->cfg->listeners[0];
}

static void
server_accept(struct loop *loop, int lfd, unsigned events, void *arg)
{
	struct server *srv = arg;
	(void)loop;
	(void)events;
	const struct smtpd_listener *li = server_listener(srv, lfd);

	for (int i = 0; i < SERVER_ACCEPT_BURST && !srv->accept_paused; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		int fd = accept4(lfd, (struct sockaddr *)&ss, &len,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			server_admit(srv, fd, li, (struct sockaddr *)&ss, len);
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
			continue;
		/* Out of descriptors or memory: stop accepting for now. */
		struct log_line *l =
		    log_begin(srv->log, LOG_WARN, "accept.paused");
		log_str(l, "error", strerror(errno));
		log_uint(l, "connections", srv->nconns);
		log_end(l);
		server_set_accepting(srv, false);
		loop_timer_arm(srv->loop, &srv->resume_timer, SERVER_RESUME_MS);
		return;
	}
}

static void
server_resume(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct server *srv = arg;
	(void)loop;
	(void)t;
	if (srv->accept_paused && !srv->draining)
		server_set_accepting(srv, true);
}

void
server_conn_closed(struct server *srv)
{
	if (srv->accept_paused && !srv->draining) {
		loop_timer_disarm(srv->loop, &srv->resume_timer);
		server_set_accepting(srv, true);
	}
	if (srv->draining && srv->nconns == 0)
		loop_stop(srv->loop);
}

/*
 * Pass-end hook: one group commit for every message finished this pass.
 * A commit callback lets its session run the input that was waiting
 * behind the 250, which may finish another pipelined message; commit that
 * too before select() sleeps, or it would wait for unrelated traffic.
 */
static void
server_commit(struct loop *loop, void *arg)
{
	struct server *srv = arg;
	(void)loop;
	while (maildir_pending(srv->md) > 0)
		maildir_flush(srv->md);
}

static void
server_drain_expired(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct server *srv = arg;
	(void)t;
	struct log_line *l =
	    log_begin(srv->log, LOG_WARN, "smtpd.drain_expired");
	log_uint(l, "connections", srv->nconns);
	log_end(l);
	server_each_close(srv);
	loop_stop(loop);
}

static void
server_close_listeners(struct server *srv)
{
	for (size_t i = 0; i < srv->nlisten; i++) {
		loop_unwatch(srv->loop, srv->listen_fds[i]);
		close(srv->listen_fds[i]);
	}
	srv->nlisten = 0;
}

/* One socket per listener, in the order of the listen key. */
static int
server_listen_all(struct server *srv, char *err, size_t errlen)
{
	const struct smtpd_config *cfg = srv->cfg;
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct smtpd_listener *li = &cfg->listeners[i];
		int fd = net_listen((const struct sockaddr *)&li->addr,
				    li->addrlen, 1024);
		if (fd < 0) {
			snprintf(err, errlen, "listen %s: %s", li->address,
				 strerror(errno));
			return -1;
		}
		srv->listen_fds[srv->nlisten++] = fd;
		if (loop_watch(srv->loop, fd, LOOP_READ, server_accept, srv)) {
			snprintf(err, errlen, "listen %s: %s", li->address,
				 strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* The server context; the config check has loaded these files once. */
static int
server_tls_start(struct server *srv, char *err, size_t errlen)
{
	const struct smtpd_config *cfg = srv->cfg;
	if (!smtpd_config_has_tls(cfg))
		return 0;
	char why[CONFIG_ERR_MAX - 16];
	srv->tls = tls_ctx_server(cfg->tls_cert,
				  cfg->tls_key && cfg->tls_key[0] ? cfg->tls_key
								  : NULL,
				  why, sizeof why);
	if (!srv->tls) {
		snprintf(err, errlen, "tls: %s", why);
		return -1;
	}
	srv->ctx.tls_available = true;
	return 0;
}

static int
server_parse_nets(struct server *srv, char *err, size_t errlen)
{
	const struct config_list *nets = &srv->cfg->relay_networks;
	srv->relay_nets =
	    calloc(nets->count ? nets->count : 1, sizeof *srv->relay_nets);
	if (!srv->relay_nets) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < nets->count; i++) {
		if (cidr_parse(nets->items[i], &srv->relay_nets[i]) != 0) {
			snprintf(err, errlen, "relay.networks: bad '%s'",
				 nets->items[i]);
			return -1;
		}
	}
	srv->ctx.relay_nets = srv->relay_nets;
	srv->ctx.relay_nets_count = nets->count;
	return 0;
}

int
server_start(struct server *srv, struct loop *loop, struct logger *log,
	     const struct smtpd_config *cfg, struct maildir *md, char *err,
	     size_t errlen)
{
	memset(srv, 0, sizeof *srv);
	srv->loop = loop;
	srv->log = log;
	srv->cfg = cfg;
	srv->md = md;
	srv->started_ms = loop_now(loop);
	srv->ctx.cfg = cfg;
	srv->ctx.loop = loop;
	srv->ctx.log = log;
	srv->ctx.md = md;
	loop_timer_init(&srv->resume_timer, server_resume, srv);
	loop_timer_init(&srv->drain_timer, server_drain_expired, srv);
	if (server_parse_nets(srv, err, errlen) != 0 ||
	    server_tls_start(srv, err, errlen) != 0 ||
	    server_listen_all(srv, err, errlen) != 0 ||
	    loop_on_pass_end(loop, server_commit, srv) != 0) {
		if (!err[0])
			snprintf(err, errlen, "cannot start: %s",
				 strerror(errno));
		server_close_listeners(srv);
		free(srv->relay_nets);
		srv->relay_nets = NULL;
		tls_ctx_free(srv->tls);
		srv->tls = NULL;
		return -1;
	}
	return 0;
}

void
server_shutdown(struct server *srv)
{
	if (srv->draining)
		return;
	srv->draining = true;
	srv->ctx.draining = true;
	server_close_listeners(srv);
	struct log_line *l = log_begin(srv->log, LOG_INFO, "smtpd.draining");
	log_uint(l, "connections", srv->nconns);
	log_end(l);
	server_each_shutdown(srv);
	if (srv->nconns == 0)
		loop_stop(srv->loop);
	else
		loop_timer_arm(srv->loop, &srv->drain_timer,
			       srv->cfg->timeout_shutdown);
}

void
server_finish(struct server *srv)
{
	server_each_close(srv);
	server_close_listeners(srv);
	loop_timer_disarm(srv->loop, &srv->resume_timer);
	loop_timer_disarm(srv->loop, &srv->drain_timer);
	/* Messages whose DATA ended in the last pass still get committed. */
	if (maildir_pending(srv->md) > 0)
		maildir_flush(srv->md);
	free(srv->relay_nets);
	srv->relay_nets = NULL;
	tls_ctx_free(srv->tls); /* after the last SSL of a conn is gone */
	srv->tls = NULL;
}

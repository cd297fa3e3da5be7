/*
 * server: what one smtpd worker owns: listening sockets, the set of live
 * connections, the limits on them, the Maildir group commit hook and the
 * graceful shutdown. Everything runs on the one loop.
 */
#ifndef MTA_SERVER_H
#define MTA_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "net.h"
#include "session.h"
#include "smtpd_listen.h"

#define SERVER_ACCEPT_BURST 64 /* accepts per readiness, for fairness */

struct logger;
struct maildir;
struct smtpd_config;
struct conn;
struct tls_ctx;

struct server {
	struct loop *loop;
	struct logger *log;
	const struct smtpd_config *cfg;
	struct maildir *md;
	struct session_ctx ctx;
	struct cidr *relay_nets;
	int listen_fds[SMTPD_LISTEN_MAX]; /* [i] serves cfg->listeners[i] */
	struct tls_ctx *tls;		  /* NULL: no certificate */
	size_t nlisten;
	bool accept_paused;
	bool draining;
	struct loop_timer resume_timer;
	struct loop_timer drain_timer;
	struct conn *conns; /* doubly linked, newest first */
	size_t nconns;
	uint64_t next_conn_id;
	uint64_t started_ms; /* loop_now() at server_start(), for up-time */
};

/*
 * Binds every listen address and starts accepting. Returns 0, or -1 with
 * err filled (and everything opened so far closed).
 */
int server_start(struct server *, struct loop *, struct logger *,
		 const struct smtpd_config *, struct maildir *, char *err,
		 size_t errlen);
/* Graceful stop: no new connections, idle sessions get 421, DATA may
 * finish within timeouts.shutdown; the loop stops when all are gone. */
void server_shutdown(struct server *);
/* Closes whatever is left (after the loop ended). */
void server_finish(struct server *);

/* session_io.c: one accepted connection on listener l: on an implicit-TLS
 * listener the handshake comes first, then the greeting (RFC 8314). */
struct conn *conn_open(struct server *, int fd, const struct sockaddr *peer,
		       socklen_t peerlen, const struct smtpd_listener *l);
void conn_close(struct conn *, const char *reason);
/* Counts live connections from the same host as peer. */
size_t conn_count_host(const struct server *, const struct sockaddr *peer);
/* Shutdown: every session decides how to end (idle ones get 421). */
void server_each_shutdown(struct server *);
/* Drain time is up: close whatever is still open. */
void server_each_close(struct server *);
/* Called by conn_close so the server can resume accepting or finish. */
void server_conn_closed(struct server *);

#endif

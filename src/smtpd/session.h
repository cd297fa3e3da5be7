/*
 * session: one SMTP server session (RFC 5321) with no sockets in it.
 *
 * Bytes go in through session_read_buf()/session_received() (or
 * session_feed() in tests); replies accumulate in an output buffer the
 * caller drains with session_output()/session_output_done(). DATA is
 * streamed to a Maildir tmp file as it arrives and committed through the
 * Maildir group commit; the 250 is produced only once the file is durable
 * in new/.
 *
 * STARTTLS (RFC 3207): after the 220 the session takes no more input and
 * has dropped whatever was pipelined behind the command; the caller
 * flushes the 220, runs the handshake and reports it with
 * session_tls_started(), which resets the session as if just connected.
 *
 * AUTH (RFC 4954, session_auth.c): PLAIN and LOGIN against the users
 * file; an authenticated client may relay anywhere, and on a submission
 * listener MAIL needs it. Only STARTTLS forgets it (RSET and EHLO keep it).
 *
 * Backpressure: commands are only executed while the output buffer has
 * room for the largest reply, so a client that pipelines without reading
 * replies stalls itself, not the server.
 */
#ifndef MTA_SESSION_H
#define MTA_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "data.h"
#include "loop.h"
#include "maildir.h"
#include "net.h"
#include "smtp_addr.h"
#include "smtp_param.h"
#include "smtp_reply.h"

#define SESSION_LINE_MAX 512 /* command line incl. CRLF, RFC 5321 4.5.3.1.4 */
#define SESSION_IN_MAX 4096
#define SESSION_OUT_MAX 4096
#define SESSION_HELO_MAX 255

/* RFC 5321 4.1.1 states, as the design names them. */
#define SESSION_STATES(X)                                                      \
	X(SESSION_INIT)		/* greeted, no HELO/EHLO yet */                \
	X(SESSION_WAIT)		/* HELO done, no transaction */                \
	X(SESSION_STARTTLS)	/* 220 to STARTTLS queued, handshake next */   \
	X(SESSION_AUTH)		/* 334 sent, waiting for a SASL response */    \
	X(SESSION_AUTH_FAILED)	/* 535 held back by the failure delay */       \
	X(SESSION_MAIL_SET)	/* MAIL accepted */                            \
	X(SESSION_RCPTS_SET)	/* at least one RCPT accepted */               \
	X(SESSION_WRITING_DATA) /* after 354, streaming to tmp/ */             \
	X(SESSION_DELIVERING)	/* end of data seen, waiting for commit */     \
	X(SESSION_CLOSED)	/* last reply queued; close after flush */

#define SESSION_ENUM(name) name,
enum session_state { SESSION_STATES(SESSION_ENUM) };
#undef SESSION_ENUM

struct logger;
struct smtpd_config;
struct smtpd_listener;
struct session;

/*
 * Counters since start-up, each tied to a log event so the two agree.
 * Pushed as metrics (smtpd_metrics.c).
 */
struct smtpd_stats {
	uint64_t connections;	/* sessions opened: conn.open */
	uint64_t refused;	/* 421 at connect: conn.refused */
	uint64_t msgs_accepted; /* 250 after DATA: msg.accepted */
	uint64_t msgs_rejected; /* reached DATA, nothing stored: msg.rejected */
	uint64_t rcpts_rejected; /* relay policy: rcpt.rejected */
	uint64_t bytes_accepted; /* stored size of accepted messages */
};

/* What every session shares; owned by the server. */
struct session_ctx {
	const struct smtpd_config *cfg;
	struct loop *loop;
	struct logger *log;
	struct maildir *md;
	const struct cidr *relay_nets;
	size_t relay_nets_count;
	bool draining;	    /* shutting down: finish DATA, refuse the rest */
	bool tls_available; /* a certificate is configured: offer STARTTLS */
	struct smtpd_stats stats;
	/* Called when a session has new output or wants to close outside
	 * of a read (timer, commit); may be NULL in tests. */
	void (*wake)(struct session *, void *arg);
	void *wake_arg;
};

const char *session_state_name(enum session_state);

/* Creates a session and queues the 220 greeting. NULL on ENOMEM. */
struct session *session_new(struct session_ctx *, uint64_t id,
			    const struct sockaddr *peer, socklen_t peerlen);
/* Aborts any tmp file, disarms timers, frees. */
void session_free(struct session *);

enum session_state session_state(const struct session *);
uint64_t session_id(const struct session *);
/* Messages accepted in this session so far. */
unsigned session_msgs(const struct session *);
const struct sockaddr *session_peer(const struct session *);
void *session_owner(const struct session *);
void session_set_owner(struct session *, void *owner);

/* Free input space: the caller reads into it, then session_received(). */
char *session_read_buf(struct session *, size_t *space);
/* n bytes were placed in the read buffer; runs what can run. */
void session_received(struct session *, size_t n);
/* The peer closed its side (or a read error): abort the transaction. */
void session_eof(struct session *);
/* Copies bytes in (as many as fit, repeatedly) and runs them. Tests. */
size_t session_feed(struct session *, const char *bytes, size_t n);
/* Re-runs buffered input after output space was freed. */
void session_resume(struct session *);

/* Pending output. */
const char *session_output(const struct session *, size_t *len);
void session_output_done(struct session *, size_t n);
/* True when the session has said its last word and output is drained. */
bool session_done(const struct session *);
/* Server is shutting down: idle sessions get 421 and close. */
void session_shutdown(struct session *);

/* What the handshake negotiated, for Received: and the log. */
struct session_tls {
	char version[16]; /* "TLSv1.3" */
	char cipher[64];  /* "TLS_AES_256_GCM_SHA384" */
	int bits;	  /* secret bits used */
	int alg_bits;	  /* the cipher's algorithm bits */
};

/* True after the 220 to STARTTLS: flush it, then run the handshake. */
bool session_starting_tls(const struct session *);
/*
 * The handshake completed (after STARTTLS, or at connect on an
 * implicit-TLS listener): forget everything said before it, as RFC 3207
 * 4.2 requires; the client must EHLO again.
 */
void session_tls_started(struct session *, const struct session_tls *);
/* True once the session runs inside TLS. */
bool session_in_tls(const struct session *);

/*
 * The listener the session came in on, before any input: on a submission
 * listener MAIL needs AUTH (RFC 6409); STARTTLS is offered only on a
 * starttls listener and only with a certificate. Without this call a
 * session is an MX session offering STARTTLS when ctx->tls_available.
 */
void session_set_listener(struct session *, const struct smtpd_listener *);
/* The authenticated user name, or NULL. */
const char *session_auth_user(const struct session *);

#endif

/*
 * client_int: the inside of struct client, shared by client.c (the
 * protocol: one handler per state), client_io.c (resolving, connecting,
 * reading, writing, timers) and client_tls.c (STARTTLS handshake).
 * Nothing else includes this.
 */
#ifndef MTA_CLIENT_INT_H
#define MTA_CLIENT_INT_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "body.h"
#include "client.h"
#include "dns.h"
#include "loop.h"
#include "mxq.h"
#include "net.h"
#include "sender.h"
#include "smtp_reply.h"
#include "tls.h"

#define CLIENT_IN_MAX 8192
#define CLIENT_OUT_MAX 65536
#define CLIENT_RELAY_MAX (MX_HOST_MAX + NET_ADDR_STR_MAX + 16)

#define CLIENT_STATES(X)                                                       \
	X(CLIENT_RESOLVING)  /* looking up the current host's addresses */     \
	X(CLIENT_CONNECTING) /* non-blocking connect in progress */            \
	X(CLIENT_GREETING)   /* waiting for 220 */                             \
	X(CLIENT_EHLO)                                                         \
	X(CLIENT_HELO)                                                         \
	X(CLIENT_STARTTLS) /* waiting for 220 to STARTTLS */                   \
	X(CLIENT_TLS)	   /* TLS handshake in progress */                     \
	X(CLIENT_IDLE)	   /* between transactions, lingering */               \
	X(CLIENT_MAIL)                                                         \
	X(CLIENT_RCPT)                                                         \
	X(CLIENT_DATA) /* waiting for 354 */                                   \
	X(CLIENT_BODY) /* streaming the message */                             \
	X(CLIENT_DOT)  /* waiting for the final reply */                       \
	X(CLIENT_RSET)                                                         \
	X(CLIENT_QUIT)                                                         \
	X(CLIENT_CLOSED)

#define CLIENT_ENUM(name) name,
enum client_state { CLIENT_STATES(CLIENT_ENUM) };
#undef CLIENT_ENUM

/* Why a session has less TLS than a job may need (client_tls.c). */
enum client_tls_gap {
	CLIENT_TLS_GAP_NONE,	    /* nothing known: STARTTLS not tried */
	CLIENT_TLS_GAP_NOT_OFFERED, /* no STARTTLS in the EHLO reply */
	CLIENT_TLS_GAP_REFUSED,	    /* STARTTLS answered, not with 220 */
	CLIENT_TLS_GAP_HANDSHAKE,   /* handshake failed: plaintext retry */
	CLIENT_TLS_GAP_UNVERIFIED,  /* TLS up, certificate check failed */
};

/* How a job fits the session's TLS (client_tls_fit). */
enum client_tls_fit {
	CLIENT_TLS_FITS,  /* the session gives the job what it needs */
	CLIENT_TLS_SHORT, /* it cannot: next MX host, or deferred */
	CLIENT_TLS_LATER, /* the host offers STARTTLS, which this session did
			     not use: a new session will */
};

/* Per-recipient result inside one transaction. */
enum client_rcpt {
	CLIENT_RCPT_WAIT,     /* no reply yet */
	CLIENT_RCPT_ACCEPTED, /* 250 to RCPT, waiting for the end of data */
	CLIENT_RCPT_DONE,     /* outcome reported */
};

struct client {
	struct sender *snd;
	struct mxq *q;
	enum client_state state;
	int fd;
	bool closing;
	bool pipelining;
	struct smtp_caps caps;
	struct loop_timer timer;
	struct loop_timer linger;

	/* where we are in the host's address list */
	struct sockaddr_storage addrs[DNS_ADDR_MAX];
	size_t naddrs;
	size_t addr;
	/* TLS (RFC 3207): negotiated once per connection, for the strictest
	 * level of the jobs queued when EHLO is answered (client_tls.c) */
	unsigned tls_mode; /* enum tls_level the session asked for */
	struct tls *tls;   /* NULL: plaintext; over one of sender->tls */
	bool tls_verified; /* peer chain and name checked */
	bool tls_tried;	   /* STARTTLS sent on this connection */
	bool tls_off;	   /* plaintext retry after a failed handshake */
	bool tls_read_wants_write;   /* TLS_WANT_WRITE from a read */
	enum client_tls_gap tls_gap; /* why the session's TLS falls short */
	char tls_detail[TLS_ERR_MAX + SMTP_REPLY_TEXT_MAX]; /* its details */
	unsigned conn_gen;    /* counts dropped sockets: a callback can tell
				 that its connection is gone */
	const char *fail_dsn; /* enhanced code of the failure being
				 reported; NULL: 4.4.1 */
	const char *last_dsn; /* that of the last failed address */

	char relay[CLIENT_RELAY_MAX];		 /* "host[addr]:port" */
	char last_error[CLIENT_RELAY_MAX + 256]; /* why the last try failed */
	unsigned msgs; /* messages sent in this session */
	bool progress; /* something delivered this session */

	/* the transaction in flight */
	struct job *job;
	enum client_rcpt *rcpt; /* job->n entries */
	size_t rcpt_sent;	/* RCPT commands written */
	size_t rcpt_replies;	/* RCPT replies read */
	size_t accepted;
	bool txn_failed; /* MAIL refused: drain replies, RSET */
	int body_fd;
	struct body_state body;

	size_t in_len;
	size_t out_len;
	char in[CLIENT_IN_MAX];
	char *out; /* CLIENT_OUT_MAX bytes */
};

const char *client_state_name(enum client_state);
void client_enter_state(struct client *, enum client_state);

/* client.c */
void client_on_reply(struct client *, const struct smtp_reply *);
void client_fill_body(struct client *);
/* Reports every recipient of the job still without an outcome. */
void client_settle_job(struct client *, enum delivery_status, const char *dsn,
		       const char *reply);
void client_end_job(struct client *);
void client_connected(struct client *);
void client_next_job(struct client *);

/* client_io.c */
int client_send(struct client *, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void client_arm(struct client *, uint64_t ms);
void client_flush(struct client *);
/* Gives up on the current address and moves on (or ends the session). */
void client_next_address(struct client *, const char *why);
/* Ends the session; jobs left in flight go back to the queue or are
 * deferred with why (when the session made no progress at all). */
void client_close(struct client *, const char *why);
void client_log_session(struct client *, const char *event);
/* A policy failure (TLS required) with its enhanced code: the address
 * is given up on; when it was the last, the mail is deferred with dsn. */
void client_policy_fail(struct client *, const char *dsn, const char *why);
/* Connects to addrs[addr] (a failure moves on to the next address). */
void client_connect(struct client *);
/* Closes the connection (TLS first) and forgets what was buffered. */
void client_drop_socket(struct client *);

/* client_tls.c */
/* EHLO answered in plaintext: the session's level from its queue. */
void client_tls_plan(struct client *);
/* True when STARTTLS is to be sent now (offered, wanted, not tried). */
bool client_want_starttls(const struct client *);
/* The session could not get (more) TLS: why, for the jobs it fails. */
void client_tls_gap(struct client *, enum client_tls_gap, const char *detail);
/*
 * EHLO done, TLS settled: true when some queued job may use the session;
 * else the address is given up on (client_policy_fail) and false.
 */
bool client_tls_ok(struct client *);
enum client_tls_fit client_tls_fit(const struct client *, const struct job *);
/* j needs more TLS than the session has: to its next MX host, or
 * deferred with 4.7.4 / 4.7.5 and a reply naming its rule and domain. */
void client_tls_refuse(struct client *, struct job *j);
/* After 220 to STARTTLS: starts the handshake on the connection. */
void client_starttls(struct client *);
/* Drives the handshake one step; when done, EHLO again (RFC 3207 4.2). */
void client_handshake(struct client *);
/* The handshake failed: when some queued job accepts plaintext, the
 * address is tried once more in plaintext; else it is given up (4.7.5). */
void client_tls_failed(struct client *, const char *what);
/* Ends TLS on the connection (close_notify, free), if any. */
void client_tls_drop(struct client *);

#endif

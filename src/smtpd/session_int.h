/*
 * session_int: the inside of struct session, shared by the three files
 * that implement one session: session.c (life cycle, input framing,
 * replies, timers), session_cmd.c (the command table) and session_data.c
 * (DATA: envelope, streaming, commit). Nothing else includes this.
 */
#ifndef MTA_SESSION_INT_H
#define MTA_SESSION_INT_H

#include <stdarg.h>

#include "auth.h"
#include "auth_verify.h"
#include "log.h"
#include "session.h"
#include "smtpd_config.h"

/* Room kept free in the output buffer before running a command: the
 * largest single reply (EHLO, HELP) plus a 421 that may follow it. */
#define SESSION_REPLY_RESERVE 1024

struct session {
	struct session_ctx *ctx;
	enum session_state state;
	uint64_t id;
	void *owner;
	struct sockaddr_storage peer;
	socklen_t peerlen;
	char peer_ip[NET_ADDR_STR_MAX];
	struct loop_timer timer;
	unsigned errors;
	unsigned msgs;
	bool esmtp;
	bool skip_line; /* discarding the rest of an over-long line */
	bool eof;	/* peer gone while a commit was pending */
	char helo[SESSION_HELO_MAX + 1];
	bool in_tls;
	bool starttls_offered; /* this listener offers STARTTLS */
	struct session_tls tls;

	/* AUTH (RFC 4954); not reset by RSET or EHLO, only by STARTTLS. */
	bool submission;     /* MAIL needs authentication */
	bool authed;	     /* auth_user is authenticated */
	bool auth_login;     /* the exchange is LOGIN, else PLAIN */
	bool auth_have_user; /* LOGIN: auth_user holds the name sent */
	unsigned auth_failures;
	struct loop_timer auth_timer; /* the delay before a 535 */
	char auth_user[AUTH_USER_MAX + 1];

	/* The transaction (RFC 5321 3.3). */
	struct smtp_path from;
	struct mail_params params;
	char *rcpts; /* accepted recipients, NUL-separated */
	size_t rcpts_len;
	size_t rcpts_cap;
	unsigned nrcpt;

	/* DATA */
	struct data_state data;
	struct maildir_file file;
	bool file_open;
	bool too_big;
	int write_err; /* first write errno, 0 when none */

	size_t in_len;
	size_t out_len;
	char in[SESSION_IN_MAX];
	char out[SESSION_OUT_MAX];
};

/* session.c */
void session_reply(struct session *, int code, const char *enh, const char *fmt,
		   ...) __attribute__((format(printf, 4, 5)));
void session_enter_state(struct session *, enum session_state);
void session_close(struct session *, int code, const char *enh,
		   const char *text);
void session_reset_transaction(struct session *);
void session_arm_timer(struct session *);
struct log_line *session_log(struct session *, enum log_level,
			     const char *event);
void session_wake(struct session *);

/* session_cmd.c */
void session_command(struct session *, const char *line, size_t len);

/* session_auth.c */
void session_auth_command(struct session *, const char *args, size_t len);
void session_auth_response(struct session *, const char *line, size_t len);
/* AUTH is in the EHLO reply: a users file, and TLS or allowed without. */
bool session_auth_offered(const struct session *);
void session_auth_init(struct session *);
void session_auth_stop(struct session *);
void session_auth_reset(struct session *);

/* session_data.c */
void session_data_start(struct session *);
size_t session_data_feed(struct session *, const char *p, size_t n);
void session_data_abort(struct session *);

#endif

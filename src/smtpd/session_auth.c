/*
 * session_auth: AUTH PLAIN (RFC 4616) and AUTH LOGIN in the SMTP session
 * (RFC 4954), checked against the users file (auth.c).
 *
 * AUTH runs only in WAIT (after EHLO, outside a transaction). While a 334
 * challenge is out the session is in SESSION_AUTH and the next line is the
 * client's answer, never a command. A wrong password is answered only
 * after a delay that grows with each failure (SESSION_AUTH_FAILED holds
 * the input meanwhile, on a loop timer, so nothing blocks); at
 * auth.max_failures the session closes with 421 4.7.0. Passwords are
 * wiped after use and never logged.
 */
#include "session_int.h"

#include <string.h>
#include <strings.h>

/* "Username:" and "Password:" in base64: the LOGIN prompts. */
#define AUTH_LOGIN_USER_PROMPT "VXNlcm5hbWU6"
#define AUTH_LOGIN_PASS_PROMPT "UGFzc3dvcmQ6"

static void session_auth_delay_done(struct loop *, struct loop_timer *, void *);

void
session_auth_init(struct session *s)
{
	loop_timer_init(&s->auth_timer, session_auth_delay_done, s);
}

void
session_auth_stop(struct session *s)
{
	loop_timer_disarm(s->ctx->loop, &s->auth_timer);
}

void
session_auth_reset(struct session *s)
{
	s->authed = false;
	s->auth_have_user = false;
	memset(s->auth_user, 0, sizeof s->auth_user);
}

bool
session_auth_offered(const struct session *s)
{
	const struct smtpd_config *cfg = s->ctx->cfg;
	return smtpd_config_has_auth(cfg) &&
	       (s->in_tls || cfg->auth_allow_plaintext);
}

static const char *
session_auth_mech(const struct session *s)
{
	return s->auth_login ? "LOGIN" : "PLAIN";
}

static void
session_auth_log(struct session *s, enum log_level level, const char *event,
		 const char *user, size_t ulen)
{
	struct log_line *l = session_log(s, level, event);
	char name[AUTH_USER_MAX + 1];
	if (ulen > AUTH_USER_MAX)
		ulen = AUTH_USER_MAX;
	memcpy(name, user, ulen);
	name[ulen] = '\0';
	log_str(l, "client", s->peer_ip);
	log_str(l, "mechanism", session_auth_mech(s));
	log_str(l, "user", name);
	if (s->auth_failures > 0)
		log_uint(l, "failures", s->auth_failures);
	log_end(l);
}

static void
session_auth_end_exchange(struct session *s)
{
	if (!s->authed) {
		s->auth_have_user = false;
		memset(s->auth_user, 0, sizeof s->auth_user);
	}
	session_enter_state(s, SESSION_WAIT);
}

/* The credentials are in: 235, or a delayed 535 / 421. */
static void
session_auth_finish(struct session *s, const char *user, size_t ulen,
		    const char *pass, size_t plen)
{
	const struct smtpd_config *cfg = s->ctx->cfg;

	if (auth_users_verify(&cfg->users, user, ulen, pass, plen)) {
		memcpy(s->auth_user, user, ulen);
		s->auth_user[ulen] = '\0';
		s->authed = true;
		s->auth_have_user = false;
		session_enter_state(s, SESSION_WAIT);
		session_auth_log(s, LOG_INFO, "auth.ok", user, ulen);
		session_reply(s, 235, "2.7.0", "Authentication successful");
		return;
	}
	s->auth_failures++;
	session_auth_log(s, LOG_WARN, "auth.failed", user, ulen);
	session_auth_end_exchange(s);
	session_enter_state(s, SESSION_AUTH_FAILED);
	loop_timer_arm(s->ctx->loop, &s->auth_timer,
		       cfg->auth_failure_delay * s->auth_failures);
}

static void
session_auth_delay_done(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct session *s = arg;
	(void)loop;
	(void)t;
	if (s->state != SESSION_AUTH_FAILED)
		return;
	session_enter_state(s, SESSION_WAIT);
	if (s->auth_failures >= s->ctx->cfg->auth_max_failures)
		session_close(s, 421, "4.7.0",
			      "Error: too many authentication failures");
	else
		session_reply(s, 535, "5.7.8", "Error: authentication failed");
	session_resume(s);
	session_wake(s);
}

/* Decodes one base64 answer; replies 501 itself when it is bad. */
static bool
session_auth_decode(struct session *s, const char *b64, size_t len,
		    unsigned char *out, size_t cap, size_t *outlen)
{
	if (auth_b64_decode(b64, len, out, cap, outlen) == 0)
		return true;
	session_auth_end_exchange(s);
	session_reply(s, 501, "5.5.2", "Error: invalid base64 data");
	return false;
}

static void
session_auth_plain(struct session *s, const char *b64, size_t len)
{
	unsigned char msg[SESSION_LINE_MAX];
	size_t n;
	struct auth_plain p;

	if (!session_auth_decode(s, b64, len, msg, sizeof msg, &n))
		return;
	if (auth_plain_parse(msg, n, &p) != 0) {
		explicit_bzero(msg, sizeof msg);
		session_auth_end_exchange(s);
		session_reply(s, 501, "5.5.2",
			      "Error: invalid PLAIN authentication message");
		return;
	}
	/* Acting for someone else (an authzid not the user) is not allowed. */
	if (p.authzid_len > 0 && (p.authzid_len != p.user_len ||
				  memcmp(p.authzid, p.user, p.user_len) != 0))
		p.pass_len = 0; /* fails verification, counted as a failure */
	session_auth_finish(s, (const char *)p.user, p.user_len,
			    (const char *)p.pass, p.pass_len);
	explicit_bzero(msg, sizeof msg);
}

static void
session_auth_login(struct session *s, const char *b64, size_t len)
{
	unsigned char v[SESSION_LINE_MAX];
	size_t n;

	if (!session_auth_decode(s, b64, len, v, sizeof v, &n))
		return;
	if (!s->auth_have_user) {
		if (n == 0 || n > AUTH_USER_MAX || memchr(v, '\0', n)) {
			session_auth_end_exchange(s);
			session_reply(s, 501, "5.5.2", "Error: bad user name");
			return;
		}
		memcpy(s->auth_user, v, n);
		s->auth_user[n] = '\0';
		s->auth_have_user = true;
		session_enter_state(s, SESSION_AUTH);
		session_reply(s, 334, NULL, AUTH_LOGIN_PASS_PROMPT);
		return;
	}
	session_auth_finish(s, s->auth_user, strlen(s->auth_user),
			    (const char *)v, n);
	explicit_bzero(v, sizeof v);
}

void
session_auth_response(struct session *s, const char *line, size_t len)
{
	if (len == 1 && line[0] == '*') {
		session_auth_end_exchange(s);
		session_reply(s, 501, "5.7.0", "Authentication cancelled");
		return;
	}
	if (s->auth_login)
		session_auth_login(s, line, len);
	else
		session_auth_plain(s, line, len);
}

/* Why AUTH cannot run now, with its reply; false when it can. */
static bool
session_auth_refused(struct session *s)
{
	const struct smtpd_config *cfg = s->ctx->cfg;

	if (!smtpd_config_has_auth(cfg)) {
		session_reply(s, 502, "5.5.1",
			      "Error: command not implemented");
	} else if (s->state == SESSION_INIT || !s->esmtp) {
		session_reply(s, 503, "5.5.1", "Error: send EHLO first");
	} else if (!session_auth_offered(s)) {
		session_reply(s, 538, "5.7.11",
			      "Encryption required for requested "
			      "authentication mechanism");
	} else if (s->authed) {
		session_reply(s, 503, "5.5.1", "Error: already authenticated");
	} else if (s->state != SESSION_WAIT) {
		session_reply(s, 503, "5.5.1",
			      "Error: MAIL transaction in progress");
	} else {
		return false;
	}
	return true;
}

void
session_auth_command(struct session *s, const char *args, size_t len)
{
	if (session_auth_refused(s))
		return;
	size_t mlen = 0;
	while (mlen < len && args[mlen] != ' ')
		mlen++;
	const char *ir = mlen < len ? args + mlen + 1 : NULL;
	size_t irlen = ir ? len - mlen - 1 : 0;
	if (mlen == 0 || (ir && (irlen == 0 || memchr(ir, ' ', irlen)))) {
		session_reply(s, 501, "5.5.4",
			      "Syntax: AUTH mechanism [initial-response]");
		return;
	}
	if (mlen == 5 && strncasecmp(args, "PLAIN", 5) == 0)
		s->auth_login = false;
	else if (mlen == 5 && strncasecmp(args, "LOGIN", 5) == 0)
		s->auth_login = true;
	else {
		session_reply(s, 504, "5.5.4",
			      "Unrecognized authentication type");
		return;
	}
	s->auth_have_user = false;
	session_enter_state(s, SESSION_AUTH);
	if (!ir) {
		session_reply(s, 334, NULL, "%s",
			      s->auth_login ? AUTH_LOGIN_USER_PROMPT : "");
		return;
	}
	/* RFC 4954 4: "=" is an empty initial response. */
	if (irlen == 1 && ir[0] == '=')
		irlen = 0;
	session_auth_response(s, ir, irlen);
}

const char *
session_auth_user(const struct session *s)
{
	return s->authed ? s->auth_user : NULL;
}

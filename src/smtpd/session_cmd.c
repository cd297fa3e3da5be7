/*
 * session_cmd: the SMTP commands (RFC 5321 4.1.1) as a table of verbs,
 * each with one handler that checks the state and proceeds.
 *
 * Enhanced status codes (RFC 3463) go on every reply except the greeting
 * and the replies to HELO/EHLO (RFC 2034 4).
 */
#include "session_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct session_cmd {
	const char *verb;
	bool takes_args; /* false: "VERB x" is a syntax error */
	void (*run)(struct session *, const char *args, size_t len);
};

static bool
session_need_helo(struct session *s)
{
	if (s->state != SESSION_INIT)
		return false;
	session_reply(s, 503, "5.5.1", "Error: send HELO/EHLO first");
	return true;
}

/* Skips "FROM:" / "TO:" and optional spaces (accepted as Postfix does). */
static const char *
session_expect_prefix(const char *args, size_t len, const char *prefix,
		      size_t *rest)
{
	size_t plen = strlen(prefix);
	if (len < plen || strncasecmp(args, prefix, plen) != 0)
		return NULL;
	size_t i = plen;
	while (i < len && args[i] == ' ')
		i++;
	*rest = len - i;
	return args + i;
}

static void
cmd_helo_common(struct session *s, const char *args, size_t len, bool esmtp)
{
	const char *verb = esmtp ? "EHLO" : "HELO";
	size_t word = 0;

	while (word < len && args[word] != ' ')
		word++;
	if (word == 0 || word > SESSION_HELO_MAX) {
		session_reply(s, 501, "5.5.4", "Syntax: %s hostname", verb);
		return;
	}
	/* RFC 5321 4.1.4: HELO/EHLO resets any transaction. */
	session_reset_transaction(s);
	memcpy(s->helo, args, word);
	s->helo[word] = '\0';
	s->esmtp = esmtp;
	session_enter_state(s, SESSION_WAIT);
	const struct smtpd_config *cfg = s->ctx->cfg;
	if (!esmtp) {
		session_reply(s, 250, NULL, "%s", cfg->hostname);
		return;
	}
	/* RFC 3207 4.2: no STARTTLS once inside TLS. */
	bool starttls = s->starttls_offered && !s->in_tls;
	session_reply(s, 250, NULL,
		      "%s\nPIPELINING\nSIZE %llu\n8BITMIME\n%s%s"
		      "ENHANCEDSTATUSCODES\nSMTPUTF8\nHELP",
		      cfg->hostname, (unsigned long long)cfg->max_message_size,
		      starttls ? "STARTTLS\n" : "",
		      session_auth_offered(s) ? "AUTH PLAIN LOGIN\n" : "");
}

static void
cmd_helo(struct session *s, const char *args, size_t len)
{
	cmd_helo_common(s, args, len, false);
}

static void
cmd_ehlo(struct session *s, const char *args, size_t len)
{
	cmd_helo_common(s, args, len, true);
}

/* Maps a parameter error to its reply; bad points at the keyword. */
static void
session_param_error(struct session *s, enum param_err err, const char *bad,
		    const char *end)
{
	size_t n = 0;
	if (!bad)
		bad = end;
	while (bad + n < end && bad[n] != ' ' && bad[n] != '=' && n < 64)
		n++;
	switch (err) {
	case PARAM_ERR_UNKNOWN:
		session_reply(s, 555, "5.5.4", "Unsupported option: %.*s",
			      (int)n, bad);
		break;
	case PARAM_ERR_VALUE:
		/* RFC 3030 BINARYMIME is a real value we don't implement. */
		if (end - bad >= 15 &&
		    strncasecmp(bad, "BODY=BINARYMIME", 15) == 0)
			session_reply(s, 504, "5.5.4",
				      "BODY=BINARYMIME is not supported");
		else
			session_reply(s, 501, "5.5.4", "Bad parameter value");
		break;
	default:
		session_reply(s, 501, "5.5.4", "Syntax error in parameters");
		break;
	}
}

static void
cmd_mail(struct session *s, const char *args, size_t len)
{
	if (session_need_helo(s))
		return;
	if (s->state != SESSION_WAIT) {
		session_reply(s, 503, "5.5.1", "Error: nested MAIL command");
		return;
	}
	/* RFC 6409 4.3 / RFC 4954 6: submission needs a known sender. */
	if (s->submission && !s->authed) {
		session_reply(s, 530, "5.7.0", "Authentication required");
		return;
	}
	size_t rest;
	const char *p = session_expect_prefix(args, len, "FROM:", &rest);
	struct smtp_path path;
	size_t used;
	if (!p ||
	    smtp_path_parse(p, rest, ADDR_ALLOW_NULL | ADDR_ALLOW_UTF8, &path,
			    &used) != ADDR_OK ||
	    (used < rest && p[used] != ' ')) {
		session_reply(s, 501, "5.1.7", "Bad sender address syntax");
		return;
	}
	struct mail_params params;
	const char *bad = NULL;
	enum param_err perr =
	    smtp_mail_params(p + used, rest - used, &params, &bad);
	if (perr != PARAM_OK) {
		session_param_error(s, perr, bad, p + rest);
		return;
	}
	/* RFC 6531 3.4: non-ASCII envelope only with SMTPUTF8. */
	if (path.utf8 && !params.smtputf8) {
		session_reply(s, 553, "5.6.7", "Address needs SMTPUTF8");
		return;
	}
	/* RFC 1870 6.2: refuse a declared size we will not take. */
	if (params.has_size && params.size > s->ctx->cfg->max_message_size) {
		session_reply(s, 552, "5.3.4",
			      "Message size exceeds fixed limit");
		return;
	}
	s->from = path;
	s->params = params;
	session_enter_state(s, SESSION_MAIL_SET);
	session_reply(s, 250, "2.1.0", "Ok");
}

/* Recipient policy: relay clients anywhere, others to our domains only. */
static bool
session_may_relay(const struct session *s, const struct smtp_path *to)
{
	const struct session_ctx *ctx = s->ctx;

	if (to->is_postmaster || s->authed) /* RFC 5321 4.5.1, RFC 4954 */
		return true;
	for (size_t i = 0; i < ctx->relay_nets_count; i++)
		if (cidr_match(&ctx->relay_nets[i], session_peer(s)))
			return true;
	/* A later hop could route user%other@ours to "other". */
	if (smtp_path_has_routing(to))
		return false;
	const struct config_list *domains = &ctx->cfg->relay_domains;
	for (size_t i = 0; i < domains->count; i++)
		if (smtp_domain_equal(domains->items[i], smtp_path_domain(to)))
			return true;
	return false;
}

static int
session_add_rcpt(struct session *s, const struct smtp_path *to)
{
	size_t need = s->rcpts_len + to->len + 1;
	if (need > s->rcpts_cap) {
		size_t cap = s->rcpts_cap ? s->rcpts_cap * 2 : 512;
		while (cap < need)
			cap *= 2;
		char *p = realloc(s->rcpts, cap);
		if (!p)
			return -1;
		s->rcpts = p;
		s->rcpts_cap = cap;
	}
	memcpy(s->rcpts + s->rcpts_len, to->addr, to->len + 1);
	s->rcpts_len = need;
	s->nrcpt++;
	return 0;
}

static void
cmd_rcpt(struct session *s, const char *args, size_t len)
{
	if (session_need_helo(s))
		return;
	if (s->state != SESSION_MAIL_SET && s->state != SESSION_RCPTS_SET) {
		session_reply(s, 503, "5.5.1", "Error: need MAIL command");
		return;
	}
	size_t rest;
	const char *p = session_expect_prefix(args, len, "TO:", &rest);
	struct smtp_path to;
	size_t used;
	if (!p ||
	    smtp_path_parse(p, rest, ADDR_ALLOW_POSTMASTER | ADDR_ALLOW_UTF8,
			    &to, &used) != ADDR_OK ||
	    (used < rest && p[used] != ' ')) {
		session_reply(s, 501, "5.1.3", "Bad recipient address syntax");
		return;
	}
	const char *bad = NULL;
	enum param_err perr = smtp_rcpt_params(p + used, rest - used, &bad);
	if (perr != PARAM_OK) {
		session_param_error(s, perr, bad, p + rest);
		return;
	}
	if (to.utf8 && !s->params.smtputf8) {
		session_reply(s, 553, "5.6.7", "Address needs SMTPUTF8");
		return;
	}
	if (s->nrcpt >= s->ctx->cfg->max_recipients) {
		session_reply(s, 452, "4.5.3", "Error: too many recipients");
		return;
	}
	if (!session_may_relay(s, &to)) {
		s->ctx->stats.rcpts_rejected++;
		struct log_line *l = session_log(s, LOG_INFO, "rcpt.rejected");
		log_str(l, "client", s->peer_ip);
		log_str(l, "to", to.addr);
		log_str(l, "reason", "relay access denied");
		log_end(l);
		session_reply(s, 554, "5.7.1", "<%s>: Relay access denied",
			      to.addr);
		return;
	}
	if (session_add_rcpt(s, &to) != 0) {
		session_reply(s, 452, "4.3.1", "Insufficient system storage");
		return;
	}
	session_enter_state(s, SESSION_RCPTS_SET);
	session_reply(s, 250, "2.1.5", "Ok");
}

static void
cmd_data(struct session *s, const char *args, size_t len)
{
	(void)args;
	(void)len;
	if (session_need_helo(s))
		return;
	if (s->state != SESSION_RCPTS_SET) {
		session_reply(s, 503, "5.5.1", "Error: need RCPT command");
		return;
	}
	session_data_start(s);
}

static void
cmd_rset(struct session *s, const char *args, size_t len)
{
	(void)args;
	(void)len;
	session_reset_transaction(s);
	if (s->state != SESSION_INIT)
		session_enter_state(s, SESSION_WAIT);
	session_reply(s, 250, "2.0.0", "Ok");
}

static void
cmd_noop(struct session *s, const char *args, size_t len)
{
	(void)args;
	(void)len;
	session_reply(s, 250, "2.0.0", "Ok");
}

/* RFC 5321 3.5.3: 252 when we will not disclose the mailbox. */
static void
cmd_vrfy(struct session *s, const char *args, size_t len)
{
	(void)args;
	if (len == 0) {
		session_reply(s, 501, "5.5.4", "Syntax: VRFY address");
		return;
	}
	session_reply(s, 252, "2.5.2",
		      "Cannot VRFY user, but will accept "
		      "message and attempt delivery");
}

static void
cmd_help(struct session *s, const char *args, size_t len)
{
	(void)args;
	(void)len;
	session_reply(s, 214, "2.0.0",
		      "Commands: HELO EHLO %s%sMAIL RCPT DATA RSET NOOP VRFY "
		      "HELP QUIT\nSee RFC 5321",
		      s->starttls_offered && !s->in_tls ? "STARTTLS " : "",
		      session_auth_offered(s) ? "AUTH " : "");
}

static void
cmd_quit(struct session *s, const char *args, size_t len)
{
	(void)args;
	(void)len;
	session_reply(s, 221, "2.0.0", "Bye");
	session_reset_transaction(s);
	session_enter_state(s, SESSION_CLOSED);
	loop_timer_disarm(s->ctx->loop, &s->timer);
}

/*
 * RFC 3207 4. Replies and their order follow Postfix's starttls_cmd():
 * 554 when TLS is already active (RFC 3207 leaves the code open, and an
 * implicit-TLS session is in TLS too), then 502 5.5.1 "command not
 * implemented" where STARTTLS is not offered (no certificate, or a
 * listener with tls: none; Postfix's answer when smtpd_use_tls is off or
 * the EHLO keyword is discarded), 503 inside a mail transaction. The
 * table has already refused arguments with 501.
 */
static void
cmd_starttls(struct session *s, const char *args, size_t len)
{
	(void)args;
	(void)len;
	if (s->in_tls) {
		session_reply(s, 554, "5.5.1", "Error: TLS already active");
		return;
	}
	if (!s->starttls_offered) {
		session_reply(s, 502, "5.5.1",
			      "Error: command not implemented");
		return;
	}
	if (s->state == SESSION_MAIL_SET || s->state == SESSION_RCPTS_SET) {
		session_reply(s, 503, "5.5.1",
			      "Error: MAIL transaction in progress");
		return;
	}
	session_reply(s, 220, "2.0.0", "Ready to start TLS");
	session_enter_state(s, SESSION_STARTTLS);
}

/* Known verbs we do not offer: 502 rather than "unrecognised". */
static void
cmd_not_implemented(struct session *s, const char *args, size_t len)
{
	(void)args;
	(void)len;
	session_reply(s, 502, "5.5.1", "Error: command not implemented");
}

static const struct session_cmd session_cmds[] = {
    {"HELO", true, cmd_helo},
    {"EHLO", true, cmd_ehlo},
    {"MAIL", true, cmd_mail},
    {"RCPT", true, cmd_rcpt},
    {"DATA", false, cmd_data},
    {"RSET", false, cmd_rset},
    {"NOOP", true, cmd_noop},
    {"VRFY", true, cmd_vrfy},
    {"HELP", true, cmd_help},
    {"QUIT", false, cmd_quit},
    {"EXPN", true, cmd_not_implemented},
    {"TURN", true, cmd_not_implemented},
    {"ETRN", true, cmd_not_implemented},
    {"BDAT", true, cmd_not_implemented},
    {"AUTH", true, session_auth_command},
    {"STARTTLS", false, cmd_starttls},
};

void
session_command(struct session *s, const char *line, size_t len)
{
	size_t vlen = 0;
	while (vlen < len && line[vlen] != ' ')
		vlen++;
	const char *args = line + vlen;
	size_t alen = len - vlen;
	while (alen > 0 && *args == ' ') {
		args++;
		alen--;
	}
	while (alen > 0 && args[alen - 1] == ' ')
		alen--; /* trailing spaces are common and harmless */

	for (size_t i = 0; i < sizeof session_cmds / sizeof session_cmds[0];
	     i++) {
		const struct session_cmd *c = &session_cmds[i];
		if (strlen(c->verb) != vlen ||
		    strncasecmp(c->verb, line, vlen) != 0)
			continue;
		if (!c->takes_args && alen > 0) {
			session_reply(s, 501, "5.5.4", "Syntax: %s", c->verb);
			return;
		}
		c->run(s, args, alen);
		return;
	}
	session_reply(s, 500, "5.5.2", "Error: command not recognized");
}

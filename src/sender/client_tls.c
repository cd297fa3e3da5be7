/* client_tls: STARTTLS (RFC 3207) on an MX session: handshake, fallback. */
#include "client_int.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "sender_config.h"

void
client_tls_drop(struct client *c)
{
	if (c->tls) {
		tls_close_notify(c->tls);
		tls_free(c->tls);
		c->tls = NULL;
	}
	c->tls_verified = false;
	c->tls_read_wants_write = false;
}

void
client_handshake(struct client *c)
{
	switch (tls_handshake(c->tls)) {
	case TLS_OK:
		c->tls_verified = tls_verified(c->tls);
		/* RFC 3207 4.2: forget what was learnt in plaintext. */
		memset(&c->caps, 0, sizeof c->caps);
		c->pipelining = false;
		client_send(c, "EHLO %s\r\n", c->snd->cfg->hostname);
		client_enter_state(c, CLIENT_EHLO);
		client_arm(c, c->snd->cfg->timeout_mail);
		client_flush(c);
		break;
	case TLS_WANT_READ:
		loop_modify(c->snd->loop, c->fd, LOOP_READ);
		break;
	case TLS_WANT_WRITE:
		loop_modify(c->snd->loop, c->fd, LOOP_WRITE);
		break;
	case TLS_CLOSED:
		client_tls_failed(c, tls_error(c->tls)[0]
					 ? tls_error(c->tls)
					 : "connection closed by server");
		break;
	case TLS_ERROR:
		client_tls_failed(c, tls_error(c->tls));
		break;
	}
}

/* Every session shares the sender's client context, made at start-up
 * for tls.mode; a connection adds only the peer name. */
void
client_starttls(struct client *c)
{
	bool verify = c->tls_mode == SENDER_TLS_VERIFY;

	client_enter_state(c, CLIENT_TLS);
	client_arm(c, c->snd->cfg->timeout_greeting);
	if (!c->snd->tls_ctx) { /* only tls.mode none has none */
		client_tls_failed(c, "no TLS client context");
		return;
	}
	c->tls = tls_new(c->snd->tls_ctx, c->fd);
	if (!c->tls || tls_set_peer_name(c->tls, c->q->key, verify) != 0) {
		client_tls_failed(c, "out of memory");
		return;
	}
	/* The handshake starts once client_read has dropped what came in
	 * plaintext behind the 220. */
}

void
client_tls_failed(struct client *c, const char *what)
{
	char why[TLS_ERR_MAX + 32];
	snprintf(why, sizeof why, "TLS handshake failed: %s", what);
	if (c->tls_mode != SENDER_TLS_MAY || c->tls_off) {
		client_policy_fail(c, "4.7.5", why);
		return;
	}
	struct log_line *l = log_begin(c->snd->log, LOG_WARN, "tls.fallback");
	log_str(l, "mx", c->q->key);
	log_str(l, "relay", c->relay);
	log_str(l, "reason", why);
	log_end(l);
	c->tls_off = true;
	client_drop_socket(c);
	client_connect(c); /* the same address, without STARTTLS */
}

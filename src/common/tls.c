/*
 * tls: OpenSSL over non-blocking fds (see tls.h).
 *
 * Writes use partial-write and moving-buffer modes so a caller may pass
 * a buffer that was compacted or grew since a WANT result. Renegotiation
 * is off (TLS 1.2) and an EOF without close_notify counts as a close:
 * SMTP has its own end (QUIT / 221), as RFC 3207 5 allows.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SSL_OP_IGNORE_UNEXPECTED_EOF
#define SSL_OP_IGNORE_UNEXPECTED_EOF 0
#endif

struct tls_ctx {
	SSL_CTX *ssl;
	bool server;
};

struct tls {
	SSL *ssl;
	bool failed;  /* fatal error: no close_notify may follow */
	bool starved; /* the last read wanted more bytes from the fd */
	char err[TLS_ERR_MAX];
};

/* The most recent queued OpenSSL error as text, and an empty queue. */
static void
tls_take_error(char *buf, size_t cap, const char *fallback)
{
	unsigned long e, last = 0;

	while ((e = ERR_get_error()) != 0)
		last = e;
	if (last == 0) {
		snprintf(buf, cap, "%s", fallback);
		return;
	}
	const char *reason = ERR_reason_error_string(last);
	const char *lib = ERR_lib_error_string(last);
	if (reason)
		snprintf(buf, cap, "%s%s%s", lib ? lib : "", lib ? ": " : "",
			 reason);
	else
		ERR_error_string_n(last, buf, cap);
}

/*
 * SSL_get_error() needs an empty error queue before the call it judges.
 * Every path here leaves it empty (tls_take_error), so per record only a
 * peek is needed: ERR_clear_error() walks all of the queue's slots, a
 * measurable share of a small record's cost.
 */
static void
tls_clear_stale_errors(void)
{
	if (ERR_peek_error() != 0)
		ERR_clear_error();
}

static SSL_CTX *
tls_ctx_base(const SSL_METHOD *method, char *err, size_t errlen)
{
	ERR_clear_error();
	SSL_CTX *ssl = SSL_CTX_new(method);
	if (!ssl) {
		tls_take_error(err, errlen, "out of memory");
		return NULL;
	}
	/* Issue 6: TLS 1.2 and 1.3 only. */
	if (SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION) != 1) {
		tls_take_error(err, errlen, "cannot set TLS 1.2 minimum");
		SSL_CTX_free(ssl);
		return NULL;
	}
	SSL_CTX_set_options(ssl, SSL_OP_NO_RENEGOTIATION |
				     SSL_OP_NO_COMPRESSION |
				     SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
				  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				  SSL_MODE_RELEASE_BUFFERS);
	/* One read() per readiness instead of a record header and then its
	 * body; what it reads ahead is seen by SSL_has_pending(), which
	 * tls_pending() asks. */
	SSL_CTX_set_read_ahead(ssl, 1);
	return ssl;
}

static struct tls_ctx *
tls_ctx_wrap(SSL_CTX *ssl, bool server, char *err, size_t errlen)
{
	struct tls_ctx *c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		SSL_CTX_free(ssl);
		return NULL;
	}
	c->ssl = ssl;
	c->server = server;
	return c;
}

/* Says "cannot read" before OpenSSL's less clear PEM errors can. */
static int
tls_check_readable(const char *what, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: cannot read '%s': %s", what, path,
			 strerror(errno));
		return -1;
	}
	fclose(f);
	return 0;
}

static int
tls_load_pair(SSL_CTX *ssl, const char *cert, const char *key, char *err,
	      size_t errlen)
{
	char why[TLS_ERR_MAX];

	if (tls_check_readable("tls.cert", cert, err, errlen) != 0 ||
	    tls_check_readable("tls.key", key, err, errlen) != 0)
		return -1;
	if (SSL_CTX_use_certificate_chain_file(ssl, cert) != 1) {
		tls_take_error(why, sizeof why, "unknown error");
		snprintf(err, errlen,
			 "tls.cert: no PEM certificate chain in '%s' (%s)",
			 cert, why);
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ssl, key, SSL_FILETYPE_PEM) != 1) {
		tls_take_error(why, sizeof why, "unknown error");
		/* OpenSSL also fails here when the key does not fit. */
		snprintf(err, errlen,
			 "tls.key: no usable PEM private key for the "
			 "certificate in '%s' (%s)",
			 key, why);
		return -1;
	}
	if (SSL_CTX_check_private_key(ssl) != 1) {
		tls_take_error(why, sizeof why, "unknown error");
		snprintf(err, errlen,
			 "tls.key: '%s' does not match the certificate in "
			 "'%s' (%s)",
			 key, cert, why);
		return -1;
	}
	return 0;
}

struct tls_ctx *
tls_ctx_server(const char *cert, const char *key, char *err, size_t errlen)
{
	SSL_CTX *ssl = tls_ctx_base(TLS_server_method(), err, errlen);
	if (!ssl)
		return NULL;
	if (tls_load_pair(ssl, cert, key ? key : cert, err, errlen) != 0) {
		SSL_CTX_free(ssl);
		ERR_clear_error();
		return NULL;
	}
	static const unsigned char sid[] = "mta";
	SSL_CTX_set_session_id_context(ssl, sid, sizeof sid - 1);
	SSL_CTX_set_options(ssl, SSL_OP_CIPHER_SERVER_PREFERENCE);
	return tls_ctx_wrap(ssl, true, err, errlen);
}

struct tls_ctx *
tls_ctx_client(char *err, size_t errlen)
{
	SSL_CTX *ssl = tls_ctx_base(TLS_client_method(), err, errlen);
	if (!ssl)
		return NULL;
	SSL_CTX_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	return tls_ctx_wrap(ssl, false, err, errlen);
}

/* Lets the handshake go on past a failed certificate check; the
 * result stays in SSL_get_verify_result() for tls_verified(). */
static int
tls_verify_go_on(int ok, X509_STORE_CTX *store)
{
	(void)ok;
	(void)store;
	return 1;
}

static struct tls_ctx *
tls_ctx_client_ca(const char *ca_file, bool hard, char *err, size_t errlen)
{
	char why[TLS_ERR_MAX];

	if (tls_check_readable("tls.ca_file", ca_file, err, errlen) != 0)
		return NULL;
	SSL_CTX *ssl = tls_ctx_base(TLS_client_method(), err, errlen);
	if (!ssl)
		return NULL;
	if (SSL_CTX_load_verify_locations(ssl, ca_file, NULL) != 1) {
		tls_take_error(why, sizeof why, "unknown error");
		snprintf(err, errlen,
			 "tls.ca_file: no PEM CA certificates in '%s' (%s)",
			 ca_file, why);
		SSL_CTX_free(ssl);
		return NULL;
	}
	SSL_CTX_set_verify(ssl, SSL_VERIFY_PEER,
			   hard ? NULL : tls_verify_go_on);
	return tls_ctx_wrap(ssl, false, err, errlen);
}

struct tls_ctx *
tls_ctx_client_verify(const char *ca_file, char *err, size_t errlen)
{
	return tls_ctx_client_ca(ca_file, true, err, errlen);
}

struct tls_ctx *
tls_ctx_client_check(const char *ca_file, char *err, size_t errlen)
{
	return tls_ctx_client_ca(ca_file, false, err, errlen);
}

void
tls_ctx_free(struct tls_ctx *c)
{
	if (!c)
		return;
	SSL_CTX_free(c->ssl);
	free(c);
}

struct tls *
tls_new(struct tls_ctx *ctx, int fd)
{
	struct tls *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	ERR_clear_error();
	t->ssl = SSL_new(ctx->ssl);
	/* The socket BIO does not own fd (BIO_NOCLOSE). */
	if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1) {
		SSL_free(t->ssl);
		free(t);
		ERR_clear_error();
		errno = ENOMEM;
		return NULL;
	}
	if (ctx->server)
		SSL_set_accept_state(t->ssl);
	else
		SSL_set_connect_state(t->ssl);
	return t;
}

void
tls_free(struct tls *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	free(t);
}

/* A failed certificate check says why ("hostname mismatch"). */
static void
tls_add_verify_error(struct tls *t)
{
	long v = SSL_get_verify_result(t->ssl);
	if (v == X509_V_OK || SSL_get_verify_mode(t->ssl) == SSL_VERIFY_NONE)
		return;
	size_t len = strlen(t->err);
	snprintf(t->err + len, sizeof t->err - len, " (%s)",
		 X509_verify_cert_error_string(v));
}

/* Maps the outcome of an SSL call that did not succeed. */
static enum tls_result
tls_result_of(struct tls *t, int ret)
{
	int saved = errno;
	switch (SSL_get_error(t->ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		return TLS_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return TLS_WANT_WRITE;
	case SSL_ERROR_ZERO_RETURN:
		ERR_clear_error();
		return TLS_CLOSED;
	case SSL_ERROR_SYSCALL:
		t->failed = true;
		if (ERR_peek_error() == 0 && saved == 0) {
			snprintf(t->err, sizeof t->err, "unexpected EOF");
			return TLS_CLOSED;
		}
		tls_take_error(t->err, sizeof t->err,
			       saved ? strerror(saved) : "I/O error");
		return TLS_ERROR;
	default:
		t->failed = true;
		tls_take_error(t->err, sizeof t->err, "protocol error");
		tls_add_verify_error(t);
		return TLS_ERROR;
	}
}

static bool
tls_is_ip(const char *host)
{
	unsigned char addr[16];
	return inet_pton(AF_INET, host, addr) == 1 ||
	       inet_pton(AF_INET6, host, addr) == 1;
}

int
tls_set_peer_name(struct tls *t, const char *host, bool check)
{
	bool ip = tls_is_ip(host);
	int ok = 1;

	ERR_clear_error();
	/* RFC 6066 3: literal addresses are not sent as SNI. */
	if (!ip)
		ok = SSL_set_tlsext_host_name(t->ssl, host);
	if (ok == 1 && check) {
		X509_VERIFY_PARAM *p = SSL_get0_param(t->ssl);
		X509_VERIFY_PARAM_set_hostflags(
		    p, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(p, host)
			: X509_VERIFY_PARAM_set1_host(p, host, 0);
	}
	if (ok != 1) {
		tls_take_error(t->err, sizeof t->err, "out of memory");
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

enum tls_result
tls_handshake(struct tls *t)
{
	ERR_clear_error();
	errno = 0;
	int r = SSL_do_handshake(t->ssl);
	return r == 1 ? TLS_OK : tls_result_of(t, r);
}

enum tls_result
tls_read(struct tls *t, void *buf, size_t cap, size_t *n)
{
	*n = 0;
	tls_clear_stale_errors();
	errno = 0;
	int r = SSL_read_ex(t->ssl, buf, cap, n);
	enum tls_result res = r == 1 ? TLS_OK : tls_result_of(t, r);
	t->starved = res == TLS_WANT_READ;
	return res;
}

enum tls_result
tls_write(struct tls *t, const void *buf, size_t len, size_t *n)
{
	*n = 0;
	tls_clear_stale_errors();
	errno = 0;
	int r = SSL_write_ex(t->ssl, buf, len, n);
	return r == 1 ? TLS_OK : tls_result_of(t, r);
}

/*
 * SSL_has_pending() is also true for a partial record; once a read has
 * wanted more bytes, only the fd can bring them (it drained the socket),
 * so that does not count until the next read: a caller that re-polled
 * on it would spin until the rest of the record arrived.
 */
bool
tls_pending(const struct tls *t)
{
	return SSL_pending(t->ssl) > 0 ||
	       (!t->starved && SSL_has_pending(t->ssl) == 1);
}

void
tls_close_notify(struct tls *t)
{
	/* OpenSSL forbids a shutdown after a fatal error or mid-handshake. */
	if (!t || t->failed || !SSL_is_init_finished(t->ssl))
		return;
	ERR_clear_error();
	(void)SSL_shutdown(t->ssl);
	ERR_clear_error();
}

const char *
tls_version(const struct tls *t)
{
	return SSL_get_version(t->ssl);
}

const char *
tls_cipher(const struct tls *t)
{
	const char *name = SSL_get_cipher_name(t->ssl);
	return name ? name : "NONE";
}

int
tls_cipher_bits(const struct tls *t, int *alg_bits)
{
	int alg = 0;
	int bits = SSL_get_cipher_bits(t->ssl, &alg);
	if (alg_bits)
		*alg_bits = alg;
	return bits;
}

bool
tls_verified(const struct tls *t)
{
	if (SSL_get_verify_mode(t->ssl) == SSL_VERIFY_NONE ||
	    !SSL_is_init_finished(t->ssl))
		return false;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	if (!SSL_get0_peer_certificate(t->ssl))
		return false;
#else
	X509 *peer = SSL_get_peer_certificate(t->ssl);
	if (!peer)
		return false;
	X509_free(peer);
#endif
	return SSL_get_verify_result(t->ssl) == X509_V_OK;
}

const char *
tls_verify_error(const struct tls *t)
{
	if (SSL_get_verify_mode(t->ssl) == SSL_VERIFY_NONE ||
	    !SSL_is_init_finished(t->ssl) || tls_verified(t))
		return "";
	long v = SSL_get_verify_result(t->ssl);
	return v == X509_V_OK ? "no peer certificate"
			      : X509_verify_cert_error_string(v);
}

const char *
tls_error(const struct tls *t)
{
	return t->err;
}

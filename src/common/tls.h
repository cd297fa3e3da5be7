/*
 * tls: a small OpenSSL wrapper for non-blocking sockets driven by the loop.
 *
 * A context holds the settings shared by many connections (TLS 1.2 and 1.3
 * only; for a server, its certificate chain and key). A connection object
 * sits over one non-blocking fd; every operation returns at once, and
 * TLS_WANT_READ / TLS_WANT_WRITE tell the caller which readiness of the fd
 * to wait for before calling the same operation again. No call blocks.
 *
 * Bytes already decrypted inside OpenSSL do not make the fd readable:
 * after a read, callers check tls_pending() before waiting on the fd.
 *
 * OpenSSL keeps its error queue per thread; every call here starts with
 * it empty and drains it into the connection's last error, so one
 * connection's failure never shows up as another's.
 *
 * OpenSSL writes to sockets with write(): the process must ignore SIGPIPE.
 */
#ifndef MTA_TLS_H
#define MTA_TLS_H

#include <stdbool.h>
#include <stddef.h>

#define TLS_ERR_MAX 256

enum tls_result {
	TLS_OK,		/* done: handshake complete, or bytes moved */
	TLS_WANT_READ,	/* call again once the fd is readable */
	TLS_WANT_WRITE, /* call again once the fd is writable */
	TLS_CLOSED,	/* the peer closed (close_notify or EOF) */
	TLS_ERROR,	/* fatal; tls_error() says why */
};

struct tls_ctx;
struct tls;

/*
 * A server context from PEM files: cert may hold the whole chain (leaf
 * first); key may be the same file (NULL: read it from cert). Checks that the
 * key matches the certificate. NULL with a message in err on failure.
 */
struct tls_ctx *tls_ctx_server(const char *cert, const char *key, char *err,
			       size_t errlen);
/* A client context that does not verify the peer (opportunistic TLS). */
struct tls_ctx *tls_ctx_client(char *err, size_t errlen);
/*
 * A client context that verifies the peer's chain against the PEM CA
 * bundle ca_file; a handshake with an untrusted peer fails. Pair it with
 * tls_set_peer_name() so the name is checked too.
 */
struct tls_ctx *tls_ctx_client_verify(const char *ca_file, char *err,
				      size_t errlen);
/*
 * As tls_ctx_client_verify(), but a peer that fails the check still
 * completes the handshake: tls_verified() and tls_verify_error() tell,
 * so one connection can serve both checked and unchecked needs.
 */
struct tls_ctx *tls_ctx_client_check(const char *ca_file, char *err,
				     size_t errlen);
void tls_ctx_free(struct tls_ctx *);

/* A connection over a connected non-blocking fd (not owned, not closed).
 * NULL on ENOMEM. */
struct tls *tls_new(struct tls_ctx *, int fd);
/* Frees without sending anything; see tls_close_notify(). */
void tls_free(struct tls *);

/*
 * Client side, before the handshake: the name of the host we meant to
 * reach. A DNS name goes out as SNI (RFC 6066 3); with check, the peer's
 * certificate must match it (RFC 6125; an IP address matches an IP SAN).
 * -1 on failure (ENOMEM).
 */
int tls_set_peer_name(struct tls *, const char *host, bool check);

enum tls_result tls_handshake(struct tls *);
/* Reads at most cap bytes; *n is the count when TLS_OK (never 0). */
enum tls_result tls_read(struct tls *, void *buf, size_t cap, size_t *n);
/*
 * Writes up to len bytes; *n is the count when TLS_OK (may be less than
 * len). After a WANT result call again with the same bytes first (the
 * buffer may move and may have grown).
 */
enum tls_result tls_write(struct tls *, const void *buf, size_t len, size_t *n);
/* True when decrypted or buffered input waits inside OpenSSL that a
 * read can use without the fd (not a partial record a read already
 * found incomplete). */
bool tls_pending(const struct tls *);
/* Best effort close_notify before closing the fd; never waits. */
void tls_close_notify(struct tls *);

/* After the handshake: "TLSv1.3", "TLS_AES_256_GCM_SHA384", bits used
 * and the cipher's algorithm bits. */
const char *tls_version(const struct tls *);
const char *tls_cipher(const struct tls *);
int tls_cipher_bits(const struct tls *, int *alg_bits);
/* After the handshake: true when the peer's certificate chain and name
 * were verified (only with a tls_ctx_client_verify() context). */
bool tls_verified(const struct tls *);
/* After the handshake over a checking context: why the peer's
 * certificate did not verify ("hostname mismatch"); "" when it did or
 * nothing was checked. */
const char *tls_verify_error(const struct tls *);
/* The last error of this connection ("" when none). */
const char *tls_error(const struct tls *);

#endif

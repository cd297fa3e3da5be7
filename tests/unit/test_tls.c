/*
 * test_tls: the TLS wrapper over a socketpair of two non-blocking ends,
 * driven by hand the way the loop drives it: every WANT result is
 * answered by calling again once the other side has moved. The
 * certificates are made here with OpenSSL (EC P-256, self-signed).
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"
#include "test.h"
#include "tls.h"

static char dir[64];
static char cert_path[128], key_path[128], other_key_path[128];

static EVP_PKEY *
make_key(const char *path)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	FILE *f = fopen(path, "w");
	if (!key || !f ||
	    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) != 1)
		abort();
	fclose(f);
	return key;
}

static void
make_cert(const char *path, EVP_PKEY *key)
{
	X509 *x = X509_new();
	if (!x)
		abort();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)"mx.test", -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509_set_pubkey(x, key);
	FILE *f = fopen(path, "w");
	if (X509_sign(x, key, EVP_sha256()) == 0 || !f ||
	    PEM_write_X509(f, x) != 1)
		abort();
	fclose(f);
	X509_free(x);
}

static void
setup_files(void)
{
	strcpy(dir, "/tmp/test_tls.XXXXXX");
	if (!mkdtemp(dir))
		abort();
	snprintf(cert_path, sizeof cert_path, "%s/cert.pem", dir);
	snprintf(key_path, sizeof key_path, "%s/key.pem", dir);
	snprintf(other_key_path, sizeof other_key_path, "%s/other.pem", dir);
	EVP_PKEY *key = make_key(key_path);
	make_cert(cert_path, key);
	EVP_PKEY_free(key);
	EVP_PKEY_free(make_key(other_key_path));
}

struct pair {
	int fd[2];
	struct tls_ctx *sctx, *cctx;
	struct tls *srv, *cli;
};

static void
pair_open(struct pair *p)
{
	char err[TLS_ERR_MAX];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd) != 0 ||
	    net_set_nonblock(p->fd[0]) != 0 || net_set_nonblock(p->fd[1]) != 0)
		abort();
	p->sctx = tls_ctx_server(cert_path, key_path, err, sizeof err);
	p->cctx = tls_ctx_client(err, sizeof err);
	if (!p->sctx || !p->cctx)
		abort();
	p->srv = tls_new(p->sctx, p->fd[0]);
	p->cli = tls_new(p->cctx, p->fd[1]);
	if (!p->srv || !p->cli)
		abort();
}

static void
pair_close(struct pair *p)
{
	tls_free(p->srv);
	tls_free(p->cli);
	tls_ctx_free(p->sctx);
	tls_ctx_free(p->cctx);
	close(p->fd[0]);
	close(p->fd[1]);
}

static bool
readable(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

/* Alternates both sides until each says OK; returns the rounds taken. */
static int
handshake(struct pair *p)
{
	enum tls_result rs = TLS_WANT_READ, rc = TLS_WANT_READ;
	int rounds = 0;
	while ((rs != TLS_OK || rc != TLS_OK) && rounds < 20) {
		if (rc != TLS_OK)
			rc = tls_handshake(p->cli);
		if (rs != TLS_OK)
			rs = tls_handshake(p->srv);
		rounds++;
		if (rs == TLS_ERROR || rc == TLS_ERROR)
			return -1;
	}
	return rs == TLS_OK && rc == TLS_OK ? rounds : -1;
}

static void
test_ctx_errors(void)
{
	char err[TLS_ERR_MAX];
	char missing[160];
	snprintf(missing, sizeof missing, "%s/none.pem", dir);

	CHECK(!tls_ctx_server(missing, key_path, err, sizeof err));
	CHECK(strstr(err, "tls.cert: cannot read") != NULL);
	CHECK(strstr(err, "No such file") != NULL);
	CHECK(!tls_ctx_server(cert_path, missing, err, sizeof err));
	CHECK(strstr(err, "tls.key: cannot read") != NULL);
	CHECK(!tls_ctx_server(key_path, key_path, err, sizeof err));
	CHECK(strstr(err, "tls.cert: no PEM certificate") != NULL);
	CHECK(!tls_ctx_server(cert_path, other_key_path, err, sizeof err));
	CHECK(strstr(err, "tls.key") != NULL);
	CHECK(strstr(err, other_key_path) != NULL);
	/* Key omitted: read from the certificate file, which has none. */
	CHECK(!tls_ctx_server(cert_path, NULL, err, sizeof err));
	CHECK(strstr(err, "tls.key") != NULL);

	struct tls_ctx *ok =
	    tls_ctx_server(cert_path, key_path, err, sizeof err);
	CHECK(ok != NULL);
	tls_ctx_free(ok);
}

static void
test_handshake_and_data(void)
{
	struct pair p;
	pair_open(&p);

	/* Nothing to read yet: the server waits for the ClientHello. */
	CHECK_INT(tls_handshake(p.srv), TLS_WANT_READ);
	CHECK_INT(tls_handshake(p.cli), TLS_WANT_READ);
	CHECK(readable(p.fd[0]));
	CHECK(handshake(&p) > 0);
	CHECK_STR(tls_version(p.srv), "TLSv1.3");
	CHECK_STR(tls_version(p.cli), "TLSv1.3");
	CHECK(strlen(tls_cipher(p.srv)) > 0);
	CHECK_STR(tls_cipher(p.srv), tls_cipher(p.cli));
	int alg = 0;
	CHECK(tls_cipher_bits(p.srv, &alg) >= 128);
	CHECK(alg >= 128);

	char buf[64];
	size_t n;
	/* The client reads the server's session tickets, finds no data. */
	CHECK_INT(tls_read(p.cli, buf, sizeof buf, &n), TLS_WANT_READ);
	CHECK_INT(tls_read(p.srv, buf, sizeof buf, &n), TLS_WANT_READ);
	CHECK_INT(tls_write(p.cli, "EHLO x\r\n", 8, &n), TLS_OK);
	CHECK_INT(n, 8);
	CHECK_INT(tls_read(p.srv, buf, sizeof buf, &n), TLS_OK);
	CHECK_MEM(buf, n, "EHLO x\r\n", 8);
	CHECK_INT(tls_write(p.srv, "250 ok\r\n", 8, &n), TLS_OK);
	CHECK_INT(tls_read(p.cli, buf, sizeof buf, &n), TLS_OK);
	CHECK_MEM(buf, n, "250 ok\r\n", 8);
	CHECK_STR(tls_error(p.srv), "");

	/* A clean close reads as TLS_CLOSED, not as an error. */
	tls_close_notify(p.cli);
	CHECK_INT(tls_read(p.srv, buf, sizeof buf, &n), TLS_CLOSED);
	pair_close(&p);
}

/* Decrypted bytes left inside OpenSSL do not make the fd readable. */
static void
test_pending(void)
{
	struct pair p;
	pair_open(&p);
	CHECK(handshake(&p) > 0);

	char big[3000];
	memset(big, 'a', sizeof big);
	size_t n;
	CHECK_INT(tls_write(p.cli, big, sizeof big, &n), TLS_OK);
	CHECK_INT(n, sizeof big);
	char buf[1000];
	CHECK(!tls_pending(p.srv));
	CHECK_INT(tls_read(p.srv, buf, sizeof buf, &n), TLS_OK);
	CHECK_INT(n, sizeof buf);
	CHECK(tls_pending(p.srv));
	CHECK(!readable(p.fd[0]));
	size_t total = n;
	while (tls_pending(p.srv) &&
	       tls_read(p.srv, buf, sizeof buf, &n) == TLS_OK)
		total += n;
	CHECK_INT(total, sizeof big);
	CHECK(!tls_pending(p.srv));
	pair_close(&p);
}

/* A full socket buffer gives WANT_WRITE; the same call later resumes. */
static void
test_want_write(void)
{
	struct pair p;
	pair_open(&p);
	CHECK(handshake(&p) > 0);

	static char out[1 << 20];
	for (size_t i = 0; i < sizeof out; i++)
		out[i] = (char)('a' + i % 26);
	static char in[sizeof out];
	size_t sent = 0, got = 0, n;
	bool saw_want_write = false;
	int rounds = 0;
	while (got < sizeof out && rounds++ < 100000) {
		if (sent < sizeof out) {
			enum tls_result r =
			    tls_write(p.cli, out + sent, sizeof out - sent, &n);
			if (r == TLS_OK)
				sent += n;
			else if (r == TLS_WANT_WRITE)
				saw_want_write = true;
			else
				break;
		}
		/* Drain only after the writer had to stop. */
		if (!saw_want_write)
			continue;
		enum tls_result r;
		while ((r = tls_read(p.srv, in + got, sizeof in - got, &n)) ==
		       TLS_OK)
			got += n;
		if (r != TLS_WANT_READ)
			break;
	}
	CHECK(saw_want_write);
	CHECK_INT(sent, sizeof out);
	CHECK_INT(got, sizeof out);
	CHECK(memcmp(in, out, sizeof out) == 0);
	pair_close(&p);
}

/* Plaintext where a ClientHello belongs fails the handshake cleanly. */
static void
test_handshake_failure(void)
{
	struct pair p;
	pair_open(&p);
	CHECK_INT(write(p.fd[1], "EHLO x\r\nRSET\r\n", 14), 14);
	CHECK_INT(tls_handshake(p.srv), TLS_ERROR);
	CHECK(strlen(tls_error(p.srv)) > 0);
	tls_close_notify(p.srv); /* must not be attempted after a failure */
	pair_close(&p);
}

/* The peer goes away mid-handshake. */
static void
test_eof_in_handshake(void)
{
	struct pair p;
	pair_open(&p);
	CHECK_INT(tls_handshake(p.cli), TLS_WANT_READ);
	shutdown(p.fd[1], SHUT_WR);
	char drain[4096];
	while (read(p.fd[0], drain, sizeof drain) > 0)
		;
	enum tls_result r = tls_handshake(p.srv);
	CHECK(r == TLS_CLOSED || r == TLS_ERROR);
	pair_close(&p);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	setup_files();
	test_ctx_errors();
	test_handshake_and_data();
	test_pending();
	test_want_write();
	test_handshake_failure();
	test_eof_in_handshake();
	test_rmtree(dir);
	return test_summary();
}

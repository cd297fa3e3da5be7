/*
 * test_auth: base64 as SASL uses it, the PLAIN message, the users file
 * and crypt(3) verification with hashes this test makes itself.
 */
#include "test.h"

#include <crypt.h>
#include <unistd.h>

#include "auth.h"
#include "auth_verify.h"

static int
dec(const char *in, unsigned char *out, size_t cap, size_t *n)
{
	return auth_b64_decode(in, strlen(in), out, cap, n);
}

static void
test_b64(void)
{
	unsigned char out[64];
	size_t n;

	CHECK_INT(dec("", out, sizeof out, &n), 0);
	CHECK_INT(n, 0);
	CHECK_INT(dec("Zg==", out, sizeof out, &n), 0);
	CHECK_MEM(out, n, "f", 1);
	CHECK_INT(dec("Zm8=", out, sizeof out, &n), 0);
	CHECK_MEM(out, n, "fo", 2);
	CHECK_INT(dec("Zm9v", out, sizeof out, &n), 0);
	CHECK_MEM(out, n, "foo", 3);
	CHECK_INT(dec("VXNlcm5hbWU6", out, sizeof out, &n), 0);
	CHECK_MEM(out, n, "Username:", 9);
	CHECK_INT(dec("AHUAcA==", out, sizeof out, &n), 0);
	CHECK_MEM(out, n, "\0u\0p", 4);
	CHECK_INT(dec("+/+/", out, sizeof out, &n), 0);
	CHECK_MEM(out, n, "\xfb\xff\xbf", 3);
	/* Malformed: length, alphabet, padding position, spaces, bits. */
	CHECK_INT(dec("Zg", out, sizeof out, &n), -1);
	CHECK_INT(dec("Zg=", out, sizeof out, &n), -1);
	CHECK_INT(dec("Z===", out, sizeof out, &n), -1);
	CHECK_INT(dec("====", out, sizeof out, &n), -1);
	CHECK_INT(dec("Zg=a", out, sizeof out, &n), -1);
	CHECK_INT(dec("Zg==Zg==", out, sizeof out, &n), -1);
	CHECK_INT(dec("Zm 9", out, sizeof out, &n), -1);
	CHECK_INT(dec("Zm9-", out, sizeof out, &n), -1);
	CHECK_INT(dec("Zh==", out, sizeof out, &n), -1); /* stray bits */
	CHECK_INT(dec("Zm9=", out, sizeof out, &n), -1);
	CHECK_INT(auth_b64_decode("Zm9v\0AAA", 8, out, sizeof out, &n), -1);
	/* Does not fit. */
	CHECK_INT(dec("Zm9vYmFy", out, 5, &n), -1);
	CHECK_INT(dec("Zm9vYmFy", out, 6, &n), 0);
	CHECK_MEM(out, n, "foobar", 6);
}

static int
plain(const char *msg, size_t len, struct auth_plain *p)
{
	return auth_plain_parse((const unsigned char *)msg, len, p);
}

static void
test_plain(void)
{
	struct auth_plain p;

	CHECK_INT(plain("\0alice\0secret", 13, &p), 0);
	CHECK_INT(p.authzid_len, 0);
	CHECK_MEM(p.user, p.user_len, "alice", 5);
	CHECK_MEM(p.pass, p.pass_len, "secret", 6);
	CHECK_INT(plain("admin\0alice\0pw", 14, &p), 0);
	CHECK_MEM(p.authzid, p.authzid_len, "admin", 5);
	CHECK_MEM(p.user, p.user_len, "alice", 5);
	CHECK_MEM(p.pass, p.pass_len, "pw", 2);
	/* Passwords may hold any octet but NUL. */
	CHECK_INT(plain("\0u\0p:\xff ", 7, &p), 0);
	CHECK_MEM(p.pass, p.pass_len, "p:\xff ", 4);
	CHECK_INT(plain("", 0, &p), -1);
	CHECK_INT(plain("alice", 5, &p), -1);
	CHECK_INT(plain("\0alice", 6, &p), -1);
	CHECK_INT(plain("\0alice\0", 7, &p), -1);  /* empty password */
	CHECK_INT(plain("\0\0secret", 8, &p), -1); /* empty user */
	CHECK_INT(plain("\0a\0b\0c", 7, &p), -1);  /* a third NUL */
	char big[300] = {0};
	memset(big + 1, 'u', 256);
	big[258] = 'p';
	CHECK_INT(plain(big, 259, &p), -1); /* user over 255 */
	big[256] = '\0';
	CHECK_INT(plain(big, 257, &p), -1); /* 255 octets, then no password */
	big[257] = 'p';
	CHECK_INT(plain(big, 258, &p), 0);
	CHECK_INT(p.user_len, 255);
}

static void
test_users_lines(void)
{
	struct auth_users u = {0};
	char msg[128];

	CHECK_INT(auth_users_add_line(&u, "", msg, sizeof msg), 0);
	CHECK_INT(auth_users_add_line(&u, "  # comment", msg, sizeof msg), 0);
	CHECK_INT(auth_users_add_line(&u, "alice:$6$salt$abc", msg, sizeof msg),
		  0);
	CHECK_INT(
	    auth_users_add_line(&u, "bob@ex.test:$y$j9T$s$h", msg, sizeof msg),
	    0);
	CHECK_INT(u.n, 2);
	CHECK_STR(auth_users_find(&u, "alice", 5), "$6$salt$abc");
	CHECK_STR(auth_users_find(&u, "bob@ex.test", 11), "$y$j9T$s$h");
	CHECK(auth_users_find(&u, "alic", 4) == NULL);
	CHECK(auth_users_find(&u, "alicex", 6) == NULL);
	CHECK_INT(auth_users_add_line(&u, "alice:$6$x$y", msg, sizeof msg), -1);
	CHECK(strstr(msg, "twice") != NULL);
	CHECK_INT(auth_users_add_line(&u, "carol", msg, sizeof msg), -1);
	CHECK_INT(auth_users_add_line(&u, ":$6$x$y", msg, sizeof msg), -1);
	CHECK_INT(auth_users_add_line(&u, "ca rol:$6$x$y", msg, sizeof msg),
		  -1);
	CHECK_INT(auth_users_add_line(&u, "carol:plain", msg, sizeof msg), -1);
	CHECK_INT(auth_users_add_line(&u, "carol:$1$md5$x", msg, sizeof msg),
		  -1);
	CHECK_INT(auth_users_add_line(&u, "carol:$6$a b", msg, sizeof msg), -1);
	CHECK_INT(u.n, 2);
	auth_users_free(&u);
	CHECK_INT(u.n, 0);
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

static void
test_users_file(const char *dir)
{
	char path[256], err[512];
	struct auth_users u;

	snprintf(path, sizeof path, "%s/users", dir);
	write_file(path, "# users\n\nalice:$6$s$h\r\nbob:$y$j9T$s$h");
	CHECK_INT(auth_users_load(&u, path, err, sizeof err), 0);
	CHECK_INT(u.n, 2);
	CHECK_STR(auth_users_find(&u, "alice", 5), "$6$s$h");
	CHECK_STR(auth_users_find(&u, "bob", 3), "$y$j9T$s$h");
	auth_users_free(&u);

	write_file(path, "alice:$6$s$h\n\nbob=nohash\n");
	CHECK_INT(auth_users_load(&u, path, err, sizeof err), -1);
	char want[300];
	snprintf(want, sizeof want, "%s:3: expected user:hash", path);
	CHECK_STR(err, want);
	CHECK_INT(u.n, 0);

	snprintf(path, sizeof path, "%s/missing", dir);
	CHECK_INT(auth_users_load(&u, path, err, sizeof err), -1);
	CHECK(strstr(err, "No such file") != NULL);
}

/* A hash made here with libcrypt's own salt generator. */
static char *
make_hash(const char *prefix, const char *pw)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	if (!crypt_gensalt_rn(prefix, 0, NULL, 0, salt, sizeof salt))
		return NULL;
	struct crypt_data cd;
	memset(&cd, 0, sizeof cd);
	const char *h = crypt_r(pw, salt, &cd);
	return h && h[0] == '$' ? strdup(h) : NULL;
}

static void
test_verify(void)
{
	char *sha = make_hash("$6$", "correct horse");
	char *yes = make_hash("$y$", "battery staple");
	CHECK(sha != NULL && yes != NULL);
	if (!sha || !yes)
		return;
	CHECK(auth_check_hash(sha, "correct horse", 13));
	CHECK(!auth_check_hash(sha, "correct hors", 12));
	CHECK(!auth_check_hash(sha, "correct horsE", 13));
	CHECK(!auth_check_hash(sha, "correct horse\0x", 15));
	CHECK(!auth_check_hash(sha, "", 0));
	CHECK(auth_check_hash(yes, "battery staple", 14));
	CHECK(!auth_check_hash(yes, "battery staplf", 14));
	CHECK(!auth_check_hash("$6$", "x", 1));

	struct auth_users u = {0};
	char line[600], msg[128];
	snprintf(line, sizeof line, "alice:%s", sha);
	CHECK_INT(auth_users_add_line(&u, line, msg, sizeof msg), 0);
	snprintf(line, sizeof line, "bob:%s", yes);
	CHECK_INT(auth_users_add_line(&u, line, msg, sizeof msg), 0);
	CHECK(auth_users_verify(&u, "alice", 5, "correct horse", 13));
	CHECK(auth_users_verify(&u, "bob", 3, "battery staple", 14));
	CHECK(!auth_users_verify(&u, "bob", 3, "correct horse", 13));
	/* Someone else's password never works for an unknown name. */
	CHECK(!auth_users_verify(&u, "mallory", 7, "correct horse", 13));
	CHECK(!auth_users_verify(&u, "alic", 4, "correct horse", 13));
	auth_users_free(&u);
	free(sha);
	free(yes);
}

int
main(void)
{
	char dir[] = "/tmp/test_auth.XXXXXX";
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_b64();
	test_plain();
	test_users_lines();
	test_users_file(dir);
	test_verify();
	test_rmtree(dir);
	return test_summary();
}

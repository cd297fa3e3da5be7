/*
 * test_session: scenarios through the socket-free session core: send
 * bytes, expect reply bytes, look at the Maildir. The loop runs on a fake
 * clock, so timeouts take no time.
 */
#include <dirent.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "maildir.h"
#include "session.h"
#include "smtpd_config.h"
#include "test.h"

static uint64_t fake_now;

static uint64_t
fake_clock(void *arg)
{
	(void)arg;
	return fake_now;
}

struct fixture {
	char dir[64];
	struct smtpd_config cfg;
	struct loop *loop;
	struct maildir *md;
	struct cidr nets[2];
	struct session_ctx ctx;
	struct session *s;
};

static void
fixture_setup(struct fixture *f, bool relay_client)
{
	char err[256];
	strcpy(f->dir, "/tmp/test_session.XXXXXX");
	if (!mkdtemp(f->dir))
		abort();
	smtpd_config_defaults(&f->cfg);
	free(f->cfg.hostname);
	f->cfg.hostname = strdup("mx.test");
	f->cfg.max_recipients = 3;
	f->cfg.max_message_size = 2048;
	f->cfg.timeout_command = 1000;
	f->cfg.timeout_data = 2000;
	static const char *const domains[] = {"ours.test"};
	config_list_set(&f->cfg.relay_domains, domains, 1);
	f->loop = loop_new();
	loop_set_clock(f->loop, fake_clock, NULL);
	f->md = maildir_open(f->dir, "mx.test", err, sizeof err);
	if (!f->loop || !f->md)
		abort();
	cidr_parse("127.0.0.0/8", &f->nets[0]);
	memset(&f->ctx, 0, sizeof f->ctx);
	f->ctx.cfg = &f->cfg;
	f->ctx.loop = f->loop;
	f->ctx.md = f->md;
	f->ctx.relay_nets = f->nets;
	f->ctx.relay_nets_count = 1;
	struct sockaddr_in peer = {.sin_family = AF_INET};
	peer.sin_addr.s_addr = htonl(relay_client ? 0x7f000001 : 0xc0000207);
	f->s = session_new(&f->ctx, 1, (struct sockaddr *)&peer, sizeof peer);
}

static void
fixture_teardown(struct fixture *f)
{
	session_free(f->s);
	maildir_close(f->md);
	loop_free(f->loop);
	smtpd_config_free(&f->cfg);
	test_rmtree(f->dir);
}

/* Takes all pending output as a string. */
static const char *
take_output(struct session *s)
{
	static char buf[8192];
	size_t len;
	const char *out = session_output(s, &len);
	if (len >= sizeof buf)
		len = sizeof buf - 1;
	memcpy(buf, out, len);
	buf[len] = '\0';
	session_output_done(s, len);
	return buf;
}

#define EXPECT(f, in, want)                                                    \
	do {                                                                   \
		session_feed((f)->s, (in), strlen(in));                        \
		maildir_flush((f)->md);                                        \
		CHECK_STR(take_output((f)->s), (want));                        \
	} while (0)

static int
count_dir(const char *dir, const char *sub)
{
	char path[128];
	snprintf(path, sizeof path, "%s/%s", dir, sub);
	DIR *d = opendir(path);
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	if (d)
		closedir(d);
	return n;
}

/* Reads the only file in new/ into buf. */
static size_t
read_new(const char *dir, char *buf, size_t cap)
{
	char path[512];
	snprintf(path, sizeof path, "%s/new", dir);
	DIR *d = opendir(path);
	struct dirent *e;
	size_t n = 0;
	while (d && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/new/%s", dir, e->d_name);
		FILE *fp = fopen(path, "rb");
		n = fp ? fread(buf, 1, cap - 1, fp) : 0;
		if (fp)
			fclose(fp);
	}
	if (d)
		closedir(d);
	buf[n] = '\0';
	return n;
}

static const char ehlo_reply[] = "250-mx.test\r\n250-PIPELINING\r\n"
				 "250-SIZE 2048\r\n250-8BITMIME\r\n"
				 "250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n"
				 "250 HELP\r\n";

static void
test_greeting_and_ehlo(void)
{
	struct fixture f;
	fixture_setup(&f, true);
	CHECK_STR(take_output(f.s), "220 mx.test ESMTP\r\n");
	EXPECT(&f, "ehlo client.test\r\n", ehlo_reply);
	EXPECT(&f, "HELO client.test\r\n", "250 mx.test\r\n");
	EXPECT(&f, "EHLO\r\n", "501 5.5.4 Syntax: EHLO hostname\r\n");
	EXPECT(&f, "NOOP\r\n", "250 2.0.0 Ok\r\n");
	EXPECT(&f, "vrfy bob\r\n",
	       "252 2.5.2 Cannot VRFY user, but will "
	       "accept message and attempt delivery\r\n");
	EXPECT(&f, "FOO\r\n", "500 5.5.2 Error: command not recognized\r\n");
	EXPECT(&f, "EXPN list\r\n",
	       "502 5.5.1 Error: command not "
	       "implemented\r\n");
	EXPECT(&f, "RSET x\r\n", "501 5.5.4 Syntax: RSET\r\n");
	EXPECT(&f, "QUIT\r\n", "221 2.0.0 Bye\r\n");
	CHECK(session_done(f.s));
	fixture_teardown(&f);
}

/*
 * The listener decides: STARTTLS offered only on a starttls listener
 * (502 5.5.1 elsewhere, as Postfix answers an unoffered STARTTLS), MAIL
 * only after AUTH on a submission listener (RFC 6409 4.3). A session
 * never told its listener is an MX session offering STARTTLS.
 */
static void
test_listener(void)
{
	static const char ehlo_tls[] = "250-mx.test\r\n250-PIPELINING\r\n"
				       "250-SIZE 2048\r\n250-8BITMIME\r\n"
				       "250-STARTTLS\r\n"
				       "250-ENHANCEDSTATUSCODES\r\n"
				       "250-SMTPUTF8\r\n250 HELP\r\n";
	static const char no_tls[] =
	    "502 5.5.1 Error: command not implemented\r\n";
	static const char go_tls[] = "220 2.0.0 Ready to start TLS\r\n";
	static const char mail_ok[] = "250 2.1.0 Ok\r\n";
	static const struct {
		bool set; /* session_set_listener() called */
		enum smtpd_role role;
		enum smtpd_listen_tls tls;
		const char *ehlo, *mail, *starttls;
	} cases[] = {
	    {false, SMTPD_ROLE_MX, SMTPD_TLS_STARTTLS, ehlo_tls, mail_ok,
	     go_tls},
	    {true, SMTPD_ROLE_MX, SMTPD_TLS_STARTTLS, ehlo_tls, mail_ok,
	     go_tls},
	    {true, SMTPD_ROLE_MX, SMTPD_TLS_NONE, ehlo_reply, mail_ok, no_tls},
	    {true, SMTPD_ROLE_SUBMISSION, SMTPD_TLS_NONE, ehlo_reply,
	     "530 5.7.0 Authentication required\r\n", no_tls},
	    {true, SMTPD_ROLE_SUBMISSION, SMTPD_TLS_STARTTLS, ehlo_tls,
	     "530 5.7.0 Authentication required\r\n", go_tls},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fixture f;
		fixture_setup(&f, true);
		/* A certificate is configured: what a session offers is its
		 * listener's choice. */
		f.ctx.tls_available = true;
		session_free(f.s);
		struct sockaddr_in peer = {.sin_family = AF_INET};
		peer.sin_addr.s_addr = htonl(0x7f000001);
		f.s = session_new(&f.ctx, 2, (struct sockaddr *)&peer,
				  sizeof peer);
		struct smtpd_listener l = {.address = "127.0.0.1:25",
					   .role = cases[i].role,
					   .tls = cases[i].tls};
		if (cases[i].set)
			session_set_listener(f.s, &l);
		take_output(f.s);
		EXPECT(&f, "EHLO c\r\n", cases[i].ehlo);
		EXPECT(&f, "MAIL FROM:<a@b.test>\r\n", cases[i].mail);
		EXPECT(&f, "RSET\r\n", "250 2.0.0 Ok\r\n");
		EXPECT(&f, "STARTTLS\r\n", cases[i].starttls);
		CHECK_INT(session_starting_tls(f.s),
			  cases[i].starttls == go_tls);
		fixture_teardown(&f);
	}
}

static void
test_sequence_errors(void)
{
	struct fixture f;
	fixture_setup(&f, true);
	f.cfg.max_errors = 100;
	take_output(f.s);
	EXPECT(&f, "MAIL FROM:<a@b.test>\r\n",
	       "503 5.5.1 Error: send HELO/EHLO first\r\n");
	EXPECT(&f, "EHLO c\r\n", ehlo_reply);
	EXPECT(&f, "RCPT TO:<a@b.test>\r\n",
	       "503 5.5.1 Error: need MAIL command\r\n");
	EXPECT(&f, "DATA\r\n", "503 5.5.1 Error: need RCPT command\r\n");
	EXPECT(&f, "MAIL FROM:<a@b.test>\r\n", "250 2.1.0 Ok\r\n");
	EXPECT(&f, "MAIL FROM:<a@b.test>\r\n",
	       "503 5.5.1 Error: nested MAIL command\r\n");
	EXPECT(&f, "DATA\r\n", "503 5.5.1 Error: need RCPT command\r\n");
	EXPECT(&f, "MAIL FROM:a@b.test\r\n",
	       "503 5.5.1 Error: nested MAIL "
	       "command\r\n");
	EXPECT(&f, "RSET\r\n", "250 2.0.0 Ok\r\n");
	EXPECT(&f, "MAIL FROM:a@b.test\r\n",
	       "501 5.1.7 Bad sender address syntax\r\n");
	EXPECT(&f, "MAIL FROM:<a@b.test> FOO=1\r\n",
	       "555 5.5.4 Unsupported option: FOO\r\n");
	EXPECT(&f, "MAIL FROM:<a@b.test> BODY=BINARYMIME\r\n",
	       "504 5.5.4 BODY=BINARYMIME is not supported\r\n");
	EXPECT(&f, "MAIL FROM:<a@b.test> SIZE=4096\r\n",
	       "552 5.3.4 Message size exceeds fixed limit\r\n");
	EXPECT(&f, "MAIL FROM:<j\xc3\xb6@b.test>\r\n",
	       "553 5.6.7 Address needs SMTPUTF8\r\n");
	EXPECT(&f, "MAIL FROM:<> SIZE=100 BODY=8BITMIME\r\n",
	       "250 2.1.0 Ok\r\n");
	EXPECT(&f, "RCPT TO:<x y@z.test>\r\n",
	       "501 5.1.3 Bad recipient address syntax\r\n");
	fixture_teardown(&f);
}

static void
test_message_stored(void)
{
	struct fixture f;
	char buf[4096];
	fixture_setup(&f, true);
	take_output(f.s);
	EXPECT(&f, "EHLO client.test\r\n", ehlo_reply);
	EXPECT(&f, "MAIL FROM:<alice@example.org>\r\n", "250 2.1.0 Ok\r\n");
	EXPECT(&f, "RCPT TO:<bob@example.net>\r\n", "250 2.1.5 Ok\r\n");
	EXPECT(&f, "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n");
	session_feed(f.s, "Subject: hi\r\n\r\n..dot\r\nbody\r\n.\r\n", 31);
	CHECK_INT(session_state(f.s), SESSION_DELIVERING);
	CHECK_INT(count_dir(f.dir, "new"), 0); /* not before the commit */
	maildir_flush(f.md);
	const char *out = take_output(f.s);
	CHECK(strncmp(out, "250 2.0.0 Ok: queued as ", 24) == 0);
	CHECK_INT(session_state(f.s), SESSION_WAIT);
	CHECK_INT(count_dir(f.dir, "new"), 1);
	CHECK_INT(count_dir(f.dir, "tmp"), 0);
	read_new(f.dir, buf, sizeof buf);
	CHECK(strncmp(buf,
		      "X-Original-From: <alice@example.org>\n"
		      "X-Original-To: <bob@example.net>\n"
		      "Received: from client.test (unknown [127.0.0.1])\n"
		      "\tby mx.test with ESMTP id ",
		      132) == 0);
	char qid[80];
	snprintf(qid, sizeof qid, "id %.*s\n\tfor <bob@example.net>; ",
		 (int)(strlen(out) - 26), out + 24);
	CHECK(strstr(buf, qid) != NULL);
	const char *body = strstr(buf, "+0000\n");
	CHECK(body && strcmp(body, "+0000\nSubject: hi\n\n.dot\nbody\n") == 0);
	fixture_teardown(&f);
}

static void
test_pipelining_one_segment(void)
{
	struct fixture f;
	fixture_setup(&f, true);
	take_output(f.s);
	const char in[] = "EHLO c\r\nMAIL FROM:<a@b.test>\r\n"
			  "RCPT TO:<x@y.test>\r\nRCPT TO:<bad\r\n"
			  "RCPT TO:<z@y.test>\r\nDATA\r\nhello\r\n.\r\n"
			  "NOOP\r\nQUIT\r\n";
	session_feed(f.s, in, sizeof in - 1);
	/* The commit holds later replies back until the file is durable. */
	const char *out = take_output(f.s);
	CHECK(strstr(out, "354 ") != NULL);
	CHECK(strstr(out, "221") == NULL);
	maildir_flush(f.md);
	out = take_output(f.s);
	CHECK(strncmp(out, "250 2.0.0 Ok: queued as ", 24) == 0);
	CHECK(strstr(out, "\r\n250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n") != NULL);
	CHECK_INT(count_dir(f.dir, "new"), 1);
	fixture_teardown(&f);
}

static void
test_line_length(void)
{
	struct fixture f;
	char line[600];
	fixture_setup(&f, true);
	take_output(f.s);
	/* 512 octets with CRLF is the limit (RFC 5321 4.5.3.1.4). */
	memset(line, 'a', sizeof line);
	memcpy(line, "NOOP ", 5);
	memcpy(line + 510, "\r\n", 3);
	EXPECT(&f, line, "250 2.0.0 Ok\r\n");
	memset(line, 'a', sizeof line);
	memcpy(line, "NOOP ", 5);
	memcpy(line + 511, "\r\n", 3);
	EXPECT(&f, line, "500 5.5.2 Error: line too long\r\n");
	EXPECT(&f, "NOOP\r\n", "250 2.0.0 Ok\r\n");
	fixture_teardown(&f);
}

static void
test_timeout(void)
{
	struct fixture f;
	fixture_setup(&f, true);
	take_output(f.s);
	fake_now += 999;
	loop_run_once(f.loop, 0);
	CHECK_STR(take_output(f.s), "");
	EXPECT(&f, "NOOP\r\n", "250 2.0.0 Ok\r\n"); /* input re-arms */
	fake_now += 999;
	loop_run_once(f.loop, 0);
	CHECK_STR(take_output(f.s), "");
	fake_now += 2;
	loop_run_once(f.loop, 0);
	CHECK_STR(take_output(f.s),
		  "421 4.4.2 mx.test Error: timeout exceeded\r\n");
	CHECK(session_done(f.s));
	fixture_teardown(&f);
}

static void
test_error_limit(void)
{
	struct fixture f;
	fixture_setup(&f, true);
	f.cfg.max_errors = 2;
	take_output(f.s);
	EXPECT(&f, "BAD\r\n", "500 5.5.2 Error: command not recognized\r\n");
	EXPECT(&f, "BAD\r\nNOOP\r\n",
	       "500 5.5.2 Error: command not recognized\r\n"
	       "421 4.7.0 mx.test Error: too many errors\r\n");
	CHECK(session_done(f.s));
	fixture_teardown(&f);
}

static void
test_relay_policy(void)
{
	struct fixture f;
	fixture_setup(&f, false); /* 192.0.2.7: not a relay client */
	take_output(f.s);
	EXPECT(&f, "HELO c\r\n", "250 mx.test\r\n");
	EXPECT(&f, "MAIL FROM:<a@elsewhere.test>\r\n", "250 2.1.0 Ok\r\n");
	EXPECT(&f, "RCPT TO:<bob@other.test>\r\n",
	       "554 5.7.1 <bob@other.test>: Relay access denied\r\n");
	EXPECT(&f, "RCPT TO:<bob%other.test@ours.test>\r\n",
	       "554 5.7.1 <bob%other.test@ours.test>: Relay access denied\r\n");
	EXPECT(&f, "RCPT TO:<@ours.test:bob@other.test>\r\n",
	       "554 5.7.1 <bob@other.test>: Relay access denied\r\n");
	EXPECT(&f, "RCPT TO:<bob@OURS.test>\r\n", "250 2.1.5 Ok\r\n");
	EXPECT(&f, "RCPT TO:<PostMaster>\r\n", "250 2.1.5 Ok\r\n");
	fixture_teardown(&f);
}

static void
test_limits(void)
{
	struct fixture f;
	char big[3000];
	fixture_setup(&f, true);
	take_output(f.s);
	EXPECT(&f, "HELO c\r\n", "250 mx.test\r\n");
	EXPECT(&f, "MAIL FROM:<a@b.test>\r\n", "250 2.1.0 Ok\r\n");
	for (int i = 0; i < 3; i++)
		EXPECT(&f, "RCPT TO:<x@y.test>\r\n", "250 2.1.5 Ok\r\n");
	EXPECT(&f, "RCPT TO:<x@y.test>\r\n",
	       "452 4.5.3 Error: too many recipients\r\n");
	EXPECT(&f, "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n");
	memset(big, 'x', sizeof big);
	memcpy(big + sizeof big - 8, "\r\n.\r\n", 6);
	EXPECT(&f, big, "552 5.3.4 Error: message file too big\r\n");
	CHECK_INT(count_dir(f.dir, "new"), 0);
	CHECK_INT(count_dir(f.dir, "tmp"), 0);
	CHECK_INT(session_state(f.s), SESSION_WAIT);
	fixture_teardown(&f);
}

static void
test_byte_by_byte(void)
{
	struct fixture f;
	fixture_setup(&f, true);
	take_output(f.s);
	const char in[] = "EHLO c\r\nMAIL FROM:<a@b.test>\r\n"
			  "RCPT TO:<x@y.test>\r\nDATA\r\n";
	for (size_t i = 0; i < sizeof in - 1; i++)
		session_feed(f.s, in + i, 1);
	char want[512];
	snprintf(want, sizeof want,
		 "%s250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
		 "354 End data with <CR><LF>.<CR><LF>\r\n",
		 ehlo_reply);
	CHECK_STR(take_output(f.s), want);
	fixture_teardown(&f);
}

/* Freed while a commit is pending and a second message waits behind it:
 * the first is committed, the second never starts (the peer is gone). */
static void
test_free_while_delivering(void)
{
	struct fixture f;
	fixture_setup(&f, true);
	take_output(f.s);
	const char in[] = "EHLO c\r\nMAIL FROM:<a@b.test>\r\n"
			  "RCPT TO:<x@y.test>\r\nDATA\r\none\r\n.\r\n"
			  "MAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\n"
			  "DATA\r\ntwo\r\n.\r\n";
	session_feed(f.s, in, sizeof in - 1);
	CHECK_INT(session_state(f.s), SESSION_DELIVERING);
	session_free(f.s);
	f.s = NULL;
	CHECK_INT(maildir_pending(f.md), 0);
	CHECK_INT(count_dir(f.dir, "new"), 1);
	CHECK_INT(count_dir(f.dir, "tmp"), 0);
	fixture_teardown(&f);
}

int
main(void)
{
	test_free_while_delivering();
	test_greeting_and_ehlo();
	test_listener();
	test_sequence_errors();
	test_message_stored();
	test_pipelining_one_segment();
	test_line_length();
	test_timeout();
	test_error_limit();
	test_relay_policy();
	test_limits();
	test_byte_by_byte();
	return test_summary();
}

/*
 * test_message: loading a claimed message from a real directory under
 * /tmp (mkdtemp, removed at the end): valid envelopes, malformed files
 * (empty, garbage, no recipient, no end, too many recipients, a line that
 * never ends), huge recipient lists read in growing chunks, a block of
 * exactly ENVELOPE_BLOCK_MAX bytes and one byte more, queue id extraction,
 * recipient settling, the per-recipient reason and MX host (allocated
 * on first use, replaced, forgotten), and retiring (cur/ with ":2,P" or
 * ":2,PT", or unlink) and setting aside, file moves checked on disk.
 */
#include "message.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME "1700000000.M123456P42Q7.mx.example.test"
#define QID "1700000000.M123456P42Q7"
#define BODY "Received: from client.example\n\tby mx.example.test\n\nhi\n"
#define NELEM(a) (sizeof(a) / sizeof *(a))

struct dirs {
	char root[64];
	int inst;  /* <root>/inst */
	int cur;   /* <root>/cur */
	int aside; /* <root>/malformed */
};

static void
dirs_open(struct dirs *d)
{
	test_tmpdir(d->root, sizeof d->root, "test_message");
	d->inst = test_subdir(d->root, "inst");
	d->cur = test_subdir(d->root, "cur");
	d->aside = test_subdir(d->root, "malformed");
}

static void
dirs_close(struct dirs *d)
{
	close(d->inst);
	close(d->cur);
	close(d->aside);
	test_rmtree(d->root);
}

static int
count_entries(int dir)
{
	int fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static const char valid[] =
    "X-Original-From: <alice@example.org> BODY=8BITMIME SMTPUTF8\n"
    "X-Original-To: <bob@example.net>\n"
    "X-Original-To: <carol@example.com>\n"
    "X-Original-To: <dave@example.net>\n" BODY;

static void
test_load_valid(void)
{
	struct dirs d;
	struct message *m = NULL;
	char why[128];
	/* mtime is when smtpd accepted it */
	struct timespec ts[2] = {{1700000000, 123456789},
				 {1700000000, 123456789}};

	dirs_open(&d);
	test_put(d.inst, NAME, valid, strlen(valid));
	CHECK_INT(utimensat(d.inst, NAME, ts, 0), 0);
	CHECK_INT(message_load(d.inst, NAME, &m, why, sizeof why), MESSAGE_OK);
	CHECK(m != NULL);
	if (m) {
		CHECK_STR(m->name, NAME);
		CHECK_STR(m->queue_id, QID);
		CHECK_STR(m->env.from.addr, "alice@example.org");
		CHECK_INT(m->env.params.body, BODY_8BITMIME);
		CHECK(m->env.params.smtputf8);
		CHECK_INT(m->env.nrcpt, 3);
		CHECK_STR(m->env.rcpts[0].addr, "bob@example.net");
		CHECK_STR(m->env.rcpts[1].addr, "carol@example.com");
		CHECK_STR(m->env.rcpts[2].addr, "dave@example.net");
		CHECK_INT(m->env.body_offset, strlen(valid) - strlen(BODY));
		for (size_t i = 0; i < 3; i++)
			CHECK_INT(m->state[i], RCPT_PENDING);
		CHECK_INT(m->unsettled, 3);
		CHECK_INT(m->jobs, 0);
		CHECK_INT(m->size, strlen(valid));
		CHECK_INT(m->queued_ms, 1700000000123LL);
		CHECK(!message_final(m));
	}
	message_free(m);
	message_free(NULL);
	dirs_close(&d);
}

static void
test_load_malformed(void)
{
	static const struct {
		const char *name;
		const char *data;
		int err; /* expected envelope error, -1: any */
	} cases[] = {
	    {"empty", "", -1},
	    {"garbage", "hello world\nthis is no envelope\n",
	     ENVELOPE_ERR_NO_FROM},
	    {"binary", "\x01\x02\x03\xff\xfe", -1},
	    {"to_first", "X-Original-To: <bob@example.net>\n" BODY,
	     ENVELOPE_ERR_NO_FROM},
	    {"no_rcpt", "X-Original-From: <alice@example.org>\n" BODY,
	     ENVELOPE_ERR_NO_RCPT},
	    {"bad_rcpt",
	     "X-Original-From: <alice@example.org>\n"
	     "X-Original-To: bob@example.net\n" BODY,
	     ENVELOPE_ERR_SYNTAX},
	    {"no_end",
	     "X-Original-From: <alice@example.org>\n"
	     "X-Original-To: <bob@example.net>\n",
	     ENVELOPE_ERR_SYNTAX},
	};
	struct dirs d;
	char why[128];

	dirs_open(&d);
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct message *m = (struct message *)&d; /* must be reset */
		test_put(d.inst, cases[i].name, cases[i].data,
			 strlen(cases[i].data));
		CHECK_INT(
		    message_load(d.inst, cases[i].name, &m, why, sizeof why),
		    MESSAGE_ERR_MALFORMED);
		CHECK(m == NULL);
		CHECK(why[0] != '\0');
		if (cases[i].err >= 0)
			CHECK_STR(why, envelope_strerror(cases[i].err));
	}
	/* a directory where a file should be */
	CHECK_INT(mkdirat(d.inst, "adir", 0700), 0);
	struct message *m = NULL;
	CHECK_INT(message_load(d.inst, "adir", &m, why, sizeof why),
		  MESSAGE_ERR_MALFORMED);
	CHECK(m == NULL);
	/* gone: an I/O error with errno, not a reason to set it aside */
	errno = 0;
	CHECK_INT(message_load(d.inst, "missing", &m, why, sizeof why),
		  MESSAGE_ERR_IO);
	CHECK_INT(errno, ENOENT);
	CHECK(m == NULL);
	dirs_close(&d);
}

/* A 192-byte domain: three labels of 60 letters, then "example.net". */
#define LABEL "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
#define LONG_DOMAIN LABEL "." LABEL "." LABEL ".example.net"

/* From line, then n recipients of about 215 bytes each, then BODY. */
static char *
many_rcpts(size_t n, size_t *len)
{
	size_t cap = 64 + n * 240 + sizeof BODY;
	char *buf = malloc(cap);
	size_t at;

	if (!buf)
		exit(1);
	at = (size_t)snprintf(buf, cap, "X-Original-From: <>\n");
	for (size_t i = 0; i < n; i++)
		at += (size_t)snprintf(
		    buf + at, cap - at,
		    "X-Original-To: <r%05zu@" LONG_DOMAIN ">\n", i);
	at += (size_t)snprintf(buf + at, cap - at, "%s", BODY);
	*len = at;
	return buf;
}

static void
test_load_huge(void)
{
	struct dirs d;
	struct message *m = NULL;
	char why[128];
	size_t len;
	char *buf = many_rcpts(ENVELOPE_RCPT_MAX, &len);

	dirs_open(&d);
	/* ~2 MiB of envelope: read in several growing chunks */
	CHECK(len > 2000000);
	test_put(d.inst, "max", buf, len);
	CHECK_INT(message_load(d.inst, "max", &m, why, sizeof why), MESSAGE_OK);
	if (m) {
		char want[256];
		snprintf(want, sizeof want, "r%05d@" LONG_DOMAIN,
			 ENVELOPE_RCPT_MAX - 1);
		CHECK_INT(m->env.nrcpt, ENVELOPE_RCPT_MAX);
		CHECK_STR(m->env.rcpts[ENVELOPE_RCPT_MAX - 1].addr, want);
		CHECK(m->env.from.is_null);
		CHECK_INT(m->env.body_offset, len - strlen(BODY));
		CHECK_INT(m->unsettled, ENVELOPE_RCPT_MAX);
		CHECK_INT(m->state[ENVELOPE_RCPT_MAX - 1], RCPT_PENDING);
		CHECK_STR(m->queue_id, "max");
	}
	message_free(m);
	free(buf);

	/* one past the limit */
	buf = many_rcpts(ENVELOPE_RCPT_MAX + 1, &len);
	test_put(d.inst, "over", buf, len);
	m = NULL;
	CHECK_INT(message_load(d.inst, "over", &m, why, sizeof why),
		  MESSAGE_ERR_MALFORMED);
	CHECK_STR(why, envelope_strerror(ENVELOPE_ERR_TOO_MANY));
	CHECK(m == NULL);
	free(buf);

	/* a head that never ends within ENVELOPE_BLOCK_MAX: reading stops */
	len = ENVELOPE_BLOCK_MAX + 1024 * 1024;
	buf = malloc(len);
	if (!buf)
		exit(1);
	memset(buf, 'a', len);
	{
		static const char head[] =
		    "X-Original-From: <a@b.example>\nX-Original-To: <";
		memcpy(buf, head, strlen(head));
	}
	test_put(d.inst, "endless", buf, len);
	CHECK_INT(message_load(d.inst, "endless", &m, why, sizeof why),
		  MESSAGE_ERR_MALFORMED);
	CHECK(why[0] != '\0');
	CHECK(m == NULL);
	free(buf);
	dirs_close(&d);
}

/*
 * An envelope block of exactly size bytes: the From line, To lines of
 * 999 bytes padded with trailing spaces (which the parser ignores), the
 * last one shorter; then BODY. Returns the recipient count.
 */
static size_t
block_of(size_t size, char **out, size_t *len)
{
	static const char from[] = "X-Original-From: <a@b.example>\n";
	char *buf = malloc(size + sizeof BODY);
	size_t at = strlen(from), n = 0;

	if (!buf)
		exit(1);
	memcpy(buf, from, at);
	while (at < size) {
		size_t line = size - at > 999 ? 999 : size - at;
		if (size - at - line < 40 && size - at > 999)
			line = 900; /* leave room for a whole last line */
		int k = snprintf(buf + at, line,
				 "X-Original-To: <r%zu@x.example>", n++);
		memset(buf + at + k, ' ', line - 1 - (size_t)k);
		buf[at + line - 1] = '\n';
		at += line;
	}
	memcpy(buf + at, BODY, strlen(BODY));
	*out = buf;
	*len = at + strlen(BODY);
	return n;
}

static void
test_load_block_max(void)
{
	struct dirs d;
	struct message *m = NULL;
	char why[128], *buf;
	size_t len, n;

	dirs_open(&d);
	n = block_of(ENVELOPE_BLOCK_MAX, &buf, &len);
	CHECK(n > 4000 && n < ENVELOPE_RCPT_MAX);
	test_put(d.inst, "at_max", buf, len);
	free(buf);
	CHECK_INT(message_load(d.inst, "at_max", &m, why, sizeof why),
		  MESSAGE_OK);
	if (m) {
		char want[64];
		snprintf(want, sizeof want, "r%zu@x.example", n - 1);
		CHECK_INT(m->env.nrcpt, n);
		CHECK_INT(m->env.body_offset, ENVELOPE_BLOCK_MAX);
		CHECK_STR(m->env.rcpts[n - 1].addr, want);
	}
	message_free(m);
	m = NULL;

	block_of(ENVELOPE_BLOCK_MAX + 1, &buf, &len);
	test_put(d.inst, "past_max", buf, len);
	free(buf);
	CHECK_INT(message_load(d.inst, "past_max", &m, why, sizeof why),
		  MESSAGE_ERR_MALFORMED);
	CHECK_STR(why, envelope_strerror(ENVELOPE_ERR_TOO_LONG));
	CHECK(m == NULL);

	/* a last line that is still open where reading stops */
	block_of(ENVELOPE_BLOCK_MAX + 500, &buf, &len);
	test_put(d.inst, "open_line", buf, len);
	free(buf);
	CHECK_INT(message_load(d.inst, "open_line", &m, why, sizeof why),
		  MESSAGE_ERR_MALFORMED);
	CHECK_STR(why, envelope_strerror(ENVELOPE_ERR_TOO_LONG));
	CHECK(m == NULL);
	dirs_close(&d);
}

static void
test_queue_id(void)
{
	static const struct {
		const char *name;
		const char *id;
	} cases[] = {
	    {NAME, QID},
	    {"1700000000.M000001P1Q1.host", "1700000000.M000001P1Q1"},
	    {"1.M2P3Q4.a.b.c.d", "1.M2P3Q4"},
	    {"1.M2P3Q4.host:2,S", "1.M2P3Q4"},
	    {"plainname", "plainname"},
	    {"plain.with.dots", "plain.with.dots"},
	    {"plain:2,PT", "plain"},
	    {"1.M2P3Q.host", "1.M2P3Q.host"}, /* Q without digits */
	    {"1.M2P3Q4", "1.M2P3Q4"},	      /* no host part */
	    {"x1.M2P3Q4.host", "x1.M2P3Q4.host"},
	    {"1.M2P3Q4x.host", "1.M2P3Q4x.host"},
	    {"1.MP3Q4.host", "1.MP3Q4.host"},
	    /* longer than MAILDIR_QUEUE_ID_MAX: cut */
	    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaX"
	     "YZ",
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	     "a"},
	};
	struct dirs d;
	char why[128];

	dirs_open(&d);
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct message *m = NULL;
		test_put(d.inst, cases[i].name, valid, strlen(valid));
		CHECK_INT(
		    message_load(d.inst, cases[i].name, &m, why, sizeof why),
		    MESSAGE_OK);
		if (m) {
			CHECK_STR(m->queue_id, cases[i].id);
			CHECK_STR(m->name, cases[i].name);
		}
		message_free(m);
	}
	dirs_close(&d);
}

static struct message *
load_valid(struct dirs *d, const char *name)
{
	struct message *m = NULL;
	char why[128];

	test_put(d->inst, name, valid, strlen(valid));
	if (message_load(d->inst, name, &m, why, sizeof why) != MESSAGE_OK) {
		fprintf(stderr, "load %s failed\n", name);
		exit(1);
	}
	return m;
}

static void
test_settle(void)
{
	struct dirs d;
	struct message *m;

	dirs_open(&d);
	m = load_valid(&d, NAME);
	CHECK(!message_settle(m, 0, RCPT_SENT));
	CHECK_INT(m->unsettled, 2);
	CHECK_INT(m->state[0], RCPT_SENT);
	/* settling twice does not count twice */
	CHECK(!message_settle(m, 0, RCPT_SENT));
	CHECK_INT(m->unsettled, 2);
	CHECK(!message_settle(m, 1, RCPT_DEFERRED));
	CHECK_INT(m->unsettled, 1);
	CHECK(!message_final(m));
	/* out of range: ignored */
	CHECK(!message_settle(m, 3, RCPT_SENT));
	CHECK(!message_settle(m, (size_t)-1, RCPT_SENT));
	CHECK_INT(m->unsettled, 1);
	CHECK(message_settle(m, 2, RCPT_FAILED)); /* the last one */
	CHECK_INT(m->unsettled, 0);
	CHECK(!message_final(m)); /* 1 is deferred */
	CHECK(!message_settle(m, 1, RCPT_FAILED));
	CHECK_INT(m->unsettled, 0);
	CHECK(message_final(m));
	/* back to pending for another attempt, then settled again */
	CHECK(!message_settle(m, 1, RCPT_PENDING));
	CHECK_INT(m->unsettled, 1);
	CHECK(!message_final(m));
	CHECK(message_settle(m, 1, RCPT_SENT));
	CHECK(message_final(m));
	message_free(m);
	dirs_close(&d);
}

static void
test_why_and_mx(void)
{
	struct dirs d;
	struct message *m;

	dirs_open(&d);
	m = load_valid(&d, NAME);
	CHECK(!m->why && !m->mx && m->next_try_ms == 0);
	/* forgetting before anything was set allocates nothing */
	CHECK_INT(message_set_why(m, 1, NULL, NULL), 0);
	CHECK(!m->why);
	CHECK_INT(message_set_why(m, 1, "4.2.1", "450 busy"), 0);
	CHECK_STR(m->why[1], "4.2.1 450 busy");
	CHECK(!m->why[0] && !m->why[2]);
	CHECK_INT(message_set_why(m, 1, "5.1.1", "550 no such user"), 0);
	CHECK_STR(m->why[1], "5.1.1 550 no such user");
	CHECK_INT(message_set_why(m, 1, NULL, NULL), 0);
	CHECK(!m->why[1]);
	CHECK_INT(message_set_why(m, 3, "5.1.1", "x"), -1); /* out of range */
	CHECK_INT(message_set_mx(m, 2, "mx1.test"), 0);
	CHECK_STR(m->mx[2], "mx1.test");
	CHECK_INT(message_set_mx(m, 2, "mx2.test"), 0);
	CHECK_STR(m->mx[2], "mx2.test");
	CHECK(!m->mx[0] && !m->mx[1]);
	CHECK_INT(message_set_mx(m, 3, "mx1.test"), -1);
	message_free(m); /* ASan: nothing leaks */
	dirs_close(&d);
}

static void
settle_all(struct message *m, enum rcpt_state st)
{
	for (size_t i = 0; i < m->env.nrcpt; i++)
		message_settle(m, i, st);
}

static void
test_retire(void)
{
	struct dirs d;
	struct message *m;

	dirs_open(&d);
	/* all sent, kept: ":2,P" */
	m = load_valid(&d, "sent");
	settle_all(m, RCPT_SENT);
	CHECK_INT(message_retire(m, d.inst, d.cur, true), 0);
	CHECK(!test_exists(d.inst, "sent"));
	CHECK(test_exists(d.cur, "sent:2,P"));
	message_free(m);

	/* one failed, kept: ":2,PT" (flags in ASCII order) */
	m = load_valid(&d, "mixed");
	settle_all(m, RCPT_SENT);
	message_settle(m, 1, RCPT_FAILED);
	CHECK_INT(message_retire(m, d.inst, d.cur, true), 0);
	CHECK(!test_exists(d.inst, "mixed"));
	CHECK(test_exists(d.cur, "mixed:2,PT"));
	CHECK(!test_exists(d.cur, "mixed:2,P"));
	message_free(m);

	/* all failed: PT as well */
	m = load_valid(&d, "failed");
	settle_all(m, RCPT_FAILED);
	CHECK_INT(message_retire(m, d.inst, d.cur, true), 0);
	CHECK(test_exists(d.cur, "failed:2,PT"));
	message_free(m);

	/* not kept: unlinked, nothing in cur/ */
	m = load_valid(&d, "gone");
	settle_all(m, RCPT_SENT);
	CHECK_INT(message_retire(m, d.inst, d.cur, false), 0);
	CHECK(!test_exists(d.inst, "gone"));
	CHECK_INT(count_entries(d.cur), 3);
	message_free(m);

	/* a deferred recipient still needs the file */
	m = load_valid(&d, "deferred");
	settle_all(m, RCPT_SENT);
	message_settle(m, 2, RCPT_DEFERRED);
	errno = 0;
	CHECK_INT(message_retire(m, d.inst, d.cur, false), -1);
	CHECK_INT(errno, EBUSY);
	CHECK_INT(message_retire(m, d.inst, d.cur, true), -1);
	CHECK(test_exists(d.inst, "deferred"));
	CHECK_INT(count_entries(d.cur), 3);
	message_free(m);

	/* the file vanished: -1 with errno */
	m = load_valid(&d, "vanished");
	settle_all(m, RCPT_SENT);
	CHECK_INT(unlinkat(d.inst, "vanished", 0), 0);
	errno = 0;
	CHECK_INT(message_retire(m, d.inst, d.cur, true), -1);
	CHECK_INT(errno, ENOENT);
	CHECK_INT(message_retire(m, d.inst, d.cur, false), -1);
	CHECK_INT(errno, ENOENT);
	message_free(m);
	dirs_close(&d);
}

static void
test_set_aside(void)
{
	struct dirs d;
	char buf[64];
	int fd;

	dirs_open(&d);
	test_put(d.inst, "bad", "garbage\n", 8);
	CHECK_INT(message_set_aside(d.inst, "bad", d.aside), 0);
	CHECK(!test_exists(d.inst, "bad"));
	CHECK(test_exists(d.aside, "bad"));
	/* same bytes, never rewritten */
	fd = openat(d.aside, "bad", O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK_INT(read(fd, buf, sizeof buf), 8);
		CHECK_MEM(buf, 8, "garbage\n", 8);
		close(fd);
	}
	errno = 0;
	CHECK_INT(message_set_aside(d.inst, "bad", d.aside), -1);
	CHECK_INT(errno, ENOENT);
	dirs_close(&d);
}

int
main(void)
{
	test_load_valid();
	test_load_malformed();
	test_load_huge();
	test_load_block_max();
	test_queue_id();
	test_settle();
	test_why_and_mx();
	test_retire();
	test_set_aside();
	return test_summary();
}

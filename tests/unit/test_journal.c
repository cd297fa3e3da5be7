/*
 * test_journal: outcomes appended, flushed, replayed into a fresh copy of
 * the message; the reason (dsn, MX host, reply) and the retry wait kept
 * across a restart; older lines without a reason; torn, over-long and
 * foreign lines ignored; a torn tail cut before appending; removal.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "journal.h"
#include "test.h"

static struct message *
fake_message(const char *name, size_t nrcpt)
{
	struct message *m = calloc(1, sizeof *m);
	m->env.nrcpt = nrcpt;
	m->state = calloc(nrcpt, sizeof *m->state);
	m->unsettled = nrcpt;
	m->journal_fd = -1;
	snprintf(m->name, sizeof m->name, "%s", name);
	return m;
}

static void
read_file(int dir, const char *path, char *buf, size_t cap)
{
	int fd = openat(dir, path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, cap - 1) : -1;
	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
}

static void
write_file(int dir, const char *path, const char *text)
{
	int fd = openat(dir, path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 &&
	      write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
}

static void
test_append_sync_replay(int dir)
{
	struct journal j;
	char buf[256];
	journal_init(&j);
	struct message *m = fake_message("1.M1P1Q1.host", 4);
	CHECK_INT(journal_append(&j, dir, m, 2, RCPT_SENT, "2.0.0", "mx1.test",
				 "250 2.0.0 ok"),
		  0);
	CHECK_INT(journal_append(&j, dir, m, 0, RCPT_DEFERRED, "4.2.1",
				 "mx1.test", "450 4.2.1 <a@x>: busy"),
		  0);
	CHECK_INT(journal_append(&j, dir, m, 3, RCPT_FAILED, "5.1.1",
				 "mx2.test", "550 5.1.1 <d@x>: no such user"),
		  0);
	CHECK_INT(journal_append(&j, dir, m, 1, RCPT_PENDING, "", "", ""),
		  0); /* no-op */
	CHECK_INT(journal_mark_retry(&j, dir, m, 1, 1700000300000), 0);
	CHECK_INT(journal_mark_bounced(&j, dir, m), 0);
	CHECK_INT(j.count, 1); /* one journal, written five times */
	CHECK_INT(journal_sync(&j, NULL, NULL), 0);
	CHECK_INT(j.count, 0);
	read_file(dir, ".1.M1P1Q1.host.journal", buf, sizeof buf);
	CHECK_STR(buf, "2 S\n"
		       "0 D 4.2.1 mx1.test 450 4.2.1 <a@x>: busy\n"
		       "3 B 5.1.1 mx2.test 550 5.1.1 <d@x>: no such user\n"
		       "retry 1 1700000300000\n"
		       "bounce\n");
	journal_close(&j, m);
	CHECK_INT(m->journal_fd, -1);
	message_free(m);

	/* A new run: sent and bounced are final, deferred goes again. */
	m = fake_message("1.M1P1Q1.host", 4);
	CHECK_INT(journal_replay(dir, m, false), 2);
	CHECK_INT(m->state[2], RCPT_SENT);
	CHECK_INT(m->state[3], RCPT_FAILED);
	CHECK_INT(m->state[0], RCPT_PENDING);
	CHECK_INT(m->unsettled, 2);
	CHECK(m->bounced);
	/* why and where, for the bounce and `sender queue` */
	CHECK(m->why && !m->why[1] && !m->why[2]);
	CHECK_STR(m->why[3], "5.1.1 550 5.1.1 <d@x>: no such user");
	CHECK_STR(m->why[0], "4.2.1 450 4.2.1 <a@x>: busy");
	CHECK(m->mx && !m->mx[1] && !m->mx[2]);
	CHECK_STR(m->mx[0], "mx1.test");
	CHECK_STR(m->mx[3], "mx2.test");
	CHECK_INT(m->attempts, 1);
	CHECK_INT(m->next_try_ms, 1700000300000);
	CHECK_INT(journal_remove(&j, dir, m), 0);
	CHECK_INT(journal_remove(&j, dir, m), 0); /* missing is fine */
	CHECK_INT(journal_replay(dir, m, false), 0);
	message_free(m);
	journal_fini(&j);
}

static void
test_torn_and_foreign_lines(int dir)
{
	/* A torn last line (no LF), an index out of range, garbage, an
	 * index with a leading zero (never written), a line over
	 * JOURNAL_LINE_MAX, one with a NUL, then real ones: only the real,
	 * complete lines count. */
	char text[2048] = "1 S\n9 S\nhello\n02 S\n0 S ";
	size_t n = strlen(text);
	memset(text + n, 'x', JOURNAL_LINE_MAX);
	n += JOURNAL_LINE_MAX;
	memcpy(text + n, "\n2 S", 5);
	n += 5; /* the NUL too: "2 S\0" then LF */
	memcpy(text + n, "\n0 B\n2 S", 9);
	n += 8;
	int fd = openat(dir, ".t.journal", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, text, n) == (ssize_t)n);
	close(fd);
	struct message *m = fake_message("t", 3);
	CHECK_INT(journal_replay(dir, m, false), 2);
	CHECK_INT(m->state[0], RCPT_FAILED);
	CHECK_INT(m->state[1], RCPT_SENT);
	CHECK_INT(m->state[2], RCPT_PENDING);
	CHECK_INT(journal_remove(NULL, dir, m), 0); /* never opened: no set */
	message_free(m);

	/* attempts: the most deferrals of any one recipient */
	write_file(dir, ".d.journal", "0 D\n1 D\n0 D\n0 D\n1 S\n");
	m = fake_message("d", 2);
	CHECK_INT(journal_replay(dir, m, false), 1);
	CHECK_INT(m->attempts, 3);
	CHECK_INT(m->next_try_ms, 0);
	CHECK_INT(m->state[0], RCPT_PENDING);
	message_free(m);
	m = fake_message("d", 2); /* as `sender queue` shows it */
	CHECK_INT(journal_replay(dir, m, true), 1);
	CHECK_INT(m->state[0], RCPT_DEFERRED);
	CHECK_INT(m->unsettled, 0);
	CHECK_INT(journal_remove(NULL, dir, m), 0);
	message_free(m);
}

/* Lines written before they carried a reason still replay: the state
 * counts, the reason is unknown (the bounce then says less). */
static void
test_old_format(int dir)
{
	write_file(dir, ".o.journal", "0 D\n1 B\n0 D\n2 S\nbounce\n");
	struct message *m = fake_message("o", 3);
	CHECK_INT(journal_replay(dir, m, false), 2);
	CHECK_INT(m->state[0], RCPT_PENDING);
	CHECK_INT(m->state[1], RCPT_FAILED);
	CHECK_INT(m->state[2], RCPT_SENT);
	CHECK_INT(m->attempts, 2);
	CHECK(m->bounced);
	CHECK(!m->why && !m->mx);
	CHECK_INT(journal_remove(NULL, dir, m), 0);
	message_free(m);
}

/* The last reply and host of each recipient win; "-" (no host tried)
 * keeps the host of the attempt before; a sent recipient forgets its
 * old deferral. */
static void
test_reason_restored(int dir)
{
	write_file(dir, ".r.journal",
		   "0 D 4.4.1 mx1.test connect to mx1.test: refused\n"
		   "1 D 4.2.1 mx1.test 451 4.2.1 try later\n"
		   "2 D 4.4.3 - temporary failure looking up MX\n"
		   "0 D 4.2.1 mx2.test 451 4.2.1 greylisted\n"
		   "1 B 5.4.7 - delivery time expired after 2 attempts\n"
		   "2 D 4.4.1 mx3.test\n" /* no reply text */
		   "0 S\n");
	struct message *m = fake_message("r", 3);
	CHECK_INT(journal_replay(dir, m, true), 2);
	CHECK_INT(m->state[0], RCPT_SENT);
	CHECK_INT(m->state[1], RCPT_FAILED);
	CHECK_INT(m->state[2], RCPT_DEFERRED);
	CHECK_INT(m->unsettled, 0);
	CHECK(!m->why[0]);
	CHECK_STR(m->why[1], "5.4.7 delivery time expired after 2 attempts");
	CHECK_STR(m->why[2], "4.4.1 ");
	CHECK_STR(m->mx[0], "mx2.test");
	CHECK_STR(m->mx[1], "mx1.test");
	CHECK_STR(m->mx[2], "mx3.test");
	CHECK_INT(m->attempts, 2); /* no retry line: most deferrals */
	CHECK_INT(journal_remove(NULL, dir, m), 0);
	message_free(m);
}

/* The last well-formed retry line gives attempts and the next try, and
 * counts over the deferrals; an outcome after it means that wait is
 * over (the try it waited for was made, or SIGUSR1 cut it short). */
static void
test_retry_line(int dir)
{
	static const char waits[] = "0 D 4.2.1 mx1.test 451 a\n"
				    "retry 1 1700000000300\n"
				    "0 D 4.2.1 mx1.test 451 b\n"
				    "retry 2 1700000000900\n"
				    "retry x 5\nretry 3\nretry 3 5 6\n"
				    "retry 3 -5\nretry 03 5\n"
				    "retry 99999999999 5\n";
	char text[1024];
	write_file(dir, ".w.journal", waits);
	struct message *m = fake_message("w", 1);
	CHECK_INT(journal_replay(dir, m, false), 0);
	CHECK_INT(m->attempts, 2);
	CHECK_INT(m->next_try_ms, 1700000000900);
	CHECK_INT(m->state[0], RCPT_PENDING);
	CHECK_INT(m->unsettled, 1);
	CHECK_STR(m->why[0], "4.2.1 451 b");
	message_free(m);

	snprintf(text, sizeof text, "%s%s", waits,
		 "0 D 4.3.2 mx1.test sender shutting down\n");
	write_file(dir, ".w.journal", text);
	m = fake_message("w", 1);
	CHECK_INT(journal_replay(dir, m, true), 0);
	CHECK_INT(m->attempts, 2);
	CHECK_INT(m->next_try_ms, 0);
	CHECK_INT(m->state[0], RCPT_DEFERRED);
	CHECK_STR(m->why[0], "4.3.2 sender shutting down");
	message_free(m);
	CHECK_INT(unlinkat(dir, ".w.journal", 0), 0);

	/* written by journal_mark_retry, read back */
	struct journal j;
	journal_init(&j);
	m = fake_message("w", 1);
	CHECK_INT(journal_append(&j, dir, m, 0, RCPT_DEFERRED, "4.4.1",
				 "mx1.test", "connection refused"),
		  0);
	CHECK_INT(journal_mark_retry(&j, dir, m, 3, 1800000000000), 0);
	journal_close(&j, m);
	message_free(m);
	m = fake_message("w", 1);
	CHECK_INT(journal_replay(dir, m, true), 0);
	CHECK_INT(m->attempts, 3);
	CHECK_INT(m->next_try_ms, 1800000000000);
	CHECK_INT(m->state[0], RCPT_DEFERRED);
	CHECK_INT(journal_remove(&j, dir, m), 0);
	message_free(m);
	journal_fini(&j);
}

/* Control characters (CR and LF too) become spaces, the dsn and host are
 * single tokens, and a long reply is cut so the line stays within
 * JOURNAL_LINE_MAX, never inside a UTF-8 sequence. */
static void
test_reply_cleaned_and_cut(int dir)
{
	struct journal j;
	char buf[4096], reply[2048];
	journal_init(&j);
	struct message *m = fake_message("c", 2);
	CHECK_INT(journal_append(&j, dir, m, 0, RCPT_DEFERRED, "4.3.0", "",
				 "451 4.3.0 a\r\nb\tc\x01\x7f"),
		  0);
	/* 1 + 3 + 5 + 1 + 8 + 1 = 19 bytes before the reply; the reply
	 * room is 600 - 19 - 1 (LF) = 580 bytes: "é" (2 bytes) straddles
	 * bytes 579 and 580, so the cut falls before it */
	memset(reply, 'y', sizeof reply);
	memcpy(reply + 579, "\xc3\xa9", 2);
	reply[sizeof reply - 1] = '\0';
	CHECK_INT(journal_append(&j, dir, m, 1, RCPT_FAILED, "5.0 0",
				 "mx1.test", reply),
		  0);
	journal_close(&j, m);
	read_file(dir, ".c.journal", buf, sizeof buf);
	const char *first = "0 D 4.3.0 - 451 4.3.0 a  b c  \n";
	CHECK(strncmp(buf, first, strlen(first)) == 0);
	const char *second = buf + strlen(first);
	CHECK(strncmp(second, "1 B 5.0_0 mx1.test yyy", 22) == 0);
	CHECK_INT(strlen(second), 19 + 579 + 1);
	CHECK(second[strlen(second) - 1] == '\n');
	CHECK(strlen(second) <= JOURNAL_LINE_MAX);
	message_free(m);

	m = fake_message("c", 2);
	CHECK_INT(journal_replay(dir, m, false), 1);
	CHECK_STR(m->why[0], "4.3.0 451 4.3.0 a  b c  ");
	CHECK(!m->mx[0]);
	CHECK_STR(m->mx[1], "mx1.test");
	CHECK_INT(strlen(m->why[1]), 6 + 579);
	CHECK_INT(m->state[1], RCPT_FAILED);
	CHECK_INT(journal_remove(&j, dir, m), 0);
	message_free(m);
	journal_fini(&j);
}

/* A torn tail is cut off before the next append, so the new line is not
 * glued to it; a tail longer than any line only gets its LF. */
static void
test_append_after_torn_tail(int dir)
{
	struct journal j;
	char buf[2048];
	journal_init(&j);
	write_file(dir, ".a.journal", "0 B 5.1.1 mx1.test 550 no\n1 D 4.2");
	struct message *m = fake_message("a", 3);
	CHECK_INT(journal_replay(dir, m, false), 1);
	CHECK(!m->why[1]); /* the torn line counts for nothing */
	CHECK_INT(journal_append(&j, dir, m, 1, RCPT_SENT, "2.0.0", "", ""), 0);
	journal_close(&j, m);
	read_file(dir, ".a.journal", buf, sizeof buf);
	CHECK_STR(buf, "0 B 5.1.1 mx1.test 550 no\n1 S\n");
	CHECK_INT(journal_remove(&j, dir, m), 0);
	message_free(m);

	/* one torn line only */
	write_file(dir, ".a.journal", "1 D 4.2");
	m = fake_message("a", 3);
	CHECK_INT(journal_append(&j, dir, m, 2, RCPT_SENT, "2.0.0", "", ""), 0);
	journal_close(&j, m);
	read_file(dir, ".a.journal", buf, sizeof buf);
	CHECK_STR(buf, "2 S\n");
	message_free(m);

	char text[1024] = "0 S\n";
	memset(text + 4, 'z', 700);
	text[704] = '\0';
	write_file(dir, ".a.journal", text);
	m = fake_message("a", 3);
	CHECK_INT(journal_append(&j, dir, m, 1, RCPT_SENT, "2.0.0", "", ""), 0);
	journal_close(&j, m);
	message_free(m);
	m = fake_message("a", 3);
	CHECK_INT(journal_replay(dir, m, false), 2);
	CHECK_INT(m->state[0], RCPT_SENT);
	CHECK_INT(m->state[1], RCPT_SENT);
	CHECK_INT(journal_remove(&j, dir, m), 0);
	message_free(m);
	journal_fini(&j);
}

/* journal_sync()'s write failures: how many, the last message and error. */
struct test_fails {
	int calls;
	const char *name;
	int err;
};

static void
test_fail_record(void *arg, struct message *m, int err)
{
	struct test_fails *f = arg;
	f->calls++;
	f->name = m->name;
	f->err = err;
}

/* A short write (the file size limit stands in for a full disk) fails
 * and leaves no partial line behind. */
static void
test_short_write_cut(int dir)
{
	struct journal j;
	struct rlimit old, lim;
	char buf[256];
	journal_init(&j);
	struct message *m = fake_message("s", 2);
	CHECK_INT(journal_append(&j, dir, m, 0, RCPT_SENT, "2.0.0", "", ""), 0);
	CHECK_INT(journal_sync(&j, NULL, NULL), 0);
	CHECK_INT(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 10; /* "0 S\n" is 4 bytes: 6 more fit */
	signal(SIGXFSZ, SIG_IGN);
	CHECK_INT(setrlimit(RLIMIT_FSIZE, &lim), 0);
	errno = 0;
	CHECK_INT(journal_append(&j, dir, m, 1, RCPT_DEFERRED, "4.2.1",
				 "mx1.test", "451 try later"),
		  0);
	struct test_fails fails = {0};
	/* the write failed, no flush did */
	CHECK_INT(journal_sync(&j, test_fail_record, &fails), 0);
	CHECK_INT(fails.calls, 1);
	CHECK_STR(fails.name, "s");
	CHECK_INT(fails.err, ENOSPC);
	CHECK_INT(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	CHECK_INT(journal_append(&j, dir, m, 1, RCPT_SENT, "2.0.0", "", ""), 0);
	journal_close(&j, m);
	read_file(dir, ".s.journal", buf, sizeof buf);
	CHECK_STR(buf, "0 S\n1 S\n");
	CHECK_INT(journal_remove(&j, dir, m), 0);
	message_free(m);
	journal_fini(&j);
}

static void
test_close_drops_dirty(int dir)
{
	struct journal j;
	journal_init(&j);
	struct message *a = fake_message("a", 1), *b = fake_message("b", 1);
	CHECK_INT(journal_append(&j, dir, a, 0, RCPT_SENT, "2.0.0", "", ""), 0);
	CHECK_INT(journal_append(&j, dir, b, 0, RCPT_SENT, "2.0.0", "", ""), 0);
	CHECK_INT(j.count, 2);
	journal_close(&j, a); /* written, flushed and forgotten */
	CHECK_INT(j.count, 1);
	CHECK(j.owed[0] == b);
	CHECK_INT(a->journal_fd, -1);
	CHECK(faccessat(dir, ".a.journal", F_OK, 0) == 0);
	/* a retired message's lines are dropped: no file is ever made */
	CHECK_INT(journal_remove(&j, dir, b), 0);
	CHECK_INT(j.count, 0);
	CHECK_INT(b->journal_fd, -1);
	CHECK(faccessat(dir, ".b.journal", F_OK, 0) != 0);
	CHECK_INT(journal_sync(&j, NULL, NULL), 0);
	CHECK(faccessat(dir, ".b.journal", F_OK, 0) != 0);
	CHECK_INT(journal_remove(&j, dir, a), 0);
	CHECK(faccessat(dir, ".a.journal", F_OK, 0) != 0);
	message_free(a);
	message_free(b);
	journal_fini(&j);
}

/* Lines wait in memory until journal_sync(); the bounce mark does not. */
static void
test_lines_wait_for_sync(int dir)
{
	struct journal j;
	char buf[64];
	journal_init(&j);
	struct message *m = fake_message("w", 2);
	CHECK_INT(journal_append(&j, dir, m, 0, RCPT_SENT, "2.0.0", "", ""), 0);
	CHECK_INT(journal_append(&j, dir, m, 1, RCPT_FAILED, "5.1.1", "", ""),
		  0);
	CHECK(journal_pending(&j));
	CHECK(faccessat(dir, ".w.journal", F_OK, 0) != 0); /* not yet */
	CHECK_INT(journal_mark_bounced(&j, dir, m), 0);
	read_file(dir, ".w.journal", buf, sizeof buf);
	CHECK_STR(buf, "0 S\n1 B 5.1.1 -\nbounce\n");
	CHECK(journal_pending(&j)); /* written, not flushed */
	CHECK_INT(journal_sync(&j, NULL, NULL), 0);
	CHECK(!journal_pending(&j));
	CHECK_INT(journal_append(&j, dir, m, 0, RCPT_SENT, "2.0.0", "", ""), 0);
	CHECK_INT(journal_sync(&j, NULL, NULL), 0);
	read_file(dir, ".w.journal", buf, sizeof buf);
	CHECK_STR(buf, "0 S\n1 B 5.1.1 -\nbounce\n0 S\n");
	CHECK_INT(journal_remove(&j, dir, m), 0);
	message_free(m);
	journal_fini(&j);
}

/* A journal that cannot be written is reported per message, its lines
 * dropped, and the others still written. */
static void
test_sync_reports_failures(int dir)
{
	struct journal j;
	struct test_fails fails = {0};
	journal_init(&j);
	struct message *x = fake_message("x", 1), *y = fake_message("y", 1);
	CHECK_INT(journal_append(&j, -1, x, 0, RCPT_SENT, "", "", ""), 0);
	CHECK_INT(journal_sync(&j, test_fail_record, &fails), 0);
	CHECK_INT(fails.calls, 1);
	CHECK_STR(fails.name, "x");
	CHECK_INT(fails.err, EBADF);
	CHECK(!journal_pending(&j));
	CHECK_INT(x->jlen, 0);
	CHECK_INT(journal_append(&j, dir, y, 0, RCPT_SENT, "", "", ""), 0);
	CHECK_INT(journal_sync(&j, test_fail_record, &fails), 0);
	CHECK_INT(fails.calls, 1);
	CHECK(faccessat(dir, ".y.journal", F_OK, 0) == 0);
	CHECK_INT(journal_remove(&j, dir, y), 0);
	CHECK_INT(journal_remove(&j, dir, x), 0);
	message_free(x);
	message_free(y);
	journal_fini(&j);
}

int
main(void)
{
	char path[] = "/tmp/test_journal.XXXXXX";
	if (!mkdtemp(path))
		return 1;
	int dir = open(path, O_RDONLY | O_DIRECTORY);
	test_append_sync_replay(dir);
	test_torn_and_foreign_lines(dir);
	test_old_format(dir);
	test_reason_restored(dir);
	test_retry_line(dir);
	test_reply_cleaned_and_cut(dir);
	test_append_after_torn_tail(dir);
	test_short_write_cut(dir);
	test_close_drops_dirty(dir);
	test_lines_wait_for_sync(dir);
	test_sync_reports_failures(dir);
	close(dir);
	CHECK_INT(rmdir(path), 0); /* everything was removed */
	return test_summary();
}

/*
 * test_journal: outcomes appended, flushed, replayed into a fresh copy of
 * the message; torn and foreign lines ignored; removal.
 */
#include <fcntl.h>
#include <stdlib.h>
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
	CHECK_INT(journal_append(&j, dir, m, 2, RCPT_SENT), 0);
	CHECK_INT(journal_append(&j, dir, m, 0, RCPT_DEFERRED), 0);
	CHECK_INT(journal_append(&j, dir, m, 3, RCPT_FAILED), 0);
	CHECK_INT(journal_append(&j, dir, m, 1, RCPT_PENDING), 0); /* no-op */
	CHECK_INT(journal_mark_bounced(&j, dir, m), 0);
	CHECK_INT(j.count, 1); /* one journal, written three times */
	CHECK_INT(journal_sync(&j), 0);
	CHECK_INT(j.count, 0);
	read_file(dir, ".1.M1P1Q1.host.journal", buf, sizeof buf);
	CHECK_STR(buf, "2 S\n0 D\n3 B\nbounce\n");
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
	CHECK_INT(journal_remove(&j, dir, m), 0);
	CHECK_INT(journal_remove(&j, dir, m), 0); /* missing is fine */
	CHECK_INT(journal_replay(dir, m, false), 0);
	message_free(m);
	journal_fini(&j);
}

static void
test_torn_and_foreign_lines(int dir)
{
	/* A torn last line (no LF), an index out of range, garbage, a line
	 * too long, then a real one: only the real, complete lines count. */
	write_file(dir, ".t.journal",
		   "1 S\n9 S\nhello\n00000000000000000000000000000000000000 S\n"
		   "0 B\n2 S");
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
	CHECK_INT(m->state[0], RCPT_PENDING);
	message_free(m);
	m = fake_message("d", 2); /* as `sender queue` shows it */
	CHECK_INT(journal_replay(dir, m, true), 1);
	CHECK_INT(m->state[0], RCPT_DEFERRED);
	CHECK_INT(m->unsettled, 0);
	CHECK_INT(journal_remove(NULL, dir, m), 0);
	message_free(m);
}

static void
test_close_drops_dirty(int dir)
{
	struct journal j;
	journal_init(&j);
	struct message *a = fake_message("a", 1), *b = fake_message("b", 1);
	CHECK_INT(journal_append(&j, dir, a, 0, RCPT_SENT), 0);
	CHECK_INT(journal_append(&j, dir, b, 0, RCPT_SENT), 0);
	CHECK_INT(j.count, 2);
	journal_close(&j, a); /* flushed and forgotten: no stale fd later */
	CHECK_INT(j.count, 1);
	CHECK_INT(j.dirty[0], b->journal_fd);
	/* a retired message's journal leaves the set unflushed, and goes */
	CHECK_INT(journal_remove(&j, dir, b), 0);
	CHECK_INT(j.count, 0);
	CHECK_INT(b->journal_fd, -1);
	CHECK(faccessat(dir, ".b.journal", F_OK, 0) != 0);
	CHECK_INT(journal_remove(&j, dir, a), 0);
	message_free(a);
	message_free(b);
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
	test_close_drops_dirty(dir);
	close(dir);
	CHECK_INT(rmdir(path), 0); /* everything was removed */
	return test_summary();
}

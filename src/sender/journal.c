/*
 * journal: see journal.h. Lines are tiny and appended with O_APPEND, so a
 * crash leaves at worst one torn last line, which replay ignores.
 */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
journal_path(char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, ".%s.journal", name);
}

void
journal_init(struct journal *j)
{
	memset(j, 0, sizeof *j);
}

void
journal_fini(struct journal *j)
{
	free(j->dirty);
	memset(j, 0, sizeof *j);
}

static int
journal_mark_dirty(struct journal *j, int fd)
{
	for (size_t k = 0; k < j->count; k++)
		if (j->dirty[k] == fd)
			return 0;
	if (j->count == j->cap) {
		size_t cap = j->cap ? j->cap * 2 : 64;
		int *p = realloc(j->dirty, cap * sizeof *p);
		if (!p)
			return -1;
		j->dirty = p;
		j->cap = cap;
	}
	j->dirty[j->count++] = fd;
	return 0;
}

/* Appends one line to m's journal, opening it on first use. */
static int
journal_write(struct journal *j, int dir_fd, struct message *m,
	      const char *line, size_t n)
{
	if (m->journal_fd < 0) {
		char path[JOURNAL_NAME_MAX];
		journal_path(path, sizeof path, m->name);
		m->journal_fd =
		    openat(dir_fd, path,
			   O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (m->journal_fd < 0)
			return -1;
	}
	ssize_t w;
	do
		w = write(m->journal_fd, line, n);
	while (w < 0 && errno == EINTR);
	if (w != (ssize_t)n) {
		if (w >= 0)
			errno = ENOSPC; /* a short write of a tiny line */
		return -1;
	}
	return journal_mark_dirty(j, m->journal_fd);
}

int
journal_mark_bounced(struct journal *j, int dir_fd, struct message *m)
{
	return journal_write(j, dir_fd, m, "bounce\n", 7);
}

int
journal_append(struct journal *j, int dir_fd, struct message *m, size_t i,
	       enum rcpt_state st)
{
	static const char codes[] = {
	    [RCPT_SENT] = 'S', [RCPT_FAILED] = 'B', [RCPT_DEFERRED] = 'D'};
	char line[32];

	if (st == RCPT_PENDING)
		return 0;
	int n = snprintf(line, sizeof line, "%zu %c\n", i, codes[st]);
	return journal_write(j, dir_fd, m, line, (size_t)n);
}

int
journal_sync(struct journal *j)
{
	int err = 0;
	for (size_t k = 0; k < j->count; k++)
		if (fdatasync(j->dirty[k]) != 0 && !err)
			err = errno;
	j->count = 0;
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

/* Drops m's journal from the dirty set (flushing it first when sync)
 * and closes it. */
static void
journal_forget(struct journal *j, struct message *m, bool sync)
{
	if (m->journal_fd < 0)
		return;
	for (size_t k = 0; j && k < j->count; k++) {
		if (j->dirty[k] == m->journal_fd) {
			if (sync)
				(void)fdatasync(m->journal_fd);
			j->dirty[k] = j->dirty[--j->count];
			break;
		}
	}
	close(m->journal_fd);
	m->journal_fd = -1;
}

void
journal_close(struct journal *j, struct message *m)
{
	journal_forget(j, m, true); /* its data must still reach the disk */
}

/* Applies one "<index> <code>" line; anything else is ignored. */
static int
journal_apply(struct message *m, unsigned *deferrals, bool show_deferred,
	      const char *line, size_t len)
{
	char buf[32];
	size_t idx;
	char code;

	if (len == 6 && memcmp(line, "bounce", 6) == 0) {
		m->bounced = true;
		return 0;
	}
	if (len == 0 || len >= sizeof buf)
		return 0;
	memcpy(buf, line, len);
	buf[len] = '\0';
	if (sscanf(buf, "%zu %c", &idx, &code) != 2 || idx >= m->env.nrcpt)
		return 0;
	bool final = m->state[idx] == RCPT_SENT || m->state[idx] == RCPT_FAILED;
	if (code == 'S' && !final)
		return message_settle(m, idx, RCPT_SENT), 1;
	if (code == 'B' && !final)
		return message_settle(m, idx, RCPT_FAILED), 1;
	if (code == 'D' && deferrals && ++deferrals[idx] > m->attempts)
		m->attempts = deferrals[idx];
	if (code == 'D' && show_deferred && m->state[idx] == RCPT_PENDING)
		message_settle(m, idx, RCPT_DEFERRED);
	return 0; /* deferred: tried again */
}

int
journal_replay(int dir_fd, struct message *m, bool show_deferred)
{
	char path[JOURNAL_NAME_MAX];
	char buf[8192];
	char line[64];
	size_t llen = 0, total = 0;
	int settled = 0;

	journal_path(path, sizeof path, m->name);
	int fd = openat(dir_fd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	/* per-recipient deferrals give the attempts made so far (NULL when
	 * out of memory: the count then starts again, nothing else changes) */
	unsigned *deferrals =
	    calloc(m->env.nrcpt ? m->env.nrcpt : 1, sizeof *deferrals);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || (total += (size_t)n) > JOURNAL_READ_MAX) {
			int err = n < 0 ? errno : 0;
			close(fd);
			free(deferrals);
			errno = err;
			return n < 0 ? -1 : settled;
		}
		for (ssize_t k = 0; k < n; k++) {
			if (buf[k] == '\n') {
				settled += journal_apply(
				    m, deferrals, show_deferred, line, llen);
				llen = 0;
			} else if (llen < sizeof line) {
				line[llen++] = buf[k];
			}
		}
	}
}

int
journal_remove(struct journal *j, int dir_fd, struct message *m)
{
	char path[JOURNAL_NAME_MAX];
	journal_forget(j, m, false); /* about to go: no flush for it */
	journal_path(path, sizeof path, m->name);
	if (unlinkat(dir_fd, path, 0) != 0 && errno != ENOENT)
		return -1;
	return 0;
}

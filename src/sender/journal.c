/*
 * journal: see journal.h. Lines are short and appended with O_APPEND, one
 * write() each, so a crash leaves at worst one torn last line, which
 * replay ignores and the next run cuts off before appending.
 */
#include "journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/stat.h>
#include <unistd.h>

#define JOURNAL_HOST_MAX 255 /* a domain name */

static void
journal_path(char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, ".%s.journal", name);
}

void
journal_init(struct journal *j)
{
	memset(j, 0, sizeof *j);
	j->dir_fd = -1;
}

void
journal_fini(struct journal *j)
{
	free(j->owed);
	memset(j, 0, sizeof *j);
	j->dir_fd = -1;
}

/* Takes m off the owed list (O(1): its slot is remembered). */
static void
journal_unowe(struct journal *j, struct message *m)
{
	if (m->jslot == 0)
		return;
	if (j != NULL) {
		size_t k = m->jslot - 1;
		struct message *last = j->owed[--j->count];
		j->owed[k] = last;
		last->jslot = k + 1;
	}
	m->jslot = 0;
}

/* Queues line for m's journal: written at the next journal_sync(). */
static int
journal_queue(struct journal *j, int dir_fd, struct message *m,
	      const char *line, size_t n)
{
	if (m->jlen + n > m->jcap) {
		size_t cap = m->jcap ? m->jcap : 128;
		while (cap < m->jlen + n)
			cap *= 2;
		char *b = realloc(m->jbuf, cap);
		if (!b)
			return -1;
		m->jbuf = b;
		m->jcap = cap;
	}
	memcpy(m->jbuf + m->jlen, line, n);
	m->jlen += n;
	if (m->jslot != 0)
		return 0;
	if (j->count == j->cap) {
		size_t cap = j->cap ? j->cap * 2 : 64;
		struct message **o = realloc(j->owed, cap * sizeof *o);
		if (!o) {
			m->jlen -= n;
			errno = ENOMEM;
			return -1;
		}
		j->owed = o;
		j->cap = cap;
	}
	j->dir_fd = dir_fd;
	j->owed[j->count++] = m;
	m->jslot = j->count;
	return 0;
}

/*
 * A crash or a full disk can leave a last line without its LF. Before
 * appending, that torn line is cut off, so no new line is glued to it;
 * a tail longer than any line is garbage that replay ignores, and only
 * gets its LF.
 */
static int
journal_trim_torn(int fd)
{
	char buf[JOURNAL_LINE_MAX];
	struct stat st;
	ssize_t r;

	if (fstat(fd, &st) != 0)
		return -1;
	if (st.st_size == 0)
		return 0;
	size_t n =
	    st.st_size < (off_t)sizeof buf ? (size_t)st.st_size : sizeof buf;
	off_t off = st.st_size - (off_t)n;
	do
		r = pread(fd, buf, n, off);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -1;
	if (r != (ssize_t)n || buf[n - 1] == '\n')
		return 0; /* shrank meanwhile, or whole: nothing to cut */
	size_t keep = n;
	while (keep > 0 && buf[keep - 1] != '\n')
		keep--;
	if (keep == 0 && off > 0)
		return write(fd, "\n", 1) == 1 ? 0 : -1;
	return ftruncate(fd, off + (off_t)keep);
}

static int
journal_open(int dir_fd, struct message *m)
{
	char path[JOURNAL_NAME_MAX];
	journal_path(path, sizeof path, m->name);
	int fd =
	    openat(dir_fd, path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (journal_trim_torn(fd) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	m->journal_fd = fd;
	m->jfile = true;
	return 0;
}

/* Writes m's queued lines with one write(), opening the journal on first
 * use. A short write is cut off again, so the next line starts clean;
 * the lines are dropped either way (a failure is reported once). */
static int
journal_put(int dir_fd, struct message *m)
{
	size_t n = m->jlen;
	m->jlen = 0;
	if (n == 0)
		return 0;
	if (m->journal_fd < 0 && journal_open(dir_fd, m) != 0)
		return -1;
	ssize_t w;
	do
		w = write(m->journal_fd, m->jbuf, n);
	while (w < 0 && errno == EINTR);
	if (w != (ssize_t)n) {
		int e = w < 0 ? errno : ENOSPC; /* a short write: disk full */
		off_t end = w > 0 ? lseek(m->journal_fd, 0, SEEK_END) : -1;
		if (w > 0 && end >= w)
			(void)ftruncate(m->journal_fd, end - w);
		errno = e;
		return -1;
	}
	return 0;
}

int
journal_mark_bounced(struct journal *j, int dir_fd, struct message *m)
{
	/* Written now, not at the pass end: a kill in between must not
	 * make a second bounce (the flush still waits for the pass end). */
	if (journal_queue(j, dir_fd, m, "bounce\n", 7) != 0)
		return -1;
	return journal_put(dir_fd, m);
}

int
journal_mark_retry(struct journal *j, int dir_fd, struct message *m,
		   unsigned attempts, int64_t next_try_ms)
{
	char line[64];
	int n = snprintf(line, sizeof line, "retry %u %lld\n", attempts,
			 (long long)(next_try_ms > 0 ? next_try_ms : 0));
	return journal_queue(j, dir_fd, m, line, (size_t)n);
}

/*
 * Copies src into dst (at most cap - 1 bytes, then NUL), control
 * characters (CR and LF too) as spaces, never cutting a UTF-8 sequence
 * in two. A token (dsn, host) also has its spaces as '_', and is "-"
 * when empty. Returns the length.
 */
static size_t
journal_clean(char *dst, size_t cap, const char *src, bool token)
{
	size_t n = strlen(src);
	if (n > cap - 1) {
		n = cap - 1;
		while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
			n--; /* src[n] continues a sequence: cut before it */
	}
	for (size_t k = 0; k < n; k++) {
		unsigned char c = (unsigned char)src[k];
		if (c < 0x20 || c == 0x7f)
			c = ' ';
		if (token && c == ' ')
			c = '_';
		dst[k] = (char)c;
	}
	if (token && n == 0 && cap > 1)
		dst[n++] = '-';
	dst[n] = '\0';
	return n;
}

int
journal_append(struct journal *j, int dir_fd, struct message *m, size_t i,
	       enum rcpt_state st, const char *dsn, const char *mx,
	       const char *reply)
{
	static const char codes[] = {
	    [RCPT_SENT] = 'S', [RCPT_FAILED] = 'B', [RCPT_DEFERRED] = 'D'};
	char line[JOURNAL_LINE_MAX];
	char dsnb[16], mxb[JOURNAL_HOST_MAX + 1];

	if (st == RCPT_PENDING)
		return 0;
	if (st == RCPT_SENT) {
		int n = snprintf(line, sizeof line, "%zu S\n", i);
		return journal_queue(j, dir_fd, m, line, (size_t)n);
	}
	journal_clean(dsnb, sizeof dsnb, dsn ? dsn : "", true);
	journal_clean(mxb, sizeof mxb, mx ? mx : "", true);
	/* at most 20 + 3 + 15 + 1 + 255 bytes: always fits */
	size_t n = (size_t)snprintf(line, sizeof line, "%zu %c %s %s", i,
				    codes[st], dsnb, mxb);
	/* the reply after a space, leaving room for the LF */
	size_t r = journal_clean(line + n + 1, sizeof line - n - 1,
				 reply ? reply : "", false);
	if (r > 0) {
		line[n] = ' ';
		n += 1 + r;
	}
	line[n++] = '\n';
	return journal_queue(j, dir_fd, m, line, n);
}

bool
journal_pending(const struct journal *j)
{
	return j->count > 0;
}

int
journal_sync(struct journal *j, journal_fail_fn *fail, void *arg)
{
	int err = 0;
	size_t synced = 0;

	/* all writes first, then the flushes: the disk sees them together */
	for (size_t k = 0; k < j->count; k++) {
		struct message *m = j->owed[k];
		if (journal_put(j->dir_fd, m) == 0) {
			j->owed[synced++] = m;
			continue;
		}
		if (fail)
			fail(arg, m, errno);
		m->jslot = 0;
	}
	for (size_t k = 0; k < synced; k++) {
		struct message *m = j->owed[k];
		if (fdatasync(m->journal_fd) != 0 && !err)
			err = errno;
		m->jslot = 0;
	}
	j->count = 0;
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

/* Forgets m's waiting lines and closes its journal. */
static void
journal_drop(struct journal *j, struct message *m)
{
	journal_unowe(j, m);
	m->jlen = 0;
	if (m->journal_fd >= 0)
		close(m->journal_fd);
	m->journal_fd = -1;
}

void
journal_close(struct journal *j, struct message *m)
{
	/* its lines must still reach the disk */
	if (m->jslot != 0 && journal_put(j->dir_fd, m) == 0)
		(void)fdatasync(m->journal_fd);
	journal_drop(j, m);
}

/* What replay gathers besides the recipients' states. */
struct journal_replay {
	unsigned *deferrals; /* per recipient; NULL when out of memory */
	unsigned most;	     /* most deferrals of any recipient */
	bool retry_seen;
	bool show_deferred;
	int settled;
};

/* Decimal digits at *p, at most max; advances *p. False when there are
 * none, a leading zero or the value is too large. */
static bool
journal_number(const char **p, uint64_t max, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
		return false; /* none, or a leading zero: never written */
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*p = s;
	*out = v;
	return true;
}

/* "retry <attempts> <next_try_ms>" (after "retry "). */
static void
journal_apply_retry(struct message *m, struct journal_replay *r, const char *p)
{
	uint64_t attempts, when;

	if (!journal_number(&p, UINT_MAX, &attempts) || *p++ != ' ' ||
	    !journal_number(&p, INT64_MAX, &when) || *p != '\0')
		return;
	m->attempts = (unsigned)attempts;
	m->next_try_ms = (int64_t)when;
	r->retry_seen = true;
}

/* The reason of a B or D line: "<dsn> <mx|->[ <reply>]" (cut up in
 * place). False when it is not there (an older journal). */
static bool
journal_reason(char *p, const char **dsn, const char **mx, const char **reply)
{
	char *sp = strchr(p, ' ');
	if (!sp || sp == p)
		return false;
	*sp = '\0';
	*dsn = p;
	p = sp + 1;
	sp = strchr(p, ' ');
	if (sp)
		*sp = '\0';
	if (*p == '\0')
		return false;
	*mx = strcmp(p, "-") == 0 ? "" : p;
	*reply = sp ? sp + 1 : "";
	return true;
}

/* "<idx> S", "<idx> B|D[ <dsn> <mx|-> <reply>]". */
static void
journal_apply_rcpt(struct message *m, struct journal_replay *r, char *line)
{
	const char *p = line, *dsn = NULL, *mx = "", *reply = "";
	uint64_t idx;

	if (!journal_number(&p, SIZE_MAX, &idx) || *p++ != ' ' ||
	    idx >= m->env.nrcpt)
		return;
	char code = *p++;
	if ((code != 'S' && code != 'B' && code != 'D') ||
	    (*p != '\0' && *p != ' '))
		return;
	size_t i = (size_t)idx;
	m->next_try_ms = 0; /* tried after the last wait began: it is over */
	if (code == 'D' && r->deferrals && ++r->deferrals[i] > r->most)
		r->most = r->deferrals[i];
	if (m->state[i] == RCPT_SENT || m->state[i] == RCPT_FAILED)
		return; /* final already */
	if (code == 'S') {
		message_settle(m, i, RCPT_SENT);
		(void)message_set_why(m, i, NULL, NULL);
		r->settled++;
		return;
	}
	/* without memory the bounce says less; the state is what counts */
	char *rest = line + (p - line);
	if (*rest == ' ' && journal_reason(rest + 1, &dsn, &mx, &reply)) {
		(void)message_set_why(m, i, dsn, reply);
		if (mx[0])
			(void)message_set_mx(m, i, mx);
	}
	if (code == 'B') {
		message_settle(m, i, RCPT_FAILED);
		r->settled++;
	} else if (r->show_deferred && m->state[i] == RCPT_PENDING) {
		message_settle(m, i, RCPT_DEFERRED);
	}
}

/* Applies one complete line; anything unknown is ignored. */
static void
journal_apply(struct message *m, struct journal_replay *r, char *line)
{
	if (strcmp(line, "bounce") == 0)
		m->bounced = true;
	else if (strncmp(line, "retry ", 6) == 0)
		journal_apply_retry(m, r, line + 6);
	else
		journal_apply_rcpt(m, r, line);
}

/* Feeds the bytes read to journal_apply, line by line. A line longer
 * than JOURNAL_LINE_MAX or holding a NUL is ignored, and so is a last
 * line without its LF (torn). */
struct journal_lines {
	char buf[JOURNAL_LINE_MAX + 1];
	size_t len;
	bool bad;
};

static void
journal_feed(struct message *m, struct journal_replay *r,
	     struct journal_lines *l, const char *p, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		if (p[k] == '\n') {
			l->buf[l->len] = '\0';
			if (!l->bad)
				journal_apply(m, r, l->buf);
			l->len = 0;
			l->bad = false;
		} else if (p[k] == '\0' || l->len >= JOURNAL_LINE_MAX - 1) {
			l->bad = true;
		} else {
			l->buf[l->len++] = p[k];
		}
	}
}

int
journal_replay(int dir_fd, struct message *m, bool show_deferred)
{
	char path[JOURNAL_NAME_MAX];
	char buf[8192];
	struct journal_lines lines = {.len = 0};
	struct journal_replay r = {.show_deferred = show_deferred};
	size_t total = 0;
	int err = 0;

	journal_path(path, sizeof path, m->name);
	int fd = openat(dir_fd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	m->jfile = true; /* there is one, even if it cannot be read */
	if (fd < 0)
		return -1;
	/* per-recipient deferrals give the attempts made so far when there
	 * is no retry line (NULL when out of memory: the count then starts
	 * again, nothing else changes) */
	r.deferrals =
	    calloc(m->env.nrcpt ? m->env.nrcpt : 1, sizeof *r.deferrals);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			err = errno;
		if (n <= 0 || (total += (size_t)n) > JOURNAL_READ_MAX)
			break;
		journal_feed(m, &r, &lines, buf, (size_t)n);
	}
	close(fd);
	free(r.deferrals);
	if (!r.retry_seen)
		m->attempts = r.most;
	if (err) {
		errno = err;
		return -1;
	}
	return r.settled;
}

int
journal_remove(struct journal *j, int dir_fd, struct message *m)
{
	char path[JOURNAL_NAME_MAX];
	/* about to go: its queued lines are not needed, nor a flush */
	journal_drop(j, m);
	if (!m->jfile)
		return 0; /* none was ever made: nothing to unlink */
	m->jfile = false;
	journal_path(path, sizeof path, m->name);
	if (unlinkat(dir_fd, path, 0) != 0 && errno != ENOENT)
		return -1;
	return 0;
}

/* ".<name>.journal" -> name; false for any other file name. */
static bool
journal_owner(const char *file, char *name, size_t cap)
{
	static const char suffix[] = ".journal";
	size_t n = strlen(file), sl = sizeof suffix - 1;
	if (file[0] != '.' || n <= sl + 1 ||
	    strcmp(file + n - sl, suffix) != 0 || n - sl - 1 >= cap)
		return false;
	memcpy(name, file + 1, n - sl - 1);
	name[n - sl - 1] = '\0';
	return true;
}

int
journal_clean_orphans(int dir_fd)
{
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	int removed = 0, err = 0;
	struct dirent *e;

	if (!d) {
		err = errno;
		if (fd >= 0)
			close(fd);
		errno = err;
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		char name[JOURNAL_NAME_MAX];
		struct stat st;
		if (!journal_owner(e->d_name, name, sizeof name) ||
		    fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
		    errno != ENOENT)
			continue;
		if (unlinkat(dir_fd, e->d_name, 0) == 0)
			removed++;
		else if (errno != ENOENT && !err)
			err = errno;
	}
	closedir(d);
	if (removed > 0 && fsync(dir_fd) != 0 && !err)
		err = errno;
	if (err) {
		errno = err;
		return -1;
	}
	return removed;
}

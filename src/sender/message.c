/*
 * message: one claimed message, see message.h.
 *
 * Owns: the struct message, its envelope (parsed from the head of the
 * file, never more than ENVELOPE_BLOCK_MAX bytes of it), the
 * per-recipient state array and the per-recipient reason and MX host
 * strings (why, mx; allocated on first use). The file itself stays where it is
 * until message_retire() or message_set_aside() moves it. At most
 * MESSAGE_HEAD_MAX bytes of a file are ever read here.
 *
 * Invariants:
 * - state has env.nrcpt entries; unsettled is the number of them that are
 *   RCPT_PENDING, whatever order message_settle() is called in.
 * - A file leaves the instance folder only when every recipient is final
 *   (retire) or its envelope is malformed (set aside), and every move is
 *   followed by an fsync of the directories it touched.
 */
#include "message.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* First read of the head; doubled up to MESSAGE_HEAD_MAX. */
#define MESSAGE_HEAD_FIRST (64u * 1024)
/*
 * A block of exactly ENVELOPE_BLOCK_MAX bytes is valid, and the parser
 * sees where it ends from the first bytes of the next line ("X-Original-"
 * or not): read that much past the limit so the parser, not this file,
 * decides at the boundary.
 */
#define MESSAGE_HEAD_MAX (ENVELOPE_BLOCK_MAX + 64)
/* Longest Maildir info suffix we add (":2,PT"), terminator included. */
#define MESSAGE_INFO_MAX 6

/* Past a run of at least one ASCII digit, or NULL when there is none. */
static const char *
message_skip_digits(const char *p)
{
	const char *q = p;

	while (*q >= '0' && *q <= '9')
		q++;
	return q == p ? NULL : q;
}

/*
 * Length of the queue id in name: "<sec>.M<usec>P<pid>Q<n>" when the name
 * is "<sec>.M<usec>P<pid>Q<n>.<host>" (maildir.h), else all of the name
 * before a Maildir info suffix ":2,...".
 */
static size_t
message_queue_id_len(const char *name)
{
	static const char *const seps[] = {".M", "P", "Q"};
	const char *p = message_skip_digits(name);
	const char *info;

	for (size_t i = 0; p && i < sizeof seps / sizeof seps[0]; i++) {
		size_t k = strlen(seps[i]);
		p = strncmp(p, seps[i], k) == 0 ? message_skip_digits(p + k)
						: NULL;
	}
	if (p && *p == '.')
		return (size_t)(p - name);
	info = strstr(name, ":2,");
	return info ? (size_t)(info - name) : strlen(name);
}

/*
 * Reads the head of fd in growing chunks until the envelope parser has
 * an answer. -1 with errno on a read error, else 0 with *res set; env is
 * filled only when *res is ENVELOPE_OK.
 */
static int
message_read_head(int fd, struct envelope *env, enum envelope_err *res)
{
	size_t cap = MESSAGE_HEAD_FIRST, have = 0;
	char *buf = NULL;
	int at_eof = 0;
	enum envelope_err r;

	for (;;) {
		char *nb = realloc(buf, cap);
		if (!nb) {
			free(buf);
			errno = ENOMEM;
			return -1;
		}
		buf = nb;
		while (have < cap && !at_eof) {
			ssize_t n = read(fd, buf + have, cap - have);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				int e = errno;
				free(buf);
				errno = e;
				return -1;
			}
			if (n == 0)
				at_eof = 1;
			have += (size_t)n;
		}
		memset(env, 0, sizeof *env);
		r = envelope_parse(buf, have, at_eof, env);
		if (r != ENVELOPE_OK)
			envelope_free(env);
		if (r != ENVELOPE_INCOMPLETE)
			break;
		/* the parser must decide at EOF; never loop on it */
		if (at_eof) {
			r = ENVELOPE_ERR_SYNTAX;
			break;
		}
		if (cap >= MESSAGE_HEAD_MAX) {
			r = ENVELOPE_ERR_TOO_LONG;
			break;
		}
		cap = cap * 2 < MESSAGE_HEAD_MAX ? cap * 2 : MESSAGE_HEAD_MAX;
	}
	free(buf);
	*res = r;
	return 0;
}

/* Builds the message once the envelope parsed; takes over env. */
static struct message *
message_build(const char *name, struct envelope *env, const struct stat *st)
{
	struct message *m = calloc(1, sizeof *m);
	size_t idlen = message_queue_id_len(name);

	if (!m)
		return NULL;
	m->state = calloc(env->nrcpt ? env->nrcpt : 1, sizeof *m->state);
	if (!m->state) {
		free(m);
		return NULL;
	}
	m->journal_fd = -1;
	snprintf(m->name, sizeof m->name, "%s", name);
	if (idlen > MAILDIR_QUEUE_ID_MAX)
		idlen = MAILDIR_QUEUE_ID_MAX;
	memcpy(m->queue_id, name, idlen);
	m->queue_id[idlen] = '\0';
	m->env = *env;
	for (size_t i = 0; i < env->nrcpt; i++)
		m->state[i] = RCPT_PENDING;
	m->unsettled = env->nrcpt;
	m->size = (uint64_t)st->st_size;
	m->queued_ms =
	    (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
	return m;
}

enum message_err
message_load(int dir_fd, const char *name, struct message **out, char *why,
	     size_t whylen)
{
	struct envelope env;
	enum envelope_err res;
	struct stat st;
	int fd, e;

	*out = NULL;
	if (whylen > 0)
		why[0] = '\0';
	if (strlen(name) > MAILDIR_NAME_MAX) {
		errno = ENAMETOOLONG;
		return MESSAGE_ERR_IO;
	}
	fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return MESSAGE_ERR_IO;
	if (fstat(fd, &st) != 0)
		goto io_fail;
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(why, whylen, "not a regular file");
		return MESSAGE_ERR_MALFORMED;
	}
	if (message_read_head(fd, &env, &res) != 0)
		goto io_fail;
	close(fd);
	if (res == ENVELOPE_ERR_NOMEM) {
		errno = ENOMEM; /* not the file's fault: try again later */
		return MESSAGE_ERR_IO;
	}
	if (res != ENVELOPE_OK) {
		snprintf(why, whylen, "%s", envelope_strerror(res));
		return MESSAGE_ERR_MALFORMED;
	}
	*out = message_build(name, &env, &st);
	if (!*out) {
		envelope_free(&env);
		errno = ENOMEM;
		return MESSAGE_ERR_IO;
	}
	return MESSAGE_OK;
io_fail:
	e = errno;
	close(fd);
	errno = e;
	return MESSAGE_ERR_IO;
}

void
message_free(struct message *m)
{
	if (!m)
		return;
	if (m->journal_fd >= 0)
		close(m->journal_fd); /* journal_close() normally did */
	free(m->jbuf);
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		free(m->why ? m->why[i] : NULL);
		free(m->mx ? m->mx[i] : NULL);
	}
	free(m->why);
	free(m->mx);
	envelope_free(&m->env);
	free(m->state);
	free(m);
}

bool
message_settle(struct message *m, size_t i, enum rcpt_state st)
{
	enum rcpt_state old;

	if (i >= m->env.nrcpt)
		return false;
	old = m->state[i];
	m->state[i] = st;
	if (old == RCPT_PENDING && st != RCPT_PENDING) {
		m->unsettled--;
		return m->unsettled == 0;
	}
	if (old != RCPT_PENDING && st == RCPT_PENDING)
		m->unsettled++; /* back in play for another attempt */
	return false;
}

bool
message_final(const struct message *m)
{
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		if (m->state[i] == RCPT_PENDING || m->state[i] == RCPT_DEFERRED)
			return false;
	}
	return true;
}

static bool
message_any_failed(const struct message *m)
{
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		if (m->state[i] == RCPT_FAILED)
			return true;
	}
	return false;
}

/* fsync of a directory: makes the entries renamed in or out durable. */
static int
message_sync_dirs(int a, int b)
{
	if (fsync(a) != 0)
		return -1;
	return b >= 0 ? fsync(b) : 0;
}

int
message_retire(const struct message *m, int dir_fd, int cur_fd, bool keep)
{
	char dest[MAILDIR_NAME_MAX + MESSAGE_INFO_MAX];

	/* a deferred recipient still needs the file: never lose it */
	if (!message_final(m)) {
		errno = EBUSY;
		return -1;
	}
	if (!keep)
		return unlinkat(dir_fd, m->name, 0);
	/* Maildir info "2," then the flags in ASCII order: P(assed), T */
	snprintf(dest, sizeof dest, "%s:2,%s", m->name,
		 message_any_failed(m) ? "PT" : "P");
	return renameat(dir_fd, m->name, cur_fd, dest);
}

int
message_set_aside(int dir_fd, const char *name, int aside_fd)
{
	if (renameat(dir_fd, name, aside_fd, name) != 0)
		return -1;
	return message_sync_dirs(aside_fd, dir_fd);
}

/* Replaces (*slots)[i] with s (which may be NULL), allocating the
 * per-recipient array on first use. Takes over s; -1 on ENOMEM. */
static int
message_set_slot(struct message *m, char ***slots, size_t i, char *s)
{
	if (i >= m->env.nrcpt) {
		free(s);
		errno = EINVAL;
		return -1;
	}
	if (!*slots && !s)
		return 0;
	if (!*slots) {
		*slots = calloc(m->env.nrcpt, sizeof **slots);
		if (!*slots) {
			free(s);
			return -1;
		}
	}
	free((*slots)[i]);
	(*slots)[i] = s;
	return 0;
}

int
message_set_why(struct message *m, size_t i, const char *dsn, const char *reply)
{
	char *s = NULL;
	if (dsn) {
		size_t len = strlen(dsn) + strlen(reply) + 2;
		s = malloc(len);
		if (!s)
			return -1;
		snprintf(s, len, "%s %s", dsn, reply);
	}
	return message_set_slot(m, &m->why, i, s);
}

int
message_set_mx(struct message *m, size_t i, const char *mx)
{
	char *s = strdup(mx);
	if (!s)
		return -1;
	return message_set_slot(m, &m->mx, i, s);
}

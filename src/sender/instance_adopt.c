/*
 * instance_adopt: adoption of the folders of dead senders, see
 * instance.h: finding stale siblings, taking them, moving their files
 * into the own folder and finishing .adopted.* folders left by a crash.
 *
 * Invariants:
 * - A sibling is renamed only while its flock is held here, after its
 *   staleness was checked again under the lock and the locked fd was
 *   found to still be the folder at its path.
 * - Adopted files are in the own folder, and both folders fsync'ed,
 *   before a message is handed to the claim callback.
 * - A message name reaches the callback at most once: only the adoption
 *   that moved it reports it.
 */
#include "instance_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define INSTANCE_FINISH_ROUNDS 8 /* nested .adopted.* folders */
#define INSTANCE_MALFORMED "malformed"

/* A growable list of file names. */
struct names {
	char **v;
	size_t n, cap;
};

/* What one finished .adopted.* folder held. */
struct adopt_counts {
	size_t messages, journals, other, left;
};

static int64_t
instance_mtime_ms(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000 +
	       st->st_mtim.tv_nsec / 1000000;
}

/* When the sender of folder fd last beat: .heartbeat's mtime, or the
 * folder's own when it has none (never started, or an old version). */
static int
instance_last_beat(int fd, int64_t *ms)
{
	struct stat st;

	if (fstatat(fd, INSTANCE_HEARTBEAT, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno != ENOENT || fstat(fd, &st) != 0)
			return -1;
	}
	*ms = instance_mtime_ms(&st);
	return 0;
}

static void
names_free(struct names *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
	ns->v = NULL;
	ns->n = ns->cap = 0;
}

static int
names_add(struct names *ns, const char *name)
{
	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 16;
		char **v = realloc(ns->v, cap * sizeof *v);
		if (!v)
			return -1;
		ns->v = v;
		ns->cap = cap;
	}
	if (!(ns->v[ns->n] = strdup(name)))
		return -1;
	ns->n++;
	return 0;
}

typedef bool names_keep_fn(const char *name, void *arg);

/* Lists dir_fd's entries that keep() accepts ("." and ".." never). */
static int
names_list(int dir_fd, names_keep_fn *keep, void *arg, struct names *out)
{
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	struct dirent *de;
	int rc = 0, e;

	if (!d) {
		e = errno;
		if (fd >= 0)
			close(fd);
		errno = e;
		return -1;
	}
	for (;;) {
		errno = 0;
		if (!(de = readdir(d))) {
			rc = errno ? -1 : 0;
			break;
		}
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (keep && !keep(de->d_name, arg))
			continue;
		if (names_add(out, de->d_name) != 0) {
			rc = -1;
			break;
		}
	}
	e = errno;
	closedir(d);
	errno = e;
	return rc;
}

/* Moves from/name to to/name, never replacing a file already there. */
static int
instance_move(int from_fd, const char *name, int to_fd)
{
	struct stat st;

	if (renameat2(from_fd, name, to_fd, name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* a filesystem without RENAME_NOREPLACE: the own folder is locked,
	 * so only this process adds to it */
	if (fstatat(to_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		errno = EEXIST;
		return -1;
	}
	return renameat(from_fd, name, to_fd, name);
}

static bool
instance_is_adopted_name(const char *name)
{
	return strncmp(name, INSTANCE_ADOPTED_PREFIX,
		       strlen(INSTANCE_ADOPTED_PREFIX)) == 0;
}

/* A message for the claim callback: not hidden, a regular file. */
static bool
instance_is_message(int dir_fd, const char *name)
{
	struct stat st;

	return name[0] != '.' &&
	       fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(st.st_mode);
}

/* Moves every entry of sub_fd into the own folder; counts what moved and
 * lists the messages. The dead sender's heartbeat is dropped. */
static int
instance_move_all(struct instance *in, int sub_fd, struct names *msgs,
		  struct adopt_counts *c)
{
	struct names all = {0};
	int rc = names_list(sub_fd, NULL, NULL, &all);

	if (rc != 0)
		log_syscall(in->log, LOG_WARN, "spool.error", "readdir_adopted",
			    NULL, errno);
	for (size_t i = 0; i < all.n; i++) {
		const char *nm = all.v[i];
		const char *op = NULL;
		if (strcmp(nm, INSTANCE_HEARTBEAT) == 0) {
			if (unlinkat(sub_fd, nm, 0) != 0 && errno != ENOENT)
				op = "unlink_adopted";
		} else if (instance_move(sub_fd, nm, in->dir_fd) != 0) {
			op = "rename_adopted";
		}
		if (op) {
			/* the first only: the rest stays for a retry */
			if (c->left++ == 0 && !in->warned_leftover)
				log_syscall(in->log, LOG_WARN, "spool.error",
					    op, nm, errno);
			continue;
		}
		if (strcmp(nm, INSTANCE_HEARTBEAT) == 0)
			continue;
		if (instance_is_message(in->dir_fd, nm)) {
			if (names_add(msgs, nm) != 0) {
				/* in the folder: the next start reports it */
				log_syscall(in->log, LOG_WARN, "spool.error",
					    "adopt_list", nm, ENOMEM);
			}
			c->messages++;
		} else if (instance_is_adopted_name(nm)) {
			in->leftover = true; /* finished in its own turn */
			c->other++;
		} else if (nm[0] == '.') {
			c->journals++;
		} else {
			c->other++;
		}
	}
	names_free(&all);
	return rc;
}

static void
instance_log_adopted(struct instance *in, const char *orphan,
		     const struct adopt_counts *c, bool resumed)
{
	struct log_line *ln = log_begin(in->log, LOG_INFO, "spool.adopted");
	log_str(ln, "instance", in->name);
	log_str(ln, "orphan", orphan);
	log_uint(ln, "messages", c->messages);
	log_uint(ln, "journals", c->journals);
	if (c->other)
		log_uint(ln, "other", c->other);
	if (c->left)
		log_uint(ln, "left", c->left);
	log_bool(ln, "resumed", resumed);
	log_end(ln);
}

/*
 * Finishes <own>/<sub> (an .adopted.<dead> folder): moves its files in,
 * syncs both folders, removes it, syncs the own folder again, then hands
 * each message to the callback when claim. 0 when it is gone, -1 when
 * something stays (in->leftover is set: the timer tries again).
 */
static int
instance_finish(struct instance *in, const char *sub, bool claim, bool resumed)
{
	struct adopt_counts c = {0};
	struct names msgs = {0};
	int rc = 0;
	int sub_fd = openat(in->dir_fd, sub,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (sub_fd < 0) {
		if (errno == ENOENT)
			return 0;
		log_syscall(in->log, LOG_WARN, "spool.error", "open_adopted",
			    sub, errno);
		in->leftover = true;
		return -1;
	}
	if (instance_move_all(in, sub_fd, &msgs, &c) != 0)
		c.left++;
	/* the moves are durable before anyone acts on them */
	if (fsync(sub_fd) != 0)
		log_syscall(in->log, LOG_WARN, "spool.error", "fsync_adopted",
			    sub, errno);
	if (fsync(in->dir_fd) != 0)
		log_syscall(in->log, LOG_WARN, "spool.error", "fsync", NULL,
			    errno);
	close(sub_fd);
	if (c.left == 0 && unlinkat(in->dir_fd, sub, AT_REMOVEDIR) == 0) {
		if (fsync(in->dir_fd) != 0)
			log_syscall(in->log, LOG_WARN, "spool.error", "fsync",
				    NULL, errno);
	} else {
		if (c.left == 0 && !in->warned_leftover)
			log_syscall(in->log, LOG_WARN, "spool.error",
				    "rmdir_adopted", sub, errno);
		in->warned_leftover = true;
		in->leftover = true;
		rc = -1;
	}
	/* a retry that moved nothing and removed nothing says nothing */
	if (rc == 0 || c.messages + c.journals + c.other > 0)
		instance_log_adopted(in, sub + strlen(INSTANCE_ADOPTED_PREFIX),
				     &c, resumed);
	for (size_t i = 0; claim && i < msgs.n; i++)
		in->fn(in->arg, msgs.v[i]);
	names_free(&msgs);
	return rc;
}

static bool
keep_adopted_dir(const char *name, void *arg)
{
	struct instance *in = arg;
	struct stat st;

	return instance_is_adopted_name(name) &&
	       fstatat(in->dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISDIR(st.st_mode);
}

/* Finishes every .adopted.* folder inside the own folder. */
void
instance_finish_all(struct instance *in, bool claim)
{
	for (int round = 0; round < INSTANCE_FINISH_ROUNDS; round++) {
		struct names subs = {0};
		bool failed = false;

		in->leftover = false;
		if (names_list(in->dir_fd, keep_adopted_dir, in, &subs) != 0) {
			log_syscall(in->log, LOG_WARN, "spool.error",
				    "readdir_instance", NULL, errno);
			in->leftover = true;
		}
		for (size_t i = 0; i < subs.n; i++)
			failed |=
			    instance_finish(in, subs.v[i], claim, true) != 0;
		names_free(&subs);
		/* nested ones found this round are finished in the next */
		if (failed || !in->leftover)
			return;
	}
}

static bool
instance_noted(const struct instance *in, const char *name)
{
	for (size_t i = 0; i < in->nnoted; i++)
		if (strcmp(in->noted[i], name) == 0)
			return true;
	return false;
}

/* Logs a locked orphan once (until it is fresh again or gone). */
static void
instance_note_locked(struct instance *in, const char *name, int64_t age_ms)
{
	struct log_line *ln;

	if (instance_noted(in, name))
		return;
	if (in->nnoted < INSTANCE_NOTED_MAX)
		snprintf(in->noted[in->nnoted++], sizeof in->noted[0], "%s",
			 name);
	ln = log_begin(in->log, LOG_WARN, "spool.orphan_locked");
	log_str(ln, "instance", in->name);
	log_str(ln, "orphan", name);
	log_ms(ln, "heartbeat_age", age_ms > 0 ? (uint64_t)age_ms : 0);
	log_str(ln, "hint", "its sender is alive on this host; not adopted");
	log_end(ln);
}

static void
instance_forget(struct instance *in, const char *name)
{
	for (size_t i = 0; i < in->nnoted; i++) {
		if (strcmp(in->noted[i], name) == 0) {
			in->nnoted--;
			memcpy(in->noted[i], in->noted[in->nnoted],
			       sizeof in->noted[0]);
			return;
		}
	}
}

/* Stale by the wall clock: 1, fresh: 0, -1 when it cannot be told. */
static int
instance_check_stale(struct instance *in, int fd, int64_t *age_ms)
{
	int64_t beat, now = loop_wall_ms() /* heartbeats are file times */;

	if (instance_last_beat(fd, &beat) != 0)
		return -1;
	*age_ms = now - beat;
	return instance_stale(beat, now, in->orphan_after);
}

/* With dead_fd locked: renames the folder into ours and finishes it. */
static int
instance_take(struct instance *in, const char *dead, int dead_fd, bool claim)
{
	char sub[NAME_MAX + 1];
	int64_t age;
	int at =
	    instance_at_path(in->spool_fd, dead, dead_fd, AT_SYMLINK_NOFOLLOW);

	if (at < 0) {
		log_syscall(in->log, LOG_WARN, "spool.error", "stat_orphan",
			    dead, errno);
		return -1;
	}
	if (at == 0)
		return 0; /* adopted by another sender meanwhile */
	/* the lock can come just as its sender starts again */
	if (instance_check_stale(in, dead_fd, &age) != 1)
		return 0;
	if ((size_t)snprintf(sub, sizeof sub, "%s%s", INSTANCE_ADOPTED_PREFIX,
			     dead) >= sizeof sub) {
		errno = ENAMETOOLONG;
		log_syscall(in->log, LOG_WARN, "spool.error", "adopt", dead,
			    errno);
		return -1;
	}
	if (renameat2(in->spool_fd, dead, in->dir_fd, sub, RENAME_NOREPLACE) !=
	    0) {
		if (errno == ENOENT)
			return 0; /* another adopter won the race */
		log_syscall(in->log, LOG_WARN, "spool.error", "rename_orphan",
			    dead, errno);
		return -1;
	}
	(void)instance_finish(in, sub, claim, false);
	return 1;
}

static int
instance_adopt_one(struct instance *in, const char *dead, bool claim)
{
	int64_t age;
	int rc, st;
	int fd = openat(in->spool_fd, dead,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) {
			instance_forget(in, dead);
			return 0; /* gone, or not a folder */
		}
		log_syscall(in->log, LOG_WARN, "spool.error", "open_orphan",
			    dead, errno);
		return -1;
	}
	st = instance_check_stale(in, fd, &age);
	if (st < 0) {
		log_syscall(in->log, LOG_WARN, "spool.error", "stat_orphan",
			    dead, errno);
		close(fd);
		return -1;
	}
	if (st == 0) {
		instance_forget(in, dead);
		close(fd);
		return 0;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		/* locked and still there: its sender lives (an adopter's
		 * lock ends with the folder moved away) */
		if (e == EWOULDBLOCK &&
		    instance_at_path(in->spool_fd, dead, fd,
				     AT_SYMLINK_NOFOLLOW) == 1)
			instance_note_locked(in, dead, age);
		else if (e != EWOULDBLOCK)
			log_syscall(in->log, LOG_WARN, "spool.error",
				    "flock_orphan", dead, e);
		close(fd);
		return e == EWOULDBLOCK ? 0 : -1;
	}
	instance_forget(in, dead);
	rc = instance_take(in, dead, fd, claim);
	close(fd); /* releases the lock */
	return rc;
}

int
instance_adopt(struct instance *in, const char *dead)
{
	return instance_adopt_one(in, dead, in->fn && in->adopting);
}

static bool
keep_sibling(const char *name, void *arg)
{
	const struct instance *in = arg;

	return name[0] != '.' && strcmp(name, INSTANCE_MALFORMED) != 0 &&
	       strcmp(name, in->name) != 0;
}

/* Looks at every sibling folder once. */
void
instance_sweep(struct instance *in, bool claim)
{
	struct names sib = {0};

	if (names_list(in->spool_fd, keep_sibling, in, &sib) != 0)
		log_syscall(in->log, LOG_WARN, "spool.error", "readdir_spool",
			    NULL, errno);
	for (size_t i = 0; i < sib.n && in->adopting; i++)
		(void)instance_adopt_one(in, sib.v[i], claim);
	names_free(&sib);
}

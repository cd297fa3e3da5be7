/*
 * instance: the own folder's lock and heartbeat, see instance.h. Adoption
 * of the folders of dead senders is in instance_adopt.c.
 *
 * Owns: a dup of the spool fd, the locked fd of the own folder, the open
 * heartbeat file, one loop timer (beat, check, adopt), and the names of
 * locked orphans already logged.
 *
 * Invariants:
 * - The own folder's flock is held from instance_open() to
 *   instance_free(); nothing else in this process takes it.
 */
#include "instance_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define INSTANCE_LOCK_POLL_MS 100
#define INSTANCE_REOPEN_MAX 8 /* own folder renamed away under us */

uint64_t
instance_beat_ms(uint64_t orphan_after_ms)
{
	uint64_t ms = orphan_after_ms / 4;

	if (ms < INSTANCE_BEAT_MIN_MS)
		return INSTANCE_BEAT_MIN_MS;
	if (ms > INSTANCE_BEAT_MAX_MS)
		return INSTANCE_BEAT_MAX_MS;
	return ms;
}

bool
instance_stale(int64_t beat_ms, int64_t now_ms, uint64_t orphan_after_ms)
{
	/* a beat from the future (clock stepped back) is fresh */
	return now_ms - beat_ms > (int64_t)orphan_after_ms;
}

/* 1 when fd is still the folder at spool/name, 0 when not (gone or
 * replaced), -1 on another error. */
int
instance_at_path(int spool_fd, const char *name, int fd, int flags)
{
	struct stat a, b;

	if (fstat(fd, &a) != 0)
		return -1;
	if (fstatat(spool_fd, name, &b, flags) != 0)
		return errno == ENOENT ? 0 : -1;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static void
instance_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL); /* EINTR: the caller's loop looks again */
}

/* Opens spool/name, creating it (0700) when missing. */
static int
instance_open_own(int spool_fd, const char *name)
{
	if (mkdirat(spool_fd, name, 0700) != 0 && errno != EEXIST)
		return -1;
	return openat(spool_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/*
 * Locks the own folder into in->dir_fd. An adopter may hold the lock for
 * a moment and then rename the folder away: after locking, the fd must
 * still be the folder at its path, else a fresh one is opened.
 */
static enum instance_err
instance_lock_own(struct instance *in, uint64_t wait_ms, char *err,
		  size_t errlen)
{
	int64_t deadline = (int64_t)loop_monotonic_ms() + (int64_t)wait_ms;
	const char *op = "open";
	int tries = 0, e;

	for (;;) {
		int fd = instance_open_own(in->spool_fd, in->name);
		if (fd < 0 && errno == ENOENT && ++tries < INSTANCE_REOPEN_MAX)
			continue; /* renamed away between mkdir and open */
		if (fd < 0)
			goto fail;
		op = "flock";
		if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
			e = errno;
			close(fd);
			errno = e;
			if (e != EWOULDBLOCK)
				goto fail;
			if ((int64_t)loop_monotonic_ms() >= deadline) {
				snprintf(err, errlen,
					 "instance %s is in use by another "
					 "sender",
					 in->name);
				return INSTANCE_BUSY;
			}
			instance_sleep_ms(INSTANCE_LOCK_POLL_MS);
			continue;
		}
		op = "stat";
		int at = instance_at_path(in->spool_fd, in->name, fd, 0);
		if (at == 1) {
			in->dir_fd = fd;
			return INSTANCE_OK;
		}
		e = errno;
		close(fd); /* releases the lock on the old folder */
		errno = e;
		if (at < 0)
			goto fail;
		if (++tries >= INSTANCE_REOPEN_MAX) {
			errno = EAGAIN;
			goto fail;
		}
		op = "open";
	}
fail:
	snprintf(err, errlen, "instance folder %s: %s: %s", in->name, op,
		 strerror(errno));
	return INSTANCE_FAIL;
}

/* The own folder is still ours; logs and returns false when not. */
static bool
instance_check_own(struct instance *in)
{
	struct log_line *ln;
	int at = instance_at_path(in->spool_fd, in->name, in->dir_fd, 0);

	if (at != 0) {
		if (at < 0)
			log_syscall(in->log, LOG_WARN, "spool.error",
				    "stat_instance", in->name, errno);
		return true; /* an unreadable spool is not a lost folder */
	}
	ln = log_begin(in->log, LOG_ERROR, "spool.lost");
	log_str(ln, "instance", in->name);
	log_str(ln, "reason",
		"the instance folder was taken away (adopted by another "
		"sender while this one stalled); stopping");
	log_end(ln);
	in->lost = true;
	return false;
}

static void
instance_beat(struct instance *in)
{
	if (futimens(in->beat_fd, NULL) != 0)
		log_syscall(in->log, LOG_WARN, "spool.error", "heartbeat",
			    INSTANCE_HEARTBEAT, errno);
}

static void
instance_on_timer(struct loop *l, struct loop_timer *t, void *arg)
{
	struct instance *in = arg;

	(void)t;
	if (!instance_check_own(in)) {
		in->lost_fn(in->arg);
		return; /* nothing more: another sender owns those files */
	}
	instance_beat(in);
	if (in->adopting) {
		if (in->leftover)
			instance_finish_all(in, true);
		instance_sweep(in, true);
	}
	if (loop_timer_arm(l, &in->timer, instance_beat_ms(in->orphan_after)) !=
	    0)
		log_syscall(in->log, LOG_WARN, "spool.error", "timer", NULL,
			    errno);
}

struct instance *
instance_open(int spool_fd, const char *name, uint64_t orphan_after_ms,
	      uint64_t lock_wait_ms, struct logger *lg, enum instance_err *why,
	      char *err, size_t errlen)
{
	struct instance *in = calloc(1, sizeof *in);

	*why = INSTANCE_FAIL;
	if (!in || strlen(name) >= sizeof in->name) {
		snprintf(err, errlen, "instance %s: %s", name,
			 strerror(in ? ENAMETOOLONG : ENOMEM));
		free(in);
		return NULL;
	}
	snprintf(in->name, sizeof in->name, "%s", name);
	in->log = lg;
	in->orphan_after = orphan_after_ms;
	in->dir_fd = in->beat_fd = -1;
	in->adopting = true;
	loop_timer_init(&in->timer, instance_on_timer, in);
	in->spool_fd = fcntl(spool_fd, F_DUPFD_CLOEXEC, 0);
	if (in->spool_fd < 0) {
		snprintf(err, errlen, "spool: %s", strerror(errno));
		goto fail;
	}
	*why = instance_lock_own(in, lock_wait_ms, err, errlen);
	if (*why != INSTANCE_OK)
		goto fail;
	in->beat_fd = openat(in->dir_fd, INSTANCE_HEARTBEAT,
			     O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (in->beat_fd < 0 || futimens(in->beat_fd, NULL) != 0) {
		snprintf(err, errlen, "instance %s: heartbeat: %s", name,
			 strerror(errno));
		*why = INSTANCE_FAIL;
		goto fail;
	}
	/* a crash in the middle of an adoption: finish it first */
	instance_finish_all(in, false);
	return in;
fail:
	instance_free(in);
	return NULL;
}

void
instance_free(struct instance *in)
{
	if (!in)
		return;
	if (in->loop)
		loop_timer_disarm(in->loop, &in->timer);
	if (in->beat_fd >= 0) {
		close(in->beat_fd);
		/* nobody beats now; a stopped sender's folder is left as it
		 * found it (an adopted one is not ours to touch) */
		if (!in->lost)
			(void)unlinkat(in->dir_fd, INSTANCE_HEARTBEAT, 0);
	}
	if (in->dir_fd >= 0)
		close(in->dir_fd);
	if (in->spool_fd >= 0)
		close(in->spool_fd);
	free(in);
}

int
instance_fd(const struct instance *in)
{
	return in->dir_fd;
}

int
instance_start(struct instance *in, struct loop *l, instance_claim_fn *fn,
	       instance_lost_fn *lost, void *arg)
{
	if (!l || !fn || !lost) {
		errno = EINVAL;
		return -1;
	}
	/* before anyone reads the folder: no callback, it is all listed */
	instance_sweep(in, false);
	in->loop = l;
	in->fn = fn;
	in->lost_fn = lost;
	in->arg = arg;
	return loop_timer_arm(l, &in->timer,
			      instance_beat_ms(in->orphan_after));
}

void
instance_stop_adopting(struct instance *in)
{
	in->adopting = false;
}

bool
instance_lost(const struct instance *in)
{
	return in->lost;
}

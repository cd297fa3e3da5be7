/*
 * scan: finds new mail in <maildir>/new/ and claims it, see scan.h.
 *
 * Owns: its own open of new/ (a DIR rewound before every pass, so the
 * caller's new_fd offset is never touched), the inotify fd and its loop
 * watch (absent when inotify is unavailable), one loop timer that runs
 * every pass (periodic, kicked, after inotify events, and the follow-up of
 * a full batch), and the names claimed in the current batch.
 *
 * Invariants:
 * - The start-up report of files already in the instance folder is
 *   complete before the first claim, so no file is reported twice.
 * - A claimed name reaches fn only after the instance folder was fsync'ed
 *   (the rename is atomic; the fsync makes its new location durable).
 * - At most SCAN_BATCH claims per pass; a full batch schedules another
 *   pass right away, so the loop stays fair to sockets.
 * - While a pass runs callbacks (busy), scan_free() only marks the scan
 *   dying; the pass frees it when it returns.
 * - inotify events are never parsed: any readable event (IN_Q_OVERFLOW
 *   included) only triggers a rescan, which is what makes it robust.
 */
#include "scan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* reads of the inotify fd per callback: a flood cannot hold the loop */
#define SCAN_INOTIFY_READS 64
#define SCAN_INOTIFY_BUF 4096

struct scan {
	struct loop *loop;
	struct logger *log;
	int new_fd;  /* caller's */
	int inst_fd; /* caller's */
	DIR *dir;    /* our own open of new/ */
	int ino_fd;  /* -1: periodic scan only */
	uint64_t interval_ms;
	scan_claim_fn *fn;
	void *arg;
	struct loop_timer timer;
	uint64_t claimed;
	bool started;		     /* start-up report done */
	bool busy;		     /* inside a pass that calls fn */
	bool dying;		     /* scan_free() called while busy */
	char (*batch)[NAME_MAX + 1]; /* SCAN_BATCH names claimed this pass */
};

/* A file we handle: regular (symlinks and dirs stay put), not hidden. */
static bool
scan_is_candidate(int dir_fd, const struct dirent *d)
{
	struct stat st;

	if (d->d_name[0] == '.')
		return false;
	if (d->d_type == DT_REG)
		return true;
	if (d->d_type != DT_UNKNOWN)
		return false;
	/* some filesystems do not fill d_type */
	if (fstatat(dir_fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return false;
	return S_ISREG(st.st_mode);
}

/* fdopendir() on a fresh open of dir_fd, leaving dir_fd as it is. */
static DIR *
scan_opendir(int dir_fd)
{
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir;

	if (fd < 0)
		return NULL;
	dir = fdopendir(fd);
	if (!dir) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return dir;
}

/*
 * Start-up: reports every file already in the instance folder (claimed by
 * an earlier run of this instance). -1 when the folder cannot be read at
 * all, so the caller retries before claiming anything.
 */
static int
scan_report_existing(struct scan *s)
{
	DIR *dir = scan_opendir(s->inst_fd);
	struct dirent *d;

	if (!dir) {
		log_syscall(s->log, LOG_WARN, "scan.error", "opendir_instance",
			    NULL, errno);
		return -1;
	}
	for (;;) {
		errno = 0;
		d = readdir(dir);
		if (!d) {
			/* entries already reported cannot be taken back */
			if (errno != 0)
				log_syscall(s->log, LOG_WARN, "scan.error",
					    "readdir_instance", NULL, errno);
			break;
		}
		if (!scan_is_candidate(dirfd(dir), d))
			continue;
		s->fn(s->arg, d->d_name);
		if (s->dying)
			break;
	}
	closedir(dir);
	return 0;
}

/*
 * Claims up to SCAN_BATCH files of new/ into the instance folder. Returns
 * how many; fills s->batch. One warning per pass for unexpected errors.
 */
static size_t
scan_claim_batch(struct scan *s)
{
	struct dirent *d;
	size_t n = 0;
	bool warned = false;

	rewinddir(s->dir);
	while (n < SCAN_BATCH) {
		errno = 0;
		d = readdir(s->dir);
		if (!d) {
			if (errno != 0)
				log_syscall(s->log, LOG_WARN, "scan.error",
					    "readdir", NULL, errno);
			break;
		}
		if (!scan_is_candidate(dirfd(s->dir), d))
			continue;
		if (renameat(s->new_fd, d->d_name, s->inst_fd, d->d_name) ==
		    0) {
			/* d_name fits: both are NAME_MAX + 1 bytes */
			snprintf(s->batch[n++], sizeof s->batch[0], "%s",
				 d->d_name);
		} else if (errno == ENOENT) {
			/* another instance renamed it first */
			struct log_line *ln =
			    log_begin(s->log, LOG_DEBUG, "scan.lost_race");
			log_str(ln, "name", d->d_name);
			log_end(ln);
		} else if (!warned) {
			log_syscall(s->log, LOG_WARN, "scan.error", "rename",
				    d->d_name, errno);
			warned = true;
		}
	}
	return n;
}

/* One scan: claim, make durable, report. True when more may remain. */
static bool
scan_pass(struct scan *s)
{
	size_t n = scan_claim_batch(s);

	if (n == 0)
		return false;
	/*
	 * The files are in the instance folder whatever fsync says: report
	 * them, or they would sit there unseen until the next start.
	 */
	if (fsync(s->inst_fd) != 0)
		log_syscall(s->log, LOG_WARN, "scan.error", "fsync", NULL,
			    errno);
	s->claimed += n;
	for (size_t i = 0; i < n && !s->dying; i++)
		s->fn(s->arg, s->batch[i]);
	return n == SCAN_BATCH;
}

static void
scan_arm(struct scan *s, uint64_t delay_ms)
{
	if (loop_timer_arm(s->loop, &s->timer, delay_ms) != 0)
		log_syscall(s->log, LOG_WARN, "scan.error", "timer", NULL,
			    errno);
}

static void
scan_destroy(struct scan *s)
{
	loop_timer_disarm(s->loop, &s->timer);
	if (s->ino_fd >= 0) {
		loop_unwatch(s->loop, s->ino_fd);
		close(s->ino_fd);
	}
	if (s->dir)
		closedir(s->dir);
	free(s->batch);
	free(s);
}

static void
scan_on_timer(struct loop *l, struct loop_timer *t, void *arg)
{
	struct scan *s = arg;
	bool more = false;
	bool ready = true;

	(void)l;
	(void)t;
	s->busy = true;
	if (!s->started) {
		ready = scan_report_existing(s) == 0;
		s->started = ready;
	}
	if (ready && !s->dying)
		more = scan_pass(s);
	s->busy = false;
	if (s->dying) {
		scan_destroy(s);
		return;
	}
	/* a scan_kick() from fn has armed the timer already: keep it */
	if (more)
		scan_arm(s, 0);
	else if (!loop_timer_armed(&s->timer))
		scan_arm(s, s->interval_ms);
}

static void
scan_inotify_close(struct scan *s)
{
	loop_unwatch(s->loop, s->ino_fd);
	close(s->ino_fd);
	s->ino_fd = -1;
}

/* Drains the inotify fd and rescans in this pass (timers run after I/O). */
static void
scan_on_inotify(struct loop *l, int fd, unsigned events, void *arg)
{
	struct scan *s = arg;
	_Alignas(struct inotify_event) char buf[SCAN_INOTIFY_BUF];

	(void)l;
	(void)events;
	for (int i = 0; i < SCAN_INOTIFY_READS; i++) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			log_syscall(s->log, LOG_WARN,
				    "scan.inotify_unavailable", "read", NULL,
				    errno);
			scan_inotify_close(s);
		}
		break;
	}
	scan_arm(s, 0);
}

/*
 * inotify on new/ through /proc/self/fd (inotify wants a path). Failure
 * is not fatal: it is logged once and the periodic scan does the work.
 */
static void
scan_inotify_open(struct scan *s)
{
	char path[64];
	const char *op = "inotify_init1";
	int e;

	s->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (s->ino_fd < 0)
		goto fail;
	snprintf(path, sizeof path, "/proc/self/fd/%d", s->new_fd);
	op = "inotify_add_watch";
	if (inotify_add_watch(s->ino_fd, path,
			      IN_MOVED_TO | IN_CREATE | IN_ONLYDIR) < 0)
		goto fail;
	op = "loop_watch";
	if (loop_watch(s->loop, s->ino_fd, LOOP_READ, scan_on_inotify, s) < 0)
		goto fail;
	return;
fail:
	e = errno;
	if (s->ino_fd >= 0)
		close(s->ino_fd);
	s->ino_fd = -1;
	log_syscall(s->log, LOG_WARN, "scan.inotify_unavailable", op, NULL, e);
}

struct scan *
scan_new(struct loop *l, struct logger *lg, int new_fd, int inst_fd,
	 uint64_t interval_ms, scan_claim_fn *fn, void *arg, char *err,
	 size_t errlen)
{
	struct scan *s;

	if (!l || !fn || new_fd < 0 || inst_fd < 0 || interval_ms == 0) {
		snprintf(err, errlen, "scan: bad arguments");
		return NULL;
	}
	s = calloc(1, sizeof *s);
	if (!s || !(s->batch = malloc(SCAN_BATCH * sizeof s->batch[0]))) {
		snprintf(err, errlen, "scan: %s", strerror(ENOMEM));
		free(s);
		return NULL;
	}
	s->loop = l;
	s->log = lg;
	s->new_fd = new_fd;
	s->inst_fd = inst_fd;
	s->ino_fd = -1;
	s->interval_ms = interval_ms;
	s->fn = fn;
	s->arg = arg;
	loop_timer_init(&s->timer, scan_on_timer, s);
	s->dir = scan_opendir(new_fd);
	if (!s->dir) {
		snprintf(err, errlen, "scan: open new/: %s", strerror(errno));
		goto fail;
	}
	/* the first pass reports, then scans */
	if (loop_timer_arm(l, &s->timer, 0) != 0) {
		snprintf(err, errlen, "scan: timer: %s", strerror(errno));
		goto fail;
	}
	scan_inotify_open(s);
	return s;
fail:
	scan_destroy(s);
	return NULL;
}

void
scan_free(struct scan *s)
{
	if (!s)
		return;
	if (s->busy) {
		s->dying = true;
		return;
	}
	scan_destroy(s);
}

void
scan_kick(struct scan *s)
{
	scan_arm(s, 0);
}

uint64_t
scan_claimed(const struct scan *s)
{
	return s->claimed;
}

bool
scan_started(const struct scan *s)
{
	return s->started;
}

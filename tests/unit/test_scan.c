/*
 * test_scan: the claimer against real directories under /tmp (mkdtemp,
 * removed at the end) and the real loop with a fake clock that only moves
 * when a test says so. Covers: the start-up report of the instance folder,
 * claims through inotify long before the scan interval, the periodic scan
 * and scan_kick() with inotify unavailable (inotify_init1 made to fail
 * with EMFILE through RLIMIT_NOFILE), the SCAN_BATCH limit, two scanners
 * on one new/ (in one process, and racing in two processes: every file
 * claimed exactly once), scan_free() from inside the callback, and
 * scan_started() (files put in the instance folder before the start-up
 * report are reported, later ones are not).
 * alarm() turns a hang into a failure.
 */
#include "scan.h"
#include "log.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BIG_INTERVAL 60000 /* ms: never reached by the fake clock */
#define RACE_FILES 3000
#define PASS(l) CHECK_INT(loop_run_once((l), 0), 0)

struct fake_clock {
	uint64_t now;
};

static uint64_t
fake_now(void *arg)
{
	return ((struct fake_clock *)arg)->now;
}

static void put(int dir, const char *name);

/* What the claim callback saw. */
struct rec {
	char (*names)[256];
	size_t n, cap;
	struct scan *free_me; /* scan_free() it from the callback */
	struct scan *kick;    /* put "kicked2" in kick_dir, scan_kick() it */
	int kick_dir;
};

static void
on_claim(void *arg, const char *name)
{
	struct rec *r = arg;

	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 64;
		r->names = realloc(r->names, r->cap * sizeof r->names[0]);
		if (!r->names)
			exit(1);
	}
	snprintf(r->names[r->n++], sizeof r->names[0], "%s", name);
	if (r->free_me) {
		scan_free(r->free_me);
		r->free_me = NULL;
	}
	if (r->kick) {
		struct scan *s = r->kick;
		r->kick = NULL;
		put(r->kick_dir, "kicked2");
		scan_kick(s);
	}
}

static bool
rec_has(const struct rec *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->names[i], name) == 0)
			return true;
	return false;
}

struct env {
	char root[64];
	int new_fd, inst_fd, inst2_fd, tmp_fd;
	struct fake_clock clock;
	struct loop *loop;
};

static void
env_open(struct env *e)
{
	test_tmpdir(e->root, sizeof e->root, "test_scan");
	e->new_fd = test_subdir(e->root, "new");
	e->inst_fd = test_subdir(e->root, "inst");
	e->inst2_fd = test_subdir(e->root, "inst2");
	e->tmp_fd = test_subdir(e->root, "tmp");
	e->clock.now = 1000;
	e->loop = loop_new();
	if (!e->loop)
		exit(1);
	loop_set_clock(e->loop, fake_now, &e->clock);
}

static void
env_close(struct env *e)
{
	loop_free(e->loop);
	close(e->new_fd);
	close(e->inst_fd);
	close(e->inst2_fd);
	close(e->tmp_fd);
	test_rmtree(e->root);
}

/* A file whose content is its own name. */
static void
put(int dir, const char *name)
{
	test_put(dir, name, name, strlen(name));
}

/* As smtpd does it: written in tmp/, then renamed into new/. */
static void
deliver(struct env *e, const char *name)
{
	put(e->tmp_fd, name);
	if (renameat(e->tmp_fd, name, e->new_fd, name) != 0) {
		perror("renameat");
		exit(1);
	}
}

/* Entries other than "." and "..". */
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
		n += strcmp(de->d_name, ".") != 0 &&
		     strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

/* Every name in r is a file in dir, no name twice, and no other file. */
static bool
rec_matches_dir(const struct rec *r, int dir)
{
	for (size_t i = 0; i < r->n; i++) {
		if (!test_exists(dir, r->names[i]))
			return false;
		for (size_t j = 0; j < i; j++)
			if (strcmp(r->names[i], r->names[j]) == 0)
				return false;
	}
	return count_entries(dir) == (int)r->n;
}

static struct scan *
xscan(struct env *e, int inst_fd, uint64_t interval, struct rec *r)
{
	char err[128];
	struct scan *s = scan_new(e->loop, NULL, e->new_fd, inst_fd, interval,
				  on_claim, r, err, sizeof err);
	if (!s) {
		fprintf(stderr, "scan_new: %s\n", err);
		exit(1);
	}
	return s;
}

static void
test_bad_args(void)
{
	struct env e;
	struct rec r = {0};
	char err[128] = "";
	int fd;

	env_open(&e);
	CHECK(!scan_new(e.loop, NULL, e.new_fd, e.inst_fd, 0, on_claim, &r, err,
			sizeof err));
	CHECK(err[0] != '\0');
	CHECK(!scan_new(e.loop, NULL, -1, e.inst_fd, 10, on_claim, &r, err,
			sizeof err));
	CHECK(!scan_new(e.loop, NULL, e.new_fd, e.inst_fd, 10, NULL, &r, err,
			sizeof err));
	/* new_fd is not a directory */
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	err[0] = '\0';
	CHECK(!scan_new(e.loop, NULL, fd, e.inst_fd, 10, on_claim, &r, err,
			sizeof err));
	CHECK(strstr(err, "new/") != NULL);
	close(fd);
	CHECK_INT(loop_watch_count(e.loop), 0);
	env_close(&e);
}

static void
test_startup(void)
{
	struct env e;
	struct rec r = {0};
	struct scan *s;

	env_open(&e);
	put(e.inst_fd, "old1");
	put(e.inst_fd, "old2");
	put(e.inst_fd, ".hidden");
	CHECK_INT(mkdirat(e.inst_fd, "adir", 0700), 0);
	put(e.new_fd, "new1");
	put(e.new_fd, "new2");
	put(e.new_fd, ".dot"); /* not ours: left alone */
	CHECK_INT(mkdirat(e.new_fd, "subdir", 0700), 0);
	CHECK_INT(symlinkat("new1", e.new_fd, "link"), 0);

	s = xscan(&e, e.inst_fd, BIG_INTERVAL, &r);
	CHECK_INT(r.n, 0); /* nothing reported from scan_new() itself */
	CHECK(!scan_started(s));
	/* put in before the report: the report lists it */
	put(e.inst_fd, "old3");
	PASS(e.loop);
	CHECK(scan_started(s));
	CHECK_INT(r.n, 5);
	/* the instance folder's files come first */
	if (r.n == 5) {
		CHECK(strncmp(r.names[0], "old", 3) == 0);
		CHECK(strncmp(r.names[1], "old", 3) == 0);
		CHECK(strncmp(r.names[2], "old", 3) == 0);
		CHECK(strncmp(r.names[3], "new", 3) == 0);
		CHECK(strncmp(r.names[4], "new", 3) == 0);
	}
	CHECK(rec_has(&r, "old1") && rec_has(&r, "old2"));
	CHECK(rec_has(&r, "old3"));
	CHECK(rec_has(&r, "new1") && rec_has(&r, "new2"));
	CHECK_INT(scan_claimed(s), 2); /* reports are not claims */
	CHECK(test_exists(e.inst_fd, "new1") && test_exists(e.inst_fd, "new2"));
	CHECK(!test_exists(e.new_fd, "new1") && !test_exists(e.new_fd, "new2"));
	CHECK(test_exists(e.new_fd, ".dot"));
	CHECK(test_exists(e.new_fd, "subdir"));
	CHECK(test_exists(e.new_fd, "link"));

	/* later passes report nothing again, nor a file put in the
	 * instance folder after the report (its owner hands it over) */
	put(e.inst_fd, "adopted");
	for (int i = 0; i < 3; i++)
		PASS(e.loop);
	CHECK_INT(r.n, 5);
	CHECK(!rec_has(&r, "adopted"));
	CHECK(scan_started(s));
	scan_free(s);
	free(r.names);
	env_close(&e);
}

/* Runs passes (waiting up to 1 s each) until n claims; returns passes. */
static int
passes_until(struct env *e, const struct scan *s, uint64_t n, int max)
{
	int i;

	for (i = 1; i <= max; i++) {
		CHECK_INT(loop_run_once(e->loop, 1000), 0);
		if (scan_claimed(s) >= n)
			return i;
	}
	return i;
}

static void
test_inotify(void)
{
	struct env e;
	struct rec r = {0};
	struct scan *s;
	char name[32];

	env_open(&e);
	s = xscan(&e, e.inst_fd, BIG_INTERVAL, &r);
	CHECK_INT(loop_watch_count(e.loop), 1); /* the inotify fd */
	PASS(e.loop);
	CHECK_INT(r.n, 0);

	/* the clock stands still: only inotify can trigger these scans */
	deliver(&e, "moved");
	CHECK(passes_until(&e, s, 1, 5) <= 2);
	CHECK_INT(scan_claimed(s), 1);
	CHECK(rec_has(&r, "moved"));
	CHECK(test_exists(e.inst_fd, "moved"));

	put(e.new_fd, "created"); /* IN_CREATE */
	CHECK(passes_until(&e, s, 2, 5) <= 2);
	CHECK(rec_has(&r, "created"));

	/* a burst: all of it, within a few passes */
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof name, "burst%03d", i);
		deliver(&e, name);
	}
	CHECK(passes_until(&e, s, 102, 10) <= 3);
	CHECK_INT(scan_claimed(s), 102);
	CHECK(rec_matches_dir(&r, e.inst_fd));
	CHECK_INT(count_entries(e.new_fd), 0);
	CHECK_INT(e.clock.now, 1000);
	scan_free(s);
	CHECK_INT(loop_watch_count(e.loop), 0);
	free(r.names);
	env_close(&e);
}

/* Calls scan_new() with RLIMIT_NOFILE one above the lowest free fd. */
static struct scan *
scan_without_inotify(struct env *e, struct logger *lg, uint64_t interval,
		     struct rec *r)
{
	struct rlimit old, low;
	char err[128];
	struct scan *s;
	int probe = dup(0);

	close(probe);
	CHECK_INT(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)probe + 1; /* room for the new/ DIR only */
	CHECK_INT(setrlimit(RLIMIT_NOFILE, &low), 0);
	s = scan_new(e->loop, lg, e->new_fd, e->inst_fd, interval, on_claim, r,
		     err, sizeof err);
	CHECK_INT(setrlimit(RLIMIT_NOFILE, &old), 0);
	if (!s) {
		fprintf(stderr, "scan_new: %s\n", err);
		exit(1);
	}
	return s;
}

/* Reads all of path into buf (NUL-terminated). */
static void
slurp(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, cap - 1) : -1;

	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
}

static void
test_periodic(void)
{
	struct env e;
	struct rec r = {0};
	struct scan *s;
	struct logger *lg;
	char logpath[128], logbuf[8192];
	int logfd;

	env_open(&e);
	snprintf(logpath, sizeof logpath, "%s/log", e.root);
	logfd = open(logpath, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	CHECK(logfd >= 0);
	lg = log_start("sender", LOG_DEBUG, logfd);
	CHECK(lg != NULL);
	put(e.new_fd, "before");

	s = scan_without_inotify(&e, lg, 100, &r);
	CHECK_INT(loop_watch_count(e.loop), 0);
	/* first pass: claims what was there */
	PASS(e.loop);
	CHECK_INT(scan_claimed(s), 1);
	CHECK(rec_has(&r, "before"));

	/* nothing notices a new file until the interval is over */
	deliver(&e, "later");
	for (int i = 0; i < 3; i++)
		PASS(e.loop);
	CHECK_INT(scan_claimed(s), 1);
	e.clock.now += 99;
	PASS(e.loop);
	CHECK_INT(scan_claimed(s), 1);
	e.clock.now += 1;
	PASS(e.loop);
	CHECK_INT(scan_claimed(s), 2);
	CHECK(rec_has(&r, "later"));
	CHECK(test_exists(e.inst_fd, "later"));

	/* and again one interval later */
	deliver(&e, "again");
	PASS(e.loop);
	CHECK_INT(scan_claimed(s), 2);
	e.clock.now += 100;
	PASS(e.loop);
	CHECK_INT(scan_claimed(s), 3);

	/* scan_kick(): the next pass, whatever the clock says */
	deliver(&e, "kicked");
	scan_kick(s);
	PASS(e.loop);
	CHECK_INT(scan_claimed(s), 4);
	CHECK(rec_has(&r, "kicked"));
	/* a kick from inside the callback is not lost to the re-arm */
	r.kick = s;
	r.kick_dir = e.new_fd;
	deliver(&e, "kicked1");
	scan_kick(s);
	PASS(e.loop);
	CHECK_INT(scan_claimed(s), 5);
	CHECK(test_exists(e.new_fd, "kicked2"));
	PASS(e.loop);
	CHECK_INT(scan_claimed(s), 6);
	CHECK(rec_has(&r, "kicked2"));
	CHECK(rec_matches_dir(&r, e.inst_fd));

	scan_free(s);
	log_stop(lg);
	close(logfd);
	slurp(logpath, logbuf, sizeof logbuf);
	CHECK(strstr(logbuf, "\"event\":\"scan.inotify_unavailable\"") != NULL);
	CHECK(strstr(logbuf, "\"level\":\"warn\"") != NULL);
	CHECK(strstr(logbuf, "inotify_init1") != NULL);
	free(r.names);
	env_close(&e);
}

static void
test_batch(void)
{
	struct env e;
	struct rec r = {0};
	struct scan *s;
	char name[32];

	env_open(&e);
	for (int i = 0; i < SCAN_BATCH + 10; i++) {
		snprintf(name, sizeof name, "m%04d", i);
		put(e.new_fd, name);
	}
	s = xscan(&e, e.inst_fd, BIG_INTERVAL, &r);
	PASS(e.loop);
	CHECK_INT(scan_claimed(s), SCAN_BATCH);
	CHECK_INT(r.n, SCAN_BATCH);
	CHECK_INT(count_entries(e.new_fd), 10);
	/* the rest in the very next pass, not after the interval */
	PASS(e.loop);
	CHECK_INT(scan_claimed(s), SCAN_BATCH + 10);
	CHECK_INT(r.n, SCAN_BATCH + 10);
	PASS(e.loop);
	CHECK_INT(r.n, SCAN_BATCH + 10);
	CHECK_INT(count_entries(e.new_fd), 0);
	CHECK(rec_matches_dir(&r, e.inst_fd));
	scan_free(s);
	free(r.names);
	env_close(&e);
}

/* Two scanners, one loop: each file lands in exactly one instance. */
static void
test_two_instances(void)
{
	struct env e;
	struct rec ra = {0}, rb = {0};
	struct scan *a, *b;
	char name[32];
	int total = 2 * SCAN_BATCH + 7;

	env_open(&e);
	for (int i = 0; i < total; i++) {
		snprintf(name, sizeof name, "m%04d", i);
		put(e.new_fd, name);
	}
	a = xscan(&e, e.inst_fd, BIG_INTERVAL, &ra);
	b = xscan(&e, e.inst2_fd, BIG_INTERVAL, &rb);
	for (int i = 0; i < 6; i++)
		PASS(e.loop);
	CHECK_INT(scan_claimed(a) + scan_claimed(b), total);
	CHECK_INT(ra.n + rb.n, total);
	CHECK(ra.n > 0 && rb.n > 0);
	CHECK(rec_matches_dir(&ra, e.inst_fd));
	CHECK(rec_matches_dir(&rb, e.inst2_fd));
	CHECK_INT(count_entries(e.new_fd), 0);
	scan_free(a);
	scan_free(b);
	free(ra.names);
	free(rb.names);
	env_close(&e);
}

/* Runs one scanner until new/ is empty and a pass claims nothing. */
static void
race_run(struct env *e, struct logger *lg, int inst_fd, struct rec *r,
	 int go_fd)
{
	char c, err[128];
	struct scan *s = scan_new(e->loop, lg, e->new_fd, inst_fd, BIG_INTERVAL,
				  on_claim, r, err, sizeof err);

	if (!s) {
		fprintf(stderr, "scan_new: %s\n", err);
		exit(1);
	}
	uint64_t before;

	/* start together, so both list the same files */
	if (read(go_fd, &c, 1) != 1)
		exit(2);
	do {
		before = scan_claimed(s);
		e->clock.now += BIG_INTERVAL; /* a full scan every pass */
		CHECK_INT(loop_run_once(e->loop, 0), 0);
	} while (scan_claimed(s) != before || count_entries(e->new_fd) > 0);
	CHECK_INT(scan_claimed(s), r->n);
	scan_free(s);
}

/* Two processes racing for the same files: ENOENT is a lost race. */
static void
test_race(void)
{
	struct env e;
	struct rec r = {0};
	char name[32], logpath[128];
	static char logbuf[LOG_RING_SLOTS * 256];
	int go[2], status = -1, logfd;
	pid_t pid;
	struct logger *lg;

	env_open(&e);
	for (int i = 0; i < RACE_FILES; i++) {
		snprintf(name, sizeof name, "m%05d", i);
		put(e.new_fd, name);
	}
	CHECK_INT(pipe(go), 0);
	fflush(stderr);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct rec rc = {0};
		test_failures = 0; /* report only the child's own */
		race_run(&e, NULL, e.inst2_fd, &rc, go[0]);
		CHECK(rec_matches_dir(&rc, e.inst2_fd));
		free(rc.names);
		loop_free(e.loop);
		_exit(test_failures ? 1 : 0);
	}
	snprintf(logpath, sizeof logpath, "%s/log", e.root);
	logfd = open(logpath, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	lg = log_start("sender", LOG_DEBUG, logfd);
	CHECK(lg != NULL);
	CHECK_INT(write(go[1], "gg", 2), 2);
	race_run(&e, lg, e.inst_fd, &r, go[0]);
	log_stop(lg);
	close(logfd);
	slurp(logpath, logbuf, sizeof logbuf);
	/* losing a race is not an error worth a warning */
	CHECK(strstr(logbuf, "scan.error") == NULL);
	CHECK(strstr(logbuf, "\"level\":\"warn\"") == NULL);
	CHECK_INT(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(rec_matches_dir(&r, e.inst_fd));
	CHECK_INT(count_entries(e.inst_fd) + count_entries(e.inst2_fd),
		  RACE_FILES);
	CHECK_INT(count_entries(e.new_fd), 0);
	{
		size_t lost = 0;
		for (const char *p = logbuf; (p = strstr(p, "scan.lost_race"));
		     p++)
			lost++;
		fprintf(stderr, "race: %zu of %d claimed here, %zu lost\n", r.n,
			RACE_FILES, lost);
	}
	close(go[0]);
	close(go[1]);
	free(r.names);
	env_close(&e);
}

/* scan_free() from the callback: the pass stops, nothing is touched. */
static void
test_free_in_callback(void)
{
	struct env e;
	struct rec r = {0};
	char name[32];

	env_open(&e);
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof name, "m%d", i);
		put(e.new_fd, name);
	}
	r.free_me = xscan(&e, e.inst_fd, BIG_INTERVAL, &r);
	PASS(e.loop);
	CHECK_INT(r.n, 1);
	CHECK_INT(loop_watch_count(e.loop), 0);
	PASS(e.loop);
	CHECK_INT(r.n, 1);
	/* the batch was claimed before the callbacks: files are safe */
	CHECK_INT(count_entries(e.inst_fd), 5);
	free(r.names);
	env_close(&e);
}

int
main(void)
{
	alarm(120);
	test_bad_args();
	test_startup();
	test_inotify();
	test_periodic();
	test_batch();
	test_two_instances();
	test_race();
	test_free_in_callback();
	return test_summary();
}

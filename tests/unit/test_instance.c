/*
 * test_instance: instance folders against real directories under /tmp
 * (mkdtemp, removed at the end), the real loop with a fake clock that
 * only moves when a test says so, and a logger writing to a file.
 * Covers: the beat interval and the staleness decision; the own folder's
 * lock (a second open is refused as busy after the wait; a folder renamed
 * away while we waited for its lock is replaced by a fresh one); adoption
 * of stale sibling folders (messages and journals moved, the dead
 * heartbeat dropped, the claim callback called for messages only and
 * only from the timer, fresh/malformed/hidden/non-folders left alone,
 * empty orphans removed); a locked orphan never adopted and logged once;
 * a leftover .adopted.* folder (nested too) finished at open; the ENOENT
 * race (two adopters in one process, and two processes sweeping the same
 * orphans: every file lands exactly once); the own folder taken away:
 * the lost callback, once; no adoption after instance_stop_adopting().
 * alarm() turns a hang into a failure.
 */
#include "instance.h"
#include "log.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ORPHAN_MS 1000
#define BEAT_MS 250 /* instance_beat_ms(ORPHAN_MS) */
#define RACE_DEAD 20
#define RACE_FILES 50

struct fake_clock {
	uint64_t now;
};

static uint64_t
fake_now(void *arg)
{
	return ((struct fake_clock *)arg)->now;
}

/* What the callbacks saw. */
struct rec {
	char names[256][64];
	size_t n;
	int lost;
};

static void
on_claim(void *arg, const char *name)
{
	struct rec *r = arg;

	if (r->n < sizeof r->names / sizeof r->names[0])
		snprintf(r->names[r->n], sizeof r->names[0], "%s", name);
	r->n++;
}

static void
on_lost(void *arg)
{
	((struct rec *)arg)->lost++;
}

static bool
rec_has(const struct rec *r, const char *name)
{
	for (size_t i = 0; i < r->n && i < 256; i++)
		if (strcmp(r->names[i], name) == 0)
			return true;
	return false;
}

struct env {
	char root[64];
	char logpath[128];
	int spool, logfd;
	struct logger *log;
	struct fake_clock clock;
	struct loop *loop;
};

static void
env_open(struct env *e)
{
	test_tmpdir(e->root, sizeof e->root, "test_instance");
	e->spool = test_subdir(e->root, "spool");
	snprintf(e->logpath, sizeof e->logpath, "%s/log", e->root);
	e->logfd = open(e->logpath, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	e->log = log_start("sender", LOG_DEBUG, e->logfd);
	e->clock.now = 1000;
	e->loop = loop_new();
	if (e->logfd < 0 || !e->log || !e->loop)
		exit(1);
	loop_set_clock(e->loop, fake_now, &e->clock);
}

/* Stops the logger and returns what it wrote (malloc'ed). */
static char *
env_log(struct env *e)
{
	static const size_t cap = 1 << 20;
	char *buf = malloc(cap);
	int fd;
	ssize_t n;

	log_stop(e->log);
	e->log = NULL;
	fd = open(e->logpath, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 && buf ? read(fd, buf, cap - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (!buf)
		exit(1);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void
env_close(struct env *e)
{
	log_stop(e->log);
	loop_free(e->loop);
	close(e->logfd);
	close(e->spool);
	test_rmtree(e->root);
}

static size_t
count_str(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* A file whose content is its own name. */
static void
put(int dir, const char *name)
{
	test_put(dir, name, name, strlen(name));
}

static ino_t
ino_of(int dir, const char *name)
{
	struct stat st;
	return fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st.st_ino
								 : 0;
}

/* Sets dir/name's times to secs_ago seconds back. */
static void
age(int dir, const char *name, int secs_ago)
{
	struct timespec ts[2];

	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec -= secs_ago;
	ts[1] = ts[0];
	if (utimensat(dir, name, ts, AT_SYMLINK_NOFOLLOW) != 0) {
		perror(name);
		exit(1);
	}
}

/* A dead sender's folder: files, a heartbeat secs_ago seconds old (none
 * when secs_ago < 0: then the folder's own mtime is that old). */
static int
dead_folder(struct env *e, const char *name, const char *const *files,
	    int beat_secs_ago)
{
	int fd = test_subdir(e->root, "spool/x"); /* renamed below */

	for (size_t i = 0; files && files[i]; i++)
		put(fd, files[i]);
	if (beat_secs_ago >= 0) {
		put(fd, ".heartbeat");
		age(fd, ".heartbeat", beat_secs_ago);
	}
	if (renameat(e->spool, "x", e->spool, name) != 0) {
		perror(name);
		exit(1);
	}
	if (beat_secs_ago < 0)
		age(e->spool, name, 10);
	return fd;
}

static struct instance *
xopen(struct env *e, const char *name, uint64_t wait_ms)
{
	enum instance_err why;
	char err[256];
	struct instance *in = instance_open(e->spool, name, ORPHAN_MS, wait_ms,
					    e->log, &why, err, sizeof err);
	if (!in) {
		fprintf(stderr, "instance_open %s: %s\n", name, err);
		exit(1);
	}
	CHECK_INT(why, INSTANCE_OK);
	return in;
}

/* Moves the fake clock one beat on and runs a pass. */
static void
beat(struct env *e)
{
	e->clock.now += BEAT_MS;
	CHECK_INT(loop_run_once(e->loop, 0), 0);
}

static void
test_beat_and_stale(void)
{
	CHECK_INT(instance_beat_ms(1000), 250);
	CHECK_INT(instance_beat_ms(100), INSTANCE_BEAT_MIN_MS);
	CHECK_INT(instance_beat_ms(2000), 500);
	CHECK_INT(instance_beat_ms(60000), 15000);
	CHECK_INT(instance_beat_ms(24 * 3600 * 1000), INSTANCE_BEAT_MAX_MS);
	CHECK(!instance_stale(10000, 10000, 1000));
	CHECK(!instance_stale(10000, 11000, 1000)); /* exactly at the limit */
	CHECK(instance_stale(10000, 11001, 1000));
	CHECK(!instance_stale(20000, 10000, 1000)); /* beat in the future */
	CHECK(instance_stale(0, 60001, 60000));
}

static void
test_lock(void)
{
	struct env e;
	struct instance *a, *b;
	enum instance_err why = INSTANCE_OK;
	char err[256] = "";
	struct timespec t0, t1;
	int own;

	env_open(&e);
	a = xopen(&e, "a", 0);
	own = openat(e.spool, "a", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(own >= 0);
	CHECK(test_exists(own, ".heartbeat"));
	/* the folder is locked: a second holder is refused */
	CHECK_INT(flock(own, LOCK_EX | LOCK_NB), -1);
	CHECK_INT(errno, EWOULDBLOCK);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	b = instance_open(e.spool, "a", ORPHAN_MS, 300, e.log, &why, err,
			  sizeof err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(b == NULL);
	CHECK_INT(why, INSTANCE_BUSY);
	CHECK_STR(err, "instance a is in use by another sender");
	/* it waited for the lock before giving up */
	CHECK((t1.tv_sec - t0.tv_sec) * 1000 +
		  (t1.tv_nsec - t0.tv_nsec) / 1000000 >=
	      300);

	/* released with the instance (as by the kernel at exit), and a
	 * stopped sender leaves no heartbeat behind */
	instance_free(a);
	CHECK(!test_exists(own, ".heartbeat"));
	CHECK_INT(flock(own, LOCK_EX | LOCK_NB), 0);
	CHECK_INT(flock(own, LOCK_UN), 0);
	b = xopen(&e, "a", 0);
	instance_free(b);
	close(own);
	env_close(&e);
}

/* An adopter holds our old folder's lock, then renames it away: the
 * start-up gets a fresh folder, not the adopted one. */
static void
test_lock_then_renamed_away(void)
{
	struct env e;
	struct instance *a;
	int go[2], old, status = -1;
	ino_t old_ino;
	char c;
	pid_t pid;

	env_open(&e);
	old = test_subdir(e.root, "spool/a");
	put(old, "m1");
	old_ino = ino_of(e.spool, "a");
	CHECK_INT(pipe(go), 0);
	fflush(stderr);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int fd = openat(e.spool, "a", O_RDONLY | O_DIRECTORY);
		if (fd < 0 || flock(fd, LOCK_EX) != 0 ||
		    write(go[1], "l", 1) != 1)
			_exit(1);
		usleep(300 * 1000);
		if (renameat(e.spool, "a", e.spool, "taken") != 0)
			_exit(1);
		_exit(0); /* the lock goes with the process */
	}
	CHECK_INT(read(go[0], &c, 1), 1);
	a = xopen(&e, "a", 3000);
	CHECK_INT(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(test_exists(e.spool, "taken"));
	CHECK(ino_of(e.spool, "a") != old_ino);
	{
		struct stat st;
		CHECK_INT(fstat(instance_fd(a), &st), 0);
		CHECK(st.st_ino == ino_of(e.spool, "a"));
	}
	CHECK(!test_exists(instance_fd(a), "m1"));
	CHECK(test_exists(old, "m1"));
	instance_free(a);
	close(old);
	close(go[0]);
	close(go[1]);
	env_close(&e);
}

static void
test_adopt_moves_files(void)
{
	static const char *const b_files[] = {"m1", "m2", ".m1.journal", NULL};
	static const char *const c_files[] = {"m3", ".m3.journal", NULL};
	static const char *const fresh_files[] = {"f1", NULL};
	struct env e;
	struct rec r = {0};
	struct instance *a;
	int own, fd;
	ino_t beat_ino;
	char *log;

	env_open(&e);
	close(dead_folder(&e, "b", b_files, 30));
	close(dead_folder(&e, "fresh", fresh_files, 0));
	close(dead_folder(&e, "malformed", fresh_files, 30));
	close(dead_folder(&e, ".hidden", fresh_files, 30));
	close(dead_folder(&e, "empty", NULL, -1)); /* no heartbeat: mtime */
	put(e.spool, "plainfile");
	age(e.spool, "plainfile", 30);

	a = xopen(&e, "a", 0);
	own = instance_fd(a);
	beat_ino = ino_of(own, ".heartbeat");
	/* adopted at start, before anyone reads the folder: no callback */
	CHECK_INT(instance_start(a, e.loop, on_claim, on_lost, &r), 0);
	CHECK_INT(r.n, 0);
	CHECK(test_exists(own, "m1") && test_exists(own, "m2"));
	CHECK(test_exists(own, ".m1.journal"));
	CHECK(!test_exists(e.spool, "b"));
	CHECK(!test_exists(own, ".adopted.b"));
	CHECK_INT(ino_of(own, ".heartbeat"), beat_ino); /* ours, not b's */
	CHECK(!test_exists(e.spool, "empty"));
	CHECK(!test_exists(own, ".adopted.empty"));
	/* not orphans */
	CHECK(test_exists(e.spool, "fresh") && !test_exists(own, "f1"));
	CHECK(test_exists(e.spool, "malformed"));
	CHECK(test_exists(e.spool, ".hidden"));
	CHECK(test_exists(e.spool, "plainfile"));

	/* a sender dies while we run: the timer adopts, the callback gets
	 * its messages (not its journals) */
	close(dead_folder(&e, "c", c_files, 30));
	CHECK_INT(loop_run_once(e.loop, 0), 0);
	CHECK(test_exists(e.spool, "c")); /* not before the next beat */
	beat(&e);
	CHECK(!test_exists(e.spool, "c"));
	CHECK(test_exists(own, "m3") && test_exists(own, ".m3.journal"));
	CHECK_INT(r.n, 1);
	CHECK(rec_has(&r, "m3"));
	CHECK_INT(r.lost, 0);

	/* our heartbeat is touched on each beat */
	age(own, ".heartbeat", 30);
	beat(&e);
	{
		struct stat st;
		CHECK_INT(fstatat(own, ".heartbeat", &st, 0), 0);
		CHECK(time(NULL) - st.st_mtim.tv_sec < 5);
	}
	/* the fresh one is adopted once it went stale */
	fd = openat(e.spool, "fresh", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	age(fd, ".heartbeat", 30);
	close(fd);
	beat(&e);
	CHECK(!test_exists(e.spool, "fresh"));
	CHECK(rec_has(&r, "f1"));
	CHECK_INT(r.n, 2);

	instance_free(a);
	log = env_log(&e);
	CHECK_INT(count_str(log, "\"event\":\"spool.adopted\""), 4);
	CHECK(strstr(log, "\"orphan\":\"b\",\"messages\":2,\"journals\":1,"
			  "\"resumed\":false") != NULL);
	CHECK(strstr(log, "\"orphan\":\"empty\",\"messages\":0") != NULL);
	CHECK(strstr(log, "spool.error") == NULL);
	free(log);
	env_close(&e);
}

static void
test_locked_not_adopted(void)
{
	static const char *const files[] = {"m1", ".m1.journal", NULL};
	struct env e;
	struct rec r = {0};
	struct instance *a;
	int held;
	char *log;

	env_open(&e);
	held = dead_folder(&e, "b", files, 30);
	/* its sender lives (stopped, say): it holds the lock */
	CHECK_INT(flock(held, LOCK_EX | LOCK_NB), 0);
	a = xopen(&e, "a", 0);
	CHECK_INT(instance_start(a, e.loop, on_claim, on_lost, &r), 0);
	CHECK_INT(instance_adopt(a, "b"), 0);
	for (int i = 0; i < 4; i++)
		beat(&e);
	CHECK(test_exists(e.spool, "b") && test_exists(held, "m1"));
	CHECK(!test_exists(instance_fd(a), "m1"));
	CHECK_INT(r.n, 0);

	/* its sender died: adopted on the next beat */
	close(held);
	beat(&e);
	CHECK(!test_exists(e.spool, "b"));
	CHECK(test_exists(instance_fd(a), "m1"));
	CHECK_INT(r.n, 1);
	CHECK(rec_has(&r, "m1"));
	instance_free(a);
	log = env_log(&e);
	/* five looks at it, one line */
	CHECK_INT(count_str(log, "\"event\":\"spool.orphan_locked\""), 1);
	CHECK(strstr(log, "\"orphan\":\"b\"") != NULL);
	free(log);
	env_close(&e);
}

static void
test_leftover_finished_at_open(void)
{
	struct env e;
	struct instance *a;
	int own, z, y;
	char *log;

	env_open(&e);
	own = test_subdir(e.root, "spool/a");
	put(own, "mine");
	/* a crash mid-adoption of z, which had itself been adopting y */
	z = test_subdir(e.root, "spool/a/.adopted.z");
	put(z, "m9");
	put(z, ".m9.journal");
	put(z, ".heartbeat");
	y = test_subdir(e.root, "spool/a/.adopted.z/.adopted.y");
	put(y, "m8");
	close(y);
	close(z);
	/* and one whose files were partly moved already */
	z = test_subdir(e.root, "spool/a/.adopted.w");
	put(z, "m7");
	close(z);
	put(own, "m6");

	a = xopen(&e, "a", 0);
	CHECK(test_exists(own, "mine"));
	CHECK(test_exists(own, "m9") && test_exists(own, ".m9.journal"));
	CHECK(test_exists(own, "m8") && test_exists(own, "m7") &&
	      test_exists(own, "m6"));
	CHECK(!test_exists(own, ".adopted.z"));
	CHECK(!test_exists(own, ".adopted.y"));
	CHECK(!test_exists(own, ".adopted.w"));
	CHECK(test_exists(own, ".heartbeat"));
	instance_free(a);
	log = env_log(&e);
	CHECK_INT(count_str(log, "\"resumed\":true"), 3);
	CHECK(strstr(log, "spool.error") == NULL);
	free(log);
	close(own);
	env_close(&e);
}

/* A name already in the own folder is never replaced: the adopted
 * folder stays and is finished by a later beat once the way is clear. */
static void
test_collision_kept(void)
{
	struct env e;
	struct rec r = {0};
	struct instance *a;
	int own, v;
	char buf[16] = "";
	char *log;

	env_open(&e);
	own = test_subdir(e.root, "spool/a");
	put(own, "dup");
	v = test_subdir(e.root, "spool/a/.adopted.v");
	put(v, "other");
	put(v, "dup2");
	CHECK_INT(renameat(v, "dup2", v, "dup"), 0);
	a = xopen(&e, "a", 0);
	CHECK(test_exists(own, ".adopted.v"));
	CHECK(test_exists(own, "other"));
	{
		int fd = openat(own, "dup", O_RDONLY | O_CLOEXEC);
		CHECK(fd >= 0 && read(fd, buf, sizeof buf - 1) == 3);
		close(fd);
		CHECK_STR(buf, "dup"); /* ours, not the adopted one */
	}
	CHECK_INT(instance_start(a, e.loop, on_claim, on_lost, &r), 0);
	beat(&e);
	CHECK(test_exists(own, ".adopted.v")); /* still in the way */
	CHECK_INT(unlinkat(own, "dup", 0), 0);
	beat(&e);
	CHECK(!test_exists(own, ".adopted.v"));
	CHECK(test_exists(own, "dup"));
	CHECK_INT(r.n, 1);
	CHECK(rec_has(&r, "dup"));
	instance_free(a);
	log = env_log(&e);
	CHECK_INT(count_str(log, "\"op\":\"rename_adopted\""), 1);
	CHECK(strstr(log, "\"orphan\":\"v\",\"messages\":1,"
			  "\"journals\":0,\"left\":1") != NULL);
	free(log);
	close(v);
	close(own);
	env_close(&e);
}

/* Two adopters in one process: the second finds the folder gone. */
static void
test_enoent_race(void)
{
	static const char *const files[] = {"m1", NULL};
	struct env e;
	struct instance *a, *b;
	char *log;

	env_open(&e);
	a = xopen(&e, "a", 0);
	b = xopen(&e, "b", 0);
	close(dead_folder(&e, "c", files, 30));
	CHECK_INT(instance_adopt(a, "c"), 1);
	CHECK_INT(instance_adopt(b, "c"), 0);
	CHECK(test_exists(instance_fd(a), "m1"));
	CHECK(!test_exists(instance_fd(b), "m1"));

	/* and the other way round */
	close(dead_folder(&e, "d", files, 30));
	CHECK_INT(instance_adopt(b, "d"), 1);
	CHECK_INT(instance_adopt(a, "d"), 0);
	CHECK(test_exists(instance_fd(b), "m1"));
	CHECK_INT(instance_adopt(a, "nothing-there"), 0);
	instance_free(a);
	instance_free(b);
	log = env_log(&e);
	CHECK(strstr(log, "spool.error") == NULL);
	free(log);
	env_close(&e);
}

/* Adopts everything stale it finds, once go_fd says go. */
static void
race_run(struct env *e, const char *name, int go_fd)
{
	struct rec r = {0};
	struct instance *in = xopen(e, name, 0);
	char c;

	if (read(go_fd, &c, 1) != 1)
		exit(2);
	CHECK_INT(instance_start(in, e->loop, on_claim, on_lost, &r), 0);
	instance_free(in);
}

static int
count_files(int dir, const char *name)
{
	int fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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

/* Two processes sweep the same orphans: each file lands exactly once. */
static void
test_two_adopters_race(void)
{
	struct env e;
	char name[32];
	int go[2], status = -1;
	pid_t pid;
	char *log;

	env_open(&e);
	for (int i = 0; i < RACE_DEAD; i++) {
		int fd;
		snprintf(name, sizeof name, "spool/d%02d", i);
		fd = test_subdir(e.root, name);
		for (int j = 0; j < RACE_FILES; j++) {
			char f[32];
			snprintf(f, sizeof f, "m%02d-%02d", i, j);
			put(fd, f);
			snprintf(f, sizeof f, ".m%02d-%02d.journal", i, j);
			put(fd, f);
		}
		put(fd, ".heartbeat");
		age(fd, ".heartbeat", 30);
		close(fd);
	}
	CHECK_INT(pipe(go), 0);
	fflush(stderr);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		test_failures = 0;
		e.log = NULL; /* the logger thread stayed in the parent */
		race_run(&e, "b", go[0]);
		_exit(test_failures ? 1 : 0);
	}
	CHECK_INT(write(go[1], "gg", 2), 2);
	race_run(&e, "a", go[0]);
	CHECK_INT(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	for (int i = 0; i < RACE_DEAD; i++) {
		snprintf(name, sizeof name, "d%02d", i);
		CHECK(!test_exists(e.spool, name));
	}
	CHECK_INT(count_files(e.spool, "a") + count_files(e.spool, "b"),
		  RACE_DEAD * RACE_FILES);
	for (int i = 0; i < RACE_DEAD; i++) {
		for (int j = 0; j < RACE_FILES; j++) {
			int a, b;
			snprintf(name, sizeof name, "a/m%02d-%02d", i, j);
			a = test_exists(e.spool, name);
			name[0] = 'b';
			b = test_exists(e.spool, name);
			CHECK_INT(a + b, 1);
			/* the journal went with its message */
			snprintf(name, sizeof name, "%c/.m%02d-%02d.journal",
				 a ? 'a' : 'b', i, j);
			CHECK(test_exists(e.spool, name));
		}
	}
	log = env_log(&e);
	CHECK(strstr(log, "spool.error") == NULL);
	fprintf(stderr, "race: %d of %d files adopted here\n",
		count_files(e.spool, "a"), RACE_DEAD * RACE_FILES);
	free(log);
	close(go[0]);
	close(go[1]);
	env_close(&e);
}

static void
test_lost_folder(void)
{
	static const char *const files[] = {"m1", NULL};
	struct env e;
	struct rec r = {0};
	struct instance *a;
	char *log;

	env_open(&e);
	a = xopen(&e, "a", 0);
	CHECK_INT(instance_start(a, e.loop, on_claim, on_lost, &r), 0);
	beat(&e);
	CHECK_INT(r.lost, 0);
	CHECK(!instance_lost(a));
	/* adopted while this process stalled (no lock on this filesystem) */
	CHECK_INT(renameat(e.spool, "a", e.spool, "elsewhere"), 0);
	close(dead_folder(&e, "b", files, 30));
	beat(&e);
	CHECK_INT(r.lost, 1);
	CHECK(instance_lost(a));
	/* nothing new was started: b stays for someone else */
	CHECK(test_exists(e.spool, "b"));
	CHECK_INT(r.n, 0);
	beat(&e);
	beat(&e);
	CHECK_INT(r.lost, 1); /* once */
	instance_free(a);
	/* the taken folder is not ours to tidy */
	CHECK(test_exists(e.spool, "elsewhere/.heartbeat"));
	log = env_log(&e);
	CHECK(strstr(log, "\"level\":\"error\",\"svc\":\"sender\","
			  "\"event\":\"spool.lost\"") != NULL);
	free(log);
	env_close(&e);
}

static void
test_stop_adopting(void)
{
	static const char *const files[] = {"m1", NULL};
	struct env e;
	struct rec r = {0};
	struct instance *a;

	env_open(&e);
	a = xopen(&e, "a", 0);
	CHECK_INT(instance_start(a, e.loop, on_claim, on_lost, &r), 0);
	instance_stop_adopting(a);
	close(dead_folder(&e, "b", files, 30));
	age(instance_fd(a), ".heartbeat", 30);
	beat(&e);
	CHECK(test_exists(e.spool, "b"));
	CHECK_INT(r.n, 0);
	{
		/* still beating: a stopping sender is not an orphan */
		struct stat st;
		CHECK_INT(fstatat(instance_fd(a), ".heartbeat", &st, 0), 0);
		CHECK(time(NULL) - st.st_mtim.tv_sec < 5);
	}
	instance_free(a);
	env_close(&e);
}

int
main(void)
{
	alarm(120);
	test_beat_and_stale();
	test_lock();
	test_lock_then_renamed_away();
	test_adopt_moves_files();
	test_locked_not_adopted();
	test_leftover_finished_at_open();
	test_collision_kept();
	test_enoent_race();
	test_two_adopters_race();
	test_lost_folder();
	test_stop_adopting();
	return test_summary();
}

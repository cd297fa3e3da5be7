/*
 * test_maildir: the Maildir writer against a real directory under /tmp
 * (mkdtemp, removed at the end). Covers the layout, the tmp/ -> new/ group
 * commit with its callbacks, abort, unique names, tmp/ cleaning and the
 * error paths (an fd closed behind maildir's back), without needing root.
 */
#include "maildir.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HOST "mx.example"
#define MANY 50
#define UNIQUE_N 10000

struct done_log {
	int calls;
	int err;
	int order; /* position in the flush, from a shared counter */
};

static int done_seq;

static void
on_done(struct maildir_file *f, int err, void *arg)
{
	struct done_log *d = arg;
	(void)f;
	d->calls++;
	d->err = err;
	d->order = done_seq++;
}

/* Entries in root/sub other than . and .. (-1 if it cannot be read). */
static int
count_entries(const char *root, const char *sub)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", root, sub);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* Reads root/sub/name into buf; returns its length or -1. */
static ssize_t
read_file(const char *root, const char *sub, const char *name, char *buf,
	  size_t cap)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s/%s", root, sub, name);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, cap);
	close(fd);
	return n;
}

static bool
exists(const char *root, const char *sub, const char *name)
{
	char path[1024];
	struct stat st;
	snprintf(path, sizeof path, "%s/%s/%s", root, sub, name);
	return stat(path, &st) == 0;
}

static void
test_open_creates_dirs(const char *base)
{
	char path[512], err[256] = "";
	struct stat st;
	snprintf(path, sizeof path, "%s/a/b/maildir", base);
	struct maildir *md = maildir_open(path, HOST, err, sizeof err);
	CHECK(md != NULL);
	if (!md)
		return;
	CHECK_STR(maildir_path(md), path);
	static const char *const sub[] = {"tmp", "new", "cur"};
	for (size_t i = 0; i < 3; i++) {
		char p[600];
		snprintf(p, sizeof p, "%s/%s", path, sub[i]);
		CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode));
		CHECK_INT(st.st_mode & 0777, 0700);
	}
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0700);
	maildir_close(md);

	/* opening an existing maildir works too */
	md = maildir_open(path, HOST, err, sizeof err);
	CHECK(md != NULL);
	maildir_close(md);
	maildir_close(NULL);

	/* a path under a regular file cannot be created */
	char file[600];
	snprintf(file, sizeof file, "%s/plain", base);
	int fd = open(file, O_CREAT | O_WRONLY, 0600);
	CHECK(fd >= 0);
	close(fd);
	snprintf(path, sizeof path, "%s/plain/maildir", base);
	err[0] = '\0';
	CHECK(maildir_open(path, HOST, err, sizeof err) == NULL);
	CHECK(strstr(err, "plain") != NULL);
	CHECK(maildir_open(base, "", err, sizeof err) == NULL);
}

static void
test_one_message(struct maildir *md, const char *root)
{
	static const char msg[] =
	    "X-Original-From: <a@b>\nSubject: hi\n\nbody\n";
	struct maildir_file f;
	struct done_log d = {0};
	char buf[256];
	struct stat st;

	CHECK_INT(maildir_create(md, &f), 0);
	CHECK(f.fd >= 0);
	CHECK(exists(root, "tmp", f.name));
	CHECK_INT(maildir_write(&f, msg, 10), 0);
	CHECK_INT(maildir_write(&f, msg + 10, sizeof msg - 1 - 10), 0);
	CHECK_INT(f.written, sizeof msg - 1);
	maildir_commit(md, &f, on_done, &d);
	CHECK_INT(maildir_pending(md), 1);
	CHECK_INT(d.calls, 0);
	CHECK(exists(root, "tmp", f.name));
	CHECK(!exists(root, "new", f.name));

	maildir_flush(md);
	CHECK_INT(maildir_pending(md), 0);
	CHECK_INT(d.calls, 1);
	CHECK_INT(d.err, 0);
	CHECK_INT(f.fd, -1);
	ssize_t n = read_file(root, "new", f.name, buf, sizeof buf);
	CHECK_MEM(buf, n < 0 ? 0 : n, msg, sizeof msg - 1);
	CHECK_INT(count_entries(root, "tmp"), 0);
	CHECK_INT(count_entries(root, "new"), 1);
	char p[1024];
	snprintf(p, sizeof p, "%s/new/%s", root, f.name);
	CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600);

	/* a second flush with nothing queued calls nothing */
	maildir_flush(md);
	CHECK_INT(d.calls, 1);
	unlink(p);
}

static void
test_many_in_one_flush(struct maildir *md, const char *root)
{
	static struct maildir_file f[MANY];
	struct done_log d[MANY];
	char body[MANY][64], buf[64];

	memset(d, 0, sizeof d);
	done_seq = 0;
	for (int i = 0; i < MANY; i++) {
		int len = snprintf(body[i], sizeof body[i], "message %d\n", i);
		CHECK_INT(maildir_create(md, &f[i]), 0);
		CHECK_INT(maildir_write(&f[i], body[i], (size_t)len), 0);
		maildir_commit(md, &f[i], on_done, &d[i]);
	}
	CHECK_INT(maildir_pending(md), MANY);
	CHECK_INT(count_entries(root, "tmp"), MANY);
	maildir_flush(md);
	CHECK_INT(maildir_pending(md), 0);
	CHECK_INT(count_entries(root, "tmp"), 0);
	CHECK_INT(count_entries(root, "new"), MANY);
	for (int i = 0; i < MANY; i++) {
		CHECK_INT(d[i].calls, 1);
		CHECK_INT(d[i].err, 0);
		CHECK_INT(d[i].order, i); /* FIFO */
		CHECK_INT(f[i].fd, -1);
		ssize_t n = read_file(root, "new", f[i].name, buf, sizeof buf);
		CHECK_MEM(buf, n < 0 ? 0 : n, body[i], strlen(body[i]));
		char p[1024];
		snprintf(p, sizeof p, "%s/new/%s", root, f[i].name);
		unlink(p);
	}
}

static void
test_abort(struct maildir *md, const char *root)
{
	struct maildir_file f;
	CHECK_INT(maildir_create(md, &f), 0);
	CHECK_INT(maildir_write(&f, "partial", 7), 0);
	CHECK_INT(count_entries(root, "tmp"), 1);
	maildir_abort(md, &f);
	CHECK_INT(f.fd, -1);
	CHECK_INT(count_entries(root, "tmp"), 0);
	CHECK_INT(count_entries(root, "new"), 0);
	CHECK_INT(maildir_pending(md), 0);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_unique_names(struct maildir *md, const char *root)
{
	char **names = calloc(UNIQUE_N, sizeof *names);
	CHECK(names != NULL);
	if (!names)
		return;
	struct maildir_file f;
	int ok = 0, prefix_ok = 0, format_ok = 0, counter_ok = 0;
	unsigned long long last_q = 0;
	for (int i = 0; i < UNIQUE_N; i++) {
		if (maildir_create(md, &f) != 0)
			break;
		ok++;
		size_t qlen = strlen(f.queue_id);
		if (strncmp(f.name, f.queue_id, qlen) == 0 &&
		    strcmp(f.name + qlen, "." HOST) == 0)
			prefix_ok++;
		long long sec;
		unsigned usec;
		long pid;
		unsigned long long q = 0;
		char end;
		if (sscanf(f.queue_id, "%lld.M%6uP%ldQ%llu%c", &sec, &usec,
			   &pid, &q, &end) == 4 &&
		    pid == (long)getpid() && usec < 1000000)
			format_ok++;
		/* the per-maildir counter moves on every create */
		if (i == 0 || q > last_q)
			counter_ok++;
		last_q = q;
		names[i] = strdup(f.name);
		maildir_abort(md, &f);
	}
	CHECK_INT(ok, UNIQUE_N);
	CHECK_INT(prefix_ok, UNIQUE_N);
	CHECK_INT(format_ok, UNIQUE_N);
	CHECK_INT(counter_ok, UNIQUE_N);
	qsort(names, (size_t)ok, sizeof *names, cmp_str);
	int dups = 0;
	for (int i = 1; i < ok; i++)
		if (names[i] && names[i - 1] &&
		    strcmp(names[i], names[i - 1]) == 0)
			dups++;
	CHECK_INT(dups, 0);
	for (int i = 0; i < ok; i++)
		free(names[i]);
	free(names);
	CHECK_INT(count_entries(root, "tmp"), 0);
}

/* '/' and ':' escaped as in the Maildir convention; long hosts capped. */
static void
test_host_sanitised(const char *base)
{
	char path[512], err[256];
	struct maildir_file f;
	snprintf(path, sizeof path, "%s/hosts", base);
	struct maildir *md = maildir_open(path, "mx/a:b", err, sizeof err);
	CHECK(md != NULL);
	if (!md)
		return;
	CHECK_INT(maildir_create(md, &f), 0);
	size_t qlen = strlen(f.queue_id);
	CHECK_STR(f.name + qlen, ".mx\\057a\\072b");
	maildir_abort(md, &f);
	maildir_close(md);

	char longhost[400];
	memset(longhost, 'h', sizeof longhost - 1);
	longhost[sizeof longhost - 1] = '\0';
	longhost[100] = ':'; /* an escape near the cap */
	md = maildir_open(path, longhost, err, sizeof err);
	CHECK(md != NULL);
	if (!md)
		return;
	CHECK_INT(maildir_create(md, &f), 0);
	CHECK(strlen(f.name) <= MAILDIR_NAME_MAX);
	CHECK(strlen(f.name) < 200);
	CHECK(strstr(f.name, "\\072") != NULL);
	maildir_abort(md, &f);
	maildir_close(md);
}

static void
touch(const char *root, const char *name)
{
	char p[1024];
	snprintf(p, sizeof p, "%s/tmp/%s", root, name);
	int fd = open(p, O_CREAT | O_WRONLY, 0600);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
}

static void
test_clean_tmp(struct maildir *md, const char *root)
{
	struct maildir_file f;
	char p[1024];
	touch(root, "1700000000.M1P2Q3." HOST);	       /* ours: removed */
	touch(root, "1700000000.M1P2Q4.other.host");   /* other host: kept */
	touch(root, "1700000000.M1P2Q5.x" HOST);       /* not ".<host>": kept */
	touch(root, "1700000000.M1P2Q6." HOST ".bak"); /* kept */
	snprintf(p, sizeof p, "%s/tmp/dir." HOST, root);
	CHECK_INT(mkdir(p, 0700), 0); /* not a regular file: kept */
	CHECK_INT(maildir_create(md, &f), 0);
	close(f.fd); /* a leftover of "an earlier run" */
	f.fd = -1;

	CHECK_INT(maildir_clean_tmp(md), 2);
	CHECK_INT(count_entries(root, "tmp"), 4);
	CHECK(!exists(root, "tmp", f.name));
	CHECK(!exists(root, "tmp", "1700000000.M1P2Q3." HOST));
	CHECK(exists(root, "tmp", "1700000000.M1P2Q4.other.host"));
	CHECK(exists(root, "tmp", "1700000000.M1P2Q5.x" HOST));
	CHECK(exists(root, "tmp", "dir." HOST));
	CHECK_INT(maildir_clean_tmp(md), 0);

	rmdir(p);
	static const char *const left[] = {
	    "1700000000.M1P2Q4.other.host",
	    "1700000000.M1P2Q5.x" HOST,
	    "1700000000.M1P2Q6." HOST ".bak",
	};
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s/tmp/%s", root, left[i]);
		unlink(p);
	}
	CHECK_INT(count_entries(root, "tmp"), 0);
}

static void
test_write_error(struct maildir *md, const char *root)
{
	struct maildir_file f;
	CHECK_INT(maildir_create(md, &f), 0);
	CHECK_INT(maildir_write(&f, "abc", 3), 0);
	close(f.fd); /* behind maildir's back: the fd number is now bad */
	errno = 0;
	CHECK_INT(maildir_write(&f, "def", 3), -1);
	CHECK_INT(errno, EBADF);
	CHECK_INT(f.written, 3);
	f.fd = -1;
	errno = 0;
	CHECK_INT(maildir_write(&f, "def", 3), -1);
	CHECK_INT(errno, EBADF);
	maildir_abort(md, &f);
	CHECK_INT(count_entries(root, "tmp"), 0);
	CHECK_INT(count_entries(root, "new"), 0);
}

/*
 * nfiles queued, file bad (0-based) broken; mode 0 closes its fd but keeps
 * the number, mode 1 sets fd = -1. Only that callback sees an error.
 */
static void
flush_with_bad(struct maildir *md, const char *root, int nfiles, int bad,
	       int mode)
{
	struct maildir_file f[3];
	struct done_log d[3];
	memset(d, 0, sizeof d);
	for (int i = 0; i < nfiles; i++) {
		CHECK_INT(maildir_create(md, &f[i]), 0);
		CHECK_INT(maildir_write(&f[i], "data\n", 5), 0);
		maildir_commit(md, &f[i], on_done, &d[i]);
	}
	close(f[bad].fd);
	if (mode == 1)
		f[bad].fd = -1;
	maildir_flush(md);
	for (int i = 0; i < nfiles; i++) {
		CHECK_INT(d[i].calls, 1);
		CHECK_INT(f[i].fd, -1);
		if (i == bad) {
			CHECK_INT(d[i].err, EBADF);
			CHECK(!exists(root, "new", f[i].name));
			CHECK(!exists(root, "tmp", f[i].name));
		} else {
			CHECK_INT(d[i].err, 0);
			CHECK(exists(root, "new", f[i].name));
		}
	}
	CHECK_INT(count_entries(root, "tmp"), 0);
	CHECK_INT(count_entries(root, "new"), nfiles - 1);
	for (int i = 0; i < nfiles; i++) {
		char p[1024];
		snprintf(p, sizeof p, "%s/new/%s", root, f[i].name);
		unlink(p);
	}
}

static void
test_flush_error(struct maildir *md, const char *root)
{
	flush_with_bad(md, root, 3, 1, 0); /* batch path, stale fd number */
	flush_with_bad(md, root, 3, 2, 1); /* batch path, fd = -1 */
	flush_with_bad(md, root, 1, 0, 0); /* single-file path */
	flush_with_bad(md, root, 1, 0, 1);
}

struct chain {
	struct maildir *md;
	struct maildir_file next;
	struct done_log next_done;
	int calls;
};

/* A done callback that accepts the next message: it waits for the next flush.
 */
static void
on_done_commit(struct maildir_file *f, int err, void *arg)
{
	struct chain *c = arg;
	(void)f;
	c->calls++;
	if (err == 0 && maildir_create(c->md, &c->next) == 0)
		maildir_commit(c->md, &c->next, on_done, &c->next_done);
}

static void
test_commit_from_callback(struct maildir *md, const char *root)
{
	struct maildir_file f;
	struct chain c = {.md = md};
	CHECK_INT(maildir_create(md, &f), 0);
	maildir_commit(md, &f, on_done_commit, &c);
	maildir_flush(md);
	CHECK_INT(c.calls, 1);
	CHECK_INT(maildir_pending(md), 1);
	CHECK_INT(c.next_done.calls, 0);
	maildir_flush(md);
	CHECK_INT(c.next_done.calls, 1);
	CHECK_INT(c.next_done.err, 0);
	CHECK_INT(maildir_pending(md), 0);
	CHECK_INT(count_entries(root, "new"), 2);
	char p[1024];
	snprintf(p, sizeof p, "%s/new/%s", root, f.name);
	unlink(p);
	snprintf(p, sizeof p, "%s/new/%s", root, c.next.name);
	unlink(p);
}

int
main(void)
{
	char base[] = "/tmp/test_maildir-XXXXXX";
	char root[600], err[256];
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return 1;
	}
	test_open_creates_dirs(base);
	test_host_sanitised(base);

	snprintf(root, sizeof root, "%s/md", base);
	struct maildir *md = maildir_open(root, HOST, err, sizeof err);
	CHECK(md != NULL);
	if (md) {
		test_one_message(md, root);
		test_many_in_one_flush(md, root);
		test_abort(md, root);
		test_unique_names(md, root);
		test_clean_tmp(md, root);
		test_write_error(md, root);
		test_flush_error(md, root);
		test_commit_from_callback(md, root);
		maildir_close(md);
	}
	test_rmtree(base);
	return test_summary();
}

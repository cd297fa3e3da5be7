/*
 * test.h: the few assertions our unit tests use. Each test file is one
 * executable; a failed check prints both values and the test goes on, so
 * one run shows every failure. main() ends with `return test_summary();`.
 */
#ifndef MTA_TEST_H
#define MTA_TEST_H

#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int test_failures;
static int test_checks;

#define CHECK(cond)                                                            \
	do {                                                                   \
		test_checks++;                                                 \
		if (!(cond)) {                                                 \
			test_failures++;                                       \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, \
				__LINE__, #cond);                              \
		}                                                              \
	} while (0)

#define CHECK_INT(a, b)                                                        \
	do {                                                                   \
		long long a_ = (long long)(a), b_ = (long long)(b);            \
		test_checks++;                                                 \
		if (a_ != b_) {                                                \
			test_failures++;                                       \
			fprintf(stderr,                                        \
				"%s:%d: %s == %s failed: %lld != %lld\n",      \
				__FILE__, __LINE__, #a, #b, a_, b_);           \
		}                                                              \
	} while (0)

#define CHECK_STR(a, b)                                                        \
	do {                                                                   \
		const char *a_ = (a), *b_ = (b);                               \
		test_checks++;                                                 \
		if (!a_ || !b_ || strcmp(a_, b_) != 0) {                       \
			test_failures++;                                       \
			fprintf(stderr,                                        \
				"%s:%d: %s == %s failed:\n  got  \"%s\"\n  "   \
				"want \"%s\"\n",                               \
				__FILE__, __LINE__, #a, #b,                    \
				a_ ? a_ : "(null)", b_ ? b_ : "(null)");       \
		}                                                              \
	} while (0)

/* Compares len bytes; prints both as escaped strings on mismatch. */
#define CHECK_MEM(a, alen, b, blen)                                            \
	do {                                                                   \
		test_checks++;                                                 \
		if ((size_t)(alen) != (size_t)(blen) ||                        \
		    memcmp((a), (b), (size_t)(alen)) != 0) {                   \
			test_failures++;                                       \
			fprintf(stderr, "%s:%d: %s == %s failed\n  got  ",     \
				__FILE__, __LINE__, #a, #b);                   \
			test_print_escaped((a), (alen));                       \
			fprintf(stderr, "\n  want ");                          \
			test_print_escaped((b), (blen));                       \
			fprintf(stderr, "\n");                                 \
		}                                                              \
	} while (0)

static inline void
test_print_escaped(const void *p, size_t n)
{
	const unsigned char *s = p;
	fputc('"', stderr);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r')
			fputs("\\r", stderr);
		else if (s[i] == '\n')
			fputs("\\n", stderr);
		else if (s[i] < 0x20 || s[i] >= 0x7f)
			fprintf(stderr, "\\x%02x", s[i]);
		else
			fputc(s[i], stderr);
	}
	fputc('"', stderr);
}

/* Scratch folders: made under /tmp, removed whole at the end. */
static inline int
test_rm_entry(const char *path, const struct stat *st, int flag,
	      struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static inline void
test_rmtree(const char *path)
{
	nftw(path, test_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Creates root/sub (it must not exist) and opens it; exits on failure. */
static inline int
test_subdir(const char *root, const char *sub)
{
	char path[256];
	int fd;

	snprintf(path, sizeof path, "%s/%s", root, sub);
	if (mkdir(path, 0700) != 0 ||
	    (fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		perror(path);
		exit(1);
	}
	return fd;
}

/* Makes a fresh folder /tmp/<tag>-XXXXXX into buf; exits on failure. */
static inline void
test_tmpdir(char *buf, size_t cap, const char *tag)
{
	snprintf(buf, cap, "/tmp/%s-XXXXXX", tag);
	if (!mkdtemp(buf)) {
		perror("mkdtemp");
		exit(1);
	}
}

/* Writes dir/name with len bytes of data (replacing it); exits on
 * failure. */
static inline void
test_put(int dir, const char *name, const char *data, size_t len)
{
	int fd =
	    openat(dir, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) != 0) {
		perror(name);
		exit(1);
	}
}

static inline bool
test_exists(int dir, const char *name)
{
	struct stat st;
	return fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static inline int
test_summary(void)
{
	fprintf(stderr, "%d checks, %d failed\n", test_checks, test_failures);
	return test_failures ? 1 : 0;
}

#endif

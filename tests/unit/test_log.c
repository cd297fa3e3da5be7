/*
 * test_log: JSON escaping, line format, level filtering, truncation at the
 * slot limit, drop counting and its report, flush on stop, a write error
 * that must not stall the worker, the logger thread's signal mask, and a
 * two-thread run (worth running under TSan as well as ASan).
 */
#include "log.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define TS_LEN 24 /* 2026-11-26T06:00:00.123Z */
#define OUT_MAX (4u << 20)

/* ---- helpers ----------------------------------------------------------- */

static void
nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int
temp_fd(void)
{
	char path[] = "/tmp/test_log-XXXXXX";
	int fd = mkstemp(path);

	if (fd >= 0)
		unlink(path);
	return fd;
}

/* Reads the whole temp file into a NUL-terminated malloc'd buffer. */
static char *
slurp(int fd, size_t *len)
{
	char *buf = malloc(OUT_MAX + 1);
	ssize_t n = buf ? pread(fd, buf, OUT_MAX, 0) : -1;

	*len = n > 0 ? (size_t)n : 0;
	if (buf)
		buf[*len] = '\0';
	return buf;
}

/* Next '\n'-terminated line (newline included) from buf at *off. */
static const char *
next_line(const char *buf, size_t len, size_t *off, size_t *llen)
{
	const char *s = buf + *off, *nl;

	if (*off >= len || !(nl = memchr(s, '\n', len - *off)))
		return NULL;
	*llen = (size_t)(nl - s) + 1;
	*off += *llen;
	return s;
}

/* Decimal digits at s, at most n of them (buffers are not NUL-terminated). */
static unsigned long long
num(const char *s, size_t n)
{
	unsigned long long v = 0;

	for (size_t i = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++)
		v = v * 10 + (unsigned long long)(s[i] - '0');
	return v;
}

/*
 * Checks the ts value (RFC 3339 UTC with ms, within a minute of now) and
 * copies the line into out with the value replaced by "TS".
 */
static int
strip_ts(const char *line, size_t len, char *out, size_t cap)
{
	static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	static const char pre[] = "{\"ts\":\"";
	const size_t plen = sizeof pre - 1;
	struct tm tm = {0};
	const char *t = line + plen;

	if (len < plen + TS_LEN + 1 || memcmp(line, pre, plen) != 0 ||
	    t[TS_LEN] != '"' || len - TS_LEN + 2 >= cap)
		return -1;
	for (size_t i = 0; i < TS_LEN; i++)
		if (pat[i] == 'd' ? (t[i] < '0' || t[i] > '9') : t[i] != pat[i])
			return -1;
	tm.tm_year = (int)num(t, 4) - 1900;
	tm.tm_mon = (int)num(t + 5, 2) - 1;
	tm.tm_mday = (int)num(t + 8, 2);
	tm.tm_hour = (int)num(t + 11, 2);
	tm.tm_min = (int)num(t + 14, 2);
	tm.tm_sec = (int)num(t + 17, 2);
	if (llabs((long long)(timegm(&tm) - time(NULL))) > 60)
		return -1;
	memcpy(out, pre, plen);
	memcpy(out + plen, "TS", 2);
	memcpy(out + plen + 2, t + TS_LEN, len - plen - TS_LEN);
	out[len - TS_LEN + 2] = '\0';
	return 0;
}

/* Well-formed UTF-8 by decoding (independent of log.c's table). */
static size_t
utf8_ok(const unsigned char *s, size_t n)
{
	size_t len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 0;
	uint32_t cp = s[0] & (0x7f >> len);
	static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};

	if (len == 0 || s[0] > 0xf7 || n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* Checks a JSON string at s[*i] (opening quote) per RFC 8259 section 7. */
static int
json_string_ok(const unsigned char *s, size_t n, size_t *i)
{
	size_t k = *i + 1;

	while (k < n && s[k] != '"') {
		if (s[k] == '\\') {
			if (k + 1 >= n)
				return 0;
			if (s[k + 1] == 'u') {
				for (int h = 0; h < 4; h++)
					if (k + 2 + h >= n ||
					    !strchr("0123456789abcdef",
						    s[k + 2 + h]))
						return 0;
				k += 6;
			} else if (strchr("\"\\/bfnrt", s[k + 1])) {
				k += 2;
			} else {
				return 0;
			}
		} else if (s[k] < 0x20) {
			return 0;
		} else if (s[k] >= 0x80) {
			size_t u = utf8_ok(s + k, n - k);
			if (!u)
				return 0;
			k += u;
		} else {
			k++;
		}
	}
	*i = k + 1;
	return k < n;
}

/* A flat object of string / number / bool / null values, then "\n". */
static int
json_line_ok(const char *line, size_t n)
{
	const unsigned char *s = (const unsigned char *)line;
	size_t i = 1;

	if (n < 3 || s[0] != '{' || s[n - 1] != '\n' || s[n - 2] != '}')
		return 0;
	n--;
	for (;;) {
		if (i >= n || s[i] != '"' || !json_string_ok(s, n, &i))
			return 0;
		if (i >= n || s[i++] != ':')
			return 0;
		if (i < n && s[i] == '"') {
			if (!json_string_ok(s, n, &i))
				return 0;
		} else if (i + 4 <= n && (!memcmp(s + i, "true", 4) ||
					  !memcmp(s + i, "null", 4))) {
			i += 4;
		} else if (i + 5 <= n && !memcmp(s + i, "false", 5)) {
			i += 5;
		} else {
			size_t d = i + (s[i] == '-');
			while (d < n &&
			       ((s[d] >= '0' && s[d] <= '9') || s[d] == '.'))
				d++;
			if (d == i || s[d - 1] == '-')
				return 0;
			i = d;
		}
		if (i < n && s[i] == ',') {
			i++;
			continue;
		}
		return i + 1 == n && s[i] == '}';
	}
}

/* ---- log_json_escape -------------------------------------------------- */

struct esc_case {
	const char *in;
	size_t n;
	size_t cap;
	const char *want;
};

static const struct esc_case esc_cases[] = {
    {"plain text", 10, 64, "plain text"},
    {"a\"b", 3, 64, "a\\\"b"},
    {"a\\b", 3, 64, "a\\\\b"},
    {"\n\r\t", 3, 64, "\\n\\r\\t"},
    {"\b\f\x01\x1f\x7f", 5, 64, "\\u0008\\u000c\\u0001\\u001f\\u007f"},
    {"a\0b", 3, 64, "a\\u0000b"},
    {"/ ~", 3, 64, "/ ~"},
    /* well-formed UTF-8 is kept (RFC 3629) */
    {"\xc3\xa9", 2, 64, "\xc3\xa9"},
    {"\xe2\x82\xac", 3, 64, "\xe2\x82\xac"},
    {"\xf0\x9f\x98\x80", 4, 64, "\xf0\x9f\x98\x80"},
    {"\xf4\x8f\xbf\xbf", 4, 64, "\xf4\x8f\xbf\xbf"},
    /* anything else is escaped byte by byte */
    {"\x80", 1, 64, "\\u0080"},
    {"\xff", 1, 64, "\\u00ff"},
    {"\xc3", 1, 64, "\\u00c3"},
    {"\xc3(", 2, 64, "\\u00c3("},
    {"\xc0\xaf", 2, 64, "\\u00c0\\u00af"},
    {"\xe0\x80\xaf", 3, 64, "\\u00e0\\u0080\\u00af"},
    {"\xed\xa0\x80", 3, 64, "\\u00ed\\u00a0\\u0080"},
    {"\xf4\x90\x80\x80", 4, 64, "\\u00f4\\u0090\\u0080\\u0080"},
    {"\xf0\x9f\x98", 3, 64, "\\u00f0\\u009f\\u0098"},
    /* truncation keeps whole escapes and whole sequences only */
    {"abc", 3, 0, ""},
    {"abc", 3, 2, "ab"},
    {"a\"", 2, 2, "a"},
    {"a\"", 2, 3, "a\\\""},
    {"a\x01", 2, 6, "a"},
    {"a\x01", 2, 7, "a\\u0001"},
    {"\xc3\xa9", 2, 1, ""},
    {"a\xe2\x82\xac", 4, 3, "a"},
    {"a\xe2\x82\xac", 4, 4, "a\xe2\x82\xac"},
    {"\xf0\x9f\x98\x80", 4, 3, ""},
    {"\xff", 1, 5, ""},
};

static void
test_escape(void)
{
	for (size_t i = 0; i < sizeof esc_cases / sizeof esc_cases[0]; i++) {
		const struct esc_case *c = &esc_cases[i];
		char out[80];
		size_t want = strlen(c->want);

		memset(out, '#', sizeof out);
		size_t got = log_json_escape(out, c->cap, c->in, c->n);
		CHECK_MEM(out, got, c->want, want);
		CHECK(out[c->cap] == '#'); /* nothing written past cap */
	}
}

/* ---- line format ------------------------------------------------------ */

#define HDR "{\"ts\":\"TS\",\"level\":"

static void
test_format(void)
{
	static const char *const want[] = {
	    HDR "\"info\",\"svc\":\"smtpd\",\"event\":\"conn.open\","
		"\"ip\":\"192.0.2.7\",\"conn\":42}\n",
	    HDR "\"debug\",\"svc\":\"smtpd\",\"event\":\"t\",\"neg\":-5,"
		"\"min\":-9223372036854775808,\"max\":18446744073709551615,"
		"\"yes\":true,\"no\":false,\"delay\":1.234,\"d2\":0.005,"
		"\"d3\":0.000,\"d4\":60.000,\"n\":\"ab\",\"nul\":null}\n",
	    HDR "\"warn\",\"svc\":\"smtpd\",\"event\":\"q\\\"e\","
		"\"k\\\\\":\"x\\ny\\u0001\xc3\xa9\\u00ff\"}\n",
	    HDR "\"error\",\"svc\":\"smtpd\",\"event\":\"\"}\n",
	};
	size_t len, off = 0, ll, n = 0;
	int fd = temp_fd();
	struct logger *lg = log_start("smtpd", LOG_DEBUG, fd);
	struct log_line *l;

	CHECK(fd >= 0 && lg != NULL);
	l = log_begin(lg, LOG_INFO, "conn.open");
	log_str(l, "ip", "192.0.2.7");
	log_uint(l, "conn", 42);
	log_end(l);
	l = log_begin(lg, LOG_DEBUG, "t");
	log_int(l, "neg", -5);
	log_int(l, "min", LLONG_MIN);
	log_uint(l, "max", ULLONG_MAX);
	log_bool(l, "yes", 7);
	log_bool(l, "no", 0);
	log_ms(l, "delay", 1234);
	log_ms(l, "d2", 5);
	log_ms(l, "d3", 0);
	log_ms(l, "d4", 60000);
	log_strn(l, "n", "abc", 2);
	log_str(l, "nul", NULL);
	log_end(l);
	l = log_begin(lg, LOG_WARN, "q\"e");
	log_str(l, "k\\", "x\ny\x01\xc3\xa9\xff");
	log_end(l);
	log_end(log_begin(lg, LOG_ERROR, NULL));
	CHECK_INT(log_dropped(lg), 0);
	log_stop(lg);

	char *buf = slurp(fd, &len);
	const char *line;
	while (buf && (line = next_line(buf, len, &off, &ll))) {
		char out[LOG_LINE_MAX];
		CHECK(json_line_ok(line, ll));
		CHECK_INT(strip_ts(line, ll, out, sizeof out), 0);
		if (n < sizeof want / sizeof want[0])
			CHECK_STR(out, want[n]);
		n++;
	}
	CHECK_INT(n, sizeof want / sizeof want[0]);
	CHECK_INT(off, len);
	free(buf);
	close(fd);
}

/* NULL lines and loggers are accepted everywhere. */
static void
test_null(void)
{
	CHECK(log_begin(NULL, LOG_ERROR, "x") == NULL);
	log_str(NULL, "k", "v");
	log_strn(NULL, "k", "v", 1);
	log_int(NULL, "k", 1);
	log_uint(NULL, "k", 1);
	log_ms(NULL, "k", 1);
	log_bool(NULL, "k", 1);
	log_end(NULL);
	log_stop(NULL);
	CHECK_INT(log_dropped(NULL), 0);
	CHECK_STR(log_level_name(LOG_DEBUG), "debug");
	CHECK_STR(log_level_name(LOG_INFO), "info");
	CHECK_STR(log_level_name(LOG_WARN), "warn");
	CHECK_STR(log_level_name(LOG_ERROR), "error");
}

static void
test_levels(void)
{
	static const char *const want[] = {
	    HDR "\"warn\",\"svc\":\"sender\",\"event\":\"w\"}\n",
	    HDR "\"error\",\"svc\":\"sender\",\"event\":\"e\"}\n",
	};
	size_t len, off = 0, ll, n = 0;
	int fd = temp_fd();
	struct logger *lg = log_start("sender", LOG_WARN, fd);
	const char *line;

	CHECK(log_begin(lg, LOG_DEBUG, "d") == NULL);
	CHECK(log_begin(lg, LOG_INFO, "i") == NULL);
	log_end(log_begin(lg, LOG_WARN, "w"));
	log_end(log_begin(lg, LOG_ERROR, "e"));
	CHECK_INT(log_dropped(lg), 0); /* filtered is not dropped */
	log_stop(lg);
	char *buf = slurp(fd, &len);
	while (buf && (line = next_line(buf, len, &off, &ll))) {
		char out[LOG_LINE_MAX];
		CHECK_INT(strip_ts(line, ll, out, sizeof out), 0);
		if (n < 2)
			CHECK_STR(out, want[n]);
		n++;
	}
	CHECK_INT(n, 2);
	free(buf);
	close(fd);
}

/* ---- truncation at the slot limit ------------------------------------ */

#define TRUNC "\"truncated\":true}\n"
/* header of a line with event "e", ts still 24 bytes long */
#define EHDR                                                                   \
	"{\"ts\":\"2026-11-26T06:00:00.123Z\",\"level\":\"info\","             \
	"\"svc\":\"smtpd\",\"event\":\"e\""
/* fields may use LOG_LINE_MAX minus the room kept for the mark and "}\n" */
#define ROOM                                                                   \
	(LOG_LINE_MAX - (sizeof ",\"truncated\":true}\n" - 1) -                \
	 (sizeof EHDR - 1))

/*
 * Checks a truncated line: the value of "v", after skip bytes, is a run of
 * whole units, closed by the quote and the mark.
 */
static void
check_cut(const char *line, size_t ll, size_t skip, const char *unit)
{
	const char *v = memmem(line, ll, ",\"v\":\"", 6);
	const char *end = line + ll - strlen(TRUNC) - 2;
	size_t ul = strlen(unit);

	CHECK(v != NULL && ll + ul > LOG_LINE_MAX && ll <= LOG_LINE_MAX);
	if (!v)
		return;
	v += 6 + skip;
	CHECK(memcmp(end, "\"," TRUNC, strlen(TRUNC) + 2) == 0);
	CHECK(end >= v && (size_t)(end - v) % ul == 0);
	for (; v + ul <= end; v += ul)
		CHECK(memcmp(v, unit, ul) == 0);
}

static void
test_truncation(void)
{
	static char big[3 * LOG_LINE_MAX];
	size_t len, off = 0;
	int fd = temp_fd();
	struct logger *lg = log_start("smtpd", LOG_INFO, fd);
	struct log_line *l;

	/* a string value fills the line exactly; later fields are dropped */
	memset(big, 'a', sizeof big - 1);
	l = log_begin(lg, LOG_INFO, "e");
	log_str(l, "v", big);
	log_int(l, "after", 1);
	log_end(l);
	/* a number at the limit fits, one byte past it does not */
	l = log_begin(lg, LOG_INFO, "e");
	log_strn(l, "v", big, ROOM - 7 - 10);
	log_int(l, "n", 12345); /* ,"n":12345 is 10 bytes */
	log_end(l);
	l = log_begin(lg, LOG_INFO, "e");
	log_strn(l, "v", big, ROOM - 7 - 9);
	log_int(l, "n", 12345);
	log_end(l);
	/* a key that cannot fit drops its field */
	l = log_begin(lg, LOG_INFO, "e");
	log_str(l, big, "x");
	log_end(l);
	/* escapes and UTF-8 sequences are never split */
	for (size_t i = 0; i + 2 < sizeof big; i += 2)
		memcpy(big + i, "\xc3\xa9", 2);
	l = log_begin(lg, LOG_INFO, "e");
	log_strn(l, "v", big + 1, sizeof big - 4); /* "?" then whole é */
	log_end(l);
	memset(big, '\x01', sizeof big - 1);
	l = log_begin(lg, LOG_INFO, "e");
	log_str(l, "v", big);
	log_end(l);
	log_stop(lg);

	char *buf = slurp(fd, &len);
	const char *line[6];
	size_t lens[6];
	for (int i = 0; i < 6; i++) {
		line[i] = buf ? next_line(buf, len, &off, &lens[i]) : NULL;
		CHECK(line[i] != NULL);
		if (!line[i])
			goto out;
		CHECK(json_line_ok(line[i], lens[i]));
	}
	CHECK_INT(lens[0], LOG_LINE_MAX);
	check_cut(line[0], lens[0], 0, "a");
	CHECK_INT(lens[1], LOG_LINE_MAX - 17);
	CHECK(memcmp(line[1] + lens[1] - 12, ",\"n\":12345}\n", 12) == 0);
	CHECK_INT(lens[2], LOG_LINE_MAX - 9);
	CHECK(memcmp(line[2] + lens[2] - 21, "a\"," TRUNC, 21) == 0);
	CHECK_INT(lens[3], sizeof EHDR - 1 + 1 + strlen(TRUNC));
	CHECK(memcmp(line[3] + lens[3] - 22, "\"e\"," TRUNC, 22) == 0);
	/* the first byte is a stray continuation byte: escaped, then whole é */
	CHECK(memmem(line[4], lens[4], ",\"v\":\"\\u00a9\xc3\xa9", 14) != NULL);
	check_cut(line[4], lens[4], 6, "\xc3\xa9");
	check_cut(line[5], lens[5], 0, "\\u0001");
out:
	free(buf);
	close(fd);
}

/* ---- a pipe reader thread ---------------------------------------------- */

struct reader {
	int fd;
	pthread_t thread;
	char *buf;
	size_t len, cap;
	atomic_size_t lines; /* complete lines seen so far */
};

static void *
reader_run(void *arg)
{
	struct reader *r = arg;

	for (;;) {
		if (r->len + 1 >= r->cap) {
			char *nb = realloc(r->buf, r->cap * 2);
			if (!nb)
				return NULL;
			r->buf = nb;
			r->cap = r->cap * 2;
		}
		ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r->buf[r->len] = '\0';
			return NULL;
		}
		for (ssize_t i = 0; i < n; i++)
			if (r->buf[r->len + (size_t)i] == '\n' &&
			    r->len + (size_t)i > 0 &&
			    r->buf[r->len + (size_t)i - 1] == '}')
				atomic_fetch_add(&r->lines, 1);
		r->len += (size_t)n;
	}
}

static int
reader_start(struct reader *r, int fd)
{
	memset(r, 0, sizeof *r);
	r->fd = fd;
	r->cap = 1 << 16;
	r->buf = malloc(r->cap);
	atomic_init(&r->lines, 0);
	return r->buf ? pthread_create(&r->thread, NULL, reader_run, r) : -1;
}

/* Waits (up to ~10 s) until the reader has seen n lines. */
static int
reader_wait(struct reader *r, size_t n)
{
	for (int i = 0; i < 10000; i++) {
		if (atomic_load(&r->lines) >= n)
			return 0;
		nap_ms(1);
	}
	return -1;
}

/* Skips the blank filler lines; returns the next log line or NULL. */
static const char *
reader_next(struct reader *r, size_t *off, size_t *ll)
{
	const char *line;

	while ((line = next_line(r->buf, r->len, off, ll)) && *ll == 1)
		;
	return line;
}

/* Fills a pipe completely so the logger's next write() blocks. */
static void
fill_pipe(int fd)
{
	char nl[4096];
	int fl = fcntl(fd, F_GETFL);

	memset(nl, '\n', sizeof nl);
	(void)fcntl(fd, F_SETPIPE_SZ, 4096); /* smaller is faster, else 64K */
	CHECK(fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0);
	while (write(fd, nl, sizeof nl) > 0)
		;
	while (write(fd, nl, 1) > 0)
		;
	CHECK(errno == EAGAIN);
	CHECK(fcntl(fd, F_SETFL, fl) == 0);
}

/* ---- drops -------------------------------------------------------------- */

static void
test_drops(void)
{
	int p[2];
	struct reader r;
	struct log_line *l = NULL;
	uint64_t want = 0;
	size_t off = 0, ll;
	char out[LOG_LINE_MAX], exp[128];

	CHECK(pipe(p) == 0);
	fill_pipe(p[1]);
	struct logger *lg = log_start("smtpd", LOG_INFO, p[1]);
	for (unsigned i = 0; i < LOG_RING_SLOTS; i++) {
		l = log_begin(lg, LOG_INFO, "fill");
		CHECK(l != NULL);
		log_uint(l, "i", i);
		log_end(l);
	}
	/* the logger is stuck in write(): the ring is full */
	for (int i = 0; i < 5; i++)
		CHECK(log_begin(lg, LOG_INFO, "lost") == NULL);
	CHECK(log_begin(lg, LOG_DEBUG, "filtered") == NULL);
	CHECK_INT(log_dropped(lg), 5);

	CHECK_INT(reader_start(&r, p[0]), 0);
	CHECK_INT(reader_wait(&r, LOG_RING_SLOTS), 0);
	l = NULL;
	/* the logger frees the slots just after the reader sees the bytes */
	for (int i = 0; i < 10000 && !l; i++) {
		want = log_dropped(lg);
		l = log_begin(lg, LOG_INFO, "after");
		if (!l)
			nap_ms(1);
	}
	CHECK(l != NULL && want >= 5);
	log_str(l, "k", "v");
	log_end(l);
	log_stop(lg);
	close(p[1]);
	pthread_join(r.thread, NULL);

	for (unsigned i = 0; i < LOG_RING_SLOTS; i++) {
		const char *line = reader_next(&r, &off, &ll);
		CHECK(line && strip_ts(line, ll, out, sizeof out) == 0);
		snprintf(exp, sizeof exp,
			 HDR "\"info\",\"svc\":\"smtpd\",\"event\":\"fill\","
			     "\"i\":%u}\n",
			 i);
		if (line)
			CHECK_STR(out, exp);
	}
	snprintf(exp, sizeof exp,
		 HDR "\"warn\",\"svc\":\"smtpd\",\"event\":\"log.dropped\","
		     "\"dropped\":%llu}\n",
		 (unsigned long long)want);
	const char *line = reader_next(&r, &off, &ll);
	CHECK(line && strip_ts(line, ll, out, sizeof out) == 0);
	if (line)
		CHECK_STR(out, exp);
	line = reader_next(&r, &off, &ll);
	CHECK(line && strip_ts(line, ll, out, sizeof out) == 0);
	if (line)
		CHECK_STR(out, HDR "\"info\",\"svc\":\"smtpd\","
				   "\"event\":\"after\",\"k\":\"v\"}\n");
	CHECK(reader_next(&r, &off, &ll) == NULL);
	free(r.buf);
	close(p[0]);
}

/* ---- stop flushes, errors do not stall -------------------------------- */

static void
test_flush_on_stop(void)
{
	enum { N = LOG_RING_SLOTS - 24 };
	int fd = temp_fd();
	struct logger *lg = log_start("smtpd", LOG_INFO, fd);
	size_t len, off = 0, ll, n = 0;
	const char *line;

	for (unsigned i = 0; i < N; i++) {
		struct log_line *l = log_begin(lg, LOG_INFO, "x");
		CHECK(l != NULL);
		log_uint(l, "i", i);
		log_end(l);
	}
	log_stop(lg); /* at once: whatever is queued must still be written */
	char *buf = slurp(fd, &len);
	while (buf && (line = next_line(buf, len, &off, &ll))) {
		char exp[32];
		int el = snprintf(exp, sizeof exp, ",\"i\":%zu}\n", n);
		CHECK(ll > (size_t)el &&
		      memcmp(line + ll - (size_t)el, exp, (size_t)el) == 0);
		n++;
	}
	CHECK_INT(n, N);
	free(buf);
	close(fd);
}

static void
test_write_error(void)
{
	int p[2];
	unsigned sent = 0;

	CHECK(pipe(p) == 0);
	close(p[0]); /* EPIPE for the logger; SIGPIPE is blocked there */
	struct logger *lg = log_start("smtpd", LOG_INFO, p[1]);
	for (int tries = 0; sent < 4 * LOG_RING_SLOTS && tries < 10000;
	     tries++) {
		struct log_line *l = log_begin(lg, LOG_INFO, "x");
		if (!l) {
			nap_ms(1);
			continue;
		}
		log_end(l);
		sent++;
	}
	CHECK_INT(sent, 4 * LOG_RING_SLOTS); /* the ring kept draining */
	log_stop(lg);
	close(p[1]);
}

/* ---- signals go to the worker, never the logger thread ---------------- */

static volatile sig_atomic_t got_usr1;

static void
on_usr1(int sig)
{
	(void)sig;
	got_usr1 = 1;
}

/* Starts the logger from a thread that does accept SIGUSR1. */
static void *
start_unblocked(void *arg)
{
	sigset_t usr1, before, after;

	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
	pthread_sigmask(SIG_SETMASK, NULL, &before);
	*(struct logger **)arg = log_start("smtpd", LOG_INFO, 1);
	pthread_sigmask(SIG_BLOCK, &usr1, &after);
	/* the caller's mask is restored */
	for (int sig = 1; sig < SIGRTMIN; sig++)
		CHECK_INT(sigismember(&after, sig), sigismember(&before, sig));
	CHECK(!sigismember(&after, SIGUSR1));
	return NULL;
}

static void
test_signal_mask(void)
{
	struct sigaction sa = {.sa_handler = on_usr1};
	sigset_t usr1, old, pend;
	struct timespec zero = {0, 0};
	struct logger *lg = NULL;
	pthread_t t;

	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
	pthread_sigmask(SIG_BLOCK, &usr1, &old);
	CHECK(pthread_create(&t, NULL, start_unblocked, &lg) == 0);
	pthread_join(t, NULL);
	CHECK(lg != NULL);
	/* only this thread (blocked) and the logger remain */
	kill(getpid(), SIGUSR1);
	nap_ms(50);
	CHECK_INT(got_usr1, 0);
	CHECK(sigpending(&pend) == 0 && sigismember(&pend, SIGUSR1));
	CHECK_INT(sigtimedwait(&usr1, NULL, &zero), SIGUSR1);
	log_stop(lg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	signal(SIGUSR1, SIG_DFL);
}

/* ---- a worker thread and a reader, as in production ------------------ */

enum { MT_LINES = 100000 };

struct producer {
	struct logger *lg;
	uint64_t nulls;	     /* every NULL from log_begin */
	uint64_t loop_nulls; /* those among the MT_LINES numbered lines */
};

static void *
producer_run(void *arg)
{
	struct producer *pr = arg;
	struct log_line *l;

	for (unsigned i = 0; i < MT_LINES; i++) {
		/* first half paced so the logger sleeps and is woken often */
		if (i < MT_LINES / 2 && i % 500 == 0)
			nap_ms(1);
		l = log_begin(pr->lg, LOG_INFO, "seq");
		if (!l) {
			pr->nulls++;
			continue;
		}
		log_uint(l, "i", i);
		log_str(l, "pad", "caf\xc3\xa9 \"quoted\"\t\x80");
		log_end(l);
	}
	pr->loop_nulls = pr->nulls;
	for (int tries = 0; tries < 10000; tries++) {
		if ((l = log_begin(pr->lg, LOG_INFO, "done")))
			break;
		pr->nulls++;
		nap_ms(1);
	}
	log_end(l);
	return NULL;
}

static void
test_threads(void)
{
	struct producer pr = {0};
	struct reader r;
	pthread_t t;
	int p[2];
	size_t off = 0, ll, seen = 0;
	unsigned long long reported = 0;
	long long last = -1;
	int ok = 1, done = 0;
	const char *line;

	CHECK(pipe(p) == 0);
	CHECK_INT(reader_start(&r, p[0]), 0);
	pr.lg = log_start("smtpd", LOG_INFO, p[1]);
	CHECK(pthread_create(&t, NULL, producer_run, &pr) == 0);
	pthread_join(t, NULL);
	CHECK_INT(log_dropped(pr.lg), pr.nulls);
	log_stop(pr.lg);
	close(p[1]);
	pthread_join(r.thread, NULL);

	while ((line = next_line(r.buf, r.len, &off, &ll))) {
		const char *f;
		ok &= json_line_ok(line, ll);
		if ((f = memmem(line, ll, "\"event\":\"seq\",\"i\":", 18))) {
			long long i = (long long)num(f + 18, 20);
			ok &= i > last;
			last = i;
			seen++;
		} else if ((f = memmem(line, ll, "\"dropped\":", 10))) {
			reported += num(f + 10, 20);
		} else {
			char out[LOG_LINE_MAX];
			done += strip_ts(line, ll, out, sizeof out) == 0 &&
				strcmp(out, HDR "\"info\",\"svc\":\"smtpd\","
						"\"event\":\"done\"}\n") == 0;
		}
	}
	CHECK(ok);
	CHECK_INT(done, 1);
	/* every call was either written or dropped, and every drop reported */
	CHECK_INT(seen + pr.loop_nulls, MT_LINES);
	CHECK_INT(reported, pr.nulls);
	fprintf(stderr, "threads: %zu written, %llu dropped\n", seen, reported);
	free(r.buf);
	close(p[0]);
}

int
main(void)
{
	test_escape();
	test_null();
	test_format();
	test_levels();
	test_truncation();
	test_flush_on_stop();
	test_drops();
	test_write_error();
	test_signal_mask();
	test_threads();
	return test_summary();
}

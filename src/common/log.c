/*
 * log: structured JSON lines, see log.h.
 *
 * Owns: one allocation of LOG_RING_SLOTS fixed slots, the head/tail
 * indices of that single-producer (the worker) single-consumer (the logger
 * thread) ring, the wake pipe, the logger thread and the drop counter.
 *
 * Invariants:
 * - head and tail are free-running counters; slot = index % LOG_RING_SLOTS.
 *   0 <= head - tail <= LOG_RING_SLOTS. Only the producer stores head and
 *   only the consumer stores tail; a slot's bytes are written before the
 *   release store of head that publishes it and read back only after the
 *   consumer's acquire load, and the consumer stores tail only after the
 *   slot has been written out, so a slot is never reused while in flight.
 * - The producer never locks or blocks: a full ring drops the line and
 *   counts it. While a drop is unreported the last free slot is kept for
 *   the "log.dropped" line, so the report always precedes later lines.
 * - Wake-up: the logger stores sleeping = true, then re-checks head and
 *   stop before it blocks in poll(); the producer stores head, then loads
 *   sleeping. Both pairs are seq_cst, so at least one side sees the other
 *   (Dekker): either the logger finds the line or the producer writes the
 *   pipe byte. A stale extra byte only causes one spurious wake-up.
 * - Every slot holds a complete line of at most LOG_LINE_MAX bytes that
 *   ends in "}\n"; room for ",\"truncated\":true}\n" is always kept. A
 *   string value is cut to fit; a key or number that does not fit drops
 *   its field; after the first cut every later field of the line is
 *   dropped, so a truncated line is always a prefix of the intended one.
 * - "log.dropped" is reported whatever the minimum level: losing lines
 *   silently is worse than one warn line.
 * - The logger thread blocks every signal so signals reach the worker.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define LOG_CACHE_LINE 64
#define LOG_SVC_MAX 128	 /* escaped "svc" value */
#define LOG_IOV_BATCH 64 /* slots per writev() */
#define LOG_TRUNC_MARK ",\"truncated\":true"
#define LOG_TAIL_RESERVE (sizeof LOG_TRUNC_MARK - 1 + 2) /* mark + "}\n" */

struct log_slot {
	size_t len;
	char buf[LOG_LINE_MAX];
};

/* The line being built: always the slot at head, never yet published. */
struct log_line {
	struct logger *lg;
	struct log_slot *slot;
	size_t pos;
	bool truncated;
};

struct logger {
	/* Producer side. */
	_Alignas(LOG_CACHE_LINE) atomic_size_t head;
	_Atomic uint64_t dropped; /* stored by the producer only */
	uint64_t reported;	  /* part of dropped already reported */
	struct log_line line;
	char svc[LOG_SVC_MAX]; /* already JSON-escaped */
	size_t svc_len;
	enum log_level min;

	/* Consumer side. */
	_Alignas(LOG_CACHE_LINE) atomic_size_t tail;
	atomic_bool sleeping;

	/* Shared, read-mostly. */
	_Alignas(LOG_CACHE_LINE) atomic_bool stop;
	int out_fd;
	int wake[2]; /* [0] read by the logger, [1] non-blocking write end */
	struct log_slot *slots;
	pthread_t thread;
};

const char *
log_level_name(enum log_level level)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};

	return (unsigned)level < 4 ? names[level] : "unknown";
}

/*
 * Length of the well-formed UTF-8 sequence at s, or 0 when s does not start
 * one: no overlongs, no surrogates, nothing above U+10FFFF
 * (RFC 3629 section 4, Unicode table 3-7).
 */
static size_t
log_utf8_len(const unsigned char *s, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len;

	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		if (s[0] == 0xe0)
			lo = 0xa0;
		else if (s[0] == 0xed)
			hi = 0x9f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		if (s[0] == 0xf0)
			lo = 0x90;
		else if (s[0] == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

/*
 * Escapes as much of src as fits in cap bytes without splitting an escape
 * or a UTF-8 sequence (RFC 8259 section 7). *used is set to the number of
 * source bytes consumed. Control bytes, DEL and bytes that are not part of
 * well-formed UTF-8 become \u00XX, so the output is always valid UTF-8.
 */
static size_t
log_escape_span(char *dst, size_t cap, const char *src, size_t n, size_t *used)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)src;
	size_t o = 0, i = 0;

	while (i < n) {
		char esc[6];
		const char *out = esc;
		size_t olen = 2, ilen = 1;
		unsigned char c = s[i];

		esc[0] = '\\';
		if (c == '"' || c == '\\')
			esc[1] = (char)c;
		else if (c == '\n')
			esc[1] = 'n';
		else if (c == '\r')
			esc[1] = 'r';
		else if (c == '\t')
			esc[1] = 't';
		else if (c >= 0x20 && c < 0x7f)
			out = src + i, olen = 1;
		else if (c >= 0x80 && (ilen = log_utf8_len(s + i, n - i)) > 0)
			out = src + i, olen = ilen;
		else {
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			olen = 6, ilen = 1;
		}
		if (olen > cap - o)
			break;
		memcpy(dst + o, out, olen);
		o += olen;
		i += ilen;
	}
	*used = i;
	return o;
}

/* Writes at most cap bytes and no terminating NUL. */
size_t
log_json_escape(char *dst, size_t cap, const char *src, size_t n)
{
	size_t used;

	return log_escape_span(dst, cap, src, n, &used);
}

/* ---- building a line ------------------------------------------------- */

/* Bytes still free for fields, keeping room for the truncation mark. */
static size_t
log_line_room(const struct log_line *l)
{
	return LOG_LINE_MAX - LOG_TAIL_RESERVE - l->pos;
}

/* Appends s whole or not at all; 0 on success, -1 when it does not fit. */
static int
log_line_raw(struct log_line *l, const char *s, size_t n)
{
	if (n > log_line_room(l))
		return -1;
	memcpy(l->slot->buf + l->pos, s, n);
	l->pos += n;
	return 0;
}

/* Appends ,"key": whole; on failure the line is marked truncated. */
static int
log_line_key(struct log_line *l, const char *key)
{
	size_t start = l->pos, klen, used, w;

	if (l->truncated)
		return -1;
	key = key ? key : "";
	klen = strlen(key);
	if (log_line_raw(l, ",\"", 2) < 0)
		goto fail;
	w = log_escape_span(l->slot->buf + l->pos, log_line_room(l), key, klen,
			    &used);
	l->pos += w;
	if (used < klen || log_line_raw(l, "\":", 2) < 0)
		goto fail;
	return 0;
fail:
	l->pos = start;
	l->truncated = true;
	return -1;
}

/* Appends "val" escaped, cutting it to fit; needs room for the quotes. */
static void
log_line_string(struct log_line *l, size_t start, const char *val, size_t n)
{
	size_t used, w;

	if (log_line_room(l) < 2) {
		l->pos = start;
		l->truncated = true;
		return;
	}
	l->slot->buf[l->pos++] = '"';
	w = log_escape_span(l->slot->buf + l->pos, log_line_room(l) - 1, val, n,
			    &used);
	l->pos += w;
	l->slot->buf[l->pos++] = '"';
	if (used < n)
		l->truncated = true;
}

/* Appends one field whose value is the literal text s (number, bool). */
static void
log_line_literal(struct log_line *l, const char *key, const char *s, size_t n)
{
	size_t start;

	if (!l || !l->slot) /* filtered, dropped or already ended */
		return;
	start = l->pos;
	if (log_line_key(l, key) < 0)
		return;
	if (log_line_raw(l, s, n) < 0) {
		l->pos = start;
		l->truncated = true;
	}
}

void
log_strn(struct log_line *l, const char *key, const char *val, size_t n)
{
	size_t start;

	if (!l || !l->slot)
		return;
	if (!val) {
		log_line_literal(l, key, "null", 4);
		return;
	}
	start = l->pos;
	if (log_line_key(l, key) < 0)
		return;
	log_line_string(l, start, val, n);
}

void
log_str(struct log_line *l, const char *key, const char *val)
{
	log_strn(l, key, val, val ? strlen(val) : 0);
}

void
log_int(struct log_line *l, const char *key, long long val)
{
	char num[32];
	int n = snprintf(num, sizeof num, "%lld", val);

	if (n > 0)
		log_line_literal(l, key, num, (size_t)n);
}

void
log_uint(struct log_line *l, const char *key, unsigned long long val)
{
	char num[32];
	int n = snprintf(num, sizeof num, "%llu", val);

	if (n > 0)
		log_line_literal(l, key, num, (size_t)n);
}

void
log_ms(struct log_line *l, const char *key, uint64_t ms)
{
	char num[32];
	int n = snprintf(num, sizeof num, "%" PRIu64 ".%03u", ms / 1000,
			 (unsigned)(ms % 1000));

	if (n > 0)
		log_line_literal(l, key, num, (size_t)n);
}

void
log_bool(struct log_line *l, const char *key, int val)
{
	if (val)
		log_line_literal(l, key, "true", 4);
	else
		log_line_literal(l, key, "false", 5);
}

/*
 * Civil date of a day count since 1970-01-01 (proleptic Gregorian; H.
 * Hinnant's days-to-civil). Used instead of gmtime_r(), which takes glibc's
 * tz lock, because the producer must never lock.
 */
static void
log_civil(long long days, long long *y, int *m, int *d)
{
	long long z = days + 719468;
	long long era = (z >= 0 ? z : z - 146096) / 146097;
	long long doe = z - era * 146097;
	long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	long long mp = (5 * doy + 2) / 153;

	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* RFC 3339 section 5.6 in UTC with milliseconds: 2026-11-26T06:00:00.123Z */
static size_t
log_format_ts(char *buf, size_t cap)
{
	struct timespec ts;
	long long days, secs, year;
	int mon, mday, n;

	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		ts.tv_sec = 0, ts.tv_nsec = 0;
	days = (long long)ts.tv_sec / 86400;
	secs = (long long)ts.tv_sec % 86400;
	if (secs < 0)
		secs += 86400, days--;
	log_civil(days, &year, &mon, &mday);
	n = snprintf(buf, cap, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", year,
		     mon, mday, (int)(secs / 3600), (int)(secs / 60 % 60),
		     (int)(secs % 60), (int)(ts.tv_nsec / 1000000));
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* Starts a line in the slot at head: ts, level, svc, event. */
static struct log_line *
log_line_open(struct logger *lg, size_t head, enum log_level level,
	      const char *event)
{
	struct log_line *l = &lg->line;
	char hdr[LOG_SVC_MAX + 128];
	char ts[64];
	size_t tslen = log_format_ts(ts, sizeof ts);
	int n = snprintf(hdr, sizeof hdr,
			 "{\"ts\":\"%.*s\",\"level\":\"%s\",\"svc\":\"%.*s\"",
			 (int)tslen, ts, log_level_name(level),
			 (int)lg->svc_len, lg->svc);

	l->lg = lg;
	l->slot = &lg->slots[head % LOG_RING_SLOTS];
	l->pos = 0;
	l->truncated = false;
	/* hdr is far below the room of a slot, so this always fits. */
	if (n > 0 && (size_t)n < sizeof hdr)
		(void)log_line_raw(l, hdr, (size_t)n);
	log_str(l, "event", event ? event : "");
	return l;
}

/* Writes one byte into the wake pipe. */
static void
log_wake(struct logger *lg)
{
	ssize_t w;

	do
		w = write(lg->wake[1], "", 1);
	while (w < 0 && errno == EINTR);
	/*
	 * EAGAIN means the pipe already holds bytes, so the logger will wake
	 * anyway; no other error is possible while we hold both ends.
	 */
}

/* Closes the line and hands it to the logger thread. */
static void
log_line_publish(struct log_line *l)
{
	struct logger *lg = l->lg;
	size_t head = atomic_load_explicit(&lg->head, memory_order_relaxed);

	if (l->truncated) {
		memcpy(l->slot->buf + l->pos, LOG_TRUNC_MARK,
		       sizeof LOG_TRUNC_MARK - 1);
		l->pos += sizeof LOG_TRUNC_MARK - 1;
	}
	memcpy(l->slot->buf + l->pos, "}\n", 2);
	l->slot->len = l->pos + 2;
	l->slot = NULL;
	/* seq_cst: this store and the load below pair with log_wait(). */
	atomic_store_explicit(&lg->head, head + 1, memory_order_seq_cst);
	if (atomic_load_explicit(&lg->sleeping, memory_order_seq_cst) &&
	    atomic_exchange_explicit(&lg->sleeping, false,
				     memory_order_seq_cst))
		log_wake(lg);
}

struct log_line *
log_begin(struct logger *lg, enum log_level level, const char *event)
{
	size_t head, tail, free_slots;
	uint64_t dropped;

	if (!lg || level < lg->min)
		return NULL;
	head = atomic_load_explicit(&lg->head, memory_order_relaxed);
	tail = atomic_load_explicit(&lg->tail, memory_order_acquire);
	free_slots = LOG_RING_SLOTS - (head - tail);
	dropped = atomic_load_explicit(&lg->dropped, memory_order_relaxed);
	if (dropped != lg->reported) {
		if (free_slots < 2)
			goto drop;
		struct log_line *d =
		    log_line_open(lg, head, LOG_WARN, "log.dropped");
		log_uint(d, "dropped", dropped - lg->reported);
		log_line_publish(d);
		lg->reported = dropped;
		head++;
	} else if (free_slots == 0) {
		goto drop;
	}
	return log_line_open(lg, head, level, event);
drop:
	atomic_store_explicit(&lg->dropped, dropped + 1, memory_order_relaxed);
	return NULL;
}

void
log_end(struct log_line *l)
{
	if (l && l->slot)
		log_line_publish(l);
}

uint64_t
log_dropped(const struct logger *lg)
{
	/* The cast only drops const for C11 atomic_load's prototype. */
	return lg ? atomic_load_explicit((_Atomic uint64_t *)&lg->dropped,
					 memory_order_relaxed)
		  : 0;
}

/* ---- the logger thread ----------------------------------------------- */

/* Waits until out_fd is writable again after EAGAIN. */
static int
log_wait_writable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};

	for (;;) {
		int r = poll(&p, 1, -1);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

/*
 * Writes every byte of iov, retrying EINTR, EAGAIN and short writes. On any
 * other error the rest of the batch is discarded: the ring must keep
 * draining so the worker never stalls behind a broken stdout.
 */
static void
log_write_batch(int fd, struct iovec *iov, int cnt)
{
	while (cnt > 0) {
		ssize_t w = writev(fd, iov, cnt);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN && log_wait_writable(fd) == 0)
				continue;
			return;
		}
		size_t left = (size_t)w;
		while (cnt > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++, cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (char *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
}

/* Writes out every published slot, releasing each batch after its write. */
static void
log_drain(struct logger *lg)
{
	size_t tail = atomic_load_explicit(&lg->tail, memory_order_relaxed);
	size_t head = atomic_load_explicit(&lg->head, memory_order_acquire);

	while (tail != head) {
		struct iovec iov[LOG_IOV_BATCH];
		int cnt = 0;

		while (tail + (size_t)cnt != head && cnt < LOG_IOV_BATCH) {
			struct log_slot *s =
			    &lg->slots[(tail + (size_t)cnt) % LOG_RING_SLOTS];
			iov[cnt].iov_base = s->buf;
			iov[cnt].iov_len = s->len;
			cnt++;
		}
		log_write_batch(lg->out_fd, iov, cnt);
		tail += (size_t)cnt;
		atomic_store_explicit(&lg->tail, tail, memory_order_release);
		head = atomic_load_explicit(&lg->head, memory_order_acquire);
	}
}

/* Empties the wake pipe (non-blocking read end). */
static void
log_drain_pipe(struct logger *lg)
{
	char buf[64];

	for (;;) {
		ssize_t r = read(lg->wake[0], buf, sizeof buf);
		if (r == (ssize_t)sizeof buf || (r < 0 && errno == EINTR))
			continue;
		return; /* short read, EAGAIN: empty; other errors: retry later
			 */
	}
}

/* Sleeps until the producer or log_stop() writes the pipe. */
static void
log_wait(struct logger *lg)
{
	struct pollfd p = {.fd = lg->wake[0], .events = POLLIN};
	size_t tail = atomic_load_explicit(&lg->tail, memory_order_relaxed);

	atomic_store_explicit(&lg->sleeping, true, memory_order_seq_cst);
	/* Re-check after announcing sleep: see the invariant at the top. */
	if (atomic_load_explicit(&lg->head, memory_order_seq_cst) == tail &&
	    !atomic_load_explicit(&lg->stop, memory_order_seq_cst)) {
		/* EINTR or an error just means one more pass of the loop. */
		if (poll(&p, 1, -1) > 0)
			log_drain_pipe(lg);
	}
	atomic_store_explicit(&lg->sleeping, false, memory_order_seq_cst);
}

static void *
log_thread(void *arg)
{
	struct logger *lg = arg;

	for (;;) {
		/* Lines published before stop was set are visible after it. */
		bool stopping =
		    atomic_load_explicit(&lg->stop, memory_order_seq_cst);
		log_drain(lg);
		if (stopping)
			return NULL;
		log_wait(lg);
	}
}

/* Starts the thread with every signal blocked; restores the caller's mask. */
static int
log_spawn(struct logger *lg)
{
	sigset_t all, old;
	int err;

	sigfillset(&all);
	err = pthread_sigmask(SIG_SETMASK, &all, &old);
	if (err != 0)
		return err;
	err = pthread_create(&lg->thread, NULL, log_thread, lg);
	/* Cannot fail: SIG_SETMASK with a set the kernel just gave us. */
	(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
	return err;
}

struct logger *
log_start(const char *svc, enum log_level min, int out_fd)
{
	struct logger *lg;
	size_t used;
	int err;

	lg = aligned_alloc(LOG_CACHE_LINE, sizeof *lg);
	if (!lg)
		return NULL;
	memset(lg, 0, sizeof *lg);
	atomic_init(&lg->head, 0);
	atomic_init(&lg->tail, 0);
	atomic_init(&lg->dropped, 0);
	atomic_init(&lg->sleeping, false);
	atomic_init(&lg->stop, false);
	lg->min = min;
	lg->out_fd = out_fd;
	svc = svc ? svc : "";
	lg->svc_len =
	    log_escape_span(lg->svc, sizeof lg->svc, svc, strlen(svc), &used);
	lg->slots = malloc(sizeof *lg->slots * LOG_RING_SLOTS);
	if (!lg->slots)
		goto fail_free;
	if (pipe2(lg->wake, O_NONBLOCK | O_CLOEXEC) < 0)
		goto fail_free;
	err = log_spawn(lg);
	if (err != 0) {
		close(lg->wake[0]);
		close(lg->wake[1]);
		errno = err;
		goto fail_free;
	}
	return lg;
fail_free:
	err = errno;
	free(lg->slots);
	free(lg);
	errno = err;
	return NULL;
}

void
log_stop(struct logger *lg)
{
	if (!lg)
		return;
	atomic_store_explicit(&lg->stop, true, memory_order_seq_cst);
	log_wake(lg);
	/* Only fails for a thread we did not create or already joined. */
	(void)pthread_join(lg->thread, NULL);
	close(lg->wake[0]);
	close(lg->wake[1]);
	free(lg->slots);
	free(lg);
}

/*
 * log: structured JSON lines on stdout, written by a logger thread.
 *
 * The worker formats each line into a fixed slot of a single-producer,
 * single-consumer ring and never blocks or takes a lock; the logger thread
 * wakes on a pipe byte and writes the slots out. When the ring is full the
 * line is dropped and counted; the count is reported as a "log.dropped"
 * line as soon as there is room again.
 *
 * Every line: {"ts":"2026-11-26T06:00:00.123Z","level":"info",
 *   "svc":"smtpd","event":"conn.open", ...fields}
 *
 * Builder functions accept NULL (a filtered or dropped line) so callers
 * never check.
 */
#ifndef MTA_LOG_H
#define MTA_LOG_H

#include <stddef.h>
#include <stdint.h>

#define LOG_LINE_MAX 2048 /* one slot; longer values are truncated */
#define LOG_RING_SLOTS 1024

enum log_level {
	LOG_DEBUG,
	LOG_INFO,
	LOG_WARN,
	LOG_ERROR,
};

struct logger;
struct log_line;

/*
 * Starts the logger thread writing to out_fd. svc is the "svc" value.
 * Returns NULL on failure (errno set).
 */
struct logger *log_start(const char *svc, enum log_level min, int out_fd);
/* Writes out everything queued, joins the thread, frees. NULL is a no-op. */
void log_stop(struct logger *);
/* Lines dropped so far because the ring was full. */
uint64_t log_dropped(const struct logger *);
/* "debug" / "info" / "warn" / "error" */
const char *log_level_name(enum log_level);

/* Begins a line; NULL when below the minimum level or the ring is full. */
struct log_line *log_begin(struct logger *, enum log_level, const char *event);
void log_str(struct log_line *, const char *key, const char *val);
void log_strn(struct log_line *, const char *key, const char *val, size_t n);
void log_int(struct log_line *, const char *key, long long val);
void log_uint(struct log_line *, const char *key, unsigned long long val);
/* Fixed-point seconds with 3 decimals, e.g. "delay":1.234 */
void log_ms(struct log_line *, const char *key, uint64_t ms);
void log_bool(struct log_line *, const char *key, int val);
/* Publishes the line to the logger thread. */
void log_end(struct log_line *);

/* Escapes src as the inside of a JSON string; returns bytes written. */
size_t log_json_escape(char *dst, size_t cap, const char *src, size_t n);

/* A failed system call as one line: op, the file name when not NULL,
 * errno and its text. A NULL logger logs nothing. */
void log_syscall(struct logger *, enum log_level, const char *event,
		 const char *op, const char *name, int err);

#endif

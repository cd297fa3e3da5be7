/*
 * log_int: the inside of struct logger and struct log_line, shared by
 * log.c (the ring and the logger thread) and log_json.c (building a line
 * in a slot). Nothing else includes this.
 */
#ifndef MTA_LOG_INT_H
#define MTA_LOG_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define LOG_CACHE_LINE 64
#define LOG_SVC_MAX 128 /* escaped "svc" value */
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

/* log_json.c */
/* Starts a line in the slot at head: ts, level, svc, event. */
struct log_line *log_line_open(struct logger *, size_t head,
			       enum log_level level, const char *event);

#endif

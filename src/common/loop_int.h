/*
 * loop_int: the inside of struct loop, shared by loop.c (watches, timers,
 * the pass) and loop_signal.c (the signal self-pipe). Nothing else
 * includes this.
 */
#ifndef MTA_LOOP_INT_H
#define MTA_LOOP_INT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/select.h>

#include "loop.h"

struct loop_watch_slot {
	unsigned events;
	loop_io_fn *fn; /* NULL: no watch */
	void *arg;
	uint64_t epoch; /* loop epoch in which this watch was installed */
};

struct loop_hook {
	loop_pass_fn *fn;
	void *arg;
};

struct loop_deferred {
	loop_free_fn *fn;
	void *ptr;
};

struct loop_sig_slot {
	loop_signal_fn *fn;
	void *arg;
	bool installed;	      /* our handler is in place; old is valid */
	struct sigaction old; /* restored by loop_free() */
};

struct loop {
	struct loop_watch_slot watch[FD_SETSIZE];
	fd_set rmaster;
	fd_set wmaster;
	int maxfd;
	size_t nwatch;
	uint64_t epoch;

	struct loop_timer **heap;
	size_t nheap;
	size_t heap_cap;
	uint64_t timer_seq;

	loop_clock_fn *clock_fn; /* NULL: CLOCK_MONOTONIC */
	void *clock_arg;

	int sig_pipe[2]; /* -1 until the first loop_signal() */
	struct loop_sig_slot sig[LOOP_MAX_SIGNO + 1];

	struct loop_hook hooks[LOOP_MAX_PASS_HOOKS];
	size_t nhooks;

	struct loop_deferred *defer;
	size_t ndefer;
	size_t defer_cap;

	bool stopping;
};

/* loop_signal.c */
/* Restores the sigactions loop_signal() replaced and closes the self-pipe;
 * for loop_free(). */
void loop_sig_free(struct loop *);

#endif

/*
 * loop: the one event loop of a worker thread, over select().
 *
 * Owns: an fd-indexed watch table (fd < FD_SETSIZE, O(1) lookup), a
 * min-heap of timers embedded in their owners (no ids, no malloc per
 * timer), the only clock of the process (monotonic milliseconds, or a fake
 * clock installed by tests), a self-pipe for signals, a list of frees
 * deferred to the end of the pass, and hooks run once at the end of every
 * pass (group commit uses one).
 *
 * Invariants: a callback may watch, unwatch or modify any fd and arm or
 * disarm any timer, including its own; the loop re-checks a watch before
 * each dispatch so an fd removed earlier in the same pass is never
 * dispatched.
 */
#ifndef MTA_LOOP_H
#define MTA_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	LOOP_READ = 1,
	LOOP_WRITE = 2,
	LOOP_MAX_PASS_HOOKS = 8,
	LOOP_MAX_SIGNO = 64, /* loop_signal() accepts 1..LOOP_MAX_SIGNO */
};

struct loop;
struct loop_timer;

typedef void loop_io_fn(struct loop *, int fd, unsigned events, void *arg);
typedef void loop_timer_fn(struct loop *, struct loop_timer *, void *arg);
typedef void loop_signal_fn(struct loop *, int signo, void *arg);
typedef void loop_pass_fn(struct loop *, void *arg);
typedef void loop_free_fn(void *ptr);
typedef uint64_t loop_clock_fn(void *arg);

/* Embedded in its owner; initialise once with loop_timer_init(). */
struct loop_timer {
	uint64_t when;	   /* loop_now() value at which it fires */
	size_t heap_index; /* position in the heap, SIZE_MAX when disarmed */
	uint64_t seq;	   /* arm order: breaks ties, defers arms made while
			      timers are being dispatched to the next pass */
	loop_timer_fn *fn;
	void *arg;
};

struct loop *loop_new(void);
void loop_free(struct loop *);

/* Installs a fake clock (tests). fn returns milliseconds. */
void loop_set_clock(struct loop *, loop_clock_fn *fn, void *arg);
/* Milliseconds from the loop's clock; monotonic. */
uint64_t loop_now(const struct loop *);
/* The clocks themselves, for code without a loop at hand: monotonic
 * milliseconds, and wall-clock milliseconds since the epoch (ages of
 * files and messages are about real time). */
uint64_t loop_monotonic_ms(void);
int64_t loop_wall_ms(void);

/*
 * Watches fd for events (LOOP_READ|LOOP_WRITE, may be 0 to keep the slot
 * but not select on it). Replaces an existing watch on the same fd.
 * Returns -1 with errno EBADF/EMFILE when fd < 0 or fd >= FD_SETSIZE.
 */
int loop_watch(struct loop *, int fd, unsigned events, loop_io_fn *fn,
	       void *arg);
/* Changes the interest of an existing watch; -1/ENOENT if none. */
int loop_modify(struct loop *, int fd, unsigned events);
/* Removes the watch (not an error if there is none). Does not close fd. */
void loop_unwatch(struct loop *, int fd);
/* Number of fds currently watched (the loop's own signal pipe excluded). */
size_t loop_watch_count(const struct loop *);

void loop_timer_init(struct loop_timer *, loop_timer_fn *fn, void *arg);
/*
 * (Re)arms to fire delay_ms from now. Timers due in the same pass fire in
 * order of when, then of arming; one armed from a timer callback fires in a
 * later pass at the earliest. Returns -1/ENOMEM if the heap cannot grow (the
 * timer is then disarmed); re-arming an armed timer never fails.
 */
int loop_timer_arm(struct loop *, struct loop_timer *, uint64_t delay_ms);
void loop_timer_disarm(struct loop *, struct loop_timer *);
bool loop_timer_armed(const struct loop_timer *);

/*
 * Delivers signo through the self-pipe: the handler only writes the
 * number; fn runs later in the loop like any callback. Returns -1 on error.
 */
int loop_signal(struct loop *, int signo, loop_signal_fn *fn, void *arg);

/*
 * fn(arg) runs once per pass after all I/O and timer callbacks. At most
 * LOOP_MAX_PASS_HOOKS; -1/ENOSPC past that.
 */
int loop_on_pass_end(struct loop *, loop_pass_fn *fn, void *arg);

/*
 * fn(ptr) runs at the end of the current pass (after pass-end hooks); a free
 * deferred by one of those runs in the same drain. If the list cannot grow,
 * ptr is leaked rather than freed early.
 */
void loop_defer_free(struct loop *, loop_free_fn *fn, void *ptr);

/*
 * One pass: select() with a timeout bounded by the next timer and by
 * max_wait_ms (-1 = no bound), dispatch ready fds, expired timers,
 * pass-end hooks, deferred frees. Returns 0, or -1 on a select() error
 * other than EINTR.
 */
int loop_run_once(struct loop *, int max_wait_ms);
/* Runs passes until loop_stop(). Returns 0, or -1 on error. */
int loop_run(struct loop *);
void loop_stop(struct loop *);

#endif

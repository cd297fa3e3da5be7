/*
 * loop: the select() event loop of a worker thread, see loop.h.
 *
 * Owns: the watch table (one slot per fd below FD_SETSIZE, Redis ae_select
 * style) and the master fd_sets that mirror it; the timer min-heap, an array
 * of pointers to timers embedded in their owners (libuv style: the array is
 * the only allocation timers cost); the clock; the pass-end hooks; the
 * deferred-free list. Signals are in loop_signal.c.
 *
 * Invariants:
 * - fd is in rmaster (wmaster) iff watch[fd].fn != NULL and watch[fd].events
 *   has LOOP_READ (LOOP_WRITE). maxfd is the highest fd with a watch, -1
 *   when none; nwatch counts the slots with a watch.
 * - heap[i]->heap_index == i for i < nheap; a timer outside the heap has
 *   heap_index SIZE_MAX. The heap is ordered by (when, seq), seq being a
 *   loop-wide arm counter, so equal deadlines fire in arm order.
 * - epoch grows by one after every select(); a watch installed or replaced
 *   records the epoch it was made in. Dispatch skips a slot whose epoch is
 *   the current one: its readiness belongs to the fd it replaced.
 * - Timer dispatch fires only timers armed before it began (seq below the
 *   counter at its start). Those have when <= now, later ones have
 *   when >= now (the clock is monotonic), and ties go to the lower seq, so
 *   the first later-armed timer at the top means no due one is left.
 */
#include "loop_int.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/select.h>
#include <time.h>

#define LOOP_HEAP_MIN 16  /* first heap allocation, in timers */
#define LOOP_DEFER_MIN 16 /* first deferred-free allocation, in entries */

uint64_t
loop_monotonic_ms(void)
{
	struct timespec ts;

	/*
	 * The only errors are EFAULT and EINVAL, and loop_new() has seen this
	 * clock work, so this branch is unreachable.
	 */
	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t
loop_wall_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) < 0) /* as above: cannot fail */
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct loop *
loop_new(void)
{
	struct loop *l;
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		return NULL;
	l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	FD_ZERO(&l->rmaster);
	FD_ZERO(&l->wmaster);
	l->maxfd = -1;
	l->sig_pipe[0] = -1;
	l->sig_pipe[1] = -1;
	return l;
}

void
loop_set_clock(struct loop *l, loop_clock_fn *fn, void *arg)
{
	l->clock_fn = fn;
	l->clock_arg = arg;
}

uint64_t
loop_now(const struct loop *l)
{
	if (l->clock_fn)
		return l->clock_fn(l->clock_arg);
	return loop_monotonic_ms();
}

/* ---- watches ---- */

static void
loop_set_events(struct loop *l, int fd, unsigned events)
{
	l->watch[fd].events = events & (LOOP_READ | LOOP_WRITE);
	if (events & LOOP_READ)
		FD_SET(fd, &l->rmaster);
	else
		FD_CLR(fd, &l->rmaster);
	if (events & LOOP_WRITE)
		FD_SET(fd, &l->wmaster);
	else
		FD_CLR(fd, &l->wmaster);
}

int
loop_watch(struct loop *l, int fd, unsigned events, loop_io_fn *fn, void *arg)
{
	struct loop_watch_slot *w;

	if (fd < 0) {
		errno = EBADF;
		return -1;
	}
	if (fd >= FD_SETSIZE) { /* select() cannot see it */
		errno = EMFILE;
		return -1;
	}
	if (!fn) {
		errno = EINVAL;
		return -1;
	}
	w = &l->watch[fd];
	if (!w->fn) {
		l->nwatch++;
		if (fd > l->maxfd)
			l->maxfd = fd;
	}
	w->fn = fn;
	w->arg = arg;
	w->epoch = l->epoch;
	loop_set_events(l, fd, events);
	return 0;
}

int
loop_modify(struct loop *l, int fd, unsigned events)
{
	if (fd < 0 || fd >= FD_SETSIZE || !l->watch[fd].fn) {
		errno = ENOENT;
		return -1;
	}
	loop_set_events(l, fd, events);
	return 0;
}

void
loop_unwatch(struct loop *l, int fd)
{
	if (fd < 0 || fd >= FD_SETSIZE || !l->watch[fd].fn)
		return;
	loop_set_events(l, fd, 0);
	l->watch[fd].fn = NULL;
	l->watch[fd].arg = NULL;
	l->nwatch--;
	while (l->maxfd >= 0 && !l->watch[l->maxfd].fn)
		l->maxfd--;
}

size_t
loop_watch_count(const struct loop *l)
{
	return l->nwatch - (l->sig_pipe[0] >= 0); /* its pipe is watched */
}

/* ---- timers: binary min-heap ordered by (when, seq) ---- */

static bool
loop_timer_before(const struct loop_timer *a, const struct loop_timer *b)
{
	return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void
loop_heap_place(struct loop *l, size_t i, struct loop_timer *t)
{
	l->heap[i] = t;
	t->heap_index = i;
}

static void
loop_heap_up(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!loop_timer_before(t, l->heap[parent]))
			break;
		loop_heap_place(l, i, l->heap[parent]);
		i = parent;
	}
	loop_heap_place(l, i, t);
}

static void
loop_heap_down(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= l->nheap)
			break;
		if (c + 1 < l->nheap &&
		    loop_timer_before(l->heap[c + 1], l->heap[c]))
			c++;
		if (!loop_timer_before(l->heap[c], t))
			break;
		loop_heap_place(l, i, l->heap[c]);
		i = c;
	}
	loop_heap_place(l, i, t);
}

static void
loop_heap_remove(struct loop *l, struct loop_timer *t)
{
	size_t i = t->heap_index;
	struct loop_timer *last;

	assert(i < l->nheap && l->heap[i] == t);
	last = l->heap[--l->nheap];
	t->heap_index = SIZE_MAX;
	if (i == l->nheap)
		return;
	loop_heap_place(l, i, last);
	loop_heap_up(l, i);
	loop_heap_down(l, last->heap_index);
}

/*
 * Makes room for element n of an array of *cap elements of size bytes,
 * doubling from min. Returns the (maybe moved) array, NULL/ENOMEM if it
 * cannot grow; the old array is then untouched.
 */
static void *
loop_grow(void *array, size_t *cap, size_t n, size_t size, size_t min)
{
	size_t c;

	if (n < *cap)
		return array;
	c = *cap ? *cap * 2 : min;
	if (c > SIZE_MAX / size) {
		errno = ENOMEM;
		return NULL;
	}
	array = realloc(array, c * size);
	if (array)
		*cap = c;
	return array;
}

void
loop_timer_init(struct loop_timer *t, loop_timer_fn *fn, void *arg)
{
	t->when = 0;
	t->heap_index = SIZE_MAX;
	t->seq = 0;
	t->fn = fn;
	t->arg = arg;
}

int
loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t delay_ms)
{
	uint64_t now = loop_now(l);
	struct loop_timer **heap;

	t->when = delay_ms > UINT64_MAX - now ? UINT64_MAX : now + delay_ms;
	t->seq = l->timer_seq++;
	if (t->heap_index != SIZE_MAX) {
		assert(t->heap_index < l->nheap && l->heap[t->heap_index] == t);
		loop_heap_up(l, t->heap_index);
		loop_heap_down(l, t->heap_index);
		return 0;
	}
	heap = loop_grow(l->heap, &l->heap_cap, l->nheap, sizeof *heap,
			 LOOP_HEAP_MIN);
	if (!heap)
		return -1;
	l->heap = heap;
	loop_heap_place(l, l->nheap++, t);
	loop_heap_up(l, t->heap_index);
	return 0;
}

void
loop_timer_disarm(struct loop *l, struct loop_timer *t)
{
	if (t->heap_index != SIZE_MAX)
		loop_heap_remove(l, t);
}

bool
loop_timer_armed(const struct loop_timer *t)
{
	return t->heap_index != SIZE_MAX;
}

/* ---- end of pass ---- */

int
loop_on_pass_end(struct loop *l, loop_pass_fn *fn, void *arg)
{
	if (!fn) {
		errno = EINVAL;
		return -1;
	}
	if (l->nhooks >= LOOP_MAX_PASS_HOOKS) {
		errno = ENOSPC;
		return -1;
	}
	l->hooks[l->nhooks].fn = fn;
	l->hooks[l->nhooks].arg = arg;
	l->nhooks++;
	return 0;
}

void
loop_defer_free(struct loop *l, loop_free_fn *fn, void *ptr)
{
	struct loop_deferred *d;

	if (!fn)
		return;
	d = loop_grow(l->defer, &l->defer_cap, l->ndefer, sizeof *d,
		      LOOP_DEFER_MIN);
	if (!d) /* leak ptr: freeing it now could be a use after free */
		return;
	l->defer = d;
	l->defer[l->ndefer].fn = fn;
	l->defer[l->ndefer].ptr = ptr;
	l->ndefer++;
}

static void
loop_drain_frees(struct loop *l)
{
	/* ndefer is re-read: frees deferred by a free run in this drain. */
	for (size_t i = 0; i < l->ndefer; i++) {
		struct loop_deferred d = l->defer[i];

		d.fn(d.ptr);
	}
	l->ndefer = 0;
}

/* ---- the pass ---- */

/* select() timeout in ms, -1 for none: next timer, capped by max_wait_ms. */
static int
loop_timeout_ms(const struct loop *l, int max_wait_ms)
{
	uint64_t now, wait;

	if (l->nheap == 0)
		return max_wait_ms < 0 ? -1 : max_wait_ms;
	now = loop_now(l);
	wait = l->heap[0]->when > now ? l->heap[0]->when - now : 0;
	if (wait > INT_MAX)
		wait = INT_MAX;
	if (max_wait_ms >= 0 && (uint64_t)max_wait_ms < wait)
		wait = (uint64_t)max_wait_ms;
	return (int)wait;
}

static void
loop_dispatch_io(struct loop *l, const fd_set *rfds, const fd_set *wfds,
		 int maxfd, int nready)
{
	for (int fd = 0; fd <= maxfd && nready > 0; fd++) {
		struct loop_watch_slot *w = &l->watch[fd];
		unsigned events = 0;

		if (FD_ISSET(fd, rfds)) {
			events |= LOOP_READ;
			nready--;
		}
		if (FD_ISSET(fd, wfds)) {
			events |= LOOP_WRITE;
			nready--;
		}
		if (!events)
			continue;
		/* Re-check: an earlier callback may have removed or replaced
		 * it. */
		if (!w->fn || w->epoch == l->epoch)
			continue;
		events &= w->events;
		if (events)
			w->fn(l, fd, events, w->arg);
	}
}

static void
loop_dispatch_timers(struct loop *l)
{
	uint64_t now = loop_now(l);
	uint64_t limit = l->timer_seq; /* arms from here on wait a pass */

	while (l->nheap > 0) {
		struct loop_timer *t = l->heap[0];

		if (t->when > now || t->seq >= limit)
			break;
		loop_heap_remove(l, t);
		t->fn(l, t, t->arg);
	}
}

static void
loop_run_hooks(struct loop *l)
{
	for (size_t i = 0; i < l->nhooks; i++)
		l->hooks[i].fn(l, l->hooks[i].arg);
}

int
loop_run_once(struct loop *l, int max_wait_ms)
{
	int timeout = loop_timeout_ms(l, max_wait_ms);
	int maxfd = l->maxfd;
	fd_set rfds = l->rmaster;
	fd_set wfds = l->wmaster;
	struct timeval tv, *tvp = NULL;
	int n;

	if (timeout >= 0) {
		tv.tv_sec = timeout / 1000;
		tv.tv_usec = (timeout % 1000) * 1000;
		tvp = &tv;
	}
	n = select(maxfd + 1, &rfds, &wfds, NULL, tvp);
	if (n < 0) {
		if (errno != EINTR)
			return -1;
		n = 0; /* a signal: its pipe byte is seen next pass */
	}
	l->epoch++;
	if (n > 0)
		loop_dispatch_io(l, &rfds, &wfds, maxfd, n);
	loop_dispatch_timers(l);
	loop_run_hooks(l);
	loop_drain_frees(l);
	return 0;
}

int
loop_run(struct loop *l)
{
	int rc = 0;

	while (!l->stopping) {
		if (loop_run_once(l, -1) < 0) {
			rc = -1;
			break;
		}
	}
	l->stopping = false;
	return rc;
}

void
loop_stop(struct loop *l)
{
	l->stopping = true;
}

void
loop_free(struct loop *l)
{
	if (!l)
		return;
	loop_drain_frees(l);
	loop_sig_free(l);
	/* Owners may still look at their timers: mark them disarmed. */
	for (size_t i = 0; i < l->nheap; i++)
		l->heap[i]->heap_index = SIZE_MAX;
	free(l->heap);
	free(l->defer);
	free(l);
}

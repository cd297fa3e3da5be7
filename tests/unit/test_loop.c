/*
 * test_loop: the select() loop (src/common/loop.c) with a fake clock: I/O
 * dispatch over pipes and socketpairs, watches removed or replaced during
 * a pass, the FD_SETSIZE limit, timer order, re-arm, disarm and the heap
 * under 1000 random timers, the self-pipe for signals, pass-end hooks and
 * deferred frees. Only the timeout tests wait, a few tens of milliseconds;
 * an alarm() turns any hang into a failure.
 */
#include "loop.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NRANDOM 1000
#define SIG_FLOOD 300000 /* raises, more than any pipe holds */

struct fake_clock {
	uint64_t now;
};

static uint64_t
fake_now(void *arg)
{
	return ((struct fake_clock *)arg)->now;
}

static struct loop *
fake_loop(struct fake_clock *c)
{
	struct loop *l = loop_new();

	if (!l) {
		perror("loop_new");
		exit(1);
	}
	loop_set_clock(l, fake_now, c);
	return l;
}

static void
xpipe(int p[2])
{
	if (pipe(p) < 0) {
		perror("pipe");
		exit(1);
	}
}

static void
xwrite(int fd, const char *s)
{
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s)) {
		perror("write");
		exit(1);
	}
}

static void
close_pair(int p[2])
{
	close(p[0]);
	close(p[1]);
}

static int
count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* ---- I/O ---- */

struct io_rec {
	int calls;
	int fd;
	unsigned events;
	char *trace; /* optional: appends 'i' */
};

static void
io_record(struct loop *l, int fd, unsigned events, void *arg)
{
	struct io_rec *r = arg;

	(void)l;
	r->calls++;
	r->fd = fd;
	r->events = events;
	if (r->trace)
		strcat(r->trace, "i");
}

static void
test_pipe_read(void)
{
	struct fake_clock c = { 0 };
	struct loop *l = fake_loop(&c);
	struct io_rec r = { 0 };
	int p[2];

	xpipe(p);
	CHECK_INT(loop_watch(l, p[0], LOOP_READ, io_record, &r), 0);
	CHECK_INT(loop_watch_count(l), 1);
	CHECK_INT(loop_run_once(l, 0), 0);
	CHECK_INT(r.calls, 0);
	xwrite(p[1], "x");
	CHECK_INT(loop_run_once(l, 0), 0);
	CHECK_INT(r.calls, 1);
	CHECK_INT(r.fd, p[0]);
	CHECK_INT(r.events, LOOP_READ);
	CHECK_INT(loop_run_once(l, 0), 0); /* level-triggered: still unread */
	CHECK_INT(r.calls, 2);
	CHECK_INT(loop_modify(l, p[0], 0), 0); /* slot kept, not selected */
	CHECK_INT(loop_run_once(l, 0), 0);
	CHECK_INT(r.calls, 2);
	CHECK_INT(loop_watch_count(l), 1);
	CHECK_INT(loop_modify(l, p[0], LOOP_READ), 0);
	CHECK_INT(loop_run_once(l, 0), 0);
	CHECK_INT(r.calls, 3);
	loop_unwatch(l, p[0]);
	loop_unwatch(l, p[0]); /* not an error */
	CHECK_INT(loop_watch_count(l), 0);
	CHECK_INT(loop_run_once(l, 0), 0);
	CHECK_INT(r.calls, 3);
	errno = 0;
	CHECK_INT(loop_modify(l, p[0], LOOP_READ), -1);
	CHECK_INT(errno, ENOENT);
	loop_free(l);
	/* loop_free does not close watched fds. */
	CHECK(fcntl(p[0], F_GETFD) >= 0);
	close_pair(p);
}

static const struct {
	unsigned interest;
	bool data;
	int calls;
	unsigned events;
} socket_cases[] = {
	{ LOOP_WRITE, false, 1, LOOP_WRITE },
	{ LOOP_READ, false, 0, 0 },
	{ LOOP_READ | LOOP_WRITE, false, 1, LOOP_WRITE },
	{ LOOP_READ | LOOP_WRITE, true, 1, LOOP_READ | LOOP_WRITE },
	{ LOOP_READ, true, 1, LOOP_READ },
	{ LOOP_WRITE, true, 1, LOOP_WRITE },
	{ 0, true, 0, 0 },
};

static void
test_socketpair_events(void)
{
	for (size_t i = 0; i < sizeof socket_cases / sizeof *socket_cases;
	     i++) {
		struct fake_clock c = { 0 };
		struct loop *l = fake_loop(&c);
		struct io_rec r = { 0 };
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
			perror("socketpair");
			exit(1);
		}
		if (socket_cases[i].data)
			xwrite(sv[1], "hello");
		CHECK_INT(loop_watch(l, sv[0], socket_cases[i].interest,
				     io_record, &r), 0);
		CHECK_INT(loop_run_once(l, 0), 0);
		CHECK_INT(r.calls, socket_cases[i].calls);
		CHECK_INT(r.events, socket_cases[i].events);
		loop_free(l);
		close_pair(sv);
	}
}

static void
test_replace_watch(void)
{
	struct fake_clock c = { 0 };
	struct loop *l = fake_loop(&c);
	struct io_rec a = { 0 }, b = { 0 };
	int p[2];

	xpipe(p);
	xwrite(p[1], "x");
	CHECK_INT(loop_watch(l, p[0], LOOP_READ, io_record, &a), 0);
	CHECK_INT(loop_watch(l, p[0], LOOP_READ, io_record, &b), 0);
	CHECK_INT(loop_watch_count(l), 1);
	CHECK_INT(loop_run_once(l, 0), 0);
	CHECK_INT(a.calls, 0);
	CHECK_INT(b.calls, 1);
	errno = 0;
	CHECK_INT(loop_watch(l, p[0], LOOP_READ, NULL, NULL), -1);
	CHECK_INT(errno, EINVAL);
	loop_free(l);
	close_pair(p);
}

enum other_action { OTHER_UNWATCH, OTHER_REPLACE, OTHER_MODIFY, OTHER_REOPEN };

/* Two readable pipes; the callback of the lower fd acts on the higher. */
struct other_ctx {
	enum other_action action;
	bool done; /* act in the first pass only */
	int low[2], high[2];
	struct io_rec orig, repl;
};

static void
other_low_cb(struct loop *l, int fd, unsigned events, void *arg)
{
	struct other_ctx *x = arg;

	(void)fd;
	(void)events;
	if (x->done)
		return;
	x->done = true;
	switch (x->action) {
	case OTHER_UNWATCH:
		loop_unwatch(l, x->high[0]);
		break;
	case OTHER_REPLACE:
		loop_watch(l, x->high[0], LOOP_READ, io_record, &x->repl);
		break;
	case OTHER_MODIFY:
		loop_modify(l, x->high[0], LOOP_WRITE);
		break;
	case OTHER_REOPEN: /* fd number reused by a new, empty pipe */
		loop_unwatch(l, x->high[0]);
		close_pair(x->high);
		xpipe(x->high);
		loop_watch(l, x->high[0], LOOP_READ, io_record, &x->repl);
		break;
	}
}

static const struct {
	enum other_action action;
	int repl_next_pass; /* calls of the new watch after one more pass */
} other_cases[] = {
	{ OTHER_UNWATCH, 0 },
	{ OTHER_REPLACE, 1 }, /* byte still unread */
	{ OTHER_MODIFY, 0 },  /* write interest on a read end: never ready */
	{ OTHER_REOPEN, 0 },  /* new pipe is empty */
};

static void
test_unwatch_other_in_pass(void)
{
	for (size_t i = 0; i < sizeof other_cases / sizeof *other_cases; i++) {
		struct fake_clock c = { 0 };
		struct loop *l = fake_loop(&c);
		struct other_ctx x = { .action = other_cases[i].action };
		int old_high;

		xpipe(x.low);
		xpipe(x.high);
		CHECK(x.low[0] < x.high[0]); /* dispatch goes by fd order */
		old_high = x.high[0];
		xwrite(x.low[1], "x");
		xwrite(x.high[1], "x");
		CHECK_INT(loop_watch(l, x.low[0], LOOP_READ, other_low_cb, &x),
			  0);
		CHECK_INT(loop_watch(l, x.high[0], LOOP_READ, io_record,
				     &x.orig), 0);
		CHECK_INT(loop_run_once(l, 0), 0);
		CHECK_INT(x.orig.calls, 0);
		CHECK_INT(x.repl.calls, 0);
		CHECK_INT(x.high[0], old_high); /* REOPEN reused the number */
		CHECK_INT(loop_run_once(l, 0), 0);
		CHECK_INT(x.orig.calls, 0);
		CHECK_INT(x.repl.calls, other_cases[i].repl_next_pass);
		loop_free(l);
		close_pair(x.low);
		close_pair(x.high);
	}
}

static void
test_fd_limits(void)
{
	static const struct {
		int fd;
		int err;
	} bad[] = {
		{ -1, EBADF },
		{ INT_MIN, EBADF },
		{ FD_SETSIZE, EMFILE },
		{ FD_SETSIZE + 1, EMFILE },
		{ INT_MAX, EMFILE },
	};
	struct fake_clock c = { 0 };
	struct loop *l = fake_loop(&c);
	struct io_rec r = { 0 };
	struct rlimit old, raised;
	int p[2];

	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		errno = 0;
		CHECK_INT(loop_watch(l, bad[i].fd, LOOP_READ, io_record, &r),
			  -1);
		CHECK_INT(errno, bad[i].err);
		errno = 0;
		CHECK_INT(loop_modify(l, bad[i].fd, LOOP_READ), -1);
		CHECK_INT(errno, ENOENT);
		loop_unwatch(l, bad[i].fd);
	}
	CHECK_INT(loop_watch_count(l), 0);

	/* Real fds at the edge: FD_SETSIZE - 1 works, FD_SETSIZE does not. */
	xpipe(p);
	xwrite(p[1], "x");
	if (getrlimit(RLIMIT_NOFILE, &old) < 0) {
		perror("getrlimit");
		exit(1);
	}
	raised = old;
	if (raised.rlim_max == RLIM_INFINITY ||
	    raised.rlim_max > FD_SETSIZE + 1)
		raised.rlim_cur = FD_SETSIZE + 1;
	if (raised.rlim_cur > old.rlim_cur)
		(void)setrlimit(RLIMIT_NOFILE, &raised);
	if (dup2(p[0], FD_SETSIZE - 1) == FD_SETSIZE - 1) {
		CHECK_INT(loop_watch(l, FD_SETSIZE - 1, LOOP_READ, io_record,
				     &r), 0);
		CHECK_INT(loop_run_once(l, 0), 0);
		CHECK_INT(r.calls, 1);
		CHECK_INT(r.fd, FD_SETSIZE - 1);
		loop_unwatch(l, FD_SETSIZE - 1);
		close(FD_SETSIZE - 1);
	} else {
		fprintf(stderr, "note: fd %d not available, edge skipped\n",
			FD_SETSIZE - 1);
	}
	if (dup2(p[0], FD_SETSIZE) == FD_SETSIZE) {
		errno = 0;
		CHECK_INT(loop_watch(l, FD_SETSIZE, LOOP_READ, io_record, &r),
			  -1);
		CHECK_INT(errno, EMFILE);
		close(FD_SETSIZE);
	}
	(void)setrlimit(RLIMIT_NOFILE, &old);
	CHECK_INT(loop_watch_count(l), 0);
	loop_free(l);
	close_pair(p);
}

static void
test_select_error(void)
{
	struct fake_clock c = { 0 };
	struct loop *l = fake_loop(&c);
	struct io_rec r = { 0 };
	int p[2];

	xpipe(p);
	CHECK_INT(loop_watch(l, p[0], LOOP_READ, io_record, &r), 0);
	close_pair(p); /* closed while still watched */
	errno = 0;
	CHECK_INT(loop_run_once(l, 0), -1);
	CHECK_INT(errno, EBADF);
	CHECK_INT(loop_run(l), -1);
	loop_free(l);
}

/* ---- timers ---- */

struct trec {
	struct loop_timer t;
	int id;
	char *order;     /* appends '0' + id */
	uint64_t fired_at;
	int fired;
	uint64_t rearm;  /* re-arm delay from the callback, 0 = none */
	bool rearm_zero; /* re-arm with delay 0 */
	struct trec *arm_other; /* arm this one with delay 0 */
	struct trec *disarm_other;
	struct fake_clock *clock;
	size_t *seq;     /* shared fire counter for ordering */
	size_t fire_seq;
};

static void
trec_fire(struct loop *l, struct loop_timer *t, void *arg)
{
	struct trec *r = arg;
	size_t len;

	CHECK(t == &r->t);
	CHECK(!loop_timer_armed(t));
	r->fired++;
	r->fired_at = loop_now(l);
	if (r->seq)
		r->fire_seq = (*r->seq)++;
	if (r->order) {
		len = strlen(r->order);
		r->order[len] = (char)('0' + r->id);
		r->order[len + 1] = '\0';
	}
	if (r->rearm || r->rearm_zero)
		CHECK_INT(loop_timer_arm(l, t, r->rearm), 0);
	if (r->arm_other)
		CHECK_INT(loop_timer_arm(l, &r->arm_other->t, 0), 0);
	if (r->disarm_other)
		loop_timer_disarm(l, &r->disarm_other->t);
}

static void
test_timer_order(void)
{
	static const uint64_t delays[] = { 30, 10, 20, 10, 0 };
	static const struct {
		uint64_t now;
		const char *fired;
	} steps[] = {
		{ 0, "4" }, { 9, "" }, { 10, "13" }, /* equal when: arm order */
		{ 29, "2" }, { 29, "" }, { 1000, "0" }, { 2000, "" },
	};
	struct fake_clock c = { 0 };
	struct loop *l = fake_loop(&c);
	struct trec r[5];
	char order[16];

	for (int i = 0; i < 5; i++) {
		memset(&r[i], 0, sizeof r[i]);
		r[i].id = i;
		r[i].order = order;
		loop_timer_init(&r[i].t, trec_fire, &r[i]);
		CHECK(!loop_timer_armed(&r[i].t));
		CHECK_INT(loop_timer_arm(l, &r[i].t, delays[i]), 0);
		CHECK(loop_timer_armed(&r[i].t));
		CHECK_INT(r[i].t.when, delays[i]);
	}
	for (size_t s = 0; s < sizeof steps / sizeof *steps; s++) {
		order[0] = '\0';
		c.now = steps[s].now;
		CHECK_INT(loop_run_once(l, 0), 0);
		CHECK_STR(order, steps[s].fired);
	}
	for (int i = 0; i < 5; i++) {
		CHECK_INT(r[i].fired, 1);
		CHECK_INT(r[i].t.heap_index, SIZE_MAX);
	}
	loop_free(l);
}

static void
test_timer_rearm(void)
{
	struct fake_clock c = { 100 };
	struct loop *l = fake_loop(&c);
	struct trec p = { .rearm = 10 }, q = { 0 };

	loop_timer_init(&p.t, trec_fire, &p);
	loop_timer_init(&q.t, trec_fire, &q);
	/* Periodic: re-arms itself from its callback. */
	CHECK_INT(loop_timer_arm(l, &p.t, 10), 0);
	c.now = 110;
	loop_run_once(l, 0);
	CHECK_INT(p.fired, 1);
	CHECK_INT(p.t.when, 120);
	c.now = 115;
	loop_run_once(l, 0);
	CHECK_INT(p.fired, 1);
	c.now = 145; /* late: fires once, next deadline from now */
	loop_run_once(l, 0);
	CHECK_INT(p.fired, 2);
	CHECK_INT(p.t.when, 155);
	loop_timer_disarm(l, &p.t);

	/* Re-arm before expiry moves it later, then earlier. */
	CHECK_INT(loop_timer_arm(l, &q.t, 10), 0); /* 155 */
	c.now = 150;
	CHECK_INT(loop_timer_arm(l, &q.t, 10), 0); /* 160 */
	c.now = 155;
	loop_run_once(l, 0);
	CHECK_INT(q.fired, 0);
	CHECK_INT(loop_timer_arm(l, &q.t, 1000), 0);
	CHECK_INT(loop_timer_arm(l, &q.t, 1), 0); /* 156 */
	c.now = 156;
	loop_run_once(l, 0);
	CHECK_INT(q.fired, 1);
	CHECK_INT(q.fired_at, 156);
	CHECK(!loop_timer_armed(&q.t));
	loop_free(l);
}

static void
test_timer_disarm(void)
{
	struct fake_clock c = { 0 };
	struct loop *l = fake_loop(&c);
	struct trec r[4];

	for (int i = 0; i < 4; i++) {
		memset(&r[i], 0, sizeof r[i]);
		loop_timer_init(&r[i].t, trec_fire, &r[i]);
		CHECK_INT(loop_timer_arm(l, &r[i].t, 10 * (uint64_t)(i + 1)), 0);
	}
	loop_timer_disarm(l, &r[0].t); /* the top */
	loop_timer_disarm(l, &r[2].t); /* the middle */
	loop_timer_disarm(l, &r[2].t); /* twice: no-op */
	CHECK(!loop_timer_armed(&r[0].t));
	CHECK_INT(r[2].t.heap_index, SIZE_MAX);
	/* r[1] disarms r[3], due in the same pass. */
	r[1].disarm_other = &r[3];
	c.now = 100;
	loop_run_once(l, 0);
	CHECK_INT(r[0].fired, 0);
	CHECK_INT(r[1].fired, 1);
	CHECK_INT(r[2].fired, 0);
	CHECK_INT(r[3].fired, 0);
	/* Disarming a disarmed timer is harmless. */
	loop_timer_disarm(l, &r[0].t);
	loop_free(l);
}

/* Checks heap_index of the armed timers is a permutation of 0..n-1. */
static void
check_heap_indexes(struct trec *r, size_t n)
{
	static bool seen[NRANDOM];
	size_t armed = 0;
	bool ok = true;

	memset(seen, 0, sizeof seen);
	for (size_t i = 0; i < n; i++) {
		size_t h = r[i].t.heap_index;

		if (h == SIZE_MAX)
			continue;
		armed++;
		if (h >= n || seen[h])
			ok = false;
		else
			seen[h] = true;
	}
	for (size_t i = 0; ok && i < armed; i++)
		ok = seen[i];
	CHECK(ok);
}

/* Fires in sorted order, each due one in the pass its time comes. */
static void
run_random_timers(struct loop *l, struct fake_clock *c, struct trec *r,
		  size_t n, size_t expect)
{
	size_t seq = 0, fired = 0;
	bool ok = true;

	for (size_t i = 0; i < n; i++)
		r[i].seq = &seq;
	while (c->now < 20000) {
		c->now += (uint64_t)(rand() % 50);
		loop_run_once(l, 0);
		for (size_t i = 0; i < n; i++)
			if (loop_timer_armed(&r[i].t) && r[i].t.when <= c->now)
				ok = false; /* due but left */
		check_heap_indexes(r, n);
	}
	for (size_t i = 0; i < n; i++) {
		if (!r[i].fired)
			continue;
		fired++;
		for (size_t j = 0; j < n; j++)
			if (r[j].fired && r[j].fire_seq < r[i].fire_seq &&
			    r[j].t.when > r[i].t.when)
				ok = false;
		if (r[i].fired_at < r[i].t.when)
			ok = false;
	}
	CHECK(ok);
	CHECK_INT(fired, expect);
	CHECK_INT(seq, expect);
}

static void
test_timer_random(void)
{
	static struct trec r[NRANDOM];
	struct fake_clock c = { 0 };
	struct loop *l = fake_loop(&c);

	srand(12345);
	memset(r, 0, sizeof r);
	for (size_t i = 0; i < NRANDOM; i++) {
		loop_timer_init(&r[i].t, trec_fire, &r[i]);
		CHECK_INT(loop_timer_arm(l, &r[i].t, (uint64_t)(rand() % 10000)),
			  0);
	}
	check_heap_indexes(r, NRANDOM);
	run_random_timers(l, &c, r, NRANDOM, NRANDOM);
	loop_free(l);
}

static void
test_timer_random_disarm(void)
{
	static struct trec r[NRANDOM];
	struct fake_clock c = { 0 };
	struct loop *l = fake_loop(&c);
	size_t armed = NRANDOM;

	srand(777);
	memset(r, 0, sizeof r);
	for (size_t i = 0; i < NRANDOM; i++) {
		loop_timer_init(&r[i].t, trec_fire, &r[i]);
		CHECK_INT(loop_timer_arm(l, &r[i].t, (uint64_t)(rand() % 10000)),
			  0);
	}
	for (size_t k = 0; k < 3 * NRANDOM; k++) {
		struct trec *t = &r[rand() % NRANDOM];

		if (rand() % 2) {
			armed -= loop_timer_armed(&t->t);
			loop_timer_disarm(l, &t->t);
		} else {
			armed += !loop_timer_armed(&t->t);
			CHECK_INT(loop_timer_arm(l, &t->t,
						 (uint64_t)(rand() % 10000)), 0);
		}
	}
	check_heap_indexes(r, NRANDOM);
	CHECK(armed > 0 && armed < NRANDOM);
	run_random_timers(l, &c, r, NRANDOM, armed);
	loop_free(l);
}

static void
test_timer_zero_delay(void)
{
	struct fake_clock c = { 50 };
	struct loop *l = fake_loop(&c);
	struct trec self = { .rearm_zero = true }, a = { 0 }, b = { 0 };

	loop_timer_init(&self.t, trec_fire, &self);
	loop_timer_init(&a.t, trec_fire, &a);
	loop_timer_init(&b.t, trec_fire, &b);
	/* Re-arming itself with 0 fires once per pass, never loops. */
	CHECK_INT(loop_timer_arm(l, &self.t, 0), 0);
	for (int i = 1; i <= 3; i++) {
		CHECK_INT(loop_run_once(l, 0), 0);
		CHECK_INT(self.fired, i);
	}
	loop_timer_disarm(l, &self.t);
	/* a arms b with delay 0: b fires in the next pass. */
	a.arm_other = &b;
	CHECK_INT(loop_timer_arm(l, &a.t, 0), 0);
	CHECK_INT(loop_run_once(l, 0), 0);
	CHECK_INT(a.fired, 1);
	CHECK_INT(b.fired, 0);
	CHECK(loop_timer_armed(&b.t));
	CHECK_INT(loop_run_once(l, 0), 0);
	CHECK_INT(b.fired, 1);
	CHECK_INT(a.fired, 1);
	loop_free(l);
}

/* A fake clock that moves with real time, from a far-off origin. */
static uint64_t
offset_now(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return 5000000000u + (uint64_t)ts.tv_sec * 1000u +
	       (uint64_t)ts.tv_nsec / 1000000u;
}

static void
test_select_timeout(void)
{
	struct loop *l = loop_new();
	struct trec r = { 0 };
	uint64_t t0, t1;

	/* Default clock: monotonic milliseconds; max_wait bounds select(). */
	t0 = loop_now(l);
	CHECK_INT(loop_run_once(l, 20), 0);
	t1 = loop_now(l);
	CHECK(t1 >= t0 + 19 && t1 < t0 + 1000);

	/* Timeout from the next timer on the installed clock, no bound. */
	loop_set_clock(l, offset_now, NULL);
	loop_timer_init(&r.t, trec_fire, &r);
	CHECK_INT(loop_timer_arm(l, &r.t, 20), 0);
	t0 = loop_now(l);
	CHECK(t0 > 5000000000u);
	while (!r.fired && loop_now(l) < t0 + 1000)
		CHECK_INT(loop_run_once(l, -1), 0);
	CHECK_INT(r.fired, 1);
	CHECK(r.fired_at >= t0 + 20 && r.fired_at < t0 + 1000);

	/* A far timer does not delay a max_wait of 0. */
	CHECK_INT(loop_timer_arm(l, &r.t, 100000), 0);
	t0 = loop_now(l);
	CHECK_INT(loop_run_once(l, 0), 0);
	CHECK(loop_now(l) < t0 + 1000);
	CHECK_INT(r.fired, 1);
	loop_free(l);
	CHECK(!loop_timer_armed(&r.t)); /* loop_free disarms */
}

/* ---- signals ---- */

struct sig_rec {
	int calls;
	int last;
	bool stop;
};

static void
sig_record(struct loop *l, int signo, void *arg)
{
	struct sig_rec *s = arg;

	s->calls++;
	s->last = signo;
	if (s->stop)
		loop_stop(l);
}

static void
test_signal(void)
{
	struct fake_clock c = { 0 };
	int fds_before = count_open_fds();
	struct loop *l = fake_loop(&c), *other = fake_loop(&c);
	struct sig_rec u1 = { 0 }, u2 = { 0 }, o = { 0 };
	struct sigaction sa;

	errno = 0;
	CHECK_INT(loop_signal(l, 0, sig_record, &u1), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_INT(loop_signal(l, LOOP_MAX_SIGNO + 1, sig_record, &u1), -1);
	CHECK_INT(loop_signal(l, SIGUSR1, sig_record, &u1), 0);
	CHECK_INT(loop_signal(l, SIGUSR2, sig_record, &u2), 0);
	CHECK_INT(loop_watch_count(l), 0); /* own pipe not counted */
	CHECK_INT(count_open_fds(), fds_before + 2);
	/* Only one loop owns signals. */
	errno = 0;
	CHECK_INT(loop_signal(other, SIGUSR1, sig_record, &o), -1);
	CHECK_INT(errno, EBUSY);

	errno = 4242;
	CHECK_INT(raise(SIGUSR1), 0);
	CHECK_INT(errno, 4242); /* the handler preserves errno */
	CHECK_INT(u1.calls, 0); /* nothing runs inside the handler */
	raise(SIGUSR1);
	raise(SIGUSR2);
	CHECK_INT(loop_run_once(l, 0), 0);
	CHECK_INT(u1.calls, 2);
	CHECK_INT(u1.last, SIGUSR1);
	CHECK_INT(u2.calls, 1);
	CHECK_INT(u2.last, SIGUSR2);
	CHECK_INT(loop_run_once(l, 0), 0);
	CHECK_INT(u1.calls, 2);

	/*
	 * A flood fills the pipe: the handler must neither block (non-blocking
	 * write end) nor leak the write's EAGAIN into errno; the loop then
	 * drains what fitted, a bounded read per pass.
	 */
	u1.calls = 0;
	for (int i = 0; i < SIG_FLOOD; i++)
		raise(SIGUSR1);
	errno = 4242;
	raise(SIGUSR1);
	CHECK_INT(errno, 4242);
	for (int pass = 0; pass < SIG_FLOOD; pass++) {
		int before = u1.calls;

		CHECK_INT(loop_run_once(l, 0), 0);
		if (u1.calls == before)
			break;
	}
	CHECK(u1.calls >= 4096 && u1.calls < SIG_FLOOD);
	CHECK_INT(u1.last, SIGUSR1);

	/* A signal during select() (EINTR) ends loop_run via loop_stop. */
	u2.stop = true;
	{
		struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL,
					.sigev_signo = SIGUSR2 };
		struct itimerspec its = { .it_value = { 0, 20000000 } };
		timer_t tid;

		CHECK_INT(timer_create(CLOCK_MONOTONIC, &sev, &tid), 0);
		CHECK_INT(timer_settime(tid, 0, &its, NULL), 0);
		CHECK_INT(loop_run(l), 0);
		CHECK_INT(u2.calls, 2);
		timer_delete(tid);
	}

	loop_free(l);
	/* Handlers restored, pipe closed, signals free for another loop. */
	CHECK_INT(sigaction(SIGUSR1, NULL, &sa), 0);
	CHECK(sa.sa_handler == SIG_DFL);
	CHECK_INT(count_open_fds(), fds_before);
	CHECK_INT(loop_signal(other, SIGUSR1, sig_record, &o), 0);
	raise(SIGUSR1);
	CHECK_INT(loop_run_once(other, 0), 0);
	CHECK_INT(o.calls, 1);
	loop_free(other);
	CHECK_INT(count_open_fds(), fds_before);
}

/* ---- end of pass ---- */

struct pass_ctx {
	char trace[64];
	int hook_calls;
	int frees;
	bool freed_early; /* a timer saw a deferred object already freed */
	struct loop *l;
	int rfd;
	int *obj;
};

static void
pass_hook(struct loop *l, void *arg)
{
	struct pass_ctx *x = arg;

	(void)l;
	x->hook_calls++;
	strcat(x->trace, "h");
}

static void
pass_hook2(struct loop *l, void *arg)
{
	(void)l;
	strcat(((struct pass_ctx *)arg)->trace, "H");
}

static void
count_free(void *ptr)
{
	struct pass_ctx **xp = ptr;
	struct pass_ctx *x = *xp;

	strcat(x->trace, "f");
	x->frees++;
	free(xp);
}

/* Frees itself and defers a second free while the drain runs. */
static void
chain_free(void *ptr)
{
	struct pass_ctx **xp = ptr;
	struct pass_ctx *x = *xp;
	struct pass_ctx **next = malloc(sizeof *next);

	CHECK(next != NULL);
	*next = x;
	strcat(x->trace, "c");
	loop_defer_free(x->l, count_free, next);
	free(xp);
}

static void
pass_io(struct loop *l, int fd, unsigned events, void *arg)
{
	struct pass_ctx *x = arg;
	struct pass_ctx **obj = malloc(sizeof *obj);
	char b;

	(void)events;
	CHECK(obj != NULL);
	*obj = x;
	strcat(x->trace, "i");
	CHECK_INT(read(fd, &b, 1), 1);
	loop_defer_free(l, chain_free, obj);
}

static void
pass_timer(struct loop *l, struct loop_timer *t, void *arg)
{
	struct pass_ctx *x = arg;

	(void)l;
	(void)t;
	strcat(x->trace, "t");
	if (x->frees > 0 || strchr(x->trace, 'c'))
		x->freed_early = true;
}

static void
test_pass_end(void)
{
	struct fake_clock c = { 0 };
	struct loop *l = fake_loop(&c);
	struct pass_ctx x = { .l = l };
	struct loop_timer t;
	int p[2];

	xpipe(p);
	loop_timer_init(&t, pass_timer, &x);
	CHECK_INT(loop_watch(l, p[0], LOOP_READ, pass_io, &x), 0);
	CHECK_INT(loop_on_pass_end(l, pass_hook, &x), 0);
	CHECK_INT(loop_on_pass_end(l, pass_hook2, &x), 0);
	for (int i = 2; i < LOOP_MAX_PASS_HOOKS; i++)
		CHECK_INT(loop_on_pass_end(l, pass_hook, &x), 0);
	errno = 0;
	CHECK_INT(loop_on_pass_end(l, pass_hook, &x), -1);
	CHECK_INT(errno, ENOSPC);

	/* I/O, then timers, then hooks in order, then the deferred frees. */
	xwrite(p[1], "x");
	CHECK_INT(loop_timer_arm(l, &t, 0), 0);
	CHECK_INT(loop_run_once(l, 0), 0);
	CHECK_STR(x.trace, "ithHhhhhhhcf");
	CHECK_INT(x.hook_calls, LOOP_MAX_PASS_HOOKS - 1);
	CHECK_INT(x.frees, 1);
	CHECK(!x.freed_early);
	/* A quiet pass still runs the hooks, and each free ran only once. */
	x.trace[0] = '\0';
	CHECK_INT(loop_run_once(l, 0), 0);
	CHECK_STR(x.trace, "hHhhhhhh");
	CHECK_INT(x.frees, 1);
	loop_free(l);
	close_pair(p);
}

static void
test_free_releases(void)
{
	struct fake_clock c = { 0 };
	struct loop *l = fake_loop(&c);
	struct pass_ctx x = { .l = l };
	struct pass_ctx **obj = malloc(sizeof *obj);
	struct trec r = { 0 };

	CHECK(obj != NULL);
	*obj = &x;
	loop_timer_init(&r.t, trec_fire, &r);
	CHECK_INT(loop_timer_arm(l, &r.t, 10), 0);
	loop_defer_free(l, chain_free, obj); /* outside any pass */
	loop_free(l);                        /* runs it, and its child */
	CHECK_STR(x.trace, "cf");
	CHECK(!loop_timer_armed(&r.t));
	CHECK_INT(r.fired, 0);
	loop_free(NULL);
}

static void
stop_timer(struct loop *l, struct loop_timer *t, void *arg)
{
	struct trec *r = arg;

	r->fired++;
	if (r->fired % 5 == 0)
		loop_stop(l);
	else
		CHECK_INT(loop_timer_arm(l, t, 10), 0);
	r->clock->now += 10; /* the next one is due in the next pass */
}

static void
test_run_stop(void)
{
	struct fake_clock c = { 0 };
	struct loop *l = fake_loop(&c);
	struct trec r = { .clock = &c };

	loop_timer_init(&r.t, stop_timer, &r);
	CHECK_INT(loop_timer_arm(l, &r.t, 10), 0);
	c.now = 10;
	CHECK_INT(loop_run(l), 0);
	CHECK_INT(r.fired, 5);
	CHECK_INT(c.now, 60);
	/* The stop is consumed: a second run goes on until the next stop. */
	CHECK_INT(loop_timer_arm(l, &r.t, 0), 0);
	CHECK_INT(loop_run(l), 0);
	CHECK_INT(r.fired, 10);
	loop_free(l);
}

int
main(void)
{
	alarm(30); /* a hang is a failure */
	test_pipe_read();
	test_socketpair_events();
	test_replace_watch();
	test_unwatch_other_in_pass();
	test_fd_limits();
	test_select_error();
	test_timer_order();
	test_timer_rearm();
	test_timer_disarm();
	test_timer_random();
	test_timer_random_disarm();
	test_timer_zero_delay();
	test_select_timeout();
	test_signal();
	test_pass_end();
	test_free_releases();
	test_run_stop();
	return test_summary();
}

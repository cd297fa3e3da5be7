/*
 * test_loop: the select() loop (src/common/loop.c) with a fake clock: I/O
 * dispatch over pipes and socketpairs, watches removed or replaced during
 * a pass, the FD_SETSIZE limit, timer order, re-arm, disarm and the heap
 * under 1000 random timers, the signal self-pipe, pass-end hooks and
 * deferred frees. Only the timeout test waits, a few tens of milliseconds;
 * alarm() turns a hang into a failure.
 */
#include "loop.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NRANDOM 1000
#define SIG_FLOOD 70000 /* raises: more than a 64 KiB pipe holds */
#define PASS(l) CHECK_INT(loop_run_once((l), 0), 0)
#define NELEM(a) (sizeof(a) / sizeof *(a))

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
xwrite(int fd)
{
	if (write(fd, "x", 1) != 1) {
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

/* What a callback saw; each call appends mark to *trace if set. */
struct rec {
	int calls;
	int fd;
	unsigned events;
	int signo;
	bool stop;
	char mark;
	char *trace;
};

static void
rec_note(struct rec *r)
{
	r->calls++;
	if (r->trace) {
		size_t n = strlen(r->trace);

		r->trace[n] = r->mark;
		r->trace[n + 1] = '\0';
	}
}

static void
io_rec(struct loop *l, int fd, unsigned events, void *arg)
{
	struct rec *r = arg;

	(void)l;
	r->fd = fd;
	r->events = events;
	rec_note(r);
}

static void
sig_rec(struct loop *l, int signo, void *arg)
{
	struct rec *r = arg;

	r->signo = signo;
	rec_note(r);
	if (r->stop)
		loop_stop(l);
}

/* ---- I/O ---- */

static void
test_pipe_read(void)
{
	struct fake_clock c = {0};
	struct loop *l = fake_loop(&c);
	struct rec r = {0}, b = {0};
	int p[2];

	xpipe(p);
	CHECK_INT(loop_watch(l, p[0], LOOP_READ, io_rec, &r), 0);
	CHECK_INT(loop_watch_count(l), 1);
	PASS(l);
	CHECK_INT(r.calls, 0);
	xwrite(p[1]);
	PASS(l);
	CHECK_INT(r.calls, 1);
	CHECK_INT(r.fd, p[0]);
	CHECK_INT(r.events, LOOP_READ);
	PASS(l); /* level-triggered: still unread */
	CHECK_INT(r.calls, 2);
	CHECK_INT(loop_modify(l, p[0], 0), 0); /* slot kept, not selected */
	PASS(l);
	CHECK_INT(r.calls, 2);
	CHECK_INT(loop_watch_count(l), 1);
	CHECK_INT(loop_modify(l, p[0], LOOP_READ), 0);
	PASS(l);
	CHECK_INT(r.calls, 3);
	/* Watching again replaces the watch. */
	CHECK_INT(loop_watch(l, p[0], LOOP_READ, io_rec, &b), 0);
	CHECK_INT(loop_watch_count(l), 1);
	PASS(l);
	CHECK_INT(r.calls, 3);
	CHECK_INT(b.calls, 1);
	loop_unwatch(l, p[0]);
	loop_unwatch(l, p[0]); /* not an error */
	CHECK_INT(loop_watch_count(l), 0);
	PASS(l);
	CHECK_INT(b.calls, 1);
	errno = 0;
	CHECK_INT(loop_modify(l, p[0], LOOP_READ), -1);
	CHECK_INT(errno, ENOENT);
	errno = 0;
	CHECK_INT(loop_watch(l, p[0], LOOP_READ, NULL, NULL), -1);
	CHECK_INT(errno, EINVAL);
	loop_free(l);
	CHECK(fcntl(p[0], F_GETFD) >= 0); /* loop_free does not close it */
	close_pair(p);
}

static const struct {
	unsigned interest;
	bool data;
	int calls;
	unsigned events;
} socket_cases[] = {
    {LOOP_WRITE, false, 1, LOOP_WRITE},
    {LOOP_READ, false, 0, 0},
    {LOOP_READ | LOOP_WRITE, false, 1, LOOP_WRITE},
    {LOOP_READ | LOOP_WRITE, true, 1, LOOP_READ | LOOP_WRITE},
    {LOOP_READ, true, 1, LOOP_READ},
    {LOOP_WRITE, true, 1, LOOP_WRITE},
    {0, true, 0, 0},
};

static void
test_socketpair_events(void)
{
	for (size_t i = 0; i < NELEM(socket_cases); i++) {
		struct fake_clock c = {0};
		struct loop *l = fake_loop(&c);
		struct rec r = {0};
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
			perror("socketpair");
			exit(1);
		}
		if (socket_cases[i].data)
			xwrite(sv[1]);
		CHECK_INT(
		    loop_watch(l, sv[0], socket_cases[i].interest, io_rec, &r),
		    0);
		PASS(l);
		CHECK_INT(r.calls, socket_cases[i].calls);
		CHECK_INT(r.events, socket_cases[i].events);
		loop_free(l);
		close_pair(sv);
	}
}

enum other_action { OTHER_UNWATCH, OTHER_REPLACE, OTHER_MODIFY, OTHER_REOPEN };

/* Two readable pipes; the callback of the lower fd acts on the higher. */
struct other_ctx {
	enum other_action action;
	bool done; /* act in the first pass only */
	int low[2], high[2];
	struct rec orig, repl;
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
	if (x->action == OTHER_MODIFY) {
		loop_modify(l, x->high[0], LOOP_WRITE);
		return;
	}
	loop_unwatch(l, x->high[0]);
	if (x->action == OTHER_REOPEN) { /* same fd number, new empty pipe */
		close_pair(x->high);
		xpipe(x->high);
	}
	if (x->action != OTHER_UNWATCH)
		loop_watch(l, x->high[0], LOOP_READ, io_rec, &x->repl);
}

static const struct {
	enum other_action action;
	int repl_next_pass; /* calls of the new watch in the next pass */
} other_cases[] = {
    {OTHER_UNWATCH, 0},
    {OTHER_REPLACE, 1}, /* byte still unread */
    {OTHER_MODIFY, 0},	/* write interest on a read end: never ready */
    {OTHER_REOPEN, 0},	/* new pipe is empty */
};

static void
test_unwatch_other_in_pass(void)
{
	for (size_t i = 0; i < NELEM(other_cases); i++) {
		struct fake_clock c = {0};
		struct loop *l = fake_loop(&c);
		struct other_ctx x = {.action = other_cases[i].action};
		int old_high;

		xpipe(x.low);
		xpipe(x.high);
		CHECK(x.low[0] < x.high[0]); /* dispatch goes by fd order */
		old_high = x.high[0];
		xwrite(x.low[1]);
		xwrite(x.high[1]);
		CHECK_INT(loop_watch(l, x.low[0], LOOP_READ, other_low_cb, &x),
			  0);
		CHECK_INT(loop_watch(l, x.high[0], LOOP_READ, io_rec, &x.orig),
			  0);
		PASS(l);
		CHECK_INT(x.orig.calls, 0);
		CHECK_INT(x.repl.calls, 0);	/* not with the old readiness */
		CHECK_INT(x.high[0], old_high); /* REOPEN reused the number */
		PASS(l);
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
	    {-1, EBADF},	  {INT_MIN, EBADF},
	    {FD_SETSIZE, EMFILE}, {FD_SETSIZE + 1, EMFILE},
	    {INT_MAX, EMFILE},
	};
	struct fake_clock c = {0};
	struct loop *l = fake_loop(&c);
	struct rec r = {0};
	int p[2];

	for (size_t i = 0; i < NELEM(bad); i++) {
		errno = 0;
		CHECK_INT(loop_watch(l, bad[i].fd, LOOP_READ, io_rec, &r), -1);
		CHECK_INT(errno, bad[i].err);
		CHECK_INT(loop_modify(l, bad[i].fd, LOOP_READ), -1);
		loop_unwatch(l, bad[i].fd);
	}
	CHECK_INT(loop_watch_count(l), 0);
	/* The last fd select() can see works (when the rlimit allows it). */
	xpipe(p);
	xwrite(p[1]);
	if (dup2(p[0], FD_SETSIZE - 1) == FD_SETSIZE - 1) {
		CHECK_INT(loop_watch(l, FD_SETSIZE - 1, LOOP_READ, io_rec, &r),
			  0);
		PASS(l);
		CHECK_INT(r.calls, 1);
		CHECK_INT(r.fd, FD_SETSIZE - 1);
		loop_unwatch(l, FD_SETSIZE - 1);
		close(FD_SETSIZE - 1);
	}
	/* A watched fd closed behind the loop's back: select() fails. */
	CHECK_INT(loop_watch(l, p[0], LOOP_READ, io_rec, &r), 0);
	close_pair(p);
	errno = 0;
	CHECK_INT(loop_run_once(l, 0), -1);
	CHECK_INT(errno, EBADF);
	CHECK_INT(loop_run(l), -1);
	loop_free(l);
}

/* ---- timers ---- */

struct trec {
	struct loop_timer t;
	struct rec r;
	uint64_t fired_at;
	size_t fire_seq; /* value of *seq when it fired */
	size_t *seq;
	bool rearm; /* re-arm itself with delay */
	uint64_t delay;
	struct trec *arm_other; /* arm with delay 0 */
	struct trec *disarm_other;
	int stop_at; /* loop_stop() at this many calls */
};

static void
trec_fire(struct loop *l, struct loop_timer *t, void *arg)
{
	struct trec *x = arg;

	CHECK(t == &x->t);
	CHECK(!loop_timer_armed(t));
	rec_note(&x->r);
	x->fired_at = loop_now(l);
	if (x->seq)
		x->fire_seq = (*x->seq)++;
	if (x->rearm)
		CHECK_INT(loop_timer_arm(l, t, x->delay), 0);
	if (x->arm_other)
		CHECK_INT(loop_timer_arm(l, &x->arm_other->t, 0), 0);
	if (x->disarm_other)
		loop_timer_disarm(l, &x->disarm_other->t);
	if (x->stop_at && x->r.calls == x->stop_at)
		loop_stop(l);
}

static void
trec_init(struct trec *x, char mark, char *trace)
{
	memset(x, 0, sizeof *x);
	x->r.mark = mark;
	x->r.trace = trace;
	loop_timer_init(&x->t, trec_fire, x);
	CHECK(!loop_timer_armed(&x->t));
}

static void
test_timer_order(void)
{
	static const uint64_t delays[] = {30, 10, 20, 10, 0};
	static const struct {
		uint64_t now;
		const char *fired;
	} steps[] = {
	    {0, "4"},  {9, ""},	 {10, "13"}, /* equal when: arm order */
	    {29, "2"}, {29, ""}, {1000, "0"}, {2000, ""},
	};
	struct fake_clock c = {0};
	struct loop *l = fake_loop(&c);
	struct trec x[NELEM(delays)];
	char trace[16];

	for (size_t i = 0; i < NELEM(delays); i++) {
		trec_init(&x[i], (char)('0' + i), trace);
		CHECK_INT(loop_timer_arm(l, &x[i].t, delays[i]), 0);
		CHECK(loop_timer_armed(&x[i].t));
		CHECK_INT(x[i].t.when, delays[i]);
	}
	for (size_t s = 0; s < NELEM(steps); s++) {
		trace[0] = '\0';
		c.now = steps[s].now;
		PASS(l);
		CHECK_STR(trace, steps[s].fired);
	}
	for (size_t i = 0; i < NELEM(delays); i++) {
		CHECK_INT(x[i].r.calls, 1);
		CHECK_INT(x[i].t.heap_index, SIZE_MAX);
	}
	loop_free(l);
}

static void
test_timer_rearm_disarm(void)
{
	struct fake_clock c = {100};
	struct loop *l = fake_loop(&c);
	struct trec p, q, d[4];

	trec_init(&p, 'p', NULL);
	trec_init(&q, 'q', NULL);
	p.rearm = true; /* periodic: re-arms itself from its callback */
	p.delay = 10;
	CHECK_INT(loop_timer_arm(l, &p.t, 10), 0);
	c.now = 110;
	PASS(l);
	CHECK_INT(p.r.calls, 1);
	CHECK_INT(p.t.when, 120);
	c.now = 115;
	PASS(l);
	CHECK_INT(p.r.calls, 1);
	c.now = 145; /* late: fires once, next deadline from now */
	PASS(l);
	CHECK_INT(p.r.calls, 2);
	CHECK_INT(p.t.when, 155);
	loop_timer_disarm(l, &p.t);

	/* Re-arm before expiry moves it later, then earlier. */
	CHECK_INT(loop_timer_arm(l, &q.t, 10), 0);
	c.now = 150;
	CHECK_INT(loop_timer_arm(l, &q.t, 10), 0);
	c.now = 155;
	PASS(l);
	CHECK_INT(q.r.calls, 0);
	CHECK_INT(loop_timer_arm(l, &q.t, 1000), 0);
	CHECK_INT(loop_timer_arm(l, &q.t, 1), 0);
	c.now = 156;
	PASS(l);
	CHECK_INT(q.r.calls, 1);
	CHECK_INT(q.fired_at, 156);
	CHECK(!loop_timer_armed(&q.t));

	/* Disarm the top, the middle, twice; d[1] disarms d[3], also due. */
	for (int i = 0; i < 4; i++) {
		trec_init(&d[i], 'd', NULL);
		CHECK_INT(loop_timer_arm(l, &d[i].t, 10 * (uint64_t)(i + 1)),
			  0);
	}
	loop_timer_disarm(l, &d[0].t);
	loop_timer_disarm(l, &d[2].t);
	loop_timer_disarm(l, &d[2].t);
	CHECK(!loop_timer_armed(&d[0].t));
	CHECK_INT(d[2].t.heap_index, SIZE_MAX);
	d[1].disarm_other = &d[3];
	c.now = 1000;
	PASS(l);
	CHECK_INT(d[0].r.calls + d[2].r.calls + d[3].r.calls, 0);
	CHECK_INT(d[1].r.calls, 1);
	loop_free(l);
}

/* The armed timers' heap_index values are exactly 0..armed-1. */
static void
check_heap_indexes(const struct trec *x, size_t n)
{
	static bool seen[NRANDOM];
	size_t armed = 0;
	bool ok = true;

	memset(seen, 0, sizeof seen);
	for (size_t i = 0; i < n; i++) {
		size_t h = x[i].t.heap_index;

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

/* Fires in order of when, each in the first pass at or past its time. */
static void
run_random_timers(struct loop *l, struct fake_clock *c, struct trec *x,
		  size_t expect)
{
	size_t seq = 0, fired = 0;
	bool ok = true;

	for (size_t i = 0; i < NRANDOM; i++)
		x[i].seq = &seq;
	while (c->now < 20000) {
		c->now += (uint64_t)(rand() % 50);
		PASS(l);
		for (size_t i = 0; i < NRANDOM; i++)
			if (loop_timer_armed(&x[i].t) && x[i].t.when <= c->now)
				ok = false; /* due but left */
		check_heap_indexes(x, NRANDOM);
	}
	for (size_t i = 0; i < NRANDOM; i++) {
		if (!x[i].r.calls)
			continue;
		fired++;
		for (size_t j = 0; j < NRANDOM; j++)
			if (x[j].r.calls && x[j].fire_seq < x[i].fire_seq &&
			    x[j].t.when > x[i].t.when)
				ok = false;
		if (x[i].fired_at < x[i].t.when || x[i].r.calls != 1)
			ok = false;
	}
	CHECK(ok);
	CHECK_INT(fired, expect);
	CHECK_INT(seq, expect);
}

/* 1000 random timers; with churn, a third of the steps disarm one. */
static void
test_timer_random(bool churn)
{
	static struct trec x[NRANDOM];
	struct fake_clock c = {0};
	struct loop *l = fake_loop(&c);
	size_t armed = NRANDOM;

	srand(churn ? 777 : 12345);
	for (size_t i = 0; i < NRANDOM; i++) {
		trec_init(&x[i], 'r', NULL);
		CHECK_INT(
		    loop_timer_arm(l, &x[i].t, (uint64_t)(rand() % 10000)), 0);
	}
	for (size_t k = 0; churn && k < 3 * NRANDOM; k++) {
		struct trec *t = &x[rand() % NRANDOM];

		if (rand() % 3 == 0) {
			armed -= loop_timer_armed(&t->t);
			loop_timer_disarm(l, &t->t);
		} else {
			armed += !loop_timer_armed(&t->t);
			CHECK_INT(loop_timer_arm(l, &t->t,
						 (uint64_t)(rand() % 10000)),
				  0);
		}
	}
	check_heap_indexes(x, NRANDOM);
	CHECK(churn ? armed < NRANDOM && armed > 0 : armed == NRANDOM);
	run_random_timers(l, &c, x, armed);
	loop_free(l);
}

static void
io_arm(struct loop *l, int fd, unsigned events, void *arg)
{
	struct trec *x = arg;

	(void)events;
	strcat(x->r.trace, "i");
	loop_unwatch(l, fd);
	CHECK_INT(loop_timer_arm(l, &x->t, 0), 0);
}

static void
test_timer_zero_delay(void)
{
	struct fake_clock c = {50};
	struct loop *l = fake_loop(&c);
	struct trec self, a, b;
	char trace[8] = "";
	int p[2];

	trec_init(&self, 's', NULL);
	trec_init(&a, 'a', trace);
	trec_init(&b, 'b', trace);
	/* Re-arming itself with 0 fires once per pass, never loops. */
	self.rearm = true;
	CHECK_INT(loop_timer_arm(l, &self.t, 0), 0);
	for (int i = 1; i <= 3; i++) {
		PASS(l);
		CHECK_INT(self.r.calls, i);
	}
	loop_timer_disarm(l, &self.t);
	/* a arms b with delay 0 from its callback: b fires next pass. */
	a.arm_other = &b;
	CHECK_INT(loop_timer_arm(l, &a.t, 0), 0);
	PASS(l);
	CHECK_STR(trace, "a");
	CHECK(loop_timer_armed(&b.t));
	PASS(l);
	CHECK_STR(trace, "ab");
	/* Armed from an I/O callback, it fires in the same pass. */
	xpipe(p);
	xwrite(p[1]);
	CHECK_INT(loop_watch(l, p[0], LOOP_READ, io_arm, &a), 0);
	trace[0] = '\0';
	a.arm_other = NULL;
	PASS(l);
	CHECK_STR(trace, "ia");
	loop_free(l);
	close_pair(p);
}

/* A clock that moves with real time, from a far-off origin. */
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
	struct trec x;
	uint64_t t0, t1;

	/* Default clock: monotonic milliseconds; max_wait bounds select(). */
	t0 = loop_now(l);
	CHECK_INT(loop_run_once(l, 20), 0);
	t1 = loop_now(l);
	CHECK(t1 >= t0 + 19 && t1 < t0 + 1000);
	/* With no bound, the next timer on the installed clock wakes it. */
	loop_set_clock(l, offset_now, NULL);
	trec_init(&x, 't', NULL);
	CHECK_INT(loop_timer_arm(l, &x.t, 20), 0);
	t0 = loop_now(l);
	CHECK(t0 > 5000000000u);
	while (!x.r.calls && loop_now(l) < t0 + 1000)
		CHECK_INT(loop_run_once(l, -1), 0);
	CHECK_INT(x.r.calls, 1);
	CHECK(x.fired_at >= t0 + 20 && x.fired_at < t0 + 1000);
	/* A far timer does not stretch max_wait 0. */
	CHECK_INT(loop_timer_arm(l, &x.t, 100000), 0);
	t0 = loop_now(l);
	PASS(l);
	CHECK(loop_now(l) < t0 + 1000);
	CHECK_INT(x.r.calls, 1);
	loop_free(l);
	CHECK(!loop_timer_armed(&x.t)); /* loop_free disarms */
}

/* ---- signals ---- */

static void
test_signal_flood(struct loop *l, struct rec *r)
{
	/*
	 * Filling the pipe: the handler must neither block (non-blocking write
	 * end) nor leak the write's EAGAIN into errno; the loop then drains
	 * what fitted, a bounded read per pass.
	 */
	r->calls = 0;
	for (int i = 0; i < SIG_FLOOD; i++)
		raise(SIGUSR1);
	errno = 4242;
	raise(SIGUSR1);
	CHECK_INT(errno, 4242);
	for (int pass = 0; pass < SIG_FLOOD; pass++) {
		int before = r->calls;

		PASS(l);
		if (r->calls == before)
			break;
	}
	CHECK(r->calls >= 4096 && r->calls < SIG_FLOOD);
}

static void
test_signal(void)
{
	struct fake_clock c = {0};
	int fds_before = count_open_fds();
	struct loop *l = fake_loop(&c), *other = fake_loop(&c);
	struct rec u1 = {0}, u2 = {.stop = true}, o = {0};
	struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL,
			       .sigev_signo = SIGUSR2};
	struct itimerspec its = {.it_value = {0, 20000000}};
	struct sigaction sa;
	timer_t tid;

	errno = 0;
	CHECK_INT(loop_signal(l, 0, sig_rec, &u1), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_INT(loop_signal(l, LOOP_MAX_SIGNO + 1, sig_rec, &u1), -1);
	CHECK_INT(loop_signal(l, SIGKILL, sig_rec, &u1), -1); /* sigaction */
	CHECK_INT(loop_signal(l, SIGUSR1, sig_rec, &o), 0);
	CHECK_INT(loop_signal(l, SIGUSR1, sig_rec, &u1), 0); /* replaces */
	CHECK_INT(loop_signal(l, SIGUSR2, sig_rec, &u2), 0);
	CHECK_INT(loop_watch_count(l), 0); /* own pipe not counted */
	CHECK_INT(count_open_fds(), fds_before + 2);
	errno = 0; /* only one loop owns signals */
	CHECK_INT(loop_signal(other, SIGUSR1, sig_rec, &o), -1);
	CHECK_INT(errno, EBUSY);

	errno = 4242;
	CHECK_INT(raise(SIGUSR1), 0);
	CHECK_INT(errno, 4242);
	CHECK_INT(u1.calls, 0); /* nothing runs inside the handler */
	raise(SIGUSR1);
	PASS(l);
	CHECK_INT(u1.calls, 2);
	CHECK_INT(u1.signo, SIGUSR1);
	CHECK_INT(o.calls, 0);
	PASS(l);
	CHECK_INT(u1.calls, 2);
	test_signal_flood(l, &u1);

	/* A signal during select() (EINTR) ends loop_run via loop_stop. */
	CHECK_INT(timer_create(CLOCK_MONOTONIC, &sev, &tid), 0);
	CHECK_INT(timer_settime(tid, 0, &its, NULL), 0);
	CHECK_INT(loop_run(l), 0);
	CHECK_INT(u2.calls, 1);
	CHECK_INT(u2.signo, SIGUSR2);
	timer_delete(tid);

	loop_free(l);
	/* Handlers restored, pipe closed, signals free for another loop. */
	CHECK_INT(sigaction(SIGUSR1, NULL, &sa), 0);
	CHECK(sa.sa_handler == SIG_DFL);
	CHECK_INT(count_open_fds(), fds_before);
	CHECK_INT(loop_signal(other, SIGUSR1, sig_rec, &o), 0);
	raise(SIGUSR1);
	PASS(other);
	CHECK_INT(o.calls, 1);
	loop_free(other);
	CHECK_INT(count_open_fds(), fds_before);
}

/* ---- end of pass ---- */

struct pass_ctx {
	struct loop *l;
	char trace[64];
	int frees;
	bool freed_early; /* the timer saw a deferred free already run */
};

static void
pass_hook(struct loop *l, void *arg)
{
	(void)l;
	strcat(((struct pass_ctx *)arg)->trace, "h");
}

static void
pass_hook2(struct loop *l, void *arg)
{
	(void)l;
	strcat(((struct pass_ctx *)arg)->trace, "H");
}

/* Deferred objects are heap boxes pointing at the context, so ASan sees a
 * free that runs twice or never. */
static void
box_free(void *ptr)
{
	struct pass_ctx *x = *(struct pass_ctx **)ptr;

	strcat(x->trace, "f");
	x->frees++;
	free(ptr);
}

static void
box_defer(struct pass_ctx *x, loop_free_fn *fn)
{
	struct pass_ctx **box = malloc(sizeof *box);

	if (!box) {
		perror("malloc");
		exit(1);
	}
	*box = x;
	loop_defer_free(x->l, fn, box);
}

/* Defers a second free while the drain runs, then frees itself. */
static void
chain_free(void *ptr)
{
	struct pass_ctx *x = *(struct pass_ctx **)ptr;

	strcat(x->trace, "c");
	box_defer(x, box_free);
	free(ptr);
}

static void
pass_io(struct loop *l, int fd, unsigned events, void *arg)
{
	struct pass_ctx *x = arg;
	char b;

	(void)l;
	(void)events;
	strcat(x->trace, "i");
	CHECK_INT(read(fd, &b, 1), 1);
	box_defer(x, chain_free);
}

static void
pass_timer(struct loop *l, struct loop_timer *t, void *arg)
{
	struct pass_ctx *x = arg;

	(void)l;
	(void)t;
	strcat(x->trace, "t");
	x->freed_early = x->frees > 0 || strchr(x->trace, 'c');
}

static void
test_pass_end(void)
{
	struct fake_clock c = {0};
	struct loop *l = fake_loop(&c);
	struct pass_ctx x = {.l = l};
	struct loop_timer t;
	struct trec leftover;
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
	xwrite(p[1]);
	CHECK_INT(loop_timer_arm(l, &t, 0), 0);
	PASS(l);
	CHECK_STR(x.trace, "ithHhhhhhhcf");
	CHECK_INT(x.frees, 1);
	CHECK(!x.freed_early);
	/* A quiet pass still runs every hook once; each free ran once. */
	x.trace[0] = '\0';
	PASS(l);
	CHECK_STR(x.trace, "hHhhhhhh");
	CHECK_INT(x.frees, 1);
	/* loop_free runs frees still pending and disarms timers. */
	trec_init(&leftover, 'l', NULL);
	CHECK_INT(loop_timer_arm(l, &leftover.t, 10), 0);
	x.trace[0] = '\0';
	box_defer(&x, chain_free); /* outside any pass */
	loop_free(l);
	CHECK_STR(x.trace, "cf");
	CHECK(!loop_timer_armed(&leftover.t));
	CHECK_INT(leftover.r.calls, 0);
	loop_free(NULL);
	close_pair(p);
}

static void
test_run_stop(void)
{
	struct fake_clock c = {0};
	struct loop *l = fake_loop(&c);
	struct trec x;

	trec_init(&x, 's', NULL);
	x.rearm = true; /* once per pass */
	x.stop_at = 5;
	CHECK_INT(loop_timer_arm(l, &x.t, 0), 0);
	CHECK_INT(loop_run(l), 0);
	CHECK_INT(x.r.calls, 5);
	/* The stop is consumed: a second run goes until the next one. */
	x.stop_at = 8;
	CHECK_INT(loop_run(l), 0);
	CHECK_INT(x.r.calls, 8);
	loop_free(l);
}

int
main(void)
{
	alarm(30); /* a hang is a failure */
	test_pipe_read();
	test_socketpair_events();
	test_unwatch_other_in_pass();
	test_fd_limits();
	test_timer_order();
	test_timer_rearm_disarm();
	test_timer_random(false);
	test_timer_random(true);
	test_timer_zero_delay();
	test_select_timeout();
	test_signal();
	test_pass_end();
	test_run_stop();
	return test_summary();
}

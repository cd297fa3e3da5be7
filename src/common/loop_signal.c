/*
 * loop_signal: signals for the loop, see loop_signal() in loop.h. The
 * handler only writes the signal number into a self-pipe; the loop reads
 * it and runs the callback from the pass like any other watch.
 *
 * Owns: the signal self-pipe and the sigactions it replaced (in struct
 * loop), and the static the handler writes through.
 */
#include "loop_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#define LOOP_SIG_CHUNK 64 /* signal bytes read per dispatch */

/*
 * The one piece of process state. A signal handler gets no argument, so the
 * write end of the self-pipe has to be reachable from a static. Only one
 * loop (the worker's) may own signals at a time; loop_signal() on another
 * fails with EBUSY. A lock-free atomic is safe to read in a handler
 * (C11 7.14.1.1) and makes the claim race-free.
 */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "signal handler needs lock-free int");
static atomic_int loop_sig_wfd = -1;

/* ---- signals: handler -> self-pipe byte -> loop callback ---- */

static void
loop_sig_handler(int signo)
{
	int saved = errno;
	int fd = atomic_load(&loop_sig_wfd);
	unsigned char b = (unsigned char)signo;

	if (fd >= 0) {
		/*
		 * A full pipe (EAGAIN) drops the byte: 64 KiB of signals are
		 * already waiting, and the kernel coalesces them anyway.
		 */
		ssize_t r = write(fd, &b, 1);
		(void)r;
	}
	errno = saved;
}

static void
loop_sig_read(struct loop *l, int fd, unsigned events, void *arg)
{
	unsigned char buf[LOOP_SIG_CHUNK];
	ssize_t n;

	(void)events;
	(void)arg;
	/* One bounded read per pass; the rest keeps the fd readable. */
	do
		n = read(fd, buf, sizeof buf);
	while (n < 0 && errno == EINTR);
	/* EAGAIN: a spurious wake-up. Nothing else can fail on our pipe. */
	for (ssize_t i = 0; i < n; i++) {
		struct loop_sig_slot *s;

		if (buf[i] == 0 || buf[i] > LOOP_MAX_SIGNO)
			continue;
		s = &l->sig[buf[i]];
		if (s->fn)
			s->fn(l, buf[i], s->arg);
	}
}

static void
loop_sig_close_pipe(struct loop *l)
{
	int expected = l->sig_pipe[1];

	if (l->sig_pipe[0] < 0)
		return;
	/* Stop the handler from writing before the fd can be reused. */
	(void)atomic_compare_exchange_strong(&loop_sig_wfd, &expected, -1);
	loop_unwatch(l, l->sig_pipe[0]);
	/* close() errors leave nothing to undo on a pipe. */
	(void)close(l->sig_pipe[0]);
	(void)close(l->sig_pipe[1]);
	l->sig_pipe[0] = -1;
	l->sig_pipe[1] = -1;
}

/* Creates the self-pipe on first use and claims the handler's static. */
static int
loop_sig_open(struct loop *l)
{
	int expected = -1;
	int saved;

	if (l->sig_pipe[0] >= 0)
		return 0;
	if (atomic_load(&loop_sig_wfd) != -1) {
		errno = EBUSY;
		return -1;
	}
	if (pipe2(l->sig_pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
		l->sig_pipe[0] = -1;
		l->sig_pipe[1] = -1;
		return -1;
	}
	if (loop_watch(l, l->sig_pipe[0], LOOP_READ, loop_sig_read, NULL) < 0) {
		saved = errno;
		(void)close(l->sig_pipe[0]);
		(void)close(l->sig_pipe[1]);
		l->sig_pipe[0] = -1;
		l->sig_pipe[1] = -1;
		errno = saved;
		return -1;
	}
	if (!atomic_compare_exchange_strong(&loop_sig_wfd, &expected,
					    l->sig_pipe[1])) {
		loop_sig_close_pipe(l);
		errno = EBUSY;
		return -1;
	}
	return 0;
}

int
loop_signal(struct loop *l, int signo, loop_signal_fn *fn, void *arg)
{
	struct loop_sig_slot *s;
	struct sigaction sa;

	if (signo <= 0 || signo > LOOP_MAX_SIGNO || !fn) {
		errno = EINVAL;
		return -1;
	}
	if (loop_sig_open(l) < 0)
		return -1;
	s = &l->sig[signo];
	s->fn = fn;
	s->arg = arg;
	if (s->installed)
		return 0;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = loop_sig_handler;
	sa.sa_flags = SA_RESTART;
	if (sigemptyset(&sa.sa_mask) < 0 ||
	    sigaction(signo, &sa, &s->old) < 0) {
		s->fn = NULL;
		s->arg = NULL;
		return -1;
	}
	s->installed = true;
	return 0;
}

/* loop_free(): puts the replaced sigactions back, closes the self-pipe. */
void
loop_sig_free(struct loop *l)
{
	for (int signo = 1; signo <= LOOP_MAX_SIGNO; signo++) {
		/* Cannot fail: the same signo was accepted when installed. */
		if (l->sig[signo].installed)
			(void)sigaction(signo, &l->sig[signo].old, NULL);
	}
	loop_sig_close_pipe(l);
}

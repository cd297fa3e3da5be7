/*
 * log: structured JSON lines, see log.h.
 *
 * Owns: one allocation of LOG_RING_SLOTS fixed slots, the head/tail
 * indices of that single-producer (the worker) single-consumer (the logger
 * thread) ring, the wake pipe, the logger thread and the drop counter.
 * Building a line (JSON fields, escaping) is in log_json.c.
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
 * - "log.dropped" is reported whatever the minimum level: losing lines
 *   silently is worse than one warn line.
 * - The logger thread blocks every signal so signals reach the worker.
 */
#include "log_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define LOG_IOV_BATCH 64 /* slots per writev() */

const char *
log_level_name(enum log_level level)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};

	return (unsigned)level < 4 ? names[level] : "unknown";
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
	    log_json_escape(lg->svc, sizeof lg->svc, svc, strlen(svc));
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

void
log_syscall(struct logger *lg, enum log_level level, const char *event,
	    const char *op, const char *name, int err)
{
	struct log_line *ln = log_begin(lg, level, event);
	log_str(ln, "op", op);
	if (name)
		log_str(ln, "name", name);
	log_int(ln, "errno", err);
	log_str(ln, "error", strerror(err));
	log_end(ln);
}

/*
 * smtp-tls-source: SMTP load client for bench/smtpd_tls.py, in the manner
 * of Postfix's smtp-source, with STARTTLS (RFC 3207) and PIPELINING
 * (RFC 2920), so that the client costs the shared CPUs little next to the
 * server it measures.
 *
 * One thread, poll() over every session socket. Each session is a state
 * machine (enum source_state) that runs until a socket call would block and
 * then waits for the poll event that call asked for. A session has at most
 * one write outstanding (a command, the pipelined group or the message, all
 * built before the clock starts and never copied) and reads its replies
 * before the next write, so output needs no buffer; input goes to a
 * bounded per-session buffer of CRLF lines.
 *
 * Invariant: a session goes back to poll() only after a read or write
 * returned "would block", so OpenSSL holds no decrypted bytes poll() cannot
 * announce (no read ahead is set either).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define SOURCE_MAX_SESSIONS 10000
#define SOURCE_MAX_MESSAGES 100000000UL
#define SOURCE_MAX_BODY (64UL << 20)
/* Longest reply line plus what may follow it in one read. */
#define SOURCE_INBUF 4096
/* The run fails when no socket moves for this long. */
#define SOURCE_IDLE_MS 30000
#define SOURCE_SNI "bench.test"

#define SOURCE_CMD_EHLO "EHLO client.bench.test\r\n"
#define SOURCE_CMD_STARTTLS "STARTTLS\r\n"
#define SOURCE_CMD_MAIL "MAIL FROM:<bench@bench.test>\r\n"
#define SOURCE_CMD_RCPT "RCPT TO:<rcpt@example.com>\r\n"
#define SOURCE_CMD_DATA "DATA\r\n"
#define SOURCE_CMD_QUIT "QUIT\r\n"
#define SOURCE_SEND(s, st, lit) source_send((s), (st), (lit), sizeof(lit) - 1)

/* SOURCE_PIPELINE: MAIL, RCPT and DATA in one write (RFC 2920 3.1). */
#define SOURCE_STATES(X)                                                       \
	X(SOURCE_CONNECTING)                                                   \
	X(SOURCE_GREETING)                                                     \
	X(SOURCE_EHLO)                                                         \
	X(SOURCE_STARTTLS)                                                     \
	X(SOURCE_HANDSHAKE)                                                    \
	X(SOURCE_EHLO2)                                                        \
	X(SOURCE_MAIL)                                                         \
	X(SOURCE_RCPT)                                                         \
	X(SOURCE_DATA)                                                         \
	X(SOURCE_PIPELINE)                                                     \
	X(SOURCE_BODY)                                                         \
	X(SOURCE_QUIT)                                                         \
	X(SOURCE_DONE)

#define SOURCE_ENUM(name) name,
#define SOURCE_NAME(name) #name,
enum source_state { SOURCE_STATES(SOURCE_ENUM) };
static const char *const source_state_names[] = {SOURCE_STATES(SOURCE_NAME)};

/* The reply each state waits for; 0: none. SOURCE_PIPELINE: see below. */
static const int source_expect[SOURCE_DONE + 1] = {
    [SOURCE_GREETING] = 220, [SOURCE_EHLO] = 250, [SOURCE_STARTTLS] = 220,
    [SOURCE_EHLO2] = 250,    [SOURCE_MAIL] = 250, [SOURCE_RCPT] = 250,
    [SOURCE_DATA] = 354,     [SOURCE_BODY] = 250, [SOURCE_QUIT] = 221,
};

struct source_load {
	const char *target; /* HOST:PORT as given, for messages */
	struct sockaddr_in addr;
	SSL_CTX *ctx; /* NULL: plaintext */
	int pipelining;
	char *msg; /* headers, body and the final ".\r\n" */
	size_t msg_len;
	unsigned long per_conn;	  /* messages per connection */
	unsigned long conns_left; /* connections not yet opened */
	unsigned long delivered;  /* messages answered 250 after the body */
	unsigned long failures;
	unsigned active; /* sessions with an open socket */
};

struct source_session {
	struct source_load *load;
	unsigned id;
	enum source_state state;
	int fd;
	SSL *ssl;
	short events;	    /* what the call that would block waits for */
	unsigned long sent; /* messages delivered on this connection */
	unsigned replies;   /* pipelined replies still to come */
	const char *out;    /* unsent part of the current write */
	size_t out_len;
	size_t in_len;
	char in[SOURCE_INBUF];
};

static void source_fail(struct source_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
source_usage(void)
{
	fprintf(stderr,
		"usage: smtp-tls-source [-s SESSIONS] [-m MESSAGES] "
		"[-l BODY_BYTES] [-r PER_SESSION] [-T] [-P] [-w] HOST:PORT\n"
		"  -T STARTTLS, -P pipelining, -w print \"ready\" and wait "
		"for a line on stdin\n"
		"  HOST: an IPv4 address in 127.0.0.0/8\n");
	exit(64);
}

static unsigned long
source_number(const char *arg, unsigned long min, unsigned long max,
	      const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-' || v < min ||
	    v > max) {
		fprintf(stderr, "smtp-tls-source: %s wants %lu..%lu, not %s\n",
			what, min, max, arg);
		exit(64);
	}
	return v;
}

/* Loopback only: the load must never leave the machine. */
static void
source_target(struct source_load *ld, const char *arg)
{
	char host[INET_ADDRSTRLEN];
	const char *colon = strrchr(arg, ':');
	size_t len = colon ? (size_t)(colon - arg) : 0;

	if (!colon || len == 0 || len >= sizeof(host))
		source_usage();
	memcpy(host, arg, len);
	host[len] = '\0';
	memset(&ld->addr, 0, sizeof(ld->addr));
	ld->addr.sin_family = AF_INET;
	if (inet_pton(AF_INET, host, &ld->addr.sin_addr) != 1 ||
	    (ntohl(ld->addr.sin_addr.s_addr) >> 24) != 127) {
		fprintf(stderr,
			"smtp-tls-source: refusing %s: HOST must be an IPv4 "
			"address in 127.0.0.0/8\n",
			host);
		exit(64);
	}
	ld->addr.sin_port =
	    htons((unsigned short)source_number(colon + 1, 1, 65535, "PORT"));
	ld->target = arg;
}

/* Four header lines, a blank line, then lines of 76 'x' + CRLF cut so
 * that the body is exactly body bytes and ends in CRLF; then ".\r\n". */
static void
source_message(struct source_load *ld, size_t body)
{
	static const char head[] = "From: <bench@bench.test>\r\n"
				   "To: <rcpt@example.com>\r\n"
				   "Subject: tls bench\r\n"
				   "Message-ID: <bench@bench.test>\r\n\r\n";
	char *p;
	size_t i;

	ld->msg_len = sizeof(head) - 1 + body + 3;
	ld->msg = malloc(ld->msg_len);
	if (!ld->msg) {
		perror("smtp-tls-source: malloc");
		exit(1);
	}
	memcpy(ld->msg, head, sizeof(head) - 1);
	p = ld->msg + sizeof(head) - 1;
	for (i = 0; i < body - 2; i++)
		p[i] = i % 78 < 76 ? 'x' : i % 78 == 76 ? '\r' : '\n';
	memcpy(p + body - 2, "\r\n.\r\n", 5);
}

static SSL_CTX *
source_tls_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	/* No certificate check, as an opportunistic MTA client: the check
	 * would be client work only, on CPUs the server needs. No
	 * resumption either: every new session pays a full handshake. */
	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
		fprintf(stderr, "smtp-tls-source: SSL_CTX: %s\n",
			ERR_error_string(ERR_get_error(), NULL));
		exit(1);
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
	return ctx;
}

static void
source_close(struct source_session *s)
{
	if (s->ssl) {
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	if (s->fd >= 0) {
		/* Nothing unsent can be lost here: QUIT got its reply. */
		if (close(s->fd) < 0)
			fprintf(stderr,
				"smtp-tls-source: session %u: close: %s\n",
				s->id, strerror(errno));
		s->fd = -1;
		s->load->active--;
	}
}

/* Ends the session and the run: no new connection is opened, the other
 * sessions finish the message they are on. */
static void
source_fail(struct source_session *s, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "smtp-tls-source: session %u (%s): ", s->id,
		source_state_names[s->state]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	ERR_clear_error();
	s->load->failures++;
	s->load->conns_left = 0;
	source_close(s);
	s->state = SOURCE_DONE;
}

/* The result of an OpenSSL call that failed: 0 with s->events set when it
 * would block, else -1 after source_fail(). */
static int
source_ssl_wait(struct source_session *s, int ret, const char *what)
{
	char err[256];

	switch (SSL_get_error(s->ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		s->events = POLLIN;
		return 0;
	case SSL_ERROR_WANT_WRITE:
		s->events = POLLOUT;
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		source_fail(s, "%s: the server closed TLS", what);
		return -1;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() == 0) {
			source_fail(s, "%s: %s", what,
				    errno ? strerror(errno)
					  : "connection closed by the server");
			return -1;
		}
		break;
	default:
		break;
	}
	ERR_error_string_n(ERR_get_error(), err, sizeof(err));
	source_fail(s, "%s: %s", what, err);
	return -1;
}

static void
source_send(struct source_session *s, enum source_state state, const char *data,
	    size_t len)
{
	s->state = state;
	s->out = data;
	s->out_len = len;
}

static void
source_next_message(struct source_session *s)
{
	if (!s->load->pipelining) {
		SOURCE_SEND(s, SOURCE_MAIL, SOURCE_CMD_MAIL);
		return;
	}
	s->replies = 3;
	SOURCE_SEND(s, SOURCE_PIPELINE,
		    SOURCE_CMD_MAIL SOURCE_CMD_RCPT SOURCE_CMD_DATA);
}

/* Opens the slot's next connection, or marks it done when none is left. */
static int
source_open(struct source_session *s)
{
	struct source_load *ld = s->load;
	int one = 1;

	s->state = SOURCE_DONE;
	if (ld->conns_left == 0)
		return 0;
	ld->conns_left--;
	s->sent = 0;
	s->in_len = 0;
	s->out_len = 0;
	s->state = SOURCE_CONNECTING;
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		source_fail(s, "socket: %s", strerror(errno));
		return -1;
	}
	ld->active++;
	if (setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) <
	    0) {
		source_fail(s, "TCP_NODELAY: %s", strerror(errno));
		return -1;
	}
	if (connect(s->fd, (struct sockaddr *)&ld->addr, sizeof(ld->addr)) ==
	    0) {
		s->state = SOURCE_GREETING;
		return 0;
	}
	if (errno != EINPROGRESS) {
		source_fail(s, "connect %s: %s", ld->target, strerror(errno));
		return -1;
	}
	s->events = POLLOUT;
	return 0;
}

static int
source_connected(struct source_session *s)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		source_fail(s, "connect %s: %s", s->load->target,
			    strerror(err));
		return -1;
	}
	s->state = SOURCE_GREETING;
	return 1;
}

static int
source_tls_start(struct source_session *s)
{
	char err[256];

	s->ssl = SSL_new(s->load->ctx);
	if (!s->ssl || !SSL_set_fd(s->ssl, s->fd) ||
	    !SSL_set_tlsext_host_name(s->ssl, SOURCE_SNI)) {
		ERR_error_string_n(ERR_get_error(), err, sizeof(err));
		source_fail(s, "SSL_new: %s", err);
		return -1;
	}
	SSL_set_connect_state(s->ssl);
	s->state = SOURCE_HANDSHAKE;
	return 0;
}

static int
source_handshake(struct source_session *s)
{
	int r;

	errno = 0;
	r = SSL_do_handshake(s->ssl);
	if (r != 1)
		return source_ssl_wait(s, r, "TLS handshake");
	SOURCE_SEND(s, SOURCE_EHLO2, SOURCE_CMD_EHLO);
	return 1;
}

/* Writes the rest of s->out: 1 all written, 0 would block, -1 failed. */
static int
source_flush(struct source_session *s)
{
	while (s->out_len > 0) {
		size_t n;

		if (s->ssl) {
			errno = 0;
			if (!SSL_write_ex(s->ssl, s->out, s->out_len, &n))
				return source_ssl_wait(s, 0, "SSL_write");
		} else {
			ssize_t r =
			    send(s->fd, s->out, s->out_len, MSG_NOSIGNAL);

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0 &&
			    (errno == EAGAIN || errno == EWOULDBLOCK)) {
				s->events = POLLOUT;
				return 0;
			}
			if (r < 0) {
				source_fail(s, "send: %s", strerror(errno));
				return -1;
			}
			n = (size_t)r;
		}
		s->out += n;
		s->out_len -= n;
	}
	return 1;
}

/* Reads into s->in: 1 got bytes, 0 would block, -1 failed. The server
 * never closes first here, so end of stream is a failure too. */
static int
source_fill(struct source_session *s)
{
	size_t room = sizeof(s->in) - s->in_len, n;
	ssize_t r;

	if (room == 0) {
		source_fail(s, "reply line longer than %zu bytes",
			    sizeof(s->in));
		return -1;
	}
	if (s->ssl) {
		errno = 0;
		if (!SSL_read_ex(s->ssl, s->in + s->in_len, room, &n))
			return source_ssl_wait(s, 0, "SSL_read");
		s->in_len += n;
		return 1;
	}
	do
		r = recv(s->fd, s->in + s->in_len, room, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		s->events = POLLIN;
		return 0;
	}
	if (r <= 0) {
		source_fail(s, "recv: %s",
			    r < 0 ? strerror(errno)
				  : "connection closed by the server");
		return -1;
	}
	s->in_len += (size_t)r;
	return 1;
}

/* Acts on one complete reply: 0 go on parsing, 1 the connection changed
 * (TLS started or closed), -1 failed. */
static int
source_reply(struct source_session *s, int code, const char *line, size_t len)
{
	struct source_load *ld = s->load;
	int want = source_expect[s->state];

	if (s->state == SOURCE_PIPELINE)
		want = s->replies == 1 ? 354 : 250;
	if (code != want) {
		source_fail(s, "expected %d, got \"%.*s\"", want, (int)len,
			    line);
		return -1;
	}
	switch (s->state) {
	case SOURCE_GREETING:
		SOURCE_SEND(s, SOURCE_EHLO, SOURCE_CMD_EHLO);
		return 0;
	case SOURCE_EHLO:
		if (ld->ctx)
			SOURCE_SEND(s, SOURCE_STARTTLS, SOURCE_CMD_STARTTLS);
		else
			source_next_message(s);
		return 0;
	case SOURCE_STARTTLS:
		return source_tls_start(s) < 0 ? -1 : 1;
	case SOURCE_EHLO2:
		source_next_message(s);
		return 0;
	case SOURCE_MAIL:
		SOURCE_SEND(s, SOURCE_RCPT, SOURCE_CMD_RCPT);
		return 0;
	case SOURCE_RCPT:
		SOURCE_SEND(s, SOURCE_DATA, SOURCE_CMD_DATA);
		return 0;
	case SOURCE_PIPELINE:
		if (--s->replies > 0)
			return 0;
		/* fall through */
	case SOURCE_DATA:
		source_send(s, SOURCE_BODY, ld->msg, ld->msg_len);
		return 0;
	case SOURCE_BODY:
		ld->delivered++;
		if (++s->sent < ld->per_conn && ld->failures == 0)
			source_next_message(s);
		else
			SOURCE_SEND(s, SOURCE_QUIT, SOURCE_CMD_QUIT);
		return 0;
	case SOURCE_QUIT:
		source_close(s);
		return source_open(s) < 0 ? -1 : 1;
	default:
		return 0; /* not reached: want is 0 */
	}
}

/* Consumes the complete reply lines in s->in; "250-" continues a reply,
 * "250 " ends it (RFC 5321 4.2.1). */
static int
source_parse(struct source_session *s)
{
	size_t off = 0;
	const char *p, *eol;

	while ((eol = memchr(s->in + off, '\n', s->in_len - off)) != NULL) {
		size_t len = (size_t)(eol - (s->in + off));
		int r;

		p = s->in + off;
		off += len + 1;
		if (len < 4 || p[len - 1] != '\r' || p[0] < '2' || p[0] > '5' ||
		    p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9' ||
		    (len > 4 && p[3] != ' ' && p[3] != '-')) {
			source_fail(s, "malformed reply \"%.*s\"", (int)len, p);
			return -1;
		}
		if (len > 4 && p[3] == '-')
			continue;
		r = source_reply(
		    s, (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0'), p,
		    len - 1);
		if (r < 0)
			return -1;
		if (r == 0)
			continue;
		/* RFC 3207 4.2: nothing from before the handshake may be
		 * taken as coming through TLS. */
		if (s->state == SOURCE_HANDSHAKE && off < s->in_len) {
			source_fail(s, "%zu bytes after the reply to STARTTLS",
				    s->in_len - off);
			return -1;
		}
		s->in_len = 0;
		return 0;
	}
	memmove(s->in, s->in + off, s->in_len - off);
	s->in_len -= off;
	return 0;
}

/* Runs s until a socket call would block (s->events says for what) or
 * the slot is done. revents: what poll() reported, 0 for none. */
static void
source_drive(struct source_session *s, short revents)
{
	int r;

	for (;;) {
		switch (s->state) {
		case SOURCE_DONE:
			return;
		case SOURCE_CONNECTING:
			/* SO_ERROR means nothing before poll() reports. */
			if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
				return;
			r = source_connected(s);
			break;
		case SOURCE_HANDSHAKE:
			r = source_handshake(s);
			break;
		default:
			if (s->out_len > 0) {
				r = source_flush(s);
				break;
			}
			r = source_fill(s);
			if (r > 0 && source_parse(s) < 0)
				r = -1;
			break;
		}
		if (r <= 0)
			return;
		revents = 0;
	}
}

static int
source_loop(struct source_load *ld, struct source_session *ss,
	    struct pollfd *pfd, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		source_open(&ss[i]);
		source_drive(&ss[i], 0);
	}
	while (ld->active > 0) {
		int r;

		for (i = 0; i < n; i++) {
			pfd[i].fd = ss[i].fd; /* -1: poll() skips it */
			pfd[i].events = ss[i].events;
			pfd[i].revents = 0;
		}
		r = poll(pfd, n, SOURCE_IDLE_MS);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			perror("smtp-tls-source: poll");
			return -1;
		}
		if (r == 0) {
			fprintf(stderr,
				"smtp-tls-source: %u sessions got nothing for "
				"%d s\n",
				ld->active, SOURCE_IDLE_MS / 1000);
			return -1;
		}
		for (i = 0; i < n; i++)
			if (pfd[i].revents)
				source_drive(&ss[i], pfd[i].revents);
	}
	return 0;
}

/* Each session needs a descriptor; raise the soft limit if it is short. */
static void
source_fd_limit(unsigned sessions)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)sessions + 16;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		perror("smtp-tls-source: getrlimit");
		exit(1);
	}
	if (rl.rlim_cur >= need)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		fprintf(stderr,
			"smtp-tls-source: %u sessions need %llu descriptors, "
			"the hard limit is %llu\n",
			sessions, (unsigned long long)need,
			(unsigned long long)rl.rlim_max);
		exit(64);
	}
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		perror("smtp-tls-source: setrlimit");
		exit(1);
	}
}

static double
source_seconds(const struct timeval *tv)
{
	return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

int
main(int argc, char **argv)
{
	struct source_load ld = {0};
	struct source_session *ss;
	struct pollfd *pfd;
	struct timespec t0, t1;
	struct rusage ru0, ru1;
	unsigned long sessions = 1, messages = 1, body = 1024, per = 0;
	int c, tls = 0, wait_go = 0, rc;
	double secs, cpu;
	unsigned i;

	while ((c = getopt(argc, argv, "s:m:l:r:TPw")) != -1) {
		switch (c) {
		case 's':
			sessions =
			    source_number(optarg, 1, SOURCE_MAX_SESSIONS, "-s");
			break;
		case 'm':
			messages =
			    source_number(optarg, 1, SOURCE_MAX_MESSAGES, "-m");
			break;
		case 'l':
			body = source_number(optarg, 2, SOURCE_MAX_BODY, "-l");
			break;
		case 'r':
			per =
			    source_number(optarg, 1, SOURCE_MAX_MESSAGES, "-r");
			break;
		case 'T':
			tls = 1;
			break;
		case 'P':
			ld.pipelining = 1;
			break;
		case 'w':
			wait_go = 1;
			break;
		default:
			source_usage();
		}
	}
	if (optind != argc - 1)
		source_usage();
	source_target(&ld, argv[optind]);
	if (per && messages != sessions * per) {
		fprintf(stderr,
			"smtp-tls-source: with -r %lu, -m must be "
			"SESSIONS x PER_SESSION = %lu\n",
			per, sessions * per);
		exit(64);
	}
	ld.per_conn = per ? per : 1;
	ld.conns_left = messages / ld.per_conn;

	/* A peer that closes early must fail a write, not kill us. */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		perror("smtp-tls-source: signal");
		exit(1);
	}
	source_fd_limit((unsigned)sessions);
	source_message(&ld, body);
	if (tls)
		ld.ctx = source_tls_ctx();
	ss = calloc(sessions, sizeof(*ss));
	pfd = calloc(sessions, sizeof(*pfd));
	if (!ss || !pfd) {
		perror("smtp-tls-source: calloc");
		exit(1);
	}
	for (i = 0; i < sessions; i++) {
		ss[i].load = &ld;
		ss[i].id = i;
		ss[i].fd = -1;
	}
	if (wait_go) {
		char line[64];

		printf("ready\n");
		if (fflush(stdout) == EOF ||
		    !fgets(line, sizeof(line), stdin)) {
			fprintf(stderr, "smtp-tls-source: no go on stdin\n");
			exit(1);
		}
	}

	if (clock_gettime(CLOCK_MONOTONIC, &t0) < 0 ||
	    getrusage(RUSAGE_SELF, &ru0) < 0) {
		perror("smtp-tls-source: clock");
		exit(1);
	}
	rc = source_loop(&ld, ss, pfd, (unsigned)sessions);
	if (clock_gettime(CLOCK_MONOTONIC, &t1) < 0 ||
	    getrusage(RUSAGE_SELF, &ru1) < 0) {
		perror("smtp-tls-source: clock");
		exit(1);
	}
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	cpu = source_seconds(&ru1.ru_utime) + source_seconds(&ru1.ru_stime) -
	      source_seconds(&ru0.ru_utime) - source_seconds(&ru0.ru_stime);
	printf("messages=%lu seconds=%.3f rate=%.1f cpu=%.3f\n", ld.delivered,
	       secs, secs > 0 ? (double)ld.delivered / secs : 0.0, cpu);
	if (fflush(stdout) == EOF) {
		perror("smtp-tls-source: stdout");
		rc = -1;
	}

	for (i = 0; i < sessions; i++)
		source_close(&ss[i]);
	SSL_CTX_free(ld.ctx);
	free(ld.msg);
	free(ss);
	free(pfd);
	return rc == 0 && ld.failures == 0 && ld.delivered == messages ? 0 : 1;
}

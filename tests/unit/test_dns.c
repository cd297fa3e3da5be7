/*
 * test_dns: the c-ares glue (src/sender/dns.c) against a real dnsmasq on a
 * free loopback port, driven by a real loop: MX answers (records, null MX,
 * NODATA, NXDOMAIN, refused), address answers (IPv4 first, the
 * DNS_ADDR_MAX cap, minimum TTL, numeric names), the server list syntax,
 * a closed port and a silent server (the real c-ares timeout, about
 * 15 s), dns_free() with queries in flight and from inside a callback,
 * callbacks never running inside dns_query_*(), the counters, and no fd
 * or watch left behind.
 *
 * Needs the dnsmasq binary (Debian package dnsmasq-base); without it the
 * test prints SKIP and exits 77. dnsmasq is killed at exit, and by
 * PR_SET_PDEATHSIG if this process dies first.
 */
#include "dns.h"
#include "loop.h"
#include "test.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NELEM(a) (sizeof(a) / sizeof *(a))
#define SKIP_CODE 77
#define LOCAL_TTL 120 /* dnsmasq --local-ttl */
#define AUTH_TTL 200  /* dnsmasq --auth-ttl: RRs and the SOA */
#define NEG_TTL 300   /* dns.c's TTL when the answer has none */
#define WAIT_MS 5000  /* for answers from dnsmasq */
/* c-ares 1.18 doubles the timeout each round: 5 s + 10 s, then margin. */
#define TIMEOUT_WAIT_MS (DNS_TIMEOUT_MS * ((1 << DNS_TRIES) - 1) + WAIT_MS)
#define MANY_V4 15 /* many.test: A records */
#define MANY_V6 3  /* many.test: AAAA records */
#define STR_MAX 512

_Static_assert(MANY_V4 + 1 == DNS_ADDR_MAX, "many.test: cut after one AAAA");

static pid_t dnsmasq_pids[2] = {-1, -1}; /* killed at exit */
static bool querying; /* set around dns_query_*(): callbacks must not run */

struct result {
	int calls;
	enum dns_status status;
	size_t n;
	uint32_t ttl;
	char text[STR_MAX]; /* records or addresses, formatted */
	bool ports_zero;
	uint64_t at;		/* loop_now() when the callback ran */
	struct loop *loop;	/* for at; may be NULL */
	struct dns **free_slot; /* on_mx_free: frees *free_slot */
	struct dns *dns;	/* on_mx_chain: asks for the first host */
	struct result *chained; /* ... with this result */
};

/* ---- dnsmasq ---- */

static void
dnsmasq_stop(void)
{
	for (size_t i = 0; i < NELEM(dnsmasq_pids); i++) {
		if (dnsmasq_pids[i] > 0) {
			kill(dnsmasq_pids[i], SIGTERM);
			waitpid(dnsmasq_pids[i], NULL, 0);
		}
		dnsmasq_pids[i] = -1;
	}
}

static bool
find_dnsmasq(char *path, size_t len)
{
	const char *env = getenv("PATH");
	char dirs[4096];

	snprintf(dirs, sizeof dirs, "%s:/usr/sbin:/sbin:/usr/local/sbin",
		 env ? env : "");
	for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d;
	     d = strtok_r(NULL, ":", &save)) {
		snprintf(path, len, "%s/dnsmasq", d);
		if (access(path, X_OK) == 0)
			return true;
	}
	return false;
}

static int
bind_socket(int family, int type, int port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd = socket(family, type, 0);

	memset(&ss, 0, sizeof ss);
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof *sin;
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		sin6->sin6_addr = in6addr_loopback;
		len = sizeof *sin6;
	}
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int
bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	return ss.ss_family == AF_INET
		   ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
		   : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* A port free for UDP and TCP on 127.0.0.1 (and ::1 if v6). */
static int
free_port(bool v6)
{
	for (int attempt = 0; attempt < 50; attempt++) {
		int u4 = bind_socket(AF_INET, SOCK_DGRAM, 0);
		int port = u4 >= 0 ? bound_port(u4) : -1;
		int fds[3] = {
		    bind_socket(AF_INET, SOCK_STREAM, port),
		    v6 ? bind_socket(AF_INET6, SOCK_DGRAM, port) : -2,
		    v6 ? bind_socket(AF_INET6, SOCK_STREAM, port) : -2,
		};
		bool ok =
		    port > 0 && fds[0] >= 0 && fds[1] != -1 && fds[2] != -1;

		if (u4 >= 0)
			close(u4);
		for (size_t i = 0; i < NELEM(fds); i++)
			if (fds[i] >= 0)
				close(fds[i]);
		if (ok)
			return port;
	}
	fprintf(stderr, "no free port\n");
	exit(1);
}

static bool
tcp_ready(int port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* Appends a formatted, strdup'd argument; argv stays NULL-terminated. */
static void arg_add(char **argv, size_t *argc, size_t max, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
arg_add(char **argv, size_t *argc, size_t max, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (*argc + 1 >= max || !(argv[*argc] = strdup(buf))) {
		fprintf(stderr, "dnsmasq arguments\n");
		exit(1);
	}
	argv[++*argc] = NULL;
}

/* Common to both instances: foreground, no config, no system files. */
static const char *const dnsmasq_common[] = {
    "-k",
    "--conf-file=/dev/null",
    "--no-resolv",
    "--no-hosts",
    "--bind-interfaces",
    "--listen-address=127.0.0.1",
    "--log-facility=/dev/null",
    "--pid-file=", /* none */
    "--user=root",
    "--group=root",
};

/* Like a resolver: local data for test., no SOA in negative answers. */
static const char *const dnsmasq_local[] = {
    "--local=/test/",
    "--mx-host=a.test,mx1.a.test,10",
    "--mx-host=a.test,mx2.a.test,20",
    "--host-record=mx1.a.test,127.0.0.2",
    "--host-record=mx2.a.test,127.0.0.3,::1",
    "--host-record=plain.test,127.0.0.4",
    "--dns-rr=null.test,15,000000", /* RFC 7505: "0 ." */
    "--host-record=multi.test,127.0.0.5,60",
    "--host-record=multi.test,127.0.0.6,30",
    "--host-record=v6first.test,::2",
    "--host-record=v6first.test,127.0.0.7",
    "--cname=alias.test,a.test,30",	 /* MX through a CNAME */
    "--cname=alias2.test,mx1.a.test,40", /* A through a CNAME */
    "--cname=alias3.test,plain.test,50", /* NODATA through a CNAME */
};

/* Authoritative for auth.test: negative answers carry its SOA. */
static const char *const dnsmasq_auth[] = {
    "--auth-server=ns.auth.test,127.0.0.1",
    "--auth-zone=auth.test",
    "--mx-host=auth.test,mx.auth.test,5",
    "--host-record=mx.auth.test,127.0.0.9",
    "--host-record=plain.auth.test,127.0.0.10",
};

static pid_t
dnsmasq_spawn(const char *bin, char **argv, int port)
{
	pid_t pid = fork();

	if (pid < 0) {
		perror("fork");
		exit(1);
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execv(bin, argv);
		perror("execv dnsmasq");
		_exit(127);
	}
	for (int i = 0; !tcp_ready(port); i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid || i == 100) {
			fprintf(stderr, "dnsmasq did not start on port %d\n",
				port);
			exit(1);
		}
		usleep(50 * 1000);
	}
	return pid;
}

/* Instance 0 (local data, also on ::1 if v6) or 1 (authoritative). */
static void
dnsmasq_start(const char *bin, int which, int port, bool v6)
{
	const char *const *extra = which ? dnsmasq_auth : dnsmasq_local;
	size_t nextra = which ? NELEM(dnsmasq_auth) : NELEM(dnsmasq_local);
	char *argv[64];
	size_t argc = 0;

	arg_add(argv, &argc, NELEM(argv), "%s", bin);
	for (size_t i = 0; i < NELEM(dnsmasq_common); i++)
		arg_add(argv, &argc, NELEM(argv), "%s", dnsmasq_common[i]);
	for (size_t i = 0; i < nextra; i++)
		arg_add(argv, &argc, NELEM(argv), "%s", extra[i]);
	arg_add(argv, &argc, NELEM(argv), "--port=%d", port);
	arg_add(argv, &argc, NELEM(argv), "--local-ttl=%d", LOCAL_TTL);
	arg_add(argv, &argc, NELEM(argv), "--auth-ttl=%d", AUTH_TTL);
	if (v6)
		arg_add(argv, &argc, NELEM(argv), "--listen-address=::1");
	for (int i = 0; !which && i < MANY_V4; i++)
		arg_add(argv, &argc, NELEM(argv),
			"--host-record=many.test,127.0.1.%d", i + 1);
	for (int i = 0; !which && i < MANY_V6; i++)
		arg_add(argv, &argc, NELEM(argv),
			"--host-record=many.test,fd00::%d", i + 1);
	dnsmasq_pids[which] = dnsmasq_spawn(bin, argv, port);
	for (size_t i = 0; i < argc; i++)
		free(argv[i]);
}

/* ---- helpers ---- */

static int
count_fds(void)
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

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs the loop until *calls reaches want or ms pass. */
static void
wait_calls(struct loop *l, const int *calls, int want, uint64_t ms)
{
	uint64_t end = mono_ms() + ms;

	while (*calls < want && mono_ms() < end)
		if (loop_run_once(l, 50) != 0) {
			perror("loop_run_once");
			exit(1);
		}
}

static void
text_add(char *text, const char *s)
{
	size_t len = strlen(text);

	snprintf(text + len, STR_MAX - len, "%s%s", len ? " " : "", s);
}

static int
mx_cmp(const void *a, const void *b)
{
	const struct mx_host *x = a, *y = b;

	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Records sorted (DNS order is the server's choice): "10:mx1 20:mx2". */
static void
on_mx(void *arg, enum dns_status st, const struct mx_host *rec, size_t n,
      uint32_t ttl)
{
	struct result *r = arg;
	struct mx_host sorted[16];
	char one[MX_HOST_MAX + 16];

	CHECK(!querying);
	r->calls++;
	r->status = st;
	r->n = n;
	r->ttl = ttl;
	r->at = r->loop ? loop_now(r->loop) : 0;
	r->text[0] = '\0';
	CHECK(n <= NELEM(sorted));
	if (n > NELEM(sorted))
		return;
	if (n)
		memcpy(sorted, rec, n * sizeof *rec);
	qsort(sorted, n, sizeof *sorted, mx_cmp);
	for (size_t i = 0; i < n; i++) {
		snprintf(one, sizeof one, "%u:%.*s", sorted[i].pref,
			 MX_HOST_MAX, sorted[i].name);
		text_add(r->text, one);
	}
}

static int
addr_cmp(const void *a, const void *b)
{
	const struct sockaddr_storage *x = a, *y = b;

	if (x->ss_family != y->ss_family)
		return x->ss_family == AF_INET ? -1 : 1;
	if (x->ss_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
			      &((const struct sockaddr_in *)b)->sin_addr, 4);
	return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		      &((const struct sockaddr_in6 *)b)->sin6_addr, 16);
}

/*
 * Checks IPv4 before IPv6 and ports 0, then formats the addresses sorted
 * within each family (DNS order is the server's): "127.0.0.3 ::1".
 */
static void
on_addr(void *arg, enum dns_status st, const struct sockaddr_storage *a,
	size_t n, uint32_t ttl)
{
	struct result *r = arg;
	struct sockaddr_storage sorted[DNS_ADDR_MAX];
	char buf[INET6_ADDRSTRLEN];

	CHECK(!querying);
	r->calls++;
	r->status = st;
	r->n = n;
	r->ttl = ttl;
	r->at = r->loop ? loop_now(r->loop) : 0;
	r->text[0] = '\0';
	r->ports_zero = true;
	CHECK(n <= DNS_ADDR_MAX);
	if (n > DNS_ADDR_MAX)
		return;
	for (size_t i = 1; i < n; i++)
		CHECK(!(a[i - 1].ss_family == AF_INET6 &&
			a[i].ss_family == AF_INET));
	if (n)
		memcpy(sorted, a, n * sizeof *a);
	qsort(sorted, n, sizeof *sorted, addr_cmp);
	for (size_t i = 0; i < n; i++) {
		const struct sockaddr_in *s4 = (const void *)&sorted[i];
		const struct sockaddr_in6 *s6 = (const void *)&sorted[i];

		if (sorted[i].ss_family == AF_INET) {
			inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof buf);
			r->ports_zero &= s4->sin_port == 0;
		} else if (sorted[i].ss_family == AF_INET6) {
			inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof buf);
			r->ports_zero &= s6->sin6_port == 0;
		} else {
			snprintf(buf, sizeof buf, "family%d",
				 sorted[i].ss_family);
		}
		text_add(r->text, buf);
	}
}

static int
query_mx(struct dns *d, const char *name, struct result *r)
{
	int rc;

	querying = true;
	rc = dns_query_mx(d, name, on_mx, r);
	querying = false;
	return rc;
}

static int
query_addr(struct dns *d, const char *name, struct result *r)
{
	int rc;

	querying = true;
	rc = dns_query_addr(d, name, on_addr, r);
	querying = false;
	return rc;
}

static struct dns *
xdns_new(struct loop *l, const char *server)
{
	char err[256] = "";
	const char *servers[] = {server};
	struct dns *d = dns_new(l, servers, 1, err, sizeof err);

	if (!d) {
		fprintf(stderr, "dns_new(%s): %s\n", server, err);
		exit(1);
	}
	return d;
}

static void
on_mx_free(void *arg, enum dns_status st, const struct mx_host *rec, size_t n,
	   uint32_t ttl)
{
	struct result *r = arg;
	struct dns *d = *r->free_slot;

	on_mx(arg, st, rec, n, ttl);
	*r->free_slot = NULL;
	dns_free(d); /* no-op when a sibling already did, or inside it */
}

static void
on_mx_chain(void *arg, enum dns_status st, const struct mx_host *rec, size_t n,
	    uint32_t ttl)
{
	struct result *r = arg;

	on_mx(arg, st, rec, n, ttl);
	CHECK_INT(st, DNS_OK);
	if (st == DNS_OK && n > 0)
		CHECK_INT(query_addr(r->dns, rec[0].name, r->chained), 0);
}

/* Runs the loop until every result has been called back, or ms pass. */
static void
wait_all(struct loop *l, struct result *r, size_t n, uint64_t ms)
{
	uint64_t end = mono_ms() + ms;

	for (size_t i = 0; i < n; i++)
		wait_calls(l, &r[i].calls, 1,
			   end > mono_ms() ? end - mono_ms() : 0);
}

/* ---- cases ---- */

static const struct mx_case {
	const char *name;
	enum dns_status status;
	const char *records;
	uint32_t ttl;
} mx_cases[] = {
    {"a.test", DNS_OK, "10:mx1.a.test 20:mx2.a.test", LOCAL_TTL},
    {"A.TEST", DNS_OK, "10:mx1.a.test 20:mx2.a.test", LOCAL_TTL},
    {"alias.test", DNS_OK, "10:mx1.a.test 20:mx2.a.test", 30}, /* CNAME's */
    {"null.test", DNS_OK, "0:", LOCAL_TTL},  /* RFC 7505 null MX */
    {"plain.test", DNS_NODATA, "", NEG_TTL}, /* A only, no SOA */
    {"alias3.test", DNS_NODATA, "", 50},
    {"nx.test", DNS_NXDOMAIN, "", NEG_TTL},
    {"deeper.nx.test", DNS_NXDOMAIN, "", NEG_TTL},
    {"outside.example", DNS_TEMPFAIL, "", 0}, /* dnsmasq: REFUSED */
    /* a 64-octet label (RFC 1035 2.3.4): c-ares fails it at once */
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test",
     DNS_NXDOMAIN, "", NEG_TTL},
};

/* Against the authoritative instance: RFC 2308 negative TTLs from SOA. */
static const struct mx_case auth_cases[] = {
    {"auth.test", DNS_OK, "5:mx.auth.test", AUTH_TTL},
    {"plain.auth.test", DNS_NODATA, "", AUTH_TTL},
    {"nx.auth.test", DNS_NXDOMAIN, "", AUTH_TTL},
};

static const struct addr_case {
	const char *name;
	enum dns_status status;
	const char *addrs; /* sorted within each family; '*' ends a prefix */
	uint32_t ttl;
} addr_cases[] = {
    {"mx1.a.test", DNS_OK, "127.0.0.2", LOCAL_TTL},
    {"mx2.a.test", DNS_OK, "127.0.0.3 ::1", LOCAL_TTL},
    {"multi.test", DNS_OK, "127.0.0.5 127.0.0.6", 30}, /* minimum */
    {"alias2.test", DNS_OK, "127.0.0.2", 40},
    {"v6first.test", DNS_OK, "127.0.0.7 ::2", LOCAL_TTL},
    /* 15 A + 3 AAAA: cut at DNS_ADDR_MAX, all A kept, one AAAA */
    {"many.test", DNS_OK,
     "127.0.1.1 127.0.1.2 127.0.1.3 127.0.1.4 127.0.1.5 127.0.1.6 "
     "127.0.1.7 127.0.1.8 127.0.1.9 127.0.1.10 127.0.1.11 127.0.1.12 "
     "127.0.1.13 127.0.1.14 127.0.1.15 fd00::*",
     LOCAL_TTL},
    {"a.test", DNS_NODATA, "", NEG_TTL}, /* MX only */
    {"nx.test", DNS_NXDOMAIN, "", NEG_TTL},
    {"outside.example", DNS_TEMPFAIL, "", 0},
    {"127.0.0.1", DNS_OK, "127.0.0.1", 0}, /* numeric: no query */
    {"::1", DNS_OK, "::1", 0},
};

static size_t
count_words(const char *s)
{
	size_t n = 0;

	for (const char *p = s; *p; p++)
		n += (p == s || p[-1] == ' ') && *p != ' ';
	return n;
}

static size_t
count_tempfail(const struct mx_case *mc, size_t nm, const struct addr_case *ac,
	       size_t na)
{
	size_t n = 0;

	for (size_t i = 0; i < nm; i++)
		n += mc[i].status == DNS_TEMPFAIL;
	for (size_t i = 0; i < na; i++)
		n += ac[i].status == DNS_TEMPFAIL;
	return n;
}

static void
run_mx_table(struct loop *l, struct dns *d, const struct mx_case *c, size_t n)
{
	struct result r[16];

	memset(r, 0, sizeof r);
	CHECK(n <= NELEM(r));
	for (size_t i = 0; i < n && i < NELEM(r); i++)
		CHECK_INT(query_mx(d, c[i].name, &r[i]), 0);
	for (size_t i = 0; i < n && i < NELEM(r); i++)
		CHECK_INT(r[i].calls, 0); /* none inside dns_query_mx() */
	wait_all(l, r, n, WAIT_MS);
	for (size_t i = 0; i < n && i < NELEM(r); i++) {
		if (r[i].status != c[i].status)
			fprintf(stderr, "MX %s:\n", c[i].name);
		CHECK_INT(r[i].calls, 1);
		CHECK_INT(r[i].status, c[i].status);
		CHECK_STR(r[i].text, c[i].records);
		CHECK_INT(r[i].n, count_words(c[i].records));
		CHECK_INT(r[i].ttl, c[i].ttl);
	}
}

static void
test_addr_table(struct loop *l, struct dns *d)
{
	struct result r[NELEM(addr_cases)];

	memset(r, 0, sizeof r);
	for (size_t i = 0; i < NELEM(addr_cases); i++)
		CHECK_INT(query_addr(d, addr_cases[i].name, &r[i]), 0);
	for (size_t i = 0; i < NELEM(addr_cases); i++)
		CHECK_INT(r[i].calls, 0); /* not even the numeric ones */
	wait_all(l, r, NELEM(r), WAIT_MS);
	for (size_t i = 0; i < NELEM(addr_cases); i++) {
		if (r[i].status != addr_cases[i].status)
			fprintf(stderr, "address %s:\n", addr_cases[i].name);
		CHECK_INT(r[i].calls, 1);
		CHECK_INT(r[i].status, addr_cases[i].status);
		CHECK_INT(r[i].n, count_words(addr_cases[i].addrs));
		if (strchr(addr_cases[i].addrs, '*')) {
			size_t len = strcspn(addr_cases[i].addrs, "*");

			CHECK_MEM(r[i].text, strnlen(r[i].text, len),
				  addr_cases[i].addrs, len);
		} else {
			CHECK_STR(r[i].text, addr_cases[i].addrs);
		}
		CHECK_INT(r[i].ttl, addr_cases[i].ttl);
		CHECK(r[i].ports_zero);
	}
}

static const struct server_case {
	const char *server;
	bool ok;
} server_cases[] = {
    {"127.0.0.1", true},
    {"127.0.0.1:5353", true},
    {"127.0.0.1:65535", true},
    {"[::1]", true},
    {"[::1]:53", true},
    {"::1", true}, /* bare IPv6, as sender_config allows */
    {"2001:db8::53", true},
    {"", false},
    {"localhost", false}, /* numeric only */
    {"dns.example:53", false},
    {"127.0.0", false},
    {"127.0.0.1:", false},
    {"127.0.0.1:0", false},
    {"127.0.0.1:65536", false},
    {"127.0.0.1:5x", false},
    {"127.0.0.1:+53", false},
    {"127.0.0.1:053535", false},
    {"[::1", false},
    {"[::1]53", false},
    {"[::1]:", false},
    {"[127.0.0.1]:53", false},
    {"[]:53", false},
    {"::1]:53", false},
};

static void
test_servers(struct loop *l)
{
	char err[256];

	for (size_t i = 0; i < NELEM(server_cases); i++) {
		const char *one[] = {server_cases[i].server};
		struct dns *d;

		strcpy(err, "untouched");
		d = dns_new(l, one, 1, err, sizeof err);
		if (!d != !server_cases[i].ok)
			fprintf(stderr, "server '%s': %s\n",
				server_cases[i].server, err);
		CHECK_INT(d != NULL, server_cases[i].ok);
		if (!d)
			CHECK(strstr(err, server_cases[i].server) != NULL);
		dns_free(d);
	}
	/* One bad entry spoils the list. */
	const char *list[] = {"127.0.0.1", "[::1]:53", "nope"};
	CHECK(dns_new(l, list, 3, err, sizeof err) == NULL);
	CHECK(strstr(err, "'nope'") != NULL);
	struct dns *d = dns_new(l, list, 2, err, sizeof err);
	CHECK(d != NULL);
	dns_free(d);
}

/* A server that never answers: c-ares times out, DNS_TRIES times. */
struct silent {
	int fd;
	struct dns *dns;
	struct result r;
	uint64_t started;
};

static void
silent_start(struct loop *l, struct silent *s)
{
	char server[64];

	memset(s, 0, sizeof *s);
	s->fd = bind_socket(AF_INET, SOCK_DGRAM, 0);
	if (s->fd < 0) {
		perror("bind");
		exit(1);
	}
	snprintf(server, sizeof server, "127.0.0.1:%d", bound_port(s->fd));
	s->dns = xdns_new(l, server);
	s->r.loop = l;
	s->started = loop_now(l);
	CHECK_INT(query_mx(s->dns, "a.test", &s->r), 0);
}

static void
silent_finish(struct loop *l, struct silent *s)
{
	wait_calls(l, &s->r.calls, 1, TIMEOUT_WAIT_MS);
	CHECK_INT(s->r.calls, 1);
	CHECK_INT(s->r.status, DNS_TEMPFAIL);
	CHECK_INT(s->r.n, 0);
	CHECK_INT(s->r.ttl, 0);
	/* the timer, not a socket error, ended it */
	CHECK(s->r.at - s->started >= (uint64_t)DNS_TIMEOUT_MS * DNS_TRIES);
	CHECK_INT(dns_lookups(s->dns), 1);
	CHECK_INT(dns_failures(s->dns), 1);
	dns_free(s->dns);
	close(s->fd);
}

/* Nothing listens on the port: refused at once, no waiting. */
static void
test_closed_port(struct loop *l)
{
	int fd = bind_socket(AF_INET, SOCK_DGRAM, 0);
	int port = fd >= 0 ? bound_port(fd) : -1;
	char server[64];
	struct result r[2];
	struct dns *d;

	if (fd >= 0)
		close(fd);
	snprintf(server, sizeof server, "127.0.0.1:%d", port);
	d = xdns_new(l, server);
	memset(r, 0, sizeof r);
	r[0].loop = r[1].loop = l;
	uint64_t t0 = loop_now(l);
	CHECK_INT(query_mx(d, "a.test", &r[0]), 0);
	CHECK_INT(query_addr(d, "mx1.a.test", &r[1]), 0);
	wait_all(l, r, NELEM(r), TIMEOUT_WAIT_MS);
	for (size_t i = 0; i < NELEM(r); i++) {
		CHECK_INT(r[i].calls, 1);
		CHECK_INT(r[i].status, DNS_TEMPFAIL);
		CHECK_INT(r[i].n, 0);
		CHECK(r[i].at - t0 < DNS_TIMEOUT_MS);
	}
	CHECK_INT(dns_failures(d), 2);
	dns_free(d);
}

/*
 * dns_free() with a query in flight and one finished but not yet
 * delivered: both callbacks run inside it, with DNS_TEMPFAIL.
 */
static void
test_free_pending(struct loop *l, int silent_port)
{
	char server[64];
	struct result r[2];
	struct dns *d;

	snprintf(server, sizeof server, "127.0.0.1:%d", silent_port);
	d = xdns_new(l, server);
	memset(r, 0, sizeof r);
	CHECK_INT(query_mx(d, "a.test", &r[0]), 0);
	CHECK_INT(query_addr(d, "127.0.0.1", &r[1]), 0); /* done at once */
	CHECK(loop_watch_count(l) > 0);
	CHECK_INT(r[0].calls + r[1].calls, 0);
	dns_free(d);
	for (size_t i = 0; i < NELEM(r); i++) {
		CHECK_INT(r[i].calls, 1);
		CHECK_INT(r[i].status, DNS_TEMPFAIL);
		CHECK_INT(r[i].n, 0);
	}
	for (int i = 0; i < 3; i++) /* nothing left to fire */
		CHECK_INT(loop_run_once(l, 0), 0);
	CHECK_INT(r[0].calls + r[1].calls, 2);
}

/* The first answer's callback frees dns; the other still gets one call. */
static void
test_free_in_callback(struct loop *l, const char *server)
{
	struct dns *d = xdns_new(l, server);
	struct result r[3];
	int ok = 0, tempfail = 0;

	memset(r, 0, sizeof r);
	for (size_t i = 0; i < NELEM(r); i++) {
		r[i].free_slot = &d;
		querying = true;
		CHECK_INT(dns_query_mx(d, "a.test", on_mx_free, &r[i]), 0);
		querying = false;
	}
	wait_all(l, r, NELEM(r), WAIT_MS);
	for (size_t i = 0; i < NELEM(r); i++) {
		CHECK_INT(r[i].calls, 1);
		ok += r[i].status == DNS_OK;
		tempfail += r[i].status == DNS_TEMPFAIL;
	}
	CHECK_INT(ok, 1);
	CHECK_INT(tempfail, 2);
	CHECK(d == NULL);
}

/* A callback starts the next lookup, as mx -> address does. */
static void
test_chain(struct loop *l, struct dns *d)
{
	struct result mx, addr;

	memset(&mx, 0, sizeof mx);
	memset(&addr, 0, sizeof addr);
	mx.dns = d;
	mx.chained = &addr;
	querying = true;
	CHECK_INT(dns_query_mx(d, "auth.test", on_mx_chain, &mx), 0);
	querying = false;
	wait_calls(l, &addr.calls, 1, WAIT_MS);
	CHECK_INT(mx.calls, 1);
	CHECK_INT(addr.calls, 1);
	CHECK_INT(addr.status, DNS_OK);
	CHECK_STR(addr.text, "127.0.0.9");
	CHECK_INT(addr.ttl, AUTH_TTL);
}

static bool
have_ipv6(void)
{
	int fd = bind_socket(AF_INET6, SOCK_DGRAM, 0);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

int
main(void)
{
	char bin[4096], server[64], auth_server[64], v6_server[64];
	int fds_before, port, auth_port;
	size_t watches_before;
	bool v6 = have_ipv6();
	struct silent silent;
	struct loop *l;
	struct dns *d;

	if (!find_dnsmasq(bin, sizeof bin)) {
		fprintf(stderr, "SKIP: dnsmasq not installed\n");
		return SKIP_CODE;
	}
	fds_before = count_fds();
	port = free_port(v6);
	auth_port = free_port(false);
	atexit(dnsmasq_stop);
	dnsmasq_start(bin, 0, port, v6);
	dnsmasq_start(bin, 1, auth_port, false);
	snprintf(server, sizeof server, "127.0.0.1:%d", port);
	snprintf(auth_server, sizeof auth_server, "127.0.0.1:%d", auth_port);
	snprintf(v6_server, sizeof v6_server, "[::1]:%d", port);
	l = loop_new();
	if (!l) {
		perror("loop_new");
		return 1;
	}
	watches_before = loop_watch_count(l);

	silent_start(l, &silent); /* its timeout runs behind the rest */
	test_servers(l);
	d = xdns_new(l, server);
	run_mx_table(l, d, mx_cases, NELEM(mx_cases));
	test_addr_table(l, d);
	CHECK_INT(dns_lookups(d), NELEM(mx_cases) + NELEM(addr_cases));
	CHECK_INT(dns_failures(d),
		  count_tempfail(mx_cases, NELEM(mx_cases), addr_cases,
				 NELEM(addr_cases)));
	dns_free(d);

	d = xdns_new(l, auth_server);
	run_mx_table(l, d, auth_cases, NELEM(auth_cases));
	test_chain(l, d);
	CHECK_INT(dns_lookups(d), NELEM(auth_cases) + 2);
	CHECK_INT(dns_failures(d), 0);
	dns_free(d);

	if (v6) {
		d = xdns_new(l, v6_server);
		run_mx_table(l, d, mx_cases, 1);
		dns_free(d);
	} else {
		fprintf(stderr,
			"note: no IPv6 loopback, [::1] server untested\n");
	}
	test_closed_port(l);
	test_free_pending(l, bound_port(silent.fd));
	test_free_in_callback(l, server);
	silent_finish(l, &silent);

	CHECK_INT(loop_watch_count(l), watches_before);
	loop_free(l);
	dnsmasq_stop();
	CHECK_INT(count_fds(), fds_before);
	return test_summary();
}

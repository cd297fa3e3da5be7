/*
 * test_net: tables for the address and CIDR parsers and matchers, plus a
 * real listening socket on 127.0.0.1 (and ::1 when the host has IPv6).
 */
#include "net.h"
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* A peer address from a numeric string: ':' means AF_INET6. Port 4242. */
static socklen_t
peer(const char *s, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	if (strchr(s, ':')) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(4242);
		CHECK_INT(inet_pton(AF_INET6, s, &sin6->sin6_addr), 1);
		return sizeof *sin6;
	}
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(4242);
	CHECK_INT(inet_pton(AF_INET, s, &sin->sin_addr), 1);
	return sizeof *sin;
}

static void
test_parse_hostport(void)
{
	static const struct {
		const char *in;
		const char
		    *want; /* net_addr_str() of the result, NULL: invalid */
		int family;
	} t[] = {
	    {"0.0.0.0:2525", "0.0.0.0:2525", AF_INET},
	    {"127.0.0.1:25", "127.0.0.1:25", AF_INET},
	    {"[::1]:2525", "[::1]:2525", AF_INET6},
	    {"[::]:25", "[::]:25", AF_INET6},
	    {":2525", "0.0.0.0:2525", AF_INET},
	    {"*:2525", "0.0.0.0:2525", AF_INET},
	    {"1.2.3.4:1", "1.2.3.4:1", AF_INET},
	    {"1.2.3.4:65535", "1.2.3.4:65535", AF_INET},
	    {"[2001:db8::7]:587", "[2001:db8::7]:587", AF_INET6},
	    {"[::ffff:1.2.3.4]:25", "1.2.3.4:25", AF_INET6},
	    {"", NULL, 0},
	    {"2525", NULL, 0},
	    {"1.2.3.4", NULL, 0},
	    {"1.2.3.4:", NULL, 0},
	    {"1.2.3.4:0", NULL, 0},
	    {"1.2.3.4:65536", NULL, 0},
	    {"1.2.3.4:99999", NULL, 0},
	    {"1.2.3.4:123456", NULL, 0},
	    {"1.2.3.4:-1", NULL, 0},
	    {"1.2.3.4:+25", NULL, 0},
	    {"1.2.3.4: 25", NULL, 0},
	    {"1.2.3.4:25 ", NULL, 0},
	    {"1.2.3.4:25:26", NULL, 0},
	    {" 1.2.3.4:25", NULL, 0},
	    {"1.2.3:25", NULL, 0},
	    {"1.2.3.4.5:25", NULL, 0},
	    {"256.1.1.1:25", NULL, 0},
	    {"localhost:25", NULL, 0},
	    {"mx.example.org:25", NULL, 0},
	    {"::1:25", NULL, 0},
	    {"[::1]", NULL, 0},
	    {"[::1]25", NULL, 0},
	    {"[::1]:", NULL, 0},
	    {"[::1]:0", NULL, 0},
	    {"[::1:25", NULL, 0},
	    {"[1.2.3.4]:25", NULL, 0},
	    {"[]:25", NULL, 0},
	    {"[*]:25", NULL, 0},
	    {"*:0", NULL, 0},
	    {"**:25", NULL, 0},
	    {"[::1]:25]", NULL, 0},
	};
	for (size_t i = 0; i < N(t); i++) {
		struct sockaddr_storage ss;
		socklen_t len = 0;
		char buf[NET_ADDR_STR_MAX];
		int r = net_parse_hostport(t[i].in, &ss, &len);
		if (!t[i].want) {
			if (r != -1)
				fprintf(stderr, "accepted: \"%s\"\n", t[i].in);
			CHECK_INT(r, -1);
			continue;
		}
		CHECK_INT(r, 0);
		if (r != 0) {
			fprintf(stderr, "rejected: \"%s\"\n", t[i].in);
			continue;
		}
		CHECK_INT(ss.ss_family, t[i].family);
		CHECK_INT(len, t[i].family == AF_INET
				   ? sizeof(struct sockaddr_in)
				   : sizeof(struct sockaddr_in6));
		CHECK_INT(net_addr_str((struct sockaddr *)&ss, buf, sizeof buf),
			  0);
		CHECK_STR(buf, t[i].want);
	}
	struct sockaddr_storage ss;
	CHECK_INT(net_parse_hostport(NULL, &ss, NULL), -1);
	CHECK_INT(net_parse_hostport("1.2.3.4:25", &ss, NULL), 0);
}

static void
test_addr_format(void)
{
	static const struct {
		const char *addr;
		const char *host;
		const char *str;
	} t[] = {
	    {"192.0.2.7", "192.0.2.7", "192.0.2.7:4242"},
	    {"::1", "::1", "[::1]:4242"},
	    {"2001:db8::1", "2001:db8::1", "[2001:db8::1]:4242"},
	    {"::ffff:192.0.2.7", "192.0.2.7", "192.0.2.7:4242"},
	    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	     "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:4242"},
	};
	for (size_t i = 0; i < N(t); i++) {
		struct sockaddr_storage ss;
		char buf[NET_ADDR_STR_MAX];
		peer(t[i].addr, &ss);
		CHECK_INT(
		    net_addr_host((struct sockaddr *)&ss, buf, sizeof buf), 0);
		CHECK_STR(buf, t[i].host);
		CHECK_INT(net_addr_str((struct sockaddr *)&ss, buf, sizeof buf),
			  0);
		CHECK_STR(buf, t[i].str);
	}
	/* too small a buffer, and a family we do not know */
	struct sockaddr_storage ss;
	char small[8];
	peer("192.0.2.7", &ss);
	CHECK_INT(net_addr_host((struct sockaddr *)&ss, small, sizeof small),
		  -1);
	CHECK_INT(net_addr_str((struct sockaddr *)&ss, small, sizeof small),
		  -1);
	char fits[15];
	CHECK_INT(net_addr_str((struct sockaddr *)&ss, fits, sizeof fits), 0);
	CHECK_STR(fits, "192.0.2.7:4242");
	ss.ss_family = AF_UNIX;
	errno = 0;
	CHECK_INT(net_addr_host((struct sockaddr *)&ss, fits, sizeof fits), -1);
	CHECK_INT(errno, EAFNOSUPPORT);
}

static void
test_cidr_parse(void)
{
	static const struct {
		const char *in;
		int family; /* 0: invalid */
		unsigned prefix;
		const char *net; /* stored network, host bits cleared */
	} t[] = {
	    {"127.0.0.0/8", AF_INET, 8, "127.0.0.0"},
	    {"10.1.2.3", AF_INET, 32, "10.1.2.3"},
	    {"10.1.2.3/8", AF_INET, 8, "10.0.0.0"},
	    {"192.168.1.77/27", AF_INET, 27, "192.168.1.64"},
	    {"0.0.0.0/0", AF_INET, 0, "0.0.0.0"},
	    {"255.255.255.255/1", AF_INET, 1, "128.0.0.0"},
	    {"::1/128", AF_INET6, 128, "::1"},
	    {"::1", AF_INET6, 128, "::1"},
	    {"::/0", AF_INET6, 0, "::"},
	    {"2001:db8:1:2::5/32", AF_INET6, 32, "2001:db8::"},
	    {"2001:db8::ff/121", AF_INET6, 121, "2001:db8::80"},
	    {"::ffff:127.0.0.1/104", AF_INET6, 104, "::ffff:127.0.0.0"},
	    {"", 0, 0, NULL},
	    {"/8", 0, 0, NULL},
	    {"10.0.0.0/", 0, 0, NULL},
	    {"10.0.0.0/33", 0, 0, NULL},
	    {"10.0.0.0/100", 0, 0, NULL},
	    {"::/129", 0, 0, NULL},
	    {"::/1280", 0, 0, NULL},
	    {"10.0.0.0/8x", 0, 0, NULL},
	    {"10.0.0.0/-1", 0, 0, NULL},
	    {"10.0.0.0/+8", 0, 0, NULL},
	    {"10.0.0.0/ 8", 0, 0, NULL},
	    {"10.0.0.0 /8", 0, 0, NULL},
	    {"10.0.0.0/8/8", 0, 0, NULL},
	    {"10.0.0/8", 0, 0, NULL},
	    {"1.2.3.4.5", 0, 0, NULL},
	    {"256.0.0.0/8", 0, 0, NULL},
	    {"localhost", 0, 0, NULL},
	    {"example.org/24", 0, 0, NULL},
	    {"::g", 0, 0, NULL},
	    {"[::1]/128", 0, 0, NULL},
	    {"1:2:3:4:5:6:7:8:9/64", 0, 0, NULL},
	    {"0000:0000:0000:0000:0000:0000:0000:0000:0000/1", 0, 0, NULL},
	};
	for (size_t i = 0; i < N(t); i++) {
		struct cidr c;
		char buf[INET6_ADDRSTRLEN];
		int r = cidr_parse(t[i].in, &c);
		if (!t[i].family) {
			if (r != -1)
				fprintf(stderr, "accepted: \"%s\"\n", t[i].in);
			CHECK_INT(r, -1);
			continue;
		}
		CHECK_INT(r, 0);
		if (r != 0) {
			fprintf(stderr, "rejected: \"%s\"\n", t[i].in);
			continue;
		}
		CHECK_INT(c.family, t[i].family);
		CHECK_INT(c.prefix, t[i].prefix);
		CHECK(inet_ntop(c.family, c.addr, buf, sizeof buf) != NULL);
		CHECK_STR(buf, t[i].net);
	}
	CHECK_INT(cidr_parse(NULL, NULL), -1);
}

static void
test_cidr_match(void)
{
	static const struct {
		const char *net;
		const char *peer;
		bool match;
	} t[] = {
	    {"127.0.0.0/8", "127.0.0.1", true},
	    {"127.0.0.0/8", "127.255.255.255", true},
	    {"127.0.0.0/8", "128.0.0.1", false},
	    {"127.0.0.0/8", "126.255.255.255", false},
	    {"127.0.0.0/8", "::ffff:127.0.0.1", true}, /* v4-mapped */
	    {"127.0.0.0/8", "::ffff:10.0.0.1", false},
	    {"127.0.0.0/8", "::1", false},
	    {"127.0.0.0/8", "::7f00:1", false}, /* v4-compatible: no */
	    {"10.1.2.3/8", "10.200.0.1", true}, /* host bits ignored */
	    {"10.0.0.0/9", "10.127.255.255", true},
	    {"10.0.0.0/9", "10.128.0.0", false},
	    {"192.168.1.64/27", "192.168.1.64", true},
	    {"192.168.1.64/27", "192.168.1.95", true},
	    {"192.168.1.64/27", "192.168.1.96", false},
	    {"192.168.1.64/27", "192.168.1.63", false},
	    {"10.0.0.1", "10.0.0.1", true},
	    {"10.0.0.1", "10.0.0.2", false},
	    {"0.0.0.0/0", "8.8.8.8", true},
	    {"0.0.0.0/0", "::ffff:8.8.8.8", true},
	    {"0.0.0.0/0", "::1", false},
	    {"::1/128", "::1", true},
	    {"::1", "::2", false},
	    {"::1/128", "127.0.0.1", false},
	    {"2001:db8::/32", "2001:db8:ffff::1", true},
	    {"2001:db8::/32", "2001:db9::1", false},
	    {"2001:db8::80/121", "2001:db8::ff", true},
	    {"2001:db8::80/121", "2001:db8::7f", false},
	    {"::/0", "::1", true},
	    {"::/0", "2001:db8::1", true},
	    {"::/0", "127.0.0.1", false}, /* an AF_INET peer is not v6 */
	    {"::ffff:127.0.0.1/104", "::ffff:127.9.9.9", true},
	    {"::ffff:127.0.0.1/104", "::ffff:128.0.0.1", false},
	    {"::ffff:127.0.0.1/104", "127.0.0.1", false},
	};
	for (size_t i = 0; i < N(t); i++) {
		struct cidr c;
		struct sockaddr_storage ss;
		CHECK_INT(cidr_parse(t[i].net, &c), 0);
		peer(t[i].peer, &ss);
		bool got = cidr_match(&c, (struct sockaddr *)&ss);
		if (got != t[i].match)
			fprintf(stderr, "cidr_match(%s, %s) != %d\n", t[i].net,
				t[i].peer, t[i].match);
		CHECK_INT(got, t[i].match);
	}

	/* a hand-built network with host bits set still masks them off */
	struct cidr raw = {
	    .family = AF_INET, .addr = {10, 1, 2, 3}, .prefix = 8};
	struct sockaddr_storage ss;
	peer("10.9.9.9", &ss);
	CHECK(cidr_match(&raw, (struct sockaddr *)&ss));
	peer("11.1.2.3", &ss);
	CHECK(!cidr_match(&raw, (struct sockaddr *)&ss));
	CHECK(!cidr_match(&raw, NULL));
	ss.ss_family = AF_UNIX;
	CHECK(!cidr_match(&raw, (struct sockaddr *)&ss));
}

static void
test_same_host(void)
{
	static const struct {
		const char *a, *b;
		bool same;
	} t[] = {
	    {"127.0.0.1", "127.0.0.1", true},
	    {"127.0.0.1", "::ffff:127.0.0.1", true},
	    {"::ffff:10.0.0.1", "::ffff:10.0.0.1", true},
	    {"::1", "::1", true},
	    {"2001:db8::1", "2001:db8::1", true},
	    {"::1", "127.0.0.1", false},
	    {"10.0.0.1", "10.0.0.2", false},
	    {"::ffff:10.0.0.1", "10.0.0.2", false},
	    {"2001:db8::1", "2001:db8::2", false},
	};
	for (size_t i = 0; i < N(t); i++) {
		struct sockaddr_storage a, b;
		peer(t[i].a, &a);
		peer(t[i].b, &b);
		((struct sockaddr_in *)&b)->sin_port = htons(25); /* ignored */
		CHECK_INT(
		    net_same_host((struct sockaddr *)&a, (struct sockaddr *)&b),
		    t[i].same);
		CHECK_INT(
		    net_same_host((struct sockaddr *)&b, (struct sockaddr *)&a),
		    t[i].same);
	}
}

static int
int_opt(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof v;
	if (getsockopt(fd, level, name, &v, &len) != 0)
		return -1;
	return v;
}

/* Listens on addr (any port), checks the flags, connects once. */
static void
check_listener(const char *addr)
{
	struct sockaddr_storage ss, bound;
	socklen_t len, blen = sizeof bound;
	CHECK_INT(net_parse_hostport(addr, &ss, &len), 0);
	/* port 0 is rejected by the parser; ask the kernel for any port */
	((struct sockaddr_in *)&ss)->sin_port = 0;
	int fd = net_listen((struct sockaddr *)&ss, len, 16);
	if (fd < 0 && ss.ss_family == AF_INET6 &&
	    (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) {
		fprintf(stderr, "no IPv6 here, skipping %s\n", addr);
		return;
	}
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	bool nonblock = fcntl(fd, F_GETFL) & O_NONBLOCK;
	CHECK(nonblock);
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	CHECK_INT(int_opt(fd, SOL_SOCKET, SO_REUSEADDR), 1);
	CHECK_INT(int_opt(fd, SOL_SOCKET, SO_ACCEPTCONN), 1);
	if (ss.ss_family == AF_INET6)
		CHECK_INT(int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY), 1);
	CHECK_INT(getsockname(fd, (struct sockaddr *)&bound, &blen), 0);
	CHECK(((struct sockaddr_in *)&bound)->sin_port != 0);

	/* non-blocking: nothing to accept yet (not tried if it would hang) */
	if (nonblock) {
		errno = 0;
		CHECK_INT(accept(fd, NULL, NULL), -1);
		CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
	}

	int c = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(c >= 0);
	CHECK_INT(connect(c, (struct sockaddr *)&bound, blen), 0);
	int a = accept(fd, NULL, NULL);
	CHECK(a >= 0);

	/* a second listener on the same address and port fails cleanly */
	errno = 0;
	CHECK_INT(net_listen((struct sockaddr *)&bound, blen, 16), -1);
	CHECK_INT(errno, EADDRINUSE);
	if (a >= 0)
		close(a);
	close(c);
	close(fd);
}

static void
test_listen(void)
{
	check_listener("127.0.0.1:1");
	check_listener("[::1]:1");
	/* the kernel sets V6ONLY itself for ::1, only [::] shows ours */
	check_listener("[::]:1");

	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	ss.ss_family = AF_UNIX + 200; /* no such family */
	errno = 0;
	CHECK_INT(net_listen((struct sockaddr *)&ss, sizeof ss, 1), -1);
	CHECK(errno != 0);
}

static void
test_set_nonblock(void)
{
	int p[2];
	CHECK_INT(pipe(p), 0);
	CHECK(!(fcntl(p[0], F_GETFL) & O_NONBLOCK));
	CHECK(!(fcntl(p[0], F_GETFD) & FD_CLOEXEC));
	CHECK_INT(net_set_nonblock(p[0]), 0);
	CHECK(fcntl(p[0], F_GETFL) & O_NONBLOCK);
	CHECK(fcntl(p[0], F_GETFD) & FD_CLOEXEC);
	char ch;
	errno = 0;
	CHECK_INT(read(p[0], &ch, 1), -1);
	CHECK_INT(errno, EAGAIN);
	close(p[0]);
	close(p[1]);
	errno = 0;
	CHECK_INT(net_set_nonblock(-1), -1);
	CHECK_INT(errno, EBADF);
}

int
main(void)
{
	test_parse_hostport();
	test_addr_format();
	test_cidr_parse();
	test_cidr_match();
	test_same_host();
	test_listen();
	test_set_nonblock();
	return test_summary();
}

/*
 * test_smtp_addr: RFC 5321 path parsing (src/common/smtp_addr.c). A table
 * of input -> error, mailbox, domain, unparsed rest and flags, each input
 * parsed from an exact-size heap copy so ASan catches any read past len.
 * Limits are built at and one past each boundary. Every accepted path
 * must also be accepted with more flags, and "<" addr ">" must parse
 * back to the same mailbox.
 */
#include "smtp_addr.h"
#include "test.h"

#include <stdlib.h>

#define W(s) s, sizeof(s) - 1

enum {
	P_NULL = 1,
	P_PM = 2,
	P_QUOTED = 4,
	P_LITERAL = 8,
	P_UTF8 = 16,
	P_ROUTING = 32,
};

enum {
	F_N = ADDR_ALLOW_NULL,
	F_PM = ADDR_ALLOW_POSTMASTER,
	F_U8 = ADDR_ALLOW_UTF8,
	F_ALL = F_N | F_PM | F_U8,
};

struct path_case {
	const char *in;
	size_t inlen;
	unsigned flags;
	enum addr_err err;
	const char *addr;   /* on success */
	const char *domain; /* on success */
	size_t rest;	    /* octets left after the path */
	unsigned props;
};

#define OK ADDR_OK
#define SYN ADDR_ERR_SYNTAX
#define DOM ADDR_ERR_DOMAIN
#define ERR(in, flags, err)                                                    \
	{                                                                      \
		W(in), flags, err, "", "", 0, 0                                \
	}

static const struct path_case path_cases[] = {
    /* plain mailboxes, kept exactly as received */
    {W("<a@b>"), 0, OK, "a@b", "b", 0, 0},
    {W("<A.B+tag@Example.COM>"), 0, OK, "A.B+tag@Example.COM", "Example.COM", 0,
     0},
    {W("<!#$&'*+-/=?^_`{|}~@x.y>"), 0, OK, "!#$&'*+-/=?^_`{|}~@x.y", "x.y", 0,
     P_ROUTING},
    {W("<a@b-c.d9>"), 0, OK, "a@b-c.d9", "b-c.d9", 0, 0},
    {W("<a@123>"), 0, OK, "a@123", "123", 0, 0},
    {W("<a@b> SIZE=10"), 0, OK, "a@b", "b", 8, 0},
    {W("<a@b><c@d>"), 0, OK, "a@b", "b", 5, 0},
    {W("<a@b>\r\n"), 0, OK, "a@b", "b", 2, 0},
    /* quoted local parts */
    {W("<\"a b\"@c>"), 0, OK, "\"a b\"@c", "c", 0, P_QUOTED},
    {W("<\"\"@c>"), 0, OK, "\"\"@c", "c", 0, P_QUOTED},
    {W("<\"a\\\"b\"@c>"), 0, OK, "\"a\\\"b\"@c", "c", 0, P_QUOTED},
    {W("<\"a\\\\\"@c>"), 0, OK, "\"a\\\\\"@c", "c", 0, P_QUOTED},
    {W("<\"a>b\"@c> X"), 0, OK, "\"a>b\"@c", "c", 2, P_QUOTED},
    {W("<\"a.\"@c>"), 0, OK, "\"a.\"@c", "c", 0, P_QUOTED},
    /* relay tricks (RFC 5321 3.6.1, F.2) */
    {W("<user%other@ours>"), 0, OK, "user%other@ours", "ours", 0, P_ROUTING},
    {W("<other!user@ours>"), 0, OK, "other!user@ours", "ours", 0, P_ROUTING},
    {W("<@ours:user@other>"), 0, OK, "user@other", "other", 0, 0},
    {W("<\"user@other\"@ours>"), 0, OK, "\"user@other\"@ours", "ours", 0,
     P_QUOTED | P_ROUTING},
    {W("<\"user%other\"@ours>"), 0, OK, "\"user%other\"@ours", "ours", 0,
     P_QUOTED | P_ROUTING},
    {W("<\"user\\@other\"@ours>"), 0, OK, "\"user\\@other\"@ours", "ours", 0,
     P_QUOTED | P_ROUTING},
    {W("<\"a\\!b\"@ours>"), 0, OK, "\"a\\!b\"@ours", "ours", 0,
     P_QUOTED | P_ROUTING},
    ERR("<user@other@ours>", 0, SYN),
    {W("<@a,@b:u@c>"), 0, OK, "u@c", "c", 0, 0},
    {W("<@a.example,@b-1.example:u@c> NOTIFY=NEVER"), 0, OK, "u@c", "c", 13, 0},
    ERR("<@a>", 0, SYN),
    ERR("<@a:>", 0, SYN),
    ERR("<@a,b:u@c>", 0, SYN),
    ERR("<@a;u@c>", 0, DOM),
    ERR("<@:u@c>", 0, DOM),
    ERR("<@>", 0, DOM),
    ERR("<@a.:u@c>", 0, DOM),
    ERR("<@[1.2.3.4]:u@c>", 0, DOM),
    ERR("<@a:postmaster>", F_PM, SYN),
    ERR("<@a :u@c>", 0, SYN),
    /* address literals (RFC 5321 4.1.3) */
    {W("<u@[127.0.0.1]>"), 0, OK, "u@[127.0.0.1]", "[127.0.0.1]", 0, P_LITERAL},
    {W("<u@[255.255.255.255]>"), 0, OK, "u@[255.255.255.255]",
     "[255.255.255.255]", 0, P_LITERAL},
    {W("<u@[01.002.0.9]>"), 0, OK, "u@[01.002.0.9]", "[01.002.0.9]", 0,
     P_LITERAL},
    {W("<u@[IPv6:::1]>"), 0, OK, "u@[IPv6:::1]", "[IPv6:::1]", 0, P_LITERAL},
    {W("<u@[ipv6:2001:db8::1]>"), 0, OK, "u@[ipv6:2001:db8::1]",
     "[ipv6:2001:db8::1]", 0, P_LITERAL},
    {W("<u@[IPv6:::ffff:192.0.2.1]>"), 0, OK, "u@[IPv6:::ffff:192.0.2.1]",
     "[IPv6:::ffff:192.0.2.1]", 0, P_LITERAL},
    {W("<u@[x-tag:any>thing]>"), 0, OK, "u@[x-tag:any>thing]",
     "[x-tag:any>thing]", 0, P_LITERAL},
    ERR("<u@[300.1.1.1]>", 0, DOM),
    ERR("<u@[256.1.1.1]>", 0, DOM),
    ERR("<u@[1.2.3]>", 0, DOM),
    ERR("<u@[1.2.3.4.5]>", 0, DOM),
    ERR("<u@[1234.1.1.1]>", 0, DOM),
    ERR("<u@[1..2.3]>", 0, DOM),
    ERR("<u@[1.2.3.4.]>", 0, DOM),
    ERR("<u@[]>", 0, DOM),
    ERR("<u@[IPv6:zz]>", 0, DOM),
    ERR("<u@[IPv6:]>", 0, DOM),
    ERR("<u@[IPv6:1.2.3.4]>", 0, DOM),
    ERR("<u@[IPv6:1::2::3]>", 0, DOM),
    ERR("<u@[IPv6:1:2:3:4:5:6:7:8:9:10:11:12:13:14:15:16:17:18]>", 0, DOM),
    ERR("<u@[-:x]>", 0, DOM),
    ERR("<u@[tag-:x]>", 0, DOM),
    ERR("<u@[tag:]>", 0, DOM),
    ERR("<u@[:x]>", 0, DOM),
    ERR("<u@[a[b]>", 0, DOM),
    ERR("<u@[a\\b]>", 0, DOM),
    ERR("<u@[1.2.3.4]x>", 0, DOM),
    ERR("<u@[1.2.3.4>", 0, SYN),
    ERR("<u@[1.2.3.4 ]>", 0, SYN),
    /* domains */
    ERR("<a@>", 0, DOM),
    ERR("<a@b.>", 0, DOM),
    ERR("<a@b.c.>", 0, DOM),
    ERR("<a@.b>", 0, DOM),
    ERR("<a@b..c>", 0, DOM),
    ERR("<a@-b>", 0, DOM),
    ERR("<a@b->", 0, DOM),
    ERR("<a@b-.c>", 0, DOM),
    ERR("<a@b_c>", 0, DOM),
    ERR("<a@b/c>", 0, DOM),
    ERR("<a@b,c>", 0, SYN),
    ERR("<a@b:c>", 0, SYN),
    ERR("<a@b c>", 0, SYN),
    ERR("<a@ b>", 0, SYN),
    ERR("<a@b.>x", 0, DOM),
    ERR("<a@b.", 0, SYN),
    /* null path and postmaster */
    {W("<>"), F_N, OK, "", "", 0, P_NULL},
    {W("<> SIZE=1"), F_N, OK, "", "", 7, P_NULL},
    ERR("<>", 0, ADDR_ERR_NULL_NOT_ALLOWED),
    ERR("<>", F_PM | F_U8, ADDR_ERR_NULL_NOT_ALLOWED),
    ERR("< >", F_N, SYN),
    {W("<postmaster>"), F_PM, OK, "postmaster", "", 0, P_PM},
    {W("<PostMaster>"), F_PM, OK, "postmaster", "", 0, P_PM},
    {W("<POSTMASTER> X"), F_PM, OK, "postmaster", "", 2, P_PM},
    {W("<Postmaster@Example.org>"), F_PM, OK, "Postmaster@Example.org",
     "Example.org", 0, 0},
    ERR("<postmaster>", 0, SYN),
    ERR("<postmaster>", F_N | F_U8, SYN),
    ERR("<\"postmaster\">", F_PM, SYN),
    ERR("<postmast>", F_PM, SYN),
    ERR("<postmasters>", F_PM, SYN),
    ERR("<post.master>", F_PM, SYN),
    ERR("<a>", F_ALL, SYN),
    /* brackets, spaces, local part syntax */
    ERR("", 0, ADDR_ERR_NO_BRACKETS),
    ERR("a@b", 0, ADDR_ERR_NO_BRACKETS),
    ERR(" <a@b>", 0, ADDR_ERR_NO_BRACKETS),
    ERR("a@b>", 0, ADDR_ERR_NO_BRACKETS),
    ERR("<", 0, SYN),
    ERR("<a@b", 0, SYN),
    ERR("< a@b>", 0, SYN),
    ERR("<a@b >", 0, SYN),
    ERR("<a @b>", 0, SYN),
    ERR("<a b@c>", 0, SYN),
    ERR("<.a@b>", 0, SYN),
    ERR("<a.@b>", 0, SYN),
    ERR("<a..b@c>", 0, SYN),
    ERR("<a(b)@c>", 0, SYN),
    ERR("<a,b@c>", 0, SYN),
    ERR("<a\"b@c>", 0, SYN),
    ERR("<\"a\"b@c>", 0, SYN),
    ERR("<\"a\".b@c>", 0, SYN),
    ERR("<\"abc@d>", 0, SYN),
    ERR("<\"a\tb\"@c>", 0, SYN),
    ERR("<\"a\\\tb\"@c>", 0, SYN),
    ERR("<\"a\\", 0, SYN),
    ERR("<\"a\">", F_ALL, SYN),
    ERR("<a@b\r\n>", 0, SYN),
    ERR("<a\0b@c>", 0, SYN),
    ERR("<a@b\0>", 0, SYN),
    ERR("<\"a\0\"@c>", 0, SYN),
    ERR("<a\x7f@c>", 0, SYN),
    ERR("<<a@b>>", 0, SYN),
    /* UTF-8 (RFC 6531): refused without SMTPUTF8, checked with it */
    ERR("<j\xc3\xb6rg@example.com>", 0, ADDR_ERR_UTF8),
    ERR("<j\xc3\xb6rg@example.com>", F_N | F_PM, ADDR_ERR_UTF8),
    {W("<j\xc3\xb6rg@example.com>"), F_U8, OK, "j\xc3\xb6rg@example.com",
     "example.com", 0, P_UTF8},
    ERR("<a@b\xc3\xbc"
	"cher.de>",
	0, ADDR_ERR_UTF8),
    {W("<a@b\xc3\xbc"
       "cher.de>"),
     F_U8, OK,
     "a@b\xc3\xbc"
     "cher.de",
     "b\xc3\xbc"
     "cher.de",
     0, P_UTF8},
    {W("<a@\xc3\xa9>"), F_U8, OK, "a@\xc3\xa9", "\xc3\xa9", 0, P_UTF8},
    {W("<a@b-\xc3\xa9.x>"), F_U8, OK, "a@b-\xc3\xa9.x", "b-\xc3\xa9.x", 0,
     P_UTF8},
    ERR("<a@\xc3\xa9->", F_U8, DOM),
    {W("<\"j\xc3\xb6 rg\"@x>"), F_U8, OK, "\"j\xc3\xb6 rg\"@x", "x", 0,
     P_QUOTED | P_UTF8},
    ERR("<\"j\xc3\xb6rg\"@x>", 0, ADDR_ERR_UTF8),
    {W("<\xf0\x9f\x98\x80@x>"), F_U8, OK, "\xf0\x9f\x98\x80@x", "x", 0, P_UTF8},
    {W("<\xe2\x82\xac%x@y>"), F_U8, OK, "\xe2\x82\xac%x@y", "y", 0,
     P_UTF8 | P_ROUTING},
    {W("<@b\xc3\xbc:a@b>"), F_U8, OK, "a@b", "b", 0, 0},
    ERR("<@b\xc3\xbc:a@b>", 0, ADDR_ERR_UTF8),
    ERR("<\xc3@x>", F_U8, SYN),
    ERR("<\xc3(@x>", F_U8, SYN),
    ERR("<\xc0\x80@x>", F_U8, SYN),
    ERR("<\xc1\xbf@x>", F_U8, SYN),
    ERR("<\xe0\x80\x80@x>", F_U8, SYN),
    ERR("<\xed\xa0\x80@x>", F_U8, SYN),
    ERR("<\xf0\x80\x80\x80@x>", F_U8, SYN),
    ERR("<\xf4\x90\x80\x80@x>", F_U8, SYN),
    ERR("<\xf5\x80\x80\x80@x>", F_U8, SYN),
    ERR("<\x80@x>", F_U8, SYN),
    ERR("<a@b\xff>", F_U8, SYN),
    ERR("<a@b\xe2\x82>", F_U8, SYN),
    ERR("<\xe2\x82", F_U8, SYN),
    ERR("<\xc0\x80@x>", 0, ADDR_ERR_UTF8),
    ERR("<\"\\\xc3\xa9\"@x>", F_U8, SYN),
    ERR("<\"\\\xc3\xa9\"@x>", 0, ADDR_ERR_UTF8),
    ERR("<a@[\xc3\xa9]>", F_U8, DOM),
    ERR("<a@[\xc3\xa9]>", 0, ADDR_ERR_UTF8),
    ERR("<a b\xc3\xa9@x>", 0, SYN),
};

#define NCASES (sizeof path_cases / sizeof path_cases[0])

/* Parses an exact-size heap copy so a read past len is an ASan error. */
static enum addr_err
parse_exact(const char *in, size_t len, unsigned flags, struct smtp_path *out,
	    size_t *consumed)
{
	char *copy = malloc(len ? len : 1);
	if (!copy) {
		perror("malloc");
		exit(1);
	}
	memcpy(copy, in, len);
	enum addr_err e = smtp_path_parse(copy, len, flags, out, consumed);
	free(copy);
	return e;
}

static unsigned
path_props(const struct smtp_path *p)
{
	return (p->is_null ? P_NULL : 0) | (p->is_postmaster ? P_PM : 0) |
	       (p->quoted ? P_QUOTED : 0) | (p->literal ? P_LITERAL : 0) |
	       (p->utf8 ? P_UTF8 : 0) |
	       (smtp_path_has_routing(p) ? P_ROUTING : 0);
}

/* An accepted path stays accepted, the same, with every flag set. */
static void
check_more_flags(const struct path_case *c, const struct smtp_path *want)
{
	struct smtp_path p;
	size_t used;

	CHECK_INT(parse_exact(c->in, c->inlen, F_ALL, &p, &used), ADDR_OK);
	CHECK_STR(p.addr, want->addr);
	CHECK_INT(used, c->inlen - c->rest);
}

/* "<" addr ">" parses back to the same mailbox. */
static void
check_round_trip(const struct smtp_path *want, unsigned flags)
{
	char buf[SMTP_PATH_MAX + 8];
	struct smtp_path p;
	size_t used;
	int n = snprintf(buf, sizeof buf, "<%s>", want->addr);

	CHECK_INT(parse_exact(buf, (size_t)n, flags, &p, &used), ADDR_OK);
	CHECK_STR(p.addr, want->addr);
	CHECK_INT(p.at, want->at);
	CHECK_INT(used, (size_t)n);
}

static void
test_table(void)
{
	for (size_t i = 0; i < NCASES; i++) {
		const struct path_case *c = &path_cases[i];
		struct smtp_path p;
		size_t used = 99;

		enum addr_err e =
		    parse_exact(c->in, c->inlen, c->flags, &p, &used);
		if (e != c->err)
			fprintf(stderr, "case %zu: \"%s\"\n", i, c->in);
		CHECK_INT(e, c->err);
		if (e != ADDR_OK) {
			CHECK_INT(used, 0);
			CHECK_INT(p.len, 0);
			CHECK_STR(p.addr, "");
			CHECK_INT(path_props(&p), 0);
			continue;
		}
		CHECK_STR(p.addr, c->addr);
		CHECK_INT(p.len, strlen(c->addr));
		CHECK_STR(smtp_path_domain(&p), c->domain);
		CHECK_INT(used, c->inlen - c->rest);
		CHECK_INT(path_props(&p), c->props);
		CHECK(p.at == p.len || p.addr[p.at] == '@');
		CHECK_INT(p.at == p.len, c->domain[0] == '\0');
		if (p.at < p.len)
			CHECK_INT(p.len - p.at - 1, strlen(c->domain));
		check_more_flags(c, &p);
		if (!p.is_null && !p.is_postmaster)
			check_round_trip(&p, c->flags);
	}
}

/* "<" local "@" domain ">" of the given sizes, built in buf. */
static size_t
build_path(char *buf, const char *route, size_t local, size_t domain)
{
	size_t n = 0;

	buf[n++] = '<';
	memcpy(buf + n, route, strlen(route));
	n += strlen(route);
	memset(buf + n, 'l', local);
	n += local;
	buf[n++] = '@';
	for (size_t i = 0; i < domain; i++) /* a label every 50 octets */
		buf[n++] = (i % 50 == 49 && i + 1 < domain) ? '.' : 'd';
	buf[n++] = '>';
	return n;
}

static void
expect_sized(const char *route, size_t local, size_t domain, enum addr_err want)
{
	char buf[2048];
	struct smtp_path p;
	size_t used;
	size_t n = build_path(buf, route, local, domain);
	enum addr_err e = parse_exact(buf, n, 0, &p, &used);

	if (e != want)
		fprintf(stderr, "route %zu local %zu domain %zu\n",
			strlen(route), local, domain);
	CHECK_INT(e, want);
	if (want == ADDR_OK) {
		CHECK_INT(used, n);
		CHECK_INT(p.at, local);
		CHECK_INT(p.len, local + 1 + domain);
		CHECK_INT(strlen(p.addr), p.len);
	}
}

/* "@rrr.rrr...:" of n octets in all. */
static void
build_route(char *buf, size_t n)
{
	buf[0] = '@';
	for (size_t i = 1; i + 1 < n; i++)
		buf[i] = (i % 50 == 0 && i + 2 < n) ? '.' : 'r';
	buf[n - 1] = ':';
	buf[n] = '\0';
}

/* RFC 5321 4.5.3.1: at each limit and one past it. */
static void
test_limits(void)
{
	char route[600];

	/* local part 64 */
	expect_sized("", 64, 1, ADDR_OK);
	expect_sized("", 65, 1, ADDR_ERR_LOCAL_LONG);
	expect_sized("", 65, 0, ADDR_ERR_LOCAL_LONG);
	/* path 256 with brackets: 1 + 64 + 1 + 189 + 1 */
	expect_sized("", 64, 189, ADDR_OK);
	expect_sized("", 64, 190, ADDR_ERR_PATH_LONG);
	expect_sized("", 1, 252, ADDR_OK);
	expect_sized("", 1, 253, ADDR_ERR_PATH_LONG);
	/* domain 255: within the domain limit, so only the path is long */
	expect_sized("", 1, 255, ADDR_ERR_PATH_LONG);
	expect_sized("", 1, 256, ADDR_ERR_DOMAIN_LONG);
	expect_sized("", 1, 1000, ADDR_ERR_DOMAIN_LONG);
	/* the source route counts towards the path: 1 + route + 4 */
	build_route(route, 251);
	expect_sized(route, 1, 1, ADDR_OK);
	build_route(route, 252);
	expect_sized(route, 1, 1, ADDR_ERR_PATH_LONG);
	/* a route domain over 255 */
	route[0] = '@';
	memset(route + 1, 'r', 256);
	route[257] = ':';
	route[258] = '\0';
	expect_sized(route, 1, 1, ADDR_ERR_DOMAIN_LONG);
	route[256] = ':';
	route[257] = '\0';
	expect_sized(route, 1, 1, ADDR_ERR_PATH_LONG);
}

/* Limits count octets, not characters. */
static void
test_utf8_limits(void)
{
	char buf[256];
	struct smtp_path p;
	size_t used;

	for (size_t extra = 2; extra <= 3; extra++) {
		size_t n = 0;
		buf[n++] = '<';
		for (int i = 0; i < 31; i++) {
			buf[n++] = '\xc3';
			buf[n++] = '\xb6';
		}
		memset(buf + n, 'a', extra);
		n += extra;
		memcpy(buf + n, "@x>", 3);
		n += 3;
		CHECK_INT(parse_exact(buf, n, F_U8, &p, &used),
			  extra == 2 ? ADDR_OK : ADDR_ERR_LOCAL_LONG);
	}
	CHECK(p.len == 0);
}

/* The parser stops at len even when the buffer goes on. */
static void
test_bounded(void)
{
	static const char s[] = "<a@b>";
	struct smtp_path p;
	size_t used;

	for (size_t n = 0; n < sizeof s - 1; n++)
		CHECK_INT(smtp_path_parse(s, n, F_ALL, &p, &used),
			  n == 0 ? ADDR_ERR_NO_BRACKETS : ADDR_ERR_SYNTAX);
	CHECK_INT(smtp_path_parse(s, sizeof s - 1, 0, &p, NULL), ADDR_OK);
	CHECK_INT(smtp_path_parse(NULL, 0, 0, &p, &used), ADDR_ERR_NO_BRACKETS);
	CHECK_INT(used, 0);
}

static void
test_domain_equal(void)
{
	static const struct {
		const char *a, *b;
		bool eq;
	} cases[] = {
	    {"example.com", "example.com", true},
	    {"Example.COM", "example.com", true},
	    {"example.com.", "example.com", true},
	    {"example.com", "EXAMPLE.com.", true},
	    {"a.", "a.", true},
	    {"", "", true},
	    {"a..", "a", false},
	    {"a..", "a.", false},
	    {"a..", "a..", true},
	    {"example.co", "example.com", false},
	    {"example.com", "example.co", false},
	    {"a", "b", false},
	    {"a", "", false},
	    {"[127.0.0.1]", "[127.0.0.1]", true},
	    {"\xc3\x89x", "\xc3\xa9x", false}, /* ASCII folding only */
	    {"x\xc3\xa9", "X\xc3\xa9", true},
	    {"a@b", "A@B", true},
	    {"a", "a@", false},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *a = cases[i].a, *b = cases[i].b;
		CHECK_INT(smtp_domain_equal(a, b), cases[i].eq);
		CHECK_INT(smtp_domain_equal(b, a), cases[i].eq);
	}
	CHECK(!smtp_domain_equal(NULL, "a"));
	CHECK(!smtp_domain_equal("a", NULL));
}

/* Parsed domains compare with configured ones. */
static void
test_domain_of_path(void)
{
	struct smtp_path p;
	size_t used;

	CHECK_INT(smtp_path_parse(W("<Bob@Mail.Example.ORG>"), 0, &p, &used),
		  ADDR_OK);
	CHECK(smtp_domain_equal(smtp_path_domain(&p), "mail.example.org."));
	CHECK(!smtp_path_has_routing(&p));
	CHECK_INT(smtp_path_parse(W("<>"), F_N, &p, &used), ADDR_OK);
	CHECK_STR(smtp_path_domain(&p), "");
	CHECK(!smtp_path_has_routing(&p));
	CHECK_INT(p.at, 0);
	CHECK_INT(smtp_path_parse(W("<postMASTER>"), F_PM, &p, &used), ADDR_OK);
	CHECK_STR(smtp_path_domain(&p), "");
	CHECK_INT(p.at, 10);
	CHECK(!smtp_path_has_routing(&p));
}

static void
test_strerror(void)
{
	CHECK_STR(smtp_addr_strerror(ADDR_ERR_SYNTAX), "bad address syntax");
	CHECK_STR(smtp_addr_strerror(ADDR_ERR_LOCAL_LONG),
		  "local part longer than 64 octets");
	CHECK_STR(smtp_addr_strerror(ADDR_ERR_DOMAIN_LONG),
		  "domain longer than 255 octets");
	CHECK_STR(smtp_addr_strerror(ADDR_ERR_PATH_LONG),
		  "path longer than 256 octets");
	for (int a = ADDR_OK; a <= ADDR_ERR_NULL_NOT_ALLOWED; a++) {
		const char *sa = smtp_addr_strerror((enum addr_err)a);
		CHECK(sa != NULL && sa[0] != '\0');
		for (int b = ADDR_OK; b < a; b++) {
			const char *sb = smtp_addr_strerror((enum addr_err)b);
			CHECK(strcmp(sa, sb) != 0);
		}
	}
	CHECK(smtp_addr_strerror((enum addr_err)99) != NULL);
}

int
main(void)
{
	test_table();
	test_limits();
	test_utf8_limits();
	test_bounded();
	test_domain_equal();
	test_domain_of_path();
	test_strerror();
	return test_summary();
}

/*
 * test_smtp_reply: SMTP replies (src/common/smtp_reply.c). The formatter
 * (code, enhanced code, text -> reply lines), the client-side parser
 * (bytes -> code, enhanced code, text, lines, bytes used) as a table whose
 * complete replies are also cut at every length, the limits at and one
 * past them, and EHLO capabilities from real-world replies. Every parse
 * reads an exact-size heap copy so ASan catches a read past len.
 */
#include "smtp_reply.h"
#include "test.h"

#include <stdlib.h>

#define W(s) s, sizeof(s) - 1
#define ALL ((size_t)-1) /* used: the whole input */

static void *
reply_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		perror("malloc");
		exit(1);
	}
	return p;
}

/* ---- formatter ---- */

struct fmt_case {
	int code;
	const char *enh;
	const char *text;
	const char *want; /* "" when the result is 0 */
};

static const struct fmt_case fmt_cases[] = {
    {250, NULL, "OK", "250 OK\r\n"},
    {250, "2.1.0", "Sender ok", "250 2.1.0 Sender ok\r\n"},
    {220, NULL, "", "220 \r\n"},
    {250, NULL, "mx.example\nPIPELINING\nSIZE 100",
     "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n"},
    {550, "5.7.1", "one\ntwo", "550-5.7.1 one\r\n550 5.7.1 two\r\n"},
    {250, NULL, "a\n", "250-a\r\n250 \r\n"},
    {199, NULL, "x", ""},
    {600, NULL, "x", ""},
};

static void
test_format_table(void)
{
	char buf[256];

	for (size_t i = 0; i < sizeof fmt_cases / sizeof fmt_cases[0]; i++) {
		const struct fmt_case *c = &fmt_cases[i];
		size_t n = smtp_reply_format(buf, sizeof buf, c->code, c->enh,
					     c->text);
		CHECK_MEM(buf, n, c->want, strlen(c->want));
		if (n == 0)
			continue;
		/* exactly big enough works, one octet less gives 0 */
		char *exact = reply_xmalloc(n);
		CHECK_INT(smtp_reply_format(exact, n, c->code, c->enh, c->text),
			  n);
		CHECK_MEM(exact, n, c->want, n);
		CHECK_INT(
		    smtp_reply_format(exact, n - 1, c->code, c->enh, c->text),
		    0);
		free(exact);
	}
	CHECK_INT(smtp_reply_format(buf, 0, 250, NULL, "OK"), 0);
}

/* Lines are cut at SMTP_REPLY_LINE_MAX octets, CRLF included. */
static void
test_format_long(void)
{
	char text[1000], buf[2048];

	memset(text, 'x', sizeof text - 1);
	text[sizeof text - 1] = '\0';
	size_t n = smtp_reply_format(buf, sizeof buf, 250, "2.0.0", text);
	CHECK_INT(n, SMTP_REPLY_LINE_MAX);
	CHECK_MEM(buf, 10, "250 2.0.0 ", 10);
	CHECK_MEM(buf + n - 3, 3, "x\r\n", 3);
}

/* ---- parser ---- */

struct parse_case {
	const char *name;
	const char *in;
	size_t inlen;
	enum smtp_reply_status st;
	int code;
	const char *enh;
	const char *text;
	size_t lines;
	size_t used; /* ALL: the whole input */
};

#define OKR(name, in, code, enh, text, lines, used)                            \
	{                                                                      \
		name, W(in), SMTP_REPLY_OK, code, enh, text, lines, used       \
	}
#define BADR(name, in, st)                                                     \
	{                                                                      \
		name, W(in), st, 0, "", "", 0, 0                               \
	}

static const struct parse_case parse_cases[] = {
    OKR("greeting", "220 mx.example.com ESMTP ready\r\n", 220, "",
	"mx.example.com ESMTP ready", 1, ALL),
    OKR("bare code", "250\r\n", 250, "", "", 1, ALL),
    OKR("code and space", "250 \r\n", 250, "", "", 1, ALL),
    OKR("bare LF", "250 ok\n", 250, "", "ok", 1, ALL),
    OKR("multi-line", "250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
	250, "", "mx.example\nPIPELINING\n8BITMIME", 3, ALL),
    OKR("multi-line mixed line ends", "250-a\n250-b\r\n250 c\n", 250, "",
	"a\nb\nc", 3, ALL),
    OKR("empty continuation", "250-\r\n250 x\r\n", 250, "", "\nx", 2, ALL),
    OKR("enhanced", "250 2.1.0 Ok\r\n", 250, "2.1.0", "Ok", 1, ALL),
    OKR("enhanced only", "550 5.1.1\r\n", 550, "5.1.1", "", 1, ALL),
    OKR("enhanced wide", "451 4.10.100 later\r\n", 451, "4.10.100", "later", 1,
	ALL),
    OKR("enhanced every line",
	"550-5.7.1 line one\r\n550-5.7.1 line two\r\n550 5.7.1 line 3\r\n", 550,
	"5.7.1", "line one\nline two\nline 3", 3, ALL),
    OKR("enhanced first line only", "550-5.1.1 a\r\n550 b\r\n", 550, "5.1.1",
	"a\nb", 2, ALL),
    OKR("enhanced later line only kept", "250-a\r\n250 2.0.0 b\r\n", 250, "",
	"a\n2.0.0 b", 2, ALL),
    OKR("enhanced wrong class", "550 4.1.1 x\r\n", 550, "", "4.1.1 x", 1, ALL),
    OKR("enhanced class 3 does not exist", "354 3.0.0 go\r\n", 354, "",
	"3.0.0 go", 1, ALL),
    OKR("enhanced four parts", "250 2.1.5.6 x\r\n", 250, "", "2.1.5.6 x", 1,
	ALL),
    OKR("enhanced subject too long", "250 2.1000.0 x\r\n", 250, "",
	"2.1000.0 x", 1, ALL),
    OKR("enhanced detail too long", "250 2.0.1000 x\r\n", 250, "", "2.0.1000 x",
	1, ALL),
    OKR("enhanced empty subject", "250 2..0 x\r\n", 250, "", "2..0 x", 1, ALL),
    OKR("enhanced glued", "250 2.0.0x\r\n", 250, "", "2.0.0x", 1, ALL),
    OKR("enhanced two parts", "250 2.0 x\r\n", 250, "", "2.0 x", 1, ALL),
    OKR("enhanced not at start", "250  2.0.0 x\r\n", 250, "", " 2.0.0 x", 1,
	ALL),
    OKR("two replies", "250 a\r\n354 b\r\n", 250, "", "a", 1, 7),
    OKR("reply then partial", "250 a\r\n35", 250, "", "a", 1, 7),
    OKR("bare CR kept", "250 a\rb\r\n", 250, "", "a\rb", 1, ALL),
    OKR("CR CR LF", "250 a\r\r\n", 250, "", "a\r", 1, ALL),
    OKR("NUL in text", "250-a\0b\r\n250 \0\r\n", 250, "", "a?b\n?", 2, ALL),
    OKR("highest code", "559 x\r\n", 559, "", "x", 1, ALL),
    BADR("partial", "250 a", SMTP_REPLY_INCOMPLETE),
    BADR("partial multi-line", "250-a\r\n250-b\r\n", SMTP_REPLY_INCOMPLETE),
    BADR("partial CR", "250 a\r", SMTP_REPLY_INCOMPLETE),
    BADR("empty", "", SMTP_REPLY_INCOMPLETE),
    BADR("garbage judged at LF", "xyz", SMTP_REPLY_INCOMPLETE),
    BADR("mixed codes", "250-a\r\n251 b\r\n", SMTP_REPLY_ERR_SYNTAX),
    BADR("mixed codes early", "250-a\r\n550-b\r\n", SMTP_REPLY_ERR_SYNTAX),
    BADR("empty line", "\r\n", SMTP_REPLY_ERR_SYNTAX),
    BADR("two digits", "25 ok\r\n", SMTP_REPLY_ERR_SYNTAX),
    BADR("four digits", "2500 ok\r\n", SMTP_REPLY_ERR_SYNTAX),
    BADR("code glued to text", "250ok\r\n", SMTP_REPLY_ERR_SYNTAX),
    BADR("tab after code", "250\tok\r\n", SMTP_REPLY_ERR_SYNTAX),
    BADR("1yz", "199 x\r\n", SMTP_REPLY_ERR_SYNTAX),
    BADR("6yz", "600 x\r\n", SMTP_REPLY_ERR_SYNTAX),
    BADR("second digit 6", "260 x\r\n", SMTP_REPLY_ERR_SYNTAX),
    BADR("letters", "abc def\r\n", SMTP_REPLY_ERR_SYNTAX),
    BADR("leading space", " 250 x\r\n", SMTP_REPLY_ERR_SYNTAX),
    BADR("bad line after continuation", "250-a\r\nfoo\r\n",
	 SMTP_REPLY_ERR_SYNTAX),
    BADR("NUL in code", "2\0\060 x\r\n", SMTP_REPLY_ERR_SYNTAX),
};

/* Parses an exact-size heap copy of in[0..len). */
static enum smtp_reply_status
reply_parse(const char *in, size_t len, struct smtp_reply *r, size_t *used)
{
	char *copy = reply_xmalloc(len);
	memcpy(copy, in, len);
	enum smtp_reply_status st = smtp_reply_parse(copy, len, r, used);
	free(copy);
	return st;
}

static void
reply_check_empty(const struct smtp_reply *r, size_t used)
{
	CHECK_INT(used, 0);
	CHECK_INT(r->code, 0);
	CHECK_INT(r->lines, 0);
	CHECK_STR(r->text, "");
	CHECK_STR(r->enh, "");
}

static void
reply_check_case(const struct parse_case *c, const struct smtp_reply *r,
		 size_t used)
{
	CHECK_INT(r->code, c->code);
	CHECK_STR(r->enh, c->enh);
	CHECK_STR(r->text, c->text);
	CHECK_INT(r->lines, c->lines);
	CHECK_INT(used, c->used == ALL ? c->inlen : c->used);
}

/* Every cut before the end of the reply is INCOMPLETE. */
static void
reply_check_cuts(const struct parse_case *c, size_t end)
{
	struct smtp_reply r;
	size_t used;

	for (size_t k = 0; k <= c->inlen; k++) {
		enum smtp_reply_status st = reply_parse(c->in, k, &r, &used);
		if (k < end) {
			CHECK_INT(st, SMTP_REPLY_INCOMPLETE);
			reply_check_empty(&r, used);
		} else {
			CHECK_INT(st, SMTP_REPLY_OK);
			reply_check_case(c, &r, used);
		}
	}
}

static void
test_parse_table(void)
{
	struct smtp_reply r;
	size_t used;

	for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0];
	     i++) {
		const struct parse_case *c = &parse_cases[i];
		int before = test_failures;
		enum smtp_reply_status st =
		    reply_parse(c->in, c->inlen, &r, &used);

		CHECK_INT(st, c->st);
		if (st == SMTP_REPLY_OK) {
			reply_check_case(c, &r, used);
			reply_check_cuts(c, used);
		} else {
			reply_check_empty(&r, used);
		}
		if (test_failures != before)
			fprintf(stderr, "  in case \"%s\"\n", c->name);
	}
}

/* Two replies back to back: the second starts at *used. */
static void
test_parse_two(void)
{
	static const char in[] = "250-a\r\n250 b\r\n354 go ahead\r\n";
	struct smtp_reply r;
	size_t used;

	CHECK_INT(reply_parse(in, sizeof in - 1, &r, &used), SMTP_REPLY_OK);
	CHECK_INT(used, 14);
	CHECK_STR(r.text, "a\nb");
	CHECK_INT(reply_parse(in + used, sizeof in - 1 - used, &r, &used),
		  SMTP_REPLY_OK);
	CHECK_INT(r.code, 354);
	CHECK_STR(r.text, "go ahead");
	CHECK_INT(used, 14);
}

/* "250 " + text + CRLF, n octets in all. */
static size_t
reply_long_line(char *buf, size_t n, char fill)
{
	memcpy(buf, "250 ", 4);
	memset(buf + 4, fill, n - 6);
	memcpy(buf + n - 2, "\r\n", 2);
	return n;
}

/* A line of 2048 octets (CRLF included) is read, 2049 is too long. */
static void
test_parse_long_line(void)
{
	char buf[2100];
	struct smtp_reply r;
	size_t used;

	size_t n = reply_long_line(buf, 2048, 'y');
	CHECK_INT(reply_parse(buf, n, &r, &used), SMTP_REPLY_OK);
	CHECK_INT(used, 2048);
	/* the text is truncated */
	CHECK_INT(strlen(r.text), SMTP_REPLY_TEXT_MAX - 1);
	CHECK(r.text[0] == 'y' && r.text[SMTP_REPLY_TEXT_MAX - 2] == 'y');
	/* a bare LF makes it one octet shorter */
	buf[2046] = '\n';
	CHECK_INT(reply_parse(buf, 2047, &r, &used), SMTP_REPLY_OK);

	n = reply_long_line(buf, 2049, 'y');
	CHECK_INT(reply_parse(buf, n, &r, &used), SMTP_REPLY_ERR_LONG);
	reply_check_empty(&r, used);
	/* known without the line end */
	CHECK_INT(reply_parse(buf, 2048, &r, &used), SMTP_REPLY_ERR_LONG);
	CHECK_INT(reply_parse(buf, 2047, &r, &used), SMTP_REPLY_INCOMPLETE);
	/* also on a later line */
	memcpy(buf, "250-a\r\n", 7);
	n = 7 + reply_long_line(buf + 7, 2049, 'z');
	CHECK_INT(reply_parse(buf, n, &r, &used), SMTP_REPLY_ERR_LONG);
}

/* n lines "250-line i of text" ... "250 line n of text". */
static size_t
reply_many_lines(char *buf, size_t cap, size_t n)
{
	size_t pos = 0;

	for (size_t i = 1; i <= n; i++)
		pos += (size_t)snprintf(buf + pos, cap - pos,
					"250%cline %zu of text\r\n",
					i == n ? ' ' : '-', i);
	return pos;
}

static void
test_parse_many_lines(void)
{
	char buf[4096];
	struct smtp_reply r;
	size_t used;

	size_t n = reply_many_lines(buf, sizeof buf, SMTP_REPLY_LINES_MAX);
	CHECK_INT(reply_parse(buf, n, &r, &used), SMTP_REPLY_OK);
	CHECK_INT(r.lines, SMTP_REPLY_LINES_MAX);
	CHECK_INT(used, n);
	CHECK(strncmp(r.text, "line 1 of text\nline 2 of text\n", 30) == 0);
	/* the text is cut at SMTP_REPLY_TEXT_MAX - 1 */
	CHECK_INT(strlen(r.text), SMTP_REPLY_TEXT_MAX - 1);

	n = reply_many_lines(buf, sizeof buf, SMTP_REPLY_LINES_MAX + 1);
	CHECK_INT(reply_parse(buf, n, &r, &used), SMTP_REPLY_ERR_LONG);
	reply_check_empty(&r, used);
	/* known once 100 continuation lines are in */
	size_t cut = (size_t)(strstr(buf, "line 100 of text\r\n") - buf) + 18;
	CHECK_INT(reply_parse(buf, cut, &r, &used), SMTP_REPLY_ERR_LONG);
	CHECK_INT(reply_parse(buf, cut - 1, &r, &used), SMTP_REPLY_INCOMPLETE);
}

/* The text fits exactly, then is cut in the middle of a line. */
static void
test_parse_truncation(void)
{
	char buf[4096], want[SMTP_REPLY_TEXT_MAX];
	struct smtp_reply r;
	size_t used, pos;

	/* "250-" + 511 a + CRLF, "250 " + 511 b + CRLF: 1023 octets of text */
	pos = reply_long_line(buf, 517, 'a');
	buf[3] = '-';
	pos += reply_long_line(buf + pos, 517, 'b');
	memset(want, 'a', 511);
	want[511] = '\n';
	memset(want + 512, 'b', 511);
	want[1023] = '\0';
	CHECK_INT(reply_parse(buf, pos, &r, &used), SMTP_REPLY_OK);
	CHECK_STR(r.text, want);

	/* one more octet on the last line is dropped */
	pos = reply_long_line(buf, 517, 'a');
	buf[3] = '-';
	pos += reply_long_line(buf + pos, 518, 'b');
	CHECK_INT(reply_parse(buf, pos, &r, &used), SMTP_REPLY_OK);
	CHECK_STR(r.text, want);
	CHECK_INT(r.lines, 2);

	/* lines past a full text add nothing, not even the '\n' */
	memcpy(buf + pos - 2, "\r\n", 2);
	buf[517 + 3] = '-';
	memcpy(buf + pos, "250 c\r\n", 7);
	CHECK_INT(reply_parse(buf, pos + 7, &r, &used), SMTP_REPLY_OK);
	CHECK_STR(r.text, want);
	CHECK_INT(r.lines, 3);
}

/* ---- EHLO capabilities ---- */

struct caps_case {
	const char *name;
	const char *reply;
	struct smtp_caps want;
};

static const struct caps_case caps_cases[] = {
    {"gmail",
     "250-mx.google.com at your service, [1.2.3.4]\r\n"
     "250-SIZE 157286400\r\n250-8BITMIME\r\n250-STARTTLS\r\n"
     "250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n250-CHUNKING\r\n"
     "250 SMTPUTF8\r\n",
     {.pipelining = true,
      .size = true,
      .size_max = 157286400,
      .eightbitmime = true,
      .smtputf8 = true,
      .enhanced = true,
      .starttls = true}},
    {"postfix",
     "250-mail.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
     "250-VRFY\r\n250-ETRN\r\n250-STARTTLS\r\n"
     "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n"
     "250-SMTPUTF8\r\n250 CHUNKING\r\n",
     {.pipelining = true,
      .size = true,
      .size_max = 10240000,
      .eightbitmime = true,
      .smtputf8 = true,
      .enhanced = true,
      .starttls = true}},
    {"yandex-like",
     "250-mail-nwsmtp-mxfront-production-main-38.iva.yp-c.yandex.net\r\n"
     "250-8BITMIME\r\n250-PIPELINING\r\n250-SIZE 53477376\r\n"
     "250-STARTTLS\r\n250-DSN\r\n250 ENHANCEDSTATUSCODES\r\n",
     {.pipelining = true,
      .size = true,
      .size_max = 53477376,
      .eightbitmime = true,
      .enhanced = true,
      .starttls = true}},
    {"lower case",
     "250-mx\r\n250-pipelining\r\n250-size 1000\r\n250-8bitmime\r\n"
     "250-SmtpUtf8\r\n250-enhancedstatuscodes\r\n250 starttls\r\n",
     {.pipelining = true,
      .size = true,
      .size_max = 1000,
      .eightbitmime = true,
      .smtputf8 = true,
      .enhanced = true,
      .starttls = true}},
    {"SIZE without number",
     "250-mx\r\n250 SIZE\r\n",
     {.size = true, .size_max = 0}},
    {"SIZE 0", "250-mx\r\n250 SIZE 0\r\n", {.size = true}},
    {"SIZE garbage", "250-mx\r\n250 SIZE lots\r\n", {.size = true}},
    {"SIZE overflow",
     "250-mx\r\n250 SIZE 18446744073709551616\r\n",
     {.size = true}},
    {"SIZE max",
     "250-mx\r\n250 SIZE 18446744073709551615\r\n",
     {.size = true, .size_max = UINT64_MAX}},
    {"bare LF, extra spaces",
     "250-mx\n250-SIZE   42\n250 PIPELINING\n",
     {.size = true, .size_max = 42, .pipelining = true}},
    {"keywords must match whole",
     "250-mx\r\n250-SIZEX 5\r\n"
     "250-PIPELINING2\r\n250-X8BITMIME\r\n250 STARTTLSX\r\n",
     {0}},
    {"first line is the name",
     "250-PIPELINING\r\n250 SIZE 7\r\n",
     {.size = true, .size_max = 7}},
    {"single line", "250 mx.example says hello\r\n", {0}},
    {"not 250", "550-mx\r\n550 PIPELINING\r\n", {0}},
    {"ehlo with enhanced code lines",
     "250-2.0.0 mx\r\n250-2.0.0 PIPELINING\r\n250 2.0.0 8BITMIME\r\n",
     {.pipelining = true, .eightbitmime = true}},
};

static void
test_caps(void)
{
	struct smtp_reply r;
	struct smtp_caps got;
	size_t used;

	for (size_t i = 0; i < sizeof caps_cases / sizeof caps_cases[0]; i++) {
		const struct caps_case *c = &caps_cases[i];
		const struct smtp_caps *w = &c->want;
		int before = test_failures;

		CHECK_INT(reply_parse(c->reply, strlen(c->reply), &r, &used),
			  SMTP_REPLY_OK);
		memset(&got, 0xff, sizeof got);
		smtp_caps_parse(&r, &got);
		CHECK(got.pipelining == w->pipelining);
		CHECK(got.size == w->size);
		CHECK_INT(got.size_max, w->size_max);
		CHECK(got.eightbitmime == w->eightbitmime);
		CHECK(got.smtputf8 == w->smtputf8);
		CHECK(got.enhanced == w->enhanced);
		CHECK(got.starttls == w->starttls);
		if (test_failures != before)
			fprintf(stderr, "  in caps case \"%s\"\n", c->name);
	}
}

/* The text of the Gmail reply as given: first line is not a keyword. */
static void
test_caps_text(void)
{
	struct smtp_reply r = {.code = 250, .lines = 8};
	struct smtp_caps caps;

	snprintf(r.text, sizeof r.text, "%s",
		 "mx.google.com at your service, [1.2.3.4]\nSIZE 157286400\n"
		 "8BITMIME\nSTARTTLS\nENHANCEDSTATUSCODES\nPIPELINING\n"
		 "CHUNKING\nSMTPUTF8");
	smtp_caps_parse(&r, &caps);
	CHECK(caps.pipelining && caps.size && caps.eightbitmime &&
	      caps.smtputf8 && caps.enhanced && caps.starttls);
	CHECK_INT(caps.size_max, 157286400);
}

/* format -> parse gives back code, enhanced code and text. */
static void
test_round_trip(void)
{
	static const struct fmt_case cases[] = {
	    {250, NULL, "mx\nPIPELINING\nSIZE 5", NULL},
	    {550, "5.1.1", "no such user\nreally", NULL},
	    {421, "4.7.0", "", NULL},
	    {250, "2.0.0", "2.0.0 twice", NULL},
	};
	char buf[1024];
	struct smtp_reply r;
	size_t used;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t n = smtp_reply_format(buf, sizeof buf, cases[i].code,
					     cases[i].enh, cases[i].text);
		CHECK_INT(reply_parse(buf, n, &r, &used), SMTP_REPLY_OK);
		CHECK_INT(used, n);
		CHECK_INT(r.code, cases[i].code);
		CHECK_STR(r.enh, cases[i].enh ? cases[i].enh : "");
		CHECK_STR(r.text, cases[i].text);
	}
}

int
main(void)
{
	test_format_table();
	test_format_long();
	test_parse_table();
	test_parse_two();
	test_parse_long_line();
	test_parse_many_lines();
	test_parse_truncation();
	test_caps();
	test_caps_text();
	test_round_trip();
	return test_summary();
}

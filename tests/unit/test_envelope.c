/*
 * test_envelope: the envelope block parser (src/common/envelope.c).
 * A table of file starts -> result, sender, recipients, parameters and
 * body offset, each parsed from an exact-size heap copy so ASan catches
 * any read past len. Every valid case is also cut at every length: a cut
 * before the octet that ends the block is ENVELOPE_INCOMPLETE, a cut
 * after it gives the same result as the whole. Limits (recipients, block
 * and line length) are tested at the limit and one past it.
 */
#include "envelope.h"
#include "test.h"

#include <stdbool.h>
#include <stdlib.h>

#define W(s) s, sizeof(s) - 1
#define RCPTS_MAX 3

struct env_case {
	const char *name;
	const char *in;
	size_t inlen;
	int at_eof;
	enum envelope_err err;
	const char *from;
	const char *rcpts[RCPTS_MAX + 1]; /* NULL-terminated */
	size_t body_offset;
	enum body_type body;
	bool smtputf8;
};

#define F "X-Original-From: "
#define T "X-Original-To: "
#define R "Received: from x\n"
/* block is the envelope block, rest the message after it. */
#define OK(name, block, rest, eof, from, body, u8, ...)                        \
	{                                                                      \
		name, W(block rest), eof, ENVELOPE_OK, from,                   \
		    {__VA_ARGS__, NULL}, sizeof(block) - 1, body, u8           \
	}
#define BAD(name, in, eof, err)                                                \
	{                                                                      \
		name, W(in), eof, err, NULL, {NULL}, 0, BODY_NONE, false       \
	}

static const struct env_case env_cases[] = {
    OK("one rcpt", F "<a@b.example>\n" T "<c@d.example>\n", R, 0, "a@b.example",
       BODY_NONE, false, "c@d.example"),
    OK("at eof too", F "<a@b.example>\n" T "<c@d.example>\n", R, 1,
       "a@b.example", BODY_NONE, false, "c@d.example"),
    OK("three rcpts in order",
       F "<a@b>\n" T "<x@y>\n" T "<z@y>\n" T "<postmaster>\n", "Received:", 0,
       "a@b", BODY_NONE, false, "x@y", "z@y", "postmaster"),
    OK("null sender", F "<>\n" T "<c@d>\n", R, 0, "", BODY_NONE, false, "c@d"),
    OK("params", F "<a@b> BODY=8BITMIME SMTPUTF8\n" T "<c@d>\n", R, 0, "a@b",
       BODY_8BITMIME, true, "c@d"),
    OK("7bit", F "<a@b> BODY=7BIT\n" T "<c@d>\n", R, 0, "a@b", BODY_7BIT, false,
       "c@d"),
    OK("utf8 addresses",
       F "<j\xc3\xb6rg@m\xc3\xbcnchen.example> SMTPUTF8\n" T
	 "<\xe7\x94\xa8@\xe4\xbe\x8b.example>\n",
       R, 0, "j\xc3\xb6rg@m\xc3\xbcnchen.example", BODY_NONE, true,
       "\xe7\x94\xa8@\xe4\xbe\x8b.example"),
    OK("utf8 without SMTPUTF8 param still parses",
       F "<\xc3\xa9@b>\n" T "<c@d>\n", R, 0, "\xc3\xa9@b", BODY_NONE, false,
       "c@d"),
    OK("client X-Original-To after Received not counted",
       F "<a@b>\n" T "<c@d>\n", R T "<evil@x>\n\nbody\n", 0, "a@b", BODY_NONE,
       false, "c@d"),
    OK("client X-Original-From after Received ignored", F "<a@b>\n" T "<c@d>\n",
       R F "<evil@x>\n", 0, "a@b", BODY_NONE, false, "c@d"),
    OK("empty line ends block", F "<a@b>\n" T "<c@d>\n", "\nbody", 0, "a@b",
       BODY_NONE, false, "c@d"),
    OK("lower-case names", "x-original-from: <a@b>\nX-ORIGINAL-TO: <c@d>\n", R,
       0, "a@b", BODY_NONE, false, "c@d"),
    OK("tabs and spaces after colon, trailing CR",
       "X-Original-From:\t <a@b>\t\r\nX-Original-To:<c@d>  \n", R, 0, "a@b",
       BODY_NONE, false, "c@d"),
    OK("source route dropped", F "<@r.example:a@b>\n" T "<@r:c@d>\n", R, 0,
       "a@b", BODY_NONE, false, "c@d"),
    OK("short last line at eof ends the block", F "<a@b>\n" T "<c@d>\n", "X-Or",
       1, "a@b", BODY_NONE, false, "c@d"),
    OK("one-octet body at eof", F "<a@b>\n" T "<c@d>\n", "R", 1, "a@b",
       BODY_NONE, false, "c@d"),
    OK("postmaster any case", F "<a@b>\n" T "<PostMaster>\n", R, 0, "a@b",
       BODY_NONE, false, "postmaster"),
    /* errors */
    BAD("empty at eof", "", 1, ENVELOPE_ERR_NO_FROM),
    BAD("empty", "", 0, ENVELOPE_INCOMPLETE),
    BAD("starts with Received", R F "<a@b>\n" T "<c@d>\n" R, 0,
	ENVELOPE_ERR_NO_FROM),
    BAD("decided on first octet", "R", 0, ENVELOPE_ERR_NO_FROM),
    BAD("starts with To", T "<c@d>\n" F "<a@b>\n" R, 0, ENVELOPE_ERR_NO_FROM),
    BAD("unknown X-Original first", "X-Original-Foo: <a@b>\n" R, 0,
	ENVELOPE_ERR_NO_FROM),
    BAD("From without colon", "X-Original-From <a@b>\n" T "<c@d>\n" R, 0,
	ENVELOPE_ERR_NO_FROM),
    BAD("no rcpt", F "<a@b>\n" R, 0, ENVELOPE_ERR_NO_RCPT),
    BAD("no rcpt, empty line", F "<a@b>\n\n", 0, ENVELOPE_ERR_NO_RCPT),
    BAD("two From", F "<a@b>\n" F "<a@b>\n" T "<c@d>\n" R, 0,
	ENVELOPE_ERR_SYNTAX),
    BAD("From after To", F "<a@b>\n" T "<c@d>\n" F "<a@b>\n" R, 0,
	ENVELOPE_ERR_SYNTAX),
    BAD("unknown X-Original in block",
	F "<a@b>\n" T "<c@d>\nX-Original-Cc: <e@f>\n" R, 0,
	ENVELOPE_ERR_SYNTAX),
    BAD("From no brackets", F "a@b\n" T "<c@d>\n" R, 0, ENVELOPE_ERR_SYNTAX),
    BAD("From empty", F "\n" T "<c@d>\n" R, 0, ENVELOPE_ERR_SYNTAX),
    BAD("From bad param", F "<a@b> BODY=BINARYMIME\n" T "<c@d>\n" R, 0,
	ENVELOPE_ERR_SYNTAX),
    BAD("From unknown param", F "<a@b> FOO\n" T "<c@d>\n" R, 0,
	ENVELOPE_ERR_SYNTAX),
    BAD("From param glued to path", F "<a@b>SMTPUTF8\n" T "<c@d>\n" R, 0,
	ENVELOPE_ERR_SYNTAX),
    BAD("From tab before param", F "<a@b>\tSMTPUTF8\n" T "<c@d>\n" R, 0,
	ENVELOPE_ERR_SYNTAX),
    BAD("From postmaster", F "<postmaster>\n" T "<c@d>\n" R, 0,
	ENVELOPE_ERR_SYNTAX),
    BAD("To null", F "<a@b>\n" T "<>\n" R, 0, ENVELOPE_ERR_SYNTAX),
    BAD("To no brackets", F "<a@b>\n" T "c@d\n" R, 0, ENVELOPE_ERR_SYNTAX),
    BAD("To trailing junk", F "<a@b>\n" T "<c@d> x\n" R, 0,
	ENVELOPE_ERR_SYNTAX),
    BAD("To with param", F "<a@b>\n" T "<c@d> NOTIFY=NEVER\n" R, 0,
	ENVELOPE_ERR_SYNTAX),
    BAD("To bad domain", F "<a@b>\n" T "<c@d..e>\n" R, 0, ENVELOPE_ERR_SYNTAX),
    BAD("NUL in line", F "<a@b>\n" T "<c\0@d>\n" R, 0, ENVELOPE_ERR_SYNTAX),
    BAD("bad line decided before the block ends", F "<a@b>\n" T "<bad\n", 0,
	ENVELOPE_ERR_SYNTAX),
    /* at_eof */
    BAD("block ends at eof", F "<a@b>\n" T "<c@d>\n", 1, ENVELOPE_ERR_SYNTAX),
    BAD("block ends at eof, not eof", F "<a@b>\n" T "<c@d>\n", 0,
	ENVELOPE_INCOMPLETE),
    BAD("line cut by eof", F "<a@b>\n" T "<c@d>", 1, ENVELOPE_ERR_SYNTAX),
    BAD("From only at eof", F "<a@b>\n", 1, ENVELOPE_ERR_SYNTAX),
    BAD("From cut by eof", F "<a@b>", 1, ENVELOPE_ERR_SYNTAX),
    BAD("name prefix at eof", "X-Orig", 1, ENVELOPE_ERR_NO_FROM),
    BAD("name prefix", "X-Orig", 0, ENVELOPE_INCOMPLETE),
    BAD("line without LF", F "<a@b>", 0, ENVELOPE_INCOMPLETE),
};

static void *
env_xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p) {
		perror("malloc");
		exit(1);
	}
	return p;
}

/* Parses an exact-size heap copy of in[0..len). */
static enum envelope_err
env_parse(const char *in, size_t len, int at_eof, struct envelope *env)
{
	char *copy = env_xmalloc(len ? len : 1);
	memcpy(copy, in, len);
	enum envelope_err e = envelope_parse(copy, len, at_eof, env);
	free(copy);
	return e;
}

static void
env_check_empty(const struct envelope *env)
{
	CHECK(env->rcpts == NULL);
	CHECK_INT(env->nrcpt, 0);
	CHECK_INT(env->body_offset, 0);
	CHECK_INT(env->from.len, 0);
}

static void
env_check_case(const struct env_case *c, const struct envelope *env)
{
	size_t n = 0;

	CHECK_STR(env->from.addr, c->from);
	CHECK(env->from.is_null == (c->from[0] == '\0'));
	CHECK_INT(env->body_offset, c->body_offset);
	CHECK_INT(env->params.body, c->body);
	CHECK(env->params.smtputf8 == c->smtputf8);
	while (c->rcpts[n])
		n++;
	CHECK_INT(env->nrcpt, n);
	for (size_t i = 0; i < n && i < env->nrcpt; i++)
		CHECK_STR(env->rcpts[i].addr, c->rcpts[i]);
}

/*
 * The first octet of the line that ends the block must be there; with
 * fewer octets (and not at eof) the result is INCOMPLETE, with more it is
 * that of the whole input.
 */
static void
env_check_cuts(const struct env_case *c)
{
	struct envelope env;

	for (size_t k = 0; k <= c->inlen; k++) {
		enum envelope_err e = env_parse(c->in, k, 0, &env);
		if (k <= c->body_offset) {
			CHECK_INT(e, ENVELOPE_INCOMPLETE);
			env_check_empty(&env);
		} else {
			CHECK_INT(e, ENVELOPE_OK);
			if (e == ENVELOPE_OK)
				env_check_case(c, &env);
		}
		if (e != ENVELOPE_OK && e != ENVELOPE_INCOMPLETE)
			fprintf(stderr, "  %s: cut at %zu\n", c->name, k);
		envelope_free(&env);
	}
}

static void
test_table(void)
{
	struct envelope env;

	for (size_t i = 0; i < sizeof env_cases / sizeof env_cases[0]; i++) {
		const struct env_case *c = &env_cases[i];
		int before = test_failures;
		enum envelope_err e =
		    env_parse(c->in, c->inlen, c->at_eof, &env);

		CHECK_INT(e, c->err);
		if (e == ENVELOPE_OK && c->err == ENVELOPE_OK)
			env_check_case(c, &env);
		if (e != ENVELOPE_OK)
			env_check_empty(&env);
		envelope_free(&env);
		env_check_empty(&env);
		if (c->err == ENVELOPE_OK && !c->at_eof)
			env_check_cuts(c);
		if (test_failures != before)
			fprintf(stderr, "  in case \"%s\"\n", c->name);
	}
}

/* An error decided on a prefix stays when more bytes come. */
static void
test_errors_stable(void)
{
	static const char bad[] = F "<a@b>\n" T "<bad>\n";
	static const char in[] = F "<a@b>\n" T "<bad>\n" R;
	struct envelope env;

	for (size_t k = 0; k <= sizeof in - 1; k++) {
		enum envelope_err e = env_parse(in, k, 0, &env);
		if (k < sizeof bad - 1)
			CHECK_INT(e, ENVELOPE_INCOMPLETE);
		else
			CHECK_INT(e, ENVELOPE_ERR_SYNTAX);
		envelope_free(&env);
	}
}

/*
 * From + n recipients + R. With block != 0 the recipient lines are padded
 * with trailing spaces so that the block is exactly block octets long.
 */
static char *
env_build(size_t n, size_t block, size_t *len)
{
	static const char from[] = F "<from@example.org>\n";
	size_t cap = sizeof from + n * 1000 + sizeof R;
	char *s = env_xmalloc(cap);
	size_t pos = sizeof from - 1;
	size_t each = block ? (block - pos) / n : 0;
	size_t extra = block ? (block - pos) % n : 0;

	memcpy(s, from, pos);
	for (size_t i = 0; i < n; i++) {
		pos += (size_t)snprintf(s + pos, cap - pos,
					T "<r%zu@x.example>", i);
		size_t end = (size_t)(sizeof from - 1) + (i + 1) * each +
			     (i < extra ? i + 1 : extra);
		while (block && pos + 1 < end)
			s[pos++] = ' ';
		s[pos++] = '\n';
	}
	memcpy(s + pos, R, sizeof R - 1);
	*len = pos + sizeof R - 1;
	return s;
}

static void
test_many(void)
{
	static const size_t counts[] = {1, 2, 100, ENVELOPE_RCPT_MAX};
	struct envelope env;
	size_t len;

	for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
		size_t n = counts[i];
		char *s = env_build(n, 0, &len);
		CHECK_INT(env_parse(s, len, 1, &env), ENVELOPE_OK);
		CHECK_INT(env.nrcpt, n);
		CHECK_INT(env.body_offset, len - (sizeof R - 1));
		CHECK_STR(env.from.addr, "from@example.org");
		for (size_t j = 0; j < n && j < env.nrcpt; j++) {
			char want[64];
			snprintf(want, sizeof want, "r%zu@x.example", j);
			CHECK_STR(env.rcpts[j].addr, want);
		}
		envelope_free(&env);
		free(s);
	}
	char *s = env_build(ENVELOPE_RCPT_MAX + 1, 0, &len);
	CHECK_INT(env_parse(s, len, 1, &env), ENVELOPE_ERR_TOO_MANY);
	env_check_empty(&env);
	/* decided as soon as the extra line is there */
	CHECK_INT(env_parse(s, len - (sizeof R - 1), 0, &env),
		  ENVELOPE_ERR_TOO_MANY);
	free(s);
}

/* A block of exactly ENVELOPE_BLOCK_MAX octets, and one octet more. */
static void
test_too_long(void)
{
	const size_t n = 4200; /* lines of ~999 octets */
	struct envelope env;
	size_t len;
	char *s = env_build(n, ENVELOPE_BLOCK_MAX, &len);

	CHECK_INT(len, ENVELOPE_BLOCK_MAX + sizeof R - 1);
	CHECK_INT(env_parse(s, len, 1, &env), ENVELOPE_OK);
	CHECK_INT(env.body_offset, ENVELOPE_BLOCK_MAX);
	CHECK_INT(env.nrcpt, n);
	envelope_free(&env);
	free(s);

	s = env_build(n, ENVELOPE_BLOCK_MAX + 1, &len);
	CHECK_INT(len, ENVELOPE_BLOCK_MAX + sizeof R);
	CHECK_INT(env_parse(s, len, 1, &env), ENVELOPE_ERR_TOO_LONG);
	env_check_empty(&env);
	/* decided when the line that crosses the limit is complete */
	CHECK_INT(env_parse(s, ENVELOPE_BLOCK_MAX + 1, 0, &env),
		  ENVELOPE_ERR_TOO_LONG);
	CHECK_INT(env_parse(s, ENVELOPE_BLOCK_MAX, 0, &env),
		  ENVELOPE_INCOMPLETE);
	free(s);
}

/* A line of 1000 octets with its LF is accepted, one of 1001 is not. */
static void
test_long_line(void)
{
	static const char from[] = F "<a@b>";
	static const char rest[] = T "<c@d>\n" R;
	struct envelope env;
	char buf[1200];
	size_t len = sizeof from - 1;

	memcpy(buf, from, len);
	memset(buf + len, ' ', 999 - len);
	len = 999;
	buf[len++] = '\n';
	memcpy(buf + len, rest, sizeof rest - 1);
	len += sizeof rest - 1;
	CHECK_INT(env_parse(buf, len, 1, &env), ENVELOPE_OK);
	CHECK_INT(env.body_offset, 1000 + sizeof T "<c@d>\n" - 1);
	envelope_free(&env);

	/* one more space after the path */
	memmove(buf + sizeof from, buf + sizeof from - 1,
		len - (sizeof from - 1));
	len++;
	CHECK_INT(env_parse(buf, len, 1, &env), ENVELOPE_ERR_SYNTAX);
	/* a line with no LF in its first 1000 octets is refused early */
	CHECK_INT(env_parse(buf, 1000, 0, &env), ENVELOPE_ERR_SYNTAX);
	CHECK_INT(env_parse(buf, 999, 0, &env), ENVELOPE_INCOMPLETE);
}

static void
test_strerror(void)
{
	for (int e = ENVELOPE_OK; e <= ENVELOPE_ERR_NOMEM; e++) {
		const char *s = envelope_strerror((enum envelope_err)e);
		CHECK(s != NULL && s[0] != '\0');
		CHECK(strcmp(s, "unknown envelope error") != 0);
	}
	CHECK_STR(envelope_strerror((enum envelope_err)99),
		  "unknown envelope error");
}

int
main(void)
{
	test_table();
	test_errors_stable();
	test_many();
	test_too_long();
	test_long_line();
	test_strerror();
	return test_summary();
}

/*
 * test_smtp_param: ESMTP parameter lists (src/common/smtp_param.c). Tables
 * of input -> error, offset of *bad and parsed fields for MAIL and RCPT,
 * each parsed from an exact-size heap copy so ASan catches any read past
 * len.
 */
#include "smtp_param.h"
#include "test.h"

#include <stdlib.h>

#define W(s) s, sizeof(s) - 1
#define NOBAD (-1)

struct mail_case {
	const char *in;
	size_t inlen;
	enum param_err err;
	int bad; /* offset of *bad, NOBAD for NULL */
	bool has_size;
	uint64_t size;
	enum body_type body;
	bool smtputf8;
};

#define OKP(in, has, size, body, u8)                                           \
	{                                                                      \
		W(in), PARAM_OK, NOBAD, has, size, body, u8                    \
	}
#define BAD(in, err, off)                                                      \
	{                                                                      \
		W(in), err, off, false, 0, BODY_NONE, false                    \
	}

static const struct mail_case mail_cases[] = {
    OKP("", false, 0, BODY_NONE, false),
    OKP("   ", false, 0, BODY_NONE, false),
    OKP(" SIZE=10", true, 10, BODY_NONE, false),
    OKP("SIZE=10", true, 10, BODY_NONE, false),
    OKP("size=0", true, 0, BODY_NONE, false),
    OKP("Size=00000000000000000001", true, 1, BODY_NONE, false),
    OKP(" SIZE=18446744073709551615", true, UINT64_MAX, BODY_NONE, false),
    OKP(" BODY=8BITMIME", false, 0, BODY_8BITMIME, false),
    OKP(" body=8bitmime", false, 0, BODY_8BITMIME, false),
    OKP(" BODY=7bit", false, 0, BODY_7BIT, false),
    OKP(" SMTPUTF8", false, 0, BODY_NONE, true),
    OKP(" smtpUTF8 ", false, 0, BODY_NONE, true),
    OKP(" SIZE=10  BODY=8BITMIME   SMTPUTF8 ", true, 10, BODY_8BITMIME, true),
    OKP("SMTPUTF8 BODY=7BIT SIZE=999", true, 999, BODY_7BIT, true),
    /* RFC 1870 SIZE */
    BAD(" SIZE=18446744073709551616", PARAM_ERR_VALUE, 1),
    BAD(" SIZE=99999999999999999999", PARAM_ERR_VALUE, 1),
    BAD(" SIZE=000000000000000000001", PARAM_ERR_VALUE, 1),
    BAD(" SIZE=abc", PARAM_ERR_VALUE, 1),
    BAD(" SIZE=1a", PARAM_ERR_VALUE, 1),
    BAD(" SIZE=-1", PARAM_ERR_VALUE, 1),
    BAD(" SIZE=+1", PARAM_ERR_VALUE, 1),
    BAD(" SIZE", PARAM_ERR_VALUE, 1),
    BAD(" SIZE=", PARAM_ERR_SYNTAX, 1),
    /* RFC 6152 BODY */
    BAD(" BODY=BINARYMIME", PARAM_ERR_VALUE, 1),
    BAD(" BODY=8BIT", PARAM_ERR_VALUE, 1),
    BAD(" BODY=8BITMIMEX", PARAM_ERR_VALUE, 1),
    BAD(" BODY=7BIT!", PARAM_ERR_VALUE, 1),
    BAD(" BODY", PARAM_ERR_VALUE, 1),
    /* RFC 6531 SMTPUTF8 */
    BAD(" SMTPUTF8=x", PARAM_ERR_VALUE, 1),
    BAD(" SMTPUTF8=", PARAM_ERR_SYNTAX, 1),
    /* unknown and duplicate */
    BAD(" FOO", PARAM_ERR_UNKNOWN, 1),
    BAD(" FOO=bar", PARAM_ERR_UNKNOWN, 1),
    BAD(" SIZE=1 X-FOO=bar", PARAM_ERR_UNKNOWN, 8),
    BAD(" AUTH=<>", PARAM_ERR_UNKNOWN, 1),
    BAD(" ENVID=\xc3\xa9t\xc3\xa9", PARAM_ERR_UNKNOWN, 1),
    BAD(" SIZEX=1", PARAM_ERR_UNKNOWN, 1),
    BAD(" SIZ=1", PARAM_ERR_UNKNOWN, 1),
    BAD(" SIZE=1 SIZE=2", PARAM_ERR_DUPLICATE, 8),
    BAD(" size=1 SIZE=1", PARAM_ERR_DUPLICATE, 8),
    BAD(" BODY=7BIT BODY=8BITMIME", PARAM_ERR_DUPLICATE, 11),
    BAD(" SMTPUTF8 SMTPUTF8", PARAM_ERR_DUPLICATE, 10),
    BAD(" SIZE=abc SIZE=1", PARAM_ERR_VALUE, 1),
    BAD(" FOO SIZE=x", PARAM_ERR_UNKNOWN, 1),
    /* grammar (RFC 5321 4.1.2 esmtp-param); syntax wins over meaning */
    BAD("=x", PARAM_ERR_SYNTAX, 0),
    BAD(" =x", PARAM_ERR_SYNTAX, 1),
    BAD(" -SIZE=1", PARAM_ERR_SYNTAX, 1),
    BAD(" SIZE=1=2", PARAM_ERR_SYNTAX, 1),
    BAD(" SIZE=10\tBODY=7BIT", PARAM_ERR_SYNTAX, 1),
    BAD(" SIZE=10\r", PARAM_ERR_SYNTAX, 1),
    BAD(" SIZE=10\r\n", PARAM_ERR_SYNTAX, 1),
    BAD(" SIZE=1 BODY!", PARAM_ERR_SYNTAX, 8),
    BAD(" SIZE=1\x7f", PARAM_ERR_SYNTAX, 1),
    BAD(" SIZE=1\0", PARAM_ERR_SYNTAX, 1),
    BAD(" SIZE_X=1", PARAM_ERR_SYNTAX, 1),
    BAD(" FOO SIZE=", PARAM_ERR_SYNTAX, 5),
    BAD(" SIZE=abc FOO=", PARAM_ERR_SYNTAX, 10),
    BAD(" SIZE=1 SIZE=1 =", PARAM_ERR_SYNTAX, 15),
    BAD("\tSIZE=1", PARAM_ERR_SYNTAX, 0),
    BAD(" <a@b>", PARAM_ERR_SYNTAX, 1),
    BAD(" \xc3\xa9=1", PARAM_ERR_SYNTAX, 1),
};

struct rcpt_case {
	const char *in;
	size_t inlen;
	enum param_err err;
	int bad;
};

static const struct rcpt_case rcpt_cases[] = {
    {W(""), PARAM_OK, NOBAD},
    {W("    "), PARAM_OK, NOBAD},
    {W("NOTIFY=NEVER"), PARAM_ERR_UNKNOWN, 0},
    {W(" ORCPT=rfc822;a@b"), PARAM_ERR_UNKNOWN, 1},
    {W("  A B"), PARAM_ERR_UNKNOWN, 2},
    {W(" SIZE=1"), PARAM_ERR_UNKNOWN, 1},
    {W(" FOO =x"), PARAM_ERR_SYNTAX, 5},
    {W("=x"), PARAM_ERR_SYNTAX, 0},
    {W(" FOO="), PARAM_ERR_SYNTAX, 1},
    {W(" FOO\r\n"), PARAM_ERR_SYNTAX, 1},
};

/* Exact-size heap copy so a read past len is an ASan error. */
static char *
dup_exact(const char *in, size_t len)
{
	char *copy = malloc(len ? len : 1);
	if (!copy) {
		perror("malloc");
		exit(1);
	}
	memcpy(copy, in, len);
	return copy;
}

static void
test_mail(void)
{
	for (size_t i = 0; i < sizeof mail_cases / sizeof mail_cases[0]; i++) {
		const struct mail_case *c = &mail_cases[i];
		char *s = dup_exact(c->in, c->inlen);
		struct mail_params mp;
		const char *bad = s;

		memset(&mp, 0xa5, sizeof mp);
		enum param_err e = smtp_mail_params(s, c->inlen, &mp, &bad);
		if (e != c->err)
			fprintf(stderr, "case %zu: \"%s\"\n", i, c->in);
		CHECK_INT(e, c->err);
		CHECK_INT(bad ? bad - s : NOBAD, c->bad);
		CHECK_INT(mp.has_size, c->has_size);
		CHECK(mp.size == c->size);
		CHECK_INT(mp.body, c->body);
		CHECK_INT(mp.smtputf8, c->smtputf8);
		/* bad is optional */
		CHECK_INT(smtp_mail_params(s, c->inlen, &mp, NULL), c->err);
		free(s);
	}
}

static void
test_rcpt(void)
{
	for (size_t i = 0; i < sizeof rcpt_cases / sizeof rcpt_cases[0]; i++) {
		const struct rcpt_case *c = &rcpt_cases[i];
		char *s = dup_exact(c->in, c->inlen);
		const char *bad = s;

		enum param_err e = smtp_rcpt_params(s, c->inlen, &bad);
		if (e != c->err)
			fprintf(stderr, "case %zu: \"%s\"\n", i, c->in);
		CHECK_INT(e, c->err);
		CHECK_INT(bad ? bad - s : NOBAD, c->bad);
		CHECK_INT(smtp_rcpt_params(s, c->inlen, NULL), c->err);
		free(s);
	}
}

/* The parsers stop at len even when the buffer goes on. */
static void
test_bounded(void)
{
	static const char s[] = " SIZE=12 BODY=8BITMIME";
	struct mail_params mp;
	const char *bad;

	CHECK_INT(smtp_mail_params(s, 8, &mp, &bad), PARAM_OK);
	CHECK(mp.has_size && mp.size == 12 && mp.body == BODY_NONE);
	CHECK_INT(smtp_mail_params(s, 7, &mp, &bad), PARAM_OK);
	CHECK(mp.size == 1);
	CHECK_INT(smtp_mail_params(s, 6, &mp, &bad), PARAM_ERR_SYNTAX);
	CHECK_INT(smtp_mail_params(s, 5, &mp, &bad), PARAM_ERR_VALUE);
	CHECK_INT(smtp_mail_params(s, 18, &mp, &bad), PARAM_ERR_VALUE);
	CHECK(bad == s + 9);
	CHECK_INT(smtp_mail_params(NULL, 0, &mp, &bad), PARAM_OK);
	CHECK(bad == NULL);
	CHECK_INT(smtp_rcpt_params(NULL, 0, &bad), PARAM_OK);
}

static void
test_names(void)
{
	CHECK_STR(smtp_body_name(BODY_NONE), "");
	CHECK_STR(smtp_body_name(BODY_7BIT), "7BIT");
	CHECK_STR(smtp_body_name(BODY_8BITMIME), "8BITMIME");
	CHECK_STR(smtp_param_strerror(PARAM_ERR_SYNTAX),
		  "bad parameter syntax");
	CHECK_STR(smtp_param_strerror(PARAM_ERR_UNKNOWN),
		  "unrecognised parameter");
	for (int a = PARAM_OK; a <= PARAM_ERR_DUPLICATE; a++) {
		const char *sa = smtp_param_strerror((enum param_err)a);
		CHECK(sa != NULL && sa[0] != '\0');
		for (int b = PARAM_OK; b < a; b++) {
			const char *sb = smtp_param_strerror((enum param_err)b);
			CHECK(strcmp(sa, sb) != 0);
		}
	}
	CHECK(smtp_param_strerror((enum param_err)99) != NULL);
}

int
main(void)
{
	test_mail();
	test_rcpt();
	test_bounded();
	test_names();
	return test_summary();
}

/*
 * fuzz_envelope: libFuzzer target for envelope_parse()
 * (src/common/envelope.c). The input is the start of a queued message
 * file, copied to an exact-size heap buffer so a read past len is caught
 * by ASan in the replay build too. Any broken invariant aborts:
 * - at_eof never gives ENVELOPE_INCOMPLETE; a result other than that
 *   without at_eof is the same with at_eof, and the same on any longer
 *   input, so a prefix that gives one gives the whole input's result;
 * - a failed parse leaves an empty envelope;
 * - an accepted block has 1..ENVELOPE_RCPT_MAX recipients, ends with an
 *   LF at body_offset <= ENVELOPE_BLOCK_MAX, the line after it does not
 *   start with "X-Original-", a cut just before that line's first octet
 *   is INCOMPLETE and one just after is the same result;
 * - writing the parsed envelope back the way smtpd does parses to the
 *   same envelope.
 */
#include "envelope.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_assert(int ok, int line)
{
	if (!ok) {
		fprintf(stderr, "fuzz_envelope.c:%d: invariant broken\n", line);
		abort();
	}
}
#define FUZZ_CHECK(c) fuzz_assert((c) != 0, __LINE__)

static enum envelope_err
fuzz_parse(const char *s, size_t len, int at_eof, struct envelope *env)
{
	char *copy = malloc(len ? len : 1);

	if (!copy)
		abort();
	memcpy(copy, s, len);
	enum envelope_err e = envelope_parse(copy, len, at_eof, env);
	free(copy);
	FUZZ_CHECK(envelope_strerror(e) != NULL);
	if (e != ENVELOPE_OK)
		FUZZ_CHECK(env->rcpts == NULL && env->nrcpt == 0 &&
			   env->body_offset == 0 && env->from.len == 0);
	return e;
}

static int
fuzz_path_equal(const struct smtp_path *a, const struct smtp_path *b)
{
	return a->len == b->len && memcmp(a->addr, b->addr, a->len) == 0 &&
	       a->is_null == b->is_null && a->is_postmaster == b->is_postmaster;
}

static void
fuzz_same(enum envelope_err ea, const struct envelope *a, enum envelope_err eb,
	  const struct envelope *b)
{
	FUZZ_CHECK(ea == eb);
	if (ea != ENVELOPE_OK)
		return;
	FUZZ_CHECK(a->nrcpt == b->nrcpt && a->body_offset == b->body_offset);
	FUZZ_CHECK(fuzz_path_equal(&a->from, &b->from));
	FUZZ_CHECK(a->params.body == b->params.body &&
		   a->params.smtputf8 == b->params.smtputf8 &&
		   a->params.has_size == b->params.has_size &&
		   a->params.size == b->params.size);
	for (size_t i = 0; i < a->nrcpt; i++)
		FUZZ_CHECK(fuzz_path_equal(&a->rcpts[i], &b->rcpts[i]));
}

static void
fuzz_check_ok(const char *s, size_t len, const struct envelope *env)
{
	size_t off = env->body_offset;

	FUZZ_CHECK(env->nrcpt >= 1 && env->nrcpt <= ENVELOPE_RCPT_MAX);
	FUZZ_CHECK(off > 0 && off <= len && off <= ENVELOPE_BLOCK_MAX);
	FUZZ_CHECK(s[off - 1] == '\n');
	FUZZ_CHECK(strncasecmp(s, "X-Original-From:", 16) == 0);
	if (len - off >= 11)
		FUZZ_CHECK(strncasecmp(s + off, "X-Original-", 11) != 0);
	FUZZ_CHECK(env->from.len <= SMTP_PATH_MAX &&
		   strlen(env->from.addr) == env->from.len);
	for (size_t i = 0; i < env->nrcpt; i++)
		FUZZ_CHECK(!env->rcpts[i].is_null && env->rcpts[i].len > 0);
}

/* The block as smtpd writes it (session_data.c), plus one body line. */
static char *
fuzz_write(const struct envelope *env, size_t *len)
{
	size_t cap = 128 + (env->nrcpt + 1) * (SMTP_PATH_MAX + 32);
	char *s = malloc(cap);
	size_t pos = 0;

	if (!s)
		abort();
	pos +=
	    (size_t)snprintf(s, cap, "X-Original-From: <%s>", env->from.addr);
	if (env->params.has_size)
		pos += (size_t)snprintf(s + pos, cap - pos, " SIZE=%llu",
					(unsigned long long)env->params.size);
	if (env->params.body != BODY_NONE)
		pos += (size_t)snprintf(s + pos, cap - pos, " BODY=%s",
					smtp_body_name(env->params.body));
	pos += (size_t)snprintf(s + pos, cap - pos, "%s\n",
				env->params.smtputf8 ? " SMTPUTF8" : "");
	for (size_t i = 0; i < env->nrcpt; i++)
		pos += (size_t)snprintf(s + pos, cap - pos,
					"X-Original-To: <%s>\n",
					env->rcpts[i].addr);
	*len = pos;
	pos += (size_t)snprintf(s + pos, cap - pos, "Received: x\n");
	FUZZ_CHECK(pos < cap);
	return s;
}

static void
fuzz_round_trip(const struct envelope *env)
{
	struct envelope back;
	size_t block;
	char *s = fuzz_write(env, &block);
	size_t len = block + strlen(s + block);

	FUZZ_CHECK(fuzz_parse(s, len, 1, &back) == ENVELOPE_OK);
	FUZZ_CHECK(back.body_offset == block && back.nrcpt == env->nrcpt);
	FUZZ_CHECK(fuzz_path_equal(&back.from, &env->from));
	FUZZ_CHECK(back.params.body == env->params.body &&
		   back.params.smtputf8 == env->params.smtputf8);
	for (size_t i = 0; i < env->nrcpt; i++)
		FUZZ_CHECK(fuzz_path_equal(&back.rcpts[i], &env->rcpts[i]));
	envelope_free(&back);
	free(s);
}

/* A cut of the input at k octets, not at eof. */
static void
fuzz_cut(const char *s, size_t k, enum envelope_err e,
	 const struct envelope *env)
{
	struct envelope part;
	enum envelope_err pe = fuzz_parse(s, k, 0, &part);

	if (pe != ENVELOPE_INCOMPLETE)
		fuzz_same(pe, &part, e, env);
	envelope_free(&part);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct envelope open_env, eof_env;
	enum envelope_err e0 = fuzz_parse(s, size, 0, &open_env);
	enum envelope_err e1 = fuzz_parse(s, size, 1, &eof_env);

	FUZZ_CHECK(e1 != ENVELOPE_INCOMPLETE);
	if (e0 != ENVELOPE_INCOMPLETE)
		fuzz_same(e0, &open_env, e1, &eof_env);
	for (size_t k = 0; k < size && k < 64; k++)
		fuzz_cut(s, k, e0, &open_env);
	fuzz_cut(s, size / 2, e0, &open_env);
	if (e0 == ENVELOPE_OK) {
		struct envelope part;
		size_t off = open_env.body_offset;
		fuzz_check_ok(s, size, &open_env);
		FUZZ_CHECK(off < size);
		FUZZ_CHECK(fuzz_parse(s, off, 0, &part) == ENVELOPE_INCOMPLETE);
		fuzz_cut(s, off + 1, e0, &open_env);
		fuzz_round_trip(&open_env);
	}
	if (e1 == ENVELOPE_OK) {
		fuzz_check_ok(s, size, &eof_env);
		fuzz_round_trip(&eof_env);
	}
	envelope_free(&open_env);
	envelope_free(&eof_env);
	return 0;
}

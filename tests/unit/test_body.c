/*
 * test_body: stored message -> DATA wire form (src/sender/body.c).
 *
 * Every table case (stored -> wire) is encoded whole, byte by byte, in
 * random chunkings and with output capacities of 1..5 octets; after every
 * call the output so far must be exactly the expansion of the input
 * consumed so far (no expansion split across calls) and as much input
 * must be consumed as fits. Random stored bodies then go through
 * body_encode + body_finish and back through smtpd's DATA unstuffer
 * (src/smtpd/data.c): a body that is empty or ends with LF comes back
 * byte for byte; one without a final LF comes back with an LF added
 * (body_finish must end the last line before "."), the only loss.
 *
 * The random seed is printed; TEST_SEED=N repeats a run.
 */
#include "body.h"
#include "data.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define W(s) s, sizeof(s) - 1
#define BODY_TEST_MAX 4096

struct body_case {
	const char *stored;
	size_t slen;
	const char *wire;
	size_t wlen;
};

static const struct body_case body_cases[] = {
    {W(""), W(".\r\n")},
    {W("a\n"), W("a\r\n.\r\n")},
    {W("a"), W("a\r\n.\r\n")},
    {W("\n"), W("\r\n.\r\n")},
    {W(".\n"), W("..\r\n.\r\n")},
    {W("."), W("..\r\n.\r\n")},
    {W("..\n"), W("...\r\n.\r\n")},
    {W("a\n.\n"), W("a\r\n..\r\n.\r\n")},
    {W("a\n.\nb\n.\n"), W("a\r\n..\r\nb\r\n..\r\n.\r\n")},
    {W(".a\n.b.\n"), W("..a\r\n..b.\r\n.\r\n")},
    {W("a.b\n x.\n"), W("a.b\r\n x.\r\n.\r\n")},
    {W("\n\n.\n\n"), W("\r\n\r\n..\r\n\r\n.\r\n")},
    {W("a\r\n"), W("a\r\r\n.\r\n")},
    {W("\r\n.\r\n"), W("\r\r\n..\r\r\n.\r\n")},
    {W("\r.\n"), W("\r.\r\n.\r\n")},
    {W("a\r"), W("a\r\r\n.\r\n")},
    {W("a\rb\n"), W("a\rb\r\n.\r\n")},
    {W("x\0y\n\0\n"), W("x\0y\r\n\0\r\n.\r\n")},
    {W("\xc3\xa9t\xc3\xa9\n"), W("\xc3\xa9t\xc3\xa9\r\n.\r\n")},
    {W("Received: from x\n\tby y\n\nbody\n.\n..\nend"),
     W("Received: from x\r\n\tby y\r\n\r\nbody\r\n..\r\n...\r\nend\r\n"
       ".\r\n")},
};

static uint64_t rng_state;

static uint32_t
rng_next(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}

static size_t
rng_below(size_t n)
{
	return n ? rng_next() % n : 0;
}

/*
 * off[i] = octets of wire form for the first i stored octets: each LF
 * adds 2, a "." that starts a line adds 2, anything else 1.
 */
static void
body_offsets(const char *s, size_t n, size_t *off)
{
	bool start = true;

	off[0] = 0;
	for (size_t i = 0; i < n; i++) {
		off[i + 1] =
		    off[i] + ((s[i] == '\n' || (start && s[i] == '.')) ? 2 : 1);
		start = s[i] == '\n';
	}
}

enum chunking { WHOLE, BYTES, RANDOM };

/* Input chunk size for the next call. */
static size_t
body_chunk(enum chunking how, size_t left)
{
	if (how == WHOLE)
		return left;
	if (how == BYTES)
		return left ? 1 : 0;
	return 1 + rng_below(left < 20 ? left : 20);
}

/*
 * Encodes stored with the given chunking and output capacity (0: large),
 * checking the invariants after every call. Returns the wire length.
 */
static size_t
body_run(const char *stored, size_t slen, enum chunking how, size_t cap,
	 char *wire)
{
	static size_t off[BODY_TEST_MAX + 1];
	struct body_state st;
	size_t pos = 0, wlen = 0;
	bool bump = false; /* give the next call 2 octets */
	char out[2 * BODY_TEST_MAX + 8];

	body_offsets(stored, slen, off);
	body_init(&st);
	while (pos < slen) {
		size_t chunk = body_chunk(how, slen - pos);
		size_t outcap = bump ? 2 : cap ? cap : sizeof out;
		size_t outlen = 99;
		size_t used =
		    body_encode(&st, stored + pos, chunk, out, outcap, &outlen);
		CHECK(used <= chunk && outlen <= outcap);
		memcpy(wire + wlen, out, outlen);
		wlen += outlen;
		pos += used;
		/* output is the expansion of exactly what was consumed */
		CHECK_INT(wlen, off[pos]);
		/* it stopped only at the chunk's end or when full */
		if (used < chunk)
			CHECK(off[pos + 1] - off[pos] > outcap - outlen);
		bump = used == 0;
		if (bump) {
			CHECK_INT(outlen, 0);
			/* only a 2-octet expansion can fail to fit */
			CHECK(outcap < 2);
			if (outcap >= 2)
				return 0;
		}
	}
	size_t n = body_finish(&st, out, 5);
	CHECK(n == 3 || n == 5);
	memcpy(wire + wlen, out, n);
	return wlen + n;
}

static void
body_check_all(const char *stored, size_t slen, const char *want,
	       size_t wantlen)
{
	static char wire[2 * BODY_TEST_MAX + 8];
	size_t n;

	n = body_run(stored, slen, WHOLE, 0, wire);
	CHECK_MEM(wire, n, want, wantlen);
	n = body_run(stored, slen, BYTES, 0, wire);
	CHECK_MEM(wire, n, want, wantlen);
	for (int r = 0; r < 50; r++) {
		n = body_run(stored, slen, RANDOM, 0, wire);
		CHECK_MEM(wire, n, want, wantlen);
	}
	for (size_t cap = 1; cap <= 5; cap++) {
		n = body_run(stored, slen, WHOLE, cap, wire);
		CHECK_MEM(wire, n, want, wantlen);
		n = body_run(stored, slen, RANDOM, cap, wire);
		CHECK_MEM(wire, n, want, wantlen);
	}
}

static void
test_table(void)
{
	for (size_t i = 0; i < sizeof body_cases / sizeof body_cases[0]; i++) {
		const struct body_case *c = &body_cases[i];
		int before = test_failures;

		body_check_all(c->stored, c->slen, c->wire, c->wlen);
		if (test_failures != before) {
			fprintf(stderr, "  in case ");
			test_print_escaped(c->stored, c->slen);
			fputc('\n', stderr);
		}
	}
}

/* Exact edges: nothing fits, an expansion needs both octets. */
static void
test_edges(void)
{
	struct body_state st;
	char out[8];
	size_t outlen = 99;

	body_init(&st);
	CHECK_INT(body_encode(&st, "a", 1, out, 0, &outlen), 0);
	CHECK_INT(outlen, 0);
	CHECK_INT(body_encode(&st, ".", 1, out, 1, &outlen), 0);
	CHECK_INT(outlen, 0);
	CHECK_INT(body_encode(&st, "\n", 1, out, 1, &outlen), 0);
	CHECK_INT(body_encode(&st, NULL, 0, out, 8, &outlen), 0);
	CHECK_INT(outlen, 0);
	CHECK_INT(body_encode(&st, "ab.\n", 4, out, 3, &outlen), 3);
	CHECK_MEM(out, outlen, "ab.", 3);
	/* finish needs room for all of it */
	CHECK_INT(body_finish(&st, out, 4), 0);
	CHECK_INT(body_finish(&st, out, 5), 5);
	CHECK_MEM(out, 5, "\r\n.\r\n", 5);
	CHECK_INT(body_finish(&st, out, 2), 0);
	CHECK_INT(body_finish(&st, out, 3), 3);
	CHECK_MEM(out, 3, ".\r\n", 3);
}

/* Random stored body of length n from octets that matter. */
static void
body_random(char *s, size_t n)
{
	static const char alphabet[] = {'a',  '.',  '.', '\r',	    '\n',
					'\n', '\0', ' ', (char)0xff};
	for (size_t i = 0; i < n; i++)
		s[i] = alphabet[rng_below(sizeof alphabet)];
}

/* wire -> smtpd's DATA mode in random chunks; returns the stored form. */
static size_t
body_unstuff(const char *wire, size_t wlen, char *stored)
{
	struct data_state ds;
	size_t pos = 0, slen = 0;
	char out[BODY_TEST_MAX * 2 + 16];

	data_init(&ds, DATA_BARE_LF_REJECT);
	while (pos < wlen && !ds.done) {
		size_t chunk = 1 + rng_below(wlen - pos < 30 ? wlen - pos : 30);
		size_t outlen;
		pos += data_feed(&ds, wire + pos, chunk, out, &outlen);
		memcpy(stored + slen, out, outlen);
		slen += outlen;
	}
	CHECK(ds.done);
	CHECK(!ds.bare_lf);
	CHECK_INT(pos, wlen); /* the end is the very last octets */
	CHECK_INT(ds.size, slen);
	return slen;
}

static void
test_round_trip(void)
{
	static char stored[BODY_TEST_MAX], wire[2 * BODY_TEST_MAX + 8],
	    back[2 * BODY_TEST_MAX + 8];

	for (int r = 0; r < 3000; r++) {
		size_t n = rng_below(r < 1000 ? 20 : 300);
		int before = test_failures;

		body_random(stored, n);
		bool final_lf = n == 0 || stored[n - 1] == '\n';
		size_t wlen = body_run(stored, n, RANDOM, rng_below(6), wire);
		size_t blen = body_unstuff(wire, wlen, back);
		if (final_lf) {
			CHECK_MEM(back, blen, stored, n);
		} else {
			/* the last line gets its line end: stored + "\n" */
			CHECK_INT(blen, n + 1);
			CHECK_MEM(back, blen - 1, stored, n);
			CHECK(back[n] == '\n');
		}
		if (test_failures != before) {
			fprintf(stderr, "  round trip of ");
			test_print_escaped(stored, n);
			fputc('\n', stderr);
			return;
		}
	}
}

int
main(void)
{
	const char *env = getenv("TEST_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 10)
			    : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

	if (seed == 0)
		seed = 1; /* xorshift needs a non-zero state */
	fprintf(stderr, "test_body: seed %llu (TEST_SEED=%llu to repeat)\n",
		(unsigned long long)seed, (unsigned long long)seed);
	rng_state = seed;
	test_table();
	test_edges();
	test_round_trip();
	return test_summary();
}

/*
 * test_data: the DATA-mode state machine (src/smtpd/data.c). Every table
 * case (wire -> stored, consumed, done, bare_lf, received) is fed whole,
 * byte by byte and in 200 random chunkings, in both bare-LF modes, and
 * must give the same result each time. A simple whole-buffer reference
 * model cross-checks the table and thousands of random inputs.
 */
#include "data.h"
#include "test.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#define W(s) s, sizeof(s) - 1

struct data_case {
	const char *name;
	const char *wire;
	size_t wirelen;
	const char *stored;
	size_t storedlen;
	size_t left; /* trailing bytes not consumed (pipelined) */
	bool done;
	bool bare_lf;
	unsigned received;
};

static const struct data_case data_cases[] = {
    {"simple", W("a\r\nb\r\n.\r\n"), W("a\nb\n"), 0, true, false, 0},
    {"empty message", W(".\r\n"), W(""), 0, true, false, 0},
    {"no input", W(""), W(""), 0, false, false, 0},
    {"unfinished line", W("hello"), W("hello"), 0, false, false, 0},
    {"unfinished, CR held", W("abc\r"), W("abc"), 0, false, false, 0},
    {"unfinished, dot line", W("a\r\n.\r"), W("a\n"), 0, false, false, 0},
    {"empty lines", W("\r\n\r\n.\r\n"), W("\n\n"), 0, true, false, 0},
    {"dot stuffed", W("..\r\n.\r\n"), W(".\n"), 0, true, false, 0},
    {"dot stuffed lines", W("..foo\r\n...\r\n.bar\r\nx.y\r\n.\r\n"),
     W(".foo\n..\nbar\nx.y\n"), 0, true, false, 0},
    {"dot not at line start", W("a.\r\n a\r\n.\r\n"), W("a.\n a\n"), 0, true,
     false, 0},
    {"pipelined after end", W("a\r\n.\r\nMAIL FROM:<x@y>\r\n"), W("a\n"), 17,
     true, false, 0},
    {"pipelined after empty", W(".\r\nQUIT\r\n"), W(""), 6, true, false, 0},
    {"two terminators", W("a\r\n.\r\n.\r\n"), W("a\n"), 3, true, false, 0},
    {"bare CR content", W("a\rb\r\n.\r\n"), W("a\rb\n"), 0, true, false, 0},
    {"CR CR LF", W("a\r\r\n.\r\n"), W("a\r\n"), 0, true, false, 0},
    /* SMTP smuggling sequences: none of them ends the data. */
    {"LF.LF", W("a\n.\nMAIL FROM:<e@v>\r\nb\r\n.\r\n"),
     W("a\n\nMAIL FROM:<e@v>\nb\n"), 0, true, true, 0},
    {"LF.CRLF", W("a\n.\r\nRCPT TO:<e@v>\r\nb\r\n.\r\n"),
     W("a\n\nRCPT TO:<e@v>\nb\n"), 0, true, true, 0},
    {"CRLF.LF", W("a\r\n.\nDATA\r\nb\r\n.\r\n"), W("a\n\nDATA\nb\n"), 0, true,
     true, 0},
    {"CR.CR", W("a\r.\rQUIT\r\nb\r\n.\r\n"), W("a\r.\rQUIT\nb\n"), 0, true,
     false, 0},
    {"CR.LF", W("a\r.\nQUIT\r\nb\r\n.\r\n"), W("a\r.\nQUIT\nb\n"), 0, true,
     true, 0},
    {"CRLF.CRx", W("a\r\n.\rx\r\nb\r\n.\r\n"), W("a\n\rx\nb\n"), 0, true, false,
     0},
    {"LF.CRLF at start", W("\n.\r\nb\r\n.\r\n"), W("\n\nb\n"), 0, true, true,
     0},
    {".LF at start", W(".\nb\r\n.\r\n"), W("\nb\n"), 0, true, true, 0},
    {".CRx at start", W(".\rx\r\n.\r\n"), W("\rx\n"), 0, true, false, 0},
    {"CRLF.CRCRLF", W("a\r\n.\r\r\n.\r\n"), W("a\n\r\n"), 0, true, false, 0},
    {"CRLF.. CRLF", W("a\r\n..\r\n.\r\n"), W("a\n.\n"), 0, true, false, 0},
    {"LF.. LF", W("a\n..\nb\r\n.\r\n"), W("a\n.\nb\n"), 0, true, true, 0},
    {"LF then real end", W("a\n\r\n.\r\n"), W("a\n\n"), 0, true, true, 0},
    {"LF line then CRLF end", W("a\nb\r\n.\r\nX"), W("a\nb\n"), 1, true, true,
     0},
    {"LF.LF never ends", W("a\n.\n"), W("a\n\n"), 0, false, true, 0},
    {"NUL bytes kept", W("a\0b\r\n\0\r\n.\r\n"), W("a\0b\n\0\n"), 0, true,
     false, 0},
    /* Received: counting in the header section only. */
    {"received in header",
     W("Received: from a\r\nreceived: from b\r\n\tby c\r\n"
       "X-Received: z\r\nRECEIVED:w\r\nSubject: s\r\n\r\n"
       "Received: body\r\n.\r\n"),
     W("Received: from a\nreceived: from b\n\tby c\nX-Received: z\n"
       "RECEIVED:w\nSubject: s\n\nReceived: body\n"),
     0, true, false, 3},
    {"received in body only", W("\r\nReceived: x\r\n.\r\n"),
     W("\nReceived: x\n"), 0, true, false, 0},
    {"received needs colon",
     W("Received x\r\nReceivedx: y\r\nReceived : z\r\nReceive: q\r\n"
       " Received: c\r\nReceived:\r\n.\r\n"),
     W("Received x\nReceivedx: y\nReceived : z\nReceive: q\n"
       " Received: c\nReceived:\n"),
     0, true, false, 1},
    {"received dot stuffed", W(".Received: x\r\n..Received: y\r\n.\r\n"),
     W("Received: x\n.Received: y\n"), 0, true, false, 1},
    {"received after bare LF",
     W("Received: a\nReceived: b\n\nReceived: c\r\n.\r\n"),
     W("Received: a\nReceived: b\n\nReceived: c\n"), 0, true, true, 2},
    {"received unfinished", W("A: b\r\nReceived:"), W("A: b\nReceived:"), 0,
     false, false, 1},
    {"received after end ignored", W("Received: a\r\n.\r\nReceived: b\r\n"),
     W("Received: a\n"), 13, true, false, 1},
};

#define N_CASES (sizeof data_cases / sizeof data_cases[0])

struct data_result {
	char *out;
	size_t outlen;
	size_t consumed;
	uint64_t size;
	unsigned received;
	bool done;
	bool bare_lf;
	bool contract_ok; /* per-call rules of data_feed() held */
};

/* xorshift64*: a seeded PRNG so a failing chunking can be replayed. */
static uint64_t
test_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

enum chunking { CHUNK_WHOLE, CHUNK_BYTES, CHUNK_RANDOM };

static size_t
next_chunk(enum chunking how, uint64_t *rng, size_t rest)
{
	if (how == CHUNK_WHOLE)
		return rest;
	if (how == CHUNK_BYTES)
		return 1;
	/* Half the chunks small, so CRs and dots often land on an edge. */
	size_t max = test_rand(rng) & 1 ? 4 : rest;
	size_t n = 1 + (size_t)(test_rand(rng) % max);
	return n > rest ? rest : n;
}

/*
 * Feeds wire in chunks; the output buffer is exactly len + 2 bytes so
 * ASan catches any write past the documented bound.
 */
static void
feed(const char *wire, size_t len, enum data_bare_lf mode, enum chunking how,
     uint64_t seed, struct data_result *r)
{
	struct data_state st;
	size_t cap = len + 2, pos = 0;
	uint64_t rng = seed;

	data_init(&st, mode);
	r->out = malloc(cap);
	r->outlen = 0;
	r->contract_ok = r->out != NULL;
	while (r->contract_ok && pos < len) {
		size_t chunk = next_chunk(how, &rng, len - pos), o = 99;
		if (r->outlen + chunk + 2 > cap) {
			r->contract_ok = false;
			break;
		}
		size_t n =
		    data_feed(&st, wire + pos, chunk, r->out + r->outlen, &o);
		if (n > chunk || o > chunk + 2 || (n < chunk && !st.done))
			r->contract_ok = false;
		r->outlen += o;
		pos += n;
		if (st.done)
			break;
	}
	if (st.done && pos < len) {
		/* Once done, nothing more is consumed or produced. */
		size_t o = 99;
		if (data_feed(&st, wire + pos, len - pos, r->out + r->outlen,
			      &o) != 0 ||
		    o != 0)
			r->contract_ok = false;
	}
	r->consumed = pos;
	r->size = st.size;
	r->received = st.received;
	r->done = st.done;
	r->bare_lf = st.bare_lf;
}

/*
 * Reference model over the whole buffer: the end is the first
 * "\r\n.\r\n" in "\r\n" + wire; lines split at LF, CR before LF dropped,
 * first "." dropped; an unfinished last line keeps back a trailing CR.
 */
static size_t
ref_end(const char *w, size_t len)
{
	for (size_t i = 0; i + 3 <= len; i++) {
		bool clean =
		    i == 0 || (i >= 2 && w[i - 2] == '\r' && w[i - 1] == '\n');
		if (clean && w[i] == '.' && w[i + 1] == '\r' &&
		    w[i + 2] == '\n')
			return i;
	}
	return SIZE_MAX;
}

static bool
ref_is_received(const char *s, size_t n)
{
	static const char want[] = "received:";
	if (n < sizeof want - 1)
		return false;
	for (size_t i = 0; i < sizeof want - 1; i++) {
		char c = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] + 32) : s[i];
		if (c != want[i])
			return false;
	}
	return true;
}

static unsigned
ref_received(const char *s, size_t n)
{
	unsigned count = 0;
	size_t i = 0;
	while (i < n && s[i] != '\n') {
		size_t e = i;
		while (e < n && s[e] != '\n')
			e++;
		count += ref_is_received(s + i, e - i);
		i = e + 1;
	}
	return count;
}

static void
ref_model(const char *w, size_t len, struct data_result *r)
{
	size_t end = ref_end(w, len);
	size_t region = end == SIZE_MAX ? len : end;

	r->out = malloc(len + 1);
	r->outlen = 0;
	r->bare_lf = false;
	r->done = end != SIZE_MAX;
	r->consumed = r->done ? end + 3 : len;
	for (size_t s = 0; s < region;) {
		size_t e = s;
		while (e < region && w[e] != '\n')
			e++;
		bool has_lf = e < region;
		bool crlf = has_lf && e > s && w[e - 1] == '\r';
		size_t cend =
		    (!has_lf || crlf) && e > s && w[e - 1] == '\r' ? e - 1 : e;
		size_t cs = s < cend && w[s] == '.' ? s + 1 : s;
		if (has_lf && !crlf)
			r->bare_lf = true;
		memcpy(r->out + r->outlen, w + cs, cend - cs);
		r->outlen += cend - cs;
		if (has_lf)
			r->out[r->outlen++] = '\n';
		s = e + 1;
	}
	r->size = r->outlen;
	r->received = ref_received(r->out, r->outlen);
	r->contract_ok = true;
}

static bool
same_result(const struct data_result *a, const struct data_result *b)
{
	return a->contract_ok && b->contract_ok && a->outlen == b->outlen &&
	       memcmp(a->out, b->out, a->outlen) == 0 &&
	       a->consumed == b->consumed && a->size == b->size &&
	       a->received == b->received && a->done == b->done &&
	       a->bare_lf == b->bare_lf;
}

static void
check_expected(const struct data_case *c, const struct data_result *r)
{
	CHECK(r->contract_ok);
	CHECK_MEM(r->out, r->outlen, c->stored, c->storedlen);
	CHECK_INT(r->consumed, c->wirelen - c->left);
	CHECK_INT(r->size, c->storedlen);
	CHECK_INT(r->done, c->done);
	CHECK_INT(r->bare_lf, c->bare_lf);
	CHECK_INT(r->received, c->received);
}

/* Whole, byte by byte, and 200 random chunkings must agree. */
static void
check_chunkings(const char *name, const char *wire, size_t len,
		enum data_bare_lf mode, const struct data_result *want,
		uint64_t seed0)
{
	struct data_result r;

	feed(wire, len, mode, CHUNK_BYTES, 0, &r);
	test_checks++;
	if (!same_result(&r, want)) {
		test_failures++;
		fprintf(stderr, "%s: byte-by-byte feed differs\n", name);
	}
	free(r.out);
	for (int i = 0; i < 200; i++) {
		uint64_t seed = seed0 + (uint64_t)i * 0x9E3779B97F4A7C15ULL + 1;
		feed(wire, len, mode, CHUNK_RANDOM, seed, &r);
		test_checks++;
		if (!same_result(&r, want)) {
			test_failures++;
			fprintf(stderr,
				"%s: chunking with seed 0x%016" PRIx64
				" differs\n",
				name, seed);
			free(r.out);
			return;
		}
		free(r.out);
	}
}

static void
test_table(void)
{
	for (size_t i = 0; i < N_CASES; i++) {
		const struct data_case *c = &data_cases[i];
		struct data_result ref;
		ref_model(c->wire, c->wirelen, &ref);
		for (int m = 0; m < 2; m++) {
			enum data_bare_lf mode =
			    m ? DATA_BARE_LF_REJECT : DATA_BARE_LF_NORMALIZE;
			struct data_result whole;
			feed(c->wire, c->wirelen, mode, CHUNK_WHOLE, 0, &whole);
			check_expected(c, &whole);
			if (!same_result(&whole, &ref))
				fprintf(stderr,
					"case \"%s\": reference model"
					" disagrees\n",
					c->name);
			CHECK(same_result(&whole, &ref));
			check_chunkings(c->name, c->wire, c->wirelen, mode,
					&whole, 0x5eed0000u + i * 1000u);
			free(whole.out);
		}
		free(ref.out);
	}
}

static void
test_long_lines(void)
{
	size_t n = 100000;
	char *wire = malloc(2 * n + 64), *want = malloc(2 * n + 64);
	size_t wl = 0, sl = 0;

	CHECK(wire && want);
	if (!wire || !want)
		goto out;
	memset(wire, 'x', n);
	memset(want, 'x', n);
	wl = sl = n;
	memcpy(wire + wl, "\r\n", 2), wl += 2;
	want[sl++] = '\n';
	/* A line of n dots stores n - 1 dots. */
	memset(wire + wl, '.', n), wl += n;
	memset(want + sl, '.', n - 1), sl += n - 1;
	memcpy(wire + wl, "\r\n.\r\nQUIT\r\n", 11), wl += 11;
	want[sl++] = '\n';

	struct data_result r;
	feed(wire, wl, DATA_BARE_LF_NORMALIZE, CHUNK_WHOLE, 0, &r);
	CHECK(r.contract_ok);
	CHECK_MEM(r.out, r.outlen, want, sl);
	CHECK_INT(r.consumed, wl - 6);
	CHECK(r.done);
	CHECK(!r.bare_lf);
	check_chunkings("long lines", wire, wl, DATA_BARE_LF_NORMALIZE, &r,
			0x10a9u);
	free(r.out);
out:
	free(wire);
	free(want);
}

/* "Received:" split at every position, and per call across chunks. */
static void
test_received_split(void)
{
	static const char wire[] = "Received: a\r\nX: y\r\nreceived: b\r\n\r\n"
				   "Received: c\r\n.\r\n";
	size_t len = sizeof wire - 1;

	for (size_t cut = 0; cut <= len; cut++) {
		struct data_state st;
		char out[sizeof wire + 4];
		size_t o1 = 0, o2 = 0;
		data_init(&st, DATA_BARE_LF_REJECT);
		size_t n1 = data_feed(&st, wire, cut, out, &o1);
		CHECK_INT(n1, cut);
		size_t n2 =
		    data_feed(&st, wire + cut, len - cut, out + o1, &o2);
		CHECK_INT(n1 + n2, len);
		CHECK_INT(st.received, 2);
		CHECK(st.done);
		CHECK(!st.bare_lf);
		CHECK_INT(st.size, o1 + o2);
	}
}

static void
test_feed_edges(void)
{
	struct data_state st;
	char out[8];
	size_t o = 99;

	data_init(&st, DATA_BARE_LF_NORMALIZE);
	CHECK_INT(data_feed(&st, "", 0, out, &o), 0);
	CHECK_INT(o, 0);
	CHECK(!st.done);
	/* A held CR comes out with the next byte: inlen 1, outlen 2. */
	CHECK_INT(data_feed(&st, "a\r", 2, out, &o), 2);
	CHECK_MEM(out, o, "a", 1);
	CHECK_INT(data_feed(&st, "b", 1, out, &o), 1);
	CHECK_MEM(out, o, "\rb", 2);
	CHECK_INT(data_feed(&st, "\r\n.", 3, out, &o), 3);
	CHECK_MEM(out, o, "\n", 1);
	CHECK_INT(data_feed(&st, "\r", 1, out, &o), 1);
	CHECK_INT(o, 0);
	CHECK(!st.done);
	CHECK_INT(data_feed(&st, "\nRSET\r\n", 7, out, &o), 1);
	CHECK_INT(o, 0);
	CHECK(st.done);
	CHECK_INT(st.size, 4);
	CHECK_INT(data_feed(&st, "RSET\r\n", 6, out, &o), 0);
	CHECK_INT(o, 0);
	/* data_init starts over. */
	data_init(&st, DATA_BARE_LF_REJECT);
	CHECK(!st.done);
	CHECK_INT(st.size, 0);
	CHECK_INT(data_feed(&st, ".\r\n", 3, out, &o), 3);
	CHECK(st.done);
	CHECK_INT(o, 0);
	CHECK_INT(st.mode, DATA_BARE_LF_REJECT);
}

/* Random inputs built from the interesting tokens vs the reference. */
static void
test_random_vs_reference(void)
{
	static const char *const tok[] = {
	    "\r",
	    "\n",
	    ".",
	    "a",
	    "Received:",
	    "rECEIVED:",
	    " ",
	    "\r\n",
	    ".\r\n",
	    "\r\n.\r\n",
	    "\t",
	    "\n.\n",
	    "..",
	    /* runs of plain content, which data.c copies whole */
	    "Subject: a run of plain text",
	    "Rec",
	    "eived: x",
	};
	uint64_t rng = 0xda7a5eedULL;
	char wire[512];

	for (int iter = 0; iter < 3000; iter++) {
		size_t len = 0, ntok = (size_t)(test_rand(&rng) % 24);
		for (size_t k = 0; k < ntok; k++) {
			const char *t =
			    tok[test_rand(&rng) % (sizeof tok / sizeof tok[0])];
			size_t tl = strlen(t);
			memcpy(wire + len, t, tl);
			len += tl;
		}
		struct data_result ref, got;
		ref_model(wire, len, &ref);
		uint64_t seed = test_rand(&rng);
		feed(wire, len, DATA_BARE_LF_NORMALIZE, CHUNK_RANDOM, seed,
		     &got);
		test_checks++;
		if (!same_result(&got, &ref)) {
			test_failures++;
			fprintf(stderr,
				"random input %d (chunk seed 0x%016" PRIx64
				") differs from reference: ",
				iter, seed);
			test_print_escaped(wire, len);
			fprintf(stderr, "\n");
		}
		free(ref.out);
		free(got.out);
	}
}

int
main(void)
{
	test_table();
	test_long_lines();
	test_received_split();
	test_feed_edges();
	test_random_vs_reference();
	return test_summary();
}

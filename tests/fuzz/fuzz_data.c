/*
 * fuzz_data: libFuzzer target for the DATA-mode state machine
 * (src/smtpd/data.c). The input is the wire bytes after "354". It is fed
 * whole, byte by byte, and in chunks whose sizes come from the input
 * itself; all three must agree (also across the two bare-LF modes), and
 * the result must satisfy invariants that can be read straight off the
 * wire bytes:
 * - done iff "\r\n" + wire contains "\r\n.\r\n", and then exactly the
 *   bytes up to and including its first occurrence are consumed;
 * - bare_lf iff a consumed LF is not preceded by CR;
 * - every consumed LF gives one stored LF, except the terminating one;
 * - the stored form is never longer than the consumed bytes, size counts
 *   it, and one call never outputs more than inlen + 2 bytes.
 */
#include "data.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__,     \
				#cond);                                        \
			abort();                                               \
		}                                                              \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_result {
	char *out;
	size_t outlen;
	size_t consumed;
	uint64_t size;
	unsigned received;
	bool done;
	bool bare_lf;
};

enum fuzz_chunking { FUZZ_WHOLE, FUZZ_BYTES, FUZZ_VARIED };

static size_t
fuzz_chunk(enum fuzz_chunking how, const char *in, size_t len, size_t pos)
{
	size_t n;

	if (how == FUZZ_WHOLE)
		return len - pos;
	if (how == FUZZ_BYTES)
		return 1;
	n = 1 + (unsigned char)in[(pos * 7) % len] % 5;
	return n > len - pos ? len - pos : n;
}

static void
fuzz_feed(const char *in, size_t len, enum data_bare_lf mode,
	  enum fuzz_chunking how, struct fuzz_result *r)
{
	struct data_state st;
	size_t pos = 0;

	data_init(&st, mode);
	/* Exactly len + 2 bytes, so ASan sees any write past the bound. */
	r->out = malloc(len + 2);
	FUZZ_CHECK(r->out != NULL);
	r->outlen = 0;
	while (pos < len && !st.done) {
		size_t chunk = fuzz_chunk(how, in, len, pos), o = 0;
		FUZZ_CHECK(r->outlen + chunk + 2 <= len + 2);
		size_t n =
		    data_feed(&st, in + pos, chunk, r->out + r->outlen, &o);
		FUZZ_CHECK(n <= chunk);
		FUZZ_CHECK(o <= chunk + 2);
		FUZZ_CHECK(n == chunk || st.done);
		r->outlen += o;
		pos += n;
	}
	if (pos < len) {
		size_t o = 0;
		FUZZ_CHECK(data_feed(&st, in + pos, len - pos,
				     r->out + r->outlen, &o) == 0);
		FUZZ_CHECK(o == 0);
	}
	r->consumed = pos;
	r->size = st.size;
	r->received = st.received;
	r->done = st.done;
	r->bare_lf = st.bare_lf;
}

static void
fuzz_same(const struct fuzz_result *a, const struct fuzz_result *b)
{
	FUZZ_CHECK(a->outlen == b->outlen);
	FUZZ_CHECK(memcmp(a->out, b->out, a->outlen) == 0);
	FUZZ_CHECK(a->consumed == b->consumed);
	FUZZ_CHECK(a->size == b->size);
	FUZZ_CHECK(a->received == b->received);
	FUZZ_CHECK(a->done == b->done);
	FUZZ_CHECK(a->bare_lf == b->bare_lf);
}

/* End of the first "\r\n.\r\n" in "\r\n" + in, or 0 if there is none. */
static size_t
fuzz_end(const char *in, size_t len)
{
	for (size_t i = 0; i + 3 <= len; i++) {
		bool clean = i == 0 ||
			     (i >= 2 && in[i - 2] == '\r' && in[i - 1] == '\n');
		if (clean && in[i] == '.' && in[i + 1] == '\r' &&
		    in[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static void
fuzz_invariants(const char *in, size_t len, const struct fuzz_result *r)
{
	size_t end = fuzz_end(in, len), lf_in = 0, lf_out = 0;
	bool bare = false;

	FUZZ_CHECK(r->done == (end != 0));
	FUZZ_CHECK(r->consumed == (r->done ? end : len));
	FUZZ_CHECK(r->size == r->outlen);
	FUZZ_CHECK(r->outlen <= r->consumed);
	for (size_t i = 0; i < r->consumed; i++) {
		if (in[i] != '\n')
			continue;
		lf_in++;
		if (i == 0 || in[i - 1] != '\r')
			bare = true;
	}
	for (size_t i = 0; i < r->outlen; i++)
		lf_out += r->out[i] == '\n';
	FUZZ_CHECK(r->bare_lf == bare);
	FUZZ_CHECK(lf_out == lf_in - (r->done ? 1 : 0));
	/* Each counted field starts a distinct stored line. */
	FUZZ_CHECK(r->received <= lf_out + 1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct fuzz_result whole, bytes, varied;

	fuzz_feed(in, size, DATA_BARE_LF_NORMALIZE, FUZZ_WHOLE, &whole);
	fuzz_invariants(in, size, &whole);
	fuzz_feed(in, size, DATA_BARE_LF_REJECT, FUZZ_BYTES, &bytes);
	fuzz_same(&whole, &bytes);
	if (size > 0) {
		fuzz_feed(in, size, DATA_BARE_LF_NORMALIZE, FUZZ_VARIED,
			  &varied);
		fuzz_same(&whole, &varied);
		free(varied.out);
	}
	free(whole.out);
	free(bytes.out);
	return 0;
}

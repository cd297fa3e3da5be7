/*
 * body: stored message -> DATA wire form (see body.h).
 *
 * The only state is whether the next input octet starts a line. Each
 * input octet expands to one or two output octets ("\n" -> "\r\n", a "."
 * at the start of a line -> "..", RFC 5321 4.5.2) and is consumed only
 * when its whole expansion fits, so any chunking of input and any output
 * capacity give the same bytes.
 */
#include "body.h"

#include <string.h>

void
body_init(struct body_state *st)
{
	st->mid_line = false;
}

size_t
body_encode(struct body_state *st, const char *in, size_t inlen, char *out,
	    size_t outcap, size_t *outlen)
{
	size_t i = 0, o = 0;

	for (; i < inlen; i++) {
		char c = in[i];
		bool two = c == '\n' || (c == '.' && !st->mid_line);
		if (outcap - o < (two ? 2u : 1u))
			break;
		if (c == '\n') {
			out[o++] = '\r'; /* a CR before it is content */
			out[o++] = '\n';
			st->mid_line = false;
			continue;
		}
		if (two)
			out[o++] = '.'; /* RFC 5321 4.5.2 transparency */
		out[o++] = c;
		st->mid_line = true;
	}
	*outlen = o;
	return i;
}

/* RFC 5321 4.1.1.4: the data ends with CRLF "." CRLF. */
size_t
body_finish(struct body_state *st, char *out, size_t outcap)
{
	static const char end[] = "\r\n.\r\n";
	const char *s = st->mid_line ? end : end + 2;
	size_t n = strlen(s);

	if (outcap < n)
		return 0;
	memcpy(out, s, n);
	st->mid_line = false;
	return n;
}

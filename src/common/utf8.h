/*
 * utf8: the one check of well-formed UTF-8 the parsers, the logger and
 * the metrics writer share.
 */
#ifndef MTA_UTF8_H
#define MTA_UTF8_H

#include <stddef.h>

/*
 * Length (2 to 4) of the well-formed multi-byte UTF-8 sequence at s, of
 * which n bytes are available, or 0 when s does not start one (ASCII
 * included): no overlong forms, no surrogates, nothing past U+10FFFF
 * (RFC 3629 section 4, Unicode table 3-7).
 */
size_t utf8_seq_len(const unsigned char *s, size_t n);

#endif

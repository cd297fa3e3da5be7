/*
 * smtp_addr: RFC 5321 4.1.2 path parser (see smtp_addr.h).
 *
 * One left-to-right pass over the bytes. Every read goes through
 * addr_peek() or is bounded by p->len, so s is never read at or past len
 * and need not be NUL-terminated. Errors are reported in the order they
 * are met; a length limit (RFC 5321 4.5.3.1) is checked as soon as the
 * part it limits ends, the path limit last, once '>' is seen.
 *
 * Invariants of a successful parse: out->addr holds the Mailbox exactly
 * as received (source route dropped), NUL-terminated, out->len <= 254
 * because the path is at most 256 octets with its brackets; out->at is
 * the index of the '@' splitting local part and domain, == len when
 * there is no domain ("<>", "<postmaster>"). On failure *out is zeroed.
 */
#include "smtp_addr.h"
#include "utf8.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

struct addr_parser {
	const unsigned char *s;
	size_t len;
	size_t pos;
	unsigned flags;
};

/* The octet at pos, or -1 at the end of the input. */
static int
addr_peek(const struct addr_parser *p)
{
	return p->pos < p->len ? p->s[p->pos] : -1;
}

static bool
addr_is_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

/* RFC 5322 3.2.3 atext. */
static bool
addr_is_atext(int c)
{
	static const char specials[] = "!#$%&'*+-/=?^_`{|}~";

	return addr_is_alnum(c) ||
	       (c > 0 && c < 0x80 &&
		memchr(specials, c, sizeof specials - 1) != NULL);
}

static int
addr_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* ASCII case-insensitive compare of n octets. */
static bool
addr_caseeq(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;

	for (size_t i = 0; i < n; i++)
		if (addr_lower(x[i]) != addr_lower(y[i]))
			return false;
	return true;
}

/*
 * An octet that ends a token where something else was wanted: a space,
 * a control or the end of input is bad syntax, anything else `other`.
 */
static enum addr_err
addr_bad_char(int c, enum addr_err other)
{
	return c < 0x21 || c == 0x7f ? ADDR_ERR_SYNTAX : other;
}

/*
 * At an octet >= 0x80: RFC 6531 3.3 allows UTF-8 only after SMTPUTF8.
 * Steps over one well-formed character.
 */
static enum addr_err
addr_nonascii(struct addr_parser *p)
{
	if (!(p->flags & ADDR_ALLOW_UTF8))
		return ADDR_ERR_UTF8;
	size_t n = utf8_seq_len(p->s + p->pos, p->len - p->pos);
	if (n == 0)
		return ADDR_ERR_SYNTAX;
	p->pos += n;
	return ADDR_OK;
}

/* RFC 5321 4.1.2 Dot-string = Atom *("." Atom); RFC 6531 3.3 UTF-8. */
static enum addr_err
addr_dot_string(struct addr_parser *p)
{
	for (;;) {
		size_t start = p->pos;
		int c;

		while ((c = addr_peek(p)) >= 0x80 || addr_is_atext(c)) {
			if (c < 0x80) {
				p->pos++;
				continue;
			}
			enum addr_err e = addr_nonascii(p);
			if (e != ADDR_OK)
				return e;
		}
		if (p->pos == start) /* "..", leading or trailing dot */
			return ADDR_ERR_SYNTAX;
		if (c != '.')
			return ADDR_OK;
		p->pos++;
	}
}

/*
 * RFC 5321 4.1.2 Quoted-string = DQUOTE *(qtextSMTP / quoted-pairSMTP)
 * DQUOTE; RFC 6531 3.3 adds UTF-8 to qtextSMTP but not to quoted pairs.
 */
static enum addr_err
addr_quoted_string(struct addr_parser *p)
{
	p->pos++; /* DQUOTE */
	for (;;) {
		int c = addr_peek(p);

		if (c == '"') {
			p->pos++;
			return ADDR_OK;
		}
		if (c == '\\') {
			p->pos++;
			c = addr_peek(p);
			if (c >= 0x80 && !(p->flags & ADDR_ALLOW_UTF8))
				return ADDR_ERR_UTF8;
			if (c < 32 || c > 126)
				return ADDR_ERR_SYNTAX;
			p->pos++;
		} else if (c >= 0x80) {
			enum addr_err e = addr_nonascii(p);
			if (e != ADDR_OK)
				return e;
		} else if (c >= 32 && c <= 126) {
			p->pos++;
		} else {
			return ADDR_ERR_SYNTAX; /* control or unterminated */
		}
	}
}

/* Local-part = Dot-string / Quoted-string, at most 64 octets. */
static enum addr_err
addr_local_part(struct addr_parser *p, bool *quoted)
{
	size_t start = p->pos;
	enum addr_err e;

	*quoted = addr_peek(p) == '"';
	e = *quoted ? addr_quoted_string(p) : addr_dot_string(p);
	if (e != ADDR_OK)
		return e;
	if (p->pos - start > SMTP_LOCAL_MAX)
		return ADDR_ERR_LOCAL_LONG; /* RFC 5321 4.5.3.1.1 */
	return ADDR_OK;
}

/*
 * RFC 5321 4.1.2 sub-domain = Let-dig [Ldh-str]: no hyphen first or
 * last. A UTF-8 character counts as a letter (RFC 6531 3.3 U-label).
 */
static enum addr_err
addr_sub_domain(struct addr_parser *p)
{
	size_t start = p->pos;
	int c, last = 0;

	while ((c = addr_peek(p)) >= 0x80 || addr_is_alnum(c) ||
	       (c == '-' && p->pos > start)) {
		if (c < 0x80) {
			last = c;
			p->pos++;
			continue;
		}
		enum addr_err e = addr_nonascii(p);
		if (e != ADDR_OK)
			return e;
		last = 'a';
	}
	if (p->pos == start) /* empty label, trailing dot, leading '-' */
		return addr_bad_char(c, ADDR_ERR_DOMAIN);
	return last == '-' ? ADDR_ERR_DOMAIN : ADDR_OK;
}

/* Domain = sub-domain *("." sub-domain), at most 255 octets. */
static enum addr_err
addr_domain(struct addr_parser *p)
{
	size_t start = p->pos;

	for (;;) {
		enum addr_err e = addr_sub_domain(p);
		if (e != ADDR_OK)
			return e;
		if (addr_peek(p) != '.')
			break;
		p->pos++;
	}
	if (p->pos - start > SMTP_DOMAIN_MAX)
		return ADDR_ERR_DOMAIN_LONG; /* RFC 5321 4.5.3.1.2 */
	return ADDR_OK;
}

/*
 * After a complete domain, c was not the terminator wanted. Another
 * '@' ("<user@other@ours>"), a delimiter or a space is bad syntax; any
 * other octet makes the domain bad ("<a@b_c>").
 */
static enum addr_err
addr_after_domain(int c)
{
	if (c == '@' || c == '>' || c == ',' || c == ':')
		return ADDR_ERR_SYNTAX;
	return addr_bad_char(c, ADDR_ERR_DOMAIN);
}

/* RFC 5321 4.1.3 IPv4-address-literal = Snum 3("." Snum), Snum 0-255. */
static bool
addr_ipv4(const char *s, size_t n)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		unsigned v = 0, digits = 0;

		if (part > 0) {
			if (i >= n || s[i] != '.')
				return false;
			i++;
		}
		while (i < n && digits < 3 && s[i] >= '0' && s[i] <= '9') {
			v = v * 10 + (unsigned)(s[i] - '0');
			i++;
			digits++;
		}
		if (digits == 0 || v > 255)
			return false;
	}
	return i == n;
}

/* RFC 5321 4.1.3 IPv6-addr, checked by inet_pton on a bounded copy. */
static bool
addr_ipv6(const char *s, size_t n)
{
	char buf[INET6_ADDRSTRLEN];
	struct in6_addr a;

	if (n == 0 || n >= sizeof buf)
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return inet_pton(AF_INET6, buf, &a) == 1;
}

/*
 * RFC 5321 4.1.3 General-address-literal = Standardized-tag ":"
 * 1*dcontent, with Standardized-tag = Ldh-str. Accepted on syntax only;
 * the dcontent octets were checked by the caller.
 */
static bool
addr_general(const char *tag, size_t tlen, size_t clen)
{
	if (tlen == 0 || clen == 0 || !addr_is_alnum(tag[tlen - 1]))
		return false;
	for (size_t i = 0; i < tlen; i++)
		if (!addr_is_alnum(tag[i]) && tag[i] != '-')
			return false;
	return true;
}

/* RFC 5321 4.1.3 address-literal = "[" ( ... ) "]", at the '['. */
static enum addr_err
addr_literal(struct addr_parser *p)
{
	size_t start = ++p->pos;
	int c;

	while ((c = addr_peek(p)) != ']') {
		if (c >= 0x80) /* RFC 6531 leaves literals ASCII */
			return p->flags & ADDR_ALLOW_UTF8 ? ADDR_ERR_DOMAIN
							  : ADDR_ERR_UTF8;
		if (c < 0x21 || c == 0x7f)
			return ADDR_ERR_SYNTAX;
		if (c == '[' || c == '\\') /* not dcontent */
			return ADDR_ERR_DOMAIN;
		p->pos++;
	}
	const char *lit = (const char *)p->s + start;
	size_t n = p->pos - start;
	const char *colon = memchr(lit, ':', n);
	bool ok;

	p->pos++; /* ']' */
	if (!colon) {
		ok = addr_ipv4(lit, n);
	} else {
		size_t tlen = (size_t)(colon - lit);
		if (tlen == 4 && addr_caseeq(lit, "IPv6", 4))
			ok = addr_ipv6(colon + 1, n - tlen - 1);
		else
			ok = addr_general(lit, tlen, n - tlen - 1);
	}
	if (!ok)
		return ADDR_ERR_DOMAIN;
	if (p->pos - start + 1 > SMTP_DOMAIN_MAX)
		return ADDR_ERR_DOMAIN_LONG;
	return ADDR_OK;
}

/*
 * RFC 5321 4.1.2 A-d-l = At-domain *( "," At-domain ) followed by ":".
 * Accepted and ignored (RFC 5321 4.1.1.3, appendix C).
 */
static enum addr_err
addr_route(struct addr_parser *p)
{
	for (;;) {
		if (addr_peek(p) != '@')
			return ADDR_ERR_SYNTAX;
		p->pos++;
		enum addr_err e = addr_domain(p);
		if (e != ADDR_OK)
			return e;
		int c = addr_peek(p);
		if (c != ',' && c != ':')
			return addr_after_domain(c);
		p->pos++;
		if (c == ':')
			return ADDR_OK;
	}
}

/* "<postmaster>" without a domain, any case (RFC 5321 4.1.1.3). */
static enum addr_err
addr_postmaster(struct addr_parser *p, size_t mb, struct smtp_path *out)
{
	static const char pm[] = "postmaster";
	size_t n = p->pos - mb;

	if (!(p->flags & ADDR_ALLOW_POSTMASTER) || n != sizeof pm - 1 ||
	    !addr_caseeq(p->s + mb, pm, n))
		return ADDR_ERR_SYNTAX; /* a mailbox needs a domain */
	memcpy(out->addr, pm, sizeof pm);
	out->len = out->at = n;
	out->is_postmaster = true;
	p->pos++; /* '>' */
	return ADDR_OK;
}

/* Stores the Mailbox s[mb..end) into out; fits by the path limit. */
static void
addr_store(const struct addr_parser *p, size_t mb, size_t at, size_t end,
	   struct smtp_path *out)
{
	out->len = end - mb;
	out->at = at - mb;
	memcpy(out->addr, p->s + mb, out->len);
	out->addr[out->len] = '\0';
	for (size_t i = 0; i < out->len; i++)
		if ((unsigned char)out->addr[i] >= 0x80)
			out->utf8 = true;
}

/* Path after the '<': [ A-d-l ":" ] Mailbox ">". */
static enum addr_err
addr_path(struct addr_parser *p, struct smtp_path *out)
{
	bool route = addr_peek(p) == '@';
	enum addr_err e;

	if (route && (e = addr_route(p)) != ADDR_OK)
		return e;
	size_t mb = p->pos;
	if ((e = addr_local_part(p, &out->quoted)) != ADDR_OK)
		return e;
	size_t at = p->pos;
	int c = addr_peek(p);
	if (c == '>' && !route && !out->quoted)
		return addr_postmaster(p, mb, out);
	if (c != '@')
		return ADDR_ERR_SYNTAX;
	p->pos++;
	out->literal = addr_peek(p) == '[';
	e = out->literal ? addr_literal(p) : addr_domain(p);
	if (e != ADDR_OK)
		return e;
	if ((c = addr_peek(p)) != '>')
		return addr_after_domain(c);
	if (p->pos + 1 > SMTP_PATH_MAX)
		return ADDR_ERR_PATH_LONG; /* RFC 5321 4.5.3.1.3 */
	addr_store(p, mb, at, p->pos, out);
	p->pos++; /* '>' */
	return ADDR_OK;
}

enum addr_err
smtp_path_parse(const char *s, size_t len, unsigned flags,
		struct smtp_path *out, size_t *consumed)
{
	struct addr_parser p = {
	    .s = (const unsigned char *)s,
	    .len = len,
	    .pos = 1,
	    .flags = flags,
	};
	enum addr_err e;

	memset(out, 0, sizeof *out);
	if (consumed)
		*consumed = 0;
	if (len == 0 || s[0] != '<')
		return ADDR_ERR_NO_BRACKETS;
	if (addr_peek(&p) == '>') { /* RFC 5321 4.1.1.2 null reverse-path */
		if (!(flags & ADDR_ALLOW_NULL))
			return ADDR_ERR_NULL_NOT_ALLOWED;
		out->is_null = true;
		p.pos++;
		e = ADDR_OK;
	} else {
		e = addr_path(&p, out);
	}
	if (e != ADDR_OK) {
		memset(out, 0, sizeof *out);
		return e;
	}
	if (consumed)
		*consumed = p.pos;
	return ADDR_OK;
}

const char *
smtp_addr_strerror(enum addr_err e)
{
	switch (e) {
	case ADDR_OK:
		return "ok";
	case ADDR_ERR_SYNTAX:
		return "bad address syntax";
	case ADDR_ERR_NO_BRACKETS:
		return "address must be in angle brackets";
	case ADDR_ERR_LOCAL_LONG:
		return "local part longer than 64 octets";
	case ADDR_ERR_DOMAIN_LONG:
		return "domain longer than 255 octets";
	case ADDR_ERR_PATH_LONG:
		return "path longer than 256 octets";
	case ADDR_ERR_DOMAIN:
		return "bad domain or address literal";
	case ADDR_ERR_UTF8:
		return "non-ASCII address without SMTPUTF8";
	case ADDR_ERR_NULL_NOT_ALLOWED:
		return "null path not allowed here";
	}
	return "unknown address error";
}

const char *
smtp_path_domain(const struct smtp_path *path)
{
	return path->at < path->len ? path->addr + path->at + 1
				    : path->addr + path->len;
}

bool
smtp_path_has_routing(const struct smtp_path *path)
{
	for (size_t i = 0; i < path->at && i < path->len; i++) {
		char c = path->addr[i];
		if (c == '%' || c == '!' || c == '@')
			return true;
	}
	return false;
}

bool
smtp_domain_equal(const char *a, const char *b)
{
	if (!a || !b)
		return false;
	size_t na = strlen(a), nb = strlen(b);
	if (na > 0 && a[na - 1] == '.')
		na--;
	if (nb > 0 && b[nb - 1] == '.')
		nb--;
	return na == nb && addr_caseeq(a, b, na);
}

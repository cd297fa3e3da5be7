/*
 * fuzz_smtp_addr: libFuzzer target for smtp_path_parse() (with every
 * flag combination) and the MAIL/RCPT parameter parsers on what follows
 * the path. Input is copied to an exact-size heap buffer so a read past
 * len is caught by ASan in the replay build too. Any broken invariant
 * aborts:
 *   consumed <= size, at <= len <= SMTP_PATH_MAX, addr NUL-terminated at
 *   len; an accepted path is "<...>" of at most 256 octets, respects the
 *   local/domain limits, needed the flags its result claims, stays
 *   accepted (the same) with more flags and parses back from "<addr>";
 *   a failed parse leaves an empty result; *bad is NULL exactly on
 *   success and otherwise points at a keyword inside the list.
 */
#include "smtp_addr.h"
#include "smtp_param.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_ALL_FLAGS                                                         \
	(ADDR_ALLOW_NULL | ADDR_ALLOW_POSTMASTER | ADDR_ALLOW_UTF8)

static void
fuzz_assert(int ok)
{
	if (!ok)
		abort();
}

static int
fuzz_has_high(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 1;
	return 0;
}

/* Checks that hold for any result. */
static void
fuzz_check_any(const struct smtp_path *p, enum addr_err e, size_t used,
	       size_t size)
{
	fuzz_assert(used <= size);
	fuzz_assert(p->len <= SMTP_PATH_MAX);
	fuzz_assert(p->at <= p->len);
	fuzz_assert(p->addr[p->len] == '\0');
	fuzz_assert(strlen(p->addr) == p->len);
	fuzz_assert(smtp_addr_strerror(e) != NULL);
	if (e != ADDR_OK) {
		fuzz_assert(used == 0 && p->len == 0 && p->at == 0);
		fuzz_assert(!p->is_null && !p->is_postmaster && !p->quoted &&
			    !p->literal && !p->utf8);
	}
}

/* "<" addr ">" parses back to the same mailbox. */
static void
fuzz_round_trip(const struct smtp_path *p, unsigned flags)
{
	char buf[SMTP_PATH_MAX + 2];
	struct smtp_path q;
	size_t used;

	buf[0] = '<';
	memcpy(buf + 1, p->addr, p->len);
	buf[p->len + 1] = '>';
	fuzz_assert(smtp_path_parse(buf, p->len + 2, flags, &q, &used) ==
		    ADDR_OK);
	fuzz_assert(used == p->len + 2 && q.len == p->len && q.at == p->at);
	fuzz_assert(memcmp(q.addr, p->addr, p->len) == 0);
	fuzz_assert(q.quoted == p->quoted && q.literal == p->literal &&
		    q.utf8 == p->utf8);
}

/*
 * An accepted domain never ends in a dot, equals itself, itself with a
 * trailing dot and itself upper-cased, but not itself with two dots.
 */
static void
fuzz_check_domain(const char *d)
{
	char buf[SMTP_DOMAIN_MAX + 3];
	size_t n = strlen(d);

	fuzz_assert(n > 0 && n <= SMTP_DOMAIN_MAX && d[n - 1] != '.');
	fuzz_assert(smtp_domain_equal(d, d));
	memcpy(buf, d, n);
	buf[n] = '.';
	buf[n + 1] = '\0';
	fuzz_assert(smtp_domain_equal(d, buf) && smtp_domain_equal(buf, d));
	buf[n + 1] = '.';
	buf[n + 2] = '\0';
	fuzz_assert(!smtp_domain_equal(d, buf));
	for (size_t i = 0; i < n; i++)
		if (buf[i] >= 'a' && buf[i] <= 'z')
			buf[i] = (char)(buf[i] - 'a' + 'A');
	buf[n] = '\0';
	fuzz_assert(smtp_domain_equal(d, buf));
}

/* Checks for an accepted path. */
static void
fuzz_check_ok(const char *s, const struct smtp_path *p, unsigned flags,
	      size_t used)
{
	fuzz_assert(used >= 2 && used <= SMTP_PATH_MAX);
	fuzz_assert(s[0] == '<' && s[used - 1] == '>');
	fuzz_assert(p->utf8 == fuzz_has_high(p->addr, p->len));
	fuzz_assert(!p->utf8 || (flags & ADDR_ALLOW_UTF8));
	if (!(flags & ADDR_ALLOW_UTF8))
		fuzz_assert(!fuzz_has_high(s, used));
	fuzz_assert(!smtp_path_has_routing(p) || p->at > 0);
	if (p->is_null) {
		fuzz_assert((flags & ADDR_ALLOW_NULL) && p->len == 0 &&
			    used == 2 && !p->is_postmaster);
		return;
	}
	if (p->is_postmaster) {
		fuzz_assert((flags & ADDR_ALLOW_POSTMASTER) &&
			    strcmp(p->addr, "postmaster") == 0);
		fuzz_assert(!smtp_path_has_routing(p));
		fuzz_assert(smtp_path_domain(p)[0] == '\0');
		return;
	}
	fuzz_assert(p->at > 0 && p->at < p->len && p->addr[p->at] == '@');
	fuzz_assert(p->at <= SMTP_LOCAL_MAX);
	fuzz_assert(p->len - p->at - 1 <= SMTP_DOMAIN_MAX);
	fuzz_assert(smtp_path_domain(p) == p->addr + p->at + 1);
	fuzz_check_domain(smtp_path_domain(p));
	fuzz_assert(p->quoted == (p->addr[0] == '"'));
	if (p->literal)
		fuzz_assert(p->addr[p->at + 1] == '[' &&
			    p->addr[p->len - 1] == ']');
	fuzz_round_trip(p, flags);
}

static size_t
fuzz_paths(const char *s, size_t size)
{
	struct smtp_path p, all;
	size_t used, all_used;
	enum addr_err all_e;

	all_e = smtp_path_parse(s, size, FUZZ_ALL_FLAGS, &all, &all_used);
	fuzz_check_any(&all, all_e, all_used, size);
	for (unsigned flags = 0; flags <= FUZZ_ALL_FLAGS; flags++) {
		enum addr_err e = smtp_path_parse(s, size, flags, &p, &used);
		fuzz_check_any(&p, e, used, size);
		if (e == ADDR_ERR_UTF8)
			fuzz_assert(!(flags & ADDR_ALLOW_UTF8));
		if (e == ADDR_ERR_NULL_NOT_ALLOWED)
			fuzz_assert(!(flags & ADDR_ALLOW_NULL));
		if (e != ADDR_OK)
			continue;
		fuzz_check_ok(s, &p, flags, used);
		/* more flags never turn an accepted path down or change it */
		fuzz_assert(all_e == ADDR_OK && all_used == used);
		fuzz_assert(all.len == p.len && all.at == p.at &&
			    memcmp(all.addr, p.addr, p.len) == 0);
	}
	return all_used;
}

static void
fuzz_params(const char *s, size_t len)
{
	struct mail_params mp;
	const char *mbad = s, *rbad = s;
	enum param_err me = smtp_mail_params(s, len, &mp, &mbad);
	enum param_err re = smtp_rcpt_params(s, len, &rbad);
	size_t spaces = 0;

	while (spaces < len && s[spaces] == ' ')
		spaces++;
	fuzz_assert(smtp_param_strerror(me) != NULL);
	fuzz_assert(smtp_body_name(mp.body) != NULL);
	fuzz_assert((me == PARAM_OK) == (mbad == NULL));
	fuzz_assert((re == PARAM_OK) == (rbad == NULL));
	if (mbad)
		fuzz_assert(mbad >= s && mbad < s + len && *mbad != ' ');
	if (rbad)
		fuzz_assert(rbad >= s && rbad < s + len && *rbad != ' ');
	/* both share one grammar */
	fuzz_assert((me == PARAM_ERR_SYNTAX) == (re == PARAM_ERR_SYNTAX));
	if (re == PARAM_ERR_SYNTAX)
		fuzz_assert(mbad == rbad);
	else
		fuzz_assert(re ==
			    (spaces == len ? PARAM_OK : PARAM_ERR_UNKNOWN));
	if (me != PARAM_OK)
		fuzz_assert(!mp.has_size && mp.size == 0 &&
			    mp.body == BODY_NONE && !mp.smtputf8);
	else
		fuzz_assert(mp.body == BODY_NONE || mp.body == BODY_7BIT ||
			    mp.body == BODY_8BITMIME);
	if (spaces == len)
		fuzz_assert(me == PARAM_OK && !mp.has_size && !mp.smtputf8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size ? size : 1);

	if (!s)
		return 0;
	if (size)
		memcpy(s, data, size);
	size_t used = fuzz_paths(s, size);
	fuzz_params(s + used, size - used);
	free(s);
	return 0;
}

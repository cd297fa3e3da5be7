/*
 * mx: MX policy (see mx.h). No allocation: records[] is only read, out[]
 * (MX_LIST_MAX entries) is the only output.
 *
 * A record is usable when its name, lower-cased and without its trailing
 * dot, is neither empty (the root, ".") nor longer than MX_HOST_MAX. Of
 * several records naming the same host only the first with the lowest
 * preference counts. Preference levels are taken in ascending order; the
 * hosts of one level fill out[] in random order, and when a level has
 * more hosts than places left a uniformly random subset of them gets the
 * places, so truncation favours no host of that level. Only the first
 * MX_RECORDS_MAX records of an answer are looked at.
 */
#include "mx.h"

#include <string.h>

/*
 * Records of one answer looked at; the rest are ignored. Real domains
 * publish a handful; this bounds the O(n^2) duplicate check against a
 * hostile answer (a 64 KiB DNS message can hold thousands).
 */
#define MX_RECORDS_MAX 256

/* Length of a name without its trailing dot. */
static size_t
mx_name_len(const char *s)
{
	size_t n = strnlen(s, MX_HOST_MAX + 1);

	return (n > 0 && s[n - 1] == '.') ? n - 1 : n;
}

/*
 * Normalised name of s into out (MX_HOST_MAX + 1 octets): lower case, one
 * trailing dot removed. False when s is not terminated within
 * MX_HOST_MAX + 1 octets.
 */
static bool
mx_normalise(const char *s, char *out)
{
	if (strnlen(s, MX_HOST_MAX + 1) > MX_HOST_MAX)
		return false;
	size_t n = mx_name_len(s);
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	out[n] = '\0';
	return true;
}

/*
 * Two usable names are the same host: equal ignoring ASCII case and a
 * trailing dot (RFC 1035 2.3.3), i.e. their normalised forms are equal.
 */
static bool
mx_same_host(const char *a, const char *b)
{
	size_t n = mx_name_len(a);

	if (n != mx_name_len(b))
		return false;
	for (size_t i = 0; i < n; i++) {
		char x = a[i], y = b[i];
		if (x >= 'A' && x <= 'Z')
			x = (char)(x - 'A' + 'a');
		if (y >= 'A' && y <= 'Z')
			y = (char)(y - 'A' + 'a');
		if (x != y)
			return false;
	}
	return true;
}

/* The record is a usable host (not the root, not too long). */
static bool
mx_usable(const struct mx_host *r)
{
	char n[MX_HOST_MAX + 1];

	return mx_normalise(r->name, n) && n[0] != '\0';
}

/*
 * counts[i]: record i is usable and no record of the same host comes
 * before it with the same preference or has a lower one.
 */
static void
mx_mark(const struct mx_host *records, size_t n, bool *counts)
{
	bool usable[MX_RECORDS_MAX];

	for (size_t i = 0; i < n; i++)
		usable[i] = mx_usable(&records[i]);
	for (size_t i = 0; i < n; i++) {
		counts[i] = usable[i];
		for (size_t j = 0; j < n && counts[i]; j++) {
			if (j == i || !usable[j] ||
			    records[j].pref > records[i].pref ||
			    (records[j].pref == records[i].pref && j > i))
				continue;
			if (mx_same_host(records[j].name, records[i].name))
				counts[i] = false;
		}
	}
}

/*
 * The lowest preference above *pref (any, when first) among the records
 * that count, and how many count with it.
 */
static size_t
mx_next_level(const struct mx_host *records, size_t n, const bool *counts,
	      bool first, unsigned *pref)
{
	size_t k = 0;
	unsigned best = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned p = records[i].pref;
		if (!counts[i] || (!first && p <= *pref) || (k && p > best))
			continue;
		k = (k && p == best) ? k + 1 : 1;
		best = p;
	}
	*pref = best;
	return k;
}

static size_t
mx_random(mx_rand_fn *rnd, void *arg, size_t below)
{
	return rnd ? (size_t)rnd(arg) % below : 0;
}

/*
 * Appends the k hosts of one preference level to out, room places left.
 * Selection sampling (Knuth, TAOCP 3.4.2, algorithm S) picks which when
 * they do not all fit; a Fisher-Yates shuffle orders them. Without rnd
 * the first ones are taken in record order.
 */
static size_t
mx_add_level(const struct mx_host *records, size_t n, const bool *counts,
	     unsigned pref, size_t k, size_t room, mx_rand_fn *rnd, void *arg,
	     struct mx_host *out)
{
	size_t seen = 0, taken = 0;

	for (size_t i = 0; i < n && taken < room; i++) {
		if (!counts[i] || records[i].pref != pref)
			continue;
		size_t left = k - seen++;
		if (rnd && mx_random(rnd, arg, left) >= room - taken)
			continue;
		mx_normalise(records[i].name, out[taken].name);
		out[taken].pref = pref;
		taken++;
	}
	for (size_t i = taken; rnd && i > 1; i--) {
		size_t j = mx_random(rnd, arg, i);
		struct mx_host t = out[i - 1];
		out[i - 1] = out[j];
		out[j] = t;
	}
	return taken;
}

/* RFC 5321 5.1: no MX records, the domain itself is the host. */
static enum mx_result
mx_implicit(const char *domain, struct mx_host *out, size_t *nout)
{
	if (!mx_normalise(domain, out[0].name) || out[0].name[0] == '\0')
		return MX_NONE;
	out[0].pref = 0;
	*nout = 1;
	return MX_OK;
}

/*
 * RFC 7505 3: a null MX is a lone "0 ." record. Records that all name
 * the root are read the same way (the domain names no host at all); a
 * root record next to real hosts is just an unusable one (RFC 7505 says
 * a domain must not publish both; we use the hosts).
 */
static bool
mx_is_null(const struct mx_host *records, size_t n)
{
	char name[MX_HOST_MAX + 1];

	for (size_t i = 0; i < n; i++)
		if (!mx_normalise(records[i].name, name) || name[0] != '\0')
			return false;
	return true;
}

enum mx_result
mx_order(const char *domain, const struct mx_host *records, size_t n,
	 mx_rand_fn *rnd, void *rnd_arg, struct mx_host *out, size_t *nout)
{
	bool counts[MX_RECORDS_MAX];
	unsigned pref = 0;
	size_t k;

	*nout = 0;
	if (n == 0)
		return mx_implicit(domain, out, nout);
	if (n > MX_RECORDS_MAX)
		n = MX_RECORDS_MAX;
	if (mx_is_null(records, n))
		return MX_NULL;
	mx_mark(records, n, counts);
	for (bool first = true; *nout < MX_LIST_MAX; first = false) {
		k = mx_next_level(records, n, counts, first, &pref);
		if (k == 0)
			break;
		*nout += mx_add_level(records, n, counts, pref, k,
				      MX_LIST_MAX - *nout, rnd, rnd_arg,
				      out + *nout);
	}
	return *nout ? MX_OK : MX_NONE;
}

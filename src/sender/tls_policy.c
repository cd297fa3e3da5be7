/*
 * tls_policy: see tls_policy.h. One pass over the map per lookup: the
 * map is small (CONFIG_TABLE_MAX at most) and a lookup happens once per
 * recipient domain of a message, not per byte.
 */
#include "tls_policy.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define TLS_POLICY_NAME_MAX 253 /* RFC 1035 2.3.4, without the root dot */
#define TLS_POLICY_LABEL_MAX 63

const char *const tls_level_names[] = {"none", "may", "encrypt", "verify",
				       NULL};

const struct config_field tls_policy_fields[] = {
    {"domain", NULL, tls_policy_check_name},
    {"level", tls_level_names, NULL},
    {NULL, NULL, NULL},
};

static bool
tls_policy_ldh(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '-';
}

/* RFC 1123 2.1 host name syntax; the reason, or NULL when it is one. */
static const char *
tls_policy_bad_domain(const char *d)
{
	size_t len = strlen(d), label = 0;

	if (len == 0)
		return "is empty";
	if (len > TLS_POLICY_NAME_MAX)
		return "is longer than 253 octets";
	if (d[len - 1] == '.')
		return "ends with a dot";
	for (size_t i = 0; i <= len; i++) {
		if (d[i] == '.' || d[i] == '\0') {
			if (label == 0)
				return "has an empty label";
			if (d[i - 1] == '-')
				return "has a label ending with '-'";
			label = 0;
			continue;
		}
		if (!tls_policy_ldh(d[i]))
			return "holds a character other than letters, digits, "
			       "'-' and '.'";
		if (label == 0 && d[i] == '-')
			return "has a label starting with '-'";
		if (++label > TLS_POLICY_LABEL_MAX)
			return "has a label longer than 63 octets";
	}
	return NULL;
}

int
tls_policy_check_name(const char *name, char *msg, size_t cap)
{
	const char *why =
	    tls_policy_bad_domain(name[0] == '.' ? name + 1 : name);
	if (!why)
		return 0;
	/* Shown with %.80s: a message stays readable for any length. */
	snprintf(msg, cap,
		 "'%.80s' is not a domain name: it %s (write example.com, or "
		 ".example.com for the domains under it)",
		 name, name[0] == '\0' ? "is empty" : why);
	return -1;
}

long
tls_policy_find(const struct config_table *policy, const char *domain)
{
	size_t dlen = strlen(domain), best_len = 0;
	long best = -1;

	if (dlen > 0 && domain[dlen - 1] == '.')
		dlen--; /* RFC 1035 2.3.3: "example.com." is example.com */
	for (size_t r = 0; r < policy->rows; r++) {
		const char *name = config_cell(policy, r, 0);
		size_t nlen = strlen(name);
		if (name[0] != '.') {
			if (nlen == dlen &&
			    strncasecmp(name, domain, dlen) == 0)
				return (long)r; /* an exact entry beats all */
			continue;
		}
		/* ".example.com" names the domains under example.com: the
		 * domain is longer and ends with it, dot included. */
		if (nlen < dlen && nlen > best_len &&
		    strncasecmp(name, domain + dlen - nlen, nlen) == 0) {
			best = (long)r;
			best_len = nlen;
		}
	}
	return best;
}

/* The index of a level name (config_load() stored the canonical one). */
static enum tls_level
tls_policy_level_of(const char *name, enum tls_level dflt)
{
	for (size_t i = 0; tls_level_names[i]; i++)
		if (strcasecmp(name, tls_level_names[i]) == 0)
			return (enum tls_level)i;
	return dflt;
}

enum tls_level
tls_policy_level(const struct config_table *policy, const char *domain,
		 enum tls_level dflt, const char **rule)
{
	long r = tls_policy_find(policy, domain);

	if (rule)
		*rule = r < 0 ? NULL : config_cell(policy, (size_t)r, 0);
	if (r < 0)
		return dflt;
	return tls_policy_level_of(config_cell(policy, (size_t)r, 1), dflt);
}

enum tls_level
tls_policy_max(const struct config_table *policy, enum tls_level dflt)
{
	enum tls_level max = dflt;

	for (size_t r = 0; r < policy->rows; r++) {
		enum tls_level l =
		    tls_policy_level_of(config_cell(policy, r, 1), dflt);
		if (l > max)
			max = l;
	}
	return max;
}

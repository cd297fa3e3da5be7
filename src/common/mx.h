/*
 * mx: MX policy (RFC 5321 5.1, RFC 7505), separate from the DNS glue.
 * Pure functions over lists of hosts.
 */
#ifndef MTA_MX_H
#define MTA_MX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MX_HOST_MAX 255 /* a domain name */
#define MX_LIST_MAX 16	/* MX hosts kept per domain */

struct mx_host {
	char name[MX_HOST_MAX + 1]; /* lower case, no trailing dot */
	unsigned pref;
};

enum mx_result {
	MX_OK,	 /* hosts[] filled, best first */
	MX_NULL, /* RFC 7505 null MX: the domain takes no mail (5.1.10) */
	MX_NONE, /* no usable host */
};

/* Random source for ordering equal preferences; tests pass a fixed one. */
typedef uint32_t mx_rand_fn(void *arg);

/*
 * Orders the records of one MX answer into *out (at most MX_LIST_MAX):
 * ascending preference, equal preferences in random order, duplicates
 * removed. A single record "0 ." (empty name) is a null MX. With no
 * records at all (NODATA) the domain itself is the host (implicit MX,
 * RFC 5321 5.1), preference 0. Names are lower-cased, trailing dot
 * removed.
 */
enum mx_result mx_order(const char *domain, const struct mx_host *records,
			size_t n, mx_rand_fn *rnd, void *rnd_arg,
			struct mx_host *out, size_t *nout);

#endif

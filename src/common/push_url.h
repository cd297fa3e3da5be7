/*
 * push_url (private to push.c): checking and splitting push and ping
 * URLs, the Pushgateway grouping path (job and instance labels) and the
 * CURLOPT_RESOLVE entry for a looked-up host. Pure: no loop, no logs.
 * push_check_url(), push_check_host() and push_curl_resolves() (push.h)
 * live here too.
 */
#ifndef MTA_PUSH_URL_H
#define MTA_PUSH_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "push.h"

struct push_url_parts {
	char scheme[16];
	char host[256]; /* without [] */
	long port;	/* the scheme's default when the URL has none */
	bool numeric;	/* an IPv4 or IPv6 address, nothing to look up */
	char full[PUSH_URL_MAX];  /* normalised, trailing '/' removed */
	char shown[PUSH_URL_MAX]; /* the same without credentials */
};

/*
 * Splits url: http:// or https:// with a host, no query or fragment,
 * at most PUSH_URL_MAX / 2 bytes once normalised. Returns 0, or -1 with
 * msg saying what is wrong (without repeating the URL, which may hold a
 * password).
 */
int push_url_parse(const char *url, struct push_url_parts *, char *msg,
		   size_t cap);

/*
 * Appends "/label/value" to url, the value percent-encoded (RFC 3986
 * unreserved bytes kept), or "/label@base64/<base64url>" when the value
 * is empty or holds a '/' (Pushgateway API). -1 when it does not fit.
 */
int push_url_append_label(char *url, size_t cap, const char *label,
			  const char *value);

/*
 * "host:port:addr[,addr...]" for CURLOPT_RESOLVE from up to
 * PUSH_RESOLVE_ADDRS IPv4/IPv6 addresses (ports ignored; IPv6 in []).
 * Returns 0, or -1 (and "" in s) when no address fits.
 */
int push_url_resolve_entry(char *s, size_t cap, const char *host, long port,
			   const struct sockaddr_storage *addrs, size_t n);

#endif

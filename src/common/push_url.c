/*
 * push_url (private to push.c): the URL side of the pusher, pure
 * functions over strings: checking and splitting push and ping URLs
 * (with libcurl's URL parser, so we accept what libcurl will use), the
 * Pushgateway grouping path, and CURLOPT_RESOLVE entries.
 */
#include "push_url.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool
push_curl_resolves(void)
{
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	return v && v->ares != NULL && (v->features & CURL_VERSION_ASYNCHDNS);
}

/* Copies a URL part; -1 when missing or too long. */
static int
url_get(CURLU *u, CURLUPart what, unsigned flags, char *dst, size_t cap)
{
	char *s = NULL;
	if (curl_url_get(u, what, &s, flags) != CURLUE_OK)
		return -1;
	int n = snprintf(dst, cap, "%s", s);
	curl_free(s);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static void
strip_slashes(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && s[n - 1] == '/')
		s[--n] = '\0';
}

static bool
host_numeric(const char *host)
{
	unsigned char a[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, host, a) == 1 ||
	       inet_pton(AF_INET6, host, a) == 1;
}

int
push_url_parse(const char *url, struct push_url_parts *out, char *msg,
	       size_t cap)
{
	char *q = NULL, *f = NULL;
	char port[16];
	CURLU *u = curl_url();
	int rc = -1;

	memset(out, 0, sizeof *out);
	if (!u) {
		snprintf(msg, cap, "out of memory");
		return -1;
	}
	/* any scheme parses, so ours is the check that speaks (a minimal
	 * libcurl would otherwise refuse ftp:// with its own words) */
	CURLUcode uc =
	    curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
	if (uc != CURLUE_OK) {
		snprintf(msg, cap, "not a URL (%s)", curl_url_strerror(uc));
		goto out;
	}
	if (url_get(u, CURLUPART_SCHEME, 0, out->scheme, sizeof out->scheme) ||
	    (strcmp(out->scheme, "http") && strcmp(out->scheme, "https"))) {
		snprintf(msg, cap, "must start with http:// or https://");
		goto out;
	}
	(void)curl_url_get(u, CURLUPART_QUERY, &q, 0);
	(void)curl_url_get(u, CURLUPART_FRAGMENT, &f, 0);
	if (q || f) {
		snprintf(msg, cap, "must not have a query (?) or fragment (#)");
		goto out;
	}
	if (url_get(u, CURLUPART_HOST, 0, out->host, sizeof out->host) ||
	    url_get(u, CURLUPART_PORT, CURLU_DEFAULT_PORT, port, sizeof port) ||
	    url_get(u, CURLUPART_URL, 0, out->full, sizeof out->full / 2)) {
		snprintf(msg, cap, "host, port or length not usable");
		goto out;
	}
	size_t hl = strlen(out->host);
	if (hl >= 2 && out->host[0] == '[' && out->host[hl - 1] == ']') {
		memmove(out->host, out->host + 1, hl - 2);
		out->host[hl - 2] = '\0';
	}
	out->port = strtol(port, NULL, 10);
	out->numeric = host_numeric(out->host);
	strip_slashes(out->full);
	(void)curl_url_set(u, CURLUPART_USER, NULL, 0);
	(void)curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
	(void)curl_url_set(u, CURLUPART_OPTIONS, NULL, 0);
	if (url_get(u, CURLUPART_URL, 0, out->shown, sizeof out->shown) == 0)
		strip_slashes(out->shown);
	rc = 0;
out:
	curl_free(q);
	curl_free(f);
	curl_url_cleanup(u);
	return rc;
}

int
push_check_url(const char *url, char *msg, size_t cap)
{
	struct push_url_parts parts;
	if (!url || !url[0])
		return 0;
	return push_url_parse(url, &parts, msg, cap);
}

int
push_check_host(const char *url, bool have_resolver, char *msg, size_t cap)
{
	struct push_url_parts parts;
	if (!url || !url[0])
		return 0;
	if (push_url_parse(url, &parts, msg, cap) != 0)
		return -1;
	if (parts.numeric || have_resolver || push_curl_resolves())
		return 0;
	snprintf(msg, cap,
		 "host '%s' is a name; here only a libcurl built with "
		 "c-ares may look names up (no resolver thread), so use a "
		 "numeric address (e.g. 127.0.0.1 or [::1])",
		 parts.host);
	return -1;
}

/* Pushgateway base64url for values with '/' (or empty). */
static size_t
base64url(char *dst, size_t cap, const char *s)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789-_";
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strlen(s), o = 0;

	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)u[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)u[i + 1] << 8;
		if (i + 2 < n)
			v |= u[i + 2];
		if (o + 4 >= cap)
			return 0;
		dst[o++] = tab[(v >> 18) & 63];
		dst[o++] = tab[(v >> 12) & 63];
		dst[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		dst[o++] = i + 2 < n ? tab[v & 63] : '=';
	}
	if (n == 0 && cap > 1)
		dst[o++] = '='; /* the Pushgateway's spelling of "" */
	dst[o] = '\0';
	return o;
}

int
push_url_append_label(char *url, size_t cap, const char *label,
		      const char *value)
{
	size_t len = strlen(url);
	char enc[PUSH_URL_MAX];
	size_t o = 0;

	if (!value[0] || strchr(value, '/')) {
		if (base64url(enc, sizeof enc, value) == 0)
			return -1;
		int n =
		    snprintf(url + len, cap - len, "/%s@base64/%s", label, enc);
		return n < 0 || (size_t)n >= cap - len ? -1 : 0;
	}
	for (const unsigned char *s = (const unsigned char *)value; *s; s++) {
		if (o + 4 >= sizeof enc)
			return -1;
		if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || strchr("-._~", *s))
			enc[o++] = (char)*s;
		else
			o += (size_t)snprintf(enc + o, 4, "%%%02X", *s);
	}
	enc[o] = '\0';
	int n = snprintf(url + len, cap - len, "/%s/%s", label, enc);
	return n < 0 || (size_t)n >= cap - len ? -1 : 0;
}

/* "host:port:addr,addr" for CURLOPT_RESOLVE; -1 when none fits. */
int
push_url_resolve_entry(char *s, size_t cap, const char *host, long port,
		       const struct sockaddr_storage *a, size_t n)
{
	size_t used = 0, added = 0;
	int w = snprintf(s, cap, "%s:%ld:", host, port);
	if (w < 0 || (size_t)w >= cap)
		return -1;
	used = (size_t)w;
	for (size_t i = 0; i < n && added < PUSH_RESOLVE_ADDRS; i++) {
		char ip[INET6_ADDRSTRLEN];
		const void *src;
		if (a[i].ss_family == AF_INET)
			src = &((const struct sockaddr_in *)&a[i])->sin_addr;
		else if (a[i].ss_family == AF_INET6)
			src = &((const struct sockaddr_in6 *)&a[i])->sin6_addr;
		else
			continue;
		if (!inet_ntop(a[i].ss_family, src, ip, sizeof ip))
			continue;
		bool v6 = a[i].ss_family == AF_INET6;
		w = snprintf(s + used, cap - used, "%s%s%s%s", added ? "," : "",
			     v6 ? "[" : "", ip, v6 ? "]" : "");
		if (w < 0 || (size_t)w >= cap - used)
			break;
		used += (size_t)w;
		added++;
	}
	if (added == 0) {
		s[0] = '\0';
		return -1;
	}
	return 0;
}

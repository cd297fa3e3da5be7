/*
 * push_dns: lets the pusher resolve its hosts through the program's own
 * c-ares channel (struct dns, driven by the loop), so libcurl never
 * starts a resolver thread.
 */
#ifndef MTA_PUSH_DNS_H
#define MTA_PUSH_DNS_H

#include "push.h"

/* A push_resolve_fn over a struct dns *: pass it with that dns as the
 * resolver in struct push_opts. */
int push_dns_lookup(void *dns, const char *host, struct push_lookup *token);

#endif

/*
 * tls_policy: the TLS level tls.policy gives a recipient domain, as
 * Postfix's smtp_tls_policy_maps does: "example.com" names that domain
 * only, ".example.com" every domain under it (not example.com itself).
 * An exact entry beats a dot entry, a longer dot entry a shorter one;
 * a domain no entry names gets tls.mode. Names match ignoring ASCII case
 * and a trailing dot. Pure functions over the map config_load() read.
 */
#ifndef MTA_TLS_POLICY_H
#define MTA_TLS_POLICY_H

#include <stddef.h>

#include "config.h"

/* Levels, weakest first (tls.mode and the values of tls.policy). */
enum tls_level {
	TLS_LEVEL_NONE,	   /* never STARTTLS */
	TLS_LEVEL_MAY,	   /* STARTTLS when offered, unverified */
	TLS_LEVEL_ENCRYPT, /* TLS required, unverified */
	TLS_LEVEL_VERIFY,  /* TLS required, chain and host name checked */
};

/* "none", "may", "encrypt", "verify", NULL: indexed by enum tls_level. */
extern const char *const tls_level_names[];

/* The columns of tls.policy: a name checked by tls_policy_check_name,
 * and a level. */
extern const struct config_field tls_policy_fields[];

/*
 * A tls.policy name: a domain name ("example.com"), or a dot and one
 * (".example.com"), in ASCII (A-labels for international names): labels
 * of letters, digits and inner hyphens, 1 to 63 octets, 253 in all, no
 * trailing dot. 0, or -1 with a message in msg.
 */
int tls_policy_check_name(const char *name, char *msg, size_t cap);

/*
 * The row of policy (2 columns: name, level) that applies to domain, or
 * -1 when none does.
 */
long tls_policy_find(const struct config_table *policy, const char *domain);

/*
 * The level for domain: its entry's, else dflt. *rule (when not NULL)
 * gets the entry's name, or NULL when dflt applied.
 */
enum tls_level tls_policy_level(const struct config_table *policy,
				const char *domain, enum tls_level dflt,
				const char **rule);

/* The strictest level of dflt and every entry (what start-up must load
 * for: a CA bundle as soon as anything verifies). */
enum tls_level tls_policy_max(const struct config_table *policy,
			      enum tls_level dflt);

#endif

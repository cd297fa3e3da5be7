/*
 * health: `smtpd health`, a self-check for container HEALTHCHECKs in an
 * image without a shell: connect to the first listen address that is not
 * implicit TLS (to the first one, through a TLS handshake, when all are),
 * expect a 220 greeting, say QUIT. Runs in its own short-lived process, so
 * plain blocking calls with timeouts are fine here.
 */
#ifndef MTA_HEALTH_H
#define MTA_HEALTH_H

struct smtpd_config;

#define HEALTH_TIMEOUT_MS 5000

/* Returns 0 when healthy, 1 when not (reason on stderr). */
int health_check(const struct smtpd_config *);

#endif

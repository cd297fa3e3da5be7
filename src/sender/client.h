/*
 * client: the SMTP client session of one MX queue (RFC 5321 client side,
 * PIPELINING RFC 2920). It resolves and connects to the queue's hosts in
 * order, then sends every job of the queue through one session, and
 * reports each recipient's outcome to the sender.
 */
#ifndef MTA_CLIENT_H
#define MTA_CLIENT_H

#include <stdbool.h>

struct sender;
struct mxq;
struct client;

/* Opens the queue's session (mxq->client is set). NULL on ENOMEM. */
struct client *client_start(struct sender *, struct mxq *);
/* A job was queued: an idle session starts it now. */
void client_kick(struct client *);
/*
 * Shutdown. Gently: an idle session QUITs, one in a transaction finishes
 * it and then QUITs, one still connecting is dropped. With force: drop it
 * now; recipients without an outcome are deferred.
 */
void client_stop(struct client *, bool force);

#endif

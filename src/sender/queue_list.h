/*
 * queue_list: `sender queue`, what is waiting, like `postqueue -p`.
 * Read-only and safe while senders run: it lists <maildir>/new/ (not yet
 * claimed) and every instance folder under <spool>, with each message's
 * recipients and where each stands according to its journal.
 */
#ifndef MTA_QUEUE_LIST_H
#define MTA_QUEUE_LIST_H

#include <stdbool.h>
#include <stdio.h>

struct sender_config;

/* Prints the queue to out (text, or one JSON object per message).
 * Returns 0, or 1 when a folder cannot be read. */
int queue_list(const struct sender_config *, bool json, FILE *out);

#endif

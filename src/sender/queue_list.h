/*
 * queue_list: `sender queue`, what is waiting, like `postqueue -p`.
 * Read-only and safe while senders run: it lists <maildir>/new/ (not yet
 * claimed) and every instance folder under <spool>, with each message's
 * recipients and where each stands according to its journal.
 *
 * Text: grouped by MX host. A recipient belongs to the host of its last
 * attempt; one never tried belongs to its domain, shown as
 * "example.com (not tried yet)". Under each host header, every message
 * with recipients waiting there, then those recipients:
 *
 *   mx1.test
 *     <queue id>  <size> bytes  <arrival, UTC>  <sender>
 *       folder <folder>, attempts <n>, next try <UTC time | now>
 *       <address>: <waiting|deferred>[, <last reply>]
 *
 * Messages with no recipient waiting (done, their bounce or retirement
 * still to come) come last under "(no recipient waiting)". Times are
 * ISO 8601 UTC ("2026-11-26T06:00:00Z"); "now" when no wait is recorded
 * or it is over. Then a total: "-- 3 messages, 4 recipients waiting".
 *
 * --json: one object per message and line, in folder order:
 *   {"queue_id", "folder", "size", "arrival_time", "sender",
 *    "attempts", "next_try": UTC time or null (no wait recorded or no
 *    recipient deferred),
 *    "recipients": [{"address", "status": "waiting" | "deferred" |
 *                    "sent" | "bounced", "mx", "dsn", "reply"}]}
 * where mx is the host of the recipient's last attempt, and dsn and
 * reply its last failure or deferral (each null when unknown).
 */
#ifndef MTA_QUEUE_LIST_H
#define MTA_QUEUE_LIST_H

#include <stdbool.h>
#include <stdio.h>

struct sender_config;

/* At most this many messages are kept in memory to group the text
 * listing; past it the listing says it is cut (the total still counts
 * all; --json streams and is never cut). */
#define QUEUE_LIST_TEXT_MAX 100000

/* Prints the queue to out (text, or one JSON object per message).
 * Returns 0, or 1 when a folder cannot be read. */
int queue_list(const struct sender_config *, bool json, FILE *out);

#endif

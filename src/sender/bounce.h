/*
 * bounce: the delivery status notification (RFC 3464 multipart/report,
 * RFC 6522) sent to a message's envelope sender for its failed
 * recipients. It is written into <maildir>/new/ like any message, with
 * the null reverse-path, so it goes out the same way; a message whose
 * own sender is <> never gets one (no bounce loops, RFC 5321 4.5.5).
 */
#ifndef MTA_BOUNCE_H
#define MTA_BOUNCE_H

#include <stddef.h>

#include "maildir.h"
#include "message.h"

#define BOUNCE_HEADERS_MAX (64 * 1024) /* original headers quoted, at most */

/*
 * Writes and commits (durably, before returning) the bounce for m's
 * RCPT_FAILED recipients. msg_fd: the original file, for its headers.
 * Returns 0 with the new queue id in qid, or -1 with errno.
 */
int bounce_write(struct maildir *, const char *hostname,
		 const struct message *m, int msg_fd, char *qid, size_t qidlen);

#endif

/*
 * journal: the per-recipient outcomes of a claimed message, appended to
 * "<instance folder>/.<name>.journal" (hidden, so scan never claims it).
 *
 * Each outcome is one line "<recipient index> <S|B|D>\n" (sent, bounced,
 * deferred), written with one write() as it happens, so a killed sender
 * never forgets a delivery it saw; the data is flushed once per loop pass
 * for every journal written in it (group commit). When the instance picks
 * the message up again, replay marks the sent and bounced recipients
 * final, so they are never sent again.
 */
#ifndef MTA_JOURNAL_H
#define MTA_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "message.h"

#define JOURNAL_NAME_MAX (MAILDIR_NAME_MAX + 16)
#define JOURNAL_READ_MAX (16u * 1024 * 1024) /* a longer one is garbage */

/* Journals written since the last journal_sync(). */
struct journal {
	int *dirty;
	size_t count;
	size_t cap;
};

void journal_init(struct journal *);
void journal_fini(struct journal *);

/* Appends recipient i's outcome; opens the journal on first use. */
int journal_append(struct journal *, int dir_fd, struct message *, size_t i,
		   enum rcpt_state);
/* Records that the bounce for m was written (so a restart sends no
 * second one). */
int journal_mark_bounced(struct journal *, int dir_fd, struct message *);
/* Flushes every journal written since the last call. Returns 0, or -1
 * with errno from the first failure (every journal is still tried). */
int journal_sync(struct journal *);
/* Closes m's journal (dropping it from the dirty set). */
void journal_close(struct journal *, struct message *);
/*
 * Applies an existing journal to a freshly loaded message: recipients
 * recorded as sent or bounced become final, and m->attempts becomes the
 * most deferrals any recipient had. Deferred recipients stay
 * RCPT_PENDING (to be tried again) unless show_deferred (listing the
 * queue). Returns how many became final, 0 when there is no journal, -1
 * on a read error.
 */
int journal_replay(int dir_fd, struct message *, bool show_deferred);
/* Closes and removes the journal of a retired message, without the
 * flush journal_close() would do (missing is fine; the set may be NULL
 * when the journal was never written in this run). */
int journal_remove(struct journal *, int dir_fd, struct message *);

#endif

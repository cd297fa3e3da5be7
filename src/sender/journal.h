/*
 * journal: the per-recipient outcomes of a claimed message, appended to
 * "<instance folder>/.<name>.journal" (hidden, so scan never claims it).
 *
 * One line per event. Lines wait in memory until the loop pass ends;
 * then every message with lines gets them in one write() and one flush
 * (group commit), before any session starts its next transaction. A
 * message whose last recipient became final in the same pass is retired
 * instead, and that rename (synced at the same point) is its record:
 * it never gets a journal, so a clean delivery creates no file (no inode
 * to allocate, which is slow on ext4 without a journal shortly after many
 * deletions). A kill before the pass end forgets that pass's outcomes:
 * those messages go again, the duplicates RFC 5321 6.1 accepts.
 *
 *   <idx> S                          recipient idx was delivered
 *   <idx> B <dsn> <mx|-> <reply>     it failed for good
 *   <idx> D <dsn> <mx|-> <reply>     it was deferred
 *   retry <attempts> <next_try_ms>   the message waits (wall clock, ms)
 *   bounce                           its bounce was written
 *
 * mx is the host tried ("-" when none); reply is the server's one-line
 * reply with control characters made spaces, cut so a line stays within
 * JOURNAL_LINE_MAX bytes. Lines "<idx> B" and "<idx> D" without a reason
 * (older journals) still count. When the instance picks the message up
 * again, replay marks the sent and bounced recipients final, so they are
 * never sent again, and restores why, where and when.
 */
#ifndef MTA_JOURNAL_H
#define MTA_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "message.h"

#define JOURNAL_NAME_MAX (MAILDIR_NAME_MAX + 16)
#define JOURNAL_READ_MAX (16u * 1024 * 1024) /* a longer one is garbage */
/* Longest line, LF included; replay ignores a longer one. */
#define JOURNAL_LINE_MAX 600

/* Messages with lines not written yet (each knows its slot). */
struct journal {
	struct message **owed;
	size_t count;
	size_t cap;
	int dir_fd; /* the instance folder the owed journals live in */
};

void journal_init(struct journal *);
void journal_fini(struct journal *);

/* Queues recipient i's outcome for the next journal_sync(). dsn,
 * mx (the host tried, "" when none) and reply say why, for a bounce or
 * `sender queue` after a restart (ignored for RCPT_SENT). */
int journal_append(struct journal *, int dir_fd, struct message *, size_t i,
		   enum rcpt_state, const char *dsn, const char *mx,
		   const char *reply);
/* Records that the bounce for m was written (so a restart sends no
 * second one). */
int journal_mark_bounced(struct journal *, int dir_fd, struct message *);
/* Records that m waits for its next try: attempts so far and when
 * (wall-clock ms), so a restart keeps the wait. */
int journal_mark_retry(struct journal *, int dir_fd, struct message *,
		       unsigned attempts, int64_t next_try_ms);
/* True when lines wait for journal_sync(). */
bool journal_pending(const struct journal *);
/* Called for a message whose lines could not be written (they are
 * dropped; the message itself stays queued). */
typedef void journal_fail_fn(void *arg, struct message *, int err);
/* Writes the waiting lines of every message (one write() each, opening
 * the journal on first use), then flushes them. A message whose lines
 * cannot be written goes to fail. Returns 0, or -1 with errno from the
 * first failed flush (every journal is still tried). */
int journal_sync(struct journal *, journal_fail_fn *, void *arg);
/* Writes and flushes m's waiting lines, then closes its journal. */
void journal_close(struct journal *, struct message *);
/*
 * Applies an existing journal to a freshly loaded message: recipients
 * recorded as sent or bounced become final; each bounced or deferred
 * recipient gets its last reply (message_set_why; a sent one has none)
 * and the MX host of its last attempt that had one (message_set_mx).
 * m->attempts and m->next_try_ms come from the last retry line (without
 * one, attempts is the most deferrals any recipient had); next_try_ms
 * is 0 when there is none, or when outcomes follow it (that wait was
 * over, or cut short by SIGUSR1). Deferred recipients stay
 * RCPT_PENDING (to be tried again) unless show_deferred: then they are
 * RCPT_DEFERRED (and not counted in m->unsettled). Returns how many
 * became final, 0 when there is no journal, -1 on a read error.
 */
int journal_replay(int dir_fd, struct message *, bool show_deferred);
/* Closes and removes the journal of a retired message, dropping its
 * waiting lines (missing is fine, and none is looked for when none was
 * made or replayed; the set may be NULL when nothing was queued). */
int journal_remove(struct journal *, int dir_fd, struct message *);

/*
 * Start-up: removes the journals in dir_fd whose message is gone (a kill
 * between retiring a message and removing its journal leaves one; scan
 * never looks at hidden files, so nothing else would). Syncs the folder
 * when it removed any. Returns how many, or -1 with errno.
 */
int journal_clean_orphans(int dir_fd);

#endif

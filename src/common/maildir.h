/*
 * maildir: durable message files in a Maildir (tmp/ -> new/, cur/).
 *
 * A message is written into tmp/<name>, then committed: its data is made
 * durable, it is renamed into new/<name>, and new/ itself is made durable;
 * only then does the caller's done callback run (and smtpd says 250).
 *
 * Group commit: maildir_commit() only queues the file; maildir_flush()
 * (called once per loop pass) makes every queued file durable with as few
 * flushes as the filesystem allows, renames them all, syncs new/ once and
 * then runs each done callback. A failed file is unlinked from tmp/ and
 * its callback gets the errno; nothing half-written ever reaches new/.
 *
 * Names follow the Maildir convention "<sec>.M<usec>P<pid>Q<n>.<host>";
 * the part before ".<host>" is the queue id.
 */
#ifndef MTA_MAILDIR_H
#define MTA_MAILDIR_H

#include <stddef.h>
#include <stdint.h>

#define MAILDIR_NAME_MAX 255
#define MAILDIR_QUEUE_ID_MAX 64

struct maildir;
struct maildir_file;

/* err is 0 on success, else an errno value. */
typedef void maildir_done_fn(struct maildir_file *, int err, void *arg);

struct maildir_file {
	int fd;				 /* -1 when not open */
	char name[MAILDIR_NAME_MAX + 1]; /* file name inside tmp/ or new/ */
	char queue_id[MAILDIR_QUEUE_ID_MAX + 1];
	uint64_t written; /* bytes written so far */
	/* private to maildir.c: */
	struct maildir_file *next;
	maildir_done_fn *done;
	void *done_arg;
};

/*
 * Opens (creating when missing, mode 0700 for created dirs) path with
 * tmp/, new/ and cur/. host goes into file names (sanitised: '/' and ':'
 * replaced). Returns NULL with err filled.
 */
struct maildir *maildir_open(const char *path, const char *host, char *err,
			     size_t errlen);
/* Pending commits must have been flushed. NULL is a no-op. */
void maildir_close(struct maildir *);
const char *maildir_path(const struct maildir *);

/*
 * Removes files left in tmp/ by an earlier run of this host (names ending
 * in ".<host>"): they never got a 250. Returns how many, or -1.
 */
int maildir_clean_tmp(struct maildir *);

/* Creates tmp/<unique name> (O_EXCL). Returns 0 or -1 with errno. */
int maildir_create(struct maildir *, struct maildir_file *);
/* Writes all of buf (retrying short writes). Returns 0 or -1 with errno. */
int maildir_write(struct maildir_file *, const void *buf, size_t len);
/* Closes and unlinks the tmp file (aborted or rejected message). */
void maildir_abort(struct maildir *, struct maildir_file *);
/* Queues the file for the next maildir_flush(). */
void maildir_commit(struct maildir *, struct maildir_file *,
		    maildir_done_fn *done, void *arg);
/* Number of files waiting for a flush. */
size_t maildir_pending(const struct maildir *);
/*
 * Commits everything queued (see top of file). Each done callback runs
 * exactly once, after the file is either durable in new/ or gone.
 */
void maildir_flush(struct maildir *);

#endif

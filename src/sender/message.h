/*
 * message: one queued message claimed by this sender: its file in the
 * instance's spool folder, its parsed envelope and where each recipient
 * stands. Loading reads only the head of the file; the body is streamed
 * later by the client straight from the file.
 */
#ifndef MTA_MESSAGE_H
#define MTA_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "loop.h"

struct sender;
#include "maildir.h"

enum rcpt_state {
	RCPT_PENDING,  /* not tried yet in this attempt */
	RCPT_SENT,     /* 2xx: final */
	RCPT_DEFERRED, /* 4xx or no connection: tried again later */
	RCPT_FAILED,   /* 5xx or permanent DNS failure: final */
};

struct message {
	char name[MAILDIR_NAME_MAX + 1];	 /* file name in the folder */
	char queue_id[MAILDIR_QUEUE_ID_MAX + 1]; /* name up to ".<host>" */
	struct envelope env;
	enum rcpt_state *state; /* env.nrcpt entries */
	size_t unsettled;	/* recipients still RCPT_PENDING */
	unsigned jobs;		/* queue entries that still refer to it */
	uint64_t size;		/* file size in bytes */
	int64_t queued_ms;	/* wall clock: when smtpd accepted it (mtime) */
	int journal_fd;		/* journal.c's, -1 until lines are written */
	char *jbuf;		/* journal.c's: lines not written yet */
	size_t jlen;
	size_t jcap;
	size_t jslot; /* journal.c's: 1 + index in its owed list, or 0 */
	bool jfile;   /* a journal file may exist (made or replayed) */
	char **why;   /* per recipient "dsn reply" of a failure, or
			 NULL (allocated on the first failure) */
	char **mx;    /* per recipient MX host of its last attempt,
			 as the journal recorded it, or NULL
			 (allocated on the first one) */
	bool bounced; /* the bounce for it has been written */
	/* Waiting to retry deferred recipients (retry.c's): */
	unsigned attempts;   /* delivery attempts that ended deferred */
	int64_t next_try_ms; /* wall clock of the next try, 0: unknown */
	struct loop_timer retry;
	struct sender *retry_owner;
	struct message *next_waiting;
	struct message *prev_waiting;
};

enum message_err {
	MESSAGE_OK,
	MESSAGE_ERR_IO,	       /* errno says why; try again later */
	MESSAGE_ERR_MALFORMED, /* no valid envelope block: set aside */
};

/*
 * Loads dir_fd/name (reading at most ENVELOPE_BLOCK_MAX bytes of its
 * head). On MESSAGE_ERR_MALFORMED, why holds the envelope error text.
 */
enum message_err message_load(int dir_fd, const char *name,
			      struct message **out, char *why, size_t whylen);
void message_free(struct message *);

/* Remembers why recipient i failed ("5.1.1 550 ... no such user"), for
 * the bounce; a NULL dsn forgets it. Returns -1 on ENOMEM (the bounce
 * then says less). */
int message_set_why(struct message *, size_t i, const char *dsn,
		    const char *reply);
/* Remembers the MX host of recipient i's last attempt (for `sender
 * queue`). Returns -1 on ENOMEM. */
int message_set_mx(struct message *, size_t i, const char *mx);

/* Marks recipient i; returns true when that settled the last one. */
bool message_settle(struct message *, size_t i, enum rcpt_state);
/* True when no recipient is RCPT_DEFERRED or RCPT_PENDING. */
bool message_final(const struct message *);

/*
 * Every recipient final: moves dir_fd/name to cur_fd/name + ":2,P" (all
 * delivered) or ":2,PT" (some failed) when keep, else unlinks it. The
 * directories are not synced here: the caller syncs cur/ and dir once for
 * every message retired in a loop pass (a crash before that sync at
 * worst sends the message again, never loses it). Returns 0 or -1.
 */
int message_retire(const struct message *, int dir_fd, int cur_fd, bool keep);
/* Moves dir_fd/name into aside_fd (malformed/), syncing both; 0 or -1. */
int message_set_aside(int dir_fd, const char *name, int aside_fd);

#endif

/*
 * instance_int: the inside of struct instance, shared by instance.c (the
 * own folder: lock, heartbeat, timer) and instance_adopt.c (adopting the
 * folders of dead senders). Nothing else includes this.
 */
#ifndef MTA_INSTANCE_INT_H
#define MTA_INSTANCE_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "instance.h"
#include "log.h"
#include "loop.h"

struct instance {
	struct loop *loop;
	struct logger *log;
	char name[NAME_MAX + 1];
	int spool_fd; /* our dup */
	int dir_fd;   /* own folder, flock'ed */
	int beat_fd;  /* own .heartbeat */
	uint64_t orphan_after;
	struct loop_timer timer;
	instance_claim_fn *fn;
	instance_lost_fn *lost_fn;
	void *arg;
	bool adopting;
	bool leftover;	      /* an .adopted.* folder is not finished */
	bool warned_leftover; /* logged why once (until the next start) */
	bool lost;
	char noted[INSTANCE_NOTED_MAX][NAME_MAX + 1]; /* locked orphans */
	size_t nnoted;
};

/* 1 when fd is still the folder at spool/name, 0 when not (gone or
 * replaced), -1 on another error. */
int instance_at_path(int spool_fd, const char *name, int fd, int flags);

/* instance_adopt.c */
/* Finishes every .adopted.* folder inside the own folder; claim: hand
 * each message to the claim callback. */
void instance_finish_all(struct instance *, bool claim);
/* Looks at every sibling folder once, adopting the orphaned ones. */
void instance_sweep(struct instance *, bool claim);

#endif

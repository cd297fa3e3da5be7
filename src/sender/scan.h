/*
 * scan: finds new mail and claims it. Watches <maildir>/new/ with inotify
 * (when the filesystem supports it) and also scans it every scan_interval
 * and once at start. A message is claimed by an atomic rename() from new/
 * into this instance's spool folder, so any number of senders can share
 * one volume: ENOENT means another instance won the race.
 *
 * Files already in the instance folder at start (claimed by an earlier run
 * of this instance) are reported first, as claimed.
 */
#ifndef MTA_SCAN_H
#define MTA_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

#define SCAN_BATCH 512 /* claims per loop pass, so the loop stays fair */

struct scan;
struct logger;

/* name is the file name inside the instance folder. */
typedef void scan_claim_fn(void *arg, const char *name);

/*
 * new_fd: <maildir>/new; inst_fd: <spool>/<instance>. Both stay owned by
 * the caller. Returns NULL with err set.
 */
struct scan *scan_new(struct loop *, struct logger *, int new_fd, int inst_fd,
		      uint64_t interval_ms, scan_claim_fn *fn, void *arg,
		      char *err, size_t errlen);
void scan_free(struct scan *);
/* Schedules a scan in the next loop pass (SIGUSR1, tests). */
void scan_kick(struct scan *);
/* Claims made so far. */
uint64_t scan_claimed(const struct scan *);
/* True once the start-up report of the instance folder has run: a file
 * put into that folder later is not reported by scan. */
bool scan_started(const struct scan *);

#endif

/*
 * instance: ownership of the instance folders under <spool>.
 *
 * Each sender works in <spool>/<instance>/. It holds an exclusive flock()
 * on that folder for its whole life (the kernel drops it when the process
 * dies, even on kill -9) and touches <spool>/<instance>/.heartbeat every
 * instance_beat_ms(orphan_after). A sibling folder whose heartbeat (or,
 * without one, whose own mtime) is older than orphan_after and whose lock
 * can be taken belongs to a dead sender: it is adopted, i.e. renamed to
 * <own>/.adopted.<dead> (atomic: of several adopters exactly one wins),
 * its files (messages and their journals) are moved into the own folder
 * and each message is handed to the claim callback. A folder whose lock
 * is held is never adopted, however stale its heartbeat: its sender is
 * alive on this host (stopped or slow).
 *
 * A crash in the middle of an adoption leaves <own>/.adopted.<dead>; it
 * is finished by instance_open() before anything else reads the folder.
 */
#ifndef MTA_INSTANCE_H
#define MTA_INSTANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

#define INSTANCE_LOCK_WAIT_MS 3000 /* an adopter holds a lock briefly */
#define INSTANCE_BEAT_MIN_MS 250
#define INSTANCE_BEAT_MAX_MS 15000
#define INSTANCE_HEARTBEAT ".heartbeat"
#define INSTANCE_ADOPTED_PREFIX ".adopted."
#define INSTANCE_NOTED_MAX 32 /* locked orphans remembered (log once) */

struct instance;
struct logger;

enum instance_err {
	INSTANCE_OK,
	INSTANCE_BUSY, /* another live process holds the folder */
	INSTANCE_FAIL, /* errno-like failure, see the message */
};

/* name is a message file now in the own folder. */
typedef void instance_claim_fn(void *arg, const char *name);
/* The own folder was taken away (adopted while this process stalled). */
typedef void instance_lost_fn(void *arg);

/*
 * Opens (creating it when missing) <spool_fd>/<name>, locks it, waiting
 * up to lock_wait_ms for another holder, finishes any .adopted.* folder
 * left inside it and touches the heartbeat. spool_fd stays the caller's.
 * NULL with *why and err set on failure.
 */
struct instance *instance_open(int spool_fd, const char *name,
			       uint64_t orphan_after_ms, uint64_t lock_wait_ms,
			       struct logger *, enum instance_err *why,
			       char *err, size_t errlen);
/* Disarms the timer, removes the heartbeat (unless the folder was
 * lost), closes the folder (releasing the lock). */
void instance_free(struct instance *);
/* The locked own folder; valid until instance_free(). */
int instance_fd(const struct instance *);

/*
 * Adopts the orphaned folders there are now (their messages are then in
 * the own folder, without calling fn: scan's start-up report lists them),
 * then beats and looks for orphans every instance_beat_ms() on l, handing
 * each adopted message to fn. lost is called once, from the timer, when
 * the own folder is no longer at its path; the timer then stops.
 */
int instance_start(struct instance *, struct loop *l, instance_claim_fn *fn,
		   instance_lost_fn *lost, void *arg);
/* Graceful stop: keeps beating, adopts nothing more. */
void instance_stop_adopting(struct instance *);
/* True once the own folder was found taken away. */
bool instance_lost(const struct instance *);

/*
 * Adopts <spool>/<dead> when it is orphaned (stale and unlocked). Returns
 * 1 when adopted, 0 when not (fresh, locked, gone: another adopter won),
 * -1 on an error (logged).
 */
int instance_adopt(struct instance *, const char *dead);

/* How often the heartbeat is touched: orphan_after / 4, bounded. */
uint64_t instance_beat_ms(uint64_t orphan_after_ms);
/* A heartbeat from beat_ms (wall clock) is stale at now_ms. */
bool instance_stale(int64_t beat_ms, int64_t now_ms, uint64_t orphan_after_ms);

#endif

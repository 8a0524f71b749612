/* The queue worker of `ndf serve --worker` (server.worker = true): a thread
 * that claims executions from the shared store's work queue
 * (store/queue.h) up to its capacity, runs each on the serving generation
 * bound to its claim (so its end is recorded once, fenced by the claim's
 * generation), renews the leases it holds by heartbeat, and keeps its row
 * in the workers table.  An item taken over after another worker's lease
 * expired is redriven from what that worker recorded (store/redrive.h):
 * the steps it completed are not run again.  When the database cannot be
 * reached the worker stops claiming, retries with backoff, and cancels what
 * it holds once it can no longer be sure of the leases. */
#ifndef NDF_WORKER_H
#define NDF_WORKER_H

#include <stddef.h>

#include "serve/generation.h"
#include "store/store.h"

typedef struct worker_opts {
    int capacity;     /* executions held at once (>= 1) */
    double lease;     /* seconds a claim holds without a heartbeat (> 0) */
    double heartbeat; /* seconds between heartbeats; <= 0: lease / 3 */
    double poll;      /* seconds between claims that found nothing; <= 0: 0.5 */
} worker_opts;

typedef struct worker worker;

/* Starts the worker on `gs` (whose base's store it uses; both must outlive
 * it).  NULL with err_msg() set when the store has no queue or the thread
 * cannot start. */
worker *worker_start(genset *gs, store *st, const worker_opts *o);

/* Stops claiming for good (ndf ctl drain); what is held runs on. */
void worker_drain(worker *w);

/* Gives up every execution held that has not ended (ndf ctl drain past
 * its --timeout, a shutdown past its grace): each is cancelled hard,
 * without rollback (the steps it completed are the next holder's), its
 * lease is no longer renewed, its end is recorded as an execution of its
 * own (CANCELLED, "lease lost; result discarded"), and its item is then
 * given back to the queue, where another worker claims it and redrives it
 * from what was recorded.  A step that ignores the cancellation may run
 * on in its thread; the item is not held up for it (its lease expires).
 * Returns how many were given up.  Any thread. */
size_t worker_give_back(worker *w);

typedef struct worker_stats {
    size_t held;      /* executions held now (given back ones until they end) */
    size_t claimed;   /* claims since the start */
    size_t finished;  /* claimed executions that ended */
    size_t lost;      /* leases lost (cancelled, not recorded) */
    size_t given_back; /* given up by worker_give_back() */
    int draining;     /* worker_drain() was called */
    int offline;      /* the database is not reachable now */
    char name[320];   /* its row in the workers table */
} worker_stats;
void worker_get_stats(worker *w, worker_stats *out);

/* Stops the thread, cancelling nothing: the caller lets the held
 * executions finish first (the server's shutdown grace), since the thread
 * renews their leases until then.  Removes its row from the workers
 * table and frees `w`; NULL is fine. */
void worker_stop(worker *w);

#endif

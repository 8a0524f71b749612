/* The worker pool: threads with per-priority work-stealing deques, and task
 * groups (ndf_host.group_*) whose waiters run queued work instead of
 * parking, so any nesting of groups completes even on one thread. */
#ifndef NDF_POOL_H
#define NDF_POOL_H

#include <ndf/sdk.h>

typedef struct pool pool;

/* A pool of `threads` workers (at least 1).  The first worker's thread
 * starts at once; each other's when work is queued while no worker is idle,
 * so a pool runs no more threads than its work has needed at once.  NULL
 * with err_msg() set (naming the error pthread_create returned) when the
 * first thread cannot be created.  Workers get the signal mask of the
 * thread calling pool_new, whichever thread starts them. */
pool *pool_new(unsigned threads);
/* Runs what is still queued, stops the workers and frees the pool.  A worker
 * still inside work after `wait_s` seconds (an in-process step that overran
 * and never returned), or one abandoned before, is left running and the
 * pool is leaked rather than freed under it.  `wait_s` < 0: wait as long as
 * it takes.  Returns the number of threads left running (0: freed); the
 * caller must then not unload code they may be in (pool_stuck_threads). */
unsigned pool_free(pool *p, double wait_s);
/* The number of workers asked for. */
unsigned pool_size(const pool *p);

/* Gives up on the workers whose innermost work carries `tag` (a record:
 * pool_submit_tagged's, or a group's node's record): each is marked
 * abandoned, leaves when that work returns, and is replaced at once by a
 * new thread, as long as fewer workers than pool_size() are abandoned;
 * beyond that the pool runs with fewer workers (counted as unreplaced).
 * Returns how many were abandoned.  Any thread. */
unsigned pool_abandon(pool *p, const void *tag);

typedef struct pool_stats {
    unsigned threads;                /* asked for */
    unsigned active;                 /* workers that can take work */
    unsigned running;                /* worker threads started and not gone */
    unsigned idle;                   /* of those, asleep for want of work */
    unsigned abandoned;              /* threads stuck in abandoned work now */
    unsigned long replaced;          /* abandoned workers replaced, ever */
    unsigned long unreplaced;        /* abandoned and not replaced, ever */
} pool_stats;
/* The pool's worker counts (a snapshot; any thread). */
void pool_health(pool *p, pool_stats *out);
/* Threads stuck in abandoned work, in all pools of the process (including
 * those left running by pool_free). */
unsigned pool_stuck_threads(void);
/* Queues fn(arg) at priority `prio` (1 highest .. 5 lowest; clamped), not
 * in any group.  When the pool is saturated, queued work of priority 1 is
 * started before priority 2, and so on. */
void pool_submit(pool *p, int prio, ndf_work_fn fn, void *arg);
/* pool_submit with a tag for pool_abandon (NULL: none). */
void pool_submit_tagged(pool *p, int prio, ndf_work_fn fn, void *arg, const void *tag);

/* A task group of record node `node`; the group holds a reference to the
 * node's record, so the node outlives it.  The node's deadline and its
 * execution's cancellation stop the group.  Work runs at
 * `prio`.  `max_concurrent` 0: no limit beyond the pool.  Never NULL (aborts
 * on out of memory, like x*alloc).  Release with pool_group_free(). */
ndf_group *pool_group_new(pool *p, ndf_exec *node, unsigned max_concurrent, int prio);
/* Queues fn(arg) in the group.  From a worker it goes to that worker's own
 * deque (the cheapest place, and where its own group wait looks first).
 * NDF_OK, or the status that stopped the group (nothing queued). */
int pool_group_spawn(ndf_group *g, ndf_work_fn fn, void *arg);
/* Waits until every piece of work of the group has ended, running queued
 * work meanwhile (never parks while work is queued), so nesting completes on
 * one thread.  Returns NDF_OK, or NDF_ERR_TIMEOUT / NDF_ERR_CANCELLED when
 * the node's deadline passed or its execution was cancelled: queued work of
 * the group is then dropped and running work sees cancelled().  Running work
 * is waited for until the grace period after the deadline; work still running
 * then is reported as overrun (in the node's log) and left to finish on its
 * own. */
int pool_group_wait(ndf_group *g);
/* pool_group_new() for a group whose ended work pool_group_wait_any()
 * reports, one piece at a time. */
ndf_group *pool_group_new_any(pool *p, ndf_exec *node, unsigned max_concurrent, int prio);
/* Waits (running queued work meanwhile) until a piece of work of `g` ended
 * that was not reported yet, and reports it: its `arg` and what its function
 * returned (the group's stop status for work dropped unrun).  NDF_OK;
 * NDF_ERR_NOT_FOUND when everything was reported; NDF_ERR_INVALID when `g`
 * was not made with pool_group_new_any; or the status that stopped the
 * group's node (as pool_group_wait). */
int pool_group_wait_any(ndf_group *g, void **arg, int *status);
/* Drops the group's queued work and cancels (node_cancel) every child of
 * its node that has not ended; later spawns fail.  The number of children
 * that were not final. */
int pool_group_cancel(ndf_group *g);
/* Releases the caller's handle; the group lives on until its work is gone. */
void pool_group_free(ndf_group *g);

#endif

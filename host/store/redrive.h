/* The redrive rules, from a stored execution alone: whether it may be run
 * again, and which of its nodes a new run takes the recorded outcome of
 * instead of running them (the steps, tasks and sub-patterns that
 * completed, outside a failed phase).  `ndf redrive` and a queue worker
 * taking over an execution whose worker died both follow them. */
#ifndef NDF_REDRIVE_H
#define NDF_REDRIVE_H

#include <stddef.h>

#include "base/hashmap.h"
#include "store/store.h"

/* NDF_OK when `e` may be redriven (`from_start`: rerun whole), else
 * NDF_ERR_INVALID with err_msg() saying why and what to do. */
int redrive_check(const store_exec *e, int from_start);

/* The reuse set of `e`: a map from the path of each node whose outcome is
 * reused to its message ("" when none), each value malloc'd; what
 * executor_start_redrive() takes.  *n gets the count. */
hashmap *redrive_reuse(const store_exec *e, size_t *n);

/* ---- rollback of a stored execution (a replay, see EXEC_REPLAY) ---- */

struct record;

/* NDF_OK when `e` may be rolled back: a top-level execution that ended
 * SUCCEEDED, FAILED, TIMED_OUT, CANCELLED or CRASHED with at least one
 * node whose work is still there (completed, or its undo failed) and, for
 * a `replay`, none of whose results the store cut; else NDF_ERR_INVALID
 * with err_msg() saying why.  The store's claim decides races. */
int rollback_check(const store_exec *e, int replay);

/* The replay's reuse set of `e`: each node that completed (COMPLETED,
 * DEGRADED) or whose undo failed, by path, to a record_reuse of its
 * message and result; what executor_start_redrive() takes with
 * EXEC_REPLAY.  *n gets the count. */
hashmap *rollback_reuse(const store_exec *e, size_t *n);

/* NDF_OK when replay `r` (its run ended, its rollback not begun) rebuilt
 * `e`: every node of the reuse set is in it and completed again.  Else
 * NDF_ERR_VALIDATION naming the first node that did not (the definition
 * changed since `e` ran: its undo would not be the one that ran). */
int rollback_matches(const store_exec *e, struct record *r);

/* The nodes of `e` whose state or message rollback `r` changed, as store
 * nodes (path, state, message, all malloc'd) into *out; returns the count.
 * *first_failed (may be NULL) gets the path of the first node whose undo
 * failed, or NULL (points into *out).  Free with rollback_changes_free(). */
size_t rollback_changes(const store_exec *e, struct record *r, store_node **out,
                        const char **first_failed);
void rollback_changes_free(store_node *v, size_t n);

struct executor;
/* Told the replay's record `r` when its undo actions start, and NULL when
 * they have ended: a caller that takes signals stops them by cancelling
 * `r` hard (record_cancel(r, 1): the undo running is killed as at its
 * deadline, no other runs), which the rollback then records as
 * interrupted ("rollback interrupted by signal at ..."). */
typedef void (*rollback_watch_fn)(void *arg, struct record *r);
/* One-shot trigger_rollback of stored execution `id`: checks it
 * (rollback_check), claims it in the store (store_rollback_claim), replays
 * it on `ex` (EXEC_REPLAY), refuses when the current definition does not
 * rebuild it (rollback_matches) or nothing of it has an undo, else runs
 * its pattern type's rollback at `level` / `target` and records the end
 * (store_rollback_end).  A refusal after the claim gives the claim back.
 * `watch` (may be NULL) is told of the undo actions (rollback_watch_fn).
 * Returns the rollback's status (err_msg() set) and, when the replay ran,
 * *out (a reference: the replay's record, with the undone nodes). */
int rollback_stored(struct executor *ex, store *st, const char *id, const char *level,
                    const char *target, rollback_watch_fn watch, void *watch_arg,
                    struct record **out);

/* trigger_rollback of execution `r` that this process ran and still
 * holds (a server): the same checks and claim as rollback_stored() from
 * its stored row, then the type's rollback on the live record, and the
 * end recorded.  Refused when the store shows its nodes changed since (a
 * rollback by another process): rollback_stored() does that one. */
int rollback_live(store *st, struct record *r, const char *level, const char *target);

#endif

/* History: how executions reach the store.  Turns a finished execution
 * record into store rows (the execution, each sub-pattern execution, every
 * node with its output), commits them through the group-commit writer, and
 * puts the committed learning state back into the patterns; and is the
 * registry's seam onto the store. */
#ifndef NDF_HISTORY_H
#define NDF_HISTORY_H

#include "store/storage.h"
#include "store/store.h"

struct settings;
struct pattern;
struct record;
struct registry_store;
struct executor;

/* The store options that the settings (storage { }, registry.learning,
 * confidence { }) give. */
void history_opts(const struct settings *set, store_opts *o);

/* The registry's seam onto `s` (which must outlive the registry): load
 * reads the patterns table; save does nothing, since every execution
 * already wrote its increments (a snapshot written back could only lose
 * another process's counts). */
void history_registry_seam(store *s, struct registry_store *out);

/* The store executions of finished record `r`: [0] the execution itself,
 * then one per sub-pattern that ran inside it (parent_id set; skipped ones
 * are recorded but not counted).  Node paths are the node names from the
 * root joined by '/', a repeated sibling name getting "#2", "#3"...
 * *pats (may be NULL) gets, per execution, the pattern that ran (borrowed
 * from the record; NULL when unknown).  Free with store_exec_array_free()
 * and free(*pats). */
void history_from_record(const struct record *r, store_origin origin, store_exec **out, size_t *n,
                         struct pattern ***pats);

/* Records finished execution `r` (history_from_record()) in one
 * transaction and returns after the commit.  On success the committed
 * learning state replaces the in-memory state of `target` (the pattern
 * that ran, or the one now serving under its name; NULL: the record's)
 * and of each sub-pattern.  On failure the record's status becomes
 * NDF_ERR_IO with the store's message, so that a caller answering after
 * completion reports the storage error instead of a result; the error is
 * logged and returned. */
int history_record(store *s, struct record *r, store_origin origin, struct pattern *target);

/* history_record() without waiting for the commit (store_finish_async()):
 * the committed learning state, or the storage error, reaches the
 * patterns and the record from the writer's thread.  The caller must
 * store_flush() before it reads the record's status to acknowledge it. */
int history_record_async(store *s, struct record *r, store_origin origin,
                         struct pattern *target);

/* 1: an execution that cannot be recorded is also logged at error
 * priority (ndf serve, whose operator reads the log while clients get
 * the answers); 0 (the default): only its status and message say it, which
 * a one-shot command prints once. */
void history_log_errors(int on);

/* Records `r` as RUNNING (its root only), so that crash recovery, `ndf
 * runs` and `ndf status ID` see it while it runs.  A record that already
 * ended is not an error (its final row wins). */
int history_begin(store *s, const struct record *r, store_origin origin);

/* Writes the progress of running executions into the store while they
 * run: every `interval_s` (0: HISTORY_PROGRESS_INTERVAL), the nodes whose
 * state or output changed (or a heartbeat when none did for
 * HISTORY_HEARTBEAT seconds), of each execution of `ex` recorded as RUNNING
 * by history_begin().  So `ndf logs --follow` and `ndf status ID` see an
 * execution advance, and crash recovery names the step that was running
 * when its process died.  NULL (err_msg() says why) when the thread cannot
 * start.  Stop it before freeing `ex` or closing `s`. */
#define HISTORY_PROGRESS_INTERVAL 0.25
/* Seconds between heartbeats of an execution that wrote no progress:
 * a crashed execution's recorded end is at most this much early. */
#define HISTORY_HEARTBEAT 1.0
typedef struct history_progress history_progress;
history_progress *history_progress_start(store *s, struct executor *ex, double interval_s);
/* history_progress_start() without the thread, for a command whose one
 * execution most often ends before the first sample (a one-shot `ndf
 * run` of short steps paid a thread for nothing): history_progress_kick()
 * starts it.  Never NULL. */
history_progress *history_progress_new(store *s, struct executor *ex, double interval_s);
/* Starts `hp`'s thread unless it runs already, sampling at once; for the
 * thread that waits for the execution, once it has run for a while.
 * NDF_OK, or NDF_ERR_RESOURCE (err_msg() says why; the run goes on
 * unsampled).  One thread at a time. */
int history_progress_kick(history_progress *hp);
/* Stops the thread (after its current sample) and frees `hp`; NULL is fine. */
void history_progress_stop(history_progress *hp);

/* The executor's on_spawn: records the step's process group in store
 * `arg` (store_process()) under the execution's id, queued, so that crash
 * recovery can stop it if ndf is killed. */
void history_on_spawn(void *arg, const struct record *r, long pgid, const char *token);

/* The executor's on_complete for one-shot commands: `opaque` is a
 * history_hook. */
typedef struct history_hook {
    store *s;
    store_origin origin;
    /* set while a fallback runs: written into its record before it is
     * recorded (both borrowed) */
    const char *fallback_from, *fallback_cause;
    /* 1: the end is handed to the writer (history_record_async()), the
     * command flushes before it answers (ndf batch); 0: waited for */
    int async;
} history_hook;
/* Records the end with the record's origin (EXEC_ORIGIN), else the hook's. */
void history_on_complete(void *opaque, struct pattern *p, const struct record *r);
/* The executor's on_start, `arg` a history_hook: records the execution
 * as RUNNING (history_begin()) and waits for the commit, so that its steps
 * run only once crash recovery and `ndf runs` can see it.  When that
 * fails the execution is refused: NDF_ERR_IO, "pattern 'P' not started:
 * cannot record it: REASON", logged at error priority, and its end is
 * not recorded either. */
int history_on_start(void *arg, struct record *r);

/* The pattern's learning state and its newest `limit` (0: 1000) ended
 * executions as the record analytics reads (oldest first, the root's
 * children as steps).  NDF_ERR_NOT_FOUND when nothing is stored.  Free
 * with stored_pattern_free(). */
int history_load(store *s, const char *name, size_t limit, stored_pattern *out);

/* Puts the learning state stored for pattern `name` (NULL: every stored
 * pattern) into the pattern of that name in `reg`.  The store is the
 * system of record: a long-running process (ndf serve) calls this before
 * it judges or shows counts, so that executions recorded by other
 * processes (one-shot runs, other servers) count.  One indexed read for
 * a name; one pass over the patterns table for all.  A pattern nothing
 * is stored for is left as it is. */
struct registry;
int history_refresh(store *s, struct registry *reg, const char *name);

#endif

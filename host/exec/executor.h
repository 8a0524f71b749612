/* The executor (seed PatternExecutor): runs patterns on one pool of worker
 * threads (exec/pool.h), with the execute / execute_with_fallback /
 * batch_execute calls, their deadlines, live records and learning.  Every
 * record it starts points back at it (record->ex), which is how the
 * services table finds the executor of the node a plugin hands it. */
#ifndef NDF_EXECUTOR_H
#define NDF_EXECUTOR_H

#include <stddef.h>
#include <ndf/sdk.h>
#include "model/pattern.h"
#include "exec/pool.h"
#include "exec/record.h"
#include "model/registry.h"

/* How deep sub-patterns may nest (host->run_pattern inside a pattern run by
 * host->run_pattern ...); deeper is a validation error (documented in
 * ndf(1)). */
#define EXECUTOR_MAX_NESTING 64

struct hashmap;

typedef struct executor executor;

typedef struct executor_opts {
    unsigned threads;            /* workers (>= 1) */
    double default_timeout;      /* an execution's deadline, s; <= 0 none */
    double pattern_timeout;      /* a pattern run's, unless the pattern sets one; <= 0 none */
    double max_timeout;          /* the one cap on every deadline, s; <= 0 none */
    double kill_grace;           /* SIGTERM->SIGKILL, and in-process overrun grace; s */
    double confidence_threshold; /* the global gate, 0..1 */
    int confidence_gate;         /* the global confidence_gate (pattern_gate) */
    registry *reg;               /* patterns and learning (not owned) */
    size_t keep;                 /* finished records kept by id; 0: 64 */
    /* Called once per finished top-level execution (sub-patterns only
     * feed the registry), after the registry was fed, from the thread that
     * finished it.  `p` is the pattern that ran.  Used to persist history. */
    void (*on_complete)(void *opaque, pattern *p, const record *r);
    void *opaque;
    /* Called (may be NULL) from the step's thread right after a step of
     * record `r` started a process: its process group `pgid` and the
     * NDF_STEP `token` its processes carry.  Used to record them, so that
     * crash recovery can stop what a killed ndf left running.  Must not
     * block for long: the step waits. */
    void (*on_spawn)(void *arg, const record *r, long pgid, const char *token);
    void *spawn_arg;
    /* Called (may be NULL) from the worker thread that takes a top-level
     * execution, before any of its work runs: NDF_OK lets it run; any
     * other status ends it unstarted with that status and err_msg() as its
     * message (its root FAILED, nothing run), and on_complete still sees
     * it.  How every execution, whoever started it, gets its RUNNING row
     * committed before its first step can start a process. */
    int (*on_start)(void *arg, record *r);
    void *start_arg;
    /* 1: the end line of an execution that did not succeed is an error (a
     * cancelled one a warning), as a server logs it; 0: info (ndf run
     * reports the failure itself). */
    int fail_logged;
} executor_opts;

/* Where an effective timeout came from (executor_timeout). */
typedef enum timeout_source {
    TIMEOUT_NONE = 0,   /* no deadline at all */
    TIMEOUT_REQUESTED,  /* the caller's (--timeout, a plugin's run_pattern) */
    TIMEOUT_PATTERN,    /* the pattern's own (its `timeout`, pattern->timeout_key) */
    TIMEOUT_DEFAULT,    /* executor.default_timeout (top level) */
    TIMEOUT_PATTERN_DEFAULT /* executor.pattern_timeout (a sub-pattern) */
} timeout_source;

/* The one rule for how long a run of `p` may take.  An execution (`top`):
 * `requested` (> 0, the caller's --timeout), else the pattern's own
 * timeout, else default_timeout.  A sub-pattern: its own timeout, else
 * pattern_timeout, bounded by `requested` (> 0, what the plugin running it
 * has left).  The defaults are only defaults.  max_timeout, when set, is the only
 * cap: *capped is set when it shortened the result.  Returns seconds, or
 * INFINITY for none; *src (may be NULL) says which setting won. */
double executor_timeout(const executor_opts *o, const pattern *p, double requested, int top,
                        timeout_source *src, int *capped);
/* "--timeout", "pattern timeout", "executor.default_timeout", ... */
const char *timeout_source_name(timeout_source s, const pattern *p);

/* Starts the pool.  NULL with err_msg() set on failure.  Free with
 * executor_free(). */
executor *executor_new(const executor_opts *opts);
/* Stops the pool, waiting up to twice the kill grace for work that overran
 * (see pool_free), and drops the kept records.  Returns the number of
 * worker threads left running in abandoned work (0 normally): the caller
 * must then keep the registry and plugins they may be in. */
unsigned executor_free(executor *ex);
/* The pool's worker counts (pool_health). */
void executor_health(executor *ex, pool_stats *out);
/* The executor's pool, registry and options (defaults filled in); owned by
 * the executor. */
pool *executor_pool(executor *ex);
registry *executor_registry(executor *ex);
const executor_opts *executor_options(executor *ex);

/* Flags of an execution. */
#define EXEC_FORCE 0x1u /* skip the confidence gate (here and in sub-patterns) */
/* A rollback's replay (executor_start_redrive with the reuse set of
 * rollback_reuse(), `from` the stored execution): the record takes
 * `from` as its id, runs no step (a node not in the reuse set fails at
 * once, without retries or waits for resources), defers every undo until
 * executor_rollback(), learns nothing and is neither started nor
 * completed in on_start / on_complete (it has no row of its own).
 * Implies EXEC_FORCE. */
#define EXEC_REPLAY 0x2u
/* A tag for on_start and on_complete to read back (record->origin): how
 * the execution was started, 0..254 (the store's store_origin).  Without
 * it record->origin is -1. */
#define EXEC_ORIGIN(o) ((((unsigned)(o) & 0xffu) + 1u) << 8)

/* Starts pattern `name` in `ctx` and returns at once.  `timeout` > 0 is
 * the execution's deadline, else the pattern's own, else default_timeout
 * (executor_timeout()), counted from now, time waiting for a free worker
 * included.  On NDF_OK *out is a reference to the live record (the
 * caller unrefs it).  Fails before starting with NDF_ERR_NOT_FOUND, or
 * NDF_ERR_CONFIDENCE when the pattern's trusted confidence is below its
 * threshold (its own, else the global), its gate (pattern_gate) is
 * enforce and EXEC_FORCE is not given (gate warn: it runs, and the warning
 * is logged and in the record's log);
 * NDF_ERR_VALIDATION when the pattern's type refuses the context (its
 * matches(), e.g. below meta's complexity_threshold) and EXEC_FORCE is not
 * given;
 * NDF_ERR_RESOURCE when no worker is left to run it (all abandoned, see
 * pool_abandon); NDF_ERR_CANCELLED after executor_cancel_all. */
int executor_start(executor *ex, const char *name, const ndf_context *ctx, double timeout,
                   unsigned flags, record **out);
/* Called by executor_start_redrive() with the new record before any of its
 * work is queued: NDF_OK lets it start; any other status drops the record
 * unstarted and is returned (err_msg() as the hook left it).  How a redrive
 * claims its execution in the store before a step can run. */
typedef int (*executor_claim_fn)(void *arg, const record *r);

/* executor_start() of a redrive of execution `from` (copied; NULL: not a
 * redrive): the nodes whose paths (record_node_path) are keys of `reuse`
 * are not run but take the recorded outcome (see record.h); `reuse` (may
 * be NULL: rerun everything) is taken, freed with the record (its values
 * with free()), or at once on failure.  `claim` (may be NULL) is asked
 * first, see executor_claim_fn. */
int executor_start_redrive(executor *ex, const char *name, const ndf_context *ctx, double timeout,
                           unsigned flags, const char *from, struct hashmap *reuse,
                           executor_claim_fn claim, void *claim_arg, record **out);
/* executor_start() of a fallback: the record says from the start that it
 * ran as the fallback of pattern `fb_from` for `fb_cause` (both copied;
 * NULL: not a fallback), so that its stored row says so too, whatever
 * else runs at the same time. */
int executor_start_fallback(executor *ex, const char *name, const ndf_context *ctx,
                            double timeout, unsigned flags, const char *fb_from,
                            const char *fb_cause, record **out);
/* Waits up to `wait_s` seconds (< 0: until done) for the execution of `r`.
 * Returns 1 when it is done (its status is then r->status), 0 if not yet.
 * An execution whose work overran its deadline by more than the grace
 * period is finished here as TIMED_OUT ("overran its deadline by Xs"). */
int executor_wait(executor *ex, record *r, double wait_s);

/* seed execute: start + wait.  Returns the execution's status (NDF_OK,
 * NDF_ERR_EXECUTION, NDF_ERR_TIMEOUT, ...) or the refusal from
 * executor_start; err_msg() says why.  *out (may be NULL) gets the record
 * when it ran, else NULL. */
int executor_execute(executor *ex, const char *name, const ndf_context *ctx, double timeout,
                     unsigned flags, record **out);

/* Why a fallback ran. */
typedef enum fallback_cause {
    FALLBACK_NONE = 0,    /* the primary succeeded */
    FALLBACK_FAILURE = 1, /* it ran and failed */
    FALLBACK_NOT_FOUND = 2,
    FALLBACK_CONFIDENCE = 3, /* the confidence gate refused it */
    FALLBACK_TIMEOUT = 4,
    FALLBACK_VALIDATION = 5 /* refused before it started (its plan, its type) */
} fallback_cause;
const char *fallback_cause_name(fallback_cause c); /* "failure", "not found", ... */
/* The cause a primary's status `st` (not NDF_OK) gives a fallback. */
fallback_cause fallback_cause_of(int st);

typedef struct fallback_result {
    int status;       /* of the pattern used */
    const char *used; /* `primary` or `fallback` as passed */
    fallback_cause cause;
    int primary_status;
    char *primary_error;        /* the primary's message, or NULL */
    record *primary, *fallback; /* references, or NULL when not run */
} fallback_result;

/* seed execute_with_fallback.  Runs `primary`; when it fails, is not found,
 * is refused by the confidence gate or times out (not when cancelled), runs
 * `fallback` and says which cause triggered it.  Returns out->status; free
 * `out` with fallback_result_free(). */
int executor_execute_with_fallback(executor *ex, const char *primary, const char *fallback,
                                   const ndf_context *ctx, double timeout, unsigned flags,
                                   fallback_result *out);
/* Frees what `r` owns (message, record references) and zeroes it; NULL is
 * fine.  `r` itself belongs to the caller. */
void fallback_result_free(fallback_result *r);

typedef struct batch_item {
    const char *pattern;
    const ndf_context *ctx;
    double timeout; /* <= 0: the default */
} batch_item;

typedef struct batch_result {
    int status;
    char *error; /* message when status != NDF_OK, else NULL */
    record *rec; /* reference, or NULL when it did not start */
} batch_result;

/* seed batch_execute.  Runs all `n` items, at once (parallel, each at its
 * context's priority) or one after another, and fills out[i] for items[i]
 * whatever order they finish in.  Returns the number that failed. */
size_t executor_batch(executor *ex, const batch_item *items, size_t n, int parallel, unsigned flags,
                      batch_result *out);
/* Frees what the `n` results own (messages, record references); the array
 * itself belongs to the caller. */
void batch_results_free(batch_result *r, size_t n);

/* A reference to the record with execution id `id` (NULL or "": the latest
 * started), among those running and the last `keep` finished; NULL when
 * unknown. */
record *executor_find(executor *ex, const char *id);
/* References to the executions that are running now (among the last
 * `keep` started) into *out (an array to free; unref each).  Returns the
 * count. */
size_t executor_running(executor *ex, record ***out);
/* Cancels a running execution: its nodes see NDF_ERR_CANCELLED, its
 * processes are stopped.  NDF_OK or NDF_ERR_NOT_FOUND. */
int executor_cancel(executor *ex, const char *id);
/* executor_cancel(), `hard` as a second signal: its undo actions are
 * skipped, cleanup stops, its processes are killed without a grace period
 * (what a worker that lost a lease does: the steps are the next holder's). */
int executor_cancel_hard(executor *ex, const char *id, int hard);
/* Cancels every running execution and refuses new ones from now on
 * (NDF_ERR_CANCELLED, "ndf is stopping"): what a signal to ndf does.
 * `hard` (a second signal) also skips their undo actions, stops cleanup
 * in progress and kills their processes without a grace period.  Returns
 * how many were running.  Any thread; not async-signal-safe. */
size_t executor_cancel_all(executor *ex, int hard);

/* seed trigger_rollback on finished execution `r`: the pattern type's
 * rollback() on its root, at `level` (NULL: "pattern") down to `target`
 * (may be NULL), each type in its own order.  A replay (EXEC_REPLAY) is
 * switched to undoing first.  NDF_OK, or the status with err_msg() set:
 * NDF_ERR_INVALID when the type has no rollback. */
int executor_rollback(record *r, const char *level, const char *target);

/* Runs pattern `name` as a sub-execution in a new PATTERN child of `node`
 * (ndf_host.run_pattern).  `timeout_s` > 0 bounds it, else the pattern's or
 * the executor's pattern timeout. */
int executor_run_pattern(executor *ex, ndf_exec *node, const char *name, double timeout_s);

#endif

/* The seam between store.c (the store_* functions callers use) and the
 * backends behind it (store_sqlite.c, store_pg.c).  Private to host/store.
 *
 * A backend's handle is its own struct whose first member is a pointer to
 * its store_ops table: store.c reads that pointer to find the backend, so
 * callers keep one opaque `store *` whatever holds the data.  Every entry
 * has the contract of the store.h function of the same name. */
#ifndef NDF_STORE_BACKEND_H
#define NDF_STORE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

/* Struct tags only, not store.h: store.c includes this file, and a module
 * must not include the module that includes it (tests/shell/layers.sh). */
struct store;
struct store_exec;
struct store_node;
struct store_opts;
struct store_query;
struct store_stats;
struct store_cleanup_result;
struct learning_state;
struct queue_item;
struct queue_worker;
struct store_def;

typedef struct store_ops {
    int backend; /* a store_backend */
    void (*close)(struct store *s);
    const char *(*path)(const struct store *s);
    const char *(*dir)(const struct store *s);
    int (*begin)(struct store *s, const struct store_exec *e);
    int (*progress)(struct store *s, const char *id, const struct store_node *n);
    int (*finish_all)(struct store *s, const struct store_exec *v, size_t n,
                      struct learning_state *after);
    void (*get_stats)(struct store *s, struct store_stats *out);
    int (*runs)(struct store *s, const struct store_query *q, struct store_exec **out, size_t *n);
    int (*get)(struct store *s, const char *id, struct store_exec *out);
    int (*children)(struct store *s, const char *id, struct store_exec **out, size_t *n);
    int (*output_each)(struct store *s, const char *id, const char *path, int stream,
                       int64_t from, int (*each)(void *arg, const char *buf, size_t n),
                       void *arg, size_t *len, uint64_t *dropped);
    int (*learning)(struct store *s, const char *name, struct learning_state *out);
    int (*patterns)(struct store *s, char ***names, size_t *n);
    int (*reset_stats)(struct store *s, const char *name);
    int (*remove_pattern)(struct store *s, const char *name);
    int (*cleanup)(struct store *s, long history_limit, double max_age_s, double now,
                   struct store_cleanup_result *res);
    int (*backup)(struct store *s, char **path_out);
    int (*import_legacy)(struct store *s, const char *dir, size_t *imported);
    int (*recover)(struct store *s, size_t *n);
    int (*check)(struct store *s);
    int (*process)(struct store *s, const char *id, long pgid, long long start,
                   const char *token);
    /* NULL: store.c reads pattern by pattern (learning_all), or interval
     * backups are not offered (backup_every) */
    int (*learning_all)(struct store *s,
                        void (*each)(void *arg, const char *name, struct learning_state *st),
                        void *arg);
    int (*backup_every)(struct store *s, double interval_s);
    /* the work queue (queue.h); NULL for a backend without one */
    int (*q_submit)(struct store *s, const char *pattern, const char *context, int priority,
                    double timeout, char **id);
    int (*q_claim)(struct store *s, const char *worker, const char *const *patterns, size_t n,
                   size_t max, double lease_s, struct queue_item **out, size_t *nout);
    int (*q_renew)(struct store *s, const char *id, long long generation, double lease_s);
    int (*q_bind)(struct store *s, const char *exec_id, const char *id, long long generation);
    void (*q_unbind)(struct store *s, const char *exec_id);
    int (*q_get)(struct store *s, const char *id, struct queue_item *out);
    int (*q_start)(struct store *s, const char *id, long long generation, const char *exec_id);
    int (*q_fail)(struct store *s, const char *id, long long generation, int status,
                  const char *message);
    int (*q_release)(struct store *s, const char *id, long long generation);
    int (*q_abandon)(struct store *s, const char *exec_id, const char *id);
    int (*q_worker_beat)(struct store *s, const struct queue_worker *w);
    int (*q_workers)(struct store *s, struct queue_worker **out, size_t *n);
    int (*q_worker_remove)(struct store *s, const char *name);
    int (*q_wait)(struct store *s, int wake_fd, double timeout_s);
    /* rollback (store_rollback_claim, store_rollback_end) */
    int (*rollback_claim)(struct store *s, const char *id, const char *message, int *was,
                          char **was_message);
    int (*rollback_end)(struct store *s, const char *id, int status, const char *message,
                        const struct store_node *nodes, size_t n);
    /* run-time definitions (store/defs.h) */
    int (*defs)(struct store *s, struct store_def **out, size_t *n);
    int (*def_put)(struct store *s, const struct store_def *d, int remove);
    int (*defs_version)(struct store *s, uint64_t *out);
    /* NULL: store.c writes at once through finish_all and calls `done`
     * (finish_async), and there is nothing to wait for (flush) */
    int (*finish_async)(struct store *s, struct store_exec *v, size_t n,
                        void (*done)(void *arg, int rc, const char *msg,
                                     struct learning_state *after, size_t n),
                        void *arg);
    void (*flush)(struct store *s);
    /* NULL: store.c writes at once through begin (begin_async); takes `e`
     * (one execution, freed with store_exec_array_free()) */
    int (*begin_async)(struct store *s, struct store_exec *e,
                       void (*done)(void *arg, int rc, const char *msg,
                                    struct learning_state *after, size_t n),
                       void *arg);
} store_ops;

/* What every handle starts with. */
typedef struct store_head {
    const store_ops *ops;
} store_head;

/* The backends' open functions; store_open() picks one by opts->backend.
 * `opts` is never NULL here. */
int store_sqlite_open(const char *dir, const struct store_opts *opts, struct store **out);
#ifdef HAVE_LIBPQ
int store_pg_open(const char *dir, const struct store_opts *opts, struct store **out);
#endif

/* SQL both backends use.  The execution a chain of redrives started from,
 * for the redrive of execution P (a placeholder: "?4", "$1"): P's own
 * root when P is itself a redrive, else P. */
#define SQL_REDRIVE_ROOT(P)                                                                        \
    "coalesce((SELECT coalesce(x.redrive_root, x.id) FROM executions x WHERE x.id = " P "), " P   \
    ")"
/* The redrive that holds the claim on the chain of execution P (RUNNING,
 * or SUCCEEDED), if any: id, status. */
#define SQL_CLAIM_HOLDER(P)                                                                        \
    "SELECT id, status FROM executions WHERE redrive_root = " SQL_REDRIVE_ROOT(P)                  \
    " AND status IN ('RUNNING', 'SUCCEEDED') LIMIT 1"

/* The latest execution of the redrive chain of execution P that started
 * after P: its id.  Such a redrive reused P's completed steps, so they
 * are its work now and only its rollback may undo them. */
#define SQL_REDRIVEN_AS(P)                                                                         \
    "SELECT x.id FROM executions x WHERE x.redrive_root = " SQL_REDRIVE_ROOT(P)                    \
    " AND x.seq > (SELECT y.seq FROM executions y WHERE y.id = " P ") ORDER BY x.seq DESC LIMIT 1"

/* The execution of P's redrive chain that a rollback holds a claim on
 * (rollback_claims), if any: its id.  A redrive of any execution of the
 * chain is then refused, as that rollback may be undoing the work the
 * redrive would reuse. */
#define SQL_BEING_ROLLED_BACK(P)                                                                   \
    "SELECT c.exec_id FROM rollback_claims c JOIN executions x ON x.id = c.exec_id"                \
    " WHERE coalesce(x.redrive_root, x.id) = " SQL_REDRIVE_ROOT(P) " LIMIT 1"

/* A step execution P completed that a later execution of its chain of
 * redrives had undone by its rollback (its node there ROLLED_BACK, or
 * there at all when that rollback was interrupted without recording what
 * it undid): that execution's id and the step's path.  A redrive resuming
 * P must not reuse it. */
#define SQL_UNDONE_LATER(P)                                                                        \
    "SELECT x.id, m.path FROM executions x JOIN nodes n ON n.exec_seq = x.seq"                     \
    " JOIN nodes m ON m.path = n.path"                                                             \
    " WHERE m.exec_seq = (SELECT y.seq FROM executions y WHERE y.id = " P ")"                      \
    " AND m.state IN ('COMPLETED', 'DEGRADED') AND m.path <> ''"                                   \
    " AND coalesce(x.redrive_root, x.id) = " SQL_REDRIVE_ROOT(P)                                   \
    " AND x.seq > (SELECT y.seq FROM executions y WHERE y.id = " P ")"                             \
    " AND (n.state = 'ROLLED_BACK'"                                                                \
    " OR (x.status = 'FAILED' AND x.message LIKE 'rollback interrupted%'))"                        \
    " ORDER BY x.seq LIMIT 1"

/* Helpers the backends share (store.c). */

/* 1 when an execution whose row has `status` (a store_status name) and
 * `parent` (its parent_id, NULL for a top-level one) may be claimed for a
 * rollback: SUCCEEDED, FAILED, TIMED_OUT, CANCELLED or CRASHED, top
 * level; *out gets the status. */
int store_rollback_claimable(const char *status, const char *parent, int *out);
/* Why a rollback of `id` could not claim it, from its row as read after
 * the claim changed nothing: `found` 0 when there is none, else its
 * status (a store_status name), parent_id (may be NULL), message (may be
 * NULL), host and pid.  Returns the status, err_msg() set. */
int store_rollback_refused(const char *id, int found, const char *status, const char *parent,
                           const char *message, const char *host, long pid);
/* Why a rollback of `id` is refused when it was redriven as `by`. */
int store_rollback_redriven(const char *id, const char *by);
/* Why a redrive of `id` is refused while a rollback holds the claim on
 * `claimed` (an execution of its chain, maybe `id` itself). */
int store_redrive_rolling_back(const char *id, const char *claimed);
/* Why a redrive resuming `id` is refused: its step `path` was undone by
 * the rollback of `by`, a later execution of its chain (SQL_UNDONE_LATER). */
int store_redrive_undone(const char *id, const char *by, const char *path);
/* The was_message of a claim an older ndf made (migrated from the
 * execution's message, which was all it kept): the status it had is not
 * known.  No quote in it: it is spliced into the migration's SQL. */
#define STORE_CLAIM_UNRECORDED                                                                     \
    "the status it had before this rollback was not recorded (the claim was made by an older ndf)"
/* The message of an execution whose rollback, claimed by process `pid`
 * on `host`, died before it ended (crash recovery makes it FAILED with
 * it); `was_status` and `was_message` are the claim's (what it had ended
 * as).  Caller frees. */
char *store_rollback_interrupted_message(const char *id, long pid, const char *host,
                                         const char *was_status, const char *was_message);

/* The message a RUNNING row gets when the end of execution `e` could
 * not be written for the store's sake (`why`): "not recorded: WHY (the
 * execution had ended STATUS)".  Caller frees. */
char *store_unrecorded_message(const struct store_exec *e, const char *why);
/* The same from the final status's name (the unrecorded-end note). */
char *store_unrecorded_text(const char *why, const char *status);

/* What a writer does with its failed progress and process writes
 * (store_progress(), store_process(): nobody waits for them), so that a
 * full disk is said once, not once per heartbeat: only the first failure
 * since the last commit is logged; with `hold` (a one-shot command) not
 * even that, but kept, and dropped when an execution's end fails too (its
 * caller says why, and that is the error that decides the exit status) as
 * are those that fail after it until a commit, else logged as a warning
 * when the store closes.  Plain data under the
 * writer's queue lock; zero it and set `hold` at open. */
typedef struct store_perr {
    int hold;
    int logged; /* a failure since the last commit was logged */
    int held;   /* msg waits for store_perr_close() */
    int told;   /* an end failed since the last commit: its caller said why */
    char msg[512];
} store_perr;
void store_perr_fail(store_perr *p, const char *msg);
/* A transaction committed. */
void store_perr_ok(store_perr *p);
/* An execution's start or end failed: its caller reports the cause. */
void store_perr_end_failed(store_perr *p);
/* The store closes (the writer has stopped). */
void store_perr_close(store_perr *p);

/* Largest output a query inflates: a damaged row must not ask for more. */
#define STORE_MAX_OUTPUT ((size_t)64 << 20)

/* An output_each() in progress: inflates a stored zlib stream (RFC 1950)
 * of `len` raw bytes as its compressed pieces arrive and hands the raw
 * bytes from offset `from` (negative: the newest -from) to `each`, in
 * pieces of at most STORE_OUTPUT_PIECE, never holding more than one. */
typedef struct store_unz store_unz;
store_unz *store_unz_new(size_t len, int64_t from,
                         int (*each)(void *arg, const char *buf, size_t n), void *arg);
/* Inflates `n` more compressed bytes.  Returns NDF_OK, the non-zero
 * return of `each`, or STORE_UNZ_DAMAGED (the stream is not zlib, or
 * inflates to more than `len`). */
int store_unz_feed(store_unz *u, const void *z, size_t n);
/* After the last piece: NDF_OK when the stream ended at exactly `len`
 * bytes (an empty one when `len` is 0), else STORE_UNZ_DAMAGED. */
int store_unz_end(store_unz *u);
/* The zlib return code behind STORE_UNZ_DAMAGED, for messages. */
int store_unz_zrc(const store_unz *u);
void store_unz_free(store_unz *u);
#define STORE_UNZ_DAMAGED 1

/* This machine's boot id (/proc/sys/kernel/random/boot_id), or "" into
 * `out` (n bytes). */
void store_read_boot_id(char *out, size_t n);
/* The start time of process `pid` in clock ticks after boot (field 22 of
 * /proc/PID/stat), which tells a live process from a later one given the
 * same pid; 0 when unknown. */
long long store_pid_start_time(long pid);
/* 1 when process `pid` has exited and waits to be reaped (state Z or X
 * in /proc/PID/stat): dead, whatever kill(pid, 0) says. */
int store_pid_zombie(long pid);
/* 0 when the process that recorded an execution (host, pid, boot id, start
 * time) is known to be dead from this machine (`myhost`, `myboot`): same
 * host, and another boot, no such pid, a zombie, or the pid reused; 1
 * otherwise.  Without a boot id and start time (a claim an older ndf
 * made), the pid alone: alive while a process has it. */
int store_process_alive(const char *myhost, const char *myboot, const char *host, long pid,
                        const char *boot, long long started);
/* The message for a redrive of `of` refused because execution `holder`
 * (its status `status`, a store_status name) holds the claim. */
int store_claim_refused(const char *of, const char *holder, const char *status);
/* Crash recovery on this host and boot: stops (SIGKILL) what is left of a
 * step's process group `pgid` recorded for execution `id` (store_process()),
 * never another's: the group is killed only when its leader is the one
 * recorded (same start time) or a member still carries the step's token
 * (NDF_STEP) in its environment; members that left the group (setsid) but
 * carry the token, or one below it (the processes a step started inside
 * an isolated plugin's worker, each in a group of its own), are killed one
 * by one.  Only processes of this user
 * (effective uid).  Returns the processes found. */
int store_kill_step_group(long pgid, long long start, const char *token);
/* A step process group recorded for an execution (step_processes), read
 * by a recovery and stopped once what it wrote is committed. */
typedef struct store_group {
    long pgid;
    long long start;
    char *token;
} store_group;
/* Stops each of the `n` groups `v` (store_kill_step_group) when `stop`,
 * saying so ("WHERE: killed K leftover WHAT process(es) of group G"), and
 * frees them. */
void store_stop_groups(const char *where, const char *what, store_group *v, size_t n, int stop);

#endif

/* The store: the system of record for learning state, executions, their
 * nodes and captured outputs, behind one backend-neutral interface over an
 * opaque handle.  The SQLite backend (store_sqlite.c) keeps one database
 * file in the storage directory; the PostgreSQL backend (store_pg.c) one
 * database several hosts share.  store.c hands each call to the backend
 * the handle was opened with; no backend's type appears here.
 *
 * Every function returns NDF_OK or a negative ndf_status with err_msg() set
 * to a message that names the database and the backend's own diagnosis.
 * Unless said otherwise, failures of the database itself are NDF_ERR_IO. */
#ifndef NDF_STORE_H
#define NDF_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "base/learning.h"
#include "base/util.h"
#include "base/ztail.h"

/* The schema version this build writes (PRAGMA user_version for SQLite).
 * Older databases are migrated forward on open; newer ones are refused. */
#define STORE_SCHEMA_VERSION 8
/* The database file's name inside the storage directory. */
#define STORE_DB_NAME "ndf.db"
/* Bytes of each captured stream kept per node unless told otherwise. */
#define STORE_OUTPUT_LIMIT (64u * 1024u)
/* Bytes of a step's result kept with its node (the rest is cut, its full
 * length kept); the whole result is in the node's log. */
#define STORE_RESULT_LIMIT (64u * 1024u)

typedef struct store store;

/* How an execution ended (RUNNING while it runs).  SUCCEEDED counts as a
 * success for learning; every other final status as a failure. */
typedef enum store_status {
    STORE_RUNNING = 0,
    STORE_SUCCEEDED = 1,
    STORE_FAILED = 2,
    STORE_TIMED_OUT = 3,
    STORE_CANCELLED = 4,
    STORE_REFUSED = 5,     /* confidence below the threshold: never started */
    STORE_ROLLED_BACK = 6, /* failed, and its completed steps were undone */
    STORE_CRASHED = 7      /* its process died; set by crash recovery */
} store_status;

/* "RUNNING", "SUCCEEDED", ... */
const char *store_status_name(store_status s);
/* Case-insensitive; returns 0 and *out, or -1 for an unknown name. */
int store_status_parse(const char *name, store_status *out);

/* How an execution was started. */
typedef enum store_origin {
    STORE_ORIGIN_RUN = 0,
    STORE_ORIGIN_BATCH = 1,
    STORE_ORIGIN_CTL = 2,
    STORE_ORIGIN_DELEGATE = 3,
    STORE_ORIGIN_REDRIVE = 4,
    STORE_ORIGIN_EXTERNAL = 5, /* imported, or written by another program */
    STORE_ORIGIN_QUEUE = 6     /* claimed from the work queue by a worker */
} store_origin;

/* "run", "batch", ... */
const char *store_origin_name(store_origin o);
int store_origin_parse(const char *name, store_origin *out);

/* The streams captured per node (same order as the record's). */
enum { STORE_STDOUT = 0, STORE_STDERR = 1, STORE_LOG = 2, STORE_NSTREAMS = 3 };

/* One node of an execution: the pattern itself (path ""), a phase, task or
 * step.  In a submission the strings are only read; in a query result they
 * are owned by the enclosing store_exec. */
typedef struct store_node {
    char *path;        /* "" for the root, "phase/task" below it; unique per execution */
    int seq;           /* display order within the execution (pre-order) */
    int kind;          /* ndf_node_kind */
    int state;         /* ndf_state */
    double start, end; /* wall-clock seconds; 0 while unset */
    int attempt;       /* 1 for a first run; 0 is taken as 1 */
    int exit_status;   /* a process's exit status, -1 when none */
    char *message;     /* NULL when none */
    double timeout;    /* its own limit (s) when tighter than the execution's, else 0 */
    /* Captured output.  Submission: out[i] holds outlen[i] bytes (NULL for
     * none), of which only the newest output_limit are stored; `dropped`
     * counts the bytes lost before them.  Query: out[] stays NULL (read it
     * with store_output()); outlen[] and dropped[] are the stored figures. */
    char *out[STORE_NSTREAMS];
    size_t outlen[STORE_NSTREAMS];
    uint64_t dropped[STORE_NSTREAMS];
    /* Submission of an execution's end only: when zout[i] is set, the
     * stream is already compressed by the caller, a zlib stream (RFC 1950)
     * of outlen[i] bytes, zoutlen[i] long, which is stored as it is (read,
     * not kept, and not cut to output_limit: the caller bounded it); out[i]
     * is then ignored.  Progress ignores it. */
    unsigned char *zout[STORE_NSTREAMS];
    size_t zoutlen[STORE_NSTREAMS];
    /* What a step answered (ndf_host.node_set_result) and the figures it
     * reported (node_set_metric, an agent's tokens and cost): the result's
     * first STORE_RESULT_LIMIT bytes or fewer (the submitter cuts it) and
     * its full length; the metrics as a JSON object {"name": number, ...}.
     * NULL and 0 when none.  Query: owned like the other strings. */
    char *result;
    size_t result_len;
    char *metrics;
    /* The same, read piece by piece (ztail.h) so that no one holds the
     * whole stream: set instead of zout by the record of an execution's
     * end, freed with the store_exec.  Progress ignores it. */
    struct ztail_reader *zsrc[STORE_NSTREAMS];
} store_node;

/* One execution of a pattern (a sub-pattern's execution is one too, with
 * `parent_id` set).  Submission: strings are read, not kept.  Query: all
 * strings are owned; free with store_exec_free(). */
typedef struct store_exec {
    char *id; /* unique across the store (record_make_id()) */
    char *pattern;
    char *parent_id;  /* the execution that ran this one as a sub-pattern */
    char *redrive_of; /* the execution this one redrives */
    store_origin origin;
    store_status status;
    char *context;        /* the context as JSON text; NULL: none */
    char *domain;         /* the context's domain, for per-domain learning */
    char *host;           /* submission: NULL means this host */
    long pid;             /* submission: 0 means this process, < 0 unknown */
    char *boot_id;        /* submission: NULL means this boot */
    double start, end;    /* wall-clock seconds; end 0 while running */
    double duration;      /* seconds, measured on the monotonic clock */
    char *message;        /* the failure's message, NULL on success */
    char *plugins;        /* plugin generations and hashes it pinned (JSON), or NULL */
    double timeout;       /* its limit in seconds, 0 when none */
    double cpu;           /* cpu seconds its steps were measured to use (node_add_usage) */
    long peak_rss_kb;     /* the largest measured peak of a step's process or worker
                             during its call, 0 when none was measured */
    double confidence;    /* query: the pattern's score after it (set by the store) */
    char *fallback_from;  /* it ran as the fallback of this pattern, or NULL */
    char *fallback_cause; /* why: "failure", "not_found", "confidence", "timeout" */
    int learn;            /* submission: 1 to count the outcome in learning */
    int resumes;          /* submission: a redrive that reuses the completed steps of
                             redrive_of (not --from-start): refused when one of them
                             was undone since (store_begin) */
    int counted;          /* query: 1 when the outcome was counted */
    store_node *nodes;
    size_t nnodes;
} store_exec;

/* Frees what a query filled in (not `e` itself) and zeroes it. */
void store_exec_free(store_exec *e);
/* store_exec_free() on each of `n` executions, then free(v). */
void store_exec_array_free(store_exec *v, size_t n);

typedef enum store_sync {
    STORE_SYNC_NORMAL = 0, /* survives any crash of a process */
    STORE_SYNC_FULL = 1    /* also survives a crash of the machine */
} store_sync;

/* Where the store keeps its data (storage.backend). */
typedef enum store_backend {
    STORE_BACKEND_SQLITE = 0,    /* one database file in the storage directory */
    STORE_BACKEND_POSTGRESQL = 1 /* a PostgreSQL database several hosts share */
} store_backend;

typedef struct store_opts {
    store_sync sync;
    int busy_timeout_ms;   /* wait for another process's write lock; 0: 5000 */
    long history_limit;    /* executions kept per pattern (older pruned); 0: no limit */
    double retention_s;    /* store_cleanup() prunes older executions; 0: keep */
    int backups;           /* backup files store_backup() keeps, 1..100; 0: 5 */
    size_t output_limit;   /* bytes kept per stream and node; 0: STORE_OUTPUT_LIMIT */
    int compression_level; /* zlib level for outputs and backups, 1..9; 0: 6 */
    int batch_max;         /* executions per group-commit transaction; 0: 256 */
    int enable_learning;   /* 0: executions are recorded, never counted */
    learning_params learning;
    int import_legacy; /* 1: store_open() imports old per-pattern files */
    store_backend backend;
    /* PostgreSQL: a libpq connection string ("host=... dbname=..." or a
     * postgresql:// URI) or a service name from pg_service.conf; NULL or ""
     * for libpq's defaults (PGHOST, PGDATABASE, ...).  Borrowed: the store
     * keeps a copy.  It may hold a password; the store never shows it. */
    const char *conninfo;
    /* The crash note of the ndf that last died here (crash.h): recovery
     * adds `crash_cause` to the CRASHED message of the executions of
     * process `crash_pid` on this host.  0 / NULL: none.  Borrowed, and read
     * only by the recovery store_open() makes. */
    long crash_pid;
    const char *crash_cause;
    /* 1 (a one-shot command): a failed progress write is not logged when
     * it happens but at store_close(), and not at all once an execution's
     * end has failed too (the caller reports that one), so a full disk is
     * said once; 0 (a server): the first failure of a run of them is
     * logged at once. */
    int hold_progress_errors;
} store_opts;

/* sync normal, the defaults above, learning on with learning_params_default(),
 * legacy import on. */
void store_opts_default(store_opts *o);

/* The documented default directory: $NDF_STATE_DIR, else
 * $XDG_STATE_HOME/ndf, else $HOME/.local/state/ndf; NULL (err_msg() says
 * why) when none is set.  Caller frees. */
char *store_default_dir(void);

/* Opens (creating when needed, mode 0700 for missing directories, 0600 for
 * the file) the store in directory `dir`: migrates its schema forward,
 * marks executions whose process died as CRASHED, and, when
 * opts->import_legacy, imports the per-pattern files of the old format
 * found in `dir` (see store_import_legacy()).  `opts` NULL means
 * store_opts_default().  A database path that is a symlink, FIFO,
 * directory or device is refused (NDF_ERR_IO); a corrupt database is
 * reported as such, naming the newest backup.  Returns NDF_OK and *out
 * (close with store_close()).  Thread-safe once open.
 * With opts->backend STORE_BACKEND_POSTGRESQL, connects to opts->conninfo
 * instead (`dir` is then only kept for store_dir()), creates or migrates
 * the schema there and recovers this host's dead executions; no legacy
 * import.  NDF_ERR_INVALID when this build has no such backend. */
int store_open(const char *dir, const store_opts *opts, store **out);
/* Waits for queued writes, stops the writer, closes the database. */
void store_close(store *s);
/* The database's path (for messages); owned by the store.  PostgreSQL:
 * "postgresql://USER@HOST:PORT/DBNAME", never a password. */
const char *store_path(const store *s);
/* The storage directory; owned by the store. */
const char *store_dir(const store *s);

/* ---- recording executions ----------------------------------------- */

/* Records `e` as RUNNING (its status is ignored), with the nodes it has so
 * far, and returns after the commit.  NDF_ERR_EXISTS when the id is taken.
 * Recording the start lets crash recovery, `runs` and `logs` see it. */
int store_begin(store *s, const store_exec *e);
/* Records a node's progress in running execution `id` (insert or update by
 * path), and that the execution was heard of now (its heartbeat, the end
 * crash recovery gives it); `n` NULL records the heartbeat alone.  Not
 * waited for: it is queued, and a later
 * store_finish() of the same execution commits after it.  A failure is
 * logged and marks the store degraded; store_finish() records every node
 * again, so the final record does not depend on progress writes. */
int store_progress(store *s, const char *id, const store_node *n);
/* Records the end of execution `e` (inserting it when store_begin() was not
 * called): its row, nodes and outputs, and, when e->learn (and learning is
 * enabled), the outcome in the pattern's learning state.  The learning
 * update reads the stored state and writes it back in the transaction that
 * inserts the rows, so counts are exact whatever processes write at once.
 * Through the group-commit writer: several executions finished by
 * different threads share one transaction; the call returns only after
 * that transaction committed (NDF_OK) or failed (its error).  When `after`
 * is not NULL it receives the pattern's committed learning state (free
 * with learning_free()); NDF_ERR_EXISTS when `e` already ended. */
int store_finish(store *s, const store_exec *e, learning_state *after);
/* store_finish() of `n` executions (an execution and its sub-pattern
 * executions) in one transaction: all are recorded or none.  `after` NULL,
 * or an array of `n` states filled on success. */
int store_finish_all(store *s, const store_exec *v, size_t n, learning_state *after);

/* What store_finish_async() calls once the executions' transaction has
 * committed (`rc` NDF_OK; after[i] holds each execution's committed
 * learning state, which `done` may take, zeroing it, or leave to be
 * freed) or failed (`rc` its status, `msg` its message; after[] empty). */
typedef void (*store_done_fn)(void *arg, int rc, const char *msg, learning_state *after,
                              size_t n);
/* store_finish_all() handed to the writer without waiting for it: `v`
 * (`n` executions, heap-allocated) is taken and freed with
 * store_exec_array_free() once written; `done` (not NULL) is called once
 * with the outcome from the writer's thread.  So a command that answers
 * only when all its executions ended (`ndf batch`) lets one transaction
 * carry many of them instead of one per executor thread.  The caller
 * owes its acknowledgements a store_flush() first.  Returns NDF_OK once
 * queued (the outcome then goes to `done` alone) or the refusal, after
 * which `done` has not been called and `v` has been freed.  A backend
 * without a writer queue (PostgreSQL) writes at once and calls `done`
 * before returning NDF_OK. */
int store_finish_async(store *s, store_exec *v, size_t n, store_done_fn done, void *arg);
/* store_begin() handed to the writer without waiting: `e` is copied;
 * `done` (not NULL) is called once with the outcome (after[] empty) from
 * the writer's thread; later writes of the same execution (progress, its
 * end) are committed after it.  Returns NDF_OK once queued or the
 * refusal (then `done` is not called).  PostgreSQL writes at once and
 * calls `done` before returning NDF_OK. */
int store_begin_async(store *s, const store_exec *e, store_done_fn done, void *arg);
/* Waits until every write queued before the call has been committed or
 * has failed, and its store_finish_async() `done` has returned.  The
 * rule for acknowledging: an execution's end is durable (storage.sync)
 * before the command that ran it exits or prints its result. */
void store_flush(store *s);

/* Records that running execution `id` started a step process: its process
 * group `pgid`, the leader's start time (store_pid_start_time(), clock
 * ticks after boot) and the step's NDF_STEP token.  Queued like
 * store_progress() (not waited for); the execution's end removes the rows.
 * Crash recovery uses them to stop the groups a killed ndf left running
 * (see store_recover()).  A failure is logged and marks the store
 * degraded. */
int store_process(store *s, const char *id, long pgid, long long start, const char *token);

/* ---- queries -------------------------------------------------------- */

typedef struct store_query {
    const char *pattern; /* NULL: every pattern */
    int status;          /* a store_status, or -1 for any */
    double since;        /* wall-clock seconds; executions started at or after; 0: any */
    size_t limit;        /* 0: 50; SIZE_MAX: all */
    int top;             /* 1: top-level executions only (no sub-pattern's) */
    const char *origin;  /* NULL: any; else an origin's name (store_origin_name) */
} store_query;

/* Executions matching `q`, newest first, without their nodes; free with
 * store_exec_array_free(). */
int store_runs(store *s, const store_query *q, store_exec **out, size_t *n);
/* One execution with its nodes (in seq order) into *out (free with
 * store_exec_free()).  NDF_ERR_NOT_FOUND when no such execution is kept. */
int store_get(store *s, const char *id, store_exec *out);
/* The executions that ran as sub-patterns of `id`, oldest first. */
int store_children(store *s, const char *id, store_exec **out, size_t *n);
/* A node's captured stream (STORE_STDOUT, ...), decompressed into *buf
 * (*len bytes, NUL-terminated; caller frees), and how many bytes were
 * dropped before it.  NDF_ERR_NOT_FOUND when the execution or node is not
 * kept; an empty buffer when the node wrote nothing to that stream.
 * Holds the whole output (up to 64 MiB): for small ones; print a big one
 * with store_output_each(). */
int store_output(store *s, const char *id, const char *path, int stream, char **buf, size_t *len,
                 uint64_t *dropped);

/* What store_output_each() hands out: the next `n` (> 0) bytes of the
 * output.  A non-zero return (a negative ndf_status) stops the read,
 * which returns it.  It must not call the store. */
typedef int (*store_output_fn)(void *arg, const char *buf, size_t n);
/* The bytes of an output store_output_each() hands out per call at most. */
#define STORE_OUTPUT_PIECE (64u * 1024u)
/* store_output() piece by piece, so that no one holds the output whole
 * (SQLite reads the stored blob in pieces, PostgreSQL its bytea, both
 * inflated as they come): *len (the stored bytes) and *dropped (those
 * lost before them) are set first, then `each` gets the bytes from offset
 * `from` to the end, in order, from one consistent snapshot of the row.
 * A negative `from` asks for the newest -from bytes (all of them when
 * there are fewer).  Errors as store_output(); a row found damaged part
 * way is NDF_ERR_IO after the pieces before the damage were handed out. */
int store_output_each(store *s, const char *id, const char *path, int stream, int64_t from,
                      store_output_fn each, void *arg, size_t *len, uint64_t *dropped);

/* The pattern's learning state from the patterns table only (no history is
 * read).  NDF_ERR_NOT_FOUND when nothing is stored.  Free with
 * learning_free(). */
int store_learning(store *s, const char *name, learning_state *out);
/* store_learning() of every stored pattern in one read: calls `each` per
 * pattern, in name order, with its state, which `each` may take (zeroing
 * it) or leave to be freed.  What the registry reads at start-up. */
typedef void (*store_learning_fn)(void *arg, const char *name, learning_state *st);
int store_learning_all(store *s, store_learning_fn each, void *arg);
/* Names of the patterns with stored state, sorted; free each and the array. */
int store_patterns(store *s, char ***names, size_t *n);
/* seed reset_stats: the pattern's learning state back to "no executions"
 * (keeping `created`); its kept executions stay, no longer counted.
 * NDF_ERR_NOT_FOUND when nothing is stored. */
int store_reset_stats(store *s, const char *name);
/* seed trigger_rollback, the store's half: claims top-level execution
 * `id` for a rollback in one write transaction, setting it ROLLED_BACK
 * (message `message`, may be NULL) only while it is SUCCEEDED, FAILED,
 * TIMED_OUT, CANCELLED or CRASHED, so that of two rollbacks (processes,
 * servers, hosts sharing the store) exactly one gets it.  Its learning
 * counts are left as they are.  *was and *was_message (may be NULL; caller
 * frees) get the status and message it had.  When it is not claimed, the
 * reason, read from its row: NDF_ERR_NOT_FOUND (no such execution kept)
 * or NDF_ERR_INVALID (a sub-pattern's execution, still running, refused
 * before it ran, already rolled back or being rolled back). */
int store_rollback_claim(store *s, const char *id, const char *message, store_status *was,
                         char **was_message);
/* Records the end of a rollback claimed with store_rollback_claim(), in
 * one transaction: the `n` nodes' new states and messages (by path; the
 * rest of each node is kept), and the execution's status (STORE_ROLLED_BACK,
 * or STORE_FAILED when an undo failed: a later rollback undoes what is
 * left) and message.  NDF_ERR_NOT_FOUND when the execution is no longer
 * ROLLED_BACK (pruned since, or its claim was not this caller's).  A
 * claim given back without a rollback: the status and message it had
 * (*was), no nodes. */
int store_rollback_end(store *s, const char *id, store_status status, const char *message,
                       const store_node *nodes, size_t n);
/* Removes the pattern's state and all its executions.  NDF_ERR_NOT_FOUND
 * when there was nothing. */
int store_remove_pattern(store *s, const char *name);

/* ---- maintenance ---------------------------------------------------- */

typedef struct store_cleanup_result {
    uint64_t executions; /* executions removed */
    uint64_t pages;      /* database pages given back to the file system */
} store_cleanup_result;

/* Removes executions beyond `history_limit` per pattern (0: no limit) and
 * those that ended more than `max_age_s` before `now` (0: no age limit),
 * keeping running ones and keeping the counts exact, then gives the freed
 * space back (incremental vacuum).  `res` may be NULL. */
int store_cleanup(store *s, long history_limit, double max_age_s, double now,
                  store_cleanup_result *res);

/* Writes a consistent online copy of the database (while writers go on) as
 * a gzip file <dir>/backups/ndf-<UTC time>.db.gz, then removes the oldest
 * backups beyond opts.backups.  *path_out (may be NULL) gets the file's
 * path; caller frees. */
int store_backup(store *s, char **path_out);
/* store_backup() every `interval_s` seconds, from a thread of its own
 * (ndf serve's storage.backup_interval), the first `interval_s` after the
 * call; a new interval starts the count over, 0 stops them (returning
 * after a backup being written, if any, has ended).  A backup that
 * fails is logged at error priority and tried again an interval later.
 * store_close() waits for a backup in progress. */
int store_backup_every(store *s, double interval_s);
/* The newest backup file in the storage directory `dir`, or NULL when there
 * is none.  Caller frees. */
char *store_newest_backup(const char *dir);
/* Replaces the database in `dir` with backup `file` (gzip or plain
 * SQLite).  The file is checked first (an ndf database, not newer than this
 * build, passing an integrity check).  A healthy database is overwritten
 * in place through the database itself, so processes that have it open
 * see the restored contents; a corrupt one is moved aside as
 * ndf.db.corrupt-<time> first.  The schema is then migrated forward. */
int store_restore(const char *dir, const store_opts *opts, const char *file);

typedef enum store_format {
    STORE_FORMAT_JSON = 0,
    STORE_FORMAT_CSV = 1,
    STORE_FORMAT_YAML = 2
} store_format;
/* Returns 0 and *out for "json", "csv" or "yaml", else -1. */
int store_format_parse(const char *name, store_format *out);
/* Appends the pattern's learning state and kept executions (oldest first,
 * with ids, contexts and nodes) to `sb`.  JSON: one document; CSV (RFC
 * 4180, CRLF): a header row, then one row per execution; YAML: the JSON
 * document's tree.  NDF_ERR_NOT_FOUND when nothing is stored. */
int store_export(store *s, const char *name, store_format fmt, strbuf *sb);

/* Imports the per-pattern files of the old storage format found in
 * directory `dir` (learning state and history, through storage.c's
 * loader) in one transaction, then moves the files aside into
 * <dir>/legacy-<UTC time>/.  A pattern already in the store is left as it
 * is (its files are still moved aside).  *imported (may be NULL) gets the
 * number of patterns imported.  Nothing is moved when the transaction
 * fails. */
int store_import_legacy(store *s, const char *dir, size_t *imported);

/* Marks RUNNING executions of processes that are no longer alive (same
 * host, and another boot or a dead pid) as CRASHED, naming the node that
 * was running, with the last time the store heard of them (the newest
 * node start or end) as their end.  On the same boot it also kills the
 * step process groups they recorded (store_process()) that are still
 * there.  Done by store_open(); *n (may be NULL) gets the count. */
int store_recover(store *s, size_t *n);

/* For tests: checks that for every pattern the executions counted in its
 * learning state equal its counted execution rows (plus those pruned).
 * NDF_OK, or NDF_ERR_VALIDATION naming the first pattern that differs. */
int store_check(store *s);

typedef struct store_stats {
    uint64_t transactions; /* group-commit transactions committed */
    uint64_t executions;   /* executions finished through them */
    uint64_t queued;       /* writes waiting for the writer now */
    uint64_t pending;      /* writes queued or being committed (not yet answered) */
    int degraded;          /* the last write failed */
    int schema;            /* STORE_SCHEMA_VERSION */
    /* the message of the last write that failed for the store's sake (not
     * for its caller's: a duplicate id, a refused redrive), "" when none
     * failed since it was opened, and when (wall-clock seconds, 0: never) */
    char last_error[512];
    double last_error_time;
} store_stats;

void store_get_stats(store *s, store_stats *out);

/* ---- backends ------------------------------------------------------- */

/* "sqlite", "postgresql". */
const char *store_backend_name(store_backend b);
/* Returns 0 and *out for "sqlite" or "postgresql" (case-insensitive), else -1. */
int store_backend_parse(const char *name, store_backend *out);
/* 1 when this build has backend `b` (PostgreSQL needs libpq at build time). */
int store_backend_available(store_backend b);
/* The backend an open store uses. */
store_backend store_get_backend(const store *s);

#endif

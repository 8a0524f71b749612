/* The store on SQLite: one database file (WAL) in the storage directory,
 * a group-commit writer thread, exact learning increments inside the
 * transaction that records an execution, crash recovery, retention,
 * online backups, exports and the import of the old per-pattern files.
 *
 * Two connections per store: `w` for every write (the writer thread and
 * the maintenance calls, serialized by wlock) and `r` for queries (rlock),
 * so that readers never wait for a group commit (WAL lets them run beside
 * it).  SQLite, cJSON, zlib and libyaml stay inside this file. */
#include "build-config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <sqlite3.h>
#include <yaml.h>
#include <zlib.h>
#include <ndf/sdk.h>

#include "base/fsutil.h"
#include "base/hashmap.h"
#include "store/storage.h"
#include "store/store.h"
#include "store/store_backend.h"
#include "store/defs.h"
#include "store/unrec.h"

/* PRAGMA application_id of an ndf database ("ndf1"), so that restore and
 * open refuse another program's SQLite file. */
#define STORE_APP_ID 0x6e646631

/* ------------------------------------------------------------------ */
/* names */

static const char *const status_names[] = {"RUNNING",   "SUCCEEDED", "FAILED",      "TIMED_OUT",
                                           "CANCELLED", "REFUSED",   "ROLLED_BACK", "CRASHED"};
static const char *const origin_names[] = {"run",     "batch",    "ctl",  "delegate",
                                           "redrive", "external", "queue"};
/* ndf_state and ndf_node_kind as stored (the record's names). */
static const char *const state_names[] = {"PENDING",   "RUNNING",   "COMPLETED",
                                          "FAILED",    "SKIPPED",   "ROLLED_BACK",
                                          "CANCELLED", "TIMED_OUT", "DEGRADED"};
static const char *const kind_names[] = {"?", "pattern", "phase", "task", "step"};

const char *store_status_name(store_status s)
{
    return (unsigned)s < ARRAY_SIZE(status_names) ? status_names[s] : "UNKNOWN";
}

int store_status_parse(const char *name, store_status *out)
{
    for (size_t i = 0; name && i < ARRAY_SIZE(status_names); i++) {
        if (strcasecmp(name, status_names[i]) == 0) {
            *out = (store_status)i;
            return 0;
        }
    }
    return -1;
}

const char *store_origin_name(store_origin o)
{
    return (unsigned)o < ARRAY_SIZE(origin_names) ? origin_names[o] : "external";
}

int store_origin_parse(const char *name, store_origin *out)
{
    for (size_t i = 0; name && i < ARRAY_SIZE(origin_names); i++) {
        if (strcasecmp(name, origin_names[i]) == 0) {
            *out = (store_origin)i;
            return 0;
        }
    }
    return -1;
}

static int lookup(const char *const *names, size_t n, const char *s, int def)
{
    for (size_t i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return (int)i;
    return def;
}

static const char *state_str(int st)
{
    return (unsigned)st < ARRAY_SIZE(state_names) ? state_names[st] : "PENDING";
}

static const char *kind_str(int k)
{
    return k > 0 && (unsigned)k < ARRAY_SIZE(kind_names) ? kind_names[k] : "step";
}

void store_exec_free(store_exec *e)
{
    if (!e)
        return;
    free(e->id);
    free(e->pattern);
    free(e->parent_id);
    free(e->redrive_of);
    free(e->context);
    free(e->domain);
    free(e->host);
    free(e->boot_id);
    free(e->message);
    free(e->plugins);
    free(e->fallback_from);
    free(e->fallback_cause);
    for (size_t i = 0; i < e->nnodes; i++) {
        free(e->nodes[i].path);
        free(e->nodes[i].message);
        free(e->nodes[i].result);
        free(e->nodes[i].metrics);
        for (int k = 0; k < STORE_NSTREAMS; k++)
            free(e->nodes[i].out[k]), free(e->nodes[i].zout[k]),
                ztail_reader_free(e->nodes[i].zsrc[k]);
    }
    free(e->nodes);
    memset(e, 0, sizeof *e);
}

void store_exec_array_free(store_exec *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_exec_free(&v[i]);
    free(v);
}

void store_opts_default(store_opts *o)
{
    memset(o, 0, sizeof *o);
    o->sync = STORE_SYNC_NORMAL;
    o->enable_learning = 1;
    o->import_legacy = 1;
    learning_params_default(&o->learning);
}

/* ------------------------------------------------------------------ */
/* the handle */

/* A write for the writer thread.  BEGIN and FINISH jobs live on the
 * waiting caller's stack and point at its execution; PROGRESS jobs are
 * heap copies nobody waits for. */
typedef enum job_kind { JOB_BEGIN, JOB_FINISH, JOB_PROGRESS, JOB_PROCESS } job_kind;

typedef struct job {
    job_kind kind;
    const store_exec *e; /* BEGIN: one; FINISH: `ne` of them, one transaction */
    size_t ne;
    char *id;              /* PROGRESS, PROCESS: owned */
    store_node node;       /* PROGRESS: owned copy */
    char *token;           /* PROCESS: owned */
    long pgid;             /* PROCESS */
    long long pstart;      /* PROCESS */
    learning_state *after; /* FINISH: `ne` of them filled when not NULL */
    size_t have_after;     /* how many of them are filled */
    int rc;
    char *msg; /* the error's message, owned */
    int done;
    /* FINISH by store_finish_async(): a heap job nobody waits for, owning
     * its executions (`owned`, `ne` of them) and `after`; `on_done` is
     * told the outcome */
    store_done_fn on_done;
    void *done_arg;
    store_exec *owned;
    struct job *next;
} job;

/* Writer statements, prepared once on `w`. */
enum {
    W_BEGIN,
    W_COMMIT,
    W_ROLLBACK,
    W_SAVEPOINT,
    W_RELEASE,
    W_ROLLBACK_TO,
    W_FIND,
    W_INSERT_EXEC,
    W_UPDATE_EXEC,
    W_UPSERT_NODE,
    W_UPSERT_OUTPUT,
    W_LOAD_PATTERN,
    W_LOAD_DOMAIN,
    W_UPSERT_PATTERN,
    W_UPSERT_DOMAIN,
    W_ALL_DOMAINS,
    W_PRUNE_LIST,
    W_DEL_NODES,
    W_DEL_OUTPUTS,
    W_DEL_EXEC,
    W_ADD_PRUNED,
    W_SET_CONFIDENCE,
    W_CLAIM_HOLDER,
    W_ADD_PROCESS,
    W_DEL_PROCESSES,
    W_NODE_RESULT,
    W_HEARTBEAT,
    W_COUNT
};

static const char *const wsql[W_COUNT] = {
    [W_BEGIN] = "BEGIN IMMEDIATE",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
    [W_SAVEPOINT] = "SAVEPOINT job",
    [W_RELEASE] = "RELEASE job",
    [W_ROLLBACK_TO] = "ROLLBACK TO job",
    [W_FIND] = "SELECT seq, status FROM executions WHERE id = ?1",
    [W_INSERT_EXEC] =
        "INSERT INTO executions (id, pattern, parent_id, redrive_of, origin, status, context,"
        " domain, host, pid, boot_id, pid_start, start_time, end_time, duration, message,"
        " plugins, counted, timeout, cpu, peak_rss_kb, fallback_from, fallback_cause,"
        " redrive_root) VALUES"
        " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,"
        " ?19, ?20, ?21, ?22, ?23, " SQL_REDRIVE_ROOT("?4") ")",
    [W_UPDATE_EXEC] = "UPDATE executions SET status = ?2, end_time = ?3, duration = ?4,"
                      " message = ?5, counted = ?6, context = coalesce(?7, context),"
                      " plugins = coalesce(?8, plugins), domain = coalesce(?9, domain),"
                      " timeout = ?10, cpu = ?11, peak_rss_kb = ?12,"
                      " fallback_from = coalesce(?13, fallback_from),"
                      " fallback_cause = coalesce(?14, fallback_cause) WHERE seq = ?1",
    [W_UPSERT_NODE] =
        "INSERT INTO nodes (exec_seq, path, seq, kind, state, start_time, end_time, attempt,"
        " exit_status, message, timeout) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        " ON CONFLICT (exec_seq, path) DO UPDATE SET seq = excluded.seq, kind = excluded.kind,"
        " state = excluded.state, start_time = excluded.start_time,"
        " end_time = excluded.end_time, attempt = excluded.attempt,"
        " exit_status = excluded.exit_status, message = excluded.message,"
        " timeout = excluded.timeout",
    [W_UPSERT_OUTPUT] =
        "INSERT INTO outputs (exec_seq, path, stream, length, dropped, data)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (exec_seq, path, stream) DO UPDATE SET"
        " length = excluded.length, dropped = excluded.dropped, data = excluded.data",
    [W_LOAD_PATTERN] = "SELECT executions, successes, score, alpha, beta, converged, last_used,"
                       " created, duration_total, timed FROM patterns WHERE name = ?1",
    [W_LOAD_DOMAIN] = "SELECT executions, successes FROM pattern_domains"
                      " WHERE pattern = ?1 AND domain = ?2",
    [W_UPSERT_PATTERN] =
        "INSERT INTO patterns (name, executions, successes, score, alpha, beta, converged,"
        " last_used, created, duration_total, timed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
        " ?9, ?10, ?11) ON CONFLICT (name) DO UPDATE SET executions = excluded.executions,"
        " successes = excluded.successes, score = excluded.score, alpha = excluded.alpha,"
        " beta = excluded.beta, converged = excluded.converged,"
        " last_used = excluded.last_used, duration_total = excluded.duration_total,"
        " timed = excluded.timed",
    [W_UPSERT_DOMAIN] = "INSERT INTO pattern_domains (pattern, domain, executions, successes)"
                        " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (pattern, domain) DO UPDATE SET"
                        " executions = excluded.executions, successes = excluded.successes",
    [W_ALL_DOMAINS] = "SELECT domain, executions, successes FROM pattern_domains"
                      " WHERE pattern = ?1 ORDER BY domain",
    [W_PRUNE_LIST] = "SELECT seq, counted FROM executions WHERE pattern = ?1"
                     " AND status <> 'RUNNING' AND id NOT IN (SELECT exec_id FROM rollback_claims)"
                     " ORDER BY seq DESC LIMIT -1 OFFSET ?2",
    [W_DEL_NODES] = "DELETE FROM nodes WHERE exec_seq = ?1",
    [W_DEL_OUTPUTS] = "DELETE FROM outputs WHERE exec_seq = ?1",
    [W_DEL_EXEC] = "DELETE FROM executions WHERE seq = ?1",
    [W_ADD_PRUNED] = "UPDATE patterns SET pruned = pruned + ?2 WHERE name = ?1",
    [W_SET_CONFIDENCE] = "UPDATE executions SET confidence = ?2 WHERE seq = ?1",
    [W_CLAIM_HOLDER] = SQL_CLAIM_HOLDER("?1"),
    [W_ADD_PROCESS] = "INSERT INTO step_processes (exec_id, pgid, pid_start, token)"
                      " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (exec_id, pgid) DO UPDATE SET"
                      " pid_start = excluded.pid_start, token = excluded.token",
    [W_DEL_PROCESSES] = "DELETE FROM step_processes WHERE exec_id = ?1",
    [W_NODE_RESULT] = "UPDATE nodes SET result = ?3, result_length = ?4, metrics = ?5"
                      " WHERE exec_seq = ?1 AND path = ?2",
    [W_HEARTBEAT] = "UPDATE executions SET heartbeat = ?2 WHERE seq = ?1",
};

struct store {
    const store_ops *ops; /* first: store.c finds the backend through it */
    char *dir;
    char *path;
    store_opts opts;
    char host[256];
    char boot_id[64];

    pthread_mutex_t wlock; /* guards w, ws[], since_prune */
    sqlite3 *w;
    sqlite3_stmt *ws[W_COUNT];
    /* executions recorded per pattern since its last prune: the prune (a
     * scan of up to history_limit rows) runs every history_limit/16 of
     * them, not after every commit */
    hashmap *since_prune;
    long own_pid; /* (wlock) the process own_start is of */
    unrec *note;  /* (wlock) the unrecorded-end note; NULL: none to use */
    long long own_start;

    pthread_mutex_t rlock; /* guards r, rs[], rgen */
    sqlite3 *r;
    /* how many times the writer recreated a removed database file
     * (recreate_moved); the reader reopens when its rgen is older, so
     * that a read never costs a stat of the path */
    _Atomic unsigned wgen;
    unsigned rgen;
    sqlite3_stmt *rs[2]; /* the registry's start-up reads, prepared once */

    /* the writer: a queue of jobs, committed by the writer thread or by a
     * caller waiting for its own (submit_wait) */
    pthread_mutex_t qlock;
    pthread_cond_t qcv; /* the writer waits for jobs */
    pthread_cond_t dcv; /* callers wait for their job */
    job *head, *tail;
    size_t queued;    /* jobs waiting for the writer */
    size_t queued_cb; /* of those, jobs with a callback (on_done) */
    size_t pending;   /* jobs queued or in the batch being committed */
    int busy;         /* a batch is being committed (commit_queued) */
    /* jobs ever queued, and ever answered (in queue order): store_flush()
     * waits for the second to reach what the first was */
    uint64_t enqueued, answered;
    int started, stopping;
    pthread_t thread;
    uint64_t transactions, executions; /* (qlock) */
    int degraded;                      /* (qlock) */
    char last_error[512];              /* (qlock) store_stats */
    store_perr perr;                   /* (qlock) */
    double last_error_time;            /* (qlock) */

    /* interval backups (store_backup_every) */
    pthread_mutex_t block;
    pthread_cond_t bcv;
    pthread_t bthread;
    int bstarted, bstopping; /* (block) */
    int brunning;            /* (block) a backup is being written */
    double binterval;        /* (block) seconds; 0: none */
};

static const store_ops lite_ops;

/* ------------------------------------------------------------------ */
/* errors */

static int is_corrupt(int rc)
{
    rc &= 0xff;
    return rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB;
}

/* Sets the message for SQLite result `rc` on connection `db` while doing
 * `what`: the database's path, what failed, SQLite's diagnosis; for a
 * corrupt database, the newest backup to restore from. */
static int db_fail(const char *dir, const char *path, sqlite3 *db, int rc, const char *what)
{
    const char *why = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    if (is_corrupt(rc) && !dir) /* a file offered as a backup, not the store */
        return err_set(NDF_ERR_IO, "%s is not a usable database (SQLite: %s)", path, why);
    if (is_corrupt(rc)) {
        char *b = store_newest_backup(dir);
        int st;
        if (b)
            st = err_set(NDF_ERR_IO,
                         "%s: the database is corrupt (SQLite: %s); restore the newest "
                         "backup with: ndf restore %s",
                         path, why, b);
        else
            st = err_set(NDF_ERR_IO,
                         "%s: the database is corrupt (SQLite: %s); there is no backup in "
                         "%s/backups",
                         path, why, dir);
        free(b);
        return st;
    }
    /* "disk I/O error" alone does not tell a full disk from a failing one:
     * the system's own reason does */
    int se = db ? sqlite3_system_errno(db) : 0;
    if (se && ((rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_FULL ||
               (rc & 0xff) == SQLITE_CANTOPEN || (rc & 0xff) == SQLITE_READONLY))
        return err_set(NDF_ERR_IO, "%s: %s: %s (%s)", path, what, why, strerror(se));
    return err_set(NDF_ERR_IO, "%s: %s: %s", path, what, why);
}

static int wfail(store *s, int rc, const char *what)
{
    return db_fail(s->dir, s->path, s->w, rc, what);
}

static int rfail(store *s, int rc, const char *what)
{
    return db_fail(s->dir, s->path, s->r, rc, what);
}

/* ------------------------------------------------------------------ */
/* small helpers */

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? xstrdup((const char *)t) : NULL;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

/* A time column: NULL for "unset" (0), else the seconds. */
static void bind_time(sqlite3_stmt *st, int i, double t)
{
    if (t > 0 && isfinite(t))
        sqlite3_bind_double(st, i, t);
    else
        sqlite3_bind_null(st, i);
}

static const char *file_type(mode_t m)
{
    if (S_ISLNK(m))
        return "a symbolic link";
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    if (S_ISSOCK(m))
        return "a socket";
    return "not a regular file";
}

/* Refuses a path that exists as anything but a regular file (a symlink
 * could point the database anywhere; a FIFO would hang the open).  The
 * O_PATH open neither follows the link nor touches a device. */
static int check_regular(const char *path)
{
    int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return NDF_OK;
        return err_set(NDF_ERR_IO, "%s: %s", path, strerror(errno));
    }
    struct stat st;
    int rc = fstat(fd, &st);
    int e = errno;
    close(fd);
    if (rc != 0)
        return err_set(NDF_ERR_IO, "%s: %s", path, strerror(e));
    if (!S_ISREG(st.st_mode))
        return err_set(NDF_ERR_IO, "%s is %s, not a database file; refusing to use it", path,
                       file_type(st.st_mode));
    return NDF_OK;
}

/* The database and the two files SQLite keeps beside it in WAL mode. */
static int check_db_files(const char *path)
{
    static const char *const suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < ARRAY_SIZE(suffix); i++) {
        char *p = xasprintf("%s%s", path, suffix[i]);
        int rc = check_regular(p);
        free(p);
        if (rc)
            return rc;
    }
    return NDF_OK;
}

static void read_boot_id(char *out, size_t n)
{
    out[0] = 0;
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        if (fgets(out, (int)n, f))
            out[strcspn(out, "\n")] = 0;
        fclose(f);
    }
}

/* The start time of process `pid` (clock ticks after boot, field 22 of
 * /proc/PID/stat), which tells a live process from a later one that got the
 * same pid; 0 when unknown. */
static long long pid_start_time(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* the command name may hold spaces and parentheses: fields follow the last ')' */
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    p++;
    for (int field = 3; field < 22 && p; field++)
        p = strchr(p + 1, ' ');
    return p ? strtoll(p + 1, NULL, 10) : 0;
}

/* This process's start time, read from /proc once (per process: a forked
 * child reads its own), not once per execution.  Caller holds wlock. */
static long long own_start_time(store *s)
{
    long pid = (long)getpid();
    if (s->own_pid != pid) {
        s->own_pid = pid;
        s->own_start = pid_start_time(pid);
    }
    return s->own_start;
}

static void utc_stamp(char *buf, size_t n, int millis)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y%m%dT%H%M%S", &tm);
    if (millis)
        snprintf(buf, n, "%s.%03ldZ", base, ts.tv_nsec / 1000000);
    else
        snprintf(buf, n, "%sZ", base);
}

/* ------------------------------------------------------------------ */
/* schema */

/* Forward migrations: migrations[v] takes a database from user_version v
 * to v + 1.  Plain SQL that PostgreSQL also reads, except the types of
 * the SQLite-only column affinities (REAL, BLOB). */
static const char *const migrations[STORE_SCHEMA_VERSION] = {
    /* 0 -> 1 */
    "CREATE TABLE patterns ("
    " name TEXT PRIMARY KEY,"
    " executions INTEGER NOT NULL DEFAULT 0,"
    " successes INTEGER NOT NULL DEFAULT 0,"
    " score REAL NOT NULL, alpha REAL NOT NULL, beta REAL NOT NULL,"
    " converged INTEGER NOT NULL DEFAULT 0,"
    " last_used REAL NOT NULL DEFAULT 0,"
    " created REAL NOT NULL DEFAULT 0,"
    " duration_total REAL NOT NULL DEFAULT 0,"
    " timed INTEGER NOT NULL DEFAULT 0,"
    " pruned INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE pattern_domains ("
    " pattern TEXT NOT NULL, domain TEXT NOT NULL,"
    " executions INTEGER NOT NULL, successes INTEGER NOT NULL,"
    " PRIMARY KEY (pattern, domain));"
    "CREATE TABLE executions ("
    " seq INTEGER PRIMARY KEY,"
    " id TEXT NOT NULL UNIQUE,"
    " pattern TEXT NOT NULL,"
    " parent_id TEXT, redrive_of TEXT,"
    " origin TEXT NOT NULL, status TEXT NOT NULL,"
    " context TEXT, domain TEXT,"
    " host TEXT, pid INTEGER, boot_id TEXT, pid_start INTEGER,"
    " start_time REAL, end_time REAL, duration REAL,"
    " message TEXT, plugins TEXT,"
    " timeout REAL, cpu REAL, peak_rss_kb INTEGER, confidence REAL,"
    " fallback_from TEXT, fallback_cause TEXT,"
    " counted INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX executions_pattern ON executions (pattern, seq);"
    "CREATE INDEX executions_status ON executions (status, seq);"
    "CREATE INDEX executions_parent ON executions (parent_id);"
    "CREATE TABLE nodes ("
    " exec_seq INTEGER NOT NULL, path TEXT NOT NULL, seq INTEGER NOT NULL,"
    " kind TEXT NOT NULL, state TEXT NOT NULL,"
    " start_time REAL, end_time REAL,"
    " attempt INTEGER NOT NULL DEFAULT 1, exit_status INTEGER, message TEXT, timeout REAL,"
    " PRIMARY KEY (exec_seq, path));"
    "CREATE TABLE outputs ("
    " exec_seq INTEGER NOT NULL, path TEXT NOT NULL, stream INTEGER NOT NULL,"
    " length INTEGER NOT NULL, dropped INTEGER NOT NULL, data BLOB NOT NULL,"
    " PRIMARY KEY (exec_seq, path, stream));",
    /* 1 -> 2: the redrive claim.  redrive_root is the execution a chain of
     * redrives started from; at most one redrive per chain may be RUNNING
     * or have SUCCEEDED, which the index enforces across processes.  Rows
     * written before keep NULL (never in conflict). */
    "ALTER TABLE executions ADD COLUMN redrive_root TEXT;"
    "CREATE UNIQUE INDEX executions_redrive_claim ON executions (redrive_root)"
    " WHERE status IN ('RUNNING', 'SUCCEEDED');",
    /* 2 -> 3: the process groups of the steps an execution runs, so that
     * crash recovery can stop what a killed ndf left running */
    "CREATE TABLE step_processes ("
    " exec_id TEXT NOT NULL, pgid INTEGER NOT NULL, pid_start INTEGER NOT NULL,"
    " token TEXT NOT NULL, PRIMARY KEY (exec_id, pgid));",
    /* 3 -> 4: what a step answered and the figures it reported (an
     * agent's result, tokens and cost), so that `status` shows them after
     * the fact; rows written before keep NULL */
    "ALTER TABLE nodes ADD COLUMN result TEXT;"
    "ALTER TABLE nodes ADD COLUMN result_length INTEGER;"
    "ALTER TABLE nodes ADD COLUMN metrics TEXT;",
    /* 4 -> 5: run-time definitions (ndf define, ndf edit, ndf setting):
     * a pattern's whole definition as libconfig text, or one global
     * setting's value, with when and by whom */
    "CREATE TABLE runtime_defs ("
    " kind TEXT NOT NULL, name TEXT NOT NULL, text TEXT NOT NULL,"
    " time REAL NOT NULL, uid INTEGER NOT NULL, PRIMARY KEY (kind, name));",
    /* 5 -> 6: when the store last heard of a running execution (its
     * progress writes touch it), the end crash recovery gives it */
    "ALTER TABLE executions ADD COLUMN heartbeat REAL;",
    /* 6 -> 7: a count of the changes to runtime_defs, moved in the
     * transaction of each, so that a server sees another process's change
     * with one read of one row (store_defs_version) */
    "CREATE TABLE runtime_defs_version (id INTEGER PRIMARY KEY CHECK (id = 0),"
    " n INTEGER NOT NULL);"
    "INSERT INTO runtime_defs_version (id, n) VALUES (0, 0);",
    /* 7 -> 8: who holds a rollback's claim on an execution (its process,
     * named as a RUNNING row names its own) and what the execution was,
     * so that crash recovery can tell a claim whose rollback died */
    "CREATE TABLE rollback_claims ("
    " exec_id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, boot_id TEXT,"
    " pid_start INTEGER, time REAL NOT NULL, was_status TEXT NOT NULL, was_message TEXT);"
    /* the claims an older ndf made, named only in the execution's message
     * ("being rolled back by ndf process PID on HOST"): given a holder so
     * that recovery, retention and the redrive refusal see them.  Its boot
     * and start time were not kept (recovery then goes by the pid alone),
     * nor the status it had. */
    "INSERT INTO rollback_claims (exec_id, host, pid, boot_id, pid_start, time, was_status,"
    " was_message)"
    " SELECT id, substr(rest, instr(rest, ' on ') + 4),"
    " CAST(substr(rest, 1, instr(rest, ' on ') - 1) AS INTEGER), NULL, NULL,"
    " (julianday('now') - 2440587.5) * 86400.0, 'FAILED', '" STORE_CLAIM_UNRECORDED "'"
    " FROM (SELECT id, substr(message, 34) AS rest FROM executions"
    " WHERE status = 'ROLLED_BACK' AND message LIKE 'being rolled back by ndf process % on %')"
    " WHERE instr(rest, ' on ') > 1"
    " AND substr(rest, 1, instr(rest, ' on ') - 1) NOT GLOB '*[^0-9]*';",
};

static int pragma_int(sqlite3 *db, const char *sql, long long *out)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        *out = 0;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Checks that `db` is an ndf database this build can use: ours (or empty),
 * not newer.  *version gets its user_version. */
static int check_identity(const char *dir, const char *path, sqlite3 *db, long long *version)
{
    long long app = 0, tables = 0;
    int rc;
    if ((rc = pragma_int(db, "PRAGMA user_version", version)) ||
        (rc = pragma_int(db, "PRAGMA application_id", &app)) ||
        (rc = pragma_int(db, "SELECT count(*) FROM sqlite_master", &tables)))
        return db_fail(dir, path, db, rc, "cannot read the schema");
    if (app != STORE_APP_ID && (app != 0 || tables > 0))
        return err_set(NDF_ERR_IO,
                       "%s is not an ndf database (application id %#llx, %lld objects); "
                       "refusing to use it",
                       path, (unsigned long long)app, tables);
    if (*version > STORE_SCHEMA_VERSION)
        return err_set(NDF_ERR_IO,
                       "%s: schema version %lld was written by a newer ndf (this one reads "
                       "up to %d); upgrade ndf or restore an older backup",
                       path, *version, STORE_SCHEMA_VERSION);
    return NDF_OK;
}

/* Applies the missing migrations, each in its own transaction, rechecking
 * the version inside it: another process may be migrating at once. */
static int migrate(const char *dir, const char *path, sqlite3 *db)
{
    long long v;
    int rc = check_identity(dir, path, db, &v);
    if (rc)
        return rc;
    while (v < STORE_SCHEMA_VERSION) {
        char *err = NULL;
        if ((rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK)
            return db_fail(dir, path, db, rc, "cannot migrate the schema");
        if ((rc = pragma_int(db, "PRAGMA user_version", &v)) != SQLITE_OK)
            goto fail;
        if (v >= STORE_SCHEMA_VERSION) {
            sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
            break;
        }
        char *bump = xasprintf("PRAGMA user_version = %lld; PRAGMA application_id = %d", v + 1,
                               STORE_APP_ID);
        rc = sqlite3_exec(db, migrations[v], NULL, NULL, &err);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, bump, NULL, NULL, &err);
        free(bump);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &err);
        sqlite3_free(err);
        if (rc != SQLITE_OK)
            goto fail;
        v++;
    }
    return NDF_OK;
fail:;
    int st = db_fail(dir, path, db, rc, "cannot migrate the schema");
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return st;
}

/* Opens a connection to the database at `path` with ndf's settings. */
static int connect(const char *dir, const char *path, const store_opts *o, int create,
                   sqlite3 **out)
{
    sqlite3 *db = NULL;
    int rc = check_db_files(path);
    if (rc)
        return rc;
    if (create) {
        /* create it ourselves, so it is 0600 (SQLite's journals copy the mode) */
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
        else if (errno != EEXIST)
            return err_set(NDF_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    }
    /* auto_vacuum can only be chosen before the first table, and setting
     * it takes the write lock: only on a new (empty) file */
    struct stat sb;
    int fresh = stat(path, &sb) == 0 && sb.st_size == 0;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW;
    rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        int st = db_fail(dir, path, db, rc, "cannot open");
        sqlite3_close(db);
        return st;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, o->busy_timeout_ms > 0 ? o->busy_timeout_ms : 5000);
    /* cache_size: 16 MiB at most (allocated as pages are read), not
     * SQLite's 2 MiB: with a million executions kept, the indexes an
     * insert walks no longer fit in 2 MiB and the rate fell to about half */
    char *sql = xasprintf("%s PRAGMA journal_mode = WAL; PRAGMA cache_size = -16384;"
                          " PRAGMA synchronous = %s; PRAGMA foreign_keys = OFF",
                          fresh ? "PRAGMA auto_vacuum = INCREMENTAL;" : "",
                          o->sync == STORE_SYNC_FULL ? "FULL" : "NORMAL");
    rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    free(sql);
    long long wal = 0;
    if (rc == SQLITE_OK) {
        /* journal_mode answers with the mode it got: check it is WAL */
        sqlite3_stmt *st;
        rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
        if (rc == SQLITE_OK) {
            if (sqlite3_step(st) == SQLITE_ROW) {
                const char *m = (const char *)sqlite3_column_text(st, 0);
                wal = m && strcmp(m, "wal") == 0;
            }
            rc = sqlite3_finalize(st);
        }
    }
    if (rc != SQLITE_OK) {
        int st = db_fail(dir, path, db, rc, "cannot open");
        sqlite3_close(db);
        return st;
    }
    if (!wal) {
        sqlite3_close(db);
        return err_set(NDF_ERR_IO, "%s: cannot switch the database to WAL mode", path);
    }
    *out = db;
    return NDF_OK;
}

/* SQLite goes on writing into a database file that was unlinked or
 * renamed while open (the directory removed under a server), losing every
 * later write at exit: each write transaction checks first. */
static int check_moved(const char *path, sqlite3 *db)
{
    int moved = 0;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) == SQLITE_OK && moved)
        return err_set(NDF_ERR_IO,
                       "%s: the database file was removed or replaced while in use; "
                       "not writing into a deleted file (restart ndf to recreate it)",
                       path);
    return NDF_OK;
}

static int copy_db(sqlite3 *to, sqlite3 *from, int timeout_ms, int *sqlite_rc);
static int prepare_dir(const char *d);

/* The database file, or its whole directory, was removed while the writer
 * had it open (an operator's rm -rf under a server).  With wlock held and
 * no transaction open: recreates the directory and the file from the
 * contents the writer still reads through its open descriptors, so the
 * server goes on recording and keeps what it had.  Only when nothing took
 * the path's place (a file put there is not ours to overwrite).  NDF_OK
 * when the writer has a database at the path again. */
static int recreate_moved(store *s)
{
    int rc = check_moved(s->path, s->w);
    if (!rc)
        return NDF_OK;
    struct stat sb;
    if (lstat(s->path, &sb) == 0 || errno != ENOENT)
        return rc;
    char *why = xstrdup(err_msg());
    sqlite3 *nw = NULL;
    int sr = SQLITE_OK;
    if ((rc = prepare_dir(s->dir)) || (rc = connect(s->dir, s->path, &s->opts, 1, &nw)))
        goto fail;
    if (copy_db(nw, s->w, s->opts.busy_timeout_ms > 0 ? s->opts.busy_timeout_ms : 5000, &sr)) {
        rc = db_fail(s->dir, s->path, nw, sr, "cannot recreate the removed database");
        sqlite3_close(nw);
        nw = NULL;
        unlink(s->path); /* half a copy is no database to leave for the next open */
        goto fail;
    }
    for (int i = 0; i < W_COUNT; i++) {
        sqlite3_finalize(s->ws[i]);
        s->ws[i] = NULL;
    }
    sqlite3_close(s->w);
    s->w = nw;
    atomic_fetch_add(&s->wgen, 1);
    log_msg(NDF_LOG_WARN,
            "%s: the database file was removed while in use; recreated it, with everything "
            "it held, from the copy still open",
            s->path);
    free(why);
    return NDF_OK;
fail:;
    char *how = xstrdup(err_msg());
    rc = err_set(NDF_ERR_IO, "%s; recreating it failed: %s", why, how);
    free(how);
    free(why);
    return rc;
}

/* ------------------------------------------------------------------ */
/* writer statements */

static int wstmt(store *s, int which, sqlite3_stmt **out)
{
    if (!s->ws[which]) {
        int rc = sqlite3_prepare_v3(s->w, wsql[which], -1, SQLITE_PREPARE_PERSISTENT, &s->ws[which],
                                    NULL);
        if (rc != SQLITE_OK)
            return wfail(s, rc, "cannot prepare a statement");
    }
    sqlite3_reset(s->ws[which]);
    sqlite3_clear_bindings(s->ws[which]);
    *out = s->ws[which];
    return NDF_OK;
}

/* Runs a statement without results; NDF_OK or the error. */
static int wrun(store *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        int e = wfail(s, rc, what);
        sqlite3_reset(st);
        return e;
    }
    sqlite3_reset(st);
    return NDF_OK;
}

static int wsimple(store *s, int which, const char *what)
{
    sqlite3_stmt *st;
    int rc = wstmt(s, which, &st);
    return rc ? rc : wrun(s, st, what);
}

/* ------------------------------------------------------------------ */
/* learning rows */

/* Reads the pattern's row and, when `domain` is set, that domain's counts
 * (the only ones learning_record() touches).  *found is 0 when the pattern
 * has no row yet (then `st` is the initial state). */
static int load_learning(store *s, const char *name, const char *domain, learning_state *st,
                         int *found)
{
    sqlite3_stmt *q;
    int rc = wstmt(s, W_LOAD_PATTERN, &q);
    if (rc)
        return rc;
    learning_init(st, &s->opts.learning);
    bind_text(q, 1, name);
    rc = sqlite3_step(q);
    *found = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW) {
        st->executions = (uint64_t)sqlite3_column_int64(q, 0);
        st->successes = (uint64_t)sqlite3_column_int64(q, 1);
        st->score = sqlite3_column_double(q, 2);
        st->alpha = sqlite3_column_double(q, 3);
        st->beta = sqlite3_column_double(q, 4);
        st->converged = sqlite3_column_int(q, 5);
        st->last_used = sqlite3_column_double(q, 6);
        st->created = sqlite3_column_double(q, 7);
        st->duration_total = sqlite3_column_double(q, 8);
        st->timed = (uint64_t)sqlite3_column_int64(q, 9);
    } else if (rc != SQLITE_DONE) {
        int e = wfail(s, rc, "cannot read a pattern's learning state");
        sqlite3_reset(q);
        return e;
    }
    sqlite3_reset(q);
    if (!domain || !*domain || !*found)
        return NDF_OK;
    if ((rc = wstmt(s, W_LOAD_DOMAIN, &q)))
        return rc;
    bind_text(q, 1, name);
    bind_text(q, 2, domain);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        st->domains = xcalloc(1, sizeof *st->domains);
        st->domains[0].domain = xstrdup(domain);
        st->domains[0].executions = (uint64_t)sqlite3_column_int64(q, 0);
        st->domains[0].successes = (uint64_t)sqlite3_column_int64(q, 1);
        st->ndomains = 1;
    } else if (rc != SQLITE_DONE) {
        int e = wfail(s, rc, "cannot read a pattern's domain counts");
        sqlite3_reset(q);
        return e;
    }
    sqlite3_reset(q);
    return NDF_OK;
}

/* Writes the pattern row and its domain rows (all of `st`'s). */
static int save_learning(store *s, const char *name, const learning_state *st)
{
    sqlite3_stmt *q;
    int rc = wstmt(s, W_UPSERT_PATTERN, &q);
    if (rc)
        return rc;
    bind_text(q, 1, name);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)st->executions);
    sqlite3_bind_int64(q, 3, (sqlite3_int64)st->successes);
    sqlite3_bind_double(q, 4, st->score);
    sqlite3_bind_double(q, 5, st->alpha);
    sqlite3_bind_double(q, 6, st->beta);
    sqlite3_bind_int(q, 7, st->converged);
    sqlite3_bind_double(q, 8, st->last_used);
    sqlite3_bind_double(q, 9, st->created);
    sqlite3_bind_double(q, 10, st->duration_total);
    sqlite3_bind_int64(q, 11, (sqlite3_int64)st->timed);
    if ((rc = wrun(s, q, "cannot write a pattern's learning state")))
        return rc;
    for (size_t i = 0; i < st->ndomains; i++) {
        if ((rc = wstmt(s, W_UPSERT_DOMAIN, &q)))
            return rc;
        bind_text(q, 1, name);
        bind_text(q, 2, st->domains[i].domain);
        sqlite3_bind_int64(q, 3, (sqlite3_int64)st->domains[i].executions);
        sqlite3_bind_int64(q, 4, (sqlite3_int64)st->domains[i].successes);
        if ((rc = wrun(s, q, "cannot write a pattern's domain counts")))
            return rc;
    }
    return NDF_OK;
}

/* All of a pattern's domain rows into `st` (replacing what it holds). */
static int load_all_domains(store *s, const char *name, learning_state *st)
{
    sqlite3_stmt *q;
    int rc = wstmt(s, W_ALL_DOMAINS, &q);
    if (rc)
        return rc;
    for (size_t i = 0; i < st->ndomains; i++)
        free(st->domains[i].domain);
    free(st->domains);
    st->domains = NULL;
    st->ndomains = 0;
    bind_text(q, 1, name);
    size_t cap = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (st->ndomains == cap) {
            cap = cap ? cap * 2 : 4;
            st->domains = xrealloc(st->domains, cap * sizeof *st->domains);
        }
        domain_count *d = &st->domains[st->ndomains++];
        d->domain = col_dup(q, 0);
        if (!d->domain)
            d->domain = xstrdup("");
        d->executions = (uint64_t)sqlite3_column_int64(q, 1);
        d->successes = (uint64_t)sqlite3_column_int64(q, 2);
    }
    if (rc != SQLITE_DONE) {
        int e = wfail(s, rc, "cannot read a pattern's domain counts");
        sqlite3_reset(q);
        return e;
    }
    sqlite3_reset(q);
    return NDF_OK;
}

/* ------------------------------------------------------------------ */
/* outputs */

/* Compresses the newest `limit` bytes of `data` into a zlib stream.
 * *kept gets the bytes kept, *extra those dropped to fit. */
static int deflate_tail(const char *data, size_t len, size_t limit, int level, unsigned char **out,
                        size_t *outlen, size_t *kept, uint64_t *extra)
{
    *extra = 0;
    if (len > limit) {
        *extra = len - limit;
        data += len - limit;
        len = limit;
    }
    uLongf cap = compressBound((uLong)len);
    unsigned char *buf = xmalloc(cap ? cap : 1);
    int zr = compress2(buf, &cap, (const Bytef *)data, (uLong)len, level);
    if (zr != Z_OK) {
        free(buf);
        return err_set(NDF_ERR_IO, "zlib: cannot compress an output (%d)", zr);
    }
    *out = buf;
    *outlen = cap;
    *kept = len;
    return NDF_OK;
}

/* Stores stream `k` of `n` from its reader (zsrc): the row is written
 * with a zeroblob of the stream's size (the last column, which SQLite
 * writes as zeros without building it) and the stream is copied into it
 * through incremental blob I/O, so no one holds it whole: not ndf, not
 * SQLite's record. */
static int write_output_stream(store *s, sqlite3_int64 xseq, const store_node *n, int k)
{
    const ztail_reader *r = n->zsrc[k];
    uint64_t size = ztail_reader_size(r);
    if (size > (uint64_t)sqlite3_limit(s->w, SQLITE_LIMIT_LENGTH, -1))
        return err_set(NDF_ERR_RESOURCE, "%s: an output of %" PRIu64 " compressed bytes is over "
                       "SQLite's limit", s->path, size);
    sqlite3_stmt *q;
    int rc = wstmt(s, W_UPSERT_OUTPUT, &q);
    if (rc)
        return rc;
    sqlite3_bind_int64(q, 1, xseq);
    bind_text(q, 2, n->path ? n->path : "");
    sqlite3_bind_int(q, 3, k);
    sqlite3_bind_int64(q, 4, (sqlite3_int64)ztail_reader_raw(r));
    sqlite3_bind_int64(q, 5, (sqlite3_int64)n->dropped[k]);
    sqlite3_bind_zeroblob64(q, 6, size);
    if ((rc = wrun(s, q, "cannot write a node's output")))
        return rc;
    sqlite3_stmt *id = NULL;
    int r2 = sqlite3_prepare_v2(s->w,
                                "SELECT rowid FROM outputs WHERE exec_seq = ?1 AND path = ?2"
                                " AND stream = ?3",
                                -1, &id, NULL);
    if (r2 != SQLITE_OK)
        return wfail(s, r2, "cannot write a node's output");
    sqlite3_bind_int64(id, 1, xseq);
    bind_text(id, 2, n->path ? n->path : "");
    sqlite3_bind_int(id, 3, k);
    r2 = sqlite3_step(id);
    sqlite3_int64 rowid = r2 == SQLITE_ROW ? sqlite3_column_int64(id, 0) : 0;
    sqlite3_finalize(id);
    if (r2 != SQLITE_ROW)
        return wfail(s, r2 == SQLITE_DONE ? SQLITE_CORRUPT : r2, "cannot write a node's output");
    sqlite3_blob *b = NULL;
    r2 = sqlite3_blob_open(s->w, "main", "outputs", "data", rowid, 1, &b);
    if (r2 != SQLITE_OK) {
        sqlite3_blob_close(b);
        return wfail(s, r2, "cannot write a node's output");
    }
    enum { CHUNK = 64 * 1024 };
    unsigned char *buf = xmalloc(CHUNK);
    for (uint64_t off = 0; off < size && !rc;) {
        size_t want = size - off < CHUNK ? (size_t)(size - off) : CHUNK;
        long got = ztail_reader_read(r, off, buf, want);
        if (got != (long)want) {
            rc = err_set(NDF_ERR_IO, "%s: cannot read a captured output back from its spill file: %s",
                         s->path, got < 0 ? strerror(errno) : "short read");
            break;
        }
        r2 = sqlite3_blob_write(b, buf, (int)want, (int)off);
        if (r2 != SQLITE_OK)
            rc = wfail(s, r2, "cannot write a node's output");
        off += want;
    }
    free(buf);
    r2 = sqlite3_blob_close(b);
    if (!rc && r2 != SQLITE_OK)
        rc = wfail(s, r2, "cannot write a node's output");
    return rc;
}

static int write_outputs(store *s, sqlite3_int64 xseq, const store_node *n)
{
    size_t limit = s->opts.output_limit ? s->opts.output_limit : STORE_OUTPUT_LIMIT;
    int level = s->opts.compression_level >= 1 && s->opts.compression_level <= 9
                    ? s->opts.compression_level
                    : 6;
    for (int k = 0; k < STORE_NSTREAMS; k++) {
        if (n->zsrc[k]) {
            int rc = write_output_stream(s, xseq, n, k);
            if (rc)
                return rc;
            continue;
        }
        int pre = n->zout[k] != NULL;
        size_t len = pre ? n->outlen[k] : n->out[k] ? n->outlen[k] : 0;
        if (!len && !n->dropped[k])
            continue;
        unsigned char *z = NULL;
        size_t zlen = 0, kept = len;
        uint64_t extra = 0;
        int rc = pre ? NDF_OK
                     : deflate_tail(n->out[k] ? n->out[k] : "", len, limit, level, &z, &zlen,
                                    &kept, &extra);
        if (rc)
            return rc;
        sqlite3_stmt *q;
        if ((rc = wstmt(s, W_UPSERT_OUTPUT, &q))) {
            free(z);
            return rc;
        }
        sqlite3_bind_int64(q, 1, xseq);
        bind_text(q, 2, n->path ? n->path : "");
        sqlite3_bind_int(q, 3, k);
        sqlite3_bind_int64(q, 4, (sqlite3_int64)kept);
        sqlite3_bind_int64(q, 5, (sqlite3_int64)(n->dropped[k] + extra));
        if (pre)
            sqlite3_bind_blob64(q, 6, n->zout[k], n->zoutlen[k], SQLITE_STATIC);
        else
            sqlite3_bind_blob(q, 6, z, (int)zlen, free);
        if ((rc = wrun(s, q, "cannot write a node's output")))
            return rc;
    }
    return NDF_OK;
}

/* A step's result and metrics, apart from the node's upsert: most nodes
 * have none, and a progress write never carries them, so a node's row
 * keeps what its end wrote. */
static int write_node_result(store *s, sqlite3_int64 xseq, const store_node *n)
{
    if (!n->result && !n->metrics)
        return NDF_OK;
    sqlite3_stmt *q;
    int rc = wstmt(s, W_NODE_RESULT, &q);
    if (rc)
        return rc;
    sqlite3_bind_int64(q, 1, xseq);
    bind_text(q, 2, n->path ? n->path : "");
    bind_text(q, 3, n->result);
    if (n->result)
        sqlite3_bind_int64(q, 4, (sqlite3_int64)n->result_len);
    else
        sqlite3_bind_null(q, 4);
    bind_text(q, 5, n->metrics);
    return wrun(s, q, "cannot write a step's result");
}

static int write_node(store *s, sqlite3_int64 xseq, const store_node *n)
{
    sqlite3_stmt *q;
    int rc = wstmt(s, W_UPSERT_NODE, &q);
    if (rc)
        return rc;
    sqlite3_bind_int64(q, 1, xseq);
    bind_text(q, 2, n->path ? n->path : "");
    sqlite3_bind_int(q, 3, n->seq);
    bind_text(q, 4, kind_str(n->kind));
    bind_text(q, 5, state_str(n->state));
    bind_time(q, 6, n->start);
    bind_time(q, 7, n->end);
    sqlite3_bind_int(q, 8, n->attempt > 0 ? n->attempt : 1);
    if (n->exit_status >= 0)
        sqlite3_bind_int(q, 9, n->exit_status);
    else
        sqlite3_bind_null(q, 9);
    bind_text(q, 10, n->message);
    bind_time(q, 11, n->timeout);
    if ((rc = wrun(s, q, "cannot write a node")))
        return rc;
    if ((rc = write_node_result(s, xseq, n)))
        return rc;
    return write_outputs(s, xseq, n);
}

/* ------------------------------------------------------------------ */
/* applying jobs (inside the writer's transaction) */

/* Finds execution `id`: *seq and *status, or *seq = 0. */
static int find_exec(store *s, const char *id, sqlite3_int64 *seq, store_status *status)
{
    sqlite3_stmt *q;
    int rc = wstmt(s, W_FIND, &q);
    if (rc)
        return rc;
    bind_text(q, 1, id);
    *seq = 0;
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        *seq = sqlite3_column_int64(q, 0);
        store_status stt = STORE_RUNNING;
        store_status_parse((const char *)sqlite3_column_text(q, 1), &stt);
        *status = stt;
    } else if (rc != SQLITE_DONE) {
        int e = wfail(s, rc, "cannot look up an execution");
        sqlite3_reset(q);
        return e;
    }
    sqlite3_reset(q);
    return NDF_OK;
}

static int insert_exec(store *s, const store_exec *e, store_status status, int counted,
                       sqlite3_int64 *seq)
{
    sqlite3_stmt *q;
    int rc = wstmt(s, W_INSERT_EXEC, &q);
    if (rc)
        return rc;
    long pid = e->pid > 0 ? e->pid : (long)getpid();
    bind_text(q, 1, e->id);
    bind_text(q, 2, e->pattern);
    bind_text(q, 3, e->parent_id);
    bind_text(q, 4, e->redrive_of);
    bind_text(q, 5, store_origin_name(e->origin));
    bind_text(q, 6, store_status_name(status));
    bind_text(q, 7, e->context);
    bind_text(q, 8, e->domain && *e->domain ? e->domain : NULL);
    bind_text(q, 9, e->host ? e->host : s->host);
    /* pid < 0: not known (imported) */
    if (e->pid < 0)
        sqlite3_bind_null(q, 10);
    else
        sqlite3_bind_int64(q, 10, pid);
    bind_text(q, 11, e->boot_id ? e->boot_id : s->boot_id);
    sqlite3_bind_int64(q, 12, e->pid != 0 ? 0 : own_start_time(s));
    bind_time(q, 13, e->start);
    bind_time(q, 14, status == STORE_RUNNING ? 0 : e->end);
    sqlite3_bind_double(q, 15, e->duration >= 0 && isfinite(e->duration) ? e->duration : 0);
    bind_text(q, 16, e->message);
    bind_text(q, 17, e->plugins);
    sqlite3_bind_int(q, 18, counted);
    bind_time(q, 19, e->timeout);
    sqlite3_bind_double(q, 20, e->cpu >= 0 && isfinite(e->cpu) ? e->cpu : 0);
    sqlite3_bind_int64(q, 21, e->peak_rss_kb > 0 ? e->peak_rss_kb : 0);
    bind_text(q, 22, e->fallback_from);
    bind_text(q, 23, e->fallback_cause);
    if ((rc = wrun(s, q, "cannot record an execution")))
        return rc;
    *seq = sqlite3_last_insert_rowid(s->w);
    return NDF_OK;
}

static int check_exec(const store_exec *e)
{
    if (!e || !e->id || !*e->id || !e->pattern || !*e->pattern)
        return err_set(NDF_ERR_INVALID, "an execution needs an id and a pattern");
    return NDF_OK;
}

/* A redrive's claim on its chain (SQL_CLAIM_HOLDER): NDF_OK when no other
 * redrive of it runs or succeeded.  The writer's transaction holds the
 * database's write lock, so nobody claims between this and the insert. */
static int check_claim(store *s, const store_exec *e)
{
    sqlite3_stmt *q;
    int rc = wstmt(s, W_CLAIM_HOLDER, &q);
    if (rc)
        return rc;
    bind_text(q, 1, e->redrive_of);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        char *holder = col_dup(q, 0), *status = col_dup(q, 1);
        sqlite3_reset(q);
        rc = store_claim_refused(e->redrive_of, holder, status);
        free(holder);
        free(status);
        return rc;
    }
    if (rc != SQLITE_DONE) {
        int e2 = wfail(s, rc, "cannot look up the redrives of an execution");
        sqlite3_reset(q);
        return e2;
    }
    sqlite3_reset(q);
    return NDF_OK;
}

static int wprep(store *s, const char *sql, const char *a1, sqlite3_stmt **out);

/* A rollback's claim and a redrive's insert each hold the write lock, so
 * this test and the insert after it see the same row. */
static int check_not_rolling_back(store *s, const char *id)
{
    sqlite3_stmt *q;
    int rc = wprep(s, SQL_BEING_ROLLED_BACK("?1"), id, &q);
    if (rc)
        return rc;
    int r = sqlite3_step(q);
    if (r == SQLITE_ROW)
        rc = store_redrive_rolling_back(id, (const char *)sqlite3_column_text(q, 0));
    else if (r != SQLITE_DONE)
        rc = wfail(s, r, "cannot read an execution");
    sqlite3_finalize(q);
    return rc;
}

/* In the redrive's insert's transaction, as check_not_rolling_back. */
static int check_not_undone(store *s, const char *id)
{
    sqlite3_stmt *q;
    int rc = wprep(s, SQL_UNDONE_LATER("?1"), id, &q);
    if (rc)
        return rc;
    int r = sqlite3_step(q);
    if (r == SQLITE_ROW)
        rc = store_redrive_undone(id, (const char *)sqlite3_column_text(q, 0),
                                  (const char *)sqlite3_column_text(q, 1));
    else if (r != SQLITE_DONE)
        rc = wfail(s, r, "cannot read an execution");
    sqlite3_finalize(q);
    return rc;
}

static int apply_begin(store *s, const store_exec *e)
{
    int rc = check_exec(e);
    if (rc)
        return rc;
    sqlite3_int64 seq;
    store_status old;
    if ((rc = find_exec(s, e->id, &seq, &old)))
        return rc;
    if (seq)
        return err_set(NDF_ERR_EXISTS, "%s: execution %s is already recorded", s->path, e->id);
    if (e->redrive_of && (rc = check_claim(s, e)))
        return rc;
    if (e->redrive_of && (rc = check_not_rolling_back(s, e->redrive_of)))
        return rc;
    if (e->redrive_of && e->resumes && (rc = check_not_undone(s, e->redrive_of)))
        return rc;
    if ((rc = insert_exec(s, e, STORE_RUNNING, 0, &seq)))
        return rc;
    for (size_t i = 0; i < e->nnodes; i++)
        if ((rc = write_node(s, seq, &e->nodes[i])))
            return rc;
    return NDF_OK;
}

static int apply_progress(store *s, const char *id, const store_node *n)
{
    sqlite3_int64 seq;
    store_status st;
    int rc = find_exec(s, id, &seq, &st);
    if (rc)
        return rc;
    if (!seq)
        return err_set(NDF_ERR_NOT_FOUND, "%s: no execution %s to record progress for", s->path,
                       id);
    if (st != STORE_RUNNING)
        return NDF_OK; /* it ended: the final record wins */
    sqlite3_stmt *q;
    if ((rc = wstmt(s, W_HEARTBEAT, &q)))
        return rc;
    sqlite3_bind_int64(q, 1, seq);
    sqlite3_bind_double(q, 2, now_wall());
    if ((rc = wrun(s, q, "cannot record progress")))
        return rc;
    /* no path: a heartbeat alone */
    return n->path ? write_node(s, seq, n) : NDF_OK;
}

static int apply_process(store *s, const job *j)
{
    sqlite3_stmt *q;
    int rc = wstmt(s, W_ADD_PROCESS, &q);
    if (rc)
        return rc;
    bind_text(q, 1, j->id);
    sqlite3_bind_int64(q, 2, j->pgid);
    sqlite3_bind_int64(q, 3, j->pstart);
    bind_text(q, 4, j->token);
    return wrun(s, q, "cannot record a step's process");
}

static int apply_finish(store *s, const store_exec *e, learning_state *after, int *have_after)
{
    int rc = check_exec(e);
    if (rc)
        return rc;
    store_status status = e->status == STORE_RUNNING ? STORE_FAILED : e->status;
    int counted = e->learn && s->opts.enable_learning;
    sqlite3_int64 seq;
    store_status old;
    if ((rc = find_exec(s, e->id, &seq, &old)))
        return rc;
    if (seq && old != STORE_RUNNING)
        return err_set(NDF_ERR_EXISTS, "%s: execution %s already ended (%s)", s->path, e->id,
                       store_status_name(old));
    if (seq) {
        sqlite3_stmt *q;
        if ((rc = wstmt(s, W_UPDATE_EXEC, &q)))
            return rc;
        sqlite3_bind_int64(q, 1, seq);
        bind_text(q, 2, store_status_name(status));
        bind_time(q, 3, e->end);
        sqlite3_bind_double(q, 4, e->duration >= 0 && isfinite(e->duration) ? e->duration : 0);
        bind_text(q, 5, e->message);
        sqlite3_bind_int(q, 6, counted);
        bind_text(q, 7, e->context);
        bind_text(q, 8, e->plugins);
        bind_text(q, 9, e->domain && *e->domain ? e->domain : NULL);
        bind_time(q, 10, e->timeout);
        sqlite3_bind_double(q, 11, e->cpu >= 0 && isfinite(e->cpu) ? e->cpu : 0);
        sqlite3_bind_int64(q, 12, e->peak_rss_kb > 0 ? e->peak_rss_kb : 0);
        bind_text(q, 13, e->fallback_from);
        bind_text(q, 14, e->fallback_cause);
        if ((rc = wrun(s, q, "cannot record the end of an execution")))
            return rc;
    } else if ((rc = insert_exec(s, e, status, counted, &seq))) {
        return rc;
    }
    for (size_t i = 0; i < e->nnodes; i++)
        if ((rc = write_node(s, seq, &e->nodes[i])))
            return rc;
    if (!e->parent_id) {
        /* its step processes ended with it */
        sqlite3_stmt *q;
        if ((rc = wstmt(s, W_DEL_PROCESSES, &q)))
            return rc;
        bind_text(q, 1, e->id);
        if ((rc = wrun(s, q, "cannot record the end of an execution")))
            return rc;
    }
    if (!counted && !after)
        return NDF_OK;

    /* the exact update: read, apply in C, write back, all in this transaction */
    learning_state st;
    int found;
    if ((rc = load_learning(s, e->pattern, e->domain, &st, &found)))
        goto out;
    if (counted) {
        if (!found)
            st.created = e->start > 0 ? e->start : now_wall();
        learning_record(&st, &s->opts.learning, status == STORE_SUCCEEDED, e->domain,
                        e->end > 0 ? e->end : now_wall());
        learning_add_duration(&st, e->duration);
        if ((rc = save_learning(s, e->pattern, &st)))
            goto out;
        /* the score it led to, for the confidence trend of analytics */
        sqlite3_stmt *q;
        if ((rc = wstmt(s, W_SET_CONFIDENCE, &q)))
            goto out;
        sqlite3_bind_int64(q, 1, seq);
        sqlite3_bind_double(q, 2, st.score);
        if ((rc = wrun(s, q, "cannot record an execution")))
            goto out;
    }
    if (after) {
        if ((rc = load_all_domains(s, e->pattern, &st)))
            goto out;
        *after = st;
        *have_after = 1;
        return NDF_OK;
    }
out:
    learning_free(&st);
    return rc;
}

/* The executions of a FINISH job, all or none (the caller's savepoint). */
static int apply_finish_all(store *s, job *j)
{
    int rc = NDF_OK;
    for (size_t i = 0; i < j->ne && !rc; i++) {
        int have = 0;
        rc = apply_finish(s, &j->e[i], j->after ? &j->after[i] : NULL, &have);
        if (have)
            j->have_after++;
    }
    return rc;
}

/* Frees the learning states a failed FINISH job filled. */
static void drop_after(job *j)
{
    for (size_t i = 0; i < j->have_after; i++)
        learning_free(&j->after[i]);
    j->have_after = 0;
}

/* Drops the oldest ended executions of `pattern` beyond `keep`, adding
 * the counted ones to the pattern's `pruned` so counts stay exact. */
static int prune_pattern(store *s, const char *pat, long keep, uint64_t *removed)
{
    sqlite3_stmt *q;
    int rc = wstmt(s, W_PRUNE_LIST, &q);
    if (rc)
        return rc;
    bind_text(q, 1, pat);
    sqlite3_bind_int64(q, 2, keep);
    sqlite3_int64 *seqs = NULL;
    size_t n = 0, cap = 0;
    long long counted = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            seqs = xrealloc(seqs, cap * sizeof *seqs);
        }
        seqs[n++] = sqlite3_column_int64(q, 0);
        counted += sqlite3_column_int(q, 1) != 0;
    }
    if (rc != SQLITE_DONE) {
        rc = wfail(s, rc, "cannot list executions to prune");
        sqlite3_reset(q);
        goto out;
    }
    sqlite3_reset(q);
    rc = NDF_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        static const int del[] = {W_DEL_OUTPUTS, W_DEL_NODES, W_DEL_EXEC};
        for (size_t k = 0; k < ARRAY_SIZE(del) && !rc; k++) {
            if ((rc = wstmt(s, del[k], &q)))
                break;
            sqlite3_bind_int64(q, 1, seqs[i]);
            rc = wrun(s, q, "cannot prune an execution");
        }
    }
    if (!rc && counted) {
        if (!(rc = wstmt(s, W_ADD_PRUNED, &q))) {
            bind_text(q, 1, pat);
            sqlite3_bind_int64(q, 2, counted);
            rc = wrun(s, q, "cannot prune an execution");
        }
    }
    if (!rc && removed)
        *removed += n;
out:
    free(seqs);
    return rc;
}

/* ------------------------------------------------------------------ */
/* the writer thread */

static void job_fail(job *j, int rc)
{
    j->rc = rc;
    free(j->msg);
    j->msg = xstrdup(err_msg());
}

static void progress_free(job *j)
{
    free(j->id);
    free(j->node.path);
    free(j->node.message);
    for (int k = 0; k < STORE_NSTREAMS; k++)
        free(j->node.out[k]);
    free(j->token);
    free(j->msg);
    free(j);
}

/* Frees a store_finish_async() job with what it owns. */
static void async_free(job *j)
{
    if (j->after)
        for (size_t i = 0; i < j->ne; i++)
            learning_free(&j->after[i]);
    free(j->after);
    store_exec_array_free(j->owned, j->ne);
    free(j->msg);
    free(j);
}

/* The end of FINISH job `j` could not be written for the store's own sake
 * (a full disk, an I/O error): its executions' RUNNING rows, left behind
 * by the rollback, say so (FAILED, "not recorded: ..."), in one small
 * write per row that changes no row's size much, so that it often
 * succeeds where the end's rows and outputs could not (the WAL reuses the
 * frames the failed transaction wrote); otherwise crash recovery would
 * call a process that ended "died".  A row that cannot be marked either
 * is left to recovery, and so are the rest (-1): they would fail alike,
 * or wait out a lock again.  Caller holds wlock, outside any
 * transaction. */
static int mark_exec_row(store *s, const store_exec *e, const char *msg)
{
    sqlite3_stmt *q = NULL;
    int r = sqlite3_prepare_v2(s->w,
                               "UPDATE executions SET status = 'FAILED', end_time = ?2,"
                               " duration = ?3, message = ?4 WHERE id = ?1 AND status = 'RUNNING'",
                               -1, &q, NULL);
    if (r == SQLITE_OK) {
        bind_text(q, 1, e->id);
        bind_time(q, 2, e->end > 0 ? e->end : now_wall());
        sqlite3_bind_double(q, 3, e->duration >= 0 && isfinite(e->duration) ? e->duration : 0);
        bind_text(q, 4, msg);
        r = sqlite3_step(q);
    }
    sqlite3_finalize(q);
    return r == SQLITE_DONE ? SQLITE_OK : r;
}

/* The final state of the nodes whose rows progress wrote (no new rows,
 * no output): what `status` shows instead of RUNNING. */
static int mark_node_rows(store *s, const store_exec *e)
{
    sqlite3_stmt *q = NULL;
    int r = sqlite3_prepare_v2(s->w,
                               "UPDATE nodes SET state = ?3, start_time = ?4, end_time = ?5"
                               " WHERE exec_seq = (SELECT seq FROM executions WHERE id = ?1)"
                               " AND path = ?2",
                               -1, &q, NULL);
    for (size_t i = 0; r == SQLITE_OK && i < e->nnodes; i++) {
        const store_node *n = &e->nodes[i];
        sqlite3_reset(q);
        bind_text(q, 1, e->id);
        bind_text(q, 2, n->path ? n->path : "");
        bind_text(q, 3, state_str(n->state));
        bind_time(q, 4, n->start);
        bind_time(q, 5, n->end);
        r = sqlite3_step(q);
        r = r == SQLITE_DONE ? SQLITE_OK : r;
    }
    sqlite3_finalize(q);
    return r;
}

/* Execution `e` (its end not written because `why`) into the note, for
 * crash recovery or store_close() to mark it: the last resort when its
 * row could not be marked either. */
static void note_unrecorded(store *s, const store_exec *e, const char *why)
{
    unrec_entry n;
    memset(&n, 0, sizeof n);
    n.pid = e->pid > 0 ? e->pid : (long)getpid();
    n.end = e->end > 0 ? e->end : now_wall();
    n.duration = e->duration >= 0 && isfinite(e->duration) ? e->duration : 0;
    snprintf(n.status, sizeof n.status, "%s",
             store_status_name(e->status == STORE_RUNNING ? STORE_FAILED : e->status));
    snprintf(n.id, sizeof n.id, "%s", e->id ? e->id : "");
    snprintf(n.boot, sizeof n.boot, "%s", e->boot_id ? e->boot_id : s->boot_id);
    snprintf(n.cause, sizeof n.cause, "%s", why && *why ? why : "write failed");
    if (e->pid >= 0 && unrec_put(s->note, &n) == 0)
        log_msg(NDF_LOG_DEBUG, "%s: execution %s: its end is in %s", s->path, n.id, UNREC_NAME);
}

/* *gave_up: an earlier row could not be marked; the rest go to the note
 * without trying (they would fail alike, or wait out a lock again). */
static int mark_unrecorded_rows(store *s, job *j, int *gave_up)
{
    for (size_t i = 0; i < j->ne; i++) {
        const store_exec *e = &j->e[i];
        if (*gave_up) {
            note_unrecorded(s, e, j->msg);
            continue;
        }
        char *msg = store_unrecorded_message(e, j->msg);
        int r = sqlite3_exec(s->w, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if ((r & 0xff) == SQLITE_BUSY || (r & 0xff) == SQLITE_LOCKED) {
            free(msg); /* another process writes: its lock was waited for once */
            *gave_up = 1;
            note_unrecorded(s, e, j->msg);
            continue;
        }
        if (r == SQLITE_OK && (r = mark_exec_row(s, e, msg)) == SQLITE_OK &&
            (r = mark_node_rows(s, e)) == SQLITE_OK)
            r = sqlite3_exec(s->w, "COMMIT", NULL, NULL, NULL);
        if (r != SQLITE_OK) {
            /* the row alone, which is what recovery would get wrong */
            if (!sqlite3_get_autocommit(s->w))
                sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
            r = mark_exec_row(s, e, msg);
        }
        free(msg);
        if (r != SQLITE_OK) {
            log_msg(NDF_LOG_DEBUG, "%s: execution %s: cannot mark it unrecorded either: %s",
                    s->path, e->id, sqlite3_errstr(r));
            *gave_up = 1;
            note_unrecorded(s, e, j->msg);
        }
    }
    return *gave_up ? -1 : 0;
}

/* Commits one batch: BEGIN IMMEDIATE, each job under its own savepoint (so
 * one bad job fails alone), pruning of the patterns it touched, COMMIT.  A
 * failed BEGIN or COMMIT fails every job of the batch. */
static void run_batch(store *s, job *batch, size_t *committed)
{
    int rc;
    size_t finished = 0;
    *committed = 0;
    pthread_mutex_lock(&s->wlock);
    rc = wsimple(s, W_BEGIN, "cannot start a transaction");
    if (rc) {
        for (job *j = batch; j; j = j->next)
            job_fail(j, rc);
        goto out;
    }
    if (check_moved(s->path, s->w)) {
        /* not inside the transaction: the copy reads the whole database */
        sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
        if ((rc = recreate_moved(s)) || (rc = wsimple(s, W_BEGIN, "cannot start a transaction"))) {
            for (job *j = batch; j; j = j->next)
                job_fail(j, rc);
            goto out;
        }
        if ((rc = check_moved(s->path, s->w)))
            goto abort;
    }
    for (job *j = batch; j; j = j->next) {
        if ((rc = wsimple(s, W_SAVEPOINT, "cannot start a savepoint")))
            goto abort;
        switch (j->kind) {
        case JOB_BEGIN: rc = apply_begin(s, j->e); break;
        case JOB_FINISH: rc = apply_finish_all(s, j); break;
        case JOB_PROGRESS: rc = apply_progress(s, j->id, &j->node); break;
        case JOB_PROCESS: rc = apply_process(s, j); break;
        }
        if (rc) {
            job_fail(j, rc);
            if (j->kind == JOB_FINISH)
                drop_after(j);
            /* SQLITE_FULL, IOERR, NOMEM... may have rolled the whole
             * transaction back, savepoint and earlier jobs with it: every
             * job of the batch fails with this job's error (the real
             * cause, not a missing savepoint's) */
            if (sqlite3_get_autocommit(s->w))
                goto abort;
            if ((rc = wsimple(s, W_ROLLBACK_TO, "cannot roll back a savepoint")))
                goto abort;
        }
        if ((rc = wsimple(s, W_RELEASE, "cannot release a savepoint")))
            goto abort;
        if (j->kind == JOB_FINISH && !j->rc)
            finished += j->ne;
    }
    if (s->opts.history_limit > 0) {
        /* Each pattern once it has had `step` more executions: the prune
         * skips the `history_limit` newest rows, which after every commit
         * made the rate fall as history grew.  Kept rows exceed the limit
         * by less than `step` in between (exact for limits below 32). */
        uintptr_t step = (uintptr_t)(s->opts.history_limit / 16);
        if (step < 1)
            step = 1;
        if (!s->since_prune)
            s->since_prune = hashmap_new();
        for (job *j = batch; j; j = j->next) {
            if (j->kind != JOB_FINISH || j->rc)
                continue;
            for (size_t i = 0; i < j->ne; i++) {
                const char *pat = j->e[i].pattern;
                uintptr_t n = (uintptr_t)hashmap_get(s->since_prune, pat) + 1;
                if (n < step) {
                    hashmap_put(s->since_prune, pat, (void *)n);
                    continue;
                }
                hashmap_put(s->since_prune, pat, NULL);
                if ((rc = prune_pattern(s, pat, s->opts.history_limit, NULL)))
                    goto abort;
            }
        }
    }
    if ((rc = wsimple(s, W_COMMIT, "cannot commit"))) {
        /* a failed COMMIT may leave the transaction open */
        goto abort;
    }
    *committed = finished + 1; /* the transaction and its executions */
    goto out;
abort:;
    char *why = xstrdup(err_msg());
    if (!sqlite3_get_autocommit(s->w))
        sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
    for (job *j = batch; j; j = j->next) {
        if (j->kind == JOB_FINISH)
            drop_after(j);
        j->rc = rc;
        free(j->msg);
        j->msg = xstrdup(why);
    }
    free(why);
out:;
    int gave_up = 0;
    for (job *j = batch; j; j = j->next)
        if (j->kind == JOB_FINISH && (j->rc == NDF_ERR_IO || j->rc == NDF_ERR_RESOURCE))
            mark_unrecorded_rows(s, j, &gave_up);
    pthread_mutex_unlock(&s->wlock);
}

/* Commits the jobs queued (batch_max at most) as one transaction: the
 * writer thread's work, or a waiting caller's (submit_wait).  Called, and
 * returns, with qlock held; s->busy is set while it runs, so one batch at
 * a time is committed. */
static void commit_queued(store *s)
{
    size_t max = s->opts.batch_max > 0 ? (size_t)s->opts.batch_max : 256;
    job *batch = s->head, *last = s->head;
    size_t n = 1, ncb = batch->on_done != NULL;
    while (last->next && n < max) {
        last = last->next;
        ncb += last->on_done != NULL;
        n++;
    }
    s->head = last->next;
    if (!s->head)
        s->tail = NULL;
    last->next = NULL;
    s->queued -= n;
    s->queued_cb -= ncb;
    s->busy = 1;
    pthread_mutex_unlock(&s->qlock);

    size_t committed;
    run_batch(s, batch, &committed);
    /* outside qlock: the callbacks take their callers' locks */
    for (job *j = batch; j; j = j->next)
        if (j->on_done)
            j->on_done(j->done_arg, j->rc, j->msg, j->rc ? NULL : j->after,
                       j->rc || !j->after ? 0 : j->ne);

    pthread_mutex_lock(&s->qlock);
    if (committed) {
        s->transactions++;
        s->executions += committed - 1;
        s->degraded = 0;
        store_perr_ok(&s->perr);
    }
    for (job *j = batch; j; j = j->next)
        if ((j->kind == JOB_FINISH || j->kind == JOB_BEGIN) &&
            (j->rc == NDF_ERR_IO || j->rc == NDF_ERR_RESOURCE))
            store_perr_end_failed(&s->perr);
    /* a job refused for its own sake (a duplicate id) is not a storage fault */
    for (job *j = batch; j; j = j->next)
        if (j->rc == NDF_ERR_IO) {
            s->degraded = 1;
            snprintf(s->last_error, sizeof s->last_error, "%s", j->msg ? j->msg : "");
            s->last_error_time = now_wall();
        }
    for (job *j = batch, *next; j; j = next) {
        next = j->next;
        s->pending--;
        s->answered++;
        if (j->on_done) {
            async_free(j);
        } else if (j->kind == JOB_PROGRESS || j->kind == JOB_PROCESS) {
            if (j->rc)
                store_perr_fail(&s->perr, j->msg);
            progress_free(j);
        } else {
            j->done = 1;
        }
    }
    s->busy = 0;
    pthread_cond_broadcast(&s->dcv);
    /* the writer may be waiting for this batch to end to take the next */
    if (s->head && s->started)
        pthread_cond_signal(&s->qcv);
}

static void *writer_main(void *arg)
{
    store *s = arg;
    pthread_mutex_lock(&s->qlock);
    for (;;) {
        while ((!s->head || s->busy) && !(s->stopping && !s->head))
            pthread_cond_wait(&s->qcv, &s->qlock);
        if (!s->head)
            break;
        commit_queued(s);
    }
    pthread_mutex_unlock(&s->qlock);
    return NULL;
}

/* Starts the writer thread unless it runs.  Called with qlock held. */
static int start_writer(store *s)
{
    if (s->started)
        return NDF_OK;
    int e = pthread_create(&s->thread, NULL, writer_main, s);
    if (e)
        return err_set(NDF_ERR_RESOURCE, "%s: cannot start the writer thread: %s", s->path,
                       strerror(e));
    s->started = 1;
    return NDF_OK;
}

/* Queues `j`.  A job nobody waits for (a callback's, progress) starts the
 * writer thread on first use; a waited-for job may be committed by its
 * own caller (submit_wait).  Called with qlock held. */
static int enqueue_locked(store *s, job *j, int waited)
{
    if (s->stopping)
        return err_set(NDF_ERR_IO, "%s: the store is closing", s->path);
    if (!waited) {
        int rc = start_writer(s);
        if (rc)
            return rc;
    }
    j->next = NULL;
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    s->queued++;
    s->queued_cb += j->on_done != NULL;
    s->pending++;
    s->enqueued++;
    if (s->started)
        pthread_cond_signal(&s->qcv);
    return NDF_OK;
}

/* Queues `j` and waits for its transaction.  Group commit without a hand-
 * off: when no batch is being committed, the caller commits what is
 * queued itself (its job and those queued beside it), and the callers
 * that queued while it did wait for it or commit the next batch.  A batch
 * holding a callback's job is left to the writer thread, so that no
 * callback runs on a thread that may hold its caller's locks. */
static int submit_wait(store *s, job *j)
{
    pthread_mutex_lock(&s->qlock);
    int rc = enqueue_locked(s, j, 1);
    if (rc) {
        pthread_mutex_unlock(&s->qlock);
        return rc;
    }
    while (!j->done) {
        if (!s->busy && s->head) {
            if (!s->queued_cb) {
                commit_queued(s);
                continue;
            }
            if ((rc = start_writer(s)) != NDF_OK) {
                /* nobody else can: commit it here after all */
                commit_queued(s);
                continue;
            }
            pthread_cond_signal(&s->qcv);
        }
        pthread_cond_wait(&s->dcv, &s->qlock);
    }
    pthread_mutex_unlock(&s->qlock);
    if (j->rc) {
        rc = err_set(j->rc, "%s", j->msg ? j->msg : "write failed");
        free(j->msg);
        return rc;
    }
    return NDF_OK;
}

static int lite_begin(store *s, const store_exec *e)
{
    int rc = check_exec(e);
    if (rc)
        return rc;
    job j = {.kind = JOB_BEGIN, .e = e};
    return submit_wait(s, &j);
}

static int lite_finish_all(store *s, const store_exec *v, size_t n, learning_state *after)
{
    for (size_t i = 0; i < n; i++) {
        int rc = check_exec(&v[i]);
        if (rc)
            return rc;
    }
    if (!n)
        return NDF_OK;
    job j = {.kind = JOB_FINISH, .e = v, .ne = n, .after = after};
    return submit_wait(s, &j);
}

/* Hands job `j` to the writer; freed here when the writer cannot take it. */
static int enqueue_async(store *s, job *j)
{
    pthread_mutex_lock(&s->qlock);
    int rc = enqueue_locked(s, j, 0);
    pthread_mutex_unlock(&s->qlock);
    if (rc)
        async_free(j);
    return rc;
}

static int lite_finish_async(store *s, store_exec *v, size_t n, store_done_fn done, void *arg)
{
    int rc = NDF_OK;
    for (size_t i = 0; i < n && !rc; i++)
        rc = check_exec(&v[i]);
    if (rc || !n) {
        store_exec_array_free(v, n);
        return rc;
    }
    job *j = xcalloc(1, sizeof *j);
    j->kind = JOB_FINISH;
    j->e = j->owned = v;
    j->ne = n;
    j->after = xcalloc(n, sizeof *j->after);
    j->on_done = done;
    j->done_arg = arg;
    return enqueue_async(s, j);
}

static int lite_begin_async(store *s, store_exec *e, store_done_fn done, void *arg)
{
    int rc = check_exec(e);
    if (rc) {
        store_exec_array_free(e, 1);
        return rc;
    }
    job *j = xcalloc(1, sizeof *j);
    j->kind = JOB_BEGIN;
    j->e = j->owned = e;
    j->ne = 1;
    j->on_done = done;
    j->done_arg = arg;
    return enqueue_async(s, j);
}

static void lite_flush(store *s)
{
    pthread_mutex_lock(&s->qlock);
    uint64_t upto = s->enqueued;
    while (s->answered < upto)
        pthread_cond_wait(&s->dcv, &s->qlock);
    pthread_mutex_unlock(&s->qlock);
}

static int lite_progress(store *s, const char *id, const store_node *n)
{
    if (!id)
        return err_set(NDF_ERR_INVALID, "progress needs an execution id");
    job *j = xcalloc(1, sizeof *j);
    j->kind = JOB_PROGRESS;
    j->id = xstrdup(id);
    if (!n) { /* a heartbeat: node.path stays NULL */
        pthread_mutex_lock(&s->qlock);
        int rc = enqueue_locked(s, j, 0);
        pthread_mutex_unlock(&s->qlock);
        if (rc)
            progress_free(j);
        return rc;
    }
    j->node = *n;
    j->node.path = xstrdup(n->path ? n->path : "");
    j->node.message = n->message ? xstrdup(n->message) : NULL;
    for (int k = 0; k < STORE_NSTREAMS; k++) {
        j->node.out[k] = NULL;
        j->node.zout[k] = NULL;
        j->node.zsrc[k] = NULL;
        if (n->out[k] && n->outlen[k]) {
            j->node.out[k] = xmalloc(n->outlen[k]);
            memcpy(j->node.out[k], n->out[k], n->outlen[k]);
        } else {
            j->node.outlen[k] = 0;
        }
    }
    pthread_mutex_lock(&s->qlock);
    int rc = enqueue_locked(s, j, 0);
    pthread_mutex_unlock(&s->qlock);
    if (rc)
        progress_free(j);
    return rc;
}

static int lite_process(store *s, const char *id, long pgid, long long start, const char *token)
{
    job *j = xcalloc(1, sizeof *j);
    j->kind = JOB_PROCESS;
    j->id = xstrdup(id);
    j->token = xstrdup(token);
    j->pgid = pgid;
    j->pstart = start;
    pthread_mutex_lock(&s->qlock);
    int rc = enqueue_locked(s, j, 0);
    pthread_mutex_unlock(&s->qlock);
    if (rc)
        progress_free(j);
    return rc;
}

static void lite_get_stats(store *s, store_stats *out)
{
    pthread_mutex_lock(&s->qlock);
    /* qlock only: a batch waiting for another process's lock holds wlock */
    out->queued = s->queued;
    out->pending = s->pending;
    out->transactions = s->transactions;
    out->executions = s->executions;
    out->degraded = s->degraded;
    out->schema = STORE_SCHEMA_VERSION;
    snprintf(out->last_error, sizeof out->last_error, "%s", s->last_error);
    out->last_error_time = s->last_error_time;
    pthread_mutex_unlock(&s->qlock);
}

/* ------------------------------------------------------------------ */
/* open and close */

char *store_default_dir(void)
{
    const char *e = getenv("NDF_STATE_DIR");
    if (e && *e)
        return xstrdup(e);
    e = getenv("XDG_STATE_HOME");
    if (e && *e == '/')
        return xasprintf("%s/ndf", e);
    e = getenv("HOME");
    if (e && *e == '/')
        return xasprintf("%s/.local/state/ndf", e);
    err_set(NDF_ERR_INVALID,
            "no storage directory: set storage.path, NDF_STATE_DIR, XDG_STATE_HOME or HOME");
    return NULL;
}

/* `dir` made absolute (a relative path would change meaning with the
 * working directory), without trailing slashes.  Caller frees. */
static char *absolute_dir(const char *dir)
{
    char *d;
    if (dir[0] == '/') {
        d = xstrdup(dir);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) {
            err_set(NDF_ERR_IO, "cannot resolve storage directory %s: %s", dir, strerror(errno));
            return NULL;
        }
        d = xasprintf("%s/%s", cwd, dir);
    }
    size_t l = strlen(d);
    while (l > 1 && d[l - 1] == '/')
        d[--l] = 0;
    return d;
}

/* Creates the directory when missing and checks it is a writable one. */
static int prepare_dir(const char *d)
{
    int rc = fs_mkdir_p(d, 0700, "storage directory");
    if (rc)
        return rc;
    struct stat st;
    if (stat(d, &st) != 0)
        return err_set(NDF_ERR_IO, "storage directory %s: %s", d, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return err_set(NDF_ERR_IO, "storage directory %s is %s", d, file_type(st.st_mode));
    if (access(d, W_OK | X_OK) != 0)
        return err_set(NDF_ERR_IO, "storage directory %s is not writable: %s", d, strerror(errno));
    return NDF_OK;
}

/* 1 when `name` is a file of the old per-pattern format:
 * <pattern>.json or .json.gz, optionally followed by .N or .corrupt-*. */
static int legacy_name(const char *name)
{
    if (name[0] == '.')
        return 0;
    for (const char *p = strstr(name, ".json"); p; p = strstr(p + 1, ".json")) {
        const char *rest = p + 5;
        if (p == name)
            continue;
        if (strncmp(rest, ".gz", 3) == 0 && (rest[3] == 0 || rest[3] == '.'))
            rest += 3;
        if (*rest == 0 || strncmp(rest, ".corrupt-", 9) == 0)
            return 1;
        if (rest[0] == '.' && isdigit((unsigned char)rest[1])) {
            const char *q = rest + 1;
            while (isdigit((unsigned char)*q))
                q++;
            if (*q == 0)
                return 1;
        }
    }
    return 0;
}

static int has_legacy_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    int found = 0;
    while (!found && (de = readdir(d)))
        found = legacy_name(de->d_name);
    closedir(d);
    return found;
}

int store_sqlite_open(const char *dir, const store_opts *opts, store **out)
{
    *out = NULL;
    char *raw = dir && *dir ? xstrdup(dir) : store_default_dir();
    if (!raw)
        return NDF_ERR_INVALID;
    char *d = absolute_dir(raw);
    free(raw);
    if (!d)
        return NDF_ERR_IO;
    store *s = xcalloc(1, sizeof *s);
    s->ops = &lite_ops;
    s->dir = d;
    s->path = xasprintf("%s/%s", d, STORE_DB_NAME);
    if (opts)
        s->opts = *opts;
    else
        store_opts_default(&s->opts);
    s->perr.hold = s->opts.hold_progress_errors;
    if (s->opts.backups <= 0)
        s->opts.backups = 5;
    if (s->opts.backups > 100)
        s->opts.backups = 100;
    pthread_mutex_init(&s->wlock, NULL);
    pthread_mutex_init(&s->rlock, NULL);
    pthread_mutex_init(&s->qlock, NULL);
    pthread_cond_init(&s->qcv, NULL);
    pthread_cond_init(&s->dcv, NULL);
    pthread_mutex_init(&s->block, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->bcv, &ca);
    pthread_condattr_destroy(&ca);
    if (gethostname(s->host, sizeof s->host) != 0)
        snprintf(s->host, sizeof s->host, "localhost");
    s->host[sizeof s->host - 1] = 0;
    read_boot_id(s->boot_id, sizeof s->boot_id);

    int rc = prepare_dir(d);
    if (!rc)
        s->note = unrec_open(d); /* before the disk fills: it allocates */
    if (!rc)
        rc = connect(d, s->path, &s->opts, 1, &s->w);
    if (!rc)
        rc = migrate(d, s->path, s->w);
    if (!rc)
        rc = store_recover(s, NULL);
    if (!rc && s->opts.import_legacy && has_legacy_files(d))
        rc = store_import_legacy(s, d, NULL);
    if (rc) {
        store_close(s);
        return rc;
    }
    *out = s;
    return NDF_OK;
}

/* Marks the RUNNING row of noted execution `n` as its writer would have
 * (FAILED "not recorded: ..."), its RUNNING nodes FAILED.  Caller holds
 * wlock inside a transaction.  *changed: the row was RUNNING. */
static int mark_noted(store *s, const unrec_entry *n, int *changed)
{
    char *msg = store_unrecorded_text(n->cause, n->status);
    sqlite3_stmt *q = NULL;
    int r = sqlite3_prepare_v2(s->w,
                               "UPDATE executions SET status = 'FAILED', end_time = ?2,"
                               " duration = ?3, message = ?4"
                               " WHERE id = ?1 AND pid = ?5 AND status = 'RUNNING'",
                               -1, &q, NULL);
    if (r == SQLITE_OK) {
        bind_text(q, 1, n->id);
        bind_time(q, 2, n->end);
        sqlite3_bind_double(q, 3, n->duration);
        bind_text(q, 4, msg);
        sqlite3_bind_int64(q, 5, n->pid);
        r = sqlite3_step(q);
        *changed = sqlite3_changes(s->w) > 0;
    }
    sqlite3_finalize(q);
    free(msg);
    if (r == SQLITE_DONE && *changed) {
        r = sqlite3_prepare_v2(s->w,
                               "UPDATE nodes SET state = 'FAILED', end_time = ?2,"
                               " message = coalesce(message, 'its end was not recorded')"
                               " WHERE exec_seq = (SELECT seq FROM executions WHERE id = ?1)"
                               " AND state = 'RUNNING'",
                               -1, &q, NULL);
        if (r == SQLITE_OK) {
            bind_text(q, 1, n->id);
            bind_time(q, 2, n->end);
            r = sqlite3_step(q);
        }
        sqlite3_finalize(q);
    }
    return r == SQLITE_DONE ? SQLITE_OK : r;
}

/* The ends this process put in the note: the disk may have room now. */
static void retry_noted(store *s)
{
    unrec_entry *v;
    size_t n = s->w ? unrec_of_pid(s->note, (long)getpid(), &v) : 0;
    if (!n)
        return;
    pthread_mutex_lock(&s->wlock);
    for (size_t i = 0; i < n; i++) {
        int changed = 0;
        int r = sqlite3_exec(s->w, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (r == SQLITE_OK && (r = mark_noted(s, &v[i], &changed)) == SQLITE_OK)
            r = sqlite3_exec(s->w, "COMMIT", NULL, NULL, NULL);
        if (r != SQLITE_OK) {
            if (!sqlite3_get_autocommit(s->w))
                sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
            log_msg(NDF_LOG_DEBUG, "%s: execution %s: still not marked: %s", s->path, v[i].id,
                    sqlite3_errstr(r));
            break; /* left to the recovery of the next command */
        }
        unrec_drop(s->note, &v[i]);
    }
    pthread_mutex_unlock(&s->wlock);
    free(v);
}

static void lite_close(store *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->block);
    s->bstopping = 1;
    pthread_cond_broadcast(&s->bcv);
    int bstarted = s->bstarted;
    pthread_mutex_unlock(&s->block);
    if (bstarted)
        pthread_join(s->bthread, NULL); /* after the backup in progress, if any */
    pthread_mutex_lock(&s->qlock);
    s->stopping = 1;
    pthread_cond_signal(&s->qcv);
    int started = s->started;
    pthread_mutex_unlock(&s->qlock);
    /* the writer drains the queue before it stops */
    if (started)
        pthread_join(s->thread, NULL);
    retry_noted(s);
    unrec_close(s->note);
    store_perr_close(&s->perr);
    hashmap_free(s->since_prune, NULL);
    for (int i = 0; i < W_COUNT; i++)
        sqlite3_finalize(s->ws[i]);
    for (size_t i = 0; i < ARRAY_SIZE(s->rs); i++)
        sqlite3_finalize(s->rs[i]);
    sqlite3_close(s->w);
    sqlite3_close(s->r);
    pthread_mutex_destroy(&s->wlock);
    pthread_mutex_destroy(&s->rlock);
    pthread_mutex_destroy(&s->qlock);
    pthread_cond_destroy(&s->qcv);
    pthread_cond_destroy(&s->dcv);
    pthread_mutex_destroy(&s->block);
    pthread_cond_destroy(&s->bcv);
    free(s->dir);
    free(s->path);
    free(s);
}

static const char *lite_path(const store *s)
{
    return s->path;
}

static const char *lite_dir(const store *s)
{
    return s->dir;
}

static struct timespec mono_after(double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (seconds > 1e9)
        seconds = 1e9;
    double whole = floor(seconds);
    ts.tv_sec += (time_t)whole;
    ts.tv_nsec += (long)((seconds - whole) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static void *backup_main(void *arg)
{
    store *s = arg;
    int failing = 0;
    pthread_mutex_lock(&s->block);
    while (!s->bstopping) {
        if (s->binterval <= 0) {
            pthread_cond_wait(&s->bcv, &s->block);
            continue;
        }
        double interval = s->binterval;
        struct timespec ts = mono_after(interval);
        int e = pthread_cond_timedwait(&s->bcv, &s->block, &ts);
        /* woken early: stopping, or a new interval that starts over */
        if (e != ETIMEDOUT || s->bstopping)
            continue;
        s->brunning = 1;
        pthread_mutex_unlock(&s->block);
        char *path;
        /* A failure is told once, and its end; not every interval while
         * the cause (a full disk, a removed directory) lasts. */
        if (store_backup(s, &path) == NDF_OK) {
            if (failing)
                log_msg(NDF_LOG_WARN, "interval backups work again: %s written", path);
            else
                log_msg(NDF_LOG_INFO, "backup written: %s", path);
            failing = 0;
        } else if (!failing) {
            log_msg(NDF_LOG_ERROR,
                    "interval backup failed: %s (tried again every %gs; told again when one "
                    "succeeds)",
                    err_msg(), interval);
            failing = 1;
        } else {
            log_msg(NDF_LOG_DEBUG, "interval backup failed again: %s", err_msg());
        }
        free(path);
        pthread_mutex_lock(&s->block);
        s->brunning = 0;
        pthread_cond_broadcast(&s->bcv);
    }
    pthread_mutex_unlock(&s->block);
    return NULL;
}

static int lite_backup_every(store *s, double interval_s)
{
    if (!(interval_s >= 0) || !isfinite(interval_s))
        return err_set(NDF_ERR_INVALID, "backup interval %g: expected seconds >= 0", interval_s);
    int rc = NDF_OK;
    pthread_mutex_lock(&s->block);
    s->binterval = interval_s;
    if (!s->bstarted && interval_s > 0) {
        int e = pthread_create(&s->bthread, NULL, backup_main, s);
        if (e)
            rc = err_set(NDF_ERR_RESOURCE, "%s: cannot start the backup thread: %s", s->path,
                         strerror(e));
        else
            s->bstarted = 1;
    }
    pthread_cond_broadcast(&s->bcv);
    /* stopped: no backup is written after this returns */
    while (interval_s == 0 && s->brunning)
        pthread_cond_wait(&s->bcv, &s->block);
    pthread_mutex_unlock(&s->block);
    return rc;
}

/* ------------------------------------------------------------------ */
/* one-off statements on the writer connection (maintenance) */

/* Prepares `sql` on `w` and binds ?1 to `a1` (text, may be NULL). */
static int wprep(store *s, const char *sql, const char *a1, sqlite3_stmt **out)
{
    int rc = sqlite3_prepare_v2(s->w, sql, -1, out, NULL);
    if (rc != SQLITE_OK)
        return wfail(s, rc, "cannot prepare a statement");
    if (a1)
        bind_text(*out, 1, a1);
    return NDF_OK;
}

/* Runs `sql` with ?1 = a1; *changes (may be NULL) gets the rows changed. */
static int wexec(store *s, const char *sql, const char *a1, long long *changes)
{
    sqlite3_stmt *st;
    int rc = wprep(s, sql, a1, &st);
    if (rc)
        return rc;
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        int e = wfail(s, rc, "cannot update the database");
        sqlite3_finalize(st);
        return e;
    }
    sqlite3_finalize(st);
    if (changes)
        *changes = sqlite3_changes64(s->w);
    return NDF_OK;
}

static int wbegin(store *s)
{
    pthread_mutex_lock(&s->wlock);
    int rc = wsimple(s, W_BEGIN, "cannot start a transaction");
    if (!rc && check_moved(s->path, s->w)) {
        sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
        rc = recreate_moved(s);
        if (!rc)
            rc = wsimple(s, W_BEGIN, "cannot start a transaction");
        if (!rc && (rc = check_moved(s->path, s->w)))
            sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
        if (rc)
            pthread_mutex_unlock(&s->wlock);
        return rc;
    }
    if (rc)
        pthread_mutex_unlock(&s->wlock);
    return rc;
}

/* Commits when rc is NDF_OK, else rolls back; releases wlock.  Returns
 * the first error. */
static int wend(store *s, int rc)
{
    if (!rc)
        rc = wsimple(s, W_COMMIT, "cannot commit");
    if (rc && !sqlite3_get_autocommit(s->w)) {
        char *keep = xstrdup(err_msg());
        sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
        err_set(rc, "%s", keep);
        free(keep);
    }
    pthread_mutex_unlock(&s->wlock);
    return rc;
}

/* ------------------------------------------------------------------ */
/* crash recovery */

static int process_alive(store *s, const char *host, long pid, const char *boot, long long started)
{
    return store_process_alive(s->host, s->boot_id, host, pid, boot, started);
}

typedef struct dead_exec {
    sqlite3_int64 seq;
    long pid;
    char *host;
    char *id;
    double start;
    int here;  /* this host and boot: its step processes can be stopped */
    int noted; /* its end is in the note: it did not crash */
    unrec_entry note;
} dead_exec;

/* The last time the store heard of execution `seq` (its heartbeat, its
 * newest node start or end), or `start` when none is later: a crashed
 * execution's end. */
static double last_heard(store *s, sqlite3_int64 seq, double start)
{
    sqlite3_stmt *st;
    double last = start;
    if (wprep(s,
              "SELECT max(coalesce(max(start_time), 0), coalesce(max(end_time), 0),"
              " coalesce((SELECT heartbeat FROM executions WHERE seq = ?1), 0))"
              " FROM nodes WHERE exec_seq = ?1",
              NULL, &st))
        return last;
    sqlite3_bind_int64(st, 1, seq);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_double(st, 0) > last)
        last = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return last;
}

/* Takes the step process groups of execution `id` out of the table,
 * appending those worth stopping (`here`) to *v. */
static int take_groups(store *s, const char *id, int here, store_group **v, size_t *n)
{
    sqlite3_stmt *st;
    int rc = wprep(s, "SELECT pgid, pid_start, token FROM step_processes WHERE exec_id = ?1", id,
                   &st);
    while (!rc && here && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        *v = xrealloc(*v, (*n + 1) * sizeof **v);
        (*v)[*n].pgid = (long)sqlite3_column_int64(st, 0);
        (*v)[*n].start = sqlite3_column_int64(st, 1);
        (*v)[*n].token = col_dup(st, 2);
        ++*n;
        rc = 0;
    }
    if (rc == SQLITE_DONE)
        rc = NDF_OK;
    else if (rc > 0)
        rc = wfail(s, rc, "cannot read a crashed execution's processes");
    sqlite3_finalize(st);
    return rc ? rc : wexec(s, "DELETE FROM step_processes WHERE exec_id = ?1", id, NULL);
}

static int recover_running(store *s, size_t *count)
{
    size_t ndead = 0, cap = 0, fixed = 0, ngroups = 0;
    dead_exec *dead = NULL;
    store_group *groups = NULL;
    sqlite3_stmt *st = NULL;
    if (count)
        *count = 0;
    /* read first: the write lock is taken only when there is work */
    pthread_mutex_lock(&s->wlock);
    /* the note's entries of processes already dead, read before the rows:
     * one whose row is not among the dead RUNNING ones read next was
     * written (by another recovery, or a recovery that died before it
     * freed the slot) and its slot is stale */
    unrec_entry *stale = NULL;
    size_t nstale = unrec_of_pid(s->note, 0, &stale), kept = 0;
    for (size_t i = 0; i < nstale; i++)
        if (!process_alive(s, s->host, stale[i].pid, stale[i].boot, 0))
            stale[kept++] = stale[i];
    nstale = kept;
    int rc = wprep(s,
                   "SELECT seq, host, pid, boot_id, pid_start, id, start_time FROM executions"
                   " WHERE status = 'RUNNING'",
                   NULL, &st);
    while (!rc && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *host = (const char *)sqlite3_column_text(st, 1);
        const char *boot = (const char *)sqlite3_column_text(st, 3);
        long pid = (long)sqlite3_column_int64(st, 2);
        if (process_alive(s, host, pid, boot, sqlite3_column_int64(st, 4))) {
            rc = 0;
            continue;
        }
        if (ndead == cap) {
            cap = cap ? cap * 2 : 8;
            dead = xrealloc(dead, cap * sizeof *dead);
        }
        dead[ndead].seq = sqlite3_column_int64(st, 0);
        dead[ndead].pid = pid;
        dead[ndead].host = xstrdup(host ? host : "?");
        dead[ndead].id = col_dup(st, 5);
        dead[ndead].start = sqlite3_column_double(st, 6);
        dead[ndead].here = host && strcmp(host, s->host) == 0 && boot && s->boot_id[0] &&
                           strcmp(boot, s->boot_id) == 0;
        /* an entry is trusted only for a row of this host with its id,
         * pid and boot */
        dead[ndead].noted = dead[ndead].id && host && strcmp(host, s->host) == 0 &&
                            unrec_find(s->note, dead[ndead].id, pid, &dead[ndead].note) &&
                            strcmp(dead[ndead].note.boot, boot ? boot : "") == 0;
        ndead++;
        rc = 0;
    }
    if (rc == SQLITE_DONE)
        rc = NDF_OK;
    else if (rc > 0)
        rc = wfail(s, rc, "cannot look for crashed executions");
    sqlite3_finalize(st);
    for (size_t i = 0; i < nstale && !rc; i++) {
        int running = 0;
        for (size_t k = 0; k < ndead && !running; k++)
            running = dead[k].id && dead[k].pid == stale[i].pid &&
                      strcmp(dead[k].id, stale[i].id) == 0;
        if (!running)
            unrec_drop(s->note, &stale[i]);
    }
    free(stale);
    pthread_mutex_unlock(&s->wlock);
    if (rc || !ndead)
        goto out;

    if ((rc = wbegin(s)))
        goto out;
    for (size_t i = 0; i < ndead && !rc; i++) {
        if (dead[i].noted) {
            int changed = 0;
            int r = mark_noted(s, &dead[i].note, &changed);
            if (r != SQLITE_OK)
                rc = wfail(s, r, "cannot mark an unrecorded execution");
            else if (changed)
                fixed++;
            if (!rc && dead[i].id)
                rc = take_groups(s, dead[i].id, dead[i].here, &groups, &ngroups);
            if (!rc && changed)
                log_msg(NDF_LOG_INFO, "%s: execution %s ended %s; its end was not recorded: %s",
                        s->path, dead[i].id, dead[i].note.status, dead[i].note.cause);
            continue;
        }
        char *node = NULL;
        double now = last_heard(s, dead[i].seq, dead[i].start);
        if ((rc = wprep(s,
                        "SELECT path FROM nodes WHERE exec_seq = ?1 AND state = 'RUNNING'"
                        " AND path <> '' ORDER BY start_time DESC, seq DESC LIMIT 1",
                        NULL, &st)))
            break;
        sqlite3_bind_int64(st, 1, dead[i].seq);
        if (sqlite3_step(st) == SQLITE_ROW)
            node = col_dup(st, 0);
        sqlite3_finalize(st);
        char *msg = node ? xasprintf("crashed: process %ld on %s died while '%s' was running",
                                     dead[i].pid, dead[i].host, node)
                         : xasprintf("crashed: process %ld on %s died before any step ran",
                                     dead[i].pid, dead[i].host);
        if (s->opts.crash_cause && s->opts.crash_pid == dead[i].pid) {
            /* the note names the step that was running when it died, which
             * the last progress written may not have reached */
            free(msg);
            msg = xasprintf("crashed: process %ld on %s died of %s", dead[i].pid, dead[i].host,
                            s->opts.crash_cause);
        }
        if (!(rc = wprep(s,
                         "UPDATE executions SET status = 'CRASHED', end_time = ?2,"
                         " duration = max(0, ?2 - coalesce(start_time, ?2)),"
                         " message = ?3 WHERE seq = ?1 AND status = 'RUNNING'",
                         NULL, &st))) {
            sqlite3_bind_int64(st, 1, dead[i].seq);
            sqlite3_bind_double(st, 2, now);
            bind_text(st, 3, msg);
            int r = sqlite3_step(st);
            if (r != SQLITE_DONE)
                rc = wfail(s, r, "cannot mark a crashed execution");
            else if (sqlite3_changes(s->w) > 0)
                fixed++;
            sqlite3_finalize(st);
        }
        if (!rc && !(rc = wprep(s,
                                "UPDATE nodes SET state = 'FAILED', end_time = ?2,"
                                " message = coalesce(message, 'interrupted: its process died')"
                                " WHERE exec_seq = ?1 AND state = 'RUNNING'",
                                NULL, &st))) {
            sqlite3_bind_int64(st, 1, dead[i].seq);
            sqlite3_bind_double(st, 2, now);
            int r = sqlite3_step(st);
            if (r != SQLITE_DONE)
                rc = wfail(s, r, "cannot mark a crashed execution's nodes");
            sqlite3_finalize(st);
        }
        if (!rc && dead[i].id)
            rc = take_groups(s, dead[i].id, dead[i].here, &groups, &ngroups);
        if (!rc)
            log_msg(NDF_LOG_WARN, "%s: execution %s %s", s->path,
                    dead[i].id ? dead[i].id : "?", msg);
        free(msg);
        free(node);
    }
    rc = wend(s, rc);
    /* the slots once the rows they stood for are committed */
    for (size_t i = 0; i < ndead && !rc; i++)
        if (dead[i].noted)
            unrec_drop(s->note, &dead[i].note);
out:
    /* after the commit: a process killed for a row that then rolled back
     * would be a step of a run still marked RUNNING */
    store_stop_groups(s->path, "", groups, ngroups, !rc);
    for (size_t i = 0; i < ndead; i++) {
        free(dead[i].host);
        free(dead[i].id);
    }
    free(dead);
    if (!rc && count)
        *count = fixed;
    return rc;
}

/* A rollback claim whose holder died. */
typedef struct dead_claim {
    char *id;
    char *host;
    char *was_status, *was_message; /* what it had ended as */
    char *msg;                      /* its new message, once marked */
    long pid;
    int here;
} dead_claim;

/* The rollback claims whose holder died (as recover_running tells a
 * RUNNING row's): each execution becomes FAILED "rollback interrupted",
 * keeping the node states its rollback recorded (none: a rollback writes
 * them at its end), the claim is dropped, and the undo processes it left
 * are stopped.  A claim of another host is left alone. */
static int recover_claims(store *s, size_t *count)
{
    dead_claim *dead = NULL;
    store_group *groups = NULL;
    size_t ndead = 0, ngroups = 0;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->wlock);
    int rc = wprep(s,
                   "SELECT exec_id, host, pid, boot_id, pid_start, was_status, was_message"
                   " FROM rollback_claims",
                   NULL, &st);
    while (!rc && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = 0;
        const char *host = (const char *)sqlite3_column_text(st, 1);
        const char *boot = (const char *)sqlite3_column_text(st, 3);
        long pid = (long)sqlite3_column_int64(st, 2);
        if (process_alive(s, host, pid, boot, sqlite3_column_int64(st, 4)))
            continue;
        dead = xrealloc(dead, (ndead + 1) * sizeof *dead);
        dead[ndead].id = col_dup(st, 0);
        dead[ndead].host = xstrdup(host ? host : "?");
        dead[ndead].was_status = col_dup(st, 5);
        dead[ndead].was_message = col_dup(st, 6);
        dead[ndead].msg = NULL;
        dead[ndead].pid = pid;
        /* this boot's, or of unknown boot (an older ndf's claim): its
         * groups are checked by start time and token before any kill */
        dead[ndead].here = !boot || !*boot || (s->boot_id[0] && strcmp(boot, s->boot_id) == 0);
        ndead++;
    }
    if (rc == SQLITE_DONE)
        rc = NDF_OK;
    else if (rc > 0)
        rc = wfail(s, rc, "cannot look for interrupted rollbacks");
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->wlock);
    if (rc || !ndead)
        goto out;
    size_t fixed = 0;
    if ((rc = wbegin(s)))
        goto out;
    for (size_t i = 0; i < ndead && !rc; i++) {
        long long gone = 0;
        /* the same holder still: another recovery may have been first */
        if (!(rc = wprep(s, "DELETE FROM rollback_claims WHERE exec_id = ?1 AND pid = ?2", dead[i].id,
                         &st))) {
            sqlite3_bind_int64(st, 2, dead[i].pid);
            int r = sqlite3_step(st);
            if (r != SQLITE_DONE)
                rc = wfail(s, r, "cannot drop an interrupted rollback's claim");
            gone = sqlite3_changes64(s->w);
            sqlite3_finalize(st);
        }
        if (rc || !gone)
            continue;
        char *msg = store_rollback_interrupted_message(dead[i].id, dead[i].pid, dead[i].host,
                                                       dead[i].was_status, dead[i].was_message);
        long long marked = 0;
        /* still as the claim left it: an older ndf's claim, migrated
         * while that ndf ran, is not dropped by its end, and what that
         * end recorded stands */
        if (!(rc = wprep(s,
                         "UPDATE executions SET status = 'FAILED', message = ?2"
                         " WHERE id = ?1 AND status = 'ROLLED_BACK'"
                         " AND message LIKE 'being rolled back%'",
                         dead[i].id, &st))) {
            bind_text(st, 2, msg);
            int r = sqlite3_step(st);
            if (r != SQLITE_DONE)
                rc = wfail(s, r, "cannot mark an interrupted rollback");
            else
                marked = sqlite3_changes64(s->w);
            fixed += marked > 0;
            sqlite3_finalize(st);
        }
        if (!rc)
            rc = take_groups(s, dead[i].id, dead[i].here, &groups, &ngroups);
        if (marked)
            dead[i].msg = msg;
        else
            free(msg);
    }
    rc = wend(s, rc);
    /* said once it is so: a commit that fails (a full disk) leaves the
     * claim to the next recovery, which says it then */
    for (size_t i = 0; i < ndead && !rc; i++)
        if (dead[i].msg)
            log_msg(NDF_LOG_WARN, "%s: execution %s: %s", s->path, dead[i].id, dead[i].msg);
    if (!rc && count)
        *count += fixed;
out:
    store_stop_groups(s->path, "undo ", groups, ngroups, !rc);
    for (size_t i = 0; i < ndead; i++) {
        free(dead[i].id);
        free(dead[i].host);
        free(dead[i].was_status);
        free(dead[i].was_message);
        free(dead[i].msg);
    }
    free(dead);
    return rc;
}

static int lite_recover(store *s, size_t *count)
{
    int rc = recover_running(s, count);
    return rc ? rc : recover_claims(s, count);
}

/* ------------------------------------------------------------------ */
/* queries */

/* Opens the reader connection on first use; called with rlock held. */
static int reader(store *s)
{
    unsigned gen = atomic_load(&s->wgen);
    if (s->r) {
        /* the writer recreated the file it reads (it was removed): read
         * the new one */
        if (s->rgen == gen)
            return NDF_OK;
        for (size_t i = 0; i < ARRAY_SIZE(s->rs); i++) {
            sqlite3_finalize(s->rs[i]);
            s->rs[i] = NULL;
        }
        sqlite3_close(s->r);
        s->r = NULL;
    }
    int rc = connect(s->dir, s->path, &s->opts, 0, &s->r);
    if (rc)
        return rc;
    s->rgen = gen;
    sqlite3_exec(s->r, "PRAGMA query_only = ON", NULL, NULL, NULL);
    return NDF_OK;
}

#define EXEC_COLS                                                                                  \
    "id, pattern, parent_id, redrive_of, origin, status, context, domain, host, pid, boot_id,"     \
    " start_time, end_time, duration, message, plugins, counted, seq, timeout, cpu,"               \
    " peak_rss_kb, confidence, fallback_from, fallback_cause"

static void exec_from_row(sqlite3_stmt *st, store_exec *e)
{
    memset(e, 0, sizeof *e);
    e->id = col_dup(st, 0);
    e->pattern = col_dup(st, 1);
    e->parent_id = col_dup(st, 2);
    e->redrive_of = col_dup(st, 3);
    store_origin o = STORE_ORIGIN_EXTERNAL;
    store_origin_parse((const char *)sqlite3_column_text(st, 4), &o);
    e->origin = o;
    store_status stt = STORE_FAILED;
    store_status_parse((const char *)sqlite3_column_text(st, 5), &stt);
    e->status = stt;
    e->context = col_dup(st, 6);
    e->domain = col_dup(st, 7);
    e->host = col_dup(st, 8);
    e->pid = (long)sqlite3_column_int64(st, 9);
    e->boot_id = col_dup(st, 10);
    e->start = sqlite3_column_double(st, 11);
    e->end = sqlite3_column_double(st, 12);
    e->duration = sqlite3_column_double(st, 13);
    e->message = col_dup(st, 14);
    e->plugins = col_dup(st, 15);
    e->counted = sqlite3_column_int(st, 16);
    e->timeout = sqlite3_column_double(st, 18);
    e->cpu = sqlite3_column_double(st, 19);
    e->peak_rss_kb = (long)sqlite3_column_int64(st, 20);
    e->confidence = sqlite3_column_double(st, 21);
    e->fallback_from = col_dup(st, 22);
    e->fallback_cause = col_dup(st, 23);
}

/* Runs a prepared query of EXEC_COLS rows on the reader into a new array. */
static int collect_execs(store *s, sqlite3_stmt *st, store_exec **out, size_t *n)
{
    size_t cap = 0, cnt = 0;
    store_exec *v = NULL;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            v = xrealloc(v, cap * sizeof *v);
        }
        exec_from_row(st, &v[cnt++]);
    }
    if (rc != SQLITE_DONE) {
        rc = rfail(s, rc, "cannot list executions");
        store_exec_array_free(v, cnt);
        return rc;
    }
    *out = v;
    *n = cnt;
    return NDF_OK;
}

static int lite_runs(store *s, const store_query *q, store_exec **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    strbuf sql;
    sb_init(&sql);
    sb_puts(&sql, "SELECT " EXEC_COLS " FROM executions WHERE 1 = 1");
    /* only the conditions given, so the planner can use the indexes */
    if (q && q->pattern)
        sb_puts(&sql, " AND pattern = ?1");
    if (q && q->status >= 0)
        sb_puts(&sql, " AND status = ?2");
    if (q && q->since > 0)
        sb_puts(&sql, " AND start_time >= ?3");
    if (q && q->origin)
        sb_puts(&sql, " AND origin = ?5");
    if (q && q->top)
        sb_puts(&sql, " AND (parent_id IS NULL OR parent_id = '')");
    sb_puts(&sql, " ORDER BY seq DESC LIMIT ?4");
    char *text = sb_steal(&sql);
    pthread_mutex_lock(&s->rlock);
    sqlite3_stmt *st = NULL;
    int rc = reader(s);
    if (!rc) {
        int r = sqlite3_prepare_v2(s->r, text, -1, &st, NULL);
        if (r != SQLITE_OK)
            rc = rfail(s, r, "cannot list executions");
    }
    if (!rc) {
        if (q && q->pattern)
            bind_text(st, 1, q->pattern);
        if (q && q->status >= 0)
            bind_text(st, 2, store_status_name((store_status)q->status));
        if (q && q->since > 0)
            sqlite3_bind_double(st, 3, q->since);
        if (q && q->origin)
            bind_text(st, 5, q->origin);
        sqlite3_bind_int64(st, 4, q && q->limit ? (sqlite3_int64)q->limit : 50);
        rc = collect_execs(s, st, out, n);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->rlock);
    free(text);
    return rc;
}

static int lite_children(store *s, const char *id, store_exec **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&s->rlock);
    sqlite3_stmt *st = NULL;
    int rc = reader(s);
    if (!rc) {
        int r = sqlite3_prepare_v2(s->r,
                                   "SELECT " EXEC_COLS " FROM executions WHERE parent_id = ?1"
                                   " ORDER BY seq",
                                   -1, &st, NULL);
        if (r != SQLITE_OK)
            rc = rfail(s, r, "cannot list executions");
    }
    if (!rc) {
        bind_text(st, 1, id);
        rc = collect_execs(s, st, out, n);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->rlock);
    return rc;
}

static int load_nodes(store *s, sqlite3_int64 xseq, store_exec *e)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(
        s->r,
        "SELECT n.path, n.seq, n.kind, n.state, n.start_time, n.end_time, n.attempt,"
        " n.exit_status, n.message, n.timeout,"
        " (SELECT length FROM outputs o WHERE o.exec_seq = n.exec_seq AND o.path = n.path"
        "  AND o.stream = 0),"
        " (SELECT dropped FROM outputs o WHERE o.exec_seq = n.exec_seq AND o.path = n.path"
        "  AND o.stream = 0),"
        " (SELECT length FROM outputs o WHERE o.exec_seq = n.exec_seq AND o.path = n.path"
        "  AND o.stream = 1),"
        " (SELECT dropped FROM outputs o WHERE o.exec_seq = n.exec_seq AND o.path = n.path"
        "  AND o.stream = 1),"
        " (SELECT length FROM outputs o WHERE o.exec_seq = n.exec_seq AND o.path = n.path"
        "  AND o.stream = 2),"
        " (SELECT dropped FROM outputs o WHERE o.exec_seq = n.exec_seq AND o.path = n.path"
        "  AND o.stream = 2),"
        " n.result, n.result_length, n.metrics"
        " FROM nodes n WHERE n.exec_seq = ?1 ORDER BY n.seq, n.path",
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rfail(s, rc, "cannot read nodes");
    sqlite3_bind_int64(st, 1, xseq);
    size_t cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (e->nnodes == cap) {
            cap = cap ? cap * 2 : 8;
            e->nodes = xrealloc(e->nodes, cap * sizeof *e->nodes);
        }
        store_node *n = &e->nodes[e->nnodes++];
        memset(n, 0, sizeof *n);
        n->path = col_dup(st, 0);
        if (!n->path)
            n->path = xstrdup("");
        n->seq = sqlite3_column_int(st, 1);
        n->kind = lookup(kind_names, ARRAY_SIZE(kind_names),
                         (const char *)sqlite3_column_text(st, 2), NDF_NODE_STEP);
        n->state = lookup(state_names, ARRAY_SIZE(state_names),
                          (const char *)sqlite3_column_text(st, 3), NDF_STATE_PENDING);
        n->start = sqlite3_column_double(st, 4);
        n->end = sqlite3_column_double(st, 5);
        n->attempt = sqlite3_column_int(st, 6);
        n->exit_status = sqlite3_column_type(st, 7) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 7);
        n->message = col_dup(st, 8);
        n->timeout = sqlite3_column_double(st, 9);
        for (int k = 0; k < STORE_NSTREAMS; k++) {
            n->outlen[k] = (size_t)sqlite3_column_int64(st, 10 + 2 * k);
            n->dropped[k] = (uint64_t)sqlite3_column_int64(st, 11 + 2 * k);
        }
        n->result = col_dup(st, 16);
        n->result_len = n->result ? (size_t)sqlite3_column_int64(st, 17) : 0;
        n->metrics = col_dup(st, 18);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return rfail(s, rc, "cannot read nodes");
    return NDF_OK;
}

static int lite_get(store *s, const char *id, store_exec *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->rlock);
    sqlite3_stmt *st = NULL;
    sqlite3_int64 xseq = 0;
    int rc = reader(s);
    if (!rc) {
        int r = sqlite3_prepare_v2(s->r, "SELECT " EXEC_COLS " FROM executions WHERE id = ?1", -1,
                                   &st, NULL);
        if (r != SQLITE_OK)
            rc = rfail(s, r, "cannot read an execution");
    }
    if (!rc) {
        bind_text(st, 1, id);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
            exec_from_row(st, out);
            xseq = sqlite3_column_int64(st, 17);
        } else if (r == SQLITE_DONE) {
            rc = err_set(NDF_ERR_NOT_FOUND, "no execution with id '%s' in %s", id, s->path);
        } else {
            rc = rfail(s, r, "cannot read an execution");
        }
    }
    sqlite3_finalize(st);
    if (!rc)
        rc = load_nodes(s, xseq, out);
    pthread_mutex_unlock(&s->rlock);
    if (rc)
        store_exec_free(out);
    return rc;
}

/* Hands the stored blob to the inflater in pieces (incremental blob I/O),
 * inside the read transaction of the SELECT that found it, so a progress
 * write that replaces the row meanwhile is not seen half-way. */
static int lite_output_each(store *s, const char *id, const char *path, int stream, int64_t from,
                            store_output_fn each, void *arg, size_t *len, uint64_t *dropped)
{
    *len = 0;
    *dropped = 0;
    pthread_mutex_lock(&s->rlock);
    sqlite3_stmt *st = NULL;
    sqlite3_blob *b = NULL;
    store_unz *u = NULL;
    unsigned char *zbuf = NULL;
    int rc = reader(s);
    if (!rc) {
        int r = sqlite3_prepare_v2(
            s->r,
            "SELECT n.path, o.length, o.dropped, o.rowid FROM executions e"
            " JOIN nodes n ON n.exec_seq = e.seq AND n.path = ?2"
            " LEFT JOIN outputs o ON o.exec_seq = e.seq AND o.path = n.path AND o.stream = ?3"
            " WHERE e.id = ?1",
            -1, &st, NULL);
        if (r != SQLITE_OK)
            rc = rfail(s, r, "cannot read an output");
    }
    if (rc)
        goto out;
    bind_text(st, 1, id);
    bind_text(st, 2, path);
    sqlite3_bind_int(st, 3, stream);
    int r = sqlite3_step(st);
    if (r == SQLITE_DONE) {
        rc = err_set(NDF_ERR_NOT_FOUND, "execution %s has no node '%s' in %s", id, path, s->path);
        goto out;
    }
    if (r != SQLITE_ROW) {
        rc = rfail(s, r, "cannot read an output");
        goto out;
    }
    sqlite3_int64 want = sqlite3_column_int64(st, 1);
    *dropped = (uint64_t)sqlite3_column_int64(st, 2);
    if (sqlite3_column_type(st, 3) == SQLITE_NULL)
        goto out; /* the node wrote nothing to that stream */
    if (want < 0 || (uint64_t)want > STORE_MAX_OUTPUT) {
        rc = err_set(NDF_ERR_IO, "%s: output of %s '%s' claims %lld bytes; damaged row", s->path,
                     id, path, (long long)want);
        goto out;
    }
    *len = (size_t)want;
    sqlite3_int64 rowid = sqlite3_column_int64(st, 3);
    r = sqlite3_blob_open(s->r, "main", "outputs", "data", rowid, 0, &b);
    if (r != SQLITE_OK) {
        rc = rfail(s, r, "cannot read an output");
        goto out;
    }
    int zlen = sqlite3_blob_bytes(b);
    u = store_unz_new(*len, from, each, arg);
    zbuf = xmalloc(STORE_OUTPUT_PIECE);
    for (int off = 0; off < zlen && !rc;) {
        int n = zlen - off < (int)STORE_OUTPUT_PIECE ? zlen - off : (int)STORE_OUTPUT_PIECE;
        if ((r = sqlite3_blob_read(b, zbuf, n, off)) != SQLITE_OK) {
            rc = rfail(s, r, "cannot read an output");
            break;
        }
        rc = store_unz_feed(u, zbuf, (size_t)n);
        off += n;
    }
    if (!rc)
        rc = store_unz_end(u);
    if (rc == STORE_UNZ_DAMAGED)
        rc = err_set(NDF_ERR_IO, "%s: output of %s '%s' is damaged (zlib %d)", s->path, id, path,
                     store_unz_zrc(u));
out:
    free(zbuf);
    store_unz_free(u);
    if (b)
        sqlite3_blob_close(b);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->rlock);
    return rc;
}

/* Statement `which` of s->rs, prepared on first use; caller holds rlock
 * and resets it after use. */
static int rcached(store *s, int which, const char *sql, sqlite3_stmt **out)
{
    if (!s->rs[which]) {
        int r = sqlite3_prepare_v3(s->r, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->rs[which], NULL);
        if (r != SQLITE_OK)
            return rfail(s, r, "cannot prepare a statement");
    }
    sqlite3_clear_bindings(s->rs[which]);
    *out = s->rs[which];
    return NDF_OK;
}

static int lite_learning(store *s, const char *name, learning_state *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->rlock);
    sqlite3_stmt *st = NULL;
    int rc = reader(s);
    if (!rc)
        rc = rcached(s, 0,
                     "SELECT executions, successes, score, alpha, beta, converged,"
                     " last_used, created, duration_total, timed FROM patterns"
                     " WHERE name = ?1",
                     &st);
    if (!rc) {
        bind_text(st, 1, name);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
            out->executions = (uint64_t)sqlite3_column_int64(st, 0);
            out->successes = (uint64_t)sqlite3_column_int64(st, 1);
            out->score = sqlite3_column_double(st, 2);
            out->alpha = sqlite3_column_double(st, 3);
            out->beta = sqlite3_column_double(st, 4);
            out->converged = sqlite3_column_int(st, 5);
            out->last_used = sqlite3_column_double(st, 6);
            out->created = sqlite3_column_double(st, 7);
            out->duration_total = sqlite3_column_double(st, 8);
            out->timed = (uint64_t)sqlite3_column_int64(st, 9);
        } else if (r == SQLITE_DONE) {
            rc = err_set(NDF_ERR_NOT_FOUND, "pattern '%s' has no stored state", name);
        } else {
            rc = rfail(s, r, "cannot read learning state");
        }
    }
    if (st)
        sqlite3_reset(st);
    st = NULL;
    if (!rc) {
        int r = SQLITE_DONE;
        rc = rcached(s, 1,
                     "SELECT domain, executions, successes FROM pattern_domains"
                     " WHERE pattern = ?1 ORDER BY domain",
                     &st);
        if (!rc)
            bind_text(st, 1, name);
        size_t cap = 0;
        while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW) {
            if (out->ndomains == cap) {
                cap = cap ? cap * 2 : 4;
                out->domains = xrealloc(out->domains, cap * sizeof *out->domains);
            }
            domain_count *d = &out->domains[out->ndomains++];
            d->domain = col_dup(st, 0);
            if (!d->domain)
                d->domain = xstrdup("");
            d->executions = (uint64_t)sqlite3_column_int64(st, 1);
            d->successes = (uint64_t)sqlite3_column_int64(st, 2);
        }
        if (!rc && r != SQLITE_DONE)
            rc = rfail(s, r, "cannot read learning state");
    }
    if (st)
        sqlite3_reset(st);
    pthread_mutex_unlock(&s->rlock);
    if (rc)
        learning_free(out);
    return rc;
}

static int lite_learning_all(store *s, store_learning_fn each, void *arg)
{
    pthread_mutex_lock(&s->rlock);
    sqlite3_stmt *pt = NULL, *dt = NULL;
    int rc = reader(s), r = SQLITE_OK;
    /* both in name order, merged: two scans instead of two lookups per
     * pattern; one read transaction, so the two agree */
    if (!rc && (r = sqlite3_exec(s->r, "BEGIN", NULL, NULL, NULL)) != SQLITE_OK)
        rc = rfail(s, r, "cannot read learning state");
    int began = !rc;
    if (!rc &&
        (r = sqlite3_prepare_v2(s->r,
                                "SELECT name, executions, successes, score, alpha, beta,"
                                " converged, last_used, created, duration_total, timed"
                                " FROM patterns ORDER BY name",
                                -1, &pt, NULL)) != SQLITE_OK)
        rc = rfail(s, r, "cannot read learning state");
    if (!rc && (r = sqlite3_prepare_v2(s->r,
                                       "SELECT pattern, domain, executions, successes"
                                       " FROM pattern_domains ORDER BY pattern, domain",
                                       -1, &dt, NULL)) != SQLITE_OK)
        rc = rfail(s, r, "cannot read learning state");
    int dr = rc ? SQLITE_DONE : sqlite3_step(dt);
    while (!rc && (r = sqlite3_step(pt)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(pt, 0);
        if (!name)
            continue;
        learning_state ls;
        memset(&ls, 0, sizeof ls);
        ls.executions = (uint64_t)sqlite3_column_int64(pt, 1);
        ls.successes = (uint64_t)sqlite3_column_int64(pt, 2);
        ls.score = sqlite3_column_double(pt, 3);
        ls.alpha = sqlite3_column_double(pt, 4);
        ls.beta = sqlite3_column_double(pt, 5);
        ls.converged = sqlite3_column_int(pt, 6);
        ls.last_used = sqlite3_column_double(pt, 7);
        ls.created = sqlite3_column_double(pt, 8);
        ls.duration_total = sqlite3_column_double(pt, 9);
        ls.timed = (uint64_t)sqlite3_column_int64(pt, 10);
        size_t cap = 0;
        /* domains of patterns with no row (none in a consistent store) are skipped */
        while (dr == SQLITE_ROW) {
            const char *dp = (const char *)sqlite3_column_text(dt, 0);
            int c = dp ? strcmp(dp, name) : -1;
            if (c > 0)
                break;
            if (c == 0) {
                if (ls.ndomains == cap) {
                    cap = cap ? cap * 2 : 4;
                    ls.domains = xrealloc(ls.domains, cap * sizeof *ls.domains);
                }
                domain_count *d = &ls.domains[ls.ndomains++];
                d->domain = col_dup(dt, 1);
                if (!d->domain)
                    d->domain = xstrdup("");
                d->executions = (uint64_t)sqlite3_column_int64(dt, 2);
                d->successes = (uint64_t)sqlite3_column_int64(dt, 3);
            }
            dr = sqlite3_step(dt);
        }
        if (dr != SQLITE_ROW && dr != SQLITE_DONE) {
            learning_free(&ls);
            rc = rfail(s, dr, "cannot read learning state");
            break;
        }
        each(arg, name, &ls);
        learning_free(&ls); /* what `each` did not take */
    }
    if (!rc && r != SQLITE_DONE)
        rc = rfail(s, r, "cannot read learning state");
    sqlite3_finalize(pt);
    sqlite3_finalize(dt);
    if (began)
        sqlite3_exec(s->r, "COMMIT", NULL, NULL, NULL);
    pthread_mutex_unlock(&s->rlock);
    return rc;
}

static int lite_patterns(store *s, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    pthread_mutex_lock(&s->rlock);
    sqlite3_stmt *st = NULL;
    int rc = reader(s);
    if (!rc) {
        int r = sqlite3_prepare_v2(s->r, "SELECT name FROM patterns ORDER BY name", -1, &st, NULL);
        if (r != SQLITE_OK)
            rc = rfail(s, r, "cannot list patterns");
    }
    size_t cap = 0;
    int r = SQLITE_DONE;
    while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *names = xrealloc(*names, cap * sizeof **names);
        }
        (*names)[(*n)++] = col_dup(st, 0);
    }
    if (!rc && r != SQLITE_DONE)
        rc = rfail(s, r, "cannot list patterns");
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->rlock);
    if (rc) {
        for (size_t i = 0; i < *n; i++)
            free((*names)[i]);
        free(*names);
        *names = NULL;
        *n = 0;
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* maintenance */

static int lite_reset_stats(store *s, const char *name)
{
    int rc = wbegin(s);
    if (rc)
        return rc;
    learning_state st;
    int found;
    rc = load_learning(s, name, NULL, &st, &found);
    if (!rc && !found)
        rc = err_set(NDF_ERR_NOT_FOUND, "pattern '%s' has no stored state", name);
    if (!rc) {
        double created = st.created;
        learning_reset(&st, &s->opts.learning);
        st.created = created;
        rc = save_learning(s, name, &st);
    }
    learning_free(&st);
    if (!rc)
        rc = wexec(s, "UPDATE patterns SET pruned = 0 WHERE name = ?1", name, NULL);
    if (!rc)
        rc = wexec(s, "DELETE FROM pattern_domains WHERE pattern = ?1", name, NULL);
    if (!rc)
        rc = wexec(s, "UPDATE executions SET counted = 0 WHERE pattern = ?1 AND counted = 1", name,
                   NULL);
    return wend(s, rc);
}

/* ---- rollback: the claim and the end, each one transaction ---- */

static int lite_rollback_claim(store *s, const char *id, const char *message, int *was,
                               char **was_message)
{
    int rc = wbegin(s);
    if (rc)
        return rc;
    /* BEGIN IMMEDIATE holds the write lock: the row read is the row
     * changed */
    sqlite3_stmt *st = NULL;
    if (!(rc = wprep(s, "SELECT status, parent_id, message, host, pid FROM executions WHERE id = ?1",
                     id, &st))) {
        int r = sqlite3_step(st);
        const char *status = r == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
        const char *parent = r == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 1) : NULL;
        if (r != SQLITE_ROW && r != SQLITE_DONE)
            rc = wfail(s, r, "cannot read an execution");
        else if (!status || !store_rollback_claimable(status, parent, was))
            rc = store_rollback_refused(id, r == SQLITE_ROW, status, parent,
                                        (const char *)sqlite3_column_text(st, 2),
                                        (const char *)sqlite3_column_text(st, 3),
                                        (long)sqlite3_column_int64(st, 4));
        else
            *was_message = col_dup(st, 2);
        sqlite3_finalize(st);
        st = NULL;
    }
    if (!rc && !(rc = wprep(s, SQL_REDRIVEN_AS("?1"), id, &st))) {
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW)
            rc = store_rollback_redriven(id, (const char *)sqlite3_column_text(st, 0));
        else if (r != SQLITE_DONE)
            rc = wfail(s, r, "cannot look up the redrives of an execution");
        sqlite3_finalize(st);
        st = NULL;
    }
    /* the redrive test again in the UPDATE itself, so the claim and the
     * test are one statement whatever the transaction does */
    if (!rc && !(rc = wprep(s, "UPDATE executions SET status = 'ROLLED_BACK', message = ?2"
                               " WHERE id = ?1 AND NOT EXISTS (" SQL_REDRIVEN_AS("?1") ")",
                            id, &st))) {
        bind_text(st, 2, message);
        int r = sqlite3_step(st);
        if (r != SQLITE_DONE)
            rc = wfail(s, r, "cannot claim an execution for its rollback");
        else if (sqlite3_changes(s->w) != 1)
            rc = store_rollback_redriven(id, NULL);
        sqlite3_finalize(st);
        st = NULL;
    }
    /* its holder, in the claim's transaction: crash recovery gives the
     * claim of a holder that died up (a claim row left by a holder that
     * is gone is replaced) */
    if (!rc && !(rc = wprep(s,
                            "INSERT OR REPLACE INTO rollback_claims (exec_id, host, pid, boot_id,"
                            " pid_start, time, was_status, was_message)"
                            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                            id, &st))) {
        bind_text(st, 2, s->host);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)getpid());
        bind_text(st, 4, s->boot_id);
        sqlite3_bind_int64(st, 5, own_start_time(s));
        sqlite3_bind_double(st, 6, now_wall());
        bind_text(st, 7, status_names[*was]);
        bind_text(st, 8, *was_message);
        int r = sqlite3_step(st);
        if (r != SQLITE_DONE)
            rc = wfail(s, r, "cannot claim an execution for its rollback");
        sqlite3_finalize(st);
    }
    if (rc) {
        free(*was_message);
        *was_message = NULL;
    }
    return wend(s, rc);
}

static int lite_rollback_end(store *s, const char *id, int status, const char *message,
                             const store_node *nodes, size_t n)
{
    int rc = wbegin(s);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = wprep(s,
               "UPDATE nodes SET state = ?3, message = ?4 WHERE path = ?2 AND exec_seq ="
               " (SELECT seq FROM executions WHERE id = ?1)",
               id, &st);
    for (size_t i = 0; !rc && i < n; i++) {
        sqlite3_reset(st);
        bind_text(st, 2, nodes[i].path);
        bind_text(st, 3, state_str(nodes[i].state));
        bind_text(st, 4, nodes[i].message);
        int r = sqlite3_step(st);
        if (r != SQLITE_DONE)
            rc = wfail(s, r, "cannot record a rollback");
    }
    sqlite3_finalize(st);
    st = NULL;
    if (!rc && !(rc = wprep(s,
                            "UPDATE executions SET status = ?2, message = ?3 WHERE id = ?1"
                            " AND status = 'ROLLED_BACK'",
                            id, &st))) {
        bind_text(st, 2, status_names[status]);
        bind_text(st, 3, message);
        int r = sqlite3_step(st);
        if (r != SQLITE_DONE)
            rc = wfail(s, r, "cannot record a rollback");
        else if (sqlite3_changes64(s->w) == 0)
            rc = err_set(NDF_ERR_NOT_FOUND,
                         "%s: execution %s is no longer kept as being rolled back (pruned?)",
                         s->path, id);
        sqlite3_finalize(st);
    }
    /* the undo actions' processes ended with them */
    if (!rc)
        rc = wexec(s, "DELETE FROM rollback_claims WHERE exec_id = ?1", id, NULL);
    if (!rc)
        rc = wexec(s, "DELETE FROM step_processes WHERE exec_id = ?1", id, NULL);
    return wend(s, rc);
}

static int lite_remove_pattern(store *s, const char *name)
{
    long long ex = 0, pat = 0;
    int rc = wbegin(s);
    if (rc)
        return rc;
    if (!rc)
        rc = wexec(s,
                   "DELETE FROM outputs WHERE exec_seq IN"
                   " (SELECT seq FROM executions WHERE pattern = ?1)",
                   name, NULL);
    if (!rc)
        rc = wexec(s,
                   "DELETE FROM nodes WHERE exec_seq IN"
                   " (SELECT seq FROM executions WHERE pattern = ?1)",
                   name, NULL);
    if (!rc)
        rc = wexec(s, "DELETE FROM executions WHERE pattern = ?1", name, &ex);
    if (!rc)
        rc = wexec(s, "DELETE FROM pattern_domains WHERE pattern = ?1", name, NULL);
    if (!rc)
        rc = wexec(s, "DELETE FROM patterns WHERE name = ?1", name, &pat);
    if (!rc && !ex && !pat)
        rc = err_set(NDF_ERR_NOT_FOUND, "pattern '%s' has no stored state", name);
    return wend(s, rc);
}

/* Removes one execution by seq, adding it to its pattern's pruned count
 * when it was counted. */
static int delete_exec(store *s, sqlite3_int64 seq, const char *pat, int counted)
{
    static const int del[] = {W_DEL_OUTPUTS, W_DEL_NODES, W_DEL_EXEC};
    sqlite3_stmt *q;
    int rc = NDF_OK;
    for (size_t k = 0; k < ARRAY_SIZE(del) && !rc; k++) {
        if ((rc = wstmt(s, del[k], &q)))
            break;
        sqlite3_bind_int64(q, 1, seq);
        rc = wrun(s, q, "cannot remove an execution");
    }
    if (!rc && counted && !(rc = wstmt(s, W_ADD_PRUNED, &q))) {
        bind_text(q, 1, pat);
        sqlite3_bind_int64(q, 2, 1);
        rc = wrun(s, q, "cannot remove an execution");
    }
    return rc;
}

static int lite_cleanup(store *s, long history_limit, double max_age_s, double now,
                        store_cleanup_result *res)
{
    uint64_t removed = 0;
    long long before = 0, after = 0;
    sqlite3_stmt *st = NULL;
    int rc = wbegin(s);
    if (rc)
        return rc;
    if (max_age_s > 0) {
        rc = wprep(s,
                   "SELECT seq, pattern, counted FROM executions WHERE status <> 'RUNNING'"
                   " AND id NOT IN (SELECT exec_id FROM rollback_claims)"
                   " AND coalesce(end_time, start_time, 0) < ?1",
                   NULL, &st);
        if (!rc) {
            sqlite3_bind_double(st, 1, now - max_age_s);
            /* collect first: deleting under a running SELECT is undefined order */
            sqlite3_int64 *seqs = NULL;
            char **pats = NULL;
            int *counted = NULL;
            size_t n = 0, cap = 0;
            int r;
            while ((r = sqlite3_step(st)) == SQLITE_ROW) {
                if (n == cap) {
                    cap = cap ? cap * 2 : 64;
                    seqs = xrealloc(seqs, cap * sizeof *seqs);
                    pats = xrealloc(pats, cap * sizeof *pats);
                    counted = xrealloc(counted, cap * sizeof *counted);
                }
                seqs[n] = sqlite3_column_int64(st, 0);
                pats[n] = col_dup(st, 1);
                counted[n] = sqlite3_column_int(st, 2);
                n++;
            }
            if (r != SQLITE_DONE)
                rc = wfail(s, r, "cannot list old executions");
            sqlite3_finalize(st);
            st = NULL;
            for (size_t i = 0; i < n && !rc; i++)
                rc = delete_exec(s, seqs[i], pats[i] ? pats[i] : "", counted[i]);
            if (!rc)
                removed += n;
            for (size_t i = 0; i < n; i++)
                free(pats[i]);
            free(seqs);
            free(pats);
            free(counted);
        }
    }
    if (!rc && history_limit > 0) {
        char **pats = NULL;
        size_t n = 0, cap = 0;
        rc = wprep(s, "SELECT DISTINCT pattern FROM executions", NULL, &st);
        int r = SQLITE_DONE;
        while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                pats = xrealloc(pats, cap * sizeof *pats);
            }
            pats[n++] = col_dup(st, 0);
        }
        if (!rc && r != SQLITE_DONE)
            rc = wfail(s, r, "cannot list patterns");
        sqlite3_finalize(st);
        st = NULL;
        for (size_t i = 0; i < n && !rc; i++)
            rc = prune_pattern(s, pats[i] ? pats[i] : "", history_limit, &removed);
        for (size_t i = 0; i < n; i++)
            free(pats[i]);
        free(pats);
    }
    rc = wend(s, rc);
    if (rc)
        return rc;
    /* give the freed pages back: outside the transaction, under the lock */
    pthread_mutex_lock(&s->wlock);
    int r = pragma_int(s->w, "PRAGMA freelist_count", &before);
    if (r == SQLITE_OK)
        r = sqlite3_exec(s->w, "PRAGMA incremental_vacuum", NULL, NULL, NULL);
    if (r == SQLITE_OK)
        r = pragma_int(s->w, "PRAGMA freelist_count", &after);
    if (r != SQLITE_OK)
        rc = wfail(s, r, "cannot reclaim free space");
    else /* shrink the log too; busy readers only make it partial */
        sqlite3_wal_checkpoint_v2(s->w, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    pthread_mutex_unlock(&s->wlock);
    if (res) {
        res->executions = removed;
        res->pages = before > after ? (uint64_t)(before - after) : 0;
    }
    return rc;
}

static int lite_check(store *s)
{
    pthread_mutex_lock(&s->rlock);
    sqlite3_stmt *st = NULL;
    int rc = reader(s);
    if (!rc) {
        int r = sqlite3_prepare_v2(
            s->r,
            "SELECT p.name, p.executions, p.pruned, (SELECT count(*) FROM executions e"
            " WHERE e.pattern = p.name AND e.counted = 1) FROM patterns p"
            " UNION ALL SELECT pattern, 0, 0, count(*) FROM executions WHERE counted = 1"
            " AND pattern NOT IN (SELECT name FROM patterns) GROUP BY pattern",
            -1, &st, NULL);
        if (r != SQLITE_OK)
            rc = rfail(s, r, "cannot check the counts");
    }
    int r = SQLITE_DONE;
    while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW) {
        long long ex = sqlite3_column_int64(st, 1), pruned = sqlite3_column_int64(st, 2),
                  rows = sqlite3_column_int64(st, 3);
        if (ex != pruned + rows)
            rc = err_set(NDF_ERR_VALIDATION,
                         "%s: pattern '%s' counts %lld executions, but %lld are recorded "
                         "(%lld rows, %lld pruned)",
                         s->path, (const char *)sqlite3_column_text(st, 0), ex, pruned + rows, rows,
                         pruned);
    }
    if (!rc && r != SQLITE_DONE)
        rc = rfail(s, r, "cannot check the counts");
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->rlock);
    return rc;
}

/* ------------------------------------------------------------------ */
/* backups */

static int backup_name(const char *n)
{
    size_t l = strlen(n);
    return strncmp(n, "ndf-", 4) == 0 && l > 10 && strcmp(n + l - 6, ".db.gz") == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The backup file names in `bdir`, oldest first (the names sort by time). */
static void list_backups(const char *bdir, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(bdir);
    if (!d)
        return;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!backup_name(de->d_name))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            *names = xrealloc(*names, cap * sizeof **names);
        }
        (*names)[(*n)++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (*n)
        qsort(*names, *n, sizeof **names, cmp_str);
}

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

char *store_newest_backup(const char *dir)
{
    char *bdir = xasprintf("%s/backups", dir);
    char **names;
    size_t n;
    list_backups(bdir, &names, &n);
    char *r = n ? xasprintf("%s/%s", bdir, names[n - 1]) : NULL;
    free_names(names, n);
    free(bdir);
    return r;
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Compresses file `src` into new file `dst` (gzip), synced to disk. */
static int gzip_file(const char *src, const char *dst, int level)
{
    int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0)
        return err_set(NDF_ERR_IO, "cannot read %s: %s", src, strerror(errno));
    int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        close(in);
        return err_set(NDF_ERR_IO, "cannot create %s: %s", dst, strerror(e));
    }
    char mode[8];
    snprintf(mode, sizeof mode, "wb%d", level);
    int gfd = dup(fd);
    gzFile gz = gfd >= 0 ? gzdopen(gfd, mode) : NULL;
    int rc = NDF_OK;
    if (!gz) {
        if (gfd >= 0)
            close(gfd);
        rc = err_set(NDF_ERR_IO, "cannot write %s: out of memory in zlib", dst);
        goto out;
    }
    char buf[65536];
    ssize_t r;
    while ((r = read(in, buf, sizeof buf)) != 0) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = err_set(NDF_ERR_IO, "cannot read %s: %s", src, strerror(errno));
            break;
        }
        if (gzwrite(gz, buf, (unsigned)r) != (int)r) {
            int ze;
            rc = err_set(NDF_ERR_IO, "cannot write %s: %s", dst, gzerror(gz, &ze));
            break;
        }
    }
    /* write errors surface at gzclose() */
    int zc = gzclose(gz);
    if (!rc && zc != Z_OK)
        rc = err_set(NDF_ERR_IO, "cannot write %s: %s", dst,
                     zc == Z_ERRNO ? strerror(errno) : "zlib error");
    if (!rc && fsync(fd) != 0)
        rc = err_set(NDF_ERR_IO, "cannot sync %s: %s", dst, strerror(errno));
out:
    close(in);
    close(fd);
    if (rc)
        unlink(dst);
    return rc;
}

/* Copies all of `from` into `to` with the backup API, waiting (up to
 * `timeout_ms`) while another connection holds a lock. */
static int copy_db(sqlite3 *to, sqlite3 *from, int timeout_ms, int *sqlite_rc)
{
    sqlite3_backup *b = sqlite3_backup_init(to, "main", from, "main");
    if (!b) {
        *sqlite_rc = sqlite3_errcode(to);
        return -1;
    }
    int rc, waited = 0;
    while ((rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY || rc == SQLITE_LOCKED) {
        if (waited >= timeout_ms)
            break;
        sqlite3_sleep(10);
        waited += 10;
    }
    int fr = sqlite3_backup_finish(b);
    if (rc == SQLITE_DONE)
        rc = fr;
    *sqlite_rc = rc;
    return rc == SQLITE_OK || rc == SQLITE_DONE ? 0 : -1;
}

static int lite_backup(store *s, char **path_out)
{
    if (path_out)
        *path_out = NULL;
    char *bdir = xasprintf("%s/backups", s->dir);
    char *tmpdb = NULL, *tmpgz = NULL, *final = NULL;
    sqlite3 *src = NULL, *dst = NULL;
    int rc = fs_mkdir_p(bdir, 0700, "backup directory");
    if (rc)
        goto out;
    char stamp[40];
    utc_stamp(stamp, sizeof stamp, 1);
    tmpdb = xasprintf("%s/.tmp-%ld-%s.db", bdir, (long)getpid(), stamp);
    tmpgz = xasprintf("%s/.tmp-%ld-%s.db.gz", bdir, (long)getpid(), stamp);
    /* a connection of its own: the writer goes on during the copy */
    if ((rc = connect(s->dir, s->path, &s->opts, 0, &src)))
        goto out;
    int r = sqlite3_open_v2(
        tmpdb, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW, NULL);
    if (r != SQLITE_OK) {
        rc = db_fail(s->dir, tmpdb, dst, r, "cannot create the backup");
        goto out;
    }
    int sr;
    if (copy_db(dst, src, s->opts.busy_timeout_ms > 0 ? s->opts.busy_timeout_ms : 5000, &sr)) {
        rc = db_fail(s->dir, s->path, src, sr, "cannot copy the database for a backup");
        goto out;
    }
    sqlite3_close(dst);
    dst = NULL;
    int level = s->opts.compression_level >= 1 && s->opts.compression_level <= 9
                    ? s->opts.compression_level
                    : 6;
    if ((rc = gzip_file(tmpdb, tmpgz, level)))
        goto out;
    for (int i = 0; i < 1000; i++) {
        free(final);
        final = xasprintf("%s/ndf-%s%s%.0d.db.gz", bdir, stamp, i ? "-" : "", i);
        if (link(tmpgz, final) == 0)
            break;
        if (errno != EEXIST) {
            rc = err_set(NDF_ERR_IO, "cannot create %s: %s", final, strerror(errno));
            goto out;
        }
    }
    unlink(tmpgz);
    fsync_dir(bdir);

    /* rotation: keep the newest `backups` */
    char **names;
    size_t n;
    list_backups(bdir, &names, &n);
    for (size_t i = 0; i + (size_t)s->opts.backups < n; i++) {
        char *p = xasprintf("%s/%s", bdir, names[i]);
        if (unlink(p) != 0)
            log_msg(NDF_LOG_WARN, "cannot remove old backup %s: %s", p, strerror(errno));
        free(p);
    }
    free_names(names, n);
    if (path_out) {
        *path_out = final;
        final = NULL;
    }
out:
    sqlite3_close(dst);
    sqlite3_close(src);
    if (tmpdb) {
        unlink(tmpdb);
        char *j = xasprintf("%s-journal", tmpdb);
        unlink(j);
        free(j);
    }
    if (tmpgz)
        unlink(tmpgz);
    free(tmpdb);
    free(tmpgz);
    free(final);
    free(bdir);
    return rc;
}

/* Copies a gzip (or, through zlib's transparent mode, plain) file into a
 * new file `dst`. */
static int gunzip_file(const char *src, const char *dst)
{
    gzFile gz = gzopen(src, "rb");
    if (!gz)
        return err_set(errno == ENOENT ? NDF_ERR_NOT_FOUND : NDF_ERR_IO, "cannot read %s: %s", src,
                       strerror(errno));
    int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        gzclose(gz);
        return err_set(NDF_ERR_IO, "cannot create %s: %s", dst, strerror(e));
    }
    int rc = NDF_OK;
    char buf[65536];
    int r;
    while ((r = gzread(gz, buf, sizeof buf)) > 0) {
        const char *p = buf;
        size_t left = (size_t)r;
        while (left) {
            ssize_t w = write(fd, p, left);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                rc = err_set(NDF_ERR_IO, "cannot write %s: %s", dst, strerror(errno));
                goto out;
            }
            p += w;
            left -= (size_t)w;
        }
    }
    if (r < 0) {
        int ze;
        rc = err_set(NDF_ERR_IO, "cannot read %s: %s", src, gzerror(gz, &ze));
    } else if (fsync(fd) != 0) {
        rc = err_set(NDF_ERR_IO, "cannot sync %s: %s", dst, strerror(errno));
    }
out:
    gzclose(gz);
    close(fd);
    if (rc)
        unlink(dst);
    return rc;
}

/* Checks a database file offered as a backup. */
static int check_backup(const char *dir, const char *file, const char *copy)
{
    sqlite3 *db = NULL;
    (void)dir; /* its hints name the store's backups: not for this file */
    int r = sqlite3_open_v2(copy, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL);
    long long v = 0;
    int rc = NDF_OK;
    if (r != SQLITE_OK) {
        rc = db_fail(NULL, file, db, r, "cannot open the backup");
        goto out;
    }
    if ((rc = check_identity(NULL, file, db, &v)))
        goto out;
    sqlite3_stmt *st;
    r = sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL);
    if (r == SQLITE_OK) {
        r = sqlite3_step(st);
        const char *res = r == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
        if (r == SQLITE_ROW && (!res || strcmp(res, "ok") != 0))
            rc = err_set(NDF_ERR_IO, "%s is not a good backup: %s", file, res ? res : "?");
        else if (r != SQLITE_ROW)
            rc = err_set(NDF_ERR_IO, "%s is not a good backup: %s", file, sqlite3_errmsg(db));
        sqlite3_finalize(st);
    } else {
        rc = err_set(NDF_ERR_IO, "%s is not a good backup: %s", file, sqlite3_errmsg(db));
    }
    if (!rc && v == 0)
        rc = err_set(NDF_ERR_IO, "%s is an empty database, not an ndf backup", file);
out:
    sqlite3_close(db);
    return rc;
}

/* Moves the database and its WAL files aside as <name>.corrupt-<time>. */
static int move_aside(const char *path)
{
    char stamp[40];
    utc_stamp(stamp, sizeof stamp, 0);
    static const char *const suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < ARRAY_SIZE(suffix); i++) {
        char *from = xasprintf("%s%s", path, suffix[i]);
        char *to = xasprintf("%s.corrupt-%s%s", path, stamp, suffix[i]);
        int r = rename(from, to);
        int e = errno;
        if (r == 0 && i == 0)
            log_msg(NDF_LOG_WARN, "%s: kept aside as %s", from, to);
        free(from);
        free(to);
        if (r != 0 && e != ENOENT)
            return err_set(NDF_ERR_IO, "cannot move %s%s aside: %s", path, suffix[i], strerror(e));
    }
    return NDF_OK;
}

int store_restore(const char *dir, const store_opts *opts, const char *file)
{
    store_opts o;
    if (opts)
        o = *opts;
    else
        store_opts_default(&o);
    o.import_legacy = 0;
    if (o.backend != STORE_BACKEND_SQLITE)
        return err_set(NDF_ERR_INVALID,
                       "restore replaces an SQLite store's file; a %s store is restored with "
                       "its database's own tools (pg_restore, psql)",
                       store_backend_name(o.backend));
    char *raw = dir && *dir ? xstrdup(dir) : store_default_dir();
    if (!raw)
        return NDF_ERR_INVALID;
    char *d = absolute_dir(raw);
    free(raw);
    if (!d)
        return NDF_ERR_IO;
    char *path = xasprintf("%s/%s", d, STORE_DB_NAME);
    char stamp[40];
    utc_stamp(stamp, sizeof stamp, 1);
    char *tmp = xasprintf("%s/.restore-%ld-%s.db", d, (long)getpid(), stamp);
    sqlite3 *live = NULL, *src = NULL;
    int rc = prepare_dir(d);
    if (!rc)
        rc = check_regular(file);
    if (!rc)
        rc = gunzip_file(file, tmp);
    if (rc)
        goto out;
    if ((rc = check_backup(d, file, tmp)))
        goto out;
    if ((rc = check_db_files(path)))
        goto out;

    struct stat st;
    int corrupt = 0;
    if (stat(path, &st) == 0 && st.st_size > 0) {
        /* through the live database, so its users see the new contents */
        int r = sqlite3_open_v2(path, &live, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL);
        if (r == SQLITE_OK)
            r = sqlite3_open_v2(tmp, &src, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL);
        if (r == SQLITE_OK) {
            sqlite3_busy_timeout(live, o.busy_timeout_ms > 0 ? o.busy_timeout_ms : 5000);
            r = sqlite3_exec(live, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
        }
        if (r == SQLITE_OK &&
            copy_db(live, src, o.busy_timeout_ms > 0 ? o.busy_timeout_ms : 5000, &r) == 0)
            r = SQLITE_OK;
        if (r != SQLITE_OK && is_corrupt(r)) {
            corrupt = 1;
        } else if (r != SQLITE_OK) {
            rc = db_fail(d, path, live, r, "cannot restore into the database");
            goto out;
        }
        sqlite3_close(src);
        src = NULL;
        sqlite3_close(live);
        live = NULL;
    } else {
        corrupt = 1; /* nothing (or an empty file) to keep: put the copy in place */
    }
    if (corrupt) {
        if (stat(path, &st) == 0 && st.st_size > 0 && (rc = move_aside(path)))
            goto out;
        if (rename(tmp, path) != 0) {
            rc = err_set(NDF_ERR_IO, "cannot put the backup in place as %s: %s", path,
                         strerror(errno));
            goto out;
        }
        fsync_dir(d);
    }
    /* migrate forward and recover, as any open would */
    store *s;
    if ((rc = store_open(d, &o, &s)) == NDF_OK)
        store_close(s);
out:
    sqlite3_close(src);
    sqlite3_close(live);
    unlink(tmp);
    free(tmp);
    free(path);
    free(d);
    return rc;
}

/* ------------------------------------------------------------------ */
/* exports */

int store_format_parse(const char *name, store_format *out)
{
    if (!name)
        return -1;
    if (strcmp(name, "json") == 0)
        *out = STORE_FORMAT_JSON;
    else if (strcmp(name, "csv") == 0)
        *out = STORE_FORMAT_CSV;
    else if (strcmp(name, "yaml") == 0)
        *out = STORE_FORMAT_YAML;
    else
        return -1;
    return 0;
}

static cJSON *jadd(cJSON *obj, const char *key, cJSON *item)
{
    if (!item ||
        (key ? !cJSON_AddItemToObject(obj, key, item) : !cJSON_AddItemToArray(obj, item))) {
        /* cJSON fails here only on allocation: out of memory is fatal in the host */
        cJSON_Delete(item);
        fprintf(stderr, "ndf: out of memory\n");
        abort();
    }
    return item;
}

static void jnum(cJSON *o, const char *k, double v)
{
    jadd(o, k, cJSON_CreateNumber(isfinite(v) ? v : 0));
}

static void jstr(cJSON *o, const char *k, const char *v)
{
    jadd(o, k, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}

/* JSON text stored by ndf (context, plugins) as a value; text that does not
 * parse stays a string. */
static void jraw(cJSON *o, const char *k, const char *text)
{
    cJSON *v = text ? cJSON_Parse(text) : NULL;
    if (v)
        jadd(o, k, v);
    else
        jstr(o, k, text);
}

static cJSON *learning_json(const learning_state *l)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        abort();
    jnum(o, "executions", (double)l->executions);
    jnum(o, "successes", (double)l->successes);
    jnum(o, "score", l->score);
    jnum(o, "alpha", l->alpha);
    jnum(o, "beta", l->beta);
    jadd(o, "converged", cJSON_CreateBool(l->converged));
    jnum(o, "last_used", l->last_used);
    jnum(o, "created", l->created);
    jnum(o, "duration_total", l->duration_total);
    jnum(o, "timed", (double)l->timed);
    cJSON *d = jadd(o, "domains", cJSON_CreateArray());
    for (size_t i = 0; i < l->ndomains; i++) {
        cJSON *e = jadd(d, NULL, cJSON_CreateObject());
        jstr(e, "domain", l->domains[i].domain);
        jnum(e, "executions", (double)l->domains[i].executions);
        jnum(e, "successes", (double)l->domains[i].successes);
    }
    return o;
}

static cJSON *exec_json(const store_exec *e)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        abort();
    jstr(o, "id", e->id);
    jstr(o, "parent_id", e->parent_id);
    jstr(o, "redrive_of", e->redrive_of);
    jstr(o, "origin", store_origin_name(e->origin));
    jstr(o, "status", store_status_name(e->status));
    jnum(o, "start", e->start);
    jnum(o, "end", e->end);
    jnum(o, "duration", e->duration);
    jstr(o, "domain", e->domain);
    jraw(o, "context", e->context);
    jstr(o, "host", e->host);
    jnum(o, "pid", (double)e->pid);
    jstr(o, "message", e->message);
    jraw(o, "plugins", e->plugins);
    jnum(o, "timeout", e->timeout);
    jnum(o, "cpu_time", e->cpu);
    jnum(o, "peak_rss_kb", (double)e->peak_rss_kb);
    jnum(o, "confidence", e->confidence);
    jstr(o, "fallback_from", e->fallback_from);
    jstr(o, "fallback_cause", e->fallback_cause);
    jadd(o, "counted", cJSON_CreateBool(e->counted));
    cJSON *nodes = jadd(o, "nodes", cJSON_CreateArray());
    for (size_t i = 0; i < e->nnodes; i++) {
        const store_node *n = &e->nodes[i];
        cJSON *x = jadd(nodes, NULL, cJSON_CreateObject());
        jstr(x, "path", n->path);
        jstr(x, "kind", kind_str(n->kind));
        jstr(x, "state", state_str(n->state));
        jnum(x, "start", n->start);
        jnum(x, "end", n->end);
        jnum(x, "attempt", n->attempt);
        if (n->exit_status >= 0)
            jnum(x, "exit_status", n->exit_status);
        else
            jstr(x, "exit_status", NULL);
        jstr(x, "message", n->message);
        jnum(x, "timeout", n->timeout);
        if (n->result) {
            jstr(x, "result", n->result);
            if (n->result_len > strlen(n->result))
                jnum(x, "result_length", (double)n->result_len);
        }
        /* kept as the object it was written as; anything else is left out */
        cJSON *m = n->metrics ? cJSON_Parse(n->metrics) : NULL;
        if (cJSON_IsObject(m))
            jadd(x, "metrics", m);
        else
            cJSON_Delete(m);
    }
    return o;
}

/* The export document of `name`: {format, schema, name, learning,
 * executions: [...]}, executions oldest first. */
static int export_doc(store *s, const char *name, cJSON **out)
{
    learning_state l;
    int rc = store_learning(s, name, &l);
    int have_learning = rc == NDF_OK;
    if (rc && rc != NDF_ERR_NOT_FOUND)
        return rc;
    cJSON *root = cJSON_CreateObject();
    if (!root)
        abort();
    jstr(root, "format", "ndf-export");
    jnum(root, "schema", STORE_SCHEMA_VERSION);
    jstr(root, "name", name);
    if (have_learning) {
        jadd(root, "learning", learning_json(&l));
        learning_free(&l);
    } else {
        jstr(root, "learning", NULL);
    }
    cJSON *ex = jadd(root, "executions", cJSON_CreateArray());
    /* through the store's interface, so that every backend exports alike */
    store_exec *v = NULL;
    size_t count = 0;
    store_query q = {name, -1, 0, SIZE_MAX, 0, NULL};
    rc = store_runs(s, &q, &v, &count);
    for (size_t i = count; !rc && i-- > 0;) {
        store_exec e;
        rc = store_get(s, v[i].id, &e);
        if (!rc)
            jadd(ex, NULL, exec_json(&e));
        store_exec_free(&e);
    }
    store_exec_array_free(v, count);
    if (!rc && !have_learning && !count)
        rc = err_set(NDF_ERR_NOT_FOUND, "pattern '%s' has no stored state", name);
    if (rc) {
        cJSON_Delete(root);
        return rc;
    }
    *out = root;
    return NDF_OK;
}

/* Shortest "%g" form that reads back as the same double. */
static void fmt_num(char *buf, size_t n, double v)
{
    if (!isfinite(v))
        v = 0;
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, n, "%.0f", v);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static void iso_time(char *buf, size_t n, double t)
{
    struct tm tm;
    buf[0] = '\0';
    if (!(t > 0 && t < 253402300800.0))
        return;
    time_t tt = (time_t)t;
    if (!gmtime_r(&tt, &tm) || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        buf[0] = '\0';
}

static void csv_field(strbuf *sb, const char *s)
{
    if (!s)
        return;
    if (!strpbrk(s, ",\"\r\n") && s[0] != ' ' && (s[0] == 0 || s[strlen(s) - 1] != ' ')) {
        sb_puts(sb, s);
        return;
    }
    sb_add(sb, "\"", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            sb_add(sb, "\"\"", 2);
        else
            sb_add(sb, p, 1);
    }
    sb_add(sb, "\"", 1);
}

static const char *jget_str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jget_num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* The CSV columns, documented in ndf(1). */
static const char csv_header[] = "pattern,id,start,start_utc,duration_ms,status,success,origin,"
                                 "domain,host,pid,parent_id,redrive_of,context,nodes,message";

static void export_csv(const cJSON *doc, strbuf *sb)
{
    const char *name = jget_str(doc, "name");
    sb_puts(sb, csv_header);
    sb_puts(sb, "\r\n");
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(doc, "executions"))
    {
        char num[40], t[40];
        const char *status = jget_str(e, "status");
        csv_field(sb, name);
        sb_puts(sb, ",");
        csv_field(sb, jget_str(e, "id"));
        sb_puts(sb, ",");
        fmt_num(num, sizeof num, jget_num(e, "start"));
        sb_puts(sb, num);
        sb_puts(sb, ",");
        iso_time(t, sizeof t, jget_num(e, "start"));
        sb_puts(sb, t);
        sb_puts(sb, ",");
        fmt_num(num, sizeof num, jget_num(e, "duration") * 1000.0);
        sb_puts(sb, num);
        sb_puts(sb, ",");
        csv_field(sb, status);
        sb_puts(sb, status && strcmp(status, "SUCCEEDED") == 0 ? ",true," : ",false,");
        csv_field(sb, jget_str(e, "origin"));
        sb_puts(sb, ",");
        csv_field(sb, jget_str(e, "domain"));
        sb_puts(sb, ",");
        csv_field(sb, jget_str(e, "host"));
        sb_puts(sb, ",");
        fmt_num(num, sizeof num, jget_num(e, "pid"));
        sb_puts(sb, num);
        sb_puts(sb, ",");
        csv_field(sb, jget_str(e, "parent_id"));
        sb_puts(sb, ",");
        csv_field(sb, jget_str(e, "redrive_of"));
        sb_puts(sb, ",");
        const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(e, "context");
        if (ctx && !cJSON_IsNull(ctx)) {
            char *c = cJSON_PrintUnformatted(ctx);
            csv_field(sb, c);
            cJSON_free(c);
        }
        sb_puts(sb, ",");
        /* nodes below the root as path=STATE:milliseconds, ';'-separated */
        strbuf ns;
        sb_init(&ns);
        const cJSON *n;
        cJSON_ArrayForEach(n, cJSON_GetObjectItemCaseSensitive(e, "nodes"))
        {
            const char *p = jget_str(n, "path");
            if (!p || !*p)
                continue;
            double st = jget_num(n, "start"), en = jget_num(n, "end");
            /* microseconds: wall-clock stamps near 2^31 s carry no more */
            fmt_num(num, sizeof num, st > 0 && en >= st ? round((en - st) * 1e6) / 1000.0 : 0);
            sb_printf(&ns, "%s%s=%s:%s", ns.len ? ";" : "", p, jget_str(n, "state"), num);
        }
        char *nodes = sb_steal(&ns);
        csv_field(sb, nodes);
        free(nodes);
        sb_puts(sb, ",");
        csv_field(sb, jget_str(e, "message"));
        sb_puts(sb, "\r\n");
    }
}

static int yaml_write(void *data, unsigned char *buffer, size_t size)
{
    sb_add(data, (const char *)buffer, size);
    return 1;
}

typedef struct yemit {
    yaml_emitter_t em;
    int failed;
} yemit;

static void y_event(yemit *y, yaml_event_t *ev, int ok)
{
    if (y->failed)
        return;
    if (!ok || !yaml_emitter_emit(&y->em, ev))
        y->failed = 1;
}

static void y_scalar(yemit *y, const char *s, int plain)
{
    yaml_event_t ev;
    /* libyaml refuses invalid UTF-8, which a step's message may hold */
    char *fixed = NULL;
    if (!utf8_valid(s, strlen(s)))
        s = fixed = utf8_repair(s);
    /* strings double-quoted, so that "yes", "1.0" or "null" stay strings */
    int ok = yaml_scalar_event_initialize(
        &ev, NULL, NULL, (yaml_char_t *)(uintptr_t)s, (int)strlen(s), plain, !plain,
        plain ? YAML_PLAIN_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
    free(fixed);
    y_event(y, &ev, ok);
}

/* Emits a cJSON value as YAML: objects as mappings, arrays as sequences. */
static void y_value(yemit *y, const cJSON *v)
{
    yaml_event_t ev;
    if (cJSON_IsObject(v)) {
        y_event(y, &ev,
                yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE));
        const cJSON *k;
        cJSON_ArrayForEach(k, v)
        {
            y_scalar(y, k->string, 1);
            y_value(y, k);
        }
        y_event(y, &ev, yaml_mapping_end_event_initialize(&ev));
    } else if (cJSON_IsArray(v)) {
        y_event(
            y, &ev,
            yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE));
        const cJSON *k;
        cJSON_ArrayForEach(k, v) y_value(y, k);
        y_event(y, &ev, yaml_sequence_end_event_initialize(&ev));
    } else if (cJSON_IsString(v)) {
        y_scalar(y, v->valuestring, 0);
    } else if (cJSON_IsNumber(v)) {
        char b[40];
        fmt_num(b, sizeof b, v->valuedouble);
        y_scalar(y, b, 1);
    } else if (cJSON_IsBool(v)) {
        y_scalar(y, cJSON_IsTrue(v) ? "true" : "false", 1);
    } else {
        y_scalar(y, "null", 1);
    }
}

static int export_yaml(const cJSON *doc, strbuf *sb)
{
    yemit y = {0};
    yaml_event_t ev;
    if (!yaml_emitter_initialize(&y.em))
        return err_set(NDF_ERR_IO, "libyaml: cannot initialize the emitter");
    yaml_emitter_set_output(&y.em, yaml_write, sb);
    yaml_emitter_set_unicode(&y.em, 1);
    yaml_emitter_set_width(&y.em, -1);
    y_event(&y, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
    y_event(&y, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 0));
    y_value(&y, doc);
    y_event(&y, &ev, yaml_document_end_event_initialize(&ev, 1));
    y_event(&y, &ev, yaml_stream_end_event_initialize(&ev));
    int failed = y.failed;
    if (failed)
        err_set(NDF_ERR_IO, "libyaml emitter: %s", y.em.problem ? y.em.problem : "failed");
    yaml_emitter_delete(&y.em);
    return failed ? NDF_ERR_IO : NDF_OK;
}

int store_export(store *s, const char *name, store_format fmt, strbuf *sb)
{
    cJSON *doc;
    int rc = export_doc(s, name, &doc);
    if (rc)
        return rc;
    switch (fmt) {
    case STORE_FORMAT_JSON: {
        char *t = cJSON_Print(doc);
        if (!t)
            abort();
        sb_puts(sb, t);
        sb_puts(sb, "\n");
        cJSON_free(t);
        break;
    }
    case STORE_FORMAT_CSV: export_csv(doc, sb); break;
    case STORE_FORMAT_YAML: rc = export_yaml(doc, sb); break;
    default: rc = err_set(NDF_ERR_INVALID, "unknown export format %d", (int)fmt); break;
    }
    cJSON_Delete(doc);
    return rc;
}

/* ------------------------------------------------------------------ */
/* import of the old per-pattern files */

static store_status status_of_outcome(const char *o, int success)
{
    if (o) {
        if (strcmp(o, "succeeded") == 0)
            return STORE_SUCCEEDED;
        if (strcmp(o, "timeout") == 0)
            return STORE_TIMED_OUT;
        if (strcmp(o, "cancelled") == 0)
            return STORE_CANCELLED;
        if (strcmp(o, "refused") == 0)
            return STORE_REFUSED;
        if (strcmp(o, "failed") == 0)
            return STORE_FAILED;
    }
    return success ? STORE_SUCCEEDED : STORE_FAILED;
}

static int state_of_outcome(const char *o)
{
    static const struct {
        const char *name;
        int state;
    } map[] = {{"succeeded", NDF_STATE_COMPLETED},     {"failed", NDF_STATE_FAILED},
               {"timeout", NDF_STATE_TIMED_OUT},       {"skipped", NDF_STATE_SKIPPED},
               {"rolled_back", NDF_STATE_ROLLED_BACK}, {"cancelled", NDF_STATE_CANCELLED},
               {"degraded", NDF_STATE_DEGRADED},       {"pending", NDF_STATE_PENDING},
               {"running", NDF_STATE_RUNNING}};
    for (size_t i = 0; o && i < ARRAY_SIZE(map); i++)
        if (strcmp(o, map[i].name) == 0)
            return map[i].state;
    return NDF_STATE_FAILED;
}

/* One legacy pattern: its learning row and history as executions; the
 * newest min(executions, history) rows are counted, the rest of the
 * executions were pruned by the old history_limit. */
static int import_one(store *s, const stored_pattern *sp)
{
    int rc = save_learning(s, sp->name, &sp->learn);
    if (rc)
        return rc;
    size_t counted_n =
        sp->learn.executions < sp->nhistory ? (size_t)sp->learn.executions : sp->nhistory;
    for (size_t i = 0; i < sp->nhistory && !rc; i++) {
        const history_entry *h = &sp->history[i];
        char *id = xasprintf("legacy-%s-%zu", sp->name, i + 1);
        char none[1] = "";
        store_exec e = {0};
        e.id = id;
        e.pattern = sp->name;
        e.origin = STORE_ORIGIN_EXTERNAL;
        e.status = status_of_outcome(h->outcome, h->success);
        e.domain = h->domain;
        e.host = none;
        e.pid = -1;
        e.boot_id = none;
        e.start = h->time;
        e.end = h->time + h->duration_s;
        e.duration = h->duration_s;
        e.message = h->error;
        e.timeout = h->timeout_s;
        e.cpu = h->cpu_s;
        e.peak_rss_kb = h->peak_rss_kb;
        sqlite3_int64 seq;
        int counted = i >= sp->nhistory - counted_n;
        rc = insert_exec(s, &e, e.status, counted, &seq);
        sqlite3_stmt *cq;
        if (!rc && !(rc = wstmt(s, W_SET_CONFIDENCE, &cq))) {
            sqlite3_bind_int64(cq, 1, seq);
            sqlite3_bind_double(cq, 2, h->confidence);
            rc = wrun(s, cq, "cannot import a pattern");
        }
        store_node root = {0};
        root.path = none;
        root.kind = NDF_NODE_PATTERN;
        root.state = e.status == STORE_SUCCEEDED   ? NDF_STATE_COMPLETED
                     : e.status == STORE_TIMED_OUT ? NDF_STATE_TIMED_OUT
                     : e.status == STORE_CANCELLED ? NDF_STATE_CANCELLED
                                                   : NDF_STATE_FAILED;
        root.start = e.start;
        root.end = e.end;
        root.exit_status = -1;
        root.message = h->error;
        if (!rc)
            rc = write_node(s, seq, &root);
        for (size_t k = 0; k < h->nsteps && !rc; k++) {
            /* a repeated name gets "#n" so that paths stay unique */
            int dup = 0;
            for (size_t j = 0; j < k; j++)
                dup += h->steps[j].name && h->steps[k].name &&
                       strcmp(h->steps[j].name, h->steps[k].name) == 0;
            char *path = dup ? xasprintf("%s#%d", h->steps[k].name ? h->steps[k].name : "", dup + 1)
                             : xstrdup(h->steps[k].name ? h->steps[k].name : "?");
            store_node n = {0};
            n.path = path;
            n.seq = (int)k + 1;
            n.kind = NDF_NODE_STEP;
            n.state = state_of_outcome(h->steps[k].outcome);
            n.exit_status = -1;
            /* the old format kept durations only: the steps start with it */
            n.start = e.start;
            n.end = e.start + h->steps[k].duration_s;
            n.timeout = h->steps[k].timeout_s;
            rc = write_node(s, seq, &n);
            free(path);
        }
        free(id);
    }
    if (!rc && sp->learn.executions > counted_n) {
        sqlite3_stmt *q;
        if (!(rc = wstmt(s, W_ADD_PRUNED, &q))) {
            bind_text(q, 1, sp->name);
            sqlite3_bind_int64(q, 2, (sqlite3_int64)(sp->learn.executions - counted_n));
            rc = wrun(s, q, "cannot import a pattern");
        }
    }
    return rc;
}

/* Moves the old format's files of `dir` into a new directory beside them. */
static int move_legacy(const char *dir, char **where)
{
    char stamp[40];
    utc_stamp(stamp, sizeof stamp, 0);
    char *to = xasprintf("%s/legacy-%s", dir, stamp);
    *where = to;
    if (mkdir(to, 0700) != 0 && errno != EEXIST)
        return err_set(NDF_ERR_IO, "cannot create %s: %s", to, strerror(errno));
    DIR *d = opendir(dir);
    if (!d)
        return err_set(NDF_ERR_IO, "cannot read %s: %s", dir, strerror(errno));
    int rc = NDF_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        int old_tmp = n[0] == '.' && strstr(n, ".json") && strstr(n, ".tmp-");
        if (!legacy_name(n) && strcmp(n, ".lock") != 0 && !old_tmp)
            continue;
        char *a = xasprintf("%s/%s", dir, n), *b = xasprintf("%s/%s", to, n);
        if (rename(a, b) != 0 && !rc)
            rc = err_set(NDF_ERR_IO, "cannot move %s into %s: %s", a, to, strerror(errno));
        free(a);
        free(b);
    }
    closedir(d);
    fsync_dir(dir);
    return rc;
}

static int lite_import_legacy(store *s, const char *dir, size_t *imported)
{
    if (imported)
        *imported = 0;
    storage_opts o = {1, 1};
    storage *old;
    int rc = storage_open(dir, &o, &old);
    if (rc)
        return err_prefix(rc, "cannot import the old storage in %s", dir);
    char **names = NULL;
    size_t n = 0, count = 0;
    if ((rc = storage_list(old, &names, &n))) {
        storage_close(old);
        return err_prefix(rc, "cannot import the old storage in %s", dir);
    }
    stored_pattern *sps = xcalloc(n ? n : 1, sizeof *sps);
    char *ok = xcalloc(n ? n : 1, 1);
    for (size_t i = 0; i < n; i++) {
        if (storage_load_pattern(old, names[i], &sps[i]) == NDF_OK)
            ok[i] = 1;
        else
            log_msg(NDF_LOG_WARN, "%s: pattern '%s' not imported: %s", dir, names[i], err_msg());
    }
    storage_close(old);

    if (!(rc = wbegin(s))) {
        for (size_t i = 0; i < n && !rc; i++) {
            if (!ok[i])
                continue;
            learning_state st;
            int found;
            rc = load_learning(s, names[i], NULL, &st, &found);
            learning_free(&st);
            if (!rc && !found) {
                rc = import_one(s, &sps[i]);
                count++;
            }
        }
        rc = wend(s, rc);
    }
    for (size_t i = 0; i < n; i++) {
        stored_pattern_free(&sps[i]);
        free(names[i]);
    }
    free(sps);
    free(ok);
    free(names);
    if (rc)
        return err_prefix(rc, "cannot import the old storage in %s", dir);
    char *where = NULL;
    rc = move_legacy(dir, &where);
    if (!rc)
        log_msg(NDF_LOG_INFO,
                "imported %zu patterns from the old storage in %s into %s; "
                "the old files are in %s",
                count, dir, s->path, where);
    free(where);
    if (!rc && imported)
        *imported = count;
    return rc;
}

/* ------------------------------------------------------------------ */
/* run-time definitions */

static int lite_defs(store *s, store_def **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&s->rlock);
    sqlite3_stmt *st = NULL;
    int rc = reader(s);
    if (!rc) {
        int r = sqlite3_prepare_v2(s->r,
                                   "SELECT kind, name, text, time, uid FROM runtime_defs"
                                   " ORDER BY kind, time, name",
                                   -1, &st, NULL);
        if (r != SQLITE_OK)
            rc = rfail(s, r, "cannot read the run-time definitions");
    }
    size_t cap = 0;
    int r = SQLITE_DONE;
    while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            *out = xrealloc(*out, cap * sizeof **out);
        }
        store_def *d = &(*out)[(*n)++];
        d->kind = col_dup(st, 0);
        d->name = col_dup(st, 1);
        d->text = col_dup(st, 2);
        d->time = sqlite3_column_double(st, 3);
        d->uid = (long)sqlite3_column_int64(st, 4);
    }
    if (!rc && r != SQLITE_DONE)
        rc = rfail(s, r, "cannot read the run-time definitions");
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->rlock);
    if (rc) {
        store_defs_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

static int lite_def_put(store *s, const store_def *d, int remove)
{
    int rc = wbegin(s);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    const char *sql = remove ? "DELETE FROM runtime_defs WHERE kind = ?1 AND name = ?2"
                             : "INSERT INTO runtime_defs (kind, name, text, time, uid)"
                               " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (kind, name) DO UPDATE"
                               " SET text = excluded.text, time = excluded.time,"
                               " uid = excluded.uid";
    rc = wprep(s, sql, d->kind, &st);
    if (!rc) {
        bind_text(st, 2, d->name);
        if (!remove) {
            bind_text(st, 3, d->text);
            sqlite3_bind_double(st, 4, d->time);
            sqlite3_bind_int64(st, 5, d->uid);
        }
        int r = sqlite3_step(st);
        if (r != SQLITE_DONE)
            rc = wfail(s, r, "cannot write a run-time definition");
        else if (remove && sqlite3_changes(s->w) == 0)
            rc = err_set(NDF_ERR_NOT_FOUND, "no run-time definition of %s '%s'", d->kind,
                         d->name);
        sqlite3_finalize(st);
    }
    if (!rc && !(rc = wprep(s, "UPDATE runtime_defs_version SET n = n + 1 WHERE id = 0", NULL,
                            &st))) {
        int r = sqlite3_step(st);
        if (r != SQLITE_DONE)
            rc = wfail(s, r, "cannot count a run-time definition's change");
        sqlite3_finalize(st);
    }
    return wend(s, rc);
}

static int lite_defs_version(store *s, uint64_t *out)
{
    *out = 0;
    pthread_mutex_lock(&s->rlock);
    sqlite3_stmt *st = NULL;
    int rc = reader(s);
    if (!rc) {
        int r = sqlite3_prepare_v2(s->r, "SELECT n FROM runtime_defs_version WHERE id = 0", -1,
                                   &st, NULL);
        if (r != SQLITE_OK || ((r = sqlite3_step(st)) != SQLITE_ROW && r != SQLITE_DONE))
            rc = rfail(s, r, "cannot read the run-time definitions' change count");
        else if (r == SQLITE_ROW)
            *out = (uint64_t)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->rlock);
    return rc;
}

static const store_ops lite_ops = {
    .backend = STORE_BACKEND_SQLITE,
    .close = lite_close,
    .path = lite_path,
    .dir = lite_dir,
    .begin = lite_begin,
    .progress = lite_progress,
    .finish_all = lite_finish_all,
    .get_stats = lite_get_stats,
    .runs = lite_runs,
    .get = lite_get,
    .children = lite_children,
    .output_each = lite_output_each,
    .learning = lite_learning,
    .patterns = lite_patterns,
    .reset_stats = lite_reset_stats,
    .rollback_claim = lite_rollback_claim,
    .rollback_end = lite_rollback_end,
    .remove_pattern = lite_remove_pattern,
    .cleanup = lite_cleanup,
    .backup = lite_backup,
    .import_legacy = lite_import_legacy,
    .recover = lite_recover,
    .check = lite_check,
    .process = lite_process,
    .learning_all = lite_learning_all,
    .backup_every = lite_backup_every,
    .defs = lite_defs,
    .def_put = lite_def_put,
    .defs_version = lite_defs_version,
    .finish_async = lite_finish_async,
    .flush = lite_flush,
    .begin_async = lite_begin_async,
};

/* Check suite for the store (host/store/store.c and its backends): schema
 * and migrations, exact counts with several processes recording at once,
 * group commit that answers only after the commit, crash recovery, storage
 * faults, bounded compressed outputs, retention, backup and restore,
 * exports read back by real parsers, and the import of files written by
 * the old storage.c.
 *
 * With NDF_TEST_PG_CONNINFO set (tests/shell/store_pg.sh starts a server
 * and sets it), the conformance cases run against the PostgreSQL backend
 * instead, each in a database of its own, plus PostgreSQL's own cases;
 * the cases about SQLite's file run on SQLite only. */
#include "build-config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cJSON.h>
#include <sqlite3.h>
#ifdef HAVE_LIBPQ
#include <libpq-fe.h>
/* the test calls libpq itself; only the loader's entry points are wanted */
#define PQLOAD_NO_MACROS
#include "store/pqload.h"
#endif
#include <yaml.h>
#include <ndf/sdk.h>

#include "base/learning.h"
#include "base/util.h"
#include "base/ztail.h"
#include "store/storage.h"
#include "store/store.h"
#include "store/defs.h"
#include "store/store_backend.h"

static char scratch[512];
static char dir[600];
static char dbpath[700];
/* PostgreSQL: the server (NDF_TEST_PG_CONNINFO), NULL for SQLite; this
 * test's own database and the connection string that names it. */
static const char *pg_base;
#ifdef HAVE_LIBPQ
static char pg_db[64];
#endif
static char pg_conninfo[1024];

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        chmod(path, 0700);
        DIR *d = opendir(path);
        if (d) {
            struct dirent *de;
            while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                    continue;
                char *p = xasprintf("%s/%s", path, de->d_name);
                rm_rf(p);
                free(p);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

#ifdef HAVE_LIBPQ
/* Runs `sql` on database `db` of the test server; NULL when `want_row`
 * and there is no row, else the first value (caller frees). */
static char *pg_run(const char *db, const char *sql, int want_row)
{
    char ci[1200];
    snprintf(ci, sizeof ci, "%s dbname=%s", pg_base, db);
    PGconn *c = PQconnectdb(ci);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s: %s", ci, PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql,
                  PQresultErrorMessage(r));
    char *v = NULL;
    if (want_row && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = xstrdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return v;
}
#endif

static void pg_setup(void)
{
    pg_base = getenv("NDF_TEST_PG_CONNINFO");
    if (pg_base && !*pg_base)
        pg_base = NULL;
#ifdef HAVE_LIBPQ
    if (!pg_base)
        return;
    static int serial;
    snprintf(pg_db, sizeof pg_db, "ck_%ld_%d", (long)getpid(), serial++);
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", pg_db);
    free(pg_run("postgres", sql, 0));
    snprintf(pg_conninfo, sizeof pg_conninfo, "%s dbname=%s", pg_base, pg_db);
    snprintf(dbpath, sizeof dbpath, "%s", pg_db);
#else
    ck_assert_msg(!pg_base, "NDF_TEST_PG_CONNINFO is set, but this build has no libpq");
#endif
}

static void pg_teardown(void)
{
#ifdef HAVE_LIBPQ
    if (!pg_base)
        return;
    char sql[128];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", pg_db);
    free(pg_run("postgres", sql, 0));
#endif
}

static void setup(void)
{
    const char *base = getenv("top_builddir");
    snprintf(scratch, sizeof scratch, "%s/check_store.XXXXXX", base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(scratch));
    snprintf(dir, sizeof dir, "%s/state/ndf", scratch);
    snprintf(dbpath, sizeof dbpath, "%s/%s", dir, STORE_DB_NAME);
    log_set_level(-1); /* recovery and import log; the tests read err_msg() */
    pg_setup();
}

static void teardown(void)
{
    pg_teardown();
    rm_rf(scratch);
}

/* Points `o` at the backend under test. */
static void use_backend(store_opts *o)
{
    if (pg_base) {
        o->backend = STORE_BACKEND_POSTGRESQL;
        o->conninfo = pg_conninfo;
    }
}

/* store_open() on the backend under test; `o` NULL for the defaults. */
static int open_store(const store_opts *o, store **out)
{
    store_opts t;
    if (o)
        t = *o;
    else
        store_opts_default(&t);
    use_backend(&t);
    return store_open(dir, &t, out);
}

static store *open_with(const store_opts *o)
{
    store *s = NULL;
    int rc = open_store(o, &s);
    ck_assert_msg(rc == NDF_OK, "store_open: %s", err_msg());
    return s;
}

static store *open_default(void)
{
    return open_with(NULL);
}

/* A one-step execution to submit; free with store_exec_free(). */
static store_exec make_exec(const char *id, const char *pat, store_status st, const char *domain)
{
    store_exec e;
    memset(&e, 0, sizeof e);
    e.id = xstrdup(id);
    e.pattern = xstrdup(pat);
    e.status = st;
    e.origin = STORE_ORIGIN_RUN;
    e.domain = domain ? xstrdup(domain) : NULL;
    e.context = xasprintf("{\"domain\":\"%s\",\"n\":7}", domain ? domain : "");
    e.start = now_wall() - 0.25;
    e.end = now_wall();
    e.duration = 0.25;
    e.learn = 1;
    if (st != STORE_SUCCEEDED && st != STORE_RUNNING)
        e.message = xstrdup("step 'work' failed: exit status 3");
    e.nnodes = 2;
    e.nodes = xcalloc(2, sizeof *e.nodes);
    e.nodes[0].path = xstrdup("");
    e.nodes[0].kind = NDF_NODE_PATTERN;
    e.nodes[0].state = st == STORE_SUCCEEDED ? NDF_STATE_COMPLETED
                       : st == STORE_RUNNING ? NDF_STATE_RUNNING
                                             : NDF_STATE_FAILED;
    e.nodes[0].exit_status = -1;
    e.nodes[0].start = e.start;
    e.nodes[0].end = st == STORE_RUNNING ? 0 : e.end;
    e.nodes[1].path = xstrdup("work");
    e.nodes[1].seq = 1;
    e.nodes[1].kind = NDF_NODE_STEP;
    e.nodes[1].state = e.nodes[0].state;
    e.nodes[1].exit_status = st == STORE_SUCCEEDED ? 0 : 3;
    e.nodes[1].start = e.start;
    e.nodes[1].end = e.nodes[0].end;
    return e;
}

static int finish(store *s, const char *id, const char *pat, store_status st, const char *domain)
{
    store_exec e = make_exec(id, pat, st, domain);
    int rc = store_finish(s, &e, NULL);
    store_exec_free(&e);
    return rc;
}

static long long raw_int(const char *path, const char *sql)
{
#ifdef HAVE_LIBPQ
    if (pg_base) {
        char *v = pg_run(pg_db, sql, 1);
        long long n = v ? strtoll(v, NULL, 10) : -1;
        free(v);
        return n;
    }
#endif
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s: %s", sql,
                  sqlite3_errmsg(db));
    long long v = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void raw_exec(const char *path, const char *sql)
{
#ifdef HAVE_LIBPQ
    if (pg_base) {
        free(pg_run(pg_db, sql, 0));
        return;
    }
#endif
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    char *err = NULL;
    ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK, "%s: %s", sql,
                  err ? err : "?");
    sqlite3_close(db);
}

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void mkdir_p(const char *path)
{
    char *p = xstrdup(path);
    for (char *c = p + 1; *c; c++) {
        if (*c == '/') {
            *c = 0;
            mkdir(p, 0700);
            *c = '/';
        }
    }
    mkdir(p, 0700);
    free(p);
}

static uint64_t executions_of(store *s, const char *pat)
{
    learning_state l;
    int rc = store_learning(s, pat, &l);
    ck_assert_msg(rc == NDF_OK, "store_learning(%s): %s", pat, err_msg());
    uint64_t n = l.executions;
    learning_free(&l);
    return n;
}

static size_t count_runs(store *s, const char *pat)
{
    store_exec *v;
    size_t n;
    store_query q = {pat, -1, 0, 1000000, 0, NULL};
    ck_assert_int_eq(store_runs(s, &q, &v, &n), NDF_OK);
    store_exec_array_free(v, n);
    return n;
}

/* ------------------------------------------------------------------ */
/* schema */

START_TEST(test_fresh_schema)
{
    store *s = open_default();
    ck_assert_str_eq(store_path(s), dbpath);
    store_close(s);
    ck_assert_int_eq(raw_int(dbpath, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    ck_assert_int_eq(raw_int(dbpath, "PRAGMA auto_vacuum"), 2);
    ck_assert_int_eq(raw_int(dbpath, "SELECT count(*) FROM sqlite_master WHERE type='table'"), 9);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
    struct stat sb;
    ck_assert_int_eq(stat(dbpath, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0600);
    ck_assert_int_eq(stat(dir, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0700);
    /* a second open finds it current */
    s = open_default();
    store_close(s);
    ck_assert_int_eq(raw_int(dbpath, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
}
END_TEST

START_TEST(test_migrate_from_zero)
{
    mkdir_p(dir);
    /* a valid SQLite file at user_version 0 and no tables */
    raw_exec(dbpath, "CREATE TABLE t (x); DROP TABLE t;");
    ck_assert_int_eq(raw_int(dbpath, "PRAGMA user_version"), 0);
    store *s = open_default();
    ck_assert_int_eq(finish(s, "m1", "p", STORE_SUCCEEDED, NULL), NDF_OK);
    store_close(s);
    ck_assert_int_eq(raw_int(dbpath, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    ck_assert_int_eq(raw_int(dbpath, "SELECT count(*) FROM executions"), 1);
}
END_TEST

START_TEST(test_refuse_newer_and_foreign)
{
    mkdir_p(dir);
    raw_exec(dbpath, "PRAGMA application_id = 1852073521; PRAGMA user_version = 99;"
                     "CREATE TABLE patterns (name TEXT)");
    store *s = NULL;
    ck_assert_int_eq(store_open(dir, NULL, &s), NDF_ERR_IO);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(err_msg(), "newer ndf"));
    ck_assert_ptr_nonnull(strstr(err_msg(), dbpath));
    unlink(dbpath);
    raw_exec(dbpath, "CREATE TABLE foo (x); INSERT INTO foo VALUES (1)");
    ck_assert_int_eq(store_open(dir, NULL, &s), NDF_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err_msg(), "not an ndf database"));
    /* and nothing was changed in it */
    ck_assert_int_eq(raw_int(dbpath, "SELECT count(*) FROM foo"), 1);
    ck_assert_int_eq(raw_int(dbpath, "PRAGMA user_version"), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* recording and reading */

START_TEST(test_record_and_get)
{
    store *s = open_default();
    store_exec e = make_exec("x1", "pat", STORE_RUNNING, "web");
    ck_assert_int_eq(store_begin(s, &e), NDF_OK);
    ck_assert_int_eq(store_begin(s, &e), NDF_ERR_EXISTS);

    /* progress of the step, with output */
    store_node n = e.nodes[1];
    n.state = NDF_STATE_COMPLETED;
    n.end = now_wall();
    char out[] = "hello\n";
    n.out[STORE_STDOUT] = out;
    n.outlen[STORE_STDOUT] = 6;
    ck_assert_int_eq(store_progress(s, "x1", &n), NDF_OK);

    store_exec got;
    /* a running execution is visible once begun */
    ck_assert_int_eq(store_get(s, "x1", &got), NDF_OK);
    ck_assert_int_eq(got.status, STORE_RUNNING);
    store_exec_free(&got);

    e.status = STORE_SUCCEEDED;
    e.nodes[0].state = e.nodes[1].state = NDF_STATE_COMPLETED;
    e.nodes[1].out[STORE_STDOUT] = out;
    e.nodes[1].outlen[STORE_STDOUT] = 6;
    e.nodes[1].exit_status = 0;
    e.end = now_wall();
    learning_state after;
    ck_assert_int_eq(store_finish(s, &e, &after), NDF_OK);
    ck_assert_int_eq(after.executions, 1);
    ck_assert_int_eq(after.successes, 1);
    ck_assert_uint_eq(after.ndomains, 1);
    ck_assert_str_eq(after.domains[0].domain, "web");
    ck_assert(after.score > 0.5);
    learning_free(&after);
    e.nodes[1].out[STORE_STDOUT] = NULL;
    /* ended once: a second end is refused, and not counted */
    ck_assert_int_eq(store_finish(s, &e, NULL), NDF_ERR_EXISTS);
    ck_assert_ptr_nonnull(strstr(err_msg(), "already ended"));
    store_exec_free(&e);

    ck_assert_int_eq(store_get(s, "x1", &got), NDF_OK);
    ck_assert_str_eq(got.id, "x1");
    ck_assert_str_eq(got.pattern, "pat");
    ck_assert_int_eq(got.status, STORE_SUCCEEDED);
    ck_assert_int_eq(got.origin, STORE_ORIGIN_RUN);
    ck_assert_int_eq(got.pid, (long)getpid());
    ck_assert_ptr_nonnull(strstr(got.context, "\"n\":7"));
    ck_assert_int_eq(got.counted, 1);
    ck_assert_uint_eq(got.nnodes, 2);
    ck_assert_str_eq(got.nodes[0].path, "");
    ck_assert_int_eq(got.nodes[0].kind, NDF_NODE_PATTERN);
    ck_assert_str_eq(got.nodes[1].path, "work");
    ck_assert_int_eq(got.nodes[1].state, NDF_STATE_COMPLETED);
    ck_assert_int_eq(got.nodes[1].exit_status, 0);
    ck_assert_uint_eq(got.nodes[1].outlen[STORE_STDOUT], 6);
    store_exec_free(&got);

    /* a sub-pattern execution is a row of its own, and counted */
    store_exec sub = make_exec("x1.sub", "child", STORE_FAILED, NULL);
    sub.parent_id = xstrdup("x1");
    ck_assert_int_eq(store_finish(s, &sub, NULL), NDF_OK);
    store_exec_free(&sub);
    store_exec *kids;
    size_t nk;
    ck_assert_int_eq(store_children(s, "x1", &kids, &nk), NDF_OK);
    ck_assert_uint_eq(nk, 1);
    ck_assert_str_eq(kids[0].id, "x1.sub");
    ck_assert_str_eq(kids[0].parent_id, "x1");
    store_exec_array_free(kids, nk);
    ck_assert_int_eq(executions_of(s, "child"), 1);

    ck_assert_int_eq(store_get(s, "nope", &got), NDF_ERR_NOT_FOUND);
    ck_assert_int_eq(store_check(s), NDF_OK);
    store_close(s);
}
END_TEST

/* A step's result and figures are kept with its node; a progress write
 * (which never carries them) does not clear what the end wrote, and a node
 * without them reads back as none. */
START_TEST(test_step_results)
{
    store *s = open_default();
    store_exec e = make_exec("r1", "pat", STORE_RUNNING, "web");
    ck_assert_int_eq(store_begin(s, &e), NDF_OK);
    store_node n = e.nodes[1];
    n.state = NDF_STATE_RUNNING;
    ck_assert_int_eq(store_progress(s, "r1", &n), NDF_OK);

    e.status = STORE_SUCCEEDED;
    e.end = now_wall();
    e.nodes[0].state = e.nodes[1].state = NDF_STATE_COMPLETED;
    e.nodes[1].result = xstrdup("answer: \"yes\"\n\xc3\xa9t\xc3\xa9");
    e.nodes[1].result_len = 100000; /* the submitter cut it */
    e.nodes[1].metrics = xstrdup("{\"input_tokens\":12,\"cost_usd\":0.5}");
    ck_assert_msg(store_finish(s, &e, NULL) == NDF_OK, "%s", err_msg());
    store_exec_free(&e);

    store_exec got;
    ck_assert_int_eq(store_get(s, "r1", &got), NDF_OK);
    ck_assert_uint_eq(got.nnodes, 2);
    ck_assert_ptr_null(got.nodes[0].result);
    ck_assert_ptr_null(got.nodes[0].metrics);
    ck_assert_uint_eq(got.nodes[0].result_len, 0);
    ck_assert_str_eq(got.nodes[1].result, "answer: \"yes\"\n\xc3\xa9t\xc3\xa9");
    ck_assert_uint_eq(got.nodes[1].result_len, 100000);
    ck_assert_str_eq(got.nodes[1].metrics, "{\"input_tokens\":12,\"cost_usd\":0.5}");
    store_exec_free(&got);

    /* metrics alone, and an empty result (which is a result) */
    store_exec f = make_exec("r2", "pat", STORE_FAILED, NULL);
    f.nodes[1].metrics = xstrdup("{\"tokens\":3}");
    f.nodes[0].result = xstrdup("");
    ck_assert_msg(store_finish(s, &f, NULL) == NDF_OK, "%s", err_msg());
    store_exec_free(&f);
    ck_assert_int_eq(store_get(s, "r2", &got), NDF_OK);
    ck_assert_str_eq(got.nodes[0].result, "");
    ck_assert_ptr_null(got.nodes[0].metrics);
    ck_assert_ptr_null(got.nodes[1].result);
    ck_assert_str_eq(got.nodes[1].metrics, "{\"tokens\":3}");
    store_exec_free(&got);
    store_close(s);
}
END_TEST

START_TEST(test_runs_query)
{
    store *s = open_default();
    char id[32];
    for (int i = 0; i < 30; i++) {
        snprintf(id, sizeof id, "r%02d", i);
        ck_assert_int_eq(
            finish(s, id, i % 3 ? "a" : "b", i % 5 ? STORE_SUCCEEDED : STORE_FAILED, NULL), NDF_OK);
    }
    store_exec *v;
    size_t n;
    store_query q = {NULL, -1, 0, 0, 0, NULL};
    ck_assert_int_eq(store_runs(s, &q, &v, &n), NDF_OK);
    ck_assert_uint_eq(n, 30);
    ck_assert_str_eq(v[0].id, "r29"); /* newest first */
    ck_assert_str_eq(v[29].id, "r00");
    ck_assert_uint_eq(v[0].nnodes, 0);
    store_exec_array_free(v, n);

    store_query qa = {"b", STORE_FAILED, 0, 3, 0, NULL};
    ck_assert_int_eq(store_runs(s, &qa, &v, &n), NDF_OK);
    /* b: 0,3,6,...,27; failed among them: 0, 15 */
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(v[0].id, "r15");
    ck_assert_str_eq(v[1].id, "r00");
    store_exec_array_free(v, n);

    store_query ql = {"a", -1, 0, 4, 0, NULL};
    ck_assert_int_eq(store_runs(s, &ql, &v, &n), NDF_OK);
    ck_assert_uint_eq(n, 4);
    store_exec_array_free(v, n);

    store_query qs = {NULL, -1, now_wall() + 3600, 0, 0, NULL};
    ck_assert_int_eq(store_runs(s, &qs, &v, &n), NDF_OK);
    ck_assert_uint_eq(n, 0);
    free(v);

    char **names;
    size_t nn;
    ck_assert_int_eq(store_patterns(s, &names, &nn), NDF_OK);
    ck_assert_uint_eq(nn, 2);
    ck_assert_str_eq(names[0], "a");
    ck_assert_str_eq(names[1], "b");
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    ck_assert_int_eq(executions_of(s, "a"), 20);
    ck_assert_int_eq(executions_of(s, "b"), 10);
    store_close(s);
}
END_TEST

START_TEST(test_learning_disabled)
{
    store_opts o;
    store_opts_default(&o);
    o.enable_learning = 0;
    store *s = open_with(&o);
    ck_assert_int_eq(finish(s, "n1", "quiet", STORE_SUCCEEDED, NULL), NDF_OK);
    learning_state l;
    ck_assert_int_eq(store_learning(s, "quiet", &l), NDF_ERR_NOT_FOUND);
    ck_assert_uint_eq(count_runs(s, "quiet"), 1);
    ck_assert_int_eq(store_check(s), NDF_OK);
    store_close(s);
}
END_TEST

/* store_learning_all: the same state as store_learning, one call per
 * stored pattern, in name order, domains included. */
typedef struct all_seen {
    char names[8][16];
    learning_state st[8];
    int n;
} all_seen;

static void all_each(void *arg, const char *name, learning_state *st)
{
    all_seen *a = arg;
    ck_assert_int_lt(a->n, 8);
    snprintf(a->names[a->n], sizeof a->names[a->n], "%s", name);
    a->st[a->n++] = *st; /* taken */
    memset(st, 0, sizeof *st);
}

static void leave_each(void *arg, const char *name, learning_state *st)
{
    (void)name;
    (void)st; /* not taken: the store frees it */
    (*(int *)arg)++;
}

START_TEST(test_learning_all)
{
    store *s = open_default();
    ck_assert_int_eq(finish(s, "a1", "beta", STORE_SUCCEEDED, "web"), NDF_OK);
    ck_assert_int_eq(finish(s, "a2", "beta", STORE_FAILED, "db"), NDF_OK);
    ck_assert_int_eq(finish(s, "a3", "alpha", STORE_SUCCEEDED, NULL), NDF_OK);
    ck_assert_int_eq(finish(s, "a4", "gamma", STORE_SUCCEEDED, "web"), NDF_OK);
    ck_assert_int_eq(finish(s, "a5", "beta", STORE_SUCCEEDED, "web"), NDF_OK);
    all_seen a;
    memset(&a, 0, sizeof a);
    ck_assert_msg(store_learning_all(s, all_each, &a) == NDF_OK, "%s", err_msg());
    ck_assert_int_eq(a.n, 3);
    ck_assert_str_eq(a.names[0], "alpha");
    ck_assert_str_eq(a.names[1], "beta");
    ck_assert_str_eq(a.names[2], "gamma");
    for (int i = 0; i < a.n; i++) {
        learning_state one;
        ck_assert_int_eq(store_learning(s, a.names[i], &one), NDF_OK);
        ck_assert_uint_eq(a.st[i].executions, one.executions);
        ck_assert_uint_eq(a.st[i].successes, one.successes);
        ck_assert(a.st[i].alpha == one.alpha && a.st[i].beta == one.beta);
        ck_assert(a.st[i].score == one.score && a.st[i].created == one.created);
        ck_assert_uint_eq(a.st[i].ndomains, one.ndomains);
        for (size_t k = 0; k < one.ndomains; k++) {
            ck_assert_str_eq(a.st[i].domains[k].domain, one.domains[k].domain);
            ck_assert_uint_eq(a.st[i].domains[k].executions, one.domains[k].executions);
            ck_assert_uint_eq(a.st[i].domains[k].successes, one.domains[k].successes);
        }
        learning_free(&one);
        learning_free(&a.st[i]);
    }
    int calls = 0;
    ck_assert_int_eq(store_learning_all(s, leave_each, &calls), NDF_OK);
    ck_assert_int_eq(calls, 3);
    store_close(s);
}
END_TEST

/* store_backup_every: backups appear on their own, rotated to opts.backups;
 * 0 stops them; store_close() does not wait for the next one. */
static int count_backups(void)
{
    char *b = xasprintf("%s/backups", dir);
    DIR *d = opendir(b);
    free(b);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        n += strncmp(de->d_name, "ndf-", 4) == 0;
    if (d)
        closedir(d);
    return n;
}

START_TEST(test_backup_every)
{
    store_opts o;
    store_opts_default(&o);
    o.backups = 2;
    store *s = open_with(&o);
    ck_assert_int_eq(finish(s, "e1", "p", STORE_SUCCEEDED, NULL), NDF_OK);
    ck_assert_int_eq(store_backup_every(s, -1), NDF_ERR_INVALID);
    ck_assert_int_eq(store_backup_every(s, 0.05), NDF_OK);
    int n = 0;
    for (int i = 0; i < 400 && (n = count_backups()) < 2; i++)
        usleep(10000);
    ck_assert_int_eq(n, 2);
    usleep(200000); /* more intervals: still two, rotated */
    /* stopped first: one being written has three for an instant (the new
     * file is in place before the oldest goes) */
    ck_assert_int_eq(store_backup_every(s, 0), NDF_OK);
    ck_assert_int_eq(count_backups(), 2);
    char *newest = store_newest_backup(dir);
    usleep(200000);
    char *still = store_newest_backup(dir);
    ck_assert_str_eq(newest, still); /* stopped */
    free(newest);
    free(still);
    /* a long interval: closing does not wait for it */
    ck_assert_int_eq(store_backup_every(s, 3600), NDF_OK);
    double t0 = now_mono();
    store_close(s);
    ck_assert(now_mono() - t0 < 30);
}
END_TEST

/* Lines of file `path` holding `needle`. */
static int count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* An interval backup that keeps failing is logged once, and its end. */
START_TEST(test_backup_every_logs_once)
{
    store *s = open_default();
    ck_assert_int_eq(finish(s, "e1", "p", STORE_SUCCEEDED, NULL), NDF_OK);
    char bdir[800], logf[800];
    snprintf(bdir, sizeof bdir, "%s/backups", dir);
    snprintf(logf, sizeof logf, "%s/log", scratch);
    rmdir(bdir);
    write_file(bdir, "x", 1); /* a file where the directory goes: every backup fails */
    int fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    ck_assert_int_ge(fd, 0);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
    log_set_level(NDF_LOG_INFO);
    ck_assert_int_eq(store_backup_every(s, 0.02), NDF_OK);
    usleep(300000); /* some 15 intervals */
    int failed = count_lines(logf, "interval backup failed");
    unlink(bdir);
    int back = 0;
    for (int i = 0; i < 300 && !back; i++) {
        usleep(10000);
        back = count_lines(logf, "interval backups work again");
    }
    ck_assert_int_eq(store_backup_every(s, 0), NDF_OK);
    dup2(saved, STDERR_FILENO);
    close(saved);
    ck_assert_int_eq(failed, 1);
    ck_assert_int_eq(back, 1);
    ck_assert_int_eq(count_lines(logf, "interval backup failed"), 1);
    store_close(s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* exact counts across processes */

#define NCHILD 4
#define PER_CHILD 150

START_TEST(test_concurrent_processes)
{
    store *s = open_default(); /* create first, so children only open */
    store_close(s);
    pid_t kids[NCHILD];
    for (int c = 0; c < NCHILD; c++) {
        kids[c] = fork();
        ck_assert_int_ge(kids[c], 0);
        if (kids[c] == 0) {
            store *cs;
            store_opts o;
            store_opts_default(&o);
            o.busy_timeout_ms = 30000;
            if (open_store(&o, &cs) != NDF_OK)
                _exit(10);
            for (int i = 0; i < PER_CHILD; i++) {
                char id[64], sid[80];
                snprintf(id, sizeof id, "c%d-%d", c, i);
                store_status st = (i + c) % 4 ? STORE_SUCCEEDED : STORE_FAILED;
                if (finish(cs, id, i % 2 ? "odd" : "even", st, i % 3 ? "d1" : "d2"))
                    _exit(11);
                if (i % 5 == 0) {
                    snprintf(sid, sizeof sid, "%s.sub", id);
                    store_exec e = make_exec(sid, "sub", st, NULL);
                    e.parent_id = xstrdup(id);
                    int rc = store_finish(cs, &e, NULL);
                    store_exec_free(&e);
                    if (rc)
                        _exit(12);
                }
            }
            store_close(cs);
            _exit(0);
        }
    }
    for (int c = 0; c < NCHILD; c++) {
        int status;
        ck_assert_int_eq(waitpid(kids[c], &status, 0), kids[c]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d: status %#x", c,
                      status);
    }
    s = open_default();
    ck_assert_int_eq(executions_of(s, "odd"), NCHILD * PER_CHILD / 2);
    ck_assert_int_eq(executions_of(s, "even"), NCHILD * PER_CHILD / 2);
    ck_assert_int_eq(executions_of(s, "sub"), NCHILD * PER_CHILD / 5);
    learning_state l;
    ck_assert_int_eq(store_learning(s, "even", &l), NDF_OK);
    /* successes: (i + c) % 4 != 0 over even i */
    uint64_t want = 0, d1 = 0;
    for (int c = 0; c < NCHILD; c++)
        for (int i = 0; i < PER_CHILD; i += 2) {
            want += (i + c) % 4 != 0;
            d1 += i % 3 != 0;
        }
    ck_assert_uint_eq(l.successes, want);
    ck_assert_uint_eq(l.ndomains, 2);
    ck_assert_str_eq(l.domains[0].domain, "d1");
    ck_assert_uint_eq(l.domains[0].executions, d1);
    learning_free(&l);
    ck_assert_uint_eq(count_runs(s, NULL), NCHILD * PER_CHILD + NCHILD * PER_CHILD / 5);
    ck_assert_msg(store_check(s) == NDF_OK, "%s", err_msg());
    store_close(s);
}
END_TEST

/* The invariant check is not vacuous: a count written behind the store's
 * back is reported. */
START_TEST(test_check_detects_drift)
{
    store *s = open_default();
    ck_assert_int_eq(finish(s, "d1", "drift", STORE_SUCCEEDED, NULL), NDF_OK);
    ck_assert_int_eq(store_check(s), NDF_OK);
    raw_exec(dbpath, "UPDATE patterns SET executions = 5 WHERE name = 'drift'");
    ck_assert_int_eq(store_check(s), NDF_ERR_VALIDATION);
    ck_assert_ptr_nonnull(strstr(err_msg(), "'drift'"));
    store_close(s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* group commit */

typedef struct submitter {
    store *s;
    int index;
    int count;
    int rc;
    int visible; /* each acknowledged execution was readable at once */
    char msg[512];
    atomic_int *returned;
} submitter;

static void *submit_thread(void *arg)
{
    submitter *t = arg;
    t->visible = 1;
    for (int i = 0; i < t->count; i++) {
        char id[64];
        snprintf(id, sizeof id, "t%d-%d", t->index, i);
        int rc = finish(t->s, id, "gc", STORE_SUCCEEDED, NULL);
        if (t->returned)
            atomic_fetch_add(t->returned, 1);
        if (rc) {
            t->rc = rc;
            snprintf(t->msg, sizeof t->msg, "%s", err_msg());
            break;
        }
        /* read through the store's other connection: only committed rows show */
        store_exec got;
        if (store_get(t->s, id, &got) != NDF_OK)
            t->visible = 0;
        store_exec_free(&got);
    }
    return NULL;
}

START_TEST(test_group_commit_threads)
{
    store *s = open_default();
    pthread_t th[8];
    submitter t[8];
    for (int i = 0; i < 8; i++) {
        t[i] = (submitter){s, i, 100, 0, 0, "", NULL};
        ck_assert_int_eq(pthread_create(&th[i], NULL, submit_thread, &t[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(t[i].rc == NDF_OK, "thread %d: %s", i, t[i].msg);
        ck_assert(t[i].visible);
    }
    store_stats st;
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.executions, 800);
    ck_assert_uint_ge(st.transactions, 1);
    ck_assert_uint_le(st.transactions, 800);
    ck_assert_uint_eq(st.pending, 0);
    ck_assert_int_eq(executions_of(s, "gc"), 800);
    ck_assert_int_eq(store_check(s), NDF_OK);
    store_close(s);
}
END_TEST

/* A child process that holds the database's write lock until told.  It
 * is forked while this process has no connection open: SQLite's state
 * must not cross a fork. */
typedef struct locker {
    pid_t pid;
    int go; /* write a byte to release */
} locker;

static locker lock_db(void)
{
    int ready[2], go[2];
    ck_assert_int_eq(pipe(ready), 0);
    ck_assert_int_eq(pipe(go), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(ready[0]);
        close(go[1]);
#ifdef HAVE_LIBPQ
        if (pg_base) {
            /* recording an execution inserts into executions: hold that off */
            PGconn *c = PQconnectdb(pg_conninfo);
            PGresult *r = PQexec(c, "BEGIN; LOCK TABLE executions IN EXCLUSIVE MODE");
            if (PQresultStatus(r) != PGRES_COMMAND_OK)
                _exit(1);
            PQclear(r);
            char c1 = 'x';
            if (write(ready[1], &c1, 1) != 1 || read(go[0], &c1, 1) < 0)
                _exit(2);
            PQclear(PQexec(c, "COMMIT"));
            PQfinish(c);
            _exit(0);
        }
#endif
        sqlite3 *db;
        if (sqlite3_open(dbpath, &db) != SQLITE_OK ||
            sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
            _exit(1);
        char c = 'x';
        if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) < 0)
            _exit(2);
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        sqlite3_close(db);
        _exit(0);
    }
    close(ready[1]);
    close(go[0]);
    char c;
    ck_assert_int_eq(read(ready[0], &c, 1), 1);
    close(ready[0]);
    return (locker){pid, go[1]};
}

static void unlock_db(locker l)
{
    char c = 'g';
    ck_assert_int_eq(write(l.go, &c, 1), 1);
    close(l.go);
    int status;
    ck_assert_int_eq(waitpid(l.pid, &status, 0), l.pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

START_TEST(test_ack_after_commit)
{
    store_opts o;
    store_opts_default(&o);
    o.busy_timeout_ms = 60000;
    store_close(open_with(&o));
    locker l = lock_db();
    store *s = open_with(&o);
    atomic_int returned = 0;
    pthread_t th[8];
    submitter t[8];
    for (int i = 0; i < 8; i++) {
        t[i] = (submitter){s, i, 1, 0, 0, "", &returned};
        ck_assert_int_eq(pthread_create(&th[i], NULL, submit_thread, &t[i]), 0);
    }
    /* wait (for a state, not a time) until all eight wait for the writer */
    store_stats st;
    do {
        usleep(1000);
        store_get_stats(s, &st);
    } while (st.pending < 8);
    /* nobody can commit while the lock is held: nobody was answered */
    ck_assert_int_eq(atomic_load(&returned), 0);
    unlock_db(l);
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(t[i].rc == NDF_OK, "thread %d: %s", i, t[i].msg);
        ck_assert(t[i].visible);
    }
    ck_assert_int_eq(atomic_load(&returned), 8);
    store_get_stats(s, &st);
    /* the first batch waited alone at most; the rest shared one commit */
    ck_assert_uint_eq(st.executions, 8);
    ck_assert_uint_le(st.transactions, 2);
    store_close(s);
}
END_TEST

START_TEST(test_commit_failure_is_an_error)
{
    store_opts o;
    store_opts_default(&o);
    o.busy_timeout_ms = 100;
    store_close(open_with(&o));
    locker l = lock_db();
    store *s = open_with(&o);
    int rc = finish(s, "lost", "p", STORE_SUCCEEDED, NULL);
    ck_assert_int_eq(rc, NDF_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err_msg(), dbpath));
    ck_assert_msg(strstr(err_msg(), pg_base ? "lock timeout" : "locked"), "%s", err_msg());
    store_stats st;
    store_get_stats(s, &st);
    ck_assert_int_eq(st.degraded, 1);
    unlock_db(l);
    store_exec got;
    ck_assert_int_eq(store_get(s, "lost", &got), NDF_ERR_NOT_FOUND);
    learning_state ls;
    ck_assert_int_eq(store_learning(s, "p", &ls), NDF_ERR_NOT_FOUND);
    /* the next write succeeds and clears the state */
    ck_assert_int_eq(finish(s, "kept", "p", STORE_SUCCEEDED, NULL), NDF_OK);
    store_get_stats(s, &st);
    ck_assert_int_eq(st.degraded, 0);
    ck_assert_int_eq(executions_of(s, "p"), 1);
    store_close(s);
}
END_TEST

/* What store_begin_async() and store_finish_async() report, counted. */
typedef struct handoff {
    atomic_int calls, ok, failed, with_state;
} handoff;

static void handoff_done(void *arg, int rc, const char *msg, learning_state *after, size_t n)
{
    handoff *h = arg;
    (void)msg;
    if (rc == NDF_OK)
        atomic_fetch_add(&h->ok, 1);
    else
        atomic_fetch_add(&h->failed, 1);
    if (n && after && after[0].executions > 0)
        atomic_fetch_add(&h->with_state, 1);
    atomic_fetch_add(&h->calls, 1);
}

static store_exec *heap_exec(const char *id, const char *pat, store_status st)
{
    store_exec *v = xmalloc(sizeof *v);
    *v = make_exec(id, pat, st, NULL);
    return v;
}

START_TEST(test_hand_off)
{
    store_opts o;
    store_opts_default(&o);
    o.busy_timeout_ms = 100;
    store_close(open_with(&o));
    /* writes that fail: each hand-off is told, once, and flush waits for it */
    locker l = lock_db();
    store *s = open_with(&o);
    handoff a = {0};
    store_exec b = make_exec("refused", "p", STORE_RUNNING, NULL);
    ck_assert_int_eq(store_begin_async(s, &b, handoff_done, &a), NDF_OK);
    store_exec_free(&b);
    ck_assert_int_eq(store_finish_async(s, heap_exec("refused2", "p", STORE_SUCCEEDED), 1,
                                        handoff_done, &a),
                     NDF_OK);
    store_flush(s);
    ck_assert_int_eq(atomic_load(&a.calls), 2);
    ck_assert_int_eq(atomic_load(&a.failed), 2);
    store_stats st;
    store_get_stats(s, &st);
    ck_assert_int_eq(st.degraded, 1);
    unlock_db(l);
    store_exec got;
    ck_assert_int_eq(store_get(s, "refused2", &got), NDF_ERR_NOT_FOUND);
    store_close(s);
    if (pg_base) /* written at once (the documented fallback): nothing queues */
        return;
    /* handed off while the writer cannot commit: nobody waits, and once
     * it can, one transaction takes what queued meanwhile */
    o.busy_timeout_ms = 60000;
    l = lock_db();
    s = open_with(&o);
    handoff c = {0};
    store_exec e = make_exec("h-begin", "q", STORE_RUNNING, NULL);
    ck_assert_int_eq(store_begin_async(s, &e, handoff_done, &c), NDF_OK);
    store_exec_free(&e);
    for (int i = 0; i < 50; i++) {
        char id[32];
        snprintf(id, sizeof id, "h%d", i);
        ck_assert_int_eq(
            store_finish_async(s, heap_exec(id, "q", STORE_SUCCEEDED), 1, handoff_done, &c),
            NDF_OK);
    }
    ck_assert_int_eq(store_finish_async(s, heap_exec("h-begin", "q", STORE_FAILED), 1,
                                        handoff_done, &c),
                     NDF_OK);
    do {
        usleep(1000);
        store_get_stats(s, &st);
    } while (st.pending < 52);
    ck_assert_int_eq(atomic_load(&c.calls), 0);
    unlock_db(l);
    store_flush(s);
    ck_assert_int_eq(atomic_load(&c.ok), 52);
    ck_assert_int_eq(atomic_load(&c.with_state), 51); /* every end, not the begin */
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.executions, 51);
    /* the first job may have waited for the lock alone */
    ck_assert_uint_le(st.transactions, 2);
    ck_assert_int_eq(executions_of(s, "q"), 51);
    ck_assert_int_eq(store_get(s, "h-begin", &got), NDF_OK);
    ck_assert_int_eq(got.status, STORE_FAILED);
    store_exec_free(&got);
    ck_assert_int_eq(store_check(s), NDF_OK);
    store_close(s);
}
END_TEST

/* Callers waiting for their commits commit the queued batch themselves
 * (no hand-off), several executions per transaction once they queued
 * while one was being committed; a batch with a callback's job is the
 * writer thread's, so no callback runs on a waiting caller's thread. */
static _Thread_local int in_waiter;
static atomic_int cb_on_waiter;

static void waiter_cb(void *arg, int rc, const char *msg, learning_state *after, size_t n)
{
    if (in_waiter)
        atomic_fetch_add(&cb_on_waiter, 1);
    handoff_done(arg, rc, msg, after, n);
}

typedef struct waiter {
    store *s;
    char id[32];
    int rc;
} waiter;

static void *finish_waiting(void *arg)
{
    waiter *w = arg;
    in_waiter = 1;
    store_exec e = make_exec(w->id, "w", STORE_SUCCEEDED, NULL);
    w->rc = store_finish(w->s, &e, NULL);
    store_exec_free(&e);
    return NULL;
}

static int count_tasks(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

START_TEST(test_waiters_commit)
{
    if (pg_base) /* the PostgreSQL store writes on the caller's connection */
        return;
    store_opts o;
    store_opts_default(&o);
    o.busy_timeout_ms = 60000;
    /* a waiter alone commits its own: no writer thread is started */
    int tasks = count_tasks();
    store *s = open_with(&o);
    store_exec e = make_exec("alone", "w", STORE_SUCCEEDED, NULL);
    ck_assert_int_eq(store_finish(s, &e, NULL), NDF_OK);
    store_exec_free(&e);
    if (tasks > 0)
        ck_assert_int_eq(count_tasks(), tasks);
    store_close(s);
    locker l = lock_db();
    s = open_with(&o);
    handoff c = {0};
    atomic_store(&cb_on_waiter, 0);
    /* the writer thread takes this one and waits for the lock */
    ck_assert_int_eq(
        store_finish_async(s, heap_exec("cb1", "w", STORE_SUCCEEDED), 1, waiter_cb, &c), NDF_OK);
    store_stats st;
    enum { NW = 8 };
    waiter w[NW];
    pthread_t t[NW];
    for (int i = 0; i < NW; i++) {
        w[i].s = s;
        snprintf(w[i].id, sizeof w[i].id, "w%d", i);
        ck_assert_int_eq(pthread_create(&t[i], NULL, finish_waiting, &w[i]), 0);
    }
    do {
        usleep(1000);
        store_get_stats(s, &st);
    } while (st.pending < 1 + NW);
    /* queued behind the waiters: their batch is the writer's */
    ck_assert_int_eq(
        store_finish_async(s, heap_exec("cb2", "w", STORE_SUCCEEDED), 1, waiter_cb, &c), NDF_OK);
    unlock_db(l);
    for (int i = 0; i < NW; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(w[i].rc, NDF_OK);
    }
    store_flush(s);
    ck_assert_int_eq(atomic_load(&c.ok), 2);
    ck_assert_int_eq(atomic_load(&cb_on_waiter), 0);
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.executions, NW + 2);
    ck_assert_uint_le(st.transactions, 3);
    ck_assert_int_eq(executions_of(s, "w"), NW + 3);

    /* waiters alone: the first commits its own, or the queue, itself */
    for (int i = 0; i < NW; i++) {
        snprintf(w[i].id, sizeof w[i].id, "v%d", i);
        ck_assert_int_eq(pthread_create(&t[i], NULL, finish_waiting, &w[i]), 0);
    }
    for (int i = 0; i < NW; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(w[i].rc, NDF_OK);
    }
    ck_assert_int_eq(executions_of(s, "w"), 2 * NW + 3);
    ck_assert_int_eq(store_check(s), NDF_OK);
    store_close(s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* crash recovery */

START_TEST(test_crash_recovery)
{
    store *s = open_default();
    store_close(s);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        store *cs;
        if (open_store(NULL, &cs) != NDF_OK)
            _exit(1);
        store_exec e = make_exec("dead", "p", STORE_RUNNING, NULL);
        e.nnodes = 1; /* the root only at first */
        if (store_begin(cs, &e) != NDF_OK)
            _exit(2);
        e.nnodes = 2;
        store_node a = e.nodes[1];
        char name[] = "prepare";
        a.path = name;
        a.state = NDF_STATE_COMPLETED;
        a.end = now_wall();
        store_progress(cs, "dead", &a);
        store_node b = e.nodes[1];
        b.seq = 2;
        b.start = now_wall() + 1;
        store_progress(cs, "dead", &b); /* "work" RUNNING */
        store_close(cs);                /* drains the queue: then dies mid-run */
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    /* the crash note of the dead process is merged into its message; one
     * of another pid is not */
    store_opts co;
    store_opts_default(&co);
    co.crash_pid = (long)pid;
    co.crash_cause = "signal 11 (SIGSEGV) in step 'work' (type w, plugin p, file /x/p.so)";
    s = open_with(&co);
    store_exec got;
    ck_assert_int_eq(store_get(s, "dead", &got), NDF_OK);
    ck_assert_int_eq(got.status, STORE_CRASHED);
    ck_assert_ptr_nonnull(got.message);
    ck_assert_msg(strstr(got.message, "died of signal 11 (SIGSEGV) in step 'work' (type w, "
                                      "plugin p, file /x/p.so)"),
                  "%s", got.message);
    ck_assert(got.end > 0);
    ck_assert_int_eq(got.counted, 0);
    ck_assert_uint_eq(got.nnodes, 3);
    for (size_t i = 0; i < got.nnodes; i++) {
        if (!strcmp(got.nodes[i].path, "prepare"))
            ck_assert_int_eq(got.nodes[i].state, NDF_STATE_COMPLETED);
        else
            ck_assert_int_eq(got.nodes[i].state, NDF_STATE_FAILED);
    }
    store_exec_free(&got);

    /* alive: this process; another machine: unknown; another boot: dead */
    store_exec mine = make_exec("alive", "p", STORE_RUNNING, NULL);
    ck_assert_int_eq(store_begin(s, &mine), NDF_OK);
    store_exec far = make_exec("far", "p", STORE_RUNNING, NULL);
    far.host = xstrdup("another-host.example");
    far.pid = 1;
    ck_assert_int_eq(store_begin(s, &far), NDF_OK);
    store_exec old = make_exec("oldboot", "p", STORE_RUNNING, NULL);
    old.boot_id = xstrdup("00000000-0000-0000-0000-000000000000");
    old.pid = getpid();
    ck_assert_int_eq(store_begin(s, &old), NDF_OK);
    size_t n;
    ck_assert_int_eq(store_recover(s, &n), NDF_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(store_get(s, "oldboot", &got), NDF_OK);
    ck_assert_int_eq(got.status, STORE_CRASHED);
    ck_assert_ptr_nonnull(strstr(got.message, "'work'"));
    ck_assert_msg(!strstr(got.message, "SIGSEGV"), "%s", got.message);
    store_exec_free(&got);
    ck_assert_int_eq(store_get(s, "alive", &got), NDF_OK);
    ck_assert_int_eq(got.status, STORE_RUNNING);
    store_exec_free(&got);
    ck_assert_int_eq(store_get(s, "far", &got), NDF_OK);
    ck_assert_int_eq(got.status, STORE_RUNNING);
    store_exec_free(&got);
    /* the live one still ends normally */
    mine.status = STORE_SUCCEEDED;
    ck_assert_int_eq(store_finish(s, &mine, NULL), NDF_OK);
    store_exec_free(&mine);
    store_exec_free(&far);
    store_exec_free(&old);
    ck_assert_int_eq(store_check(s), NDF_OK);
    store_close(s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* the redrive claim */

/* Begins a RUNNING redrive `id` of `of`; the store's answer. */
/* A redrive's RUNNING row: `resumes` 1 when it reuses `of`'s completed
 * steps, 0 for --from-start. */
static int begin_redrive_as(store *s, const char *id, const char *of, int resumes)
{
    store_exec e = make_exec(id, "p", STORE_RUNNING, NULL);
    e.redrive_of = xstrdup(of);
    e.origin = STORE_ORIGIN_REDRIVE;
    e.resumes = resumes;
    int rc = store_begin(s, &e);
    store_exec_free(&e);
    return rc;
}

static int begin_redrive(store *s, const char *id, const char *of)
{
    return begin_redrive_as(s, id, of, 0);
}

static int end_redrive(store *s, const char *id, const char *of, store_status st)
{
    store_exec e = make_exec(id, "p", st, NULL);
    e.redrive_of = xstrdup(of);
    e.origin = STORE_ORIGIN_REDRIVE;
    int rc = store_finish(s, &e, NULL);
    store_exec_free(&e);
    return rc;
}

#define NCLAIM 4

/* NCLAIM processes, each with a store of its own, all open (and recover)
 * before any of them tries `attempt(store, n)`, then all at once: exactly
 * one may succeed, every other is refused (NDF_ERR_INVALID).  They stay
 * alive until all have answered: one that exited would be a dead claimer
 * (a crashed redrive, a dead rollback) whose claim a later open frees. */
static void race_one_winner(int (*attempt)(store *, int))
{
    int go[2], res[2], rdy[2], done[2];
    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(res), 0);
    ck_assert_int_eq(pipe(rdy), 0);
    ck_assert_int_eq(pipe(done), 0);
    pid_t kids[NCLAIM];
    for (int c = 0; c < NCLAIM; c++) {
        kids[c] = fork();
        ck_assert_int_ge(kids[c], 0);
        if (kids[c] == 0) {
            close(go[1]);
            close(done[1]);
            store *cs;
            store_opts o;
            store_opts_default(&o);
            o.busy_timeout_ms = 30000;
            char b = 'x';
            int orc = open_store(&o, &cs);
            (void)!write(rdy[1], &b, 1);
            if (orc != NDF_OK) {
                (void)!write(res[1], &b, 1);
                _exit(10);
            }
            if (read(go[0], &b, 1) != 0) /* everyone starts when the pipe closes */
                _exit(11);
            int rc = attempt(cs, c);
            b = rc == NDF_OK ? 'w' : rc == NDF_ERR_INVALID ? 'l' : 'e';
            (void)!write(res[1], &b, 1);
            (void)!read(done[0], &b, 1);
            store_close(cs);
            _exit(0);
        }
    }
    close(go[0]);
    close(done[0]);
    close(res[1]);
    close(rdy[1]);
    char b;
    for (int c = 0; c < NCLAIM; c++)
        ck_assert_int_eq(read(rdy[0], &b, 1), 1);
    close(rdy[0]);
    close(go[1]);
    int won = 0, lost = 0;
    for (int c = 0; c < NCLAIM; c++) {
        ck_assert_int_eq(read(res[0], &b, 1), 1);
        won += b == 'w';
        lost += b == 'l';
    }
    close(done[1]);
    for (int c = 0; c < NCLAIM; c++) {
        int status;
        ck_assert_int_eq(waitpid(kids[c], &status, 0), kids[c]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d: %#x", c, status);
    }
    close(res[0]);
    ck_assert_int_eq(won, 1);
    ck_assert_int_eq(lost, NCLAIM - 1);
}

static int redrive_many(store *cs, int c)
{
    char id[32];
    snprintf(id, sizeof id, "m%d", c);
    return begin_redrive(cs, id, "many");
}

static int claim_many(store *cs, int c)
{
    (void)c;
    return store_rollback_claim(cs, "many", "claimed", NULL, NULL);
}

START_TEST(test_redrive_claim)
{
    store *s = open_default();
    ck_assert_int_eq(finish(s, "orig", "p", STORE_FAILED, NULL), NDF_OK);
    ck_assert_int_eq(begin_redrive(s, "r1", "orig"), NDF_OK);
    /* a second one while the first runs */
    ck_assert_int_eq(begin_redrive(s, "r2", "orig"), NDF_ERR_INVALID);
    ck_assert_msg(strstr(err_msg(), "being redriven by execution r1"), "%s", err_msg());
    /* a redrive of the running redrive is in the same chain */
    ck_assert_int_eq(begin_redrive(s, "r2", "r1"), NDF_ERR_INVALID);
    /* the first failed: the claim is free again */
    ck_assert_int_eq(end_redrive(s, "r1", "orig", STORE_FAILED), NDF_OK);
    ck_assert_int_eq(begin_redrive(s, "r2", "r1"), NDF_OK);
    ck_assert_int_eq(end_redrive(s, "r2", "r1", STORE_SUCCEEDED), NDF_OK);
    /* after a success, no redrive anywhere in the chain */
    ck_assert_int_eq(begin_redrive(s, "r3", "orig"), NDF_ERR_INVALID);
    ck_assert_msg(strstr(err_msg(), "redriven by execution r2, which succeeded"), "%s", err_msg());
    ck_assert_int_eq(begin_redrive(s, "r3", "r1"), NDF_ERR_INVALID);
    /* a refusal is the caller's fault, not a storage fault */
    store_stats st;
    store_get_stats(s, &st);
    ck_assert_int_eq(st.degraded, 0);
    /* an execution nobody redrove is not held by the others' claims */
    ck_assert_int_eq(finish(s, "other", "p", STORE_FAILED, NULL), NDF_OK);
    ck_assert_int_eq(begin_redrive(s, "o1", "other"), NDF_OK);
    ck_assert_int_eq(end_redrive(s, "o1", "other", STORE_CRASHED), NDF_OK);
    ck_assert_int_eq(finish(s, "many", "p", STORE_FAILED, NULL), NDF_OK);
    store_close(s);

    /* processes claiming at once: one wins */
    race_one_winner(redrive_many);
    ck_assert_int_eq(raw_int(dbpath, "SELECT count(*) FROM executions WHERE redrive_of = 'many'"),
                     1);
}
END_TEST

/* ------------------------------------------------------------------ */
/* rollback: the claim, its refusals, the end, a claim given back */

START_TEST(test_rollback_claim)
{
    store *s = open_default();
    ck_assert_int_eq(finish(s, "ok1", "p", STORE_SUCCEEDED, NULL), NDF_OK);
    ck_assert_int_eq(finish(s, "bad1", "p", STORE_FAILED, NULL), NDF_OK);
    uint64_t counted = executions_of(s, "p");
    store_status was = STORE_RUNNING;
    char *msg = (char *)"unset";
    ck_assert_int_eq(store_rollback_claim(s, "ok1", "claimed", &was, &msg), NDF_OK);
    ck_assert_int_eq(was, STORE_SUCCEEDED);
    ck_assert_ptr_null(msg);
    store_exec e;
    ck_assert_int_eq(store_get(s, "ok1", &e), NDF_OK);
    ck_assert_int_eq(e.status, STORE_ROLLED_BACK);
    ck_assert_str_eq(e.message, "claimed");
    store_exec_free(&e);
    /* a second claim, while it is rolled back and after */
    ck_assert_int_eq(store_rollback_claim(s, "ok1", "x", NULL, NULL), NDF_ERR_INVALID);
    ck_assert_msg(strstr(err_msg(), "already rolled back: claimed"), "%s", err_msg());
    store_node undone = {.path = (char *)"work", .state = NDF_STATE_ROLLED_BACK,
                         .message = (char *)"undone by a rollback"};
    ck_assert_int_eq(store_rollback_end(s, "ok1", STORE_ROLLED_BACK, "rolled back", &undone, 1),
                     NDF_OK);
    ck_assert_int_eq(store_get(s, "ok1", &e), NDF_OK);
    ck_assert_int_eq(e.status, STORE_ROLLED_BACK);
    ck_assert_str_eq(e.message, "rolled back");
    ck_assert_str_eq(e.nodes[1].path, "work");
    ck_assert_int_eq(e.nodes[1].state, NDF_STATE_ROLLED_BACK);
    ck_assert_str_eq(e.nodes[1].message, "undone by a rollback");
    ck_assert_int_eq(e.nodes[0].state, NDF_STATE_COMPLETED); /* the rest is kept */
    ck_assert_int_eq(e.nodes[1].exit_status, 0);
    store_exec_free(&e);
    ck_assert_int_eq(store_rollback_claim(s, "ok1", "x", NULL, NULL), NDF_ERR_INVALID);
    /* the learning counts stay as the run ended */
    ck_assert_uint_eq(executions_of(s, "p"), counted);
    ck_assert_int_eq(store_check(s), NDF_OK);

    /* an end with no claim */
    ck_assert_int_eq(store_rollback_end(s, "bad1", STORE_ROLLED_BACK, "x", NULL, 0),
                     NDF_ERR_NOT_FOUND);
    /* a claim given back: the status and message it had */
    ck_assert_int_eq(store_rollback_claim(s, "bad1", "claimed", &was, &msg), NDF_OK);
    ck_assert_int_eq(was, STORE_FAILED);
    ck_assert_str_eq(msg, "step 'work' failed: exit status 3");
    ck_assert_int_eq(store_rollback_end(s, "bad1", was, msg, NULL, 0), NDF_OK);
    free(msg);
    ck_assert_int_eq(store_get(s, "bad1", &e), NDF_OK);
    ck_assert_int_eq(e.status, STORE_FAILED);
    ck_assert_str_eq(e.message, "step 'work' failed: exit status 3");
    store_exec_free(&e);
    /* a failed rollback leaves it FAILED: claimable again */
    ck_assert_int_eq(store_rollback_claim(s, "bad1", "claimed", NULL, NULL), NDF_OK);
    ck_assert_int_eq(store_rollback_end(s, "bad1", STORE_FAILED, "rollback failed at 'work'", NULL, 0),
                     NDF_OK);
    ck_assert_int_eq(store_rollback_claim(s, "bad1", "again", NULL, NULL), NDF_OK);

    /* refusals, each with its reason */
    ck_assert_int_eq(store_rollback_claim(s, "nosuch", "x", NULL, NULL), NDF_ERR_NOT_FOUND);
    e = make_exec("run1", "p", STORE_RUNNING, NULL);
    ck_assert_int_eq(store_begin(s, &e), NDF_OK);
    store_exec_free(&e);
    ck_assert_int_eq(store_rollback_claim(s, "run1", "x", NULL, NULL), NDF_ERR_INVALID);
    ck_assert_msg(strstr(err_msg(), "still running"), "%s", err_msg());
    e = make_exec("sub1", "p", STORE_SUCCEEDED, NULL);
    e.parent_id = xstrdup("ok1");
    ck_assert_int_eq(store_finish(s, &e, NULL), NDF_OK);
    store_exec_free(&e);
    ck_assert_int_eq(store_rollback_claim(s, "sub1", "x", NULL, NULL), NDF_ERR_INVALID);
    ck_assert_msg(strstr(err_msg(), "sub-pattern of ok1"), "%s", err_msg());
    ck_assert_int_eq(finish(s, "ref1", "p", STORE_REFUSED, NULL), NDF_OK);
    ck_assert_int_eq(store_rollback_claim(s, "ref1", "x", NULL, NULL), NDF_ERR_INVALID);
    ck_assert_msg(strstr(err_msg(), "never ran"), "%s", err_msg());
    /* a refusal is the caller's fault, not a storage fault */
    store_stats st;
    store_get_stats(s, &st);
    ck_assert_int_eq(st.degraded, 0);
    ck_assert_int_eq(finish(s, "many", "p", STORE_SUCCEEDED, NULL), NDF_OK);
    store_close(s);

    /* processes claiming at once: one wins */
    race_one_winner(claim_many);
}
END_TEST

static int claim_or_redrive(store *cs, int c)
{
    if (c % 2)
        return store_rollback_claim(cs, "rd2", "claimed", NULL, NULL);
    char id[16];
    snprintf(id, sizeof id, "race%d", c);
    return begin_redrive(cs, id, "orig");
}

/* A redriven execution cannot be rolled back, and no execution of a
 * chain of redrives can be redriven while one of them is being rolled
 * back; a claim and a redrive racing: never both. */
START_TEST(test_rollback_redriven)
{
    store *s = open_default();
    ck_assert_int_eq(finish(s, "orig", "p", STORE_FAILED, NULL), NDF_OK);
    ck_assert_int_eq(begin_redrive(s, "rd1", "orig"), NDF_OK);
    ck_assert_int_eq(end_redrive(s, "rd1", "orig", STORE_FAILED), NDF_OK);
    ck_assert_int_eq(store_rollback_claim(s, "orig", "x", NULL, NULL), NDF_ERR_INVALID);
    ck_assert_msg(strstr(err_msg(), "execution orig was redriven as rd1"), "%s", err_msg());
    store_exec e;
    ck_assert_int_eq(store_get(s, "orig", &e), NDF_OK);
    ck_assert_int_eq(e.status, STORE_FAILED); /* left as it was */
    store_exec_free(&e);

    store_status was;
    char *msg = NULL;
    ck_assert_int_eq(store_rollback_claim(s, "rd1", "claimed", &was, &msg), NDF_OK);
    ck_assert_int_eq(begin_redrive(s, "rd2", "rd1"), NDF_ERR_INVALID);
    ck_assert_msg(strstr(err_msg(), "execution rd1 is being rolled back"), "%s", err_msg());
    /* the original too: rd1's undo actions undo the work it reused */
    ck_assert_int_eq(begin_redrive(s, "rd2", "orig"), NDF_ERR_INVALID);
    ck_assert_msg(strstr(err_msg(), "rd1, of the same chain of redrives, is being rolled back"),
                  "%s", err_msg());
    ck_assert_int_eq(store_get(s, "rd2", &e), NDF_ERR_NOT_FOUND);
    ck_assert_int_eq(store_rollback_end(s, "rd1", was, msg, NULL, 0), NDF_OK);
    free(msg);
    ck_assert_int_eq(begin_redrive(s, "rd2", "orig"), NDF_OK); /* the claim given back */
    ck_assert_int_eq(end_redrive(s, "rd2", "orig", STORE_FAILED), NDF_OK);
    ck_assert_int_eq(store_rollback_claim(s, "rd1", "x", NULL, NULL), NDF_ERR_INVALID);
    ck_assert_msg(strstr(err_msg(), "execution rd1 was redriven as rd2"), "%s", err_msg());
    store_close(s);

    /* processes at once: half claim rd2 for a rollback, half redrive the
     * original (its chain's newest is rd2): one of all of them wins */
    race_one_winner(claim_or_redrive);
}
END_TEST

/* ------------------------------------------------------------------ */
/* step processes left by a dead ndf */

/* A process group leader running sleep with NDF_STEP=`token`. */
static pid_t spawn_step(const char *token)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        setpgid(0, 0);
        char env[128];
        snprintf(env, sizeof env, "NDF_STEP=%s", token);
        char *const envp[] = {env, NULL};
        execle("/bin/sleep", "sleep", "30", (char *)NULL, envp);
        _exit(127);
    }
    setpgid(pid, pid);
    /* wait until it runs sleep with its environment (after exec) */
    for (int i = 0; i < 500; i++) {
        char path[64], buf[256] = "";
        snprintf(path, sizeof path, "/proc/%ld/cmdline", (long)pid);
        FILE *f = fopen(path, "r");
        if (f) {
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            buf[n] = 0;
            if (!strcmp(buf, "sleep"))
                break;
        }
        usleep(10000);
    }
    return pid;
}

/* A pid that was just used and is certainly dead. */
static pid_t dead_pid(void)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(0);
    waitpid(pid, NULL, 0);
    return pid;
}

START_TEST(test_step_processes_recovered)
{
    store *s = open_default();
    pid_t mine = spawn_step("ck-tok-1");
    pid_t other = spawn_step("ck-tok-other");
    store_exec e = make_exec("withkids", "p", STORE_RUNNING, NULL);
    e.pid = dead_pid();
    e.nodes[1].start = e.start + 0.125; /* the last the store hears of it */
    ck_assert_int_eq(store_begin(s, &e), NDF_OK);
    ck_assert_int_eq(store_process(s, "withkids", mine, store_pid_start_time(mine), "ck-tok-1"),
                     NDF_OK);
    /* not its own: a token it does not carry, a start time that is not its */
    ck_assert_int_eq(store_process(s, "withkids", other, 12345, "ck-tok-1"), NDF_OK);
    ck_assert_int_eq(store_process(s, "withkids", 999999, 1, "gone"), NDF_OK);
    ck_assert_int_eq(store_process(s, "withkids", 1, 1, "x"), NDF_ERR_INVALID);
    /* a finished execution's rows go with it */
    store_exec done = make_exec("done", "p", STORE_RUNNING, NULL);
    ck_assert_int_eq(store_begin(s, &done), NDF_OK);
    ck_assert_int_eq(store_process(s, "done", other, store_pid_start_time(other), "ck-tok-other"),
                     NDF_OK);
    done.status = STORE_SUCCEEDED;
    ck_assert_int_eq(store_finish(s, &done, NULL), NDF_OK); /* commits the queue before it */
    ck_assert_int_eq(raw_int(dbpath, "SELECT count(*) FROM step_processes WHERE exec_id = 'done'"),
                     0);
    ck_assert_int_eq(
        raw_int(dbpath, "SELECT count(*) FROM step_processes WHERE exec_id = 'withkids'"), 3);

    size_t n;
    ck_assert_int_eq(store_recover(s, &n), NDF_OK);
    ck_assert_uint_eq(n, 1);
    int status;
    ck_assert_int_eq(waitpid(mine, &status, 0), mine);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status %#x", status);
    /* the other group is not its own: left alone */
    ck_assert_int_eq(waitpid(other, &status, WNOHANG), 0);
    kill(-other, SIGKILL);
    waitpid(other, &status, 0);
    ck_assert_int_eq(
        raw_int(dbpath, "SELECT count(*) FROM step_processes WHERE exec_id = 'withkids'"), 0);

    store_exec got;
    ck_assert_int_eq(store_get(s, "withkids", &got), NDF_OK);
    ck_assert_int_eq(got.status, STORE_CRASHED);
    ck_assert_msg(fabs(got.end - (e.start + 0.125)) < 0.01, "end %f, want %f", got.end,
                  e.start + 0.125);
    ck_assert_msg(fabs(got.duration - 0.125) < 0.01, "duration %f", got.duration);
    store_exec_free(&got);
    store_exec_free(&e);
    store_exec_free(&done);
    store_close(s);
}
END_TEST

/* A rollback's claim names its holder; crash recovery makes the claim of
 * a holder that died FAILED "rollback interrupted" and kills the undo
 * processes it left, and leaves a live holder's claim and another host's
 * alone. */
START_TEST(test_rollback_claim_recovered)
{
    store *s = open_default();
    ck_assert_int_eq(finish(s, "dead1", "p", STORE_SUCCEEDED, NULL), NDF_OK);
    ck_assert_int_eq(finish(s, "live1", "p", STORE_SUCCEEDED, NULL), NDF_OK);
    ck_assert_int_eq(finish(s, "other1", "p", STORE_SUCCEEDED, NULL), NDF_OK);
    store_close(s);
    pid_t undo = spawn_step("ck-undo-1");

    /* a holder that dies holding its claim, an undo of it running */
    pid_t k = fork();
    ck_assert_int_ge(k, 0);
    if (k == 0) {
        store *cs;
        if (open_store(NULL, &cs) != NDF_OK)
            _exit(10);
        if (store_rollback_claim(cs, "dead1", "being rolled back", NULL, NULL) != NDF_OK)
            _exit(11);
        if (store_process(cs, "dead1", undo, store_pid_start_time(undo), "ck-undo-1") != NDF_OK)
            _exit(12);
        store_close(cs); /* writes what is queued; the claim stays */
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(k, &status, 0), k);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "holder: %#x", status);
    char *q = xasprintf("SELECT count(*) FROM rollback_claims WHERE exec_id = 'dead1'"
                        " AND pid = %ld AND pid_start > 0 AND host <> '' AND was_status = "
                        "'SUCCEEDED'",
                        (long)k);
    ck_assert_int_eq(raw_int(dbpath, q), 1);
    free(q);
    ck_assert_int_eq(raw_int(dbpath, "SELECT count(*) FROM step_processes WHERE exec_id = 'dead1'"),
                     1);

    /* a live holder, which ends its rollback when told */
    int held[2], told[2];
    ck_assert_int_eq(pipe(held), 0);
    ck_assert_int_eq(pipe(told), 0);
    pid_t live = fork();
    ck_assert_int_ge(live, 0);
    if (live == 0) {
        close(held[0]);
        close(told[1]);
        store *cs;
        char b = 'x';
        if (open_store(NULL, &cs) != NDF_OK)
            _exit(10);
        if (store_rollback_claim(cs, "live1", "live claim", NULL, NULL) != NDF_OK)
            _exit(11);
        (void)!write(held[1], &b, 1);
        if (read(told[0], &b, 1) != 0)
            _exit(12);
        int rc = store_rollback_end(cs, "live1", STORE_ROLLED_BACK, "rolled back", NULL, 0);
        store_close(cs);
        _exit(rc == NDF_OK ? 0 : 13);
    }
    close(held[1]);
    close(told[0]);
    char b;
    ck_assert_int_eq(read(held[0], &b, 1), 1);

    /* another host's claim, its holder's pid dead here */
    raw_exec(dbpath, "UPDATE executions SET status = 'ROLLED_BACK' WHERE id = 'other1'");
    q = xasprintf("INSERT INTO rollback_claims (exec_id, host, pid, boot_id, pid_start, time,"
                  " was_status) VALUES ('other1', 'elsewhere.invalid', %ld, NULL, 1, 0,"
                  " 'SUCCEEDED')",
                  (long)dead_pid());
    raw_exec(dbpath, q);
    free(q);

    s = open_default(); /* recovers on open: count it by hand after */
    store_exec e;
    ck_assert_int_eq(store_get(s, "dead1", &e), NDF_OK);
    ck_assert_int_eq(e.status, STORE_FAILED);
    char *want = xasprintf("rollback interrupted: process %ld on ", (long)k);
    ck_assert_msg(e.message && strncmp(e.message, want, strlen(want)) == 0, "%s", e.message);
    free(want);
    ck_assert_msg(strstr(e.message, "died before recording its end (it had ended SUCCEEDED; its "
                                    "undo actions may have run in part); 'ndf rollback dead1' "
                                    "runs the undo actions again"),
                  "%s", e.message);
    ck_assert_int_eq(e.nodes[1].state, NDF_STATE_COMPLETED); /* the nodes as they were */
    store_exec_free(&e);
    ck_assert_int_eq(waitpid(undo, &status, 0), undo);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "undo: %#x", status);
    ck_assert_int_eq(raw_int(dbpath, "SELECT count(*) FROM rollback_claims WHERE exec_id = 'dead1'"),
                     0);
    ck_assert_int_eq(raw_int(dbpath, "SELECT count(*) FROM step_processes WHERE exec_id = 'dead1'"),
                     0);
    size_t n = 99;
    ck_assert_int_eq(store_recover(s, &n), NDF_OK);
    ck_assert_uint_eq(n, 0); /* done once */

    /* the live holder's and the other host's claims are kept */
    ck_assert_int_eq(store_get(s, "live1", &e), NDF_OK);
    ck_assert_int_eq(e.status, STORE_ROLLED_BACK);
    ck_assert_str_eq(e.message, "live claim");
    store_exec_free(&e);
    ck_assert_int_eq(store_get(s, "other1", &e), NDF_OK);
    ck_assert_int_eq(e.status, STORE_ROLLED_BACK);
    store_exec_free(&e);
    ck_assert_int_eq(raw_int(dbpath, "SELECT count(*) FROM rollback_claims"), 2);

    /* the interrupted one may be rolled back again */
    store_status was;
    ck_assert_int_eq(store_rollback_claim(s, "dead1", "again", &was, NULL), NDF_OK);
    ck_assert_int_eq(was, STORE_FAILED);
    ck_assert_int_eq(store_rollback_end(s, "dead1", STORE_ROLLED_BACK, "rolled back", NULL, 0),
                     NDF_OK);
    ck_assert_int_eq(raw_int(dbpath, "SELECT count(*) FROM rollback_claims WHERE exec_id = 'dead1'"),
                     0);

    close(told[1]); /* the live holder ends its rollback */
    ck_assert_int_eq(waitpid(live, &status, 0), live);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "live holder: %#x", status);
    close(held[0]);
    ck_assert_int_eq(store_get(s, "live1", &e), NDF_OK);
    ck_assert_int_eq(e.status, STORE_ROLLED_BACK);
    ck_assert_str_eq(e.message, "rolled back");
    store_exec_free(&e);
    ck_assert_int_eq(raw_int(dbpath, "SELECT count(*) FROM rollback_claims"), 1);
    /* retention leaves an execution being rolled back */
    store_cleanup_result res;
    ck_assert_int_eq(store_cleanup(s, 0, 1.0, now_wall() + 1e6, &res), NDF_OK);
    ck_assert_int_eq(store_get(s, "live1", &e), NDF_ERR_NOT_FOUND);
    ck_assert_int_eq(store_get(s, "other1", &e), NDF_OK);
    store_exec_free(&e);
    store_close(s);
}
END_TEST

/* A redrive resuming an execution whose completed step a later redrive
 * of its chain had undone by its rollback is refused (its work is gone),
 * and so is one after such a rollback was interrupted (what it undid is
 * not known); --from-start reuses nothing and runs. */
START_TEST(test_redrive_after_chain_rollback)
{
    store *s = open_default();
    const char *orig[] = {"u-orig", "i-orig"};
    for (int i = 0; i < 2; i++) {
        store_exec e = make_exec(orig[i], "p", STORE_FAILED, NULL);
        e.nodes[1].state = NDF_STATE_COMPLETED; /* its step did its work; the run failed after */
        ck_assert_int_eq(store_finish(s, &e, NULL), NDF_OK);
        store_exec_free(&e);
    }
    /* redriven, the redrive failed, then rolled back: 'work' undone */
    ck_assert_int_eq(begin_redrive_as(s, "u-rd", "u-orig", 1), NDF_OK);
    ck_assert_int_eq(end_redrive(s, "u-rd", "u-orig", STORE_FAILED), NDF_OK);
    store_status was;
    ck_assert_int_eq(store_rollback_claim(s, "u-rd", "claimed", &was, NULL), NDF_OK);
    store_node undone = {0};
    undone.path = (char *)"work";
    undone.state = NDF_STATE_ROLLED_BACK;
    undone.message = (char *)"undone by a rollback";
    ck_assert_int_eq(store_rollback_end(s, "u-rd", STORE_ROLLED_BACK, "rolled back", &undone, 1),
                     NDF_OK);
    ck_assert_int_eq(begin_redrive_as(s, "u-2", "u-orig", 1), NDF_ERR_INVALID);
    ck_assert_msg(strstr(err_msg(), "execution u-orig cannot be resumed: step 'work' it "
                                    "completed was undone since by the rollback of u-rd") &&
                      strstr(err_msg(), "--from-start"),
                  "%s", err_msg());
    store_exec e;
    ck_assert_int_eq(store_get(s, "u-2", &e), NDF_ERR_NOT_FOUND);
    ck_assert_int_eq(begin_redrive_as(s, "u-2", "u-orig", 0), NDF_OK); /* --from-start */
    ck_assert_int_eq(end_redrive(s, "u-2", "u-orig", STORE_FAILED), NDF_OK);

    /* the redrive's rollback interrupted: what it undid is not known */
    ck_assert_int_eq(begin_redrive_as(s, "i-rd", "i-orig", 1), NDF_OK);
    ck_assert_int_eq(end_redrive(s, "i-rd", "i-orig", STORE_FAILED), NDF_OK);
    ck_assert_int_eq(store_rollback_claim(s, "i-rd", "claimed", &was, NULL), NDF_OK);
    ck_assert_int_eq(store_rollback_end(s, "i-rd", STORE_FAILED,
                                        "rollback interrupted by signal at 'work'", NULL, 0),
                     NDF_OK);
    ck_assert_int_eq(begin_redrive_as(s, "i-2", "i-orig", 1), NDF_ERR_INVALID);
    ck_assert_msg(strstr(err_msg(), "the rollback of i-rd"), "%s", err_msg());
    /* an execution whose later redrive was not rolled back resumes */
    ck_assert_int_eq(finish(s, "n-orig", "p", STORE_FAILED, NULL), NDF_OK);
    ck_assert_int_eq(begin_redrive_as(s, "n-rd", "n-orig", 1), NDF_OK);
    ck_assert_int_eq(end_redrive(s, "n-rd", "n-orig", STORE_FAILED), NDF_OK);
    ck_assert_int_eq(begin_redrive_as(s, "n-2", "n-orig", 1), NDF_OK);
    store_close(s);
}
END_TEST

/* A store of schema 7 as the release before the claims table left it: a
 * claim is only the execution's message.  Opened by this build, each
 * becomes a claim row, so a dead holder's is recovered (a zombie's too),
 * a live one's kept, another host's left alone, and retention and the
 * redrive refusal see them. */
START_TEST(test_rollback_claim_migrated)
{
    char host[256] = "";
    ck_assert_int_eq(gethostname(host, sizeof host - 1), 0);
    store *s = open_default();
    ck_assert_int_eq(finish(s, "old-dead", "p", STORE_SUCCEEDED, NULL), NDF_OK);
    ck_assert_int_eq(finish(s, "old-live", "p", STORE_SUCCEEDED, NULL), NDF_OK);
    ck_assert_int_eq(finish(s, "old-zombie", "p", STORE_SUCCEEDED, NULL), NDF_OK);
    ck_assert_int_eq(finish(s, "old-other", "p", STORE_SUCCEEDED, NULL), NDF_OK);
    ck_assert_int_eq(finish(s, "old-done", "p", STORE_SUCCEEDED, NULL), NDF_OK);
    ck_assert_int_eq(finish(s, "old-ends", "p", STORE_SUCCEEDED, NULL), NDF_OK);
    store_close(s);
    pid_t undo = spawn_step("ck-undo-old");
    pid_t live = fork();
    ck_assert_int_ge(live, 0);
    if (live == 0) {
        pause();
        _exit(0);
    }
    pid_t live2 = fork(); /* ends its rollback after the migration */
    ck_assert_int_ge(live2, 0);
    if (live2 == 0) {
        pause();
        _exit(0);
    }
    pid_t zombie = fork(); /* exits, not reaped until the end */
    ck_assert_int_ge(zombie, 0);
    if (zombie == 0)
        _exit(0);
    for (int i = 0; i < 500 && !store_pid_zombie(zombie); i++)
        usleep(10000);
    ck_assert(store_pid_zombie(zombie));
    ck_assert(!store_pid_zombie(live));
    /* a pid no process can have is dead, not a process group's */
    ck_assert(!store_process_alive(host, "", host, (long)INT_MAX + 1, NULL, 0));
    ck_assert(!store_process_alive(host, "", host, LONG_MAX, NULL, 0));
    ck_assert(store_process_alive(host, "", host, (long)live, NULL, 0));

    /* back to schema 7, with the claims as that release wrote them */
    raw_exec(dbpath, "DROP TABLE rollback_claims");
    raw_exec(dbpath, pg_base ? "UPDATE ndf_meta SET value = '7' WHERE key = 'schema_version'"
                             : "PRAGMA user_version = 7");
    struct {
        const char *id, *host;
        long pid;
    } old[] = {{"old-dead", host, (long)dead_pid()},
               {"old-live", host, (long)live},
               {"old-zombie", host, (long)zombie},
               {"old-other", "elsewhere.invalid", (long)dead_pid()},
               {"old-ends", host, (long)live2}};
    for (size_t i = 0; i < sizeof old / sizeof *old; i++) {
        char *q = xasprintf("UPDATE executions SET status = 'ROLLED_BACK', message = 'being "
                            "rolled back by ndf process %ld on %s' WHERE id = '%s'",
                            old[i].pid, old[i].host, old[i].id);
        raw_exec(dbpath, q);
        free(q);
    }
    /* one that ended: not a claim */
    raw_exec(dbpath, "UPDATE executions SET status = 'ROLLED_BACK', message = 'rolled back: 1 "
                     "node(s) undone' WHERE id = 'old-done'");
    char *q = xasprintf("INSERT INTO step_processes (exec_id, pgid, pid_start, token) VALUES"
                        " ('old-dead', %ld, %lld, 'ck-undo-old')",
                        (long)undo, store_pid_start_time(undo));
    raw_exec(dbpath, q);
    free(q);

    s = open_default(); /* migrates, then recovers */
    ck_assert_int_eq(raw_int(dbpath, pg_base ? "SELECT value::int FROM ndf_meta WHERE key ="
                                               " 'schema_version'"
                                             : "PRAGMA user_version"),
                     STORE_SCHEMA_VERSION);
    store_exec e;
    const char *gone[] = {"old-dead", "old-zombie"};
    for (size_t i = 0; i < 2; i++) {
        ck_assert_int_eq(store_get(s, gone[i], &e), NDF_OK);
        ck_assert_int_eq(e.status, STORE_FAILED);
        ck_assert_msg(e.message && strstr(e.message, "rollback interrupted: process ") &&
                          strstr(e.message, "(an older ndf) died before recording its end") &&
                          strstr(e.message, "the status it had before was not recorded"),
                      "%s", e.message);
        ck_assert_int_eq(e.nodes[1].state, NDF_STATE_COMPLETED);
        store_exec_free(&e);
    }
    int status;
    ck_assert_int_eq(waitpid(undo, &status, 0), undo); /* its undo process killed */
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "undo: %#x", status);
    ck_assert_int_eq(store_get(s, "old-live", &e), NDF_OK);
    ck_assert_int_eq(e.status, STORE_ROLLED_BACK);
    store_exec_free(&e);
    q = xasprintf("SELECT count(*) FROM rollback_claims WHERE exec_id = 'old-live' AND pid = %ld"
                  " AND host = '%s' AND boot_id IS NULL AND was_status = 'FAILED'",
                  (long)live, host);
    ck_assert_int_eq(raw_int(dbpath, q), 1);
    free(q);
    ck_assert_int_eq(raw_int(dbpath, "SELECT count(*) FROM rollback_claims"), 3);
    ck_assert_int_eq(store_get(s, "old-done", &e), NDF_OK);
    ck_assert_int_eq(e.status, STORE_ROLLED_BACK);
    store_exec_free(&e);

    /* the live one is a claim: no second rollback, no redrive, kept */
    ck_assert_int_eq(store_rollback_claim(s, "old-live", "x", NULL, NULL), NDF_ERR_INVALID);
    ck_assert_int_eq(begin_redrive(s, "rd-live", "old-live"), NDF_ERR_INVALID);
    ck_assert_msg(strstr(err_msg(), "execution old-live is being rolled back"), "%s", err_msg());
    store_cleanup_result res;
    ck_assert_int_eq(store_cleanup(s, 0, 1.0, now_wall() + 1e6, &res), NDF_OK);
    ck_assert_int_eq(store_get(s, "old-live", &e), NDF_OK);
    store_exec_free(&e);
    ck_assert_int_eq(store_get(s, "old-done", &e), NDF_ERR_NOT_FOUND);

    /* its holder gone, the next recovery ends it; the status it had is
     * said unknown */
    kill(live, SIGKILL);
    ck_assert_int_eq(waitpid(live, &status, 0), live);
    /* the older ndf that held old-ends records its end, which knows
     * nothing of the claim row, and exits: what it recorded stands */
    raw_exec(dbpath, "UPDATE executions SET status = 'ROLLED_BACK', message = 'rolled back: 1 "
                     "node(s) undone (it had ended SUCCEEDED)' WHERE id = 'old-ends'");
    kill(live2, SIGKILL);
    ck_assert_int_eq(waitpid(live2, &status, 0), live2);
    size_t n = 0;
    ck_assert_int_eq(store_recover(s, &n), NDF_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(store_get(s, "old-live", &e), NDF_OK);
    ck_assert_int_eq(e.status, STORE_FAILED);
    ck_assert_msg(strstr(e.message, "the status it had before was not recorded"), "%s",
                  e.message);
    store_exec_free(&e);
    ck_assert_int_eq(store_get(s, "old-ends", &e), NDF_OK);
    ck_assert_int_eq(e.status, STORE_ROLLED_BACK);
    ck_assert_str_eq(e.message, "rolled back: 1 node(s) undone (it had ended SUCCEEDED)");
    store_exec_free(&e);
    ck_assert_int_eq(raw_int(dbpath, "SELECT count(*) FROM rollback_claims"), 1); /* other */
    ck_assert_int_eq(waitpid(zombie, &status, 0), zombie);
    store_close(s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* faults */

static void expect_open_fails(const char *needle)
{
    store *s = NULL;
    int rc = store_open(dir, NULL, &s);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(rc, NDF_ERR_IO);
    ck_assert_msg(strstr(err_msg(), needle) != NULL, "'%s' not in: %s", needle, err_msg());
}

START_TEST(test_fault_missing_directory_created)
{
    /* three missing levels */
    snprintf(dir, sizeof dir, "%s/x/y/z", scratch);
    store *s = open_default();
    ck_assert_int_eq(finish(s, "m", "p", STORE_SUCCEEDED, NULL), NDF_OK);
    store_close(s);
}
END_TEST

START_TEST(test_fault_symlink)
{
    mkdir_p(dir);
    char target[800];
    snprintf(target, sizeof target, "%s/elsewhere.db", scratch);
    ck_assert_int_eq(symlink(target, dbpath), 0);
    expect_open_fails("symbolic link");
    ck_assert_ptr_nonnull(strstr(err_msg(), dbpath));
    ck_assert_int_eq(access(target, F_OK), -1); /* nothing created there */
    /* the same for the WAL file beside a good database */
    unlink(dbpath);
    store *s = open_default();
    store_close(s);
    char wal[800];
    snprintf(wal, sizeof wal, "%s-wal", dbpath);
    unlink(wal);
    ck_assert_int_eq(symlink(target, wal), 0);
    expect_open_fails("symbolic link");
}
END_TEST

START_TEST(test_fault_fifo)
{
    mkdir_p(dir);
    ck_assert_int_eq(mkfifo(dbpath, 0600), 0);
    expect_open_fails("FIFO");
}
END_TEST

START_TEST(test_fault_directory_in_place)
{
    mkdir_p(dbpath);
    expect_open_fails("a directory");
    /* and the storage directory itself being a file */
    rm_rf(dbpath);
    rm_rf(dir);
    write_file(dir, "x", 1);
    store *s = NULL;
    ck_assert_int_ne(store_open(dir, NULL, &s), NDF_OK);
    ck_assert_ptr_nonnull(strstr(err_msg(), dir));
}
END_TEST

START_TEST(test_fault_corrupt)
{
    mkdir_p(dir);
    char junk[8192];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)(i * 7 + 3);
    write_file(dbpath, junk, sizeof junk);
    expect_open_fails("corrupt");
    ck_assert_ptr_nonnull(strstr(err_msg(), "no backup"));
    /* with a backup, the message names it, and restore brings it back */
    unlink(dbpath);
    store *s = open_default();
    ck_assert_int_eq(finish(s, "b1", "p", STORE_SUCCEEDED, NULL), NDF_OK);
    char *bk;
    ck_assert_int_eq(store_backup(s, &bk), NDF_OK);
    store_close(s);
    write_file(dbpath, junk, sizeof junk);
    expect_open_fails(bk);
    ck_assert_int_eq(store_restore(dir, NULL, bk), NDF_OK);
    s = open_default();
    ck_assert_int_eq(executions_of(s, "p"), 1);
    ck_assert_uint_eq(count_runs(s, "p"), 1);
    store_close(s);
    /* the corrupt file was kept aside, not deleted */
    DIR *d = opendir(dir);
    int aside = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        aside += strncmp(de->d_name, "ndf.db.corrupt-", 15) == 0 && !strchr(de->d_name + 15, '-');
    closedir(d);
    ck_assert_int_eq(aside, 1);
    free(bk);
}
END_TEST

START_TEST(test_fault_truncated)
{
    store *s = open_default();
    char id[32];
    char big[4000];
    memset(big, 'q', sizeof big);
    for (int i = 0; i < 300; i++) {
        store_exec e = make_exec("", "p", STORE_SUCCEEDED, NULL);
        snprintf(id, sizeof id, "t%d", i);
        free(e.id);
        e.id = xstrdup(id);
        free(e.message);
        e.message = xstrndup(big, sizeof big - 1);
        ck_assert_int_eq(store_finish(s, &e, NULL), NDF_OK);
        store_exec_free(&e);
    }
    store_close(s); /* checkpoints the WAL into the file */
    struct stat st;
    ck_assert_int_eq(stat(dbpath, &st), 0);
    ck_assert_int_eq(truncate(dbpath, st.st_size / 2), 0);
    /* either the open or a full read says "corrupt": never a silent answer */
    s = NULL;
    int rc = store_open(dir, NULL, &s);
    if (rc == NDF_OK) {
        store_exec *v;
        size_t n;
        store_query q = {NULL, -1, 0, 100000, 0, NULL};
        rc = store_runs(s, &q, &v, &n);
        if (rc == NDF_OK) {
            store_exec_array_free(v, n);
            rc = store_check(s);
        }
        store_close(s);
    }
    ck_assert_int_eq(rc, NDF_ERR_IO);
    ck_assert_msg(strstr(err_msg(), "corrupt") != NULL, "%s", err_msg());
}
END_TEST

START_TEST(test_fault_readonly_directory)
{
    store *s = open_default();
    ck_assert_int_eq(finish(s, "r1", "p", STORE_SUCCEEDED, NULL), NDF_OK);
    store_close(s);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* root ignores permissions: become nobody to see them */
        chmod(scratch, 0755);
        chmod(dir, 0555);
        char parent[600];
        snprintf(parent, sizeof parent, "%s/state", scratch);
        chmod(parent, 0755);
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(3);
        store *cs = NULL;
        int rc = store_open(dir, NULL, &cs);
        if (rc != NDF_ERR_IO || cs)
            _exit(1);
        if (!strstr(err_msg(), dir) || !strstr(err_msg(), "not writable"))
            _exit(2);
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    chmod(dir, 0700);
    /* nothing lost */
    s = open_default();
    ck_assert_int_eq(executions_of(s, "p"), 1);
    store_close(s);
}
END_TEST

START_TEST(test_fault_directory_removed_while_open)
{
    store *s = open_default();
    ck_assert_int_eq(finish(s, "before", "p", STORE_SUCCEEDED, NULL), NDF_OK);
    store_exec got;
    ck_assert_int_eq(store_get(s, "before", &got), NDF_OK); /* the reader is open */
    store_exec_free(&got);
    /* removed: recreated from the copy still open, nothing lost */
    rm_rf(dir);
    ck_assert_int_eq(finish(s, "after", "p", STORE_SUCCEEDED, NULL), NDF_OK);
    struct stat sb;
    ck_assert_int_eq(stat(dbpath, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0600);
    ck_assert_int_eq(executions_of(s, "p"), 2);
    ck_assert_int_eq(store_get(s, "before", &got), NDF_OK);
    store_exec_free(&got);
    ck_assert_uint_eq(count_runs(s, "p"), 2);
    store_stats st;
    store_get_stats(s, &st);
    ck_assert_int_eq(st.degraded, 0);
    ck_assert_int_eq(store_reset_stats(s, "p"), NDF_OK); /* the maintenance path too */
    store_close(s);
    s = open_default(); /* what a later process finds */
    ck_assert_uint_eq(count_runs(s, "p"), 2);
    ck_assert_int_eq(store_check(s), NDF_OK);
    /* removed, and a file where the directory was: not ours to replace */
    rm_rf(dir);
    write_file(dir, "x", 1);
    int rc = finish(s, "lost", "p", STORE_SUCCEEDED, NULL);
    ck_assert_int_eq(rc, NDF_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err_msg(), dbpath));
    ck_assert_ptr_nonnull(strstr(err_msg(), "removed or replaced"));
    store_get_stats(s, &st);
    ck_assert_int_eq(st.degraded, 1);
    ck_assert_ptr_nonnull(strstr(st.last_error, "removed or replaced"));
    ck_assert(st.last_error_time > 0);
    ck_assert_int_eq(st.schema, STORE_SCHEMA_VERSION);
    ck_assert_int_eq(store_reset_stats(s, "p"), NDF_ERR_IO);
    store_close(s);
    unlink(dir);
}
END_TEST

/* ------------------------------------------------------------------ */
/* outputs */

START_TEST(test_outputs_bounded_and_compressed)
{
    store *s = open_default();
    strbuf sb;
    sb_init(&sb);
    for (int i = 0; sb.len < 200000; i++)
        sb_printf(&sb, "line %d of the step's output\n", i);
    size_t total = sb.len;
    store_exec e = make_exec("o1", "p", STORE_SUCCEEDED, NULL);
    e.nodes[1].out[STORE_STDOUT] = sb.buf;
    e.nodes[1].outlen[STORE_STDOUT] = total;
    e.nodes[1].dropped[STORE_STDOUT] = 5;
    char err[] = "warning: x\n";
    e.nodes[1].out[STORE_STDERR] = err;
    e.nodes[1].outlen[STORE_STDERR] = strlen(err);
    ck_assert_int_eq(store_finish(s, &e, NULL), NDF_OK);
    e.nodes[1].out[STORE_STDOUT] = e.nodes[1].out[STORE_STDERR] = NULL;
    store_exec_free(&e);

    char *buf;
    size_t len;
    uint64_t dropped;
    ck_assert_int_eq(store_output(s, "o1", "work", STORE_STDOUT, &buf, &len, &dropped), NDF_OK);
    ck_assert_uint_eq(len, STORE_OUTPUT_LIMIT);
    ck_assert_uint_eq(dropped, total - STORE_OUTPUT_LIMIT + 5);
    ck_assert(memcmp(buf, sb.buf + total - len, len) == 0);
    ck_assert_int_eq(buf[len], 0);
    free(buf);
    ck_assert_int_eq(store_output(s, "o1", "work", STORE_STDERR, &buf, &len, &dropped), NDF_OK);
    ck_assert_str_eq(buf, err);
    ck_assert_uint_eq(dropped, 0);
    free(buf);
    /* a node that wrote nothing: empty; no such node: not found */
    ck_assert_int_eq(store_output(s, "o1", "", STORE_STDOUT, &buf, &len, NULL), NDF_OK);
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(buf, "");
    free(buf);
    ck_assert_int_eq(store_output(s, "o1", "nope", STORE_STDOUT, &buf, &len, NULL),
                     NDF_ERR_NOT_FOUND);
    ck_assert_int_eq(store_output(s, "zz", "work", STORE_STDOUT, &buf, &len, NULL),
                     NDF_ERR_NOT_FOUND);
    store_close(s);
    /* stored compressed */
    long long stored = raw_int(dbpath, "SELECT length(data) FROM outputs WHERE stream = 0");
    ck_assert_int_gt(stored, 0);
    ck_assert_int_lt(stored, STORE_OUTPUT_LIMIT / 4);
    sb_free(&sb);

    store_opts o;
    store_opts_default(&o);
    o.output_limit = 100;
    s = open_with(&o);
    e = make_exec("o2", "p", STORE_SUCCEEDED, NULL);
    char many[1000];
    memset(many, 'a', sizeof many);
    many[999] = 'z';
    e.nodes[1].out[STORE_LOG] = many;
    e.nodes[1].outlen[STORE_LOG] = sizeof many;
    ck_assert_int_eq(store_finish(s, &e, NULL), NDF_OK);
    e.nodes[1].out[STORE_LOG] = NULL;
    store_exec_free(&e);
    ck_assert_int_eq(store_output(s, "o2", "work", STORE_LOG, &buf, &len, &dropped), NDF_OK);
    ck_assert_uint_eq(len, 100);
    ck_assert_uint_eq(dropped, 900);
    ck_assert_int_eq(buf[99], 'z');
    free(buf);

    /* an output the caller compressed (the record's older part, joined by
     * ztail_finish) is stored as it is, not cut to output_limit: its
     * producer bounded it */
    e = make_exec("o3", "p", STORE_SUCCEEDED, NULL);
    char text[5000];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (char)('a' + i % 23);
    uLongf zl = compressBound(sizeof text);
    unsigned char *zb = xmalloc(zl);
    ck_assert_int_eq(compress2(zb, &zl, (const Bytef *)text, sizeof text, 1), Z_OK);
    e.nodes[1].out[STORE_STDOUT] = many; /* ignored beside zout */
    e.nodes[1].outlen[STORE_STDOUT] = sizeof text;
    e.nodes[1].zout[STORE_STDOUT] = zb; /* store_exec_free frees it */
    e.nodes[1].zoutlen[STORE_STDOUT] = zl;
    e.nodes[1].dropped[STORE_STDOUT] = 7;
    ck_assert_int_eq(store_finish(s, &e, NULL), NDF_OK);
    e.nodes[1].out[STORE_STDOUT] = NULL;
    store_exec_free(&e);
    ck_assert_int_eq(store_output(s, "o3", "work", STORE_STDOUT, &buf, &len, &dropped), NDF_OK);
    ck_assert_uint_eq(len, sizeof text);
    ck_assert_uint_eq(dropped, 7);
    ck_assert(memcmp(buf, text, sizeof text) == 0);
    free(buf);
    store_close(s);
}
END_TEST

/* An output handed over as a reader (the record's spilled tail) is
 * copied into the row piece by piece, over the row progress wrote or as a
 * new row; what is read back is exactly the newest bytes kept, with the
 * counts given. */
/* What store_output_each() handed out, piece by piece. */
typedef struct pieces {
    char *buf;
    size_t len, biggest;
    int calls, stop_after;
} pieces;

static int collect_piece(void *arg, const char *buf, size_t n)
{
    pieces *p = arg;
    ck_assert_uint_gt(n, 0);
    p->buf = xrealloc(p->buf, p->len + n);
    memcpy(p->buf + p->len, buf, n);
    p->len += n;
    if (n > p->biggest)
        p->biggest = n;
    p->calls++;
    return p->stop_after && p->calls == p->stop_after ? NDF_ERR_CANCELLED : NDF_OK;
}

START_TEST(test_outputs_streamed)
{
    store *s = open_default();
    size_t limit = 3 * ZTAIL_SEGMENT + 11, n = 7 * ZTAIL_SEGMENT + 5;
    unsigned char *in = xmalloc(n);
    uint64_t x = 88172645463325252u;
    for (size_t i = 0; i < n; i++) { /* incompressible */
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        in[i] = (unsigned char)(x >> 24);
    }
    store_exec e = make_exec("st1", "p", STORE_RUNNING, NULL);
    ck_assert_int_eq(store_begin(s, &e), NDF_OK);
    store_node pn = e.nodes[1];
    char early[] = "early\n";
    pn.out[STORE_STDOUT] = early;
    pn.outlen[STORE_STDOUT] = 6;
    ck_assert_int_eq(store_progress(s, "st1", &pn), NDF_OK);
    for (int round = 0; round < 2; round++) {
        const char *id = round ? "st2" : "st1";
        if (round) {
            store_exec_free(&e);
            e = make_exec(id, "p", STORE_SUCCEEDED, NULL);
        }
        ztail *z = ztail_new(limit);
        ztail_add(z, (const char *)in, n);
        e.status = STORE_SUCCEEDED;
        e.nodes[1].state = e.nodes[0].state = NDF_STATE_COMPLETED;
        e.nodes[0].end = e.nodes[1].end = now_wall();
        ck_assert_int_eq(ztail_reader_open(z, "new", 3, 6, &e.nodes[1].zsrc[STORE_STDOUT]), 0);
        ztail_free(z); /* the reader outlives its tail */
        e.nodes[1].outlen[STORE_STDOUT] = limit + 3;
        e.nodes[1].dropped[STORE_STDOUT] = n - limit;
        ck_assert_msg(store_finish(s, &e, NULL) == NDF_OK, "%s", err_msg());
        ztail_reader_free(e.nodes[1].zsrc[STORE_STDOUT]);
        e.nodes[1].zsrc[STORE_STDOUT] = NULL;
        char *buf;
        size_t len;
        uint64_t dropped;
        ck_assert_int_eq(store_output(s, id, "work", STORE_STDOUT, &buf, &len, &dropped),
                         NDF_OK);
        ck_assert_uint_eq(len, limit + 3);
        ck_assert_uint_eq(dropped, n - limit);
        ck_assert(memcmp(buf, in + n - limit, limit) == 0);
        ck_assert(memcmp(buf + limit, "new", 3) == 0);
        /* the same piece by piece, from an offset, the newest bytes, and
         * stopped by its callback */
        int64_t froms[] = {0, 1, (int64_t)ZTAIL_SEGMENT + 7, (int64_t)(limit + 2), (int64_t)(limit + 3),
                           -5, -(int64_t)(2 * ZTAIL_SEGMENT), -(int64_t)(limit + 100)};
        for (size_t f = 0; f < sizeof froms / sizeof *froms; f++) {
            pieces pc = {0};
            size_t l2 = 0;
            uint64_t d2 = 0;
            ck_assert_int_eq(store_output_each(s, id, "work", STORE_STDOUT, froms[f], collect_piece,
                                               &pc, &l2, &d2),
                             NDF_OK);
            size_t start = froms[f] >= 0 ? (size_t)froms[f]
                           : (size_t)-froms[f] >= len ? 0 : len - (size_t)-froms[f];
            ck_assert_uint_eq(l2, len);
            ck_assert_uint_eq(d2, dropped);
            ck_assert_uint_eq(pc.len, len - start);
            ck_assert_uint_le(pc.biggest, STORE_OUTPUT_PIECE);
            ck_assert(pc.len == 0 || memcmp(pc.buf, buf + start, pc.len) == 0);
            free(pc.buf);
        }
        pieces stop = {.stop_after = 2};
        ck_assert_int_eq(store_output_each(s, id, "work", STORE_STDOUT, 0, collect_piece, &stop,
                                           NULL, NULL),
                         NDF_ERR_CANCELLED);
        ck_assert_int_eq(stop.calls, 2);
        free(stop.buf);
        pieces none = {0};
        ck_assert_int_eq(store_output_each(s, id, "work", STORE_STDERR, 0, collect_piece, &none,
                                           NULL, NULL),
                         NDF_OK);
        ck_assert_int_eq(none.calls, 0);
        ck_assert_int_eq(store_output_each(s, id, "nope", STORE_STDOUT, 0, collect_piece, &none,
                                           NULL, NULL),
                         NDF_ERR_NOT_FOUND);
        free(buf);
    }
    store_exec_free(&e);
    free(in);
    store_close(s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* retention */

START_TEST(test_retention)
{
    store_opts o;
    store_opts_default(&o);
    o.history_limit = 10;
    store *s = open_with(&o);
    char id[32];
    for (int i = 0; i < 25; i++) {
        snprintf(id, sizeof id, "h%02d", i);
        ck_assert_int_eq(finish(s, id, "p", STORE_SUCCEEDED, NULL), NDF_OK);
    }
    ck_assert_uint_eq(count_runs(s, "p"), 10);
    ck_assert_int_eq(executions_of(s, "p"), 25);
    store_exec got;
    ck_assert_int_eq(store_get(s, "h24", &got), NDF_OK);
    store_exec_free(&got);
    ck_assert_int_eq(store_get(s, "h14", &got), NDF_ERR_NOT_FOUND);
    ck_assert_int_eq(store_check(s), NDF_OK);

    /* cleanup: a tighter limit, then age */
    store_cleanup_result res;
    ck_assert_int_eq(store_cleanup(s, 4, 0, now_wall(), &res), NDF_OK);
    ck_assert_uint_eq(res.executions, 6);
    ck_assert_uint_eq(count_runs(s, "p"), 4);
    for (int i = 0; i < 3; i++) {
        store_exec e = make_exec("", "old", STORE_FAILED, NULL);
        snprintf(id, sizeof id, "old%d", i);
        free(e.id);
        e.id = xstrdup(id);
        e.start = now_wall() - 10000;
        e.end = e.start + 1;
        ck_assert_int_eq(store_finish(s, &e, NULL), NDF_OK);
        store_exec_free(&e);
    }
    /* a running one is never pruned */
    store_exec run = make_exec("running", "old", STORE_RUNNING, NULL);
    run.start = now_wall() - 10000;
    ck_assert_int_eq(store_begin(s, &run), NDF_OK);
    store_exec_free(&run);
    ck_assert_int_eq(store_cleanup(s, 0, 5000, now_wall(), &res), NDF_OK);
    ck_assert_uint_eq(res.executions, 3);
    ck_assert_uint_eq(count_runs(s, "old"), 1);
    ck_assert_uint_eq(count_runs(s, "p"), 4);
    ck_assert_int_eq(executions_of(s, "old"), 3);
    ck_assert_int_eq(store_check(s), NDF_OK);

    /* space comes back: incompressible outputs, then removed */
    for (int i = 0; i < 20; i++) {
        store_exec e = make_exec("", "big", STORE_SUCCEEDED, NULL);
        snprintf(id, sizeof id, "big%d", i);
        free(e.id);
        e.id = xstrdup(id);
        char *noise = xmalloc(60000);
        unsigned x = 12345u + (unsigned)i;
        for (int k = 0; k < 60000; k++) {
            x = x * 1103515245u + 12345u;
            noise[k] = (char)(x >> 16);
        }
        e.nodes[1].out[STORE_STDOUT] = noise;
        e.nodes[1].outlen[STORE_STDOUT] = 60000;
        ck_assert_int_eq(store_finish(s, &e, NULL), NDF_OK);
        store_exec_free(&e);
    }
    /* history_limit kept 10 of "big" and "p" has 4: 9 + 3 go */
    ck_assert_int_eq(store_cleanup(s, 1, 0, now_wall(), &res), NDF_OK);
    ck_assert_uint_eq(res.executions, 12);
    /* SQLite gives the pages back at once; PostgreSQL's autovacuum later */
    if (!pg_base)
        ck_assert_uint_gt(res.pages, 100);
    ck_assert_int_eq(store_check(s), NDF_OK);
    store_close(s);
}
END_TEST

START_TEST(test_reset_and_remove)
{
    store *s = open_default();
    ck_assert_int_eq(finish(s, "a1", "p", STORE_SUCCEEDED, "d"), NDF_OK);
    ck_assert_int_eq(finish(s, "a2", "p", STORE_FAILED, "d"), NDF_OK);
    learning_state l;
    ck_assert_int_eq(store_learning(s, "p", &l), NDF_OK);
    double created = l.created;
    ck_assert(created > 0);
    learning_free(&l);
    ck_assert_int_eq(store_reset_stats(s, "p"), NDF_OK);
    ck_assert_int_eq(store_learning(s, "p", &l), NDF_OK);
    ck_assert_uint_eq(l.executions, 0);
    ck_assert_uint_eq(l.ndomains, 0);
    ck_assert(l.score == 0.5);
    ck_assert(l.created == created);
    learning_free(&l);
    ck_assert_uint_eq(count_runs(s, "p"), 2);
    ck_assert_int_eq(store_check(s), NDF_OK);
    ck_assert_int_eq(finish(s, "a3", "p", STORE_SUCCEEDED, NULL), NDF_OK);
    ck_assert_int_eq(executions_of(s, "p"), 1);
    ck_assert_int_eq(store_check(s), NDF_OK);
    ck_assert_int_eq(store_reset_stats(s, "none"), NDF_ERR_NOT_FOUND);

    ck_assert_int_eq(store_remove_pattern(s, "p"), NDF_OK);
    ck_assert_int_eq(store_learning(s, "p", &l), NDF_ERR_NOT_FOUND);
    ck_assert_uint_eq(count_runs(s, "p"), 0);
    ck_assert_int_eq(store_remove_pattern(s, "p"), NDF_ERR_NOT_FOUND);
    store_close(s);
    ck_assert_int_eq(raw_int(dbpath, "SELECT count(*) FROM nodes"), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* backups */

static int is_gzip(const char *path)
{
    unsigned char m[2] = {0, 0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t n = fread(m, 1, 2, f);
    fclose(f);
    return n == 2 && m[0] == 0x1f && m[1] == 0x8b;
}

START_TEST(test_backup_restore_rotation)
{
    store_opts o;
    store_opts_default(&o);
    o.backups = 2;
    store *s = open_with(&o);
    char id[32];
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof id, "b%d", i);
        ck_assert_int_eq(finish(s, id, "p", STORE_SUCCEEDED, NULL), NDF_OK);
    }
    char *b1;
    ck_assert_int_eq(store_backup(s, &b1), NDF_OK);
    ck_assert(is_gzip(b1));
    char *newest = store_newest_backup(dir);
    ck_assert_str_eq(newest, b1);
    free(newest);
    for (int i = 3; i < 5; i++) {
        snprintf(id, sizeof id, "b%d", i);
        ck_assert_int_eq(finish(s, id, "p", STORE_SUCCEEDED, NULL), NDF_OK);
    }
    ck_assert_int_eq(executions_of(s, "p"), 5);
    /* restore while this store is open: it sees the restored contents */
    ck_assert_msg(store_restore(dir, &o, b1) == NDF_OK, "%s", err_msg());
    ck_assert_int_eq(executions_of(s, "p"), 3);
    ck_assert_uint_eq(count_runs(s, "p"), 3);
    ck_assert_int_eq(store_check(s), NDF_OK);
    /* and goes on writing */
    ck_assert_int_eq(finish(s, "b9", "p", STORE_SUCCEEDED, NULL), NDF_OK);
    ck_assert_int_eq(executions_of(s, "p"), 4);

    /* rotation keeps the newest two */
    char *b2, *b3;
    ck_assert_int_eq(store_backup(s, &b2), NDF_OK);
    ck_assert_int_eq(store_backup(s, &b3), NDF_OK);
    ck_assert_int_eq(access(b1, F_OK), -1);
    ck_assert_int_eq(access(b2, F_OK), 0);
    ck_assert_int_eq(access(b3, F_OK), 0);
    newest = store_newest_backup(dir);
    ck_assert_str_eq(newest, b3);
    free(newest);
    store_close(s);

    /* a file that is not an ndf backup is refused, and nothing changes */
    char junk[800];
    snprintf(junk, sizeof junk, "%s/junk.db", scratch);
    raw_exec(junk, "CREATE TABLE foo (x)");
    ck_assert_int_eq(store_restore(dir, &o, junk), NDF_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err_msg(), "not an ndf database"));
    s = open_with(&o);
    ck_assert_int_eq(executions_of(s, "p"), 4);
    store_close(s);
    free(b1);
    free(b2);
    free(b3);
}
END_TEST

/* ------------------------------------------------------------------ */
/* exports */

static void yaml_check(const char *text, size_t len)
{
    yaml_parser_t p;
    yaml_event_t ev;
    ck_assert(yaml_parser_initialize(&p));
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int done = 0, scalars = 0;
    while (!done) {
        ck_assert_msg(yaml_parser_parse(&p, &ev), "YAML: %s", p.problem);
        scalars += ev.type == YAML_SCALAR_EVENT;
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    ck_assert_int_gt(scalars, 20);
}

START_TEST(test_export_formats)
{
    store *s = open_default();
    ck_assert_int_eq(finish(s, "e1", "exp", STORE_SUCCEEDED, "web"), NDF_OK);
    store_exec e = make_exec("e2", "exp", STORE_FAILED, "a,\"b\"");
    free(e.message);
    e.message = xstrdup("bad \xff byte, \"quoted\"\nline");
    ck_assert_int_eq(store_finish(s, &e, NULL), NDF_OK);
    store_exec_free(&e);

    strbuf sb;
    sb_init(&sb);
    ck_assert_int_eq(store_export(s, "exp", STORE_FORMAT_JSON, &sb), NDF_OK);
    cJSON *doc = cJSON_Parse(sb.buf);
    ck_assert_ptr_nonnull(doc);
    cJSON *ex = cJSON_GetObjectItemCaseSensitive(doc, "executions");
    ck_assert_int_eq(cJSON_GetArraySize(ex), 2);
    cJSON *first = cJSON_GetArrayItem(ex, 0);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(first, "id")->valuestring, "e1");
    cJSON *ctx = cJSON_GetObjectItemCaseSensitive(first, "context");
    ck_assert(cJSON_IsObject(ctx));
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(ctx, "n")->valueint, 7);
    cJSON *learn = cJSON_GetObjectItemCaseSensitive(doc, "learning");
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(learn, "executions")->valueint, 2);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(first, "nodes")), 2);
    cJSON_Delete(doc);
    sb_free(&sb);

    sb_init(&sb);
    ck_assert_int_eq(store_export(s, "exp", STORE_FORMAT_CSV, &sb), NDF_OK);
    ck_assert(strncmp(sb.buf, "pattern,id,start,", 17) == 0);
    /* header + 2 records; the message's newline is inside quotes */
    int records = 0, quoted = 0;
    for (size_t i = 0; i < sb.len; i++) {
        if (sb.buf[i] == '"')
            quoted = !quoted;
        if (!quoted && sb.buf[i] == '\r' && sb.buf[i + 1] == '\n')
            records++;
    }
    ck_assert_int_eq(records, 3);
    ck_assert_ptr_nonnull(strstr(sb.buf, "\r\nexp,e1,"));
    ck_assert_ptr_nonnull(strstr(sb.buf, "work=COMPLETED:"));
    ck_assert_ptr_nonnull(strstr(sb.buf, "\"a,\"\"b\"\"\""));
    sb_free(&sb);

    sb_init(&sb);
    ck_assert_int_eq(store_export(s, "exp", STORE_FORMAT_YAML, &sb), NDF_OK);
    yaml_check(sb.buf, sb.len);
    ck_assert_ptr_nonnull(strstr(sb.buf, "\"e2\""));
    sb_free(&sb);

    sb_init(&sb);
    ck_assert_int_eq(store_export(s, "nothing", STORE_FORMAT_JSON, &sb), NDF_ERR_NOT_FOUND);
    sb_free(&sb);
    store_format f;
    ck_assert_int_eq(store_format_parse("yaml", &f), 0);
    ck_assert_int_eq(f, STORE_FORMAT_YAML);
    ck_assert_int_eq(store_format_parse("xml", &f), -1);
    store_close(s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* import of the old format */

/* Copies a file written by the previous release (tests/compat/storage-v1)
 * into the storage directory. */
static void legacy_fixture(const char *name)
{
    const char *src = getenv("top_srcdir");
    char *from = xasprintf("%s/tests/compat/storage-v1/%s", src ? src : ".", name);
    char *to = xasprintf("%s/%s", dir, name);
    FILE *in = fopen(from, "rb");
    ck_assert_msg(in != NULL, "%s: %s", from, strerror(errno));
    strbuf sb;
    sb_init(&sb);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        sb_add(&sb, buf, n);
    fclose(in);
    write_file(to, sb.buf, sb.len);
    sb_free(&sb);
    free(from);
    free(to);
}

START_TEST(test_import_legacy)
{
    mkdir_p(dir);
    legacy_fixture("legacy.json.gz");
    legacy_fixture("legacy.json.gz.1");
    legacy_fixture("other.v2.json.gz");
    legacy_fixture("plain.json");
    char bad[800];
    snprintf(bad, sizeof bad, "%s/broken.json.gz", dir);
    write_file(bad, "\x1f\x8bgarbage", 9);
    learning_state l;

    store *s = open_default(); /* imports on open */
    ck_assert_int_eq(store_learning(s, "legacy", &l), NDF_OK);
    ck_assert_uint_eq(l.executions, 5);
    ck_assert_uint_eq(l.successes, 4);
    ck_assert_uint_eq(l.ndomains, 1);
    ck_assert_str_eq(l.domains[0].domain, "web");
    ck_assert(l.created == 1690000000);
    learning_free(&l);
    /* history_limit 3 kept three entries: rows for them, two pruned */
    ck_assert_uint_eq(count_runs(s, "legacy"), 3);
    ck_assert_int_eq(executions_of(s, "other.v2"), 5);
    ck_assert_uint_eq(count_runs(s, "other.v2"), 0);
    ck_assert_int_eq(executions_of(s, "plain"), 5);
    ck_assert_msg(store_check(s) == NDF_OK, "%s", err_msg());
    store_exec *v;
    size_t n;
    store_query q = {"legacy", STORE_TIMED_OUT, 0, 0, 0, NULL};
    ck_assert_int_eq(store_runs(s, &q, &v, &n), NDF_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(v[0].origin, STORE_ORIGIN_EXTERNAL);
    ck_assert(v[0].start == 1700000002);
    store_exec got;
    ck_assert_int_eq(store_get(s, v[0].id, &got), NDF_OK);
    ck_assert_uint_eq(got.nnodes, 3);
    ck_assert_str_eq(got.nodes[1].path, "fetch");
    ck_assert_str_eq(got.nodes[2].path, "fetch#2");
    ck_assert_int_eq(got.nodes[2].state, NDF_STATE_TIMED_OUT);
    store_exec_free(&got);
    store_exec_array_free(v, n);
    store_close(s);

    /* the old files moved aside, nothing of them left in the directory */
    DIR *d = opendir(dir);
    int left = 0, moved_dir = 0;
    struct dirent *de;
    char legacy_dir[900] = "";
    while ((de = readdir(d))) {
        left += strstr(de->d_name, ".json") != NULL;
        if (!strncmp(de->d_name, "legacy-", 7)) {
            moved_dir++;
            snprintf(legacy_dir, sizeof legacy_dir, "%s/%s", dir, de->d_name);
        }
    }
    closedir(d);
    ck_assert_int_eq(left, 0);
    ck_assert_int_eq(moved_dir, 1);
    char *kept = xasprintf("%s/legacy.json.gz", legacy_dir);
    ck_assert_int_eq(access(kept, F_OK), 0);
    free(kept);
    /* the unreadable one too (storage.c's loader renamed it .corrupt-*) */
    d = opendir(legacy_dir);
    int broken = 0;
    while ((de = readdir(d)))
        broken += !strncmp(de->d_name, "broken.json.gz", 14);
    closedir(d);
    ck_assert_int_eq(broken, 1);

    /* a second open imports nothing again */
    s = open_default();
    ck_assert_int_eq(executions_of(s, "legacy"), 5);
    store_close(s);
}
END_TEST

START_TEST(test_names)
{
    store_status st;
    ck_assert_str_eq(store_status_name(STORE_TIMED_OUT), "TIMED_OUT");
    ck_assert_int_eq(store_status_parse("crashed", &st), 0);
    ck_assert_int_eq(st, STORE_CRASHED);
    ck_assert_int_eq(store_status_parse("bogus", &st), -1);
    store_origin o;
    ck_assert_str_eq(store_origin_name(STORE_ORIGIN_CTL), "ctl");
    ck_assert_int_eq(store_origin_parse("redrive", &o), 0);
    ck_assert_int_eq(o, STORE_ORIGIN_REDRIVE);
}
END_TEST

/* ------------------------------------------------------------------ */
/* PostgreSQL's own cases */

#ifdef HAVE_LIBPQ
START_TEST(test_pg_fresh_schema)
{
    store *s = open_default();
    ck_assert_int_eq(store_get_backend(s), STORE_BACKEND_POSTGRESQL);
    ck_assert_msg(strncmp(store_path(s), "postgresql://", 13) == 0, "%s", store_path(s));
    ck_assert_ptr_nonnull(strstr(store_path(s), pg_db));
    store_close(s);
    ck_assert_int_eq(raw_int(pg_db, "SELECT value::int FROM ndf_meta WHERE key = 'schema_version'"),
                     STORE_SCHEMA_VERSION);
    /* the eight of the SQLite store, ndf_meta, the work queue and its workers */
    ck_assert_int_eq(raw_int(pg_db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
                     12);
    /* timestamps keep their precision (double, not PostgreSQL's 4-byte REAL) */
    s = open_default();
    store_exec e = make_exec("t1", "p", STORE_SUCCEEDED, NULL);
    e.start = 1700000000.123456;
    ck_assert_int_eq(store_finish(s, &e, NULL), NDF_OK);
    store_exec_free(&e);
    store_exec got;
    ck_assert_int_eq(store_get(s, "t1", &got), NDF_OK);
    ck_assert(got.start == 1700000000.123456);
    store_exec_free(&got);
    store_close(s);
}
END_TEST

START_TEST(test_pg_refuse_newer_and_foreign)
{
    store_close(open_default());
    store *s = NULL;
    raw_exec(pg_db, "UPDATE ndf_meta SET value = '99' WHERE key = 'schema_version'");
    ck_assert_int_eq(open_store(NULL, &s), NDF_ERR_IO);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err_msg(), "newer ndf"), "%s", err_msg());
    raw_exec(pg_db, "UPDATE ndf_meta SET value = 'other' WHERE key = 'application'");
    ck_assert_int_eq(open_store(NULL, &s), NDF_ERR_IO);
    ck_assert_msg(strstr(err_msg(), "not an ndf database"), "%s", err_msg());
    /* tables of those names, but not ours: left alone */
    raw_exec(pg_db, "DROP TABLE ndf_meta");
    ck_assert_int_eq(open_store(NULL, &s), NDF_ERR_IO);
    ck_assert_msg(strstr(err_msg(), "not an ndf database"), "%s", err_msg());
    ck_assert_int_eq(raw_int(pg_db, "SELECT count(*) FROM pg_tables WHERE tablename = 'ndf_meta'"),
                     0);
}
END_TEST

START_TEST(test_pg_unreachable_and_secret)
{
    store_opts o;
    store_opts_default(&o);
    o.backend = STORE_BACKEND_POSTGRESQL;
    char ci[512];
    snprintf(ci, sizeof ci, "host=%s/no-such-dir port=5999 dbname=x password=hunter2secret",
             scratch);
    o.conninfo = ci;
    store *s = NULL;
    ck_assert_int_eq(store_open(dir, &o, &s), NDF_ERR_IO);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err_msg(), "cannot connect"), "%s", err_msg());
    ck_assert_msg(!strstr(err_msg(), "hunter2secret"), "password shown: %s", err_msg());
    /* a bare word is a service name, looked up in pg_service.conf */
    o.conninfo = "no_such_service_here";
    ck_assert_int_eq(store_open(dir, &o, &s), NDF_ERR_IO);
    ck_assert_msg(strstr(err_msg(), "no_such_service_here"), "%s", err_msg());
}
END_TEST

START_TEST(test_pg_backup_refused)
{
    store *s = open_default();
    char *path = (char *)"x";
    ck_assert_int_eq(store_backup(s, &path), NDF_ERR_INVALID);
    ck_assert_ptr_null(path);
    ck_assert_msg(strstr(err_msg(), "pg_dump"), "%s", err_msg());
    ck_assert_int_eq(store_import_legacy(s, dir, NULL), NDF_ERR_INVALID);
    store_opts o;
    store_opts_default(&o);
    use_backend(&o);
    ck_assert_int_eq(store_restore(dir, &o, "/nonexistent"), NDF_ERR_INVALID);
    store_close(s);
}
END_TEST

/* A connection the server ends (failover, restart, pg_terminate_backend)
 * is replaced: the next write and the next read succeed. */
START_TEST(test_pg_connection_lost)
{
    store *s = open_default();
    ck_assert_int_eq(finish(s, "c1", "p", STORE_SUCCEEDED, NULL), NDF_OK);
    ck_assert_int_eq(executions_of(s, "p"), 1);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
             " WHERE datname = '%s' AND pid <> pg_backend_pid()",
             pg_db);
    ck_assert_int_eq(raw_int("postgres", sql), 2); /* the writer and the reader */
    ck_assert_msg(finish(s, "c2", "p", STORE_SUCCEEDED, NULL) == NDF_OK, "%s", err_msg());
    ck_assert_int_eq(executions_of(s, "p"), 2);
    ck_assert_int_eq(store_check(s), NDF_OK);
    store_stats st;
    store_get_stats(s, &st);
    ck_assert_int_eq(st.degraded, 0);
    store_close(s);
}
END_TEST

/* Text PostgreSQL would refuse (invalid UTF-8) is recorded, not lost. */
START_TEST(test_pg_invalid_utf8)
{
    store *s = open_default();
    store_exec e = make_exec("u1", "p", STORE_FAILED, NULL);
    free(e.message);
    e.message = xstrdup("bad \xff\xfe bytes \xe2\x82 cut");
    ck_assert_msg(store_finish(s, &e, NULL) == NDF_OK, "%s", err_msg());
    store_exec_free(&e);
    store_exec got;
    ck_assert_int_eq(store_get(s, "u1", &got), NDF_OK);
    ck_assert_str_eq(got.message, "bad ?? bytes ?? cut");
    store_exec_free(&got);
    /* a step's result too: the record is kept, the bad bytes replaced */
    e = make_exec("u2", "p", STORE_SUCCEEDED, NULL);
    e.nodes[1].result = xstrdup("ok \xff");
    e.nodes[1].result_len = 4;
    ck_assert_msg(store_finish(s, &e, NULL) == NDF_OK, "%s", err_msg());
    store_exec_free(&e);
    ck_assert_int_eq(store_get(s, "u2", &got), NDF_OK);
    ck_assert_str_eq(got.nodes[1].result, "ok ?");
    store_exec_free(&got);
    store_close(s);
}
END_TEST
#endif

/* Run-time definitions: rows put, replaced, listed in the order they were
 * changed within a kind, removed; a missing row's removal is NOT_FOUND and
 * non-UTF-8 text is refused before it reaches the database. */
#ifdef HAVE_LIBPQ
/* libpq is loaded on first use: a missing library, or one without the
 * functions, is a storage error naming the file, never a crash; the real
 * one loads with every function resolved. */
START_TEST(test_pq_load)
{
    pq_api a;
    ck_assert_int_eq(pq_load_from("libndf-no-such-libpq.so.5", &a), NDF_ERR_IO);
    ck_assert_msg(strstr(err_msg(), "cannot load libndf-no-such-libpq.so.5") &&
                      strstr(err_msg(), "libpq5"),
                  "%s", err_msg());
    ck_assert_int_eq(pq_load_from("libz.so.1", &a), NDF_ERR_IO);
    ck_assert_msg(strstr(err_msg(), "libz.so.1 has no PQclear"), "%s", err_msg());
    ck_assert_int_eq(pq_load_from(NDF_LIBPQ_SONAME, &a), NDF_OK);
    ck_assert_ptr_nonnull(a.PQuser);
    ck_assert_ptr_nonnull(a.PQconnectdbParams);
    ck_assert_int_eq(pq_load(), NDF_OK);
    ck_assert_int_eq(pq_load(), NDF_OK);
    ck_assert_ptr_eq(pq_fn.PQclear, a.PQclear);
}
END_TEST
#endif

START_TEST(test_runtime_defs)
{
    store *s = open_default();
    store_def *rows;
    size_t n;
    ck_assert_int_eq(store_defs(s, &rows, &n), NDF_OK);
    ck_assert_uint_eq(n, 0);
    uint64_t v0, v;
    ck_assert_int_eq(store_defs_version(s, &v0), NDF_OK);
    store_def a = {(char *)STORE_DEF_PATTERN, (char *)"a", (char *)"patterns = ( { } );", 100.5,
                   1000};
    store_def b = {(char *)STORE_DEF_PATTERN, (char *)"b", (char *)"text b", 50, 1001};
    store_def t = {(char *)STORE_DEF_SETTING, (char *)"confidence.threshold", (char *)"0.8", 70, 0};
    ck_assert_int_eq(store_def_put(s, &a, 0), NDF_OK);
    ck_assert_int_eq(store_def_put(s, &b, 0), NDF_OK);
    ck_assert_int_eq(store_def_put(s, &t, 0), NDF_OK);
    a.text = (char *)"replaced";
    a.time = 200;
    ck_assert_int_eq(store_def_put(s, &a, 0), NDF_OK);
    /* every change moves the count, a replacement too */
    ck_assert_int_eq(store_defs_version(s, &v), NDF_OK);
    ck_assert_uint_eq(v, v0 + 4);
    ck_assert_int_eq(store_defs(s, &rows, &n), NDF_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(rows[0].kind, STORE_DEF_PATTERN);
    ck_assert_str_eq(rows[0].name, "b");
    ck_assert_str_eq(rows[1].name, "a");
    ck_assert_str_eq(rows[1].text, "replaced");
    ck_assert(rows[1].time == 200);
    ck_assert_int_eq(rows[1].uid, 1000);
    ck_assert_str_eq(rows[2].kind, STORE_DEF_SETTING);
    ck_assert_str_eq(rows[2].text, "0.8");
    store_defs_free(rows, n);
    ck_assert_int_eq(store_def_put(s, &b, 1), NDF_OK);
    ck_assert_int_eq(store_def_put(s, &b, 1), NDF_ERR_NOT_FOUND);
    store_def bad = {(char *)STORE_DEF_PATTERN, (char *)"c", (char *)"\xff\xfe", 1, 0};
    ck_assert_int_eq(store_def_put(s, &bad, 0), NDF_ERR_VALIDATION);
    /* a removal counts; a refused change does not */
    ck_assert_int_eq(store_defs_version(s, &v), NDF_OK);
    ck_assert_uint_eq(v, v0 + 5);
    store_close(s);
    /* they outlive the handle */
    s = open_default();
    ck_assert_int_eq(store_defs(s, &rows, &n), NDF_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(rows[0].name, "a");
    store_defs_free(rows, n);
    ck_assert_int_eq(store_defs_version(s, &v), NDF_OK);
    ck_assert_uint_eq(v, v0 + 5);
    store_close(s);
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create(pg_base ? "store (postgresql)" : "store (sqlite)");
    /* the contract of store.h, whatever the backend */
    TCase *tc = tcase_create("conformance");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_record_and_get);
    tcase_add_test(tc, test_step_results);
    tcase_add_test(tc, test_runtime_defs);
    tcase_add_test(tc, test_runs_query);
    tcase_add_test(tc, test_learning_disabled);
    tcase_add_test(tc, test_learning_all);
    tcase_add_test(tc, test_concurrent_processes);
    tcase_add_test(tc, test_check_detects_drift);
    tcase_add_test(tc, test_group_commit_threads);
    tcase_add_test(tc, test_ack_after_commit);
    tcase_add_test(tc, test_commit_failure_is_an_error);
    tcase_add_test(tc, test_hand_off);
    tcase_add_test(tc, test_waiters_commit);
    tcase_add_test(tc, test_crash_recovery);
    tcase_add_test(tc, test_redrive_claim);
    tcase_add_test(tc, test_rollback_claim);
    tcase_add_test(tc, test_rollback_redriven);
    tcase_add_test(tc, test_step_processes_recovered);
    tcase_add_test(tc, test_rollback_claim_recovered);
    tcase_add_test(tc, test_rollback_claim_migrated);
    tcase_add_test(tc, test_redrive_after_chain_rollback);
    tcase_add_test(tc, test_outputs_bounded_and_compressed);
    tcase_add_test(tc, test_outputs_streamed);
    tcase_add_test(tc, test_retention);
    tcase_add_test(tc, test_reset_and_remove);
    tcase_add_test(tc, test_export_formats);
    suite_add_tcase(s, tc);
    if (pg_base) {
#ifdef HAVE_LIBPQ
        TCase *pg = tcase_create("postgresql");
        tcase_add_checked_fixture(pg, setup, teardown);
        tcase_set_timeout(pg, 120);
        tcase_add_test(pg, test_pg_fresh_schema);
        tcase_add_test(pg, test_pg_refuse_newer_and_foreign);
        tcase_add_test(pg, test_pg_unreachable_and_secret);
        tcase_add_test(pg, test_pg_backup_refused);
        tcase_add_test(pg, test_pg_connection_lost);
        tcase_add_test(pg, test_pg_invalid_utf8);
        suite_add_tcase(s, pg);
#endif
        return s;
    }
    /* SQLite's file: its schema, faults of the file system, backups, import */
    TCase *lite = tcase_create("sqlite");
    tcase_add_checked_fixture(lite, setup, teardown);
    tcase_set_timeout(lite, 120);
    tcase_add_test(lite, test_backup_every);
    tcase_add_test(lite, test_backup_every_logs_once);
    tcase_add_test(lite, test_fresh_schema);
    tcase_add_test(lite, test_migrate_from_zero);
    tcase_add_test(lite, test_refuse_newer_and_foreign);
    tcase_add_test(lite, test_fault_missing_directory_created);
    tcase_add_test(lite, test_fault_symlink);
    tcase_add_test(lite, test_fault_fifo);
    tcase_add_test(lite, test_fault_directory_in_place);
    tcase_add_test(lite, test_fault_corrupt);
    tcase_add_test(lite, test_fault_truncated);
    tcase_add_test(lite, test_fault_readonly_directory);
    tcase_add_test(lite, test_fault_directory_removed_while_open);
    tcase_add_test(lite, test_backup_restore_rotation);
    tcase_add_test(lite, test_import_legacy);
#ifdef HAVE_LIBPQ
    tcase_add_test(lite, test_pq_load);
#endif
    suite_add_tcase(s, lite);
    return s;
}

int main(void)
{
    pg_base = getenv("NDF_TEST_PG_CONNINFO");
    if (pg_base && !*pg_base)
        pg_base = NULL;
#ifndef HAVE_LIBPQ
    if (pg_base) {
        fprintf(stderr, "NDF_TEST_PG_CONNINFO is set, but this build has no PostgreSQL backend\n");
        return 77;
    }
#endif
    SRunner *sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

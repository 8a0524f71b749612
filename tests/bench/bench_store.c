/* Benchmark of the store: durable executions per second of one-step
 * executions through the group-commit writer with 8 submitting threads,
 * sync = normal and full, beside a bare SQLite program doing the same
 * statements in transactions of the same sizes, in the same run; the
 * rate with 0, 10,000 and NDF_BENCH_LARGE (default 1,000,000) executions
 * already stored; `runs --limit 50` / get-one latency at that size; and the
 * registry's start-up reads of 10,000 patterns' learning state.
 * Figures are printed, never asserted.
 *
 * NDF_BENCH_EXECUTIONS (default 10000) executions per measurement, under
 * NDF_BENCH_DIR (default $top_builddir, else /tmp). */
#include "build-config.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>
#include <ndf/sdk.h>

#include "base/util.h"
#include "store/store.h"

static long env_long(const char *name, long def)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    long n = strtol(v, NULL, 10);
    return n >= 0 ? n : def;
}

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
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

static void die(const char *what)
{
    fprintf(stderr, "bench_store: %s: %s\n", what, err_msg());
    exit(1);
}

static void sql_die(sqlite3 *db, const char *what)
{
    fprintf(stderr, "bench_store: %s: %s\n", what, sqlite3_errmsg(db));
    exit(1);
}

static char base[512];
static long total; /* executions per measurement */

/* ------------------------------------------------------------------ */
/* through the store */

typedef struct worker {
    store *s;
    int index;
    long count;
    const char *prefix;
} worker;

static void *submit(void *arg)
{
    worker *w = arg;
    char id[64], root[] = "", step[] = "noop", pat[] = "noop";
    store_node nodes[2];
    memset(nodes, 0, sizeof nodes);
    nodes[0].path = root;
    nodes[0].kind = NDF_NODE_PATTERN;
    nodes[0].state = NDF_STATE_COMPLETED;
    nodes[0].exit_status = -1;
    nodes[1].path = step;
    nodes[1].seq = 1;
    nodes[1].kind = NDF_NODE_STEP;
    nodes[1].state = NDF_STATE_COMPLETED;
    nodes[1].exit_status = 0;
    for (long i = 0; i < w->count; i++) {
        snprintf(id, sizeof id, "%s-%d-%ld", w->prefix, w->index, i);
        store_exec e;
        memset(&e, 0, sizeof e);
        e.id = id;
        e.pattern = pat;
        e.status = STORE_SUCCEEDED;
        e.origin = STORE_ORIGIN_BATCH;
        e.start = now_wall();
        e.end = e.start + 0.0001;
        e.duration = 0.0001;
        e.learn = 1;
        nodes[0].start = nodes[1].start = e.start;
        nodes[0].end = nodes[1].end = e.end;
        e.nodes = nodes;
        e.nnodes = 2;
        if (store_finish(w->s, &e, NULL) != NDF_OK)
            die("store_finish");
    }
    return NULL;
}

/* Executions per second through the writer, 8 threads; *batch gets the
 * mean executions per transaction. */
static double run_store(const char *dir, store_sync sync, const char *prefix, double *batch)
{
    store_opts o;
    store_opts_default(&o);
    o.sync = sync;
    o.import_legacy = 0;
    store *s;
    if (store_open(dir, &o, &s) != NDF_OK)
        die("store_open");
    store_stats before, after;
    store_get_stats(s, &before);
    pthread_t th[8];
    worker w[8];
    double t0 = now_mono();
    for (int i = 0; i < 8; i++) {
        w[i] = (worker){s, i, total / 8 + (i < total % 8), prefix};
        pthread_create(&th[i], NULL, submit, &w[i]);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    double t = now_mono() - t0;
    store_get_stats(s, &after);
    *batch = (double)(after.executions - before.executions) /
             (double)(after.transactions - before.transactions);
    if (store_check(s) != NDF_OK)
        die("store_check");
    store_close(s);
    return (double)total / t;
}

/* ------------------------------------------------------------------ */
/* bare SQLite: the same statements, one thread, the same batch sizes */

static sqlite3_stmt *prep(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        sql_die(db, sql);
    return st;
}

static void step_reset(sqlite3 *db, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        sql_die(db, sqlite3_sql(st));
    sqlite3_reset(st);
}

static double run_bare(const char *dir, store_sync sync, double batch)
{
    /* the store's schema, created by the store */
    store *s;
    store_opts o;
    store_opts_default(&o);
    o.import_legacy = 0;
    if (store_open(dir, &o, &s) != NDF_OK)
        die("store_open");
    store_close(s);
    char *path = xasprintf("%s/%s", dir, STORE_DB_NAME);
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        sql_die(db, path);
    free(path);
    sqlite3_exec(
        db, sync == STORE_SYNC_FULL ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
        NULL, NULL, NULL);
    sqlite3_stmt *find = prep(db, "SELECT seq, status FROM executions WHERE id = ?1");
    sqlite3_stmt *ins = prep(db, "INSERT INTO executions (id, pattern, origin, status, host, pid,"
                                 " start_time, end_time, duration, counted) VALUES (?1, 'noop',"
                                 " 'batch', 'SUCCEEDED', 'h', 1, ?2, ?3, 0.0001, 1)");
    sqlite3_stmt *node = prep(db, "INSERT INTO nodes (exec_seq, path, seq, kind, state,"
                                  " start_time, end_time, attempt, exit_status) VALUES (?1, ?2,"
                                  " ?3, 'step', 'COMPLETED', ?4, ?5, 1, 0) ON CONFLICT"
                                  " (exec_seq, path) DO UPDATE SET state = excluded.state");
    sqlite3_stmt *load = prep(db, "SELECT executions, successes FROM patterns WHERE name = 'noop'");
    sqlite3_stmt *save = prep(db, "INSERT INTO patterns (name, executions, successes, score,"
                                  " alpha, beta) VALUES ('noop', ?1, ?2, 0.5, 1, 1) ON CONFLICT"
                                  " (name) DO UPDATE SET executions = excluded.executions,"
                                  " successes = excluded.successes");
    long per = batch >= 1 ? (long)(batch + 0.5) : 1;
    char id[64];
    double t0 = now_mono();
    for (long i = 0; i < total; i++) {
        if (i % per == 0)
            sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        snprintf(id, sizeof id, "bare-%ld", i);
        double now = now_wall();
        sqlite3_bind_text(find, 1, id, -1, SQLITE_TRANSIENT);
        step_reset(db, find);
        sqlite3_bind_text(ins, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_double(ins, 2, now);
        sqlite3_bind_double(ins, 3, now + 0.0001);
        step_reset(db, ins);
        sqlite3_int64 seq = sqlite3_last_insert_rowid(db);
        for (int k = 0; k < 2; k++) {
            sqlite3_bind_int64(node, 1, seq);
            sqlite3_bind_text(node, 2, k ? "noop" : "", -1, SQLITE_STATIC);
            sqlite3_bind_int(node, 3, k);
            sqlite3_bind_double(node, 4, now);
            sqlite3_bind_double(node, 5, now + 0.0001);
            step_reset(db, node);
        }
        sqlite3_int64 n = 0, ok = 0;
        if (sqlite3_step(load) == SQLITE_ROW) {
            n = sqlite3_column_int64(load, 0);
            ok = sqlite3_column_int64(load, 1);
        }
        sqlite3_reset(load);
        sqlite3_bind_int64(save, 1, n + 1);
        sqlite3_bind_int64(save, 2, ok + 1);
        step_reset(db, save);
        if (i % per == per - 1 || i == total - 1)
            if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
                sql_die(db, "COMMIT");
    }
    double t = now_mono() - t0;
    sqlite3_stmt *all[] = {find, ins, node, load, save};
    for (size_t i = 0; i < ARRAY_SIZE(all); i++)
        sqlite3_finalize(all[i]);
    sqlite3_close(db);
    return (double)total / t;
}

/* ------------------------------------------------------------------ */
/* history already stored */

/* Adds `n` ended executions of 50 other patterns (counted, with their
 * pattern rows kept exact) with bare inserts in large transactions. */
static void prefill(const char *dir, long n)
{
    store *s;
    store_opts o;
    store_opts_default(&o);
    o.import_legacy = 0;
    if (store_open(dir, &o, &s) != NDF_OK)
        die("store_open");
    store_close(s);
    char *path = xasprintf("%s/%s", dir, STORE_DB_NAME);
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        sql_die(db, path);
    free(path);
    sqlite3_exec(db, "PRAGMA synchronous = OFF", NULL, NULL, NULL);
    sqlite3_stmt *ins = prep(db, "INSERT INTO executions (id, pattern, origin, status, context,"
                                 " host, pid, start_time, end_time, duration, counted) VALUES"
                                 " (?1, ?2, 'run', 'SUCCEEDED', '{\"domain\":\"x\"}', 'h', 1,"
                                 " ?3, ?3, 0.001, 1)");
    sqlite3_stmt *node = prep(db, "INSERT INTO nodes (exec_seq, path, seq, kind, state,"
                                  " start_time, end_time) VALUES (?1, ?2, ?3, ?4, 'COMPLETED',"
                                  " ?5, ?5)");
    char id[64], pat[32];
    double t0 = now_wall() - (double)n;
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    for (long i = 0; i < n; i++) {
        snprintf(id, sizeof id, "pre-%ld", i);
        snprintf(pat, sizeof pat, "history%02ld", i % 50);
        sqlite3_bind_text(ins, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 2, pat, -1, SQLITE_TRANSIENT);
        sqlite3_bind_double(ins, 3, t0 + (double)i);
        step_reset(db, ins);
        sqlite3_int64 seq = sqlite3_last_insert_rowid(db);
        for (int k = 0; k < 2; k++) {
            sqlite3_bind_int64(node, 1, seq);
            sqlite3_bind_text(node, 2, k ? "step" : "", -1, SQLITE_STATIC);
            sqlite3_bind_int(node, 3, k);
            sqlite3_bind_text(node, 4, k ? "step" : "pattern", -1, SQLITE_STATIC);
            sqlite3_bind_double(node, 5, t0 + (double)i);
            step_reset(db, node);
        }
        if (i % 100000 == 99999) {
            sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
            sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
        }
    }
    sqlite3_exec(db,
                 "INSERT INTO patterns (name, executions, successes, score, alpha, beta)"
                 " SELECT pattern, count(*), count(*), 0.5, 1, 1 FROM executions"
                 " WHERE pattern LIKE 'history%' GROUP BY pattern ON CONFLICT (name) DO UPDATE"
                 " SET executions = excluded.executions, successes = excluded.successes",
                 NULL, NULL, NULL);
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        sql_die(db, "COMMIT");
    /* measure the steady state, not the checkpoint of the bulk load */
    sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    sqlite3_finalize(ins);
    sqlite3_finalize(node);
    sqlite3_close(db);
}

/* Mean milliseconds of `runs --limit 50` (all patterns, and one) and of
 * reading one execution with its nodes, on a store of `n` executions. */
static void latency(const char *dir, long n)
{
    store *s;
    store_opts o;
    store_opts_default(&o);
    o.import_legacy = 0;
    if (store_open(dir, &o, &s) != NDF_OK)
        die("store_open");
    const int reps = 200;
    store_exec *v;
    size_t cnt;
    double t0 = now_mono();
    for (int i = 0; i < reps; i++) {
        store_query q = {NULL, -1, 0, 50, 0, NULL};
        if (store_runs(s, &q, &v, &cnt) != NDF_OK)
            die("store_runs");
        store_exec_array_free(v, cnt);
    }
    double all = (now_mono() - t0) * 1000 / reps;
    t0 = now_mono();
    for (int i = 0; i < reps; i++) {
        store_query q = {"history07", -1, 0, 50, 0, NULL};
        if (store_runs(s, &q, &v, &cnt) != NDF_OK)
            die("store_runs");
        store_exec_array_free(v, cnt);
    }
    double one = (now_mono() - t0) * 1000 / reps;
    t0 = now_mono();
    unsigned x = 1;
    for (int i = 0; i < reps; i++) {
        char id[64];
        x = x * 1103515245u + 12345u;
        snprintf(id, sizeof id, "pre-%ld", n ? (long)(x % (unsigned)n) : 0);
        store_exec e;
        if (store_get(s, id, &e) != NDF_OK)
            die("store_get");
        store_exec_free(&e);
    }
    double get = (now_mono() - t0) * 1000 / reps;
    /* the first query of a process, as `ndf runs` pays it: open included */
    store_close(s);
    t0 = now_mono();
    if (store_open(dir, &o, &s) != NDF_OK)
        die("store_open");
    store_query q = {NULL, -1, 0, 50, 0, NULL};
    if (store_runs(s, &q, &v, &cnt) != NDF_OK)
        die("store_runs");
    store_exec_array_free(v, cnt);
    store_close(s);
    double cold = (now_mono() - t0) * 1000;
    printf("  at %ld stored executions:\n", n);
    printf("    runs --limit 50 (all patterns)      %8.3f ms\n", all);
    printf("    runs PATTERN --limit 50             %8.3f ms\n", one);
    printf("    status ID (one execution, nodes)    %8.3f ms\n", get);
    printf("    open + runs --limit 50 (one shot)   %8.3f ms\n", cold);
}

static void count_each(void *arg, const char *name, learning_state *st)
{
    (void)name;
    (void)st;
    (*(long *)arg)++;
}

/* What the registry's start-up reads: the learning state of `n` patterns,
 * one store_learning() each, from the patterns table only. */
static void startup_reads(const char *dir, long n)
{
    store *s;
    store_opts o;
    store_opts_default(&o);
    o.import_legacy = 0;
    if (store_open(dir, &o, &s) != NDF_OK)
        die("store_open");
    store_close(s);
    char *path = xasprintf("%s/%s", dir, STORE_DB_NAME);
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        sql_die(db, path);
    free(path);
    sqlite3_stmt *ins = prep(db, "INSERT INTO patterns (name, executions, successes, score,"
                                 " alpha, beta) VALUES (?1, 1000, 900, 0.9, 901, 101)");
    sqlite3_stmt *dom = prep(db, "INSERT INTO pattern_domains VALUES (?1, 'web', 1000, 900)");
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    char name[32];
    for (long i = 0; i < n; i++) {
        snprintf(name, sizeof name, "pattern%06ld", i);
        sqlite3_bind_text(ins, 1, name, -1, SQLITE_TRANSIENT);
        step_reset(db, ins);
        sqlite3_bind_text(dom, 1, name, -1, SQLITE_TRANSIENT);
        step_reset(db, dom);
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        sql_die(db, "COMMIT");
    sqlite3_finalize(ins);
    sqlite3_finalize(dom);
    sqlite3_close(db);
    double t0 = now_mono();
    if (store_open(dir, &o, &s) != NDF_OK)
        die("store_open");
    for (long i = 0; i < n; i++) {
        snprintf(name, sizeof name, "pattern%06ld", i);
        learning_state l;
        if (store_learning(s, name, &l) != NDF_OK)
            die("store_learning");
        learning_free(&l);
    }
    store_close(s);
    double each = (now_mono() - t0) * 1000;
    /* the same through store_learning_all(), as build_registry reads it */
    t0 = now_mono();
    if (store_open(dir, &o, &s) != NDF_OK)
        die("store_open");
    long seen = 0;
    if (store_learning_all(s, count_each, &seen) != NDF_OK || seen != n)
        die("store_learning_all");
    store_close(s);
    double bulk = (now_mono() - t0) * 1000;
    printf("\nregistry start-up reads, open + learning state of %ld patterns:\n"
           "  one store_learning() each: %.1f ms; store_learning_all(): %.1f ms\n",
           n, each, bulk);
}

/* bench_e2e.sh's helpers: the bare SQLite rate beside a measured one,
 * and a store filled for `ndf list`. */
static int helper(int argc, char **argv)
{
    log_set_level(-1);
    if (argc == 5 && !strcmp(argv[1], "bare")) {
        /* bare DIR normal|full PER_TXN: N executions (NDF_BENCH_EXECUTIONS) */
        total = env_long("NDF_BENCH_EXECUTIONS", 10000);
        double r = run_bare(argv[2], strcmp(argv[3], "full") ? STORE_SYNC_NORMAL : STORE_SYNC_FULL,
                            strtod(argv[4], NULL));
        printf("%.0f\n", r);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "startup")) {
        /* startup DIR: the registry's start-up reads alone */
        startup_reads(argv[2], 10000);
        return 0;
    }
    if (argc == 5 && !strcmp(argv[1], "fill")) {
        /* fill DIR NPATTERNS PER: patterns p000000.. with PER counted
         * executions each (a root and a step node), and their learning rows */
        long np = strtol(argv[3], NULL, 10), per = strtol(argv[4], NULL, 10);
        store *s;
        store_opts o;
        store_opts_default(&o);
        o.import_legacy = 0;
        if (store_open(argv[2], &o, &s) != NDF_OK)
            die("store_open");
        store_close(s);
        char *path = xasprintf("%s/%s", argv[2], STORE_DB_NAME);
        sqlite3 *db;
        if (sqlite3_open(path, &db) != SQLITE_OK)
            sql_die(db, path);
        free(path);
        sqlite3_exec(db, "PRAGMA synchronous = OFF", NULL, NULL, NULL);
        sqlite3_stmt *ins = prep(db, "INSERT INTO executions (id, pattern, origin, status,"
                                     " context, host, pid, start_time, end_time, duration,"
                                     " counted) VALUES (?1, ?2, 'run', 'SUCCEEDED',"
                                     " '{\"domain\":\"web\"}', 'h', 1, ?3, ?3, 0.001, 1)");
        sqlite3_stmt *node = prep(db, "INSERT INTO nodes (exec_seq, path, seq, kind, state,"
                                      " start_time, end_time) VALUES (?1, ?2, ?3, ?4,"
                                      " 'COMPLETED', ?5, ?5)");
        sqlite3_stmt *pat = prep(db, "INSERT INTO patterns (name, executions, successes, score,"
                                     " alpha, beta, created) VALUES (?1, ?2, ?2, 0.9, ?2, 1, ?3)");
        sqlite3_stmt *dom = prep(db, "INSERT INTO pattern_domains VALUES (?1, 'web', ?2, ?2)");
        char id[64], name[32];
        double t0 = now_wall() - (double)(np * per);
        long k = 0;
        sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
        for (long i = 0; i < np; i++) {
            snprintf(name, sizeof name, "p%06ld", i);
            for (long j = 0; j < per; j++, k++) {
                snprintf(id, sizeof id, "fill-%ld", k);
                sqlite3_bind_text(ins, 1, id, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(ins, 2, name, -1, SQLITE_TRANSIENT);
                sqlite3_bind_double(ins, 3, t0 + (double)k);
                step_reset(db, ins);
                sqlite3_int64 seq = sqlite3_last_insert_rowid(db);
                for (int n = 0; n < 2; n++) {
                    sqlite3_bind_int64(node, 1, seq);
                    sqlite3_bind_text(node, 2, n ? "n" : "", -1, SQLITE_STATIC);
                    sqlite3_bind_int(node, 3, n);
                    sqlite3_bind_text(node, 4, n ? "step" : "pattern", -1, SQLITE_STATIC);
                    sqlite3_bind_double(node, 5, t0 + (double)k);
                    step_reset(db, node);
                }
                if (k % 200000 == 199999) {
                    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
                    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
                }
            }
            if (per > 0) {
                sqlite3_bind_text(pat, 1, name, -1, SQLITE_TRANSIENT);
                sqlite3_bind_int64(pat, 2, per);
                sqlite3_bind_double(pat, 3, t0);
                step_reset(db, pat);
                sqlite3_bind_text(dom, 1, name, -1, SQLITE_TRANSIENT);
                sqlite3_bind_int64(dom, 2, per);
                step_reset(db, dom);
            }
        }
        if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
            sql_die(db, "COMMIT");
        sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
        sqlite3_stmt *all[] = {ins, node, pat, dom};
        for (size_t i = 0; i < ARRAY_SIZE(all); i++)
            sqlite3_finalize(all[i]);
        sqlite3_close(db);
        return 0;
    }
    fprintf(stderr, "usage: bench_store [bare DIR SYNC PER_TXN | fill DIR NPATTERNS PER |"
                    " startup DIR]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return helper(argc, argv);
    const char *top = getenv("NDF_BENCH_DIR");
    if (!top || !*top)
        top = getenv("top_builddir");
    snprintf(base, sizeof base, "%s/bench_store.XXXXXX", top && *top ? top : "/tmp");
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    total = env_long("NDF_BENCH_EXECUTIONS", 10000);
    if (total < 8)
        total = 8;
    long large = env_long("NDF_BENCH_LARGE", 1000000);
    log_set_level(-1);

    printf("store: %ld one-step executions, 8 submitting threads, group commit\n", total);
    printf("  %-7s %14s %10s %20s %7s\n", "sync", "store exec/s", "per txn", "bare SQLite exec/s",
           "ratio");
    static const store_sync modes[] = {STORE_SYNC_NORMAL, STORE_SYNC_FULL};
    for (size_t m = 0; m < 2; m++) {
        char *d1 = xasprintf("%s/store-%zu", base, m), *d2 = xasprintf("%s/bare-%zu", base, m);
        double batch;
        double r = run_store(d1, modes[m], "x", &batch);
        double b = run_bare(d2, modes[m], batch);
        printf("  %-7s %14.0f %10.1f %20.0f %7.2f\n", m ? "full" : "normal", r, batch, b, r / b);
        rm_rf(d1);
        rm_rf(d2);
        free(d1);
        free(d2);
    }

    printf("\nrate with history already stored (sync normal):\n");
    long sizes[] = {0, 10000, large};
    char *big = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
        if (i == 2 && (large <= 10000))
            break;
        char *d = xasprintf("%s/hist-%zu", base, i);
        double t0 = now_mono();
        prefill(d, sizes[i]);
        double fill = now_mono() - t0;
        double batch;
        double r = run_store(d, STORE_SYNC_NORMAL, "h", &batch);
        printf("  %8ld stored: %8.0f exec/s  (%.1f per txn; prefill %.1f s)\n", sizes[i], r, batch,
               fill);
        if (big) {
            rm_rf(big);
            free(big);
        }
        big = d;
    }
    printf("\nquery latency (mean of 200):\n");
    latency(big, sizes[ARRAY_SIZE(sizes) - 1] > 10000 ? large : 10000);
    rm_rf(big);
    free(big);
    char *sd = xasprintf("%s/startup", base);
    startup_reads(sd, 10000);
    rm_rf(sd);
    free(sd);
    rm_rf(base);
    return 0;
}

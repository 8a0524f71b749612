/* Benchmark of the store's two backends side by side: durable executions
 * per second of one-step no-op executions recorded through the
 * group-commit writer (8 submitting threads per process) by 1, 2 and 4
 * processes at once, each with its own store handle as separate hosts
 * would have, on SQLite (one file) and on PostgreSQL (one database on a
 * local server); then the invariant (counts equal rows) is checked.
 * Then the work queue: N processes (1, 2, 4) each claiming one item at a
 * time with FOR UPDATE SKIP LOCKED and recording a no-op execution for it
 * (bound to the claim, so the record also completes the item): items per
 * second through the whole cycle, and the latency of one claim, p50 and
 * p99.  Figures are printed, never asserted.
 *
 * NDF_BENCH_PG_CONNINFO: the server (tests/bench/store_pg.sh starts one
 * and sets it); NDF_BENCH_EXECUTIONS (default 10000) per measurement;
 * NDF_BENCH_DIR (default $top_builddir, else /tmp) for the SQLite files. */
#include "build-config.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <ndf/sdk.h>

#include "base/util.h"
#include "store/queue.h"
#include "store/store.h"

static long total;
static char base[512];
static const char *pg_server;

static void die(const char *what)
{
    fprintf(stderr, "bench_store_pg: %s: %s\n", what, err_msg());
    exit(1);
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

static void pg_admin(const char *sql)
{
    char *ci = xasprintf("%s dbname=postgres", pg_server);
    PGconn *c = PQconnectdb(ci);
    free(ci);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "bench_store_pg: %s", PQerrorMessage(c));
        exit(1);
    }
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "bench_store_pg: %s: %s", sql, PQresultErrorMessage(r));
        exit(1);
    }
    PQclear(r);
    PQfinish(c);
}

typedef struct worker {
    store *s;
    int proc, index;
    long count;
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
        snprintf(id, sizeof id, "p%d-%d-%ld", w->proc, w->index, i);
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

/* One process's share: open, say ready, wait for the start, record. */
static void child(const char *dir, const store_opts *o, int proc, long count, int ready, int go)
{
    store *s;
    if (store_open(dir, o, &s) != NDF_OK)
        die("store_open");
    char c = 'r';
    if (write(ready, &c, 1) != 1 || read(go, &c, 1) != 1)
        _exit(2);
    pthread_t th[8];
    worker w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (worker){s, proc, i, count / 8 + (i < count % 8)};
        pthread_create(&th[i], NULL, submit, &w[i]);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    store_close(s);
    _exit(0);
}

/* Executions per second of `procs` processes sharing one store. */
static double measure(store_backend b, int procs, int round)
{
    store_opts o;
    store_opts_default(&o);
    o.import_legacy = 0;
    o.busy_timeout_ms = 60000;
    char *dir = xasprintf("%s/s%d", base, round), *ci = NULL;
    if (b == STORE_BACKEND_POSTGRESQL) {
        char sql[64];
        snprintf(sql, sizeof sql, "CREATE DATABASE bench_%d_%d", (int)getpid(), round);
        pg_admin(sql);
        ci = xasprintf("%s dbname=bench_%d_%d", pg_server, (int)getpid(), round);
        o.backend = b;
        o.conninfo = ci;
    }
    /* create the schema once, before the clock */
    store *s;
    if (store_open(dir, &o, &s) != NDF_OK)
        die("store_open");
    store_close(s);
    int ready[2], go[2];
    if (pipe(ready) || pipe(go))
        die("pipe");
    pid_t kids[8];
    for (int p = 0; p < procs; p++) {
        kids[p] = fork();
        if (kids[p] == 0) {
            close(ready[0]);
            close(go[1]);
            child(dir, &o, p, total / procs + (p < total % procs), ready[1], go[0]);
        }
    }
    close(ready[1]);
    close(go[0]);
    char c;
    for (int p = 0; p < procs; p++)
        if (read(ready[0], &c, 1) != 1)
            die("a process did not open the store");
    double t0 = now_mono();
    for (int p = 0; p < procs; p++)
        if (write(go[1], "g", 1) != 1)
            die("write");
    for (int p = 0; p < procs; p++) {
        int st;
        waitpid(kids[p], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "bench_store_pg: a process failed (%#x)\n", st);
            exit(1);
        }
    }
    double t = now_mono() - t0;
    close(ready[0]);
    close(go[1]);
    if (store_open(dir, &o, &s) != NDF_OK)
        die("store_open");
    learning_state l;
    if (store_learning(s, "noop", &l) != NDF_OK || l.executions != (uint64_t)total)
        die("the count is not the number of executions");
    learning_free(&l);
    if (store_check(s) != NDF_OK)
        die("store_check");
    store_close(s);
    rm_rf(dir);
    free(dir);
    free(ci);
    return (double)total / t;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A queue worker process: claim one, record it, until nothing is left;
 * writes each claim's latency (s) to `fd`. */
static void queue_child(const store_opts *o, int proc, int ready, int go, int fd)
{
    store *s;
    if (store_open(NULL, o, &s) != NDF_OK)
        die("store_open");
    char c = 'r', name[32];
    snprintf(name, sizeof name, "w%d", proc);
    if (write(ready, &c, 1) != 1 || read(go, &c, 1) != 1)
        _exit(2);
    const char *pats[] = {"noop"};
    char root[] = "", step[] = "noop", pat[] = "noop";
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
    for (long i = 0;; i++) {
        queue_item *v;
        size_t n;
        double t0 = now_mono();
        if (queue_claim(s, name, pats, 1, 1, 60, &v, &n) != NDF_OK)
            die("queue_claim");
        double lat = now_mono() - t0;
        if (!n) {
            free(v);
            break;
        }
        if (write(fd, &lat, sizeof lat) != (ssize_t)sizeof lat)
            _exit(3);
        char id[64];
        snprintf(id, sizeof id, "x%d-%ld", proc, i);
        if (queue_bind(s, id, v[0].id, v[0].generation) != NDF_OK)
            die("queue_bind");
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
        e.nodes = nodes;
        e.nnodes = 2;
        if (store_finish(s, &e, NULL) != NDF_OK)
            die("store_finish");
        queue_items_free(v, n);
    }
    store_close(s);
    _exit(0);
}

/* Items per second through claim + record with `procs` workers; *p50 and
 * *p99 get the claim latency (s). */
static double measure_queue(int procs, int round, double *p50, double *p99, double *submit_rate)
{
    char sql[64];
    snprintf(sql, sizeof sql, "CREATE DATABASE benchq_%d_%d", (int)getpid(), round);
    pg_admin(sql);
    char *ci = xasprintf("%s dbname=benchq_%d_%d", pg_server, (int)getpid(), round);
    store_opts o;
    store_opts_default(&o);
    o.import_legacy = 0;
    o.busy_timeout_ms = 60000;
    o.backend = STORE_BACKEND_POSTGRESQL;
    o.conninfo = ci;
    store *s;
    if (store_open(NULL, &o, &s) != NDF_OK)
        die("store_open");
    double t0 = now_mono();
    for (long i = 0; i < total; i++) {
        char *id;
        if (queue_submit(s, "noop", "{\"domain\":\"bench\"}", 0, 0, &id) != NDF_OK)
            die("queue_submit");
        free(id);
    }
    *submit_rate = (double)total / (now_mono() - t0);
    store_close(s);
    int ready[2], go[2], lat[2];
    if (pipe(ready) || pipe(go) || pipe(lat))
        die("pipe");
    pid_t kids[8];
    for (int p = 0; p < procs; p++) {
        kids[p] = fork();
        if (kids[p] == 0) {
            close(ready[0]);
            close(go[1]);
            close(lat[0]);
            queue_child(&o, p, ready[1], go[0], lat[1]);
        }
    }
    close(ready[1]);
    close(go[0]);
    close(lat[1]);
    char c;
    for (int p = 0; p < procs; p++)
        if (read(ready[0], &c, 1) != 1)
            die("a worker did not open the store");
    t0 = now_mono();
    for (int p = 0; p < procs; p++)
        if (write(go[1], "g", 1) != 1)
            die("write");
    double *l = xcalloc((size_t)total + 1, sizeof *l);
    size_t nl = 0;
    double one;
    while (nl <= (size_t)total && read(lat[0], &one, sizeof one) == (ssize_t)sizeof one)
        l[nl++] = one;
    for (int p = 0; p < procs; p++) {
        int st;
        waitpid(kids[p], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "bench_store_pg: a worker failed (%#x)\n", st);
            exit(1);
        }
    }
    double t = now_mono() - t0;
    close(ready[0]);
    close(go[1]);
    close(lat[0]);
    if (nl != (size_t)total) {
        fprintf(stderr, "bench_store_pg: %zu items claimed of %ld\n", nl, total);
        exit(1);
    }
    qsort(l, nl, sizeof *l, cmp_dbl);
    *p50 = l[nl / 2];
    *p99 = l[(nl * 99) / 100];
    free(l);
    if (store_open(NULL, &o, &s) != NDF_OK)
        die("store_open");
    learning_state ls;
    if (store_learning(s, "noop", &ls) != NDF_OK || ls.executions != (uint64_t)total)
        die("the count is not the number of items");
    learning_free(&ls);
    if (store_check(s) != NDF_OK)
        die("store_check");
    store_close(s);
    free(ci);
    return (double)total / t;
}

int main(void)
{
    pg_server = getenv("NDF_BENCH_PG_CONNINFO");
    if (!pg_server || !*pg_server) {
        printf("store backends: skipped (NDF_BENCH_PG_CONNINFO is not set; "
               "tests/bench/store_pg.sh starts a server and sets it)\n");
        return 0;
    }
    const char *top = getenv("NDF_BENCH_DIR");
    if (!top || !*top)
        top = getenv("top_builddir");
    snprintf(base, sizeof base, "%s/bench_store_pg.XXXXXX", top && *top ? top : "/tmp");
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    const char *v = getenv("NDF_BENCH_EXECUTIONS");
    total = v && *v ? strtol(v, NULL, 10) : 10000;
    if (total < 64)
        total = 64;
    log_set_level(-1);
    printf("store backends: %ld one-step executions, N processes x 8 threads, group commit,"
           " sync normal\n",
           total);
    printf("  %-10s %9s %12s\n", "backend", "processes", "exec/s");
    static const int procs[] = {1, 2, 4};
    int round = 0;
    for (int b = 0; b < 2; b++) {
        for (size_t i = 0; i < ARRAY_SIZE(procs); i++) {
            double r = measure((store_backend)b, procs[i], round++);
            printf("  %-10s %9d %12.0f\n", store_backend_name((store_backend)b), procs[i], r);
            fflush(stdout);
        }
    }
    printf("\nqueue: %ld items, N workers each claiming one at a time (SKIP LOCKED) and"
           " recording it\n",
           total);
    printf("  %9s %12s %14s %14s %12s\n", "workers", "items/s", "claim p50 ms", "claim p99 ms",
           "submits/s");
    for (size_t i = 0; i < ARRAY_SIZE(procs); i++) {
        double p50, p99, sub;
        double r = measure_queue(procs[i], round++, &p50, &p99, &sub);
        printf("  %9d %12.0f %14.2f %14.2f %12.0f\n", procs[i], r, p50 * 1000, p99 * 1000, sub);
        fflush(stdout);
    }
    rm_rf(base);
    return 0;
}

/* Check suite for host/store/queue.c (the work queue of a PostgreSQL
 * store): priority order, claims that skip rather than wait and never give
 * one item to two workers at once, leases that expire and are taken over
 * with a new generation, and fencing: the end of an execution whose lease
 * was taken over is refused and not recorded, the current holder's is
 * recorded and completes the item, once.
 *
 * Runs against PostgreSQL when NDF_TEST_PG_CONNINFO is set (by
 * tests/shell/store_pg.sh); otherwise it checks that an SQLite store says
 * the queue needs PostgreSQL. */
#include "build-config.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef HAVE_LIBPQ
#include <libpq-fe.h>
#endif
#include <ndf/sdk.h>

#include "base/util.h"
#include "store/queue.h"
#include "store/store.h"

static const char *pg_base;
static char scratch[512];
#ifdef HAVE_LIBPQ
static char pg_db[64];
static char pg_conninfo[1024];
#endif

#ifdef HAVE_LIBPQ
static void pg_admin(const char *sql)
{
    char ci[1200];
    snprintf(ci, sizeof ci, "%s dbname=postgres", pg_base);
    PGconn *c = PQconnectdb(ci);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}
#endif

static void setup(void)
{
    const char *base = getenv("top_builddir");
    snprintf(scratch, sizeof scratch, "%s/check_queue.XXXXXX", base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(scratch));
    log_set_level(-1);
#ifdef HAVE_LIBPQ
    if (pg_base) {
        static int serial;
        snprintf(pg_db, sizeof pg_db, "ckq_%ld_%d", (long)getpid(), serial++);
        char sql[128];
        snprintf(sql, sizeof sql, "CREATE DATABASE %s", pg_db);
        pg_admin(sql);
        snprintf(pg_conninfo, sizeof pg_conninfo, "%s dbname=%s", pg_base, pg_db);
    }
#endif
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

static void teardown(void)
{
#ifdef HAVE_LIBPQ
    if (pg_base) {
        char sql[128];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", pg_db);
        pg_admin(sql);
    }
#endif
    rm_rf(scratch);
}

START_TEST(test_sqlite_has_no_queue)
{
    store_opts o;
    store_opts_default(&o);
    o.import_legacy = 0;
    store *s = NULL;
    ck_assert_int_eq(store_open(scratch, &o, &s), NDF_OK);
    char *id = NULL;
    ck_assert_int_eq(queue_submit(s, "p", NULL, 0, 0, &id), NDF_ERR_INVALID);
    ck_assert_ptr_null(id);
    ck_assert_msg(strstr(err_msg(), "postgresql"), "%s", err_msg());
    queue_worker *wv;
    size_t wn;
    ck_assert_int_eq(queue_workers(s, &wv, &wn), NDF_ERR_INVALID);
    ck_assert_int_eq(queue_start(s, "q", 1, "e"), NDF_ERR_INVALID);
    ck_assert_int_eq(queue_abandon(s, "e", "q"), NDF_ERR_INVALID);
    ck_assert_int_eq(queue_wait(s, -1, 0), NDF_ERR_INVALID);
    store_close(s);
}
END_TEST

#ifdef HAVE_LIBPQ
static store *open_store(void)
{
    store_opts o;
    store_opts_default(&o);
    o.import_legacy = 0;
    if (pg_base) {
        o.backend = STORE_BACKEND_POSTGRESQL;
        o.conninfo = pg_conninfo;
    }
    store *s = NULL;
    ck_assert_msg(store_open(scratch, &o, &s) == NDF_OK, "store_open: %s", err_msg());
    return s;
}

/* A finished one-step execution of `pat`. */
static int finish(store *s, const char *id, const char *pat)
{
    char root[] = "", step[] = "work";
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
    store_exec e;
    memset(&e, 0, sizeof e);
    e.id = (char *)id;
    e.pattern = (char *)pat;
    e.status = STORE_SUCCEEDED;
    e.origin = STORE_ORIGIN_RUN;
    e.start = now_wall() - 0.01;
    e.end = now_wall();
    e.duration = 0.01;
    e.learn = 1;
    e.nodes = nodes;
    e.nnodes = 2;
    return store_finish(s, &e, NULL);
}

START_TEST(test_priority_order)
{
    store *s = open_store();
    char *a, *b, *c, *other;
    ck_assert_int_eq(queue_submit(s, "p", "{\"domain\":\"web\"}", 0, 30, &a), NDF_OK);
    ck_assert_int_eq(queue_submit(s, "p", NULL, 5, 0, &b), NDF_OK);
    ck_assert_int_eq(queue_submit(s, "p", NULL, 0, 0, &c), NDF_OK);
    ck_assert_int_eq(queue_submit(s, "q", NULL, 9, 0, &other), NDF_OK);
    ck_assert_str_ne(a, b);
    queue_item it;
    ck_assert_int_eq(queue_get(s, a, &it), NDF_OK);
    ck_assert_int_eq(it.state, QUEUE_QUEUED);
    ck_assert_int_eq(it.generation, 0);
    ck_assert_str_eq(it.context, "{\"domain\":\"web\"}");
    ck_assert(it.timeout == 30);
    queue_item_free(&it);

    const char *pats[] = {"p"};
    queue_item *v;
    size_t n;
    ck_assert_msg(queue_claim(s, "w1", pats, 1, 10, 60, &v, &n) == NDF_OK, "%s", err_msg());
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(v[0].id, b); /* priority first */
    ck_assert_str_eq(v[1].id, a); /* then submission order */
    ck_assert_str_eq(v[2].id, c);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(v[i].state, QUEUE_CLAIMED);
        ck_assert_int_eq(v[i].generation, 1);
        ck_assert_int_eq(v[i].attempts, 1);
        ck_assert_str_eq(v[i].worker, "w1");
        ck_assert(v[i].lease_until > v[i].now + 50);
    }
    queue_items_free(v, n);
    /* nothing left for "p" while the leases hold; "q" was never offered */
    ck_assert_int_eq(queue_claim(s, "w2", pats, 1, 10, 60, &v, &n), NDF_OK);
    ck_assert_uint_eq(n, 0);
    free(v);
    ck_assert_int_eq(queue_get(s, other, &it), NDF_OK);
    ck_assert_int_eq(it.state, QUEUE_QUEUED);
    queue_item_free(&it);
    ck_assert_int_eq(queue_get(s, "no-such", &it), NDF_ERR_NOT_FOUND);
    free(a);
    free(b);
    free(c);
    free(other);
    store_close(s);
}
END_TEST

/* Waits (for the state, never a fixed time) until the item's lease ended
 * by the server's clock. */
static void wait_lease_over(store *s, const char *id)
{
    for (;;) {
        queue_item it;
        ck_assert_int_eq(queue_get(s, id, &it), NDF_OK);
        int over = it.now > it.lease_until;
        queue_item_free(&it);
        if (over)
            return;
        usleep(20000);
    }
}

START_TEST(test_takeover_and_fencing)
{
    store *s = open_store();
    char *id;
    ck_assert_int_eq(queue_submit(s, "p", NULL, 0, 0, &id), NDF_OK);
    const char *pats[] = {"p"};
    queue_item *v;
    size_t n;
    ck_assert_int_eq(queue_claim(s, "w1", pats, 1, 1, 0.2, &v, &n), NDF_OK);
    ck_assert_uint_eq(n, 1);
    long long g1 = v[0].generation;
    queue_items_free(v, n);
    ck_assert_int_eq(queue_renew(s, id, g1, 0.2), NDF_OK);
    wait_lease_over(s, id);
    /* w1 is silent: w2 takes it over with the next generation */
    ck_assert_int_eq(queue_claim(s, "w2", pats, 1, 1, 60, &v, &n), NDF_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(v[0].id, id);
    long long g2 = v[0].generation;
    ck_assert_int_eq(g2, g1 + 1);
    ck_assert_int_eq(v[0].attempts, 2);
    queue_items_free(v, n);
    /* w1 comes back: its lease is gone, and so is its right to record */
    ck_assert_int_eq(queue_renew(s, id, g1, 60), NDF_ERR_CANCELLED);
    ck_assert_int_eq(queue_bind(s, "e-old", id, g1), NDF_OK);
    ck_assert_int_eq(finish(s, "e-old", "p"), NDF_ERR_CANCELLED);
    ck_assert_msg(strstr(err_msg(), "lost its lease"), "%s", err_msg());
    store_exec got;
    ck_assert_int_eq(store_get(s, "e-old", &got), NDF_ERR_NOT_FOUND);
    learning_state l;
    ck_assert_int_eq(store_learning(s, "p", &l), NDF_ERR_NOT_FOUND);
    /* an unbound execution in the same batch is not held up by it */
    ck_assert_int_eq(finish(s, "free", "other"), NDF_OK);
    /* w2's end is recorded, counted, and completes the item */
    ck_assert_int_eq(queue_renew(s, id, g2, 60), NDF_OK);
    ck_assert_int_eq(queue_bind(s, "e-new", id, g2), NDF_OK);
    ck_assert_msg(finish(s, "e-new", "p") == NDF_OK, "%s", err_msg());
    queue_item it;
    ck_assert_int_eq(queue_get(s, id, &it), NDF_OK);
    ck_assert_int_eq(it.state, QUEUE_DONE);
    ck_assert_str_eq(it.exec_id, "e-new");
    ck_assert_int_eq(it.status, STORE_SUCCEEDED);
    queue_item_free(&it);
    ck_assert_int_eq(store_learning(s, "p", &l), NDF_OK);
    ck_assert_uint_eq(l.executions, 1);
    learning_free(&l);
    /* done is done: not offered again, its lease not renewable */
    ck_assert_int_eq(queue_claim(s, "w3", pats, 1, 1, 60, &v, &n), NDF_OK);
    ck_assert_uint_eq(n, 0);
    free(v);
    ck_assert_int_eq(queue_renew(s, id, g2, 60), NDF_ERR_CANCELLED);
    /* a second end of the same claim is refused too */
    ck_assert_int_eq(queue_bind(s, "e-again", id, g2), NDF_OK);
    ck_assert_int_eq(finish(s, "e-again", "p"), NDF_ERR_CANCELLED);
    ck_assert_int_eq(store_check(s), NDF_OK);
    free(id);
    store_close(s);
}
END_TEST


/* The worker's calls: the start noted on the item (fenced), the takeover's
 * end of what the lost holder left RUNNING, an item that cannot start
 * ended with its reason, one given back, and the workers table. */
START_TEST(test_start_abandon_fail_release)
{
    store *s = open_store();
    char *id, *bad, *back;
    ck_assert_int_eq(queue_submit(s, "p", NULL, 2, 0, &id), NDF_OK);
    ck_assert_int_eq(queue_submit(s, "p", NULL, 1, 0, &bad), NDF_OK);
    ck_assert_int_eq(queue_submit(s, "p", NULL, 0, 0, &back), NDF_OK);
    const char *pats[] = {"p"};
    queue_item *v;
    size_t n;
    ck_assert_int_eq(queue_claim(s, "w1", pats, 1, 3, 0.2, &v, &n), NDF_OK);
    ck_assert_uint_eq(n, 3);
    long long g1 = v[0].generation, gbad = v[1].generation, gback = v[2].generation;
    ck_assert_ptr_null(v[0].exec_id);
    queue_items_free(v, n);

    /* w1 starts `id` as execution e1, RUNNING with a completed step */
    ck_assert_int_eq(queue_start(s, id, g1, "e1"), NDF_OK);
    char root[] = "", step[] = "work";
    store_node nodes[2];
    memset(nodes, 0, sizeof nodes);
    nodes[0].path = root;
    nodes[0].kind = NDF_NODE_PATTERN;
    nodes[0].state = NDF_STATE_RUNNING;
    nodes[0].exit_status = -1;
    nodes[1].path = step;
    nodes[1].seq = 1;
    nodes[1].kind = NDF_NODE_STEP;
    nodes[1].state = NDF_STATE_COMPLETED;
    nodes[1].start = now_wall() - 1;
    nodes[1].end = now_wall() - 0.5;
    store_exec e;
    memset(&e, 0, sizeof e);
    e.id = (char *)"e1";
    e.pattern = (char *)"p";
    e.status = STORE_RUNNING;
    e.start = now_wall() - 2;
    e.nodes = nodes;
    e.nnodes = 2;
    ck_assert_msg(store_begin(s, &e) == NDF_OK, "%s", err_msg());

    /* `bad` cannot start: DONE with its reason, and not claimable again */
    ck_assert_int_eq(queue_fail(s, bad, gbad, STORE_REFUSED, "confidence 0.1 below 0.5"),
                     NDF_OK);
    queue_item it;
    ck_assert_int_eq(queue_get(s, bad, &it), NDF_OK);
    ck_assert_int_eq(it.state, QUEUE_DONE);
    ck_assert_int_eq(it.status, STORE_REFUSED);
    ck_assert_str_eq(it.message, "confidence 0.1 below 0.5");
    ck_assert_ptr_null(it.exec_id);
    queue_item_free(&it);
    ck_assert_int_eq(queue_fail(s, bad, gbad, STORE_FAILED, "again"), NDF_ERR_CANCELLED);
    /* `back` is given back: queued again, for anyone */
    ck_assert_int_eq(queue_release(s, back, gback), NDF_OK);
    ck_assert_int_eq(queue_get(s, back, &it), NDF_OK);
    ck_assert_int_eq(it.state, QUEUE_QUEUED);
    queue_item_free(&it);

    /* w1 goes silent; w2 takes `id` over and finds e1 */
    wait_lease_over(s, id);
    ck_assert_int_eq(queue_claim(s, "w2", pats, 1, 1, 60, &v, &n), NDF_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(v[0].id, id);
    ck_assert_str_eq(v[0].exec_id, "e1");
    long long g2 = v[0].generation;
    queue_items_free(v, n);
    /* w1's late start notes are refused */
    ck_assert_int_eq(queue_start(s, id, g1, "e-late"), NDF_ERR_CANCELLED);
    ck_assert_int_eq(queue_abandon(s, "e1", id), NDF_OK);
    store_exec got;
    ck_assert_int_eq(store_get(s, "e1", &got), NDF_OK);
    ck_assert_int_eq(got.status, STORE_CRASHED);
    ck_assert_msg(got.message && strstr(got.message, id), "%s", got.message);
    ck_assert(got.end >= nodes[1].end - 0.001);
    ck_assert_int_eq(got.nnodes, 2);
    ck_assert_int_eq(got.nodes[1].state, NDF_STATE_COMPLETED);
    store_exec_free(&got);
    /* abandoning again changes nothing */
    ck_assert_int_eq(queue_abandon(s, "e1", id), NDF_OK);
    ck_assert_int_eq(queue_start(s, id, g2, "e2"), NDF_OK);
    ck_assert_int_eq(queue_get(s, id, &it), NDF_OK);
    ck_assert_str_eq(it.exec_id, "e2");
    queue_item_free(&it);

    /* the workers table */
    queue_worker w;
    memset(&w, 0, sizeof w);
    w.name = (char *)"h:1:2";
    w.host = (char *)"h";
    w.pid = 1;
    w.capacity = 4;
    w.load = 1;
    w.lease = 30;
    w.patterns = (char *)"[\"p\"]";
    w.plugins = (char *)"[]";
    ck_assert_int_eq(queue_worker_beat(s, &w), NDF_OK);
    w.load = 3;
    w.draining = 1;
    ck_assert_int_eq(queue_worker_beat(s, &w), NDF_OK);
    queue_worker *wv;
    size_t wn;
    ck_assert_int_eq(queue_workers(s, &wv, &wn), NDF_OK);
    ck_assert_uint_eq(wn, 1);
    ck_assert_str_eq(wv[0].name, "h:1:2");
    ck_assert_int_eq(wv[0].load, 3);
    ck_assert_int_eq(wv[0].draining, 1);
    ck_assert_int_eq(wv[0].capacity, 4);
    ck_assert_str_eq(wv[0].patterns, "[\"p\"]");
    ck_assert(wv[0].age >= 0 && wv[0].age < wv[0].lease);
    queue_workers_free(wv, wn);
    ck_assert_int_eq(queue_worker_remove(s, "h:1:2"), NDF_OK);
    ck_assert_int_eq(queue_workers(s, &wv, &wn), NDF_OK);
    ck_assert_uint_eq(wn, 0);
    free(wv);
    w.name = (char *)"";
    ck_assert_int_eq(queue_worker_beat(s, &w), NDF_ERR_INVALID);
    free(id);
    free(bad);
    free(back);
    store_close(s);
}
END_TEST

#define NITEMS 300
#define NWORKERS 4

/* Workers claiming at once take every item, none twice. */
/* A RUNNING row of an execution bound to a claim notes it on the item in
 * its own transaction (no queue_start), and is refused, recording nothing,
 * once the claim's generation is no longer current. */
START_TEST(test_bound_begin_notes_the_item)
{
    store *s = open_store();
    char *id;
    ck_assert_int_eq(queue_submit(s, "p", NULL, 0, 0, &id), NDF_OK);
    const char *pats[] = {"p"};
    queue_item *v;
    size_t n;
    ck_assert_int_eq(queue_claim(s, "w1", pats, 1, 1, 0.2, &v, &n), NDF_OK);
    ck_assert_uint_eq(n, 1);
    long long g1 = v[0].generation;
    queue_items_free(v, n);
    store_exec e;
    memset(&e, 0, sizeof e);
    e.id = (char *)"b1";
    e.pattern = (char *)"p";
    e.status = STORE_RUNNING;
    e.origin = STORE_ORIGIN_QUEUE;
    e.start = now_wall();
    ck_assert_int_eq(queue_bind(s, "b1", id, g1), NDF_OK);
    ck_assert_msg(store_begin(s, &e) == NDF_OK, "%s", err_msg());
    queue_item q;
    ck_assert_int_eq(queue_get(s, id, &q), NDF_OK);
    ck_assert_str_eq(q.exec_id, "b1");
    queue_item_free(&q);
    store_exec got;
    ck_assert_int_eq(store_get(s, "b1", &got), NDF_OK);
    ck_assert_int_eq(got.origin, STORE_ORIGIN_QUEUE);
    store_exec_free(&got);
    queue_unbind(s, "b1");

    /* taken over by w2: w1's next start is refused and not recorded */
    usleep(300000);
    ck_assert_int_eq(queue_claim(s, "w2", pats, 1, 1, 30, &v, &n), NDF_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_gt(v[0].generation, g1);
    queue_items_free(v, n);
    e.id = (char *)"b2";
    ck_assert_int_eq(queue_bind(s, "b2", id, g1), NDF_OK);
    ck_assert_int_eq(store_begin(s, &e), NDF_ERR_CANCELLED);
    ck_assert_msg(strstr(err_msg(), "lost before it started") != NULL, "%s", err_msg());
    queue_unbind(s, "b2");
    ck_assert_int_eq(store_get(s, "b2", &got), NDF_ERR_NOT_FOUND);
    ck_assert_int_eq(queue_get(s, id, &q), NDF_OK);
    ck_assert_str_eq(q.exec_id, "b1");
    queue_item_free(&q);
    /* the writer goes on: an unbound start is recorded */
    e.id = (char *)"b3";
    ck_assert_msg(store_begin(s, &e) == NDF_OK, "%s", err_msg());
    free(id);
    store_close(s);
}
END_TEST

/* queue_wait(): a submission committed by another handle wakes it (also
 * one that came before the call), the time running out or the wake fd
 * answers 0, and each notification is read once. */
START_TEST(test_wait_for_submissions)
{
    store *s = open_store(), *other = open_store();
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    /* the first call opens the LISTEN connection, as far as its time
     * allows (without blocking past it): nothing yet */
    ck_assert_int_eq(queue_wait(s, fds[0], 0), 0);
    ck_assert_int_eq(queue_wait(s, fds[0], 1), 0);
    char *id;
    ck_assert_int_eq(queue_submit(other, "p", NULL, 0, 0, &id), NDF_OK);
    free(id);
    ck_assert_int_eq(queue_wait(s, fds[0], 5), 1);
    ck_assert_int_eq(queue_wait(s, fds[0], 0), 0); /* read once */
    ck_assert_int_eq(write(fds[1], "x", 1), 1);
    ck_assert_int_eq(queue_wait(s, fds[0], 5), 0); /* woken, not notified */
    char c;
    ck_assert_int_eq(read(fds[0], &c, 1), 1);
    /* a give-back wakes the workers too */
    const char *pats[] = {"p"};
    queue_item *v;
    size_t n;
    ck_assert_int_eq(queue_claim(s, "w1", pats, 1, 1, 30, &v, &n), NDF_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(queue_release(s, v[0].id, v[0].generation), NDF_OK);
    queue_items_free(v, n);
    ck_assert_int_eq(queue_wait(s, -1, 5), 1);
    close(fds[0]);
    close(fds[1]);
    store_close(other);
    store_close(s);
}
END_TEST

START_TEST(test_concurrent_claims_disjoint)
{
    store *s = open_store();
    for (int i = 0; i < NITEMS; i++) {
        char *id;
        ck_assert_int_eq(queue_submit(s, "p", NULL, i % 3, 0, &id), NDF_OK);
        free(id);
    }
    store_close(s);
    int fds[NWORKERS][2];
    pid_t kids[NWORKERS];
    for (int w = 0; w < NWORKERS; w++) {
        ck_assert_int_eq(pipe(fds[w]), 0);
        kids[w] = fork();
        ck_assert_int_ge(kids[w], 0);
        if (kids[w] == 0) {
            close(fds[w][0]);
            store *cs = open_store();
            char name[16];
            snprintf(name, sizeof name, "w%d", w);
            const char *pats[] = {"p"};
            FILE *f = fdopen(fds[w][1], "w");
            for (;;) {
                queue_item *v;
                size_t n;
                if (queue_claim(cs, name, pats, 1, 7, 600, &v, &n) != NDF_OK)
                    _exit(3);
                for (size_t i = 0; i < n; i++)
                    fprintf(f, "%s\n", v[i].id);
                queue_items_free(v, n);
                if (!n)
                    break;
            }
            fclose(f);
            store_close(cs);
            _exit(0);
        }
        close(fds[w][1]);
    }
    char **seen = xcalloc(NITEMS + 1, sizeof *seen);
    size_t nseen = 0;
    for (int w = 0; w < NWORKERS; w++) {
        FILE *f = fdopen(fds[w][0], "r");
        char line[128];
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\n")] = 0;
            for (size_t i = 0; i < nseen; i++)
                ck_assert_msg(strcmp(seen[i], line) != 0, "%s claimed twice", line);
            ck_assert_uint_lt(nseen, NITEMS);
            seen[nseen++] = xstrdup(line);
        }
        fclose(f);
        int st;
        ck_assert_int_eq(waitpid(kids[w], &st, 0), kids[w]);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker %d: %#x", w, st);
    }
    ck_assert_uint_eq(nseen, NITEMS);
    for (size_t i = 0; i < nseen; i++)
        free(seen[i]);
    free(seen);
}
END_TEST
#endif

static Suite *queue_suite(void)
{
    Suite *s = suite_create(pg_base ? "queue (postgresql)" : "queue (sqlite)");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    if (!pg_base)
        tcase_add_test(tc, test_sqlite_has_no_queue);
#ifdef HAVE_LIBPQ
    if (pg_base) {
        tcase_add_test(tc, test_priority_order);
        tcase_add_test(tc, test_takeover_and_fencing);
        tcase_add_test(tc, test_start_abandon_fail_release);
        tcase_add_test(tc, test_concurrent_claims_disjoint);
        tcase_add_test(tc, test_bound_begin_notes_the_item);
        tcase_add_test(tc, test_wait_for_submissions);
    }
#endif
    suite_add_tcase(s, tc);
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
    SRunner *sr = srunner_create(queue_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

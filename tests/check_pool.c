/* Check suite for host/exec/pool.c: priorities, groups (nesting on one
 * thread, deadlines, cancellation, max_concurrent, spawning from work),
 * work stealing that hands plain data between threads, threads started
 * as work needs them, and the error a failed pthread_create reports. */
#include "build-config.h"

#include <check.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exec/pool.h"
#include "exec/record.h"
#include "base/util.h"

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static _Atomic long counter;

static int bump(void *arg)
{
    (void)arg;
    atomic_fetch_add(&counter, 1);
    return 0;
}

/* Work that holds its worker until `stuck_gate` opens (an in-process
 * step ignoring cancellation). */
static _Atomic int stuck_gate, stuck_in;

static int stuck(void *arg)
{
    (void)arg;
    atomic_fetch_add(&stuck_in, 1);
    while (!atomic_load(&stuck_gate))
        msleep(1);
    atomic_fetch_sub(&stuck_in, 1);
    return 0;
}

/* A worker stuck in abandoned work is replaced: other work runs on a pool
 * of one; past as many abandoned as workers the pool shrinks (counted);
 * an abandoned thread that returns leaves, and pool_free then frees. */
START_TEST(pool_abandon_replaces)
{
    pool *p = pool_new(1);
    static const char tag1, tag2;
    atomic_store(&stuck_gate, 0);
    atomic_store(&stuck_in, 0);
    atomic_store(&counter, 0);
    pool_submit_tagged(p, 3, stuck, NULL, &tag1);
    while (atomic_load(&stuck_in) < 1)
        msleep(1);
    ck_assert_uint_eq(pool_abandon(p, &tag2), 0); /* nobody runs that */
    ck_assert_uint_eq(pool_abandon(p, &tag1), 1);
    pool_stats st;
    pool_health(p, &st);
    ck_assert_uint_eq(st.threads, 1);
    ck_assert_uint_eq(st.active, 1);
    ck_assert_uint_eq(st.abandoned, 1);
    ck_assert_uint_eq(st.replaced, 1);
    ck_assert_uint_eq(pool_stuck_threads(), 1);
    pool_submit(p, 3, bump, NULL); /* the replacement takes it */
    while (atomic_load(&counter) < 1)
        msleep(1);
    /* the replacement gets stuck too: no spare slot is left */
    pool_submit_tagged(p, 3, stuck, NULL, &tag2);
    while (atomic_load(&stuck_in) < 2)
        msleep(1);
    ck_assert_uint_eq(pool_abandon(p, &tag2), 1);
    pool_health(p, &st);
    ck_assert_uint_eq(st.active, 0);
    ck_assert_uint_eq(st.abandoned, 2);
    ck_assert_uint_eq(st.unreplaced, 1);
    /* both return: one is back at work (the pool was short), the other
     * leaves; nothing is lost for good */
    atomic_store(&stuck_gate, 1);
    do {
        msleep(1);
        pool_health(p, &st);
    } while (st.abandoned > 0);
    ck_assert_uint_eq(pool_stuck_threads(), 0);
    ck_assert_uint_eq(st.active, 1);
    pool_submit(p, 3, bump, NULL);
    while (atomic_load(&counter) < 2)
        msleep(1);
    ck_assert_uint_eq(pool_free(p, 5), 0);
}
END_TEST

/* pool_free does not wait for an abandoned thread, leaves the pool to it
 * and says how many threads it left. */
START_TEST(pool_free_leaves_abandoned)
{
    pool *p = pool_new(2);
    static const char tag;
    atomic_store(&stuck_gate, 0);
    atomic_store(&stuck_in, 0);
    pool_submit_tagged(p, 3, stuck, NULL, &tag);
    while (atomic_load(&stuck_in) < 1)
        msleep(1);
    ck_assert_uint_eq(pool_abandon(p, &tag), 1);
    ck_assert_uint_eq(pool_free(p, 60), 1); /* at once, not after 60 s */
    ck_assert_uint_eq(pool_stuck_threads(), 1);
    atomic_store(&stuck_gate, 1);
    while (pool_stuck_threads() > 0)
        msleep(1);
}
END_TEST

START_TEST(pool_runs_everything)
{
    pool *p = pool_new(2);
    record *r = record_new("t", NULL, INFINITY);
    r->pool = p;
    atomic_store(&counter, 0);
    ndf_group *g = pool_group_new(p, r->root, 0, 1);
    for (int i = 0; i < 20000; i++)
        ck_assert_int_eq(pool_group_spawn(g, bump, NULL), NDF_OK);
    ck_assert_int_eq(pool_group_wait(g), NDF_OK);
    ck_assert_int_eq(atomic_load(&counter), 20000);
    pool_group_free(g);
    /* ungrouped submissions run too */
    for (int i = 0; i < 1000; i++)
        pool_submit(p, 3, bump, NULL);
    while (atomic_load(&counter) < 21000)
        msleep(1);
    record_unref(r);
    pool_free(p, -1);
}
END_TEST

static _Atomic int gate;
static pthread_mutex_t order_lock = PTHREAD_MUTEX_INITIALIZER;
static int order[64];
static _Atomic int norder;

static int blocker(void *arg)
{
    (void)arg;
    while (!atomic_load(&gate))
        msleep(1);
    return 0;
}

static int note_prio(void *arg)
{
    pthread_mutex_lock(&order_lock);
    order[atomic_load(&norder)] = (int)(intptr_t)arg;
    atomic_fetch_add(&norder, 1);
    pthread_mutex_unlock(&order_lock);
    return 0;
}

START_TEST(pool_priority_order)
{
    pool *p = pool_new(1);
    atomic_store(&gate, 0);
    atomic_store(&norder, 0);
    pool_submit(p, 1, blocker, NULL);
    msleep(20); /* the one worker is now inside blocker */
    static const int prios[] = {5, 3, 1, 4, 2, 5, 1, 3, 2, 4, 1, 5};
    for (size_t i = 0; i < ARRAY_SIZE(prios); i++)
        pool_submit(p, prios[i], note_prio, (void *)(intptr_t)prios[i]);
    atomic_store(&gate, 1);
    while (atomic_load(&norder) < (int)ARRAY_SIZE(prios))
        msleep(1);
    for (size_t i = 1; i < ARRAY_SIZE(prios); i++)
        ck_assert_msg(order[i - 1] <= order[i], "priority %d ran before %d", order[i - 1],
                      order[i]);
    pool_free(p, -1);
}
END_TEST

typedef struct nest {
    ndf_exec *node;
    int depth;
} nest;

/* Each level waits on a group of two children: a worker that parked in
 * group_wait would deadlock a one-thread pool at the second level. */
static int nested(void *arg)
{
    nest *n = arg;
    if (n->depth == 0) {
        atomic_fetch_add(&counter, 1);
        return 0;
    }
    nest kids[2] = {{n->node, n->depth - 1}, {n->node, n->depth - 1}};
    ndf_group *g = pool_group_new(n->node->rec->pool, n->node, 0, 1);
    pool_group_spawn(g, nested, &kids[0]);
    pool_group_spawn(g, nested, &kids[1]);
    int rc = pool_group_wait(g);
    pool_group_free(g);
    return rc;
}

static _Atomic int root_done;

static int nested_root(void *arg)
{
    nested(arg);
    atomic_store(&root_done, 1);
    return 0;
}

START_TEST(pool_nested_waits_one_thread)
{
    pool *p = pool_new(1);
    record *r = record_new("t", NULL, INFINITY);
    r->pool = p;
    atomic_store(&counter, 0);
    atomic_store(&root_done, 0);
    nest top = {r->root, 12};
    pool_submit(p, 1, nested_root, &top);
    while (!atomic_load(&root_done))
        msleep(1);
    ck_assert_int_eq(atomic_load(&counter), 4096);
    record_unref(r);
    pool_free(p, -1);
}
END_TEST

static int slow_item(void *arg)
{
    (void)arg;
    atomic_fetch_add(&counter, 1);
    msleep(30);
    return 0;
}

typedef struct tmo {
    ndf_exec *node;
    int rc, spawn_rc;
    _Atomic int done;
} tmo;

static int timeout_root(void *arg)
{
    tmo *t = arg;
    ndf_group *g = pool_group_new(t->node->rec->pool, t->node, 0, 1);
    for (int i = 0; i < 100; i++)
        pool_group_spawn(g, slow_item, NULL);
    t->rc = pool_group_wait(g);
    /* spawning into a stopped group is refused */
    t->spawn_rc = pool_group_spawn(g, slow_item, NULL);
    pool_group_free(g);
    atomic_store(&t->done, 1);
    return 0;
}

START_TEST(pool_group_timeout_drops_queued)
{
    pool *p = pool_new(1);
    record *r = record_new("t", NULL, now_mono() + 0.2);
    r->pool = p;
    r->kill_grace = 0.1;
    atomic_store(&counter, 0);
    tmo t = {r->root, 0, 0, 0};
    pool_submit(p, 1, timeout_root, &t);
    while (!atomic_load(&t.done))
        msleep(1);
    ck_assert_int_eq(t.rc, NDF_ERR_TIMEOUT);
    ck_assert_int_eq(t.spawn_rc, NDF_ERR_TIMEOUT);
    ck_assert_msg(atomic_load(&counter) < 50, "%ld items ran", atomic_load(&counter));
    record_unref(r);
    pool_free(p, -1);
}
END_TEST

START_TEST(pool_group_cancelled)
{
    pool *p = pool_new(2);
    record *r = record_new("t", NULL, INFINITY);
    r->pool = p;
    atomic_store(&counter, 0);
    ndf_group *g = pool_group_new(p, r->root, 0, 1);
    for (int i = 0; i < 100; i++)
        pool_group_spawn(g, slow_item, NULL);
    atomic_store(&r->cancel, NDF_ERR_CANCELLED);
    ck_assert_int_eq(pool_group_wait(g), NDF_ERR_CANCELLED);
    ck_assert(strstr(err_msg(), "cancelled"));
    pool_group_free(g);
    ck_assert_msg(atomic_load(&counter) < 100, "%ld ran", atomic_load(&counter));
    record_unref(r);
    pool_free(p, -1);
}
END_TEST

static _Atomic int running, peak;

static int conc_item(void *arg)
{
    (void)arg;
    int now = atomic_fetch_add(&running, 1) + 1;
    int old = atomic_load(&peak);
    while (now > old && !atomic_compare_exchange_weak(&peak, &old, now))
        ;
    msleep(2);
    atomic_fetch_sub(&running, 1);
    atomic_fetch_add(&counter, 1);
    return 0;
}

START_TEST(pool_max_concurrent)
{
    pool *p = pool_new(4);
    record *r = record_new("t", NULL, INFINITY);
    r->pool = p;
    atomic_store(&counter, 0);
    atomic_store(&peak, 0);
    ndf_group *g = pool_group_new(p, r->root, 2, 1);
    for (int i = 0; i < 40; i++)
        pool_group_spawn(g, conc_item, NULL);
    ck_assert_int_eq(pool_group_wait(g), NDF_OK);
    pool_group_free(g);
    ck_assert_int_eq(atomic_load(&counter), 40);
    ck_assert_int_le(atomic_load(&peak), 2);
    record_unref(r);
    pool_free(p, -1);
}
END_TEST

static ndf_group *chain_group;

/* Work that spawns more work into its own group. */
static int chain(void *arg)
{
    intptr_t left = (intptr_t)arg;
    atomic_fetch_add(&counter, 1);
    if (left > 0)
        pool_group_spawn(chain_group, chain, (void *)(left - 1));
    return 0;
}

START_TEST(pool_spawn_from_work)
{
    pool *p = pool_new(2);
    record *r = record_new("t", NULL, INFINITY);
    r->pool = p;
    atomic_store(&counter, 0);
    chain_group = pool_group_new(p, r->root, 0, 1);
    for (int i = 0; i < 10; i++)
        pool_group_spawn(chain_group, chain, (void *)(intptr_t)99);
    ck_assert_int_eq(pool_group_wait(chain_group), NDF_OK);
    ck_assert_int_eq(atomic_load(&counter), 1000);
    pool_group_free(chain_group);
    record_unref(r);
    pool_free(p, -1);
}
END_TEST

/* Work stealing hands plain (non-atomic) data from the spawning worker to
 * the thief and back to the waiter: under ThreadSanitizer this is where an
 * ordering it cannot see (a standalone fence) would be reported as a race. */
typedef struct cell {
    long in, out;
} cell;

#define NCELLS 20000

typedef struct fanout {
    ndf_exec *node;
    cell *cells;
    int rc;
    _Atomic int done;
} fanout;

static int square(void *arg)
{
    cell *c = arg;
    c->out = c->in * c->in;
    return 0;
}

static int fanout_root(void *arg)
{
    fanout *f = arg;
    ndf_group *g = pool_group_new(f->node->rec->pool, f->node, 0, 2);
    for (long i = 0; i < NCELLS; i++) {
        f->cells[i].in = i;
        pool_group_spawn(g, square, &f->cells[i]);
    }
    f->rc = pool_group_wait(g);
    pool_group_free(g);
    atomic_store(&f->done, 1);
    return 0;
}

START_TEST(pool_steal_hands_over_data)
{
    pool *p = pool_new(3);
    ck_assert_uint_eq(pool_size(p), 3);
    record *r = record_new("t", NULL, INFINITY);
    r->pool = p;
    for (int round = 0; round < 5; round++) {
        fanout f = {r->root, xcalloc(NCELLS, sizeof(cell)), -1, 0};
        pool_submit(p, 2, fanout_root, &f);
        while (!atomic_load(&f.done))
            msleep(1);
        ck_assert_int_eq(f.rc, NDF_OK);
        for (long i = 0; i < NCELLS; i++)
            ck_assert_int_eq(f.cells[i].out, i * i);
        free(f.cells);
    }
    record_unref(r);
    pool_free(p, -1);
}
END_TEST

/* pthread_create, wrapped at link time (-Wl,--wrap=pthread_create in
 * mk/exec.mk): with a budget >= 0 it creates that many more threads, then
 * fails with EAGAIN and leaves errno at ENOTTY, a value a message built
 * from errno (not from the returned error) would show. */
int __real_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);

static _Atomic int create_budget = -1;

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    int left = atomic_load(&create_budget);
    if (left == 0) {
        errno = ENOTTY;
        return EAGAIN;
    }
    if (left > 0)
        atomic_fetch_sub(&create_budget, 1);
    return __real_pthread_create(t, a, fn, arg);
}

START_TEST(pool_new_reports_thread_error)
{
    atomic_store(&create_budget, 0);
    pool *p = pool_new(4);
    atomic_store(&create_budget, -1);
    ck_assert_ptr_null(p);
    ck_assert_msg(strstr(err_msg(), "cannot start worker thread 0"), "%s", err_msg());
    ck_assert_msg(strstr(err_msg(), strerror(EAGAIN)), "%s", err_msg());
    ck_assert_msg(!strstr(err_msg(), strerror(ENOTTY)), "%s", err_msg());
    p = pool_new(2);
    ck_assert_ptr_nonnull(p);
    pool_free(p, -1);
}
END_TEST

/* Work that waits until `want` pieces run at once: only as many threads
 * as that can finish it. */
static _Atomic int together_in, together_want;
static _Atomic int together_masked; /* of those, how many had SIGUSR1 blocked */

static int together(void *arg)
{
    (void)arg;
    sigset_t m;
    pthread_sigmask(SIG_SETMASK, NULL, &m);
    if (sigismember(&m, SIGUSR1))
        atomic_fetch_add(&together_masked, 1);
    atomic_fetch_add(&together_in, 1);
    while (atomic_load(&together_in) < atomic_load(&together_want))
        msleep(1);
    atomic_fetch_add(&counter, 1);
    return 0;
}

static void wait_idle(pool *p, unsigned n)
{
    pool_stats st;
    for (;;) {
        pool_health(p, &st);
        if (st.idle >= n)
            return;
        msleep(1);
    }
}

/* Threads start as work needs them: work queued one piece at a time,
 * each taken by the idle worker, never starts a second thread; work that
 * needs four at once gets them, each with the mask of the thread that
 * made the pool, whichever thread queued the work. */
START_TEST(pool_threads_on_demand)
{
    sigset_t usr1, old;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, &old);
    pool *p = pool_new(4);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pool_stats st;
    pool_health(p, &st);
    ck_assert_uint_eq(st.threads, 4);
    ck_assert_uint_eq(st.active, 4);
    ck_assert_uint_eq(st.running, 1);
    atomic_store(&counter, 0);
    for (int i = 1; i <= 20; i++) {
        wait_idle(p, 1);
        pool_submit(p, 3, bump, NULL);
        while (atomic_load(&counter) < i)
            msleep(1);
    }
    pool_health(p, &st);
    ck_assert_uint_eq(st.running, 1);
    atomic_store(&together_in, 0);
    atomic_store(&together_masked, 0);
    atomic_store(&together_want, 4);
    for (int i = 0; i < 4; i++)
        pool_submit(p, 3, together, NULL);
    while (atomic_load(&counter) < 24)
        msleep(1);
    ck_assert_int_eq(atomic_load(&together_masked), 4);
    pool_health(p, &st);
    ck_assert_uint_eq(st.running, 4);
    ck_assert_uint_eq(st.active, 4);
    ck_assert_uint_eq(pool_free(p, -1), 0);
}
END_TEST

/* A thread that cannot be started on demand costs concurrency, not work:
 * what is queued runs on the workers there are, and the next queue tries
 * again. */
START_TEST(pool_lazy_start_fails)
{
    pool *p = pool_new(2);
    atomic_store(&counter, 0);
    atomic_store(&create_budget, 0);
    for (int i = 0; i < 10; i++)
        pool_submit(p, 3, bump, NULL);
    while (atomic_load(&counter) < 10)
        msleep(1);
    pool_stats st;
    pool_health(p, &st);
    ck_assert_uint_eq(st.active, 2);
    atomic_store(&create_budget, -1);
    atomic_store(&together_in, 0);
    atomic_store(&together_want, 2);
    pool_submit(p, 3, together, NULL);
    pool_submit(p, 3, together, NULL);
    while (atomic_load(&counter) < 12)
        msleep(1);
    pool_health(p, &st);
    ck_assert_uint_eq(st.running, 2);
    ck_assert_uint_eq(pool_free(p, -1), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("pool");
    tcase_add_test(tc, pool_runs_everything);
    tcase_add_test(tc, pool_priority_order);
    tcase_add_test(tc, pool_nested_waits_one_thread);
    tcase_add_test(tc, pool_group_timeout_drops_queued);
    tcase_add_test(tc, pool_group_cancelled);
    tcase_add_test(tc, pool_max_concurrent);
    tcase_add_test(tc, pool_spawn_from_work);
    tcase_add_test(tc, pool_steal_hands_over_data);
    tcase_add_test(tc, pool_new_reports_thread_error);
    tcase_add_test(tc, pool_threads_on_demand);
    tcase_add_test(tc, pool_lazy_start_fails);
    tcase_add_test(tc, pool_abandon_replaces);
    tcase_add_test(tc, pool_free_leaves_abandoned);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Benchmark: pool throughput.  A fan-out/fan-in and a layered DAG of
 * 100,000 no-op tasks through task groups on 1 and 2 workers, beside the
 * same work on a plain mutex-and-condvar pool (the comparison). */
#include "build-config.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exec/pool.h"
#include "exec/record.h"
#include "base/util.h"

#define NTASKS 100000
#define WIDTH 1000 /* DAG: NTASKS / WIDTH layers, each node needs two below */

static int noop(void *arg)
{
    (void)arg;
    return 0;
}

/* ---- ndf's pool ---- */

typedef struct dag {
    ndf_group *g;
    _Atomic int *need; /* unmet dependencies per node */
} dag;

static dag the_dag;

static int dag_node(void *arg)
{
    long i = (long)(intptr_t)arg;
    long layer = i / WIDTH, col = i % WIDTH;
    if (layer + 1 < NTASKS / WIDTH) {
        /* dependents: (layer+1, col) and (layer+1, col-1) each need us */
        long a = (layer + 1) * WIDTH + col;
        long b = (layer + 1) * WIDTH + (col + WIDTH - 1) % WIDTH;
        if (atomic_fetch_sub_explicit(&the_dag.need[a], 1, memory_order_acq_rel) == 1)
            pool_group_spawn(the_dag.g, dag_node, (void *)(intptr_t)a);
        if (atomic_fetch_sub_explicit(&the_dag.need[b], 1, memory_order_acq_rel) == 1)
            pool_group_spawn(the_dag.g, dag_node, (void *)(intptr_t)b);
    }
    return 0;
}

typedef struct job {
    ndf_exec *node;
    int kind; /* 0 fan-out, 1 dag */
    double secs;
    _Atomic int done;
} job;

static int bench_root(void *arg)
{
    job *j = arg;
    pool *p = j->node->rec->pool;
    double t0 = now_mono();
    ndf_group *g = pool_group_new(p, j->node, 0, 1);
    if (j->kind == 0) {
        for (long i = 0; i < NTASKS; i++)
            pool_group_spawn(g, noop, NULL);
    } else {
        the_dag.g = g;
        for (long i = 0; i < NTASKS; i++)
            atomic_store_explicit(&the_dag.need[i], i < WIDTH ? 0 : 2, memory_order_relaxed);
        for (long i = 0; i < WIDTH; i++)
            pool_group_spawn(g, dag_node, (void *)(intptr_t)i);
    }
    pool_group_wait(g);
    pool_group_free(g);
    j->secs = now_mono() - t0;
    atomic_store(&j->done, 1);
    return 0;
}

/* Best of `reps` runs, in tasks per second.  The root runs on the pool, so
 * `threads` workers are all that execute tasks. */
static double run_ndf(unsigned threads, int kind, int reps)
{
    pool *p = pool_new(threads);
    record *r = record_new("bench", NULL, INFINITY);
    r->pool = p;
    double best = INFINITY;
    for (int k = 0; k < reps; k++) {
        job j = {r->root, kind, 0, 0};
        pool_submit(p, 1, bench_root, &j);
        while (!atomic_load(&j.done)) {
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
        best = fmin(best, j.secs);
    }
    record_unref(r);
    pool_free(p, -1);
    return NTASKS / best;
}

/* ---- the peer: one mutex, one condvar, one FIFO ---- */

typedef struct mc_task {
    int (*fn)(void *);
    void *arg;
    struct mc_task *next;
} mc_task;

typedef struct mcpool {
    pthread_mutex_t lock;
    pthread_cond_t work, idle;
    mc_task *head, *tail;
    long pending;
    int stop;
    pthread_t th[8];
    unsigned n;
} mcpool;

static mcpool mc;

static void mc_submit(int (*fn)(void *), void *arg)
{
    mc_task *t = xmalloc(sizeof *t);
    t->fn = fn, t->arg = arg, t->next = NULL;
    pthread_mutex_lock(&mc.lock);
    if (mc.tail)
        mc.tail->next = t;
    else
        mc.head = t;
    mc.tail = t;
    mc.pending++;
    pthread_cond_signal(&mc.work);
    pthread_mutex_unlock(&mc.lock);
}

static void *mc_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mc.lock);
    for (;;) {
        while (!mc.head && !mc.stop)
            pthread_cond_wait(&mc.work, &mc.lock);
        if (!mc.head)
            break;
        mc_task *t = mc.head;
        mc.head = t->next;
        if (!mc.head)
            mc.tail = NULL;
        pthread_mutex_unlock(&mc.lock);
        t->fn(t->arg);
        free(t);
        pthread_mutex_lock(&mc.lock);
        if (--mc.pending == 0)
            pthread_cond_broadcast(&mc.idle);
    }
    pthread_mutex_unlock(&mc.lock);
    return NULL;
}

static _Atomic int *mc_need;

static int mc_dag_node(void *arg)
{
    long i = (long)(intptr_t)arg;
    long layer = i / WIDTH, col = i % WIDTH;
    if (layer + 1 < NTASKS / WIDTH) {
        long a = (layer + 1) * WIDTH + col;
        long b = (layer + 1) * WIDTH + (col + WIDTH - 1) % WIDTH;
        if (atomic_fetch_sub(&mc_need[a], 1) == 1)
            mc_submit(mc_dag_node, (void *)(intptr_t)a);
        if (atomic_fetch_sub(&mc_need[b], 1) == 1)
            mc_submit(mc_dag_node, (void *)(intptr_t)b);
    }
    return 0;
}

static double run_mc(unsigned threads, int kind, int reps)
{
    memset(&mc, 0, sizeof mc);
    pthread_mutex_init(&mc.lock, NULL);
    pthread_cond_init(&mc.work, NULL);
    pthread_cond_init(&mc.idle, NULL);
    mc.n = threads;
    for (unsigned i = 0; i < threads; i++)
        pthread_create(&mc.th[i], NULL, mc_main, NULL);
    double best = INFINITY;
    for (int k = 0; k < reps; k++) {
        double t0 = now_mono();
        if (kind == 0) {
            for (long i = 0; i < NTASKS; i++)
                mc_submit(noop, NULL);
        } else {
            for (long i = 0; i < NTASKS; i++)
                atomic_store(&mc_need[i], i < WIDTH ? 0 : 2);
            for (long i = 0; i < WIDTH; i++)
                mc_submit(mc_dag_node, (void *)(intptr_t)i);
        }
        pthread_mutex_lock(&mc.lock);
        while (mc.pending)
            pthread_cond_wait(&mc.idle, &mc.lock);
        pthread_mutex_unlock(&mc.lock);
        best = fmin(best, now_mono() - t0);
    }
    pthread_mutex_lock(&mc.lock);
    mc.stop = 1;
    pthread_cond_broadcast(&mc.work);
    pthread_mutex_unlock(&mc.lock);
    for (unsigned i = 0; i < threads; i++)
        pthread_join(mc.th[i], NULL);
    return NTASKS / best;
}

int main(void)
{
    the_dag.need = xcalloc(NTASKS, sizeof *the_dag.need);
    mc_need = xcalloc(NTASKS, sizeof *mc_need);
    const int reps = 51;
    printf("pool throughput: %d no-op tasks, best of %d (tasks/s; higher is better)\n", NTASKS,
           reps);
    printf("%-22s %8s %14s %18s %7s\n", "workload", "threads", "ndf pool", "mutex+condvar",
           "ratio");
    static const char *names[] = {"fan-out/fan-in", "layered DAG (w=1000)"};
    /* BENCH_POOL=KIND:THREADS (0 fan-out, 1 DAG) runs one ndf row, many
     * times, for profiling. */
    const char *only = getenv("BENCH_POOL");
    if (only) {
        int kind = atoi(only);
        const char *c = strchr(only, ':');
        unsigned t = c ? (unsigned)atoi(c + 1) : 1;
        printf("%-22s %8u %14.0f\n", names[kind & 1], t, run_ndf(t, kind & 1, 200));
        return 0;
    }
    for (int kind = 0; kind < 2; kind++) {
        for (unsigned t = 1; t <= 2; t++) {
            double a = run_ndf(t, kind, reps);
            double b = run_mc(t, kind, reps);
            printf("%-22s %8u %14.0f %18.0f %6.1fx\n", names[kind], t, a, b, a / b);
        }
    }
    free(the_dag.need);
    free(mc_need);
    return 0;
}

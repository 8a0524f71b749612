/* The executor: a work-stealing pool with per-priority queues, task groups
 * whose waiters help instead of parking, and the seed's execute calls.
 *
 * Scheduling.  Each worker owns one Chase-Lev deque per priority (push and
 * pop at the bottom by the owner, steal at the top by others: no lock on the
 * hot path).  Work submitted from outside the pool goes to a per-priority
 * global queue.  A thread looking for work scans priorities from 1 to 5 and,
 * within one, its own deque, the global queue, then the others' deques; so a
 * saturated pool starts priority 1 before 5.  Idle workers spin briefly and
 * then sleep on an event count: a producer touches the lock only when
 * someone sleeps. */
#include "build-config.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/context.h"
#include "exec/executor.h"
#include "base/learning.h"
#include "exec/services.h"
#include "base/util.h"

#define NPRIO 5
#define CACHELINE 64

/* ------------------------------------------------------------------ */
/* Work items and the Chase-Lev deque (Le, Pop, Cohen, Nardelli 2013). */

typedef struct item {
    ndf_work_fn fn;
    void *arg;
    struct ndf_group *g;
    struct item *next;       /* global queue, group overflow, free list links */
    struct worker *owner;    /* whose free list it returns to; NULL: malloc'd */
    int prio;                /* 0..NPRIO-1 */
} item;

typedef struct cl_array {
    size_t mask;             /* size - 1, size a power of two */
    struct cl_array *retired; /* older arrays, freed with the deque */
    _Atomic(item *) slot[];
} cl_array;

typedef struct deque {
    _Alignas(CACHELINE) _Atomic long top;
    _Alignas(CACHELINE) _Atomic long bottom;
    _Atomic(cl_array *) arr;
    long top_seen;           /* owner only: a lower bound of top (it only grows) */
} deque;

static cl_array *cl_array_new(size_t size)
{
    cl_array *a = xcalloc(1, sizeof *a + size * sizeof(_Atomic(item *)));
    a->mask = size - 1;
    return a;
}

static void deque_init(deque *q)
{
    atomic_init(&q->top, 0);
    atomic_init(&q->bottom, 0);
    atomic_init(&q->arr, cl_array_new(256));
}

static void deque_destroy(deque *q)
{
    cl_array *a = atomic_load(&q->arr);
    while (a) {
        cl_array *next = a->retired;
        free(a);
        a = next;
    }
}

/* Owner only. */
static void deque_push(deque *q, item *x)
{
    long b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    cl_array *a = atomic_load_explicit(&q->arr, memory_order_relaxed);
    /* Reading top would pull the cache line thieves write: a stale value
     * only overestimates the size, so look again only when it seems full. */
    long t = q->top_seen;
    if (b - t > (long)a->mask)
        t = q->top_seen = atomic_load_explicit(&q->top, memory_order_acquire);
    if (b - t > (long)a->mask) {
        cl_array *na = cl_array_new((a->mask + 1) * 2);
        for (long i = t; i < b; i++)
            atomic_store_explicit(&na->slot[(size_t)i & na->mask],
                                  atomic_load_explicit(&a->slot[(size_t)i & a->mask],
                                                       memory_order_relaxed),
                                  memory_order_relaxed);
        /* Thieves may still read the old array: keep it until the end. */
        na->retired = a;
        atomic_store_explicit(&q->arr, na, memory_order_release);
        a = na;
    }
    atomic_store_explicit(&a->slot[(size_t)b & a->mask], x, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&q->bottom, b + 1, memory_order_relaxed);
}

/* Owner only. */
static item *deque_take(deque *q)
{
    long b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    long t0 = atomic_load_explicit(&q->top, memory_order_relaxed);
    if (b <= t0)
        return NULL; /* cheap emptiness test; only the owner grows bottom */
    b--;
    cl_array *a = atomic_load_explicit(&q->arr, memory_order_relaxed);
    atomic_store_explicit(&q->bottom, b, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    long t = atomic_load_explicit(&q->top, memory_order_relaxed);
    item *x = NULL;
    if (t <= b) {
        x = atomic_load_explicit(&a->slot[(size_t)b & a->mask], memory_order_relaxed);
        if (t == b) {
            if (!atomic_compare_exchange_strong_explicit(&q->top, &t, t + 1,
                                                         memory_order_seq_cst,
                                                         memory_order_relaxed))
                x = NULL;
            atomic_store_explicit(&q->bottom, b + 1, memory_order_relaxed);
        }
    } else {
        atomic_store_explicit(&q->bottom, b + 1, memory_order_relaxed);
    }
    return x;
}

/* Any thread.  *contended is set when another thief won a race. */
static item *deque_steal(deque *q, int *contended)
{
    long t = atomic_load_explicit(&q->top, memory_order_acquire);
    atomic_thread_fence(memory_order_seq_cst);
    long b = atomic_load_explicit(&q->bottom, memory_order_acquire);
    if (t >= b)
        return NULL;
    cl_array *a = atomic_load_explicit(&q->arr, memory_order_acquire);
    item *x = atomic_load_explicit(&a->slot[(size_t)t & a->mask], memory_order_relaxed);
    if (!atomic_compare_exchange_strong_explicit(&q->top, &t, t + 1, memory_order_seq_cst,
                                                 memory_order_relaxed)) {
        *contended = 1;
        return NULL;
    }
    return x;
}

static int deque_maybe_nonempty(deque *q)
{
    return atomic_load_explicit(&q->bottom, memory_order_relaxed) >
           atomic_load_explicit(&q->top, memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* The pool. */

typedef struct worker {
    deque dq[NPRIO];
    struct pool *pool;
    unsigned index;
    pthread_t thread;
    _Atomic int busy;         /* inside work (for pool_free's bounded wait) */
    /* Items are recycled, not malloc'd per task: a worker allocates from its
     * own list; items another thread finished come back through the
     * lock-free `remote` stack, which the owner takes whole. */
    item *free_local;
    void **slabs;             /* item blocks, freed with the pool */
    size_t nslabs;
    /* Batched bookkeeping, so that a stream of small tasks does not move a
     * shared cache line per task: items finished here that belong to
     * another worker go back as one chain (ret_*), and ended work of one
     * group is subtracted from its pending count at once (done_*).  Both
     * are flushed when the worker switches groups or owners, after a
     * batch, and before it looks elsewhere or sleeps. */
    item *ret_head, *ret_tail;
    struct worker *ret_owner;
    unsigned ret_n;
    struct ndf_group *done_g;
    long done_n;
    _Alignas(CACHELINE) _Atomic(item *) free_remote;
} worker;

typedef struct gqueue {
    pthread_mutex_t lock;
    item *head, *tail;
    _Atomic long count;
} gqueue;

struct pool {
    unsigned n;
    worker *w;                /* n workers, cache-line aligned */
    gqueue global[NPRIO];
    _Atomic int stop;
    _Atomic unsigned exited;  /* workers that returned */
    /* The event count idle threads sleep on: EV_EPOCH bumps wake them;
     * EV_WAITERS counts those announced; EV_DIRTY says someone announced
     * since the last bump.  A producer pays one fence and one load unless
     * a sleeper announced since the last wake-up, so a burst of spawns
     * while a sleeper is still waking up costs no lock and no system call
     * per task. */
    pthread_mutex_t sleep_lock;
    pthread_cond_t sleep_cond;
    _Alignas(CACHELINE) _Atomic uint64_t ev;
};

#define EV_WAITERS 0xffffffffull
#define EV_DIRTY (1ull << 32)
#define EV_EPOCH_ONE (1ull << 33)
#define EV_EPOCH(v) ((v) >> 33)

struct ndf_group {
    pool *pool;
    ndf_exec *node;
    record *rec;              /* a reference, so node outlives the group */
    int prio;
    unsigned max;
    /* Work can overrun a deadline: ended work is counted at once, so that
     * a waiter that gives up reports exactly what still runs.  Without a
     * deadline, workers count ended work in batches (DONE_BATCH). */
    int exact;
    _Atomic int stop;         /* 0, or the status that stopped the group */
    /* The owner's handle, + 1 while pending > 0 (taken when pending leaves
     * 0, dropped when it comes back): not one per task. */
    _Atomic long refs;
    _Alignas(CACHELINE) _Atomic long pending; /* spawned and not yet ended,
                                                 overflow included */
    pthread_mutex_t lock;     /* overflow and inflight, when max > 0 */
    long inflight;            /* queued in the pool or running */
    item *ov_head, *ov_tail;  /* waiting for a concurrency slot */
};

static _Thread_local worker *tl_worker;

pool *pool_self(void)
{
    return tl_worker ? tl_worker->pool : NULL;
}

unsigned pool_size(const pool *p)
{
    return p->n;
}

#define SLAB_ITEMS 256

static item *item_alloc(pool *p)
{
    worker *w = tl_worker;
    if (!w || w->pool != p) {
        item *it = xmalloc(sizeof *it);
        it->owner = NULL;
        return it;
    }
    item *it = w->free_local;
    if (!it) {
        it = atomic_exchange_explicit(&w->free_remote, NULL, memory_order_acquire);
        if (!it) {
            item *slab = xmalloc(SLAB_ITEMS * sizeof *slab);
            w->slabs = xrealloc(w->slabs, (w->nslabs + 1) * sizeof *w->slabs);
            w->slabs[w->nslabs++] = slab;
            for (int i = 0; i < SLAB_ITEMS; i++) {
                slab[i].owner = w;
                slab[i].next = i + 1 < SLAB_ITEMS ? &slab[i + 1] : NULL;
            }
            it = slab;
        }
    }
    w->free_local = it->next;
    return it;
}

/* Hands a chain of items back to their owner in one step. */
static void give_back(worker *o, item *head, item *tail)
{
    item *h = atomic_load_explicit(&o->free_remote, memory_order_relaxed);
    do
        tail->next = h;
    while (!atomic_compare_exchange_weak_explicit(&o->free_remote, &h, head, memory_order_release,
                                                  memory_order_relaxed));
}

static void flush_ret(worker *w)
{
    if (!w->ret_head)
        return;
    give_back(w->ret_owner, w->ret_head, w->ret_tail);
    w->ret_head = w->ret_tail = NULL;
    w->ret_owner = NULL;
    w->ret_n = 0;
}

#define RET_BATCH 64

static void item_free(item *it)
{
    worker *o = it->owner;
    if (!o) {
        free(it);
        return;
    }
    worker *self = tl_worker;
    if (o == self) {
        it->next = o->free_local;
        o->free_local = it;
        return;
    }
    if (!self || self->pool != o->pool) {
        give_back(o, it, it);
        return;
    }
    if (self->ret_owner != o) {
        flush_ret(self);
        self->ret_owner = o;
    }
    it->next = self->ret_head;
    self->ret_head = it;
    if (!self->ret_tail)
        self->ret_tail = it;
    if (++self->ret_n >= RET_BATCH)
        flush_ret(self);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Wakes the sleepers that announced since the last wake-up, if any. */
static void notify(pool *p)
{
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t v = atomic_load_explicit(&p->ev, memory_order_relaxed);
    while (v & EV_DIRTY) {
        uint64_t nv = ((v & ~EV_DIRTY) & EV_WAITERS) | ((EV_EPOCH(v) + 1) << 33);
        if (atomic_compare_exchange_weak_explicit(&p->ev, &v, nv, memory_order_seq_cst,
                                                  memory_order_relaxed)) {
            pthread_mutex_lock(&p->sleep_lock);
            pthread_cond_broadcast(&p->sleep_cond);
            pthread_mutex_unlock(&p->sleep_lock);
            return;
        }
    }
}

/* Wakes every sleeper, announced or not (stopping the pool). */
static void notify_all(pool *p)
{
    atomic_fetch_add(&p->ev, EV_EPOCH_ONE);
    pthread_mutex_lock(&p->sleep_lock);
    pthread_cond_broadcast(&p->sleep_cond);
    pthread_mutex_unlock(&p->sleep_lock);
}

static void gqueue_push(gqueue *q, item *it)
{
    it->next = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    atomic_fetch_add(&q->count, 1);
    pthread_mutex_unlock(&q->lock);
}

/* `groups_only`: a group waiter does not start whole new executions
 * (ungrouped work) inside its wait. */
static item *gqueue_pop(gqueue *q, int groups_only)
{
    if (atomic_load_explicit(&q->count, memory_order_relaxed) == 0)
        return NULL;
    pthread_mutex_lock(&q->lock);
    item *it = q->head;
    if (it && groups_only && !it->g)
        it = NULL;
    if (it) {
        q->head = it->next;
        if (!q->head)
            q->tail = NULL;
        atomic_fetch_sub(&q->count, 1);
    }
    pthread_mutex_unlock(&q->lock);
    return it;
}

/* Places an item where it is cheapest: the calling worker's own deque, else
 * the global queue. */
static void enqueue(pool *p, item *it)
{
    worker *self = tl_worker;
    if (self && self->pool == p)
        deque_push(&self->dq[it->prio], it);
    else
        gqueue_push(&p->global[it->prio], it);
    notify(p);
}

static item *find_work(pool *p, worker *self, int groups_only)
{
    for (int pr = 0; pr < NPRIO; pr++) {
        item *it;
        if (self && deque_maybe_nonempty(&self->dq[pr]) && (it = deque_take(&self->dq[pr])))
            return it;
        if ((it = gqueue_pop(&p->global[pr], groups_only)))
            return it;
        int contended;
        do {
            contended = 0;
            unsigned start = self ? self->index + 1 : 0;
            for (unsigned k = 0; k < p->n; k++) {
                worker *v = &p->w[(start + k) % p->n];
                if (v == self || !deque_maybe_nonempty(&v->dq[pr]))
                    continue;
                if ((it = deque_steal(&v->dq[pr], &contended)))
                    return it;
            }
        } while (contended);
    }
    return NULL;
}

static void group_unref(ndf_group *g)
{
    if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (item *it = g->ov_head, *next; it; it = next) {
        next = it->next;
        item_free(it);
    }
    pthread_mutex_destroy(&g->lock);
    record_unref(g->rec);
    free(g);
}

/* Counts one more piece of work of `g` (spawn side).  The first one
 * takes the reference that pending work holds on the group. */
static void group_take(ndf_group *g)
{
    if (atomic_fetch_add_explicit(&g->pending, 1, memory_order_relaxed) == 0)
        atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
}

/* Ends `n` pieces of work of `g`: the last wakes its waiter and drops the
 * reference pending work held. */
static void group_end(ndf_group *g, long n)
{
    if (atomic_fetch_sub_explicit(&g->pending, n, memory_order_seq_cst) == n) {
        notify(g->pool);
        group_unref(g);
    }
}

static void flush_done(worker *w)
{
    ndf_group *g = w->done_g;
    if (!g)
        return;
    long n = w->done_n;
    w->done_g = NULL;
    w->done_n = 0;
    group_end(g, n);
}

/* What a worker owes others: ended work and foreign items. */
static void worker_flush(worker *w)
{
    if (w) {
        flush_done(w);
        flush_ret(w);
    }
}

#define DONE_BATCH 256

static void item_done(ndf_group *g)
{
    if (g->max) {
        item *next = NULL;
        pthread_mutex_lock(&g->lock);
        if (g->ov_head && !atomic_load(&g->stop)) {
            next = g->ov_head;
            g->ov_head = next->next;
            if (!g->ov_head)
                g->ov_tail = NULL;
        } else {
            g->inflight--;
        }
        pthread_mutex_unlock(&g->lock);
        if (next)
            enqueue(g->pool, next);
    }
    group_end(g, 1);
}

static void run_item(item *it)
{
    ndf_group *g = it->g;
    worker *w = tl_worker;
    if (w && w->pool != (g ? g->pool : w->pool))
        w = NULL;
    /* Ended work of another group is owed before this work, which may take
     * long, starts. */
    if (w && w->done_g && w->done_g != g)
        flush_done(w);
    if (!g) {
        it->fn(it->arg);
    } else {
        if (!atomic_load_explicit(&g->stop, memory_order_relaxed))
            it->fn(it->arg);
        if (g->max || g->exact || !w) {
            item_done(g);
        } else {
            if (w->done_g != g) {
                flush_done(w);
                w->done_g = g;
            }
            if (++w->done_n >= DONE_BATCH)
                flush_done(w);
        }
    }
    item_free(it);
}

/* Sleeps until new work or a wake-up, or until `until` (now_mono seconds,
 * INFINITY for none).  `done` (may be NULL) is checked after announcing the
 * sleep, so a wake-up between the caller's check and the sleep is not lost. */
static void idle_wait(pool *p, worker *self, double until, _Atomic long *done, int groups_only)
{
    /* Announce (one waiter more, dirty), then look: a producer either
     * sees the announcement or its work is seen here. */
    uint64_t v = atomic_load_explicit(&p->ev, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&p->ev, &v, (v + 1) | EV_DIRTY,
                                                  memory_order_seq_cst, memory_order_relaxed))
        ;
    uint64_t e = EV_EPOCH(v);
    int ready = atomic_load(&p->stop) || (done && atomic_load(done) == 0);
    if (!ready) {
        for (int pr = 0; pr < NPRIO && !ready; pr++) {
            if (atomic_load(&p->global[pr].count) > 0)
                ready = !groups_only || 1;
            for (unsigned k = 0; k < p->n && !ready; k++)
                if (deque_maybe_nonempty(&p->w[k].dq[pr]))
                    ready = 1;
        }
    }
    (void)self;
    if (!ready) {
        pthread_mutex_lock(&p->sleep_lock);
        while (EV_EPOCH(atomic_load(&p->ev)) == e && !atomic_load(&p->stop)) {
            if (isinf(until)) {
                pthread_cond_wait(&p->sleep_cond, &p->sleep_lock);
            } else {
                double now = now_mono();
                if (now >= until)
                    break;
                /* The condvar runs on CLOCK_MONOTONIC, like now_mono(). */
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                double t = (double)ts.tv_sec + ts.tv_nsec / 1e9 + (until - now);
                /* A deadline decades away (--timeout 1e308) must not
                 * overflow time_t; waking early only loops once more. */
                if (t > 1e15)
                    t = 1e15;
                ts.tv_sec = (time_t)t;
                ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
                if (pthread_cond_timedwait(&p->sleep_cond, &p->sleep_lock, &ts) == ETIMEDOUT)
                    break;
            }
        }
        pthread_mutex_unlock(&p->sleep_lock);
    }
    atomic_fetch_sub(&p->ev, 1);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    pool *p = w->pool;
    tl_worker = w;
    for (;;) {
        item *it = find_work(p, w, 0);
        if (!it) {
            worker_flush(w);
            /* Spin a little before sleeping: producers usually come back
             * within microseconds, and a sleep costs two system calls on
             * each side. */
            for (int i = 0; i < 64 && !it; i++) {
                cpu_relax();
                it = find_work(p, w, 0);
            }
        }
        if (it) {
            atomic_store_explicit(&w->busy, 1, memory_order_relaxed);
            run_item(it);
            atomic_store_explicit(&w->busy, 0, memory_order_relaxed);
            continue;
        }
        worker_flush(w);
        if (atomic_load(&p->stop))
            break;
        idle_wait(p, w, INFINITY, NULL, 0);
    }
    worker_flush(w);
    atomic_fetch_add(&p->exited, 1);
    return NULL;
}

pool *pool_new(unsigned threads)
{
    if (threads < 1)
        threads = 1;
    pool *p = xcalloc(1, sizeof *p);
    p->n = threads;
    p->w = aligned_alloc(CACHELINE, ((sizeof(worker) * threads + CACHELINE - 1) / CACHELINE) *
                                        CACHELINE);
    if (!p->w) {
        free(p);
        err_set(NDF_ERR_NOMEM, "executor: out of memory for %u workers", threads);
        return NULL;
    }
    memset(p->w, 0, sizeof(worker) * threads);
    for (int i = 0; i < NPRIO; i++)
        pthread_mutex_init(&p->global[i].lock, NULL);
    pthread_mutex_init(&p->sleep_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->sleep_cond, &ca);
    pthread_condattr_destroy(&ca);
    for (unsigned i = 0; i < threads; i++) {
        p->w[i].pool = p;
        p->w[i].index = i;
        for (int j = 0; j < NPRIO; j++)
            deque_init(&p->w[i].dq[j]);
    }
    for (unsigned i = 0; i < threads; i++) {
        int e = pthread_create(&p->w[i].thread, NULL, worker_main, &p->w[i]);
        if (e) {
            err_set(NDF_ERR_RESOURCE, "executor: cannot start worker thread %u: %s", i,
                    strerror(e));
            p->n = i;
            pool_free(p, -1);
            return NULL;
        }
    }
    return p;
}

void pool_free(pool *p, double wait_s)
{
    if (!p)
        return;
    atomic_store(&p->stop, 1);
    notify_all(p);
    if (wait_s >= 0) {
        double until = now_mono() + wait_s;
        while (atomic_load(&p->exited) < p->n && now_mono() < until) {
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (atomic_load(&p->exited) < p->n) {
            log_msg(0, "executor: %u worker(s) still inside overrunning work at exit; "
                       "leaving them running",
                    p->n - atomic_load(&p->exited));
            for (unsigned i = 0; i < p->n; i++)
                pthread_detach(p->w[i].thread);
            return; /* leaked on purpose: those workers still use it */
        }
    }
    for (unsigned i = 0; i < p->n; i++)
        pthread_join(p->w[i].thread, NULL);
    for (unsigned i = 0; i < p->n; i++) {
        for (int j = 0; j < NPRIO; j++)
            deque_destroy(&p->w[i].dq[j]);
        for (size_t k = 0; k < p->w[i].nslabs; k++)
            free(p->w[i].slabs[k]);
        free(p->w[i].slabs);
    }
    for (int i = 0; i < NPRIO; i++) {
        for (item *it = p->global[i].head, *next; it; it = next) {
            next = it->next;
            if (!it->owner)
                free(it);
        }
        pthread_mutex_destroy(&p->global[i].lock);
    }
    pthread_mutex_destroy(&p->sleep_lock);
    pthread_cond_destroy(&p->sleep_cond);
    free(p->w);
    free(p);
}

static int prio_index(int prio)
{
    if (prio < NDF_PRIORITY_HIGHEST)
        prio = NDF_PRIORITY_HIGHEST;
    if (prio > NDF_PRIORITY_LOWEST)
        prio = NDF_PRIORITY_LOWEST;
    return prio - NDF_PRIORITY_HIGHEST;
}

void pool_submit(pool *p, int prio, ndf_work_fn fn, void *arg)
{
    item *it = item_alloc(p);
    it->fn = fn;
    it->arg = arg;
    it->g = NULL;
    it->prio = prio_index(prio);
    enqueue(p, it);
}

/* ------------------------------------------------------------------ */
/* Groups. */

ndf_group *pool_group_new(pool *p, ndf_exec *node, unsigned max_concurrent, int prio)
{
    ndf_group *g = aligned_alloc(CACHELINE, (sizeof *g + CACHELINE - 1) / CACHELINE * CACHELINE);
    if (!g)
        abort(); /* like x*alloc: out of memory */
    memset(g, 0, sizeof *g);
    g->pool = p;
    g->node = node;
    g->rec = record_ref(node->rec);
    g->prio = prio_index(prio);
    g->max = max_concurrent;
    g->exact = isfinite(node->deadline);
    atomic_init(&g->pending, 0);
    atomic_init(&g->refs, 1);
    pthread_mutex_init(&g->lock, NULL);
    return g;
}

/* The status that stops work of `node` now: its execution's cancellation or
 * its deadline. */
static int node_stopped(const ndf_exec *node)
{
    return node_stop_status(node);
}

/* node_stopped() on the coarse clock (a few ns instead of a few tens, and
 * 1-4 ms resolution, plenty for deadlines): checked before every piece of
 * work a group waiter runs. */
static int node_stopped_fast(const ndf_exec *node)
{
    int c = atomic_load_explicit(&node->rec->cancel, memory_order_relaxed);
    if (c && !node->cleanup)
        return c;
    if (node->deadline < INFINITY) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        if ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9 >= node->deadline)
            return node_stopped(node);
    }
    return 0;
}

int pool_group_spawn(ndf_group *g, ndf_work_fn fn, void *arg)
{
    if (!g || !fn)
        return err_set(NDF_ERR_INVALID, "group_spawn: no group or no function");
    int st = atomic_load_explicit(&g->stop, memory_order_relaxed);
    if (st)
        return err_set(st, "%s: group stopped (%s)", g->node->name, ndf_status_name(st));
    item *it = item_alloc(g->pool);
    it->fn = fn;
    it->arg = arg;
    it->g = g;
    it->prio = g->prio;
    group_take(g);
    if (g->max) {
        pthread_mutex_lock(&g->lock);
        if ((unsigned long)g->inflight >= g->max) {
            it->next = NULL;
            if (g->ov_tail)
                g->ov_tail->next = it;
            else
                g->ov_head = it;
            g->ov_tail = it;
            pthread_mutex_unlock(&g->lock);
            return NDF_OK;
        }
        g->inflight++;
        pthread_mutex_unlock(&g->lock);
    }
    enqueue(g->pool, it);
    return NDF_OK;
}

/* Stops the group: drops what waits for a concurrency slot; queued work is
 * dropped as it is dequeued. */
static void group_stop(ndf_group *g, int st)
{
    int zero = 0;
    atomic_compare_exchange_strong(&g->stop, &zero, st);
    pthread_mutex_lock(&g->lock);
    item *it = g->ov_head;
    g->ov_head = g->ov_tail = NULL;
    pthread_mutex_unlock(&g->lock);
    long n = 0;
    while (it) {
        item *next = it->next;
        item_free(it);
        it = next;
        n++;
    }
    if (n)
        group_end(g, n); /* the owner's handle keeps the group alive */
}

int pool_group_wait(ndf_group *g)
{
    if (!g)
        return err_set(NDF_ERR_INVALID, "group_wait: no group");
    pool *p = g->pool;
    worker *self = tl_worker && tl_worker->pool == p ? tl_worker : NULL;
    int st = 0;
    /* Work of g this thread ended is counted here but owed to pending. */
    while (atomic_load_explicit(&g->pending, memory_order_acquire) -
               (self && self->done_g == g ? self->done_n : 0) > 0) {
        if ((st = node_stopped_fast(g->node)))
            break;
        item *it = find_work(p, self, 1);
        if (it) {
            run_item(it);
            continue;
        }
        worker_flush(self);
        idle_wait(p, self, g->node->deadline, &g->pending, 1);
    }
    worker_flush(self);
    if (!st)
        return NDF_OK;

    /* Stopped: drop what is queued, give running work the grace period to
     * notice.  Deeper groups give up a little earlier than the groups that
     * wait for them, so the outer ones see the inner ones return. */
    group_stop(g, st);
    double grace = g->rec->kill_grace;
    double base = isfinite(g->node->deadline) && st == NDF_ERR_TIMEOUT ? g->node->deadline
                                                                        : now_mono();
    double bound = base + grace * (1.0 + 1.0 / (2.0 + g->node->depth));
    while (atomic_load_explicit(&g->pending, memory_order_acquire) > 0) {
        /* Dropping queued work is instant: do it before looking at the
         * clock. */
        item *it = find_work(p, self, 1);
        if (it) {
            run_item(it);
            continue;
        }
        worker_flush(self);
        double now = now_mono();
        if (now >= bound) {
            long left = atomic_load(&g->pending);
            double over = now - base;
            log_msg(0, "%s: %ld piece(s) of work overran the deadline by %.1fs; not waiting",
                    g->node->name, left, over);
            char msg[160];
            snprintf(msg, sizeof msg, "%ld piece(s) of work overran the deadline by %.1fs", left,
                     over);
            node_append(g->node, REC_LOG, msg, strlen(msg), 0);
            node_append(g->node, REC_LOG, "\n", 1, 0);
            break;
        }
        idle_wait(p, self, bound, &g->pending, 1);
    }
    return err_set(st, "%s: %s", g->node->name,
                   st == NDF_ERR_CANCELLED ? "cancelled" : "deadline passed");
}

void pool_group_free(ndf_group *g)
{
    if (g)
        group_unref(g);
}

/* ------------------------------------------------------------------ */
/* The executor. */

struct executor {
    executor_opts o;
    pool *pool;
    pthread_mutex_t lock;     /* guards the record lists and completion */
    pthread_cond_t done_cond; /* broadcast when an execution finishes */
    record **kept;            /* ring of the last o.keep started */
    size_t nkept, kept_next;
};

static _Atomic(executor *) current;

executor *executor_current(void)
{
    return atomic_load(&current);
}

pool *executor_pool(executor *ex)
{
    return ex->pool;
}

registry *executor_registry(executor *ex)
{
    return ex->o.reg;
}

const executor_opts *executor_options(executor *ex)
{
    return &ex->o;
}

executor *executor_new(const executor_opts *opts)
{
    executor *ex = xcalloc(1, sizeof *ex);
    ex->o = *opts;
    if (ex->o.threads < 1)
        ex->o.threads = 1;
    if (ex->o.keep == 0)
        ex->o.keep = 64;
    if (ex->o.kill_grace <= 0)
        ex->o.kill_grace = 2.0;
    ex->pool = pool_new(ex->o.threads);
    if (!ex->pool) {
        free(ex);
        return NULL;
    }
    pthread_mutex_init(&ex->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ex->done_cond, &ca);
    pthread_condattr_destroy(&ca);
    ex->kept = xcalloc(ex->o.keep, sizeof *ex->kept);
    atomic_store(&current, ex);
    return ex;
}

void executor_free(executor *ex)
{
    if (!ex)
        return;
    executor *self = ex;
    atomic_compare_exchange_strong(&current, &self, NULL);
    pool_free(ex->pool, ex->o.kill_grace * 2);
    for (size_t i = 0; i < ex->nkept; i++)
        record_unref(ex->kept[i]);
    free(ex->kept);
    pthread_mutex_destroy(&ex->lock);
    pthread_cond_destroy(&ex->done_cond);
    free(ex);
}

const char *fallback_cause_name(fallback_cause c)
{
    switch (c) {
    case FALLBACK_NONE: return "none";
    case FALLBACK_FAILURE: return "failure";
    case FALLBACK_NOT_FOUND: return "not found";
    case FALLBACK_CONFIDENCE: return "confidence gate";
    case FALLBACK_TIMEOUT: return "timeout";
    }
    return "unknown";
}

/* The confidence gate: NDF_ERR_CONFIDENCE when the pattern's confidence is
 * trusted (min_samples reached) and below its threshold. */
static int confidence_gate(executor *ex, pattern *p)
{
    const learning_params *lp = registry_learning(ex->o.reg);
    learning_state st;
    pattern_stats(p, &st);
    int trusted = learning_trusted(&st, lp);
    double score = st.score;
    learning_free(&st);
    double thr = pattern_threshold(p, ex->o.confidence_threshold);
    if (trusted && score < thr)
        return err_set(NDF_ERR_CONFIDENCE,
                       "pattern '%s': confidence %.3f is below its threshold %.3f "
                       "(use --force to run it anyway)",
                       p->name, score, thr);
    return NDF_OK;
}

static double pattern_deadline(executor *ex, pattern *p, double timeout_s, double now)
{
    double t = timeout_s > 0 ? timeout_s : p->timeout > 0 ? p->timeout : ex->o.pattern_timeout;
    return t > 0 ? now + t : INFINITY;
}

/* Runs the type's run() in PATTERN node `n` and settles its state.  Returns
 * the status, with err_msg() set. */
static int run_in_node(pattern *p, ndf_exec *n)
{
    const ndf_pattern_type_def *def = p->type ? p->type->def.ptype : NULL;
    if (!def || !def->run) {
        node_set_state(n, NDF_STATE_FAILED, "pattern has no runnable type");
        return err_set(NDF_ERR_INVALID, "pattern '%s' has no runnable type", p->name);
    }
    int st = node_stopped(n);
    if (st) {
        node_set_state(n, st == NDF_ERR_CANCELLED ? NDF_STATE_CANCELLED : NDF_STATE_TIMED_OUT,
                       "not started: deadline passed");
        return err_set(st, "pattern '%s': not started: %s", p->name, ndf_status_name(st));
    }
    node_set_state(n, NDF_STATE_RUNNING, NULL);
    err_clear();
    int rc = def->run(&host_services, n, p->instance);
    if (rc > 0 || rc < NDF_STATUS_MIN)
        rc = NDF_ERR_EXECUTION;
    if (n == n->rec->root && atomic_load(&n->rec->claimed))
        return rc; /* the waiter gave up on it: the record is settled */
    ndf_state cur = atomic_load(&n->state);
    if (rc == NDF_OK) {
        if (!state_final(cur) || cur == NDF_STATE_FAILED)
            node_set_state(n, NDF_STATE_COMPLETED, NULL);
        else
            node_set_state(n, cur, NULL);
        return NDF_OK;
    }
    if (!*err_msg())
        err_set(rc, "pattern '%s' %s", p->name, ndf_status_name(rc));
    ndf_state fs = rc == NDF_ERR_TIMEOUT     ? NDF_STATE_TIMED_OUT
                   : rc == NDF_ERR_CANCELLED ? NDF_STATE_CANCELLED
                                             : NDF_STATE_FAILED;
    if (cur == NDF_STATE_ROLLED_BACK)
        fs = cur;
    node_set_state(n, fs, err_msg());
    return rc;
}

/* Settles an execution once (the work returning and a waiter giving up on
 * an overrun race for it): status, learning, on_complete, waiters. */
static int finish(executor *ex, record *r, pattern *p, int status, const char *msg)
{
    int zero = 0;
    if (!atomic_compare_exchange_strong(&r->claimed, &zero, 1))
        return 0;
    double end = now_mono();
    pthread_mutex_lock(&r->lock);
    r->status = status;
    r->error = status && msg && *msg ? xstrdup(msg) : status ? xstrdup(ndf_status_name(status))
                                                           : NULL;
    r->end = end;
    pthread_mutex_unlock(&r->lock);
    double dur = r->root->start > 0 ? end - r->root->start : 0;
    if (ex->o.reg && p)
        registry_record(ex->o.reg, p, status == NDF_OK, r->ctx->domain, dur);
    if (ex->o.on_complete && p)
        ex->o.on_complete(ex->o.opaque, p, r);
    pthread_mutex_lock(&ex->lock);
    atomic_store(&r->done, 1);
    pthread_cond_broadcast(&ex->done_cond);
    pthread_mutex_unlock(&ex->lock);
    return 1;
}

typedef struct exec_job {
    executor *ex;
    record *rec;
    pattern *p;
    double timeout;
} exec_job;

static int root_job(void *arg)
{
    exec_job *j = arg;
    executor *ex = j->ex;
    record *r = j->rec;
    double now = now_mono();
    double t = j->timeout > 0 ? j->timeout : ex->o.default_timeout;
    double dl = t > 0 ? now + t : INFINITY;
    r->root->deadline = fmin(dl, pattern_deadline(ex, j->p, 0, now));
    atomic_store(&r->started, 1);
    int rc = run_in_node(j->p, r->root);
    finish(ex, r, j->p, rc, err_msg());
    pattern_unref(j->p);
    record_unref(r);
    free(j);
    return rc;
}

int executor_start(executor *ex, const char *name, const ndf_context *ctx, double timeout,
                   unsigned flags, record **out)
{
    *out = NULL;
    if (!name || !*name)
        return err_set(NDF_ERR_INVALID, "no pattern name given");
    if (ctx && context_validate(ctx))
        return NDF_ERR_INVALID;
    pattern *p;
    if (!ex->o.reg || registry_get(ex->o.reg, name, &p) != NDF_OK)
        return err_set(NDF_ERR_NOT_FOUND, "pattern '%s' not found", name);
    int rc;
    if (!(flags & EXEC_FORCE) && (rc = confidence_gate(ex, p))) {
        pattern_unref(p);
        return rc;
    }
    record *r = record_new(name, ctx, INFINITY);
    r->ex = ex;
    r->pool = ex->pool;
    r->kill_grace = ex->o.kill_grace;
    r->force = (flags & EXEC_FORCE) != 0;
    r->root->pat = pattern_ref(p);

    pthread_mutex_lock(&ex->lock);
    record *old = NULL;
    if (ex->nkept == ex->o.keep) {
        old = ex->kept[ex->kept_next];
    } else {
        ex->nkept++;
    }
    ex->kept[ex->kept_next] = record_ref(r);
    ex->kept_next = (ex->kept_next + 1) % ex->o.keep;
    pthread_mutex_unlock(&ex->lock);
    record_unref(old);

    exec_job *j = xmalloc(sizeof *j);
    j->ex = ex;
    j->rec = record_ref(r);
    j->p = p; /* the registry_get reference */
    j->timeout = timeout;
    pool_submit(ex->pool, r->ctx->priority, root_job, j);
    *out = r;
    return NDF_OK;
}

/* Gives up on an execution whose work is past its deadline and the grace
 * periods: the record says so, the caller gets NDF_ERR_TIMEOUT, and the
 * work goes on alone (it holds its own references). */
static void give_up(executor *ex, record *r, double base)
{
    double over = now_mono() - base;
    char msg[128];
    snprintf(msg, sizeof msg, "overran its deadline by %.1fs", over);
    if (atomic_load(&r->claimed))
        return;
    node_set_state(r->root, NDF_STATE_TIMED_OUT, msg);
    log_msg(0, "execution %s: pattern '%s' %s; not waiting for it", r->id, r->root->name, msg);
    finish(ex, r, r->root->pat, NDF_ERR_TIMEOUT, msg);
}

static void timespec_at(struct timespec *ts, double until_mono)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double t = (double)now.tv_sec + now.tv_nsec / 1e9 + (until_mono - now_mono());
    if (t < 0)
        t = 0;
    if (t > 1e15) /* see the sleeper's wait: no time_t overflow */
        t = 1e15;
    ts->tv_sec = (time_t)t;
    ts->tv_nsec = (long)((t - (double)ts->tv_sec) * 1e9);
    if (ts->tv_nsec >= 1000000000L)
        ts->tv_sec++, ts->tv_nsec -= 1000000000L;
}

int executor_wait(executor *ex, record *r, double wait_s)
{
    double until = wait_s >= 0 ? now_mono() + wait_s : INFINITY;
    pthread_mutex_lock(&ex->lock);
    while (!atomic_load(&r->done)) {
        double now = now_mono();
        double bound = INFINITY;
        if (atomic_load(&r->started) && isfinite(r->root->deadline))
            bound = r->root->deadline + r->kill_grace * 2.5;
        if (now >= bound) {
            pthread_mutex_unlock(&ex->lock);
            give_up(ex, r, r->root->deadline);
            pthread_mutex_lock(&ex->lock);
            continue;
        }
        if (now >= until)
            break;
        /* Re-check at least every second: `started` and the deadline are
         * set by the worker without signalling. */
        struct timespec ts;
        timespec_at(&ts, fmin(fmin(until, bound), now + 1.0));
        pthread_cond_timedwait(&ex->done_cond, &ex->lock, &ts);
    }
    int done = atomic_load(&r->done);
    pthread_mutex_unlock(&ex->lock);
    return done;
}

int executor_execute(executor *ex, const char *name, const ndf_context *ctx, double timeout,
                     unsigned flags, record **out)
{
    record *r;
    if (out)
        *out = NULL;
    int rc = executor_start(ex, name, ctx, timeout, flags, &r);
    if (rc)
        return rc;
    executor_wait(ex, r, -1);
    rc = r->status;
    if (rc)
        err_set(rc, "%s", r->error ? r->error : ndf_status_name(rc));
    if (out)
        *out = r;
    else
        record_unref(r);
    return rc;
}

int executor_execute_with_fallback(executor *ex, const char *primary, const char *fallback,
                                   const ndf_context *ctx, double timeout, unsigned flags,
                                   fallback_result *out)
{
    memset(out, 0, sizeof *out);
    out->used = primary;
    int rc = executor_execute(ex, primary, ctx, timeout, flags, &out->primary);
    out->primary_status = rc;
    out->status = rc;
    if (rc == NDF_OK || rc == NDF_ERR_CANCELLED || !fallback || !*fallback)
        return rc;
    out->primary_error = xstrdup(err_msg());
    out->cause = rc == NDF_ERR_NOT_FOUND    ? FALLBACK_NOT_FOUND
                 : rc == NDF_ERR_CONFIDENCE ? FALLBACK_CONFIDENCE
                 : rc == NDF_ERR_TIMEOUT    ? FALLBACK_TIMEOUT
                                            : FALLBACK_FAILURE;
    log_msg(2, "pattern '%s': %s; falling back to '%s' (%s)", primary, out->primary_error,
            fallback, fallback_cause_name(out->cause));
    out->used = fallback;
    rc = executor_execute(ex, fallback, ctx, timeout, flags, &out->fallback);
    if (out->fallback) {
        pthread_mutex_lock(&out->fallback->lock);
        out->fallback->fallback_from = xstrdup(primary);
        out->fallback->fallback_cause = xstrdup(fallback_cause_name(out->cause));
        pthread_mutex_unlock(&out->fallback->lock);
    }
    out->status = rc;
    return rc;
}

void fallback_result_free(fallback_result *r)
{
    if (!r)
        return;
    free(r->primary_error);
    record_unref(r->primary);
    record_unref(r->fallback);
    memset(r, 0, sizeof *r);
}

size_t executor_batch(executor *ex, const batch_item *items, size_t n, int parallel,
                      unsigned flags, batch_result *out)
{
    size_t failed = 0;
    memset(out, 0, n * sizeof *out);
    if (parallel) {
        for (size_t i = 0; i < n; i++) {
            out[i].status = executor_start(ex, items[i].pattern, items[i].ctx, items[i].timeout,
                                           flags, &out[i].rec);
            if (out[i].status)
                out[i].error = xstrdup(err_msg());
        }
        for (size_t i = 0; i < n; i++) {
            if (!out[i].rec)
                continue;
            executor_wait(ex, out[i].rec, -1);
            out[i].status = out[i].rec->status;
            if (out[i].status)
                out[i].error = xstrdup(out[i].rec->error ? out[i].rec->error
                                                         : ndf_status_name(out[i].status));
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            out[i].status = executor_execute(ex, items[i].pattern, items[i].ctx,
                                             items[i].timeout, flags, &out[i].rec);
            if (out[i].status)
                out[i].error = xstrdup(err_msg());
        }
    }
    for (size_t i = 0; i < n; i++)
        failed += out[i].status != NDF_OK;
    return failed;
}

void batch_results_free(batch_result *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++) {
        free(r[i].error);
        record_unref(r[i].rec);
    }
}

record *executor_find(executor *ex, const char *id)
{
    record *found = NULL;
    pthread_mutex_lock(&ex->lock);
    if (ex->nkept) {
        if (!id || !*id) {
            found = ex->kept[(ex->kept_next + ex->o.keep - 1) % ex->o.keep];
        } else {
            for (size_t i = 0; i < ex->nkept; i++)
                if (strcmp(ex->kept[i]->id, id) == 0)
                    found = ex->kept[i];
        }
    }
    if (found)
        record_ref(found);
    pthread_mutex_unlock(&ex->lock);
    return found;
}

int executor_cancel(executor *ex, const char *id)
{
    record *r = executor_find(ex, id);
    if (!r)
        return err_set(NDF_ERR_NOT_FOUND, "no execution '%s'", id ? id : "");
    int zero = 0;
    atomic_compare_exchange_strong(&r->cancel, &zero, NDF_ERR_CANCELLED);
    pthread_mutex_lock(&ex->lock);
    pthread_cond_broadcast(&ex->done_cond);
    pthread_mutex_unlock(&ex->lock);
    record_unref(r);
    return NDF_OK;
}

int executor_run_pattern(executor *ex, ndf_exec *node, const char *name, double timeout_s)
{
    if (!node || !name)
        return err_set(NDF_ERR_INVALID, "run_pattern: no node or no pattern name");
    pattern *p;
    if (!ex || !ex->o.reg || registry_get(ex->o.reg, name, &p) != NDF_OK)
        return err_set(NDF_ERR_NOT_FOUND, "pattern '%s' not found", name);
    int rc;
    if (!node->rec->force && (rc = confidence_gate(ex, p))) {
        ndf_exec *c = node_new(node, NDF_NODE_PATTERN, name);
        c->pat = p;
        node_set_state(c, NDF_STATE_SKIPPED, err_msg());
        return rc;
    }
    ndf_exec *c = node_new(node, NDF_NODE_PATTERN, name);
    c->pat = p; /* the record keeps the pattern (and its steps) alive */
    node_limit_deadline(c, pattern_deadline(ex, p, timeout_s, now_mono()));
    rc = run_in_node(p, c);
    double dur = c->start > 0 ? (c->end > 0 ? c->end : now_mono()) - c->start : 0;
    if (ex->o.reg) {
        char msg[sizeof "" + 2048];
        snprintf(msg, sizeof msg, "%s", err_msg()); /* registry code may touch it */
        registry_record(ex->o.reg, p, rc == NDF_OK, node->rec->ctx->domain, dur);
        if (rc)
            err_set(rc, "%s", msg);
    }
    return rc;
}

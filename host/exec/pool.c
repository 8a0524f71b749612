/* The worker pool: per-priority work-stealing deques, a global queue for
 * work from outside, idle sleep on an event count, and task groups whose
 * waiters help instead of parking.
 *
 * Scheduling.  Each worker owns one Chase-Lev deque per priority (push and
 * pop at the bottom by the owner, steal at the top by others: no lock on the
 * hot path).  Work submitted from outside the pool goes to a per-priority
 * global queue.  A thread looking for work scans priorities from 1 to 5 and,
 * within one, its own deque, the global queue, then the others' deques; so a
 * saturated pool starts priority 1 before 5.  Idle workers spin briefly and
 * then sleep on an event count: a producer touches the lock only when
 * someone sleeps.
 *
 * Memory ordering.  What publishes an item to another thread is always an
 * ordering on an atomic itself (a release store or CAS, paired with an
 * acquire load), never a standalone fence: ThreadSanitizer sees those, and
 * on x86 a release store or acquire load is the same plain move the fence
 * version compiled to.  The remaining seq_cst fences order a store before a
 * load (the Dekker handshakes of take/steal and sleep/notify); they guard no
 * plain data, so TSan has nothing to report about them. */
#include "build-config.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exec/crash.h"
#include "exec/pool.h"
#include "exec/record.h"
#include "base/util.h"

#define NPRIO 5
#define CACHELINE 64

/* ------------------------------------------------------------------ */
/* Work items and the Chase-Lev deque (Le, Pop, Cohen, Nardelli 2013). */

typedef struct item {
    ndf_work_fn fn;
    void *arg;
    struct ndf_group *g;
    struct item *next;    /* global queue, group overflow, free list links */
    struct worker *owner; /* whose free list it returns to; NULL: malloc'd */
    const void *tag;      /* pool_submit_tagged's; group work: its record */
    int prio;             /* 0..NPRIO-1 */
} item;

typedef struct cl_array {
    size_t mask;              /* size - 1, size a power of two */
    struct cl_array *retired; /* older arrays, freed with the deque */
    _Atomic(item *) slot[];
} cl_array;

typedef struct deque {
    _Alignas(CACHELINE) _Atomic long top;
    _Alignas(CACHELINE) _Atomic long bottom;
    _Atomic(cl_array *) arr;
    long top_seen; /* owner only: a lower bound of top (it only grows) */
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

/* Owner only: a twice larger array holding the items top..bottom-1. */
static cl_array *deque_grow(deque *q, cl_array *a, long t, long b)
{
    cl_array *na = cl_array_new((a->mask + 1) * 2);
    for (long i = t; i < b; i++)
        atomic_store_explicit(
            &na->slot[(size_t)i & na->mask],
            atomic_load_explicit(&a->slot[(size_t)i & a->mask], memory_order_relaxed),
            memory_order_relaxed);
    /* Thieves may still read the old array: keep it until the end. */
    na->retired = a;
    atomic_store_explicit(&q->arr, na, memory_order_release);
    return na;
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
    if (b - t > (long)a->mask)
        a = deque_grow(q, a, t, b);
    atomic_store_explicit(&a->slot[(size_t)b & a->mask], x, memory_order_relaxed);
    /* Release: a thief that reads the new bottom (acquire) sees the slot and
     * the item's fields (the paper's release fence, in a form TSan sees). */
    atomic_store_explicit(&q->bottom, b + 1, memory_order_release);
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
    /* Store bottom, then load top: thieves do the opposite, so one of the
     * two sees the other (no data is published here). */
    atomic_thread_fence(memory_order_seq_cst);
    long t = atomic_load_explicit(&q->top, memory_order_relaxed);
    item *x = NULL;
    if (t <= b) {
        x = atomic_load_explicit(&a->slot[(size_t)b & a->mask], memory_order_relaxed);
        if (t == b) {
            /* The last item: the thieves' CAS on top decides who has it. */
            if (!atomic_compare_exchange_strong_explicit(&q->top, &t, t + 1, memory_order_seq_cst,
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
    /* Acquire pairs with the owner's release of bottom in deque_push. */
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
/* Workers, the global queues and the pool. */

/* A worker slot's life: FREE (no thread), ACTIVE (a worker thread),
 * ABANDONED (its thread is stuck in work the executor gave up on; it exits
 * when that work returns, and the slot is FREE again).  LAZY: a worker
 * asked for whose thread is not started yet; it counts as active, and its
 * thread starts when work is queued and no worker is idle (a one-shot run
 * of one step paid for three threads it never used). */
enum { W_FREE, W_ACTIVE, W_ABANDONED, W_LAZY };

typedef struct worker {
    deque dq[NPRIO];
    struct pool *pool;
    unsigned index;
    pthread_t thread;
    int joinable;             /* (slot_lock) thread is to be joined by pool_free */
    _Atomic int state;        /* W_* */
    _Atomic(const void *) tag; /* the tag of the innermost work it runs */
    /* Items are recycled, not malloc'd per task: a worker allocates from its
     * own list; items another thread finished come back through the
     * lock-free `remote` stack, which the owner takes whole. */
    item *free_local;
    void **slabs; /* item blocks, freed with the pool */
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
    struct pool *left_next; /* (left_lock) in left_pools, once left behind */
    unsigned n;       /* worker slots: threads, and as many spares */
    unsigned threads; /* the workers asked for */
    worker *w;        /* n slots, cache-line aligned */
    gqueue global[NPRIO];
    _Atomic int stop;
    _Atomic unsigned live;   /* threads inside worker_main */
    _Atomic unsigned active; /* slots W_ACTIVE or W_LAZY: workers that can take work */
    _Atomic unsigned stuck;  /* slots W_ABANDONED */
    _Atomic unsigned lazy;   /* slots W_LAZY: workers not started yet */
    _Atomic unsigned idle;   /* worker threads asleep in idle_wait */
    sigset_t sigmask; /* pool_new's caller's: every worker's, whoever starts it */
    unsigned start_warned; /* (slot_lock) a lazy start failed: said once */
    _Atomic unsigned long replaced, unreplaced; /* abandoned workers, counted */
    pthread_mutex_t slot_lock; /* slot states and threads: abandon, start, free */
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
    record *rec; /* a reference, so node outlives the group */
    int prio;
    unsigned max;
    /* Work can overrun a deadline: ended work is counted at once, so that
     * a waiter that gives up reports exactly what still runs.  Without a
     * deadline, workers count ended work in batches (DONE_BATCH). */
    int exact;
    _Atomic int stop; /* 0, or the status that stopped the group */
    /* The owner's handle, + 1 while pending > 0 (taken when pending leaves
     * 0, dropped when it comes back): not one per task. */
    _Atomic long refs;
    _Alignas(CACHELINE) _Atomic long pending; /* spawned and not yet ended,
                                                 overflow included */
    pthread_mutex_t lock;                     /* overflow and inflight, when max > 0 */
    long inflight;                            /* queued in the pool or running */
    item *ov_head, *ov_tail;                  /* waiting for a concurrency slot */
    /* group_new_any: ended work not yet reported by pool_group_wait_any, in
     * the order it ended (lock).  any_gate is 0 while the list is not empty,
     * so idle_wait() wakes for it as it does for pending reaching 0. */
    int any;
    struct any_done *any_head, *any_tail;
    _Atomic long any_gate;
};

typedef struct any_done {
    struct any_done *next;
    void *arg;
    int status;
} any_done;

/* The worker the calling thread is, or NULL.  Thread-local because the
 * calls that need it (group_spawn, group_wait, item recycling) come from
 * plugin code through the services table, which carries no worker: a task
 * spawned from a worker must land in that worker's own deque, which is what
 * makes work stealing cheap. */
static _Thread_local worker *tl_worker;

/* The calling thread's worker when it belongs to `p`, else NULL. */
static worker *self_in(pool *p)
{
    worker *w = tl_worker;
    return w && w->pool == p ? w : NULL;
}

unsigned pool_size(const pool *p)
{
    return p->threads;
}

/* Threads stuck in abandoned work, in every pool of the process. */
static _Atomic unsigned stuck_total;

/* Pools pool_free() left to workers still inside overrunning work.  They
 * are kept reachable here: given up on, on purpose, not lost (which is how
 * a leak checker would otherwise report them). */
static pthread_mutex_t left_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pool *left_pools;

unsigned pool_stuck_threads(void)
{
    return atomic_load(&stuck_total);
}

void pool_health(pool *p, pool_stats *out)
{
    out->threads = p->threads;
    out->active = atomic_load(&p->active);
    out->running = atomic_load(&p->live);
    out->idle = atomic_load(&p->idle);
    out->abandoned = atomic_load(&p->stuck);
    out->replaced = atomic_load(&p->replaced);
    out->unreplaced = atomic_load(&p->unreplaced);
}

#define SLAB_ITEMS 256

/* An item from the calling worker's free lists (malloc'd off the pool). */
static item *item_alloc(pool *p)
{
    worker *w = self_in(p);
    if (!w) {
        item *it = xmalloc(sizeof *it);
        it->owner = NULL;
        return it;
    }
    item *it = w->free_local;
    if (!it)
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
    /* The caller's work is queued; now look for sleepers.  A sleeper
     * announces, then looks for work: one of the two sees the other. */
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

static void start_lazy(pool *p);

/* Places an item where it is cheapest: the calling worker's own deque, else
 * the global queue. */
static void enqueue(pool *p, item *it)
{
    worker *self = self_in(p);
    if (self)
        deque_push(&self->dq[it->prio], it);
    else
        gqueue_push(&p->global[it->prio], it);
    notify(p);
    /* one relaxed load once every worker runs */
    if (atomic_load_explicit(&p->lazy, memory_order_relaxed) > 0)
        start_lazy(p);
}

/* Steals work of priority index `pr` from the other workers, starting after
 * `self`'s index; retries while a race with another thief was lost. */
static item *steal_any(pool *p, worker *self, int pr)
{
    int contended;
    do {
        contended = 0;
        unsigned start = self ? self->index + 1 : 0;
        for (unsigned k = 0; k < p->n; k++) {
            worker *v = &p->w[(start + k) % p->n];
            if (v == self || !deque_maybe_nonempty(&v->dq[pr]))
                continue;
            item *it = deque_steal(&v->dq[pr], &contended);
            if (it)
                return it;
        }
    } while (contended);
    return NULL;
}

static item *find_work(pool *p, worker *self, int groups_only)
{
    for (int pr = 0; pr < NPRIO; pr++) {
        item *it;
        if (self && deque_maybe_nonempty(&self->dq[pr]) && (it = deque_take(&self->dq[pr])))
            return it;
        if ((it = gqueue_pop(&p->global[pr], groups_only)))
            return it;
        if ((it = steal_any(p, self, pr)))
            return it;
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Group accounting: what running an item owes its group. */

static void group_unref(ndf_group *g)
{
    if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (item *it = g->ov_head, *next; it; it = next) {
        next = it->next;
        item_free(it);
    }
    for (any_done *d = g->any_head, *next; d; d = next) {
        next = d->next;
        free(d);
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

/* One piece of work of `g` ended: frees its concurrency slot (starting the
 * next waiting item in it) and counts it at once. */
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

/* Counts ended work of `g` on worker `w`, in batches where that is exact
 * enough (see struct ndf_group), else at once. */
static void count_done(worker *w, ndf_group *g)
{
    if (g->max || g->exact || !w) {
        item_done(g);
        return;
    }
    if (w->done_g != g) {
        flush_done(w);
        w->done_g = g;
    }
    if (++w->done_n >= DONE_BATCH)
        flush_done(w);
}

/* Remembers that work `arg` of an any-group ended with `status`, for
 * pool_group_wait_any, and wakes its waiter. */
static void any_push(ndf_group *g, void *arg, int status)
{
    any_done *d = xmalloc(sizeof *d);
    d->next = NULL;
    d->arg = arg;
    d->status = status;
    pthread_mutex_lock(&g->lock);
    if (g->any_tail)
        g->any_tail->next = d;
    else
        g->any_head = d;
    g->any_tail = d;
    atomic_store(&g->any_gate, 0);
    pthread_mutex_unlock(&g->lock);
    notify(g->pool);
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
    /* What the worker runs, for pool_abandon: the innermost work's tag. */
    const void *outer = NULL;
    if (w) {
        outer = atomic_load_explicit(&w->tag, memory_order_relaxed);
        atomic_store_explicit(&w->tag, g ? (const void *)g->rec : it->tag, memory_order_relaxed);
    }
    if (!g) {
        it->fn(it->arg);
    } else {
        int stopped = atomic_load_explicit(&g->stop, memory_order_relaxed);
        int rc = stopped ? stopped : it->fn(it->arg);
        if (g->any)
            any_push(g, it->arg, rc);
        count_done(w, g);
    }
    if (w)
        atomic_store_explicit(&w->tag, outer, memory_order_relaxed);
    item_free(it);
}

/* ------------------------------------------------------------------ */
/* Idle threads. */

/* Whether anything is queued anywhere (or the pool stops, or `done`, when
 * given, reached 0): then the caller must look again instead of sleeping. */
static int pool_has_news(pool *p, _Atomic long *done)
{
    if (atomic_load(&p->stop) || (done && atomic_load(done) == 0))
        return 1;
    for (int pr = 0; pr < NPRIO; pr++) {
        /* Global work counts even for a group waiter, which does not take
         * ungrouped work: while such work waits for a free worker, the
         * waiter looks again instead of sleeping (a spin, not a hang). */
        if (atomic_load(&p->global[pr].count) > 0)
            return 1;
        for (unsigned k = 0; k < p->n; k++)
            if (deque_maybe_nonempty(&p->w[k].dq[pr]))
                return 1;
    }
    return 0;
}

/* Sleeps on the event count until its epoch moves past `e`, the pool stops,
 * or `until` (now_mono seconds, INFINITY for none) passes. */
static void sleep_epoch(pool *p, uint64_t e, double until)
{
    pthread_mutex_lock(&p->sleep_lock);
    while (EV_EPOCH(atomic_load(&p->ev)) == e && !atomic_load(&p->stop)) {
        if (isinf(until)) {
            pthread_cond_wait(&p->sleep_cond, &p->sleep_lock);
            continue;
        }
        if (now_mono() >= until)
            break;
        /* The condvar runs on CLOCK_MONOTONIC, like now_mono(). */
        struct timespec ts = record_timespec(until);
        if (pthread_cond_timedwait(&p->sleep_cond, &p->sleep_lock, &ts) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&p->sleep_lock);
}

/* Sleeps until new work or a wake-up, or until `until` (now_mono seconds,
 * INFINITY for none).  `done` (may be NULL) is checked after announcing the
 * sleep, so a wake-up between the caller's check and the sleep is not lost. */
static void idle_wait(pool *p, double until, _Atomic long *done)
{
    /* Announce (one waiter more, dirty), then look: a producer either
     * sees the announcement or its work is seen here. */
    uint64_t v = atomic_load_explicit(&p->ev, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&p->ev, &v, (v + 1) | EV_DIRTY,
                                                  memory_order_seq_cst, memory_order_relaxed))
        ;
    if (!pool_has_news(p, done))
        sleep_epoch(p, EV_EPOCH(v), until);
    atomic_fetch_sub(&p->ev, 1);
}

/* An abandoned worker whose work returned: back to work if the pool has
 * fewer active workers than it should (1), else 0 (it leaves). */
static int worker_rejoin(pool *p, worker *w)
{
    int back = 0;
    pthread_mutex_lock(&p->slot_lock);
    if (!atomic_load(&p->stop) && atomic_load(&p->active) < p->threads) {
        atomic_store(&w->state, W_ACTIVE);
        atomic_fetch_add(&p->active, 1);
        atomic_fetch_sub(&p->stuck, 1);
        atomic_fetch_sub(&stuck_total, 1);
        back = 1;
    }
    pthread_mutex_unlock(&p->slot_lock);
    if (back)
        log_msg(NDF_LOG_INFO, "executor: an abandoned worker returned and is back at work");
    return back;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    pool *p = w->pool;
    tl_worker = w;
    crash_thread_init();
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
            /* woken for one item of a burst: the next may need a thread */
            if (atomic_load_explicit(&p->lazy, memory_order_relaxed) > 0 &&
                pool_has_news(p, NULL))
                start_lazy(p);
            run_item(it);
            /* Given up on while inside it: a replacement has this
             * worker's place, and this thread leaves, unless the pool is
             * short of workers (none could replace it). */
            if (atomic_load(&w->state) == W_ABANDONED && !worker_rejoin(p, w))
                break;
            continue;
        }
        worker_flush(w);
        if (atomic_load(&p->stop))
            break;
        atomic_fetch_add(&p->idle, 1);
        idle_wait(p, INFINITY, NULL);
        atomic_fetch_sub(&p->idle, 1);
    }
    worker_flush(w);
    if (atomic_load(&w->state) == W_ABANDONED) {
        log_msg(NDF_LOG_INFO, "executor: an abandoned worker returned from its work and left");
        atomic_fetch_sub(&p->stuck, 1);
        atomic_fetch_sub(&stuck_total, 1);
        /* Last: the slot may be handed to a new thread from here on. */
        atomic_store(&w->state, W_FREE);
    } else {
        int a = W_ACTIVE;
        /* The pool stops (an abandon racing with it made it ABANDONED,
         * handled above) */
        if (atomic_compare_exchange_strong(&w->state, &a, W_FREE))
            atomic_fetch_sub(&p->active, 1);
        else if (a == W_ABANDONED) {
            atomic_fetch_sub(&p->stuck, 1);
            atomic_fetch_sub(&stuck_total, 1);
            atomic_store(&w->state, W_FREE);
        }
    }
    atomic_fetch_sub(&p->live, 1);
    return NULL;
}

/* Starts a worker thread on FREE slot `w`.  Caller holds slot_lock.
 * 0, or pthread_create's error. */
static int worker_start(pool *p, worker *w)
{
    atomic_store(&w->state, W_ACTIVE);
    atomic_fetch_add(&p->live, 1);
    atomic_fetch_add(&p->active, 1);
    /* A thread inherits its creator's signal mask, and a lazy worker's
     * creator may be any thread that queues work: give each the mask of
     * the pool's creator (ndf takes its signals in one thread of its own,
     * and blocks them everywhere else). */
    sigset_t old;
    pthread_sigmask(SIG_SETMASK, &p->sigmask, &old);
    int e = pthread_create(&w->thread, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        atomic_store(&w->state, W_FREE);
        atomic_fetch_sub(&p->live, 1);
        atomic_fetch_sub(&p->active, 1);
        return e;
    }
    w->joinable = 1;
    return 0;
}

/* Starts the thread of a LAZY slot when work is queued and no worker
 * sleeps to take it.  A worker busy spinning for work may make this start
 * one thread early; never more than pool_size() run. */
static void start_lazy(pool *p)
{
    if (atomic_load(&p->idle) > 0)
        return;
    pthread_mutex_lock(&p->slot_lock);
    if (atomic_load(&p->stop) || atomic_load(&p->lazy) == 0 || atomic_load(&p->idle) > 0) {
        pthread_mutex_unlock(&p->slot_lock);
        return;
    }
    for (unsigned i = 0; i < p->n; i++) {
        worker *w = &p->w[i];
        if (atomic_load(&w->state) != W_LAZY)
            continue;
        /* counted as active since pool_new: worker_start counts it again */
        atomic_fetch_sub(&p->active, 1);
        atomic_fetch_sub(&p->lazy, 1);
        int e = worker_start(p, w);
        if (e) {
            /* the workers already running take the work; a later queue
             * tries again */
            atomic_store(&w->state, W_LAZY);
            atomic_fetch_add(&p->active, 1);
            atomic_fetch_add(&p->lazy, 1);
            if (!p->start_warned++)
                log_msg(NDF_LOG_WARN,
                        "executor: cannot start worker thread %u: %s (the work waits for the "
                        "workers running; said once)",
                        i, strerror(e));
        }
        break;
    }
    pthread_mutex_unlock(&p->slot_lock);
}

unsigned pool_abandon(pool *p, const void *tag)
{
    if (!tag)
        return 0;
    unsigned n = 0;
    pthread_mutex_lock(&p->slot_lock);
    /* A stopping pool is pool_free's: it counts what is left itself. */
    for (unsigned i = 0; i < p->n && !atomic_load(&p->stop); i++) {
        worker *w = &p->w[i];
        if (atomic_load(&w->state) != W_ACTIVE || atomic_load(&w->tag) != tag)
            continue;
        atomic_store(&w->state, W_ABANDONED);
        atomic_fetch_sub(&p->active, 1);
        atomic_fetch_add(&p->stuck, 1);
        atomic_fetch_add(&stuck_total, 1);
        pthread_detach(w->thread);
        w->joinable = 0;
        n++;
        /* A FREE slot whose last thread is gone takes the replacement;
         * there are as many spare slots as workers, which bounds the
         * threads at twice the workers. */
        int e = ENOSPC;
        for (unsigned k = 0; k < p->n && e == ENOSPC; k++)
            if (atomic_load(&p->w[k].state) == W_FREE)
                e = worker_start(p, &p->w[k]);
        if (e) {
            atomic_fetch_add(&p->unreplaced, 1);
            log_msg(NDF_LOG_ERROR,
                    "executor: worker stuck in overrunning work abandoned, and not replaced (%s): "
                    "%u of %u workers left",
                    e == ENOSPC ? "as many workers are already abandoned" : strerror(e),
                    atomic_load(&p->active), p->threads);
        } else {
            atomic_fetch_add(&p->replaced, 1);
            log_msg(NDF_LOG_WARN,
                    "executor: worker stuck in overrunning work abandoned and replaced "
                    "(%u abandoned now)",
                    atomic_load(&p->stuck));
        }
    }
    pthread_mutex_unlock(&p->slot_lock);
    return n;
}

/* ------------------------------------------------------------------ */
/* Starting and stopping. */

/* Frees a worker's deques and item slabs (its thread is gone or was never
 * started). */
static void worker_release(worker *w)
{
    for (int j = 0; j < NPRIO; j++)
        deque_destroy(&w->dq[j]);
    for (size_t k = 0; k < w->nslabs; k++)
        free(w->slabs[k]);
    free(w->slabs);
}

/* The pool with its workers' memory, locks and deques, no thread yet. */
static pool *pool_alloc(unsigned threads)
{
    pool *p = xcalloc(1, sizeof *p);
    p->threads = threads;
    unsigned slots = threads * 2;
    p->n = slots;
    p->w = aligned_alloc(CACHELINE,
                         ((sizeof(worker) * slots + CACHELINE - 1) / CACHELINE) * CACHELINE);
    if (!p->w) {
        free(p);
        err_set(NDF_ERR_NOMEM, "executor: out of memory for %u workers", threads);
        return NULL;
    }
    memset(p->w, 0, sizeof(worker) * slots);
    for (int i = 0; i < NPRIO; i++)
        pthread_mutex_init(&p->global[i].lock, NULL);
    pthread_mutex_init(&p->sleep_lock, NULL);
    pthread_mutex_init(&p->slot_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->sleep_cond, &ca);
    pthread_condattr_destroy(&ca);
    for (unsigned i = 0; i < slots; i++) {
        p->w[i].pool = p;
        p->w[i].index = i;
        atomic_init(&p->w[i].state, W_FREE);
        for (int j = 0; j < NPRIO; j++)
            deque_init(&p->w[i].dq[j]);
    }
    return p;
}

pool *pool_new(unsigned threads)
{
    if (threads < 1)
        threads = 1;
    pool *p = pool_alloc(threads);
    if (!p)
        return NULL;
    pthread_sigmask(SIG_SETMASK, NULL, &p->sigmask);
    /* The first worker now, so that a pool always has one and a thread
     * that cannot be created is this call's error; the others when work
     * needs them (start_lazy). */
    pthread_mutex_lock(&p->slot_lock);
    for (unsigned i = 1; i < threads; i++) {
        atomic_store(&p->w[i].state, W_LAZY);
        atomic_fetch_add(&p->active, 1);
        atomic_fetch_add(&p->lazy, 1);
    }
    /* pthread_create returns its error; errno is not set. */
    int e = worker_start(p, &p->w[0]);
    pthread_mutex_unlock(&p->slot_lock);
    if (e) {
        err_set(NDF_ERR_RESOURCE, "executor: cannot start worker thread 0: %s", strerror(e));
        pool_free(p, -1);
        return NULL;
    }
    return p;
}

/* Frees the memory of a pool whose workers are all joined. */
static void pool_destroy(pool *p)
{
    for (unsigned i = 0; i < p->n; i++)
        worker_release(&p->w[i]);
    for (int i = 0; i < NPRIO; i++) {
        for (item *it = p->global[i].head, *next; it; it = next) {
            next = it->next;
            if (!it->owner)
                free(it);
        }
        pthread_mutex_destroy(&p->global[i].lock);
    }
    pthread_mutex_destroy(&p->sleep_lock);
    pthread_mutex_destroy(&p->slot_lock);
    pthread_cond_destroy(&p->sleep_cond);
    free(p->w);
    free(p);
}

unsigned pool_free(pool *p, double wait_s)
{
    if (!p)
        return 0;
    pthread_mutex_lock(&p->slot_lock); /* no replacement starts from here on */
    atomic_store(&p->stop, 1);
    pthread_mutex_unlock(&p->slot_lock);
    notify_all(p);
    if (wait_s >= 0) {
        double until = now_mono() + wait_s;
        /* Abandoned threads are not waited for: they were given up on
         * already.  Idle workers leave within microseconds of the wake-up:
         * the first naps are short (a one-shot `ndf run` slept 5 ms here
         * at every exit), then 5 ms for work still running. */
        long nap_ns = 50 * 1000;
        while (atomic_load(&p->live) > atomic_load(&p->stuck) && now_mono() < until) {
            struct timespec ts = {0, nap_ns};
            nanosleep(&ts, NULL);
            if (nap_ns < 5 * 1000 * 1000)
                nap_ns *= 2;
        }
        unsigned left = atomic_load(&p->live);
        if (left > 0) {
            log_msg(0,
                    "executor: %u worker(s) still inside overrunning work at exit; "
                    "leaving them running",
                    left);
            pthread_mutex_lock(&p->slot_lock);
            for (unsigned i = 0; i < p->n; i++)
                if (p->w[i].joinable) {
                    pthread_detach(p->w[i].thread);
                    p->w[i].joinable = 0;
                }
            /* Counted as stuck: the caller must not unload what they run. */
            for (unsigned i = 0; i < p->n; i++)
                if (atomic_load(&p->w[i].state) == W_ACTIVE) {
                    atomic_store(&p->w[i].state, W_ABANDONED);
                    atomic_fetch_add(&p->stuck, 1);
                    atomic_fetch_add(&stuck_total, 1);
                }
            pthread_mutex_unlock(&p->slot_lock);
            pthread_mutex_lock(&left_lock);
            p->left_next = left_pools;
            left_pools = p;
            pthread_mutex_unlock(&left_lock);
            return left; /* not freed: those workers still use it */
        }
    }
    for (unsigned i = 0; i < p->n; i++)
        if (p->w[i].joinable)
            pthread_join(p->w[i].thread, NULL);
    pool_destroy(p);
    return 0;
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
    pool_submit_tagged(p, prio, fn, arg, NULL);
}

void pool_submit_tagged(pool *p, int prio, ndf_work_fn fn, void *arg, const void *tag)
{
    item *it = item_alloc(p);
    it->fn = fn;
    it->arg = arg;
    it->tag = tag;
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

/* node_stop_status() on the coarse clock (a few ns instead of a few tens,
 * and 1-4 ms resolution, plenty for deadlines): checked before every piece
 * of work a group waiter runs. */
static int node_stopped_fast(const ndf_exec *node)
{
    int c = atomic_load_explicit(&node->rec->cancel, memory_order_relaxed);
    if (!c)
        c = atomic_load_explicit(&node->cancelled, memory_order_relaxed);
    if (c && (!node->cleanup || atomic_load_explicit(&node->rec->hard_cancel, memory_order_relaxed)))
        return c;
    if (node->deadline < INFINITY) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        if ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9 >= node->deadline)
            return node_stop_status(node);
    }
    return 0;
}

/* Puts `it` in the group's overflow when the group is at max_concurrent
 * (1: parked there), else takes a concurrency slot for it (0). */
static int group_park(ndf_group *g, item *it)
{
    pthread_mutex_lock(&g->lock);
    if ((unsigned long)g->inflight >= g->max) {
        it->next = NULL;
        if (g->ov_tail)
            g->ov_tail->next = it;
        else
            g->ov_head = it;
        g->ov_tail = it;
        pthread_mutex_unlock(&g->lock);
        return 1;
    }
    g->inflight++;
    pthread_mutex_unlock(&g->lock);
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
    if (g->max && group_park(g, it))
        return NDF_OK;
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
        if (g->any)
            any_push(g, it->arg, atomic_load(&g->stop));
        item_free(it);
        it = next;
        n++;
    }
    if (n)
        group_end(g, n); /* the owner's handle keeps the group alive */
}

/* The rest of a stopped group's wait: drops what is queued and gives
 * running work the grace period to notice.  Deeper groups give up a little
 * earlier than the groups that wait for them, so the outer ones see the
 * inner ones return.  Work still running then is logged in the node. */
static void group_drain(ndf_group *g, worker *self, int st)
{
    pool *p = g->pool;
    group_stop(g, st);
    double grace = g->rec->kill_grace;
    double base =
        isfinite(g->node->deadline) && st == NDF_ERR_TIMEOUT ? g->node->deadline : now_mono();
    /* Past the grace period and the slack a blocking step's waiter adds
     * (CALL_SLACK, 0.25 s), so a step killed at the end of its grace is
     * seen to end. */
    double bound = base + grace * (1.0 + 1.0 / (2.0 + g->node->depth)) + 0.5;
    while (atomic_load_explicit(&g->pending, memory_order_acquire) > 0) {
        /* Dropping queued work is instant: do it before looking at the
         * clock. */
        item *it = find_work(p, self, 1);
        if (it) {
            /* woken for one item of a burst: the next may need a thread */
            if (atomic_load_explicit(&p->lazy, memory_order_relaxed) > 0 &&
                pool_has_news(p, NULL))
                start_lazy(p);
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
            return;
        }
        idle_wait(p, bound, &g->pending);
    }
}

int pool_group_wait(ndf_group *g)
{
    if (!g)
        return err_set(NDF_ERR_INVALID, "group_wait: no group");
    pool *p = g->pool;
    worker *self = self_in(p);
    int st = 0;
    /* Work of g this thread ended is counted here but owed to pending. */
    while (atomic_load_explicit(&g->pending, memory_order_acquire) -
               (self && self->done_g == g ? self->done_n : 0) >
           0) {
        if ((st = node_stopped_fast(g->node)))
            break;
        item *it = find_work(p, self, 1);
        if (it) {
            /* woken for one item of a burst: the next may need a thread */
            if (atomic_load_explicit(&p->lazy, memory_order_relaxed) > 0 &&
                pool_has_news(p, NULL))
                start_lazy(p);
            run_item(it);
            continue;
        }
        worker_flush(self);
        idle_wait(p, g->node->deadline, &g->pending);
    }
    worker_flush(self);
    if (!st)
        return NDF_OK;
    group_drain(g, self, st);
    return err_set(st, "%s: %s", g->node->name,
                   st == NDF_ERR_CANCELLED ? "cancelled" : "deadline passed");
}

ndf_group *pool_group_new_any(pool *p, ndf_exec *node, unsigned max_concurrent, int prio)
{
    ndf_group *g = pool_group_new(p, node, max_concurrent, prio);
    g->any = 1;
    g->exact = 1; /* the waiter wakes per piece, so count each at once */
    atomic_init(&g->any_gate, 1);
    return g;
}

/* Takes the oldest unreported ended work of `g`, if any: 1 and *arg,
 * *status set, else 0. */
static int any_pop(ndf_group *g, void **arg, int *status)
{
    pthread_mutex_lock(&g->lock);
    any_done *d = g->any_head;
    if (d) {
        g->any_head = d->next;
        if (!g->any_head) {
            g->any_tail = NULL;
            atomic_store(&g->any_gate, 1);
        }
    }
    pthread_mutex_unlock(&g->lock);
    if (!d)
        return 0;
    if (arg)
        *arg = d->arg;
    if (status)
        *status = d->status;
    free(d);
    return 1;
}

/* How long a group_wait_any waiter leaves queued work of a saturated pool
 * to the other workers before it runs a piece itself. */
#define ANY_HELP_AFTER 0.02

/* Sleeps until a report arrives for `g`, something is queued or ends, or
 * `until`; unlike idle_wait, queued work does not keep it awake. */
static void any_idle(pool *p, ndf_group *g, double until)
{
    uint64_t v = atomic_load_explicit(&p->ev, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&p->ev, &v, (v + 1) | EV_DIRTY,
                                                  memory_order_seq_cst, memory_order_relaxed))
        ;
    if (atomic_load(&g->any_gate) != 0 && atomic_load(&g->pending) > 0 && !atomic_load(&p->stop))
        sleep_epoch(p, EV_EPOCH(v), until);
    atomic_fetch_sub(&p->ev, 1);
}

int pool_group_wait_any(ndf_group *g, void **arg, int *status)
{
    if (!g)
        return err_set(NDF_ERR_INVALID, "group_wait_any: no group");
    if (!g->any)
        return err_set(NDF_ERR_INVALID, "%s: group_wait_any needs a group made with group_new_any",
                       g->node->name);
    pool *p = g->pool;
    worker *self = self_in(p);
    /* Unlike group_wait, the waiter does not run queued work at once: the
     * point of waiting for any is to act (cancel the rest) as soon as one
     * piece ends, which it cannot do from inside another piece.  It helps
     * only when no report came for ANY_HELP_AFTER while work is queued (the
     * other workers are all busy), so a saturated pool, or a pool of one
     * thread, still completes. */
    double quiet_since = now_mono();
    for (;;) {
        if (any_pop(g, arg, status))
            return NDF_OK;
        /* pending counts work until after its report is pushed: 0 with an
         * empty list means everything was reported. */
        if (atomic_load_explicit(&g->pending, memory_order_acquire) == 0) {
            if (any_pop(g, arg, status))
                return NDF_OK;
            return err_set(NDF_ERR_NOT_FOUND, "%s: no work left to report", g->node->name);
        }
        int st = node_stopped_fast(g->node);
        if (st) {
            group_drain(g, self, st);
            return err_set(st, "%s: %s", g->node->name,
                           st == NDF_ERR_CANCELLED ? "cancelled" : "deadline passed");
        }
        double now = now_mono();
        if (now - quiet_since >= ANY_HELP_AFTER) {
            item *it = find_work(p, self, 1);
            if (it) {
                run_item(it);
                quiet_since = now_mono();
                continue;
            }
        }
        worker_flush(self);
        any_idle(p, g, fmin(g->node->deadline, quiet_since + ANY_HELP_AFTER));
        if (now_mono() - quiet_since >= ANY_HELP_AFTER && !pool_has_news(p, NULL))
            quiet_since = now_mono(); /* nothing queued: nothing to help with yet */
    }
}

int pool_group_cancel(ndf_group *g)
{
    if (!g)
        return err_set(NDF_ERR_INVALID, "group_cancel: no group");
    group_stop(g, NDF_ERR_CANCELLED);
    size_t n = 0, nk;
    ndf_exec *const *kids = node_kids(g->node, &nk);
    for (size_t i = 0; i < nk; i++)
        n += node_cancel(kids[i]);
    notify(g->pool);
    return (int)(n > INT_MAX ? INT_MAX : n);
}

void pool_group_free(ndf_group *g)
{
    if (g)
        group_unref(g);
}

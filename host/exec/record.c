/* The live record of an execution: node tree, bounded output, ids and the
 * JSON and text renderings read by `ndf status` and the server. */
#include "build-config.h"

#include <math.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <x86intrin.h>
#define HAVE_TSC 1
#endif

#include "base/hashmap.h"
#include "model/context.h"
#include "model/pattern.h"
#include "base/ztail.h"
#include "exec/record.h"
#include "base/util.h"

void record_make_id(char *out, size_t size)
{
    static _Atomic unsigned counter; /* process-wide: ids are unique in it */
    unsigned n = atomic_fetch_add(&counter, 1) + 1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, size, "%04d%02d%02dT%02d%02d%02d-%x-%u", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)getpid(), n);
}

/* ---- the clock ---- */

#ifdef HAVE_TSC
/* Seconds per tick, as measured by the threads (0: not yet); and whether
 * the counter can be trusted: 0 not known yet, 1 yes, -1 no.  Module-level
 * on purpose: both are properties of the machine's counter, learnt once
 * for every thread. */
static _Atomic double tsc_rate;
static _Atomic int tsc_usable;

/* Per thread: the line the stamps follow (record.h) and the baseline of
 * the rate measurement.  Thread-local because a reading is anchored to the
 * thread's own last clock_gettime() (re-anchored every 50 ms), so no stamp
 * needs a shared cache line.  Initial-exec TLS: the core library is only
 * ever linked into executables. */
_Thread_local record_clock record_clock_tl __attribute__((tls_model("initial-exec")));
typedef struct tsc_cal {
    uint64_t cal_tsc;
    double cal_mono;
    int strikes; /* rate samples in a row that disagreed */
} tsc_cal;
static _Thread_local tsc_cal tl_cal __attribute__((tls_model("initial-exec")));

static int tsc_invariant(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(0x80000000u, &a, &b, &c, &d) || a < 0x80000007u)
        return 0;
    __get_cpuid(0x80000007u, &a, &b, &c, &d);
    return (d >> 8) & 1; /* invariant TSC: constant rate, runs in every C-state */
}

/* Reads CLOCK_MONOTONIC, refines the rate and re-anchors the thread's line.
 * A reading whose bracketing counter values are far apart (the thread was
 * preempted in between) teaches nothing and only re-anchors.  Rates that
 * keep disagreeing with the previous one by more than 0.1% (counters not
 * synchronized between CPUs) retire the counter for good: every stamp then
 * comes from clock_gettime(). */
static double clock_slow(record_clock *c, tsc_cal *k)
{
    int u = atomic_load_explicit(&tsc_usable, memory_order_relaxed);
    if (u == 0) {
        u = tsc_invariant() ? 1 : -1;
        atomic_store(&tsc_usable, u);
    }
    if (u < 0)
        return now_mono();
    uint64_t t0 = __rdtsc();
    double m = now_mono();
    uint64_t t1 = __rdtsc();
    uint64_t t = t0 + (t1 - t0) / 2;
    double prev = c->span ? c->mono + (double)(t - c->tsc) * c->rate : 0;
    double rate0 = atomic_load_explicit(&tsc_rate, memory_order_relaxed);
    int tight = t1 - t0 < 100000; /* ~25-50 us: not preempted */
    if (tight && k->cal_tsc && t > k->cal_tsc && m - k->cal_mono >= 0.02) {
        double sample = (m - k->cal_mono) / (double)(t - k->cal_tsc);
        if (rate0 > 0 && fabs(sample / rate0 - 1.0) > 1e-3) {
            if (++k->strikes >= 8) {
                atomic_store(&tsc_usable, -1);
                return m;
            }
        } else {
            k->strikes = 0;
        }
        atomic_store_explicit(&tsc_rate, sample, memory_order_relaxed);
        k->cal_tsc = t;
        k->cal_mono = m;
    } else if (tight && (!k->cal_tsc || t < k->cal_tsc)) {
        k->cal_tsc = t;
        k->cal_mono = m;
    }
    double rate = atomic_load_explicit(&tsc_rate, memory_order_relaxed);
    if (rate <= 0) {
        c->span = 0; /* not calibrated yet: the next stamp comes here again */
        return m;
    }
    /* Never step back from what this thread already handed out. */
    c->mono = fmax(m, prev);
    c->tsc = t;
    c->rate = rate;
    c->span = (uint64_t)(0.05 / rate);
    return c->mono;
}
#endif

double record_now_slow(void)
{
#ifdef HAVE_TSC
    return clock_slow(&record_clock_tl, &tl_cal);
#else
    return now_mono();
#endif
}

struct timespec record_timespec(double mono)
{
    double t = mono > 0 ? (mono < 1e15 ? mono : 1e15) : 0; /* NaN: 0 */
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L)
        ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    return ts;
}

/* ---- the node arena ---- */

/* Never written: shared by every node without output (see record.h). */
tailbuf record_no_output[3];

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t size; /* of the whole allocation */
    int mapped;  /* from mmap (huge-page aligned), else malloc */
    _Alignas(16) char mem[];
} arena_chunk;

#define ARENA_FIRST 2048
#define ARENA_MAPPED ((size_t)64 * 1024)
#define ARENA_HUGE ((size_t)2 * 1024 * 1024)
/* Bytes of big chunks that freed records leave for the next ones, at most.
 * Touching fresh pages is what a big record costs most (several
 * microseconds per 4 KiB page on virtual machines with shadow page tables,
 * MADV_FREE'd pages included), so the chunks stay mapped and dirty. */
#define CHUNK_CACHE_BYTES ((size_t)256 * 1024 * 1024)

/* Big chunks freed records left for the next ones.  Module-level on
 * purpose, like malloc's own caches: any record may reuse any other's
 * memory, whoever runs them, and record_new() has no owner to ask. */
static struct {
    pthread_mutex_t lock;
    arena_chunk *head;
    _Atomic size_t bytes; /* read unlocked as a hint */
} chunks = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* A cached chunk of at least `size` bytes (the first that fits), or NULL. */
static arena_chunk *chunk_reuse(size_t size)
{
    arena_chunk *c = NULL;
    pthread_mutex_lock(&chunks.lock);
    for (arena_chunk **pp = &chunks.head; *pp; pp = &(*pp)->next) {
        if ((*pp)->size >= size) {
            c = *pp;
            *pp = c->next;
            chunks.bytes -= c->size;
            break;
        }
    }
    pthread_mutex_unlock(&chunks.lock);
    return c;
}

/* Small chunks come from malloc; from 64 KiB on they are anonymous memory
 * reused through the cache, and from 2 MiB on huge-page aligned (one fault
 * per 2 MiB instead of one per 4 KiB).  Not zeroed: users set every byte
 * they read. */
static void arena_grow(record *r, size_t need)
{
    size_t size = r->arena ? r->arena->size * 2 : ARENA_FIRST;
    if (size > ARENA_HUGE)
        size = ARENA_HUGE;
    while (size < need + sizeof(arena_chunk))
        size *= 2;
    arena_chunk *c = NULL;
    if (size >= ARENA_MAPPED && chunks.bytes)
        c = chunk_reuse(size);
    if (!c && size >= ARENA_MAPPED && size < ARENA_HUGE) {
        void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m != MAP_FAILED) {
            c = m;
            c->size = size;
            c->mapped = 1;
        }
    }
    if (!c && size >= ARENA_HUGE) {
        size_t len = size + ARENA_HUGE;
        char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m != MAP_FAILED) {
            char *al = (char *)(((uintptr_t)m + ARENA_HUGE - 1) & ~(uintptr_t)(ARENA_HUGE - 1));
            if (al > m)
                munmap(m, (size_t)(al - m));
            if (al + size < m + len)
                munmap(al + size, (size_t)(m + len - (al + size)));
#ifdef MADV_HUGEPAGE
            madvise(al, size, MADV_HUGEPAGE);
#endif
            c = (arena_chunk *)(void *)al;
            c->size = size;
            c->mapped = 1;
        }
    }
    if (!c) {
        c = xmalloc(size);
        c->size = size;
        c->mapped = 0;
    }
    c->next = r->arena;
    r->arena = c;
    r->arena_ptr = c->mem;
    r->arena_end = (char *)c + c->size;
}

/* Memory that lives as long as the record.  Caller holds the record lock
 * (or owns the record alone). */
static void *arena_alloc(record *r, size_t size)
{
    size = (size + 7) & ~(size_t)7; /* nodes and pointer arrays need 8 */
    if ((size_t)(r->arena_end - r->arena_ptr) < size)
        arena_grow(r, size);
    void *p = r->arena_ptr;
    r->arena_ptr += size;
    return p;
}

static void arena_free(record *r)
{
    for (arena_chunk *c = r->arena, *next; c; c = next) {
        next = c->next;
        if (!c->mapped) {
            free(c);
            continue;
        }
        pthread_mutex_lock(&chunks.lock);
        if (chunks.bytes + c->size <= CHUNK_CACHE_BYTES) {
            c->next = chunks.head;
            chunks.head = c;
            chunks.bytes += c->size;
            c = NULL;
        }
        pthread_mutex_unlock(&chunks.lock);
        if (c)
            munmap(c, c->size);
    }
}

/* Caller holds the record lock (or owns the record alone). */
static ndf_exec *node_alloc(record *r, ndf_exec *parent, ndf_node_kind kind, const char *name)
{
    /* A plugin names its steps, tasks and phases from its parameters; a
     * name is printed by status, logs, analytics, export and the server's
     * progress lines, so it is kept terminal-safe from the start (and the
     * node's path, the key of redrive and ${steps.NAME}, with it). */
    char *safe = NULL;
    for (const unsigned char *c = (const unsigned char *)(name ? name : ""); *c; c++)
        if (*c < 0x20 || *c >= 0x7f) {
            safe = term_safe(name);
            name = safe;
            break;
        }
    size_t len = name ? strlen(name) : 0;
    ndf_exec *n = arena_alloc(r, sizeof *n + len + 1);
    /* Arena memory is not zeroed: every field is set here. */
    n->kind = kind;
    atomic_init(&n->state, NDF_STATE_PENDING);
    n->depth = parent ? parent->depth + 1 : 0;
    n->rec = r;
    n->parent = parent;
    atomic_init(&n->kids, NULL);
    atomic_init(&n->nkids, 0);
    n->capkids = 0;
    n->deadline = parent ? parent->deadline : INFINITY;
    atomic_init(&n->start, 0);
    atomic_init(&n->end, 0);
    atomic_init(&n->start_wall, 0);
    n->message = NULL;
    n->out = record_no_output;
    n->data = NULL;
    n->data_free = NULL;
    n->pat = NULL;
    n->step = NULL;
    n->cleanup = 0;
    n->reused = 0;
    n->replay_undone = 0;
    n->replay_has_undo = 0;
    n->step_timeout = 0;
    atomic_init(&n->cancelled, parent ? atomic_load(&parent->cancelled) : 0);
    n->result = NULL;
    n->metrics = NULL;
    n->nmetrics = 0;
    memset(&n->usage, 0, sizeof n->usage);
    memcpy(n->name, name ? name : "", len + 1);
    free(safe);
    return n;
}

record *record_new(const char *name, const ndf_context *ctx, double deadline)
{
    record *r = xcalloc(1, sizeof *r);
    atomic_init(&r->refs, 1);
    record_make_id(r->id, sizeof r->id);
    pthread_mutex_init(&r->lock, NULL);
    r->ctx = ctx ? context_dup(ctx) : context_new(NULL, NULL, NDF_PRIORITY_HIGHEST);
    r->root = node_alloc(r, NULL, NDF_NODE_PATTERN, name ? name : "");
    r->root->deadline = deadline;
    r->kill_grace = 2.0;
    r->origin = -1;
    r->start_wall = now_wall();
    r->start = record_now();
    return r;
}

record *record_ref(record *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

/* Children first, then the node's own data, then its pattern reference:
 * plugin-owned data (data_free, the pattern's instance) is released while
 * the pattern that pins its plugin's code is still held. */
static void node_free(ndf_exec *n)
{
    for (size_t i = 0; i < n->nkids; i++)
        node_free(n->kids[i]);
    if (n->data && n->data_free)
        n->data_free(n->data);
    if (n->pat)
        pattern_unref(n->pat);
    free(n->message);
    free(n->result);
    free(n->metrics);
    if (n->out != record_no_output) {
        for (int i = 0; i < 3; i++)
            free(n->out[i].mem), ztail_free(n->out[i].z);
        free(n->out);
    }
    /* The node itself is in the record's arena. */
}

void record_unref(record *r)
{
    if (!r || atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
        return;
    node_free(r->root);
    arena_free(r);
    context_free(r->ctx);
    free(r->error);
    free(r->unrecorded_why);
    free(r->fallback_from);
    free(r->fallback_cause);
    free(r->redrive_of);
    hashmap_free(r->reuse, free);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static void alloc_lock(record *r)
{
    while (atomic_exchange_explicit(&r->alloc_lock, 1, memory_order_acquire)) {
        for (int i = 0; atomic_load_explicit(&r->alloc_lock, memory_order_relaxed); i++) {
            if (i >= 64) {
                sched_yield(); /* the holder was preempted */
                i = 0;
            }
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
    }
}

static void alloc_unlock(record *r)
{
    atomic_store_explicit(&r->alloc_lock, 0, memory_order_release);
}

ndf_exec *node_new(ndf_exec *parent, ndf_node_kind kind, const char *name)
{
    record *r = parent->rec;
    alloc_lock(r);
    ndf_exec *n = node_alloc(r, parent, kind, name);
    size_t nk = atomic_load_explicit(&parent->nkids, memory_order_relaxed);
    ndf_exec **kids = atomic_load_explicit(&parent->kids, memory_order_relaxed);
    if (nk == parent->capkids) {
        /* Children arrays live in the arena too; an outgrown one is left
         * there (at most as much again as the final array). */
        size_t cap = parent->capkids ? parent->capkids * 2 : 4;
        ndf_exec **grown = arena_alloc(r, cap * sizeof *grown);
        if (nk)
            memcpy(grown, kids, nk * sizeof *grown);
        atomic_store_explicit(&parent->kids, grown, memory_order_release);
        parent->capkids = cap;
        kids = grown;
    }
    kids[nk] = n;
    /* Publishes the child (and, before it, the array holding it). */
    atomic_store_explicit(&parent->nkids, nk + 1, memory_order_release);
    alloc_unlock(r);
    /* node_cancel() sets the parent, then walks its children: seen here, or
     * the walk sees this child (both sides are sequentially consistent). */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load(&parent->cancelled) && !atomic_load(&n->cancelled))
        node_cancel(n);
    return n;
}

ndf_exec *const *node_kids(const ndf_exec *n, size_t *count)
{
    /* The count first, then the array: the array stored before that count
     * or a later one, each holding at least that many. */
    *count = atomic_load_explicit(&n->nkids, memory_order_acquire);
    return atomic_load_explicit(&n->kids, memory_order_acquire);
}

void node_times(const ndf_exec *n, double *start, double *end)
{
    *start = atomic_load_explicit(&n->start, memory_order_relaxed);
    *end = atomic_load_explicit(&n->end, memory_order_relaxed);
}

#define STATE_FINAL(s) ((s) != NDF_STATE_PENDING && (s) != NDF_STATE_RUNNING)

int state_final(ndf_state s)
{
    return s != NDF_STATE_PENDING && s != NDF_STATE_RUNNING;
}

void node_set_message(ndf_exec *node, const char *msg)
{
    char *copy = msg ? xstrdup(msg) : NULL;
    pthread_mutex_lock(&node->rec->lock);
    char *old = node->message;
    node->message = copy;
    pthread_mutex_unlock(&node->rec->lock);
    free(old);
}

static void node_seal_output(ndf_exec *node);

void node_set_state_at(ndf_exec *node, ndf_state state, const char *msg, double now)
{
    if (!msg && state == NDF_STATE_RUNNING) {
        node_start_at(node, now);
        return;
    }
    if (state == NDF_STATE_RUNNING) {
        atomic_store_explicit(&node->start, now, memory_order_relaxed);
        atomic_store_explicit(&node->start_wall, node->rec->start_wall + (now - node->rec->start),
                              memory_order_relaxed);
        atomic_store_explicit(&node->end, 0, memory_order_relaxed);
    } else if (STATE_FINAL(state)) {
        double start, end;
        node_times(node, &start, &end);
        if (start > 0 && end == 0)
            atomic_store_explicit(&node->end, now > start ? now : start, memory_order_relaxed);
    }
    if (msg)
        node_set_message(node, msg);
    atomic_store_explicit(&node->state, state, memory_order_release);
    if (STATE_FINAL(state) && atomic_load_explicit(&node->rec->out_tight, memory_order_relaxed))
        node_seal_output(node);
}

void node_set_state(ndf_exec *node, ndf_state state, const char *msg)
{
    double start, end;
    node_times(node, &start, &end);
    int stamp = state == NDF_STATE_RUNNING || (STATE_FINAL(state) && start > 0 && end == 0);
    node_set_state_at(node, state, msg, stamp ? record_now() : 0);
}

void node_limit_deadline(ndf_exec *node, double deadline)
{
    double cur = atomic_load_explicit(&node->deadline, memory_order_relaxed);
    while (deadline < cur &&
           !atomic_compare_exchange_weak_explicit(&node->deadline, &cur, deadline,
                                                  memory_order_release, memory_order_relaxed))
        ;
}

size_t node_cancel(ndf_exec *node)
{
    size_t n = 0;
    atomic_store(&node->cancelled, NDF_ERR_CANCELLED);
    int st = atomic_load_explicit(&node->state, memory_order_acquire);
    if (st == NDF_STATE_PENDING) {
        int pending = NDF_STATE_PENDING;
        /* Only a node nobody has started: its owner's RUNNING wins. */
        if (atomic_compare_exchange_strong(&node->state, &pending, NDF_STATE_CANCELLED)) {
            pthread_mutex_lock(&node->rec->lock);
            if (!node->message) {
                node->message = xstrdup("cancelled before it started");
            }
            pthread_mutex_unlock(&node->rec->lock);
        }
        n++;
    } else if (st == NDF_STATE_RUNNING) {
        n++;
    }
    size_t nk;
    ndf_exec *const *kids = node_kids(node, &nk);
    for (size_t i = 0; i < nk; i++)
        node_cancel(kids[i]);
    return n;
}

void node_set_result(ndf_exec *node, const char *text)
{
    char *copy = text ? xstrdup(text) : NULL;
    pthread_mutex_lock(&node->rec->lock);
    char *old = node->result;
    node->result = copy;
    pthread_mutex_unlock(&node->rec->lock);
    free(old);
}

char *node_result_dup(const ndf_exec *node)
{
    pthread_mutex_lock(&node->rec->lock);
    char *copy = node->result ? xstrdup(node->result) : NULL;
    pthread_mutex_unlock(&node->rec->lock);
    return copy;
}

int node_set_metric(ndf_exec *node, const char *name, double value)
{
    int rc = 0;
    pthread_mutex_lock(&node->rec->lock);
    size_t i;
    for (i = 0; i < node->nmetrics; i++)
        if (strcmp(node->metrics[i].name, name) == 0)
            break;
    if (i == node->nmetrics) {
        if (i >= NODE_METRICS_MAX) {
            rc = -1;
            goto out;
        }
        node->metrics = xrealloc(node->metrics, (i + 1) * sizeof *node->metrics);
        snprintf(node->metrics[i].name, sizeof node->metrics[i].name, "%s", name);
        node->nmetrics++;
    }
    node->metrics[i].value = value;
out:
    pthread_mutex_unlock(&node->rec->lock);
    return rc;
}

/* Caller holds the record lock. */
static const ndf_exec *find_result_locked(const ndf_exec *n, const char *name)
{
    if (n->result && strcmp(n->name, name) == 0)
        return n;
    size_t nk;
    ndf_exec *const *kids = node_kids(n, &nk);
    for (size_t i = 0; i < nk; i++) {
        const ndf_exec *f = find_result_locked(kids[i], name);
        if (f)
            return f;
    }
    return NULL;
}

void node_add_usage(ndf_exec *node, node_usage_source source, double user_s, double sys_s,
                    long maxrss_kb)
{
    if (!node)
        return;
    user_s = user_s > 0 ? user_s : 0;
    sys_s = sys_s > 0 ? sys_s : 0;
    pthread_mutex_lock(&node->rec->lock);
    node_usage *u = &node->usage;
    u->sources |= (unsigned)source;
    switch (source) {
    case USAGE_THREAD: u->thread_cpu_s += user_s + sys_s; break;
    case USAGE_CHILD:
        u->child_user_s += user_s;
        u->child_sys_s += sys_s;
        if (maxrss_kb > u->child_maxrss_kb)
            u->child_maxrss_kb = maxrss_kb;
        break;
    case USAGE_WORKER:
        u->worker_user_s += user_s;
        u->worker_sys_s += sys_s;
        if (maxrss_kb > u->worker_maxrss_kb)
            u->worker_maxrss_kb = maxrss_kb;
        break;
    }
    pthread_mutex_unlock(&node->rec->lock);
}

void node_usage_total(const ndf_exec *node, double *cpu_s, long *maxrss_kb)
{
    const node_usage *u = &node->usage;
    *cpu_s += u->thread_cpu_s + u->child_user_s + u->child_sys_s + u->worker_user_s +
              u->worker_sys_s;
    if (u->child_maxrss_kb > *maxrss_kb)
        *maxrss_kb = u->child_maxrss_kb;
    if (u->worker_maxrss_kb > *maxrss_kb)
        *maxrss_kb = u->worker_maxrss_kb;
    size_t nk;
    ndf_exec *const *kids = node_kids(node, &nk);
    for (size_t i = 0; i < nk; i++)
        node_usage_total(kids[i], cpu_s, maxrss_kb);
}

char *node_find_result(ndf_exec *root, const char *name)
{
    pthread_mutex_lock(&root->rec->lock);
    const ndf_exec *f = find_result_locked(root, name);
    char *copy = f ? xstrdup(f->result) : NULL;
    pthread_mutex_unlock(&root->rec->lock);
    return copy;
}

int node_stop_status_at(const ndf_exec *node, double now)
{
    int c = atomic_load_explicit(&node->rec->cancel, memory_order_relaxed);
    if (!c)
        c = atomic_load_explicit(&node->cancelled, memory_order_relaxed);
    if (c && (!node->cleanup || atomic_load_explicit(&node->rec->hard_cancel, memory_order_relaxed)))
        return c;
    if (node->deadline < INFINITY && now >= node->deadline)
        return NDF_ERR_TIMEOUT;
    return 0;
}

void record_cancel(record *r, int hard)
{
    /* The time first: a waiter that sees `cancel` reads it. */
    if (atomic_load(&r->cancel_at) == 0)
        atomic_store(&r->cancel_at, now_mono());
    int zero = 0;
    atomic_compare_exchange_strong(&r->cancel, &zero, NDF_ERR_CANCELLED);
    if (hard)
        atomic_store(&r->hard_cancel, 1);
}

int record_lease_lost(record *r, double now)
{
    double end = atomic_load_explicit(&r->lease_end, memory_order_relaxed);
    if (!(end > 0) || now < end)
        return 0;
    atomic_store(&r->lease_lapsed, 1);
    record_cancel(r, 1);
    return 1;
}

int node_stop_status(const ndf_exec *node)
{
    int c = atomic_load_explicit(&node->rec->cancel, memory_order_relaxed);
    if (!c)
        c = atomic_load_explicit(&node->cancelled, memory_order_relaxed);
    if (c && (!node->cleanup || atomic_load_explicit(&node->rec->hard_cancel, memory_order_relaxed)))
        return c;
    if (node->deadline < INFINITY && record_now() >= node->deadline)
        return NDF_ERR_TIMEOUT;
    return 0;
}

/* Moves the oldest raw bytes of `t` past RECORD_TIGHT_TAIL into its
 * compressed part and keeps the rest in a buffer of its size: the
 * record's budget is spent (record lock held). */
static void tail_tighten(record *r, tailbuf *t, size_t limit)
{
    size_t w = RECORD_TIGHT_TAIL;
    t->tight = 1;
    atomic_store_explicit(&r->out_tight, 1, memory_order_relaxed);
    if (t->z)
        ztail_grow(t->z, limit - w);
    if (t->len > w) {
        if (!t->z)
            t->z = ztail_new(limit - w);
        ztail_add(t->z, t->buf, t->len - w);
        t->dropped += t->len - w;
        t->buf += t->len - w;
        t->len = w;
    }
    size_t want = 2 * w + 2;
    if (t->cap > want) {
        char *mem = xmalloc(want);
        memcpy(mem, t->buf, t->len);
        mem[t->len] = '\0';
        free(t->mem);
        r->out_held -= t->cap - want;
        t->mem = t->buf = mem;
        t->cap = want;
    }
}

/* Dropping the oldest bytes slides t->buf forward in its allocation; the
 * kept bytes are moved back to its start only when the end is reached,
 * and the allocation is then twice what is kept, so each byte is moved
 * about once: linear in the output whatever the limit (moving the whole
 * tail for every 16 KiB read took 53 s of CPU for 256 MiB at a 64 MiB
 * limit).  The raw window is RECORD_RAW_TAIL, or RECORD_TIGHT_TAIL once
 * the record's buffers would pass RECORD_OUTPUT_BUDGET (record lock
 * held). */
static void tail_add(record *r, tailbuf *t, const char *buf, size_t len, size_t limit)
{
    /* a buffer that must grow, by at most twice what it would keep, when
     * the execution's buffers are at their budget */
    if (!t->tight && limit > RECORD_TIGHT_TAIL) {
        size_t off = t->mem ? (size_t)(t->buf - t->mem) : 0;
        size_t keep = limit < RECORD_RAW_TAIL ? limit : RECORD_RAW_TAIL;
        size_t grow = 2 * (t->len + len < keep ? t->len + len : keep) + 2;
        if (grow < 256)
            grow = 256;
        if (off + t->len + len + 1 > t->cap && r->out_held + grow > RECORD_OUTPUT_BUDGET)
            tail_tighten(r, t, limit);
    }
    size_t w = t->tight ? RECORD_TIGHT_TAIL : RECORD_RAW_TAIL;
    if (limit > w) {
        /* what leaves the raw window, oldest first, goes to the
         * compressed part, which keeps the rest of the limit */
        size_t from_buf = 0, from_new = 0;
        if (len >= w)
            from_buf = t->len, from_new = len - w;
        else if (t->len + len > w)
            from_buf = t->len + len - w;
        if (from_buf || from_new) {
            if (!t->z)
                t->z = ztail_new(limit - w);
            if (from_buf)
                ztail_add(t->z, t->buf, from_buf);
            if (from_new)
                ztail_add(t->z, buf, from_new);
        }
        limit = w;
    }
    if (len >= limit) {
        t->dropped += t->len + (len - limit);
        buf += len - limit;
        len = limit;
        t->len = 0;
        t->buf = t->mem;
    } else if (t->len + len > limit) {
        size_t drop = t->len + len - limit;
        t->buf += drop;
        t->len -= drop;
        t->dropped += drop;
    }
    size_t off = t->mem ? (size_t)(t->buf - t->mem) : 0;
    if (off + t->len + len + 1 > t->cap) {
        size_t need = t->len + len + 1;
        size_t want = need < (SIZE_MAX - 2) / 2 ? 2 * need : need;
        if (limit < (SIZE_MAX - 2) / 2 && want > 2 * limit + 2)
            want = 2 * limit + 2 > need ? 2 * limit + 2 : need;
        if (want < 256)
            want = 256;
        if (want > t->cap) {
            char *mem = xmalloc(want);
            if (t->len)
                memcpy(mem, t->buf, t->len);
            free(t->mem);
            r->out_held += want - t->cap;
            t->mem = mem;
            t->cap = want;
        } else {
            memmove(t->mem, t->buf, t->len);
        }
        t->buf = t->mem;
    }
    memcpy(t->buf + t->len, buf, len);
    t->len += len;
    t->buf[t->len] = '\0';
}

void node_append(ndf_exec *node, record_stream s, const char *buf, size_t len, size_t limit)
{
    if (!len)
        return;
    if (node->rec->on_output && s != REC_LOG) {
        node->rec->on_output(node->rec->output_arg, node, (int)s, buf, len, limit);
        return;
    }
    pthread_mutex_lock(&node->rec->lock);
    if (node->out == record_no_output)
        node->out = xcalloc(3, sizeof *node->out);
    tail_add(node->rec, &node->out[s], buf, len, limit ? limit : RECORD_OUTPUT_LIMIT);
    pthread_mutex_unlock(&node->rec->lock);
}

/* A node that ended writes no more: past the budget, the compressors of
 * its spilled streams are freed (a thousand ended tasks would otherwise
 * hold 256 KiB each). */
static void node_seal_output(ndf_exec *node)
{
    record *r = node->rec;
    pthread_mutex_lock(&r->lock);
    if (node->out != record_no_output)
        for (int i = 0; i < 3; i++) {
            tailbuf *t = &node->out[i];
            if (t->z)
                ztail_seal(t->z);
            /* a tight stream's buffer shrinks to what it keeps */
            if (t->tight && t->cap > t->len + 1) {
                char *mem = xmalloc(t->len + 1);
                memcpy(mem, t->buf, t->len);
                mem[t->len] = '\0';
                free(t->mem);
                r->out_held -= t->cap - (t->len + 1);
                t->mem = t->buf = mem;
                t->cap = t->len + 1;
            }
        }
    pthread_mutex_unlock(&r->lock);
}

/* Caller holds the record lock. */
static double progress_locked(const ndf_exec *n)
{
    ndf_state s = atomic_load_explicit(&n->state, memory_order_acquire);
    if (state_final(s))
        return 100.0;
    size_t nk;
    ndf_exec *const *kids = node_kids(n, &nk);
    if (!nk)
        return 0.0;
    double sum = 0;
    for (size_t i = 0; i < nk; i++)
        sum += progress_locked(kids[i]);
    return sum / (double)nk;
}

double node_progress(ndf_exec *node)
{
    pthread_mutex_lock(&node->rec->lock);
    double p = progress_locked(node);
    pthread_mutex_unlock(&node->rec->lock);
    return p;
}

const char *state_name(ndf_state s)
{
    static const char *const names[] = {"PENDING",   "RUNNING",   "COMPLETED",
                                        "FAILED",    "SKIPPED",   "ROLLED_BACK",
                                        "CANCELLED", "TIMED_OUT", "DEGRADED"};
    return (unsigned)s < ARRAY_SIZE(names) ? names[s] : "UNKNOWN";
}

const char *node_kind_name(ndf_node_kind k)
{
    switch (k) {
    case NDF_NODE_PATTERN: return "pattern";
    case NDF_NODE_PHASE: return "phase";
    case NDF_NODE_TASK: return "task";
    case NDF_NODE_STEP: return "step";
    default: return "node";
    }
}

static double node_duration(const ndf_exec *n, double now)
{
    double start, end;
    node_times(n, &start, &end);
    if (start <= 0)
        return 0;
    return (end > 0 ? end : now) - start;
}

/* The parts of a record's JSON that grow with what steps produced: each
 * node's result and the newest RECORD_JSON_OUTPUT bytes of each stream.
 * Bounded per node, they are not per record (1,000 parallel tasks at the
 * per-node bound make hundreds of MB), so the record shares
 * RECORD_JSON_TOTAL among them: every part gets at most `cap` bytes, the
 * cap the largest that keeps their sum within the total, so the largest
 * parts are cut first and small ones stay whole. */
typedef struct json_budget {
    size_t cap;       /* bytes one part may keep */
    uint64_t omitted; /* bytes the cap left out, in all */
} json_budget;

static size_t part_sizes(const ndf_exec *n, size_t **v, size_t *nv, size_t *cap)
{
    size_t total = 0;
    size_t sizes[4] = {n->result ? strlen(n->result) : 0, 0, 0, 0};
    if (sizes[0] > RECORD_JSON_OUTPUT)
        sizes[0] = RECORD_JSON_OUTPUT;
    for (int i = 0; i < 3; i++)
        sizes[i + 1] = n->out[i].len > RECORD_JSON_OUTPUT ? RECORD_JSON_OUTPUT : n->out[i].len;
    for (int i = 0; i < 4; i++) {
        if (!sizes[i])
            continue;
        if (*nv == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            *v = xrealloc(*v, *cap * sizeof **v);
        }
        (*v)[(*nv)++] = sizes[i];
        total += sizes[i];
    }
    size_t nk;
    ndf_exec *const *kids = node_kids(n, &nk);
    for (size_t i = 0; i < nk; i++)
        total += part_sizes(kids[i], v, nv, cap);
    return total;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

size_t record_json_share(size_t *v, size_t n, size_t total)
{
    if (total <= RECORD_JSON_TOTAL)
        return RECORD_JSON_OUTPUT;
    /* water-filling: the smallest parts fit whole while the rest, sharing
     * what is left equally, get at least as much */
    qsort(v, n, sizeof *v, cmp_size);
    size_t left = RECORD_JSON_TOTAL, i = 0;
    while (i < n && v[i] <= left / (n - i))
        left -= v[i++];
    return i < n ? left / (n - i) : RECORD_JSON_OUTPUT;
}

/* The cap for the parts under `root`.  Caller holds the record lock. */
static size_t json_cap(const ndf_exec *root)
{
    size_t *v = NULL, nv = 0, cap = 0;
    size_t total = part_sizes(root, &v, &nv, &cap);
    size_t c = record_json_share(v, nv, total);
    free(v);
    return c;
}

/* Caller holds the record lock. */
static void node_json(const ndf_exec *n, strbuf *sb, double now, json_budget *jb)
{
    ndf_state st = atomic_load_explicit(&n->state, memory_order_acquire);
    sb_puts(sb, "{\"kind\":");
    sb_json_str(sb, node_kind_name(n->kind));
    sb_puts(sb, ",\"name\":");
    sb_json_str(sb, n->name);
    sb_printf(sb, ",\"state\":\"%s\"", state_name(st));
    if (atomic_load_explicit(&n->start, memory_order_relaxed) > 0) {
        sb_printf(sb, ",\"started\":%.3f",
                  atomic_load_explicit(&n->start_wall, memory_order_relaxed));
        sb_puts(sb, ",\"duration\":");
        sb_json_num(sb, node_duration(n, now), 6);
    }
    sb_puts(sb, ",\"progress\":");
    sb_json_num(sb, progress_locked(n), 6);
    if (n->message) {
        sb_puts(sb, ",\"message\":");
        sb_json_str(sb, n->message);
    }
    if (n->result) {
        /* its first bytes (a result is read from its start), its length
         * when cut; the whole result is in the node's log */
        size_t len = strlen(n->result), keep = len < jb->cap ? len : jb->cap;
        sb_puts(sb, ",\"result\":");
        sb_json_strn(sb, n->result, keep);
        if (keep < len) {
            sb_printf(sb, ",\"result_length\":%zu", len);
            jb->omitted += (len < RECORD_JSON_OUTPUT ? len : RECORD_JSON_OUTPUT) - keep;
        }
    }
    if (n->nmetrics) {
        sb_puts(sb, ",\"metrics\":{");
        for (size_t i = 0; i < n->nmetrics; i++) {
            if (i)
                sb_add(sb, ",", 1);
            sb_json_str(sb, n->metrics[i].name);
            sb_add(sb, ":", 1);
            sb_json_num(sb, n->metrics[i].value, 17);
        }
        sb_add(sb, "}", 1);
    }
    static const char *const streams[] = {"stdout", "stderr", "log"};
    for (int i = 0; i < 3; i++) {
        const tailbuf *t = &n->out[i];
        if (!t->len && !t->dropped)
            continue;
        sb_printf(sb, ",\"%s\":", streams[i]);
        size_t want = t->len > RECORD_JSON_OUTPUT ? RECORD_JSON_OUTPUT : t->len;
        size_t keep = want < jb->cap ? want : jb->cap;
        size_t skip = t->len - keep;
        jb->omitted += want - keep;
        sb_json_strn(sb, t->buf ? t->buf + skip : "", t->len - skip);
        if (t->dropped || skip)
            sb_printf(sb, ",\"%s_truncated\":%llu", streams[i],
                      (unsigned long long)t->dropped + skip);
    }
    size_t nk;
    ndf_exec *const *kids = node_kids(n, &nk);
    if (nk) {
        sb_puts(sb, ",\"children\":[");
        for (size_t i = 0; i < nk; i++) {
            if (i)
                sb_add(sb, ",", 1);
            node_json(kids[i], sb, now, jb);
        }
        sb_add(sb, "]", 1);
    }
    sb_add(sb, "}", 1);
}

int record_outcome(const record *r)
{
    int st = r->status;
    /* not the pattern's outcome but the host's: nothing was acknowledged */
    if (atomic_load(&r->unrecorded))
        return NDF_ERR_IO;
    if (atomic_load_explicit(&r->root->start, memory_order_relaxed) <= 0)
        return st;
    return st == NDF_OK || st == NDF_ERR_TIMEOUT || st == NDF_ERR_CANCELLED ? st
                                                                            : NDF_ERR_EXECUTION;
}

void record_to_json(record *r, strbuf *sb)
{
    double now = record_now();
    pthread_mutex_lock(&r->lock);
    int done = atomic_load(&r->done);
    sb_puts(sb, "{\"id\":");
    sb_json_str(sb, r->id);
    sb_puts(sb, ",\"pattern\":");
    sb_json_str(sb, r->root->name);
    sb_printf(sb, ",\"done\":%s", done ? "true" : "false");
    if (done) {
        const char *sn = ndf_status_name(r->status);
        sb_puts(sb, ",\"status\":");
        sb_json_str(sb, sn);
        sb_printf(sb, ",\"success\":%s", r->status == NDF_OK ? "true" : "false");
        if (r->error) {
            sb_puts(sb, ",\"error\":");
            sb_json_str(sb, r->error);
        }
    }
    if (r->fallback_from) {
        sb_puts(sb, ",\"fallback_from\":");
        sb_json_str(sb, r->fallback_from);
        sb_puts(sb, ",\"fallback_cause\":");
        sb_json_str(sb, r->fallback_cause ? r->fallback_cause : "");
    }
    sb_puts(sb, ",\"context\":");
    context_to_json(r->ctx, sb);
    sb_printf(sb, ",\"started\":%.3f", r->start_wall);
    sb_puts(sb, ",\"duration\":");
    sb_json_num(sb, (r->end > 0 ? r->end : now) - r->start, 6);
    json_budget jb = {json_cap(r->root), 0};
    sb_puts(sb, ",\"root\":");
    node_json(r->root, sb, now, &jb);
    /* the record's own bound cut parts: say so, and by how much */
    if (jb.omitted)
        sb_printf(sb, ",\"output_omitted\":%llu", (unsigned long long)jb.omitted);
    sb_add(sb, "}", 1);
    pthread_mutex_unlock(&r->lock);
}

static void node_text(const ndf_exec *n, strbuf *sb, int indent, double now)
{
    ndf_state st = atomic_load_explicit(&n->state, memory_order_acquire);
    sb_printf(sb, "%*s%-13s %s %s", indent * 2, "", state_name(st), node_kind_name(n->kind),
              n->name);
    if (atomic_load_explicit(&n->start, memory_order_relaxed) > 0)
        sb_printf(sb, "  %.3fs", node_duration(n, now));
    size_t nk;
    ndf_exec *const *kids = node_kids(n, &nk);
    if (nk && !state_final(st))
        sb_printf(sb, "  %.0f%%", progress_locked(n));
    if (n->message && *n->message)
        sb_printf(sb, "  (%s)", n->message);
    sb_add(sb, "\n", 1);
    for (size_t i = 0; i < nk; i++)
        node_text(kids[i], sb, indent + 1, now);
}

void record_to_text(record *r, strbuf *sb)
{
    double now = record_now();
    pthread_mutex_lock(&r->lock);
    node_text(r->root, sb, 0, now);
    pthread_mutex_unlock(&r->lock);
}

/* Appends `n`'s path below the root to `sb` (recursing up first). */
static void path_of(const ndf_exec *n, strbuf *sb)
{
    if (!n->parent)
        return;
    path_of(n->parent, sb);
    size_t nk;
    ndf_exec *const *kids = node_kids(n->parent, &nk);
    int dup = 0;
    for (size_t i = 0; i < nk && kids[i] != n; i++)
        dup += strcmp(kids[i]->name, n->name) == 0;
    if (sb->len)
        sb_add(sb, "/", 1);
    sb_puts(sb, n->name);
    if (dup)
        sb_printf(sb, "#%d", dup + 1);
}

char *record_node_path(const ndf_exec *node)
{
    strbuf sb;
    sb_init(&sb);
    path_of(node, &sb);
    return sb_steal(&sb);
}

record_reuse *record_reuse_new(const char *message, const char *result, int undone)
{
    size_t ml = message ? strlen(message) : 0, rl = result ? strlen(result) : 0;
    record_reuse *v = xmalloc(sizeof *v + ml + 1 + (result ? rl + 1 : 0));
    memcpy(v->message, message ? message : "", ml + 1);
    v->result = NULL;
    v->undone = undone;
    if (result) {
        v->result = v->message + ml + 1;
        memcpy(v->result, result, rl + 1);
    }
    return v;
}

/* A replay's record_reuse_node(): the stored outcome and result.  A
 * sub-pattern is found but runs again (returns 0), so that its type
 * rebuilds its own run data for the rollback; its nodes are reused one by
 * one. */
static int replay_reuse(ndf_exec *node, const record_reuse *was)
{
    record *r = node->rec;
    atomic_fetch_add(&r->reuse_hits, 1);
    if (node->kind == NDF_NODE_PATTERN)
        return 0;
    node->reused = 1;
    node->replay_undone = was->undone;
    double now = record_now();
    node_start_at(node, now);
    if (was->result)
        node_set_result(node, was->result);
    char *msg = *was->message ? xasprintf(REPLAY_NOTE ": %s", was->message)
                              : xstrdup(REPLAY_NOTE);
    node_set_state_at(node, NDF_STATE_COMPLETED, msg, now);
    free(msg);
    return 1;
}

int record_reuse_node(ndf_exec *node)
{
    record *r = node->rec;
    if (!r->reuse)
        return 0;
    char *path = record_node_path(node);
    const char *was = hashmap_get(r->reuse, path);
    free(path);
    if (!was)
        return 0;
    if (atomic_load(&r->replay))
        return replay_reuse(node, (const record_reuse *)was);
    node->reused = 1;
    double now = record_now();
    node_start_at(node, now);
    char *msg = *was ? xasprintf("reused from execution %s: %s", r->redrive_of, was)
                     : xasprintf("reused from execution %s", r->redrive_of);
    node_set_state_at(node, NDF_STATE_COMPLETED, msg, now);
    free(msg);
    return 1;
}

/* The queue worker (worker.h): one thread that reaps what ended, beats,
 * renews and claims, never waiting on an execution.  The executions it
 * starts run on the serving generation's pool like a client's; what ties
 * one to its claim is the store's binding (queue_bind()), so the end is
 * recorded by the generation's on_complete as any other, and refused there
 * when the claim was taken over meanwhile. */
#include "build-config.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/delegation.h"
#include "base/hashmap.h"
#include "base/util.h"
#include "exec/executor.h"
#include "exec/record.h"
#include "model/context.h"
#include "model/pattern.h"
#include "model/registry.h"
#include "plugin/loader.h"
#include "serve/worker.h"
#include "store/history.h"
#include "store/queue.h"
#include "store/redrive.h"

/* Seconds between looks at what ended: cheap (memory only), and the
 * delay between an execution's end and the claim that fills its place. */
#define WORKER_TICK 0.02
/* Backoff after a failed database call, doubling up to the maximum. */
#define BACKOFF_MIN 0.5
#define BACKOFF_MAX 10.0

/* A claim being run. */
typedef struct held {
    char *qid;
    long long generation;
    record *r;          /* a reference */
    double renewed;     /* now_mono() of the claim or the last renewal */
    int lost;           /* lease lost: cancelled, its end will not be recorded */
    struct held *next;
} held;

struct worker {
    genset *gs;
    store *st;
    worker_opts o;
    char name[320];
    char host[256];
    pthread_t thread;
    /* held by a claim round, from the claim to the last start: a drain
     * takes it to know that nothing starts after it returns */
    pthread_mutex_t claim_lock;
    pthread_mutex_t lock; /* guards the fields below and `stop`'s wakeup */
    pthread_cond_t cond;  /* CLOCK_MONOTONIC */
    int stop;
    _Atomic int draining;
    held *held;
    size_t nheld, claimed, finished, lost;
    int offline;
};

/* The names of the generation's patterns, for the claim's filter. */
static char **pattern_names(registry *reg, size_t *n)
{
    pattern_list l;
    memset(&l, 0, sizeof l);
    *n = 0;
    if (registry_all(reg, &l) != NDF_OK)
        return NULL;
    char **v = l.count ? xcalloc(l.count, sizeof *v) : NULL;
    for (size_t i = 0; i < l.count; i++)
        v[i] = xstrdup(l.items[i]->name);
    *n = l.count;
    pattern_list_free(&l);
    return v;
}

static void names_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* What the workers table shows of this worker: its patterns and plugins. */
static void describe(worker *w, queue_worker *q)
{
    gen *g = genset_current(w->gs);
    runtime *rt = gen_runtime(g);
    size_t n;
    char **names = pattern_names(rt->reg, &n);
    strbuf sb;
    sb_init(&sb);
    sb_puts(&sb, "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            sb_puts(&sb, ",");
        sb_json_str(&sb, names[i]);
    }
    sb_puts(&sb, "]");
    q->patterns = sb_steal(&sb);
    names_free(names, n);
    sb_init(&sb);
    sb_puts(&sb, "[");
    genset_lock(w->gs); /* the loader is read under the reload lock */
    loader *ld = rt->ld;
    size_t np = ld ? loader_count(ld) : 0, k = 0;
    for (size_t i = 0; i < np; i++) {
        plugin_info pi;
        loader_plugin(ld, i, &pi);
        if (!pi.loaded)
            continue;
        sb_puts(&sb, k++ ? ",{\"name\":" : "{\"name\":");
        sb_json_str(&sb, pi.name);
        sb_puts(&sb, ",\"version\":");
        sb_json_str(&sb, pi.version);
        sb_puts(&sb, ",\"hash\":");
        sb_json_str(&sb, pi.hash);
        sb_puts(&sb, "}");
    }
    genset_unlock(w->gs);
    sb_puts(&sb, "]");
    q->plugins = sb_steal(&sb);
    genset_release(w->gs, g);
}

/* One heartbeat: the worker's row. */
static int beat(worker *w, size_t load)
{
    queue_worker q;
    memset(&q, 0, sizeof q);
    q.name = w->name;
    q.host = w->host;
    q.pid = (long)getpid();
    q.capacity = w->o.capacity;
    q.load = (int)load;
    q.draining = atomic_load(&w->draining);
    q.lease = w->o.lease;
    describe(w, &q);
    int rc = queue_worker_beat(w->st, &q);
    free(q.patterns);
    free(q.plugins);
    return rc;
}

/* The claim hook of a queued execution (executor_claim_fn), before any of
 * its work is queued: binds its end to the claim, notes on the item which
 * execution runs it, and records it as RUNNING. */
typedef struct claim_ctx {
    store *st;
    const queue_item *q;
} claim_ctx;

static int claim_start(void *arg, const record *r)
{
    claim_ctx *cc = arg;
    int rc = queue_bind(cc->st, r->id, cc->q->id, cc->q->generation);
    if (rc == NDF_OK)
        rc = queue_start(cc->st, cc->q->id, cc->q->generation, r->id);
    if (rc == NDF_OK)
        rc = history_begin(cc->st, r, STORE_ORIGIN_CTL);
    if (rc)
        queue_unbind(cc->st, r->id);
    return rc;
}

/* What an item taken over brings: the execution its last holder ran, ended
 * as CRASHED (that holder can no longer record it), its context and the
 * nodes to reuse.  NDF_OK with *from NULL when nothing ran before. */
static int takeover(worker *w, const queue_item *q, char **from, hashmap **reuse, size_t *nreuse)
{
    *from = NULL;
    *reuse = NULL;
    *nreuse = 0;
    if (!q->exec_id)
        return NDF_OK;
    int rc = queue_abandon(w->st, q->exec_id, q->id);
    if (rc)
        return rc;
    store_exec e;
    rc = store_get(w->st, q->exec_id, &e);
    if (rc == NDF_ERR_NOT_FOUND)
        return NDF_OK; /* claimed, never begun: run it afresh */
    if (rc)
        return rc;
    if (redrive_check(&e, 0) == NDF_OK) {
        *reuse = redrive_reuse(&e, nreuse);
        *from = xstrdup(e.id);
    } else {
        /* rolled back, or a state that cannot be resumed: from the start,
         * still linked to what ran before */
        log_msg(NDF_LOG_WARN, "queued item %s: %s; running it from the start", q->id, err_msg());
        if (e.status != STORE_SUCCEEDED)
            *from = xstrdup(e.id);
    }
    store_exec_free(&e);
    return NDF_OK;
}

/* Starts claimed item `q`.  Returns NDF_OK with *out (a reference), or the
 * status that kept it from starting (err_msg() says why); a database
 * failure is NDF_ERR_IO. */
static int start_item(worker *w, const queue_item *q, record **out)
{
    *out = NULL;
    ndf_context *ctx = NULL;
    int rc = NDF_OK;
    if (q->context && *q->context) {
        char *where = xasprintf("the context of queued item %s", q->id);
        rc = context_from_json(q->context, where, &ctx);
        free(where);
        if (rc)
            return rc;
    }
    char *from = NULL;
    hashmap *reuse = NULL;
    size_t nreuse = 0;
    if ((rc = takeover(w, q, &from, &reuse, &nreuse))) {
        context_free(ctx);
        return rc;
    }
    /* a delegation's choice (ndf delegate --submit) runs as its attempts
     * do: the threshold governed the choice, the gate does not judge it
     * again */
    unsigned flags = ctx && context_has_attribute(ctx, DELEGATION_REASON_ATTR, NULL) ? EXEC_FORCE : 0;
    gen *g = genset_current(w->gs);
    claim_ctx cc = {w->st, q};
    rc = executor_start_redrive(gen_runtime(g)->ex, q->pattern, ctx, q->timeout, flags, from,
                                reuse, claim_start, &cc, out);
    if (rc == NDF_OK) {
        gen_track(g, *out);
        if (from)
            log_msg(NDF_LOG_INFO,
                    "queued item %s (attempt %d): taken over from %s, %zu node(s) reused, "
                    "execution %s",
                    q->id, q->attempts, from, nreuse, (*out)->id);
    }
    genset_release(w->gs, g);
    free(from);
    context_free(ctx);
    return rc;
}

/* Ends item `q`, which could not start for `rc`: a refusal of the item
 * itself ends it; anything else gives it back to the queue. */
static void not_started(worker *w, const queue_item *q, int rc)
{
    char *why = xstrdup(err_msg());
    switch (rc) {
    case NDF_ERR_NOT_FOUND:
    case NDF_ERR_INVALID:
    case NDF_ERR_VALIDATION:
    case NDF_ERR_CONFIDENCE:
        log_msg(NDF_LOG_WARN, "queued item %s (%s) not started: %s", q->id, q->pattern, why);
        if (queue_fail(w->st, q->id, q->generation,
                       rc == NDF_ERR_CONFIDENCE ? STORE_REFUSED : STORE_FAILED, why) != NDF_OK)
            log_msg(NDF_LOG_WARN, "%s", err_msg());
        break;
    case NDF_ERR_CANCELLED:
        /* the claim was lost while starting (the hook's queue_start), or
         * the executor is stopping: nothing of it is ours */
        if (queue_release(w->st, q->id, q->generation) != NDF_OK)
            log_msg(NDF_LOG_WARN, "%s", err_msg());
        break;
    default:
        log_msg(NDF_LOG_WARN, "queued item %s not started here (%s): given back", q->id, why);
        if (queue_release(w->st, q->id, q->generation) != NDF_OK)
            log_msg(NDF_LOG_WARN, "%s", err_msg());
        break;
    }
    free(why);
}

/* Drops what ended from the held list; returns how many are held. */
static size_t reap(worker *w)
{
    pthread_mutex_lock(&w->lock);
    for (held **pp = &w->held; *pp;) {
        held *h = *pp;
        if (atomic_load(&h->r->done)) {
            *pp = h->next;
            w->nheld--;
            w->finished++;
            if (h->lost || atomic_load(&h->r->unrecorded))
                queue_unbind(w->st, h->r->id);
            record_unref(h->r);
            free(h->qid);
            free(h);
        } else {
            pp = &h->next;
        }
    }
    size_t n = w->nheld;
    pthread_mutex_unlock(&w->lock);
    return n;
}

/* Cancels `h`'s execution, its lease lost or maybe lost: without rollback
 * (the worker that takes the item over reuses the steps that completed
 * here, so none is undone on this host) and with its processes killed at
 * once. */
static void cancel_lost(worker *w, held *h)
{
    atomic_store(&h->r->lease_end, now_mono());
    /* genset_cancel_hard takes the set's lock, never w->lock: no order */
    genset_cancel_hard(w->gs, h->r->id, 1);
}

/* Renews every lease held.  A lease found lost is cancelled at once; one
 * that cannot be renewed (the database is away) is cancelled once it may
 * have expired, so that nothing runs past a lease another worker can take.
 * Returns NDF_OK, or the status of a database failure. */
static int renew_all(worker *w)
{
    /* a copy of the list: the renewals are round trips, made unlocked */
    pthread_mutex_lock(&w->lock);
    size_t n = w->nheld, k = 0;
    held **v = n ? xcalloc(n, sizeof *v) : NULL;
    for (held *h = w->held; h && k < n; h = h->next)
        if (!h->lost)
            v[k++] = h;
    pthread_mutex_unlock(&w->lock);
    int failed = NDF_OK;
    for (size_t i = 0; i < k; i++) {
        held *h = v[i]; /* only this thread frees held entries */
        /* the new lease runs from the server's moment of the update, which
         * is after this */
        double t0 = now_mono();
        int rc = failed ? failed : queue_renew(w->st, h->qid, h->generation, w->o.lease);
        if (rc == NDF_OK) {
            pthread_mutex_lock(&w->lock);
            h->renewed = t0;
            pthread_mutex_unlock(&w->lock);
            continue;
        }
        if (rc == NDF_ERR_CANCELLED && atomic_load(&h->r->claimed)) {
            /* it is ending: its recorded end completed the item (or, were
             * the claim taken over, is refused); the reap will see it */
            continue;
        }
        if (rc == NDF_ERR_CANCELLED) {
            log_msg(NDF_LOG_WARN, "execution %s: %s: cancelling it", h->r->id, err_msg());
        } else {
            failed = rc;
            /* the lease runs on the database's clock from a renewal that
             * happened before h->renewed: a margin of one heartbeat */
            if (now_mono() - h->renewed < w->o.lease - w->o.heartbeat)
                continue;
            log_msg(NDF_LOG_WARN,
                    "execution %s: its lease of queued item %s may have expired (the database "
                    "is unreachable): cancelling it",
                    h->r->id, h->qid);
            queue_unbind(w->st, h->r->id); /* as in expire_local() */
        }
        h->lost = 1;
        pthread_mutex_lock(&w->lock);
        w->lost++;
        pthread_mutex_unlock(&w->lock);
        cancel_lost(w, h);
    }
    free(v);
    return failed;
}

/* Cancels, without asking the database, every held execution whose lease
 * may have run out by this host's clock (no renewal for a lease less one
 * heartbeat): after a pause of the whole process (a stop signal, a stalled
 * VM) this is the first thing the worker does, a tick after it resumes,
 * rather than at its next heartbeat. */
static void expire_local(worker *w)
{
    double now = now_mono();
    pthread_mutex_lock(&w->lock);
    for (held *h = w->held; h; h = h->next) {
        if (h->lost || atomic_load(&h->r->claimed) ||
            now - h->renewed < w->o.lease - w->o.heartbeat)
            continue;
        h->lost = 1;
        w->lost++;
        log_msg(NDF_LOG_WARN,
                "execution %s: no renewal of queued item %s's lease for %.1fs: cancelling it",
                h->r->id, h->qid, now - h->renewed);
        /* unsure, not lost: its cancelled end must not end the item (that
         * would be the item's outcome); unbound, it is recorded as an
         * execution of its own, and the item, once its lease expires, is
         * claimed again and redriven from it */
        queue_unbind(w->st, h->r->id);
        cancel_lost(w, h);
    }
    pthread_mutex_unlock(&w->lock);
}

/* Claims up to `want` items and starts them.  NDF_OK, or the status of a
 * database failure; *got gets the count claimed. */
static int claim(worker *w, size_t want, size_t *got)
{
    *got = 0;
    gen *g = genset_current(w->gs);
    size_t n;
    char **names = pattern_names(gen_runtime(g)->reg, &n);
    genset_release(w->gs, g);
    if (!n) {
        names_free(names, n);
        return NDF_OK;
    }
    queue_item *items;
    size_t ni;
    /* the leases run from the server's moment of the claim, after this */
    double t0 = now_mono();
    int rc = queue_claim(w->st, w->name, (const char *const *)names, n, want, w->o.lease, &items,
                         &ni);
    names_free(names, n);
    if (rc)
        return rc;
    *got = ni;
    int dbfail = NDF_OK;
    for (size_t i = 0; i < ni; i++) {
        const queue_item *q = &items[i];
        record *r = NULL;
        int st = dbfail ? dbfail : start_item(w, q, &r);
        if (st) {
            if (st == NDF_ERR_IO)
                dbfail = st; /* the rest wait for their leases to expire */
            else
                not_started(w, q, st);
            continue;
        }
        held *h = xcalloc(1, sizeof *h);
        h->qid = xstrdup(q->id);
        h->generation = q->generation;
        h->r = r;
        h->renewed = t0;
        pthread_mutex_lock(&w->lock);
        h->next = w->held;
        w->held = h;
        w->nheld++;
        w->claimed++;
        pthread_mutex_unlock(&w->lock);
    }
    queue_items_free(items, ni);
    return dbfail;
}

/* Sleeps up to `s` seconds or until stopped; returns 1 when stopped. */
static int nap(worker *w, double s)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double t = (double)ts.tv_sec + ts.tv_nsec / 1e9 + s;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    pthread_mutex_lock(&w->lock);
    while (!w->stop && pthread_cond_timedwait(&w->cond, &w->lock, &ts) != ETIMEDOUT)
        ;
    int stop = w->stop;
    pthread_mutex_unlock(&w->lock);
    return stop;
}

static void set_offline(worker *w, int offline, int rc)
{
    pthread_mutex_lock(&w->lock);
    int was = w->offline;
    w->offline = offline;
    pthread_mutex_unlock(&w->lock);
    if (offline && !was)
        log_msg(NDF_LOG_WARN, "worker %s: %s (%s): not claiming until it answers again", w->name,
                err_msg(), ndf_status_name(rc));
    else if (!offline && was)
        log_msg(NDF_LOG_INFO, "worker %s: the database answers again: claiming", w->name);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    double next_beat = 0, next_claim = 0, backoff = BACKOFF_MIN;
    while (!nap(w, WORKER_TICK)) {
        size_t nheld = reap(w);
        expire_local(w);
        double now = now_mono();
        int rc = NDF_OK;
        if (now >= next_beat) {
            rc = beat(w, nheld);
            if (rc == NDF_OK)
                rc = renew_all(w);
            else
                renew_all(w); /* still cancels what may have expired */
            next_beat = now + (rc ? backoff : w->o.heartbeat);
            if (rc) {
                set_offline(w, 1, rc);
                next_claim = now + backoff;
                backoff = fmin(backoff * 2, BACKOFF_MAX);
                continue;
            }
            if (w->offline) {
                set_offline(w, 0, NDF_OK);
                backoff = BACKOFF_MIN;
            }
        }
        if (w->offline || atomic_load(&w->draining) || now < next_claim ||
            nheld >= (size_t)w->o.capacity)
            continue;
        size_t got = 0;
        pthread_mutex_lock(&w->claim_lock);
        /* a drain that came meanwhile has the last word */
        rc = atomic_load(&w->draining) ? NDF_OK
                                       : claim(w, (size_t)w->o.capacity - nheld, &got);
        pthread_mutex_unlock(&w->claim_lock);
        if (rc) {
            set_offline(w, 1, rc);
            next_beat = next_claim = now + backoff;
            backoff = fmin(backoff * 2, BACKOFF_MAX);
            continue;
        }
        /* an empty queue is asked again after the poll interval; a queue
         * that gave work, as soon as there is room */
        next_claim = got ? now : now + w->o.poll;
    }
    return NULL;
}

worker *worker_start(genset *gs, store *st, const worker_opts *o)
{
    if (!st)
        return err_set(NDF_ERR_INVALID, "a worker needs a store"), NULL;
    if (store_get_backend(st) != STORE_BACKEND_POSTGRESQL) {
        err_set(NDF_ERR_INVALID,
                "a worker claims from the work queue of a shared store: set storage.backend = "
                "\"postgresql\" (this store is %s)",
                store_backend_name(store_get_backend(st)));
        return NULL;
    }
    worker *w = xcalloc(1, sizeof *w);
    w->gs = gs;
    w->st = st;
    w->o = *o;
    if (w->o.capacity < 1)
        w->o.capacity = 1;
    if (!(w->o.lease > 0))
        w->o.lease = 30;
    if (!(w->o.heartbeat > 0) || w->o.heartbeat > w->o.lease / 2)
        w->o.heartbeat = w->o.lease / 3;
    if (!(w->o.poll > 0))
        w->o.poll = 0.5;
    if (gethostname(w->host, sizeof w->host) != 0)
        snprintf(w->host, sizeof w->host, "localhost");
    w->host[sizeof w->host - 1] = 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(w->name, sizeof w->name, "%s:%ld:%lld", w->host, (long)getpid(),
             (long long)ts.tv_sec);
    int rc = beat(w, 0);
    if (rc) {
        free(w);
        return NULL;
    }
    pthread_mutex_init(&w->lock, NULL);
    pthread_mutex_init(&w->claim_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    int e = pthread_create(&w->thread, NULL, worker_main, w);
    if (e) {
        err_set(NDF_ERR_RESOURCE, "cannot start the queue worker: %s", strerror(e));
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        pthread_mutex_destroy(&w->claim_lock);
        queue_worker_remove(st, w->name);
        free(w);
        return NULL;
    }
    log_msg(NDF_LOG_INFO, "worker %s: claiming from %s (capacity %d, lease %gs)", w->name,
            store_path(st), w->o.capacity, w->o.lease);
    return w;
}

void worker_drain(worker *w)
{
    if (!w)
        return;
    if (!atomic_exchange(&w->draining, 1))
        log_msg(NDF_LOG_INFO, "worker %s: draining: claiming nothing more", w->name);
    /* a claim round in progress starts what it claimed before this returns */
    pthread_mutex_lock(&w->claim_lock);
    pthread_mutex_unlock(&w->claim_lock);
}

void worker_get_stats(worker *w, worker_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&w->lock);
    out->held = w->nheld;
    out->claimed = w->claimed;
    out->finished = w->finished;
    out->lost = w->lost;
    out->offline = w->offline;
    pthread_mutex_unlock(&w->lock);
    out->draining = atomic_load(&w->draining);
    snprintf(out->name, sizeof out->name, "%s", w->name);
}

void worker_stop(worker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    reap(w);
    for (held *h = w->held, *next; h; h = next) {
        next = h->next;
        /* still running (cancelled by the shutdown, or left behind): its
         * lease expires and another worker takes it over */
        queue_unbind(w->st, h->r->id);
        record_unref(h->r);
        free(h->qid);
        free(h);
    }
    if (queue_worker_remove(w->st, w->name) != NDF_OK)
        log_msg(NDF_LOG_WARN, "%s", err_msg());
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    pthread_mutex_destroy(&w->claim_lock);
    free(w);
}

/* The queue worker (worker.h): one thread that reaps what ended, beats,
 * renews and claims, never waiting on an execution.  The executions it
 * starts run on the serving generation's pool like a client's; what ties
 * one to its claim is the store's binding (queue_bind()), so the end is
 * recorded by the generation's on_complete as any other, and refused there
 * when the claim was taken over meanwhile.
 *
 * The thread sleeps on a pipe (a byte: an execution of its ended, or stop)
 * and, when it has room, on the store's LISTEN connection (a submission
 * was committed), so that neither an end nor a submission waits for a
 * poll interval; the items of a claim round start in parallel, so that
 * their RUNNING rows share the store's group commits. */
#include "build-config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
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
/* The least time between two heartbeats that only say a changed load. */
#define LOAD_EVERY 0.25
/* Threads that start the items of one claim round at once. */
#define STARTERS_MAX 16

/* A claim being run. */
typedef struct held {
    char *qid;
    long long generation;
    record *r;          /* a reference */
    double renewed;     /* now_mono() of the claim or the last renewal */
    int lost;           /* (w->lock) lease lost or given up: cancelled, its end is not the item's */
    int given_back;     /* (w->lock) given up by worker_give_back(): its item is
                         * released for another worker once its end is recorded */
    int ended;          /* (w->lock) its end is recorded (on_end): its room is free */
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
    pthread_mutex_t lock; /* guards the fields below */
    int wake[2];          /* a byte in it wakes the thread (nonblocking) */
    _Atomic int stop;
    _Atomic int draining;
    held *held;
    size_t nheld, claimed, finished, lost, given_back;
    int offline;
    /* the thread's own */
    int load_said;      /* the load the workers table has, -1: unknown */
    double load_at;     /* now_mono() of that heartbeat */
    double listen_next; /* now_mono() before which queue_wait() is not tried */
    double listen_backoff;
};

static void wake(worker *w)
{
    char c = 0;
    /* full: a wakeup is pending anyway */
    ssize_t k = write(w->wake[1], &c, 1);
    (void)k;
}

static void drain_wake(worker *w)
{
    char buf[64];
    while (read(w->wake[0], buf, sizeof buf) > 0)
        ;
}

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

/* One heartbeat: the worker's row; `full`: with what it can run, else
 * the row keeps that and only says the load. */
static int beat(worker *w, size_t load, int full)
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
    if (full)
        describe(w, &q);
    int rc = queue_worker_beat(w->st, &q);
    free(q.patterns);
    free(q.plugins);
    if (rc == NDF_OK) {
        w->load_said = (int)load;
        w->load_at = now_mono();
    }
    return rc;
}

/* The executions held, in the workers table soon after they change (a
 * heartbeat is a third of a lease apart): at most one write per
 * LOAD_EVERY.  A failure is left to the next full heartbeat. */
static void say_load(worker *w, size_t load, double now)
{
    if ((int)load == w->load_said || now - w->load_at < LOAD_EVERY)
        return;
    if (beat(w, load, 0) != NDF_OK) {
        log_msg(NDF_LOG_DEBUG, "worker %s: %s", w->name, err_msg());
        w->load_at = now; /* tried again after LOAD_EVERY, not at once */
    }
}

/* The generation's end hook (genset_on_end): an execution of ours whose
 * end is recorded frees its room at once, not at the next tick. */
static void on_end(void *arg, const record *r)
{
    worker *w = arg;
    int ours = 0;
    pthread_mutex_lock(&w->lock);
    for (held *h = w->held; h && !ours; h = h->next)
        if (h->r == r)
            ours = h->ended = 1;
    pthread_mutex_unlock(&w->lock);
    if (ours)
        wake(w);
}

/* The claim hook of a queued execution (executor_claim_fn), before any of
 * its work is queued: binds its end to the claim, notes on the item which
 * execution runs it, and records it as RUNNING. */
typedef struct claim_ctx {
    store *st;
    const queue_item *q;
    double lease_end; /* now_mono() past which the claim may be lost */
} claim_ctx;

static int claim_start(void *arg, const record *r)
{
    claim_ctx *cc = arg;
    /* before any of its work is queued: no step starts past the lease
     * unless a renewal moved it (the record is not shared yet) */
    atomic_store(&((record *)(uintptr_t)r)->lease_end, cc->lease_end);
    /* bound, its RUNNING row notes it on the item in the same commit, and
     * is refused when the claim was lost meanwhile */
    int rc = queue_bind(cc->st, r->id, cc->q->id, cc->q->generation);
    if (rc == NDF_OK)
        rc = history_begin(cc->st, r, STORE_ORIGIN_QUEUE);
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
static int start_item(worker *w, const queue_item *q, double lease_end, record **out)
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
    flags |= EXEC_ORIGIN(STORE_ORIGIN_QUEUE);
    gen *g = genset_current(w->gs);
    claim_ctx cc = {w->st, q, lease_end};
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

/* Drops what ended from the held list; returns how many are held.  An
 * item given back (worker_give_back()) whose execution has ended is
 * released for any worker at once, rather than when its lease expires
 * (the release is fenced by the generation: nothing when another worker
 * holds it already). */
static size_t reap(worker *w)
{
    held *back = NULL;
    pthread_mutex_lock(&w->lock);
    for (held **pp = &w->held; *pp;) {
        held *h = *pp;
        if (h->ended || atomic_load(&h->r->done)) {
            *pp = h->next;
            w->nheld--;
            w->finished++;
            if (h->lost || atomic_load(&h->r->unrecorded))
                queue_unbind(w->st, h->r->id);
            record_unref(h->r);
            h->r = NULL;
            if (h->given_back) {
                h->next = back; /* released below, unlocked: a round trip */
                back = h;
            } else {
                free(h->qid);
                free(h);
            }
        } else {
            pp = &h->next;
        }
    }
    size_t n = w->nheld;
    pthread_mutex_unlock(&w->lock);
    for (held *h = back, *next; h; h = next) {
        next = h->next;
        if (queue_release(w->st, h->qid, h->generation) != NDF_OK)
            log_msg(NDF_LOG_DEBUG, "worker %s: %s (its lease expires instead)", w->name, err_msg());
        free(h->qid);
        free(h);
    }
    return n;
}

/* Cancels `h`'s execution, its lease lost or maybe lost: without rollback
 * (the worker that takes the item over reuses the steps that completed
 * here, so none is undone on this host) and with its processes killed at
 * once. */
static void cancel_lost(worker *w, held *h)
{
    /* whatever it reaches now is no outcome of its item (finish() says
     * LEASE_LOST_MSG), and on_complete records it unbound */
    atomic_store(&h->r->lease_lapsed, 1);
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
        if (atomic_load(&h->r->lease_lapsed))
            continue; /* past its deadline already, or given up */
        /* the new lease runs from the server's moment of the update, which
         * is after this */
        double t0 = now_mono();
        int rc = failed ? failed : queue_renew(w->st, h->qid, h->generation, w->o.lease);
        if (rc == NDF_OK) {
            pthread_mutex_lock(&w->lock);
            h->renewed = t0;
            pthread_mutex_unlock(&w->lock);
            /* the renewal was of this claim's generation: its steps may
             * start until a lease less one heartbeat from before it */
            atomic_store(&h->r->lease_end, t0 + w->o.lease - w->o.heartbeat);
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
        pthread_mutex_lock(&w->lock);
        /* not when worker_give_back() took it meanwhile */
        if (!h->lost) {
            h->lost = 1;
            w->lost++;
            cancel_lost(w, h);
        }
        pthread_mutex_unlock(&w->lock);
    }
    free(v);
    return failed;
}

/* Cancels, without asking the database, every held execution whose lease
 * may have run out by this host's clock (no renewal for a lease less one
 * heartbeat): after a pause of the whole process (a stop signal, a stalled
 * VM) this is the first thing the worker does, a tick after it resumes,
 * rather than at its next heartbeat.  (In the moment before, no step of
 * it starts: each compares the record's lease_end, the same deadline,
 * with the clock, and one refused sets lease_lapsed.) */
static void expire_local(worker *w)
{
    double now = now_mono();
    pthread_mutex_lock(&w->lock);
    for (held *h = w->held; h; h = h->next) {
        if (h->lost)
            continue;
        if (!atomic_load(&h->r->lease_lapsed) &&
            (atomic_load(&h->r->claimed) || now - h->renewed < w->o.lease - w->o.heartbeat))
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

/* The items of one claim round, started by up to STARTERS_MAX threads at
 * once: each start waits for its RUNNING row's commit, and started
 * together they share the store's group commits. */
typedef struct claim_round {
    worker *w;
    const queue_item *items;
    size_t n;
    double lease_end;
    _Atomic size_t next;
    _Atomic int dbfail;
} claim_round;

static void start_one(claim_round *rd, const queue_item *q)
{
    worker *w = rd->w;
    record *r = NULL;
    int st = atomic_load(&rd->dbfail);
    if (!st)
        st = start_item(w, q, rd->lease_end, &r);
    if (st) {
        if (st == NDF_ERR_IO)
            atomic_store(&rd->dbfail, st); /* the rest wait for their leases to expire */
        else
            not_started(w, q, st);
        return;
    }
    held *h = xcalloc(1, sizeof *h);
    h->qid = xstrdup(q->id);
    h->generation = q->generation;
    h->r = r;
    /* as renewed at the claim: the deadline its steps were given */
    h->renewed = rd->lease_end - (w->o.lease - w->o.heartbeat);
    pthread_mutex_lock(&w->lock);
    h->next = w->held;
    w->held = h;
    w->nheld++;
    w->claimed++;
    pthread_mutex_unlock(&w->lock);
}

static void *starter_main(void *arg)
{
    claim_round *rd = arg;
    size_t i;
    while ((i = atomic_fetch_add(&rd->next, 1)) < rd->n)
        start_one(rd, &rd->items[i]);
    return NULL;
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
    claim_round rd = {.w = w, .items = items, .n = ni, .lease_end = t0 + w->o.lease - w->o.heartbeat};
    atomic_init(&rd.next, 0);
    atomic_init(&rd.dbfail, NDF_OK);
    pthread_t th[STARTERS_MAX];
    size_t nth = 0;
    while (ni > 1 && nth < ni - 1 && nth < STARTERS_MAX - 1 &&
           pthread_create(&th[nth], NULL, starter_main, &rd) == 0)
        nth++;
    starter_main(&rd); /* this thread starts its share too */
    for (size_t i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    queue_items_free(items, ni);
    return atomic_load(&rd.dbfail);
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

/* Waits up to `s` seconds for a wakeup (an end, stop), and, when
 * `listen`, for a submission: returns 1 when one was committed.  Without
 * `listen` (no room, draining) what the LISTEN connection received is
 * still read, so that a worker that claims nothing for long does not hold
 * the server's notification queue back. */
static int wait_for(worker *w, double s, int listen)
{
    double now = now_mono();
    if (now >= w->listen_next) {
        int rc = queue_wait(w->st, w->wake[0], listen ? s : 0);
        if (rc >= 0) {
            w->listen_backoff = 0;
            if (listen) {
                drain_wake(w);
                return rc;
            }
        } else {
            /* polled meanwhile, as without notifications; said once */
            log_msg(w->listen_backoff > 0 ? NDF_LOG_DEBUG : NDF_LOG_WARN,
                    "worker %s: %s: polling the queue every %gs meanwhile", w->name, err_msg(),
                    w->o.poll);
            w->listen_backoff = w->listen_backoff > 0 ? fmin(w->listen_backoff * 2, BACKOFF_MAX)
                                                      : BACKOFF_MIN;
            w->listen_next = now + w->listen_backoff;
            s -= now_mono() - now;
        }
    }
    if (s > 0) {
        struct pollfd pfd = {.fd = w->wake[0], .events = POLLIN};
        (void)poll(&pfd, 1, (int)ceil(s * 1000));
    }
    drain_wake(w);
    return 0;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    double next_beat = 0, next_claim = 0, backoff = BACKOFF_MIN;
    int notified = 0;
    while (!atomic_load(&w->stop)) {
        size_t nheld = reap(w);
        expire_local(w);
        double now = now_mono();
        int rc = NDF_OK;
        if (now >= next_beat) {
            rc = beat(w, nheld, 1);
            if (rc == NDF_OK)
                rc = renew_all(w);
            else
                renew_all(w); /* still cancels what may have expired */
            next_beat = now + (rc ? backoff : w->o.heartbeat);
            if (rc) {
                set_offline(w, 1, rc);
                next_claim = now + backoff;
                backoff = fmin(backoff * 2, BACKOFF_MAX);
            } else if (w->offline) {
                set_offline(w, 0, NDF_OK);
                backoff = BACKOFF_MIN;
            }
        }
        int room = !w->offline && !atomic_load(&w->draining) && nheld < (size_t)w->o.capacity;
        if (room && (now >= next_claim || notified)) {
            size_t want = (size_t)w->o.capacity - nheld, got = 0;
            notified = 0;
            pthread_mutex_lock(&w->claim_lock);
            /* a drain that came meanwhile has the last word */
            rc = atomic_load(&w->draining) ? NDF_OK : claim(w, want, &got);
            pthread_mutex_unlock(&w->claim_lock);
            if (rc) {
                set_offline(w, 1, rc);
                next_beat = next_claim = now + backoff;
                backoff = fmin(backoff * 2, BACKOFF_MAX);
            } else {
                /* a round that filled the room may have left more: ask
                 * again as soon as there is room; else after the poll
                 * interval, or at the next submission */
                next_claim = got == want ? now : now + w->o.poll;
                if (got) {
                    say_load(w, reap(w), now_mono());
                    continue;
                }
            }
        }
        now = now_mono();
        say_load(w, nheld, now);
        /* a tick while executions are held (expire_local()); else until
         * the next heartbeat, claim, or load to say */
        double until = fmin(next_beat, room ? next_claim : INFINITY);
        if (nheld)
            until = fmin(until, now + WORKER_TICK);
        if (w->load_said != (int)nheld)
            until = fmin(until, w->load_at + LOAD_EVERY);
        notified = wait_for(w, until - now, room) || notified;
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
    w->load_said = -1;
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
    if (pipe2(w->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        err_set(NDF_ERR_RESOURCE, "cannot start the queue worker: %s", strerror(errno));
        free(w);
        return NULL;
    }
    pthread_mutex_init(&w->lock, NULL);
    pthread_mutex_init(&w->claim_lock, NULL);
    int rc = beat(w, 0, 1);
    int e = rc ? 0 : pthread_create(&w->thread, NULL, worker_main, w);
    if (rc || e) {
        if (e) {
            err_set(NDF_ERR_RESOURCE, "cannot start the queue worker: %s", strerror(e));
            queue_worker_remove(st, w->name);
        }
        pthread_mutex_destroy(&w->lock);
        pthread_mutex_destroy(&w->claim_lock);
        close(w->wake[0]);
        close(w->wake[1]);
        free(w);
        return NULL;
    }
    genset_on_end(gs, on_end, w);
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

size_t worker_give_back(worker *w)
{
    if (!w)
        return 0;
    size_t n = 0;
    pthread_mutex_lock(&w->lock);
    for (held *h = w->held; h; h = h->next) {
        if (h->lost || h->ended || atomic_load(&h->r->done))
            continue;
        h->lost = h->given_back = 1;
        w->given_back++;
        n++;
        log_msg(NDF_LOG_WARN,
                "execution %s: queued item %s given back: cancelled without rollback, its "
                "lease no longer renewed",
                h->r->id, h->qid);
        /* its cancelled end is its own, not the item's: the worker that
         * claims the item next redrives it from what it recorded */
        queue_unbind(w->st, h->r->id);
        cancel_lost(w, h);
    }
    pthread_mutex_unlock(&w->lock);
    return n;
}

void worker_get_stats(worker *w, worker_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&w->lock);
    out->held = w->nheld;
    out->claimed = w->claimed;
    out->finished = w->finished;
    out->lost = w->lost;
    out->given_back = w->given_back;
    out->offline = w->offline;
    pthread_mutex_unlock(&w->lock);
    out->draining = atomic_load(&w->draining);
    snprintf(out->name, sizeof out->name, "%s", w->name);
}

void worker_stop(worker *w)
{
    if (!w)
        return;
    atomic_store(&w->stop, 1);
    wake(w);
    pthread_join(w->thread, NULL);
    genset_on_end(w->gs, NULL, NULL);
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
    pthread_mutex_destroy(&w->lock);
    pthread_mutex_destroy(&w->claim_lock);
    close(w->wake[0]);
    close(w->wake[1]);
    free(w);
}

/* The executor (seed PatternExecutor): runs patterns on the pool, each
 * execution in a live record with its deadline, behind the confidence gate,
 * feeding learning and on_complete when it ends; plus the seed's
 * execute_with_fallback and batch_execute, and lookup and cancellation of
 * running executions by id. */
#include "build-config.h"

#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/hashmap.h"
#include "model/delegate.h"
#include "model/context.h"
#include "exec/executor.h"
#include "exec/pool.h"
#include "base/learning.h"
#include "exec/services.h"
#include "base/util.h"

struct executor {
    executor_opts o;
    pool *pool;
    pthread_mutex_t lock;     /* guards the record lists and completion */
    pthread_cond_t done_cond; /* broadcast when an execution finishes */
    record **kept;            /* ring of the last o.keep started */
    size_t nkept, kept_next;
    /* Started and not finished (references; record->run_idx is the slot):
     * what executor_cancel_all reaches, however many a batch started. */
    record **running;
    size_t nrunning, caprunning;
    _Atomic int stopping; /* executor_cancel_all ran: nothing new starts */
};

/* Caller holds ex->lock. */
static void running_add(executor *ex, record *r)
{
    if (ex->nrunning == ex->caprunning) {
        ex->caprunning = ex->caprunning ? ex->caprunning * 2 : 16;
        ex->running = xrealloc(ex->running, ex->caprunning * sizeof *ex->running);
    }
    r->run_idx = ex->nrunning;
    ex->running[ex->nrunning++] = record_ref(r);
}

/* Caller holds ex->lock; returns the list's reference for the caller to
 * drop outside the lock. */
static record *running_remove(executor *ex, record *r)
{
    size_t i = r->run_idx;
    if (i >= ex->nrunning || ex->running[i] != r)
        return NULL;
    ex->running[i] = ex->running[--ex->nrunning];
    ex->running[i]->run_idx = i;
    return r;
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
    return ex;
}

unsigned executor_free(executor *ex)
{
    if (!ex)
        return 0;
    unsigned left = pool_free(ex->pool, ex->o.kill_grace * 2);
    for (size_t i = 0; i < ex->nkept; i++)
        record_unref(ex->kept[i]);
    free(ex->kept);
    for (size_t i = 0; i < ex->nrunning; i++)
        record_unref(ex->running[i]);
    free(ex->running);
    pthread_mutex_destroy(&ex->lock);
    pthread_cond_destroy(&ex->done_cond);
    free(ex);
    return left;
}

const char *fallback_cause_name(fallback_cause c)
{
    switch (c) {
    case FALLBACK_NONE: return "none";
    case FALLBACK_FAILURE: return "failure";
    case FALLBACK_NOT_FOUND: return "not found";
    case FALLBACK_CONFIDENCE: return "confidence gate";
    case FALLBACK_TIMEOUT: return "timeout";
    case FALLBACK_VALIDATION: return "validation";
    }
    return "unknown";
}

fallback_cause fallback_cause_of(int st)
{
    return st == NDF_ERR_NOT_FOUND    ? FALLBACK_NOT_FOUND
           : st == NDF_ERR_CONFIDENCE ? FALLBACK_CONFIDENCE
           : st == NDF_ERR_TIMEOUT    ? FALLBACK_TIMEOUT
           : st == NDF_ERR_VALIDATION ? FALLBACK_VALIDATION
                                      : FALLBACK_FAILURE;
}

/* The confidence gate of an explicit run: whether the pattern's trusted
 * confidence is below its threshold, and what its gate (its own, else
 * confidence.gate) does about it.  enforce: NDF_ERR_CONFIDENCE.  warn: NDF_OK
 * with the warning in `warn` (size > 0), for the caller to log into the
 * execution's record once it has one.  off, or not below: NDF_OK, `warn`
 * empty.  Refusing is opt-in because a refused pattern never runs, so it can
 * never earn its confidence back. */
static int gate_check(executor *ex, pattern *p, char *warn, size_t size)
{
    warn[0] = '\0';
    confidence_gate mode = pattern_gate(p, (confidence_gate)ex->o.confidence_gate);
    if (mode == GATE_OFF)
        return NDF_OK;
    const learning_params *lp = registry_learning(ex->o.reg);
    learning_state st;
    pattern_stats(p, &st);
    int trusted = learning_trusted(&st, lp);
    double score = st.score;
    learning_free(&st);
    double thr = pattern_threshold(p, ex->o.confidence_threshold);
    if (!trusted || score >= thr)
        return NDF_OK;
    if (mode == GATE_ENFORCE)
        return err_set(NDF_ERR_CONFIDENCE,
                       "pattern '%s': confidence %.3f is below its threshold %.3f "
                       "(confidence gate 'enforce'; use --force to run it anyway)",
                       p->name, score, thr);
    snprintf(warn, size,
             "confidence %.3f is below its threshold %.3f; running it anyway (confidence "
             "gate 'warn')",
             score, thr);
    return NDF_OK;
}

/* The reference's matches() decides selection only; what a type says it
 * cannot serve at all (below meta's complexity_threshold, whose docs call it
 * the "minimum complexity for activation") is refused on an explicit run
 * too, unless forced.  The host's domain and agent-type globs are not a gate:
 * naming a pattern is the caller's choice. */
static int type_gate(pattern *p, const ndf_context *ctx)
{
    if (pattern_type_accepts(p, ctx))
        return NDF_OK;
    return err_set(NDF_ERR_VALIDATION, "pattern '%s': not started: %s (use --force to run it anyway)",
                   p->name, err_msg());
}

double executor_timeout(const executor_opts *o, const pattern *p, double requested, int top,
                        timeout_source *src, int *capped)
{
    timeout_source s = TIMEOUT_NONE;
    double t = INFINITY;
    double dflt = top ? o->default_timeout : o->pattern_timeout;
    if (top && requested > 0)
        t = requested, s = TIMEOUT_REQUESTED;
    else if (p && p->timeout > 0)
        t = p->timeout, s = TIMEOUT_PATTERN;
    else if (dflt > 0)
        t = dflt, s = top ? TIMEOUT_DEFAULT : TIMEOUT_PATTERN_DEFAULT;
    /* A plugin's run_pattern timeout is what is left of its own budget: a
     * bound on the sub-pattern, not a replacement of what it asks for. */
    if (!top && requested > 0 && requested < t)
        t = requested, s = TIMEOUT_REQUESTED;
    int cap = o->max_timeout > 0 && t > o->max_timeout;
    if (cap)
        t = o->max_timeout;
    if (src)
        *src = s;
    if (capped)
        *capped = cap;
    return t;
}

const char *timeout_source_name(timeout_source s, const pattern *p)
{
    switch (s) {
    case TIMEOUT_REQUESTED: return "requested";
    case TIMEOUT_PATTERN:
        return p && p->timeout_key && strcmp(p->timeout_key, "timeout")
                   ? "the pattern's params.timeout_seconds"
                   : "the pattern's timeout";
    case TIMEOUT_DEFAULT: return "executor.default_timeout";
    case TIMEOUT_PATTERN_DEFAULT: return "executor.pattern_timeout";
    default: return "none";
    }
}

static double pattern_deadline(executor *ex, pattern *p, double timeout_s, double now)
{
    return now + executor_timeout(&ex->o, p, timeout_s, 0, NULL, NULL);
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
    int st = node_stop_status(n);
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
    /* a queued execution whose lease was lost: its work is the item's next
     * holder's, so whatever it reached here is no outcome of the item */
    if (atomic_load(&r->lease_lapsed)) {
        status = NDF_ERR_CANCELLED;
        msg = LEASE_LOST_MSG;
    }
    pthread_mutex_lock(&r->lock);
    /* a storage error the writer reported while it ran (its RUNNING row
     * was refused) is its outcome */
    if (atomic_load(&r->unrecorded) && r->unrecorded_why) {
        status = NDF_ERR_IO;
        msg = r->unrecorded_why;
    }
    r->status = status;
    r->error = status && msg && *msg ? xstrdup(msg)
               : status              ? xstrdup(ndf_status_name(status))
                                     : NULL;
    r->end = end;
    pthread_mutex_unlock(&r->lock);
    double start = atomic_load_explicit(&r->root->start, memory_order_relaxed);
    double dur = start > 0 ? end - start : 0;
    /* the end of every execution, for a service's log (ndf serve logs at
     * info; ndf run -v): said after on_complete, which may learn that the
     * lease of its queued item was lost (the store refused its end) */
    int lvl = !ex->o.fail_logged          ? NDF_LOG_INFO
              : status == NDF_ERR_CANCELLED ? NDF_LOG_WARN
                                            : NDF_LOG_ERROR;
    pthread_mutex_lock(&r->lock);
    char *said = status ? xasprintf("%s in %.3fs: %s", ndf_status_name(status), dur,
                                    r->error ? r->error : "")
                        : xasprintf("succeeded in %.3fs", dur);
    pthread_mutex_unlock(&r->lock);
    /* as the store counts it (history_from_record): the outcome table */
    /* a replay re-enacts an outcome already counted and stored */
    int replay = atomic_load(&r->replay) != 0;
    if (!replay && ex->o.reg && p && delegate_outcome_counts(delegate_outcome_of(status)))
        registry_record(ex->o.reg, p, status == NDF_OK, r->ctx->domain, dur);
    if (!replay && ex->o.on_complete && p)
        ex->o.on_complete(ex->o.opaque, p, r);
    if (atomic_load(&r->lease_lapsed))
        log_msg(NDF_LOG_WARN, "execution %s: pattern %s: " LEASE_LOST_MSG " (after %.3fs)", r->id,
                r->root->name, dur);
    else
        log_msg(status ? lvl : NDF_LOG_INFO, "execution %s: pattern %s: %s", r->id, r->root->name,
                said);
    free(said);
    pthread_mutex_lock(&ex->lock);
    atomic_store(&r->done, 1);
    record *listed = running_remove(ex, r);
    pthread_cond_broadcast(&ex->done_cond);
    pthread_mutex_unlock(&ex->lock);
    record_unref(listed);
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
    /* the deadline was set when it was started (executor_start) */
    timeout_source src;
    double t = executor_timeout(&ex->o, j->p, j->timeout, 1, &src, NULL);
    log_msg(NDF_LOG_INFO, "execution %s: pattern %s: started (deadline %gs, %s)", r->id,
            j->p->name, t, timeout_source_name(src, j->p));
    atomic_store(&r->started, 1);
    int rc;
    if (!atomic_load(&r->replay) && ex->o.on_start &&
        (rc = ex->o.on_start(ex->o.start_arg, r)) != NDF_OK) {
        /* nothing of it ran: the root says so, and why */
        if (!*err_msg())
            err_set(rc, "pattern '%s' not started", j->p->name);
        node_set_state(r->root, NDF_STATE_FAILED, err_msg());
    } else {
        rc = run_in_node(j->p, r->root);
    }
    finish(ex, r, j->p, rc, err_msg());
    pattern_unref(j->p);
    record_unref(r);
    free(j);
    return rc;
}

int executor_start(executor *ex, const char *name, const ndf_context *ctx, double timeout,
                   unsigned flags, record **out)
{
    return executor_start_redrive(ex, name, ctx, timeout, flags, NULL, NULL, NULL, NULL, out);
}

static int start(executor *ex, const char *name, const ndf_context *ctx, double timeout,
                 unsigned flags, const char *from, hashmap *reuse, executor_claim_fn claim,
                 void *claim_arg, const char *fb_from, const char *fb_cause, record **out);

int executor_start_redrive(executor *ex, const char *name, const ndf_context *ctx, double timeout,
                           unsigned flags, const char *from, hashmap *reuse,
                           executor_claim_fn claim, void *claim_arg, record **out)
{
    return start(ex, name, ctx, timeout, flags, from, reuse, claim, claim_arg, NULL, NULL, out);
}

int executor_start_fallback(executor *ex, const char *name, const ndf_context *ctx,
                            double timeout, unsigned flags, const char *fb_from,
                            const char *fb_cause, record **out)
{
    return start(ex, name, ctx, timeout, flags, NULL, NULL, NULL, NULL, fb_from, fb_cause, out);
}

static int start(executor *ex, const char *name, const ndf_context *ctx, double timeout,
                 unsigned flags, const char *from, hashmap *reuse, executor_claim_fn claim,
                 void *claim_arg, const char *fb_from, const char *fb_cause, record **out)
{
    *out = NULL;
    if (!name || !*name) {
        hashmap_free(reuse, free);
        return err_set(NDF_ERR_INVALID, "no pattern name given");
    }
    if (ctx && context_validate(ctx)) {
        hashmap_free(reuse, free);
        return NDF_ERR_INVALID;
    }
    pattern *p;
    if (!ex->o.reg || registry_get(ex->o.reg, name, &p) != NDF_OK) {
        hashmap_free(reuse, free);
        return err_set(NDF_ERR_NOT_FOUND, "no pattern named '%s'", name);
    }
    int rc;
    char warn[256] = "";
    if (flags & EXEC_REPLAY)
        flags |= EXEC_FORCE;
    if (!(flags & EXEC_FORCE) &&
        ((rc = gate_check(ex, p, warn, sizeof warn)) || (rc = type_gate(p, ctx)))) {
        pattern_unref(p);
        hashmap_free(reuse, free);
        return rc;
    }
    if (atomic_load(&ex->stopping)) {
        pattern_unref(p);
        return err_set(NDF_ERR_CANCELLED, "pattern '%s': not started: ndf is stopping", name);
    }
    pool_stats ps;
    pool_health(ex->pool, &ps);
    if (ps.active == 0) {
        pattern_unref(p);
        return err_set(NDF_ERR_RESOURCE,
                       "pattern '%s': not started: no worker thread can take it (all %u are "
                       "stuck in steps that overran their deadlines and could not be "
                       "replaced); restart ndf",
                       name, ps.threads);
    }
    record *r = record_new(name, ctx, INFINITY);
    r->redrive_of = from ? xstrdup(from) : NULL;
    /* before it is submitted: the stored row is written when it ends */
    r->fallback_from = fb_from ? xstrdup(fb_from) : NULL;
    r->fallback_cause = fb_from && fb_cause ? xstrdup(fb_cause) : NULL;
    r->reuse = reuse;
    r->ex = ex;
    r->pool = ex->pool;
    r->kill_grace = ex->o.kill_grace;
    r->on_spawn = ex->o.on_spawn;
    r->spawn_arg = ex->o.spawn_arg;
    r->force = (flags & EXEC_FORCE) != 0;
    r->origin = (int)((flags >> 8) & 0xffu) - 1;
    r->root->pat = pattern_ref(p);
    if ((flags & EXEC_REPLAY) && from) {
        /* its undo actions see the id the work ran under (${execution_id}) */
        snprintf(r->id, sizeof r->id, "%s", from);
        atomic_store(&r->replay, RECORD_REPLAY_RUN);
    }
    if (claim && (rc = claim(claim_arg, r)) != NDF_OK) {
        char *why = xstrdup(err_msg());
        record_unref(r); /* frees `reuse` with it */
        pattern_unref(p);
        err_set(rc, "%s", why);
        free(why);
        return rc;
    }
    if (warn[0])
        svc_node_log(r->root, NDF_LOG_WARN, "%s", warn);

    pthread_mutex_lock(&ex->lock);
    record *old = NULL;
    if (ex->nkept == ex->o.keep) {
        old = ex->kept[ex->kept_next];
    } else {
        ex->nkept++;
    }
    ex->kept[ex->kept_next] = record_ref(r);
    ex->kept_next = (ex->kept_next + 1) % ex->o.keep;
    running_add(ex, r);
    int stopping = atomic_load(&ex->stopping);
    if (stopping) /* cancel_all ran since the check above */
        record_cancel(r, stopping > 1);
    pthread_mutex_unlock(&ex->lock);
    record_unref(old);

    /* The deadline runs from now, queued or not: an execution waiting for a
     * free worker times out like one that runs too long.  Which timeout
     * applies is executor_timeout's precedence: default_timeout is only a
     * default, never a cap on a pattern that says how long it needs. */
    r->root->deadline = now_mono() + executor_timeout(&ex->o, p, timeout, 1, NULL, NULL);
    exec_job *j = xmalloc(sizeof *j);
    j->ex = ex;
    j->rec = record_ref(r);
    j->p = p; /* the registry_get reference */
    j->timeout = timeout;
    pool_submit_tagged(ex->pool, r->ctx->priority, root_job, j, r);
    *out = r;
    return NDF_OK;
}

/* Marks the nodes below `n` still RUNNING as `st`, "abandoned":
 * the record is settled without them (what they do later is not waited
 * for). */
static void abandon_nodes(ndf_exec *n, ndf_state st)
{
    size_t count;
    ndf_exec *const *kids = node_kids(n, &count);
    for (size_t i = 0; i < count; i++) {
        ndf_state cur = atomic_load(&kids[i]->state);
        if (cur == NDF_STATE_RUNNING)
            node_set_state(kids[i], st, "abandoned: still running when the execution was given up on");
        abandon_nodes(kids[i], st);
    }
}

/* Gives up on an execution whose work is past its deadline (or its
 * cancellation, `cancelled`) and the grace periods: the record says so, the
 * caller gets NDF_ERR_TIMEOUT (NDF_ERR_CANCELLED), and the work goes on
 * alone (it holds its own references); the pool replaces the workers it
 * holds (pool_abandon). */
static void give_up(executor *ex, record *r, double base, int cancelled)
{
    double over = now_mono() - base;
    char msg[128];
    if (cancelled)
        snprintf(msg, sizeof msg, "did not stop %.1fs after it was cancelled", over);
    else
        snprintf(msg, sizeof msg, "overran its deadline by %.1fs", over);
    if (atomic_load(&r->claimed))
        return;
    if (!atomic_load(&r->started))
        snprintf(msg, sizeof msg, "%s while queued (no worker was free)",
                 cancelled ? "cancelled" : "deadline passed");
    abandon_nodes(r->root, cancelled ? NDF_STATE_CANCELLED : NDF_STATE_TIMED_OUT);
    node_set_state(r->root, cancelled ? NDF_STATE_CANCELLED : NDF_STATE_TIMED_OUT, msg);
    log_msg(0, "execution %s: pattern '%s' %s; not waiting for it", r->id, r->root->name, msg);
    finish(ex, r, r->root->pat, cancelled ? NDF_ERR_CANCELLED : NDF_ERR_TIMEOUT, msg);
    /* The workers still inside it are lost to everyone else: replace
     * them. */
    pool_abandon(ex->pool, r);
}

int executor_wait(executor *ex, record *r, double wait_s)
{
    double until = wait_s >= 0 ? now_mono() + wait_s : INFINITY;
    pthread_mutex_lock(&ex->lock);
    while (!atomic_load(&r->done)) {
        double now = now_mono();
        double bound = INFINITY, base = INFINITY;
        if (isfinite(r->root->deadline))
            base = r->root->deadline;
        /* A cancelled execution gets the same grace as one past its
         * deadline, counted from the cancellation. */
        double cancel_at = atomic_load(&r->cancel_at);
        int cancelled = atomic_load(&r->cancel) != 0 && cancel_at > 0 && cancel_at < base;
        if (cancelled)
            base = cancel_at;
        if (isfinite(base))
            bound = base + r->kill_grace * 2.5 + 1.0; /* after the groups' (pool.c) */
        if (now >= bound) {
            pthread_mutex_unlock(&ex->lock);
            give_up(ex, r, base, cancelled);
            pthread_mutex_lock(&ex->lock);
            continue;
        }
        if (now >= until)
            break;
        /* Re-check at least every second: `started` and the deadline are
         * set by the worker without signalling. */
        struct timespec ts = record_timespec(fmin(fmin(until, bound), now + 1.0));
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
    out->cause = fallback_cause_of(rc);
    log_msg(2, "pattern '%s': %s; falling back to '%s' (%s)", primary, out->primary_error, fallback,
            fallback_cause_name(out->cause));
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

size_t executor_batch(executor *ex, const batch_item *items, size_t n, int parallel, unsigned flags,
                      batch_result *out)
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
                out[i].error =
                    xstrdup(out[i].rec->error ? out[i].rec->error : ndf_status_name(out[i].status));
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            out[i].status = executor_execute(ex, items[i].pattern, items[i].ctx, items[i].timeout,
                                             flags, &out[i].rec);
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

size_t executor_running(executor *ex, record ***out)
{
    pthread_mutex_lock(&ex->lock);
    record **v = xmalloc((ex->nkept ? ex->nkept : 1) * sizeof *v);
    size_t n = 0;
    for (size_t i = 0; i < ex->nkept; i++)
        if (atomic_load(&ex->kept[i]->started) && !atomic_load(&ex->kept[i]->done))
            v[n++] = record_ref(ex->kept[i]);
    pthread_mutex_unlock(&ex->lock);
    *out = v;
    return n;
}

int executor_cancel(executor *ex, const char *id)
{
    return executor_cancel_hard(ex, id, 0);
}

int executor_cancel_hard(executor *ex, const char *id, int hard)
{
    record *r = executor_find(ex, id);
    if (!r)
        return err_set(NDF_ERR_NOT_FOUND, "no execution with id '%s'", id ? id : "");
    record_cancel(r, hard);
    pthread_mutex_lock(&ex->lock);
    pthread_cond_broadcast(&ex->done_cond);
    pthread_mutex_unlock(&ex->lock);
    record_unref(r);
    return NDF_OK;
}

size_t executor_cancel_all(executor *ex, int hard)
{
    pthread_mutex_lock(&ex->lock);
    int want = hard ? 2 : 1;
    if (atomic_load(&ex->stopping) < want)
        atomic_store(&ex->stopping, want);
    size_t n = ex->nrunning;
    for (size_t i = 0; i < n; i++)
        record_cancel(ex->running[i], hard);
    pthread_cond_broadcast(&ex->done_cond);
    pthread_mutex_unlock(&ex->lock);
    return n;
}

/* Sub-patterns nested above `node` (the root pattern counts). */
static int pattern_depth(const ndf_exec *node)
{
    int d = 0;
    for (; node; node = node->parent)
        if (node->kind == NDF_NODE_PATTERN)
            d++;
    return d;
}

int executor_run_pattern(executor *ex, ndf_exec *node, const char *name, double timeout_s)
{
    if (!node || !name)
        return err_set(NDF_ERR_INVALID, "run_pattern: no node or no pattern name");
    /* The load-time cycle check cannot see names that come from a context
     * or a plugin's own logic; this bound turns unbounded recursion into an
     * error instead of a crash. */
    if (pattern_depth(node) >= EXECUTOR_MAX_NESTING)
        return err_set(NDF_ERR_VALIDATION,
                       "run_pattern '%s': sub-patterns nested %d deep (the limit; does a "
                       "pattern run itself?)",
                       name, EXECUTOR_MAX_NESTING);
    pattern *p;
    if (!ex || !ex->o.reg || registry_get(ex->o.reg, name, &p) != NDF_OK)
        return err_set(NDF_ERR_NOT_FOUND, "no pattern named '%s'", name);
    int rc;
    ndf_exec *c = node_new(node, NDF_NODE_PATTERN, name);
    c->pat = p; /* the record keeps the pattern (and its steps) alive */
    /* a redrive takes the outcome it had in the execution it redrives:
     * neither run nor counted again */
    if (node->rec->reuse && record_reuse_node(c))
        return NDF_OK;
    char warn[256];
    if (!node->rec->force && ((rc = gate_check(ex, p, warn, sizeof warn)) ||
                              (rc = type_gate(p, node->rec->ctx)))) {
        node_set_state(c, NDF_STATE_SKIPPED, err_msg());
        return rc;
    }
    if (warn[0])
        svc_node_log(c, NDF_LOG_WARN, "%s", warn);
    node_limit_deadline(c, pattern_deadline(ex, p, timeout_s, now_mono()));
    rc = run_in_node(p, c);
    double start, end;
    node_times(c, &start, &end);
    double dur = start > 0 ? (end > 0 ? end : now_mono()) - start : 0;
    if (ex->o.reg && !atomic_load(&node->rec->replay)) {
        char msg[sizeof "" + 2048];
        snprintf(msg, sizeof msg, "%s", err_msg()); /* registry code may touch it */
        registry_record(ex->o.reg, p, rc == NDF_OK, node->rec->ctx->domain, dur);
        if (rc)
            err_set(rc, "%s", msg);
    }
    return rc;
}

int executor_rollback(record *r, const char *level, const char *target)
{
    pattern *p = r->root->pat;
    const ndf_pattern_type_def *d = p && p->type ? p->type->def.ptype : NULL;
    if (!(d && d->size >= offsetof(ndf_pattern_type_def, rollback) + sizeof d->rollback &&
          d->rollback))
        return err_set(NDF_ERR_INVALID, "pattern type '%s' of '%s' has no rollback",
                       p && p->type ? p->type->name : "?", r->root->name);
    if (atomic_load(&r->replay))
        atomic_store(&r->replay, RECORD_REPLAY_UNDO);
    /* the workers its undo actions run in are recorded again: the rows of
     * its run went with its end */
    atomic_fetch_add(&r->rollbacks, 1);
    err_clear();
    int rc = d->rollback(&host_services, r->root, p->instance, level ? level : "pattern", target);
    if (rc > 0 || rc < NDF_STATUS_MIN)
        rc = NDF_ERR_EXECUTION;
    if (rc && !*err_msg())
        err_set(rc, "rollback of '%s' %s", r->root->name, ndf_status_name(rc));
    return rc;
}

void executor_health(executor *ex, pool_stats *out)
{
    pool_health(ex->pool, out);
}

/* The execution half of the services table: record nodes, running steps
 * and sub-patterns with their deadlines, task groups, cancellation, sleep,
 * resources, processes and templating.  Thin adapters over record.c,
 * executor.c, pool.c, process.c and monitor.c, plus the step-running
 * policy.  Everything is reached from the node a plugin hands in (node->rec
 * holds the executor and pool that run it): no global lookup. */
#include "build-config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/context.h"
#include "exec/crash.h"
#include "exec/executor.h"
#include "exec/isolate.h"
#include "exec/pool.h"
#include "exec/monitor.h"
#include "exec/record.h"
#include "exec/services.h"
#include "exec/process.h"
#include "base/util.h"

/* Each svc_X below is the host's ndf_host.X: its contract is the one
 * sdk/ndf/host.h documents for plugins; comments here say only what the
 * host adds (its policies and why). */

/* Definitions older than the running host are read only up to their size. */
#define DEF_HAS(def, member)                                                                       \
    ((def)->size >= offsetof(__typeof__(*(def)), member) + sizeof((def)->member))

/* The executor running `node`: NULL for a record made outside one (tests
 * that drive a pattern type by hand), which then cannot run sub-patterns. */
static executor *exec_of(const ndf_exec *node)
{
    return node ? node->rec->ex : NULL;
}

const ndf_context *svc_exec_context(const ndf_exec *node)
{
    return node ? node->rec->ctx : NULL;
}

ndf_exec *svc_node_new(ndf_exec *parent, ndf_node_kind kind, const char *name)
{
    if (!parent || kind < NDF_NODE_PATTERN || kind > NDF_NODE_STEP)
        return NULL;
    return node_new(parent, kind, name ? name : "");
}

void svc_node_set_state(ndf_exec *node, ndf_state state, const char *fmt, ...)
{
    if (!node || (unsigned)state > NDF_STATE_DEGRADED)
        return;
    char msg[1024];
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    node_set_state(node, state, fmt ? msg : NULL);
}

ndf_state svc_node_state(const ndf_exec *node)
{
    return node ? (ndf_state)atomic_load(&node->state) : NDF_STATE_PENDING;
}

const char *svc_node_name(const ndf_exec *node)
{
    return node ? node->name : "";
}

/* The name of the pattern `node` runs in. */
static const char *pattern_of(const ndf_exec *node)
{
    for (const ndf_exec *n = node; n; n = n->parent)
        if (n->kind == NDF_NODE_PATTERN)
            return n->name;
    return "?";
}

void svc_node_log(ndf_exec *node, int level, const char *fmt, ...)
{
    char msg[2048];
    if (!fmt)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = strlen(msg);
    if (node) {
        /* once the lease of its queued item is lost, what it says (a
         * rollback refused, a failure of the cancel) is no outcome: the
         * item's next holder runs it; the record keeps the line */
        if (atomic_load(&node->rec->lease_lapsed) && level < NDF_LOG_DEBUG)
            level = NDF_LOG_DEBUG;
        /* nor is what a rollback's replay says while its pattern runs
         * again: its failures are the stored ones, made on purpose, and
         * an undo its type asks for then is deferred, not failed (the
         * rollback that follows runs it) */
        if (atomic_load(&node->rec->replay) == RECORD_REPLAY_RUN && level < NDF_LOG_DEBUG)
            level = NDF_LOG_DEBUG;
        /* a log line of its own: it says which execution and pattern,
         * and the node when it is not the pattern itself */
        if (node->kind == NDF_NODE_PATTERN)
            log_msg(level, "execution %s: pattern %s: %s", node->rec->id, node->name, msg);
        else
            log_msg(level, "execution %s: pattern %s: %s: %s", node->rec->id, pattern_of(node),
                    node->name, msg);
        msg[len++] = '\n';
        node_append(node, REC_LOG, msg, len, 0);
    } else {
        log_msg(level, "%s", msg);
    }
}

const char *svc_exec_id(const ndf_exec *node)
{
    return node ? node->rec->id : "";
}

int svc_exec_set_data(ndf_exec *node, void *data, void (*free_fn)(void *))
{
    if (!node)
        return err_set(NDF_ERR_INVALID, "exec_set_data: no node");
    if (node->data && node->data != data && node->data_free)
        node->data_free(node->data);
    node->data = data;
    node->data_free = free_fn;
    return NDF_OK;
}

void *svc_exec_data(const ndf_exec *node)
{
    return node ? node->data : NULL;
}

/* ---- running steps ---- */

/* A blocking step running on its own thread, so that its caller can stop
 * waiting when the step overruns.  Two references to the call: caller and
 * thread.  The record reference `rec` belongs to the caller while it waits
 * and passes to the thread only when the caller gives up (`abandoned`): a
 * thread that reported back in time must never hold the last reference,
 * or the record (and the plugins' data in it) would be freed on this
 * detached thread at an arbitrary later moment, possibly after the plugin
 * that owns that data was unloaded. */
typedef struct step_call {
    _Atomic int refs;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, rc;
    int abandoned; /* (lock) the caller stopped waiting */
    int undo;
    const ndf_step *step;
    ndf_exec *node;
    record *rec;
    char msg[2048];
} step_call;

static void call_unref(step_call *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    free(c);
}

/* ---- the CPU time of an in-process step call ----
 *
 * The calling thread's CPU clock (CLOCK_THREAD_CPUTIME_ID) is a system call
 * with no vDSO path: about 0.1 us on bare metal, 20-30 us in some VMs, more
 * than a no-op step and its dispatch together.  So it is read only around a
 * call that is expected to take long: the first call of a step binding, and
 * every call after one whose wall time reached CPU_EXACT_S.  Those calls
 * are charged their exact thread CPU.  A call expected short reads only the
 * time stamp counter (record_now()); if it did end under CPU_EXACT_S it is
 * charged its wall time, an upper bound at most CPU_EXACT_S off; if it ran
 * long after all, it is charged the thread's CPU since the thread clock was
 * last read on this thread (which includes the call), bounded by the call's
 * wall time, and its next call is measured exactly.  Every figure is thus
 * an upper bound of the call's CPU, exact for the calls that matter. */
#define CPU_EXACT_S 1e-3

static double thread_cpu_s(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The thread CPU clock as last read on this thread (0: never). */
static _Thread_local double cpu_mark;

typedef struct cpu_probe {
    double wall0;
    double cpu0; /* < 0: not read (the call was expected short) */
} cpu_probe;

static void cpu_probe_start(const ndf_step *step, cpu_probe *p)
{
    if (atomic_load_explicit(&step->cpu_short, memory_order_relaxed)) {
        p->cpu0 = -1;
    } else {
        p->cpu0 = cpu_mark = thread_cpu_s();
    }
    p->wall0 = record_now();
}

static void cpu_probe_end(const ndf_step *step, const cpu_probe *p, ndf_exec *node)
{
    double wall = record_now() - p->wall0;
    if (wall < 0)
        wall = 0;
    int short_ = wall < CPU_EXACT_S;
    double cpu;
    if (p->cpu0 >= 0) {
        cpu = (cpu_mark = thread_cpu_s()) - p->cpu0;
    } else if (short_) {
        cpu = wall;
    } else {
        double c = thread_cpu_s();
        cpu = cpu_mark > 0 ? c - cpu_mark : c;
        if (cpu > wall)
            cpu = wall;
        cpu_mark = c;
    }
    if (cpu < 0)
        cpu = 0;
    /* const: the binding is shared by every call; the prediction is the
     * one thing its calls write, and a racy one costs at most one read. */
    if (atomic_load_explicit(&step->cpu_short, memory_order_relaxed) != short_)
        atomic_store_explicit(&((ndf_step *)step)->cpu_short, short_, memory_order_relaxed);
    node_add_usage(node, USAGE_THREAD, cpu, 0, 0);
}

static int call_step(const ndf_step *step, ndf_exec *node, int undo)
{
    const ndf_step_def *d = step->type->def.step;
    err_clear();
    crash_frame prev = crash_enter(node, step->type);
    cpu_probe cp;
    cpu_probe_start(step, &cp);
    int rc = undo ? d->undo(&host_services, node, step->params, step->instance)
                  : d->run(&host_services, node, step->params, step->instance);
    cpu_probe_end(step, &cp, node);
    crash_leave(prev);
    if (rc > 0 || rc < NDF_STATUS_MIN)
        rc = NDF_ERR_EXECUTION;
    return rc;
}

static void *step_thread(void *arg)
{
    step_call *c = arg;
    int rc = call_step(c->step, c->node, c->undo);
    pthread_mutex_lock(&c->lock);
    c->rc = rc;
    snprintf(c->msg, sizeof c->msg, "%s", err_msg());
    c->done = 1;
    record *orphan = c->abandoned ? c->rec : NULL;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
    /* Only an overrun step, whose caller went on without it, drops the
     * record here; the patterns the record holds pin their plugins, so the
     * plugin data freed with it still has its code. */
    record_unref(orphan);
    call_unref(c);
    return NULL;
}

/* A call of `step` in `node` for a thread of its own: two references
 * (caller and thread) and one on the node's record, held by the caller. */
static step_call *call_new(const ndf_step *step, ndf_exec *node, int undo)
{
    step_call *c = xcalloc(1, sizeof *c);
    atomic_init(&c->refs, 2);
    pthread_mutex_init(&c->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &ca);
    pthread_condattr_destroy(&ca);
    c->step = step;
    c->node = node;
    c->undo = undo;
    c->rec = record_ref(node->rec);
    return c;
}

/* Gives up on a step that overran by `over` seconds: the node says so and
 * the thread now owns c->rec.  Caller holds c->lock.  NDF_ERR_TIMEOUT. */
static int call_abandon(step_call *c, double over)
{
    ndf_exec *node = c->node;
    int st = node_stop_status(node) == NDF_ERR_CANCELLED ? NDF_ERR_CANCELLED : NDF_ERR_TIMEOUT;
    node_set_state(node, st == NDF_ERR_CANCELLED ? NDF_STATE_CANCELLED : NDF_STATE_TIMED_OUT, NULL);
    char msg[128];
    if (st == NDF_ERR_CANCELLED)
        snprintf(msg, sizeof msg, "did not stop %.1fs after it was cancelled", over);
    else
        snprintf(msg, sizeof msg, "overran its deadline by %.1fs", over);
    node_set_message(node, msg);
    log_msg(0, "%s: step '%s' %s; not waiting for it", node->name, c->step->type->name, msg);
    c->abandoned = 1;
    return err_set(st, "%s: step %s", node->name, msg);
}

/* Seconds a step's waiter adds to the grace period (see call_wait). */
#define CALL_SLACK 0.25

/* Waits for the step's thread until the grace period after the node's
 * deadline or cancellation.  Caller holds c->lock.  The step's status (its
 * message in err_msg()), or call_abandon's. */
static int call_wait(step_call *c)
{
    ndf_exec *node = c->node;
    double grace = node->rec->kill_grace;
    double stop_at = INFINITY; /* when the step was told to stop */
    for (;;) {
        if (c->done)
            return err_set(c->rc, "%s", c->msg);
        double now = now_mono();
        if (!isfinite(stop_at) && node_stop_status(node))
            stop_at = fmin(now, node->deadline);
        /* The slack lets a process the step started be killed at the end
         * of the same grace period and reaped, so an exec step that ignores
         * SIGTERM ends killed, not abandoned. */
        if (now >= stop_at + grace + CALL_SLACK)
            return call_abandon(c, now - stop_at);
        double until = isfinite(stop_at) ? stop_at + grace + CALL_SLACK : fmin(node->deadline, now + 0.1);
        until = fmin(until, now + 0.1); /* cancellation is a flag: look often */
        struct timespec ts = record_timespec(fmax(now, until));
        pthread_cond_timedwait(&c->cond, &c->lock, &ts);
    }
}

/* Runs the step on a thread of its own and waits for it until the grace
 * period after the node's deadline (or after its cancellation).  A step
 * still running then is left to finish alone: the call and the record stay
 * referenced, so nothing it touches is freed under it. */
static int run_detachable(const ndf_step *step, ndf_exec *node, int undo)
{
    step_call *c = call_new(step, node, undo);
    pthread_attr_t ta;
    pthread_attr_init(&ta);
    pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int e = pthread_create(&t, &ta, step_thread, c);
    pthread_attr_destroy(&ta);
    if (e) {
        /* No thread to spare (pthread_create returned e): run it here,
         * without the overrun escape. */
        log_msg(NDF_LOG_DEBUG, "%s: no thread for a blocking step (%s); running it inline",
                node->name, strerror(e));
        atomic_store(&c->refs, 1);
        record_unref(c->rec);
        call_unref(c);
        return call_step(step, node, undo);
    }
    pthread_mutex_lock(&c->lock);
    int rc = call_wait(c);
    int abandoned = c->abandoned;
    pthread_mutex_unlock(&c->lock);
    if (!abandoned)
        record_unref(c->rec); /* never the last: the execution holds one */
    call_unref(c);
    return rc;
}

static ndf_state state_for(int rc)
{
    switch (rc) {
    case NDF_OK: return NDF_STATE_COMPLETED;
    case NDF_ERR_TIMEOUT: return NDF_STATE_TIMED_OUT;
    case NDF_ERR_CANCELLED: return NDF_STATE_CANCELLED;
    default: return NDF_STATE_FAILED;
    }
}

/* 1 when undoing `step` would run something: its type declares an undo
 * and, when its schema takes an `undo` parameter (the exec step's
 * command), the binding gives one (what `ndf plan` calls its rollback). */
static int step_undoable(const ndf_step *step)
{
    const ndf_step_def *d = step->type->def.step;
    if (!DEF_HAS(d, undo) || !d->undo)
        return 0;
    for (const ndf_param_spec *ps = d->params; ps && ps->name; ps++)
        if (strcmp(ps->name, "undo") == 0)
            return value_get(step->params, "undo") != NULL;
    return 1;
}

int svc_run_step(ndf_exec *node, const ndf_step *step, double timeout_s)
{
    if (!node || !step)
        return err_set(NDF_ERR_INVALID, "run_step: no node or no step");
    node->step_timeout = timeout_s;
    /* a redrive takes the outcome the step had in the execution it redrives */
    if (node->rec->reuse && record_reuse_node(node)) {
        if (atomic_load(&node->rec->replay) && !node->replay_undone && step_undoable(step)) {
            node->replay_has_undo = 1;
            atomic_fetch_add(&node->rec->replay_undoable, 1);
        }
        return NDF_OK;
    }
    if (atomic_load(&node->rec->replay)) {
        /* a rollback's replay runs nothing: what did not complete then
         * has nothing to undo now */
        node_set_state(node, NDF_STATE_FAILED, "not run: it did not complete in the stored execution");
        return err_set(NDF_ERR_EXECUTION, "%s: not run (rollback replay)", node->name);
    }
    const ndf_step_def *d = step->type->def.step;
    node->step = step->type;
    /* One clock read serves the step deadline, the stop check and the
     * start time. */
    double now = record_now();
    /* Each attempt (a plugin may retry) gets its own step deadline. */
    if (node->parent)
        node->deadline = node->parent->deadline;
    if (timeout_s > 0)
        node_limit_deadline(node, now + timeout_s);
    int rc = node_stop_status_at(node, now);
    if (!rc && record_lease_lost(node->rec, now)) {
        /* a queued execution whose lease may be lost (the host was paused
         * past it): the next holder runs this step */
        node_set_state(node, NDF_STATE_CANCELLED, "not started: the lease of its queued item was lost");
        return err_set(NDF_ERR_CANCELLED, "%s: not started: the lease of its queued item was lost",
                       node->name);
    }
    if (rc) {
        node_set_state(node, state_for(rc),
                       rc == NDF_ERR_CANCELLED ? "not started: cancelled"
                                               : "not started: deadline passed");
        return err_set(rc, "%s: not started: %s", node->name, ndf_status_name(rc));
    }
    node_start_at(node, now);
    if (step->isolated) {
        err_clear();
        isolate_call c = {step->type, step->params, step->serial, 0, &host_services};
        rc = isolate_run(node, &c);
    } else if (!(DEF_HAS(d, flags) && (d->flags & NDF_STEP_BLOCKING))) {
        /* The fast path: an in-process step that returns by itself is a
         * direct call. */
        err_clear();
        crash_frame prev = crash_enter(node, step->type);
        cpu_probe cp;
        cpu_probe_start(step, &cp);
        rc = d->run(&host_services, node, step->params, step->instance);
        cpu_probe_end(step, &cp, node);
        crash_leave(prev);
        if (rc == NDF_OK) {
            node_complete_at(node, record_now());
            return NDF_OK;
        }
        if (rc > 0 || rc < NDF_STATUS_MIN)
            rc = NDF_ERR_EXECUTION;
    } else if (isfinite(node->deadline) || node->rec->ex) {
        rc = run_detachable(step, node, 0);
    } else {
        rc = call_step(step, node, 0);
    }
    if (atomic_load(&node->state) == NDF_STATE_TIMED_OUT && rc == NDF_ERR_TIMEOUT)
        return rc; /* overran: already settled */
    if (rc == NDF_OK) {
        node_set_state(node, NDF_STATE_COMPLETED, NULL);
        return NDF_OK;
    }
    if (!*err_msg())
        err_set(rc, "step '%s' %s", step->type->name, ndf_status_name(rc));
    node_set_state(node, state_for(rc), err_msg());
    return rc;
}

/* An undo a pattern type asks for while a rollback's replay rebuilds its
 * run data (its run() rolls back on the failure the replay makes): not
 * done now, the node unchanged, so the rollback() that follows does it,
 * once, in the type's order. */
static int replay_deferred(ndf_exec *node)
{
    return err_set(NDF_ERR_CANCELLED, "%s: undo deferred to the rollback", node->name);
}

int svc_undo_step(ndf_exec *node, const ndf_step *step)
{
    if (!node || !step)
        return err_set(NDF_ERR_INVALID, "undo_step: no node or no step");
    if (atomic_load(&node->rec->replay) == RECORD_REPLAY_RUN)
        return replay_deferred(node);
    if (node->replay_undone) {
        node_set_state(node, NDF_STATE_ROLLED_BACK, NULL);
        return NDF_OK; /* an earlier rollback did it */
    }
    const ndf_step_def *d = step->type->def.step;
    if (!DEF_HAS(d, undo) || !d->undo) {
        node_set_state(node, NDF_STATE_ROLLED_BACK, "nothing to undo");
        return NDF_OK;
    }
    if (record_lease_lost(node->rec, now_mono())) {
        /* the next holder of its queued item reuses what completed here */
        node_set_message(node, "not undone: the lease of its queued item was lost");
        return err_set(NDF_ERR_CANCELLED, "%s: not undone: the lease of its queued item was lost",
                       node->name);
    }
    if (atomic_load(&node->rec->hard_cancel)) {
        node_set_message(node, "not undone: rollback skipped (cancelled twice)");
        return err_set(NDF_ERR_CANCELLED, "%s: rollback skipped (cancelled twice)", node->name);
    }
    if (step_undoable(step))
        atomic_fetch_add(&node->rec->undos_run, 1);
    /* Rollback runs after the deadline that made it necessary: it gets a
     * budget of its own and ignores the execution's cancellation (not a
     * second one).  The budget is what the step itself had, as an undo
     * is as much work as the step; else executor.default_timeout, else a
     * minute, so that a hung undo cannot hold a rollback for good. */
    executor *ex = exec_of(node);
    double budget = node->step_timeout > 0 ? node->step_timeout
                    : ex && executor_options(ex)->default_timeout > 0
                        ? executor_options(ex)->default_timeout
                        : 60.0;
    node->deadline = now_mono() + budget;
    node->cleanup = 1;
    int rc;
    if (step->isolated) {
        err_clear();
        isolate_call c = {step->type, step->params, step->serial, 1, &host_services};
        rc = isolate_run(node, &c);
    } else if (DEF_HAS(d, flags) && (d->flags & NDF_STEP_BLOCKING))
        rc = run_detachable(step, node, 1);
    else
        rc = call_step(step, node, 1);
    node->cleanup = 0;
    if (rc == NDF_OK) {
        /* a replay's node still says where its outcome came from */
        node_set_state(node, NDF_STATE_ROLLED_BACK, node->reused ? "undone by a rollback" : NULL);
        return NDF_OK;
    }
    char msg[2100];
    snprintf(msg, sizeof msg, "undo failed: %s", *err_msg() ? err_msg() : ndf_status_name(rc));
    node_set_state(node, NDF_STATE_FAILED, msg);
    return err_set(rc, "%s: %s", node->name, msg);
}

int svc_run_pattern(ndf_exec *node, const char *name, double timeout_s)
{
    executor *ex = exec_of(node);
    if (!ex)
        return err_set(NDF_ERR_EXECUTION, "run_pattern '%s': no executor", name ? name : "");
    return executor_run_pattern(ex, node, name, timeout_s);
}

/* The PATTERN node of the sub-execution that ran in `node`: itself, or its
 * latest PATTERN child. */
static ndf_exec *sub_execution(ndf_exec *node)
{
    if (node->pat)
        return node;
    ndf_exec *found = NULL;
    pthread_mutex_lock(&node->rec->lock);
    size_t nk;
    ndf_exec *const *kids = node_kids(node, &nk);
    for (size_t i = nk; i-- > 0;)
        if (kids[i]->kind == NDF_NODE_PATTERN && kids[i]->pat) {
            found = kids[i];
            break;
        }
    pthread_mutex_unlock(&node->rec->lock);
    return found;
}

int svc_rollback_pattern(ndf_exec *node, const char *level, const char *target)
{
    if (!node)
        return err_set(NDF_ERR_INVALID, "rollback_pattern: no node");
    if (atomic_load(&node->rec->replay) == RECORD_REPLAY_RUN)
        return replay_deferred(node);
    ndf_exec *sub = sub_execution(node);
    if (!sub)
        return err_set(NDF_ERR_NOT_FOUND, "%s: no pattern ran here to roll back", node->name);
    pattern *p = sub->pat;
    const ndf_pattern_type_def *def = p->type ? p->type->def.ptype : NULL;
    if (!def || !DEF_HAS(def, rollback) || !def->rollback) {
        svc_node_log(sub, NDF_LOG_INFO, "pattern type has no rollback; nothing to undo");
        return NDF_OK;
    }
    err_clear();
    int rc = def->rollback(&host_services, sub, p->instance, level ? level : "pattern", target);
    if (rc > 0 || rc < NDF_STATUS_MIN)
        rc = NDF_ERR_EXECUTION;
    if (rc && !*err_msg())
        err_set(rc, "rollback of '%s' %s", p->name, ndf_status_name(rc));
    return rc;
}

/* ---- groups ---- */

ndf_group *svc_group_new(ndf_exec *node, unsigned max_concurrent)
{
    if (!node || !node->rec->pool) {
        err_set(NDF_ERR_EXECUTION, "group_new: no executor for this node");
        return NULL;
    }
    return pool_group_new(node->rec->pool, node, max_concurrent, node->rec->ctx->priority);
}

int svc_group_spawn(ndf_group *group, ndf_work_fn fn, void *arg)
{
    return pool_group_spawn(group, fn, arg);
}

int svc_group_wait(ndf_group *group)
{
    return pool_group_wait(group);
}

void svc_group_free(ndf_group *group)
{
    pool_group_free(group);
}

ndf_group *svc_group_new_any(ndf_exec *node, unsigned max_concurrent)
{
    if (!node || !node->rec->pool) {
        err_set(NDF_ERR_EXECUTION, "group_new_any: no executor for this node");
        return NULL;
    }
    return pool_group_new_any(node->rec->pool, node, max_concurrent, node->rec->ctx->priority);
}

int svc_group_wait_any(ndf_group *group, void **arg, int *status)
{
    return pool_group_wait_any(group, arg, status);
}

int svc_group_cancel(ndf_group *group)
{
    return pool_group_cancel(group);
}

void svc_node_cancel(ndf_exec *node)
{
    if (node)
        node_cancel(node);
}

/* ---- results and metrics ---- */

int svc_node_set_result(ndf_exec *node, const char *text)
{
    if (!node)
        return err_set(NDF_ERR_INVALID, "node_set_result: no node");
    node_set_result(node, text);
    /* The store keeps each node's log: the result is written there too, so
     * it is in the stored execution as well as in the live record. */
    if (text) {
        size_t len = strlen(text);
        node_append(node, REC_LOG, "result: ", 8, 0);
        node_append(node, REC_LOG, text, len, 0);
        node_append(node, REC_LOG, "\n", 1, 0);
    }
    return NDF_OK;
}

static int metric_name_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!(isalnum((unsigned char)s[n]) || s[n] == '_' || s[n] == '.'))
            return 0;
    return n > 0 && n < NODE_METRIC_NAME_MAX;
}

int svc_node_set_metric(ndf_exec *node, const char *name, double value)
{
    if (!node || !name)
        return err_set(NDF_ERR_INVALID, "node_set_metric: no node or no name");
    /* "ndf." names are the host's own measurements (node_add_usage): a
     * step cannot set them, so what status shows under them is measured. */
    if (strncmp(name, "ndf.", 4) == 0)
        return err_set(NDF_ERR_INVALID, "%s: metric names beginning with 'ndf.' are the host's",
                       node->name);
    if (!metric_name_ok(name))
        return err_set(NDF_ERR_INVALID,
                       "%s: metric name '%s' is not [A-Za-z0-9_.]+ of at most %d bytes", node->name,
                       name, NODE_METRIC_NAME_MAX - 1);
    if (!isfinite(value))
        return err_set(NDF_ERR_INVALID, "%s: metric '%s' is not a finite number", node->name, name);
    if (node_set_metric(node, name, value))
        return err_set(NDF_ERR_RESOURCE, "%s: more than %d metrics", node->name, NODE_METRICS_MAX);
    char line[NODE_METRIC_NAME_MAX + 48];
    int n = snprintf(line, sizeof line, "metric %s = %.17g\n", name, value);
    node_append(node, REC_LOG, line, (size_t)n, 0);
    return NDF_OK;
}

int svc_node_result(const ndf_exec *node, char **out)
{
    *out = NULL;
    if (!node)
        return err_set(NDF_ERR_INVALID, "node_result: no node");
    *out = node_result_dup(node);
    if (!*out)
        return err_set(NDF_ERR_NOT_FOUND, "%s: no result", node->name);
    return NDF_OK;
}

/* ---- tasks: a step or pattern bound with its retry policy ---- */

struct ndf_task {
    ndf_step *step; /* or NULL: run `pattern` */
    char *pattern;
    double timeout, backoff, backoff_max;
    int retries;
};

#define SPEC_HAS(s, member) ((s)->size >= offsetof(ndf_task_spec, member) + sizeof((s)->member))

int svc_task_new(const ndf_task_spec *spec, ndf_task **out)
{
    *out = NULL;
    if (!spec || !SPEC_HAS(spec, backoff_max_s))
        return err_set(NDF_ERR_INVALID, "task_new: no spec, or one older than ABI 1.2");
    if (!spec->step == !spec->pattern)
        return svc_fail_at_value(spec->where, NDF_ERR_VALIDATION,
                                 "a task names either a step or a pattern%s",
                                 spec->step ? ", not both" : "");
    if (spec->retries < 0 || spec->retries > 1000 || !(spec->timeout_s < 1e12) ||
        !(spec->backoff_s < 1e6) || !(spec->backoff_max_s < 1e6))
        return svc_fail_at_value(spec->where, NDF_ERR_VALIDATION,
                                 "task: retries must be 0..1000 and times finite");
    const ndf_value *iso = SPEC_HAS(spec, isolation) ? spec->isolation : NULL;
    if (iso && !spec->step)
        return svc_fail_at_value(iso, NDF_ERR_VALIDATION,
                                 "'isolation' applies to a step, not to pattern '%s'",
                                 spec->pattern);
    ndf_task *t = xcalloc(1, sizeof *t);
    if (spec->step) {
        int rc = svc_step_bind(spec->step, spec->params, spec->where, iso, &t->step);
        if (rc) {
            free(t);
            return rc;
        }
    } else {
        t->pattern = xstrdup(spec->pattern);
        host_services.require_pattern(spec->where, spec->pattern);
    }
    t->timeout = spec->timeout_s > 0 ? spec->timeout_s : 0;
    t->retries = spec->retries;
    t->backoff = spec->backoff_s >= 0 ? spec->backoff_s : 0.1;
    t->backoff_max = spec->backoff_max_s > 0 ? spec->backoff_max_s : 5.0;
    *out = t;
    return NDF_OK;
}

void svc_task_free(ndf_task *t)
{
    if (!t)
        return;
    host_services.step_free(t->step);
    free(t->pattern);
    free(t);
}

const ndf_step *svc_task_step(const ndf_task *t)
{
    return t ? t->step : NULL;
}

int svc_task_run(ndf_exec *node, const ndf_task *t)
{
    if (!node || !t)
        return err_set(NDF_ERR_INVALID, "task_run: no node or no task");
    for (int attempt = 0;; attempt++) {
        int rc = t->step ? svc_run_step(node, t->step, t->timeout)
                         : svc_run_pattern(node, t->pattern, t->timeout);
        if (rc == NDF_OK || attempt >= t->retries || rc == NDF_ERR_CANCELLED ||
            atomic_load(&node->rec->replay))
            return rc;
        /* The node's own deadline was reset per attempt by run_step; what
         * stops retrying is the enclosing one (the parent's) or a stop. */
        const ndf_exec *outer = node->parent ? node->parent : node;
        if (node_stop_status(outer))
            return rc;
        /* Exponential, capped; ldexp keeps 1000 retries from overflowing. */
        double delay = fmin(t->backoff * ldexp(1.0, attempt < 60 ? attempt : 60), t->backoff_max);
        if (isfinite(outer->deadline) && now_mono() + delay >= outer->deadline)
            return rc;
        char why[2100];
        snprintf(why, sizeof why, "%s", err_msg());
        svc_node_log(node, NDF_LOG_WARN, "attempt %d of %d failed (%s); retrying in %.3gs",
                     attempt + 1, t->retries + 1, *why ? why : ndf_status_name(rc), delay);
        if (svc_sleep((ndf_exec *)outer, delay)) {
            err_set(rc, "%s", why);
            return rc;
        }
        err_set(rc, "%s", why);
    }
}

int svc_task_undo(ndf_exec *node, const ndf_task *t)
{
    if (!node || !t)
        return err_set(NDF_ERR_INVALID, "task_undo: no node or no task");
    if (t->step)
        return svc_undo_step(node, t->step);
    return svc_rollback_pattern(node, "complete", NULL);
}

/* ---- deadlines ---- */

int svc_cancelled(const ndf_exec *node)
{
    return node ? node_stop_status(node) : 0;
}

double svc_remaining(const ndf_exec *node)
{
    if (!node || !isfinite(node->deadline))
        return INFINITY;
    double r = node->deadline - now_mono();
    return r > 0 ? r : 0;
}

int svc_sleep(ndf_exec *node, double seconds)
{
    double until = now_mono() + (seconds > 0 ? seconds : 0);
    for (;;) {
        int st = node ? node_stop_status(node) : 0;
        if (st)
            return err_set(st, "%s: sleep cut short: %s", node->name, ndf_status_name(st));
        double now = now_mono();
        if (now >= until)
            return NDF_OK;
        double next = fmin(until, now + 0.05);
        if (node)
            next = fmin(next, node->deadline);
        double d = fmax(0, next - now);
        struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
}

/* ---- resources ---- */

int svc_resources_wait(ndf_exec *node, double cpu, double memory)
{
    if (node && atomic_load(&node->rec->replay))
        return NDF_OK; /* a replay runs nothing that would need them */
    char seen[256];
    int ok;
    double began = now_mono(), said = 0;
    for (;;) {
        monitor_describe(seen, sizeof seen, cpu, memory, &ok);
        if (ok) {
            if (said > 0 && node)
                log_msg(NDF_LOG_INFO,
                        "execution %s: pattern %s: %s: resources available after "
                        "%.1fs: %s",
                        node->rec->id, pattern_of(node), node->name, now_mono() - began, seen);
            return NDF_OK;
        }
        int st = node ? node_stop_status(node) : 0;
        if (st == NDF_ERR_CANCELLED)
            return err_set(st, "%s: cancelled while waiting for resources", node->name);
        if (st) {
            err_set(NDF_ERR_RESOURCE,
                    "%s: resources not available after %.1fs: %s (resources.scope = %s)",
                    node->name, now_mono() - began, seen,
                    monitor_counting_name(monitor_get_counting()));
            /* a pattern type may word the failure its own way: the reading
             * is in the log whatever it says */
            log_msg(NDF_LOG_WARN, "execution %s: pattern %s: %s", node->rec->id, pattern_of(node),
                    err_msg());
            return NDF_ERR_RESOURCE;
        }
        if (node) {
            /* what it waits for, live in the record (ndf run's display, ndf
             * ctl status), and in the log at first and every 10 s */
            char msg[320];
            snprintf(msg, sizeof msg, "waiting for resources: %s", seen);
            node_set_message(node, msg);
            double now = now_mono();
            if ((said == 0 && now - began >= 1) || (said > 0 && now - said >= 10)) {
                log_msg(NDF_LOG_WARN,
                        "execution %s: pattern %s: %s waits for resources (%.0fs "
                        "so far): %s",
                        node->rec->id, pattern_of(node), node->name, now - began, seen);
                said = now;
            }
        }
        if (node && svc_sleep(node, 0.1) == NDF_ERR_CANCELLED)
            return NDF_ERR_CANCELLED;
        if (!node) {
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
}

int svc_resources_usage(double *cpu, double *memory, double *disk_io)
{
    return monitor_usage(cpu, memory, disk_io);
}

/* ---- processes and text ---- */

int svc_spawn(ndf_exec *node, const ndf_spawn *opts, ndf_spawn_result *result)
{
    return process_run(node, opts, result);
}

/* Appends the value of template variable `var` (domain, agent_type,
 * priority, execution_id, attr.KEY) in context `ctx`, or steps.NAME.result
 * from `node`'s execution record.  With no `id` and no `node` (a plan,
 * before any execution exists) ${execution_id} and ${steps.NAME.result}
 * stay as written.  0 when there is no such variable (or no context), -1
 * for a step that has no result. */
static int expand_var(const ndf_context *ctx, const char *id, const ndf_exec *node, const char *var,
                      strbuf *sb)
{
    if (!ctx)
        return 0;
    if (strcmp(var, "domain") == 0) {
        sb_puts(sb, ctx->domain);
    } else if (strcmp(var, "agent_type") == 0) {
        sb_puts(sb, ctx->agent_type);
    } else if (strcmp(var, "priority") == 0) {
        sb_printf(sb, "%d", ctx->priority);
    } else if (strcmp(var, "execution_id") == 0) {
        sb_puts(sb, id ? id : "${execution_id}");
    } else if (strncmp(var, "attr.", 5) == 0 && var[5]) {
        const ndf_value *v = value_get(ctx->attrs, var + 5);
        if (!v)
            return 0;
        process_value_text(v, sb);
    } else if (strncmp(var, "steps.", 6) == 0) {
        /* steps.NAME.result: NAME may itself hold dots, the suffix may not. */
        size_t len = strlen(var);
        if (len <= 6 + 7 || strcmp(var + len - 7, ".result") != 0)
            return 0;
        if (!node) {
            sb_printf(sb, "${%s}", var);
            return 1;
        }
        char *name = xstrndup(var + 6, len - 6 - 7);
        char *res = node_find_result(node->rec->root, name);
        free(name);
        if (!res)
            return -1;
        sb_puts(sb, res);
        free(res);
    } else {
        return 0;
    }
    return 1;
}

static int expand(const ndf_context *ctx, const char *id, const ndf_exec *node, const char *tmpl,
                  char **out);

int svc_expand(const ndf_exec *node, const char *tmpl, char **out)
{
    return expand(node ? node->rec->ctx : NULL, node ? node->rec->id : NULL, node, tmpl, out);
}

int svc_expand_ctx(const ndf_context *ctx, const char *id, const char *tmpl, char **out)
{
    return expand(ctx, id, NULL, tmpl, out);
}

static int expand(const ndf_context *ctx, const char *id, const ndf_exec *node, const char *tmpl,
                  char **out)
{
    *out = NULL;
    if (!tmpl)
        return err_set(NDF_ERR_INVALID, "expand: no text");
    strbuf sb;
    sb_init(&sb);
    const char *p = tmpl;
    while (*p) {
        const char *d = strchr(p, '$');
        if (!d) {
            sb_puts(&sb, p);
            break;
        }
        sb_add(&sb, p, (size_t)(d - p));
        if (d[1] != '{') {
            /* "$$" is one '$'; a '$' before anything else stays as it is. */
            sb_add(&sb, "$", 1);
            p = d + (d[1] == '$' ? 2 : 1);
            continue;
        }
        const char *end = strchr(d + 2, '}');
        if (!end) {
            sb_free(&sb);
            return err_set(NDF_ERR_VALIDATION, "unterminated ${ in '%s'", tmpl);
        }
        char *var = xstrndup(d + 2, (size_t)(end - d - 2));
        int ok = expand_var(ctx, id, node, var, &sb);
        if (ok <= 0) {
            if (ok < 0)
                err_set(NDF_ERR_VALIDATION,
                        "${%s} in '%s': no step of this execution by that name has a result "
                        "(yet)",
                        var, tmpl);
            else
                err_set(NDF_ERR_VALIDATION, "unknown variable ${%s} in '%s'", var, tmpl);
            free(var);
            sb_free(&sb);
            return NDF_ERR_VALIDATION;
        }
        free(var);
        p = end + 1;
    }
    *out = sb_steal(&sb);
    return NDF_OK;
}

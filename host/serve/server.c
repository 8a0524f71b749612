/* `ndf serve`: the requests (parsed by protocol.c, arriving through
 * transport.c) dispatched to the serving generation (generation.c), the
 * main loop with its signals, plugin watch and housekeeping, and the
 * orderly shutdown. */
#include "build-config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "app/delegation.h"
#include "app/runtime.h"
#include "exec/executor.h"
#include "exec/pool.h"
#include "exec/record.h"
#include "exec/services.h"
#include "model/context.h"
#include "model/pattern.h"
#include "serve/generation.h"
#include "serve/protocol.h"
#include "serve/server.h"
#include "serve/transport.h"
#include "serve/watch.h"
#include "serve/worker.h"
#include "store/history.h"
#include "store/redrive.h"
#include "base/util.h"

#define DEFS_CHECK_S 1.0 /* s: how often the loop looks for run-time changes made one-shot */
#define TICK_MS 100       /* housekeeping: reap runs and generations, unload plugins */

typedef struct server {
    runtime *base; /* the loader and store every generation shares */
    server_opts o;
    genset *gs;
    transport *tp;
    watch *w;
    char *known; /* the commands served, for "unknown command" */
    int sig_fd, wake[2];
    _Atomic int stopping;
    worker *wk; /* the queue worker, or NULL */
    /* the records whose rollback a connection runs (req_rollback): the
     * shutdown waits for them, and stops their undo actions at its grace */
    pthread_mutex_t roll_lock;
    record **rolling;
    size_t nrolling;
    int roll_closed; /* shutting down: no rollback starts */
} server;

/* ---- answers ---- */

static char *fail(server *s, int status, const char *fmt, ...) ATTR_PRINTF(3, 4);
static char *fail(server *s, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    char *text = protocol_error(status, s->o.exit_code(status), "%s", msg);
    free(msg);
    return text;
}

/* An answer with record `r` as JSON and as text, and `primary` (a
 * fallback's first record) when not NULL. */
static char *answer_record(response *a, record *r, record *primary)
{
    strbuf j, t, p;
    sb_init(&j);
    sb_init(&t);
    sb_init(&p);
    record_to_json(r, &j);
    record_to_text(r, &t);
    if (primary)
        record_to_json(primary, &p);
    a->record = j.buf;
    a->text = t.buf;
    a->primary = p.buf;
    char *text = protocol_response(a);
    sb_free(&j);
    sb_free(&t);
    sb_free(&p);
    return text;
}

/* ---- requests ---- */

/* seed execute_with_fallback: the record of the pattern used, and the
 * primary's when the fallback ran. */
/* executor_execute() after the check `ndf run` makes before a pattern
 * starts (s->o.check_run): a pattern it refuses never starts. */
static int checked_execute(server *s, gen *g, const char *name, const ndf_context *ctx,
                           double timeout, unsigned flags, record **out)
{
    *out = NULL;
    if (s->o.check_run) {
        genset_lock(s->gs);
        err_clear();
        int rc = s->o.check_run(s->o.opaque, gen_runtime(g), name, ctx, timeout);
        genset_unlock(s->gs);
        if (rc)
            return rc;
    }
    return executor_execute(gen_runtime(g)->ex, name, ctx, timeout, flags, out);
}

/* seed execute_with_fallback (executor_execute_with_fallback), with each
 * pattern checked as `ndf run --fallback` checks it. */
static int execute_with_fallback(server *s, gen *g, const request *rq, const ndf_context *ctx,
                                 unsigned flags, fallback_result *fr)
{
    memset(fr, 0, sizeof *fr);
    fr->used = rq->pattern;
    int rc = checked_execute(s, g, rq->pattern, ctx, rq->timeout, flags, &fr->primary);
    fr->primary_status = fr->status = rc;
    if (rc == NDF_OK || rc == NDF_ERR_CANCELLED)
        return rc;
    fr->primary_error = xstrdup(err_msg());
    fr->cause = fallback_cause_of(rc);
    log_msg(NDF_LOG_INFO, "falling back from '%s' to '%s' (cause: %s): %s", rq->pattern,
            rq->fallback, fallback_cause_name(fr->cause), fr->primary_error);
    fr->used = rq->fallback;
    fr->status = rc = checked_execute(s, g, rq->fallback, ctx, rq->timeout, flags, &fr->fallback);
    return rc;
}

static char *run_fallback(server *s, const request *rq, const ndf_context *ctx, unsigned flags)
{
    gen *g = genset_current(s->gs);
    fallback_result fr;
    int rc = execute_with_fallback(s, g, rq, ctx, flags, &fr);
    /* a fallback that did not start: why, beside the primary's record */
    char *fb_error = rc && fr.cause != FALLBACK_NONE && !fr.fallback ? xstrdup(err_msg()) : NULL;
    unsigned long gid = gen_id(g);
    genset_release(s->gs, g);
    record *used = fr.fallback ? fr.fallback : fr.primary;
    if (!used) {
        char *text = fail(s, rc, "%s", fb_error ? fb_error : err_msg());
        free(fb_error);
        fallback_result_free(&fr);
        return text;
    }
    if (fr.fallback) {
        pthread_mutex_lock(&fr.fallback->lock);
        if (!fr.fallback->fallback_from) {
            fr.fallback->fallback_from = xstrdup(rq->pattern);
            fr.fallback->fallback_cause = xstrdup(fallback_cause_name(fr.cause));
        }
        pthread_mutex_unlock(&fr.fallback->lock);
    }
    response a = {.ok = 1,
                  .has = RESP_STATUS | RESP_EXIT | RESP_GENERATION,
                  .id = used->id,
                  .status = rc,
                  .exit = s->o.exit_code(rc == used->status ? record_outcome(used) : rc),
                  .generation = gid,
                  .used = fr.used ? fr.used : rq->pattern};
    if (fr.cause != FALLBACK_NONE) {
        a.fallback_cause = fallback_cause_name(fr.cause);
        a.primary_error = fr.primary_error;
        a.error = fb_error;
    }
    char *text = answer_record(&a, used, fr.primary && fr.fallback ? fr.primary : NULL);
    free(fb_error);
    fallback_result_free(&fr);
    return text;
}

static char *req_run(server *s, const request *rq)
{
    ndf_context *ctx = NULL;
    if (rq->context) {
        int rc = context_from_json(rq->context, "request context", &ctx);
        if (rc)
            return fail(s, rc, "%s", err_msg());
    } else {
        ctx = context_new("", "", NDF_PRIORITY_HIGHEST);
    }
    unsigned flags = (rq->force ? EXEC_FORCE : 0) | EXEC_ORIGIN(STORE_ORIGIN_CTL);
    if (rq->fallback) {
        char *text = run_fallback(s, rq, ctx, flags);
        context_free(ctx);
        return text;
    }
    gen *g = genset_current(s->gs);
    executor *ex = gen_runtime(g)->ex;
    record *r = NULL;
    int rc = NDF_OK;
    if (s->o.check_run) {
        genset_lock(s->gs);
        err_clear();
        rc = s->o.check_run(s->o.opaque, gen_runtime(g), rq->pattern, ctx, rq->timeout);
        genset_unlock(s->gs);
    }
    if (rc == NDF_OK)
        rc = executor_start(ex, rq->pattern, ctx, rq->timeout, flags, &r);
    context_free(ctx);
    if (rc) {
        genset_release(s->gs, g);
        return fail(s, rc, "%s", err_msg());
    }
    gen_track(g, r);
    response a = {.ok = 1, .has = RESP_GENERATION, .id = r->id, .generation = gen_id(g)};
    char *text;
    if (rq->async) {
        genset_release(s->gs, g);
        text = protocol_response(&a);
    } else {
        executor_wait(ex, r, -1);
        genset_release(s->gs, g);
        a.has |= RESP_STATUS | RESP_EXIT;
        a.status = r->status;
        a.exit = s->o.exit_code(record_outcome(r)); /* the status contract */
        text = answer_record(&a, r, NULL);
    }
    record_unref(r);
    return text;
}

/* delegation_quiet's track: the attempt is findable by id (status,
 * cancel) while it runs, as a run's record is. */
static void track_attempt(void *opaque, record *r)
{
    gen_track(opaque, r);
}

/* A delegation (app/delegation), answered with its JSON and, when an
 * attempt ran, the last attempt's record. */
static char *req_delegate(server *s, const request *rq)
{
    ndf_context *ctx = NULL;
    if (rq->context) {
        int rc = context_from_json(rq->context, "request context", &ctx);
        if (rc)
            return fail(s, rc, "%s", err_msg());
    } else {
        ctx = context_new("", "", NDF_PRIORITY_HIGHEST);
    }
    delegate_opts o;
    delegate_opts_default(&o);
    if (rq->policy && delegate_policy_parse(rq->policy, &o.policy) != 0) {
        context_free(ctx);
        return fail(s, NDF_ERR_INVALID,
                    "bad request: \"policy\" must be thompson, greedy, ucb, fixed or "
                    "epsilon_greedy");
    }
    if (rq->has_seed)
        o.has_seed = 1, o.seed = rq->seed;
    o.max_fallbacks = rq->has_max_fallbacks ? rq->max_fallbacks : DELEGATION_FALLBACKS_CONFIGURED;
    o.explain = rq->explain;
    gen *g = genset_current(s->gs);
    runtime *rt = gen_runtime(g);
    delegation_opts_from(rt, &o);
    delegation_quiet q = {.rt = rt,
                          .origin = STORE_ORIGIN_DELEGATE,
                          .timeout = rq->timeout,
                          .track = track_attempt,
                          .track_opaque = g};
    delegation d;
    int st = delegation_run(rt, ctx, &o, rq->timeout, STORE_ORIGIN_DELEGATE, delegation_run_quiet,
                            &q, &d);
    context_free(ctx);
    unsigned long gid = gen_id(g);
    genset_release(s->gs, g);
    strbuf dj;
    sb_init(&dj);
    delegation_to_json(&d, &dj);
    int ex = !d.chosen && st == NDF_ERR_NOT_FOUND && s->o.no_candidate_exit
                 ? s->o.no_candidate_exit
                 : s->o.exit_code(st);
    const delegation_attempt *last = d.nattempts ? &d.attempts[d.nattempts - 1] : NULL;
    /* not ok when nothing could be chosen; the delegation says why */
    response a = {.ok = d.chosen,
                  .has = RESP_STATUS | RESP_EXIT | RESP_GENERATION,
                  .id = last && last->id[0] ? last->id : NULL,
                  .status = st,
                  .exit = ex,
                  .generation = gid,
                  .used = last ? last->pattern : NULL,
                  .error = st ? d.error : NULL,
                  .delegation = dj.buf};
    record *r = a.id ? genset_find(s->gs, a.id) : NULL;
    char *text = r ? answer_record(&a, r, NULL) : protocol_response(&a);
    record_unref(r);
    sb_free(&dj);
    delegation_free(&d);
    return text;
}

/* The current executor's worker counters, for status: a step that
 * overran its deadline holds an abandoned worker, which the operator looking
 * at an execution should see. */
static void worker_counts(server *s, protocol_ping *p, store_stats *ss)
{
    memset(p, 0, sizeof *p);
    if (s->base->st) {
        store_get_stats(s->base->st, ss);
        p->store_path = store_path(s->base->st);
        p->store_degraded = ss->degraded;
        p->store_transactions = (unsigned long)ss->transactions;
        p->store_executions = (unsigned long)ss->executions;
        p->store_queued = (unsigned long)ss->queued;
        p->store_backend = store_backend_name(store_get_backend(s->base->st));
        p->store_schema = ss->schema;
        p->store_last_error = ss->last_error;
        p->store_last_error_time = ss->last_error_time;
    }
    gen *g = genset_current(s->gs);
    if (g && gen_runtime(g)->ex) {
        pool_stats ps;
        executor_health(gen_runtime(g)->ex, &ps);
        p->workers = ps.threads;
        p->workers_active = ps.active;
        p->workers_abandoned = ps.abandoned;
        p->workers_replaced = ps.replaced;
        p->workers_unreplaced = ps.unreplaced;
    }
    if (g)
        genset_release(s->gs, g);
}

static char *req_status(server *s, const request *rq)
{
    const char *id = rq->id && *rq->id ? rq->id : NULL;
    protocol_ping wc;
    store_stats ss; /* wc points into it */
    worker_counts(s, &wc, &ss);
    response a = {.ok = 1, .workers = &wc};
    record *r = genset_find(s->gs, id);
    if (r) {
        char *text = answer_record(&a, r, NULL);
        record_unref(r);
        return text;
    }
    char *json, *txt;
    if (id && genset_snapshot(s->gs, id, &json, &txt) == 0) {
        a.record = json;
        a.text = txt;
        char *text = protocol_response(&a);
        free(json);
        free(txt);
        return text;
    }
    if (!id)
        return fail(s, NDF_ERR_NOT_FOUND, "no execution has run yet");
    return fail(s, NDF_ERR_NOT_FOUND,
                "no execution with id '%s' (running or among the recently finished)", id);
}

static char *req_cancel(server *s, const request *rq)
{
    /* A finished execution is kept for status and rollback: cancelling it
     * would change nothing, and saying "cancelled" would be a lie. */
    record *r = genset_find(s->gs, rq->id);
    if (r && atomic_load(&r->done)) {
        record_unref(r);
        return fail(s, NDF_ERR_INVALID, "execution '%s' has already finished: nothing to cancel",
                    rq->id);
    }
    if (r)
        record_unref(r);
    if (genset_cancel(s->gs, rq->id) != NDF_OK)
        return fail(s, NDF_ERR_NOT_FOUND, "no execution with id '%s' is running", rq->id);
    response a = {.ok = 1, .id = rq->id};
    return protocol_response(&a);
}

/* Adds `r` to the rollbacks in flight; 0 once the shutdown has begun. */
static int rolling_add(server *s, record *r)
{
    pthread_mutex_lock(&s->roll_lock);
    int ok = !s->roll_closed;
    if (ok) {
        s->rolling = xrealloc(s->rolling, (s->nrolling + 1) * sizeof *s->rolling);
        s->rolling[s->nrolling++] = r;
    }
    pthread_mutex_unlock(&s->roll_lock);
    return ok;
}

static void rolling_remove(server *s, record *r)
{
    pthread_mutex_lock(&s->roll_lock);
    for (size_t i = 0; i < s->nrolling; i++)
        if (s->rolling[i] == r) {
            s->rolling[i] = s->rolling[--s->nrolling];
            break;
        }
    pthread_mutex_unlock(&s->roll_lock);
}

/* The rollbacks in flight; `stop`: stops their undo actions as a second
 * signal stops a one-shot's (the running one killed, no other run). */
static size_t rolling_count(server *s, int stop)
{
    pthread_mutex_lock(&s->roll_lock);
    s->roll_closed = 1;
    size_t n = s->nrolling;
    for (size_t i = 0; stop && i < n; i++)
        record_cancel(s->rolling[i], 1);
    pthread_mutex_unlock(&s->roll_lock);
    return n;
}

/* seed trigger_rollback on a finished execution this server ran: the
 * pattern type's rollback() on the record's root node, claimed in the
 * store first and its end recorded there (rollback_live), so that a
 * one-shot `ndf rollback` and this one exclude each other. */
static char *req_rollback(server *s, const request *rq)
{
    record *r = genset_find(s->gs, rq->id);
    if (!r)
        return fail(s, NDF_ERR_NOT_FOUND,
                    "no execution with id '%s' among the recently finished ones of this server "
                    "('ndf rollback %s' rolls back one kept in the store)",
                    rq->id, rq->id);
    char *text;
    int rc;
    if (!atomic_load(&r->done)) {
        text =
            fail(s, NDF_ERR_INVALID, "execution '%s' is still running: cancel it or wait", rq->id);
    } else if (!rolling_add(s, r)) {
        text = fail(s, NDF_ERR_CANCELLED,
                    "the server is shutting down: no rollback starts now ('ndf rollback %s' "
                    "rolls it back from the store)",
                    rq->id);
    } else {
        err_clear();
        double t0 = now_mono();
        rc = s->base->st ? rollback_live(s->base->st, r, rq->level, rq->target)
                         : executor_rollback(r, rq->level, rq->target);
        double took = now_mono() - t0;
        rolling_remove(s, r);
        if (rc) {
            text = fail(s, rc, "rollback of '%s' (%s): %s", r->root->name, rq->id,
                        *err_msg() ? err_msg() : ndf_status_name(rc));
        } else {
            /* the record's duration is its run's; the rollback's own is
             * added */
            strbuf j, t;
            sb_init(&j);
            sb_init(&t);
            record_to_json(r, &j);
            record_to_text(r, &t);
            if (j.len && j.buf[j.len - 1] == '}') {
                j.len--;
                sb_puts(&j, ",\"rollback_duration\":");
                sb_json_num(&j, took, 0);
                sb_puts(&j, "}");
            }
            response a = {.ok = 1, .record = j.buf, .text = t.buf};
            text = protocol_response(&a);
            sb_free(&j);
            sb_free(&t);
        }
    }
    record_unref(r);
    return text;
}

/* seed wait_for_completion(timeout): waits on this connection's thread, at
 * most `timeout` seconds (absent: until it ends), for a running or
 * recently finished execution.  The wait is bounded, never the execution:
 * one still running at the timeout goes on, and the answer says so (exit
 * 5).  Finished, the answer is run's: its status, exit and record. */
static char *req_wait(server *s, const request *rq)
{
    record *r = genset_find(s->gs, rq->id);
    char *json, *txt;
    int status, outcome;
    if (!r && genset_finished(s->gs, rq->id, &json, &txt, &status, &outcome) == 0) {
        /* finished, and its generation is gone: the snapshot answers */
        response a = {.ok = 1, .has = RESP_STATUS | RESP_EXIT, .id = rq->id};
        a.status = status;
        a.exit = s->o.exit_code(outcome);
        a.record = json;
        a.text = txt;
        char *text = protocol_response(&a);
        free(json);
        free(txt);
        return text;
    }
    if (!r)
        return fail(s, NDF_ERR_NOT_FOUND,
                    "no execution with id '%s' (running or among the recently finished)", rq->id);
    /* Polled on the record (a reference keeps it), not waited on its
     * executor: an old generation's executor may be freed once the
     * execution is done, while this thread would still be in its wait. */
    double until = rq->timeout >= 0 ? now_mono() + rq->timeout : INFINITY;
    for (;;) {
        if (atomic_load(&r->done))
            break;
        double left = until - now_mono();
        if (left <= 0)
            break;
        double d = left < 0.02 ? left : 0.02;
        struct timespec ts = {0, (long)(d * 1e9)};
        nanosleep(&ts, NULL);
    }
    char *text;
    if (!atomic_load(&r->done)) {
        text = fail(s, NDF_ERR_TIMEOUT,
                    "execution '%s' is still running after %gs (the wait ended, the execution "
                    "goes on)",
                    rq->id, rq->timeout);
    } else {
        response a = {.ok = 1, .has = RESP_STATUS | RESP_EXIT, .id = rq->id};
        a.status = r->status;
        a.exit = s->o.exit_code(record_outcome(r));
        text = answer_record(&a, r, NULL);
    }
    record_unref(r);
    return text;
}

/* Runs served command `sc` with the request's arguments and context on the
 * serving generation, its output captured for the answer, so that the
 * client prints what `ndf COMMAND` would and exits as it would. */
static char *run_command(server *s, const server_command *sc, const request *rq,
                         const ndf_context *ctx, long uid)
{
    char **argv = xcalloc(rq->nargs + 2, sizeof *argv);
    argv[0] = (char *)sc->name;
    memcpy(argv + 1, rq->args, rq->nargs * sizeof *argv);
    char *out = NULL, *err = NULL;
    size_t outlen = 0, errlen = 0;
    FILE *fo = open_memstream(&out, &outlen), *fe = open_memstream(&err, &errlen);
    int rc = NDF_ERR_NOMEM;
    if (fo && fe) {
        gen *g = genset_current(s->gs);
        server_call call = {sc, gen_runtime(g), (int)rq->nargs + 1, argv, ctx, fo, fe, s->gs, uid};
        if (sc->flags & SERVER_CMD_LOADER)
            genset_lock(s->gs);
        err_clear();
        rc = s->o.run_command(s->o.opaque, &call);
        if (sc->flags & SERVER_CMD_LOADER)
            genset_unlock(s->gs);
        genset_release(s->gs, g);
    }
    if (fo)
        fclose(fo);
    if (fe)
        fclose(fe);
    free(argv);
    response a = {.ok = 1, .has = RESP_EXIT, .exit = rc};
    a.out = out ? out : "", a.out_len = outlen;
    a.err = err ? err : "", a.err_len = errlen;
    char *text = rc < 0 ? fail(s, rc, "%s", *err_msg() ? err_msg() : "cannot capture the output")
                        : protocol_response(&a);
    free(out);
    free(err);
    return text;
}

static char *req_command(server *s, const request *rq, long uid)
{
    const server_command *sc = NULL;
    for (size_t i = 0; !sc && i < s->o.ncommands; i++)
        if (strcmp(rq->cmd, s->o.commands[i].name) == 0)
            sc = &s->o.commands[i];
    if (!sc)
        return fail(s, NDF_ERR_INVALID, "unknown command '%.64s' (%s)", rq->cmd, s->known);
    ndf_context *ctx = NULL;
    if (rq->context) {
        int rc = context_from_json(rq->context, "request context", &ctx);
        if (rc)
            return fail(s, rc, "%s", err_msg());
    }
    char *text = run_command(s, sc, rq, ctx, uid);
    context_free(ctx);
    return text;
}

/* ndf ctl drain [--timeout S]: the worker claims nothing more; the answer
 * waits for what it holds to end (at most S seconds: what still runs then
 * is given back, worker_give_back()) and says what it ran.  Threads still
 * inside steps that ignored a cancellation are said too: the worker is
 * not drained while they run.  The server goes on serving. */
static char *req_drain(server *s, const request *rq)
{
    if (!s->wk)
        return fail(s, NDF_ERR_INVALID,
                    "this server is not a queue worker (ndf serve --worker, or server.worker = "
                    "true)");
    double timeout = INFINITY;
    for (size_t i = 0; i < rq->nargs; i++) {
        if (strcmp(rq->args[i], "--timeout") == 0 && i + 1 < rq->nargs) {
            if (parse_seconds(rq->args[++i], &timeout) != 0)
                return fail(s, NDF_ERR_INVALID,
                            "drain: --timeout %.64s: expected a number of seconds from 0 "
                            "to " SECONDS_MAX_TEXT,
                            rq->args[i]);
        } else {
            return fail(s, NDF_ERR_INVALID, "drain: unexpected argument '%.64s'", rq->args[i]);
        }
    }
    worker_drain(s->wk);
    double t0 = now_mono(), until = t0 + timeout;
    worker_stats ws;
    for (;;) {
        worker_get_stats(s->wk, &ws);
        if (ws.held == 0 || now_mono() >= until || atomic_load(&s->stopping))
            break;
        /* to the deadline, not past it */
        double left = until - now_mono();
        usleep(left <= 0 ? 1 : left < 0.05 ? (useconds_t)(left * 1e6) + 1 : 50000);
    }
    size_t back = 0;
    if (ws.held && isfinite(timeout))
        back = worker_give_back(s->wk);
    worker_get_stats(s->wk, &ws);
    unsigned stuck = pool_stuck_threads();
    strbuf sb;
    sb_init(&sb);
    sb_printf(&sb, "worker %s: %s: %zu claimed, %zu ended, %zu lease(s) lost, %zu still running",
              ws.name, ws.held || stuck ? "draining" : "drained", ws.claimed, ws.finished, ws.lost,
              ws.held);
    if (back)
        sb_printf(&sb,
                  " after %gs: %zu given back (cancelled without rollback; another worker "
                  "takes each over and redrives it from what it recorded)",
                  timeout, back);
    if (stuck)
        sb_printf(&sb, "; %u thread(s) still inside steps that ignored their cancellation", stuck);
    sb_puts(&sb, "\n");
    char *out = sb_steal(&sb);
    response a = {.ok = 1,
                  .has = RESP_EXIT,
                  .exit = ws.held || stuck ? s->o.drain_timeout_exit : s->o.drained_exit};
    a.out = out, a.out_len = strlen(out);
    a.err = "", a.err_len = 0;
    char *text = protocol_response(&a);
    free(out);
    return text;
}

/* The serving configuration's interval backups (storage.backup_interval). */
static void schedule_backups(server *s, const settings *set)
{
    if (s->base->st && store_backup_every(s->base->st, set->backup_interval) != NDF_OK)
        log_msg(NDF_LOG_ERROR, "%s", err_msg());
}

/* A reload; a new configuration may name other plugin directories. */
static void reload(server *s, int with_config, reload_result *res)
{
    genset_reload(s->gs, with_config, res);
    if (res->config_status > 0) {
        gen *g = genset_current(s->gs);
        const settings *set = &gen_runtime(g)->cfg->set;
        if (s->w) {
            size_t n;
            char *const *dirs = runtime_plugin_dirs(s->base, set, &n);
            watch_set(s->w, dirs, n);
        }
        schedule_backups(s, set);
        genset_release(s->gs, g);
    }
}

static char *req_reload(server *s)
{
    reload_result res;
    reload(s, 1, &res);
    int status = res.config_status < 0 ? NDF_ERR_VALIDATION : NDF_ERR_EXECUTION;
    response a = {.ok = res.ok,
                  .has = RESP_GENERATION | RESP_PLUGINS_CHANGED,
                  .generation = res.generation,
                  .plugins_changed = res.plugins_changed,
                  .config = res.config_status > 0   ? "reloaded"
                            : res.config_status < 0 ? "kept"
                                                    : "unchanged"};
    if (!res.ok) {
        a.has |= RESP_STATUS | RESP_EXIT;
        a.error = res.error ? res.error : "reload failed";
        a.status = status;
        a.exit = s->o.exit_code(status);
    }
    char *text = protocol_response(&a);
    free(res.error);
    return text;
}

static char *req_ping(server *s)
{
    genset_stats st;
    genset_stats_get(s->gs, &st);
    protocol_ping p = {.old_generations = st.old_generations,
                       .pid = (long)getpid(),
                       .plugins_retired = st.plugins.retired,
                       .plugins_unloaded = st.plugins.unloaded,
                       .plugins_not_unloadable = st.plugins.not_unloadable,
                       .reloads = st.reloads_ok,
                       .reloads_failed = st.reloads_failed};
    store_stats ss; /* p points into it */
    if (s->base->st) {
        store_get_stats(s->base->st, &ss);
        p.store_path = store_path(s->base->st);
        p.store_degraded = ss.degraded;
        p.store_transactions = (unsigned long)ss.transactions;
        p.store_executions = (unsigned long)ss.executions;
        p.store_queued = (unsigned long)ss.queued;
        p.store_backend = store_backend_name(store_get_backend(s->base->st));
        p.store_schema = ss.schema;
        p.store_last_error = ss.last_error;
        p.store_last_error_time = ss.last_error_time;
    }
    gen *g = genset_current(s->gs);
    if (g && gen_runtime(g)->ex) {
        pool_stats ps;
        executor_health(gen_runtime(g)->ex, &ps);
        p.workers = ps.threads;
        p.workers_active = ps.active;
        p.workers_abandoned = ps.abandoned;
        p.workers_replaced = ps.replaced;
        p.workers_unreplaced = ps.unreplaced;
    }
    if (g)
        genset_release(s->gs, g);
    response a = {.ok = 1, .has = RESP_GENERATION, .generation = st.generation, .ping = &p};
    return protocol_response(&a);
}

static void request_stop(server *s)
{
    atomic_store(&s->stopping, 1);
    char c = 's';
    ssize_t w = write(s->wake[1], &c, 1);
    (void)w;
}

/* Reads the counts a run (its pattern, and its fallback) or a delegation
 * (every pattern) is judged by from the store.  Returns 0 to go on
 * (nonzero, with the answer in *text, is kept for a refusal). */
static int refresh_counts(server *s, const request *rq, char **text)
{
    gen *g = genset_current(s->gs);
    runtime *rt = g ? gen_runtime(g) : NULL;
    int rc = NDF_OK;
    if (rt && rt->st && rt->reg) {
        if (rq->kind == REQ_DELEGATE) {
            rc = history_refresh(rt->st, rt->reg, NULL);
        } else {
            if (rq->pattern)
                rc = history_refresh(rt->st, rt->reg, rq->pattern);
            if (!rc && rq->fallback)
                rc = history_refresh(rt->st, rt->reg, rq->fallback);
        }
    }
    if (g)
        genset_release(s->gs, g);
    (void)text;
    /* A store that cannot be read is not a reason to refuse: the run's
     * RUNNING row decides whether it may run (a store that cannot take it
     * refuses it with the storage error); meanwhile the counts this
     * server has are the best there are. */
    if (rc != NDF_OK)
        log_msg(NDF_LOG_WARN, "counts not read from the store, judging on this server's: %s",
                err_msg());
    return 0;
}

/* The transport's handler: one request line, one answer line. */
static char *handle(void *opaque, const transport_peer *peer, const char *line, size_t len)
{
    server *s = opaque;
    request rq;
    char *error;
    if (protocol_parse(line, len, &rq, &error) != 0) {
        char *text = fail(s, NDF_ERR_INVALID, "%s", error);
        free(error);
        return text;
    }
    char *text;
    if (peer->reserved && rq.kind != REQ_PING && rq.kind != REQ_STATUS &&
        rq.kind != REQ_RELOAD) {
        /* the owner's reserved slot is there so that it can always see and
         * steer the server, not to run work past the limits */
        text = fail(s, NDF_ERR_RESOURCE,
                    "the server is at its connection limit; this connection is one of those "
                    "kept for its owner, which serve only ping, status and reload: try again "
                    "later");
        request_free(&rq);
        return text;
    }
    /* A one-shot define, edit or setting is made in the store: the
     * request is answered by a generation that has it.  One read of one
     * row when nothing changed. */
    if (rq.kind != REQ_PING && rq.kind != REQ_SHUTDOWN && rq.kind != REQ_RELOAD)
        genset_defs_refresh(s->gs);
    /* The store is the system of record: what other processes ran since
     * counts for the gate, the choice and what is shown. */
    if ((rq.kind == REQ_RUN || rq.kind == REQ_DELEGATE) && refresh_counts(s, &rq, &text)) {
        request_free(&rq);
        return text;
    }
    switch (rq.kind) {
    case REQ_RUN: text = req_run(s, &rq); break;
    case REQ_DELEGATE: text = req_delegate(s, &rq); break;
    case REQ_STATUS: text = req_status(s, &rq); break;
    case REQ_CANCEL: text = req_cancel(s, &rq); break;
    case REQ_ROLLBACK: text = req_rollback(s, &rq); break;
    case REQ_WAIT: text = req_wait(s, &rq); break;
    case REQ_RELOAD: text = req_reload(s); break;
    case REQ_PING: text = req_ping(s); break;
    case REQ_SHUTDOWN: {
        response a = {.ok = 1};
        text = protocol_response(&a);
        request_stop(s);
        break;
    }
    default:
        text = strcmp(rq.cmd, "drain") == 0 ? req_drain(s, &rq) : req_command(s, &rq, (long)peer->uid);
        break;
    }
    request_free(&rq);
    return text;
}

static char *refuse(void *opaque, int status, const char *msg)
{
    return fail(opaque, status, "%s", msg);
}

/* ---- the loop ---- */

/* Reads the pending signals: SIGHUP reloads, the others stop. */
static void read_signals(server *s)
{
    struct signalfd_siginfo si;
    while (read(s->sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGHUP) {
            log_msg(NDF_LOG_INFO, "SIGHUP: reloading the configuration and plugins");
            reload_result res;
            reload(s, 1, &res);
            free(res.error);
        } else {
            log_msg(NDF_LOG_INFO, "%s received", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
            atomic_store(&s->stopping, 1);
        }
    }
}

/* Serves until asked to stop: connections (accepted by the transport),
 * signals, plugin changes (debounced), housekeeping every tick. */
static void loop(server *s)
{
    double debounce_at = 0, defs_at = 0;
    while (!atomic_load(&s->stopping)) {
        int timeout = TICK_MS;
        if (debounce_at > 0) {
            double left = (debounce_at - now_mono()) * 1000;
            timeout = left < 0 ? 0 : left < timeout ? (int)left + 1 : timeout;
        }
        struct pollfd pf[3] = {{s->sig_fd, POLLIN, 0},
                               {s->wake[0], POLLIN, 0},
                               {s->w ? watch_fd(s->w) : -1, POLLIN, 0}};
        int n = transport_poll(s->tp, pf, s->w ? 3 : 2, timeout);
        if (n < 0 && errno != EINTR) {
            log_msg(NDF_LOG_ERROR, "poll: %s", strerror(errno));
            break;
        }
        if (pf[0].revents & POLLIN)
            read_signals(s);
        if (pf[1].revents & POLLIN) {
            char b[64];
            while (read(s->wake[0], b, sizeof b) > 0)
                ;
        }
        if (atomic_load(&s->stopping))
            break;
        if (s->w && (pf[2].revents & POLLIN)) {
            int seen = watch_read(s->w);
            /* A file that went away gets a while to come back before its
             * plugin is retired, so an unlink-then-create install does not
             * take its patterns away for a moment. */
            double quiet = seen == WATCH_REMOVED && s->o.debounce < s->o.removal_grace
                               ? s->o.removal_grace
                               : s->o.debounce;
            if (seen && now_mono() + quiet > debounce_at)
                debounce_at = now_mono() + quiet;
        }
        if (debounce_at > 0 && now_mono() >= debounce_at) {
            reload_result res;
            debounce_at = 0;
            reload(s, 0, &res);
            free(res.error);
        }
        /* a queue worker's claims and the next request see a one-shot
         * change without waiting for a client to ask */
        if (now_mono() >= defs_at) {
            genset_defs_refresh(s->gs);
            defs_at = now_mono() + DEFS_CHECK_S;
        }
        genset_reap(s->gs);
    }
}

/* Stops accepting, lets running executions finish up to the grace period
 * (then cancels them), waits for the connections, saves the learning. */
static void shutdown_server(server *s)
{
    log_msg(NDF_LOG_INFO, "shutting down: no new connections");
    /* claiming stops at once; the leases of what runs are renewed until it
     * has ended */
    worker_drain(s->wk);
    transport_stop(s->tp);
    /* Connections end after the request they are in; idle ones now. */
    transport_shutdown(s->tp);
    double deadline_start = now_mono();
    double deadline = deadline_start + s->o.grace;
    size_t running;
    int cancelled = 0;
    while ((running = genset_running(s->gs)) > 0) {
        if (!cancelled && now_mono() >= deadline) {
            log_msg(NDF_LOG_WARN, "%zu execution%s still running after %.1fs: cancelling", running,
                    running == 1 ? "" : "s", s->o.grace);
            /* a queued item is another worker's to finish, from what its
             * execution recorded here: its end is not the item's */
            worker_give_back(s->wk);
            genset_cancel_all(s->gs);
            cancelled = 1;
            gen *g = genset_current(s->gs);
            deadline = now_mono() + gen_runtime(g)->cfg->set.kill_grace + 2;
            genset_release(s->gs, g);
        } else if (cancelled && now_mono() >= deadline) {
            /* given up on: the executors' exit does not wait for their
             * threads again */
            genset_abandon_all(s->gs);
            log_msg(NDF_LOG_WARN, "%zu execution%s did not stop; leaving them", running,
                    running == 1 ? "" : "s");
            break;
        }
        usleep(20000);
    }
    /* Rollbacks run on their connections' threads, on records that have
     * ended: the same grace, then their undo actions are stopped (and
     * recorded as interrupted) before the connection is answered. */
    size_t rolling;
    int stopped = 0;
    double grace_end = deadline_start + s->o.grace;
    while ((rolling = rolling_count(s, 0)) > 0) {
        if (!stopped && now_mono() >= grace_end) {
            log_msg(NDF_LOG_WARN,
                    "%zu rollback%s still running after %.1fs: stopping %s undo actions", rolling,
                    rolling == 1 ? "" : "s", s->o.grace, rolling == 1 ? "its" : "their");
            rolling_count(s, 1);
            stopped = 1;
            gen *g = genset_current(s->gs);
            grace_end = now_mono() + gen_runtime(g)->cfg->set.kill_grace + 2;
            genset_release(s->gs, g);
        } else if (stopped && now_mono() >= grace_end) {
            log_msg(NDF_LOG_WARN, "%zu rollback%s did not stop; leaving %s", rolling,
                    rolling == 1 ? "" : "s", rolling == 1 ? "it" : "them");
            break;
        }
        usleep(20000);
    }
    worker_stop(s->wk);
    s->wk = NULL;
    int left = transport_wait(s->tp, 5);
    if (left)
        log_msg(NDF_LOG_WARN, "%d connection%s still open at exit", left, left == 1 ? "" : "s");
    /* nothing to save: every execution was committed before it was answered */
}

/* ---- start and end ---- */

/* The "unknown command" list: the requests, then the served commands. */
static char *known_commands(const server_opts *o)
{
    strbuf sb;
    sb_init(&sb);
    sb_puts(&sb, "run, delegate, status, cancel, rollback");
    for (size_t i = 0; i < o->ncommands; i++)
        sb_printf(&sb, ", %s", o->commands[i].name);
    sb_puts(&sb, ", reload, ping, drain, shutdown");
    return sb_steal(&sb);
}

/* Signals are read from a signalfd by the main thread; every thread
 * started from here on inherits the mask. */
static int setup_signals(server *s)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    s->sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (s->sig_fd < 0 || pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        log_msg(NDF_LOG_ERROR, "cannot set up signal handling: %s", strerror(errno));
        return NDF_ERR_IO;
    }
    return NDF_OK;
}

/* Generation 1, the socket and the watch. */
static int start(server *s)
{
    runtime *rt = s->base;
    int rc = runtime_load(rt, RT_PLUGINS);
    if (rc)
        return rc;
    runtime_store(rt); /* once, before generations share it */
    char *why;
    if ((rc = genset_start(s->gs, runtime_take_config(rt), &why)) != NDF_OK) {
        if (rt->report)
            rt->report(rt->report_opaque, RT_DIAG_ERROR, why);
        else
            log_msg(NDF_LOG_ERROR, "%s", why);
        free(why);
        return rc;
    }
    gen *g = genset_current(s->gs);
    const settings *set = &gen_runtime(g)->cfg->set;
    transport_opts to = {
        .path = s->o.socket_path && *s->o.socket_path ? s->o.socket_path : set->socket_path,
        .group = set->socket_group,
        .handle = handle,
        .refuse = refuse,
        .opaque = s,
        .idle_timeout = set->idle_timeout,
        .max_per_uid = set->max_conns_per_uid,
    };
    rc = transport_listen(&to, &s->tp);
    if (rc != NDF_OK) {
        /* the command's error ("ndf: serve: ..."), as start-up's others */
        if (rt->report)
            rt->report(rt->report_opaque, RT_DIAG_ERROR, err_msg());
        else
            log_msg(NDF_LOG_ERROR, "%s", err_msg());
    }
    if (rc == NDF_OK && s->o.watch && (s->w = watch_new())) {
        size_t n;
        char *const *dirs = runtime_plugin_dirs(rt, set, &n);
        watch_set(s->w, dirs, n);
    }
    if (rc == NDF_OK)
        schedule_backups(s, set);
    if (rc == NDF_OK && (s->o.worker || set->worker)) {
        worker_opts wo = {.capacity = set->worker_capacity > 0 ? set->worker_capacity
                                                                : (set->threads > 0 ? set->threads
                                                                                    : 1),
                          .lease = set->worker_lease,
                          .poll = set->worker_poll};
        if (!(s->wk = worker_start(s->gs, rt->st, &wo))) {
            log_msg(NDF_LOG_ERROR, "cannot be a queue worker: %s",
                    rt->st ? err_msg()
                           : rt->store_error ? rt->store_error : "the store could not be opened");
            rc = NDF_ERR_INVALID;
        }
    }
    if (rc == NDF_OK) {
        size_t np = registry_count(gen_runtime(g)->reg), nf = loader_count(rt->ld);
        log_msg(NDF_LOG_INFO, "serving on %s (pid %ld, %zu pattern%s, %zu plugin file%s)", to.path,
                (long)getpid(), np, np == 1 ? "" : "s", nf, nf == 1 ? "" : "s");
    }
    genset_release(s->gs, g);
    return rc;
}

int server_run(runtime *rt, const server_opts *opts)
{
    server *s = xcalloc(1, sizeof *s);
    s->base = rt;
    s->o = *opts;
    if (s->o.grace <= 0)
        s->o.grace = 30;
    if (s->o.debounce <= 0)
        s->o.debounce = 0.2;
    s->sig_fd = s->wake[0] = s->wake[1] = -1;
    pthread_mutex_init(&s->roll_lock, NULL);
    s->known = known_commands(opts);
    s->gs = genset_new(rt);
    int rc = setup_signals(s);
    if (rc == NDF_OK)
        rc = start(s);
    if (rc == NDF_OK) {
        loop(s);
        shutdown_server(s);
    }
    worker_stop(s->wk);
    watch_free(s->w);
    if (s->sig_fd >= 0)
        close(s->sig_fd);
    if (s->wake[0] >= 0) {
        close(s->wake[0]);
        close(s->wake[1]);
    }
    if (s->tp)
        transport_stop(s->tp);
    if (s->tp && transport_nconns(s->tp) > 0) {
        /* A connection thread still holds a generation and the server:
         * leave it all, the loader and store included (taken from `rt`
         * so that runtime_free() does not free them), to the process
         * exit rather than free it under that thread. */
        runtime_abandon(rt, RT_OWN_LOADER | RT_OWN_STORAGE);
        return rc;
    }
    transport_free(s->tp);
    genset_free(s->gs);
    loader_collect(rt->ld);
    free(s->known);
    free(s->rolling);
    pthread_mutex_destroy(&s->roll_lock);
    free(s);
    return rc;
}

/* Generations and reload (see generation.h). */
#include "build-config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/runtime.h"
#include "conf/config.h"
#include "exec/executor.h"
#include "exec/pool.h"
#include "exec/record.h"
#include "model/pattern.h"
#include "model/registry.h"
#include "plugin/loader.h"
#include "serve/generation.h"
#include "store/defs.h"
#include "store/history.h"
#include "store/queue.h"
#include "base/util.h"

#define RING_SIZE 256 /* finished executions whose record outlives their generation */

/* A configuration shared by the generations built from it (a plugin
 * reload rebuilds from the same one). */
typedef struct cfgref {
    _Atomic int refs;
    config *cfg;
} cfgref;

struct gen {
    unsigned long id;
    _Atomic int refs; /* threads using it; guarded by gs->lock to reach 0 */
    genset *gs;
    cfgref *cr;
    runtime rt;           /* a view of gs->base on cr->cfg; owns registry and executor */
    pthread_mutex_t lock; /* guards runs */
    record **runs;        /* started here and not yet seen done by the housekeeping */
    size_t nruns;
};

typedef struct snapshot {
    char id[48];
    char *json, *text;
    int status, outcome; /* the record's status and record_outcome() */
} snapshot;

struct genset {
    runtime *base;
    pthread_mutex_t reload_lock;
    pthread_mutex_t lock; /* guards cur, old, seq, ring */
    gen *cur;
    gen **old;
    size_t nold;
    unsigned long seq;
    snapshot ring[RING_SIZE];
    size_t ring_next;
    _Atomic unsigned long reloads_ok, reloads_failed;
    /* The store's run-time definitions change count the serving
     * generation's rows were read at (store_defs_version); written under
     * the reload lock, read without it. */
    _Atomic uint64_t defs_seen;
    pthread_mutex_t end_lock; /* guards on_end, end_arg (genset_on_end) */
    void (*on_end)(void *arg, const record *r);
    void *end_arg;
};

/* ---- configurations and generations ---- */

static cfgref *cfgref_new(config *cfg)
{
    cfgref *c = xcalloc(1, sizeof *c);
    atomic_init(&c->refs, 1);
    c->cfg = cfg;
    return c;
}

static void cfgref_unref(cfgref *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    config_free(c->cfg);
    free(c);
}

static void gen_free(gen *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->nruns; i++)
        record_unref(g->runs[i]);
    free(g->runs);
    runtime_free(&g->rt); /* its executor and registry; the rest is borrowed */
    cfgref_unref(g->cr);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

gen *genset_current(genset *gs)
{
    pthread_mutex_lock(&gs->lock);
    gen *g = gs->cur;
    if (g)
        atomic_fetch_add(&g->refs, 1);
    pthread_mutex_unlock(&gs->lock);
    return g;
}

void genset_release(genset *gs, gen *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&gs->lock);
    atomic_fetch_sub(&g->refs, 1);
    pthread_mutex_unlock(&gs->lock);
}

unsigned long gen_id(const gen *g)
{
    return g->id;
}

runtime *gen_runtime(gen *g)
{
    return &g->rt;
}

/* The executor's on_complete: records the execution in the store before
 * anyone is answered (a failed commit becomes the execution's storage
 * error), and puts the committed learning state into the pattern that now
 * serves under its name, which is another one when the generation it ran
 * in has been replaced meanwhile: no learning is lost across a reload. */
static void on_complete(void *opaque, pattern *p, const record *r)
{
    gen *g = opaque;
    gen *cur = genset_current(g->gs);
    pattern *q = NULL;
    if (cur && cur != g && registry_get(cur->rt.reg, p->name, &q) == NDF_OK && q == p) {
        pattern_unref(q);
        q = NULL;
    }
    record *w = (record *)(uintptr_t)r; /* finishing it is this thread's */
    if (g->rt.st) {
        /* a queued execution that refused a step past its local lease
         * deadline may have lost the claim: its end must not be the item's
         * (recorded unbound, as an execution of its own) */
        if (atomic_load(&w->lease_lapsed))
            queue_unbind(g->rt.st, r->id);
        /* the origin its start gave (a queued execution's is "queue") */
        history_record(g->rt.st, w, r->origin >= 0 ? (store_origin)r->origin : STORE_ORIGIN_CTL,
                       q ? q : p);
    } else {
        log_msg(NDF_LOG_ERROR, "execution %s not recorded: no store", r->id);
        pthread_mutex_lock(&w->lock);
        w->status = NDF_ERR_IO;
        free(w->error);
        w->error = xstrdup("not recorded: the store could not be opened");
        pthread_mutex_unlock(&w->lock);
    }
    if (q)
        pattern_unref(q);
    genset_release(g->gs, cur);
    pthread_mutex_lock(&g->gs->end_lock);
    if (g->gs->on_end)
        g->gs->on_end(g->gs->end_arg, r);
    pthread_mutex_unlock(&g->gs->end_lock);
}

void genset_on_end(genset *gs, void (*fn)(void *arg, const record *r), void *arg)
{
    pthread_mutex_lock(&gs->end_lock);
    gs->on_end = fn;
    gs->end_arg = arg;
    pthread_mutex_unlock(&gs->end_lock);
}

static void why_add(strbuf *why, const char *msg)
{
    if (why->len)
        sb_puts(why, "\n");
    sb_puts(why, msg);
}

/* A configuration reload fails on any problem, with every reason; a plugin
 * reload leaves out the patterns that stopped validating, with a warning. */
static void report_strict(void *opaque, runtime_diag sev, const char *msg)
{
    (void)sev;
    why_add(opaque, msg);
}

static void report_lenient(void *opaque, runtime_diag sev, const char *msg)
{
    if (sev == RT_DIAG_FAILURE)
        why_add(opaque, msg); /* no generation at all */
    else
        log_msg(NDF_LOG_WARN, "%s (pattern left out)", msg);
}

/* Builds a generation from `cr` (a reference is taken) against the plugins
 * loaded now.  `strict`: any pattern that fails to build fails the whole
 * generation; otherwise such patterns are left out.  Learning state comes
 * from `prev`'s pattern of the same name, else from the store.  Returns NULL
 * with the reasons in `why`. */
static gen *gen_build(genset *gs, cfgref *cr, gen *prev, int strict, strbuf *why)
{
    gen *g = xcalloc(1, sizeof *g);
    pthread_mutex_init(&g->lock, NULL);
    g->gs = gs;
    atomic_fetch_add(&cr->refs, 1);
    g->cr = cr;
    runtime_view(&g->rt, gs->base, cr->cfg);
    g->rt.report = strict ? report_strict : report_lenient;
    g->rt.report_opaque = why;
    int rc = runtime_build_registry(&g->rt, prev ? prev->rt.reg : NULL);
    if (rc == NDF_OK || !strict)
        rc = runtime_start_executor(&g->rt, on_complete, g);
    /* diagnostics from now on (a served command's) are the base's */
    g->rt.report = gs->base->report;
    g->rt.report_opaque = gs->base->report_opaque;
    if (!g->rt.ex) {
        if (!why->len)
            why_add(why, "cannot build a generation");
        gen_free(g);
        return NULL;
    }
    return g;
}

/* Publishes `ng` as the serving generation.  Learning recorded in the old
 * one since `ng` was built is taken over under the lock that on_complete
 * uses, so that no outcome falls between the two. */
static void gen_swap(genset *gs, gen *ng)
{
    pthread_mutex_lock(&gs->lock);
    gen *old = gs->cur;
    ng->id = ++gs->seq;
    if (old) {
        pattern_list l;
        registry_all(ng->rt.reg, &l);
        for (size_t i = 0; i < l.count; i++) {
            pattern *p;
            if (registry_get(old->rt.reg, l.items[i]->name, &p) == NDF_OK) {
                pattern_adopt_learning(l.items[i], p);
                pattern_unref(p);
            }
        }
        pattern_list_free(&l);
        gs->old = xrealloc(gs->old, (gs->nold + 1) * sizeof *gs->old);
        gs->old[gs->nold++] = old;
    }
    gs->cur = ng;
    /* a generation built from files read afresh read the rows too (a
     * plugin reload reuses the serving configuration, rows and all) */
    if (ng->rt.defs_read)
        atomic_store(&gs->defs_seen, ng->rt.defs_version);
    pthread_mutex_unlock(&gs->lock);
}

genset *genset_new(runtime *base)
{
    genset *gs = xcalloc(1, sizeof *gs);
    gs->base = base;
    pthread_mutex_init(&gs->reload_lock, NULL);
    pthread_mutex_init(&gs->lock, NULL);
    pthread_mutex_init(&gs->end_lock, NULL);
    return gs;
}

int genset_start(genset *gs, config *cfg, char **why)
{
    strbuf w;
    sb_init(&w);
    cfgref *cr = cfgref_new(cfg);
    gen *g = gen_build(gs, cr, NULL, 1, &w);
    cfgref_unref(cr);
    if (!g) {
        *why = sb_steal(&w);
        return NDF_ERR_VALIDATION;
    }
    sb_free(&w);
    *why = NULL;
    gen_swap(gs, g);
    return NDF_OK;
}

void genset_free(genset *gs)
{
    if (!gs)
        return;
    /* oldest first, the serving one last */
    for (size_t i = 0; i < gs->nold; i++)
        gen_free(gs->old[i]);
    gen_free(gs->cur);
    free(gs->old);
    for (size_t i = 0; i < RING_SIZE; i++) {
        free(gs->ring[i].json);
        free(gs->ring[i].text);
    }
    pthread_mutex_destroy(&gs->reload_lock);
    pthread_mutex_destroy(&gs->lock);
    pthread_mutex_destroy(&gs->end_lock);
    free(gs);
}

void genset_lock(genset *gs)
{
    pthread_mutex_lock(&gs->reload_lock);
}

void genset_unlock(genset *gs)
{
    pthread_mutex_unlock(&gs->reload_lock);
}

/* ---- executions ---- */

void gen_track(gen *g, record *r)
{
    pthread_mutex_lock(&g->lock);
    g->runs = xrealloc(g->runs, (g->nruns + 1) * sizeof *g->runs);
    g->runs[g->nruns++] = record_ref(r);
    pthread_mutex_unlock(&g->lock);
}

static void ring_put(genset *gs, record *r)
{
    strbuf j, t;
    sb_init(&j);
    sb_init(&t);
    record_to_json(r, &j);
    record_to_text(r, &t);
    pthread_mutex_lock(&gs->lock);
    snapshot *sn = &gs->ring[gs->ring_next++ % RING_SIZE];
    free(sn->json);
    free(sn->text);
    snprintf(sn->id, sizeof sn->id, "%s", r->id);
    sn->status = r->status;
    sn->outcome = record_outcome(r);
    sn->json = sb_steal(&j);
    sn->text = sb_steal(&t);
    pthread_mutex_unlock(&gs->lock);
}

/* Drops the runs of `g` that are done (keeping a snapshot of each, so that
 * `status` outlives the generation); returns how many are still running.
 * Waiting 0 s lets the executor settle an execution that overran. */
static size_t gen_prune(genset *gs, gen *g)
{
    pthread_mutex_lock(&g->lock);
    size_t k = 0, ndone = 0;
    record **done = NULL;
    for (size_t i = 0; i < g->nruns; i++) {
        record *r = g->runs[i];
        if (atomic_load(&r->done) || executor_wait(g->rt.ex, r, 0)) {
            done = xrealloc(done, (ndone + 1) * sizeof *done);
            done[ndone++] = r;
        } else {
            g->runs[k++] = r;
        }
    }
    g->nruns = k;
    pthread_mutex_unlock(&g->lock);
    for (size_t i = 0; i < ndone; i++) {
        ring_put(gs, done[i]);
        record_unref(done[i]);
    }
    free(done);
    return k;
}

record *genset_find(genset *gs, const char *id)
{
    record *r = NULL;
    pthread_mutex_lock(&gs->lock);
    if (gs->cur)
        r = executor_find(gs->cur->rt.ex, id);
    for (size_t i = gs->nold; !r && id && i-- > 0;)
        r = executor_find(gs->old[i]->rt.ex, id);
    pthread_mutex_unlock(&gs->lock);
    return r;
}

int genset_cancel(genset *gs, const char *id)
{
    return genset_cancel_hard(gs, id, 0);
}

int genset_cancel_hard(genset *gs, const char *id, int hard)
{
    int rc = NDF_ERR_NOT_FOUND;
    pthread_mutex_lock(&gs->lock);
    if (gs->cur)
        rc = executor_cancel_hard(gs->cur->rt.ex, id, hard);
    for (size_t i = 0; rc && i < gs->nold; i++)
        rc = executor_cancel_hard(gs->old[i]->rt.ex, id, hard);
    pthread_mutex_unlock(&gs->lock);
    return rc ? NDF_ERR_NOT_FOUND : NDF_OK;
}

int genset_snapshot(genset *gs, const char *id, char **json, char **text)
{
    int status, outcome;
    return genset_finished(gs, id, json, text, &status, &outcome);
}

int genset_finished(genset *gs, const char *id, char **json, char **text, int *status,
                    int *outcome)
{
    int rc = -1;
    pthread_mutex_lock(&gs->lock);
    for (size_t i = 0; i < RING_SIZE && rc; i++)
        if (gs->ring[i].json && strcmp(gs->ring[i].id, id) == 0) {
            *json = xstrdup(gs->ring[i].json);
            *text = xstrdup(gs->ring[i].text);
            *status = gs->ring[i].status;
            *outcome = gs->ring[i].outcome;
            rc = 0;
        }
    pthread_mutex_unlock(&gs->lock);
    return rc;
}

/* ---- housekeeping ---- */

/* Takes out of the old list one generation nobody uses whose executions
 * are done, or returns NULL. */
static gen *reap_one(genset *gs)
{
    gen *victim = NULL;
    pthread_mutex_lock(&gs->lock);
    for (size_t i = 0; i < gs->nold && !victim; i++) {
        gen *g = gs->old[i];
        if (atomic_load(&g->refs) > 0)
            continue;
        pthread_mutex_unlock(&gs->lock);
        size_t running = gen_prune(gs, g);
        pthread_mutex_lock(&gs->lock);
        /* the list changes only under the reload lock, held: i is still g */
        if (running || atomic_load(&g->refs) > 0)
            continue;
        victim = g;
        memmove(&gs->old[i], &gs->old[i + 1], (gs->nold - i - 1) * sizeof *gs->old);
        gs->nold--;
    }
    pthread_mutex_unlock(&gs->lock);
    return victim;
}

/* genset_reap with the reload lock held. */
static void reap_locked(genset *gs)
{
    gen *cur = genset_current(gs);
    if (cur) {
        gen_prune(gs, cur);
        genset_release(gs, cur);
    }
    gen *victim;
    while ((victim = reap_one(gs))) {
        unsigned long id = victim->id;
        gen_free(victim);
        log_msg(NDF_LOG_DEBUG, "generation %lu freed", id);
    }
    loader_collect(gs->base->ld);
}

void genset_reap(genset *gs)
{
    pthread_mutex_lock(&gs->reload_lock);
    reap_locked(gs);
    pthread_mutex_unlock(&gs->reload_lock);
}

size_t genset_running(genset *gs)
{
    size_t n = 0;
    pthread_mutex_lock(&gs->reload_lock);
    gen *cur = genset_current(gs);
    n += gen_prune(gs, cur);
    genset_release(gs, cur);
    /* the old list changes only under the reload lock, held */
    for (size_t i = 0; i < gs->nold; i++)
        n += gen_prune(gs, gs->old[i]);
    pthread_mutex_unlock(&gs->reload_lock);
    return n;
}

void genset_cancel_all(genset *gs)
{
    pthread_mutex_lock(&gs->lock);
    for (size_t i = 0; i <= gs->nold; i++) {
        gen *g = i < gs->nold ? gs->old[i] : gs->cur;
        pthread_mutex_lock(&g->lock);
        for (size_t j = 0; j < g->nruns; j++)
            if (!atomic_load(&g->runs[j]->done))
                executor_cancel(g->rt.ex, g->runs[j]->id);
        pthread_mutex_unlock(&g->lock);
    }
    pthread_mutex_unlock(&gs->lock);
}

size_t genset_abandon_all(genset *gs)
{
    size_t n = 0;
    pthread_mutex_lock(&gs->lock);
    for (size_t i = 0; i <= gs->nold; i++) {
        gen *g = i < gs->nold ? gs->old[i] : gs->cur;
        if (!g)
            continue;
        pthread_mutex_lock(&g->lock);
        for (size_t j = 0; j < g->nruns; j++)
            if (!atomic_load(&g->runs[j]->done))
                n += pool_abandon(executor_pool(g->rt.ex), g->runs[j]);
        pthread_mutex_unlock(&g->lock);
    }
    pthread_mutex_unlock(&gs->lock);
    return n;
}

void genset_stats_get(genset *gs, genset_stats *out)
{
    pthread_mutex_lock(&gs->lock);
    out->generation = gs->cur ? gs->cur->id : 0;
    out->old_generations = gs->nold;
    pthread_mutex_unlock(&gs->lock);
    out->reloads_ok = atomic_load(&gs->reloads_ok);
    out->reloads_failed = atomic_load(&gs->reloads_failed);
    pthread_mutex_lock(&gs->reload_lock);
    loader_generations(gs->base->ld, &out->plugins);
    pthread_mutex_unlock(&gs->reload_lock);
}

/* ---- reload ---- */

/* Reads the configuration again: NULL, with the errors in `why`, when it
 * has any. */
static config *reload_config(genset *gs, strbuf *why)
{
    config *ncfg = NULL;
    if (config_load(gs->base->config_path, &ncfg) == NDF_OK)
        return ncfg;
    for (size_t i = 0; ncfg && i < ncfg->ndiags; i++)
        if (ncfg->diags[i].is_error)
            why_add(why, ncfg->diags[i].text);
    if (!why->len)
        why_add(why, err_msg());
    config_free(ncfg);
    return NULL;
}

/* The new generation of a reload, or NULL when none takes over. */
static gen *reload_build(genset *gs, config *ncfg, reload_result *res, strbuf *why)
{
    gen *cur = gs->cur; /* changes only under the reload lock, held */
    gen *ng = NULL;
    if (ncfg) {
        cfgref *cr = cfgref_new(ncfg);
        ng = gen_build(gs, cr, cur, 1, why);
        cfgref_unref(cr);
        res->config_status = ng ? 1 : -1;
    }
    if (!ng && res->plugins_changed) {
        strbuf w2;
        sb_init(&w2);
        ng = gen_build(gs, cur->cr, cur, 0, &w2);
        if (!ng)
            why_add(why, w2.buf ? w2.buf : "cannot build a generation");
        sb_free(&w2);
    }
    return ng;
}

static void reload_log(const reload_result *res, const gen *ng)
{
    if (res->error)
        log_msg(NDF_LOG_ERROR, "reload: %s%s",
                res->config_status < 0 ? "the configuration keeps serving: " : "", res->error);
    if (ng)
        log_msg(NDF_LOG_INFO, "reload: generation %lu serves (%s%zu plugin change%s)",
                res->generation, res->config_status > 0 ? "new configuration, " : "",
                res->plugins_changed, res->plugins_changed == 1 ? "" : "s");
}

void genset_reload(genset *gs, int with_config, reload_result *res)
{
    memset(res, 0, sizeof *res);
    strbuf why;
    sb_init(&why);
    pthread_mutex_lock(&gs->reload_lock);
    config *ncfg = with_config ? reload_config(gs, &why) : NULL;
    if (with_config && !ncfg)
        res->config_status = -1;
    size_t ndirs;
    char *const *dirs =
        runtime_plugin_dirs(gs->base, ncfg ? &ncfg->set : &gs->cur->cr->cfg->set, &ndirs);
    /* An explicit reload (SIGHUP, ctl reload) tries refused builds again
     * even if nothing about their files changed: the operator may have
     * fixed what the refusal named elsewhere (a directory's mode, a
     * library the plugin needs). */
    size_t refused = 0;
    strbuf refusals;
    sb_init(&refusals);
    res->plugins_changed =
        loader_rescan_ex(gs->base->ld, dirs, ndirs, with_config, &refused, &refusals);
    gen *ng = reload_build(gs, ncfg, res, &why);
    if (ng)
        gen_swap(gs, ng);
    res->generation = gs->cur->id;
    res->plugins_refused = refused;
    if (refused)
        why_add(&why, refusals.buf);
    sb_free(&refusals);
    res->ok = res->config_status >= 0 && (ng || !res->plugins_changed) && !refused;
    res->error = why.len ? sb_steal(&why) : NULL;
    sb_free(&why);
    reload_log(res, ng);
    /* Every refused build is a failed reload of that plugin, whatever else
     * the reload did. */
    if (res->ok)
        atomic_fetch_add(&gs->reloads_ok, 1);
    else
        atomic_fetch_add(&gs->reloads_failed, refused ? refused : 1);
    reap_locked(gs);
    pthread_mutex_unlock(&gs->reload_lock);
}

/* ---- run-time changes ---- */

int genset_defs_refresh(genset *gs)
{
    store *st = gs->base->st;
    uint64_t v;
    if (!st || store_defs_version(st, &v) != NDF_OK || v == atomic_load(&gs->defs_seen))
        return 0;
    pthread_mutex_lock(&gs->reload_lock);
    /* another thread may have taken it while this one waited */
    if (store_defs_version(st, &v) != NDF_OK || v == atomic_load(&gs->defs_seen)) {
        pthread_mutex_unlock(&gs->reload_lock);
        return 0;
    }
    strbuf why;
    sb_init(&why);
    config *ncfg = reload_config(gs, &why);
    gen *ng = NULL;
    if (ncfg) {
        cfgref *cr = cfgref_new(ncfg);
        ng = gen_build(gs, cr, gs->cur, 1, &why);
        cfgref_unref(cr);
    }
    int rc = 0;
    if (ng) {
        gen_swap(gs, ng);
        log_msg(NDF_LOG_INFO,
                "run-time definitions changed in the store: generation %lu serves", ng->id);
        rc = 1;
    } else {
        /* said once: the same count is not tried again until it moves
         * (or ndf ctl reload, once the files are fixed) */
        atomic_store(&gs->defs_seen, v);
        log_msg(NDF_LOG_ERROR,
                "run-time definitions changed in the store, but the generation with them does "
                "not build; generation %lu serves on: %s",
                gs->cur->id, why.len ? why.buf : "cannot build a generation");
    }
    sb_free(&why);
    reap_locked(gs);
    pthread_mutex_unlock(&gs->reload_lock);
    return rc;
}

int genset_apply(genset *gs, int (*prepare)(void *opaque, config *cfg, strbuf *why),
                 int (*commit)(void *opaque, strbuf *why), void *opaque,
                 unsigned long *generation, char **why_out)
{
    strbuf why;
    sb_init(&why);
    *why_out = NULL;
    pthread_mutex_lock(&gs->reload_lock);
    int rc = NDF_OK;
    store *st = gs->base->st;
    uint64_t v0 = 0, v1 = 0;
    int counted = st && store_defs_version(st, &v0) == NDF_OK;
    config *ncfg = reload_config(gs, &why);
    if (!ncfg) {
        rc = NDF_ERR_VALIDATION;
        char *files = sb_steal(&why);
        sb_init(&why);
        sb_printf(&why, "the configuration files have errors (fix them, then try again):\n%s",
                  files ? files : "");
        free(files);
    }
    if (!rc)
        rc = prepare(opaque, ncfg, &why);
    gen *ng = NULL;
    if (!rc) {
        cfgref *cr = cfgref_new(ncfg);
        ncfg = NULL;
        ng = gen_build(gs, cr, gs->cur, 1, &why);
        cfgref_unref(cr);
        if (!ng)
            rc = NDF_ERR_VALIDATION;
    }
    /* durable before it serves: a change that could not be stored is not
     * made at all */
    if (!rc && (rc = commit(opaque, &why)) != NDF_OK) {
        gen_free(ng);
        ng = NULL;
    }
    config_free(ncfg);
    if (ng) {
        gen_swap(gs, ng);
        /* the rows it serves are those read after v0, with this change
         * (one count more); another process's change in between leaves
         * v0, so that genset_defs_refresh takes it */
        if (counted)
            atomic_store(&gs->defs_seen,
                         store_defs_version(st, &v1) == NDF_OK && v1 == v0 + 1 ? v1 : v0);
        log_msg(NDF_LOG_INFO, "run-time change: generation %lu serves", ng->id);
    }
    *generation = gs->cur->id;
    if (rc)
        *why_out = sb_steal(&why);
    sb_free(&why);
    reap_locked(gs);
    pthread_mutex_unlock(&gs->reload_lock);
    return rc;
}

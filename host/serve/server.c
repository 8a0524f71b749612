/* `ndf serve`: the control socket, its JSON-lines protocol, and hot reload.
 *
 * The served world lives in generations: a configuration, the registry of
 * patterns built from it against the plugins loaded at that moment, and an
 * executor.  A reload builds a whole new generation off to the side and
 * swaps it in at once; new executions go to it, running ones finish in the
 * generation they started in (their records hold their patterns, which pin
 * the plugins they were built on), and an old generation is freed once its
 * last execution is done.  Retired plugins are then finalized and unloaded
 * by the loader (loader_collect). */
#include "build-config.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/commands.h" /* exit codes */
#include "conf/config.h"
#include "model/context.h"
#include "exec/executor.h"
#include "plugin/loader.h"
#include "model/pattern.h"
#include "exec/record.h"
#include "model/build.h"
#include "model/registry.h"
#include "serve/server.h"
#include "exec/services.h"
#include "store/history.h"
#include "base/util.h"

#define MAX_CONNS 512     /* connections served at once; more are turned away */
#define RING_SIZE 256     /* finished executions whose record outlives their generation */
#define REMOVAL_GRACE 1.0 /* s: quiet time after a plugin file went away */
#define TICK_MS 100       /* housekeeping: reap runs and generations, unload plugins */

/* A configuration and the pattern definitions read with it, shared by the
 * generations built from it (a plugin reload rebuilds from the same one). */
typedef struct cfgref {
    _Atomic int refs;
    config *cfg;
    ndf_value **defs;
    size_t ndefs;
} cfgref;

typedef struct server server;

typedef struct gen {
    unsigned long id;
    _Atomic int refs; /* threads using it; guarded by srv->gen_lock to reach 0 */
    server *srv;
    cfgref *cr;
    registry *reg;
    executor *ex;
    pthread_mutex_t lock; /* guards runs */
    record **runs;        /* started here and not yet seen done by the reaper */
    size_t nruns;
} gen;

typedef struct snapshot {
    char id[48];
    char *json, *text;
} snapshot;

typedef struct conn {
    server *srv;
    int fd;
    uid_t uid;
} conn;

struct server {
    app *a;
    server_opts o;
    char *socket_path;
    loader *ld;

    /* Serializes what changes or reads the loader and the generation list
     * shape: reloads, housekeeping, and the commands run for clients (they
     * also swap stdout/stderr and use getopt, which are process-wide). */
    pthread_mutex_t world;

    pthread_mutex_t gen_lock; /* guards cur, old, ring */
    gen *cur;
    gen **old;
    size_t nold;
    unsigned long gen_seq;
    snapshot ring[RING_SIZE];
    size_t ring_next;

    pthread_mutex_t conn_lock;
    pthread_cond_t conn_cond;
    int conns[MAX_CONNS]; /* open connection descriptors, -1 free */
    int nconns;

    int listen_fd, sig_fd, ino_fd, wake[2];
    int *wds;
    size_t nwds;
    _Atomic int stopping;
    _Atomic unsigned long reloads_ok, reloads_failed;
};

/* ---- generations ---- */

static void cfgref_unref(cfgref *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    for (size_t i = 0; i < c->ndefs; i++)
        value_free(c->defs[i]);
    free(c->defs);
    config_free(c->cfg);
    free(c);
}

/* Takes over `cfg` and its pattern definitions. */
static cfgref *cfgref_new(config *cfg)
{
    cfgref *c = xcalloc(1, sizeof *c);
    atomic_init(&c->refs, 1);
    c->cfg = cfg;
    c->defs = cfg->patterns;
    c->ndefs = cfg->npatterns;
    cfg->patterns = NULL;
    cfg->npatterns = 0;
    return c;
}

static void gen_free(gen *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->nruns; i++)
        record_unref(g->runs[i]);
    free(g->runs);
    if (g->ex)
        executor_free(g->ex);
    if (g->reg)
        registry_free(g->reg);
    cfgref_unref(g->cr);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

/* A reference to the serving generation. */
static gen *gen_current(server *s)
{
    pthread_mutex_lock(&s->gen_lock);
    gen *g = s->cur;
    if (g)
        atomic_fetch_add(&g->refs, 1);
    pthread_mutex_unlock(&s->gen_lock);
    return g;
}

static void gen_release(server *s, gen *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&s->gen_lock);
    atomic_fetch_sub(&g->refs, 1);
    pthread_mutex_unlock(&s->gen_lock);
}

/* The executor's on_complete: records the execution in the store before
 * anyone is answered (a failed commit becomes the execution's storage
 * error), and puts the committed learning state into the pattern that now
 * serves under its name, which is another one when the generation it ran
 * in has been replaced meanwhile: no learning is lost across a reload. */
static void on_complete(void *opaque, pattern *p, const record *r)
{
    gen *g = opaque;
    server *s = g->srv;
    gen *cur = gen_current(s);
    pattern *q = NULL;
    if (cur && cur != g && registry_get(cur->reg, p->name, &q) == NDF_OK && q == p) {
        pattern_unref(q);
        q = NULL;
    }
    store *st = history_app(&g->cr->cfg->set);
    if (st) {
        history_record(st, (record *)(uintptr_t)r, STORE_ORIGIN_CTL, q ? q : p);
    } else {
        record *w = (record *)(uintptr_t)r;
        log_msg(NDF_LOG_ERROR, "execution %s not recorded: %s", r->id, err_msg());
        pthread_mutex_lock(&w->lock);
        w->status = NDF_ERR_IO;
        free(w->error);
        w->error = xasprintf("not recorded: %s", err_msg());
        pthread_mutex_unlock(&w->lock);
    }
    if (q)
        pattern_unref(q);
    gen_release(s, cur);
}

static void why_add(strbuf *why, const char *msg)
{
    if (why->len)
        sb_puts(why, "\n");
    sb_puts(why, msg);
}

typedef struct build_report {
    int strict;
    strbuf *why;
} build_report;

/* A configuration reload fails on any problem, with every reason; a plugin
 * reload leaves out the patterns that stopped validating, with a warning. */
static void build_report_fn(void *opaque, const char *msg)
{
    build_report *br = opaque;
    if (br->strict)
        why_add(br->why, msg);
    else
        log_msg(NDF_LOG_WARN, "%s (pattern left out)", msg);
}

/* Builds a generation from `cr` (a reference is taken) against the plugins
 * loaded now.  `strict`: any pattern that fails to build fails the whole
 * generation (a configuration reload); otherwise such patterns are left
 * out with a warning (a plugin reload: a removed plugin's patterns stop
 * validating).  Learning state comes from `prev`'s pattern of the same
 * name, else from storage.  Returns NULL with the reasons in `why`. */
static gen *gen_build(server *s, cfgref *cr, gen *prev, int strict, strbuf *why)
{
    const settings *set = &cr->cfg->set;
    gen *g = xcalloc(1, sizeof *g);
    pthread_mutex_init(&g->lock, NULL);
    g->srv = s;
    atomic_fetch_add(&cr->refs, 1);
    g->cr = cr;
    build_report br = {.strict = strict, .why = why};
    build_opts bo = {
        .ld = s->ld,
        .set = set,
        .store = history_registry_store(set),
        .prev = prev ? prev->reg : NULL,
        .report = build_report_fn,
        .opaque = &br,
    };
    size_t errors;
    g->reg = build_registry(&bo, cr->defs, cr->ndefs, &errors);
    if (strict && errors) {
        gen_free(g);
        return NULL;
    }
    executor_opts eo = {
        .threads = set->threads > 0 ? (unsigned)set->threads : 1,
        .default_timeout = set->default_timeout,
        .pattern_timeout = set->pattern_timeout,
        .kill_grace = set->kill_grace,
        .confidence_threshold = set->confidence_threshold,
        .reg = g->reg,
        .on_complete = on_complete,
        .opaque = g,
    };
    g->ex = executor_new(&eo);
    if (!g->ex) {
        why_add(why, err_msg());
        gen_free(g);
        return NULL;
    }
    return g;
}

/* Publishes `ng` as the serving generation.  Learning recorded in the old
 * one since `ng` was built is taken over under the lock that on_complete
 * uses, so that no outcome falls between the two. */
static void gen_swap(server *s, gen *ng)
{
    pthread_mutex_lock(&s->gen_lock);
    gen *old = s->cur;
    ng->id = ++s->gen_seq;
    if (old) {
        pattern_list l;
        registry_all(ng->reg, &l);
        for (size_t i = 0; i < l.count; i++) {
            pattern *p;
            if (registry_get(old->reg, l.items[i]->name, &p) == NDF_OK) {
                pattern_adopt_learning(l.items[i], p);
                pattern_unref(p);
            }
        }
        pattern_list_free(&l);
        s->old = xrealloc(s->old, (s->nold + 1) * sizeof *s->old);
        s->old[s->nold++] = old;
    }
    s->cur = ng;
    pthread_mutex_unlock(&s->gen_lock);
}

static void gen_track(gen *g, record *r)
{
    pthread_mutex_lock(&g->lock);
    g->runs = xrealloc(g->runs, (g->nruns + 1) * sizeof *g->runs);
    g->runs[g->nruns++] = record_ref(r);
    pthread_mutex_unlock(&g->lock);
}

static void ring_put(server *s, record *r)
{
    strbuf j, t;
    sb_init(&j);
    sb_init(&t);
    record_to_json(r, &j);
    record_to_text(r, &t);
    pthread_mutex_lock(&s->gen_lock);
    snapshot *sn = &s->ring[s->ring_next++ % RING_SIZE];
    free(sn->json);
    free(sn->text);
    snprintf(sn->id, sizeof sn->id, "%s", r->id);
    sn->json = sb_steal(&j);
    sn->text = sb_steal(&t);
    pthread_mutex_unlock(&s->gen_lock);
}

/* Drops the runs of `g` that are done (keeping a snapshot of each, so that
 * `status` outlives the generation); returns how many are still running.
 * Waiting 0 s lets the executor settle an execution that overran. */
static size_t gen_prune(server *s, gen *g)
{
    pthread_mutex_lock(&g->lock);
    size_t k = 0;
    record **done = NULL;
    size_t ndone = 0;
    for (size_t i = 0; i < g->nruns; i++) {
        record *r = g->runs[i];
        if (atomic_load(&r->done) || executor_wait(g->ex, r, 0)) {
            done = xrealloc(done, (ndone + 1) * sizeof *done);
            done[ndone++] = r;
        } else {
            g->runs[k++] = r;
        }
    }
    g->nruns = k;
    pthread_mutex_unlock(&g->lock);
    for (size_t i = 0; i < ndone; i++) {
        ring_put(s, done[i]);
        record_unref(done[i]);
    }
    free(done);
    return k;
}

/* Housekeeping (under `world`): frees old generations nobody uses and whose
 * executions are done, then unloads the plugins that freed. */
static void reap(server *s)
{
    gen *cur = gen_current(s);
    if (cur) {
        gen_prune(s, cur);
        gen_release(s, cur);
    }
    for (;;) {
        gen *victim = NULL;
        pthread_mutex_lock(&s->gen_lock);
        for (size_t i = 0; i < s->nold; i++) {
            gen *g = s->old[i];
            if (atomic_load(&g->refs) > 0)
                continue;
            pthread_mutex_unlock(&s->gen_lock);
            size_t running = gen_prune(s, g);
            pthread_mutex_lock(&s->gen_lock);
            if (running || atomic_load(&g->refs) > 0)
                continue;
            victim = g;
            memmove(&s->old[i], &s->old[i + 1], (s->nold - i - 1) * sizeof *s->old);
            s->nold--;
            break;
        }
        pthread_mutex_unlock(&s->gen_lock);
        if (!victim)
            break;
        unsigned long id = victim->id;
        gen_free(victim);
        log_msg(NDF_LOG_DEBUG, "generation %lu freed", id);
    }
    loader_collect(s->ld);
}

/* ---- reload ---- */

typedef struct reload_result {
    int ok;
    int config_status; /* 0 not asked, 1 reloaded, -1 kept (errors) */
    size_t plugins_changed;
    unsigned long generation;
    char *error; /* malloc'ed, or NULL */
} reload_result;

static void watch_dirs(server *s, char **dirs, size_t n);

static char **plugin_dirs(server *s, config *cfg, size_t *n)
{
    config *saved = s->a->cfg;
    s->a->cfg = cfg;
    char **d = app_plugin_dirs(s->a, n);
    s->a->cfg = saved;
    return d;
}

/* A reload as a transaction (under `world`): with `with_config`, the
 * configuration file is read again and a generation is built from it; any
 * error keeps the old configuration.  Plugins are rescanned either way; if
 * any changed and no new configuration took effect, the generation is
 * rebuilt from the serving configuration. */
static void do_reload(server *s, int with_config, reload_result *res)
{
    memset(res, 0, sizeof *res);
    strbuf why;
    sb_init(&why);
    gen *cur = s->cur; /* changes only under `world`, which we hold */
    config *ncfg = NULL;
    if (with_config) {
        int rc = config_load(s->a->config_path, &ncfg);
        if (rc) {
            for (size_t i = 0; ncfg && i < ncfg->ndiags; i++)
                if (ncfg->diags[i].is_error)
                    why_add(&why, ncfg->diags[i].text);
            if (!why.len)
                why_add(&why, err_msg());
            config_free(ncfg);
            ncfg = NULL;
            res->config_status = -1;
        }
    }
    size_t ndirs;
    char **dirs = plugin_dirs(s, ncfg ? ncfg : cur->cr->cfg, &ndirs);
    res->plugins_changed = loader_rescan(s->ld, dirs, ndirs);
    gen *ng = NULL;
    if (ncfg) {
        cfgref *cr = cfgref_new(ncfg);
        ng = gen_build(s, cr, cur, 1, &why);
        cfgref_unref(cr);
        if (ng) {
            res->config_status = 1;
            watch_dirs(s, dirs, ndirs);
        } else {
            res->config_status = -1;
        }
    }
    if (!ng && res->plugins_changed) {
        strbuf w2;
        sb_init(&w2);
        ng = gen_build(s, cur->cr, cur, 0, &w2);
        if (!ng)
            why_add(&why, w2.buf ? w2.buf : "cannot build a generation");
        sb_free(&w2);
    }
    if (ng)
        gen_swap(s, ng);
    res->generation = s->cur->id;
    res->ok = res->config_status >= 0 && (ng || !res->plugins_changed);
    if (why.len) {
        res->error = sb_steal(&why);
        log_msg(NDF_LOG_ERROR, "reload: %s%s",
                res->config_status < 0 ? "the configuration keeps serving: " : "", res->error);
    }
    sb_free(&why);
    if (ng)
        log_msg(NDF_LOG_INFO, "reload: generation %lu serves (%s%zu plugin change%s)",
                res->generation, res->config_status > 0 ? "new configuration, " : "",
                res->plugins_changed, res->plugins_changed == 1 ? "" : "s");
    if (res->ok)
        atomic_fetch_add(&s->reloads_ok, 1);
    else
        atomic_fetch_add(&s->reloads_failed, 1);
    reap(s);
}

/* ---- responses ---- */

static void send_line(int fd, cJSON *resp)
{
    char *text = cJSON_PrintUnformatted(resp);
    if (!text)
        return;
    size_t len = strlen(text);
    text[len] = '\n'; /* replaces the NUL; cJSON allocated len + 1 */
    const char *p = text;
    size_t left = len + 1;
    while (left) {
        ssize_t w = send(fd, p, left, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        left -= (size_t)w;
    }
    cJSON_free(text);
}

static cJSON *resp_error(int status, const char *fmt, ...) ATTR_PRINTF(2, 3);
static cJSON *resp_error(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddBoolToObject(r, "ok", 0);
    cJSON_AddStringToObject(r, "error", msg);
    cJSON_AddStringToObject(r, "status", ndf_status_name(status));
    cJSON_AddNumberToObject(r, "exit", exit_code_for(status));
    free(msg);
    return r;
}

static cJSON *resp_ok(void)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddBoolToObject(r, "ok", 1);
    return r;
}

/* Raw JSON from our own renderers: one line (newlines, which JSON allows
 * only between tokens or escaped in strings, become spaces). */
static void add_raw(cJSON *obj, const char *key, char *json)
{
    for (char *c = json; *c; c++)
        if (*c == '\n')
            *c = ' ';
    cJSON_AddRawToObject(obj, key, json);
}

static void add_record(cJSON *resp, record *r)
{
    strbuf sb;
    sb_init(&sb);
    record_to_json(r, &sb);
    char *j = sb_steal(&sb);
    add_raw(resp, "record", j);
    free(j);
    record_to_text(r, &sb);
    char *t = sb_steal(&sb);
    cJSON_AddStringToObject(resp, "text", t);
    free(t);
}

/* ---- request helpers ---- */

/* Optional member `key` of type `want` (cJSON type bit); 0 if absent or
 * right, -1 (with *resp set) if of another type. */
static int member(const cJSON *req, const char *key, int want, const cJSON **out, cJSON **resp)
{
    static const struct {
        int t;
        const char *name;
    } names[] = {{cJSON_String, "a string"},
                 {cJSON_Number, "a number"},
                 {cJSON_True | cJSON_False, "true or false"},
                 {cJSON_Object, "an object"},
                 {cJSON_Array, "an array"}};
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (v->type & want) {
        *out = v;
        return 0;
    }
    const char *n = "?";
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (names[i].t & want)
            n = names[i].name;
    *resp = resp_error(NDF_ERR_INVALID, "bad request: \"%s\" must be %s", key, n);
    return -1;
}

static int required_string(const cJSON *req, const char *key, const char **out, cJSON **resp)
{
    const cJSON *v;
    if (member(req, key, cJSON_String, &v, resp))
        return -1;
    if (!v || !*v->valuestring) {
        *resp = resp_error(NDF_ERR_INVALID, "bad request: \"%s\" (a string) is required", key);
        return -1;
    }
    *out = v->valuestring;
    return 0;
}

/* Finds execution `id` (NULL: the latest) among the live generations: a
 * reference, or NULL. */
static record *find_live(server *s, const char *id)
{
    record *r = NULL;
    pthread_mutex_lock(&s->gen_lock);
    if (s->cur)
        r = executor_find(s->cur->ex, id);
    for (size_t i = s->nold; !r && id && i-- > 0;)
        r = executor_find(s->old[i]->ex, id);
    pthread_mutex_unlock(&s->gen_lock);
    return r;
}

/* ---- requests ---- */

/* seed execute_with_fallback: the record of the pattern used, and the
 * primary's when the fallback ran. */
static cJSON *run_fallback(server *s, const char *name, const char *fallback,
                           const ndf_context *ctx, double timeout, unsigned flags)
{
    gen *g = gen_current(s);
    fallback_result fr;
    int rc = executor_execute_with_fallback(g->ex, name, fallback, ctx, timeout, flags, &fr);
    unsigned long gid = g->id;
    gen_release(s, g);
    record *used = fr.fallback ? fr.fallback : fr.primary;
    cJSON *resp;
    if (!used) {
        resp = resp_error(rc, "%s", err_msg());
    } else {
        if (fr.fallback) {
            pthread_mutex_lock(&fr.fallback->lock);
            if (!fr.fallback->fallback_from) {
                fr.fallback->fallback_from = xstrdup(name);
                fr.fallback->fallback_cause = xstrdup(fallback_cause_name(fr.cause));
            }
            pthread_mutex_unlock(&fr.fallback->lock);
        }
        resp = resp_ok();
        cJSON_AddStringToObject(resp, "id", used->id);
        cJSON_AddStringToObject(resp, "status", ndf_status_name(rc));
        cJSON_AddNumberToObject(resp, "exit", exit_code_for(rc));
        cJSON_AddNumberToObject(resp, "generation", (double)gid);
        cJSON_AddStringToObject(resp, "used", fr.used ? fr.used : name);
        add_record(resp, used);
    }
    if (fr.cause != FALLBACK_NONE && used) {
        cJSON_AddStringToObject(resp, "fallback_cause", fallback_cause_name(fr.cause));
        if (fr.primary_error)
            cJSON_AddStringToObject(resp, "primary_error", fr.primary_error);
        if (fr.primary && fr.fallback) {
            strbuf sb;
            sb_init(&sb);
            record_to_json(fr.primary, &sb);
            char *j = sb_steal(&sb);
            add_raw(resp, "primary", j);
            free(j);
        }
    }
    fallback_result_free(&fr);
    return resp;
}

static cJSON *req_run(server *s, const cJSON *req)
{
    cJSON *resp = NULL;
    const char *name;
    const cJSON *jctx, *jtimeout, *jforce, *jasync;
    if (required_string(req, "pattern", &name, &resp) ||
        member(req, "context", cJSON_Object, &jctx, &resp) ||
        member(req, "timeout", cJSON_Number, &jtimeout, &resp) ||
        member(req, "force", cJSON_True | cJSON_False, &jforce, &resp) ||
        member(req, "async", cJSON_True | cJSON_False, &jasync, &resp))
        return resp;
    ndf_context *ctx = NULL;
    if (jctx) {
        char *text = cJSON_PrintUnformatted(jctx);
        int rc = context_from_json(text, "request context", &ctx);
        cJSON_free(text);
        if (rc)
            return resp_error(rc, "%s", err_msg());
    } else {
        ctx = context_new("", "", NDF_PRIORITY_HIGHEST);
    }
    double timeout = jtimeout ? jtimeout->valuedouble : 0;
    if (jtimeout && !(timeout >= 0 && isfinite(timeout))) {
        context_free(ctx);
        return resp_error(NDF_ERR_INVALID, "bad request: \"timeout\" must be >= 0 seconds");
    }
    unsigned flags = jforce && cJSON_IsTrue(jforce) ? EXEC_FORCE : 0;
    const cJSON *jfb;
    if (member(req, "fallback", cJSON_String, &jfb, &resp)) {
        context_free(ctx);
        return resp;
    }
    if (jfb && jasync && cJSON_IsTrue(jasync)) {
        context_free(ctx);
        return resp_error(NDF_ERR_INVALID, "bad request: \"fallback\" cannot be \"async\"");
    }
    if (jfb) {
        resp = run_fallback(s, name, jfb->valuestring, ctx, timeout, flags);
        context_free(ctx);
        return resp;
    }
    gen *g = gen_current(s);
    record *r = NULL;
    int rc = executor_start(g->ex, name, ctx, timeout, flags, &r);
    context_free(ctx);
    if (rc) {
        resp = resp_error(rc, "%s", err_msg());
        gen_release(s, g);
        return resp;
    }
    gen_track(g, r);
    /* a RUNNING row, so that crash recovery and `ndf runs` see it */
    store *hs = history_app(&g->cr->cfg->set);
    if (hs && history_begin(hs, r, STORE_ORIGIN_CTL) != NDF_OK)
        log_msg(NDF_LOG_ERROR, "execution %s: %s", r->id, err_msg());
    unsigned long gid = g->id;
    if (jasync && cJSON_IsTrue(jasync)) {
        gen_release(s, g);
        resp = resp_ok();
        cJSON_AddStringToObject(resp, "id", r->id);
        cJSON_AddNumberToObject(resp, "generation", (double)gid);
        record_unref(r);
        return resp;
    }
    executor_wait(g->ex, r, -1);
    gen_release(s, g);
    resp = resp_ok();
    cJSON_AddStringToObject(resp, "id", r->id);
    cJSON_AddStringToObject(resp, "status", ndf_status_name(r->status));
    cJSON_AddNumberToObject(resp, "exit", exit_code_for(r->status));
    cJSON_AddNumberToObject(resp, "generation", (double)gid);
    add_record(resp, r);
    record_unref(r);
    return resp;
}

static cJSON *req_status(server *s, const cJSON *req)
{
    cJSON *resp = NULL;
    const cJSON *jid;
    if (member(req, "id", cJSON_String, &jid, &resp))
        return resp;
    const char *id = jid && *jid->valuestring ? jid->valuestring : NULL;
    record *r = find_live(s, id);
    if (r) {
        resp = resp_ok();
        add_record(resp, r);
        record_unref(r);
        return resp;
    }
    if (id) {
        pthread_mutex_lock(&s->gen_lock);
        for (size_t i = 0; i < RING_SIZE && !resp; i++)
            if (s->ring[i].json && strcmp(s->ring[i].id, id) == 0) {
                resp = resp_ok();
                char *j = xstrdup(s->ring[i].json);
                add_raw(resp, "record", j);
                free(j);
                cJSON_AddStringToObject(resp, "text", s->ring[i].text);
            }
        pthread_mutex_unlock(&s->gen_lock);
    }
    if (!resp)
        resp = resp_error(NDF_ERR_NOT_FOUND, id ? "no execution with id '%s'%s" : "%s%s",
                          id ? id : "no execution has run yet",
                          id ? " (running or among the recently finished)" : "");
    return resp;
}

static cJSON *req_cancel(server *s, const cJSON *req)
{
    cJSON *resp = NULL;
    const char *id;
    if (required_string(req, "id", &id, &resp))
        return resp;
    int rc = NDF_ERR_NOT_FOUND;
    pthread_mutex_lock(&s->gen_lock);
    if (s->cur)
        rc = executor_cancel(s->cur->ex, id);
    for (size_t i = 0; rc && i < s->nold; i++)
        rc = executor_cancel(s->old[i]->ex, id);
    pthread_mutex_unlock(&s->gen_lock);
    if (rc)
        return resp_error(NDF_ERR_NOT_FOUND, "no running execution with id '%s'", id);
    resp = resp_ok();
    cJSON_AddStringToObject(resp, "id", id);
    return resp;
}

/* seed trigger_rollback on a finished execution: the pattern type's
 * rollback(), run on the record's root node. */
static cJSON *req_rollback(server *s, const cJSON *req)
{
    cJSON *resp = NULL;
    const char *id;
    const cJSON *jlevel, *jtarget;
    if (required_string(req, "id", &id, &resp) ||
        member(req, "level", cJSON_String, &jlevel, &resp) ||
        member(req, "target", cJSON_String, &jtarget, &resp))
        return resp;
    record *r = find_live(s, id);
    if (!r)
        return resp_error(NDF_ERR_NOT_FOUND,
                          "no execution with id '%s' (rollback needs one "
                          "of the recently finished executions)",
                          id);
    if (!atomic_load(&r->done)) {
        record_unref(r);
        return resp_error(NDF_ERR_INVALID, "execution '%s' is still running: cancel it or wait",
                          id);
    }
    pattern *p = r->root->pat;
    const ndf_pattern_type_def *d = p && p->type ? p->type->def.ptype : NULL;
    int has = d && d->size >= offsetof(ndf_pattern_type_def, rollback) + sizeof d->rollback &&
              d->rollback;
    if (!has) {
        resp = resp_error(NDF_ERR_INVALID, "pattern type '%s' of '%s' has no rollback",
                          p && p->type ? p->type->name : "?", r->root->name);
        record_unref(r);
        return resp;
    }
    err_clear();
    int rc =
        d->rollback(&host_services, r->root, p->instance, jlevel ? jlevel->valuestring : "pattern",
                    jtarget ? jtarget->valuestring : NULL);
    if (rc > 0 || rc < NDF_STATUS_MIN)
        rc = NDF_ERR_EXECUTION;
    if (rc) {
        resp = resp_error(rc, "rollback of '%s' (%s): %s", r->root->name, id,
                          *err_msg() ? err_msg() : ndf_status_name(rc));
    } else {
        resp = resp_ok();
        add_record(resp, r);
    }
    record_unref(r);
    return resp;
}

static char *write_context_file(const cJSON *jctx)
{
    const char *dir = getenv("NDF_RUNTIME_DIR");
    char *tmpl = xasprintf("%s/ctl-context.XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(tmpl);
    if (fd < 0) {
        free(tmpl);
        return NULL;
    }
    char *text = cJSON_PrintUnformatted(jctx);
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    cJSON_free(text);
    close(fd);
    if (w != (ssize_t)len) {
        unlink(tmpl);
        free(tmpl);
        return NULL;
    }
    return tmpl;
}

/* The read-only commands run exactly as `ndf COMMAND ARGS` would, on the
 * serving generation, with their stdout and stderr captured: the client
 * prints them, so the output formats and exit codes are the same. */
static cJSON *req_forward(server *s, const cJSON *req, const server_command *sc)
{
    cJSON *resp = NULL;
    const cJSON *jargs, *jctx;
    if (member(req, "args", cJSON_Array, &jargs, &resp) ||
        member(req, "context", cJSON_Object, &jctx, &resp))
        return resp;
    size_t n = jargs ? (size_t)cJSON_GetArraySize(jargs) : 0;
    char **argv = xcalloc(n + 4, sizeof *argv);
    size_t argc = 0;
    argv[argc++] = xstrdup(sc->name);
    const cJSON *e;
    cJSON_ArrayForEach(e, jargs)
    {
        if (!cJSON_IsString(e)) {
            for (size_t i = 0; i < argc; i++)
                free(argv[i]);
            free(argv);
            return resp_error(NDF_ERR_INVALID, "bad request: \"args\" must be an array of "
                                               "strings");
        }
        /* a context comes in the "context" member: a file named here would
         * be read by the server, and "-" its standard input */
        if (strncmp(e->valuestring, "--context", 9) == 0) {
            for (size_t i = 0; i < argc; i++)
                free(argv[i]);
            free(argv);
            return resp_error(NDF_ERR_INVALID, "bad request: pass the context as the "
                                               "\"context\" member, not --context");
        }
        argv[argc++] = xstrdup(e->valuestring);
    }
    char *ctxfile = NULL;
    if (jctx) {
        ctxfile = write_context_file(jctx);
        if (!ctxfile) {
            for (size_t i = 0; i < argc; i++)
                free(argv[i]);
            free(argv);
            return resp_error(NDF_ERR_IO, "cannot write the context to a temporary file: %s",
                              strerror(errno));
        }
        argv[argc++] = xstrdup("--context");
        argv[argc++] = xstrdup(ctxfile);
    }
    /* getopt permutes its argv: hand it a copy, free the originals */
    char **args_copy = xcalloc(argc + 1, sizeof *args_copy);
    memcpy(args_copy, argv, argc * sizeof *argv);

    pthread_mutex_lock(&s->world);
    gen *g = gen_current(s);
    app a = {
        .config_path = s->a->config_path,
        .config_explicit = s->a->config_explicit,
        .verbosity = s->a->verbosity,
        .cfg = g->cr->cfg,
        .ld = s->ld,
        .reg = g->reg,
    };
    char *out = NULL, *err = NULL;
    size_t outlen = 0, errlen = 0;
    FILE *fo = open_memstream(&out, &outlen), *fe = open_memstream(&err, &errlen);
    FILE *saved_out = stdout, *saved_err = stderr;
    int rc = EXIT_IO;
    if (fo && fe) {
        stdout = fo;
        stderr = fe;
        optind = 0;
        rc = sc->fn(&a, (int)argc, args_copy);
        stdout = saved_out;
        stderr = saved_err;
    }
    if (fo)
        fclose(fo);
    if (fe)
        fclose(fe);
    gen_release(s, g);
    pthread_mutex_unlock(&s->world);

    if (ctxfile) {
        unlink(ctxfile);
        free(ctxfile);
    }
    for (size_t i = 0; i < argc; i++)
        free(argv[i]);
    free(argv);
    free(args_copy);
    resp = resp_ok();
    cJSON_AddNumberToObject(resp, "exit", rc);
    cJSON_AddStringToObject(resp, "stdout", out ? out : "");
    cJSON_AddStringToObject(resp, "stderr", err ? err : "");
    free(out);
    free(err);
    return resp;
}

static cJSON *req_reload(server *s)
{
    reload_result res;
    pthread_mutex_lock(&s->world);
    do_reload(s, 1, &res);
    pthread_mutex_unlock(&s->world);
    cJSON *resp;
    if (res.ok) {
        resp = resp_ok();
    } else {
        resp = resp_error(res.config_status < 0 ? NDF_ERR_VALIDATION : NDF_ERR_EXECUTION, "%s",
                          res.error ? res.error : "reload failed");
    }
    cJSON_AddNumberToObject(resp, "generation", (double)res.generation);
    cJSON_AddNumberToObject(resp, "plugins_changed", (double)res.plugins_changed);
    cJSON_AddStringToObject(resp, "config",
                            res.config_status > 0   ? "reloaded"
                            : res.config_status < 0 ? "kept"
                                                    : "unchanged");
    free(res.error);
    return resp;
}

static cJSON *req_ping(server *s)
{
    cJSON *resp = resp_ok();
    pthread_mutex_lock(&s->gen_lock);
    cJSON_AddNumberToObject(resp, "generation", (double)s->cur->id);
    cJSON_AddNumberToObject(resp, "old_generations", (double)s->nold);
    pthread_mutex_unlock(&s->gen_lock);
    loader_gen_stats gs;
    pthread_mutex_lock(&s->world);
    loader_generations(s->ld, &gs);
    pthread_mutex_unlock(&s->world);
    cJSON_AddNumberToObject(resp, "pid", (double)getpid());
    cJSON_AddNumberToObject(resp, "plugins_retired", (double)gs.retired);
    cJSON_AddNumberToObject(resp, "plugins_unloaded", (double)gs.unloaded);
    cJSON_AddNumberToObject(resp, "plugins_not_unloadable", (double)gs.not_unloadable);
    cJSON_AddNumberToObject(resp, "reloads", (double)atomic_load(&s->reloads_ok));
    cJSON_AddNumberToObject(resp, "reloads_failed", (double)atomic_load(&s->reloads_failed));
    /* the store: "degraded" from a failed write until one succeeds */
    pthread_mutex_lock(&s->gen_lock);
    const settings *set = &s->cur->cr->cfg->set;
    pthread_mutex_unlock(&s->gen_lock);
    store *st = history_app(set);
    cJSON *js = cJSON_AddObjectToObject(resp, "store");
    if (js && st) {
        store_stats ss;
        store_get_stats(st, &ss);
        cJSON_AddStringToObject(js, "path", store_path(st));
        cJSON_AddStringToObject(js, "state", ss.degraded ? "degraded" : "ok");
        cJSON_AddNumberToObject(js, "transactions", (double)ss.transactions);
        cJSON_AddNumberToObject(js, "executions", (double)ss.executions);
    } else if (js) {
        cJSON_AddStringToObject(js, "state", "unavailable");
        cJSON_AddStringToObject(js, "error", err_msg());
    }
    return resp;
}

static void request_stop(server *s)
{
    atomic_store(&s->stopping, 1);
    char c = 's';
    ssize_t w = write(s->wake[1], &c, 1);
    (void)w;
}

static cJSON *handle(server *s, const char *line, size_t len)
{
    cJSON *req = cJSON_ParseWithLength(line, len);
    if (!req)
        return resp_error(NDF_ERR_INVALID, "malformed request: not valid JSON (one JSON object "
                                           "per line is expected)");
    cJSON *resp = NULL;
    const char *cmd = NULL;
    if (!cJSON_IsObject(req)) {
        resp = resp_error(NDF_ERR_INVALID, "malformed request: a JSON object is expected");
    } else if (!required_string(req, "cmd", &cmd, &resp)) {
        if (strcmp(cmd, "run") == 0)
            resp = req_run(s, req);
        else if (strcmp(cmd, "status") == 0)
            resp = req_status(s, req);
        else if (strcmp(cmd, "cancel") == 0)
            resp = req_cancel(s, req);
        else if (strcmp(cmd, "rollback") == 0)
            resp = req_rollback(s, req);
        else if (strcmp(cmd, "reload") == 0)
            resp = req_reload(s);
        else if (strcmp(cmd, "ping") == 0)
            resp = req_ping(s);
        else if (strcmp(cmd, "shutdown") == 0) {
            resp = resp_ok();
            request_stop(s);
        } else {
            for (size_t i = 0; !resp && i < s->o.ncommands; i++)
                if (strcmp(cmd, s->o.commands[i].name) == 0)
                    resp = req_forward(s, req, &s->o.commands[i]);
            if (!resp)
                resp = resp_error(NDF_ERR_INVALID,
                                  "unknown command '%.64s' (run, status, cancel, rollback, list, "
                                  "show, similar, analytics, export, plugins, config, reload, "
                                  "ping, shutdown)",
                                  cmd);
        }
    }
    cJSON_Delete(req);
    return resp;
}

/* ---- connections ---- */

static void conn_register(server *s, int fd, int add)
{
    pthread_mutex_lock(&s->conn_lock);
    for (int i = 0; i < MAX_CONNS; i++)
        if (s->conns[i] == (add ? -1 : fd)) {
            s->conns[i] = add ? fd : -1;
            break;
        }
    if (!add && --s->nconns == 0)
        pthread_cond_broadcast(&s->conn_cond);
    pthread_mutex_unlock(&s->conn_lock);
}

static void *conn_main(void *arg)
{
    conn *c = arg;
    server *s = c->srv;
    size_t cap = 65536, len = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        char *nl = len ? memchr(buf, '\n', len) : NULL;
        if (nl && (size_t)(nl - buf) > SERVER_MAX_LINE)
            nl = NULL, len = SERVER_MAX_LINE + 1; /* answered as over-long below */
        if (nl) {
            size_t n = (size_t)(nl - buf);
            size_t start = 0;
            while (start < n && (buf[start] == ' ' || buf[start] == '\t' || buf[start] == '\r'))
                start++;
            if (start < n) {
                cJSON *resp = handle(s, buf + start, n - start);
                send_line(c->fd, resp);
                cJSON_Delete(resp);
            }
            memmove(buf, nl + 1, len - n - 1);
            len -= n + 1;
            continue;
        }
        if (len > SERVER_MAX_LINE) {
            cJSON *resp = resp_error(NDF_ERR_INVALID,
                                     "request line longer than %u bytes; closing the connection",
                                     SERVER_MAX_LINE);
            send_line(c->fd, resp);
            cJSON_Delete(resp);
            log_msg(NDF_LOG_WARN, "client uid %u sent a request longer than %u bytes: closed",
                    (unsigned)c->uid, SERVER_MAX_LINE);
            break;
        }
        if (cap - len < 4096) {
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t r = recv(c->fd, buf + len, cap - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    free(buf);
    conn_register(s, c->fd, 0);
    close(c->fd);
    free(c);
    return NULL;
}

/* SO_PEERCRED: the server's own user and root may talk to it (and, with
 * server.group set, processes whose primary group is that group). */
static int peer_allowed(server *s, int fd, uid_t *uid_out)
{
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0)
        return 0;
    *uid_out = cr.uid;
    if (cr.uid == geteuid() || cr.uid == 0)
        return 1;
    gen *g = gen_current(s);
    const char *group = g->cr->cfg->set.socket_group;
    int ok = 0;
    if (group && *group) {
        struct group *gr = getgrnam(group);
        ok = gr && gr->gr_gid == cr.gid;
    }
    gen_release(s, g);
    return ok;
}

static void accept_one(server *s)
{
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    uid_t uid = (uid_t)-1;
    if (!peer_allowed(s, fd, &uid)) {
        cJSON *resp = resp_error(NDF_ERR_INVALID,
                                 "permission denied: uid %u may not use this ndf server (it "
                                 "serves uid %u and root)",
                                 (unsigned)uid, (unsigned)geteuid());
        send_line(fd, resp);
        cJSON_Delete(resp);
        close(fd);
        log_msg(NDF_LOG_WARN, "refused a connection from uid %u", (unsigned)uid);
        return;
    }
    pthread_mutex_lock(&s->conn_lock);
    int full = s->nconns >= MAX_CONNS;
    if (!full)
        s->nconns++;
    pthread_mutex_unlock(&s->conn_lock);
    if (full) {
        cJSON *resp =
            resp_error(NDF_ERR_RESOURCE, "too many connections (%d); try again", MAX_CONNS);
        send_line(fd, resp);
        cJSON_Delete(resp);
        close(fd);
        return;
    }
    conn_register(s, fd, 1);
    conn *c = xcalloc(1, sizeof *c);
    c->srv = s;
    c->fd = fd;
    c->uid = uid;
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 256 * 1024);
    if (pthread_create(&t, &at, conn_main, c) != 0) {
        log_msg(NDF_LOG_ERROR, "cannot start a connection thread: %s", strerror(errno));
        conn_register(s, fd, 0);
        close(fd);
        free(c);
    }
    pthread_attr_destroy(&at);
}

/* ---- the socket ---- */

int server_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int make_parent(const char *path)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash && slash != dir) {
        *slash = '\0';
        for (char *p = dir + 1;; p++) {
            if (*p != '/' && *p)
                continue;
            char c = *p;
            *p = '\0';
            if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
                rc = -1;
                break;
            }
            *p = c;
            if (!c)
                break;
        }
    }
    free(dir);
    return rc;
}

static int listen_socket(server *s)
{
    const char *path = s->socket_path;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        log_msg(NDF_LOG_ERROR, "socket path %s is too long (at most %zu bytes)", path,
                sizeof sa.sun_path - 1);
        return EXIT_USAGE;
    }
    strcpy(sa.sun_path, path);
    if (make_parent(path) != 0) {
        log_msg(NDF_LOG_ERROR, "cannot create the directory of %s: %s", path, strerror(errno));
        return EXIT_IO;
    }
    int probe = server_connect(path);
    if (probe >= 0) {
        close(probe);
        log_msg(NDF_LOG_ERROR, "another ndf server already listens on %s", path);
        return EXIT_IO;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            log_msg(NDF_LOG_ERROR,
                    "%s exists and is not a socket: remove it or set "
                    "server.socket elsewhere",
                    path);
            return EXIT_IO;
        }
        unlink(path); /* stale: its server is gone */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        log_msg(NDF_LOG_ERROR, "socket: %s", strerror(errno));
        return EXIT_IO;
    }
    mode_t old = umask(0177); /* born 0600: no window where others may connect */
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc != 0) {
        log_msg(NDF_LOG_ERROR, "cannot bind %s: %s", path, strerror(errno));
        close(fd);
        return EXIT_IO;
    }
    const char *group = s->cur->cr->cfg->set.socket_group;
    if (group && *group) {
        struct group *gr = getgrnam(group);
        if (!gr || chown(path, (uid_t)-1, gr->gr_gid) != 0 || chmod(path, 0660) != 0) {
            log_msg(NDF_LOG_ERROR, "cannot give %s to group '%s': %s", path, group,
                    gr ? strerror(errno) : "no such group");
            close(fd);
            unlink(path);
            return EXIT_IO;
        }
    }
    if (listen(fd, 128) != 0) {
        log_msg(NDF_LOG_ERROR, "listen on %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return EXIT_IO;
    }
    s->listen_fd = fd;
    return EXIT_OK;
}

/* ---- inotify ---- */

static void watch_dirs(server *s, char **dirs, size_t n)
{
    if (s->ino_fd < 0)
        return;
    for (size_t i = 0; i < s->nwds; i++)
        inotify_rm_watch(s->ino_fd, s->wds[i]);
    free(s->wds);
    s->wds = xcalloc(n ? n : 1, sizeof *s->wds);
    s->nwds = 0;
    for (size_t i = 0; i < n; i++) {
        int wd = inotify_add_watch(s->ino_fd, dirs[i],
                                   IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                                       IN_CREATE | IN_ONLYDIR);
        if (wd < 0)
            log_msg(NDF_LOG_WARN,
                    "cannot watch plugin directory %s: %s (reload with SIGHUP "
                    "or 'ndf ctl reload')",
                    dirs[i], strerror(errno));
        else
            s->wds[s->nwds++] = wd;
    }
}

/* Reads the pending events: 0 when none concerns a "*.so" file, 1 when
 * one was written or renamed into place, 2 when one went away (an installer
 * may be replacing it: `install` and `make install` unlink, then create). */
static int inotify_relevant(server *s)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    int relevant = 0;
    for (;;) {
        ssize_t n = read(s->ino_fd, buf, sizeof buf);
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            size_t l = ev->len ? strlen(ev->name) : 0;
            if (ev->mask & IN_Q_OVERFLOW)
                relevant = 1;
            /* IN_CREATE alone is a file still being written: wait for its
             * close (IN_CLOSE_WRITE) or rename (IN_MOVED_TO). */
            int so = l > 3 && ev->name[0] != '.' && strcmp(ev->name + l - 3, ".so") == 0;
            if (so && (ev->mask & (IN_MOVED_FROM | IN_DELETE)))
                relevant = 2;
            else if (so && (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) && relevant < 2)
                relevant = 1;
            p += sizeof *ev + ev->len;
        }
    }
    return relevant;
}

/* ---- shutdown ---- */

static size_t running_total(server *s)
{
    size_t n = 0;
    pthread_mutex_lock(&s->world);
    gen *cur = gen_current(s);
    n += gen_prune(s, cur);
    gen_release(s, cur);
    pthread_mutex_lock(&s->gen_lock);
    size_t nold = s->nold;
    gen **old = xcalloc(nold + 1, sizeof *old);
    memcpy(old, s->old, nold * sizeof *old);
    pthread_mutex_unlock(&s->gen_lock);
    for (size_t i = 0; i < nold; i++)
        n += gen_prune(s, old[i]);
    free(old);
    pthread_mutex_unlock(&s->world);
    return n;
}

static void cancel_all(server *s)
{
    pthread_mutex_lock(&s->gen_lock);
    gen **all = xcalloc(s->nold + 1, sizeof *all);
    size_t n = 0;
    all[n++] = s->cur;
    for (size_t i = 0; i < s->nold; i++)
        all[n++] = s->old[i];
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&all[i]->lock);
        for (size_t j = 0; j < all[i]->nruns; j++)
            if (!atomic_load(&all[i]->runs[j]->done))
                executor_cancel(all[i]->ex, all[i]->runs[j]->id);
        pthread_mutex_unlock(&all[i]->lock);
    }
    pthread_mutex_unlock(&s->gen_lock);
    free(all);
}

static void shutdown_server(server *s)
{
    log_msg(NDF_LOG_INFO, "shutting down: no new connections");
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        s->listen_fd = -1;
        unlink(s->socket_path);
    }
    /* Connections end after the request they are in; idle ones now. */
    pthread_mutex_lock(&s->conn_lock);
    for (int i = 0; i < MAX_CONNS; i++)
        if (s->conns[i] >= 0)
            shutdown(s->conns[i], SHUT_RD);
    pthread_mutex_unlock(&s->conn_lock);

    double deadline = now_mono() + s->o.grace;
    size_t running;
    int cancelled = 0;
    while ((running = running_total(s)) > 0) {
        if (!cancelled && now_mono() >= deadline) {
            log_msg(NDF_LOG_WARN, "%zu execution%s still running after %.1fs: cancelling", running,
                    running == 1 ? "" : "s", s->o.grace);
            cancel_all(s);
            cancelled = 1;
            gen *g = gen_current(s);
            deadline = now_mono() + g->cr->cfg->set.kill_grace + 2;
            gen_release(s, g);
        } else if (cancelled && now_mono() >= deadline) {
            log_msg(NDF_LOG_WARN, "%zu execution%s did not stop; leaving them", running,
                    running == 1 ? "" : "s");
            break;
        }
        usleep(20000);
    }
    pthread_mutex_lock(&s->conn_lock);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    while (s->nconns > 0)
        if (pthread_cond_timedwait(&s->conn_cond, &s->conn_lock, &ts) != 0)
            break;
    int left = s->nconns;
    pthread_mutex_unlock(&s->conn_lock);
    if (left)
        log_msg(NDF_LOG_WARN, "%d connection%s still open at exit", left, left == 1 ? "" : "s");
    /* nothing to save: every execution was committed before it was answered */
}

/* ---- the main loop ---- */

int server_run(app *a, const server_opts *opts)
{
    server *s = xcalloc(1, sizeof *s);
    s->a = a;
    s->o = *opts;
    if (s->o.grace <= 0)
        s->o.grace = 30;
    if (s->o.debounce <= 0)
        s->o.debounce = 0.2;
    s->listen_fd = s->sig_fd = s->ino_fd = s->wake[0] = s->wake[1] = -1;
    pthread_mutex_init(&s->world, NULL);
    pthread_mutex_init(&s->gen_lock, NULL);
    pthread_mutex_init(&s->conn_lock, NULL);
    pthread_cond_init(&s->conn_cond, NULL);
    for (int i = 0; i < MAX_CONNS; i++)
        s->conns[i] = -1;
    int rc = EXIT_OK;

    /* Signals are read from a signalfd by this thread; every thread
     * started from here on inherits the mask. */
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
        rc = EXIT_IO;
        goto out;
    }

    rc = app_load(a, APP_PLUGINS);
    if (rc)
        goto out;
    s->ld = a->ld;
    a->ld = NULL; /* the server frees it, after the generations using it */
    config *cfg = a->cfg;
    a->cfg = NULL;
    cfgref *cr = cfgref_new(cfg);
    strbuf why;
    sb_init(&why);
    gen *g = gen_build(s, cr, NULL, 1, &why);
    cfgref_unref(cr);
    if (!g) {
        fprintf(stderr, "%s\n", why.buf ? why.buf : "cannot build the patterns");
        sb_free(&why);
        rc = EXIT_USAGE;
        goto out;
    }
    sb_free(&why);
    gen_swap(s, g);

    s->socket_path = xstrdup(opts->socket_path && *opts->socket_path ? opts->socket_path
                                                                     : g->cr->cfg->set.socket_path);
    if ((rc = listen_socket(s)) != EXIT_OK)
        goto out;
    if (s->o.watch) {
        s->ino_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (s->ino_fd < 0)
            log_msg(NDF_LOG_WARN,
                    "inotify: %s; plugins reload only on SIGHUP or 'ndf ctl "
                    "reload'",
                    strerror(errno));
        size_t ndirs;
        char **dirs = plugin_dirs(s, g->cr->cfg, &ndirs);
        watch_dirs(s, dirs, ndirs);
    }
    log_msg(NDF_LOG_INFO, "serving on %s (pid %ld, %zu pattern%s, %zu plugin file%s)",
            s->socket_path, (long)getpid(), registry_count(g->reg),
            registry_count(g->reg) == 1 ? "" : "s", loader_count(s->ld),
            loader_count(s->ld) == 1 ? "" : "s");

    double debounce_at = 0;
    while (!atomic_load(&s->stopping)) {
        int timeout = TICK_MS;
        if (debounce_at > 0) {
            double left = (debounce_at - now_mono()) * 1000;
            timeout = left < 0 ? 0 : left < timeout ? (int)left + 1 : timeout;
        }
        struct pollfd pf[4] = {{s->listen_fd, POLLIN, 0},
                               {s->sig_fd, POLLIN, 0},
                               {s->wake[0], POLLIN, 0},
                               {s->ino_fd, POLLIN, 0}};
        int n = poll(pf, s->ino_fd >= 0 ? 4 : 3, timeout);
        if (n < 0 && errno != EINTR) {
            log_msg(NDF_LOG_ERROR, "poll: %s", strerror(errno));
            break;
        }
        if (n > 0 && (pf[1].revents & POLLIN)) {
            struct signalfd_siginfo si;
            while (read(s->sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
                if (si.ssi_signo == SIGHUP) {
                    log_msg(NDF_LOG_INFO, "SIGHUP: reloading the configuration and plugins");
                    reload_result res;
                    pthread_mutex_lock(&s->world);
                    do_reload(s, 1, &res);
                    pthread_mutex_unlock(&s->world);
                    free(res.error);
                } else {
                    log_msg(NDF_LOG_INFO, "%s received",
                            si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
                    atomic_store(&s->stopping, 1);
                }
            }
        }
        if (n > 0 && (pf[2].revents & POLLIN)) {
            char b[64];
            while (read(s->wake[0], b, sizeof b) > 0)
                ;
        }
        if (atomic_load(&s->stopping))
            break;
        if (n > 0 && s->ino_fd >= 0 && (pf[3].revents & POLLIN)) {
            int rel = inotify_relevant(s);
            /* A file that went away gets a second to come back before its
             * plugin is retired, so an unlink-then-create install does not
             * take its patterns away for a moment. */
            double quiet =
                rel == 2 && s->o.debounce < REMOVAL_GRACE ? REMOVAL_GRACE : s->o.debounce;
            if (rel && now_mono() + quiet > debounce_at)
                debounce_at = now_mono() + quiet;
        }
        if (n > 0 && (pf[0].revents & POLLIN))
            for (int i = 0; i < 64; i++) {
                int before = s->nconns;
                accept_one(s);
                if (s->nconns == before)
                    break;
            }
        if (debounce_at > 0 && now_mono() >= debounce_at) {
            debounce_at = 0;
            reload_result res;
            pthread_mutex_lock(&s->world);
            do_reload(s, 0, &res);
            pthread_mutex_unlock(&s->world);
            free(res.error);
        }
        pthread_mutex_lock(&s->world);
        reap(s);
        pthread_mutex_unlock(&s->world);
    }
    shutdown_server(s);
    rc = EXIT_OK;

out:
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        unlink(s->socket_path);
    }
    /* Generations newest last; their executors stop before the plugins go. */
    pthread_mutex_lock(&s->gen_lock);
    gen **all = xcalloc(s->nold + 1, sizeof *all);
    size_t nall = 0;
    for (size_t i = 0; i < s->nold; i++)
        all[nall++] = s->old[i];
    if (s->cur)
        all[nall++] = s->cur;
    s->nold = 0;
    s->cur = NULL;
    pthread_mutex_unlock(&s->gen_lock);
    int conns_left = s->nconns;
    if (!conns_left) {
        for (size_t i = 0; i < nall; i++)
            gen_free(all[i]);
        if (s->ld) {
            loader_collect(s->ld);
            loader_free(s->ld);
        }
        for (size_t i = 0; i < RING_SIZE; i++) {
            free(s->ring[i].json);
            free(s->ring[i].text);
        }
    }
    /* else: a connection thread still holds a generation; leave it all to
     * the process exit rather than free it under that thread. */
    free(all);
    if (s->sig_fd >= 0)
        close(s->sig_fd);
    if (s->ino_fd >= 0)
        close(s->ino_fd);
    if (s->wake[0] >= 0) {
        close(s->wake[0]);
        close(s->wake[1]);
    }
    free(s->wds);
    if (!conns_left) {
        free(s->old);
        free(s->socket_path);
        pthread_mutex_destroy(&s->world);
        pthread_mutex_destroy(&s->gen_lock);
        free(s);
    }
    return rc;
}

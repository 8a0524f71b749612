/* The runtime (see runtime.h): loading a command's world in order,
 * configuration -> plugins -> patterns -> executor, and freeing it in
 * reverse. */
#include "build-config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/runtime.h"
#include "app/define.h"
#include "model/build.h"
#include "exec/crash.h"
#include "exec/isolate.h"
#include "exec/monitor.h"
#include "exec/services.h"
#include "plugin/scanner.h"
#include "base/util.h"
#include "base/ztail.h"

/* The compiled-in plugin directory, when neither NDF_PLUGIN_PATH nor the
 * configuration names any. */
static char *const builtin_dirs[] = {(char *)PLUGINDIR};

static void report(runtime *rt, runtime_diag sev, const char *fmt, ...) ATTR_PRINTF(3, 4);
static void report(runtime *rt, runtime_diag sev, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    if (rt->report)
        rt->report(rt->report_opaque, sev, msg);
    else
        log_msg(sev == RT_DIAG_WARNING ? NDF_LOG_WARN : NDF_LOG_ERROR, "%s", msg);
    free(msg);
}

static void split_path(const char *s, char ***dirs, size_t *n)
{
    *dirs = NULL;
    *n = 0;
    while (s && *s) {
        const char *e = strchr(s, ':');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len) {
            *dirs = xrealloc(*dirs, (*n + 1) * sizeof **dirs);
            (*dirs)[(*n)++] = xstrndup(s, len);
        }
        s = e ? e + 1 : NULL;
    }
}

void runtime_init(runtime *rt, const char *config_path, int config_explicit,
                  runtime_report_fn report_fn, void *opaque)
{
    memset(rt, 0, sizeof *rt);
    rt->config_path = config_path;
    rt->config_explicit = config_explicit;
    rt->report = report_fn;
    rt->report_opaque = opaque;
    split_path(getenv("NDF_PLUGIN_PATH"), &rt->env_dirs, &rt->nenv_dirs);
}

void runtime_view(runtime *view, const runtime *base, config *cfg)
{
    runtime_init(view, base->config_path, base->config_explicit, base->report, base->report_opaque);
    view->cfg = cfg;
    view->ld = base->ld;
    view->st = base->st;
    view->storage_tried = 1; /* the base's verdict stands: never reopened */
    if (view->st)
        history_registry_seam(view->st, &view->seam);
    view->hook = base->hook;
}

void runtime_free(runtime *rt)
{
    /* first: it samples the executor's records into the store */
    history_progress_stop(rt->progress);
    unsigned left = 0;
    if (rt->ex && (rt->owned & RT_OWN_EXECUTOR))
        left = executor_free(rt->ex);
    /* A worker still inside a step (abandoned) runs code of the registry's
     * patterns and of their plugins: those are left to the process exit
     * rather than freed and unloaded under it.  The store is still closed,
     * so everything acknowledged is on disk. */
    if (left) {
        log_msg(NDF_LOG_WARN,
                "%u worker thread(s) still inside steps: their patterns and plugins stay loaded",
                left);
        rt->owned &= ~(unsigned)RT_OWN_REGISTRY;
    }
    if (pool_stuck_threads() > 0)
        rt->owned &= ~(unsigned)RT_OWN_LOADER;
    if (rt->reg && (rt->owned & RT_OWN_REGISTRY))
        registry_free(rt->reg);
    /* after the registry: its patterns pin the plugins they were built on */
    if (rt->ld && (rt->owned & RT_OWN_LOADER))
        loader_free(rt->ld);
    if (rt->st && (rt->owned & RT_OWN_STORAGE))
        store_close(rt->st);
    if (rt->cfg && (rt->owned & RT_OWN_CONFIG))
        config_free(rt->cfg);
    for (size_t i = 0; i < rt->nenv_dirs; i++)
        free(rt->env_dirs[i]);
    free(rt->env_dirs);
    free(rt->store_error);
    free(rt->crash_cause);
    memset(rt, 0, sizeof *rt);
}

config *runtime_take_config(runtime *rt)
{
    if (!(rt->owned & RT_OWN_CONFIG))
        return NULL; /* none, or a view's, which is not its to give */
    config *cfg = rt->cfg;
    rt->cfg = NULL;
    rt->owned &= ~(unsigned)RT_OWN_CONFIG;
    return cfg;
}

void runtime_abandon(runtime *rt, unsigned what)
{
    rt->owned &= ~what;
}

char *const *runtime_plugin_dirs(const runtime *rt, const settings *set, size_t *n)
{
    if (rt->nenv_dirs) {
        *n = rt->nenv_dirs;
        return rt->env_dirs;
    }
    if (set && set->nplugin_dirs) {
        *n = set->nplugin_dirs;
        return set->plugin_dirs;
    }
    *n = ARRAY_SIZE(builtin_dirs);
    return builtin_dirs;
}

store *runtime_store(runtime *rt)
{
    if (rt->st || !rt->cfg)
        return rt->st;
    if (rt->storage_tried) {
        err_set(NDF_ERR_IO, "%s", rt->store_error ? rt->store_error : "no store");
        return NULL;
    }
    rt->storage_tried = 1;
    store_opts o;
    history_opts(&rt->cfg->set, &o);
    /* The executions of an ndf that died of a signal are marked CRASHED
     * when the store opens: with its note's cause (signal, step, plugin). */
    long crash_pid;
    if (crash_note_peek(rt->cfg->set.storage_path, &crash_pid, &rt->crash_cause) == 0) {
        o.crash_pid = crash_pid;
        o.crash_cause = rt->crash_cause;
    }
    if (store_open(rt->cfg->set.storage_path, &o, &rt->st) != NDF_OK) {
        rt->st = NULL;
        rt->store_error = xstrdup(err_msg());
        if (!rt->store_needed)
            report(rt, RT_DIAG_WARNING, "%s", rt->store_error);
        err_set(NDF_ERR_IO, "%s", rt->store_error);
        return NULL;
    }
    rt->owned |= RT_OWN_STORAGE;
    /* the older part of large captured outputs waits beside the store
     * that will take it, not in memory */
    ztail_spill_dir(rt->cfg->set.storage_path);
    /* A crash note of the ndf that last died here is told once; this one
     * leaves its own if it dies. */
    char *note = crash_note_take(rt->cfg->set.storage_path);
    if (note) {
        report(rt, RT_DIAG_WARNING, "%s", note);
        free(note);
    }
    crash_arm(rt->cfg->set.storage_path);
    history_registry_seam(rt->st, &rt->seam);
    rt->hook.s = rt->st;
    return rt->st;
}

static int load_config(runtime *rt)
{
    if (rt->cfg)
        return rt->config_status;
    if (!rt->config_explicit && access(rt->config_path, F_OK) != 0 && errno == ENOENT) {
        /* No system configuration: run on defaults, as documented. */
        rt->cfg = xcalloc(1, sizeof *rt->cfg);
        settings_default(&rt->cfg->set);
        rt->owned |= RT_OWN_CONFIG;
        return NDF_OK;
    }
    int rc = config_load(rt->config_path, &rt->cfg);
    if (rt->cfg)
        rt->owned |= RT_OWN_CONFIG;
    for (size_t i = 0; rt->cfg && i < rt->cfg->ndiags; i++)
        report(rt, rt->cfg->diags[i].is_error ? RT_DIAG_ERROR : RT_DIAG_WARNING, "%s",
               rt->cfg->diags[i].text);
    if (rc && (!rt->cfg || rt->cfg->nerrors == 0))
        report(rt, RT_DIAG_FAILURE, "%s", err_msg());
    rt->config_status = rc;
    return rc;
}

static int load_plugins(runtime *rt)
{
    if (rt->ld)
        return NDF_OK;
    loader_opts lo = {
        .host = &host_services,
        .cache_dir = rt->cfg->set.cache_dir,
        .allow_insecure = rt->cfg->set.allow_insecure,
        .no_scan = !rt->cfg->set.scan_plugins,
        .verdict_dir = rt->cfg->set.verdict_dir,
        .scan_timeout = rt->cfg->set.scan_timeout,
        .index = 1,
        .lazy = rt->lazy_plugins,
    };
    rt->ld = loader_new(&lo);
    /* Before any pattern binds a step: the binding decides where it runs. */
    const settings *set = &rt->cfg->set;
    isolate_opts io = {
        .mode = (isolate_mode)set->isolation,
        .isolate = set->isolate,
        .nisolate = set->nisolate,
        .trust = set->trust,
        .ntrust = set->ntrust,
        .memory_limit_mb = set->worker_memory_mb,
        .cpu_limit_s = set->worker_cpu_s,
        .max_idle = set->threads,
    };
    isolate_configure(&io, scanner_program());
    if (!rt->ld) {
        report(rt, RT_DIAG_FAILURE, "%s", err_msg());
        return NDF_ERR_IO;
    }
    rt->owned |= RT_OWN_LOADER;
    size_t n;
    char *const *dirs = runtime_plugin_dirs(rt, &rt->cfg->set, &n);
    loader_scan(rt->ld, dirs, n);
    return NDF_OK;
}

static void report_build(void *opaque, const char *msg)
{
    report(opaque, RT_DIAG_ERROR, "%s", msg);
}

/* Lays the store's run-time definitions over the configuration's, once
 * per configuration (a server's plugin reload rebuilds from one already
 * overlaid).  A row that no longer checks is an error of its pattern. */
static void overlay(runtime *rt)
{
    if (rt->cfg->overlaid || rt->no_store || !runtime_store(rt))
        return;
    strbuf why;
    sb_init(&why);
    size_t bad = 0;
    /* read before the rows: a change between the two reads is then seen
     * as one still to take, never as one taken */
    rt->defs_read = store_defs_version(rt->st, &rt->defs_version) == NDF_OK;
    if (define_overlay_store(rt->cfg, rt->st, &bad, &why) != NDF_OK) {
        report(rt, RT_DIAG_WARNING, "run-time definitions not read: %s", err_msg());
    } else if (bad) {
        rt->pattern_errors += bad;
        for (char *line = why.buf, *next; line; line = next) {
            next = strchr(line, '\n');
            if (next)
                *next++ = 0;
            report(rt, RT_DIAG_ERROR, "%s", line);
        }
    }
    sb_free(&why);
}

int runtime_build_registry(runtime *rt, registry *prev)
{
    size_t overlay_errors = 0;
    if (!rt->cfg->overlaid) {
        size_t before = rt->pattern_errors;
        overlay(rt);
        overlay_errors = rt->pattern_errors - before;
    }
    build_opts bo = {
        .ld = rt->ld,
        .set = &rt->cfg->set,
        /* learning state is read from, and paged back in from, the store */
        .store = !rt->no_store && runtime_store(rt) ? &rt->seam : NULL,
        .prev = prev,
        .report = report_build,
        .opaque = rt,
    };
    rt->reg = build_registry(&bo, rt->cfg->patterns, rt->cfg->npatterns, &rt->pattern_errors);
    rt->pattern_errors += overlay_errors;
    rt->owned |= RT_OWN_REGISTRY;
    return rt->pattern_errors ? NDF_ERR_VALIDATION : NDF_OK;
}

int runtime_start_executor(runtime *rt, void (*on_complete)(void *, pattern *, const record *),
                           void *opaque)
{
    const settings *s = &rt->cfg->set;
    executor_opts eo = {
        .threads = s->threads > 0 ? (unsigned)s->threads : 1,
        .default_timeout = s->default_timeout,
        .pattern_timeout = s->pattern_timeout,
        .max_timeout = s->max_timeout,
        .kill_grace = s->kill_grace,
        .confidence_threshold = s->confidence_threshold,
        .confidence_gate = s->confidence_gate,
        .reg = rt->reg,
        .on_complete = on_complete,
        .opaque = opaque,
        /* a server (its own on_complete) logs a failed end as an error */
        .fail_logged = on_complete != NULL,
    };
    if (!on_complete) {
        if (!runtime_store(rt)) {
            report(rt, RT_DIAG_FAILURE, "%s (nothing runs unrecorded)", err_msg());
            return NDF_ERR_IO;
        }
        eo.on_complete = history_on_complete;
        eo.opaque = &rt->hook;
    }
    if (rt->st) {
        eo.on_spawn = history_on_spawn;
        eo.spawn_arg = rt->st;
        /* every execution, whoever starts it, has its RUNNING row before
         * its first step, or does not run */
        rt->hook.s = rt->st;
        eo.on_start = history_on_start;
        eo.start_arg = &rt->hook;
    }
    monitor_set_counting(s->resources_system ? MONITOR_COUNT_SYSTEM : MONITOR_COUNT_NDF);
    rt->ex = executor_new(&eo);
    if (!rt->ex) {
        report(rt, RT_DIAG_FAILURE, "%s", err_msg());
        return NDF_ERR_RESOURCE;
    }
    rt->owned |= RT_OWN_EXECUTOR;
    /* without it a run is still recorded, only not while it runs */
    if (rt->st && rt->progress_on_demand)
        rt->progress = history_progress_new(rt->st, rt->ex, 0);
    else if (rt->st && !(rt->progress = history_progress_start(rt->st, rt->ex, 0)))
        report(rt, RT_DIAG_WARNING, "%s", err_msg());
    return NDF_OK;
}

int runtime_load(runtime *rt, unsigned what)
{
    int crc = load_config(rt), rc = NDF_OK;
    /* Errors confined to pattern definitions (each left out) still let
     * the other patterns be built and used, as a definition that fails to
     * build does; the configuration's status is returned all the same. */
    if (crc && !(rt->cfg && rt->cfg->nerrors > 0 && rt->cfg->nerrors == rt->cfg->npattern_errors))
        return crc;
    if (what & RT_NO_STORE)
        rt->no_store = 1;
    if ((what & RT_EXECUTOR) && !rt->no_store)
        rt->store_needed = 1;
    if (what & (RT_PLUGINS | RT_PATTERNS | RT_EXECUTOR)) {
        rc = load_plugins(rt);
        if (rc)
            return rc;
    }
    if ((what & (RT_PATTERNS | RT_EXECUTOR)) && !rt->reg)
        rc = runtime_build_registry(rt, NULL);
    if ((what & RT_EXECUTOR) && !rt->ex && !rc && !crc)
        rc = runtime_start_executor(rt, NULL, NULL);
    return crc ? crc : rc;
}

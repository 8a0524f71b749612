/* The runtime: the world a command runs in.  One struct owns the
 * configuration, the plugin loader, the store, the registry and the
 * executor, each loaded on demand in that order (configuration -> plugins
 * -> patterns through model/build), and is passed down instead of living in
 * globals.  A one-shot command loads what it needs into one; each
 * generation of `ndf serve` is a view that borrows the server's loader and
 * store and owns its registry and executor.  Diagnostics go to a
 * callback: this layer knows neither stdio nor exit codes. */
#ifndef NDF_RUNTIME_H
#define NDF_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"
#include "plugin/loader.h"
#include "model/pattern.h"
#include "model/registry.h"
#include "exec/executor.h"
#include "exec/record.h"
#include "store/history.h"

/* What runtime_load() loads; each implies those before it. */
enum {
    RT_CONFIG = 1,   /* the configuration file (defaults when the default file is absent) */
    RT_PLUGINS = 2,  /* the plugins of the directories in effect */
    RT_PATTERNS = 4, /* the patterns, built into the registry */
    RT_EXECUTOR = 8, /* an executor on the registry, recording in the store */
    /* with RT_PATTERNS: build without the store, so that a check opens,
     * creates and writes nothing (learning state is not paged out) */
    RT_NO_STORE = 16
};

/* Severity of a diagnostic handed to runtime_report_fn. */
typedef enum runtime_diag {
    RT_DIAG_ERROR,   /* a located problem: "file:line: message" */
    RT_DIAG_WARNING, /* a located warning (the caller decides whether to show it) */
    RT_DIAG_FAILURE  /* why loading stopped, not located ("cannot create ...") */
} runtime_diag;

typedef void (*runtime_report_fn)(void *opaque, runtime_diag sev, const char *msg);

/* Which parts runtime_free() frees: those loaded by this runtime, not
 * those a view borrows. */
enum {
    RT_OWN_CONFIG = 1,
    RT_OWN_LOADER = 2,
    RT_OWN_STORAGE = 4,
    RT_OWN_REGISTRY = 8,
    RT_OWN_EXECUTOR = 16
};

/* Fields are read by the commands; they change only through the functions
 * below, except the report callback, which the owner may replace.  A
 * runtime whose parts are all loaded is not written by them (runtime_load()
 * finds everything there), so concurrent commands may share one, as the
 * server's do. */
typedef struct runtime {
    const char *config_path; /* not owned */
    int config_explicit;     /* named by the user: a missing file is an error */
    runtime_report_fn report;
    void *report_opaque;

    config *cfg;
    loader *ld;
    store *st;
    registry *reg;
    executor *ex;
    unsigned owned; /* RT_OWN_* */

    int config_status;     /* what loading the configuration returned */
    int storage_tried;     /* the store is opened once, and warned about once */
    char *store_error;     /* why it could not be opened, or NULL */
    /* the command runs executions: a store that cannot be opened is its
     * error (runtime_start_executor says it), not a warning first */
    int store_needed;
    char *crash_cause;     /* the last crash note's cause, for the store's recovery */
    registry_store seam;   /* learning state through st, for the registry */
    /* The executor's on_complete data (history_on_complete): the store and
     * how executions are started (STORE_ORIGIN_RUN unless the command says
     * otherwise before they end; a fallback's link). */
    history_hook hook;
    history_progress *progress; /* writes running executions' progress (rt->st) */
    size_t pattern_errors; /* definitions that failed to build */
    int no_store;          /* RT_NO_STORE: the registry is built without the store */
    /* Set before loading: plugins are loaded as the patterns built ask for
     * what they provide (loader_opts.lazy), for a command that lists none
     * and runs only what its configuration defines. */
    int lazy_plugins;
    /* Set before the executor starts: the progress thread waits for
     * history_progress_kick(rt->progress), from the thread that follows
     * the command's one execution at a time. */
    int progress_on_demand;
    /* The store's run-time definitions change count (store_defs_version)
     * read just before the rows this runtime's configuration was overlaid
     * with; defs_read: 1 when it was read.  A server compares it with the
     * store's to see another process's change. */
    uint64_t defs_version;
    int defs_read;

    /* NDF_PLUGIN_PATH, split once at runtime_init(): it replaces the
     * configured directories, and the environment does not change under a
     * running program. */
    char **env_dirs;
    size_t nenv_dirs;
} runtime;

/* Prepares an empty runtime that will read `config_path` (kept, not
 * copied); `report` gets every diagnostic (NULL: they are logged).  Free
 * with runtime_free(). */
void runtime_init(runtime *rt, const char *config_path, int config_explicit,
                  runtime_report_fn report, void *opaque);

/* Prepares `view` on `cfg` (borrowed), with the loader and store of
 * `base` (borrowed; base must outlive the view) and nothing else: the view
 * builds and owns its own registry and executor. */
void runtime_view(runtime *view, const runtime *base, config *cfg);

/* Frees the owned parts, executor first (it stops before what it uses),
 * then registry, loader, store (waiting for its writes), configuration.
 * While worker threads are stuck in abandoned steps (pool_stuck_threads),
 * the registry of an executor that left them and any loader are not freed
 * (their code may be running); a program should then end with _exit()
 * after flushing its output, not exit(), whose destructors would run
 * under those threads. */
void runtime_free(runtime *rt);

/* Hands the loaded configuration over to the caller, who frees it with
 * config_free(); rt no longer refers to it.  NULL when rt owns none (not
 * loaded, or a view's). */
config *runtime_take_config(runtime *rt);

/* Leaves the parts in `what` (RT_OWN_*) to the process exit: runtime_free()
 * will not free them, for a thread that may still be using them. */
void runtime_abandon(runtime *rt, unsigned what);

/* Loads what `what` asks for that is not loaded yet.  Returns NDF_OK, or
 * the status of the first step that failed after reporting why; failed
 * pattern definitions (rt->pattern_errors) give NDF_ERR_VALIDATION, with
 * the registry built from the others. */
int runtime_load(runtime *rt, unsigned what);

/* Builds rt->reg from the configuration's definitions against rt->ld (the
 * one path through model/build): learning state from `prev`'s pattern of
 * the same name, else from the store.  Every problem is reported as
 * RT_DIAG_ERROR and counted in rt->pattern_errors.  Returns NDF_OK or
 * NDF_ERR_VALIDATION; either way rt->reg holds what was built. */
int runtime_build_registry(runtime *rt, registry *prev);

/* Starts rt->ex on rt->reg with the configuration's executor settings.
 * `on_complete` NULL: finished executions are recorded in the store
 * (history_on_complete on rt->hook), and a store that cannot be opened is
 * a failure (NDF_ERR_IO): nothing runs unrecorded.  NDF_OK, or a status
 * after reporting why. */
int runtime_start_executor(runtime *rt, void (*on_complete)(void *, pattern *, const record *),
                           void *opaque);

/* The store of the configuration's storage { } settings, opened on the
 * first call; NULL when it cannot be opened (reported once as a warning,
 * with the database and the reason; err_msg() says it again on each
 * call).  Needs the configuration. */
store *runtime_store(runtime *rt);

/* The plugin directories in effect for `set`: NDF_PLUGIN_PATH when set,
 * else the configured ones, else the compiled-in one.  Valid while `rt`
 * and `set` are; not to be freed. */
char *const *runtime_plugin_dirs(const runtime *rt, const settings *set, size_t *n);

#endif

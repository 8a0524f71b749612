/* The generations of `ndf serve`.  A generation is a runtime view: a
 * configuration, the registry of patterns built from it against the plugins
 * loaded at that moment, and an executor; the server's loader and store
 * are shared by all.  A reload builds a whole new generation off to the
 * side and swaps it in at once; new executions go to it, running ones
 * finish in the generation they started in (their records hold their
 * patterns, which pin the plugins they were built on), and an old
 * generation is freed once its last execution is done.  Retired plugins
 * are then finalized and unloaded by the loader (loader_collect).
 *
 * Locks, taken in this order: the reload lock (reloads, housekeeping, and
 * readers of the loader), then the set's lock (the current and old
 * generations, the ring of finished records), then a generation's own
 * (its runs). */
#ifndef NDF_GENERATION_H
#define NDF_GENERATION_H

#include <stddef.h>

#include "app/runtime.h"
#include "exec/record.h"
#include "base/util.h"

typedef struct gen gen;
typedef struct genset genset;

/* A set on `base`, whose loader and store (loaded) its generations
 * share; `base` must outlive the set.  Free with genset_free(). */
genset *genset_new(runtime *base);
/* Frees every generation (executors stop before the plugins go) and the
 * ring.  Nothing may use the set any more. */
void genset_free(genset *gs);

/* Builds generation 1 from `cfg` (taken over); any pattern that fails to
 * build fails it.  Returns NDF_OK, or NDF_ERR_VALIDATION with the reasons
 * in *why (malloc'd, one per line; the caller frees it). */
int genset_start(genset *gs, config *cfg, char **why);

/* A reference to the serving generation; give it back with
 * genset_release(). */
gen *genset_current(genset *gs);
void genset_release(genset *gs, gen *g);
unsigned long gen_id(const gen *g);
/* The generation's runtime: fully loaded, shared by the threads that hold
 * a reference; read only. */
runtime *gen_runtime(gen *g);
/* Keeps `r` (a reference is taken) until the housekeeping sees it done. */
void gen_track(gen *g, record *r);

/* Execution `id` (NULL: the latest) among the live generations: a
 * reference, or NULL. */
record *genset_find(genset *gs, const char *id);
/* Cancels execution `id` wherever it runs: NDF_OK or NDF_ERR_NOT_FOUND. */
int genset_cancel(genset *gs, const char *id);
/* genset_cancel(), `hard` as executor_cancel_hard(): nothing is undone. */
int genset_cancel_hard(genset *gs, const char *id, int hard);
/* The JSON and text of finished execution `id` among the recent ones kept
 * past their generation: 0 with copies (the caller frees both), or -1. */
int genset_snapshot(genset *gs, const char *id, char **json, char **text);
/* genset_snapshot() with the execution's status and outcome
 * (record_outcome()). */
int genset_finished(genset *gs, const char *id, char **json, char **text, int *status,
                    int *outcome);

/* Housekeeping: frees old generations nobody uses and whose executions
 * are done, then unloads the plugins that freed.  Takes the reload lock. */
void genset_reap(genset *gs);
/* Executions still running in any generation. */
size_t genset_running(genset *gs);
/* Cancels every running execution. */
void genset_cancel_all(genset *gs);
/* Gives up on the threads still inside the running executions (a shutdown
 * past its grace and kill grace): they are no longer waited for when the
 * executors stop.  Returns how many.  Any thread. */
size_t genset_abandon_all(genset *gs);

/* The reload lock, for a reader of the loader (a served command). */
void genset_lock(genset *gs);
void genset_unlock(genset *gs);
/* Calls `fn` (NULL: none) with `arg` at the end of every execution of the
 * set's generations, once its end is recorded, on the thread that
 * recorded it and under a lock of the set's own (taken before any lock
 * `fn` takes): `fn` must be short, must not wait for an execution and
 * must not call into the set.  After the call that clears it returns, `fn`
 * is not running and is not called again. */
void genset_on_end(genset *gs, void (*fn)(void *arg, const record *r), void *arg);

typedef struct genset_stats {
    unsigned long generation, old_generations;
    unsigned long reloads_ok, reloads_failed;
    loader_gen_stats plugins;
} genset_stats;
void genset_stats_get(genset *gs, genset_stats *out);

typedef struct reload_result {
    int ok;
    int config_status; /* 0 not asked, 1 reloaded, -1 kept (errors) */
    size_t plugins_changed;
    size_t plugins_refused;   /* builds refused by this reload (each a failed reload) */
    unsigned long generation; /* the one serving afterwards */
    char *error;              /* why, malloc'd, or NULL */
} reload_result;

/* A reload as a transaction (under the reload lock): with `with_config`,
 * the base's configuration file is read again and a generation built from
 * it; any error keeps the serving configuration.  Plugins are rescanned
 * either way (with `with_config`, the explicit reload, refused builds are
 * tried again even when their files did not change; a refusal makes the
 * reload fail and counts in reloads_failed); if any changed and no new configuration took effect, the
 * generation is rebuilt from the serving configuration, leaving out (with
 * a warning) the patterns that no longer build.  Free res->error. */
void genset_reload(genset *gs, int with_config, reload_result *res);

/* A run-time change (app/define), made as a configuration reload is
 * made, under the reload lock: the configuration files are read again,
 * `prepare` lays the run-time definitions with the change over them, a
 * generation is built from the result (any pattern that fails fails it),
 * `commit` makes the change durable, and only then does the generation
 * serve; running executions finish in theirs.  NDF_OK, or the first
 * failing status with the reasons in *why (malloc'd; the caller frees
 * it); nothing changes then.  *generation: the one serving afterwards. */
/* Serves the run-time definitions another process changed in the store
 * since the serving generation read them (store_defs_version moved): a
 * generation is built as genset_apply builds one (files read again, rows
 * laid over them) and swapped in; running executions finish in theirs.
 * One read of one row when nothing changed.  Returns 1 when a new
 * generation serves; 0 when nothing changed, or when it does not build
 * (logged once, the serving one stays). */
int genset_defs_refresh(genset *gs);

int genset_apply(genset *gs, int (*prepare)(void *opaque, config *cfg, strbuf *why),
                 int (*commit)(void *opaque, strbuf *why), void *opaque,
                 unsigned long *generation, char **why);

#endif

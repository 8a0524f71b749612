/* The plugin loader: finds plugin files, checks them (ownership, mode,
 * ELF, descriptor, ABI), loads private content-addressed copies, runs their
 * init, and keeps what they registered (pattern types and steps). */
#ifndef NDF_LOADER_H
#define NDF_LOADER_H

#include <stddef.h>
#include <ndf/sdk.h>

typedef struct loader loader;
typedef struct plugin plugin;

typedef enum provided_kind { PROVIDED_PATTERN_TYPE = 1, PROVIDED_STEP = 2 } provided_kind;

/* Something a plugin registered. */
typedef struct provided {
    provided_kind kind;
    const char *name;
    union {
        const ndf_pattern_type_def *ptype;
        const ndf_step_def *step;
    } def;
    plugin *owner;
} provided;

/* What `ndf plugins` and `ndf inspect` show of a plugin file. */
typedef struct plugin_info {
    const char *path;                                   /* as found */
    const char *cached;                                 /* the private copy loaded, or NULL */
    char hash[65];                                      /* sha-256 of the file, hex, or "" */
    const char *name, *version, *license, *description; /* from the descriptor */
    unsigned abi_major, abi_minor;
    int loaded;         /* 0: refused */
    const char *reason; /* why it was refused, else NULL */
    const provided *const *provides;
    size_t nprovides;
    size_t desc_size; /* the descriptor's size field, 0 if unread */
    int status;       /* NDF_OK, or the ndf_status of the refusal */
    int quarantined;  /* refused because its scan crashed, exited or hung */
    int scanned;      /* 0: not scanned (scanning off), 1: scanned now, 2: verdict cached */
} plugin_info;

typedef struct loader_opts {
    const ndf_host *host;  /* the services table plugins are handed; required */
    const char *cache_dir; /* where private copies go; created 0700 */
    int allow_insecure;    /* skip the owner/mode checks (warns loudly) */
    int quiet;             /* do not log refusals (the caller reports them) */
    /* The plugin scanner (scanner.h), used when a program was set with
     * scanner_set_program() and `no_scan` is 0: */
    int no_scan;             /* load in process unscanned */
    const char *verdict_dir; /* where verdicts are kept (made 0700 with its
                              * parents; one that another user could write
                              * keeps none, with a warning); NULL: the
                              * default state directory's plugin-verdicts */
    double scan_timeout;     /* seconds; <= 0: $NDF_SCAN_TIMEOUT, else 10 */
    /* The index of what each plugin file provides ("plugins.index" in the
     * cache directory, keyed by each file's path and identity: device,
     * inode, size, mtime, ctime, mode, owner): */
    int index; /* loader_scan refreshes it after loading every file */
    /* loader_scan loads nothing when the index describes every file found,
     * with no name provided twice; each file is then loaded, with every
     * check of a scan, when loader_find asks for a name it provides, or
     * all of them when loader_count or a rescan needs them.  For a command
     * that runs what its configuration names and lists no plugins. */
    int lazy;
} loader_opts;

/* A loader with no plugins.  `opts->host` is required (the loader sits below
 * the services table and is handed it).  The cache
 * directory is opts->cache_dir, else $NDF_RUNTIME_DIR/plugins, else
 * $XDG_RUNTIME_DIR/ndf/plugins, else /tmp/ndf-UID/plugins; it is created
 * 0700 and must be a directory owned by the effective user with no group or
 * other permissions.  Returns NULL with err_msg() set when it is not. */
loader *loader_new(const loader_opts *opts);
/* The scanner's child (`ndf __scan-plugin FILE`): loads FILE in place
 * with every check of a first load, runs its init, then unloads it (fini),
 * writing the report (scanner.h) to `fd` as it goes.  Returns the exit
 * status for the child: 0 when the report is complete (the verdict is in
 * it), 2 when `fd` is not the scanner's pipe (run by hand). */
int loader_scan_child(const ndf_host *host, const char *file, int fd);

/* A loader holding the one plugin `file` (a private copy the host has
 * already checked and scanned), loaded where it is, with no copy and no
 * scan: what a step worker runs its steps from.  NULL with err_msg() set
 * when it was refused.  Free with loader_free() (which leaves the file). */
loader *loader_new_in_place(const ndf_host *host, const char *file);

/* Calls every loaded plugin's fini() (in reverse load order), unloads them
 * and removes their private copies. */
void loader_free(loader *l);

/* Loads every regular "*.so" file in `dirs`, each directory in the given
 * order and its files sorted by name (strcmp).  Names starting with '.' are
 * skipped (installers and editors write temporary files so); symbolic links
 * are tried and refused.  A refused file is recorded (see loader_plugin) and
 * logged, never fatal.  Returns the number loaded (0 when a lazy loader
 * deferred them all). */
size_t loader_scan(loader *l, char *const *dirs, size_t ndirs);
/* Loads one file.  NDF_OK, or a status with err_msg() naming the file, the
 * reason and what to do; the refusal is recorded either way. */
int loader_load(loader *l, const char *path);

/* Files tried, loaded or refused (a lazy loader loads what it deferred
 * first). */
size_t loader_count(const loader *l);
/* Fills `info` for the i-th file tried; pointers live as long as `l`. */
void loader_plugin(const loader *l, size_t i, plugin_info *info);

/* loader_plugin() of plugin `p` (a provided thing's owner); pointers live
 * as long as the plugin (a pattern built on it pins it). */
void loader_plugin_describe(const plugin *p, plugin_info *info);

/* The directory private copies go to; lives as long as `l`. */
const char *loader_cache_dir(const loader *l);

/* Lookups among loaded plugins; NULL when absent.  Constant time, but for
 * a name a lazy loader's deferred file provides, which is loaded first
 * (any thread; loads are serialized). */
const provided *loader_find(const loader *l, provided_kind kind, const char *name);

/* The services table this loader hands to plugins. */
const ndf_host *loader_host(const loader *l);

/* The build scope.  ndf_host.step_new() carries no handle (ABI 1.x), so
 * while a pattern type's create() runs, the services table resolves step
 * names against the loader whose build is running on the calling thread.
 * enter returns the previous scope, which leave restores (builds nest when
 * a test builds inside a build).  loader_scope() is NULL outside a build.
 * Per thread: concurrent builds of different generations never see each
 * other's plugins. */
loader *loader_scope_enter(loader *l);
void loader_scope_leave(loader *prev);
loader *loader_scope(void);

/* A pattern that a definition said it runs (ndf_host.require_pattern),
 * collected on this thread while patterns are built, so that the builder
 * can check them once all are built.  `file` is borrowed from the
 * definition's value and must outlive the list. */
typedef struct loader_requirement {
    char *name;
    const char *file;
    int line;
} loader_requirement;
void loader_require(const char *name, const char *file, int line);
/* Moves this thread's list to the caller; free with loader_free_requirements. */
void loader_take_requirements(loader_requirement **out, size_t *n);
void loader_free_requirements(loader_requirement *r, size_t n);

/* ---- generations (hot reload) ----
 *
 * A serving plugin is referenced by the loader and pinned by everything
 * built on what it registered: pattern_build() pins the pattern type's
 * plugin, step_new() the step's, and their frees unpin.  Running executions
 * hold their patterns, so they pin the code they started with.  A plugin
 * replaced or removed by loader_rescan() is retired: lookups stop finding
 * it at once, and loader_collect() finalizes and unloads it once nothing
 * pins it. */

/* Takes / drops a reference on the plugin that registered `p` (NULL: no-op).
 * Thread-safe. */
/* The name (from its descriptor) and file of the plugin that provides
 * `p`; valid as long as `p` is (never freed while pinned).  For the crash
 * handler, which may not lock: no lock is taken. */
const char *loader_provided_plugin(const provided *p, const char **file);
void loader_pin(const provided *p);
void loader_unpin(const provided *p);

/* Looks at `dirs` again (same rules and order as loader_scan): loads files
 * that are new; for a file whose identity (device, inode, size, mtime) and
 * content (sha-256) changed, loads the new build beside the serving one
 * (its own private copy, so it never shares the old one's statics) with
 * every check of a first load, and on success swaps it in and retires the
 * old one; on failure the old one keeps serving and the refusal (with the
 * new file's hash) is recorded and logged.  A serving plugin whose file is
 * gone is retired.  Returns the number of plugins loaded, replaced or
 * retired (0: the lookups are as they were).  Not thread-safe against
 * other loads, rescans and collections of `l` (lookups are fine). */
size_t loader_rescan(loader *l, char *const *dirs, size_t ndirs);
/* loader_rescan(), also telling how it went: a refused file is tried again
 * when its identity, mtime, mode or owner changed, and with `retry_refused`
 * even when nothing did (the operator's explicit reload); *refused (may be
 * NULL) gets the number of files refused by this rescan, and `why` (may be
 * NULL) their reasons, "; "-separated. */
struct strbuf;
size_t loader_rescan_ex(loader *l, char *const *dirs, size_t ndirs, int retry_refused,
                        size_t *refused, struct strbuf *why);

/* Finalizes (fini), dlcloses and removes the private copies of retired
 * plugins that nothing pins any more; after dlclose it checks with
 * RTLD_NOLOAD that the object really left, and logs the plugin as not
 * unloadable when it did not.  Returns how many were unloaded. */
size_t loader_collect(loader *l);

typedef struct loader_gen_stats {
    size_t retired;        /* replaced or removed, waiting for their last user */
    size_t pinned;         /* references held by patterns and steps, all plugins */
    size_t unloaded;       /* retired plugins unloaded so far */
    size_t not_unloadable; /* ... of which dlclose did not unmap the code */
} loader_gen_stats;
/* Fills `out` with the counts above, for `ndf ctl ping`. */
void loader_generations(const loader *l, loader_gen_stats *out);

/* Called by the services table for register_pattern_type/register_step.
 * Valid only during the init() that was handed `reg`.  Checks the
 * definition (size, name, callbacks, parameter schema, uniqueness); a
 * definition is kept only if init() then returns NDF_OK, and any failed
 * registration refuses the whole plugin.  Returns NDF_OK or a status with
 * err_msg() set. */
int loader_registrar_add(ndf_registrar *reg, provided_kind kind, const void *def);

#endif

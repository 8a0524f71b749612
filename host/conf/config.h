/* The configuration (seed PatternConfig): global settings with defaults and
 * ranges, and the pattern definitions, read from libconfig files.  libconfig
 * is used in config.c alone; everything leaves it as plain C or ndf_value.
 * Every error names file:line. */
#ifndef NDF_CONFIG_H
#define NDF_CONFIG_H

#include <stddef.h>
#include "base/learning.h"
#include "base/value.h"

typedef struct settings {
    char *file;                 /* absolute path of the main config file */

    /* confidence { } */
    double confidence_threshold; /* global gate, 0..1 */
    int confidence_gate;         /* confidence_gate: warn, enforce or off */
    learning_params learning;    /* algorithm, learning_rate, min_samples, ... */

    /* registry { } */
    long cache_size;
    int learning_enabled;

    /* executor { } */
    int threads;
    double default_timeout;      /* seconds: an execution's deadline */
    double pattern_timeout;      /* seconds: default for one pattern run */
    double max_timeout;          /* seconds: the only cap on deadlines; 0: none */
    double kill_grace;           /* seconds between SIGTERM and SIGKILL */

    /* storage { } */
    char *storage_path;
    int backups;
    int compression;
    int compression_level;
    long history_limit;
    int storage_sync;            /* 0: normal, 1: full */
    double retention_days;       /* ndf cleanup prunes older executions; 0: keep */
    double backup_interval;      /* seconds between ndf serve's backups; 0: none */
    int storage_backend;         /* 0: sqlite, 1: postgresql (store_backend's values) */
    char *storage_conninfo;      /* postgresql: libpq connection string or service; NULL: libpq's defaults */

    /* plugins { } */
    char **plugin_dirs;          /* absolute */
    size_t nplugin_dirs;
    int allow_insecure;          /* relax the ownership checks (development) */
    char *cache_dir;             /* private copies of loaded plugins */
    int scan_plugins;            /* load a new build in the plugin scanner first */
    double scan_timeout;         /* seconds a scan may take; 0: $NDF_SCAN_TIMEOUT or 10 */
    char *verdict_dir;           /* where scan verdicts are kept; NULL: the state dir's */
    int isolation;               /* 0 "auto", 1 "none", 2 "process" (isolate_mode's values) */
    char **isolate;              /* plugin or step names whose steps run in a worker */
    size_t nisolate;
    char **trust;                /* plugin or step names whose steps run in process */
    size_t ntrust;
    double worker_memory_mb;     /* a step worker's address-space limit; 0: none */
    double worker_cpu_s;         /* CPU seconds one isolated call may use; 0: none */

    /* server { } */
    char *socket_path;
    char *socket_group;
    double idle_timeout;         /* seconds a connection may go without a complete request */
    int max_conns_per_uid;       /* connections one uid may hold at once */
    int worker;                  /* claim the shared store's queued executions */
    int worker_capacity;         /* executions held at once; 0: executor.threads */
    double worker_lease;         /* seconds a claim holds without a heartbeat */
    double worker_poll;          /* seconds between claims that found nothing */

    /* delegation { } */
    int delegation_max_fallbacks;     /* candidates tried after the first */
    double delegation_prior_strength; /* m: outcomes elsewhere lent to a domain */
    double delegation_epsilon;        /* epsilon_greedy's exploration rate */

    /* resources { } */
    int resources_system;        /* scope: 0 "ndf" (its own processes), 1 "system" */

    /* agents { NAME = { argv = [...]; ... }; }: checked (agents.c), or NULL */
    ndf_value *agents;

    char *patterns_dir;          /* absolute, or NULL */
} settings;

/* A diagnostic collected while reading: "file:line: message". */
typedef struct config_diag {
    int is_error;               /* 0: warning */
    char *text;
} config_diag;

typedef struct config {
    settings set;
    ndf_value **patterns;       /* definition groups, in file order */
    size_t npatterns;
    config_diag *diags;
    size_t ndiags;
    size_t nerrors;
    size_t nduplicates;         /* errors that are a pattern defined twice */
    /* errors confined to one pattern definition, which was left out (the
     * duplicates included): when they are all the errors, the other
     * patterns can still be used */
    size_t npattern_errors;
    int overlaid;               /* the run-time definitions of the store are applied */
} config;

/* The state directory when storage.path is not set: $NDF_STATE_DIR, else
 * $XDG_STATE_HOME/ndf, else ~/.local/state/ndf, else LOCALSTATEDIR/lib/ndf.
 * Caller frees. */
char *settings_default_state_dir(void);

/* Fills `s` with the documented defaults. */
void settings_default(settings *s);
void settings_free(settings *s);

/* Reads `path` (and the patterns_dir files, sorted).  Always fills *out
 * (free with config_free()); returns NDF_OK when there were no errors,
 * NDF_ERR_EXISTS when every error is a pattern defined twice (the seed's
 * PatternAlreadyExistsError), otherwise NDF_ERR_VALIDATION (diags hold the
 * errors and warnings). */
int config_load(const char *path, config **out);
/* Frees the configuration, its settings, definitions and diagnostics; NULL
 * is a no-op.  Values' file names stay valid (they are interned). */
void config_free(config *c);

/* ---- run-time definitions: text a client sends instead of a file ---- */

struct strbuf;

/* Reads the pattern definitions of `text` (`len` bytes) as a patterns_dir
 * file is read, its messages naming `origin` and the line ("request:3:
 * ..."): a `patterns = ( ... );` list, one bare group `{ ... }`, or the
 * JSON form (an object, or an array of objects, with the same members).
 * No @include.  Always fills *out (free with config_free()) with the
 * definitions in out->patterns and the diagnostics; returns as
 * config_load(). */
int config_parse_definitions(const char *origin, const char *text, size_t len, config **out);

/* Checks definition `def` (taken over) as a definition in a file is
 * checked, at the positions its values carry: on NDF_OK it is the last of
 * c->patterns; otherwise it is freed and NDF_ERR_VALIDATION returned, the
 * diagnostics in c->diags. */
int config_check_definition(config *c, ndf_value *def);

/* Sets global setting `key` ("confidence.threshold") of `c` from
 * `literal` (libconfig syntax: 0.8, "enforce"), checked as the key is in
 * a file, messages naming `origin`.  Only the keys a new generation reads
 * (confidence, executor, delegation) are accepted.  NDF_OK, else
 * NDF_ERR_INVALID (no such key here) or NDF_ERR_VALIDATION (a bad value;
 * the diagnostic is in c->diags too), with err_msg() saying why. */
int config_apply_setting(config *c, const char *origin, const char *key, const char *literal);

/* Parses one libconfig value (`"x"`, `30`, `{ a = 1; }`, `( "a", "b" )`)
 * positioned at `origin`:1.  The value (caller frees), or NULL with a
 * malloc'd message in *error. */
ndf_value *config_parse_value(const char *origin, const char *literal, char **error);

/* Appends definition `def` as a patterns file (`patterns = ( { ... } );`)
 * that config_parse_definitions() reads back to an equal tree. */
void config_definition_text(const ndf_value *def, struct strbuf *sb);
/* Appends one value in libconfig syntax. */
void config_value_text(const ndf_value *v, struct strbuf *sb);

/* The definition named `name` in `c` (borrowed), or NULL. */
const ndf_value *config_find_definition(const config *c, const char *name);
/* Takes the definition named `name` out of `c` (the caller owns it), or
 * NULL. */
ndf_value *config_take_definition(config *c, const char *name);
/* Puts `def` (taken over) into `c` in place of any definition of the same
 * name (which is freed), else at the end. */
void config_put_definition(config *c, ndf_value *def);

/* Appends the effective settings as JSON (seed get_current_config). */
struct strbuf;
void settings_to_json(const settings *s, struct strbuf *sb);

#endif

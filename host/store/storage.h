/* Pattern storage (seed PatternStorage): one crash-safe file per pattern
 * holding its learning state and a bounded history of executions, gzip
 * compressed, checked on load, backed up in a bounded rotation, and exported
 * as JSON, CSV or YAML.  cJSON, zlib and libyaml are used here alone.
 *
 * The file format (schema 1) is documented in ndf(1) under FILES. */
#ifndef NDF_STORAGE_H
#define NDF_STORAGE_H

#include <stddef.h>
#include "base/learning.h"
#include "model/registry.h"
#include "base/util.h"

/* The schema version written into every file; loads refuse other versions. */
#define STORAGE_SCHEMA 1
/* Largest decompressed (or plain) file a load accepts, so that a small file
 * cannot expand without limit. */
#define STORAGE_MAX_DOCUMENT ((size_t)64 << 20)
/* Temporary files older than this are left-overs of a killed writer. */
#define STORAGE_STALE_TMP_S 600.0

/* One step (or task, or phase) of an execution. */
typedef struct history_step {
    char *name;
    char *outcome;       /* "succeeded", "failed", "timeout", "skipped", ... */
    double duration_s;
    double timeout_s;    /* the step's limit, 0 when none */
} history_step;

/* One execution of a pattern. */
typedef struct history_entry {
    double time;         /* wall-clock seconds at the start */
    double duration_s;
    int success;
    char *outcome;       /* "succeeded", "failed", "timeout", "cancelled", ... */
    char *domain;        /* the context's domain, or NULL */
    char *error;         /* the failure's message, or NULL */
    double confidence;   /* the pattern's score after this execution */
    double timeout_s;    /* the execution's limit, 0 when none */
    double cpu_s;        /* cpu time (the executing threads and children) */
    long peak_rss_kb;    /* peak memory, see monitor.h */
    history_step *steps;
    size_t nsteps;
} history_entry;

void history_entry_free(history_entry *e);
/* Deep copy into `dst` (which must not hold data). */
void history_entry_copy(history_entry *dst, const history_entry *src);

/* What storage holds for one pattern. */
typedef struct stored_pattern {
    char *name;
    learning_state learn;
    history_entry *history;  /* oldest first, at most history_limit */
    size_t nhistory;
    double saved;            /* wall-clock seconds of the save */
} stored_pattern;

void stored_pattern_free(stored_pattern *sp);

typedef struct storage_opts {
    int compression;     /* 1: gzip (<name>.json.gz), 0: plain <name>.json */
    int level;           /* zlib level 1..9 */
    int backups;         /* previous versions kept (<file>.1 .. .N), 0..100 */
    long history_limit;  /* executions kept per pattern (oldest dropped), >= 0 */
    int quiet;           /* do not log warnings (they still go to err_msg) */
} storage_opts;

typedef struct storage storage;

/* The documented default directory: $NDF_STATE_DIR, else
 * $XDG_STATE_HOME/ndf, else $HOME/.local/state/ndf; NULL when none of them
 * is set (err_msg() says so).  Caller frees. */
char *storage_default_dir(void);

/* Opens the storage in `dir` (NULL or "": storage_default_dir()).  The
 * directory (and missing parents, mode 0700) is created on the first save,
 * so read-only use creates nothing.  Returns NDF_OK and *out, or an
 * ndf_status with err_msg() set.  Thread-safe once open; saves of several
 * processes to the same directory are serialized by a lock file. */
int storage_open(const char *dir, const storage_opts *opts, storage **out);
void storage_close(storage *s);
const char *storage_dir(const storage *s);

/* Replaces the pattern's stored state with `learn` and `hist` (oldest
 * first; only the newest history_limit are kept).  Atomic: a crash leaves
 * either the old or the new file.  The previous file becomes backup .1. */
int storage_save_pattern(storage *s, const char *name, const learning_state *learn,
                         const history_entry *hist, size_t nhist);
/* Loads into *out (free with stored_pattern_free()).  NDF_ERR_NOT_FOUND
 * when nothing is stored.  A file that fails its checks (gzip CRC or
 * length, JSON, schema version, contents) is logged with its path and the
 * reason, moved aside as <file>.corrupt-<time>, and the newest good backup
 * is used and restored (and that is logged too); NDF_ERR_IO when no copy is
 * good.  Nothing is deleted. */
int storage_load_pattern(storage *s, const char *name, stored_pattern *out);
/* Appends one execution (and, when `learn` is not NULL, replaces the
 * learning state) in one atomic save; creates the record when there is
 * none. */
int storage_append_history(storage *s, const char *name, const history_entry *e,
                           const learning_state *learn);
/* Replaces only the learning state, keeping the history. */
int storage_save_learning(storage *s, const char *name, const learning_state *learn);
/* 1 when something (the file or a backup) is stored for `name`. */
int storage_exists(storage *s, const char *name);
/* Names of the stored patterns, sorted; free each and the array. */
int storage_list(storage *s, char ***names, size_t *n);
/* Removes everything stored for `name`: the file, its backups and
 * quarantined copies.  NDF_ERR_NOT_FOUND when there was nothing. */
int storage_remove(storage *s, const char *name);
/* Removes temporary files left by killed writers (older than `min_age_s`)
 * and quarantined corrupt files older than `min_age_s`; returns how many
 * files were removed, or a negative ndf_status. */
int storage_sweep(storage *s, double min_age_s, double now);

typedef enum export_format { EXPORT_JSON = 0, EXPORT_CSV = 1, EXPORT_YAML = 2 } export_format;
/* Returns 0 and *out for "json", "csv" or "yaml", else -1. */
int export_format_parse(const char *name, export_format *out);

/* seed export_learning_data: appends the stored data of `name` to `sb`.
 * JSON: the stored document.  CSV (RFC 4180, CRLF): a header row, then one
 * row per history entry.  YAML: the document's tree (libyaml emitter). */
int storage_export(storage *s, const char *name, export_format fmt, strbuf *sb);
/* The same from a record in memory. */
int storage_export_record(const stored_pattern *sp, export_format fmt, strbuf *sb);

/* Serializes / parses a record as the JSON document stored in the files
 * (for tests and the benchmark).  Parse errors set err_msg(). */
char *storage_to_json(const stored_pattern *sp, int pretty);
int storage_from_json(const char *text, size_t len, stored_pattern *out);

/* The registry seam: a registry_store whose save replaces the learning state
 * (keeping the history) and whose load fills a learning_state.  `s` must
 * outlive the registry. */
void storage_registry_store(storage *s, registry_store *out);

/* Replaces the learning state of `p` with the stored one (at start, so
 * learning goes on across runs).  NDF_ERR_NOT_FOUND leaves `p` as it was;
 * other errors too (err_msg() says why). */
struct pattern;
int storage_restore_learning(storage *s, struct pattern *p);

/* Builds the history entry of a finished execution: its times, outcome,
 * domain, error, the pattern's score now, the root's direct children as
 * steps (tasks, phases), and resource usage: the process's cpu time since
 * the previous completion (exact when executions do not overlap, as in
 * `ndf run`) and its peak RSS (RUSAGE_SELF / RUSAGE_CHILDREN, an upper bound).
 * Free with history_entry_free(). */
struct record;
void storage_entry_from_record(history_entry *e, struct pattern *p, const struct record *r);
/* The executor's on_complete callback (executor_opts.on_complete, with
 * `opaque` a storage *): appends the execution and the pattern's learning
 * state in one atomic save.  Failures are logged, never fatal. */
void storage_on_complete(void *opaque, struct pattern *p, const struct record *r);

/* The program's storage, opened once from the settings (storage { }) and
 * closed at exit; NULL (with a warning, once) when it cannot be opened.
 * Thread-safe. */
struct settings;
storage *storage_app(const struct settings *set);
/* The registry seam on storage_app(), or NULL. */
const registry_store *storage_app_store(const struct settings *set);
void storage_opts_from_settings(const struct settings *set, storage_opts *o);

#endif

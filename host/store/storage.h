/* The storage format of the previous release (seed PatternStorage, schema
 * 1): one gzip'd (or plain) JSON document per pattern holding its learning
 * state and a bounded history, with backups <file>.N.  Kept only to read
 * such a directory once, for its import into the store (store.h); nothing
 * writes this format any more.  The history structures are also what
 * analytics reads (history.h builds them from the store).
 *
 * The format is documented in ndf(1) under FILES. */
#ifndef NDF_STORAGE_H
#define NDF_STORAGE_H

#include <stddef.h>
#include "base/learning.h"
#include "base/util.h"

/* The schema version of the documents; loads refuse other versions. */
#define STORAGE_SCHEMA 1
/* Largest decompressed (or plain) document a load accepts, so that a small
 * file cannot expand without limit. */
#define STORAGE_MAX_DOCUMENT ((size_t)64 << 20)

/* One step (or task, or phase) of an execution. */
typedef struct history_step {
    char *name;
    char *outcome; /* "succeeded", "failed", "timeout", "skipped", ... */
    double duration_s;
    double timeout_s; /* the step's limit, 0 when none */
} history_step;

/* One execution of a pattern. */
typedef struct history_entry {
    double time; /* wall-clock seconds at the start */
    double duration_s;
    int success;
    char *outcome;     /* "succeeded", "failed", "timeout", "cancelled", ... */
    char *domain;      /* the context's domain, or NULL */
    char *error;       /* the failure's message, or NULL */
    double confidence; /* the pattern's score after this execution */
    double timeout_s;  /* the execution's limit, 0 when none */
    double cpu_s;      /* cpu time (the executing threads and children) */
    long peak_rss_kb;  /* peak memory */
    history_step *steps;
    size_t nsteps;
} history_entry;

void history_entry_free(history_entry *e);

/* A pattern's learning state and history. */
typedef struct stored_pattern {
    char *name;
    learning_state learn;
    history_entry *history; /* oldest first */
    size_t nhistory;
    double saved; /* wall-clock seconds of the save */
} stored_pattern;

void stored_pattern_free(stored_pattern *sp);

typedef struct storage_opts {
    int compression; /* the extension tried first: 1 .json.gz, 0 .json */
    int quiet;       /* do not log warnings (they still go to err_msg) */
} storage_opts;

typedef struct storage storage;

/* Opens the directory `dir` for reading (a missing one holds nothing).
 * Returns NDF_OK and *out, or NDF_ERR_IO with err_msg() set. */
int storage_open(const char *dir, const storage_opts *opts, storage **out);
void storage_close(storage *s);
const char *storage_dir(const storage *s);

/* Loads into *out (free with stored_pattern_free()).  NDF_ERR_NOT_FOUND
 * when nothing is stored.  A file that fails its checks is logged with its
 * path and the reason, and the newest good backup is used (and that is
 * logged too); NDF_ERR_IO when no copy is good.  Nothing is written. */
int storage_load_pattern(storage *s, const char *name, stored_pattern *out);
/* Names of the stored patterns, sorted; free each and the array. */
int storage_list(storage *s, char ***names, size_t *n);

/* Parses a document (for tests and the fuzzer).  Errors set err_msg(). */
int storage_from_json(const char *text, size_t len, stored_pattern *out);

#endif

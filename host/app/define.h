/* Patterns and settings defined at run time (the reference's
 * register_pattern, add_step, set_step_timeout, set_confidence_threshold,
 * the PatternConfig setters...).  A change is kept in the store as a row
 * (store/defs.h): a pattern's whole definition as libconfig text, or one
 * global setting's value.  Rows are laid over the configuration files'
 * definitions whenever a registry is built from them (one-shot commands,
 * every server generation): a run-time definition shadows a file's of the
 * same name, and dropping it (undefine) brings the file's back.
 *
 * A change is computed on a configuration holding the files' definitions
 * only, checked there as a file is (messages say "request:LINE"), and
 * laid over it with every other row; the caller builds a registry from
 * the result (the one path, model/build) and writes the row only when
 * that succeeded (define_commit). */
#ifndef NDF_DEFINE_H
#define NDF_DEFINE_H

#include <stddef.h>

#include "conf/config.h"
#include "store/defs.h"
#include "base/util.h"

/* The origin of a value that came in a request, in messages. */
#define DEFINE_REQUEST_ORIGIN "request"

typedef enum define_verb {
    DEFINE_PATTERN,   /* text: one definition (libconfig or JSON) */
    DEFINE_UNDEFINE,  /* name: drop its run-time definition */
    DEFINE_EDIT,      /* name, op, path, literal, at */
    DEFINE_SETTING,   /* name: SECTION.KEY, literal */
    DEFINE_UNSETTING  /* name: SECTION.KEY back to the file's value */
} define_verb;

typedef struct define_request {
    define_verb verb;
    const char *text; /* DEFINE_PATTERN */
    size_t len;
    int replace;      /* DEFINE_PATTERN: an existing pattern of that name may be replaced */
    const char *name;
    const char *op;      /* DEFINE_EDIT: "set", "unset" or "insert" */
    const char *path;    /* DEFINE_EDIT: params.steps[build].timeout */
    const char *literal; /* DEFINE_EDIT (set, insert), DEFINE_SETTING: a libconfig value */
    long at;             /* DEFINE_EDIT insert: position, -1 for the end */
    long uid;            /* who asks */
} define_request;

/* What a request becomes: the row to write (or remove) and the value
 * tree of a pattern's new definition, with the request's positions. */
typedef struct define_change {
    store_def row;
    int remove;
    ndf_value *def;   /* DEFINE_PATTERN, DEFINE_EDIT */
    char *summary;    /* one line for the client: "defined pattern 'x'" */
    char *warnings;   /* the check's warnings, one per line, or NULL */
    /* define_overlay(): lay the change as its stored row reads back (the
     * run-time origin, the stored text's lines), as every registry built
     * from the store later has it: for a generation that serves on (the
     * server).  0: with the request's positions ("request:LINE"), for a
     * check whose messages the requester reads (one-shot). */
    int as_stored;
} define_change;

void define_change_free(define_change *c);

/* Computes request `rq` on `files` (a configuration of the files'
 * definitions only, not overlaid) and the store's rows (`rows`, `n`).
 * NDF_OK with *out filled (free with define_change_free()); else a
 * status (NDF_ERR_EXISTS: a define of a name that exists without
 * replace; NDF_ERR_NOT_FOUND: no such pattern, row or member;
 * NDF_ERR_INVALID: a bad path or key; NDF_ERR_VALIDATION: the definition
 * or value does not check) with the reasons in `why`, one per line. */
int define_prepare(const config *files, const store_def *rows, size_t n, const define_request *rq,
                   define_change *out, strbuf *why);

/* Lays the rows (`rows`, `n`, with `pending` in place of its own row when
 * not NULL) over `cfg`, a configuration of the files' definitions, and
 * marks it overlaid.  A row that no longer checks is left out with its
 * reason appended to `why` (one per line); returns how many were. */
size_t define_overlay(config *cfg, const store_def *rows, size_t n, const define_change *pending,
                      strbuf *why);

/* define_overlay() with the rows read from `st`.  NDF_OK (even with rows
 * left out: their count in *bad), or the store's error. */
int define_overlay_store(config *cfg, store *st, size_t *bad, strbuf *why);

/* Writes the change's row to `st`.  NDF_OK or the store's error. */
int define_commit(store *st, const define_change *c);

/* The origin a row's values carry in messages and `ndf show`:
 * "run-time[2026-11-29T18:30:00Z uid 1000]".  Interned (never freed). */
const char *define_origin(const store_def *row);
/* 1 when a definition's position says it is a run-time one (a row's or a
 * request's). */
int define_is_runtime(const char *file);

#endif

/* A delegation from start to end: choose the pattern for a context
 * (model/delegate), run the attempt order until an outcome does not fall
 * back (delegate_outcome_falls_back), and say what happened as JSON.  The
 * one loop behind `ndf delegate`, the server's "delegate" request and the
 * "delegate" lines of `ndf batch`; how an attempt runs (with progress on a
 * terminal, or quietly for a client) is the caller's, through a callback. */
#ifndef NDF_DELEGATION_H
#define NDF_DELEGATION_H

#include <limits.h>
#include <stddef.h>

#include "app/runtime.h"
#include "model/delegate.h"

struct strbuf;

/* The context attribute that carries an attempt's reason into its record
 * (the stored context), so that `ndf status ID --json` shows it. */
#define DELEGATION_REASON_ATTR "delegate_reason"

/* One attempt of the order. */
typedef struct delegation_attempt {
    const char *pattern; /* borrowed from the result */
    char *reason;        /* delegate_reason() */
    char id[48];         /* the execution's id; empty when it did not start */
    int status;
    delegate_outcome outcome;
    char *error; /* err_msg() of a failed attempt, or NULL */
} delegation_attempt;

typedef struct delegation {
    delegate_result res; /* the choice (always filled) */
    int chosen;          /* delegate_choose() succeeded: attempts ran */
    delegation_attempt *attempts;
    size_t nattempts;
    int status;  /* the last attempt's; delegate_choose()'s when none ran */
    char *error; /* why, when status is not NDF_OK (owned) */
} delegation;

/* Runs attempt `k` (a->pattern, a->reason set): `ctx` already carries the
 * reason; `fb_from` / `fb_cause` name the attempt before and why it failed
 * (NULL for the first).  Returns the attempt's status with err_msg() set
 * when it failed, and *out a reference to its record (NULL when it did not
 * start; the loop unrefs it). */
typedef int (*delegation_run_fn)(void *opaque, size_t k, const delegation_attempt *a,
                                 const ndf_context *ctx, const char *fb_from,
                                 const char *fb_cause, record **out);

/* delegate_opts.max_fallbacks of a caller that was not given a number:
 * delegation_opts_from() puts delegation.max_fallbacks in its place. */
#define DELEGATION_FALLBACKS_CONFIGURED UINT_MAX

/* The options in effect for runtime `rt`: o's policy, seed and fallbacks
 * (DELEGATION_FALLBACKS_CONFIGURED: the configuration's), the
 * configuration's threshold, prior strength and epsilon. */
void delegation_opts_from(const runtime *rt, delegate_opts *o);

/* Chooses for `ctx` in rt->reg with `o`, then runs the attempt order with
 * `run` (NULL: delegation_run_quiet on rt, recording with `origin`, each
 * attempt's deadline `timeout` when > 0).  Always fills *out (release
 * with delegation_free()); returns out->status.  NDF_ERR_NOT_FOUND before
 * any attempt is "no pattern suits this context". */
int delegation_run(runtime *rt, const ndf_context *ctx, const delegate_opts *o, double timeout,
                   store_origin origin, delegation_run_fn run, void *opaque, delegation *out);

/* The quiet runner: starts the attempt on rt->ex (deadline q->timeout) as a fallback when it is
 * one (executor_start_fallback, forced: the threshold governed the choice),
 * marks it RUNNING in rt->st, hands the record to `track` (may be NULL;
 * the server keeps it findable by id) and waits for it. */
typedef struct delegation_quiet {
    runtime *rt;
    store_origin origin;
    double timeout; /* each attempt's deadline when > 0 */
    void (*track)(void *opaque, record *r);
    void *track_opaque;
} delegation_quiet;
int delegation_run_quiet(void *opaque /* delegation_quiet */, size_t k,
                         const delegation_attempt *a, const ndf_context *ctx, const char *fb_from,
                         const char *fb_cause, record **out);

/* Appends {"delegation": <delegate_result_to_json>, "attempts": [{pattern,
 * id, reason, status, outcome, error?}], "success", "status", "pattern"
 * (the one that succeeded, or null), "error"? }. */
void delegation_to_json(const delegation *d, struct strbuf *sb);

void delegation_free(delegation *d);

#endif

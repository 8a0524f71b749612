/* The plan of a pattern: what a run in a given context would do, resolved
 * before anything runs (`ndf plan`, `ndf run --dry-run`, `ndf graph`, and
 * the check `ndf run` makes before it starts a pattern).
 *
 * The host knows no pattern type by name, so the plan is read from what the
 * type's schema validated: every list of groups among a pattern's
 * parameters whose entries name a loaded step (`step`) is a list of steps,
 * and one whose entries name patterns (`patterns`) a list of phases.  The
 * keys the seed's types share give the rest: a step's `timeout`,
 * `retries`, `depends_on`, `cpu` and `memory`, its parameters' `undo`, a
 * phase's `coordination`.  A list is a DAG when its entries' schema has a
 * `depends_on` member, else an ordered chain. */
#ifndef NDF_PLAN_H
#define NDF_PLAN_H

#include <stdio.h>

#include "app/runtime.h"
#include "model/context.h"

struct cJSON;

/* Builds the plan of pattern `name` in `ctx` on the runtime's patterns
 * (loaded by the caller), with `requested` (> 0) the caller's --timeout.
 * Step parameters are expanded as they would run (${execution_id} stays as
 * written).  Returns NDF_OK and *out; NDF_ERR_VALIDATION with *out set too
 * when a template cannot be resolved (its "errors" member lists every
 * problem, err_msg() says the first); plan_missing()'s status (and *out
 * NULL) when there is no such pattern.  Free *out with cJSON_Delete(). */
/* Why pattern `name` is not among the runtime's built patterns:
 * NDF_ERR_VALIDATION ("pattern 'X' (FILE:LINE) did not build: ...") when
 * the configuration defines it but its definition failed, else
 * NDF_ERR_NOT_FOUND ("no pattern named 'X'"); err_msg() says it. */
int plan_missing(const runtime *rt, const char *name);
int plan_build(runtime *rt, const char *name, const ndf_context *ctx, double requested,
               struct cJSON **out);

/* Prints plan `plan` as an indented tree on `out`. */
void plan_print(FILE *out, const struct cJSON *plan);

/* Formats seconds for people ("600 s", "1.5 s", "none"), into buf. */
const char *plan_seconds(char *buf, size_t size, double s);

#endif

/* The reference's imperative calls on loaded patterns that are neither a
 * run nor a reload: record_execution (an outcome of work done outside ndf,
 * taught to the model and kept in the history as origin "external"). */
#ifndef NDF_API_H
#define NDF_API_H

#include "app/runtime.h"

/* What api_record() is told about the outside work. */
typedef struct api_outcome {
    int success;              /* 1: succeeded, 0: failed */
    const ndf_context *ctx;   /* its context (domain...); NULL: an empty one */
    double duration;          /* seconds it took (0: not known) */
    const char *message;      /* why it failed, or a note; NULL: none */
} api_outcome;

/* seed DelegationPattern.record_execution(success, domain): records `o` as
 * a finished execution of pattern `name` in `rt`'s registry, counted
 * exactly as an execution that ran (confidence, per-domain counts, the
 * history row with origin "external", in the transaction that stores
 * it).  `rt` must have its patterns loaded.  On NDF_OK `id_out` (at least
 * 48 bytes) holds the new execution's id.  NDF_ERR_NOT_FOUND for no such
 * pattern, NDF_ERR_INVALID for a bad context or duration, the store's
 * error when the row could not be committed (nothing is learnt then). */
int api_record(runtime *rt, const char *name, const api_outcome *o, char *id_out);

#endif

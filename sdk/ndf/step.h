/* ndf SDK: step implementations.
 *
 * A step is the unit of work a pattern type runs: a command, a sleep, a
 * sub-pattern.  A plugin registers step types; pattern definitions bind a
 * step type to parameters (ndf_host.step_new), and pattern types run the
 * bound step in a record node (ndf_host.run_step). */
#ifndef NDF_STEP_H
#define NDF_STEP_H

#include <stddef.h>
#include <ndf/exec.h>
#include <ndf/params.h>

struct ndf_host;

/* A step bound to its parameters, owned by the host. */
typedef struct ndf_step ndf_step;

/* The step may block for long (it waits on processes or the clock), so the
 * host must not run it inline on a latency-sensitive path. */
#define NDF_STEP_BLOCKING 0x1u

typedef struct ndf_step_def {
    size_t size;              /* sizeof(ndf_step_def) as the plugin was built */
    const char *name;         /* [a-z0-9_]+, unique among loaded steps */
    const char *description;  /* one line */
    const ndf_param_spec *params; /* schema, NDF_PARAM_END terminated */
    unsigned flags;           /* NDF_STEP_* */

    /* Optional.  Compile validated `params` into private state at load time;
     * report problems with ndf_host.fail_at() so they carry file:line.
     * The instance is released with destroy(). */
    int (*create)(const struct ndf_host *host, const ndf_value *params, void **instance);
    void (*destroy)(const struct ndf_host *host, void *instance);

    /* Required.  Do the work in record node `node`.  Long work polls
     * ndf_host.cancelled(node) and returns NDF_ERR_CANCELLED or
     * NDF_ERR_TIMEOUT when it says so.  Returns an ndf_status. */
    int (*run)(const struct ndf_host *host, ndf_exec *node, const ndf_value *params,
               void *instance);

    /* Optional.  Undo a completed run (rollback).  Returns an ndf_status. */
    int (*undo)(const struct ndf_host *host, ndf_exec *node, const ndf_value *params,
                void *instance);
} ndf_step_def;

#endif

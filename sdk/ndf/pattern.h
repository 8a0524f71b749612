/* ndf SDK: pattern types.
 *
 * A pattern type (sequential, parallel, meta, or a third party's) turns a
 * pattern definition's parameters into an instance at load time, and runs
 * that instance once per execution.  The host owns everything generic: name,
 * description, domains, agent types, attributes, confidence and learning. */
#ifndef NDF_PATTERN_H
#define NDF_PATTERN_H

#include <stddef.h>
#include <ndf/context.h>
#include <ndf/exec.h>
#include <ndf/params.h>

struct ndf_host;

typedef struct ndf_pattern_type_def {
    size_t size;              /* sizeof(ndf_pattern_type_def) as built */
    const char *name;         /* [a-z0-9_]+, unique among loaded types */
    const char *description;  /* one line */
    const ndf_param_spec *params; /* schema, NDF_PARAM_END terminated */

    /* Required.  Called when a definition is loaded (and again when it is
     * edited or reloaded): check what the schema cannot (step names, cycles,
     * cross-references) and build the instance.  Bind steps here with
     * ndf_host.step_new().  Errors go through ndf_host.fail_at(). */
    int (*create)(const struct ndf_host *host, const ndf_value *params, void **instance);

    /* Required.  Frees the instance and every step bound for it. */
    void (*destroy)(const struct ndf_host *host, void *instance);

    /* Required.  Run one execution in record node `exec` (kind PATTERN).
     * Returns NDF_OK on success (including success with tolerated failures,
     * which the plugin marks NDF_STATE_DEGRADED) or an ndf_status.  Anything
     * the plugin needs to roll back later is attached with
     * ndf_host.exec_set_data(). */
    int (*run)(const struct ndf_host *host, ndf_exec *exec, void *instance);

    /* Optional.  Roll back a finished execution.  `level` is "pattern",
     * "phase" or "complete"; `target` names a phase to roll back to, or is
     * NULL.  Returns an ndf_status. */
    int (*rollback)(const struct ndf_host *host, ndf_exec *exec, void *instance,
                    const char *level, const char *target);

    /* Optional.  Further say whether the pattern suits a context, after the
     * host's own domain / agent-type / attribute matching accepted it.
     * Returns 1 (suits) or 0; when 0, a reason given with host->fail() is
     * what the host shows if it refuses an explicit run for it (unforced
     * runs of a context the type refuses do not start). */
    int (*matches)(const struct ndf_host *host, void *instance, const ndf_context *ctx);
} ndf_pattern_type_def;

#endif

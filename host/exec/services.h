/* The host services table handed to plugins (ndf_host), and the host-side
 * objects behind its handles that are not owned by another module. */
#ifndef NDF_SERVICES_H
#define NDF_SERVICES_H

#include <stdatomic.h>
#include <stdint.h>
#include <ndf/sdk.h>
#include "plugin/loader.h"
#include "base/value.h"

/* The one table, filled at compile time. */
extern const ndf_host host_services;

/* A step bound to its parameters (ndf_host.step_new). */
struct ndf_step {
    const provided *type;
    ndf_value *params; /* validated GROUP, owned */
    void *instance;    /* from the step's create(), or NULL */
    /* Isolated (isolate.h): run in a worker process, whose own binding
     * (create() included) is made there and found again by `serial`. */
    int isolated;
    uint64_t serial;   /* unique in this process */
    /* Its last in-process call took under a millisecond, so the next is
     * not measured with the thread CPU clock (services_exec.c). */
    atomic_int cpu_short;
};

/* The execution half of the table, in services_exec.c. */
const ndf_context *svc_exec_context(const ndf_exec *node);
ndf_exec *svc_node_new(ndf_exec *parent, ndf_node_kind kind, const char *name);
void svc_node_set_state(ndf_exec *node, ndf_state state, const char *fmt, ...) NDF_PRINTF(3, 4);
ndf_state svc_node_state(const ndf_exec *node);
const char *svc_node_name(const ndf_exec *node);
void svc_node_log(ndf_exec *node, int level, const char *fmt, ...) NDF_PRINTF(3, 4);
const char *svc_exec_id(const ndf_exec *node);
int svc_exec_set_data(ndf_exec *node, void *data, void (*free_fn)(void *));
void *svc_exec_data(const ndf_exec *node);
int svc_run_step(ndf_exec *node, const ndf_step *step, double timeout_s);
int svc_undo_step(ndf_exec *node, const ndf_step *step);
int svc_run_pattern(ndf_exec *node, const char *name, double timeout_s);
int svc_rollback_pattern(ndf_exec *node, const char *level, const char *target);
ndf_group *svc_group_new(ndf_exec *node, unsigned max_concurrent);
int svc_group_spawn(ndf_group *group, ndf_work_fn fn, void *arg);
int svc_group_wait(ndf_group *group);
void svc_group_free(ndf_group *group);
int svc_cancelled(const ndf_exec *node);
double svc_remaining(const ndf_exec *node);
int svc_sleep(ndf_exec *node, double seconds);
int svc_resources_wait(ndf_exec *node, double cpu, double memory);
int svc_resources_usage(double *cpu, double *memory, double *disk_io);
int svc_spawn(ndf_exec *node, const ndf_spawn *opts, ndf_spawn_result *result);
int svc_expand(const ndf_exec *node, const char *tmpl, char **out);
/* svc_expand's rule without a node: variables from `ctx`, ${execution_id}
 * from `id`, or left as written when `id` is NULL (ndf plan).  Free *out
 * with free(). */
int svc_expand_ctx(const ndf_context *ctx, const char *id, const char *tmpl, char **out);
ndf_group *svc_group_new_any(ndf_exec *node, unsigned max_concurrent);
int svc_group_wait_any(ndf_group *group, void **arg, int *status);
int svc_group_cancel(ndf_group *group);
void svc_node_cancel(ndf_exec *node);
int svc_node_set_result(ndf_exec *node, const char *text);
int svc_node_set_metric(ndf_exec *node, const char *name, double value);
int svc_node_result(const ndf_exec *node, char **out);
int svc_task_new(const ndf_task_spec *spec, ndf_task **out);
void svc_task_free(ndf_task *task);
const ndf_step *svc_task_step(const ndf_task *task);
int svc_task_run(ndf_exec *node, const ndf_task *task);
int svc_task_undo(ndf_exec *node, const ndf_task *task);
/* fail_at() for the host's own callers (services_exec.c). */
int svc_fail_at_value(const ndf_value *where, int status, const char *fmt, ...) NDF_PRINTF(3, 4);
/* ndf_host.step_new with the binding's "isolation" value (NULL: the
 * plugin's policy; else "none" or "process", any other an error placed at
 * its file:line). */
int svc_step_bind(const char *type, const ndf_value *params, const ndf_value *where,
                  const ndf_value *isolation, ndf_step **out);

#endif

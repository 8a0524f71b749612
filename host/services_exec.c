/* The execution half of the services table.  Placeholder bodies until the
 * executor lands: each refuses with a clear status, never crashes. */
#include "build-config.h"

#include <math.h>
#include <stdlib.h>

#include "services.h"
#include "util.h"

#define NOT_YET() err_set(NDF_ERR_EXECUTION, "%s: the executor is not part of this build", __func__)

const ndf_context *svc_exec_context(const ndf_exec *node) { return NULL; }
ndf_exec *svc_node_new(ndf_exec *parent, ndf_node_kind kind, const char *name) { return NULL; }
void svc_node_set_state(ndf_exec *node, ndf_state state, const char *fmt, ...) {}
ndf_state svc_node_state(const ndf_exec *node) { return NDF_STATE_PENDING; }
const char *svc_node_name(const ndf_exec *node) { return ""; }
void svc_node_log(ndf_exec *node, int level, const char *fmt, ...) {}
const char *svc_exec_id(const ndf_exec *node) { return ""; }
int svc_exec_set_data(ndf_exec *node, void *data, void (*free_fn)(void *)) { return NOT_YET(); }
void *svc_exec_data(const ndf_exec *node) { return NULL; }
int svc_run_step(ndf_exec *node, const ndf_step *step, double timeout_s) { return NOT_YET(); }
int svc_undo_step(ndf_exec *node, const ndf_step *step) { return NOT_YET(); }
int svc_run_pattern(ndf_exec *node, const char *name, double timeout_s) { return NOT_YET(); }
int svc_rollback_pattern(ndf_exec *node, const char *level, const char *target) { return NOT_YET(); }
ndf_group *svc_group_new(ndf_exec *node, unsigned max_concurrent) { return NULL; }
int svc_group_spawn(ndf_group *group, ndf_work_fn fn, void *arg) { return NOT_YET(); }
int svc_group_wait(ndf_group *group) { return NOT_YET(); }
void svc_group_free(ndf_group *group) {}
int svc_cancelled(const ndf_exec *node) { return 0; }
double svc_remaining(const ndf_exec *node) { return INFINITY; }
int svc_sleep(ndf_exec *node, double seconds) { return NOT_YET(); }
int svc_resources_wait(ndf_exec *node, double cpu, double memory) { return NOT_YET(); }
int svc_resources_usage(double *cpu, double *memory, double *disk_io) { return NOT_YET(); }
int svc_spawn(ndf_exec *node, const ndf_spawn *opts, ndf_spawn_result *result) { return NOT_YET(); }
int svc_expand(const ndf_exec *node, const char *tmpl, char **out) { return NOT_YET(); }

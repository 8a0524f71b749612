/* The host services table: what a plugin can ask of the host.  Each member
 * is a thin adapter over the module that owns the data; the execution
 * members live in services_exec.c. */
#include "build-config.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/context.h"
#include "conf/agents.h"
#include "plugin/loader.h"
#include "exec/isolate.h"
#include "exec/record.h"
#include "exec/services.h"
#include "base/util.h"
#include "base/value.h"

static void svc_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

static int svc_fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(status, fmt, ap);
    va_end(ap);
    return status < 0 ? status : NDF_ERR_EXECUTION;
}

static int svc_fail_at(const ndf_value *where, int status, const char *fmt, ...)
{
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (where && where->file)
        err_set(status, "%s:%d: %s", where->file, where->line, msg);
    else
        err_set(status, "%s", msg);
    return status < 0 ? status : NDF_ERR_EXECUTION;
}

int svc_fail_at_value(const ndf_value *where, int status, const char *fmt, ...)
{
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return svc_fail_at(where, status, "%s", msg);
}

static int svc_register_pattern_type(ndf_registrar *reg, const ndf_pattern_type_def *def)
{
    return loader_registrar_add(reg, PROVIDED_PATTERN_TYPE, def);
}

static int svc_register_step(ndf_registrar *reg, const ndf_step_def *def)
{
    return loader_registrar_add(reg, PROVIDED_STEP, def);
}

static ndf_value_type svc_value_type(const ndf_value *v)
{
    return v ? v->type : NDF_VALUE_NONE;
}

static const char *svc_value_name(const ndf_value *v)
{
    return v ? v->name : NULL;
}

static const ndf_value *svc_value_at(const ndf_value *v, size_t i)
{
    return value_at(v, i);
}

static const ndf_value *svc_value_get(const ndf_value *g, const char *name)
{
    return value_get(g, name);
}

static const char *svc_value_file(const ndf_value *v)
{
    return v ? v->file : NULL;
}

static int svc_value_line(const ndf_value *v)
{
    return v ? v->line : 0;
}

static const char *svc_ctx_domain(const ndf_context *c)
{
    return c ? c->domain : "";
}

static const char *svc_ctx_agent_type(const ndf_context *c)
{
    return c ? c->agent_type : "";
}

static int svc_ctx_priority(const ndf_context *c)
{
    return c ? c->priority : NDF_PRIORITY_LOWEST;
}

static const ndf_value *svc_ctx_attributes(const ndf_context *c)
{
    return c ? c->attrs : NULL;
}

/* Step definitions older than the running host are read only up to their
 * size; a member they do not have counts as NULL. */
#define DEF_HAS(def, member)                                                                       \
    ((def)->size >= offsetof(__typeof__(*(def)), member) + sizeof((def)->member))

static int svc_step_new(const char *type, const ndf_value *params, const ndf_value *where,
                        ndf_step **out)
{
    return svc_step_bind(type, params, where, NULL, out);
}

int svc_step_bind(const char *type, const ndf_value *params, const ndf_value *where,
                  const ndf_value *isolation, ndf_step **out)
{
    *out = NULL;
    isolate_mode mode = ISOLATE_AUTO;
    if (isolation) {
        const char *m = isolation->type == NDF_VALUE_STRING ? isolation->u.s : NULL;
        if (!m || (strcmp(m, "none") != 0 && strcmp(m, "process") != 0)) {
            char *shown = m ? xstrdup(m) : NULL;
            int rc = svc_fail_at_value(isolation, NDF_ERR_VALIDATION,
                                       "'isolation' is %s%s%s, expected none or process",
                                       shown ? "'" : "", shown ? shown : "not a string",
                                       shown ? "'" : "");
            free(shown);
            return rc;
        }
        isolate_mode_parse(m, &mode);
    }
    loader *ld = loader_scope();
    const provided *p = ld ? loader_find(ld, PROVIDED_STEP, type) : NULL;
    if (!p)
        return svc_fail_at(where, NDF_ERR_VALIDATION, "unknown step '%s'%s", type ? type : "",
                           ld ? "" : " (no plugins loaded)");
    ndf_value *copy = params ? value_dup(params) : value_new_group(NULL);
    if (!params && where)
        value_set_pos(copy, where->file, where->line);
    char what[160];
    snprintf(what, sizeof what, "step '%s'", p->name);
    int rc = agents_apply(copy, p->def.step->params, what);
    if (!rc)
        rc = value_validate(copy, p->def.step->params, what);
    if (rc) {
        value_free(copy);
        return rc;
    }
    ndf_step *s = xcalloc(1, sizeof *s);
    s->type = p;
    s->params = copy;
    static atomic_uint_fast64_t serials;
    s->serial = atomic_fetch_add(&serials, 1) + 1;
    /* An isolated step's create() runs in its worker, on first use: a
     * plugin that is not trusted runs no code in the host. */
    s->isolated = isolate_decide(p, mode);
    if (s->isolated < 0) {
        char *why = xstrdup(err_msg());
        svc_fail_at_value(isolation, NDF_ERR_VALIDATION, "%s", why);
        free(why);
        value_free(copy);
        free(s);
        return NDF_ERR_VALIDATION;
    }
    const ndf_step_def *d = p->def.step;
    if (!s->isolated && DEF_HAS(d, create) && d->create) {
        err_clear();
        rc = d->create(&host_services, copy, &s->instance);
        if (rc) {
            if (!*err_msg())
                svc_fail_at(copy, rc, "step '%s' refused its parameters", p->name);
            value_free(copy);
            free(s);
            return rc < 0 ? rc : NDF_ERR_VALIDATION;
        }
    }
    loader_pin(p); /* the bound step keeps its plugin's code loaded */
    *out = s;
    return NDF_OK;
}

static void svc_step_free(ndf_step *s)
{
    if (!s)
        return;
    const ndf_step_def *d = s->type->def.step;
    if (s->instance && DEF_HAS(d, destroy) && d->destroy)
        d->destroy(&host_services, s->instance);
    loader_unpin(s->type);
    value_free(s->params);
    free(s);
}

static const char *svc_step_type(const ndf_step *s)
{
    return s ? s->type->name : NULL;
}

static int svc_require_pattern(const ndf_value *where, const char *name)
{
    loader_require(name ? name : "", where ? where->file : NULL, where ? where->line : 0);
    return NDF_OK;
}

static void svc_free(void *p)
{
    free(p);
}

static const char *svc_last_error(void)
{
    return err_msg();
}

static size_t svc_node_message(const ndf_exec *node, char *buf, size_t size)
{
    if (!node) {
        if (size)
            buf[0] = '\0';
        return 0;
    }
    /* The message can be replaced at any time by the thread running the
     * node, so it is copied under the record's lock, never lent out. */
    pthread_mutex_lock(&node->rec->lock);
    const char *m = node->message ? node->message : "";
    size_t len = strlen(m);
    if (size) {
        size_t n = len < size - 1 ? len : size - 1;
        memcpy(buf, m, n);
        buf[n] = '\0';
    }
    pthread_mutex_unlock(&node->rec->lock);
    return len;
}

static void svc_node_set_timeout(ndf_exec *node, double seconds)
{
    if (node && seconds > 0)
        node_limit_deadline(node, now_mono() + seconds);
}

const ndf_host host_services = {
    .size = sizeof(ndf_host),
    .abi_major = NDF_ABI_MAJOR,
    .abi_minor = NDF_ABI_MINOR,
    .host_version = PACKAGE_VERSION,
    .log = svc_log,
    .fail = svc_fail,
    .fail_at = svc_fail_at,
    .register_pattern_type = svc_register_pattern_type,
    .register_step = svc_register_step,
    .value_type = svc_value_type,
    .value_string = value_string,
    .value_int = value_int,
    .value_number = value_number,
    .value_bool = value_bool,
    .value_count = value_count,
    .value_at = svc_value_at,
    .value_name = svc_value_name,
    .value_get = svc_value_get,
    .value_file = svc_value_file,
    .value_line = svc_value_line,
    .exec_context = svc_exec_context,
    .ctx_domain = svc_ctx_domain,
    .ctx_agent_type = svc_ctx_agent_type,
    .ctx_priority = svc_ctx_priority,
    .ctx_attributes = svc_ctx_attributes,
    .step_new = svc_step_new,
    .step_free = svc_step_free,
    .step_type = svc_step_type,
    .require_pattern = svc_require_pattern,
    .node_new = svc_node_new,
    .node_set_state = svc_node_set_state,
    .node_state = svc_node_state,
    .node_name = svc_node_name,
    .node_log = svc_node_log,
    .exec_id = svc_exec_id,
    .exec_set_data = svc_exec_set_data,
    .exec_data = svc_exec_data,
    .run_step = svc_run_step,
    .undo_step = svc_undo_step,
    .run_pattern = svc_run_pattern,
    .rollback_pattern = svc_rollback_pattern,
    .group_new = svc_group_new,
    .group_spawn = svc_group_spawn,
    .group_wait = svc_group_wait,
    .group_free = svc_group_free,
    .cancelled = svc_cancelled,
    .remaining = svc_remaining,
    .sleep = svc_sleep,
    .resources_wait = svc_resources_wait,
    .resources_usage = svc_resources_usage,
    .spawn = svc_spawn,
    .expand = svc_expand,
    .free = svc_free,
    .last_error = svc_last_error,
    .node_message = svc_node_message,
    .node_set_timeout = svc_node_set_timeout,
    .node_cancel = svc_node_cancel,
    .group_cancel = svc_group_cancel,
    .group_new_any = svc_group_new_any,
    .group_wait_any = svc_group_wait_any,
    .task_new = svc_task_new,
    .task_run = svc_task_run,
    .task_undo = svc_task_undo,
    .task_free = svc_task_free,
    .task_step = svc_task_step,
    .node_set_result = svc_node_set_result,
    .node_set_metric = svc_node_set_metric,
    .node_result = svc_node_result,
};

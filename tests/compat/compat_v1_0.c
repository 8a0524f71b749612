/* The ABI 1.0 compatibility fixture.
 *
 * THIS FILE MUST NEVER CHANGE.  It is the compatibility promise of
 * ndf-plugin(7): a plugin written against ABI 1.0, exactly as below, keeps
 * building against every later SDK of major 1, loads into every later host
 * of major 1, and works.  If a change to the SDK or the host breaks this
 * file or its test (tests/check_loader.c, "compat"), the change is wrong, not
 * this file.  New ABI features get new fixtures; this one stays as written.
 *
 * It registers a pattern type ("compat_list", which binds one step per entry
 * of its `steps` parameter and runs them in order) and a step
 * ("compat_echo"), and uses the services a typical 1.0 plugin uses: logging,
 * failures with positions, the value accessors, step binding, the record and
 * running steps. */
#include <stdlib.h>
#include <string.h>

#include <ndf/sdk.h>

typedef struct compat_list {
    size_t nsteps;
    ndf_step **steps;
} compat_list;

typedef struct echo_state {
    char *text;
    long repeat;
} echo_state;

static int inits;

static int echo_create(const ndf_host *host, const ndf_value *params, void **instance)
{
    const ndf_value *text = host->value_get(params, "text");
    if (host->value_type(text) != NDF_VALUE_STRING)
        return host->fail_at(params, NDF_ERR_VALIDATION, "compat_echo: 'text' must be a string");
    if (strcmp(host->value_string(text), "refuse me") == 0)
        return host->fail_at(text, NDF_ERR_VALIDATION, "compat_echo: refusing '%s'",
                             host->value_string(text));
    echo_state *st = malloc(sizeof *st);
    if (!st)
        return host->fail(NDF_ERR_NOMEM, "compat_echo: out of memory");
    size_t n = strlen(host->value_string(text));
    st->text = malloc(n + 1);
    if (!st->text) {
        free(st);
        return host->fail(NDF_ERR_NOMEM, "compat_echo: out of memory");
    }
    memcpy(st->text, host->value_string(text), n + 1);
    st->repeat = (long)host->value_int(host->value_get(params, "repeat"));
    *instance = st;
    return NDF_OK;
}

static void echo_destroy(const ndf_host *host, void *instance)
{
    echo_state *st = instance;
    free(st->text);
    free(st);
}

static int echo_run(const ndf_host *host, ndf_exec *node, const ndf_value *params, void *instance)
{
    echo_state *st = instance;
    (void)params;
    for (long i = 0; i < st->repeat; i++) {
        int rc = host->cancelled(node);
        if (rc)
            return rc;
        host->node_log(node, NDF_LOG_INFO, "%s", st->text);
    }
    return NDF_OK;
}

static void list_free(const ndf_host *host, compat_list *l)
{
    for (size_t i = 0; i < l->nsteps; i++)
        host->step_free(l->steps[i]);
    free(l->steps);
    free(l);
}

static int list_create(const ndf_host *host, const ndf_value *params, void **instance)
{
    const ndf_value *steps = host->value_get(params, "steps");
    compat_list *l = calloc(1, sizeof *l);
    if (!l)
        return host->fail(NDF_ERR_NOMEM, "compat_list: out of memory");
    size_t n = host->value_count(steps);
    l->steps = calloc(n ? n : 1, sizeof *l->steps);
    if (!l->steps) {
        free(l);
        return host->fail(NDF_ERR_NOMEM, "compat_list: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const ndf_value *s = host->value_at(steps, i);
        const char *type = host->value_string(host->value_get(s, "step"));
        int rc = host->step_new(type, host->value_get(s, "params"), s, &l->steps[l->nsteps]);
        if (rc) {
            list_free(host, l);
            return rc;
        }
        l->nsteps++;
    }
    *instance = l;
    return NDF_OK;
}

static void list_destroy(const ndf_host *host, void *instance)
{
    list_free(host, instance);
}

static int list_run(const ndf_host *host, ndf_exec *exec, void *instance)
{
    compat_list *l = instance;
    for (size_t i = 0; i < l->nsteps; i++) {
        ndf_exec *node = host->node_new(exec, NDF_NODE_STEP, host->step_type(l->steps[i]));
        if (!node)
            return host->fail(NDF_ERR_NOMEM, "compat_list: out of memory");
        int rc = host->run_step(node, l->steps[i], 0);
        if (rc)
            return rc;
    }
    return NDF_OK;
}

static const ndf_param_spec echo_params[] = {
    NDF_PARAM("text", NDF_VALUE_STRING, NDF_PARAM_REQUIRED, NULL, "what to log"),
    NDF_PARAM_RANGED("repeat", NDF_VALUE_INT, 0, "1", 0, 10, "how many times"),
    NDF_PARAM_END,
};

static const ndf_param_spec step_entry[] = {
    NDF_PARAM("step", NDF_VALUE_STRING, NDF_PARAM_REQUIRED, NULL, "a step type"),
    NDF_PARAM_GROUP("params", NDF_PARAM_OPEN, NULL, "the step's parameters"),
    NDF_PARAM_END,
};

static const ndf_param_spec list_params[] = {
    NDF_PARAM_LIST("steps", NDF_VALUE_GROUP, NDF_PARAM_REQUIRED, step_entry, "steps, in order"),
    NDF_PARAM_END,
};

static const ndf_step_def echo_def = {
    sizeof(ndf_step_def), "compat_echo", "logs a text", echo_params, 0,
    echo_create,          echo_destroy,  echo_run,      NULL,
};

static const ndf_pattern_type_def list_def = {
    sizeof(ndf_pattern_type_def),
    "compat_list",
    "runs its steps in order",
    list_params,
    list_create,
    list_destroy,
    list_run,
    NULL,
    NULL,
};

static int compat_init(const ndf_host *host, ndf_registrar *reg, void **state)
{
    if (!NDF_HOST_HAS(host, expand))
        return host->fail(NDF_ERR_INVALID, "compat_v1_0: host services table too small");
    int rc = host->register_step(reg, &echo_def);
    if (rc == NDF_OK)
        rc = host->register_pattern_type(reg, &list_def);
    if (rc == NDF_OK) {
        inits++;
        *state = &inits;
        host->log(NDF_LOG_DEBUG, "compat_v1_0: ready (host %s, ABI %u.%u)", host->host_version,
                  host->abi_major, host->abi_minor);
    }
    return rc;
}

static void compat_fini(const ndf_host *host, void *state)
{
    (void)host;
    (*(int *)state)--;
}

NDF_PLUGIN_DEFINE("compat_v1_0", "1.0.0", "MIT", "the ABI 1.0 compatibility fixture", compat_init,
                  compat_fini);

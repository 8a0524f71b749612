/* The template plugin: one step ("hello") and one pattern type ("once").
 * Copy this directory to start your own plugin; README.md says how to build
 * and install it, and ndf-plugin(7) is the full contract.
 *
 * A plugin is built against the SDK alone (<ndf/sdk.h>, `pkg-config
 * ndf-sdk`), never against the host.  It exports exactly one symbol, the
 * descriptor made by NDF_PLUGIN_DEFINE() at the bottom of this file; every
 * other name here is `static`, and the SDK's flags hide everything else
 * (-fvisibility=hidden) anyway. */
#include <stdlib.h>

/* The oldest SDK minor whose calls this plugin uses: it records this minor
 * in its descriptor, so every host of ABI 1.0 or later loads it.  Raise it
 * when you use a newer member of ndf_host (the compiler warns where you do;
 * see NDF_SINCE in <ndf/host.h>). */
#define NDF_SDK_MIN_MINOR 0
#include <ndf/sdk.h>

/* A note on state: the host may load a second copy of this file while the
 * first still runs (hot reload), so keep no mutable globals.  Everything
 * below that is not `const` lives in an instance the host hands back. */

/* ---------------------------------------------------------------------- */
/* The step "hello": writes a greeting to the execution's record.          */
/* ---------------------------------------------------------------------- */

/* Every parameter is declared with its type, flags, default and one line
 * of documentation.  The host checks a definition against this schema (and
 * fills in the defaults) before the step ever sees it, and `ndf inspect`
 * prints it.  The array ends with NDF_PARAM_END. */
static const ndf_param_spec hello_params[] = {
    NDF_PARAM("name", NDF_VALUE_STRING, 0, "\"world\"",
              "who to greet; may use ${domain}, ${agent_type}, ${priority}, ${attr.KEY}"),
    NDF_PARAM_END};

/* run() does the work in record node `node`.  `params` is the validated
 * parameter group: values are read through the host's accessors, never by
 * poking at ndf_value.  Return NDF_OK or a negative ndf_status; set the
 * message of a failure with host->fail(). */
static int hello_run(const ndf_host *host, ndf_exec *node, const ndf_value *params, void *inst)
{
    (void)inst; /* no create(), so no instance */
    const char *tmpl = host->value_string(host->value_get(params, "name"));

    /* Expand ${...} from the execution's context.  An unknown variable is
     * an error (NDF_ERR_VALIDATION, message already set by the host), not
     * an empty string: just pass the status on. */
    char *name = NULL;
    int rc = host->expand(node, tmpl, &name);
    if (rc)
        return rc;

    /* node_log() appends a line to this step's record and logs it. */
    host->node_log(node, NDF_LOG_INFO, "Hello, %s!", name);
    host->free(name); /* what the host allocates is freed with host->free (host.h) */
    return NDF_OK;
}

/* A step definition.  `size` comes first so the host knows which fields
 * this build of the plugin has; the definition must stay valid until the
 * plugin is unloaded, so make it static const.  Designated initializers
 * name every member, so a misplaced callback cannot compile into the wrong
 * slot.  create/destroy/undo are optional (left out: NULL): "hello" has no
 * state to build and nothing to undo.  .flags would be NDF_STEP_BLOCKING
 * for a step that waits on I/O or time. */
static const ndf_step_def hello_step = {
    .size = sizeof(ndf_step_def),
    .name = "hello", /* [a-z0-9_]+, unique among loaded steps */
    .description = "log a greeting to the record",
    .params = hello_params,
    .run = hello_run,
};

/* ---------------------------------------------------------------------- */
/* The pattern type "once": runs a single step.                            */
/* ---------------------------------------------------------------------- */

/* A pattern definition using it, in the host's configuration:
 *
 *   { name = "greet"; type = "once";
 *     params = { step = "hello"; params = { name = "${attr.user}"; }; }; }
 */
static const ndf_param_spec once_params[] = {
    NDF_PARAM("step", NDF_VALUE_STRING, NDF_PARAM_REQUIRED, NULL,
              "the step type to run (hello, exec, sleep, ...)"),
    /* A group without children: its members are the step's parameters,
     * which the host checks against the step's own schema in step_new(). */
    NDF_PARAM_GROUP("params", 0, NULL, "the step's parameters"),
    NDF_PARAM_RANGED("timeout", NDF_VALUE_NUMBER, 0, "0", 0, 1e9,
                     "seconds the step may take (0: only the execution's deadline)"),
    NDF_PARAM_END};

/* What create() builds from one pattern definition.  One instance per
 * pattern; executions of the same pattern may run at the same time, so
 * run() must not modify it (per-execution data goes in exec_set_data()). */
typedef struct once {
    ndf_step *step; /* bound with host->step_new(), freed with host->step_free() */
    double timeout;
} once;

/* create(): check what the schema cannot and bind the step.  Called when the
 * definition is loaded, and again when it is edited or reloaded. */
static int once_create(const ndf_host *host, const ndf_value *params, void **instance)
{
    *instance = NULL;
    once *o = calloc(1, sizeof *o);
    if (!o)
        return host->fail(NDF_ERR_NOMEM, "once: out of memory");
    o->timeout = host->value_number(host->value_get(params, "timeout"));

    /* step_new() finds the step type, validates its parameters against the
     * step's schema, and reports errors at `where` (file:line of the
     * definition). */
    const ndf_value *where = host->value_get(params, "step");
    int rc = host->step_new(host->value_string(where), host->value_get(params, "params"), where,
                            &o->step);
    if (rc) {
        free(o);
        return rc; /* the host set the message */
    }
    *instance = o;
    return NDF_OK;
}

/* destroy(): free the instance and every step bound for it. */
static void once_destroy(const ndf_host *host, void *instance)
{
    once *o = instance;
    if (!o)
        return;
    host->step_free(o->step);
    free(o);
}

/* run(): one execution, in the PATTERN node `exec`.  Make a child node for
 * the work so the record shows it, then let the host run the step there:
 * run_step() sets RUNNING and the final state, times it and applies the
 * deadlines.  The host settles the pattern node from the return value. */
static int once_run(const ndf_host *host, ndf_exec *exec, void *instance)
{
    const once *o = instance;
    ndf_exec *node = host->node_new(exec, NDF_NODE_STEP, host->step_type(o->step));
    if (!node)
        return host->fail(NDF_ERR_NOMEM, "once: out of memory");
    return host->run_step(node, o->step, o->timeout);
}

/* rollback and matches are optional (left out); the host's own matching of
 * domains and attributes is enough here. */
static const ndf_pattern_type_def once_type = {
    .size = sizeof(ndf_pattern_type_def),
    .name = "once", /* [a-z0-9_]+, unique among loaded types */
    .description = "run a single step (the template pattern type)",
    .params = once_params,
    .create = once_create,
    .destroy = once_destroy,
    .run = once_run,
};

/* ---------------------------------------------------------------------- */
/* The plugin: init registers what it provides.                            */
/* ---------------------------------------------------------------------- */

/* init() may only register (and set *state for fini).  Return a status with
 * host->fail() to refuse loading; fini() is then not called. */
static int example_init(const ndf_host *host, ndf_registrar *reg, void **state)
{
    *state = NULL;
    int rc = host->register_step(reg, &hello_step);
    if (rc)
        return rc;
    return host->register_pattern_type(reg, &once_type);
}

/* The one exported symbol: name, version, SPDX license, description, init,
 * fini (optional; NULL here, as there is no state to release). */
NDF_PLUGIN_DEFINE("example", "1.0.0", "MIT", "the template plugin: a hello step and a once pattern",
                  example_init, NULL);

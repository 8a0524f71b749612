/* A third party's plugin, built in the tests only from the installed SDK
 * (tests/shell/install.sh): the `quorum` pattern type, which succeeds as
 * soon as `need` of its tasks have, and cancels the rest with SDK 1.2's
 * group_cancel (they end CANCELLED, their processes killed with the grace
 * period), and the `delay` step it is tested with (sleeps, then succeeds or
 * fails; its result says which), which `ndf test-step` checks alone.  It
 * uses only what <ndf/sdk.h> offers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NDF_SDK_MIN_MINOR 2 /* group_new_any, group_cancel, task_*, node_set_result */
#include <ndf/sdk.h>

/* ---- the delay step ---- */

static const ndf_param_spec delay_params[] = {
    NDF_PARAM_RANGED("seconds", NDF_VALUE_NUMBER, 0, "0", 0, 1e6,
                     "how long to wait (cut short by cancellation)"),
    NDF_PARAM("ok", NDF_VALUE_BOOL, 0, "true", "succeed (true) or fail (false) after the wait"),
    NDF_PARAM_END};

static int delay_run(const ndf_host *host, ndf_exec *node, const ndf_value *params, void *inst)
{
    (void)inst;
    int rc = host->sleep(node, host->value_number(host->value_get(params, "seconds")));
    if (rc)
        return rc; /* NDF_ERR_CANCELLED or NDF_ERR_TIMEOUT, message set */
    int ok = host->value_bool(host->value_get(params, "ok"));
    host->node_set_result(node, ok ? "done" : "gave up");
    return ok ? NDF_OK : host->fail(NDF_ERR_EXECUTION, "delay: told to fail");
}

static const ndf_step_def delay_step = {
    .size = sizeof(ndf_step_def),
    .name = "delay",
    .description = "wait, then succeed or fail",
    .params = delay_params,
    .flags = NDF_STEP_BLOCKING,
    .run = delay_run,
};

/* ---- the quorum pattern type ---- */

static const ndf_param_spec task_params[] = {
    NDF_PARAM("name", NDF_VALUE_STRING, NDF_PARAM_REQUIRED, NULL, "the task's name"),
    NDF_PARAM("step", NDF_VALUE_STRING, NDF_PARAM_REQUIRED, NULL, "the step type it runs"),
    NDF_PARAM_GROUP("params", 0, NULL, "the step's parameters"), NDF_TASK_PARAMS, NDF_PARAM_END};

static const ndf_param_spec quorum_params[] = {
    NDF_PARAM_LIST("tasks", NDF_VALUE_GROUP, NDF_PARAM_REQUIRED, task_params,
                   "the candidates, all started at once"),
    NDF_PARAM_RANGED("need", NDF_VALUE_INT, 0, "1", 1, 4096,
                     "successes that make the pattern succeed; the rest are cancelled"),
    NDF_PARAM_END};

typedef struct quorum {
    size_t n, need;
    char **names;
    ndf_task **tasks;
} quorum;

static void quorum_destroy(const ndf_host *host, void *instance)
{
    quorum *q = instance;
    if (!q)
        return;
    for (size_t i = 0; i < q->n; i++) {
        free(q->names[i]);
        host->task_free(q->tasks[i]);
    }
    free(q->names);
    free(q->tasks);
    free(q);
}

static int quorum_create(const ndf_host *host, const ndf_value *params, void **instance)
{
    const ndf_value *list = host->value_get(params, "tasks");
    size_t n = host->value_count(list);
    quorum *q = calloc(1, sizeof *q);
    if (!q || !(q->names = calloc(n + 1, sizeof *q->names)) ||
        !(q->tasks = calloc(n + 1, sizeof *q->tasks))) {
        quorum_destroy(host, q);
        return host->fail(NDF_ERR_NOMEM, "quorum: out of memory");
    }
    q->need = (size_t)host->value_int(host->value_get(params, "need"));
    if (q->need > n) {
        size_t need = q->need;
        quorum_destroy(host, q);
        return host->fail_at(host->value_get(params, "need"), NDF_ERR_VALIDATION,
                             "quorum: need = %zu, but there are only %zu tasks", need, n);
    }
    for (size_t i = 0; i < n; i++) {
        const ndf_value *e = host->value_at(list, i);
        ndf_task_spec spec;
        ndf_task_spec_read(host, e, &spec);
        int rc = host->task_new(&spec, &q->tasks[i]);
        q->names[i] = strdup(host->value_string(host->value_get(e, "name")));
        q->n = i + 1;
        if (!rc && !q->names[i])
            rc = host->fail(NDF_ERR_NOMEM, "quorum: out of memory");
        if (rc) {
            quorum_destroy(host, q);
            return rc;
        }
    }
    *instance = q;
    return NDF_OK;
}

/* One candidate: its node and task, for the group's work. */
typedef struct cand {
    const ndf_host *host;
    ndf_exec *node;
    const ndf_task *task;
} cand;

static int cand_run(void *arg)
{
    cand *c = arg;
    return c->host->task_run(c->node, c->task);
}

static int quorum_run(const ndf_host *host, ndf_exec *exec, void *instance)
{
    const quorum *q = instance;
    cand *cs = calloc(q->n + 1, sizeof *cs);
    ndf_group *g = cs ? host->group_new_any(exec, 0) : NULL;
    if (!g) {
        free(cs);
        return host->fail(NDF_ERR_NOMEM, "quorum: out of memory");
    }
    for (size_t i = 0; i < q->n; i++) {
        cs[i] = (cand){host, host->node_new(exec, NDF_NODE_TASK, q->names[i]), q->tasks[i]};
        if (!cs[i].node || host->group_spawn(g, cand_run, &cs[i]) != NDF_OK) {
            host->group_cancel(g);
            break;
        }
    }
    size_t ok = 0, failed = 0, cancelled = 0;
    int decided = 0, rc = NDF_OK, st;
    void *arg;
    /* Every candidate is reported once, the cancelled ones too, so the
     * loop ends with NDF_ERR_NOT_FOUND when all are accounted for. */
    while ((rc = host->group_wait_any(g, &arg, &st)) == NDF_OK) {
        if (st == NDF_OK)
            ok++;
        else if (st == NDF_ERR_CANCELLED)
            cancelled++;
        else
            failed++;
        if (!decided && (ok >= q->need || q->n - failed < q->need)) {
            decided = 1;
            int losers = host->group_cancel(g);
            host->node_log(exec, NDF_LOG_INFO, "%s with %zu of %zu; %d cancelled",
                           ok >= q->need ? "quorum reached" : "quorum lost", ok, q->n, losers);
        }
    }
    host->group_free(g);
    free(cs);
    if (rc != NDF_ERR_NOT_FOUND)
        return rc; /* the pattern's own deadline or cancellation */
    if (ok >= q->need)
        return NDF_OK;
    return host->fail(NDF_ERR_EXECUTION, "quorum lost: %zu of %zu succeeded, %zu needed", ok, q->n,
                      q->need);
}

static const ndf_pattern_type_def quorum_type = {
    .size = sizeof(ndf_pattern_type_def),
    .name = "quorum",
    .description = "start every task; succeed once `need` have, cancelling the rest",
    .params = quorum_params,
    .create = quorum_create,
    .destroy = quorum_destroy,
    .run = quorum_run,
};

static int quorum_init(const ndf_host *host, ndf_registrar *reg, void **state)
{
    *state = NULL;
    int rc = host->register_step(reg, &delay_step);
    return rc ? rc : host->register_pattern_type(reg, &quorum_type);
}

NDF_PLUGIN_DEFINE("quorum", "1.0.0", "MIT", "a quorum pattern type and a delay step (a test)",
                  quorum_init, NULL);

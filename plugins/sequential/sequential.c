/* The "sequential" pattern type (the seed's SequentialDelegationPattern):
 * ordered steps, each run only after the one before it completed, with
 * per-step timeouts and retries, a timeout for the whole sequence, and
 * rollback of the completed steps in reverse order on failure.  Steps are
 * bound and retried by the host's task helper (ndf_host.task_new/task_run,
 * SDK 1.2), so this file holds only what is particular to a sequence. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ndf/sdk.h>

static const ndf_param_spec step_entry[] = {
    NDF_PARAM("name", NDF_VALUE_STRING, NDF_PARAM_REQUIRED, NULL,
              "the step's name, unique within the sequence"),
    NDF_PARAM("step", NDF_VALUE_STRING, NDF_PARAM_REQUIRED, NULL,
              "the step type to run (exec, sleep, log, ..., or a plugin's)"),
    NDF_PARAM_GROUP("params", 0, NULL, "the step type's parameters (checked against its schema)"),
    NDF_TASK_PARAMS,
    NDF_PARAM_END};

static const ndf_param_spec seq_params[] = {
    NDF_PARAM_LIST("steps", NDF_VALUE_GROUP, NDF_PARAM_REQUIRED, step_entry,
                   "the steps, in the order they run"),
    NDF_PARAM_RANGED("timeout_seconds", NDF_VALUE_NUMBER, 0, NULL, 0, 1e9,
                     "deadline for the whole sequence, in seconds (absent or 0: none)"),
    NDF_PARAM("rollback_enabled", NDF_VALUE_BOOL, 0, "true",
              "undo the completed steps, newest first, when a step fails or times out"),
    NDF_PARAM_END};

typedef struct seq_step {
    char *name;
    ndf_task *task;     /* the step with its timeout and retries */
} seq_step;

typedef struct seq {
    seq_step *steps;
    size_t n;
    double timeout;     /* whole sequence; <= 0: none */
    int rollback;
} seq;

/* What one execution leaves for a later rollback(). */
typedef struct seq_run {
    const seq *inst;    /* the instance that ran it (sanity check only) */
    size_t n;
    ndf_exec **nodes;
    unsigned char *done; /* 1: completed and not yet undone */
} seq_run;

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Step names seen so far, for the duplicate check at create(): open
 * addressing over indexes into the steps (0: empty), so a definition of a
 * million steps loads in linear time. */
typedef struct name_set {
    size_t *slot;
    size_t mask;
} name_set;

static size_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)(h ^ (h >> 29));
}

/* The index of a step already named `name`, or SIZE_MAX after adding
 * `idx` under it. */
static size_t name_set_add(name_set *ns, const seq_step *steps, const char *name, size_t idx)
{
    for (size_t h = hash_name(name) & ns->mask;; h = (h + 1) & ns->mask) {
        if (!ns->slot[h]) {
            ns->slot[h] = idx + 1;
            return SIZE_MAX;
        }
        if (strcmp(steps[ns->slot[h] - 1].name, name) == 0)
            return ns->slot[h] - 1;
    }
}

static void seq_destroy(const ndf_host *host, void *instance)
{
    seq *s = instance;
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->steps[i].name);
        host->task_free(s->steps[i].task);
    }
    free(s->steps);
    free(s);
}

static int seq_create(const ndf_host *host, const ndf_value *params, void **instance)
{
    *instance = NULL;
    const ndf_value *list = host->value_get(params, "steps");
    size_t n = host->value_count(list);
    seq *s = calloc(1, sizeof *s);
    name_set ns = {NULL, 0};
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    ns.mask = cap - 1;
    if (!s || (n && !(s->steps = calloc(n, sizeof *s->steps))) ||
        !(ns.slot = calloc(cap, sizeof *ns.slot))) {
        free(s ? s->steps : NULL);
        free(s);
        return host->fail(NDF_ERR_NOMEM, "sequential: out of memory");
    }
    s->timeout = host->value_number(host->value_get(params, "timeout_seconds"));
    s->rollback = host->value_bool(host->value_get(params, "rollback_enabled"));

    int rc;
    for (size_t i = 0; i < n; i++) {
        const ndf_value *e = host->value_at(list, i);
        const char *name = host->value_string(host->value_get(e, "name"));
        if (!*name) {
            rc = host->fail_at(e, NDF_ERR_VALIDATION, "sequential: step %zu has an empty name",
                               i + 1);
            goto fail;
        }
        seq_step *st = &s->steps[s->n];
        if (!(st->name = strdup(name))) {
            rc = host->fail(NDF_ERR_NOMEM, "sequential: out of memory");
            goto fail;
        }
        size_t j = name_set_add(&ns, s->steps, name, s->n);
        if (j != SIZE_MAX) {
            free(st->name);
            st->name = NULL;
            const ndf_value *first = host->value_at(list, j);
            rc = host->fail_at(e, NDF_ERR_VALIDATION,
                               "sequential: duplicate step name '%s' (first defined at line %d)",
                               name, host->value_line(first));
            goto fail;
        }
        s->n++;
        ndf_task_spec spec;
        ndf_task_spec_read(host, e, &spec);
        spec.where = e;
        if ((rc = host->task_new(&spec, &st->task)))
            goto fail;
    }
    free(ns.slot);
    *instance = s;
    return NDF_OK;
fail:
    free(ns.slot);
    seq_destroy(host, s);
    return rc;
}

static void run_free(void *p)
{
    seq_run *r = p;
    if (!r)
        return;
    free(r->nodes);
    free(r->done);
    free(r);
}

/* Undoes the completed steps in [lower, upper), newest first.  An undo that
 * fails is reported and the others still run; one cancelled means the
 * rollback was stopped (undo actions ignore a first cancellation): no
 * other is tried, and those left are said in one line.  Returns how many
 * failed. */
static size_t undo_range(const ndf_host *host, ndf_exec *exec, seq_run *r, const seq *s,
                         size_t lower, size_t upper)
{
    size_t failed = 0;
    for (size_t i = upper; i-- > lower;) {
        if (!r->done[i])
            continue;
        int rc = host->task_undo(r->nodes[i], s->steps[i].task);
        if (rc == NDF_ERR_CANCELLED) {
            failed++;
            size_t left = 0;
            for (size_t j = i; j-- > lower;)
                left += r->done[j] != 0;
            if (left)
                host->node_log(exec, NDF_LOG_ERROR,
                               "rollback: stopped (cancelled) at step '%s'; %zu more undo "
                               "action(s) not run",
                               s->steps[i].name, left);
            else
                host->node_log(exec, NDF_LOG_ERROR, "rollback: stopped (cancelled) at step '%s'",
                               s->steps[i].name);
            break;
        }
        if (rc) {
            failed++;
            host->node_log(exec, NDF_LOG_ERROR, "rollback: undoing step '%s' failed (%s)",
                           s->steps[i].name, ndf_status_name(rc));
        } else {
            r->done[i] = 0;
        }
    }
    return failed;
}

static int seq_run_pattern(const ndf_host *host, ndf_exec *exec, void *instance)
{
    const seq *s = instance;
    seq_run *r = calloc(1, sizeof *r);
    if (r) {
        r->inst = s;
        r->n = s->n;
        r->nodes = calloc(s->n ? s->n : 1, sizeof *r->nodes);
        r->done = calloc(s->n ? s->n : 1, 1);
    }
    if (!r || !r->nodes || !r->done) {
        run_free(r);
        return host->fail(NDF_ERR_NOMEM, "sequential: out of memory");
    }
    int rc = host->exec_set_data(exec, r, run_free);
    if (rc) {
        run_free(r);
        return rc;
    }
    /* The sequence's own deadline is the pattern node's: every step and
     * retry under it sees it, and the host enforces it. */
    double t0 = mono_now();
    if (s->timeout > 0)
        host->node_set_timeout(exec, s->timeout);
    /* The deadline in force may be sooner than ours (executor.max_timeout,
     * a caller's budget): that one is what a timeout message must name. */
    double budget = s->timeout;
    if (s->timeout > 0) {
        double left = host->remaining(exec);
        if (isfinite(left) && left < budget)
            budget = (double)(long long)((left > 0 ? left : 0) * 100 + 0.5) / 100;
    }
    /* Every step is in the record from the start, so progress reads
     * "3 of 7" and the untouched ones show PENDING. */
    for (size_t i = 0; i < s->n; i++)
        if (!(r->nodes[i] = host->node_new(exec, NDF_NODE_STEP, s->steps[i].name)))
            return host->fail(NDF_ERR_NOMEM, "sequential: out of memory");

    size_t i;
    rc = NDF_OK;
    for (i = 0; i < s->n; i++) {
        if ((rc = host->task_run(r->nodes[i], s->steps[i].task)))
            break;
        r->done[i] = 1;
    }
    if (rc == NDF_OK)
        return NDF_OK;

    /* The host's clock decides when the deadline passed; a step's wait may
     * end a hair before ours reads t0 + timeout, so ask it too. */
    int own_timeout = rc == NDF_ERR_TIMEOUT && s->timeout > 0 &&
                      (mono_now() >= t0 + budget || host->remaining(exec) <= 0);
    const char *why = rc == NDF_ERR_TIMEOUT ? "timed out" : rc == NDF_ERR_CANCELLED ? "was cancelled"
                                                                                  : "failed";
    for (size_t j = i + 1; j < s->n; j++)
        host->node_set_state(r->nodes[j], NDF_STATE_SKIPPED, "not run: step '%s' %s",
                             s->steps[i].name, why);
    size_t undone = 0, undo_failed = 0;
    if (s->rollback) {
        for (size_t j = 0; j < i; j++)
            undone += r->done[j];
        undo_failed = undo_range(host, exec, r, s, 0, i);
    }
    char tail[128] = "";
    if (undo_failed)
        snprintf(tail, sizeof tail, "; rollback: %zu of %zu undo action(s) failed", undo_failed,
                 undone);
    else if (undone)
        snprintf(tail, sizeof tail, "; rolled back %zu completed step(s)", undone);
    if (own_timeout)
        return host->fail(rc, "sequence timed out after %gs in step '%s'%s", budget,
                          s->steps[i].name, tail);
    return host->fail(rc, "step '%s' (%zu of %zu) %s%s", s->steps[i].name, i + 1, s->n, why, tail);
}

/* A sequence has one level: `level` is accepted as is.  `target`, when
 * given, names a step: only the steps after it are undone. */
static int seq_rollback(const ndf_host *host, ndf_exec *exec, void *instance, const char *level,
                        const char *target)
{
    const seq *s = instance;
    seq_run *r = host->exec_data(exec);
    if (!r)
        return host->fail(NDF_ERR_INVALID, "execution %s has no sequence to roll back",
                          host->exec_id(exec));
    if (r->inst != s || r->n != s->n)
        return host->fail(NDF_ERR_INVALID,
                          "execution %s ran an earlier definition of this pattern; "
                          "it cannot be rolled back with the current one", host->exec_id(exec));
    size_t lower = 0;
    if (target) {
        size_t k = 0;
        while (k < s->n && strcmp(s->steps[k].name, target) != 0)
            k++;
        if (k == s->n)
            return host->fail(NDF_ERR_NOT_FOUND, "no step '%s' in this sequence", target);
        lower = k + 1;
    }
    size_t failed = undo_range(host, exec, r, s, lower, s->n);
    if (failed)
        return host->fail(NDF_ERR_EXECUTION, "rollback: %zu undo action(s) failed", failed);
    return NDF_OK;
}

static const ndf_pattern_type_def seq_type = {
    .size = sizeof(ndf_pattern_type_def),
    .name = "sequential",
    .description = "ordered steps, each after the previous one completed, with rollback",
    .params = seq_params,
    .create = seq_create,
    .destroy = seq_destroy,
    .run = seq_run_pattern,
    .rollback = seq_rollback,
};

static int seq_init(const ndf_host *host, ndf_registrar *reg, void **state)
{
    *state = NULL;
    return host->register_pattern_type(reg, &seq_type);
}

NDF_PLUGIN_DEFINE("sequential", "1.0.0", "MIT",
                  "the sequential pattern type (seed SequentialDelegationPattern)", seq_init,
                  NULL);

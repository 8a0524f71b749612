/* The "meta" pattern type (the seed's MetaOrchestrationPattern): phases of
 * named sub-patterns, each phase run sequentially or in parallel, judged by
 * its success criteria, with rollback at the pattern, phase or complete
 * level, and a complexity threshold matched against the context. */
#include <ctype.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <ndf/sdk.h>

static const ndf_param_spec criteria_params[] = {
    NDF_PARAM_RANGED("min_success_rate", NDF_VALUE_NUMBER, 0, "1.0", 0, 1,
                     "share of the phase's sub-patterns that must succeed"),
    NDF_PARAM_RANGED("max_error_count", NDF_VALUE_INT, 0, NULL, 0, 1e9,
                     "most sub-patterns that may fail (absent: no limit beyond the rate)"),
    NDF_PARAM_RANGED("response_time_threshold", NDF_VALUE_NUMBER, 0, NULL, 0, 1e12,
                     "milliseconds a sub-pattern may take; a slower one counts as an error"),
    NDF_PARAM_END};

static const ndf_param_spec allocation_params[] = {
    NDF_PARAM_RANGED("cpu", NDF_VALUE_NUMBER, 0, NULL, 0, 1,
                     "the phase starts once system cpu usage is at or below this share"),
    NDF_PARAM_RANGED("memory", NDF_VALUE_NUMBER, 0, NULL, 0, 1,
                     "the phase starts once system memory usage is at or below this share"),
    NDF_PARAM_END};

static const ndf_param_spec phase_entry[] = {
    NDF_PARAM("name", NDF_VALUE_STRING, NDF_PARAM_REQUIRED, NULL,
              "the phase's name, unique within the pattern"),
    NDF_PARAM_LIST("patterns", NDF_VALUE_STRING, NDF_PARAM_REQUIRED, NULL,
                   "names of the patterns the phase runs"),
    NDF_PARAM("coordination", NDF_VALUE_STRING, 0, "\"sequential\"",
              "\"sequential\" (one after another) or \"parallel\" (all at once)"),
    NDF_PARAM_GROUP("success_criteria", 0, criteria_params,
                    "when the phase counts as a success (default: every sub-pattern succeeds)"),
    NDF_PARAM_GROUP("resource_allocation", 0, allocation_params,
                    "usage caps the system must be under before the phase starts"),
    NDF_PARAM_END};

static const ndf_param_spec meta_params[] = {
    NDF_PARAM_LIST("phases", NDF_VALUE_GROUP, NDF_PARAM_REQUIRED, phase_entry,
                   "the phases, in the order they run"),
    NDF_PARAM("rollback_strategy", NDF_VALUE_STRING, 0, "\"phase_level\"",
              "on failure roll back: \"pattern_level\" (the failed sub-patterns), \"phase_level\" "
              "(the failed phase) or \"complete\" (every phase)"),
    NDF_PARAM_RANGED("complexity_threshold", NDF_VALUE_INT, 0, "5", 0, 10,
                     "least context complexity (attribute `complexity`) the pattern serves"),
    NDF_PARAM_RANGED("timeout_seconds", NDF_VALUE_NUMBER, 0, NULL, 0, 1e9,
                     "deadline for all phases, in seconds (absent or 0: none)"),
    NDF_PARAM_END};

enum { RB_PATTERN, RB_PHASE, RB_COMPLETE };

typedef struct mphase {
    char *name;
    char **patterns;
    ndf_task **tasks;     /* per pattern: bound by the host's task helper */
    size_t npatterns;
    int parallel;
    double min_rate;
    long long max_errors; /* < 0: none */
    double rt_ms;         /* <= 0: none */
    double cpu, memory;   /* < 0: none */
} mphase;

typedef struct meta {
    mphase *phases;
    size_t n;
    int strategy;
    int complexity;
    double timeout;
} meta;

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- building ---- */

static void meta_destroy(const ndf_host *host, void *instance)
{
    meta *m = instance;
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        for (size_t k = 0; k < m->phases[i].npatterns; k++) {
            free(m->phases[i].patterns[k]);
            if (m->phases[i].tasks)
                host->task_free(m->phases[i].tasks[k]);
        }
        free(m->phases[i].patterns);
        free(m->phases[i].tasks);
        free(m->phases[i].name);
    }
    free(m->phases);
    free(m);
}

/* -1 for a name that is not a strategy.  The seed's short level names
 * ("pattern", "phase") are accepted too, as trigger_rollback uses them. */
static int strategy_of(const char *s)
{
    if (!s)
        return -1;
    if (!strcmp(s, "pattern_level") || !strcmp(s, "pattern"))
        return RB_PATTERN;
    if (!strcmp(s, "phase_level") || !strcmp(s, "phase"))
        return RB_PHASE;
    if (!strcmp(s, "complete"))
        return RB_COMPLETE;
    return -1;
}

static int build_phase(const ndf_host *host, const ndf_value *e, mphase *ph)
{
    const ndf_value *pats = host->value_get(e, "patterns");
    const ndf_value *coord = host->value_get(e, "coordination");
    const char *cs = host->value_string(coord);
    if (!strcmp(cs, "parallel"))
        ph->parallel = 1;
    else if (strcmp(cs, "sequential") != 0)
        return host->fail_at(coord, NDF_ERR_VALIDATION,
                             "meta: phase '%s': coordination '%s' is neither \"sequential\" nor "
                             "\"parallel\"", ph->name, cs);
    size_t n = host->value_count(pats);
    if (n == 0)
        return host->fail_at(pats, NDF_ERR_VALIDATION, "meta: phase '%s' runs no patterns",
                             ph->name);
    if (!(ph->patterns = calloc(n, sizeof *ph->patterns)) ||
        !(ph->tasks = calloc(n, sizeof *ph->tasks)))
        return host->fail(NDF_ERR_NOMEM, "meta: out of memory");
    for (size_t k = 0; k < n; k++) {
        const ndf_value *pv = host->value_at(pats, k);
        const char *name = host->value_string(pv);
        const ndf_value *where = host->value_line(pv) ? pv : pats;
        if (!*name)
            return host->fail_at(where, NDF_ERR_VALIDATION,
                                 "meta: phase '%s': pattern %zu has an empty name", ph->name, k + 1);
        if (!(ph->patterns[k] = strdup(name)))
            return host->fail(NDF_ERR_NOMEM, "meta: out of memory");
        ph->npatterns++;
        /* A pattern task: the host checks that the pattern exists once all
         * definitions are loaded, and reports `where`. */
        ndf_task_spec spec = {.size = sizeof spec, .pattern = name, .where = where};
        int rc = host->task_new(&spec, &ph->tasks[k]);
        if (rc)
            return rc;
    }
    const ndf_value *sc = host->value_get(e, "success_criteria");
    const ndf_value *v;
    ph->min_rate = (v = host->value_get(sc, "min_success_rate")) ? host->value_number(v) : 1.0;
    ph->max_errors = (v = host->value_get(sc, "max_error_count")) ? host->value_int(v) : -1;
    ph->rt_ms = (v = host->value_get(sc, "response_time_threshold")) ? host->value_number(v) : 0;
    const ndf_value *ra = host->value_get(e, "resource_allocation");
    ph->cpu = (v = host->value_get(ra, "cpu")) ? host->value_number(v) : -1;
    ph->memory = (v = host->value_get(ra, "memory")) ? host->value_number(v) : -1;
    return NDF_OK;
}

static int meta_create(const ndf_host *host, const ndf_value *params, void **instance)
{
    *instance = NULL;
    const ndf_value *list = host->value_get(params, "phases");
    size_t n = host->value_count(list);
    meta *m = calloc(1, sizeof *m);
    if (!m || (n && !(m->phases = calloc(n, sizeof *m->phases)))) {
        free(m);
        return host->fail(NDF_ERR_NOMEM, "meta: out of memory");
    }
    const ndf_value *rs = host->value_get(params, "rollback_strategy");
    m->strategy = strategy_of(host->value_string(rs));
    m->complexity = (int)host->value_int(host->value_get(params, "complexity_threshold"));
    m->timeout = host->value_number(host->value_get(params, "timeout_seconds"));
    int rc = NDF_OK;
    const char *rsn = host->value_string(rs);
    if (strcmp(rsn, "pattern_level") && strcmp(rsn, "phase_level") && strcmp(rsn, "complete"))
        rc = host->fail_at(rs, NDF_ERR_VALIDATION,
                           "meta: rollback_strategy '%s' is not one of pattern_level, phase_level, "
                           "complete", host->value_string(rs));
    if (!rc && n == 0)
        rc = host->fail_at(list, NDF_ERR_VALIDATION, "meta: 'phases' is empty");
    for (size_t i = 0; i < n && !rc; i++) {
        const ndf_value *e = host->value_at(list, i);
        const char *name = host->value_string(host->value_get(e, "name"));
        if (!*name) {
            rc = host->fail_at(e, NDF_ERR_VALIDATION, "meta: phase %zu has an empty name", i + 1);
            break;
        }
        for (size_t j = 0; j < i && !rc; j++)
            if (!strcmp(m->phases[j].name, name))
                rc = host->fail_at(e, NDF_ERR_VALIDATION,
                                   "meta: duplicate phase name '%s' (first defined at line %d)",
                                   name, host->value_line(host->value_at(list, j)));
        if (rc)
            break;
        if (!(m->phases[i].name = strdup(name))) {
            rc = host->fail(NDF_ERR_NOMEM, "meta: out of memory");
            break;
        }
        m->n++;
        rc = build_phase(host, e, &m->phases[i]);
    }
    if (rc) {
        meta_destroy(host, m);
        return rc;
    }
    *instance = m;
    return NDF_OK;
}

/* ---- matching ---- */

/* The context's complexity, from its `complexity` attribute: a number 0..10,
 * or one of the words low (2), medium (5), high (7), enterprise (9), or a
 * number written as a string.  Returns 1 and *out, 0 when absent, -1 when
 * present but unreadable. */
static int context_complexity(const ndf_host *host, const ndf_context *ctx, double *out)
{
    static const struct {
        const char *word;
        double value;
    } words[] = {{"low", 2}, {"medium", 5}, {"high", 7}, {"enterprise", 9}};
    const ndf_value *c = host->value_get(host->ctx_attributes(ctx), "complexity");
    switch (host->value_type(c)) {
    case NDF_VALUE_NONE:
        return 0;
    case NDF_VALUE_INT:
    case NDF_VALUE_NUMBER:
        *out = host->value_number(c);
        return 1;
    case NDF_VALUE_STRING: {
        const char *s = host->value_string(c);
        for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
            if (!strcasecmp(s, words[i].word)) {
                *out = words[i].value;
                return 1;
            }
        char *end;
        double x = strtod(s, &end);
        while (end != s && isspace((unsigned char)*end))
            end++;
        if (end != s && !*end && isfinite(x)) {
            *out = x;
            return 1;
        }
        return -1;
    }
    default:
        return -1;
    }
}

/* An absent complexity matches (the threshold only holds back contexts
 * that say they are simpler); an unreadable one does not. */
static int meta_matches(const ndf_host *host, void *instance, const ndf_context *ctx)
{
    const meta *m = instance;
    double c = 0;
    int have = context_complexity(host, ctx, &c);
    /* The reason goes through fail() for a host that refuses the run. */
    if (have == 0)
        return 1;
    if (have < 0) {
        host->fail(NDF_ERR_VALIDATION,
                   "the context's complexity is not a number 0..10 or low, medium, high, "
                   "enterprise");
        return 0;
    }
    if (c >= (double)m->complexity)
        return 1;
    host->fail(NDF_ERR_VALIDATION, "the context's complexity %g is below complexity_threshold %d",
               c, m->complexity);
    return 0;
}

/* ---- running ---- */

enum { SUB_PENDING, SUB_DONE, SUB_FAILED, SUB_SKIPPED, SUB_ROLLED_BACK };
enum { PH_PENDING, PH_DONE, PH_FAILED, PH_SKIPPED, PH_ROLLED_BACK };

typedef struct mrun mrun;

typedef struct msub {
    mrun *run;
    size_t phase, idx;
    ndf_exec *node;
    int state;            /* SUB_* */
    int slow;             /* succeeded over response_time_threshold */
    unsigned long seq;    /* completion order, for reverse rollback */
} msub;

typedef struct mphase_run {
    ndf_exec *node;
    msub *subs;
    int state;            /* PH_* */
    atomic_size_t ok, errors;
    atomic_int stop;
} mphase_run;

struct mrun {
    const ndf_host *host;
    const meta *inst;
    ndf_exec *exec;
    mphase_run *phases;
    atomic_ulong seq;
    double deadline;      /* timeout_seconds as a monotonic time; 0: none */
};

static void run_free(void *arg)
{
    mrun *r = arg;
    if (!r)
        return;
    for (size_t i = 0; r->phases && i < r->inst->n; i++)
        free(r->phases[i].subs);
    free(r->phases);
    free(r);
}

/* Sub-patterns needed for the phase to succeed. */
static size_t required_ok(const mphase *ph)
{
    double need = ceil(ph->min_rate * (double)ph->npatterns - 1e-9);
    return need < 0 ? 0 : (size_t)need;
}

/* 1 once the phase can no longer meet its criteria. */
static int phase_lost(const mphase *ph, mphase_run *pr)
{
    size_t errors = atomic_load(&pr->errors);
    if (ph->max_errors >= 0 && errors > (size_t)ph->max_errors)
        return 1;
    return ph->npatterns - errors < required_ok(ph);
}

static int run_sub(void *arg)
{
    msub *s = arg;
    mrun *r = s->run;
    const ndf_host *host = r->host;
    const mphase *ph = &r->inst->phases[s->phase];
    mphase_run *pr = &r->phases[s->phase];
    const char *name = ph->patterns[s->idx];

    if (atomic_load(&pr->stop)) {
        s->state = SUB_SKIPPED;
        host->node_set_state(s->node, NDF_STATE_SKIPPED,
                             "not run: phase '%s' can no longer meet its success criteria",
                             ph->name);
        return NDF_OK;
    }
    if (r->deadline > 0 && r->deadline - mono_now() <= 0) {
        s->state = SUB_SKIPPED;
        host->node_set_state(s->node, NDF_STATE_TIMED_OUT,
                             "the pattern's timeout_seconds passed before it started");
        atomic_fetch_add(&pr->errors, 1);
        atomic_store(&pr->stop, 1);
        return NDF_ERR_TIMEOUT;
    }
    host->node_set_state(s->node, NDF_STATE_RUNNING, "running pattern '%s'", name);
    double t0 = mono_now();
    /* timeout_seconds is the pattern node's deadline, which the task's
     * node inherited. */
    int rc = host->task_run(s->node, ph->tasks[s->idx]);
    double ms = (mono_now() - t0) * 1000.0;
    host->node_set_state(s->node,
                         rc == NDF_OK               ? NDF_STATE_COMPLETED
                         : rc == NDF_ERR_TIMEOUT    ? NDF_STATE_TIMED_OUT
                         : rc == NDF_ERR_CANCELLED  ? NDF_STATE_CANCELLED
                                                    : NDF_STATE_FAILED,
                         "%s after %.0f ms", ndf_status_name(rc), ms);
    if (rc == NDF_OK) {
        s->state = SUB_DONE;
        s->seq = atomic_fetch_add(&r->seq, 1) + 1;
        if (ph->rt_ms > 0 && ms > ph->rt_ms) {
            s->slow = 1;
            host->node_log(s->node, NDF_LOG_WARN,
                           "took %.0f ms, over the phase's response_time_threshold of %g ms", ms,
                           ph->rt_ms);
            atomic_fetch_add(&pr->errors, 1);
        } else {
            atomic_fetch_add(&pr->ok, 1);
        }
    } else {
        s->state = SUB_FAILED;
        atomic_fetch_add(&pr->errors, 1);
    }
    if (phase_lost(ph, pr))
        atomic_store(&pr->stop, 1);
    return rc;
}

/* Newest completion first; never-completed ones (seq 0) last, later
 * definitions first. */
static int by_newest(const void *a, const void *b)
{
    const msub *x = *(msub *const *)a, *y = *(msub *const *)b;
    if (x->seq != y->seq)
        return x->seq < y->seq ? 1 : -1;
    return x->idx < y->idx ? 1 : x->idx > y->idx ? -1 : 0;
}

/* Rolls back the sub-patterns of phase `p` whose state is `which`, newest
 * first.  One that fails to roll back is reported, keeps its state (so a
 * later trigger may retry it), and the others still run.  Returns how many
 * failed; *tried counts the attempts. */
static size_t rollback_subs(mrun *r, size_t p, int which, size_t *tried)
{
    const ndf_host *host = r->host;
    const mphase *ph = &r->inst->phases[p];
    mphase_run *pr = &r->phases[p];
    msub **list = malloc(ph->npatterns * sizeof *list);
    if (!list) {
        host->node_log(r->exec, NDF_LOG_ERROR, "rollback: out of memory");
        return 1;
    }
    size_t n = 0, failed = 0;
    for (size_t k = 0; k < ph->npatterns; k++)
        if (pr->subs[k].state == which)
            list[n++] = &pr->subs[k];
    qsort(list, n, sizeof *list, by_newest);
    for (size_t i = 0; i < n; i++) {
        ++*tried;
        int rc = host->rollback_pattern(list[i]->node, "complete", NULL);
        if (rc) {
            failed++;
            host->node_log(r->exec, NDF_LOG_ERROR,
                           "rollback: pattern '%s' of phase '%s' failed to roll back (%s)",
                           ph->patterns[list[i]->idx], ph->name, ndf_status_name(rc));
        } else {
            list[i]->state = SUB_ROLLED_BACK;
            host->node_set_state(list[i]->node, NDF_STATE_ROLLED_BACK, "rolled back");
        }
    }
    free(list);
    return failed;
}

/* Rolls back a whole phase (its completed sub-patterns). */
static size_t rollback_phase(mrun *r, size_t p, size_t *tried)
{
    size_t before = *tried, failed = rollback_subs(r, p, SUB_DONE, tried);
    mphase_run *pr = &r->phases[p];
    if (!failed && *tried > before && pr->state == PH_DONE) {
        pr->state = PH_ROLLED_BACK;
        r->host->node_set_state(pr->node, NDF_STATE_ROLLED_BACK, "rolled back");
    }
    return failed;
}

/* Runs phase p; NDF_OK when it met its criteria, else a status with the
 * reason in why[]. */
static int run_phase(mrun *r, size_t p, size_t *tolerated, char *why, size_t cap)
{
    const ndf_host *host = r->host;
    const mphase *ph = &r->inst->phases[p];
    mphase_run *pr = &r->phases[p];
    host->node_set_state(pr->node, NDF_STATE_RUNNING, "phase %zu of %zu, %s", p + 1, r->inst->n,
                         ph->parallel ? "parallel" : "sequential");
    int rc;
    if (ph->cpu >= 0 || ph->memory >= 0) {
        rc = host->resources_wait(pr->node, ph->cpu >= 0 ? ph->cpu : 1.0,
                                  ph->memory >= 0 ? ph->memory : 1.0);
        if (rc) {
            /* the host's words carry what it measured against what the
             * phase needs; a limit the phase does not set is not named */
            char seen[400], need[96];
            snprintf(seen, sizeof seen, "%s", host->last_error());
            if (!seen[0])
                snprintf(seen, sizeof seen, "%s", ndf_status_name(rc));
            if (ph->cpu >= 0 && ph->memory >= 0)
                snprintf(need, sizeof need, "cpu <= %g and memory <= %g", ph->cpu, ph->memory);
            else if (ph->cpu >= 0)
                snprintf(need, sizeof need, "cpu <= %g", ph->cpu);
            else
                snprintf(need, sizeof need, "memory <= %g", ph->memory);
            pr->state = PH_FAILED;
            for (size_t k = 0; k < ph->npatterns; k++) {
                pr->subs[k].state = SUB_SKIPPED;
                host->node_set_state(pr->subs[k].node, NDF_STATE_SKIPPED,
                                     "not run: the phase's resources were not available");
            }
            host->node_set_state(pr->node,
                                 rc == NDF_ERR_TIMEOUT ? NDF_STATE_TIMED_OUT : NDF_STATE_FAILED,
                                 "waiting for resources (the phase needs %s): %s", need, seen);
            snprintf(why, cap, "waiting for resources (the phase needs %s): %s", need, seen);
            return rc;
        }
    }
    int wrc = NDF_OK;
    if (ph->parallel) {
        ndf_group *g = host->group_new(pr->node, 0);
        if (!g) {
            pr->state = PH_FAILED;
            host->node_set_state(pr->node, NDF_STATE_FAILED, "out of memory");
            snprintf(why, cap, "out of memory");
            return NDF_ERR_NOMEM;
        }
        for (size_t k = 0; k < ph->npatterns; k++) {
            rc = host->group_spawn(g, run_sub, &pr->subs[k]);
            if (rc) {
                pr->subs[k].state = SUB_FAILED;
                host->node_set_state(pr->subs[k].node, NDF_STATE_FAILED, "not started: %s",
                                     ndf_status_name(rc));
                atomic_fetch_add(&pr->errors, 1);
            }
        }
        wrc = host->group_wait(g);
        host->group_free(g);
    } else {
        for (size_t k = 0; k < ph->npatterns; k++) {
            run_sub(&pr->subs[k]);
            if ((wrc = host->cancelled(pr->node)))
                break;
        }
    }
    /* Anything not reached (stopped early, dropped at a deadline) is SKIPPED. */
    for (size_t k = 0; k < ph->npatterns; k++) {
        msub *s = &pr->subs[k];
        if (s->state == SUB_PENDING) {
            s->state = SUB_SKIPPED;
            host->node_set_state(s->node, NDF_STATE_SKIPPED, "not run: %s",
                                 wrc ? ndf_status_name(wrc) : "the phase stopped early");
        }
    }
    size_t ok = atomic_load(&pr->ok), errors = atomic_load(&pr->errors);
    size_t need = required_ok(ph);
    *why = 0;
    if (wrc)
        snprintf(why, cap, "%s", ndf_status_name(wrc));
    else if (ok < need)
        snprintf(why, cap, "%zu of %zu sub-pattern(s) succeeded%s; min_success_rate %g needs %zu",
                 ok, ph->npatterns, ph->rt_ms > 0 ? " in time" : "", ph->min_rate, need);
    else if (ph->max_errors >= 0 && errors > (size_t)ph->max_errors)
        snprintf(why, cap, "%zu error(s), over max_error_count %lld", errors,
                 ph->max_errors);
    if (*why) {
        pr->state = PH_FAILED;
        host->node_set_state(pr->node, wrc == NDF_ERR_TIMEOUT ? NDF_STATE_TIMED_OUT
                                       : wrc == NDF_ERR_CANCELLED ? NDF_STATE_CANCELLED
                                                                  : NDF_STATE_FAILED,
                             "%s", why);
        return wrc ? wrc : NDF_ERR_EXECUTION;
    }
    pr->state = PH_DONE;
    if (errors) {
        *tolerated += errors;
        host->node_set_state(pr->node, NDF_STATE_DEGRADED,
                             "succeeded with %zu tolerated failure(s)", errors);
    } else {
        host->node_set_state(pr->node, NDF_STATE_COMPLETED, "%zu sub-pattern(s) succeeded", ok);
    }
    return NDF_OK;
}

static mrun *run_new(const ndf_host *host, const meta *m, ndf_exec *exec)
{
    mrun *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->host = host;
    r->inst = m;
    r->exec = exec;
    atomic_init(&r->seq, 0);
    if (!(r->phases = calloc(m->n ? m->n : 1, sizeof *r->phases))) {
        free(r);
        return NULL;
    }
    for (size_t i = 0; i < m->n; i++) {
        mphase_run *pr = &r->phases[i];
        atomic_init(&pr->ok, 0);
        atomic_init(&pr->errors, 0);
        atomic_init(&pr->stop, 0);
        if (!(pr->subs = calloc(m->phases[i].npatterns, sizeof *pr->subs))) {
            run_free(r);
            return NULL;
        }
        for (size_t k = 0; k < m->phases[i].npatterns; k++) {
            pr->subs[k].run = r;
            pr->subs[k].phase = i;
            pr->subs[k].idx = k;
        }
    }
    return r;
}

/* Rolls back after phase `failed` failed, as the strategy says. */
static void rollback_on_failure(mrun *r, size_t failed, size_t *tried, size_t *undo_failed)
{
    switch (r->inst->strategy) {
    case RB_PATTERN:
        *undo_failed += rollback_subs(r, failed, SUB_FAILED, tried);
        break;
    case RB_PHASE:
        *undo_failed += rollback_subs(r, failed, SUB_DONE, tried);
        break;
    case RB_COMPLETE:
        for (size_t p = failed + 1; p-- > 0;)
            *undo_failed += rollback_phase(r, p, tried);
        break;
    }
}

static int meta_run(const ndf_host *host, ndf_exec *exec, void *instance)
{
    const meta *m = instance;
    mrun *r = run_new(host, m, exec);
    if (!r)
        return host->fail(NDF_ERR_NOMEM, "meta: out of memory");
    int rc = host->exec_set_data(exec, r, run_free);
    if (rc) {
        run_free(r);
        return rc;
    }
    /* The whole plan is in the record from the start: phases, and under
     * each a TASK node per sub-pattern it will run, so progress is a
     * percentage of it.  run_pattern() records each sub-execution as a
     * PATTERN child of its task, which is also where rollback_pattern()
     * finds it again. */
    if (m->timeout > 0)
        host->node_set_timeout(exec, m->timeout);
    for (size_t i = 0; i < m->n; i++) {
        mphase_run *pr = &r->phases[i];
        if (!(pr->node = host->node_new(exec, NDF_NODE_PHASE, m->phases[i].name)))
            return host->fail(NDF_ERR_NOMEM, "meta: out of memory");
        for (size_t k = 0; k < m->phases[i].npatterns; k++)
            if (!(pr->subs[k].node =
                      host->node_new(pr->node, NDF_NODE_TASK, m->phases[i].patterns[k])))
                return host->fail(NDF_ERR_NOMEM, "meta: out of memory");
    }
    r->deadline = m->timeout > 0 ? mono_now() + m->timeout : 0;
    size_t tolerated = 0, p;
    char why[256] = "";
    rc = NDF_OK;
    for (p = 0; p < m->n; p++) {
        if ((rc = host->cancelled(exec))) {
            snprintf(why, sizeof why, "%s before it started", ndf_status_name(rc));
            break;
        }
        if (r->deadline > 0 && mono_now() >= r->deadline) {
            rc = NDF_ERR_TIMEOUT;
            snprintf(why, sizeof why, "timeout_seconds (%g) passed before it started", m->timeout);
            break;
        }
        if ((rc = run_phase(r, p, &tolerated, why, sizeof why)))
            break;
    }
    if (rc == NDF_OK) {
        if (tolerated)
            host->node_set_state(exec, NDF_STATE_DEGRADED,
                                 "succeeded with %zu tolerated failure(s)", tolerated);
        return NDF_OK;
    }
    /* Phase p failed, or did not start; the ones after it never run. */
    int started = r->phases[p].state != PH_PENDING;
    for (size_t q = p + started; q < m->n; q++) {
        r->phases[q].state = PH_SKIPPED;
        if (q == p)
            host->node_set_state(r->phases[q].node, NDF_STATE_SKIPPED, "not run: %s", why);
        else
            host->node_set_state(r->phases[q].node, NDF_STATE_SKIPPED, "not run: phase '%s' %s",
                                 m->phases[p].name, started ? "failed" : "did not start");
        for (size_t k = 0; k < m->phases[q].npatterns; k++) {
            r->phases[q].subs[k].state = SUB_SKIPPED;
            host->node_set_state(r->phases[q].subs[k].node, NDF_STATE_SKIPPED, "not run");
        }
    }
    size_t tried = 0, undo_failed = 0;
    if (started)
        rollback_on_failure(r, p, &tried, &undo_failed);
    else if (m->strategy == RB_COMPLETE)
        for (size_t q = p; q-- > 0;)
            undo_failed += rollback_phase(r, q, &tried);
    char tail[160] = "";
    if (undo_failed)
        snprintf(tail, sizeof tail, "; rollback: %zu of %zu sub-pattern rollback(s) failed",
                 undo_failed, tried);
    else if (tried)
        snprintf(tail, sizeof tail, "; rolled back %zu sub-pattern(s) (%s)", tried,
                 m->strategy == RB_PATTERN ? "pattern_level"
                 : m->strategy == RB_PHASE ? "phase_level"
                                           : "complete");
    return host->fail(rc, "phase '%s' %s: %s%s", m->phases[p].name,
                      started ? "failed" : "did not start", why, tail);
}

/* trigger_rollback(level, target_phase) on a finished execution:
 * - "complete": every phase that ran, newest first (target ignored);
 * - "phase": with a target, every phase after it, newest first; without,
 *   the last phase that ran;
 * - "pattern": with a target, as "phase"; without, the failed sub-patterns,
 *   or when none failed the most recently completed one. */
static int meta_rollback(const ndf_host *host, ndf_exec *exec, void *instance, const char *level,
                         const char *target)
{
    const meta *m = instance;
    mrun *r = host->exec_data(exec);
    if (!r)
        return host->fail(NDF_ERR_INVALID, "execution %s has no phases to roll back",
                          host->exec_id(exec));
    if (r->inst != m)
        return host->fail(NDF_ERR_INVALID,
                          "execution %s ran an earlier definition of this pattern; "
                          "it cannot be rolled back with the current one", host->exec_id(exec));
    int lv = strategy_of(level ? level : "phase");
    if (lv < 0)
        return host->fail(NDF_ERR_INVALID,
                          "unknown rollback level '%s' (pattern, phase or complete)", level);
    size_t after = SIZE_MAX; /* roll back phases with index > after; SIZE_MAX: see level */
    if (target && lv != RB_COMPLETE) {
        size_t k = 0;
        while (k < m->n && strcmp(m->phases[k].name, target) != 0)
            k++;
        if (k == m->n)
            return host->fail(NDF_ERR_NOT_FOUND, "no phase '%s' in this pattern", target);
        after = k;
    }
    size_t last = m->n; /* the last phase that ran */
    for (size_t p = 0; p < m->n; p++)
        if (r->phases[p].state != PH_PENDING && r->phases[p].state != PH_SKIPPED)
            last = p;
    size_t tried = 0, failed = 0;
    if (last == m->n)
        return NDF_OK;
    if (lv == RB_COMPLETE || after != SIZE_MAX) {
        size_t lower = lv == RB_COMPLETE ? 0 : after + 1;
        for (size_t p = last + 1; p-- > lower;)
            failed += rollback_phase(r, p, &tried);
    } else if (lv == RB_PHASE) {
        failed += rollback_phase(r, last, &tried);
    } else {
        for (size_t p = m->n; p-- > 0;)
            failed += rollback_subs(r, p, SUB_FAILED, &tried);
        if (!tried) {
            /* The most recently completed sub-pattern. */
            msub *best = NULL;
            for (size_t p = 0; p < m->n; p++)
                for (size_t k = 0; k < m->phases[p].npatterns; k++) {
                    msub *s = &r->phases[p].subs[k];
                    if (s->state == SUB_DONE && (!best || s->seq > best->seq))
                        best = s;
                }
            if (best) {
                tried++;
                int rc = host->rollback_pattern(best->node, "complete", NULL);
                if (rc) {
                    failed++;
                } else {
                    best->state = SUB_ROLLED_BACK;
                    host->node_set_state(best->node, NDF_STATE_ROLLED_BACK, "rolled back");
                }
            }
        }
    }
    if (failed)
        return host->fail(NDF_ERR_EXECUTION, "rollback: %zu of %zu sub-pattern rollback(s) failed",
                          failed, tried);
    return NDF_OK;
}

static const ndf_pattern_type_def meta_type = {
    .size = sizeof(ndf_pattern_type_def),
    .name = "meta",
    .description = "phases of sub-patterns with success criteria and multi-level rollback",
    .params = meta_params,
    .create = meta_create,
    .destroy = meta_destroy,
    .run = meta_run,
    .rollback = meta_rollback,
    .matches = meta_matches,
};

static int meta_init(const ndf_host *host, ndf_registrar *reg, void **state)
{
    *state = NULL;
    return host->register_pattern_type(reg, &meta_type);
}

NDF_PLUGIN_DEFINE("meta", "1.0.0", "MIT",
                  "the meta pattern type (seed MetaOrchestrationPattern)", meta_init, NULL);

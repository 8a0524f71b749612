/* The "parallel" pattern type (the seed's ParallelCoordinationPattern):
 * tasks with dependencies run concurrently on the host's executor, at most
 * max_concurrent at a time, each started once its dependencies completed and
 * the system has room for its cpu/memory needs.  A failure tolerance lets
 * the pattern succeed (degraded) when few tasks fail; rollback undoes the
 * completed tasks in reverse topological order.  Each task's step, timeout
 * and retries are the host's task helper (ndf_host.task_new, SDK 1.2), and
 * timeout_seconds is the pattern node's deadline (node_set_timeout). */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ndf/sdk.h>

static const ndf_param_spec task_entry[] = {
    NDF_PARAM("name", NDF_VALUE_STRING, NDF_PARAM_REQUIRED, NULL,
              "the task's name, unique within the pattern"),
    NDF_PARAM("step", NDF_VALUE_STRING, NDF_PARAM_REQUIRED, NULL, "the step type the task runs"),
    NDF_PARAM_GROUP("params", 0, NULL, "the step type's parameters (checked against its schema)"),
    NDF_PARAM_LIST("depends_on", NDF_VALUE_STRING, 0, NULL,
                   "tasks that must complete before this one starts"),
    NDF_PARAM_RANGED("cpu", NDF_VALUE_NUMBER, 0, NULL, 0, 1,
                     "cpu share the task needs: it starts when usage + cpu <= resource_threshold"),
    NDF_PARAM_RANGED("memory", NDF_VALUE_NUMBER, 0, NULL, 0, 1,
                     "memory share the task needs: it starts when usage + memory <= "
                     "resource_threshold"),
    NDF_TASK_PARAMS,
    NDF_PARAM_END};

static const ndf_param_spec par_params[] = {
    NDF_PARAM_LIST("tasks", NDF_VALUE_GROUP, NDF_PARAM_REQUIRED, task_entry,
                   "the tasks; order only breaks ties between tasks ready at once"),
    NDF_PARAM_RANGED("max_concurrent", NDF_VALUE_INT, 0, "5", 1, 4096,
                     "most tasks running at once"),
    NDF_PARAM_RANGED("resource_threshold", NDF_VALUE_NUMBER, 0, "0.8", 0, 1,
                     "system cpu/memory share a task with needs may bring usage up to"),
    NDF_PARAM_RANGED("failure_tolerance", NDF_VALUE_NUMBER, 0, "0.2", 0, 1,
                     "share of tasks that may fail (or be skipped by a failure) and still succeed"),
    NDF_PARAM_RANGED("max_failures", NDF_VALUE_INT, 0, NULL, 0, 1e9,
                     "most tasks that may fail (or be skipped by a failure), as a count"),
    NDF_PARAM_RANGED("timeout_seconds", NDF_VALUE_NUMBER, 0, NULL, 0, 1e9,
                     "deadline for the whole pattern, in seconds (absent or 0: none)"),
    NDF_PARAM("rollback_enabled", NDF_VALUE_BOOL, 0, "true",
              "undo the completed tasks, in reverse topological order, when the pattern fails"),
    NDF_PARAM_END};

typedef struct ptask {
    char *name;
    ndf_task *task;                  /* the step with its timeout and retries */
    size_t *deps, ndeps;             /* indices of the tasks it depends on */
    size_t *dependents, ndependents; /* indices of the tasks that depend on it */
    double cpu, memory;
} ptask;

typedef struct par {
    ptask *tasks;
    size_t n;
    size_t *topo;       /* a topological order (dependencies first) */
    unsigned max_concurrent;
    double threshold, tolerance, timeout;
    long long max_failures; /* < 0: none */
    int rollback;
} par;


/* ---- building ---- */

static void par_destroy(const ndf_host *host, void *instance)
{
    par *p = instance;
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        free(p->tasks[i].name);
        host->task_free(p->tasks[i].task);
        free(p->tasks[i].deps);
        free(p->tasks[i].dependents);
    }
    free(p->tasks);
    free(p->topo);
    free(p);
}

/* A name -> index table for create(): pattern definitions may have 100,000
 * tasks, so lookups must not be linear. */
typedef struct name_index {
    size_t *slot; /* index + 1; 0 empty */
    size_t mask;
} name_index;

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int index_init(name_index *ix, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    ix->mask = cap - 1;
    ix->slot = calloc(cap, sizeof *ix->slot);
    return ix->slot ? 0 : -1;
}

/* Returns the index of `name`, or SIZE_MAX; with `add`, inserts `idx` when
 * absent (then returns SIZE_MAX too). */
static size_t index_find(name_index *ix, const ptask *tasks, const char *name, size_t add)
{
    for (size_t h = (size_t)hash_name(name) & ix->mask;; h = (h + 1) & ix->mask) {
        if (!ix->slot[h]) {
            if (add != SIZE_MAX)
                ix->slot[h] = add + 1;
            return SIZE_MAX;
        }
        if (strcmp(tasks[ix->slot[h] - 1].name, name) == 0)
            return ix->slot[h] - 1;
    }
}

/* Appends " -> name" to a bounded message, ending it in "..." once full. */
static void cycle_add(char *buf, size_t cap, const char *name, int first)
{
    size_t len = strlen(buf);
    if (len >= cap - 5)
        return;
    int w = snprintf(buf + len, cap - len, "%s%s", first ? "" : " -> ", name);
    if (w < 0 || (size_t)w >= cap - len)
        strcpy(buf + cap - 5, "...");
}

/* Called when Kahn's algorithm left tasks unordered (indeg > 0): every one
 * of them has an unordered dependency, so following those from any of them
 * must come back to a task already seen.  Reports that cycle, starting from
 * its earliest-defined task.  `pos` is scratch of n entries. */
static int report_cycle(const ndf_host *host, const par *p, const ndf_value *list,
                        const size_t *indeg, size_t *pos)
{
    size_t start = 0;
    while (indeg[start] == 0)
        start++;
    for (size_t i = 0; i < p->n; i++)
        pos[i] = SIZE_MAX;
    /* Walk, remembering the order of visits in pos[]. */
    size_t u = start, step = 0;
    while (pos[u] == SIZE_MAX) {
        pos[u] = step++;
        const ptask *t = &p->tasks[u];
        size_t next = SIZE_MAX;
        for (size_t k = 0; k < t->ndeps && next == SIZE_MAX; k++)
            if (indeg[t->deps[k]] > 0)
                next = t->deps[k];
        u = next;
    }
    /* u is the first task seen twice: the cycle is the walk from it. */
    size_t first = u, low = u;
    for (size_t v = u;;) {
        if (v < low)
            low = v;
        const ptask *t = &p->tasks[v];
        size_t next = SIZE_MAX;
        for (size_t k = 0; k < t->ndeps && next == SIZE_MAX; k++)
            if (indeg[t->deps[k]] > 0 && pos[t->deps[k]] != SIZE_MAX &&
                pos[t->deps[k]] >= pos[first])
                next = t->deps[k];
        v = next;
        if (v == first)
            break;
    }
    char msg[1200] = "";
    /* Print from the earliest-defined task of the cycle, around and back. */
    size_t v = low;
    int n = 0;
    do {
        cycle_add(msg, sizeof msg, p->tasks[v].name, n++ == 0);
        const ptask *t = &p->tasks[v];
        size_t next = SIZE_MAX;
        for (size_t k = 0; k < t->ndeps && next == SIZE_MAX; k++)
            if (indeg[t->deps[k]] > 0 && pos[t->deps[k]] != SIZE_MAX &&
                pos[t->deps[k]] >= pos[first])
                next = t->deps[k];
        v = next;
    } while (v != low);
    cycle_add(msg, sizeof msg, p->tasks[low].name, 0);
    return host->fail_at(host->value_at(list, low), NDF_ERR_VALIDATION,
                         "parallel: dependency cycle: %s (each task depends on the next)", msg);
}

/* Resolves depends_on, fills the dependents lists and a topological order;
 * reports unknown dependencies and cycles. */
static int link_tasks(const ndf_host *host, par *p, const ndf_value *list, name_index *ix)
{
    size_t n = p->n;
    /* seen[d] == i + 1: task i already lists d (a linear de-duplication, so
     * a join task depending on 100,000 others stays cheap). */
    size_t *seen = calloc(n ? n : 1, sizeof *seen);
    if (!seen)
        return host->fail(NDF_ERR_NOMEM, "parallel: out of memory");
    for (size_t i = 0; i < n; i++) {
        const ndf_value *deps = host->value_get(host->value_at(list, i), "depends_on");
        size_t nd = host->value_count(deps);
        ptask *t = &p->tasks[i];
        if (nd && !(t->deps = malloc(nd * sizeof *t->deps))) {
            free(seen);
            return host->fail(NDF_ERR_NOMEM, "parallel: out of memory");
        }
        for (size_t k = 0; k < nd; k++) {
            const ndf_value *dv = host->value_at(deps, k);
            const char *dn = host->value_string(dv);
            size_t d = index_find(ix, p->tasks, dn, SIZE_MAX);
            if (d == SIZE_MAX) {
                free(seen);
                return host->fail_at(host->value_line(dv) ? dv : host->value_at(list, i),
                                     NDF_ERR_VALIDATION,
                                     "parallel: task '%s' depends on unknown task '%s'", t->name,
                                     dn);
            }
            if (seen[d] != i + 1) { /* a dependency listed twice counts once */
                seen[d] = i + 1;
                t->deps[t->ndeps++] = d;
            }
        }
    }
    free(seen);
    size_t *count = calloc(n ? n : 1, sizeof *count);
    if (!count)
        return host->fail(NDF_ERR_NOMEM, "parallel: out of memory");
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < p->tasks[i].ndeps; k++)
            count[p->tasks[i].deps[k]]++;
    for (size_t i = 0; i < n; i++) {
        if (count[i] && !(p->tasks[i].dependents = malloc(count[i] * sizeof(size_t)))) {
            free(count);
            return host->fail(NDF_ERR_NOMEM, "parallel: out of memory");
        }
    }
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < p->tasks[i].ndeps; k++) {
            ptask *d = &p->tasks[p->tasks[i].deps[k]];
            d->dependents[d->ndependents++] = i;
        }
    /* Kahn's algorithm; count[] becomes the in-degree (deps not ordered yet). */
    if (!(p->topo = malloc((n ? n : 1) * sizeof *p->topo))) {
        free(count);
        return host->fail(NDF_ERR_NOMEM, "parallel: out of memory");
    }
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < n; i++) {
        count[i] = p->tasks[i].ndeps;
        if (!count[i])
            p->topo[tail++] = i;
    }
    while (head < tail) {
        const ptask *t = &p->tasks[p->topo[head++]];
        for (size_t k = 0; k < t->ndependents; k++)
            if (--count[t->dependents[k]] == 0)
                p->topo[tail++] = t->dependents[k];
    }
    int rc = NDF_OK;
    if (tail < n) {
        size_t *pos = malloc(n * sizeof *pos);
        rc = pos ? report_cycle(host, p, list, count, pos)
                 : host->fail(NDF_ERR_NOMEM, "parallel: out of memory");
        free(pos);
    }
    free(count);
    return rc;
}

static int par_create(const ndf_host *host, const ndf_value *params, void **instance)
{
    *instance = NULL;
    const ndf_value *list = host->value_get(params, "tasks");
    size_t n = host->value_count(list);
    name_index ix = {NULL, 0};
    par *p = calloc(1, sizeof *p);
    if (!p || (n && !(p->tasks = calloc(n, sizeof *p->tasks))) || index_init(&ix, n)) {
        free(p ? p->tasks : NULL);
        free(p);
        return host->fail(NDF_ERR_NOMEM, "parallel: out of memory");
    }
    p->max_concurrent = (unsigned)host->value_int(host->value_get(params, "max_concurrent"));
    p->threshold = host->value_number(host->value_get(params, "resource_threshold"));
    p->tolerance = host->value_number(host->value_get(params, "failure_tolerance"));
    const ndf_value *mf = host->value_get(params, "max_failures");
    p->max_failures = mf ? (long long)host->value_int(mf) : -1;
    p->timeout = host->value_number(host->value_get(params, "timeout_seconds"));
    p->rollback = host->value_bool(host->value_get(params, "rollback_enabled"));

    int rc = NDF_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        const ndf_value *e = host->value_at(list, i);
        const char *name = host->value_string(host->value_get(e, "name"));
        ptask *t = &p->tasks[i];
        if (!*name) {
            rc = host->fail_at(e, NDF_ERR_VALIDATION, "parallel: task %zu has an empty name", i + 1);
            break;
        }
        size_t dup = index_find(&ix, p->tasks, name, SIZE_MAX);
        if (dup != SIZE_MAX) {
            rc = host->fail_at(e, NDF_ERR_VALIDATION,
                               "parallel: duplicate task name '%s' (first defined at line %d)",
                               name, host->value_line(host->value_at(list, dup)));
            break;
        }
        if (!(t->name = strdup(name))) {
            rc = host->fail(NDF_ERR_NOMEM, "parallel: out of memory");
            break;
        }
        p->n++;
        index_find(&ix, p->tasks, name, i);
        t->cpu = host->value_number(host->value_get(e, "cpu"));
        t->memory = host->value_number(host->value_get(e, "memory"));
        if (t->cpu > p->threshold || t->memory > p->threshold) {
            rc = host->fail_at(e, NDF_ERR_VALIDATION,
                               "parallel: task '%s' needs %s %g, more than resource_threshold %g: "
                               "it could never start", name, t->cpu > p->threshold ? "cpu" : "memory",
                               t->cpu > p->threshold ? t->cpu : t->memory, p->threshold);
            break;
        }
        ndf_task_spec spec;
        ndf_task_spec_read(host, e, &spec);
        spec.where = e;
        rc = host->task_new(&spec, &t->task);
    }
    if (!rc)
        rc = link_tasks(host, p, list, &ix);
    free(ix.slot);
    if (rc) {
        par_destroy(host, p);
        return rc;
    }
    *instance = p;
    return NDF_OK;
}

/* ---- running ---- */

typedef struct prun prun;

typedef struct tref {
    prun *run;
    size_t i;
} tref;

struct prun {
    const ndf_host *host;
    const par *inst;
    ndf_exec *exec;
    ndf_group *group;
    ndf_exec **nodes;
    tref *refs;
    atomic_size_t *pending;     /* dependencies not completed yet */
    atomic_uchar *doomed;       /* 1: will never run (a dependency failed) */
    atomic_uchar *done;         /* 1: completed and not undone */
    atomic_size_t failed;       /* tasks that failed */
    atomic_size_t lost;         /* failed + skipped because of a failure */
    atomic_int stop;            /* 1: can no longer succeed; start nothing new */
    atomic_int first_status;    /* status of the first failure */
    atomic_size_t first_failed; /* index + 1 of the first failed task */
    size_t allowed;             /* most `lost` tasks for success */
};

static void run_free(void *arg)
{
    prun *r = arg;
    if (!r)
        return;
    free(r->nodes);
    free(r->refs);
    free(r->pending);
    free(r->doomed);
    free(r->done);
    free(r);
}

/* Marks every task that (transitively) depends on `i` SKIPPED.  None of
 * them can have started: `i` never counts down their pending dependencies.
 * Returns how many were newly marked. */
static size_t skip_dependents(prun *r, size_t i, const char *why)
{
    const par *p = r->inst;
    const ndf_host *host = r->host;
    if (!p->tasks[i].ndependents)
        return 0;
    size_t *stack = malloc(p->n * sizeof *stack), top = 0, marked = 0;
    if (!stack) {
        /* Left PENDING: the sweep after group_wait() marks them. */
        host->log(NDF_LOG_ERROR, "parallel: out of memory marking the dependents of '%s'",
                  p->tasks[i].name);
        return 0;
    }
    stack[top++] = i;
    while (top) {
        const ptask *t = &p->tasks[stack[--top]];
        for (size_t k = 0; k < t->ndependents; k++) {
            size_t d = t->dependents[k];
            if (atomic_exchange(&r->doomed[d], 1))
                continue;
            host->node_set_state(r->nodes[d], NDF_STATE_SKIPPED, "not run: dependency '%s' %s",
                                 t->name, t == &p->tasks[i] ? why : "was skipped");
            marked++;
            stack[top++] = d;
        }
    }
    free(stack);
    return marked;
}

/* Counts task i's failure (and the dependents it dooms) and stops the
 * pattern from starting more once it can no longer succeed. */
static void record_failure(prun *r, size_t i, int rc)
{
    int zero = 0;
    if (atomic_compare_exchange_strong(&r->first_status, &zero, rc))
        atomic_store(&r->first_failed, i + 1);
    atomic_fetch_add(&r->failed, 1);
    size_t marked = skip_dependents(r, i, "failed");
    size_t lost = atomic_fetch_add(&r->lost, 1 + marked) + 1 + marked;
    if (lost > r->allowed)
        atomic_store(&r->stop, 1);
}

static int task_work(void *arg);

static void spawn_task(prun *r, size_t i)
{
    int rc = r->host->group_spawn(r->group, task_work, &r->refs[i]);
    if (rc) {
        r->host->node_set_state(r->nodes[i], NDF_STATE_SKIPPED, "not started: %s",
                                ndf_status_name(rc));
        record_failure(r, i, rc);
    }
}

static int task_work(void *arg)
{
    tref *ref = arg;
    prun *r = ref->run;
    size_t i = ref->i;
    const ptask *t = &r->inst->tasks[i];
    const ndf_host *host = r->host;
    ndf_exec *node = r->nodes[i];
    int rc;

    if (atomic_load(&r->stop)) {
        host->node_set_state(node, NDF_STATE_SKIPPED,
                             "not started: the pattern can no longer succeed");
        skip_dependents(r, i, "was skipped");
        return NDF_OK;
    }
    if (t->cpu > 0 || t->memory > 0) {
        rc = host->resources_wait(node, r->inst->threshold - t->cpu,
                                  r->inst->threshold - t->memory);
        if (rc) {
            /* the host's words carry what it measured against what the
             * wait needed; ours add what the task asked for */
            char seen[400];
            snprintf(seen, sizeof seen, "%s", host->last_error());
            host->node_set_state(node,
                                 rc == NDF_ERR_TIMEOUT     ? NDF_STATE_TIMED_OUT
                                 : rc == NDF_ERR_CANCELLED ? NDF_STATE_CANCELLED
                                                           : NDF_STATE_FAILED,
                                 "waiting for resources (the task needs cpu %g and memory %g "
                                 "under the pattern's threshold %g): %s",
                                 t->cpu, t->memory, r->inst->threshold,
                                 seen[0] ? seen : ndf_status_name(rc));
            record_failure(r, i, rc);
            return rc;
        }
    }
    rc = host->task_run(node, t->task);
    if (rc) {
        record_failure(r, i, rc);
        return rc;
    }
    atomic_store(&r->done[i], 1);
    for (size_t k = 0; k < t->ndependents; k++) {
        size_t d = t->dependents[k];
        if (atomic_fetch_sub(&r->pending[d], 1) == 1)
            spawn_task(r, d);
    }
    return NDF_OK;
}

/* Undoes completed tasks, dependents before their dependencies.  With
 * `only` != SIZE_MAX, only the tasks that (transitively) depend on it.
 * Returns how many undo actions failed; *undone counts those attempted. */
static size_t undo_completed(prun *r, size_t only, size_t *undone)
{
    const par *p = r->inst;
    const ndf_host *host = r->host;
    unsigned char *mark = NULL;
    if (only != SIZE_MAX) {
        /* A forward pass in topological order marks the dependents. */
        if (!(mark = calloc(p->n, 1))) {
            host->node_log(r->exec, NDF_LOG_ERROR, "rollback: out of memory");
            return 1;
        }
        mark[only] = 2;
        for (size_t k = 0; k < p->n; k++) {
            size_t i = p->topo[k];
            for (size_t j = 0; j < p->tasks[i].ndeps && !mark[i]; j++)
                if (mark[p->tasks[i].deps[j]])
                    mark[i] = 1;
        }
    }
    size_t failed = 0;
    *undone = 0;
    for (size_t k = p->n; k-- > 0;) {
        size_t i = p->topo[k];
        if (!atomic_load(&r->done[i]) || (mark && mark[i] != 1))
            continue;
        ++*undone;
        int rc = host->task_undo(r->nodes[i], p->tasks[i].task);
        if (rc == NDF_ERR_CANCELLED) {
            /* the rollback was stopped (undo actions ignore a first
             * cancellation): no other is tried, and those left are said
             * in one line */
            failed++;
            size_t left = 0;
            for (size_t j = k; j-- > 0;) {
                size_t t = p->topo[j];
                left += atomic_load(&r->done[t]) && !(mark && mark[t] != 1);
            }
            if (left)
                host->node_log(r->exec, NDF_LOG_ERROR,
                               "rollback: stopped (cancelled) at task '%s'; %zu more undo "
                               "action(s) not run",
                               p->tasks[i].name, left);
            else
                host->node_log(r->exec, NDF_LOG_ERROR, "rollback: stopped (cancelled) at task '%s'",
                               p->tasks[i].name);
            break;
        }
        if (rc) {
            failed++;
            host->node_log(r->exec, NDF_LOG_ERROR, "rollback: undoing task '%s' failed (%s)",
                           p->tasks[i].name, ndf_status_name(rc));
        } else {
            atomic_store(&r->done[i], 0);
        }
    }
    free(mark);
    return failed;
}

static prun *run_new(const ndf_host *host, const par *p, ndf_exec *exec)
{
    prun *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    size_t n = p->n ? p->n : 1;
    r->host = host;
    r->inst = p;
    r->exec = exec;
    r->nodes = calloc(n, sizeof *r->nodes);
    r->refs = calloc(n, sizeof *r->refs);
    r->pending = calloc(n, sizeof *r->pending);
    r->doomed = calloc(n, sizeof *r->doomed);
    r->done = calloc(n, sizeof *r->done);
    if (!r->nodes || !r->refs || !r->pending || !r->doomed || !r->done) {
        run_free(r);
        return NULL;
    }
    for (size_t i = 0; i < p->n; i++) {
        r->refs[i].run = r;
        r->refs[i].i = i;
        atomic_init(&r->pending[i], p->tasks[i].ndeps);
    }
    atomic_init(&r->failed, 0);
    atomic_init(&r->lost, 0);
    atomic_init(&r->stop, 0);
    atomic_init(&r->first_status, 0);
    atomic_init(&r->first_failed, 0);
    /* Integer bound, so that 1 failure of 5 at tolerance 0.2 is exactly on
     * the boundary whatever the rounding of 0.2 * 5. */
    double allowed = floor(p->tolerance * (double)p->n + 1e-9);
    r->allowed = allowed < 0 ? 0 : (size_t)allowed;
    if (p->max_failures >= 0 && (size_t)p->max_failures < r->allowed)
        r->allowed = (size_t)p->max_failures;
    return r;
}

static int par_run(const ndf_host *host, ndf_exec *exec, void *instance)
{
    const par *p = instance;
    prun *r = run_new(host, p, exec);
    if (!r)
        return host->fail(NDF_ERR_NOMEM, "parallel: out of memory");
    int rc = host->exec_set_data(exec, r, run_free);
    if (rc) {
        run_free(r);
        return rc;
    }
    if (p->timeout > 0)
        host->node_set_timeout(exec, p->timeout);
    for (size_t i = 0; i < p->n; i++)
        if (!(r->nodes[i] = host->node_new(exec, NDF_NODE_TASK, p->tasks[i].name)))
            return host->fail(NDF_ERR_NOMEM, "parallel: out of memory");
    if (p->n == 0)
        return NDF_OK;
    if (!(r->group = host->group_new(exec, p->max_concurrent)))
        return host->fail(NDF_ERR_NOMEM, "parallel: out of memory");

    /* Roots in topological order: that is definition order among them. */
    for (size_t k = 0; k < p->n && p->tasks[p->topo[k]].ndeps == 0; k++)
        spawn_task(r, p->topo[k]);
    int wrc = host->group_wait(r->group);
    /* r->group stays set: work that overran a deadline may still try to
     * spawn into it (and is refused); the host keeps the group alive until
     * that work is gone. */
    host->group_free(r->group);

    /* Whatever never started (dropped at a deadline, or not reached) is
     * SKIPPED, so every task ends with a final state. */
    size_t completed = 0, skipped = 0;
    for (size_t i = 0; i < p->n; i++) {
        ndf_state st = host->node_state(r->nodes[i]);
        if (st == NDF_STATE_PENDING) {
            host->node_set_state(r->nodes[i], NDF_STATE_SKIPPED, "not started: %s",
                                 wrc ? ndf_status_name(wrc) : "a dependency did not complete");
            st = NDF_STATE_SKIPPED;
        }
        completed += atomic_load(&r->done[i]);
        skipped += st == NDF_STATE_SKIPPED;
    }
    size_t failed = atomic_load(&r->failed), lost = atomic_load(&r->lost);
    int first = atomic_load(&r->first_status);
    size_t ff = atomic_load(&r->first_failed);

    if (wrc == NDF_OK && lost == 0)
        return NDF_OK;
    if (wrc == NDF_OK && lost <= r->allowed) {
        char extra[64] = "";
        if (lost > failed)
            snprintf(extra, sizeof extra, " (%zu dependent task(s) skipped)", lost - failed);
        host->node_set_state(exec, NDF_STATE_DEGRADED, "succeeded with %zu tolerated failure(s)%s",
                             failed, extra);
        return NDF_OK;
    }

    size_t undone = 0, undo_failed = 0;
    if (p->rollback)
        undo_failed = undo_completed(r, SIZE_MAX, &undone);
    char tail[128] = "";
    if (undo_failed)
        snprintf(tail, sizeof tail, "; rollback: %zu of %zu undo action(s) failed", undo_failed,
                 undone);
    else if (undone)
        snprintf(tail, sizeof tail, "; rolled back %zu completed task(s)", undone);
    /* A wait for resources that ran into the deadline is the more telling
     * cause than the deadline itself. */
    if (wrc && first != NDF_ERR_RESOURCE)
        return host->fail(wrc, "stopped: %s with %zu of %zu task(s) completed%s",
                          ndf_status_name(wrc), completed, p->n, tail);
    return host->fail(first ? first : NDF_ERR_EXECUTION,
                      "%zu of %zu task(s) failed, %zu skipped (failure_tolerance allows %zu); "
                      "first: task '%s' (%s)%s",
                      failed, p->n, skipped, r->allowed, ff ? p->tasks[ff - 1].name : "?",
                      ndf_status_name(first), tail);
}

/* `target`, when given, names a task: only the completed tasks that depend
 * on it are undone.  `level` does not apply to a flat set of tasks. */
static int par_rollback(const ndf_host *host, ndf_exec *exec, void *instance, const char *level,
                        const char *target)
{
    const par *p = instance;
    prun *r = host->exec_data(exec);
    if (!r)
        return host->fail(NDF_ERR_INVALID, "execution %s has no tasks to roll back",
                          host->exec_id(exec));
    if (r->inst != p)
        return host->fail(NDF_ERR_INVALID,
                          "execution %s ran an earlier definition of this pattern; "
                          "it cannot be rolled back with the current one", host->exec_id(exec));
    size_t only = SIZE_MAX;
    if (target) {
        size_t k = 0;
        while (k < p->n && strcmp(p->tasks[k].name, target) != 0)
            k++;
        if (k == p->n)
            return host->fail(NDF_ERR_NOT_FOUND, "no task '%s' in this pattern", target);
        only = k;
    }
    size_t undone = 0, failed = undo_completed(r, only, &undone);
    if (failed)
        return host->fail(NDF_ERR_EXECUTION, "rollback: %zu of %zu undo action(s) failed", failed,
                          undone);
    return NDF_OK;
}

static const ndf_pattern_type_def par_type = {
    .size = sizeof(ndf_pattern_type_def),
    .name = "parallel",
    .description =
        "tasks with dependencies run concurrently, with resource checks and failure tolerance",
    .params = par_params,
    .create = par_create,
    .destroy = par_destroy,
    .run = par_run,
    .rollback = par_rollback,
};

static int par_init(const ndf_host *host, ndf_registrar *reg, void **state)
{
    *state = NULL;
    return host->register_pattern_type(reg, &par_type);
}

NDF_PLUGIN_DEFINE("parallel", "1.0.0", "MIT",
                  "the parallel pattern type (seed ParallelCoordinationPattern)", par_init, NULL);

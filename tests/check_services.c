/* Check suite for the ABI 1.2 members of the services table
 * (host/exec/services.c, services_exec.c): node_cancel, group_cancel,
 * group_new_any / group_wait_any, node_set_result / node_set_metric /
 * node_result and ${steps.NAME.result}, and spawn's stdout capture, driven
 * through the table exactly as a plugin calls it, on a record and pool made
 * by hand. */
#include "build-config.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exec/pool.h"
#include "exec/record.h"
#include "exec/services.h"
#include "exec_fixtures.h"
#include "base/util.h"

static const ndf_host *const H = &host_services;
static pool *P;
static record *R;

static void setup(void)
{
    /* Enough workers that every piece of work in these tests gets one: a
     * waiter that ran a hanging piece inline would wait for itself. */
    P = pool_new(4);
    ck_assert_ptr_nonnull(P);
    R = record_new("p", NULL, INFINITY);
    R->pool = P;
    R->kill_grace = 0.2;
}

static void teardown(void)
{
    record_unref(R);
    pool_free(P, -1);
}

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static const char *msg_of(const ndf_exec *n)
{
    static char buf[512];
    H->node_message(n, buf, sizeof buf);
    return buf;
}

/* ---- node_cancel ---- */

START_TEST(cancel_pending_running_final_and_later_children)
{
    ndf_exec *done = H->node_new(R->root, NDF_NODE_STEP, "done");
    ndf_exec *top = H->node_new(R->root, NDF_NODE_TASK, "top");
    ndf_exec *pend = H->node_new(top, NDF_NODE_STEP, "pending");
    ndf_exec *run = H->node_new(top, NDF_NODE_STEP, "running");
    H->node_set_state(done, NDF_STATE_COMPLETED, NULL);
    H->node_set_state(run, NDF_STATE_RUNNING, NULL);
    ck_assert_int_eq(H->cancelled(run), 0);

    H->node_cancel(top);
    H->node_cancel(top); /* idempotent */
    ck_assert_int_eq(H->node_state(pend), NDF_STATE_CANCELLED);
    ck_assert_str_eq(msg_of(pend), "cancelled before it started");
    /* A running node is told, and settles itself. */
    ck_assert_int_eq(H->node_state(run), NDF_STATE_RUNNING);
    ck_assert_int_eq(H->cancelled(run), NDF_ERR_CANCELLED);
    /* Outside the cancelled subtree nothing changes. */
    ck_assert_int_eq(H->node_state(done), NDF_STATE_COMPLETED);
    ck_assert_int_eq(H->cancelled(R->root), 0);
    ck_assert_int_eq(H->cancelled(done), 0);
    /* A child made afterwards is born cancelled. */
    ndf_exec *late = H->node_new(top, NDF_NODE_STEP, "late");
    ck_assert_int_eq(H->cancelled(late), NDF_ERR_CANCELLED);

    /* run_step on a cancelled node does not start the step. */
    ndf_step *s = fx_step(&fx_count_def, NULL);
    atomic_store(&fx_count, 0);
    ck_assert_int_eq(H->run_step(late, s, 0), NDF_ERR_CANCELLED);
    ck_assert_int_eq(atomic_load(&fx_count), 0);
    ck_assert_int_eq(H->node_state(late), NDF_STATE_CANCELLED);
    fx_step_free(s);
    H->node_cancel(NULL); /* no crash */
}
END_TEST

/* ---- a queued execution's lease deadline ---- */

/* A step starts before the record's lease_end and never after it; the one
 * refused sets lease_lapsed and cancels the execution hard (nothing is
 * undone), whatever thread notices first. */
START_TEST(no_step_starts_past_the_lease_deadline)
{
    ndf_step *s = fx_step(&fx_count_def, NULL);
    atomic_store(&fx_count, 0);
    ndf_exec *first = H->node_new(R->root, NDF_NODE_STEP, "first");
    atomic_store(&R->lease_end, now_mono() + 60);
    ck_assert_int_eq(H->run_step(first, s, 0), NDF_OK);
    ck_assert_int_eq(atomic_load(&fx_count), 1);
    ck_assert_int_eq(atomic_load(&R->lease_lapsed), 0);

    /* the deadline passed (a pause of the process): not started */
    atomic_store(&R->lease_end, now_mono() - 0.001);
    ndf_exec *second = H->node_new(R->root, NDF_NODE_STEP, "second");
    ck_assert_int_eq(H->run_step(second, s, 0), NDF_ERR_CANCELLED);
    ck_assert_int_eq(atomic_load(&fx_count), 1);
    ck_assert_int_eq(H->node_state(second), NDF_STATE_CANCELLED);
    ck_assert_msg(strstr(msg_of(second), "lease of its queued item was lost") != NULL, "%s",
                  msg_of(second));
    ck_assert_int_eq(atomic_load(&R->lease_lapsed), 1);
    ck_assert_int_eq(atomic_load(&R->hard_cancel), 1);
    /* a renewal after that changes nothing: the record is cancelled */
    atomic_store(&R->lease_end, now_mono() + 60);
    ndf_exec *third = H->node_new(R->root, NDF_NODE_STEP, "third");
    ck_assert_int_eq(H->run_step(third, s, 0), NDF_ERR_CANCELLED);
    ck_assert_int_eq(atomic_load(&fx_count), 1);
    fx_step_free(s);
}
END_TEST

/* ---- groups: wait for any, cancel the rest ---- */

typedef struct job {
    ndf_exec *node;
    ndf_step *step;
    int id;
} job;

static int job_run(void *arg)
{
    job *j = arg;
    return H->run_step(j->node, j->step, 0);
}

START_TEST(group_wait_any_then_cancel_losers)
{
    ndf_group *g = H->group_new_any(R->root, 0);
    ck_assert_ptr_nonnull(g);
    job jobs[4];
    ndf_step *quick = fx_step(&fx_noop_def, NULL);
    ndf_step *hang = fx_step(&fx_poll_hang_def, NULL);
    for (int i = 0; i < 4; i++) {
        char name[8];
        snprintf(name, sizeof name, "t%d", i);
        jobs[i] = (job){H->node_new(R->root, NDF_NODE_TASK, name), i == 2 ? quick : hang, i};
        ck_assert_int_eq(H->group_spawn(g, job_run, &jobs[i]), NDF_OK);
    }
    for (int i = 0; i < 4; i++)
        while (i != 2 && H->node_state(jobs[i].node) != NDF_STATE_RUNNING)
            msleep(1);
    void *arg = NULL;
    int st = 99;
    ck_assert_int_eq(H->group_wait_any(g, &arg, &st), NDF_OK);
    ck_assert_ptr_eq(arg, &jobs[2]);
    ck_assert_int_eq(st, NDF_OK);
    ck_assert_int_eq(H->node_state(jobs[2].node), NDF_STATE_COMPLETED);

    /* The three that hang are running or queued: all are cancelled. */
    ck_assert_int_eq(H->group_cancel(g), 3);
    ck_assert_int_eq(H->group_spawn(g, job_run, &jobs[0]), NDF_ERR_CANCELLED);
    int seen[4] = {0};
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(H->group_wait_any(g, &arg, &st), NDF_OK);
        ck_assert_int_eq(st, NDF_ERR_CANCELLED);
        seen[((job *)arg)->id]++;
    }
    ck_assert_int_eq(seen[0] + seen[1] + seen[3], 3);
    ck_assert_int_eq(seen[2], 0);
    ck_assert_int_eq(H->group_wait_any(g, &arg, &st), NDF_ERR_NOT_FOUND);
    for (int i = 0; i < 4; i++)
        if (i != 2)
            ck_assert_int_eq(H->node_state(jobs[i].node), NDF_STATE_CANCELLED);
    /* A plain wait on the same group is over too, and not an error: the
     * plugin cancelled its own work. */
    ck_assert_int_eq(H->group_wait(g), NDF_OK);
    /* The pattern node itself goes on. */
    ck_assert_int_eq(H->cancelled(R->root), 0);
    H->group_free(g);
    fx_step_free(quick);
    fx_step_free(hang);
}
END_TEST

START_TEST(group_wait_any_needs_an_any_group)
{
    ndf_group *g = H->group_new(R->root, 0);
    ck_assert_int_eq(H->group_wait_any(g, NULL, NULL), NDF_ERR_INVALID);
    ck_assert_msg(strstr(H->last_error(), "group_new_any") != NULL, "%s", H->last_error());
    ck_assert_int_eq(H->group_wait(g), NDF_OK);
    H->group_free(g);
    /* Nothing spawned: nothing to report. */
    g = H->group_new_any(R->root, 1);
    ck_assert_int_eq(H->group_wait_any(g, NULL, NULL), NDF_ERR_NOT_FOUND);
    H->group_free(g);
}
END_TEST

/* With max_concurrent 1, cancelling drops work still waiting for a slot:
 * it is reported (CANCELLED) without ever running. */
static _Atomic int started;

static int mark_and_hang(void *arg)
{
    job *j = arg;
    atomic_fetch_add(&started, 1);
    return H->run_step(j->node, j->step, 0);
}

START_TEST(group_cancel_drops_queued_work)
{
    atomic_store(&started, 0);
    ndf_group *g = H->group_new_any(R->root, 1);
    ndf_step *hang = fx_step(&fx_poll_hang_def, NULL);
    job jobs[3];
    for (int i = 0; i < 3; i++) {
        char name[8];
        snprintf(name, sizeof name, "q%d", i);
        jobs[i] = (job){H->node_new(R->root, NDF_NODE_TASK, name), hang, i};
        ck_assert_int_eq(H->group_spawn(g, mark_and_hang, &jobs[i]), NDF_OK);
    }
    while (atomic_load(&started) == 0)
        msleep(1);
    ck_assert_int_eq(H->group_cancel(g), 3);
    int n = 0, st;
    void *arg;
    while (H->group_wait_any(g, &arg, &st) == NDF_OK) {
        ck_assert_int_eq(st, NDF_ERR_CANCELLED);
        n++;
    }
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(atomic_load(&started), 1);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(H->node_state(jobs[i].node), NDF_STATE_CANCELLED);
    H->group_free(g);
    fx_step_free(hang);
}
END_TEST

/* group_cancel stops a process a step started: SIGTERM reaches it and the
 * spawn returns CANCELLED long before the process's own 30 s. */
static int spawn_sleeper(void *arg)
{
    ndf_exec *n = arg;
    static const char *const argv[] = {"sleep", "30", NULL};
    ndf_spawn o = {.size = sizeof o, .argv = argv};
    H->node_set_state(n, NDF_STATE_RUNNING, NULL);
    int rc = H->spawn(n, &o, NULL);
    H->node_set_state(n, rc == NDF_ERR_CANCELLED ? NDF_STATE_CANCELLED : NDF_STATE_FAILED, "%s",
                      H->last_error());
    return rc;
}

START_TEST(group_cancel_kills_processes)
{
    ndf_group *g = H->group_new_any(R->root, 0);
    ndf_exec *n = H->node_new(R->root, NDF_NODE_STEP, "sleeper");
    ck_assert_int_eq(H->group_spawn(g, spawn_sleeper, n), NDF_OK);
    while (H->node_state(n) != NDF_STATE_RUNNING)
        msleep(1);
    msleep(50);
    ck_assert_int_eq(H->group_cancel(g), 1);
    int st = 0;
    ck_assert_int_eq(H->group_wait_any(g, NULL, &st), NDF_OK);
    ck_assert_int_eq(st, NDF_ERR_CANCELLED);
    ck_assert_int_eq(H->node_state(n), NDF_STATE_CANCELLED);
    ck_assert_msg(strstr(msg_of(n), "signal 15 (cancelled)") != NULL, "%s", msg_of(n));
    H->group_free(g);
}
END_TEST

/* A saturated pool still completes: the only worker is held by one piece,
 * so the waiter (here not a worker) runs the others itself after its short
 * grace, and reports them while the first still runs. */
static _Atomic int held_gate, held_on_worker;
static pthread_t tester;

static int held(void *arg)
{
    (void)arg;
    atomic_store(&held_on_worker, !pthread_equal(pthread_self(), tester));
    for (int i = 0; i < 4000 && !atomic_load(&held_gate); i++)
        msleep(1);
    return NDF_OK;
}

static int quick(void *arg)
{
    (void)arg;
    return NDF_ERR_EXECUTION;
}

START_TEST(group_wait_any_helps_a_saturated_pool)
{
    pool *one = pool_new(1);
    record *r = record_new("one", NULL, INFINITY);
    r->pool = one;
    tester = pthread_self();
    atomic_store(&held_gate, 0);
    atomic_store(&held_on_worker, -1);
    ndf_group *g = H->group_new_any(r->root, 0);
    static int ids[3] = {0, 1, 2};
    ck_assert_int_eq(H->group_spawn(g, held, &ids[0]), NDF_OK);
    while (atomic_load(&held_on_worker) < 0)
        msleep(1);
    ck_assert_int_eq(H->group_spawn(g, quick, &ids[1]), NDF_OK);
    ck_assert_int_eq(H->group_spawn(g, quick, &ids[2]), NDF_OK);
    void *arg;
    int st, seen = 0;
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(H->group_wait_any(g, &arg, &st), NDF_OK);
        /* The held piece is on the worker: the two quick ones come first,
         * run by this thread. */
        if (atomic_load(&held_on_worker) == 1) {
            ck_assert_int_ne(*(int *)arg, 0);
            ck_assert_int_eq(st, NDF_ERR_EXECUTION);
        }
        seen |= 1 << *(int *)arg;
    }
    atomic_store(&held_gate, 1);
    ck_assert_int_eq(H->group_wait_any(g, &arg, &st), NDF_OK);
    seen |= 1 << *(int *)arg;
    ck_assert_int_eq(seen, 7);
    ck_assert_int_eq(H->group_wait_any(g, &arg, &st), NDF_ERR_NOT_FOUND);
    H->group_free(g);
    record_unref(r);
    pool_free(one, -1);
}
END_TEST

/* ---- results, metrics and ${steps.NAME.result} ---- */

/* A binding's isolation key is for steps: on a pattern task it is an
 * error placed at the key. */
START_TEST(task_isolation_needs_a_step)
{
    ndf_value *iso = value_new_string("isolation", "process");
    value_set_pos(iso, value_intern_file("x.conf"), 7);
    ndf_task_spec spec = {.size = sizeof spec, .pattern = "p", .isolation = iso};
    ndf_task *t = NULL;
    ck_assert_int_eq(H->task_new(&spec, &t), NDF_ERR_VALIDATION);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(H->last_error(), "x.conf:7: 'isolation' applies to a step") != NULL,
                  "%s", H->last_error());
    value_free(iso);
}
END_TEST

START_TEST(results_metrics_and_expansion)
{
    ndf_exec *a = H->node_new(R->root, NDF_NODE_STEP, "fetch.v2");
    ndf_exec *b = H->node_new(R->root, NDF_NODE_STEP, "use");
    char *out = (char *)1;
    ck_assert_int_eq(H->node_result(a, &out), NDF_ERR_NOT_FOUND);
    ck_assert_ptr_null(out);
    /* Before the step has a result, the template is an error that says so. */
    ck_assert_int_eq(H->expand(b, "got ${steps.fetch.v2.result}", &out), NDF_ERR_VALIDATION);
    ck_assert_msg(strstr(H->last_error(), "has a result") != NULL, "%s", H->last_error());
    ck_assert_int_eq(H->node_set_result(a, "first"), NDF_OK);
    ck_assert_int_eq(H->node_set_result(a, "42 apples"), NDF_OK);
    ck_assert_int_eq(H->node_result(a, &out), NDF_OK);
    ck_assert_str_eq(out, "42 apples");
    H->free(out);
    ck_assert_int_eq(H->expand(b, "got ${steps.fetch.v2.result}!", &out), NDF_OK);
    ck_assert_str_eq(out, "got 42 apples!");
    H->free(out);
    /* Not a result variable, and an unknown step. */
    ck_assert_int_eq(H->expand(b, "${steps.fetch.v2}", &out), NDF_ERR_VALIDATION);
    ck_assert_msg(strstr(H->last_error(), "unknown variable") != NULL, "%s", H->last_error());
    ck_assert_int_eq(H->expand(b, "${steps.nope.result}", &out), NDF_ERR_VALIDATION);

    ck_assert_int_eq(H->node_set_metric(a, "tokens.in", 1200), NDF_OK);
    ck_assert_int_eq(H->node_set_metric(a, "cost_usd", 0.25), NDF_OK);
    ck_assert_int_eq(H->node_set_metric(a, "tokens.in", 1300), NDF_OK);
    ck_assert_int_eq(H->node_set_metric(a, "bad name", 1), NDF_ERR_INVALID);
    ck_assert_int_eq(H->node_set_metric(a, "", 1), NDF_ERR_INVALID);
    ck_assert_int_eq(H->node_set_metric(a, "nan", NAN), NDF_ERR_INVALID);
    /* the host's own measurements cannot be forged by a step */
    ck_assert_int_eq(H->node_set_metric(a, "ndf.thread_cpu_s", 0), NDF_ERR_INVALID);
    ck_assert_msg(strstr(H->last_error(), "'ndf.' are the host's") != NULL, "%s", H->last_error());
    char many[16];
    int rc = NDF_OK, k;
    for (k = 0; k < 40 && rc == NDF_OK; k++) {
        snprintf(many, sizeof many, "m%d", k);
        rc = H->node_set_metric(b, many, k);
    }
    ck_assert_int_eq(rc, NDF_ERR_RESOURCE);
    ck_assert_int_eq(k, NODE_METRICS_MAX + 1);

    /* The record carries both, and the log (what the store keeps) too. */
    strbuf sb;
    sb_init(&sb);
    record_to_json(R, &sb);
    ck_assert_msg(strstr(sb.buf, "\"result\":\"42 apples\"") != NULL, "%s", sb.buf);
    ck_assert_msg(strstr(sb.buf, "\"metrics\":{\"tokens.in\":1300,\"cost_usd\":0.25}") != NULL,
                  "%s", sb.buf);
    ck_assert_msg(strstr(sb.buf, "result: 42 apples\\n") != NULL, "%s", sb.buf);
    ck_assert_msg(strstr(sb.buf, "metric cost_usd = 0.25\\n") != NULL, "%s", sb.buf);
    sb_free(&sb);
    ck_assert_int_eq(H->node_set_result(a, NULL), NDF_OK);
    ck_assert_int_eq(H->node_result(a, &out), NDF_ERR_NOT_FOUND);
}
END_TEST

/* ---- spawn: stdout captured for the caller ---- */

START_TEST(spawn_capture)
{
    ndf_exec *n = H->node_new(R->root, NDF_NODE_STEP, "cap");
    static const char *const echo[] = {"/bin/sh", "-c", "printf 'a\\0b'; echo err >&2; exit 3",
                                       NULL};
    ndf_spawn o = {.size = sizeof o, .argv = echo, .flags = NDF_SPAWN_CAPTURE_STDOUT};
    ndf_spawn_result res = {.size = sizeof res};
    ck_assert_int_eq(H->spawn(n, &o, &res), NDF_ERR_EXECUTION);
    ck_assert_int_eq(res.exit_status, 3);
    ck_assert_ptr_nonnull(res.output);
    ck_assert_uint_eq(res.output_len, 3);
    ck_assert_int_eq(memcmp(res.output, "a\0b", 4), 0);
    ck_assert_int_eq(res.output_overflow, 0);
    H->free(res.output);
    /* stdout did not go into the record; stderr did. */
    ck_assert_uint_eq(n->out[REC_STDOUT].len, 0);
    ck_assert_msg(n->out[REC_STDERR].len == 4, "%zu", n->out[REC_STDERR].len);

    /* Over the limit: stopped, and the call fails saying so. */
    static const char *const yes[] = {"yes", NULL};
    o.argv = yes;
    o.output_limit = 10000;
    ck_assert_int_eq(H->spawn(n, &o, &res), NDF_ERR_EXECUTION);
    ck_assert_msg(strstr(H->last_error(), "more than 10000 bytes") != NULL, "%s", H->last_error());
    ck_assert_int_eq(res.output_overflow, 1);
    ck_assert_uint_le(res.output_len, 10000);
    H->free(res.output);

    /* Capture without a 1.2 result to put it in is refused. */
    ck_assert_int_eq(H->spawn(n, &o, NULL), NDF_ERR_INVALID);
    ndf_spawn_result old = {.size = offsetof(ndf_spawn_result, output)};
    ck_assert_int_eq(H->spawn(n, &o, &old), NDF_ERR_INVALID);
}
END_TEST

/* ---- the table itself ---- */

START_TEST(table_has_the_1_2_members)
{
    ck_assert_uint_eq(H->abi_minor, NDF_ABI_MINOR);
    ck_assert_uint_ge(H->abi_minor, 2);
    ck_assert(NDF_HOST_HAS(H, node_result));
    ck_assert_ptr_nonnull(NDF_HOST_GET(H, group_cancel));
    /* A table cut at the 1.1 size has none of them. */
    ndf_host old = *H;
    old.size = offsetof(ndf_host, node_cancel);
    ck_assert(!NDF_HOST_HAS(&old, node_cancel));
    ck_assert_ptr_null(NDF_HOST_GET(&old, node_cancel));
    ck_assert(NDF_HOST_HAS(&old, node_set_timeout));
}
END_TEST

/* ---- the CPU time of an in-process step call ---- */

static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Its instance: milliseconds of thread CPU to burn (> 0) or of sleep (< 0);
 * 0 returns at once. */
static int cpu_run(const ndf_host *h, ndf_exec *n, const ndf_value *p, void *inst)
{
    (void)h, (void)n, (void)p;
    long ms = *(const long *)inst;
    if (ms > 0) {
        double until = thread_cpu() + (double)ms / 1e3;
        while (thread_cpu() < until)
            ;
    } else if (ms < 0) {
        msleep((int)-ms);
    }
    return NDF_OK;
}
static const ndf_step_def cpu_def = {.size = sizeof(ndf_step_def), .name = "cpu", .run = cpu_run};

/* One call with `ms`; returns the node's thread CPU figure and its wall
 * time in *wall. */
static double cpu_call(ndf_step *st, long *inst, long ms, double *wall)
{
    *inst = ms;
    ndf_exec *n = node_new(R->root, NDF_NODE_STEP, "c");
    double t0 = now_mono();
    ck_assert_int_eq(H->run_step(n, st, 0), NDF_OK);
    *wall = now_mono() - t0;
    ck_assert_uint_eq(n->usage.sources & USAGE_THREAD, USAGE_THREAD);
    return n->usage.thread_cpu_s;
}

START_TEST(step_cpu_exact_when_long_bounded_when_short)
{
    long inst = 0;
    ndf_step *st = fx_step(&cpu_def, &inst);
    double wall, cpu;
    /* A first call is measured with the thread clock: a 40 ms sleep is
     * charged (almost) nothing, not its wall time. */
    cpu = cpu_call(st, &inst, -40, &wall);
    ck_assert_msg(cpu < 0.01, "a sleeping first call charged %.6f s (wall %.6f)", cpu, wall);
    ck_assert_int_eq(atomic_load(&st->cpu_short), 0);
    /* A long call after a long one: exact, 30 ms of CPU burnt. */
    cpu = cpu_call(st, &inst, 30, &wall);
    ck_assert_msg(cpu >= 0.030 && cpu <= wall + 1e-4, "30 ms burnt, charged %.6f s (wall %.6f)",
                  cpu, wall);
    /* A short call: the next is expected short and timed by wall alone,
     * charged at most its wall time and never more than the threshold. */
    cpu_call(st, &inst, 0, &wall);
    ck_assert_int_eq(atomic_load(&st->cpu_short), 1);
    cpu = cpu_call(st, &inst, 0, &wall);
    ck_assert_msg(cpu >= 0 && cpu < 1e-3 && cpu <= wall, "a no-op charged %.6f s", cpu);
    ck_assert_int_eq(atomic_load(&st->cpu_short), 1);
    /* Expected short, ran long sleeping: charged the thread's CPU since
     * its last reading (little: it slept), not its 40 ms of wall; then
     * the next call is measured exactly again. */
    cpu = cpu_call(st, &inst, -40, &wall);
    ck_assert_msg(cpu < 0.01 && cpu <= wall, "a mispredicted sleep charged %.6f s (wall %.6f)",
                  cpu, wall);
    ck_assert_int_eq(atomic_load(&st->cpu_short), 0);
    /* Expected short, ran long burning: at least what it burnt. */
    cpu_call(st, &inst, 0, &wall);
    ck_assert_int_eq(atomic_load(&st->cpu_short), 1);
    cpu = cpu_call(st, &inst, 20, &wall);
    ck_assert_msg(cpu >= 0.020 && cpu <= wall + 1e-4,
                  "a mispredicted 20 ms burn charged %.6f s (wall %.6f)", cpu, wall);
    fx_step_free(st);
}
END_TEST

static Suite *services_suite(void)
{
    Suite *s = suite_create("services");
    TCase *tc = tcase_create("1.2");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, cancel_pending_running_final_and_later_children);
    tcase_add_test(tc, group_wait_any_then_cancel_losers);
    tcase_add_test(tc, group_wait_any_needs_an_any_group);
    tcase_add_test(tc, group_cancel_drops_queued_work);
    tcase_add_test(tc, group_wait_any_helps_a_saturated_pool);
    tcase_add_test(tc, group_cancel_kills_processes);
    tcase_add_test(tc, results_metrics_and_expansion);
    tcase_add_test(tc, task_isolation_needs_a_step);
    tcase_add_test(tc, no_step_starts_past_the_lease_deadline);
    tcase_add_test(tc, spawn_capture);
    tcase_add_test(tc, table_has_the_1_2_members);
    tcase_add_test(tc, step_cpu_exact_when_long_bounded_when_short);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(services_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

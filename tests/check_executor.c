/* Check suite for host/exec/executor.c: the execute calls (gate, timeouts,
 * overruns, fallback, batch, learning, sub-patterns through the record's
 * executor), with in-process fixture patterns.  The pool has its own suite,
 * check_pool.c. */
#include "build-config.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/context.h"
#include "exec/executor.h"
#include "exec_fixtures.h"
#include "model/registry.h"
#include "base/util.h"

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the executor ---- */

static registry *reg;
static executor *ex;
static learning_params lp;
static _Atomic int completions;

static void on_complete(void *opaque, pattern *p, const record *r)
{
    (void)opaque, (void)p, (void)r;
    atomic_fetch_add(&completions, 1);
}

static void add(pattern *p)
{
    ck_assert_int_eq(registry_register(reg, p), NDF_OK);
    pattern_unref(p);
}

static ndf_step **steps1(const ndf_step_def *d, void *inst)
{
    ndf_step **s = xcalloc(1, sizeof *s);
    s[0] = fx_step(d, inst);
    return s;
}

static void setup_exec(unsigned threads)
{
    learning_params_default(&lp);
    lp.min_samples = 3;
    registry_opts ro = {.cache_size = 0, .enable_learning = 1, .learning = lp, .store = NULL};
    reg = registry_new(&ro);
    executor_opts eo = {.threads = threads,
                        .default_timeout = 10,
                        .pattern_timeout = 10,
                        .kill_grace = 0.2,
                        .confidence_threshold = 0.5,
                        .reg = reg,
                        .on_complete = on_complete};
    ex = executor_new(&eo);
    ck_assert_ptr_nonnull(ex);
    atomic_store(&completions, 0);
    atomic_store(&fx_gate, 0);

    ndf_step **s = xcalloc(3, sizeof *s);
    s[0] = fx_step(&fx_count_def, NULL);
    s[1] = fx_step(&fx_noop_def, NULL);
    s[2] = fx_step(&fx_count_def, NULL);
    add(fx_pattern_seq("ok", &lp, 0, 3, s));
    add(fx_pattern_seq("fails", &lp, 0, 1, steps1(&fx_fail_def, NULL)));
    add(fx_pattern_seq("hangs", &lp, 0, 1, steps1(&fx_poll_hang_def, NULL)));
    add(fx_pattern_seq("overruns", &lp, 0.2, 1, steps1(&fx_overrun_def, NULL)));
    add(fx_pattern_seq("slow", &lp, 0, 1, steps1(&fx_sleep_def, (void *)(intptr_t)150)));
    add(fx_pattern_seq("fast", &lp, 0, 1, steps1(&fx_sleep_def, (void *)(intptr_t)1)));
    s = xcalloc(3, sizeof *s);
    s[0] = fx_step(&fx_undo_ok_def, NULL);
    s[1] = fx_step(&fx_undo_fail_def, NULL);
    s[2] = fx_step(&fx_fail_def, NULL);
    add(fx_pattern_seq("rollback", &lp, 0, 3, s));
    s = xcalloc(2, sizeof *s);
    s[0] = fx_step(&fx_undo_ok_def, NULL);
    s[1] = fx_step(&fx_poll_hang_def, NULL);
    add(fx_pattern_seq("undo_hang", &lp, 0, 2, s));
    add(fx_pattern_seq("spins", &lp, 0, 1, steps1(&fx_spin_def, NULL)));
    const char *inner[] = {"ok", "ok", "fast"};
    add(fx_pattern_group("par", &lp, 0, 3, inner));
    const char *outer[] = {"par", "ok", "par"};
    add(fx_pattern_group("meta", &lp, 0, 3, outer));
    /* built by hand, so no load-time cycle check stands in its way */
    const char *self[] = {"selfish"};
    add(fx_pattern_group("selfish", &lp, 0, 1, self));
}

static void setup1(void)
{
    setup_exec(1);
}

static void setup2(void)
{
    setup_exec(2);
}

static void teardown_exec(void)
{
    atomic_store(&fx_gate, 1);
    executor_free(ex);
    registry_free(reg);
}

static uint64_t executions(const char *name)
{
    pattern *p;
    ck_assert_int_eq(registry_get(reg, name, &p), NDF_OK);
    learning_state st;
    pattern_stats(p, &st);
    uint64_t n = st.executions;
    learning_free(&st);
    pattern_unref(p);
    return n;
}

START_TEST(exec_ok_and_learning)
{
    ndf_context *c = context_new("web", "dev", 2);
    record *r;
    atomic_store(&fx_count, 0);
    ck_assert_int_eq(executor_execute(ex, "ok", c, 0, 0, &r), NDF_OK);
    ck_assert_int_eq(atomic_load(&fx_count), 2);
    ck_assert_int_eq(atomic_load(&r->root->state), NDF_STATE_COMPLETED);
    ck_assert_int_eq(r->root->nkids, 3);
    for (size_t i = 0; i < 3; i++)
        ck_assert_int_eq(atomic_load(&r->root->kids[i]->state), NDF_STATE_COMPLETED);
    ck_assert_double_eq(node_progress(r->root), 100.0);
    ck_assert_uint_eq(executions("ok"), 1);
    ck_assert_int_eq(executor_execute(ex, "fails", c, 0, 0, NULL), NDF_ERR_EXECUTION);
    ck_assert_str_eq(err_msg(), "fixture failure");
    ck_assert_uint_eq(executions("fails"), 1);
    ck_assert_int_eq(atomic_load(&completions), 2);
    /* the record is kept by id, and the latest is the default */
    record *f = executor_find(ex, r->id);
    ck_assert_ptr_eq(f, r);
    record_unref(f);
    f = executor_find(ex, NULL);
    ck_assert_str_eq(f->root->name, "fails");
    ck_assert_int_eq(f->status, NDF_ERR_EXECUTION);
    record_unref(f);
    ck_assert_ptr_null(executor_find(ex, "no-such-id"));
    strbuf sb;
    sb_init(&sb);
    record_to_json(r, &sb);
    ck_assert(strstr(sb.buf, "\"status\":\"ok\""));
    ck_assert(strstr(sb.buf, "\"domain\":\"web\""));
    sb_free(&sb);
    record_unref(r);
    context_free(c);
}
END_TEST

START_TEST(exec_not_found_and_gate)
{
    ndf_context *c = context_new("web", "dev", 1);
    record *r = (record *)1;
    ck_assert_int_eq(executor_execute(ex, "nope", c, 0, 0, &r), NDF_ERR_NOT_FOUND);
    ck_assert_ptr_null(r);
    ck_assert_str_eq(err_msg(), "no pattern named 'nope'");
    pattern *p;
    ck_assert_int_eq(registry_get(reg, "fails", &p), NDF_OK);
    p->gate = GATE_ENFORCE;
    /* untrusted (fewer than min_samples): the gate lets it through */
    ck_assert_int_eq(executor_execute(ex, "fails", c, 0, 0, NULL), NDF_ERR_EXECUTION);
    ck_assert_int_eq(executor_execute(ex, "fails", c, 0, 0, NULL), NDF_ERR_EXECUTION);
    ck_assert_int_eq(executor_execute(ex, "fails", c, 0, 0, NULL), NDF_ERR_EXECUTION);
    ck_assert_int_eq(executor_execute(ex, "fails", c, 0, 0, NULL), NDF_ERR_CONFIDENCE);
    ck_assert(strstr(err_msg(), "below its threshold"));
    ck_assert(strstr(err_msg(), "enforce"));
    ck_assert_int_eq(executor_execute(ex, "fails", c, 0, EXEC_FORCE, NULL), NDF_ERR_EXECUTION);

    /* warn (the global default here): it runs, can earn its confidence
     * back, and its record says it ran below the threshold */
    p->gate = -1;
    ck_assert_int_eq(pattern_gate(p, GATE_WARN), GATE_WARN);
    strbuf sb;
    sb_init(&sb);
    record *r2;
    ck_assert_int_eq(executor_execute(ex, "fails", c, 0, 0, &r2), NDF_ERR_EXECUTION);
    record_to_json(r2, &sb);
    ck_assert_msg(strstr(sb.buf, "below its threshold 0.500; running it anyway"), "%s", sb.buf);
    record_unref(r2);

    /* off: it runs and nothing is said */
    p->gate = GATE_OFF;
    sb.len = 0;
    ck_assert_int_eq(executor_execute(ex, "fails", c, 0, 0, &r2), NDF_ERR_EXECUTION);
    record_to_json(r2, &sb);
    ck_assert_msg(!strstr(sb.buf, "below its threshold"), "%s", sb.buf);
    record_unref(r2);
    sb_free(&sb);
    pattern_unref(p);
    context_free(c);
}
END_TEST

START_TEST(exec_hung_step_cancelled_at_deadline)
{
    ndf_context *c = context_new("web", "dev", 1);
    record *r;
    double t0 = now_mono();
    ck_assert_int_eq(executor_execute(ex, "hangs", c, 0.2, 0, &r), NDF_ERR_TIMEOUT);
    ck_assert(now_mono() - t0 < 5);
    ck_assert_int_eq(atomic_load(&r->root->state), NDF_STATE_TIMED_OUT);
    ck_assert_int_eq(atomic_load(&r->root->kids[0]->state), NDF_STATE_TIMED_OUT);
    ck_assert_str_eq(r->root->kids[0]->message, "stopped: timed out");
    record_unref(r);
    /* explicit cancellation */
    ck_assert_int_eq(executor_start(ex, "hangs", c, 0, 0, &r), NDF_OK);
    msleep(50);
    ck_assert_int_eq(executor_cancel(ex, r->id), NDF_OK);
    executor_wait(ex, r, -1);
    ck_assert_int_eq(r->status, NDF_ERR_CANCELLED);
    ck_assert_int_eq(atomic_load(&r->root->kids[0]->state), NDF_STATE_CANCELLED);
    record_unref(r);
    ck_assert_int_eq(executor_cancel(ex, "nope"), NDF_ERR_NOT_FOUND);
    context_free(c);
}
END_TEST

/* What a signal to ndf does: every running execution is cancelled (the
 * queued one too), rollback runs, new ones are refused. */
START_TEST(exec_cancel_all)
{
    ndf_context *c = context_new("web", "dev", 1);
    record *r1, *r2, *r3 = (record *)1;
    atomic_store(&fx_undone, 0);
    ck_assert_int_eq(executor_start(ex, "undo_hang", c, 0, 0, &r1), NDF_OK);
    ck_assert_int_eq(executor_start(ex, "hangs", c, 0, 0, &r2), NDF_OK);
    while (atomic_load(&r1->root->nkids) < 2)
        msleep(1);
    ck_assert_uint_eq(executor_cancel_all(ex, 0), 2);
    executor_wait(ex, r1, -1);
    executor_wait(ex, r2, -1);
    ck_assert_int_eq(r1->status, NDF_ERR_CANCELLED);
    ck_assert_int_eq(r2->status, NDF_ERR_CANCELLED);
    ck_assert_int_eq(atomic_load(&fx_undone), 1);
    ck_assert_int_eq(atomic_load(&r1->root->kids[0]->state), NDF_STATE_ROLLED_BACK);
    ck_assert_int_eq(executor_start(ex, "ok", c, 0, 0, &r3), NDF_ERR_CANCELLED);
    ck_assert_ptr_null(r3);
    ck_assert_str_eq(err_msg(), "pattern 'ok': not started: ndf is stopping");
    ck_assert_uint_eq(executor_cancel_all(ex, 1), 0);
    record_unref(r1);
    record_unref(r2);
    context_free(c);
}
END_TEST

/* A second signal: the undo actions are skipped. */
START_TEST(exec_cancel_all_hard)
{
    ndf_context *c = context_new("web", "dev", 1);
    record *r;
    atomic_store(&fx_undone, 0);
    ck_assert_int_eq(executor_start(ex, "undo_hang", c, 0, 0, &r), NDF_OK);
    while (atomic_load(&r->root->nkids) < 2)
        msleep(1);
    /* hard at once: a soft one first could let the undo start before the
     * hard flag lands */
    ck_assert_uint_eq(executor_cancel_all(ex, 1), 1);
    executor_wait(ex, r, -1);
    ck_assert_int_eq(r->status, NDF_ERR_CANCELLED);
    ck_assert_int_eq(atomic_load(&fx_undone), 0);
    ck_assert_msg(strstr(r->root->kids[0]->message, "rollback skipped"), "%s",
                  r->root->kids[0]->message);
    record_unref(r);
    context_free(c);
}
END_TEST

/* An in-process step that holds its worker past its deadline: the worker
 * is abandoned and replaced (the pool of one goes on), an execution queued
 * behind it keeps its deadline, and once no worker is left new runs fail
 * at once, saying why. */
START_TEST(exec_worker_abandoned)
{
    ndf_context *c = context_new("web", "dev", 1);
    record *r, *q;
    ck_assert_int_eq(executor_start(ex, "spins", c, 0.2, 0, &r), NDF_OK);
    /* queued behind it on the only worker, with a deadline of its own */
    ck_assert_int_eq(executor_start(ex, "ok", c, 0.1, 0, &q), NDF_OK);
    executor_wait(ex, q, -1);
    ck_assert_int_eq(q->status, NDF_ERR_TIMEOUT);
    ck_assert_msg(strstr(q->error, "while queued"), "%s", q->error);
    record_unref(q);
    executor_wait(ex, r, -1);
    ck_assert_int_eq(r->status, NDF_ERR_TIMEOUT);
    record_unref(r);
    pool_stats st;
    executor_health(ex, &st);
    ck_assert_uint_eq(st.abandoned, 1);
    ck_assert_uint_eq(st.replaced, 1);
    ck_assert_uint_eq(st.active, 1);
    ck_assert_int_eq(executor_execute(ex, "ok", c, 0, 0, NULL), NDF_OK);
    /* the replacement is held too: no spare left */
    ck_assert_int_eq(executor_execute(ex, "spins", c, 0.2, 0, NULL), NDF_ERR_TIMEOUT);
    executor_health(ex, &st);
    ck_assert_uint_eq(st.active, 0);
    ck_assert_uint_eq(st.unreplaced, 1);
    ck_assert_int_eq(executor_start(ex, "ok", c, 0, 0, &r), NDF_ERR_RESOURCE);
    ck_assert_msg(strstr(err_msg(), "no worker thread can take it"), "%s", err_msg());
    /* the steps return: a worker is back */
    atomic_store(&fx_gate, 1);
    do {
        msleep(1);
        executor_health(ex, &st);
    } while (st.abandoned > 0);
    ck_assert_uint_eq(st.active, 1);
    ck_assert_int_eq(executor_execute(ex, "ok", c, 0, 0, NULL), NDF_OK);
    context_free(c);
}
END_TEST

START_TEST(exec_overrun_reported)
{
    ndf_context *c = context_new("web", "dev", 1);
    record *r;
    atomic_store(&fx_overrun_done, 0);
    ck_assert_int_eq(executor_execute(ex, "overruns", c, 0, 0, &r), NDF_ERR_TIMEOUT);
    ndf_exec *step = r->root->kids[0];
    ck_assert_int_eq(atomic_load(&step->state), NDF_STATE_TIMED_OUT);
    ck_assert_msg(strstr(step->message, "overran its deadline by"), "%s", step->message);
    ck_assert(strstr(r->error, "overran its deadline by"));
    ck_assert_int_eq(atomic_load(&fx_overrun_done), 0); /* still running, detached */
    record_unref(r);
    atomic_store(&fx_gate, 1);
    while (atomic_load(&fx_overrun_done) == 0)
        msleep(1);
    context_free(c);
}
END_TEST

START_TEST(exec_rollback_with_failing_undo)
{
    ndf_context *c = context_new("web", "dev", 1);
    record *r;
    atomic_store(&fx_undone, 0);
    ck_assert_int_eq(executor_execute(ex, "rollback", c, 0, 0, &r), NDF_ERR_EXECUTION);
    ck_assert_int_eq(atomic_load(&fx_undone), 1); /* ran after the failing undo */
    ck_assert_int_eq(atomic_load(&r->root->kids[0]->state), NDF_STATE_ROLLED_BACK);
    ck_assert_int_eq(atomic_load(&r->root->kids[1]->state), NDF_STATE_FAILED);
    ck_assert_str_eq(r->root->kids[1]->message, "undo failed: fixture undo failure");
    ck_assert_int_eq(atomic_load(&r->root->kids[2]->state), NDF_STATE_FAILED);
    record_unref(r);
    context_free(c);
}
END_TEST

START_TEST(exec_nested_one_thread)
{
    ndf_context *c = context_new("web", "dev", 1);
    record *r;
    atomic_store(&fx_count, 0);
    ck_assert_int_eq(executor_execute(ex, "meta", c, 0, 0, &r), NDF_OK);
    ck_assert_int_eq(atomic_load(&fx_count), 10); /* 5 "ok" runs, 2 counts each */
    ck_assert_uint_eq(executions("par"), 2);
    ck_assert_uint_eq(executions("ok"), 5);
    ck_assert_int_eq(atomic_load(&completions), 1); /* sub-patterns feed learning only */
    record_unref(r);
    context_free(c);
}
END_TEST

START_TEST(exec_fallback_causes)
{
    ndf_context *c = context_new("web", "dev", 1);
    fallback_result fr;
    ck_assert_int_eq(executor_execute_with_fallback(ex, "ok", "fast", c, 0, 0, &fr), NDF_OK);
    ck_assert_str_eq(fr.used, "ok");
    ck_assert_int_eq(fr.cause, FALLBACK_NONE);
    ck_assert_ptr_null(fr.fallback);
    fallback_result_free(&fr);

    ck_assert_int_eq(executor_execute_with_fallback(ex, "fails", "fast", c, 0, 0, &fr), NDF_OK);
    ck_assert_str_eq(fr.used, "fast");
    ck_assert_int_eq(fr.cause, FALLBACK_FAILURE);
    ck_assert_str_eq(fr.primary_error, "fixture failure");
    ck_assert_str_eq(fr.fallback->fallback_cause, "failure");
    fallback_result_free(&fr);

    ck_assert_int_eq(executor_execute_with_fallback(ex, "nope", "fast", c, 0, 0, &fr), NDF_OK);
    ck_assert_int_eq(fr.cause, FALLBACK_NOT_FOUND);
    ck_assert_str_eq(fallback_cause_name(fr.cause), "not found");
    fallback_result_free(&fr);

    ck_assert_int_eq(executor_execute_with_fallback(ex, "hangs", "fast", c, 0.1, 0, &fr), NDF_OK);
    ck_assert_int_eq(fr.cause, FALLBACK_TIMEOUT);
    ck_assert_int_eq(fr.primary_status, NDF_ERR_TIMEOUT);
    fallback_result_free(&fr);

    for (int i = 0; i < 3; i++)
        executor_execute(ex, "fails", c, 0, 0, NULL);
    /* gate warn (the default): it runs, fails, and the fallback takes over */
    ck_assert_int_eq(executor_execute_with_fallback(ex, "fails", "fast", c, 0, 0, &fr), NDF_OK);
    ck_assert_int_eq(fr.cause, FALLBACK_FAILURE);
    fallback_result_free(&fr);
    pattern *p;
    ck_assert_int_eq(registry_get(reg, "fails", &p), NDF_OK);
    p->gate = GATE_ENFORCE;
    ck_assert_int_eq(executor_execute_with_fallback(ex, "fails", "fast", c, 0, 0, &fr), NDF_OK);
    ck_assert_int_eq(fr.cause, FALLBACK_CONFIDENCE);
    ck_assert_str_eq(fallback_cause_name(fr.cause), "confidence gate");
    fallback_result_free(&fr);
    pattern_unref(p);

    /* both fail: the fallback's status */
    ck_assert_int_eq(executor_execute_with_fallback(ex, "nope", "nope2", c, 0, 0, &fr),
                     NDF_ERR_NOT_FOUND);
    ck_assert_str_eq(fr.used, "nope2");
    fallback_result_free(&fr);
    context_free(c);
}
END_TEST

START_TEST(exec_batch_order)
{
    ndf_context *c1 = context_new("web", "dev", 1);
    ndf_context *c5 = context_new("web", "dev", 5);
    batch_item items[] = {
        {"slow", c5, 0}, {"fast", c1, 0}, {"nope", c1, 0}, {"fails", c1, 0}, {"ok", c1, 0}};
    batch_result res[5];
    for (int parallel = 1; parallel >= 0; parallel--) {
        ck_assert_uint_eq(executor_batch(ex, items, 5, parallel, 0, res), 2);
        ck_assert_int_eq(res[0].status, NDF_OK);
        ck_assert_str_eq(res[0].rec->root->name, "slow");
        ck_assert_str_eq(res[1].rec->root->name, "fast");
        ck_assert_int_eq(res[2].status, NDF_ERR_NOT_FOUND);
        ck_assert_ptr_null(res[2].rec);
        ck_assert_str_eq(res[2].error, "no pattern named 'nope'");
        ck_assert_int_eq(res[3].status, NDF_ERR_EXECUTION);
        ck_assert_str_eq(res[3].error, "fixture failure");
        ck_assert_int_eq(res[4].status, NDF_OK);
        if (parallel && pool_size(executor_pool(ex)) > 1) /* "slow" finished last */
            ck_assert(res[0].rec->end > res[1].rec->end);
        batch_results_free(res, 5);
    }
    context_free(c1);
    context_free(c5);
}
END_TEST

/* A blocking step (run on a thread of its own) that leaves data in its
 * node; the data's free function notes the thread that freed it. */
static _Atomic(pthread_t *) freed_on;
static pthread_t freed_thread;

static void tagged_free(void *data)
{
    freed_thread = pthread_self();
    atomic_store(&freed_on, &freed_thread);
    free(data);
}

static int tagged_run(const ndf_host *h, ndf_exec *n, const ndf_value *p, void *inst)
{
    (void)p, (void)inst;
    return h->exec_set_data(n, xmalloc(16), tagged_free);
}

static const ndf_param_spec no_params[] = {NDF_PARAM_END};
static const ndf_step_def tagged_def = {
    sizeof(ndf_step_def), "tagged", "fixture", no_params, NDF_STEP_BLOCKING, NULL, NULL,
    tagged_run,           NULL};

/* Regression: the detached thread of a blocking step used to drop its record
 * reference after reporting back, so the record (and plugin data in it)
 * could be freed on that thread later, after the plugin was unloaded.  Once
 * the executor is stopped, the caller's reference must be the only one,
 * and the last unref frees the step's data on the caller's thread. */
START_TEST(exec_blocking_step_releases_record)
{
    for (int i = 0; i < 50; i++) {
        registry_opts ro = {.cache_size = 0, .enable_learning = 0, .learning = lp};
        registry *rg = registry_new(&ro);
        pattern *p = fx_pattern_seq("tagged", &lp, 0, 1, steps1(&tagged_def, NULL));
        registry_register(rg, p);
        pattern_unref(p);
        executor_opts eo = {.threads = 2, .kill_grace = 0.2, .reg = rg};
        executor *e = executor_new(&eo);
        record *r;
        atomic_store(&freed_on, NULL);
        ck_assert_int_eq(executor_execute(e, "tagged", NULL, 5, EXEC_FORCE, &r), NDF_OK);
        executor_free(e);
        ck_assert_int_eq(atomic_load(&r->refs), 1);
        ck_assert_ptr_null(atomic_load(&freed_on));
        record_unref(r);
        ck_assert_ptr_nonnull(atomic_load(&freed_on));
        ck_assert(pthread_equal(freed_thread, pthread_self()));
        registry_free(rg);
    }
}
END_TEST

/* No hidden global: the services table finds the executor only through the
 * node's record, so a record no executor started cannot run sub-patterns,
 * even while an executor exists (records the executor starts can: see
 * exec_nested_one_thread). */
START_TEST(exec_sub_pattern_needs_the_records_executor)
{
    record *r = record_new("by-hand", NULL, INFINITY);
    ck_assert_ptr_null(r->ex);
    ck_assert_int_eq(host_services.run_pattern(r->root, "ok", 0), NDF_ERR_EXECUTION);
    ck_assert_msg(strstr(err_msg(), "no executor"), "%s", err_msg());
    ck_assert_uint_eq(r->root->nkids, 0);
    record_unref(r);
}
END_TEST

/* A pattern that runs itself past the load-time check meets the nesting
 * limit: an error, not a stack overflow. */
START_TEST(exec_nesting_limit)
{
    ndf_context *c = context_new("web", "dev", 2);
    record *r;
    ck_assert_int_eq(executor_execute(ex, "selfish", c, 0, 0, &r), NDF_ERR_VALIDATION);
    /* the innermost refusal names the limit */
    const ndf_exec *n = r->root;
    int depth = 1;
    while (n->nkids && n->kids[0]->nkids) {
        n = n->kids[0]->kids[0]; /* task, then its sub-pattern */
        depth++;
    }
    ck_assert_int_eq(depth, EXECUTOR_MAX_NESTING);
    record_unref(r);
    context_free(c);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("executor");
    TCase *tc = tcase_create("execute1");
    tcase_add_checked_fixture(tc, setup1, teardown_exec);
    tcase_add_test(tc, exec_ok_and_learning);
    tcase_add_test(tc, exec_nesting_limit);
    tcase_add_test(tc, exec_not_found_and_gate);
    tcase_add_test(tc, exec_hung_step_cancelled_at_deadline);
    tcase_add_test(tc, exec_overrun_reported);
    tcase_add_test(tc, exec_rollback_with_failing_undo);
    tcase_add_test(tc, exec_cancel_all);
    tcase_add_test(tc, exec_cancel_all_hard);
    tcase_add_test(tc, exec_worker_abandoned);
    tcase_add_test(tc, exec_nested_one_thread);
    tcase_add_test(tc, exec_fallback_causes);
    tcase_add_test(tc, exec_batch_order);
    tcase_add_test(tc, exec_blocking_step_releases_record);
    tcase_add_test(tc, exec_sub_pattern_needs_the_records_executor);
    suite_add_tcase(s, tc);
    tc = tcase_create("execute2");
    tcase_add_checked_fixture(tc, setup2, teardown_exec);
    tcase_add_test(tc, exec_nested_one_thread);
    tcase_add_test(tc, exec_batch_order);
    tcase_add_test(tc, exec_overrun_reported);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

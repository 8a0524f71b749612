/* Benchmark: per-step dispatch.  1,000,000 no-op in-process steps run by the
 * executor through the services table, against a direct function-call loop
 * over the same no-op: ns per step and the overhead.  Two forms: one
 * execution of a 1,000,000-step in-process fixture sequence (the host's
 * whole per-step path: node, deadline check, state and timing), and the
 * real "sequential" + "steps" plugins from NDF_PLUGIN_PATH as 100
 * executions of a 10,000-step pattern (the plugin's create() checks step
 * names pairwise, which makes a 1,000,000-step definition take hours to
 * load). */
#include "build-config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "context.h"
#include "executor.h"
#include "exec_fixtures.h"
#include "loader.h"
#include "registry.h"
#include "util.h"

#define NSTEPS 1000000

static int noop_fn(const ndf_host *h, ndf_exec *n, const ndf_value *p, void *inst)
{
    (void)h, (void)n, (void)p, (void)inst;
    return NDF_OK;
}

/* Through a volatile pointer, so the compiler cannot inline the call away:
 * the same indirect call the host makes. */
static int (*volatile direct)(const ndf_host *, ndf_exec *, const ndf_value *, void *) = noop_fn;

static double direct_loop(void)
{
    double best = INFINITY;
    for (int r = 0; r < 5; r++) {
        double t0 = now_mono();
        int acc = 0;
        for (long i = 0; i < NSTEPS; i++)
            acc += direct(NULL, NULL, NULL, NULL);
        double t = now_mono() - t0;
        if (acc)
            abort();
        best = fmin(best, t);
    }
    return best / NSTEPS * 1e9;
}

#define PLUGIN_STEPS 10000
#define PLUGIN_RUNS (NSTEPS / PLUGIN_STEPS)

static ndf_value *seq_def(void)
{
    ndf_value *def = value_new_group(NULL);
    value_append(def, value_new_string("name", "bench_plugin"));
    value_append(def, value_new_string("type", "sequential"));
    ndf_value *params = value_new_group("params");
    ndf_value *steps = value_new_list("steps");
    char name[32];
    for (long i = 0; i < PLUGIN_STEPS; i++) {
        ndf_value *s = value_new_group(NULL);
        snprintf(name, sizeof name, "s%ld", i);
        value_append(s, value_new_string("name", name));
        value_append(s, value_new_string("step", "noop"));
        value_append(steps, s);
    }
    value_append(params, steps);
    value_append(params, value_new_bool("rollback_enabled", 0));
    value_append(def, params);
    return def;
}

static double run(executor *ex, const char *name, int runs, size_t nodes)
{
    ndf_context *ctx = context_new("bench", "bench", 1);
    double best = INFINITY;
    for (int r = 0; r < 3; r++) {
        double total = 0;
        for (int k = 0; k < runs; k++) {
            record *rec;
            double t0 = now_mono();
            int rc = executor_execute(ex, name, ctx, 0, EXEC_FORCE, &rec);
            total += now_mono() - t0;
            if (rc || rec->root->nkids != nodes) {
                fprintf(stderr, "bench_dispatch: %s: %s (%zu step nodes)\n", name,
                        rc ? err_msg() : "wrong shape", rec ? rec->root->nkids : 0);
                exit(1);
            }
            record_unref(rec); /* freeing the record is not part of dispatch */
        }
        best = fmin(best, total);
    }
    context_free(ctx);
    return best / NSTEPS * 1e9;
}

int main(void)
{
    learning_params lp;
    learning_params_default(&lp);
    registry_opts ro = {.cache_size = 0, .enable_learning = 1, .learning = lp};
    registry *reg = registry_new(&ro);

    ndf_step **steps = xcalloc(NSTEPS, sizeof *steps);
    for (long i = 0; i < NSTEPS; i++)
        steps[i] = fx_step(&fx_noop_def, NULL);
    pattern *p = fx_pattern_seq("bench_fixture", &lp, 0, NSTEPS, steps);
    registry_register(reg, p);
    pattern_unref(p);

    char cache[] = "/tmp/ndf-bench-XXXXXX";
    loader *ld = NULL;
    int have_plugin = 0;
    const char *path = getenv("NDF_PLUGIN_PATH");
    if (path && *path && mkdtemp(cache)) {
        loader_opts lo = {.cache_dir = cache, .allow_insecure = 1};
        log_set_level(0);
        ld = loader_new(&lo);
        char *dirs[] = {(char *)path};
        if (ld) {
            loader_scan(ld, dirs, 1);
            loader_set_active(ld);
        }
        log_set_level(1);
    }
    if (ld && loader_find(ld, PROVIDED_PATTERN_TYPE, "sequential") &&
        loader_find(ld, PROVIDED_STEP, "noop")) {
        if (pattern_build(seq_def(), &lp, &p) == NDF_OK) {
            registry_register(reg, p);
            pattern_unref(p);
            have_plugin = 1;
        } else {
            fprintf(stderr, "bench_dispatch: %s\n", err_msg());
        }
    }
    executor_opts eo = {.threads = 1, .default_timeout = 0, .pattern_timeout = 0,
                        .kill_grace = 1, .confidence_threshold = 0, .reg = reg};
    executor *ex = executor_new(&eo);

    double base = direct_loop();
    double fx = run(ex, "bench_fixture", 1, NSTEPS);
    printf("per-step dispatch: %d no-op in-process steps, best of 3 (ns/step)\n", NSTEPS);
    printf("  %-52s %8.1f\n", "direct function-call loop", base);
    printf("  %-52s %8.1f  overhead %6.1f ns (%.0fx)\n",
           "executor, 1 execution of a 1,000,000-step sequence", fx, fx - base, fx / base);
    if (have_plugin) {
        double pl = run(ex, "bench_plugin", PLUGIN_RUNS, PLUGIN_STEPS);
        printf("  %-52s %8.1f  overhead %6.1f ns (%.0fx)\n",
               "sequential plugin, 100 executions x 10,000 steps", pl, pl - base, pl / base);
    } else {
        printf("  (sequential/steps plugins not found in NDF_PLUGIN_PATH: plugin row skipped)\n");
    }
    printf("  goal: overhead < 50 ns/step\n");
    executor_free(ex);
    registry_free(reg);
    if (ld) {
        loader_set_active(NULL);
        loader_free(ld);
        rmdir(cache);
    }
    return 0;
}

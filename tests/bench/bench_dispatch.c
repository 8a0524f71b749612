/* Benchmark: per-step dispatch.  One execution of a sequential pattern of
 * 1,000,000 no-op in-process steps (the real "sequential" and "steps"
 * plugins from NDF_PLUGIN_PATH, through the services table: node, deadline
 * check, state and timing per step), against a direct function-call loop
 * over the same no-op: ns per step and the ratio.  Also an in-process
 * fixture sequence of the same length (the host's per-step path without the
 * plugins), and the time to build the 1,000,000-step pattern. */
#include "build-config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/context.h"
#include "exec/executor.h"
#include "exec_fixtures.h"
#include "plugin/loader.h"
#include "exec/services.h"
#include "model/registry.h"
#include "base/util.h"

/* BENCH_STEPS in the environment overrides the count (for profiling under
 * callgrind, say). */
static long nsteps = 1000000;

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
        for (long i = 0; i < nsteps; i++)
            acc += direct(NULL, NULL, NULL, NULL);
        double t = now_mono() - t0;
        if (acc)
            abort();
        best = fmin(best, t);
    }
    return best / nsteps * 1e9;
}

static ndf_value *seq_def(void)
{
    ndf_value *def = value_new_group(NULL);
    value_append(def, value_new_string("name", "bench_plugin"));
    value_append(def, value_new_string("type", "sequential"));
    ndf_value *params = value_new_group("params");
    ndf_value *steps = value_new_list("steps");
    char name[32];
    for (long i = 0; i < nsteps; i++) {
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

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs pattern `name` once per round, best of 5 rounds: wall time per step,
 * and (in *cpu) the process's CPU time per step, which the other programs
 * on a busy machine do not inflate (the caller sleeps in executor_wait
 * while the one worker runs the execution). */
static double run(executor *ex, const char *name, size_t nodes, double *cpu, double *first)
{
    ndf_context *ctx = context_new("bench", "bench", 1);
    double best = INFINITY, best_cpu = INFINITY;
    *first = 0;
    for (int r = 0; r < 5; r++) {
        record *rec;
        double c0 = cpu_now(), t0 = now_mono();
        int rc = executor_execute(ex, name, ctx, 0, EXEC_FORCE, &rec);
        double t = now_mono() - t0, c = cpu_now() - c0;
        if (rc || rec->root->nkids != nodes) {
            fprintf(stderr, "bench_dispatch: %s: %s (%zu step nodes)\n", name,
                    rc ? err_msg() : "wrong shape", rec ? rec->root->nkids : 0);
            exit(1);
        }
        record_unref(rec); /* freeing the record is not part of dispatch */
        if (r == 0)
            *first = t / (double)nsteps * 1e9;
        best = fmin(best, t);
        best_cpu = fmin(best_cpu, c);
    }
    context_free(ctx);
    *cpu = best_cpu / (double)nsteps * 1e9;
    return best / (double)nsteps * 1e9;
}

/* Registers "bench_plugin" (seq_def) built from the sequential and steps
 * plugins found in NDF_PLUGIN_PATH, loaded through a loader whose private
 * copies go to `cache` (made here).  1 when it was registered; *ld is the
 * loader to free (may be NULL), *build_s the time pattern_build took. */
static int load_plugin_pattern(registry *reg, const learning_params *lp, char *cache, loader **ld,
                               double *build_s)
{
    *ld = NULL;
    *build_s = 0;
    const char *path = getenv("NDF_PLUGIN_PATH");
    if (!path || !*path || !mkdtemp(cache))
        return 0;
    loader_opts lo = {.host = &host_services, .cache_dir = cache, .allow_insecure = 1};
    log_set_level(0);
    *ld = loader_new(&lo);
    char *dirs[] = {(char *)path};
    if (*ld)
        loader_scan(*ld, dirs, 1);
    log_set_level(1);
    if (!*ld || !loader_find(*ld, PROVIDED_PATTERN_TYPE, "sequential") ||
        !loader_find(*ld, PROVIDED_STEP, "noop"))
        return 0;
    ndf_value *def = seq_def();
    pattern *p;
    double t0 = now_mono();
    int rc = pattern_build(*ld, def, lp, &p);
    *build_s = now_mono() - t0;
    if (rc != NDF_OK) {
        fprintf(stderr, "bench_dispatch: %s\n", err_msg());
        return 0;
    }
    registry_register(reg, p);
    pattern_unref(p);
    return 1;
}

int main(void)
{
    const char *env = getenv("BENCH_STEPS");
    if (env && atol(env) > 0)
        nsteps = atol(env);
    learning_params lp;
    learning_params_default(&lp);
    registry_opts ro = {.cache_size = 0, .enable_learning = 1, .learning = lp};
    registry *reg = registry_new(&ro);

    ndf_step **steps = xcalloc(nsteps, sizeof *steps);
    for (long i = 0; i < nsteps; i++)
        steps[i] = fx_step(&fx_noop_def, NULL);
    pattern *p = fx_pattern_seq("bench_fixture", &lp, 0, nsteps, steps);
    registry_register(reg, p);
    pattern_unref(p);

    char cache[] = "/tmp/ndf-bench-XXXXXX";
    loader *ld;
    double build_s;
    int have_plugin = load_plugin_pattern(reg, &lp, cache, &ld, &build_s);
    /* keep = 1: an execution's record is dropped when the next one starts,
     * so its memory serves the next (as in a long-running server); the
     * first run of each pattern pays for fresh memory and is shown apart. */
    executor_opts eo = {.threads = 1,
                        .default_timeout = 0,
                        .pattern_timeout = 0,
                        .kill_grace = 1,
                        .confidence_threshold = 0,
                        .reg = reg,
                        .keep = 1};
    executor *ex = executor_new(&eo);

    double base = direct_loop();
    double fx_cpu, fx_first, fx = run(ex, "bench_fixture", (size_t)nsteps, &fx_cpu, &fx_first);
    printf("per-step dispatch: %ld no-op in-process steps, one execution, best of 5 (ns/step;\n"
           "cpu: process CPU time; first: the first run, on fresh memory)\n",
           nsteps);
    printf("  %-44s %7.1f\n", "direct function-call loop", base);
    printf("  %-44s %7.1f  cpu %6.1f  first %6.1f  overhead %6.1f ns (%.0fx)\n",
           "in-process fixture sequence (no plugin)", fx, fx_cpu, fx_first, fx - base, fx / base);
    if (have_plugin) {
        double pl_cpu, pl_first, pl = run(ex, "bench_plugin", (size_t)nsteps, &pl_cpu, &pl_first);
        printf("  %-44s %7.1f  cpu %6.1f  first %6.1f  overhead %6.1f ns (%.0fx)\n",
               "sequential plugin + steps plugin noop", pl, pl_cpu, pl_first, pl - base, pl / base);
        printf("  (building the %ld-step sequential pattern took %.2f s)\n", nsteps, build_s);
    } else {
        printf("  (sequential/steps plugins not found in NDF_PLUGIN_PATH: plugin row skipped)\n");
    }
    printf("  goal: overhead < 50 ns/step\n");
    executor_free(ex);
    registry_free(reg);
    if (ld) {
        loader_free(ld);
        rmdir(cache);
    }
    return 0;
}

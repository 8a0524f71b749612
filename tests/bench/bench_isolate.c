/* Benchmark: isolated step execution.  The "noop" step of the real steps
 * plugin run through the services table (run_step) in process and in a
 * warm step worker (plugins.isolation = "process"), side by side, per
 * call; and the replacement of a worker after a crash: the time from the
 * start of a step that crashes its worker (mb_null, the misbehave fixture)
 * until the next isolated step of the same plugin (mb_echo) has run,
 * against a cold first call.
 * Needs the ndf binary ($top_builddir/ndf) and the fixture
 * ($top_builddir/tests/fixtures/.libs/misbehave.so).  BENCH_CALLS
 * overrides the number of calls per round (default 20000). */
#include "build-config.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "exec/isolate.h"
#include "exec/record.h"
#include "exec/services.h"
#include "plugin/loader.h"
#include "base/util.h"

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* CPU nanoseconds run by the threads of process `pid` ("self" when 0), from
 * the scheduler's own count (/proc/PID/task/TID/schedstat): nanosecond
 * resolution, where /proc/PID/stat's ticks are 10 ms. */
static double proc_cpu_ns(long pid)
{
    char path[64];
    if (pid)
        snprintf(path, sizeof path, "/proc/%ld/task", pid);
    else
        snprintf(path, sizeof path, "/proc/self/task");
    DIR *d = opendir(path);
    if (!d)
        return 0;
    double ns = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char f[128];
        snprintf(f, sizeof f, "%s/%s/schedstat", path, e->d_name);
        FILE *fp = fopen(f, "r");
        unsigned long long run = 0;
        if (fp) {
            if (fscanf(fp, "%llu", &run) != 1)
                run = 0;
            fclose(fp);
        }
        ns += (double)run;
    }
    closedir(d);
    return ns;
}

/* CPU nanoseconds of the bench process and, separately, of its children
 * (the step workers) now alive. */
static void cpu_now(double *host_ns, double *workers_ns)
{
    *host_ns = proc_cpu_ns(0);
    *workers_ns = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char f[128];
        snprintf(f, sizeof f, "/proc/self/task/%s/children", e->d_name);
        FILE *fp = fopen(f, "r");
        long pid;
        while (fp && fscanf(fp, "%ld", &pid) == 1)
            *workers_ns += proc_cpu_ns(pid);
        if (fp)
            fclose(fp);
    }
    if (d)
        closedir(d);
}

/* cpu_now() plus the children already reaped (a crashed worker): across
 * a crash, a worker alive before and reaped after counts once, in full. */
static double all_cpu_us(void)
{
    double h, w;
    cpu_now(&h, &w);
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return (h + w) / 1e3 + (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

typedef struct figures {
    double wall_s;     /* per call, best round */
    double host_us;    /* CPU per call in the bench process (all threads) */
    double workers_us; /* CPU per call in the step workers */
} figures;

/* Per call of `calls` runs of `step`: the wall time of the best of 3
 * rounds, and the CPU of that round (the machine's load adds queueing to
 * the wall time, not CPU time: the two side by side tell them apart). */
static figures per_call(const ndf_step *step, long calls)
{
    figures best = {INFINITY, 0, 0};
    for (int r = 0; r < 3; r++) {
        record *rec = record_new("bench", NULL, INFINITY);
        double h0, w0, h1, w1;
        cpu_now(&h0, &w0);
        double t0 = now_mono();
        for (long i = 0; i < calls; i++) {
            ndf_exec *n = node_new(rec->root, NDF_NODE_STEP, "n");
            if (host_services.run_step(n, step, 0) != NDF_OK) {
                fprintf(stderr, "bench_isolate: %s\n", err_msg());
                exit(1);
            }
        }
        double wall = (now_mono() - t0) / (double)calls;
        cpu_now(&h1, &w1);
        if (wall < best.wall_s) {
            best.wall_s = wall;
            best.host_us = (h1 - h0) / 1e3 / (double)calls;
            best.workers_us = (w1 - w0) / 1e3 / (double)calls;
        }
        record_unref(rec);
    }
    return best;
}

int main(void)
{
    const char *top = getenv("top_builddir");
    const char *ppath = getenv("NDF_PLUGIN_PATH");
    if (!top || !ppath) {
        fprintf(stderr, "bench_isolate: run through make bench\n");
        return 1;
    }
    long calls = 20000;
    if (getenv("BENCH_CALLS"))
        calls = atol(getenv("BENCH_CALLS"));
    char *program = xasprintf("%s/ndf", top);
    char *steps_so = xasprintf("%s/steps.so", ppath);
    char *mb_so = xasprintf("%s/tests/fixtures/.libs/misbehave.so", top);
    char cache[] = "/tmp/ndf-bench-isolate.XXXXXX";
    if (!mkdtemp(cache))
        return 1;
    loader_opts lo = {.host = &host_services, .cache_dir = cache, .allow_insecure = 1};
    log_set_level(0);
    loader *ld = loader_new(&lo);
    if (!ld || loader_load(ld, steps_so) != NDF_OK || loader_load(ld, mb_so) != NDF_OK) {
        fprintf(stderr, "bench_isolate: %s (build with make check first)\n", err_msg());
        return 1;
    }
    log_set_level(1);
    loader *prev = loader_scope_enter(ld);
    ndf_step *in_proc, *iso, *crash, *sibling;
    isolate_configure(NULL, NULL);
    if (host_services.step_new("noop", NULL, NULL, &in_proc) != NDF_OK)
        return 1;
    isolate_opts io = {.mode = ISOLATE_PROCESS, .memory_limit_mb = 0};
    isolate_configure(&io, program);
    if (host_services.step_new("noop", NULL, NULL, &iso) != NDF_OK ||
        host_services.step_new("mb_null", NULL, NULL, &crash) != NDF_OK ||
        host_services.step_new("mb_echo", NULL, NULL, &sibling) != NDF_OK)
        return 1;
    loader_scope_leave(prev);
    if (!iso->isolated || in_proc->isolated) {
        fprintf(stderr, "bench_isolate: isolation not applied as configured\n");
        return 1;
    }

    /* A cold first call: the worker's start (spawn, dlopen, init). */
    record *rec = record_new("bench", NULL, INFINITY);
    double t0 = now_mono();
    host_services.run_step(node_new(rec->root, NDF_NODE_STEP, "cold"), iso, 0);
    double cold = now_mono() - t0;

    figures in = per_call(in_proc, calls);
    figures is = per_call(iso, calls);
    double in_cpu = in.host_us + in.workers_us, is_cpu = is.host_us + is.workers_us;
    printf("no-op step, %ld calls, best of 3 rounds (wall; CPU of that round: host + workers):\n",
           calls);
    printf("  in process            %10.3f us/call wall  %10.3f us/call CPU (%.3f + %.3f)\n",
           in.wall_s * 1e6, in_cpu, in.host_us, in.workers_us);
    printf("  isolated, warm worker %10.3f us/call wall  %10.3f us/call CPU (%.3f + %.3f)\n",
           is.wall_s * 1e6, is_cpu, is.host_us, is.workers_us);
    printf("  added by isolation    %10.3f us/call wall  %10.3f us/call CPU (goal <= 20)\n",
           (is.wall_s - in.wall_s) * 1e6, is_cpu - in_cpu);

    enum { CRASHES = 30 };
    double crash_t[CRASHES], next_t[CRASHES], total[CRASHES], cpu_t[CRASHES];
    log_set_level(0);
    int storms = 0;
    /* the fixture's first worker, and its spare */
    host_services.run_step(node_new(rec->root, NDF_NODE_STEP, "warm"), sibling, 0);
    for (int i = 0; i < CRASHES; i++) {
        /* A crash after a quiet moment: the worker it crashes and the spare
         * are both warm (back-to-back crashes pay a process start each,
         * which the cold call below shows).  At rest there are three idle
         * workers: the no-op's plugin's worker and spare, and one of the
         * fixture's (the spare started when the last crash took its
         * worker); the crash takes that one and starts the next spare. */
        isolate_stats st;
        double until = now_mono() + 5;
        do {
            isolate_get_stats(&st);
            if (st.idle < 3)
                usleep(1000);
        } while (st.idle < 3 && now_mono() < until);
        storms += st.idle < 3;
        double c0 = all_cpu_us();
        t0 = now_mono();
        host_services.run_step(node_new(rec->root, NDF_NODE_STEP, "crash"), crash, 0);
        double t1 = now_mono();
        /* the next step of the plugin whose worker crashed */
        if (host_services.run_step(node_new(rec->root, NDF_NODE_STEP, "next"), sibling, 0) !=
            NDF_OK) {
            fprintf(stderr, "bench_isolate: after a crash: %s\n", err_msg());
            return 1;
        }
        double t2 = now_mono();
        cpu_t[i] = all_cpu_us() - c0;
        crash_t[i] = t1 - t0;
        next_t[i] = t2 - t1;
        total[i] = t2 - t0;
    }
    log_set_level(1);
    qsort(crash_t, CRASHES, sizeof *crash_t, cmp_d);
    qsort(next_t, CRASHES, sizeof *next_t, cmp_d);
    qsort(total, CRASHES, sizeof *total, cmp_d);
    qsort(cpu_t, CRASHES, sizeof *cpu_t, cmp_d);
    printf("worker replacement after a crash (%d crashes, median / max):\n", CRASHES);
    printf("  the crashing step (detect, reap, start the next worker) %8.3f / %8.3f ms\n",
           crash_t[CRASHES / 2] * 1e3, crash_t[CRASHES - 1] * 1e3);
    printf("  the next isolated step                                  %8.3f / %8.3f ms\n",
           next_t[CRASHES / 2] * 1e3, next_t[CRASHES - 1] * 1e3);
    printf("  crash to the next step done                             %8.3f / %8.3f ms (goal <= 10)\n",
           total[CRASHES / 2] * 1e3, total[CRASHES - 1] * 1e3);
    printf("  CPU from the crash to the next step done (host + workers,\n"
           "  the spare's start included)                             %8.3f / %8.3f ms\n",
           cpu_t[CRASHES / 2] / 1e3, cpu_t[CRASHES - 1] / 1e3);
    printf("  for comparison, a cold first call (worker start)        %8.3f ms\n", cold * 1e3);
    if (storms)
        printf("  (%d of the crashes came before the spare was ready)\n", storms);
    double load[3];
    if (getloadavg(load, 3) == 3)
        printf("load average %.1f %.1f %.1f\n", load[0], load[1], load[2]);
    isolate_stats st;
    isolate_get_stats(&st);
    printf("workers started %lu, replaced %lu, calls %lu\n", st.started, st.replaced, st.calls);
    record_unref(rec);
    host_services.step_free(in_proc);
    host_services.step_free(iso);
    host_services.step_free(crash);
    host_services.step_free(sibling);
    isolate_shutdown();
    loader_free(ld);
    rmdir(cache);
    free(program);
    free(steps_so);
    free(mb_so);
    return 0;
}

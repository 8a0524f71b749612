/* Isolated step execution: the steps of a plugin that is not trusted run in
 * a worker process (the ndf program itself in a hidden mode) that has the
 * plugin loaded, talking to the host over a socketpair.  A worker that
 * crashes, exits or overruns is killed and replaced; the step fails with a
 * message naming the plugin, the step, the signal or status and the pid,
 * and the host goes on.  See ndf-plugin(7), ISOLATION. */
#ifndef NDF_ISOLATE_H
#define NDF_ISOLATE_H

#include <stddef.h>
#include <stdint.h>
#include <ndf/sdk.h>
#include "plugin/loader.h"

#define ISOLATE_WORKER_ARG "__step-worker"

typedef enum isolate_mode {
    ISOLATE_AUTO = 0,    /* plugins installed with ndf in process, the rest isolated */
    ISOLATE_NONE = 1,    /* every step in process */
    ISOLATE_PROCESS = 2, /* every step isolated */
} isolate_mode;

typedef struct isolate_opts {
    isolate_mode mode;
    char *const *isolate; /* plugin or step names always isolated */
    size_t nisolate;
    char *const *trust; /* plugin or step names never isolated (wins) */
    size_t ntrust;
    double memory_limit_mb; /* RLIMIT_AS of a worker; 0: none */
    double cpu_limit_s;     /* CPU seconds one call may use; 0: none */
    int max_idle;           /* warm workers kept per plugin build; <= 0: 4 */
} isolate_opts;

/* Sets the policy (copied) and the program to start as a worker (the ndf
 * binary, e.g. "/proc/self/exe"; NULL: nothing is ever isolated, as for
 * test programs that are not ndf).  Call before patterns are built;
 * calling again replaces the policy for steps bound afterwards (a
 * reload).  Not thread-safe against step binding. */
void isolate_configure(const isolate_opts *opts, const char *program);

/* 1 when the steps `p` (a step a plugin provides) should run in a worker. */
int isolate_wants(const provided *p);

/* Where one binding of `p` runs when the binding itself says (`mode`
 * ISOLATE_NONE or ISOLATE_PROCESS; ISOLATE_AUTO: the plugin's policy,
 * isolate_wants): 0 in process, 1 in a worker, or -1 with err_msg() set
 * when a worker was asked for and none can run it (no step worker
 * program, or a step that is not a plugin's). */
int isolate_decide(const provided *p, isolate_mode mode);

/* The mode's name ("auto", "none", "process"), and the parser of it
 * (0, or -1 for an unknown name). */
const char *isolate_mode_name(isolate_mode m);
int isolate_mode_parse(const char *name, isolate_mode *out);

/* One call: the bound step (its type, validated parameters and a serial
 * unique in this process, by which the worker keeps its own binding), and
 * the services table whose node_log, expand, node_set_result and
 * node_set_metric put what the worker sends into the record. */
typedef struct isolate_call {
    const provided *type;
    const ndf_value *params;
    uint64_t serial;
    int undo; /* 0: run, 1: undo */
    const ndf_host *table;
} isolate_call;

/* Runs or undoes the call's step in a worker, for record node `node`,
 * which the caller has started: output, log lines, result and metrics come
 * back into the node; cancellation and the node's deadline are passed on,
 * and a worker that has not answered kill_grace seconds after them is
 * killed.  Returns the step's status, or NDF_ERR_EXECUTION /
 * NDF_ERR_TIMEOUT / NDF_ERR_CANCELLED with err_msg() set when the worker
 * failed it.  Any thread. */
int isolate_run(ndf_exec *node, const isolate_call *call);

/* Worker counters for `ndf ctl ping` and the benchmarks. */
typedef struct isolate_stats {
    unsigned long started;  /* workers started */
    unsigned long replaced; /* killed after a crash, exit, overrun or leak */
    unsigned long calls;    /* run/undo calls served */
    size_t idle;            /* warm workers now */
} isolate_stats;
void isolate_get_stats(isolate_stats *out);

/* Kills every idle worker and waits for it (ndf's exit; tests). */
void isolate_shutdown(void);

/* The worker's side: `ndf __step-worker CACHE_DIR NAME MEMORY_MB LOG_LEVEL`
 * with the socket on SCANNER_FD and the plugin file open on SCANNER_FD + 1;
 * `table` is the services table (the worker hands steps a copy whose
 * node_log and expand cross to the host).  Returns the process's exit
 * status (2 when not started by ndf). */
int isolate_worker_main(int argc, char **argv, const ndf_host *table);

#endif

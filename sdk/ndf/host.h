/* ndf SDK: the host services table.
 *
 * The only way a plugin reaches the host.  A plugin is handed a pointer to
 * this table in init() and in every callback; it never links against the
 * host.  The table starts with its size: members are only ever appended, and
 * a plugin that wants a member added after the minor it records
 * (NDF_SDK_MIN_MINOR, see plugin.h) checks it with NDF_HOST_HAS() first.
 *
 * Ownership, the one rule: memory the host hands to a plugin (the `char **out`
 * of expand(), ndf_spawn_result.output, node_result(), ...) belongs to the
 * plugin and is freed with host->free(), never with the plugin's own free()
 * (the two may be different allocators).  Strings returned as `const char *`
 * are lent: they stay valid as long as the object they were read from,
 * unless a member says otherwise.  Memory a plugin hands to the host (the
 * 1.1 state_save blob) is the one exception, and plugin.h says so there.
 *
 * Calls that return an int return NDF_OK or a negative ndf_status; the
 * message that goes with a failure is set by the host (or by the plugin
 * through fail()/fail_at()) and read back with last_error().
 *
 * Threads.  Every member is marked with where it may be called from:
 *   [any]   any thread, at any time, concurrently with anything;
 *   [node]  only from the thread that runs the node it is handed (the
 *           callback that got the node, or work it spawned for a child node
 *           it made), never for a node of another running work item;
 *   [load]  in create()/destroy() of a pattern type or step (load time);
 *   [init]  only inside init().
 * No member keeps a plugin callback or pointer across calls other than what
 * the member documents (group work, exec_set_data), and every 1.2 member takes
 * and returns plain data (strings, numbers, opaque handles), so the table can
 * be served to a step running in another process.
 *
 * Deadlines.  A timeout of 0 (or below) always means "no deadline of its own":
 * only the enclosing deadlines (the pattern's, the execution's) apply.  It
 * never means "expired at once"; to stop work now, cancel it (node_cancel,
 * group_cancel). */
#ifndef NDF_HOST_H
#define NDF_HOST_H

#include <stddef.h>
#include <stdint.h>
#include <ndf/context.h>
#include <ndf/exec.h>
#include <ndf/params.h>
#include <ndf/pattern.h>
#include <ndf/status.h>
#include <ndf/step.h>
#include <ndf/version.h>

#if defined(__GNUC__)
#define NDF_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define NDF_PRINTF(fmt, args)
#endif

typedef struct ndf_registrar ndf_registrar;

typedef enum ndf_log_level {
    NDF_LOG_ERROR = 0,
    NDF_LOG_WARN = 1,
    NDF_LOG_INFO = 2,
    NDF_LOG_DEBUG = 3
} ndf_log_level;

/* Members added after ABI 1.0 are marked NDF_SINCE(minor).  A plugin that
 * sets NDF_SDK_MIN_MINOR below that minor (so that older hosts load it) gets
 * a compiler warning where it reads such a member directly: read it with
 * NDF_HOST_GET() after an NDF_HOST_HAS() check instead. */
#define NDF_SINCE_WARN_(v) \
    __attribute__((deprecated("added in SDK " v ", newer than NDF_SDK_MIN_MINOR: " \
                              "check NDF_HOST_HAS() and read it with NDF_HOST_GET()")))
#if defined(__GNUC__) && defined(NDF_SDK_MIN_MINOR) && NDF_SDK_MIN_MINOR < 1
#define NDF_SINCE_1_1_ NDF_SINCE_WARN_("1.1")
#else
#define NDF_SINCE_1_1_
#endif
#if defined(__GNUC__) && defined(NDF_SDK_MIN_MINOR) && NDF_SDK_MIN_MINOR < 2
#define NDF_SINCE_1_2_ NDF_SINCE_WARN_("1.2")
#else
#define NDF_SINCE_1_2_
#endif
#if defined(__GNUC__) && defined(NDF_SDK_MIN_MINOR) && NDF_SDK_MIN_MINOR < 3
#define NDF_SINCE_1_3_ NDF_SINCE_WARN_("1.3")
#else
#define NDF_SINCE_1_3_
#endif
#define NDF_SINCE(minor) NDF_SINCE_1_##minor##_

/* Bits of ndf_spawn.flags (ABI 1.2). */
#define NDF_SPAWN_CAPTURE_STDOUT 0x1u /* stdout goes to the caller (result->output),
                                         not into the record */

/* How to start a process (ndf_host.spawn).  Starts with its size, so fields
 * can be added; zero-initialize it and set what you need. */
typedef struct ndf_spawn {
    size_t size;                /* sizeof(ndf_spawn) */
    const char *const *argv;    /* NULL-terminated; argv[0] is looked up in PATH */
    const char *const *env;     /* extra NAME=VALUE entries, NULL-terminated, or NULL */
    const char *cwd;            /* or NULL for the host's */
    const char *input;          /* bytes fed to stdin, or NULL for /dev/null */
    size_t input_len;
    double grace_s;             /* SIGTERM to SIGKILL; <= 0 for the host default */
    size_t output_limit;        /* bytes of stdout and of stderr kept; 0 for the default.
                                   With NDF_SPAWN_CAPTURE_STDOUT: the most stdout
                                   accepted; a process writing more is stopped
                                   (SIGTERM, grace, SIGKILL) and the call fails */
    /* ---- ABI 1.2 ---- */
    unsigned flags;             /* NDF_SPAWN_* */
} ndf_spawn;

/* How a spawned process ended.  Filled up to its `size`. */
typedef struct ndf_spawn_result {
    size_t size;                /* sizeof(ndf_spawn_result), set by the caller */
    int exit_status;            /* when it exited, else -1 */
    int term_signal;            /* when a signal ended it, else 0 */
    double wall_s;
    /* ---- ABI 1.2: NDF_SPAWN_CAPTURE_STDOUT ---- */
    char *output;               /* stdout, NUL-terminated; free with host->free().
                                   Set whenever capture was asked and the process
                                   started, whatever the status; else NULL */
    size_t output_len;          /* bytes in output (which may itself hold NULs) */
    int output_overflow;        /* 1: it wrote more than output_limit and was stopped */
} ndf_spawn_result;

/* A unit of work bound once with its retry policy (ABI 1.2, task_new()).  Opaque. */
typedef struct ndf_task ndf_task;

/* What task_new() binds: a step (type and parameters) or a pattern by name,
 * and how to run it.  Plain data; starts with its size.  Zero-initialize it
 * and set what you need, or fill it from a definition with
 * ndf_task_spec_read() below. */
typedef struct ndf_task_spec {
    size_t size;                /* sizeof(ndf_task_spec) */
    const char *step;           /* step type, or NULL to run `pattern` */
    const ndf_value *params;    /* the step's parameters (GROUP), or NULL */
    const char *pattern;        /* pattern name, when `step` is NULL */
    const ndf_value *where;     /* places errors (file:line), or NULL */
    double timeout_s;           /* per attempt; <= 0: only the enclosing deadlines */
    int retries;                /* attempts after the first failed one */
    double backoff_s;           /* delay before the first retry; < 0: 0.1 s */
    double backoff_max_s;       /* cap of the doubling delay; <= 0: 5 s */
    /* ABI 1.3.  Read only when the struct is this long (an older
     * plugin's is not): the binding's "isolation" value ("none" or
     * "process"), which overrides the plugin's policy for this step alone;
     * NULL: the plugin's.  A host older than 1.3 ignores it.  See
     * ndf-plugin(7), ISOLATION.  Written by ndf_task_spec_read(), so it is
     * not marked NDF_SINCE: a plugin never reads it. */
    const ndf_value *isolation;
} ndf_task_spec;

typedef struct ndf_host {
    size_t size;                /* sizeof(ndf_host) in the running host */
    unsigned abi_major, abi_minor;
    const char *host_version;   /* package version of the running host */

    /* --- diagnostics [any] --- */
    void (*log)(int level, const char *fmt, ...) NDF_PRINTF(2, 3);
    /* Sets the calling thread's failure message and returns `status`,
     * so `return host->fail(NDF_ERR_INVALID, "...")` reads naturally.  The
     * arguments may include host->last_error(): the new message is formatted
     * before it replaces the old, so `host->fail(rc, "fetching: %s",
     * host->last_error())` passes a failed host call's reason on. */
    int (*fail)(int status, const char *fmt, ...) NDF_PRINTF(2, 3);
    /* Like fail(), prefixing the message with the file:line of `where`. */
    int (*fail_at)(const ndf_value *where, int status, const char *fmt, ...) NDF_PRINTF(3, 4);

    /* --- registration [init] --- */
    /* The host copies nothing: `def` and all it points to must stay valid
     * until fini() returns (make them static const). */
    int (*register_pattern_type)(ndf_registrar *reg, const ndf_pattern_type_def *def);
    int (*register_step)(ndf_registrar *reg, const ndf_step_def *def);

    /* --- values (parameters and attributes) [any]: values are read-only --- */
    ndf_value_type (*value_type)(const ndf_value *v);      /* NONE for NULL */
    const char *(*value_string)(const ndf_value *v);       /* NULL unless STRING */
    int64_t (*value_int)(const ndf_value *v);              /* INT; NUMBER truncated; else 0 */
    double (*value_number)(const ndf_value *v);            /* INT or NUMBER; else 0 */
    int (*value_bool)(const ndf_value *v);                 /* BOOL; else 0 */
    size_t (*value_count)(const ndf_value *v);             /* LIST/GROUP size; else 0 */
    const ndf_value *(*value_at)(const ndf_value *v, size_t i); /* NULL out of range */
    const char *(*value_name)(const ndf_value *v);         /* GROUP member's name, or NULL */
    const ndf_value *(*value_get)(const ndf_value *group, const char *name); /* or NULL */
    const char *(*value_file)(const ndf_value *v);         /* defining file, or NULL */
    int (*value_line)(const ndf_value *v);                 /* defining line, or 0 */

    /* --- the context of an execution [any]: contexts are read-only --- */
    const ndf_context *(*exec_context)(const ndf_exec *node);
    const char *(*ctx_domain)(const ndf_context *ctx);
    const char *(*ctx_agent_type)(const ndf_context *ctx);
    int (*ctx_priority)(const ndf_context *ctx);
    const ndf_value *(*ctx_attributes)(const ndf_context *ctx); /* a GROUP */

    /* --- binding steps and patterns [load] --- */
    /* Binds step type `type` to `params` (a GROUP, or NULL for none), after
     * checking them against the step's schema.  `where` places errors (the
     * definition of the step).  The step is freed with step_free(). */
    int (*step_new)(const char *type, const ndf_value *params, const ndf_value *where,
                    ndf_step **out);
    void (*step_free)(ndf_step *step);
    const char *(*step_type)(const ndf_step *step);        /* [any] */
    /* Records that this definition runs pattern `name`; the host checks that
     * it exists once all definitions are loaded, and reports `where`. */
    int (*require_pattern)(const ndf_value *where, const char *name);

    /* --- the live record --- */
    /* [node: parent] A child node of `parent`, state PENDING.  NULL when out
     * of memory. */
    ndf_exec *(*node_new)(ndf_exec *parent, ndf_node_kind kind, const char *name);
    /* [node] */
    void (*node_set_state)(ndf_exec *node, ndf_state state, const char *fmt, ...)
        NDF_PRINTF(3, 4);
    ndf_state (*node_state)(const ndf_exec *node);         /* [any] */
    const char *(*node_name)(const ndf_exec *node);        /* [any] */
    /* [any] Appends a line to the node's output in the record, and logs it. */
    void (*node_log)(ndf_exec *node, int level, const char *fmt, ...) NDF_PRINTF(3, 4);
    const char *(*exec_id)(const ndf_exec *node);          /* [any] the execution's id */
    /* [node] Attaches plugin data to a PATTERN node (for rollback after the
     * run); free_fn runs when the record is discarded. */
    int (*exec_set_data)(ndf_exec *node, void *data, void (*free_fn)(void *));
    void *(*exec_data)(const ndf_exec *node);              /* [node] */

    /* --- running work [node] --- */
    /* Runs `step` in `node`: sets RUNNING, then COMPLETED / FAILED /
     * TIMED_OUT / CANCELLED, and times it.  timeout_s <= 0: no deadline of
     * its own, only the enclosing ones apply. */
    int (*run_step)(ndf_exec *node, const ndf_step *step, double timeout_s);
    /* Runs the step's undo in `node`; ROLLED_BACK on success. */
    int (*undo_step)(ndf_exec *node, const ndf_step *step);
    /* Runs pattern `name` as a sub-execution recorded under `node`
     * (timeout_s <= 0: only the enclosing deadlines). */
    int (*run_pattern)(ndf_exec *node, const char *name, double timeout_s);
    /* Rolls back the sub-execution that ran in `node`. */
    int (*rollback_pattern)(ndf_exec *node, const char *level, const char *target);

    /* Concurrent sub-work of `node`, at most `max_concurrent` at a time (0:
     * no limit beyond the pool).  Work may spawn more work into its own
     * group.  group_wait() returns when all of it has ended; the waiting
     * thread runs queued work itself, so waiting never idles a worker.  It
     * returns NDF_OK, or the status of the node's deadline/cancellation (the
     * work still queued is then dropped, running work sees cancelled()).
     * [node] for group_new; group_spawn from the owner or the group's own
     * work; group_wait and group_free from the owner only (one waiter). */
    ndf_group *(*group_new)(ndf_exec *node, unsigned max_concurrent);
    int (*group_spawn)(ndf_group *group, ndf_work_fn fn, void *arg);
    int (*group_wait)(ndf_group *group);
    void (*group_free)(ndf_group *group);

    /* --- deadlines and cancellation --- */
    /* [any] 0 while the node may go on; else the status to return
     * (NDF_ERR_TIMEOUT or NDF_ERR_CANCELLED). */
    int (*cancelled)(const ndf_exec *node);
    double (*remaining)(const ndf_exec *node);   /* [any] seconds; INFINITY if no deadline */
    int (*sleep)(ndf_exec *node, double seconds); /* [node] cut short by cancellation */

    /* --- resources --- */
    /* [node] Waits until cpu and memory use (fractions 0..1) are below the
     * given thresholds; NDF_ERR_RESOURCE if they are not by the deadline. */
    int (*resources_wait)(ndf_exec *node, double cpu, double memory);
    int (*resources_usage)(double *cpu, double *memory, double *disk_io); /* [any] */

    /* --- processes [node] --- */
    /* Starts a process in its own process group, with the context exported
     * as NDF_* variables, captures its output into `node`'s record (or, with
     * NDF_SPAWN_CAPTURE_STDOUT, stdout into result->output), and waits for
     * it; at the node's deadline or cancellation it gets SIGTERM, then
     * SIGKILL after the grace period.  NDF_OK when it exits 0;
     * NDF_ERR_EXECUTION when it exits otherwise, is killed or overflows a
     * captured output; NDF_ERR_TIMEOUT; NDF_ERR_CANCELLED.  `result` may be
     * NULL (not with capture). */
    int (*spawn)(ndf_exec *node, const ndf_spawn *opts, ndf_spawn_result *result);

    /* --- text --- */
    /* [any] Expands ${domain}, ${agent_type}, ${priority}, ${execution_id},
     * ${attr.KEY} from the node's context, and (1.2) ${steps.NAME.result},
     * the result an earlier step named NAME of the same execution set with
     * node_set_result(); "$$" is a literal "$".  An unknown variable, or a
     * step without a result, is NDF_ERR_VALIDATION.  Free *out with
     * host->free(). */
    int (*expand)(const ndf_exec *node, const char *tmpl, char **out);
    void (*free)(void *p);                                  /* [any] */

    /* --- reading back what happened --- */
    /* [any] This thread's last failure message (set by fail(), fail_at() or
     * a failing host call); "" when none.  Valid until the next host call. */
    const char *(*last_error)(void);
    /* [any] Copies the node's current message into buf (always
     * NUL-terminated when size > 0) and returns its full length, like
     * snprintf. */
    size_t (*node_message)(const ndf_exec *node, char *buf, size_t size);
    /* [node] (1.1) Gives `node` (and the work under it) a deadline `seconds`
     * from now, unless an enclosing deadline is earlier.  seconds <= 0 does
     * nothing (no deadline of its own): use node_cancel() to stop work. */
    void (*node_set_timeout)(ndf_exec *node, double seconds) NDF_SINCE(1);

    /* ---- ABI 1.2 ---- */

    /* [any] Cancels `node` and everything under it: work that has not
     * started ends CANCELLED without running, running steps see
     * cancelled() == NDF_ERR_CANCELLED and end CANCELLED, their processes
     * get SIGTERM, the grace period, then SIGKILL.  Nodes already in a final
     * state keep it.  The rest of the execution goes on.  Idempotent. */
    void (*node_cancel)(ndf_exec *node) NDF_SINCE(2);
    /* [any] Cancels the group's work: what is queued is dropped, and every
     * child of the group's node that has not ended is cancelled as by
     * node_cancel().  group_wait()/group_wait_any() still return once the
     * running work has noticed (they return NDF_OK: the plugin chose this).
     * New group_spawn() calls fail with NDF_ERR_CANCELLED.  Returns the
     * number of child nodes it cancelled. */
    int (*group_cancel)(ndf_group *group) NDF_SINCE(2);
    /* [node] Like group_new(), for a group that group_wait_any() can wait
     * on: the host remembers each piece of work's status until it is
     * reported. */
    ndf_group *(*group_new_any)(ndf_exec *node, unsigned max_concurrent) NDF_SINCE(2);
    /* [owner] Waits until a piece of work of the group (made with
     * group_new_any) has ended that was not yet reported, running queued
     * work meanwhile, and reports it: *arg is the `arg` it was spawned with
     * and *status what its function returned (either may be NULL).  Pieces
     * are reported in the order they ended.  Returns NDF_OK;
     * NDF_ERR_NOT_FOUND when no work is left to report; NDF_ERR_INVALID for
     * a group not made with group_new_any; or the node's deadline or
     * cancellation status. */
    int (*group_wait_any)(ndf_group *group, void **arg, int *status) NDF_SINCE(2);

    /* Binding a task to a step (or a pattern) with retries, exponential
     * backoff and a timeout per attempt, so pattern types need not write
     * them.  [load] task_new/task_free (the step is bound as by step_new()),
     * [node] task_run/task_undo.  task_run() runs the step in `node` with
     * run_step() (or the pattern with run_pattern()), retrying a failed or
     * timed-out attempt after backoff_s, doubled each time up to
     * backoff_max_s, while the enclosing deadline leaves room; it never
     * retries a cancellation.  Retries are logged in the node.  Returns the
     * status of the last attempt. */
    int (*task_new)(const ndf_task_spec *spec, ndf_task **out) NDF_SINCE(2);
    int (*task_run)(ndf_exec *node, const ndf_task *task) NDF_SINCE(2);
    int (*task_undo)(ndf_exec *node, const ndf_task *task) NDF_SINCE(2);
    void (*task_free)(ndf_task *task) NDF_SINCE(2);
    /* [any] The step a task runs, or NULL for a pattern task. */
    const ndf_step *(*task_step)(const ndf_task *task) NDF_SINCE(2);

    /* [node] Sets the node's result (copied; replaces an earlier one): the
     * text a step produced, kept with the node in the record and the store,
     * and readable by later steps of the execution as ${steps.NAME.result}
     * (NAME: the node's name).  NULL clears it. */
    int (*node_set_result)(ndf_exec *node, const char *text) NDF_SINCE(2);
    /* [node] Records a figure about the node's work (tokens, cost, bytes):
     * `name` [A-Za-z0-9_.]+ (at most 63 bytes), a finite value.  Setting a
     * name again replaces its value.  At most 32 per node. */
    int (*node_set_metric)(ndf_exec *node, const char *name, double value) NDF_SINCE(2);
    /* [any] The node's result, copied into *out (free with host->free());
     * NDF_ERR_NOT_FOUND (and *out NULL) when it has none. */
    int (*node_result)(const ndf_exec *node, char **out) NDF_SINCE(2);
} ndf_host;

/* True when the running host's table has `member` (a plugin that records a
 * lower minor than the one that added `member` must check before calling). */
#define NDF_HOST_HAS_(host, member) \
    ((host)->size >= offsetof(ndf_host, member) + sizeof(((ndf_host *)0)->member))
#if defined(__GNUC__)
#define NDF_HOST_HAS(host, member)                                      \
    __extension__({                                                     \
        _Pragma("GCC diagnostic push")                                  \
        _Pragma("GCC diagnostic ignored \"-Wdeprecated-declarations\"") \
        int ndf_has_ = NDF_HOST_HAS_(host, member);                     \
        _Pragma("GCC diagnostic pop") ndf_has_;                         \
    })
#else
#define NDF_HOST_HAS(host, member) NDF_HOST_HAS_(host, member)
#endif

/* Reads `member` of the table without the NDF_SINCE warning, or NULL when the
 * running host has no such member: `if ((f = NDF_HOST_GET(host, node_cancel)))`. */
#if defined(__GNUC__)
#define NDF_HOST_GET(host, member)                                                  \
    __extension__({                                                                 \
        _Pragma("GCC diagnostic push")                                              \
        _Pragma("GCC diagnostic ignored \"-Wdeprecated-declarations\"")             \
        __typeof__((host)->member) ndf_m_ = NDF_HOST_HAS_(host, member) ? (host)->member : 0; \
        _Pragma("GCC diagnostic pop") ndf_m_;                                       \
    })
#else
#define NDF_HOST_GET(host, member) (NDF_HOST_HAS(host, member) ? (host)->member : 0)
#endif

/* Fills `spec` from a task definition group with the conventional members
 * `step`, `params`, `timeout`, `retries`, `backoff` and `backoff_max` (use
 * NDF_TASK_PARAMS in the schema).  Header-only, so it costs no table member. */
static inline void ndf_task_spec_read(const struct ndf_host *host, const ndf_value *entry,
                                      ndf_task_spec *spec)
{
    const ndf_value *step = host->value_get(entry, "step");
    spec->size = sizeof *spec;
    spec->step = host->value_string(step);
    spec->params = host->value_get(entry, "params");
    spec->pattern = 0;
    spec->where = step ? step : entry;
    spec->timeout_s = host->value_number(host->value_get(entry, "timeout"));
    spec->retries = (int)host->value_int(host->value_get(entry, "retries"));
    spec->backoff_s = host->value_get(entry, "backoff")
                          ? host->value_number(host->value_get(entry, "backoff"))
                          : -1;
    spec->backoff_max_s = host->value_number(host->value_get(entry, "backoff_max"));
    spec->isolation = host->value_get(entry, "isolation");
}

/* The schema entries ndf_task_spec_read() reads besides `step`/`params`,
 * to put in a task's ndf_param_spec array. */
#define NDF_TASK_PARAMS                                                                    \
    NDF_PARAM_RANGED("timeout", NDF_VALUE_NUMBER, 0, NULL, 0, 1e9,                         \
                     "seconds one attempt may take (0 or absent: only enclosing deadlines)"), \
    NDF_PARAM_RANGED("retries", NDF_VALUE_INT, 0, "0", 0, 100, "attempts after the first"), \
    NDF_PARAM_RANGED("backoff", NDF_VALUE_NUMBER, 0, "0.1", 0, 3600,                       \
                     "seconds before the first retry; doubled for each further one"),     \
    NDF_PARAM_RANGED("backoff_max", NDF_VALUE_NUMBER, 0, "5", 0, 3600,                     \
                     "cap on the delay between retries, in seconds"),                     \
    NDF_PARAM("isolation", NDF_VALUE_STRING, 0, NULL,                                      \
              "\"none\" or \"process\": where this step runs, whatever its plugin's policy")

#endif

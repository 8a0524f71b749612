/* ndf SDK: the host services table.
 *
 * The only way a plugin reaches the host.  A plugin is handed a pointer to
 * this table in init() and in every callback; it never links against the
 * host.  The table starts with its size: members are only ever appended, and
 * a plugin that wants a member added after the minor it was built for checks
 * it with NDF_HOST_HAS() first.
 *
 * Strings returned by the host stay valid as long as the object they were
 * read from, unless a member says otherwise.  Calls that return an int
 * return NDF_OK or a negative ndf_status; the message that goes with a
 * failure is set by the host (or by the plugin through fail()/fail_at()). */
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
    size_t output_limit;        /* bytes of stdout and of stderr kept; 0 for the default */
} ndf_spawn;

/* How a spawned process ended.  Filled up to its `size`. */
typedef struct ndf_spawn_result {
    size_t size;                /* sizeof(ndf_spawn_result), set by the caller */
    int exit_status;            /* when it exited, else -1 */
    int term_signal;            /* when a signal ended it, else 0 */
    double wall_s;
} ndf_spawn_result;

typedef struct ndf_host {
    size_t size;                /* sizeof(ndf_host) in the running host */
    unsigned abi_major, abi_minor;
    const char *host_version;   /* package version of the running host */

    /* --- diagnostics --- */
    void (*log)(int level, const char *fmt, ...) NDF_PRINTF(2, 3);
    /* Sets the message of the failure being returned and returns `status`,
     * so `return host->fail(NDF_ERR_INVALID, "...")` reads naturally.  The
     * arguments may include host->last_error(): the new message is formatted
     * before it replaces the old, so `host->fail(rc, "fetching: %s",
     * host->last_error())` passes a failed host call's reason on. */
    int (*fail)(int status, const char *fmt, ...) NDF_PRINTF(2, 3);
    /* Like fail(), prefixing the message with the file:line of `where`. */
    int (*fail_at)(const ndf_value *where, int status, const char *fmt, ...) NDF_PRINTF(3, 4);

    /* --- registration (only during init) --- */
    /* The host copies nothing: `def` and all it points to must stay valid
     * until fini() returns (make them static const). */
    int (*register_pattern_type)(ndf_registrar *reg, const ndf_pattern_type_def *def);
    int (*register_step)(ndf_registrar *reg, const ndf_step_def *def);

    /* --- values (parameters and attributes) --- */
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

    /* --- the context of an execution --- */
    const ndf_context *(*exec_context)(const ndf_exec *node);
    const char *(*ctx_domain)(const ndf_context *ctx);
    const char *(*ctx_agent_type)(const ndf_context *ctx);
    int (*ctx_priority)(const ndf_context *ctx);
    const ndf_value *(*ctx_attributes)(const ndf_context *ctx); /* a GROUP */

    /* --- binding steps and patterns at load time --- */
    /* Binds step type `type` to `params` (a GROUP, or NULL for none), after
     * checking them against the step's schema.  `where` places errors (the
     * definition of the step).  The step is freed with step_free(). */
    int (*step_new)(const char *type, const ndf_value *params, const ndf_value *where,
                    ndf_step **out);
    void (*step_free)(ndf_step *step);
    const char *(*step_type)(const ndf_step *step);
    /* Records that this definition runs pattern `name`; the host checks that
     * it exists once all definitions are loaded, and reports `where`. */
    int (*require_pattern)(const ndf_value *where, const char *name);

    /* --- the live record --- */
    /* A child node of `parent`, state PENDING.  NULL when out of memory. */
    ndf_exec *(*node_new)(ndf_exec *parent, ndf_node_kind kind, const char *name);
    void (*node_set_state)(ndf_exec *node, ndf_state state, const char *fmt, ...)
        NDF_PRINTF(3, 4);
    ndf_state (*node_state)(const ndf_exec *node);
    const char *(*node_name)(const ndf_exec *node);
    /* Appends a line to the node's output in the record, and logs it. */
    void (*node_log)(ndf_exec *node, int level, const char *fmt, ...) NDF_PRINTF(3, 4);
    const char *(*exec_id)(const ndf_exec *node);          /* the execution's id */
    /* Attaches plugin data to a PATTERN node (for rollback after the run);
     * free_fn runs when the record is discarded. */
    int (*exec_set_data)(ndf_exec *node, void *data, void (*free_fn)(void *));
    void *(*exec_data)(const ndf_exec *node);

    /* --- running work --- */
    /* Runs `step` in `node`: sets RUNNING, then COMPLETED / FAILED /
     * TIMED_OUT / CANCELLED, and times it.  timeout_s <= 0 means only the
     * enclosing deadlines apply. */
    int (*run_step)(ndf_exec *node, const ndf_step *step, double timeout_s);
    /* Runs the step's undo in `node`; ROLLED_BACK on success. */
    int (*undo_step)(ndf_exec *node, const ndf_step *step);
    /* Runs pattern `name` as a sub-execution recorded under `node`. */
    int (*run_pattern)(ndf_exec *node, const char *name, double timeout_s);
    /* Rolls back the sub-execution that ran in `node`. */
    int (*rollback_pattern)(ndf_exec *node, const char *level, const char *target);

    /* Concurrent sub-work of `node`, at most `max_concurrent` at a time (0:
     * no limit beyond the pool).  Work may spawn more work into its own
     * group.  group_wait() returns when all of it has ended; the waiting
     * thread runs queued work itself, so waiting never idles a worker.  It
     * returns NDF_OK, or the status of the node's deadline/cancellation (the
     * work still queued is then dropped, running work sees cancelled()). */
    ndf_group *(*group_new)(ndf_exec *node, unsigned max_concurrent);
    int (*group_spawn)(ndf_group *group, ndf_work_fn fn, void *arg);
    int (*group_wait)(ndf_group *group);
    void (*group_free)(ndf_group *group);

    /* --- deadlines and cancellation --- */
    /* 0 while the node may go on; else the status to return
     * (NDF_ERR_TIMEOUT or NDF_ERR_CANCELLED). */
    int (*cancelled)(const ndf_exec *node);
    double (*remaining)(const ndf_exec *node);   /* seconds; INFINITY if no deadline */
    int (*sleep)(ndf_exec *node, double seconds); /* cut short by cancellation */

    /* --- resources --- */
    /* Waits until cpu and memory use (fractions 0..1) are below the given
     * thresholds; NDF_ERR_RESOURCE if they are not by the deadline. */
    int (*resources_wait)(ndf_exec *node, double cpu, double memory);
    int (*resources_usage)(double *cpu, double *memory, double *disk_io);

    /* --- processes --- */
    /* Starts a process in its own process group, with the context exported
     * as NDF_* variables, captures its output into `node`'s record, and
     * waits for it; at the deadline it gets SIGTERM, then SIGKILL after the
     * grace period.  NDF_OK when it exits 0; NDF_ERR_EXECUTION when it exits
     * otherwise or is killed; NDF_ERR_TIMEOUT.  `result` may be NULL. */
    int (*spawn)(ndf_exec *node, const ndf_spawn *opts, ndf_spawn_result *result);

    /* --- text --- */
    /* Expands ${domain}, ${agent_type}, ${priority}, ${execution_id} and
     * ${attr.KEY} from the node's context; "$$" is a literal "$".  An
     * unknown variable is NDF_ERR_VALIDATION.  Free *out with free(). */
    int (*expand)(const ndf_exec *node, const char *tmpl, char **out);
    void (*free)(void *p);

    /* --- reading back what happened --- */
    /* This thread's last failure message (set by fail(), fail_at() or a
     * failing host call); "" when none.  Valid until the next host call. */
    const char *(*last_error)(void);
    /* Copies the node's current message into buf (always NUL-terminated
     * when size > 0) and returns its full length, like snprintf. */
    size_t (*node_message)(const ndf_exec *node, char *buf, size_t size);
    /* Gives `node` (and the work under it) a deadline `seconds` from now,
     * unless an enclosing deadline is earlier. */
    void (*node_set_timeout)(ndf_exec *node, double seconds);
} ndf_host;

/* True when the running host's table has `member` (a plugin built for a
 * later minor than the host offers must check before calling). */
#define NDF_HOST_HAS(host, member) \
    ((host)->size >= offsetof(ndf_host, member) + sizeof(((ndf_host *)0)->member))

#endif

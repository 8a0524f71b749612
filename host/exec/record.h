/* The live record of an execution: a tree of nodes (the SDK's ndf_exec),
 * one per pattern, phase, task and step, each with its state, timings,
 * message, bounded captured output and children.  Records are reference
 * counted, so work that outlives its caller (a step that overran its
 * deadline) never touches freed memory; `ndf status` and the server read
 * them while they run. */
#ifndef NDF_RECORD_H
#define NDF_RECORD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <ndf/sdk.h>

struct strbuf;
struct pattern;
struct pool;
struct executor;

/* Bytes of stdout / stderr / log lines kept per node unless told otherwise. */
#define RECORD_OUTPUT_LIMIT (64u * 1024u)
/* What a queued execution whose lease was lost says of its end: it is
 * neither a success nor a failure of the item, which another worker runs. */
#define LEASE_LOST_MSG "lease lost; result discarded"
/* The most a step may ask to keep (ndf_spawn.output_limit): larger asks are
 * cut to it. */
#define RECORD_OUTPUT_MAX (64u * 1024u * 1024u)
/* The newest bytes of each stream that record_to_json writes: escaping may
 * take up to six bytes for one ("\u0000"), so the JSON of a node stays
 * within six times this whatever the output holds.  Small, because the
 * server keeps the JSON of its last executions (and answers each run
 * with it): all of what was kept is in the store (ndf logs). */
#define RECORD_JSON_OUTPUT (64u * 1024u)
/* What record_to_json writes of all the results and outputs of one
 * record together: past it, the largest parts are cut further (each to
 * the same share, smaller ones kept whole), so a record stays within six
 * times this plus its fixed fields however many nodes it has; the record
 * then says how many bytes the bound left out ("output_omitted"). */
#define RECORD_JSON_TOTAL (1024u * 1024u)
/* The share each of the `n` parts `v` (their sizes, each at most
 * RECORD_JSON_OUTPUT, adding up to `total`) may keep under
 * RECORD_JSON_TOTAL: RECORD_JSON_OUTPUT when they fit, else the largest
 * share that lets the smaller parts stay whole.  Sorts `v`.  Also used for
 * a stored execution's JSON (ndf status --json). */
size_t record_json_share(size_t *v, size_t n, size_t total);

/* The newest bytes of a stream kept raw in memory: a limit above it keeps
 * the older part compressed in a spill file (tailbuf.z, base/ztail.h), so
 * a step with a 64 MiB output_limit costs about this much memory per
 * stream, not the limit. */
#define RECORD_RAW_TAIL (1024u * 1024u)
/* The raw output buffers of all the nodes of one execution together: once
 * a stream's buffer would take them past it, that stream keeps only its
 * newest RECORD_TIGHT_TAIL bytes raw and the rest of its limit compressed
 * in a spill file, as a stream past RECORD_RAW_TAIL does (and its
 * compressor is freed and its buffer cut to those bytes when its node
 * ends), so a thousand tasks of 1 MB output each hold the budget and
 * 16 KiB each, not 2 MB each. */
#define RECORD_OUTPUT_BUDGET (64u * 1024u * 1024u)
#define RECORD_TIGHT_TAIL (16u * 1024u)

struct ztail;

/* Output kept bounded: the newest `limit` bytes, and how many were dropped
 * before them.  Of a limit above RECORD_RAW_TAIL, buf holds the newest
 * RECORD_RAW_TAIL bytes and z the older kept ones, compressed; `dropped`
 * counts every byte before buf, those in z included. */
typedef struct tailbuf {
    char *buf; /* the kept bytes, buf[0, len), NUL-terminated; inside mem */
    size_t len, cap; /* cap: the size of mem */
    uint64_t dropped;
    char *mem; /* the allocation buf slides along (freed with the node) */
    struct ztail *z; /* NULL until bytes past RECORD_RAW_TAIL are kept */
    int tight;       /* past the record's budget: RECORD_TIGHT_TAIL raw */
} tailbuf;

/* What a node's `out` points at until output arrives: three empty buffers,
 * never written (node_append gives the node its own first). */
extern tailbuf record_no_output[3];

typedef enum record_stream { REC_STDOUT = 0, REC_STDERR = 1, REC_LOG = 2 } record_stream;

typedef struct record record;

/* A named figure of a node (ndf_host.node_set_metric). */
#define NODE_METRIC_NAME_MAX 64
#define NODE_METRICS_MAX 32
typedef struct node_metric {
    char name[NODE_METRIC_NAME_MAX];
    double value;
} node_metric;

/* What a node's step used, as far as it can be measured per node (the
 * process-wide figures mix every execution of the process).  Each source
 * is kept apart because each means something else; see ndf(1), status. */
typedef enum node_usage_source {
    USAGE_THREAD = 1, /* the host thread that called an in-process step */
    USAGE_CHILD = 2,  /* processes the step started, from wait4() */
    USAGE_WORKER = 4, /* the isolated worker during the call */
} node_usage_source;
typedef struct node_usage {
    unsigned sources;        /* node_usage_source bits: what was measured */
    double thread_cpu_s;     /* USAGE_THREAD: CLOCK_THREAD_CPUTIME_ID delta */
    double child_user_s;     /* USAGE_CHILD: summed over the step's processes */
    double child_sys_s;
    long child_maxrss_kb;    /* the largest process's peak (not a sum) */
    double worker_user_s;    /* USAGE_WORKER: getrusage delta over the call */
    double worker_sys_s;
    long worker_maxrss_kb;   /* the worker's peak during the call */
} node_usage;

/* A node.  Fields marked (lock) are guarded by the record's lock.  What
 * readers (status, progress, the CLI's live view) look at while the node
 * runs is atomic: `state`, the children and the timings.  The rest is
 * written by the thread that runs the node before others can see it. */
struct ndf_exec {
    ndf_node_kind kind;
    _Atomic int state; /* ndf_state */
    int depth;         /* 0 for the root */
    record *rec;
    struct ndf_exec *parent;
    /* Children, appended under the record's alloc_lock.  Readable under the
     * record lock or even without (node_kids): a child is complete before
     * nkids counts it (release), a grown array is stored before the count
     * that needs it, and outgrown arrays stay valid (they live in the
     * record's arena), so a reader never sees freed memory. */
    _Atomic(struct ndf_exec **) kids;
    _Atomic size_t nkids;
    size_t capkids;  /* (alloc_lock) */
    _Atomic double deadline; /* effective: absolute now_mono(), INFINITY none; atomic:
                                a step thread tightens it while its waiter reads it */
    /* Timings, set by the thread that runs the node (again on a retry)
     * while readers may look: relaxed atomics, free on x86. */
    _Atomic double start, end; /* record_now(); 0 until set */
    _Atomic double start_wall; /* wall-clock time at start */
    char *message;             /* (lock) */
    tailbuf *out;              /* (lock) stdout, stderr, log: 3 buffers, or
                                  record_no_output while there was none */
    void *data;                /* exec_set_data */
    void (*data_free)(void *);
    struct pattern *pat; /* PATTERN nodes of run_pattern: a reference */
    /* STEP nodes: the step implementation that ran it (set by run_step;
     * its plugin is pinned by the bound step, which the pattern holds), so
     * the execution's record can name the plugin builds it ran on. */
    const struct provided *step;
    int cleanup;         /* running an undo: the execution's cancellation
                            does not stop it (its own deadline does) */
    int reused;          /* a redrive took its recorded outcome instead of
                            running it (record_reuse_node) */
    int replay_undone;   /* a replay's node whose work a rollback already
                            undid: its undo is not run again */
    double step_timeout; /* the timeout its step ran with (s, <= 0 none):
                            its undo's too */
    int replay_has_undo; /* a replay's reused step that has an undo action:
                            work a rollback that leaves it left undone */
    /* node_cancel(): set on the node and everything under it, inherited by
     * children made later, so checking it costs one load. */
    _Atomic int cancelled;
    char *result;                  /* (lock) node_set_result, or NULL */
    struct node_metric *metrics;   /* (lock) node_set_metric */
    size_t nmetrics;               /* (lock) */
    struct node_usage usage;       /* (lock) node_add_usage */
    char name[];         /* inline, NUL-terminated */
};

struct record {
    _Atomic int refs;
    char id[48];
    pthread_mutex_t lock;
    ndf_context *ctx; /* owned copy */
    ndf_exec *root;
    /* Set by whoever runs the record, before its work starts, and never
     * changed: how code that holds only a node (the services table) finds
     * what runs it, with no global lookup. */
    struct executor *ex; /* the executor that runs it; NULL for a record
                            driven by hand (tests): no sub-patterns */
    struct pool *pool;   /* where its groups run; NULL: no groups */
    double kill_grace;   /* seconds, processes and in-process steps */
    /* the executor's on_spawn hook (executor_opts), for process.c, which
     * sits below the executor */
    void (*on_spawn)(void *arg, const struct record *r, long pgid, const char *token);
    void *spawn_arg;
    /* Where stdout and stderr appended to its nodes go instead of into
     * them (NULL: kept in the node): a step worker's record forwards each
     * piece to the host as it comes, and the host keeps it under the
     * step's limit, so an isolated step's output is bounded, spilled and
     * seen live exactly as an in-process step's.  Called without the
     * record's lock, from the thread that read the output. */
    void (*on_output)(void *arg, ndf_exec *node, int stream, const char *buf, size_t len,
                      size_t limit);
    void *output_arg;
    int force;           /* skip confidence gates of sub-patterns */
    int origin;          /* EXEC_ORIGIN() of its start, or -1 */
    _Atomic int cancel;  /* 0, or NDF_ERR_CANCELLED once cancelled */
    /* Cancelled again (a second SIGINT): undo actions are skipped and
     * cleanup nodes stop too, processes get SIGKILL at once. */
    _Atomic int hard_cancel;
    /* Counts the rollbacks run on it (executor_rollback): a rollback's
     * processes are recorded anew, the rows of its run being gone. */
    _Atomic int rollbacks;
    _Atomic double cancel_at; /* now_mono() of the first cancellation */
    /* A queued execution's: the now_mono() past which the lease of its
     * item may be lost (0: none).  From then on no step of it starts and
     * nothing of it is undone: the steps are the next holder's. */
    _Atomic double lease_end;
    /* set once a step or undo was refused past lease_end, or its worker
     * gave its lease up: its end is not its queued item's (the item is
     * claimed again and redriven from it), and it ends CANCELLED with
     * LEASE_LOST_MSG whatever it reached */
    _Atomic int lease_lapsed;
    size_t run_idx;           /* (executor lock) its slot in the running list */
    _Atomic int started; /* its work began (the root deadline is set) */
    _Atomic int claimed; /* someone is finishing it (once) */
    _Atomic int done;    /* the execution has returned */
    _Atomic int stored;  /* its RUNNING row is committed (history_begin):
                            progress may be written for it */
    _Atomic int unrecorded; /* its end could not be committed (history.c):
                               a storage error, whatever the outcome */
    /* (lock) why its rows could not be written, when the writer said so
     * after the execution may have ended (a command that hands its rows
     * to the writer reads it after flushing); NULL otherwise */
    char *unrecorded_why;
    size_t out_held;     /* (lock) bytes of its nodes' raw output buffers */
    _Atomic int out_tight; /* a stream went past RECORD_OUTPUT_BUDGET */
    int status;          /* final ndf_status (valid once done) */
    char *error;         /* final message, or NULL */
    double start_wall, start, end;
    char *fallback_from; /* set when this ran as a fallback */
    char *fallback_cause;
    /* A redrive (set before its work starts, then only read): the
     * execution it redrives, and the node paths (record_node_path) whose
     * recorded outcome is taken instead of running them, each mapped to
     * that outcome's message (or to "" when none).  NULL: not a redrive,
     * or nothing is reused (--from-start). */
    char *redrive_of;
    struct hashmap *reuse;
    /* A rollback's replay of a stored execution (executor_start with
     * EXEC_REPLAY): RECORD_REPLAY_RUN while its pattern runs again with
     * every completed node's outcome (and result) taken from the store
     * and every other node failing at once, so that the pattern type's
     * run data is rebuilt without running anything; RECORD_REPLAY_UNDO
     * once its rollback() may run the undo actions.  Its reuse values are
     * record_reuse, not messages.  0: not a replay. */
    _Atomic int replay;
    _Atomic size_t reuse_hits; /* reuse paths found by record_reuse_node */
    _Atomic size_t replay_undoable; /* steps reused by a replay that have an undo */
    _Atomic size_t undos_run;       /* undo actions of steps that have one, begun */
    /* (alloc_lock) Nodes and children arrays are carved from chunks that
     * live as long as the record: a million-step execution costs no malloc
     * per step.  alloc_lock is a spin lock held for a few instructions. */
    _Atomic int alloc_lock;
    struct arena_chunk *arena;
    char *arena_ptr, *arena_end;
};

/* now_mono() in a few nanoseconds: the time stamp counter, calibrated per
 * thread against CLOCK_MONOTONIC (re-anchored every 50 ms), where it is
 * invariant; else CLOCK_MONOTONIC itself.  What record timings use: a
 * clock_gettime() costs ~60 ns on some virtual machines, more than the
 * rest of dispatching a step.  Inline: it is read twice per step. */
double record_now_slow(void);
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
/* The calling thread's line: stamps are mono + (tsc - anchor) * rate while
 * tsc - anchor < span (span 0: not calibrated, or no usable counter). */
typedef struct record_clock {
    uint64_t tsc, span;
    double mono, rate;
} record_clock;
extern _Thread_local record_clock record_clock_tl __attribute__((tls_model("initial-exec")));

static inline double record_now(void)
{
    record_clock *c = &record_clock_tl;
    uint64_t t = __rdtsc();
    if (t - c->tsc < c->span)
        return c->mono + (double)(t - c->tsc) * c->rate;
    return record_now_slow();
}
#else
static inline double record_now(void)
{
    return record_now_slow();
}
#endif

/* now_mono() time `mono` (CLOCK_MONOTONIC seconds) as the absolute time
 * pthread_cond_timedwait() wants on a condvar set to CLOCK_MONOTONIC;
 * clamped to 0 .. 1e15 s, so a deadline decades away (--timeout 1e308)
 * cannot overflow time_t (waking early only costs the caller a look). */
struct timespec record_timespec(double mono);

/* The RUNNING and COMPLETED transitions of node_set_state() without a
 * message, at time `now`: the per-step fast path. */
static inline void node_start_at(ndf_exec *node, double now)
{
    atomic_store_explicit(&node->start, now, memory_order_relaxed);
    /* The wall time follows from the record's: one clock read, not two. */
    atomic_store_explicit(&node->start_wall, node->rec->start_wall + (now - node->rec->start),
                          memory_order_relaxed);
    atomic_store_explicit(&node->end, 0, memory_order_relaxed);
    atomic_store_explicit(&node->state, NDF_STATE_RUNNING, memory_order_release);
}

static inline void node_complete_at(ndf_exec *node, double now)
{
    double start = atomic_load_explicit(&node->start, memory_order_relaxed);
    if (start > 0 && atomic_load_explicit(&node->end, memory_order_relaxed) == 0)
        atomic_store_explicit(&node->end, now > start ? now : start, memory_order_relaxed);
    atomic_store_explicit(&node->state, NDF_STATE_COMPLETED, memory_order_release);
}

/* Generates a new execution id: unique within the process and, in practice,
 * across processes (wall time, pid and a counter).  `out` gets at most
 * `size` bytes. */
void record_make_id(char *out, size_t size);

/* A new record for running pattern `name` in `ctx` (copied; NULL means an
 * empty context), with a root PATTERN node named `name` whose deadline is
 * `deadline` (absolute now_mono(), INFINITY for none).  One reference. */
record *record_new(const char *name, const ndf_context *ctx, double deadline);
/* Takes one more reference to `r` (any thread); returns `r`. */
record *record_ref(record *r);
/* Drops a reference; the last frees the tree, node data (data_free) and the
 * pattern references. */
void record_unref(record *r);

/* A child of `parent` (kind, name), PENDING, inheriting its deadline.
 * Never NULL (aborts on out of memory, like x*alloc). */
ndf_exec *node_new(ndf_exec *parent, ndf_node_kind kind, const char *name);
/* Sets the state and, when `msg` is not NULL, the message (copied).  The
 * RUNNING state stamps the start time, a final one the end time. */
void node_set_state(ndf_exec *node, ndf_state state, const char *msg);
/* node_set_state() with the time `now` (record_now()) already read. */
void node_set_state_at(ndf_exec *node, ndf_state state, const char *msg, double now);
void node_set_message(ndf_exec *node, const char *msg);
/* Appends to one of the node's bounded buffers (`limit` 0: the default).
 * A byte count above the limit keeps the tail. */
void node_append(ndf_exec *node, record_stream s, const char *buf, size_t len, size_t limit);
/* The node's children as they are now, safe while others append: returns
 * the array and sets *count; the array holds at least *count children and
 * stays valid as long as the record. */
ndf_exec *const *node_kids(const ndf_exec *node, size_t *count);
/* The node's start and end (record_now(); 0 while not set), safe while it
 * runs. */
void node_times(const ndf_exec *node, double *start, double *end);
/* Tightens the node's deadline to `deadline` if earlier. */
void node_limit_deadline(ndf_exec *node, double deadline);
/* 0 while work in `node` may go on; else NDF_ERR_CANCELLED (its execution
 * was cancelled, unless the node is cleaning up) or NDF_ERR_TIMEOUT (its
 * deadline passed). */
int node_stop_status(const ndf_exec *node);
/* Cancels `r` (once; `hard`, as a second signal, may follow a first soft
 * cancellation: its undo actions are skipped, cleanup stops, its processes
 * are killed at once).  Its work sees it through node_stop_status(). */
void record_cancel(record *r, int hard);
/* 1 when `r`'s lease (lease_end) has run out at `now`, which cancels it
 * hard and sets lease_lapsed; else 0. */
int record_lease_lost(record *r, double now);
/* node_stop_status() at time `now`. */
int node_stop_status_at(const ndf_exec *node, double now);
/* Cancels `node` and everything under it, now and made later: stop checks
 * answer NDF_ERR_CANCELLED, and nodes still PENDING become CANCELLED.  Nodes
 * in a final state keep it.  Returns how many nodes were not final yet. */
size_t node_cancel(ndf_exec *node);
/* Sets (copies) or clears (NULL) the node's result. */
void node_set_result(ndf_exec *node, const char *text);
/* A copy of the node's result (caller frees), or NULL when it has none. */
char *node_result_dup(const ndf_exec *node);
/* Sets metric `name` (valid per ndf_host.node_set_metric) to `value`.
 * 0, or -1 when the node already has NODE_METRICS_MAX others. */
int node_set_metric(ndf_exec *node, const char *name, double value);
/* Adds what one call of the node's step used, measured by `source` (one
 * node_usage_source): CPU seconds (user and system; a thread's CPU time
 * goes in `user_s` alone) and a peak RSS in KiB (0: not measured), which
 * is kept as a maximum.  Any thread. */
void node_add_usage(ndf_exec *node, node_usage_source source, double user_s, double sys_s,
                    long maxrss_kb);
/* The sum over `node` and every node under it: CPU seconds of all sources,
 * and the largest measured peak RSS (0: none measured).  Caller holds the
 * record lock. */
void node_usage_total(const ndf_exec *node, double *cpu_s, long *maxrss_kb);
/* The first node named `name` under `root` (depth first) that has a result;
 * a copy of that result (caller frees), or NULL. */
char *node_find_result(ndf_exec *root, const char *name);
/* Completion percentage 0..100: a finished node is 100, a leaf not finished
 * 0, otherwise the mean of its children. */
double node_progress(ndf_exec *node);
/* 1 for states after which a node does not change any more. */
int state_final(ndf_state s);
/* "PENDING", "RUNNING", ... */
const char *state_name(ndf_state s);
/* "pattern", "phase", "task", "step". */
const char *node_kind_name(ndf_node_kind k);

/* The node's path in its record: the names from below the root joined by
 * '/', a name repeated among earlier siblings getting "#2", "#3"...; ""
 * for the root.  The same paths the store keeps (history.c), which is how
 * a redrive finds a node of the execution it redrives.  Caller frees. */
char *record_node_path(const ndf_exec *node);
/* For a redrive: when `node`'s path is in its record's reuse set, marks it
 * COMPLETED with a message naming the execution whose outcome it reuses,
 * without running it, and returns 1; else 0.  What run_step and
 * run_pattern call before running anything. */
int record_reuse_node(ndf_exec *node);

/* record->replay */
enum { RECORD_REPLAY_RUN = 1, RECORD_REPLAY_UNDO = 2 };
/* The value a replay's reuse set maps a node path to: the stored node's
 * message and result (NULL: none; points into the same allocation), one
 * malloc'd block that free() releases.  record_reuse_new() makes one. */
typedef struct record_reuse {
    char *result;
    int undone; /* its work was undone already: the type sees it
                   completed (a sequence goes on past it), its undo
                   does not run again */
    char message[];
} record_reuse;
record_reuse *record_reuse_new(const char *message, const char *result, int undone);
/* The message svc_undo_step() leaves on a node whose undo failed (its
 * state FAILED): the work it undoes may still be there, so a later
 * rollback tries it again. */
#define RECORD_UNDO_FAILED "undo failed: "
/* How a replay's reused node's message begins. */
#define REPLAY_NOTE "replayed from the store"
/* The status that stands for how execution `r` (done) ended, for exit
 * codes: once its pattern started, only its outcome (NDF_OK,
 * NDF_ERR_TIMEOUT, NDF_ERR_CANCELLED, else NDF_ERR_EXECUTION), whatever
 * status a step or pattern type returned (ndf-plugin(7), the status
 * contract); before that, its status as it is (not found, gate, ...). */
int record_outcome(const record *r);
/* (An execution whose end the store could not commit is NDF_ERR_IO.) */

/* Renders the record as one JSON object (id, pattern, status, message,
 * context, started, duration, progress, and the node tree with each node's
 * kind, name, state, timings, message, output and children).  Safe while
 * the record runs. */
void record_to_json(record *r, struct strbuf *sb);
/* Renders a node tree as indented text lines for people ("  [COMPLETED]
 * step validate  0.12s  message"). */
void record_to_text(record *r, struct strbuf *sb);

#endif

/* ndf SDK: executions and their live record.
 *
 * Every run of a pattern is an execution with an id and a record: a tree of
 * nodes, one per pattern, phase, task and step, each with a state, timings
 * and a message.  A plugin is handed the node it runs in (`ndf_exec *`) and
 * makes child nodes for the work it does; the host times them, applies
 * deadlines, and answers the seed's status and progress calls from them. */
#ifndef NDF_EXEC_H
#define NDF_EXEC_H

typedef struct ndf_exec ndf_exec;   /* a node of an execution's record */
typedef struct ndf_group ndf_group; /* concurrent sub-work of one node */

typedef enum ndf_node_kind {
    NDF_NODE_PATTERN = 1,
    NDF_NODE_PHASE = 2,
    NDF_NODE_TASK = 3,
    NDF_NODE_STEP = 4
} ndf_node_kind;

/* The seed's StepStatus / TaskStatus, shared by every node kind. */
typedef enum ndf_state {
    NDF_STATE_PENDING = 0,
    NDF_STATE_RUNNING = 1,
    NDF_STATE_COMPLETED = 2,
    NDF_STATE_FAILED = 3,
    NDF_STATE_SKIPPED = 4,     /* not run: a dependency failed, or stopped early */
    NDF_STATE_ROLLED_BACK = 5, /* completed, then undone */
    NDF_STATE_CANCELLED = 6,
    NDF_STATE_TIMED_OUT = 7,
    NDF_STATE_DEGRADED = 8     /* completed with tolerated failures */
} ndf_state;

/* Work run by a group (see ndf_host.group_spawn).  Returns an ndf_status. */
typedef int (*ndf_work_fn)(void *arg);

#endif

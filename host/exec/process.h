/* Processes started by steps (ndf_host.spawn): own process group, the
 * context exported as NDF_* variables, output captured into the record,
 * and deadlines enforced with SIGTERM, a grace period and SIGKILL on the
 * whole group.  (Not "spawn.h": that name would hide the system header.) */
#ifndef NDF_PROCESS_H
#define NDF_PROCESS_H

#include <sys/types.h>

#include <ndf/sdk.h>

/* Runs the process `opts` describes in record node `node` and waits for it
 * and for its process group to be gone.  stdout and stderr go into the
 * node's record (the newest opts->output_limit bytes of each, default
 * RECORD_OUTPUT_LIMIT).  At the node's deadline or cancellation the group
 * gets SIGTERM, then SIGKILL after the grace period (opts->grace_s, else the
 * record's kill_grace); members left behind by a leader that exited are
 * treated the same way, and so are processes that left the group (setsid)
 * and were reparented to this process (a child subreaper), found by the
 * NDF_STEP variable every process of the run inherits: nothing a step
 * started outlives it.
 *
 * Returns NDF_OK (exit status 0); NDF_ERR_EXECUTION ("exited with status 3",
 * "killed by signal 9", "cannot run 'x': ..."); NDF_ERR_TIMEOUT or
 * NDF_ERR_CANCELLED ("killed by signal 15 (timeout)"); NDF_ERR_INVALID for
 * bad options.  err_msg() is set on failure.  `result` may be NULL; it is
 * filled up to result->size. */
int process_run(ndf_exec *node, const ndf_spawn *opts, ndf_spawn_result *result);

/* Reaps the zombies of orphans reparented to this process (a child
 * subreaper once a step spawned a process), never a leader a run still
 * waits for.  process_run calls it at the end of every run; a long-lived
 * process may call it from its housekeeping too.  Any thread. */
void process_reap_orphans(void);

/* The room for an NDF_STEP token, terminator included. */
#define PROCESS_TOKEN_MAX 128

/* SIGKILLs every process of this user (effective uid) but this one whose
 * environment carries NDF_STEP=`token` (or a token below it, "`token`/..."),
 * wherever it is in the process
 * tree (setsid'd ones too): how the host stops what an isolated step's
 * worker left running once the worker is gone.  Returns how many were
 * signalled; the caller reaps (process_reap_orphans) those that were
 * reparented to it. */
int process_kill_token(const char *token);

/* The same, among the descendants of this process only (a walk of the
 * kernel's children lists, far cheaper than a scan of every process of the
 * user), which holds every escapee once this process is a child subreaper
 * (process_become_subreaper): an orphan is reparented to the nearest
 * subreaper above it.  Falls back to process_kill_token where the kernel
 * keeps no children lists. */
int process_kill_token_below(const char *token);

/* Makes this process a child subreaper (once; any thread). */
void process_become_subreaper(void);

/* SIGKILLs and reaps every child of this process, and the children
 * reparented to it as they die (a child subreaper), until none is left:
 * the step worker's end of a call.  Not for a process that has children
 * it still needs. */
void process_kill_children(void);

/* For children the host starts elsewhere (the plugin scanner) and waits for
 * by pid: begin before the spawn, end with its pid after (0: it failed),
 * reaped once waited for, so that process_reap_orphans never takes their
 * exit status. */
void process_child_begin(void);
void process_child_end(pid_t pid);
void process_child_reaped(pid_t pid);

/* The NAME for attribute KEY: "NDF_ATTR_" + KEY uppercased, every byte
 * that is not [A-Za-z0-9] turned into '_'.  The caller frees it. */
char *process_attr_env_name(const char *key);

/* Appends a context attribute value as text (NDF_ATTR_* variables and
 * ${attr.KEY}): scalars as written, lists joined with commas. */
struct strbuf;
void process_value_text(const ndf_value *v, struct strbuf *sb);

#endif

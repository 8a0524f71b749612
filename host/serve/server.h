/* `ndf serve`: the long-running host behind a Unix control socket, with hot
 * reload of plugins and configuration in generations.  The wire protocol is
 * one JSON object per line each way (serve/protocol.h, documented in
 * ndf(1)).  The server knows nothing of the command line: the commands it
 * runs for clients, and the exit codes its answers carry, are handed to it
 * in server_opts. */
#ifndef NDF_SERVER_H
#define NDF_SERVER_H

#include <stdio.h>

#include "app/runtime.h"
#include "model/context.h"
#include "serve/generation.h"

/* server_command.flags */
enum {
    /* Reads the plugin loader, which a reload rescans: runs under the
     * reload lock. */
    SERVER_CMD_LOADER = 1
};

/* A command clients may run by name ("cmd" with "args"), on the serving
 * generation, answered with its output and exit code. */
typedef struct server_command {
    const char *name;
    unsigned flags; /* SERVER_CMD_* */
} server_command;

/* One run of a command for a client. */
typedef struct server_call {
    const server_command *command;
    runtime *rt;                /* the serving generation's; fully loaded, shared: read only */
    int argc;                   /* argv[0] is the command's name */
    char **argv;                /* the request's "args" after it */
    const ndf_context *context; /* the request's "context", or NULL */
    FILE *out, *err;            /* captured for the answer's "stdout" and "stderr" */
    genset *gs;                 /* the generations, for a run-time change (genset_apply) */
    long uid;                   /* the client's */
} server_call;

typedef struct server_opts {
    const char *socket_path; /* NULL: the configuration's server.socket */
    double grace;            /* SIGTERM: seconds running executions get to finish */
    int watch;               /* reload plugins when their directories change (inotify) */
    double debounce;         /* seconds of quiet after a change before reloading */
    double removal_grace;    /* seconds a deleted plugin file may take to come back */

    const server_command *commands;
    size_t ncommands;
    /* Runs call->command.  Returns its exit code, or a negative ndf_status
     * when the request is refused (err_msg() says why; the client gets an
     * error answer).  It must not free or replace what call->rt holds, and
     * may run on several threads at once. */
    int (*run_command)(void *opaque, const server_call *call);
    void *opaque;
    /* The exit code of an ndf_status, for the "exit" member of answers. */
    int (*exit_code)(int status);
    /* Checks a run request (without a fallback) before it starts, on the
     * serving generation's runtime, under the reload lock; NULL: none.
     * NDF_OK to start it, else the status that refuses it, with err_msg()
     * saying why: the client gets an error answer with that status's exit
     * code, and nothing runs or is recorded. */
    int (*check_run)(void *opaque, runtime *rt, const char *name, const ndf_context *ctx,
                     double timeout);
    /* The exit code of a delegation that found no pattern for its context
     * (0: exit_code(NDF_ERR_NOT_FOUND)). */
    int no_candidate_exit;
    /* Claim and run the shared store's queued executions (serve/worker.h),
     * as server.worker = true does. */
    int worker;
    /* The exit codes of a drain that ended with nothing held, and of one
     * whose wait ran out first. */
    int drained_exit, drain_timeout_exit;
} server_opts;

/* Loads the configuration, plugins and patterns of `rt` as generation 1,
 * listens on the socket and serves until SIGTERM, SIGINT or a "shutdown"
 * request; then stops accepting, lets running executions finish up to
 * opts->grace seconds (cancelling the rest), saves every pattern's learning
 * state and returns NDF_OK.  Returns another status (after logging why)
 * when it cannot start.  Takes over rt->cfg; the loader and storage stay
 * in `rt`, which the caller frees with runtime_free() afterwards. */
int server_run(runtime *rt, const server_opts *opts);

#endif

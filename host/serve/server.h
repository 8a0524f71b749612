/* `ndf serve`: the long-running host behind a Unix control socket, with hot
 * reload of plugins and configuration in generations.  The wire protocol is
 * one JSON object per line each way (documented in ndf(1)). */
#ifndef NDF_SERVER_H
#define NDF_SERVER_H

#include "cli/app.h"

/* A request line longer than this gets an error response and the
 * connection is closed. */
#define SERVER_MAX_LINE (1024u * 1024u)

/* A one-shot command the server runs for clients (list, show, ...), with
 * its output captured; see server_opts. */
typedef struct server_command {
    const char *name;
    int (*fn)(app *a, int argc, char **argv);
} server_command;

typedef struct server_opts {
    const char *socket_path; /* NULL: the configuration's server.socket */
    double grace;            /* SIGTERM: seconds running executions get to finish */
    int watch;               /* reload plugins when their directories change (inotify) */
    double debounce;         /* seconds of quiet after a change before reloading */
    /* The read-only commands clients may run (by name, with their own
     * arguments) on the serving generation: stdout, stderr and the exit
     * code go back in the response.  They must not free or replace what
     * the app they are handed holds. */
    const server_command *commands;
    size_t ncommands;
} server_opts;

/* Loads the configuration, plugins and patterns of `a` (a->config_path) as
 * generation 1, listens on the socket and serves until SIGTERM, SIGINT or a
 * "shutdown" request; then stops accepting, lets running executions finish
 * up to opts->grace seconds (cancelling the rest), saves every pattern's
 * learning state and returns EXIT_OK.  Returns another exit code (after
 * logging why) when it cannot start.  Takes over a->cfg; the caller still
 * calls app_free(a). */
int server_run(app *a, const server_opts *opts);

/* Connects to the server socket at `path`.  Returns the descriptor, or -1
 * with errno set (ENOENT or ECONNREFUSED: nothing listens). */
int server_connect(const char *path);

#endif

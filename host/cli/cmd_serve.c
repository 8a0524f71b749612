/* `ndf serve` (the server is serve/server.c): its command line, and the
 * bridge that lets the server run the servable commands of the table for
 * its clients, with their sinks and context, as `ndf COMMAND` would. */
#include "build-config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/runtime.h"
#include "cli/commands.h"
#include "cli/opt.h"
#include "store/history.h"
#include "serve/server.h"
#include "base/util.h"

static const char serve_usage[] =
    "Usage: ndf serve [--socket PATH] [--grace SECONDS] [--no-watch] [--worker]\n"
    "\n"
    "Runs ndf as a service: loads the configuration, plugins and patterns, and\n"
    "answers requests on a Unix socket (server.socket, mode 0600; 0660 with\n"
    "server.group) from the same user or root, one JSON object per line; see\n"
    "'ndf ctl'.  Plugins are reloaded when their directories change; SIGHUP\n"
    "or 'ndf ctl reload' reload the configuration too, as a transaction.\n"
    "SIGTERM or SIGINT: stop accepting, let running executions finish, save\n"
    "the learning state, exit 0.  Logs go to stderr.\n"
    "\n"
    "Options:\n"
    "  --socket PATH      listen here instead of server.socket\n"
    "  --grace SECONDS    how long running executions may finish at shutdown\n"
    "                     before they are cancelled (default 30)\n"
    "  --debounce SECONDS quiet time after a plugin file changes before the\n"
    "                     reload (default 0.2)\n"
    "  --removal-grace SECONDS\n"
    "                     how long a deleted plugin file may take to come back\n"
    "                     before its plugin is retired (default 1)\n"
    "  --no-watch         do not watch the plugin directories (inotify)\n"
    "  --worker           also claim and run the executions queued in the shared\n"
    "                     store (storage.backend = \"postgresql\"; 'ndf submit'),\n"
    "                     as server.worker = true does\n"
    "  --metrics-textfile FILE.prom\n"
    "                     write 'ndf ctl metrics' into FILE.prom (atomically,\n"
    "                     for node_exporter's textfile collector) every\n"
    "                     --metrics-interval seconds (default 15), and\n"
    "                     ndf_server_up 0 when the server stops\n";

/* The textfile writer of --metrics-textfile: a thread that asks the
 * server's own socket for `ndf ctl metrics`, so that what it writes is
 * what a client sees, through the generation serving at that moment. */
typedef struct metrics_writer {
    cmd_ctx *c;
    /* c with the diagnostics of the collection dropped: the socket is
     * missing for a moment at every start and stop, and that is no news */
    cmd_ctx quiet;
    char *socket;
    const char *path;
    double interval;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    int stop;
} metrics_writer;

static void *metrics_main(void *arg)
{
    metrics_writer *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double t = (double)ts.tv_sec + ts.tv_nsec / 1e9 + w->interval;
        ts.tv_sec = (time_t)t;
        ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
        while (!w->stop && pthread_cond_timedwait(&w->cond, &w->lock, &ts) != ETIMEDOUT)
            ;
        if (w->stop)
            break;
        pthread_mutex_unlock(&w->lock);
        strbuf sb;
        sb_init(&sb);
        cmd_ctl_metrics(&w->quiet, w->socket, 86400, &sb);
        cmd_metrics_write(w->c, w->path, sb.buf ? sb.buf : "", sb.len);
        sb_free(&sb);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* Starts the writer; 0, or -1 after saying why. */
static int metrics_start(metrics_writer *w)
{
    w->quiet = *w->c;
    w->quiet.err = fopen("/dev/null", "w");
    if (!w->quiet.err)
        w->quiet.err = w->c->err;
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    /* The server takes its signals on a thread of its own: this one must
     * not be where a SIGTERM lands. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int e = pthread_create(&w->thread, NULL, metrics_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        cmd_error(w->c, "cannot start the metrics writer: %s\n", strerror(e));
        if (w->quiet.err != w->c->err)
            fclose(w->quiet.err);
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        return -1;
    }
    return 0;
}

/* Stops the writer and leaves ndf_server_up 0 in the file: a stopped
 * service must not go on looking healthy from its last exposition. */
static void metrics_stop(metrics_writer *w)
{
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    strbuf sb;
    sb_init(&sb);
    cmd_ctl_metrics(w->c, NULL, 0, &sb);
    cmd_metrics_write(w->c, w->path, sb.buf, sb.len);
    sb_free(&sb);
    if (w->quiet.err != w->c->err)
        fclose(w->quiet.err);
}

/* The server's callback (server_opts.run_command): `opaque` is the
 * serve command's own context, for its verbosity. */
static int run_served(void *opaque, const server_call *call)
{
    const cmd_ctx *serve = opaque;
    const cmd_entry *e = cmd_find(call->command->name);
    if (!e || !(e->flags & CMD_SERVABLE))
        return err_set(NDF_ERR_INVALID, "bad request: '%s' is not served", call->command->name);
    if (call->context && !(e->flags & CMD_CONTEXT))
        return err_set(NDF_ERR_INVALID, "bad request: %s takes no \"context\"", e->name);
    /* the counts it shows are the store's, whoever ran since; a store
     * that cannot be read leaves this server's (the command says what it
     * cannot read itself) */
    if (call->rt->st && call->rt->reg && history_refresh(call->rt->st, call->rt->reg, NULL))
        log_msg(NDF_LOG_WARN, "counts not read from the store: %s", err_msg());
    cmd_ctx c = {
        .entry = e,
        .rt = call->rt,
        .in = NULL,
        .out = call->out,
        .err = call->err,
        .verbosity = serve->verbosity,
        .context = call->context,
        .served = 1,
        .gs = call->gs,
        .uid = call->uid,
    };
    int rc = e->exec(&c, call->argc, call->argv);
    return rc == CMD_REFUSED ? NDF_ERR_INVALID : rc;
}

/* server_opts.check_run: a client's run is refused as `ndf run` refuses
 * it. */
static int check_served_run(void *opaque, runtime *rt, const char *name, const ndf_context *ctx,
                            double timeout)
{
    (void)opaque;
    return cmd_plan_check(rt, name, ctx, timeout);
}

static int cmd_serve(cmd_ctx *c, int argc, char **argv)
{
    static const opt_spec opts[] = {{"socket", 0, OPT_REQUIRED, 's'},
                                    {"grace", 0, OPT_REQUIRED, 'g'},
                                    {"debounce", 0, OPT_REQUIRED, 'd'},
                                    {"removal-grace", 0, OPT_REQUIRED, 'R'},
                                    {"no-watch", 0, OPT_NONE, 'W'},
                                    {"worker", 0, OPT_NONE, 'w'},
                                    {"metrics-textfile", 0, OPT_REQUIRED, 'm'},
                                    {"metrics-interval", 0, OPT_REQUIRED, 'i'},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    {0}};
    metrics_writer mw = {.c = c, .interval = 15};
    server_opts so = {.grace = 30,
                      .watch = 1,
                      .debounce = 0.2,
                      .removal_grace = 1.0,
                      .run_command = run_served,
                      .opaque = c,
                      .exit_code = exit_code_for,
                      .check_run = check_served_run,
                      .drained_exit = EXIT_OK,
                      .drain_timeout_exit = EXIT_TIMEOUT,

                      .no_candidate_exit = EXIT_NO_CANDIDATE};
    int o;
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    while ((o = opt_next(&p)) != OPT_END) {
        switch (o) {
        case 's': so.socket_path = p.arg; break;
        case 'g':
            if (cmd_parse_seconds(c, "--grace", p.arg, &so.grace))
                return EXIT_USAGE;
            break;
        case 'd':
            if (cmd_parse_seconds(c, "--debounce", p.arg, &so.debounce))
                return EXIT_USAGE;
            break;
        case 'R':
            if (cmd_parse_seconds(c, "--removal-grace", p.arg, &so.removal_grace))
                return EXIT_USAGE;
            break;
        case 'W': so.watch = 0; break;
        case 'w': so.worker = 1; break;
        case 'm':
            if (cmd_metrics_check_textfile(c, "--metrics-textfile", p.arg) != EXIT_OK)
                return EXIT_USAGE;
            mw.path = p.arg;
            break;
        case 'i':
            if (cmd_parse_interval(c, "--metrics-interval", p.arg, &mw.interval))
                return EXIT_USAGE;
            break;
        case 'h': return cmd_help(c);
        default: return cmd_bad_usage(c);
        }
    }
    if (p.noperands) {
        cmd_error(c, "unexpected argument '%s'\n", p.operands[0]);
        return EXIT_USAGE;
    }
    /* The servable commands of the table replace any separate list. */
    size_t n = 0;
    while (cmd_table[n])
        n++;
    server_command *served = xcalloc(n, sizeof *served);
    for (size_t i = 0; i < n; i++)
        if (cmd_table[i]->flags & CMD_SERVABLE)
            served[so.ncommands++] = (server_command){
                cmd_table[i]->name, cmd_table[i]->flags & CMD_LOADER ? SERVER_CMD_LOADER : 0};
    so.commands = served;
    /* its clients get the answers; the operator reads the log */
    history_log_errors(1);
    /* A service says what it does: info by default, -q for errors only. */
    if (c->verbosity == 0)
        log_set_level(NDF_LOG_INFO);
    if (mw.path) {
        mw.socket = so.socket_path ? xstrdup(so.socket_path) : cmd_ctl_socket(c);
        if (!mw.socket || metrics_start(&mw) != 0) {
            if (!mw.socket)
                cmd_error(c, "--metrics-textfile: no server.socket is configured\n");
            free(mw.socket);
            free(served);
            return EXIT_USAGE;
        }
    }
    int rc = exit_code_for(server_run(c->rt, &so));
    if (mw.path) {
        metrics_stop(&mw);
        free(mw.socket);
    }
    free(served);
    return rc;
}

const cmd_entry cmd_serve_entry = {
    .name = "serve",
    .summary = "run as a service on a control socket, reloading plugins live",
    .usage = serve_usage,
    .exec = cmd_serve,
};

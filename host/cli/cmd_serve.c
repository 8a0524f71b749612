/* `ndf serve` (the server is serve/server.c): its command line, and the
 * bridge that lets the server run the servable commands of the table for
 * its clients, with their sinks and context, as `ndf COMMAND` would. */
#include "build-config.h"

#include <stdio.h>
#include <stdlib.h>

#include "app/runtime.h"
#include "cli/commands.h"
#include "cli/opt.h"
#include "serve/server.h"
#include "base/util.h"

static const char serve_usage[] =
    "Usage: ndf serve [--socket PATH] [--grace SECONDS] [--no-watch]\n"
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
    "  --no-watch         do not watch the plugin directories (inotify)\n";

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
    cmd_ctx c = {
        .entry = e,
        .rt = call->rt,
        .in = NULL,
        .out = call->out,
        .err = call->err,
        .verbosity = serve->verbosity,
        .context = call->context,
        .served = 1,
    };
    int rc = e->exec(&c, call->argc, call->argv);
    return rc == CMD_REFUSED ? NDF_ERR_INVALID : rc;
}

static int cmd_serve(cmd_ctx *c, int argc, char **argv)
{
    static const opt_spec opts[] = {
        {"socket", 0, OPT_REQUIRED, 's'},   {"grace", 0, OPT_REQUIRED, 'g'},
        {"debounce", 0, OPT_REQUIRED, 'd'}, {"no-watch", 0, OPT_NONE, 'W'},
        {"help", 'h', OPT_NONE, 'h'},       {0}};
    server_opts so = {.grace = 30,
                      .watch = 1,
                      .debounce = 0.2,
                      .run_command = run_served,
                      .opaque = c,
                      .exit_code = exit_code_for,
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
        case 'W': so.watch = 0; break;
        case 'h': return cmd_help(c);
        default: return cmd_bad_usage(c);
        }
    }
    if (p.noperands) {
        fprintf(c->err, "ndf serve: unexpected argument '%s'\n", p.operands[0]);
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
    /* A service says what it does: info by default, -q for errors only. */
    if (c->verbosity == 0)
        log_set_level(NDF_LOG_INFO);
    int rc = exit_code_for(server_run(c->rt, &so));
    free(served);
    return rc;
}

const cmd_entry cmd_serve_entry = {
    .name = "serve",
    .summary = "run as a service on a control socket, reloading plugins live",
    .usage = serve_usage,
    .exec = cmd_serve,
};

/* `ndf serve` (the server, see server.c) and `ndf ctl` (its client): ctl
 * turns a command line into one JSON request, sends it over the control
 * socket and prints the response as the one-shot command would. */
#include "build-config.h"

#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/commands.h"
#include "conf/config.h"
#include "model/context.h"
#include "cli/ctxopt.h"
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

static int parse_seconds(const char *opt, const char *arg, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end || !isfinite(v) || v < 0) {
        fprintf(stderr, "ndf: %s %s: expected a number of seconds >= 0\n", opt, arg);
        return -1;
    }
    *out = v;
    return 0;
}

/* What `ndf ctl VERB` runs on the server as the one-shot command would. */
static const server_command served_commands[] = {
    {"list", cmd_list},     {"show", cmd_show},           {"similar", cmd_similar},
    {"export", cmd_export}, {"analytics", cmd_analytics}, {"plugins", cmd_plugins},
    {"config", cmd_config},
};

int cmd_serve(app *a, int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},   {"grace", required_argument, NULL, 'g'},
        {"debounce", required_argument, NULL, 'd'}, {"no-watch", no_argument, NULL, 'W'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    server_opts so = {.grace = 30,
                      .watch = 1,
                      .debounce = 0.2,
                      .commands = served_commands,
                      .ncommands = ARRAY_SIZE(served_commands)};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': so.socket_path = optarg; break;
        case 'g':
            if (parse_seconds("--grace", optarg, &so.grace))
                return EXIT_USAGE;
            break;
        case 'd':
            if (parse_seconds("--debounce", optarg, &so.debounce))
                return EXIT_USAGE;
            break;
        case 'W': so.watch = 0; break;
        case 'h': usage_print(serve_usage); return EXIT_OK;
        default: fputs(serve_usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ndf serve: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    /* A service says what it does: info by default, -q for errors only. */
    if (a->verbosity == 0)
        log_set_level(NDF_LOG_INFO);
    return server_run(a, &so);
}

/* ---- ndf ctl ---- */

static const char ctl_usage[] =
    "Usage: ndf ctl [--socket PATH] VERB [ARGS]\n"
    "\n"
    "Sends one request to a running 'ndf serve' and prints the answer as the\n"
    "one-shot command would (same output and exit status).\n"
    "\n"
    "Verbs:\n"
    "  run PATTERN [context options] [--timeout S] [--force] [--fallback P]\n"
    "      [--async] [--json]\n"
    "                     run a pattern as 'ndf run' does; --async prints the\n"
    "                     execution id at once\n"
    "  status [ID] [--json]\n"
    "                     an execution's live record (default: the latest)\n"
    "  cancel ID          cancel a running execution\n"
    "  rollback ID [--level LEVEL] [--target PHASE] [--json]\n"
    "                     roll back a finished execution (pattern, phase, complete)\n"
    "  list, show, similar, analytics, export, plugins, config [ARGS]\n"
    "                     as 'ndf VERB ARGS', answered by the server\n"
    "  reload             reload the configuration and plugins (a transaction)\n"
    "  ping               the server's generation and reload counters (JSON)\n"
    "  send               send each line of stdin as a raw request, print answers\n"
    "  shutdown           stop the server as SIGTERM does\n"
    "\n"
    "Options:\n"
    "  --socket PATH      the server's socket (default: server.socket)\n"
    "\n" CTXOPT_HELP "\n"
    "Exit status: as the one-shot command; 9 when no server is listening.\n";

typedef struct ctl {
    const char *socket;
    int fd;
} ctl;

/* Sends `req` and reads one response line; NULL (after printing why) when
 * the server is not there or the answer is not JSON. */
static cJSON *ctl_call(ctl *c, cJSON *req, int *rc)
{
    *rc = EXIT_UNAVAILABLE;
    c->fd = server_connect(c->socket);
    if (c->fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ECONNREFUSED)
            fprintf(stderr,
                    "ndf ctl: no ndf server is listening on %s (start one with 'ndf "
                    "serve')\n",
                    c->socket);
        else
            fprintf(stderr, "ndf ctl: cannot connect to %s: %s\n", c->socket, strerror(e));
        return NULL;
    }
    char *text = cJSON_PrintUnformatted(req);
    size_t len = strlen(text);
    text[len] = '\n';
    size_t off = 0;
    while (off < len + 1) {
        ssize_t w = send(c->fd, text + off, len + 1 - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    cJSON_free(text);
    strbuf sb;
    sb_init(&sb);
    char buf[65536];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        sb_add(&sb, buf, (size_t)n);
        if (memchr(buf, '\n', (size_t)n))
            break;
    }
    close(c->fd);
    c->fd = -1;
    if (!sb.len) {
        fprintf(stderr, "ndf ctl: the server at %s closed the connection without an answer\n",
                c->socket);
        sb_free(&sb);
        return NULL;
    }
    cJSON *resp = cJSON_ParseWithLength(sb.buf, sb.len);
    sb_free(&sb);
    if (!cJSON_IsObject(resp)) {
        cJSON_Delete(resp);
        fprintf(stderr, "ndf ctl: the server's answer is not a JSON object\n");
        *rc = EXIT_IO;
        return NULL;
    }
    *rc = EXIT_OK;
    return resp;
}

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int int_of(const cJSON *o, const char *key, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valueint : dflt;
}

/* An error response: its message on stderr, its exit code. */
static int ctl_failed(const char *verb, const cJSON *resp)
{
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "ok")))
        return EXIT_OK;
    const char *e = str_of(resp, "error");
    fprintf(stderr, "ndf ctl %s: %s\n", verb, e ? e : "failed");
    int rc = int_of(resp, "exit", EXIT_FAILED);
    return rc ? rc : EXIT_FAILED;
}

/* ---- printing records as the one-shot commands do ---- */

static const char *const state_names[] = {"PENDING",   "RUNNING",   "COMPLETED",
                                          "FAILED",    "SKIPPED",   "ROLLED_BACK",
                                          "CANCELLED", "TIMED_OUT", "DEGRADED"};

/* `ndf run` reports, on stderr, each node's final state and a summary line
 * (cmd_run.c: walk, summary); the server sends the finished record. */
static void run_nodes(const cJSON *n, int depth, unsigned *counts)
{
    const char *state = str_of(n, "state");
    if (depth > 0) {
        for (size_t s = 0; state && s < ARRAY_SIZE(state_names); s++)
            if (strcmp(state, state_names[s]) == 0)
                counts[s]++;
        const cJSON *dur = cJSON_GetObjectItemCaseSensitive(n, "duration");
        const char *msg = str_of(n, "message");
        fprintf(stderr, "%*s%s %s: %s", (depth - 1) * 2, "", str_of(n, "kind"), str_of(n, "name"),
                state ? state : "?");
        if (cJSON_IsNumber(dur))
            fprintf(stderr, " (%.2fs)", dur->valuedouble);
        if (msg && *msg)
            fprintf(stderr, ": %s", msg);
        fputc('\n', stderr);
    }
    const cJSON *k;
    cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(n, "children"))
        run_nodes(k, depth + 1, counts);
}

static void run_summary(const cJSON *j, int failed)
{
    unsigned counts[ARRAY_SIZE(state_names)] = {0};
    const cJSON *root = cJSON_GetObjectItemCaseSensitive(j, "root");
    fprintf(stderr, "pattern %s: started (execution %s)\n", str_of(root, "name"), str_of(j, "id"));
    run_nodes(root, 0, counts);
    const cJSON *dur = cJSON_GetObjectItemCaseSensitive(j, "duration");
    const char *status = str_of(j, "status");
    fprintf(stderr, "pattern %s: %s in %.2fs (execution %s)", str_of(root, "name"),
            failed && status ? status : str_of(root, "state"),
            cJSON_IsNumber(dur) ? dur->valuedouble : 0.0, str_of(j, "id"));
    const char *sep = ": ";
    for (size_t s = 0; s < ARRAY_SIZE(state_names); s++)
        if (counts[s]) {
            fprintf(stderr, "%s%u %s", sep, counts[s], state_names[s]);
            sep = ", ";
        }
    fputc('\n', stderr);
    const char *err = str_of(j, "error");
    if (failed && err)
        fprintf(stderr, "ndf: %s\n", err);
}

static void print_record(const cJSON *resp, int json)
{
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(resp, "record");
    if (json) {
        char *t = cJSON_PrintUnformatted(rec);
        if (t)
            printf("%s\n", t);
        cJSON_free(t);
    } else if (rec) {
        status_print(rec);
    }
}

static cJSON *request(const char *cmd)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "cmd", cmd);
    return r;
}

/* Adds the context built from the options as the request's "context". */
static int add_context(cJSON *req, ctxopt *co)
{
    ndf_context *ctx;
    int rc = ctxopt_finish(co, &ctx);
    if (rc)
        return rc;
    strbuf sb;
    sb_init(&sb);
    context_to_json(ctx, &sb);
    context_free(ctx);
    cJSON *j = cJSON_ParseWithLength(sb.buf, sb.len);
    sb_free(&sb);
    if (!j) {
        fprintf(stderr, "ndf ctl: cannot encode the context\n");
        return EXIT_USAGE;
    }
    cJSON_AddItemToObject(req, "context", j);
    return EXIT_OK;
}

static int ctl_run(ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {CTXOPT_LONG_OPTIONS,
                                         {"timeout", required_argument, NULL, 't'},
                                         {"force", no_argument, NULL, 'f'},
                                         {"async", no_argument, NULL, 'A'},
                                         {"fallback", required_argument, NULL, 'F'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    ctxopt co;
    ctxopt_init(&co);
    double timeout = 0;
    int force = 0, async = 0, json = 0, opt, rc;
    const char *fallback = NULL;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int h = ctxopt_handle(&co, opt, optarg);
        if (h < 0) {
            ctxopt_free(&co);
            return EXIT_USAGE;
        }
        if (h > 0)
            continue;
        switch (opt) {
        case 't':
            if (parse_seconds("--timeout", optarg, &timeout)) {
                ctxopt_free(&co);
                return EXIT_USAGE;
            }
            break;
        case 'f': force = 1; break;
        case 'A': async = 1; break;
        case 'F': fallback = optarg; break;
        case 'j': json = 1; break;
        case 'h':
            ctxopt_free(&co);
            usage_print(ctl_usage);
            return EXIT_OK;
        default:
            ctxopt_free(&co);
            fputs(ctl_usage, stderr);
            return EXIT_USAGE;
        }
    }
    if (optind + 1 != argc) {
        ctxopt_free(&co);
        fprintf(stderr, "ndf ctl run: expected one PATTERN (see 'ndf ctl --help')\n");
        return EXIT_USAGE;
    }
    cJSON *req = request("run");
    cJSON_AddStringToObject(req, "pattern", argv[optind]);
    if ((rc = add_context(req, &co)) != EXIT_OK) {
        ctxopt_free(&co);
        cJSON_Delete(req);
        return rc;
    }
    ctxopt_free(&co);
    if (timeout > 0)
        cJSON_AddNumberToObject(req, "timeout", timeout);
    if (force)
        cJSON_AddBoolToObject(req, "force", 1);
    if (async && fallback) {
        fprintf(stderr, "ndf ctl run: --fallback waits for the primary; it cannot be --async\n");
        cJSON_Delete(req);
        return EXIT_USAGE;
    }
    if (async)
        cJSON_AddBoolToObject(req, "async", 1);
    if (fallback)
        cJSON_AddStringToObject(req, "fallback", fallback);
    cJSON *resp = ctl_call(c, req, &rc);
    cJSON_Delete(req);
    if (!resp)
        return rc;
    if ((rc = ctl_failed("run", resp)) != EXIT_OK) {
        cJSON_Delete(resp);
        return rc;
    }
    if (async) {
        const char *id = str_of(resp, "id");
        if (json)
            printf("{\"id\":\"%s\"}\n", id ? id : "");
        else
            printf("%s\n", id ? id : "");
    } else {
        rc = int_of(resp, "exit", EXIT_FAILED);
        const cJSON *prim = cJSON_GetObjectItemCaseSensitive(resp, "primary");
        const char *cause = str_of(resp, "fallback_cause");
        if (!json && prim)
            run_summary(prim, 1);
        if (!json && cause) {
            const char *perr = str_of(resp, "primary_error");
            if (!prim && perr)
                fprintf(stderr, "ndf: %s\n", perr);
            fprintf(stderr, "ndf: falling back to '%s' (cause: %s)\n", fallback, cause);
        }
        if (json)
            print_record(resp, 1);
        else if (cJSON_GetObjectItemCaseSensitive(resp, "record"))
            run_summary(cJSON_GetObjectItemCaseSensitive(resp, "record"), rc != EXIT_OK);
    }
    cJSON_Delete(resp);
    return rc;
}

/* status / cancel / rollback: an id and a few options. */
static int ctl_by_id(ctl *c, const char *verb, int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                         {"level", required_argument, NULL, 'l'},
                                         {"target", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int json = 0, opt, rc;
    const char *level = NULL, *target = NULL;
    int is_status = strcmp(verb, "status") == 0, is_rollback = strcmp(verb, "rollback") == 0;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'j': json = 1; break;
        case 'l':
        case 't':
            if (!is_rollback) {
                fprintf(stderr, "ndf ctl %s: --%s is for rollback\n", verb,
                        opt == 'l' ? "level" : "target");
                return EXIT_USAGE;
            }
            *(opt == 'l' ? &level : &target) = optarg;
            break;
        case 'h': usage_print(ctl_usage); return EXIT_OK;
        default: fputs(ctl_usage, stderr); return EXIT_USAGE;
        }
    }
    int nargs = argc - optind;
    if (nargs > 1 || (nargs == 0 && !is_status)) {
        fprintf(stderr, "ndf ctl %s: expected %s execution ID\n", verb,
                is_status ? "at most one" : "one");
        return EXIT_USAGE;
    }
    cJSON *req = request(verb);
    if (nargs)
        cJSON_AddStringToObject(req, "id", argv[optind]);
    if (level)
        cJSON_AddStringToObject(req, "level", level);
    if (target)
        cJSON_AddStringToObject(req, "target", target);
    cJSON *resp = ctl_call(c, req, &rc);
    cJSON_Delete(req);
    if (!resp)
        return rc;
    if ((rc = ctl_failed(verb, resp)) == EXIT_OK) {
        if (strcmp(verb, "cancel") == 0)
            printf("cancelled %s\n", argv[optind]);
        else
            print_record(resp, json);
    }
    cJSON_Delete(resp);
    return rc;
}

static int write_file(const char *path, const char *data)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(data, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "ndf ctl export: cannot write %s: %s\n", path, strerror(errno));
        if (f)
            fclose(f);
        return EXIT_IO;
    }
    return EXIT_OK;
}

/* The read-only commands: the arguments go to the server untouched, except
 * what names a file on this side (export -o, similar --context). */
static int ctl_forward(ctl *c, const char *verb, int argc, char **argv)
{
    cJSON *req = request(verb);
    cJSON *args = cJSON_AddArrayToObject(req, "args");
    const char *out = NULL;
    int rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        int is_out = 0, is_ctx = 0;
        if (strcmp(verb, "export") == 0) {
            if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0)
                is_out = 1, val = i + 1 < argc ? argv[++i] : NULL;
            else if (strncmp(a, "--output=", 9) == 0)
                is_out = 1, val = a + 9;
            else if (strncmp(a, "-o", 2) == 0 && a[2])
                is_out = 1, val = a + 2;
        } else if (strcmp(verb, "similar") == 0) {
            if (strcmp(a, "--context") == 0)
                is_ctx = 1, val = i + 1 < argc ? argv[++i] : NULL;
            else if (strncmp(a, "--context=", 10) == 0)
                is_ctx = 1, val = a + 10;
        }
        if ((is_out || is_ctx) && !val) {
            fprintf(stderr, "ndf ctl %s: %s needs a value\n", verb, a);
            cJSON_Delete(req);
            return EXIT_USAGE;
        }
        if (is_out) {
            out = val;
        } else if (is_ctx) {
            ndf_context *ctx;
            if (context_from_json_file(val, &ctx) != NDF_OK) {
                fprintf(stderr, "ndf: %s\n", err_msg());
                cJSON_Delete(req);
                return EXIT_USAGE;
            }
            strbuf sb;
            sb_init(&sb);
            context_to_json(ctx, &sb);
            context_free(ctx);
            cJSON_DeleteItemFromObjectCaseSensitive(req, "context");
            cJSON_AddItemToObject(req, "context", cJSON_ParseWithLength(sb.buf, sb.len));
            sb_free(&sb);
        } else {
            cJSON_AddItemToArray(args, cJSON_CreateString(a));
        }
    }
    cJSON *resp = ctl_call(c, req, &rc);
    cJSON_Delete(req);
    if (!resp)
        return rc;
    if ((rc = ctl_failed(verb, resp)) != EXIT_OK) {
        cJSON_Delete(resp);
        return rc;
    }
    const char *so = str_of(resp, "stdout"), *se = str_of(resp, "stderr");
    rc = int_of(resp, "exit", EXIT_FAILED);
    if (se)
        fputs(se, stderr);
    if (so && out && rc == EXIT_OK)
        rc = write_file(out, so);
    else if (so)
        fputs(so, stdout);
    cJSON_Delete(resp);
    return rc;
}

/* Protocol-level access for scripts and tests: each line of stdin is sent
 * as it is, on one connection, and each answer line printed. */
static int ctl_send(ctl *c, int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "ndf ctl send: takes no arguments (the requests come on stdin)\n");
        return EXIT_USAGE;
    }
    int fd = server_connect(c->socket);
    if (fd < 0) {
        fprintf(stderr, "ndf ctl: no ndf server is listening on %s (%s)\n", c->socket,
                strerror(errno));
        return EXIT_UNAVAILABLE;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = EXIT_OK;
    FILE *in = fdopen(dup(fd), "r");
    while ((n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] != '\n') {
            line = xrealloc(line, (size_t)n + 2);
            line[n++] = '\n';
        }
        ssize_t off = 0;
        while (off < n) {
            ssize_t w = send(fd, line + off, (size_t)(n - off), MSG_NOSIGNAL);
            if (w <= 0)
                break;
            off += w;
        }
        int broken = off < n; /* the server may have answered, then closed */
        char *ans = NULL;
        size_t acap = 0;
        ssize_t an = in ? getline(&ans, &acap, in) : -1;
        if (an <= 0) {
            free(ans);
            fprintf(stderr, "ndf ctl send: the server closed the connection\n");
            rc = EXIT_UNAVAILABLE;
            break;
        }
        fwrite(ans, 1, (size_t)an, stdout);
        free(ans);
        if (broken)
            break;
    }
    free(line);
    if (in)
        fclose(in);
    close(fd);
    return rc;
}

static int ctl_simple(ctl *c, const char *verb, int argc, char **argv)
{
    if (argc > 1) {
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
            usage_print(ctl_usage);
            return EXIT_OK;
        }
        fprintf(stderr, "ndf ctl %s: takes no arguments\n", verb);
        return EXIT_USAGE;
    }
    int rc;
    cJSON *req = request(verb);
    cJSON *resp = ctl_call(c, req, &rc);
    cJSON_Delete(req);
    if (!resp)
        return rc;
    if (strcmp(verb, "ping") == 0) {
        char *t = cJSON_PrintUnformatted(resp);
        printf("%s\n", t);
        cJSON_free(t);
    } else if (strcmp(verb, "reload") == 0) {
        const char *cfg = str_of(resp, "config");
        printf("generation %d serves (configuration %s, %d plugin change%s)\n",
               int_of(resp, "generation", 0), cfg ? cfg : "?", int_of(resp, "plugins_changed", 0),
               int_of(resp, "plugins_changed", 0) == 1 ? "" : "s");
    }
    rc = ctl_failed(verb, resp);
    cJSON_Delete(resp);
    return rc;
}

int cmd_ctl(app *a, int argc, char **argv)
{
    static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    ctl c = {.fd = -1};
    int opt;
    while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (opt) {
        case 's': c.socket = optarg; break;
        case 'h': usage_print(ctl_usage); return EXIT_OK;
        default: fputs(ctl_usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fputs(ctl_usage, stderr);
        return EXIT_USAGE;
    }
    config *cfg = NULL;
    if (!c.socket) {
        /* Only the socket path is needed, and a configuration being edited
         * (with errors: the server keeps its old one) must not keep ctl
         * from reaching the server: take whatever path was read. */
        if (access(a->config_path, F_OK) == 0) {
            config_load(a->config_path, &cfg);
        } else {
            cfg = xcalloc(1, sizeof *cfg);
            settings_default(&cfg->set);
        }
        c.socket = cfg->set.socket_path;
    }
    const char *verb = argv[optind];
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    optind = 0;
    static const char *const fwd[] = {"list",   "show",    "similar", "analytics",
                                      "export", "plugins", "config"};
    int rc = -1;
    if (strcmp(verb, "run") == 0)
        rc = ctl_run(&c, sub_argc, sub_argv);
    else if (strcmp(verb, "status") == 0 || strcmp(verb, "cancel") == 0 ||
             strcmp(verb, "rollback") == 0)
        rc = ctl_by_id(&c, verb, sub_argc, sub_argv);
    else if (strcmp(verb, "reload") == 0 || strcmp(verb, "shutdown") == 0 ||
             strcmp(verb, "ping") == 0)
        rc = ctl_simple(&c, verb, sub_argc, sub_argv);
    else if (strcmp(verb, "send") == 0)
        rc = ctl_send(&c, sub_argc, sub_argv);
    for (size_t i = 0; rc < 0 && i < ARRAY_SIZE(fwd); i++)
        if (strcmp(verb, fwd[i]) == 0)
            rc = ctl_forward(&c, verb, sub_argc, sub_argv);
    if (rc < 0) {
        fprintf(stderr, "ndf ctl: unknown verb '%s' (see 'ndf ctl --help')\n", verb);
        rc = EXIT_USAGE;
    }
    config_free(cfg);
    return rc;
}

/* The history commands over the store: `ndf runs` (executions, newest
 * first), `ndf status [ID]` (one execution, its steps and sub-patterns),
 * `ndf logs ID [STEP]` (captured output), `ndf backup` and `ndf restore`.
 * --json outputs are documented in ndf(1). */
#include "build-config.h"

#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <ndf/sdk.h>

#include "base/util.h"
#include "cli/commands.h"
#include "conf/config.h"
#include "exec/record.h"
#include "store/history.h"

/* ---- shared ---- */

static store *open_store(app *a, int *rc)
{
    *rc = app_load(a, APP_CONFIG);
    if (*rc)
        return NULL;
    store *s = history_app(&a->cfg->set);
    if (!s) {
        fprintf(stderr, "ndf: %s\n", err_msg());
        *rc = EXIT_IO;
    }
    return s;
}

static int fail(const char *cmd, int status)
{
    fprintf(stderr, "ndf %s: %s\n", cmd, err_msg());
    return exit_code_for(status);
}

static void utc(char *buf, size_t n, double t)
{
    buf[0] = 0;
    if (!(t > 0 && t < 253402300800.0))
        return;
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void json_num(strbuf *sb, double x)
{
    if (isfinite(x))
        sb_printf(sb, "%.17g", x);
    else
        sb_puts(sb, "null");
}

/* The summary fields of an execution as JSON members (no braces). */
static void exec_json(strbuf *sb, const store_exec *e)
{
    sb_puts(sb, "\"id\":");
    sb_json_str(sb, e->id);
    sb_puts(sb, ",\"pattern\":");
    sb_json_str(sb, e->pattern);
    sb_puts(sb, ",\"status\":");
    sb_json_str(sb, store_status_name(e->status));
    sb_puts(sb, ",\"origin\":");
    sb_json_str(sb, store_origin_name(e->origin));
    sb_puts(sb, ",\"start\":");
    json_num(sb, e->start);
    sb_puts(sb, ",\"end\":");
    if (e->end > 0)
        json_num(sb, e->end);
    else
        sb_puts(sb, "null");
    sb_puts(sb, ",\"duration\":");
    json_num(sb, e->duration);
    sb_puts(sb, ",\"host\":");
    sb_json_str(sb, e->host);
    sb_printf(sb, ",\"pid\":%ld,\"parent_id\":", e->pid);
    sb_json_str(sb, e->parent_id);
    sb_puts(sb, ",\"redrive_of\":");
    sb_json_str(sb, e->redrive_of);
    sb_puts(sb, ",\"domain\":");
    sb_json_str(sb, e->domain);
    sb_puts(sb, ",\"message\":");
    sb_json_str(sb, e->message);
    sb_puts(sb, ",\"fallback_from\":");
    sb_json_str(sb, e->fallback_from);
    sb_puts(sb, ",\"fallback_cause\":");
    sb_json_str(sb, e->fallback_cause);
    sb_puts(sb, ",\"context\":");
    cJSON *ctx = e->context ? cJSON_Parse(e->context) : NULL;
    if (ctx)
        sb_puts(sb, e->context);
    else
        sb_json_str(sb, e->context);
    cJSON_Delete(ctx);
}

/* --since: seconds since the epoch, an ISO date or time (UTC), or an age
 * such as 30s, 15m, 2h or 7d.  Returns 0 and *out, or -1. */
static int parse_since(const char *arg, double now, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (!errno && end != arg && v >= 0 && isfinite(v)) {
        double unit = 0;
        if (!*end)
            unit = -1; /* plain number: epoch seconds */
        else if (!strcmp(end, "s"))
            unit = 1;
        else if (!strcmp(end, "m"))
            unit = 60;
        else if (!strcmp(end, "h"))
            unit = 3600;
        else if (!strcmp(end, "d"))
            unit = 86400;
        if (unit < 0) {
            *out = v;
            return 0;
        }
        if (unit > 0) {
            *out = now - v * unit;
            return 0;
        }
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *rest = strptime(arg, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest) {
        memset(&tm, 0, sizeof tm);
        rest = strptime(arg, "%Y-%m-%d", &tm);
    }
    if (!rest || (*rest && strcmp(rest, "Z") != 0))
        return -1;
    *out = (double)timegm(&tm);
    return 0;
}

/* ---- ndf runs ---- */

static const char runs_usage[] =
    "Usage: ndf runs [PATTERN] [--status S] [--since TIME] [--limit N] [--json]\n"
    "\n"
    "Lists kept executions, newest first: id, pattern, status, start (UTC),\n"
    "duration, host and how it was started (run, batch, ctl, delegate,\n"
    "redrive, external).  Sub-pattern executions are listed too.\n"
    "\n"
    "  -s, --status S    RUNNING, SUCCEEDED, FAILED, TIMED_OUT, CANCELLED,\n"
    "                    REFUSED, ROLLED_BACK or CRASHED\n"
    "  --since TIME      started at or after TIME: epoch seconds, 2024-05-01,\n"
    "                    2024-05-01T12:00:00Z, or an age: 30m, 2h, 7d\n"
    "  -n, --limit N     at most N (default 50)\n"
    "  --json            one JSON array (see ndf(1))\n"
    "  -h, --help        show this help\n";

int cmd_runs(app *a, int argc, char **argv)
{
    static const struct option opts[] = {
        {"status", required_argument, NULL, 's'}, {"since", required_argument, NULL, 'S'},
        {"limit", required_argument, NULL, 'n'},  {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    store_query q = {NULL, -1, 0, 50};
    int json = 0, c;
    while ((c = getopt_long(argc, argv, "s:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 's': {
            store_status st;
            if (store_status_parse(optarg, &st) != 0) {
                fprintf(stderr, "ndf runs: --status: unknown status '%s'\n", optarg);
                return EXIT_USAGE;
            }
            q.status = (int)st;
            break;
        }
        case 'S':
            if (parse_since(optarg, now_wall(), &q.since) != 0) {
                fprintf(stderr, "ndf runs: --since: not a time or an age: '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'n': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 1 || v > 1000000) {
                fprintf(stderr, "ndf runs: --limit: not a number 1..1000000: '%s'\n", optarg);
                return EXIT_USAGE;
            }
            q.limit = (size_t)v;
            break;
        }
        case 'j': json = 1; break;
        case 'h': usage_print(runs_usage); return EXIT_OK;
        default: fputs(runs_usage, stderr); return EXIT_USAGE;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, "ndf runs: too many arguments\n");
        return EXIT_USAGE;
    }
    if (optind < argc)
        q.pattern = argv[optind];
    int rc;
    store *s = open_store(a, &rc);
    if (!s)
        return rc;
    store_exec *v;
    size_t n;
    int st = store_runs(s, &q, &v, &n);
    if (st)
        return fail("runs", st);
    strbuf sb;
    sb_init(&sb);
    if (json) {
        sb_puts(&sb, "[");
        for (size_t i = 0; i < n; i++) {
            sb_puts(&sb, i ? ",{" : "{");
            exec_json(&sb, &v[i]);
            sb_puts(&sb, "}");
        }
        sb_puts(&sb, "]\n");
    } else if (n) {
        sb_printf(&sb, "%-40s %-24s %-11s %-20s %10s %-8s %s\n", "ID", "PATTERN", "STATUS",
                  "STARTED", "DURATION", "ORIGIN", "HOST");
        for (size_t i = 0; i < n; i++) {
            char when[32];
            utc(when, sizeof when, v[i].start);
            sb_printf(&sb, "%-40s %-24s %-11s %-20s %9.3fs %-8s %s\n", v[i].id, v[i].pattern,
                      store_status_name(v[i].status), when, v[i].duration,
                      store_origin_name(v[i].origin), v[i].host ? v[i].host : "");
        }
    } else if (a->verbosity >= 0) {
        fprintf(stderr, "ndf runs: no execution matches\n");
    }
    fwrite(sb.buf ? sb.buf : "", 1, sb.len, stdout);
    sb_free(&sb);
    store_exec_array_free(v, n);
    return EXIT_OK;
}

/* ---- ndf status ---- */

static void status_node(const cJSON *n, int depth)
{
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(n, "kind");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(n, "name");
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(n, "state");
    const cJSON *dur = cJSON_GetObjectItemCaseSensitive(n, "duration");
    const cJSON *prog = cJSON_GetObjectItemCaseSensitive(n, "progress");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(n, "message");
    printf("%*s%-11s %s %s", depth * 2, "", cJSON_IsString(state) ? state->valuestring : "?",
           cJSON_IsString(kind) ? kind->valuestring : "?",
           cJSON_IsString(name) ? name->valuestring : "?");
    if (cJSON_IsNumber(dur))
        printf("  %.3fs", dur->valuedouble);
    if (cJSON_IsNumber(prog) && prog->valuedouble < 100 &&
        cJSON_GetObjectItemCaseSensitive(n, "children"))
        printf("  %.0f%%", prog->valuedouble);
    if (cJSON_IsString(msg) && *msg->valuestring)
        printf("  (%s)", msg->valuestring);
    putchar('\n');
    const cJSON *kids = cJSON_GetObjectItemCaseSensitive(n, "children");
    const cJSON *k;
    cJSON_ArrayForEach(k, kids) status_node(k, depth + 1);
}

void status_print(const cJSON *j)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(j, "status");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(j, "fallback_from");
    const cJSON *cause = cJSON_GetObjectItemCaseSensitive(j, "fallback_cause");
    const cJSON *dur = cJSON_GetObjectItemCaseSensitive(j, "duration");
    printf("execution %s: %s", cJSON_IsString(id) ? id->valuestring : "?",
           cJSON_IsString(status) ? status->valuestring : "running");
    if (cJSON_IsNumber(dur))
        printf(" in %.3fs", dur->valuedouble);
    putchar('\n');
    if (cJSON_IsString(from))
        printf("fallback from %s (cause: %s)\n", from->valuestring,
               cJSON_IsString(cause) ? cause->valuestring : "?");
    if (cJSON_IsString(err))
        printf("error: %s\n", err->valuestring);
    status_node(cJSON_GetObjectItemCaseSensitive(j, "root"), 0);
}

static const char *kind_name(int k)
{
    return node_kind_name((ndf_node_kind)k);
}

static void status_text(const store_exec *e, const store_exec *kids, size_t nkids)
{
    char when[32];
    utc(when, sizeof when, e->start);
    printf("execution %s: %s in %.3fs\n", e->id, store_status_name(e->status), e->duration);
    printf("pattern %s, started %s by %s on %s (pid %ld)\n", e->pattern, when,
           store_origin_name(e->origin), e->host ? e->host : "?", e->pid);
    if (e->parent_id)
        printf("sub-pattern of %s\n", e->parent_id);
    if (e->redrive_of)
        printf("redrive of %s\n", e->redrive_of);
    if (e->fallback_from)
        printf("fallback from %s (cause: %s)\n", e->fallback_from,
               e->fallback_cause ? e->fallback_cause : "?");
    if (e->message)
        printf("error: %s\n", e->message);
    for (size_t i = 0; i < e->nnodes; i++) {
        const store_node *n = &e->nodes[i];
        int depth = 0;
        const char *name = n->path;
        for (const char *p = n->path; *p; p++)
            if (*p == '/') {
                depth++;
                name = p + 1;
            }
        if (*n->path)
            depth++;
        printf("%*s%-11s %s %s", depth * 2, "", state_name((ndf_state)n->state), kind_name(n->kind),
               *n->path ? name : e->pattern);
        if (n->start > 0 && n->end >= n->start)
            printf("  %.3fs", n->end - n->start);
        if (n->message)
            printf("  (%s)", n->message);
        size_t out = n->outlen[0] + n->outlen[1] + n->outlen[2];
        if (out)
            printf("  [%zu bytes of output]", out);
        putchar('\n');
    }
    for (size_t i = 0; i < nkids; i++)
        printf("sub-pattern execution %s: %s %s\n", kids[i].id, kids[i].pattern,
               store_status_name(kids[i].status));
}

static const char status_usage[] =
    "Usage: ndf status [ID] [--json]\n"
    "\n"
    "Shows a kept execution (the newest when no ID is given), however it was\n"
    "started: its status, timing, every step, task and phase, and the\n"
    "sub-pattern executions it ran.\n"
    "\n"
    "  --json      print JSON (see ndf(1))\n"
    "  -h, --help  show this help\n";

int cmd_status(app *a, int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int json = 0, c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'h': usage_print(status_usage); return EXIT_OK;
        default: fprintf(stderr, "%s", status_usage); return EXIT_USAGE;
        }
    }
    if (optind < argc - 1) {
        fprintf(stderr, "ndf status: expected at most one execution ID\n");
        return EXIT_USAGE;
    }
    int rc;
    store *s = open_store(a, &rc);
    if (!s)
        return rc;
    char *id = optind < argc ? xstrdup(argv[optind]) : NULL;
    if (!id) {
        store_exec *v;
        size_t n;
        store_query q = {NULL, -1, 0, 1};
        int st = store_runs(s, &q, &v, &n);
        if (st)
            return fail("status", st);
        if (!n) {
            free(v);
            fprintf(stderr, "ndf status: no execution recorded yet in %s\n", store_path(s));
            return EXIT_NOT_FOUND;
        }
        id = xstrdup(v[0].id);
        store_exec_array_free(v, n);
    }
    store_exec e;
    int st = store_get(s, id, &e);
    free(id);
    if (st)
        return fail("status", st);
    store_exec *kids;
    size_t nkids;
    st = store_children(s, e.id, &kids, &nkids);
    if (st) {
        store_exec_free(&e);
        return fail("status", st);
    }
    if (json) {
        strbuf sb;
        sb_init(&sb);
        sb_puts(&sb, "{");
        exec_json(&sb, &e);
        sb_puts(&sb, ",\"nodes\":[");
        for (size_t i = 0; i < e.nnodes; i++) {
            const store_node *n = &e.nodes[i];
            sb_puts(&sb, i ? ",{\"path\":" : "{\"path\":");
            sb_json_str(&sb, n->path);
            sb_puts(&sb, ",\"kind\":");
            sb_json_str(&sb, kind_name(n->kind));
            sb_puts(&sb, ",\"state\":");
            sb_json_str(&sb, state_name((ndf_state)n->state));
            sb_puts(&sb, ",\"start\":");
            json_num(&sb, n->start);
            sb_puts(&sb, ",\"end\":");
            json_num(&sb, n->end);
            sb_puts(&sb, ",\"message\":");
            sb_json_str(&sb, n->message);
            /* the captured output itself, as `ndf logs` prints it */
            static const char *const streams[] = {"stdout", "stderr", "log"};
            for (int k = 0; k < STORE_NSTREAMS; k++) {
                char *buf;
                size_t len;
                if (!n->outlen[k] || store_output(s, e.id, n->path, k, &buf, &len, NULL))
                    continue;
                sb_printf(&sb, ",\"%s\":", streams[k]);
                sb_json_strn(&sb, buf, len);
                free(buf);
            }
            sb_puts(&sb, "}");
        }
        sb_puts(&sb, "],\"sub_executions\":[");
        for (size_t i = 0; i < nkids; i++) {
            sb_puts(&sb, i ? ",{" : "{");
            exec_json(&sb, &kids[i]);
            sb_puts(&sb, "}");
        }
        sb_puts(&sb, "]}\n");
        fwrite(sb.buf, 1, sb.len, stdout);
        sb_free(&sb);
    } else {
        status_text(&e, kids, nkids);
    }
    store_exec_array_free(kids, nkids);
    store_exec_free(&e);
    return EXIT_OK;
}

/* ---- ndf logs ---- */

static const char logs_usage[] =
    "Usage: ndf logs ID [STEP] [--stream stdout|stderr|log] [--follow]\n"
    "\n"
    "Prints the output captured from the steps of execution ID (the newest\n"
    "64 KiB of each stream per step, as stored): of every node that wrote\n"
    "any, each under a header, or of STEP alone (its path in 'ndf status',\n"
    "e.g. validate or phase1/task2) without headers.\n"
    "\n"
    "  --stream S  only stdout, stderr or log lines\n"
    "  -f, --follow  wait while the execution is RUNNING, then print\n"
    "  -h, --help  show this help\n";

static int print_stream(store *s, const char *id, const char *path, int k, int header)
{
    static const char *const names[] = {"stdout", "stderr", "log"};
    char *buf;
    size_t len;
    uint64_t dropped;
    int st = store_output(s, id, path, k, &buf, &len, &dropped);
    if (st)
        return st;
    if (len) {
        if (header)
            printf("==> %s (%s)%s <==\n", *path ? path : "(pattern)", names[k],
                   dropped ? " [older output dropped]" : "");
        fwrite(buf, 1, len, stdout);
        if (buf[len - 1] != '\n')
            putchar('\n');
    }
    free(buf);
    return NDF_OK;
}

int cmd_logs(app *a, int argc, char **argv)
{
    static const struct option opts[] = {{"stream", required_argument, NULL, 's'},
                                         {"follow", no_argument, NULL, 'f'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int stream = -1, follow = 0, c;
    while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            stream = !strcmp(optarg, "stdout")   ? STORE_STDOUT
                     : !strcmp(optarg, "stderr") ? STORE_STDERR
                     : !strcmp(optarg, "log")    ? STORE_LOG
                                                 : -2;
            if (stream == -2) {
                fprintf(stderr, "ndf logs: --stream: stdout, stderr or log, not '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'f': follow = 1; break;
        case 'h': usage_print(logs_usage); return EXIT_OK;
        default: fputs(logs_usage, stderr); return EXIT_USAGE;
        }
    }
    if (argc - optind < 1 || argc - optind > 2) {
        fprintf(stderr, "ndf logs: expected an execution ID and at most one STEP\n");
        return EXIT_USAGE;
    }
    const char *id = argv[optind];
    const char *step = argc - optind == 2 ? argv[optind + 1] : NULL;
    int rc;
    store *s = open_store(a, &rc);
    if (!s)
        return rc;
    store_exec e;
    int st;
    for (;;) {
        if ((st = store_get(s, id, &e)))
            return fail("logs", st);
        if (!follow || e.status != STORE_RUNNING)
            break;
        store_exec_free(&e);
        usleep(250000);
    }
    for (size_t i = 0; i < e.nnodes && !st; i++) {
        const store_node *n = &e.nodes[i];
        if (step && strcmp(n->path, step) != 0)
            continue;
        for (int k = 0; k < STORE_NSTREAMS && !st; k++)
            if ((stream < 0 || stream == k) && n->outlen[k])
                st = print_stream(s, id, n->path, k, !step);
    }
    if (!st && step) {
        int found = 0;
        for (size_t i = 0; i < e.nnodes; i++)
            found |= !strcmp(e.nodes[i].path, step);
        if (!found)
            st = err_set(NDF_ERR_NOT_FOUND, "execution %s has no step '%s' (see 'ndf status %s')",
                         id, step, id);
    }
    store_exec_free(&e);
    return st ? fail("logs", st) : EXIT_OK;
}

/* ---- ndf backup, ndf restore ---- */

static const char backup_usage[] =
    "Usage: ndf backup\n"
    "\n"
    "Writes a consistent copy of the store (while executions go on) as\n"
    "backups/ndf-TIME.db.gz in the storage directory, keeping the newest\n"
    "storage.backups of them, and prints its path.\n"
    "\n"
    "  -h, --help  show this help\n";

int cmd_backup(app *a, int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': usage_print(backup_usage); return EXIT_OK;
        default: fputs(backup_usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ndf backup: too many arguments\n");
        return EXIT_USAGE;
    }
    int rc;
    store *s = open_store(a, &rc);
    if (!s)
        return rc;
    char *path;
    int st = store_backup(s, &path);
    if (st)
        return fail("backup", st);
    puts(path);
    free(path);
    return EXIT_OK;
}

/* 1 when a server answers on the configured socket. */
static int server_running(const char *path)
{
    if (!path || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path));
    int up = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return up;
}

static const char restore_usage[] =
    "Usage: ndf restore FILE [--force]\n"
    "\n"
    "Replaces the store with backup FILE (from 'ndf backup', gzip or not),\n"
    "after checking it.  A corrupt store is kept aside as ndf.db.corrupt-TIME.\n"
    "Refuses while 'ndf serve' answers on the configured socket.\n"
    "\n"
    "  --force     restore even while a server runs (it sees the restored\n"
    "              contents; executions it finishes meanwhile are lost)\n"
    "  -h, --help  show this help\n";

int cmd_restore(app *a, int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'F'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int force = 0, c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'F': force = 1; break;
        case 'h': usage_print(restore_usage); return EXIT_OK;
        default: fputs(restore_usage, stderr); return EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "ndf restore: expected one backup FILE\n");
        return EXIT_USAGE;
    }
    int rc = app_load(a, APP_CONFIG);
    if (rc)
        return rc;
    const settings *set = &a->cfg->set;
    if (!force && server_running(set->socket_path)) {
        fprintf(stderr,
                "ndf restore: a server answers on %s and uses the store; stop it first "
                "(or --force)\n",
                set->socket_path);
        return EXIT_USAGE;
    }
    store_opts o;
    history_opts(set, &o);
    int st = store_restore(set->storage_path, &o, argv[optind]);
    if (st)
        return fail("restore", st);
    printf("restored %s into %s/%s\n", argv[optind], set->storage_path, STORE_DB_NAME);
    return EXIT_OK;
}

/* The execution commands: `ndf run` (one pattern, live progress, optional
 * fallback) and `ndf batch` (JSON lines in, JSON lines out, in input
 * order).  Every execution is committed to the store before its result is
 * printed; one that cannot be is a storage error (exit 8). */
#include "build-config.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "model/context.h"
#include "cli/ctxopt.h"
#include "exec/executor.h"
#include "exec/record.h"
#include "store/history.h"
#include "base/util.h"

/* The executor of a one-shot command, recording through `hook` (whose
 * store is opened here: NULL and a message when it cannot be). */
static executor *make_executor(app *a, history_hook *hook, store_origin origin)
{
    const settings *s = &a->cfg->set;
    executor_opts eo = {
        .threads = s->threads > 0 ? (unsigned)s->threads : 1,
        .default_timeout = s->default_timeout,
        .pattern_timeout = s->pattern_timeout,
        .kill_grace = s->kill_grace,
        .confidence_threshold = s->confidence_threshold,
        .reg = a->reg,
    };
    hook->s = history_app(s);
    hook->origin = origin;
    if (!hook->s) {
        fprintf(stderr, "ndf: %s\n", err_msg());
        return NULL;
    }
    eo.on_complete = history_on_complete;
    eo.opaque = hook;
    executor *ex = executor_new(&eo);
    if (!ex)
        fprintf(stderr, "ndf: %s\n", err_msg());
    return ex;
}

/* ---- live progress ---- */

typedef struct seen {
    const ndf_exec *node;
    int state;
} seen;

typedef struct progress {
    int tty;
    int lines;       /* lines drawn last time (tty) */
    seen *seen;      /* last state printed per node (plain) */
    size_t nseen;
} progress;

/* Caller holds the record lock. */
static void walk(const ndf_exec *n, int depth, progress *pg, strbuf *sb, int *lines)
{
    ndf_state st = atomic_load(&n->state);
    double now = now_mono();
    double dur = n->start > 0 ? (n->end > 0 ? n->end : now) - n->start : 0;
    if (depth > 0) {
        if (pg->tty) {
            sb_printf(sb, "\033[K%*s%-11s %s %s", (depth - 1) * 2, "", state_name(st),
                      node_kind_name(n->kind), n->name);
            if (n->start > 0)
                sb_printf(sb, "  %.1fs", dur);
            if (n->message && *n->message)
                sb_printf(sb, "  %.60s", n->message);
            sb_add(sb, "\n", 1);
            (*lines)++;
        } else {
            size_t i;
            for (i = 0; i < pg->nseen && pg->seen[i].node != n; i++)
                ;
            if (i == pg->nseen) {
                pg->seen = xrealloc(pg->seen, (pg->nseen + 1) * sizeof *pg->seen);
                pg->seen[pg->nseen++] = (seen){n, -1};
            }
            if (pg->seen[i].state != (int)st && st != NDF_STATE_PENDING) {
                pg->seen[i].state = (int)st;
                sb_printf(sb, "%*s%s %s: %s", (depth - 1) * 2, "", node_kind_name(n->kind),
                          n->name, state_name(st));
                if (state_final(st) && n->start > 0)
                    sb_printf(sb, " (%.2fs)", dur);
                if (state_final(st) && n->message && *n->message)
                    sb_printf(sb, ": %s", n->message);
                sb_add(sb, "\n", 1);
            }
        }
    }
    for (size_t i = 0; i < n->nkids; i++)
        walk(n->kids[i], depth + 1, pg, sb, lines);
}

static void progress_draw(progress *pg, record *r)
{
    strbuf sb;
    sb_init(&sb);
    if (pg->tty && pg->lines)
        sb_printf(&sb, "\033[%dA", pg->lines);
    int lines = 0;
    pthread_mutex_lock(&r->lock);
    walk(r->root, 0, pg, &sb, &lines);
    pthread_mutex_unlock(&r->lock);
    if (pg->tty)
        pg->lines = lines;
    if (sb.len)
        fwrite(sb.buf, 1, sb.len, stderr);
    fflush(stderr);
    sb_free(&sb);
}

/* Starts `name`, shows its progress on stderr until it ends, and returns
 * its status; *out gets the record when it ran. */
static int run_one(executor *ex, store *hs, const char *name, const ndf_context *ctx,
                   double timeout, unsigned flags, int show, record **out)
{
    *out = NULL;
    int rc = executor_start(ex, name, ctx, timeout, flags, out);
    if (rc)
        return rc;
    record *r = *out;
    /* RUNNING in the store while it runs: `ndf runs`, `ndf status ID` and
     * crash recovery see it; the end is recorded by the executor's hook */
    if (history_begin(hs, r, STORE_ORIGIN_RUN) != NDF_OK)
        log_msg(NDF_LOG_ERROR, "execution %s: %s", r->id, err_msg());
    progress pg = {.tty = isatty(STDERR_FILENO)};
    if (show && !pg.tty)
        fprintf(stderr, "pattern %s: started (execution %s)\n", name, r->id);
    while (!executor_wait(ex, r, pg.tty ? 0.1 : 0.25))
        if (show)
            progress_draw(&pg, r);
    if (show)
        progress_draw(&pg, r);
    free(pg.seen);
    rc = r->status;
    if (rc)
        err_set(rc, "%s", r->error ? r->error : ndf_status_name(rc));
    return rc;
}

static void count_states(const ndf_exec *n, unsigned *counts)
{
    for (size_t i = 0; i < n->nkids; i++) {
        counts[atomic_load(&n->kids[i]->state) % 9]++;
        count_states(n->kids[i], counts);
    }
}

static void summary(record *r, int rc)
{
    unsigned counts[9] = {0};
    pthread_mutex_lock(&r->lock);
    count_states(r->root, counts);
    pthread_mutex_unlock(&r->lock);
    double dur = r->end > 0 && r->root->start > 0 ? r->end - r->root->start : 0;
    fprintf(stderr, "pattern %s: %s in %.2fs (execution %s)", r->root->name,
            rc ? ndf_status_name(rc) : state_name(atomic_load(&r->root->state)), dur, r->id);
    const char *sep = ": ";
    for (int s = 0; s < 9; s++)
        if (counts[s]) {
            fprintf(stderr, "%s%u %s", sep, counts[s], state_name((ndf_state)s));
            sep = ", ";
        }
    fputc('\n', stderr);
    if (rc && r->error)
        fprintf(stderr, "ndf: %s\n", r->error);
}

static const char run_usage[] =
    "Usage: ndf run PATTERN [context options] [--timeout S] [--fallback PATTERN]\n"
    "               [--force] [--json]\n"
    "\n"
    "Runs a pattern and shows its steps, tasks and phases as they go.\n"
    "\n"
    "Options:\n"
    "  --timeout S         the execution's deadline in seconds (default:\n"
    "                      executor.default_timeout)\n"
    "  --fallback PATTERN  run PATTERN when the first fails, is not found, is\n"
    "                      refused by the confidence gate or times out\n"
    "  --force             run even when the confidence is below the threshold\n"
    "  --json              print the execution record as JSON on stdout\n"
    "\n" CTXOPT_HELP;

int cmd_run(app *a, int argc, char **argv)
{
    enum { OPT_TIMEOUT = 1, OPT_FALLBACK, OPT_FORCE, OPT_JSON };
    static const struct option opts[] = {
        CTXOPT_LONG_OPTIONS,
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"fallback", required_argument, NULL, OPT_FALLBACK},
        {"force", no_argument, NULL, OPT_FORCE},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    ctxopt co;
    ctxopt_init(&co);
    double timeout = 0;
    const char *fallback = NULL;
    unsigned flags = 0;
    int json = 0, c, rc;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int h = ctxopt_handle(&co, c, optarg);
        if (h < 0) {
            ctxopt_free(&co);
            return EXIT_USAGE;
        }
        if (h > 0)
            continue;
        switch (c) {
        case OPT_TIMEOUT: {
            char *end;
            errno = 0;
            timeout = strtod(optarg, &end);
            if (errno || *end || end == optarg || !(timeout > 0) || !isfinite(timeout)) {
                fprintf(stderr, "ndf: --timeout %s: expected a number of seconds above 0\n",
                        optarg);
                ctxopt_free(&co);
                return EXIT_USAGE;
            }
            break;
        }
        case OPT_FALLBACK: fallback = optarg; break;
        case OPT_FORCE: flags |= EXEC_FORCE; break;
        case OPT_JSON: json = 1; break;
        case 'h': usage_print(run_usage); ctxopt_free(&co); return EXIT_OK;
        default:
            fprintf(stderr, "%s", run_usage);
            ctxopt_free(&co);
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "ndf run: expected one PATTERN (see 'ndf run --help')\n");
        ctxopt_free(&co);
        return EXIT_USAGE;
    }
    const char *name = argv[optind];
    ndf_context *ctx = NULL;
    rc = ctxopt_finish(&co, &ctx);
    ctxopt_free(&co);
    if (rc)
        return rc;
    if ((rc = app_load(a, APP_PATTERNS))) {
        context_free(ctx);
        return rc;
    }
    history_hook hook;
    executor *ex = make_executor(a, &hook, STORE_ORIGIN_RUN);
    if (!ex) {
        context_free(ctx);
        return hook.s ? EXIT_FAILED : EXIT_IO;
    }
    int show = a->verbosity >= 0 && !json;
    record *r = NULL, *r2 = NULL;
    int st = run_one(ex, hook.s, name, ctx, timeout, flags, show, &r);
    if (st && !r && !fallback)
        fprintf(stderr, "ndf: %s\n", err_msg());
    if (st && r && show && !fallback)
        summary(r, st);
    if (st && st != NDF_ERR_CANCELLED && fallback) {
        fallback_cause cause = st == NDF_ERR_NOT_FOUND    ? FALLBACK_NOT_FOUND
                               : st == NDF_ERR_CONFIDENCE ? FALLBACK_CONFIDENCE
                               : st == NDF_ERR_TIMEOUT    ? FALLBACK_TIMEOUT
                                                          : FALLBACK_FAILURE;
        if (r && show)
            summary(r, st);
        /* The summary already said why the primary failed, when there was
         * a record to summarize. */
        if (a->verbosity >= 0 && !(r && show))
            fprintf(stderr, "ndf: %s\n", err_msg());
        if (a->verbosity >= 0)
            fprintf(stderr, "ndf: falling back to '%s' (cause: %s)\n", fallback,
                    fallback_cause_name(cause));
        /* the hook writes the link into the record before it is stored */
        hook.fallback_from = name;
        hook.fallback_cause = fallback_cause_name(cause);
        st = run_one(ex, hook.s, fallback, ctx, timeout, flags, show, &r2);
        if (r2) {
            if (show)
                summary(r2, st);
        } else {
            fprintf(stderr, "ndf: %s\n", err_msg());
        }
    } else if (!st && show) {
        summary(r, st);
    }
    record *last = r2 ? r2 : r;
    if (last) {
        if (json) {
            strbuf sb;
            sb_init(&sb);
            record_to_json(last, &sb);
            puts(sb.buf);
            sb_free(&sb);
        }
    }
    record_unref(r);
    record_unref(r2);
    executor_free(ex);
    context_free(ctx);
    return exit_code_for(st);
}

/* ---- batch ---- */

typedef struct bline {
    long lineno;
    char *pattern;
    ndf_context *ctx;
    double timeout;
    char *error;       /* parse error, or NULL */
    int status;
} bline;

/* The longest batch line taken; a longer one is an error result, read past
 * without being kept, so an endless line cannot exhaust memory. */
#define BATCH_LINE_MAX (1 << 20)

/* Reads one line (with its newline) into `sb`, keeping at most `max` bytes;
 * *too_long is set when more were discarded.  Returns 0 at end of input or
 * on a read error (ferror tells which), else 1. */
static int read_line(FILE *f, strbuf *sb, size_t max, int *too_long)
{
    int c;
    while ((c = getc(f)) != EOF) {
        if (sb->len < max) {
            char ch = (char)c;
            sb_add(sb, &ch, 1);
        } else {
            *too_long = 1;
        }
        if (c == '\n')
            return 1;
    }
    return 0;
}

static void parse_line(bline *b, const char *text, const char *origin)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(text, &end, 1);
    if (!j) {
        /* cJSON stops at the first byte it cannot take (or at its nesting
         * limit of CJSON_NESTING_LIMIT); say where. */
        b->error = xasprintf("%s:%ld: invalid JSON at column %ld", origin, b->lineno,
                             end ? (long)(end - text) + 1 : 1L);
        return;
    }
    if (!cJSON_IsObject(j)) {
        b->error = xasprintf("%s:%ld: not a JSON object", origin, b->lineno);
        cJSON_Delete(j);
        return;
    }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "pattern");
    const cJSON *cx = cJSON_GetObjectItemCaseSensitive(j, "context");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "timeout");
    if (!cJSON_IsString(p) || !*p->valuestring) {
        b->error = xasprintf("%s:%ld: \"pattern\" must be a non-empty string", origin, b->lineno);
    } else if (cx && !cJSON_IsObject(cx)) {
        b->error = xasprintf("%s:%ld: \"context\" must be an object", origin, b->lineno);
    } else if (t && (!cJSON_IsNumber(t) || !(t->valuedouble > 0))) {
        b->error = xasprintf("%s:%ld: \"timeout\" must be a number above 0", origin, b->lineno);
    } else {
        b->pattern = xstrdup(p->valuestring);
        b->timeout = t ? t->valuedouble : 0;
        if (cx) {
            char *ctext = cJSON_PrintUnformatted(cx);
            char *where = xasprintf("%s:%ld", origin, b->lineno);
            if (!ctext || context_from_json(ctext, where, &b->ctx) != NDF_OK)
                b->error = xstrdup(err_msg());
            free(where);
            cJSON_free(ctext);
        } else {
            b->ctx = context_new(NULL, NULL, NDF_PRIORITY_HIGHEST);
        }
    }
    cJSON_Delete(j);
}

static void result_line(const bline *b, const batch_result *res)
{
    strbuf sb;
    sb_init(&sb);
    sb_printf(&sb, "{\"line\":%ld", b->lineno);
    if (b->pattern) {
        sb_puts(&sb, ",\"pattern\":");
        sb_json_str(&sb, b->pattern);
    }
    int st = b->error ? NDF_ERR_INVALID : res->status;
    sb_printf(&sb, ",\"success\":%s,\"status\":\"%s\"", st ? "false" : "true",
              ndf_status_name(st));
    if (res && res->rec) {
        sb_puts(&sb, ",\"id\":");
        sb_json_str(&sb, res->rec->id);
        double d = res->rec->end > 0 && res->rec->root->start > 0
                       ? res->rec->end - res->rec->root->start
                       : 0;
        sb_printf(&sb, ",\"duration\":%.6g", d);
    }
    const char *err = b->error ? b->error : res ? res->error : NULL;
    if (err) {
        sb_puts(&sb, ",\"error\":");
        sb_json_str(&sb, err);
    }
    sb_puts(&sb, "}");
    puts(sb.buf);
    sb_free(&sb);
}

static const char batch_usage[] =
    "Usage: ndf batch [--sequential] FILE|-\n"
    "\n"
    "Runs one pattern per input line, a JSON object\n"
    "  {\"pattern\": NAME, \"context\": {...}, \"timeout\": S}\n"
    "(context and timeout optional), all at once unless --sequential, and\n"
    "prints one JSON result per line in input order.  Exits 1 if any failed.\n";

int cmd_batch(app *a, int argc, char **argv)
{
    static const struct option opts[] = {{"sequential", no_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int parallel = 1, c;
    while ((c = getopt_long(argc, argv, "sh", opts, NULL)) != -1) {
        switch (c) {
        case 's': parallel = 0; break;
        case 'h': usage_print(batch_usage); return EXIT_OK;
        default: fprintf(stderr, "%s", batch_usage); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "ndf batch: expected one FILE or '-' (see 'ndf batch --help')\n");
        return EXIT_USAGE;
    }
    const char *path = argv[optind];
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "r");
    if (!f) {
        fprintf(stderr, "ndf: cannot open %s: %s\n", path, strerror(errno));
        return EXIT_NOT_FOUND;
    }
    const char *origin = is_stdin ? "<stdin>" : path;
    bline *lines = NULL;
    size_t n = 0;
    strbuf line;
    sb_init(&line);
    long lineno = 0;
    int more = 1;
    while (more) {
        int too_long = 0;
        more = read_line(f, &line, BATCH_LINE_MAX, &too_long);
        if (!more && line.len == 0)
            break;
        lineno++;
        while (line.len > 0 && (line.buf[line.len - 1] == '\n' || line.buf[line.len - 1] == '\r'))
            line.buf[--line.len] = '\0';
        const char *s = line.buf;
        while (*s == ' ' || *s == '\t')
            s++;
        if (!too_long && (!*s || *s == '#') && strlen(line.buf) == line.len)
            continue;
        lines = xrealloc(lines, (n + 1) * sizeof *lines);
        memset(&lines[n], 0, sizeof lines[n]);
        lines[n].lineno = lineno;
        if (too_long)
            lines[n].error = xasprintf("%s:%ld: line longer than %d bytes", origin, lineno,
                                       BATCH_LINE_MAX);
        else if (strlen(line.buf) != line.len)
            lines[n].error = xasprintf("%s:%ld: the line contains a NUL byte", origin, lineno);
        else
            parse_line(&lines[n], s, origin);
        n++;
        line.len = 0;
        if (line.buf)
            line.buf[0] = '\0';
    }
    sb_free(&line);
    int read_err = ferror(f);
    if (!is_stdin)
        fclose(f);
    if (read_err) {
        fprintf(stderr, "ndf: error reading %s\n", origin);
        for (size_t i = 0; i < n; i++)
            free(lines[i].pattern), free(lines[i].error), context_free(lines[i].ctx);
        free(lines);
        return EXIT_IO;
    }
    int rc = app_load(a, APP_PATTERNS);
    history_hook hook = {0};
    executor *ex = rc ? NULL : make_executor(a, &hook, STORE_ORIGIN_BATCH);
    if (!ex) {
        for (size_t i = 0; i < n; i++)
            free(lines[i].pattern), free(lines[i].error), context_free(lines[i].ctx);
        free(lines);
        return rc ? rc : hook.s ? EXIT_FAILED : EXIT_IO;
    }
    batch_item *items = xcalloc(n ? n : 1, sizeof *items);
    size_t *map = xcalloc(n ? n : 1, sizeof *map);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (lines[i].error)
            continue;
        items[m] = (batch_item){lines[i].pattern, lines[i].ctx, lines[i].timeout};
        map[m++] = i;
    }
    batch_result *res = xcalloc(m ? m : 1, sizeof *res);
    size_t failed = executor_batch(ex, items, m, parallel, 0, res);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (lines[i].error) {
            failed++;
            result_line(&lines[i], NULL);
        } else {
            result_line(&lines[i], &res[k++]);
        }
    }
    batch_results_free(res, m);
    free(res);
    free(items);
    free(map);
    for (size_t i = 0; i < n; i++)
        free(lines[i].pattern), free(lines[i].error), context_free(lines[i].ctx);
    free(lines);
    executor_free(ex);
    return failed ? EXIT_FAILED : EXIT_OK;
}
